"""``recommender serve --workers N``: several uvicorn processes answer from one index, with
the same answers as the library; ``/similar`` runs on the event loop only for plain searches."""

import os
import urllib.request

import pytest
from conftest import VECTOR_INDEX_TRACKS, serving

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from recommender import Recommender  # noqa: E402
from recommender.serve.app import CONFIG_ENV, app_from_env  # noqa: E402

N = VECTOR_INDEX_TRACKS


@pytest.fixture()
def index(vector_index):
    return vector_index


def _get(url):
    import json

    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, json.loads(r.read())


def test_two_workers_answer_like_the_library(index, tmp_path):
    with serving(index, tmp_path / "serve.log", "--workers", "2") as (url, log):
        base = url.rstrip("/")
        with Recommender(index) as rec:
            for tid in (1, 17, 60, 300):
                status, rows = _get(f"{base}/api/tracks/{tid}/similar?k=7")
                want = rec.similar(tid, k=7)
                assert status == 200 and [r["id"] for r in rows] == want["id"].tolist()
                assert [r["score"] for r in rows] == pytest.approx(want["score"].tolist(), abs=0)
                status, rows = _get(f"{base}/api/tracks/{tid}/similar?k=7&explain=1")  # the thread-pool path
                assert status == 200 and [r["id"] for r in rows] == want["id"].tolist() and rows[0]["why"]
        try:
            urllib.request.urlopen(f"{base}/api/tracks/99999/similar", timeout=10)
            raise AssertionError("no 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404
        log.seek(0)
        text = log.read()
        assert "2 worker processes" in text, text


def test_workers_must_be_positive_and_the_index_must_exist(index, capsys, tmp_path):
    from recommender.cli.main import main

    assert main(["serve", "--index", str(index), "--workers", "0"]) == 2
    assert "--workers 0: must be between 1 and" in capsys.readouterr().err
    assert main(["serve", "--index", str(tmp_path / "none"), "--workers", "2"]) != 0  # before any worker starts
    err = capsys.readouterr().err
    assert "no index here yet" in err and "Traceback" not in err and not (tmp_path / "none").exists()


def test_app_from_env(index, monkeypatch):
    from recommender.errors import ParameterError

    monkeypatch.setenv(CONFIG_ENV, "")  # main() sets it for the workers: restored after the test
    with pytest.raises(ParameterError, match=CONFIG_ENV):
        app_from_env()
    monkeypatch.setenv(CONFIG_ENV, "[1, 2]")
    with pytest.raises(ParameterError, match="JSON object"):
        app_from_env()
    monkeypatch.setenv(CONFIG_ENV, '{"index_dir": "%s", "max_upload_mb": 5}' % os.fspath(index))
    app = app_from_env()
    assert len(app.state.index.rec) == N and app.state.max_upload_bytes == 5 * 1024 * 1024


def test_connections_are_spread_over_the_workers(index, tmp_path):
    """(#19) 40 clients connecting at once are served by both workers (a socket per worker,
    SO_REUSEPORT): with uvicorn's one shared socket, the first worker to wake took them all."""
    psutil = pytest.importorskip("psutil")
    import http.client

    with serving(index, tmp_path / "serve.log", "--workers", "2") as (url, log):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=20) for _ in range(40)]
        for c in conns:  # every connection made before any request (they wait in the kernel's queues)
            c.connect()
        for c in conns:
            c.request("GET", "/api/tracks/1/similar?k=3")
        for c in conns:
            r = c.getresponse()
            assert r.status == 200, r.read()
            r.read()
        server = next(p for p in psutil.Process().children() if str(port) in " ".join(p.cmdline()))
        held = [sum(1 for k in w.net_connections("tcp") if k.status == psutil.CONN_ESTABLISHED and k.laddr.port == port)
                for w in server.children(recursive=True)]
        for c in conns:
            c.close()
    assert sum(held) == 40 and sorted(held)[-2] >= 5, f"connections per process: {held}"


def test_a_port_in_use_is_refused(index):
    """--workers binds the port once without SO_REUSEPORT first: a port in use is an error,
    not a port silently shared with another server.  (In a subprocess: uvicorn's Config sets up
    logging on the process's stderr.)"""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even a server that allows sharing
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "recommender", "serve", "--index", str(index), "--workers", "2",
                            "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


def test_port_zero_says_which_port(index, tmp_path):
    """(breaker, #19) ``--port 0 --workers 2``: the system's port is printed, and every worker listens there."""
    import re
    import subprocess
    import sys
    import time

    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "recommender", "serve", "--index", str(index), "--port", "0",
                                 "--workers", "2"], stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline, port = time.monotonic() + 60, None
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"listening on port (\d+)", log.read_text())
            port = int(m.group(1)) if m else time.sleep(0.2)
        assert port, log.read_text()
        while True:
            try:
                status, rows = _get(f"http://127.0.0.1:{port}/api/tracks/1/similar?k=3")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.2)
        assert status == 200 and len(rows) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_worker_that_cannot_open_the_index_stops_the_server(index, tmp_path):
    """An index that a worker cannot open (here: made to fail in the spawned workers only) ends
    `recommender serve --workers 2` with status 1 and one clear line per worker, not an endless
    restart loop (uvicorn restarts a worker unless it exits with its startup-failure status)."""
    import subprocess
    import sys

    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "if '--multiprocessing-fork' in sys.argv:  # a spawned worker\n"
        "    import recommender.serve.app as a\n"
        "    from recommender.errors import CatalogError\n"
        "    def broken():\n"
        "        raise CatalogError('/idx/catalog.sqlite', 'database disk image is malformed')\n"
        "    a.app_from_env = broken\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "recommender", "serve", "--index", str(index), "--workers", "2",
                        "--port", "0"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "error: a worker could not open the index: /idx/catalog.sqlite: database disk image is malformed" \
        in r.stderr, r.stderr[-2000:]
    assert "error: a worker process could not start" in r.stderr and r.stderr.count("could not open") <= 2
