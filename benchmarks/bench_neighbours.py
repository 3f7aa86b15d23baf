"""Better neighbours than the raw embedding: every option of
:mod:`recommender.features.pooling`, one table (``benchmarks/retrieval.py``).

Leave-one-out precision@10 by label (label = folder), its 95 % bootstrap CI
over queries, the *paired* bootstrap CI of the difference to the raw mean
embedding, macro average, 1-NN accuracy and per-label precision.

Collection-level statistics (centring mean, standardisation, whitening,
within-track projection) are fitted on the whole collection *without
labels*, as an index would at build time.  The only label-tuned choice, the
weights of the combined space, is tuned by **leave-one-label-out**: for each
label L the weights are chosen on the collection without L's tracks, and L's
queries are then scored with those weights; the reported row is this
out-of-label figure, never the in-sample optimum.

Input: the ``.npz`` caches written by ``bench_sampling.py --cache`` (per-patch
vectors of each sampling policy, and the descriptors), or ``--index DIR``.

Usage::

    python benchmarks/bench_neighbours.py --cache /tmp/yh-cache [--policy 16]
    python benchmarks/bench_neighbours.py --index /tmp/devset-index
    python benchmarks/bench_neighbours.py --layers /tmp/nb-cache --policy 8 --policies 8,16,full

``--layers`` reads the caches of ``benchmarks/layer_cache.py`` (per-patch
``pool`` layer as well as the embedding, same patches) and adds the rows of
the layer options (``layers: ...``), among them the recipe
:func:`recommender.features.pooling.layer_similarity_vectors` (``LAYERS``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from retrieval import TrackSet, compare, format_table, neighbours, similarity_rep  # noqa: E402

from recommender.contrib import representations as R  # noqa: E402


def std(X):
    return R.CollectionNormalizer("standardize").fit_transform(X)


def center(X):
    return R.CollectionNormalizer("center").fit_transform(X)


def log_tags(t):
    return std(np.log(t.probs + 1e-4))


def mean_std(t):
    return std(R.pool_tracks(t.patch_embeddings, method="mean_std"))


def cos(X):
    X = R.l2_normalize(X)
    return X.astype(np.float64) @ X.T.astype(np.float64)


def hub(fn, method):
    @similarity_rep
    def rep(t):
        S = cos(fn(t))
        return R.mutual_proximity(S) if method == "mp" else R.csls(S, k=10)

    return rep


def wccn_mean(t):
    p = R.WithinTrackProjection("wccn", reg=1.0).fit(t.patch_embeddings)
    return p.transform(t.embedding)


def wccn_mean_std(t):
    p = R.WithinTrackProjection("wccn", reg=1.0).fit(t.patch_embeddings)
    return std(R.pool_tracks(p.transform_tracks(t.patch_embeddings), method="mean_std"))


def contrastive_mean(t, d=64, tau=0.1, epochs=100, lr=0.05, batch=64, seed=0):
    """A linear map trained with InfoNCE (two patches of one track = positive pair,
    other tracks in the batch = negatives), Adam in NumPy.  Kept in the benchmark
    only: it does not beat the closed-form :class:`WithinTrackProjection`."""
    rng = np.random.default_rng(seed)
    P = np.concatenate(t.patch_embeddings)
    mu, sd = P.mean(0), P.std(0) + 1e-6
    Ps = [(p - mu) / sd for p in t.patch_embeddings]
    W = np.linalg.svd(np.concatenate(Ps), full_matrices=False)[2][:d].T.copy()
    m1, m2 = np.zeros_like(W), np.zeros_like(W)
    n = len(Ps)
    for _ in range(epochs):
        order = rng.permutation(n)
        for s in range(0, n, batch):
            b = order[s : s + batch]
            if len(b) < 2:
                continue
            x1 = np.stack([Ps[j][rng.integers(len(Ps[j]))] for j in b])
            x2 = np.stack([Ps[j][rng.integers(len(Ps[j]))] for j in b])
            h1, h2 = x1 @ W, x2 @ W
            n1, n2 = np.linalg.norm(h1, axis=1, keepdims=True), np.linalg.norm(h2, axis=1, keepdims=True)
            z1, z2 = h1 / n1, h2 / n2
            L = z1 @ z2.T / tau
            p1 = np.exp(L - L.max(1, keepdims=True))
            p1 /= p1.sum(1, keepdims=True)
            p2 = np.exp(L - L.max(0, keepdims=True))
            p2 /= p2.sum(0, keepdims=True)
            G = ((p1 - np.eye(len(b))) + (p2 - np.eye(len(b)))) / (2 * len(b))
            dz1, dz2 = G @ z2 / tau, G.T @ z1 / tau
            dh1 = (dz1 - z1 * (z1 * dz1).sum(1, keepdims=True)) / n1
            dh2 = (dz2 - z2 * (z2 * dz2).sum(1, keepdims=True)) / n2
            g = x1.T @ dh1 + x2.T @ dh2
            m1 = 0.9 * m1 + 0.1 * g
            m2 = 0.999 * m2 + 0.001 * g * g
            W -= lr * m1 / (np.sqrt(m2) + 1e-8)
    return np.stack([R.l2_normalize(p @ W).mean(0) for p in Ps])


def set_matching(t):
    return R.set_similarity_matrix(t.patch_embeddings, method="mean_max", center=True)


def rerank_rep(base, *, pool=50, alpha=0.5):
    """FAISS-style candidates (top ``pool`` by ``base`` cosine) re-ranked by set matching."""

    @similarity_rep
    def rep(t):
        S0 = cos(base(t))
        Sset = set_matching(t)
        out = np.full_like(S0, -1e9)
        N = neighbours(S0, min(pool, len(S0) - 1))
        for i in range(len(S0)):
            c = N[i]
            out[i, c] = (1 - alpha) * S0[i, c] + alpha * Sset[i, c]
        np.fill_diagonal(out, np.inf)
        return out

    return rep


def timbre(t):
    return std(R.timbre_matrix(t.descriptors))


# ------------------------------------------------------------------- tuning
def _blocks(t, names):
    f = {"mean_std": mean_std, "tags": log_tags, "timbre": timbre, "center": lambda u: center(u.embedding)}
    return {k: f[k](t) for k in names}


def weight_grid(names, step=0.1):
    k = len(names)
    m = round(1 / step)
    for c in itertools.product(range(m + 1), repeat=k):
        if sum(c) == m and c[0] > 0:
            yield dict(zip(names, (v / m for v in c)))


def lolo_combined(ts: TrackSet, names=("mean_std", "tags", "timbre"), k=10, step=0.1):
    """Leave-one-label-out: similarity rows of label L use weights tuned without L's tracks."""
    grid = list(weight_grid(names, step))
    S_full = {}
    Bfull = _blocks(ts, names)
    out = np.zeros((len(ts), len(ts)))
    chosen = {}
    for lab in np.unique(ts.labels):
        rows_in = np.flatnonzero(ts.labels != lab)
        sub = ts.subset(rows_in)
        B = _blocks(sub, names)  # statistics fitted without L, like a collection without it
        Cs = {n: cos(B[n]) for n in names}
        best, best_w = -1, None
        for w in grid:
            S = sum(w[n] * Cs[n] for n in names)
            N = neighbours(S, k)
            p = (sub.labels[N] == sub.labels[:, None]).mean()
            if p > best + 1e-12:
                best, best_w = p, w
        chosen[lab] = best_w
        key = tuple(best_w[n] for n in names)
        if key not in S_full:
            S_full[key] = sum(best_w[n] * cos(Bfull[n]) for n in names)
        rows = ts.labels == lab
        out[rows] = S_full[key][rows]
    return out, chosen


# --------------------------------------------------- layers of the forward pass
def layers(t):
    """THE LAYER RECIPE: mean+std over patches of [pool, penultimate], standardised."""
    return R.layer_similarity_vectors(R.layer_summaries(t.patch_pool, t.patch_embeddings))[0]


def pool_ms(t):
    return std(R.pool_tracks(t.patch_pool, method="mean_std"))


def _cached(t, name):
    """An exploratory per-patch layer: from the cache, or recomputed from ``pool``."""
    import layer_cache

    if name == "pool_max":
        return [p[:, 0::2] for p in t.patch_pool]
    if name == "pool_mean":
        return [p[:, 1::2] for p in t.patch_pool]
    if name == "frontend":  # channels 0-560 (interleaved max/mean)
        return [p[:, : 2 * 561] for p in t.patch_pool]
    if name == "midend":  # channels 561-752
        return [p[:, 2 * 561 :] for p in t.patch_pool]
    if name == "pool_bn":
        return [layer_cache.pool_bn(p) for p in t.patch_pool]
    if name == "dense_preact":
        return [layer_cache.dense_preact(p) for p in t.patch_pool]
    return t.layers[name]


def wccn_pool_ms(t):
    p = R.WithinTrackProjection("wccn", reg=1.0).fit(t.patch_pool)
    return std(R.pool_tracks(p.transform_tracks(t.patch_pool), method="mean_std"))


def wccn_layers(t, reg=1.0):
    """:class:`~recommender.contrib.representations.PatchSpace` on the per-patch [pool, penultimate]:
    WCCN, then mean+std pooling, standardised.  Needs the per-patch pool
    vectors at index time (not only the per-track summary)."""
    return R.PatchSpace(reg=reg).fit_transform(R.layer_patches(t.patch_pool, t.patch_embeddings))


def dba_rep(fn, k):
    return lambda t: R.database_augmentation(fn(t), k=k)


def dba_outside_rep(fn, k):
    """DBA with every query from *outside* the index: the index is augmented
    without the query's track, and the query with its neighbours in it (what
    a new track sees; statistics stay fitted on the whole collection)."""

    @similarity_rep
    def rep(t):
        X = R.l2_normalize(fn(t))
        n = len(X)
        S = np.full((n, n), -1e9)
        for i in range(n):
            o = np.r_[0:i, i + 1 : n]
            q = R.database_augmentation(X[i : i + 1], k=k, database=X[o])[0]
            S[i, o] = R.database_augmentation(X[o], k=k) @ q
        np.fill_diagonal(S, np.inf)
        return S

    return rep


def lolo_param(ts: TrackSet, build, grid, k=10):
    """Leave-one-label-out choice of one hyperparameter: the rows of label L come
    from ``build(ts, v)`` with ``v`` chosen on the collection without L
    (``build(subset, v)`` refitted there, statistics included)."""
    out = np.zeros((len(ts), len(ts)))
    chosen = {}
    full = {}
    for lab in np.unique(ts.labels):
        sub = ts.subset(np.flatnonzero(ts.labels != lab))
        best, best_v = -1, None
        for v in grid:
            N = neighbours(cos(build(sub, v)), k)
            p = (sub.labels[N] == sub.labels[:, None]).mean()
            if p > best + 1e-12:
                best, best_v = p, v
        chosen[lab] = best_v
        if best_v not in full:
            full[best_v] = cos(build(ts, best_v))
        rows = ts.labels == lab
        out[rows] = full[best_v][rows]
    return out, chosen


def layer_reps(ts: TrackSet, k=10):
    """Rows of the layer options (``ts.patch_pool`` present); second value: LOLO choices."""
    reps = {
        "layers: pool mean, std.": lambda t: std(R.pool_tracks(t.patch_pool, method="mean")),
        "layers: pool mean+std, std.": pool_ms,
        "layers: pool std only, std.": lambda t: std(R.pool_tracks(t.patch_pool, method="std")),
    }
    for name in ("pool_mean", "pool_max", "frontend", "midend", "dense_preact"):
        reps[f"layers: {name} mean+std, std."] = (
            lambda n: lambda t: std(R.pool_tracks(_cached(t, n), method="mean_std")))(name)
    reps["layers: pool_bn mean, center"] = lambda t: center(R.pool_tracks(_cached(t, "pool_bn"), method="mean"))
    if hasattr(ts, "layers") and "midend_std" in ts.layers:
        reps["layers: midend temporal std, mean+std"] = lambda t: std(R.pool_tracks(t.layers["midend_std"],
                                                                                    method="mean_std"))
    reps["layers: WCCN(pool), mean+std, std."] = wccn_pool_ms
    reps["layers: pool+pen mean+std, std. (LAYERS)"] = layers
    reps["layers: LAYERS, PCA 32"] = lambda t: R.layer_similarity_vectors(
        R.layer_summaries(t.patch_pool, t.patch_embeddings), n_components=32)[0]
    reps["layers: LAYERS, PCA-whiten 64 (.1)"] = lambda t: R.CollectionNormalizer(
        "whiten", n_components=64).fit_transform(layers(t))
    reps["layers: LAYERS, signed sqrt"] = lambda t: std(np.sign(s := R.layer_summaries(t.patch_pool,
                                                        t.patch_embeddings)) * np.sqrt(np.abs(s)))
    reps["layers: LAYERS + MP"] = hub(layers, "mp")
    reps["layers: LAYERS + CSLS"] = hub(layers, "csls")
    reps["layers: LAYERS + DBA k=3"] = dba_rep(layers, 3)
    reps["layers: LAYERS + DBA k=3, query outside"] = dba_outside_rep(layers, 3)
    grid = (0, 1, 2, 3, 5, 8, 12)
    S, ch = lolo_param(ts, lambda t, v: R.database_augmentation(layers(t), k=v), grid, k=k)
    reps["layers: LAYERS + DBA, k by LOLO"] = S
    reps["layers: PatchSpace = WCCN(pool+pen patches), mean+std"] = wccn_layers
    reps["layers: PatchSpace + DBA k=3 (STRONGEST)"] = dba_rep(wccn_layers, 3)
    reps["layers: PatchSpace + DBA k=3, query outside"] = dba_outside_rep(wccn_layers, 3)
    S2, ch2 = lolo_param(ts, lambda t, v: R.database_augmentation(wccn_layers(t), k=v), grid, k=k)
    reps["layers: PatchSpace + DBA, k by LOLO"] = S2
    return reps, {"layers: LAYERS + DBA, k by LOLO": ch, "layers: PatchSpace + DBA, k by LOLO": ch2}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/tmp/yh-cache")
    ap.add_argument("--policy", default="16", help="which sampling cache to use (e.g. 16, 4, full)")
    ap.add_argument("--index", default=None, help="read an index directory instead of the caches")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="skip the slow options (contrastive)")
    ap.add_argument("--policies", default="4,8,16,32,full",
                    help="policies of the raw-vs-recommended summary")
    ap.add_argument("--layers", default=None, metavar="DIR",
                    help="read DIR/layers_<policy>.npz (benchmarks/layer_cache.py: pool layer too) "
                         "instead of the sampling caches, and add the layer rows")
    ap.add_argument("--only-layers", action="store_true", help="with --layers: baselines and layer rows only")
    a = ap.parse_args(argv)

    if a.layers:
        import layer_cache

        src = os.path.join(a.layers, f"layers_{a.policy}.npz")
        ts = layer_cache.load_trackset(src, descriptors=os.path.join(a.cache, "descriptors_30s.npz"))
    elif a.index:
        ts = TrackSet.from_index(a.index)
        src = a.index
    else:
        src = os.path.join(a.cache, f"sampling_{a.policy}.npz")
        ts = TrackSet.load(src)
        desc = os.path.join(a.cache, "descriptors_30s.npz")
        if os.path.exists(desc):
            d = TrackSet.load(desc)
            pos = {p: i for i, p in enumerate(d.paths)}
            ts.descriptors = d.descriptors.iloc[[pos[p] for p in ts.paths]].reset_index(drop=True)
    has_desc = ts.descriptors is not None and all(c in ts.descriptors.columns for c in R.TIMBRE_COLUMNS)
    npp = np.mean([len(p) for p in ts.patch_embeddings])
    print(f"{len(ts)} tracks from {src} ({npp:.1f} patches/track), labels {dict(pd.Series(ts.labels).value_counts())}")

    reps = {
        "raw mean embedding": lambda t: t.embedding,
        "tags (mean probs)": lambda t: t.probs,
        "norm: center": lambda t: center(t.embedding),
        "norm: standardize": lambda t: std(t.embedding),
        "norm: whiten (shrink .1)": lambda t: R.CollectionNormalizer("whiten", shrinkage=0.1).fit_transform(t.embedding),
        "norm: whiten (full)": lambda t: R.CollectionNormalizer("whiten", shrinkage=0.0).fit_transform(t.embedding),
        "tags: log + standardize": log_tags,
        "pool: max, std.": lambda t: std(R.pool_tracks(t.patch_embeddings, method="max")),
        "pool: confidence-weighted, ctr": lambda t: center(R.pool_tracks(
            t.patch_embeddings, method="weighted", weights=[R.confidence_weights(q) for q in t.patch_probs])),
        "pool: mean+std, std. (RECOMMENDED)": mean_std,
        "adapt: WCCN, mean": wccn_mean,
        "adapt: WCCN, mean+std, std.": wccn_mean_std,
    }
    if a.only_layers:
        reps = {k: reps[k] for k in ("raw mean embedding", "pool: mean+std, std. (RECOMMENDED)",
                                     "adapt: WCCN, mean+std, std.")}
    if not a.quick and not a.only_layers:
        reps["adapt: contrastive 64-d, mean"] = contrastive_mean
    if not a.only_layers:
        reps["sets: mean-max, all pairs"] = similarity_rep(set_matching)
        reps["sets: rerank top-50 of center, a=.5"] = rerank_rep(lambda t: center(t.embedding))
        reps["sets: rerank top-50 of RECOMMENDED"] = rerank_rep(mean_std)
        reps["hubness: raw + MP"] = hub(lambda t: t.embedding, "mp")
        reps["hubness: RECOMMENDED + MP"] = hub(mean_std, "mp")
        reps["hubness: RECOMMENDED + CSLS"] = hub(mean_std, "csls")
    chosen = {}
    if ts.patch_pool is not None:
        lr, lch = layer_reps(ts, k=a.k)
        reps.update(lr)
        chosen.update(lch)
    if has_desc and not a.only_layers:
        reps["timbre: MFCC mean/std, std."] = timbre
        for names in (("mean_std", "timbre"), ("mean_std", "tags", "timbre")):
            S, ch = lolo_combined(ts, names, k=a.k)
            label = "combined LOLO: " + "+".join(names)
            reps[label] = S
            chosen[label] = ch
    t0 = time.perf_counter()
    df = compare(reps, ts, k=a.k)
    print(f"\nprecision in points; d_* = paired difference to the raw mean embedding "
          f"(95 % bootstrap over the {len(ts)} queries)  [{time.perf_counter() - t0:.0f} s]")
    print(format_table(df))
    for label, ch in chosen.items():
        print(f"\n{label}: chosen per held-out label:")
        for lab, w in ch.items():
            print(f"  without {lab:>13}: " + (", ".join(f"{k}={v:.1f}" for k, v in w.items())
                                               if isinstance(w, dict) else f"k={w}"))

    # cost of building the recommended space and of one set-matching rerank
    t0 = time.perf_counter()
    X, norm = R.similarity_vectors(ts.patch_embeddings)
    t_build = time.perf_counter() - t0
    cand = ts.patch_embeddings[:50]
    t0 = time.perf_counter()
    for q in range(10):
        R.rerank_by_sets(ts.patch_embeddings[q], cand, np.zeros(len(cand)), center=norm.mean_[: X.shape[1] // 2])
    t_rr = (time.perf_counter() - t0) / 10
    print(f"\nbuild recommended space for {len(ts)} tracks: {1000 * t_build:.1f} ms; "
          f"set-matching rerank of 50 candidates: {1000 * t_rr:.1f} ms/query")

    if ts.patch_pool is not None:
        t0 = time.perf_counter()
        Sm = R.layer_summaries(ts.patch_pool, ts.patch_embeddings)
        t_sum = time.perf_counter() - t0
        t0 = time.perf_counter()
        X, norm = R.layer_similarity_vectors(Sm)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        for q in range(100):
            qv, _ = R.layer_similarity_vectors(R.layer_summary(ts.patch_pool[q % len(ts)],
                                                               ts.patch_embeddings[q % len(ts)])[None],
                                               normalizer=norm)
        t_q = (time.perf_counter() - t0) / 100
        print(f"layer recipe: summaries of {len(ts)} tracks {1000 * t_sum:.1f} ms, fit+map {1000 * t_build:.1f} ms; "
              f"one query (summary + map): {1000 * t_q:.2f} ms; {X.shape[1]}-d vectors; stored statistics: "
              f"mean_ and scale_ ({len(norm.mean_)} float32 each)")
        P = R.layer_patches(ts.patch_pool, ts.patch_embeddings)
        t0 = time.perf_counter()
        space = R.PatchSpace().fit(P)
        Xp = space.transform(P)
        Xa = R.database_augmentation(Xp, k=3)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        for q in range(20):
            qv = space.transform([P[q % len(P)]])
            R.database_augmentation(qv, k=3, database=Xp)
        t_q = (time.perf_counter() - t0) / 20
        nbytes = sum(v.nbytes for v in space.to_arrays().values())
        print(f"PatchSpace + DBA k=3: fit+map+augment {len(ts)} tracks {1000 * t_build:.0f} ms; one outside query "
              f"(map {np.mean([len(p) for p in P]):.0f} patches + augment against the index): {1000 * t_q:.2f} ms; "
              f"{Xa.shape[1]}-d vectors; stored statistics {nbytes / 1e6:.1f} MB")

    # does the gain hold for every sampling policy?
    if a.layers:
        import layer_cache

        rows = {}
        for pol in a.policies.split(","):
            f = os.path.join(a.layers, f"layers_{pol}.npz")
            if not os.path.exists(f):
                continue
            t = layer_cache.load_trackset(f)
            d = compare({"raw": lambda u: u.embedding, "rec": mean_std, "layers": layers,
                         "layers+dba3": dba_rep(layers, 3), "patch+dba3": dba_rep(wccn_layers, 3)}, t, k=a.k)
            row = {"raw p@10": 100 * d.loc["raw", f"p@{a.k}"]}
            for n, lab in (("rec", "recommended"), ("layers", "LAYERS"), ("layers+dba3", "LAYERS+DBA3"),
                           ("patch+dba3", "PatchSpace+DBA3")):
                row[lab] = 100 * d.loc[n, f"p@{a.k}"]
                row[f"d({lab})"] = 100 * d.loc[n, "d_vs_base"]
                row[f"ci95({lab})"] = f"[{100 * d.loc[n, 'd_lo']:+.1f}, {100 * d.loc[n, 'd_hi']:+.1f}]"
            rows[pol] = row
        if rows:
            print("\nraw vs recommended vs layers per sampling policy:")
            print(pd.DataFrame(rows).T.to_string(float_format=lambda v: f"{v:.1f}"))
    elif not a.index:
        rows = {}
        for pol in a.policies.split(","):
            f = os.path.join(a.cache, f"sampling_{pol}.npz")
            if not os.path.exists(f):
                continue
            t = TrackSet.load(f)
            d = compare({"raw": lambda u: u.embedding, "rec": mean_std,
                         "rec+csls": hub(mean_std, "csls")}, t, k=a.k)
            rows[pol] = {"raw p@10": 100 * d.loc["raw", f"p@{a.k}"], "recommended": 100 * d.loc["rec", f"p@{a.k}"],
                         "d": 100 * d.loc["rec", "d_vs_base"],
                         "d_ci95": f"[{100 * d.loc['rec', 'd_lo']:+.1f}, {100 * d.loc['rec', 'd_hi']:+.1f}]",
                         "+csls": 100 * d.loc["rec+csls", f"p@{a.k}"],
                         "d(+csls)": 100 * d.loc["rec+csls", "d_vs_base"],
                         "d_ci95(+csls)": f"[{100 * d.loc['rec+csls', 'd_lo']:+.1f}, {100 * d.loc['rec+csls', 'd_hi']:+.1f}]"}
        if rows:
            print("\nraw vs recommended per sampling policy:")
            print(pd.DataFrame(rows).T.to_string(float_format=lambda v: f"{v:.1f}"))
    return df


if __name__ == "__main__":
    main()
