"""Which tracks are the same recording: copies, other encodings, trimmed versions.

A recording can sit in a collection several times: a FLAC on the studio
album and an MP3 on a "Best Of", a byte-identical copy under another name
(NFC/NFD spellings), a rip with a few seconds cut.  Recommendations must
never hand a user their own song back, and playlists must not play one
recording twice.  This module decides, for two tracks, whether they are the
same recording, in this order:

1. **Same content hash** (:func:`recommender.io.collection.content_hash`):
   the same audio bytes under two paths -- always the same recording
   (reason ``'same content'``).
2. **Acoustic fingerprints** (Chromaprint, :mod:`recommender.io.fingerprint`),
   when both tracks have one stored in the catalog: the same recording if
   they share at least :data:`MIN_SHARED_ITEMS` distinct fingerprint items
   and :func:`~recommender.io.fingerprint.compare` scores them at or above
   :data:`~recommender.io.fingerprint.THRESHOLD` (reason ``'fingerprint'``).
   The fingerprint is trusted both ways: two fingerprinted tracks that do
   not match are *different* recordings however close their embeddings are
   (two songs of one style can reach a cosine of 0.998 in the musicnn
   embedding; measured on ``/tmp/cases/15``).  Measured on
   ``benchmarks/bench_duplicates.py`` (168 files): recall 1.0, no pair of
   two different recordings.
3. **Fallback, when a track has no fingerprint** (``fpcalc`` was not
   installed when it was indexed, the index predates fingerprints, or the
   audio is too short or silent to fingerprint): the old rule -- a cosine of
   at least :data:`DUPLICATE_COSINE` between the two tracks' unit vectors
   in the ``'embedding'`` space (reason ``'near-identical embedding'``).
   This rule can take two different songs of one style for one recording
   and misses heavily trimmed copies; install ``fpcalc``
   (``libchromaprint-tools``) and re-index to get fingerprints.

Two ways to ask:

* the **whole collection** (:func:`duplicate_pairs`, :func:`duplicate_groups`,
  :func:`same_recording_ids`, :func:`recording_groups`): every pair is found
  once per catalog generation (fingerprints through the inverted index of
  :func:`~recommender.io.fingerprint.find_duplicate_pairs`) and kept in the
  per-generation cache of :mod:`recommender.recommend.view`; groups are the
  connected components of the pairs.  Used by radio, paths and
  ``recommender duplicates``.
* **one query against a few candidates** (:class:`SameRecording`): only the
  query's and the candidates' fingerprints are read (and decoded once per
  generation); a query from a file outside the index is fingerprinted with
  ``fpcalc`` when the candidates have fingerprints.  Used by ``similar``.

Every function takes a :class:`recommender.Recommender` or an open
:class:`recommender.store.catalog.Catalog`.  Fingerprints are read with
``Catalog.fingerprints(ids=None) -> {track id: (bytes, duration_s)}``; a
catalog without that method (or without any fingerprint) uses the fallback
for every track.
"""

from __future__ import annotations

import logging
import math
import os
import threading

import numpy as np
import pandas as pd

from .._utils import check_number, unit_rows
from ..errors import AudioError, NotInIndexError, ParameterError
from ..io import fingerprint as _fp
from . import view

logger = logging.getLogger(__name__)

__all__ = [
    "DUPLICATE_COSINE",
    "MIN_SHARED_ITEMS",
    "PAIR_COLUMNS",
    "REASONS",
    "RecordingGroups",
    "SameRecording",
    "duplicate_groups",
    "duplicate_pairs",
    "fingerprints",
    "recording_groups",
    "same_recording_ids",
]

#: Fallback rule (tracks without a fingerprint): two tracks whose unit vectors in
#: the ``'embedding'`` space have at least this cosine count as one recording.
#: One song as FLAC, MP3, Ogg and Opus gives 0.9987-0.9994; distinct songs of
#: the game soundtracks of ``bench_playlists`` stay below 0.957, but two
#: synthetic songs of one style reach 0.998 (case 15) -- hence fingerprints first.
DUPLICATE_COSINE = 0.995
#: Distinct fingerprint items two tracks must share before they are aligned
#: (the candidate stage of :func:`~recommender.io.fingerprint.find_duplicate_pairs`;
#: measured: >= 22 for every copy of the benchmark, <= 6 between different recordings).
MIN_SHARED_ITEMS = 2
#: Why two tracks are one recording, strongest first.
REASONS = ("same content", "fingerprint", "near-identical embedding")
#: Columns of :func:`duplicate_pairs`.
PAIR_COLUMNS = ["id_a", "id_b", "reason", "score", "offset_s", "cosine"]

_FALLBACK_SPACE = "embedding"
_CHUNK = 1024


# ------------------------------------------------------------------ sources
class _CatalogSource:
    """A catalog seen as a recommender by :mod:`view` (cache key: its path)."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.index_dir = ("catalog", os.fspath(getattr(catalog, "path", id(catalog))))


def _source(obj):
    """``obj`` (a Recommender or a Catalog) as something with ``index_dir`` and ``catalog``."""
    if hasattr(obj, "index_dir") and hasattr(obj, "catalog"):
        return obj
    if hasattr(obj, "tracks") and hasattr(obj, "generation") and hasattr(obj, "vectors"):
        return _CatalogSource(obj)
    raise ParameterError(f"{type(obj).__name__}: expected a Recommender or a Catalog")


def _read_fingerprints(catalog, ids=None) -> dict:
    """``{id: Fingerprint}`` of the tracks (of ``ids``) with a usable stored fingerprint."""
    read = getattr(catalog, "fingerprints", None)
    if read is None:
        return {}
    if ids is not None and not len(ids):
        return {}
    rows = read() if ids is None else read(ids=[int(i) for i in ids])
    out = {}
    for tid, (blob, duration) in rows.items():
        if blob is None:
            continue
        try:
            fp = _fp.fingerprint_from_bytes(blob, duration_s=math.nan if duration is None else float(duration))
        except ParameterError as e:
            logger.warning("track %s: stored fingerprint unusable (%s); falling back to the embedding", tid, e)
            continue
        if len(fp):
            out[int(tid)] = fp
    return out


class _FingerprintStore:
    """Decoded fingerprints of one catalog generation, read on demand (``None`` = the track has none)."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.fps: dict = {}
        self.uniq: dict = {}
        self.complete = False
        self._lock = threading.Lock()
        self._held = None  # ids with a stored fingerprint (None: not read yet)

    def get(self, ids) -> dict:
        """``{id: Fingerprint or None}`` for ``ids`` (only tracks that have one are read)."""
        ids = [int(i) for i in ids]
        with self._lock:
            missing = [] if self.complete else [i for i in ids if i not in self.fps]
        if missing and hasattr(self.catalog, "fingerprint_ids"):
            if self._held is None:
                self._held = self.catalog.fingerprint_ids()  # one read of the ids, once per generation
            with self._lock:
                for i in missing:
                    if i not in self._held:
                        self.fps[i] = None
            missing = [i for i in missing if i in self._held]
        if missing:
            got = _read_fingerprints(self.catalog, missing)
            with self._lock:
                for i in missing:
                    self.fps[i] = got.get(i)
        return {i: self.fps.get(i) for i in ids}

    def all(self) -> dict:
        """``{id: Fingerprint}`` of every track that has one."""
        if not self.complete:
            got = _read_fingerprints(self.catalog)
            with self._lock:
                self.fps = {int(i): got.get(int(i)) for i in self.catalog.ids()}
                self.complete = True
        return {i: f for i, f in self.fps.items() if f is not None}

    def unique_items(self, tid, fp) -> np.ndarray:
        """Distinct non-silent items of track ``tid``'s fingerprint ``fp`` (sorted)."""
        u = self.uniq.get(tid)
        if u is None:
            u = _unique_items(fp)
            self.uniq[tid] = u
        return u


def _store(src) -> _FingerprintStore:
    return view.cached(src, ("recordings", "fingerprints"), lambda: _FingerprintStore(src.catalog))


def fingerprints(rec_or_catalog, ids=None) -> dict:
    """Decoded stored fingerprints, cached per catalog generation.

    Parameters
    ----------
    rec_or_catalog : Recommender or Catalog
    ids : iterable of int, optional
        Tracks to read (default: all).

    Returns
    -------
    dict of int -> Fingerprint
        Only the tracks that have a (non-empty) fingerprint.  Each
        :class:`~recommender.io.fingerprint.Fingerprint` holds ``items`` of
        shape ``(n_items,)`` uint32 and ``duration_s`` (seconds).
    """
    st = _store(_source(rec_or_catalog))
    got = st.all() if ids is None else st.get(ids)
    return {i: f for i, f in got.items() if f is not None}


def _unique_items(fp) -> np.ndarray:
    u = np.unique(fp.items)
    return u[u != _fp.SILENCE_ITEM]


def _fingerprint_match(fa, fb, ua=None, ub=None, *, threshold=_fp.THRESHOLD):
    """:class:`~recommender.io.fingerprint.Match` of two fingerprints if they are one recording, else ``None``."""
    ua = _unique_items(fa) if ua is None else ua
    ub = _unique_items(fb) if ub is None else ub
    if np.intersect1d(ua, ub, assume_unique=True).size < MIN_SHARED_ITEMS:
        return None
    m = _fp.compare(fa, fb)
    return m if m.score >= threshold else None


# ------------------------------------------------------------------ embeddings (fallback)
def _unit_vectors(src, space, ids=None):
    """``(ids, X)`` unit rows of ``space`` (all tracks, or ``ids`` in that order)."""
    if ids is None:
        if hasattr(src, "space_vectors"):
            return view.vectors(src, space)
        tids, X = src.catalog.vectors(space)
        return np.asarray(tids, np.int64), unit_rows(X)
    ids = [int(i) for i in ids]
    if hasattr(src, "space_vectors") and view.cached(src, ("vectors", space), None) is not None:
        return np.asarray(ids, np.int64), view.vectors_of(src, space, ids)  # held in memory already
    tids, X = src.catalog.vectors(space, ids=ids)
    return np.asarray(tids, np.int64), unit_rows(X)


def _embedding_of(src, ids, space=_FALLBACK_SPACE) -> dict:
    """``{id: unit vector}`` in ``space`` for the ``ids`` that have one."""
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    try:
        tids, X = _unit_vectors(src, space, ids)
    except NotInIndexError:
        tids, X = _unit_vectors(src, space)
        pos = {int(t): j for j, t in enumerate(tids)}
        return {i: X[pos[i]] for i in ids if i in pos}
    return {int(t): X[j] for j, t in enumerate(tids)}


def _cosines_to(src, ids, q) -> dict:
    """``{id: cosine with the unit vector q}`` in the fallback space, for the ``ids`` that have a vector."""
    try:
        tids, X = _unit_vectors(src, _FALLBACK_SPACE, [int(i) for i in ids])
    except NotInIndexError:  # some have none: those that have one
        E = _embedding_of(src, ids)
        tids = list(E)
        X = np.stack([E[i] for i in tids]) if tids else np.zeros((0, len(q)), np.float32)
    return dict(zip(np.asarray(tids).tolist(), (X @ q).tolist())) if len(tids) else {}


# ------------------------------------------------------------------ the whole collection
class RecordingGroups:
    """The same-recording pairs of one catalog generation and their groups.

    Attributes
    ----------
    pairs : pd.DataFrame
        Columns :data:`PAIR_COLUMNS`: ``id_a < id_b`` (int), ``reason`` (one
        of :data:`REASONS`), ``score`` (1.0 for the same content; the
        fingerprint score in [0, 1]; the cosine for the fallback),
        ``offset_s`` (seconds to add to a time in ``id_a`` to find the same
        audio in ``id_b``; 0 for the same content, NaN for the fallback),
        ``cosine`` (of the two tracks in the ``'embedding'`` space, NaN when
        one has no vector); strongest reason first, then highest score.
    groups : list of list of int
        Connected components of the pairs (at least 2 ids each, sorted), in
        order of their smallest id.
    """

    def __init__(self, pairs: pd.DataFrame):
        self.pairs = pairs
        parent: dict = {}

        def find(x):
            while parent.get(x, x) != x:
                parent[x] = parent.get(parent[x], parent[x])
                x = parent[x]
            return x

        for a, b in zip(pairs["id_a"].tolist(), pairs["id_b"].tolist()):
            ra, rb = find(int(a)), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        members: dict = {}
        for x in list(parent):
            members.setdefault(find(x), set()).add(x)
        for r in list(members):
            members[r].add(r)
        self.groups = [sorted(g) for _, g in sorted(members.items())]
        self._key = {t: g[0] for g in self.groups for t in g}
        self._group = {t: g for g in self.groups for t in g}

    def key(self, track_id) -> int:
        """The recording of ``track_id``: the smallest id of its group (itself when alone)."""
        t = int(track_id)
        return self._key.get(t, t)

    def same_as(self, track_id) -> set:
        """Ids of the *other* tracks of ``track_id``'s recording (empty when it has no copy)."""
        t = int(track_id)
        return set(self._group.get(t, ())) - {t}

    def __repr__(self):
        return f"RecordingGroups({len(self.pairs)} pairs, {len(self.groups)} groups)"


def _hash_pairs(meta) -> dict:
    out = {}
    h = meta["hash_key"].dropna()
    h = h[h.duplicated(keep=False)]
    for _, grp in h.groupby(h.values):
        g = sorted(int(t) for t in grp.index)
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                out[(g[i], g[j])] = ("same content", 1.0, 0.0)
    return out


def _fallback_pairs(src, with_fp: set, duplicate_cosine: float) -> dict:
    """Pairs with a cosine >= ``duplicate_cosine`` in which at least one track has no fingerprint."""
    try:
        ids, X = _unit_vectors(src, _FALLBACK_SPACE)
    except (NotInIndexError, ParameterError):
        return {}
    if not len(ids):
        return {}
    lacking = np.flatnonzero([int(t) not in with_fp for t in ids])
    out = {}
    for s in range(0, len(lacking), _CHUNK):
        rows = lacking[s : s + _CHUNK]
        S = X[rows] @ X.T
        for r, c in zip(*np.nonzero(S >= duplicate_cosine)):
            a, b = int(ids[rows[r]]), int(ids[c])
            if a != b:
                out[(min(a, b), max(a, b))] = ("near-identical embedding", float(S[r, c]), math.nan)
    return out


def _compute_groups(src, threshold, duplicate_cosine) -> RecordingGroups:
    meta = view.metadata(src)
    found = _hash_pairs(meta)
    st = _store(src)
    fps = st.all()
    fp_pairs = _fp.find_duplicate_pairs(fps, threshold=threshold, min_shared=MIN_SHARED_ITEMS)
    for a, b, _ in fp_pairs:
        a, b = (int(a), int(b)) if int(a) < int(b) else (int(b), int(a))
        if (a, b) not in found:
            m = _fp.compare(fps[a], fps[b])
            found[(a, b)] = ("fingerprint", m.score, m.offset_s)
    for key, val in _fallback_pairs(src, set(fps), duplicate_cosine).items():
        found.setdefault(key, val)
    cos = _pair_cosines(src, found)
    rank = {r: i for i, r in enumerate(REASONS)}
    items = sorted(found.items(), key=lambda kv: (rank[kv[1][0]], -kv[1][1], kv[0]))
    df = pd.DataFrame(
        [{"id_a": a, "id_b": b, "reason": r, "score": float(s), "offset_s": float(o), "cosine": cos.get((a, b))}
         for (a, b), (r, s, o) in items],
        columns=PAIR_COLUMNS,
    )
    df["cosine"] = df["cosine"].astype(float)
    logger.debug("recordings: %d pairs from %d fingerprints, %d tracks", len(df), len(fps), len(meta))
    return RecordingGroups(df)


def _pair_cosines(src, pairs) -> dict:
    ids = sorted({t for ab in pairs for t in ab})
    E = _embedding_of(src, ids) if ids else {}
    return {(a, b): float(E[a] @ E[b]) if a in E and b in E else math.nan for a, b in pairs}


def _check(threshold, duplicate_cosine):
    return (check_number("threshold", threshold, min=0, max=1),
            check_number("duplicate_cosine", duplicate_cosine, min=-1, max=1))


def recording_groups(rec_or_catalog, *, threshold: float = _fp.THRESHOLD,
                     duplicate_cosine: float = DUPLICATE_COSINE) -> RecordingGroups:
    """Every same-recording pair and group of the collection, cached per catalog generation.

    Parameters
    ----------
    rec_or_catalog : Recommender or Catalog
    threshold : float
        Fingerprint score in [0, 1] at or above which two fingerprinted
        tracks are one recording (:data:`~recommender.io.fingerprint.THRESHOLD`).
    duplicate_cosine : float
        Fallback for tracks without a fingerprint (see the module docstring).

    Returns
    -------
    RecordingGroups

    Raises
    ------
    ParameterError
        A threshold out of range, or not a Recommender/Catalog.

    Notes
    -----
    Cost, once per catalog generation: reading every fingerprint (~4 kB per
    track) and :func:`~recommender.io.fingerprint.find_duplicate_pairs`
    (measured there: 10 100 fingerprints in 1.8-2.6 s), plus one
    ``(m, n)`` matrix product over the embeddings for the ``m`` tracks
    without a fingerprint.
    """
    threshold, duplicate_cosine = _check(threshold, duplicate_cosine)
    src = _source(rec_or_catalog)
    return view.cached(src, ("recordings", "groups", threshold, duplicate_cosine),
                       lambda: _compute_groups(src, threshold, duplicate_cosine))


def duplicate_pairs(rec_or_catalog, **kw) -> pd.DataFrame:
    """Pairs of tracks that are the same recording (:attr:`RecordingGroups.pairs`; a copy).

    Keywords as :func:`recording_groups`.  Columns :data:`PAIR_COLUMNS`.
    """
    return recording_groups(rec_or_catalog, **kw).pairs.copy()


def duplicate_groups(rec_or_catalog, **kw) -> list:
    """Groups of tracks that are one recording: list of sorted lists of ids (2 or more each).

    Keywords as :func:`recording_groups`.
    """
    return [list(g) for g in recording_groups(rec_or_catalog, **kw).groups]


def same_recording_ids(rec_or_catalog, track_id, **kw) -> set:
    """Ids of the other tracks that are the same recording as ``track_id``.

    By content hash, then fingerprints, falling back to the embedding cosine
    for tracks without a fingerprint (see the module docstring); groups are
    transitive (a copy of a copy is a copy).  Keywords as
    :func:`recording_groups`.

    Returns
    -------
    set of int
        Empty when the track has no other copy; never contains ``track_id``.

    Raises
    ------
    NotInIndexError
        ``track_id`` is not an indexed track.
    """
    src = _source(rec_or_catalog)
    t = int(track_id)
    if t not in view.metadata(src).index:
        raise NotInIndexError(f"track id {t} is not in the index")
    return recording_groups(src, **kw).same_as(t)


# ------------------------------------------------------------------ one query
class SameRecording:
    """Is a candidate the same recording as one query?  For ``similar`` (few candidates).

    Parameters
    ----------
    rec : Recommender or Catalog
    track_id : int, optional
        The query when it is an indexed track (its hash, fingerprint and
        embedding are read from the catalog).
    path : path-like, optional
        The query when it is a file outside the index: fingerprinted with
        ``fpcalc`` the first time a candidate with a fingerprint is checked
        (about one decode of the file; skipped when ``fpcalc`` is missing or
        fails, then the fallback applies).
    content_hash : str, optional
        The query's content hash (an outside file's).
    embedding : np.ndarray, shape (d,), optional
        The query's vector in the ``'embedding'`` space (an outside file's),
        for the fallback.
    threshold, duplicate_cosine : float
        As :func:`recording_groups`.

    Examples
    --------
    >>> same = SameRecording(rec, track_id=12)          # doctest: +SKIP
    >>> same.matches([3, 7, 12, 40])                     # doctest: +SKIP
    {12, 40}
    """

    def __init__(self, rec, *, track_id=None, path=None, content_hash=None, embedding=None,
                 threshold: float = _fp.THRESHOLD, duplicate_cosine: float = DUPLICATE_COSINE):
        self.threshold, self.duplicate_cosine = _check(threshold, duplicate_cosine)
        self._src = _source(rec)
        self._store = _store(self._src)
        self.track_id = None if track_id is None else int(track_id)
        self.path = path
        self.content_hash = content_hash or None
        self._emb = None if embedding is None else unit_rows(np.asarray(embedding, np.float32).ravel())
        self._fp = None
        self._fp_tried = False
        self._decided: dict = {}
        if self.track_id is not None:
            if content_hash is None:
                self.content_hash = self._src.catalog.track(self.track_id).get("content_hash") or None
            self._fp = self._store.get([self.track_id])[self.track_id]
            self._fp_tried = True

    def _query_fingerprint(self):
        if not self._fp_tried:
            self._fp_tried = True
            if self.path is not None and _fp.fingerprint_available():
                try:
                    self._fp = _fp.fingerprint_file(self.path)
                except AudioError as e:
                    logger.info("%s: no fingerprint (%s); same recording judged by the embedding", e.path, e.reason)
        return self._fp

    def _query_embedding(self):
        if self._emb is None and self.track_id is not None:
            self._emb = _embedding_of(self._src, [self.track_id]).get(self.track_id)
        return self._emb

    def matches(self, ids, *, hashes=None) -> set:
        """The ``ids`` that are the same recording as the query (the query's own id included).

        Parameters
        ----------
        ids : iterable of int
            Indexed track ids.
        hashes : mapping of int -> str, optional
            Their content hashes when the caller has read them (else they are
            taken from the per-generation metadata of the whole collection).

        Returns
        -------
        set of int
        """
        ids = [int(i) for i in ids]
        todo = [i for i in ids if i not in self._decided]
        if todo:
            if hashes is None:
                hashes = view.metadata(self._src)["hash_key"].reindex(todo).to_dict() if self.content_hash else {}
            rest = []
            for i in todo:
                if i == self.track_id:
                    self._decided[i] = True
                elif self.content_hash and hashes.get(i) == self.content_hash:
                    self._decided[i] = True
                else:
                    rest.append(i)
            fps = self._store.get(rest)
            with_fp = [i for i in rest if fps[i] is not None]
            qfp = self._query_fingerprint() if with_fp else self._fp
            lacking = [i for i in rest if fps[i] is None or qfp is None]
            if qfp is not None:
                uq = _unique_items(qfp)
                for i in with_fp:
                    u = self._store.unique_items(i, fps[i])
                    self._decided[i] = _fingerprint_match(qfp, fps[i], uq, u, threshold=self.threshold) is not None
            if lacking:
                q = self._query_embedding()
                cos = _cosines_to(self._src, lacking, q) if q is not None else {}
                for i in lacking:
                    self._decided[i] = i in cos and cos[i] >= self.duplicate_cosine
        return {i for i in ids if self._decided[i]}

    def __call__(self, track_id) -> bool:
        """Whether ``track_id`` is the same recording as the query."""
        return bool(self.matches([track_id]))
