"""End-to-end real-time factor of classification, split by stage, against a
naive baseline measured in the same run.

Library: ``analyze_files`` (decode threads overlapping the CNN, patches from
several tracks batched into fixed-shape compiled calls, the model resident).
Baseline: for each file, decode it whole, compute the log-mel, then call the
CNN once per patch (batch of 1), as musicnn's own extractor does.  With
``--rebuild`` the baseline also rebuilds the model for every file, exactly like
musicnn's ``extractor()``.

Usage::

    python benchmarks/bench_classify.py [--music DIR] [--limit N] [--rebuild]

Without ``--music`` a synthetic collection (12 × 60 s) is written to a
temporary folder.  Prints seconds of audio per wall-clock second (×RT).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import Timer, audio_files, synthetic_collection  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--music", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--rebuild", action="store_true", help="baseline rebuilds the model per file")
    ap.add_argument("--sampling", default="full")
    args = ap.parse_args()

    import numpy as np

    from recommender import audio, features
    from recommender.analysis import analyze_files
    from recommender.models import load_model

    if args.music:
        files = audio_files(args.music, args.limit)
    else:
        tmp = tempfile.mkdtemp(prefix="bench-classify-")
        files = synthetic_collection(tmp, per_style=3, duration_s=60.0)[: args.limit]
    total_s = sum(audio.info(f).duration_s for f in files)
    print(f"{len(files)} files, {total_s / 60:.1f} min of audio, {os.cpu_count()} cores")

    t0 = time.perf_counter()
    model = load_model()
    model.predict_patches(np.zeros((1, 187, 96), np.float32))  # compile outside the timings
    print(f"model load + compile: {time.perf_counter() - t0:.2f} s (once per process)")

    # --- stage split (sequential, to attribute time) ---
    td, tm, tc = Timer(), Timer(), Timer()
    n_patches = 0
    for f in files:
        with td:
            y = np.concatenate(list(audio.stream(f, sr=features.SR)))
        with tm:
            P = features.patches(features.logmel(y))
        with tc:
            model.predict_patches(P)
        n_patches += len(P)
    stages = td.t + tm.t + tc.t

    # --- library end to end ---
    t0 = time.perf_counter()
    n_ok = sum(1 for r in analyze_files(files, model=model, sampling=args.sampling) if hasattr(r, "probs"))
    lib = time.perf_counter() - t0

    # --- naive baseline ---
    t0 = time.perf_counter()
    for f in files:
        m = model
        if args.rebuild:
            import tensorflow as tf

            from recommender.models import _build_for_baseline  # type: ignore[attr-defined]

            tf.keras.backend.clear_session()
            m = _build_for_baseline()
        y = audio.load(f, sr=features.SR)
        P = features.patches(features.logmel(y))
        for p in P:
            m.predict_patches(p[None], batch_size=1)
    base = time.perf_counter() - t0

    print()
    print(f"{'stage':<28s}{'seconds':>10s}{'x real time':>14s}{'share':>8s}")
    for name, t in (("decode + resample", td.t), ("log-mel + patches", tm.t), ("CNN", tc.t)):
        print(f"{name:<28s}{t:>10.2f}{total_s / t:>14.0f}{100 * t / stages:>7.0f}%")
    print(f"{'sum of stages (sequential)':<28s}{stages:>10.2f}{total_s / stages:>14.0f}")
    print()
    print(f"{'end to end':<28s}{'seconds':>10s}{'x real time':>14s}")
    print(f"{'library (analyze_files)':<28s}{lib:>10.2f}{total_s / lib:>14.0f}   ({n_ok}/{len(files)} files, {n_patches} patches, sampling={args.sampling})")
    label = "baseline (1 patch/call" + (", rebuilt)" if args.rebuild else ")")
    print(f"{label:<28s}{base:>10.2f}{total_s / base:>14.0f}")
    print(f"speed-up over baseline: {base / lib:.2f}x")


if __name__ == "__main__":
    main()
