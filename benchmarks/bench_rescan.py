"""Incremental re-scan check: Catalog.file_states() vs one SELECT per file.

Builds a catalog of ``--n`` synthetic tracks (200-d embedding + 50-d tags per
track, as a real index holds), then simulates a re-scan of the collection:
``--n`` (path, size, mtime_ns) tuples from walking the disk, of which ~1% were
modified, ~1% are new and ~1% of the catalog's files were deleted.  Each
method classifies every file as new / changed / unchanged and finds deleted
ones; the results must agree.  All timings come from the same run; ratios are
relative to the naive per-file baseline.

Example
-------
    PYTHONPATH=. python benchmarks/bench_rescan.py --n 10000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recommender.store.catalog import Catalog  # noqa: E402


def build_catalog(path, n, seed):
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with Catalog(path, mode="c") as cat:
        with cat.write_batch():
            for i in range(n):
                cat.add_track(
                    {
                        "path": f"/music/artist{i % 300:03d}/album{i % 40:02d}/track{i:06d}.flac",
                        "size": 20_000_000 + i,
                        "mtime_ns": 1_700_000_000_000_000_000 + i * 1000,
                        "content_hash": f"{i:064x}",
                        "analysis_key": "musicnn-msd@abc123|center3",
                        "artist": f"Artist {i % 300}",
                        "title": f"Track {i}",
                    },
                    vectors={
                        "embedding": rng.normal(size=200).astype(np.float32),
                        "tags": rng.random(50).astype(np.float32),
                    },
                )
    return time.perf_counter() - t0


def disk_scan(n, seed):
    """What walking the collection returns: (path, size, mtime_ns)."""
    rng = np.random.default_rng(seed + 1)
    out = []
    deleted = set(rng.choice(n, size=n // 100, replace=False).tolist())
    modified = set(rng.choice(n, size=n // 100, replace=False).tolist()) - deleted
    for i in range(n):
        if i in deleted:
            continue
        size = 20_000_000 + i
        mtime = 1_700_000_000_000_000_000 + i * 1000
        if i in modified:
            mtime += 10**9
        out.append((f"/music/artist{i % 300:03d}/album{i % 40:02d}/track{i:06d}.flac", size, mtime))
    for j in range(n // 100):
        out.append((f"/music/new/track{j:06d}.flac", 1000 + j, 5))
    return out


def classify_bulk(cat, scan):
    states = cat.file_states()
    new, changed, unchanged = [], [], []
    for path, size, mtime in scan:
        st = states.get(path)
        if st is None:
            new.append(path)
        elif st[1] != size or st[2] != mtime:
            changed.append(path)
        else:
            unchanged.append(path)
    seen = {p for p, _, _ in scan}
    deleted = [p for p in states if p not in seen]
    return new, changed, unchanged, deleted


def classify_naive(cat, scan):
    """Baseline: one SELECT per file through the public API, plus a listing for deletions."""
    new, changed, unchanged = [], [], []
    for path, size, mtime in scan:
        row = cat.track_by_path(path)
        if row is None:
            new.append(path)
        elif row["size"] != size or row["mtime_ns"] != mtime:
            changed.append(path)
        else:
            unchanged.append(path)
    seen = {p for p, _, _ in scan}
    deleted = [p for p in cat.tracks(columns=["path"])["path"] if p not in seen]
    return new, changed, unchanged, deleted


def classify_naive_sql(cat, scan):
    """Baseline: one raw ``SELECT size, mtime_ns ... WHERE path=?`` per file."""
    conn = cat._c()  # benchmark only: bypass the API to time bare SQLite lookups
    new, changed, unchanged = [], [], []
    for path, size, mtime in scan:
        row = conn.execute("SELECT size, mtime_ns FROM tracks WHERE path=?", (path,)).fetchone()
        if row is None:
            new.append(path)
        elif row[0] != size or row[1] != mtime:
            changed.append(path)
        else:
            unchanged.append(path)
    seen = {p for p, _, _ in scan}
    deleted = [r[0] for r in conn.execute("SELECT path FROM tracks") if r[0] not in seen]
    return new, changed, unchanged, deleted


def timeit(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="tracks in the catalog")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default=None, help="where to put the temporary catalog")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "catalog.sqlite")
        build_s = build_catalog(path, args.n, args.seed)
        size_mib = os.path.getsize(path) / 2**20
        scan = disk_scan(args.n, args.seed)
        print(
            f"catalog: {args.n:,} tracks built in {build_s:.2f} s ({args.n / build_s:,.0f} tracks/s, "
            f"one write_batch), {size_mib:.1f} MiB; scan: {len(scan):,} files"
        )
        with Catalog(path, mode="r") as cat:
            rows = []
            for label, fn in (
                ("naive: track_by_path per file (baseline)", classify_naive),
                ("naive: raw SELECT per file", classify_naive_sql),
                ("file_states() + dict lookups", classify_bulk),
            ):
                med, best, res = timeit(lambda: fn(cat, scan), args.repeat)
                rows.append((label, med, best, res))
            t_fs, _, states = timeit(cat.file_states, args.repeat)
        ref = rows[0][3]
        for label, _, _, res in rows[1:]:
            if [sorted(x) for x in res] != [sorted(x) for x in ref]:
                raise SystemExit(f"{label}: results disagree with the baseline")
        new, changed, unchanged, deleted = ref
        print(
            f"classification: {len(new)} new, {len(changed)} changed, {len(unchanged)} unchanged, "
            f"{len(deleted)} deleted (all methods agree)\n"
        )
        base = rows[0][1]
        hdr = f"{'method':<42} {'median ms':>10} {'best ms':>9} {'speedup':>8}"
        print(hdr)
        print("-" * len(hdr))
        for label, med, best, _ in rows:
            print(f"{label:<42} {med * 1e3:>10.1f} {best * 1e3:>9.1f} {base / med:>7.1f}x")
        print(f"\n(file_states() alone: {t_fs * 1e3:.1f} ms for {len(states):,} rows)")


if __name__ == "__main__":
    main()
