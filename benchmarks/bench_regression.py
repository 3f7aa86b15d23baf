"""Regression benchmark: trained regressors against their baselines, in the same run.

Two targets known by construction:

* ``tempo``: synthesised tracks (accented clicks, off-beat hats, random bass notes) at a
  known BPM drawn uniformly from 70-170.  Rows: ``MusicRegressor`` head and classical,
  the library's descriptor estimator (``recommender.descriptors.estimate_tempo``), and
  predict-the-training-mean.  MAE, RMSE, R², Accuracy1 (±4 %), Accuracy2 (octave errors
  x2, x1/2, x3, x1/3 allowed).
* ``gain_db``: real music (a folder, e.g. the selection half of the dev collection,
  /tmp/devset) -- one 30-s excerpt per track at a random offset, scaled by a known gain
  drawn from -30..0 dB; the target is that gain.  Rows: head, classical, mean.

Splits by track (by soundtrack folder = artist for the real music, so no soundtrack is in
training and test).  Paired 95 % bootstrap CIs by track of the per-track differences
(absolute error; Accuracy1 hits) between each model and each baseline.

    python benchmarks/bench_regression.py --tempo-tracks 60 --real /tmp/devset --patches 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(__file__))
from retrieval import bootstrap_ci  # noqa: E402

SR = 16000


def tempo_track(bpm, seed, seconds=20.0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    period = 60.0 / bpm * SR
    y = np.zeros(n)
    L = 200
    click = np.exp(-np.arange(L) / 25.0) * np.sin(2 * np.pi * rng.uniform(800, 2500) * np.arange(L) / SR)
    note_f = rng.uniform(45, 110, size=int(n / period) + 2)
    for i, s in enumerate(np.arange(0.05 * SR, n - L, period).astype(int)):
        y[s : s + L] += (0.9 if i % 4 == 0 else 0.55) * click
        h = int(s + period / 2)
        if h + 150 < n and rng.random() < 0.8:
            y[h : h + 150] += 0.1 * rng.normal(size=150) * np.exp(-np.arange(150) / 25.0)
        m = min(n - s, int(period))
        y[s : s + m] += 0.15 * np.sin(2 * np.pi * note_f[i] * t[:m]) * np.exp(-t[:m] * 3)
    y += 0.003 * rng.normal(size=n)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def make_tempo_set(folder, n, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        bpm = float(rng.uniform(70, 170))
        p = os.path.join(folder, f"tempo{i:03d}.wav")
        sf.write(p, tempo_track(bpm, seed * 1000 + i), SR)
        rows.append((p, None, None, bpm))
    df = pd.DataFrame(rows, columns=["path", "artist", "split", "tempo"])
    df.attrs.update(task="regress", targets=["tempo"], source="synthetic tempo set")
    return df


def make_gain_set(folder, real, seed=0, limit=None):
    import pandas as pd

    sys.path.insert(0, os.path.dirname(__file__))
    from _common import audio_files

    from recommender.io import audio

    rng = np.random.default_rng(seed)
    rows = []
    for i, f in enumerate(audio_files(real, limit)):
        try:
            dur = audio.info(f).duration_s
            if dur < 20:
                continue
            off = float(rng.uniform(0, max(0.0, dur - 30)))
            y = audio.load(f, sr=SR, offset_s=off, duration_s=30.0)
        except Exception as e:  # noqa: BLE001 - a benchmark skips what it cannot read
            print(f"skip {f}: {e}", file=sys.stderr)
            continue
        g = float(rng.uniform(-30, 0))
        y = y / max(1e-9, np.abs(y).max()) * 0.9 * 10 ** (g / 20)
        p = os.path.join(folder, f"gain{i:03d}.wav")
        sf.write(p, y.astype(np.float32), SR)
        artist = os.path.relpath(f, real).split(os.sep)[0]
        rows.append((p, artist, None, g))
    df = pd.DataFrame(rows, columns=["path", "artist", "split", "gain_db"])
    df.attrs.update(task="regress", targets=["gain_db"], source=f"{real} at known gains")
    return df


def paired(a, b):
    d = np.asarray(a, float) - np.asarray(b, float)
    lo, hi = bootstrap_ci(d)
    return {"mean_diff": float(d.mean()), "ci95": [float(lo), float(hi)]}


def run(df, target, patches, seed, modes):
    from recommender.learn._targets import split_regression
    from recommender.learn.regression import MusicRegressor, evaluate_regression, tempo_accuracy

    df = split_regression(df, [target], test_size=0.3, validation_size=0.1, random_state=seed)
    out = {"target": target, "split": df.attrs["split_strategy"], "n_tracks": len(df), "rows": {}}
    preds = {}
    for mode in modes:
        t0 = time.perf_counter()
        reg = MusicRegressor(mode, patches_per_track=patches, random_state=seed).fit(df)
        rep = evaluate_regression(reg, df, tempo_baseline=(mode == modes[0]))
        row = rep["per_target"][target]
        out["rows"][mode] = {**row["model"], "alpha": reg.alpha_, "seconds": time.perf_counter() - t0}
        out["rows"]["mean_baseline"] = row["mean_baseline"]
        if "descriptor_tempo" in row:
            out["rows"]["descriptor_tempo"] = row["descriptor_tempo"]
            preds["descriptor_tempo"] = np.array([np.nan if v is None else v
                                                  for v in rep["predictions"]["descriptor_tempo"]])
        true = np.array(rep["predictions"]["true"][target])
        preds[mode] = np.array(rep["predictions"]["predicted"][target])
        preds["mean_baseline"] = np.full(len(true), reg.target_means_[0])
    out["n_test"] = len(true)
    cmp = {}
    for m in modes:
        for b in [k for k in preds if k not in modes]:
            e_m = np.abs(preds[m] - true)
            e_b = np.abs(np.nan_to_num(preds[b], nan=1e6) - true)
            cmp[f"{m} - {b}: abs error"] = paired(e_m, e_b)
            if target == "tempo":
                h_m = np.abs(preds[m] - true) <= 0.04 * true
                h_b = np.abs(np.nan_to_num(preds[b], nan=-1) - true) <= 0.04 * true
                cmp[f"{m} - {b}: accuracy1"] = paired(h_m, h_b)
                a2 = [tempo_accuracy(np.array([p]), np.array([t]))[1] for p, t in zip(preds[m], true)]
                b2 = [tempo_accuracy(np.array([p]), np.array([t]))[1] for p, t in zip(preds[b], true)]
                cmp[f"{m} - {b}: accuracy2"] = paired(a2, b2)
    out["paired"] = cmp
    return out


def print_results(r):
    """The table of one :func:`run` result (stdout)."""
    print(f"\n== {r['target']}: {r['n_tracks']} tracks, {r['n_test']} test; split {r['split']}")
    for name, m in r["rows"].items():
        acc = f"  Acc1 {m['accuracy1']:.3f}  Acc2 {m['accuracy2']:.3f}" if "accuracy1" in m else ""
        r2 = "n/a" if m["r2"] is None else f"{m['r2']:.3f}"
        print(f"  {name:<17s} MAE {m['mae']:8.3f}  RMSE {m['rmse']:8.3f}  R² {r2:>7}{acc}")
    for k, v in r["paired"].items():
        print(f"  {k:<40s} {v['mean_diff']:+8.3f}  [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tempo-tracks", type=int, default=60)
    ap.add_argument("--real", default=None, help="folder of real music for the known-gain target")
    ap.add_argument("--real-limit", type=int, default=None)
    ap.add_argument("--patches", type=int, default=8)
    ap.add_argument("--modes", default="classical,head")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.tempo_tracks:
            results.append(run(make_tempo_set(tmp, args.tempo_tracks, args.seed), "tempo", args.patches,
                               args.seed, modes))
        if args.real:
            results.append(run(make_gain_set(tmp, args.real, args.seed, args.real_limit), "gain_db", args.patches,
                               args.seed, modes))
    for r in results:
        print_results(r)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
