"""The vector spaces of an index: what each one is, and how catalog vectors become search vectors.

A *space* names the vectors a FAISS index of the index directory holds
(``<space>.faiss``), one row per track:

``'embedding'``
    the mean CNN embedding as stored (``'embedding'`` vectors of the catalog);
``'tags'``
    the tag probabilities as stored;
``'both'``
    :func:`both` of the two: cosine in it is the mean of the two cosines;
``'similarity'``
    the default of queries and playlists.  The *layer space*
    (:func:`recommender.features.pooling.layer_similarity_vectors`): per
    track, mean and standard deviation over its patches of musicnn's
    ``pool`` (1506) and ``penultimate`` (200) layers, each dimension
    standardised over the collection (:func:`similarity_fit`), then L2
    normalised.  Catalogs written before the layer summary was stored (or
    larger than :data:`LAYER_SPACE_MAX_TRACKS`) use the mean and spread of
    the patch embeddings instead (400-d).

This module reads a :class:`~recommender.store.catalog.Catalog` and knows
nothing of FAISS files or of the facade; the facade
(:class:`recommender.Recommender`) caches the results per catalog generation.
"""

from __future__ import annotations

import os

import numpy as np

from .._utils import check_choice, unit_rows
from ..errors import CatalogError, NotInIndexError, RecommenderError

__all__ = [
    "SPACES",
    "LAYER_SPACE_MAX_TRACKS",
    "LAYER_PCA_ABOVE",
    "LAYER_PCA_DIMS",
    "check_space",
    "both",
    "uses_layers",
    "similarity_input",
    "similarity_fit",
    "space_vectors",
    "space_dim",
    "index_is_current",
    "remove_index",
]

#: The spaces an index holds a FAISS file for (see the module docstring).
#: ``'similarity'`` (the default of :meth:`Recommender.similar` and the
#: playlists) is the *layer space*,
#: :func:`recommender.features.pooling.layer_similarity_vectors`: per track,
#: mean and standard deviation over its patches of musicnn's ``pool`` (1506)
#: and ``penultimate`` (200) layers, each dimension standardised over the
#: collection, cosine.  On the dev set (103 tracks, 5 labels, 8 patches a
#: track) precision@10 by label is 8.5 points above the raw mean embedding
#: (paired 95 % CI +4.7 to +12.6), and 7.0 (+3.3 to +10.8) on a second set of
#: 92 soundtracks (``benchmarks/bench_neighbours.py --layers``); the pool
#: layer comes from the same forward pass (cost ratio 1.003).  Catalogs
#: written before it was stored use mean and standard deviation of the
#: patch embeddings until their tracks are re-analysed by ``update``.
#: On the confirmation half of the dev collection (121 tracks, 7 soundtracks
#: nothing was chosen on; ``benchmarks/retrieval_protocol.py``) it gives 0.486;
#: none of the 14 variants tried for issue #17 beat it there (README "Measured").
SPACES = ("embedding", "tags", "both", "similarity")
#: Above this many tracks the ``'similarity'`` space falls back to the 400-d
#: mean and spread of the embeddings: the layer space keeps 3412 floats a
#: track (13.6 KB; 2.7 GB at this size) and is read whole to build FAISS.
LAYER_SPACE_MAX_TRACKS = 200_000
#: Above this many tracks the standardised layer space is projected on its
#: ``LAYER_PCA_DIMS`` principal axes before FAISS (the dev set kept +8.3 of
#: its +8.5 points at 32 axes): a 100k-track FAISS file of 100 MB instead
#: of 1.4 GB keeps cold queries fast.
LAYER_PCA_ABOVE = 20_000
LAYER_PCA_DIMS = 256


def check_space(space) -> str:
    """``space`` if it is one of :data:`SPACES`.

    Raises
    ------
    ParameterError
        ``"space='x': must be one of 'embedding', 'tags', 'both', 'similarity'"``.
    """
    return check_choice("space", space, SPACES)


def both(emb: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """The ``'both'`` space: unit embedding and unit tag vector side by side, over sqrt(2).

    Parameters
    ----------
    emb : np.ndarray, (n, d_emb) or (d_emb,)
    tags : np.ndarray, (n, n_tags) or (n_tags,)

    Returns
    -------
    np.ndarray, float32, (n, d_emb + n_tags) or (d_emb + n_tags,)
        Unit rows (for non-zero inputs); the cosine of two rows is the mean of
        their embedding cosine and their tag cosine.
    """
    emb, tags = np.asarray(emb), np.asarray(tags)
    if emb.ndim == 1:  # one track: the same arithmetic as a row (np.linalg.norm of a 1-d array sums differently)
        return both(emb[None], tags[None])[0]
    return np.concatenate([unit_rows(emb), unit_rows(tags)], axis=-1) / np.sqrt(2.0, dtype=np.float32)


def _similarity_parts(cat):
    """(ids, mean embedding, patch std) of every track; the std is read from
    the ``embedding_std`` vectors, or computed from the stored patches for
    tracks indexed before it was stored (zeros for a track without patches)."""
    ids, E = cat.vectors("embedding")
    sids, S = cat.vectors("embedding_std") if "embedding_std" in cat.spaces() else (np.zeros(0, np.int64), None)
    pos = {int(t): i for i, t in enumerate(sids)}
    Sd = np.zeros_like(E)
    for j, t in enumerate(ids):
        i = pos.get(int(t))
        if i is not None:
            Sd[j] = S[i]
            continue
        try:
            Sd[j] = cat.patch_vectors(int(t))["embeddings"].std(axis=0)
        except NotInIndexError:
            pass
    return ids, E, Sd


def uses_layers(cat) -> bool:
    """Whether ``'similarity'`` is the layer space in ``cat``: every track has its
    layer summary and there are at most :data:`LAYER_SPACE_MAX_TRACKS`."""
    n = cat.count_vectors("layer_summary")
    return 0 < n <= LAYER_SPACE_MAX_TRACKS and n == cat.count_vectors("embedding")


def similarity_input(cat):
    """The raw matrix the ``'similarity'`` space standardises.

    Returns
    -------
    ids : np.ndarray, int64, (n,)
    X : np.ndarray, float32, (n, d)
        Layer summaries (d = 3412), or mean embedding and patch spread side
        by side (d = 400) for catalogs without them.
    layers : bool
        Whether ``X`` holds layer summaries (:func:`uses_layers`).
    """
    if uses_layers(cat):
        return (*cat.vectors("layer_summary"), True)
    ids, E, Sd = _similarity_parts(cat)
    return ids, np.concatenate([E, Sd], axis=1), False


def similarity_fit(X, layers: bool):
    """The fitted normaliser of the ``'similarity'`` space for the raw matrix ``X``.

    Parameters
    ----------
    X : np.ndarray, (n, d)
        :func:`similarity_input`'s matrix.
    layers : bool
        Whether ``X`` holds layer summaries; above :data:`LAYER_PCA_ABOVE`
        rows they are projected on ``min(LAYER_PCA_DIMS, d)`` principal axes.

    Returns
    -------
    recommender.features.pooling.CollectionNormalizer
        Fitted (``'standardize'``, or ``'pca'`` as above).
    """
    from ..features.pooling import CollectionNormalizer

    if layers and len(X) > LAYER_PCA_ABOVE:
        return CollectionNormalizer("pca", n_components=min(LAYER_PCA_DIMS, X.shape[1])).fit(X)
    return CollectionNormalizer("standardize").fit(X)


def space_vectors(cat, space: str, *, with_normalizer: bool = False):
    """Every track's vector in ``space``, as the FAISS index of the space holds it
    (before the index's own L2 normalisation).

    Parameters
    ----------
    cat : recommender.store.catalog.Catalog
        Read it inside ``cat.snapshot()`` to pair the result with a generation.
    space : str
        One of :data:`SPACES`.
    with_normalizer : bool
        Also return the normaliser fitted for ``'similarity'`` (``None`` for the
        other spaces and for fewer than two tracks).

    Returns
    -------
    ids : np.ndarray, int64, (n,)
    X : np.ndarray, float32, (n, d)
    normalizer : CollectionNormalizer or None
        Only with ``with_normalizer=True``.

    Raises
    ------
    ParameterError
        Unknown ``space``.
    CatalogError
        ``'both'`` when the embedding and tag vectors cover different tracks.
    """
    check_space(space)
    norm = None
    if space == "similarity":
        from ..features.pooling import l2_normalize

        ids, X, layers = similarity_input(cat)
        if len(ids) < 2:
            X = l2_normalize(X)
        else:
            norm = similarity_fit(X, layers)
            X = l2_normalize(norm.transform(X))
    elif space == "both":
        ids, E = cat.vectors("embedding")
        ids2, T = cat.vectors("tags", ids=ids)
        if not np.array_equal(ids, ids2):
            raise CatalogError(cat.path, "embedding and tag vectors do not cover the same tracks")
        X = both(E, T)
    else:
        ids, X = cat.vectors(space)
    return (ids, X, norm) if with_normalizer else (ids, X)


def space_dim(cat, space: str) -> int | None:
    """Dimension of ``space``'s vectors in ``cat`` (from the catalog's recorded dims;
    ``None`` when the catalog does not know it yet).

    Raises
    ------
    ParameterError
        Unknown ``space``.
    """
    check_space(space)
    dims = cat.get_meta("dims") or {}
    if space == "both":
        return (dims["embedding"] + dims["tags"]) if "embedding" in dims and "tags" in dims else None
    if space == "similarity":
        if uses_layers(cat):
            d = dims.get("layer_summary")
            if d and cat.count_vectors("layer_summary") > LAYER_PCA_ABOVE:
                return min(LAYER_PCA_DIMS, d)
            return d
        return 2 * dims["embedding"] if "embedding" in dims else None
    return dims.get(space)


def index_is_current(path, generation: int, *, space: str | None = None) -> bool:
    """Whether the FAISS file ``path`` exists and its sidecar records vectors ``generation``
    (and, with ``space``, whether its neighbour lists are written and match it:
    :func:`recommender.store.neighbours.lists_are_current`)."""
    from .faiss_index import VectorIndex
    from .neighbours import lists_are_current

    try:
        side = VectorIndex.read_sidecar(path)
    except (OSError, RecommenderError):
        return False
    current = os.path.exists(path) and side.get("generation") == generation
    return current and (space is None or lists_are_current(path, space))


def remove_index(path) -> None:
    """Delete the FAISS file ``path``, its ``.json`` sidecar and its neighbour lists (missing ones are fine)."""
    from .neighbours import neighbours_path

    for name in (os.fspath(path), os.fspath(path) + ".json", neighbours_path(path)):
        try:
            os.remove(name)
        except FileNotFoundError:
            pass
