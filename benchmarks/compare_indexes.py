"""precision@10 of two indexes of one labelled collection (label = folder), paired by track.

For a change that should not move the similarity space (a faster graph, a new
runtime): index the same folder with each version, then compare the default
``similarity`` space of the two indexes, track by track (leave-one-out: a
track's 10 nearest other tracks, the share with its label), with a paired
95 % bootstrap CI of the difference (resampled tracks).

Usage::

    PYTHONPATH=/path/to/old recommender index /tmp/devset --index /tmp/old-devset
    recommender index /tmp/devset --index /tmp/new-devset
    python benchmarks/compare_indexes.py /tmp/old-devset /tmp/new-devset
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def hits(index_dir, k=10, space="similarity") -> dict:
    """``{path: share of the k nearest other tracks with the track's label}`` (label: its folder's name)."""
    from recommender import Recommender

    with Recommender(index_dir) as rec:
        ids, X = rec.space_vectors(space)
        paths = rec.catalog.tracks(columns=["path"])["path"].to_dict()
    labels = np.array([os.path.basename(os.path.dirname(paths[int(i)])) for i in ids])
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    nn = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return dict(zip((paths[int(i)] for i in ids), (labels[nn] == labels[:, None]).mean(1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="baseline index directory")
    ap.add_argument("b", help="index directory compared with it")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    a, b = hits(args.a, args.k), hits(args.b, args.k)
    common = sorted(set(a) & set(b))
    ha, hb = np.array([a[p] for p in common]), np.array([b[p] for p in common])
    d = hb - ha
    rng = np.random.default_rng(0)
    boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(5000)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    print(f"{len(common)} tracks in both; p@{args.k}: A {ha.mean():.4f}  B {hb.mean():.4f}  "
          f"d {d.mean():+.4f} (paired 95 % CI {lo:+.4f}..{hi:+.4f}); tracks whose hits changed: {(d != 0).sum()}")


if __name__ == "__main__":
    main()
