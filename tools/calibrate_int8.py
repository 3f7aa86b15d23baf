"""Measure the log-mel statistics that calibrate the int8 front end of musicnn.

Usage::

    python tools/calibrate_int8.py /tmp/devset --out recommender/models/weights/int8_calibration.npz

Reads every audio file under the folder (the first ``--seconds`` of each; the
selection half of the dev collection, see ``../shared/DEVSET.md``: never the
confirmation half), computes its log-mel spectrogram as the analysis does
(:func:`recommender.features.frontend.logmel`) and writes, each track weighing
the same:

* ``mean`` (96,): E[l_f], the mean log-mel value per band;
* ``cross`` (7, 96, 96): E[l_{t,f} l_{t+d,g}] for time lags d = 0..6 (the
  timbral filters span 7 frames);
* ``lag`` (128,): E[l_{t,f} l_{t+d,f}] averaged over bands, d = 0..127 (the
  longest temporal filter);
* ``logmel_hi``: the ``--quantile`` quantile of all log-mel values (the top
  of the int8 input range; larger values saturate), with ``quantile``;
* ``n_tracks``, ``n_frames``.

:func:`recommender.models.onnx_graph.build_onnx` turns them into the second
moments of each front-end convolution's input windows, which choose the
rounding of its int8 weights (GPTQ, Frantar et al. 2022), and into the input
quantisation range.  The output is deterministic for the same audio.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

N_CROSS, N_LAG = 7, 128


def track_moments(lm):
    """Second moments of one log-mel spectrogram ``lm`` (T, 96), float64."""
    lm = lm.astype(np.float64)
    t = len(lm)
    cross = np.stack([lm[: t - d].T @ lm[d:] / (t - d) for d in range(N_CROSS)])
    lag = np.array([np.mean(lm[: t - d] * lm[d:]) for d in range(N_LAG)])
    return lm.mean(0), cross, lag


def main(argv=None):
    from recommender.features import frontend as F
    from recommender.io import audio

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--quantile", type=float, default=0.99999)
    args = ap.parse_args(argv)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(args.folder, followlinks=True) for f in fs)
    edges = np.linspace(0.0, 10.0, 10001)
    hist = np.zeros(len(edges) - 1, np.int64)
    sums, n, frames = None, 0, 0
    for f in files:
        try:
            y = audio.load(f, duration_s=args.seconds)
        except Exception as exc:  # noqa: BLE001 -- not audio: say so and go on
            print(f"skipped {f}: {exc}", file=sys.stderr)
            continue
        lm = F.logmel(y)
        if len(lm) <= N_LAG:
            print(f"skipped {f}: shorter than {N_LAG} frames", file=sys.stderr)
            continue
        m = track_moments(lm)
        sums = m if sums is None else tuple(a + b for a, b in zip(sums, m))
        hist += np.histogram(np.clip(lm, 0, 10), edges)[0]
        n, frames = n + 1, frames + len(lm)
    if not n:
        sys.exit(f"{args.folder}: no audio file of at least {N_LAG} frames")
    cdf = np.cumsum(hist) / hist.sum()
    hi = float(edges[1:][np.searchsorted(cdf, args.quantile)])
    arrays = {"mean": sums[0] / n, "cross": sums[1] / n, "lag": sums[2] / n,
              "logmel_hi": np.float64(hi), "quantile": np.float64(args.quantile),
              "n_tracks": np.int64(n), "n_frames": np.int64(frames)}
    # written by hand (fixed order and timestamps): the same audio gives the same bytes
    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(v, dtype=np.float32 if v.dtype == np.float64 else v.dtype))
            zf.writestr(zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue(),
                        compress_type=zipfile.ZIP_DEFLATED)
    print(f"{args.out}: {n} tracks, {frames} frames; log-mel {args.quantile:g} quantile {hi:.3f}")


if __name__ == "__main__":
    main()
