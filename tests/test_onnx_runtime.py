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


def _music_like(seed, seconds=40.0, sr=16000):
    """A synthetic song: drums, bass, chords and a lead over sections from digital silence to clipping.

    Real music spans the log-mel range far more than a tone in noise: near
    zero in silence and band-limited passages, above 6 when loud.  The int8
    front end shipped before GPTQ rounding and the calibrated input range
    (issue #20) gave tag probabilities 0.0255 (msd) / 0.0256 (mtt) away from
    float32 on these songs, outside the stated 0.02, where the tone in
    noise above stayed within it.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n)

    def add(start, dur, decay, wave):  # wave(t) over the segment, decaying exponentially
        i0 = int(start * sr)
        tt = np.arange(min(n - i0, int(dur * sr))) / sr
        if len(tt):
            y[i0:i0 + len(tt)] += wave(tt) * np.exp(-tt / decay)

    def tone(f0, partials, bright):
        ph = rng.uniform(0, 2 * np.pi, partials)
        return lambda tt: sum(np.sin(2 * np.pi * f0 * k * tt + ph[k - 1]) / k ** (1.5 / bright)
                              for k in range(1, partials + 1) if f0 * k < sr / 2)

    beat = 60.0 / rng.uniform(80, 160)
    root = rng.choice([110.0, 130.8, 146.8, 164.8])
    for i in range(int(seconds / beat)):
        s0, fr = i * beat, root * 2 ** ((0, 5, 7, 3)[(i // 4) % 4] / 12)
        if i % 2 == 0:  # kick: a falling sine
            add(s0, 0.3, 0.08, lambda tt: 0.8 * np.sin(2 * np.pi * (50 * tt + 2 * (1 - np.exp(-30 * tt)))))
        else:  # snare: a noise burst
            add(s0, 0.2, 0.05, lambda tt: 0.4 * rng.normal(size=tt.size))
        add(s0 + beat / 2, 0.05, 0.01, lambda tt: 0.1 * rng.normal(size=tt.size))  # hi-hat
        add(s0, beat, beat, tone(fr / 2, 4, 1.0))  # bass
        if i % 4 == 0:  # a chord per bar
            for iv in (0, 4, 7):
                add(s0, 4 * beat, 2.0, tone(fr * 2 ** (iv / 12), 10, rng.uniform(0.5, 2.0)))
        if rng.random() < 0.6:  # lead
            add(s0, beat / 2, 0.2, tone(fr * 4 * 2 ** (rng.choice([0, 2, 4, 7, 9]) / 12), 6, 2.0))
    t = np.arange(n) / sr
    gain = np.interp(t, [0, 2, 2.01, 8, 14, 22, 30, seconds], [0, 0, 0.001, 0.05, 0.3, 1.5, 0.02, 0.005])
    return np.clip(y / np.abs(y).max() * gain * 3, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def music_patches():
    from recommender.features import logmel, patches

    return np.concatenate([patches(logmel(_music_like(seed))) for seed in range(4)]).astype(np.float32)


def test_default_runtime_is_onnx():
    assert default_runtime() == "onnx"
    m = load_model()
    assert (m.runtime, m.precision) == ("onnx", "int8")
    assert load_model(runtime="tensorflow").precision == "float32"


@pytest.mark.parametrize("name", ["msd-musicnn", "mtt-musicnn"])
def test_int8_stays_within_the_stated_tolerance(name, logmel_patches, music_patches):
    from recommender.models import INT8_EMBEDDING_MIN_COSINE, INT8_PROB_ATOL

    fixture = os.path.join(ROOT, "tests", "fixtures", "musicnn_reference.npz")
    with np.load(fixture, allow_pickle=False) as npz:
        P = np.concatenate([npz["patches"], logmel_patches, music_patches]).astype(np.float32)
    assert P.max() > 6.0 and (P < 0.01).mean() > 0.1  # loud and near-silent: the whole range music uses
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


def test_int8_graph_has_integer_products_and_calibrated_input_range():
    import onnx

    from recommender.models.onnx_graph import (
        _LOGMEL_MAX,
        _bn_affine,
        _input_quantisation,
        load_calibration,
    )

    m = onnx.load_from_string(build_onnx(_weights(), n_tags=50, precision="int8"))
    ops = [n.op_type for n in m.graph.node]
    # the five front-end convolutions (2 timbral, 3 temporal) are integer products;
    # only the three mid-end convolutions stay float32
    assert ops.count("MatMulInteger") == 5 and ops.count("QuantizeLinear") == 5
    assert ops.count("Conv") == 3
    # the input range: from digital silence (log-mel 0) to the calibrated top, a
    # high quantile of real music well below the largest value the front end can produce
    cal = load_calibration()
    assert 5.0 < float(cal["logmel_hi"]) < _LOGMEL_MAX - 1.0
    for name in ("msd_musicnn", "mtt_musicnn"):
        w = _weights(name)
        sx, zp = _input_quantisation(w, cal)
        a, b = (float(v[0]) for v in _bn_affine(w, "input_bn"))
        # levels cover log-mel [0, logmel_hi], by at most one step more at either end
        assert b - sx <= (0 - zp) * sx <= b
        assert a * float(cal["logmel_hi"]) + b <= (255 - zp) * sx <= a * float(cal["logmel_hi"]) + b + sx
        assert 0 < zp < 255  # and 0 (the time padding) a level of its own
    with pytest.raises(ParameterError, match="precision"):
        build_onnx(_weights(), n_tags=50, precision="int4")
    with pytest.raises(ParameterError, match="float32"):
        load_model(runtime="tensorflow", precision="int8")


def _run_graph(model_bytes, P):
    import onnxruntime as ort

    from recommender.models.onnx_graph import OUTPUTS

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return sess.run(list(OUTPUTS), {"logmel": P})


def test_int8_graph_leaves_dead_filters_out_with_the_same_outputs(logmel_patches, music_patches, monkeypatch):
    """Front-end filters trained to ~1e-30 weights are constants: the int8 graph
    computes only the others, and gives what computing every filter gives."""
    import onnx

    from recommender.models import onnx_graph

    def product_columns(model_bytes):  # columns of the five int8 weight matrices
        m = onnx.load_from_string(model_bytes)
        return sum(i.dims[1] for i in m.graph.initializer if i.name.endswith("_q/W"))

    P = np.concatenate([logmel_patches, music_patches[::3]])
    for name, most in (("msd_musicnn", 0.2), ("mtt_musicnn", 0.6)):
        w = _weights(name)
        pruned = build_onnx(w, n_tags=50, precision="int8")
        with monkeypatch.context() as mp:
            mp.setattr(onnx_graph, "_DEAD_FILTER", -1.0)  # every filter live
            full = build_onnx(w, n_tags=50, precision="int8")
        assert product_columns(pruned) < most * product_columns(full)
        for got, ref in zip(_run_graph(pruned, P), _run_graph(full, P)):
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * max(1.0, np.abs(ref).max()))

    # a branch without one live filter is left out whole; still the float32 network within tolerance
    from recommender.models import INT8_EMBEDDING_MIN_COSINE, INT8_PROB_ATOL

    w = _weights()
    w["temporal_s1_conv/kernel"] = np.zeros_like(w["temporal_s1_conv/kernel"])
    int8 = build_onnx(w, n_tags=50, precision="int8")
    assert [n.op_type for n in onnx.load_from_string(int8).graph.node].count("MatMulInteger") == 4
    (p8, e8, _), (p32, e32, _) = _run_graph(int8, P), _run_graph(build_onnx(w, n_tags=50), P)
    assert np.abs(p8 - p32).max() <= INT8_PROB_ATOL
    assert ((e8 * e32).sum(1) / np.linalg.norm(e8, axis=1) / np.linalg.norm(e32, axis=1)).min() \
        >= INT8_EMBEDDING_MIN_COSINE


def test_calibration_errors_name_the_file(tmp_path):
    from recommender.models.onnx_graph import load_calibration

    missing = str(tmp_path / "none.npz")
    with pytest.raises(ModelError, match="not found") as ei:
        load_calibration(missing)
    assert ei.value.path == missing
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(96), cross=np.zeros((7, 96, 96)), lag=np.zeros(64), logmel_hi=6.0)
    with pytest.raises(ModelError, match="'lag' has shape") as ei:
        load_calibration(str(bad))
    assert ei.value.path == str(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="cannot read"):
        load_calibration(str(tmp_path / "junk.npz"))


def test_gptq_rounding_keeps_filter_outputs_closer_than_nearest():
    from recommender.models.onnx_graph import _gptq_round

    rng = np.random.default_rng(0)
    # correlated inputs with a mean, like neighbouring log-mel bins and frames
    x = np.cumsum(rng.normal(size=(4000, 60)), axis=1) * 0.2 + 1.0
    wt = rng.normal(size=(60, 12)) * 0.05
    sw = np.abs(wt).max(0) / 127
    hess = x.T @ x / len(x)
    q = _gptq_round(wt, sw, hess)
    assert q.dtype == np.float64 and np.all(np.abs(q) <= 127) and np.all(q == np.round(q))
    nearest = np.round(wt / sw)
    err_gptq = np.mean((x @ (wt - q * sw)) ** 2)
    err_nearest = np.mean((x @ (wt - nearest * sw)) ** 2)
    assert err_gptq < 0.5 * err_nearest
    assert np.abs(q - nearest).max() >= 1  # it moved weights off their nearest level


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
