"""``recommender serve``: every endpoint and every error, through Starlette's test client."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

pytest.importorskip("starlette", reason="recommender serve needs starlette (pip install '.[test]')")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (pip install '.[test]')")

from starlette.testclient import TestClient  # noqa: E402

from recommender.errors import CatalogError  # noqa: E402
from recommender.serve import create_app  # noqa: E402
from recommender.serve import api  # noqa: E402


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A small index of the demo collection: (index dir, music dir, {id: catalog row})."""
    from recommender import Recommender
    from recommender.io.demo import make_demo_collection

    root = tmp_path_factory.mktemp("serve")
    music = root / "music"
    make_demo_collection(music, per_style=2, duration_s=9.0)
    rec = Recommender(root / "idx")
    rep = rec.update([music], progress=False)
    assert rep.added == 8
    rows = {int(i): rec.track(int(i)) for i in rec.tracks().index}
    rec.close()
    return str(root / "idx"), str(music), rows


@pytest.fixture(scope="module")
def client(index):
    with TestClient(create_app(index[0])) as c:
        yield c


def _id_of(rows, name):
    return next(i for i, r in rows.items() if os.path.basename(r["path"]).startswith(name))


def _cli_json(capsys, argv):
    from recommender.cli import main

    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------ info, search, track
def test_info(client, index):
    d = client.get("/api/info").json()
    assert d["tracks"] == 8 and len(d["tags"]) == 50
    assert "tempo_bpm" in d["descriptors"] and "generation" in d
    assert client.get("/api/info?x=1").status_code == 400


def test_search_fields_and_limits(client, index):
    _, _, rows = index
    r = client.get("/api/search", params={"q": "TECHNO"}).json()
    assert r["total"] == 2 and all("techno" in t["path"] for t in r["tracks"])
    assert client.get("/api/search", params={"q": "techno", "field": "title"}).json()["total"] >= 1
    assert client.get("/api/search", params={"q": "techno", "field": "artist"}).json()["total"] == 1  # wav: no tags
    assert client.get("/api/search", params={"q": "nothing-like-this"}).json() == {"total": 0, "tracks": []}
    everything = client.get("/api/search", params={"limit": 3}).json()
    assert everything["total"] == 8 and len(everything["tracks"]) == 3
    tag = everything["tracks"][0]["top_tags"][0]
    by_tag = client.get("/api/search", params={"q": tag, "field": "tag"}).json()
    assert by_tag["total"] >= 1 and all(tag in t["top_tags"] for t in by_tag["tracks"])
    for bad in ({"field": "lyrics"}, {"limit": "0"}, {"limit": "5000"}, {"limit": "ten"}, {"qq": "x"}):
        r = client.get("/api/search", params=bad)
        assert r.status_code == 400 and r.json()["status"] == 400 and r.json()["error"]


def test_track(client, index):
    _, _, rows = index
    tid = _id_of(rows, "rock_01")
    d = client.get(f"/api/tracks/{tid}").json()
    assert d["id"] == tid and d["path"] == rows[tid]["path"]
    assert len(d["tags"]) == 50 and len(d["top"]) == 10
    assert list(d["tags"].values()) == sorted(d["tags"].values(), reverse=True)
    assert d["descriptors"]["tempo_bpm"] > 0 and d["explain"]["tempo_bpm"] == d["descriptors"]["tempo_bpm"]
    assert set(d["explain"]) == {"tempo_bpm", "key", "mode", "loudness_db", "brightness_hz"}
    assert d["audio_url"] == f"/api/tracks/{tid}/audio"
    assert client.get("/api/tracks/999999").status_code == 404
    assert client.get("/api/tracks/abc").status_code == 400
    assert client.get("/api/tracks/-1").status_code == 400


# ------------------------------------------------------------------ similar, radio, path, explain
def test_similar_matches_cli_json(client, index, capsys):
    idx, _, rows = index
    tid = _id_of(rows, "ballad_01")
    got = client.get(f"/api/tracks/{tid}/similar", params={"k": 5, "explain": "true"}).json()
    cli = _cli_json(capsys, ["similar", str(tid), "--index", idx, "-k", "5", "--json", "--explain"])
    assert [r["id"] for r in got] == [r["id"] for r in cli]
    for g, c in zip(got, cli):
        assert set(g) == set(c) | {"similarity"}
        assert g["score"] == pytest.approx(c["score"]) and g["why"] == c["why"]
        assert 0.0 <= g["similarity"] <= 1.0 and g["similarity"] == pytest.approx((1 + g["score"]) / 2, abs=1e-6)
    assert tid not in [r["id"] for r in got]


def test_similar_options(client, index):
    _, _, rows = index
    tid = _id_of(rows, "techno_01")
    album = rows[tid]["album"]
    r = client.get(f"/api/tracks/{tid}/similar", params={"k": 7, "exclude_same_album": 1}).json()
    assert r and all(rows[x["id"]]["album"] != album for x in r)
    for space in api.SPACES:
        r = client.get(f"/api/tracks/{tid}/similar", params={"k": 3, "space": space, "hubness": "mp"})
        assert r.status_code == 200 and len(r.json()) == 3, space
    r = client.get(f"/api/tracks/{tid}/similar", params={"k": 7, "tempo_min": 0, "tempo_max": 1000})
    assert len(r.json()) == 7
    assert client.get(f"/api/tracks/{tid}/similar", params={"tempo_min": 10000, "tempo_max": 20000}).json() == []


@pytest.mark.parametrize("params", [
    {"k": "0"}, {"k": "501"}, {"k": "x"}, {"space": "colour"}, {"hubness": "maybe"}, {"tempo_min": "100"},
    {"tempo_min": "nan", "tempo_max": "1"}, {"explain": "perhaps"}, {"max_per_artist": "0"}, {"kk": "1"},
    {"key": "H minor"},
])
def test_similar_bad_parameters(client, index, params):
    r = client.get("/api/tracks/1/similar", params=params)
    assert r.status_code == 400, (params, r.text)
    assert r.json()["status"] == 400 and "error" in r.json()


def test_similar_unknown_track(client):
    r = client.get("/api/tracks/424242/similar")
    assert r.status_code == 404 and "424242" in r.json()["error"]


def test_radio_and_path_match_cli(client, index, capsys):
    from recommender.cli.playlists import PLAYLIST_JSON_KEYS

    idx, _, rows = index
    a, b = _id_of(rows, "ambient_01"), _id_of(rows, "rock_02")
    assert api.PLAYLIST_KEYS == PLAYLIST_JSON_KEYS
    got = client.get("/api/radio", params={"seeds": f"{a}", "n": 5}).json()
    cli = _cli_json(capsys, ["playlist", str(a), "--index", idx, "-n", "5", "--json"])
    assert [r["id"] for r in got] == [r["id"] for r in cli]
    assert all(set(r) == set(PLAYLIST_JSON_KEYS) | {"similarity"} and 0 <= r["similarity"] <= 1 for r in got)
    both = client.get("/api/radio", params={"seeds": f"{a},{b}", "n": 6, "include_seeds": 1, "drift": 1}).json()
    assert [r["id"] for r in both[:2]] == [a, b] and len({r["id"] for r in both}) == len(both)
    p = client.get("/api/path", params={"from": a, "to": b, "n": 4}).json()
    cli = _cli_json(capsys, ["playlist", str(a), "--to", str(b), "--index", idx, "-n", "4", "--json"])
    assert [r["id"] for r in p] == [r["id"] for r in cli] and p[0]["id"] == a and p[-1]["id"] == b


@pytest.mark.parametrize("url,status", [
    ("/api/radio", 400), ("/api/radio?seeds=", 400), ("/api/radio?seeds=1,x", 400), ("/api/radio?seeds=1&n=0", 400),
    ("/api/radio?seeds=999999", 404), ("/api/radio?seeds=1&space=x", 400), ("/api/radio?seeds=1&hubness=x", 400),
    ("/api/path?from=1", 400), ("/api/path?from=1&to=2&n=1", 400), ("/api/path?from=1&to=999999", 404),
    ("/api/path?from=a&to=2", 400), ("/api/explain?a=1", 400), ("/api/explain?a=1&b=999999", 404),
])
def test_playlist_errors(client, url, status):
    r = client.get(url)
    assert r.status_code == status, r.text
    assert r.json()["status"] == status


# '²' (str.isdigit, not int), Arabic-Indic '١' and fullwidth '１' (int takes both): never a track id
_NOT_ASCII = ("%C2%B2", "%D9%A1", "%EF%BC%91")


@pytest.mark.parametrize("digit", _NOT_ASCII)
@pytest.mark.parametrize("url", [
    "/api/tracks/{d}", "/api/tracks/{d}/audio", "/api/tracks/{d}/similar", "/api/radio?seeds={d}",
    "/api/radio?seeds=1&avoid={d}", "/api/radio?seeds=1,{d}", "/api/playlist.m3u8?ids={d}",
    "/api/playlist.xspf?ids=1,{d}", "/api/path?from={d}&to=1", "/api/explain?a=1&b={d}",
    "/api/tracks/1/similar?k={d}", "/api/tracks/1/similar?tempo_min={d}&tempo_max=200",
])
def test_ids_and_numbers_are_ascii_digits(client, url, digit):
    """Every id and number of the API is ASCII (issue #19: '²' was a 500, '١'/'１' were track 1)."""
    r = client.get(url.format(d=digit))
    assert r.status_code == 400, (url, digit, r.status_code, r.text)
    assert r.json()["status"] == 400 and "error" in r.json()


@pytest.mark.parametrize("url", ["/api/tracks/1234567890123456789", "/api/radio?seeds=1234567890123456789012",
                                 "/api/playlist.m3u8?ids=1,99999999999999999999", "/api/tracks/+1",
                                 "/api/radio?seeds=-1", "/api/tracks/1/similar?k=1_0"])
def test_overlong_or_signed_ids_are_400(client, url):
    r = client.get(url)
    assert r.status_code == 400, (url, r.status_code, r.text)


def test_parse_id():
    from recommender.errors import ParameterError

    assert api.parse_id("0012") == 12
    for bad in ("\u00b2", "\u0661", "\uff11", "", " 1", "1.0", "1e3", "-1", "9" * 19):
        with pytest.raises(ParameterError, match="digits 0-9"):
            api.parse_id(bad, "seeds")


@pytest.mark.parametrize("order", ["tempo_bpm", "-tempo_bpm", "tempo_bpm desc"])
def test_similar_sort_matches_cli(client, index, capsys, order):
    idx, _, rows = index
    tid = _id_of(rows, "ballad_01")
    got = client.get(f"/api/tracks/{tid}/similar", params={"k": 6, "sort": order})
    assert got.status_code == 200, got.text
    got = got.json()
    cli = _cli_json(capsys, ["similar", str(tid), "--index", idx, "-k", "6", "--json", f"--sort={order}"])
    assert [r["id"] for r in got] == [r["id"] for r in cli] and [r["rank"] for r in got] == list(range(1, 7))
    assert [r["tempo_bpm"] for r in got] == pytest.approx([r["tempo_bpm"] for r in cli])
    tempi = [r["tempo_bpm"] for r in got]
    assert tempi == sorted(tempi, reverse=order != "tempo_bpm")
    plain = client.get(f"/api/tracks/{tid}/similar", params={"k": 6}).json()
    assert sorted(r["id"] for r in plain) == sorted(r["id"] for r in got)  # the same k tracks, re-ordered


@pytest.mark.parametrize("order", ["no_such_descriptor", "tempo_bpm sideways", ""])
def test_similar_sort_errors_are_the_clis(client, index, capsys, order):
    from recommender.cli import main

    idx, _, rows = index
    tid = _id_of(rows, "ballad_01")
    r = client.get(f"/api/tracks/{tid}/similar", params={"sort": order})
    if order == "":  # an empty value is no sort, as for every parameter
        assert r.status_code == 200
        return
    assert r.status_code == 400 and r.json()["status"] == 400, r.text
    capsys.readouterr()
    assert main(["similar", str(tid), "--index", idx, f"--sort={order}"]) == 2
    assert r.json()["error"] in capsys.readouterr().err


@pytest.mark.parametrize("params,message", [
    ({"min_duration": 20, "max_duration": 5}, "min_duration=20: must not exceed max_duration=5"),
    ({"min_duration": -1}, "min_duration=-1: must be at least 0"),
    ({"max_duration": -2}, "max_duration=-2: must be at least 0"),
])
def test_duration_errors_name_the_api_parameter(client, params, message):
    for url, base in (("/api/tracks/1/similar", {}), ("/api/radio", {"seeds": 1}), ("/api/path", {"from": 1, "to": 2})):
        r = client.get(url, params={**base, **params})
        assert r.status_code == 400 and message in r.json()["error"], (url, r.text)
        assert "duration_s" not in r.json()["error"]


def test_explain(client, index):
    _, _, rows = index
    a, b = _id_of(rows, "ambient_01"), _id_of(rows, "ambient_02")
    d = client.get("/api/explain", params={"a": a, "b": b}).json()
    assert d["a_id"] == a and d["b_id"] == b and d["sentence"] and 0 <= d["similarity"] <= 1


# ------------------------------------------------------------------ map
def test_map(client, index):
    _, _, rows = index
    d = client.get("/api/map").json()
    assert d["kind"] == "label" and d["total"] == 8 and {p["id"] for p in d["points"]} == set(rows)
    assert all(isinstance(p["x"], float) and isinstance(p["label"], str) for p in d["points"])
    d = client.get("/api/map", params={"color_by": "album", "method": "tsne", "space": "tags"}).json()
    assert {p["label"] for p in d["points"]} == {r["album"] for r in rows.values()}
    d = client.get("/api/map", params={"color_by": "tag:rock"}).json()
    assert d["kind"] == "value" and all(0 <= p["value"] <= 1 for p in d["points"])
    d = client.get("/api/map", params={"color_by": "descriptor:tempo_bpm"}).json()
    assert all(p["value"] > 0 for p in d["points"])
    for bad in ({"color_by": "mood"}, {"color_by": "tag:nope"}, {"color_by": "descriptor:key"},
                {"method": "umap"}, {"space": "similarity"}):
        assert client.get("/api/map", params=bad).status_code == 400, bad


# ------------------------------------------------------------------ audio streaming
def test_audio_whole_and_ranges(client, index):
    _, _, rows = index
    tid = _id_of(rows, "rock_01")
    data = open(rows[tid]["path"], "rb").read()
    r = client.get(f"/api/tracks/{tid}/audio")
    assert r.status_code == 200 and r.content == data and r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"].startswith("audio/flac")
    r = client.get(f"/api/tracks/{tid}/audio", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    r = client.get(f"/api/tracks/{tid}/audio", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = client.get(f"/api/tracks/{tid}/audio", headers={"Range": f"bytes={len(data) + 10}-"})
    assert r.status_code == 416
    assert client.head(f"/api/tracks/{tid}/audio").headers["content-length"] == str(len(data))
    assert client.get("/api/tracks/999999/audio").status_code == 404


@pytest.mark.parametrize("url", [
    "/api/tracks/../../../../etc/passwd/audio",
    "/api/tracks/%2e%2e%2f%2e%2e%2fetc%2fpasswd/audio",
    "/api/tracks/1%2f..%2f..%2f..%2fetc%2fpasswd/audio",
    "/api/tracks/%2fetc%2fpasswd/audio",
    "/api/tracks//etc/passwd/audio",
    "/api/tracks/1/audio?path=/etc/passwd",
    "/api/tracks/1/audio/../../../../etc/passwd",
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/app.py",
    "/static/..%2f..%2fapp.py",
    "/api/tracks/1%00/audio",
])
def test_audio_path_tricks_are_refused(client, url):
    r = client.get(url)
    assert r.status_code in (400, 404), (url, r.status_code)
    assert b"root:" not in r.content and b"import" not in r.content


@pytest.fixture
def own_index(index, tmp_path):
    """A copy of the music and its own index (tests that change files)."""
    from recommender import Recommender

    music = tmp_path / "music"
    shutil.copytree(index[1], music)
    rec = Recommender(tmp_path / "idx")
    rec.update([music], progress=False)
    rows = {int(i): rec.track(int(i)) for i in rec.tracks().index}
    rec.close()
    return str(tmp_path / "idx"), str(music), rows


def test_audio_follows_links_and_refuses_changed_files(own_index, tmp_path):
    idx, _, rows = own_index
    a, b, c = sorted(rows)[:3]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # a link swapped after indexing to another file (another size and mtime)
    other = outside / "other.flac"
    with open(other, "wb") as fh:
        fh.write(open(rows[a]["path"], "rb").read() + b"\0" * 10)
    os.remove(rows[a]["path"])
    os.symlink(other, rows[a]["path"])
    # a file whose content changed since it was indexed
    with open(rows[b]["path"], "ab") as fh:
        fh.write(b"\0" * 16)
    os.remove(rows[c]["path"])
    with TestClient(create_app(idx)) as cl:
        r = cl.get(f"/api/tracks/{a}/audio")
        assert r.status_code == 403 and "another file than the one indexed" in r.json()["error"]
        r = cl.get(f"/api/tracks/{b}/audio")
        assert r.status_code == 403 and "changed since it was indexed" in r.json()["error"]
        r = cl.get(f"/api/tracks/{c}/audio")
        assert r.status_code == 404 and "gone" in r.json()["error"]
        d = sorted(rows)[3]
        assert cl.get(f"/api/tracks/{d}/audio").status_code == 200
        r = cl.get("/api/tracks/999999/audio")
        assert r.status_code == 404 and idx not in r.text and "the index" in r.json()["error"]


def _same_size_and_mtime(path, data, like):
    """Write ``data`` to ``path`` with the size and modification time of the file ``like``."""
    st = os.stat(like)
    assert len(data) == st.st_size
    with open(path, "wb") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_audio_refuses_a_swap_with_the_same_size_and_mtime(own_index, tmp_path):
    """A link swapped to another file, or a file rewritten, with the size and mtime recorded: 403 (issue #19)."""
    idx, music, rows = own_index
    a, b, c = sorted(rows)[:3]
    real = tmp_path / "real"
    real.mkdir()
    # a collection of links, indexed; then one link is pointed at another file of the same size and mtime
    links = tmp_path / "links"
    links.mkdir()
    for t in (a, b, c):
        os.rename(rows[t]["path"], real / os.path.basename(rows[t]["path"]))
        os.symlink(real / os.path.basename(rows[t]["path"]), rows[t]["path"])
    from recommender import Recommender

    with Recommender(idx) as rec:
        rec.update([music], progress=False)
    with TestClient(create_app(idx)) as cl:
        assert all(cl.get(f"/api/tracks/{t}/audio").status_code == 200 for t in (a, b, c))
        target = os.path.realpath(rows[a]["path"])
        data = bytearray(open(target, "rb").read())
        data[len(data) // 2] ^= 0xFF  # one byte in the middle: another file, same size
        other = tmp_path / "elsewhere.flac"
        _same_size_and_mtime(other, bytes(data), target)
        os.remove(rows[a]["path"])
        os.symlink(other, rows[a]["path"])
        r = cl.get(f"/api/tracks/{a}/audio")
        assert r.status_code == 403 and "another file than the one indexed" in r.json()["error"], r.status_code
        # the same file rewritten in place, size and mtime put back
        target = os.path.realpath(rows[b]["path"])
        data = bytearray(open(target, "rb").read())
        data[0] ^= 0xFF
        _same_size_and_mtime(target, bytes(data), target)
        r = cl.get(f"/api/tracks/{b}/audio")
        assert r.status_code == 403 and "another file than the one indexed" in r.json()["error"], r.status_code
        # an untouched link still plays, by ranges too; an older mtime is not a change
        st = os.stat(rows[c]["path"])
        os.utime(rows[c]["path"], ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
        assert cl.get(f"/api/tracks/{c}/audio", headers={"Range": "bytes=0-9"}).status_code == 206


def test_serving_never_writes_into_the_index(own_index):
    """FAISS files older than the catalog are rebuilt in memory: the index is unchanged byte for byte (#19)."""
    import hashlib

    idx, _, rows = own_index

    def files():  # SQLite's shared-memory index (-shm) is written by every WAL reader; not data
        return {f: hashlib.sha256(open(os.path.join(idx, f), "rb").read()).hexdigest()
                for f in sorted(os.listdir(idx)) if not f.endswith("-shm")}

    for space in api.SPACES:  # every FAISS file a generation behind its catalog
        side = os.path.join(idx, f"{space}.faiss.json")
        meta = json.load(open(side))
        meta["generation"] -= 1
        with open(side, "w") as fh:
            json.dump(meta, fh)
    os.remove(os.path.join(idx, "tags.faiss"))  # and one missing
    before = files()
    tid = min(rows)
    with TestClient(create_app(idx)) as cl:
        for space in api.SPACES:
            r = cl.get(f"/api/tracks/{tid}/similar", params={"k": 3, "space": space})
            assert r.status_code == 200 and len(r.json()) == 3, (space, r.text)
        assert cl.get("/api/radio", params={"seeds": tid, "n": 3}).status_code == 200
    assert files() == before


def test_a_collection_of_links_plays(index, tmp_path):
    """The indexer follows symlinked files and folders: each such track streams, by id."""
    from recommender import Recommender

    _, music, _ = index
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(music) for f in fs)[:3]
    links = tmp_path / "links"
    (links / "sub").mkdir(parents=True)
    for f in files[:2]:
        os.symlink(f, links / os.path.basename(f))
    os.symlink(os.path.dirname(files[2]), links / "sub" / "folder")  # a linked folder
    rec = Recommender(tmp_path / "idx")
    rec.update([str(links)], progress=False)
    rows = {int(i): rec.track(int(i)) for i in rec.tracks().index}
    rec.close()
    assert len(rows) >= 3
    with TestClient(create_app(tmp_path / "idx")) as cl:
        for tid, row in rows.items():
            assert str(links) in row["path"]
            r = cl.get(f"/api/tracks/{tid}/audio")
            assert r.status_code == 200, r.text
            assert r.content == open(os.path.realpath(row["path"]), "rb").read()
            r = cl.get(f"/api/tracks/{tid}/audio", headers={"Range": "bytes=0-9"})
            assert r.status_code == 206 and len(r.content) == 10


@pytest.mark.parametrize("bad", ["bytes=5-2", "items=0-5", "bytes=abc", "bytes=", "nonsense"])
def test_audio_ignores_a_range_it_cannot_parse(client, index, bad):
    _, _, rows = index
    tid = _id_of(rows, "rock_01")
    r = client.get(f"/api/tracks/{tid}/audio", headers={"Range": bad})
    assert r.status_code == 200 and r.content == open(rows[tid]["path"], "rb").read()


def test_a_non_utf8_file_name_is_served(tmp_path):
    """A file name that is not UTF-8 (byte 0x96): JSON escapes it as the CLI does; its audio plays."""
    import soundfile as sf

    from recommender import Recommender
    from recommender.io.demo import synth_track

    music = os.fsencode(str(tmp_path / "music"))
    os.mkdir(music)
    names = [b"01 Intro.wav", b"02 Band \x96 Song.wav", b"03 Outro.wav"]
    for i, n in enumerate(names):
        sf.write(music + b"/" + n, synth_track("rock", seed=i, duration_s=4.0, sr=16000), 16000)
    rec = Recommender(tmp_path / "idx")
    assert rec.update([os.fsdecode(music)], progress=False).added == 3
    odd_path = os.fsdecode(music + b"/" + names[1])
    odd = next(int(i) for i, p in rec.tracks()["path"].items() if p == odd_path)
    other = next(int(i) for i in rec.tracks().index if int(i) != odd)
    rec.close()

    def strict(r):
        assert r.status_code == 200, (r.request.url, r.status_code, r.text)
        text = r.content.decode("utf-8")  # strict: valid UTF-8
        assert "\\udc96" in text  # the CLI's escape of the byte
        return json.loads(text)

    with TestClient(create_app(tmp_path / "idx")) as cl:
        found = strict(cl.get("/api/search", params={"q": ""}))
        assert odd_path in {t["path"] for t in found["tracks"]}
        d = strict(cl.get(f"/api/tracks/{odd}"))
        assert d["path"] == odd_path and os.fsencode(d["path"]) == music + b"/" + names[1]
        strict(cl.get(f"/api/tracks/{other}/similar", params={"k": 2}))
        strict(cl.get("/api/radio", params={"seeds": other, "n": 3, "include_seeds": 1}))
        strict(cl.get("/api/path", params={"from": other, "to": odd, "n": 2}))
        r = cl.get("/api/playlist.m3u8", params={"ids": f"{other},{odd}"})
        assert r.status_code == 200 and len([ln for ln in r.content.splitlines() if not ln.startswith(b"#")]) == 2
        assert cl.get("/api/playlist.xspf", params={"ids": f"{other},{odd}"}).status_code == 200
        r = cl.get(f"/api/tracks/{odd}/audio")
        assert r.status_code == 200 and r.content == open(music + b"/" + names[1], "rb").read()
        cd = r.headers["content-disposition"]
        assert cd.startswith("inline;") and "filename*=UTF-8''02%20Band%20%EF%BF%BD%20Song.wav" in cd
        assert cl.get(f"/api/tracks/{odd}/audio", headers={"Range": "bytes=0-3"}).content == b"RIFF"


def test_json_bytes_writes_what_json_text_writes():
    """(#19) orjson writes the API's JSON; the values are json_text's (NaN/inf as null, NumPy
    and pandas values cleaned, dataclasses and datetimes as ``str``), and what orjson refuses
    (a lone surrogate, an integer beyond 64 bits) is written by json_text."""
    import dataclasses
    import datetime

    import numpy as np
    import pandas as pd

    from recommender.serve.responses import json_bytes, json_text

    @dataclasses.dataclass
    class D:
        x: int = 1

    odd = {"nan": float("nan"), "inf": np.float32("inf"), "f32": np.float32(0.1), "i": np.int64(3),
           "b": np.bool_(True), "na": pd.NA, "nat": pd.NaT, "arr": np.arange(3), "t": (1, 2.5),
           "when": datetime.datetime(2026, 1, 2, 3, 4, 5), "ts": pd.Timestamp("2026-01-02"), "dc": D(),
           7: "int key", "nested": [{"v": np.float64("nan")}], "s": "é ✓"}
    assert json.loads(json_bytes(odd)) == json.loads(json_text(odd))
    assert json.loads(json_bytes(odd))["nan"] is None and json.loads(json_bytes(odd))["when"] == "2026-01-02 03:04:05"
    for refused in ({"path": "/m/Band \udc96 Song.wav"}, {"big": 2 ** 70}):
        assert json_bytes(refused) == json_text(refused).encode("utf-8")
    assert b"\\udc96" in json_bytes({"path": "\udc96"})


# ------------------------------------------------------------------ classify uploads
def _uploads():
    return {d for d in os.listdir(tempfile.gettempdir()) if d.startswith("recommender-upload-")}


def test_classify_upload(client, index):
    _, _, rows = index
    tid = _id_of(rows, "techno_02")
    before = _uploads()
    data = open(rows[tid]["path"], "rb").read()
    ext = os.path.splitext(rows[tid]["path"])[1]
    r = client.post("/api/classify", params={"filename": "mine" + ext, "top": 3, "k": 3}, content=data)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["path"] == "mine" + ext and len(d["top"]) == 3 and len(d["tags"]) == 50
    assert len(d["similar"]) == 3 and all(0 <= s["similarity"] <= 1 for s in d["similar"])
    # the same recording: its indexed copy is the closest track (or excluded as the same content)
    assert d["similar"][0]["id"] == tid or d["similar"][0]["score"] > 0.9
    assert _uploads() <= before


def test_classify_errors(index, client):
    before = _uploads()
    r = client.post("/api/classify", params={"filename": "x.flac"}, content=b"this is not audio\n" * 100)
    assert r.status_code == 400 and "could not be decoded" in r.json()["error"]
    assert "recommender-upload-" not in r.json()["error"]
    assert client.post("/api/classify", params={"filename": "x.flac"}, content=b"").status_code == 400
    assert client.post("/api/classify", params={"filename": "x.exe"}, content=b"MZ").status_code == 400
    assert client.post("/api/classify", content=b"RIFF").status_code == 400
    assert client.post("/api/classify", params={"filename": "x.wav", "top": 0}, content=b"RIFF").status_code == 400
    assert client.get("/api/classify").status_code == 405
    with TestClient(create_app(index[0], max_upload_mb=0.001)) as small:
        r = small.post("/api/classify", params={"filename": "x.wav"}, content=b"\0" * 5000)
        assert r.status_code == 413 and r.json()["status"] == 413

        def chunks():  # no Content-Length: the limit is enforced while reading
            for _ in range(10):
                yield b"\0" * 1000

        r = small.post("/api/classify", params={"filename": "x.wav"}, content=chunks())
        assert r.status_code == 413
    assert _uploads() <= before


def test_classify_multipart_upload(index, client, monkeypatch):
    """``curl -F file=@song.wav``: read when python-multipart is there, else a 415 that says what to send."""
    _, _, rows = index
    tid = _id_of(rows, "techno_02")
    data = open(rows[tid]["path"], "rb").read()
    name = "mine" + os.path.splitext(rows[tid]["path"])[1]
    before = _uploads()
    if api._multipart_available():
        r = client.post("/api/classify", params={"top": 2, "k": 2}, files={"file": (name, data)})
        assert r.status_code == 200, r.text
        assert r.json()["path"] == name and len(r.json()["similar"]) == 2
        r = client.post("/api/classify", files={"file": ("x.flac", b"this is not audio\n" * 100)})
        assert r.status_code == 400 and "x.flac: the uploaded file could not be decoded" in r.json()["error"]
        r = client.post("/api/classify", files={"file": ("notes.txt", b"hello")})
        assert r.status_code == 400 and "audio extension" in r.json()["error"]
        r = client.post("/api/classify", data={"a": "b"}, files={"file": ("x.wav", b"")})
        assert r.status_code == 400 and "empty" in r.json()["error"]
        r = client.post("/api/classify", content=b"--x--", headers={"Content-Type": "multipart/form-data"})
        assert r.status_code == 400
        with TestClient(create_app(index[0], max_upload_mb=0.001)) as small:
            r = small.post("/api/classify", files={"file": ("x.wav", b"\0" * 5000)})
            assert r.status_code == 413
    monkeypatch.setattr(api, "_multipart_available", lambda: False)
    r = client.post("/api/classify", files={"file": (name, data)})
    assert r.status_code == 415 and "?filename=" in r.json()["error"]
    r = client.post("/api/classify", params={"filename": name, "k": 0}, content=b"")  # the raw body still works
    assert r.status_code == 400 and "empty" in r.json()["error"]
    assert _uploads() <= before


# ------------------------------------------------------------------ playlist files
def test_playlist_files(client, index):
    _, _, rows = index
    ids = sorted(rows)[:3]
    r = client.get("/api/playlist.m3u8", params={"ids": ",".join(map(str, ids)), "title": "mine"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    lines = r.text.splitlines()
    assert lines[0] == "#EXTM3U" and [ln for ln in lines if not ln.startswith("#")] == [rows[i]["path"] for i in ids]
    r = client.get("/api/playlist.xspf", params={"ids": ",".join(map(str, ids))})
    import xml.etree.ElementTree as ET

    ns = {"x": "http://xspf.org/ns/0/"}
    locs = [e.text for e in ET.fromstring(r.content).findall(".//x:location", ns)]
    assert locs == ["file://" + rows[i]["path"] for i in ids]
    assert client.get("/api/playlist.m3u8", params={"ids": "999999"}).status_code == 404
    assert client.get("/api/playlist.xspf", params={"ids": "1,x"}).status_code == 400
    assert client.get("/api/playlist.xspf").status_code == 400


# ------------------------------------------------------------------ docs, page, security
def test_docs_and_page(client):
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {p for p, _, _ in api.ENDPOINTS}
    assert "parameters" in schema["paths"]["/api/tracks/{track_id}/similar"]["get"]
    assert client.get("/docs").status_code == 200 and "docs.js" in client.get("/docs").text
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: every asset is local
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/api/search" in js.text
    assert client.get("/nope").status_code == 404 and client.get("/nope").json()["status"] == 404


def test_security_headers_and_no_cors(client):
    r = client.get("/api/info", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    pre = client.options("/api/info", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_only_when_asked(index):
    with TestClient(create_app(index[0], cors_origins=["http://player.example"])) as c:
        r = c.get("/api/info", headers={"Origin": "http://player.example"})
        assert r.headers["access-control-allow-origin"] == "http://player.example"
        r = c.get("/api/info", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_token_checked_on_every_request(index):
    app = create_app(index[0], token="s3cret-token")
    with TestClient(app) as c:
        for url in ("/", "/api/info", "/api/tracks/1/audio", "/openapi.json", "/static/app.js", "/nope"):
            r = c.get(url)
            assert r.status_code == 401 and r.json()["status"] == 401, url
            assert c.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get(url, params={"token": "s3cret-tokeN"}).status_code == 401
        assert c.get("/api/info", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        r = c.get("/", params={"token": "s3cret-token"})  # the page: sets an HttpOnly cookie
        assert r.status_code == 200 and "HttpOnly" in r.headers["set-cookie"]
        assert c.get("/api/tracks/1/audio").status_code == 200  # the cookie
        c.cookies.clear()
        assert c.get("/api/tracks/1/audio").status_code == 401
    with pytest.raises(Exception, match="token"):
        create_app(index[0], token="  ")


def test_host_header_checked_on_loopback(index):
    from recommender.serve.app import LOOPBACK_HOSTS

    with TestClient(create_app(index[0], allowed_hosts=LOOPBACK_HOSTS), base_url="http://127.0.0.1:8765") as c:
        assert c.get("/api/info").status_code == 200
        assert c.get("/api/info", headers={"Host": "localhost:8765"}).status_code == 200
        assert c.get("/api/info", headers={"Host": "attacker.example"}).status_code == 400


def test_missing_index(tmp_path):
    with pytest.raises(CatalogError):
        create_app(tmp_path / "nothing")


def test_cli_refuses_public_bind_without_token(index, capsys, monkeypatch):
    from recommender.cli import main
    from recommender.cli.serve import is_loopback

    monkeypatch.delenv("RECOMMENDER_TOKEN", raising=False)
    assert main(["serve", "--index", index[0], "--host", "0.0.0.0"]) == 2
    assert "token" in capsys.readouterr().err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


# ------------------------------------------------------------------ reload while another process indexes
def test_keeps_answering_while_another_process_indexes(own_index, tmp_path):
    from recommender.io.demo import make_demo_collection

    idx, music, rows = own_index
    more = tmp_path / "more"
    make_demo_collection(more, per_style=1, duration_s=6.0, seed=7)
    for p in more.rglob("*.*"):
        p.rename(p.with_name("new_" + p.name))
    with TestClient(create_app(idx)) as c:
        reloads = c.app.state.index.reloads
        proc = subprocess.Popen([sys.executable, "-m", "recommender", "index", str(more), "--index", idx,
                                 "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        answered = 0
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            r = c.get(f"/api/tracks/{min(rows)}/similar", params={"k": 3})
            assert r.status_code == 200, r.text
            assert c.get("/api/search", params={"q": "band"}).status_code == 200
            answered += 1
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        assert answered > 0
        assert c.get("/api/info").json()["tracks"] == 12
        found = c.get("/api/search", params={"q": "new_", "field": "path"}).json()
        assert found["total"] == 4
        new_id = found["tracks"][0]["id"]
        assert c.get(f"/api/tracks/{new_id}/similar", params={"k": 3}).status_code == 200
        assert c.get(f"/api/tracks/{new_id}/audio").status_code == 200
        assert c.app.state.index.reloads > reloads
