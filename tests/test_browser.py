"""The web page of ``recommender serve`` in a real browser: Debian's chromium + chromedriver, headless.

A real ``recommender serve`` subprocess answers on loopback from a small index
of the demo collection; the test searches, clicks a track, sees its similar
tracks, the map, plays the audio, makes a radio and a path, and saves a
screenshot (``$RECOMMENDER_ARTEFACTS`` or the test's tmp folder).  CI installs
the browser (``apt-get install -y chromium chromium-driver`` in ``.ci/run``);
without one the test skips and says so.
"""

import os
import shutil
import urllib.request

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("no browser: install Debian's chromium and chromium-driver "
                "(apt-get install -y chromium chromium-driver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from conftest import serving  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from recommender import Recommender
    from recommender.io.demo import make_demo_collection

    root = tmp_path_factory.mktemp("browser")
    make_demo_collection(root / "music", per_style=2, duration_s=9.0)
    Recommender(root / "idx").update([root / "music"], progress=False)
    with serving(root / "idx", root / "serve.log", timeout_s=60) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1000", "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except Exception as e:  # a browser that is installed but cannot start is a failure, not a skip
        pytest.fail(f"chromium is installed but did not start: {e}")
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _wait(drv, cond, what, timeout=30):
    return WebDriverWait(drv, timeout).until(lambda d: cond(d), message=f"timed out waiting for {what}")


def test_search_click_similar_map_play_radio_path(server, browser, tmp_path):
    drv = browser
    drv.get(server)
    _wait(drv, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "the page")

    # the map: one point per track
    points = drv.find_elements(By.CSS_SELECTOR, "#map circle.point")
    assert len(points) == 8
    assert len({p.get_attribute("fill") for p in points}) >= 2  # coloured by label
    assert drv.find_elements(By.CSS_SELECTOR, "#legend .key")

    # search
    box = drv.find_element(By.ID, "search")
    box.clear()
    box.send_keys("techno")
    drv.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    _wait(drv, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-results li")) == 2, "2 techno results")
    first = drv.find_elements(By.CSS_SELECTOR, "#search-results li")[0]
    title = first.find_element(By.CSS_SELECTOR, ".title").text
    assert "techno" in title
    tid = first.get_attribute("data-id")

    # click a track: panel, tags, similar tracks with their explanation
    first.click()
    _wait(drv, lambda d: d.find_element(By.ID, "track-title").text == title, "the track panel")
    assert len(drv.find_elements(By.CSS_SELECTOR, "#track-tags .tag")) == 10
    assert "BPM" in drv.find_element(By.ID, "track-facts").text
    _wait(drv, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#playlist li")) == 7, "7 similar tracks")
    assert drv.find_element(By.ID, "list-title").text == f"Similar to {title}"
    rows = drv.find_elements(By.CSS_SELECTOR, "#playlist li")
    assert all(r.find_element(By.CSS_SELECTOR, ".why").text for r in rows)
    assert tid not in [r.get_attribute("data-id") for r in rows]
    # the other techno track is the closest
    assert "techno" in rows[0].find_element(By.CSS_SELECTOR, ".title").text
    assert drv.find_element(By.CSS_SELECTOR, "#map circle.selected").get_attribute("data-id") == tid
    assert len(drv.find_elements(By.CSS_SELECTOR, "#map circle.in-list")) == 7
    m3u = drv.find_element(By.ID, "dl-m3u8").get_attribute("href")
    assert "/api/playlist.m3u8?ids=" in m3u and urllib.request.urlopen(m3u).read().startswith(b"#EXTM3U")

    # play it: the browser fetches the audio by ranges and plays
    played = drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const a = document.getElementById('audio');
        a.muted = true;
        a.addEventListener('timeupdate', () => { if (a.currentTime > 0.3) done('playing'); });
        a.addEventListener('error', () => done('error ' + (a.error && a.error.code)));
        a.play().catch((e) => done('play failed: ' + e));
    """)
    assert played == "playing"
    assert drv.execute_script("return document.getElementById('audio').src").endswith(f"/api/tracks/{tid}/audio")

    drv.save_screenshot(str(_artefact(tmp_path, "serve-page.png")))

    # radio from here
    drv.find_element(By.ID, "radio-btn").click()
    _wait(drv, lambda d: d.find_element(By.ID, "list-title").text.startswith("Radio from"), "the radio")
    radio = [r.get_attribute("data-id") for r in drv.find_elements(By.CSS_SELECTOR, "#playlist li")]
    assert radio[0] == tid and len(radio) == len(set(radio)) == 8

    # path to another track, picked on the map
    drv.find_element(By.ID, "path-btn").click()
    assert drv.find_element(By.ID, "path-hint").is_displayed()
    target = next(p for p in drv.find_elements(By.CSS_SELECTOR, "#map circle.point")
                  if p.get_attribute("data-id") != tid)
    to = target.get_attribute("data-id")
    target.click()
    _wait(drv, lambda d: d.find_element(By.ID, "list-title").text.startswith("Path from"), "the path")
    path = [r.get_attribute("data-id") for r in drv.find_elements(By.CSS_SELECTOR, "#playlist li")]
    assert path[0] == tid and path[-1] == to

    # colour the map by a tag (a numeric scale)
    from selenium.webdriver.support.ui import Select

    Select(drv.find_element(By.ID, "color-by")).select_by_value("tag:electronic")
    _wait(drv, lambda d: "high" in d.find_element(By.ID, "legend").text, "the tag colour scale")
    assert len(drv.find_elements(By.CSS_SELECTOR, "#map circle.point")) == 8
    drv.save_screenshot(str(_artefact(tmp_path, "serve-page-path.png")))

    # nothing the page did was blocked (CSP) or failed
    severe = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_docs_page(server, browser):
    browser.get(server + "docs")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.endpoint")) >= 12, "the API docs")
    assert "/api/tracks/{track_id}/similar" in browser.find_element(By.ID, "docs").text


def _artefact(tmp_path, name):
    folder = os.environ.get("RECOMMENDER_ARTEFACTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    print(f"screenshot: {path}")
    return path
