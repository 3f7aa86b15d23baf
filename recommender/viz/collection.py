"""Pictures of a whole collection: tag profiles per group, 2-D maps.

The data come from :mod:`recommender.recommend.explore` (``group_profiles``,
``collection_map``); this module only draws them, through the package's
figure factory (:func:`recommender.viz.plots.figure` / :func:`~recommender.viz.plots.save`:
a ``Figure`` on its own Agg canvas, no pyplot, no global backend).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import ParameterError
from .plots import figure, save

__all__ = ["plot_profiles", "plot_map", "DPI"]

#: Resolution of the collection pictures.
DPI = 110


def _cmap(n):
    from matplotlib import colormaps

    return colormaps["tab10" if n <= 10 else "tab20"]


def plot_profiles(df: pd.DataFrame, out, *, top=8, title=None) -> str:
    """Grouped bar chart of a :func:`recommender.recommend.explore.group_profiles` frame, saved as PNG.

    Parameters
    ----------
    df : pd.DataFrame
        Rows = albums/artists, columns = tags, values = mean probability in [0, 1].
    out : path-like
        PNG file to write (written atomically; folders created).
    top : int
        Tags shown (the first ``top`` columns).
    title : str, optional

    Returns
    -------
    str
        ``out``.

    Raises
    ------
    ParameterError
        ``df`` has no rows or no columns.
    """
    if len(df) == 0 or df.shape[1] == 0:
        raise ParameterError("df: nothing to plot (no rows or no tag columns)")
    d = df.iloc[:, : max(1, int(top))]
    n_rows, n_tags = d.shape
    fig = figure((min(24, 2.5 + 0.35 * n_rows * n_tags + 0.6 * n_rows), 5.5), dpi=DPI)
    ax = fig.add_subplot()
    width = 0.8 / n_tags
    x = np.arange(n_rows)
    cmap = _cmap(n_tags)
    for j, tag in enumerate(d.columns):
        ax.bar(x + (j - (n_tags - 1) / 2) * width, d[tag].to_numpy(), width, label=str(tag), color=cmap(j % cmap.N))
    labels = [str(v) if len(str(v)) <= 28 else str(v)[:26] + "…" for v in d.index]
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if n_rows > 3 else 0, ha="right" if n_rows > 3 else "center")
    ax.set_ylabel("mean tag probability")
    ax.set_title(title or f"tag profile per {d.index.name or 'group'}")
    ax.legend(ncol=min(4, n_tags), fontsize=8, frameon=False, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    save(fig, out, dpi=DPI)
    return os.fspath(out)


def plot_map(df: pd.DataFrame, out, *, method="pca", color_by="label", max_legend=15, annotate=False,
             space="embedding") -> str:
    """Scatter plot of a :func:`recommender.recommend.explore.collection_map` frame, saved as PNG.

    Parameters
    ----------
    df : pd.DataFrame
        Columns ``x, y, label, title, path`` (one row per track).
    out : path-like
        PNG file to write (written atomically; folders created).
    method, color_by, space : str
        Named in the title.
    max_legend : int
        The most frequent labels that get their own colour; the others are grey ``'other'``.
    annotate : bool
        Write each track's title next to its point.

    Returns
    -------
    str
        ``out``.
    """
    counts = df["label"].value_counts()
    shown = list(counts.index[:max_legend])
    fig = figure((9, 7.5), dpi=DPI)
    ax = fig.add_subplot()
    cmap = _cmap(len(shown))
    rest = ~df["label"].isin(shown)
    size = 30 if len(df) <= 2000 else max(2, int(30 * (2000 / len(df)) ** 0.5))
    if rest.any():
        ax.scatter(df.loc[rest, "x"], df.loc[rest, "y"], s=size, c="lightgrey", label="other", alpha=0.7,
                   edgecolors="none")
    for j, lab in enumerate(shown):
        sel = df["label"] == lab
        ax.scatter(df.loc[sel, "x"], df.loc[sel, "y"], s=size, color=cmap(j % cmap.N),
                   label=f"{lab} ({int(counts[lab])})", alpha=0.85, edgecolors="none")
    if annotate:
        for r in df.itertuples(index=False):
            t = r.title if isinstance(r.title, str) and r.title else os.path.basename(str(r.path))
            ax.annotate(t[:24], (r.x, r.y), fontsize=6, alpha=0.7, xytext=(2, 2), textcoords="offset points")
    ax.set_title(f"{len(df)} tracks, {method.upper()} of the {space} space, coloured by {color_by}")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    save(fig, out, dpi=DPI)
    return os.fspath(out)
