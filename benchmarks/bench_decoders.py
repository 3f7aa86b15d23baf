"""Decoding the analysis windows: libsndfile (soundfile, what ``recommender.io.audio`` uses) vs FFmpeg (PyAV).

``recommender index`` decodes 8 windows of 3 s spread over each track (the
default ``spread:8`` sampling); since the int8 graph computes only live
filters (issue #20), decoding them is the largest part of the analysis.
This measures that decode alone, at the file's own rate in float32, for the
first ``--limit`` files of ``--devset`` (``/tmp/devset``, Ogg Vorbis, see
``../shared/DEVSET.md``): the same windows with libsndfile (seek + read) and
with FFmpeg through PyAV (seek to the packet before, decode up to the window's
end), rounds alternated, ms per track and the ratio against libsndfile in
the same run.  PyAV is not a dependency of the package (``pip install av``);
without it only libsndfile is timed.

Usage::

    python benchmarks/bench_decoders.py [--devset /tmp/devset] [--limit 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import numpy as np
import soundfile as sf

WINDOWS, WINDOW_S = 8, 3.0


def _starts(duration_s):
    return [max(0.0, duration_s * (i + 0.5) / WINDOWS - WINDOW_S / 2) for i in range(WINDOWS)]


def libsndfile_windows(path) -> int:
    """Decode the windows with libsndfile; the number of samples (per channel) decoded."""
    n = 0
    with sf.SoundFile(path) as s:
        sr = s.samplerate
        for t in _starts(s.frames / sr):
            s.seek(int(t * sr))
            n += len(s.read(int(WINDOW_S * sr), dtype="float32"))
    return n


def ffmpeg_windows(path) -> int:
    """Decode the windows with FFmpeg through PyAV; the number of samples (per channel) decoded."""
    import av

    n = 0
    with av.open(path) as c:
        st = c.streams.audio[0]
        sr = st.rate
        duration = float(st.duration * st.time_base) if st.duration else c.duration / 1e6
        for t in _starts(duration):
            c.seek(int(t / st.time_base), stream=st, backward=True)
            end = t + WINDOW_S
            for frame in c.decode(st):
                a = frame.to_ndarray()
                t0 = float(frame.pts * st.time_base)
                if t0 + a.shape[-1] / sr >= t:
                    n += a.shape[-1]
                if t0 + a.shape[-1] / sr >= end:
                    break
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", default="/tmp/devset")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.devset, "*", "*.ogg")))[: args.limit]
    if not files:
        raise SystemExit(f"no .ogg files under {args.devset}/*/")
    decoders = {"libsndfile": libsndfile_windows}
    try:
        import av  # noqa: F401

        decoders["ffmpeg (PyAV)"] = ffmpeg_windows
    except ImportError:
        print("PyAV is not installed: only libsndfile is timed (pip install av)")
    print(f"{len(files)} files of {args.devset}; {WINDOWS} windows of {WINDOW_S:g} s each; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    best = {k: np.inf for k in decoders}
    for _ in range(args.rounds):
        for name, fn in decoders.items():
            t = time.process_time()
            for f in files:
                fn(f)
            best[name] = min(best[name], (time.process_time() - t) / len(files) * 1e3)
    base = best["libsndfile"]
    for name, ms in best.items():
        print(f"  {name:14s} {ms:6.1f} ms CPU per track (best of {args.rounds})  {base / ms:4.2f}x libsndfile")


if __name__ == "__main__":
    main()
