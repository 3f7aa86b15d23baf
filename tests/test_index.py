"""Tests of recommender.store.faiss_index: cosine search, ids, recall, save/load validation."""

import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

import recommender.store.faiss_index as rindex
from recommender.errors import IndexFileError, NotInIndexError, ParameterError, RecommenderError
from recommender.store.faiss_index import StaleIndexError, VectorIndex, choose_index, ids_checksum

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def clustered(n, d=64, *, n_clusters=20, intrinsic=8, nq=0, seed=0):
    """Gaussian clusters with a low intrinsic dimension, like real embeddings."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    basis = rng.normal(size=(n_clusters, intrinsic, d)) / np.sqrt(d)
    lab = rng.integers(n_clusters, size=n + nq)
    z = rng.normal(size=(n + nq, intrinsic)) * 0.6
    X = centers[lab] + np.einsum("nr,nrd->nd", z, basis[lab]) + rng.normal(size=(n + nq, d)) * 0.02
    X = X.astype(np.float32)
    return (X[:n], X[n:]) if nq else X


def exact(X, Q, ids, k):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    S = Qn.astype(np.float64) @ Xn.T.astype(np.float64)
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, order, axis=1), ids[order]


def recall(I, ref):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(I, ref)])


def _bytes(p):
    with open(p, "rb") as fh:
        return fh.read()


# ----------------------------------------------------------------- choose
def test_choose_index_thresholds():
    assert choose_index(0, 200) == "flat"
    assert choose_index(49_999, 200) == "flat"
    assert choose_index(50_000, 200) == "hnsw"
    assert choose_index(4_999_999, 200) == "hnsw"
    assert choose_index(5_000_000, 200) == "ivfpq"
    with pytest.raises(ParameterError, match="n=-1"):
        choose_index(-1, 200)
    with pytest.raises(ParameterError, match="d=0"):
        choose_index(10, 0)


# ----------------------------------------------------------------- search
def test_flat_cosine_scores_and_ids_match_numpy():
    X, Q = clustered(3000, nq=50, seed=1)
    X = X * np.random.default_rng(0).uniform(0.1, 10, size=(3000, 1)).astype(np.float32)  # norms vary
    ids = np.arange(3000, dtype=np.int64) * 7 + 3
    index = VectorIndex.build(ids, X.astype(np.float64))  # any float dtype is coerced
    assert index.kind == "flat" and len(index) == index.ntotal == 3000 and index.dim == 64
    D, I = index.search(Q, 10)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (50, 10)
    S, ref = exact(X, Q, ids, 10)
    np.testing.assert_allclose(D, S, atol=1e-5)
    np.testing.assert_array_equal(I, ref)
    # a single 1-D query, non-contiguous input
    D1, I1 = index.search(np.asfortranarray(Q[:3])[1], 10)
    np.testing.assert_array_equal(I1[0], I[1])
    # k larger than n pads with -1 / -inf
    small = VectorIndex.build([5, 9], X[:2], kind="flat")
    D2, I2 = small.search(X[0], 4)
    assert I2.tolist() == [[5, 9, -1, -1]] and np.isneginf(D2[0, 2:]).all()
    assert D2[0, 0] == pytest.approx(1.0, abs=1e-6)
    # empty index
    D3, I3 = VectorIndex(64, kind="flat").search(Q[:2], 3)
    assert (I3 == -1).all() and np.isneginf(D3).all()


def test_reconstruct_ids_add_remove():
    X = clustered(500, d=16, seed=2)
    ids = np.arange(500) * 2
    index = VectorIndex.build(ids, X, kind="flat")
    v = index.reconstruct(10)
    np.testing.assert_allclose(v, X[5] / np.linalg.norm(X[5]), rtol=1e-6)
    with pytest.raises(NotInIndexError):
        index.reconstruct(11)
    np.testing.assert_array_equal(index.ids(), ids)
    index.add([1001, 1003], X[:2])
    assert len(index) == 502
    assert index.search(X[0], 2)[1][0].tolist() in ([0, 1001], [1001, 0])
    assert index.remove([1001, 1003, 77777]) == 2 and len(index) == 500
    with pytest.raises(ParameterError, match="already in the index"):
        index.add([0], X[:1])
    hnsw = VectorIndex.build(ids, X, kind="hnsw")
    hnsw.add([5001], X[:1])
    assert 5001 in hnsw.search(X[0], 3)[1][0]
    with pytest.raises(RecommenderError, match="rebuild"):
        hnsw.remove([0])


def test_input_validation():
    X = clustered(100, d=8)
    with pytest.raises(ParameterError, match="duplicates"):
        VectorIndex.build([1] * 100, X)
    with pytest.raises(ParameterError, match="negative"):
        VectorIndex.build(np.arange(100) - 1, X)
    with pytest.raises(ParameterError, match=r"expected \(100,\)"):
        VectorIndex.build(np.arange(99), X)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        VectorIndex.build(np.arange(100), bad)
    with pytest.raises(ParameterError, match="dtype"):
        VectorIndex.build(np.arange(100) + 0.5, X)
    index = VectorIndex.build(np.arange(100), X)
    with pytest.raises(ParameterError, match="Q has dim 9"):
        index.search(np.ones((1, 9)), 3)
    for k in (0, -1, 2.5, True):
        with pytest.raises(ParameterError, match="k="):
            index.search(X[:1], k)
    with pytest.raises(ParameterError, match="kind='annoy'"):
        VectorIndex(8, kind="annoy")
    with pytest.raises(ParameterError, match="metric"):
        VectorIndex(8, metric="l2")
    with pytest.raises(ParameterError, match="unknown parameter"):
        VectorIndex(8, kind="flat", ef_search=10)
    with pytest.raises(ParameterError, match="ivfpq.*at least 1000"):
        VectorIndex.build(np.arange(100), X, kind="ivfpq")


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_recall_vs_flat(kind):
    X, Q = clustered(6000, d=64, n_clusters=30, nq=200, seed=3)
    ids = np.arange(6000, dtype=np.int64) + 100
    flat = VectorIndex.build(ids, X, kind="flat")
    ann = VectorIndex.build(ids, X, kind=kind, random_state=0)
    assert ann.kind == kind
    Df, If = flat.search(Q, 10)
    D, I = ann.search(Q, 10)
    r = recall(I, If)
    assert r >= 0.95, f"{kind} recall@10 {r:.3f}"
    # scores of found neighbours are true cosines (exact re-ranking / flat storage)
    found = I[:, 0] == If[:, 0]
    np.testing.assert_allclose(D[found, 0], Df[found, 0], atol=1e-4)


# -------------------------------------------------------------- save/load
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_save_load_save_byte_identical(tmp_path, kind):
    X, Q = clustered(2000, d=32, nq=20, seed=4)
    ids = np.arange(2000, dtype=np.int64) * 3
    index = VectorIndex.build(ids, X, kind=kind)
    a = tmp_path / "a.faiss"
    b = tmp_path / "b.faiss"
    index.save(a, meta={"space": "embedding", "generation": 12})
    loaded = VectorIndex.load(a, expected_dim=32, expected_generation=12)
    assert (loaded.kind, loaded.dim, len(loaded)) == (kind, 32, 2000)
    assert loaded.params == index.params
    loaded.save(b, meta={"space": "embedding", "generation": 12})
    assert _bytes(a) == _bytes(b)
    assert _bytes(str(a) + ".json") == _bytes(str(b) + ".json")
    D0, I0 = index.search(Q, 5)
    D1, I1 = loaded.search(Q, 5)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    side = json.loads(_bytes(str(a) + ".json"))
    assert side["ids_sha256"] == ids_checksum(ids[::-1])  # order-independent
    assert side["space"] == "embedding" and side["n"] == 2000 and side["kind"] == kind
    assert sorted(os.listdir(tmp_path)) == ["a.faiss", "a.faiss.json", "b.faiss", "b.faiss.json"]


@pytest.fixture
def saved(tmp_path):
    X = clustered(1000, d=200, seed=5)
    index = VectorIndex.build(np.arange(1000), X, kind="flat")
    p = tmp_path / "embedding.faiss"
    index.save(p, meta={"space": "embedding", "generation": 3})
    return p


@pytest.fixture
def no_faiss_read(monkeypatch):
    """Fail the test if FAISS is asked to parse the file."""
    calls = []
    real = rindex.faiss.read_index

    def spy(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(rindex.faiss, "read_index", spy)
    return calls


def _check_unchanged(p, before):
    assert _bytes(p) == before[0]
    assert _bytes(str(p) + ".json") == before[1]


def _snap(p):
    return _bytes(p), _bytes(str(p) + ".json")


def test_load_dim_and_generation_mismatch(saved, no_faiss_read):
    before = _snap(saved)
    with pytest.raises(IndexFileError, match="has dim 200, expected 50"):
        VectorIndex.load(saved, expected_dim=50)
    with pytest.raises(StaleIndexError, match="generation 3.*generation 4") as exc:
        VectorIndex.load(saved, expected_generation=4)
    assert (exc.value.found_generation, exc.value.expected_generation) == (3, 4)
    assert isinstance(exc.value, IndexFileError)
    assert no_faiss_read == []  # decided from the sidecar alone
    _check_unchanged(saved, before)
    assert len(VectorIndex.load(saved, expected_dim=200, expected_generation=3)) == 1000


def test_pickle_renamed_as_index(tmp_path, saved, no_faiss_read):
    evil = tmp_path / "evil.faiss"
    evil.write_bytes(pickle.dumps({"__reduce__": "os.system"}, protocol=4))
    before = _bytes(evil)
    with pytest.raises(IndexFileError, match="sidecar .* missing"):
        VectorIndex.load(evil)
    shutil.copy(str(saved) + ".json", str(evil) + ".json")  # a real sidecar next to it
    with pytest.raises(IndexFileError, match="does not match its sidecar"):
        VectorIndex.load(evil)
    assert no_faiss_read == []
    assert _bytes(evil) == before


def test_truncated_and_flipped_files(saved, no_faiss_read):
    data, side = _snap(saved)
    for bad in (data[: len(data) // 2], data[:40], b"", data[:100] + bytes([data[100] ^ 1]) + data[101:]):
        saved.write_bytes(bad)
        with pytest.raises(IndexFileError, match="does not match its sidecar"):
            VectorIndex.load(saved)
        assert _bytes(saved) == bad
    assert no_faiss_read == []
    saved.write_bytes(data)
    os.remove(str(saved) + ".json")
    with pytest.raises(IndexFileError, match="sidecar .* missing"):
        VectorIndex.load(saved)
    for junk in (b"{not json", b"[1, 2]", json.dumps({"format": "recommender-faiss/1", "dim": "x"}).encode()):
        with open(str(saved) + ".json", "wb") as fh:
            fh.write(junk)
        with pytest.raises(IndexFileError, match="sidecar"):
            VectorIndex.load(saved)
    os.remove(saved)
    with open(str(saved) + ".json", "wb") as fh:
        fh.write(side)
    with pytest.raises(IndexFileError, match="missing"):
        VectorIndex.load(saved)


def test_forged_sidecar_header_checked(tmp_path, saved, no_faiss_read):
    """Garbage with a sidecar that matches its hash still never reaches FAISS."""
    garbage = tmp_path / "g.faiss"
    garbage.write_bytes(os.urandom(5000))
    side = json.loads(_bytes(str(saved) + ".json"))
    import hashlib

    side.update(faiss_sha256=hashlib.sha256(_bytes(garbage)).hexdigest(), faiss_size=5000)
    with open(str(garbage) + ".json", "w") as fh:
        json.dump(side, fh)
    with pytest.raises(IndexFileError, match="header"):
        VectorIndex.load(garbage)
    assert no_faiss_read == []


def test_interrupted_save_detected(tmp_path):
    """New FAISS file + old sidecar (crash between the two replaces) is refused."""
    X = clustered(500, d=16, seed=6)
    p = tmp_path / "e.faiss"
    VectorIndex.build(np.arange(500), X).save(p, meta={"generation": 1})
    old_side = _bytes(str(p) + ".json")
    VectorIndex.build(np.arange(400), X[:400]).save(p, meta={"generation": 2})
    with open(str(p) + ".json", "wb") as fh:
        fh.write(old_side)
    with pytest.raises(IndexFileError, match="does not match its sidecar"):
        VectorIndex.load(p, expected_generation=1)
    # and a stale pair is reported as stale before anything is read
    VectorIndex.build(np.arange(500), X).save(p, meta={"generation": 1})
    with pytest.raises(StaleIndexError):
        VectorIndex.load(p, expected_generation=2)
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_save_meta_validation(tmp_path):
    index = VectorIndex.build(np.arange(10), clustered(10, d=4))
    with pytest.raises(ParameterError, match="reserved"):
        index.save(tmp_path / "x.faiss", meta={"dim": 3})
    with pytest.raises(RecommenderError):
        VectorIndex(4).save(tmp_path / "y.faiss")


def test_faiss_garbage_does_not_crash_process(tmp_path):
    """Even called directly, FAISS's reader raises (not segfaults) on these inputs."""
    script = (
        "import sys, faiss\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        faiss.read_index(p)\n"
        "    except RuntimeError:\n"
        "        pass\n"
        "print('alive')\n"
    )
    X = clustered(300, d=16, seed=7)
    good = tmp_path / "good.faiss"
    VectorIndex.build(np.arange(300), X, kind="hnsw").save(good)
    data = _bytes(good)
    files = []
    for i, blob in enumerate([pickle.dumps([1, 2, 3]), b"", data[:50], data[: len(data) // 2], os.urandom(4096)]):
        f = tmp_path / f"bad{i}.faiss"
        f.write_bytes(blob)
        files.append(str(f))
    out = subprocess.run([sys.executable, "-c", script, *files], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "alive" in out.stdout


def test_no_tensorflow_import():
    code = (
        "import sys, recommender.store.catalog, recommender.store.faiss_index\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
