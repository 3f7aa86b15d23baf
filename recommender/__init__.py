"""recommender — content-based music recommendation.

A pretrained music CNN (musicnn, trained on the Million Song Dataset) turns
audio into tag probabilities and an embedding; both are indexed with FAISS so
you can classify tracks and ask for songs like a given one.

>>> from recommender import Recommender, classify          # doctest: +SKIP
>>> classify("song.mp3").top(5)                            # doctest: +SKIP
>>> rec = Recommender("indexes/mine"); rec.update(["~/Music"])  # doctest: +SKIP
>>> rec.similar("~/Music/song.mp3", k=10)                  # doctest: +SKIP

Heavy dependencies (TensorFlow, matplotlib) are imported lazily.
"""

from __future__ import annotations

import importlib

from .errors import (  # noqa: F401
    AudioError,
    CatalogError,
    CueSheetError,
    DatasetError,
    IndexFileError,
    IndexLockedError,
    ModelError,
    NotInIndexError,
    ParameterError,
    PlaylistFileError,
    RecommenderError,
    StaleIndexError,
    TagWriteError,
)

__version__ = "0.1.0"

_LAZY = {
    "Recommender": ("recommender.recommender", "Recommender"),
    "classify": ("recommender.analysis.tagging", "classify"),
    "Classification": ("recommender.analysis.tagging", "Classification"),
    "Sampling": ("recommender.analysis", "Sampling"),
    "analyze_file": ("recommender.analysis", "analyze_file"),
    "analyze_files": ("recommender.analysis", "analyze_files"),
    "analyze_waveform": ("recommender.analysis", "analyze_waveform"),
    "load_model": ("recommender.models", "load_model"),
    "available_models": ("recommender.models", "available_models"),
    "load_audio": ("recommender.io.audio", "load"),
    "describe": ("recommender.descriptors", "describe"),
    "describe_file": ("recommender.descriptors", "describe_file"),
    "describe_files": ("recommender.descriptors", "describe_files"),
    "explain": ("recommender.recommend.explanations", "explain"),
    "profile": ("recommender.analysis.profiles", "profile"),
    "profile_text": ("recommender.analysis.profiles", "profile_text"),
    "timeline": ("recommender.analysis.profiles", "timeline"),
}

_ERRORS = [
    "AudioError", "CatalogError", "DatasetError", "IndexFileError", "IndexLockedError",
    "ModelError", "NotInIndexError", "ParameterError", "PlaylistFileError", "RecommenderError",
    "StaleIndexError", "TagWriteError", "CueSheetError",
]
__all__ = sorted(list(_LAZY) + _ERRORS + ["__version__"])


def __getattr__(name):
    try:
        mod, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'recommender' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value


def __dir__():
    return __all__
