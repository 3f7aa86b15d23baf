"""Music information retrieval (MIR) descriptors: tempo, key, loudness, timbre.

Every track gets one flat record of human-readable descriptors (the
``descriptors`` columns of the catalog and of the DataFrames given back to
users).  Three layers, as elsewhere in the package:

* :func:`describe` — one waveform (array) to one ``dict``;
  :func:`describe_excerpts` — several excerpts of one track to one ``dict``;
* :func:`describe_file` / :func:`describe_files` — paths to a ``dict`` / a
  :class:`pandas.DataFrame` with one row per file and an ``error`` column;
* :func:`describe_clips` and :func:`tempo_timeline` — fixed-length clips and
  tempo over time, as DataFrames.

Analysis parameters
-------------------
Everything is computed at :data:`DESCRIPTOR_SR` = 22050 Hz (inputs at another
rate are resampled; 22050 Hz keeps the spectral statistics comparable with
librosa's defaults and with the literature, and covers the 0-11 kHz band that
zero-crossing rate, roll-off and contrast need).  One STFT
(``n_fft=2048``, ``hop_length=512``, Hann, centred frames) is computed once
and shared by all frame features; frame statistics are the mean and the
(population) standard deviation over frames.  Key and chroma use a second,
long-window STFT (``n_fft=16384`` = 0.74 s, hop 0.37 s, 1.35 Hz resolution),
which resolves semitones down to the bass register (55 Hz) for a few
milliseconds per minute of audio (a constant-Q transform would cost ~20x more).
The FFTs run in single precision (scipy), a few frames at a time so that the
work arrays stay in the CPU cache; values agree with librosa's
double-precision STFT to ~1e-5 except in bands that hold no signal (e.g.
above a lossy codec's low-pass, where ``spectral_contrast_6`` measures the
arithmetic's noise floor and can differ by a few per cent).  About 1 ms of
CPU per second of audio, decoding aside (benchmarks/bench_descriptors.py).

What is analysed
----------------
:func:`describe` analyses the waveform it is given (or its central
``clip_s`` seconds), :func:`describe_file` the whole file unless told
otherwise: the ``describe`` command of the CLI keeps this full analysis.
Indexing (:func:`recommender.analysis.analyze_files`) analyses
:data:`INDEX_EXCERPTS` = 4 excerpts of 2.5 s spread over each track
(:data:`INDEX_CLIP_S` = 10 s in all; tracks up to 10 s whole), pooled by
:func:`describe_excerpts`: ~33 ms of CPU per track, decoding included,
instead of ~100 ms for the central 30 s used before.  When the CNN samples
the track, the excerpts are the middle 2.5 s of 4 of its windows (for 8
patches the 2nd, 4th, 5th and 7th, at about 19, 44, 56 and 81 % of the
track: :func:`describe_at`) and their audio, decoded once for both, costs
nothing more (~17 ms of CPU per track).  On 103 game-soundtrack
tracks the excerpts describe the whole track about as well as the central
30 s did (tempo the same within 4 % on 86 % of tracks against 87 %; MFCC
statistics correlate better, 0.88 against 0.87; loudness closer, 0.5 LU
against 0.7 LU), the key less well (same key on 67 % against 75 %).

Columns (:data:`DESCRIPTOR_COLUMNS`, in this order)
----------------------------------------------------
``duration_s``
    length of the *analysed* audio in seconds (the excerpt if ``clip_s``,
    the excerpts together if ``n_excerpts``).
``tempo_bpm``, ``tempo_confidence``
    see :func:`estimate_tempo`.  NaN and 0.0 for silence or audio too short
    (< 1.5 s) to hold two beats.
``key``, ``mode``, ``key_confidence``
    see :func:`estimate_key`; key names use sharps (``'C'``, ``'C#'``, ...,
    ``'B'``), mode is ``'major'`` or ``'minor'``.  ``None``, ``None``, 0.0 for
    silence.
``loudness_db``
    integrated loudness following ITU-R BS.1770-4 (K-weighting, 400 ms
    blocks with 75 % overlap, absolute gate at -70 and relative gate at -10),
    in LUFS (dB relative to full scale; a full-scale 997 Hz sine reads
    -3.0).  NaN when nothing is above the absolute gate (silence).
``rms_mean``, ``rms_std``
    frame RMS amplitude (linear, full scale = 1).
``zcr_mean``, ``zcr_std``
    zero-crossing rate, crossings per sample (0..1).
``spectral_centroid_mean/std``, ``spectral_bandwidth_mean/std``, ``spectral_rolloff_mean/std``
    in Hz (roll-off at 85 % of the magnitude).
``spectral_contrast_{0..6}_mean/std``
    in dB, librosa's octave bands from 200 Hz (band 6 is 6.4-11 kHz).
``chroma_{C,C#,...,B}_mean/std``
    pitch-class magnitude of the long-window STFT (55 Hz-2 kHz), each frame
    max-normalised to 1 (0..1).
``mfcc_{0..19}_mean/std``
    MFCCs of a 128-band Slaney mel power spectrogram in dB (librosa's
    ``mfcc`` convention, orthonormal DCT-II).

Numbers are Python ``float``; ``key`` and ``mode`` are ``str`` or ``None``.
"""

from __future__ import annotations

import functools
import logging
import math
import os

import numpy as np

from ..errors import ParameterError, RecommenderError

__all__ = [
    "DESCRIPTOR_SR",
    "DESCRIPTOR_COLUMNS",
    "PITCH_CLASSES",
    "describe",
    "describe_file",
    "describe_files",
    "describe_clips",
    "describe_excerpts",
    "INDEX_CLIP_S",
    "INDEX_EXCERPTS",
    "describe_at",
    "estimate_tempo",
    "estimate_key",
    "tempo_timeline",
]

logger = logging.getLogger(__name__)

#: Sample rate of all descriptor computations (Hz).
DESCRIPTOR_SR = 22050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
N_MFCC = 20
KEY_N_FFT = 16384
KEY_HOP_LENGTH = 8192
#: Frames per second of the onset envelope used for tempo.
ONSET_FPS = DESCRIPTOR_SR / HOP_LENGTH
#: Default range of tempi :func:`estimate_tempo` can return (BPM).
MIN_BPM = 40.0
MAX_BPM = 240.0
#: Audio shorter than this has no tempo (NaN, confidence 0).
MIN_TEMPO_DURATION_S = 1.5

PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]

_SCALARS = [
    "duration_s",
    "tempo_bpm",
    "tempo_confidence",
    "key",
    "mode",
    "key_confidence",
    "loudness_db",
]
_FRAME_FEATURES = (
    ["rms", "zcr", "spectral_centroid", "spectral_bandwidth", "spectral_rolloff"]
    + [f"spectral_contrast_{i}" for i in range(7)]
    + [f"chroma_{p}" for p in PITCH_CLASSES]
    + [f"mfcc_{i}" for i in range(N_MFCC)]
)
#: The documented column order of :func:`describe` (and of the DataFrames).
DESCRIPTOR_COLUMNS: list[str] = _SCALARS + [
    f"{name}_{stat}" for name in _FRAME_FEATURES for stat in ("mean", "std")
]
_STRING_COLUMNS = ("key", "mode")

# Key profiles (C major / C minor).  Albrecht & Shanahan's profiles gave the
# best accuracy on our synthesized development set (see
# benchmarks/bench_tempo_key.py); the others are kept for comparison.
_KEY_PROFILES = {
    "krumhansl": (
        [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88],
        [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17],
    ),
    "temperley": (
        [5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0],
        [5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0],
    ),
    "albrecht": (
        [0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081],
        [0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052],
    ),
}
_KEY_PROFILE = "albrecht"
# Binary scale templates (major, harmonic minor) added to the profile
# correlation with weight _SCALE_WEIGHT: rewards keys whose scale holds all
# the strong pitch classes (fixes ii-V-I read as the dominant key).
_SCALE_TEMPLATES = (
    [1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1],
    [1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1],
)
_SCALE_WEIGHT = 1.0

# Tempo decision parameters (tuned on the DEV set of the benchmark).
_LEVEL_RATIO = 0.62  # a faster metrical level is taken when its periodicity
#                      reaches this share of the strongest one
_PRIOR_CENTRE_BPM = 115.0
_PRIOR_SIGMA_OCT = 1.5  # log2-normal prior: broad, only breaks near-ties
_HARMONIC_ONLY = True  # metrical levels: integer ratios of the strongest
_ONSET_TOP_DB = 60.0  # onset levels floored 60 dB under the loudest bin


# --------------------------------------------------------------------------
# validation helpers


def _check_sr(sr) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer, float)) or not sr > 0:
        raise ParameterError(f"sr={sr!r}: must be a positive number (Hz)")
    if float(sr) != int(sr):
        raise ParameterError(f"sr={sr!r}: must be a whole number of Hz")
    return int(sr)


def _check_positive(name, value, *, allow_none=True):
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}={value!r}: must be a positive number") from None
    if not (math.isfinite(v) and v > 0):
        raise ParameterError(f"{name}={value!r}: must be a positive finite number")
    return v


def _as_mono(y, sr) -> np.ndarray:
    """Validate ``y`` and return it as contiguous float32 at DESCRIPTOR_SR."""
    sr = _check_sr(sr)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"y.shape={y.shape}: must be a 1-D mono waveform")
    if not np.issubdtype(y.dtype, np.floating) and not np.issubdtype(y.dtype, np.integer):
        raise ParameterError(f"y.dtype={y.dtype}: must be a real numeric array")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if y.size and not np.all(np.isfinite(y)):
        raise ParameterError("y: contains NaN or infinite samples")
    if sr != DESCRIPTOR_SR and y.size:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=DESCRIPTOR_SR, res_type="soxr_hq")
        y = np.ascontiguousarray(y, dtype=np.float32)
    return y


def _centre_clip(y: np.ndarray, clip_s) -> np.ndarray:
    clip_s = _check_positive("clip_s", clip_s)
    if clip_s is None:
        return y
    n = int(round(clip_s * DESCRIPTOR_SR))
    if y.size <= n:
        return y
    start = (y.size - n) // 2
    return y[start : start + n]


# --------------------------------------------------------------------------
# shared spectral front end


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=DESCRIPTOR_SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


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


@functools.lru_cache(maxsize=1)
def _chroma_basis() -> tuple[np.ndarray, int, int]:
    """Chroma filterbank restricted to 55-2000 Hz: ``(fb, lo_bin, hi_bin)``.

    Gaussian octave weighting centred on 220 Hz with a one-octave spread
    (tuned on the benchmark's DEV set: bass and middle register carry the
    harmony; upper harmonics add misleading pitch classes).
    """
    import librosa

    fb = librosa.filters.chroma(
        sr=DESCRIPTOR_SR, n_fft=KEY_N_FFT, n_chroma=12, tuning=0.0, ctroct=3.0, octwidth=1.0, base_c=True
    )
    freqs = np.arange(fb.shape[1]) * DESCRIPTOR_SR / KEY_N_FFT
    lo = int(np.searchsorted(freqs, 55.0))
    hi = int(np.searchsorted(freqs, 2000.0))
    return np.ascontiguousarray(fb[:, lo:hi], dtype=np.float32), lo, hi


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


def _onset_envelope_from_mel_db(mel_db: np.ndarray) -> np.ndarray:
    """Spectral flux of the dB mel spectrogram (frames as rows), shape ``(n_frames,)``.

    Levels are floored at ``_ONSET_TOP_DB`` below the loudest bin, so that
    quiet events (and noise) make proportionally small onsets.
    """
    if mel_db.shape[0] < 2:
        return np.zeros(mel_db.shape[0], dtype=np.float32)
    m = np.maximum(mel_db, mel_db.max() - _ONSET_TOP_DB)
    flux = np.maximum(0.0, np.diff(m, axis=0)).mean(axis=1)
    return np.concatenate([[0.0], flux]).astype(np.float32)


def _mel_db_of(y: np.ndarray) -> np.ndarray:
    mel = np.empty((_n_frames(y), N_MELS), dtype=np.float32)
    for i, mag in _stft_chunks(y):
        mel[i : i + len(mag)] = _mel_db_raw(mag)
    return _floor_db(mel, 80.0)


def _onset_envelope(y: np.ndarray) -> np.ndarray:
    return _onset_envelope_from_mel_db(_mel_db_of(y))


def _key_chroma(y: np.ndarray) -> np.ndarray:
    """Long-window chroma, shape ``(12, n_frames)``, magnitude (not normalised)."""
    import scipy.fft

    n = max(y.size, KEY_N_FFT)
    n_frames = 1 + int(math.ceil(max(0, n - KEY_N_FFT) / KEY_HOP_LENGTH))
    padded = np.zeros((n_frames - 1) * KEY_HOP_LENGTH + KEY_N_FFT, dtype=np.float32)
    padded[: y.size] = y
    frames = np.lib.stride_tricks.sliding_window_view(padded, KEY_N_FFT)[::KEY_HOP_LENGTH]
    fb, lo, hi = _chroma_basis()
    win = _hann(KEY_N_FFT)
    out = np.empty((12, n_frames), dtype=np.float32)
    step = 4  # frames per FFT call (~256 kB of work arrays)
    for i in range(0, n_frames, step):
        spec = np.abs(scipy.fft.rfft(frames[i : i + step] * win, axis=1)[:, lo:hi])
        out[:, i : i + step] = fb @ spec.T
    return out


@functools.lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window("hann", n).astype(np.float32)


# --------------------------------------------------------------------------
# tempo


def _acf_sums(o: np.ndarray, max_lag: int) -> np.ndarray:
    """``sum_t o[t] o[t + lag]`` for lags ``0..max_lag`` (0 where ``lag >= len(o)``)."""
    n = o.size
    nfft = 1 << int(math.ceil(math.log2(max(2 * n, max_lag + 1, 2))))
    f = np.fft.rfft(o, nfft)
    return np.fft.irfft(f * np.conj(f), nfft)[: max_lag + 1]


def _acf(o: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of ``o`` for lags ``0..max_lag``."""
    a = _acf_sums(o, max_lag)
    a /= o.size - np.arange(max_lag + 1)
    return a


def _parabolic(a: np.ndarray, i: int) -> tuple[float, float]:
    """Sub-sample peak position and height around index ``i``."""
    if 0 < i < a.size - 1:
        l, c, r = a[i - 1], a[i], a[i + 1]
        d = l - 2 * c + r
        if d < 0:
            off = 0.5 * (l - r) / d
            off = max(-0.5, min(0.5, off))
            return i + off, c - 0.25 * (l - r) * off
    return float(i), float(a[i])


def _prepare_onset(o: np.ndarray, fps: float) -> np.ndarray:
    o = np.asarray(o, dtype=np.float64)
    if o.size == 0:
        return o
    # Subtract a 1-second moving average and half-wave rectify: keeps the
    # accents, removes the floor that noise and sustained sounds add.
    w = max(3, int(round(fps)) | 1)
    kernel = np.ones(w) / w
    pad = np.pad(o, (w // 2, w // 2), mode="edge")
    local = np.convolve(pad, kernel, mode="valid")
    return np.maximum(0.0, o - local)


def _tempo_from_onset(o, fps, *, min_bpm=MIN_BPM, max_bpm=MAX_BPM):
    """Tempo (BPM) and confidence from an onset envelope sampled at ``fps``."""
    return _tempo_from_onsets([o], fps, min_bpm=min_bpm, max_bpm=max_bpm)


def _tempo_from_onsets(onsets, fps, *, min_bpm=MIN_BPM, max_bpm=MAX_BPM):
    """Tempo (BPM) and confidence from the onset envelopes of one or more excerpts.

    The autocorrelations of the excerpts are pooled (lagged products summed
    over all excerpts, divided by the number of products at each lag), so
    excerpts spread over a track vote with their length; one excerpt gives
    its plain unbiased autocorrelation.  Lags reach half the longest excerpt.
    """
    os_ = [o for o in (_prepare_onset(o, fps) for o in onsets) if o.size]
    n = max((o.size for o in os_), default=0)
    if n == 0 or n / fps < MIN_TEMPO_DURATION_S or not any(np.any(o > 0) for o in os_):
        return math.nan, 0.0
    # Candidate periodicities are searched from 3x faster to 3x slower than
    # the output range, so that metrical levels around it can be compared.
    lag_lo = max(2, int(math.floor(60.0 * fps / (max_bpm * 1.5))))
    max_lag = min(int(math.ceil(60.0 * fps / (min_bpm / 2.0))) + 2, n // 2)
    if max_lag <= lag_lo + 2:
        return math.nan, 0.0
    if len(os_) == 1:
        a = _acf(os_[0], max_lag)
    else:
        lag = np.arange(max_lag + 1)
        num = sum(_acf_sums(o, max_lag) for o in os_)
        den = sum(np.maximum(o.size - lag, 0) for o in os_)
        a = num / den
    if not a[0] > 0:
        return math.nan, 0.0
    a = a / a[0]
    # local maxima
    idx = np.flatnonzero((a[1:-1] > a[:-2]) & (a[1:-1] >= a[2:])) + 1
    idx = idx[idx >= lag_lo]
    if idx.size == 0:
        return math.nan, 0.0
    peaks = [_parabolic(a, int(i)) for i in idx]
    lags = np.array([p[0] for p in peaks])
    vals = np.array([p[1] for p in peaks])
    bpms = 60.0 * fps / lags
    ok = (bpms >= min_bpm) & (bpms <= max_bpm)
    if not np.any(ok):
        return math.nan, 0.0
    # broad log-normal prior, only decisive between near-equal peaks
    prior = np.exp(-0.5 * (np.log2(bpms / _PRIOR_CENTRE_BPM) / _PRIOR_SIGMA_OCT) ** 2)
    score = np.clip(vals, 0.0, None) * prior
    best_all = float(np.max(score[ok]))
    if best_all <= 0:
        return math.nan, 0.0
    # tactus = the fastest level in range that is (nearly) as periodic as
    # the strongest one; subdivisions are weaker because they alternate
    # accented and unaccented events.
    cand = ok & (score >= _LEVEL_RATIO * best_all)
    if _HARMONIC_ONLY:
        # keep only levels related to the strongest by (near) integer ratios
        ref = lags[ok][int(np.argmax(score[ok]))]
        q = np.maximum(lags, ref) / np.minimum(lags, ref)
        cand &= np.abs(q - np.round(q)) <= 0.06 * q
    cand = np.flatnonzero(cand)
    j = int(cand[np.argmin(lags[cand])])
    lag0 = float(lags[j])
    conf = float(np.clip(vals[j], 0.0, 1.0))
    lag = _refine_lag(a, lag0)
    return float(60.0 * fps / lag), conf


def _refine_lag(a: np.ndarray, lag0: float) -> float:
    """Refine a period estimate with the ACF peaks at its multiples."""
    ks, ps = [1.0], [lag0]
    k = 2
    while k * lag0 + 2 < a.size and k <= 8:
        centre = k * lag0
        lo = int(max(1, math.floor(centre - max(1.0, 0.04 * centre))))
        hi = int(min(a.size - 2, math.ceil(centre + max(1.0, 0.04 * centre))))
        if hi <= lo:
            break
        i = lo + int(np.argmax(a[lo : hi + 1]))
        if i in (lo, hi) or a[i] <= 0:
            break
        ks.append(float(k))
        ps.append(_parabolic(a, i)[0])
        k += 1
    ks, ps = np.array(ks), np.array(ps)
    return float(np.sum(ks * ps) / np.sum(ks * ks))


def estimate_tempo(y, *, sr, min_bpm=MIN_BPM, max_bpm=MAX_BPM) -> tuple[float, float]:
    """Estimate the global tempo (beats per minute) of a waveform.

    The onset envelope (spectral flux of the dB mel spectrogram, 43 frames
    per second, levels floored 60 dB under the loudest bin, 1-s moving
    average removed) is autocorrelated.  Among the autocorrelation peaks
    whose tempo lies in ``[min_bpm, max_bpm]``, that stand in an integer
    ratio (2, 3, 4...) to the strongest peak and reach 62 % of it (all
    weighted by a broad log-normal prior centred on 115 BPM with a
    1.5-octave spread), the *fastest* is taken as the beat: the beat carries
    accents on every pulse, its subdivisions do not, its multiples (half
    bars, bars) are no more periodic.  The period is then refined with the
    peaks at its multiples (sub-frame precision).  Unlike
    ``librosa.beat.beat_track``, no narrow prior pulls the answer to 120.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform.
    sr : int
        Sample rate of ``y`` (Hz); resampled to :data:`DESCRIPTOR_SR`.
    min_bpm, max_bpm : float
        Range of tempi that can be returned.

    Returns
    -------
    tempo_bpm : float
        NaN for silence or audio shorter than 1.5 s.
    confidence : float
        Normalised autocorrelation of the onset envelope at the beat period,
        in ``[0, 1]``: about 0.8-1 for steady percussive music, low for
        free rhythm or noise, 0.0 when there is no tempo.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = np.zeros(10 * sr, dtype=np.float32)
    >>> y[:: sr // 2][:20] = 1.0           # a click every 0.5 s: 120 BPM
    >>> bpm, conf = estimate_tempo(y, sr=sr)
    >>> round(bpm)
    120
    """
    min_bpm = _check_positive("min_bpm", min_bpm, allow_none=False)
    max_bpm = _check_positive("max_bpm", max_bpm, allow_none=False)
    if not max_bpm > min_bpm:
        raise ParameterError(f"max_bpm={max_bpm!r}: must be greater than min_bpm={min_bpm!r}")
    y = _as_mono(y, sr)
    o = _onset_envelope(y)
    return _tempo_from_onset(o, ONSET_FPS, min_bpm=min_bpm, max_bpm=max_bpm)


def tempo_timeline(y, *, sr, segment_s=10.0, hop_s=None, min_bpm=MIN_BPM, max_bpm=MAX_BPM):
    """Tempo over time, one estimate per segment.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform.
    sr : int
        Sample rate of ``y`` (Hz).
    segment_s : float
        Length of each analysed segment in seconds (>= 1.5 s gives a tempo).
    hop_s : float or None
        Distance between segment starts; default ``segment_s`` (no overlap).
        A last segment shorter than ``segment_s`` is kept if it is at least
        half as long.
    min_bpm, max_bpm : float
        As in :func:`estimate_tempo`.

    Returns
    -------
    pandas.DataFrame
        Columns ``start_s``, ``end_s``, ``tempo_bpm``, ``confidence``; one
        row per segment.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = np.zeros(20 * sr, dtype=np.float32)
    >>> y[: 10 * sr : sr // 2] = 1.0      # 120 BPM ...
    >>> y[10 * sr :: sr // 3] = 1.0      # ... then 180 BPM
    >>> tempo_timeline(y, sr=sr, segment_s=10.0)["tempo_bpm"].round().tolist()
    [120.0, 180.0]
    """
    import pandas as pd

    segment_s = _check_positive("segment_s", segment_s, allow_none=False)
    hop_s = _check_positive("hop_s", hop_s) or segment_s
    y = _as_mono(y, sr)
    o = _onset_envelope(y)
    duration_s = y.size / DESCRIPTOR_SR
    rows = []
    start = 0.0
    while True:
        end = min(start + segment_s, duration_s)
        if rows and end - start < 0.5 * segment_s:
            break
        seg = o[int(round(start * ONSET_FPS)) : int(round(end * ONSET_FPS))]
        bpm, conf = _tempo_from_onset(seg, ONSET_FPS, min_bpm=min_bpm, max_bpm=max_bpm)
        rows.append({"start_s": start, "end_s": end, "tempo_bpm": bpm, "confidence": conf})
        start += hop_s
        if start >= duration_s:
            break
    return pd.DataFrame(rows, columns=["start_s", "end_s", "tempo_bpm", "confidence"])


# --------------------------------------------------------------------------
# key


def _zscore(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return (v - v.mean()) / v.std()


@functools.lru_cache(maxsize=8)
def _key_templates(profile, scale_weight) -> np.ndarray:
    """``(24, 12)``: row ``12 * mode + tonic`` correlates a z-scored chroma with
    that key's profile and scale template (mean of products, weighted)."""
    rows = []
    for m in range(2):
        pz = _zscore(_KEY_PROFILES[profile][m])
        tz = _zscore(_SCALE_TEMPLATES[m])
        for k in range(12):
            rows.append((np.roll(pz, k) + scale_weight * np.roll(tz, k)) / (12 * (1.0 + scale_weight)))
    return np.array(rows)


def _key_from_chroma_sum(c: np.ndarray, profile=_KEY_PROFILE, scale_weight=_SCALE_WEIGHT):
    """Key, mode and confidence from a 12-vector of pitch-class weights."""
    c = np.asarray(c, dtype=np.float64)
    if not np.any(c > 0) or np.ptp(c) <= 1e-9 * float(np.max(c)):
        return None, None, 0.0
    cz = _zscore(c)
    scores = (_key_templates(profile, scale_weight) @ cz).reshape(2, 12)
    m, k = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return PITCH_CLASSES[k], ("major", "minor")[m], float(np.clip(scores[m, k], 0.0, 1.0))


def _chroma_for_key(chroma: np.ndarray) -> np.ndarray:
    """Aggregate frame chroma to a 12-vector (sum of magnitudes over time)."""
    if chroma.size == 0:
        return np.zeros(12)
    return chroma.sum(axis=1, dtype=np.float64)


def estimate_key(y, *, sr) -> tuple:
    """Estimate the key (tonic and mode) of a waveform.

    A long-window chroma (16384-point STFT at 22050 Hz, pitch classes from
    55 Hz to 2 kHz, octave weighting centred on 220 Hz) is summed over time,
    then correlated with the 24 rotations of Albrecht & Shanahan's major and
    minor key profiles (Krumhansl-Schmuckler method) and, with equal weight,
    of binary major / harmonic-minor scale templates; the best mean
    correlation wins.  Tuning is assumed to be A4 = 440 Hz.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform.
    sr : int
        Sample rate of ``y`` (Hz).

    Returns
    -------
    key : str or None
        Tonic, one of :data:`PITCH_CLASSES` (sharps); ``None`` for silence.
    mode : str or None
        ``'major'`` or ``'minor'``; ``None`` for silence.
    confidence : float
        Mean Pearson correlation of the chroma with the winning profile and
        scale template, clipped to ``[0, 1]``; about 0.6-0.9 for plain
        diatonic music, low for atonal or percussive audio.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> t = np.arange(4 * sr) / sr
    >>> triad = [261.63, 329.63, 392.0]          # C E G
    >>> y = sum(np.sin(2 * np.pi * f * t) for f in triad).astype(np.float32)
    >>> estimate_key(y, sr=sr)[:2]
    ('C', 'major')
    """
    y = _as_mono(y, sr)
    return _key_from_chroma_sum(_chroma_for_key(_key_chroma(y)))


# --------------------------------------------------------------------------
# loudness (ITU-R BS.1770-4)


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


def _loudness_lufs(y: np.ndarray, sr: int = DESCRIPTOR_SR) -> float:
    return _gated_lufs(_loudness_blocks(y, sr))


# --------------------------------------------------------------------------
# describe


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


#: Frame features computed on the main STFT grid, in the order of the
#: columns of :attr:`_Excerpt.frames`.
_GRID_FEATURES = (
    ["rms", "zcr", "spectral_centroid", "spectral_bandwidth", "spectral_rolloff"]
    + [f"spectral_contrast_{i}" for i in range(7)]
    + [f"mfcc_{i}" for i in range(N_MFCC)]
)


class _Excerpt:
    """What :func:`describe` keeps of one stretch of audio before pooling."""

    __slots__ = ("n_samples", "frames", "onset", "chroma", "loudness_ms")

    def __init__(self, y: np.ndarray):
        self.n_samples = y.size
        n = _n_frames(y)
        mel = np.empty((n, N_MELS), dtype=np.float32)
        frames = np.empty((n, len(_GRID_FEATURES)))
        peak, valley = np.empty((n, 7)), np.empty((n, 7))
        for i, mag in _stft_chunks(y):
            rows = slice(i, i + len(mag))
            mel[rows] = _mel_db_raw(mag)
            frames[rows, 2], frames[rows, 3], frames[rows, 4] = _spectral_shape(mag)
            peak[rows], valley[rows] = _contrast_peak_valley(mag)
        mel = _floor_db(mel, 80.0)
        self.onset = _onset_envelope_from_mel_db(mel)
        if n:
            frames[:, 0], frames[:, 1] = _frame_rms_zcr(y)
            with np.errstate(divide="ignore", invalid="ignore"):
                frames[:, 5:12] = _contrast_db(peak, valley)
            frames[:, 12:] = mel @ _dct_t()
        self.frames = frames
        self.chroma = _key_chroma(y)
        self.loudness_ms = _loudness_blocks(y, DESCRIPTOR_SR)


def _pool(excerpts: list) -> dict:
    """One descriptor record from the excerpts of a track (see :func:`describe_excerpts`)."""
    sr = DESCRIPTOR_SR
    out: dict = {"duration_s": sum(e.n_samples for e in excerpts) / sr}
    out["tempo_bpm"], out["tempo_confidence"] = _tempo_from_onsets([e.onset for e in excerpts], ONSET_FPS)
    chroma = np.concatenate([e.chroma for e in excerpts], axis=1)
    out["key"], out["mode"], out["key_confidence"] = _key_from_chroma_sum(_chroma_for_key(chroma))
    out["loudness_db"] = _gated_lufs(np.concatenate([e.loudness_ms for e in excerpts]))

    frames = np.concatenate([e.frames for e in excerpts], axis=0)
    if frames.shape[0]:
        mean, std = frames.mean(axis=0), frames.std(axis=0)
    else:
        mean = std = np.full(frames.shape[1], math.nan)
    for i, name in enumerate(_GRID_FEATURES):
        out[f"{name}_mean"] = float(mean[i])
        out[f"{name}_std"] = float(std[i])
    peak = chroma.max(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cnorm = np.where(peak > 0, chroma / np.where(peak > 0, peak, 1.0), 0.0)
    cmean, cstd = cnorm.mean(axis=1, dtype=np.float64), cnorm.std(axis=1, dtype=np.float64)
    for i, p in enumerate(PITCH_CLASSES):
        out[f"chroma_{p}_mean"] = float(cmean[i])
        out[f"chroma_{p}_std"] = float(cstd[i])
    return {c: out[c] for c in DESCRIPTOR_COLUMNS}


def describe(y, *, sr, clip_s=None) -> dict:
    """Describe a waveform with the documented MIR descriptors.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform (float or integer samples; float full scale is 1).
    sr : int
        Sample rate of ``y`` (Hz); resampled to :data:`DESCRIPTOR_SR`.
    clip_s : float or None
        Analyse only the central ``clip_s`` seconds (all descriptors,
        including ``duration_s``).  ``None`` analyses everything; a 3-minute
        track takes about 0.3 s of CPU on one core (benchmarks/bench_tempo_key.py).

    Returns
    -------
    dict
        Keys :data:`DESCRIPTOR_COLUMNS` in that order; values ``float``, or
        ``str``/``None`` for ``key`` and ``mode``.  See the module docstring
        for units and the values for silence and very short audio.

    Raises
    ------
    recommender.errors.ParameterError
        ``y`` is not 1-D or holds NaN/inf; ``sr`` or ``clip_s`` invalid.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(3 * sr) / sr)
    >>> d = describe(y, sr=sr)
    >>> d["key"] in PITCH_CLASSES, round(d["spectral_centroid_mean"], -1)
    (True, 440.0)
    """
    y = _centre_clip(_as_mono(y, sr), clip_s)
    return _pool([_Excerpt(y)])


def describe_clips(y, *, sr, clip_s):
    """Describe consecutive fixed-length clips of a waveform.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform.
    sr : int
        Sample rate of ``y`` (Hz).
    clip_s : float
        Clip length in seconds (e.g. 2.0 or 30.0).  Clips do not overlap; a
        remainder shorter than ``clip_s`` is dropped, except that audio
        shorter than one clip gives one (short) row.

    Returns
    -------
    pandas.DataFrame
        One row per clip: ``start_s`` then :data:`DESCRIPTOR_COLUMNS`.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = np.random.default_rng(0).normal(0, 0.1, 7 * sr).astype(np.float32)
    >>> describe_clips(y, sr=sr, clip_s=2.0)["start_s"].tolist()
    [0.0, 2.0, 4.0]
    """
    clip_s = _check_positive("clip_s", clip_s, allow_none=False)
    y = _as_mono(y, sr)
    n = int(round(clip_s * DESCRIPTOR_SR))
    n_clips = max(1, y.size // n)
    rows = []
    for i in range(n_clips):
        d = {"start_s": i * n / DESCRIPTOR_SR}
        d.update(describe(y[i * n : (i + 1) * n], sr=DESCRIPTOR_SR))
        rows.append(d)
    return _frame(rows, ["start_s"] + DESCRIPTOR_COLUMNS)


def describe_excerpts(excerpts, *, sr) -> dict:
    """Describe a track from several excerpts of it, as one record.

    Each excerpt is analysed like :func:`describe` analyses its waveform,
    then the excerpts are pooled: frame statistics (means and standard
    deviations) over the frames of all excerpts; tempo from the pooled
    autocorrelation of their onset envelopes (lags up to half the longest
    excerpt, so excerpts of 2.5 s still resolve 48-240 BPM); key from their
    summed chroma; loudness gated (BS.1770) over the 400-ms blocks of all
    excerpts; ``duration_s`` is their total length.  One excerpt gives
    exactly :func:`describe`'s result.

    Parameters
    ----------
    excerpts : sequence of np.ndarray, each of shape (n_samples,)
        Mono waveforms (e.g. a few seconds from the start, middle and end).
    sr : int
        Sample rate of every excerpt (Hz); resampled to :data:`DESCRIPTOR_SR`.

    Returns
    -------
    dict
        As :func:`describe`.

    Raises
    ------
    recommender.errors.ParameterError
        No excerpts, an excerpt that is not 1-D or holds NaN/inf, or ``sr``
        invalid.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(60 * sr) / sr)
    >>> d = describe_excerpts([y[i * 15 * sr : i * 15 * sr + 3 * sr] for i in range(4)], sr=sr)
    >>> d["duration_s"], round(d["spectral_centroid_mean"], -1)
    (12.0, 440.0)
    """
    if isinstance(excerpts, np.ndarray) and excerpts.ndim == 1:
        raise ParameterError("excerpts: must be a sequence of 1-D waveforms, not one waveform (use describe)")
    excerpts = list(excerpts)
    if not excerpts:
        raise ParameterError("excerpts=[]: must hold at least one waveform")
    return _pool([_Excerpt(_as_mono(y, sr)) for y in excerpts])


#: Descriptors computed while indexing (:func:`recommender.analysis.analyze_files`):
#: :data:`INDEX_EXCERPTS` excerpts of ``INDEX_CLIP_S / INDEX_EXCERPTS``
#: seconds spread over the track (tracks up to ``INDEX_CLIP_S`` are analysed
#: whole; sampled tracks: inside the CNN's windows, see the module notes).
#: About 33 ms of CPU per track, decoding included, against ~100 ms for the
#: central 30 s analysed before; see benchmarks/bench_descriptors.py
#: for the cost and the agreement with the 30-s and whole-track analyses.
INDEX_CLIP_S = 10.0
INDEX_EXCERPTS = 4


def _excerpt_starts(duration_s: float, clip_s: float, n_excerpts: int) -> list[float]:
    """Starts of ``n_excerpts`` excerpts of ``clip_s / n_excerpts`` s, centred at
    ``(i + 0.5) / n_excerpts`` of the track's usable span."""
    length = clip_s / n_excerpts
    return [(i + 0.5) / n_excerpts * (duration_s - length) for i in range(n_excerpts)]


def _load_excerpts(path, clip_s: float, n_excerpts: int):
    """Decode the excerpts of :func:`describe_file` at DESCRIPTOR_SR, or ``None``
    when the whole file is to be analysed (short, or of unknown length)."""
    from ..io import audio

    inf = audio.info(path)
    if not (math.isfinite(inf.duration_s) and inf.duration_s > clip_s):
        return None
    return _load_at(path, _excerpt_starts(inf.duration_s, clip_s, n_excerpts), clip_s / n_excerpts, inf)


def _load_at(path, starts_s, length_s, inf=None):
    """Excerpts of ``length_s`` seconds starting at ``starts_s``, at DESCRIPTOR_SR."""
    from ..io import audio

    sr0 = (inf or audio.info(path)).sr_native
    # at the native rate: exact seeks, no resampler margins; then one soxr call each
    windows = audio.load_windows(path, starts_s, int(round(length_s * sr0)), sr=sr0)
    return [audio.resample(w, sr_orig=sr0, sr_target=DESCRIPTOR_SR) for w in windows]


def describe_at(path, starts_s, length_s) -> dict:
    """Describe a file from excerpts at chosen places (only they are decoded).

    ``{"path": str(path), **describe_excerpts(...)}`` of the excerpts of
    ``length_s`` seconds that start at ``starts_s``.  Indexing uses it with
    excerpts inside the patches the CNN analyses, so that within
    :func:`recommender.audio.reuse_decoded` they cost no decoding.

    Raises
    ------
    recommender.errors.AudioError
        The file cannot be decoded.
    recommender.errors.ParameterError
        No excerpt, or a bad ``length_s``.
    """
    length_s = _check_positive("length_s", length_s, allow_none=False)
    if not len(starts_s):
        raise ParameterError("starts_s is empty: describe_at needs at least one excerpt")
    ys = _load_at(path, starts_s, length_s)
    return {"path": os.fspath(path), **_pool([_Excerpt(y) for y in ys])}


def _check_excerpts(n_excerpts, clip_s, offset_s=None):
    if n_excerpts is None:
        return None
    if isinstance(n_excerpts, bool) or not isinstance(n_excerpts, (int, np.integer)) or n_excerpts < 1:
        raise ParameterError(f"n_excerpts={n_excerpts!r}: must be a positive integer")
    if clip_s is None:
        raise ParameterError(f"n_excerpts={n_excerpts!r}: needs clip_s (the seconds analysed in all)")
    if offset_s is not None:
        raise ParameterError(f"n_excerpts={n_excerpts!r}: cannot be combined with offset_s")
    return int(n_excerpts)


def describe_file(path, *, clip_s=None, offset_s=None, n_excerpts=None) -> dict:
    """Load an audio file and describe it.

    Parameters
    ----------
    path : str or os.PathLike
        Any format :func:`recommender.audio.load` decodes.
    clip_s : float or None
        Analyse only ``clip_s`` seconds: from ``offset_s`` if given (only
        that part is decoded), else the central ``clip_s`` seconds, or, with
        ``n_excerpts``, that many seconds in all.
    offset_s : float or None
        Start of the analysed part in seconds.
    n_excerpts : int or None
        Split the ``clip_s`` seconds into this many excerpts spread over the
        track (centred at 1/8, 3/8, 5/8 and 7/8 of it for 4) and pool them
        (:func:`describe_excerpts`); only they are decoded.  A track not
        longer than ``clip_s`` is analysed whole.  Needs ``clip_s``; not
        with ``offset_s``.  ``clip_s=10, n_excerpts=4`` is what indexing
        computes (:data:`INDEX_CLIP_S`, :data:`INDEX_EXCERPTS`): about a
        third of the cost of the central 30 s, and closer to a whole-track
        analysis for timbre and loudness.

    Returns
    -------
    dict
        ``{"path": str(path), **describe(...)}``.

    Raises
    ------
    recommender.errors.AudioError
        The file cannot be decoded.
    recommender.errors.ParameterError
        Bad ``clip_s``, ``offset_s`` or ``n_excerpts``.

    Examples
    --------
    >>> d = describe_file("song.mp3", clip_s=30.0)       # doctest: +SKIP
    >>> d["tempo_bpm"], d["key"], d["mode"]              # doctest: +SKIP
    (128.1, 'A', 'minor')
    >>> describe_file("song.mp3", clip_s=10.0, n_excerpts=4)["duration_s"]  # doctest: +SKIP
    10.0
    """
    from ..io import audio  # lazy: decoding back ends load only when needed

    if offset_s is not None:
        offset = float(offset_s)
        if not (math.isfinite(offset) and offset >= 0):
            raise ParameterError(f"offset_s={offset_s!r}: must be a finite number >= 0")
    clip_s = _check_positive("clip_s", clip_s)
    if _check_excerpts(n_excerpts, clip_s, offset_s) is not None:
        if n_excerpts > 1:
            ys = _load_excerpts(path, clip_s, int(n_excerpts))
            if ys is not None:
                return {"path": os.fspath(path), **_pool([_Excerpt(y) for y in ys])}
            # short (or of unknown length): the whole track, or its central clip_s
            y = audio.load(path, sr=DESCRIPTOR_SR)
            return {"path": os.fspath(path), **describe(y, sr=DESCRIPTOR_SR, clip_s=clip_s)}
    if offset_s is not None:
        y = audio.load(path, sr=DESCRIPTOR_SR, offset_s=float(offset_s), duration_s=clip_s)
        d = describe(y, sr=DESCRIPTOR_SR)
    else:
        y = audio.load(path, sr=DESCRIPTOR_SR)
        d = describe(y, sr=DESCRIPTOR_SR, clip_s=clip_s)
    return {"path": os.fspath(path), **d}


def _describe_one(path, clip_s, on_error, n_excerpts=None):
    try:
        return describe_file(path, clip_s=clip_s, n_excerpts=n_excerpts)
    except Exception as exc:  # noqa: BLE001 - recorded, see describe_files
        if on_error == "raise":
            raise
        if not isinstance(exc, (RecommenderError, OSError, ValueError, RuntimeError, ImportError)):
            logger.warning("unexpected %s while describing %s", type(exc).__name__, path, exc_info=True)
        else:
            logger.warning("could not describe %s: %s", path, exc)
        return {"path": os.fspath(path), "error": f"{type(exc).__name__}: {exc}"}


def _frame(rows, columns):
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c in _STRING_COLUMNS or c in ("path", "error"):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
        else:
            df[c] = df[c].astype("float64")
    return df


def describe_files(paths, *, clip_s=None, n_excerpts=None, n_jobs=1, on_error="record", progress=False):
    """Describe many audio files: one DataFrame row per file.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Audio files.
    clip_s : float or None
        As in :func:`describe_file` (central excerpt).
    n_excerpts : int or None
        As in :func:`describe_file` (``clip_s`` seconds in that many
        excerpts spread over each track).
    n_jobs : int
        Worker processes (joblib); ``1`` runs in this process, ``-1`` uses
        all cores.
    on_error : {'record', 'raise'}
        ``'record'`` keeps going and writes the exception into the ``error``
        column of the failed file's row (other columns NaN/None);
        ``'raise'`` re-raises the first error.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pandas.DataFrame
        Columns ``path``, :data:`DESCRIPTOR_COLUMNS`, ``error`` (``None`` when
        the file was described); rows in the order of ``paths``.  Numbers
        are float64, ``key``/``mode``/``error`` are objects (str or None),
        so ``df.to_csv`` and ``df.to_parquet`` (with pyarrow) both work.

    Examples
    --------
    >>> df = describe_files(["a.wav", "b.mp3"], clip_s=30.0)   # doctest: +SKIP
    >>> df[df["error"].isna()].to_csv("descriptors.csv", index=False)  # doctest: +SKIP
    """
    if on_error not in ("record", "raise"):
        raise ParameterError(f"on_error={on_error!r}: must be 'record' or 'raise'")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0 or n_jobs < -1:
        raise ParameterError(f"n_jobs={n_jobs!r}: must be a positive integer or -1")
    clip_s = _check_positive("clip_s", clip_s)
    _check_excerpts(n_excerpts, clip_s)
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise ParameterError(f"paths={paths!r}: must be an iterable of paths, not one path")
    paths = list(paths)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(paths, desc="descriptors", unit="file")
    else:
        it = paths
    if n_jobs == 1 or len(paths) <= 1:
        rows = [_describe_one(p, clip_s, on_error, n_excerpts) for p in it]
    else:
        from joblib import Parallel, delayed

        rows = Parallel(n_jobs=n_jobs)(delayed(_describe_one)(p, clip_s, on_error, n_excerpts) for p in it)
    for r in rows:
        r.setdefault("error", None)
    return _frame(rows, ["path"] + DESCRIPTOR_COLUMNS + ["error"])
