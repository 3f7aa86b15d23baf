"""Scale properties: bounded memory while streaming, no TensorFlow on the
query path, and results that do not depend on the decode threads."""

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from recommender import features
from recommender.analysis import PipelineStats, analyze_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _StubModel:
    """Deterministic stand-in for the CNN: a patch's outputs depend on it alone."""

    name = "stub"
    batch_size = 8
    n_tags = 3
    embedding_dim = 4

    def __init__(self):
        self.calls = []

    def predict_patches(self, P, *, batch_size=None):
        P = np.asarray(P, dtype=np.float32)
        self.calls.append(len(P))
        m = P.mean(axis=(1, 2))
        s = P.std(axis=(1, 2))
        probs = np.stack([m, s, P[:, :, :48].mean(axis=(1, 2))], axis=1)
        emb = np.stack([m, s, P[:, 0, :].mean(axis=1), P[:, -1, :].mean(axis=1)], axis=1)
        return probs.astype(np.float32), emb.astype(np.float32)


def _write_long(path, seconds, sr=16000):
    """A long 16-bit WAV written in chunks (never whole in memory)."""
    rng = np.random.default_rng(1)
    block = 10 * sr
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for i in range(0, int(seconds * sr), block):
            t = (i + np.arange(block)) / sr
            y = 0.3 * np.sin(2 * np.pi * (220 + 50 * np.sin(t / 7)) * t) + 0.05 * rng.standard_normal(block)
            f.write(y.astype(np.float32))
    return path


def _peak_alloc(path, sampling):
    model = _StubModel()
    tracemalloc.start()
    try:
        st = PipelineStats()
        (res,) = list(analyze_files([path], model=model, sampling=sampling, stats=st, block_patches=16))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, res


def test_streaming_memory_does_not_grow_with_length(tmp_path):
    short = _write_long(str(tmp_path / "short.wav"), 75)
    long = _write_long(str(tmp_path / "long.wav"), 600)  # 10 min: 38 MB as float32
    _peak_alloc(short, "full")  # imports and caches (librosa's mel basis...) out of the way
    peak_s, res_s = _peak_alloc(short, "full")
    peak_l, res_l = _peak_alloc(long, "full")
    assert res_l.n_patches == (1 + 600 * features.SR // features.HOP_LENGTH) // features.PATCH_FRAMES
    whole = 600 * features.SR * 4
    # bounded by a few decoded blocks, not by the file: well under the waveform
    assert peak_l < whole / 2, (peak_l, whole)
    # 8x the audio costs only the per-patch results (~100 bytes a patch here)
    assert peak_l < peak_s + 2e6, (peak_s, peak_l)


def test_results_do_not_depend_on_decode_threads(tmp_path, demo_collection):
    _, paths = demo_collection
    long = _write_long(str(tmp_path / "long.wav"), 200)
    files = list(paths) + [long]
    one = {r.path: r for r in analyze_files(files, model=_StubModel(), decode_threads=1, block_patches=16)}
    two = {r.path: r for r in analyze_files(files, model=_StubModel(), decode_threads=2, block_patches=16)}
    assert set(one) == set(two) == set(map(str, files))
    for p in one:
        np.testing.assert_array_equal(one[p].starts_s, two[p].starts_s)
        np.testing.assert_array_equal(one[p].patch_probs, two[p].patch_probs)
        np.testing.assert_array_equal(one[p].patch_embeddings, two[p].patch_embeddings)


def test_batches_are_full_and_cross_tracks(demo_collection):
    _, paths = demo_collection  # 8 tracks of 9 s: 3 patches each
    model = _StubModel()
    st = PipelineStats()
    res = list(analyze_files(paths, model=model, decode_threads=2, stats=st))
    assert len(res) == len(paths) and st.patches == 24
    # patches of several tracks share CNN calls: far fewer calls than tracks
    assert len(model.calls) < len(paths)
    assert st.cnn_s <= st.wall_s and 0 <= st.cnn_busy <= 1


def test_real_model_same_vectors_with_1_and_2_decode_threads(demo_collection):
    pytest.importorskip("tensorflow")
    from recommender.models import load_model

    _, paths = demo_collection
    m = load_model()
    one = {r.path: r for r in analyze_files(paths, model=m, decode_threads=1)}
    two = {r.path: r for r in analyze_files(paths, model=m, decode_threads=2)}
    for p in one:
        # batch composition differs between the runs; the per-patch maths does not
        np.testing.assert_allclose(one[p].embedding, two[p].embedding, rtol=0, atol=1e-5)
        np.testing.assert_allclose(one[p].probs, two[p].probs, rtol=0, atol=1e-6)


def test_similar_by_id_imports_no_tensorflow(tmp_path):
    """A query by id against an index (built here from synthetic vectors) never loads TF."""
    from recommender import features as F
    from recommender.store.catalog import Catalog
    from recommender.recommender import CATALOG_NAME, Recommender

    d = tmp_path / "idx"
    d.mkdir()
    rng = np.random.default_rng(0)
    with Catalog(str(d / CATALOG_NAME), mode="c") as cat:
        cat.check_compatible(model_name="msd-musicnn", weights_sha256="0" * 64, dims={"embedding": 200, "tags": 50})
        cat.set_meta(frontend=F.FRONTEND_PARAMS, tags=[f"tag{i}" for i in range(50)])
        with cat.write_batch():
            for i in range(300):
                cat.add_track({"path": f"/m/{i}.ogg", "artist": f"a{i % 7}", "title": f"t{i}"},
                              vectors={"embedding": rng.normal(size=200), "tags": rng.random(50)})
        Recommender(str(d)).rebuild_indexes(catalog=cat)
    code = (
        "import sys, json\n"
        "from recommender.cli import main\n"
        f"rc = main(['similar', '5', '--index', {str(d)!r}, '--json', '-k', '3'])\n"
        "rc2 = main(['info', '--index', " + repr(str(d)) + ", '--json'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert rc == 0 and rc2 == 0 and not bad, (rc, rc2, bad[:5])\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"rank": 1' in r.stdout


def test_descriptor_excerpts_come_from_the_cnn_windows(tmp_path, monkeypatch):
    """With a sampled track, the descriptors' excerpts are the middle of 4 of the
    CNN's windows and are not decoded a second time."""
    from recommender import descriptors
    from recommender.io import audio
    from recommender.analysis import Sampling, patch_starts
    from recommender.analysis.blocks import _descriptor_starts, _excerpt_windows

    assert _excerpt_windows(8, 4) == [1, 3, 4, 6] and _excerpt_windows(4, 4) == [0, 1, 2, 3]
    for k in range(4, 40):
        w = _excerpt_windows(k, 4)
        assert w == sorted(set(w)) and w == [k - 1 - j for j in reversed(w)]  # distinct, symmetric

    path = _write_long(tmp_path / "song.wav", 120.0, sr=44100)
    info = audio.info(path)
    sampling = Sampling.spread(8)
    starts = _descriptor_starts(info, sampling)
    first = (patch_starts(int(round(120.0 * features.SR)), sampling) - features.N_FFT // 2) / features.SR
    window_s = features.PATCH_WINDOW_SAMPLES / features.SR
    for s, j in zip(starts, [1, 3, 4, 6]):
        assert first[j] < s and s + 2.5 < first[j] + window_s
    assert _descriptor_starts(info, Sampling.full()) is None  # whole track: describe_file's excerpts

    decoded = {"frames": 0}
    real = audio._native_blocks

    def counting(inf, start=0, count=None):
        for b in real(inf, start, count):
            decoded["frames"] += len(b)
            yield b

    monkeypatch.setattr(audio, "_native_blocks", counting)
    (res,) = list(analyze_files([path], model=_StubModel(), sampling=sampling, descriptors=True))
    # 8 windows of ~3.4 s (with the resampler's margins) were decoded, nothing more
    assert decoded["frames"] < 8 * 3.5 * 44100
    expected = descriptors.describe_at(path, starts, 2.5)
    assert res.descriptors["duration_s"] == pytest.approx(10.0)
    for key in ("tempo_bpm", "mfcc_0_mean", "spectral_centroid_mean", "loudness_db"):
        assert res.descriptors[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9), key
