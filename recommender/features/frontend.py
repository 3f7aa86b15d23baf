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
    """Mel filterbank, shape ``(N_MELS, N_FFT // 2 + 1)``, float32."""
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, htk=False, norm="slaney").astype(
        np.float32
    )


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window("hann", N_FFT, fftbins=True).astype(np.float32)


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
