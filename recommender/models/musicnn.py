"""Keras 3 re-implementation of musicnn (Pons & Serra, 2019).

The network is the ``build_musicnn`` of ``musicnn==0.1.0`` (``models.py``),
rebuilt layer for layer with built-in Keras layers only (no ``Lambda``), so a
saved model loads under ``keras.saving.load_model(..., safe_mode=True)``.
Pretrained weights converted from the musicnn checkpoints ship in
``recommender/models/weights`` (see ``tools/convert_musicnn.py``).

Architecture (``n_frames=187`` time frames x 96 mel bands in)::

    input (B, T, 96) ── reshape (B, T, 96, 1) ── input_bn (BatchNorm, 1 channel)
     ├─ zero-pad time 3/3 ── timbral_f74_conv  Conv2D 204 x (7, 38) valid, ReLU ── timbral_f74_bn ── max over freq ─┐
     ├─ zero-pad time 3/3 ── timbral_f77_conv  Conv2D 204 x (7, 67) valid, ReLU ── timbral_f77_bn ── max over freq ─┤
     ├─ temporal_s1_conv  Conv2D 51 x (128, 1) 'same', ReLU ── temporal_s1_bn ── max over freq ───────────────────┤
     ├─ temporal_s2_conv  Conv2D 51 x (64, 1)  'same', ReLU ── temporal_s2_bn ── max over freq ───────────────────┤
     └─ temporal_s3_conv  Conv2D 51 x (32, 1)  'same', ReLU ── temporal_s3_bn ── max over freq ───────────────────┤
    frontend (B, T, 561) = concat[f74, f77, s1, s2, s3] ◀──────────────────────────────────────────────────────────┘
    midend_conv1 Conv1D 64 x 7 (pad 3/3), ReLU ── midend_bn1                     = m1
    midend_conv2 Conv1D 64 x 7 (pad 3/3), ReLU ── midend_bn2 ── + m1            = m2  (midend_res2)
    midend_conv3 Conv1D 64 x 7 (pad 3/3), ReLU ── midend_bn3 ── + m2            = m3  (midend_res3)
    midend (B, T, 753) = concat[frontend, m1, m2, m3]
    pool (B, 1506) = [max_t c0, mean_t c0, max_t c1, mean_t c1, ...]   (interleaved, as musicnn)
    pool_bn ── dropout 0.5 ── penultimate_dense Dense 200 ReLU ── penultimate (BatchNorm) ── dropout 0.5
    ── logits Dense n_tags ── probabilities (sigmoid)

Every batch normalisation uses ``epsilon=1e-3`` (TF1 default).  TF ``'same'``
padding with an even kernel pads ``k//2 - 1`` frames before and ``k//2``
after; Keras' ``'same'`` on the TensorFlow backend is that very op, so the
temporal branch matches exactly.

Stable layer names (use them for transfer learning / fine-tuning)
-----------------------------------------------------------------
``input_bn``; ``timbral_f74_conv``/``_bn``, ``timbral_f77_conv``/``_bn``;
``temporal_s1_conv``/``_bn`` ... ``temporal_s3_*``; ``frontend`` (concat,
561 channels); ``midend_conv{1,2,3}``, ``midend_bn{1,2,3}``,
``midend_res2``, ``midend_res3``; ``midend`` (concat, 753 channels);
``max_pool``, ``mean_pool`` (B, 753); ``pool`` (B, 1506); ``pool_bn``;
``penultimate_dense`` (Dense 200, ReLU); ``penultimate`` (BatchNorm, the
200-d embedding musicnn calls *penultimate*); ``logits`` (Dense n_tags, no
activation); ``probabilities`` (sigmoid).

A new head on the embedding::

    base = build_musicnn()
    load_weights(base, "msd_musicnn.npz")
    emb = base.get_layer("penultimate").output
    head = keras.layers.Dense(10, activation="softmax", name="genre")(emb)
    model = keras.Model(base.input, head)
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ModelError, ParameterError

__all__ = [
    "N_MELS",
    "PATCH_FRAMES",
    "FRONTEND_CHANNELS",
    "build_musicnn",
    "load_weights",
    "read_weights",
    "weight_shapes",
]

N_MELS = 96
PATCH_FRAMES = 187
_BN_EPS = 1e-3

# (name, filters, kernel (time, freq)) of the musically motivated front end.
# num_filt = 1.6 in musicnn: int(1.6 * 128) = 204 timbral, int(1.6 * 32) = 51 temporal;
# timbral kernels span int(0.4 * 96) = 38 and int(0.7 * 96) = 67 mel bands.
_TIMBRAL = (("timbral_f74", 204, (7, 38)), ("timbral_f77", 204, (7, 67)))
_TEMPORAL = (("temporal_s1", 51, (128, 1)), ("temporal_s2", 51, (64, 1)), ("temporal_s3", 51, (32, 1)))
FRONTEND_CHANNELS = sum(f for _, f, _ in _TIMBRAL + _TEMPORAL)  # 561


def _bn(name):
    import keras

    return keras.layers.BatchNormalization(epsilon=_BN_EPS, momentum=0.99, name=name)


def build_musicnn(
    n_tags: int = 50,
    *,
    n_frames: int | None = PATCH_FRAMES,
    midend_filters: int = 64,
    backend_units: int = 200,
    dropout: float = 0.5,
    name: str = "musicnn",
):
    """Build the musicnn network (untrained) as a Keras functional model.

    Parameters
    ----------
    n_tags : int
        Number of sigmoid outputs (50 for the pretrained MSD/MTT models).
    n_frames : int or None
        Time frames per input patch; 187 for the pretrained models.
        ``None`` builds a model accepting any length (the back end pools
        over time), but the pretrained weights were trained on 187 frames.
    midend_filters : int
        Filters of each mid-end convolution (64; 512 for "musicnn_big").
    backend_units : int
        Size of the penultimate layer / embedding (200; 500 for "big").
    dropout : float
        Dropout rate before each dense layer (only active in training).
    name : str
        Model name.

    Returns
    -------
    model : keras.Model
        ``(batch, n_frames, 96)`` float32 -> ``[probabilities (batch, n_tags),
        penultimate (batch, backend_units)]``.  Layer names are listed in
        the module docstring and are stable.

    Examples
    --------
    >>> m = build_musicnn()                       # doctest: +SKIP
    >>> [o.shape for o in m.outputs]              # doctest: +SKIP
    [(None, 50), (None, 200)]
    """
    for pname, value in (("n_tags", n_tags), ("midend_filters", midend_filters),
                         ("backend_units", backend_units)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ParameterError(f"{pname}={value!r}: must be a positive integer")
    if n_frames is not None and (not isinstance(n_frames, (int, np.integer)) or n_frames < 1):
        raise ParameterError(f"n_frames={n_frames!r}: must be a positive integer or None")
    if not 0.0 <= float(dropout) < 1.0:
        raise ParameterError(f"dropout={dropout!r}: must be in [0, 1)")

    import keras
    from keras import layers

    x_in = keras.Input(shape=(n_frames, N_MELS), dtype="float32", name="logmel")
    x = layers.Reshape((-1, N_MELS, 1), name="expand_channels")(x_in)
    x = _bn("input_bn")(x)

    branches = []
    x_pad = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)
    for bname, filters, kernel in _TIMBRAL:
        h = layers.Conv2D(filters, kernel, padding="valid", activation="relu",
                          name=f"{bname}_conv")(x_pad)
        h = _bn(f"{bname}_bn")(h)
        width = N_MELS - kernel[1] + 1
        h = layers.MaxPooling2D((1, width), strides=(1, width), name=f"{bname}_freqpool")(h)
        branches.append(layers.Reshape((-1, filters), name=f"{bname}_squeeze")(h))
    for bname, filters, kernel in _TEMPORAL:
        h = layers.Conv2D(filters, kernel, padding="same", activation="relu",
                          name=f"{bname}_conv")(x)
        h = _bn(f"{bname}_bn")(h)
        h = layers.MaxPooling2D((1, N_MELS), strides=(1, N_MELS), name=f"{bname}_freqpool")(h)
        branches.append(layers.Reshape((-1, filters), name=f"{bname}_squeeze")(h))
    front = layers.Concatenate(axis=-1, name="frontend")(branches)

    # mid-end: musicnn's Conv2D with a kernel spanning all channels == Conv1D
    h = layers.ZeroPadding1D(3, name="midend_pad1")(front)
    h = layers.Conv1D(midend_filters, 7, padding="valid", activation="relu", name="midend_conv1")(h)
    m1 = _bn("midend_bn1")(h)
    h = layers.ZeroPadding1D(3, name="midend_pad2")(m1)
    h = layers.Conv1D(midend_filters, 7, padding="valid", activation="relu", name="midend_conv2")(h)
    h = _bn("midend_bn2")(h)
    m2 = layers.Add(name="midend_res2")([h, m1])
    h = layers.ZeroPadding1D(3, name="midend_pad3")(m2)
    h = layers.Conv1D(midend_filters, 7, padding="valid", activation="relu", name="midend_conv3")(h)
    h = _bn("midend_bn3")(h)
    m3 = layers.Add(name="midend_res3")([h, m2])
    mid = layers.Concatenate(axis=-1, name="midend")([front, m1, m2, m3])
    channels = FRONTEND_CHANNELS + 3 * midend_filters  # 753

    # back-end: temporal max and mean, interleaved per channel like musicnn's
    # concat([max (B,C,1), mean (B,C,1)], axis=2) + flatten
    mx = layers.GlobalMaxPooling1D(name="max_pool")(mid)
    mn = layers.GlobalAveragePooling1D(name="mean_pool")(mid)
    mx = layers.Reshape((channels, 1), name="max_pool_expand")(mx)
    mn = layers.Reshape((channels, 1), name="mean_pool_expand")(mn)
    pool = layers.Concatenate(axis=-1, name="pool_pairs")([mx, mn])
    pool = layers.Flatten(name="pool")(pool)
    h = _bn("pool_bn")(pool)
    h = layers.Dropout(dropout, name="pool_dropout")(h)
    h = layers.Dense(backend_units, activation="relu", name="penultimate_dense")(h)
    emb = _bn("penultimate")(h)
    h = layers.Dropout(dropout, name="penultimate_dropout")(emb)
    logits = layers.Dense(n_tags, name="logits")(h)
    probs = layers.Activation("sigmoid", name="probabilities")(logits)
    return keras.Model(x_in, [probs, emb], name=name)


def weight_shapes(model) -> dict[str, tuple[int, ...]]:
    """``{"layer/variable": shape}`` of every weight of ``model`` (the npz keys)."""
    return {f"{layer.name}/{v.name}": tuple(v.shape) for layer in model.layers for v in layer.weights}


def read_weights(path) -> dict[str, np.ndarray]:
    """The arrays of a weights ``.npz`` (read with ``allow_pickle=False``).

    Raises
    ------
    ModelError
        Missing file, or not a valid ``.npz``.
    """
    try:
        with np.load(os.fspath(path), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ModelError(path, "weights file not found") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object)...
        raise ModelError(path, f"not a valid weights .npz ({exc})") from None


def load_weights(model, path, *, skip=()) -> None:
    """Load weights from an ``.npz`` keyed ``"<layer>/<variable>"``.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build_musicnn` (or one containing its layers).
    path : str or os.PathLike
        The ``.npz`` file (read with ``allow_pickle=False``).
    skip : iterable of str
        Layer names left untouched (e.g. ``("logits",)`` when ``n_tags``
        differs from the file's).

    Raises
    ------
    ModelError
        Missing file, missing or unexpected keys, or shape mismatch.
    """
    skip = set(skip)
    expected = {k: s for k, s in weight_shapes(model).items() if k.split("/")[0] not in skip}
    arrays = read_weights(path)
    file_keys = {k for k in arrays if k.split("/")[0] not in skip}
    missing = sorted(set(expected) - file_keys)
    extra = sorted(file_keys - set(expected))
    if missing or extra:
        raise ModelError(path, f"weights do not match the model: missing {missing[:5]}, "
                               f"unexpected {extra[:5]}")
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ModelError(path, f"{key}: shape {arrays[key].shape} in file, model expects {shape}")
    for layer in model.layers:
        if layer.name in skip:
            continue
        for v in layer.weights:
            v.assign(arrays[f"{layer.name}/{v.name}"].astype(np.float32))
