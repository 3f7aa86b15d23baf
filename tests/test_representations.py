"""recommender.features.pooling and recommender.contrib.representations on synthetic data with planted structure (fast, no audio)."""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from recommender.contrib import representations as RC
from recommender.features import pooling as R
from recommender.errors import ParameterError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import retrieval  # noqa: E402


def _p_at_k(X, labels, k=3):
    X = R.l2_normalize(X)
    S = X @ X.T
    N = retrieval.neighbours(S, k)
    return float((labels[N] == labels[:, None]).mean())


def planted(n_per=20, n_labels=4, d=100, offset=4.0, signal=0.5, seed=0):
    """Tracks of a few labels on top of a shared offset; tracks differ in how
    much noise they carry (loud/quiet, busy/sparse), so under plain cosine the
    noisy tracks drift away from the offset direction and the clean ones
    cluster together whatever their label."""
    rng = np.random.default_rng(seed)
    centres = signal * rng.normal(size=(n_labels, d))
    labels = np.repeat(np.arange(n_labels), n_per)
    level = rng.uniform(0.5, 2.0, size=(len(labels), 1))
    X = offset + centres[labels] + level * rng.normal(size=(len(labels), d))
    return X.astype(np.float32), labels


# ----------------------------------------------------------------- metric
def test_retrieval_metric_known_answer():
    # 4 points on a line: labels a a b b; neighbours by cosine of 2-D vectors
    X = np.array([[1, 0.0], [1, 0.1], [0, 1.0], [0.1, 1]], dtype=np.float32)
    ts = retrieval.TrackSet(
        paths=[f"/m/{l}/{i}.ogg" for i, l in enumerate("aabb")],
        labels=np.array(list("aabb")), embedding=X, probs=X,
        patch_embeddings=[x[None] for x in X], patch_probs=[x[None] for x in X],
    )
    r = retrieval.evaluate(lambda t: t.embedding, ts, k=1)
    assert r["p@1"] == 1.0 and r["1nn"] == 1.0
    r2 = retrieval.evaluate(lambda t: t.embedding, ts, k=2)
    assert r2["p@2"] == pytest.approx(0.5)  # one right, one wrong for every query
    assert r2["p@2[a]"] == pytest.approx(0.5)
    assert r2["p@2_lo"] <= r2["p@2"] <= r2["p@2_hi"]
    df = retrieval.compare({"x": lambda t: t.embedding, "same": lambda t: 2 * t.embedding}, ts, k=1)
    assert df.loc["same", "d_vs_base"] == 0.0 and df.loc["same", "d_lo"] == 0.0


def test_bootstrap_ci_paired_and_degenerate():
    lo, hi = retrieval.bootstrap_ci(np.ones(20))
    assert lo == hi == 1.0
    v = np.r_[np.zeros(50), np.ones(50)]
    lo, hi = retrieval.bootstrap_ci(v, n_boot=500)
    assert 0.35 < lo < 0.5 < hi < 0.65


def test_trackset_cache_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    pe = [rng.normal(size=(m, 4)).astype(np.float32) for m in (1, 3, 2)]
    ts = retrieval.TrackSet(
        paths=["/x/a/1.ogg", "/x/a/2.ogg", "/x/b/3.ogg"], labels=np.array(["a", "a", "b"]),
        embedding=np.stack([p.mean(0) for p in pe]), probs=np.ones((3, 2), np.float32),
        patch_embeddings=pe, patch_probs=[np.ones((len(p), 2), np.float32) for p in pe],
        descriptors=pd.DataFrame({"mfcc_0_mean": [1.0, 2.0, 3.0]}),
    )
    f = tmp_path / "c.npz"
    ts.save(f)
    back = retrieval.TrackSet.load(f)
    assert back.paths == ts.paths and list(back.labels) == ["a", "a", "b"]
    assert [len(p) for p in back.patch_embeddings] == [1, 3, 2]
    np.testing.assert_allclose(back.patch_embeddings[1], pe[1], atol=1e-2)  # float16 storage
    assert back.descriptors["mfcc_0_mean"].tolist() == [1.0, 2.0, 3.0]


# ---------------------------------------------------------- normalisation
def test_centring_removes_shared_offset_and_improves_precision():
    gains = []
    for seed in range(3):
        X, y = planted(seed=seed)
        norm = R.CollectionNormalizer("center").fit(X)
        Z = norm.transform(X)
        np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(norm.mean_, X.mean(axis=0), rtol=1e-6)
        gains.append(_p_at_k(Z, y, k=5) - _p_at_k(X, y, k=5))
    assert min(gains) > 0.03 and np.mean(gains) > 0.06
    # no offset: centring changes little
    X0, y0 = planted(offset=0.0)
    assert abs(_p_at_k(R.CollectionNormalizer("center").fit_transform(X0), y0, k=5) - _p_at_k(X0, y0, k=5)) < 0.05


def test_standardize_and_whiten_statistics():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)) * np.array([1, 10, 100, 1, 1, 0.1]) + 5
    Z = R.CollectionNormalizer("standardize").fit_transform(X)
    np.testing.assert_allclose(Z.std(axis=0), 1, atol=1e-3)
    W = R.CollectionNormalizer("whiten", shrinkage=0.0).fit_transform(X)
    np.testing.assert_allclose(np.cov(W.T, bias=True), np.eye(6), atol=1e-2)
    W3 = R.CollectionNormalizer("whiten", n_components=3).fit_transform(X)
    assert W3.shape == (200, 3)
    # a constant column stays finite (0) after standardisation
    Xc = np.c_[X, np.full(200, 7.0)]
    Zc = R.CollectionNormalizer("standardize").fit_transform(Xc)
    assert np.all(np.isfinite(Zc)) and np.allclose(Zc[:, -1], 0)


def test_normalizer_json_round_trip_and_errors():
    X, _ = planted()
    for method in ("center", "standardize", "whiten"):
        n = R.CollectionNormalizer(method).fit(X)
        back = R.CollectionNormalizer.from_dict(json.loads(json.dumps(n.to_dict())))
        np.testing.assert_array_equal(back.transform(X), n.transform(X))
    with pytest.raises(ParameterError, match="method"):
        R.CollectionNormalizer("zscore").fit(X)
    with pytest.raises(ParameterError, match="not fitted"):
        R.CollectionNormalizer().transform(X)
    with pytest.raises(ParameterError, match="columns"):
        R.CollectionNormalizer().fit(X).transform(X[:, :3])
    with pytest.raises(ParameterError, match="inconsistent"):
        R.CollectionNormalizer.from_dict({"method": "center", "mean": [0, 0], "scale": [1]})


# ----------------------------------------------------------------- pooling
def test_pooling_shapes_and_values():
    P = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], dtype=np.float32)
    np.testing.assert_allclose(R.pool_patches(P, method="mean"), [2, 3])
    np.testing.assert_allclose(R.pool_patches(P, method="max"), [4, 5])
    ms = R.pool_patches(P, method="mean_std")
    assert ms.shape == (4,)
    np.testing.assert_allclose(ms, [2, 3, np.sqrt(8 / 3), np.sqrt(8 / 3)], rtol=1e-6)
    w = R.pool_patches(P, method="weighted", weights=[0, 0, 1])
    np.testing.assert_allclose(w, [4, 5])
    np.testing.assert_allclose(R.pool_patches(P, method="weighted", weights=[0, 0, 0]), [2, 3])
    out = R.pool_tracks([P, P[:1]], method="mean_std")
    assert out.shape == (2, 4) and np.allclose(out[1, 2:], 0)  # one patch: no spread
    with pytest.raises(ParameterError, match="weights"):
        R.pool_patches(P, method="weighted")
    with pytest.raises(ParameterError, match="method"):
        R.pool_patches(P, method="median")
    with pytest.raises(ParameterError, match="empty"):
        R.pool_patches(np.zeros((0, 2)), method="mean")


def test_confidence_weights_pick_confident_patch():
    probs = np.array([[0.1, 0.2], [0.9, 0.05], [0.3, 0.3]], dtype=np.float32)
    w = R.confidence_weights(probs)
    np.testing.assert_allclose(w, [0.2, 0.9, 0.3])
    assert np.argmax(w) == 1


def test_mean_std_separates_tracks_with_equal_means():
    # two kinds of tracks with the same mean but steady vs. varied patches
    rng = np.random.default_rng(0)
    steady = [rng.normal(0, 0.05, size=(16, 8)) + 1 for _ in range(6)]
    varied = [rng.normal(0, 1.0, size=(16, 8)) + 1 for _ in range(6)]
    y = np.array([0] * 6 + [1] * 6)
    tracks = steady + varied
    X, norm = R.similarity_vectors(tracks)
    assert X.shape == (12, 16) and norm.mean_.shape == (16,)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    mean_only = R.pool_tracks(tracks, method="mean")
    assert _p_at_k(X, y, k=5) == 1.0
    assert _p_at_k(X, y, k=5) > _p_at_k(mean_only - mean_only.mean(0), y, k=5)
    # a query mapped with the stored statistics lands in the same space
    Xq, _ = R.similarity_vectors(tracks[:2], normalizer=norm)
    np.testing.assert_allclose(Xq, X[:2], atol=1e-6)


# -------------------------------------------------------------- adaptation
def test_within_track_projection_shrinks_nuisance_direction():
    rng = np.random.default_rng(0)
    d = 8
    tracks, ids = [], []
    # identity in dims 0-3; a big nuisance that wanders within every track in dim 4
    for t in range(30):
        P = np.zeros((12, d))
        P[:, :4] = rng.normal(size=4)
        P[:, 4] = rng.normal(size=12) * 10
        P[:, 5:] = rng.normal(size=(12, d - 5)) * 0.05
        tracks.append(P.astype(np.float32))
        ids.append(t)
    proj = RC.WithinTrackProjection("wccn", reg=0.1).fit(tracks)
    Q = proj.transform_tracks(tracks)
    # query = one patch; correct answer = the mean of its own track's other patches
    def hit_rate(Ps):
        M = R.l2_normalize(np.stack([p[1:].mean(0) for p in Ps]))
        q = R.l2_normalize(np.stack([p[0] for p in Ps]))
        return float(np.mean(np.argmax(q @ M.T, axis=1) == np.arange(len(Ps))))

    assert hit_rate(Q) > hit_rate(tracks) + 0.3
    lda = RC.WithinTrackProjection("lda", n_components=2).fit(tracks)
    assert lda.transform(tracks[0]).shape == (12, 2)
    with pytest.raises(ParameterError, match="reg"):
        RC.WithinTrackProjection(reg=0).fit(tracks)


# ------------------------------------------------------------- combination
def test_combine_is_weighted_mean_of_cosines():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(5, 4)), rng.normal(size=(5, 7))
    C = RC.combine({"a": A, "b": B}, {"a": 0.75, "b": 0.25})
    assert C.shape == (5, 11)
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1, atol=1e-6)
    ca = R.l2_normalize(A) @ R.l2_normalize(A).T
    cb = R.l2_normalize(B) @ R.l2_normalize(B).T
    np.testing.assert_allclose(C @ C.T, 0.75 * ca + 0.25 * cb, atol=1e-5)
    only_a = RC.combine({"a": A, "b": B}, {"a": 1.0})
    assert only_a.shape == (5, 4)
    with pytest.raises(ParameterError, match="unknown"):
        RC.combine({"a": A}, {"z": 1.0})
    with pytest.raises(ParameterError, match="rows"):
        RC.combine({"a": A, "b": B[:3]})
    with pytest.raises(ParameterError, match="weights"):
        RC.combine({"a": A}, {"a": -1.0})


def test_timbre_matrix_columns_and_missing_values():
    cols = RC.TIMBRE_COLUMNS
    df = pd.DataFrame(np.arange(3 * len(cols), dtype=float).reshape(3, -1), columns=cols)
    df.iloc[1, 0] = np.nan
    T = RC.timbre_matrix(df)
    assert T.shape == (3, 40) and np.all(np.isfinite(T))
    assert T[1, 0] == pytest.approx(np.nanmean(df.iloc[:, 0]))
    with pytest.raises(ParameterError, match="lack"):
        RC.timbre_matrix(df.drop(columns=cols[:2]))


# ------------------------------------------------------------- set matching
def test_set_similarity_prefers_shared_sections():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 16))
    A = np.stack([a, b])      # sections a, b
    B = np.stack([b, a])      # same sections, other order
    Cc = np.stack([a, c])     # shares one section
    assert RC.set_similarity(A, B) == pytest.approx(1.0, abs=1e-6)
    assert RC.set_similarity(A, Cc) < RC.set_similarity(A, B)
    S = RC.set_similarity_matrix([A, B, Cc], center=False)
    assert S.shape == (3, 3)
    np.testing.assert_allclose(S, S.T)
    assert S[0, 1] == pytest.approx(RC.set_similarity(A, B), abs=1e-5)
    assert S[0, 2] == pytest.approx(RC.set_similarity(A, Cc), abs=1e-5)
    Sm = RC.set_similarity_matrix([A, B, Cc], method="mean", center=False)
    assert Sm[0, 2] == pytest.approx(RC.set_similarity(A, Cc, method="mean"), abs=1e-5)


def test_rerank_by_sets_moves_true_match_up():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(4, 16))
    match = q[::-1] + 0.01 * rng.normal(size=(4, 16))
    other = rng.normal(size=(4, 16))
    order, blended = RC.rerank_by_sets(q, [other, match], scores=[0.9, 0.5], alpha=0.8)
    assert order.tolist() == [1, 0] and blended[0] >= blended[1]
    order0, _ = RC.rerank_by_sets(q, [other, match], scores=[0.9, 0.5], alpha=0.0)
    assert order0.tolist() == [0, 1]
    with pytest.raises(ParameterError, match="alpha"):
        RC.rerank_by_sets(q, [other], scores=[0.1], alpha=2)


# ----------------------------------------------------------------- hubness
def test_hubness_corrections_demote_a_hub():
    X, y = planted(offset=0.0, seed=3)
    hubv = X.mean(axis=0, keepdims=True) * 3  # close to everyone
    Xh = np.r_[X, hubv]
    Xn = R.l2_normalize(Xh)
    S = Xn @ Xn.T
    hub = len(Xh) - 1

    def occurrences(M):
        return int((retrieval.neighbours(M, 3) == hub).sum())

    base = occurrences(S)
    assert base > 10
    assert occurrences(RC.csls(S, k=5)) < base
    assert occurrences(RC.mutual_proximity(S)) < base
    with pytest.raises(ParameterError):
        RC.csls(S[:3])


# ------------------------------------------------------------- layer space
def _layer_tracks(n_per=12, n_labels=3, m=8, d_pool=40, d_emb=10, seed=0):
    """Tracks whose labels differ only in how much some pool channels vary
    over the track's patches (equal means), with a large shared offset and a
    per-track nuisance in the embedding."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_labels), n_per)
    spread = rng.uniform(0.2, 3.0, size=(n_labels, d_pool))
    pools, embs = [], []
    for lab in labels:
        pools.append(10.0 + spread[lab] * rng.normal(size=(m, d_pool)))
        embs.append(5.0 + rng.normal(size=(1, d_emb)) + 0.1 * rng.normal(size=(m, d_emb)))
    return pools, embs, labels


def test_layer_summary_layout_and_errors():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(5, 6)), rng.normal(size=(5, 3))
    s = R.layer_summary(A, B)
    assert s.shape == (18,) and s.dtype == np.float32
    np.testing.assert_allclose(s[:6], A.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s[6:9], B.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s[9:15], A.std(0), rtol=1e-5)
    np.testing.assert_allclose(s[15:], B.std(0), rtol=1e-5)
    one = R.layer_summary(A[:1], B[:1])  # one patch: no spread
    assert np.all(one[9:] == 0)
    S = R.layer_summaries([A, A[:2]], [B, B[:2]])
    assert S.shape == (2, 18)
    np.testing.assert_array_equal(S[0], s)
    assert R.LAYER_SUMMARY_INPUTS == {"pool": 1506, "penultimate": 200}
    with pytest.raises(ParameterError, match="same patches"):
        R.layer_summary(A, B[:4])
    with pytest.raises(ParameterError, match="tracks"):
        R.layer_summaries([A], [B, B])


def test_layer_space_finds_labels_that_differ_in_spread_only():
    pools, embs, y = _layer_tracks()
    raw_mean = np.stack([e.mean(0) for e in embs])
    X, norm = R.layer_similarity_vectors(R.layer_summaries(pools, embs))
    assert X.shape == (len(y), 2 * (40 + 10))
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert _p_at_k(X, y, k=5) > 0.9
    assert _p_at_k(raw_mean, y, k=5) < 0.6
    # the pool means alone (what the mean embedding pools) do not separate them
    assert _p_at_k(R.CollectionNormalizer().fit_transform(R.pool_tracks(pools, method="mean")), y, k=5) < 0.6


def test_layer_space_maps_a_query_with_stored_statistics():
    pools, embs, y = _layer_tracks(seed=1)
    S = R.layer_summaries(pools, embs)
    X, norm = R.layer_similarity_vectors(S[1:])  # track 0 is not in the index
    saved = R.CollectionNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    q, same = R.layer_similarity_vectors(S[:1], normalizer=saved)
    np.testing.assert_allclose(q[0], R.l2_normalize((S[:1] - norm.mean_) / norm.scale_)[0], atol=1e-5)
    nearest = np.argsort(-(X @ q[0]))[:5] + 1
    assert (y[nearest] == y[0]).mean() >= 0.8
    assert same is saved
    with pytest.raises(ParameterError, match="n_components"):
        R.layer_similarity_vectors(S, normalizer=saved, n_components=4)


def test_pca_normalizer_keeps_cosines_at_full_rank_and_truncates():
    pools, embs, y = _layer_tracks(seed=2)
    S = R.layer_summaries(pools, embs)
    Xs, _ = R.layer_similarity_vectors(S)
    Xp, norm = R.layer_similarity_vectors(S, n_components=len(S))
    assert norm.method == "pca" and norm.components_.shape == (S.shape[1], len(S))
    np.testing.assert_allclose(norm.components_.T @ norm.components_, np.eye(len(S)), atol=1e-4)
    np.testing.assert_allclose(Xp @ Xp.T, Xs @ Xs.T, atol=1e-4)  # a rotation: same cosines
    X8, n8 = R.layer_similarity_vectors(S, n_components=8)
    assert X8.shape == (len(S), 8) and _p_at_k(X8, y, k=5) > 0.8
    back = R.CollectionNormalizer.from_dict(json.loads(json.dumps(n8.to_dict())))
    np.testing.assert_array_equal(back.transform(S), n8.transform(S))
    with pytest.raises(ParameterError, match="n_components"):
        R.CollectionNormalizer("pca", n_components=len(S) + 1).fit(S)


def test_database_augmentation_pulls_groups_together():
    gains = []
    for seed in range(3):
        X, y = planted(offset=0.0, signal=0.5, seed=seed)
        A = RC.database_augmentation(X, k=3)
        np.testing.assert_allclose(np.linalg.norm(A, axis=1), 1, atol=1e-5)
        gains.append(_p_at_k(A, y, k=5) - _p_at_k(X, y, k=5))
    assert min(gains) > 0.03 and np.mean(gains) > 0.05
    np.testing.assert_allclose(RC.database_augmentation(X, k=0), R.l2_normalize(X), atol=1e-6)
    # k=1: itself with weight 1, its nearest neighbour with weight 1/2
    P = np.array([[1, 0], [0.9, 0.1], [0, 1]], np.float32)
    Pn = R.l2_normalize(P)
    np.testing.assert_allclose(RC.database_augmentation(P, k=1)[0], R.l2_normalize(Pn[0] + 0.5 * Pn[1]), atol=1e-6)
    for bad in (-1, len(X), 2.5, True):
        with pytest.raises(ParameterError, match="k="):
            RC.database_augmentation(X, k=bad)


def test_database_augmentation_of_an_outside_query_matches_the_index_rows():
    X, _ = planted(offset=0.0, signal=0.5, seed=5)
    A = RC.database_augmentation(X, k=3)
    q = RC.database_augmentation(X[:1], k=3, database=X[1:])  # track 0 queried from outside
    np.testing.assert_allclose(q[0], A[0], atol=1e-5)
    with pytest.raises(ParameterError, match="columns"):
        RC.database_augmentation(X[:1, :5], k=3, database=X)
    with pytest.raises(ParameterError, match="k="):
        RC.database_augmentation(X[:1], k=len(X) + 1, database=X)


def _nuisance_tracks(n_per=10, n_labels=3, m=8, d=12, amp=(1, 15), seed=0):
    """Labels differ a little in a 4-d subspace; every track's patches wander
    a lot, by a track-specific amount, in another 4-d subspace (a nuisance
    that the mean and the spread over 8 patches both pick up).  The
    subspaces are rotated, so no per-dimension scaling can remove it."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_labels, 4))
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    labels = np.repeat(np.arange(n_labels), n_per)
    tracks = []
    for lab in labels:
        P = 0.3 * rng.normal(size=(m, d))
        P[:, :4] += centres[lab] + 0.3 * rng.normal(size=4)
        P[:, 4:8] += rng.uniform(*amp) * rng.normal(size=(m, 4))
        tracks.append((P @ Q).astype(np.float32))
    return tracks, labels


def test_patch_space_shrinks_within_track_nuisance():
    wins = []
    for seed in range(3):
        tracks, y = _nuisance_tracks(seed=seed)
        X = RC.PatchSpace(reg=0.1).fit_transform(tracks)
        assert X.shape == (len(y), 24)
        np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
        plain = R.CollectionNormalizer().fit_transform(R.pool_tracks(tracks, method="mean_std"))
        wins.append(_p_at_k(X, y, k=5) - _p_at_k(plain, y, k=5))
    assert min(wins) > 0.15 and np.mean(wins) > 0.2
    with pytest.raises(ParameterError, match="not fitted"):
        RC.PatchSpace().transform(tracks)
    with pytest.raises(ParameterError, match="at least 2 tracks"):
        RC.PatchSpace().fit(tracks[:1])


def test_patch_space_round_trip_and_outside_query(tmp_path):
    tracks, y = _nuisance_tracks(amp=(3, 3), seed=4)
    pool = [t[:, :9] for t in tracks]
    emb = [t[:, 9:] for t in tracks]
    P = RC.layer_patches(pool, emb)
    np.testing.assert_array_equal(P[3], tracks[3])
    space = RC.PatchSpace(reg=0.1).fit(P[1:])  # track 0 stays outside the index
    f = tmp_path / "space.npz"
    np.savez(f, **space.to_arrays())
    with np.load(f, allow_pickle=False) as z:
        back = RC.PatchSpace.from_arrays(z)
    np.testing.assert_array_equal(back.transform(P[:5]), space.transform(P[:5]))
    index = space.transform(P[1:])
    q = RC.database_augmentation(back.transform(P[:1]), k=3, database=index)
    nearest = np.argsort(-(RC.database_augmentation(index, k=3) @ q[0]))[:5] + 1
    assert (y[nearest] == y[0]).mean() >= 0.6
    with pytest.raises(ParameterError, match="same patches"):
        RC.layer_patches(pool, [e[:-1] for e in emb])
    with pytest.raises(ParameterError, match="PatchSpace"):
        RC.PatchSpace.from_arrays({"reg": np.array(1.0)})
