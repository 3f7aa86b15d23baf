"""(#19, breaker) the k + 8 first fetch of a plain query served from the neighbour lists must not
change an answer on an HNSW index.  FAISS searches an HNSW graph with ef = max(ef_search, k): a
search of more than ef_search hits explores more, and its first hits need not be those of a
smaller search (seen on a 15,000-track 256-d index, default parameters: track 12358's
search(129) holds a triple copy at ranks 9-11 that search(128) and the lists miss, so
``similar(12358, k=30)`` answered 3 other tracks once the track table was built).
The answers stay equal when the search that decides them (the last fetch of the query) is either
the same size or at most ef_search hits on both paths; this test checks that on every query."""

import numpy as np
import pytest

from recommender import Recommender
from recommender.recommend import query as query_mod
from recommender.recommend import view
from recommender.store import faiss_index
from recommender.store.catalog import Catalog

N, D = 400, 16


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("narrow") / "idx"
    root.mkdir()
    mp = pytest.MonkeyPatch()
    mp.setattr(faiss_index, "FLAT_MAX_N", 100)  # HNSW
    rng = np.random.default_rng(0)
    try:
        with Catalog(root / "catalog.sqlite", mode="c") as cat:
            cat.check_compatible(model_name="msd-musicnn", weights_sha256="0" * 64, dims={"embedding": D, "tags": 8})
            cat.set_meta(tags=[f"t{i}" for i in range(8)])
            with cat.write_batch():
                for i in range(N):
                    cat.add_track({"path": f"/m/{i:05d}.ogg", "size": 1000 + i, "mtime_ns": 1 + i,
                                   "content_hash": f"{i:032x}", "duration_s": 100.0, "artist": f"A{i % 31}",
                                   "album": None, "title": f"T{i}"},
                                  vectors={"embedding": rng.normal(size=D).astype(np.float32),
                                           "tags": rng.random(8).astype(np.float32)})
            Recommender(root).rebuild_indexes(catalog=cat)
    finally:
        mp.undo()
    return str(root)


def _fetches(monkeypatch, rec, q, **kw):
    """The fetch sizes of ``rec.similar(q, **kw)``, cold (no table, no lists) then warm."""
    seen = []
    real = query_mod.candidates
    monkeypatch.setattr(query_mod, "candidates", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    view.clear_cache()
    old, view._TABLE_AFTER = view._TABLE_AFTER, 1 << 60
    try:
        cold = rec.similar(q, **kw)
    finally:
        view._TABLE_AFTER = old
    cold_f, seen[:] = list(seen), []
    assert view.track_table(rec) is not None and view.neighbour_lists(rec, "similarity") is not None
    warm = rec.similar(q, **kw)
    return cold_f, list(seen), cold, warm


@pytest.mark.parametrize("k", [5, 10, 14, 29, 30, 56, 57, 100])
@pytest.mark.parametrize("exclude", [0, 40])
def test_the_deciding_search_is_the_same(index, monkeypatch, k, exclude):
    with Recommender(index) as rec:
        idx = rec.faiss_index("similarity")
        ef = idx.params["ef_search"]
        assert idx.kind == "hnsw"
        for q in (1, 77, 200):
            kw = {"k": k}
            if exclude:  # the query's nearest tracks taken: a refetch
                kw["exclusions"] = {"paths": rec.similar(q, k=exclude)["path"].tolist()}
            cold_f, warm_f, cold, warm = _fetches(monkeypatch, rec, q, **kw)
            last_c, last_w = cold_f[-1], warm_f[-1]
            assert last_c == last_w or (last_c <= ef and last_w <= ef), (q, k, exclude, cold_f, warm_f)
            assert cold.equals(warm)
