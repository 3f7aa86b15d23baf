import contextlib
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


@contextlib.contextmanager
def serving(index_dir, log_path, *options, timeout_s=90.0):
    """A real ``recommender serve --index index_dir *options`` on a free loopback port, its
    output in ``log_path``; yields ``(base URL ending in '/', log file)`` once ``/api/info``
    answers (the test fails with the log if it exits or does not answer in ``timeout_s``)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(log_path, "w+")
    proc = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", str(index_dir),
                             "--port", str(port), *options], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(url + "api/info", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"recommender serve did not start: {log.read()}")
                time.sleep(0.2)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


#: Sample rate of the synthesized test audio below (Hz).
SYNTH_SR = 16000


def click_track(bpm, seed, seconds=12.0, *, hihat=True):
    """Clicks on every beat (accented every 4th), a quiet drone, and (``hihat``) a soft hi-hat
    between beats: a track of known tempo ``bpm``, float32 at :data:`SYNTH_SR`."""
    sr = SYNTH_SR
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = 0.02 * np.sin(2 * np.pi * rng.uniform(80, 200) * np.arange(n) / sr)
    period = 60.0 / bpm * sr
    L = 200
    click = np.exp(-np.arange(L) / 25.0) * np.sin(2 * np.pi * 1500 * np.arange(L) / sr)
    for i, s in enumerate(np.arange(0.05 * sr, n - L, period).astype(int)):
        y[s : s + L] += (0.9 if i % 4 == 0 else 0.6) * click
        h = int(s + period / 2)
        if hihat and h + 120 < n:
            y[h : h + 120] += 0.08 * rng.normal(size=120) * np.exp(-np.arange(120) / 20.0)
    return (y / np.abs(y).max() * 0.8).astype(np.float32)


def gain_track(gain_db, seed, seconds=6.0):
    """A gated tone + noise at a known gain (dB below full scale), float32 at :data:`SYNTH_SR`."""
    sr = SYNTH_SR
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.3 * rng.normal(size=n) * (np.sin(2 * np.pi * 2 * t) > 0)
    return (y / np.abs(y).max() * 0.9 * 10 ** (gain_db / 20)).astype(np.float32)


def mixture(has, seed, seconds=6.0):
    """A mixture of known instruments, float32 at :data:`SYNTH_SR`: ``has`` flags (bass, hats[, kick])."""
    sr = SYNTH_SR
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.002 * rng.normal(size=n)
    if has[0]:  # sine bass: notes of 40-90 Hz, 0.5 s each
        f = rng.uniform(40, 90, size=int(seconds * 2) + 1)[(t * 2).astype(int)]
        y += 0.5 * np.sin(2 * np.pi * np.cumsum(f) / sr)
    if has[1]:  # noise hats: high-passed noise bursts on eighth notes
        step = int(sr * rng.uniform(0.18, 0.26))
        for s in range(0, n - 800, step):
            b = rng.normal(size=800) * np.exp(-np.arange(800) / 120.0)
            y[s : s + 800] += 0.35 * np.diff(b, prepend=0)
    if len(has) > 2 and has[2]:  # click kick: a decaying 55-Hz thump with a click on quarter notes
        step = int(sr * rng.uniform(0.45, 0.6))
        k = np.arange(2400)
        kick = np.sin(2 * np.pi * (55 + 90 * np.exp(-k / 300.0)) * k / sr) * np.exp(-k / 700.0)
        kick[:40] += np.sign(rng.normal(size=40)) * 0.8
        for s in range(0, n - 2400, step):
            y[s : s + 2400] += 0.7 * kick
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def write_mix_csv(folder, instruments, combos, rounds):
    """``rounds`` x ``combos`` :func:`mixture` files in ``folder`` and their ``mix.csv``
    (``path,labels``, labels ';'-separated); returns the CSV's path."""
    import soundfile as sf

    rows = []
    for r in range(rounds):
        for ci, c in enumerate(combos):
            name = f"m{r}{ci}.wav"
            sf.write(folder / name, mixture(c, 10 * r + ci), SYNTH_SR)
            rows.append(name + "," + ";".join(i for i, h in zip(instruments, c) if h))
    (folder / "mix.csv").write_text("path,labels\n" + "\n".join(rows) + "\n")
    return folder / "mix.csv"


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
