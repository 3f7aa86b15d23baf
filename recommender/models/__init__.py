"""Registry of pretrained tagging models, and the loader of every model.

Importing this package is cheap: TensorFlow is imported only when a model
needs it (:mod:`._tf`), ONNX Runtime only by :func:`load_model`.

* :func:`load_model` / :func:`available_models` -- the registry (this module);
* :class:`TagModel` -- the model at run time (:mod:`.tagmodel`);
* :mod:`.trained` -- the folder format of classifiers trained on your own
  labels, which :func:`load_model` also loads;
* :func:`quiet_startup` -- silence TensorFlow's start-up output (the CLI).

Examples
--------
>>> from recommender.models import available_models, load_model
>>> available_models()
['msd-musicnn', 'mtt-musicnn']
>>> m = load_model()                                   # doctest: +SKIP
>>> probs, emb = m.predict_patches(P)                  # P: (n, 187, 96) float32  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import threading

from .._utils import check_choice, check_int, sha256_file
from ..errors import ModelError, ParameterError
from ._tf import configure_tensorflow, quiet_startup, quiet_startup_active
from .tagmodel import DEFAULT_BATCH_SIZE, TagModel, _build_keras, _onnx_session, _onnx_threads
from .trained import TrainedTagModel, custom_name, find_trained_model, is_trained_model, load_tag_model

__all__ = ["available_models", "DEFAULT_MODEL", "default_runtime", "load_model", "PRECISIONS", "RUNTIMES",
           "TagModel", "WEIGHTS_DIR", "DEFAULT_BATCH_SIZE", "INT8_PROB_ATOL", "INT8_EMBEDDING_MIN_COSINE",
           "TrainedTagModel", "is_trained_model", "load_tag_model", "configure_tensorflow", "quiet_startup",
           "quiet_startup_active"]

logger = logging.getLogger(__name__)

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DEFAULT_MODEL = "msd-musicnn"
_REGISTRY = {
    "msd-musicnn": "msd_musicnn.json",
    "mtt-musicnn": "mtt_musicnn.json",
}
_FORMAT_VERSION = 1

_cache: dict[str, TagModel] = {}
_lock = threading.Lock()


def available_models() -> list[str]:
    """Names accepted by :func:`load_model`, default first."""
    return list(_REGISTRY)


def _resolve(name_or_path) -> tuple[str, str]:
    """Return (model name, path of its JSON metadata)."""
    if isinstance(name_or_path, str) and name_or_path in _REGISTRY:
        return name_or_path, os.path.join(WEIGHTS_DIR, _REGISTRY[name_or_path])
    try:
        path = os.fspath(name_or_path)
    except TypeError:
        raise ParameterError(f"name_or_path={name_or_path!r}: expected a model name or a path") from None
    if path.endswith(".npz"):
        path = path[: -len(".npz")] + ".json"
    if os.path.isfile(path) and path.endswith(".json"):
        return os.path.abspath(path), os.path.abspath(path)
    raise ModelError(
        os.fspath(name_or_path),
        f"unknown model; available models: {', '.join(available_models())} "
        "(or a path to a weights .json/.npz pair)",
    )


#: Inference runtimes accepted by :func:`load_model` (``None`` picks the first available).
RUNTIMES = ("onnx", "tensorflow")


#: Precisions of the ``onnx`` runtime; the first is the default.
PRECISIONS = ("int8", "float32")
#: Stated tolerance of ``precision="int8"`` against float32, checked by
#: ``tests/test_onnx_runtime.py`` on synthetic songs (silence to clipping).
#: Measured with ``python benchmarks/bench_int8.py --per-track 3`` (3 patches
#: per track, msd-musicnn; issue #20, after GPTQ rounding and the calibrated
#: input range of :mod:`.onnx_graph`): selection half of the dev collection
#: (297 patches of 99 tracks, the calibration's own audio) tag probabilities
#: max abs 0.0103 (99th percentile 0.0024), embedding cosine >= 0.9996 (mean
#: 0.9999); confirmation half (``--devset /tmp/devset-confirm``, 363 patches
#: of 121 unseen tracks) 0.0094 (99th pct 0.0027), cosine >= 0.9996.
#: mtt-musicnn: 0.0273 (one value of 14,850; the next 0.018) and 0.0160,
#: cosine >= 0.9995, on the two halves.  Before: 0.0299 / 0.0331 (msd),
#: cosine 0.9937 / 0.9966.
INT8_PROB_ATOL = 0.02
INT8_EMBEDDING_MIN_COSINE = 0.995


def load_model(name_or_path=DEFAULT_MODEL, *, threads=None, runtime=None, precision=None) -> TagModel:
    """Load a pretrained tagging model (cached: one instance per process and name).

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A name from :func:`available_models` (default ``"msd-musicnn"``),
        the path of a weights ``.json`` (or its ``.npz``) written by
        ``tools/convert_musicnn.py``, or a classifier trained on your own
        labels and saved by :meth:`recommender.learn.classifier.MusicClassifier.save`
        (its directory, or its name ``"custom:<directory>"``): then ``tags``
        are its classes, ``predict_patches`` returns (class probabilities,
        embedding), and ``source`` is the directory.  A ``classical``
        (descriptor) model has no patches and raises :class:`ModelError`.
    threads : int, optional
        Threads that run the network (default: the CPUs this process may
        use).  ONNX Runtime: two runs at once, each on a piece of the batch
        with half the threads (one run with ``threads=1``).  TensorFlow:
        intra-op threads, only applied if its runtime is not yet initialised.
    runtime : {"onnx", "tensorflow"}, optional
        Where the pretrained models run.  ``"onnx"`` (the default when
        ``onnxruntime`` is installed) builds the network as an ONNX graph
        from the same weights and runs it on ONNX Runtime: no TensorFlow
        import, ~0.3 s to load, ~85 MB resident, outputs equal to the Keras
        model within 1e-5.  ``"tensorflow"`` runs the Keras model.  Trained
        classifiers always run on TensorFlow.

    Returns
    -------
    TagModel

    Raises
    ------
    ModelError
        Unknown name, missing/corrupt/mismatched weights or metadata.
    ParameterError
        ``threads`` not an integer >= 1, unknown ``runtime`` or ``precision``.

    Examples
    --------
    >>> m = load_model("msd-musicnn")           # doctest: +SKIP
    >>> m.n_tags, m.embedding_dim               # doctest: +SKIP
    (50, 200)
    """
    check_int("threads", threads, allow_none=True)
    if runtime is not None:
        check_choice("runtime", runtime, RUNTIMES)
    if precision is not None:
        check_choice("precision", precision, PRECISIONS)
    registered = isinstance(name_or_path, str) and name_or_path in _REGISTRY
    trained = None if registered else find_trained_model(name_or_path)
    if trained is not None:
        return _load_trained(trained, threads)
    name, meta_path = _resolve(name_or_path)
    runtime = runtime or default_runtime()
    if runtime == "tensorflow":
        if precision not in (None, "float32"):
            raise ParameterError(f"precision={precision!r}: the TensorFlow runtime computes in float32")
        precision = "float32"
    precision = precision or PRECISIONS[0]
    with _lock:
        cached = _cache.get((name, runtime, precision))
        if cached is not None:
            return cached
        model = _load_uncached(name, meta_path, threads, runtime, precision)
        _cache[(name, runtime, precision)] = model
        return model


def default_runtime() -> str:
    """``"onnx"`` if ONNX Runtime (and ``onnx``, to build the graph) import, else ``"tensorflow"``."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        return "onnx"
    return "tensorflow"


def _load_trained(found, threads):
    """A trained classifier as a TagModel (cached per directory and weights hash)."""
    path, sha = found
    key = f"{custom_name(path)}@{sha}"
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        configure_tensorflow(threads)
        model = load_tag_model(path)
        _cache[key] = model
        return model


def _load_uncached(name, meta_path, threads, runtime, precision) -> TagModel:
    from ..features.frontend import FRONTEND_PARAMS

    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(meta_path, f"cannot read model metadata ({exc})") from None
    try:
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ModelError(meta_path, f"format_version={meta.get('format_version')!r}, "
                                        f"this library reads {_FORMAT_VERSION}")
        _ = meta["architecture"]
        weights_path = os.path.join(os.path.dirname(meta_path), meta["weights_file"])
        expected_sha = meta["weights_sha256"]
        tags = meta["tags"]
        if not isinstance(tags, list) or len(tags) != meta["n_tags"]:
            raise ModelError(meta_path, "tags and n_tags disagree")
    except (KeyError, TypeError) as exc:
        raise ModelError(meta_path, f"incomplete model metadata (missing {exc})") from None
    if meta.get("frontend") != FRONTEND_PARAMS:
        raise ModelError(meta_path, f"model expects front end {meta.get('frontend')}, "
                                    f"this library computes {FRONTEND_PARAMS}")
    if not os.path.isfile(weights_path):
        raise ModelError(weights_path, "weights file not found")
    sha = sha256_file(weights_path)
    if sha != expected_sha:
        raise ModelError(weights_path, f"sha256 {sha} does not match the metadata ({expected_sha}): "
                                       "file corrupt or replaced")
    if runtime == "onnx":
        session = _onnx_session(weights_path, meta, precision, _onnx_threads(threads)[1])
        logger.info("loaded model %s (%d tags, dim %d) from %s on ONNX Runtime (%s)", name, len(tags),
                    meta["embedding_dim"], weights_path, precision)
        return TagModel(name, None, meta, sha, session=session, weights_path=weights_path, threads=threads,
                        precision=precision)
    keras_model = _build_keras(name, meta, weights_path, threads)
    return TagModel(name, keras_model, meta, sha, weights_path=weights_path, threads=threads)
