"""Any file name, stored and printed losslessly; catalog schema 2 (tags, audio flag, fingerprints).

A POSIX file name is bytes: it may not be UTF-8 (a cp1252 dash 0x96), and
two names may differ only in Unicode normalisation (NFC / NFD).  Both are
different files and must stay so, in the catalog and in every output.
"""

import json
import os
import shutil
import sqlite3
import unicodedata

import numpy as np
import pytest

from recommender.cli._common import display, json_text, write_m3u
from recommender.errors import CatalogError, NotInIndexError, ParameterError
from recommender.store.catalog import Catalog, path_param, path_value

HERE = os.path.dirname(os.path.abspath(__file__))
LEGACY_CATALOG = os.path.join(HERE, "fixtures", "legacy_0_1", "index", "catalog.sqlite")

ODD = os.fsdecode(b"/m/Some Album/02 Band \x96 Song.flac")  # '\udc96' in the str
NFC = unicodedata.normalize("NFC", "/m/01 Café Song.flac")
NFD = unicodedata.normalize("NFD", "/m/01 Café Song.flac")


def _vecs(rng):
    return {"embedding": rng.normal(size=8).astype(np.float32), "tags": rng.random(4).astype(np.float32)}


# ------------------------------------------------------------------------------------- paths
def test_path_param_is_lossless_and_canonical():
    assert path_param("/m/a.mp3") == "/m/a.mp3"
    assert path_param(NFC) == NFC and path_param(NFD) == NFD and NFC != NFD
    b = path_param(ODD)
    assert b == b"/m/Some Album/02 Band \x96 Song.flac"
    assert path_value(b) == ODD and os.fsencode(path_value(b)) == b
    assert path_param(b) == b  # bytes given: the same stored form
    # surrogate escapes that spell valid UTF-8 are that text (one stored form per file)
    assert path_param(os.fsdecode("/m/é.mp3".encode())) == "/m/é.mp3"
    with pytest.raises(ParameterError, match="no file name"):
        path_param("/m/\ud800.mp3")


def test_catalog_stores_any_file_name(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "c.sqlite"
    with Catalog(p, mode="c") as cat:
        ids = {path: cat.add_track({"path": path, "size": 1, "mtime_ns": 1, "title": os.path.basename(path)},
                                   vectors=_vecs(rng))
               for path in (ODD, NFC, NFD, "/m/plain.mp3")}
        assert len(set(ids.values())) == 4  # NFC and NFD are two files
        assert cat.add_track({"path": ODD, "size": 2, "mtime_ns": 2}, vectors=_vecs(rng)) == ids[ODD]  # upsert
        assert cat.track_by_path(ODD)["id"] == ids[ODD]
        assert cat.track(ids[ODD])["path"] == ODD
        assert set(cat.file_states()) == set(ids)
        assert set(cat.tracks()["path"]) == set(ids)
        assert cat.track(ids[NFD])["title"] == os.path.basename(NFD)
        # text columns get the display form of undecodable bytes
        assert cat.track(ids[ODD])["title"] is None  # replaced by the upsert without a title
        cat.add_track({"path": ODD, "title": "02 Band \udc96 Song"}, vectors=_vecs(rng))
        assert cat.track(ids[ODD])["title"] == "02 Band \\x96 Song"
        odd2 = os.fsdecode(b"/m/moved \xff.flac")
        cat.move_track(ids[ODD], new_path=odd2, size=2, mtime_ns=3)
        assert cat.track_by_path(odd2)["id"] == ids[ODD] and cat.track_by_path(ODD) is None
        cat.record_failure(ODD, f"cannot decode {ODD}")
        f = cat.failures()
        assert list(f["path"]) == [ODD] and f["reason"][0] == "cannot decode /m/Some Album/02 Band \\x96 Song.flac"
        cat.clear_failure(ODD)
        assert len(cat.failures()) == 0
    con = sqlite3.connect(p)
    assert con.execute("SELECT typeof(path) FROM tracks WHERE id=?", (ids[ODD],)).fetchone() == ("blob",)
    assert con.execute("SELECT typeof(path) FROM tracks WHERE id=?", (ids[NFC],)).fetchone() == ("text",)
    con.close()


def test_json_text_is_valid_utf8_and_reads_back_to_the_file(tmp_path):
    name = os.fsencode(str(tmp_path)) + b"/02 Band \x96 Song.flac"
    with open(name, "wb") as f:
        f.write(b"x")
    path = os.fsdecode(name)
    text = json_text({"path": path, "nfd": NFD, "score": float("nan"), "n": np.float32(0.5)})
    raw = text.encode("utf-8")  # would raise on a lone surrogate
    assert "\\udc96" in text and "NaN" not in text
    back = json.loads(raw.decode("utf-8"))
    assert back["path"] == path and os.path.exists(back["path"]) and os.fsencode(back["path"]) == name
    assert back["nfd"] == NFD and back["score"] is None and back["n"] == 0.5
    assert display(path).endswith("02 Band \\x96 Song.flac")


def test_m3u_is_utf8_and_names_such_a_path_by_its_file_uri(tmp_path):
    from recommender.io.playlist_files import path_to_uri, uri_to_path

    out = tmp_path / "x.m3u"
    write_m3u(out, [{"path": ODD, "artist": "A", "title": "02 Band \\x96 Song"}, {"path": NFD, "title": "Café"}])
    out.read_bytes().decode("utf-8")
    lines = out.read_bytes().split(b"\n")
    assert lines[0] == b"#EXTM3U"
    assert lines[2] == path_to_uri(ODD).encode("ascii") and b"%96" in lines[2] and lines[4] == NFD.encode("utf-8")
    assert os.fsencode(uri_to_path(lines[2].decode())) == os.fsencode(os.path.abspath(ODD))
    assert lines[1] == b"#EXTINF:-1,A - 02 Band \\x96 Song"


# ------------------------------------------------------------------------------------- schema 2
def test_schema2_columns_fingerprints_and_audio_flag(tmp_path):
    rng = np.random.default_rng(1)
    with Catalog(tmp_path / "c.sqlite", mode="c") as cat:
        assert cat.schema_version == 2 and cat.get_meta("schema_version") == 2
        rec = {"path": "/m/a.flac", "album_artist": "Various", "disc_no": 2, "audio_flag": "silent",
               "tags_json": {"artist": ["A", "B"], "genre": ["Rock", "Pop"]}}
        tid = cat.add_track(rec, vectors=_vecs(rng))
        row = cat.track(tid)
        assert (row["album_artist"], row["disc_no"], row["audio_flag"]) == ("Various", 2, "silent")
        assert row["tags_json"] == {"artist": ["A", "B"], "genre": ["Rock", "Pop"]}
        df = cat.tracks(columns=["disc_no", "tags_json", "audio_flag"])
        assert str(df["disc_no"].dtype) == "Int64" and df["tags_json"].iloc[0]["artist"] == ["A", "B"]
        with pytest.raises(ParameterError, match="audio_flag"):
            cat.add_track({"path": "/m/b.flac", "audio_flag": "loud"}, vectors=_vecs(rng))
        gen, vgen = cat.generation, cat.vectors_generation
        cat.set_fingerprint(tid, b"\x01\x00\x00\x00\x02\x00\x00\x00", 30.0)
        assert cat.fingerprints() == {tid: (b"\x01\x00\x00\x00\x02\x00\x00\x00", 30.0)}
        assert cat.generation == gen + 1 and cat.vectors_generation == vgen  # same-recording caches refresh; FAISS files stay
        cat.set_fingerprint(tid, b"\x03\x00\x00\x00", None)  # replaced
        data, dur = cat.fingerprints([tid])[tid]
        assert data == b"\x03\x00\x00\x00" and np.isnan(dur)
        with pytest.raises(NotInIndexError):
            cat.set_fingerprint(999, b"")
        with pytest.raises(ParameterError):
            cat.set_fingerprint(tid, "not bytes")
        cat.move_track(tid, new_path="/m/moved.flac", size=1, mtime_ns=1)
        assert tid in cat.fingerprints()  # a move keeps it
        cat.add_track({"path": "/m/moved.flac"}, vectors=_vecs(rng))
        assert cat.fingerprints() == {}  # a re-analysis replaces the old content's
        cat.set_fingerprint(tid, b"\x00" * 4)
        cat.remove_tracks([tid])
        assert cat.fingerprints() == {}  # cascade
        assert cat.integrity_check() == []


def _bytes(p):
    return open(p, "rb").read()


def test_a_v1_catalog_is_read_as_it_is_and_upgraded_by_a_writer(tmp_path):
    p = tmp_path / "catalog.sqlite"
    shutil.copy(LEGACY_CATALOG, p)
    before = _bytes(p)
    with Catalog(p, mode="r") as cat:  # the previous release's catalog, read-only
        assert cat.schema_version == 1
        n = len(cat)
        df = cat.tracks()
        assert n == 8 and df["album_artist"].isna().all() and df["disc_no"].isna().all()
        row = cat.track(int(df.index[0]))
        assert row["audio_flag"] is None and row["tags_json"] is None and row["path"] == df["path"].iloc[0]
        assert cat.fingerprints() == {}
        with pytest.raises(CatalogError, match="read-only"):
            cat.set_fingerprint(int(df.index[0]), b"")
    assert _bytes(p) == before  # a reader never upgrades
    with Catalog(p, mode="w") as cat:  # the writer upgrades, in its transaction
        assert cat.schema_version == 2 and cat.get_meta("schema_version") == 2
        assert len(cat) == 8 and list(cat.tracks()["path"]) == list(df["path"])
        tid = int(df.index[0])
        cat.set_fingerprint(tid, b"\x01\x00\x00\x00", 9.0)
        assert cat.fingerprints()[tid][1] == 9.0
        assert cat.integrity_check() == []
    with Catalog(p, mode="r") as cat:
        assert cat.schema_version == 2 and cat.tracks()["disc_no"].isna().all()


# ------------------------------------------------------------------------------------- end to end
def test_index_a_folder_with_a_non_utf8_name_twice(tmp_path):
    import soundfile as sf

    from recommender import Recommender
    from recommender.io.demo import synth_track

    music = tmp_path / "music"
    music.mkdir()
    names = [b"01 Intro.wav", b"02 Band \x96 Song.wav", unicodedata.normalize("NFD", "03 Café.wav").encode()]
    for i, n in enumerate(names):
        sf.write(os.fsencode(str(music)) + b"/" + n, synth_track("rock", seed=i, duration_s=4.0, sr=16000), 16000)
    rec = Recommender(tmp_path / "idx")
    r1 = rec.update([str(music)], progress=False)
    assert (r1.added, r1.failed) == (3, 0), r1.failures
    r2 = rec.update([str(music)], progress=False)
    assert (r2.unchanged, r2.added, r2.failed) == (3, 0, 0)
    paths = set(rec.tracks()["path"])
    assert {os.path.basename(os.fsencode(p)) for p in paths} == set(names)
    odd = next(p for p in paths if b"\x96" in os.fsencode(p))
    sim = rec.similar(odd, k=2)  # by path, as the walk found it
    assert odd not in set(sim["path"]) and len(sim) == 2
    text = json_text({"report": r1.to_json(), "similar": sim.to_dict(orient="records"),
                      "tracks": rec.tracks()[["path", "title"]].to_dict(orient="records")})
    back = json.loads(text.encode("utf-8").decode("utf-8"))
    assert odd in {t["path"] for t in back["tracks"]}
    assert "02 Band \\x96 Song" in {t["title"] for t in back["tracks"]}
    rec.close()
