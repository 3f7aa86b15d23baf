"""Multi-label classification: several labels per track (moods, themes, instruments).

:class:`MultiLabelClassifier` gives each label an independent probability
(sigmoid outputs, not a softmax) in two modes:

``"head"`` (default)
    One logistic regression per label on the frozen network's per-patch
    200-d ``penultimate`` embeddings (every patch of a track carries the
    track's labels), standardised inputs, ``C`` chosen by cross-validation
    grouped by track (by artist when known) on the training tracks, scored
    by the track-level log loss averaged over labels.  Folded into a
    ``Dense`` + sigmoid on top of the network (one ``.keras`` file);
    a track's probability is the mean over its patches.
``"classical"``
    The same on the MIR descriptors of 10-s clips; saved as ``.npz``.

The validation tracks are not trained on: each label's decision threshold
is the one that maximises that label's F1 on them (0.5 when the validation
split has no track with the label, noted in ``threshold_notes_``).  The
thresholds are saved in ``model.json`` and used by :meth:`predict`,
``recommender predict`` and the catalog's tags.

:func:`evaluate_multilabel` reports, on the test split, per-label ROC-AUC
and PR-AUC (average precision) with a label-prior baseline, their macro
(mean over labels) and micro (all track-label pairs pooled) averages, and
the F1 at the chosen thresholds; :func:`write_multilabel_report` adds ROC
and precision-recall curves per label (:mod:`recommender.viz.regression`).
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .._utils import check_choice, check_int, check_number
from ..errors import AudioError, DatasetError, ModelError, ParameterError
from ..models import trained
from ._inputs import as_frame
from ._multioutput import (
    AffineModel,
    check_readable,
    group_ids,
    load_affine,
    track_features,
)
from ._targets import check_multilabel, label_matrix

__all__ = ["C_GRID", "MultiLabelClassifier", "evaluate_multilabel", "load_multilabel", "multilabel_metrics",
           "write_multilabel_report"]

logger = logging.getLogger(__name__)

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


class MultiLabelClassifier(ClassifierMixin, BaseEstimator):
    """Several labels per track (see the module docstring).

    Parameters
    ----------
    mode : {"head", "classical"}
    labels : list of str, optional
        Default ``df.attrs["labels"]``.
    backbone : str
    patches_per_track : int
    C : float, optional
        Inverse L2 strength; ``None`` chooses from :data:`C_GRID`.
    random_state : int or None
    verbose : bool

    Attributes
    ----------
    classes_ : np.ndarray of str (the labels)
    thresholds_ : np.ndarray
    model_ : AffineModel
    C_, cv_, label_priors_, n_train_, n_validation_, training_paths_, validation_paths_,
    failures_, split_strategy_, threshold_notes_, fit_time_s_
    """

    def __init__(self, mode="head", *, labels=None, backbone="msd-musicnn", patches_per_track=16, C=None,
                 random_state=0, verbose=False):
        self.mode = mode
        self.labels = labels
        self.backbone = backbone
        self.patches_per_track = patches_per_track
        self.C = C
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, df, y=None):
        """Fit on the ``train`` rows; choose thresholds on the ``validation`` rows.

        Raises
        ------
        DatasetError
            No split column; a label missing from the training or test split.
        """
        check_choice("mode", self.mode, ("head", "classical"))
        check_int("patches_per_track", self.patches_per_track, min=1)
        if self.C is not None:
            check_number("C", self.C, min=0, min_inclusive=False)
        t0 = time.perf_counter()
        labels = list(self.labels or df.attrs.get("labels") or [])
        if not labels or any(n not in df for n in labels):
            raise ParameterError(f"labels={labels}: name 0/1 columns of the frame ({list(df.columns)})")
        if "split" not in df or df["split"].isna().any():
            raise DatasetError(df.attrs.get("source"), "no split column: call split_multilabel(df, labels) first")
        check_multilabel(df, labels)
        rows = df[df["split"].isin(["train", "validation"])].reset_index(drop=True)
        paths = [os.path.abspath(p) for p in rows["path"]]
        table, self.failures_, tm = track_features(self.mode, paths, backbone=self.backbone,
                                                   patches=self.patches_per_track, verbose=self.verbose)
        check_readable(table, paths, "training")
        rows = rows[[p in table for p in paths]].reset_index(drop=True)
        rows["path"] = [os.path.abspath(p) for p in rows["path"]]
        tr, va = rows[rows["split"] == "train"], rows[rows["split"] == "validation"]
        Ytr = label_matrix(tr, labels)
        for j, n in enumerate(labels):
            if Ytr[:, j].sum() == 0 or Ytr[:, j].all():
                raise DatasetError(df.attrs.get("source"), f"label {n!r}: no readable training track "
                                   f"{'has' if Ytr[:, j].sum() == 0 else 'lacks'} it (rule: a label needs "
                                   "training tracks with and without it)")
        X = [table[p] for p in tr["path"]]
        K, b, self.C_, self.cv_ = _fit_logistic(X, Ytr, group_ids(tr), self.C, self.random_state)
        if self.mode == "head":
            self.model_ = AffineModel.head("multilabel", labels, K, b, tm, patches=self.patches_per_track)
        else:
            self.model_ = AffineModel("multilabel", "classical", labels, K, b, patches=self.patches_per_track)
        self.classes_ = np.asarray(labels, dtype=object)
        self.label_priors_ = Ytr.mean(0)
        self.thresholds_, self.threshold_notes_ = np.full(len(labels), 0.5), []
        if len(va):
            Pva = np.stack([self.model_.rows(table[p]).mean(0) for p in va["path"]])
            self.thresholds_, self.threshold_notes_ = _thresholds(Pva, label_matrix(va, labels), labels)
        else:
            self.threshold_notes_ = ["no validation tracks: every threshold is 0.5"]
        self.n_train_, self.n_validation_ = len(tr), len(va)
        self.training_paths_, self.validation_paths_ = list(tr["path"]), list(va["path"])
        self.split_strategy_ = df.attrs.get("split_strategy")
        self.fit_time_s_ = time.perf_counter() - t0
        self.source_ = self.weights_sha256_ = None
        return self

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise ModelError(None, "MultiLabelClassifier is not fitted: call fit() or load_multilabel()")

    def tag_model(self):
        """This model as a TagModel (``head``): tags are the labels, outputs their probabilities."""
        self._check_fitted()
        return self.model_.tag_model(name=None if self.source_ is None else trained.custom_name(self.source_),
                                     sha=self.weights_sha256_, source=self.source_,
                                     thresholds=list(self.thresholds_))

    def predict_proba_files(self, paths, *, on_error="skip"):
        """({path: label probabilities (n_labels,)}, failures)."""
        self._check_fitted()
        tm = self.tag_model() if self.mode == "head" else None
        out, fails = self.model_.predict_files(paths, tag_model=tm, verbose=self.verbose)
        if fails and on_error == "raise":
            raise AudioError(fails[0]["path"], fails[0]["reason"])
        return out, fails

    def predict_proba(self, X):
        """(n_tracks, n_labels) independent label probabilities."""
        df = as_frame(X)
        out, _ = self.predict_proba_files(list(df["path"]), on_error="raise")
        return np.stack([out[p] for p in df["path"]])

    def predict(self, X):
        """(n_tracks, n_labels) 0/1: probability at or above each label's threshold."""
        return (self.predict_proba(X) >= self.thresholds_[None, :]).astype(np.int64)

    def save(self, path):
        """Save to a model folder (see :mod:`recommender.models.trained`; ``thresholds`` in the sidecar)."""
        self._check_fitted()
        d = os.path.abspath(os.fspath(path))
        if os.path.exists(d) and not os.path.isdir(d):
            raise ParameterError(f"path={d!r}: exists and is not a directory")
        extra = {"thresholds": [float(t) for t in self.thresholds_], "threshold_notes": self.threshold_notes_,
                 "label_priors": [float(v) for v in self.label_priors_], "C": self.C_, "cv": self.cv_,
                 "n_train": self.n_train_, "n_validation": self.n_validation_,
                 "split_strategy": self.split_strategy_}
        tracks = {"train": self.training_paths_, "validation": self.validation_paths_, "failures": self.failures_}
        self.weights_sha256_ = self.model_.save(d, extra=extra, tracks=tracks)
        self.source_ = d
        self.model_._tm = None
        return d


def load_multilabel(path) -> MultiLabelClassifier:
    """A :class:`MultiLabelClassifier` saved by :meth:`MultiLabelClassifier.save`."""
    model, meta, d = load_affine(path, "multilabel")
    clf = MultiLabelClassifier(meta["mode"], labels=list(meta["classes"]), patches_per_track=model.patches,
                               C=meta.get("C"))
    clf.model_, clf.classes_ = model, np.asarray(meta["classes"], dtype=object)
    clf.thresholds_ = np.asarray(meta["thresholds"], dtype=np.float64)
    clf.threshold_notes_ = list(meta.get("threshold_notes") or [])
    clf.label_priors_ = np.asarray(meta.get("label_priors") or [np.nan] * len(clf.classes_), dtype=np.float64)
    clf.C_, clf.cv_ = meta.get("C"), meta.get("cv")
    clf.n_train_, clf.n_validation_ = meta.get("n_train"), meta.get("n_validation")
    clf.split_strategy_ = meta.get("split_strategy")
    try:
        tr = trained.read_tracks(d)
    except (OSError, ValueError, AttributeError):
        tr = {"train": [], "validation": [], "failures": []}
    clf.training_paths_, clf.validation_paths_, clf.failures_ = tr["train"], tr["validation"], tr["failures"]
    clf.source_, clf.weights_sha256_ = d, meta["weights_sha256"]
    clf.fit_time_s_ = None
    return clf


def _fit_logistic(X_tracks, Y, groups, C, random_state):
    """Per-label logistic regressions on the rows of each track; (K, b) folded through the scaler, C, cv."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    X = np.concatenate(X_tracks)
    owner = np.repeat(np.arange(len(X_tracks)), [len(x) for x in X_tracks])
    mu, sd = X.mean(0), X.std(0)
    sd[sd < 1e-12] = 1.0
    Xs = (X - mu) / sd
    L = Y.shape[1]

    def fit(rows, C):
        coefs, icpts = np.zeros((X.shape[1], L)), np.zeros(L)
        for j in range(L):
            yj = Y[owner[rows], j]
            if yj.min() == yj.max():  # a fold without the label: a constant logit at its prior
                p = np.clip(yj.mean(), 1e-3, 1 - 1e-3)
                icpts[j] = np.log(p / (1 - p))
                continue
            m = LogisticRegression(C=C, max_iter=3000, random_state=random_state).fit(Xs[rows], yj)
            coefs[:, j], icpts[j] = m.coef_[0], m.intercept_[0]
        return coefs, icpts

    grid = (float(C),) if C is not None else C_GRID
    cv = {"C": list(grid), "track_log_loss": []}
    g = np.asarray(groups)[owner]
    n_splits = int(min(5, len(set(groups))))
    best = None
    if len(grid) > 1 and n_splits >= 2:
        folds = list(GroupKFold(n_splits=n_splits).split(Xs, owner, g))
        for c in grid:
            P = np.zeros((len(X_tracks), L))
            for tr, te in folds:
                W, b0 = fit(tr, c)
                p = 1 / (1 + np.exp(-np.clip(Xs[te] @ W + b0, -60, 60)))
                for t in np.unique(owner[te]):
                    P[t] = p[owner[te] == t].mean(0)
            P = np.clip(P, 1e-6, 1 - 1e-6)
            ll = float(-(Y * np.log(P) + (1 - Y) * np.log(1 - P)).mean())
            cv["track_log_loss"].append(ll)
            if best is None or ll < best[0]:
                best = (ll, c)
    c = best[1] if best is not None else grid[0] if len(grid) == 1 else 0.1
    W, b0 = fit(np.arange(len(X)), c)
    K = W / sd[:, None]
    return K, b0 - mu @ K, float(c), cv


def _thresholds(P, Y, labels):
    """Per label, the threshold maximising F1 on the validation tracks (0.5 when it has no positive)."""
    th, notes = np.full(len(labels), 0.5), []
    for j, n in enumerate(labels):
        y, p = Y[:, j], P[:, j]
        if y.sum() == 0:
            notes.append(f"label {n!r}: no validation track has it; threshold 0.5")
            continue
        cands = np.unique(p)
        f1 = [2 * ((p >= c) & (y == 1)).sum() / max(1, (p >= c).sum() + y.sum()) for c in cands]
        i = int(np.argmax(f1))
        # halfway to the next lower score: the tracks at the chosen score stay positive, a margin below
        lower = cands[i - 1] if i > 0 else 0.0
        th[j] = float((cands[i] + lower) / 2)
    return th, notes


# --------------------------------------------------------------------------- evaluation
def multilabel_metrics(P, Y, labels, thresholds, priors=None) -> dict:
    """Per-label ROC-AUC / PR-AUC / F1 and their macro and micro averages (``None`` where undefined)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    P, Y = np.asarray(P, np.float64), np.asarray(Y, np.int64)
    per = {}
    for j, n in enumerate(labels):
        y, p = Y[:, j], P[:, j]
        both = 0 < y.sum() < len(y)
        pred = p >= thresholds[j]
        tp = int((pred & (y == 1)).sum())
        per[n] = {"support": int(y.sum()), "roc_auc": float(roc_auc_score(y, p)) if both else None,
                  "pr_auc": float(average_precision_score(y, p)) if y.sum() else None,
                  "pr_auc_chance": float(y.mean()),
                  "f1": float(2 * tp / max(1, pred.sum() + y.sum())), "threshold": float(thresholds[j])}

    def mean(k):
        v = [r[k] for r in per.values() if r[k] is not None]
        return float(np.mean(v)) if v else None

    pred = P >= np.asarray(thresholds)[None, :]
    tp = int((pred & (Y == 1)).sum())
    flat_y, flat_p = Y.reshape(-1), P.reshape(-1)
    both = 0 < flat_y.sum() < len(flat_y)
    out = {"per_label": per,
           "macro": {"roc_auc": mean("roc_auc"), "pr_auc": mean("pr_auc"), "f1": mean("f1")},
           "micro": {"roc_auc": float(roc_auc_score(flat_y, flat_p)) if both else None,
                     "pr_auc": float(average_precision_score(flat_y, flat_p)) if flat_y.sum() else None,
                     "f1": float(2 * tp / max(1, pred.sum() + Y.sum()))},
           "subset_accuracy": float((pred == (Y == 1)).all(1).mean()) if len(Y) else None}
    if priors is not None:  # the label-prior baseline: every track gets the training frequency
        out["prior_baseline"] = {"macro_pr_auc": mean("pr_auc_chance"), "roc_auc": 0.5}
    return out


def evaluate_multilabel(model, dataset, *, split="test") -> dict:
    """Score a multi-label model on held-out tracks (tracks it was trained or validated on are excluded).

    Returns
    -------
    dict
        ``task``, ``labels``, ``n_test``, :func:`multilabel_metrics` fields,
        ``predictions`` (paths, true 0/1, probabilities), ``notes``, ``failures``.
    """
    import pandas as pd

    clf = model if isinstance(model, MultiLabelClassifier) else load_multilabel(model)
    clf._check_fitted()
    labels = [str(c) for c in clf.classes_]
    if isinstance(dataset, pd.DataFrame):
        df = dataset.copy()
    else:
        from ._targets import load_targets

        df = load_targets(dataset, task="multilabel")
    missing = [n for n in labels if n not in df]
    if missing:
        raise DatasetError(df.attrs.get("source"), f"labels {missing}: not in the dataset")
    df["path"] = [os.path.abspath(p) for p in df["path"]]
    seen = set(clf.training_paths_) | set(clf.validation_paths_)
    notes = list(clf.threshold_notes_)
    if "split" in df and df["split"].notna().all():
        df = df[df["split"] == split]
    else:
        notes.append("no split column: every track the model was not trained or validated on is scored")
    n0 = len(df)
    df = df[~df["path"].isin(seen)]
    if len(df) < n0:
        notes.append(f"{n0 - len(df)} tracks the model was trained or validated on excluded")
    t0 = time.perf_counter()
    out, fails = clf.predict_proba_files(list(df["path"])) if len(df) else ({}, [])
    dt = time.perf_counter() - t0
    df = df[df["path"].isin(out)].reset_index(drop=True)
    P = np.stack([out[p] for p in df["path"]]) if len(df) else np.zeros((0, len(labels)))
    Y = label_matrix(df, labels) if len(df) else np.zeros((0, len(labels)), np.int64)
    rep = {"task": "multilabel", "mode": clf.mode, "labels": labels, "n_test": len(df), "n_train": clf.n_train_,
           "n_validation": clf.n_validation_, "split_strategy": clf.split_strategy_, "notes": notes,
           "failures": fails, "predict_time_s": dt,
           "predictions": {"path": list(df["path"]), "true": Y.tolist(), "probability": P.tolist()}}
    if len(df):
        rep.update(multilabel_metrics(P, Y, labels, clf.thresholds_, clf.label_priors_))
    return rep


def write_multilabel_report(report, folder) -> dict:
    """``report.json``, ``roc.png`` and ``precision_recall.png`` (one curve per label)."""
    from ..viz import regression as figs
    from .evaluate import write_report_json

    written = write_report_json(report, folder)
    if report.get("n_test"):
        for kind, fn in (("roc", figs.roc_curves), ("precision_recall", figs.pr_curves)):
            p = os.path.join(folder, f"{kind}.png")
            figs.save(fn(report), p)
            written[kind] = p
    return written
