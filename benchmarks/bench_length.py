"""What finding a trustworthy length costs per track (issue #16, item 1).

For every audio file under FOLDER, times the header read alone
(``audio._probe_header``: what ``audio.info`` did before) and the full
``audio.info`` with an empty cache (header + the length checks of
``audio._settle_length``), and prints the extra cost per track, per minute
of audio, and as a share of indexing at ~1000x real time.  ``--mp3`` also
builds (with ffmpeg) a 4-minute MP3 with a Xing header and one without, the
format where the frame headers are counted.

    python benchmarks/bench_length.py /tmp/devset --mp3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

from recommender.io import audio


def _time(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        audio._info_cache.clear()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(files, rounds: int):
    rows = []
    for f in files:
        try:
            header = _time(lambda f=f: audio._probe_header(audio._check_path(f)), rounds)
            full = _time(lambda f=f: audio.info(f), rounds)
            inf = audio.info(f)
        except audio.AudioError as e:
            print(f"  skipped {f}: {e.reason}")
            continue
        rows.append((f, header, full, inf))
    return rows


def report(title: str, rows) -> None:
    if not rows:
        return
    extra = np.array([max(full - header, 0.0) for _, header, full, _ in rows])
    audio_s = np.array([inf.duration_s for *_, inf in rows])
    sources = {}
    for *_, inf in rows:
        sources[inf.duration_source] = sources.get(inf.duration_source, 0) + 1
    index_s = audio_s / 1000.0  # indexing at ~1000x real time
    print(f"{title}: {len(rows)} files, {audio_s.sum() / 60:.1f} min of audio, length from {sources}")
    print(f"  extra per track: median {np.median(extra) * 1e3:.2f} ms, max {extra.max() * 1e3:.2f} ms; "
          f"{extra.sum() / audio_s.sum() * 60e3:.3f} ms per minute of audio; "
          f"{extra.sum() / index_s.sum() * 100:.2f} % of indexing at 1000x real time")


def mp3_files(tmp: str) -> list[str]:
    sr = 44100
    rng = np.random.default_rng(0)
    t = np.arange(sr * 240) / sr
    y = 0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t))) + 0.05 * rng.standard_normal(len(t))
    wav = os.path.join(tmp, "src.wav")
    import soundfile as sf

    sf.write(wav, np.stack([y, y[::-1]], 1).astype(np.float32), sr)
    out = []
    for name, extra in [("xing.mp3", []), ("no-xing.mp3", ["-write_xing", "0"])]:
        p = os.path.join(tmp, name)
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", wav, "-c:a", "libmp3lame", "-q:a", "4",
                        *extra, p], check=True)  # fmt: skip
        out.append(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mp3", action="store_true", help="also time 4-minute MP3s with and without a Xing header")
    a = ap.parse_args(argv)
    if a.folder:
        files = sorted(os.path.join(d, n) for d, _, ns in os.walk(a.folder) for n in ns if audio.is_audio_path(n))
        report(a.folder, measure(files, a.rounds))
    if a.mp3:
        with tempfile.TemporaryDirectory() as tmp:
            for f in mp3_files(tmp):
                report(os.path.basename(f), measure([f], a.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
