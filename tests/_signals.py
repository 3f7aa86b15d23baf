"""Deterministic synthetic test signals (no downloads, no randomness left to chance).

:func:`musicnn_reference_signal` is the waveform behind
``tests/fixtures/musicnn_reference.npz``; both the fixture generator and the
tests regenerate it from this recipe.
"""

from __future__ import annotations

import numpy as np

REFERENCE_SR = 16000
REFERENCE_SECONDS = 12.0
REFERENCE_SEED = 20190801


def musicnn_reference_signal(
    *, sr: int = REFERENCE_SR, seconds: float = REFERENCE_SECONDS, seed: int = REFERENCE_SEED
) -> np.ndarray:
    """A 12 s, 16 kHz mono mixture exercising the whole mel range.

    Recipe (all from ``np.random.default_rng(seed)``, whose PCG64 stream is
    stable across NumPy versions):

    * harmonic tones: a new note every 0.5 s, fundamental drawn from
      MIDI 40-76, 6 harmonics with 1/h amplitudes, 10 ms attack and
      exponential decay, peak 0.35;
    * a logarithmic chirp from 60 Hz to 7 kHz over the whole clip, amplitude 0.12;
    * white-noise bursts: 150 ms long, every 0.75 s, random gain 0.05-0.3,
      band-limited by a first-order difference on every other burst;
    * a click track at 120 BPM (2 ms decaying clicks, amplitude 0.6);
    * the last 1.5 s of the second patch are quiet (x 0.01) to cover low
      mel energies.

    The mixture is scaled so its peak is 0.95, which makes several mel bins
    loud (> 100 in power) so the float16 quantisation of the front end
    matters.

    Returns
    -------
    y : np.ndarray, shape (int(sr * seconds),), float32
    """
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n, dtype=np.float64) / sr
    y = np.zeros(n, dtype=np.float64)

    # harmonic notes
    note_len = int(0.5 * sr)
    for start in range(0, n, note_len):
        midi = rng.integers(40, 77)
        f0 = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        seg = t[start : start + note_len] - t[start]
        env = np.minimum(seg / 0.01, 1.0) * np.exp(-seg * 4.0)
        tone = sum(np.sin(2 * np.pi * h * f0 * seg + rng.uniform(0, 2 * np.pi)) / h
                   for h in range(1, 7) if h * f0 < sr / 2)
        y[start : start + note_len] += 0.35 * env * tone

    # logarithmic chirp 60 Hz -> 7 kHz
    f_lo, f_hi = 60.0, 7000.0
    k = np.log(f_hi / f_lo) / seconds
    y += 0.12 * np.sin(2 * np.pi * f_lo * (np.exp(k * t) - 1.0) / k)

    # noise bursts
    burst = int(0.15 * sr)
    for i, start in enumerate(range(int(0.3 * sr), n - burst, int(0.75 * sr))):
        noise = rng.standard_normal(burst)
        if i % 2:
            noise = np.diff(noise, prepend=0.0)
        y[start : start + burst] += rng.uniform(0.05, 0.3) * noise * np.hanning(burst)

    # click track, 120 BPM
    click = np.exp(-np.arange(int(0.002 * sr)) / (0.0004 * sr))
    for start in range(0, n - len(click), int(0.5 * sr)):
        y[start : start + len(click)] += 0.6 * click

    # a quiet stretch at the end of the second 187-frame patch
    q0, q1 = int(4.5 * sr), int(5.98 * sr)
    y[q0:q1] *= 0.01

    y *= 0.95 / np.max(np.abs(y))
    return y.astype(np.float32)
