"""Core commands: ``demo``, ``classify``, ``index``, ``similar``, ``info``, ``failures``.

Commands that only read an index (``similar`` by id/path, ``info``, ``failures``)
never import TensorFlow.
"""

from __future__ import annotations

import os
import sys

from ..errors import RecommenderError
from .bans import add_exclusion_args, exclusions_from_args
from ._common import add_playlist_file_args, display, print_json, query_arg, records, write_playlist_files

__all__ = ["add_commands"]


def cmd_classify(args) -> int:
    from ..analysis.tagging import classify
    from ..models import load_model

    model = load_model(args.model) if args.model else load_model()
    failed = 0
    out = []
    for path in args.files:
        try:
            c = classify(path, model=model, sampling=args.sampling)
        except RecommenderError as e:
            failed += 1
            if args.json:
                out.append({"path": path, "error": str(e)})
            else:
                print(f"error: {display(e)}", file=sys.stderr)
            continue
        task = getattr(model, "task", "classify")
        if args.json:
            d = c.to_json(top=args.top)
            d.update(trained_outputs(model, c))
            if args.timeline:
                d["timeline"] = {
                    "start_s": c.timeline.index.tolist(),
                    "tags": list(c.timeline.columns),
                    "probs": c.timeline.round(5).values.tolist(),
                }
            out.append(d)
        else:
            print(f"{display(path)}  ({c.duration_s:.1f} s, {len(c.timeline)} patches)")
            if c.audio_flag:
                print(f"  {c.audio_flag}: nothing to hear, no tags")
            if task == "regress":  # the outputs are values (a regressor), not probabilities
                for name, v in trained_outputs(model, c)["values"].items():
                    print(f"  {name:<20s} {v:10.4f}")
            else:
                if task == "multilabel":
                    print(f"  labels: {', '.join(trained_outputs(model, c)['labels']) or '(none)'}")
                for tag, p in c.top(args.top):
                    print(f"  {tag:<20s} {p:6.3f}  {'#' * int(round(p * 40))}")
            if args.timeline:
                top = [t for t, _ in c.top(min(args.top, 5))]
                print(c.timeline[top].round(2).to_string())
    if args.json:
        print_json(out)
    return 1 if failed else 0


def trained_outputs(model, c) -> dict:
    """What a trained regressor or multi-label model says of one track (``{}`` for other models):
    ``{"values": {target: value}}`` or ``{"labels": [labels whose probability >= threshold]}``."""
    task = getattr(model, "task", "classify")
    probs = c.tags.reindex(list(model.tags)).to_numpy()
    if task == "regress":
        return {"values": model.named_values(probs)}
    if task == "multilabel":
        return {"labels": [] if c.audio_flag else model.labels_of(probs)}
    return {}


def _jobs_arg(text: str):
    """``--jobs``: ``auto`` or a whole number >= 1."""
    import argparse

    if text.strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'auto' or a whole number >= 1")
    return n


def cmd_index(args) -> int:
    from ..recommender import Recommender

    sampling = "full" if args.full else args.sampling
    if getattr(args, "quality", None):
        from ..analysis.sampling import quality_sampling

        sampling = quality_sampling(args.quality)
    # A PATH that does not exist is a mistyped argument (or a disk not mounted), not a
    # file that failed: said here, left out of the run and of `recommender failures`, and
    # the exit status tells (as cp or ls do); the other paths are indexed.
    missing = [p for p in args.paths if not os.path.lexists(p)]
    for p in missing:
        print(f"recommender index: {display(p)}: no such file or directory", file=sys.stderr)
    paths = [p for p in args.paths if p not in missing]
    if not paths:
        return 2
    rec = Recommender(args.index, model=args.model, sampling=sampling)
    client = args.dask
    rep = rec.update(
        paths,
        jobs=args.jobs,
        progress=not args.no_progress and sys.stderr.isatty() or args.progress,
        retry_failed=args.retry_failed,
        descriptors=not args.no_descriptors,
        include_hidden=args.include_hidden,
        fingerprints=not args.no_fingerprints,
        prune_empty=args.prune_empty,
        client=client,
    )
    if args.json:
        print_json({"index": rec.index_dir, **rep.to_json()})
    else:
        print(f"{display(rec.index_dir)}: {rep}")
        for p, reason in rep.failures[:20]:
            print(f"  failed: {display(p)}: {display(reason)}", file=sys.stderr)
        if len(rep.failures) > 20:
            print(f"  … {len(rep.failures) - 20} more (recommender failures --index {args.index})", file=sys.stderr)
    return 1 if missing else 0


def cmd_similar(args) -> int:
    from ..recommender import Recommender

    rec = Recommender(args.index)
    tempo = tuple(args.tempo) if args.tempo else None
    df = rec.similar(
        query_arg(args.query),
        k=args.k,
        space=args.space,
        hubness=args.hubness,
        exclude_same_artist=args.exclude_same_artist,
        exclude_same_album=args.exclude_same_album,
        max_per_artist=args.max_per_artist,
        tag=args.tag,
        tempo_range=tempo,
        key=args.key,
        explain=args.explain,
        exclusions=exclusions_from_args(args),
        where=args.where,
    )
    if args.sort:
        from ..recommend.query import sort_results

        df = sort_results(rec, df, args.sort)
    rows = records(df)
    written = write_playlist_files(args, rec, rows, title=f"similar to {display(args.query)}")
    if args.json:
        keep = ["rank", "id", "path", "score", "artist", "title", "album", "shared_tags"]
        extra = [c for c in df.columns if c not in keep]
        print_json([{k: r.get(k) for k in keep + extra} for r in rows])
    else:
        import pandas as pd

        why = df.pop("why") if "why" in df.columns else None
        if not len(df):
            print("no track matches" + (f" --where {args.where!r}" if args.where else ""))
        else:
            with pd.option_context("display.max_colwidth", 40, "display.width", 200):
                print(df.drop(columns=["path"]).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        if why is not None:
            for r, w in zip(df["rank"], why):
                print(f"  {r:>2d}. {w}")
        for out in written:
            print(f"wrote {display(out)}")
    return 0


def cmd_info(args) -> int:
    from ..recommender import Recommender

    info = Recommender(args.index).info()
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:>18s}: {v}")
    return 0


def cmd_failures(args) -> int:
    from ..recommender import Recommender

    df = Recommender(args.index).failures()
    if args.json:
        print_json(records(df))
    elif len(df) == 0:
        print("no failures")
    else:
        for r in df.itertuples(index=False):
            print(f"{display(r.path)}: {display(r.reason)}")
    return 0


def cmd_demo(args) -> int:
    import time

    from ..io.demo import make_demo_collection
    from ..recommender import Recommender

    music = args.music or os.path.join(args.index, "music")
    print(f"1/3 writing a synthetic collection to {music} …")
    paths = make_demo_collection(music)
    print(f"    {len(paths)} tracks in 4 styles (ballad, techno, rock, ambient)")
    print(f"2/3 indexing into {args.index} with the pretrained musicnn model …")
    rec = Recommender(args.index)
    t0 = time.perf_counter()
    rep = rec.update([music], progress=sys.stderr.isatty())
    print(f"    {rep}  [{time.perf_counter() - t0:.1f} s]")
    print("3/3 what the network hears, and songs like each one:")
    tracks = rec.tracks()
    hits = total = 0
    for tid, row in tracks.sort_values("path").iterrows():
        c = rec.classify(int(tid))
        style = os.path.basename(os.path.dirname(row["path"]))
        sim = rec.similar(int(tid), k=2)
        styles = [os.path.basename(os.path.dirname(p)) for p in sim["path"]]
        hits += sum(s == style for s in styles)
        total += len(styles)
        tags = ", ".join(f"{t} {p:.2f}" for t, p in c.top(3))
        near = ", ".join(os.path.basename(p) for p in sim["path"])
        print(f"  {os.path.basename(row['path']):<18s} tags: {tags:<45s} similar: {near}")
    print(f"neighbours from the same style: {hits}/{total} ({100 * hits / max(total, 1):.0f}%)")
    print(f"\nnext: recommender similar <ID or FILE> --index {args.index}   |   recommender info --index {args.index}")
    return 0



def add_commands(sub) -> None:
    """Register the core commands on the ``recommender`` sub-parsers."""
    from ..recommender import DEFAULT_INDEX_DIR

    s = sub.add_parser("demo", help="make a small synthetic collection, index it and query it")
    s.add_argument("--index", default=os.path.join("indexes", "demo"))
    s.add_argument("--music", default=None, help="where to write the demo audio (default: INDEX/music)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("classify", help="tag audio files with the pretrained (or your) model")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--top", type=int, default=5, help="tags to show (default 5)")
    s.add_argument("--timeline", action="store_true", help="also show per-patch tags over time")
    s.add_argument("--model", default=None, help="model name or trained model file")
    s.add_argument("--sampling", default=None, help="'full' (default) or 'spread:N'")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_classify)

    s = sub.add_parser("index", help="add files/folders to an index (incremental)")
    s.add_argument("paths", nargs="+", metavar="PATH",
                   help="audio files, folders (walked) or .cue sheets; a PATH that does not exist is "
                        "reported and the others indexed, then the exit status is 1 (2 if none exists)")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR,
                   help=f"index folder (default {DEFAULT_INDEX_DIR}, under the current folder)")
    s.add_argument("--jobs", type=_jobs_arg, default="auto", metavar="auto|N",
                   help="analysis processes (default auto): one process per 2 CPUs this process may use "
                        "(each runs two CNN inferences side by side while threads decode), and only with "
                        "32 files or more per process; N is an upper bound under the same rule, so on "
                        "2 CPUs the analysis always runs in one process (two cost 6-300 %% more CPU time "
                        "on 1,000-10 files)")
    s.add_argument("--model", default=None)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--full", action="store_true", help="analyse whole tracks instead of spread patches")
    g.add_argument("--sampling", default=None, help="'full' or 'spread:N' (default spread:8)")
    g.add_argument("--quality", choices=["fast", "default", "best"], default=None,
                   help="patches per track: fast 4, default 8, best 32 (README 'Index quality')")
    s.add_argument("--retry-failed", action="store_true", help="retry files that failed before")
    s.add_argument("--no-descriptors", action="store_true", help="skip tempo/key/timbre descriptors")
    s.add_argument("--no-fingerprints", action="store_true",
                   help="skip the Chromaprint fingerprints (same-recording detection falls back to "
                        "content hash and embedding)")
    s.add_argument("--prune-empty", action="store_true",
                   help="remove the tracks of a folder found empty (default: keep them; an unmounted disk "
                        "is not a deleted album)")
    s.add_argument("--include-hidden", action="store_true",
                   help="also index hidden files and folders (OS metadata is always skipped)")
    s.add_argument("--dask", default=None, metavar="ADDRESS", help="Dask scheduler address (tcp://host:8786)")
    s.add_argument("--progress", action="store_true", help="force the progress bar")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("similar", help="songs like a track (id, indexed path, or any audio file)")
    s.add_argument("query", metavar="QUERY")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--space", choices=["similarity", "embedding", "tags", "both"], default="similarity")
    s.add_argument("--hubness", choices=["none", "mp", "csls"], default="none",
                   help="re-rank with a hubness correction (default none)")
    s.add_argument("--exclude-same-artist", action="store_true")
    s.add_argument("--exclude-same-album", action="store_true")
    s.add_argument("--max-per-artist", type=int, default=None)
    s.add_argument("--tag", default=None, help="only tracks with this tag among their top 5")
    s.add_argument("--tempo", type=float, nargs=2, metavar=("MIN", "MAX"), default=None)
    s.add_argument("--key", default=None, help="e.g. 'A minor' or 'C'")
    s.add_argument("--where", default=None, metavar="EXPR",
                   help="only tracks whose stored descriptors meet EXPR, e.g. \"energy>0.6 and tempo_bpm<130\" "
                        "(descriptor columns, and the values of a regressor the index was built with)")
    s.add_argument("--sort", default=None, metavar="NAME",
                   help="order the results by a descriptor: NAME (ascending), --sort=-NAME or 'NAME desc' (descending)")
    s.add_argument("--m3u", default=None, metavar="FILE", help="also write the results as an M3U playlist")
    add_playlist_file_args(s)
    s.add_argument("--explain", action="store_true", help="say why each result is close")
    add_exclusion_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_similar)

    s = sub.add_parser("info", help="what an index holds")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("failures", help="files that could not be indexed, with the reason")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_failures)

