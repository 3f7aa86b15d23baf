"""What every descriptor shares: the analysis rate and STFT sizes, the
parameter checks, and the way a waveform (or a file) becomes the mono
float32 signal at :data:`DESCRIPTOR_SR` they all analyse.
"""

from __future__ import annotations

import os

import numpy as np

from .._utils import PITCH_CLASSES as _PITCH_CLASSES
from .._utils import check_number
from ..errors import ParameterError
from ..features.frontend import periodic_hann

__all__ = [
    "DESCRIPTOR_SR", "N_FFT", "HOP_LENGTH", "N_MELS", "N_MFCC", "KEY_N_FFT", "KEY_HOP_LENGTH",
    "ONSET_FPS", "MIN_BPM", "MAX_BPM", "MIN_TEMPO_DURATION_S", "PITCH_CLASSES",
    "as_mono", "load_for_descriptors",
]

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


#: The 12 pitch classes, sharps (:data:`recommender._utils.PITCH_CLASSES`; a list, as always).
PITCH_CLASSES = list(_PITCH_CLASSES)


# --------------------------------------------------------------------------
# validation helpers


def _check_sr(sr) -> int:
    check_number("sr", sr, min=0, min_inclusive=False)
    if float(sr) != int(sr):
        raise ParameterError(f"sr={sr!r}: must be a whole number of Hz")
    return int(sr)


def _check_positive(name, value, *, allow_none=True):
    """``value`` as a float > 0 (``None`` passes when ``allow_none``)."""
    return check_number(name, value, min=0, min_inclusive=False, allow_none=allow_none)


def as_mono(y, sr) -> np.ndarray:
    """Check a mono waveform and bring it to :data:`DESCRIPTOR_SR`.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform, float (full scale 1) or integer samples.
    sr : int
        Sample rate of ``y`` (Hz); resampled (soxr HQ) if not :data:`DESCRIPTOR_SR`.

    Returns
    -------
    np.ndarray, shape (n_samples_at_DESCRIPTOR_SR,), float32, C-contiguous

    Raises
    ------
    recommender.errors.ParameterError
        ``y`` is not 1-D, not numeric, or holds NaN/inf; ``sr`` is not a
        positive whole number of Hz.
    """
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
        import soxr

        n = int(np.ceil(y.size * DESCRIPTOR_SR / sr))  # as librosa.resample(fix=True): soxr HQ, length fixed
        y = soxr.resample(y, sr, DESCRIPTOR_SR, quality="soxr_hq")
        y = np.ascontiguousarray(np.pad(y[:n], (0, max(0, n - y.size))), dtype=np.float32)
    return y


#: The former private name of :func:`as_mono` (kept for callers outside the package).
_as_mono = as_mono


def load_for_descriptors(source, sr=None) -> tuple[np.ndarray, str | None]:
    """A file or a waveform as the mono float32 signal at :data:`DESCRIPTOR_SR`.

    Parameters
    ----------
    source : str, os.PathLike or np.ndarray
        An audio file (decoded at :data:`DESCRIPTOR_SR`), or a waveform
        ``(n_samples,)`` / ``(n_samples, n_channels)`` (channels averaged).
    sr : int, optional
        Sample rate of a waveform (Hz): required for arrays, not allowed for files.

    Returns
    -------
    y : np.ndarray, shape (n_samples,), float32
    path : str or None
        ``os.fspath(source)`` for a file, ``None`` for a waveform.

    Raises
    ------
    recommender.errors.ParameterError
        ``sr`` given for a file or missing for a waveform; a bad waveform (see :func:`as_mono`).
    recommender.errors.AudioError
        The file cannot be decoded.
    """
    from ..io import audio

    if isinstance(source, (str, os.PathLike)):
        if sr is not None:
            raise ParameterError("sr: only for waveforms; a file is decoded at its own rate")
        return audio.load(source, sr=DESCRIPTOR_SR), os.fspath(source)
    if sr is None:
        raise ParameterError("sr=None: give the sample rate of the waveform")
    y = np.asarray(source)
    if y.ndim == 2:
        y = audio.to_mono(y)
    return as_mono(y, sr), None


def _centre_clip(y: np.ndarray, clip_s) -> np.ndarray:
    clip_s = _check_positive("clip_s", clip_s)
    if clip_s is None:
        return y
    n = int(round(clip_s * DESCRIPTOR_SR))
    if y.size <= n:
        return y
    start = (y.size - n) // 2
    return y[start : start + n]


def _hann(n: int) -> np.ndarray:
    return periodic_hann(n)
