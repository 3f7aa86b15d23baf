"""Load on ``recommender serve``: ``/similar`` latency and throughput at 1, 10 and 100 clients.

A real ``recommender serve`` (uvicorn; ``--workers N`` processes, default 1) answers on loopback from a
100k-track synthetic index (built once like ``bench_coldstart.py`` and
cached under ``/tmp/recommender-serve-<tracks>``).  Closed-loop clients (one
keep-alive HTTP/1.1 connection each) ask ``/api/tracks/ID/similar?k=10`` for
random ids; each level of concurrency runs for a third of ``--duration``.

The load generator must not take the server's CPU: by default it is ``wrk``
(Debian package ``wrk``: C, one thread, epoll; its Lua script picks the ids
and reports exact percentiles), else (``--client python`` or no ``wrk``) an
asyncio raw-socket client in a separate process.  In the same run the library
is called directly (``Recommender.similar``, same kind of ids, one thread) as
the baseline, once with the per-generation track table
(:func:`recommender.recommend.view.track_table`: the state a server or a
repeated caller is in) and once reading each query's candidates from SQLite
(a one-off call).  The server's resident memory (all its processes) is sampled every second over
the whole run: start, peak, end and the slope of a straight line through the
second half (MB/min; flat means no leak).

Usage::

    python benchmarks/bench_serve.py                     # 60 s of load in all
    python benchmarks/bench_serve.py --duration 300      # the 5-minute memory run
    python benchmarks/bench_serve.py --workers 1,2       # one server process, then two

Target (issue #19): p99 <= 50 ms at 100 concurrent clients on 2 cores; memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

_WRK_SCRIPT = """
local ids = {%(ids)s}
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", "/api/tracks/" .. ids[math.random(#ids)] .. "/similar?k=10")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %%d, "duration_us": %%d, "p50": %%d, "p90": %%d, "p99": %%d, ' ..
    '"max": %%d, "status_errors": %%d, "socket_errors": %%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000.0, q)) if len(xs) else float("nan")


# ------------------------------------------------------------------ load generators
def wrk_level(port, ids, clients, seconds, seed, workdir):
    """One level with ``wrk``: ``{requests, req_s, p50, p90, p99, max (ms), errors}``."""
    script = os.path.join(workdir, f"similar-{seed}.lua")
    with open(script, "w") as fh:
        fh.write(_WRK_SCRIPT % {"ids": ",".join(str(int(i)) for i in ids), "seed": seed})
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, int(round(seconds)))}s", "--timeout", "30s", "-s", script,
           f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True).stdout
    r = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    wall = r["duration_us"] / 1e6
    return {"requests": r["requests"], "req_s": r["requests"] / wall, "p50": r["p50"] / 1e3, "p90": r["p90"] / 1e3,
            "p99": r["p99"] / 1e3, "max": r["max"] / 1e3, "errors": r["status_errors"] + r["socket_errors"]}


async def _client(port, ids, stop_at, lat, errors, rng):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            tid = int(ids[rng.integers(len(ids))])
            t0 = time.perf_counter()
            writer.write(f"GET /api/tracks/{tid}/similar?k=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _level(port, ids, clients, seconds, seed):
    lat, errors = [], []
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*[_client(port, ids, stop_at, lat, errors, np.random.default_rng(seed + i))
                           for i in range(clients)])
    return lat, errors, time.perf_counter() - t0


def python_level(port, ids, clients, seconds, seed, workdir=None):
    """One level with the asyncio client (in this process): the same keys as :func:`wrk_level`."""
    lat, errors, wall = asyncio.run(_level(port, ids, clients, seconds, seed))
    return {"requests": len(lat), "req_s": len(lat) / wall, "p50": _pct(lat, 50), "p90": _pct(lat, 90),
            "p99": _pct(lat, 99), "max": _pct(lat, 100), "errors": len(errors)}


# ------------------------------------------------------------------ baseline
def direct(index_dir, ids, seconds, *, table=True, seed=0):
    """Latencies (s) of ``Recommender.similar`` called in this process, one thread.

    ``table=False``: every query reads its candidates from SQLite (what a one-off
    call does); ``True``: the per-generation track table is built first.
    """
    from recommender import Recommender
    from recommender.recommend import view

    view.clear_cache()
    rec = Recommender(index_dir)
    old = view._TABLE_AFTER
    view._TABLE_AFTER = 0 if table else 1 << 60
    try:
        if table:
            view.track_table(rec)
        rec.similar(int(ids[0]), k=10)
        rng = np.random.default_rng(seed)
        lat = []
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            tid = int(ids[rng.integers(len(ids))])
            t0 = time.perf_counter()
            rec.similar(tid, k=10)
            lat.append(time.perf_counter() - t0)
    finally:
        view._TABLE_AFTER = old
        rec.close()
        view.clear_cache()
    return lat


def _index(args):
    from bench_coldstart import build_index

    from recommender import Recommender
    from recommender.errors import RecommenderError

    index_dir = args.index or os.path.join(tempfile.gettempdir(), f"recommender-serve-{args.tracks}")
    try:
        with Recommender(index_dir) as rec:
            ok = len(rec) == args.tracks or args.index is not None
    except RecommenderError:  # missing, or written by an older schema
        ok = False
    if not ok:
        build_index(index_dir, args.tracks)
    return index_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--index", default=None, help="default: /tmp/recommender-serve-<tracks> (built when missing)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load in all (a third per level)")
    ap.add_argument("--direct-seconds", type=float, default=10.0)
    ap.add_argument("--levels", default="1,10,100")
    ap.add_argument("--workers", default="1",
                    help="server processes (`recommender serve --workers N`); a comma list runs each in turn")
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                    help="load generator (auto: wrk when installed)")
    args = ap.parse_args()

    index_dir = _index(args)
    from recommender import Recommender

    with Recommender(index_dir) as rec:
        ids = np.asarray(rec.tracks().index, dtype=np.int64)
    sample = np.random.default_rng(7).choice(ids, size=min(len(ids), 20000), replace=False)
    levels = [int(x) for x in args.levels.split(",")]
    client = "wrk" if args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")) else "python"
    load = wrk_level if client == "wrk" else python_level
    try:
        import httptools  # noqa: F401
        http = "httptools"
    except ImportError:
        http = "h11"
    print(f"index {index_dir}: {len(ids)} tracks; {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; client {client}; uvicorn http {http}")

    for table in (False, True):
        lat = direct(index_dir, sample, args.direct_seconds / 2, table=table)
        print(f"library, in process, 1 thread, {'track table' if table else 'SQLite reads'}: p50 {_pct(lat, 50):.2f} ms"
              f"  p99 {_pct(lat, 99):.2f} ms  {len(lat) / (args.direct_seconds / 2):.0f} queries/s ({len(lat)} queries)")

    for workers in [int(x) for x in args.workers.split(",")]:
        serve(index_dir, sample, levels, load, args.duration, workers)


def _rss_tree_mb(pid):
    """Resident memory of ``pid`` and its children (uvicorn's worker processes), MB."""
    total = _rss_mb(pid)
    for k in _children(pid):
        try:
            total += _rss_tree_mb(k)
        except OSError:
            pass
    return total


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def _connections_per_process(pid, port):
    """Established connections to ``port`` held by ``pid`` and each of its descendants that holds
    any (Linux ``/proc``: socket inodes of each process's descriptors, matched in ``/proc/net/tcp*``)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    f = line.split()
                    if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED, local port
                        established.add(f[9])
        except OSError:
            pass
    counts, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        todo.extend(_children(p))
        n = 0
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    link = os.readlink(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                n += link.startswith("socket:[") and link[8:-1] in established
        except OSError:
            continue
        if n:
            counts.append(n)
    return counts


def serve(index_dir, sample, levels, load, duration, workers):
    """Start ``recommender serve --workers N``, run each load level, print latencies and memory."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", index_dir,
                             "--port", str(port), "--workers", str(workers)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workdir = tempfile.mkdtemp(prefix="bench-serve-")
    try:
        t0 = time.perf_counter()
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"recommender serve failed: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
        load(port, sample, 4, 3.0 * workers, 999, workdir)  # warm-up: caches, thread pool, every worker up
        print(f"server up in {time.perf_counter() - t0:.1f} s (uvicorn, {workers} process"
              f"{'es' if workers > 1 else ''}), RSS {_rss_tree_mb(proc.pid):.0f} MB")
        rss = []
        stop = threading.Event()

        def sample_rss():
            t0 = time.perf_counter()
            while not stop.is_set():
                rss.append((time.perf_counter() - t0, _rss_tree_mb(proc.pid)))
                stop.wait(1.0)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        print(f"{'clients':>8s} {'requests':>9s} {'req/s':>8s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} "
              f"{'max ms':>8s} {'errors':>7s}  connections per process (mid-level)")
        for c in levels:
            held = []
            mid = threading.Timer(duration / len(levels) / 2, lambda: held.extend(_connections_per_process(proc.pid, port)))
            mid.start()
            r = load(port, sample, c, duration / len(levels), 17 * c, workdir)
            mid.join()
            print(f"{c:8d} {r['requests']:9d} {r['req_s']:8.0f} {r['p50']:8.2f} {r['p90']:8.2f} "
                  f"{r['p99']:8.2f} {r['max']:8.2f} {r['errors']:7d}  {held}", flush=True)
        stop.set()
        sampler.join()
        t = np.array([x for x, _ in rss])
        m = np.array([y for _, y in rss])
        half = t >= t[-1] / 2
        slope = float(np.polyfit(t[half], m[half], 1)[0] * 60.0) if half.sum() >= 3 else float("nan")
        print(f"server RSS over {t[-1]:.0f} s: start {m[0]:.0f} MB, peak {m.max():.0f} MB, end {m[-1]:.0f} MB, "
              f"second-half slope {slope:+.2f} MB/min (median {statistics.median(m):.0f} MB)")
        print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
