"""Log-mel front end of the pretrained network.

This reproduces, bit for bit where it matters, the input representation the
musicnn models were trained on (Pons & Serra, 2019):

* 16 kHz mono audio;
* STFT with ``n_fft=512``, ``hop_length=256``, Hann window, frames centred with
  reflect padding (librosa 0.7's default, which musicnn used);
* power spectrogram projected on 96 Slaney-normalised mel bands;
* **cast to float16**, then ``log10(10000 * x + 1)`` evaluated in float32.
  Under NumPy 1 the float16 array was promoted to float32 by the arithmetic;
  under NumPy 2 the same expression would stay float16 and overflow to ``inf``
  on loud bins.  We reproduce what the network saw during training;
* non-overlapping patches of 187 frames (~3 s).  Clips shorter than one patch
  are repeat-padded, as in musicnn's training (``pad_short: repeat-pad``).

Two equivalent entry points exist: :func:`logmel` for a whole waveform, and
:func:`window_logmel` for an exact 187-frame patch computed from a short
window of samples (used to analyse only chosen parts of a long file and to
stream in blocks).  Both give the same frames for the same samples.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ParameterError

__all__ = [
    "SR",
    "N_FFT",
    "HOP_LENGTH",
    "N_MELS",
    "PATCH_FRAMES",
    "PATCH_HOP_SAMPLES",
    "PATCH_WINDOW_SAMPLES",
    "PATCH_SECONDS",
    "FRONTEND_PARAMS",
    "mel_basis",
    "mel_filterbank",
    "chroma_filterbank",
    "logmel",
    "window_logmel",
    "patches",
    "repeat_pad",
]

SR = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187
#: Samples between the first frames of two consecutive patches.
PATCH_HOP_SAMPLES = PATCH_FRAMES * HOP_LENGTH  # 47872
#: Samples needed to compute one patch with ``center=False``.
PATCH_WINDOW_SAMPLES = (PATCH_FRAMES - 1) * HOP_LENGTH + N_FFT  # 48128
PATCH_SECONDS = PATCH_HOP_SAMPLES / SR  # 2.992 s

_F16_MAX = float(np.finfo(np.float16).max)

#: Parameters recorded in every catalog so an index can be checked against
#: the front end that reads it.
FRONTEND_PARAMS = {
    "sr": SR,
    "n_fft": N_FFT,
    "hop_length": HOP_LENGTH,
    "n_mels": N_MELS,
    "patch_frames": PATCH_FRAMES,
    "window": "hann",
    "center_pad": "reflect",
    "mel_norm": "slaney",
    "compression": "log10(10000*float16(mel)+1)",
}


@functools.lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """Mel filterbank, shape ``(N_MELS, N_FFT // 2 + 1)``, float32 (:func:`mel_filterbank`)."""
    return mel_filterbank(sr=SR, n_fft=N_FFT, n_mels=N_MELS)


# Slaney's mel scale (Auditory Toolbox): linear below 1 kHz, logarithmic above.
_MEL_F_SP = 200.0 / 3
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asanyarray(f, dtype=np.float64)
    m = f / _MEL_F_SP
    log_t = f >= _MEL_MIN_LOG_HZ
    return np.where(log_t, _MEL_MIN_LOG_MEL + np.log(np.maximum(f, _MEL_MIN_LOG_HZ) / _MEL_MIN_LOG_HZ)
                    / _MEL_LOGSTEP, m)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asanyarray(m, dtype=np.float64)
    f = _MEL_F_SP * m
    log_t = m >= _MEL_MIN_LOG_MEL
    return np.where(log_t, _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (m - _MEL_MIN_LOG_MEL)), f)


def mel_filterbank(*, sr: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank on Slaney's mel scale, in NumPy.

    The same matrix as ``librosa.filters.mel(sr=sr, n_fft=n_fft,
    n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")`` (the
    same float64 arithmetic, cast to float32 row by row; ``tests/test_filterbanks.py``
    checks equality), computed without importing librosa: librosa's import
    compiles numba functions on first use, which made the first analysis
    on a fresh install several times slower than the second (issue #20).

    Parameters
    ----------
    sr : float
        Sample rate, Hz.
    n_fft : int
        FFT length; the filterbank has ``n_fft // 2 + 1`` columns (rfft bins).
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Lowest and highest frequency, Hz (``fmax`` default ``sr / 2``).

    Returns
    -------
    np.ndarray, shape (n_mels, n_fft // 2 + 1), float32
        Row ``i`` weights the power of each rfft bin into band ``i``.

    Raises
    ------
    ParameterError
        Non-positive ``sr``, ``n_fft`` or ``n_mels``, or ``fmin >= fmax``.
    """
    fmax = float(sr) / 2 if fmax is None else float(fmax)
    if sr <= 0 or int(n_fft) <= 0 or int(n_mels) <= 0 or not 0 <= fmin < fmax:
        raise ParameterError(f"sr={sr}, n_fft={n_fft}, n_mels={n_mels}, fmin={fmin}, fmax={fmax}: "
                             "expected positive sizes and 0 <= fmin < fmax")
    n_mels = int(n_mels)
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=int(n_fft), d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def chroma_filterbank(*, sr: float, n_fft: int, n_chroma: int = 12, tuning: float = 0.0, ctroct: float = 5.0,
                      octwidth: float | None = 2.0, base_c: bool = True) -> np.ndarray:
    """Chroma filterbank (Gaussian bumps per pitch class, L2-normalised columns), in NumPy.

    The same matrix as ``librosa.filters.chroma`` with the same arguments
    (Ellis' ``fft2chromamx``; ``tests/test_filterbanks.py`` checks equality),
    without importing librosa, whose :mod:`librosa.util` compiles numba
    functions at import (~15 s on a fresh install).

    Parameters
    ----------
    sr : float
        Sample rate, Hz.
    n_fft : int
        FFT length.
    n_chroma : int
        Bins per octave.
    tuning : float
        Deviation from A440 in fractions of a chroma bin.
    ctroct, octwidth : float
        Centre (octaves above A0 / 16 of A440) and width (octaves) of the
        Gaussian weighting over octaves; ``octwidth=None`` for flat weighting.
    base_c : bool
        Start the rows at C (else at A).

    Returns
    -------
    np.ndarray, shape (n_chroma, n_fft // 2 + 1), float32

    Raises
    ------
    ParameterError
        Non-positive ``sr``, ``n_fft`` or ``n_chroma``.
    """
    if sr <= 0 or int(n_fft) <= 0 or int(n_chroma) <= 0:
        raise ParameterError(f"sr={sr}, n_fft={n_fft}, n_chroma={n_chroma}: expected positive values")
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (float(a440) / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    D = np.remainder(D + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * D / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    norm = np.sum(np.abs(wts) ** 2, axis=0, keepdims=True) ** 0.5
    norm[norm < np.finfo(wts.dtype).tiny] = 1.0  # librosa.util.normalize leaves tiny columns alone
    wts = wts / norm
    if octwidth is not None:
        wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1))
    if base_c:
        wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)


@functools.lru_cache(maxsize=8)
def periodic_hann(n: int) -> np.ndarray:
    """The periodic Hann window of ``n`` samples (for an FFT of size ``n``), float32.

    Bit for bit ``scipy.signal.get_window("hann", n)`` (``fftbins=True``;
    tested), computed with scipy's own formula (``general_cosine`` with
    coefficients ``[0.5, 0.5]`` over ``n + 1`` points, the last dropped)
    without importing :mod:`scipy.signal`, whose import took 0.7 s of every
    analysing command's start (``python -X importtime``).

    Parameters
    ----------
    n : int
        Window length in samples (>= 1).

    Returns
    -------
    np.ndarray, shape (n,), float32
        Read-only (shared by the callers).
    """
    if n == 1:
        w = np.ones(1)
    else:
        fac = np.linspace(-np.pi, np.pi, n + 1)[:n]
        w = np.zeros(n)
        w += 0.5 * np.cos(0 * fac)
        w += 0.5 * np.cos(fac)
    w = w.astype(np.float32)
    w.setflags(write=False)
    return w


def _window() -> np.ndarray:
    return periodic_hann(N_FFT)


def _frames_nocenter(y: np.ndarray) -> np.ndarray:
    """Log-mel frames of ``y`` without centring: shape ``(T, N_MELS)``."""
    n = 1 + (len(y) - N_FFT) // HOP_LENGTH
    if n <= 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.as_strided(
        y, shape=(n, N_FFT), strides=(y.strides[0] * HOP_LENGTH, y.strides[0]), writeable=False
    )
    spec = np.fft.rfft(frames * _window(), n=N_FFT, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = power @ mel_basis().T
    return _compress(mel)


def _compress(mel: np.ndarray) -> np.ndarray:
    # float16 quantisation as in training, arithmetic in float32 (NumPy 1
    # promotion); clip first so that an absurdly loud bin cannot become inf.
    q = np.minimum(mel, _F16_MAX).astype(np.float16).astype(np.float32)
    return np.log10(10000.0 * q + 1.0, dtype=np.float32)


def _as_mono_float32(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"y.shape={y.shape}: expected a mono waveform of shape (n_samples,)")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"y.dtype={y.dtype}: expected floating-point samples in [-1, 1]")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ParameterError("y contains NaN or infinite samples")
    return y


def logmel(y) -> np.ndarray:
    """Log-mel spectrogram of a 16 kHz mono waveform.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Waveform at :data:`SR` Hz, floating point.

    Returns
    -------
    S : np.ndarray, shape (n_frames, 96), float32
        ``n_frames = 1 + n_samples // 256`` (centred frames, as librosa).

    Examples
    --------
    >>> import numpy as np
    >>> S = logmel(np.zeros(16000, dtype=np.float32))
    >>> S.shape
    (63, 96)
    """
    y = _as_mono_float32(y)
    if len(y) == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    pad = N_FFT // 2
    mode = "reflect" if len(y) > pad else "constant"
    return _frames_nocenter(np.pad(y, pad, mode=mode))


def window_logmel(window) -> np.ndarray:
    """One patch of log-mel frames from exactly :data:`PATCH_WINDOW_SAMPLES` samples.

    For a patch whose first frame is centred on sample ``c``, the window is
    ``y[c - 256 : c - 256 + 48128]`` (reflect-padded at the edges of the file).

    Returns
    -------
    S : np.ndarray, shape (187, 96), float32
    """
    w = _as_mono_float32(window)
    if len(w) != PATCH_WINDOW_SAMPLES:
        raise ParameterError(f"len(window)={len(w)}: must be {PATCH_WINDOW_SAMPLES} samples")
    return _frames_nocenter(w)


def repeat_pad(S: np.ndarray, n_frames: int = PATCH_FRAMES) -> np.ndarray:
    """Repeat a short spectrogram along time until it has ``n_frames`` frames."""
    if len(S) == 0:
        raise ParameterError("cannot repeat-pad an empty spectrogram")
    if len(S) >= n_frames:
        return S
    reps = -(-n_frames // len(S))
    return np.concatenate([S] * reps, axis=0)[:n_frames]


def patches(S: np.ndarray) -> np.ndarray:
    """Cut a log-mel spectrogram into non-overlapping 187-frame patches.

    Trailing frames that do not fill a patch are dropped (as musicnn does);
    a spectrogram shorter than one patch is repeat-padded to one patch.

    Returns
    -------
    P : np.ndarray, shape (n_patches, 187, 96), float32
    """
    S = np.asarray(S, dtype=np.float32)
    if S.ndim != 2 or S.shape[1] != N_MELS:
        raise ParameterError(f"S.shape={S.shape}: expected (n_frames, {N_MELS})")
    if len(S) < PATCH_FRAMES:
        S = repeat_pad(S)
    n = len(S) // PATCH_FRAMES
    return np.ascontiguousarray(S[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS))
