"""Hubness of a collection and its correction: CSLS and Mutual Proximity.

In high-dimensional spaces a few "hub" tracks are everybody's nearest
neighbour and many "anti-hubs" are nobody's.  This module measures it
(:func:`knn`, :func:`k_occurrence`, :func:`hubness_stats`,
:func:`hubness_report`) and corrects it (:class:`HubnessCorrection`,
:func:`hubness_correction`, :func:`rerank`).

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

Statistics are computed once per catalog generation
(:func:`recommender.recommend.view.cached`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_choice, check_int, unit_rows
from ..errors import ParameterError
from ..store.spaces import check_space
from . import recordings, view

__all__ = [
    "HubnessCorrection",
    "hubness_correction",
    "rerank",
    "check_hubness",
    "knn",
    "k_occurrence",
    "hubness_report",
    "hubness_stats",
    "HUBNESS_METHODS",
    "DEFAULT_HUBNESS",
    "MP_SAMPLE",
]

#: Hubness corrections understood by :func:`rerank` (``None`` = plain cosine).
HUBNESS_METHODS = ("csls", "mp")
#: Correction used by :func:`recommender.recommend.playlists.radio` by default.  Measured with
#: ``benchmarks/bench_playlists.py`` on 103 game soundtracks (5 labels,
#: embedding space, k=10): skewness of k-occurrence 0.65 -> 0.22 (CSLS 0.33),
#: anti-hubs 1.9 % -> 0 %, largest k-occurrence 26 -> 20, precision@10 by
#: label 0.449 -> 0.462 (CSLS 0.458); MP's statistics cost O(n * 1000)
#: against CSLS's k-NN search over the whole collection.
DEFAULT_HUBNESS = "mp"
#: Collection sample used for Mutual Proximity's per-track distributions.
MP_SAMPLE = 1000

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
        self.method = check_choice("method", method, HUBNESS_METHODS)
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
        q = unit_rows(np.asarray(query_vector, dtype=np.float32).reshape(1, -1))
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
    check_choice("method", method, HUBNESS_METHODS)
    k = check_int("k", k)
    check_space(space)

    def compute():
        ids, X = view.vectors(rec, space)
        idx = rec.faiss_index(space)
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

    return view.cached(rec, ("hubness", space, method, int(k), int(random_state)), compute)


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
    >>> S, I = rec.faiss_index("embedding").search(rec.vector(42), 50)    # doctest: +SKIP
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


def check_hubness(hubness):
    """``hubness`` if it is ``None`` or one of :data:`HUBNESS_METHODS` (else ``ParameterError``)."""
    return None if hubness is None else check_choice("hubness", hubness, HUBNESS_METHODS)


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
        Skip other copies of the query's recording (same content hash or
        fingerprint; :func:`recommender.recommend.recordings.recording_groups`).

    Returns
    -------
    ids : np.ndarray, int64 (n,)
        Every track.
    neighbours : np.ndarray, int64 (n, k)
        Their neighbours, best first (``-1`` where fewer exist).
    scores : np.ndarray, float64 (n, k)
        The (corrected) scores.
    """
    k = check_int("k", k)
    check_hubness(hubness)
    ids, X = view.vectors(rec, space)
    n = len(ids)
    idx = rec.faiss_index(space)
    fetch = max(5 * k + 1, 50) if pool is None else max(int(pool), k + 1)
    fetch = min(n, fetch)
    groups = recordings.recording_groups(rec) if exclude_duplicates else None
    corr = hubness_correction(rec, hubness, space=space) if hubness else None
    N = np.full((n, k), -1, dtype=np.int64)
    Sc = np.full((n, k), -np.inf)
    for s in range(0, n, 2048):
        S, I = idx.search(X[s : s + 2048], fetch)
        for r in range(S.shape[0]):
            qi = s + r
            qid = int(ids[qi])
            cand, sc = I[r], S[r].astype(np.float64)
            bad = (cand < 0) | (cand == qid)
            if groups is not None and groups.same_as(qid):
                same = groups.same_as(qid)
                bad |= np.fromiter((int(c) in same for c in cand), dtype=bool, count=len(cand))
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
        check_hubness(m)
        counts = k_occurrence(rec, k, space=space, hubness=m)
        rows["none" if m is None else m] = hubness_stats(counts.to_numpy(), k)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "method"
    return df
