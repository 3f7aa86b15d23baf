"""M3U8 and XSPF playlist files: odd names round-trip, the XSPF 1 structure, parts of files, the CLI."""

import json
import os
import pathlib
import shutil
import unicodedata
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from recommender.errors import ParameterError, PlaylistFileError
from recommender.io.playlist_files import (
    VLC_APPLICATION,
    VLC_NS,
    XSPF_NS,
    m3u8_bytes,
    path_to_uri,
    read_m3u8,
    read_xspf,
    uri_to_path,
    write_m3u8,
    write_xspf,
    xspf_bytes,
)

X = f"{{{XSPF_NS}}}"
#: Children a <track> may have in XSPF 1 (xspf.org/spec, section 4.1.1.2.14.1.1).
TRACK_CHILDREN = {X + t for t in ("location", "identifier", "title", "creator", "annotation", "info", "image",
                                  "album", "trackNum", "duration", "link", "meta", "extension")}
#: File names (bytes) that break naive playlist writers, and what their name looks like in a URI.
ODD_NAMES = {
    b"two  spaces.flac": "two%20%20spaces.flac",
    b"#1 100% hit.flac": "%231%20100%25%20hit.flac",
    "Café NFC.flac".encode(): "Caf%C3%A9%20NFC.flac",
    unicodedata.normalize("NFD", "Café NFD.flac").encode(): "Cafe%CC%81%20NFD.flac",
    b"02 Band \x96 Song.flac": "02%20Band%20%96%20Song.flac",  # Latin-1 / CP1252 name: not UTF-8
    b"a?b;c=d&e+f'[x].flac": "a%3Fb%3Bc%3Dd%26e%2Bf%27%5Bx%5D.flac",
}


@pytest.fixture
def odd_files(tmp_path):
    """The ODD_NAMES as real files under tmp/music; {raw bytes path: row}."""
    music = os.fsencode(tmp_path / "music sub")
    os.makedirs(music)
    rows = {}
    for i, name in enumerate(ODD_NAMES):
        p = os.path.join(music, name)
        with open(p, "wb") as f:
            f.write(b"track %d" % i)
        rows[p] = {"path": os.fsdecode(p), "artist": f"Artist {i}", "title": f"Title {i}", "album": "Album",
                   "duration_s": 60.0 + i + 0.4}
    return rows


def _opens(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------------------------------ URIs
def test_file_uris_percent_encode_the_raw_bytes_and_come_back(odd_files):
    for raw, row in odd_files.items():
        uri = path_to_uri(row["path"])
        assert uri.isascii() and uri.startswith("file:///") and " " not in uri
        assert uri.endswith("/music%20sub/" + ODD_NAMES[os.path.basename(raw)])
        back = uri_to_path(uri)
        assert os.fsencode(back) == raw and _opens(back) == _opens(row["path"])
    assert uri_to_path("file://localhost/m/a%20b.flac") == "/m/a b.flac"
    assert uri_to_path("c%23d.flac", base="file:///m/list.xspf") == "/m/c#d.flac"
    for bad in ("http://example.com/a.mp3", "file://server/share/a.mp3"):
        with pytest.raises(ParameterError, match="not a file:// URI"):
            uri_to_path(bad)


# ------------------------------------------------------------------------------------------ M3U8
def _m3u_line(raw: bytes) -> bytes:
    """What an M3U8 holds for a path: its bytes if they are UTF-8, else its file:// URI."""
    try:
        raw.decode("utf-8")
        return raw
    except UnicodeDecodeError:
        return path_to_uri(os.fsdecode(raw)).encode("ascii")


def test_m3u8_paths_are_exact_bytes_or_uris_and_round_trip(odd_files, tmp_path):
    out = tmp_path / "list.m3u8"
    write_m3u8(out, odd_files.values(), title="odd names")
    out.read_bytes().decode("utf-8")  # valid UTF-8, whatever the names
    lines = out.read_bytes().split(b"\n")
    assert lines[:2] == [b"#EXTM3U", b"#PLAYLIST:odd names"] and lines[-1] == b""
    assert [ln for ln in lines[2:] if ln and not ln.startswith(b"#")] == [_m3u_line(p) for p in odd_files]
    assert any(_m3u_line(p) != p for p in odd_files)  # the non-UTF-8 name is there, as a URI
    got = read_m3u8(out)
    assert [os.fsencode(e["path"]) for e in got] == list(odd_files)
    for e, row in zip(got, odd_files.values()):
        assert _opens(e["path"]) == _opens(row["path"])
        assert (e["artist"], e["title"], e["duration_s"]) == (row["artist"], row["title"], round(row["duration_s"]))


def test_m3u8_relative_paths_resolve_from_the_playlist_folder(odd_files, tmp_path):
    lists = tmp_path / "playlists"
    lists.mkdir()
    out = lists / "rel.m3u8"
    write_m3u8(out, odd_files.values(), relative_to=lists)
    entries = [ln for ln in out.read_bytes().split(b"\n") if ln and not ln.startswith(b"#")]
    assert all(ln.startswith(b"../music sub/") for ln, p in zip(entries, odd_files) if _m3u_line(p) == p)
    assert all(ln == _m3u_line(p) for ln, p in zip(entries, odd_files) if _m3u_line(p) != p)  # absolute URI
    entries = [os.fsencode(uri_to_path(ln.decode())) if ln.startswith(b"file:") else ln for ln in entries]
    assert [os.path.basename(ln) for ln in entries] == [os.path.basename(p) for p in odd_files]
    got = read_m3u8(out)
    assert [os.fsencode(e["path"]) for e in got] == list(odd_files)
    cwd = os.getcwd()
    try:  # what a player does: open each line from the playlist's folder
        os.chdir(lists)
        for ln, raw in zip(entries, odd_files):
            assert _opens(ln) == _opens(raw)
    finally:
        os.chdir(cwd)


def test_m3u8_extinf_duration_and_artist_title():
    rows = [
        {"path": "/m/a.flac", "artist": "Nina", "title": "Sinner Man", "duration_s": 612.6},
        {"path": "/m/b.flac", "title": "Only a title"},
        {"path": "/m/c.flac", "artist": "Two\nlines", "title": "x\r\ny", "duration_s": float("nan")},
        {"path": "/m/d.flac"},
    ]
    text = m3u8_bytes(rows).decode()
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXTINF:613,Nina - Sinner Man", "/m/a.flac",
        "#EXTINF:-1,Only a title", "/m/b.flac",
        "#EXTINF:-1,Two lines - x y", "/m/c.flac",
        "#EXTINF:-1,", "/m/d.flac",
    ]
    # a path with a line break cannot be an M3U line as it is: a file:// URI with %0A / %0D instead
    text = m3u8_bytes([{"path": "/m/sub dir/x\ny\rz.flac"}, rows[0]]).decode()
    assert text.count("#EXTINF") == 2
    assert text.splitlines()[2] == "file:///m/sub%20dir/x%0Ay%0Dz.flac"
    with pytest.raises(ParameterError, match="has no 'path'"):
        m3u8_bytes([{"title": "no path"}])


# ------------------------------------------------------------------------------------------ XSPF
def _check_xspf(data: bytes) -> list:
    """The XSPF 1 structure the spec requires; the <track> elements."""
    root = ET.fromstring(data)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert root.tag == X + "playlist" and root.get("version") == "1"
    lists = root.findall(X + "trackList")
    assert len(lists) == 1
    assert all(ch.tag.startswith(X) for ch in root)  # nothing outside the XSPF namespace at the top
    tracks = list(lists[0])
    for tr in tracks:
        assert tr.tag == X + "track"
        assert {ch.tag for ch in tr} <= TRACK_CHILDREN
        for tag in ("title", "creator", "album", "duration"):
            assert len(tr.findall(X + tag)) <= 1
        loc = tr.findtext(X + "location")
        parts = urllib.parse.urlsplit(loc)
        assert parts.scheme == "file" and parts.path.startswith("/") and loc.isascii()  # an absolute URI
        dur = tr.findtext(X + "duration")
        assert dur is None or (dur.isdigit() and int(dur) >= 0)  # milliseconds, a non-negative integer
    return tracks


def test_xspf_is_valid_xspf1_and_round_trips_every_name(odd_files, tmp_path):
    out = tmp_path / "list.xspf"
    rows = list(odd_files.values())
    rows[0] = dict(rows[0], title="Rock & <Roll> ]]> \"q\" \x01", artist="Ünïcödé")
    write_xspf(out, rows, title="mine & yours")
    tracks = _check_xspf(out.read_bytes())
    root = ET.parse(out).getroot()
    assert root.findtext(X + "title") == "mine & yours"
    assert len(tracks) == len(rows)
    first = tracks[0]
    assert first.findtext(X + "title") == 'Rock & <Roll> ]]> "q"' and first.findtext(X + "creator") == "Ünïcödé"
    assert first.findtext(X + "album") == "Album" and first.findtext(X + "duration") == "60400"
    got = read_xspf(out)
    assert [os.fsencode(e["path"]) for e in got] == list(odd_files)
    for e, row in zip(got, rows):
        assert _opens(e["path"]) == _opens(row["path"])
        assert e["duration_s"] == pytest.approx(row["duration_s"], abs=1e-3) and e["album"] == "Album"
    assert [e["artist"] for e in got[1:]] == [r["artist"] for r in rows[1:]]
    _check_xspf(xspf_bytes([]))  # an empty playlist is still a valid one


def test_reading_rejects_what_is_not_xspf(tmp_path):
    p = tmp_path / "x.xspf"
    p.write_text("<playlist version='1'><trackList/></playlist>")  # no namespace
    with pytest.raises(PlaylistFileError, match=r"x\.xspf: not an XSPF playlist"):
        read_xspf(p)
    p.write_text("<playlist")
    with pytest.raises(PlaylistFileError, match=r"x\.xspf: not well-formed XML"):
        read_xspf(p)


# ------------------------------------------------------------------------------------------ parts of files
def test_a_part_of_a_file_uses_vlc_start_and_stop_times(tmp_path):
    album = tmp_path / "Album #2.flac"
    album.write_bytes(b"one file, three tracks")
    rows = [
        {"path": str(album), "artist": "B", "title": "Two", "start_s": 62.5, "end_s": 180.0, "duration_s": 900.0},
        {"path": str(album), "artist": "B", "title": "Three", "start_s": 180.0, "duration_s": 120.25},
        {"path": str(album), "artist": "B", "title": "One", "start_s": 0, "end_s": 62.5},
    ]
    lines = m3u8_bytes(rows).decode().splitlines()
    assert lines[1:5] == ["#EXTINF:118,B - Two", "#EXTVLCOPT:start-time=62.5", "#EXTVLCOPT:stop-time=180",
                          str(album)]
    assert lines[5:8] == ["#EXTINF:120,B - Three", "#EXTVLCOPT:start-time=180", str(album)]
    assert lines[8:] == ["#EXTINF:63,B - One", "#EXTVLCOPT:stop-time=62.5", str(album)]
    out = tmp_path / "l.m3u8"
    write_m3u8(out, rows)
    got = [(e["start_s"], e["end_s"], e["title"]) for e in read_m3u8(out)]
    assert got == [(62.5, 180.0, "Two"), (180.0, None, "Three"), (None, 62.5, "One")]

    data = xspf_bytes(rows)
    tracks = _check_xspf(data)
    ext = tracks[0].find(X + "extension")
    assert ext.get("application") == VLC_APPLICATION
    assert [o.text for o in ext.findall(f"{{{VLC_NS}}}option")] == ["start-time=62.5", "stop-time=180"]
    assert tracks[0].findtext(X + "duration") == "117500"
    assert {t.findtext(X + "location") for t in tracks} == {path_to_uri(album)}  # the file itself, no fragment
    out = tmp_path / "l.xspf"
    write_xspf(out, rows)
    got = [(e["start_s"], e["end_s"], e["path"]) for e in read_xspf(out)]
    assert got == [(62.5, 180.0, str(album)), (180.0, None, str(album)), (None, 62.5, str(album))]

    write_xspf(out, rows[:1])
    before = out.read_bytes()
    with pytest.raises(ParameterError, match=r"end_s=10.0 of .*Album #2\.flac: must be after start_s=62.5"):
        write_xspf(out, [dict(rows[0], end_s=10.0)])
    with pytest.raises(ParameterError, match="start_s"):
        write_m3u8(out, [dict(rows[0], start_s="soon")])
    assert out.read_bytes() == before  # nothing half-written


def test_readers_take_what_other_tools_write(tmp_path):
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "a b.flac").write_bytes(b"a")
    m3u = tmp_path / "vlc.m3u"
    m3u.write_bytes(b"\xef\xbb\xbf#EXTM3U\r\n#EXTVLCOPT:start-time=14\r\n#EXTINF:516,Just a name\r\n"
                    b"#EXTVLCOPT:stop-time=30\r\nmusic/a b.flac\r\n\r\nfile:///m/c%23d.flac\r\n")
    got = read_m3u8(m3u)
    assert got[0]["path"] == str(tmp_path / "music" / "a b.flac") and _opens(got[0]["path"]) == b"a"
    assert (got[0]["start_s"], got[0]["end_s"], got[0]["duration_s"], got[0]["title"]) == (14.0, 30.0, 516.0,
                                                                                          "Just a name")
    assert got[1]["path"] == "/m/c#d.flac" and got[1]["start_s"] is None
    m3u.write_bytes(b"#EXTM3U\n#EXTINF:abc,x\n/m/a.flac\n")
    with pytest.raises(ParameterError, match=r"vlc\.m3u line 2: 'abc' is not a number"):
        read_m3u8(m3u)
    xspf = tmp_path / "frag.xspf"
    xspf.write_text(f'<playlist version="1" xmlns="{XSPF_NS}"><trackList>'
                    "<track><location>http://radio/x</location></track>"
                    "<track><location>music/a%20b.flac#t=10,20.5</location><duration>10500</duration></track>"
                    "</trackList></playlist>")
    (e,) = read_xspf(xspf)  # the http:// track is left out
    assert e["path"] == str(tmp_path / "music" / "a b.flac") and (e["start_s"], e["end_s"]) == (10.0, 20.5)


def test_the_web_page_files_are_the_same_implementation(odd_files):
    from recommender.serve.playlist_files import m3u8_text, xspf_text

    rows = list(odd_files.values())
    assert m3u8_text(rows, title="t") == m3u8_bytes(rows, title="t")
    assert xspf_text(rows, title="t") == xspf_bytes(rows, title="t")
    assert _m3u_line(os.fsencode(rows[4]["path"])) in m3u8_text(rows)  # the non-UTF-8 name as a URI, not an error


# ------------------------------------------------------------------------------------------ CLI end to end
@pytest.fixture(scope="module")
def odd_index(tmp_path_factory):
    """The demo collection, some files renamed to odd names, indexed: (index dir, {path: catalog row})."""
    from recommender import Recommender
    from recommender.io.demo import make_demo_collection

    root = tmp_path_factory.mktemp("playlists")
    music = root / "music #1"
    paths = make_demo_collection(music, per_style=2, duration_s=9.0)
    renames = [b"100% ballad.flac", unicodedata.normalize("NFD", "techno é.flac").encode(), b"rock \x96 1.flac"]
    for p, name in zip(paths[::2], renames):
        new = os.path.join(os.path.dirname(os.fsencode(p)), name[:-5] + os.fsencode(os.path.splitext(p)[1]))
        os.rename(p, new)
    rec = Recommender(root / "idx")
    rep = rec.update([str(music)], progress=False)
    assert rep.added == 8
    rows = {rec.track(int(i))["path"]: rec.track(int(i)) for i in rec.tracks().index}
    rec.close()
    return str(root / "idx"), rows


def _cli(capsys, argv, code=0):
    from recommender.cli import main

    capsys.readouterr()
    assert main(argv) == code
    out = capsys.readouterr()
    return json.loads(out.out) if "--json" in argv else out


def test_cli_similar_writes_m3u8_and_xspf(odd_index, tmp_path, capsys):
    idx, rows = odd_index
    seed = next(r for p, r in rows.items() if b"\x96" in os.fsencode(p))
    m3u8, xspf = tmp_path / "sim.m3u8", tmp_path / "sim.xspf"
    res = _cli(capsys, ["similar", str(seed["id"]), "--index", idx, "-k", "7", "--m3u8", str(m3u8),
                        "--xspf", str(xspf), "--json"])
    want = [r["path"] for r in res]
    assert len(want) == 7
    for got in (read_m3u8(m3u8), read_xspf(xspf)):
        assert [e["path"] for e in got] == want and all(_opens(e["path"]) for e in got)
        for e in got:
            assert e["duration_s"] == pytest.approx(9.0, abs=0.5)
            assert (e["artist"], e["title"]) == (rows[e["path"]]["artist"], rows[e["path"]]["title"])
    _check_xspf(xspf.read_bytes())
    text = m3u8.read_bytes().decode("utf-8", "surrogateescape").splitlines()
    assert text[1] == f"#PLAYLIST:similar to {seed['id']}" and text[2].startswith("#EXTINF:9,")
    tagged = [f"#EXTINF:9,{r['artist']} - {r['title']}" for r in res if r["artist"]]  # the WAV files have no tags
    assert tagged and [ln for ln in text if ln in tagged] == tagged
    out = _cli(capsys, ["similar", str(seed["id"]), "--index", idx, "-k", "2", "--relative-to", str(tmp_path)], 2)
    assert "--relative-to" in out.err


def test_cli_radio_and_path_with_relative_paths(odd_index, tmp_path, capsys):
    idx, rows = odd_index
    ids = sorted(r["id"] for r in rows.values())
    lists = tmp_path / "lists"
    lists.mkdir()
    res = _cli(capsys, ["playlist", str(ids[0]), "--index", idx, "-n", "5", "--m3u8", str(lists / "r.m3u8"),
                        "--xspf", str(lists / "r.xspf"), "--relative-to", str(lists), "--json"])
    raw = [ln for ln in (lists / "r.m3u8").read_bytes().split(b"\n") if ln and not ln.startswith(b"#")]
    # tmp/lists -> ../../playlists0/music…; a name that is not UTF-8 is an absolute file:// URI
    assert len(raw) == 5 and all(ln.startswith(b"../../") or ln.startswith(b"file:///") for ln in raw)
    assert [e["path"] for e in read_m3u8(lists / "r.m3u8")] == [r["path"] for r in res]
    assert [e["path"] for e in read_xspf(lists / "r.xspf")] == [r["path"] for r in res]
    res = _cli(capsys, ["playlist", str(ids[0]), "--to", str(ids[-1]), "--index", idx, "-n", "4",
                        "--xspf", str(tmp_path / "p.xspf"), "--json"])
    got = read_xspf(tmp_path / "p.xspf")
    assert [e["path"] for e in got] == [r["path"] for r in res] and len(got) == 4
    assert got[0]["path"] == rows_by_id(rows)[ids[0]]["path"] and got[-1]["path"] == rows_by_id(rows)[ids[-1]]["path"]
    out = _cli(capsys, ["playlist", str(ids[0]), "--index", idx, "-n", "3", "--m3u8", str(tmp_path / "t.m3u8")])
    assert "wrote" in out.out and len(read_m3u8(tmp_path / "t.m3u8")) == 3


def rows_by_id(rows):
    return {r["id"]: r for r in rows.values()}


def test_cli_map_clusters_write_one_playlist_per_cluster(odd_index, tmp_path, capsys):
    idx, rows = odd_index
    pl = tmp_path / "clusters"
    res = _cli(capsys, ["map", "--index", idx, "--out", str(tmp_path / "map.png"), "--clusters", "4",
                        "--playlists", str(pl), "--color-by", "cluster", "--json"])
    assert os.path.getsize(tmp_path / "map.png") > 0
    assert len(res["playlists"]) == 4 and sorted(res["labels"]) == [f"cluster {c}" for c in range(1, 5)]
    seen = []
    for f in res["playlists"]:
        a, b = read_m3u8(f["m3u8"]), read_xspf(f["xspf"])
        assert [e["path"] for e in a] == [e["path"] for e in b] and len(a) == f["tracks"] >= 1
        _check_xspf(pathlib.Path(f["xspf"]).read_bytes())
        seen += [e["path"] for e in a]
    assert sorted(seen) == sorted(rows)  # every track in exactly one cluster
    # the demo has 4 styles of 2 tracks: k-means on the embeddings puts each pair together
    styles = [{os.path.basename(os.path.dirname(e["path"])) for e in read_m3u8(f["m3u8"])} for f in res["playlists"]]
    assert sum(len(s) == 1 for s in styles) >= 3
    out = _cli(capsys, ["map", "--index", idx, "--out", str(tmp_path / "m2.png"), "--playlists", str(pl)], 2)
    assert "--clusters" in out.err
    out = _cli(capsys, ["map", "--index", idx, "--out", str(tmp_path / "m2.png"), "--clusters", "9"], 2)
    assert "k=9" in out.err
    shutil.rmtree(pl)


def test_cue_rows_name_their_audio_file_and_hash_names_are_not_comments(tmp_path):
    """A catalog row of a CUE track (path "<audio>#t=s,e", source_path set) points players at the
    audio file; a relative path starting with '#' is written as './#…' (not an M3U comment)."""
    audio = tmp_path / "album.flac"
    audio.write_bytes(b"x")
    hashed = tmp_path / "#1 hit.ogg"
    hashed.write_bytes(b"y")
    rows = [{"path": f"{audio}#t=25,55", "source_path": str(audio), "start_s": 25.0, "end_s": 55.0,
             "title": "Two"},
            {"path": str(hashed), "title": "Hit"}]
    write_m3u8(tmp_path / "a.m3u8", rows, relative_to=tmp_path)
    lines = [ln for ln in (tmp_path / "a.m3u8").read_text().splitlines() if ln and not ln.startswith("#EXT")]
    assert lines == ["album.flac", "./#1 hit.ogg"]
    got = read_m3u8(tmp_path / "a.m3u8")
    assert [os.path.basename(e["path"]) for e in got] == ["album.flac", "#1 hit.ogg"]
    assert (got[0]["start_s"], got[0]["end_s"]) == (25.0, 55.0)
    write_xspf(tmp_path / "a.xspf", rows)
    got = read_xspf(tmp_path / "a.xspf")
    assert got[0]["path"] == str(audio) and os.path.exists(got[0]["path"])


def test_a_name_with_a_line_break_round_trips_in_m3u8_and_xspf(tmp_path, caplog):
    folder = tmp_path / "sub dir"
    folder.mkdir()
    odd = folder / "nl\nline.mp3"
    odd.write_bytes(b"the odd one")
    plain = folder / "plain.mp3"
    plain.write_bytes(b"plain")
    rows = [{"path": str(odd), "title": "odd"}, {"path": str(plain), "title": "plain"}]
    for rel in (None, tmp_path):
        out = tmp_path / "list.m3u8"
        with caplog.at_level("WARNING"):
            write_m3u8(out, rows, relative_to=rel)
        assert not caplog.records  # nothing left out, nothing to warn about
        lines = out.read_bytes().decode("utf-8").splitlines()
        assert path_to_uri(odd) in lines and "%0A" in path_to_uri(odd)
        back = read_m3u8(out)
        assert [e["path"] for e in back] == [str(odd), str(plain)]
        assert _opens(back[0]["path"]) == b"the odd one"
    write_xspf(tmp_path / "list.xspf", rows)
    assert [e["path"] for e in read_xspf(tmp_path / "list.xspf")] == [str(odd), str(plain)]


def test_messages_escape_a_line_break_in_a_name():
    with pytest.raises(ParameterError) as e:
        m3u8_bytes([{"path": "/m/x\ny.flac", "start_s": 5.0, "end_s": 2.0}])
    assert "\n" not in str(e.value) and "/m/x\\ny.flac" in str(e.value)
