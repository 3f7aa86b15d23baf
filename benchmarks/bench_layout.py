"""``recommender index`` end to end: this tree against a baseline tree, in one run.

Made for the layered-package change (the code moved; the speed must not): the
baseline is a checkout of the commit before, e.g. ::

    git worktree add /tmp/old 5da7340
    python benchmarks/devset.py /tmp/devset
    python benchmarks/bench_layout.py /tmp/devset --baseline /tmp/old --rounds 3

Each round indexes the collection into a fresh index once with each tree (the
order alternates between rounds so a machine slowing down hurts both alike),
then re-runs the same command on the now complete index (an unchanged
re-scan). Each run is a separate ``python -m recommender index`` process with
``PYTHONPATH`` set to the tree; wall time includes Python's start-up. Prints
the medians and the ratio current / baseline (1.00 = same speed; < 1 faster),
for wall time and for the CPU time the index process used (less sensitive to
other load on the machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import children_cpu

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def run_index(tree: str, music: str, index: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child process) of one ``recommender index`` run."""
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
    c0 = children_cpu()
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "recommender", "index", music, "--index", index,
                        "--no-progress", "--json"], env=env, capture_output=True, text=True, cwd=tree)
    dt = time.perf_counter() - t0
    cpu = children_cpu() - c0
    if r.returncode != 0:
        raise SystemExit(f"{tree}: recommender index failed:\n{r.stderr[-2000:]}")
    return dt, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("music")
    ap.add_argument("--baseline", required=True, help="a checkout of the baseline commit")
    ap.add_argument("--current", default=HERE, help="the tree to measure (default: this checkout)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    trees = {"baseline": os.path.abspath(a.baseline), "current": os.path.abspath(a.current)}
    full = {k: [] for k in trees}
    full_cpu = {k: [] for k in trees}
    rescan = {k: [] for k in trees}
    work = tempfile.mkdtemp(prefix="bench_layout.")
    try:
        for r in range(a.rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for name in order:
                idx = os.path.join(work, f"{name}-{r}")
                wall, cpu = run_index(trees[name], a.music, idx)
                full[name].append(wall)
                full_cpu[name].append(cpu)
                rescan[name].append(run_index(trees[name], a.music, idx)[0])
                shutil.rmtree(idx)
                print(f"round {r + 1} {name:>8s}: index {wall:6.2f} s wall, {cpu:6.2f} s CPU; "
                      f"unchanged re-scan {rescan[name][-1]:5.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'median':>18s} {'baseline':>9s} {'current':>9s} {'ratio':>6s}")
    for label, d in (("index wall", full), ("index CPU", full_cpu), ("re-scan wall", rescan)):
        b, c = statistics.median(d["baseline"]), statistics.median(d["current"])
        print(f"{label:>18s} {b:8.2f}s {c:8.2f}s {c / b:6.3f}")


if __name__ == "__main__":
    main()
