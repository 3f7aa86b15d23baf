"""``recommender serve`` plays the tracks of a CUE album: the audio endpoint streams the
album's file, the track says which part (``start_s``/``end_s``, ``#t=`` media fragment)."""

import os

import numpy as np
import pytest

pytest.importorskip("starlette", reason="recommender serve needs starlette (pip install '.[test]')")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (pip install '.[test]')")

from starlette.testclient import TestClient  # noqa: E402

from recommender.serve import create_app  # noqa: E402
from recommender.store.catalog import Catalog  # noqa: E402

TAGS = [f"tag{i}" for i in range(50)]


def _write_index(root, album, single):
    """Rows as the indexer writes them: a cue track's path is ``segment_key``, its
    ``content_hash`` the segment's of its file's; the last part runs to the end (``#t=3``)."""
    from recommender.io.collection import content_hash
    from recommender.io.cuesheet import Segment

    rng = np.random.default_rng(0)
    ids = {}
    with Catalog(os.path.join(root, "catalog.sqlite"), mode="c") as cat:
        cat.check_compatible(model_name="msd-musicnn", weights_sha256="0" * 64, dims={"embedding": 200, "tags": 50})
        cat.set_meta(tags=TAGS)
        parts = [("one", album, 0.0, 1.5, "Part One"), ("two", album, 1.5, 3.0, "Part Two"),
                 ("three", album, 3.0, None, "Part Three"), ("single", single, None, None, "Single")]
        for name, path, start, end, title in parts:
            st = os.stat(path)
            cue = start is not None
            seg = Segment(path, start, end) if cue else None
            rec = {"path": seg.key if cue else path, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                   "content_hash": seg.content_hash(content_hash(path)) if cue else content_hash(path),
                   "duration_s": ((end or 4.5) - start) if cue else 2.0, "title": title,
                   "artist": "A", "album": "Album" if cue else None, "n_patches": 2}
            if cue:
                rec.update(source_path=path, start_s=start, end_s=end if end is not None else 4.5)
            ids[name] = cat.add_track(
                rec, vectors={"embedding": rng.normal(size=200).astype(np.float32),
                              "tags": rng.random(50).astype(np.float32)},
                patches={"starts_s": np.array([0.0, 0.5], np.float32),
                         "embeddings": rng.normal(size=(2, 200)).astype(np.float32),
                         "probs": rng.random((2, 50)).astype(np.float32)})
    return ids


@pytest.fixture()
def cue_index(tmp_path):
    import soundfile as sf

    music = tmp_path / "music"
    music.mkdir()
    y = (0.1 * np.sin(np.linspace(0, 3000, int(4.5 * 8000)))).astype(np.float32)  # 4.5 s: parts end at 3 s
    album, single = str(music / "Album.flac"), str(music / "Single.wav")
    sf.write(album, y, 8000)
    sf.write(single, y[:16000], 8000)
    idx = tmp_path / "idx"
    idx.mkdir()
    return str(idx), album, single, _write_index(str(idx), album, single)


def test_cue_track_json_and_audio(cue_index):
    idx, album, single, ids = cue_index
    with TestClient(create_app(idx)) as c:
        t = c.get(f"/api/tracks/{ids['two']}").json()
        assert t["source_path"] == album and t["start_s"] == 1.5 and t["end_s"] == 3.0
        assert t["audio_url"] == f"/api/tracks/{ids['two']}/audio#t=1.5,3"
        first = c.get(f"/api/tracks/{ids['one']}").json()
        assert first["audio_url"] == f"/api/tracks/{ids['one']}/audio#t=0,1.5"
        whole = c.get(f"/api/tracks/{ids['single']}").json()
        assert whole["audio_url"] == f"/api/tracks/{ids['single']}/audio" and whole["source_path"] is None
        url = t["audio_url"].split("#")[0]  # a browser never sends the fragment
        r = c.get(url)
        data = open(album, "rb").read()
        assert r.status_code == 200 and r.content == data
        assert r.headers["content-type"] == "audio/flac" and "Album.flac" in r.headers["content-disposition"]
        r = c.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert c.get(f"/api/tracks/{ids['single']}/audio").content == open(single, "rb").read()
        assert c.get(f"/api/tracks/{ids['three']}/audio").status_code == 200  # the last part: '#t=3'


def test_cue_audio_refused_when_the_album_file_changed(cue_index):
    idx, album, single, ids = cue_index
    with TestClient(create_app(idx)) as c:
        st = os.stat(album)
        os.utime(album, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # older than indexed: the sheet was newer
        assert c.get(f"/api/tracks/{ids['one']}/audio").status_code == 200
        os.utime(album, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten after indexing
        r = c.get(f"/api/tracks/{ids['one']}/audio")
        assert r.status_code == 403 and "changed since it was indexed" in r.json()["error"]
        os.utime(album, ns=(st.st_atime_ns, st.st_mtime_ns))
        with open(album, "ab") as fh:  # another size
            fh.write(b"x")
        os.utime(album, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert c.get(f"/api/tracks/{ids['two']}/audio").status_code == 403
        os.remove(album)
        assert c.get(f"/api/tracks/{ids['two']}/audio").status_code == 404
        assert c.get(f"/api/tracks/{ids['single']}/audio").status_code == 200


def test_cue_and_whole_files_are_checked_by_one_rule(cue_index):
    """The album file rewritten with its size and mtime (or its link swapped) is refused as a whole
    file is (issue #19: cue audio was checked by size and mtime only); an older mtime is not a change."""
    idx, album, single, ids = cue_index
    with TestClient(create_app(idx)) as c:
        for path, names in ((album, ("one", "two", "three")), (single, ("single",))):
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
            assert all(c.get(f"/api/tracks/{ids[n]}/audio").status_code == 200 for n in names)
            data = bytearray(open(path, "rb").read())
            data[len(data) // 2] ^= 0xFF
            with open(path, "wb") as fh:
                fh.write(bytes(data))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            for n in names:
                r = c.get(f"/api/tracks/{ids[n]}/audio")
                assert r.status_code == 403 and "changed since it was indexed" in r.json()["error"], (n, r.status_code)


def test_cue_track_plays_its_part_in_the_browser(cue_index, tmp_path):
    """The page plays a cue track from its start and stops at its end (Debian's chromium, headless)."""
    import shutil

    from conftest import serving

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no browser: install Debian's chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    idx, album, single, ids = cue_index
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    with serving(idx, tmp_path / "serve.log", timeout_s=60) as (url, _):
        drv = None
        try:
            drv = webdriver.Chrome(service=Service(driver), options=opts)
            drv.get(url)
            WebDriverWait(drv, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
            box = drv.find_element(By.ID, "search")
            box.clear()
            box.send_keys("Part Two")
            drv.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
            WebDriverWait(drv, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-results li")) == 1)
            drv.find_elements(By.CSS_SELECTOR, "#search-results li")[0].click()
            WebDriverWait(drv, 30).until(lambda d: d.find_element(By.ID, "track-title").text == "Part Two")
            src = drv.execute_script("return document.getElementById('audio').src")
            assert src.endswith(f"/api/tracks/{ids['two']}/audio#t=1.5,3")
            # plays from 1.5 s and stops at 3 s (the file goes on to 4.5 s: the stop is the player's)
            got = drv.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const a = document.getElementById('audio');
                a.muted = true;
                let first = null;
                a.addEventListener('timeupdate', () => { if (first === null && a.currentTime > 0) first = a.currentTime; });
                a.addEventListener('pause', () => done([first, a.currentTime, a.ended]));
                a.addEventListener('error', () => done('error ' + (a.error && a.error.code)));
                a.play().catch((e) => done('play failed: ' + e));
            """)
            assert isinstance(got, list), got
            first, stopped, ended = got
            assert 1.5 <= first < 2.5 and 2.9 <= stopped <= 3.05 and not ended, got
            # stopped at the end, the player does not keep seeking; one play() restarts the part
            # (it used to stop again at once: play -> playing -> timeupdate -> pause, issue #19)
            again = drv.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const a = document.getElementById('audio');
                let seeks = 0;
                a.addEventListener('seeking', () => { seeks += 1; });
                setTimeout(() => {
                    const idle = seeks;
                    a.play().catch((e) => done('play failed: ' + e));
                    setTimeout(() => done([idle, a.paused, a.currentTime]), 800);
                }, 500);
            """)
            assert isinstance(again, list), again
            idle, paused, now = again
            assert idle <= 1 and not paused and 1.5 <= now < 2.9, again
        finally:
            if drv is not None:
                drv.quit()
