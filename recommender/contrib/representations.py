"""Research representations: spaces measured against the production one, used by benchmarks.

Nothing in the library calls these; ``benchmarks/bench_neighbours.py`` and
``tests/test_representations.py`` do (see ``recommender/contrib/README.md``).
They build on the production pooling (:mod:`recommender.features.pooling`),
whose public names are re-exported here so that one module holds every
space the benchmarks compare.

* :class:`WithinTrackProjection` -- unsupervised adaptation to the
  collection: a linear map under which the patches of one track are close
  and the tracks spread (within-track covariance normalisation, the closed
  form of a linear "same track = positive pair" objective).
* :func:`timbre_matrix` -- MFCC mean/std summary from the descriptors.
* :func:`combine` -- weighted concatenation of L2-normalised blocks: the
  cosine in the result is the weighted mean of the per-block cosines.
* :func:`set_similarity`, :func:`set_similarity_matrix`,
  :func:`rerank_by_sets` -- segment-level matching between tracks (mean of
  best-match cosines between patches), to re-rank FAISS candidates.
* :func:`csls`, :func:`mutual_proximity` -- hubness correction of a full
  similarity matrix (the index-backed versions, which the library uses,
  live in :mod:`recommender.recommend.hubness`).
* :func:`database_augmentation` -- every vector averaged with its nearest
  neighbours in the collection (queries from outside with theirs).
* :func:`layer_patches`, :class:`PatchSpace` -- WCCN on the per-patch
  ``[pool, penultimate]``, then mean+std, standardised (the strongest space
  found: +14.0 points of precision@10 on the dev set, +16.6 on the second
  set with DBA k=3; see :mod:`recommender.features.pooling` for the table).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import ParameterError
from ..features.pooling import (  # noqa: F401  (re-exported: the production spaces, for comparison)
    LAYER_SUMMARY_INPUTS,
    NORMALIZATION_METHODS,
    POOLING_METHODS,
    CollectionNormalizer,
    check_matrix,
    confidence_weights,
    l2_normalize,
    layer_similarity_vectors,
    layer_summaries,
    layer_summary,
    pool_patches,
    pool_tracks,
    similarity_vectors,
)

logger = logging.getLogger(__name__)

__all__ = [
    "WithinTrackProjection",
    "timbre_matrix",
    "TIMBRE_COLUMNS",
    "combine",
    "set_similarity",
    "set_similarity_matrix",
    "rerank_by_sets",
    "csls",
    "mutual_proximity",
    "database_augmentation",
    "layer_patches",
    "PatchSpace",
]

#: Descriptor columns of the timbre summary (MFCC 0-19, mean and std).
TIMBRE_COLUMNS = [f"mfcc_{i}_{s}" for s in ("mean", "std") for i in range(20)]


# --------------------------------------------------------------------------
# Unsupervised adaptation: patches of one track close, tracks apart
# --------------------------------------------------------------------------
class WithinTrackProjection:
    """Linear map that shrinks within-track variation relative to between-track variation.

    Patches of the same track are treated as positives (no labels needed).
    With ``Sw`` the within-track covariance of the patches (regularised by
    ``reg`` times its mean eigenvalue), the map is ``x -> (x - mean_) @ L``
    with ``L Lᵀ = Sw⁻¹`` (within-class covariance normalisation): directions
    in which a track's own patches wander are shrunk, so what stays is what
    tells tracks apart.  ``'lda'`` additionally rotates onto the
    between-track discriminant axes and keeps ``n_components`` of them.

    Parameters
    ----------
    method : {'wccn', 'lda'}
    reg : float
        Ridge on ``Sw``, as a fraction of its mean eigenvalue (> 0).
    n_components : int or None
        ``'lda'`` only: axes kept (default all).

    Attributes
    ----------
    mean_ : np.ndarray (d,)
    components_ : np.ndarray (d, k)
    """

    def __init__(self, method="wccn", *, reg=1.0, n_components=None):
        self.method = method
        self.reg = reg
        self.n_components = n_components

    def fit(self, patch_embeddings: Sequence, y=None):
        if self.method not in ("wccn", "lda"):
            raise ParameterError(f"method={self.method!r}: must be 'wccn' or 'lda'")
        if not (isinstance(self.reg, (int, float)) and self.reg > 0):
            raise ParameterError(f"reg={self.reg!r}: must be a positive number")
        mats = [check_matrix(P, "patch_embeddings[i]").astype(np.float64) for P in patch_embeddings]
        if len(mats) < 2:
            raise ParameterError("WithinTrackProjection needs at least 2 tracks")
        allP = np.concatenate(mats)
        d = allP.shape[1]
        M = np.stack([P.mean(axis=0) for P in mats])
        W = np.concatenate([P - m for P, m in zip(mats, M)])
        Sw = W.T @ W / len(W)
        Sw += self.reg * max(np.trace(Sw) / d, 1e-12) * np.eye(d)
        self.mean_ = allP.mean(axis=0)
        if self.method == "wccn":
            L = np.linalg.cholesky(np.linalg.inv(Sw))
        else:
            import scipy.linalg

            B = M - self.mean_
            Sb = B.T @ B / len(B)
            ev, V = scipy.linalg.eigh(Sb, Sw)
            V = V[:, np.argsort(ev)[::-1]]
            k = d if self.n_components is None else int(self.n_components)
            L = V[:, :k]
        self.components_ = L.astype(np.float32)
        self.mean_ = self.mean_.astype(np.float32)
        self.n_features_in_ = d
        return self

    def transform(self, X) -> np.ndarray:
        """Map vectors (patches or pooled means), ``(m, d) -> (m, k)``."""
        if not hasattr(self, "components_"):
            raise ParameterError("WithinTrackProjection is not fitted: call fit(patch_embeddings) first")
        X = check_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ParameterError(f"X has {X.shape[1]} columns, the projection was fitted on {self.n_features_in_}")
        return np.ascontiguousarray((X - self.mean_) @ self.components_, dtype=np.float32)

    def transform_tracks(self, patch_embeddings: Sequence) -> list:
        """Map every track's patches."""
        return [self.transform(P) for P in patch_embeddings]

    # plain arrays (np.savez / np.load(allow_pickle=False)); the map is (d, k) floats,
    # too large for JSON at d = 1706
    def to_arrays(self, prefix="") -> dict:
        """Fitted state as ``{prefix + name: np.ndarray}`` (params as 0-d arrays)."""
        if not hasattr(self, "components_"):
            raise ParameterError("WithinTrackProjection is not fitted: nothing to save")
        return {
            prefix + "method": np.array(self.method),
            prefix + "reg": np.array(float(self.reg)),
            prefix + "n_components": np.array(-1 if self.n_components is None else int(self.n_components)),
            prefix + "mean": self.mean_,
            prefix + "components": self.components_,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping, prefix="") -> "WithinTrackProjection":
        """Inverse of :meth:`to_arrays`."""
        try:
            nc = int(arrays[prefix + "n_components"])
            obj = cls(str(arrays[prefix + "method"]), reg=float(arrays[prefix + "reg"]),
                      n_components=None if nc < 0 else nc)
            obj.mean_ = np.asarray(arrays[prefix + "mean"], dtype=np.float32)
            obj.components_ = np.asarray(arrays[prefix + "components"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise ParameterError(f"not a saved WithinTrackProjection ({type(e).__name__}: {e})") from None
        if obj.mean_.ndim != 1 or obj.components_.ndim != 2 or obj.components_.shape[0] != len(obj.mean_):
            raise ParameterError("saved WithinTrackProjection has inconsistent shapes")
        obj.n_features_in_ = len(obj.mean_)
        return obj


# --------------------------------------------------------------------------
# Timbre summary and combination of spaces
# --------------------------------------------------------------------------
def timbre_matrix(descriptors, columns=TIMBRE_COLUMNS) -> np.ndarray:
    """MFCC mean/std summary ``(n, 40)`` from a descriptors table (one row per track).

    Missing values (a track whose descriptors failed) become the column mean,
    so the track is neutral in this block rather than dropped.  Standardise
    it (:class:`CollectionNormalizer`) before cosine: the MFCC scales differ
    by orders of magnitude.
    """
    missing = [c for c in columns if c not in getattr(descriptors, "columns", [])]
    if missing:
        raise ParameterError(f"descriptors lack column(s) {missing[:3]}{'...' if len(missing) > 3 else ''}")
    X = descriptors[list(columns)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        colmean = np.nanmean(np.where(bad, np.nan, X), axis=0)
        X = np.where(bad, np.nan_to_num(colmean)[None, :], X)
    return X.astype(np.float32)


def combine(blocks: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Weighted concatenation of L2-normalised blocks.

    Each block (``(n, d_i)``, rows are tracks) is L2-normalised per row and
    scaled by ``sqrt(w_i / sum w)``, so the rows of the result have unit
    norm and the cosine between two rows is ``sum_i w_i cos_i / sum w``.

    Parameters
    ----------
    blocks : mapping name -> array (n, d_i)
    weights : mapping name -> float >= 0, optional
        Default: equal weights.  Blocks with weight 0 are left out.

    Returns
    -------
    np.ndarray, float32 (n, sum of d_i over blocks with weight > 0)
    """
    if not blocks:
        raise ParameterError("blocks is empty")
    weights = {k: 1.0 for k in blocks} if weights is None else dict(weights)
    unknown = set(weights) - set(blocks)
    if unknown:
        raise ParameterError(f"weights for unknown block(s) {sorted(unknown)}; blocks are {sorted(blocks)}")
    w = {k: float(weights.get(k, 0.0)) for k in blocks}
    if any(v < 0 or not np.isfinite(v) for v in w.values()) or sum(w.values()) <= 0:
        raise ParameterError(f"weights={weights}: must be finite, >= 0, and not all 0")
    total = sum(w.values())
    n = {len(np.asarray(b)) for b in blocks.values()}
    if len(n) != 1:
        raise ParameterError(f"blocks have different numbers of rows: {sorted(n)}")
    parts = [np.sqrt(w[k] / total) * l2_normalize(check_matrix(b, k)) for k, b in blocks.items() if w[k] > 0]
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


# --------------------------------------------------------------------------
# Segment-level matching
# --------------------------------------------------------------------------
def set_similarity(A, B, *, method="mean_max") -> float:
    """Similarity of two tracks from their patch vectors (rows, cosine).

    ``'mean_max'``: symmetric mean of best-match cosines (each patch of A to
    its closest patch of B and vice versa, averaged) -- two tracks are close
    when every section of each has a counterpart in the other.  ``'mean'``:
    mean of all pairwise cosines.
    """
    A, B = l2_normalize(check_matrix(A, "A")), l2_normalize(check_matrix(B, "B"))
    C = A @ B.T
    if method == "mean_max":
        return float(0.5 * (C.max(axis=1).mean() + C.max(axis=0).mean()))
    if method == "mean":
        return float(C.mean())
    raise ParameterError(f"method={method!r}: must be 'mean_max' or 'mean'")


def set_similarity_matrix(patch_embeddings: Sequence, *, method="mean_max", center=True) -> np.ndarray:
    """``(n, n)`` :func:`set_similarity` between all tracks.

    ``center`` subtracts the mean patch of the collection first (as
    :class:`CollectionNormalizer` ``'center'`` does for track vectors).
    Cost: one ``(N, N)`` product over all N patches, in row blocks.
    """
    mats = [check_matrix(P, "patch_embeddings[i]") for P in patch_embeddings]
    allP = np.concatenate(mats)
    if center:
        allP = allP - allP.mean(axis=0)
    allP = l2_normalize(allP)
    lens = np.array([len(P) for P in mats])
    bounds = np.concatenate([[0], np.cumsum(lens)])
    n = len(mats)
    S = np.empty((n, n), dtype=np.float64)
    for i in range(n):
        C = allP[bounds[i] : bounds[i + 1]] @ allP.T  # (m_i, N)
        if method == "mean_max":
            mx = np.maximum.reduceat(C, bounds[:-1], axis=1)  # (m_i, n): best match in each track
            S[i] = mx.mean(axis=0)
        elif method == "mean":
            S[i] = np.add.reduceat(C, bounds[:-1], axis=1).sum(axis=0) / (lens * len(C))
        else:
            raise ParameterError(f"method={method!r}: must be 'mean_max' or 'mean'")
    return 0.5 * (S + S.T)


def rerank_by_sets(query_patches, candidate_patches: Sequence, scores, *, alpha=0.5, method="mean_max",
                   center=None):
    """Re-rank FAISS candidates by blending their cosine with segment-level similarity.

    Parameters
    ----------
    query_patches : array_like (m, d)
    candidate_patches : sequence of arrays (m_j, d)
    scores : array_like (c,)
        Cosine of each candidate from the vector index.
    alpha : float in [0, 1]
        Weight of the set similarity (0 keeps the FAISS order).
    center : array_like (d,), optional
        Collection mean patch to subtract first.

    Returns
    -------
    order : np.ndarray int64 (c,)
        Candidate positions, best first.
    blended : np.ndarray float64 (c,)
        Blended scores in that order.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ParameterError(f"alpha={alpha!r}: must be in [0, 1]")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(candidate_patches):
        raise ParameterError(f"{len(scores)} scores for {len(candidate_patches)} candidates")
    q = check_matrix(query_patches, "query_patches")
    c = None if center is None else np.asarray(center, dtype=np.float32)
    sub = (lambda X: X) if c is None else (lambda X: X - c)
    s = np.array([set_similarity(sub(q), sub(check_matrix(P)), method=method) for P in candidate_patches])
    blended = (1.0 - alpha) * scores + alpha * s
    order = np.argsort(-blended, kind="stable")
    return order, blended[order]


# --------------------------------------------------------------------------
# Hubness correction of a full similarity matrix
# --------------------------------------------------------------------------
def csls(S, *, k=10) -> np.ndarray:
    """CSLS: ``2 S[i, j] - r[i] - r[j]``, ``r`` = mean similarity to the ``k`` nearest others."""
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ParameterError(f"S.shape={S.shape}: expected a square similarity matrix")
    n = len(S)
    kk = max(1, min(int(k), n - 1))
    T = S.copy()
    np.fill_diagonal(T, -np.inf)
    r = -np.sort(-T, axis=1)[:, :kk].mean(axis=1)
    return 2 * S - r[:, None] - r[None, :]


def mutual_proximity(S) -> np.ndarray:
    """Mutual Proximity (Gaussian): ``P(S_i <= s) * P(S_j <= s)`` with per-track normal fits."""
    from scipy.special import ndtr

    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or len(S) < 3:
        raise ParameterError(f"S.shape={S.shape}: expected a square similarity matrix of at least 3 tracks")
    off = ~np.eye(len(S), dtype=bool)
    mu = np.array([row[m].mean() for row, m in zip(S, off)])
    sd = np.maximum(np.array([row[m].std() for row, m in zip(S, off)]), 1e-9)
    return ndtr((S - mu[:, None]) / sd[:, None]) * ndtr((S - mu[None, :]) / sd[None, :])


def database_augmentation(X, *, k=3, database=None) -> np.ndarray:
    """Database-side augmentation: every vector averaged with its ``k`` nearest neighbours.

    Row ``i`` becomes ``sum_r w_r x_(r)`` over itself (``r = 0``) and its
    ``k`` closest rows by cosine (``r = 1..k``), with linearly decreasing
    weights ``w_r = (k + 1 - r) / (k + 1)``, then L2-normalised.  Tracks of
    a tight group pull towards its centre, so the group's other members move
    up each other's lists.  Unsupervised (no labels).  An index applies it
    to its vectors at build time (it needs the whole collection: one k-NN
    search per track); a query from outside the index is augmented the same
    way with its neighbours in the index (``database=``; one extra search).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Vectors compared by cosine: the collection itself, or queries.
    k : int
        Neighbours averaged in (``0`` returns the normalised input).
    database : array_like, shape (N, d), optional
        Collection to take the neighbours from (its rows *not* augmented:
        pass the raw vectors of the index).  Default: ``X`` itself, each row
        excluding itself from its neighbours.

    Returns
    -------
    np.ndarray, float32 (n, d), unit rows.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> database_augmentation(X, k=1).shape
    (3, 2)
    """
    X = l2_normalize(check_matrix(X))
    own = database is None
    D = X if own else l2_normalize(check_matrix(database, "database"))
    if D.shape[1] != X.shape[1]:
        raise ParameterError(f"database has {D.shape[1]} columns, X {X.shape[1]}")
    limit = len(D) - 1 if own else len(D)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= limit:
        raise ParameterError(f"k={k!r}: must be an integer in 0..{limit}")
    if k == 0:
        return X
    S = X @ D.T
    if own:
        np.fill_diagonal(S, -np.inf)  # a row is not its own neighbour
    N = np.argsort(-S, axis=1, kind="stable")[:, :k]
    w = ((k + 1 - np.arange(k + 1)) / (k + 1.0)).astype(np.float32)
    return l2_normalize(w[0] * X + np.einsum("r,nrd->nd", w[1:], D[N]))


# --------------------------------------------------------------------------
# The strongest space found: WCCN on per-patch [pool, penultimate]
# --------------------------------------------------------------------------
def layer_patches(patch_pool: Sequence, patch_embeddings: Sequence) -> list:
    """Per-patch ``[pool, penultimate]`` of every track.

    Two lists of ``(m_i, d)`` arrays (same patches) to one list of
    ``(m_i, d_pool + d_emb)`` arrays, the input of :class:`PatchSpace`.
    """
    if len(patch_pool) != len(patch_embeddings):
        raise ParameterError(f"{len(patch_pool)} tracks of pool vectors, {len(patch_embeddings)} of embeddings")
    out = []
    for a, b in zip(patch_pool, patch_embeddings):
        A, B = check_matrix(a, "patch_pool[i]"), check_matrix(b, "patch_embeddings[i]")
        if len(A) != len(B):
            raise ParameterError(
                f"a track has {len(A)} pool vectors and {len(B)} embeddings: expected the same patches")
        out.append(np.concatenate([A, B], axis=1))
    return out


class PatchSpace:
    """Neighbour space from per-patch vectors, adapted to the collection without labels.

    1. every patch dimension standardised over all the collection's patches;
    2. :class:`WithinTrackProjection` (WCCN): directions in which a track's
       own patches wander are shrunk (tracks are the classes, no labels);
    3. mean and standard deviation over each track's projected patches,
       each dimension standardised over the tracks; compared by cosine.

    Fed with :func:`layer_patches` (musicnn's ``pool`` + ``penultimate``,
    1706-d per patch) and followed by :func:`database_augmentation` with
    ``k=3``, this is the strongest space measured by
    ``benchmarks/bench_neighbours.py --layers`` (precision@10 +14.0 points
    over the raw mean embedding at 8 patches a track, paired CI +9.2..+18.5;
    +16.6 on a second collection).  Unlike :func:`layer_similarity_vectors`
    it needs the per-patch vectors of every track when the index is built,
    and its statistics include a ``(d, d)`` matrix (11.6 MB at d = 1706).

    Parameters
    ----------
    reg : float
        Ridge of the within-track covariance (see :class:`WithinTrackProjection`).

    Attributes
    ----------
    patch_normalizer_ : CollectionNormalizer   ``'standardize'``, d each
    projection_ : WithinTrackProjection        ``mean_`` (d,), ``components_`` (d, d)
    track_normalizer_ : CollectionNormalizer   ``'standardize'``, 2 d each

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> patches = [rng.normal(size=(8, 30)) for _ in range(6)]
    >>> space = PatchSpace().fit(patches)
    >>> space.transform(patches).shape
    (6, 60)
    """

    def __init__(self, *, reg=1.0):
        self.reg = reg

    def fit(self, patch_vectors: Sequence, y=None):
        mats = [check_matrix(P, "patch_vectors[i]") for P in patch_vectors]
        if len(mats) < 2 or any(len(P) == 0 for P in mats):
            raise ParameterError("PatchSpace needs at least 2 tracks, each with at least one patch")
        self.patch_normalizer_ = CollectionNormalizer("standardize").fit(np.concatenate(mats))
        Z = [self.patch_normalizer_.transform(P) for P in mats]
        self.projection_ = WithinTrackProjection("wccn", reg=self.reg).fit(Z)
        pooled = pool_tracks(self.projection_.transform_tracks(Z), method="mean_std")
        self.track_normalizer_ = CollectionNormalizer("standardize").fit(pooled)
        self.n_features_in_ = mats[0].shape[1]
        return self

    def transform(self, patch_vectors: Sequence) -> np.ndarray:
        """Unit track vectors ``(n, 2 d)`` (inner product = cosine)."""
        if not hasattr(self, "track_normalizer_"):
            raise ParameterError("PatchSpace is not fitted: call fit(patch_vectors) first")
        rows = []
        for P in patch_vectors:
            Z = self.projection_.transform(self.patch_normalizer_.transform(P))
            rows.append(pool_patches(Z, method="mean_std"))
        if not rows:
            raise ParameterError("patch_vectors: no tracks")
        return l2_normalize(self.track_normalizer_.transform(np.stack(rows)))

    def fit_transform(self, patch_vectors: Sequence, y=None) -> np.ndarray:
        return self.fit(patch_vectors).transform(patch_vectors)

    def to_arrays(self) -> dict:
        """Fitted statistics as plain arrays, for ``np.savez`` (no pickle)."""
        if not hasattr(self, "track_normalizer_"):
            raise ParameterError("PatchSpace is not fitted: nothing to save")
        out = {"reg": np.array(float(self.reg))}
        for name in ("patch_normalizer_", "track_normalizer_"):
            n = getattr(self, name)
            out[name + "mean"], out[name + "scale"] = n.mean_, n.scale_
        out.update(self.projection_.to_arrays("projection_"))
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping) -> "PatchSpace":
        """Inverse of :meth:`to_arrays` (e.g. from ``np.load(path, allow_pickle=False)``)."""
        try:
            obj = cls(reg=float(arrays["reg"]))
            for name in ("patch_normalizer_", "track_normalizer_"):
                setattr(obj, name, CollectionNormalizer.from_dict({
                    "method": "standardize", "mean": np.asarray(arrays[name + "mean"]),
                    "scale": np.asarray(arrays[name + "scale"])}))
        except (KeyError, TypeError, ValueError) as e:
            raise ParameterError(f"not a saved PatchSpace ({type(e).__name__}: {e})") from None
        obj.projection_ = WithinTrackProjection.from_arrays(arrays, "projection_")
        d = len(obj.patch_normalizer_.mean_)
        k = obj.projection_.components_.shape[1]
        if obj.projection_.n_features_in_ != d or len(obj.track_normalizer_.mean_) != 2 * k:
            raise ParameterError("saved PatchSpace has inconsistent shapes")
        obj.n_features_in_ = d
        return obj
