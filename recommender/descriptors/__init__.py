"""MIR descriptors: tempo, key, loudness, spectral statistics.

``recommender.descriptors.describe`` and the other names keep their old paths.
"""

from .summary import (  # noqa: F401
    DESCRIPTOR_COLUMNS,
    DESCRIPTOR_SR,
    HOP_LENGTH,
    INDEX_CLIP_S,
    INDEX_EXCERPTS,
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
    describe,
    describe_at,
    describe_clips,
    describe_excerpts,
    describe_file,
    describe_files,
    estimate_key,
    estimate_tempo,
    tempo_timeline,
)

__all__ = [
    "DESCRIPTOR_SR", "DESCRIPTOR_COLUMNS", "PITCH_CLASSES", "describe", "describe_file",
    "describe_files", "describe_clips", "describe_excerpts", "INDEX_CLIP_S", "INDEX_EXCERPTS",
    "describe_at", "estimate_tempo", "estimate_key", "tempo_timeline",
]
