"""Walking a collection as a music player does, tags as players read them, and
one file never stopping a run (recommender.io.collection, recommend.indexer)."""

import os
import shutil
import struct

import numpy as np
import pytest
import soundfile as sf

from recommender.io import collection
from recommender.io.collection import (
    SKIP_HIDDEN,
    SKIP_LOOP,
    SKIP_OS_METADATA,
    SKIP_SAME_FILE,
    iter_audio_files,
    read_tags,
)

SR = 16000


def _touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _wav(path, seconds=1.0, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(SR * seconds))).astype(np.float32), SR, subtype="PCM_16")
    return str(path)


# ------------------------------------------------------------------------------------- walk
def test_os_metadata_and_hidden_are_skipped_and_counted(tmp_path):
    m = tmp_path / "music"
    real = [_touch(m / "Album" / "01 Song.mp3"), _touch(m / "Album" / "02 Song.MP3"), _touch(m / "Album" / "03.Flac")]
    for p in ("Album/._01 Song.mp3", "Album/.AppleDouble/01 Song.mp3", "__MACOSX/Album/._01 Song.mp3",
              ".hidden/x.mp3", "Album/.secret.mp3", "Album/.DS_Store", "Album/Thumbs.db", "Album/desktop.ini",
              "Album/cover.jpg"):
        _touch(m / p)
    errors, skipped = [], []
    got = list(iter_audio_files([m], errors=errors, skipped=skipped))
    assert got == sorted(real) and errors == []
    why = {os.path.relpath(p, m): r for p, r in skipped}
    assert why == {
        "Album/._01 Song.mp3": SKIP_OS_METADATA,
        "Album/.AppleDouble": SKIP_OS_METADATA,
        "__MACOSX": SKIP_OS_METADATA,
        ".hidden": SKIP_HIDDEN,
        "Album/.secret.mp3": SKIP_HIDDEN,
        "Album/.DS_Store": SKIP_OS_METADATA,
        "Album/Thumbs.db": SKIP_OS_METADATA,
        "Album/desktop.ini": SKIP_OS_METADATA,
    }  # cover.jpg: not audio, passed over silently
    assert list(iter_audio_files([m], include_hidden=True)) == sorted(real + [str(m / ".hidden/x.mp3"),
                                                                               str(m / "Album/.secret.mp3")])
    # a file named explicitly is taken as given, unless it is OS metadata
    sk = []
    assert list(iter_audio_files([m / "Album/._01 Song.mp3", m / "Album/03.Flac"], skipped=sk)) == [real[2]]
    assert sk == [(str(m / "Album/._01 Song.mp3"), SKIP_OS_METADATA)]


def test_symlinked_folders_followed_once_and_loops_stop(tmp_path):
    nas = tmp_path / "nas" / "Remote"
    a, b = _touch(nas / "01.flac"), _touch(nas / "02.flac")
    m = tmp_path / "music"
    local = _touch(m / "Local" / "01.flac")
    os.symlink(nas, m / "Remote")  # an album on another disk
    os.symlink(a, m / "Local" / "02 link.flac")  # a link to a file also reached through the folder link
    os.symlink("..", m / "Local" / "loop")  # a loop back to music/
    os.symlink(tmp_path / "nowhere.flac", m / "Local" / "03 dangling.flac")
    skipped = []
    got = list(iter_audio_files([m, tmp_path / "music"], skipped=skipped))
    assert got == [local, str(m / "Local/02 link.flac"), str(m / "Local/03 dangling.flac"), str(m / "Remote/02.flac")]
    assert sorted(r for _, r in skipped) == sorted([SKIP_LOOP, SKIP_SAME_FILE, SKIP_LOOP])  # loop, 01 again, music again
    assert b.endswith("02.flac")


def test_update_report_says_what_was_skipped():
    from recommender.recommend.indexer import UpdateReport

    r = UpdateReport(added=2, skipped={SKIP_OS_METADATA: 3, SKIP_HIDDEN: 1})
    assert "skipped 4 (os metadata 3, hidden 1)" in str(r)
    j = r.to_json()
    assert j["skipped"] == {"total": 4, "by_reason": {"hidden": 1, "os metadata": 3}}
    assert "skipped" not in str(UpdateReport())


# ------------------------------------------------------------------------------------- tags
def _riff_info_wav(path, fields):
    """A WAV file with a LIST/INFO chunk (what Windows Explorer / many rippers write)."""
    _wav(path)
    data = open(path, "rb").read()
    info = b"INFO"
    for k, v in fields.items():
        b = v.encode("utf-8") + b"\x00"
        info += k + struct.pack("<I", len(b)) + b + (b"\x00" if len(b) & 1 else b"")
    chunk = b"LIST" + struct.pack("<I", len(info)) + info
    body = data[12:] + chunk
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)


def test_riff_info_in_wav(tmp_path):
    p = str(tmp_path / "x" / "take.wav")
    _riff_info_wav(p, {b"INAM": "Info Title", b"IART": "Info Artist", b"IPRD": "Info Album",
                       b"ICRD": "1999-01-02", b"IGNR": "Jazz", b"ITRK": "3/12"})
    t = read_tags(p)
    assert (t["title"], t["artist"], t["album"], t["year"], t["genre"], t["track_no"]) == \
        ("Info Title", "Info Artist", "Info Album", 1999, "Jazz", 3)
    assert sf.info(p).frames == SR  # still a valid WAV


@pytest.mark.parametrize("kind", ["wav", "aiff"])
def test_id3_chunk_in_wav_and_aiff_multi_valued(tmp_path, kind):
    from mutagen.aiff import AIFF
    from mutagen.id3 import TALB, TCON, TIT2, TPE1, TPE2, TPOS, TRCK
    from mutagen.wave import WAVE

    p = str(tmp_path / f"a.{kind}")
    _wav(p) if kind == "wav" else sf.write(p, np.zeros(SR, np.float32), SR, format="AIFF", subtype="PCM_16")
    f = WAVE(p) if kind == "wav" else AIFF(p)
    f.add_tags()
    f.tags.add(TIT2(encoding=3, text=["Chunk Title"]))
    f.tags.add(TPE1(encoding=3, text=["Artist A", "Artist B"]))
    f.tags.add(TPE2(encoding=3, text=["Various"]))
    f.tags.add(TALB(encoding=3, text=["Chunk Album"]))
    f.tags.add(TCON(encoding=3, text=["Rock", "Pop"]))
    f.tags.add(TRCK(encoding=3, text=["3/12"]))
    f.tags.add(TPOS(encoding=3, text=["2/2"]))
    f.save()
    t = read_tags(p)
    assert t["title"] == "Chunk Title" and t["album"] == "Chunk Album"
    assert t["artist"] == "Artist A; Artist B" and t["genre"] == "Rock; Pop"
    assert t["album_artist"] == "Various" and t["track_no"] == 3 and t["disc_no"] == 2
    assert t["tags"]["artist"] == ["Artist A", "Artist B"] and t["tags"]["genre"] == ["Rock", "Pop"]


def test_flac_vorbis_multi_values_mp4_and_id3_prefixed_flac(tmp_path):
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3, TIT2

    p = str(tmp_path / "Album Dir" / "song.flac")
    os.makedirs(os.path.dirname(p))
    sf.write(p, np.zeros(SR, np.float32), SR, format="FLAC")
    f = FLAC(p)
    f["title"] = "Vorbis Title"
    f["artist"] = ["One", "Two"]
    f["albumartist"] = "Band"
    f["tracknumber"] = "07/12"
    f["discnumber"] = "1"
    f.save()
    t = read_tags(p)
    assert (t["title"], t["artist"], t["album_artist"], t["track_no"], t["disc_no"]) == \
        ("Vorbis Title", "One; Two", "Band", 7, 1)
    assert t["album"] == "Album Dir"  # no album tag: the folder, as players show it
    # an ID3v2 tag written in front of fLaC (case 03): the Vorbis comments are still read
    id3 = ID3()
    id3.add(TIT2(encoding=3, text=["ID3 Title"]))
    q = str(tmp_path / "prefixed.flac")
    import io

    buf = io.BytesIO()
    id3.save(buf)
    with open(q, "wb") as out:
        out.write(buf.getvalue() + open(p, "rb").read())
    tq = read_tags(q)
    assert tq["title"] in ("Vorbis Title", "ID3 Title") and tq["title"] != "prefixed"


def test_mp4_itunes_tags(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    import subprocess

    from mutagen.mp4 import MP4

    p = str(tmp_path / "a.m4a")
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:a", "alac", p], check=True)
    f = MP4(p)
    f["\xa9nam"], f["\xa9ART"], f["aART"], f["\xa9alb"] = "Lossless Song", ["Apple Artist"], "AA", "ALAC Album"
    f["trkn"], f["disk"] = [(3, 9)], [(1, 2)]
    f.save()
    t = read_tags(p)
    assert (t["title"], t["artist"], t["album_artist"], t["album"], t["track_no"], t["disc_no"]) == \
        ("Lossless Song", "Apple Artist", "AA", "ALAC Album", 3, 1)


def test_broken_file_tags_never_raise(tmp_path):
    p = _touch(tmp_path / "Dir" / "junk.mp3", b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"\x00" * 50)
    t = read_tags(p)
    assert t["title"] == "junk" and t["album"] == "Dir" and t["artist"] is None


# ------------------------------------------------------- one file never stops a run (needs the model)
STAGES = ["walk", "stat", "hash", "tags", "analysis", "store", "fingerprint"]


@pytest.fixture(scope="module")
def four_tracks(tmp_path_factory):
    from recommender.io.demo import synth_track

    root = tmp_path_factory.mktemp("four")
    paths = []
    for i, style in enumerate(["ballad", "techno", "rock", "ambient"]):
        p = str(root / f"0{i + 1} {style}.wav")
        sf.write(p, synth_track(style, seed=i, duration_s=4.0, sr=SR), SR, subtype="PCM_16")
        paths.append(p)
    return str(root), paths


@pytest.mark.parametrize("stage", STAGES)
def test_one_file_failing_at_any_stage_never_stops_the_run(tmp_path, monkeypatch, four_tracks, stage):
    import recommender.analysis.parallel as parallel
    from recommender import Recommender
    from recommender.io import fingerprint
    from recommender.store.catalog import Catalog

    if stage == "fingerprint" and not fingerprint.fingerprint_available():
        pytest.skip("fpcalc (libchromaprint-tools) is not installed")
    root, paths = four_tracks
    bad = paths[1]

    def boom():
        return RuntimeError(f"injected {stage} fault")

    if stage == "walk":
        real = collection.skip_reason
        monkeypatch.setattr(collection, "skip_reason",
                            lambda name, **kw: (_ for _ in ()).throw(boom()) if name == os.path.basename(bad)
                            else real(name, **kw))
    elif stage in ("stat", "hash", "tags"):
        name = {"stat": "stat_entry", "hash": "content_hash", "tags": "read_tags"}[stage]
        real = getattr(collection, name)

        def fake(path, *a, _real=real, **kw):
            if path == bad:
                raise boom()
            return _real(path, *a, **kw)

        monkeypatch.setattr(collection, name, fake)
    elif stage == "analysis":
        real = parallel.analyze_files

        def fake_analyze(ps, **kw):
            for p in ps:
                if p == bad:
                    raise boom()  # breaks the whole analysis generator, not one file
                yield from real([p], **kw)

        monkeypatch.setattr(parallel, "analyze_files", fake_analyze)
    elif stage == "store":
        real = Catalog.add_track

        def fake_add(self, record, **kw):
            if record["path"] == bad:
                raise boom()
            return real(self, record, **kw)

        monkeypatch.setattr(Catalog, "add_track", fake_add)
    elif stage == "fingerprint":
        real = fingerprint.fingerprint_files

        def fake_fp(paths, **kw):
            for p, res in real(paths, **kw):
                yield p, (boom() if p == bad else res)

        monkeypatch.setattr(fingerprint, "fingerprint_files", fake_fp)

    rec = Recommender(tmp_path / "idx")
    rep = rec.update([root], progress=False)
    indexed = set(rec.tracks()["path"])
    fails = rec.failures()
    rec.close()
    others = set(paths) - {bad}
    if stage == "fingerprint":  # logged; the track is indexed without a fingerprint
        assert indexed == set(paths) and rep.failed == 0 and rep.fingerprinted == 3
        with Catalog(tmp_path / "idx" / "catalog.sqlite") as cat:
            fp = cat.fingerprints()
            ids = {r["path"]: i for i, r in cat.tracks().iterrows()}
        assert set(fp) == {ids[p] for p in others}
        return
    assert indexed == others, stage
    assert rep.added == 3 and rep.failed == 1
    assert list(fails["path"]) == [bad]
    reason = fails["reason"].iloc[0]
    assert f"injected {stage} fault" in reason and "RuntimeError" not in reason, reason
    assert [p for p, _ in rep.failures] == [bad]
    # a second run goes on too (the failure is remembered, or the file is analysed again)
    rep2 = Recommender(tmp_path / "idx").update([root], progress=False)
    assert rep2.unchanged == 3
