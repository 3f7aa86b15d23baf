"""Indexing throughput: tracks/min and real-time factor with 1 and 2 jobs,
and the time of an unchanged re-scan, in one run on the same files.

Usage::

    python benchmarks/bench_index.py [--music DIR] [--limit N] [--sampling spread:16|full]
                                     [--no-descriptors]

Without ``--music`` a synthetic collection (12 × 60 s) is written to a
temporary folder.  Each configuration builds a fresh index in a temporary
directory.  The first configuration (jobs=1) is the baseline for the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import audio_files, synthetic_collection  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--music", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--sampling", default=None, help="default: the library default")
    ap.add_argument("--no-descriptors", action="store_true")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    from recommender.io import audio
    from recommender.recommender import Recommender

    if args.music:
        files = audio_files(args.music, args.limit)
    else:
        files = synthetic_collection(tempfile.mkdtemp(prefix="bench-index-"), per_style=3, duration_s=60.0)
        files = files[: args.limit]
    total_s = sum(audio.info(f).duration_s for f in files)
    # index the files through a folder of links so the walker sees exactly them
    src = tempfile.mkdtemp(prefix="bench-index-src-")
    for i, f in enumerate(files):
        os.symlink(os.path.abspath(f), os.path.join(src, f"{i:05d}_{os.path.basename(f)}"))
    print(f"{len(files)} files, {total_s / 3600:.2f} h of audio, {os.cpu_count()} cores, "
          f"sampling={args.sampling or 'default'}, descriptors={'off' if args.no_descriptors else 'on'}")
    print(f"{'configuration':<26s}{'seconds':>9s}{'tracks/min':>12s}{'x real time':>13s}{'vs jobs=1':>11s}")
    base = None
    for jobs in args.jobs:
        idx = tempfile.mkdtemp(prefix=f"bench-index-j{jobs}-")
        rec = Recommender(idx, sampling=args.sampling)
        _ = rec.model  # load the model outside the timing (the CLI loads it once too)
        t0 = time.perf_counter()
        rep = rec.update([src], jobs=jobs, progress=False, descriptors=not args.no_descriptors)
        t = time.perf_counter() - t0
        base = base or t
        print(f"{'index, jobs=' + str(jobs):<26s}{t:>9.2f}{60 * rep.added / t:>12.1f}{total_s / t:>13.0f}{base / t:>10.2f}x"
              + (f"  ({rep.failed} failed)" if rep.failed else ""))
        if jobs == args.jobs[0]:
            t0 = time.perf_counter()
            rep2 = rec.update([src], jobs=jobs, progress=False)
            t2 = time.perf_counter() - t0
            print(f"{'re-scan, unchanged':<26s}{t2:>9.2f}{'':>12s}{total_s / t2:>13.0f}{base / t2:>10.0f}x"
                  f"  ({rep2.unchanged} unchanged)")


if __name__ == "__main__":
    main()
