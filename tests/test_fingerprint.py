"""Acoustic fingerprints (:mod:`recommender.io.fingerprint`) on synthesized audio only.

Needs the ``fpcalc`` program (Debian/Ubuntu package ``libchromaprint-tools``)
and ``ffmpeg`` with libmp3lame for the tests that fingerprint files; the
others (storage, decompression, matching of arrays, errors) run without them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from recommender.errors import AudioError, ParameterError
from recommender.io import fingerprint as F

HAVE_FPCALC = F.fingerprint_available()
HAVE_FFMPEG = shutil.which("ffmpeg") is not None
needs_fpcalc = pytest.mark.skipif(
    not HAVE_FPCALC, reason="fpcalc not installed (apt install libchromaprint-tools)"
)
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed (apt install ffmpeg)")


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-threads", "1", *args], check=True)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Two 40 s rock tracks (seeds 1 and 2) as WAV; for seed 1 also an MP3 and a 3 s start cut."""
    if not (HAVE_FPCALC and HAVE_FFMPEG):
        pytest.skip("needs fpcalc (libchromaprint-tools) and ffmpeg")
    import soundfile as sf

    from recommender.io.demo import SR, synth_track

    d = tmp_path_factory.mktemp("fp")
    paths = {}
    for seed in (1, 2):
        p = str(d / f"rock{seed}.wav")
        sf.write(p, synth_track("rock", seed=seed, duration_s=40.0), SR)
        paths[f"rock{seed}"] = p
    paths["mp3"] = str(d / "rock1.mp3")
    _ffmpeg("-i", paths["rock1"], "-c:a", "libmp3lame", "-b:a", "128k", paths["mp3"])
    paths["cut"] = str(d / "rock1_cut.ogg")
    _ffmpeg("-ss", "3", "-i", paths["rock1"], "-c:a", "libvorbis", "-q:a", "4", paths["cut"])
    fps = {k: F.fingerprint_file(p) for k, p in paths.items()}
    return paths, fps


# --------------------------------------------------------------------------- files
@needs_fpcalc
@needs_ffmpeg
def test_same_recording_other_encoding_and_trimmed(audio):
    _, fps = audio
    fp = fps["rock1"]
    assert fp.items.dtype == np.uint32 and 250 < len(fp) < 330  # ~8.08 items/s over 40 s
    assert fp.duration_s == pytest.approx(40, abs=1)
    assert F.match(fp, fp) == 1.0
    for copy in ("mp3", "cut"):
        assert F.same_recording(fp, fps[copy]), (copy, F.compare(fp, fps[copy]))
    assert F.same_recording(fps["mp3"], fps["cut"])
    m = F.compare(fps["rock1"], fps["cut"])
    assert m.offset_s == pytest.approx(-3.0, abs=F.ITEM_S)  # the copy starts 3 s later
    assert m.score >= F.THRESHOLD and m.ber < 0.15 and m.overlap_s > 25


@needs_fpcalc
@needs_ffmpeg
def test_different_seeds_of_one_style_do_not_match(audio):
    _, fps = audio
    for a, b in (("rock1", "rock2"), ("mp3", "rock2"), ("cut", "rock2")):
        assert not F.same_recording(fps[a], fps[b]), (a, b, F.compare(fps[a], fps[b]))
        assert F.match(fps[a], fps[b]) < 0.5


@needs_fpcalc
@needs_ffmpeg
def test_find_duplicate_pairs(audio):
    _, fps = audio
    pairs = F.find_duplicate_pairs(fps)
    got = {frozenset((a, b)) for a, b, _ in pairs}
    assert got == {frozenset(p) for p in (("rock1", "mp3"), ("rock1", "cut"), ("mp3", "cut"))}
    assert all(s >= F.THRESHOLD for *_, s in pairs)
    assert [s for *_, s in pairs] == sorted((s for *_, s in pairs), reverse=True)
    assert F.find_duplicate_pairs({}) == []
    assert F.find_duplicate_pairs({"only": fps["rock1"]}) == []


@needs_fpcalc
def test_decompression_matches_fpcalc_raw(audio):
    paths, fps = audio
    out = subprocess.run(["fpcalc", "-length", "120", paths["cut"]], capture_output=True, text=True, check=False).stdout
    compressed = next(ln.split("=", 1)[1] for ln in out.splitlines() if ln.startswith("FINGERPRINT="))
    items, algorithm = F.decompress_fingerprint(compressed)
    assert algorithm == 1
    np.testing.assert_array_equal(items, fps["cut"].items)


# --------------------------------------------------------------------------- errors
def test_missing_fpcalc_gives_plain_audio_error(tmp_path, monkeypatch):
    p = tmp_path / "x.wav"
    p.write_bytes(b"RIFF" + bytes(100))
    monkeypatch.setenv("FPCALC", str(tmp_path / "no-such-fpcalc"))
    assert not F.fingerprint_available()
    with pytest.raises(AudioError) as e:
        F.fingerprint_file(p)
    assert e.value.path == str(p)
    assert "fpcalc" in e.value.reason and "not installed" in e.value.reason
    assert "libchromaprint-tools" in e.value.reason
    assert "Error" not in e.value.reason  # no internal exception type in the reason


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        F.fingerprint_file(tmp_path / "absent.mp3")
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        F.fingerprint_file(tmp_path / "empty.mp3")
    with pytest.raises(ParameterError):
        F.fingerprint_file(tmp_path / "absent.mp3", max_length_s=0)


@needs_fpcalc
def test_not_audio_and_too_short(tmp_path):
    bad = tmp_path / "notes.mp3"
    bad.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError) as e:
        F.fingerprint_file(bad)
    assert "could not decode" in e.value.reason
    import soundfile as sf

    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(8000, np.float32), 8000)  # 1 s of silence
    with pytest.raises(AudioError, match="too short or silent"):
        F.fingerprint_file(short)


# --------------------------------------------------------------------------- storage and arrays
def _walk(rng, n):
    """A random item sequence with Chromaprint-like continuity."""
    steps = rng.integers(0, 2**32, n, dtype=np.uint32) & rng.integers(0, 2**32, n, dtype=np.uint32)
    steps &= rng.integers(0, 2**32, n, dtype=np.uint32)
    return np.bitwise_xor.accumulate(steps)


def test_bytes_round_trip():
    rng = np.random.default_rng(0)
    fp = F.Fingerprint(_walk(rng, 500), duration_s=62.0)
    blob = F.fingerprint_to_bytes(fp)
    assert isinstance(blob, bytes) and len(blob) == 4 * 500
    assert blob[:4] == int(fp.items[0]).to_bytes(4, "little")
    back = F.fingerprint_from_bytes(blob, duration_s=62.0)
    np.testing.assert_array_equal(back.items, fp.items)
    assert back.items.dtype == np.uint32 and back.duration_s == 62.0
    assert fp.to_bytes() == blob
    assert len(F.fingerprint_from_bytes(b"")) == 0
    with pytest.raises(ParameterError):
        F.fingerprint_from_bytes(b"abc")
    with pytest.raises(ParameterError):
        F.fingerprint_from_bytes("not bytes")


def test_match_on_arrays():
    rng = np.random.default_rng(1)
    a = _walk(rng, 900)
    noise = rng.integers(0, 2**32, 900, dtype=np.uint32)
    for _ in range(4):
        noise &= rng.integers(0, 2**32, 900, dtype=np.uint32)  # ~3 % bit errors
    copy = (a ^ noise)[30:]  # cut 30 items (3.7 s) at the start
    m = F.compare(a, copy)
    assert m.offset_s == pytest.approx(-30 * F.ITEM_S) and F.same_recording(a, copy)
    other = _walk(rng, 900)
    assert F.match(a, other) < 0.05 and not F.same_recording(a, other)
    assert F.match(a, []) == 0.0
    # silence shared by two different tracks is not evidence
    sil = np.full(400, F.SILENCE_ITEM, np.uint32)
    assert F.match(np.concatenate((sil, a[:200])), np.concatenate((sil, other[:200]))) < 0.05
    with pytest.raises(ParameterError):
        F.match(a, np.zeros((2, 2), np.uint32))


def test_find_duplicate_pairs_on_arrays():
    rng = np.random.default_rng(2)
    base = {f"t{i}": _walk(rng, 700) for i in range(30)}
    coll = dict(base)
    coll["t3_copy"] = base["t3"][12:] ^ (1 << rng.integers(0, 32, 688)).astype(np.uint32) * (rng.random(688) < 0.3)
    coll["t7_copy"] = base["t7"].copy()
    coll["empty"] = np.zeros(0, np.uint32)
    pairs = F.find_duplicate_pairs(coll)
    assert {(a, b) for a, b, _ in pairs} == {("t3", "t3_copy"), ("t7", "t7_copy")}
    assert pairs[0][2] == 1.0
    with pytest.raises(ParameterError):
        F.find_duplicate_pairs([1, 2])
    with pytest.raises(ParameterError):
        F.find_duplicate_pairs(coll, max_df=1)


# --------------------------------------------------------------------------- many files per fpcalc
def _outcome(res):
    if isinstance(res, AudioError):
        return ("error", res.path, res.reason)
    return ("fp", res.items.tolist(), res.duration_s)


def _one_by_one(items, **kw):
    out = []
    for p in items:
        try:
            out.append(F.fingerprint_file(p, **kw))
        except AudioError as e:
            out.append(e)
    return out


@pytest.fixture(scope="module")
def mixed_files(audio, tmp_path_factory):
    """Good files with every kind of trouble between them, in one list."""
    import soundfile as sf

    from recommender.io.cuesheet import Segment

    paths, _ = audio
    d = tmp_path_factory.mktemp("fpmany")
    (d / "notes.mp3").write_text("this is not audio\n" * 50)
    (d / "empty.ogg").write_bytes(b"")
    sf.write(d / "silence.wav", np.zeros(8000, np.float32), 8000)  # too short to fingerprint
    y, sr = sf.read(paths["rock2"], dtype="float32")
    sf.write(d / "ten.wav", y[: 10 * sr], sr)  # shorter than -length: fpcalc exits 3 after it
    dash = d / "-dash.wav"  # must not be read as an option
    dash.write_bytes(Path(paths["rock2"]).read_bytes())
    (d / "truncated.ogg").write_bytes(Path(paths["cut"]).read_bytes()[:60000])
    return [paths["rock1"], str(d / "notes.mp3"), paths["mp3"], str(d / "empty.ogg"), str(d / "ten.wav"),
            paths["cut"], str(d / "silence.wav"), str(dash), str(d / "absent.flac"),
            Segment(paths["rock1"], 10.0, 35.0), str(d / "truncated.ogg"), paths["rock2"]]


@needs_fpcalc
@needs_ffmpeg
@pytest.mark.parametrize("batch", [1, 3, 16])
def test_fingerprint_files_equals_one_file_per_fpcalc(mixed_files, batch):
    many = list(F.fingerprint_files(mixed_files, max_length_s=30, batch=batch))
    assert [p for p, _ in many] == mixed_files
    got = [_outcome(r) for _, r in many]
    assert got == [_outcome(r) for r in _one_by_one(mixed_files, max_length_s=30)]
    errors = [i for i, g in enumerate(got) if g[0] == "error"]
    assert errors == [1, 3, 6, 8], got  # not audio, empty, silent, absent; the truncated file has its start


@needs_fpcalc
@needs_ffmpeg
def test_fingerprint_files_survives_a_crashing_fpcalc(mixed_files, tmp_path, monkeypatch):
    """An fpcalc killed by a signal mid-output (as on some chained Ogg files):
    nothing cut off is kept, every file still gets its own result."""
    real = shutil.which("fpcalc")
    wrapper = tmp_path / "fpcalc"
    wrapper.write_text(  # several files (not a pipe): print part of the output, then die by SIGSEGV
        f'#!/bin/sh\n[ "$4" = -format ] || [ -z "$5" ] && exec "{real}" "$@"\n'
        f'"{real}" "$@" | head -c 3000; kill -SEGV $$\n')
    wrapper.chmod(0o755)
    expected = [_outcome(r) for r in _one_by_one(mixed_files, max_length_s=30)]
    monkeypatch.setenv("FPCALC", str(wrapper))
    got = [_outcome(r) for _, r in F.fingerprint_files(mixed_files, max_length_s=30)]
    assert got == expected


def test_fingerprint_files_parameters(tmp_path):
    with pytest.raises(ParameterError):
        list(F.fingerprint_files([tmp_path / "a.wav"], batch=0))
    with pytest.raises(ParameterError):
        list(F.fingerprint_files([tmp_path / "a.wav"], max_length_s=-1))
    assert list(F.fingerprint_files([])) == []
    ((_, err),) = F.fingerprint_files([tmp_path / "absent.wav"])
    assert isinstance(err, AudioError) and err.reason == "no such file"


@needs_fpcalc
@needs_ffmpeg
def test_fingerprint_files_a_hanging_file_costs_two_limits_not_a_batch(mixed_files, tmp_path, monkeypatch):
    import time

    from recommender.io.cuesheet import Segment

    real = shutil.which("fpcalc")
    wrapper = tmp_path / "fpcalc"
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *ten.wav*) sleep 60;; esac\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    files = [f for f in mixed_files if not isinstance(f, Segment)]
    expected = [_outcome(r) for r in _one_by_one(files, max_length_s=30)]
    monkeypatch.setenv("FPCALC", str(wrapper))
    t0 = time.perf_counter()
    got = [_outcome(r) for _, r in F.fingerprint_files(files, max_length_s=30, timeout_s=1.5)]
    elapsed = time.perf_counter() - t0
    hang = next(i for i, f in enumerate(files) if str(f).endswith("ten.wav"))
    assert got[hang][0] == "error" and "longer than 1.5 s" in got[hang][2]
    assert got[:hang] + got[hang + 1 :] == expected[:hang] + expected[hang + 1 :]
    assert elapsed < 2 * 1.5 + 5  # the batch's limit, the file's own, and the others' work


@needs_fpcalc
@needs_ffmpeg
def test_fingerprint_files_a_bad_segment_is_its_own_error(audio):
    from recommender.io.cuesheet import Segment

    paths, _ = audio
    got = list(F.fingerprint_files([paths["rock1"], Segment(paths["rock2"], 20.0, 10.0), paths["mp3"]],
                                   max_length_s=30))
    assert isinstance(got[1][1], ParameterError)
    assert got[0][1].items.tolist() == F.fingerprint_file(paths["rock1"], max_length_s=30).items.tolist()
    assert isinstance(got[2][1], F.Fingerprint)
