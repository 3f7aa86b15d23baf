"""Compare the four training modes on one labelled dataset, split by track.

    python benchmarks/bench_training.py DATASET [--patches 16] [--min-tracks 5]

DATASET is anything ``recommender train`` reads (a folder per label, a CSV,
an FMA ``tracks.csv``).  Classes with fewer than ``--min-tracks`` tracks are
dropped (and listed).  One stratified split (by track, or by artist when the
data has artists; ``--test-size`` of the tracks for test) is shared by every
mode; each mode trains on the rest (holding out validation tracks for early
stopping / the choice of ``C``) and is scored on the test tracks, per track
(patch probabilities averaged) and per patch.

The baseline is the ``classical`` mode (MFCC/spectral/chroma statistics +
logistic regression) run in the same invocation: the table gives each mode's
accuracy / macro-F1 difference to it and its training-time ratio.

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
    ap.add_argument("dataset")
    ap.add_argument("--modes", default="classical,head,scratch,finetune",
                    help="comma-separated; 'head:embedding' = head on the embedding only")
    ap.add_argument("--patches", type=int, default=16, help="patches (classical: 10-s clips) per track")
    ap.add_argument("--patches-finetune", type=int, default=8)
    ap.add_argument("--epochs-finetune", type=int, default=8)
    ap.add_argument("--epochs-scratch", type=int, default=30)
    ap.add_argument("--min-tracks", type=int, default=5)
    ap.add_argument("--test-size", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--reports", default=None, help="write each mode's report (JSON + PNG) under this folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

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
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    base = next((r for r in rows if r["mode"] == "classical"), rows[0])
    print()
    print(f"test tracks: {rows[0]['n_test']}; baseline = {base['mode']} (same split, same run)")
    hdr = ("| mode | track accuracy | track macro-F1 | patch accuracy | Δacc vs base | fit time | "
           "fit time / base | predict (test) | patches/track | epochs |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r in rows:
        print(f"| {r['mode']} | {r['track_acc']:.3f} | {r['track_f1']:.3f} | {r['patch_acc']:.3f} | "
              f"{r['track_acc'] - base['track_acc']:+.3f} | {r['fit_s']:.0f} s | "
              f"{r['fit_s'] / base['fit_s']:.2f}x | {r['predict_s']:.0f} s | {r['patches']} | "
              f"{r['epochs'] or '-'} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"dataset": args.dataset, "args": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
