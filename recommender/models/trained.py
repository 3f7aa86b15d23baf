"""The saved-classifier format: one directory per trained model, read and written here only.

A classifier trained on your own labels
(:class:`recommender.learn.classifier.MusicClassifier`) is saved as a folder::

    model.json     the sidecar (written last): FORMAT, FORMAT_VERSION, mode, classes,
                   embedding_dim, weights_file, weights_sha256, frontend, backbone, ...
    model.keras    Keras modes ("head", "finetune", "scratch"): (batch, 187, 96) ->
                   [class probabilities, embedding]; loaded with safe_mode (no code runs)
    model.npz      "classical" mode: StandardScaler + LogisticRegression numbers (no pickle)
    tracks.json    the tracks it was trained and validated on, and the failures

This module owns the format: the constants, finding a model folder
(:func:`find_trained_model`, :func:`is_trained_model`), checking the sidecar
and the weights' SHA-256 (:func:`read_sidecar`), loading the Keras file
(:func:`load_keras`), writing a folder (:func:`write_model`) and the
:class:`~recommender.models.TagModel` view of a Keras classifier
(:class:`TrainedTagModel`, :func:`load_tag_model`), which is what
``recommender.models.load_model(path)`` returns.  It needs nothing from
:mod:`recommender.learn`; the estimator imports it to save and load.
"""

from __future__ import annotations

import json
import logging
import os

from .._utils import atomic_write, atomic_write_text, json_default, sha256_file
from ..errors import ModelError
from ..features import frontend as features
from ._tf import configure_tensorflow
from .tagmodel import TagModel

__all__ = [
    "CLASSICAL_NO_PATCHES",
    "LOADERS",
    "classical_no_patches",
    "CUSTOM_PREFIX",
    "FORMAT",
    "FORMAT_VERSION",
    "KERAS_FILE",
    "MODES",
    "NPZ_FILE",
    "SIDECAR",
    "TASKS",
    "TRACKS_FILE",
    "TrainedTagModel",
    "custom_name",
    "find_trained_model",
    "is_trained_model",
    "load_keras",
    "load_tag_model",
    "model_dir",
    "new_sidecar",
    "read_sidecar",
    "read_tracks",
    "tag_metadata",
    "write_model",
]

logger = logging.getLogger(__name__)

#: ``model.json["format"]`` of every saved classifier.
FORMAT = "recommender-trained-model"
#: The sidecar version this library reads and writes.
FORMAT_VERSION = 1
SIDECAR = "model.json"
TRACKS_FILE = "tracks.json"
KERAS_FILE = "model.keras"
NPZ_FILE = "model.npz"
#: Training modes a sidecar may name (see :mod:`recommender.learn.classifier`).
MODES = ("head", "finetune", "scratch", "classical")
#: What a model predicts (``model.json["task"]``; absent means ``"classify"``, so older folders load
#: unchanged): one class per track (softmax), numeric values (``regress``: the outputs are the named
#: values themselves, one per target, in ``classes`` order) or several labels per track
#: (``multilabel``: independent sigmoid probabilities, one per label, and per-label
#: ``thresholds`` in the sidecar).
TASKS = ("classify", "regress", "multilabel")
#: Modes each task may be trained in.
TASK_MODES = {"classify": MODES, "regress": ("head", "finetune", "classical"), "multilabel": ("head", "classical")}
#: A trained model's name is this prefix and its absolute folder (as an index catalog records it).
CUSTOM_PREFIX = "custom:"

CLASSICAL_NO_PATCHES = (
    "a 'classical' model works on whole files from MIR descriptors: it has no log-mel patches "
    "and no embedding, so it cannot back an index or `recommender classify`; use "
    "`recommender predict MODEL FILES` or load_classifier(path).predict(files)")
#: The Python loader of each task's saved model (all in :mod:`recommender.learn`).
LOADERS = {"classify": "load_classifier", "regress": "load_regressor", "multilabel": "load_multilabel"}


def classical_no_patches(task="classify") -> str:
    """:data:`CLASSICAL_NO_PATCHES` naming the loader of ``task`` (:data:`LOADERS`)."""
    return CLASSICAL_NO_PATCHES.replace("load_classifier", LOADERS.get(task, "load_classifier"))


def custom_name(directory) -> str:
    """``"custom:<absolute folder>"``: the name of a saved model."""
    return CUSTOM_PREFIX + os.path.abspath(directory)


# --------------------------------------------------------------------------- finding a model folder
def model_dir(path):
    """The folder of a trained model given it, its ``model.json`` or its weights file (else None).

    Raises ``TypeError`` when ``path`` is not path-like.
    """
    p = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isdir(p):
        return p
    if os.path.isfile(p) and os.path.basename(p) in (SIDECAR, KERAS_FILE, NPZ_FILE):
        return os.path.dirname(p)
    return None


def is_trained_model(path) -> bool:
    """True if ``path`` (folder, its ``model.json`` or weights) is a saved classifier."""
    try:
        d = model_dir(path)
    except TypeError:
        return False
    if d is None or not os.path.isfile(os.path.join(d, SIDECAR)):
        return False
    try:
        with open(os.path.join(d, SIDECAR), encoding="utf-8") as fh:
            return json.load(fh).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def find_trained_model(name_or_path):
    """``(folder, weights_sha256)`` when ``name_or_path`` names a saved classifier, else None.

    Accepts the folder, its ``model.json``/``model.keras``/``model.npz``, or the
    model's name ``"custom:<folder>"`` (as recorded in an index catalog).
    Anything else (a registry name, a pretrained ``.json``) gives None.

    Raises
    ------
    ModelError
        A folder without ``model.json``, or an unreadable ``model.json``.
    """
    try:
        path = os.fspath(name_or_path)
    except TypeError:
        return None
    if path.startswith(CUSTOM_PREFIX):
        path = path[len(CUSTOM_PREFIX):]
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isfile(path) and os.path.basename(path) in (SIDECAR, KERAS_FILE, NPZ_FILE):
        path = os.path.dirname(path)
    side = os.path.join(path, SIDECAR)
    if not os.path.isfile(side):
        if os.path.isdir(path):
            raise ModelError(path, f"a folder without {SIDECAR}: not a model saved by "
                                   "recommender.learn.classifier.MusicClassifier.save")
        return None
    try:
        with open(side, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(side, f"cannot read model metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    return path, str(meta.get("weights_sha256"))


# --------------------------------------------------------------------------- reading
def read_sidecar(directory):
    """Read and check a model folder's ``model.json`` and the SHA-256 of its weights.

    Parameters
    ----------
    directory : str
        The model folder (see :func:`model_dir`).

    Returns
    -------
    meta : dict
        The sidecar.
    weights_path : str
        The checked weights file (``model.keras`` or ``model.npz``).

    Raises
    ------
    ModelError
        No or unreadable sidecar, another format or version, unknown mode, bad
        classes, another front end, missing weights, or weights whose SHA-256
        does not match the sidecar (corrupt or replaced).
    """
    d = directory
    side = os.path.join(d, SIDECAR)
    try:
        with open(side, encoding="utf-8") as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise ModelError(d, f"no {SIDECAR}: not a model saved by MusicClassifier.save") from None
    except (OSError, ValueError) as e:
        raise ModelError(side, f"cannot read model sidecar ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(side, f"format={meta.get('format') if isinstance(meta, dict) else None!r}: "
                               f"not a {FORMAT}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(side, f"format_version={meta.get('format_version')!r}, this library reads "
                               f"{FORMAT_VERSION}")
    try:
        mode, classes, wfile, sha = meta["mode"], meta["classes"], meta["weights_file"], meta["weights_sha256"]
    except KeyError as e:
        raise ModelError(side, f"incomplete sidecar (missing {e})") from None
    task = meta.get("task", "classify")
    if task not in TASKS:
        raise ModelError(side, f"task={task!r}: unknown (expected one of {TASKS})")
    if mode not in TASK_MODES[task]:
        raise ModelError(side, f"mode={mode!r}: unknown for task {task!r} (expected one of {TASK_MODES[task]})")
    least = 2 if task == "classify" else 1
    if not isinstance(classes, list) or len(classes) < least or len(set(map(str, classes))) != len(classes):
        raise ModelError(side, f"classes: must be a list of at least {least} distinct names")
    if task == "multilabel":
        th = meta.get("thresholds")
        if not isinstance(th, list) or len(th) != len(classes) or not all(
                isinstance(t, (int, float)) and 0 <= t <= 1 for t in th):
            raise ModelError(side, "thresholds: a multilabel model needs one threshold in [0, 1] per label")
    if meta.get("frontend") != features.FRONTEND_PARAMS:
        raise ModelError(side, f"model expects front end {meta.get('frontend')}, this library computes "
                               f"{features.FRONTEND_PARAMS}")
    if os.path.basename(str(wfile)) != wfile or wfile not in (KERAS_FILE, NPZ_FILE):
        raise ModelError(side, f"weights_file={wfile!r}: expected {KERAS_FILE} or {NPZ_FILE}")
    wpath = os.path.join(d, wfile)
    if not os.path.isfile(wpath):
        raise ModelError(wpath, "weights file not found")
    actual = sha256_file(wpath)
    if actual != sha:
        raise ModelError(wpath, f"sha256 {actual} does not match the sidecar ({sha}): file corrupt or replaced")
    return meta, wpath


def read_tracks(directory):
    """The ``tracks.json`` of a model folder: ``{"train", "validation", "failures"}`` lists.

    Raises ``OSError``/``ValueError``/``AttributeError`` when it is missing or malformed.
    """
    with open(os.path.join(directory, TRACKS_FILE), encoding="utf-8") as fh:
        tracks = json.load(fh)
    return {"train": [str(p) for p in tracks.get("train", [])],
            "validation": [str(p) for p in tracks.get("validation", [])],
            "failures": list(tracks.get("failures", []))}


def load_keras(weights_path, meta):
    """The Keras model of a model folder, loaded with ``safe_mode=True`` (imports TensorFlow).

    Returns
    -------
    keras.Model
        ``(batch, 187, 96) -> [class probabilities (batch, n_classes), embedding]``.

    Raises
    ------
    ModelError
        A ``Lambda`` layer or other code (refused by safe mode), an unreadable
        file, or inputs/outputs of the wrong shape.
    """
    configure_tensorflow(None)
    import keras

    wpath = weights_path
    try:
        model = keras.saving.load_model(wpath, safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001 - keras raises ValueError/TypeError/OSError/zip errors
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "safe_mode" in str(e) or "Lambda" in str(e) or "lambda" in str(e):
            raise ModelError(wpath, "refused: the model contains a Lambda layer or other arbitrary code, "
                                    "which safe_mode does not load (a model file must not run code)") from None
        raise ModelError(wpath, f"cannot load Keras model ({msg})") from None
    outs = model.outputs
    n = len(meta["classes"])
    if (len(outs) != 2 or tuple(model.inputs[0].shape[1:]) != (features.PATCH_FRAMES, features.N_MELS)
            or outs[0].shape[-1] != n):
        raise ModelError(wpath, f"model must map (batch, {features.PATCH_FRAMES}, {features.N_MELS}) to "
                                f"[probabilities (batch, {n}), embedding]; got inputs "
                                f"{[tuple(i.shape) for i in model.inputs]} outputs {[tuple(o.shape) for o in outs]}")
    return model


# --------------------------------------------------------------------------- writing
def new_sidecar(*, mode, classes, embedding_dim, weights_file, task=None) -> dict:
    """The leading fields of a ``model.json`` (the caller appends its own after them).

    ``weights_sha256`` is filled in by :func:`write_model`.  ``task`` (see
    :data:`TASKS`) is written only when given, so a classifier's sidecar stays as before.
    """
    head = {"task": task} if task is not None else {}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **head,
        "mode": mode,
        "classes": [str(c) for c in classes],
        "n_classes": len(classes),
        "embedding_dim": embedding_dim,
        "weights_file": weights_file,
        "weights_sha256": None,
        "frontend": dict(features.FRONTEND_PARAMS),
    }


def _write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=1, default=json_default))


def write_model(directory, *, write_weights, meta, tracks) -> str:
    """Write a model folder: the weights, ``tracks.json``, then ``model.json`` (last).

    Each file is replaced atomically (:func:`recommender._utils.atomic_write`),
    so a reader sees the old sidecar or the new one, and the SHA-256 in a
    sidecar always describes the weights file that was written before it.

    Parameters
    ----------
    directory : path-like
        Created if missing.
    write_weights : callable
        ``write_weights(tmp_path)`` writes ``meta["weights_file"]``'s content
        to a temporary path with the same suffix (``model.save``, ``np.savez``).
    meta : dict
        The sidecar (from :func:`new_sidecar`, plus the caller's fields);
        its ``weights_sha256`` is set here.
    tracks : dict
        ``{"train": [...], "validation": [...], "failures": [...]}``.

    Returns
    -------
    str
        The SHA-256 of the weights file.
    """
    d = os.fspath(directory)
    os.makedirs(d, exist_ok=True)
    sha = []

    def weights(tmp):
        write_weights(tmp)
        sha.append(sha256_file(tmp))

    atomic_write(os.path.join(d, meta["weights_file"]), weights, binary=None)
    meta["weights_sha256"] = sha[0]
    _write_json(os.path.join(d, TRACKS_FILE), tracks)
    _write_json(os.path.join(d, SIDECAR), meta)
    return sha[0]


# --------------------------------------------------------------------------- TagModel view
def tag_metadata(classes, embedding_dim, mode, task="classify") -> dict:
    """The :attr:`TagModel.metadata` of a trained model (``task`` as in :data:`TASKS`)."""
    out = {
        "tags": [str(c) for c in classes],
        "embedding_dim": int(embedding_dim),
        "architecture": {"n_frames": features.PATCH_FRAMES, "n_mels": features.N_MELS},
        "mode": mode,
    }
    if task != "classify":  # a classifier's metadata stays as before
        out["task"] = task
    return out


class TrainedTagModel(TagModel):
    """A trained classifier seen as a :class:`~recommender.models.TagModel`.

    ``tags`` are the classifier's classes, ``predict_patches`` returns
    (class probabilities (n, n_classes), embedding (n, embedding_dim)), and
    ``source`` is the model directory so worker processes can reload it.
    Runs on TensorFlow; has no ``pool`` layer (``has_pool`` is False).

    ``task`` says what the first output holds: ``"classify"`` class
    probabilities (summing to 1), ``"multilabel"`` independent label
    probabilities (``thresholds`` per label decide which labels a track
    has), ``"regress"`` the predicted values themselves, named by ``tags``
    (``value_names``); averaged over a track's patches they are the track's
    prediction.
    """

    def __init__(self, name, keras_model, metadata, weights_sha256, *, source=None, mode=None,
                 task="classify", thresholds=None):
        super().__init__(name, keras_model, metadata, weights_sha256)
        self.has_pool = False  # a classifier's own layers: the layer space is for the pretrained models
        self.source = source
        self.mode = mode
        self.task = task
        self.thresholds = None if thresholds is None else [float(t) for t in thresholds]
        self.target_range = None  # regress: [[lo, hi]] per output, as MusicRegressor.predict clips

    @property
    def value_names(self) -> list:
        """A regressor's output names (its targets); empty for the other tasks."""
        return list(self.tags) if self.task == "regress" else []

    def named_values(self, outputs) -> dict:
        """A regressor's outputs of one track (``(n_values,)``, e.g. the mean over its patches) by name.

        Raises
        ------
        ModelError
            Not a regressor, or the wrong number of values.
        """
        import numpy as np

        v = np.asarray(outputs, dtype=np.float64).reshape(-1)
        if self.task != "regress" or len(v) != len(self.tags):
            raise ModelError(self.source, f"named_values: needs a regressor's {len(self.tags)} outputs "
                                          f"(task={self.task!r}, got {len(v)} values)")
        if self.target_range is not None:  # the clip of MusicRegressor.predict (recommender.learn.regression)
            rng = np.asarray(self.target_range, dtype=np.float64).reshape(-1, 2)
            v = np.clip(v, rng[:, 0], rng[:, 1])
        return {str(n): float(x) for n, x in zip(self.tags, v)}

    def labels_of(self, probabilities) -> list:
        """A multi-label model's labels of one track (probability >= its label's threshold).

        Raises
        ------
        ModelError
            Not a multi-label model, or the wrong number of probabilities.
        """
        import numpy as np

        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if self.task != "multilabel" or len(p) != len(self.tags):
            raise ModelError(self.source, f"labels_of: needs a multi-label model's {len(self.tags)} "
                                          f"probabilities (task={self.task!r}, got {len(p)})")
        return [str(t) for t, x, th in zip(self.tags, p, self.thresholds) if x >= th]

    def __repr__(self):
        task = "" if self.task == "classify" else f"task={self.task!r}, "
        return (f"TrainedTagModel(name={self.name!r}, {task}mode={self.mode!r}, classes={self.tags}, "
                f"embedding_dim={self.embedding_dim}, sha256={self.weights_sha256[:12]})")


def load_tag_model(path) -> TrainedTagModel:
    """Load a saved Keras classifier as a TagModel (what ``models.load_model(path)`` returns; not cached).

    A track-level head (``head_features="summary-all"``...; ``model.npz`` with a
    ``head_recipe``) loads as a :class:`~recommender.models.trackhead.TrackHeadModel`
    (its analyses need :meth:`~recommender.models.trackhead.TrackHeadModel.finish`).

    Parameters
    ----------
    path : path-like
        The model folder, its ``model.json`` or its weights file.

    Raises
    ------
    ModelError
        As :func:`read_sidecar` and :func:`load_keras`; and for a ``classical``
        model, which has no patches or embedding to index.
    """
    d = model_dir(path)
    if d is None:
        raise ModelError(path, "not a model directory (expected a folder with model.json)")
    meta, wpath = read_sidecar(d)
    if meta["mode"] == "classical":
        raise ModelError(d, classical_no_patches(meta.get("task", "classify")))
    if meta.get("weights_file") == NPZ_FILE:  # a track-level head: every network it reads, on the same patches
        from . import load_model
        from .trackhead import load_track_head

        return load_track_head(d, meta, wpath, name=custom_name(d), load_network=load_model)
    model = load_keras(wpath, meta)
    task = meta.get("task", "classify")
    info = tag_metadata(meta["classes"], meta.get("embedding_dim"), meta["mode"], task)
    tm = TrainedTagModel(custom_name(d), model, info, meta["weights_sha256"], source=d, mode=meta["mode"],
                         task=task, thresholds=meta.get("thresholds"))
    tm.target_range = meta.get("target_range")  # a regressor's clip range (None: saved before, not clipped)
    tm.metadata.update({"trained": {k: meta.get(k) for k in ("mode", "backbone", "n_train", "split_strategy")}})
    return tm
