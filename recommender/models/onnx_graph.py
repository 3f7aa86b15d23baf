"""musicnn as an ONNX graph, built from the same ``.npz`` weights as the Keras model.

Inference on the CPU runs on ONNX Runtime (MLAS kernels): a small runtime
(~60 MB resident against ~1.2 GB for TensorFlow and the Keras model), a
start-up of a fraction of a second, and int8 kernels (AVX-512 VNNI / AVX2)
for the quantised variant.  The graph is built here, layer for layer, from
the weights the Keras port reads (:mod:`recommender.models.musicnn`), so both
compute the same function; ``tests/test_onnx_runtime.py`` checks the outputs
against the Keras model.

Layout (``B`` patches, ``T = 187`` frames, 96 mel bands), channels first::

    logmel (B, T, 96) -> (B, 1, T, 96) -> input BN (affine)
     timbral  Conv 204 x (7, 38|67), time padded 3/3, ReLU -> max over freq -> BN
     temporal Conv  51 x (128|64|32, 1), TF 'same' padding, ReLU -> max over freq -> BN
    frontend (B, 561, T) -> 3 x [Conv1D 64 x 7 pad 3, ReLU, BN (+ residual)]
    midend (B, 753, T) -> max and mean over T, interleaved -> pool (B, 1506)
    -> BN -> Dense 200 ReLU -> BN = penultimate -> Dense n_tags -> sigmoid

Batch normalisation after a ReLU and before a max over frequency is applied
after the max (per-channel affine maps commute with the max when the scale
is positive, and turn it into a min when negative; both are computed), which
spares an elementwise pass over the largest tensors; every other batch
normalisation is an explicit per-channel ``Mul``/``Add`` (they follow ReLUs,
so they cannot be folded into the convolutions).

The int8 graph computes only the front-end filters whose output depends on
the input (:func:`_live_filters`; msd-musicnn: 64 of 561, mtt-musicnn: 257):
the others were trained to weights of ~1e-30 and are constants, folded
exactly into the first mid-end convolution and the pooled features
(:func:`_midend_pool`).

Outputs: ``probabilities`` (B, n_tags), ``penultimate`` (B, 200) and ``pool``
(B, 1506), the pooled mid-end features before ``pool_bn``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping

import numpy as np

from ..errors import ModelError, ParameterError

__all__ = ["CALIBRATION_FILE", "OPSET", "OUTPUTS", "PRECISIONS", "build_onnx", "load_calibration"]

PRECISIONS = ("float32", "int8")

OPSET = 17
OUTPUTS = ("probabilities", "penultimate", "pool")
_BN_EPS = 1e-3
_TIMBRAL = (("timbral_f74", 7), ("timbral_f77", 7))
_TEMPORAL = ("temporal_s1", "temporal_s2", "temporal_s3")


def _bn_affine(w: Mapping[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode batch norm of layer ``name`` as ``x * scale + shift``."""
    g, b = w[f"{name}/gamma"], w[f"{name}/beta"]
    m, v = w[f"{name}/moving_mean"], w[f"{name}/moving_variance"]
    scale = (g.astype(np.float64) / np.sqrt(v.astype(np.float64) + _BN_EPS))
    shift = b.astype(np.float64) - m.astype(np.float64) * scale
    return scale.astype(np.float32), shift.astype(np.float32)


class _Graph:
    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits = [], []
        self._consts: dict[str, np.ndarray] = {}
        self._n = 0

    def const(self, name, value, dtype=np.float32):
        """An initializer; a name used again must hold the same value (it is shared)."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        seen = self._consts.get(name)
        if seen is not None:
            if seen.dtype != arr.dtype or not np.array_equal(seen, arr):
                raise ValueError(f"constant {name!r} defined twice with different values")
            return name
        self._consts[name] = arr
        self.inits.append(self.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type, inputs, name=None, **attrs):
        self._n += 1
        out = name or f"{op_type.lower()}_{self._n}"
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=f"n{self._n}_{out}", **attrs))
        return out

    def affine(self, x, scale, shift, shape, prefix):
        s = self.const(f"{prefix}/scale", np.reshape(scale, shape))
        b = self.const(f"{prefix}/shift", np.reshape(shift, shape))
        return self.op("Add", [self.op("Mul", [x, s]), b])

    def freq_max_then_bn(self, x, scale, shift, prefix):
        """max over the last axis of ReLU(conv) followed by BN, with BN applied after the max."""
        c = len(scale)
        mx = self.op("ReduceMax", [x], axes=[3], keepdims=0)  # (B, C, T)
        if np.all(scale >= 0):
            picked = mx
        else:
            mn = self.op("ReduceMin", [x], axes=[3], keepdims=0)
            cond = self.const(f"{prefix}/positive", np.reshape(scale >= 0, (1, c, 1)), dtype=bool)
            picked = self.op("Where", [cond, mx, mn])
        return self.affine(picked, scale, shift, (1, c, 1), prefix)


def build_onnx(weights: Mapping[str, np.ndarray], *, n_tags: int, n_frames: int = 187,
               n_mels: int = 96, precision: str = "float32", source: str = "<weights>",
               calibration: Mapping[str, np.ndarray] | None = None) -> bytes:
    """Serialise musicnn with ``weights`` as an ONNX model (deterministic bytes).

    Parameters
    ----------
    weights : mapping
        ``"<layer>/<variable>"`` arrays, the ``.npz`` the Keras port reads.
    n_tags : int
        Output tags (the ``logits`` kernel's width).
    n_frames, n_mels : int
        Patch shape (187 x 96 for the pretrained models).
    precision : {"float32", "int8"}
        ``"int8"`` runs the five front-end convolutions (two timbral, three
        temporal: 96 % of the network's multiply-adds) as 8-bit integer
        matrix products (see :func:`_timbral_int8`, :func:`_temporal_int8`),
        calibrated on the log-mel statistics of real music (``calibration``);
        everything else stays float32.
    source : str
        Named in errors.
    calibration : mapping, optional
        The statistics :func:`load_calibration` reads (default: the shipped
        :data:`CALIBRATION_FILE`); used by ``"int8"`` only.

    Returns
    -------
    bytes
        The ``ModelProto``; the batch dimension is dynamic.

    Raises
    ------
    ModelError
        A weight is missing or has an unexpected shape, or the calibration
        file cannot be read.
    """
    if precision not in PRECISIONS:
        raise ParameterError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "int8" and calibration is None:
        calibration = load_calibration()
    try:
        return _build(weights, n_tags, n_frames, n_mels, precision, calibration)
    except KeyError as exc:
        raise ModelError(source, f"weights lack {exc} needed by the ONNX graph") from None
    except ValueError as exc:
        raise ModelError(source, f"weights do not fit the ONNX graph ({exc})") from None


def _build(w, n_tags, n_frames, n_mels, precision, cal) -> bytes:
    from onnx import TensorProto

    g = _Graph()
    x = g.op("Reshape", ["logmel", g.const("shape/nchw", [-1, 1, n_frames, n_mels], np.int64)])
    s, b = _bn_affine(w, "input_bn")
    x = g.affine(x, s, b, (1, 1, 1, 1), "input_bn")

    n_front = sum(w[f"{n}_conv/bias"].shape[0] for n, _ in _TIMBRAL) \
        + sum(w[f"{n}_conv/bias"].shape[0] for n in _TEMPORAL)
    if precision == "int8":
        parts = [_timbral_int8(g, x, w, name, n_frames, n_mels, cal) for name, _ in _TIMBRAL]
        parts += [_temporal_int8(g, x, w, name, n_frames, n_mels, cal) for name in _TEMPORAL]
        front, live, dead = _live_front(g, parts)  # (B, L, T) of the 561 channels' live ones
    else:
        front = g.op("Concat", _front_float32(g, x, w), axis=1)  # (B, 561, T)
        live, dead = np.ones(n_front, dtype=bool), np.zeros(n_front, dtype=np.float32)
    pool, channels = _midend_pool(g, w, front, live, dead, n_frames)
    s, b = _bn_affine(w, "pool_bn")
    h = g.affine(pool, s, b, (1, -1), "pool_bn")
    h = g.op("Gemm", [h, g.const("penultimate_dense/W", w["penultimate_dense/kernel"]),
                      g.const("penultimate_dense/B", w["penultimate_dense/bias"])])
    h = g.op("Relu", [h])
    s, b = _bn_affine(w, "penultimate")
    emb = g.op("Add", [g.op("Mul", [h, g.const("penultimate/scale", s)]), g.const("penultimate/shift", b)],
               name="penultimate")
    logits = g.op("Gemm", [emb, g.const("logits/W", w["logits/kernel"]), g.const("logits/B", w["logits/bias"])])
    if w["logits/kernel"].shape[1] != n_tags:
        raise ValueError(f"logits kernel has {w['logits/kernel'].shape[1]} outputs, n_tags={n_tags}")
    g.op("Sigmoid", [logits], name="probabilities")

    hp = g.helper
    graph = hp.make_graph(
        g.nodes, "musicnn",
        [hp.make_tensor_value_info("logmel", TensorProto.FLOAT, ["batch", n_frames, n_mels])],
        [hp.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_tags]),
         hp.make_tensor_value_info("penultimate", TensorProto.FLOAT,
                                   ["batch", int(w["penultimate_dense/kernel"].shape[1])]),
         hp.make_tensor_value_info("pool", TensorProto.FLOAT, ["batch", 2 * channels])],
        initializer=g.inits,
    )
    model = hp.make_model(graph, opset_imports=[hp.make_opsetid("", OPSET)], producer_name="recommender")
    model.ir_version = 8
    return model.SerializeToString()


def _midend_pool(g: _Graph, w, front, live, dead, n_frames):
    """The mid end and the pooling over time: ``(pool, channels)``, pool (B, 2 * 753).

    ``front`` (B, L, T) holds the ``live`` (561,) front-end channels; the
    others are the constants ``dead`` (561,) (all live in float32).  Constant
    channels are folded in exactly: their part of the first mid-end
    convolution is a fixed (64, T) term (added before its ReLU; at the first
    and last frames the zero padding makes it differ), and their max and
    mean over time are the constants themselves.
    """
    # the mid end runs as (7, 1) 2-D convolutions on (B, C, T, 1): ONNX Runtime's
    # blocked NCHWc kernels are several times faster than its 1-D path here
    mids = []
    front = g.op("Unsqueeze", [front, g.const("axes/3", [3], np.int64)])  # (B, L, T, 1)
    extra = -int(live.sum()) % 16  # zero channels: the blocked kernels want multiples of 16
    h = front if not extra else g.op("Pad", [front, g.const("pads/front16", [0, 0, 0, 0, 0, extra, 0, 0],
                                                              np.int64)])
    for i in (1, 2, 3):
        k = w[f"midend_conv{i}/kernel"]  # (7, in, out)
        if i == 1:
            k_dead, k = k[:, ~live, :], k[:, live, :]
            k = np.concatenate([k, np.zeros((k.shape[0], extra, k.shape[2]), k.dtype)], axis=1)
        kern = g.const(f"midend_conv{i}/W", np.transpose(k, (2, 1, 0))[..., None])
        bias = g.const(f"midend_conv{i}/B", w[f"midend_conv{i}/bias"])
        c = g.op("Conv", [h, kern, bias], kernel_shape=[k.shape[0], 1], pads=[k.shape[0] // 2, 0, k.shape[0] // 2, 0])
        if i == 1 and not live.all():
            c = g.op("Add", [c, g.const("midend_conv1/dead", _constant_conv(k_dead, dead[~live], n_frames))])
        c = g.op("Relu", [c])
        s, b = _bn_affine(w, f"midend_bn{i}")
        c = g.affine(c, s, b, (1, len(s), 1, 1), f"midend_bn{i}")
        h = c if i == 1 else g.op("Add", [c, h])
        mids.append(h)
    mid = g.op("Concat", [front] + mids, axis=1)  # (B, L + 192, T, 1)
    channels = len(live) + 3 * w["midend_conv1/bias"].shape[0]

    # over (T, 1), not T alone: ONNX Runtime's reductions over a trailing run of axes are
    # several times faster than over a middle one (the same values)
    mx = g.op("ReduceMax", [mid], axes=[2, 3], keepdims=1)  # (B, L + 192, 1, 1)
    mn = g.op("ReduceMean", [mid], axes=[2, 3], keepdims=1)
    pooled = g.op("Concat", [mx, mn], axis=2)  # (B, L + 192, 2, 1)
    if not live.all():  # (B, 753, 2, 1): the constant channels put in
        is_live = np.concatenate([live, np.ones(channels - len(live), dtype=bool)])
        idx = np.where(is_live, np.cumsum(is_live) - 1, 0)
        pooled = g.op("Gather", [pooled, g.const("pool/live_index", idx, np.int64)], axis=1)
        const = np.concatenate([dead, np.zeros(channels - len(live), dtype=np.float32)])
        pooled = g.op("Where", [g.const("pool/live", is_live.reshape(-1, 1, 1), bool), pooled,
                                g.const("pool/dead", const.reshape(-1, 1, 1))])
    return g.op("Reshape", [pooled, g.const("shape/pool", [-1, 2 * channels], np.int64)], name="pool"), channels


def _constant_conv(k, v, n_frames):
    """(1, out, T, 1) float32: a (kt, 1) convolution ``k`` (kt, D, out), time padded kt // 2 with
    zeros each side, of D input channels holding the constants ``v`` (D,) over the T frames."""
    kt = k.shape[0]
    t = np.arange(n_frames)[:, None] - kt // 2 + np.arange(kt)[None, :]
    valid = ((t >= 0) & (t < n_frames)).astype(np.float64)  # (T, kt)
    per_tap = np.einsum("kdo,d->ko", k.astype(np.float64), np.asarray(v, dtype=np.float64))  # (kt, out)
    return (valid @ per_tap).T[None, :, :, None].astype(np.float32)


def _front_float32(g: _Graph, x, w) -> list:
    """The five front-end branches in float32, each a (B, C, T) tensor name."""
    branches = []
    for name, kt in _TIMBRAL:
        k = w[f"{name}_conv/kernel"]  # (kt, kf, 1, out)
        kern = g.const(f"{name}_conv/W", np.transpose(k, (3, 2, 0, 1)))
        bias = g.const(f"{name}_conv/B", w[f"{name}_conv/bias"])
        h = g.op("Conv", [x, kern, bias], kernel_shape=list(k.shape[:2]), pads=[kt // 2, 0, kt // 2, 0])
        h = g.op("Relu", [h])
        s, b = _bn_affine(w, f"{name}_bn")
        branches.append(g.freq_max_then_bn(h, s, b, f"{name}_bn"))
    for name in _TEMPORAL:
        k = w[f"{name}_conv/kernel"]  # (kt, 1, 1, out)
        kt = k.shape[0]
        kern = g.const(f"{name}_conv/W", np.transpose(k, (3, 2, 0, 1)))
        bias = g.const(f"{name}_conv/B", w[f"{name}_conv/bias"])
        # TensorFlow 'same' with an even kernel: (k - 1) // 2 before, k // 2 after
        h = g.op("Conv", [x, kern, bias], kernel_shape=[kt, 1], pads=[(kt - 1) // 2, 0, kt // 2, 0])
        h = g.op("Relu", [h])
        s, b = _bn_affine(w, f"{name}_bn")
        branches.append(g.freq_max_then_bn(h, s, b, f"{name}_bn"))
    return branches



#: Output frequency positions per row of the int8 timbral products.
_INT8_BLOCK = 8
#: Largest value the front end can produce: log10(10000 * float16 max + 1).
_LOGMEL_MAX = float(np.log10(10000.0 * float(np.finfo(np.float16).max) + 1.0))
#: Log-mel statistics of real music that calibrate the int8 front end
#: (written by ``tools/calibrate_int8.py`` from the selection half of the dev collection).
CALIBRATION_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "int8_calibration.npz")
_CALIBRATION_KEYS = {"mean": (96,), "cross": (7, 96, 96), "lag": (128,), "logmel_hi": ()}
#: Dampening of the GPTQ second-moment matrices (share of their mean diagonal).
_GPTQ_DAMP = 0.01
#: Largest change of a front-end filter's output, over every possible input,
#: below which the filter is a constant (:func:`_live_filters`); far below
#: the int8 rounding of the live filters (an input step is ~0.01).
_DEAD_FILTER = 1e-4


def load_calibration(path: str = CALIBRATION_FILE) -> dict[str, np.ndarray]:
    """Read the log-mel statistics that calibrate the int8 front end.

    Parameters
    ----------
    path : str
        An ``.npz`` written by ``tools/calibrate_int8.py``: ``mean`` (96,)
        mean log-mel per band, ``cross`` (7, 96, 96) E[l_{t,f} l_{t+d,g}]
        for time lags d = 0..6, ``lag`` (128,) E[l_{t,f} l_{t+d,f}] averaged
        over bands, ``logmel_hi`` (scalar) the top of the input range.

    Returns
    -------
    dict of str to ndarray (float64)

    Raises
    ------
    ModelError
        The file is missing, unreadable, or an array is absent or has another shape.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            cal = {k: np.asarray(npz[k], dtype=np.float64) for k in _CALIBRATION_KEYS}
    except FileNotFoundError:
        raise ModelError(path, "int8 calibration file not found (tools/calibrate_int8.py writes it)") from None
    except KeyError as exc:
        raise ModelError(path, f"int8 calibration lacks {exc}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(path, f"cannot read the int8 calibration ({exc})") from None
    for k, shape in _CALIBRATION_KEYS.items():
        if cal[k].shape != shape or not np.all(np.isfinite(cal[k])):
            raise ModelError(path, f"int8 calibration {k!r} has shape {cal[k].shape}, expected {shape} "
                                   "of finite values")
    if not 0.0 < float(cal["logmel_hi"]) <= _LOGMEL_MAX:
        raise ModelError(path, f"int8 calibration logmel_hi={float(cal['logmel_hi'])} outside (0, {_LOGMEL_MAX:.3f}]")
    return cal


def _input_quantisation(w, cal):
    """uint8 scale and zero point of the batch-normalised input over the calibrated log-mel range.

    The input BN maps the log-mel range ``[0, cal["logmel_hi"]]`` (0: digital
    silence, the least a log-mel value can be; the top: a high quantile of
    real music, 6.42 for the shipped calibration against 8.8 for the largest
    value the front end can produce) to an interval; larger values saturate
    at the top level.  0 (the padding value) is a quantisation level, so
    padding is exact.
    """
    a, b = _bn_affine(w, "input_bn")
    lo, hi = sorted((float(b[0]), float(a[0]) * float(cal["logmel_hi"]) + float(b[0])))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    zp = int(round(-lo / (hi - lo) * 255))
    sx = max(-lo / zp if zp else 0.0, hi / (255 - zp) if zp < 255 else 0.0) * (1 + 1e-6)
    return sx, zp


def _valid_pairs(n_frames, before, k):
    """(k, k) share of output frames whose input frames ``t - before + i`` and ``+ j`` both lie in the patch."""
    t = np.arange(n_frames)[:, None] - before + np.arange(k)[None, :]
    ok = ((t >= 0) & (t < n_frames)).astype(np.float64)
    return ok.T @ ok / n_frames


def _input_moments(w, cal, kind, kt, kf, n_frames):
    """E[x x^T] of a front-end convolution's input windows, from the log-mel statistics.

    ``x`` is the batch-normalised input (``a * logmel + b``; 0 in the time
    padding).  The spectrogram is taken as stationary in time: a timbral
    window (kt frames x kf bands, flattened frame-major like the kernel)
    averages over its output bands, a temporal one (kt frames) over all
    bands.  Returns a (kt * kf, kt * kf) matrix (kf = 1 for temporal).
    """
    a, b = (float(v[0]) for v in _bn_affine(w, "input_bn"))
    mu, cross, lag = cal["mean"], cal["cross"], cal["lag"]
    if kind == "temporal":
        d = np.abs(np.arange(kt)[:, None] - np.arange(kt)[None, :])
        m = a * a * lag[d] + 2 * a * b * mu.mean() + b * b
        return m * _valid_pairs(n_frames, (kt - 1) // 2, kt)
    n_out = len(mu) - kf + 1
    # per lag: E[x_{t,f0+i} x_{t+d,f0+j}] averaged over the output bands f0, (kf, kf)
    mx = a * a * cross + a * b * (mu[None, :, None] + mu[None, None, :]) + b * b
    blocks = np.stack([sum(mx[d, f0:f0 + kf, f0:f0 + kf] for f0 in range(n_out)) / n_out for d in range(kt)])
    m = np.empty((kt, kf, kt, kf))
    for i in range(kt):
        for j in range(kt):
            m[i, :, j, :] = blocks[j - i] if j >= i else blocks[i - j].T
    return (m * _valid_pairs(n_frames, kt // 2, kt)[:, None, :, None]).reshape(kt * kf, kt * kf)


def _gptq_round(wt, sw, hess):
    """int8 levels of weights ``wt`` (K, C) with scales ``sw`` (C,) chosen to keep ``x . w`` (GPTQ).

    Each weight in turn is rounded to its level and the rounding error is
    spread over the weights not yet rounded, along the inverse of the input
    second moments ``hess`` (K, K): the optimal brain surgeon update of
    Frantar et al., "GPTQ" (ICLR 2023), Algorithm 1, with one block.  Against
    rounding each weight to nearest, this keeps the expected squared error
    of the filter outputs on inputs like the calibration far smaller.
    """
    k = len(wt)
    h = hess + _GPTQ_DAMP * float(np.mean(np.diag(hess))) * np.eye(k)
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper Cholesky factor of H^-1
    wt = np.array(wt, dtype=np.float64)
    q = np.empty_like(wt)
    for i in range(k):
        q[i] = np.clip(np.round(wt[i] / sw), -127, 127)
        err = (wt[i] - q[i] * sw) / u[i, i]
        wt[i + 1:] -= np.outer(u[i, i + 1:], err)
    return q


def _live_filters(k, w, name):
    """(C,) bool: the filters of front-end convolution ``k`` (..., C) whose output depends on the input.

    Training drove most of musicnn's front-end filters to weights of ~1e-30
    (msd-musicnn: 181 and 190 of 204 timbral, 48, 44 and 34 of 51 temporal
    filters).  A filter is dead when its output after ReLU, max and BN can
    move by at most :data:`_DEAD_FILTER` over every possible input: |BN
    scale| x the L1 norm of its weights x the largest batch-normalised input
    (log-mel 0 to :data:`_LOGMEL_MAX`) -- ReLU and max change a value by no
    more than their input changes.  Its output is then the constant
    ``BN(ReLU(bias))``.
    """
    c = k.shape[-1]
    a, b = (float(v[0]) for v in _bn_affine(w, "input_bn"))
    xmax = max(abs(b), abs(a * _LOGMEL_MAX + b))
    s_bn, _ = _bn_affine(w, f"{name}_bn")
    return np.abs(s_bn) * np.abs(k.reshape(-1, c)).sum(axis=0).astype(np.float64) * xmax > _DEAD_FILTER


def _dead_output(w, name, live):
    """(C,) float32: ``BN(ReLU(bias))``, each filter's output were its weights zero (used where not ``live``)."""
    s_bn, b_bn = _bn_affine(w, f"{name}_bn")
    out = s_bn * np.maximum(w[f"{name}_conv/bias"], 0) + b_bn
    return np.where(live, 0, out).astype(np.float32)


def _live_front(g: _Graph, parts):
    """The int8 front end's live outputs ``(front, live, dead)``: (B, L, T), (561,) bool, (561,) float32.

    ``parts``: per branch ``(out, live, const)``: ``out`` the (B, T, L_i)
    output of its live filters (None when none is), ``live`` (C,) bool,
    ``const`` (C,) the dead filters' outputs (:func:`_dead_output`), which
    :func:`_midend_pool` folds in.
    """
    outs = [o for o, _, _ in parts if o is not None]
    if not outs:
        raise ValueError("no front-end filter depends on the input")
    h = outs[0] if len(outs) == 1 else g.op("Concat", outs, axis=2)  # (B, T, L)
    live = np.concatenate([lv for _, lv, _ in parts])
    return g.op("Transpose", [h], perm=[0, 2, 1]), live, np.concatenate([cv for _, _, cv in parts])


def _filter_quantisation(k, w, name, hess, live):
    """Per-filter int8 weights of a front-end convolution ``k`` (..., C) followed by ReLU, BN and a max.

    Scales: each filter's largest weight is level 127; levels: GPTQ on the
    input second moments ``hess`` (:func:`_gptq_round`).  Filters whose BN
    scale is negative need the min over frequency: their weights are
    negated, so that a max of the negated accumulators gives it (exact in
    int8: the range is symmetric).  Only the ``live`` (C,) filters are kept:
    returns ``(kq, sw, sign, s_bn, b_bn)`` of those (GPTQ rounds each filter
    on its own, so the levels are the same as with every filter).
    """
    k = k[..., live]
    c = k.shape[-1]
    s_bn, b_bn = (v[live] for v in _bn_affine(w, f"{name}_bn"))
    sign = np.where(s_bn >= 0, 1, -1).astype(np.int8)
    sw = np.maximum(np.abs(k).reshape(-1, c).max(axis=0), 1e-12) / 127.0
    kq = _gptq_round(k.reshape(-1, c), sw.astype(np.float64), hess).reshape(k.shape).astype(np.int8) * sign
    return kq, sw, sign, s_bn, b_bn


def _max_then_affine(g: _Graph, acc, axes, sx, sw, sign, bias, s_bn, b_bn, prefix):
    """max of int32 accumulators over ``axes`` (one after the other), then
    dequantise, bias, ReLU and BN (float32)."""
    deq = (sx * sw * sign).astype(np.float32)
    for axis in axes:
        acc = g.op("ReduceMax", [acc], axes=[axis], keepdims=0)
    red = g.op("Cast", [acc], to=1)
    v = g.op("Relu", [g.op("Add", [g.op("Mul", [red, g.const(f"{prefix}_q/deq", deq)]),
                                   g.const(f"{prefix}_q/bias", np.asarray(bias, dtype=np.float32))])])
    return g.op("Add", [g.op("Mul", [v, g.const(f"{prefix}_bn/scale", s_bn)]), g.const(f"{prefix}_bn/shift", b_bn)])


def _timbral_int8(g: _Graph, x, w, name, n_frames, n_mels, cal):
    """A timbral branch (Conv (7, kf) valid, ReLU, max over freq, BN) with int8 products.

    The batch-normalised input is quantised to uint8 over the calibrated
    range (:func:`_input_quantisation`; the time padding's zeros are exact);
    each filter's weights to int8 with their own scale, rounded by GPTQ on
    the calibrated input moments (:func:`_filter_quantisation`).  The convolution is
    laid out as one matrix product: rows are (patch, frame, block of 8
    output bands), a row holds the 7 frames x (kf + 7) bands the block
    reads, and the weights form the matching banded (Toeplitz) matrix, so
    one ``MatMulInteger`` (VNNI/AVX2 int8 kernels) computes 8 output bands x
    every filter per row.  The last block is shifted left to end at the last
    valid band (it overlaps its neighbour; harmless under a max).  The max
    over frequency is taken on the int32 accumulators -- scaling, bias and
    ReLU are monotone per filter -- and only the (B, T, L) result is turned
    back into float32.  Only the live filters (:func:`_live_filters`) are
    computed; returns ``(out, live, const)`` as :func:`_live_front` takes.
    """
    k = np.asarray(w[f"{name}_conv/kernel"], dtype=np.float32)[:, :, 0, :]  # (kt, kf, C)
    kt, kf, c = k.shape
    n_out = n_mels - kf + 1
    blk = min(_INT8_BLOCK, n_out)
    starts = list(range(0, n_out - blk + 1, blk))
    if starts[-1] + blk < n_out:
        starts.append(n_out - blk)
    span = blk + kf - 1  # input bands one block reads
    live = _live_filters(k, w, name)
    if not live.any():
        return None, live, _dead_output(w, name, live)

    sx, zp = _input_quantisation(w, cal)
    hess = _input_moments(w, cal, "timbral", kt, kf, n_frames)
    kq, sw, sign, s_bn, b_bn = _filter_quantisation(k, w, name, hess, live)  # (kt, kf, L) int8
    c = kq.shape[-1]
    # columns ordered (filter, band): the max over a row's 8 bands is then a
    # reduction over the contiguous last axis (3x faster than over a middle one
    # at 204 filters; with under ~25 live filters (band, filter) and one
    # reduction over (block, band) would be ~2.5x faster, at 70 or more 1.5x slower)
    toe = np.zeros((kt, span, c, blk), dtype=np.int8)
    for i in range(blk):
        toe[:, i : i + kf, :, i] = kq
    toe = toe.reshape(kt * span, c * blk)

    xp = g.op("Pad", [x, g.const(f"{name}_q/pads", [0, 0, kt // 2, 0, 0, 0, kt // 2, 0], np.int64)])
    xq = g.op("QuantizeLinear", [xp, g.const(f"{name}_q/sx", sx), g.const(f"{name}_q/zp", zp, np.uint8)])
    xq = g.op("Squeeze", [xq, g.const(f"{name}_q/axis1", [1], np.int64)])  # (B, T + kt - 1, 96)
    taps = np.arange(n_frames)[:, None] + np.arange(kt)[None, :]  # frames each output frame reads
    stacked = g.op("Gather", [xq, g.const(f"{name}_q/taps", taps, np.int64)], axis=1)  # (B, T, kt, 96)
    blocks = []
    for j, f0 in enumerate(starts):  # (B, T, 1, kt, span) per block
        sl = g.op("Slice", [stacked, g.const(f"{name}_q/b{j}s", [f0], np.int64),
                            g.const(f"{name}_q/b{j}e", [f0 + span], np.int64),
                            g.const(f"{name}_q/ax3", [3], np.int64)])
        blocks.append(g.op("Unsqueeze", [sl, g.const(f"{name}_q/ax2b", [2], np.int64)]))
    rows = g.op("Concat", blocks, axis=2)  # (B, T, nb, kt, span)
    rows = g.op("Reshape", [rows, g.const(f"{name}_q/rows", [0, 0, len(starts), kt * span], np.int64)])
    acc = g.op("MatMulInteger", [rows, g.const(f"{name}_q/W", toe, np.int8),
                                 g.const(f"{name}_q/zp_a", zp, np.uint8)])  # (B, T, nb, C * blk) int32
    acc = g.op("Reshape", [acc, g.const(f"{name}_q/bands", [0, 0, len(starts), c, blk], np.int64)])
    out = _max_then_affine(g, acc, (4, 2), sx, sw, sign, w[f"{name}_conv/bias"][live], s_bn, b_bn, name)
    return out, live, _dead_output(w, name, live)  # out: (B, T, L)


#: Output frames per row of the int8 temporal products.
_INT8_TIME_BLOCK = 32


def _temporal_int8(g: _Graph, x, w, name, n_frames, n_mels, cal):
    """A temporal branch (Conv (kt, 1) 'same', ReLU, max over freq, BN) with int8 products.

    Same quantisation as :func:`_timbral_int8`.  The convolution runs along
    time, band by band: rows are (patch, band, block of
    :data:`_INT8_TIME_BLOCK` (32) output frames), a row holds the ``kt + 31``
    frames the block reads, and the weights form the banded matrix over time,
    so one ``MatMulInteger`` computes 32 frames x every live filter per row.  The time axis is padded as TensorFlow's 'same'
    does, plus zeros at the end up to a whole number of blocks (those
    outputs are dropped after the max over bands).  Only the live filters
    are computed; returns ``(out, live, const)`` as :func:`_live_front` takes.
    """
    k = np.asarray(w[f"{name}_conv/kernel"], dtype=np.float32)[:, 0, 0, :]  # (kt, C)
    kt, c = k.shape
    blk = _INT8_TIME_BLOCK
    nb = -(-n_frames // blk)
    span = blk + kt - 1
    live = _live_filters(k, w, name)
    if not live.any():
        return None, live, _dead_output(w, name, live)

    sx, zp = _input_quantisation(w, cal)
    hess = _input_moments(w, cal, "temporal", kt, 1, n_frames)
    kq, sw, sign, s_bn, b_bn = _filter_quantisation(k, w, name, hess, live)  # (kt, L)
    c = kq.shape[-1]
    toe = np.zeros((span, blk, c), dtype=np.int8)
    for i in range(blk):
        toe[i : i + kt, i, :] = kq
    toe = toe.reshape(span, blk * c)

    before, after = (kt - 1) // 2, kt // 2 + nb * blk - n_frames
    xp = g.op("Pad", [x, g.const(f"{name}_q/pads", [0, 0, before, 0, 0, 0, after, 0], np.int64)])
    xq = g.op("QuantizeLinear", [xp, g.const(f"{name}_q/sx", sx), g.const(f"{name}_q/zp", zp, np.uint8)])
    xq = g.op("Squeeze", [xq, g.const(f"{name}_q/axis1", [1], np.int64)])  # (B, nb * blk + kt - 1, 96)
    frames = np.arange(nb)[:, None] * blk + np.arange(span)[None, :]  # frames each block reads
    rows = g.op("Gather", [xq, g.const(f"{name}_q/frames_read", frames, np.int64)], axis=1)  # (B, nb, span, 96)
    rows = g.op("Transpose", [rows], perm=[0, 3, 1, 2])  # (B, 96, nb, span)
    acc = g.op("MatMulInteger", [rows, g.const(f"{name}_q/W", toe, np.int8),
                                 g.const(f"{name}_q/zp_a", zp, np.uint8)])  # (B, 96, nb, blk * C) int32
    acc = g.op("Reshape", [acc, g.const(f"{name}_q/frames", [0, 0, nb * blk, c], np.int64)])
    out = _max_then_affine(g, acc, (1,), sx, sw, sign, w[f"{name}_conv/bias"][live], s_bn, b_bn, name)
    out = g.op("Slice", [out, g.const(f"{name}_q/t0", [0], np.int64), g.const(f"{name}_q/tT", [n_frames], np.int64),
                         g.const(f"{name}_q/ax1", [1], np.int64)])  # (B, T, L)
    return out, live, _dead_output(w, name, live)
