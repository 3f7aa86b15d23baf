"""The indexing plan (recommender.recommend.indexer.plan_update), without audio."""

import pytest

from recommender.io.collection import FileEntry
from recommender.recommend.indexer import IndexPlan, Move, plan_update
from recommender.recommend.query import parse_key
from recommender.errors import ParameterError
from recommender.store.catalog import FileState

KEY = "musicnn:abc:spread8:L1"


def _fe(path, size=100, mtime=1):
    return FileEntry(path, size, mtime)


def _hashes(table):
    calls = []

    def content_hash(path, *, size=None):
        calls.append(path)
        if table.get(path) is None:
            raise OSError("unreadable")
        return table[path]

    content_hash.calls = calls
    return content_hash


def test_new_changed_unchanged_and_other_key():
    found = {p: _fe(p) for p in ("/m/new.mp3", "/m/same.mp3", "/m/touched.mp3", "/m/oldmodel.mp3")}
    found["/m/touched.mp3"] = _fe("/m/touched.mp3", mtime=2)
    states = {
        "/m/same.mp3": FileState(1, 100, 1, "h1", KEY),
        "/m/touched.mp3": FileState(2, 100, 1, "h2", KEY),
        "/m/oldmodel.mp3": FileState(3, 100, 1, "h3", "other-model"),
    }
    plan = plan_update(found, states, {}, key=KEY, paths=["/m"], folders=["/m"], content_hash=_hashes({}))
    assert isinstance(plan, IndexPlan)
    assert [fe.path for fe in plan.todo] == ["/m/new.mp3", "/m/touched.mp3", "/m/oldmodel.mp3"]
    assert plan.changed == {"/m/touched.mp3", "/m/oldmodel.mp3"}
    assert plan.unchanged == ["/m/same.mp3"]
    assert plan.moved == [] and plan.missing == {} and plan.known_failures == []


def test_moved_file_keeps_its_track_and_hash_is_kept_for_storing():
    found = {"/m/b/song.mp3": _fe("/m/b/song.mp3"), "/m/other.mp3": _fe("/m/other.mp3")}
    states = {"/m/a/song.mp3": FileState(7, 100, 1, "hsong", KEY)}
    ch = _hashes({"/m/b/song.mp3": "hsong", "/m/other.mp3": "hother"})
    plan = plan_update(found, states, {}, key=KEY, paths=["/m"], folders=["/m"], content_hash=ch)
    assert plan.moved == [Move(7, "/m/a/song.mp3", found["/m/b/song.mp3"])]
    assert [fe.path for fe in plan.todo] == ["/m/other.mp3"]
    assert plan.missing == {}
    # each file hashed once; the hash of the file still to analyse is reused when storing
    assert sorted(ch.calls) == ["/m/b/song.mp3", "/m/other.mp3"]
    assert plan.hashes["/m/other.mp3"] == "hother"


def test_move_needs_same_analysis_key_and_moves_once():
    found = {"/m/x1.mp3": _fe("/m/x1.mp3"), "/m/x2.mp3": _fe("/m/x2.mp3"), "/m/y.mp3": _fe("/m/y.mp3")}
    states = {"/m/gone_x.mp3": FileState(1, 100, 1, "hx", KEY),
              "/m/gone_y.mp3": FileState(2, 100, 1, "hy", "other-model")}
    ch = _hashes({"/m/x1.mp3": "hx", "/m/x2.mp3": "hx", "/m/y.mp3": "hy"})
    plan = plan_update(found, states, {}, key=KEY, paths=["/m"], folders=["/m"], content_hash=ch)
    assert [m.track_id for m in plan.moved] == [1]
    assert [fe.path for fe in plan.todo] == ["/m/x2.mp3", "/m/y.mp3"]
    assert list(plan.missing) == ["/m/gone_y.mp3"]  # analysed with another model: removed, re-analysed


def test_missing_only_under_scanned_paths_and_unreadable_hash():
    found = {"/m/new.mp3": _fe("/m/new.mp3")}
    states = {"/m/gone.mp3": FileState(1, 100, 1, "h", KEY),
              "/other/keep.mp3": FileState(2, 100, 1, "k", KEY),
              "/single.mp3": FileState(3, 100, 1, "s", KEY)}
    ch = _hashes({"/m/new.mp3": None})  # OSError: not a move
    plan = plan_update(found, states, {}, key=KEY, paths=["/m", "/single.mp3"], folders=["/m"], content_hash=ch)
    assert sorted(plan.missing) == ["/m/gone.mp3", "/single.mp3"]
    assert [fe.path for fe in plan.todo] == ["/m/new.mp3"] and plan.hashes == {}
    kept = plan_update(found, states, {}, key=KEY, paths=["/m"], folders=["/m"], remove_missing=False,
                       content_hash=ch)
    assert kept.missing == {} and [fe.path for fe in kept.todo] == ["/m/new.mp3"]


def test_a_scanned_folder_found_empty_keeps_its_tracks_unless_pruned():
    """An unmounted disk or share (the folder is there but empty) is not a deleted album."""
    states = {"/nas/a/1.mp3": FileState(1, 100, 1, "h1", KEY),
              "/nas/a/2.mp3": FileState(2, 100, 1, "h2", KEY),
              "/m/gone.mp3": FileState(3, 100, 1, "h3", KEY),
              "/m/here.mp3": FileState(4, 100, 1, "h4", KEY)}
    found = {"/m/here.mp3": _fe("/m/here.mp3")}
    ch = _hashes({})
    plan = plan_update(found, states, {}, key=KEY, paths=["/nas", "/m"], folders=["/nas", "/m"], content_hash=ch)
    assert sorted(plan.missing) == ["/m/gone.mp3"]  # a folder with files still loses what is gone
    assert plan.kept_empty == {"/nas": 2}
    pruned = plan_update(found, states, {}, key=KEY, paths=["/nas", "/m"], folders=["/nas", "/m"],
                         content_hash=ch, prune_empty=True)
    assert sorted(pruned.missing) == ["/m/gone.mp3", "/nas/a/1.mp3", "/nas/a/2.mp3"] and pruned.kept_empty == {}


def test_update_keeps_an_emptied_folder_and_says_so(tmp_path, demo_collection):
    import shutil

    from recommender import Recommender

    src, _ = demo_collection
    music = tmp_path / "music"
    shutil.copytree(src, music)
    rec = Recommender(tmp_path / "idx")
    first = rec.update([str(music)], progress=False, fingerprints=False)
    n = first.added
    for p in music.rglob("*"):
        if p.is_file():
            p.unlink()
    rep = rec.update([str(music)], progress=False, fingerprints=False)
    assert rep.removed == 0 and len(rec) == n and rep.kept_empty == {str(music): n}
    assert "is empty" in str(rep) and rep.to_json()["kept_empty"] == {str(music): n}
    rep = rec.update([str(music)], progress=False, fingerprints=False, prune_empty=True)
    assert rep.removed == n and len(rec) == 0


def test_an_index_path_that_is_a_file_is_a_clean_error(tmp_path):
    from recommender import Recommender
    from recommender.errors import CatalogError

    f = tmp_path / "not-a-dir"
    f.write_text("x")
    with pytest.raises(CatalogError, match="must be a directory"):
        Recommender(f).update([str(tmp_path)], progress=False)


def test_known_failure_skipped_unless_changed_or_retried():
    found = {"/m/bad.mp3": _fe("/m/bad.mp3", 10, 5), "/m/fixed.mp3": _fe("/m/fixed.mp3", 11, 6)}
    failed = {"/m/bad.mp3": (10, 5), "/m/fixed.mp3": (11, 1), "/m/nostat.mp3": (None, None)}
    plan = plan_update(found, {}, failed, key=KEY, paths=["/m"], folders=["/m"])
    assert plan.known_failures == ["/m/bad.mp3"]
    assert [fe.path for fe in plan.todo] == ["/m/fixed.mp3"]
    retry = plan_update(found, {}, failed, key=KEY, paths=["/m"], folders=["/m"], retry_failed=True)
    assert retry.known_failures == [] and len(retry.todo) == 2


@pytest.mark.parametrize("text, want", [
    ("A", ("A", None)), ("a minor", ("A", "minor")), ("C", ("C", None)), ("F# major", ("F#", "major")),
    ("c#", ("C#", None)), ("Bb minor", ("A#", "minor")), ("Am", ("A", "minor")), ("g MAJOR", ("G", "major")),
])
def test_parse_key(text, want):
    assert parse_key(text) == want


@pytest.mark.parametrize("text", ["H", "A dorian", "", "A minor key", "sharp", 5])
def test_parse_key_rejects_nonsense(text):
    with pytest.raises(ParameterError, match="key="):
        parse_key(text)
