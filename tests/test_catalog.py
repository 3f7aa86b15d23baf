"""Tests of recommender.store.catalog: schema, round trips, ids, locking, crash safety."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from recommender.store.catalog import Catalog
from recommender.errors import (
    CatalogError,
    IndexLockedError,
    NotInIndexError,
    ParameterError,
    RecommenderError,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _vecs(rng, d_emb=200, d_tags=50):
    return {
        "embedding": rng.normal(size=d_emb).astype(np.float32),
        "tags": rng.random(d_tags).astype(np.float32),
    }


def _record(i, **kw):
    rec = {
        "path": f"/music/artist{i % 7}/track{i:05d}.mp3",
        "size": 1000 + i,
        "mtime_ns": 1_700_000_000_000_000_000 + i,
        "content_hash": f"hash{i:05d}",
        "duration_s": 180.5,
        "artist": f"Artist {i % 7}",
        "album": "Album",
        "title": f"Track {i}",
        "year": 1965,
        "genre": "rock",
        "track_no": i % 12 + 1,
        "analysis_key": "musicnn-abc|center3",
        "sampling": {"policy": "center", "params": {"n": 3}, "starts_s": [0.0, 3.0, 6.0]},
        "n_patches": 3,
    }
    rec.update(kw)
    return rec


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.sqlite", mode="c")
    yield c
    c.close()


def _bytes(p):
    with open(p, "rb") as fh:
        return fh.read()


# ------------------------------------------------------------- round trips
def test_round_trip_all_parts(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "catalog.sqlite"
    stored = {}
    with Catalog(path, mode="c") as cat:
        assert cat.generation == 0 and len(cat) == 0 and cat.spaces() == []
        cat.set_meta(frontend={"sr": 16000, "n_mels": 96}, model_name="musicnn")
        for i in range(20):
            v = _vecs(rng)
            patches = {
                "starts_s": np.arange(3, dtype=np.float32) * 3,
                "embeddings": rng.normal(size=(3, 200)),
                "probs": rng.random((3, 50)),
            }
            desc = {
                "tempo_bpm": 100 + i,
                "tempo_confidence": 0.5,
                "key": "C#",
                "mode": "minor",
                "loudness_db": -14.0,
                "mfcc_mean": np.arange(13, dtype=np.float32),
                "zcr": np.float64(0.25),
            }
            tid = cat.add_track(_record(i), vectors=v, patches=patches, descriptors=desc)
            stored[tid] = (v, patches)
        gen = cat.generation
    with Catalog(path, mode="r") as cat:
        assert len(cat) == 20 and cat.generation == gen == 20
        assert cat.spaces() == ["embedding", "tags"]
        assert cat.dims == {"embedding": 200, "tags": 50}
        assert cat.get_meta("frontend") == {"sr": 16000, "n_mels": 96}
        assert cat.get_meta("nope", default=5) == 5
        ids, X = cat.vectors("embedding")
        assert ids.dtype == np.int64 and X.dtype == np.float32 and X.shape == (20, 200)
        assert X.flags.c_contiguous and X.flags.writeable
        for tid, x in zip(ids, X):
            np.testing.assert_array_equal(x, stored[tid][0]["embedding"])  # exact
        some = ids[[5, 2, 9]]
        ids2, T = cat.vectors("tags", ids=some)
        np.testing.assert_array_equal(ids2, some)
        for tid, t in zip(ids2, T):
            np.testing.assert_array_equal(t, stored[tid][0]["tags"])
        pv = cat.patch_vectors(ids[0])
        np.testing.assert_array_equal(pv["starts_s"], [0.0, 3.0, 6.0])
        np.testing.assert_allclose(pv["embeddings"], stored[ids[0]][1]["embeddings"], rtol=1e-3, atol=1e-3)
        assert pv["embeddings"].dtype == np.float32 and pv["probs"].shape == (3, 50)
        t = cat.track(ids[3])
        assert t["path"] == _record(3)["path"] and t["year"] == 1965
        assert t["sampling"] == {"policy": "center", "params": {"n": 3}, "starts_s": [0.0, 3.0, 6.0]}
        assert cat.track_by_path(_record(4)["path"])["id"] == ids[4]
        assert cat.track_by_path("/nope.mp3") is None
        assert [r["id"] for r in cat.tracks_by_hash("hash00007")] == [ids[7]]
        df = cat.tracks()
        assert list(df.index) == list(ids) and df.index.name == "id"
        assert df.loc[ids[2], "title"] == "Track 2" and df["year"].dtype == "Int64"
        sub = cat.tracks(columns=["path", "size"])
        assert list(sub.columns) == ["path", "size"]
        desc = cat.descriptors()
        assert desc.loc[ids[1], "tempo_bpm"] == 101.0 and desc.loc[ids[1], "key"] == "C#"
        assert desc.loc[ids[1], "mfcc_mean"] == list(range(13)) and desc.loc[ids[1], "zcr"] == 0.25
        assert list(cat.descriptors(ids=ids[:2]).index) == list(ids[:2])
        fs = cat.file_states()
        assert fs[_record(0)["path"]] == (ids[0], 1000, _record(0)["mtime_ns"], "hash00000", "musicnn-abc|center3")
        assert cat.integrity_check() == []
        with pytest.raises(NotInIndexError):
            cat.vectors("tags", ids=[ids[0], 10_000])
        with pytest.raises(NotInIndexError):
            cat.track(10_000)
        with pytest.raises(CatalogError, match="read-only"):
            cat.add_track(_record(99), vectors=_vecs(rng))


def test_empty_space_and_order(cat):
    ids, X = cat.vectors("embedding")
    assert ids.shape == (0,) and X.dtype == np.float32
    rng = np.random.default_rng(1)
    for i in range(5):
        cat.add_track(_record(i), vectors={"embedding": rng.normal(size=8)})
    ids, X = cat.vectors("embedding")
    assert ids.tolist() == [1, 2, 3, 4, 5] and X.shape == (5, 8)


# --------------------------------------------------------------------- ids
def test_ids_stable_across_upserts_and_never_reused(cat):
    rng = np.random.default_rng(2)
    a = cat.add_track(_record(1), vectors=_vecs(rng))
    b = cat.add_track(_record(2), vectors=_vecs(rng))
    new = _vecs(rng)
    a2 = cat.add_track(_record(1, title="Retagged", sampling=None), vectors={"embedding": new["embedding"]})
    assert a2 == a and len(cat) == 2
    t = cat.track(a)
    assert t["title"] == "Retagged" and t["sampling"] is None
    # vectors replaced wholesale: the 'tags' vector of the old analysis is gone
    assert cat.vectors("tags")[0].tolist() == [b]
    np.testing.assert_array_equal(cat.vectors("embedding", ids=[a])[1][0], new["embedding"])
    assert cat.remove_tracks([b, 12345]) == 1
    c = cat.add_track(_record(3), vectors=_vecs(rng))
    assert c > b  # the removed id is not reused
    assert cat.remove_tracks([c]) == 1
    d = cat.add_track(_record(4), vectors=_vecs(rng))
    assert d > c  # not even the highest one (AUTOINCREMENT)
    assert a in cat and b not in cat
    # upserts do not burn ids either
    for _ in range(3):
        cat.add_track(_record(4), vectors=_vecs(rng))
    assert cat.add_track(_record(5), vectors=_vecs(rng)) == d + 1


def test_remove_cascades(cat):
    rng = np.random.default_rng(3)
    tid = cat.add_track(
        _record(1),
        vectors=_vecs(rng),
        patches={"starts_s": [0.0], "embeddings": np.ones((1, 4))},
        descriptors={"tempo_bpm": 90},
    )
    cat.remove_tracks([tid])
    assert cat.vectors("embedding")[0].size == 0
    assert cat.descriptors().empty
    with pytest.raises(NotInIndexError):
        cat.patch_vectors(tid)
    assert cat.integrity_check() == []


def test_move_track(cat):
    rng = np.random.default_rng(4)
    v = _vecs(rng)
    tid = cat.add_track(_record(1), vectors=v)
    other = cat.add_track(_record(2), vectors=_vecs(rng))
    g, vg = cat.generation, cat.vectors_generation
    [hit] = cat.tracks_by_hash("hash00001")
    cat.record_failure("/new/place.mp3", "decode error")
    cat.move_track(hit["id"], new_path="/new/place.mp3", size=5, mtime_ns=7)
    t = cat.track(tid)
    assert (t["path"], t["size"], t["mtime_ns"]) == ("/new/place.mp3", 5, 7)
    assert cat.track_by_path(_record(1)["path"]) is None
    np.testing.assert_array_equal(cat.vectors("embedding", ids=[tid])[1][0], v["embedding"])
    assert cat.generation == g + 1 and cat.vectors_generation == vg  # FAISS stays valid
    assert cat.failures().empty
    with pytest.raises(ParameterError, match="already belongs to track"):
        cat.move_track(tid, new_path=_record(2)["path"], size=1, mtime_ns=1)
    with pytest.raises(NotInIndexError):
        cat.move_track(999, new_path="/x.mp3", size=1, mtime_ns=1)
    assert cat.track(other)["path"] == _record(2)["path"]


# ---------------------------------------------------------------- failures
def test_failures(cat):
    rng = np.random.default_rng(5)
    g = cat.generation
    cat.record_failure("/a.mp3", "AudioError: truncated", size=10, mtime_ns=20)
    cat.record_failure("/b.mp3", "empty file")
    cat.record_failure("/a.mp3", "still truncated", size=11, mtime_ns=21)
    f = cat.failures()
    assert list(f.columns) == ["path", "reason", "size", "mtime_ns", "failed_at"]
    assert f["path"].tolist() == ["/a.mp3", "/b.mp3"]
    assert f.loc[0, "reason"] == "still truncated" and f.loc[0, "size"] == 11
    assert pd.isna(f.loc[1, "size"])
    assert cat.generation == g  # failures do not touch tracks/vectors
    cat.add_track(_record(1, path="/a.mp3"), vectors=_vecs(rng))
    assert cat.failures()["path"].tolist() == ["/b.mp3"]
    cat.clear_failure("/b.mp3")
    cat.clear_failure("/never.mp3")
    assert cat.failures().empty


# -------------------------------------------------------------- generation
def test_generation_bumps(cat):
    rng = np.random.default_rng(6)
    assert (cat.generation, cat.vectors_generation) == (0, 0)
    cat.add_track(_record(1), vectors=_vecs(rng))
    assert (cat.generation, cat.vectors_generation) == (1, 1)
    with cat.write_batch():
        for i in range(2, 12):
            cat.add_track(_record(i), vectors=_vecs(rng))
    assert (cat.generation, cat.vectors_generation) == (2, 2) and len(cat) == 11
    cat.set_meta(note="hello")
    cat.record_failure("/x", "bad")
    assert cat.remove_tracks([9999]) == 0
    assert cat.generation == 2
    cat.remove_tracks([1])
    assert (cat.generation, cat.vectors_generation) == (3, 3)
    with pytest.raises(ParameterError, match="managed by the catalog"):
        cat.set_meta(generation=7)


def test_write_batch_atomic_and_savepoints(cat):
    rng = np.random.default_rng(7)
    cat.add_track(_record(0), vectors=_vecs(rng))
    with pytest.raises(RuntimeError):
        with cat.write_batch():
            cat.add_track(_record(1), vectors=_vecs(rng))
            raise RuntimeError("worker died")
    assert len(cat) == 1 and cat.generation == 1
    with cat.write_batch():
        cat.add_track(_record(2), vectors=_vecs(rng))
        with pytest.raises(ParameterError, match="dim 7"):
            cat.add_track(_record(3), vectors={"embedding": np.ones(7)})
        cat.add_track(_record(4), vectors=_vecs(rng))
    assert sorted(cat.file_states()) == sorted(_record(i)["path"] for i in (0, 2, 4))
    assert cat.generation == 2


def test_add_track_validation_leaves_catalog_unchanged(cat):
    rng = np.random.default_rng(8)
    cat.add_track(_record(0), vectors=_vecs(rng))
    before = (len(cat), cat.generation)
    bad = [
        (dict(record=_record(1), vectors={"embedding": np.ones(50)}), "dim 50.*dim 200"),
        (dict(record=_record(1), vectors={"embedding": np.full(200, np.nan)}), "NaN"),
        (dict(record=_record(1, bogus=1), vectors=_vecs(rng)), "unknown key"),
        (dict(record={"size": 1}, vectors=_vecs(rng)), "path"),
        (dict(record=_record(1, year="abc"), vectors=_vecs(rng)), "year"),
        (dict(record=_record(1), vectors=_vecs(rng), patches={"starts_s": [0, 1], "embeddings": np.ones((3, 4))}), "shape"),
        (dict(record=_record(1), vectors=_vecs(rng), patches={"starts_s": [0], "embeddings": np.full((1, 4), 1e6)}), "float16"),
    ]
    for kwargs, msg in bad:
        rec = kwargs.pop("record")
        with pytest.raises(ParameterError, match=msg):
            cat.add_track(rec, **kwargs)
    assert (len(cat), cat.generation) == before


def test_check_compatible(tmp_path):
    path = tmp_path / "c.sqlite"
    with Catalog(path, mode="c") as cat:
        cat.check_compatible(model_name="musicnn-msd", weights_sha256="a" * 64, dims={"embedding": 200, "tags": 50})
        assert cat.get_meta("model_name") == "musicnn-msd"
        cat.check_compatible(model_name="musicnn-msd", weights_sha256="a" * 64, dims={"embedding": 200})
    with Catalog(path, mode="r") as cat:
        with pytest.raises(CatalogError, match=r"model musicnn-msd \(dim 200 for 'embedding'\), this model vgg gives dim 50"):
            cat.check_compatible(model_name="vgg", weights_sha256="b" * 64, dims={"embedding": 50})
        with pytest.raises(CatalogError, match="index built with model musicnn-msd, this model is vgg"):
            cat.check_compatible(model_name="vgg", weights_sha256="b" * 64, dims={"embedding": 200})
        with pytest.raises(CatalogError, match="weights sha256"):
            cat.check_compatible(model_name="musicnn-msd", weights_sha256="b" * 64, dims={"embedding": 200})


# ----------------------------------------------------------------- hostile
def test_missing_file(tmp_path):
    for mode in ("r", "w"):
        with pytest.raises(CatalogError, match="no such catalog"):
            Catalog(tmp_path / "nope.sqlite", mode=mode)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ParameterError, match="mode"):
        Catalog(tmp_path / "x", mode="a")


@pytest.mark.parametrize("mode", ["r", "w", "c"])
def test_not_sqlite_file_untouched(tmp_path, mode):
    p = tmp_path / "catalog.sqlite"
    p.write_bytes(b"\x80\x04\x95 pickle-ish bytes, definitely not SQLite" * 10)
    before = _bytes(p)
    with pytest.raises(CatalogError, match="not an SQLite database"):
        Catalog(p, mode=mode)
    assert _bytes(p) == before
    assert sorted(os.listdir(tmp_path)) == ["catalog.sqlite"]  # no lock, no -wal


def _foreign_db(p, script):
    con = sqlite3.connect(p)
    con.executescript(script)
    con.commit()
    con.close()


@pytest.mark.parametrize("mode", ["r", "w", "c"])
def test_foreign_sqlite_untouched(tmp_path, mode):
    p = tmp_path / "other.db"
    _foreign_db(p, "CREATE TABLE songs(id INTEGER, name TEXT); INSERT INTO songs VALUES (1, 'x');")
    before = _bytes(p)
    with pytest.raises(CatalogError, match=r"not a recommender catalog.*songs"):
        Catalog(p, mode=mode)
    assert _bytes(p) == before
    assert sorted(os.listdir(tmp_path)) == ["other.db"]


def test_wrong_schema_versions_and_missing_tables(tmp_path):
    p = tmp_path / "newer.db"
    _foreign_db(p, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', '99');")
    before = _bytes(p)
    for mode in ("r", "w"):
        with pytest.raises(CatalogError, match="schema version 99 was written by a newer"):
            Catalog(p, mode=mode)
    assert _bytes(p) == before
    q = tmp_path / "broken.db"
    _foreign_db(q, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', '1');")
    with pytest.raises(CatalogError, match="missing table 'tracks'"):
        Catalog(q, mode="r")
    r = tmp_path / "garbled.db"
    _foreign_db(r, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', '\"one\"');")
    with pytest.raises(CatalogError, match="invalid schema_version"):
        Catalog(r, mode="r")


def test_truncated_catalog(tmp_path):
    p = tmp_path / "c.sqlite"
    rng = np.random.default_rng(9)
    with Catalog(p, mode="c") as cat:
        with cat.write_batch():
            for i in range(300):
                cat.add_track(_record(i), vectors=_vecs(rng))
    data = _bytes(p)
    assert len(data) > 8192
    p.write_bytes(data[: len(data) // 3])
    before = _bytes(p)
    for mode in ("r", "w"):
        with pytest.raises(CatalogError, match="malformed"):
            with Catalog(p, mode=mode) as cat:
                cat.vectors("embedding")
                cat.integrity_check()
    assert _bytes(p) == before


# ---------------------------------------------------------------- locking
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from recommender.store.catalog import Catalog
    cat = Catalog(sys.argv[1], mode="w")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    cat.close()
    """
)


def test_second_writer_refused_then_waits(tmp_path):
    p = tmp_path / "c.sqlite"
    Catalog(p, mode="c").close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(p), "1.5"], stdout=subprocess.PIPE, env=_env(), text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match=f"process {proc.pid}"):
            Catalog(p, mode="w")
        with pytest.raises(IndexLockedError):
            Catalog(p, mode="c", lock_timeout_s=0.2)
        # readers are never blocked
        with Catalog(p, mode="r") as r:
            assert len(r) == 0
        # a waiting writer gets the lock once the holder exits
        t0 = time.monotonic()
        with Catalog(p, mode="w", lock_timeout_s=30) as w:
            assert time.monotonic() - t0 < 30
            w.set_meta(ok=True)
    finally:
        proc.kill()
        proc.wait()
    # a lock held by a dead process does not block (flock dies with it)
    with Catalog(p, mode="w") as w:
        assert w.get_meta("ok") is True


def test_same_process_second_writer_refused(tmp_path):
    p = tmp_path / "c.sqlite"
    with Catalog(p, mode="c"):
        with pytest.raises(IndexLockedError, match=str(os.getpid())):
            Catalog(p, mode="w")
    Catalog(p, mode="w").close()


# ------------------------------------------------------ snapshot / crashes
def test_reader_snapshot_isolation(tmp_path):
    p = tmp_path / "c.sqlite"
    rng = np.random.default_rng(10)
    with Catalog(p, mode="c") as w, Catalog(p, mode="r") as r:
        w.add_track(_record(0), vectors=_vecs(rng))
        with r.snapshot():
            n0, g0 = len(r), r.generation
            with w.write_batch():
                for i in range(1, 6):
                    w.add_track(_record(i), vectors=_vecs(rng))
            assert (len(r), r.generation) == (n0, g0) == (1, 1)
            assert r.vectors("embedding")[0].tolist() == [1]
        assert len(r) == 6 and r.generation == 2
        assert r.vectors("embedding")[1].shape == (6, 200)


_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from recommender.store.catalog import Catalog
    rng = np.random.default_rng(0)
    cat = Catalog(sys.argv[1], mode="w")
    batch = int(sys.argv[2])
    i = 0
    while True:
        with cat.write_batch():
            for _ in range(batch):
                cat.add_track({"path": f"/m/{i}.mp3", "size": i},
                              vectors={"embedding": rng.normal(size=200), "tags": rng.random(50)},
                              descriptors={"tempo_bpm": 120})
                i += 1
        if i >= int(sys.argv[3]):
            print("done", i, flush=True)
            break
        print(i, flush=True)
    """
)


def test_reader_consistent_while_other_process_writes(tmp_path):
    p = tmp_path / "c.sqlite"
    Catalog(p, mode="c").close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(p), "25", "1500"], stdout=subprocess.PIPE, env=_env(), text=True
    )
    seen = set()
    try:
        with Catalog(p, mode="r") as r:
            while proc.poll() is None or not seen or max(seen) < 1500:
                ids_e, X = r.vectors("embedding")
                ids_t, T = r.vectors("tags") if "tags" in r.dims else (ids_e, None)
                # each bulk read is one snapshot: whole batches only
                assert len(ids_e) % 25 == 0 and X.shape[0] == len(ids_e)
                assert len(ids_e) == 0 or X.shape[1] == 200
                with r.snapshot():
                    n = len(r)
                    a, _ = r.vectors("embedding")
                    b, _ = r.vectors("tags") if "tags" in r.dims else (a, None)
                    d = r.descriptors()
                    assert n == len(a) == len(b) == len(d)
                    np.testing.assert_array_equal(a, b)
                seen.add(n)
                if proc.poll() is not None and n == 1500:
                    break
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert len(seen) >= 2  # the reader really overlapped the writer


def test_sigkill_mid_write_leaves_consistent_resumable_catalog(tmp_path):
    p = tmp_path / "c.sqlite"
    Catalog(p, mode="c").close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(p), "1", "10000000"], stdout=subprocess.PIPE, env=_env(), text=True
    )
    committed = 0
    for _ in range(200):  # let it commit a good number of single-track transactions
        committed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Catalog(p, mode="w") as cat:  # lock released by the kernel
        assert cat.integrity_check() == []
        n = len(cat)
        assert n >= committed
        ids_e, _ = cat.vectors("embedding")
        ids_t, _ = cat.vectors("tags")
        np.testing.assert_array_equal(ids_e, cat.ids())
        np.testing.assert_array_equal(ids_t, cat.ids())
        assert cat.generation == n  # one bump per committed transaction
        # resume: the next path continues where the killed writer stopped
        done = cat.file_states()
        assert all(f"/m/{i}.mp3" in done for i in range(n))
        cat.add_track({"path": f"/m/{n}.mp3"}, vectors={"embedding": np.ones(200), "tags": np.ones(50)})
        assert len(cat) == n + 1


def test_closed_and_errors_share_root(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite", mode="c")
    cat.close()
    cat.close()
    with pytest.raises(CatalogError, match="closed"):
        len(cat)
    assert issubclass(CatalogError, RecommenderError)


def test_meta_read_once_reads_each_key_once_per_thread(tmp_path):
    import threading

    from recommender.store.catalog import Catalog

    with Catalog(tmp_path / "c.sqlite", mode="c") as cat:
        cat.set_meta(note=["a", "b"])
        seen = []
        cat._conn.set_trace_callback(lambda sql: seen.append(sql) if "FROM meta" in sql else None)
        with cat.meta_read_once():
            first = cat.get_meta("note")
            first.append("mutated")  # a fresh value each call: the memo keeps the text
            assert cat.get_meta("note") == ["a", "b"] and len(seen) == 1
            other = []
            t = threading.Thread(target=lambda: other.append(cat.get_meta("note")))
            t.start()
            t.join()
            assert other == [["a", "b"]] and len(seen) == 2  # another thread reads the database
            cat.set_meta(note=["c"])  # this thread's write: read again
            assert cat.get_meta("note") == ["c"]
        cat.get_meta("note")
        cat.get_meta("note")
        assert len(seen) == 5  # outside the block every call reads


def test_meta_read_once_blocks_share_reads_until_a_write(tmp_path):
    """(#19) successive blocks read the meta table once while nothing writes the database:
    another connection's commit (PRAGMA data_version) or this connection's own write (which
    data_version does not see) makes the next block read again; a transaction reads afresh."""
    from recommender.store.catalog import Catalog

    def read(cat, key="note"):
        with cat.meta_read_once():
            return cat.get_meta(key), cat.get_meta(key)

    path = tmp_path / "c.sqlite"
    with Catalog(path, mode="c") as writer:
        writer.set_meta(note="a", names=["x"])
        with Catalog(path, mode="r") as cat:  # a server's read-only connection
            seen = []
            cat._conn.set_trace_callback(lambda sql: seen.append(sql) if "FROM meta" in sql else None)
            assert read(cat) == ("a", "a") and len(seen) == 1
            assert read(cat) == ("a", "a") and len(seen) == 1  # the next block: no read of meta
            read(cat, "names")[0].append("changed")  # lists are decoded afresh for each caller
            assert read(cat, "names") == (["x"], ["x"])
            writer.set_meta(note="other write")  # another connection commits
            n = len(seen)
            assert read(cat) == ("other write", "other write") and len(seen) == n + 1
            with cat.snapshot():  # inside a transaction: its own view, read afresh
                assert read(cat) == ("other write", "other write") and len(seen) == n + 2
            assert read(cat, "missing") == (None, None)
            with cat.meta_read_once():
                assert cat.get_meta("missing", 5) == 5 and cat.get_meta("missing") is None
        assert read(writer) == ("other write", "other write")
        writer.set_meta(note="own write")  # this connection: data_version unchanged, memo dropped
        assert read(writer) == ("own write", "own write")


def test_rolled_back_meta_not_shared_with_other_blocks(tmp_path):
    """(breaker, #19) a meta value rolled back in one thread reaches no other thread's
    meta_read_once block, nor the writer's own block after the rollback."""
    import threading

    from recommender.store.catalog import Catalog

    with Catalog(tmp_path / "c.sqlite", mode="c") as cat:
        cat.set_meta(note="committed")
        with cat.meta_read_once():  # the blocks below share one memo (nothing written since)
            pass
        in_block, rolled_back, seen = threading.Event(), threading.Event(), {}

        def reader():
            with cat.meta_read_once():
                cat.get_meta("generation")
                in_block.set()
                rolled_back.wait(10)
                seen["other"] = cat.get_meta("note")

        t = threading.Thread(target=reader)
        t.start()
        in_block.wait(10)
        with cat.meta_read_once():
            try:
                with cat.write_batch():
                    cat.set_meta(note="rolled back")
                    assert cat.get_meta("note") == "rolled back"  # read inside the transaction
                    raise RuntimeError("fail the batch")
            except RuntimeError:
                pass
            seen["own"] = cat.get_meta("note")
        rolled_back.set()
        t.join()
        assert seen["other"] == "committed"
        assert seen["own"] == "committed"
        with cat.meta_read_once():
            assert cat.get_meta("note") == "committed"
