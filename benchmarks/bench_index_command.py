"""``recommender index`` end to end, as a user runs it: this tree against an earlier revision (issue #20).

Runs the command ``python -m recommender index PATH... --index NEW_DIR
--no-progress [OPTIONS]`` into a fresh index, alternately with this working
tree and with ``--before-rev REV`` (``git archive`` of that revision into a
temporary folder, put first on ``PYTHONPATH``; the commands run from that
temporary folder so the working tree's package cannot shadow it), ``--rounds``
times each, and prints per variant the median of

* the process's wall time and CPU time (user + system, children included:
  ``fpcalc``, ``ffmpeg``), from ``RUSAGE_CHILDREN``;
* the command's own figure (its summary line: seconds from the start of the
  update to the end, and "x real time" = seconds of audio / those seconds);
* the process's x real time (seconds of audio / the process's wall time),
  the duration of the audio read back from the index made.

and the ratio of each median to the earlier revision's in the same run.

Usage::

    python benchmarks/bench_index_command.py --before-rev REV [--rounds 3] [PATH ...]
                                             [--options="--no-fingerprints --no-descriptors"]

PATH defaults to the selection half of the dev collection (``/tmp/devset``,
see ``../shared/DEVSET.md``).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import children_cpu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SUMMARY = re.compile(r"in ([0-9.]+) s \(([0-9,]+)x real time\)")



def _export(rev: str, dest: str) -> str:
    """The package as it is at ``rev``, unpacked under ``dest``."""
    os.makedirs(dest, exist_ok=True)
    archive = subprocess.run(["git", "-C", REPO, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest


def _audio_seconds(index_dir: str) -> float:
    with sqlite3.connect(os.path.join(index_dir, "catalog.sqlite")) as db:
        return float(db.execute("select sum(duration_s) from tracks").fetchone()[0] or 0.0)


def run_once(pythonpath: str, paths, options, workdir: str) -> dict:
    index = os.path.join(workdir, "index")
    shutil.rmtree(index, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cmd = [sys.executable, "-m", "recommender", "index", *paths, "--index", index, "--no-progress", *options]
    c0, t0 = children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir, check=False)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    m = _SUMMARY.search(r.stdout + r.stderr)
    audio = _audio_seconds(index)
    return {"wall": wall, "cpu": cpu, "own_s": float(m.group(1)) if m else float("nan"),
            "own_x": float(m.group(2).replace(",", "")) if m else float("nan"), "x": audio / wall,
            "audio_s": audio}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=["/tmp/devset"])
    ap.add_argument("--before-rev", required=True, help="git revision to compare against (e.g. a commit)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--options", default="", help="extra options for recommender index, one string")
    args = ap.parse_args(argv)
    paths = [os.path.abspath(p) for p in args.paths]
    options = shlex.split(args.options)
    with tempfile.TemporaryDirectory(prefix="bench_index_command_") as tmp:
        before = _export(args.before_rev, os.path.join(tmp, "before"))
        os.makedirs(os.path.join(tmp, "work"))
        variants = {f"before ({args.before_rev})": before, "this tree": REPO}
        runs: dict[str, list[dict]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, pp in variants.items():
                runs[name].append(run_once(pp, paths, options, os.path.join(tmp, "work")))
    audio = runs["this tree"][0]["audio_s"]
    print(f"recommender index {' '.join(args.paths)} {args.options}".rstrip()
          + f": {audio / 3600:.2f} h of audio; median of {args.rounds} alternated rounds; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "own_s", "own_x", "x")}
           for name, rs in runs.items()}
    base = med[f"before ({args.before_rev})"]
    for name, m in med.items():
        print(f"  {name:22s} process {m['wall']:6.2f} s wall ({m['x']:6.0f}x real time), "
              f"{m['cpu']:6.2f} s CPU | the command's own figure {m['own_s']:5.1f} s ({m['own_x']:6.0f}x) | "
              f"wall {base['wall'] / m['wall']:4.2f}x, CPU {base['cpu'] / m['cpu']:4.2f}x faster than before")


if __name__ == "__main__":
    main()
