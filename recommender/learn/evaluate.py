"""Scoring a classifier honestly: per-track and per-patch metrics, the report, its files.

:func:`evaluate_classifier` scores a fitted
:class:`~recommender.learn.classifier.MusicClassifier` on held-out tracks;
:func:`recommender.learn.classifier.evaluate` does the same from a saved model
folder.  :func:`write_report` writes the report as JSON and figures
(:mod:`recommender.viz.training`).
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np

from .._utils import atomic_write_text, json_default
from ..errors import ParameterError
from ._inputs import as_frame

__all__ = ["evaluate_classifier", "metrics", "write_report"]

logger = logging.getLogger(__name__)


# =========================================================================== metrics
def metrics(y_true, y_pred, n):
    """Accuracy, macro-F1 and per-class scores of integer labels in ``range(n)``.

    Returns
    -------
    dict or None
        ``n``, ``accuracy``, ``macro_f1``, per-class lists ``precision``,
        ``recall``, ``f1``, ``support`` (length ``n``) and ``confusion``
        (``n x n``, rows = true class); None when ``y_true`` is empty.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(n))
    if len(y_true) == 0:
        return None
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "precision": p.tolist(),
        "recall": r.tolist(),
        "f1": f.tolist(),
        "support": s.tolist(),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def track_loss_acc(track_probs, y):
    """(log loss, accuracy) of track probabilities (n, C) against integer labels (n,)."""
    p = np.clip(track_probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.log(p).mean()), float((track_probs.argmax(1) == y).mean())


def pool_by_track(P, y, groups):
    """Mean of patch rows per track id; returns (track_probs, track_labels)."""
    order = {}
    for g in groups:
        order.setdefault(g, len(order))
    idx = np.array([order[g] for g in groups])
    n = len(order)
    tp = np.zeros((n, P.shape[1]))
    np.add.at(tp, idx, P)
    tp /= np.bincount(idx, minlength=n)[:, None]
    ty = np.zeros(n, dtype=int)
    ty[idx] = y
    return tp, ty


# =========================================================================== evaluation
def evaluate_classifier(clf, dataset, *, split="test") -> dict:
    """Score a fitted classifier on labelled tracks it has not seen.

    Parameters
    ----------
    clf : MusicClassifier
        A fitted classifier (:func:`recommender.learn.classifier.evaluate`
        also takes a saved model folder).
    dataset : pandas.DataFrame or path
        A dataset (see :func:`recommender.datasets.load_dataset`).  If it has
        a ``split`` column with ``split`` rows (default ``"test"``), only those
        are scored; otherwise every track except those the model was trained
        or validated on (listed in its ``tracks.json``).
    split : str
        Which split to score when the dataset has one.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` (per track), ``per_track`` and
        ``per_patch`` (``accuracy``, ``macro_f1``, per-class ``precision``,
        ``recall``, ``f1``, ``support``, ``confusion`` rows = true class),
        ``confusion`` (per track), ``classes``, ``n_train``, ``n_validation``,
        ``n_test``, ``failures``, ``history``, ``mode``, ``split_strategy``...

    Raises
    ------
    sklearn.exceptions.NotFittedError
        ``clf`` is not fitted.
    ParameterError
        The dataset has no ``label`` column.
    """
    import pandas as pd

    from sklearn.utils.validation import check_is_fitted

    from .datasets import load_dataset

    check_is_fitted(clf, "classes_")
    df = dataset if isinstance(dataset, pd.DataFrame) else load_dataset(dataset)
    df = as_frame(df)
    if "label" not in df:
        raise ParameterError("dataset: needs a 'label' column")
    notes = []
    if "split" in df and (df["split"] == split).any():
        rows = df[df["split"] == split]
        notes.append(f"scored the {split!r} split")
    else:
        seen = set(clf.training_paths_) | set(clf.validation_paths_)
        rows = df[~df["path"].isin(seen)]
        if len(rows) < len(df):
            notes.append(f"{len(df) - len(rows)} tracks used for training/validation were excluded")
        else:
            notes.append("no split column: scored every track")
    rows = rows.assign(label=rows["label"].astype(str))
    unknown = sorted(set(rows["label"]) - set(clf.classes_))
    if unknown:
        notes.append(f"labels unknown to the model skipped: {unknown}")
        logger.warning("labels unknown to the model skipped: %s", unknown)
        rows = rows[rows["label"].isin(clf.classes_)]
    t0 = time.perf_counter()
    out, fails = clf.predict_proba_files(list(rows["path"]), on_error="skip", per_patch=True)
    predict_s = time.perf_counter() - t0
    rows = rows[rows["path"].isin(out)]
    index = {c: i for i, c in enumerate(clf.classes_)}
    y = np.array([index[v] for v in rows["label"]], dtype=int)
    P = [out[p] for p in rows["path"]]
    n = len(clf.classes_)
    track_probs = np.stack([x.mean(axis=0) for x in P]) if P else np.zeros((0, n))
    per_track = metrics(y, track_probs.argmax(1), n)
    patch_y = np.repeat(y, [len(x) for x in P])
    patch_pred = np.concatenate([x.argmax(1) for x in P]) if P else np.zeros(0, int)
    per_patch = metrics(patch_y, patch_pred, n)
    predictions = [{"path": p, "label": str(clf.classes_[t]), "predicted": str(clf.classes_[k]),
                    "probability": round(float(pr[k]), 5)}
                   for p, t, k, pr in zip(rows["path"], y, track_probs.argmax(1) if P else [], track_probs)]
    hist = clf.history_ or {}
    return {
        "mode": clf.mode,
        "model": getattr(clf, "source_", None),
        "classes": [str(c) for c in clf.classes_],
        "accuracy": per_track["accuracy"] if per_track else None,
        "macro_f1": per_track["macro_f1"] if per_track else None,
        "confusion": per_track["confusion"] if per_track else None,
        "per_track": per_track,
        "per_patch": per_patch,
        "n_train": clf.n_train_,
        "n_validation": clf.n_validation_,
        "n_test": int(len(rows)),
        "n_test_patches": int(len(patch_y)),
        "failures": fails,
        "split_strategy": getattr(clf, "split_strategy_", ""),
        "notes": notes,
        "history": hist,
        "fit_time_s": getattr(clf, "fit_time_s_", None),
        "predict_time_s": predict_s,
        "predictions": predictions,
    }


def write_report_json(report, out_dir) -> dict:
    """Create ``out_dir`` and write ``report.json`` into it atomically (NumPy values
    converted); returns ``{"json": path}``, to which report writers add their figures."""
    d = os.path.abspath(os.fspath(out_dir))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "report.json")
    atomic_write_text(p, json.dumps(report, indent=1, default=json_default))
    return {"json": p}


def write_report(report, out_dir) -> dict:
    """Write ``report.json``, ``confusion_track.png``, ``confusion_patch.png`` and
    ``training_curves.png`` (when there is a history) into ``out_dir``.

    Every file is written atomically; the figures are drawn by
    :mod:`recommender.viz.training` (matplotlib's Agg canvas, no pyplot).

    Parameters
    ----------
    report : dict
        A result of :func:`evaluate_classifier` / ``evaluate``.
    out_dir : path-like
        Created if missing.

    Returns
    -------
    dict
        ``{"json": path, "confusion_track": path, ...}`` of the files written.
    """
    from ..viz import training as figures

    d = os.path.abspath(os.fspath(out_dir))
    written = write_report_json(report, d)
    for level in ("track", "patch"):
        if report.get(f"per_{level}"):
            p = os.path.join(d, f"confusion_{level}.png")
            figures.save(figures.confusion_matrix(report, level), p)
            written[f"confusion_{level}"] = p
    fig = figures.training_curves(report)
    if fig is not None:
        p = os.path.join(d, "training_curves.png")
        figures.save(fig, p)
        written["training_curves"] = p
    return written
