"""Regression on numeric labels (tempo, energy, a mood scale...), evaluated honestly.

:class:`MusicRegressor` learns one or several numeric targets per track (a
joint ridge head: one model, one output per target) in three modes:

``"head"`` (default)
    The pretrained network stays frozen; each track becomes the mean of its
    patches' 200-d ``penultimate`` embeddings and a ridge regression
    (standardised inputs and targets, ``alpha`` chosen by cross-validation
    grouped by track -- by artist when known -- on the training + validation
    tracks) predicts the targets.  It is folded into a ``Dense`` layer on top
    of the network, so the saved model is one ``.keras`` file and
    ``classify``/``index --model`` compute exactly what :meth:`predict` does
    (the mean of the per-patch outputs is the ridge on the mean embedding).
``"classical"``
    The same ridge (scikit-learn's ``Ridge``) on the MIR descriptor
    statistics (MFCC, spectral, chroma, tempo, loudness) of up to
    ``patches_per_track`` 10-s clips; saved as ``.npz`` arrays.

``"finetune"``
    The ``head`` model (warm-started with its ridge) trained end to end on
    random crops of the training tracks, Huber loss on standardised targets,
    the pretrained body at ``body_lr_ratio`` of the new layer's learning
    rate, the best epoch on the validation tracks kept
    (:mod:`recommender.learn._finetune_regress`).  Saved like ``head``: one
    ``.keras`` file that ``classify``/``index --model`` run.

Predictions are clipped to the range of the training + validation targets
widened by half its span on each side (tempo trained on 70-170 BPM: 20-220
BPM), so a track unlike any training track cannot get an absurd value (a
negative BPM); models saved before this (no ``target_range`` in
``model.json``) are not clipped.  ``index --model`` stores values clipped the
same way (:meth:`recommender.models.trained.TrainedTagModel.named_values`).

:func:`evaluate_regression` scores the test split with MAE, RMSE and R², next
to a predict-the-training-mean baseline, and, for a tempo target (a column
named ``tempo``/``bpm``...), Accuracy1 (within 4 %) and Accuracy2 (also
right up to a factor 2, 1/2, 3 or 1/3) of the model, the baseline and the
library's own tempo estimator (:func:`recommender.descriptors.estimate_tempo`)
in the same run.  :func:`write_regression_report` writes the JSON and the
figures (:mod:`recommender.viz.regression`).

Examples
--------
>>> from recommender.learn._targets import load_targets, split_regression    # doctest: +SKIP
>>> df = load_targets("tempo.csv")                     # path,tempo[,artist][,split]  # doctest: +SKIP
>>> df = split_regression(df, df.attrs["targets"])                          # doctest: +SKIP
>>> reg = MusicRegressor("classical").fit(df)                               # doctest: +SKIP
>>> rep = evaluate_regression(reg, df); rep["per_target"]["tempo"]["model"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from .._utils import check_choice, check_int, check_number
from ..errors import DatasetError, ModelError, ParameterError
from ..models import trained
from . import _networks as nets
from ._inputs import as_frame
from ._multioutput import (
    AffineModel,
    check_readable,
    group_ids,
    load_affine,
    track_features,
)
from ._targets import check_regression

__all__ = ["ALPHA_GRID", "MusicRegressor", "evaluate_regression", "is_tempo_target", "load_regressor",
           "regression_metrics", "tempo_accuracy", "write_regression_report"]

logger = logging.getLogger(__name__)

#: Candidate ridge strengths (on standardised inputs and targets) when none is given.
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
REGRESSION_MODES = ("head", "finetune", "classical")


def is_tempo_target(name) -> bool:
    """A target whose name says it is a tempo in BPM (``tempo``, ``bpm``, ``tempo_bpm``...)."""
    n = str(name).lower()
    return "bpm" in n or "tempo" in n


class MusicRegressor(RegressorMixin, BaseEstimator):
    """Predict numeric targets of tracks (see the module docstring).

    Parameters
    ----------
    mode : {"head", "classical"}
    targets : list of str, optional
        Columns to learn; default ``df.attrs["targets"]`` (from
        :func:`recommender.learn._targets.load_targets`).
    backbone : str
        Pretrained model of ``head``.
    patches_per_track : int
        3-s patches (``head``) or 10-s clips (``classical``) per track.
    alpha : float, optional
        Ridge strength; ``None`` chooses from :data:`ALPHA_GRID` by grouped CV.
    random_state : int or None
    verbose : bool

    Attributes
    ----------
    targets_ : list of str
    model_ : AffineModel
    alpha_ : float
    cv_ : dict
        ``alpha`` and the cross-validated RMSE (standardised units) of each.
    target_means_ : np.ndarray
        Training means (the predict-the-mean baseline).
    n_train_, n_validation_ : int
    training_paths_, validation_paths_, failures_, split_strategy_, fit_time_s_
    """

    def __init__(self, mode="head", *, targets=None, backbone="msd-musicnn", patches_per_track=16, alpha=None,
                 epochs=None, learning_rate=None, body_lr_ratio=0.1, batch_size=32, patience=2,
                 random_state=0, verbose=False):
        self.mode = mode
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.body_lr_ratio = body_lr_ratio
        self.batch_size = batch_size
        self.patience = patience
        self.targets = targets
        self.backbone = backbone
        self.patches_per_track = patches_per_track
        self.alpha = alpha
        self.random_state = random_state
        self.verbose = verbose

    def _validate(self):
        check_choice("mode", self.mode, REGRESSION_MODES)
        check_int("patches_per_track", self.patches_per_track, min=1)
        if self.alpha is not None:
            check_number("alpha", self.alpha, min=0, min_inclusive=False)
        if self.mode == "finetune":
            if self.epochs is not None:
                check_int("epochs", self.epochs, min=1)
            if self.learning_rate is not None:
                check_number("learning_rate", self.learning_rate, min=0, min_inclusive=False)
            check_number("body_lr_ratio", self.body_lr_ratio, min=0)
            check_int("batch_size", self.batch_size, min=1)
            check_int("patience", self.patience, min=1)

    def fit(self, df, y=None):
        """Fit on the ``train`` + ``validation`` rows of ``df`` (``test`` rows are never read).

        Raises
        ------
        DatasetError
            No split column, a target that does not vary, no readable track.
        ParameterError
            Bad hyperparameters or unknown targets.
        """
        self._validate()
        t0 = time.perf_counter()
        targets = list(self.targets or df.attrs.get("targets") or [])
        if not targets or any(t not in df for t in targets):
            raise ParameterError(f"targets={targets}: name columns of the frame ({list(df.columns)})")
        if "split" not in df or df["split"].isna().any():
            raise DatasetError(df.attrs.get("source"), "no split column: call split_regression(df, targets) first")
        check_regression(df, targets)
        fit_rows = df[df["split"].isin(["train", "validation"])].reset_index(drop=True)
        paths = [os.path.abspath(p) for p in fit_rows["path"]]
        feats = "head" if self.mode == "finetune" else self.mode
        table, self.failures_, tm = track_features(feats, paths, backbone=self.backbone,
                                                   patches=self.patches_per_track, verbose=self.verbose)
        check_readable(table, paths, "training")
        keep = np.array([p in table for p in paths])
        rows = fit_rows[keep].reset_index(drop=True)
        X = np.stack([table[p].mean(0) for p in rows["path"].map(os.path.abspath)])
        Y = rows[targets].to_numpy(dtype=np.float64)
        K, b, self.alpha_, self.cv_ = _fit_ridge(X, Y, group_ids(rows), self.alpha, self.random_state)
        self.history_ = None
        if self.mode == "head":
            self.model_ = AffineModel.head("regress", targets, K, b, tm, patches=self.patches_per_track)
        elif self.mode == "finetune":
            self.model_ = self._finetune(rows, Y, targets, K, b, tm)
        else:
            self.model_ = AffineModel("regress", "classical", targets, K, b, patches=self.patches_per_track)
        self.targets_ = targets
        is_tr = (rows["split"] == "train").to_numpy()
        self.target_means_ = Y[is_tr].mean(0) if is_tr.any() else Y.mean(0)
        lo, hi = Y.min(0), Y.max(0)
        self.target_range_ = np.stack([lo - (hi - lo) / 2, hi + (hi - lo) / 2], axis=1)  # (n_targets, 2)
        self.n_train_, self.n_validation_ = int(is_tr.sum()), int((~is_tr).sum())
        self.training_paths_ = [os.path.abspath(p) for p in rows.loc[is_tr, "path"]]
        self.validation_paths_ = [os.path.abspath(p) for p in rows.loc[~is_tr, "path"]]
        self.split_strategy_ = df.attrs.get("split_strategy")
        self.fit_time_s_ = time.perf_counter() - t0
        self.source_ = self.weights_sha256_ = None
        return self

    def _finetune(self, rows, Y, targets, K, b, tm):
        """The ridge folded on the backbone, then trained end to end (:mod:`._finetune_regress`)."""
        from . import _finetune_regress as ft
        from ._inputs import map_paths, track_segments

        keras = nets.keras_module()
        keras.utils.set_random_seed(int(self.random_state or 0))
        model = AffineModel.head("regress", targets, K, b, tm, patches=self.patches_per_track)
        paths = [os.path.abspath(p) for p in rows["path"]]
        segs, fails = map_paths(lambda p: track_segments(p, self.patches_per_track), paths, desc="log-mel",
                                verbose=self.verbose)
        self.failures_.extend(fails)
        is_tr = (rows["split"] == "train").to_numpy() & np.array([p in segs for p in paths])
        is_va = (rows["split"] == "validation").to_numpy() & np.array([p in segs for p in paths])
        if not is_tr.any():
            raise DatasetError(None, "finetune: no training track could be read as log-mel")
        self.history_ = ft.finetune_values(
            model.keras_model, segs, [p for p, k in zip(paths, is_tr) if k], Y[is_tr],
            [p for p, k in zip(paths, is_va) if k], Y[is_va],
            epochs=int(self.epochs or ft.DEFAULT_EPOCHS), learning_rate=float(self.learning_rate or ft.DEFAULT_LR),
            body_lr_ratio=float(self.body_lr_ratio), batch_size=int(self.batch_size), patience=int(self.patience),
            patches_per_track=self.patches_per_track, rng=np.random.default_rng(self.random_state),
            verbose=self.verbose)
        Kf, bf = model.keras_model.get_layer("value_dense").get_weights()
        return AffineModel("regress", "finetune", targets, Kf, bf, patches=self.patches_per_track,
                           keras_model=model.keras_model, embedding_dim=model.embedding_dim, backbone=tm.name,
                           backbone_sha256=tm.weights_sha256)

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise ModelError(None, "MusicRegressor is not fitted: call fit() or load_regressor()")

    def tag_model(self):
        """This regressor as a TagModel (``head``): outputs are the named values (see ``value_names``)."""
        self._check_fitted()
        return self.model_.tag_model(name=None if self.source_ is None else trained.custom_name(self.source_),
                                     sha=self.weights_sha256_, source=self.source_)

    def predict_files(self, paths, *, on_error="skip"):
        """({path: values (n_targets,)}, failures)."""
        self._check_fitted()
        tm = self.tag_model() if self.mode != "classical" else None
        out, fails = self.model_.predict_files(paths, tag_model=tm, verbose=self.verbose)
        rng = getattr(self, "target_range_", None)
        if rng is not None:  # the training range widened by half its span each side (module docstring)
            out = {p: np.clip(v, rng[:, 0], rng[:, 1]) for p, v in out.items()}
        if fails and on_error == "raise":
            from ..errors import AudioError

            raise AudioError(fails[0]["path"], fails[0]["reason"])
        return out, fails

    def predict(self, X):
        """Values of each track, shape (n_tracks,) for one target, else (n_tracks, n_targets)."""
        df = as_frame(X)
        out, _ = self.predict_files(list(df["path"]), on_error="raise")
        P = np.stack([out[p] for p in df["path"]])
        return P[:, 0] if P.shape[1] == 1 else P

    def save(self, path):
        """Save to a model folder (``model.keras`` or ``model.npz``, ``tracks.json``, ``model.json``)."""
        self._check_fitted()
        d = os.path.abspath(os.fspath(path))
        if os.path.exists(d) and not os.path.isdir(d):
            raise ParameterError(f"path={d!r}: exists and is not a directory")
        rng = getattr(self, "target_range_", None)
        extra = {"targets": self.targets_, "target_means": [float(v) for v in self.target_means_],
                 "target_range": None if rng is None else rng.tolist(),
                 "alpha": self.alpha_, "cv": self.cv_, "n_train": self.n_train_,
                 "n_validation": self.n_validation_, "split_strategy": self.split_strategy_}
        if getattr(self, "history_", None):  # finetune: the epochs, their losses and the one kept
            extra["history"] = self.history_
        tracks = {"train": self.training_paths_, "validation": self.validation_paths_, "failures": self.failures_}
        self.weights_sha256_ = self.model_.save(d, extra=extra, tracks=tracks)
        self.source_ = d
        self.model_._tm = None
        return d


def load_regressor(path) -> MusicRegressor:
    """A :class:`MusicRegressor` saved by :meth:`MusicRegressor.save` (Keras ``safe_mode``; no pickle)."""
    model, meta, d = load_affine(path, "regress")
    reg = MusicRegressor(meta["mode"], targets=list(meta["classes"]),
                         patches_per_track=model.patches, alpha=meta.get("alpha"))
    reg.model_, reg.targets_ = model, list(meta["classes"])
    reg.alpha_, reg.cv_ = meta.get("alpha"), meta.get("cv")
    reg.target_means_ = np.asarray(meta.get("target_means") or [np.nan] * len(reg.targets_), dtype=np.float64)
    rng = meta.get("target_range")
    reg.target_range_ = None if rng is None else np.asarray(rng, dtype=np.float64).reshape(-1, 2)
    reg.n_train_, reg.n_validation_ = meta.get("n_train"), meta.get("n_validation")
    reg.split_strategy_ = meta.get("split_strategy")
    try:
        tr = trained.read_tracks(d)
    except (OSError, ValueError, AttributeError):
        tr = {"train": [], "validation": [], "failures": []}
    reg.training_paths_, reg.validation_paths_, reg.failures_ = tr["train"], tr["validation"], tr["failures"]
    reg.source_, reg.weights_sha256_ = d, meta["weights_sha256"]
    reg.fit_time_s_ = None
    return reg


def _fit_ridge(X, Y, groups, alpha, random_state):
    """Standardise, choose alpha by grouped CV (unless given), fit; return the folded (K, b), alpha, cv."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold

    mu, sd = X.mean(0), X.std(0)
    sd[sd < 1e-12] = 1.0
    ym, ys = Y.mean(0), Y.std(0)
    ys[ys < 1e-12] = 1.0
    Xs, Ys = (X - mu) / sd, (Y - ym) / ys
    grid = (float(alpha),) if alpha is not None else ALPHA_GRID
    cv = {"alpha": list(grid), "rmse_standardised": []}
    n_splits = int(min(5, len(set(groups))))
    best = None
    if len(grid) > 1 and n_splits >= 2:
        folds = list(GroupKFold(n_splits=n_splits).split(Xs, Ys, groups))
        for a in grid:
            err = np.zeros_like(Ys)
            for tr, te in folds:
                err[te] = Ridge(alpha=a).fit(Xs[tr], Ys[tr]).predict(Xs[te]).reshape(len(te), -1) - Ys[te]
            rmse = float(np.sqrt((err ** 2).mean()))
            cv["rmse_standardised"].append(rmse)
            if best is None or rmse < best[0]:
                best = (rmse, a)
    a = best[1] if best is not None else grid[0] if len(grid) == 1 else 10.0
    m = Ridge(alpha=a).fit(Xs, Ys)
    W = np.asarray(m.coef_).reshape(Y.shape[1], -1)  # (T, F)
    c = np.asarray(m.intercept_).reshape(-1)
    K = (W.T / sd[:, None]) * ys[None, :]
    b = ys * (c - (mu / sd) @ W.T) + ym
    return K, b, float(a), cv


# --------------------------------------------------------------------------- evaluation
def tempo_accuracy(pred, true, tol=0.04):
    """(Accuracy1, Accuracy2): share within ``tol`` of the true tempo; also allowing x2, x1/2, x3, x1/3."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    ok = np.isfinite(pred)
    a1 = ok & (np.abs(pred - true) <= tol * true)
    a2 = a1.copy()
    for f in (2.0, 0.5, 3.0, 1 / 3):
        a2 |= ok & (np.abs(pred - f * true) <= tol * f * true)
    return float(a1.mean()), float(a2.mean())


def regression_metrics(pred, true, *, tempo=False) -> dict:
    """MAE, RMSE, R² (and Accuracy1/2 for a tempo), on the tracks where ``pred`` is finite (``n``)."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    ok = np.isfinite(pred)
    e = pred[ok] - true[ok]
    ss = float(((true[ok] - true[ok].mean()) ** 2).sum()) if ok.any() else 0.0
    out = {"n": int(ok.sum()), "mae": float(np.abs(e).mean()) if ok.any() else None,
           "rmse": float(np.sqrt((e ** 2).mean())) if ok.any() else None,
           "r2": float(1 - (e ** 2).sum() / ss) if ss > 0 else None}
    if tempo:
        out["accuracy1"], out["accuracy2"] = tempo_accuracy(pred, true)  # a NaN estimate counts as wrong
    return out


def _descriptor_tempo(paths):
    from ..descriptors import estimate_tempo
    from ..descriptors.summary import DESCRIPTOR_SR
    from ..io import audio
    from ._inputs import map_paths

    got, _ = map_paths(lambda p: estimate_tempo(audio.load(p, sr=DESCRIPTOR_SR), sr=DESCRIPTOR_SR)[0], paths)
    return np.array([got.get(p, np.nan) for p in paths], dtype=np.float64)


def _test_rows(reg, dataset, split):
    import pandas as pd

    df = dataset if isinstance(dataset, pd.DataFrame) else None
    if df is None:
        from ._targets import load_targets

        df = load_targets(dataset, task="regress", targets=reg.targets_)
    df = df.copy()
    df["path"] = [os.path.abspath(p) for p in df["path"]]
    seen = set(reg.training_paths_) | set(reg.validation_paths_)
    notes = []
    if "split" in df and df["split"].notna().all():
        df = df[df["split"] == split]
    else:
        notes.append(f"no split column: every track but the {len(seen)} used in training scored")
    n0 = len(df)
    df = df[~df["path"].isin(seen)]
    if len(df) < n0:
        notes.append(f"{n0 - len(df)} tracks the model was trained or validated on excluded")
    missing = [t for t in reg.targets_ if t not in df]
    if missing:
        raise DatasetError(df.attrs.get("source"), f"targets {missing}: not in the dataset")
    return df.reset_index(drop=True), notes


def evaluate_regression(model, dataset, *, split="test", tempo_baseline=True) -> dict:
    """Score a regressor on held-out tracks, with the baselines in the same run.

    Parameters
    ----------
    model : MusicRegressor or path of a saved one
    dataset : DataFrame (with ``split``) or a target CSV
    split : str
        The split scored when the data has a split column.
    tempo_baseline : bool
        Also run :func:`recommender.descriptors.estimate_tempo` on the test
        tracks for tempo targets.

    Returns
    -------
    dict
        ``task``, ``mode``, ``targets``, ``n_test``, ``per_target[t]`` with
        ``model``, ``mean_baseline`` (and ``descriptor_tempo``) metrics,
        ``predictions`` (paths, true and predicted values, for the figures
        and paired comparisons), ``notes``, ``failures``.
    """
    reg = model if isinstance(model, MusicRegressor) else load_regressor(model)
    reg._check_fitted()
    df, notes = _test_rows(reg, dataset, split)
    t0 = time.perf_counter()
    out, fails = reg.predict_files(list(df["path"])) if len(df) else ({}, [])
    dt = time.perf_counter() - t0
    df = df[df["path"].isin(out)].reset_index(drop=True)
    paths = list(df["path"])
    P = np.stack([out[p] for p in paths]) if paths else np.zeros((0, len(reg.targets_)))
    rep = {"task": "regress", "mode": reg.mode, "targets": list(reg.targets_), "n_test": len(paths),
           "n_train": reg.n_train_, "n_validation": reg.n_validation_, "split_strategy": reg.split_strategy_,
           "alpha": reg.alpha_, "notes": notes, "failures": fails, "predict_time_s": dt, "per_target": {},
           "predictions": {"path": paths, "true": {}, "predicted": {}}}
    est = None
    for j, t in enumerate(reg.targets_):
        true = df[t].to_numpy(dtype=np.float64)
        tempo = is_tempo_target(t)
        row = {"model": regression_metrics(P[:, j], true, tempo=tempo),
               "mean_baseline": regression_metrics(np.full(len(true), reg.target_means_[j]), true, tempo=tempo)}
        if tempo and tempo_baseline and paths:
            est = _descriptor_tempo(paths) if est is None else est
            row["descriptor_tempo"] = regression_metrics(est, true, tempo=True)
            rep["predictions"]["descriptor_tempo"] = [None if not np.isfinite(v) else float(v) for v in est]
        rep["per_target"][t] = row
        if paths and row["model"]["mae"] > row["mean_baseline"]["mae"]:
            notes.append(f"{t}: the model is worse than predicting the training mean on the test tracks "
                         f"(MAE {row['model']['mae']:.3g} vs {row['mean_baseline']['mae']:.3g}): "
                         "too few or too unlike training tracks; do not use it")
        rep["predictions"]["true"][t] = [float(v) for v in true]
        rep["predictions"]["predicted"][t] = [float(v) for v in P[:, j]]
    return rep


def write_regression_report(report, folder) -> dict:
    """``report.json`` and, per target, ``scatter_<target>.png`` and ``residuals_<target>.png``."""
    from ..viz import regression as figs
    from .evaluate import write_report_json

    written = write_report_json(report, folder)
    if report.get("n_test"):
        for t in report["targets"]:
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in t)
            for kind, fn in (("scatter", figs.scatter), ("residuals", figs.residuals)):
                p = os.path.join(folder, f"{kind}_{safe}.png")
                figs.save(fn(report, t), p)
                written[f"{kind}_{t}"] = p
    return written
