"""``recommender serve``'s HTTP protocol: each response written in one piece
(:class:`recommender.cli._http.CoalescingHttpToolsProtocol`), nothing lost or reordered:
JSON, whole audio files and Range requests through a real server."""

import asyncio
import os
import urllib.request

import numpy as np
import pytest
from conftest import serving

pytest.importorskip("httptools", reason="the coalescing protocol is httptools' (pip install '.[serve]')")

from recommender.cli._http import CoalescingHttpToolsProtocol, _CoalescingTransport  # noqa: E402
from recommender.cli.serve import http_protocol  # noqa: E402


class _FakeTransport:
    def __init__(self):
        self.writes, self.closed = [], False

    def write(self, data):
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_turn_reach_the_socket_as_one():
    async def run():
        real = _FakeTransport()
        t = _CoalescingTransport(real, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b'{"a": 1}')
        assert real.writes == []  # not yet: at the end of this turn
        await asyncio.sleep(0)
        assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"a": 1}']
        t.write(b"next")
        await asyncio.sleep(0)
        t.write(b"last")
        t.close()  # what is pending is written before the close
        assert real.writes[1:] == [b"next", b"last"] and real.closed
        await asyncio.sleep(0)  # the flush scheduled for "last" finds nothing left
        assert len(real.writes) == 3 and t.get_extra_info("peername") == ("127.0.0.1", 1)
        gone = _FakeTransport()
        t = _CoalescingTransport(gone, asyncio.get_running_loop())
        t.write(b"lost")
        gone.closed = True  # the client went away before the flush
        await asyncio.sleep(0)
        assert gone.writes == []

    asyncio.run(run())


def test_serve_uses_it():
    assert http_protocol() is CoalescingHttpToolsProtocol


def test_a_real_server_answers_json_whole_files_and_ranges(tmp_path):
    import soundfile as sf
    from test_serve_cue import _write_index

    music = tmp_path / "music"
    music.mkdir()
    rng = np.random.default_rng(1)
    y = (0.1 * np.sin(np.linspace(0, 3000, int(4.5 * 8000)))).astype(np.float32)
    album, single = str(music / "Album.flac"), str(music / "Single.wav")
    sf.write(album, y, 8000)
    sf.write(single, 0.2 * rng.standard_normal((44100 * 30, 2)).astype(np.float32), 44100, subtype="FLOAT")  # ~10 MB
    idx = tmp_path / "idx"
    idx.mkdir()
    ids = _write_index(str(idx), album, single)
    want = open(single, "rb").read()
    with serving(idx, tmp_path / "serve.log", timeout_s=60) as (url, _):
        base = url.rstrip("/")
        got = urllib.request.urlopen(f"{base}/api/tracks/{ids['single']}/audio", timeout=30).read()
        assert len(want) > 8_000_000 and got == want
        req = urllib.request.Request(f"{base}/api/tracks/{ids['single']}/audio",
                                     headers={"Range": "bytes=1000000-1999999"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 206 and r.read() == want[1000000:2000000]
        for _ in range(20):  # keep-alive answers, each whole
            with urllib.request.urlopen(f"{base}/api/tracks/{ids['one']}/similar?k=3", timeout=30) as r:
                assert r.status == 200 and len(__import__("json").loads(r.read())) == 3
        assert os.path.getsize(single) == len(want)
