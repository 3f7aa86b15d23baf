"""End-to-end real-time factor of analysis, split by stage, against the
naive baseline, all measured in the same run.

Library: :func:`recommender.analysis.analyze_files` (decode threads
overlapping the CNN, patches from several tracks batched into fixed-shape
compiled calls, the model resident), with whole tracks (``full``) and with the
indexing default (:data:`recommender.recommender.DEFAULT_SAMPLING`, e.g.
``spread:8``: a few windows per track, only those decoded).

Naive baseline, the way musicnn's own ``extractor()`` works: for every file
the network is built again (``build_musicnn`` + ``load_weights`` from
``msd_musicnn.npz``, a fresh compiled function), the whole file is decoded
and turned into log-mel patches, and the CNN is called once per patch.  It
is measured on the same patches as the library (every patch for ``full``,
the same windows for the default sampling); ``--no-rebuild`` keeps one model.

Configurations are interleaved (A B C D, A B C D, ...) and the median of
``--repeat`` rounds is reported, because the machine may be shared: the load
average is printed with the figures.

Usage::

    python benchmarks/bench_classify.py [--music DIR] [--limit N] [--repeat R]
                                        [--decode-threads 1 2] [--no-rebuild]

Without ``--music`` a synthetic collection (12 x 60 s) is written to a
temporary folder.  ``--limit N`` picks N files spread evenly over the sorted
list.  Prints seconds of audio per wall-clock second (x RT).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import Timer, audio_files, synthetic_collection  # noqa: E402


def _spread_subset(files, n):
    if not n or n >= len(files):
        return files
    step = len(files) / n
    return [files[int(i * step)] for i in range(n)]


def _rebuild_model():
    """A freshly built and loaded network, as musicnn's extractor makes per file."""
    import keras

    from recommender._utils import sha256_file as _sha256
    from recommender.models import WEIGHTS_DIR, TagModel
    from recommender.models.musicnn import build_musicnn, load_weights

    keras.backend.clear_session()
    with open(os.path.join(WEIGHTS_DIR, "msd_musicnn.json"), encoding="utf-8") as fh:
        meta = json.load(fh)
    arch = meta["architecture"]
    weights = os.path.join(WEIGHTS_DIR, meta["weights_file"])
    net = build_musicnn(len(meta["tags"]), n_frames=arch["n_frames"], midend_filters=arch["midend_filters"],
                        backend_units=arch["backend_units"])
    load_weights(net, weights)
    return TagModel("baseline", net, meta, _sha256(weights))


def naive(files, model, sampling, *, rebuild):
    """One file after the other: (rebuild), decode whole, log-mel, one patch per CNN call."""
    import numpy as np

    from recommender import features
    from recommender.io import audio
    from recommender.analysis import patch_starts

    n = 0
    for f in files:
        m = _rebuild_model() if rebuild else model
        y = audio.load(f, sr=features.SR)
        starts = patch_starts(len(y), sampling)
        if starts is None:
            P = features.patches(features.logmel(y))
        else:
            half = features.N_FFT // 2
            ypad = np.pad(y, (half, features.PATCH_WINDOW_SAMPLES), mode="reflect")
            W = features.PATCH_WINDOW_SAMPLES
            P = np.stack([features.window_logmel(ypad[s : s + W]) for s in starts])
        for p in P:
            m.predict_patches(p[None], batch_size=1)
        n += len(P)
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--music", default=None)
    ap.add_argument("--limit", type=int, default=None, help="files, spread over the sorted list")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds (median reported)")
    ap.add_argument("--decode-threads", type=int, nargs="+", default=[1, 2],
                    help="decode_threads values tried for the library, full tracks (default: 1 2)")
    ap.add_argument("--no-rebuild", action="store_true", help="baseline keeps one model (no rebuild per file)")
    ap.add_argument("--no-stages", action="store_true", help="skip the sequential stage split")
    args = ap.parse_args()
    rebuild = not args.no_rebuild

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import soundfile as sf

    from recommender import features
    from recommender.io import audio
    from recommender.analysis import PipelineStats, Sampling, analyze_files
    from recommender.models import load_model

    from recommender.recommender import DEFAULT_SAMPLING as default_sampling
    if args.music:
        files = _spread_subset(audio_files(args.music), args.limit)
    else:
        tmp = tempfile.mkdtemp(prefix="bench-classify-")
        files = _spread_subset(synthetic_collection(tmp, per_style=3, duration_s=60.0), args.limit)
    total_s = sum(audio.info(f).duration_s for f in files)
    load0 = os.getloadavg()
    print(f"{len(files)} files, {total_s / 60:.1f} min of audio, {os.cpu_count()} cores, "
          f"load average {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}")

    t0 = time.perf_counter()
    model = load_model()
    for b in (1, 2, 4, 8):  # compile every batch shape outside the timings
        model.predict_patches(np.zeros((b, 187, 96), np.float32), batch_size=b)
    print(f"model load + warm-up: {time.perf_counter() - t0:.2f} s (once per process); runtime "
          f"{model.runtime}, batch {model.batch_size}; the naive baseline runs the Keras model on TensorFlow")

    # --- stage split (sequential, one stage at a time, to attribute time) ---
    if not args.no_stages:
        import soxr

        td, tr, tm, tc = Timer(), Timer(), Timer(), Timer()
        n_patches = 0
        for f in files:
            with td:
                y, sr0 = sf.read(f, dtype="float32", always_2d=True)
            with tr:
                y = audio.to_mono(y)
                y = soxr.resample(y, sr0, features.SR, quality=audio.RESAMPLE_QUALITY) if sr0 != features.SR else y
            with tm:
                P = features.patches(features.logmel(y))
            with tc:
                model.predict_patches(P)
            n_patches += len(P)
        stages = td.t + tr.t + tm.t + tc.t
        print()
        print(f"{'stage (full tracks, sequential)':<34s}{'seconds':>9s}{'x real time':>13s}{'share':>7s}")
        for name, t in (("decode (libsndfile/vorbis)", td.t), ("mono + resample (soxr HQ)", tr.t),
                        ("log-mel + patches", tm.t), (f"CNN ({n_patches / tc.t:.1f} patches/s)", tc.t)):
            print(f"{name:<34s}{t:>9.2f}{total_s / t:>13.0f}{100 * t / stages:>6.0f}%")
        print(f"{'sum of stages':<34s}{stages:>9.2f}{total_s / stages:>13.0f}")

    # --- end to end, interleaved ---
    runs = {}
    for dt in args.decode_threads:
        runs[f"library full, decode_threads={dt}"] = ("lib", "full", dt)
    lib_default = f"library {default_sampling.name} (default)"
    runs[lib_default] = ("lib", default_sampling, 2)
    base_name = "naive" + (" rebuilt per file" if rebuild else " (model kept)")
    runs[f"{base_name}, full"] = ("naive", Sampling.full(), None)
    runs[f"{base_name}, {default_sampling.name}"] = ("naive", default_sampling, None)
    times = {k: [] for k in runs}
    stats = {}
    patches = {}
    for _ in range(args.repeat):
        for name, (kind, samp, dt) in runs.items():
            t0 = time.perf_counter()
            if kind == "lib":
                st = PipelineStats()
                for _ in analyze_files(files, model=model, sampling=samp, decode_threads=dt, stats=st):
                    pass
                if st.failed:
                    print(f"  {st.failed} files failed", file=sys.stderr)
                stats[name] = st
                patches[name] = st.patches
            else:
                patches[name] = naive(files, model, samp, rebuild=rebuild)
            times[name].append(time.perf_counter() - t0)
    load1 = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    base_full = med[f"{base_name}, full"]
    print()
    print(f"{'end to end (median of ' + str(args.repeat) + ')':<42s}{'seconds':>9s}{'x real time':>13s}"
          f"{'vs naive full':>15s}{'patches':>9s}")
    for name in runs:
        t = med[name]
        print(f"{name:<42s}{t:>9.2f}{total_s / t:>13.0f}{base_full / t:>14.2f}x{patches[name]:>9d}")
    lib_sp, base_sp = med[lib_default], med[f"{base_name}, {default_sampling.name}"]
    best_full = min(v for k, v in med.items() if k.startswith("library full"))
    print(f"speed-up, same patches: full {base_full / best_full:.2f}x, "
          f"{default_sampling.name} {base_sp / lib_sp:.2f}x")
    print()
    print("library pipeline (last round):")
    for name, st in stats.items():
        print(f"  {name:<36s} {st.patches / st.cnn_s:5.1f} patches/s in the CNN; {st}")
    print(f"load average at the end: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}")


if __name__ == "__main__":
    main()
