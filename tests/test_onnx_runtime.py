"""The ONNX Runtime path computes the same network as the Keras port.

``tests/test_model.py`` checks both runtimes against the original TF1 graph;
here: the extra ``pool`` output, batch handling, the graph builder's errors,
and that inference on ONNX Runtime never imports TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from recommender.errors import ModelError, ParameterError
from recommender.models import WEIGHTS_DIR, default_runtime, load_model
from recommender.models.onnx_graph import build_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _weights(name="msd_musicnn"):
    with np.load(os.path.join(WEIGHTS_DIR, f"{name}.npz"), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def logmel_patches():
    from recommender.features import logmel, patches

    rng = np.random.default_rng(3)
    sr = 16000
    t = np.arange(sr * 10) / sr
    y = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.2 * np.sin(t))) + 0.05 * rng.normal(size=t.size)
    y[sr * 4 : sr * 5] *= np.sign(np.sin(2 * np.pi * 2 * t[sr * 4 : sr * 5]))  # a rhythmic gate
    return patches(logmel(y.astype(np.float32)))


def test_default_runtime_is_onnx():
    assert default_runtime() == "onnx"
    m = load_model()
    assert (m.runtime, m.precision) == ("onnx", "int8")
    assert load_model(runtime="tensorflow").precision == "float32"


@pytest.mark.parametrize("name", ["msd-musicnn", "mtt-musicnn"])
def test_int8_stays_within_the_stated_tolerance(name, logmel_patches):
    from recommender.models import INT8_EMBEDDING_MIN_COSINE, INT8_PROB_ATOL

    fixture = os.path.join(ROOT, "tests", "fixtures", "musicnn_reference.npz")
    with np.load(fixture, allow_pickle=False) as npz:
        P = np.concatenate([npz["patches"], logmel_patches]).astype(np.float32)
    p8, e8 = load_model(name, precision="int8").predict_patches(P)
    p32, e32 = load_model(name, precision="float32").predict_patches(P)
    assert np.abs(p8 - p32).max() <= INT8_PROB_ATOL
    assert np.abs(p8 - p32).max() > 0  # it is really another computation
    cos = (e8 * e32).sum(1) / np.linalg.norm(e8, axis=1) / np.linalg.norm(e32, axis=1)
    assert cos.min() >= INT8_EMBEDDING_MIN_COSINE
    # the ranking of tags barely moves: the top tag of each patch is kept
    # unless the float32 runner-up was within the tolerance
    top8, top32 = p8.argmax(1), p32.argmax(1)
    gap = np.sort(p32, axis=1)[:, -1] - np.sort(p32, axis=1)[:, -2]
    assert np.all((top8 == top32) | (gap <= 2 * INT8_PROB_ATOL))


def test_int8_graph_has_integer_products_and_full_input_range():
    import onnx

    from recommender.models.onnx_graph import _LOGMEL_MAX

    m = onnx.load_from_string(build_onnx(_weights(), n_tags=50, precision="int8"))
    ops = [n.op_type for n in m.graph.node]
    # the five front-end convolutions (2 timbral, 3 temporal) are integer products;
    # only the three mid-end convolutions stay float32
    assert ops.count("MatMulInteger") == 5 and ops.count("QuantizeLinear") == 5
    assert ops.count("Conv") == 3
    # the largest log-mel value the front end can produce is not clipped
    assert _LOGMEL_MAX == pytest.approx(np.log10(10000 * 65504.0 + 1))
    with pytest.raises(ParameterError, match="precision"):
        build_onnx(_weights(), n_tags=50, precision="int4")
    with pytest.raises(ParameterError, match="float32"):
        load_model(runtime="tensorflow", precision="int8")


def test_pool_output_matches_keras_pool_layer(logmel_patches):
    import keras
    import onnxruntime as ort

    P = logmel_patches
    k = load_model(runtime="tensorflow").keras_model
    ref_pool = keras.Model(k.input, k.get_layer("pool").output)(P, training=False).numpy()
    sess = ort.InferenceSession(build_onnx(_weights(), n_tags=50), providers=["CPUExecutionProvider"])
    probs, emb, pool = sess.run(["probabilities", "penultimate", "pool"], {"logmel": P})
    assert pool.shape == (len(P), 1506)
    np.testing.assert_allclose(pool, ref_pool, rtol=0, atol=1e-4 * max(1.0, np.abs(ref_pool).max()))
    # the pool vector interleaves max and mean per channel: max >= mean everywhere
    assert np.all(pool[:, 0::2] >= pool[:, 1::2] - 1e-5)


def test_batching_does_not_change_results(logmel_patches):
    m = load_model()
    P = logmel_patches
    a = m.predict_patches(P, batch_size=1)
    b = m.predict_patches(P, batch_size=3)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
    probs, emb = m.predict_patches(P[:0])
    assert probs.shape == (0, 50) and emb.shape == (0, 200)


def test_graph_is_deterministic():
    w = _weights("mtt_musicnn")
    assert build_onnx(w, n_tags=50) == build_onnx(w, n_tags=50)


def test_graph_builder_names_the_weights_on_error():
    w = _weights()
    del w["midend_conv2/kernel"]
    with pytest.raises(ModelError, match="midend_conv2/kernel") as ei:
        build_onnx(w, n_tags=50, source="/some/weights.npz")
    assert ei.value.path == "/some/weights.npz"
    with pytest.raises(ModelError, match="n_tags"):
        build_onnx(_weights(), n_tags=10)


def test_bad_runtime_is_refused():
    with pytest.raises(ParameterError, match="runtime"):
        load_model(runtime="torch")


def test_inference_does_not_import_tensorflow(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from recommender.models import load_model\n"
        "m = load_model()\n"
        "p, e = m.predict_patches(np.zeros((3, 187, 96), np.float32))\n"
        "assert p.shape == (3, 50) and e.shape == (3, 200)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_concurrent_single_threaded_runs_give_the_same_outputs(logmel_patches, monkeypatch):
    """``threads`` workers run pieces of a batch at once; the result does not depend on it."""
    m = load_model()
    P = np.concatenate([logmel_patches] * 6)[:11]  # one full batch of 8 and a rest of 3
    monkeypatch.setattr(m, "_workers", 1)
    ref = m.predict_patches(P, with_pool=True)
    one = [m.predict_patches(P[i : i + 1]) for i in range(len(P))]
    monkeypatch.setattr(m, "_workers", 2)
    for got in (m.predict_patches(P, with_pool=True), m.predict_patches(P[:8], batch_size=8, with_pool=True)):
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b[: len(a)], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([o[1] for o in one]), ref[1], rtol=0, atol=1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_concurrent_runs_work_in_a_forked_child(logmel_patches):
    m = load_model()
    ref = m.predict_patches(logmel_patches[:3])[1]  # the parent's worker threads exist now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's pool threads are gone
        try:
            got = m.predict_patches(logmel_patches[:3])[1]
            os.write(w, b"ok" if np.allclose(got, ref, atol=1e-6) else b"bad")
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 8) == b"ok" and status == 0


def test_threads_are_shared_by_two_runs_at_once():
    from recommender.models.tagmodel import _onnx_threads

    assert _onnx_threads(1) == (1, 1)
    assert _onnx_threads(2) == (2, 1)  # this machine's case: single-threaded runs side by side
    assert _onnx_threads(16) == (2, 8)
    assert _onnx_threads(3) == (2, 1)
