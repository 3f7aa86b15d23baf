"""Peak memory of analysis: indexing N and 4N files, and one 3-hour file
analysed whole, against the footprint of the model alone (the default ONNX
Runtime, and TensorFlow + the Keras model for comparison).

Every configuration runs in its own subprocess, which reports its peak
resident set size (``VmHWM`` from ``/proc/self/status``; ``ru_maxrss``
elsewhere) and its resident size right after the model was loaded and
compiled, so the table shows both the peak and what the work itself added.

Usage::

    python benchmarks/bench_memory.py [--n 30] [--hours 3] [--data DIR]

The synthetic inputs are written once under ``--data`` (default
``/tmp/recommender-bench-memory``): ``4N`` 15-s tracks (FLAC/OGG/WAV) and a
``--hours``-hour OGG Vorbis file at 22.05 kHz (written in 16k-frame chunks:
libsndfile crashes on large single Ogg writes).  Targets: the indexing peak
does not grow with the collection, and the long file stays under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = 22050


def rss_mb():
    """(current RSS, peak RSS) of this process in MB."""
    cur = peak = None
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    if peak is None:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = r / 1024 / (1024 if sys.platform == "darwin" else 1)
    return cur, peak


# ------------------------------------------------------------------ inputs
def make_collection(folder, n, duration_s=15.0):
    from recommender.io.demo import make_demo_collection

    per_style = -(-n // 4)
    return sorted(make_demo_collection(folder, per_style=per_style, duration_s=duration_s))[:n]


def make_long_file(path, hours):
    """A ``hours``-hour OGG Vorbis file of varied synthetic music (written once)."""
    if os.path.exists(path):
        return path
    import numpy as np
    import soundfile as sf

    from recommender.io.demo import STYLES, synth_track

    pieces = [synth_track(s, seed=k, duration_s=60.0, sr=SR).astype(np.float32)
              for k, s in enumerate(STYLES * 2)]
    n_total = int(hours * 3600 * SR)
    tmp = path + ".part"
    t0 = time.perf_counter()
    with sf.SoundFile(tmp, "w", SR, 1, format="OGG", subtype="VORBIS") as f:
        written, k = 0, 0
        while written < n_total:
            y = pieces[k % len(pieces)] * (0.6 + 0.4 * ((k * 7) % 5) / 4)
            y = y[: n_total - written]
            for i in range(0, len(y), 16384):
                f.write(y[i : i + 16384])
            written += len(y)
            k += 1
    os.replace(tmp, path)
    print(f"wrote {path} ({hours} h, {os.path.getsize(path) / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return path


# ------------------------------------------------------------------ child
def child(mode, arg):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = {"mode": mode}
    if mode == "python":
        import numpy  # noqa: F401

        import recommender.analysis  # noqa: F401
        out["rss_ready"], _ = rss_mb()
    else:
        import numpy as np

        from recommender.models import load_model

        model = load_model(runtime="tensorflow") if mode == "tf" else load_model()
        out["runtime"] = f"{model.runtime}/{model.precision}"
        for b in (1, 2, 4, 8):
            model.predict_patches(np.zeros((b, 187, 96), np.float32), batch_size=b)
        out["rss_ready"], out["peak_ready"] = rss_mb()
        t0 = time.perf_counter()
        if mode == "index":
            from recommender.recommender import Recommender

            rec = Recommender(tempfile.mkdtemp(prefix="bench-memory-index-"), model=model)
            rep = rec.update([arg], progress=False)
            out["detail"] = f"{rep.added} tracks added, {rep.failed} failed"
        elif mode in ("long-full", "long-default"):
            from recommender.analysis import PipelineStats, analyze_files
            from recommender.recommender import DEFAULT_SAMPLING

            st = PipelineStats()
            sampling = "full" if mode == "long-full" else DEFAULT_SAMPLING
            res = list(analyze_files([arg], model=model, sampling=sampling, stats=st))
            r = res[0]
            if not hasattr(r, "embedding"):
                raise SystemExit(f"analysis failed: {r.reason}")
            out["detail"] = (f"{r.n_patches} patches of {r.duration_s / 3600:.2f} h, "
                             f"{r.duration_s / st.wall_s:.0f}x real time, CNN busy {100 * st.cnn_busy:.0f}%")
        out["seconds"] = time.perf_counter() - t0
    out["rss_end"], out["peak"] = rss_mb()
    print("RESULT " + json.dumps(out))


def run_child(mode, arg=""):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, arg or "-"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"{mode} failed ({r.returncode}):\n{r.stderr[-3000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30, help="small collection size (the large one is 4N)")
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "recommender-bench-memory"))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, REPO)
        return child(args.child[0], args.child[1])
    sys.path.insert(0, REPO)

    os.makedirs(args.data, exist_ok=True)
    big = os.path.join(args.data, f"collection-{4 * args.n}")
    files = make_collection(big, 4 * args.n)
    small = os.path.join(args.data, f"collection-{args.n}")
    os.makedirs(small, exist_ok=True)
    for f in files[: args.n]:  # the small collection: links to a quarter of the large one
        link = os.path.join(small, os.path.basename(f))
        if not os.path.exists(link):
            os.symlink(f, link)
    long_path = make_long_file(os.path.join(args.data, f"long-{args.hours:g}h.ogg"), args.hours)

    load0 = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}; peak RSS per "
          f"subprocess ({'VmHWM' if os.path.exists('/proc/self/status') else 'ru_maxrss'})")
    rows = [
        ("python + numpy + recommender.analysis", run_child("python")),
        ("model loaded (default runtime)", run_child("model")),
        ("TensorFlow + Keras model (reference)", run_child("tf")),
        (f"index {args.n} files (15 s, default)", run_child("index", small)),
        (f"index {4 * args.n} files (15 s, default)", run_child("index", big)),
        (f"{args.hours:g}-h file, default sampling", run_child("long-default", long_path)),
        (f"{args.hours:g}-h file, full track", run_child("long-full", long_path)),
    ]
    base = rows[1][1]["peak"]
    print(f"{'configuration':<42s}{'peak MB':>9s}{'vs model':>13s}{'over own load':>15s}{'seconds':>9s}  detail")
    for name, r in rows:
        over_own = r["peak"] - r.get("rss_ready", r["peak"]) if "seconds" in r else None
        print(f"{name:<42s}{r['peak']:>9.0f}{r['peak'] - base:>+12.0f} "
              f"{'' if over_own is None else f'{over_own:+14.0f}'}{'':>{0 if over_own is not None else 14}}"
              f"{r.get('seconds', 0):>9.1f}  {r.get('detail', '')}")
    i_small, i_big = rows[3][1]["peak"], rows[4][1]["peak"]
    print(f"indexing 4x the files: peak {i_big - i_small:+.0f} MB ({100 * (i_big / i_small - 1):+.1f}%)")
    long_peak = rows[6][1]["peak"]
    print(f"{args.hours:g}-h file, full track: peak {long_peak:.0f} MB "
          f"({'under' if long_peak < 1024 else 'OVER'} 1 GB; the model alone {base:.0f} MB "
          f"({rows[1][1]['runtime']}), TensorFlow + Keras model {rows[2][1]['peak']:.0f} MB; "
          f"so the analysis itself adds {long_peak - base:+.0f} MB)")
    load1 = os.getloadavg()
    print(f"load average at the end: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}")


if __name__ == "__main__":
    main()
