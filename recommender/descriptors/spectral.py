"""The shared spectral front end (one STFT, mel, MFCC basis) and the
frame statistics computed on it: RMS, zero-crossing rate, centroid,
bandwidth, roll-off and spectral contrast.

All arrays have frames as rows; everything runs at :data:`DESCRIPTOR_SR`
with ``N_FFT = 2048``, ``HOP_LENGTH = 512`` (centred frames).
"""

from __future__ import annotations

import functools

import numpy as np

from ._base import DESCRIPTOR_SR, HOP_LENGTH, N_FFT, N_MELS, N_MFCC, _hann


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    from ..features.frontend import mel_filterbank

    return mel_filterbank(sr=DESCRIPTOR_SR, n_fft=N_FFT, n_mels=N_MELS)


@functools.lru_cache(maxsize=1)
def _dct_t() -> np.ndarray:
    """Orthonormal DCT-II matrix, ``(N_MELS, N_MFCC)`` (``scipy.fft.dct(norm='ortho')``)."""
    k = np.arange(N_MFCC)[None, :]
    n = np.arange(N_MELS)[:, None]
    m = np.sqrt(2.0 / N_MELS) * np.cos(np.pi * k * (2 * n + 1) / (2 * N_MELS))
    m[:, 0] /= np.sqrt(2.0)
    return np.ascontiguousarray(m, dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _moment_basis() -> np.ndarray:
    """``(n_bins, 3)``: 1, f, f^2 (f in kHz) for the spectral moments of each frame."""
    f = np.arange(N_FFT // 2 + 1, dtype=np.float64) * DESCRIPTOR_SR / N_FFT / 1000.0
    return np.ascontiguousarray(np.stack([np.ones_like(f), f, f * f], axis=1), dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _contrast_bands() -> tuple[tuple[int, int, int], ...]:
    """``(first_bin, stop_bin, n_quantile)`` of librosa's spectral-contrast bands.

    Same bands as ``librosa.feature.spectral_contrast`` (``fmin=200``,
    ``n_bands=6``, ``quantile=0.02``): octaves from 200 Hz, each extended by
    the bin below it, the last one to Nyquist.
    """
    freq = np.arange(N_FFT // 2 + 1) * DESCRIPTOR_SR / N_FFT
    n_bands, fmin, quantile = 6, 200.0, 0.02
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    bands = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        current = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(current)
        if k > 0:
            current[idx[0] - 1] = True
        if k == n_bands:
            current[idx[-1] + 1 :] = True
        sel = np.flatnonzero(current)
        a, b = int(sel[0]), int(sel[-1]) + 1
        if k < n_bands:
            b -= 1
        bands.append((a, b, int(max(np.rint(quantile * current.sum()), 1))))
    return tuple(bands)


#: STFT frames processed together: the work arrays of one chunk (~0.5 MB)
#: stay in the CPU cache, and no large temporary is allocated per excerpt
#: (fresh pages cost more than the arithmetic on them).
_CHUNK_FRAMES = 64


def _stft_chunks(y: np.ndarray):
    """STFT magnitude, frames as rows, in chunks: yields ``(first_frame, mag)``.

    ``mag`` has shape ``(<= _CHUNK_FRAMES, N_FFT // 2 + 1)``, float32.
    Centred frames (``N_FFT // 2`` zeros of padding on each side), periodic
    Hann window, ``1 + len(y) // HOP_LENGTH`` frames in all: the values of
    ``abs(librosa.stft(y, n_fft=2048, hop_length=512, pad_mode='constant')).T``,
    computed in single precision with scipy's FFT (bins far below the
    frame's peak, ~-130 dB, differ: the single-precision noise floor).
    """
    import scipy.fft

    if y.size == 0:
        return
    n_frames = 1 + y.size // HOP_LENGTH
    padded = np.zeros(y.size + N_FFT, dtype=np.float32)
    padded[N_FFT // 2 : N_FFT // 2 + y.size] = y
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    win = _hann(N_FFT)
    for i in range(0, n_frames, _CHUNK_FRAMES):
        yield i, np.abs(scipy.fft.rfft(frames[i : i + _CHUNK_FRAMES] * win, axis=1))


def _n_frames(y: np.ndarray) -> int:
    return 1 + y.size // HOP_LENGTH if y.size else 0


def _stft_mag(y: np.ndarray) -> np.ndarray:
    """The whole STFT magnitude of :func:`_stft_chunks`: ``(n_frames, N_FFT // 2 + 1)``."""
    parts = [m for _, m in _stft_chunks(y)]
    return np.concatenate(parts) if parts else np.zeros((0, N_FFT // 2 + 1), dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _mel_sparse():
    """The mel filterbank as a CSR matrix (~2,000 non-zeros of 131,200)."""
    import scipy.sparse

    return scipy.sparse.csr_matrix(_mel_basis())


def _mel_power(power: np.ndarray) -> np.ndarray:
    """``power @ mel_basis.T`` for power spectra as rows: ``(n_frames, N_MELS)``.

    Every FFT bin lies in at most two triangular filters, so the sparse
    product does ~2 multiply-adds per bin instead of 128 (and never starts
    BLAS threads).
    """
    if power.shape[0] == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    return (_mel_sparse() @ power.T).T


def _mel_db_raw(mag: np.ndarray) -> np.ndarray:
    """Mel power in dB (ref 1.0, floor 1e-10), ``(n_frames, N_MELS)`` float32."""
    return 10.0 * np.log10(np.maximum(_mel_power(mag * mag), 1e-10))


def _floor_db(db: np.ndarray, top_db: float) -> np.ndarray:
    """Levels floored ``top_db`` under the maximum (in place when possible)."""
    if db.size:
        np.maximum(db, db.max() - top_db, out=db)
    return db


def _mel_db(mag: np.ndarray) -> np.ndarray:
    """Mel power in dB (ref 1.0), floored 80 dB under the maximum (as librosa's
    mfcc); ``(n_frames, N_MELS)`` float32 from :func:`_stft_mag`'s rows."""
    return _floor_db(_mel_db_raw(mag).astype(np.float32, copy=False), 80.0)


def _mel_db_of(y: np.ndarray) -> np.ndarray:
    mel = np.empty((_n_frames(y), N_MELS), dtype=np.float32)
    for i, mag in _stft_chunks(y):
        mel[i : i + len(mag)] = _mel_db_raw(mag)
    return _floor_db(mel, 80.0)


def _frame_rms_zcr(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame RMS and zero-crossing rate on the STFT's (centred) frame grid.

    A frame (``N_FFT`` samples) is ``N_FFT // HOP_LENGTH`` hop-long blocks,
    so both come from per-block sums (exact, and cheaper than per-sample
    cumulative sums).  ZCR counts sign changes between consecutive samples
    of the frame, divided by ``N_FFT``.
    """
    if y.size == 0:
        return np.zeros(0), np.zeros(0)
    r = N_FFT // HOP_LENGTH
    padded = np.zeros(y.size + N_FFT + 1, dtype=np.float32)  # + 1: the last pair below
    padded[N_FFT // 2 : N_FFT // 2 + y.size] = y
    n_frames = 1 + y.size // HOP_LENGTH
    n_blocks = n_frames - 1 + r
    x = padded[: n_blocks * HOP_LENGTH].reshape(n_blocks, HOP_LENGTH)
    e = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    s = np.signbit(padded)
    ch = np.zeros(n_blocks * HOP_LENGTH, dtype=np.int8)  # ch[i]: sign change between samples i and i+1
    np.not_equal(s[1 : n_blocks * HOP_LENGTH + 1], s[: n_blocks * HOP_LENGTH], out=ch.view(bool))
    c = ch.reshape(n_blocks, HOP_LENGTH).sum(axis=1, dtype=np.int64)
    frame_e = sum(e[k : k + n_frames] for k in range(r))
    frame_c = sum(c[k : k + n_frames] for k in range(r)) - ch[np.arange(n_frames) * HOP_LENGTH + N_FFT - 1]
    return np.sqrt(np.maximum(0.0, frame_e / N_FFT)), frame_c / N_FFT


_ROLLOFF_BLOCK = 32


def _rolloff_bins(mag: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Index of the first bin where the cumulative magnitude of each row reaches
    85 % of ``total``: blocks of 32 bins first, then the bins of that block
    (a full per-bin cumulative sum is ~3x slower)."""
    n, n_bins = mag.shape
    starts = np.arange(0, n_bins, _ROLLOFF_BLOCK)
    cb = np.cumsum(np.add.reduceat(mag, starts, axis=1), axis=1)
    thr = (0.85 * total).astype(np.float32)
    j = np.minimum(np.argmax(cb >= thr[:, None], axis=1), starts.size - 1)
    rows = np.arange(n)
    before = np.where(j > 0, cb[rows, np.maximum(j - 1, 0)], 0.0).astype(np.float32)
    idx = (j * _ROLLOFF_BLOCK)[:, None] + np.arange(_ROLLOFF_BLOCK)[None, :]
    inside = idx < n_bins
    blk = np.where(inside, np.take_along_axis(mag, np.minimum(idx, n_bins - 1), axis=1), 0.0)
    c = np.cumsum(blk, axis=1, dtype=np.float32) + before[:, None]
    return np.minimum(j * _ROLLOFF_BLOCK + np.argmax(c >= thr[:, None], axis=1), n_bins - 1)


def _spectral_shape(mag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid, bandwidth (Hz) and 85 % roll-off (Hz) per frame (rows of ``mag``).

    Same definitions as librosa (magnitude-weighted, bandwidth of order 2);
    silent frames give 0.
    """
    m = (mag @ _moment_basis()).astype(np.float64)  # sum |X|, sum f|X|, sum f^2|X| (f in kHz)
    total = m[:, 0]
    safe = np.where(total > 0, total, 1.0)
    centroid = m[:, 1] / safe
    bandwidth = np.sqrt(np.maximum(0.0, m[:, 2] / safe - centroid * centroid))
    rolloff = np.where(total > 0, _rolloff_bins(mag, total) * (DESCRIPTOR_SR / N_FFT), 0.0)
    return 1000.0 * centroid, 1000.0 * bandwidth, rolloff


def _contrast_peak_valley(mag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the highest and of the lowest 2 % of each contrast band, ``(n_frames, 7)`` each."""
    peak = np.empty((mag.shape[0], 7))
    valley = np.empty((mag.shape[0], 7))
    for k, (a, b, q) in enumerate(_contrast_bands()):
        band = mag[:, a:b]
        if q == 1:
            valley[:, k] = band.min(axis=1)
            peak[:, k] = band.max(axis=1)
        else:  # np.sort is vectorised (SIMD); np.partition is slower here
            srt = np.sort(band, axis=1)
            valley[:, k] = np.add.reduce(srt[:, :q], axis=1) / q
            peak[:, k] = np.add.reduce(srt[:, b - a - q :], axis=1) / q
    return peak, valley


def _contrast_db(peak: np.ndarray, valley: np.ndarray) -> np.ndarray:
    """Spectral contrast in dB as librosa (``power_to_db`` of each, 80 dB range)."""

    def db(x):
        x = 10.0 * np.log10(np.maximum(1e-10, x))
        return np.maximum(x, x.max() - 80.0) if x.size else x

    return db(peak) - db(valley)


def _spectral_contrast(mag: np.ndarray) -> np.ndarray:
    """librosa's ``spectral_contrast`` (defaults) of ``mag``'s rows: ``(n_frames, 7)`` dB."""
    return _contrast_db(*_contrast_peak_valley(mag))
