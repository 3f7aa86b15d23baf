"""Sampling policy trade-off: retrieval quality against end-to-end analysis time.

Over a folder of folders of real music (label = folder), in one run and on
the same files, for ``Sampling.spread(n)`` with n = 1, 4, 8, 16, 32 and for
whole tracks (``Sampling.full()``):

* wall-clock time of :func:`recommender.analysis.analyze_files` with that
  policy, descriptors off (the model is loaded and warmed up once, before
  any timing), as a multiple of real time (collection duration / wall time)
  and as a ratio to the full-track run; also the CPU seconds the process used
  (all threads) and ``x_rt_2cores_cpu`` = 2 x duration / CPU seconds, the
  speed the run would reach with 2 otherwise idle cores (the machine is
  shared, so wall time depends on the neighbours' load);
* leave-one-out precision@10 by label in two neighbour spaces: the index's
  default ``similarity`` space (the *layer space*:
  :func:`recommender.features.pooling.layer_similarity_vectors` of each
  track's ``layer_summary``, mean and spread over its patches of musicnn's
  ``pool`` and ``penultimate`` layers) and the raw mean embedding (cosine);
  each with its 95 % bootstrap CI over queries and the *paired* bootstrap
  CI of its difference to full-track analysis in the same space (same
  resampled queries; this is what "within 1 point of full" is judged on);
* the cost of MIR descriptors: the current step (a 30-s excerpt per track,
  decoded separately), the same on a 10-s excerpt, and the end-to-end time
  of ``analyze_files(..., descriptors=True)`` with the default policy.

Per-track results are cached (``--cache``) as ``.npz`` (no pickle) so that
``bench_neighbours.py`` works from the same analyses.

Usage::

    python benchmarks/bench_sampling.py /tmp/devset --cache /tmp/yh-cache
    python benchmarks/bench_sampling.py /tmp/devset --limit 10 --policies 1,4,full   # quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _common import audio_files  # noqa: E402
from retrieval import TrackSet, bootstrap_ci, evaluate  # noqa: E402

from recommender import audio  # noqa: E402
from recommender.analysis import AnalysisFailure, Sampling, analyze_files  # noqa: E402
from recommender.features.pooling import layer_similarity_vectors  # noqa: E402


def _policy(s: str) -> Sampling:
    return Sampling.full() if s == "full" else Sampling.spread(int(s))


def run_policy(files, model, sampling, *, descriptors=False):
    """Analyse ``files``; returns (results, wall seconds, CPU seconds of this process, all threads).

    CPU time is reported next to wall time because the machine is shared: a
    busy neighbour stretches wall time but not (much) the CPU time we use.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    res = list(analyze_files(files, model=model, sampling=sampling, descriptors=descriptors))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    bad = [r for r in res if isinstance(r, AnalysisFailure)]
    if bad:
        print(f"  {len(bad)} failures, e.g. {bad[0].path}: {bad[0].reason}", file=sys.stderr)
    return [r for r in res if not isinstance(r, AnalysisFailure)], wall, cpu


def descriptor_step(files, clip_s):
    """Time the descriptors step alone: ``describe_file`` on a centred ``clip_s`` excerpt."""
    from recommender import descriptors as D

    out = {}
    t0 = time.perf_counter()
    for p in files:
        dur = audio.info(p).duration_s
        kw = {} if dur <= clip_s else {"offset_s": (dur - clip_s) / 2, "clip_s": clip_s}
        try:
            out[p] = D.describe_file(p, **kw)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"  descriptors failed for {p}: {e}", file=sys.stderr)
    return out, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--policies", default="1,4,8,16,32,full")
    ap.add_argument("--default", default="8", help="policy used for the descriptor end-to-end run")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--cache", default=None, help="folder for per-policy .npz caches")
    ap.add_argument("--no-descriptors", action="store_true")
    a = ap.parse_args(argv)

    files = audio_files(a.folder, a.limit)
    if not files:
        sys.exit(f"no audio files under {a.folder}")
    total_s = sum(audio.info(p).duration_s for p in files)
    labels = pd.Series([TrackSet.label_of(p) for p in files]).value_counts()
    print(f"{len(files)} files, {total_s / 3600:.2f} h, labels: {dict(labels)}")
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")

    from recommender.models import load_model

    model = load_model()
    bs = int(getattr(model, "batch_size", 32))
    from recommender import features

    dummy = np.zeros((bs, features.PATCH_FRAMES, 96), np.float32)
    model.predict_patches(dummy)  # warm-up: graph tracing is not analysis time
    t0 = time.perf_counter()
    model.predict_patches(dummy)
    cnn_rate = bs / (time.perf_counter() - t0)
    print(f"CNN alone: {cnn_rate:.0f} patches/s (batch {bs})")

    policies = [p.strip() for p in a.policies.split(",")]
    run_policy(files[:2], model, _policy(policies[0]))  # warm-up: thread pools, FFT plans
    sets, walls, cpus, npatch, layer = {}, {}, {}, {}, {}
    for name in policies:
        res, wall, cpu = run_policy(files, model, _policy(name))
        sets[name] = TrackSet.from_analyses(res)
        if all(r.layer_summary is not None for r in res):
            S = np.stack([r.layer_summary for r in sorted(res, key=lambda r: r.path)])
            layer[name] = layer_similarity_vectors(S)[0]
        walls[name], cpus[name] = wall, cpu
        npatch[name] = sum(r.n_patches for r in res)
        print(f"  {name:>5}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, {npatch[name]} patches, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        if a.cache:
            os.makedirs(a.cache, exist_ok=True)
            sets[name].save(os.path.join(a.cache, f"sampling_{name}.npz"))

    ref = "full" if "full" in sets else policies[-1]
    spaces = {"embedding": {n: evaluate(lambda t: t.embedding, ts, k=a.k) for n, ts in sets.items()}}
    if len(layer) == len(sets):
        spaces = {"layers": {n: evaluate(lambda t, X=layer[n]: X, ts, k=a.k) for n, ts in sets.items()},
                  **spaces}
    rows = []
    for name in policies:
        row = {
            "policy": "full" if name == "full" else f"spread:{name}",
            "patches/track": npatch[name] / len(sets[name]),
            "wall_s": walls[name],
            "x_realtime": total_s / walls[name],
            "speed_vs_full": walls[ref] / walls[name],
            "cpu_s": cpus[name],
            "x_rt_2cores_cpu": 2 * total_s / cpus[name],
        }
        for space, ev in spaces.items():
            e = ev[name]
            d = e["_hits"] - ev[ref]["_hits"]
            lo, hi = bootstrap_ci(d)
            row.update({
                f"{space} p@{a.k}": 100 * e[f"p@{a.k}"],
                f"{space} ci95": f"[{100 * e[f'p@{a.k}_lo']:.1f}, {100 * e[f'p@{a.k}_hi']:.1f}]",
                f"{space} d_vs_{ref}": 100 * d.mean(),
                f"{space} d_ci95": f"[{100 * lo:+.1f}, {100 * hi:+.1f}]",
            })
        rows.append(row)
    df = pd.DataFrame(rows).set_index("policy")
    print()
    print(f"Sampling trade-off ({len(files)} tracks, {total_s / 3600:.2f} h; descriptors off; "
          f"precision in points, leave-one-out; 'layers' = the index's default similarity space, "
          f"'embedding' = cosine on the mean embedding)")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df.to_string(float_format=lambda v: f"{v:.1f}"))

    if a.no_descriptors:
        return df
    print()
    print("Descriptors (MIR: tempo, key, loudness, spectral, chroma, MFCC):")
    descriptor_step(files[:1], 10.0)  # warm-up (filter banks, FFT plans)
    d30, t30 = descriptor_step(files, 30.0)
    d10, t10 = descriptor_step(files, 10.0)
    if a.cache:
        for clip, dd in ((30, d30), (10, d10)):
            ts = sets.get(a.default) or next(iter(sets.values()))
            TrackSet(ts.paths, ts.labels, ts.embedding, ts.probs, ts.patch_embeddings, ts.patch_probs,
                     pd.DataFrame([dd.get(p) or {} for p in ts.paths])).save(
                os.path.join(a.cache, f"descriptors_{clip}s.npz"))
    default = _policy(a.default)
    _, w_off, c_off = run_policy(files, model, default)
    _, w_on, c_on = run_policy(files, model, default, descriptors=True)
    n = len(files)
    print(f"  descriptors step alone, 30-s excerpt (current): {t30:6.1f} s = {1000 * t30 / n:5.0f} ms/track "
          f"({total_s / t30:.0f}x real time)")
    print(f"  descriptors step alone, 10-s excerpt:           {t10:6.1f} s = {1000 * t10 / n:5.0f} ms/track "
          f"({total_s / t10:.0f}x real time)")
    print(f"  analyze_files {default.name}, descriptors off: {w_off:6.1f} s ({total_s / w_off:.0f}x real time)")
    print(f"  analyze_files {default.name}, descriptors on:  {w_on:6.1f} s ({total_s / w_on:.0f}x real time), "
          f"ratio on/off {w_on / w_off:.2f} (CPU {c_off:.0f} s -> {c_on:.0f} s, ratio {c_on / c_off:.2f})")
    # agreement of the 10-s tempo/key with the 30-s ones (what a cheaper step would change)
    both = [p for p in files if p in d30 and p in d10]
    if both:
        t_a = np.array([d30[p]["tempo_bpm"] for p in both], float)
        t_b = np.array([d10[p]["tempo_bpm"] for p in both], float)
        ok = np.isfinite(t_a) & np.isfinite(t_b)
        same_t = np.mean(np.abs(t_a[ok] - t_b[ok]) <= 0.04 * t_a[ok])
        same_k = np.mean([(d30[p]["key"], d30[p]["mode"]) == (d10[p]["key"], d10[p]["mode"]) for p in both])
        m30 = np.array([[d30[p][f"mfcc_{i}_mean"] for i in range(20)] for p in both])
        m10 = np.array([[d10[p][f"mfcc_{i}_mean"] for i in range(20)] for p in both])
        r = np.mean([np.corrcoef(m30[:, i], m10[:, i])[0, 1] for i in range(20)])
        print(f"  10-s vs 30-s excerpt: tempo within 4 %: {100 * same_t:.0f} %, same key: {100 * same_k:.0f} %, "
              f"mean corr of MFCC means across tracks: {r:.2f}")
    return df


if __name__ == "__main__":
    main()
