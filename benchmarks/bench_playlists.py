"""Playlists and hubness on a labelled collection (label = parent folder name).

Prints, for an existing index:

1. precision@k by label (share of each track's top-k neighbours from the same
   folder), plain cosine against CSLS and Mutual Proximity re-ranking;
2. hub statistics before/after (skewness of k-occurrence, anti-hub share,
   hub share, max k-occurrence);
3. radios: how many distinct tracks the radios of all tracks reach (coverage)
   and how many come from the seed's label, per correction;
4. A->B paths: mean step distance of the DP ('graph') and 'interpolate' paths
   against a random ordering of the same tracks, the same tracks sorted by
   similarity to A, and A's nearest neighbours followed by B.

Usage::

    python benchmarks/bench_playlists.py --index /tmp/devset-index [--k 10] [--pairs 60] [--n 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recommender import Recommender  # noqa: E402
from recommender.recommend import hubness as hub, view  # noqa: E402
from recommender.recommend import playlists as pl  # noqa: E402


def labels_of(rec, ids):
    tr = rec.tracks()
    lab = {int(i): os.path.basename(os.path.dirname(p)) for i, p in tr["path"].items()}
    return np.array([lab[int(i)] for i in ids])


def precision_by_label(rec, k, space, hubness):
    ids, N, _ = hub.knn(rec, k, space=space, hubness=hubness)
    lab = labels_of(rec, ids)
    pos = {int(t): i for i, t in enumerate(ids)}
    hits = np.array([
        np.mean([lab[pos[int(t)]] == lab[i] for t in N[i] if t >= 0]) if (N[i] >= 0).any() else np.nan
        for i in range(len(ids))
    ])
    per = pd.Series(hits).groupby(lab).mean()
    return float(np.nanmean(hits)), float(per.mean()), per


def radio_stats(rec, n, space, hubness):
    ids, _ = view.vectors(rec, space)
    lab = dict(zip(ids.tolist(), labels_of(rec, ids)))
    seen = {}
    same = []
    t0 = time.perf_counter()
    for t in ids.tolist():
        df = pl.radio(rec, [t], n=n, space=space, hubness=hubness)
        for x in df["id"]:
            seen[x] = seen.get(x, 0) + 1
        same.append(np.mean([lab[x] == lab[t] for x in df["id"]]))
    dt = (time.perf_counter() - t0) / len(ids)
    counts = np.array([seen.get(t, 0) for t in ids.tolist()])
    return {
        "coverage": float((counts > 0).mean()),
        "max_plays": int(counts.max()),
        "same_label": float(np.mean(same)),
        "ms_per_radio": 1000 * dt,
    }


def path_stats(rec, pairs, n, space):
    rows = {k: [] for k in ("graph", "graph_nopolish", "interpolate", "interpolate_nopolish",
                            "random_order", "sorted_by_similarity", "knn_of_A")}
    maxes = {k: [] for k in rows}
    rng = np.random.default_rng(0)
    ids, X = view.vectors(rec, space)
    pos = {int(t): i for i, t in enumerate(ids)}
    timing = {"graph": 0.0, "interpolate": 0.0}

    def steps(seq):
        V = X[[pos[int(t)] for t in seq]]
        return 1.0 - np.sum(V[1:] * V[:-1], axis=1)

    for a, b in pairs:
        for method in ("graph", "interpolate"):
            for polish in (True, False):
                t0 = time.perf_counter()
                df = pl.path_between(rec, a, b, n=n, space=space, method=method, polish=polish)
                if polish:
                    timing[method] += time.perf_counter() - t0
                key = method if polish else method + "_nopolish"
                s = df["distance_from_previous"].to_numpy()[1:]
                rows[key].append(s.mean())
                maxes[key].append(s.max())
                if method == "graph" and polish:
                    inner = df["id"].tolist()[1:-1]
        shuffled = list(rng.permutation(inner))
        s = steps([a] + shuffled + [b])
        rows["random_order"].append(s.mean())
        maxes["random_order"].append(s.max())
        va = X[pos[a]]
        by_sim = sorted(inner, key=lambda t: -float(X[pos[int(t)]] @ va))
        s = steps([a] + by_sim + [b])
        rows["sorted_by_similarity"].append(s.mean())
        maxes["sorted_by_similarity"].append(s.max())
        S, I = rec.faiss_index(space).search(va[None], n + 2)
        nn = [int(t) for t in I[0] if t >= 0 and int(t) not in (a, b)][: n - 2]
        s = steps([a] + nn + [b])
        rows["knn_of_A"].append(s.mean())
        maxes["knn_of_A"].append(s.max())
    base = np.mean(rows["graph"])
    out = pd.DataFrame({
        "mean_step": {k: np.mean(v) for k, v in rows.items()},
        "mean_max_step": {k: np.mean(v) for k, v in maxes.items()},
    })
    out["ratio_to_graph"] = out["mean_step"] / base
    ab = [1.0 - float(X[pos[a]] @ X[pos[b]]) for a, b in pairs]
    return out, float(np.mean(ab)), {k: 1000 * v / len(pairs) for k, v in timing.items()}


def synthetic_index(folder, n, *, d=200, n_labels=20, separation=0.18, seed=0):
    """An index of ``n`` synthetic vectors in ``n_labels`` clusters (non-negative, decaying
    spectrum, common offset: hubby like CNN embeddings); label = folder in the path."""
    from recommender.store.catalog import Catalog

    rng = np.random.default_rng(seed)
    lab = rng.integers(0, n_labels, n)
    centres = rng.normal(size=(n_labels, d))
    X = separation * centres[lab] + rng.normal(size=(n, d)) * (3.0 / np.sqrt(1 + np.arange(d))) + 0.5
    X = np.maximum(X, 0).astype(np.float32)
    T = rng.random((n, 50)).astype(np.float32)
    os.makedirs(folder, exist_ok=True)
    rec = Recommender(folder)
    with Catalog(rec.catalog_path, mode="c") as cat:
        cat.set_meta(tags=[f"tag{i}" for i in range(50)])
        with cat.write_batch():
            for i in range(n):
                cat.add_track({"path": f"/synthetic/label{lab[i]:02d}/{i}.mp3", "content_hash": f"h{i}"},
                              vectors={"embedding": X[i], "tags": T[i]})
        rec.rebuild_indexes(catalog=cat)
    return Recommender(folder)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n", type=int, default=10, help="path length (A and B included)")
    ap.add_argument("--radio-n", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=60, help="random A->B pairs")
    ap.add_argument("--spaces", default="embedding,tags,both")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="also measure precision and hubness on N synthetic clustered vectors")
    args = ap.parse_args(argv)

    if args.synthetic:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            srec = synthetic_index(os.path.join(tmp, "index"), args.synthetic)
            print(f"=== synthetic: {args.synthetic} vectors, 200-d, 20 clusters ===")
            prec = {("none" if m is None else m): precision_by_label(srec, args.k, "embedding", m)[:2]
                    for m in (None, "csls", "mp")}
            print(pd.DataFrame(prec, index=["P@k (tracks)", "P@k (labels)"]).round(3).to_string())
            t0 = time.perf_counter()
            print(hub.hubness_report(srec, k=args.k).round(3).to_string())
            print(f"[hubness report {time.perf_counter() - t0:.1f} s]\n")
            srec.close()

    rec = Recommender(args.index)
    ids = rec.catalog.ids()
    lab = labels_of(rec, ids)
    print(f"index {rec.index_dir}: {len(ids)} tracks, labels "
          + ", ".join(f"{k} {v}" for k, v in pd.Series(lab).value_counts().items()))
    methods = (None, "csls", "mp")
    for space in args.spaces.split(","):
        print(f"\n=== space {space!r} ===")
        t0 = time.perf_counter()
        prec = {}
        for m in methods:
            micro, macro, per = precision_by_label(rec, args.k, space, m)
            prec["none" if m is None else m] = {"P@k (tracks)": micro, "P@k (labels)": macro,
                                                **{f"  {k}": v for k, v in per.items()}}
        print(f"precision@{args.k} by label (same parent folder):")
        print(pd.DataFrame(prec).round(3).to_string())
        print(f"\nhub statistics (k={args.k}):")
        print(hub.hubness_report(rec, k=args.k, space=space).round(3).to_string())
        print(f"\nradios of {args.radio_n} tracks seeded by every track:")
        print(pd.DataFrame({("none" if m is None else m): radio_stats(rec, args.radio_n, space, m)
                            for m in methods}).T.round(3).to_string())
        print(f"[{time.perf_counter() - t0:.1f} s]")

    space = "embedding"
    rng = np.random.default_rng(1)
    pairs = []
    while len(pairs) < args.pairs:
        a, b = (int(x) for x in rng.choice(ids, 2, replace=False))
        pairs.append((a, b))
    table, ab, ms = path_stats(rec, pairs, args.n, space)
    print(f"\n=== A->B paths: {args.pairs} random pairs, n={args.n}, space {space!r} "
          f"(mean direct A-B distance {ab:.3f}) ===")
    print(table.round(4).to_string())
    print(f"time per path: graph {ms['graph']:.1f} ms, interpolate {ms['interpolate']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
