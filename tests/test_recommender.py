"""End to end: index a folder with good and bad files, query it, update it."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import write_bad_files
from recommender import Recommender
from recommender.errors import NotInIndexError, ParameterError


def _style(path):
    return os.path.basename(os.path.dirname(path))


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_collection):
    src, _ = demo_collection
    root = tmp_path_factory.mktemp("coll")
    music = root / "music"
    shutil.copytree(src, music)
    bad = write_bad_files(str(music / "broken"))
    os.makedirs(music / "folder.mp3")  # a directory with an audio extension
    index = root / "index"
    rec = Recommender(index)
    report = rec.update([music], progress=False)
    return rec, report, music, bad


def test_first_build_indexes_good_files_and_records_bad_ones(built):
    rec, report, music, bad = built
    assert report.added == 8
    assert report.failed == len(bad)
    failed = rec.failures()
    assert set(failed["path"]) == set(bad)
    for reason in failed["reason"]:
        assert isinstance(reason, str) and len(reason) > 5
    info = rec.info()
    assert info["tracks"] == 8
    assert info["failures"] == len(bad)
    assert info["model"] == "msd-musicnn"
    assert info["dims"]["embedding"] == 200 and info["dims"]["tags"] == 50
    tr = rec.tracks()
    assert tr["content_hash"].notna().all()
    assert (tr["duration_s"].round(1) == 9.0).all()


def test_neighbours_come_from_the_same_style(built):
    rec, *_ = built
    tr = rec.tracks()
    same = 0
    for tid, row in tr.iterrows():
        res = rec.similar(int(tid), k=3)
        assert len(res) == 3
        assert int(tid) not in set(res["id"])
        assert list(res["rank"]) == [1, 2, 3]
        assert res["score"].is_monotonic_decreasing
        same += _style(res["path"].iloc[0]) == _style(row["path"])
    assert same >= 6, f"only {same}/8 nearest neighbours share the style"


def test_similar_result_columns_and_shared_tags(built):
    rec, *_ = built
    res = rec.similar(1, k=2)
    for col in ["rank", "id", "path", "artist", "title", "album", "score", "shared_tags"]:
        assert col in res.columns
    assert all(isinstance(s, str) and s for s in res["shared_tags"])


def test_spaces_and_filters(built):
    rec, *_ = built
    tr = rec.tracks()
    q = int(tr.index[0])
    for space in ("embedding", "tags", "both"):
        res = rec.similar(q, k=4, space=space)
        assert len(res) == 4 and q not in set(res["id"])
        assert (res["score"] <= 1.0001).all()
    album = tr.loc[q, "album"]
    res = rec.similar(q, k=7, exclude_same_album=True)
    assert album not in set(res["album"])
    assert len(res) == 8 - 2  # the other track of its album is excluded
    res = rec.similar(q, k=7, max_per_artist=1)
    assert res["artist"].value_counts().max() == 1
    with pytest.raises(ParameterError, match="tag="):
        rec.similar(q, tag="no-such-tag")
    with pytest.raises(ParameterError, match="k="):
        rec.similar(q, k=0)


def test_query_by_vector_and_by_outside_file(built, tmp_path):
    rec, _, music, _ = built
    tr = rec.tracks()
    q = int(tr.index[0])
    v = rec.vector(q)
    res = rec.similar(v, k=3)
    assert int(res["id"].iloc[0]) == q  # a vector is not a track: it finds itself
    outside = tmp_path / "copy.flac"
    shutil.copy(tr.loc[q, "path"], outside)
    res = rec.similar(str(outside), k=3)
    assert q not in set(res["id"])  # a duplicate (same content hash) of the query is excluded


def test_classify_indexed_track(built):
    rec, *_ = built
    c = rec.classify(1)
    assert len(c.tags) == 50 and c.tags.is_monotonic_decreasing
    assert c.embedding.shape == (200,)
    assert len(c.timeline) >= 1


def test_unknown_query(built):
    rec, *_ = built
    with pytest.raises(NotInIndexError):
        rec.similar(99999)
    with pytest.raises(NotInIndexError):
        rec.similar("/no/such/file.mp3")


def test_incremental_rescan_moves_and_removals(tmp_path, demo_collection):
    src, _ = demo_collection
    music = tmp_path / "music"
    shutil.copytree(src, music)
    rec = Recommender(tmp_path / "idx")
    r1 = rec.update([music], progress=False)
    assert r1.added == 8
    ids_before = dict(zip(rec.tracks()["path"], rec.tracks().index))
    r2 = rec.update([music], progress=False)
    assert (r2.added, r2.updated, r2.removed, r2.unchanged) == (0, 0, 0, 8)
    # move one file, delete another, touch a third
    a = music / "rock" / "rock_01.flac"
    b = music / "moved_rock.flac"
    shutil.move(a, b)
    os.remove(music / "techno" / "techno_02.wav")
    c = music / "ballad" / "ballad_01.flac"
    st = os.stat(c)
    os.utime(c, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r3 = rec.update([music], progress=False)
    assert (r3.moved, r3.removed, r3.updated, r3.added) == (1, 1, 1, 0)
    tr = rec.tracks()
    assert len(tr) == 7
    assert ids_before[str(a)] == dict(zip(tr["path"], tr.index))[str(b)]  # id survives a move
    assert ids_before[str(c)] == dict(zip(tr["path"], tr.index))[str(c)]  # and an update
    res = rec.similar(int(tr.index[0]), k=6)
    assert len(res) == 6 and set(res["id"]) <= set(tr.index)


def test_faiss_files_are_rebuilt_when_missing(tmp_path, demo_collection):
    src, _ = demo_collection
    rec = Recommender(tmp_path / "idx")
    rec.update([src], progress=False)
    expected = rec.similar(1, k=3)
    rec.close()
    for f in os.listdir(tmp_path / "idx"):
        if f.endswith(".faiss") or f.endswith(".faiss.json"):
            os.remove(tmp_path / "idx" / f)
    rec2 = Recommender(tmp_path / "idx")
    got = rec2.similar(1, k=3)
    pd.testing.assert_frame_equal(expected, got)


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "recommender", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_cli_index_similar_info_failures(tmp_path, demo_collection):
    src, _ = demo_collection
    music = tmp_path / "m"
    shutil.copytree(src, music)
    bad = write_bad_files(str(music / "bad"))
    idx = tmp_path / "cli-index"
    r = _cli("index", str(music), "--index", str(idx), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["added"] == 8 and out["failed"] == len(bad)
    r = _cli("similar", "1", "--index", str(idx), "-k", "3", "--json", "--m3u", str(tmp_path / "p.m3u"))
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 3
    assert set(rows[0]) >= {"rank", "id", "path", "score", "artist", "title", "album"}
    assert (tmp_path / "p.m3u").read_text().startswith("#EXTM3U")
    r = _cli("info", "--index", str(idx), "--json")
    assert json.loads(r.stdout)["tracks"] == 8
    r = _cli("failures", "--index", str(idx), "--json")
    assert {f["path"] for f in json.loads(r.stdout)} == set(bad)
    r = _cli("similar", "12345", "--index", str(idx))
    assert r.returncode == 2 and "12345" in r.stderr



def test_cli_index_a_path_that_does_not_exist(tmp_path, demo_collection):
    """A mistyped PATH is said and left out (not a failure of the index); the others are indexed."""
    src, _ = demo_collection
    idx = tmp_path / "idx"
    gone = tmp_path / "no-such-folder"
    r = _cli("index", str(gone), "--index", str(idx))
    assert r.returncode == 2 and f"{gone}: no such file or directory" in r.stderr
    assert not idx.exists()  # nothing created
    r = _cli("index", str(gone), str(src), "--index", str(idx), "--json")
    assert r.returncode == 1 and f"{gone}: no such file or directory" in r.stderr
    assert json.loads(r.stdout)["added"] == 8
    r = _cli("failures", "--index", str(idx), "--json")
    assert json.loads(r.stdout) == []

def test_read_only_commands_do_not_import_tensorflow(built):
    rec, *_ = built
    code = (
        "import sys, io, contextlib\n"
        "from recommender.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    assert main(['similar', '1', '--index', {rec.index_dir!r}, '--json']) == 0\n"
        f"    assert main(['info', '--index', {rec.index_dir!r}]) == 0\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_similar_explain_column(built):
    rec, *_ = built
    res = rec.similar(1, k=2, explain=True)
    assert "why" in res.columns
    assert all(isinstance(w, str) and len(w) > 20 for w in res["why"])
    with pytest.raises(ParameterError, match="explain"):
        rec.similar(rec.vector(1), k=2, explain=True)


@pytest.mark.parametrize("method", ["mp", "csls"])
def test_similar_with_hubness_correction(built, method):
    rec, *_ = built
    plain = rec.similar(1, k=5)
    res = rec.similar(1, k=5, hubness=method)
    assert len(res) == 5 and 1 not in set(res["id"])
    # the score column stays the cosine of each result
    cos = dict(zip(plain["id"], plain["score"]))
    for i, s in zip(res["id"], res["score"]):
        if i in cos:
            assert abs(cos[i] - s) < 1e-5
    with pytest.raises(ParameterError, match="hubness"):
        rec.similar(1, hubness="bogus")


def test_cli_classify_json_and_exit_code(tmp_path, demo_collection):
    _, paths = demo_collection
    bad = tmp_path / "bad.mp3"
    bad.write_text("not audio")
    r = _cli("classify", paths[0], str(bad), "--json", "--top", "3")
    assert r.returncode == 1  # one file failed
    out = json.loads(r.stdout)
    assert out[0]["path"] == paths[0]
    assert len(out[0]["tags"]) == 50 and abs(sum(p for _, p in out[0]["top"]) - sum(sorted(out[0]["tags"].values())[-3:])) < 1e-4
    assert [t for t, _ in out[0]["top"]] == sorted(out[0]["tags"], key=out[0]["tags"].get, reverse=True)[:3]
    assert out[1]["path"] == str(bad) and "bad.mp3" in out[1]["error"]
    r = _cli("classify", paths[0])
    assert r.returncode == 0 and os.path.basename(paths[0]) in r.stdout
    assert "oneDNN" not in r.stderr and "cuInit" not in r.stderr


def test_top_level_names_are_not_shadowed_by_submodules():
    import importlib
    import pkgutil

    import recommender

    for mod in pkgutil.iter_modules(recommender.__path__):  # every submodule imported
        if not mod.name.startswith("cli_"):
            importlib.import_module(f"recommender.{mod.name}")
    from recommender import classify

    assert callable(classify) and classify.__name__ == "classify"
    for name in recommender.__all__:
        assert not isinstance(getattr(recommender, name), type(recommender)), name


def test_unchanged_rescan_does_not_load_the_model(built):
    rec, _, music, bad = built
    code = (
        "import sys\n"
        "from recommender import Recommender\n"
        f"rep = Recommender({rec.index_dir!r}).update([{str(music)!r}], progress=False)\n"
        "assert rep.added == rep.updated == rep.removed == 0, rep\n"
        f"assert rep.unchanged == 8 and rep.skipped_failed == {len(bad)}, rep\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_similarity_space_is_the_layer_space(built, tmp_path):
    import numpy as np

    from recommender.features.pooling import l2_normalize

    rec, _, music, _ = built
    cat = rec.catalog
    ids, L = cat.vectors("layer_summary")
    assert L.shape == (len(rec.tracks()), 3412)
    # mean of the pool layer: the max half is never below the mean half
    assert np.all(L[:, 0:1506:2] >= L[:, 1:1506:2] - 1e-4)
    # the similarity vector of a track is its standardised layer summary
    norm = rec.similarity_normalizer()
    q = int(ids[0])
    np.testing.assert_allclose(rec.vector(q, space="similarity"),
                               l2_normalize(norm.transform(L[:1]))[0], atol=1e-4)
    # an outside copy of an indexed file lands on it: same analysis, same space
    tr = rec.tracks()
    outside = tmp_path / "copy-of-q.flac"
    shutil.copy(tr.loc[q, "path"], outside)
    res = rec.analyse(str(outside))
    np.testing.assert_allclose(res.layer_summary, L[0], atol=2e-3 * max(1.0, float(np.abs(L[0]).max())))


def test_catalog_without_layer_summaries_falls_back_then_upgrades(tmp_path, demo_collection):
    import sqlite3

    src, _ = demo_collection
    index = tmp_path / "index"
    rec = Recommender(index)
    rec.update([src], progress=False, descriptors=False)
    n = len(rec.tracks())
    rec.close()
    # an index written before the layer summary existed: no such vectors, old analysis key
    con = sqlite3.connect(index / "catalog.sqlite")
    con.execute("DELETE FROM vectors WHERE space='layer_summary'")
    con.execute("UPDATE tracks SET analysis_key = substr(analysis_key, 1, length(analysis_key) - 3)")
    con.commit()
    con.close()
    old = Recommender(index)
    assert old.catalog.count_vectors("layer_summary") == 0
    res = old.similar(1, k=3)  # still answers, in the 400-d mean/spread space
    assert len(res) == 3
    assert old.space_dim("similarity") == 400
    report = old.update([src], progress=False, descriptors=False)
    assert report.updated + report.added == n  # re-analysed once for the new vectors
    assert old.catalog.count_vectors("layer_summary") == n
    assert old.space_dim("similarity") == 3412
    assert len(old.similar(1, k=3)) == 3


def test_large_collections_project_the_layer_space(tmp_path, demo_collection, monkeypatch):
    import numpy as np

    import recommender.store.spaces as S

    monkeypatch.setattr(S, "LAYER_PCA_ABOVE", 3)
    monkeypatch.setattr(S, "LAYER_PCA_DIMS", 4)
    src, _ = demo_collection
    rec = Recommender(tmp_path / "index")
    rec.update([src], progress=False, descriptors=False)
    assert rec.space_dim("similarity") == 4
    v = rec.vector(1, space="similarity")
    assert v.shape == (4,) and abs(float(np.linalg.norm(v)) - 1) < 1e-4
    res = rec.similar(1, k=3)
    assert len(res) == 3 and 1 not in set(res["id"])
    outside = tmp_path / "copy.flac"
    shutil.copy(rec.tracks().loc[1, "path"], outside)
    assert int(rec.similar(str(outside), k=1, space="similarity")["id"].iloc[0]) != 1  # duplicate excluded


def test_cli_version():
    from recommender import __version__

    r = _cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"recommender {__version__}"
