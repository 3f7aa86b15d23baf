"""``MusicRegressor("finetune")``: the pretrained network trained end to end on numeric targets.

The model is the ``head`` regressor (backbone + a linear ``Dense``, warm-started
with the ridge the ``head`` mode fits on the mean embeddings), then trained on
random 187-frame crops of the training tracks with a Huber loss on the targets
standardised by their training mean and spread (``delta`` = 1 standard
deviation): the new layer at ``learning_rate``, the pretrained body at
``learning_rate * body_lr_ratio``, the classifier's optimiser groups
(:func:`recommender.learn._networks.optimizer_groups`).  Each epoch is scored
on the validation tracks (the mean of a track's patch outputs against its
values, RMSE in standardised units); the best epoch's weights are kept and
training stops after ``patience`` epochs without progress.

No log-mel augmentation by default: the classifier's random gain would change a
loudness or energy target the label describes.  Package-internal (used by
:mod:`recommender.learn.regression`).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from . import _networks as nets

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_LR", "finetune_values"]

logger = logging.getLogger(__name__)

#: Epochs and learning rate of the new layer when none is given.
DEFAULT_EPOCHS = 6
DEFAULT_LR = 1e-3


def _groups(model, lr, body_lr_ratio):
    keras = nets.keras_module()
    head_vars = model.get_layer("value_dense").trainable_variables
    ids = {id(v) for v in head_vars}
    body = [v for v in model.trainable_variables if id(v) not in ids]
    groups = [(keras.optimizers.Adam(lr), head_vars)]
    if body_lr_ratio > 0 and body:
        groups.append((keras.optimizers.Adam(lr * body_lr_ratio), body))
    for opt, vs in groups:
        opt.build(vs)
    return groups


def _steps(model, groups, mu, sd):
    import tensorflow as tf

    from ..features import frontend as features

    keras = nets.keras_module()
    all_vars = [v for _, vs in groups for v in vs]
    sizes = [len(vs) for _, vs in groups]
    mu_t, sd_t = tf.constant(mu, tf.float32), tf.constant(sd, tf.float32)
    spec = tf.TensorSpec((None, features.PATCH_FRAMES, features.N_MELS), tf.float32)
    huber = keras.losses.Huber(delta=1.0)

    @tf.function(input_signature=[spec, tf.TensorSpec((None, len(mu)), tf.float32)], autograph=False)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            p, _ = model(x, training=True)
            loss = huber((y - mu_t) / sd_t, (p - mu_t) / sd_t)
        grads = tape.gradient(loss, all_vars)
        i = 0
        for (opt, vs), k in zip(groups, sizes):
            opt.apply_gradients(zip(grads[i: i + k], vs))
            i += k
        return loss

    @tf.function(input_signature=[spec], autograph=False)
    def infer(x):
        return model(x, training=False)[0]

    def predict(P):
        return np.concatenate([infer(P[i: i + 64]).numpy() for i in range(0, len(P), 64)])

    return train_step, predict


def finetune_values(model, segs, tr, Ytr, va, Yva, *, epochs, learning_rate, body_lr_ratio, batch_size, patience,
                    patches_per_track, rng, verbose=False):
    """Train ``model`` (``(b, 187, 96) -> [values (b, T), embedding]``) in place; return its history.

    Parameters
    ----------
    segs : dict
        ``{path: [log-mel segments (L, 96)]}`` (:func:`recommender.learn._inputs.track_segments`).
    tr, va : list of str
        Training and validation tracks (keys of ``segs``); ``va`` may be empty (then the
        training loss picks the epoch).
    Ytr, Yva : np.ndarray, float64, (n_tracks, T)
        Their targets, in the targets' own units.
    epochs, patience, batch_size, patches_per_track : int
        One epoch draws ``patches_per_track`` random crops per training track.
    learning_rate, body_lr_ratio : float
    rng : np.random.Generator

    Returns
    -------
    dict
        ``epoch, loss, val_rmse`` (standardised units, per epoch), ``best_epoch``,
        ``initial_val_rmse`` (the warm start) and ``seconds``.
    """
    from ._inputs import fixed_patches

    mu = Ytr.mean(0).astype(np.float32)
    sd = np.where(Ytr.std(0) > 0, Ytr.std(0), 1.0).astype(np.float32)
    train_step, predict = _steps(model, _groups(model, learning_rate, body_lr_ratio), mu, sd)
    aug = nets.Augmenter(rng, augment=True)  # only its random crops: no gain/noise/masking (module docstring)
    val_P = {p: fixed_patches(segs[p], patches_per_track) for p in va}

    def val_rmse():
        if not va:
            return None
        pred = np.stack([predict(val_P[p].astype(np.float32)).mean(0) for p in va])
        return float(np.sqrt(np.mean(((pred - Yva) / sd) ** 2)))

    hist = {"epoch": [], "loss": [], "val_rmse": [], "seconds": [], "initial_val_rmse": val_rmse()}
    best = (hist["initial_val_rmse"] if va else np.inf, model.get_weights(), 0)
    t0 = time.perf_counter()
    n = len(tr) * patches_per_track
    for epoch in range(1, epochs + 1):
        te = time.perf_counter()
        owners = rng.permutation(np.repeat(np.arange(len(tr)), patches_per_track))
        losses = []
        for s in range(0, n, batch_size):
            idx = owners[s: s + batch_size]
            x = np.stack([aug.crop(segs[tr[i]]) for i in idx]).astype(np.float32)
            losses.append(float(train_step(x, Ytr[idx].astype(np.float32))) * len(idx))
        loss = sum(losses) / n
        vr = val_rmse()
        for k, v in (("epoch", epoch), ("loss", loss), ("val_rmse", vr), ("seconds", time.perf_counter() - te)):
            hist[k].append(v)
        logger.info("finetune epoch %d: loss %.4f val_rmse %s", epoch, loss, vr)
        score = vr if vr is not None else loss
        if score < best[0]:
            best = (score, model.get_weights(), epoch)
        elif epoch - best[2] >= patience:
            break
    model.set_weights(best[1])
    hist["best_epoch"] = best[2]
    hist["seconds_total"] = time.perf_counter() - t0
    return hist
