"""The musicnn log-mel front end (:mod:`.frontend`) and the pooling of per-patch
vectors into per-track vectors (:mod:`.pooling`).

``recommender.features.SR``, ``logmel``, ``patches`` … keep their old names.
"""

from .frontend import (  # noqa: F401
    FRONTEND_PARAMS,
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    PATCH_FRAMES,
    PATCH_HOP_SAMPLES,
    PATCH_SECONDS,
    PATCH_WINDOW_SAMPLES,
    SR,
    logmel,
    mel_basis,
    patches,
    repeat_pad,
    window_logmel,
)

__all__ = [
    "SR", "N_FFT", "HOP_LENGTH", "N_MELS", "PATCH_FRAMES", "PATCH_HOP_SAMPLES",
    "PATCH_WINDOW_SAMPLES", "PATCH_SECONDS", "FRONTEND_PARAMS", "mel_basis", "logmel",
    "window_logmel", "patches", "repeat_pad",
]
