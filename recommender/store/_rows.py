"""Rows of the catalog: track columns, how values are checked and stored, and read back.

Split from :mod:`recommender.store.catalog` (its public names are re-exported
there): the column lists, lossless storage of file paths
(:func:`path_param` / :func:`path_value`), the checks that turn a caller's
record, vectors, patches and descriptors into SQL values, the bulk vector
readers, and :class:`_TrackRows` (reading ``tracks`` rows from a schema-1 or
schema-2 file, and the ``fingerprints`` table).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd

from ..errors import CatalogError, NotInIndexError, ParameterError
from ._sqlite import dumps

#: Columns of ``tracks`` a caller may set through :meth:`Catalog.add_track`.
TRACK_COLUMNS = (
    "path",
    "size",
    "mtime_ns",
    "content_hash",
    "duration_s",
    "artist",
    "album",
    "title",
    "year",
    "genre",
    "track_no",
    "analysis_key",
    "sampling",
    "n_patches",
    "album_artist",
    "disc_no",
    "tags_json",
    "audio_flag",
    "source_path",
    "start_s",
    "end_s",
)
#: Columns schema 2 added to ``tracks`` (NULL when a reader opens a schema-1 catalog).
#: ``source_path``, ``start_s``, ``end_s``: a track of a CUE album (one audio file,
#: several tracks) names its audio file and its bounds in seconds; NULL for a whole file.
_V2_TRACK_COLUMNS = ("album_artist", "disc_no", "tags_json", "audio_flag", "source_path", "start_s", "end_s")
#: Values of ``tracks.audio_flag``: NULL is normal audio.
AUDIO_FLAGS = ("silent", "inaudible")
_ALL_TRACK_COLUMNS = ("id",) + TRACK_COLUMNS + ("added_at", "updated_at")

#: Descriptor columns stored as real SQL columns (what queries filter on).
FILTER_COLUMNS = ("tempo_bpm", "tempo_confidence", "key", "mode", "loudness_db")
#: Former name of :data:`FILTER_COLUMNS` (not to be confused with
#: :data:`recommender.descriptors.DESCRIPTOR_COLUMNS`, the 95 descriptor names).
DESCRIPTOR_COLUMNS = FILTER_COLUMNS


# ------------------------------------------------------------------ paths
def path_param(path):
    """A file path as stored in the catalog: ``str`` if it is valid UTF-8, else the raw bytes.

    POSIX file names are bytes and need not be UTF-8 (a cp1252 ``0x96`` left
    by a copy from an old disk); Python holds such bytes as lone surrogates
    (:func:`os.fsdecode`), which SQLite ``TEXT`` cannot store.  Such a path
    is stored as a ``BLOB`` of its bytes (:func:`os.fsencode`) in the same
    column (SQLite columns are dynamically typed): lossless, and the same
    path always gets the same form, so ``WHERE path=?`` and ``UNIQUE`` still
    hold.  Names that differ only in Unicode normalisation (NFC / NFD) are
    different files and stay different.

    Raises
    ------
    ParameterError
        ``path`` holds a surrogate that no file name can (not from ``os.fsdecode``).
    """
    p = os.fspath(path)
    if isinstance(p, str):
        try:
            p.encode("utf-8")
            return p
        except UnicodeEncodeError:
            try:
                p = os.fsencode(p)
            except UnicodeEncodeError:
                raise ParameterError(f"path {p!r}: holds characters no file name can hold") from None
    try:
        return p.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(p)


def path_value(v):
    """Inverse of :func:`path_param`: a stored path as ``str`` (``os.fsdecode`` of a BLOB)."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return os.fsdecode(bytes(v))
    return v


def _clean_text(v: str) -> str:
    """Text SQLite can store: lone surrogates (undecodable file-name bytes) as ``\\xNN``."""
    try:
        v.encode("utf-8")
        return v
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(v).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return v.encode("utf-8", "backslashreplace").decode("utf-8")


def _as_float32_vector(space, v) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"vectors[{space!r}]: not numeric ({exc})") from None
    if a.ndim != 1 or a.size == 0:
        raise ParameterError(
            f"vectors[{space!r}] has shape {a.shape}: must be a non-empty 1-D array"
        )
    if not np.all(np.isfinite(a)):
        raise ParameterError(f"vectors[{space!r}]: contains NaN or infinity")
    return a


# ------------------------------------------------------------------ row helpers
def _track_row(record) -> dict:
    if not isinstance(record, dict):
        raise ParameterError(f"record={type(record).__name__}: must be a dict")
    unknown = sorted(set(record) - set(TRACK_COLUMNS))
    if unknown:
        raise ParameterError(
            f"record has unknown key(s) {unknown}: allowed are {list(TRACK_COLUMNS)}"
        )
    path = record.get("path")
    if path is None or not str(os.fspath(path)):
        raise ParameterError("record['path']: required, a non-empty path")
    row = dict.fromkeys(TRACK_COLUMNS)  # full replacement: absent keys become NULL
    for k, v in record.items():
        if isinstance(v, np.generic):
            v = v.item()
        if k == "path" or (k == "source_path" and v is not None):
            v = path_param(v)
        elif k in ("sampling", "tags_json") and v is not None:
            v = v if k == "tags_json" and isinstance(v, str) else dumps(v)
            v = _clean_text(v)
        elif k == "audio_flag" and v is not None and v not in AUDIO_FLAGS:
            raise ParameterError(f"record['audio_flag']={v!r}: must be None or one of {list(AUDIO_FLAGS)}")
        elif k in ("size", "mtime_ns", "year", "track_no", "disc_no", "n_patches") and v is not None:
            try:
                if isinstance(v, float) and not v.is_integer():
                    raise ValueError
                v = int(v)
            except (TypeError, ValueError):
                raise ParameterError(f"record[{k!r}]={v!r}: must be an integer") from None
        elif k in ("duration_s", "start_s", "end_s") and v is not None:
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ParameterError(f"record[{k!r}]={v!r}: must be a number") from None
            if k != "duration_s" and not (math.isfinite(v) and v >= 0):
                raise ParameterError(f"record[{k!r}]={v!r}: must be a finite number of seconds >= 0")
        elif isinstance(v, str):
            v = _clean_text(v)
        row[k] = v
    return row


def _prepare_vectors(vectors) -> dict:
    if not isinstance(vectors, dict):
        raise ParameterError(f"vectors={type(vectors).__name__}: must be a dict space -> array")
    out = {}
    for space, v in vectors.items():
        if not isinstance(space, str) or not space:
            raise ParameterError(f"vectors key {space!r}: space names are non-empty strings")
        out[space] = _as_float32_vector(space, v)
    return out


def _prepare_patches(patches):
    if patches is None:
        return None
    if not isinstance(patches, dict):
        raise ParameterError("patches: must be a dict with 'starts_s', 'embeddings', 'probs'")
    try:
        starts = np.asarray(patches["starts_s"], dtype=np.float32).reshape(-1)
        emb = np.asarray(patches["embeddings"], dtype=np.float32)
        probs = patches.get("probs")
        probs = None if probs is None else np.asarray(probs, dtype=np.float32)
    except KeyError as exc:
        raise ParameterError(f"patches: missing {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"patches: not numeric ({exc})") from None
    n = starts.shape[0]
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ParameterError(
            f"patches['embeddings'] has shape {emb.shape}: expected ({n}, D) for {n} start times"
        )
    if probs is not None and (probs.ndim != 2 or probs.shape[0] != n):
        raise ParameterError(f"patches['probs'] has shape {probs.shape}: expected ({n}, C)")
    with np.errstate(over="ignore"):  # overflow -> inf, reported below
        e16 = emb.astype("<f2")
        p16 = None if probs is None else probs.astype("<f2")
    for name, a in (("starts_s", starts), ("embeddings", e16), ("probs", p16)):
        if a is not None and not np.all(np.isfinite(a)):
            raise ParameterError(f"patches[{name!r}]: contains NaN/inf (or exceeds float16 range)")
    return (
        n,
        emb.shape[1],
        0 if probs is None else probs.shape[1],
        starts.astype("<f4").tobytes(),
        e16.tobytes(),
        None if p16 is None else p16.tobytes(),
    )


def _prepare_descriptors(descriptors):
    if descriptors is None:
        return None
    if not isinstance(descriptors, dict):
        raise ParameterError("descriptors: must be a dict")
    vals = []
    for c in FILTER_COLUMNS:
        v = descriptors.get(c)
        if isinstance(v, np.generic):
            v = v.item()
        if v is not None and c in ("key", "mode"):
            v = str(v)
        elif v is not None:
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ParameterError(f"descriptors[{c!r}]={v!r}: must be a number") from None
            if math.isnan(v):
                v = None
        vals.append(v)
    extra = {k: v for k, v in descriptors.items() if k not in FILTER_COLUMNS}
    for k in extra:
        if not isinstance(k, str):
            raise ParameterError(f"descriptors key {k!r}: must be a string")
    vals.append(dumps(extra))
    return tuple(vals)


def _decode_rows(path, rows, d, space):
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, d or 0), dtype=np.float32)
    blobs = [r[1] for r in rows]
    if d is None:
        d = len(blobs[0]) // 4
    buf = b"".join(blobs)
    if len(buf) != len(blobs) * d * 4 or any(len(b) != d * 4 for b in blobs):
        bad = next(r[0] for r in rows if len(r[1]) != d * 4)
        raise CatalogError(
            path, f"corrupt vector: track {bad} space {space!r} is not {d} float32 values"
        )
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    X = np.frombuffer(buf, dtype="<f4").reshape(len(rows), d).astype(np.float32, copy=True)
    return ids, X


def _read_vectors_of(conn, path, space, d, ids):
    """``(ids, X)`` of the tracks ``ids`` (in that order) in ``space``."""
    want = np.asarray(ids, dtype=np.int64).reshape(-1)
    rows = conn.execute(
        "SELECT track_id, data FROM vectors WHERE space=? AND track_id IN (SELECT value FROM json_each(?))",
        (space, json.dumps(want.tolist())),
    ).fetchall()
    out_ids, X = _decode_rows(path, rows, d, space)
    pos = {int(t): i for i, t in enumerate(out_ids)}
    missing = [int(t) for t in want if int(t) not in pos]
    if missing:
        raise NotInIndexError(f"track id(s) {missing[:5]} have no {space!r} vector in {path}")
    order = np.fromiter((pos[int(t)] for t in want), dtype=np.int64, count=len(want))
    return want.copy(), X[order] if len(order) else X


def _read_all_vectors(conn, path, space, d):
    """``(ids, X)`` of every track with a vector in ``space``, sorted by id, read in chunks."""
    n = conn.execute("SELECT COUNT(*) FROM vectors WHERE space=?", (space,)).fetchone()[0]
    cur = conn.execute("SELECT track_id, data FROM vectors WHERE space=? ORDER BY track_id", (space,))
    if d is None:
        first = conn.execute("SELECT data FROM vectors WHERE space=? LIMIT 1", (space,)).fetchone()
        d = len(first[0]) // 4 if first else 0
    out_ids = np.empty(n, dtype=np.int64)
    X = np.empty((n, d), dtype=np.float32)
    i = 0
    while True:
        chunk = cur.fetchmany(8192)
        if not chunk:
            break
        cid, cX = _decode_rows(path, chunk, d, space)
        j = i + len(chunk)
        if j > n:
            raise CatalogError(path, f"{space!r}: row count changed during read")
        out_ids[i:j] = cid
        X[i:j] = cX
        i = j
    if i != n:
        raise CatalogError(path, f"{space!r}: row count changed during read")
    return out_ids, X


_INT_COLUMNS = frozenset({"size", "mtime_ns", "year", "track_no", "disc_no", "n_patches"})
_FLOAT_COLUMNS = frozenset(
    {"duration_s", "added_at", "updated_at", "failed_at", "tempo_bpm", "tempo_confidence", "loudness_db",
     "start_s", "end_s"}
)


def _typed_frame(data: dict, index, cols) -> pd.DataFrame:
    """DataFrame with stable numeric dtypes (nullable Int64 / float64) even when all NULL."""
    out = {}
    for c in cols:
        v = data[c]
        if c in _INT_COLUMNS:
            out[c] = pd.array(v, dtype="Int64")
        elif c in _FLOAT_COLUMNS:
            out[c] = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
        else:
            out[c] = list(v)  # pandas' default text dtype
    return pd.DataFrame(out, index=index, columns=cols)


class _TrackRows:
    """What :class:`~recommender.store.catalog.Catalog` adds for schema 2: reading
    ``tracks`` rows whatever the file's schema (a reader may hold a schema-1
    catalog), and the ``fingerprints`` table."""

    def _row_to_dict(self, row) -> dict:
        d = dict(zip(_ALL_TRACK_COLUMNS, row))
        d["path"] = path_value(d["path"])
        d["source_path"] = path_value(d.get("source_path"))
        for c in ("sampling", "tags_json"):
            if d.get(c) is not None:
                try:
                    d[c] = json.loads(d[c])
                except ValueError:
                    raise CatalogError(self.path, f"track {d['id']}: {c} is not valid JSON") from None
        return d

    def _col_sql(self, c: str) -> str:
        """``c``, or ``NULL AS c`` for a column the open file lacks (a reader of a schema-1 catalog)."""
        return f"NULL AS {c}" if self.schema_version < 2 and c in _V2_TRACK_COLUMNS else c

    @property
    def _TRACK_SELECT(self) -> str:
        return f"SELECT {', '.join(self._col_sql(c) for c in _ALL_TRACK_COLUMNS)} FROM tracks"

    def tracks_of_file(self, source_path) -> list:
        """The cue tracks cut from the audio file ``source_path`` (rows as
        :meth:`track` gives them), by start; empty for a file indexed whole."""
        if self.schema_version < 2:
            return []
        rows = self._select(self._TRACK_SELECT + " WHERE source_path=? ORDER BY start_s, id",
                            (path_param(source_path),))
        return [self._row_to_dict(r) for r in rows]

    def set_fingerprint(self, track_id, data, duration_s=None) -> None:
        """Store (replace) a track's acoustic fingerprint.

        Parameters
        ----------
        track_id : int
        data : bytes
            The fingerprint as bytes (:func:`recommender.io.fingerprint.fingerprint_to_bytes`:
            little-endian uint32 Chromaprint items, 4 bytes per 0.124 s).
        duration_s : float, optional
            Duration of the file in seconds as the fingerprinter reported it.

        A re-analysis (:meth:`add_track` on the same path) drops the old
        fingerprint; a move keeps it.  ``generation`` is bumped (caches of
        same-recording groups are per generation); ``vectors_generation`` is
        not (no FAISS file depends on fingerprints).

        Raises
        ------
        NotInIndexError
            ``track_id`` is not in the catalog.
        ParameterError
            ``data`` is not bytes or ``duration_s`` not a number.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ParameterError(f"data={type(data).__name__}: must be bytes (a fingerprint)")
        if duration_s is not None:
            try:
                duration_s = float(duration_s)
            except (TypeError, ValueError):
                raise ParameterError(f"duration_s={duration_s!r}: must be a number") from None
            if not math.isfinite(duration_s):
                duration_s = None
        tid = int(track_id)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM tracks WHERE id=?", (tid,)).fetchone() is None:
                raise NotInIndexError(f"track id {track_id} is not in {self.path}")
            conn.execute(
                "INSERT INTO fingerprints(track_id, duration_s, data) VALUES (?, ?, ?) "
                "ON CONFLICT(track_id) DO UPDATE SET duration_s=excluded.duration_s, data=excluded.data",
                (tid, duration_s, bytes(data)),
            )
            self._changed = True

    def fingerprint_ids(self) -> set:
        """Ids of the tracks that have a stored fingerprint (empty for a schema-1 catalog)."""
        if self.schema_version < 2:
            return set()
        return {int(r[0]) for r in self._select("SELECT track_id FROM fingerprints")}

    def fingerprints(self, ids=None) -> dict:
        """Stored fingerprints: ``{track_id: (data, duration_s)}``.

        Parameters
        ----------
        ids : array_like of int, optional
            Tracks to read (those without a fingerprint are left out); default all.

        Returns
        -------
        dict of int to (bytes, float)
            ``data`` as stored by :meth:`set_fingerprint`; ``duration_s`` is
            ``nan`` when unknown.  Empty for a schema-1 catalog opened read-only.
        """
        if self.schema_version < 2:
            return {}
        sql = "SELECT track_id, data, duration_s FROM fingerprints"
        params = ()
        if ids is not None:
            sql += " WHERE track_id IN (SELECT value FROM json_each(?))"
            params = (json.dumps([int(i) for i in np.asarray(ids).reshape(-1)]),)
        rows = self._select(sql + " ORDER BY track_id", params)
        return {int(t): (bytes(d), float("nan") if s is None else float(s)) for t, d, s in rows}
