import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def demo_collection(tmp_path_factory):
    """8 short synthetic tracks in 4 clearly different styles (2 per style)."""
    from recommender.io.demo import make_demo_collection

    root = tmp_path_factory.mktemp("music")
    paths = make_demo_collection(root, per_style=2, duration_s=9.0)
    return root, paths


#: Tracks of the :func:`vector_index` fixture.
VECTOR_INDEX_TRACKS = 300


@pytest.fixture(scope="session")
def vector_index(tmp_path_factory):
    """An index of 300 tracks with random vectors around 10 centres (no audio), its FAISS files
    and neighbour lists written by ``rebuild_indexes``: for the search and server paths."""
    root = tmp_path_factory.mktemp("vectors") / "idx"
    root.mkdir()
    return write_vector_index(root, VECTOR_INDEX_TRACKS)


def write_vector_index(root, n):
    """:func:`vector_index`'s catalog and indexes, of ``n`` tracks, in the folder ``root``."""
    from recommender import Recommender
    from recommender.store.catalog import Catalog

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(10, 200)).astype(np.float32)
    with Catalog(root / "catalog.sqlite", mode="c") as cat:
        cat.check_compatible(model_name="msd-musicnn", weights_sha256="0" * 64, dims={"embedding": 200, "tags": 5})
        cat.set_meta(tags=[f"t{i}" for i in range(5)])
        with cat.write_batch():
            for i in range(n):
                cat.add_track({"path": f"/m/a{i % 7}/{i:04d}.ogg", "size": 10 + i, "mtime_ns": 1 + i,
                               "content_hash": f"{i // 2:032x}" if i < 20 else f"{i:032x}",
                               "artist": f"A{i % 7}", "album": f"B{i % 13}", "title": f"T{i}"},
                              vectors={"embedding": centres[i % 10] + 0.7 * rng.normal(size=200).astype(np.float32),
                                       "tags": rng.random(5).astype(np.float32)},
                              descriptors={"tempo_bpm": 60.0 + i % 100, "key": "CDEFGAB"[i % 7], "mode": "minor",
                                           "loudness_db": -10.0})
        Recommender(root).rebuild_indexes(catalog=cat)
    return root


def write_bad_files(folder):
    """Broken files of several kinds; returns {path: what it is}."""
    import soundfile as sf

    os.makedirs(folder, exist_ok=True)
    bad = {}
    p = os.path.join(folder, "empty.mp3")
    open(p, "wb").close()
    bad[p] = "zero bytes"
    p = os.path.join(folder, "notes.flac")
    with open(p, "w") as f:
        f.write("this is not audio\n" * 50)
    bad[p] = "text"
    p = os.path.join(folder, "random.ogg")
    with open(p, "wb") as f:
        f.write(np.random.default_rng(0).bytes(5000))
    bad[p] = "random bytes"
    good = os.path.join(folder, "_tmp.flac")
    t = np.arange(16000 * 4) / 16000
    sf.write(good, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000)
    data = open(good, "rb").read()
    os.remove(good)
    p = os.path.join(folder, "truncated.flac")
    with open(p, "wb") as f:
        f.write(data[:60])
    bad[p] = "truncated header"
    return bad
