"""Keras networks of the classifier: the three builders, the optimiser groups,
compiled steps and epoch loop of training, and log-mel augmentation.

Package-internal (used by :mod:`.classifier`).  Every network maps log-mel
patches ``(batch, 187, 96)`` to ``[class probabilities (batch, n_classes),
embedding (batch, d)]`` with the layer names ``class_logits``,
``class_probabilities`` and ``penultimate``.  TensorFlow is imported only
when a function here is called.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..features import frontend as features
from ..models import configure_tensorflow, load_model
from ..models.musicnn import build_musicnn
from ._inputs import fixed_patches
from .evaluate import pool_by_track, track_loss_acc

__all__ = ["Augmenter", "backbone", "build_finetune_model", "build_head_model", "build_scratch_model",
           "compile_steps", "keras_module", "optimizer_groups", "train_epochs"]

logger = logging.getLogger(__name__)


# =========================================================================== builders
def keras_module():
    """The ``keras`` module, after TensorFlow's thread pools are set (:func:`recommender.models.configure_tensorflow`)."""
    configure_tensorflow(None)
    import keras

    return keras


def backbone(name):
    """The pretrained :class:`~recommender.models.TagModel` ``name`` (cached by the registry)."""
    return load_model(name)


def _fresh_backbone(tm):
    """A new Keras musicnn with the weights of TagModel ``tm`` (not shared)."""
    arch = tm.metadata["architecture"]
    m = build_musicnn(tm.n_tags, n_frames=arch["n_frames"], midend_filters=arch["midend_filters"],
                      backend_units=arch["backend_units"], name="backbone")
    m.set_weights(tm.keras_model.get_weights())
    return m


def build_head_model(tm, n_classes, head_features, kernel, bias):
    keras = keras_module()
    base = _fresh_backbone(tm)
    emb = base.get_layer("penultimate").output
    if head_features == "embedding+tags":
        x = keras.layers.Concatenate(name="head_features")([emb, base.get_layer("probabilities").output])
    else:
        x = emb
    dense = keras.layers.Dense(n_classes, name="class_logits")
    logits = dense(x)
    probs = keras.layers.Activation("softmax", name="class_probabilities", dtype="float32")(logits)
    model = keras.Model(base.input, [probs, emb], name="head_classifier")
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


def build_finetune_model(tm, n_classes):
    keras = keras_module()
    base = _fresh_backbone(tm)
    emb = base.get_layer("penultimate").output
    h = base.get_layer("penultimate_dropout").output
    logits = keras.layers.Dense(n_classes, name="class_logits")(h)
    probs = keras.layers.Activation("softmax", name="class_probabilities", dtype="float32")(logits)
    model = keras.Model(base.input, [probs, emb], name="finetuned_classifier")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # inference-mode statistics, frozen scale/shift
    return model


def build_scratch_model(n_classes, *, filters=(16, 32, 64, 128), embedding_dim=128, dropout=0.3):
    keras = keras_module()
    L = keras.layers
    x_in = keras.Input(shape=(features.PATCH_FRAMES, features.N_MELS), dtype="float32", name="logmel")
    x = L.Reshape((features.PATCH_FRAMES, features.N_MELS, 1), name="expand_channels")(x_in)
    # momentum 0.9 (not Keras' 0.99): the moving statistics must settle within
    # the few hundred steps a small dataset gives
    x = L.BatchNormalization(momentum=0.9, name="input_bn")(x)
    for i, f in enumerate(filters, start=1):
        x = L.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        x = L.MaxPooling2D(2, name=f"pool{i}")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    emb = L.Dense(embedding_dim, activation="relu", name="penultimate")(x)
    h = L.Dropout(dropout, name="penultimate_dropout")(emb)
    logits = L.Dense(n_classes, name="class_logits")(h)
    probs = L.Activation("softmax", name="class_probabilities", dtype="float32")(logits)
    return keras.Model(x_in, [probs, emb], name="scratch_classifier")

# =========================================================================== training steps
def optimizer_groups(model, mode, learning_rate, body_lr_ratio):
    """Adam optimisers and the variables each one trains, built.

    ``scratch``: one optimiser for everything.  Pretrained bodies
    (``finetune``): the new ``class_logits`` layer at ``learning_rate``, the
    body at ``learning_rate * body_lr_ratio`` (frozen when the ratio is 0).

    Returns
    -------
    list of (keras.optimizers.Adam, list of variables)
    """
    keras = keras_module()
    head_vars = model.get_layer("class_logits").trainable_variables
    head_ids = {id(v) for v in head_vars}
    body_vars = [v for v in model.trainable_variables if id(v) not in head_ids]
    if mode == "scratch":
        groups = [(keras.optimizers.Adam(learning_rate), model.trainable_variables)]
    else:
        groups = [(keras.optimizers.Adam(learning_rate), head_vars)]
        if body_lr_ratio > 0 and body_vars:
            groups.append((keras.optimizers.Adam(learning_rate * body_lr_ratio), body_vars))
        else:
            for v in body_vars:
                v.trainable = False
    for opt, vs in groups:
        opt.build(vs)
    return groups


def compile_steps(model, groups, n_classes):
    """The compiled training step and a batched predictor of ``model``.

    Returns
    -------
    train_step : callable
        ``train_step(x (b, 187, 96) float32, y (b,) int32, w (b,) float32) -> (loss, probabilities)``:
        one weighted cross-entropy step with every optimiser of ``groups``.
    predict : callable
        ``predict(P (n, 187, 96)) -> (n, n_classes)`` class probabilities, 64 patches per call.
    """
    keras = keras_module()
    import tensorflow as tf

    all_vars = [v for _, vs in groups for v in vs]
    sizes = [len(vs) for _, vs in groups]
    spec = tf.TensorSpec((None, features.PATCH_FRAMES, features.N_MELS), tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.float32)],
                 autograph=False)
    def train_step(x, y, w):
        with tf.GradientTape() as tape:
            p, _ = model(x, training=True)
            ce = keras.losses.sparse_categorical_crossentropy(y, p)
            loss = tf.reduce_sum(ce * w) / tf.reduce_sum(w)
        grads = tape.gradient(loss, all_vars)
        i = 0
        for (opt, vs), k in zip(groups, sizes):
            opt.apply_gradients(zip(grads[i : i + k], vs))
            i += k
        return loss, p

    @tf.function(input_signature=[spec], autograph=False)
    def infer(x):
        return model(x, training=False)[0]

    def predict(P):
        return np.concatenate([infer(P[i : i + 64]).numpy() for i in range(0, len(P), 64)]) \
            if len(P) else np.zeros((0, n_classes))

    return train_step, predict


# =========================================================================== augmentation
class Augmenter:
    """Random crops and log-mel domain augmentation (see :mod:`recommender.learn.classifier`)."""

    def __init__(self, rng, augment=True):
        self.rng = rng
        self.augment = augment
        self._white = features.mel_basis().sum(axis=1).astype(np.float32)  # white-noise mel shape
        self._white /= self._white.mean()

    def crop(self, segments):
        lens = np.array([len(s) - features.PATCH_FRAMES + 1 for s in segments], dtype=np.float64)
        i = self.rng.choice(len(segments), p=lens / lens.sum())
        o = int(self.rng.integers(0, int(lens[i]))) if self.augment else 0
        return segments[i][o : o + features.PATCH_FRAMES].astype(np.float32)

    def __call__(self, x):
        if not self.augment:
            return x
        rng = self.rng
        # back to (float16-quantised) mel power: S = log10(10000 x + 1)
        power = (np.power(10.0, x, dtype=np.float32) - 1.0) / 10000.0
        power *= np.float32(10.0 ** (rng.uniform(-6, 6) / 10))  # gain, dB of power
        if rng.random() < 0.5:
            snr_db = rng.uniform(15, 40)
            level = power.mean() * 10.0 ** (-snr_db / 10)
            power = power + (level * self._white * rng.exponential(1.0, power.shape)).astype(np.float32)
        x = np.log10(10000.0 * np.maximum(power, 0) + 1.0, dtype=np.float32)
        if rng.random() < 0.5:
            fill = x.mean()
            t = int(rng.integers(0, 21))
            t0 = int(rng.integers(0, features.PATCH_FRAMES - t + 1))
            x[t0 : t0 + t] = fill
            f = int(rng.integers(0, 13))
            f0 = int(rng.integers(0, features.N_MELS - f + 1))
            x[:, f0 : f0 + f] = fill
        return x


# =========================================================================== the epoch loop
def train_epochs(model, train_step, predict, segs, tr, ytr, va, yva, rng, *, mode, epochs, patience, batch_size,
                 augment, class_weight, patches_per_track, verbose=False):
    """Train ``model`` for up to ``epochs`` epochs, early-stopped on the track-level validation loss.

    Each epoch draws ``patches_per_track`` random crops of every training track
    (fewer for short tracks), augmented (:class:`Augmenter`), in batches of
    ``batch_size``, classes weighted by inverse frequency when
    ``class_weight="balanced"``.  Validation uses fixed patches, averaged per
    track.  Without validation tracks the training loss decides.

    Parameters
    ----------
    segs : dict
        Path -> list of log-mel segments ``(L, 96)`` (:func:`._inputs.track_segments`).
    tr, va : list of str
        Training / validation paths (keys of ``segs``).
    ytr, yva : np.ndarray of int
        Their class indices.
    rng : numpy.random.Generator

    Returns
    -------
    best_weights : list of np.ndarray
    history : dict of lists
        ``epoch, loss, accuracy, val_loss, val_accuracy, val_patch_accuracy, seconds``.
    best_epoch : int
    """
    from tqdm.auto import tqdm

    n_classes = int(model.outputs[0].shape[-1])
    aug = Augmenter(rng, augment)
    n_crops = [max(1, min(patches_per_track, sum(len(s) for s in segs[p]) // features.PATCH_FRAMES)) for p in tr]
    val_P = [fixed_patches(segs[p], patches_per_track) for p in va]
    val_X = np.concatenate(val_P) if val_P else np.zeros((0, features.PATCH_FRAMES, features.N_MELS), np.float32)
    val_g = np.repeat(np.arange(len(va)), [len(x) for x in val_P])
    counts = np.bincount(ytr, minlength=n_classes).astype(np.float64)
    cw = np.where(counts > 0, len(ytr) / (n_classes * np.maximum(counts, 1)), 0.0) \
        if class_weight == "balanced" else np.ones(n_classes)
    hist = {k: [] for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                            "val_patch_accuracy", "seconds")}
    best, best_w, best_epoch, wait = None, None, None, 0
    track_segs = [segs[p] for p in tr]
    for epoch in tqdm(range(1, epochs + 1), desc=f"{mode} epochs", disable=not verbose, leave=False):
        te = time.perf_counter()
        owners = rng.permutation(np.repeat(np.arange(len(tr)), n_crops))
        loss, acc = _train_epoch(train_step, aug, track_segs, ytr, owners, cw, batch_size)
        hist["epoch"].append(epoch)
        hist["loss"].append(loss)
        hist["accuracy"].append(acc)
        if len(va):
            pv = predict(val_X)
            tp, ty = pool_by_track(pv, yva[val_g], val_g)
            vl, vacc = track_loss_acc(tp, ty)
            hist["val_loss"].append(vl)
            hist["val_accuracy"].append(vacc)
            hist["val_patch_accuracy"].append(float((pv.argmax(1) == yva[val_g]).mean()))
        else:
            vl = loss
            for k in ("val_loss", "val_accuracy", "val_patch_accuracy"):
                hist[k].append(None)
        hist["seconds"].append(time.perf_counter() - te)
        logger.info("epoch %d: loss %.4f acc %.3f val_loss %s val_acc %s (%.1f s)", epoch, hist["loss"][-1],
                    hist["accuracy"][-1], hist["val_loss"][-1], hist["val_accuracy"][-1], hist["seconds"][-1])
        if best is None or vl < best - 1e-4:
            best, best_w, best_epoch, wait = vl, [w.copy() for w in model.get_weights()], epoch, 0
        else:
            wait += 1
            if wait >= patience:
                logger.info("early stop after epoch %d (best %d)", epoch, best_epoch)
                break
    return best_w, hist, best_epoch


def _train_epoch(train_step, aug, track_segs, ytr, owners, cw, batch_size):
    """One pass over ``owners`` (a track index per random crop); (mean loss, accuracy) per patch."""
    losses, correct, seen = [], 0, 0
    for b in range(0, len(owners), batch_size):
        idx = owners[b : b + batch_size]
        xb = np.stack([aug(aug.crop(track_segs[i])) for i in idx])
        yb = ytr[idx].astype(np.int32)
        wb = cw[yb].astype(np.float32)
        loss, p = train_step(xb, yb, wb)
        losses.append(float(loss) * len(idx))
        correct += int((p.numpy().argmax(1) == yb).sum())
        seen += len(idx)
    return sum(losses) / max(1, seen), correct / max(1, seen)
