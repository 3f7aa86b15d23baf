"""What the regressor and the multi-label classifier share: features, the folded
affine head, saving and loading in the safe format, per-track predictions.

Both learn, per 3-s patch (``head``: the backbone's 200-d ``penultimate``
embedding) or per 10-s clip (``classical``: the MIR descriptors of
:func:`recommender.descriptors.describe`), an affine map ``x @ K + b``
(regression: the values; multi-label: logits, through a sigmoid), and a
track's prediction is the mean over its patches/clips.  For a linear
regressor the mean of the patch predictions *is* the prediction on the mean
embedding, so fitting a ridge on per-track mean embeddings and applying it per
patch agree exactly.  ``head`` models are saved as one ``.keras`` file
(backbone + ``Dense``; loaded with ``safe_mode``), which is also what
``classify --model`` and ``index --model`` run; ``classical`` ones as plain
``.npz`` arrays.  Package-internal.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import AudioError, ModelError
from ..models import trained
from . import _networks as nets
from ._inputs import descriptor_clips, descriptor_names, embedding_table, map_paths

__all__ = ["AffineModel", "group_ids", "load_affine", "track_features"]

logger = logging.getLogger(__name__)

_OUTPUT_LAYER = {"regress": "values", "multilabel": "label_probabilities"}


def track_features(mode, paths, *, backbone, patches, verbose=False):
    """({path: (rows, F) float64}, failures, backbone TagModel or None) of the mode's inputs."""
    if mode == "head":
        tm = nets.backbone(backbone)
        table, fails = embedding_table(tm, paths, sampling=patches, verbose=verbose)
        return table, fails, tm
    table, fails = map_paths(lambda p: descriptor_clips(p, patches), paths, desc="descriptors", verbose=verbose)
    return table, fails, None


def group_ids(df):
    """CV groups: the artist when every row has one, else the track."""
    if "artist" in df and df["artist"].notna().all():
        return np.unique(df["artist"].astype(str).to_numpy(), return_inverse=True)[1]
    return np.arange(len(df))


class AffineModel:
    """``x @ kernel + bias`` (sigmoid for ``multilabel``), per row, averaged per track.

    ``keras_model`` is set for ``head`` (backbone + ``Dense``); ``classical``
    applies the arrays to descriptor clips.
    """

    def __init__(self, task, mode, names, kernel, bias, *, patches, keras_model=None, embedding_dim=None,
                 backbone=None, backbone_sha256=None):
        self.task, self.mode, self.names = task, mode, [str(n) for n in names]
        self.kernel = np.asarray(kernel, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.patches = int(patches)
        self.keras_model = keras_model
        self.embedding_dim = embedding_dim
        self.backbone, self.backbone_sha256 = backbone, backbone_sha256
        self._tm = None

    @classmethod
    def head(cls, task, names, kernel, bias, tm, *, patches):
        """Fold ``kernel``/``bias`` onto a fresh copy of backbone ``tm``: ``(batch, 187, 96) -> [out, emb]``."""
        keras = nets.keras_module()
        base = nets._fresh_backbone(tm)
        emb = base.get_layer("penultimate").output
        dense = keras.layers.Dense(len(names), name="output_logits" if task == "multilabel" else "value_dense")
        z = dense(emb)
        act = "sigmoid" if task == "multilabel" else "linear"
        out = keras.layers.Activation(act, name=_OUTPUT_LAYER[task], dtype="float32")(z)
        model = keras.Model(base.input, [out, emb], name=f"{task}_head")
        dense.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
        return cls(task, "head", names, kernel, bias, patches=patches, keras_model=model,
                   embedding_dim=int(emb.shape[-1]), backbone=tm.name, backbone_sha256=tm.weights_sha256)

    def rows(self, X):
        z = np.asarray(X, dtype=np.float64) @ self.kernel + self.bias
        return 1 / (1 + np.exp(-np.clip(z, -60, 60))) if self.task == "multilabel" else z

    def tag_model(self, *, name=None, sha=None, source=None, thresholds=None):
        if self.keras_model is None:
            raise ModelError(source, trained.classical_no_patches(self.task))
        if self._tm is None:
            info = trained.tag_metadata(self.names, self.embedding_dim, self.mode, self.task)
            self._tm = trained.TrainedTagModel(name or f"custom:{self.task}", self.keras_model, info,
                                               sha or "unsaved", source=source, mode=self.mode, task=self.task,
                                               thresholds=thresholds or [0.5] * len(self.names))
        return self._tm

    def predict_files(self, paths, *, tag_model=None, verbose=False):
        """({path: track output (n_outputs,)}, failures): the mean over the track's patches/clips."""
        paths = [os.path.abspath(os.fspath(p)) for p in paths]
        if self.mode == "classical":
            table, fails = map_paths(lambda p: descriptor_clips(p, self.patches), paths, desc="descriptors",
                                     verbose=verbose)
            return {p: self.rows(X).mean(0) for p, X in table.items()}, fails
        from ..analysis.pipeline import TrackAnalysis, analyze_files

        out, fails = {}, []
        for res in analyze_files(paths, model=tag_model or self.tag_model(), sampling=self.patches):
            if isinstance(res, TrackAnalysis):
                out[os.path.abspath(res.path)] = res.patch_probs.astype(np.float64).mean(0)
            else:
                logger.warning("skipping %s: %s", res.path, res.reason)
                fails.append({"path": res.path, "reason": res.reason})
        return out, fails

    def save(self, directory, *, extra, tracks):
        """Write the model folder (:func:`recommender.models.trained.write_model`); return its weights' SHA-256."""
        if self.mode == "classical":
            arrays = {"kernel": self.kernel, "bias": self.bias}

            def write_weights(tmp):
                np.savez(tmp, **arrays)
            wfile = trained.NPZ_FILE
        else:
            write_weights, wfile = self.keras_model.save, trained.KERAS_FILE
        meta = trained.new_sidecar(mode=self.mode, classes=self.names, embedding_dim=self.embedding_dim,
                                   weights_file=wfile, task=self.task)
        meta["backbone"] = (None if self.backbone is None else
                            {"name": str(self.backbone), "weights_sha256": self.backbone_sha256})
        meta["patches_per_track"] = self.patches
        if self.mode == "classical":
            meta["feature_names"] = descriptor_names()
        meta.update(extra)
        return trained.write_model(directory, write_weights=write_weights, meta=meta, tracks=tracks)


def load_affine(path, task):
    """(AffineModel, sidecar, folder) of a saved regressor or multi-label model.

    Raises
    ------
    ModelError
        Not a model folder, another task, or weights of the wrong shape.
    """
    d = trained.model_dir(path)
    if d is None:
        raise ModelError(path, "not a model directory (expected a folder with model.json)")
    meta, wpath = trained.read_sidecar(d)
    got = meta.get("task", "classify")
    if got != task:
        raise ModelError(d, f"task={got!r}: not a {task} model")
    names = meta["classes"]
    patches = int(meta.get("patches_per_track") or 16)
    if meta["mode"] == "classical":
        try:
            with np.load(wpath, allow_pickle=False) as z:
                K, b = z["kernel"], z["bias"]
            F = len(descriptor_names())
            if K.shape != (F, len(names)) or b.shape != (len(names),) or meta.get("feature_names") != descriptor_names():
                raise ValueError(f"kernel {K.shape}, bias {b.shape}: expected ({F}, {len(names)}) over this "
                                 "library's descriptor columns")
        except (KeyError, ValueError, OSError) as e:
            raise ModelError(wpath, f"not a valid classical {task} model ({e})") from None
        model = AffineModel(task, "classical", names, K, b, patches=patches)
    else:
        km = trained.load_keras(wpath, meta)
        layer = km.get_layer("output_logits" if task == "multilabel" else "value_dense")
        K, b = layer.get_weights()
        bb = meta.get("backbone") or {}
        model = AffineModel(task, meta["mode"], names, K, b, patches=patches, keras_model=km,
                            embedding_dim=int(meta.get("embedding_dim")), backbone=bb.get("name"),
                            backbone_sha256=bb.get("weights_sha256"))
    return model, meta, d


def check_readable(table, paths, what):
    """Raise when no track of ``paths`` could be read."""
    if not any(p in table for p in paths):
        raise AudioError(paths[0] if paths else None, f"no {what} track could be read")
