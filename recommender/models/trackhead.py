"""A track-level head (``head_features="summary"``, ``"summary-all"``...) as an analysis model.

A track-level head (:mod:`recommender.learn._head`) classifies a track from
the mean and spread over its patches of layers of one or every shipped
network.  :class:`TrackHeadModel` lets such a model back ``classify --model``
and ``index --model``: it runs every network the head needs on the *same*
log-mel patches (the file is decoded once), and hands the analysis pipeline

* the backbone's (first network's) ``penultimate`` embedding, as any model;
* as its ``pool`` layer, the backbone's ``pool`` followed by each further
  network's ``pool`` and ``penultimate``, so the pipeline's per-track
  :attr:`~recommender.analysis.TrackAnalysis.layer_summary` (mean and spread
  over the track's patches, :func:`recommender.features.pooling.layer_summary`)
  holds every moment the head reads;
* placeholder class probabilities (NaN): a spread over patches is not a
  function of one patch.

:meth:`TrackHeadModel.finish` turns such an analysis into the track's own:
the head's calibrated class probabilities on every patch row (so
``probs`` is the track's prediction), and the backbone's own layer summary
(so an index's ``similarity`` space is what the backbone alone gives).
The indexer and ``recommender classify`` call it; it does nothing to an
analysis already finished or made by another model.

The arithmetic of a track-level head (standardise, linear, softmax,
temperature) is :func:`head_proba`, used by :meth:`TrackHeadModel.predict_rows`
and by the training side (:meth:`recommender.learn._head.TrackHead.predict_proba`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ModelError

__all__ = ["TrackHeadModel", "head_proba", "load_track_head", "temper"]


def temper(p, T):
    """``softmax(log(p) / T)`` row by row (``p`` clipped at 1e-12): temperature scaling
    (Guo et al. 2017, "On calibration of modern neural networks")."""
    z = np.log(np.clip(p, 1e-12, 1.0)) / float(T)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def head_proba(X, mean, scale, coef, intercept, classes, n_out, temperature) -> np.ndarray:
    """Class probabilities ``(n, n_out)`` of a track-level head on rows ``X`` ``(n, d)``.

    ``softmax(((X - mean) / scale) @ coef.T + intercept)`` (a binary head's one logit ``z``
    as ``softmax([0, z])``), tempered by ``temperature`` (:func:`temper`), in the columns
    ``classes`` (the others 0).
    """
    X = np.asarray(X, dtype=np.float64)
    z = ((X - mean) / scale) @ np.asarray(coef).T + intercept
    if z.shape[1] == 1:  # binary: sigmoid(z) = softmax([0, z])
        z = np.hstack([np.zeros_like(z), z])
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    out = np.zeros((len(X), n_out))
    out[:, classes] = temper(p, temperature)
    return out


class TrackHeadModel:
    """A saved track-level head plus the pretrained networks it reads (see the module docstring).

    Attributes
    ----------
    name : str
        ``"custom:<folder>"`` (as an index catalog records it).
    tags : list of str
        The classes; ``n_tags`` of them.
    embedding_dim : int
        The backbone's embedding size (200 for musicnn).
    networks : list of TagModel
        The pretrained networks, backbone first, in the order of the head's features.
    """

    has_pool = True
    task = "classify"
    mode = "head"
    thresholds = None

    @property
    def value_names(self) -> list:
        """A regressor's output names: none (this is a classifier)."""
        return []

    def __init__(self, name, classes, weights_sha256, arrays, recipe, networks, *, source=None):
        self.name = name
        self.tags = [str(c) for c in classes]
        self.n_tags = len(self.tags)
        self.weights_sha256 = weights_sha256
        self.source = source
        self.recipe = dict(recipe)
        # the networks, or a callable giving them: loaded on first use (load_model holds its lock
        # while it loads this model, and loads the networks with the same lock)
        self._networks = networks if not callable(networks) else None
        self._get_networks = networks if callable(networks) else None
        self.batch_size = 32
        self.runtime = self.precision = None
        a = arrays
        self.mean, self.scale = np.asarray(a["mean"], np.float64), np.asarray(a["scale"], np.float64)
        self.coef, self.intercept = np.asarray(a["coef"], np.float64), np.asarray(a["intercept"], np.float64)
        self.classes = np.asarray(a["classes"], np.int64)
        self.temperature = float(np.asarray(a["temperature"]).reshape(-1)[0])
        if self.coef.shape[1] != len(self.mean):
            raise ModelError(source, f"coef reads {self.coef.shape[1]} features, mean has {len(self.mean)}")
        if self._networks is not None:
            self._check()

    @property
    def networks(self) -> list:
        """The pretrained networks, backbone first (loaded on first use)."""
        if self._networks is None:
            self._networks = list(self._get_networks())
            self._check()
        return self._networks

    def _check(self):
        b = self._networks[0]
        self.batch_size = int(getattr(b, "batch_size", 32))
        self.runtime = getattr(b, "runtime", None)
        self.precision = getattr(b, "precision", None)
        self._dims = [(int(n.pool_dim), int(n.embedding_dim)) for n in self._networks]
        if len(self.mean) != self._row_dim():
            raise ModelError(self.source, f"the head reads {len(self.mean)} features; recipe "
                                          f"{self.recipe.get('name')!r} over {[n.name for n in self._networks]} "
                                          f"gives {self._row_dim()}")

    @property
    def embedding_dim(self) -> int:
        """The backbone's embedding size."""
        return int(self.networks[0].embedding_dim)

    @property
    def pool_dim(self) -> int:
        """Size of the ``pool`` output :meth:`predict_patches` gives."""
        _ = self.networks  # loaded, with their dims
        return self._dims[0][0] + sum(p + e for p, e in self._dims[1:])

    @property
    def metadata(self) -> dict:
        b = self.networks[0]
        return {"tags": list(self.tags), "embedding_dim": self.embedding_dim, "mode": "head",
                "architecture": {"n_frames": b.n_frames, "n_mels": b.n_mels},
                "head_recipe": self.recipe, "networks": [n.name for n in self.networks]}

    # ------------------------------------------------------------------ the analysis network
    def predict_patches(self, P, *, batch_size=None, with_pool=False):
        """Every network on the same patches ``P`` (n, 187, 96).

        Returns ``(NaN placeholder (n, n_tags), backbone embedding (n, d)[, pool (n, pool_dim)])``,
        ``pool`` being the backbone's ``pool`` then each further network's ``pool`` and
        ``penultimate`` (see the module docstring).
        """
        outs = [net.predict_patches(P, batch_size=batch_size, with_pool=True) for net in self.networks]
        probs = np.full((len(P), self.n_tags), np.nan, dtype=np.float32)
        emb = outs[0][1]
        if not with_pool:
            return probs, emb
        pool = np.concatenate([outs[0][2]] + [np.concatenate([o[2], o[1]], axis=1) for o in outs[1:]], axis=1)
        return probs, emb, pool

    # ------------------------------------------------------------------ track level
    def _moments(self, layer_summary):
        """``[(mean pool, mean pen, std pool, std pen)]`` of each network from the pipeline's summary."""
        s = np.asarray(layer_summary, dtype=np.float64).reshape(-1)
        P, E = self.pool_dim, self.embedding_dim
        if len(s) != 2 * (P + E):
            raise ModelError(self.source, f"layer summary of {len(s)} values; this head's analysis gives "
                                          f"{2 * (P + E)} (was it made by this model?)")
        mean_pool, mean_e0, std_pool, std_e0 = s[:P], s[P:P + E], s[P + E:2 * P + E], s[2 * P + E:]
        p0 = self._dims[0][0]
        out = [(mean_pool[:p0], mean_e0, std_pool[:p0], std_e0)]
        o = p0
        for p, e in self._dims[1:]:
            out.append((mean_pool[o:o + p], mean_pool[o + p:o + p + e], std_pool[o:o + p], std_pool[o + p:o + p + e]))
            o += p + e
        return out

    def _row_dim(self):
        layers = self.recipe.get("layers", ["pool", "penultimate"])
        return sum(2 * ((p if "pool" in layers else 0) + (e if "penultimate" in layers else 0)) for p, e in self._dims)

    def track_row(self, layer_summary) -> np.ndarray:
        """The head's input row (1, D) of one track: per network, the means then the spreads of its layers."""
        layers = self.recipe.get("layers", ["pool", "penultimate"])
        parts = []
        for mp, me, sp, se in self._moments(layer_summary):
            means = [m for m, lay in ((mp, "pool"), (me, "penultimate")) if lay in layers]
            stds = [s for s, lay in ((sp, "pool"), (se, "penultimate")) if lay in layers]
            parts += means + stds
        return np.concatenate(parts)[None, :]

    def predict_rows(self, X) -> np.ndarray:
        """Calibrated class probabilities (n, n_tags) of head rows ``X`` (n, D)."""
        return head_proba(X, self.mean, self.scale, self.coef, self.intercept, self.classes, self.n_tags,
                          self.temperature)

    def finish(self, res):
        """``res`` (a :class:`TrackAnalysis` of this model) with the head's class probabilities
        on every patch row and the backbone's own layer summary; ``res`` unchanged when it is
        finished already, failed, or has no layer summary.

        Raises
        ------
        ModelError
            A layer summary of another size (another model's analysis).
        """
        ls = getattr(res, "layer_summary", None)
        _ = self.networks  # loaded, with their dims
        P0, E = self._dims[0]
        if ls is None or len(ls) == 2 * (P0 + E):
            return res
        probs = self.predict_rows(self.track_row(ls))[0].astype(np.float32)
        mp, me, sp, se = self._moments(ls)[0]
        own = np.concatenate([mp, me, sp, se]).astype(np.float32)
        rows = np.repeat(probs[None, :], len(res.patch_probs), axis=0)
        return dataclasses.replace(res, patch_probs=rows, layer_summary=own)

    def __repr__(self):
        return (f"TrackHeadModel(name={self.name!r}, recipe={self.recipe.get('name')!r}, classes={self.tags}, "
                f"networks={[n.name for n in self.networks]}, sha256={self.weights_sha256[:12]})")


def load_track_head(directory, meta, weights_path, *, name, load_network) -> TrackHeadModel:
    """The :class:`TrackHeadModel` of a saved track-level head (``model.npz`` + ``head_recipe``).

    ``name`` is the model's ``"custom:<folder>"``; ``load_network(name)`` loads a pretrained
    network (:func:`recommender.models.load_model`).

    Raises
    ------
    ModelError
        Missing or inconsistent arrays, or networks whose weights differ from those the
        head was trained on.
    """
    try:
        recipe = dict(meta["head_recipe"])
        nets = [(str(n["name"]), str(n["weights_sha256"])) for n in meta["head_networks"]]
        with np.load(weights_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("mean", "scale", "coef", "intercept", "classes", "temperature")}
    except (KeyError, TypeError, ValueError, OSError) as e:
        raise ModelError(weights_path, f"not a valid track-level head model ({e})") from None

    def networks():
        out = []
        for net_name, sha in nets:
            net = load_network(net_name)
            if net.weights_sha256 != sha:
                raise ModelError(weights_path, f"trained on {net_name} with weights {sha[:12]}, this library has "
                                               f"{net.weights_sha256[:12]}: retrain the model")
            if not getattr(net, "has_pool", False):
                raise ModelError(weights_path, f"{net_name} gives no pool layer: a track-level head needs it")
            out.append(net)
        return out

    return TrackHeadModel(name, meta["classes"], meta["weights_sha256"], arrays, recipe, networks,
                          source=directory)
