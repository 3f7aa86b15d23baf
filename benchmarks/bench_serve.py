"""Load on ``recommender serve``: ``/similar`` latency and throughput at 1, 10 and 100 clients.

A real ``recommender serve`` (uvicorn, one process) answers on loopback from a
100k-track synthetic index (built once like ``bench_coldstart.py`` and
cached under ``/tmp``).  Closed-loop clients (one keep-alive HTTP/1.1
connection each, asyncio, in this process) ask ``/api/tracks/ID/similar?k=10``
for random ids; each level of concurrency runs for a third of ``--duration``.
In the same run, the library is called directly (``Recommender.similar``,
same ids, one thread) as the baseline.  The server's resident memory is
sampled every second over the whole run: start, peak, end and the slope of
a straight line through the second half (MB/min; flat means no leak).

Usage::

    python benchmarks/bench_serve.py                     # 60 s in all
    python benchmarks/bench_serve.py --duration 300      # the 5-minute memory run

Target (issue #19): p99 <= 50 ms at 100 concurrent clients on 2 cores; memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
    return float(np.percentile(np.asarray(xs) * 1000.0, q)) if xs else float("nan")


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


def direct(index_dir, ids, seconds, seed=0):
    """Latencies (s) of ``Recommender.similar`` called in this process, one thread."""
    from recommender import Recommender

    rec = Recommender(index_dir)
    rec.similar(int(ids[0]), k=10)
    rng = np.random.default_rng(seed)
    lat = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        tid = int(ids[rng.integers(len(ids))])
        t0 = time.perf_counter()
        rec.similar(tid, k=10)
        lat.append(time.perf_counter() - t0)
    rec.close()
    return lat


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--index", default=None, help="default: /tmp/recommender-coldstart-<tracks> (shared with bench_coldstart)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load in all (a third per level)")
    ap.add_argument("--direct-seconds", type=float, default=10.0)
    ap.add_argument("--levels", default="1,10,100")
    args = ap.parse_args()

    from bench_coldstart import build_index

    index_dir = args.index or os.path.join(tempfile.gettempdir(), f"recommender-coldstart-{args.tracks}")
    if not os.path.isfile(os.path.join(index_dir, "catalog.sqlite")):
        build_index(index_dir, args.tracks)
    from recommender import Recommender

    with Recommender(index_dir) as rec:
        ids = np.asarray(rec.tracks().index, dtype=np.int64)
    levels = [int(x) for x in args.levels.split(",")]
    print(f"index {index_dir}: {len(ids)} tracks; {os.cpu_count()} CPUs; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    lat = direct(index_dir, ids, args.direct_seconds)
    print(f"library, in process, 1 thread: p50 {_pct(lat, 50):.2f} ms  p99 {_pct(lat, 99):.2f} ms  "
          f"{len(lat) / args.direct_seconds:.0f} queries/s ({len(lat)} queries)")

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", index_dir,
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        print(f"server up in {time.perf_counter() - t0:.1f} s (uvicorn, 1 process), RSS {_rss_mb(proc.pid):.0f} MB")
        asyncio.run(_level(port, ids, 4, 3.0, 999))  # warm-up: caches, thread pool
        rss = []
        stop = threading.Event()

        def sample():
            t0 = time.perf_counter()
            while not stop.is_set():
                rss.append((time.perf_counter() - t0, _rss_mb(proc.pid)))
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        print(f"{'clients':>8s} {'requests':>9s} {'req/s':>8s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} "
              f"{'max ms':>8s} {'errors':>7s}")
        for c in levels:
            lat, errors, wall = asyncio.run(_level(port, ids, c, args.duration / len(levels), 17 * c))
            print(f"{c:8d} {len(lat):9d} {len(lat) / wall:8.0f} {_pct(lat, 50):8.2f} {_pct(lat, 90):8.2f} "
                  f"{_pct(lat, 99):8.2f} {_pct(lat, 100):8.2f} {len(errors):7d}")
        stop.set()
        sampler.join()
        t = np.array([x for x, _ in rss])
        m = np.array([y for _, y in rss])
        half = t >= t[-1] / 2
        slope = float(np.polyfit(t[half], m[half], 1)[0] * 60.0) if half.sum() >= 3 else float("nan")
        print(f"server RSS over {t[-1]:.0f} s: start {m[0]:.0f} MB, peak {m.max():.0f} MB, end {m[-1]:.0f} MB, "
              f"second-half slope {slope:+.2f} MB/min (median {statistics.median(m):.0f} MB)")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
