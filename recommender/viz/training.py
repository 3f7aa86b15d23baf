"""Figures of a classifier's evaluation report: confusion matrices and training curves.

Each function takes a report dict (:func:`recommender.learn.classifier.evaluate`)
and returns a :class:`matplotlib.figure.Figure` drawn through the figure
factory of :mod:`.plots` (Agg canvas, no pyplot, no global backend switch);
:func:`save` writes it atomically.  Nothing here imports :mod:`recommender.learn`.
"""

from __future__ import annotations

import numpy as np

from .plots import figure, save

__all__ = ["confusion_matrix", "save", "training_curves"]


def confusion_matrix(report, level="track"):
    """Confusion matrix of ``report["per_<level>"]``, coloured by the fraction of each true class.

    Parameters
    ----------
    report : dict
        Needs ``classes``, ``mode`` and ``per_track`` / ``per_patch`` (with
        ``confusion`` (n_classes x n_classes, rows = true class), ``n``,
        ``accuracy``, ``macro_f1``).
    level : {"track", "patch"}

    Returns
    -------
    matplotlib.figure.Figure
        Cells show counts; the colour is the count divided by its row's total.

    Raises
    ------
    KeyError
        ``report`` lacks the fields above.
    """
    classes = report["classes"]
    m = report[f"per_{level}"]
    cm = np.asarray(m["confusion"], dtype=float)
    size = max(5.0, 0.55 * len(classes) + 3.0)
    fig = figure((size, size * 0.85))
    ax = fig.add_subplot()
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{report['mode']}, per {level} (n={m['n']})\n"
                 f"accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    return fig


def training_curves(report):
    """Loss and accuracy against the epoch (Keras modes) or ``C`` (head/classical).

    Parameters
    ----------
    report : dict
        Uses ``report["history"]`` (``epoch`` or ``C``, ``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy``) and ``report["mode"]``.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when the report has no history.
    """
    h = report.get("history") or {}
    x_key = "epoch" if h.get("epoch") else "C" if h.get("C") else None
    if not x_key:
        return None
    fig = figure((10, 3.8))
    a1, a2 = fig.subplots(1, 2)
    x = h[x_key]
    for key, ax in (("loss", a1), ("accuracy", a2)):
        ax.plot(x, h.get(key, []), "o-", label=f"train (per patch{', augmented' if x_key == 'epoch' else ''})")
        vals = [v for v in h.get(f"val_{key}", []) if v is not None]
        if len(vals) == len(x):
            ax.plot(x, vals, "o-", label="validation (per track)" if x_key == "epoch"
                    else "cross-validated (per track)")
        ax.set_xlabel("epoch" if x_key == "epoch" else "C (inverse regularisation)")
        if x_key == "C":
            ax.set_xscale("log")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"{report['mode']}: training curves")
    return fig
