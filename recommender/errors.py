"""Exception hierarchy of :mod:`recommender`.

Every error the package raises on purpose derives from :class:`RecommenderError`,
so callers can catch one type.  Messages name the file or parameter, the value,
and the rule that was broken.
"""

from __future__ import annotations

import os

__all__ = [
    "RecommenderError",
    "ParameterError",
    "AudioError",
    "ModelError",
    "CatalogError",
    "IndexError_",
    "IndexFileError",
    "IndexLockedError",
    "NotInIndexError",
    "DatasetError",
    "PlaylistFileError",
    "StaleIndexError",
    "TagWriteError",
    "CueSheetError",
]


class RecommenderError(Exception):
    """Root of all errors raised by :mod:`recommender`."""


class ParameterError(RecommenderError, ValueError):
    """A function was called with an invalid parameter value.

    The message names the parameter, the value received and the rule,
    e.g. ``"k=0: must be a positive integer"``.
    """


class _FileError(RecommenderError):
    """An error tied to one file: ``path`` and ``reason`` are attributes."""

    def __init__(self, path, reason: str):
        self.path = os.fspath(path) if path is not None else None
        self.reason = str(reason)
        super().__init__(f"{self.path}: {self.reason}" if self.path else self.reason)

    def __reduce__(self):  # keep picklable across joblib/dask workers
        return (type(self), (self.path, self.reason))


class AudioError(_FileError):
    """A file could not be decoded as audio (empty, truncated, not audio,
    unsupported format, unreadable, vanished...)."""


class ModelError(_FileError):
    """A model file or model name is invalid, incompatible or unsafe."""


class CatalogError(_FileError):
    """The SQLite catalog of an index is missing, corrupt, or of another schema."""


class IndexFileError(_FileError):
    """A FAISS index file is corrupt, or does not match its catalog."""


# Alias kept short for users: ``recommender.errors.IndexError_`` avoids
# shadowing the builtin ``IndexError``.
IndexError_ = IndexFileError


class IndexLockedError(_FileError):
    """Another process is writing to this index directory."""


class NotInIndexError(RecommenderError, KeyError):
    """A track id or path was asked for that the index does not hold."""

    def __str__(self):  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "not in index"


class DatasetError(_FileError):
    """A labelled dataset (folder, CSV, FMA metadata) cannot be used."""


class CueSheetError(RecommenderError):
    """A CUE sheet that cannot be used: ``path`` (the sheet), ``line`` (1-based, or
    ``None`` when the whole sheet is concerned) and a plain ``reason``."""

    def __init__(self, path, line, reason: str):
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        self.reason = str(reason)
        where = f"{self.path}, line {line}" if line else f"{self.path}"
        super().__init__(f"{where}: {self.reason}")

    def __reduce__(self):  # keep picklable across joblib/dask workers
        return (type(self), (self.path, self.line, self.reason))


class TagWriteError(_FileError):
    """A file's tags could not be read or written (``path``, ``reason``); the file is left as it was."""


class PlaylistFileError(_FileError):
    """A playlist file (M3U8, XSPF) that cannot be read: not well-formed or not of its format."""


class StaleIndexError(IndexFileError):
    """The FAISS file was built from another catalog generation: rebuild it.

    .. versionchanged:: 0.2
       Moved from ``recommender.index`` (now ``recommender.store.faiss_index``).

    Attributes
    ----------
    found_generation, expected_generation : int or None
    """

    def __init__(self, path, reason, *, found_generation=None, expected_generation=None):
        super().__init__(path, reason)
        self.found_generation = found_generation
        self.expected_generation = expected_generation

    def __reduce__(self):
        return (
            _make_stale,
            (self.path, self.reason, self.found_generation, self.expected_generation),
        )


def _make_stale(path, reason, found, expected):
    return StaleIndexError(path, reason, found_generation=found, expected_generation=expected)
