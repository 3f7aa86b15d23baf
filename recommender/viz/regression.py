"""Figures of a regressor's and a multi-label model's evaluation report.

:func:`scatter` (predicted vs true, with the identity line and, for a tempo,
the octave lines x2 and x1/2) and :func:`residuals` (residual vs true) take a
report of :func:`recommender.learn.regression.evaluate_regression`;
:func:`roc_curves` and :func:`pr_curves` (one curve per label) one of
:func:`recommender.learn.multilabel.evaluate_multilabel`.  Figures come from
the factory of :mod:`.plots` (Agg canvas, no pyplot); :func:`save` writes one
atomically.  Nothing here imports :mod:`recommender.learn`.
"""

from __future__ import annotations

import numpy as np

from .plots import figure, save

__all__ = ["pr_curves", "residuals", "roc_curves", "save", "scatter"]


def _values(report, target):
    pr = report["predictions"]
    return np.asarray(pr["true"][target], np.float64), np.asarray(pr["predicted"][target], np.float64)


def _is_tempo(name):
    return "bpm" in str(name).lower() or "tempo" in str(name).lower()


def scatter(report, target):
    """Predicted vs true values of ``target`` on the test tracks (and the tempo estimator's, if in the report)."""
    y, p = _values(report, target)
    fig = figure((5.5, 5.0))
    ax = fig.add_subplot()
    est = report["predictions"].get("descriptor_tempo")
    if est is not None and _is_tempo(target):
        e = np.array([np.nan if v is None else v for v in est], np.float64)
        ax.scatter(y, e, s=14, marker="x", color="0.55", label="descriptor tempo estimator")
    ax.scatter(y, p, s=16, color="C0", label=f"{report.get('mode', 'model')} regressor")
    finite = np.concatenate([y, p[np.isfinite(p)]])
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="k", lw=1, label="predicted = true")
    if _is_tempo(target):
        for f, ls in ((2.0, ":"), (0.5, "--")):
            ax.plot([lo, hi], [f * lo, f * hi], color="0.4", lw=0.8, ls=ls, label=f"x{f:g}")
        ax.set_ylim(lo, hi)
    m = report["per_target"][target]["model"]
    extra = f"  Acc1 {m['accuracy1']:.2f}" if "accuracy1" in m else ""
    r2 = "n/a" if m.get("r2") is None else f"{m['r2']:.2f}"
    ax.set_title(f"{target}: MAE {m['mae']:.3g}  RMSE {m['rmse']:.3g}  R² {r2}{extra}  (n={m['n']})", fontsize=9)
    ax.set_xlabel(f"true {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def residuals(report, target):
    """Residual (predicted - true) against the true value of ``target``."""
    y, p = _values(report, target)
    fig = figure((6.0, 3.5))
    ax = fig.add_subplot()
    ax.axhline(0, color="k", lw=1)
    ax.scatter(y, p - y, s=16, color="C1")
    mean = report["per_target"][target]["mean_baseline"]
    ax.set_title(f"{target}: residuals (mean baseline MAE {mean['mae']:.3g})", fontsize=9)
    ax.set_xlabel(f"true {target}")
    ax.set_ylabel("predicted - true")
    return fig


def _curve(y, s, kind):
    """(x, y) of the ROC (fpr, tpr) or precision-recall (recall, precision) curve of scores ``s``."""
    order = np.argsort(-s, kind="stable")
    y = np.asarray(y)[order]
    tp = np.cumsum(y == 1)
    fp = np.cumsum(y == 0)
    P, N = max(1, tp[-1]), max(1, fp[-1])
    if kind == "roc":
        return np.r_[0, fp / N], np.r_[0, tp / P]
    return np.r_[0, tp / P], np.r_[1, tp / np.arange(1, len(y) + 1)]


def _per_label(report, kind):
    Y = np.asarray(report["predictions"]["true"], np.int64)
    S = np.asarray(report["predictions"]["probability"], np.float64)
    fig = figure((6.0, 5.0))
    ax = fig.add_subplot()
    key = "roc_auc" if kind == "roc" else "pr_auc"
    for j, n in enumerate(report["labels"]):
        if Y[:, j].sum() == 0 or (kind == "roc" and Y[:, j].all()):
            continue
        x, yy = _curve(Y[:, j], S[:, j], kind)
        v = report["per_label"][n][key]
        ax.plot(x, yy, lw=1.2, label=f"{n} ({v:.2f})" if v is not None else n)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    else:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
    ma, mi = report["macro"][key], report["micro"][key]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    ax.set_title(f"{'ROC' if kind == 'roc' else 'precision-recall'} per label: macro {fmt(ma)}, micro {fmt(mi)} "
                 f"(n={report['n_test']})", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
    return fig


def roc_curves(report):
    """One ROC curve per label (legend: its ROC-AUC)."""
    return _per_label(report, "roc")


def pr_curves(report):
    """One precision-recall curve per label (legend: its PR-AUC, average precision)."""
    return _per_label(report, "pr")
