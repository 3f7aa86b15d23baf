"""MIR descriptors: tempo, key, loudness, spectral statistics.

* :mod:`._base` — the analysis rate, STFT sizes, checks, :func:`as_mono`,
  :func:`load_for_descriptors`;
* :mod:`.spectral` — the shared STFT/mel front end and frame statistics;
* :mod:`.tempo`, :mod:`.key`, :mod:`.loudness` — one algorithm each;
* :mod:`.level` — whether a track holds anything to hear (``audio_flag``:
  ``'silent'``, ``'inaudible'`` or ``None``);
* :mod:`.summary` — one record per track (:func:`describe` and friends),
  reading files, the batch driver.

``recommender.descriptors.describe`` and the other names keep their old paths.
"""

from ._base import (  # noqa: F401
    DESCRIPTOR_SR,
    HOP_LENGTH,
    KEY_HOP_LENGTH,
    KEY_N_FFT,
    MAX_BPM,
    MIN_BPM,
    MIN_TEMPO_DURATION_S,
    N_FFT,
    N_MELS,
    N_MFCC,
    ONSET_FPS,
    PITCH_CLASSES,
    as_mono,
    load_for_descriptors,
)
from .key import estimate_key  # noqa: F401
from .loudness import loudness_lufs  # noqa: F401
from .summary import (  # noqa: F401
    DESCRIPTOR_COLUMNS,
    INDEX_CLIP_S,
    INDEX_EXCERPTS,
    describe,
    describe_at,
    describe_clips,
    describe_excerpts,
    describe_file,
    describe_files,
)
from .tempo import estimate_tempo, tempo_timeline  # noqa: F401

__all__ = [
    "DESCRIPTOR_SR", "DESCRIPTOR_COLUMNS", "PITCH_CLASSES", "describe", "describe_file",
    "describe_files", "describe_clips", "describe_excerpts", "INDEX_CLIP_S", "INDEX_EXCERPTS",
    "describe_at", "estimate_tempo", "estimate_key", "tempo_timeline",
    "as_mono", "load_for_descriptors", "loudness_lufs",
]
