"""A regression corpus of real-world music-collection oddities, made in code.

Every oddity is a file (or folder entry) that real collections contain,
built deterministically from synthesised audio (no one's music, no
download), with the outcome that is RIGHT for it: the handed cases of issue
#16 (their recipes mirrored here, shortened where the length does not matter)
and more of the same kinds.  ``tests/test_realfiles.py`` asserts each
outcome; ``benchmarks/bench_realfiles.py`` prints, per kind, what happened.

Layout written by :func:`build_corpus` under ``dest``::

    dest/music/<group>/<file>   what is indexed (the collection)
    dest/outside/...            targets of symbolic links (another "disk")
    dest/_work/                 temporaries (emptied)

Outcomes (:class:`Expect` ``.kind``):

``indexed``      a track, duration ``duration_s`` within ``max(0.15 s, 1 %)``
                 of the true length (a full ffmpeg decode), windows inside the
                 song, optional tags / twin cosine / tempo / loudness checks;
``flagged``      indexed, and the catalog's ``audio_flag`` is ``flag``, with
                 no tempo or key stored;
``failed``       a recorded failure for that very path whose reason matches
                 ``reason`` (a plain-language pattern), never a track;
``either``       indexed, or failed with a reason matching ``reason``;
``skipped``      neither a track nor a failure (OS metadata, hidden folders);
``once``         a second path to the file of ``alias_of`` (a symlink):
                 exactly one of the two paths is a track;
``loop``         a symlink loop: no track path goes through it.

Requires numpy, soundfile and mutagen; oddities whose ``needs`` include
``"ffmpeg"`` are left out (with the reason) when ffmpeg is not on PATH.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Callable

import numpy as np

__all__ = [
    "Expect", "Oddity", "Built", "oddities", "build_corpus", "music", "true_duration",
    "Observed", "observe", "check", "outcome", "plain_reason_problems", "tolerance",
    "same_recording_groups", "capture_stderr_and_logs", "tracebacks",
]

#: Length (s) of most clips; the same-recording group uses 20 s (Chromaprint needs sound).
D = 10.0
D_REC = 20.0
SR = 44100
#: Marker: the expected duration is what a full ffmpeg decode gives (measured at build time).
DECODED = -1.0

# ----------------------------------------------------------------------- audio
_CHORDS = [(220.00, 261.63, 329.63), (174.61, 220.00, 261.63), (261.63, 329.63, 392.00), (196.00, 246.94, 293.66)]


def music(sr=SR, dur=D, seed=0, bpm=120.0, channels=2, level=0.5, bright=1.0, transpose=None) -> np.ndarray:
    """Deterministic test music (chords, kick, hi-hat): the handed cases' ``synth.music``,
    transposed by ``transpose`` semitones (default ``seed % 12``, so that songs of
    different seeds are different recordings, not one chord sequence re-ordered).

    Returns
    -------
    np.ndarray, float32, shape (n,) if ``channels == 1`` else (n, channels); peak ``level``.
    """
    rng = np.random.default_rng(seed)
    shift = 2.0 ** ((seed % 12 if transpose is None else transpose) / 12.0)
    n = int(round(sr * dur))
    t = np.arange(n) / sr
    beat = 60.0 / bpm
    y = np.zeros(n, dtype=np.float64)
    bar = 4 * beat
    order = rng.permutation(4)
    for k in range(int(np.ceil(dur / bar))):
        a, b = int(k * bar * sr), min(n, int((k + 1) * bar * sr))
        tt = t[a:b] - t[a]
        env = np.minimum(1.0, tt / 0.02) * np.exp(-tt * 0.6)
        for f in _CHORDS[order[k % 4]]:
            for h in (1, 2, 3):
                y[a:b] += env * 0.12 / h ** (1.5 / bright) * np.sin(2 * np.pi * f * shift * h * tt + rng.uniform(0, 6.28))
    for k in range(int(dur / beat)):
        a = int(k * beat * sr)
        m = min(n - a, int(0.25 * sr))
        tt = np.arange(m) / sr
        y[a:a + m] += 0.6 * np.exp(-tt * 25) * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 40)) * tt)
        h = a + int(beat / 2 * sr)
        if h < n:
            mh = min(n - h, int(0.05 * sr))
            y[h:h + mh] += 0.15 * bright * rng.standard_normal(mh) * np.exp(-np.arange(mh) / sr * 80)
    y *= level / max(1e-9, np.abs(y).max())
    if channels == 1:
        return y.astype(np.float32)
    out = np.stack([y, np.roll(y, int(0.0007 * sr))] + [y] * (channels - 2), axis=1)
    return out.astype(np.float32)


def true_duration(path) -> float:
    """Seconds a full ffmpeg decode gives (resampled to 16 kHz mono, so chained
    links with other rates count right).  Raises ``RuntimeError`` when ffmpeg fails."""
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "quiet", "-i", os.fspath(path), "-ac", "1", "-ar", "16000",
                        "-f", "s16le", "-"], capture_output=True, check=False)
    if r.returncode != 0 and not r.stdout:
        raise RuntimeError(f"ffmpeg cannot decode {path!r}")
    return len(r.stdout) / 2 / 16000.0


def tolerance(duration_s: float) -> float:
    """The cases' README tolerance on a length: ±0.15 s or ±1 %, whichever is larger."""
    return max(0.15, 0.01 * duration_s)


# --------------------------------------------------------------------- writers
def _sf_write(path, y, sr, **kw):
    import soundfile as sf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    kw.setdefault("format", {".aiff": "AIFF", ".aif": "AIFF", ".flac": "FLAC"}.get(
        os.path.splitext(path)[1].lower(), "WAV"))
    with open(path, "wb") as f:  # a file object: soundfile cannot encode a surrogate-escaped name
        sf.write(f, y, sr, **kw)


def _ffmpeg(ctx, y, sr, dst, *args, src_subtype="PCM_16"):
    """Encode ``y`` with ffmpeg (bit-exact, no metadata) into ``dst``."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    src = os.path.join(ctx.work, "src.wav")
    _sf_write(src, y, sr, subtype=src_subtype)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, *args, "-fflags", "+bitexact",
                    "-map_metadata", "-1", dst], check=True)
    os.remove(src)


def _appledouble(size=4096) -> bytes:
    hdr = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 2)
    ent = struct.pack(">III", 9, 50, 32) + struct.pack(">III", 2, 82, size - 82)
    body = hdr + ent + b"MPG3hook" + b"\x00" * 24
    return body + b"\x00" * (size - len(body))


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write_bytes(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _wav_bytes(y16: np.ndarray, sr: int, *, riff_size=None, data_size=None, extra_chunks=b"") -> bytes:
    """A 16-bit PCM WAV by hand; ``riff_size``/``data_size`` override the header fields."""
    ch = 1 if y16.ndim == 1 else y16.shape[1]
    data = y16.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, ch, sr, sr * ch * 2, ch * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + extra_chunks
    body += b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def _riff_info(**fields) -> bytes:
    """A ``LIST``/``INFO`` chunk (fields like INAM="title", IART="artist", IPRD="album")."""
    sub = b""
    for k, v in fields.items():
        b = v.encode("utf-8") + b"\x00"
        if len(b) % 2:
            b += b"\x00"
        sub += k.encode("ascii") + struct.pack("<I", len(b)) + b
    payload = b"INFO" + sub
    return b"LIST" + struct.pack("<I", len(payload)) + payload


def _i16(y):
    return np.round(np.clip(y, -1, 1) * 32767).astype(np.int16)


# -------------------------------------------------------------------- spec types
@dataclasses.dataclass(frozen=True)
class Expect:
    """The right outcome of one oddity (see the module docstring for ``kind``).

    ``tags``: column -> expected value, or a tuple of acceptable values, or a
    ``re`` pattern (``re.Pattern``) the value must match.  ``twin``: (other
    oddity's name, minimum cosine of the two ``embedding`` vectors).
    ``tempo``: (bpm, tolerance).  ``louder_than``: (other name, dB, tolerance):
    stored loudness difference.  ``same_key_as``: other name whose stored key
    and mode must be equal.  ``same_recording_as``: name of the original
    recording: ``similar`` on it never returns this file.
    """

    kind: str
    duration_s: float | None = None
    reason: str | None = None
    flag: str | None = None
    tags: dict | None = None
    twin: tuple | None = None
    tempo: tuple | None = None
    louder_than: tuple | None = None
    same_key_as: str | None = None
    same_recording_as: str | None = None
    alias_of: str | None = None

    def __str__(self):
        if self.kind in ("indexed", "flagged"):
            s = f"indexed {self.duration_s if self.duration_s != DECODED else 'decoded'} s"
            if self.flag:
                s += f", flagged {self.flag}"
            return s
        if self.kind in ("failed", "either"):
            return ("indexed or " if self.kind == "either" else "") + f"failure /{self.reason}/"
        if self.kind == "once":
            return f"indexed once (same file as {self.alias_of})"
        return self.kind


@dataclasses.dataclass(frozen=True)
class Oddity:
    """One oddity: ``rel`` is its path under ``music/`` (``bytes`` for a non-UTF-8 name);
    ``build(ctx, path)`` writes it; ``case`` is the handed case it mirrors, if any;
    ``recording`` labels the music in it: two files with the same label hold the
    same recording (another encoding, a cut), two with different labels never do
    (``None``: no music: silence, empty, not audio, OS metadata)."""

    name: str
    kind: str
    rel: str | bytes
    build: Callable
    expect: Expect
    case: str | None = None
    needs: tuple = ()
    recording: str | None = None


@dataclasses.dataclass(frozen=True)
class Built:
    """A built oddity: absolute ``path`` (str, surrogate-escaped when not UTF-8) and the
    expected duration resolved (``DECODED`` replaced by the measured decode)."""

    oddity: Oddity
    path: str
    duration_s: float | None

    @property
    def name(self):
        return self.oddity.name

    @property
    def expect(self):
        return self.oddity.expect


@dataclasses.dataclass
class _Ctx:
    root: str      # dest/music
    outside: str   # dest/outside
    work: str      # dest/_work
    seed: int = 0  # added to every seed (the benchmark makes several copies)


# -------------------------------------------------------------- builders: kinds
def _mp3_with_id3(ctx, p, *, art_bytes):
    from mutagen.id3 import APIC, ID3, TALB, TCON, TDRC, TIT2, TPE1

    _ffmpeg(ctx, music(seed=1 + ctx.seed, dur=D), SR, p, "-c:a", "libmp3lame", "-b:a", "192k",
            "-id3v2_version", "0", "-write_xing", "1")
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Cover Test"))
    tags.add(TPE1(encoding=3, text="Test Artist"))
    tags.add(TALB(encoding=3, text="Artwork Album"))
    tags.add(TDRC(encoding=3, text="2019"))
    tags.add(TCON(encoding=3, text="Electronic"))
    if art_bytes:
        rng = np.random.default_rng(1)
        jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.integers(0, 256, art_bytes, dtype=np.uint8).tobytes() + b"\xff\xd9"
        tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="Cover", data=jpeg))
    tags.save(p, v2_version=3)


def _vbr(ctx, p, *, xing):
    y = music(seed=2 + ctx.seed, dur=16.0)
    y[: 6 * SR] = 0.0  # digital silence first: lowest-bitrate frames fool a size/bitrate estimate
    _ffmpeg(ctx, y, SR, p, "-c:a", "libmp3lame", "-q:a", "0", "-id3v2_version", "0", "-write_xing", xing)


def _flac_clean(ctx, p, seed=3):
    from mutagen.flac import FLAC

    _sf_write(p, music(seed=seed + ctx.seed, dur=D), SR, subtype="PCM_16", format="FLAC")
    f = FLAC(p)
    f["title"], f["artist"], f["album"] = "Vorbis Title", "Vorbis Artist", "Vorbis Album"
    f.save()


def _flac_id3_prefixed(ctx, p):
    from mutagen.id3 import ID3, TALB, TIT2, TPE1

    clean = os.path.join(ctx.work, "clean.flac")
    _flac_clean(ctx, clean)
    id3 = ID3()
    id3.add(TIT2(encoding=3, text="ID3 Title"))
    id3.add(TPE1(encoding=3, text="ID3 Artist"))
    id3.add(TALB(encoding=3, text="ID3 Album"))
    tmp = os.path.join(ctx.work, "id3only.bin")
    open(tmp, "wb").close()
    id3.save(tmp, v2_version=3, padding=lambda info: 1024)
    with open(tmp, "rb") as a, open(clean, "rb") as b:
        _write_bytes(p, a.read() + b.read())
    os.remove(tmp)
    os.remove(clean)


def _flac_total_samples_0(ctx, p):
    from mutagen.flac import FLAC

    _sf_write(p, music(seed=4 + ctx.seed, dur=D), SR, subtype="PCM_16", format="FLAC")
    f = FLAC(p)
    f["title"], f["artist"] = "Unknown Length", "Stream Encoder"
    f.save()
    with open(p, "r+b") as fh:
        assert fh.read(4) == b"fLaC"
        fh.seek(8 + 10)
        (v,) = struct.unpack(">Q", fh.read(8))
        v &= ~((1 << 36) - 1)  # total samples := 0 (unknown)
        fh.seek(8 + 10)
        fh.write(struct.pack(">Q", v))
        fh.write(b"\x00" * 16)  # MD5 unknown too


def _flac_song(seed, dur=D, sr=SR, subtype="PCM_16", **kw):
    def build(ctx, p):
        _sf_write(p, music(seed=seed + ctx.seed, dur=dur, sr=sr, **kw), sr, subtype=subtype, format="FLAC")
    return build


def _bytes_file(data: bytes):
    def build(ctx, p):
        _write_bytes(p, data)
    return build


def _silence(ctx, p):
    _sf_write(p, np.zeros((int(D * SR), 2), np.float32), SR, subtype="PCM_16", format="FLAC")


def _hiss(ctx, p):
    rng = np.random.default_rng(7 + ctx.seed)
    _sf_write(p, (rng.standard_normal((int(D * SR), 2)) * 10 ** (-90 / 20)).astype(np.float32), SR,
              subtype="PCM_24", format="FLAC")


def _three_then_silence(ctx, p):
    y = np.zeros((40 * SR, 2), np.float32)
    y[: 3 * SR] = music(seed=70 + ctx.seed, dur=3.0)
    _sf_write(p, y, SR, subtype="PCM_16", format="FLAC")


def _header_only_wav(ctx, p):
    _write_bytes(p, _wav_bytes(np.zeros(0, np.int16), 16000))


def _one_sample_wav(ctx, p):
    _write_bytes(p, _wav_bytes(np.array([16], np.int16), 16000))


def _chained(parts):
    def build(ctx, p):
        blobs = []
        for i, (dur, sr, ch, serial) in enumerate(parts):
            ogg = os.path.join(ctx.work, f"part{i}.ogg")
            _ffmpeg(ctx, music(seed=90 + i + ctx.seed, dur=dur, sr=sr, channels=ch), sr, ogg,
                    "-c:a", "libvorbis", "-q:a", "4", "-serial_offset", str(serial))
            blobs.append(_read(ogg))
            os.remove(ogg)
        _write_bytes(p, b"".join(blobs))
    return build


def _alac(bits, tagged):
    def build(ctx, p):
        meta = ["-metadata", "title=Lossless Song", "-metadata", "artist=Apple Artist", "-metadata", "album=ALAC Album",
                "-metadata", "date=2011", "-metadata", "track=3/9"] if tagged else []
        os.makedirs(os.path.dirname(p), exist_ok=True)
        src = os.path.join(ctx.work, "src.wav")
        _sf_write(src, music(seed=10 + ctx.seed, dur=D), SR, subtype=f"PCM_{bits}")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, "-c:a", "alac", "-fflags", "+bitexact",
                        "-map_metadata", "-1", *meta, p], check=True)
        os.remove(src)
    return build


def _encoded(seed, *args, dur=D, sr=SR, channels=2, trim_s=0.0, bpm=120.0):
    def build(ctx, p):
        y = music(seed=seed + ctx.seed, dur=dur, sr=sr, channels=channels, bpm=bpm)
        _ffmpeg(ctx, y[int(trim_s * sr):], sr, p, *args)
    return build


def _truncated(encode_args, ext, fraction=0.6, seed=17):
    def build(ctx, p):
        full = os.path.join(ctx.work, "full." + ext)
        if ext == "flac":
            _sf_write(full, music(seed=seed + ctx.seed, dur=D), SR, subtype="PCM_16", format="FLAC")
        else:
            _ffmpeg(ctx, music(seed=seed + ctx.seed, dur=D), SR, full, *encode_args)
        data = _read(full)
        os.remove(full)
        _write_bytes(p, data[: int(len(data) * fraction)])
    return build


def _mp3_garbage_middle(ctx, p):
    """A CBR MP3 with 16 KiB of junk (no 0xFF byte: no false frame sync) spliced in at half."""
    full = os.path.join(ctx.work, "full.mp3")
    _ffmpeg(ctx, music(seed=22 + ctx.seed, dur=D), SR, full, "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0")
    data = _read(full)
    os.remove(full)
    junk = np.random.default_rng(22).integers(0, 255, 16384, dtype=np.uint8).tobytes()
    mid = len(data) // 2
    _write_bytes(p, data[:mid] + junk + data[mid:])


def _wav_unfilled(size_value):
    def build(ctx, p):
        y = _i16(music(seed=21 + ctx.seed, dur=D))
        _write_bytes(p, _wav_bytes(y, SR, riff_size=size_value, data_size=size_value))
    return build


def _wav_riff_info(ctx, p):
    y = _i16(music(seed=24 + ctx.seed, dur=D))
    _write_bytes(p, _wav_bytes(y, SR, extra_chunks=_riff_info(INAM="Info Title", IART="Info Artist",
                                                                IPRD="Info Album", IGNR="Jazz")))


def _aiff_id3(ctx, p):
    from mutagen.aiff import AIFF
    from mutagen.id3 import TALB, TIT2, TPE1

    _sf_write(p, music(seed=25 + ctx.seed, dur=D), SR, subtype="PCM_16", format="AIFF")
    a = AIFF(p)
    a.add_tags()
    a.tags.add(TIT2(encoding=3, text="Aiff Title"))
    a.tags.add(TPE1(encoding=3, text="Aiff Artist"))
    a.tags.add(TALB(encoding=3, text="Aiff Album"))
    a.save()


def _multi_artist(ctx, p):
    from mutagen.flac import FLAC

    _sf_write(p, music(seed=26 + ctx.seed, dur=D), SR, subtype="PCM_16", format="FLAC")
    f = FLAC(p)
    f["artist"] = ["Artist One", "Artist Two"]
    f["genre"] = ["Rock", "Pop"]
    f["title"], f["album"], f["albumartist"] = "Duet", "Together", "Various Artists"
    f["tracknumber"], f["discnumber"] = "3/12", "2/2"
    f.save()


def _pcm_variant(variant):
    def build(ctx, p):
        y = music(seed=20 + ctx.seed, dur=D)
        if variant == "ref":
            _sf_write(p, y, SR, subtype="PCM_16")
        elif variant == "u8":
            _sf_write(p, y, SR, subtype="PCM_U8")
        elif variant == "ext51":
            _ffmpeg(ctx, np.concatenate([y, y, y * 0.5], axis=1), SR, p, "-c:a", "pcm_s24le", src_subtype="FLOAT")
        elif variant == "f32x4":
            _ffmpeg(ctx, y * 4.0, SR, p, "-c:a", "pcm_f32le", src_subtype="DOUBLE")
        elif variant == "f64":
            _ffmpeg(ctx, y, SR, p, "-c:a", "pcm_f64le", src_subtype="DOUBLE")
        elif variant == "aiff24":
            _sf_write(p, y, SR, subtype="PCM_24", format="AIFF")
        elif variant == "sowt":
            _ffmpeg(ctx, y, SR, p, "-c:a", "pcm_s16le", "-f", "aiff")
        elif variant == "aifc_f32":
            _ffmpeg(ctx, y, SR, p, "-c:a", "pcm_f32be", "-f", "aiff", src_subtype="DOUBLE")
        elif variant == "dc_clip":
            _sf_write(p, np.clip(y * 3.0 + 0.4, -1, 1), SR, subtype="PCM_16")
        else:  # pragma: no cover
            raise ValueError(variant)
    return build


def _cafe(ctx, p):
    from mutagen.flac import FLAC

    _sf_write(p, music(seed=150 + ctx.seed, dur=D_REC, bpm=124), SR, subtype="PCM_16", format="FLAC")
    f = FLAC(p)
    f["artist"], f["album"], f["title"] = "Band X", "Studio Album", "Caf\u00e9 Song"
    f.save()


def _cafe_copy(kind):
    def build(ctx, p):
        y = music(seed=150 + ctx.seed, dur=D_REC, bpm=124)
        if kind == "mp3":
            _ffmpeg(ctx, y, SR, p, "-c:a", "libmp3lame", "-b:a", "192k")
            from mutagen.easyid3 import EasyID3

            t = EasyID3()
            t["artist"], t["album"], t["title"] = "Band X", "Best Of", "Caf\u00e9 Song"
            t.save(p)
        elif kind == "trimmed":  # a radio edit: the first 3 s cut, Ogg Vorbis at q3
            _ffmpeg(ctx, y[3 * SR:], SR, p, "-c:a", "libvorbis", "-q:a", "3")
        else:  # a byte-identical copy under the NFD spelling of the same name
            src = p.replace(unicodedata.normalize("NFD", "Caf\u00e9"), "Caf\u00e9")
            shutil.copyfile(src, p)
    return build


def _symlink(target_rel_to_link):
    def build(ctx, p):
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.symlink(target_rel_to_link, p)
    return build


def _remote_album(ctx, p):
    """``p`` is music/18 symlinks/Remote Album/01 Remote.flac: write the album under
    outside/ and link the album folder into music/."""
    album = os.path.join(ctx.outside, "Remote Album")
    _sf_write(os.path.join(album, "01 Remote.flac"), music(seed=181 + ctx.seed, dur=D), SR,
              subtype="PCM_16", format="FLAC")
    _sf_write(os.path.join(album, "02 Remote.flac"), music(seed=182 + ctx.seed, dur=D, bpm=125), SR,
              subtype="PCM_16", format="FLAC")
    link = os.path.dirname(p)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(os.path.relpath(album, os.path.dirname(link)), link)


def _text_as_mp3(ctx, p):
    _write_bytes(p, ("Track list\n" + "01 Intro\n02 Song\n" * 40).encode())


# ------------------------------------------------------------------ the corpus
def _I(d, **kw):
    return Expect("indexed", duration_s=d, **kw)


_EMPTY = r"empty|no (audio|samples|sound)|0 bytes|zero|nothing to (decode|analy[sz]e)|too short"
_NOT_AUDIO = (r"not (an? )?(audio|music|sound)|unrecogni[sz]ed|unknown (file )?format|not a known|"
              r"cannot (be )?(decode|read|open)|could not (be )?(decode|read|open)|unsupported|no audio|corrupt|invalid")


#: Oddity name -> recording label (see :class:`Oddity`); names not listed hold no music.
_RECORDINGS = {
    "01": ["mp3-2MB-cover-art", "mp3-no-art"], "02": ["mp3-vbr-no-xing", "mp3-vbr-xing"],
    "03": ["flac-id3-prefix", "flac-clean"], "04": ["flac-total-samples-0"], "05a": ["non-utf8-name"],
    "05b": ["utf8-neighbour"], "06": ["mac-real-song"], "07a": ["3s-music-37s-silence"], "07b": ["normal-song"],
    "08": ["good-wav"], "09": ["chained-ogg-2-links", "chained-ogg-3-links-22k-mono"],
    "10": ["alac-m4a", "alac-24bit-m4a"], "11": ["flac-192k-24bit", "flac-88k2-24bit", "flac-22k05", "flac-11k025"],
    "12": ["wav-mono-8k"], "14": ["adts-aac-named-m4a", "mp4-aac-named-mp3", "mp3-named-flac", "vorbis-named-wav"],
    "15": ["cafe-song-flac", "cafe-song-nfd-twin", "cafe-song-mp3", "cafe-song-trimmed-ogg"],
    "15b": ["sound-alike-song"], "15c": ["other-band-song-a"], "15d": ["other-band-song-b"],
    "17": ["opus-intact", "ogg-vorbis-cut-60pc", "opus-cut-60pc", "flac-cut-60pc", "mp3-cut-60pc"],
    "18a": ["symlinked-album", "file-symlink-to-same"], "18b": ["local-song"],
    "20": ["wav-16bit-ref", "wav-8bit-unsigned", "wav-extensible-5.1-24bit", "wav-float32-peak-2.0", "wav-float64",
           "aiff-24bit", "aifc-sowt", "aifc-float32", "wav-dc-offset-clipped"],
    "21": ["wav-data-size-0xFFFFFFFF", "wav-data-size-0"], "22": ["mp3-garbage-in-middle"],
    "24a": ["wav-riff-info-tags"], "24b": ["aiff-id3-chunk"], "24c": ["multi-valued-artist"],
    "25a": ["upper-case-MP3"], "25b": ["upper-case-FLAC"],
}


def oddities() -> list[Oddity]:
    """The corpus, in build order (an oddity may rely on one listed before it)."""
    label = {n: r for r, names in _RECORDINGS.items() for n in names}
    return [dataclasses.replace(o, recording=label.get(o.name)) for o in _oddities()]


def _oddities() -> list[Oddity]:
    ff = ("ffmpeg",)
    cafe_nfc = "15 same recording/Band X/Studio Album/01 Caf\u00e9 Song.flac"
    cafe_nfd = unicodedata.normalize("NFD", cafe_nfc)
    nonutf8 = b"05 non-utf8 names/Some Album/02 Band \x96 Song.flac"
    tags01 = {"artist": "Test Artist", "title": "Cover Test", "album": "Artwork Album"}
    O = Oddity
    return [
        # 01 huge cover art
        O("mp3-2MB-cover-art", "tags: huge ID3", "01 mp3 cover art/big-art.mp3",
          lambda c, p: _mp3_with_id3(c, p, art_bytes=2_000_000),
          _I(D, tags=tags01, twin=("mp3-no-art", 0.99)), "01", ff),
        O("mp3-no-art", "control", "01 mp3 cover art/no-art.mp3", lambda c, p: _mp3_with_id3(c, p, art_bytes=0),
          _I(D, tags=tags01), "01", ff),
        # 02 VBR without Xing
        O("mp3-vbr-no-xing", "length: header lies", "02 vbr mp3/vbr-no-xing.mp3", lambda c, p: _vbr(c, p, xing="0"),
          _I(DECODED, twin=("mp3-vbr-xing", 0.98)), "02", ff),
        O("mp3-vbr-xing", "control", "02 vbr mp3/vbr-with-xing.mp3", lambda c, p: _vbr(c, p, xing="1"),
          _I(16.0), "02", ff),
        # 03 ID3 in front of fLaC
        O("flac-id3-prefix", "tags: ID3 before fLaC", "03 flac id3/id3-prefixed.flac", _flac_id3_prefixed,
          _I(D, tags={"title": ("Vorbis Title", "ID3 Title"), "artist": ("Vorbis Artist", "ID3 Artist")},
             twin=("flac-clean", 0.99)), "03"),
        O("flac-clean", "control", "03 flac id3/clean.flac", _flac_clean,
          _I(D, tags={"title": "Vorbis Title", "artist": "Vorbis Artist", "album": "Vorbis Album"}), "03"),
        # 04 total_samples 0
        O("flac-total-samples-0", "length: header says nothing", "04 flac unknown length/streamed.flac",
          _flac_total_samples_0, _I(D, tags={"title": "Unknown Length", "artist": "Stream Encoder"}), "04"),
        # 05 non-UTF-8 name
        O("non-utf8-name", "file name", nonutf8, _flac_song(50, bpm=120), _I(D), "05"),
        O("utf8-neighbour", "control", "05 non-utf8 names/Some Album/01 Intro.flac", _flac_song(51, bpm=100),
          _I(D), "05"),
        # 06 a Mac has visited
        O("mac-real-song", "control", "06 mac share/Album/01 Song.mp3",
          _encoded(60, "-c:a", "libmp3lame", "-b:a", "160k"), _I(D), "06", ff),
        O("appledouble-folder", "OS metadata", "06 mac share/Album/.AppleDouble/01 Song.mp3",
          _bytes_file(_appledouble()), Expect("skipped"), "06"),
        O("dot-underscore", "OS metadata", "06 mac share/Album/._01 Song.mp3", _bytes_file(_appledouble()),
          Expect("skipped"), "06"),
        O("macosx-folder", "OS metadata", "06 mac share/__MACOSX/Album/._01 Song.mp3", _bytes_file(_appledouble()),
          Expect("skipped"), "06"),
        O("ds-store", "OS metadata", "06 mac share/Album/.DS_Store", _bytes_file(b"\x00\x00\x00\x01Bud1" + b"\0" * 2048),
          Expect("skipped")),
        O("thumbs-db", "OS metadata", "06 mac share/Album/Thumbs.db", _bytes_file(b"\xd0\xcf\x11\xe0" + b"\0" * 1024),
          Expect("skipped")),
        O("hidden-folder", "OS metadata", "26 hidden/.stash/hidden song.flac", _flac_song(27), Expect("skipped")),
        # 07 silence
        O("digital-silence", "silence", "07 silence/00 silence.flac", _silence,
          Expect("flagged", duration_s=D, flag="silent"), "07"),
        O("hiss-90dBFS", "silence", "07 silence/01 hiss -90dBFS.flac", _hiss,
          Expect("flagged", duration_s=D, flag="inaudible"), "07"),
        O("3s-music-37s-silence", "silence", "07 silence/02 three seconds then silence.flac", _three_then_silence,
          _I(40.0), "07"),
        O("normal-song", "control", "07 silence/03 normal song.flac", _flac_song(71), _I(D), "07"),
        # 08 empty files
        O("header-only-wav", "empty", "08 empty wav/empty.wav", _header_only_wav,
          Expect("failed", reason=_EMPTY), "08"),
        O("one-sample-wav", "empty", "08 empty wav/one-sample.wav", _one_sample_wav,
          Expect("either", duration_s=1 / 16000, reason=_EMPTY), "08"),
        O("good-wav", "control", "08 empty wav/good.wav",
          lambda c, p: _sf_write(p, music(seed=8 + c.seed, dur=D), SR, subtype="PCM_16"), _I(D), "08"),
        O("zero-byte-file", "empty", "08 empty wav/zero.mp3", _bytes_file(b""), Expect("failed", reason=_EMPTY)),
        O("text-named-mp3", "not audio", "23 not audio/tracklist.mp3", _text_as_mp3,
          Expect("failed", reason=_NOT_AUDIO)),
        # 09 chained Ogg
        O("chained-ogg-2-links", "length: chained Ogg", "09 chained ogg/chained-5s+7s.ogg",
          _chained([(5.0, SR, 2, 1000), (7.0, SR, 2, 2000)]), _I(12.0), "09", ff),
        O("chained-ogg-3-links-22k-mono", "length: chained Ogg", "09 chained ogg/chained-5s+7s+4s-22k-mono.ogg",
          _chained([(5.0, SR, 2, 1000), (7.0, SR, 2, 2000), (4.0, 22050, 1, 3000)]), _I(16.0), "09", ff),
        # 10 ALAC
        O("alac-m4a", "codec: ALAC", "10 alac/alac.m4a", _alac(16, True),
          _I(D, tags={"artist": "Apple Artist", "title": "Lossless Song", "album": "ALAC Album", "year": 2011,
                      "track_no": 3}, twin=("alac-24bit-m4a", 0.99)), "10", ff),
        O("alac-24bit-m4a", "codec: ALAC", "10 alac/alac-24bit.m4a", _alac(24, False), _I(D), "10", ff),
        # 11 sample rates
        O("flac-192k-24bit", "sample rate", "11 sample rates/song-192000Hz.flac",
          _flac_song(11, sr=192000, subtype="PCM_24"), _I(D, tempo=(120.0, 2.0)), "11"),
        O("flac-88k2-24bit", "sample rate", "11 sample rates/song-88200Hz.flac",
          _flac_song(11, sr=88200, subtype="PCM_24"),
          _I(D, tempo=(120.0, 2.0), twin=("flac-192k-24bit", 0.95), same_key_as="flac-192k-24bit"), "11"),
        O("flac-22k05", "sample rate", "11 sample rates/song-22050Hz.flac", _flac_song(11, sr=22050),
          _I(D, tempo=(120.0, 2.0), twin=("flac-192k-24bit", 0.95), same_key_as="flac-192k-24bit"), "11"),
        O("flac-11k025", "sample rate", "11 sample rates/song-11025Hz.flac", _flac_song(11, sr=11025),
          _I(D, tempo=(120.0, 2.0), twin=("flac-192k-24bit", 0.95), same_key_as="flac-192k-24bit"), "11"),
        O("wav-mono-8k", "sample rate", "11 sample rates/mono-8000Hz.wav",
          lambda c, p: _sf_write(p, music(seed=12 + c.seed, dur=D, sr=8000, channels=1), 8000, subtype="PCM_16"),
          _I(D)),
        # 14 extension lies
        O("adts-aac-named-m4a", "extension lies", "14 extension lies/adts-aac-named.m4a",
          _encoded(14, "-c:a", "aac", "-b:a", "128k", "-f", "adts"), _I(DECODED), "14", ff),
        O("mp4-aac-named-mp3", "extension lies", "14 extension lies/mp4-aac-named.mp3",
          _encoded(14, "-c:a", "aac", "-b:a", "128k", "-f", "mp4"), _I(D), "14", ff),
        O("mp3-named-flac", "extension lies", "14 extension lies/mp3-named.flac",
          _encoded(14, "-c:a", "libmp3lame", "-b:a", "160k", "-f", "mp3"), _I(D), "14", ff),
        O("vorbis-named-wav", "extension lies", "14 extension lies/vorbis-named.wav",
          _encoded(14, "-c:a", "libvorbis", "-q:a", "4", "-f", "ogg"), _I(D), "14", ff),
        # 15 the same recording twice (+ 19: run-to-run, order)
        O("cafe-song-flac", "same recording", cafe_nfc, _cafe,
          _I(D_REC, tags={"artist": "Band X", "album": "Studio Album", "title": "Caf\u00e9 Song"}), "15"),
        O("cafe-song-nfd-twin", "file name", cafe_nfd, _cafe_copy("nfd"),
          _I(D_REC, same_recording_as="cafe-song-flac"), "15"),
        O("cafe-song-mp3", "same recording", "15 same recording/Band X/Best Of/05 Caf\u00e9 Song.mp3",
          _cafe_copy("mp3"), _I(D_REC, same_recording_as="cafe-song-flac", twin=("cafe-song-flac", 0.98)), "15", ff),
        O("cafe-song-trimmed-ogg", "same recording", "15 same recording/Band X/Best Of/06 Caf\u00e9 Song (edit).ogg",
          _cafe_copy("trimmed"), _I(D_REC - 3.0, same_recording_as="cafe-song-flac"), None, ff),
        O("sound-alike-song", "control", "15 same recording/Band X/Studio Album/02 Song 2.flac",
          _flac_song(151, dur=D_REC, bpm=124), _I(D_REC), "15"),
        O("other-band-song-a", "control", "15 same recording/Band Y/Other Album/04 Song 4.flac",
          _flac_song(153, dur=D_REC, bpm=90, bright=0.5), _I(D_REC), "15"),
        O("other-band-song-b", "control", "15 same recording/Band Y/Other Album/05 Song 5.flac",
          _flac_song(154, dur=D_REC, bpm=140, bright=2.0), _I(D_REC), "15"),
        # 17 truncated (and our own FLAC/MP3 cuts)
        O("opus-intact", "control", "17 truncated/intact.opus", _encoded(17, "-c:a", "libopus", "-b:a", "96k"),
          _I(D), "17", ff),
        O("ogg-vorbis-cut-60pc", "truncated", "17 truncated/truncated-60pc.ogg",
          _truncated(["-c:a", "libvorbis", "-q:a", "4"], "ogg"), _I(DECODED), "17", ff),
        O("opus-cut-60pc", "truncated", "17 truncated/truncated-60pc.opus",
          _truncated(["-c:a", "libopus", "-b:a", "96k"], "opus"), _I(DECODED), "17", ff),
        O("flac-cut-60pc", "truncated", "17 truncated/truncated-60pc.flac", _truncated([], "flac"),
          _I(DECODED), None),
        O("mp3-cut-60pc", "truncated", "17 truncated/truncated-60pc.mp3",
          _truncated(["-c:a", "libmp3lame", "-b:a", "128k"], "mp3"), _I(DECODED), None, ff),
        # 18 symbolic links
        O("symlinked-album", "symlink", "18 symlinks/Remote Album/01 Remote.flac", _remote_album, _I(D), "18",
          ("symlink",)),
        O("local-song", "control", "18 symlinks/Local Album/01 Local.flac", _flac_song(180), _I(D), "18"),
        O("file-symlink-to-same", "symlink", "18 symlinks/Local Album/02 Linked file.flac",
          _symlink("../Remote Album/01 Remote.flac"), Expect("once", alias_of="symlinked-album"), "18",
          ("symlink",)),
        O("symlink-loop", "symlink", "18 symlinks/Local Album/loop", _symlink(".."), Expect("loop"), "18",
          ("symlink",)),
        # 20 PCM variants
        O("wav-16bit-ref", "control", "20 pcm variants/ref-16bit.wav", _pcm_variant("ref"), _I(D), "20"),
        O("wav-8bit-unsigned", "PCM variant", "20 pcm variants/u8.wav", _pcm_variant("u8"),
          _I(D, twin=("wav-16bit-ref", 0.98)), "20"),
        O("wav-extensible-5.1-24bit", "PCM variant", "20 pcm variants/ext-24bit-6ch.wav", _pcm_variant("ext51"),
          _I(D, twin=("wav-16bit-ref", 0.98)), "20", ff),
        O("wav-float32-peak-2.0", "PCM variant", "20 pcm variants/float32-over-0dBFS.wav", _pcm_variant("f32x4"),
          _I(D, louder_than=("wav-16bit-ref", 12.04, 1.0)), "20", ff),
        O("wav-float64", "PCM variant", "20 pcm variants/float64.wav", _pcm_variant("f64"),
          _I(D, twin=("wav-16bit-ref", 0.99)), "20", ff),
        O("aiff-24bit", "PCM variant", "20 pcm variants/24bit.aiff", _pcm_variant("aiff24"),
          _I(D, twin=("wav-16bit-ref", 0.99)), "20"),
        O("aifc-sowt", "PCM variant", "20 pcm variants/sowt.aifc", _pcm_variant("sowt"),
          _I(D, twin=("wav-16bit-ref", 0.99)), "20", ff),
        O("aifc-float32", "PCM variant", "20 pcm variants/float32.aifc", _pcm_variant("aifc_f32"),
          _I(D, twin=("wav-16bit-ref", 0.99)), "20", ff),
        O("wav-dc-offset-clipped", "PCM variant", "20 pcm variants/dc-offset-clipped.wav", _pcm_variant("dc_clip"),
          _I(D), "20"),
        # WAV headers that were never filled in (a recorder killed mid-write)
        O("wav-data-size-0xFFFFFFFF", "length: header lies", "21 wav headers/unfilled-ffffffff.wav",
          _wav_unfilled(0xFFFFFFFF), _I(D)),
        O("wav-data-size-0", "length: header lies", "21 wav headers/unfilled-zero.wav", _wav_unfilled(0), _I(D)),
        # damaged MP3
        O("mp3-garbage-in-middle", "length: decoder stops early", "22 damaged mp3/garbage-in-middle.mp3",
          _mp3_garbage_middle, _I(D), None, ff),
        # tags
        O("wav-riff-info-tags", "tags", "24 tags/riff-info.wav", _wav_riff_info,
          _I(D, tags={"title": "Info Title", "artist": "Info Artist", "album": "Info Album"})),
        O("aiff-id3-chunk", "tags", "24 tags/id3-chunk.aiff", _aiff_id3,
          _I(D, tags={"title": "Aiff Title", "artist": "Aiff Artist", "album": "Aiff Album"})),
        O("multi-valued-artist", "tags", "24 tags/duet.flac", _multi_artist,
          _I(D, tags={"artist": re.compile(r"Artist One.*Artist Two"), "title": "Duet", "track_no": 3,
                      "album_artist": "Various Artists", "disc_no": 2})),
        # names
        O("upper-case-MP3", "file name", "25 names/LOUD SONG.MP3",
          _encoded(28, "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"), _I(D), None, ff),
        O("upper-case-FLAC", "file name", "25 names/Other Song.FLAC", _flac_song(29), _I(D)),
    ]


def same_recording_groups(built: list[Built]) -> dict[str, list[Built]]:
    """original name -> the built copies of that recording (``same_recording_as``)."""
    out: dict = {}
    for b in built:
        if b.expect.same_recording_as:
            out.setdefault(b.expect.same_recording_as, []).append(b)
    return out


def _missing_needs(needs) -> str | None:
    for n in needs:
        if n == "ffmpeg" and shutil.which("ffmpeg") is None:
            return "ffmpeg is not installed"
        if n == "symlink" and not hasattr(os, "symlink"):
            return "no symbolic links on this system"
    return None


def build_corpus(dest, *, seed: int = 0, only=None) -> tuple[list[Built], dict]:
    """Write the corpus under ``dest`` (see the module docstring).

    Parameters
    ----------
    dest : path-like
        A new or empty folder.
    seed : int
        Added to every audio seed (another copy of the corpus, other audio).
    only : set of str, optional
        Names of the oddities to build (default all).

    Returns
    -------
    built : list of Built
        In build order.
    left_out : dict of str to str
        Oddity name -> why it was not built (a missing tool, a file system that
        refuses the name).
    """
    dest = os.fspath(dest)
    ctx = _Ctx(os.path.join(dest, "music"), os.path.join(dest, "outside"), os.path.join(dest, "_work"), seed)
    for d in (ctx.root, ctx.outside, ctx.work):
        os.makedirs(d, exist_ok=True)
    built, left_out = [], {}
    for o in oddities():
        if only is not None and o.name not in only:
            continue
        why = _missing_needs(o.needs)
        if why:
            left_out[o.name] = why
            continue
        if isinstance(o.rel, bytes):
            path = os.fsdecode(os.path.join(os.fsencode(ctx.root), o.rel))
        else:
            path = os.path.join(ctx.root, o.rel)
        try:
            o.build(ctx, path)
        except OSError as e:  # e.g. a file system that refuses non-UTF-8 names
            left_out[o.name] = f"cannot be written here ({e.strerror or e})"
            continue
        dur = o.expect.duration_s
        if dur == DECODED:
            dur = true_duration(path)
        built.append(Built(o, path, dur))
    shutil.rmtree(ctx.work, ignore_errors=True)
    return built, left_out


# ----------------------------------------------------------------- observation
#: Internal exception type names, tracebacks, NaN/Infinity: never in a reason shown to a user.
_INTERNAL = re.compile(r"Traceback|\b\w*(Error|Exception)\b|Errno|<\w[\w.]* object at|^\w+: ")
_NUMERIC_JUNK = re.compile(r"\bnan\b|\binf(inity)?\b", re.I)


def plain_reason_problems(reason) -> list[str]:
    """Why ``reason`` is not a plain-language reason (empty list: it is)."""
    if not isinstance(reason, str) or not reason.strip():
        return [f"empty reason {reason!r}"]
    out = []
    m = _INTERNAL.search(reason)
    if m:
        out.append(f"reason shows internal text {m.group(0)!r}: {reason!r}")
    m = _NUMERIC_JUNK.search(reason)
    if m:
        out.append(f"reason shows {m.group(0)!r}: {reason!r}")
    return out


@dataclasses.dataclass
class Observed:
    """What an index holds, read once (``rec`` is the :class:`recommender.Recommender`)."""

    rec: object
    tracks: object            # DataFrame indexed by id
    by_path: dict             # path -> id
    by_real: dict             # realpath -> [ids]
    failures: dict            # path -> reason
    descriptors: object       # DataFrame indexed by track id
    embeddings: dict          # id -> (d,) float32

    def track_id(self, path):
        tid = self.by_path.get(path)
        if tid is None:
            ids = self.by_real.get(os.path.realpath(path), [])
            tid = ids[0] if len(ids) == 1 else None
        return tid


def observe(rec) -> Observed:
    """Read tracks, failures, descriptors and embeddings of ``rec``'s index."""
    tracks = rec.tracks()
    by_path = {p: int(i) for i, p in zip(tracks.index, tracks["path"])}
    by_real: dict = {}
    for p, i in by_path.items():
        by_real.setdefault(os.path.realpath(p), []).append(i)
    fails = rec.failures()
    failures = {p: r for p, r in zip(fails["path"], fails["reason"])}
    desc = rec.catalog.descriptors()
    ids, X = rec.catalog.vectors("embedding")
    return Observed(rec, tracks, by_path, by_real, failures, desc, {int(i): x for i, x in zip(ids, X)})


def _isna(v):
    try:
        import pandas as pd

        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _desc(obs, tid, col):
    """A stored descriptor value, ``None`` when absent, NULL or NaN."""
    if tid is None or tid not in obs.descriptors.index or col not in obs.descriptors.columns:
        return None
    v = obs.descriptors.at[tid, col]
    return None if v is None or _isna(v) else v


def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def outcome(b: Built, obs: Observed) -> str:
    """What happened to ``b`` in one line: ``indexed 10.00 s [flag]``, ``failed: reason``, ``skipped``."""
    if b.expect.kind == "once":
        n = len(obs.by_real.get(os.path.realpath(b.path), []))
        return (("indexed under this path" if b.path in obs.by_path else "not indexed under this path")
                + f"; its file is {n} track(s)")
    if b.expect.kind == "loop":
        n = len(_through(b, obs))
        return "not followed" if not n else f"{n} track(s) indexed through the loop"
    tid = obs.track_id(b.path)
    fail = obs.failures.get(b.path)
    if tid is not None:
        row = obs.tracks.loc[tid]
        flag = row["audio_flag"] if "audio_flag" in obs.tracks.columns else "?"
        d = row["duration_s"]
        s = f"indexed {float(d):.2f} s" if d is not None and not _isna(d) else "indexed (no duration)"
        if flag is not None and not _isna(flag):
            s += f", flag {flag}"
        return s + (f" (and failed: {fail})" if fail else "")
    if fail is not None:
        return f"failed: {fail}"
    return "skipped"


def _through(b, obs):
    """Track paths that go through the symlink ``b.path`` (a loop)."""
    return [p for p in obs.by_path if p.startswith(b.path + os.sep)]


def _by_name(built):
    return {x.name: x for x in built}


def check(b: Built, obs: Observed, built: list[Built]) -> list[str]:
    """Problems with ``b``'s outcome in ``obs`` against its :class:`Expect` (empty: right)."""
    e = b.expect
    names = _by_name(built)
    tid = obs.track_id(b.path)
    fail = obs.failures.get(b.path)
    probs: list[str] = []
    if e.kind == "skipped":
        if tid is not None:
            probs.append("indexed as a track, but it is not music")
        if fail is not None:
            probs.append(f"recorded as a failure ({fail!r}), but it should be skipped quietly")
        return probs
    if e.kind == "loop":
        through = _through(b, obs)
        if through:
            probs.append(f"{len(through)} track(s) indexed through the loop, e.g. {through[0]!r}")
        dup = {r: ids for r, ids in obs.by_real.items() if len(ids) > 1}
        if dup:
            probs.append(f"{len(dup)} file(s) indexed more than once through links")
        return probs
    if e.kind == "once":
        other = names.get(e.alias_of)
        paths = [b.path] + ([other.path] if other else [])
        n = sum(p in obs.by_path for p in paths)
        if n != 1:
            probs.append(f"{n} tracks for one file reached by {len(paths)} paths (want exactly 1)")
        if fail is not None:
            probs.append(f"recorded as a failure: {fail!r}")
        return probs
    if e.kind == "failed" or (e.kind == "either" and tid is None):
        if tid is not None:
            probs.append(f"indexed ({outcome(b, obs)}) but it should be a clean failure")
        if fail is None:
            probs.append("no failure recorded for this path (it must be named in failures)")
        else:
            probs += plain_reason_problems(fail)
            if e.reason and not re.search(e.reason, fail, re.I):
                probs.append(f"reason {fail!r} does not say /{e.reason}/")
        return probs
    # indexed / flagged
    if tid is None:
        probs.append(f"not indexed ({outcome(b, obs)})")
        return probs
    if fail is not None:
        probs.append(f"both a track and a failure ({fail!r})")
    row = obs.tracks.loc[tid]
    d = row["duration_s"]
    if d is None or _isna(d) or not math.isfinite(float(d)):
        probs.append(f"duration {d!r} is not a number")
        return probs
    d = float(d)
    if b.duration_s is not None and abs(d - b.duration_s) > tolerance(b.duration_s):
        probs.append(f"duration {d:.3f} s, true length {b.duration_s:.3f} s (±{tolerance(b.duration_s):.2f})")
    probs += _check_windows(obs, tid, d)
    probs += _check_flag(e, obs, row, tid)
    probs += _check_tags(e, row)
    probs += _check_twins(e, obs, tid, names)
    return probs


def _check_windows(obs, tid, d):
    from recommender.features import PATCH_SECONDS

    try:
        starts = np.asarray(obs.rec.catalog.patch_vectors(tid)["starts_s"], dtype=float)
    except Exception as ex:  # noqa: BLE001 - reported as a problem, not raised
        return [f"no analysed windows stored ({type(ex).__name__})"]
    if starts.size == 0:
        return ["no analysed windows stored"]
    bad = starts[(starts < -1e-6) | (starts + PATCH_SECONDS > max(d, PATCH_SECONDS) + 0.05)]
    if not bad.size:
        return []
    return [f"{bad.size} analysed window(s) outside the song (starts {np.round(bad, 2).tolist()}, duration {d:.2f} s)"]


def _check_flag(e, obs, row, tid):
    if "audio_flag" not in obs.tracks.columns:
        return ["the catalog has no audio_flag column"]
    flag = row["audio_flag"]
    flag = None if flag is None or _isna(flag) else flag
    probs = []
    if flag != e.flag:
        probs.append(f"audio_flag {flag!r}, want {e.flag!r}")
    if e.flag:
        for col in ("tempo_bpm", "key"):
            v = _desc(obs, tid, col)
            if v is not None:
                probs.append(f"{e.flag} audio has {col} {v!r} (no tempo or key may be claimed)")
    return probs


def _check_tags(e, row):
    probs = []
    for col, want in (e.tags or {}).items():
        if col not in row.index:
            probs.append(f"no column {col!r} in the catalog")
            continue
        got = row[col]
        got = None if got is None or _isna(got) else got
        if isinstance(want, re.Pattern):
            ok = got is not None and want.search(str(got)) is not None
        elif isinstance(want, tuple):
            ok = got in want
        elif isinstance(want, int):
            ok = got is not None and int(got) == want
        else:
            ok = got == want
        if not ok:
            probs.append(f"tag {col} = {got!r}, want {want.pattern if isinstance(want, re.Pattern) else want!r}")
    return probs


def _check_twins(e, obs, tid, names):
    probs = []
    if e.twin:
        other = names.get(e.twin[0])
        oid = obs.track_id(other.path) if other else None
        if oid is None:
            probs.append(f"twin {e.twin[0]} is not indexed: cannot compare")
        else:
            c = _cos(obs.embeddings[tid], obs.embeddings[oid])
            if c < e.twin[1]:
                probs.append(f"embedding cosine to {e.twin[0]} is {c:.4f} < {e.twin[1]}")
    if e.tempo:
        v = _desc(obs, tid, "tempo_bpm")
        if v is None or abs(float(v) - e.tempo[0]) > e.tempo[1]:
            probs.append(f"tempo {v!r} BPM, want {e.tempo[0]} ± {e.tempo[1]}")
    if e.same_key_as:
        other = names.get(e.same_key_as)
        oid = obs.track_id(other.path) if other else None
        mine = (_desc(obs, tid, "key"), _desc(obs, tid, "mode"))
        theirs = (_desc(obs, oid, "key"), _desc(obs, oid, "mode")) if oid is not None else None
        if mine != theirs or mine[0] is None:
            probs.append(f"key {mine} differs from {e.same_key_as}'s {theirs}")
    if e.louder_than:
        other = names.get(e.louder_than[0])
        oid = obs.track_id(other.path) if other else None
        a, b = _desc(obs, tid, "loudness_db"), (_desc(obs, oid, "loudness_db") if oid is not None else None)
        if a is None or b is None or abs((float(a) - float(b)) - e.louder_than[1]) > e.louder_than[2]:
            probs.append(f"loudness {a!r} dB vs {e.louder_than[0]} {b!r} dB: want +{e.louder_than[1]} "
                         f"± {e.louder_than[2]} dB (samples above 1.0 kept, not clipped)")
    return probs


# ------------------------------------------------------------------- capture
@contextlib.contextmanager
def capture_stderr_and_logs():
    """Capture file descriptor 2 (C libraries, worker processes, tqdm) and every
    log record; yields a dict filled with ``stderr`` (str) and ``records`` on exit."""
    out = {"stderr": "", "records": []}

    class _Keep(logging.Handler):
        def emit(self, record):
            out["records"].append(record)

    root = logging.getLogger()
    h = _Keep(level=logging.DEBUG)
    old_level = root.level
    root.addHandler(h)
    root.setLevel(min(old_level or logging.WARNING, logging.INFO))
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            root.removeHandler(h)
            root.setLevel(old_level)
            tmp.seek(0)
            out["stderr"] = tmp.read().decode("utf-8", "backslashreplace")


def tracebacks(captured) -> list[str]:
    """Tracebacks in what :func:`capture_stderr_and_logs` captured (stderr, or a
    WARNING-or-worse record carrying one); empty list when none."""
    bad = []
    if "Traceback (most recent call last)" in captured["stderr"]:
        i = captured["stderr"].index("Traceback")
        bad.append("stderr: " + captured["stderr"][i:i + 400])
    for r in captured["records"]:
        if r.levelno >= logging.WARNING and (r.exc_info or "Traceback" in r.getMessage()):
            bad.append(f"log {r.name}: {r.getMessage()[:200]} (with a traceback)")
    return bad
