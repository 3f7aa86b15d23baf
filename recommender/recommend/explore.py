"""Collection analysis: the map of a collection, genre/mood profiles, closest pairs, duplicates.

All functions read an existing index (no TensorFlow), through the shared
per-generation view (:mod:`recommender.recommend.view`).  Figures are drawn by
:mod:`recommender.viz.collection` (matplotlib, imported only when a figure is
drawn; no global backend switch).

* :func:`collection_map` -- 2-D PCA or t-SNE map of the tracks, coloured by
  top genre, artist, album or folder; a PNG and a DataFrame of coordinates.
* :func:`tag_groups`, :func:`group_profiles`, :func:`plot_profiles` -- per-album
  or per-artist mean tag probabilities for one group of tags (genre, mood,
  instruments/voice, era).
* :func:`closest_pairs` -- the most similar pairs of tracks in the collection.
* :func:`near_duplicates` -- the same recording twice (same content hash, the
  same acoustic fingerprint: another encoding, a trimmed copy; near-identical
  embeddings only for tracks without a fingerprint;
  :mod:`recommender.recommend.recordings`).
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import pandas as pd

from .._utils import check_choice, check_int, check_number
from ..errors import ParameterError
from ..analysis import profiles as _profiles
from ..store.spaces import check_space
from ..viz.collection import plot_profiles  # noqa: F401  (re-exported; matplotlib is imported when drawing)
from . import recordings, view
from .exclusions import excluded_ids
from .recordings import DUPLICATE_COSINE

logger = logging.getLogger(__name__)

__all__ = [
    "TAG_GROUPS",
    "tag_groups",
    "tag_frame",
    "group_labels",
    "group_profiles",
    "plot_profiles",
    "collection_map",
    "closest_pairs",
    "near_duplicates",
]

#: Tag groups, in display order (the grouping of :mod:`recommender.profiles`).
TAG_GROUPS = _profiles.GROUPS


def tag_groups(tags) -> dict:
    """Group tag names into genre, mood, instruments (incl. voice), era and other.

    Calls :func:`recommender.analysis.profiles.tag_groups` (the one grouping
    table of the package); unlike it, every group of :data:`TAG_GROUPS` is
    present here (possibly as an empty list).

    Examples
    --------
    >>> tag_groups(["rock", "Mellow", "guitar", "80s", "xyz"])
    {'genre': ['rock'], 'mood': ['Mellow'], 'instruments': ['guitar'], 'era': ['80s'], 'other': ['xyz']}
    """
    groups = _profiles.tag_groups(list(tags))
    return {g: groups.get(g, []) for g in TAG_GROUPS}


def tag_frame(rec) -> pd.DataFrame:
    """Tag probabilities of every track: index track id, one column per tag."""
    tags = rec.catalog.get_meta("tags")
    ids, T = rec.catalog.vectors("tags")
    if not tags or len(tags) != T.shape[1]:
        tags = [f"tag{i}" for i in range(T.shape[1])]
    return pd.DataFrame(T, index=pd.Index(ids, name="id"), columns=list(tags))


def group_labels(rec, by="album") -> pd.Series:
    """Grouping label of every track (index id).

    ``by``: ``'album'`` or ``'artist'`` (the file tags; untagged tracks get
    ``'(unknown)'``; an album without a tag falls back to its folder name as
    stored when indexing), ``'folder'`` (name of the parent folder),
    ``'genre'`` (the most probable genre tag), or a mapping/Series from
    track id to label.
    """
    meta = view.metadata(rec)
    if isinstance(by, (dict, pd.Series)):
        s = pd.Series(by)
        return pd.Series([s.get(i, "(unknown)") for i in meta.index], index=meta.index, name="label")
    if by in ("album", "artist"):
        vals = [v.strip() if isinstance(v, str) and v.strip() else "(unknown)" for v in meta[by]]
        # spellings that differ only in case are one album/artist (as in the playlists' caps):
        # show the most frequent spelling
        spelling = {}
        for v, c in pd.Series(vals).value_counts().items():
            spelling.setdefault(v.casefold(), v)
        return pd.Series([spelling[v.casefold()] for v in vals], index=meta.index, name=by)
    if by == "folder":
        vals = [os.path.basename(os.path.dirname(p)) or "(root)" for p in meta["path"]]
        return pd.Series(vals, index=meta.index, name="folder")
    if by == "genre":
        tf = tag_frame(rec)
        genres = tag_groups(tf.columns)["genre"] or list(tf.columns)
        top = tf[genres].idxmax(axis=1)
        return top.reindex(meta.index).fillna("(unknown)").rename("genre")
    raise ParameterError(f"by={by!r}: must be 'album', 'artist', 'folder', 'genre' or a mapping id -> label")


def group_profiles(rec, by="album", *, group="genre", top=None) -> pd.DataFrame:
    """Mean tag probabilities per album (or artist, folder…) for one group of tags.

    Parameters
    ----------
    rec : Recommender
    by : {'album', 'artist', 'folder'} or mapping
        See :func:`group_labels`.
    group : {'genre', 'mood', 'instruments', 'era', 'other', 'all'}
        Which tags (see :func:`tag_groups`).
    top : int, optional
        Keep only the ``top`` tags with the highest mean over the collection.

    Returns
    -------
    pd.DataFrame
        Index: the labels (sorted by name), named after ``by``; columns: the
        tags, strongest over the collection first; values: mean probability.
        ``df.attrs['n_tracks']`` holds the track count per label.

    Examples
    --------
    >>> group_profiles(rec, "album", group="mood", top=5).round(2)   # doctest: +SKIP
    """
    tf = tag_frame(rec)
    if group == "all":
        cols = list(tf.columns)
    else:
        groups = tag_groups(tf.columns)
        if group not in groups:
            raise ParameterError(f"group={group!r}: must be one of {', '.join(TAG_GROUPS)} or 'all'")
        cols = groups[group]
        if not cols:
            raise ParameterError(f"group={group!r}: this model has no {group} tags")
    labels = group_labels(rec, by).reindex(tf.index)
    sub = tf[cols]
    order = sub.mean(axis=0).sort_values(ascending=False, kind="stable").index
    top = check_int("top", top, allow_none=True)
    if top is not None:
        order = order[:top]
    df = sub[order].groupby(labels.values).mean().sort_index()
    df.index.name = labels.name if isinstance(labels.name, str) else "label"
    df.columns.name = "tag"
    df.attrs["n_tracks"] = labels.value_counts().to_dict()
    return df


def profiles(rec, by="album", *, group="genre", top=None) -> pd.DataFrame:
    """Deprecated name of :func:`group_profiles` (goes in the next release)."""
    warnings.warn("recommender.recommend.explore.profiles is deprecated: use group_profiles",
                  DeprecationWarning, stacklevel=2)
    return group_profiles(rec, by, group=group, top=top)


def collection_map(
    rec,
    out=None,
    *,
    method: str = "pca",
    color_by="genre",
    space: str = "embedding",
    random_state: int = 0,
    perplexity: float | None = None,
    max_legend: int = 15,
    annotate: bool = False,
    exclusions=None,
    excluded: str = "drop",
) -> pd.DataFrame:
    """A 2-D map of the collection (PCA or t-SNE), optionally saved as PNG.

    Parameters
    ----------
    rec : Recommender
    out : path-like, optional
        PNG to write (none when ``None``).
    method : {'pca', 'tsne'}
        PCA (fast, linear, global layout) or t-SNE (scikit-learn; local
        neighbourhoods; O(n log n) but slow beyond ~50k tracks).
    color_by : {'genre', 'artist', 'album', 'folder'} or mapping
        Colour of each point (see :func:`group_labels`); the ``max_legend``
        most frequent labels get their own colour, the rest are grey
        ``'other'``.
    space : {'embedding', 'tags', 'both'}
    random_state : int
    perplexity : float, optional
        t-SNE perplexity (default ``min(30, (n - 1) / 3)``).
    annotate : bool
        Write each track's title next to its point (small collections).
    exclusions : Exclusions or mapping, optional
        Path globs, tags and durations of tracks to keep off the map
        (:class:`recommender.recommend.exclusions.Exclusions`); banned tracks
        are always treated the same way.
    excluded : {'drop', 'mark'}
        ``'drop'`` (default): excluded tracks are left out (the projection is
        fitted without them).  ``'mark'``: they stay, with the label
        ``'(excluded)'`` and ``excluded=True``.

    Returns
    -------
    pd.DataFrame
        Columns ``id, x, y, label, artist, album, title, path`` (plus a bool
        ``excluded`` with ``excluded='mark'``).
    """
    check_choice("method", method, ("pca", "tsne"))
    check_choice("excluded", excluded, ("drop", "mark"))
    check_space(space)
    ids, X = view.vectors(rec, space)
    gone = excluded_ids(rec, exclusions)
    hidden = np.fromiter((int(i) in gone for i in ids), dtype=bool, count=len(ids))
    if excluded == "drop" and hidden.any():
        ids, X, hidden = ids[~hidden], X[~hidden], hidden[~hidden]
    n = len(ids)
    if n < 2:
        left = f" ({len(gone)} excluded or banned)" if gone else ""
        raise ParameterError(f"the map would hold {n} track(s){left}; a map needs at least 2")
    labels = group_labels(rec, color_by).reindex(ids)
    Xc = np.asarray(X, dtype=np.float64)
    if method == "pca" or n < 5:
        from sklearn.decomposition import PCA

        Y = PCA(n_components=2, random_state=random_state).fit_transform(Xc)
    else:
        from sklearn.manifold import TSNE

        p = perplexity if perplexity is not None else min(30.0, max(2.0, (n - 1) / 3.0))
        if not 0 < p < n:
            raise ParameterError(f"perplexity={p!r}: must be in (0, n_tracks={n})")
        init = "pca" if n > 3 else "random"
        Y = TSNE(n_components=2, perplexity=p, init=init, metric="cosine",
                 random_state=random_state).fit_transform(Xc)
    meta = view.metadata(rec).reindex(ids)
    df = pd.DataFrame({
        "id": ids,
        "x": Y[:, 0],
        "y": Y[:, 1],
        "label": labels.fillna("(unknown)").to_numpy(),
        "artist": meta["artist"].to_numpy(),
        "album": meta["album"].to_numpy(),
        "title": meta["title"].to_numpy(),
        "path": meta["path"].to_numpy(),
    })
    if excluded == "mark":
        df.loc[hidden, "label"] = "(excluded)"
        df["excluded"] = hidden
    if out is not None:
        name = color_by if isinstance(color_by, str) else (getattr(color_by, "name", None) or "label")
        from ..viz.collection import plot_map

        plot_map(df, out, method=method, color_by=str(name), max_legend=max_legend, annotate=annotate, space=space)
    return df


def _pairs_frame(rec, pairs):
    meta = view.metadata(rec)
    rows = []
    for a, b, c in pairs:
        ra, rb = meta.loc[a], meta.loc[b]
        rows.append({
            "id_a": int(a), "id_b": int(b), "cosine": float(c),
            "artist_a": ra["artist"], "title_a": ra["title"], "album_a": ra["album"],
            "artist_b": rb["artist"], "title_b": rb["title"], "album_b": rb["album"],
            "path_a": ra["path"], "path_b": rb["path"],
        })
    cols = ["id_a", "id_b", "cosine", "artist_a", "title_a", "album_a", "artist_b", "title_b", "album_b",
            "path_a", "path_b"]
    return pd.DataFrame(rows, columns=cols)


def _neighbour_pairs(rec, space, k):
    """{(a, b): cosine} for a < b among each track's ``k`` nearest neighbours."""
    ids, X = view.vectors(rec, space)
    idx = rec.faiss_index(space)
    n = len(ids)
    k = min(n, k + 1)
    out = {}
    for s in range(0, n, 4096):
        S, I = idx.search(X[s : s + 4096], k)
        for r in range(S.shape[0]):
            q = int(ids[s + r])
            for c, t in zip(S[r], I[r]):
                t = int(t)
                if t < 0 or t == q:
                    continue
                key = (q, t) if q < t else (t, q)
                if c > out.get(key, -np.inf):
                    out[key] = float(c)
    return out


def closest_pairs(
    rec,
    n: int = 20,
    *,
    space: str = "embedding",
    exclude_same_album: bool = False,
    exclude_same_artist: bool = False,
    exclude_duplicates: bool = True,
    duplicate_cosine: float = DUPLICATE_COSINE,
) -> pd.DataFrame:
    """The ``n`` most similar pairs of tracks in the collection.

    Parameters
    ----------
    rec : Recommender
    n : int
    space : {'embedding', 'tags', 'both'}
    exclude_same_album, exclude_same_artist : bool
        Only pairs across albums / artists (by tag; untagged tracks pass).
    exclude_duplicates : bool
        Skip pairs that are the same recording (see :func:`near_duplicates`;
        ``duplicate_cosine`` is the fallback for tracks without a fingerprint).

    Returns
    -------
    pd.DataFrame
        Columns ``id_a, id_b, cosine, artist_a, title_a, album_a, artist_b,
        title_b, album_b, path_a, path_b``, most similar first.
    """
    n = check_int("n", n)
    check_space(space)
    meta = view.metadata(rec)
    total = len(meta)
    groups = recordings.recording_groups(rec, duplicate_cosine=duplicate_cosine) if exclude_duplicates else None
    k = 10
    while True:
        pairs = _neighbour_pairs(rec, space, k)
        good = []
        for (a, b), c in sorted(pairs.items(), key=lambda kv: -kv[1]):
            ra, rb = meta.loc[a], meta.loc[b]
            if groups is not None and groups.key(a) == groups.key(b):
                continue
            if exclude_same_album and ra["album_key"] is not None and ra["album_key"] == rb["album_key"]:
                continue
            if exclude_same_artist and ra["artist_key"] is not None and ra["artist_key"] == rb["artist_key"]:
                continue
            good.append((a, b, c))
        # each track's best allowed partner lies within its top k unless filters hide them all
        if len(good) >= n or k >= total - 1:
            break
        k = min(total - 1, k * 4)
    return _pairs_frame(rec, good[:n])


def near_duplicates(rec, *, threshold: float = DUPLICATE_COSINE, space: str = "embedding",
                    fingerprint_threshold: float | None = None) -> pd.DataFrame:
    """Pairs of tracks that are the same recording.

    A pair is reported when both files have the same content hash (the same
    audio bytes under two paths), or both have an acoustic fingerprint and
    the fingerprints match (another encoding or bitrate, a few seconds
    trimmed), or -- only when one of them has no fingerprint -- their
    ``'embedding'`` vectors have a cosine of at least ``threshold``.  See
    :mod:`recommender.recommend.recordings`; two fingerprinted songs that
    merely sound alike are never reported.

    Parameters
    ----------
    rec : Recommender
    threshold : float
        Fallback cosine in [-1, 1] for tracks without a fingerprint.
    space : {'embedding'}
        Kept for compatibility: the fallback is always measured in the
        ``'embedding'`` space.
    fingerprint_threshold : float, optional
        Fingerprint score in [0, 1] (default
        :data:`recommender.io.fingerprint.THRESHOLD`).

    Returns
    -------
    pd.DataFrame
        Columns ``id_a, id_b, cosine, reason`` (``'same content'``,
        ``'fingerprint'`` or ``'near-identical embedding'``), ``score`` (1 for
        the same content, the fingerprint score in [0, 1], or the cosine),
        ``offset_s`` (seconds to add to a time in ``a`` to find the same audio
        in ``b``; NaN for the embedding fallback), then the pairs' metadata
        and paths; the same content first, then fingerprints, then the
        fallback, each by decreasing score.

    Raises
    ------
    ParameterError
        A threshold out of range, or ``space`` not ``'embedding'``.
    """
    threshold = check_number("threshold", threshold, min=-1, max=1)
    if space != "embedding":
        check_space(space)
        raise ParameterError(f"space={space!r}: duplicates are judged in the 'embedding' space only")
    kw = {} if fingerprint_threshold is None else {"threshold": fingerprint_threshold}
    pairs = recordings.duplicate_pairs(rec, duplicate_cosine=threshold, **kw)
    df = _pairs_frame(rec, zip(pairs["id_a"], pairs["id_b"], pairs["cosine"]))
    df.insert(3, "reason", pairs["reason"].to_numpy())
    df.insert(4, "score", pairs["score"].to_numpy(dtype=float))
    df.insert(5, "offset_s", pairs["offset_s"].to_numpy(dtype=float))
    return df
