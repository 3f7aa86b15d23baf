"""`recommender tag`: analysis written into the files' own tags (issue #18, item 1).

Real files of every format the product reads (made here with soundfile /
ffmpeg), indexed once; each test starts from pristine copies of the files and
the catalog.  Tags are read back with mutagen and with ffprobe; the decoded
samples must be identical before and after.
"""

import errno
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from recommender.io import tagwriter
from recommender.io.tagwriter import TagWriteError, read_fields, write_fields
from recommender.recommend import writeback

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
SR = 22050

# name -> (how it is made, ffmpeg codec or None for soundfile)
FORMATS = {
    "song.mp3": "libmp3lame",
    "song.flac": None,
    "song.ogg": None,
    "song.opus": "libopus",
    "song.m4a": "aac",
    "song_alac.m4a": "alac",
    "song.wav": None,
    "song.aiff": None,
    # ffmpeg's own WAV / AIFF: a RIFF LIST/INFO chunk (INAM, ICMT, ISFT), AIFF NAME/ANNO chunks
    "song_ffmpeg.wav": "pcm_s16le",
    "song_ffmpeg.aiff": "pcm_s16be",
}
FFMPEG_META = ["-metadata", "title=Título", "-metadata", "comment=ripped"]
NON_UTF8 = os.fsdecode(b"caf\xe9 \x96 #1.flac")  # a cp1252 file name, kept with surrogateescape


def _signal(seconds=8.0):
    t = np.arange(int(SR * seconds)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63))
    clicks = (np.mod(t, 0.5) < 0.03) * np.random.default_rng(0).normal(0, 0.6, t.size)
    return (0.15 * chord + clicks).astype(np.float32) * 0.5


def _make(folder):
    x = _signal()
    made = []
    src = os.path.join(folder, "song.wav")
    sf.write(src, x, SR, subtype="PCM_16")
    made.append(src)
    sf.write(os.path.join(folder, "song.flac"), x, SR)
    sf.write(os.path.join(folder, "song.ogg"), x, SR, format="OGG", subtype="VORBIS")
    sf.write(os.path.join(folder, "song.aiff"), x, SR, format="AIFF", subtype="PCM_16")
    sf.write(os.path.join(folder, "tmp.flac"), x[: SR * 6], SR)  # libsndfile wants an encodable name
    os.rename(os.path.join(folder, "tmp.flac"), os.path.join(folder, NON_UTF8))
    made += [os.path.join(folder, n) for n in ("song.flac", "song.ogg", "song.aiff", NON_UTF8)]
    if FFMPEG:
        for name, codec in FORMATS.items():
            if codec:
                out = os.path.join(folder, name)
                meta = FFMPEG_META if "_ffmpeg." in name else []
                subprocess.run([FFMPEG, "-v", "error", "-y", "-i", src, "-c:a", codec, *meta, out], check=True)
                made.append(out)
    return made


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from recommender import Recommender

    root = tmp_path_factory.mktemp("tagged")
    music = root / "music"
    music.mkdir()
    _make(str(music))
    idx = root / "idx"
    rec = Recommender(str(idx))
    rep = rec.update([str(music)], progress=False)
    assert rep.failed == 0, rep.failures
    rec.close()
    pristine = root / "pristine"
    shutil.copytree(music, pristine / "music")
    shutil.copytree(idx, pristine / "idx")
    return music, idx, pristine


@pytest.fixture
def lib(library):
    """The indexed library, restored to its pristine state (files, catalog, no undo log)."""
    from recommender import Recommender

    music, idx, pristine = library
    for d, src in ((music, pristine / "music"), (idx, pristine / "idx")):
        for name in os.listdir(d):
            p = os.path.join(d, name)
            os.chmod(p, 0o644) if not os.path.islink(p) else None
            (shutil.rmtree if os.path.isdir(p) and not os.path.islink(p) else os.remove)(p)
        for name in os.listdir(src):
            shutil.copy2(os.path.join(src, name), os.path.join(d, name))
    rec = Recommender(str(idx))
    yield rec, str(music)
    rec.close()


def _files(music):
    return sorted(os.path.join(music, n) for n in os.listdir(music))


def _decoded(path):
    """Decoded samples: ffmpeg's float32 output (every format), and soundfile's where it reads the format."""
    out = []
    if FFMPEG:
        r = subprocess.run([FFMPEG, "-v", "error", "-i", path, "-f", "f32le", "-"], capture_output=True, check=True)
        out.append(np.frombuffer(r.stdout, dtype="<f4"))
    if not path.endswith((".m4a", ".opus")):
        out.append(sf.read(path, dtype="float32")[0])
    assert out
    return out


def _ffprobe_tags(path):
    r = subprocess.run([FFPROBE, "-v", "error", "-show_format", "-show_streams", "-of", "json", path],
                       capture_output=True, text=True, check=True)
    d = json.loads(r.stdout)
    tags = {k.lower(): v for k, v in d["format"].get("tags", {}).items()}
    for s in d.get("streams", []):  # Ogg keeps Vorbis comments on the stream
        tags.update({k.lower(): v for k, v in s.get("tags", {}).items()})
    return tags


VALUES = {"bpm": ["127.6"], "key": ["F#m"], "mood": ["Chill", "Happy"], "genre": ["Rock", "Électronique"]}
EXPECTED = {"bpm": ["128"], "key": ["F#m"], "mood": ["Chill", "Happy"], "genre": ["Rock", "Électronique"]}


# --------------------------------------------------------------------------- the writer, per format
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_reads_back_with_mutagen_and_ffprobe_and_keeps_its_samples(lib, name):
    import mutagen

    rec, music = lib
    path = os.path.join(music, name)
    if not os.path.exists(path):
        pytest.skip(f"{name}: made with ffmpeg, which is not installed")
    before = _decoded(path)
    assert read_fields(path) == {f: [] for f in tagwriter.FIELDS}
    assert write_fields(path, VALUES) == EXPECTED
    assert read_fields(path) == EXPECTED
    # mutagen's own view of the frames / fields players read
    mf = mutagen.File(path)
    kind = tagwriter.tag_format(path)
    if kind == "id3":
        assert mf.tags.version[:2] == (2, 4)
        assert mf.tags["TBPM"].text == ["128"] and mf.tags["TKEY"].text == ["F#m"]
        assert mf.tags["TMOO"].text == ["Chill", "Happy"] and mf.tags["TCON"].genres == ["Rock", "Électronique"]
    elif kind == "vorbis":
        assert mf.tags["BPM"] == ["128"] and mf.tags["INITIALKEY"] == ["F#m"] and mf.tags["KEY"] == ["F#m"]
        assert mf.tags["MOOD"] == ["Chill", "Happy"] and mf.tags["GENRE"] == ["Rock", "Électronique"]
    else:
        assert mf.tags["tmpo"] == [128] and bytes(mf.tags["----:com.apple.iTunes:initialkey"][0]) == b"F#m"
        assert [bytes(v).decode() for v in mf.tags["----:com.apple.iTunes:MOOD"]] == ["Chill", "Happy"]
        assert mf.tags["\xa9gen"] == ["Rock", "Électronique"]
    # the audio is untouched
    after = _decoded(path)
    for a, b in zip(before, after):
        assert a.shape == b.shape and np.array_equal(a, b)
    if not FFPROBE:
        pytest.skip("ffprobe is not installed: mutagen read-back and samples checked, ffprobe not")
    t = _ffprobe_tags(path)
    first = {k: v.split(";")[0] for k, v in t.items()}  # ffprobe shows the first value (or joins with ';')
    if kind == "id3":
        assert (first["tbpm"], first["tkey"], first["tmoo"], first["genre"]) == ("128", "F#m", "Chill", "Rock")
    elif kind == "vorbis":
        assert (first["bpm"], first["initialkey"], first["mood"], first["genre"]) == ("128", "F#m", "Chill", "Rock")
        assert t["genre"] == "Rock;Électronique"
    else:  # ffmpeg's MP4 demuxer does not export the tmpo atom; BPM checked through mutagen above
        assert (first["initialkey"], first["mood"], first["genre"]) == ("F#m", "Chill", "Rock")
    if "_ffmpeg." in name:  # the file's own tags are still there, beside ours
        assert (t["title"], t["comment"]) == ("Título", "ripped")


def _info(path):
    """The RIFF LIST/INFO entries of a WAV file, ``[(id, raw bytes)]``, read independently of tagwriter."""
    import struct

    data = open(path, "rb").read()
    pos, out = 12, []
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"LIST" and data[pos + 8:pos + 12] == b"INFO":
            body, q = data[pos + 12:pos + 8 + size], 0
            while q + 8 <= len(body):
                sid, n = body[q:q + 4], struct.unpack("<I", body[q + 4:q + 8])[0]
                out.append((sid, body[q + 8:q + 8 + n]))
                q += 8 + n + (n & 1)
        pos += 8 + size + (size & 1)
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8  # the RIFF size is right
    return out


def test_wav_with_riff_info_mirrors_the_fields_there_and_undo_restores_it(lib):
    """ffmpeg shows a WAV's INFO list and drops its ID3 chunk: the fields go into both;
    the INFO entries the file had stay as they were (or come back with undo)."""
    rec, music = lib
    path = os.path.join(music, "song_ffmpeg.wav")
    if not os.path.exists(path):
        pytest.skip("ffmpeg is not installed")
    write_fields(path, {"genre": ["Jazz"]})  # as a ripper's IGNR: set in ID3 and INFO
    before = _info(path)
    assert (b"IGNR", b"Jazz\x00") in before and any(s == b"INAM" for s, _ in before)
    samples = _decoded(path)
    rep = rec.write_tags([path], write=True, overwrite=True, min_p=0.0)
    assert not rep.errors and rep.written == 1
    now = dict(_info(path))
    got = read_fields(path)
    assert now[b"IGNR"] == ";".join(got["genre"]).encode() + b"\x00" and got["genre"] != ["Jazz"]
    assert now[b"TBPM"] == got["bpm"][0].encode() + b"\x00" and now[b"TKEY"][:-1].decode() == got["key"][0]
    assert {s: v for s, v in before if s != b"IGNR"}.items() <= now.items()  # INAM, ICMT, ISFT untouched
    if FFPROBE:
        t = _ffprobe_tags(path)
        assert t["tbpm"] == got["bpm"][0] and t["tkey"] == got["key"][0] and t["title"] == "Título"
    for a, b in zip(samples, _decoded(path)):
        assert np.array_equal(a, b)
    rep = rec.write_tags(undo=True, write=True)
    assert not rep.errors
    assert _info(path) == before  # byte for byte, in the same order
    assert read_fields(path)["genre"] == ["Jazz"] and read_fields(path)["bpm"] == []


@pytest.mark.skipif(not FFMPEG, reason="ffmpeg is not installed")
def test_wav_genre_only_in_riff_info_is_read_and_kept(tmp_path):
    path = str(tmp_path / "ripped.wav")
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=1", "-metadata", "genre=Café Jazz",
                    "-metadata", "artist=Someone", path], check=True)
    assert read_fields(path) == {"bpm": [], "key": [], "mood": [], "genre": ["Café Jazz"]}
    before = _info(path)
    write_fields(path, {"bpm": "90"})
    after = dict(_info(path))
    assert {s: v for s, v in before}.items() <= after.items() and after[b"TBPM"] == b"90\x00"
    assert read_fields(path) == {"bpm": ["90"], "key": [], "mood": [], "genre": ["Café Jazz"]}
    write_fields(path, {"bpm": []})
    assert _info(path) == before


def test_removing_a_field_and_symlinks_stay_links(lib, tmp_path):
    rec, music = lib
    path = os.path.join(music, "song.flac")
    link = tmp_path / "link.flac"
    link.symlink_to(path)
    write_fields(str(link), {"bpm": "90", "genre": ["Jazz"]})
    assert link.is_symlink() and read_fields(path)["bpm"] == ["90"]
    write_fields(path, {"bpm": []})
    assert read_fields(path) == {"bpm": [], "key": [], "mood": [], "genre": ["Jazz"]}


# --------------------------------------------------------------------------- bad input
def test_read_only_file_is_refused_and_left_as_it_was(lib):
    rec, music = lib
    path = os.path.join(music, "song.flac")
    data = open(path, "rb").read()
    os.chmod(path, 0o444)  # refused even for root, who could write it
    with pytest.raises(TagWriteError) as e:
        write_fields(path, {"bpm": "100"})
    assert e.value.path == path and "read-only" in e.value.reason
    assert open(path, "rb").read() == data


def test_full_disk_during_the_write_leaves_the_file_and_no_temporary(lib, monkeypatch):
    from mutagen.flac import FLAC

    rec, music = lib
    path = os.path.join(music, "song.flac")
    data = open(path, "rb").read()
    listing = sorted(os.listdir(music))

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FLAC, "save", full)
    with pytest.raises(TagWriteError) as e:
        write_fields(path, {"bpm": "100"})
    assert e.value.path == path and "disk is full" in e.value.reason and "left as it was" in e.value.reason
    assert open(path, "rb").read() == data
    assert sorted(os.listdir(music)) == listing  # the temporary copy is gone


def test_file_changed_by_someone_else_during_the_write_is_not_overwritten(lib, monkeypatch):
    from mutagen.flac import FLAC

    rec, music = lib
    path = os.path.join(music, "song.flac")
    real_save = FLAC.save

    def meddle(self, *a, **k):
        real_save(self, *a, **k)
        with open(path, "ab") as fh:  # another program appends while we write our copy
            fh.write(b"\0")

    monkeypatch.setattr(FLAC, "save", meddle)
    with pytest.raises(TagWriteError, match="changed while"):
        write_fields(path, {"bpm": "100"})
    monkeypatch.undo()
    assert read_fields(path)["bpm"] == []


def _id3_frame(fid, payload):
    n = len(payload)
    size = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
    return fid + size + b"\0\0" + payload


def test_id3_frame_in_the_wrong_encoding_is_refused_not_dropped(lib):
    rec, music = lib
    path = os.path.join(music, "song.mp3")
    if not os.path.exists(path):
        pytest.skip("ffmpeg is not installed")
    raw = open(path, "rb").read()
    if raw[:3] == b"ID3":  # drop ffmpeg's tag, put one whose title claims UTF-8 but is cp1252
        n = (raw[6] << 21) | (raw[7] << 14) | (raw[8] << 7) | raw[9]
        raw = raw[10 + n:]
    body = _id3_frame(b"TIT2", b"\x03Caf\xe9 au lait") + _id3_frame(b"TPE1", b"\x03Someone")
    n = len(body)
    tag = b"ID3\x04\x00\x00" + bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F]) + body
    open(path, "wb").write(tag + raw)
    data = open(path, "rb").read()
    with pytest.raises(TagWriteError) as e:
        write_fields(path, {"bpm": "100"})
    assert e.value.path == path and "TIT2" in e.value.reason and "encoding" in e.value.reason
    assert open(path, "rb").read() == data


def test_vorbis_comment_that_is_not_utf8_is_refused(lib):
    from mutagen.flac import FLAC

    rec, music = lib
    path = os.path.join(music, "song.flac")
    f = FLAC(path)
    f["TITLE"] = "Caf\u00e9 XY"
    f.save()
    data = open(path, "rb").read().replace("Caf\u00e9 XY".encode(), b"Caf\xe9 XYZ")  # cp1252 bytes, same length
    open(path, "wb").write(data)
    with pytest.raises(TagWriteError, match="not valid UTF-8"):
        write_fields(path, {"bpm": "100"})
    assert open(path, "rb").read() == data


# --------------------------------------------------------------------------- planning, writing, undo
def test_values_from_the_analysis_and_the_documented_vocabulary():
    assert writeback.key_notation("A", "minor") == "Am" and writeback.key_notation("F#", "major") == "F#"
    assert writeback.key_notation(None, "minor") is None
    assert [writeback.tag_spelling(t) for t in ("rnb", "hip-hop", "alternative rock", "chillout", "Mellow")] == [
        "R&B", "Hip-Hop", "Alternative Rock", "Chill", "Mellow"]
    import pandas as pd

    p = pd.Series({"rock": 0.5, "indie": 0.3, "pop": 0.2, "chill": 0.1, "chillout": 0.09, "guitar": 0.9})
    assert writeback._group_values(p, "genre", 0.2, 2) == ["Rock", "Indie"]  # pop: 3rd value
    assert writeback._group_values(p, "genre", 0.2, 3) == ["Rock", "Indie"]  # pop: < half of rock
    assert writeback._group_values(p, "mood", 0.2, 2) == []  # below min_p
    assert writeback._group_values(p, "mood", 0.05, 2) == ["Chill"]  # synonyms once


def test_dry_run_changes_nothing_then_write_then_reindex_analyses_nothing(lib):
    rec, music = lib
    files = _files(music)
    data = {p: open(p, "rb").read() for p in files}
    dry = rec.write_tags([music], min_p=0.0)
    assert dry.dry_run and dry.written == 0 and not dry.errors
    assert {c["path"] for c in dry.changes} == set(files)
    assert all(c["action"] == "set" for c in dry.changes)
    assert {p: open(p, "rb").read() for p in files} == data
    assert not os.path.exists(os.path.join(rec.index_dir, writeback.UNDO_LOG))

    values = writeback.track_values(rec.catalog, rec.catalog.ids(), min_p=0.0)
    rep = rec.write_tags([music], write=True, min_p=0.0)
    assert rep.written == len(files) and not rep.errors
    for p in files:
        tid = rec.resolve(p)
        got = read_fields(p)
        for field, vals in values[tid].items():
            assert got[field] == vals
        assert got["bpm"] and got["key"] and got["genre"]
    again = rec.write_tags([music], min_p=0.0)
    assert again.n_changes == 0 and {c["action"] for c in again.changes} == {"same"}
    up = rec.update([music], progress=False)  # the catalog knows the new sizes: nothing is re-analysed
    assert (up.added, up.updated, up.unchanged) == (0, 0, len(files))
    from recommender.io.collection import content_hash

    for p in files:  # ... and the new content hash: a tagged file that moves is recognised, bans by hash hold
        assert rec.catalog.track(rec.resolve(p))["content_hash"] == content_hash(p)
    moved = os.path.join(os.path.dirname(files[0]), "moved-" + os.path.basename(files[0]))
    os.rename(files[0], moved)
    up = rec.update([music], progress=False)
    assert (up.moved, up.added, up.removed) == (1, 0, 0)


def test_existing_values_are_kept_unless_overwrite_and_undo_restores_them(lib):
    rec, music = lib
    path = os.path.join(music, "song.ogg")
    write_fields(path, {"genre": ["My Genre"], "bpm": "77"})
    rep = rec.write_tags([path], write=True, min_p=0.0)
    by = {c["field"]: c for c in rep.changes}
    assert by["genre"]["action"] == "keep" and by["bpm"]["action"] == "keep"
    assert read_fields(path)["genre"] == ["My Genre"] and read_fields(path)["bpm"] == ["77"]
    assert by["key"]["action"] == "set"

    rep = rec.write_tags([path], write=True, overwrite=True, min_p=0.0)
    by = {c["field"]: c for c in rep.changes}
    assert by["genre"]["action"] == "replace" and by["genre"]["old"] == ["My Genre"]
    assert read_fields(path)["genre"] != ["My Genre"]

    # undo puts back the original values of both runs, newest first
    dry = rec.write_tags(undo=True)
    assert dry.dry_run and read_fields(path)["genre"] != ["My Genre"]
    rep = rec.write_tags(undo=True, write=True)
    assert not rep.errors
    assert read_fields(path) == {"bpm": ["77"], "key": [], "mood": [], "genre": ["My Genre"]}
    with open(os.path.join(rec.index_dir, writeback.UNDO_LOG)) as fh:
        assert json.load(fh)["entries"] == []


def test_undo_leaves_fields_changed_since_unless_overwrite(lib):
    rec, music = lib
    path = os.path.join(music, "song.flac")
    rec.write_tags([path], write=True, min_p=0.0)
    write_fields(path, {"bpm": "61"})  # the user re-tags the BPM afterwards
    rep = rec.write_tags([path], undo=True, write=True)
    by = {c["field"]: c for c in rep.changes}
    assert by["bpm"]["action"] == "skip" and "changed since" in by["bpm"]["note"]
    assert read_fields(path)["bpm"] == ["61"] and read_fields(path)["key"] == []
    rep = rec.write_tags([path], undo=True, write=True, overwrite=True)
    assert read_fields(path)["bpm"] == []


def test_bad_files_are_reported_by_name_and_the_rest_done(lib):
    rec, music = lib
    gone = os.path.join(music, "song.wav")
    locked = os.path.join(music, "song.flac")
    os.remove(gone)  # vanished between indexing (or the dry run) and the write
    os.chmod(locked, 0o444)
    rep = rec.write_tags([music, os.path.join(music, "nothing.mp3")], write=True, min_p=0.0)
    reasons = {e["path"]: e["reason"] for e in rep.errors}
    assert "no such file" in reasons[os.path.join(music, "nothing.mp3")]
    assert "vanished" in reasons[gone]
    assert "read-only" in reasons[locked] and read_fields(locked)["bpm"] == []
    done = [p for p in _files(music) if p not in (gone, locked)]
    assert rep.written == len(done)
    assert all(read_fields(p)["bpm"] for p in done)
    with open(os.path.join(rec.index_dir, writeback.UNDO_LOG)) as fh:
        logged = {e["path"] for e in json.load(fh)["entries"]}
    assert logged == set(done)  # nothing recorded for the files left alone


def test_non_utf8_file_name_round_trips_through_the_undo_log(lib):
    rec, music = lib
    path = os.path.join(music, NON_UTF8)
    rec.write_tags([path], write=True, min_p=0.0)
    assert read_fields(path)["bpm"]
    with open(os.path.join(rec.index_dir, writeback.UNDO_LOG), "rb") as fh:
        fh.read().decode("ascii")  # the log is plain ASCII JSON
    rec.write_tags([path], undo=True, write=True)
    assert read_fields(path) == {f: [] for f in tagwriter.FIELDS}


def test_undo_follows_a_file_moved_and_reindexed_since(lib, capsys):
    """tag --write, mv, index (moved 1), tag --undo --write: restored at the new path (the log keeps the id)."""
    from recommender.cli import main

    rec, music = lib
    path = os.path.join(music, "song.ogg")
    rec.write_tags([path], write=True, min_p=0.0)
    assert read_fields(path)["bpm"]
    tid = rec.resolve(path)
    moved = os.path.join(music, "moved song.ogg")
    os.rename(path, moved)
    up = rec.update([music], progress=False)
    assert (up.moved, up.added, up.removed) == (1, 0, 0) and rec.resolve(moved) == tid
    assert main(["tag", "--undo", "--write", "--index", rec.index_dir, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert not out["errors"], out["errors"]
    assert read_fields(moved) == {f: [] for f in tagwriter.FIELDS}
    with open(os.path.join(rec.index_dir, writeback.UNDO_LOG)) as fh:
        assert json.load(fh)["entries"] == []
    # limited to a path: the new path and the path it was tagged at both choose it
    rec.write_tags([moved], write=True, min_p=0.0)
    os.rename(moved, path)
    rec.update([music], progress=False)
    dry = rec.write_tags([moved], undo=True)  # the old name, as logged, still chooses it
    assert dry.n_changes > 0 and {c["path"] for c in dry.changes} == {path}
    rep = rec.write_tags([path], undo=True, write=True)
    assert rep.written == 1 and not rep.errors and read_fields(path) == {f: [] for f in tagwriter.FIELDS}


def test_write_tags_takes_byte_paths(lib):
    rec, music = lib
    path = os.path.join(music, NON_UTF8)
    rep = rec.write_tags([os.fsencode(path)], write=True, min_p=0.0)
    assert not rep.errors and rep.written == 1 and read_fields(path)["bpm"]
    assert {c["path"] for c in rep.changes} == {path}
    rec.write_tags([os.fsencode(path)], undo=True, write=True)
    assert read_fields(path) == {f: [] for f in tagwriter.FIELDS}


def test_parameters_are_checked(lib):
    from recommender.errors import ParameterError

    rec, music = lib
    with pytest.raises(ParameterError, match="fields"):
        rec.write_tags([music], fields=["tempo"])
    with pytest.raises(ParameterError, match="min_p"):
        rec.write_tags([music], min_p=2)


def test_cli_dry_run_json_write_and_undo(lib, capsys):
    from recommender.cli import main

    rec, music = lib
    path = os.path.join(music, "song.flac")
    assert main(["tag", path, "--index", rec.index_dir, "--json", "--fields", "bpm,key"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] and {c["field"] for c in out["changes"]} == {"bpm", "key"}
    assert read_fields(path)["bpm"] == []
    assert main(["tag", path, "--index", rec.index_dir, "--write", "--fields", "bpm,key"]) == 0
    assert "wrote 2 field(s) in 1 file(s)" in capsys.readouterr().out
    assert read_fields(path)["bpm"] and read_fields(path)["genre"] == []
    assert main(["tag", "--undo", "--write", "--index", rec.index_dir]) == 0
    assert read_fields(path)["bpm"] == []
    assert main(["tag", os.path.join(music, "missing.mp3"), "--index", rec.index_dir]) == 1
    assert "missing.mp3: no such file" in capsys.readouterr().err


CUE_SHEET = """PERFORMER "Tux"
TITLE "Two Tracks"
FILE "album.flac" WAVE
  TRACK 01 AUDIO
    TITLE "One"
    INDEX 01 00:00:00
  TRACK 02 AUDIO
    TITLE "Two"
    INDEX 01 00:05:00
"""


def test_cue_tracks_are_not_tagged_a_note_per_album_and_no_error(tmp_path, capsys):
    from recommender import Recommender
    from recommender.cli import main
    from recommender.io.cuesheet import source_of_key

    music = tmp_path / "music"
    (music / "cue").mkdir(parents=True)
    x = _signal(10.0)
    album = str(music / "cue" / "album.flac")
    sf.write(album, x, SR)
    (music / "cue" / "album.cue").write_text(CUE_SHEET, encoding="utf-8")
    sheet = str(music / "cue" / "album.cue")
    (music / "cue" / "other.cue").write_text(CUE_SHEET.replace("album.flac", "other.flac"), encoding="utf-8")
    single = str(music / "single.flac")
    sf.write(single, x[: SR * 5], SR)
    rec = Recommender(str(tmp_path / "idx"))
    rep = rec.update([str(music)], progress=False)
    assert (rep.added, rep.failed) == (3, 0)
    cue_paths = [p for p in rec.tracks()["path"] if source_of_key(p) == album]
    assert len(cue_paths) == 2
    data = open(album, "rb").read()
    note = "part of a CUE album: its audio file holds 2 tracks, not tagged"
    # the folder, the album folder, the audio file itself, one cue track's catalog path: never written
    for arg in ([str(music)], [str(music / "cue")], [album], [cue_paths[1]]):
        for write in (False, True):
            r = rec.write_tags(arg, write=write, min_p=0.0)
            assert not r.errors, (arg, r.errors)
            assert len(r.notes) == 1 and r.notes[0]["path"] == album and r.notes[0]["reason"] == note, arg
            assert r.notes[0].get("sheet", sheet) == sheet
            assert all(c["path"] == single for c in r.changes)
            assert open(album, "rb").read() == data
    assert read_fields(single)["bpm"]  # the ordinary file in the folder was tagged
    with open(os.path.join(rec.index_dir, writeback.UNDO_LOG)) as fh:
        assert {e["path"] for e in json.load(fh)["entries"]} == {single}
    for extra in ([], ["--write"]):
        assert main(["tag", str(music / "cue"), "--index", rec.index_dir, *extra]) == 0
        out = capsys.readouterr()
        assert f"album.flac: {note} (sheet: {sheet})" in out.out
        assert "vanished" not in out.out + out.err and not out.err
    assert main(["tag", str(music / "cue"), "--index", rec.index_dir, "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert [(n["path"], n["reason"], n.get("sheet", sheet)) for n in notes] == [(album, note, sheet)]
    assert open(album, "rb").read() == data
    rec.close()
