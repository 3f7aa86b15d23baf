"""Single-query latency and recall of VectorIndex vs scikit-learn brute force.

Synthetic data: ``--clusters`` Gaussian clusters on the unit sphere in
``--dim`` dimensions; inside each cluster the points spread along a random
``--intrinsic``-dimensional subspace (std 0.6/sqrt(d) per axis... see
``clustered``) plus small isotropic noise, which mimics the low intrinsic
dimension of learned audio embeddings.  ``--intrinsic 200`` gives isotropic
clusters (a worst case for every approximate index).  Queries are held-out
points of the same distribution.

Everything is measured in the same run; ratios are against scikit-learn's
``NearestNeighbors(metric='cosine', algorithm='brute')``.

Examples
--------
    PYTHONPATH=. python benchmarks/bench_query.py                 # 10k and 100k
    PYTHONPATH=. python benchmarks/bench_query.py --million        # + 1M x 200-d
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recommender.store.faiss_index import VectorIndex, choose_index  # noqa: E402


def clustered(n, d, *, n_clusters, intrinsic, seed, chunk=50_000):
    """``n`` float32 vectors in ``n_clusters`` low-intrinsic-dimension clusters."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    r = min(intrinsic, d)
    basis = (rng.normal(size=(n_clusters, r, d)) / np.sqrt(d)).astype(np.float32)
    X = np.empty((n, d), dtype=np.float32)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        lab = rng.integers(n_clusters, size=m)
        z = (rng.normal(size=(m, r)) * 0.6).astype(np.float32)
        X[i : i + m] = centers[lab] + np.einsum("nr,nrd->nd", z, basis[lab]) + (
            rng.normal(size=(m, d)).astype(np.float32) * 0.02
        )
    return X


def exact_topk(X, Q, k, chunk=200_000):
    """Exact cosine top-k (row indices) by chunked matrix products."""
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    best_s = np.full((len(Q), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(Q), k), -1, dtype=np.int64)
    for i in range(0, len(X), chunk):
        B = X[i : i + chunk]
        S = Qn @ (B / np.linalg.norm(B, axis=1, keepdims=True)).T
        cand_s = np.concatenate([best_s, S], axis=1)
        cand_i = np.concatenate([best_i, np.arange(i, i + len(B))[None, :].repeat(len(Q), 0)], axis=1)
        top = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, top, axis=1)
        best_i = np.take_along_axis(cand_i, top, axis=1)
    return best_i


def recall_at(I, ref):
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(I, ref)]))


def latencies(fn, Q, warmup=20):
    for q in Q[:warmup]:
        fn(q)
    t = np.empty(len(Q))
    for j, q in enumerate(Q):
        t0 = time.perf_counter()
        fn(q)
        t[j] = time.perf_counter() - t0
    return np.percentile(t, 50) * 1e3, np.percentile(t, 99) * 1e3


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_size(n, args, rng_seed):
    d, k = args.dim, args.k
    X = clustered(n + args.queries, d, n_clusters=args.clusters, intrinsic=args.intrinsic, seed=rng_seed)
    X, Q = X[:n], X[n:]
    ids = np.arange(n, dtype=np.int64)
    ref = exact_topk(X, Q[: args.recall_queries], k)
    rows = []

    from sklearn.neighbors import NearestNeighbors

    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(X)
    build = time.perf_counter() - t0
    p50, p99 = latencies(lambda q: nn.kneighbors(q[None, :], k), Q)
    I = nn.kneighbors(Q[: args.recall_queries], k, return_distance=False)
    rows.append(("sklearn brute (baseline)", n, build, p50, p99, recall_at(I, ref)))
    nn = None

    for label, kind in ((f"VectorIndex auto ({choose_index(n, d)})", "auto"), ("VectorIndex flat", "flat")):
        if kind == "flat" and choose_index(n, d) == "flat":
            continue  # same as auto
        t0 = time.perf_counter()
        index = VectorIndex.build(ids, X, kind=kind)
        build = time.perf_counter() - t0
        p50, p99 = latencies(lambda q: index.search(q, k), Q)
        _, I = index.search(Q[: args.recall_queries], k)
        rows.append((label, n, build, p50, p99, recall_at(I, ref)))
        index = None
        gc.collect()
    return rows


def print_table(rows, title):
    base = {r[1]: r for r in rows if "baseline" in r[0]}
    print(f"\n{title}")
    hdr = f"{'method':<30} {'n':>9} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>9} {'p50 speedup':>11}"
    print(hdr)
    print("-" * len(hdr))
    for name, n, build, p50, p99, rec in rows:
        b = base.get(n)
        ratio = f"{b[3] / p50:10.1f}x" if b else "        -"
        print(f"{name:<30} {n:>9,} {build:>8.2f} {p50:>8.3f} {p99:>8.3f} {rec:>9.3f} {ratio:>11}")


def run_million(args):
    n, d, k = args.million_n, args.dim, args.k
    print(f"\n== {n:,} x {d}-d: generating data ...", flush=True)
    rss0 = maxrss_mib()
    X = clustered(n + args.queries, d, n_clusters=args.clusters, intrinsic=args.intrinsic, seed=args.seed + 7)
    X, Q = X[:n], X[n:]
    rss_data = maxrss_mib()
    ids = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    ref = exact_topk(X, Q[: args.recall_queries], k)
    exact_s = time.perf_counter() - t0
    print(
        f"data: {X.nbytes / 2**20:.0f} MiB (peak RSS {rss_data:.0f} MiB, was {rss0:.0f}); "
        f"exact top-{k} for {args.recall_queries} queries (numpy brute force) {exact_s:.1f} s "
        f"= {exact_s / args.recall_queries * 1e3:.1f} ms/query",
        flush=True,
    )
    rows = []
    for kind in args.million_kinds:
        gc.collect()
        t0 = time.perf_counter()
        index = VectorIndex.build(ids, X, kind=kind)
        build = time.perf_counter() - t0
        rss = maxrss_mib()
        print(f"built {index!r} params={index.params} in {build:.1f} s; peak RSS {rss:.0f} MiB", flush=True)
        sweep = []
        if index.kind == "hnsw":
            sweep = [("ef_search", v) for v in args.ef_sweep]
        elif index.kind == "ivfpq":
            sweep = [("nprobe", v) for v in args.nprobe_sweep]
        default = dict(index.params)
        for name, value in sweep + [(None, None)]:
            if name:
                index.set_search_params(**{name: value})
                label = f"{index.kind} {name}={value}"
            else:
                restore = {kk: default[kk] for kk in ("ef_search", "nprobe") if kk in default}
                if restore:
                    index.set_search_params(**restore)
                label = f"{index.kind} default {restore or ''}"
            p50, p99 = latencies(lambda q: index.search(q, k), Q)
            _, I = index.search(Q[: args.recall_queries], k)
            rec = recall_at(I, ref)
            rows.append((label, build, p50, p99, rec, rss))
            print(f"  {label:<34} p50 {p50:.3f} ms  p99 {p99:.3f} ms  recall@10 {rec:.3f}", flush=True)
        index = None
    exact_ms = exact_s / args.recall_queries * 1e3
    print(f"\n1M summary ({n:,} x {d}, {args.clusters} clusters, intrinsic dim {args.intrinsic}, 2-core box)")
    hdr = f"{'config':<36} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>9} {'peak RSS MiB':>12} {'vs exact':>9}"
    print(hdr)
    print("-" * len(hdr))
    for label, build, p50, p99, rec, rss in rows:
        print(f"{label:<36} {build:>8.1f} {p50:>8.3f} {p99:>8.3f} {rec:>9.3f} {rss:>12.0f} {exact_ms / p50:>8.0f}x")
    print(f"(exact brute force baseline: {exact_ms:.1f} ms/query amortised over a batch of {args.recall_queries})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=200)
    ap.add_argument("--clusters", type=int, default=500)
    ap.add_argument("--intrinsic", type=int, default=16, help="intrinsic dimension inside a cluster")
    ap.add_argument("--queries", type=int, default=1000, help="single queries timed")
    ap.add_argument("--recall-queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--million", action="store_true", help="also run the 1M x 200-d build/latency/recall test")
    ap.add_argument("--million-n", type=int, default=1_000_000)
    ap.add_argument("--million-kinds", nargs="+", default=["auto"], choices=["auto", "hnsw", "ivfpq", "flat"])
    ap.add_argument("--ef-sweep", type=int, nargs="*", default=[32, 64, 96, 256])
    ap.add_argument("--nprobe-sweep", type=int, nargs="*", default=[8, 16, 32, 64])
    ap.add_argument("--skip-small", action="store_true")
    args = ap.parse_args(argv)
    import faiss

    print(f"faiss {faiss.__version__}, OpenMP threads {faiss.omp_get_max_threads()}, CPUs {os.cpu_count()}")
    if not args.skip_small:
        rows = []
        for i, n in enumerate(args.sizes):
            rows += run_size(n, args, args.seed + i)
        print_table(rows, f"single-query latency, {args.dim}-d, {args.clusters} clusters, k={args.k}")
    if args.million:
        run_million(args)


if __name__ == "__main__":
    main()
