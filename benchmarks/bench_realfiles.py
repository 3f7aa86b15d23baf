"""Real-world oddities: what indexing does with each kind (issue #16).

Builds the regression corpus of ``tests/oddities.py`` (~70 files: the handed
cases' recipes and more of the same kinds), optionally mixed into a folder
of normal synthetic songs (``--n 1000``: 1,000 files, ~7 % of them
oddities), indexes it into a fresh index, and prints, per oddity, what was
expected and what happened (indexed with its duration and flag / the
failure's reason / skipped), a summary per kind, the wall time of the first
run and of a re-run (and their ratio, same process), and whether anything
printed a traceback (log records and file descriptor 2 are captured).

Exit status 1 when an oddity's outcome is wrong, a traceback was seen, a
failure reason is not plain language, or the re-run changed anything.

Usage::

    python benchmarks/bench_realfiles.py                      # the corpus only
    python benchmarks/bench_realfiles.py --n 1000 --dir /tmp/real1000
    python benchmarks/bench_realfiles.py --verify-truth       # also check every expected length with ffmpeg
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

import oddities as odd  # noqa: E402


def write_normal_songs(folder, n, *, duration_s, seed=0):
    """``n`` normal songs (demo synthesiser, 4 styles; FLAC, Ogg Vorbis and MP3 in turn)
    under ``folder/<style>/``; returns their paths.  Existing files are kept."""
    import soundfile as sf

    from recommender.io.demo import SR, STYLES, synth_track

    kinds = [("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")]
    paths = []
    for i in range(n):
        style = STYLES[i % len(STYLES)]
        ext, fmt, sub = kinds[i % len(kinds)]
        p = os.path.join(folder, style, f"song {i:04d}.{ext}")
        paths.append(p)
        if os.path.exists(p):
            continue
        os.makedirs(os.path.dirname(p), exist_ok=True)
        sf.write(p, synth_track(style, seed=seed + i, duration_s=duration_s), SR, format=fmt, subtype=sub)
    return paths


def build(args):
    """(built, left_out, root, normal paths, seconds to build)."""
    t0 = time.perf_counter()
    dest = args.dir
    corpus_done = os.path.join(dest, ".corpus.json")
    if args.fresh and os.path.isdir(dest):
        shutil.rmtree(dest)
    if os.path.exists(corpus_done):  # reuse: rebuild only the Built records (durations from the JSON)
        with open(corpus_done) as f:
            saved = json.load(f)
        built = []
        for o in odd.oddities():
            if o.name in saved["durations"]:
                p = (os.fsdecode(os.path.join(os.fsencode(saved["root"]), o.rel)) if isinstance(o.rel, bytes)
                     else os.path.join(saved["root"], o.rel))
                built.append(odd.Built(o, p, saved["durations"][o.name]))
        left_out = saved["left_out"]
    else:
        os.makedirs(dest, exist_ok=True)
        built, left_out = odd.build_corpus(dest)
        with open(corpus_done, "w") as f:
            json.dump({"root": os.path.join(dest, "music"), "left_out": left_out,
                       "durations": {b.name: b.duration_s for b in built}}, f)
    root = os.path.join(dest, "music")
    normal = []
    if args.n:
        n_normal = max(0, args.n - len(built))
        normal = write_normal_songs(os.path.join(root, "normal songs"), n_normal, duration_s=args.song_s)
    return built, left_out, root, normal, time.perf_counter() - t0


def verify_truth(built):
    """Expected lengths against a full ffmpeg decode: lines of disagreement."""
    bad = []
    for b in built:
        if b.expect.kind in ("indexed", "flagged") and b.duration_s is not None:
            try:
                t = odd.true_duration(b.path)
            except RuntimeError as e:
                bad.append(f"{b.name}: {e}")
                continue
            if abs(t - b.duration_s) > odd.tolerance(b.duration_s):
                bad.append(f"{b.name}: expected {b.duration_s:.3f} s, ffmpeg decodes {t:.3f} s")
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=0, help="total files in the folder (0: the corpus alone)")
    ap.add_argument("--dir", default="/tmp/bench_realfiles", help="where to build (reused if built before)")
    ap.add_argument("--fresh", action="store_true", help="rebuild the folder from scratch")
    ap.add_argument("--song-s", type=float, default=6.0, help="length of each normal song (s)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes for indexing")
    ap.add_argument("--verify-truth", action="store_true", help="check every expected length with ffmpeg")
    ap.add_argument("--json", default=None, metavar="OUT", help="also write the results as JSON")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from recommender import Recommender

    built, left_out, root, normal, t_build = build(args)
    n_files = len(built) + len(normal)
    n_odd = sum(1 for b in built if b.oddity.kind != "control")
    print(f"folder {root}: {n_files} files, {n_odd} oddities ({100 * n_odd / max(1, n_files):.1f} %), "
          f"{len(normal)} normal songs of {args.song_s:g} s; built in {t_build:.1f} s")
    for name, why in left_out.items():
        print(f"  left out {name}: {why}")
    if args.verify_truth:
        bad = verify_truth(built)
        print("expected lengths vs ffmpeg decode:", "all agree" if not bad else f"{len(bad)} disagree")
        for line in bad:
            print("  " + line)

    index_dir = os.path.join(args.dir, "index")
    shutil.rmtree(index_dir, ignore_errors=True)
    rec = Recommender(index_dir)
    with odd.capture_stderr_and_logs() as cap1:
        t0 = time.perf_counter()
        first = rec.update([root], jobs=args.jobs, progress=False)
        t_first = time.perf_counter() - t0
    with odd.capture_stderr_and_logs() as cap2:
        t0 = time.perf_counter()
        second = rec.update([root], jobs=args.jobs, progress=False)
        t_second = time.perf_counter() - t0
    obs = odd.observe(rec)

    # ---- per oddity
    rows, by_kind = [], collections.defaultdict(lambda: [0, 0])
    print(f"\n{'kind':<30} {'oddity':<30} {'expected':<26} {'what happened'}")
    for b in built:
        problems = odd.check(b, obs, built)
        happened = odd.outcome(b, obs)
        ok = not problems
        by_kind[b.oddity.kind][0] += 1
        by_kind[b.oddity.kind][1] += ok
        exp = str(b.expect)
        if b.duration_s not in (None, odd.DECODED) and b.expect.kind in ("indexed", "flagged"):
            exp = f"indexed {b.duration_s:.2f} s" + (f", {b.expect.flag}" if b.expect.flag else "")
        exp = exp if len(exp) <= 26 else exp[:23] + "..."
        print(f"{b.oddity.kind:<30} {b.name:<30} {exp:<26} {happened[:110]}" + ("" if ok else "   <-- WRONG"))
        for p in problems:
            print(f"{'':<62}! {p[:150]}")
        rows.append({"name": b.name, "kind": b.oddity.kind, "case": b.oddity.case, "expected": str(b.expect),
                     "happened": happened, "ok": ok, "problems": problems})

    # ---- normal songs, failures, tracebacks, re-run
    normal_fail = [p for p in normal if p in obs.failures]
    normal_missing = [p for p in normal if p not in obs.by_path and p not in obs.failures]
    unplain = [(p, pr) for p, r in obs.failures.items() for pr in odd.plain_reason_problems(r)]
    tbs = odd.tracebacks(cap1) + odd.tracebacks(cap2)
    changed = (second.added, second.updated, second.moved, second.removed, second.failed) != (0, 0, 0, 0, 0)
    stderr_lines = [ln for ln in cap1["stderr"].splitlines() if ln.strip()]
    warn = collections.Counter(r.name for r in cap1["records"] if r.levelno >= 30)

    print("\nper kind (right / oddities):")
    for kind, (n, k) in sorted(by_kind.items()):
        print(f"  {kind:<32} {k}/{n}" + ("" if k == n else "   <-- WRONG"))
    print(f"\nnormal songs: {len(normal)} ({len(normal) - len(normal_fail) - len(normal_missing)} indexed, "
          f"{len(normal_fail)} failed, {len(normal_missing)} missing)")
    print(f"first run : {first}")
    print(f"            wall {t_first:.1f} s for {n_files} files ({1000 * t_first / max(1, n_files):.0f} ms a file)")
    print(f"re-run    : {second}")
    print(f"            wall {t_second:.2f} s = {t_second / max(t_first, 1e-9):.4f} x the first run"
          + ("   <-- CHANGED SOMETHING" if changed else ""))
    print(f"failures  : {len(obs.failures)}, not plain: {len(unplain)}")
    for p, pr in unplain:
        print(f"  {p!r}: {pr[:160]}")
    print(f"tracebacks: {len(tbs)}" + "".join("\n  " + t[:300] for t in tbs))
    print(f"stderr    : {len(stderr_lines)} lines (C libraries and warnings); warnings logged by "
          + (", ".join(f"{k} {v}" for k, v in warn.most_common()) or "nobody"))
    for ln in list(dict.fromkeys(stderr_lines))[:8]:
        print("  " + ln[:160])

    wrong = [r["name"] for r in rows if not r["ok"]]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"files": n_files, "oddities": rows, "first_s": t_first, "rerun_s": t_second,
                       "rerun_ratio": t_second / max(t_first, 1e-9), "first": first.to_json(),
                       "rerun": second.to_json(), "tracebacks": tbs,
                       "unplain": [[p, pr] for p, pr in unplain], "normal_failed": normal_fail}, f, indent=1,
                      default=str)
    print(f"\nverdict: {len(rows) - len(wrong)}/{len(rows)} oddities right"
          + (f"; wrong: {', '.join(wrong)}" if wrong else ""))
    rec.close()
    return 1 if (wrong or tbs or unplain or changed or normal_fail or normal_missing) else 0


if __name__ == "__main__":
    sys.exit(main())
