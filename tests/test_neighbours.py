"""Neighbour lists (recommender.store.neighbours): written beside the similarity FAISS file,
identical to a search for every track, used by ``similar`` only when they match the index."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import VECTOR_INDEX_TRACKS, write_vector_index

from recommender import Recommender
from recommender._utils import unit_rows
from recommender.errors import IndexFileError
from recommender.recommend import query, view
from recommender.store import spaces
from recommender.store.faiss_index import VectorIndex
from recommender.store.neighbours import NeighbourLists, neighbours_path

N = VECTOR_INDEX_TRACKS


@pytest.fixture()
def index(vector_index):
    return vector_index


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_lists_are_the_hits_of_a_search(kind):
    rng = np.random.default_rng(2)
    X = unit_rows(rng.normal(size=(3000, 48)).astype(np.float32))
    ids = np.arange(10, 3010, dtype=np.int64)
    idx = VectorIndex.build(ids, X, kind=kind)
    lists = NeighbourLists.build(idx, k=40)
    assert lists.neighbours.shape == (3000, 40) and lists.k == 40
    for t in rng.choice(ids, 300, replace=False):
        q = unit_rows(idx.reconstruct(int(t))[None])
        for fetch in (1, 25, 40):
            scores, hits = idx.search(q, fetch)
            got = lists.lookup(int(t), fetch)
            assert np.array_equal(got[1], hits) and np.array_equal(got[0], scores)
    assert lists.lookup(10, 41) is None and lists.lookup(99999, 5) is None


def test_written_with_the_index_and_used_by_similar(index):
    path = index / "similarity.faiss"
    assert os.path.exists(neighbours_path(path)) and not os.path.exists(index / "embedding.neighbours.npz")
    view.clear_cache()
    with Recommender(index) as rec:
        view.track_table(rec)
        lists = view.neighbour_lists(rec, "similarity")
        assert lists is not None and len(lists) == N and view.neighbour_lists(rec, "embedding") is None
        used = []
        real = lists.lookup
        lists.lookup = lambda t, f: used.append(t) or real(t, f)
        with_lists = {t: rec.similar(t, k=10) for t in range(1, N + 1, 7)}
        assert len(used) == len(with_lists)
        lists.lookup = lambda t, f: None  # every query searches FAISS
        for t, df in with_lists.items():
            pd.testing.assert_frame_equal(df, rec.similar(t, k=10), check_dtype=True)
            assert t not in set(df["id"]) and len(df) == 10
        cols = query.similar_columns(rec, 5, k=10)  # the server's rows: the frame's values
        assert json.dumps({c: list(map(str, v)) for c, v in cols.items()}) == \
            json.dumps({c: list(map(str, rec.similar(5, k=10)[c])) for c in cols})
    view.clear_cache()  # the patched lists stay out of other tests


def test_stale_or_foreign_lists_are_ignored(index, tmp_path):
    root = tmp_path / "idx"
    shutil.copytree(index, root)
    path = root / "similarity.faiss"
    side = VectorIndex.read_sidecar(path)
    NeighbourLists.load(neighbours_path(path), side=side)
    with pytest.raises(IndexFileError, match="another FAISS index"):
        NeighbourLists.load(neighbours_path(path), side=dict(side, faiss_sha256="0" * 64))
    assert spaces.index_is_current(path, side["generation"], space="similarity")
    with open(neighbours_path(path), "wb") as fh:
        fh.write(b"not an npz")
    assert not spaces.index_is_current(path, side["generation"], space="similarity")
    view.clear_cache()
    with Recommender(root) as rec:
        view.track_table(rec)
        assert view.neighbour_lists(rec, "similarity") is None  # unreadable: logged, queries search
        assert len(rec.similar(3)) == 10
        rec.rebuild_indexes(["similarity"], only_stale=True)  # lists not current: written again
    view.clear_cache()
    with Recommender(root) as rec:
        view.track_table(rec)
        assert view.neighbour_lists(rec, "similarity") is not None
    spaces.remove_index(path)
    assert not os.path.exists(neighbours_path(path))


@pytest.fixture()
def hnsw_index(tmp_path, monkeypatch):
    """400 tracks in an HNSW index (what a collection of >= 50k tracks gets)."""
    import recommender.store.faiss_index as fi

    monkeypatch.setattr(fi, "FLAT_MAX_N", 1)
    write_vector_index(tmp_path, 400)
    view.clear_cache()
    yield tmp_path
    view.clear_cache()


def test_lists_are_not_read_once_ef_search_is_tuned(hnsw_index):
    """(breaker, #19) set_search_params(ef_search=...) changes what a search returns."""
    with Recommender(hnsw_index) as rec:
        assert rec.faiss_index("similarity").kind == "hnsw"
        view.track_table(rec)
        lists = view.neighbour_lists(rec, "similarity")
        assert lists is not None and lists.serves(rec.faiss_index("similarity"))
        rec.faiss_index("similarity").set_search_params(ef_search=4)
        assert not lists.serves(rec.faiss_index("similarity"))
        with_lists = {t: rec.similar(t, k=10)["id"].tolist() for t in range(1, 150)}
        lists.lookup = lambda t, f: None  # every query searches FAISS
        assert with_lists == {t: rec.similar(t, k=10)["id"].tolist() for t in with_lists}


def test_a_slow_query_does_not_hold_the_catalog(hnsw_index, monkeypatch):
    """(breaker, #19) a server's event loop reads catalog.generation for every plain /similar:
    it must not wait for another thread's search to finish."""
    import threading
    import time

    with Recommender(hnsw_index) as rec:
        view.track_table(rec)
        real = query.candidates
        monkeypatch.setattr(query, "candidates", lambda *a, **k: (time.sleep(1.0), real(*a, **k))[1])
        th = threading.Thread(target=query.similar_columns, args=(rec, 5), kwargs={"k": 10})
        th.start()
        time.sleep(0.2)
        t0 = time.perf_counter()
        rec.catalog.generation  # noqa: B018
        waited = time.perf_counter() - t0
        th.join()
    assert waited < 0.5, f"catalog.generation waited {waited:.2f} s for another thread's search"
