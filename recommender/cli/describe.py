"""CLI commands ``describe``, ``explain``, ``plot`` and ``timeline``.

Wired into ``recommender …`` by :mod:`recommender.cli` (``_COMMAND_MODULES``).
Imports stay inside the command functions: ``describe`` without ``--tags``
never loads TensorFlow, and nothing here loads matplotlib unless a picture is
drawn.

Exit codes: 0 success; 1 when a file could not be read (``describe`` goes on
with the other files first); 2 for other errors (see :func:`recommender.cli.main`).
"""

from __future__ import annotations

import math
import os
import sys

from ..errors import RecommenderError
from ._common import print_json, query_arg

__all__ = ["add_commands"]

# Errors that mean "this file could not be used" (reported, then the next file).
_FILE_ERRORS = (RecommenderError, OSError, ValueError, RuntimeError)


def _clean(v):
    """JSON-safe scalar: NaN/inf -> None, NumPy scalars -> Python, floats rounded."""
    try:
        import numpy as np

        if isinstance(v, np.generic):
            v = v.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else None
    return v


def _file_error_text(path, exc) -> str:
    msg = str(exc) or type(exc).__name__
    p = os.fspath(path)
    return msg if p in msg else f"{p}: {msg}"


def _write_text_atomic(path, text):
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.part")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def _load_model(name):
    from ..models import load_model

    return load_model(name) if name else load_model()


# --------------------------------------------------------------------------- describe
def _describe_text(d: dict) -> str:
    def num(k, fmt, unit=""):
        v = d.get(k)
        return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:{fmt}}{unit}"

    lines = [f"{d['path']}  ({num('duration_s', '.1f', ' s')})"]
    if d.get("audio_flag"):
        lines.append(f"  {d['audio_flag']}: nothing to hear, so no tempo, key or tags are given")
    key = f"{d['key']} {d['mode']}" if d.get("key") else "—"
    lines.append(f"  tempo       {num('tempo_bpm', '.1f', ' BPM')}  (confidence {num('tempo_confidence', '.2f')})")
    lines.append(f"  key         {key}  (confidence {num('key_confidence', '.2f')})")
    lines.append(f"  loudness    {num('loudness_db', '.1f', ' LUFS')}")
    c = d.get("spectral_centroid_mean")
    if c is not None and math.isfinite(c):
        lines.append(f"  brightness  {c / 1000:.2f} kHz spectral centroid")
    if d.get("values"):
        lines.append("  model       " + ", ".join(f"{k} {v:.4g}" for k, v in d["values"].items()))
    if "profile_text" in d:
        lines.append(f"  profile     {d['profile_text']}")
        for g, items in d["profile"].items():
            lines.append(f"    {g:<12s}" + ", ".join(f"{t} {p:.2f}" for t, p in items))
    return "\n".join(lines)


def cmd_describe(args) -> int:
    from ..descriptors.level import flag_of_descriptors
    from ..descriptors.summary import DESCRIPTOR_COLUMNS, describe_file

    if args.clip is not None and not (math.isfinite(args.clip) and args.clip > 0):
        print(f"error: --clip {args.clip}: must be a positive number of seconds", file=sys.stderr)
        return 2
    if args.top < 1:
        print(f"error: --top {args.top}: must be >= 1", file=sys.stderr)
        return 2
    model = None
    if args.tags or args.model:
        from ..analysis.tagging import classify
        from ..analysis.profiles import profile, profile_text
        from .index import trained_outputs

        model = _load_model(args.model)
    regressor = getattr(model, "task", "classify") == "regress"  # its values are printed, not tags
    if regressor and args.tags:
        print(f"error: --tags: {args.model} is a regressor (values: {', '.join(model.tags)}): it has no "
              "tags; without --tags, describe prints its values", file=sys.stderr)
        return 2
    failed = 0
    results = []
    for path in args.files:
        try:
            d = describe_file(path, clip_s=args.clip)
            d["audio_flag"] = flag_of_descriptors(d, path)  # of the whole file, even with --clip
            if d["audio_flag"] is not None:  # nothing to hear: no tempo or key, not even "confidence 0"
                d["tempo_confidence"] = d["key_confidence"] = None
            if regressor:
                c = classify(path, model=model, sampling=args.sampling)
                if d.get("audio_flag") is None and c.audio_flag is None:
                    d.update(trained_outputs(model, c))
            if args.tags:
                c = classify(path, model=model, sampling=args.sampling)
                if d.get("audio_flag") is None and c.audio_flag is None:
                    d["profile"] = profile(c.tags, top=args.top)
                    d["profile_text"] = profile_text(c.tags)
                else:  # nothing to hear: no tag is claimed
                    d["profile"], d["profile_text"] = {}, d.get("audio_flag") or c.audio_flag
        except _FILE_ERRORS as e:
            failed += 1
            msg = _file_error_text(path, e)
            print(f"error: {msg}", file=sys.stderr)
            results.append({"path": os.fspath(path), "error": msg})
            continue
        d = {k: _clean(v) for k, v in d.items()}
        if "profile" in d:
            d["profile"] = {g: [[t, round(p, 4)] for t, p in items] for g, items in d["profile"].items()}
        results.append(d)
        if not args.json:
            print(_describe_text(d), flush=True)
    if args.csv:
        import pandas as pd

        cols = (["path"] + list(DESCRIPTOR_COLUMNS) + ["audio_flag"] + (["profile_text"] if args.tags else [])
                + ["error"])
        rows = [{k: r.get(k) for k in cols} for r in results]
        _write_text_atomic(args.csv, pd.DataFrame(rows, columns=cols).to_csv(index=False))
        if not args.json:
            print(f"wrote {args.csv}", file=sys.stderr)
    if args.json:

        print_json(results)
    return 1 if failed else 0


# --------------------------------------------------------------------------- explain
def cmd_explain(args) -> int:
    from ..recommend.explanations import explain
    from ..recommender import Recommender

    rec = Recommender(args.index)
    e = explain(rec, query_arg(args.a), query_arg(args.b))
    if args.json:
        print_json(e.to_json())
        return 0
    print(f"A: {e.a}\nB: {e.b}")
    print(f"similarity (embedding cosine): {e.score:.3f}\n")
    print(e.sentence + "\n")
    if e.shared_tags:
        print("shared tags:    " + ", ".join(f"{t} {pa:.2f}/{pb:.2f}" for t, pa, pb in e.shared_tags))
    if e.different_tags:
        print("different tags: " + ", ".join(f"{t} {pa:.2f}/{pb:.2f}" for t, pa, pb in e.different_tags))
    if len(e.descriptor_diffs):
        import pandas as pd

        def fmt(v):
            return f"{v:.4g}" if isinstance(v, float) else str(v)

        df = e.descriptor_diffs.copy()
        for c in ("a", "b", "difference"):
            df[c] = [fmt(v) if not (isinstance(v, float) and math.isnan(v)) else "" for v in df[c]]
        with pd.option_context("display.width", 200):
            print("\n" + df.to_string(index=False))
    return 0


# --------------------------------------------------------------------------- plot
def cmd_plot(args) -> int:
    from ..viz import plots

    kinds = list(plots.KINDS) if args.kind == "all" else [args.kind]
    stem = os.path.splitext(os.path.basename(args.file))[0]
    if args.kind == "all":
        out_dir = args.out or "."
        if os.path.splitext(out_dir)[1].lower() == ".png":
            print("error: --kind all writes one PNG per kind: give a folder as --out", file=sys.stderr)
            return 2
        outs = {k: os.path.join(out_dir, f"{stem}_{k}.png") for k in kinds}
    else:
        outs = {args.kind: args.out or f"{stem}_{args.kind}.png"}
    failed = 0
    for k in kinds:
        kw = {"top": args.top, "model": _load_model(args.model)} if k == "taggram" else {}
        try:
            plots.plot(args.file, kind=k, out=outs[k], **kw)
        except _FILE_ERRORS as e:
            print(f"error: {_file_error_text(args.file, e)}", file=sys.stderr)
            failed += 1
            break  # the file is unreadable: the other kinds would fail the same way
        print(outs[k])
    return 1 if failed else 0


# --------------------------------------------------------------------------- timeline
def cmd_timeline(args) -> int:
    from ..analysis.profiles import changes, timeline

    try:
        tl = timeline(args.file, segment_s=args.segment, model=_load_model(args.model))
    except _FILE_ERRORS as e:
        print(f"error: {_file_error_text(args.file, e)}", file=sys.stderr)
        return 1
    ch = changes(tl)
    tags = tl.attrs.get("tags", [])
    summary = [c for c in tl.columns if c not in tags]
    if args.json:
        print_json({
            "path": os.fspath(args.file),
            "segment_s": args.segment,
            "tags": list(tags),
            "segments": [{k: _clean(v) for k, v in r.items()} for r in tl[summary].to_dict(orient="records")],
            "probs": tl[tags].round(5).values.tolist(),
            "changes": [{k: _clean(v) for k, v in r.items()} for r in ch.to_dict(orient="records")],
        })
        return 0
    import pandas as pd

    P = tl[tags]
    top = [", ".join(f"{t} {P.iloc[i][t]:.2f}" for t in P.iloc[i].sort_values(ascending=False).index[:3])
           for i in range(len(tl))]
    view = pd.DataFrame({
        "start": [f"{s:.0f}" for s in tl["start_s"]],
        "tempo": [f"{v:.0f}" if math.isfinite(v) else "—" for v in tl["tempo_bpm"]],
        "LUFS": [f"{v:.1f}" if math.isfinite(v) else "—" for v in tl["loudness_db"]],
        "genre": tl["genre"].fillna("—"),
        "mood": tl["mood"].fillna("—"),
        "top tags": top,
    })
    print(f"{args.file}  ({len(tl)} segments of {args.segment:g} s)")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(view.to_string(index=False))
    if len(ch):
        print("\nchanges:")
        for r in ch.itertuples(index=False):
            print(f"  {r.time_s:7.1f} s  {r.description}")
    else:
        print("\nno marked changes")
    return 0


# --------------------------------------------------------------------------- parser
def add_commands(sub) -> None:
    """Add ``describe``, ``explain``, ``plot`` and ``timeline`` to the ``recommender`` parser."""
    from ..recommender import DEFAULT_INDEX_DIR
    from ..viz import KINDS as kinds  # matplotlib-free constants

    s = sub.add_parser("describe", help="tempo, key, loudness, timbre (and with --tags a genre/mood profile)")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--json", action="store_true", help="a JSON list, one object per file")
    s.add_argument("--csv", default=None, metavar="OUT", help="also write one CSV row per file")
    s.add_argument("--clip", type=float, default=None, metavar="S",
                   help="analyse only the central S seconds (faster on long files)")
    s.add_argument("--tags", action="store_true",
                   help="also run the tagging network: grouped genre/mood/instrument/era profile (slower)")
    s.add_argument("--top", type=int, default=3, help="tags per profile group with --tags (default 3)")
    s.add_argument("--model", default=None,
                   help="tagging model for --tags, or a trained regressor whose values are printed")
    s.add_argument("--sampling", default=None, help="patches tagged with --tags: 'full' (default) or 'spread:N'")
    s.set_defaults(func=cmd_describe)

    s = sub.add_parser("explain", help="why two tracks are close or different (tags and descriptors)")
    s.add_argument("a", metavar="A", help="track id, indexed path, or any audio file")
    s.add_argument("b", metavar="B", help="track id, indexed path, or any audio file")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("plot", help="draw a picture of a track as PNG")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--kind", choices=kinds + ("all",), default="spectrogram")
    s.add_argument("--out", default=None, metavar="PNG",
                   help="output file (default FILE-STEM_KIND.png); a folder with --kind all")
    s.add_argument("--top", type=int, default=10, help="tags shown in the taggram (default 10)")
    s.add_argument("--model", default=None, help="tagging model for the taggram")
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("timeline", help="tags, tempo and loudness over a track, and where it changes")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--segment", type=float, default=6.0, metavar="S", help="segment length in seconds (default 6)")
    s.add_argument("--model", default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_timeline)
