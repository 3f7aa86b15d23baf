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

import logging
import math
import os
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from .._utils import unit_rows
from ..errors import NotInIndexError, RecommenderError
from ..store.spaces import check_space

__all__ = ["ViewCache", "cached", "clear_cache", "vectors", "positions", "vectors_of", "metadata", "resolve_track",
           "TrackTable", "track_table", "neighbour_lists"]


class ViewCache:
    """Small thread-safe LRU keyed by ``(index dir, catalog generation, *key)``.  Storing an entry
    of a generation drops the entries of that index's older generations (a server that reloads
    does not keep the previous collection's vectors and tables in memory).

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
        if compute is None:
            return None
        value = compute()
        with self._lock:
            # what older generations of this index hold is never asked for again: dropped now
            for old in [k for k in self._d if k[0] == full[0] and k[1] < full[1]]:
                del self._d[old]
            self._d[full] = value
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)
        return value

    def clear(self):
        """Forget every entry."""
        with self._lock:
            self._d.clear()


_cache = ViewCache()
logger = logging.getLogger(__name__)


def cached(rec, key: tuple, compute):
    """``compute()``, memoised per ``(rec.index_dir, catalog generation, *key)`` in the shared cache.

    Parameters
    ----------
    rec : Recommender
    key : tuple of hashables
        What is computed (e.g. ``("hubness", space, method, k, seed)``).
    compute : callable or None
        No arguments; called on a miss (``None``: return ``None`` on a miss).
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


class TrackTable:
    """What :func:`recommender.recommend.query.similar` reads of its candidates, for every track
    of one catalog generation, in memory: the per-query catalog reads become list look-ups.

    Built from three bulk reads in one snapshot (~1 s and ~80 MB for 100k tracks):
    :func:`~recommender.store.catalog.track_columns`, :meth:`Catalog.vectors` ``('tags')`` and
    :func:`~recommender.store.catalog.descriptor_rows`.  Values are exactly those of
    :meth:`Catalog.track_rows`, :meth:`Catalog.vectors` and :meth:`Catalog.descriptors`
    (without the JSON extras, which only ``where`` conditions read).

    Attributes
    ----------
    generation : int
        The catalog generation read.
    row_of : dict
        ``{track id: position}`` in the columns.
    columns : dict of str to list
        :data:`COLUMNS` of every track, ``None`` for NULL.
    tags : np.ndarray, float32, (n, n_tags) or None
        Tag vectors in track order (``None`` when the index has none); ``has_tags``
        bool (n,) tells which rows hold one.
    descriptors : pd.DataFrame
        :meth:`Catalog.descriptors` of every track without the JSON extras (index: track id):
        the columns of :data:`~recommender.store.catalog.FILTER_COLUMNS`.  A text column is
        typed over the whole collection (``str`` as soon as one track has a key), where a
        per-query read typed it over the candidates (``object`` holding ``None`` when no
        candidate had one); values are the same, a missing one is NaN either way.
    """

    #: Track columns kept (those ``similar``'s filters and result rows read).
    COLUMNS = ("path", "artist", "title", "album", "content_hash")

    def __init__(self, catalog):
        from ..store.catalog import descriptor_frame, descriptor_rows, track_columns

        with catalog.snapshot():
            self.generation = catalog.generation
            ids, self.columns = track_columns(catalog, self.COLUMNS)
            self.ids = ids
            self.row_of = {int(t): i for i, t in enumerate(ids.tolist())}
            self.tags, self.has_tags = None, np.zeros(len(ids), dtype=bool)
            if "tags" in catalog.dims:
                tids, T = catalog.vectors("tags")
                if len(tids):
                    self.tags = np.zeros((len(ids), T.shape[1]), dtype=np.float32)
                    rows = [self.row_of[int(t)] for t in tids.tolist() if int(t) in self.row_of]
                    keep = [j for j, t in enumerate(tids.tolist()) if int(t) in self.row_of]
                    self.tags[rows] = T[keep]
                    self.has_tags[rows] = True
                    self.tags.setflags(write=False)
            d = descriptor_rows(catalog)

        self.descriptors = descriptor_frame([(i, *d[i], None) for i in sorted(d)])
        self.descriptor_row = {int(t): j for j, t in enumerate(self.descriptors.index.tolist())}
        self._descriptor_arrays = {c: self.descriptors[c].array for c in self.descriptors.columns}
        self._descriptor_lists: dict = {}
        self._all_tagged = bool(self.has_tags.all())

    def __len__(self):
        return len(self.ids)

    def __contains__(self, track_id):
        return track_id in self.row_of

    def rows(self, ids) -> "_Rows":
        """``{id: {"id", *COLUMNS}}`` of ``ids`` (all held: check with ``in`` first); each row
        dict is made when it is first looked up (a query reads ~k of its ~50 candidates)."""
        return _Rows(self, ids, self.row)

    def row(self, track_id: int) -> dict:
        """``{"id", *COLUMNS}`` of one held track."""
        j = self.row_of[track_id]
        d = {"id": track_id}
        for c in self.COLUMNS:
            d[c] = self.columns[c][j]
        return d

    def descriptor_values(self, ids, name: str, *, as_list: bool = False):
        """Column ``name`` of :attr:`descriptors` at ``ids`` (NA where a track has none): the
        array ``descriptors[name].array.take(rows, allow_fill=True)`` gives, looked up by dict.
        ``as_list``: the same values as a list of Python values (NaN where a track has none;
        what a JSON writer needs, without building an array)."""
        if as_list:
            values = self._descriptor_lists.get(name)
            if values is None:  # the column as Python values, made when first asked for
                values = self._descriptor_lists[name] = self._descriptor_arrays[name].tolist()
            row = self.descriptor_row
            return [values[row[i]] if i in row else math.nan for i in ids]
        at = [self.descriptor_row.get(i, -1) for i in ids]
        return self._descriptor_arrays[name].take(at, allow_fill=True)

    def field(self, ids, name: str) -> dict:
        """``{id: value of column name}`` (a :data:`COLUMNS` name) of held ``ids``, without making row dicts."""
        col, row_of = self.columns[name], self.row_of
        return {i: col[row_of[i]] for i in ids}

    def tag_vectors(self, ids) -> dict:
        """``{id: tag vector (n_tags,)}`` of the ``ids`` that have one (each looked up when first read)."""
        if self.tags is None:
            return {}
        if not self._all_tagged:
            ids = [i for i in ids if self.has_tags[self.row_of[i]]]
        return _Rows(self, ids, lambda i: self.tags[self.row_of[i]])



class _Rows(dict):
    """``{track id: make(track id)}`` for some of a :class:`TrackTable`'s tracks, each value made
    when it is first looked up (row dicts, tag vectors).  Look-ups (``[]``, ``get``, ``in``)
    see every id; ``len``, iteration and ``items`` only the values made so far."""

    def __init__(self, table, ids, make):
        super().__init__()
        self._ids, self._make = frozenset(ids), make
        self.table = table

    def __missing__(self, track_id):
        if track_id not in self._ids:
            raise KeyError(track_id)
        value = self[track_id] = self._make(track_id)
        return value

    def __contains__(self, track_id):
        return track_id in self._ids

    def get(self, track_id, default=None):
        return self[track_id] if track_id in self._ids else default


#: A table is built the second time a generation is queried (a one-off query reads its
#: candidates from SQLite, as before; a server warms it when it opens an index).
_TABLE_AFTER = 1
_asked: dict = {}
_asked_lock = threading.Lock()


def track_table(rec, *, build: bool = True):
    """The :class:`TrackTable` of ``rec``'s catalog generation, or ``None`` while there is none.

    Parameters
    ----------
    rec : Recommender
    build : bool
        ``True``: build it now when missing (e.g. a server opening an index).
        ``False``: build it only when this generation was already asked for once
        (so one ``similar`` call in a process does not read the whole catalog);
        return ``None`` before.

    Raises
    ------
    CatalogError
        The catalog cannot be read.
    """
    table = _cache.get(rec, ("table",), None)
    if table is not None or build:
        return table if table is not None else _cache.get(rec, ("table",), lambda: TrackTable(rec.catalog))
    key = (rec.index_dir, rec.catalog.generation)
    with _asked_lock:
        n = _asked.get(key, 0)
        if n < _TABLE_AFTER:
            if len(_asked) > 64:  # old generations
                _asked.clear()
            _asked[key] = n + 1
            return None
    return _cache.get(rec, ("table",), lambda: TrackTable(rec.catalog))


def neighbour_lists(rec, space: str):
    """The :class:`~recommender.store.neighbours.NeighbourLists` written beside ``space``'s FAISS
    file, when they match the catalog's vectors generation; else ``None`` (read once per catalog
    generation, ~0.1 s and ~77 MB for 100k tracks).

    Raises
    ------
    ParameterError
        Unknown ``space``.
    """
    from ..store.faiss_index import VectorIndex
    from ..store.neighbours import SPACES_WITH_LISTS, NeighbourLists, neighbours_path

    check_space(space)
    if space not in SPACES_WITH_LISTS:
        return None

    def compute():
        path = os.path.join(rec.index_dir, f"{space}.faiss")
        try:
            side = VectorIndex.read_sidecar(path)
            if side.get("generation") != rec.catalog.vectors_generation:
                return False  # the FAISS file is stale: queries search the index rebuilt in memory
            return NeighbourLists.load(neighbours_path(path), side=side)
        except FileNotFoundError:
            return False
        except RecommenderError as e:
            logger.info("%s: not using the neighbour lists (%s)", rec.index_dir, e)
            return False

    return _cache.get(rec, ("neighbours", space), compute) or None
