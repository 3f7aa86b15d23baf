"""Fingerprints of CUE tracks (issue #18): each cue track of a one-file album gets
the Chromaprint fingerprint of its own segment, so the duplicate search finds the
same recording stored as a file of its own (:func:`recommender.io.fingerprint.fingerprint_file`
with a :class:`recommender.io.cuesheet.Segment`)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from recommender.errors import AudioError, ParameterError
from recommender.io import fingerprint as F
from recommender.io.cuesheet import Segment

pytestmark = pytest.mark.skipif(
    not (F.fingerprint_available() and shutil.which("ffmpeg")),
    reason="needs fpcalc (libchromaprint-tools) and ffmpeg",
)


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    """album.flac = rock seed 1 (0-40 s) + rock seed 2 (40-80 s) + rock seed 3 (80-110 s);
    seed 1 also as an MP3 of its own, seed 2 as a WAV of its own."""
    import soundfile as sf

    from recommender.io.demo import SR, synth_track

    d = tmp_path_factory.mktemp("cuefp")
    parts = [synth_track("rock", seed=s, duration_s=n) for s, n in ((1, 40.0), (2, 40.0), (3, 30.0))]
    sf.write(str(d / "album.flac"), np.concatenate(parts), SR)
    sf.write(str(d / "two.wav"), parts[1], SR)
    sf.write(str(d / "one.wav"), parts[0], SR)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(d / "one.wav"), "-c:a", "libmp3lame", "-b:a", "128k",
                    str(d / "one.mp3")], check=True)
    return d


def test_each_cue_track_matches_its_recording_and_not_the_others(album):
    src = str(album / "album.flac")
    tracks = {"t1": Segment(src, 0.0, 40.0), "t2": Segment(src, 40.0, 80.0), "t3": Segment(src, 80.0, None)}
    fps = {k: F.fingerprint_file(s) for k, s in tracks.items()}
    fps["one.mp3"] = F.fingerprint_file(album / "one.mp3")
    fps["two.wav"] = F.fingerprint_file(album / "two.wav")
    assert fps["t1"].duration_s == 40.0 and fps["t2"].duration_s == 40.0
    assert fps["t3"].duration_s == pytest.approx(30.0, abs=0.05)  # the last track: to the end of the file
    assert 250 < len(fps["t1"]) < 330  # ~8.08 items/s over its 40 s, not the album's 110 s
    m = F.compare(fps["t2"], fps["two.wav"])
    assert m.score >= F.THRESHOLD and abs(m.offset_s) <= F.ITEM_S  # aligned: it starts where the track starts
    assert F.same_recording(fps["t1"], fps["one.mp3"])
    for a, b in (("t1", "two.wav"), ("t2", "one.mp3"), ("t3", "one.mp3"), ("t3", "two.wav"), ("t1", "t2")):
        assert not F.same_recording(fps[a], fps[b]), (a, b, F.compare(fps[a], fps[b]))
    pairs = {frozenset(p[:2]) for p in F.find_duplicate_pairs(fps)}
    assert pairs == {frozenset({"t1", "one.mp3"}), frozenset({"t2", "two.wav"})}
    # the whole file fingerprints as before (its first 120 s), unlike any one track
    whole = F.fingerprint_file(src)
    assert whole.duration_s == pytest.approx(110, abs=1) and len(whole) > len(fps["t1"]) + 200


def test_max_length_applies_from_the_track_start(album):
    fp = F.fingerprint_file(Segment(str(album / "album.flac"), 40.0, 80.0), max_length_s=15)
    assert 90 < len(fp) < 125 and fp.duration_s == 40.0  # 15 s of items, the track's own length
    assert F.match(fp, F.fingerprint_file(album / "two.wav")) >= F.THRESHOLD


def test_bad_segments_name_the_file(album, tmp_path):
    with pytest.raises(AudioError) as e:
        F.fingerprint_file(Segment(str(tmp_path / "gone.flac"), 0.0, 10.0))
    assert e.value.path.endswith("gone.flac") and "no such file" in e.value.reason
    with pytest.raises(ParameterError, match="end after start"):
        F.fingerprint_file(Segment(str(album / "album.flac"), 20.0, 10.0))
    with pytest.raises(AudioError) as e:  # starts after the end of the audio: nothing to decode
        F.fingerprint_file(Segment(str(album / "album.flac"), 500.0, None))
    assert e.value.path == str(album / "album.flac") and "cue track at 500.000 s" in e.value.reason


def test_indexed_cue_tracks_have_fingerprints_and_a_copy_is_found(tmp_path):
    import soundfile as sf

    from recommender import Recommender
    from recommender.io.demo import SR, synth_track
    from recommender.recommend import recordings

    (tmp_path / "cd").mkdir()
    (tmp_path / "single").mkdir()
    parts = [synth_track(s, seed=3, duration_s=30.0) for s in ("rock", "techno", "ballad")]
    sf.write(str(tmp_path / "cd" / "album.flac"), np.concatenate(parts), SR)
    (tmp_path / "cd" / "album.cue").write_text('FILE "album.flac" WAVE\n' + "".join(
        f'  TRACK 0{i + 1} AUDIO\n    INDEX 01 {30 * i // 60:02d}:{30 * i % 60:02d}:00\n' for i in range(3)))
    sf.write(str(tmp_path / "single" / "techno.flac"), parts[1], SR)  # the album's track 2, on its own
    rec = Recommender(str(tmp_path / "idx"))
    rep = rec.update([str(tmp_path)], progress=False)
    assert (rep.added, rep.failed, rep.fingerprinted) == (4, 0, 4)
    two = rec.resolve(str(tmp_path / "cd" / "album.flac") + "#t=30,60")
    single = rec.resolve(str(tmp_path / "single" / "techno.flac"))
    pairs = recordings.duplicate_pairs(rec)
    assert len(pairs) == 1 and {int(pairs["id_a"][0]), int(pairs["id_b"][0])} == {two, single}
    assert pairs["reason"][0] == "fingerprint"
