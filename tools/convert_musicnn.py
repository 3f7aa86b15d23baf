"""Convert the pretrained musicnn 0.1.0 checkpoints into the shipped ``.npz`` weights.

Usage::

    pip download --no-deps musicnn==0.1.0 && unzip musicnn-0.1.0-py3-none-any.whl
    python tools/convert_musicnn.py /tmp/mnn/musicnn --out recommender/models/weights

Reads ``<musicnn_dir>/{MSD,MTT}_musicnn/`` (TF1 checkpoints of the wheel by
Jordi Pons, MTG-UPF, ISC licence) with
``tf.compat.v1.train.NewCheckpointReader`` and writes, per model:

* ``msd_musicnn.npz`` / ``mtt_musicnn.npz``: float32 arrays keyed
  ``"<keras layer>/<variable>"`` (the layer names of
  :func:`recommender.models.musicnn.build_musicnn`), trained weights and
  batch-norm moving statistics only (Adam slots, ``beta1_power`` etc. are
  dropped).  The mid-end ``Conv2D`` kernels ``(7, C, 1, 64)`` become the
  equivalent ``Conv1D`` kernels ``(7, C, 64)``; nothing else is reshaped.
* ``msd_musicnn.json`` / ``mtt_musicnn.json``: tags (from musicnn's
  ``configuration.py``, in output order), architecture parameters, front-end
  parameters, provenance (source variable for each key, sha256 of the
  checkpoint data file) and the sha256 of the ``.npz``.
* ``LICENSE-musicnn.txt``: the wheel's ISC notice.

Determinism: the ``.npz`` is written by hand as an uncompressed zip with a
fixed key order, fixed timestamps (1980-01-01) and fixed attributes, each
member being ``np.lib.format.write_array`` output, so running the converter
twice (or on another machine) reproduces the shipped files byte for byte
(``tests/test_model.py`` checks this when the wheel is unpacked at
``/tmp/mnn``).  The JSON is written with a fixed key order and indentation.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import os
import sys
import zipfile

import numpy as np

# Keras layer -> musicnn TF1 layer, in network order.
LAYER_MAP = (
    ("input_bn", "batch_normalization"),
    ("timbral_f74_conv", "conv2d"),
    ("timbral_f74_bn", "batch_normalization_1"),
    ("timbral_f77_conv", "conv2d_1"),
    ("timbral_f77_bn", "batch_normalization_2"),
    ("temporal_s1_conv", "conv2d_2"),
    ("temporal_s1_bn", "batch_normalization_3"),
    ("temporal_s2_conv", "conv2d_3"),
    ("temporal_s2_bn", "batch_normalization_4"),
    ("temporal_s3_conv", "conv2d_4"),
    ("temporal_s3_bn", "batch_normalization_5"),
    ("midend_conv1", "conv2d_5"),
    ("midend_bn1", "batch_normalization_6"),
    ("midend_conv2", "conv2d_6"),
    ("midend_bn2", "batch_normalization_7"),
    ("midend_conv3", "conv2d_7"),
    ("midend_bn3", "batch_normalization_8"),
    ("pool_bn", "batch_normalization_9"),
    ("penultimate_dense", "dense"),
    ("penultimate", "batch_normalization_10"),
    ("logits", "dense_1"),
)
# Variable order = Keras' weight order for each layer type.
CONV_VARS = ("kernel", "bias")
BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")
CONV1D_LAYERS = ("midend_conv1", "midend_conv2", "midend_conv3")

MODELS = (
    # (output stem, wheel folder, label list in configuration.py, dataset)
    ("msd_musicnn", "MSD_musicnn", "MSD_LABELS", "Million Song Dataset (last.fm top-50 tags)"),
    ("mtt_musicnn", "MTT_musicnn", "MTT_LABELS", "MagnaTagATune (top-50 tags)"),
)

ARCHITECTURE = {
    "builder": "recommender.models.musicnn.build_musicnn",
    "n_frames": 187,
    "n_mels": 96,
    "midend_filters": 64,
    "backend_units": 200,
    "frontend": "7774timbraltemporal",
    "batchnorm_epsilon": 1e-3,
    "outputs": ["probabilities", "penultimate"],
}

FRONTEND = {
    "sr": 16000,
    "n_fft": 512,
    "hop_length": 256,
    "n_mels": 96,
    "patch_frames": 187,
    "window": "hann",
    "center_pad": "reflect",
    "mel_norm": "slaney",
    "compression": "log10(10000*float16(mel)+1)",
}

LICENSE_HEADER = """\
The pretrained weights in this folder (msd_musicnn.npz, mtt_musicnn.npz) are
converted, unchanged in value, from the TensorFlow checkpoints of musicnn 0.1.0
(https://github.com/jordipons/musicnn, PyPI "musicnn==0.1.0") by Jordi Pons,
Music Technology Group, Universitat Pompeu Fabra, with tools/convert_musicnn.py.
They are distributed under musicnn's ISC licence, reproduced below.

Pons, J. and Serra, X. (2019). musicnn: pre-trained convolutional neural
networks for music audio tagging. Late-breaking/demo session, ISMIR 2019.

----------------------------------------------------------------------------
"""

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_npz_deterministic(path, arrays) -> None:
    """Write ``arrays`` (an ordered mapping) as an uncompressed, reproducible ``.npz``."""
    tmp = f"{path}.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def read_labels(musicnn_dir, var_name) -> list[str]:
    """Read a label list from musicnn's configuration.py without importing it."""
    with open(os.path.join(musicnn_dir, "configuration.py"), encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == var_name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise SystemExit(f"{var_name} not found in configuration.py")


def convert_checkpoint(ckpt_dir):
    """Return (ordered {key: float32 array}, {key: source variable})."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(os.path.join(ckpt_dir, ""))
    available = reader.get_variable_to_shape_map()
    arrays, source = {}, {}
    for layer, tf_layer in LAYER_MAP:
        names = BN_VARS if tf_layer.startswith("batch_normalization") else CONV_VARS
        for var in names:
            src = f"{tf_layer}/{var}"
            if src not in available:
                raise SystemExit(f"{ckpt_dir}: variable {src} missing from checkpoint")
            a = np.asarray(reader.get_tensor(src), dtype=np.float32)
            if layer in CONV1D_LAYERS and var == "kernel":
                if a.ndim != 4 or a.shape[2] != 1:
                    raise SystemExit(f"{src}: unexpected shape {a.shape}")
                a = a[:, :, 0, :]  # (7, C, 1, F) -> (7, C, F)
            arrays[f"{layer}/{var}"] = np.ascontiguousarray(a, dtype="<f4")
            source[f"{layer}/{var}"] = src
    used = set(source.values())
    leftover = sorted(k for k in available if k not in used and "Adam" not in k
                      and k not in ("beta1_power", "beta2_power"))
    if leftover:
        raise SystemExit(f"{ckpt_dir}: unconverted variables {leftover}")
    return arrays, source


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("musicnn_dir", help="the unpacked wheel's musicnn/ package folder")
    ap.add_argument("--out", default=os.path.join("recommender", "models", "weights"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    wheel_root = os.path.dirname(os.path.abspath(args.musicnn_dir))
    lic_path = os.path.join(wheel_root, "musicnn-0.1.0.dist-info", "LICENSE.md")
    with open(lic_path, encoding="utf-8") as fh:
        licence = fh.read().strip() + "\n"
    with open(os.path.join(args.out, "LICENSE-musicnn.txt"), "w", encoding="utf-8", newline="\n") as fh:
        fh.write(LICENSE_HEADER + licence)

    for stem, folder, labels_var, dataset in MODELS:
        ckpt_dir = os.path.join(args.musicnn_dir, folder)
        arrays, source = convert_checkpoint(ckpt_dir)
        tags = read_labels(args.musicnn_dir, labels_var)
        if len(tags) != arrays["logits/bias"].shape[0]:
            raise SystemExit(f"{stem}: {len(tags)} labels but {arrays['logits/bias'].shape[0]} outputs")
        npz_path = os.path.join(args.out, f"{stem}.npz")
        write_npz_deterministic(npz_path, arrays)
        meta = {
            "name": stem.replace("_", "-"),
            "format_version": 1,
            "tags": tags,
            "n_tags": len(tags),
            "embedding_dim": ARCHITECTURE["backend_units"],
            "embedding_layer": "penultimate",
            "architecture": ARCHITECTURE,
            "frontend": FRONTEND,
            "weights_file": f"{stem}.npz",
            "weights_sha256": sha256_file(npz_path),
            "n_parameters": int(sum(a.size for a in arrays.values())),
            "source": {
                "package": "musicnn==0.1.0",
                "url": "https://github.com/jordipons/musicnn",
                "author": "Jordi Pons, Music Technology Group, Universitat Pompeu Fabra",
                "license": "ISC (see LICENSE-musicnn.txt)",
                "checkpoint": f"musicnn/{folder}/",
                "checkpoint_data_sha256": sha256_file(os.path.join(ckpt_dir, ".data-00000-of-00001")),
                "dataset": dataset,
                "converter": "tools/convert_musicnn.py",
                "variables": source,
            },
        }
        with open(os.path.join(args.out, f"{stem}.json"), "w", encoding="utf-8", newline="\n") as fh:
            json.dump(meta, fh, indent=2, ensure_ascii=True)
            fh.write("\n")
        print(f"{npz_path}: {len(arrays)} arrays, {meta['n_parameters']} parameters, "
              f"sha256 {meta['weights_sha256'][:16]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
