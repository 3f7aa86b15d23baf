"""Train a classifier on your own labels, evaluate it honestly, index with it.

:class:`MusicClassifier` is a scikit-learn estimator (``fit`` returns
``self``, learned state ends in ``_``, ``predict_proba`` columns follow
``classes_``, ``random_state`` for all randomness) with four modes:

``"head"`` (default, fast)
    The pretrained network stays frozen; each 3-s patch becomes its 200-d
    ``penultimate`` embedding (``head_features="embedding+tags"`` adds the
    50 tag probabilities; measured no better), and a
    multinomial logistic regression (standardised inputs, L2 strength ``C``
    chosen by cross-validation grouped by track -- by artist when known --
    on the training + validation tracks, scored by track-level log loss)
    learns the classes.  The regression is folded into a Keras ``Dense`` +
    softmax on top of the network, so the saved model is one ``.keras`` file
    and the index sees exactly what ``predict_proba`` sees.  A logistic
    regression rather than a Keras dense head: deterministic, nothing to
    early-stop, seconds to fit on precomputed embeddings.
``"finetune"``
    The whole pretrained network with a new ``class_logits`` layer, trained
    on log-mel patches; the body learns ``body_lr_ratio`` (0.1) times slower
    than the new layer and its batch normalisations stay frozen (small
    batches would wreck their statistics).
``"scratch"``
    A small CNN trained from nothing: 4 x [Conv 3x3, BatchNorm, ReLU,
    MaxPool 2x2] (16/32/64/128 filters), global average pooling, a 128-d
    ``penultimate`` Dense (the embedding), dropout, softmax.
``"classical"``
    MFCC / spectral / chroma / tempo / loudness statistics from
    :func:`recommender.descriptors.describe` on up to ``patches_per_track``
    10-s clips of each track, a ``StandardScaler`` + ``LogisticRegression``
    pipeline (``C`` chosen as for ``head``).  Saved as JSON + ``.npz`` numbers and
    rebuilt on load: no pickle, no joblib.

The Keras modes train on random 187-frame crops of each track's log-mel
spectrogram (a fresh crop every epoch), with audio-like augmentation applied
in the log-mel domain: gain (+-6 dB), additive white noise (SNR 15-40 dB,
half the time) and SpecAugment-style masking (one time mask <= 20 frames,
one frequency mask <= 12 bands, half the time).  Classes are weighted by
their inverse frequency.  Early stopping watches the *track-level*
validation loss (patch probabilities averaged per track) and restores the
best epoch.  Every prediction is per patch, then averaged per track.

Splits are by track (patches of one track never land in two splits) and by
artist when artists are known: see :func:`recommender.datasets.split_dataset`.

Persistence: :meth:`MusicClassifier.save` writes a directory with
``model.keras`` (or ``model.npz`` for ``classical``), the JSON sidecar
``model.json`` (classes, front end, backbone and its SHA-256, mode,
SHA-256 of the weights file, training history) and ``tracks.json`` (the
tracks it was trained and validated on, so :func:`evaluate` never scores a
model on them).  :func:`load_classifier` loads it back with
``keras.saving.load_model(..., safe_mode=True)``; a file with a ``Lambda``
layer (which would run code) is refused with :class:`ModelError`.
``recommender.models.load_model(path)`` returns the same model as a
:class:`~recommender.models.TagModel` (tags = your classes, embedding = its
penultimate layer), so it can build an index and classify; a ``classical``
model cannot (it has no patches and no embedding) and says so.

Examples
--------
>>> from recommender.datasets import load_dataset, split_dataset      # doctest: +SKIP
>>> from recommender.training import MusicClassifier, evaluate, write_report  # doctest: +SKIP
>>> df = split_dataset(load_dataset("genres/"), random_state=0)       # doctest: +SKIP
>>> clf = MusicClassifier("head").fit(df)       # test rows are never used by fit  # doctest: +SKIP
>>> report = evaluate(clf, df)                  # scores the test split  # doctest: +SKIP
>>> report["accuracy"], report["macro_f1"]                            # doctest: +SKIP
>>> write_report(report, "report/"); clf.save("models/genres")        # doctest: +SKIP
>>> Recommender("idx", model="models/genres").update(["~/Music"])     # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..features import frontend as features
from ..errors import AudioError, ModelError, ParameterError, RecommenderError
from ..models import _sha256

__all__ = [
    "MODES",
    "MusicClassifier",
    "load_classifier",
    "load_tag_model",
    "is_trained_model",
    "evaluate",
    "write_report",
]

logger = logging.getLogger(__name__)

MODES = ("head", "finetune", "scratch", "classical")
FORMAT = "recommender-trained-model"
FORMAT_VERSION = 1
SIDECAR = "model.json"
TRACKS_FILE = "tracks.json"
_KERAS_FILE = "model.keras"
_NPZ_FILE = "model.npz"
_DEFAULT_EPOCHS = {"finetune": 8, "scratch": 30}
_DEFAULT_LR = {"finetune": 1e-3, "scratch": 1e-3}
_C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
_HEAD_FEATURES = ("embedding", "embedding+tags")
#: Seconds per clip of the classical mode's descriptors.
CLASSICAL_CLIP_S = 10.0
_EXCLUDED_DESCRIPTORS = {"duration_s", "key", "mode"}
_SEG_FRAMES = 2 * features.PATCH_FRAMES  # log-mel kept per sampled position: room for random crops




# =========================================================================== inputs
def _as_frame(X, y=None):
    """(paths, labels or None, the DataFrame) from a DataFrame or a list of paths."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        if "path" not in X:
            raise ParameterError("X: a DataFrame needs a 'path' column")
        df = X.copy()
        if y is not None:
            df["label"] = [str(v) for v in y]
    else:
        if isinstance(X, (str, os.PathLike)):
            X = [X]
        paths = [os.fspath(p) for p in X]
        df = pd.DataFrame({"path": paths})
        if y is not None:
            y = list(y)
            if len(y) != len(paths):
                raise ParameterError(f"len(labels)={len(y)} but {len(paths)} paths")
            df["label"] = [str(v) for v in y]
    df["path"] = [os.path.abspath(os.fspath(p)) for p in df["path"]]
    return df.reset_index(drop=True)


def _check_int(name, v, lo=1, allow_none=False):
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ParameterError(f"{name}={v!r}: must be an integer >= {lo}" + (" or None" if allow_none else ""))


# =========================================================================== features
def _map_paths(fn, paths, *, threads=2, desc="", verbose=False):
    """Apply ``fn(path)`` in threads; return ({path: result}, [failures])."""
    from tqdm.auto import tqdm

    out, failures = {}, []

    def run(p):
        try:
            return p, fn(p), None
        except RecommenderError as e:
            return p, None, getattr(e, "reason", None) or str(e)
        except MemoryError as e:
            return p, None, f"out of memory ({e})"
        except Exception as e:  # a decoder surprise must not stop training on 10k files
            logger.debug("unexpected error on %s", p, exc_info=True)
            return p, None, f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=max(1, threads)) as ex:
        for p, res, err in tqdm(ex.map(run, paths), total=len(paths), desc=desc, disable=not verbose,
                                leave=False):
            if err is None:
                out[p] = res
            else:
                logger.warning("skipping %s: %s", p, err)
                failures.append({"path": p, "reason": err})
    return out, failures


def _track_segments(path, n_segments):
    """Log-mel of a track kept for training: a list of (L, 96) float16 arrays.

    Tracks up to ``n_segments`` x 374 frames (~96 s for 16) are kept whole;
    longer ones as ``n_segments`` 374-frame (6 s) segments spread evenly over
    the track (decoding only those windows), each long enough for random
    187-frame crops.
    """
    from ..io import audio

    inf = audio.info(path)
    n = int(round(inf.duration_s * features.SR))
    if n <= 0:
        raise AudioError(path, "contains no audio samples")
    seg_samples = _SEG_FRAMES * features.HOP_LENGTH
    if 1 + n // features.HOP_LENGTH <= n_segments * _SEG_FRAMES:
        y = audio.load(path, sr=features.SR)
        if len(y) == 0:
            raise AudioError(path, "contains no audio samples")
        S = features.logmel(y)
        if len(S) < features.PATCH_FRAMES:
            S = features.repeat_pad(S)
        return [S.astype(np.float16)]
    centres = (np.arange(n_segments) + 0.5) / n_segments
    starts = np.round(centres * (n - seg_samples)).astype(np.int64) - features.N_FFT // 2
    both = np.concatenate([starts, starts + features.PATCH_HOP_SAMPLES])
    W = audio.load_windows(path, both / features.SR, features.PATCH_WINDOW_SAMPLES, sr=features.SR)
    k = len(starts)
    return [np.concatenate([features.window_logmel(W[i]), features.window_logmel(W[k + i])]).astype(np.float16)
            for i in range(k)]


def _fixed_patches(segments, max_patches):
    """Deterministic non-overlapping patches of a track's segments (validation)."""
    P = np.concatenate([features.patches(s.astype(np.float32)) for s in segments])
    if len(P) > max_patches:
        P = P[np.round(np.linspace(0, len(P) - 1, max_patches)).astype(int)]
    return P


def _descriptor_names():
    from ..descriptors.summary import DESCRIPTOR_COLUMNS

    return [c for c in DESCRIPTOR_COLUMNS if c not in _EXCLUDED_DESCRIPTORS]


def _descriptor_clips(path, n_clips, clip_s=CLASSICAL_CLIP_S):
    """Descriptor vectors of up to ``n_clips`` clips spread over a track: (k, F)."""
    from ..io import audio
    from ..descriptors.summary import DESCRIPTOR_SR, describe

    inf = audio.info(path)
    dur = float(inf.duration_s)
    if dur <= 0:
        raise AudioError(path, "contains no audio samples")
    k = max(1, min(n_clips, int(dur // clip_s)))
    if k == 1:
        off = max(0.0, (dur - clip_s) / 2)
        offsets = [off]
    else:
        offsets = list((np.arange(k) + 0.5) / k * (dur - clip_s))
    names = _descriptor_names()
    rows = []
    for off in offsets:
        y = audio.load(path, sr=DESCRIPTOR_SR, offset_s=float(off), duration_s=min(clip_s, dur))
        if len(y) == 0:
            raise AudioError(path, "contains no audio samples")
        d = describe(y, sr=DESCRIPTOR_SR)
        rows.append([d[c] if d[c] is not None else np.nan for c in names])
    X = np.asarray(rows, dtype=np.float64)
    return np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)


# =========================================================================== augmentation
class _Augmenter:
    """Random crops and log-mel domain augmentation (see module docstring)."""

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


# =========================================================================== Keras models
def _keras():
    from ..models import _configure_tensorflow

    _configure_tensorflow(None)
    import keras

    return keras


def _backbone(backbone):
    from ..models import load_model

    return load_model(backbone)


def _fresh_backbone(tm):
    """A new Keras musicnn with the weights of TagModel ``tm`` (not shared)."""
    from ..models.musicnn import build_musicnn

    arch = tm.metadata["architecture"]
    m = build_musicnn(tm.n_tags, n_frames=arch["n_frames"], midend_filters=arch["midend_filters"],
                      backend_units=arch["backend_units"], name="backbone")
    m.set_weights(tm.keras_model.get_weights())
    return m


def _build_head_model(tm, n_classes, head_features, kernel, bias):
    keras = _keras()
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


def _build_finetune_model(tm, n_classes):
    keras = _keras()
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


def _build_scratch_model(n_classes, *, filters=(16, 32, 64, 128), embedding_dim=128, dropout=0.3):
    keras = _keras()
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


# =========================================================================== metrics helpers
def _track_loss_acc(track_probs, y):
    p = np.clip(track_probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.log(p).mean()), float((track_probs.argmax(1) == y).mean())


def _choose_C(X, y, tracks, groups, n_classes, class_weight, random_state, grid=_C_GRID):
    """Pick ``C`` by grouped cross-validation on the training + validation tracks.

    Folds never split a group (a track, or an artist when known); each
    candidate is scored by the out-of-fold *track-level* log loss (patch
    probabilities averaged per track).  Log loss, not accuracy: with tens of
    tracks accuracy moves in steps of several percent and picks ``C`` by luck.

    Returns (C, history) with ``C, val_loss, val_accuracy`` (cross-validated)
    and ``loss, accuracy`` (on the patches of the fit on everything).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # one label per track: stratify on the track labels, group by `groups`
    per_class = np.bincount(y[np.unique(tracks, return_index=True)[1]], minlength=n_classes)
    n_splits = int(min(5, per_class[per_class > 0].min(), len(set(groups))))
    hist = {"C": [], "val_loss": [], "val_accuracy": [], "loss": [], "accuracy": []}

    def make(C):
        return make_pipeline(StandardScaler(), LogisticRegression(
            C=C, max_iter=3000, class_weight=class_weight, random_state=random_state))

    best = None
    for C in grid:
        hist["C"].append(C)
        if n_splits >= 2 and len(grid) > 1:
            oof = np.zeros((len(y), n_classes))
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                folds = list(cv.split(X, y, groups))
            for tr, te in folds:
                m = make(C).fit(X[tr], y[tr])
                oof[te] = _full_proba(m, X[te], n_classes)
            tp, ty = _pool_by_track(oof, y, tracks)
            vl, va = _track_loss_acc(tp, ty)
            hist["val_loss"].append(vl)
            hist["val_accuracy"].append(va)
            if best is None or vl < best[0]:
                best = (vl, C)
        else:
            hist["val_loss"].append(None)
            hist["val_accuracy"].append(None)
        m = make(C).fit(X, y)
        p = _full_proba(m, X, n_classes)
        hist["loss"].append(float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1)).mean()))
        hist["accuracy"].append(float((p.argmax(1) == y).mean()))
    C = best[1] if best is not None else (grid[0] if len(grid) == 1 else 1.0)
    return C, hist


def _full_proba(lr, X, n_classes):
    """LR probabilities with a column for every class index (absent ones 0)."""
    p = lr.predict_proba(X)
    out = np.zeros((len(X), n_classes))
    out[:, lr.classes_.astype(int)] = p
    return out


def _pool_by_track(P, y, groups):
    """Mean of patch rows per track id; returns (track_probs, track_labels)."""
    order = {}
    for g in groups:
        order.setdefault(g, len(order))
    idx = np.array([order[g] for g in groups])
    n = len(order)
    tp = np.zeros((n, P.shape[1]))
    np.add.at(tp, idx, P)
    tp /= np.bincount(idx, minlength=n)[:, None]
    ty = np.zeros(n, dtype=int)
    ty[idx] = y
    return tp, ty


def _lr_to_dense(lr, scaler, n_classes):
    """Fold StandardScaler + multinomial LR into one Dense layer (kernel, bias)."""
    coef = np.asarray(lr.coef_, dtype=np.float64)
    icpt = np.asarray(lr.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary LR: p(class 1) = sigmoid(z) = softmax([0, z])
        coef = np.vstack([np.zeros_like(coef), coef])
        icpt = np.concatenate([[0.0], icpt])
    W = coef / scaler.scale_[None, :]
    b = icpt - W @ scaler.mean_
    kernel = np.zeros((coef.shape[1], n_classes))
    bias = np.full(n_classes, -1e4)  # a class absent from training gets ~0 probability
    cols = np.asarray(lr.classes_, dtype=int)
    kernel[:, cols] = W.T
    bias[cols] = b
    return kernel, bias


# =========================================================================== estimator
class MusicClassifier:
    """Classify tracks into your own labels (genres, moods, games...).

    Parameters
    ----------
    mode : {"head", "finetune", "scratch", "classical"}
        See the module docstring.  ``"head"`` is fast and a good default.
    backbone : str
        Pretrained model (name or path) used by ``head`` and ``finetune``.
    patches_per_track : int
        3-s patches per track analysed (spread over the track, as the index
        does); for ``classical`` the number of 10-s clips.  Also the number of
        6-s segments kept per long track for random crops in the Keras modes.
    epochs : int, optional
        Maximum epochs for ``finetune``/``scratch`` (default 8 / 30).
    batch_size : int
    learning_rate : float, optional
        Adam learning rate of the new layers (default 1e-3).
    body_lr_ratio : float
        ``finetune``: learning rate of the pretrained body relative to
        ``learning_rate``.
    patience : int
        Epochs without a better validation loss before stopping.
    augment : bool
        Random crops, gain, noise and masking (Keras modes).
    head_features : {"embedding", "embedding+tags"}
        ``head``: the 200-d penultimate embedding, or the embedding plus the
        backbone's 50 tag probabilities.  On the benchmark collection adding
        the tags did not help (track accuracy 0.76 vs 0.80 for the embedding
        alone, 25 test tracks), so the default is the embedding.
    C : float, optional
        ``head``/``classical``: inverse L2 strength; ``None`` picks it from
        ``(0.003 ... 10)`` by grouped cross-validation (see the module docstring).
    validation_size : float
        Fraction of the training tracks held out for early stopping / ``C``
        when the data has no ``validation`` split (by artist when known), for
        early stopping (Keras modes).  ``head``/``classical`` cross-validate
        on training + validation tracks together.
    class_weight : "balanced" or None
    random_state : int or None
        Seeds the splits, crops and augmentation, and (Keras modes) Keras
        through ``keras.utils.set_random_seed``, which also seeds Python's,
        NumPy's and TensorFlow's global generators.  Runs are repeatable up
        to TensorFlow's multithreaded float round-off.
    verbose : bool
        Progress bars.

    Attributes
    ----------
    classes_ : np.ndarray of str
    model_ : keras.Model or sklearn Pipeline
        Keras: ``(batch, 187, 96) -> [class probabilities, embedding]``.
    history_ : dict of lists
        ``epoch, loss, accuracy, val_loss, val_accuracy`` (Keras modes) or
        ``C, loss, accuracy, val_loss, val_accuracy`` (head/classical).
    n_train_, n_validation_ : int
        Tracks used to train / validate (after failures).
    failures_ : list of dict
        ``{"path", "reason"}`` of tracks that could not be read, skipped.
    split_strategy_ : str
    training_paths_, validation_paths_ : list of str
    backbone_sha256_ : str or None
    fit_time_s_ : float

    Examples
    --------
    >>> clf = MusicClassifier("head", random_state=0).fit(paths, labels)   # doctest: +SKIP
    >>> clf.predict(["new.mp3"])                                         # doctest: +SKIP
    array(['jazz'], dtype=object)
    """

    def __init__(self, mode="head", *, backbone="msd-musicnn", patches_per_track=16, epochs=None,
                 batch_size=32, learning_rate=None, body_lr_ratio=0.1, patience=4, augment=True,
                 head_features="embedding", C=None, validation_size=0.15, class_weight="balanced",
                 random_state=0, verbose=False):
        self.mode = mode
        self.backbone = backbone
        self.patches_per_track = patches_per_track
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.body_lr_ratio = body_lr_ratio
        self.patience = patience
        self.augment = augment
        self.head_features = head_features
        self.C = C
        self.validation_size = validation_size
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------- sklearn glue
    _PARAMS = ("mode", "backbone", "patches_per_track", "epochs", "batch_size", "learning_rate",
               "body_lr_ratio", "patience", "augment", "head_features", "C", "validation_size",
               "class_weight", "random_state", "verbose")

    def get_params(self, deep=True):
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ParameterError(f"{k}: not a parameter of MusicClassifier ({', '.join(self._PARAMS)})")
            setattr(self, k, v)
        return self

    def __repr__(self):
        changed = {k: v for k, v in self.get_params().items()
                   if v != MusicClassifier().get_params()[k] and k != "mode"}
        extra = "".join(f", {k}={v!r}" for k, v in changed.items())
        return f"MusicClassifier({self.mode!r}{extra})"

    def _validate(self):
        if self.mode not in MODES:
            raise ParameterError(f"mode={self.mode!r}: must be one of {', '.join(MODES)}")
        _check_int("patches_per_track", self.patches_per_track)
        _check_int("epochs", self.epochs, allow_none=True)
        _check_int("batch_size", self.batch_size)
        _check_int("patience", self.patience)
        if self.head_features not in _HEAD_FEATURES:
            raise ParameterError(f"head_features={self.head_features!r}: must be one of {_HEAD_FEATURES}")
        if not (isinstance(self.validation_size, (int, float)) and 0 <= self.validation_size < 1):
            raise ParameterError(f"validation_size={self.validation_size!r}: must be in [0, 1)")
        for name in ("learning_rate", "C"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ParameterError(f"{name}={v!r}: must be a positive number or None")
        if not (isinstance(self.body_lr_ratio, (int, float)) and 0 <= self.body_lr_ratio <= 1):
            raise ParameterError(f"body_lr_ratio={self.body_lr_ratio!r}: must be in [0, 1]")
        if self.class_weight not in ("balanced", None):
            raise ParameterError(f"class_weight={self.class_weight!r}: must be 'balanced' or None")

    def _check_fitted(self):
        if not hasattr(self, "classes_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this MusicClassifier is not fitted yet: call fit() or load_classifier()")

    # ------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Train on labelled tracks.

        Parameters
        ----------
        X : pandas.DataFrame or list of path-like
            A dataset from :mod:`recommender.datasets` (``path``, ``label``,
            optional ``artist``/``split``), or audio paths.  Rows whose
            ``split`` is ``"test"`` are never used; ``"validation"`` rows
            drive early stopping / the choice of ``C``.  Without validation
            rows, ``validation_size`` of the training tracks are held out
            (whole tracks; whole artists when known).
        y : array-like of str, optional
            Labels, when ``X`` is a list of paths (or to override ``label``).

        Returns
        -------
        self
        """
        from .datasets import split_dataset

        self._validate()
        t0 = time.perf_counter()
        df = _as_frame(X, y)
        if "label" not in df:
            raise ParameterError("y=None: give labels, or a DataFrame with a 'label' column")
        df["label"] = df["label"].astype(str)
        split = df["split"] if "split" in df else None
        if split is not None and split.notna().any():
            n_test = int((split == "test").sum())
            if n_test:
                logger.info("fit: %d test tracks held out (never used for training)", n_test)
            df = df[split != "test"].reset_index(drop=True)
            df.loc[df["split"].isna(), "split"] = "train"
        if not len(df):
            raise ParameterError("X: no training tracks")
        self.split_strategy_ = X.attrs.get("split_strategy", "") if hasattr(X, "attrs") else ""
        if "split" not in df or not (df["split"] == "validation").any():
            if self.validation_size > 0 and len(df) >= 4:
                sub = df.drop(columns=["split"], errors="ignore")
                sub = split_dataset(sub, test_size=0.0, validation_size=self.validation_size,
                                    random_state=self.random_state)
                df["split"] = sub["split"].to_numpy()
                self.split_strategy_ = (self.split_strategy_ + "; " if self.split_strategy_ else "") + \
                    "validation: " + sub.attrs["split_strategy"]
            else:
                df["split"] = "train"
        train = df[df["split"] == "train"]
        classes = np.array(sorted(train["label"].unique()), dtype=object)
        if len(classes) < 2:
            raise ParameterError(f"training tracks have {len(classes)} label(s): need at least 2")
        val = df[df["split"] == "validation"]
        unknown = sorted(set(val["label"]) - set(classes))
        if unknown:
            logger.warning("validation labels without training tracks ignored: %s", unknown)
            val = val[val["label"].isin(classes)]
        self.classes_ = classes
        self.failures_ = []
        rng = np.random.default_rng(self.random_state)
        fit = {"head": self._fit_head, "classical": self._fit_classical}.get(self.mode, self._fit_keras)
        groups_of = {}
        if "artist" in df and df["artist"].notna().all():
            groups_of = dict(zip(df["path"], df["artist"].astype(str)))
        fit(list(train["path"]), self._encode(train["label"]), list(val["path"]),
            self._encode(val["label"]), rng, groups_of)
        self.fit_time_s_ = time.perf_counter() - t0
        logger.info("trained %s on %d tracks (%d validation) in %.1f s", self.mode, self.n_train_,
                    self.n_validation_, self.fit_time_s_)
        return self

    def _encode(self, labels):
        index = {c: i for i, c in enumerate(self.classes_)}
        return np.array([index[str(v)] for v in labels], dtype=int)

    def _keep(self, paths, y, table):
        keep = [i for i, p in enumerate(paths) if p in table]
        return [paths[i] for i in keep], y[keep]

    # ------------------------------------------------------------- head
    def _head_features_of(self, tm, paths):
        from ..analysis.pipeline import TrackAnalysis, analyze_files

        out = {}
        from tqdm.auto import tqdm

        it = analyze_files(paths, model=tm, sampling=self.patches_per_track)
        for res in tqdm(it, total=len(paths), desc="embeddings", disable=not self.verbose, leave=False):
            if isinstance(res, TrackAnalysis):
                f = res.patch_embeddings
                if self.head_features == "embedding+tags":
                    f = np.concatenate([f, res.patch_probs], axis=1)
                out[res.path] = f.astype(np.float64)
            else:
                logger.warning("skipping %s: %s", res.path, res.reason)
                self.failures_.append({"path": res.path, "reason": res.reason})
        return out

    def _stack(self, table, paths, y):
        X = [table[p] for p in paths]
        if not X:
            return np.zeros((0, 0)), np.zeros(0, int), np.zeros(0, int)
        return (np.concatenate(X), np.repeat(y, [len(x) for x in X]),
                np.repeat(np.arange(len(X)), [len(x) for x in X]))

    def _fit_linear(self, table, tr, ytr, va, yva, groups_of):
        """Shared by head and classical: choose C by grouped CV, fit on train+val."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        tr, ytr = self._keep(tr, ytr, table)
        va, yva = self._keep(va, yva, table)
        if len(set(ytr)) < 2:
            raise ParameterError("fewer than 2 classes left with readable training tracks")
        paths = tr + va
        X, y, tracks = self._stack(table, paths, np.concatenate([ytr, yva]).astype(int))
        groups = np.array([groups_of.get(paths[t], paths[t]) for t in tracks], dtype=object)
        n = len(self.classes_)
        grid = (float(self.C),) if self.C is not None else _C_GRID
        C, hist = _choose_C(X, y, tracks, groups, n, self.class_weight, self.random_state, grid=grid)
        scaler = StandardScaler().fit(X)
        lr = LogisticRegression(C=C, max_iter=3000, class_weight=self.class_weight,
                                random_state=self.random_state).fit(scaler.transform(X), y)
        self.C_ = C
        self.history_ = hist
        self.n_train_, self.n_validation_ = len(tr), len(va)
        self.training_paths_, self.validation_paths_ = list(tr), list(va)
        return scaler, lr

    def _fit_head(self, tr, ytr, va, yva, rng, groups_of):
        tm = _backbone(self.backbone)
        table = self._head_features_of(tm, tr + va)
        scaler, lr = self._fit_linear(table, tr, ytr, va, yva, groups_of)
        kernel, bias = _lr_to_dense(lr, scaler, len(self.classes_))
        self.model_ = _build_head_model(tm, len(self.classes_), self.head_features, kernel, bias)
        self.backbone_ = tm.name
        self.backbone_sha256_ = tm.weights_sha256
        self.embedding_dim_ = tm.embedding_dim
        self._tag_model = None

    # ------------------------------------------------------------- classical
    def _fit_classical(self, tr, ytr, va, yva, rng, groups_of):
        from sklearn.pipeline import Pipeline

        table, fails = _map_paths(lambda p: _descriptor_clips(p, self.patches_per_track), tr + va,
                                  desc="descriptors", verbose=self.verbose)
        self.failures_.extend(fails)
        scaler, lr = self._fit_linear(table, tr, ytr, va, yva, groups_of)
        self.model_ = Pipeline([("scale", scaler), ("logreg", lr)])
        self.feature_names_ = _descriptor_names()
        self.backbone_ = None
        self.backbone_sha256_ = None
        self.embedding_dim_ = None

    # ------------------------------------------------------------- keras modes
    def _fit_keras(self, tr, ytr, va, yva, rng, groups_of=None):
        keras = _keras()
        import tensorflow as tf

        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        segs, fails = _map_paths(lambda p: _track_segments(p, self.patches_per_track), tr + va,
                                 desc="log-mel", verbose=self.verbose)
        self.failures_.extend(fails)
        tr, ytr = self._keep(tr, ytr, segs)
        va, yva = self._keep(va, yva, segs)
        if len(set(ytr)) < 2:
            raise ParameterError("fewer than 2 classes left with readable training tracks")
        n_classes = len(self.classes_)
        if self.mode == "finetune":
            tm = _backbone(self.backbone)
            model = _build_finetune_model(tm, n_classes)
            self.backbone_, self.backbone_sha256_ = tm.name, tm.weights_sha256
        else:
            model = _build_scratch_model(n_classes)
            self.backbone_, self.backbone_sha256_ = None, None
        self.embedding_dim_ = int(model.outputs[1].shape[-1])
        lr = float(self.learning_rate or _DEFAULT_LR[self.mode])
        head_vars = model.get_layer("class_logits").trainable_variables
        head_ids = {id(v) for v in head_vars}
        body_vars = [v for v in model.trainable_variables if id(v) not in head_ids]
        if self.mode == "scratch":
            groups = [(keras.optimizers.Adam(lr), model.trainable_variables)]
        else:
            groups = [(keras.optimizers.Adam(lr), head_vars)]
            if self.body_lr_ratio > 0 and body_vars:
                groups.append((keras.optimizers.Adam(lr * self.body_lr_ratio), body_vars))
            else:
                for v in body_vars:
                    v.trainable = False
        for opt, vs in groups:
            opt.build(vs)
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

        aug = _Augmenter(rng, self.augment)
        n_crops = {p: max(1, min(self.patches_per_track,
                                 sum(len(s) for s in segs[p]) // features.PATCH_FRAMES)) for p in tr}
        val_P = [_fixed_patches(segs[p], self.patches_per_track) for p in va]
        val_X = np.concatenate(val_P) if val_P else np.zeros((0, features.PATCH_FRAMES, features.N_MELS),
                                                             np.float32)
        val_g = np.repeat(np.arange(len(va)), [len(x) for x in val_P])
        counts = np.bincount(ytr, minlength=n_classes).astype(np.float64)
        cw = np.where(counts > 0, len(ytr) / (n_classes * np.maximum(counts, 1)), 0.0) \
            if self.class_weight == "balanced" else np.ones(n_classes)
        epochs = int(self.epochs or _DEFAULT_EPOCHS[self.mode])
        hist = {k: [] for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                "val_patch_accuracy", "seconds")}
        best, best_w, wait = None, None, 0
        from tqdm.auto import tqdm

        for epoch in tqdm(range(1, epochs + 1), desc=f"{self.mode} epochs", disable=not self.verbose, leave=False):
            te = time.perf_counter()
            owners = np.repeat(np.arange(len(tr)), [n_crops[p] for p in tr])
            owners = rng.permutation(owners)
            losses, correct, seen = [], 0, 0
            for b in range(0, len(owners), self.batch_size):
                idx = owners[b : b + self.batch_size]
                xb = np.stack([aug(aug.crop(segs[tr[i]])) for i in idx])
                yb = ytr[idx].astype(np.int32)
                wb = cw[yb].astype(np.float32)
                loss, p = train_step(xb, yb, wb)
                losses.append(float(loss) * len(idx))
                correct += int((p.numpy().argmax(1) == yb).sum())
                seen += len(idx)
            hist["epoch"].append(epoch)
            hist["loss"].append(sum(losses) / max(1, seen))
            hist["accuracy"].append(correct / max(1, seen))
            if len(va):
                pv = predict(val_X)
                tp, ty = _pool_by_track(pv, yva[val_g], val_g)
                vl, vacc = _track_loss_acc(tp, ty)
                hist["val_loss"].append(vl)
                hist["val_accuracy"].append(vacc)
                hist["val_patch_accuracy"].append(float((pv.argmax(1) == yva[val_g]).mean()))
            else:
                vl = hist["loss"][-1]
                hist["val_loss"].append(None)
                hist["val_accuracy"].append(None)
                hist["val_patch_accuracy"].append(None)
            hist["seconds"].append(time.perf_counter() - te)
            logger.info("epoch %d: loss %.4f acc %.3f val_loss %s val_acc %s (%.1f s)", epoch, hist["loss"][-1],
                        hist["accuracy"][-1], hist["val_loss"][-1], hist["val_accuracy"][-1], hist["seconds"][-1])
            if best is None or vl < best - 1e-4:
                best, best_w, wait = vl, [w.copy() for w in model.get_weights()], 0
                self.best_epoch_ = epoch
            else:
                wait += 1
                if wait >= self.patience:
                    logger.info("early stop after epoch %d (best %d)", epoch, self.best_epoch_)
                    break
        model.set_weights(best_w)
        self.model_ = model
        self.history_ = hist
        self.n_train_, self.n_validation_ = len(tr), len(va)
        self.training_paths_, self.validation_paths_ = list(tr), list(va)
        self._tag_model = None

    # ------------------------------------------------------------- prediction
    def tag_model(self):
        """This classifier as a :class:`~recommender.models.TagModel` (Keras modes).

        ``predict_patches(P)`` gives (class probabilities, embedding); use it
        with :func:`recommender.analysis.analyze_files`, ``classify`` or an
        index.
        """
        self._check_fitted()
        if self.mode == "classical":
            raise ModelError(None, _CLASSICAL_NO_PATCHES)
        tm = getattr(self, "_tag_model", None)
        if tm is None:
            tm = self._tag_model = TrainedTagModel(
                getattr(self, "name_", None) or f"custom:{self.mode}", self.model_,
                _tag_metadata(self), getattr(self, "weights_sha256_", None) or "unsaved",
                source=getattr(self, "source_", None), mode=self.mode)
        return tm

    def _patch_outputs(self, paths, on_error="raise"):
        """({path: patch class probabilities (n, C)}, failures)."""
        paths = [os.path.abspath(os.fspath(p)) for p in paths]
        if self.mode == "classical":
            table, fails = _map_paths(lambda p: _descriptor_clips(p, self.patches_per_track), paths,
                                      desc="descriptors", verbose=self.verbose)
            out = {p: self.model_.predict_proba(X) for p, X in table.items()}
        else:
            from ..analysis.pipeline import TrackAnalysis, analyze_files

            out, fails = {}, []
            for res in analyze_files(paths, model=self.tag_model(), sampling=self.patches_per_track):
                if isinstance(res, TrackAnalysis):
                    out[res.path] = res.patch_probs.astype(np.float64)
                else:
                    fails.append({"path": res.path, "reason": res.reason})
                    logger.warning("skipping %s: %s", res.path, res.reason)
            out = {os.path.abspath(p): v for p, v in out.items()}
        if fails and on_error == "raise":
            raise AudioError(fails[0]["path"], fails[0]["reason"])
        return out, fails

    def predict_proba(self, X):
        """Track probabilities, mean of the patch probabilities.

        Parameters
        ----------
        X : list of path-like, a path, or a DataFrame with a ``path`` column

        Returns
        -------
        np.ndarray, shape (n_tracks, n_classes)
            Columns follow :attr:`classes_`.

        Raises
        ------
        AudioError
            A file cannot be read.
        """
        self._check_fitted()
        paths = list(_as_frame(X)["path"])
        out, _ = self._patch_outputs(paths)
        return np.stack([out[p].mean(axis=0) for p in paths]) if paths else np.zeros((0, len(self.classes_)))

    def predict(self, X):
        """Most likely class of each track (array of str)."""
        P = self.predict_proba(X)
        return self.classes_[P.argmax(axis=1)]

    def score(self, X, y=None):
        """Track accuracy; labels from ``y`` or ``X['label']``."""
        df = _as_frame(X, y)
        if "label" not in df:
            raise ParameterError("y=None: give labels, or a DataFrame with a 'label' column")
        return float((self.predict(df) == df["label"].astype(str).to_numpy()).mean())

    # ------------------------------------------------------------- persistence
    def save(self, path):
        """Save to a directory (created; files replaced atomically one by one).

        Writes ``model.keras`` (Keras modes) or ``model.npz`` (classical),
        ``model.json`` (sidecar, written last) and ``tracks.json``.

        Returns
        -------
        str
            The directory.
        """
        self._check_fitted()
        d = os.path.abspath(os.fspath(path))
        if os.path.exists(d) and not os.path.isdir(d):
            raise ParameterError(f"path={d!r}: exists and is not a directory")
        os.makedirs(d, exist_ok=True)
        tag = f".{os.getpid()}.part"
        if self.mode == "classical":
            wfile = _NPZ_FILE
            tmp = os.path.join(d, f".model{tag}.npz")
            scaler, lr = self.model_.named_steps["scale"], self.model_.named_steps["logreg"]
            np.savez(tmp, mean=scaler.mean_, scale=scaler.scale_, var=scaler.var_, coef=lr.coef_,
                     intercept=lr.intercept_, classes=np.asarray(lr.classes_, dtype=np.int64))
        else:
            wfile = _KERAS_FILE
            tmp = os.path.join(d, f".model{tag}.keras")
            self.model_.save(tmp)
        sha = _sha256(tmp)
        os.replace(tmp, os.path.join(d, wfile))
        from .. import __version__

        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "mode": self.mode,
            "classes": [str(c) for c in self.classes_],
            "n_classes": len(self.classes_),
            "embedding_dim": self.embedding_dim_,
            "weights_file": wfile,
            "weights_sha256": sha,
            "frontend": dict(features.FRONTEND_PARAMS),
            "backbone": None if self.backbone_ is None else {"name": str(self.backbone_),
                                                            "weights_sha256": self.backbone_sha256_},
            "patches_per_track": int(self.patches_per_track),
            "params": {k: v for k, v in self.get_params().items()},
            "C": getattr(self, "C_", None),
            "best_epoch": getattr(self, "best_epoch_", None),
            "feature_names": getattr(self, "feature_names_", None),
            "history": self.history_,
            "n_train": self.n_train_,
            "n_validation": self.n_validation_,
            "split_strategy": self.split_strategy_,
            "n_failures": len(self.failures_),
            "fit_time_s": round(float(getattr(self, "fit_time_s_", 0.0)), 3),
            "library_version": __version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_json(os.path.join(d, TRACKS_FILE), {"train": self.training_paths_,
                                                   "validation": self.validation_paths_,
                                                   "failures": self.failures_}, tag)
        _write_json(os.path.join(d, SIDECAR), meta, tag)
        self.weights_sha256_ = sha
        self.source_ = d
        self.name_ = _custom_name(d)
        self._tag_model = None
        logger.info("saved %s model to %s", self.mode, d)
        return d


def _write_json(path, obj, tag):
    tmp = path + tag
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _custom_name(d):
    return "custom:" + os.path.abspath(d)


_CLASSICAL_NO_PATCHES = (
    "a 'classical' model classifies whole files from MIR descriptors: it has no log-mel patches "
    "and no embedding, so it cannot back an index or `recommender classify`; use "
    "`recommender predict MODEL FILES` or load_classifier(path).predict(files)")


# =========================================================================== loading
def _tag_metadata(clf):
    return {
        "tags": [str(c) for c in clf.classes_],
        "embedding_dim": int(clf.embedding_dim_),
        "architecture": {"n_frames": features.PATCH_FRAMES, "n_mels": features.N_MELS},
        "mode": clf.mode,
    }


def _model_dir(path):
    """The directory of a trained model given it, its model.json or its weights file."""
    p = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isdir(p):
        return p
    if os.path.isfile(p) and os.path.basename(p) in (SIDECAR, _KERAS_FILE, _NPZ_FILE):
        return os.path.dirname(p)
    return None


def is_trained_model(path) -> bool:
    """True if ``path`` (directory, its ``model.json`` or weights) is a model saved by
    :meth:`MusicClassifier.save`."""
    try:
        d = _model_dir(path)
    except TypeError:
        return False
    if d is None or not os.path.isfile(os.path.join(d, SIDECAR)):
        return False
    try:
        with open(os.path.join(d, SIDECAR), encoding="utf-8") as fh:
            return json.load(fh).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _read_sidecar(d):
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
    if mode not in MODES:
        raise ModelError(side, f"mode={mode!r}: unknown (expected one of {MODES})")
    if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(classes):
        raise ModelError(side, "classes: must be a list of at least 2 distinct names")
    if meta.get("frontend") != features.FRONTEND_PARAMS:
        raise ModelError(side, f"model expects front end {meta.get('frontend')}, this library computes "
                               f"{features.FRONTEND_PARAMS}")
    if os.path.basename(str(wfile)) != wfile or wfile not in (_KERAS_FILE, _NPZ_FILE):
        raise ModelError(side, f"weights_file={wfile!r}: expected {_KERAS_FILE} or {_NPZ_FILE}")
    wpath = os.path.join(d, wfile)
    if not os.path.isfile(wpath):
        raise ModelError(wpath, "weights file not found")
    actual = _sha256(wpath)
    if actual != sha:
        raise ModelError(wpath, f"sha256 {actual} does not match the sidecar ({sha}): file corrupt or replaced")
    return meta, wpath


def _load_keras(wpath, meta):
    keras = _keras()
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


def _load_classical(wpath, meta):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    try:
        with np.load(wpath, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        names = meta["feature_names"]
        F = len(names)
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_, scaler.var_ = a["mean"], a["scale"], a["var"]
        scaler.n_features_in_ = F
        scaler.n_samples_seen_ = 1
        lr = LogisticRegression(C=float(meta.get("C") or 1.0))
        lr.coef_, lr.intercept_, lr.classes_ = a["coef"], a["intercept"], a["classes"]
        lr.n_features_in_ = F
        lr.n_iter_ = np.zeros(1, dtype=np.int32)
        if a["mean"].shape != (F,) or a["coef"].shape[1] != F or names != _descriptor_names():
            raise ValueError("descriptor columns differ from this library's")
    except (KeyError, ValueError, TypeError, IndexError, OSError) as e:
        raise ModelError(wpath, f"not a valid classical model ({e})") from None
    return Pipeline([("scale", scaler), ("logreg", lr)])


def load_classifier(path) -> MusicClassifier:
    """Load a :class:`MusicClassifier` saved by :meth:`MusicClassifier.save`.

    Parameters
    ----------
    path : str or os.PathLike
        The model directory (or its ``model.json`` / weights file).

    Raises
    ------
    ModelError
        Missing/corrupt/replaced files (SHA-256 checked), another front end,
        or a Keras file that safe_mode refuses (``Lambda`` layers).
    """
    d = _model_dir(path)
    if d is None:
        raise ModelError(path, "not a model directory (expected a folder with model.json)")
    meta, wpath = _read_sidecar(d)
    params = {k: v for k, v in (meta.get("params") or {}).items() if k in MusicClassifier._PARAMS}
    params["mode"] = meta["mode"]
    clf = MusicClassifier().set_params(**params)
    clf.classes_ = np.array(meta["classes"], dtype=object)
    clf.model_ = _load_classical(wpath, meta) if meta["mode"] == "classical" else _load_keras(wpath, meta)
    clf.history_ = meta.get("history") or {}
    clf.n_train_ = meta.get("n_train")
    clf.n_validation_ = meta.get("n_validation")
    clf.split_strategy_ = meta.get("split_strategy", "")
    clf.embedding_dim_ = meta.get("embedding_dim")
    bb = meta.get("backbone") or {}
    clf.backbone_, clf.backbone_sha256_ = bb.get("name"), bb.get("weights_sha256")
    clf.C_ = meta.get("C")
    clf.feature_names_ = meta.get("feature_names")
    clf.fit_time_s_ = meta.get("fit_time_s")
    clf.failures_ = []
    clf.training_paths_, clf.validation_paths_ = [], []
    try:
        with open(os.path.join(d, TRACKS_FILE), encoding="utf-8") as fh:
            tracks = json.load(fh)
        clf.training_paths_ = [str(p) for p in tracks.get("train", [])]
        clf.validation_paths_ = [str(p) for p in tracks.get("validation", [])]
        clf.failures_ = list(tracks.get("failures", []))
    except (OSError, ValueError, AttributeError):
        logger.warning("%s: no readable %s; evaluate cannot exclude the training tracks", d, TRACKS_FILE)
    clf.weights_sha256_ = meta["weights_sha256"]
    clf.source_ = d
    clf.name_ = _custom_name(d)
    clf._tag_model = None
    return clf


# =========================================================================== TagModel adapter
def _tag_model_base():
    from ..models import TagModel

    return TagModel


class TrainedTagModel(_tag_model_base()):
    """A trained classifier seen as a :class:`~recommender.models.TagModel`.

    ``tags`` are the classifier's classes, ``predict_patches`` returns
    (class probabilities (n, n_classes), embedding (n, embedding_dim)), and
    ``source`` is the model directory so worker processes can reload it.
    """

    def __init__(self, name, keras_model, metadata, weights_sha256, *, source=None, mode=None):
        super().__init__(name, keras_model, metadata, weights_sha256)
        self.has_pool = False  # a classifier's own layers: the layer space is for the pretrained models
        self.source = source
        self.mode = mode

    def __repr__(self):
        return (f"TrainedTagModel(name={self.name!r}, mode={self.mode!r}, classes={self.tags}, "
                f"embedding_dim={self.embedding_dim}, sha256={self.weights_sha256[:12]})")


def load_tag_model(path) -> TrainedTagModel:
    """Load a saved classifier as a TagModel (what ``models.load_model(path)`` returns).

    Raises
    ------
    ModelError
        As :func:`load_classifier`; and for a ``classical`` model, which has no
        patches or embedding to index.
    """
    d = _model_dir(path)
    if d is None:
        raise ModelError(path, "not a model directory (expected a folder with model.json)")
    meta, _ = _read_sidecar(d)
    if meta["mode"] == "classical":
        raise ModelError(d, _CLASSICAL_NO_PATCHES)
    clf = load_classifier(d)
    tm = clf.tag_model()
    tm.metadata.update({"trained": {k: meta.get(k) for k in ("mode", "backbone", "n_train", "split_strategy")}})
    return tm


# =========================================================================== evaluation
def _metrics(y_true, y_pred, n):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(n))
    if len(y_true) == 0:
        return None
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "precision": p.tolist(),
        "recall": r.tolist(),
        "f1": f.tolist(),
        "support": s.tolist(),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def evaluate(model, dataset, *, split="test") -> dict:
    """Score a classifier on labelled tracks it has not seen.

    Parameters
    ----------
    model : MusicClassifier or path
        A fitted classifier or a saved model directory.
    dataset : pandas.DataFrame or path
        A dataset (see :func:`recommender.datasets.load_dataset`).  If it has
        a ``split`` column with ``split`` rows (default ``"test"``), only those
        are scored; otherwise every track except those the model was trained
        or validated on (listed in its ``tracks.json``).
    split : str
        Which split to score when the dataset has one.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` (per track), ``per_track`` and
        ``per_patch`` (``accuracy``, ``macro_f1``, per-class ``precision``,
        ``recall``, ``f1``, ``support``, ``confusion`` rows = true class),
        ``confusion`` (per track), ``classes``, ``n_train``, ``n_validation``,
        ``n_test``, ``failures``, ``history``, ``mode``, ``split_strategy``...
    """
    import pandas as pd

    from .datasets import load_dataset

    clf = model if isinstance(model, MusicClassifier) else load_classifier(model)
    clf._check_fitted()
    df = dataset if isinstance(dataset, pd.DataFrame) else load_dataset(dataset)
    df = _as_frame(df)
    if "label" not in df:
        raise ParameterError("dataset: needs a 'label' column")
    notes = []
    if "split" in df and (df["split"] == split).any():
        rows = df[df["split"] == split]
        notes.append(f"scored the {split!r} split")
    else:
        seen = set(clf.training_paths_) | set(clf.validation_paths_)
        rows = df[~df["path"].isin(seen)]
        if len(rows) < len(df):
            notes.append(f"{len(df) - len(rows)} tracks used for training/validation were excluded")
        else:
            notes.append("no split column: scored every track")
    rows = rows.assign(label=rows["label"].astype(str))
    unknown = sorted(set(rows["label"]) - set(clf.classes_))
    if unknown:
        notes.append(f"labels unknown to the model skipped: {unknown}")
        logger.warning("labels unknown to the model skipped: %s", unknown)
        rows = rows[rows["label"].isin(clf.classes_)]
    t0 = time.perf_counter()
    out, fails = clf._patch_outputs(list(rows["path"]), on_error="skip")
    predict_s = time.perf_counter() - t0
    rows = rows[rows["path"].isin(out)]
    y = clf._encode(rows["label"])
    P = [out[p] for p in rows["path"]]
    n = len(clf.classes_)
    track_probs = np.stack([x.mean(axis=0) for x in P]) if P else np.zeros((0, n))
    per_track = _metrics(y, track_probs.argmax(1), n)
    patch_y = np.repeat(y, [len(x) for x in P])
    patch_pred = np.concatenate([x.argmax(1) for x in P]) if P else np.zeros(0, int)
    per_patch = _metrics(patch_y, patch_pred, n)
    predictions = [{"path": p, "label": str(clf.classes_[t]), "predicted": str(clf.classes_[k]),
                    "probability": round(float(pr[k]), 5)}
                   for p, t, k, pr in zip(rows["path"], y, track_probs.argmax(1) if P else [], track_probs)]
    hist = clf.history_ or {}
    return {
        "mode": clf.mode,
        "model": getattr(clf, "source_", None),
        "classes": [str(c) for c in clf.classes_],
        "accuracy": per_track["accuracy"] if per_track else None,
        "macro_f1": per_track["macro_f1"] if per_track else None,
        "confusion": per_track["confusion"] if per_track else None,
        "per_track": per_track,
        "per_patch": per_patch,
        "n_train": clf.n_train_,
        "n_validation": clf.n_validation_,
        "n_test": int(len(rows)),
        "n_test_patches": int(len(patch_y)),
        "failures": fails,
        "split_strategy": getattr(clf, "split_strategy_", ""),
        "notes": notes,
        "history": hist,
        "fit_time_s": getattr(clf, "fit_time_s_", None),
        "predict_time_s": predict_s,
        "predictions": predictions,
    }


def write_report(report, out_dir) -> dict:
    """Write ``report.json``, ``confusion_track.png``, ``confusion_patch.png`` and
    ``training_curves.png`` (when there is a history) into ``out_dir``.

    Returns
    -------
    dict
        ``{"json": path, "confusion_track": path, ...}`` of the files written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d = os.path.abspath(os.fspath(out_dir))
    os.makedirs(d, exist_ok=True)
    written = {}
    p = os.path.join(d, "report.json")
    _write_json(p, report, f".{os.getpid()}.part")
    written["json"] = p
    classes = report["classes"]
    for level in ("track", "patch"):
        m = report.get(f"per_{level}")
        if not m:
            continue
        cm = np.asarray(m["confusion"], dtype=float)
        size = max(5.0, 0.55 * len(classes) + 3.0)
        fig, ax = plt.subplots(figsize=(size, size * 0.85))
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{report['mode']}, per {level} (n={m['n']})\n"
                     f"accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
        fig.tight_layout()
        p = os.path.join(d, f"confusion_{level}.png")
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written[f"confusion_{level}"] = p
    h = report.get("history") or {}
    x_key = "epoch" if h.get("epoch") else "C" if h.get("C") else None
    if x_key:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        x = h[x_key]
        for key, ax in (("loss", a1), ("accuracy", a2)):
            ax.plot(x, h.get(key, []), "o-", label=f"train (per patch{', augmented' if x_key == 'epoch' else ''})")
            vals = [v for v in h.get(f"val_{key}", []) if v is not None]
            if len(vals) == len(x):
                ax.plot(x, vals, "o-", label="validation (per track)" if x_key == "epoch"
                        else "cross-validated (per track)")
            ax.set_xlabel("epoch" if x_key == "epoch" else "C (inverse regularisation)")
            if x_key == "C":
                ax.set_xscale("log")
            ax.set_ylabel(key)
            ax.legend()
            ax.grid(alpha=0.3)
        fig.suptitle(f"{report['mode']}: training curves")
        fig.tight_layout()
        p = os.path.join(d, "training_curves.png")
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written["training_curves"] = p
    return written
