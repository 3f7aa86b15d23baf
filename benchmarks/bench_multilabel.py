"""Multi-label benchmark: instruments mixed in synthesised tracks, labels known by construction.

Each track mixes a random, non-empty subset of four instruments -- a sine ``bass``
(40-90 Hz notes), noise ``hats`` (high-passed bursts on eighth notes), a click ``kick``
(a 55-Hz thump with a click on quarter notes) and a chord ``pad`` (a slow-attack triad of
harmonic-rich tones, 150-500 Hz) -- each at a random level (-15..0 dB), tempo and pitch,
over low noise; half of the tracks also carry an unlabelled distractor (a square-wave lead,
300-900 Hz).  The labels are which instruments are present.  The data go through the
user's path: a ``path,labels`` CSV (``bass;pad``), ``load_targets``, ``split_multilabel``
(iterative stratification by track).

Rows, scored on the same test tracks of the same run: ``MultiLabelClassifier`` ``head``
(per-label logistic regressions on the musicnn embeddings) and ``classical`` (the same on
the MFCC/spectral/chroma statistics of the descriptor summary -- the MFCC-statistics
baseline), and the label prior (every track gets the training frequency of each label:
ROC-AUC 0.5, PR-AUC = the label's test prevalence).  Per-label ROC-AUC and PR-AUC, macro
and micro averages, macro-F1 at the thresholds chosen on the validation tracks, and a
paired 95 % bootstrap CI by track of each model's macro ROC-AUC / PR-AUC difference to the
others (test tracks resampled with replacement; resamples where a label has only one class
are skipped and counted).

    python benchmarks/bench_multilabel.py --tracks 60 --seconds 8 --patches 4
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SR = 16000
INSTRUMENTS = ("bass", "hats", "kick", "pad")


def _db(rng):
    return 10 ** (rng.uniform(-15, 0) / 20)


def mixture(has, seed, seconds=8.0, distractor=False):
    """One synthesised track: (n,) float32 at :data:`SR`, peak 0.8.

    ``has`` : 4 booleans, which of :data:`INSTRUMENTS` play.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = 60.0 / rng.uniform(80, 150)  # seconds per quarter note
    y = 0.003 * rng.normal(size=n)
    if has[0]:  # sine bass: a note per beat, 40-90 Hz
        f = rng.uniform(40, 90, size=int(seconds / beat) + 2)[(t / beat).astype(int)]
        y += 0.5 * _db(rng) * np.sin(2 * np.pi * np.cumsum(f) / SR)
    if has[1]:  # noise hats: first-differenced noise bursts on eighth notes
        L = 800
        g = 0.35 * _db(rng)
        for s in np.arange(0, n - L, beat / 2 * SR).astype(int):
            b = rng.normal(size=L) * np.exp(-np.arange(L) / rng.uniform(80, 200))
            y[s : s + L] += g * np.diff(b, prepend=0)
    if has[2]:  # click kick: a decaying 55-Hz thump with a click, on quarter notes
        k = np.arange(2400)
        kick = np.sin(2 * np.pi * (55 + 90 * np.exp(-k / 300.0)) * k / SR) * np.exp(-k / 700.0)
        kick[:40] += np.sign(rng.normal(size=40)) * 0.8
        g = 0.7 * _db(rng)
        for s in np.arange(0, n - len(k), beat * SR).astype(int):
            y[s : s + len(k)] += g * kick
    if has[3]:  # chord pad: a triad of 5-harmonic tones, slow attack, a chord per bar
        bar = 4 * beat
        roots = rng.uniform(150, 260, size=int(seconds / bar) + 2)
        root = roots[(t / bar).astype(int)]
        env = np.minimum(1.0, (t % bar) / 0.4)
        pad = np.zeros(n)
        for ratio in (1.0, rng.choice([1.189, 1.26]), 1.498):
            ph = 2 * np.pi * np.cumsum(root * ratio) / SR
            pad += sum(np.sin(h * ph) / h for h in range(1, 6))
        y += 0.12 * _db(rng) * env * pad
    if distractor:  # an unlabelled square-wave lead, a note per eighth
        f = rng.uniform(300, 900, size=int(seconds / beat * 2) + 2)[(t / beat * 2).astype(int)]
        y += 0.08 * _db(rng) * np.sign(np.sin(2 * np.pi * np.cumsum(f) / SR))
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def make_mix_set(folder, n, seed=0, seconds=8.0):
    """Write ``n`` mixtures and their ``path,labels`` CSV under ``folder``; the CSV's path."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        has = np.zeros(len(INSTRUMENTS), bool)
        while not has.any():
            has = rng.random(len(INSTRUMENTS)) < 0.5
        name = f"mix{i:03d}.wav"
        sf.write(os.path.join(folder, name),
                 mixture(has, seed * 1000 + i, seconds, distractor=bool(rng.random() < 0.5)), SR)
        lines.append(name + "," + ";".join(s for s, h in zip(INSTRUMENTS, has) if h))
    csv = os.path.join(folder, "mixes.csv")
    with open(csv, "w") as fh:
        fh.write("path,labels\n" + "\n".join(lines) + "\n")
    return csv


def _macro(P, Y, metric):
    return float(np.mean([metric(Y[:, j], P[:, j]) for j in range(Y.shape[1])]))


def paired_macro_ci(Pa, Pb, Y, *, n_boot=1000, seed=0):
    """Paired bootstrap by track of macro ROC-AUC and PR-AUC differences ``a - b``.

    Returns {"roc_auc" | "pr_auc": {"diff", "ci95"}, "n_boot", "skipped"}; resamples in which
    a label has only one class are skipped (and counted).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(seed)
    out = {}
    for key, metric in (("roc_auc", roc_auc_score), ("pr_auc", average_precision_score)):
        out[key] = {"diff": _macro(Pa, Y, metric) - _macro(Pb, Y, metric)}
    d = {"roc_auc": [], "pr_auc": []}
    skipped = 0
    for _ in range(n_boot):
        i = rng.integers(0, len(Y), len(Y))
        s = Y[i].sum(0)
        if (s == 0).any() or (s == len(i)).any():
            skipped += 1
            continue
        for key, metric in (("roc_auc", roc_auc_score), ("pr_auc", average_precision_score)):
            d[key].append(_macro(Pa[i], Y[i], metric) - _macro(Pb[i], Y[i], metric))
    for key, vals in d.items():
        v = np.asarray(vals)
        out[key]["ci95"] = [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))] if len(v) else None
    out.update(n_boot=n_boot, skipped=skipped)
    return out


def run(csv, *, patches=4, seed=0, modes=("head", "classical"), test_size=0.3, validation_size=0.15):
    """Train each mode on one split of the mixtures; the metrics of every row and the paired CIs."""
    from recommender.learn._targets import load_targets, split_multilabel
    from recommender.learn.multilabel import (
        MultiLabelClassifier,
        evaluate_multilabel,
        multilabel_metrics,
    )

    labels = list(INSTRUMENTS)
    df = split_multilabel(load_targets(csv, task="multilabel"), labels, test_size=test_size,
                          validation_size=validation_size, random_state=seed)
    out = {"labels": labels, "n_tracks": len(df), "split": df.attrs["split_strategy"],
           "n_per_split": df["split"].value_counts().to_dict(), "rows": {}}
    probs, Y, priors = {}, None, None
    for mode in modes:
        t0 = time.perf_counter()
        clf = MultiLabelClassifier(mode, labels=labels, patches_per_track=patches, random_state=seed).fit(df)
        rep = evaluate_multilabel(clf, df)
        order = np.argsort(rep["predictions"]["path"])
        P = np.asarray(rep["predictions"]["probability"])[order]
        Yt = np.asarray(rep["predictions"]["true"])[order]
        if Y is None:
            Y, priors, paths = Yt, clf.label_priors_, sorted(rep["predictions"]["path"])
        elif not np.array_equal(Yt, Y):
            raise RuntimeError(f"{mode}: scored other test tracks than {modes[0]}")
        probs[mode] = P
        out["rows"][mode] = {k: rep[k] for k in ("per_label", "macro", "micro")}
        out["rows"][mode].update(C=clf.C_, seconds=time.perf_counter() - t0)
    # the label prior: every test track gets each label's training frequency
    probs["prior"] = np.tile(priors, (len(Y), 1))
    rep = multilabel_metrics(probs["prior"], Y, labels, np.full(len(labels), 0.5))
    out["rows"]["prior"] = {k: rep[k] for k in ("per_label", "macro", "micro")}
    out["n_test"], out["test_paths"] = len(Y), paths
    names = list(probs)
    out["paired"] = {f"{a} - {b}": paired_macro_ci(probs[a], probs[b], Y, seed=seed)
                     for i, a in enumerate(names) for b in names[i + 1:]}
    return out


def print_results(r):
    """The multi-label table of :func:`run`'s result (stdout)."""
    print(f"\n== multilabel (synthesised instrument mixtures): {r['n_tracks']} tracks "
          f"{r['n_per_split']}; split {r['split']}")
    labels = r["labels"]
    hdr = "| row | " + " | ".join(f"{n} ROC / PR" for n in labels) + \
        " | macro ROC-AUC | macro PR-AUC | micro ROC-AUC | micro PR-AUC | macro F1 | time |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    for name, m in r["rows"].items():
        cells = " | ".join(f"{f(m['per_label'][n]['roc_auc'])} / {f(m['per_label'][n]['pr_auc'])}" for n in labels)
        t = f"{m['seconds']:.0f} s" if "seconds" in m else "-"
        print(f"| {name} | {cells} | {f(m['macro']['roc_auc'])} | {f(m['macro']['pr_auc'])} | "
              f"{f(m['micro']['roc_auc'])} | {f(m['micro']['pr_auc'])} | {f(m['macro']['f1'])} | {t} |")
    print("test support per label: " + ", ".join(
        f"{n} {next(iter(r['rows'].values()))['per_label'][n]['support']}/{r['n_test']}" for n in labels))
    for k, v in r["paired"].items():
        cis = "  ".join(f"Δmacro {m} {v[m]['diff']:+.3f} [{v[m]['ci95'][0]:+.3f}, {v[m]['ci95'][1]:+.3f}]"
                        if v[m]["ci95"] else f"Δmacro {m} {v[m]['diff']:+.3f} [n/a]" for m in ("roc_auc", "pr_auc"))
        print(f"  {k:<20s} {cis}  (paired bootstrap by track, {v['n_boot'] - v['skipped']} resamples)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--patches", type=int, default=4, help="patches (classical: 10-s clips) per track")
    ap.add_argument("--modes", default="head,classical")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = run(make_mix_set(tmp, args.tracks, args.seed, args.seconds), patches=args.patches, seed=args.seed,
                modes=args.modes.split(","))
    print_results(r)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(r, fh, indent=1)


if __name__ == "__main__":
    main()
