"""CLI commands ``train``, ``evaluate`` and ``predict`` (classifiers on your own labels).

Wired into ``recommender …`` by :mod:`recommender.cli.main` (``COMMANDS``).

* ``recommender train DATASET --out MODEL [--mode head|finetune|scratch|classical]``
  loads a dataset (a folder per label, a ``path,label[,artist][,split]`` CSV,
  or an FMA ``tracks.csv``), splits it honestly (by track; by artist when
  known; a split column in the data wins), trains on the training split,
  scores the held-out test split, saves the model directory and writes the
  report (JSON + PNG figures) into ``MODEL/report``.
* ``recommender evaluate MODEL DATASET`` scores a saved model on the
  dataset's test split, or on every track it was not trained on.
* ``recommender predict MODEL FILE...`` classifies files with any saved model
  (also ``classical``, which ``recommender classify --model`` cannot use).

A trained model also works wherever a model is accepted:
``recommender classify --model MODEL`` and ``recommender index --model MODEL``.

Exit codes: 0 success; 1 when a file could not be read (``predict``); 2 for
other errors.
"""

from __future__ import annotations

import os
import sys

from ._common import print_json

__all__ = ["add_commands"]


def _summary(report, keys=("accuracy", "macro_f1")):
    lines = []
    pt, pp = report.get("per_track"), report.get("per_patch")
    if pt is None:
        return ["no test tracks to score"]
    lines.append(f"test tracks: {report['n_test']} (patches: {report['n_test_patches']}); "
                 f"trained on {report['n_train']} (+{report['n_validation']} validation)")
    lines.append(f"split: {report.get('split_strategy') or 'n/a'}; " + "; ".join(report.get("notes", [])))
    lines.append(f"per track: accuracy {pt['accuracy']:.3f}  macro-F1 {pt['macro_f1']:.3f}")
    if pp:
        lines.append(f"per patch: accuracy {pp['accuracy']:.3f}  macro-F1 {pp['macro_f1']:.3f}")
    w = max(len(c) for c in report["classes"])
    lines.append(f"  {'class':<{w}}  precision  recall  support")
    for i, c in enumerate(report["classes"]):
        lines.append(f"  {c:<{w}}  {pt['precision'][i]:9.3f}  {pt['recall'][i]:6.3f}  {pt['support'][i]:7d}")
    lines.append("confusion (rows = true, columns = predicted):")
    for c, row in zip(report["classes"], pt["confusion"]):
        lines.append(f"  {c:<{w}}  " + " ".join(f"{v:4d}" for v in row))
    if report.get("failures"):
        lines.append(f"{len(report['failures'])} files could not be read (see report.json)")
    return lines


def _json_report(report, extra=None):
    keep = ("mode", "model", "classes", "accuracy", "macro_f1", "confusion", "n_train", "n_validation",
            "n_test", "n_test_patches", "per_track", "per_patch", "split_strategy", "notes", "failures",
            "fit_time_s", "predict_time_s")
    out = {k: report.get(k) for k in keep}
    out.update(extra or {})
    return out


def cmd_train(args) -> int:
    from ..learn.datasets import drop_rare_classes, load_dataset, split_dataset, split_summary
    from ..learn.classifier import MusicClassifier, evaluate, write_report

    df = load_dataset(args.dataset)
    load_failures = df.attrs.get("failures", [])
    dropped = {}
    if args.min_tracks > 1:
        df = drop_rare_classes(df, args.min_tracks)
        dropped = df.attrs.get("dropped_classes", {})
    df = split_dataset(df, test_size=args.test_size, validation_size=args.validation_size,
                       random_state=args.seed)
    if not args.json:
        print(f"{len(df)} tracks, {df['label'].nunique()} classes; split {df.attrs['split_strategy']}")
        if dropped:
            print("dropped classes with fewer than %d tracks: %s" % (
                args.min_tracks, ", ".join(f"{k} ({v})" for k, v in dropped.items())))
        print(split_summary(df).to_string())
    clf = MusicClassifier(args.mode, epochs=args.epochs, patches_per_track=args.patches,
                          random_state=args.seed, verbose=not args.json and sys.stderr.isatty())
    clf.fit(df)
    out = clf.save(args.out)
    report = evaluate(clf, df)
    report["failures"] = load_failures + clf.failures_ + report["failures"]
    report["dropped_classes"] = dropped
    written = write_report(report, args.report or os.path.join(out, "report"))
    if args.json:
        print_json(_json_report(report, {"model": out, "report": written, "dropped_classes": dropped}))
    else:
        print(f"trained {args.mode} in {clf.fit_time_s_:.1f} s; saved to {out}")
        print("\n".join(_summary(report)))
        print(f"report: {os.path.dirname(written['json'])}")
    return 0


def cmd_evaluate(args) -> int:
    from ..learn.classifier import evaluate, load_classifier, write_report

    clf = load_classifier(args.model)
    report = evaluate(clf, args.dataset)
    written = write_report(report, args.report) if args.report else {}
    if args.json:
        print_json(_json_report(report, {"report": written}))
    else:
        print(f"{clf.mode} model {clf.source_} ({len(clf.classes_)} classes)")
        print("\n".join(_summary(report)))
        if written:
            print(f"report: {args.report}")
    return 0


def cmd_predict(args) -> int:
    from ..learn.classifier import load_classifier

    clf = load_classifier(args.model)
    table, fails = clf.predict_proba_files(args.files, on_error="skip")
    out = []
    for f in args.files:
        p = os.path.abspath(f)
        if p not in table:
            reason = next((x["reason"] for x in fails if x["path"] == p), "failed")
            if args.json:
                out.append({"path": f, "error": reason})
            else:
                print(f"error: {f}: {reason}", file=sys.stderr)
            continue
        probs = table[p]
        order = probs.argsort()[::-1][: args.top]
        top = [[str(clf.classes_[i]), round(float(probs[i]), 6)] for i in order]
        if args.json:
            out.append({"path": f, "predicted": top[0][0], "top": top,
                        "probabilities": {str(c): round(float(v), 6) for c, v in zip(clf.classes_, probs)}})
        else:
            print(f"{f}: {top[0][0]}")
            for c, v in top:
                print(f"  {c:<20s} {v:6.3f}  {'#' * int(round(v * 40))}")
    if args.json:
        print_json(out)
    return 1 if fails else 0


def add_commands(sub):
    from ..models.trained import MODES  # the format's modes, without importing scikit-learn

    p = sub.add_parser("train", help="train a classifier on your own labels and evaluate it on held-out tracks",
                       description="Train a classifier on labelled audio (a folder per label, a "
                                   "path,label[,artist][,split] CSV, or an FMA tracks.csv), split honestly "
                                   "(by track; by artist when known; a given split wins), evaluate on the "
                                   "test split and save the model directory (usable with classify/index --model).")
    p.add_argument("dataset", help="folder per label, CSV, or FMA tracks.csv")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--mode", choices=MODES, default="head",
                   help="head (default, fast): frozen pretrained network + logistic regression; finetune: "
                        "whole network; scratch: small CNN; classical: MFCC/spectral statistics + LR")
    p.add_argument("--epochs", type=int, default=None, help="max epochs (finetune: 8, scratch: 30)")
    p.add_argument("--patches", type=int, default=16, help="patches analysed per track (default 16)")
    p.add_argument("--test-size", type=float, default=0.2, help="fraction of tracks for test (default 0.2)")
    p.add_argument("--validation-size", type=float, default=0.1,
                   help="fraction of tracks for validation (default 0.1)")
    p.add_argument("--min-tracks", type=int, default=0,
                   help="drop classes with fewer tracks than this (default: keep all)")
    p.add_argument("--seed", type=int, default=0, help="random_state for splits and training")
    p.add_argument("--report", default=None, help="report folder (default MODEL/report)")
    p.add_argument("--json", action="store_true", help="print the report summary as JSON")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a trained model on a labelled dataset",
                       description="Score a model saved by `recommender train` on the dataset's test split, "
                                   "or on every track the model was not trained or validated on.")
    p.add_argument("model", help="model directory")
    p.add_argument("dataset", help="folder per label, CSV, or FMA tracks.csv")
    p.add_argument("--report", default=None, help="also write report.json and figures into this folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify files with a trained model (any mode)")
    p.add_argument("model", help="model directory")
    p.add_argument("files", nargs="+")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)
