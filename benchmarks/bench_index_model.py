"""What ``index --model`` costs with a track-level head (issue #21, item 3), against a patch-level head.

    python benchmarks/bench_index_model.py /tmp/devset --train 3 --tracks 8 --rounds 2

Trains two ``head`` classifiers on ``--train`` tracks per folder of DATASET (label =
folder): ``head_features="embedding"`` (patch level: one network, the class layer
folded on it) and ``"summary-all"`` (track level: both shipped networks on the same
patches, then the head on their mean and spread).  Then indexes the same ``--tracks``
other tracks into fresh indexes with each model (and with no model: the pretrained
network alone), ``--rounds`` times in alternating order, with the library's defaults
(spread:8 patches, descriptors) but no fingerprints, and prints the median seconds and
the ratio of each to the patch-level head.  Timing, not accuracy (see
``bench_head_features.py`` for that).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="a folder per label")
    ap.add_argument("--train", type=int, default=3, help="training tracks per folder")
    ap.add_argument("--tracks", type=int, default=8, help="tracks indexed per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--patches", type=int, default=4, help="patches per training track")
    a = ap.parse_args(argv)

    from recommender import Recommender
    from recommender.learn.classifier import MusicClassifier

    folders = sorted(d for d in os.listdir(a.dataset) if os.path.isdir(os.path.join(a.dataset, d)))
    train, rest = [], []
    for f in folders:
        files = sorted(os.path.join(a.dataset, f, x) for x in os.listdir(os.path.join(a.dataset, f)))
        train += [(p, f) for p in files[: a.train]]
        rest += files[a.train:]
    todo = rest[:: max(1, len(rest) // a.tracks)][: a.tracks]
    with tempfile.TemporaryDirectory() as tmp:
        music = os.path.join(tmp, "music")
        os.makedirs(music)
        for i, p in enumerate(todo):
            os.symlink(os.path.realpath(p), os.path.join(music, f"{i:02d}_{os.path.basename(p)}"))
        paths, labels = [p for p, _ in train], [f for _, f in train]
        models = {"none (pretrained only)": None}
        for feats in ("embedding", "summary-all"):
            t0 = time.perf_counter()
            clf = MusicClassifier("head", head_features=feats, patches_per_track=a.patches, validation_size=0,
                                  random_state=0).fit(paths, labels)
            models[feats] = clf.save(os.path.join(tmp, feats))
            print(f"trained {feats} head on {len(paths)} tracks in {time.perf_counter() - t0:.1f} s", flush=True)
        secs = {k: [] for k in models}
        for r in range(a.rounds):
            order = list(models) if r % 2 == 0 else list(models)[::-1]
            for name in order:
                idx = os.path.join(tmp, f"idx_{r}_{len(secs[name])}_{abs(hash(name))}")
                rec = Recommender(idx, model=models[name])
                t0 = time.perf_counter()
                rep = rec.update([music], progress=False, fingerprints=False)
                secs[name].append(time.perf_counter() - t0)
                assert rep.added == len(todo) and rep.failed == 0, rep
                rec.close()
    base = statistics.median(secs["embedding"])
    print(f"\nindexing {len(todo)} real tracks of {a.dataset} (spread:8, descriptors on, no fingerprints), "
          f"{a.rounds} rounds, median seconds:")
    for name, s in secs.items():
        m = statistics.median(s)
        print(f"  {name:<24s} {m:7.2f} s  ({m / len(todo):.2f} s/track)  ratio to the patch-level head "
              f"{m / base:.2f}x   runs: {', '.join(f'{x:.2f}' for x in s)}")


if __name__ == "__main__":
    main()
