"""Exclusions (path globs, tags, durations), the ban list and radio's negative seeds, in every mode.

The synthetic index puts every kind of excluded track right next to the query
(so that without the exclusion it would be among the results): a test passes
only if the exclusion removes it.
"""

import json
import os
import shutil

import numpy as np
import pytest

from recommender.cli.main import main
from recommender.errors import NotInIndexError, ParameterError
from recommender.recommend import explore, playlists
from recommender.recommend.exclusions import Exclusions, _glob_regex, excluded_ids, read_bans
from recommender.recommender import Recommender
from recommender.store.catalog import Catalog

TAGS = ["rock", "pop", "jazz", "electronic", "Mellow", "sad", "happy", "guitar", "christmas carol", "80s"]
DIM = 16
NEAR = 14  # tracks in the query's cluster


def _collection():
    """4 clusters of 14 tracks; in cluster 0 (query: track 0) one track of each excluded kind."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, DIM)) * 3.0
    E, T, recs = [], [], []
    for c in range(4):
        for t in range(NEAR):
            i = len(E)
            E.append(centres[c] + rng.normal(size=DIM) * 0.7)
            tv = rng.random(len(TAGS)) * 0.1
            tv[[0, 1, 3, 4, 6]] += 0.5  # rock, pop, electronic, Mellow, happy: the usual top 5
            tv[2] = 0.0
            T.append(tv)
            recs.append({"path": f"/music/style{c}/Artist {c}/{t:02d}.flac", "artist": f"Artist {c}-{t % 3}",
                         "album": f"Album {c}", "title": f"Song {c}-{t}", "genre": "Pop", "duration_s": 200.0 + t,
                         "size": 1000 + i, "mtime_ns": 1, "content_hash": f"hash{i}"})
    recs[1]["path"] = "/music/Audiobooks/Some Book/01.flac"
    recs[2]["duration_s"] = 4000.0  # a DJ mix
    recs[3]["genre"] = "Christmas"
    recs[4]["title"] = "Last Christmas"
    T[5][2] = 2.0  # jazz, the strongest tag
    recs[6]["duration_s"] = 20.0  # an interlude
    recs[7]["path"] = "/music/style0/Artist 0/07.M4B"
    return np.array(E, np.float32), np.array(T, np.float32), recs


def build_index(folder, E, T, records):
    os.makedirs(folder, exist_ok=True)
    rec = Recommender(folder)
    with Catalog(rec.catalog_path, mode="c") as cat:
        cat.set_meta(tags=TAGS)
        with cat.write_batch():
            for r, e, t in zip(records, E, T):
                cat.add_track(r, vectors={"embedding": e, "tags": t})
        rec.rebuild_indexes(catalog=cat)
    return Recommender(folder)


@pytest.fixture
def coll(tmp_path):
    E, T, recs = _collection()
    rec = build_index(tmp_path / "index", E, T, recs)
    ids = [int(i) for i in rec.catalog.ids()]
    return rec, ids


EXCL = Exclusions(paths=["Audiobooks/*", "*.m4b"], tags=["christmas", "jazz"], min_duration_s=60, max_duration_s=1800)


def _kinds(ids):
    """Ids of the tracks each filter of EXCL must remove (tracks 1, 2, 3, 4, 5, 6, 7)."""
    return set(ids[1:8])


# ------------------------------------------------------------------ rules
@pytest.mark.parametrize("pattern, path, hit", [
    ("Audiobooks/*", "/music/Audiobooks/b/01.m4b", True),
    ("Audiobooks", "/music/Audiobooks/b/01.m4b", True),
    ("audiobooks", "/music/Audiobooks/b/01.m4b", True),
    ("*/Audiobooks/*", "/music/Audiobooks/b/01.m4b", True),
    ("/music/Audiobooks", "/music/Audiobooks/b/01.m4b", True),
    ("/Audiobooks", "/music/Audiobooks/b/01.m4b", False),
    ("books/*", "/music/Audiobooks/b/01.m4b", False),
    ("*.m4b", "/music/a/01.M4B", True),
    ("*.m4b", "/music/a/01.m4a", False),
    ("Mix??", "/music/Mixes/x.mp3", True),
    ("Mix??", "/music/Mixtapes/x.mp3", False),
    ("caf\udce9/*", "/music/caf\udce9/x.mp3", True),
])
def test_path_glob_rules(pattern, path, hit):
    assert bool(_glob_regex(pattern).search(path)) is hit


def test_cue_tracks_match_by_their_audio_file(tmp_path):
    """A track cut from a file by a CUE sheet (``album.flac#t=s,e``) matches globs of its file; banning
    the file bans its tracks, banning one track leaves the others."""
    E, T, recs = _collection()
    for j, t in enumerate((20, 21, 22)):
        recs[t]["path"] = "/music/cd/album.flac#t=" + ("0,200.5", "200.5,400", "400")[j]
    rec = build_index(tmp_path / "index", E, T, recs)
    ids = [int(i) for i in rec.catalog.ids()]
    cue = {ids[20], ids[21], ids[22]}
    assert excluded_ids(rec, {"paths": ["*.flac"]}) >= cue
    assert excluded_ids(rec, {"paths": ["album.flac"]}) == cue
    rec.ban("/music/cd/album.flac#t=200.5,400")
    assert excluded_ids(rec) == {ids[21]}
    rec.unban(ids[21])
    # the album's audio file is not indexed itself (its tracks are): a ban of it as `ban` stores it
    with Catalog(rec.catalog_path, mode="w") as cat:
        cat.set_meta(bans=[{"path": "/music/cd/album.flac", "content_hash": None, "added_at": 0}])
    assert excluded_ids(rec) == cue
    assert not (cue & set(rec.similar(ids[NEAR], k=len(ids) - 1, space="embedding")["id"]))


def test_exclusions_validate():
    assert not Exclusions().active and Exclusions(max_duration_s=10).active
    assert Exclusions.coerce({"tags": "christmas"}).tags == ("christmas",)
    with pytest.raises(ParameterError, match="min_duration_s"):
        Exclusions(min_duration_s=100, max_duration_s=10)
    with pytest.raises(ParameterError, match="max_duration_s=-1"):
        Exclusions(max_duration_s=-1)
    with pytest.raises(ParameterError, match="paths"):
        Exclusions(paths=[""])
    with pytest.raises(ParameterError, match="unknown field 'path'"):
        Exclusions.coerce({"path": "x"})
    with pytest.raises(ParameterError, match="exclusions="):
        Exclusions.coerce(42)


def test_each_filter_removes_its_track(coll):
    rec, ids = coll
    assert excluded_ids(rec, {"paths": ["Audiobooks"]}) == {ids[1]}
    assert excluded_ids(rec, {"max_duration_s": 1800}) == {ids[2]}
    assert excluded_ids(rec, {"min_duration_s": 60}) == {ids[6]}
    assert excluded_ids(rec, {"tags": ["Christmas"]}) == {ids[3], ids[4]}  # genre, title (whole word)
    assert excluded_ids(rec, {"tags": ["jazz"]}) == {ids[5]}  # model tag in the top 5
    assert excluded_ids(rec, {"tags": ["christ"]}) == set()  # not a whole word
    assert excluded_ids(rec, {"tags": ["christmas carol"]}) == set()  # a model tag, in nobody's top 5
    assert excluded_ids(rec, {"paths": ["*.m4b"]}) == {ids[7]}
    assert excluded_ids(rec, EXCL) == _kinds(ids)
    assert excluded_ids(rec, None) == frozenset()


# ------------------------------------------------------------------ similar
def test_similar_exclusions_and_bans(coll):
    rec, ids = coll
    q = ids[0]
    base = set(rec.similar(q, k=NEAR - 1, space="embedding")["id"])
    assert _kinds(ids) | {ids[8]} <= base  # all of them are near neighbours of the query
    res = rec.similar(q, k=NEAR - 1, space="embedding", exclusions=EXCL)
    assert len(res) == NEAR - 1 and not (set(res["id"]) & _kinds(ids))
    rec.ban(ids[8])
    res = rec.similar(q, k=30, space="embedding")
    assert ids[8] not in set(res["id"]) and len(res) == 30
    # a banned query is allowed (it is never a result anyway); the ban holds in every space
    assert len(rec.similar(ids[8], k=5, space="tags")) == 5
    for space in ("similarity", "tags", "both"):
        assert ids[8] not in set(rec.similar(q, k=len(ids) - 1, space=space)["id"])
    assert rec.unban(ids[8]) == 1
    assert ids[8] in set(rec.similar(q, k=NEAR - 1, space="embedding")["id"])


# ------------------------------------------------------------------ radio
def test_radio_exclusions_bans_and_banned_seed(coll):
    rec, ids = coll
    base = set(playlists.radio(rec, ids[0], n=NEAR - 1, hubness=None)["id"])
    assert _kinds(ids) | {ids[8]} <= base
    rec.ban(ids[8])
    for kw in ({"hubness": None}, {"hubness": "csls", "drift": 0.5}, {"hubness": "mp", "diversity": 0.3}):
        got = playlists.radio(rec, ids[0], n=40, exclusions=EXCL, **kw)
        assert len(got) == 40 and not (set(got["id"]) & (_kinds(ids) | {ids[8]}))
    with pytest.raises(ParameterError, match=rf"seed {ids[8]} .* is banned.*recommender unban {ids[8]}"):
        playlists.radio(rec, [ids[0], ids[8]], n=5)
    # an excluded (not banned) seed is used as given
    assert len(playlists.radio(rec, ids[1], n=5, exclusions=EXCL, include_seeds=True)) == 5


def test_radio_avoid_moves_away(coll):
    rec, ids = coll
    from recommender.recommend import view

    seed, avoid = ids[0], ids[NEAR]  # cluster 0, steered away from cluster 1
    X = view.vectors_of(rec, "embedding", ids)
    a = view.vectors_of(rec, "embedding", [avoid])[0]
    sim = dict(zip(ids, X @ a))
    base = playlists.radio(rec, seed, n=30, hubness=None)
    away = playlists.radio(rec, seed, n=30, hubness=None, avoid=[avoid])
    mean_base = np.mean([sim[t] for t in base["id"]])
    mean_away = np.mean([sim[t] for t in away["id"]])
    assert mean_away < mean_base - 0.05, (mean_base, mean_away)
    assert avoid not in set(away["id"])
    # no track closer to the avoided one than to the seed
    s = view.vectors_of(rec, "embedding", [seed])[0]
    V = view.vectors_of(rec, "embedding", away["id"].tolist())
    assert np.all(V @ a <= V @ s + 1e-6)
    with pytest.raises(ParameterError, match="also a seed"):
        playlists.radio(rec, seed, n=5, avoid=[seed])


# ------------------------------------------------------------------ paths
def test_path_exclusions_bans_and_banned_end(coll):
    rec, ids = coll
    a, b = ids[0], ids[NEAR]
    rec.ban(ids[8], ids[9])
    for method in ("graph", "interpolate"):
        p = playlists.path_between(rec, a, b, n=len(ids) - 12, method=method, exclusions=EXCL)
        assert p["id"].iloc[0] == a and p["id"].iloc[-1] == b
        inner = set(p["id"].iloc[1:-1])
        assert not (inner & (_kinds(ids) | {ids[8], ids[9]}))
    # without them, the longest path uses every track (so they would be used)
    full = playlists.path_between(rec, a, b, n=len(ids) - 2, method="interpolate")
    assert not ({ids[8], ids[9]} & set(full["id"])) and len(full) == len(ids) - 2
    with pytest.raises(ParameterError, match=rf"path end {ids[9]} .* is banned"):
        playlists.path_between(rec, ids[9], b, n=5)
    rec.unban(ids[8], ids[9])
    full = playlists.path_between(rec, a, b, n=len(ids), method="interpolate")
    assert {ids[8], ids[9]} | _kinds(ids) <= set(full["id"])


# ------------------------------------------------------------------ map
def test_map_drops_or_marks(coll, tmp_path):
    rec, ids = coll
    rec.ban(ids[8])
    df = explore.collection_map(rec, exclusions=EXCL)
    assert len(df) == len(ids) - 8 and not (set(df["id"]) & (_kinds(ids) | {ids[8]}))
    marked = explore.collection_map(rec, tmp_path / "m.png", exclusions=EXCL, excluded="mark")
    assert len(marked) == len(ids) and os.path.getsize(tmp_path / "m.png") > 0
    gone = set(marked.loc[marked["excluded"], "id"])
    assert gone == _kinds(ids) | {ids[8]}
    assert set(marked.loc[marked["label"] == "(excluded)", "id"]) == gone
    with pytest.raises(ParameterError, match="excluded="):
        explore.collection_map(rec, excluded="hide")


# ------------------------------------------------------------------ the ban list
def test_ban_list_storage_and_errors(coll, tmp_path):
    rec, ids = coll
    added = rec.ban(ids[10], "/music/style0/Artist 0/11.flac", ids[10])
    assert len(added) == 2 and rec.ban(ids[10]) == []
    stored = Catalog(rec.catalog_path).get_meta("bans")
    assert [e["path"] for e in stored] == ["/music/style0/Artist 0/10.flac", "/music/style0/Artist 0/11.flac"]
    assert stored[0]["content_hash"] == f"hash{ids[10] - ids[0]}"
    df = rec.bans()
    assert list(df["id"]) == [ids[10], ids[11]] and list(df.columns)[:2] == ["id", "path"]
    with pytest.raises(NotInIndexError):
        rec.ban(99999)
    with pytest.raises(NotInIndexError, match="neither an indexed track"):
        rec.ban("/no/such/file.mp3")
    assert len(rec.bans()) == 2  # nothing written by a failed ban
    # a file not indexed yet: banned by path and content hash, applies once indexed
    f = tmp_path / "later.flac"
    f.write_bytes(b"x" * 100)
    (e,) = rec.ban(str(f))
    assert e["path"] == str(f) and e["content_hash"]
    row = rec.bans().iloc[-1]
    assert row["path"] == str(f) and row["id"] is not None and str(row["id"]) == "<NA>"
    assert rec.unban(str(f)) == 1 and rec.unban("/never/banned.mp3") == 0
    # a broken stored list is a clear error naming the catalog
    with Catalog(rec.catalog_path, mode="w") as cat:
        cat.set_meta(bans={"not": "a list"})
    with pytest.raises(Exception, match="catalog.sqlite.*meta\\['bans'\\]"):
        rec.similar(ids[0], k=3)


def test_ban_non_utf8_path_round_trips(tmp_path):
    E, T, recs = _collection()
    odd = os.fsdecode(b"/music/caf\xe9/01.flac")  # Latin-1 byte: not UTF-8
    recs[12]["path"] = odd
    rec = build_index(tmp_path / "index", E, T, recs)
    ids = [int(i) for i in rec.catalog.ids()]
    (e,) = rec.ban(odd)
    assert e == {"path_hex": b"/music/caf\xe9/01.flac".hex(), "content_hash": e["content_hash"],
                 "added_at": e["added_at"]}
    assert read_bans(rec.catalog)[0]["path_hex"] == e["path_hex"]
    assert rec.bans()["path"].iloc[0] == odd and int(rec.bans()["id"].iloc[0]) == ids[12]
    assert ids[12] not in set(rec.similar(ids[0], k=len(ids) - 1, space="embedding")["id"])
    assert excluded_ids(rec, {"paths": [os.fsdecode(b"caf\xe9")]}) == {ids[12]}
    assert rec.unban(ids[12]) == 1 and rec.bans().empty


def test_ban_survives_update_and_a_moved_file(tmp_path, demo_collection):
    src, _ = demo_collection
    music = tmp_path / "music"
    shutil.copytree(src, music)
    rec = Recommender(tmp_path / "idx")
    rec.update([music], progress=False)
    a = music / "rock" / "rock_01.flac"
    tid = rec.resolve(str(a))
    other = rec.resolve(str(music / "rock" / "rock_02.wav"))
    assert tid in set(rec.similar(other, k=7)["id"])
    rec.ban(str(a))
    assert tid not in set(rec.similar(other, k=7)["id"])
    rep = rec.update([music], progress=False)
    assert rep.unchanged == 8
    assert tid not in set(rec.similar(other, k=7)["id"]) and list(rec.bans()["id"]) == [tid]
    b = music / "moved_rock.flac"
    shutil.move(a, b)
    rep = rec.update([music], progress=False)
    assert rep.moved == 1 and rec.resolve(str(b)) == tid
    res = rec.similar(other, k=7)
    assert len(res) == 6 and tid not in set(res["id"])  # 8 tracks - the query - the banned one
    assert tid not in set(playlists.radio(rec, other, n=7)["id"])
    df = rec.bans()
    assert list(df["id"]) == [tid] and df["path"].iloc[0] == str(b) and df["banned_path"].iloc[0] == str(a)
    rec.ban(other)  # a write refreshes the stored path of the moved file
    assert read_bans(rec.catalog)[0]["path"] == str(b)


# ------------------------------------------------------------------ command line
def test_cli_ban_unban_bans_and_flags(coll, capsys):
    rec, ids = coll
    idx = rec.index_dir
    assert main(["ban", str(ids[8]), "/music/style0/Artist 0/09.flac", "--index", idx]) == 0
    assert "banned 2 track(s)" in capsys.readouterr().out
    assert main(["bans", "--index", idx, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in out] == [ids[8], ids[9]]
    assert main(["bans", "--index", idx]) == 0
    assert "2 banned" in capsys.readouterr().out
    assert main(["similar", str(ids[0]), "--index", idx, "-k", "13", "--space", "embedding", "--json",
                 "--exclude-path", "Audiobooks/*", "--exclude-path", "*.m4b", "--exclude-tag", "christmas",
                 "--exclude-tag", "jazz", "--min-duration", "60", "--max-duration", "1800"]) == 0
    got = {r["id"] for r in json.loads(capsys.readouterr().out)}
    assert len(got) == 13 and not (got & (_kinds(ids) | {ids[8], ids[9]}))
    assert main(["playlist", str(ids[0]), "--index", idx, "-n", "10", "--json", "--avoid", str(ids[NEAR]),
                 "--exclude-tag", "christmas"]) == 0
    got = {r["id"] for r in json.loads(capsys.readouterr().out)}
    assert len(got) == 10 and not (got & {ids[3], ids[4], ids[8], ids[9], ids[NEAR]})
    assert main(["playlist", str(ids[8]), "--index", idx, "-n", "5"]) == 2
    assert "is banned" in capsys.readouterr().err
    assert main(["unban", str(ids[8]), "--index", idx]) == 0
    assert "unbanned 1" in capsys.readouterr().out
    assert main(["ban", "999999", "--index", idx]) == 2


def test_unban_of_a_cue_track_banned_by_its_audio_file_says_so(tmp_path, capsys, caplog):
    """`ban album.flac` bans its cue tracks; `unban <cue track id>` does not lift the album's ban (it
    would bring back every track) and says where the ban comes from and how to lift it; `bans` shows
    the audio file as one CUE album line, not "(not indexed)"."""
    E, T, recs = _collection()
    for j, t in enumerate((20, 21, 22)):
        recs[t]["path"] = "/music/cd/album.flac#t=" + ("0,200.5", "200.5,400", "400")[j]
    rec = build_index(tmp_path / "index", E, T, recs)
    ids = [int(i) for i in rec.catalog.ids()]
    cue = [ids[20], ids[21], ids[22]]
    with Catalog(rec.catalog_path, mode="w") as cat:  # as `ban /music/cd/album.flac` stores it
        cat.set_meta(bans=[{"path": "/music/cd/album.flac", "content_hash": "whole-file", "added_at": 0}])
    df = rec.bans()
    assert list(df["id"]) == cue and set(df["banned_path"]) == {"/music/cd/album.flac"}
    idx = str(rec.index_dir)
    assert main(["bans", "--index", idx]) == 0
    out = capsys.readouterr().out
    assert "not indexed" not in out
    assert f"/music/cd/album.flac  (CUE album: 3 track(s), ids {cue[0]}, {cue[1]}, {cue[2]})" in out
    with caplog.at_level("WARNING"):
        assert rec.unban(cue[1]) == 0
    assert "part of the CUE album /music/cd/album.flac" in caplog.text
    assert excluded_ids(rec) == set(cue)  # still banned, as said
    assert main(["playlist", str(cue[1]), "--index", idx, "-n", "3"]) == 2  # a banned seed: the right command
    assert f"recommender unban /music/cd/album.flac --index {idx}" in capsys.readouterr().err
    assert main(["unban", str(cue[1]), "--index", idx, "--json"]) == 0
    res = capsys.readouterr()
    said = json.loads(res.out)
    assert said["unbanned"] == 0 and len(said["still_banned"]) == 1
    assert f"recommender unban /music/cd/album.flac --index {idx}" in said["still_banned"][0]
    assert "none of these was banned" not in res.err
    assert main(["unban", "/music/cd/album.flac", "--index", idx]) == 0  # the command it gave works
    assert "unbanned 1" in capsys.readouterr().out and excluded_ids(rec) == set()


def test_ban_and_unban_take_byte_paths(tmp_path):
    E, T, recs = _collection()
    odd = b"/music/caf\xe9/01.flac"  # not UTF-8: a byte path is the natural way to name it
    recs[12]["path"] = os.fsdecode(odd)
    rec = build_index(tmp_path / "index", E, T, recs)
    ids = [int(i) for i in rec.catalog.ids()]
    assert rec.resolve(odd) == ids[12] and rec.resolve(b"/music/style0/Artist 0/10.flac") == ids[10]
    # the indexed track (the file itself is not on disk: only the index can answer)
    assert int(rec.similar(odd, k=3, space="embedding")["id"].iloc[0]) != ids[12]
    (e,) = rec.ban(odd)
    assert e["path_hex"] == odd.hex() and list(rec.bans()["id"]) == [ids[12]]
    assert ids[12] not in set(rec.similar(ids[0], k=len(ids) - 1, space="embedding")["id"])
    assert rec.unban(odd) == 1 and rec.bans().empty
    rec.ban(b"/music/style0/Artist 0/10.flac")
    assert rec.unban(b"/music/style0/Artist 0/10.flac") == 1
    f = tmp_path / "later.flac"
    f.write_bytes(b"y" * 50)
    (e,) = rec.ban(os.fsencode(f))  # a file not indexed yet, as bytes
    assert e["path"] == str(f)
    with pytest.raises(ParameterError, match="give a track id or a path"):
        rec.ban(3.5)
