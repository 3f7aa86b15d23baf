"""One-file commands as a user types them: this tree against an earlier revision (issue #20).

On one file the fixed costs dominate (Python's start-up, imports, the
model), so they are what a user waits for.  For each command below, the
process's wall time of ``python -m recommender …`` is measured ``--rounds``
times, alternately with this working tree and with ``--before-rev REV``
(``git archive`` of that revision first on ``PYTHONPATH``, run from a
temporary folder so the working tree cannot shadow it: see
``bench_index_command.py``), and the medians and their ratio are printed:

* ``classify FILE``;
* ``describe FILE``;
* ``index DIR`` into a fresh index, ``DIR`` holding only ``FILE`` (a link).

Usage::

    python benchmarks/bench_command_start.py --before-rev REV [--file F] [--rounds 5]

``--file`` defaults to the first file of the selection half of the dev
collection (``/tmp/devset``, see ``../shared/DEVSET.md``).
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
from _common import audio_files
from bench_index_command import REPO, _export


def _wall(pythonpath: str, args: list[str], cwd: str) -> float:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "recommender", *args], capture_output=True, env=env, cwd=cwd,
                       check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"recommender {' '.join(args)} failed ({r.returncode}):\n{r.stderr.decode()[-2000:]}")
    return wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before-rev", required=True)
    ap.add_argument("--file", help="an audio file (default: the first of /tmp/devset)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    path = os.path.abspath(args.file or (audio_files("/tmp/devset") or [""])[0])
    if not os.path.isfile(path):
        sys.exit("no audio file: pass --file")
    with tempfile.TemporaryDirectory(prefix="bench_command_start_") as tmp:
        before = _export(args.before_rev, os.path.join(tmp, "before"))
        work, one = os.path.join(tmp, "work"), os.path.join(tmp, "one")
        os.makedirs(work)
        os.makedirs(one)
        os.symlink(path, os.path.join(one, os.path.basename(path)))
        index = os.path.join(tmp, "index")
        commands = {
            "classify FILE": ["classify", path],
            "describe FILE": ["describe", path],
            "index (1 file)": ["index", one, "--index", index, "--no-progress"],
        }
        variants = {f"before ({args.before_rev})": before, "this tree": REPO}
        times = {(c, v): [] for c in commands for v in variants}
        for _ in range(args.rounds):
            for c, cmd in commands.items():
                for v, pp in variants.items():
                    shutil.rmtree(index, ignore_errors=True)
                    times[c, v].append(_wall(pp, cmd, work))
    print(f"{os.path.basename(path)}; median process wall time of {args.rounds} alternated rounds; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for c in commands:
        med = {v: statistics.median(times[c, v]) for v in variants}
        b, t = med[f"before ({args.before_rev})"], med["this tree"]
        print(f"  recommender {c:16s} before {b:5.2f} s   this tree {t:5.2f} s   {b / t:4.2f}x faster")


if __name__ == "__main__":
    main()
