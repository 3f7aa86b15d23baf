"""A contrastive projection of the per-patch layer vectors, learnt on the collection without labels (issue #17).

Patches of one track are each other's positives, the other tracks' patches in
the batch the negatives: NT-Xent / InfoNCE (Chen et al. 2020, "A simple
framework for contrastive learning of visual representations", SimCLR loss;
van den Oord et al. 2018, InfoNCE) on the standardised per-patch vectors the
index already computes (musicnn ``pool`` 1506 + ``penultimate`` 200).  The
projection is linear or has one ReLU hidden layer; numpy, Adam (Kingma & Ba
2015), deterministic for a seed.

It collapses onto track identity within a few hundred steps on 8 patches a
track, so the number of steps is chosen without labels
(:func:`choose_steps`): a seeded share of the tracks is held out, the
projection is trained on the others, and every ``eval_every`` steps the
held-out tracks are scored by *split-half identification* (each odd patch of a
held-out track must find the mean of its own track's even patches first among
the held-out tracks; mean reciprocal rank, smoother than the top-1 rate).  The best step count is then used to train on every track.

The track vector is the mean and standard deviation of its projected (unit)
patches; :mod:`retrieval_protocol` standardises it and compares by cosine.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Projection:
    """Parameters of a learnt projection; ``W2`` is None for a linear one.

    Attributes
    ----------
    mu, sd : float64 (d,)          input standardisation (patch statistics of the collection)
    W1 : float64 (d, h);  b1 : float64 (h,)
    W2 : float64 (h, k) or None    output layer after a ReLU (``None``: linear, output = ``h``)
    steps : int                    optimisation steps it was trained for
    """

    mu: np.ndarray
    sd: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray | None
    steps: int = 0

    def params(self):
        return [self.W1, self.b1] + ([] if self.W2 is None else [self.W2])

    def forward(self, X):
        """Projected, unit-norm patches ``(m, k)`` of raw patch vectors ``X`` ``(m, d)``, and the cache for backward."""
        Xs = (np.asarray(X, dtype=np.float64) - self.mu) / self.sd
        A = Xs @ self.W1 + self.b1
        if self.W2 is None:
            Hd, H = None, A
        else:
            Hd = np.maximum(A, 0.0)
            H = Hd @ self.W2
        nrm = np.maximum(np.linalg.norm(H, axis=1, keepdims=True), 1e-12)
        return H / nrm, (Xs, A, Hd, nrm)

    def backward(self, Z, cache, dZ):
        """Gradients of the parameters (same order as :meth:`params`) given ``dL/dZ``."""
        Xs, A, Hd, nrm = cache
        dH = (dZ - Z * np.sum(Z * dZ, axis=1, keepdims=True)) / nrm
        if self.W2 is None:
            return [Xs.T @ dH, dH.sum(0)]
        dW2 = Hd.T @ dH
        dA = (dH @ self.W2.T) * (A > 0)
        return [Xs.T @ dA, dA.sum(0), dW2]


def nt_xent(Z, tau):
    """NT-Xent loss of ``2B`` unit rows where rows ``i`` and ``i + B`` are positives; returns ``(loss, dL/dZ)``.

    ``loss = mean_i [ -s(i, pos(i)) + log sum_{j != i} exp s(i, j) ]``, ``s = Z Z^T / tau``.
    """
    n = len(Z)
    B = n // 2
    S = Z @ Z.T / tau
    np.fill_diagonal(S, -np.inf)
    S -= S.max(axis=1, keepdims=True)
    P = np.exp(S)
    P /= P.sum(axis=1, keepdims=True)
    pos = np.concatenate([np.arange(B, n), np.arange(B)])
    loss = float(-np.mean(np.log(np.maximum(P[np.arange(n), pos], 1e-300))))
    G = P
    G[np.arange(n), pos] -= 1.0
    G /= n
    dZ = (G + G.T) @ Z / tau
    return loss, dZ


def _init(patches, hidden, dim, rng):
    allp = np.concatenate(patches).astype(np.float64)
    mu, sd = allp.mean(0), allp.std(0) + 1e-6
    d = allp.shape[1]
    if hidden:
        return Projection(mu, sd, rng.normal(0, np.sqrt(2.0 / d), (d, hidden)), np.zeros(hidden),
                          rng.normal(0, np.sqrt(1.0 / hidden), (hidden, dim)))
    return Projection(mu, sd, rng.normal(0, np.sqrt(1.0 / d), (d, dim)), np.zeros(dim), None)


def train(patches, *, steps, hidden=0, dim=128, tau=0.1, lr=1e-3, batch=64, weight_decay=1e-4, seed=0,
          eval_fn=None, eval_every=10):
    """Train a projection with NT-Xent on the patches of ``patches`` (one ``(m_i, d)`` array per track).

    Each step draws ``batch`` tracks with at least 2 patches and two different patches of each.

    Parameters
    ----------
    patches : list of np.ndarray (m_i, d)
    steps : int
        Adam steps (0: the random initial projection).
    hidden : int
        Width of the ReLU hidden layer; 0 for a linear projection.
    eval_fn : callable(Projection) -> float, optional
        Called at step 0 and every ``eval_every`` steps; its values are returned.

    Returns
    -------
    (Projection, list of (step, score))

    Raises
    ------
    ValueError
        Fewer than 2 tracks with at least 2 patches.
    """
    rng = np.random.default_rng(seed)
    ok = [i for i, p in enumerate(patches) if len(p) >= 2]
    if len(ok) < 2:
        raise ValueError(f"contrastive training needs 2 tracks of 2+ patches, got {len(ok)}")
    proj = _init(patches, hidden, dim, rng)
    th = proj.params()
    m1 = [np.zeros_like(p) for p in th]
    m2 = [np.zeros_like(p) for p in th]
    b1, b2, eps = 0.9, 0.999, 1e-8
    curve = [(0, eval_fn(proj))] if eval_fn else []
    B = min(batch, len(ok))
    for t in range(1, steps + 1):
        tracks = rng.choice(ok, B, replace=False)
        pick = [rng.choice(len(patches[i]), 2, replace=False) for i in tracks]
        X = np.concatenate([np.stack([patches[i][a] for i, (a, _) in zip(tracks, pick)]),
                            np.stack([patches[i][b] for i, (_, b) in zip(tracks, pick)])])
        Z, cache = proj.forward(X)
        _, dZ = nt_xent(Z, tau)
        grads = proj.backward(Z, cache, dZ)
        for j, (p, g) in enumerate(zip(th, grads)):
            if p.ndim == 2:
                g = g + weight_decay * p
            m1[j] = b1 * m1[j] + (1 - b1) * g
            m2[j] = b2 * m2[j] + (1 - b2) * g * g
            p -= lr * (m1[j] / (1 - b1 ** t)) / (np.sqrt(m2[j] / (1 - b2 ** t)) + eps)
        proj.steps = t
        if eval_fn and t % eval_every == 0:
            curve.append((t, eval_fn(proj)))
    return proj, curve


def split_half_mrr(proj, patches):
    """Label-free score: mean reciprocal rank of each odd patch of a track among the tracks' even-patch means.

    Every odd-position patch (projected, unit) is compared by cosine with the mean of every track's
    even-position patches; its score is 1 / (1 + the number of tracks closer than its own).  Single
    patches, not odd-patch means, so the score does not saturate at 1 on a few dozen tracks.
    ``proj=None`` scores the standardised input space.  Tracks with fewer than 2 patches are skipped.
    """
    keep = [p for p in patches if len(p) >= 2]
    if proj is None:
        allp = np.concatenate(keep).astype(np.float64)
        mu, sd = allp.mean(0), allp.std(0) + 1e-6
        f = lambda X: (np.asarray(X, np.float64) - mu) / sd
    else:
        f = lambda X: proj.forward(X)[0]
    E = np.stack([f(p[0::2]).mean(0) for p in keep])
    E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    O = [f(p[1::2]) for p in keep]
    own = np.concatenate([np.full(len(o), i) for i, o in enumerate(O)])
    O = np.concatenate(O)
    O /= np.maximum(np.linalg.norm(O, axis=1, keepdims=True), 1e-12)
    S = O @ E.T
    rank = (S > S[np.arange(len(S)), own][:, None]).sum(axis=1)  # tracks strictly closer than its own
    return float(np.mean(1.0 / (1.0 + rank)))


def choose_steps(patches, *, max_steps=400, eval_every=10, held_out=0.3, seed=0, **kw):
    """Label-free early stopping: train on a seeded ``1 - held_out`` share of the tracks and return the
    step count with the best :func:`split_half_mrr` of the held-out tracks (ties: fewer steps), and the curve."""
    rng = np.random.default_rng(seed)
    n = len(patches)
    perm = rng.permutation(n)
    n_out = max(2, int(round(held_out * n)))
    out, inn = perm[:n_out], perm[n_out:]
    ho = [patches[i] for i in out]
    _, curve = train([patches[i] for i in inn], steps=max_steps, seed=seed, eval_every=eval_every,
                     eval_fn=lambda p: split_half_mrr(p, ho), **kw)
    best = max(curve, key=lambda sc: (sc[1], -sc[0]))
    return best[0], curve


def fit(patches, *, max_steps=400, seed=0, **kw):
    """:func:`choose_steps`, then :func:`train` on every track for that many steps.

    Returns ``(Projection, info)``; ``info``: ``steps``, ``curve`` (held-out score per step),
    ``seconds`` (wall time of both trainings).
    """
    t0 = time.perf_counter()
    steps, curve = choose_steps(patches, max_steps=max_steps, seed=seed, **kw)
    proj, _ = train(patches, steps=steps, seed=seed, **kw)
    info = {"steps": steps, "curve": curve, "seconds": time.perf_counter() - t0}
    log.info("contrastive projection: %d steps chosen (held-out split-half MRR %.3f at 0, %.3f at best), %.1f s",
             steps, curve[0][1], max(s for _, s in curve), info["seconds"])
    return proj, info


def track_vectors(proj, patches):
    """Track vectors ``(n, 2k)``: mean and standard deviation of the projected unit patches."""
    out = []
    for p in patches:
        Z = proj.forward(p)[0]
        out.append(np.concatenate([Z.mean(0), Z.std(0)]))
    return np.stack(out)
