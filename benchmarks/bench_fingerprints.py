"""Chromaprint fingerprints while indexing: one ``fpcalc`` per file vs several files per ``fpcalc`` (issue #20).

``recommender index`` fingerprints the first 30 s of every file
(``FINGERPRINT_LENGTH_S``) with ``fpcalc``.  Starting fpcalc loads FFmpeg's
shared libraries, which costs more CPU than fingerprinting 30 s of audio, so
:func:`recommender.io.fingerprint.fingerprint_files` gives fpcalc several
files per process (:data:`~recommender.io.fingerprint.FPCALC_BATCH`).  This
measures, on the same files in the same run (rounds alternated, best of
``--rounds``), the CPU time of the fpcalc processes (user + system, from
``RUSAGE_CHILDREN``) and the wall time for:

* ``1 per process``: :func:`~recommender.io.fingerprint.fingerprint_file` on
  each file (what indexing did before);
* ``N per process`` for each ``--batches`` size: ``fingerprint_files(batch=N)``;

and checks that every batch size gives the same items and durations as one
file per process (or the same error).

Usage::

    python benchmarks/bench_fingerprints.py [--devset /tmp/devset] [--limit 0] [--length 30]
                                            [--rounds 3] [--batches 4 8 16 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import audio_files, children_cpu


def one_per_process(paths, length):
    from recommender.errors import AudioError
    from recommender.io import fingerprint as F

    out = []
    for p in paths:
        try:
            out.append(F.fingerprint_file(p, max_length_s=length))
        except AudioError as e:
            out.append(e)
    return out


def batched(paths, length, batch):
    from recommender.io import fingerprint as F

    return [res for _, res in F.fingerprint_files(paths, max_length_s=length, batch=batch)]


def _same(a, b) -> bool:
    if isinstance(a, Exception) or isinstance(b, Exception):
        return type(a) is type(b) and str(a) == str(b)
    return np.array_equal(a.items, b.items) and a.duration_s == b.duration_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", default="/tmp/devset")
    ap.add_argument("--limit", type=int, default=0, help="first N files (0: all)")
    ap.add_argument("--length", type=float, default=30.0, help="seconds fingerprinted (indexing: 30)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[4, 8, 16, 32])
    args = ap.parse_args(argv)
    from recommender.io import fingerprint as F

    if not F.fingerprint_available():
        sys.exit("fpcalc not found (apt install libchromaprint-tools)")
    paths = audio_files(args.devset, args.limit or None)
    if not paths:
        sys.exit(f"no audio files under {args.devset}")
    variants = [("1 per process", lambda: one_per_process(paths, args.length))]
    variants += [(f"{b} per process", (lambda b=b: batched(paths, args.length, b))) for b in args.batches]
    best = {name: (float("inf"), float("inf")) for name, _ in variants}
    results = {}
    for _ in range(args.rounds):
        for name, run in variants:
            c0, t0 = children_cpu(), time.perf_counter()
            results[name] = run()
            cpu, wall = children_cpu() - c0, time.perf_counter() - t0
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    ref = results["1 per process"]
    print(f"{len(paths)} files of {args.devset}, first {args.length:g} s each; best of {args.rounds} "
          f"alternated rounds; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    base_cpu = best["1 per process"][0]
    for name, _ in variants:
        cpu, wall = best[name]
        same = sum(_same(a, b) for a, b in zip(results[name], ref))
        print(f"  {name:16s} fpcalc CPU {cpu:6.2f} s ({1000 * cpu / len(paths):5.1f} ms/file)  "
              f"wall {wall:6.2f} s  {base_cpu / cpu:4.2f}x less CPU than 1 per process  "
              f"same result {same}/{len(paths)}")


if __name__ == "__main__":
    main()
