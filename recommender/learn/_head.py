"""Fitting the ``head`` mode, and its track-level recipes (``head_features="summary-all"``...).

:func:`fit_head` fits any recipe of :mod:`recommender.learn.features`: the
patch-level ones as before (a Dense folded on top of the backbone), the
track-level ones as below.

One row per track: mean and standard deviation over the track's patches of
the recipe's layers of one or every shipped network (see
:mod:`recommender.learn.features`), a standardised multinomial logistic
regression with ``C`` chosen by grouped cross-validation on the training
tracks, and a temperature fitted on the out-of-fold probabilities.

Saved as plain arrays in ``model.npz`` (no pickle) next to a ``model.json``
whose ``mode`` is ``"head"`` and whose ``head_recipe`` / ``head_networks``
name the recipe and the networks (with their weights' SHA-256).  A standard
deviation over patches is not a function of one patch, so such a model has
no per-patch network: ``predict``/``evaluate`` compute its rows here
(:func:`track_table`), ``classify --model``/``index --model`` through
:class:`recommender.models.trackhead.TrackHeadModel` (every network on the
same patches, then :meth:`~recommender.models.trackhead.TrackHeadModel.finish`;
:func:`track_head_model`).  Package-internal (used by :mod:`.classifier`).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ModelError
from . import features as hf

__all__ = ["TrackHead", "fit_head", "is_track_recipe", "patch_outputs", "track_head_model", "track_table"]

logger = logging.getLogger(__name__)

def is_track_recipe(name) -> bool:
    """True for a recipe of :data:`recommender.learn.features.RECIPES` at track level."""
    return hf.recipe(name).level == "track"


def fit_head(clf, tr, ytr, va, yva, groups_of):
    """``MusicClassifier._fit_head``: fit ``clf.head_features`` on the training + validation tracks."""
    from . import _linear as linear
    from . import _networks as nets
    from ._inputs import embedding_table, stack_rows

    rec = hf.recipe(clf.head_features)
    tm = nets.backbone(clf.backbone)
    if rec.level == "patch":
        table, fails = embedding_table(tm, tr + va, sampling=clf.patches_per_track,
                                       with_tags="tags" in rec.layers, verbose=clf.verbose)
        clf.failures_.extend(fails)
        scaler, lr = clf._fit_linear(table, tr, ytr, va, yva, groups_of)
        kernel, bias = linear.lr_to_dense(lr, scaler, len(clf.classes_))
        clf.model_ = nets.build_head_model(tm, len(clf.classes_), clf.head_features, kernel, bias)
        clf.embedding_dim_ = tm.embedding_dim
    else:
        names = rec.network_names(tm.name)
        table, fails = track_table(rec, names, tr + va, sampling=clf.patches_per_track, verbose=clf.verbose)
        clf.failures_.extend(fails)
        tr, ytr = clf._keep(tr, ytr, table)
        va, yva = clf._keep(va, yva, table)
        if len(set(ytr)) < 2:
            from ..errors import ParameterError

            raise ParameterError("fewer than 2 classes left with readable training tracks")
        paths = tr + va
        X, y, tracks = stack_rows(table, paths, np.concatenate([ytr, yva]).astype(int))
        groups = np.array([groups_of.get(paths[t], paths[t]) for t in tracks], dtype=object)
        scaler, lr, clf.C_, hist = linear.fit_linear(
            X, y, tracks, groups, n_classes=len(clf.classes_), C=clf.C, class_weight=clf.class_weight,
            random_state=clf.random_state, calibrate=True, grid=hf.grid_of(rec))
        clf.temperature_ = hist["temperature"]
        clf.history_ = hist
        nets_info = [{"name": n, "weights_sha256": nets.backbone(n).weights_sha256} for n in names]
        clf.model_ = TrackHead.from_fit(rec.name, nets_info, scaler, lr, clf.temperature_, len(clf.classes_))
        clf.n_train_, clf.n_validation_ = len(tr), len(va)
        clf.training_paths_, clf.validation_paths_ = list(tr), list(va)
        clf.embedding_dim_ = None
    clf.backbone_ = tm.name
    clf.backbone_sha256_ = tm.weights_sha256
    clf._tag_model = None


def track_head_model(clf):
    """The :class:`~recommender.models.trackhead.TrackHeadModel` of a fitted track-level head ``clf``."""
    from ..models import load_model
    from ..models.trackhead import TrackHeadModel

    h = clf.model_
    return TrackHeadModel(getattr(clf, "name_", None) or "custom:head", clf.classes_,
                          getattr(clf, "weights_sha256_", None) or "unsaved", h.arrays(), h.recipe.to_json(),
                          [load_model(n["name"]) for n in h.networks], source=getattr(clf, "source_", None))


def patch_outputs(clf, paths):
    """``({path: (1, n_classes)}, failures)`` of a track-level head (one row per track)."""
    head = clf.model_
    rec = head.recipe
    table, fails = track_table(rec, [n["name"] for n in head.networks], paths,
                               sampling=clf.patches_per_track, verbose=clf.verbose)
    return {p: head.predict_proba(X) for p, X in table.items()}, fails


def track_table(rec, networks, paths, *, sampling, verbose=False):
    """Track rows of recipe ``rec``: ``({path: (1, d) float64}, [failures])``.

    ``networks`` are pretrained model names, in the order their features are
    concatenated.  A track any network cannot read is a failure.
    """
    from tqdm.auto import tqdm

    from ..analysis.pipeline import TrackAnalysis, analyze_files
    from ..models import load_model

    per, failures = {}, {}
    for name in networks:
        tm = load_model(name)
        it = analyze_files(paths, model=tm, sampling=sampling)
        for res in tqdm(it, total=len(paths), desc=f"layers ({name})", disable=not verbose, leave=False):
            if not isinstance(res, TrackAnalysis):
                failures.setdefault(res.path, res.reason)
                continue
            got = {"penultimate": res.patch_embeddings}
            if "pool" in rec.layers:
                if res.layer_summary is None:
                    raise ModelError(name, f"head_features={rec.name!r} needs the 'pool' layer, which "
                                           f"this model does not give")
                # layer_summary = [mean(pool), mean(pen), std(pool), std(pen)]: the recipe's row as is
                per.setdefault(res.path, []).append(np.asarray(res.layer_summary, dtype=np.float64))
            else:
                per.setdefault(res.path, []).append(hf.track_rows(rec, [got])[0])
    out = {}
    for p, parts in per.items():
        if p not in failures and len(parts) == len(networks):
            out[p] = np.concatenate(parts)[None, :]
    fails = [{"path": p, "reason": r} for p, r in failures.items()]
    for f in fails:
        logger.warning("skipping %s: %s", f["path"], f["reason"])
    return out, fails


class TrackHead:
    """Scaler + logistic regression + temperature on track rows (the fitted model of a track recipe)."""

    def __init__(self, recipe, networks, mean, scale, coef, intercept, classes, temperature, n_classes):
        self.recipe = hf.recipe(recipe)
        self.networks = list(networks)  # [{"name", "weights_sha256"}]
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.classes = np.asarray(classes, dtype=np.int64)
        self.temperature = float(temperature)
        self.n_classes = int(n_classes)

    @classmethod
    def from_fit(cls, recipe, networks, scaler, lr, temperature, n_classes):
        return cls(recipe, networks, scaler.mean_, scaler.scale_, lr.coef_, lr.intercept_, lr.classes_,
                   temperature, n_classes)

    @property
    def n_features(self):
        return len(self.mean)

    def predict_proba(self, X):
        """Calibrated class probabilities of track rows ``X`` (n, d): (n, n_classes)."""
        from ..models.trackhead import head_proba

        return head_proba(X, self.mean, self.scale, self.coef, self.intercept, self.classes, self.n_classes,
                          self.temperature)

    def arrays(self) -> dict:
        """The arrays of ``model.npz``."""
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept,
                "classes": self.classes, "temperature": np.array([self.temperature])}

    def sidecar(self) -> dict:
        """The ``model.json`` fields that name the recipe and its networks."""
        return {"head_recipe": self.recipe.to_json(), "head_networks": self.networks}

    @classmethod
    def load(cls, wpath, meta):
        """Rebuild from ``model.npz`` and the sidecar; :class:`ModelError` on anything inconsistent.

        The networks must be this library's, with the weights the model was trained on.
        """
        from ..models import load_model

        try:
            rec = hf.recipe(meta["head_recipe"]["name"])
            nets = [{"name": str(n["name"]), "weights_sha256": str(n["weights_sha256"])}
                    for n in meta["head_networks"]]
            with np.load(wpath, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
            head = cls(rec.name, nets, a["mean"], a["scale"], a["coef"], a["intercept"], a["classes"],
                       float(a["temperature"][0]), len(meta["classes"]))
            if (head.scale.shape != head.mean.shape or head.coef.shape[1] != head.n_features
                    or head.classes.max() >= head.n_classes or not np.all(head.scale > 0)):
                raise ValueError("array shapes disagree")
        except (KeyError, TypeError, ValueError, IndexError, OSError) as e:
            raise ModelError(wpath, f"not a valid track-level head model ({e})") from None
        for n in nets:
            sha = load_model(n["name"]).weights_sha256
            if sha != n["weights_sha256"]:
                raise ModelError(wpath, f"trained on {n['name']} with weights {n['weights_sha256'][:12]}, "
                                        f"this library has {sha[:12]}: retrain the model")
        return head
