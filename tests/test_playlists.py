"""Playlists, hubness correction and collection analysis on synthetic indexes.

Indexes are built directly from synthetic vectors (catalog rows + FAISS), so
no audio is analysed and the tests stay fast.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recommender.recommend import hubness as hub
from recommender.recommend import playlists as pl
from recommender.store.catalog import Catalog
from recommender.errors import NotInIndexError, ParameterError
from recommender.recommender import Recommender

TAGS = ["rock", "pop", "jazz", "electronic", "Mellow", "sad", "happy", "guitar", "female vocalists", "80s"]
N_ARTISTS, ALBUMS_PER_ARTIST, TRACKS_PER_ALBUM, DIM = 6, 2, 10, 32


def build_index(folder, E, records, T=None):
    """Write a catalog with these vectors and rows, and its FAISS indexes."""
    os.makedirs(folder, exist_ok=True)
    rec = Recommender(folder)
    if T is None:
        T = np.random.default_rng(1).random((len(E), len(TAGS))).astype(np.float32)
    with Catalog(rec.catalog_path, mode="c") as cat:
        cat.set_meta(tags=TAGS)
        with cat.write_batch():
            for r, e, t in zip(records, E, T):
                cat.add_track(r, vectors={"embedding": np.asarray(e, np.float32), "tags": t})
        rec.rebuild_indexes(catalog=cat)
    return Recommender(folder)


def _collection():
    """6 artists x 2 albums x 10 tracks in artist clusters, plus two planted duplicates."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(N_ARTISTS, DIM)) * 2.0
    E, T, recs = [], [], []
    for a in range(N_ARTISTS):
        tag_profile = rng.random(len(TAGS)) * 0.3
        tag_profile[a % len(TAGS)] = 0.9
        for b in range(ALBUMS_PER_ARTIST):
            for t in range(TRACKS_PER_ALBUM):
                i = len(E)
                E.append(centres[a] + rng.normal(size=DIM))
                T.append(np.clip(tag_profile + rng.normal(size=len(TAGS)) * 0.05, 0, 1))
                recs.append({
                    "path": f"/music/artist{a}/album{a}-{b}/{t:02d}.mp3",
                    "artist": f"Artist {a}",
                    "album": f"Album {a}-{b}",
                    "title": f"Song {a}-{b}-{t}",
                    "size": 1000 + i,
                    "mtime_ns": 1,
                    "content_hash": f"hash{i}",
                })
    # a byte-identical copy of track 0 (same content hash) ...
    E.append(E[0] + rng.normal(size=DIM) * 0.2)
    T.append(T[0])
    recs.append({**recs[0], "path": "/music/copies/00-copy.mp3", "album": "Copies", "title": "copy"})
    # ... and a re-encoding of track 1 (other hash, near-identical vector)
    E.append(E[1] + rng.normal(size=DIM) * 1e-3)
    T.append(T[1])
    recs.append({**recs[1], "path": "/music/copies/01.flac", "album": "Copies", "title": "flac",
                 "content_hash": "other"})
    return np.array(E, np.float32), np.array(T, np.float32), recs


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    E, T, recs = _collection()
    rec = build_index(tmp_path_factory.mktemp("pl") / "index", E, recs, T)
    ids = rec.catalog.ids()
    return rec, ids, recs


def _unit(X):
    X = np.asarray(X, np.float64)
    return X / np.linalg.norm(X, axis=-1, keepdims=True)


def _vec(rec, ids):
    return _unit(rec.catalog.vectors("embedding", ids=list(ids))[1])


# --------------------------------------------------------------------- radio
@pytest.mark.parametrize("drift", [False, True, 0.5])
def test_radio_no_repeats_duplicates_and_caps(coll, drift):
    rec, ids, recs = coll
    seed = int(ids[0])
    df = pl.radio(rec, [seed], n=15, drift=drift, max_per_artist=4, max_per_album=3)
    assert list(df.columns) == pl.PLAYLIST_COLUMNS
    assert len(df) == 15
    assert df["position"].tolist() == list(range(1, 16))
    assert df["id"].is_unique and seed not in set(df["id"])
    tr = rec.tracks()
    sel = tr.loc[df["id"]]
    assert sel["content_hash"].is_unique
    assert tr.at[seed, "content_hash"] not in set(sel["content_hash"])  # the copy of the seed is skipped
    assert sel["artist"].value_counts().max() <= 4
    assert sel["album"].value_counts().max() <= 3
    V = _vec(rec, df["id"])
    G = V @ V.T
    np.fill_diagonal(G, 0)
    assert G.max() < pl.DUPLICATE_COSINE
    # distances are the cosine distances between consecutive tracks
    np.testing.assert_allclose(df["distance_from_previous"].to_numpy()[1:],
                               1 - np.sum(V[1:] * V[:-1], axis=1), atol=1e-4)


def test_radio_skips_reencoded_duplicate_of_a_chosen_track(coll):
    rec, ids, _ = coll
    # tracks 1 and the last one ('01.flac') are the same recording with different hashes
    flac = int(ids[-1])
    df = pl.radio(rec, [int(ids[2])], n=40, hubness=None)
    chosen = set(df["id"])
    assert not ({int(ids[1]), flac} <= chosen)


def test_radio_stays_near_seeds_vs_drift(coll):
    rec, ids, _ = coll
    seed = int(ids[5])
    sv = _vec(rec, [seed])[0]
    centred = pl.radio(rec, seed, n=20, hubness=None)
    drifted = pl.radio(rec, seed, n=20, drift=True, hubness=None)
    sim_c = _vec(rec, centred["id"]) @ sv
    sim_d = _vec(rec, drifted["id"]) @ sv
    assert sim_c.mean() >= sim_d.mean()
    # centred radio: the closest candidates to the seed come first
    assert sim_c[:10].mean() > np.median(_vec(rec, ids) @ sv)
    # drift: each next song is at least as close to the previous one as centred mode on average
    assert drifted["distance_from_previous"].iloc[1:].mean() <= centred["distance_from_previous"].iloc[1:].mean() + 1e-6


def test_radio_several_seeds_and_options(coll):
    rec, ids, recs = coll
    a, b = int(ids[0]), int(ids[25])  # artists 0 and 1
    df = pl.radio(rec, [a, recs[25]["path"]], n=10, include_seeds=True, hubness="csls")
    assert df["id"].tolist()[:2] == [a, b]
    assert df["id"].is_unique
    div = pl.radio(rec, [a], n=10, diversity=0.5)
    assert len(div) == 10 and div["id"].is_unique
    # caps that cannot be met give a shorter playlist, never a broken cap
    short = pl.radio(rec, [a], n=50, max_per_artist=1)
    assert len(short) <= N_ARTISTS and rec.tracks().loc[short["id"], "artist"].is_unique
    with pytest.raises(NotInIndexError):
        pl.radio(rec, [10**6], n=5)
    with pytest.raises(ParameterError):
        pl.radio(rec, [a], n=0)
    with pytest.raises(ParameterError):
        pl.radio(rec, [a], n=5, drift=2.0)
    with pytest.raises(ParameterError):
        pl.radio(rec, [a], n=5, hubness="magic")


# ---------------------------------------------------------------------- paths
@pytest.mark.parametrize("method", ["graph", "interpolate"])
def test_path_from_a_to_b_is_smooth(coll, method):
    rec, ids, _ = coll
    rng = np.random.default_rng(0)
    ratios = []
    per_artist = ALBUMS_PER_ARTIST * TRACKS_PER_ALBUM
    for j in range(6):
        # A and B by different artists (far apart)
        a = int(ids[j * per_artist + rng.integers(per_artist)])
        b = int(ids[((j + 1 + j % 2) % N_ARTISTS) * per_artist + rng.integers(per_artist)])
        df = pl.path_between(rec, a, b, n=10, method=method)
        assert len(df) == 10
        assert df["id"].iloc[0] == a and df["id"].iloc[-1] == b
        assert df["id"].is_unique
        assert rec.tracks().loc[df["id"], "content_hash"].is_unique
        steps = df["distance_from_previous"].to_numpy()
        assert steps[0] == 0.0 and (steps[1:] >= 0).all()
        V = _vec(rec, df["id"])
        np.testing.assert_allclose(steps[1:], 1 - np.sum(V[1:] * V[:-1], axis=1), atol=1e-4)
        inner = df["id"].tolist()[1:-1]
        rand = []
        for _ in range(20):
            order = [a] + list(rng.permutation(inner)) + [b]
            W = _vec(rec, order)
            rand.append(np.mean(1 - np.sum(W[1:] * W[:-1], axis=1)))
        ratios.append(steps[1:].mean() / np.mean(rand))
        # smaller steps than going straight from A to B
        assert steps[1:].mean() < 1 - float(V[0] @ V[-1])
    assert np.mean(ratios) < 0.8


def test_path_graph_not_worse_than_interpolation(coll):
    rec, ids, _ = coll
    rng = np.random.default_rng(3)
    g, i = [], []
    for _ in range(8):
        a, b = (int(x) for x in rng.choice(ids, 2, replace=False))
        g.append(pl.path_between(rec, a, b, n=8)["distance_from_previous"].iloc[1:].mean())
        i.append(pl.path_between(rec, a, b, n=8, method="interpolate")["distance_from_previous"].iloc[1:].mean())
    assert np.mean(g) <= np.mean(i) + 1e-9


def test_path_errors_and_short_collections(coll, tmp_path):
    rec, ids, _ = coll
    with pytest.raises(ParameterError):
        pl.path_between(rec, int(ids[0]), int(ids[0]))
    with pytest.raises(ParameterError):
        pl.path_between(rec, int(ids[0]), int(ids[1]), n=1)
    E = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    small = build_index(tmp_path / "small", E, [{"path": f"/x/{i}.mp3", "content_hash": f"h{i}"} for i in range(4)],
                        T=np.random.default_rng(0).random((4, len(TAGS))).astype(np.float32))
    ii = small.catalog.ids()
    df = pl.path_between(small, int(ii[0]), int(ii[3]), n=10)
    assert len(df) == 4 and df["id"].is_unique and df["id"].iloc[-1] == ii[3]


# -------------------------------------------------------------------- hubness
@pytest.fixture(scope="module")
def hubby(tmp_path_factory):
    """High-dimensional data with planted hubs: 5 tracks at the collection's centre."""
    rng = np.random.default_rng(0)
    n, d = 400, 64
    X = rng.normal(size=(n, d)) + 0.3
    X[:5] = 1.3 + rng.normal(size=(5, d)) * 0.01
    recs = [{"path": f"/h/{i}.mp3", "artist": f"a{i % 9}", "album": f"b{i % 17}", "content_hash": f"h{i}"}
            for i in range(n)]
    return build_index(tmp_path_factory.mktemp("hub") / "index", X.astype(np.float32), recs)


def test_hubness_correction_reduces_skewness_on_planted_hubs(hubby):
    rep = hub.hubness_report(hubby, k=10)
    assert list(rep.index) == ["none", "csls", "mp"]
    assert {"skewness", "anti_hub_share", "hub_share", "max_k_occurrence", "k", "n_tracks"} <= set(rep.columns)
    assert rep.at["none", "skewness"] > 3
    for m in ("csls", "mp"):
        assert rep.at[m, "skewness"] < rep.at["none", "skewness"] / 2
        assert rep.at[m, "max_k_occurrence"] < rep.at["none", "max_k_occurrence"] / 2
        assert rep.at[m, "anti_hub_share"] <= rep.at["none", "anti_hub_share"]
    occ = hub.k_occurrence(hubby, 10)
    assert occ.sum() == 10 * len(occ)
    hubs = hubby.catalog.ids()[:5]
    assert occ.loc[hubs].min() > 40
    occ_mp = hub.k_occurrence(hubby, 10, hubness="mp")
    assert occ_mp.loc[hubs].max() < occ.loc[hubs].min()


def test_rerank_hook_and_cache(hubby):
    ids = hubby.catalog.ids()
    q = int(ids[100])
    idx = hubby.faiss_index("embedding")
    S, I = idx.search(hubby.vector(q)[None], 60)
    same_ids, _, cos = hub.rerank(hubby, S, I, method=None)
    np.testing.assert_array_equal(same_ids, I[0])
    for m in ("csls", "mp"):
        rid, adj, rcos = hub.rerank(hubby, S, I, method=m, query_id=q)
        assert sorted(rid.tolist()) == sorted(I[0].tolist())
        assert np.all(np.diff(adj) <= 1e-12)
        # the hubs drop in the ranking
        hubs = set(ids[:5].tolist())
        before = [r for r, t in enumerate(I[0]) if t in hubs]
        after = [r for r, t in enumerate(rid) if t in hubs]
        assert np.mean(after) > np.mean(before)
        # a query given as a vector ranks like the same track given by id (apart from the track itself)
        vid, _, _ = hub.rerank(hubby, S, I, method=m, query_vector=hubby.vector(q))
        assert vid[:1].tolist() == [q]
    c1 = hub.hubness_correction(hubby, "csls")
    assert hub.hubness_correction(hubby, "csls") is c1
    assert c1.r_.shape == (len(ids),) and np.all(c1.r_ <= 1.0001)
    with pytest.raises(ParameterError):
        hub.hubness_correction(hubby, "nope")


def test_hubness_stats_values():
    st = hub.hubness_stats([0, 0, 1, 1, 8], 2)
    assert st["anti_hub_share"] == pytest.approx(0.4)
    assert st["max_k_occurrence"] == 8 and st["hub_share"] == pytest.approx(0.2)
    assert st["skewness"] > 1
    assert hub.hubness_stats([2, 2, 2], 2)["skewness"] == 0.0


# -------------------------------------------------------------------- explore
def _is_png(path, min_bytes=5000):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > min_bytes


def test_tag_groups_cover_msd_tags():
    from recommender.recommend import explore

    msd = ["rock", "pop", "alternative", "electronic", "female vocalists", "00s", "jazz", "beautiful",
           "Mellow", "chill", "instrumental", "guitar", "80s", "party", "sad", "happy", "Hip-Hop", "House"]
    g = explore.tag_groups(msd)
    assert {"rock", "pop", "jazz", "electronic", "Hip-Hop", "House", "alternative"} <= set(g["genre"])
    assert {"Mellow", "chill", "sad", "happy", "beautiful", "party"} <= set(g["mood"])
    assert {"female vocalists", "instrumental", "guitar"} <= set(g["instruments"])
    assert {"00s", "80s"} <= set(g["era"])
    assert sum(map(len, g.values())) == len(msd)


def test_profiles_are_group_means_and_plot(coll, tmp_path):
    from recommender.recommend import explore

    rec, ids, recs = coll
    prof = explore.group_profiles(rec, "album", group="genre")
    assert set(prof.columns) == {"rock", "pop", "jazz", "electronic"}
    assert len(prof) == N_ARTISTS * ALBUMS_PER_ARTIST + 1  # + 'Copies'
    tf = explore.tag_frame(rec)
    sel = [int(i) for i, r in zip(ids, recs) if r["album"] == "Album 0-0"]
    np.testing.assert_allclose(prof.loc["Album 0-0", "rock"], tf.loc[sel, "rock"].mean(), rtol=1e-5)
    assert prof.attrs["n_tracks"]["Album 0-0"] == TRACKS_PER_ALBUM
    by_artist = explore.group_profiles(rec, "artist", group="mood", top=2)
    assert by_artist.shape == (N_ARTISTS, 2)
    out = explore.plot_profiles(prof, tmp_path / "prof.png")
    assert _is_png(out)
    with pytest.raises(ParameterError):
        explore.group_profiles(rec, "album", group="nonsense")
    with pytest.warns(DeprecationWarning, match="group_profiles"):
        old = explore.profiles(rec, "album", group="genre")
    assert old.equals(prof)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_collection_map_png(coll, tmp_path, method):
    from recommender.recommend import explore

    rec, ids, _ = coll
    out = tmp_path / f"map-{method}.png"
    df = explore.collection_map(rec, out, method=method, color_by="artist")
    assert _is_png(out, 10000)
    assert len(df) == len(ids) and {"id", "x", "y", "label"} <= set(df.columns)
    assert np.isfinite(df[["x", "y"]].to_numpy()).all()
    if method == "pca":
        # artist clusters stay apart on the map: a point's nearest map neighbour shares its artist
        P = df[["x", "y"]].to_numpy()
        D = ((P[:, None] - P[None]) ** 2).sum(-1)
        np.fill_diagonal(D, np.inf)
        same = (df["label"].to_numpy()[D.argmin(1)] == df["label"].to_numpy()).mean()
        assert same > 0.8
    gmap = explore.collection_map(rec, None, color_by="genre")
    assert set(gmap["label"]) <= {"rock", "pop", "jazz", "electronic"}


def test_near_duplicates_and_closest_pairs(coll):
    from recommender.recommend import explore

    rec, ids, _ = coll
    dups = explore.near_duplicates(rec)
    pairs = {(r.id_a, r.id_b): r.reason for r in dups.itertuples()}
    assert pairs == {(int(ids[0]), int(ids[-2])): "same content",
                     (int(ids[1]), int(ids[-1])): "near-identical embedding"}
    cp = explore.closest_pairs(rec, n=5)
    assert len(cp) == 5 and (np.diff(cp["cosine"]) <= 1e-9).all()
    assert not set(map(tuple, cp[["id_a", "id_b"]].to_numpy().tolist())) & set(pairs)
    cross = explore.closest_pairs(rec, n=5, exclude_same_album=True)
    assert (cross["album_a"] != cross["album_b"]).all()


# ------------------------------------------------------------------------ CLI
def _cli(capsys, *argv):
    from recommender.cli import main

    rc = main(list(argv))
    out = capsys.readouterr().out
    return rc, out


def test_cli_playlist_json_and_m3u(coll, capsys, tmp_path):
    rec, ids, recs = coll
    m3u = tmp_path / "radio.m3u"
    rc, out = _cli(capsys, "playlist", str(ids[3]), "--index", rec.index_dir, "-n", "7", "--max-per-album", "2",
                   "--m3u", str(m3u), "--json")
    assert rc == 0
    rows = json.loads(out)
    assert len(rows) == 7
    for r in rows:
        assert set(r) == {"position", "id", "path", "artist", "title", "distance_from_previous"}
    assert [r["position"] for r in rows] == list(range(1, 8))
    lines = m3u.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and lines[2] == rows[0]["path"]
    rc, out = _cli(capsys, "playlist", recs[3]["path"], "--to", str(ids[70]), "--index", rec.index_dir, "-n", "6",
                   "--json")
    rows = json.loads(out)
    assert rc == 0 and rows[0]["id"] == ids[3] and rows[-1]["id"] == ids[70] and len(rows) == 6
    rc, out = _cli(capsys, "playlist", str(ids[3]), "--index", rec.index_dir, "-n", "5", "--drift")
    assert rc == 0 and "mean step distance" in out


def test_cli_map_duplicates_hubness(coll, capsys, tmp_path):
    rec, ids, _ = coll
    png = tmp_path / "m.png"
    rc, out = _cli(capsys, "map", "--index", rec.index_dir, "--out", str(png), "--color-by", "album")
    assert rc == 0 and _is_png(png)
    rc, out = _cli(capsys, "duplicates", "--index", rec.index_dir, "--json")
    d = json.loads(out)
    assert rc == 0 and len(d) == 2 and {"id_a", "id_b", "cosine", "reason", "path_a", "path_b", "score", "offset_s"} == set(d[0])
    rc, out = _cli(capsys, "hubness", "--index", rec.index_dir, "--json")
    h = json.loads(out)
    assert rc == 0 and set(h) == {"none", "csls", "mp"} and "skewness" in h["none"]
    rc, out = _cli(capsys, "playlist", "999999", "--index", rec.index_dir)
    assert rc == 2


def test_query_path_does_not_import_tensorflow(coll, tmp_path):
    rec, ids, _ = coll
    code = f"""
import sys
from recommender import Recommender
from recommender.recommend import playlists
from recommender.recommend import explore
from recommender.cli import main
rec = Recommender({rec.index_dir!r})
playlists.radio(rec, [{int(ids[0])}], n=5)
playlists.path_between(rec, {int(ids[0])}, {int(ids[50])}, n=5)
playlists.hubness_report(rec)
explore.near_duplicates(rec); explore.closest_pairs(rec)
explore.plot_profiles(explore.group_profiles(rec), {str(tmp_path / 'p.png')!r})
explore.collection_map(rec, {str(tmp_path / 'm.png')!r})
main(["playlist", "{int(ids[0])}", "--index", {rec.index_dir!r}, "--json"])
bad = sorted(m for m in sys.modules if m.split('.')[0] in ("tensorflow", "keras"))
assert not bad, bad[:5]
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.environ.get("PYTHONPATH"), os.getcwd()] if p))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok")
