"""The retrieval protocol of issue #17: choose on one half of the dev collection, confirm on the other.

End to end from a clean checkout (the packages of ``../shared/DEVSET.md``
installed)::

    python benchmarks/retrieval_protocol.py                       # selection table
    python benchmarks/retrieval_protocol.py --confirm CANDIDATE   # confirmation half, once
    python benchmarks/retrieval_protocol.py --list                # the candidates

1. Lays out both halves with ``benchmarks/devset.py`` (``<cache>/selection``,
   ``<cache>/confirmation``: symlinks, label = soundtrack) unless ``--selection``
   / ``--confirmation`` name existing layouts.
2. Analyses each half once into ``<cache>/<half>.npz``
   (``benchmarks/protocol_cache.py``: both shipped networks at 4/8/16 patches
   a track, MSD also at 32, the product's own windows and log-mel; MFCC
   Gaussians; ARTIST/COMPOSER tags; per-track timings).
3. Selection table: every candidate against today's default (the
   ``'similarity'`` space of ``recommender index`` at its default 8 patches),
   leave-one-out precision@10 by soundtrack, the paired 95 % bootstrap CI of the
   difference *by track*, per soundtrack, and p@10 by artist where the files
   carry one; at collection sizes 50, 200 and all (a size the half does not
   reach is skipped; smaller sizes are random subsets stratified by soundtrack,
   ``--draws`` draws; a track's difference is averaged over the draws it
   is in before the bootstrap, so at sizes below "all" ``d`` need not equal the
   difference of the ``p@10`` column, a mean over draws).  Each candidate's cost: index seconds per
   track (decode + CNN + MFCC, medians measured in the cache run) as a ratio
   to the default, and the dimension / per-query scoring work ("score ms/q" is the
   time to build the whole similarity matrix per track, so it includes any
   fitting on the collection); "adapt s": seconds an adaptive candidate spends
   learning on the collection (the contrastive projection, median over draws).
4. ``--confirm NAME``: the confirmation half, NAME against the default only.

Every candidate evaluated is appended to ``<cache>/variants.log`` (name,
half, time), so the number of variants looked at is on record.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import contrastive as CT
import protocol_cache as PC
from retrieval import bootstrap_ci, neighbours

from recommender.features.pooling import (
    CollectionNormalizer,
    l2_normalize,
    layer_summaries,
)

SIZES = (None, 200, 50)
DEFAULT = "default"


# --------------------------------------------------------------------------
# Spaces and similarity matrices
# --------------------------------------------------------------------------
def layer_space(c, pol):
    """Today's ``'similarity'`` space for policy ``pol`` (e.g. ``'msd8'``): (n, 3412) unit rows."""
    S = layer_summaries(c.patches[f"{pol}_pool"], c.patches[f"{pol}_pen"])
    return l2_normalize(CollectionNormalizer("standardize").fit_transform(S))


def cosine(X):
    X = np.asarray(X, dtype=np.float64)
    return X @ X.T


def ranks(S):
    """Per-query rank of every other track (0 = nearest); the diagonal is ranked last."""
    T = np.array(S, dtype=np.float64, copy=True)
    np.fill_diagonal(T, -np.inf)
    order = np.argsort(-T, axis=1, kind="stable")
    R = np.empty_like(order)
    R[np.arange(len(T))[:, None], order] = np.arange(T.shape[1])[None, :]
    return R.astype(np.float64)


def rank_fusion(mats, weights=None):
    """Similarity = minus the weighted mean of the per-query ranks of several similarity matrices."""
    w = np.ones(len(mats)) / len(mats) if weights is None else np.asarray(weights, dtype=np.float64)
    return -sum(wi * ranks(S) for wi, S in zip(w, mats))


def gaussian_js(mu, cov):
    """Minus the Jensen-Shannon divergence (Gaussian approximation, as Musly) between
    per-track Gaussians: ``mu`` (n, d), ``cov`` (n, d, d) -> (n, n) similarity."""
    n = len(mu)
    _, logdet = np.linalg.slogdet(cov)
    second = cov + mu[:, :, None] * mu[:, None, :]  # E[x x^T]
    S = np.zeros((n, n))
    for i in range(n):
        m = (mu[i] + mu) / 2
        Cm = (second[i] + second) / 2 - m[:, :, None] * m[:, None, :]
        _, ld = np.linalg.slogdet(Cm)
        S[i] = -(ld - (logdet[i] + logdet) / 2) / 2
    return S


def wccn_space(c, pol, alpha):
    """Within-track normalisation of the per-patch layer vectors (:func:`_wccn_map`), shrinkage ``alpha``
    (``(1-alpha) Sw + alpha tr(Sw)/d I``), then today's summary + standardise + cosine."""
    P = [np.concatenate([a, b], axis=1).astype(np.float64) for a, b in
         zip(c.patches[f"{pol}_pool"], c.patches[f"{pol}_pen"])]
    mu, W = _wccn_map(P, alpha)
    T = [(p - mu) @ W for p in P]
    S = np.stack([np.concatenate([t.mean(0), t.std(0)]) for t in T])
    return l2_normalize(CollectionNormalizer("standardize").fit_transform(S))


def _wccn_map(P, alpha, n_axes=128):
    """Linear map ``(n_features, k)``: standardise the patches, keep their ``k <= n_axes`` principal
    axes, then whiten the within-track covariance there, shrunk towards its mean eigenvalue."""
    allp = np.concatenate(P)
    mu, sd = allp.mean(0), allp.std(0) + 1e-6
    Z = (allp - mu) / sd
    k = min(n_axes, len(Z) - 1, Z.shape[1])
    U = np.linalg.svd(Z - Z.mean(0), full_matrices=False)[2][:k].T  # (d, k)
    R = np.concatenate([((p - mu) / sd - ((p - mu) / sd).mean(0)) @ U for p in P])
    Sw = R.T @ R / len(R)
    Sw = (1 - alpha) * Sw + alpha * np.trace(Sw) / k * np.eye(k)
    ev, V = np.linalg.eigh(Sw)
    return mu, (U / sd[:, None]) @ ((V / np.sqrt(np.maximum(ev, 1e-12))) @ V.T)


def wccn_alpha(c, pol, grid=(0.05, 0.1, 0.2, 0.4, 0.7, 1.0)):
    """Label-free choice of the WCCN shrinkage: split every track's patches in two (even / odd
    positions), fit the map on the even ones, and keep the ``alpha`` whose odd-half mean
    vector finds its own track's even-half mean first most often (ties: larger alpha)."""
    P = [np.concatenate([a, b], axis=1).astype(np.float64) for a, b in
         zip(c.patches[f"{pol}_pool"], c.patches[f"{pol}_pen"])]
    even, odd = [p[0::2] for p in P], [p[1::2] for p in P]
    best = (-1.0, None)
    for a in sorted(grid, reverse=True):
        mu, W = _wccn_map(even, a)
        A = l2_normalize(np.stack([((p - mu) @ W).mean(0) for p in even]).astype(np.float32))
        B = l2_normalize(np.stack([((p - mu) @ W).mean(0) for p in odd]).astype(np.float32))
        acc = float((np.argmax(B @ A.T, axis=1) == np.arange(len(P))).mean())
        if acc > best[0]:
            best = (acc, a)
    return best[1]


#: training seconds of the adaptive candidates at their last evaluation, by candidate (``table`` reports them)
FIT_SECONDS: dict = {}


def contrastive_space(c, pol, name, **kw):
    """Track vectors of a contrastive projection learnt on this collection's patches
    (:func:`contrastive.fit`: NT-Xent, patches of a track as positives, steps chosen by held-out
    split-half identification, no labels), mean + std of the projected patches, standardised, unit rows.
    The fit runs on one BLAS thread (deterministic, and faster than threads on small matrices)."""
    from threadpoolctl import threadpool_limits

    P = [np.concatenate([a, b], axis=1) for a, b in zip(c.patches[f"{pol}_pool"], c.patches[f"{pol}_pen"])]
    with threadpool_limits(1):
        proj, info = CT.fit(P, **kw)
        V = CT.track_vectors(proj, P)
    FIT_SECONDS.setdefault(name, []).append(info["seconds"])
    return l2_normalize(CollectionNormalizer("standardize").fit_transform(V))


def _hub(S, method):
    from recommender.contrib.representations import csls, mutual_proximity

    return mutual_proximity(S) if method == "mp" else csls(S, k=10)


# name -> (function HalfCache -> (n, n) similarity, cost: patch policies analysed, uses MFCC, query note)
def _cands():
    L = lambda pol: (lambda c: cosine(layer_space(c, pol)))
    cat = lambda a, b: (lambda c: cosine(np.concatenate([layer_space(c, a), layer_space(c, b)], 1) / np.sqrt(2)))
    mf = lambda c: gaussian_js(c.mfcc_mean, c.mfcc_cov)
    return {
        DEFAULT: (L("msd8"), ["msd8"], False, "3412-d cosine"),
        # a reference point, not a candidate: the original musicnn embedding (mean over the 8 patches)
        REFERENCE: (lambda c: cosine(l2_normalize(np.stack([p.mean(0) for p in c.patches["msd8_pen"]]))),
                    ["msd8"], False, "200-d cosine"),
        "windows: msd 4 patches": (L("msd4"), ["msd4"], False, "3412-d cosine"),
        "windows: msd 16 patches": (L("msd16"), ["msd16"], False, "3412-d cosine"),
        "windows: msd 32 patches": (L("msd32"), ["msd32"], False, "3412-d cosine"),
        "mtt alone, 8": (L("mtt8"), ["mtt8"], False, "3412-d cosine"),
        "msd+mtt concat, 8": (cat("msd8", "mtt8"), ["msd8", "mtt8"], False, "6824-d cosine"),
        "msd+mtt rank fusion, 8": (lambda c: rank_fusion([cosine(layer_space(c, "msd8")),
                                                           cosine(layer_space(c, "mtt8"))]),
                                   ["msd8", "mtt8"], False, "2 searches + rank merge"),
        "msd+mtt concat, 16": (cat("msd16", "mtt16"), ["msd16", "mtt16"], False, "6824-d cosine"),
        "wccn (alpha label-free)": (lambda c: cosine(wccn_space(c, "msd8", wccn_alpha(c, "msd8"))),
                                    ["msd8"], False, "3412-d cosine; per-patch layers stored"),
        "musly-style mfcc JS": (mf, [], True, "n JS divergences (25-d Gaussians)"),
        "default + mfcc JS, rank 0.5": (lambda c: rank_fusion([cosine(layer_space(c, "msd8")), mf(c)]),
                                        ["msd8"], True, "search + n JS + rank merge"),
        "default + mutual proximity": (lambda c: _hub(cosine(layer_space(c, "msd8")), "mp"),
                                       ["msd8"], False, "per-track mu/sd + rescoring"),
        "default + csls": (lambda c: _hub(cosine(layer_space(c, "msd8")), "csls"),
                           ["msd8"], False, "per-track r_k + rescoring"),
        CONTRASTIVE: (lambda c: cosine(contrastive_space(c, "msd8", CONTRASTIVE, **CT_LINEAR)),
                      ["msd8"], False, "256-d cosine; query patches x (1706, 128)"),
        CONTRASTIVE + ", 1 hidden layer": (
            lambda c: cosine(contrastive_space(c, "msd8", CONTRASTIVE + ", 1 hidden layer", **CT_HIDDEN)),
            ["msd8"], False, "256-d cosine; query patches through 1706-512-128"),
        "default + " + CONTRASTIVE: (
            lambda c: cosine(np.concatenate([layer_space(c, "msd8"),
                                             contrastive_space(c, "msd8", "default + " + CONTRASTIVE, **CT_LINEAR)],
                                            1) / np.sqrt(2)),
            ["msd8"], False, "3668-d cosine; query patches x (1706, 128)"),
    }


CONTRASTIVE = "contrastive projection (label-free stop)"
REFERENCE = "reference: musicnn mean embedding, 8"
#: settings of the contrastive candidates (NT-Xent temperature 0.1, Adam 1e-3, batch 64 tracks, at most
#: 200 steps, 30 % of the tracks held out to choose the step count)
CT_LINEAR = dict(max_steps=200, tau=0.1, dim=128)
CT_HIDDEN = dict(max_steps=200, tau=0.1, dim=128, hidden=512)
CANDIDATES = _cands()


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------
def hits(S, labels, k=10):
    """Per-query share of the ``k`` nearest others that share the query's label, (n,)."""
    N = neighbours(S, k)
    return (labels[N] == labels[:, None]).mean(axis=1)


def artist_hits(S, artists, k=10):
    """p@k by artist for queries whose artist tag is shared by another track; NaN for the others."""
    a = np.asarray(artists)
    N = neighbours(S, k)
    ok = np.array([bool(x) and (a == x).sum() > 1 for x in a])
    h = (a[N] == a[:, None]).mean(axis=1)
    return np.where(ok, h, np.nan)


def stratified_draw(labels, size, rng):
    """Rows of a random subset of ``size`` tracks, soundtracks in proportion (at least 2 each)."""
    labs, counts = np.unique(labels, return_counts=True)
    alloc = np.maximum(2, np.floor(counts * size / counts.sum())).astype(int)
    alloc = np.minimum(alloc, counts)
    while alloc.sum() < size:
        alloc[np.argmax(counts - alloc)] += 1
    rows = [rng.choice(np.flatnonzero(labels == l), a, replace=False) for l, a in zip(labs, alloc)]
    return np.sort(np.concatenate(rows))


def _log(cache_dir, name, half):
    with open(os.path.join(cache_dir, "variants.log"), "a", encoding="utf-8") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{half}\t{name}\n")


def run_size(c, names, size, draws, seed=0):
    """Per-track hits of ``names`` over the draws at one collection size.

    Returns ``{name: (mean p@10 over draws, per-track mean diff to default (n,) NaN where never
    drawn, per-label p@10 Series, mean artist p@10, mean query-scoring seconds per track)}``.
    """
    rng = np.random.default_rng(seed)
    n = len(c)
    plan = [np.arange(n)] if size is None or size >= n else [stratified_draw(c.labels, size, rng) for _ in range(draws)]
    acc = {m: {"p": [], "dsum": np.zeros(n), "dcnt": np.zeros(n), "lab": [], "art": [], "t": []} for m in names}
    for rows in plan:
        sub = c.subset(rows)
        H = {}
        for m in names:
            t0 = time.perf_counter()
            S = CANDIDATES[m][0](sub)
            acc[m]["t"].append((time.perf_counter() - t0) / len(rows))
            H[m] = hits(S, sub.labels)
            acc[m]["p"].append(H[m].mean())
            acc[m]["lab"].append(pd.Series(H[m]).groupby(sub.labels).mean())
            acc[m]["art"].append(np.nanmean(artist_hits(S, sub.artists)) if (sub.artists != "").any() else np.nan)
        for m in names:
            acc[m]["dsum"][rows] += H[m] - H[DEFAULT]
            acc[m]["dcnt"][rows] += 1
    out = {}
    for m, a in acc.items():
        with np.errstate(invalid="ignore"):
            d = a["dsum"] / a["dcnt"]
        out[m] = (float(np.mean(a["p"])), d, pd.concat(a["lab"], axis=1).mean(axis=1),
                  float(np.nanmean(a["art"])) if np.isfinite(a["art"]).any() else np.nan, float(np.median(a["t"])))
    return out


def index_cost(c, name):
    """Median index seconds per track of ``name`` (decode of its widest policy + CNN of every
    policy + MFCC), from the timings of the cache run."""
    pols, mfcc = CANDIDATES[name][1], CANDIDATES[name][2]
    t = np.zeros(len(c))
    if pols:
        t += c.timing[f"decode{max(int(p[3:]) for p in pols)}"]
    for p in pols:
        t += c.timing[f"cnn_{p}"]
    if mfcc:
        t += c.timing["mfcc"]
    return float(np.median(t))


def table(c, names, size, draws, half, cache_dir):
    """One table (rows = candidates) at one collection size."""
    for m in names:
        _log(cache_dir, m, f"{half}@{size or 'all'}")
    FIT_SECONDS.clear()
    res = run_size(c, [DEFAULT] + [m for m in names if m != DEFAULT], size, draws)
    base_cost = index_cost(c, DEFAULT)
    rows = {}
    for m, (p, d, lab, art, tq) in res.items():
        ok = np.isfinite(d)
        lo, hi = bootstrap_ci(d[ok], n_boot=2000, random_state=0)
        r = {"p@10": 100 * p, "d": 100 * d[ok].mean(), "d_lo": 100 * lo, "d_hi": 100 * hi}
        r.update({k: 100 * v for k, v in lab.items()})
        r["artist p@10"] = 100 * art
        r["index x"] = index_cost(c, m) / base_cost
        r["score ms/q"] = 1000 * tq
        r["adapt s"] = float(np.median(FIT_SECONDS[m])) if FIT_SECONDS.get(m) else 0.0
        r["query"] = CANDIDATES[m][3]
        rows[m] = r
    return pd.DataFrame.from_dict(rows, orient="index")


def fmt(df):
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 40):
        return df.to_string(float_format=lambda v: f"{v:.1f}" if abs(v) >= 0.1 or v == 0 else f"{v:.3f}")


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------
def ensure_half(half, folder, cache_dir, names=None):
    """Lay out (if needed) and analyse (if not cached) one half; returns its :class:`HalfCache`.

    ``names``: analyse only the patch policies these candidates use (default: all).
    """
    import devset

    out = os.path.join(cache_dir, f"{half}.npz")
    pols = PC.POLICIES if names is None else sorted({(p[:3], int(p[3:])) for m in names for p in CANDIDATES[m][1]})
    if not os.path.exists(out):
        if not os.path.isdir(folder) or not os.listdir(folder):
            devset.layout(folder, devset.SELECTION if half == "selection" else devset.CONFIRMATION)
        print(f"analysing the {half} half ({folder}) into {out} ...", flush=True)
        PC.build(folder, out, policies=pols)
    return PC.load(out)


def describe(c, half):
    n_lab = pd.Series(c.labels).value_counts()
    arts = pd.Series(c.artists[c.artists != ""])
    print(f"{half} half: {len(c)} tracks, {len(n_lab)} soundtracks ({', '.join(f'{k} {v}' for k, v in n_lab.items())})")
    if arts.empty:
        print("  no ARTIST/COMPOSER tags: no artist column")
    else:
        per = pd.DataFrame({"label": c.labels[c.artists != ""], "artist": arts.to_numpy()})
        print(f"  artist tags on {len(arts)} tracks, {arts.nunique()} artists; artists per soundtrack: "
              + ", ".join(f"{k} {v}" for k, v in per.groupby("label")["artist"].nunique().items()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/tmp/e17", help="where the layouts, caches and variants.log go")
    ap.add_argument("--selection", default=None, help="selection layout (default CACHE/selection)")
    ap.add_argument("--confirmation", default=None, help="confirmation layout (default CACHE/confirmation)")
    ap.add_argument("--draws", type=int, default=10, help="random subsets per smaller collection size")
    ap.add_argument("--only", nargs="*", default=None, help="candidates to evaluate (default all)")
    ap.add_argument("--confirm", default=None, metavar="CANDIDATE")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(CANDIDATES))
        return
    os.makedirs(a.cache, exist_ok=True)
    if a.confirm:
        if a.confirm not in CANDIDATES:
            raise SystemExit(f"--confirm {a.confirm!r}: unknown candidate; --list shows them")
        c = ensure_half("confirmation", a.confirmation or os.path.join(a.cache, "confirmation"), a.cache,
                        [DEFAULT, a.confirm])
        describe(c, "confirmation")
        print(f"\nconfirmation half, all tracks: {a.confirm!r} vs {DEFAULT!r} (d = paired difference, 95 % CI by track)")
        print(fmt(table(c, [DEFAULT, a.confirm], None, 1, "confirmation", a.cache)))
        return
    c = ensure_half("selection", a.selection or os.path.join(a.cache, "selection"), a.cache)
    describe(c, "selection")
    names = list(CANDIDATES) if not a.only else [DEFAULT] + [m for m in a.only if m != DEFAULT]
    for size in SIZES:
        if size is not None and size >= len(c):
            print(f"\nsize {size}: the half has {len(c)} tracks, see 'all'")
            continue
        label = "all" if size is None else f"{size} ({a.draws} stratified draws, averaged)"
        print(f"\nselection half, collection size {label}: p@10 by soundtrack (points), "
              f"d = paired difference to {DEFAULT!r} with 95 % CI by track")
        print(fmt(table(c, names, size, a.draws, "selection", a.cache)), flush=True)
    with open(os.path.join(a.cache, "variants.log"), encoding="utf-8") as fh:
        seen = {line.split("\t")[2].strip() for line in fh if line.startswith("20")}
    print(f"\n{len(seen)} distinct variants on record in {os.path.join(a.cache, 'variants.log')}")


if __name__ == "__main__":
    main()
