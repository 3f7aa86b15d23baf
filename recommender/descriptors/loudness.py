"""Integrated loudness after ITU-R BS.1770-4 (K-weighting, gated 400-ms blocks)."""

from __future__ import annotations

import functools
import math

import numpy as np

from ._base import DESCRIPTOR_SR

__all__ = ["loudness_lufs"]


@functools.lru_cache(maxsize=4)
def _k_weighting_sos(sr: int) -> np.ndarray:
    # Pre-filter (high shelf) and RLB high-pass, coefficients for any rate
    # (as in libebur128).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sr)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / q + k * k) / a0,
    ]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sr)
    a0 = 1.0 + k / q + k * k
    hp = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, hp])


def _loudness_blocks(y: np.ndarray, sr: int = DESCRIPTOR_SR) -> np.ndarray:
    """Mean square of the K-weighted signal in 400-ms blocks (75 % overlap).

    Audio shorter than one block gives one value (its whole mean square).
    The filter runs over 4-s pieces (its state carried across), so that no
    large temporary is needed.
    """
    import scipy.signal

    if y.size == 0:
        return np.zeros(0)
    sos = _k_weighting_sos(sr).astype(np.float32)
    step = int(round(0.1 * sr))  # 400 ms blocks = 4 steps of 100 ms
    if y.size < 4 * step:
        z = scipy.signal.sosfilt(sos, y)
        return np.array([np.mean(z.astype(np.float64) ** 2)])
    n_steps = y.size // step
    e = np.empty(n_steps)
    zi = np.zeros((sos.shape[0], 2), dtype=np.result_type(sos, y))
    for j in range(0, n_steps, 40):
        k = min(40, n_steps - j)
        z, zi = scipy.signal.sosfilt(sos, y[j * step : (j + k) * step], zi=zi)
        z = z.reshape(k, step)
        e[j : j + k] = np.einsum("ij,ij->i", z, z, dtype=np.float64)
    return (e[:-3] + e[1:-2] + e[2:-1] + e[3:]) / (4 * step)


def _gated_lufs(ms: np.ndarray) -> float:
    """BS.1770-4 gating (absolute -70 LUFS, relative -10 LU) of block mean squares."""
    if ms.size == 0:
        return math.nan
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10.0 * np.log10(ms)
    gated = ms[lk > -70.0]
    if gated.size == 0:
        return math.nan
    rel = -0.691 + 10.0 * math.log10(gated.mean()) - 10.0
    with np.errstate(divide="ignore"):
        gated = gated[-0.691 + 10.0 * np.log10(gated) > rel]
    return float(-0.691 + 10.0 * math.log10(gated.mean()))


def loudness_lufs(y: np.ndarray, sr: int = DESCRIPTOR_SR) -> float:
    """Integrated loudness of a mono waveform, ITU-R BS.1770-4.

    K-weighting, 400-ms blocks with 75 % overlap, absolute gate at -70 LUFS
    and relative gate at -10 LU (the ``loudness_db`` descriptor).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,), float
        Mono waveform, full scale 1 (not checked: see :func:`~recommender.descriptors.as_mono`).
    sr : int
        Sample rate of ``y`` (Hz).

    Returns
    -------
    float
        Loudness in LUFS (a full-scale 997 Hz sine reads -3.0); NaN when
        nothing is above the absolute gate (silence) or ``y`` is empty.
    """
    return _gated_lufs(_loudness_blocks(y, sr))


#: The former private name of :func:`loudness_lufs`.
_loudness_lufs = loudness_lufs
