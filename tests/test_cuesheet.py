"""CUE sheets (recommender.io.cuesheet): strict parsing, encodings, and an album
stored as one FLAC + sheet indexed as its tracks (issue #18 item 4)."""

import logging
import os
import shutil

import numpy as np
import pytest

from recommender.io import cuesheet
from recommender.io.collection import FileEntry
from recommender.io.cuesheet import (
    CueSheetError,
    Segment,
    parse_cue,
    read_cue,
    segment_key,
    source_of_key,
)
from recommender.recommend.indexer import plan_update
from recommender.store.catalog import FileState

SHEET = """\ufeffREM GENRE "Electronic"
REM DATE 1999
REM COMMENT "ExactAudioCopy v1.0"
PERFORMER "Various Artists"
TITLE "Trois Styles"
FILE "album.flac" WAVE
  TRACK 01 AUDIO
    TITLE "Ballade à l'été"
    PERFORMER "Anaïs"
    ISRC USABC9900001
    INDEX 01 00:00:00
  TRACK 02 AUDIO
    TITLE "Techno"
    PERFORMER "DJ Ø"
    FLAGS DCP
    INDEX 00 00:19:50
    INDEX 01 00:20:00
  TRACK 03 AUDIO
    TITLE "Ambient"
    SONGWRITER "Eno"
    INDEX 01 00:40:00
"""


def test_parse_a_sheet_times_tags_and_bounds():
    s = parse_cue(SHEET, path="/m/album.cue")
    assert (s.title, s.performer, s.rem["GENRE"], s.rem["DATE"]) == ("Trois Styles", "Various Artists",
                                                                     "Electronic", "1999")
    (f,) = s.files
    assert (f.name, f.kind, f.line) == ("album.flac", "WAVE", 6)
    t1, t2, t3 = f.tracks
    assert (t1.number, t1.title, t1.performer, t1.isrc, t1.start_s, t1.end_s) == (
        1, "Ballade à l'été", "Anaïs", "USABC9900001", 0.0, 20.0)
    assert t2.pregap_s == pytest.approx(19 + 50 / 75) and t2.flags == ("DCP",)
    assert (t2.start_s, t2.end_s, t3.start_s, t3.end_s) == (20.0, 40.0, 40.0, None)
    assert t3.songwriter == "Eno" and t3.line == 18
    tags = cuesheet.track_tags(s, t3)
    assert tags == {"title": "Ambient", "artist": "Various Artists", "albumartist": "Various Artists",
                    "album": "Trois Styles", "tracknumber": "3", "composer": "Eno", "genre": "Electronic",
                    "date": "1999"}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16"])
def test_sheets_in_the_usual_encodings_read(tmp_path, encoding):
    p = tmp_path / "a.cue"
    p.write_bytes(SHEET.lstrip("\ufeff").replace("Ø", "O").encode(encoding))
    s = read_cue(p)
    assert s.files[0].tracks[0].title == "Ballade à l'été"
    assert s.files[0].tracks[0].performer == "Anaïs"
    assert s.encoding == encoding


BROKEN = [
    ("FILE \"a.flac\" WAVE\nTRACK 01 AUDIO\nINDEX 01 00:00:00\nTRACK 02 AUDIO\nINDEX 01 00:10:75\n", 5, "frames"),
    ("FILE \"a.flac\" WAVE\nTRACK 01 AUDIO\nINDEX 01 00:10:00\nTRACK 02 AUDIO\nINDEX 01 00:05:00\n", 5, "overlaps"),
    ("FILE \"a.flac\" WAVE\nTRACK 01 AUDIO\nINDEX 01 00:10:00\nINDEX 02 00:09:00\n", 4, "not after"),
    ("FILE \"a.flac\" WAVE\nTRACK 02 AUDIO\nINDEX 01 00:00:00\nTRACK 01 AUDIO\nINDEX 01 00:10:00\n", 4, "increase"),
    ("FILE \"a.flac\" WAVE\nTRACK 01 AUDIO\nINDEX 00 00:00:00\nTRACK 02 AUDIO\nINDEX 01 00:10:00\n", 2, "INDEX 01"),
    ("FILE \"a.flac\" WAVE\nINDEX 01 00:00:00\n", 2, "outside a TRACK"),
    ("TRACK 01 AUDIO\nINDEX 01 00:00:00\n", 1, "before any FILE"),
    ("FILE \"a.flac\" WAVE\nTRACK 01 AUDIO\nTITLE \"oops\nINDEX 01 00:00:00\n", 3, "unterminated"),
    ("FILE \"a.flac\" WAVE\nTRACK 01 AUDIO\nBOGUS 1\nINDEX 01 00:00:00\n", 3, "unknown command"),
    ("FILE \"a.flac\" WAVE\nTRACK 01 AUDIO\nINDEX 01 00:5:00\n", 3, "expected mm:ss:ff"),
    ("FILE \"a.flac\" WAVE\nTRACK 01 AUDIO\nINDEX 01 00:61:00\n", 3, "below 60"),
    ("FILE \"a.flac\"\nTRACK 01 AUDIO\nINDEX 01 00:00:00\n", 1, "type"),
]


@pytest.mark.parametrize("text,line,words", BROKEN)
def test_broken_sheets_name_the_sheet_and_the_line(text, line, words):
    with pytest.raises(CueSheetError) as ei:
        parse_cue(text, path="/m/bad.cue")
    e = ei.value
    assert e.path == "/m/bad.cue" and e.line == line and words in e.reason
    assert str(e).startswith(f"/m/bad.cue, line {line}: ")


def test_keys_are_media_fragments_and_round_trip():
    k = segment_key("/m/a b#c.flac", 20.0, 40.0)
    assert k == "/m/a b#c.flac#t=20,40" and source_of_key(k) == "/m/a b#c.flac"
    assert segment_key("/m/x.flac", 245.3333333) == "/m/x.flac#t=245.333"
    assert source_of_key("/m/x.flac#t=245.333") == "/m/x.flac" and source_of_key("/m/x.flac") is None
    assert Segment("/m/x.flac", 0, 20).key == "/m/x.flac#t=0,20"
    a, b = Segment("/m/x.flac", 0, 20), Segment("/m/x.flac", 20, None)
    assert a.content_hash("h") != b.content_hash("h") and a.content_hash("h") == Segment("/y", 0, 20).content_hash("h")


def _album_entries(folder, names=("a.flac",)):
    found = {}
    for n in names:
        p = os.path.join(folder, n)
        found[p] = FileEntry(p, os.path.getsize(p), os.stat(p).st_mtime_ns)
    return found


def test_expand_albums_missing_file_and_same_stem(tmp_path, caplog):
    (tmp_path / "a.flac").write_bytes(b"x" * 10)
    (tmp_path / "a.cue").write_text(SHEET.replace("album.flac", "elsewhere.flac"), encoding="utf-8")
    errors = []
    with caplog.at_level(logging.WARNING):
        out = cuesheet.expand_albums(_album_entries(tmp_path), sheet_errors=errors)
    assert list(out) == [str(tmp_path / "a.flac")]  # indexed whole
    (sheet, reason), = errors
    assert sheet == str(tmp_path / "a.cue") and reason.startswith("line 6: FILE 'elsewhere.flac'")
    assert "a.cue" in caplog.text and "line 6" in caplog.text
    # a sheet written for a.wav beside a.flac (same stem) cuts a.flac
    (tmp_path / "a.cue").write_text(SHEET.replace("album.flac", "a.wav"), encoding="utf-8")
    out = cuesheet.expand_albums(_album_entries(tmp_path))
    src = str(tmp_path / "a.flac")
    assert list(out) == [segment_key(src, 0, 20), segment_key(src, 20, 40), segment_key(src, 40)]
    fe = out[segment_key(src, 20, 40)]
    assert fe.segment.source == src and fe.size == 10
    assert fe.mtime_ns == max(os.stat(src).st_mtime_ns, os.stat(tmp_path / "a.cue").st_mtime_ns)


def test_sheet_of_names_the_sheet_indexing_uses_quietly(tmp_path, caplog):
    for n in ("a.flac", "b.flac", "single.flac"):
        (tmp_path / n).write_bytes(b"x" * 10)
    (tmp_path / "b.cue").write_text(SHEET.replace("album.flac", "b.flac"), encoding="utf-8")
    (tmp_path / "zz.cue").write_text(SHEET.replace("album.flac", "a.flac"), encoding="utf-8")
    (tmp_path / "broken.cue").write_text("TRACK 01 AUDIO\n", encoding="utf-8")
    with caplog.at_level(logging.INFO):
        assert cuesheet.sheet_of(tmp_path / "a.flac") == str(tmp_path / "zz.cue")
        assert cuesheet.sheet_of(str(tmp_path / "b.flac")) == str(tmp_path / "b.cue")
        assert cuesheet.sheet_of(tmp_path / "single.flac") is None
        assert cuesheet.sheet_of(tmp_path / "nowhere" / "x.flac") is None
    assert not caplog.records  # other albums' sheets and broken ones are not reported here
    # two sheets for one file: the one with the file's stem, as expand_albums chooses
    (tmp_path / "a.cue").write_text(SHEET.replace("album.flac", "a.flac"), encoding="utf-8")
    assert cuesheet.sheet_of(tmp_path / "a.flac") == str(tmp_path / "a.cue")
    out = cuesheet.expand_albums(_album_entries(tmp_path, ("a.flac",)))
    assert {fe.segment.sheet for fe in out.values()} == {str(tmp_path / "a.cue")}


MULTI = """PERFORMER "Band"
TITLE "Two Files"
FILE "x1.flac" WAVE
  TRACK 01 AUDIO
    TITLE "M1"
    INDEX 01 00:00:00
  TRACK 02 AUDIO
    TITLE "M2"
    INDEX 01 00:05:00
FILE "x2.flac" WAVE
  TRACK 03 AUDIO
    TITLE "M3"
    PERFORMER "Guest"
    INDEX 00 00:00:00
    INDEX 01 00:01:00
FILE "gone.flac" WAVE
  TRACK 04 AUDIO
    TITLE "M4"
    INDEX 01 00:00:00
"""


def test_a_file_with_one_track_of_a_sheet_stays_whole_with_the_sheets_tags(tmp_path, caplog):
    for n in ("x1.flac", "x2.flac", "x3.flac"):
        (tmp_path / n).write_bytes(b"x" * 10)
    (tmp_path / "alb.cue").write_text(MULTI, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        out = cuesheet.expand_albums(_album_entries(tmp_path, ("x1.flac", "x2.flac", "x3.flac")))
    assert not caplog.records  # a one-track FILE naming no file found is not an error
    x1, x2, x3 = (str(tmp_path / n) for n in ("x1.flac", "x2.flac", "x3.flac"))
    assert list(out) == [segment_key(x1, 0, 5), segment_key(x1, 5), x2, x3]
    whole = out[x2]
    assert isinstance(whole, cuesheet.SheetFileEntry) and whole.segment is None and whole.sheet == str(
        tmp_path / "alb.cue")
    assert whole.mtime_ns == max(os.stat(x2).st_mtime_ns, os.stat(tmp_path / "alb.cue").st_mtime_ns)
    assert type(out[x3]) is FileEntry
    file_tags = {"title": "x2 file title", "artist": None, "album": "File Album", "genre": "Rock", "tags": {}}
    tags = cuesheet.apply_sheet_tags(file_tags, whole)
    assert (tags["title"], tags["artist"], tags["album"], tags["album_artist"], tags["track_no"]) == (
        "M3", "Guest", "Two Files", "Band", 3)
    assert tags["genre"] == "Rock"  # what the sheet does not say stays the file's
    assert cuesheet.apply_sheet_tags(file_tags, out[x3]) is file_tags
    untitled = cuesheet.SheetFileEntry(x2, 10, 1, sheet="s.cue", tags=(("artist", "Guest"),))
    assert cuesheet.apply_sheet_tags(file_tags, untitled)["title"] == "x2 file title"  # not "… (?)"
    # a sheet that cannot be used gives no tags either: the file is whole and plain
    (tmp_path / "alb.cue").write_text(MULTI.replace("INDEX 01 00:05:00", "INDEX 01 00:05:99"), encoding="utf-8")
    out = cuesheet.expand_albums(_album_entries(tmp_path, ("x1.flac", "x2.flac")))
    assert list(out) == [x1, x2] and all(type(fe) is FileEntry for fe in out.values())


def test_moved_album_keeps_its_tracks_and_scanned_file_owns_its_tracks():
    key = "k"
    old = {segment_key("/m/a.flac", s, e): FileState(i + 1, 10, 1, Segment("/m/a.flac", s, e).content_hash("H"), key)
           for i, (s, e) in enumerate([(0, 20), (20, None)])}
    new = {}
    for s, e in [(0, 20), (20, None)]:
        seg = Segment("/n/a.flac", s, e)
        new[seg.key] = FileEntry(seg.key, 10, 2, segment=seg)
    calls = []

    def content_hash(p, size=None):
        calls.append(p)
        return "H"

    plan = plan_update(new, old, {}, key=key, paths=["/m/a.flac", "/n/a.flac"], content_hash=content_hash)
    assert sorted((m.track_id, m.entry.path) for m in plan.moved) == [(1, "/n/a.flac#t=0,20"), (2, "/n/a.flac#t=20")]
    assert not plan.todo and not plan.missing and calls == ["/n/a.flac"]  # the album hashed once
    # the audio file scanned by itself: its cue tracks that are gone are missing
    plan = plan_update({}, old, {}, key=key, paths=["/m/a.flac"], content_hash=content_hash)
    assert set(plan.missing) == set(old)


# ---------------------------------------------------------------- end to end
STYLES = ("ballad", "techno", "ambient")
TRACK_S = 20.0


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    """One FLAC of 3 synthetic tracks (ballad, techno, ambient) + its sheet, and one
    separate file per style (other seeds) in another folder."""
    import soundfile as sf

    from recommender.io.demo import SR, synth_track

    root = tmp_path_factory.mktemp("cue")
    (root / "album").mkdir()
    (root / "singles").mkdir()
    y = np.concatenate([synth_track(s, seed=1, duration_s=TRACK_S) for s in STYLES])
    sf.write(root / "album" / "Trois Styles.flac", y, SR)
    for s in STYLES:
        sf.write(root / "singles" / f"{s}.flac", synth_track(s, seed=7, duration_s=TRACK_S), SR)
    sheet = SHEET.replace("album.flac", "Trois Styles.flac")
    (root / "album" / "Trois Styles.cue").write_bytes(sheet.lstrip("\ufeff").replace("Ø", "O").encode("cp1252"))
    return root


def test_cue_album_is_indexed_as_its_tracks(album, tmp_path):
    from recommender import Recommender

    rec = Recommender(tmp_path / "idx")
    rep = rec.update([album], progress=False)
    assert (rep.added, rep.failed, rep.sheet_errors) == (6, 0, [])
    src = str(album / "album" / "Trois Styles.flac")
    cue = rec.catalog.tracks_of_file(src)
    assert [t["title"] for t in cue] == ["Ballade à l'été", "Techno", "Ambient"]
    assert [t["artist"] for t in cue] == ["Anaïs", "DJ O", "Various Artists"]
    assert [t["album"] for t in cue] == ["Trois Styles"] * 3 and [t["track_no"] for t in cue] == [1, 2, 3]
    assert all(t["album_artist"] == "Various Artists" and t["genre"] == "Electronic" and t["year"] == 1999
               for t in cue)
    for t, (s, e) in zip(cue, [(0, 20), (20, 40), (40, 60)]):
        assert t["start_s"] == pytest.approx(s, abs=0.05) and t["end_s"] == pytest.approx(e, abs=0.05)
        assert t["duration_s"] == pytest.approx(e - s, abs=0.05) and t["source_path"] == src
        assert t["path"].startswith(src + "#t=") and t["sampling"]
        pv = rec.catalog.patch_vectors(t["id"])["starts_s"]
        assert pv.min() >= 0 and pv.max() + 3.0 <= e - s + 0.05  # windows inside the track
    # each cue track's nearest neighbour outside the album is the single of its style
    singles = {int(i): os.path.basename(p) for i, p in rec.tracks()["path"].items() if "singles" in p}
    for t, style in zip(cue, STYLES):
        res = rec.similar(int(t["id"]), k=5)
        first = next(int(i) for i in res["id"] if int(i) in singles)
        assert singles[first] == f"{style}.flac", (style, res)
    # a re-scan of the unchanged album changes nothing
    gen = rec.catalog.generation
    rep = rec.update([album], progress=False)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (0, 0, 0, 6)
    assert rec.catalog.generation == gen
    # editing the sheet re-indexes the album (ids kept where the bounds are the same)
    p = album / "album" / "Trois Styles.cue"
    p.write_bytes(p.read_bytes().replace(b'"Techno"', b'"Techno (edit)"'))
    os.utime(p, ns=(os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns + 10**9))
    rep = rec.update([album], progress=False)
    assert (rep.added, rep.updated, rep.removed) == (0, 3, 0)
    assert [t["title"] for t in rec.catalog.tracks_of_file(src)][1] == "Techno (edit)"
    assert [t["id"] for t in rec.catalog.tracks_of_file(src)] == [t["id"] for t in cue]


def test_broken_sheet_indexes_the_file_whole(album, tmp_path, caplog):
    from recommender import Recommender

    music = tmp_path / "m"
    shutil.copytree(album / "album", music)
    p = music / "Trois Styles.cue"
    p.write_bytes(p.read_bytes().replace(b"INDEX 01 00:40:00", b"INDEX 01 00:10:00"))
    rec = Recommender(tmp_path / "idx")
    with caplog.at_level(logging.WARNING):
        rep = rec.update([music], progress=False)
    assert rep.added == 1 and rep.failed == 0
    (sheet, reason), = rep.sheet_errors
    assert sheet == str(p) and reason.startswith("line 21: INDEX 01 at 00:10:00 overlaps track 02")
    assert "Trois Styles.cue" in caplog.text and "line 21" in caplog.text
    (path,) = rec.tracks()["path"]
    assert path == str(music / "Trois Styles.flac")
    assert rec.catalog.track_by_path(path)["duration_s"] == pytest.approx(3 * TRACK_S, abs=0.05)
    assert "1 cue sheet(s) not used" in str(rep)


def test_a_sheet_with_one_track_per_file_gives_the_whole_files_their_titles(album, tmp_path):
    """A sheet with several FILE entries, one of them a single TRACK: that file is indexed whole,
    titled and credited by the sheet; the FILE with several tracks is cut as usual."""
    from recommender import Recommender

    music = tmp_path / "m"
    music.mkdir()
    shutil.copy(album / "album" / "Trois Styles.flac", music / "x1.flac")
    shutil.copy(album / "singles" / "ballad.flac", music / "x2.flac")
    (music / "alb.cue").write_text(MULTI.split('FILE "gone.flac"')[0], encoding="utf-8")
    rec = Recommender(tmp_path / "idx")
    rep = rec.update([music], progress=False)
    assert (rep.added, rep.failed, rep.sheet_errors) == (3, 0, [])
    row = rec.catalog.track_by_path(str(music / "x2.flac"))
    assert (row["title"], row["artist"], row["album"], row["track_no"]) == ("M3", "Guest", "Two Files", 3)
    assert row["source_path"] is None and row["duration_s"] == pytest.approx(TRACK_S, abs=0.05)
    assert [t["title"] for t in rec.catalog.tracks_of_file(str(music / "x1.flac"))] == ["M1", "M2"]


@pytest.mark.parametrize("sampling", ["full", "spread:4"])
def test_a_segment_is_analysed_like_the_same_audio_in_its_own_file(album, tmp_path, sampling):
    """Only the segment's seconds are decoded: its patches equal those of a file holding just them."""
    import soundfile as sf

    from recommender.analysis.pipeline import analyze_files

    src = str(album / "album" / "Trois Styles.flac")
    y, sr = sf.read(src, dtype="float32")
    own = str(tmp_path / "techno.flac")
    sf.write(own, y[int(TRACK_S * sr): int(2 * TRACK_S * sr)], sr)
    seg = Segment(src, TRACK_S, 2 * TRACK_S)
    a, b = analyze_files([seg, own], sampling=sampling)
    a, b = (a, b) if a.path == seg.key else (b, a)
    assert a.path == seg.key and a.duration_s == pytest.approx(TRACK_S, abs=1e-3)
    np.testing.assert_allclose(a.starts_s, b.starts_s)
    assert np.corrcoef(a.embedding, b.embedding)[0, 1] > 0.999
    bad = list(analyze_files([Segment(src, 500.0, None)]))
    assert bad[0].path == segment_key(src, 500.0) and "after the end of the file" in bad[0].reason
