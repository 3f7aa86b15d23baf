"""benchmarks/retrieval_protocol.py: the pieces of the issue-#17 protocol on synthetic data (fast, no audio)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import protocol_cache as PC
import retrieval_protocol as RP


def _gaussians(n=6, d=5, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(n, d))
    A = rng.normal(size=(n, d, d))
    cov = A @ A.transpose(0, 2, 1) + np.eye(d)
    return mu, cov


def test_gaussian_js_is_symmetric_zero_on_self_and_matches_closed_form():
    mu, cov = _gaussians()
    S = RP.gaussian_js(mu, cov)
    np.testing.assert_allclose(S, S.T, atol=1e-9)
    np.testing.assert_allclose(np.diag(S), 0, atol=1e-9)
    assert (S[~np.eye(len(S), dtype=bool)] < 0).all()
    # one pair by hand: 1/2 (log|Sm| - (log|S1| + log|S2|) / 2), Sm the moment-matched mixture
    m = (mu[0] + mu[1]) / 2
    Sm = (cov[0] + np.outer(mu[0], mu[0]) + cov[1] + np.outer(mu[1], mu[1])) / 2 - np.outer(m, m)
    js = 0.5 * (np.linalg.slogdet(Sm)[1] - (np.linalg.slogdet(cov[0])[1] + np.linalg.slogdet(cov[1])[1]) / 2)
    assert S[0, 1] == pytest.approx(-js)


def test_rank_fusion_orders_by_mean_rank():
    A = np.array([[0, 3, 2, 1], [3, 0, 1, 2], [2, 1, 0, 3], [1, 2, 3, 0]], float)
    R = RP.ranks(A)
    assert R[0].tolist() == [3, 0, 1, 2]  # the query itself is ranked last
    F = RP.rank_fusion([A, A])
    np.testing.assert_allclose(F, -R)
    B = -A  # reversed order: equal weights tie every candidate of row 0
    F2 = RP.rank_fusion([A, B])
    assert len(set(F2[0, 1:])) == 1


def test_stratified_draw_keeps_every_label():
    labels = np.array(["a"] * 40 + ["b"] * 10 + ["c"] * 3)
    rows = RP.stratified_draw(labels, 20, np.random.default_rng(0))
    assert len(rows) == 20 and len(set(rows)) == 20
    got = {lab: (labels[rows] == lab).sum() for lab in "abc"}
    assert got["c"] >= 2 and got["a"] > got["b"] > 0


def test_artist_hits_only_for_shared_artists():
    S = np.array([[0, 2, 1, 0], [2, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], float)
    h = RP.artist_hits(S, np.array(["x", "x", "y", ""]), k=1)
    assert h[0] == 1 and h[1] == 1
    assert np.isnan(h[2]) and np.isnan(h[3])  # 'y' is alone, '' has no tag


def _cache(n_per=6, labels=("a", "b", "c"), m=8, seed=0):
    """A HalfCache with planted soundtrack structure in both layers and the MFCC Gaussians."""
    rng = np.random.default_rng(seed)
    cent = {lab: rng.normal(size=1706) for lab in labels}
    paths, labs, patches = [], [], {k: [] for k in ("msd8_pool", "msd8_pen")}
    for lab in labels:
        for i in range(n_per):
            t = cent[lab] + 0.5 * rng.normal(size=1706)
            P = t + 1.0 * rng.normal(size=(m, 1706))
            patches["msd8_pool"].append(P[:, :1506].astype(np.float32))
            patches["msd8_pen"].append(P[:, 1506:].astype(np.float32))
            paths.append(f"/x/{lab}/{i}.ogg")
            labs.append(lab)
    n = len(paths)
    mu, cov = _gaussians(n, 25, seed)
    timing = {"decode8": np.full(n, 0.1), "cnn_msd8": np.full(n, 0.2), "mfcc": np.full(n, 0.05)}
    return PC.HalfCache(paths, np.array(labs), np.array([""] * n), patches, mu, cov, timing, np.full(n, 60.0))


def test_default_space_finds_planted_soundtracks_and_subsets():
    c = _cache()
    S = RP.CANDIDATES[RP.DEFAULT][0](c)
    assert RP.hits(S, c.labels, k=5).mean() > 0.9
    sub = c.subset([0, 1, 6, 7])
    assert sub.labels.tolist() == ["a", "a", "b", "b"] and len(sub.patches["msd8_pool"]) == 4


def test_wccn_alpha_is_chosen_from_the_grid_without_labels():
    c = _cache()
    a = RP.wccn_alpha(c, "msd8", grid=(0.2, 1.0))
    assert a in (0.2, 1.0)
    c.labels = c.labels[::-1].copy()  # labels play no part: reversing them changes nothing
    assert RP.wccn_alpha(c, "msd8", grid=(0.2, 1.0)) == a


def test_selection_table_rows_costs_and_paired_difference(tmp_path):
    c = _cache()
    df = RP.table(c, [RP.DEFAULT, "default + csls", "musly-style mfcc JS"], None, 1, "test", str(tmp_path))
    assert df.loc[RP.DEFAULT, "d"] == 0 and df.loc[RP.DEFAULT, "index x"] == 1
    assert df.loc["musly-style mfcc JS", "index x"] == pytest.approx(0.05 / 0.3)
    assert df.loc["musly-style mfcc JS", "p@10"] < df.loc[RP.DEFAULT, "p@10"]  # MFCCs here are noise
    assert df.loc["musly-style mfcc JS", "d_hi"] < 0
    assert (tmp_path / "variants.log").read_text().count("\t") == 6


# --------------------------------------------------------------------------
# The contrastive projection (benchmarks/contrastive.py)
# --------------------------------------------------------------------------
import contrastive as CT  # noqa: E402


@pytest.mark.parametrize("hidden", [0, 7])
def test_nt_xent_gradient_matches_finite_differences(hidden):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(8, 6))
    proj = CT._init([X], hidden, 3, rng)
    proj.b1 += 0.1  # away from the ReLU kink at 0

    def loss():
        return CT.nt_xent(proj.forward(X)[0], 0.5)[0]

    Z, cache = proj.forward(X)
    grads = proj.backward(Z, cache, CT.nt_xent(Z, 0.5)[1])
    for p, g in zip(proj.params(), grads):
        for idx in [(0,) * p.ndim, tuple(s - 1 for s in p.shape)]:
            old = p[idx]
            p[idx] = old + 1e-6
            up = loss()
            p[idx] = old - 1e-6
            down = loss()
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-7)


def test_nt_xent_is_low_when_positives_coincide():
    rng = np.random.default_rng(0)
    Z = np.eye(8)[:4]
    good = CT.nt_xent(np.concatenate([Z, Z]), 0.1)[0]
    R = rng.normal(size=(8, 8))
    bad = CT.nt_xent(R / np.linalg.norm(R, axis=1, keepdims=True), 0.1)[0]
    assert good < 0.01 < bad


def _track_patches(n=24, m=8, d=40, seed=0):
    """Tracks whose patches share a track direction in a few dimensions, hidden in louder noise in the others."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.zeros(d)
        t[:6] = 2.0 * rng.normal(size=6)
        noise = rng.normal(size=(m, d)) * np.r_[np.full(6, 0.7), np.full(d - 6, 3.0)]
        out.append(t + noise)
    return out


def test_training_raises_held_out_split_half_identification_and_stop_is_label_free():
    P = _track_patches()
    ho = _track_patches(n=12, seed=5)  # tracks never trained on
    _, curve = CT.train(P, steps=60, dim=8, lr=1e-2, batch=16, eval_fn=lambda p: CT.split_half_mrr(p, ho))
    assert curve[0][0] == 0 and len(curve) == 7
    assert max(s for _, s in curve[1:]) > curve[0][1] + 0.05
    kw = dict(max_steps=60, dim=8, lr=1e-2, batch=16)
    steps, curve2 = CT.choose_steps(P, **kw)
    assert steps in [s for s, _ in curve2] and steps <= 60
    assert CT.choose_steps(P, **kw) == (steps, curve2)  # deterministic for a seed
    proj, info = CT.fit(P, **kw)
    assert info["steps"] == steps == proj.steps
    V = CT.track_vectors(proj, P)
    assert V.shape == (24, 16) and np.isfinite(V).all()


def test_contrastive_candidate_runs_in_the_table(tmp_path):
    c = _cache()
    df = RP.table(c, [RP.DEFAULT, RP.CONTRASTIVE], None, 1, "test", str(tmp_path))
    assert df.loc[RP.CONTRASTIVE, "adapt s"] > 0 and df.loc[RP.DEFAULT, "adapt s"] == 0
    # 6 tracks a soundtrack: 50 is the most p@10 can be; chance is about 29
    assert df.loc[RP.CONTRASTIVE, "p@10"] >= 45  # the planted soundtracks survive the projection


def test_training_refuses_a_collection_without_two_multi_patch_tracks():
    with pytest.raises(ValueError, match="2 tracks of 2\\+ patches"):
        CT.train([np.zeros((1, 4)), np.zeros((3, 4))], steps=1)
