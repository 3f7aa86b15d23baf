"""Compare the training modes against their baselines, in one run: classification,
regression and multi-label (``--tasks``, default all three).

    python benchmarks/bench_training.py DATASET [--patches 16] [--min-tracks 5]
    python benchmarks/bench_training.py --tasks regress,multilabel [--real /tmp/devset]

``classify`` needs DATASET (skipped, with a note, without it); ``regress`` and
``multilabel`` make their own data with labels known by construction:

* ``regress`` (:mod:`bench_regression`): tempo of ``--tempo-tracks`` synthesised
  tracks at known BPM -- ``MusicRegressor`` classical and head against the
  descriptor tempo estimator and predict-the-training-mean (MAE, RMSE, R²,
  Accuracy1/2, paired CIs by track); with ``--real FOLDER`` also ``gain_db``:
  real music scaled by a known gain.
* ``multilabel`` (:mod:`bench_multilabel`): ``--ml-tracks`` synthesised
  mixtures of bass, hats, kick and pad -- ``MultiLabelClassifier`` head and
  classical (MFCC/spectral/chroma statistics + per-label logistic regression)
  against the label prior (per-label ROC-AUC / PR-AUC, macro, micro, paired
  bootstrap CI by track of the macro differences).

Classification:

DATASET is anything ``recommender train`` reads (a folder per label, a CSV,
an FMA ``tracks.csv``).  Classes with fewer than ``--min-tracks`` tracks are
dropped (and listed).  One stratified split (by track, or by artist when the
data has artists; ``--test-size`` of the tracks for test) is shared by every
mode; each mode trains on the rest (holding out validation tracks for early
stopping / the choice of ``C``) and is scored on the test tracks, per track
(patch probabilities averaged) and per patch.

The baseline is the ``classical`` mode (MFCC/spectral/chroma statistics +
logistic regression) run in the same invocation (``--baseline`` picks another
row, e.g. ``head``): the table gives each mode's accuracy difference to it
with a paired 95 % bootstrap CI over the test tracks, and its training-time
ratio.  A ``head:RECIPE`` row trains the head on another feature recipe
(:data:`recommender.learn.features.RECIPES`, e.g. ``head:summary-all``: the
mean and spread over patches of the pool and penultimate layers of both
shipped networks); for a track-level recipe the "patch accuracy" is the
track accuracy (it predicts whole tracks).

    python benchmarks/bench_training.py /tmp/devset --modes head,head:summary-all --baseline head

``--patches-finetune`` / ``--epochs-finetune`` bound the fine-tuning run,
which back-propagates through the whole network (~5 patches/s on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", default=None, help="labelled data for the classify task")
    ap.add_argument("--tasks", default="classify,regress,multilabel", help="comma-separated subset")
    ap.add_argument("--modes", default="classical,head,scratch,finetune",
                    help="comma-separated; 'head:embedding' = head on the embedding only")
    ap.add_argument("--patches", type=int, default=16, help="patches (classical: 10-s clips) per track")
    ap.add_argument("--patches-finetune", type=int, default=8)
    ap.add_argument("--epochs-finetune", type=int, default=8)
    ap.add_argument("--epochs-scratch", type=int, default=30)
    ap.add_argument("--min-tracks", type=int, default=5)
    ap.add_argument("--test-size", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", default="classical", help="the row the others are compared with")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--reports", default=None, help="write each mode's report (JSON + PNG) under this folder")
    ap.add_argument("--tempo-tracks", type=int, default=60, help="regress: synthesised tempo tracks (0: none)")
    ap.add_argument("--real", default=None, help="regress: folder of real music for the known-gain target")
    ap.add_argument("--real-limit", type=int, default=None)
    ap.add_argument("--regress-patches", type=int, default=4)
    ap.add_argument("--ml-tracks", type=int, default=60, help="multilabel: synthesised mixtures")
    ap.add_argument("--ml-seconds", type=float, default=8.0)
    ap.add_argument("--ml-patches", type=int, default=4)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in tasks if t not in ("classify", "regress", "multilabel")]
    if bad:
        ap.error(f"--tasks {args.tasks!r}: unknown {bad} (rule: a subset of classify,regress,multilabel)")
    results = {"args": vars(args)}
    if "classify" in tasks:
        if args.dataset is None:
            print("classify: skipped (no DATASET given)")
        else:
            results.update(dataset=args.dataset, rows=classify(args))
    if "regress" in tasks:
        results["regress"] = regress(args)
    if "multilabel" in tasks:
        results["multilabel"] = multilabel(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)


def classify(args):
    """The classification rows (one split shared by every mode); the rows."""
    from recommender.learn.datasets import drop_rare_classes, load_dataset, split_dataset, split_summary
    from recommender.learn.classifier import MusicClassifier, evaluate, write_report

    df = load_dataset(args.dataset)
    df = drop_rare_classes(df, args.min_tracks)
    df = split_dataset(df, test_size=args.test_size, validation_size=0.15, random_state=args.seed)
    print(f"dataset {args.dataset}: {len(df)} tracks; dropped {df.attrs.get('dropped_classes')}; "
          f"split {df.attrs['split_strategy']}")
    print(split_summary(df).to_string())
    rows = []
    for spec in args.modes.split(","):
        mode, _, variant = spec.partition(":")
        kw = {"patches_per_track": args.patches, "random_state": args.seed}
        if mode == "finetune":
            kw.update(patches_per_track=args.patches_finetune, epochs=args.epochs_finetune)
        if mode == "scratch":
            kw.update(epochs=args.epochs_scratch)
        if variant:
            kw["head_features"] = variant
        clf = MusicClassifier(mode, **kw)
        t0 = time.perf_counter()
        clf.fit(df)
        fit_s = time.perf_counter() - t0
        rep = evaluate(clf, df)
        if args.reports:
            write_report(rep, os.path.join(args.reports, spec.replace(":", "_")))
        h = clf.history_
        row = {
            "mode": spec,
            "track_acc": rep["accuracy"],
            "track_f1": rep["macro_f1"],
            "patch_acc": rep["per_patch"]["accuracy"],
            "fit_s": fit_s,
            "predict_s": rep["predict_time_s"],
            "n_test": rep["n_test"],
            "patches": kw["patches_per_track"],
            "epochs": len(h.get("epoch", [])) or None,
            "C": getattr(clf, "C_", None),
            "temperature": getattr(clf, "temperature_", None),
            "correct": {p["path"]: p["label"] == p["predicted"] for p in rep["predictions"]},
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "correct"}), flush=True)

    base = next((r for r in rows if r["mode"] == args.baseline), rows[0])
    print()
    print(f"test tracks: {rows[0]['n_test']}; baseline = {base['mode']} (same split, same run); "
          "CI: paired 95 % bootstrap over the test tracks both rows scored")
    hdr = ("| mode | track accuracy | track macro-F1 | patch accuracy | Δacc vs base [95 % CI] | fit time | "
           "fit time / base | predict (test) | patches/track | epochs |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r in rows:
        r["delta_ci"] = paired_ci(r["correct"], base["correct"], args.seed)
        lo, hi = r["delta_ci"]
        print(f"| {r['mode']} | {r['track_acc']:.3f} | {r['track_f1']:.3f} | {r['patch_acc']:.3f} | "
              f"{r['track_acc'] - base['track_acc']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {r['fit_s']:.0f} s | "
              f"{r['fit_s'] / base['fit_s']:.2f}x | {r['predict_s']:.0f} s | {r['patches']} | "
              f"{r['epochs'] or '-'} |")
    return rows


def regress(args):
    """The regression rows of :mod:`bench_regression` (same split and run for models and baselines)."""
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_regression as br

    modes = ["classical", "head"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.tempo_tracks:
            df = br.make_tempo_set(tmp, args.tempo_tracks, args.seed)
            results.append(br.run(df, "tempo", args.regress_patches, args.seed, modes))
        if args.real:
            df = br.make_gain_set(tmp, args.real, args.seed, args.real_limit)
            results.append(br.run(df, "gain_db", args.regress_patches, args.seed, modes))
    for r in results:
        br.print_results(r)
    return results


def multilabel(args):
    """The multi-label rows of :mod:`bench_multilabel` (models and label prior on the same test tracks)."""
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_multilabel as bm

    with tempfile.TemporaryDirectory() as tmp:
        csv = bm.make_mix_set(tmp, args.ml_tracks, args.seed, args.ml_seconds)
        r = bm.run(csv, patches=args.ml_patches, seed=args.seed)
    bm.print_results(r)
    return r


def paired_ci(correct, base_correct, seed):
    """Paired 95 % bootstrap CI of the accuracy difference over the tracks both rows scored."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    from retrieval import bootstrap_ci

    both = sorted(set(correct) & set(base_correct))
    if not both:
        return (float("nan"), float("nan"))
    d = np.array([float(correct[p]) - float(base_correct[p]) for p in both])
    lo, hi = bootstrap_ci(d, random_state=seed)
    return (float(lo), float(hi))


if __name__ == "__main__":
    main()
