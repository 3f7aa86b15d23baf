"""Playlists over an index: radio, song-to-song paths, hubness correction.

Everything here works on an existing index (no audio analysis, so no
TensorFlow): vectors come from the catalog, neighbours from the FAISS index
of the chosen space, and per-collection statistics are computed once per
catalog generation and cached in memory.

* :func:`radio` -- from one or several seed tracks, ``n`` tracks that stay
  close to the seeds (or drift gradually, each next song close to the
  previous one), without repeats or duplicates, with per-artist / per-album
  caps.
* :func:`path_between` -- ``n`` songs going smoothly from track A to track B,
  with the per-step distances.
* :func:`hubness_correction`, :func:`rerank`, :func:`k_occurrence`,
  :func:`hubness_report` -- hubness of the collection (a few "hub" tracks
  that are everybody's neighbour, many "anti-hubs" that are nobody's) and its
  correction by CSLS or Mutual Proximity.

Distances are cosine distances ``1 - cos`` between L2-normalised vectors
(half the squared Euclidean distance), so they lie in ``[0, 2]``.

Hubness correction
------------------
``'csls'`` (cross-domain similarity local scaling, Conneau et al. 2018)::

    csls(q, y) = 2 cos(q, y) - r(q) - r(y)

where ``r(x)`` is the mean cosine of ``x`` to its ``k`` nearest neighbours
(computed with the FAISS index over the whole collection): a hub, close to
everything, is penalised.  ``'mp'`` (Mutual Proximity, Schnitzer et al. 2012,
Gaussian variant)::

    mp(q, y) = P(S_q <= cos(q, y)) * P(S_y <= cos(q, y))

with ``S_x ~ Normal(mean, std)`` of the cosines of ``x`` to a random sample of
the collection: ``y`` ranks high for ``q`` only if each is unusually close
to the other.  Both re-rank a pool of cosine neighbours (the exact top-k
under the corrected score for pools that cover the collection).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from ..errors import NotInIndexError, ParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "radio",
    "path_between",
    "HubnessCorrection",
    "hubness_correction",
    "rerank",
    "knn",
    "k_occurrence",
    "hubness_report",
    "hubness_stats",
    "HUBNESS_METHODS",
    "DEFAULT_HUBNESS",
    "DUPLICATE_COSINE",
    "PLAYLIST_COLUMNS",
]

#: Hubness corrections understood by :func:`rerank` (``None`` = plain cosine).
HUBNESS_METHODS = ("csls", "mp")
#: Correction used by :func:`radio` by default.  Measured with
#: ``benchmarks/bench_playlists.py`` on 103 game soundtracks (5 labels,
#: embedding space, k=10): skewness of k-occurrence 0.65 -> 0.22 (CSLS 0.33),
#: anti-hubs 1.9 % -> 0 %, largest k-occurrence 26 -> 20, precision@10 by
#: label 0.449 -> 0.462 (CSLS 0.458); MP's statistics cost O(n * 1000)
#: against CSLS's k-NN search over the whole collection.
DEFAULT_HUBNESS = "mp"
#: Two different tracks whose vectors have at least this cosine are treated as
#: the same recording (another encoding or a copy) by playlists.  One song
#: encoded as FLAC, MP3, Ogg and Opus gives 0.9987-0.9994 in the musicnn
#: embedding; the closest distinct songs of the game soundtracks give 0.957.
DUPLICATE_COSINE = 0.995
#: Columns of the playlists returned by :func:`radio` and :func:`path_between`.
PLAYLIST_COLUMNS = ["position", "id", "path", "artist", "title", "album", "score", "distance_from_previous"]
#: Tracks considered by :func:`path_between` at most (pairwise matrix m x m).
PATH_POOL_MAX = 2500
#: Paths minimise the sum of (step distance ** PATH_STEP_POWER): 2 keeps the
#: steps even (smaller largest step) at the same mean step distance as 1
#: (``benchmarks/bench_playlists.py``).
PATH_STEP_POWER = 2.0
#: Collection sample used for Mutual Proximity's per-track distributions.
MP_SAMPLE = 1000

_DRIFT_TRUE = 1.0


# --------------------------------------------------------------------- caching
class _Cache:
    """Small LRU keyed by (index dir, catalog generation, what)."""

    def __init__(self, maxsize=24):
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.maxsize = maxsize

    def get(self, rec, key, compute):
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
        with self._lock:
            self._d.clear()


_cache = _Cache()


def clear_cache() -> None:
    """Forget cached vectors and hubness statistics (they are also keyed by generation)."""
    _cache.clear()


def _check_space(space):
    from ..recommender import SPACES

    if space not in SPACES:
        raise ParameterError(f"space={space!r}: must be one of {', '.join(SPACES)}")


def _unit(X):
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.maximum(n, 1e-12)


def _all_vectors(rec, space):
    """(ids, unit vectors) of every track in ``space``, cached per generation."""
    _check_space(space)

    def compute():
        ids, X = rec._space_vectors(rec.catalog, space)
        X = _unit(X)
        X.setflags(write=False)
        return np.asarray(ids, dtype=np.int64), X

    return _cache.get(rec, ("vectors", space), compute)


def _vectors(rec, space, ids):
    """Unit vectors of ``ids`` in ``space`` (from the cached full matrix)."""
    all_ids, X = _all_vectors(rec, space)
    pos = _positions(rec, space)
    try:
        rows = [pos[int(i)] for i in ids]
    except KeyError as e:
        raise NotInIndexError(f"track id {e.args[0]} has no {space!r} vector in {rec.index_dir}") from None
    return X[rows]


def _positions(rec, space):
    def compute():
        ids, _ = _all_vectors(rec, space)
        return {int(t): i for i, t in enumerate(ids)}

    return _cache.get(rec, ("positions", space), compute)


def _meta(rec) -> pd.DataFrame:
    """Track metadata used by playlists (index id), with case-folded grouping keys."""

    def compute():
        df = rec.catalog.tracks(columns=["path", "artist", "album", "title", "content_hash"])

        def key(v):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return None
            s = str(v).strip().casefold()
            return s or None

        df["artist_key"] = [key(v) for v in df["artist"]]
        df["album_key"] = [key(v) for v in df["album"]]
        df["hash_key"] = [v if isinstance(v, str) and v else None for v in df["content_hash"]]
        return df

    return _cache.get(rec, ("meta",), compute)


def _resolve(rec, query) -> int:
    if isinstance(query, str) and query.strip().isdigit():
        tid = rec.resolve(query)
        if tid is None:
            tid = rec.resolve(int(query))
    else:
        tid = rec.resolve(query)
    if tid is None:
        raise NotInIndexError(f"{query!r} is not an indexed track (give a track id or an indexed path)")
    return int(tid)


# -------------------------------------------------------------------- hubness
class HubnessCorrection:
    """Per-track statistics turning cosine similarities into hubness-reduced scores.

    Build it with :func:`hubness_correction` (cached per catalog generation).

    Attributes
    ----------
    method : {'csls', 'mp'}
    k : int
        Neighbourhood size of CSLS's ``r(x)``.
    ids_ : np.ndarray, int64 (n,)
    r_ : np.ndarray, float32 (n,)
        Mean cosine of each track to its ``k`` nearest neighbours (CSLS).
    mu_, sd_ : np.ndarray, float32 (n,)
        Mean and standard deviation of each track's cosines to a sample of
        the collection (Mutual Proximity).
    """

    def __init__(self, method, ids, *, k=10, r=None, mu=None, sd=None, sample=None, index=None):
        if method not in HUBNESS_METHODS:
            raise ParameterError(f"method={method!r}: must be one of {', '.join(HUBNESS_METHODS)}")
        self.method = method
        self.k = int(k)
        self.ids_ = np.asarray(ids, dtype=np.int64)
        self.r_ = r
        self.mu_ = mu
        self.sd_ = sd
        self._sample = sample
        self._index = index
        self._pos = {int(t): i for i, t in enumerate(self.ids_)}

    def __repr__(self):
        return f"HubnessCorrection(method={self.method!r}, k={self.k}, n={len(self.ids_)})"

    def _stats(self, ids):
        rows = np.fromiter((self._pos.get(int(i), -1) for i in np.ravel(ids)), dtype=np.int64)
        return rows.reshape(np.shape(ids))

    def query_stats(self, *, query_id=None, query_vector=None, pool_scores=None):
        """Statistics of a query: stored ones for an indexed track, else computed.

        ``pool_scores``: the query's cosine neighbours, best first, as FAISS
        returned them; CSLS takes ``r(query)`` from their top ``k`` instead of
        searching again.
        """
        if query_id is not None and int(query_id) in self._pos:
            i = self._pos[int(query_id)]
            if self.method == "csls":
                return (float(self.r_[i]),)
            return (float(self.mu_[i]), float(self.sd_[i]))
        if self.method == "csls" and pool_scores is not None:
            s = np.asarray(pool_scores, dtype=np.float64).ravel()
            s = s[np.isfinite(s)][: self.k]
            return (float(s.mean()) if len(s) else 0.0,)
        if query_vector is None:
            raise ParameterError("query_stats: give query_id (an indexed track) or query_vector")
        q = _unit(np.asarray(query_vector, dtype=np.float32).reshape(1, -1))
        if self.method == "csls":
            kk = min(self.k, len(self.ids_))
            S, _ = self._index.search(q, kk)
            s = S[0][np.isfinite(S[0])]
            return (float(s.mean()) if len(s) else 0.0,)
        c = self._sample @ q[0]
        return (float(c.mean()), float(max(c.std(), 1e-6)))

    def adjust(self, scores, ids, *, query_stats):
        """Corrected scores for cosine ``scores`` of candidates ``ids`` (same shape).

        Candidates that are not in the collection (id ``-1``) get ``-inf``.
        """
        scores = np.asarray(scores, dtype=np.float64)
        rows = self._stats(ids)
        ok = (rows >= 0) & np.isfinite(scores)
        rr = np.where(ok, rows, 0)
        if self.method == "csls":
            (rq,) = query_stats
            out = 2.0 * scores - rq - self.r_[rr]
        else:
            from scipy.special import ndtr

            mq, sq = query_stats
            out = ndtr((scores - mq) / sq) * ndtr((scores - self.mu_[rr]) / self.sd_[rr])
        return np.where(ok, out, -np.inf)


def hubness_correction(rec, method=DEFAULT_HUBNESS, *, space="embedding", k=10, random_state=0):
    """The :class:`HubnessCorrection` of an index (computed once per catalog generation).

    Parameters
    ----------
    rec : Recommender
    method : {'csls', 'mp'}
    space : {'embedding', 'tags', 'both'}
    k : int
        CSLS neighbourhood: ``r(x)`` is the mean cosine of ``x`` to its ``k``
        nearest neighbours (FAISS, batched over the whole collection).
    random_state : int
        Seeds the sample used by Mutual Proximity.

    Returns
    -------
    HubnessCorrection
    """
    if method not in HUBNESS_METHODS:
        raise ParameterError(f"method={method!r}: must be one of {', '.join(HUBNESS_METHODS)} (or None)")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k={k!r}: must be a positive integer")
    _check_space(space)

    def compute():
        ids, X = _all_vectors(rec, space)
        idx = rec._index(space)
        n = len(ids)
        if method == "csls":
            kk = min(int(k), max(n - 1, 1))
            r = np.zeros(n, dtype=np.float32)
            for s in range(0, n, 4096):
                S, I = idx.search(X[s : s + 4096], min(n, kk + 1))
                valid = (I >= 0) & (I != ids[s : s + 4096, None])
                keep = valid & (np.cumsum(valid, axis=1) <= kk)
                cnt = np.maximum(keep.sum(axis=1), 1)
                r[s : s + 4096] = np.where(keep, S, 0.0).sum(axis=1) / cnt
            return HubnessCorrection("csls", ids, k=kk, r=r, index=idx)
        rng = np.random.default_rng(random_state)
        m = min(n, MP_SAMPLE)
        srows = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
        sample = np.ascontiguousarray(X[srows])
        mu = np.empty(n, dtype=np.float32)
        sd = np.empty(n, dtype=np.float32)
        for s in range(0, n, 4096):
            C = X[s : s + 4096] @ sample.T
            own = ids[s : s + 4096, None] == ids[srows][None, :]
            w = (~own).astype(np.float32)
            cnt = np.maximum(w.sum(axis=1), 1.0)
            mean = (C * w).sum(axis=1) / cnt
            var = (((C - mean[:, None]) ** 2) * w).sum(axis=1) / cnt
            mu[s : s + 4096] = mean
            sd[s : s + 4096] = np.sqrt(np.maximum(var, 1e-12))
        sd = np.maximum(sd, 1e-6)
        return HubnessCorrection("mp", ids, k=int(k), mu=mu, sd=sd, sample=sample, index=idx)

    return _cache.get(rec, ("hubness", space, method, int(k), int(random_state)), compute)


def rerank(rec, scores, ids, *, method=DEFAULT_HUBNESS, space="embedding", query_id=None,
           query_vector=None, k=10):
    """Re-rank FAISS results of one query by a hubness-corrected score.

    This is the hook for ``Recommender.similar(..., hubness=...)``: search a
    pool of cosine neighbours (a few times the ``k`` wanted), re-rank it, keep
    the order.

    Parameters
    ----------
    rec : Recommender
    scores, ids : np.ndarray, shape (m,) or (1, m)
        Cosine similarities and track ids as returned by
        :meth:`VectorIndex.search` (``-1`` ids are dropped).
    method : {'csls', 'mp'} or None
        ``None`` returns the input order.
    space : str
        Space the scores come from.
    query_id : int, optional
        The query track (its stored statistics are used).
    query_vector : array_like, optional
        The query vector, for a query that is not an indexed track.
    k : int
        CSLS neighbourhood (see :func:`hubness_correction`).

    Returns
    -------
    ids : np.ndarray, int64 (m',)
        Re-ordered ids, best first.
    adjusted : np.ndarray, float64 (m',)
        Corrected scores, in that order.
    cosine : np.ndarray, float32 (m',)
        The original cosines, in that order.

    Examples
    --------
    >>> S, I = rec._index("embedding").search(rec.vector(42), 50)    # doctest: +SKIP
    >>> ids, adj, cos = rerank(rec, S, I, method="csls", query_id=42)  # doctest: +SKIP
    """
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    keep = ids >= 0
    scores, ids = scores[keep], ids[keep]
    if method is None:
        return ids, scores.astype(np.float64), scores
    corr = hubness_correction(rec, method, space=space, k=k)
    qs = corr.query_stats(query_id=query_id, query_vector=query_vector, pool_scores=np.sort(scores)[::-1])
    adj = corr.adjust(scores, ids, query_stats=qs)
    order = np.argsort(-adj, kind="stable")
    return ids[order], adj[order], scores[order]


def _check_hubness(hubness):
    if hubness is not None and hubness not in HUBNESS_METHODS:
        raise ParameterError(f"hubness={hubness!r}: must be None or one of {', '.join(HUBNESS_METHODS)}")


def knn(rec, k=10, *, space="embedding", hubness=None, pool=None, exclude_duplicates=True):
    """The ``k`` nearest neighbours of every track (optionally hubness-corrected).

    Parameters
    ----------
    rec : Recommender
    k : int
    space : str
    hubness : {None, 'csls', 'mp'}
    pool : int, optional
        Cosine neighbours re-ranked per track (default ``max(5 k, 50)``; the
        whole collection when it is smaller).
    exclude_duplicates : bool
        Skip tracks with the query's content hash (copies of the same file).

    Returns
    -------
    ids : np.ndarray, int64 (n,)
        Every track.
    neighbours : np.ndarray, int64 (n, k)
        Their neighbours, best first (``-1`` where fewer exist).
    scores : np.ndarray, float64 (n, k)
        The (corrected) scores.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k={k!r}: must be a positive integer")
    _check_hubness(hubness)
    ids, X = _all_vectors(rec, space)
    n = len(ids)
    idx = rec._index(space)
    fetch = max(5 * k + 1, 50) if pool is None else max(int(pool), k + 1)
    fetch = min(n, fetch)
    hashes = _meta(rec)["hash_key"].reindex(ids).to_numpy() if exclude_duplicates else None
    corr = hubness_correction(rec, hubness, space=space) if hubness else None
    hash_of = dict(zip(ids.tolist(), hashes.tolist())) if hashes is not None else {}
    N = np.full((n, k), -1, dtype=np.int64)
    Sc = np.full((n, k), -np.inf)
    for s in range(0, n, 2048):
        S, I = idx.search(X[s : s + 2048], fetch)
        for r in range(S.shape[0]):
            qi = s + r
            qid = int(ids[qi])
            cand, sc = I[r], S[r].astype(np.float64)
            bad = (cand < 0) | (cand == qid)
            if hashes is not None and hashes[qi] is not None:
                h = hashes[qi]
                bad |= np.fromiter((hash_of.get(int(c)) == h for c in cand), dtype=bool, count=len(cand))
            cand, sc = cand[~bad], sc[~bad]
            if corr is not None:
                sc = corr.adjust(sc, cand, query_stats=corr.query_stats(query_id=qid))
                o = np.argsort(-sc, kind="stable")
                cand, sc = cand[o], sc[o]
            m = min(k, len(cand))
            N[qi, :m] = cand[:m]
            Sc[qi, :m] = sc[:m]
    return ids, N, Sc


def k_occurrence(rec, k=10, *, space="embedding", hubness=None) -> pd.Series:
    """How often each track appears in the other tracks' top ``k`` (``N_k``).

    Returns
    -------
    pd.Series
        Indexed by track id, named ``k_occurrence``; sums to ``n * k``.
    """
    ids, N, _ = knn(rec, k, space=space, hubness=hubness)
    pos = {int(t): i for i, t in enumerate(ids)}
    counts = np.zeros(len(ids), dtype=np.int64)
    flat = N[N >= 0].ravel()
    if len(flat):
        rows = np.fromiter((pos[int(t)] for t in flat), dtype=np.int64, count=len(flat))
        counts = np.bincount(rows, minlength=len(ids))
    return pd.Series(counts, index=pd.Index(ids, name="id"), name="k_occurrence")


def hubness_stats(counts, k) -> dict:
    """Hub statistics of k-occurrence counts ``N_k``.

    Returns
    -------
    dict
        ``skewness`` (of ``N_k``; 0 for a symmetric spread, large positive
        when a few hubs take many slots), ``anti_hub_share`` (share of tracks
        in nobody's top ``k``), ``hub_share`` (share with ``N_k > 2k``),
        ``max_k_occurrence``, ``n_tracks``, ``k``.
    """
    c = np.asarray(counts, dtype=np.float64)
    n = len(c)
    if n == 0:
        return {"k": k, "n_tracks": 0, "skewness": float("nan"), "anti_hub_share": float("nan"),
                "hub_share": float("nan"), "max_k_occurrence": 0}
    m = c.mean()
    m2 = ((c - m) ** 2).mean()
    m3 = ((c - m) ** 3).mean()
    skew = float(m3 / m2**1.5) if m2 > 0 else 0.0
    return {
        "k": int(k),
        "n_tracks": int(n),
        "skewness": skew,
        "anti_hub_share": float((c == 0).mean()),
        "hub_share": float((c > 2 * k).mean()),
        "max_k_occurrence": int(c.max()),
    }


def hubness_report(rec, k=10, *, space="embedding", methods=(None, "csls", "mp")) -> pd.DataFrame:
    """Hubness of the collection before and after correction.

    Parameters
    ----------
    rec : Recommender
    k : int
        Neighbourhood size (``top-k`` lists).
    space : str
    methods : sequence of {None, 'csls', 'mp'}
        ``None`` is plain cosine (the "before").

    Returns
    -------
    pd.DataFrame
        One row per method (index ``method``: ``'none'``, ``'csls'``,
        ``'mp'``), columns ``k, n_tracks, skewness, anti_hub_share,
        hub_share, max_k_occurrence`` (see :func:`hubness_stats`).

    Examples
    --------
    >>> hubness_report(Recommender("indexes/mine"), k=10)   # doctest: +SKIP
            k  n_tracks  skewness  anti_hub_share  hub_share  max_k_occurrence
    method
    none   10       103     0.647           0.019      0.078                26
    csls   10       103     0.332           0.000      0.000                20
    mp     10       103     0.222           0.000      0.000                20
    """
    rows = {}
    for m in methods:
        _check_hubness(m)
        counts = k_occurrence(rec, k, space=space, hubness=m)
        rows["none" if m is None else m] = hubness_stats(counts.to_numpy(), k)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "method"
    return df


# ------------------------------------------------------------------- playlists
def _check_n(n, name="n", minimum=1):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ParameterError(f"{name}={n!r}: must be an integer >= {minimum}")
    return int(n)


def _check_cap(v, name):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ParameterError(f"{name}={v!r}: must be None or an integer >= 1")
    return int(v)


def _drift_weight(drift):
    if drift is True:
        return _DRIFT_TRUE
    if drift is False or drift is None:
        return 0.0
    try:
        w = float(drift)
    except (TypeError, ValueError):
        w = float("nan")
    if not 0.0 <= w <= 1.0:
        raise ParameterError(f"drift={drift!r}: must be a bool or a number in [0, 1]")
    return w


def _frame(rec, chosen, scores, dists) -> pd.DataFrame:
    meta = _meta(rec)
    rows = []
    for pos, (tid, sc, d) in enumerate(zip(chosen, scores, dists), start=1):
        r = meta.loc[tid]
        rows.append({
            "position": pos,
            "id": int(tid),
            "path": r["path"],
            "artist": r["artist"],
            "title": r["title"],
            "album": r["album"],
            "score": float(sc),
            "distance_from_previous": float(d),
        })
    return pd.DataFrame(rows, columns=PLAYLIST_COLUMNS)


def radio(
    rec,
    seeds,
    n: int = 20,
    *,
    space: str = "embedding",
    drift=False,
    max_per_artist: int | None = None,
    max_per_album: int | None = None,
    include_seeds: bool = False,
    hubness=DEFAULT_HUBNESS,
    diversity: float = 0.0,
    duplicate_cosine: float = DUPLICATE_COSINE,
    exclude=(),
) -> pd.DataFrame:
    """A radio playlist from one or several seed tracks.

    Each step picks the best unused track for a *target*: the normalised mean
    of the seeds (``drift=False``: the playlist stays centred on the seeds),
    or a point between the previous track and the seeds (``drift``: each next
    song close to the previous one, so the playlist wanders gradually).

    Parameters
    ----------
    rec : Recommender
    seeds : int, path-like, or a list of them
        Seed tracks (ids or indexed paths).
    n : int
        Tracks in the playlist (fewer when the collection or the caps run out).
    space : {'embedding', 'tags', 'both'}
    drift : bool or float in [0, 1]
        Weight of the previous track in the target (``True`` = 1: only the
        previous track; 0.5: halfway between it and the seeds).
    max_per_artist, max_per_album : int, optional
        Caps per artist / album (tracks without the tag are not capped);
        included seeds count.
    include_seeds : bool
        Start the playlist with the seeds.
    hubness : {'csls', 'mp', None}
        Re-rank candidates with a hubness correction (default
        :data:`DEFAULT_HUBNESS`), so that the same few "hub" tracks do not
        show up in every radio.
    diversity : float in [0, 1)
        Maximal-marginal-relevance trade-off: the score of a candidate becomes
        ``(1 - diversity) * score - diversity * max cos(candidate, chosen)``.
    duplicate_cosine : float
        Candidates at least this close (cosine) to a seed or a chosen track are
        treated as the same recording and skipped, as are tracks with the same
        content hash.
    exclude : iterable of int
        Track ids never to play.

    Returns
    -------
    pd.DataFrame
        Columns :data:`PLAYLIST_COLUMNS`: ``position`` (1-based), ``id``,
        ``path``, ``artist``, ``title``, ``album``, ``score`` (cosine to the
        target the track was picked for) and ``distance_from_previous``
        (cosine distance to the previous track; for the first track, to the
        closest seed, or 0 for an included seed).

    Examples
    --------
    >>> radio(rec, [12, 40], n=20, max_per_artist=2)         # doctest: +SKIP
    >>> radio(rec, "~/Music/a.mp3", n=30, drift=True)        # doctest: +SKIP
    """
    n = _check_n(n)
    _check_space(space)
    _check_hubness(hubness)
    max_per_artist = _check_cap(max_per_artist, "max_per_artist")
    max_per_album = _check_cap(max_per_album, "max_per_album")
    w = _drift_weight(drift)
    try:
        diversity = float(diversity)
    except (TypeError, ValueError):
        diversity = float("nan")
    if not 0.0 <= diversity < 1.0:
        raise ParameterError(f"diversity={diversity!r}: must be in [0, 1)")
    if isinstance(seeds, (str, int, np.integer)) or hasattr(seeds, "__fspath__"):
        seeds = [seeds]
    seed_ids = []
    for s in seeds:
        t = _resolve(rec, s)
        if t not in seed_ids:
            seed_ids.append(t)
    if not seed_ids:
        raise ParameterError("seeds: give at least one track")
    meta = _meta(rec)
    all_ids, _ = _all_vectors(rec, space)
    total = len(all_ids)
    idx = rec._index(space)
    corr = hubness_correction(rec, hubness, space=space) if hubness else None
    S = _vectors(rec, space, seed_ids)
    centre = _unit(S.mean(axis=0))

    used = set(int(i) for i in exclude) | set(seed_ids)
    used_hashes = {meta.at[t, "hash_key"] for t in seed_ids} - {None}
    per_artist: dict = {}
    per_album: dict = {}
    chosen, scores, dists, chosen_vecs = [], [], [], []
    ref_vecs = [S]  # seeds and chosen tracks, for duplicate detection

    def count(tid):
        a, b = meta.at[tid, "artist_key"], meta.at[tid, "album_key"]
        if a is not None:
            per_artist[a] = per_artist.get(a, 0) + 1
        if b is not None:
            per_album[b] = per_album.get(b, 0) + 1

    if include_seeds:
        for j, t in enumerate(seed_ids[:n]):
            chosen.append(t)
            scores.append(float(S[j] @ centre))
            dists.append(0.0 if j == 0 else float(1.0 - S[j] @ S[j - 1]))
            chosen_vecs.append(S[j])
            count(t)
    prev = S[-1] if not chosen_vecs else chosen_vecs[-1]
    rejected = set()  # ids that can never be played (caps full, duplicates)
    fetch = min(total, max(4 * n + 10, 64))
    centre_cache = None
    while len(chosen) < n:
        target = centre if w == 0.0 else _unit(w * prev + (1.0 - w) * centre)
        pick = None
        while True:
            if w == 0.0 and centre_cache is not None and centre_cache[0] >= fetch:
                cs, ci = centre_cache[1], centre_cache[2]
            else:
                cs, ci = idx.search(target[None], fetch)
                cs, ci = cs[0], ci[0]
                if w == 0.0:
                    centre_cache = (fetch, cs, ci)
            ok = (ci >= 0) & np.fromiter((int(c) not in used and int(c) not in rejected for c in ci),
                                         dtype=bool, count=len(ci))
            cand, cos = ci[ok], cs[ok].astype(np.float64)
            if len(cand):
                if corr is not None:
                    qs = corr.query_stats(query_vector=target, pool_scores=cs)
                    sc = corr.adjust(cos, cand, query_stats=qs)
                else:
                    sc = cos.copy()
                V = _vectors(rec, space, cand)
                ref = np.concatenate(ref_vecs + ([np.stack(chosen_vecs)] if chosen_vecs else []), axis=0)
                closest = (V @ ref.T).max(axis=1)
                if diversity > 0 and chosen_vecs:
                    red = (V @ np.stack(chosen_vecs).T).max(axis=1)
                    if corr is not None:  # put corrected scores on a cosine-like scale first
                        sc = _rescale_like(sc, cos)
                    sc = (1.0 - diversity) * sc - diversity * red
                for j in np.argsort(-sc, kind="stable"):
                    t = int(cand[j])
                    h = meta.at[t, "hash_key"]
                    a, b = meta.at[t, "artist_key"], meta.at[t, "album_key"]
                    if (h is not None and h in used_hashes) or closest[j] >= duplicate_cosine:
                        rejected.add(t)
                        continue
                    if max_per_artist is not None and a is not None and per_artist.get(a, 0) >= max_per_artist:
                        rejected.add(t)
                        continue
                    if max_per_album is not None and b is not None and per_album.get(b, 0) >= max_per_album:
                        rejected.add(t)
                        continue
                    pick = (t, float(cos[j]), V[j])
                    break
            if pick is not None or fetch >= total:
                break
            fetch = min(total, fetch * 4)
        if pick is None:
            logger.info("radio: only %d of %d tracks fit the constraints", len(chosen), n)
            break
        t, c, v = pick
        if chosen_vecs:
            d = float(1.0 - v @ chosen_vecs[-1])
        else:
            d = float(1.0 - (S @ v).max())
        chosen.append(t)
        scores.append(c)
        dists.append(max(d, 0.0))
        chosen_vecs.append(v)
        used.add(t)
        if meta.at[t, "hash_key"] is not None:
            used_hashes.add(meta.at[t, "hash_key"])
        count(t)
        prev = v
    return _frame(rec, chosen, scores, dists)


def _rescale_like(adjusted, cos):
    """Affinely map corrected scores onto the range of the cosines (for MMR mixing)."""
    a = np.asarray(adjusted, dtype=np.float64)
    fin = np.isfinite(a)
    if fin.sum() < 2 or np.ptp(a[fin]) == 0:
        return np.where(fin, cos, -np.inf)
    lo, hi = a[fin].min(), a[fin].max()
    clo, chi = float(np.min(cos)), float(np.max(cos))
    return np.where(fin, clo + (a - lo) * (chi - clo) / (hi - lo), -np.inf)


def _slerp(a, b, t):
    """Points on the great circle from unit ``a`` to unit ``b`` at fractions ``t`` (m,)."""
    t = np.asarray(t, dtype=np.float64)[:, None]
    dot = float(np.clip(a @ b, -1.0, 1.0))
    om = math.acos(dot)
    if om < 1e-6:
        out = (1 - t) * a + t * b
    elif abs(math.pi - om) < 1e-6:  # antipodal: lerp, re-normalised below
        out = (1 - t) * a + t * b
    else:
        so = math.sin(om)
        out = np.sin((1 - t) * om) / so * a + np.sin(t * om) / so * b
    return _unit(out.astype(np.float32))


def path_between(
    rec,
    a,
    b,
    n: int = 10,
    *,
    space: str = "embedding",
    method: str = "graph",
    duplicate_cosine: float = DUPLICATE_COSINE,
    exclude=(),
    polish: bool = True,
) -> pd.DataFrame:
    """A playlist of ``n`` songs going smoothly from track ``a`` to track ``b``.

    Parameters
    ----------
    rec : Recommender
    a, b : int or path-like
        First and last track (ids or indexed paths).
    n : int
        Length including ``a`` and ``b`` (>= 2; fewer when the collection is
        smaller).
    space : {'embedding', 'tags', 'both'}
    method : {'graph', 'interpolate'}
        ``'graph'`` (default): the walk of exactly ``n - 1`` steps from ``a``
        to ``b`` that minimises the sum of step distances, by dynamic
        programming over the tracks near the a-b corridor (distances are half
        squared Euclidean, so this spreads the way into even, small steps).
        ``'interpolate'``: targets spaced along the great circle from ``a`` to
        ``b``; each next song is the unused track nearest its target,
        penalised by its distance to the previous song.
        ``benchmarks/bench_playlists.py`` compares them.
    duplicate_cosine : float
        Tracks this close to an earlier candidate, or with the same content
        hash, count as the same recording and are not used twice.
    exclude : iterable of int
        Track ids never to use.
    polish : bool
        After the first solution, replace single songs by unused ones while
        that shortens the two steps around them.

    Returns
    -------
    pd.DataFrame
        Columns :data:`PLAYLIST_COLUMNS`; row 1 is ``a``, the last row ``b``;
        ``score`` is the cosine to ``a``'s-to-``b``'s great circle target of
        that position, ``distance_from_previous`` the step distance (0 for
        ``a``).  No track appears twice.

    Examples
    --------
    >>> p = path_between(rec, 12, 80, n=12)                 # doctest: +SKIP
    >>> p["distance_from_previous"].iloc[1:].mean()         # doctest: +SKIP
    """
    n = _check_n(n, minimum=2)
    _check_space(space)
    if method not in ("graph", "interpolate"):
        raise ParameterError(f"method={method!r}: must be 'graph' or 'interpolate'")
    ia, ib = _resolve(rec, a), _resolve(rec, b)
    if ia == ib:
        raise ParameterError(f"a and b are the same track ({ia}); give two different tracks")
    meta = _meta(rec)
    va, vb = _vectors(rec, space, [ia, ib])
    all_ids, _ = _all_vectors(rec, space)
    total = len(all_ids)
    excl = set(int(i) for i in exclude) - {ia, ib}

    # candidate pool: the whole collection when small, else neighbours of the corridor
    if total <= PATH_POOL_MAX:
        pool = [int(t) for t in all_ids]
    else:
        T = _slerp(va, vb, np.linspace(0.0, 1.0, max(n, 8)))
        per = int(min(total, max(64, 4 * PATH_POOL_MAX // len(T))))
        Sx, Ix = rec._index(space).search(T, per)
        best: dict = {}
        for s_row, i_row in zip(Sx, Ix):
            for s, i in zip(s_row, i_row):
                if i >= 0:
                    best[int(i)] = max(best.get(int(i), -np.inf), float(s))
        pool = sorted(best, key=lambda t: -best[t])[:PATH_POOL_MAX]
    pool = [t for t in pool if t not in (ia, ib) and t not in excl]
    ids = [ia, ib] + pool
    V = _vectors(rec, space, ids)
    # de-duplicate: same content hash or near-identical vectors (a and b kept first)
    keep = []
    seen_hash = set()
    G = V @ V.T
    for j, t in enumerate(ids):
        h = meta.at[t, "hash_key"]
        if j >= 2 and h is not None and h in seen_hash:
            continue
        if j >= 2 and keep and G[j, keep].max() >= duplicate_cosine:
            continue
        keep.append(j)
        if h is not None:
            seen_hash.add(h)
    ids = [ids[j] for j in keep]
    G = G[np.ix_(keep, keep)].astype(np.float64)
    m = len(ids)
    if m < n:
        logger.info("path: the collection has only %d usable tracks, the path will have %d", m, m)
        n = m
    D = np.maximum(1.0 - G, 0.0)
    A, B = 0, 1
    T = _slerp(va, vb, np.linspace(0.0, 1.0, n))
    Vk = V[keep]
    TS = T @ Vk.T  # (n, m) cosine of every pool track to every target

    W = D**PATH_STEP_POWER  # the cost of a step: squared distance evens the steps out
    if method == "graph":
        walk = _dp_walk(W, A, B, n - 1)
        walk = _repair_repeats(walk, W)
    else:
        walk = [A]
        used = {A, B}
        for i in range(1, n - 1):
            sc = TS[i] - D[walk[-1]]
            sc[list(used)] = -np.inf
            j = int(np.argmax(sc))
            walk.append(j)
            used.add(j)
        walk.append(B)
    if polish:
        walk = _polish(walk, W)
    chosen = [ids[j] for j in walk]
    scores = [float(TS[i, j]) for i, j in enumerate(walk)]
    dists = [0.0] + [float(D[walk[i - 1], walk[i]]) for i in range(1, len(walk))]
    return _frame(rec, chosen, scores, dists)


def _dp_walk(D, a, b, hops):
    """Min-sum walk of exactly ``hops`` steps from ``a`` to ``b`` (may repeat inner nodes)."""
    m = D.shape[0]
    W = D.copy()
    np.fill_diagonal(W, np.inf)
    W[:, a] = np.inf  # never return to a
    W[b, :] = np.inf  # b only at the end
    cost = np.full(m, np.inf)
    cost[a] = 0.0
    back = np.empty((hops, m), dtype=np.int64)
    cols = np.arange(m)
    for h in range(hops):
        M = cost[:, None] + W
        arg = np.argmin(M, axis=0)
        cost = M[arg, cols]
        if h < hops - 1:
            cost[b] = np.inf
        back[h] = arg
    walk = [b]
    j = b
    for h in range(hops - 1, -1, -1):
        j = int(back[h][j])
        walk.append(j)
    return walk[::-1]


def _repair_repeats(walk, D):
    """Replace later occurrences of a repeated node by the best unused node."""
    walk = list(walk)
    used = set()
    for i, j in enumerate(walk):
        if j not in used:
            used.add(j)
            continue
        prev, nxt = walk[i - 1], walk[i + 1]
        c = D[prev] + D[:, nxt]
        c[list(used | set(walk[i + 1 :]))] = np.inf
        r = int(np.argmin(c))
        walk[i] = r
        used.add(r)
    return walk


def _polish(walk, D, max_sweeps=10):
    """Local search: swap an inner song for an unused one while the two steps shrink."""
    walk = list(walk)
    m = D.shape[0]
    for _ in range(max_sweeps):
        improved = False
        used = np.zeros(m, dtype=bool)
        used[walk] = True
        for i in range(1, len(walk) - 1):
            p, x, q = walk[i - 1], walk[i], walk[i + 1]
            c = D[p] + D[:, q]
            c[used] = np.inf
            r = int(np.argmin(c))
            if c[r] < D[p, x] + D[x, q] - 1e-9:
                used[x] = False
                used[r] = True
                walk[i] = r
                improved = True
        if not improved:
            break
    return walk


def mean_step_distance(rec, ids, *, space="embedding") -> float:
    """Mean cosine distance between consecutive tracks of a playlist (ids in order)."""
    ids = [int(i) for i in ids]
    if len(ids) < 2:
        return 0.0
    V = _vectors(rec, space, ids)
    return float(np.mean(1.0 - np.sum(V[1:] * V[:-1], axis=1)))
