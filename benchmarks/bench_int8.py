"""How near its int8 limit the network runs: CNN patches/s, tolerance and op profile (issue #20).

ONNX graphs of the shipped musicnn weights, on real log-mel patches of
the dev collection (``/tmp/devset``, see ``../shared/DEVSET.md``):

* ``float32``: :func:`recommender.models.onnx_graph.build_onnx` in float32;
* ``int8 (before #20)``: the int8 front end as first shipped: input
  quantised over the whole possible log-mel range, weights rounded to
  nearest, every filter computed (rebuilt here by patching
  :mod:`recommender.models.onnx_graph`);
* ``int8 all filters``: today's int8 graph computing every front-end
  filter, 8-frame temporal blocks (patched), as shipped before the dead
  filters were left out;
* ``int8 (REV)`` with ``--before-rev REV``: the int8 graph built by
  ``recommender/models/onnx_graph.py`` as it was at git revision ``REV``
  (read with ``git show``), the same weights and calibration;
* ``int8 (today)``: the shipped default, the five front-end convolutions as
  int8 matrix products of their live filters (input range calibrated on
  real music, weights rounded by GPTQ), the rest float32;
* ``int8 + mid/dense``: today's graph with the remaining float32 layers (the
  three mid-end convolutions and the two dense layers) quantised by ONNX
  Runtime's own tool (``onnxruntime.quantization.quantize_dynamic``, int8
  per-channel weights, activations quantised per call).

For each: patches/s on one single-threaded session (batches of 8, best of
``--rounds`` interleaved rounds), the tolerance against float32 (tag
probabilities max abs <= 0.02, embedding cosine >= 0.995: the stated
tolerance of ``precision="int8"``), and the share of the run time per
operator type from ONNX Runtime's profiler.  With ``--end-to-end`` also the
analysis of the whole dev collection as ``recommender index`` runs it
(default sampling, descriptors, this process) with the float32 and the
shipped int8 model, in x real time.

Usage::

    python benchmarks/bench_int8.py [--devset /tmp/devset] [--per-track 4] [--rounds 3] [--end-to-end]
                                    [--before-rev REV]
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

OUTPUTS = ["probabilities", "penultimate"]


def devset_patches(root, per_track):
    """``per_track`` patches spread over each track of ``root`` (first 240 s), shape (n, 187, 96)."""
    from benchmarks._common import audio_files
    from recommender.features import frontend as F
    from recommender.io import audio

    files = audio_files(root) or sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    P = []
    for f in files:
        y = audio.load(f, duration_s=240.0)
        p = F.patches(F.logmel(y))
        P.append(p[np.linspace(0, len(p) - 1, min(per_track, len(p))).astype(int)])
    return np.concatenate(P), len(files)


def _graph_at_revision(rev, workdir, w, n_tags):
    """The int8 graph as ``onnx_graph.py`` at git revision ``rev`` builds it (ONNX bytes)."""
    src = subprocess.run(["git", "show", f"{rev}:recommender/models/onnx_graph.py"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    path = os.path.join(workdir, "onnx_graph_at_rev.py")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(src)
    spec = importlib.util.spec_from_file_location("recommender.models._onnx_graph_at_rev", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from recommender.models.onnx_graph import load_calibration

    return mod.build_onnx(w, n_tags=n_tags, precision="int8", calibration=load_calibration())


def graphs(workdir, before_rev=None):
    """``{label: path}`` of the graphs (written to ``workdir``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from recommender.models import WEIGHTS_DIR, onnx_graph
    from recommender.models.musicnn import read_weights
    from recommender.models.onnx_graph import _LOGMEL_MAX, build_onnx, load_calibration

    with open(os.path.join(WEIGHTS_DIR, "msd_musicnn.json"), encoding="utf-8") as fh:
        meta = json.load(fh)
    w = read_weights(os.path.join(WEIGHTS_DIR, meta["weights_file"]))
    out = {"int8 (before #20)": os.path.join(workdir, "int8_before.onnx"),
           "int8 all filters": os.path.join(workdir, "int8_all_filters.onnx")}
    saved = onnx_graph._gptq_round, onnx_graph._DEAD_FILTER, onnx_graph._INT8_TIME_BLOCK
    onnx_graph._DEAD_FILTER, onnx_graph._INT8_TIME_BLOCK = -1.0, 8  # every filter live, as before
    try:
        with open(out["int8 all filters"], "wb") as fh:
            fh.write(build_onnx(w, n_tags=len(meta["tags"]), precision="int8"))
        onnx_graph._gptq_round = lambda wt, sw, hess: np.clip(np.round(wt / sw), -127, 127)  # nearest
        cal = dict(load_calibration(), logmel_hi=np.float64(_LOGMEL_MAX))  # the whole possible range
        with open(out["int8 (before #20)"], "wb") as fh:
            fh.write(build_onnx(w, n_tags=len(meta["tags"]), precision="int8", calibration=cal))
    finally:
        onnx_graph._gptq_round, onnx_graph._DEAD_FILTER, onnx_graph._INT8_TIME_BLOCK = saved
    if before_rev:
        out[f"int8 ({before_rev})"] = os.path.join(workdir, "int8_at_rev.onnx")
        with open(out[f"int8 ({before_rev})"], "wb") as fh:
            fh.write(_graph_at_revision(before_rev, workdir, w, len(meta["tags"])))
    for label, prec in (("float32", "float32"), ("int8 (today)", "int8")):
        out[label] = os.path.join(workdir, f"{prec}.onnx")
        with open(out[label], "wb") as fh:
            fh.write(build_onnx(w, n_tags=len(meta["tags"]), precision=prec))
    m = onnx.load(out["int8 (today)"])
    rest = [n.name for n in m.graph.node if n.op_type in ("Conv", "Gemm")]  # mid end and dense: float32 today
    out["int8 + mid/dense"] = os.path.join(workdir, "int8_all.onnx")
    quantize_dynamic(m, out["int8 + mid/dense"], nodes_to_quantize=rest, op_types_to_quantize=["Conv", "Gemm"],
                     per_channel=True, weight_type=QuantType.QInt8)
    return out


def live_filters():
    """``[(branch, live filters, filters)]`` of the shipped weights' front end."""
    from recommender.models import WEIGHTS_DIR
    from recommender.models.musicnn import read_weights
    from recommender.models.onnx_graph import _TEMPORAL, _TIMBRAL, _live_filters

    with open(os.path.join(WEIGHTS_DIR, "msd_musicnn.json"), encoding="utf-8") as fh:
        w = read_weights(os.path.join(WEIGHTS_DIR, json.load(fh)["weights_file"]))
    names = [n for n, _ in _TIMBRAL] + list(_TEMPORAL)
    return [(n, int(_live_filters(w[f"{n}_conv/kernel"], w, n).sum()), w[f"{n}_conv/kernel"].shape[-1]) for n in names]


def session(path, profile_prefix=None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_all(s, P, bs=8):
    outs = [s.run(OUTPUTS, {"logmel": P[i : i + bs]}) for i in range(0, len(P), bs)]
    return [np.concatenate(x) for x in zip(*outs)]


def op_profile(path, P, prefix):
    s = session(path, prefix)
    run_all(s, P)
    with open(s.end_profiling(), encoding="utf-8") as fh:
        events = json.load(fh)
    agg = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            agg[e["args"]["op_name"]] += e["dur"]
    total = sum(agg.values()) or 1
    return [(op, us / total) for op, us in agg.most_common(7)]


def end_to_end(root):
    from benchmarks._common import audio_files
    from recommender.analysis import analyze_files
    from recommender.io import audio
    from recommender.models import load_model
    from recommender.recommender import DEFAULT_SAMPLING

    files = audio_files(root) or sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    audio_s = sum(audio.info(f).duration_s for f in files)
    res = {}
    for prec in ("float32", "int8", "float32", "int8"):  # interleaved, best of two
        m = load_model(precision=prec)
        list(analyze_files(files[:2], model=m, sampling=DEFAULT_SAMPLING, descriptors=True))  # warm
        t0 = time.perf_counter()
        got = list(analyze_files(files, model=m, sampling=DEFAULT_SAMPLING, descriptors=True))
        t = time.perf_counter() - t0
        assert len(got) == len(files)
        res[prec] = min(res.get(prec, t), t)
    return res, audio_s, len(files)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devset", default="/tmp/devset")
    ap.add_argument("--per-track", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--end-to-end", action="store_true")
    ap.add_argument("--before-rev", help="also time the int8 graph onnx_graph.py builds at this git revision")
    args = ap.parse_args()
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's advice
    load0 = os.getloadavg()
    P, n_files = devset_patches(args.devset, args.per_track)
    print(f"{len(P)} patches of {n_files} tracks of {args.devset}; load average "
          f"{load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}")
    work = tempfile.mkdtemp(prefix="bench-int8-")
    paths = graphs(work, args.before_rev)
    sess = {k: session(p) for k, p in paths.items()}
    outs = {k: run_all(s, P) for k, s in sess.items()}
    timing = P[: min(len(P), 64)]
    rates = {k: 0.0 for k in sess}
    for _ in range(args.rounds):
        for k, s in sess.items():
            t0 = time.perf_counter()
            run_all(s, timing)
            rates[k] = max(rates[k], len(timing) / (time.perf_counter() - t0))
    from recommender.models import INT8_EMBEDDING_MIN_COSINE, INT8_PROB_ATOL

    print("live front-end filters in int8 (today): " + ", ".join(f"{n} {c}/{t}" for n, c, t in live_filters()))

    ref_p, ref_e = outs["float32"]
    print(f"\n{'graph':<20s}{'patches/s':>10s}{'x float32':>10s}{'x today':>9s}{'prob max|d|':>13s}{'p99':>8s}"
          f"{'emb cos min':>13s}{'mean':>8s}  tolerance")
    for k in sess:
        p, e = outs[k]
        cos = (e * ref_e).sum(1) / np.maximum(np.linalg.norm(e, axis=1) * np.linalg.norm(ref_e, axis=1), 1e-12)
        d, d99 = float(np.abs(p - ref_p).max()), float(np.quantile(np.abs(p - ref_p), 0.99))
        ok = d <= INT8_PROB_ATOL and cos.min() >= INT8_EMBEDDING_MIN_COSINE
        print(f"{k:<20s}{rates[k]:>10.1f}{rates[k] / rates['float32']:>9.2f}x{rates[k] / rates['int8 (today)']:>8.2f}x"
              f"{d:>13.4f}{d99:>8.4f}{cos.min():>13.5f}{cos.mean():>8.5f}  {'holds' if ok else 'BROKEN'}")
    print("\nop profile (share of operator time, one session, all patches):")
    for k, p in paths.items():
        prof = op_profile(p, P, os.path.join(work, "prof"))
        print(f"  {k:<20s}" + ", ".join(f"{op} {share:.0%}" for op, share in prof))
    if args.end_to_end:
        res, audio_s, n = end_to_end(args.devset)
        print(f"\nend to end, analysis of {n} tracks ({audio_s / 3600:.1f} h) as `recommender index` runs it "
              f"(this process, best of 2):")
        for prec, t in res.items():
            print(f"  {prec:<8s}{t:8.1f} s  {audio_s / t:7.0f}x real time  ({res['float32'] / t:.2f}x float32)")
    load1 = os.getloadavg()
    print(f"load average at the end: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}")


if __name__ == "__main__":
    main()
