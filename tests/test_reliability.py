"""Reliability: a messy collection, kills at random moments, concurrent
readers and writers, hostile files, and a full disk or read-only index."""

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import write_bad_files
from recommender import Recommender
from recommender.store.catalog import Catalog
from recommender.errors import CatalogError, IndexFileError, IndexLockedError, RecommenderError
from recommender.store.faiss_index import VectorIndex

SR = 22050


def _tone(seconds, sr=SR, freq=440.0, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))
    y = y.astype(np.float32)
    if channels > 1:
        y = np.stack([y * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)
    return y


def _write(path, y, sr=SR, **kw):
    with sf.SoundFile(path, "w", sr, 1 if y.ndim == 1 else y.shape[1], **kw) as f:
        for i in range(0, len(y), 16384):
            f.write(y[i : i + 16384])


def make_corpus(folder):
    """The bad-input corpus of the reliability issue.

    Returns (expected_ok, expected_fail): paths that must be indexed and paths
    that must be recorded as failures.
    """
    os.makedirs(folder, exist_ok=True)
    ok, fail = [], []
    j = lambda *p: os.path.join(folder, *p)  # noqa: E731
    # formats and sample types
    for sub in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        p = j(f"wav_{sub.lower()}.wav")
        _write(p, _tone(4, seed=len(ok)), subtype=sub)
        ok.append(p)
    for sr in (8000, 96000, 192000):
        p = j(f"rate_{sr}.flac" if sr <= 96000 else f"rate_{sr}.wav")
        _write(p, _tone(4, sr=sr, seed=sr), sr=sr)
        ok.append(p)
    for ch in (1, 2, 6):
        p = j(f"channels_{ch}.wav")
        _write(p, _tone(4, channels=ch, seed=ch), subtype="PCM_16")
        ok.append(p)
    p = j("silence.wav")
    _write(p, np.zeros(SR * 4, np.float32))
    ok.append(p)
    p = j("short_0.1s.wav")
    _write(p, _tone(0.1))
    ok.append(p)
    p = j("long_25min.flac")  # long: only the sampled windows are decoded
    _write(p, np.tile(_tone(10, sr=8000), 150), sr=8000)
    ok.append(p)
    for name in ("ünïcödé – 日本語.ogg", "with spaces and 'quotes\".wav", "semi;colon$dollar.flac"):
        p = j(name)
        _write(p, _tone(4, seed=len(name)), **({"format": "OGG", "subtype": "VORBIS"} if name.endswith(".ogg") else {}))
        ok.append(p)
    p = j("good.mp3")
    _write(p, _tone(6, seed=7), format="MP3", subtype="MPEG_LAYER_III")
    ok.append(p)
    # broken ones
    p = j("nan.wav")
    y = _tone(3)
    y[::7] = np.nan
    y[::11] = np.inf
    _write(p, y, subtype="FLOAT")
    fail.append(p)
    for ext, kw in (("mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
                    ("ogg", {"format": "OGG", "subtype": "VORBIS"}), ("flac", {})):
        full = j(f"_full.{ext}")
        _write(full, _tone(6, seed=3), **kw)
        data = open(full, "rb").read()
        os.remove(full)
        p = j(f"truncated_head.{ext}")  # only the first bytes: nothing decodable
        open(p, "wb").write(data[:40])
        fail.append(p)
        p = j(f"truncated_half.{ext}")  # half a file: decodes what is there
        open(p, "wb").write(data[: len(data) // 2])
        ok.append(p)
    fail += list(write_bad_files(j("broken")))
    os.makedirs(j("a directory.mp3"))  # walked into, holds nothing
    os.makedirs(j("loop"))
    os.symlink(j("loop"), j("loop", "again"))  # a symlink loop is not followed
    os.symlink(j("nowhere.wav"), j("dangling.wav"))
    fail.append(j("dangling.wav"))
    return ok, fail


def test_bad_input_corpus_is_indexed_or_recorded(tmp_path):
    ok, fail = make_corpus(str(tmp_path / "music"))
    rec = Recommender(tmp_path / "idx")
    rep = rec.update([tmp_path / "music"], progress=False)
    indexed = set(rec.tracks()["path"])
    failed = dict(zip(rec.failures()["path"], rec.failures()["reason"]))
    assert set(ok) <= indexed, f"not indexed: {set(ok) - indexed}; failures: {failed}"
    assert set(fail) <= set(failed), f"not recorded: {set(fail) - set(failed)}"
    assert not (indexed & set(failed))
    for p in fail:
        assert failed[p] and len(failed[p]) > 5
    assert rep.added == len(ok) and rep.failed == len(fail)
    # every indexed vector is finite and unit-normalisable
    _, X = rec.catalog.vectors("embedding")
    assert np.all(np.isfinite(X)) and np.all(np.linalg.norm(X, axis=1) > 0)
    # re-running is a no-op that skips the known failures
    rep2 = rec.update([tmp_path / "music"], progress=False)
    assert rep2.unchanged == len(ok) and rep2.skipped_failed == len(fail) - 1  # dangling link: found again
    assert rep2.added == rep2.updated == 0


def test_files_that_vanish_or_change_during_indexing(tmp_path, demo_collection, monkeypatch):
    src, _ = demo_collection
    music = tmp_path / "music"
    shutil.copytree(src, music)
    from recommender.analysis import blocks as analysis  # where the decode threads look it up

    victims = {str(music / "rock" / "rock_01.flac"): "vanish", str(music / "techno" / "techno_01.flac"): "change"}
    real = analysis._file_blocks

    def sabotaged(path, *a, **kw):
        what = victims.get(path)
        if what == "vanish":
            os.remove(path)
        elif what == "change":
            shutil.copy(music / "ballad" / "ballad_01.flac", path)
        return real(path, *a, **kw)

    monkeypatch.setattr(analysis, "_file_blocks", sabotaged)
    rec = Recommender(tmp_path / "idx")
    rep = rec.update([music], progress=False, descriptors=False)
    assert rep.added + rep.failed == 8
    monkeypatch.setattr(analysis, "_file_blocks", real)
    rep2 = rec.update([music], progress=False, descriptors=False)
    tracks = rec.tracks()
    paths = set(tracks["path"])
    assert str(music / "rock" / "rock_01.flac") not in paths
    changed = str(music / "techno" / "techno_01.flac")
    assert changed in paths
    # the changed file ends up with the vectors of its new content
    tid = int(tracks.index[tracks["path"] == changed][0])
    bid = int(tracks.index[tracks["path"] == str(music / "ballad" / "ballad_01.flac")][0])
    np.testing.assert_allclose(rec.vector(tid), rec.vector(bid), atol=1e-4)
    assert rep2.failed == 0


# ---------------------------------------------------------------------------- kills
_INDEX_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from recommender import Recommender
    import recommender.analysis.blocks as A
    import recommender.recommender as R
    R.COMMIT_EVERY_S = 0.2
    _real_blocks = A._file_blocks

    def _slow_blocks(*args, **kwargs):  # analysis is faster than the kills: keep files in flight
        time.sleep(0.25)
        yield from _real_blocks(*args, **kwargs)

    A._file_blocks = _slow_blocks
    Recommender(sys.argv[2]).update([sys.argv[1]], progress=False, descriptors=False)
    print("DONE")
    """
)


def _snapshot(index_dir):
    db = os.path.join(index_dir, "catalog.sqlite")
    if not os.path.exists(db):
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT id, path FROM tracks").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    n = 24
    for i in range(n):
        _write(str(music / f"t{i:02d}.wav"), _tone(3.5, freq=110 * (1 + i % 7), seed=i), subtype="PCM_16")
    idx = str(tmp_path / "idx")
    rng = random.Random(1234)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    seen: dict = {}
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen([sys.executable, "-c", _INDEX_SCRIPT, str(music), idx], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # kill at a random moment: sometimes while loading, mostly while indexing
        before = len(_snapshot(idx))
        deadline = time.monotonic() + rng.uniform(2.0, 20.0)
        target = before + rng.randint(1, 6)
        while time.monotonic() < deadline and proc.poll() is None and len(_snapshot(idx)) < target:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        snap = _snapshot(idx)
        for tid, path in seen.items():
            assert snap.get(tid) == path, "a track analysed before a kill was lost or changed id"
        seen.update(snap)
        if len(snap) == n:
            break
    assert kills >= 3
    out = subprocess.run([sys.executable, "-c", _INDEX_SCRIPT, str(music), idx], env=env,
                         capture_output=True, text=True, timeout=600)
    assert "DONE" in out.stdout, out.stderr
    rec = Recommender(idx)
    tr = rec.tracks()
    assert len(tr) == n and tr["path"].is_unique
    assert set(tr["path"]) == {str(music / f"t{i:02d}.wav") for i in range(n)}
    for tid, path in seen.items():
        assert tr.loc[tid, "path"] == path
    assert rec.catalog.integrity_check() == []
    # the FAISS indexes agree with the catalog
    for space in ("embedding", "tags", "both"):
        vi = rec.faiss_index(space)
        assert len(vi) == n
        _, got = vi.search(rec.vector(int(tr.index[0]), space=space)[None], n)
        assert set(got[0].tolist()) == set(tr.index.tolist())


# ---------------------------------------------------------------------- concurrency
def test_second_writer_is_refused_and_readers_stay_consistent(tmp_path, demo_collection):
    src, _ = demo_collection
    rec = Recommender(tmp_path / "idx")
    rec.update([src], progress=False, descriptors=False)
    db = os.path.join(rec.index_dir, "catalog.sqlite")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"from recommender.store.catalog import Catalog; import time; c = Catalog({db!r}, mode='w'); "
         "print('LOCKED', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(IndexLockedError, match="catalog.sqlite"):
            Catalog(db, mode="w")
        with pytest.raises(IndexLockedError):
            Recommender(tmp_path / "idx").update([src], progress=False)
        # readers are not blocked by the writer
        r = Recommender(tmp_path / "idx")
        assert len(r.similar(1, k=3)) == 3
    finally:
        holder.kill()
        holder.wait()


def test_readers_during_a_write_see_whole_tracks(tmp_path, demo_collection):
    src, _ = demo_collection
    idx = str(tmp_path / "idx")
    Recommender(idx).update([src / "ballad"], progress=False, descriptors=False)
    writer = subprocess.Popen([sys.executable, "-c", _INDEX_SCRIPT, str(src), idx],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    errors = []
    checks = 0
    try:
        while writer.poll() is None and checks < 400:
            try:
                with Catalog(os.path.join(idx, "catalog.sqlite"), mode="r") as cat:
                    with cat.snapshot():
                        ids = set(cat.tracks().index)
                        e_ids, E = cat.vectors("embedding")
                        t_ids, T = cat.vectors("tags")
                    if set(e_ids.tolist()) != ids or set(t_ids.tolist()) != ids:
                        errors.append("tracks and vectors disagree")
                    if not np.all(np.isfinite(E)):
                        errors.append("non-finite vectors")
                r = Recommender(idx)
                r.similar(int(min(ids)), k=1)
                r.close()
            except RecommenderError as e:
                errors.append(repr(e))
            checks += 1
    finally:
        writer.wait(timeout=600)
    assert not errors, errors[:3]
    assert checks > 3


# --------------------------------------------------------------------- hostile files
def test_hostile_index_files_give_clear_errors_and_no_side_effects(tmp_path, demo_collection):
    src, _ = demo_collection
    rec = Recommender(tmp_path / "idx")
    rec.update([src], progress=False, descriptors=False)
    rec.close()
    faiss_path = os.path.join(rec.index_dir, "embedding.faiss")
    marker = tmp_path / "pwned"
    import pickle

    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(Bomb())
    for name in ("embedding.faiss", "catalog.sqlite"):
        p = os.path.join(rec.index_dir, name)
        shutil.copy(p, p + ".orig")
        open(p, "wb").write(payload)
        before = open(p, "rb").read()
        if name.endswith(".faiss"):
            with pytest.raises(IndexFileError):
                VectorIndex.load(p)
        else:
            with pytest.raises(CatalogError):
                Catalog(p, mode="r")
            with pytest.raises(CatalogError):
                Recommender(rec.index_dir).similar(1)
        assert open(p, "rb").read() == before  # nothing written
        assert not marker.exists()  # nothing executed
        shutil.move(p + ".orig", p)
    # a FAISS file of another dimension, with a consistent sidecar
    other = VectorIndex.build(np.arange(8, dtype=np.int64), np.random.default_rng(0).random((8, 50), dtype=np.float32))
    other.save(faiss_path, meta={"space": "embedding"})
    with pytest.raises(IndexFileError, match="50"):
        VectorIndex.load(faiss_path, expected_dim=200)
    # the facade notices the mismatch and rebuilds the derived file from the catalog
    r = Recommender(rec.index_dir)
    assert len(r.similar(1, k=3, space="embedding")) == 3
    assert VectorIndex.load(faiss_path).dim == 200


def test_catalog_with_a_wrong_schema(tmp_path):
    p = tmp_path / "catalog.sqlite"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE tracks (x TEXT)")
    con.commit()
    con.close()
    before = p.read_bytes()
    for mode in ("r", "w", "c"):
        with pytest.raises(CatalogError, match="catalog.sqlite"):
            Catalog(p, mode=mode)
    assert p.read_bytes() == before


# ------------------------------------------------------------------ resource limits
_FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from recommender import Recommender
    from recommender.errors import RecommenderError
    rec = Recommender(sys.argv[2])
    _ = rec.model
    limit = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        rec.update([sys.argv[1]], progress=False, descriptors=False)
    except RecommenderError as e:
        print("CLEAR", e)
        sys.exit(3)
    except OSError as e:
        print("OSERROR", e)
        sys.exit(4)
    print("OK")
    """
)


def test_disk_full_gives_clear_error_and_keeps_previous_index(tmp_path, demo_collection):
    src, _ = demo_collection
    idx = str(tmp_path / "idx")
    rec = Recommender(idx)
    rec.update([src / "ballad"], progress=False, descriptors=False)
    before = rec.similar(1, k=1)
    rec.close()
    size = max(os.path.getsize(os.path.join(idx, f)) for f in os.listdir(idx))
    r = subprocess.run([sys.executable, "-c", _FULL_DISK_SCRIPT, str(src), idx, str(size + 4096)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "CLEAR" in r.stdout and ("full" in r.stdout.lower() or "space" in r.stdout.lower()
                                    or "large" in r.stdout.lower())
    rec = Recommender(idx)
    assert rec.catalog.integrity_check() == []
    after = rec.similar(1, k=1)
    assert after["path"].iloc[0] == before["path"].iloc[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="uses setuid to drop root")
def test_read_only_index_directory(demo_collection):
    import pathlib
    import tempfile

    src, _ = demo_collection
    base = pathlib.Path(tempfile.mkdtemp(prefix="recommender-ro-", dir="/tmp"))  # traversable by nobody
    os.chmod(base, 0o755)
    idx = base / "idx"
    rec = Recommender(idx)
    rec.update([src / "ballad"], progress=False, descriptors=False)
    rec.close()
    os.chmod(base, 0o755)
    for root, dirs, files in os.walk(base):
        os.chmod(root, 0o555)
        for f in files:
            os.chmod(os.path.join(root, f), 0o444)
    code = textwrap.dedent(
        f"""
        import os, sys
        # import first: the interpreter's own files may not be readable by nobody
        import faiss, pandas, sqlite3, tqdm.auto
        import recommender.recommender, recommender.store.catalog, recommender.store.faiss_index, recommender.io.collection
        import recommender.analysis, recommender.analysis.parallel, recommender.io.audio
        from recommender import Recommender
        from recommender.errors import RecommenderError
        os.setgid(65534); os.setuid(65534)
        rec = Recommender({str(idx)!r})
        print("QUERY", len(rec.similar(1, k=1)))
        try:
            Recommender({str(idx)!r}).update([{str(src / 'rock')!r}], progress=False)
        except RecommenderError as e:
            print("CLEAR", e)
        """
    )
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", HOME="/tmp"))
    finally:
        for root, dirs, files in os.walk(base):
            os.chmod(root, 0o755)
        shutil.rmtree(base, ignore_errors=True)
    assert "QUERY 1" in r.stdout, r.stdout + r.stderr
    assert "CLEAR" in r.stdout and "idx" in r.stdout, r.stdout + r.stderr


# --------------------------------------------------------------------------- fuzzing
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def saved_index(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    vi = VectorIndex.build(np.arange(20, dtype=np.int64), rng.random((20, 16), dtype=np.float32))
    p = str(d / "x.faiss")
    vi.save(p, meta={"space": "embedding", "generation": 1})
    return p, open(p, "rb").read(), open(p + ".json", "rb").read()


@_FUZZ
@given(data=st.binary(max_size=4096), keep_sidecar=st.booleans(), mutate_at=st.integers(min_value=0))
def test_index_loader_on_arbitrary_bytes(tmp_path, saved_index, data, keep_sidecar, mutate_at):
    _, good, sidecar = saved_index
    p = tmp_path / "f.faiss"
    if keep_sidecar and good:
        # a real sidecar with a corrupted index file: flip bytes in place
        blob = bytearray(good)
        for i, b in enumerate(data[:16]):
            blob[(mutate_at + i) % len(blob)] ^= b or 1
        p.write_bytes(bytes(blob))
        (tmp_path / "f.faiss.json").write_bytes(sidecar)
    else:
        p.write_bytes(data)
        (tmp_path / "f.faiss.json").write_bytes(data[::-1])
    try:
        VectorIndex.load(str(p))
    except RecommenderError:
        pass  # only the package's own errors may come out


@_FUZZ
@given(data=st.binary(max_size=8192), keep_header=st.booleans())
def test_catalog_loader_on_arbitrary_bytes(tmp_path, data, keep_header):
    p = tmp_path / "catalog.sqlite"
    if keep_header:
        data = b"SQLite format 3\x00" + data
    p.write_bytes(data)
    try:
        with Catalog(p, mode="r") as c:
            c.tracks()
    except RecommenderError:
        pass
    assert p.read_bytes() == data
