"""Cold start of a query: ``recommender similar ID --index DIR --json`` in a
fresh process against a 100k-track index, next to the cost of starting
Python, importing NumPy, and importing TensorFlow, all measured in this run.

The index is built once from synthetic vectors (200-d embeddings in 400
clusters, 50 tag probabilities) and cached under ``/tmp`` (``--index`` to
put it elsewhere, ``--rebuild-index`` to make it again).  Then each command
runs ``--runs`` times, interleaved, and the median wall-clock time is
printed, followed by where the query's time goes: the heaviest imports
(``python -X importtime``) and a cProfile of the query itself.

Usage::

    python benchmarks/bench_coldstart.py [--tracks 100000] [--runs 7] [--index DIR]

Target: the query answers in under 1 s of wall-clock time, and never imports
TensorFlow.

``--first-run`` measures the other cold start (issue #20): the first
``recommender demo`` (writes 12 short tracks, indexes them, checks the
neighbours) on a fresh install against the second, in one run.  "Fresh" is
made by pointing numba's cache (``NUMBA_CACHE_DIR``) and, with
``--clear-bytecode``, Python's bytecode cache (``PYTHONPYCACHEPREFIX``) at
empty folders; ``--tree DIR`` runs another copy of the package (e.g. the
previous commit, ``git archive HEAD recommender | tar -x -C DIR``) to compare
before and after.  It prints first/second, the numba functions compiled and
whether librosa/numba were imported at all::

    python benchmarks/bench_coldstart.py --first-run [--clear-bytecode] [--tree DIR] [--runs 2]

Target: the first run within 1.5x of the second.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def build_index(index_dir, n, *, seed=0):
    """A ``n``-track index from synthetic vectors, written like ``Recommender.update``."""
    import numpy as np

    from recommender import features
    from recommender.store.catalog import Catalog
    from recommender.models import WEIGHTS_DIR
    from recommender.recommender import CATALOG_NAME, Recommender

    with open(os.path.join(WEIGHTS_DIR, "msd_musicnn.json"), encoding="utf-8") as fh:
        meta = json.load(fh)
    tmp = index_dir + ".building"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(400, 200)).astype(np.float32)
    tag_centres = rng.beta(0.5, 4.0, size=(400, 50)).astype(np.float32)
    t0 = time.perf_counter()
    key = f"msd-musicnn:{meta['weights_sha256'][:16]}:spread:16"
    with Catalog(os.path.join(tmp, CATALOG_NAME), mode="c") as cat:
        cat.check_compatible(model_name="msd-musicnn", weights_sha256=meta["weights_sha256"],
                             dims={"embedding": 200, "tags": 50})
        cat.set_meta(frontend=features.FRONTEND_PARAMS, tags=list(meta["tags"]))
        chunk = 5000
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            c = rng.integers(0, len(centres), size=m)
            E = centres[c] + 0.7 * rng.normal(size=(m, 200)).astype(np.float32)
            T = np.clip(tag_centres[c] + 0.05 * rng.normal(size=(m, 50)), 0, 1).astype(np.float32)
            with cat.write_batch():
                for j in range(m):
                    i = lo + j
                    artist = f"Artist {i // 40}"
                    cat.add_track(
                        {"path": f"/music/{artist}/Album {i // 10}/{i:06d} Track.ogg", "size": 4_000_000 + i,
                         "mtime_ns": 1_700_000_000_000_000_000 + i, "content_hash": f"{i:032x}",
                         "duration_s": 180.0 + i % 120, "artist": artist, "album": f"Album {i // 10}",
                         "title": f"Track {i}", "analysis_key": key, "sampling": {"policy": "spread"},
                         "n_patches": 16},
                        vectors={"embedding": E[j], "tags": T[j]},
                        descriptors={"tempo_bpm": 80.0 + i % 90, "key": "CDEFGAB"[i % 7],
                                     "mode": "major" if i % 3 else "minor", "loudness_db": -14.0},
                    )
            print(f"\r  catalog: {lo + m}/{n} tracks", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        t1 = time.perf_counter()
        Recommender(tmp).rebuild_indexes(catalog=cat)
    t2 = time.perf_counter()
    shutil.rmtree(index_dir, ignore_errors=True)
    os.replace(tmp, index_dir)
    print(f"built {n}-track index in {index_dir}: catalog {t1 - t0:.0f} s, FAISS {t2 - t1:.0f} s")


def _time(cmd, env):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr.decode()[-2000:]}")
    return t, r


def importtime(cmd, env, top=12):
    """The heaviest imports (cumulative µs) of a command, from ``-X importtime``."""
    r = subprocess.run([sys.executable, "-X", "importtime"] + cmd[1:], env=env, cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rows = []
    for line in r.stderr.decode().splitlines():
        # "import time:      self [us] |    cumulative | imported package"
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|", 2)
        rows.append((int(cum_us), int(self_us), name.rstrip()[1:]))  # one space after '|'
    top_level = [r for r in rows if not r[2].startswith(" ")]
    return sorted(top_level, reverse=True)[:top], rows


_PROBE = ("import runpy, sys\n"
          "sys.argv = ['recommender'] + sys.argv[1:]\n"
          "try:\n"
          "    runpy.run_module('recommender', run_name='__main__')\n"
          "except SystemExit as e:\n"
          "    code = e.code\n"
          "else:\n"
          "    code = 0\n"
          "sys.stderr.write('\\nLOADED ' + ' '.join(m for m in ('librosa', 'numba', 'tensorflow') if m in sys.modules)"
          " + '\\n')\n"
          "sys.exit(code)\n")


def first_run(args) -> None:
    """First vs second ``recommender demo`` with empty numba (and bytecode) caches."""
    tree = os.path.abspath(args.tree) if args.tree else REPO
    env = _env()
    env["PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    work = tempfile.mkdtemp(prefix="coldstart-first-")
    env["NUMBA_CACHE_DIR"] = os.path.join(work, "numba-cache")
    if args.clear_bytecode:
        env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
    load0 = os.getloadavg()
    print(f"package: {tree}; caches cleared: numba{' + bytecode' if args.clear_bytecode else ''}; "
          f"load average {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}")
    times, loaded = [], []
    for i in range(args.runs):
        index = os.path.join(work, "index")
        shutil.rmtree(index, ignore_errors=True)  # every run writes and indexes the demo anew
        shutil.rmtree(os.path.join(work, "music"), ignore_errors=True)
        cmd = [sys.executable, "-P", "-c", _PROBE, "demo", "--index", index, "--music", os.path.join(work, "music")]
        t, r = _time(cmd, env)
        times.append(t)
        tail = r.stderr.decode().rsplit("LOADED", 1)
        loaded.append(tail[1].strip() if len(tail) == 2 else "?")
        print(f"  run {i + 1}: {t:6.2f} s  (imported: {loaded[-1] or 'none of librosa/numba/tensorflow'})")
    compiled = []
    for _root, _dirs, files in os.walk(env["NUMBA_CACHE_DIR"]):
        compiled += sorted(f.rsplit("-", 1)[0] for f in files if f.endswith(".nbi"))
    print(f"first / second: {times[0] / times[1]:.2f}x ({'within' if times[0] <= 1.5 * times[1] else 'OVER'} "
          f"the 1.5x target); numba functions compiled: {len(compiled)} {compiled[:8]}")
    shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()
    print(f"load average at the end: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first-run", action="store_true", help="first vs second `recommender demo` (see above)")
    ap.add_argument("--clear-bytecode", action="store_true", help="with --first-run: also an empty bytecode cache")
    ap.add_argument("--tree", default=None, help="with --first-run: the folder holding the package to run")
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--index", default=None, help="default: /tmp/recommender-coldstart-<tracks>")
    ap.add_argument("--rebuild-index", action="store_true")
    ap.add_argument("--query-id", type=int, default=123)
    args = ap.parse_args()
    if args.first_run:
        args.runs = max(2, args.runs if args.runs != 7 else 2)
        return first_run(args)
    sys.path.insert(0, REPO)

    index_dir = args.index or os.path.join(tempfile.gettempdir(), f"recommender-coldstart-{args.tracks}")
    if args.rebuild_index or not os.path.isfile(os.path.join(index_dir, "catalog.sqlite")):
        build_index(index_dir, args.tracks)
    sizes = {f: os.path.getsize(os.path.join(index_dir, f)) for f in sorted(os.listdir(index_dir))
             if f.endswith((".faiss", ".sqlite"))}
    env = _env()
    py = sys.executable
    query = [py, "-m", "recommender", "similar", str(args.query_id), "--index", index_dir, "--json"]
    cmds = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import numpy'": [py, "-c", "import numpy"],
        "python -c 'import numpy, pandas, faiss'": [py, "-c", "import numpy, pandas, faiss"],
        "python -c 'import tensorflow'": [py, "-c", "import tensorflow"],
        "recommender similar ID --json": query,
    }
    load0 = os.getloadavg()
    print(f"index: {index_dir} ({', '.join(f'{k} {v / 1e6:.0f} MB' for k, v in sizes.items())})")
    print(f"{args.runs} runs per command, interleaved; load average {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}")
    _time(query, env)  # page cache warm: "cold" means a new process, not a cold disk
    times = {k: [] for k in cmds}
    out = None
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            t, r = _time(cmd, env)
            times[name].append(t)
            if cmd is query:
                out = r.stdout
    res = json.loads(out)
    tf_name = "python -c 'import tensorflow'"
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["python -c pass"]
    q = med["recommender similar ID --json"]
    print(f"{'command':<42s}{'median s':>10s}{'min s':>8s}{'x python':>10s}")
    for name in cmds:
        print(f"{name:<42s}{med[name]:>10.3f}{min(times[name]):>8.3f}{med[name] / base:>9.1f}x")
    print(f"query: {len(res)} results (first: id {res[0]['id']}, score {res[0]['score']:.3f}); "
          f"{'under' if q < 1.0 else 'OVER'} the 1 s target; {q / med[tf_name]:.2f}x "
          f"the time of importing TensorFlow alone")

    top, rows = importtime(query, env)
    tf_loaded = any(r[2].strip().split(".")[0] == "tensorflow" for r in rows)
    total_us = sum(r[1] for r in rows)
    print()
    print(f"imports of the query process ({total_us / 1e3:.0f} ms in all, -X importtime; tensorflow "
          f"{'IMPORTED' if tf_loaded else 'not imported'}); heaviest top-level:")
    for cum, _, name in top:
        print(f"  {cum / 1e3:8.1f} ms  {name.strip()}")

    # cProfile of the query itself, in this (fresh-ish) process: the imports
    # above already happened in the subprocess, so profile a fresh subprocess.
    prof = os.path.join(tempfile.mkdtemp(prefix="coldstart-prof-"), "query.prof")
    subprocess.run([py, "-m", "cProfile", "-o", prof] + query[1:], env=env, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.sort_stats("cumulative").print_stats(r"recommender/(?!__main__)|faiss/__init__|sqlite3", 18)
    print()
    print("cProfile of the query process (cumulative, recommender/faiss/sqlite functions):")
    lines = s.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip().startswith("ncalls")), 0)
    for ln in lines[start:]:
        if ln.strip():
            print("  " + ln[:150])
    load1 = os.getloadavg()
    print(f"load average at the end: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}")


if __name__ == "__main__":
    main()
