"""Distil msd-musicnn into a smaller CNN without labels, and gate it with the retrieval protocol (issue #20 item 4).

What it trains, on what
-----------------------
The student reproduces, per 3-s log-mel patch (187 frames x 96 bands, the
product's own front end), the two msd-musicnn layers the ``'similarity'``
space summarises (:func:`recommender.features.pooling.layer_summary`):
``pool`` (1506) and ``penultimate`` (200) of the *float32* network, each
dimension standardised over the training patches (MSE on the standardised
1706 values, so every dimension weighs as it does after the collection
standardisation of the space).  Training audio: the selection half of the
dev collection (``/tmp/devset``, 99 tracks; no labels are used: the folder
only names which soundtrack, ``HELD_OUT``, is kept out of training for
early stopping on the distillation loss).  Patches: ``Sampling.spread(40)``
windows of every track (3452 patches, against the 8 a track of an index),
and for ``v2`` also up to 40 windows a track on the non-overlapping grid
shifted by half a patch (3434 more).  The students (:data:`VARIANTS`):
4 x [Conv 3x3, BN, ReLU] with 2x2 max pooling after the first three, max
over bands, Conv1D 3 over the 23 remaining frames, max + mean over time,
Dense, Dense 1706; Keras (TensorFlow) for training, Adam 1e-3, batch 64,
learning rate x 0.3 after 2 epochs without a better held-out loss, stop
after 4 (best weights kept).  Inference: an ONNX graph built with the
``onnx`` helper from the folded weights (:func:`student_onnx`, checked
against Keras to 1e-6), on ONNX Runtime like musicnn.

Stages (cached under ``--work``, default ``/tmp/distill``; a variant's
files under ``WORK/VARIANT``)::

    nice -n 19 python benchmarks/distill.py data                  # log-mels + teacher layers (~4 min)
    nice -n 19 python benchmarks/distill.py extra                 # v2's half-shifted windows (~3 min)
    nice -n 19 python benchmarks/distill.py train --variant v2    # Keras student (9-30 min on 2 cores)
    nice -n 19 python benchmarks/distill.py gate --variant v2     # MACs, patches/s, p@10 on selection
    nice -n 19 python benchmarks/distill.py confirm --variant v2  # once, only after a passing gate

``gate`` prints the student's multiply-accumulates per patch against
musicnn's, patches/s of the three ONNX Runtime graphs (student, musicnn
int8 = the index default, musicnn float32) on the same patches in the same
run (one thread each), and precision@10 by soundtrack of the student's
``layer_summary`` space against the default (musicnn int8, 8 patches a
track), leave-one-out, with the paired 95 % bootstrap CI by track
(``retrieval.bootstrap_ci``), as ``retrieval_protocol.py`` does.  Every
variant evaluated is appended to ``<cache>/variants.log`` (``--cache``,
default ``/tmp/e17``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

#: patches a track for training (spread windows); the index analyses 8
TRAIN_PATCHES = 40
EVAL_PATCHES = 8
POOL, PEN = 1506, 200


# --------------------------------------------------------------------------
# data: log-mel patches and teacher layers
# --------------------------------------------------------------------------
def _track_patches(path, n):
    """Log-mel patches (m, 187, 96) float32 of ``Sampling.spread(n)`` windows, as ``recommender index`` builds them."""
    from recommender.analysis import Sampling
    from recommender.analysis.blocks import _file_blocks
    from recommender.io import audio

    inf = audio.info(path)
    return np.concatenate([b[1] for b in _file_blocks(path, Sampling.spread(n), 64, inf)]).astype(np.float32)


def build_data(folder, out, *, train=True):
    """Analyse every track of ``folder`` into ``out`` (.npz).

    Keys: ``paths`` (n,), ``labels`` (n,) soundtrack folder; ``eval_mel`` (sum m_i, 187, 96) float16 of the
    8 index windows, ``eval_lens``; ``eval_{f32,int8}_{pool,pen}`` teacher layers on them.  With ``train``:
    ``train_mel`` / ``train_lens`` / ``train_f32_{pool,pen}`` of the ``TRAIN_PATCHES`` windows.
    """
    from _common import audio_files

    from recommender.models import load_model

    files = audio_files(folder)
    if not files:
        raise SystemExit(f"{folder}: no audio files (lay the half out first: benchmarks/devset.py)")
    f32 = load_model("msd-musicnn", threads=1, precision="float32")
    i8 = load_model("msd-musicnn", threads=1, precision="int8")
    acc = {}

    def add(key, v):
        acc.setdefault(key, []).append(v)

    t0 = time.perf_counter()
    for i, f in enumerate(files):
        sets = [("eval", EVAL_PATCHES)] + ([("train", TRAIN_PATCHES)] if train else [])
        for name, n in sets:
            P = _track_patches(f, n)
            add(f"{name}_mel", P.astype(np.float16))
            add(f"{name}_lens", len(P))
            _, pen, pool = f32.predict_patches(P, with_pool=True)
            add(f"{name}_f32_pool", pool.astype(np.float32))
            add(f"{name}_f32_pen", pen.astype(np.float32))
            if name == "eval":
                _, pen, pool = i8.predict_patches(P, with_pool=True)
                add("eval_int8_pool", pool.astype(np.float32))
                add("eval_int8_pen", pen.astype(np.float32))
        if (i + 1) % 10 == 0:
            print(f"  {folder}: {i + 1}/{len(files)} tracks, {time.perf_counter() - t0:.0f} s", flush=True)
    arrays = {k: (np.array(v) if k.endswith("_lens") else np.concatenate(v)) for k, v in acc.items()}
    arrays["paths"] = np.array(files, dtype=str)
    arrays["labels"] = np.array([os.path.basename(os.path.dirname(p)) for p in files], dtype=str)
    tmp = out + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return time.perf_counter() - t0


def build_extra(folder, out, *, cap=TRAIN_PATCHES):
    """More training patches: windows on the grid of non-overlapping patches shifted by half a patch
    (so none coincides with a ``spread`` window of :func:`build_data`), at most ``cap`` a track spread
    evenly; log-mel and float32 teacher layers, keys ``extra_{mel,lens,f32_pool,f32_pen}``, ``paths``."""
    from _common import audio_files

    from recommender import features
    from recommender.io import audio
    from recommender.models import load_model

    files = audio_files(folder)
    f32 = load_model("msd-musicnn", threads=1, precision="float32")
    acc = {"mel": [], "lens": [], "pool": [], "pen": []}
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        n = round(audio.info(f).duration_s * features.SR)
        hop = features.PATCH_HOP_SAMPLES
        starts = np.arange(hop // 2, n - features.PATCH_WINDOW_SAMPLES, hop)
        if len(starts) > cap:
            starts = starts[np.round(np.linspace(0, len(starts) - 1, cap)).astype(int)]
        if not len(starts):
            acc["lens"].append(0)
            continue
        W = audio.load_windows(f, (starts - features.N_FFT // 2) / features.SR, features.PATCH_WINDOW_SAMPLES,
                               sr=features.SR)
        P = np.stack([features.window_logmel(w) for w in W]).astype(np.float32)
        _, pen, pool = f32.predict_patches(P, with_pool=True)
        acc["mel"].append(P.astype(np.float16))
        acc["lens"].append(len(P))
        acc["pool"].append(pool)
        acc["pen"].append(pen)
        if (i + 1) % 10 == 0:
            print(f"  {folder}: {i + 1}/{len(files)} tracks, {time.perf_counter() - t0:.0f} s", flush=True)
    np.savez(out + ".tmp.npz", paths=np.array(files, dtype=str), extra_mel=np.concatenate(acc["mel"]),
             extra_lens=np.array(acc["lens"]), extra_f32_pool=np.concatenate(acc["pool"]),
             extra_f32_pen=np.concatenate(acc["pen"]))
    os.replace(out + ".tmp.npz", out)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------
# student: Keras for training, an ONNX graph for inference
# --------------------------------------------------------------------------
#: channels of the 3x3 convolutions (2x2 max pooling after the first three, max over bands after the last)
CONV_CHANNELS = (16, 32, 64, 128)
TIME_CHANNELS = 256
HIDDEN = 512
HELD_OUT = "freedroidrpg"
#: the students tried: name in variants.log, architecture, whether the half-shifted extra windows are used,
#: whether the teacher's constant dimensions are exported as exact constants (:func:`export_weights`), and
#: the variant whose trained weights it exports (``None``: its own)
VARIANTS = {
    "v1": ("distilled student (4 conv 16-128, 67 M MAC), 8", {"channels": CONV_CHANNELS}, False, False, None),
    "v2": ("distilled student v2 (4 conv 24-192, 2x windows), 8",
           {"channels": (24, 48, 96, 192), "time_channels": 384, "hidden": 768}, True, False, None),
    "v2c": ("distilled student v2, constant dims exact, 8",
            {"channels": (24, 48, 96, 192), "time_channels": 384, "hidden": 768}, True, True, "v2"),
}
#: a target dimension whose standard deviation over the training patches is below this is constant
#: (1082 of musicnn's 1506 ``pool`` values are: dead channels; the next smallest sd is 6e-4)
CONSTANT_SD = 1e-5


def build_student(mel_mean, mel_sd, *, channels=CONV_CHANNELS, time_channels=TIME_CHANNELS, hidden=HIDDEN):
    """Keras student: (B, 187, 96) log-mel -> (B, 1706) standardised ``[pool, penultimate]``.

    Input scaled by the scalar log-mel mean / sd of the training patches; 4 x [Conv2D 3x3 'same',
    BatchNorm, ReLU] with 2x2 max pooling after the first three and a max over bands after the last
    ((B, 23, C)); Conv1D 3 'same' + BN + ReLU over time; max and mean over time; Dense ``hidden`` ReLU;
    Dense 1706 linear.
    """
    import keras
    from keras import layers

    x_in = keras.Input(shape=(187, 96), name="logmel")
    x = layers.Reshape((187, 96, 1))(x_in)
    x = layers.Rescaling(1.0 / mel_sd, offset=-mel_mean / mel_sd, name="scale")(x)
    for i, c in enumerate(channels):
        x = layers.Conv2D(c, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU()(x)
        if i < len(channels) - 1:
            x = layers.MaxPooling2D(2)(x)
    t, f = x.shape[1], x.shape[2]
    x = layers.MaxPooling2D((1, f))(x)
    x = layers.Reshape((t, channels[-1]))(x)
    x = layers.Conv1D(time_channels, 3, padding="same", use_bias=False, name="tconv")(x)
    x = layers.BatchNormalization(momentum=0.9, name="tbn")(x)
    x = layers.ReLU()(x)
    x = layers.Concatenate(name="tpool")([layers.GlobalMaxPooling1D()(x), layers.GlobalAveragePooling1D()(x)])
    x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    out = layers.Dense(POOL + PEN, name="out")(x)
    return keras.Model(x_in, out, name="student")


def macs(channels=CONV_CHANNELS, time_channels=TIME_CHANNELS, hidden=HIDDEN):
    """Multiply-accumulates per patch of the student and of musicnn (convolutions and dense layers)."""
    t, f, cin, s = 187, 96, 1, 0
    for i, c in enumerate(channels):
        s += t * f * c * cin * 9
        cin = c
        if i < len(channels) - 1:
            t, f = t // 2, f // 2
    s += t * time_channels * cin * 3 + 2 * time_channels * hidden + hidden * (POOL + PEN)
    m = (204 * 7 * 38 * 187 * (96 - 38 + 1) + 204 * 7 * 67 * 187 * (96 - 67 + 1)
         + 51 * (128 + 64 + 32) * 187 * 96 + 187 * 7 * 64 * (561 + 64 + 64) + 1506 * 200 + 200 * 50)
    return s, m


def train_student(data, out_dir, *, arch=None, extra=None, epochs=40, batch=64, seed=0):
    """Fit the student on every track but the ``HELD_OUT`` soundtrack's; early stopping on their loss.

    Saves ``student.weights.h5`` and ``student_meta.npz`` (input scaling, target mean / sd) in ``out_dir``.
    """
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(seed)
    z = np.load(data)
    lens = z["train_lens"]
    X = z["train_mel"].astype(np.float32)
    Y = np.concatenate([z["train_f32_pool"], z["train_f32_pen"]], axis=1).astype(np.float64)
    if extra is not None:
        e = np.load(extra)
        if list(e["paths"]) != list(z["paths"]):
            raise SystemExit(f"{extra}: not the tracks of {data}")
        X = np.concatenate([X, e["extra_mel"].astype(np.float32)])
        Y = np.concatenate([Y, np.concatenate([e["extra_f32_pool"], e["extra_f32_pen"]], axis=1)])
        lens = np.concatenate([lens, e["extra_lens"]])
    track = np.repeat(np.tile(np.arange(len(z["train_lens"])), len(lens) // len(z["train_lens"])), lens)
    held = np.isin(track, np.flatnonzero(z["labels"] == HELD_OUT))
    ymu, ysd = Y[~held].mean(0), Y[~held].std(0)
    ysd = np.maximum(ysd, 1e-3 * np.median(ysd) + 1e-6)
    Ys = ((Y - ymu) / ysd).astype(np.float32)
    mel_mean, mel_sd = float(X[~held].mean()), float(X[~held].std())
    model = build_student(mel_mean, mel_sd, **(arch or {}))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    print(f"student: {model.count_params()} parameters; {int((~held).sum())} training patches, "
          f"{int(held.sum())} held out ({HELD_OUT})", flush=True)
    t0 = time.perf_counter()
    hist = model.fit(
        X[~held], Ys[~held], validation_data=(X[held], Ys[held]), epochs=epochs, batch_size=batch, verbose=2,
        callbacks=[keras.callbacks.EarlyStopping(patience=4, restore_best_weights=True),
                   keras.callbacks.ReduceLROnPlateau(factor=0.3, patience=2, min_lr=1e-5)])
    secs = time.perf_counter() - t0
    best = int(np.argmin(hist.history["val_loss"]))
    print(f"trained {len(hist.history['loss'])} epochs in {secs:.0f} s; best epoch {best + 1}: "
          f"val mse {hist.history['val_loss'][best]:.3f} (standardised units; 1.0 = predicting the mean)")
    model.save_weights(os.path.join(out_dir, "student.weights.h5"))
    np.savez(os.path.join(out_dir, "student_meta.npz"), mel_mean=mel_mean, mel_sd=mel_sd, ymu=ymu, ysd=ysd,
             seconds=secs, epochs=len(hist.history["loss"]), best_epoch=best + 1)
    return model


def export_weights(model, meta, *, constants=False):
    """Inference arrays of a trained Keras student: batch norms folded into the convolutions, the
    target standardisation into the last layer.  ONNX layout (channels first); float32.

    ``constants``: the dimensions the teacher never varies on the training patches (sd below
    :data:`CONSTANT_SD`) are output as that constant exactly (zero weights).  Without it the student's
    tiny variations there (~1e-8) can exceed the threshold under which ``CollectionNormalizer``
    leaves a dimension unscaled, and are then blown up to unit variance: noise in the space.

    Keys: ``scale`` (2,) input ``x * a + b``; ``conv{i}/W`` (C_out, C_in, 3, 3), ``conv{i}/b``;
    ``tconv/W`` (C_out, C_in, 3), ``tconv/b``; ``hidden/W`` (in, out), ``hidden/b``; ``out/W`` (in, 1706),
    ``out/b`` (1706,) giving ``[pool (1506), penultimate (200)]`` in the teacher's units.
    """
    w = {"scale": np.array([1.0 / meta["mel_sd"], -meta["mel_mean"] / meta["mel_sd"]], dtype=np.float32)}

    def fold(conv, bn):
        k = model.get_layer(conv).get_weights()[0].astype(np.float64)
        g, b, m, v = (a.astype(np.float64) for a in model.get_layer(bn).get_weights())
        sc = g / np.sqrt(v + model.get_layer(bn).epsilon)
        return k * sc, b - m * sc

    i = 0
    while True:
        try:
            k, b = fold(f"conv{i}", f"bn{i}")
        except ValueError:
            break
        w[f"conv{i}/W"], w[f"conv{i}/b"] = k.transpose(3, 2, 0, 1), b
        i += 1
    k, b = fold("tconv", "tbn")
    w["tconv/W"], w["tconv/b"] = k.transpose(2, 1, 0), b
    w["hidden/W"], w["hidden/b"] = model.get_layer("hidden").get_weights()
    W, b = model.get_layer("out").get_weights()
    w["out/W"] = W.astype(np.float64) * meta["ysd"][None, :]
    w["out/b"] = b.astype(np.float64) * meta["ysd"] + meta["ymu"]
    if constants:
        dead = meta["ysd"] < CONSTANT_SD
        w["out/W"][:, dead] = 0.0
        w["out/b"][dead] = meta["ymu"][dead]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in w.items()}


def student_onnx(w, *, n_frames=187, n_mels=96):
    """ONNX graph (opset 17) of a student from :func:`export_weights`: ``logmel`` (B, T, 96) ->
    ``pool`` (B, 1506), ``penultimate`` (B, 200)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name, v, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(v, dtype=dtype)), name))
        return name

    def op(t, ins, out, **attrs):
        nodes.append(helper.make_node(t, ins, [out], name=out, **attrs))
        return out

    n_conv = sum(1 for k in w if k.startswith("conv") and k.endswith("/W"))
    x = op("Unsqueeze", ["logmel", const("ax1", [1], np.int64)], "x4")
    x = op("Add", [op("Mul", [x, const("sa", w["scale"][0])], "xs"), const("sb", w["scale"][1])], "xn")
    for i in range(n_conv):
        x = op("Relu", [op("Conv", [x, const(f"c{i}W", w[f"conv{i}/W"]), const(f"c{i}b", w[f"conv{i}/b"])],
                           f"c{i}", kernel_shape=[3, 3], pads=[1, 1, 1, 1])], f"r{i}")
        if i < n_conv - 1:
            x = op("MaxPool", [x], f"p{i}", kernel_shape=[2, 2], strides=[2, 2])
    x = op("ReduceMax", [x], "fmax", axes=[3], keepdims=0)  # (B, C, T')
    x = op("Relu", [op("Conv", [x, const("tW", w["tconv/W"]), const("tb", w["tconv/b"])], "tc",
                       kernel_shape=[3], pads=[1, 1])], "tr")
    x = op("Concat", [op("ReduceMax", [x], "tmax", axes=[2], keepdims=0),
                      op("ReduceMean", [x], "tmean", axes=[2], keepdims=0)], "tpool", axis=1)
    x = op("Relu", [op("Add", [op("MatMul", [x, const("hW", w["hidden/W"])], "hm"), const("hb", w["hidden/b"])],
                       "ha")], "hr")
    y = op("Add", [op("MatMul", [x, const("oW", w["out/W"])], "om"), const("ob", w["out/b"])], "y")
    op("Slice", [y, const("s0", [0], np.int64), const("s1", [POOL], np.int64), const("s2", [1], np.int64)], "pool")
    op("Slice", [y, const("s1b", [POOL], np.int64), const("s3", [POOL + PEN], np.int64),
                 const("s2b", [1], np.int64)], "penultimate")
    graph = helper.make_graph(
        nodes, "musicnn_distilled",
        [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, ["batch", n_frames, n_mels])],
        [helper.make_tensor_value_info("pool", TensorProto.FLOAT, ["batch", POOL]),
         helper.make_tensor_value_info("penultimate", TensorProto.FLOAT, ["batch", PEN])],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="recommender")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def ort_session(graph, threads=1):
    """A one-thread ONNX Runtime session, set up as the package sets up musicnn's."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])


def run_session(sess, P, outputs, batch=8):
    """``outputs`` of ``sess`` on patches ``P`` (n, 187, 96), ``batch`` at a time; list of (n, d) float32."""
    res = [[] for _ in outputs]
    for a in range(0, len(P), batch):
        for r, v in zip(res, sess.run(list(outputs), {"logmel": np.ascontiguousarray(P[a:a + batch], np.float32)})):
            r.append(v)
    return [np.concatenate(r) for r in res]


def musicnn_session(precision):
    """musicnn (msd) ONNX session at ``precision``, from the shipped weights, one thread."""
    from recommender.models import WEIGHTS_DIR
    from recommender.models.musicnn import read_weights
    from recommender.models.onnx_graph import build_onnx

    path = os.path.join(WEIGHTS_DIR, "msd_musicnn.npz")
    return ort_session(build_onnx(read_weights(path), n_tags=50, n_frames=187, n_mels=96, precision=precision,
                                  source=path))


def patches_per_s(sessions, P, rounds=3):
    """Median patches/s of each ``{name: (session, outputs)}`` on ``P``, the sessions interleaved per round."""
    t = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, (sess, outs) in sessions.items():
            t0 = time.perf_counter()
            run_session(sess, P, outs)
            t[k].append(len(P) / (time.perf_counter() - t0))
    return {k: float(np.median(v)) for k, v in t.items()}


def load_student(work, arch=None, constants=False):
    """Rebuild the trained Keras student of ``work`` and return its :func:`export_weights` arrays and meta."""
    meta = dict(np.load(os.path.join(work, "student_meta.npz")))
    model = build_student(float(meta["mel_mean"]), float(meta["mel_sd"]), **(arch or {}))
    model.load_weights(os.path.join(work, "student.weights.h5"))
    return export_weights(model, meta, constants=constants), meta


def split(v, lens):
    return np.split(v, np.cumsum(lens)[:-1])


def space(pool, pen, lens):
    """Today's ``'similarity'`` space: layer_summary per track, standardised over the collection, unit rows."""
    from recommender.features.pooling import (
        CollectionNormalizer,
        l2_normalize,
        layer_summaries,
    )

    S = layer_summaries(split(pool, lens), split(pen, lens))
    return l2_normalize(CollectionNormalizer("standardize").fit_transform(S))


def protocol(z, student_layers, half, cache, name):
    """p@10 by soundtrack (leave-one-out) of the default, float32 musicnn and the student; paired
    95 % bootstrap CI by track of each against the default.  Returns a dict of rows."""
    from retrieval import bootstrap_ci
    from retrieval_protocol import _log, cosine, hits

    lens, labels = z["eval_lens"], z["labels"]
    spaces = {"default (musicnn int8, 8)": space(z["eval_int8_pool"], z["eval_int8_pen"], lens),
              "musicnn float32, 8": space(z["eval_f32_pool"], z["eval_f32_pen"], lens),
              name: space(*student_layers, lens)}
    H = {k: hits(cosine(v), labels) for k, v in spaces.items()}
    base = H["default (musicnn int8, 8)"]
    rows = {}
    for k, h in H.items():
        lo, hi = bootstrap_ci(h - base, n_boot=2000, random_state=0)
        per = {lab: 100 * h[labels == lab].mean() for lab in np.unique(labels)}
        rows[k] = (100 * h.mean(), 100 * (h - base).mean(), 100 * lo, 100 * hi, per)
    _log(cache, name, f"{half}@all")
    return rows


def layer_fit(z, student_layers, rows=None):
    """How well the student reproduces the float32 teacher per patch, per layer, over the dimensions the
    teacher varies on (sd above :data:`CONSTANT_SD`): ``(median over dims of R^2, pooled R^2, dims)``."""
    out = {}
    for L, s in zip(("pool", "pen"), student_layers):
        t = z[f"eval_f32_{L}"] if rows is None else z[f"eval_f32_{L}"][rows]
        s = s if rows is None else s[rows]
        ok = t.std(0) > CONSTANT_SD
        t, s = t[:, ok].astype(np.float64), s[:, ok].astype(np.float64)
        sse, sst = ((t - s) ** 2).sum(0), ((t - t.mean(0)) ** 2).sum(0)
        out[L] = (float(np.median(1 - sse / sst)), float(1 - sse.sum() / sst.sum()), int(ok.sum()))
    return out


def report(z, w, half, cache, name, *, arch=None, timing_patches=256):
    """Print cost (MACs, patches/s against musicnn in the same run) and the protocol rows for one half."""
    import subprocess

    P = z["eval_mel"].astype(np.float32)
    stu = ort_session(student_onnx(w))
    layers = run_session(stu, P, ("pool", "penultimate"))
    s, m = macs(**(arch or {}))
    print(f"multiply-accumulates per patch: student {s / 1e6:.1f} M, musicnn {m / 1e6:.0f} M ({m / s:.1f}x fewer)")
    sessions = {"student": (stu, ("pool", "penultimate")),
                "musicnn int8": (musicnn_session("int8"), ("penultimate", "pool")),
                "musicnn float32": (musicnn_session("float32"), ("penultimate", "pool"))}
    load = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    pps = patches_per_s(sessions, P[:timing_patches])
    print(f"patches/s, ONNX Runtime 1 thread, batches of 8, {min(timing_patches, len(P))} patches x 3 rounds "
          f"interleaved (median); load before: {load}")
    for k, v in pps.items():
        print(f"  {k:16s} {v:7.1f}   student / this = {pps['student'] / v:.2f}x")
    track = np.repeat(np.arange(len(z["eval_lens"])), z["eval_lens"])
    print(f"student vs float32 musicnn per patch ({half}, 8 windows a track), R^2 median over the varying dims / "
          "pooled:")
    for what, rows in (("all tracks", None), (f"held-out soundtrack {HELD_OUT}",
                                              np.isin(track, np.flatnonzero(z["labels"] == HELD_OUT)))):
        if rows is not None and (half != "selection" or not rows.any()):
            continue
        fit = layer_fit(z, layers, rows)
        print(f"  {what}: " + ", ".join(f"{L} {m:.3f} / {p:.3f} ({n} dims)" for L, (m, p, n) in fit.items()))
    res = protocol(z, layers, half, cache, name)
    print(f"\n{half} half, {len(z['labels'])} tracks: precision@10 by soundtrack, leave-one-out; "
          "d = paired difference to the default, 95 % bootstrap CI by track (points)")
    for k, (p, d, lo, hi, per) in res.items():
        print(f"  {k:52s} p@10 {p:5.1f}   d {d:+5.1f}  [{lo:+5.1f}, {hi:+5.1f}]   "
              + "  ".join(f"{lab} {v:.1f}" for lab, v in per.items()))
    return pps, res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["data", "extra", "train", "gate", "confirm"])
    ap.add_argument("--work", default="/tmp/distill")
    ap.add_argument("--selection", default="/tmp/devset")
    ap.add_argument("--confirmation", default="/tmp/devset-confirm")
    ap.add_argument("--cache", default="/tmp/e17", help="where variants.log is")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--variant", default="v2", choices=sorted(VARIANTS),
                    help="which student (VARIANTS); its files go to WORK/VARIANT")
    a = ap.parse_args(argv)
    os.makedirs(a.work, exist_ok=True)
    name, arch, use_extra, constants, src = VARIANTS[a.variant]
    vdir = os.path.join(a.work, src or a.variant)
    if a.stage == "data":
        out = os.path.join(a.work, "selection.npz")
        print(f"{out}: {build_data(a.selection, out):.0f} s")
    elif a.stage == "extra":
        out = os.path.join(a.work, "selection_extra.npz")
        print(f"{out}: {build_extra(a.selection, out):.0f} s")
    elif a.stage == "train":
        if src:
            raise SystemExit(f"--variant {a.variant}: exports the weights of {src}; train {src}")
        os.makedirs(vdir, exist_ok=True)
        train_student(os.path.join(a.work, "selection.npz"), vdir, arch=arch, epochs=a.epochs,
                      extra=os.path.join(a.work, "selection_extra.npz") if use_extra else None)
    elif a.stage in ("gate", "confirm"):
        w, meta = load_student(vdir, arch, constants)
        np.savez(os.path.join(vdir, f"student_onnx_weights_{a.variant}.npz"), **w)
        print(f"student: trained {int(meta['epochs'])} epochs ({float(meta['seconds']):.0f} s), "
              f"best epoch {int(meta['best_epoch'])}")
        if a.stage == "gate":
            z = np.load(os.path.join(a.work, "selection.npz"))
        else:
            out = os.path.join(a.work, "confirmation.npz")
            if not os.path.exists(out):
                print(f"{out}: {build_data(a.confirmation, out, train=False):.0f} s")
            z = np.load(out)
        report(z, w, "selection" if a.stage == "gate" else "confirmation", a.cache, name, arch=arch)


if __name__ == "__main__":
    main()
