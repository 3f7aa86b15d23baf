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

``--task`` picks what is learned; by default it is read from the data
(:func:`recommender.learn._targets.detect_task`): a folder or a CSV with one
``label`` per track is ``classify``; numeric columns (``path,tempo,energy``)
are ``regress`` (a joint ridge, :mod:`recommender.learn.regression`; ``--target``
keeps some columns); a ``labels`` cell with ``;``-separated labels or one 0/1
column per label is ``multilabel`` (:mod:`recommender.learn.multilabel`).
``evaluate`` and ``predict`` follow the saved model's task.

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


def _task_of(args):
    if args.task != "auto":
        return args.task
    p = os.path.abspath(os.path.expanduser(args.dataset))
    if not os.path.isfile(p) or not p.lower().endswith(".csv"):
        return "classify"
    from ..learn._targets import detect_task
    from ..learn.datasets import _looks_like_fma

    if _looks_like_fma(p):
        return "classify"
    task, why = detect_task(p)
    if not args.json:
        print(f"task: {task} ({why})")
    return task


def _print_regression(rep):
    print(f"test tracks: {rep['n_test']}; trained on {rep['n_train']} (+{rep['n_validation']} validation); "
          f"split: {rep.get('split_strategy') or 'n/a'}; " + "; ".join(rep.get("notes", [])))
    for t, row in rep["per_target"].items():
        print(f"  {t}:")
        for who, m in row.items():
            r2 = "n/a" if m["r2"] is None else f"{m['r2']:.3f}"
            acc = f"  Acc1 {m['accuracy1']:.3f}  Acc2 {m['accuracy2']:.3f}" if "accuracy1" in m else ""
            mae = "n/a" if m["mae"] is None else f"{m['mae']:.4g}"
            rmse = "n/a" if m["rmse"] is None else f"{m['rmse']:.4g}"
            print(f"    {who:<17s} MAE {mae:>8}  RMSE {rmse:>8}  R² {r2:>6}{acc}  (n={m['n']})")
    for note in rep.get("notes", []):
        if "worse than predicting the training mean" in note:
            print(f"  warning: {note}")


def _print_multilabel(rep):
    print(f"test tracks: {rep['n_test']}; trained on {rep['n_train']} (+{rep['n_validation']} validation); "
          f"split: {rep.get('split_strategy') or 'n/a'}; " + "; ".join(rep.get("notes", [])))
    if not rep["n_test"]:
        return
    def f(v):
        return "  n/a" if v is None else f"{v:5.3f}"

    w = max(len(n) for n in rep["labels"])
    print(f"  {'label':<{w}}  ROC-AUC  PR-AUC  (chance)  F1     threshold  support")
    for n, m in rep["per_label"].items():
        print(f"  {n:<{w}}  {f(m['roc_auc'])}    {f(m['pr_auc'])}   ({m['pr_auc_chance']:.3f})   {f(m['f1'])}  "
              f"{m['threshold']:.3f}      {m['support']}")
    for k in ("macro", "micro"):
        print(f"  {k:<{w}}  {f(rep[k]['roc_auc'])}    {f(rep[k]['pr_auc'])}             {f(rep[k]['f1'])}")


def _train_targets(args, task) -> int:
    from ..learn._targets import load_targets, split_multilabel, split_regression

    from ..models.trained import TASK_MODES

    if args.mode not in TASK_MODES[task]:
        print(f"error: --mode {args.mode}: --task {task} trains in {', '.join(TASK_MODES[task])} mode",
              file=sys.stderr)
        return 2
    df = load_targets(args.dataset, task=task, targets=args.target or None)
    split = {"test_size": args.test_size, "validation_size": args.validation_size, "random_state": args.seed}
    if task == "regress":
        from ..learn.regression import MusicRegressor, evaluate_regression, write_regression_report

        df = split_regression(df, df.attrs["targets"], **split)
        model = MusicRegressor(args.mode, patches_per_track=args.patches, random_state=args.seed,
                               epochs=args.epochs, verbose=not args.json and sys.stderr.isatty())
        evaluate, write, show = evaluate_regression, write_regression_report, _print_regression
    else:
        from ..learn.multilabel import MultiLabelClassifier, evaluate_multilabel, write_multilabel_report

        df = split_multilabel(df, df.attrs["labels"], **split)
        model = MultiLabelClassifier(args.mode, patches_per_track=args.patches, random_state=args.seed,
                                     verbose=not args.json and sys.stderr.isatty())
        evaluate, write, show = evaluate_multilabel, write_multilabel_report, _print_multilabel
    if not args.json:
        print(f"{len(df)} tracks; split {df.attrs['split_strategy']}: "
              + ", ".join(f"{s} {int((df['split'] == s).sum())}" for s in ("train", "validation", "test")))
    model.fit(df)
    out = model.save(args.out)
    report = evaluate(model, df)
    report["failures"] = df.attrs.get("failures", []) + model.failures_ + report["failures"]
    written = write(report, args.report or os.path.join(out, "report"))
    if args.json:
        print_json({**{k: v for k, v in report.items() if k != "predictions"}, "model": out, "report": written})
    else:
        print(f"trained {task} ({args.mode}) in {model.fit_time_s_:.1f} s; saved to {out}")
        show(report)
        print(f"report: {os.path.dirname(written['json'])}")
    return 0


def _saved_task(path):
    from ..models.trained import model_dir, read_sidecar

    d = model_dir(path)
    if d is None:
        return "classify"
    return read_sidecar(d)[0].get("task", "classify")


def cmd_train(args) -> int:
    task = _task_of(args)
    if task != "classify":
        return _train_targets(args, task)
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
                          head_features=args.head_features, random_state=args.seed, verbose=not args.json and sys.stderr.isatty())
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
    task = _saved_task(args.model)
    if task != "classify":
        if task == "regress":
            from ..learn.regression import evaluate_regression as evaluate
            from ..learn.regression import write_regression_report as write

            show = _print_regression
        else:
            from ..learn.multilabel import evaluate_multilabel as evaluate
            from ..learn.multilabel import write_multilabel_report as write

            show = _print_multilabel
        report = evaluate(args.model, args.dataset)
        written = write(report, args.report) if args.report else {}
        if args.json:
            print_json({**{k: v for k, v in report.items() if k != "predictions"}, "report": written})
        else:
            show(report)
        return 0
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


def _predict_targets(args, task) -> int:
    if task == "regress":
        from ..learn.regression import load_regressor

        m = load_regressor(args.model)
        table, fails = m.predict_files(args.files)
        names = m.targets_
    else:
        from ..learn.multilabel import load_multilabel

        m = load_multilabel(args.model)
        table, fails = m.predict_proba_files(args.files)
        names = [str(c) for c in m.classes_]
    out = []
    for f in args.files:
        p = os.path.abspath(f)
        if p not in table:
            reason = next((x["reason"] for x in fails if x["path"] == p), "failed")
            out.append({"path": f, "error": reason})
            if not args.json:
                print(f"error: {f}: {reason}", file=sys.stderr)
            continue
        v = table[p]
        if task == "regress":
            row = {"path": f, "values": {n: round(float(x), 6) for n, x in zip(names, v)}}
            if not args.json:
                print(f"{f}: " + "  ".join(f"{n}={x:.4g}" for n, x in zip(names, v)))
        else:
            labs = [n for n, x, t in zip(names, v, m.thresholds_) if x >= t]
            row = {"path": f, "labels": labs, "probabilities": {n: round(float(x), 6) for n, x in zip(names, v)}}
            if not args.json:
                print(f"{f}: {';'.join(labs) or '(none)'}")
                for n, x, t in zip(names, v, m.thresholds_):
                    print(f"  {n:<20s} {x:6.3f} (threshold {t:.3f}) {'#' * int(round(x * 40))}")
        out.append(row)
    if args.json:
        print_json(out)
    return 1 if fails else 0


def cmd_predict(args) -> int:
    task = _saved_task(args.model)
    if task != "classify":
        return _predict_targets(args, task)
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
    from ..learn.features import RECIPES  # numpy only
    from ..models.trained import MODES  # the format's modes, without importing scikit-learn

    p = sub.add_parser("train", help="train a classifier on your own labels and evaluate it on held-out tracks",
                       description="Train a classifier on labelled audio (a folder per label, a "
                                   "path,label[,artist][,split] CSV, or an FMA tracks.csv), split honestly "
                                   "(by track; by artist when known; a given split wins), evaluate on the "
                                   "test split and save the model directory (usable with classify/index --model).")
    p.add_argument("dataset", help="folder per label, CSV, or FMA tracks.csv")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--task", choices=("auto", "classify", "regress", "multilabel"), default="auto",
                   help="auto (default): from the data -- one label per track: classify; numeric columns "
                        "(path,tempo,...): regress; a labels cell 'calm;sad' or 0/1 columns per label: "
                        "multilabel (regress trains in head, finetune or classical mode; multilabel in head or "
                        "classical)")
    p.add_argument("--target", action="append", default=None, metavar="COLUMN",
                   help="regress: learn only this column (repeatable; default every numeric column)")
    p.add_argument("--mode", choices=MODES, default="head",
                   help="head (default, fast): frozen pretrained network + logistic regression; finetune: "
                        "whole network; scratch: small CNN; classical: MFCC/spectral statistics + LR")
    p.add_argument("--head-features", default="summary-all", choices=RECIPES, metavar="RECIPE",
                   help="head mode: what the classifier learns from (default summary-all: mean and spread of "
                        "both shipped networks' pool and penultimate layers, per track; 'embedding': the "
                        "200-d patch embedding, one network, cheaper to index with; see "
                        "recommender.learn.features)")
    p.add_argument("--epochs", type=int, default=None,
                   help="max epochs (finetune: 8, regression finetune: 6, scratch: 30)")
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
