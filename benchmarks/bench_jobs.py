"""``--jobs``: every number of processes allowed is never slower than one (issue #20).

Analyses three synthetic collections (demo synthesiser, mixed FLAC/WAV/Ogg
at 22.05 kHz) the way ``recommender index`` does (default sampling, with
descriptors) -- 10 files of 120 s, 100 of 30 s and 1,000 of 10 s -- with:

* ``jobs=1``: one process (the baseline, measured in the same run);
* ``jobs=N`` for every N from 2 to the CPUs this process may use, as
  ``--jobs N`` runs it (:func:`~recommender.analysis.parallel.analyse_parallel`,
  which applies :func:`~recommender.analysis.parallel.resolve_jobs`);
* ``jobs=auto`` (the default);
* ``raw N``: exactly N loky worker processes without the rule (what
  ``--jobs N`` did before), to show why the rule is what it is.

Every timed run starts with no worker process alive (a new ``recommender
index`` starts cold), and the model is loaded in the parent first (the
index command loads it to check the catalog).  Configurations are
interleaved per round; the table shows the median seconds and the ratio to
``jobs=1`` (<= 1.05 passes), and the CPU seconds spent (this process and
its workers: a cost that does not depend on how loaded the machine is).

Usage::

    python benchmarks/bench_jobs.py [--rounds 1] [--sets 10,100,1000] [--data /tmp/bench-jobs]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SETS = {10: (3, 120.0), 100: (25, 30.0), 1000: (250, 10.0)}  # files: (per style, seconds)


def collection(root, n):
    from benchmarks._common import audio_files, synthetic_collection

    per_style, dur = SETS[n]
    folder = os.path.join(root, f"{n}x{dur:.0f}s")
    files = audio_files(folder)
    if len(files) < n:
        t0 = time.perf_counter()
        synthetic_collection(folder, per_style=per_style, duration_s=dur)
        files = audio_files(folder)
        print(f"  wrote {len(files)} files of {dur:.0f} s to {folder} in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    return files[:n]


def _fresh_workers():
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)


def run(files, model, how, n):
    from recommender.analysis.parallel import analyse_parallel, analyse_processes
    from recommender.recommender import DEFAULT_SAMPLING

    _fresh_workers()
    c0 = _cpu_s()
    t0 = time.perf_counter()
    if how == "raw":
        got = list(analyse_processes(files, model=model, sampling=DEFAULT_SAMPLING, jobs=n, descriptors=True))
    else:
        got = list(analyse_parallel(files, model=model, sampling=DEFAULT_SAMPLING, jobs=n, descriptors=True))
    t = time.perf_counter() - t0
    _fresh_workers()  # workers reaped: their CPU time is counted
    cpu = _cpu_s() - c0
    bad = [r for r in got if not hasattr(r, "embedding")]
    if len(got) != len(files) or bad:
        raise SystemExit(f"{how} {n}: {len(got)} results for {len(files)} files, {len(bad)} failures")
    return t, cpu


def _cpu_s():
    """CPU seconds (user + system) of this process and its reaped children."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--sets", default="10,100,1000")
    ap.add_argument("--data", default="/tmp/bench-jobs")
    ap.add_argument("--raw", default="2", help="raw worker counts to show (comma separated; '' for none)")
    args = ap.parse_args()

    from recommender._utils import cpu_count
    from recommender.analysis.parallel import resolve_jobs
    from recommender.models import load_model

    cores = cpu_count()
    model = load_model()
    load0 = os.getloadavg()
    print(f"{cores} CPUs this process may use (os.cpu_count()={os.cpu_count()}); model {model!r}; "
          f"load average {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}")
    if cores <= 2:
        print("only 2 CPUs here: scaling with more cores is NOT measured by this run")
    configs = [("jobs", 1)] + [("jobs", n) for n in range(2, cores + 1)] + [("jobs", "auto")]
    configs += [("raw", int(r)) for r in args.raw.split(",") if r.strip()]
    ok = True
    for n_files in (int(x) for x in args.sets.split(",")):
        files = collection(args.data, n_files)
        run(files[:2], model, "jobs", 1)  # warm-up: this process's first analysis (page cache, first calls)
        times = {c: [] for c in configs}
        cpus = {c: [] for c in configs}
        for _ in range(args.rounds):
            for how, n in configs:
                t, cpu = run(files, model, how, n)
                times[(how, n)].append(t)
                cpus[(how, n)].append(cpu)
        base = statistics.median(times[("jobs", 1)])
        audio_s = SETS[n_files][1] * n_files
        print(f"\n{n_files} files of {SETS[n_files][1]:.0f} s ({args.rounds} round(s), median):")
        print(f"  {'configuration':<14s}{'processes':>10s}{'seconds':>9s}{'x jobs=1':>10s}{'x real time':>13s}"
              f"{'CPU s':>8s}{'x jobs=1':>10s}")
        cbase = statistics.median(cpus[("jobs", 1)])
        best = min(times, key=lambda c: statistics.median(times[c]))
        for how, n in configs:
            t = statistics.median(times[(how, n)])
            procs = n if how == "raw" else resolve_jobs(n, n_files)
            verdict = ""
            if how == "jobs":
                verdict = "ok" if t <= 1.05 * base else "SLOWER"
                ok &= t <= 1.05 * base
            label = f"{'raw' if how == 'raw' else 'jobs'}={n}"
            c = statistics.median(cpus[(how, n)])
            print(f"  {label:<14s}{procs:>10d}{t:>9.2f}{t / base:>9.2f}x{audio_s / t:>12.0f}x"
                  f"{c:>8.1f}{c / cbase:>9.2f}x  {verdict}")
        print(f"  fastest: {best[0]}={best[1]}; auto picks {resolve_jobs('auto', n_files)} process(es)")
    load1 = os.getloadavg()
    print(f"\nevery allowed --jobs within 5 % of jobs=1: {'yes' if ok else 'NO'}; "
          f"load average at the end {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}")


if __name__ == "__main__":
    main()
