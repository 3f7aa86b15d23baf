"""Choose the ``head`` mode's features on cached layer outputs (issue #21, item 0).

    python benchmarks/bench_head_features.py cache DATASET --out CACHE.npz
    python benchmarks/bench_head_features.py select CACHE.npz [--folds 5 --repeats 3]

``cache`` runs every shipped network (:func:`recommender.models.available_models`)
once over the ``--patches`` patches per track that ``MusicClassifier("head")``
analyses (same sampling, same log-mel) and keeps, per patch, the
``penultimate`` (200) and ``pool`` (1506) layers of each network.

``select`` scores candidate head recipes on those numbers by repeated
stratified K-fold over *tracks* (every track is a test track once per repeat;
within each training fold, ``C`` is chosen by the library's own grouped
cross-validation, exactly as ``fit`` does).  It prints track accuracy,
macro-F1 and log loss per candidate, and a paired 95 % bootstrap CI (by
track) of each candidate's accuracy minus today's head (``embedding``).
Use it on the selection half only; confirm with ``bench_training.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def build_cache(dataset, out, *, patches=16, threads=1):
    from layer_cache import track_patches

    from recommender.analysis import Sampling
    from recommender.learn.datasets import load_dataset
    from recommender.models import available_models, load_model

    df = load_dataset(dataset)
    arrays = {"paths": np.array(df["path"], dtype=str), "labels": np.array(df["label"], dtype=str)}
    lens = []
    per = {}
    t0 = time.perf_counter()
    models = {name: load_model(name, threads=threads) for name in available_models()}
    for i, p in enumerate(df["path"]):
        P, _ = track_patches(p, Sampling.parse(patches))
        lens.append(len(P))
        for name, m in models.items():
            _, emb, pool = m.predict_patches(P, with_pool=True)
            per.setdefault(f"{name}/penultimate", []).append(emb.astype(np.float16))
            per.setdefault(f"{name}/pool", []).append(pool.astype(np.float16))
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{len(df)} tracks, {time.perf_counter() - t0:.0f} s", flush=True)
    arrays["patch_lens"] = np.array(lens, dtype=np.int64)
    arrays.update({k: np.concatenate(v) for k, v in per.items()})
    np.savez(out + ".tmp.npz", **arrays)
    os.replace(out + ".tmp.npz", out)
    print(f"{len(df)} tracks -> {out} ({time.perf_counter() - t0:.0f} s)")


def load_cache(path):
    """(paths, labels, {layer key: list of (m_i, d) float32 arrays})."""
    with np.load(path, allow_pickle=False) as z:
        cuts = np.cumsum(z["patch_lens"])[:-1]
        layers = {k: np.split(z[k].astype(np.float32), cuts) for k in z.files
                  if k not in ("paths", "labels", "patch_lens")}
        return [str(p) for p in z["paths"]], np.array(z["labels"], dtype=str), layers


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache")
    c.add_argument("dataset")
    c.add_argument("--out", required=True)
    c.add_argument("--patches", type=int, default=16)
    c.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("select")
    s.add_argument("cache")
    s.add_argument("--candidates", default=None, help="comma-separated recipe names (default: all)")
    s.add_argument("--folds", type=int, default=5)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.cmd == "cache":
        build_cache(a.dataset, a.out, patches=a.patches, threads=a.threads)
    else:
        select(a)


def select(a):
    from retrieval import bootstrap_ci
    from sklearn.model_selection import StratifiedKFold

    from recommender.learn import features as hf

    _, labels, layers = load_cache(a.cache)
    classes = np.array(sorted(set(labels)))
    y = np.searchsorted(classes, labels)
    names = a.candidates.split(",") if a.candidates else list(hf.CANDIDATES)
    correct = {n: [] for n in names}
    loss = {n: [] for n in names}
    Cs = {n: [] for n in names}
    t0 = time.perf_counter()
    for r in range(a.repeats):
        cv = StratifiedKFold(n_splits=a.folds, shuffle=True, random_state=a.seed + r)
        ok = {n: np.zeros(len(y), bool) for n in names}
        ll = {n: np.zeros(len(y)) for n in names}
        for tr, te in cv.split(np.zeros(len(y)), y):
            for n in names:
                P, C = hf.fit_predict_cached(n, layers, y, tr, te, n_classes=len(classes), random_state=a.seed)
                ok[n][te] = P.argmax(1) == y[te]
                ll[n][te] = -np.log(np.clip(P[np.arange(len(te)), y[te]], 1e-7, 1))
                Cs[n].append(C)
        for n in names:
            correct[n].append(ok[n])
            loss[n].append(ll[n])
        print(f"repeat {r + 1}/{a.repeats} done, {time.perf_counter() - t0:.0f} s", flush=True)
    base = "embedding" if "embedding" in names else names[0]
    acc_base = np.mean(correct[base], axis=0)  # per track, averaged over repeats
    rows = []
    print(f"\n{len(y)} tracks, {len(classes)} classes, {a.folds}-fold x {a.repeats}; baseline {base}")
    print("| recipe | track accuracy | log loss | Δacc vs embedding [95 % CI] | C chosen (median) |")
    print("|---|---|---|---|---|")
    for n in names:
        acc_t = np.mean(correct[n], axis=0)
        d = acc_t - acc_base
        lo, hi = bootstrap_ci(d, random_state=a.seed) if n != base else (0.0, 0.0)
        row = {"recipe": n, "accuracy": float(acc_t.mean()), "log_loss": float(np.mean(loss[n])),
               "delta": float(d.mean()), "ci": [float(lo), float(hi)], "C_median": float(np.median(Cs[n]))}
        rows.append(row)
        print(f"| {n} | {row['accuracy']:.3f} | {row['log_loss']:.3f} | {row['delta']:+.3f} "
              f"[{lo:+.3f}, {hi:+.3f}] | {row['C_median']:g} |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"cache": a.cache, "args": vars(a), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
