"""The same recording twice: never your own song recommended back; ``duplicates`` (issue #16 item 7).

A synthetic rock song is indexed four times -- the FLAC, a byte-identical copy
under another name, an MP3 re-encode and a copy with its first 3 s cut -- next
to sound-alike songs (the same styles, other seeds), two of which (techno
seeds 1 and 4) are closer in the musicnn embedding than the old
"cosine >= 0.995 is a copy" rule allows.  Fingerprints are Chromaprint's
(``fpcalc``); copies are made with ``ffmpeg``.
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

pytestmark = [
    pytest.mark.skipif(shutil.which("fpcalc") is None,
                       reason="fpcalc (Chromaprint, Debian/Ubuntu package libchromaprint-tools) is not installed"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (needed to make the copies)"),
]

DUR = 20.0
SONG = "rock1"
COPIES = ("rock1.flac", "copies/rock1 (copy).flac", "best of/rock1.mp3", "edits/rock1 trimmed.flac")
OTHERS = ("rock2.flac", "rock3.flac", "techno1.flac", "techno4.flac")


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    """(rec, {relative path: id}, music folder, outside copy): 8 tracks, 4 of them one recording."""
    import soundfile as sf

    from recommender.io.demo import SR, synth_track
    from recommender.io.fingerprint import fingerprint_file
    from recommender.recommend import view
    from recommender.recommender import Recommender
    from recommender.store.catalog import Catalog

    base = tmp_path_factory.mktemp("samerec")
    music = base / "music"
    for d in ("copies", "best of", "edits"):
        (music / d).mkdir(parents=True)
    for name in ("rock1", "rock2", "rock3", "techno1", "techno4"):
        style, seed = name[:-1], int(name[-1])
        sf.write(music / f"{name}.flac", 0.8 * synth_track(style, seed=seed, duration_s=DUR), SR)
    song = music / "rock1.flac"
    shutil.copyfile(song, music / COPIES[1])
    _ffmpeg("-i", str(song), "-c:a", "libmp3lame", "-b:a", "128k", str(music / COPIES[2]))
    _ffmpeg("-ss", "3", "-i", str(song), str(music / COPIES[3]))
    outside = base / "elsewhere" / "rock1.ogg"  # another copy, never indexed
    outside.parent.mkdir()
    _ffmpeg("-i", str(song), "-c:a", "libvorbis", "-q:a", "3", str(outside))

    rec = Recommender(base / "index")
    rec.update([str(music)], progress=False, descriptors=False)
    with Catalog(rec.catalog_path, mode="w") as cat:
        ids = {os.path.relpath(p, music): int(t) for t, p in cat.tracks(columns=["path"])["path"].items()}
        assert len(ids) == 8
        if hasattr(cat, "fingerprints") and len(cat.fingerprints()) < len(ids):
            # an indexer that does not fingerprint yet: store them as it would
            for rel, t in ids.items():
                fp = fingerprint_file(music / rel)
                cat.set_fingerprint(t, fp.to_bytes(), fp.duration_s)
    view.clear_cache()
    rec = Recommender(base / "index")
    return rec, ids, music, outside


def _group(ids):
    return {ids[c] for c in COPIES}


def test_fingerprints_are_stored(coll):
    rec, ids, _, _ = coll
    from recommender.recommend import recordings

    fps = recordings.fingerprints(rec)
    assert set(fps) == set(ids.values())
    assert all(len(f) > 100 for f in fps.values())  # ~8 items a second over 20 s


def test_duplicates_are_exactly_the_copies(coll):
    from recommender.recommend import explore, recordings

    rec, ids, music, _ = coll
    df = explore.near_duplicates(rec)
    pairs = {frozenset((int(r.id_a), int(r.id_b))): r for r in df.itertuples()}
    group = _group(ids)
    assert set(pairs) == {frozenset((a, b)) for a in group for b in group if a < b}  # 6 pairs, no other
    same = pairs[frozenset((ids[COPIES[0]], ids[COPIES[1]]))]
    assert same.reason == "same content" and same.score == 1.0
    for c in COPIES[2:]:
        r = pairs[frozenset((ids[COPIES[0]], ids[c]))]
        assert r.reason == "fingerprint" and r.score >= 0.9
    trim = pairs[frozenset((ids[COPIES[0]], ids[COPIES[3]]))]
    # offset: seconds to add to a time in id_a to find it in id_b; the trimmed copy starts 3 s in
    want = -3.0 if trim.id_a == ids[COPIES[0]] else 3.0
    assert abs(trim.offset_s - want) < 0.2
    assert recordings.duplicate_groups(rec) == [sorted(group)]
    for c in COPIES:
        assert recordings.same_recording_ids(rec, ids[c]) == group - {ids[c]}
    for o in OTHERS:
        assert recordings.same_recording_ids(rec, ids[o]) == set()
    # the same answers from a bare catalog
    from recommender.store.catalog import Catalog

    with Catalog(rec.catalog_path) as cat:
        assert recordings.same_recording_ids(cat, ids["techno1.flac"]) == set()
        assert recordings.same_recording_ids(cat, ids[COPIES[2]]) == group - {ids[COPIES[2]]}


def test_sound_alikes_closer_than_the_old_rule_stay_different(coll):
    """techno1 and techno4 are two songs; the embedding alone would call them one recording."""
    from recommender.recommend import playlists as pl

    rec, ids, _, _ = coll
    a, b = ids["techno1.flac"], ids["techno4.flac"]
    _, V = rec.catalog.vectors("embedding", ids=[a, b])
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    cos = float(V[0] @ V[1])
    assert cos > 0.99  # the premise: they sound alike
    res = rec.similar(a, k=7)
    assert b in set(res["id"])
    for hub in ("mp", None):
        radio = pl.radio(rec, a, n=10, hubness=hub)
        assert b in set(radio["id"])  # not dropped as a "duplicate" (cosine was %.4f)


@pytest.mark.parametrize("hubness", [None, "mp"])
def test_similar_never_returns_a_copy_of_the_query(coll, hubness):
    rec, ids, music, _ = coll
    group = _group(ids)
    others = {ids[o] for o in OTHERS}
    for c in COPIES:
        res = rec.similar(ids[c], k=10, hubness=hubness)
        assert set(res["id"]) == others, c  # every other song, no copy
        res = rec.similar(str(music / c), k=10, hubness=hubness)
        assert not set(res["id"]) & group
    assert list(res.columns[:8]) == ["rank", "id", "path", "artist", "title", "album", "score", "shared_tags"]


def test_similar_from_an_outside_copy(coll):
    rec, ids, _, outside = coll
    assert rec.resolve(str(outside)) is None
    res = rec.similar(str(outside), k=10)
    assert set(res["id"]) == {ids[o] for o in OTHERS}


@pytest.mark.parametrize("hubness", [None, "mp"])
def test_radio_never_plays_a_recording_twice(coll, hubness):
    from recommender.recommend import playlists as pl

    rec, ids, _, _ = coll
    group = _group(ids)
    others = {ids[o] for o in OTHERS}
    for c in COPIES:
        df = pl.radio(rec, ids[c], n=10, hubness=hubness)
        assert set(df["id"]) == others  # no copy of the seed, no other song lost
    for drift in (False, True):
        df = pl.radio(rec, ids["rock2.flac"], n=10, hubness=hubness, drift=drift)
        chosen = set(df["id"])
        assert len(chosen & group) == 1 and others - {ids["rock2.flac"]} <= chosen and len(df) == 4


def test_paths_never_use_a_recording_twice(coll):
    from recommender.recommend import playlists as pl

    rec, ids, _, _ = coll
    group = _group(ids)
    for method in ("graph", "interpolate"):
        p = pl.path_between(rec, ids[COPIES[2]], ids["techno4.flac"], n=8, method=method)
        inner = set(p["id"].iloc[1:-1])
        assert not inner & group and p["id"].iloc[0] == ids[COPIES[2]]
        p = pl.path_between(rec, ids["rock2.flac"], ids["techno1.flac"], n=8, method=method)
        assert len(set(p["id"]) & group) <= 1 and p["id"].is_unique


def test_cli_duplicates_and_playlist(coll, capsys):
    from recommender.cli import main

    rec, ids, music, _ = coll
    assert main(["duplicates", "--index", rec.index_dir, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    group = _group(ids)
    assert {frozenset((r["id_a"], r["id_b"])) for r in rows} == {frozenset((a, b)) for a in group for b in group
                                                                   if a < b}
    assert {"id_a", "id_b", "reason", "score", "offset_s", "cosine", "path_a", "path_b"} == set(rows[0])
    assert main(["duplicates", "--index", rec.index_dir]) == 0
    out = capsys.readouterr().out
    assert "6 pair(s)" in out and "fingerprint" in out and "same content" in out
    assert main(["playlist", str(music / COPIES[0]), "--index", rec.index_dir, "-n", "10", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} == {ids[o] for o in OTHERS}


def test_without_fingerprints_the_embedding_rule_applies(coll, monkeypatch):
    """An index from before fingerprints (or without fpcalc): same content hash, then cosine >= 0.995."""
    from recommender.recommend import playlists as pl
    from recommender.recommend import recordings, view

    rec, ids, _, _ = coll
    monkeypatch.setattr(recordings, "_read_fingerprints", lambda catalog, ids=None: {})
    view.clear_cache()
    try:
        df = recordings.duplicate_pairs(rec)
        group = _group(ids)
        found = {frozenset((int(a), int(b))): r for a, b, r in zip(df["id_a"], df["id_b"], df["reason"])}
        for a in group:
            for b in group:
                if a < b:
                    assert found[frozenset((a, b))] in ("same content", "near-identical embedding")
        assert set(found.values()) <= {"same content", "near-identical embedding"}
        res = rec.similar(ids[COPIES[2]], k=10)
        assert not set(res["id"]) & group
        radio = pl.radio(rec, ids[COPIES[0]], n=10)
        assert not set(radio["id"]) & group
    finally:
        view.clear_cache()


def test_fingerprint_store_reads_only_tracks_that_have_one(coll, tmp_path):
    """(#19) the per-generation fingerprint store knows which tracks have a fingerprint (one read
    of their ids) and reads only those: a track without one costs no query."""
    import numpy as np

    from recommender.recommend import recordings
    from recommender.store.catalog import Catalog

    rec, ids, _, _ = coll
    stored = rec.catalog.fingerprints(ids=[ids["rock2.flac"]])[ids["rock2.flac"]]
    with Catalog(tmp_path / "c.sqlite", mode="c") as cat:
        cat.check_compatible(model_name="m", weights_sha256="0" * 64, dims={"embedding": 4})
        t = [cat.add_track({"path": f"/m/{i}.ogg", "size": 1, "mtime_ns": 1, "content_hash": f"{i:032x}"},
                           vectors={"embedding": np.ones(4, np.float32)}) for i in range(3)]
        cat.set_fingerprint(t[1], *stored)
        asked = []
        read = cat.fingerprints
        cat.fingerprints = lambda ids=None: (asked.append(None if ids is None else list(ids)), read(ids))[1]
        got = recordings._FingerprintStore(cat).get(t)
    assert asked == [[t[1]]]
    assert got[t[0]] is None and got[t[2]] is None and len(got[t[1]]) > 100
