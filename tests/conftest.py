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
