"""Tests of :mod:`recommender.io.audio`: formats, rates, channels, streaming,
windows, errors.  Every file is synthesised into ``tmp_path``."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.io import audio
from recommender.errors import AudioError, ParameterError, RecommenderError

SR = 16000
HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg/ffprobe not installed")


# ----------------------------------------------------------------------------
# helpers


def sine(freq_hz, dur_s, sr, amp=0.5, phase=0.0):
    t = np.arange(int(round(dur_s * sr))) / sr
    return amp * np.sin(2 * np.pi * freq_hz * t + phase)


def chirp_noise(dur_s, sr, seed=0):
    """A signal with content at all times (so misplaced samples show)."""
    t = np.arange(int(round(dur_s * sr))) / sr
    rng = np.random.default_rng(seed)
    return 0.3 * np.sin(2 * np.pi * 300 * t * (1 + t / 10)) + 0.05 * rng.standard_normal(len(t))


def write(path, y, sr, subtype=None, format=None):
    """Write ``y`` ((n,) or (n, ch)) in chunks: libsndfile 1.2.2 crashes when
    a large Ogg Vorbis buffer is written in one call."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    with sf.SoundFile(path, "w", sr, y.shape[1], subtype=subtype, format=format) as f:
        for i in range(0, len(y), 16384):
            f.write(y[i : i + 16384])
    return path


def ffmpeg_encode(src, dst, *args):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(dst)],
        check=True,
        capture_output=True,
    )
    return dst


def peak_hz(y, sr):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spec) * sr / len(y)


def reflect_reference(y, starts, w):
    """Independent reference for load_windows: reflect once, then zeros."""
    n = len(y)
    idx = np.asarray(starts)[:, None] + np.arange(w)[None, :]
    out = np.zeros(idx.shape, dtype=np.float32)
    direct = (idx >= 0) & (idx < n)
    left = (idx < 0) & (idx >= -(n - 1))
    right = (idx >= n) & (idx <= 2 * n - 2)
    out[direct] = y[idx[direct]]
    out[left] = y[-idx[left]]
    out[right] = y[2 * n - 2 - idx[right]]
    return out


@pytest.fixture
def count_decoded(monkeypatch):
    """Count the native frames the backends decode."""
    counter = {"frames": 0, "calls": 0}
    real = audio._native_blocks

    def counting(inf, start=0, count=None):
        counter["calls"] += 1
        for b in real(inf, start, count):
            counter["frames"] += len(b)
            yield b

    monkeypatch.setattr(audio, "_native_blocks", counting)
    return counter


# ----------------------------------------------------------------------------
# names and helpers


def test_extensions_and_is_audio_path():
    for ext in (".mp3", ".flac", ".ogg", ".oga", ".opus", ".wav", ".wave", ".aif", ".aiff",
                ".m4a", ".mp4", ".aac", ".wma", ".ape", ".wv", ".mka", ".webm"):  # fmt: skip
        assert ext in audio.AUDIO_EXTENSIONS
        assert audio.is_audio_path(f"dir/song{ext.upper()}")
    assert isinstance(audio.AUDIO_EXTENSIONS, frozenset)
    assert not audio.is_audio_path("cover.jpg")
    assert not audio.is_audio_path("notes.txt")
    assert not audio.is_audio_path("mp3")  # no extension
    assert not audio.is_audio_path("Album/._01 Track.mp3")  # macOS resource fork
    from pathlib import Path

    assert audio.is_audio_path(Path("a/b.Flac"))


def test_default_rate_matches_front_end():
    from recommender import features

    assert audio._DEFAULT_SR == features.SR


def test_to_mono():
    y = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    np.testing.assert_allclose(audio.to_mono(y), [0.0, 0.5])
    assert audio.to_mono(y).dtype == np.float32
    np.testing.assert_array_equal(audio.to_mono(np.array([0.25, -0.5])), [0.25, -0.5])
    np.testing.assert_array_equal(audio.to_mono(np.ones((4, 1))), np.ones(4))
    with pytest.raises(ParameterError, match="shape"):
        audio.to_mono(np.zeros((2, 2, 2)))
    with pytest.raises(ParameterError):
        audio.to_mono(np.zeros((3, 0)))


def test_resample_sine_and_errors():
    y = sine(1000, 1.0, 44100).astype(np.float32)
    r = audio.resample(y, sr_orig=44100, sr_target=SR)
    assert r.dtype == np.float32 and r.shape == (16000,)
    np.testing.assert_allclose(r[200:-200], sine(1000, 1.0, SR)[200:-200], atol=1e-3)
    stereo = audio.resample(np.stack([y, -y], 1), sr_orig=44100, sr_target=SR)
    assert stereo.shape == (16000, 2)
    np.testing.assert_allclose(stereo[:, 1], -stereo[:, 0], atol=1e-6)
    same = audio.resample(y, sr_orig=44100, sr_target=44100)
    np.testing.assert_array_equal(same, y)
    assert same is not y
    for bad in (0, -16000, 1.5, "16000", True):
        with pytest.raises(ParameterError, match="sr_target"):
            audio.resample(y, sr_orig=44100, sr_target=bad)
    with pytest.raises(TypeError):
        audio.resample(y, 44100, 16000)  # keyword-only


def test_bad_parameters(tmp_path):
    p = write(tmp_path / "a.wav", sine(440, 1.0, SR), SR)
    for kwargs in ({"sr": 0}, {"offset_s": -1.0}, {"offset_s": float("nan")}, {"duration_s": 0.0}):
        with pytest.raises(ParameterError):
            audio.load(p, **kwargs)
    with pytest.raises(ParameterError, match="block_s"):
        audio.stream(p, block_s=0)
    with pytest.raises(ParameterError, match="window_samples"):
        audio.load_windows(p, [0.0], 0)
    with pytest.raises(ParameterError, match="starts_s"):
        audio.load_windows(p, [[0.0]], 10)
    with pytest.raises(ParameterError, match="starts_s"):
        audio.load_windows(p, [float("inf")], 10)
    with pytest.raises(ParameterError, match="path"):
        audio.load(12345)
    assert issubclass(ParameterError, RecommenderError)


# ----------------------------------------------------------------------------
# formats


SF_FORMATS = [
    # ext, format, subtype, sr, atol against the ideal sine
    ("wav", "WAV", "PCM_U8", 44100, 2e-2),
    ("wav", "WAV", "PCM_16", 44100, 1e-3),
    ("wav", "WAV", "PCM_24", 44100, 1e-3),
    ("wav", "WAV", "PCM_32", 44100, 1e-3),
    ("wav", "WAV", "FLOAT", 44100, 1e-3),
    ("wav", "WAV", "DOUBLE", 44100, 1e-3),
    ("flac", "FLAC", "PCM_16", 44100, 1e-3),
    ("flac", "FLAC", "PCM_24", 96000, 1e-3),
    ("aiff", "AIFF", "PCM_16", 22050, 1e-3),
    ("ogg", "OGG", "VORBIS", 44100, None),
    ("opus", "OGG", "OPUS", 48000, None),
    ("mp3", "MP3", "MPEG_LAYER_III", 44100, None),
]


@pytest.mark.parametrize("ext,fmt,subtype,sr,atol", SF_FORMATS, ids=[f"{e}-{s}" for e, _, s, *_ in SF_FORMATS])
def test_soundfile_formats(tmp_path, ext, fmt, subtype, sr, atol):
    if subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"libsndfile cannot write {fmt}/{subtype}")
    y = sine(440, 2.0, sr)
    p = write(tmp_path / f"tone.{ext}", np.stack([y, y], 1), sr, subtype=subtype, format=fmt)

    i = audio.info(p)
    assert (i.backend, i.sr_native, i.channels, i.format) == ("soundfile", sr, 2, fmt.lower())
    assert i.path == str(p)
    assert i.n_frames is not None and abs(i.duration_s - 2.0) < 0.1

    x = audio.load(p)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(peak_hz(x, SR) - 440) < 2
    if atol is not None:  # lossless: sample-exact against the ideal tone
        assert len(x) == 32000
        ref = sine(440, 2.0, SR)
        np.testing.assert_allclose(x[100:-100], ref[100:-100], atol=atol)
    else:  # lossy: same tone and level, length within a codec frame or two
        assert abs(len(x) - 32000) < 0.1 * SR
        rms = np.sqrt(np.mean(x[1600:-1600] ** 2))
        assert abs(rms - 0.5 / np.sqrt(2)) < 0.03


FF_FORMATS = [
    ("m4a", ["-c:a", "aac", "-b:a", "128k"], "mov", False),
    ("m4a", ["-c:a", "alac"], "mov", True),
    ("aac", ["-c:a", "aac", "-f", "adts"], "aac", False),
    ("wma", ["-c:a", "wmav2"], "asf", False),
    ("mka", ["-c:a", "flac"], "matroska", True),
]


@needs_ffmpeg
@pytest.mark.parametrize("ext,args,container,lossless", FF_FORMATS, ids=[f"{e}-{a[1]}" for e, a, *_ in FF_FORMATS])
def test_ffmpeg_formats(tmp_path, ext, args, container, lossless):
    y = sine(440, 2.0, 44100)
    src = write(tmp_path / "src.wav", np.stack([y, y], 1), 44100, subtype="PCM_24")
    p = ffmpeg_encode(src, tmp_path / f"tone.{ext}", *args)
    i = audio.info(p)
    assert (i.backend, i.sr_native, i.channels, i.format) == ("ffmpeg", 44100, 2, container)
    assert abs(i.duration_s - 2.0) < 0.2
    x = audio.load(p)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(peak_hz(x, SR) - 440) < 2
    if lossless:
        assert len(x) == 32000
        np.testing.assert_allclose(x[100:-100], sine(440, 2.0, SR)[100:-100], atol=1e-3)
    else:
        assert abs(len(x) - 32000) < 0.1 * SR
        assert abs(np.sqrt(np.mean(x[3200:-3200] ** 2)) - 0.5 / np.sqrt(2)) < 0.03


@needs_ffmpeg
def test_ffmpeg_opus_file_via_soundfile_or_ffmpeg(tmp_path):
    src = write(tmp_path / "src.wav", sine(1000, 1.0, 48000), 48000)
    p = ffmpeg_encode(src, tmp_path / "t.opus", "-c:a", "libopus")
    x = audio.load(p)
    assert abs(peak_hz(x, SR) - 1000) < 2


def test_m4a_without_ffmpeg_is_unsupported(tmp_path, monkeypatch):
    p = tmp_path / "song.m4a"
    p.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isom" + bytes(200))
    monkeypatch.setattr(audio, "_which", lambda name: None)
    with pytest.raises(AudioError, match=r"unsupported format.*install ffmpeg") as e:
        audio.load(p)
    assert "song.m4a" in str(e.value)
    with pytest.raises(AudioError, match="install ffmpeg"):
        audio.info(p)


@pytest.mark.parametrize("sr_native", [8000, 22050, 44100, 96000, 192000])
def test_sample_rates(tmp_path, sr_native):
    p = write(tmp_path / f"t{sr_native}.flac", sine(1000, 1.5, sr_native), sr_native, subtype="PCM_24")
    x = audio.load(p)
    assert abs(len(x) - 1.5 * SR) <= 2
    assert abs(peak_hz(x, SR) - 1000) < 1
    np.testing.assert_allclose(x[200:-200], sine(1000, 1.5, SR)[200:-200], atol=1e-3)
    x8 = audio.load(p, sr=8000)
    assert abs(len(x8) - 1.5 * 8000) <= 2 and abs(peak_hz(x8, 8000) - 1000) < 1


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channels_are_averaged(tmp_path, channels):
    y = sine(440, 1.0, SR)
    gains = np.arange(1, channels + 1) / channels
    p = write(tmp_path / f"c{channels}.wav", y[:, None] * gains[None, :], SR, subtype="FLOAT")
    assert audio.info(p).channels == channels
    x = audio.load(p)
    np.testing.assert_allclose(x, y * gains.mean(), atol=1e-6)


def test_very_short_clip_returned_as_is(tmp_path):
    p = write(tmp_path / "short.wav", np.array([0.1, -0.2, 0.3]), SR, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(p), [0.1, -0.2, 0.3], atol=1e-7)
    np.testing.assert_allclose(np.concatenate(list(audio.stream(p))), [0.1, -0.2, 0.3], atol=1e-7)


def test_offset_and_duration(tmp_path):
    sr0 = 44100
    p = write(tmp_path / "a.flac", chirp_noise(6.0, sr0), sr0, subtype="PCM_24")
    full = audio.load(p)
    part = audio.load(p, offset_s=1.25, duration_s=2.0)
    assert len(part) == 32000
    np.testing.assert_allclose(part, full[20000:52000], atol=1e-5)
    tail = audio.load(p, offset_s=5.0)
    np.testing.assert_allclose(tail, full[80000:], atol=1e-5)
    assert len(audio.load(p, offset_s=10.0)) == 0  # past the end: nothing, no error


# ----------------------------------------------------------------------------
# streaming


@pytest.mark.parametrize("ext,sr0", [("flac", 44100), ("wav", 16000), ("ogg", 48000)])
def test_stream_equals_load(tmp_path, ext, sr0):
    p = write(tmp_path / f"a.{ext}", chirp_noise(7.3, sr0), sr0)
    full = audio.load(p)
    blocks = list(audio.stream(p, block_s=2.0))
    assert len(blocks) == 4
    assert [len(b) for b in blocks[:-1]] == [32000] * 3 and 0 < len(blocks[-1]) <= 32000
    assert all(b.dtype == np.float32 for b in blocks)
    cat = np.concatenate(blocks)
    assert len(cat) == len(full)
    np.testing.assert_allclose(cat, full, atol=1e-4)


@needs_ffmpeg
def test_stream_ffmpeg_equals_load_and_stops_process(tmp_path, monkeypatch):
    src = write(tmp_path / "src.wav", chirp_noise(5.0, 44100), 44100)
    p = ffmpeg_encode(src, tmp_path / "a.m4a", "-c:a", "aac")
    full = audio.load(p)
    cat = np.concatenate(list(audio.stream(p, block_s=1.0)))
    np.testing.assert_allclose(cat, full, atol=1e-4)

    procs = []
    real_popen = subprocess.Popen

    def spy(*a, **k):
        procs.append(real_popen(*a, **k))
        return procs[-1]

    monkeypatch.setattr(audio.subprocess, "Popen", spy)
    gen = audio.stream(p, block_s=0.5)
    next(gen)
    gen.close()  # abandoning the stream must end ffmpeg
    decoders = [q for q in procs if os.path.basename(q.args[0]) == "ffmpeg"]
    assert len(decoders) == 1 and decoders[0].poll() is not None


def test_stream_is_lazy_and_checks_path_at_once(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio.stream(tmp_path / "missing.flac")  # raised by the call, not by next()


def test_stream_long_file_memory_is_bounded(tmp_path):
    """20 minutes of 44.1 kHz stereo FLAC: ~420 MB as float32, ~77 MB at 16 kHz."""
    sr0, minutes = 44100, 20
    p = tmp_path / "long.flac"
    one_s = (0.3 * np.sin(2 * np.pi * 441 * np.arange(sr0) / sr0)).astype(np.float32)
    block = np.tile(np.stack([one_s, one_s], 1), (10, 1))
    with sf.SoundFile(p, "w", sr0, 2, subtype="PCM_16", compression_level=0.0) as f:
        for _ in range(minutes * 6):
            f.write(block)
    tracemalloc.start()
    try:
        n_blocks = total = 0
        for b in audio.stream(p, block_s=30.0):
            n_blocks += 1
            total += len(b)
            assert abs(float(np.max(np.abs(b))) - 0.3) < 0.01
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n_blocks == minutes * 2
    assert total == minutes * 60 * SR
    assert peak < 50e6, f"peak traced memory {peak / 1e6:.1f} MB"


# ----------------------------------------------------------------------------
# windows


W = 48128  # features.PATCH_WINDOW_SAMPLES


def _windows_case(tmp_path, ext, sr0, dur_s, **kw):
    p = write(tmp_path / f"w.{ext}", chirp_noise(dur_s, sr0), sr0, **kw)
    full = audio.load(p)
    n = len(full)
    starts = np.array([-256, -W - 500, 0, 5 * SR + 123, n - W, n - 100, n + 10, 2 * n + 5])
    return p, full, starts


@pytest.mark.parametrize(
    "ext,sr0,kw",
    [("flac", 44100, {"subtype": "PCM_24"}), ("wav", 16000, {"subtype": "FLOAT"}), ("wav", 48000, {}),
     ("ogg", 44100, {}), ("mp3", 44100, {})],
    ids=["flac44k", "wav16k", "wav48k", "ogg", "mp3"],
)  # fmt: skip
def test_load_windows_equals_slices_of_load(tmp_path, count_decoded, ext, sr0, kw):
    p, full, starts = _windows_case(tmp_path, ext, sr0, 40.0, **kw)
    count_decoded["frames"] = 0
    got = audio.load_windows(p, starts / SR, W)
    assert got.shape == (len(starts), W) and got.dtype == np.float32
    ref = reflect_reference(full, starts, W)
    tol = 0 if (sr0 == SR and ext == "wav") else 1e-5
    np.testing.assert_allclose(got, ref, atol=tol, rtol=0)
    assert np.all(got[-1] == 0)  # beyond one reflection: zeros
    # only a fraction of the file was decoded (seeking, not reading through)
    assert count_decoded["frames"] < 0.5 * 40 * sr0


def test_load_windows_dense_or_short_reads_through(tmp_path, count_decoded):
    p, full, _ = _windows_case(tmp_path, "flac", 44100, 6.0)
    starts = np.arange(-300, len(full) + 300, 7001)
    count_decoded["frames"] = 0
    got = audio.load_windows(p, starts / SR, 4000)
    np.testing.assert_allclose(got, reflect_reference(full, starts, 4000), atol=1e-5)
    assert count_decoded["frames"] <= 6 * 44100  # one pass through, not one per window


@needs_ffmpeg
@pytest.mark.parametrize("ext,args", [("m4a", ["-c:a", "alac"]), ("m4a", ["-c:a", "aac"]),
                                      ("aac", ["-c:a", "aac", "-f", "adts"]), ("mka", ["-c:a", "flac"])],
                         ids=["alac", "aac-m4a", "adts", "mka"])  # fmt: skip
def test_load_windows_ffmpeg(tmp_path, ext, args):
    src = write(tmp_path / "src.wav", chirp_noise(30.0, 44100), 44100, subtype="PCM_24")
    p = ffmpeg_encode(src, tmp_path / f"w.{ext}", *args)
    full = audio.load(p)
    n = len(full)
    starts = np.array([-256, 3 * SR + 17, 17 * SR + 1, n - 1000])
    got = audio.load_windows(p, starts / SR, W)
    np.testing.assert_allclose(got, reflect_reference(full, starts, W), atol=1e-5)


def test_load_windows_truncated_file_uses_real_length(tmp_path, caplog):
    p = write(tmp_path / "t.flac", chirp_noise(40.0, 44100), 44100)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="recommender.io.audio"):
        full = audio.load(p)
    assert 10 * SR < len(full) < 30 * SR
    starts = np.array([2 * SR, len(full) - 100, 35 * SR])  # the last is past the real end
    got = audio.load_windows(p, starts / SR, W)
    np.testing.assert_allclose(got, reflect_reference(full, starts, W), atol=1e-5)


def test_load_windows_short_truncated_file(tmp_path):
    """Short file (read through, not sought) whose header overstates its length."""
    p = write(tmp_path / "t.flac", chirp_noise(8.0, 44100), 44100)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    full = audio.load(p)
    assert len(full) < 6 * SR
    w = 40000  # header: 8 s = 128000 samples <= 4 * w, so the file is read through
    starts = np.array([-100, len(full) - 3000, len(full) + 50])
    got = audio.load_windows(p, starts / SR, w)
    np.testing.assert_allclose(got, reflect_reference(full, starts, w), atol=1e-5)


def test_load_windows_tiny_files(tmp_path):
    p1 = write(tmp_path / "one.wav", np.array([0.5]), SR, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load_windows(p1, [-0.001, 0.0], 4), [[0, 0, 0, 0], [0.5, 0, 0, 0]])
    p3 = write(tmp_path / "three.wav", np.array([0.1, 0.2, 0.3]), SR, subtype="FLOAT")
    got = audio.load_windows(p3, [-2 / SR], 7)
    np.testing.assert_allclose(got, [[0.3, 0.2, 0.1, 0.2, 0.3, 0.2, 0.1]], atol=1e-7)
    assert audio.load_windows(p3, [], 5).shape == (0, 5)


# ----------------------------------------------------------------------------
# errors


def _wav_bytes(tmp_path, y, subtype="PCM_16"):
    return write(tmp_path / "_src.wav", y, SR, subtype=subtype).read_bytes()


def make_missing(tmp_path):
    return tmp_path / "missing.mp3", "no such file"


def make_directory(tmp_path):
    (tmp_path / "album.mp3").mkdir()
    return tmp_path / "album.mp3", "directory"


def make_empty(tmp_path):
    (tmp_path / "empty.flac").write_bytes(b"")
    return tmp_path / "empty.flac", "empty"


def make_text(tmp_path):
    (tmp_path / "readme.mp3").write_text("This is not audio.\n" * 50)
    return tmp_path / "readme.mp3", "not a readable audio file"


def make_png(tmp_path):
    (tmp_path / "cover.wav").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    return tmp_path / "cover.wav", "not a readable audio file"


def make_zero_samples(tmp_path):
    write(tmp_path / "nothing.wav", np.zeros((0, 1)), SR)
    return tmp_path / "nothing.wav", "no audio samples"


def make_nan(tmp_path):
    y = sine(440, 0.5, SR)
    y[100] = np.nan
    write(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    return tmp_path / "nan.wav", "NaN or infinite"


def make_inf(tmp_path):
    y = sine(440, 0.5, SR)
    y[-1] = np.inf
    write(tmp_path / "inf.wav", y, SR, subtype="DOUBLE")
    return tmp_path / "inf.wav", "NaN or infinite"


def make_header_only(tmp_path):
    flac = write(tmp_path / "_f.flac", sine(440, 1.0, SR), SR).read_bytes()
    (tmp_path / "cut.flac").write_bytes(flac[:60])  # truncated inside the header: nothing decodes
    return tmp_path / "cut.flac", ""


def make_symlink_loop(tmp_path):
    os.symlink(tmp_path / "b.wav", tmp_path / "a.wav")
    os.symlink(tmp_path / "a.wav", tmp_path / "b.wav")
    return tmp_path / "a.wav", "symbolic link loop"


def make_broken_symlink(tmp_path):
    os.symlink(tmp_path / "gone.wav", tmp_path / "link.wav")
    return tmp_path / "link.wav", "broken symbolic link"


ERROR_CASES = [make_missing, make_directory, make_empty, make_text, make_png, make_zero_samples,
               make_nan, make_inf, make_header_only, make_symlink_loop, make_broken_symlink]  # fmt: skip


@pytest.mark.parametrize("make", ERROR_CASES, ids=[m.__name__[5:] for m in ERROR_CASES])
@pytest.mark.parametrize("func", ["load", "stream", "load_windows"])
def test_errors_name_the_file(tmp_path, make, func):
    path, reason = make(tmp_path)
    with pytest.raises(AudioError) as e:
        if func == "load":
            audio.load(path)
        elif func == "stream":
            list(audio.stream(path))
        else:
            audio.load_windows(path, [0.0, 0.01], 64)
    assert path.name in str(e.value)
    assert e.value.path == str(path)
    assert reason in str(e.value)
    assert isinstance(e.value, RecommenderError)


def test_permission_denied_is_wrapped(tmp_path, monkeypatch):
    """Runs as root too: the OS refusal is simulated where the module opens."""
    p = write(tmp_path / "locked.wav", sine(440, 0.2, SR), SR)

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(audio, "open", refuse, raising=False)
    with pytest.raises(AudioError, match="permission denied") as e:
        audio.load(p)
    assert "locked.wav" in str(e.value)
    monkeypatch.undo()
    monkeypatch.setattr(audio.os, "stat", refuse)
    with pytest.raises(AudioError, match="permission denied"):
        audio.info(p)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root reads anything")
def test_unreadable_file(tmp_path):
    p = write(tmp_path / "locked.wav", sine(440, 0.2, SR), SR)
    p.chmod(0)
    try:
        with pytest.raises(AudioError, match="permission denied") as e:
            audio.info(p)
        assert "locked.wav" in str(e.value)
    finally:
        p.chmod(0o644)


def test_info_errors(tmp_path):
    for make in (make_missing, make_directory, make_empty, make_text, make_symlink_loop):
        path, reason = make(tmp_path)
        with pytest.raises(AudioError, match=reason):
            audio.info(path)


def test_truncated_wav_returns_what_decodes(tmp_path):
    y = sine(440, 2.0, SR)
    data = _wav_bytes(tmp_path, y)
    p = tmp_path / "cut.wav"
    p.write_bytes(data[: 44 + 2 * 20000 + 1])  # header + 20000 samples + half a sample
    x = audio.load(p)
    assert len(x) == 20000
    np.testing.assert_allclose(x, y[:20000], atol=1e-4)


def test_truncated_flac_returns_what_decodes_with_warning(tmp_path, caplog):
    y = chirp_noise(10.0, SR)
    p = write(tmp_path / "cut.flac", y, SR)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="recommender.io.audio"):
        x = audio.load(p)
    assert 3 * SR < len(x) < 7 * SR
    np.testing.assert_allclose(x, y[: len(x)], atol=1e-4)
    assert any("cut.flac" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_backend_exceptions_are_wrapped(tmp_path, monkeypatch, caplog):
    p = write(tmp_path / "a.wav", sine(440, 20.0, SR), SR)
    real_read = sf.SoundFile.read
    calls = {"n": 0}

    def failing_read(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > limit:
            raise sf.LibsndfileError(1, "simulated I/O failure")
        return real_read(self, *a, **k)

    monkeypatch.setattr(sf.SoundFile, "read", failing_read)
    limit = 0
    with pytest.raises(AudioError, match="simulated I/O failure"):
        audio.load(p)
    limit, calls["n"] = 1, 0
    with caplog.at_level(logging.WARNING, logger="recommender.io.audio"):
        x = audio.load(p)  # first block decoded, then the failure: keep what decoded
    assert 0 < len(x) < 20 * SR
    assert any("decoding stopped early" in r.getMessage() for r in caplog.records)

    def failing_open(*a, **k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sf, "SoundFile", failing_open)
    monkeypatch.setattr(audio, "_which", lambda name: None)
    with pytest.raises(AudioError, match="Input/output error"):
        audio.load(p)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(min_size=0, max_size=2048),
        st.sampled_from([b"RIFF", b"fLaC", b"OggS", b"ID3\x03", b"\xff\xfb\x90\x64", b"\x00\x00\x00\x18ftyp"]).flatmap(
            lambda head: st.binary(max_size=1024).map(lambda tail: head + tail)
        ),
    ),
    ext=st.sampled_from(sorted(audio.AUDIO_EXTENSIONS)),
)
def test_arbitrary_bytes_give_audio_or_audio_error(tmp_path, data, ext):
    p = tmp_path / f"fuzz{ext}"
    p.write_bytes(data)
    try:
        y = audio.load(p)
    except AudioError as e:
        assert "fuzz" in str(e)
    else:
        assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.ndim == 1
        assert np.isfinite(y).all()


def test_threads_give_identical_results(tmp_path):
    p = write(tmp_path / "a.flac", chirp_noise(3.0, 44100), 44100)
    ref = audio.load(p)
    results = [None] * 4

    def work(k):
        results[k] = audio.load(p)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, ref)


@pytest.mark.parametrize("ext", ["ogg", "flac"])
def test_reuse_decoded_cuts_windows_from_spans_already_decoded(tmp_path, count_decoded, ext):
    sr0 = 44100
    p = write(tmp_path / f"r.{ext}", chirp_noise(60.0, sr0), sr0)
    starts = np.array([5.0, 20.0, 40.0])
    inner = starts + 0.25  # 2.5-s excerpts inside the 3-s windows, at the native rate
    n_inner = int(2.5 * sr0)
    ref16 = audio.load_windows(p, starts, W)
    ref_native = audio.load_windows(p, inner, n_inner, sr=sr0)
    count_decoded["frames"] = 0
    with audio.reuse_decoded():
        got16 = audio.load_windows(p, starts, W)
        decoded = count_decoded["frames"]
        assert 0 < decoded < 0.5 * 60 * sr0
        got_native = audio.load_windows(p, inner, n_inner, sr=sr0)
        assert count_decoded["frames"] == decoded  # cut from the kept spans
        audio.load_windows(p, [50.0], 1000, sr=sr0)  # outside them: decoded
        assert count_decoded["frames"] > decoded
    # identical to decoding afresh
    np.testing.assert_array_equal(got16, ref16)
    np.testing.assert_array_equal(got_native, ref_native)
    # nothing is kept after the block
    count_decoded["frames"] = 0
    audio.load_windows(p, inner, n_inner, sr=sr0)
    assert count_decoded["frames"] >= 3 * n_inner
