"""``similar`` from the per-generation track table (recommend.view.track_table) gives the
answers it gives reading each query's candidates from SQLite: same rows, same order, same
dtypes, whatever the filters; the table follows new generations."""

import json

import numpy as np
import pandas as pd
import pytest

from recommender import Recommender
from recommender.recommend import view
from recommender.store.catalog import Catalog

N = 400
TAGS = [f"tag{i}" for i in range(50)]


def _add(cat, rng, i, centres, tag_centres):
    c = i % len(centres)
    artist = None if i % 17 == 0 else f"Artist {i // 12}"
    album = None if i % 23 == 0 else f"Album {i // 6}"
    desc = None if i % 11 == 0 else {
        "tempo_bpm": None if i % 29 == 0 else 70.0 + i % 90, "key": None if i % 13 == 0 else "CDEFGAB"[i % 7],
        "mode": "major" if i % 3 else "minor", "loudness_db": -20.0 + i % 12}
    return cat.add_track(
        {"path": f"/m/{artist or 'unknown'}/{i:04d} t.ogg", "size": 1000 + i, "mtime_ns": 1 + i,
         # pairs of byte-identical copies (same hash): never each other's results
         "content_hash": f"{i // 2:032x}" if i < 40 else f"{i:032x}", "duration_s": 100.0 + i,
         "artist": artist, "album": album, "title": None if i % 19 == 0 else f"Track {i}"},
        vectors={"embedding": centres[c] + 0.6 * rng.normal(size=200).astype(np.float32),
                 "tags": np.clip(tag_centres[c] + 0.05 * rng.normal(size=50), 0, 1).astype(np.float32)},
        descriptors=desc)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("table") / "idx"
    root.mkdir()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 200)).astype(np.float32)
    tag_centres = rng.beta(0.5, 4.0, size=(12, 50)).astype(np.float32)
    with Catalog(root / "catalog.sqlite", mode="c") as cat:
        cat.check_compatible(model_name="msd-musicnn", weights_sha256="0" * 64, dims={"embedding": 200, "tags": 50})
        cat.set_meta(tags=TAGS)
        with cat.write_batch():
            for i in range(N):
                _add(cat, rng, i, centres, tag_centres)
        Recommender(root).rebuild_indexes(catalog=cat)
    return str(root), centres, tag_centres


def _both(rec, query, **kw):
    """``similar`` reading SQLite, then from the table (and that the table was used)."""
    view.clear_cache()
    old = view._TABLE_AFTER
    view._TABLE_AFTER = 1 << 60
    try:
        cold = rec.similar(query, **kw)
        assert view.track_table(rec, build=False) is None
    finally:
        view._TABLE_AFTER = old
    assert view.track_table(rec) is not None
    warm = rec.similar(query, **kw)
    return cold, warm


KWS = [
    {},
    {"k": 25, "space": "embedding"},
    {"k": 7, "space": "tags"},
    {"k": 12, "space": "both"},
    {"exclude_same_artist": True, "exclude_same_album": True},
    {"max_per_artist": 1, "k": 15},
    {"tag": "tag3"},
    {"tempo_range": (90, 140), "k": 20},
    {"key": "D", "k": 5},
    {"key": "E minor", "min_loudness_db": -15.0},
    {"exclusions": {"paths": ["/m/Artist 1*"]}},
]


@pytest.mark.parametrize("kw", KWS)
def test_table_answers_like_sqlite(index, kw):
    with Recommender(index[0]) as rec:
        for q in (1, 2, 7, 34, 150, 399):
            cold, warm = _both(rec, q, **kw)
            pd.testing.assert_frame_equal(cold, warm, check_dtype=True)
            assert json.dumps(cold.to_dict(orient="records"), default=str) == \
                json.dumps(warm.to_dict(orient="records"), default=str)
            assert len(warm) and q not in set(warm["id"])


def test_copies_and_vector_queries(index):
    with Recommender(index[0]) as rec:
        cold, warm = _both(rec, 4)  # 4 and 5 share a content hash: 5 is never a result
        pd.testing.assert_frame_equal(cold, warm)
        assert not {4, 5} & set(warm["id"])
        v = rec.vector(9, space="embedding")
        cold, warm = _both(rec, v, k=8)
        pd.testing.assert_frame_equal(cold, warm)


def test_table_is_built_on_the_second_query_and_follows_generations(index, tmp_path):
    import shutil

    root = tmp_path / "idx"
    shutil.copytree(index[0], root)
    view.clear_cache()
    with Recommender(root) as rec:
        assert view.track_table(rec, build=False) is None  # a one-off query reads SQLite
        rec.similar(3)
        first = rec.similar(3)
        table = view.track_table(rec, build=False)
        assert table is not None and len(table) == N and table.generation == rec.catalog.generation
        with Catalog(root / "catalog.sqlite", mode="w") as cat:  # another process indexes a track like 3
            rng = np.random.default_rng(5)
            tid = cat.add_track({"path": "/m/new/copy of 3.ogg", "size": 1, "mtime_ns": 1, "artist": "New",
                                 "content_hash": "f" * 32},
                                vectors={"embedding": rec.vector(3, space="embedding") + 0.3 * rng.normal(size=200),
                                         "tags": rec.vector(3, space="tags")},
                                descriptors={"tempo_bpm": 99.0, "key": "A", "mode": "minor", "loudness_db": -9.0})
        again = rec.similar(3, space="embedding")
        table2 = view.track_table(rec)
        assert table2 is not table and tid in table2 and len(table2) == N + 1
        new = again[again["id"] == tid]  # close to 3, not a copy of it (cosine < 0.995)
        assert len(new) == 1 and new["tempo_bpm"].iloc[0] == 99.0 and new["artist"].iloc[0] == "New"
        assert len(first) == 10


def test_where_reads_sqlite_and_still_answers(index):
    with Recommender(index[0]) as rec:
        view.track_table(rec)
        df = rec.similar(1, k=5, where="tempo_bpm>100")
        assert len(df) and (df["tempo_bpm"] > 100).all()


def test_view_cache_drops_older_generations():
    class Cat:
        generation = 1

    class Rec:
        catalog = Cat()

        def __init__(self, index_dir):
            self.index_dir = index_dir

    cache, a, b = view.ViewCache(), Rec("/a"), Rec("/b")
    assert cache.get(a, ("x",), lambda: 1) == 1 and cache.get(b, ("x",), lambda: 2) == 2
    Cat.generation = 2  # both indexes move on; storing one entry of /a drops /a's older ones only
    assert cache.get(a, ("y",), lambda: 3) == 3
    assert cache.get(a, ("x",), None) is None
    Cat.generation = 1
    assert cache.get(b, ("x",), None) == 2


@pytest.mark.parametrize("kw", KWS)
def test_server_columns_answer_like_the_frame(index, kw):
    """(#19) what ``/similar`` writes (descriptor columns as lists, orjson) is the JSON of the
    frame ``similar`` returns (written by :mod:`json` after cleaning), missing values included."""
    from recommender.recommend import query
    from recommender.serve.api import SIMILAR_KEYS, _rows
    from recommender.serve.responses import json_bytes, json_text

    with Recommender(index[0]) as rec:
        view.track_table(rec)
        for q in (1, 2, 7, 11, 34, 150, 399):
            df = rec.similar(q, **kw)
            cols = query.similar_columns(rec, q, as_lists=True, **kw)
            keys = SIMILAR_KEYS + tuple(c for c in df.columns if c not in SIMILAR_KEYS)
            assert list(cols) == list(df.columns)
            assert json.loads(json_bytes(_rows(cols, keys))) == json.loads(json_text(_rows(df, keys)))


def test_a_short_first_fetch_refetches_to_the_same_answer(index):
    """(#19) a plain query served from the neighbour lists first reads only k + 8 hits; when
    exclusions take most of them it reads more, and answers what a search of 50 answers."""
    with Recommender(index[0]) as rec:
        for q in (3, 77, 250):
            top = rec.similar(q, k=30)
            gone = [p for p in top["path"].tolist()[:16]]  # 16 of the first 18 hits excluded
            cold, warm = _both(rec, q, k=10, exclusions={"paths": gone})
            pd.testing.assert_frame_equal(cold, warm, check_dtype=True)
            assert len(warm) == 10 and not set(warm["path"]) & set(gone)
