"""Train a genre classifier on a GTZAN-style folder, evaluate it, index with it.

    python examples/train_genres.py DATASET_DIR [--mode head] [--out models/genres]

DATASET_DIR holds one sub-folder per label (GTZAN: ``genres/blues/*.wav``,
``genres/jazz/*.wav`` ...).  The script

1. loads the dataset (unreadable files are listed and skipped),
2. splits it honestly: whole tracks, stratified by genre (by artist if the
   data had artists), 20 % test / 10 % validation, ``random_state=0``,
3. trains a :class:`~recommender.learn.classifier.MusicClassifier` (default ``head``:
   the pretrained network's embeddings + a logistic regression),
4. scores it on the test tracks (per track and per 3-s patch), writes
   ``report.json`` and PNG figures (confusion matrices, training curves),
5. saves the model (Keras ``.keras`` + JSON sidecar; loads with safe_mode),
6. indexes the test tracks with it (your genres become the tag space) and
   asks for the songs closest to one of them.

The same from the shell::

    recommender train DATASET_DIR --out models/genres --mode head
    recommender evaluate models/genres DATASET_DIR
    recommender classify --model models/genres song.mp3
    recommender index ~/Music --index indexes/genres --model models/genres
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset_dir")
    ap.add_argument("--mode", default="head", choices=["head", "finetune", "scratch", "classical"])
    ap.add_argument("--out", default="models/genres", help="model directory")
    ap.add_argument("--index", default=None, help="index directory (default OUT/index)")
    ap.add_argument("--patches", type=int, default=16, help="3-s patches per track")
    ap.add_argument("--min-tracks", type=int, default=5, help="drop genres with fewer tracks")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from recommender import Recommender
    from recommender.learn.datasets import drop_rare_classes, load_dataset, split_dataset, split_summary
    from recommender.learn.classifier import MusicClassifier, evaluate, write_report

    # 1-2. data and an honest split
    df = load_dataset(args.dataset_dir)
    for f in df.attrs["failures"]:
        print(f"skipped {f['path']}: {f['reason']}")
    df = drop_rare_classes(df, args.min_tracks)
    if df.attrs["dropped_classes"]:
        print(f"dropped genres with fewer than {args.min_tracks} tracks: {df.attrs['dropped_classes']}")
    df = split_dataset(df, test_size=0.2, validation_size=0.1, random_state=0)
    print(f"{len(df)} tracks, split {df.attrs['split_strategy']}")
    print(split_summary(df).to_string(), "\n")

    # 3. train (test rows are never seen by fit)
    clf = MusicClassifier(args.mode, patches_per_track=args.patches, random_state=0, verbose=True)
    clf.fit(df)
    print(f"trained {args.mode} on {clf.n_train_} tracks (+{clf.n_validation_} validation) "
          f"in {clf.fit_time_s_:.0f} s")

    # 4. evaluate on the held-out test tracks
    report = evaluate(clf, df)
    print(f"test: {report['n_test']} tracks; per track accuracy {report['accuracy']:.3f}, "
          f"macro-F1 {report['macro_f1']:.3f}; per patch accuracy {report['per_patch']['accuracy']:.3f}")
    for c, p, r in zip(report["classes"], report["per_track"]["precision"], report["per_track"]["recall"]):
        print(f"  {c:<15s} precision {p:.2f}  recall {r:.2f}")

    # 5. save (model + sidecar) and the report
    path = clf.save(args.out)
    written = write_report(report, os.path.join(path, "report"))
    print(f"model: {path}\nreport: {os.path.dirname(written['json'])}")

    # 6. an index whose tags are your genres
    if args.mode == "classical":
        print("a classical model cannot back an index (no patches, no embedding); stopping here")
        return 0
    test = df[df["split"] == "test"]
    rec = Recommender(args.index or os.path.join(path, "index"), model=path)
    print(rec.update(list(test["path"]), jobs=1))
    query = test["path"].iloc[0]
    print(f"\nclosest to {os.path.basename(query)} ({test['label'].iloc[0]}):")
    print(rec.similar(query, k=5, space="tags")[["rank", "path", "score", "shared_tags"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
