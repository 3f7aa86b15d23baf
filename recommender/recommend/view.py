"""A per-generation view of an index: every track's unit vector in a space, and its metadata.

Playlists (:mod:`recommender.recommend.playlists`), hubness statistics
(:mod:`recommender.recommend.hubness`) and collection analysis
(:mod:`recommender.recommend.explore`) all work on the whole collection at
once.  They read it through this module, which computes each piece once per
``(index directory, catalog generation)`` and keeps the latest ones in a small
in-memory LRU: a changed catalog (new generation) is read again, an unchanged
one is not.

Every function takes a :class:`recommender.Recommender` (only its public
``index_dir``, ``catalog``, ``space_vectors`` and ``resolve`` are used).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from .._utils import unit_rows
from ..errors import NotInIndexError
from ..store.spaces import check_space

__all__ = ["ViewCache", "cached", "clear_cache", "vectors", "positions", "vectors_of", "metadata", "resolve_track"]


class ViewCache:
    """Small thread-safe LRU keyed by ``(index dir, catalog generation, *key)``.

    Parameters
    ----------
    maxsize : int
        Entries kept (vectors of a space, positions, metadata, hubness statistics...).
    """

    def __init__(self, maxsize=24):
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.maxsize = maxsize

    def get(self, rec, key, compute):
        """The value of ``key`` for ``rec``'s current generation; ``compute()`` on a miss."""
        full = (rec.index_dir, rec.catalog.generation) + tuple(key)
        with self._lock:
            if full in self._d:
                self._d.move_to_end(full)
                return self._d[full]
        value = compute()
        with self._lock:
            self._d[full] = value
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)
        return value

    def clear(self):
        """Forget every entry."""
        with self._lock:
            self._d.clear()


_cache = ViewCache()


def cached(rec, key: tuple, compute):
    """``compute()``, memoised per ``(rec.index_dir, catalog generation, *key)`` in the shared cache.

    Parameters
    ----------
    rec : Recommender
    key : tuple of hashables
        What is computed (e.g. ``("hubness", space, method, k, seed)``).
    compute : callable
        No arguments; called on a miss.
    """
    return _cache.get(rec, key, compute)


def clear_cache() -> None:
    """Forget cached vectors, metadata and hubness statistics (they are also keyed by generation)."""
    _cache.clear()


def vectors(rec, space: str):
    """Every track's unit vector in ``space``, cached per catalog generation.

    Returns
    -------
    ids : np.ndarray, int64, (n,)
    X : np.ndarray, float32, (n, d), read-only
        L2-normalised rows (:meth:`Recommender.space_vectors`), as the FAISS index holds them.

    Raises
    ------
    ParameterError
        Unknown ``space``.
    """
    check_space(space)

    def compute():
        ids, X = rec.space_vectors(space)
        X = unit_rows(X)
        X.setflags(write=False)
        return np.asarray(ids, dtype=np.int64), X

    return _cache.get(rec, ("vectors", space), compute)


def positions(rec, space: str) -> dict:
    """``{track id: row}`` of :func:`vectors` ``(rec, space)``."""

    def compute():
        ids, _ = vectors(rec, space)
        return {int(t): i for i, t in enumerate(ids)}

    return _cache.get(rec, ("positions", space), compute)


def vectors_of(rec, space: str, ids) -> np.ndarray:
    """Unit vectors of ``ids`` in ``space``, shape ``(len(ids), d)`` (rows of :func:`vectors`).

    Raises
    ------
    NotInIndexError
        A track id without a vector in ``space``.
    """
    _, X = vectors(rec, space)
    pos = positions(rec, space)
    try:
        rows = [pos[int(i)] for i in ids]
    except KeyError as e:
        raise NotInIndexError(f"track id {e.args[0]} has no {space!r} vector in {rec.index_dir}") from None
    return X[rows]


def _key(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip().casefold()
    return s or None


def metadata(rec) -> pd.DataFrame:
    """Track metadata (index: track id) with case-folded grouping keys, cached per generation.

    Returns
    -------
    pd.DataFrame
        Columns ``path, artist, album, title, genre, duration_s, content_hash`` and ``artist_key``,
        ``album_key`` (case-folded, ``None`` when empty), ``hash_key``
        (content hash or ``None``).  Shared: do not modify it.
    """

    def compute():
        df = rec.catalog.tracks(columns=["path", "artist", "album", "title", "genre", "duration_s", "content_hash"])
        # object columns: pandas >= 3 would turn None into NaN in a str column, and
        # every track without an artist would then count as one artist "nan"
        df["artist_key"] = pd.Series([_key(v) for v in df["artist"]], index=df.index, dtype=object)
        df["album_key"] = pd.Series([_key(v) for v in df["album"]], index=df.index, dtype=object)
        df["hash_key"] = pd.Series([v if isinstance(v, str) and v else None for v in df["content_hash"]],
                                   index=df.index, dtype=object)
        return df

    return _cache.get(rec, ("meta",), compute)


def resolve_track(rec, query) -> int:
    """Track id of ``query``: an id, a string of digits or an indexed path.

    Raises
    ------
    NotInIndexError
        ``query`` is not an indexed track.
    """
    if isinstance(query, str) and query.strip().isdigit():
        tid = rec.resolve(query)
        if tid is None:
            tid = rec.resolve(int(query))
    else:
        tid = rec.resolve(query)
    if tid is None:
        raise NotInIndexError(f"{query!r} is not an indexed track (give a track id or an indexed path)")
    return int(tid)
