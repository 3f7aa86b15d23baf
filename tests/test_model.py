"""The shipped musicnn port is the same network as the original musicnn 0.1.0.

Reference: ``tests/fixtures/musicnn_reference.npz``, made by
``tests/fixtures/make_musicnn_reference.py`` from the wheel's ORIGINAL TF1
graph and checkpoints (see that script for the recipe).

Achieved on the development machine (TF 2.21 / Keras 3.15, oneDNN, x86-64):
  MSD probabilities max abs error 3.4e-07, penultimate 2.4e-06 (values up to 3.3);
  MTT probabilities 4.8e-07, penultimate 3.6e-06;
  recommender.features patches vs musicnn's librosa recipe: max abs 2.7e-04
  (8 of 71808 values above 1e-4: single float16 rounding flips).
Tolerances below leave room for other CPUs / BLAS back ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _signals import musicnn_reference_signal  # noqa: E402

from recommender.errors import ModelError, ParameterError, RecommenderError  # noqa: E402
from recommender.features import FRONTEND_PARAMS, logmel, patches  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURE = os.path.join(HERE, "fixtures", "musicnn_reference.npz")
MUSICNN_WHEEL_DIR = "/tmp/mnn/musicnn"  # unpacked musicnn==0.1.0 wheel (not in CI)

PROBS_ATOL = 1e-5
PENULTIMATE_ATOL = 1e-4


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def msd():
    from recommender.models import load_model

    return load_model("msd-musicnn", precision="float32")


@pytest.fixture(scope="module")
def mtt():
    from recommender.models import load_model

    return load_model("mtt-musicnn", precision="float32")


# (a) the port reproduces the original graph --------------------------------

@pytest.mark.parametrize("runtime", ["onnx", "tensorflow"])
def test_msd_port_matches_original_graph(ref, runtime):
    from recommender.models import load_model

    msd = load_model("msd-musicnn", runtime=runtime, precision="float32")
    assert msd.runtime == runtime
    probs, emb = msd.predict_patches(ref["patches"])
    assert probs.dtype == np.float32 and emb.dtype == np.float32
    np.testing.assert_allclose(probs, ref["probs"], rtol=0, atol=PROBS_ATOL)
    np.testing.assert_allclose(emb, ref["penultimate"], rtol=0, atol=PENULTIMATE_ATOL)


@pytest.mark.parametrize("runtime", ["onnx", "tensorflow"])
def test_mtt_port_matches_original_graph(ref, runtime):
    from recommender.models import load_model

    mtt = load_model("mtt-musicnn", runtime=runtime, precision="float32")
    probs, emb = mtt.predict_patches(ref["patches"])
    np.testing.assert_allclose(probs, ref["mtt_probs"], rtol=0, atol=PROBS_ATOL)
    np.testing.assert_allclose(emb, ref["mtt_penultimate"], rtol=0, atol=PENULTIMATE_ATOL)


def test_logits_layer_matches_original_graph(msd, ref):
    import keras

    logits_model = keras.Model(msd.keras_model.input, msd.keras_model.get_layer("logits").output)
    logits = np.asarray(logits_model(ref["patches"], training=False))
    np.testing.assert_allclose(logits, ref["logits"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 64])
def test_batch_size_and_padding_do_not_change_results(msd, ref, batch_size):
    P = np.concatenate([ref["patches"], ref["patches"][:1]])  # 5 patches: exercises padding
    probs, emb = msd.predict_patches(P, batch_size=batch_size)
    np.testing.assert_allclose(probs[:4], ref["probs"], rtol=0, atol=PROBS_ATOL)
    np.testing.assert_allclose(probs[4], probs[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(emb[:4], ref["penultimate"], rtol=0, atol=PENULTIMATE_ATOL)


def test_patches_are_independent(msd, ref):
    # guards against musicnn.extractor's bug (patch 0's features repeated)
    probs, emb = msd.predict_patches(ref["patches"])
    assert np.abs(emb[1:] - emb[0]).max() > 0.1
    assert np.abs(probs[1:] - probs[0]).max() > 1e-3


# (b) the library front end is musicnn's front end -------------------------

def test_frontend_reproduces_musicnn_patches(ref):
    y = musicnn_reference_signal(
        sr=int(ref["signal_sr"]), seconds=float(ref["signal_seconds"]), seed=int(ref["signal_seed"])
    )
    P = patches(logmel(y))
    assert P.shape == ref["patches"].shape
    diff = np.abs(P - ref["patches"])
    # float16 quantisation: a value near a float16 rounding boundary may land
    # one float16 step away (1 ulp = 2**-11 relative = ~2.1e-4 after log10).
    assert diff.max() < 5e-4
    assert np.mean(diff > 1e-4) < 1e-3


def test_frontend_patches_give_reference_tags(msd, ref):
    P = patches(logmel(musicnn_reference_signal()))
    probs, _ = msd.predict_patches(P)
    np.testing.assert_allclose(probs, ref["probs"], rtol=0, atol=1e-3)


# (c) registry ---------------------------------------------------------------

def test_available_models_and_default():
    from recommender import models

    assert models.available_models() == ["msd-musicnn", "mtt-musicnn"]
    assert models.DEFAULT_MODEL == "msd-musicnn"


def test_unknown_model_name_lists_available():
    from recommender.models import load_model

    with pytest.raises(ModelError) as info:
        load_model("no-such-model")
    assert "msd-musicnn" in str(info.value) and "mtt-musicnn" in str(info.value)
    assert isinstance(info.value, RecommenderError)


def test_model_attributes(msd):
    with open(os.path.join(ROOT, "recommender", "models", "weights", "msd_musicnn.json")) as fh:
        meta = json.load(fh)
    assert msd.name == "msd-musicnn"
    assert msd.tags == meta["tags"] and msd.tags[:3] == ["rock", "pop", "alternative"]
    assert msd.n_tags == 50 and msd.embedding_dim == 200
    assert msd.frontend == FRONTEND_PARAMS
    with open(os.path.join(ROOT, "recommender", "models", "weights", "msd_musicnn.npz"), "rb") as fh:
        actual = hashlib.sha256(fh.read()).hexdigest()
    assert msd.weights_sha256 == meta["weights_sha256"] == actual
    assert [tuple(o.shape) for o in msd.keras_model.outputs] == [(None, 50), (None, 200)]


def test_default_model_is_cached(msd):
    from recommender.models import load_model

    assert load_model(precision="float32") is msd
    assert load_model() is load_model("msd-musicnn")
    assert load_model("msd-musicnn", precision="float32") is msd


def test_empty_input(msd):
    probs, emb = msd.predict_patches(np.zeros((0, 187, 96), np.float32))
    assert probs.shape == (0, 50) and emb.shape == (0, 200)
    assert probs.dtype == emb.dtype == np.float32


@pytest.mark.parametrize("shape", [(187, 96), (2, 96, 187), (1, 186, 96), (1, 187, 96, 1)])
def test_wrong_shape_raises(msd, shape):
    with pytest.raises(ParameterError, match="P.shape"):
        msd.predict_patches(np.zeros(shape, np.float32))


def test_bad_values_and_batch_size_raise(msd):
    P = np.zeros((2, 187, 96), np.float32)
    P[1, 5, 5] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        msd.predict_patches(P)
    with pytest.raises(ParameterError, match="batch_size"):
        msd.predict_patches(P[:1], batch_size=0)


def test_float64_input_is_accepted(msd, ref):
    probs, _ = msd.predict_patches(ref["patches"].astype(np.float64))
    np.testing.assert_allclose(probs, ref["probs"], rtol=0, atol=PROBS_ATOL)


def test_load_by_path_and_tampered_weights(tmp_path):
    from recommender.models import WEIGHTS_DIR, load_model

    for f in ("mtt_musicnn.json", "mtt_musicnn.npz"):
        shutil.copy(os.path.join(WEIGHTS_DIR, f), tmp_path / f)
    m = load_model(tmp_path / "mtt_musicnn.npz")
    assert m.n_tags == 50 and m.tags[0] == "guitar"
    data = bytearray((tmp_path / "mtt_musicnn.npz").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    meta = json.loads((tmp_path / "mtt_musicnn.json").read_text())
    meta["weights_file"] = "bad.npz"
    (tmp_path / "bad.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="sha256"):
        load_model(tmp_path / "bad.json")


def test_load_weights_validates_and_skips(tmp_path):
    from recommender.models import WEIGHTS_DIR
    from recommender.models.musicnn import build_musicnn, load_weights

    path = os.path.join(WEIGHTS_DIR, "msd_musicnn.npz")
    model = build_musicnn(10)
    with pytest.raises(ModelError, match="logits"):
        load_weights(model, path)
    load_weights(model, path, skip=("logits",))  # new head, pretrained body
    with np.load(path) as npz:
        np.testing.assert_array_equal(model.get_layer("penultimate_dense").get_weights()[0],
                                      npz["penultimate_dense/kernel"])
    with pytest.raises(ModelError, match="not found"):
        load_weights(model, tmp_path / "missing.npz")


# Keras' own saver trips a NumPy 2 __array__(copy=) deprecation inside TF: not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_round_trip_under_safe_mode(msd, ref, tmp_path):
    import keras

    path = tmp_path / "musicnn.keras"
    msd.keras_model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    probs, emb = (np.asarray(a) for a in loaded(ref["patches"], training=False))
    np.testing.assert_allclose(probs, ref["probs"], rtol=0, atol=PROBS_ATOL)
    np.testing.assert_allclose(emb, ref["penultimate"], rtol=0, atol=PENULTIMATE_ATOL)


# (d) lazy import ------------------------------------------------------------

def test_import_does_not_import_tensorflow():
    code = ("import recommender.models, sys; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "print(recommender.models.available_models())")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "msd-musicnn" in out.stdout


# (e) the converter reproduces the shipped files ----------------------------

@pytest.mark.skipif(not os.path.isdir(os.path.join(MUSICNN_WHEEL_DIR, "MSD_musicnn")),
                    reason=f"musicnn 0.1.0 wheel not unpacked at {MUSICNN_WHEEL_DIR} "
                           "(not downloaded at test time)")
def test_converter_reproduces_shipped_weights_byte_for_byte(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "convert_musicnn.py"), MUSICNN_WHEEL_DIR,
         "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    shipped = os.path.join(ROOT, "recommender", "models", "weights")
    for name in ("msd_musicnn.npz", "msd_musicnn.json", "mtt_musicnn.npz", "mtt_musicnn.json",
                 "LICENSE-musicnn.txt"):
        with open(os.path.join(shipped, name), "rb") as a, open(tmp_path / name, "rb") as b:
            assert a.read() == b.read(), f"{name} differs from the shipped file"
