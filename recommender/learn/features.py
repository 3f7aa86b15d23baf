"""Feature recipes of the ``head`` mode: which layers of which pretrained networks it learns from.

A recipe says which shipped networks (:func:`recommender.models.available_models`)
run over a track's patches, which of their layers are kept (``penultimate``:
the 200-d embedding; ``pool``: the 1506-d back-end input, max and mean over
time of the mid-end channels) and at what level the classifier sees them:

``"patch"`` level
    one row per 3-s patch (the embedding, optionally with the tag
    probabilities); the logistic regression
    is folded into a Keras ``Dense`` on top of the network(s), so the model is
    one ``.keras`` file that an index can run, and a track's probabilities
    are the mean of its patches'.
``"track"`` level
    one row per track: mean and standard deviation over its patches of each
    kept layer (for ``pool`` + ``penultimate`` that is
    :func:`recommender.features.pooling.layer_summary`, the vector the index
    keeps); saved as plain arrays (see :mod:`recommender.learn._head_track`).

Every recipe is fitted the same way (:func:`recommender.learn._linear.fit_linear`):
standardised inputs, multinomial logistic regression, ``C`` chosen by
cross-validation grouped by track (by artist when known) on the training
tracks only, and a temperature fitted on the same out-of-fold probabilities
(calibration).  Package-internal apart from :data:`RECIPES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["CANDIDATES", "RECIPES", "Recipe", "fit_predict_cached", "grid_of", "patch_rows", "recipe", "track_rows"]


@dataclass(frozen=True)
class Recipe:
    """One head feature recipe (see the module docstring)."""

    name: str
    level: str  # "patch" or "track"
    layers: tuple  # of "penultimate", "pool", "tags"
    networks: str  # "backbone" (the classifier's backbone) or "all" (every shipped network)
    doc: str

    def network_names(self, backbone):
        """The pretrained networks this recipe runs, ``backbone`` first."""
        if self.networks == "backbone":
            return [backbone]
        from ..models import available_models

        return [backbone] + [n for n in available_models() if n != backbone]

    def to_json(self):
        return {"name": self.name, "level": self.level, "layers": list(self.layers), "networks": self.networks}


RECIPES = {r.name: r for r in (
    Recipe("embedding", "patch", ("penultimate",), "backbone",
           "the backbone's 200-d penultimate embedding of each patch (the head of release 1)"),
    Recipe("embedding+tags", "patch", ("penultimate", "tags"), "backbone",
           "the embedding plus the backbone's tag probabilities, per patch"),
    Recipe("summary", "track", ("pool", "penultimate"), "backbone",
           "the backbone's layer summary per track: mean and std over patches of pool and penultimate"),
    Recipe("summary-all", "track", ("pool", "penultimate"), "all",
           "the layer summary of every shipped network, per track"),
    Recipe("embedding-summary-all", "track", ("penultimate",), "all",
           "mean and std over patches of every shipped network's embedding, per track"),
)}

#: The recipes ``benchmarks/bench_head_features.py select`` compares.
CANDIDATES = ("embedding", "summary", "summary-all", "embedding-summary-all")


def recipe(name) -> Recipe:
    """The :class:`Recipe` called ``name``; :class:`ParameterError` naming the choices otherwise."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ParameterError(f"head_features={name!r}: expected one of {', '.join(RECIPES)}") from None


def grid_of(rec):
    """The ``C`` candidates of a recipe (:data:`~._linear.C_GRID_TRACK` at track level)."""
    from . import _linear as linear

    return linear.C_GRID_TRACK if rec.level == "track" else linear.C_GRID


def patch_rows(rec, per_network):
    """One track's patch-level rows: ``(m, d)`` from ``[{layer: (m, d_l)}]`` of each network."""
    return np.concatenate([net[layer] for net in per_network for layer in rec.layers], axis=1)


def track_rows(rec, per_network):
    """One track's track-level row: ``(1, 2 d)``: means of the recipe's layers, then their std.

    For ``("pool", "penultimate")`` of one network this is exactly
    :func:`recommender.features.pooling.layer_summary` (population std).
    """
    parts = []
    for net in per_network:
        A = np.concatenate([np.asarray(net[layer], dtype=np.float64) for layer in rec.layers], axis=1)
        parts += [A.mean(axis=0), A.std(axis=0)]
    return np.concatenate(parts)[None, :]


def rows(rec, per_network):
    """:func:`patch_rows` or :func:`track_rows` as the recipe's level says."""
    return patch_rows(rec, per_network) if rec.level == "patch" else track_rows(rec, per_network)


def fit_predict_cached(name, layers, y, train, test, *, n_classes, random_state=0, networks=None):
    """Fit recipe ``name`` on cached layers of the ``train`` tracks; track probabilities of ``test``.

    ``layers`` maps ``"<network>/<layer>"`` to per-track lists of ``(m_i, d)``
    arrays (``benchmarks/bench_head_features.py``).  Fitting is what
    :meth:`MusicClassifier.fit` does (grouped CV of ``C`` by track, then
    calibration).  Returns ``(probabilities (len(test), n_classes), C)``.
    """
    from . import _linear as linear
    from .evaluate import pool_by_track

    rec = recipe(name)
    nets = networks or sorted({k.split("/")[0] for k in layers})
    nets = rec.network_names(nets[0]) if rec.networks == "all" else [nets[0]]

    def feats(i):
        return rows(rec, [{lay: layers[f"{n}/{lay}"][i] for lay in rec.layers} for n in nets])

    Xtr = [feats(i) for i in train]
    X = np.concatenate(Xtr)
    tracks = np.repeat(np.arange(len(train)), [len(x) for x in Xtr])
    yr = np.repeat(np.asarray(y)[train], [len(x) for x in Xtr])
    scaler, lr, C, hist = linear.fit_linear(X, yr, tracks, tracks, n_classes=n_classes, C=None,
                                            class_weight="balanced", random_state=random_state, calibrate=True,
                                            grid=grid_of(rec))
    out = np.zeros((len(test), n_classes))
    for j, i in enumerate(test):
        p = linear.full_proba(lr, scaler.transform(feats(i)), n_classes)
        out[j] = pool_by_track(linear.temper(p, hist["temperature"]), np.zeros(len(p), int),
                               np.zeros(len(p), int))[0][0]
    return out, C
