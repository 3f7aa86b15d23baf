"""The linear models of the ``head`` and ``classical`` modes.

A standardised multinomial logistic regression whose ``C`` is chosen by
cross-validation grouped by track (by artist when known), scored by the
track-level log loss; folded into one Dense layer for ``head``; saved as plain
``.npz`` arrays for ``classical``.  Package-internal (used by :mod:`.classifier`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..models.trackhead import temper  # noqa: F401 - re-exported: the one temperature scaling
from ._inputs import descriptor_names
from .evaluate import pool_by_track, track_loss_acc

__all__ = ["C_GRID", "C_GRID_TRACK", "MIN_CALIBRATION_TRACKS", "T_GRID", "choose_C", "classical_arrays", "fit_linear", "fit_temperature", "full_proba",
           "load_classical", "lr_to_dense", "temper"]

#: Candidate values of ``C`` (inverse L2 strength) when the user gives none.
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
#: ``C`` candidates of the track-level head recipes (thousands of inputs, tens of rows:
#: the best ``C`` sat on the lower edge of :data:`C_GRID` on the development collection).
#: Up to 10 since a small, easy set (issue #21: 18 tracks, 3 classes) chose the old top edge 1.0.
C_GRID_TRACK = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
#: Candidate temperatures of the probability calibration (see :func:`fit_temperature`): 0.1 to 100.
T_GRID = tuple(float(t) for t in np.round(np.logspace(-1, 2, 61), 4))
#: Fewer out-of-fold tracks than this: no temperature is fitted (``T = 1``).  With 18 tracks, three
#: confidently wrong out-of-fold predictions drove ``T`` to the grid's top (10) and every
#: probability to near uniform although test accuracy was 1.0 (issue #21).
MIN_CALIBRATION_TRACKS = 30


def choose_C(X, y, tracks, groups, n_classes, class_weight, random_state, grid=C_GRID, oof_out=None):
    """Pick ``C`` by grouped cross-validation on the training + validation tracks.

    Folds never split a group (a track, or an artist when known); each
    candidate is scored by the out-of-fold *track-level* log loss (patch
    probabilities averaged per track).  Log loss, not accuracy: with tens of
    tracks accuracy moves in steps of several percent and picks ``C`` by luck.

    Returns (C, history) with ``C, val_loss, val_accuracy`` (cross-validated)
    and ``loss, accuracy`` (on the patches of the fit on everything).  When
    ``oof_out`` is a dict, it receives ``"proba"``: the out-of-fold row
    probabilities of the chosen ``C`` (None when there was no cross-validation).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # one label per track: stratify on the track labels, group by `groups`
    per_class = np.bincount(y[np.unique(tracks, return_index=True)[1]], minlength=n_classes)
    n_splits = int(min(5, per_class[per_class > 0].min(), len(set(groups))))
    hist = {"C": [], "val_loss": [], "val_accuracy": [], "loss": [], "accuracy": []}

    def make(C):
        return make_pipeline(StandardScaler(), LogisticRegression(
            C=C, max_iter=3000, class_weight=class_weight, random_state=random_state))

    best = None
    for C in grid:
        hist["C"].append(C)
        if n_splits >= 2 and (len(grid) > 1 or oof_out is not None):
            oof = np.zeros((len(y), n_classes))
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                folds = list(cv.split(X, y, groups))
            for tr, te in folds:
                m = make(C).fit(X[tr], y[tr])
                oof[te] = full_proba(m, X[te], n_classes)
            tp, ty = pool_by_track(oof, y, tracks)
            vl, va = track_loss_acc(tp, ty)
            hist["val_loss"].append(vl)
            hist["val_accuracy"].append(va)
            if best is None or vl < best[0]:
                best = (vl, C)
                if oof_out is not None:
                    oof_out["proba"] = oof
        else:
            hist["val_loss"].append(None)
            hist["val_accuracy"].append(None)
        m = make(C).fit(X, y)
        p = full_proba(m, X, n_classes)
        hist["loss"].append(float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1)).mean()))
        hist["accuracy"].append(float((p.argmax(1) == y).mean()))
    C = best[1] if best is not None else (grid[0] if len(grid) == 1 else 1.0)
    return C, hist


def fit_temperature(proba, y, tracks, grid=T_GRID, min_tracks=MIN_CALIBRATION_TRACKS):
    """Temperature ``T`` that minimises the track-level log loss of out-of-fold probabilities.

    Each row's probabilities ``p`` become ``softmax(log p / T)`` (``T > 1``
    softens over-confident ones), then rows are averaged per track, as
    prediction does (temperature scaling, Guo et al. 2017).  Returns
    ``(T, loss before, loss after)``; ``T = 1`` when no candidate does better
    or there are fewer than ``min_tracks`` tracks (a few confident errors
    among tens of tracks would flatten every probability).
    """
    best = (track_loss_acc(*pool_by_track(proba, y, tracks))[0], 1.0)
    before = best[0]
    if len(np.unique(tracks)) < min_tracks:
        return 1.0, float(before), float(before)
    for T in grid:
        loss = track_loss_acc(*pool_by_track(temper(proba, T), y, tracks))[0]
        if loss < best[0] - 1e-9:
            best = (loss, float(T))
    return best[1], float(before), float(best[0])


def full_proba(lr, X, n_classes):
    """LR probabilities with a column for every class index (absent ones 0)."""
    p = lr.predict_proba(X)
    out = np.zeros((len(X), n_classes))
    out[:, lr.classes_.astype(int)] = p
    return out


def lr_to_dense(lr, scaler, n_classes):
    """Fold StandardScaler + multinomial LR into one Dense layer (kernel, bias)."""
    coef = np.asarray(lr.coef_, dtype=np.float64)
    icpt = np.asarray(lr.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary LR: p(class 1) = sigmoid(z) = softmax([0, z])
        coef = np.vstack([np.zeros_like(coef), coef])
        icpt = np.concatenate([[0.0], icpt])
    W = coef / scaler.scale_[None, :]
    b = icpt - W @ scaler.mean_
    kernel = np.zeros((coef.shape[1], n_classes))
    bias = np.full(n_classes, -1e4)  # a class absent from training gets ~0 probability
    cols = np.asarray(lr.classes_, dtype=int)
    kernel[:, cols] = W.T
    bias[cols] = b
    return kernel, bias


def load_classical(wpath, meta):
    """The ``StandardScaler`` + ``LogisticRegression`` pipeline of a ``model.npz`` (no pickle).

    Raises
    ------
    ModelError
        Missing arrays, wrong shapes, or descriptor columns other than this library's.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    try:
        with np.load(wpath, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        names = meta["feature_names"]
        F = len(names)
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_, scaler.var_ = a["mean"], a["scale"], a["var"]
        scaler.n_features_in_ = F
        scaler.n_samples_seen_ = 1
        lr = LogisticRegression(C=float(meta.get("C") or 1.0))
        lr.coef_, lr.intercept_, lr.classes_ = a["coef"], a["intercept"], a["classes"]
        lr.n_features_in_ = F
        lr.n_iter_ = np.zeros(1, dtype=np.int32)
        if a["mean"].shape != (F,) or a["coef"].shape[1] != F or names != descriptor_names():
            raise ValueError("descriptor columns differ from this library's")
    except (KeyError, ValueError, TypeError, IndexError, OSError) as e:
        raise ModelError(wpath, f"not a valid classical model ({e})") from None
    return Pipeline([("scale", scaler), ("logreg", lr)])


def fit_linear(X, y, tracks, groups, *, n_classes, C, class_weight, random_state, calibrate=False, grid=C_GRID):
    """Choose ``C`` (unless given) by grouped CV, then fit scaler + regression on all rows.

    With ``calibrate=True`` the out-of-fold probabilities of the chosen ``C``
    also fix a temperature (:func:`fit_temperature`), stored in the history as
    ``temperature`` (1.0 without cross-validation) with ``val_loss_calibrated``.

    Parameters
    ----------
    X : np.ndarray, shape (n_rows, n_features)
    y : np.ndarray of int, shape (n_rows,)
    tracks, groups : np.ndarray, shape (n_rows,)
        Track index and CV group (track or artist) of each row.

    Returns
    -------
    scaler : StandardScaler
    lr : LogisticRegression
        Fitted on the standardised rows.
    C : float
    history : dict of lists
        See :func:`choose_C`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    grid = (float(C),) if C is not None else tuple(grid)
    oof = {} if calibrate else None
    C, hist = choose_C(X, y, tracks, groups, n_classes, class_weight, random_state, grid=grid, oof_out=oof)
    if calibrate:
        T, _, after = (fit_temperature(oof["proba"], y, tracks) if oof.get("proba") is not None
                       else (1.0, None, None))
        hist["temperature"], hist["val_loss_calibrated"] = T, after
    scaler = StandardScaler().fit(X)
    lr = LogisticRegression(C=C, max_iter=3000, class_weight=class_weight,
                            random_state=random_state).fit(scaler.transform(X), y)
    return scaler, lr, C, hist


def classical_arrays(pipeline) -> dict:
    """The arrays of ``model.npz`` for a fitted ``classical`` pipeline (see :func:`load_classical`)."""
    scaler, lr = pipeline.named_steps["scale"], pipeline.named_steps["logreg"]
    return {"mean": scaler.mean_, "scale": scaler.scale_, "var": scaler.var_, "coef": lr.coef_,
            "intercept": lr.intercept_, "classes": np.asarray(lr.classes_, dtype=np.int64)}
