"""SQLite catalog of an index: the source of truth for tracks and vectors.

An index directory holds one catalog (this module) and FAISS files derived
from it (:mod:`recommender.store.faiss_index`).  The catalog stores, per audio file, its
bookkeeping (path, size, mtime, content hash, which analysis produced it),
tags read from the file, per-track vectors for every *space* (``'embedding'``,
``'tags'`` ...), optional per-patch vectors and MIR descriptors.  Files that
could not be analysed are remembered in ``failures`` so a re-scan does not
retry them until they change.

Storage rules
-------------
* stdlib :mod:`sqlite3`, WAL journal, ``synchronous=NORMAL``: a process killed
  at any moment (SIGKILL included) leaves the catalog at its last committed
  transaction; every :meth:`Catalog.add_track` is one transaction, so an
  interrupted build resumes from :meth:`Catalog.file_states`.  (With
  ``synchronous=NORMAL`` a *power loss* may drop the last few commits, never
  corrupt the file.)
* One writer, many readers.  A writer (``mode='w'`` or ``'c'``) holds an
  exclusive :func:`fcntl.flock` on the sidecar ``<path>.lock``; readers
  (``mode='r'``) take no lock and see committed snapshots.  Bulk reads run in
  one read transaction so they are consistent while a writer commits; use
  :meth:`Catalog.snapshot` to group several reads.
* File paths are stored losslessly: ``TEXT`` when the name is valid UTF-8,
  else a ``BLOB`` of its raw bytes in the same column
  (:func:`~recommender.store._rows.path_param`); read back as ``str`` with
  :func:`os.fsdecode`.  NFC and NFD spellings of a name are different files.
* Schema 2 (upgraded from 1 by the first writer, in its transaction; a
  reader opens a schema-1 file as it is) adds ``tracks.album_artist``,
  ``disc_no``, ``tags_json`` (every value of every tag), ``audio_flag``
  (NULL, ``'silent'`` or ``'inaudible'``), the ``fingerprints`` table
  (Chromaprint items as little-endian uint32, :meth:`Catalog.set_fingerprint`)
  and the columns of CUE albums: ``source_path``, ``start_s``, ``end_s``.
* CUE albums (one audio file, several tracks, :mod:`recommender.io.cuesheet`):
  each cue track is a row whose ``path`` is ``"<audio path>#t=<start>,<end>"``
  (W3C Media Fragments; ``#t=<start>`` for the last track, which ends with
  the file), whose ``source_path`` is the audio file and ``start_s`` /
  ``end_s`` its bounds in seconds; ``source_path`` is NULL for a whole file.
  The ``path`` stays the unique key; whatever opens the audio reads
  ``source_path`` (when set) and plays ``start_s`` to ``end_s``.
* Vectors are little-endian float32 blobs, patch vectors float16 blobs; no
  pickle anywhere.  Descriptors that queries filter on (tempo, key, mode,
  loudness) are real columns; all others are JSON text.
* ``meta`` holds JSON values: ``schema_version``, ``created_at``,
  ``generation`` (bumped by every write transaction that changes tracks or
  vectors), ``vectors_generation`` (bumped only when the set of per-track
  vectors changes: the value FAISS files should be checked against, so that a
  moved file or re-tagged track does not force an index rebuild),
  ``model_name``, ``weights_sha256``, ``dims`` (``{space: dim}``) and anything
  the caller stores with :meth:`Catalog.set_meta` (e.g. front-end parameters).

The SQLite mechanics (lock, WAL, nested transactions, generations, schema
checks and migrations) live in :mod:`recommender.store._sqlite`; this module
is the domain API on top of it.

Parallel workers may deliver results in any order: rows are keyed by path
(upsert), ids come from SQLite ``AUTOINCREMENT`` and are never reused.
Workers (processes, Dask) should only *analyse* and return results to the
one process that holds the writer ``Catalog``; never share a ``Catalog``
across ``fork`` (SQLite connections and the lock must not be inherited).
"""

from __future__ import annotations

import json
import logging
import time
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..errors import CatalogError, NotInIndexError, ParameterError
from ._meta import IndexMeta
from ._rows import (
    _ALL_TRACK_COLUMNS,
    _V2_TRACK_COLUMNS,
    AUDIO_FLAGS,
    DESCRIPTOR_COLUMNS,
    FILTER_COLUMNS,
    TRACK_COLUMNS,
    _clean_text,
    _prepare_descriptors,
    _prepare_patches,
    _prepare_vectors,
    _read_all_vectors,
    _read_vectors_of,
    _track_row,
    _TrackRows,
    _typed_frame,
    path_param,
    path_value,
)
from ._sqlite import SQLiteDatabase

__all__ = [
    "Catalog",
    "FileState",
    "descriptor_frame",
    "descriptor_rows",
    "track_columns",
    "TRACK_COLUMNS",
    "FILTER_COLUMNS",
    "DESCRIPTOR_COLUMNS",
    "AUDIO_FLAGS",
    "path_param",
    "path_value",
]

logger = logging.getLogger(__name__)

_RESERVED_META = frozenset({"schema_version", "generation", "vectors_generation"})

_SCHEMA_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE tracks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    path         TEXT UNIQUE NOT NULL,
    size         INTEGER,
    mtime_ns     INTEGER,
    content_hash TEXT,
    duration_s   REAL,
    artist       TEXT,
    album        TEXT,
    title        TEXT,
    year         INTEGER,
    genre        TEXT,
    track_no     INTEGER,
    analysis_key TEXT,
    sampling     TEXT,
    n_patches    INTEGER,
    added_at     REAL,
    updated_at   REAL
);
CREATE INDEX tracks_content_hash ON tracks(content_hash);
CREATE TABLE vectors (
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    space    TEXT NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (track_id, space)
);
CREATE INDEX vectors_space ON vectors(space, track_id);
CREATE TABLE patches (
    track_id   INTEGER PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE,
    n          INTEGER NOT NULL,
    dim        INTEGER NOT NULL,
    n_classes  INTEGER NOT NULL,
    starts_s   BLOB NOT NULL,
    embeddings BLOB NOT NULL,
    probs      BLOB
);
CREATE TABLE descriptors (
    track_id         INTEGER PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE,
    tempo_bpm        REAL,
    tempo_confidence REAL,
    key              TEXT,
    mode             TEXT,
    loudness_db      REAL,
    data             TEXT
);
CREATE INDEX descriptors_tempo ON descriptors(tempo_bpm);
CREATE INDEX descriptors_key ON descriptors(key, mode);
CREATE TABLE failures (
    path      TEXT PRIMARY KEY,
    reason    TEXT,
    size      INTEGER,
    mtime_ns  INTEGER,
    failed_at REAL
);
"""

# Schema 2: tags as players read them (album artist, disc, every value of every
# tag), the audio flag (silent / inaudible) and Chromaprint fingerprints.
_V2_TRACKS_SQL = (
    "ALTER TABLE tracks ADD COLUMN album_artist TEXT",
    "ALTER TABLE tracks ADD COLUMN disc_no INTEGER",
    "ALTER TABLE tracks ADD COLUMN tags_json TEXT",
    "ALTER TABLE tracks ADD COLUMN audio_flag TEXT",
    "ALTER TABLE tracks ADD COLUMN source_path TEXT",
    "ALTER TABLE tracks ADD COLUMN start_s REAL",
    "ALTER TABLE tracks ADD COLUMN end_s REAL",
    "CREATE INDEX tracks_source_path ON tracks(source_path)",
)
_FINGERPRINTS_SQL = """
CREATE TABLE fingerprints (
    track_id   INTEGER PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE,
    duration_s REAL,
    data       BLOB NOT NULL
)"""
_SCHEMA_V2 = _SCHEMA_V1 + ";\n".join(_V2_TRACKS_SQL + (_FINGERPRINTS_SQL,)) + ";\n"

# Columns every table must have for the catalog to be usable (validation).
_REQUIRED_V1 = {
    "meta": {"key", "value"},
    "tracks": set(_ALL_TRACK_COLUMNS) - set(_V2_TRACK_COLUMNS),
    "vectors": {"track_id", "space", "data"},
    "patches": {"track_id", "n", "dim", "n_classes", "starts_s", "embeddings", "probs"},
    "descriptors": {"track_id", "data", *FILTER_COLUMNS},
    "failures": {"path", "reason", "size", "mtime_ns", "failed_at"},
}
_REQUIRED = {
    **_REQUIRED_V1,
    "tracks": set(_ALL_TRACK_COLUMNS),
    "fingerprints": {"track_id", "duration_s", "data"},
}


def _upgrade_v1_to_v2(conn) -> None:
    for stmt in _V2_TRACKS_SQL:
        conn.execute(stmt)
    conn.execute(_FINGERPRINTS_SQL)


# Upgrades: _MIGRATIONS[v] turns a schema-v catalog into schema v+1 inside the
# caller's write transaction (SQLiteDatabase._migrate).
_MIGRATIONS: dict = {1: _upgrade_v1_to_v2}


class FileState(NamedTuple):
    """What the catalog knows of one file (:meth:`Catalog.file_states`)."""

    id: int
    size: int | None
    mtime_ns: int | None
    content_hash: str | None
    analysis_key: str | None


def descriptor_frame(rows) -> pd.DataFrame:
    """Rows ``(track_id, *FILTER_COLUMNS values, data JSON or None)`` as the frame
    :meth:`Catalog.descriptors` returns (index ``track_id``; JSON extras expanded to columns)."""
    data = {c: [r[i + 1] for r in rows] for i, c in enumerate(FILTER_COLUMNS)}
    index = pd.Index([r[0] for r in rows], dtype="int64", name="track_id")
    base = _typed_frame(data, index, list(FILTER_COLUMNS))
    extras = [json.loads(r[-1]) if r[-1] else {} for r in rows]
    if any(extras):
        ext = pd.DataFrame(extras, index=base.index)
        base = base.join(ext)
    return base


def descriptor_rows(catalog) -> dict:
    """``{track id: (tempo_bpm, tempo_confidence, key, mode, loudness_db)}`` of every track of
    ``catalog`` with stored descriptors (:data:`FILTER_COLUMNS`, plain Python values), in one read.

    What per-generation caches keep (:func:`recommender.recommend.view.track_table`);
    :func:`descriptor_frame` turns rows ``(id, *values, None)`` into the frame
    :meth:`Catalog.descriptors` gives (without the JSON extras).
    """
    rows = catalog._select(f"SELECT track_id, {', '.join(FILTER_COLUMNS)} FROM descriptors")
    return {int(r[0]): tuple(r[1:]) for r in rows}


def track_columns(catalog, columns) -> tuple:
    """Some columns of every track of ``catalog`` as plain Python lists, in one read (sorted by id).

    Values are those :meth:`Catalog.track` gives (``None`` for NULL; ``path`` and
    ``source_path`` as ``str``), without pandas: ~0.3 s for 100k tracks.

    Parameters
    ----------
    catalog : Catalog
    columns : list of str
        Track columns (not ``sampling``/``tags_json``, which need decoding).

    Returns
    -------
    ids : np.ndarray, int64, (n,)
    values : dict of str to list
        One list of ``n`` values per column.

    Raises
    ------
    ParameterError
        An unknown (or JSON) column.
    """
    cols = [c for c in columns if c != "id"]
    bad = sorted(set(cols) - (set(_ALL_TRACK_COLUMNS) - {"sampling", "tags_json"}))
    if bad:
        raise ParameterError(f"columns={bad}: unknown or JSON; allowed are {list(_ALL_TRACK_COLUMNS)}")
    sel = ", ".join(["id"] + [catalog._col_sql(c) for c in cols])
    rows = catalog._select(f"SELECT {sel} FROM tracks ORDER BY id")
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    values = {c: [r[i + 1] for r in rows] for i, c in enumerate(cols)}
    for c in ("path", "source_path"):
        if c in values:
            values[c] = [path_value(v) for v in values[c]]
    return ids, values


def _check_dims_value(dims):
    if not isinstance(dims, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
        for k, v in dims.items()
    ):
        raise ParameterError(f"dims={dims!r}: must map space names to positive integers")


class Catalog(_TrackRows, IndexMeta, SQLiteDatabase):
    """SQLite catalog of an index directory.

    Parameters
    ----------
    path : str or os.PathLike
        The SQLite file (e.g. ``<index>/catalog.sqlite``).
    mode : {'r', 'w', 'c'}
        ``'r'`` read-only (never writes, takes no lock); ``'w'`` open an
        existing catalog for writing; ``'c'`` like ``'w'`` but create the
        catalog if the file does not exist (or is an SQLite database without
        any table).  Writers hold an exclusive lock on ``<path>.lock``.
    lock_timeout_s : float
        How long a writer waits for another writer to release the lock;
        ``0`` (default) refuses at once with :class:`IndexLockedError`.
    busy_timeout_s : float
        SQLite busy timeout (a reader waiting on a checkpoint, etc.).

    Raises
    ------
    CatalogError
        The file is missing (modes ``'r'``/``'w'``), not an SQLite database,
        corrupt, of another schema, or of a newer schema version.  Nothing is
        written to a file that fails validation.
    IndexLockedError
        Another process holds the writer lock.

    Examples
    --------
    >>> with Catalog("idx/catalog.sqlite", mode="c") as cat:  # doctest: +SKIP
    ...     tid = cat.add_track({"path": "a.mp3", "size": 10, "mtime_ns": 1},
    ...                         vectors={"embedding": np.ones(200)})
    ...     ids, X = cat.vectors("embedding")
    """

    SCHEMA_VERSION = 2
    SCHEMA_SQL = _SCHEMA_V2
    REQUIRED_COLUMNS = _REQUIRED
    MIGRATIONS = _MIGRATIONS
    READABLE_VERSIONS = {1: _REQUIRED_V1}

    def __init__(self, path, *, mode="r", lock_timeout_s=0.0, busy_timeout_s=30.0):
        self._dims_cache = None
        super().__init__(path, mode=mode, lock_timeout_s=lock_timeout_s, busy_timeout_s=busy_timeout_s)

    def _initial_meta(self) -> dict:
        return {"dims": {}}

    def _forget_cached(self) -> None:
        self._dims_cache = None
        self._drop_meta_memo()  # nothing read inside a rolled-back transaction survives

    # ------------------------------------------------------------------ meta
    def set_meta(self, **items) -> None:
        """Store JSON-serialisable ``meta`` values (e.g. ``frontend={...}``).

        ``schema_version``, ``generation`` and ``vectors_generation`` are
        managed by the catalog and cannot be set.
        """
        bad = sorted(set(items) & _RESERVED_META)
        if bad:
            raise ParameterError(f"set_meta({bad[0]}=...): {bad[0]!r} is managed by the catalog")
        if "dims" in items:
            _check_dims_value(items["dims"])
        with self._write():
            self._put_meta(**items)
            self._dims_cache = None

    def _dims(self) -> dict:
        if self._dims_cache is None or self._depth == 0:
            dims = self.get_meta("dims", {}) or {}
            if not isinstance(dims, dict):
                raise CatalogError(self.path, f"meta['dims'] is {dims!r}, expected a mapping")
            self._dims_cache = {str(k): int(v) for k, v in dims.items()}
        return self._dims_cache

    def check_compatible(self, *, model_name, weights_sha256, dims) -> None:
        """Check that a model's output fits this catalog; record it if new.

        Parameters
        ----------
        model_name : str
        weights_sha256 : str
        dims : dict of str to int
            Vector dimension per space, e.g. ``{'embedding': 200, 'tags': 50}``.

        Raises
        ------
        CatalogError
            E.g. ``"index built with model musicnn (dim 200 for 'embedding'),
            this model gives dim 50"``.
        """
        _check_dims_value(dims)
        dims = {str(k): int(v) for k, v in dims.items()}
        have_model = self.get_meta("model_name")
        have_sha = self.get_meta("weights_sha256")
        have_dims = self._dims()
        label = have_model if have_model is not None else "an unnamed model"
        for space, d in dims.items():
            if space in have_dims and have_dims[space] != d:
                raise CatalogError(
                    self.path,
                    f"index built with model {label} (dim {have_dims[space]} for {space!r}), "
                    f"this model {model_name} gives dim {d}",
                )
        if have_model is not None and have_model != model_name:
            raise CatalogError(
                self.path,
                f"index built with model {have_model}, this model is {model_name}; "
                "rebuild the index or use the same model",
            )
        if have_sha is not None and have_sha != weights_sha256:
            raise CatalogError(
                self.path,
                f"index built with model {have_model} weights sha256 {str(have_sha)[:12]}…, "
                f"these weights are {str(weights_sha256)[:12]}…; rebuild the index",
            )
        if self.mode == "r":
            return
        if have_model is None or have_sha is None or any(s not in have_dims for s in dims):
            with self._write():
                self._put_meta(
                    model_name=model_name,
                    weights_sha256=weights_sha256,
                    dims={**have_dims, **dims},
                )
                self._dims_cache = None

    # ---------------------------------------------------------------- writes
    def add_track(self, record, *, vectors, patches=None, descriptors=None) -> int:
        """Insert or update one analysed file, in one transaction.

        A row with the same ``path`` keeps its id (and ``added_at``) and is
        otherwise replaced: columns absent from ``record`` become NULL, and
        vectors, patches and descriptors are replaced by the ones given
        (``None`` removes them) -- a re-analysis replaces the whole result.
        A failure recorded for the path is cleared.

        Parameters
        ----------
        record : dict
            ``path`` (required) and any of :data:`TRACK_COLUMNS`; ``sampling``
            is any JSON-serialisable value (policy name, params, patch starts).
        vectors : dict of str to array_like, shape (d,)
            One float vector per space; its dim must match the catalog's
            ``dims`` for that space (a new space records its dim).
        patches : dict, optional
            ``starts_s`` (n,), ``embeddings`` (n, D) and optionally ``probs``
            (n, C); stored as float32 / float16 / float16.
        descriptors : dict, optional
            :data:`FILTER_COLUMNS` go to real columns, every other key to
            JSON (arrays become lists).

        Returns
        -------
        int
            The stable track id.
        """
        row = _track_row(record)
        vecs = _prepare_vectors(vectors)
        patch_row = _prepare_patches(patches)
        desc_row = _prepare_descriptors(descriptors)
        now = time.time()
        cols = list(row)
        # SELECT-then-UPDATE/INSERT rather than INSERT ... ON CONFLICT: an
        # upsert that hits the conflict still consumes an AUTOINCREMENT value.
        ins = (
            f"INSERT INTO tracks({', '.join(cols)}, added_at, updated_at) "
            f"VALUES ({', '.join('?' * len(cols))}, ?, ?)"
        )
        upd = (
            "UPDATE tracks SET "
            + ", ".join(f"{c}=?" for c in cols if c != "path")
            + ", updated_at=? WHERE id=?"
        )
        with self._write() as conn:
            dims = self._dims()
            new_dims = {}
            for space, v in vecs.items():
                want = dims.get(space, new_dims.get(space))
                if want is None:
                    new_dims[space] = v.shape[0]
                elif want != v.shape[0]:
                    raise ParameterError(
                        f"vectors[{space!r}] has dim {v.shape[0]}: this catalog stores dim {want} "
                        f"for {space!r}"
                    )
            if new_dims:
                self._put_meta(dims={**dims, **new_dims})
                self._dims_cache = {**dims, **new_dims}
            hit = conn.execute("SELECT id FROM tracks WHERE path=?", (row["path"],)).fetchone()
            if hit is None:
                tid = conn.execute(ins, [row[c] for c in cols] + [now, now]).lastrowid
            else:
                tid = hit[0]
                conn.execute(upd, [row[c] for c in cols if c != "path"] + [now, tid])
                conn.execute("DELETE FROM fingerprints WHERE track_id=?", (tid,))  # of the old content
            conn.execute("DELETE FROM vectors WHERE track_id=?", (tid,))
            conn.executemany(
                "INSERT INTO vectors(track_id, space, data) VALUES (?, ?, ?)",
                [(tid, s, v.astype("<f4", copy=False).tobytes()) for s, v in vecs.items()],
            )
            conn.execute("DELETE FROM patches WHERE track_id=?", (tid,))
            if patch_row is not None:
                conn.execute(
                    "INSERT INTO patches(track_id, n, dim, n_classes, starts_s, embeddings, probs) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tid, *patch_row),
                )
            conn.execute("DELETE FROM descriptors WHERE track_id=?", (tid,))
            if desc_row is not None:
                conn.execute(
                    f"INSERT INTO descriptors(track_id, {', '.join(FILTER_COLUMNS)}, data) "
                    f"VALUES (?, {', '.join('?' * len(FILTER_COLUMNS))}, ?)",
                    (tid, *desc_row),
                )
            conn.execute("DELETE FROM failures WHERE path=?", (row["path"],))
            self._changed = self._vectors_changed = True
        return int(tid)

    def move_track(self, track_id, *, new_path, size, mtime_ns, source_path=..., content_hash=...) -> None:
        """Record that a track's file moved (recognised by its content hash), or that
        its tags were rewritten (same path; new size, mtime and ``content_hash``).

        Id, vectors and analysis are kept (``vectors_generation`` is not bumped); ``source_path``
        (a cue track's audio file) and ``content_hash`` are left as they are when not given.

        Raises
        ------
        NotInIndexError
            ``track_id`` is not in the catalog.
        ParameterError
            ``new_path`` already belongs to another track (remove it first).
        """
        new_path = path_param(new_path)
        set_source = "" if source_path is ... else ", source_path=?"
        source = () if source_path is ... else (None if source_path is None else path_param(source_path),)
        if content_hash is not ...:
            set_source += ", content_hash=?"
            source += (content_hash,)
        with self._write() as conn:
            other = conn.execute("SELECT id FROM tracks WHERE path=?", (new_path,)).fetchone()
            if other is not None and other[0] != int(track_id):
                raise ParameterError(
                    f"new_path={new_path!r}: already belongs to track {other[0]}; remove it first"
                )
            cur = conn.execute(
                f"UPDATE tracks SET path=?, size=?, mtime_ns=?, updated_at=?{set_source} WHERE id=?",
                (new_path, size, mtime_ns, time.time(), *source, int(track_id)),
            )
            if cur.rowcount == 0:
                raise NotInIndexError(f"track id {track_id} is not in {self.path}")
            conn.execute("DELETE FROM failures WHERE path=?", (new_path,))
            self._changed = True

    def remove_tracks(self, ids) -> int:
        """Delete tracks (and their vectors, patches, descriptors); return the count.

        Ids are never reused (``AUTOINCREMENT``).  Unknown ids are ignored.
        """
        ids = [int(i) for i in ([ids] if np.isscalar(ids) else list(ids))]
        if not ids:
            return 0
        with self._write() as conn:
            n = 0
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                cur = conn.execute(
                    f"DELETE FROM tracks WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                n += cur.rowcount
            if n:
                self._changed = self._vectors_changed = True
        return n

    def record_failure(self, path, reason, *, size=None, mtime_ns=None) -> None:
        """Remember that ``path`` could not be analysed (and why)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO failures(path, reason, size, mtime_ns, failed_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET reason=excluded.reason, size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, failed_at=excluded.failed_at",
                (path_param(path), _clean_text(str(reason)), size, mtime_ns, time.time()),
            )

    def clear_failure(self, path) -> None:
        """Forget a recorded failure (no error if there is none)."""
        with self._write() as conn:
            conn.execute("DELETE FROM failures WHERE path=?", (path_param(path),))

    # ----------------------------------------------------------------- reads
    def failures(self) -> pd.DataFrame:
        """Recorded failures: columns path, reason, size, mtime_ns, failed_at."""
        rows = self._select("SELECT path, reason, size, mtime_ns, failed_at FROM failures ORDER BY path")
        cols = ["path", "reason", "size", "mtime_ns", "failed_at"]
        data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
        data["path"] = [path_value(v) for v in data["path"]]
        return _typed_frame(data, pd.RangeIndex(len(rows)), cols)

    def track(self, track_id) -> dict:
        """One track's row as a dict (``sampling`` decoded).

        Raises
        ------
        NotInIndexError
        """
        rows = self._select(self._TRACK_SELECT + " WHERE id=?", (int(track_id),))
        if not rows:
            raise NotInIndexError(f"track id {track_id} is not in {self.path}")
        return self._row_to_dict(rows[0])

    def track_by_path(self, path):
        """The track stored for ``path`` as a dict, or ``None``."""
        rows = self._select(self._TRACK_SELECT + " WHERE path=?", (path_param(path),))
        return self._row_to_dict(rows[0]) if rows else None

    def tracks_by_hash(self, content_hash) -> list:
        """Tracks with this content hash (used to recognise moved files)."""
        rows = self._select(self._TRACK_SELECT + " WHERE content_hash=? ORDER BY id", (content_hash,))
        return [self._row_to_dict(r) for r in rows]

    def tracks(self, ids=None, *, columns=None) -> pd.DataFrame:
        """Tracks as a DataFrame indexed by id, in one read.

        Parameters
        ----------
        ids : array_like of int, optional
            Tracks to read, returned in this order; default all tracks,
            sorted by id.
        columns : list of str, optional
            Subset of track columns (default all); ``sampling`` is decoded
            from JSON when included.

        Raises
        ------
        NotInIndexError
            A requested id is not in the catalog.
        ParameterError
            An unknown column.
        """
        cols = [c for c in _ALL_TRACK_COLUMNS if c != "id"] if columns is None else list(columns)
        bad = sorted(set(cols) - set(_ALL_TRACK_COLUMNS))
        if bad:
            raise ParameterError(f"columns={bad}: unknown; allowed are {list(_ALL_TRACK_COLUMNS)}")
        cols = [c for c in cols if c != "id"]
        sel = ", ".join(["id"] + [self._col_sql(c) for c in cols])
        if ids is None:
            rows = self._select(f"SELECT {sel} FROM tracks ORDER BY id")
        else:
            rows = self._rows_in_order(f"SELECT {sel} FROM tracks", ids)
        data = {c: [r[i + 1] for r in rows] for i, c in enumerate(cols)}
        for c in ("path", "source_path"):
            if c in data:
                data[c] = [path_value(v) for v in data[c]]
        for c in ("sampling", "tags_json"):
            if c in data:
                data[c] = [json.loads(v) if v is not None else None for v in data[c]]
        index = pd.Index([r[0] for r in rows], dtype="int64", name="id")
        return _typed_frame(data, index, cols)

    def track_rows(self, ids) -> dict:
        """``{id: row}`` for the given ids in one read: the rows :meth:`track`
        gives (plain Python values, ``None`` for NULL), in the order of ``ids``.

        Raises
        ------
        NotInIndexError
            A requested id is not in the catalog.
        """
        rows = self._rows_in_order(self._TRACK_SELECT, ids)
        return {int(r[0]): self._row_to_dict(r) for r in rows}

    def _rows_in_order(self, select, ids) -> list:
        """Rows of ``select`` (whose first column is ``id``) for ``ids``, in that order."""
        want = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
        if not want:
            return []
        rows = self._select(select + " WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(want),))
        by_id = {r[0]: r for r in rows}
        missing = [i for i in want if i not in by_id]
        if missing:
            raise NotInIndexError(f"track id(s) {missing[:5]} are not in {self.path}")
        return [by_id[i] for i in want]

    def file_states(self) -> dict:
        """``{path: FileState(id, size, mtime_ns, content_hash, analysis_key)}`` for all tracks.

        One query, suited to comparing a 10k+ file scan against the catalog.
        """
        rows = self._select("SELECT path, id, size, mtime_ns, content_hash, analysis_key FROM tracks")
        return {path_value(r[0]): FileState._make(r[1:]) for r in rows}

    def ids(self) -> np.ndarray:
        """All track ids, sorted, as int64."""
        rows = self._select("SELECT id FROM tracks ORDER BY id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self, space, ids=None):
        """Bulk read of one vector space.

        Parameters
        ----------
        space : str
        ids : array_like of int, optional
            Tracks to read, returned in this order; default all tracks with
            a vector in ``space``, sorted by id.

        Returns
        -------
        ids : np.ndarray, int64, shape (n,)
        X : np.ndarray, float32, shape (n, d)

        Raises
        ------
        NotInIndexError
            A requested id has no vector in ``space``.
        """
        with self._db_errors(), self.snapshot():
            d = self._dims().get(space)
            if ids is None:
                return _read_all_vectors(self._c(), self.path, space, d)
            return _read_vectors_of(self._c(), self.path, space, d, ids)

    def patch_vectors(self, track_id) -> dict:
        """Per-patch data of one track.

        Returns
        -------
        dict
            ``starts_s`` float32 (n,), ``embeddings`` float32 (n, D),
            ``probs`` float32 (n, C) or ``None``.

        Raises
        ------
        NotInIndexError
            The track is absent or has no stored patches.
        """
        rows = self._select(
            "SELECT n, dim, n_classes, starts_s, embeddings, probs FROM patches WHERE track_id=?",
            (int(track_id),),
        )
        if not rows:
            raise NotInIndexError(f"track id {track_id} has no patch vectors in {self.path}")
        n, dim, nc, starts, emb, probs = rows[0]
        try:
            out = {
                "starts_s": np.frombuffer(starts, dtype="<f4").astype(np.float32).reshape(n),
                "embeddings": np.frombuffer(emb, dtype="<f2").astype(np.float32).reshape(n, dim),
                "probs": None
                if probs is None
                else np.frombuffer(probs, dtype="<f2").astype(np.float32).reshape(n, nc),
            }
        except ValueError:
            raise CatalogError(self.path, f"corrupt patch vectors for track {track_id}") from None
        return out

    def descriptors(self, ids=None) -> pd.DataFrame:
        """MIR descriptors indexed by track id (JSON extras expanded to columns)."""
        sql = f"SELECT track_id, {', '.join(FILTER_COLUMNS)}, data FROM descriptors"
        params = ()
        if ids is not None:
            sql += " WHERE track_id IN (SELECT value FROM json_each(?))"
            params = (json.dumps([int(i) for i in np.asarray(ids).reshape(-1)]),)
        return descriptor_frame(self._select(sql + " ORDER BY track_id", params))

    def spaces(self) -> list:
        """Vector spaces that hold at least one vector, sorted."""
        with self.snapshot():
            out = [
                s
                for s in sorted(self._dims())
                if self._select("SELECT 1 FROM vectors WHERE space=? LIMIT 1", (s,))
            ]
        return out

    def count_vectors(self, space) -> int:
        """Number of tracks with a vector in ``space`` (0 for an unknown space)."""
        return int(self._select("SELECT COUNT(*) FROM vectors WHERE space=?", (str(space),))[0][0])

    @property
    def dims(self) -> dict:
        """``{space: dim}`` recorded in this catalog."""
        return dict(self._dims())

    def __len__(self) -> int:
        return int(self._select("SELECT COUNT(*) FROM tracks")[0][0])

    def __contains__(self, track_id) -> bool:
        try:
            tid = int(track_id)
        except (TypeError, ValueError):
            return False
        return bool(self._select("SELECT 1 FROM tracks WHERE id=?", (tid,)))
