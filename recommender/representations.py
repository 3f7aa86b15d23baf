"""Track representations for neighbour search, built from what the catalog stores.

The catalog keeps, per track, the mean embedding and mean tag probabilities,
the per-patch embeddings and probabilities (float16) and the MIR
descriptors.  Everything here works from those arrays (NumPy only, no
TensorFlow, no new analysis), so a representation can be (re)built at index
time from the catalog.

Building blocks
---------------
* :func:`pool_patches` / :func:`pool_tracks` -- per-patch vectors to one
  vector per track: ``'mean'`` (the raw embedding), ``'std'``,
  ``'mean_std'`` (mean and standard deviation concatenated), ``'max'``,
  ``'weighted'`` (attention to given per-patch weights, e.g.
  :func:`confidence_weights`).
* :class:`CollectionNormalizer` -- collection-level normalisation before
  cosine: ``'center'``, ``'standardize'`` (per dimension), ``'whiten'``
  (PCA whitening with shrinkage).  The raw embedding of musicnn has a large
  shared component (every track's cosine to every other is high); removing
  it makes cosine compare what differs between tracks.
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
  similarity matrix (the index-backed versions live in
  :mod:`recommender.playlists`).

The recommended recipe (measured with ``benchmarks/bench_neighbours.py`` on
103 game soundtracks, 5 labels) is :func:`similarity_vectors`: mean and
standard deviation of the per-patch embeddings, each dimension standardised
over the collection, compared by cosine.  Its collection statistics
(:attr:`CollectionNormalizer.mean_`, ``scale_``) are what an index must keep
to map a new query into the same space.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> patches = [rng.normal(size=(16, 200)).astype(np.float32) for _ in range(5)]
>>> X, norm = similarity_vectors(patches)
>>> X.shape, norm.mean_.shape
((5, 400), (400,))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import ParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "POOLING_METHODS",
    "NORMALIZATION_METHODS",
    "l2_normalize",
    "pool_patches",
    "pool_tracks",
    "confidence_weights",
    "CollectionNormalizer",
    "WithinTrackProjection",
    "timbre_matrix",
    "TIMBRE_COLUMNS",
    "combine",
    "set_similarity",
    "set_similarity_matrix",
    "rerank_by_sets",
    "csls",
    "mutual_proximity",
    "similarity_vectors",
]

POOLING_METHODS = ("mean", "std", "mean_std", "max", "weighted")
NORMALIZATION_METHODS = ("none", "center", "standardize", "whiten")
#: Descriptor columns of the timbre summary (MFCC 0-19, mean and std).
TIMBRE_COLUMNS = [f"mfcc_{i}_{s}" for s in ("mean", "std") for i in range(20)]


def _as_matrix(X, name="X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ParameterError(f"{name}.shape={X.shape}: expected a 2-D array (n, d)")
    if not np.all(np.isfinite(X)):
        raise ParameterError(f"{name} contains NaN or infinite values")
    return X


def l2_normalize(X) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), contiguous float32."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.maximum(n, 1e-12)


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------
def confidence_weights(patch_probs) -> np.ndarray:
    """Per-patch weight = the patch's largest tag probability (how sure the model is).

    Parameters
    ----------
    patch_probs : array_like, shape (m, n_tags)

    Returns
    -------
    np.ndarray, float32 (m,)
    """
    P = _as_matrix(patch_probs, "patch_probs")
    return P.max(axis=1)


def pool_patches(patch_embeddings, *, method="mean_std", weights=None) -> np.ndarray:
    """One vector from the per-patch vectors of one track.

    Parameters
    ----------
    patch_embeddings : array_like, shape (m, d)
    method : {'mean', 'std', 'mean_std', 'max', 'weighted'}
        ``'mean_std'`` gives ``(2 d,)``: the mean, then the (population)
        standard deviation over patches; the others give ``(d,)``.
        ``'weighted'`` is the weighted mean with ``weights``.
    weights : array_like, shape (m,), optional
        Non-negative patch weights (``'weighted'`` only).

    Returns
    -------
    np.ndarray, float32
    """
    P = _as_matrix(patch_embeddings, "patch_embeddings")
    if len(P) == 0:
        raise ParameterError("patch_embeddings is empty: a track needs at least one patch")
    if method == "mean":
        return P.mean(axis=0)
    if method == "std":
        return P.std(axis=0)
    if method == "mean_std":
        return np.concatenate([P.mean(axis=0), P.std(axis=0)])
    if method == "max":
        return P.max(axis=0)
    if method == "weighted":
        if weights is None:
            raise ParameterError("method='weighted' needs weights (one per patch)")
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(w) != len(P) or np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ParameterError(f"weights: expected {len(P)} finite non-negative values, got shape {w.shape}")
        s = w.sum()
        w = np.full(len(P), 1.0 / len(P)) if s <= 0 else w / s
        return (w[:, None] * P).sum(axis=0).astype(np.float32)
    raise ParameterError(f"method={method!r}: must be one of {', '.join(POOLING_METHODS)}")


def pool_tracks(patch_embeddings: Sequence, *, method="mean_std", weights: Sequence | None = None) -> np.ndarray:
    """:func:`pool_patches` over many tracks: a list of ``(m_i, d)`` arrays to ``(n, d')``."""
    if weights is None:
        rows = [pool_patches(P, method=method) for P in patch_embeddings]
    else:
        rows = [pool_patches(P, method=method, weights=w) for P, w in zip(patch_embeddings, weights, strict=True)]
    if not rows:
        raise ParameterError("patch_embeddings: no tracks")
    return np.stack(rows).astype(np.float32)


# --------------------------------------------------------------------------
# Collection-level normalisation
# --------------------------------------------------------------------------
class CollectionNormalizer:
    """Collection-level normalisation of track vectors before cosine.

    Parameters
    ----------
    method : {'none', 'center', 'standardize', 'whiten'}
        ``'center'`` subtracts the collection mean; ``'standardize'`` also
        divides each dimension by its standard deviation; ``'whiten'``
        projects on the principal axes and divides by the square root of
        their variance plus ``shrinkage`` times the largest (``shrinkage=0``
        is full PCA whitening, which amplifies noise dimensions).
    n_components : int or None
        Whitening only: keep this many principal axes (default all).
    shrinkage : float
        Whitening only: variance floor as a fraction of the largest variance.

    Attributes
    ----------
    mean_ : np.ndarray (d,)
    scale_ : np.ndarray (d,)
        Per-dimension divisor (``'standardize'``; ones otherwise).
    components_ : np.ndarray (d, k) or None
        Whitening matrix (``'whiten'``): ``(X - mean_) @ components_``.
    n_features_in_ : int
    """

    def __init__(self, method="standardize", *, n_components=None, shrinkage=0.1):
        self.method = method
        self.n_components = n_components
        self.shrinkage = shrinkage

    def fit(self, X, y=None):
        if self.method not in NORMALIZATION_METHODS:
            raise ParameterError(f"method={self.method!r}: must be one of {', '.join(NORMALIZATION_METHODS)}")
        if not (isinstance(self.shrinkage, (int, float)) and self.shrinkage >= 0):
            raise ParameterError(f"shrinkage={self.shrinkage!r}: must be a non-negative number")
        X = _as_matrix(X).astype(np.float64)
        if len(X) < 2 and self.method != "none":
            raise ParameterError(f"X has {len(X)} row(s): collection statistics need at least 2 tracks")
        d = X.shape[1]
        self.n_features_in_ = d
        self.mean_ = X.mean(axis=0) if self.method != "none" else np.zeros(d)
        self.scale_ = np.ones(d)
        self.components_ = None
        if self.method == "standardize":
            sd = X.std(axis=0)
            # constant dimensions carry no information: leave them at 0 after centring
            self.scale_ = np.where(sd > 1e-8 * max(float(sd.max()), 1e-30), sd, 1.0)
        elif self.method == "whiten":
            Xc = X - self.mean_
            _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
            var = s**2 / len(X)
            k = len(var) if self.n_components is None else int(self.n_components)
            if not 1 <= k <= len(var):
                raise ParameterError(f"n_components={self.n_components!r}: must be in 1..{len(var)}")
            self.components_ = Vt[:k].T / np.sqrt(var[:k] + self.shrinkage * var[0] + 1e-12)
        self.mean_ = self.mean_.astype(np.float32)
        self.scale_ = self.scale_.astype(np.float32)
        if self.components_ is not None:
            self.components_ = self.components_.astype(np.float32)
        return self

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise ParameterError("CollectionNormalizer is not fitted: call fit(X) first")
        X = _as_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ParameterError(f"X has {X.shape[1]} columns, the normalizer was fitted on {self.n_features_in_}")
        Z = (X - self.mean_) / self.scale_
        if self.components_ is not None:
            Z = Z @ self.components_
        return np.ascontiguousarray(Z, dtype=np.float32)

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    # plain-data round trip (for catalog meta / index sidecars: JSON, no pickle)
    def to_dict(self) -> dict:
        if not hasattr(self, "mean_"):
            raise ParameterError("CollectionNormalizer is not fitted: nothing to save")
        return {
            "method": self.method,
            "n_components": self.n_components,
            "shrinkage": float(self.shrinkage),
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "components": None if self.components_ is None else self.components_.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "CollectionNormalizer":
        try:
            obj = cls(d["method"], n_components=d.get("n_components"), shrinkage=d.get("shrinkage", 0.1))
            obj.mean_ = np.asarray(d["mean"], dtype=np.float32)
            obj.scale_ = np.asarray(d["scale"], dtype=np.float32)
            comp = d.get("components")
            obj.components_ = None if comp is None else np.asarray(comp, dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise ParameterError(f"not a saved CollectionNormalizer ({type(e).__name__}: {e})") from None
        if obj.mean_.ndim != 1 or obj.scale_.shape != obj.mean_.shape or (
            obj.components_ is not None and obj.components_.shape[0] != len(obj.mean_)
        ):
            raise ParameterError("saved CollectionNormalizer has inconsistent shapes")
        obj.n_features_in_ = len(obj.mean_)
        return obj


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
        mats = [_as_matrix(P, "patch_embeddings[i]").astype(np.float64) for P in patch_embeddings]
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
        X = _as_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ParameterError(f"X has {X.shape[1]} columns, the projection was fitted on {self.n_features_in_}")
        return np.ascontiguousarray((X - self.mean_) @ self.components_, dtype=np.float32)

    def transform_tracks(self, patch_embeddings: Sequence) -> list:
        """Map every track's patches."""
        return [self.transform(P) for P in patch_embeddings]


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
    parts = [np.sqrt(w[k] / total) * l2_normalize(_as_matrix(b, k)) for k, b in blocks.items() if w[k] > 0]
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
    A, B = l2_normalize(_as_matrix(A, "A")), l2_normalize(_as_matrix(B, "B"))
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
    mats = [_as_matrix(P, "patch_embeddings[i]") for P in patch_embeddings]
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
    q = _as_matrix(query_patches, "query_patches")
    c = None if center is None else np.asarray(center, dtype=np.float32)
    sub = (lambda X: X) if c is None else (lambda X: X - c)
    s = np.array([set_similarity(sub(q), sub(_as_matrix(P)), method=method) for P in candidate_patches])
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


# --------------------------------------------------------------------------
# The recommended space
# --------------------------------------------------------------------------
def similarity_vectors(patch_embeddings: Sequence, *, normalizer: CollectionNormalizer | None = None):
    """The recommended neighbour space: standardised mean+std pooling of patch embeddings.

    Parameters
    ----------
    patch_embeddings : sequence of arrays (m_i, d)
        Every track's per-patch embeddings (as stored in the catalog).
    normalizer : CollectionNormalizer, optional
        Already fitted statistics (e.g. loaded from an index) to map new
        tracks or a query into an existing space; default: fit on these
        tracks.

    Returns
    -------
    X : np.ndarray float32 (n, 2 d)
        Unit vectors: inner product = cosine in the standardised space.
    normalizer : CollectionNormalizer
        The statistics used (store them with the index).
    """
    pooled = pool_tracks(patch_embeddings, method="mean_std")
    if normalizer is None:
        normalizer = CollectionNormalizer("standardize").fit(pooled)
    return l2_normalize(normalizer.transform(pooled)), normalizer
