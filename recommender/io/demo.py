"""A small synthetic collection for trying the library with no music at hand.

Four clearly different styles, three tracks each, rendered with NumPy and
written as FLAC/WAV/OGG files (the tracks of one style share an ``album`` tag):

* ``ballad`` — slow, soft decaying piano-like tones;
* ``techno`` — four-on-the-floor kick, hi-hats, a saw-tooth bass line, 128 BPM;
* ``rock`` — distorted power chords over a kick/snare beat, ~120 BPM;
* ``ambient`` — slow swelling pads and filtered noise, no beat.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from .._utils import atomic_write, check_choice

__all__ = ["STYLES", "synth_track", "make_demo_collection"]

STYLES = ("ballad", "techno", "rock", "ambient")
SR = 22050


def _env(n, attack, decay, sr=SR):
    t = np.arange(n) / sr
    a = np.minimum(1.0, t / max(attack, 1e-4))
    return a * np.exp(-t / decay)


def _tone(freq, dur, sr=SR, partials=(1.0, 0.5, 0.25, 0.12), detune=0.0):
    t = np.arange(int(dur * sr)) / sr
    y = sum(a * np.sin(2 * np.pi * freq * (k + 1) * (1 + detune * k) * t) for k, a in enumerate(partials))
    return y


def _saw(freq, dur, sr=SR):
    t = np.arange(int(dur * sr)) / sr
    return 2.0 * ((freq * t) % 1.0) - 1.0


def _place(out, x, start):
    s = int(start)
    if s >= len(out):
        return
    e = min(len(out), s + len(x))
    out[s:e] += x[: e - s]


def _kick(sr=SR):
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    f = 50 + 100 * np.exp(-t * 30)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 12)


def _noise_hit(rng, dur, decay, sr=SR, hp=True):
    n = int(dur * sr)
    x = rng.standard_normal(n)
    if hp:
        x = np.diff(x, prepend=0.0)
    return x * np.exp(-np.arange(n) / sr / decay)


def synth_track(style: str, *, seed: int = 0, duration_s: float = 20.0, sr: int = SR) -> np.ndarray:
    """Render one track of ``style`` (see module doc) as mono float32 in [-1, 1]."""
    check_choice("style", style, STYLES)
    rng = np.random.default_rng(seed)
    n = int(duration_s * sr)
    out = np.zeros(n)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    major = [0, 2, 4, 5, 7, 9, 11]
    if style == "ballad":
        beat = 60 / rng.uniform(60, 76)
        t = 0.0
        while t < duration_s:
            deg = major[rng.integers(0, 7)] + 12 * rng.integers(1, 3)
            f = root * 2 ** (deg / 12)
            note = _tone(f, min(3.0, duration_s - t), sr, partials=(1.0, 0.4, 0.15, 0.05)) * _env(
                int(min(3.0, duration_s - t) * sr), 0.005, 0.9, sr
            )
            _place(out, 0.3 * note, t * sr)
            if rng.random() < 0.5:
                _place(out, 0.15 * _tone(f / 2, 2.0, sr) * _env(int(2.0 * sr), 0.005, 0.8, sr), t * sr)
            t += beat * rng.choice([1, 1, 2])
    elif style == "techno":
        beat = 60 / 128.0
        kick, i = _kick(sr), 0
        t = 0.0
        while t < duration_s:
            _place(out, 0.8 * kick, t * sr)
            _place(out, 0.15 * _noise_hit(rng, 0.05, 0.01, sr), (t + beat / 2) * sr)
            bass_f = root / 2 * 2 ** ([0, 0, 7, 5][i % 4] / 12)
            b = _saw(bass_f, beat / 2, sr) * _env(int(beat / 2 * sr), 0.002, 0.12, sr)
            _place(out, 0.3 * b, (t + beat / 2) * sr)
            t += beat
            i += 1
    elif style == "rock":
        beat = 60 / rng.uniform(112, 128)
        kick = _kick(sr)
        t, i = 0.0, 0
        chords = [0, 5, 7, 3]
        while t < duration_s:
            if i % 2 == 0:
                _place(out, 0.6 * kick, t * sr)
            else:
                _place(out, 0.4 * _noise_hit(rng, 0.2, 0.08, sr, hp=False), t * sr)
            _place(out, 0.08 * _noise_hit(rng, 0.04, 0.01, sr), (t + beat / 2) * sr)
            if i % 4 == 0:
                f = root * 2 ** (chords[(i // 4) % 4] / 12)
                d = 4 * beat
                ch = _saw(f, d, sr) + _saw(f * 1.5, d, sr) + 0.5 * _saw(f * 2, d, sr)
                ch = np.tanh(4.0 * ch) * _env(int(d * sr), 0.01, 3.0, sr)
                _place(out, 0.25 * ch, t * sr)
            t += beat
            i += 1
    else:  # ambient
        t = 0.0
        while t < duration_s:
            d = rng.uniform(5, 8)
            f = root * 2 ** (major[rng.integers(0, 7)] / 12)
            m = int(d * sr)
            sw = np.sin(np.pi * np.arange(m) / m) ** 2
            pad = sum(_tone(f * r, d, sr, partials=(1.0, 0.2), detune=0.002) for r in (1, 1.25, 1.5))
            _place(out, 0.12 * pad * sw, t * sr)
            t += d * 0.6
        noise = np.convolve(rng.standard_normal(n), np.ones(64) / 64, mode="same")
        out += 0.05 * noise * (0.5 + 0.5 * np.sin(2 * np.pi * 0.05 * np.arange(n) / sr))
    peak = np.max(np.abs(out)) or 1.0
    return (0.8 * out / peak).astype(np.float32)


def make_demo_collection(folder, *, per_style: int = 3, duration_s: float = 20.0, seed: int = 0) -> list[str]:
    """Write ``per_style`` tracks of each style under ``folder/<style>/``.

    Files are written once; existing files are kept (so re-running is cheap).
    Returns the list of paths.  Each file is written all-or-nothing
    (:func:`recommender._utils.atomic_write`), so an interrupted run leaves no
    half-written track behind.
    """
    paths = []
    exts = ["flac", "wav", "ogg"]
    for si, style in enumerate(STYLES):
        d = os.path.join(os.fspath(folder), style)
        os.makedirs(d, exist_ok=True)
        for j in range(per_style):
            ext = exts[j % len(exts)]
            p = os.path.join(d, f"{style}_{j + 1:02d}.{ext}")
            if not os.path.exists(p):
                y = synth_track(style, seed=seed + 100 * si + j, duration_s=duration_s)
                fmt = {"flac": "FLAC", "wav": "WAV", "ogg": "OGG"}[ext]
                tags = {"artist": f"Demo {style.title()} Band", "album": style, "title": f"{style} {j + 1}"}
                atomic_write(p, functools.partial(_write, y=y, fmt=fmt, ext=ext, tags=tags), binary=None)
            paths.append(p)
    return paths


def _write(path, *, y, fmt, ext, tags):
    """Write ``y`` as one tagged ``fmt`` file at ``path``."""
    import soundfile as sf

    # libsndfile 1.2 can crash on one large Ogg Vorbis write: write in chunks
    with sf.SoundFile(path, "w", SR, 1, format=fmt, subtype="VORBIS" if ext == "ogg" else None) as f:
        for i in range(0, len(y), 16384):
            f.write(y[i : i + 16384])
    _tag(path, fmt, **tags)


def _tag(path, fmt, **tags):
    if fmt == "WAV":
        return  # WAV carries no portable tags; the folder name (= style) is the album
    try:
        if fmt == "FLAC":
            from mutagen.flac import FLAC as F
        else:
            from mutagen.oggvorbis import OggVorbis as F
        f = F(path)
        for k, v in tags.items():
            f[k] = v
        f.save()
    except Exception:  # tags are a nicety for the demo
        pass
