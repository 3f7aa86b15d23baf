"""Playlists over an index: radio and song-to-song paths.

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
* Hubness (:func:`hubness_correction`, :func:`rerank`, :func:`k_occurrence`,
  :func:`hubness_report`...) lives in :mod:`recommender.recommend.hubness`;
  the names are re-exported here.

Distances are cosine distances ``1 - cos`` between L2-normalised vectors
(half the squared Euclidean distance), so they lie in ``[0, 2]``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from .._utils import check_choice, check_int, check_number, unit_rows
from ..errors import ParameterError
from ..store.spaces import check_space
from . import recordings, view
from .exclusions import check_seeds, excluded_ids
from .hubness import (  # noqa: F401  (re-exported: recommender.recommend.playlists.rerank etc.)
    DEFAULT_HUBNESS,
    HUBNESS_METHODS,
    MP_SAMPLE,
    HubnessCorrection,
    check_hubness,
    hubness_correction,
    hubness_report,
    hubness_stats,
    k_occurrence,
    knn,
    rerank,
)
from .view import clear_cache  # noqa: F401  (re-exported)

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

#: Fallback rule for tracks without an acoustic fingerprint: two tracks whose
#: embedding vectors have at least this cosine are treated as the same
#: recording (:data:`recommender.recommend.recordings.DUPLICATE_COSINE`).
DUPLICATE_COSINE = recordings.DUPLICATE_COSINE
#: Columns of the playlists returned by :func:`radio` and :func:`path_between`.
PLAYLIST_COLUMNS = ["position", "id", "path", "artist", "title", "album", "score", "distance_from_previous"]
#: Weight of the avoided tracks' mean direction subtracted from the seeds' centre in :func:`radio`.
AVOID_WEIGHT = 0.5
#: Tracks considered by :func:`path_between` at most (pairwise matrix m x m).
PATH_POOL_MAX = 2500
#: Paths minimise the sum of (step distance ** PATH_STEP_POWER): 2 keeps the
#: steps even (smaller largest step) at the same mean step distance as 1
#: (``benchmarks/bench_playlists.py``).
PATH_STEP_POWER = 2.0

_DRIFT_TRUE = 1.0


# ------------------------------------------------------------------- playlists
def _drift_weight(drift):
    if drift is True:
        return _DRIFT_TRUE
    if drift is False or drift is None:
        return 0.0
    return check_number("drift", drift, min=0, max=1)


def _frame(rec, chosen, scores, dists) -> pd.DataFrame:
    meta = view.metadata(rec)
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
    exclusions=None,
    avoid=(),
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
        A copy of a seed's or a chosen track's recording is never played: same
        content hash, or the same recording by acoustic fingerprint
        (:mod:`recommender.recommend.recordings`).  Only for tracks without a
        fingerprint, a cosine of at least ``duplicate_cosine`` in the
        ``'embedding'`` space counts as the same recording instead.
    exclude : iterable of int
        Track ids never to play.
    exclusions : Exclusions or mapping, optional
        Path globs, tags and durations of tracks never to play
        (:class:`recommender.recommend.exclusions.Exclusions`); banned tracks
        are never played either, and a banned seed is refused.
    avoid : int, path-like, or a list of them
        Negative seeds: music to steer away from.  The target's centre becomes
        ``unit(mean(seeds) - AVOID_WEIGHT * mean(avoid))`` (:data:`AVOID_WEIGHT`),
        and a candidate closer (cosine) to any avoided track than to every seed
        is never played; nor are the avoided tracks themselves.

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
    n = check_int("n", n)
    check_space(space)
    check_hubness(hubness)
    caps = (check_int("max_per_artist", max_per_artist, allow_none=True),
            check_int("max_per_album", max_per_album, allow_none=True))
    w = _drift_weight(drift)
    diversity = check_number("diversity", diversity, min=0, max=1, max_inclusive=False)
    seed_ids = _seed_ids(rec, seeds)
    check_seeds(rec, seed_ids, "seed")
    avoid_ids = _seed_ids(rec, avoid, required=False)
    if set(avoid_ids) & set(seed_ids):
        raise ParameterError(f"avoid: track {min(set(avoid_ids) & set(seed_ids))} is also a seed")
    total = len(view.vectors(rec, space)[0])
    corr = hubness_correction(rec, hubness, space=space) if hubness else None
    S = view.vectors_of(rec, space, seed_ids)
    A = view.vectors_of(rec, space, avoid_ids) if avoid_ids else None
    centre = S.mean(axis=0) - (AVOID_WEIGHT * A.mean(axis=0) if A is not None else 0.0)
    centre = unit_rows(centre[None])[0]
    groups = recordings.recording_groups(rec, duplicate_cosine=duplicate_cosine)
    never = {int(i) for i in exclude} | excluded_ids(rec, exclusions) | set(avoid_ids)
    st = _RadioState(view.metadata(rec), seed_ids, exclude=never, caps=caps, groups=groups, away=(S, A))
    picker = _RadioPicker(rec, space, corr, total=total, fetch=min(total, max(4 * n + 10, 64)), diversity=diversity)
    if include_seeds:
        for j, t in enumerate(seed_ids[:n]):
            st.add(t, float(S[j] @ centre), 0.0 if j == 0 else float(1.0 - S[j] @ S[j - 1]), S[j])
    prev = S[-1] if not st.vecs else st.vecs[-1]
    while len(st.chosen) < n:
        target = centre if w == 0.0 else unit_rows((w * prev + (1.0 - w) * centre)[None])[0]
        pick = picker.pick(st, target, centred=w == 0.0)
        if pick is None:
            logger.info("radio: only %d of %d tracks fit the constraints", len(st.chosen), n)
            break
        t, c, v = pick
        d = float(1.0 - v @ st.vecs[-1]) if st.vecs else float(1.0 - (S @ v).max())
        st.add(t, c, max(d, 0.0), v)
        prev = v
    return _frame(rec, st.chosen, st.scores, st.dists)


def _seed_ids(rec, seeds, *, required=True) -> list:
    """Distinct track ids of one seed or a list of seeds, in order."""
    if isinstance(seeds, (str, int, np.integer)) or hasattr(seeds, "__fspath__"):
        seeds = [seeds]
    seed_ids = []
    for s in seeds or ():
        t = view.resolve_track(rec, s)
        if t not in seed_ids:
            seed_ids.append(t)
    if not seed_ids and required:
        raise ParameterError("seeds: give at least one track")
    return seed_ids


class _RadioState:
    """A radio being built: the tracks chosen so far, what may not be played, the per-artist/album counts."""

    def __init__(self, meta, seed_ids, *, exclude, caps, groups, away=(None, None)):
        self.meta = meta
        self.seed_vecs, self.avoid_vecs = away  # unit vectors (s, d) and (a, d) or None: see closer_to_avoid
        self.groups = groups  # recordings.RecordingGroups: which tracks are one recording
        self.max_per_artist, self.max_per_album = caps
        self.used = set(int(i) for i in exclude) | set(seed_ids)
        self.used_recordings = {groups.key(t) for t in seed_ids}
        self.rejected = set()  # ids that can never be played (caps full, duplicates)
        self.per_artist: dict = {}
        self.per_album: dict = {}
        self.chosen, self.scores, self.dists, self.vecs = [], [], [], []

    def add(self, tid, score, dist, v):
        """Play ``tid`` (cosine ``score`` to its target, ``dist`` from the previous track, unit vector ``v``)."""
        self.chosen.append(tid)
        self.scores.append(score)
        self.dists.append(dist)
        self.vecs.append(v)
        self.used.add(tid)
        self.used_recordings.add(self.groups.key(tid))
        a, b = self.meta.at[tid, "artist_key"], self.meta.at[tid, "album_key"]
        if a is not None:
            self.per_artist[a] = self.per_artist.get(a, 0) + 1
        if b is not None:
            self.per_album[b] = self.per_album.get(b, 0) + 1

    def open(self, ids) -> np.ndarray:
        """Mask of the FAISS result ``ids`` (with ``-1`` padding) not yet used or rejected."""
        return (ids >= 0) & np.fromiter((int(c) not in self.used and int(c) not in self.rejected for c in ids),
                                        dtype=bool, count=len(ids))

    def closer_to_avoid(self, V) -> np.ndarray:
        """Mask of the rows of ``V`` (m, d) closer to an avoided track than to every seed."""
        if self.avoid_vecs is None or not len(V):
            return np.zeros(len(V), dtype=bool)
        return (V @ self.avoid_vecs.T).max(axis=1) > (V @ self.seed_vecs.T).max(axis=1)

    def admits(self, tid) -> bool:
        """Whether ``tid`` may be played (not a copy of a seed's or chosen track's recording, caps not
        full); rejects it for good if not."""
        a, b = self.meta.at[tid, "artist_key"], self.meta.at[tid, "album_key"]
        full = (self.groups.key(tid) in self.used_recordings
                or (self.max_per_artist is not None and a is not None and self.per_artist.get(a, 0) >= self.max_per_artist)
                or (self.max_per_album is not None and b is not None and self.per_album.get(b, 0) >= self.max_per_album))
        if full:
            self.rejected.add(tid)
        return not full


class _RadioPicker:
    """Finds the best playable track for a target: FAISS search, hubness and diversity scoring.

    The search widens (``fetch`` x 4) until a track fits or the collection is
    exhausted; the widened size is kept for the next picks.  Without drift the
    target is always the seeds' centre, so its search is reused.
    """

    def __init__(self, rec, space, corr, *, total, fetch, diversity):
        self.rec, self.space, self.corr = rec, space, corr
        self.idx = rec.faiss_index(space)
        self.total, self.fetch, self.diversity = total, fetch, diversity
        self._centre = None  # (fetch, scores, ids) of the last search for the centre

    def _search(self, target, centred):
        if centred and self._centre is not None and self._centre[0] >= self.fetch:
            return self._centre[1], self._centre[2]
        cs, ci = self.idx.search(target[None], self.fetch)
        cs, ci = cs[0], ci[0]
        if centred:
            self._centre = (self.fetch, cs, ci)
        return cs, ci

    def pick(self, st: _RadioState, target, *, centred: bool):
        """``(track id, cosine to target, unit vector)`` of the best playable track, or ``None``."""
        while True:
            cs, ci = self._search(target, centred)
            ok = st.open(ci)
            cand, cos = ci[ok], cs[ok].astype(np.float64)
            pick = self._best(st, target, cs, cand, cos) if len(cand) else None
            if pick is not None or self.fetch >= self.total:
                return pick
            self.fetch = min(self.total, self.fetch * 4)

    def _best(self, st, target, cs, cand, cos):
        if self.corr is not None:
            qs = self.corr.query_stats(query_vector=target, pool_scores=cs)
            sc = self.corr.adjust(cos, cand, query_stats=qs)
        else:
            sc = cos.copy()
        V = view.vectors_of(self.rec, self.space, cand)
        away = st.closer_to_avoid(V)
        if away.any():
            st.rejected.update(int(t) for t in cand[away])
            sc = np.where(away, -np.inf, sc)
        if self.diversity > 0 and st.vecs:
            red = (V @ np.stack(st.vecs).T).max(axis=1)
            if self.corr is not None:  # put corrected scores on a cosine-like scale first
                sc = _rescale_like(sc, cos)
            sc = (1.0 - self.diversity) * sc - self.diversity * red
        for j in np.argsort(-sc, kind="stable"):
            t = int(cand[j])
            if away[j]:
                continue
            if st.admits(t):
                return t, float(cos[j]), V[j]
        return None


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
    return unit_rows(out.astype(np.float32))


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
    exclusions=None,
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
        No recording is used twice: tracks with the same content hash or the
        same acoustic fingerprint (:mod:`recommender.recommend.recordings`)
        are one recording; only for tracks without a fingerprint, a cosine of
        at least ``duplicate_cosine`` in the ``'embedding'`` space counts
        instead.  A copy of ``a``'s or ``b``'s recording is never an inner song.
    exclude : iterable of int
        Track ids never to use.
    polish : bool
        After the first solution, replace single songs by unused ones while
        that shortens the two steps around them.
    exclusions : Exclusions or mapping, optional
        Path globs, tags and durations of tracks never to use as inner songs
        (:class:`recommender.recommend.exclusions.Exclusions`; ``a`` and
        ``b`` are used as given); banned tracks are never used, and a banned
        ``a`` or ``b`` is refused.

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
    n = check_int("n", n, min=2)
    check_space(space)
    check_choice("method", method, ("graph", "interpolate"))
    ia, ib = view.resolve_track(rec, a), view.resolve_track(rec, b)
    check_seeds(rec, [ia, ib], "path end")
    if ia == ib:
        raise ParameterError(f"a and b are the same track ({ia}); give two different tracks")
    va, vb = view.vectors_of(rec, space, [ia, ib])
    excl = ({int(i) for i in exclude} | excluded_ids(rec, exclusions)) - {ia, ib}
    pool = [t for t in _path_pool(rec, space, va, vb, n) if t not in (ia, ib) and t not in excl]
    ids = [ia, ib] + pool
    V = view.vectors_of(rec, space, ids)
    groups = recordings.recording_groups(rec, duplicate_cosine=duplicate_cosine)
    keep, G = _distinct(ids, V, groups)
    ids = [ids[j] for j in keep]
    m = len(ids)
    if m < n:
        logger.info("path: the collection has only %d usable tracks, the path will have %d", m, m)
        n = m
    D = np.maximum(1.0 - G, 0.0)
    A, B = 0, 1
    T = _slerp(va, vb, np.linspace(0.0, 1.0, n))
    TS = T @ V[keep].T  # (n, m) cosine of every pool track to every target

    W = D**PATH_STEP_POWER  # the cost of a step: squared distance evens the steps out
    if method == "graph":
        walk = _repair_repeats(_dp_walk(W, A, B, n - 1), W)
    else:
        walk = _interpolated_walk(TS, D, A, B, n)
    if polish:
        walk = _polish(walk, W)
    chosen = [ids[j] for j in walk]
    scores = [float(TS[i, j]) for i, j in enumerate(walk)]
    dists = [0.0] + [float(D[walk[i - 1], walk[i]]) for i in range(1, len(walk))]
    return _frame(rec, chosen, scores, dists)


def _path_pool(rec, space, va, vb, n) -> list:
    """Candidate track ids of a path from unit ``va`` to ``vb``: the whole collection when it has
    at most :data:`PATH_POOL_MAX` tracks, else the :data:`PATH_POOL_MAX` nearest to the great circle."""
    all_ids, _ = view.vectors(rec, space)
    total = len(all_ids)
    if total <= PATH_POOL_MAX:
        return [int(t) for t in all_ids]
    T = _slerp(va, vb, np.linspace(0.0, 1.0, max(n, 8)))
    per = int(min(total, max(64, 4 * PATH_POOL_MAX // len(T))))
    Sx, Ix = rec.faiss_index(space).search(T, per)
    best: dict = {}
    for s_row, i_row in zip(Sx, Ix):
        for s, i in zip(s_row, i_row):
            if i >= 0:
                best[int(i)] = max(best.get(int(i), -np.inf), float(s))
    return sorted(best, key=lambda t: -best[t])[:PATH_POOL_MAX]


def _distinct(ids, V, groups):
    """Rows of ``ids`` (unit vectors ``V``) without repeated recordings (``groups``: a
    :class:`~recommender.recommend.recordings.RecordingGroups`); rows 0 and 1, the ends, are
    always kept and an inner row of their recording never is.

    Returns the kept rows and their cosine matrix (float64)."""
    keep = []
    seen = set()
    for j, t in enumerate(ids):
        r = groups.key(t)
        if j >= 2 and r in seen:
            continue
        keep.append(j)
        seen.add(r)
    G = V[keep] @ V[keep].T
    return keep, G.astype(np.float64)


def _interpolated_walk(TS, D, a, b, n):
    """``'interpolate'``: from ``a``, the unused track nearest each target, penalised by its step."""
    walk = [a]
    used = {a, b}
    for i in range(1, n - 1):
        sc = TS[i] - D[walk[-1]]
        sc[list(used)] = -np.inf
        j = int(np.argmax(sc))
        walk.append(j)
        used.add(j)
    walk.append(b)
    return walk


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
    V = view.vectors_of(rec, space, ids)
    return float(np.mean(1.0 - np.sum(V[1:] * V[:-1], axis=1)))
