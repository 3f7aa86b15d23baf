"""The tagger at run time: :class:`TagModel`, its ONNX Runtime session and thread split.

A :class:`TagModel` maps log-mel patches ``(n, 187, 96)`` to tag
probabilities and embeddings, on ONNX Runtime (the pretrained models; the
graph is built from the ``.npz`` weights by :mod:`.onnx_graph`) or on a
compiled TensorFlow function (the Keras model; trained classifiers).  Get one
from :func:`recommender.models.load_model`.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from .._utils import check_int, cpu_count
from ..errors import ModelError, ParameterError
from ._tf import configure_tensorflow

__all__ = ["DEFAULT_BATCH_SIZE", "TagModel"]

logger = logging.getLogger(__name__)

#: Default patches per compiled call (see :meth:`TagModel.predict_patches`).
#: Measured on 2 AVX-512 cores (TF 2.21, oneDNN, float32), best-of-rounds
#: patches/s: batch 1: 21-33, 4: 25, 8: 23-33, 16: 20-29, 32: 19-29, 64: 19-29
#: (peak RSS 1.2 GB at 8, 1.7 GB at 32, 2.3 GB at 64).  Small batches stay in
#: cache, so 8 is as fast as any and keeps memory and tail padding low.
#: XLA ``jit_compile`` was 2x slower and bfloat16 both slower and off by
#: 7e-3 in probability, so neither is used.
DEFAULT_BATCH_SIZE = 8
_ORT_OUTPUTS = ["probabilities", "penultimate"]


class TagModel:
    """A pretrained tagger: log-mel patches in, tag probabilities and embeddings out.

    Get one with :func:`recommender.models.load_model`; do not construct directly.

    Attributes
    ----------
    name : str
        Registry name (e.g. ``"msd-musicnn"``) or the metadata path.
    tags : list of str
        Output tags, in column order of the probabilities.
    n_tags : int
    embedding_dim : int
        Size of the embedding (musicnn's 200-d ``penultimate`` layer).
    weights_sha256 : str
        SHA-256 of the weights ``.npz`` (checked against the metadata on load).
    frontend : dict
        The front-end parameters the model expects
        (:data:`recommender.features.FRONTEND_PARAMS`).
    runtime : str
        ``"onnx"`` (ONNX Runtime, the default for the pretrained models) or
        ``"tensorflow"`` (the Keras model; trained classifiers).
    precision : str
        ``"int8"`` or ``"float32"`` (see :func:`recommender.models.load_model`).
    keras_model : keras.Model
        ``(batch, 187, 96) -> [probabilities, penultimate]``; layer names are
        documented in :mod:`recommender.models.musicnn`.  With the ``onnx``
        runtime it is built from the same weights on first access (this
        imports TensorFlow).
    metadata : dict
        The JSON metadata shipped with the weights.
    batch_size : int
        Default patches per inference call.
    """

    def __init__(self, name, keras_model, metadata, weights_sha256, *, batch_size=DEFAULT_BATCH_SIZE,
                 session=None, weights_path=None, threads=None, precision="float32"):
        from ..features.frontend import FRONTEND_PARAMS

        self.name = name
        self._keras_model = keras_model
        self._session = session
        self._weights_path = weights_path
        self._threads = threads
        self.runtime = "onnx" if session is not None else "tensorflow"
        self.precision = precision
        #: Whether ``predict_patches(..., with_pool=True)`` is available (the
        #: pretrained musicnn models; not trained classifiers).
        self.has_pool = True
        from .musicnn import FRONTEND_CHANNELS

        self.pool_dim = 2 * (FRONTEND_CHANNELS + 3 * int(metadata["architecture"].get("midend_filters", 64)))
        self.metadata = metadata
        self.tags = list(metadata["tags"])
        self.n_tags = len(self.tags)
        self.embedding_dim = int(metadata["embedding_dim"])
        self.weights_sha256 = weights_sha256
        self.frontend = dict(FRONTEND_PARAMS)
        self.n_frames = int(metadata["architecture"]["n_frames"])
        self.n_mels = int(metadata["architecture"]["n_mels"])
        self.batch_size = int(batch_size)
        self._fns = {}
        self._fn_lock = threading.Lock()
        #: ONNX Runtime: runs at once, each on a piece of a batch (see :func:`_onnx_threads`)
        self._workers = _onnx_threads(threads)[0]
        self._pool = None
        self._pool_pid = None

    def __repr__(self):
        return (f"TagModel(name={self.name!r}, n_tags={self.n_tags}, "
                f"embedding_dim={self.embedding_dim}, runtime={self.runtime!r}, precision={self.precision!r}, "
                f"sha256={self.weights_sha256[:12]})")

    @property
    def keras_model(self):
        if self._keras_model is None:
            with self._fn_lock:
                if self._keras_model is None:
                    self._keras_model = _build_keras(self.name, self.metadata, self._weights_path, self._threads)
        return self._keras_model

    def _fn(self, batch: int, with_pool: bool = False):
        """The compiled TensorFlow forward pass for exactly ``batch`` patches (traced once)."""
        fn = self._fns.get((batch, with_pool))
        if fn is None:
            model = self.keras_model
            with self._fn_lock:
                fn = self._fns.get((batch, with_pool))
                if fn is None:
                    import keras
                    import tensorflow as tf

                    net = model
                    if with_pool:
                        net = keras.Model(model.input, list(model.outputs) + [model.get_layer("pool").output])
                    spec = tf.TensorSpec((batch, self.n_frames, self.n_mels), tf.float32)

                    @tf.function(input_signature=[spec], jit_compile=False, autograph=False)
                    def forward(x):
                        return tuple(tf.cast(o, tf.float32) for o in net(x, training=False))

                    fn = self._fns[(batch, with_pool)] = forward
        return fn

    def _check_patches(self, P, batch_size):
        bs = check_int("batch_size", self.batch_size if batch_size is None else batch_size)
        P = np.asarray(P)
        expected = (self.n_frames, self.n_mels)
        if P.ndim != 3 or P.shape[1:] != expected:
            raise ParameterError(
                f"P.shape={P.shape}: expected (n_patches, {expected[0]}, {expected[1]})")
        if not (np.issubdtype(P.dtype, np.floating) or np.issubdtype(P.dtype, np.integer)):
            raise ParameterError(f"P.dtype={P.dtype}: expected real numbers")
        P = np.ascontiguousarray(P, dtype=np.float32)
        if len(P) and not np.isfinite(P).all():
            raise ParameterError("P contains NaN or infinite values")
        return P, bs

    def _executor(self):
        with self._fn_lock:
            # a pool created before a fork has no threads in the child: make a new one
            if self._pool is None or self._pool_pid != os.getpid():
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="recommender-cnn")
                self._pool_pid = os.getpid()
            return self._pool

    def predict_patches(self, P, *, batch_size=None, with_pool=False):
        """Tag probabilities and embeddings of log-mel patches.

        With the ``onnx`` runtime, patches go through ONNX Runtime
        ``batch_size`` at a time, cut in two pieces run at once (see
        ``threads`` of :func:`recommender.models.load_model`); any batch shape, nothing to
        compile.  With the
        ``tensorflow`` runtime they go through a compiled TensorFlow function
        in batches of ``batch_size``; a final partial batch is zero-padded to
        the next power of two (at most ``batch_size``), so only a handful of
        batch shapes are ever compiled and repeated calls never retrace.

        Parameters
        ----------
        P : np.ndarray, shape (n, 187, 96)
            Patches from :func:`recommender.features.patches`; ``n`` may be 0.
        batch_size : int, optional
            Patches per call (default :attr:`batch_size`, 8).
        with_pool : bool
            Also return musicnn's ``pool`` layer (max and mean over time of
            the mid-end features, 1506 values, interleaved), from the same
            forward pass.  Only where :attr:`has_pool`.

        Returns
        -------
        probs : np.ndarray, shape (n, n_tags), float32
        embeddings : np.ndarray, shape (n, embedding_dim), float32
        pool : np.ndarray, shape (n, 1506), float32
            Only with ``with_pool=True``.

        Raises
        ------
        ParameterError
            Wrong shape, non-numeric or non-finite input, bad ``batch_size``.
        """
        P, bs = self._check_patches(P, batch_size)
        if with_pool and not self.has_pool:
            raise ParameterError(f"with_pool=True: model {self.name!r} has no 'pool' layer")
        n = len(P)
        probs = np.empty((n, self.n_tags), dtype=np.float32)
        emb = np.empty((n, self.embedding_dim), dtype=np.float32)
        pool = np.empty((n, self.pool_dim), dtype=np.float32) if with_pool else None
        outs = (probs, emb, pool) if with_pool else (probs, emb)
        if n == 0:
            return outs
        if self._session is not None:
            names = _ORT_OUTPUTS + ["pool"] if with_pool else _ORT_OUTPUTS
            workers = self._workers
            # pieces of batch_size / workers: a batch's worth of patches in flight
            # at a time (the same activation memory as one run of batch_size)
            step = max(1, -(-min(n, bs) // workers))
            bounds = list(range(0, n, step)) + [n]
            chunks = list(zip(bounds[:-1], bounds[1:]))

            def run(chunk):
                a, b = chunk
                for dst, src in zip(outs, self._session.run(names, {"logmel": P[a:b]})):
                    dst[a:b] = src

            if workers == 1 or len(chunks) == 1:
                for c in chunks:
                    run(c)
            else:
                list(self._executor().map(run, chunks))
            return outs
        expected = P.shape[1:]
        start = 0
        while start < n:
            rest = n - start
            if rest >= bs:
                size = b = bs
                x = P[start : start + bs]
            else:
                size = rest
                b = min(bs, 1 << (rest - 1).bit_length())
                x = np.zeros((b,) + expected, dtype=np.float32)
                x[:rest] = P[start:]
            got = self._fn(b, with_pool)(x)
            for dst, src in zip(outs, got):
                dst[start : start + size] = src.numpy()[:size]
            start += size
        return outs


def _build_keras(name, meta, weights_path, threads):
    """The Keras musicnn of ``meta`` with the weights of ``weights_path`` (imports TensorFlow)."""
    configure_tensorflow(threads)
    from .musicnn import build_musicnn, load_weights

    arch = meta["architecture"]
    keras_model = build_musicnn(
        len(meta["tags"]),
        n_frames=arch["n_frames"],
        midend_filters=arch["midend_filters"],
        backend_units=arch["backend_units"],
        name=str(meta.get("name", "musicnn")).replace("-", "_"),
    )
    load_weights(keras_model, weights_path)
    logger.info("loaded model %s (%d tags, dim %d) from %s on TensorFlow", name, len(meta["tags"]),
                meta["embedding_dim"], weights_path)
    return keras_model


#: ONNX Runtime runs at once (each on a piece of a batch); the threads are shared among them.
_ONNX_RUNS = 2


def _onnx_threads(threads) -> tuple[int, int]:
    """``(runs at once, intra-op threads per run)`` for ``threads`` (None: the CPUs)."""
    total = cpu_count() if threads is None else int(threads)
    runs = min(total, _ONNX_RUNS)
    return runs, max(1, total // runs)


def _onnx_session(weights_path, meta, precision, intra_threads=1):
    """An ONNX Runtime session of musicnn built from the ``.npz`` weights."""
    import onnxruntime as ort

    from .musicnn import read_weights
    from .onnx_graph import build_onnx

    weights = read_weights(weights_path)
    arch = meta["architecture"]
    graph = build_onnx(weights, n_tags=len(meta["tags"]), n_frames=arch["n_frames"],
                       n_mels=arch["n_mels"], precision=precision, source=weights_path)
    so = ort.SessionOptions()
    # TagModel.predict_patches runs two pieces of a batch at once on Python
    # threads (ORT releases the GIL), each with half the threads: on 2 cores,
    # single-threaded runs.  Intra-op threads meet at a barrier after every
    # operator, and on cores shared with decoding each barrier waits for a
    # descheduled thread: indexing got far less than the 110 patches/s one
    # run on 2 intra-op threads gives alone; two single-threaded runs give 114-118
    # alone and 75-78 inside analyze_files on the dev set (48-56 before, with
    # the front end's temporal convolutions still float32).
    so.intra_op_num_threads = int(intra_threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise ModelError(weights_path, f"ONNX Runtime cannot load the model ({exc})") from None
