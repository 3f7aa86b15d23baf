"""Cache the per-patch outputs of musicnn's *whole* forward pass (not only the
embedding) for ``bench_neighbours.py --layers``.

For every track of a folder of folders (label = folder) and a sampling
policy, the patches are built exactly as :func:`recommender.analysis.analyze_files`
builds them (``_file_blocks``: same windows, same log-mel), and one forward
pass of the default model returns, per patch:

* ``probabilities`` (50) and ``penultimate`` (200): what the catalog stores now;
* ``pool`` (1506): the back-end input, temporal max and mean of the 753
  mid-end channels, interleaved ``[max_0, mean_0, max_1, mean_1, ...]``
  (channels 0-560 are the front end, 561-752 the three mid-end convolutions);
* ``midend_std`` (753): the temporal standard deviation of the same channels
  (also free: same tensor as ``pool``).

``pool_bn`` and the pre-ReLU ``penultimate_dense`` are affine maps of
``pool`` and are recomputed from it with the model weights when needed
(:func:`pool_bn`, :func:`dense_preact`).

Output: ``<cache>/layers_<policy>.npz`` (plain arrays, float16 vectors,
``allow_pickle=False`` readable), one per policy.

Usage::

    taskset -c 1 env OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \\
        python benchmarks/layer_cache.py /tmp/devset --cache /tmp/nb-cache --policies 8,16,full
    python benchmarks/layer_cache.py /tmp/devset --timing   # extra cost of returning pool
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _common import audio_files  # noqa: E402

#: per-patch arrays written to the cache (name -> what it is)
LAYERS = ("probabilities", "penultimate", "pool", "midend_std")


def _policy(s):
    from recommender.analysis import Sampling

    return Sampling.full() if s == "full" else Sampling.spread(int(s))


def forward_fn(tag_model, batch):
    """Compiled forward pass returning every cached layer for ``batch`` patches."""
    import keras
    import tensorflow as tf

    km = tag_model.keras_model
    sub = keras.Model(km.input, [km.get_layer(n).output for n in ("probabilities", "penultimate", "pool", "midend")])
    spec = tf.TensorSpec((batch, tag_model.n_frames, tag_model.n_mels), tf.float32)

    @tf.function(input_signature=[spec], autograph=False)
    def fwd(x):
        p, e, pool, mid = sub(x, training=False)
        return p, e, pool, tf.math.reduce_std(mid, axis=1)

    return fwd


def layer_outputs(tag_model, P, *, batch=8, _fns={}):
    """``{layer: (n, d) float32}`` for log-mel patches ``P`` (n, 187, 96)."""
    fn = _fns.get((id(tag_model), batch))
    if fn is None:
        fn = _fns[(id(tag_model), batch)] = forward_fn(tag_model, batch)
    outs = {k: [] for k in LAYERS}
    for i in range(0, len(P), batch):
        x = np.zeros((batch,) + P.shape[1:], np.float32)
        n = min(batch, len(P) - i)
        x[:n] = P[i : i + n]
        for k, v in zip(LAYERS, fn(x)):
            outs[k].append(np.asarray(v)[:n])
    return {k: np.concatenate(v) for k, v in outs.items()}


def track_patches(path, sampling):
    """The log-mel patches the analysis would feed the CNN for ``path``."""
    from recommender.io import audio
    from recommender.analysis.blocks import _file_blocks

    blocks = list(_file_blocks(path, sampling, 64, audio.info(path)))
    return np.concatenate([b[1] for b in blocks]), np.concatenate([b[0] for b in blocks])


def build_cache(files, policy, out, *, model=None):
    from recommender.models import load_model

    m = model or load_model(threads=1)
    per = {k: [] for k in LAYERS}
    lens = []
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        P, _ = track_patches(f, _policy(policy))
        o = layer_outputs(m, P)
        for k in LAYERS:
            per[k].append(o[k].astype(np.float16))
        lens.append(len(P))
        if (i + 1) % 20 == 0:
            print(f"  {policy}: {i + 1}/{len(files)} tracks, {sum(lens)} patches, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    arrays = {"paths": np.array(files, dtype=str), "patch_lens": np.array(lens, dtype=np.int64)}
    arrays.update({k: np.concatenate(v) for k, v in per.items()})
    tmp = out + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return time.perf_counter() - t0


def load_layers(path):
    """``(paths, {layer: list of (m_i, d) float32 arrays})`` from a cache file."""
    with np.load(path, allow_pickle=False) as z:
        cuts = np.cumsum(z["patch_lens"])[:-1]
        paths = [str(p) for p in z["paths"]]
        layers = {k: np.split(z[k].astype(np.float32), cuts) for k in z.files if k not in ("paths", "patch_lens")}
    return paths, layers


def load_trackset(path, *, descriptors=None):
    """A :class:`retrieval.TrackSet` (with ``patch_pool``) from a cache file.

    ``descriptors``: optional ``.npz`` TrackSet cache (``bench_sampling.py
    --cache``) whose descriptors are attached by path.
    """
    from retrieval import TrackSet

    paths, L = load_layers(path)
    pe, pp = L["penultimate"], L["probabilities"]
    ts = TrackSet(
        paths=paths,
        labels=np.array([TrackSet.label_of(p) for p in paths]),
        embedding=np.stack([p.mean(axis=0) for p in pe]).astype(np.float32),
        probs=np.stack([p.mean(axis=0) for p in pp]).astype(np.float32),
        patch_embeddings=pe,
        patch_probs=pp,
        patch_pool=L["pool"],
    )
    ts.layers = L  # every cached layer, for exploratory rows
    if descriptors and os.path.exists(descriptors):
        d = TrackSet.load(descriptors)
        pos = {p: i for i, p in enumerate(d.paths)}
        if d.descriptors is not None and all(p in pos for p in paths):
            ts.descriptors = d.descriptors.iloc[[pos[p] for p in paths]].reset_index(drop=True)
    return ts


def _bn_params(name, weights=None):
    from recommender.models import WEIGHTS_DIR

    weights = weights or os.path.join(WEIGHTS_DIR, "msd_musicnn.npz")
    with np.load(weights, allow_pickle=False) as z:
        return {k.split("/", 1)[1]: z[k].astype(np.float64) for k in z.files if k.startswith(name + "/")}


def pool_bn(pool, weights=None, eps=None):
    """The ``pool_bn`` layer (inference batch norm) applied to ``pool`` vectors."""
    from recommender.models.musicnn import _BN_EPS

    p = _bn_params("pool_bn", weights)
    eps = _BN_EPS if eps is None else eps
    return ((pool - p["moving_mean"]) / np.sqrt(p["moving_variance"] + eps) * p["gamma"] + p["beta"]).astype(np.float32)


def dense_preact(pool, weights=None):
    """Pre-ReLU ``penultimate_dense`` activations (200) from ``pool`` vectors."""
    d = _bn_params("penultimate_dense", weights)
    return (pool_bn(pool, weights) @ d["kernel"] + d["bias"]).astype(np.float32)


def forward_cost(tag_model, *, batch=8, reps=40):
    """Median seconds per batch of the library's forward pass and of one that also
    returns ``pool`` (alternating runs, same process): the extra analysis cost."""
    import keras
    import tensorflow as tf

    km = tag_model.keras_model
    spec = tf.TensorSpec((batch, tag_model.n_frames, tag_model.n_mels), tf.float32)
    sub = keras.Model(km.input, [km.get_layer(n).output for n in ("probabilities", "penultimate", "pool")])

    @tf.function(input_signature=[spec], autograph=False)
    def with_pool(x):
        return sub(x, training=False)

    fns = {"library": tag_model._fn(batch), "with pool": with_pool}
    x = np.random.default_rng(0).normal(size=(batch, tag_model.n_frames, tag_model.n_mels)).astype(np.float32)
    for f in fns.values():
        [np.asarray(o) for o in f(x)]
    times = {k: [] for k in fns}
    for r in range(reps):
        for k in (list(fns) if r % 2 else list(fns)[::-1]):
            t0 = time.perf_counter()
            [np.asarray(o) for o in fns[k](x)]
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--cache", default="/tmp/nb-cache")
    ap.add_argument("--policies", default="8,16,full")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--timing", action="store_true",
                    help="only time the forward pass with and without the pool output")
    a = ap.parse_args(argv)
    if a.timing:
        from recommender.models import load_model

        t = forward_cost(load_model(threads=1))
        print(f"forward pass, batch of 8: library {1000 * t['library']:.1f} ms, with pool output "
              f"{1000 * t['with pool']:.1f} ms, ratio {t['with pool'] / t['library']:.3f}")
        return
    files = audio_files(a.folder, a.limit)
    if not files:
        sys.exit(f"no audio files under {a.folder}")
    os.makedirs(a.cache, exist_ok=True)
    from recommender.models import load_model

    m = load_model(threads=1)
    for pol in a.policies.split(","):
        out = os.path.join(a.cache, f"layers_{pol}.npz")
        t = build_cache(files, pol, out, model=m)
        print(f"{pol}: {len(files)} tracks -> {out} ({t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
