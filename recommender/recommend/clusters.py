"""Clusters of a collection (k-means in a vector space), e.g. one playlist per region of the map.

:func:`collection_clusters` groups the tracks of an index with scikit-learn's
k-means on the L2-normalised vectors of a space (the vectors the map of
:func:`recommender.recommend.explore.collection_map` projects), and orders each
cluster from its most typical track (closest to the centre) outwards.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_int
from ..errors import ParameterError
from ..store.spaces import check_space
from . import view

__all__ = ["collection_clusters"]


def collection_clusters(rec, k: int, *, space: str = "embedding", random_state: int = 0) -> pd.DataFrame:
    """k-means clusters of every track of ``rec`` in ``space``.

    Parameters
    ----------
    rec : Recommender
    k : int
        Number of clusters, ``1 <= k <= n_tracks``.
    space : {'embedding', 'tags', 'both', 'similarity'}
        The vectors clustered (unit rows, so the Euclidean k-means groups by
        cosine similarity).
    random_state : int
        Seed of the k-means initialisation (the same index gives the same clusters).

    Returns
    -------
    pd.DataFrame
        One row per track, columns ``id`` (int), ``cluster`` (0 … k-1,
        numbered by size, largest first), ``distance`` (Euclidean distance
        to the cluster's centre, unit vectors: 0 … 2); sorted by cluster,
        then distance (the most typical track of each cluster first).

    Raises
    ------
    ParameterError
        ``k`` not an integer in ``[1, n_tracks]``, an unknown ``space``, or an
        index with no tracks.
    """
    check_space(space)
    ids, X = view.vectors(rec, space)
    n = len(ids)
    if n == 0:
        raise ParameterError(f"the index {rec.index_dir} holds no tracks to cluster")
    k = check_int("k", k, min=1, max=n)  # at most one cluster per track
    from sklearn.cluster import KMeans

    Xd = np.asarray(X, dtype=np.float64)
    km = KMeans(n_clusters=k, n_init=10, random_state=random_state).fit(Xd)
    labels = km.labels_
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(-sizes, kind="stable")  # old label of the new cluster 0, 1, …
    renumber = np.empty(k, dtype=np.int64)
    renumber[order] = np.arange(k)
    dist = np.linalg.norm(Xd - km.cluster_centers_[labels], axis=1)
    df = pd.DataFrame({"id": np.asarray(ids, dtype=np.int64), "cluster": renumber[labels], "distance": dist})
    return df.sort_values(["cluster", "distance", "id"], kind="stable").reset_index(drop=True)
