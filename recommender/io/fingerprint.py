"""Acoustic fingerprints: recognise the same recording in another file.

A copy of a recording in another encoding or bitrate, or with a few seconds
trimmed at the start or end, has (almost) the same Chromaprint fingerprint.
This module computes that fingerprint, stores it as bytes, compares two of
them and lists the duplicate pairs of a collection.

Method
------
* **Fingerprint** -- Chromaprint (Lukas Lalinsky, https://acoustid.org/chromaprint),
  computed by its ``fpcalc`` tool (``fpcalc -raw``: the same program and
  command line as pyacoustid's ``acoustid.fingerprint_file(...,
  force_fpcalc=True)``, called directly; see :func:`fingerprint_file` for why).
  The audio is resampled to 11025 Hz mono, analysed in 4096-sample frames
  with a hop of 1365 samples, reduced to 12 chroma bands, and 16 learned
  filters over the chroma image give 2 bits each: one **32-bit
  sub-fingerprint ("item") every 1365 / 11025 = 0.1238 s** (:data:`ITEM_S`).
  :func:`decompress_fingerprint` reads the compressed base64 form that
  ``fpcalc`` prints by default, pyacoustid returns and AcoustID stores.
* **Comparison** -- as AcoustID does it (``acoustid_compare`` in the AcoustID
  server, and Chromaprint's matcher): slide one item sequence over the other,
  and at each offset count the differing bits (popcount of the XOR) over the
  overlap; the offset with the lowest bit error rate ``ber`` is the
  alignment.  Unrelated audio gives ``ber`` ~ 0.5 (coin flips), copies of one
  recording ~ 0.0-0.08.  Items equal to Chromaprint's silence item
  (:data:`SILENCE_ITEM`) in both files are left out, so two files that only
  share digital silence do not match.  :func:`match` scores that alignment
  by the share of items within :data:`ITEM_TOLERANCE_BITS` = 4 bits of each
  other (1 = all, ~0 = unrelated): it separates sound-alikes better than
  ``1 - 2 * ber`` (measured in :func:`compare`); :func:`compare` also
  returns ``ber``, the offset in seconds and the overlap.
* **Duplicate search** -- an inverted index of the exact 32-bit item values,
  as AcoustID's own index (``acoustid-index``) looks up a query: only pairs of
  files that share at least ``min_shared`` distinct item values are aligned.

Measured (``PYTHONPATH=. python benchmarks/bench_duplicates.py``, see
:data:`THRESHOLD`): 24 Debian game-soundtrack recordings x 4 copies (MP3
128 kbit/s, Opus 64 kbit/s, 3-5 s cut at the start, 4 s cut + 3 s fade at the
end) plus 24 synthetic sound-alikes; figures in :func:`same_recording`.

Storage: :func:`fingerprint_to_bytes` / :func:`fingerprint_from_bytes` -- the
raw items as little-endian ``uint32`` (4 bytes per 0.1238 s: ~3.9 kB for the
default 120 s), for a BLOB column; keep ``duration_s`` in its own column.

Requirements: the ``fpcalc`` program (Debian/Ubuntu ``libchromaprint-tools``;
or ``$FPCALC`` naming it); no Python package beyond NumPy.  No network.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import shutil
import subprocess
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._utils import check_int, check_number
from ..errors import AudioError, ParameterError
from .audio import check_file

__all__ = [
    "FPCALC_BATCH",
    "ITEM_S",
    "ITEM_TOLERANCE_BITS",
    "SILENCE_ITEM",
    "THRESHOLD",
    "Fingerprint",
    "Match",
    "compare",
    "decompress_fingerprint",
    "find_duplicate_pairs",
    "fingerprint_available",
    "fingerprint_file",
    "fingerprint_files",
    "fingerprint_from_bytes",
    "fingerprint_to_bytes",
    "match",
    "same_recording",
]

#: Seconds of audio per Chromaprint item: hop of 1365 samples at 11025 Hz.
ITEM_S = 1365 / 11025

#: The item Chromaprint (algorithm 2, fpcalc's default) gives for digital silence.
SILENCE_ITEM = 627964279  # 0x256DF977

#: An aligned item pair counts as "the same" when at most this many of its 32 bits differ.
ITEM_TOLERANCE_BITS = 4

#: Default decision threshold on :func:`match`'s score (see :func:`same_recording`).
THRESHOLD = 0.7

_FPCALC_ENV = "FPCALC"  # the variable pyacoustid reads (acoustid.FPCALC_ENVVAR)


# --------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class Fingerprint:
    """A raw Chromaprint fingerprint.

    Attributes
    ----------
    items : numpy.ndarray, shape (n_items,), dtype uint32
        One 32-bit sub-fingerprint per :data:`ITEM_S` (0.1238 s) of audio,
        from the start of the file.  ``n_items`` ~ ``8.08 * seconds - 18``
        (of the fingerprinted part); 0 for audio too short to fingerprint.
    duration_s : float
        Duration of the whole file in seconds as fpcalc reports it (an
        integer in fpcalc 1.5); ``nan`` when unknown (e.g. read back from bytes).
    algorithm : int
        Chromaprint's algorithm id: 1 = ``TEST2``, what ``fpcalc -algorithm 2`` (its default) computes.
    """

    items: np.ndarray
    duration_s: float = float("nan")
    algorithm: int = 1

    def __post_init__(self):
        a = np.ascontiguousarray(np.asarray(self.items).astype(np.uint32, copy=False)).reshape(-1)
        a.setflags(write=False)
        object.__setattr__(self, "items", a)
        object.__setattr__(self, "duration_s", float(self.duration_s))
        object.__setattr__(self, "algorithm", int(self.algorithm))

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def seconds(self) -> float:
        """Audio span covered by the items, in seconds (``n_items * ITEM_S``)."""
        return len(self) * ITEM_S

    def to_bytes(self) -> bytes:
        """Same as :func:`fingerprint_to_bytes`."""
        return fingerprint_to_bytes(self)


def fingerprint_to_bytes(fp) -> bytes:
    """Items as bytes for storage: little-endian ``uint32``, 4 bytes per item.

    Parameters
    ----------
    fp : Fingerprint or array-like of shape (n_items,)

    Returns
    -------
    bytes
        ``4 * n_items`` bytes (empty for an empty fingerprint).
    """
    items = fp.items if isinstance(fp, Fingerprint) else np.asarray(fp)
    return np.ascontiguousarray(items, dtype="<u4").reshape(-1).tobytes()


def fingerprint_from_bytes(blob, *, duration_s: float = float("nan"), algorithm: int = 1) -> Fingerprint:
    """Inverse of :func:`fingerprint_to_bytes`.

    Parameters
    ----------
    blob : bytes, bytearray or memoryview
        ``4 * n_items`` bytes, little-endian ``uint32``.
    duration_s : float
        Stored separately; kept on the result.
    algorithm : int

    Returns
    -------
    Fingerprint

    Raises
    ------
    ParameterError
        If ``blob`` is not bytes-like or its length is not a multiple of 4.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ParameterError(f"blob={type(blob).__name__}: must be bytes (a stored fingerprint)")
    if len(blob) % 4:
        raise ParameterError(f"blob of {len(blob)} bytes: length must be a multiple of 4 (uint32 items)")
    items = np.frombuffer(bytes(blob), dtype="<u4").astype(np.uint32)
    return Fingerprint(items, duration_s, algorithm)


# --------------------------------------------------------------------------- decompression
def _unpack_le(data: np.ndarray, width: int) -> np.ndarray:
    """Unsigned ints of ``width`` bits packed LSB-first in ``data`` (uint8)."""
    bits = np.unpackbits(data, bitorder="little")
    k = bits.size // width
    weights = (1 << np.arange(width)).astype(np.int64)
    return bits[: k * width].reshape(k, width).astype(np.int64) @ weights


def decompress_fingerprint(compressed) -> tuple[np.ndarray, int]:
    """Raw items of a compressed Chromaprint fingerprint (fpcalc's default output).

    Parameters
    ----------
    compressed : str or bytes
        URL-safe base64 text, as printed by ``fpcalc`` without ``-raw`` and
        returned by ``acoustid.fingerprint_file``.

    Returns
    -------
    items : numpy.ndarray, shape (n_items,), dtype uint32
    algorithm : int

    Raises
    ------
    ParameterError
        If the text is not a valid compressed fingerprint.

    Notes
    -----
    Format (Chromaprint ``fingerprint_compressor.cpp``): byte 0 = algorithm,
    bytes 1-3 = ``n_items`` big-endian; then, for each item XOR the previous
    one, the gaps between its set bits (1-based, LSB first) ending with a 0,
    as 3-bit values packed LSB-first; gaps >= 7 are written as 7 there and
    the remainder follows as 5-bit values after the 3-bit section.
    """
    if isinstance(compressed, str):
        compressed = compressed.encode("ascii", "replace")
    text = bytes(compressed).strip()
    if not text:
        return np.zeros(0, np.uint32), 1
    try:
        data = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ParameterError("compressed fingerprint: not URL-safe base64") from None
    if len(data) < 4:
        raise ParameterError(f"compressed fingerprint: {len(data)} bytes, shorter than its 4-byte header")
    algorithm = data[0]
    n = int.from_bytes(data[1:4], "big")
    body = np.frombuffer(data, np.uint8, offset=4)
    if n == 0:
        return np.zeros(0, np.uint32), algorithm
    normal = _unpack_le(body, 3)
    zeros = np.flatnonzero(normal == 0)
    if zeros.size < n:
        raise ParameterError(f"compressed fingerprint: header says {n} items, data holds {zeros.size}")
    end = int(zeros[n - 1]) + 1
    normal = normal[:end]
    big = np.flatnonzero(normal == 7)
    if big.size:
        exc = _unpack_le(body[(end * 3 + 7) // 8 :], 5)
        if exc.size < big.size:
            raise ParameterError("compressed fingerprint: truncated (exceptional bits missing)")
        normal[big] += exc[: big.size]
    is_end = normal == 0
    item_of = np.cumsum(is_end) - is_end  # index of the item each value belongs to
    csum = np.cumsum(normal)
    base = np.concatenate(([0], csum[is_end][:-1]))  # running sum where each item starts
    nz = ~is_end
    bitpos = csum[nz] - base[item_of[nz]]  # 1-based bit positions
    if bitpos.size and (bitpos.max() > 32):
        raise ParameterError("compressed fingerprint: bit position beyond 32")
    diff = np.zeros(n, np.uint64)
    np.add.at(diff, item_of[nz], np.left_shift(np.uint64(1), (bitpos - 1).astype(np.uint64)))
    items = np.bitwise_xor.accumulate(diff.astype(np.uint32))
    return items, algorithm


# --------------------------------------------------------------------------- fpcalc
def _fpcalc_command() -> str:
    return os.environ.get(_FPCALC_ENV) or "fpcalc"


def _which(name: str) -> str | None:
    """Executable lookup (a function so tests can pretend fpcalc is absent)."""
    return shutil.which(name)


def fingerprint_available() -> bool:
    """True if :func:`fingerprint_file` can run: the ``fpcalc`` program is found.

    ``fpcalc`` is looked up as pyacoustid does: ``$FPCALC`` if set, else ``fpcalc`` on ``PATH``.
    """
    return _which(_fpcalc_command()) is not None


def _fpcalc_reason(returncode: int, stderr: str) -> str:
    """A plain reason for an fpcalc failure, from its exit status and messages."""
    if "Empty fingerprint" in stderr:
        return "audio too short or silent to fingerprint (Chromaprint needs about 3 s of sound)"
    if any(m in stderr for m in ("Could not open", "Could not find", "Invalid data", "No audio stream")):
        return "fpcalc could not decode the file (not audio, or an unsupported format)"
    lines = [ln.strip().removeprefix("ERROR: ") for ln in stderr.splitlines() if ln.strip()]
    detail = f" ({lines[-1][:200]})" if lines else f" (exit status {returncode})"
    return f"fpcalc could not fingerprint the file{detail}"


def _parse_fpcalc(stdout: str) -> tuple[float | None, np.ndarray | None]:
    duration = items = None
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "DURATION":
            try:
                duration = float(value)
            except ValueError:
                return None, None
        elif key == "FINGERPRINT":
            try:
                items = np.array([int(v) for v in value.split(",") if v.strip()], dtype=np.int64)
            except ValueError:
                return None, None
    if items is not None and items.size and (items.min() < 0 or items.max() > 0xFFFFFFFF):
        return None, None
    return duration, None if items is None else items.astype(np.uint32)


def fingerprint_file(path, *, max_length_s: float = 120, timeout_s: float = 600) -> Fingerprint:
    """Chromaprint fingerprint of the first ``max_length_s`` seconds of a file, or of a cue track.

    Runs ``fpcalc -raw -length N path`` (the command pyacoustid's
    ``acoustid.fingerprint_file(..., force_fpcalc=True)`` builds, plus
    ``-raw``; ``$FPCALC`` names the program as for pyacoustid).  A cue track
    (a :class:`recommender.io.cuesheet.Segment`) is fingerprinted from its
    own start: fpcalc has ``-length`` but no offset, so ffmpeg decodes the
    segment (``-ss start -t length``, a seek, not a decode from the file's
    start) to 16-bit mono PCM at 11025 Hz, Chromaprint's internal rate, and
    fpcalc reads it from a pipe (``-format s16le -rate 11025 -channels 1 -``,
    Chromaprint >= 1.4).  The same recording as a file of its own matches it
    (:func:`same_recording`; tested).

    Parameters
    ----------
    path : str, os.PathLike or Segment
        Any format ``fpcalc`` (FFmpeg) decodes; or a segment of such a file
        (anything with ``source``, ``start_s`` and ``end_s`` (``None``: to
        the end) in seconds), which needs ``ffmpeg`` too.
    max_length_s : float
        Seconds of audio fingerprinted from the start (rounded up to whole
        seconds); 120 is fpcalc's and AcoustID's default.  Cost: about one
        decode of the file (measured: fingerprint / ``recommender.io.audio.load``
        time = 1.0-1.5, mean 75-150 ms per track; see the benchmark).
    timeout_s : float
        fpcalc is stopped after this many seconds (an :class:`AudioError`).

    Returns
    -------
    Fingerprint
        ``items`` of shape ``(n_items,)``, ``n_items`` ~ ``8.08 * min(duration,
        max_length_s) - 18``; ``duration_s`` of the whole file (whole
        seconds), of a segment its length (seconds, as decoded).

    Raises
    ------
    AudioError
        ``AudioError(path, reason)`` with a plain reason: "no such file",
        "empty file (0 bytes)", "fpcalc (Chromaprint) is not installed ...",
        "fpcalc could not decode the file (not audio, or an unsupported
        format)", "audio too short or silent to fingerprint ...".
    ParameterError
        If ``max_length_s`` or ``timeout_s`` is not a number > 0.

    Notes
    -----
    Exit status 3 is accepted when a fingerprint was printed: fpcalc calls it
    a non-fatal decoding problem, and Debian 12's fpcalc 1.5.1-2 with FFmpeg 5
    returns it at the end of every file shorter than ``-length``
    ("Error decoding audio frame (End of file)"; Chromaprint issues #122 and
    #137, Debian bug #1062530).  pyacoustid 1.3 treats any non-zero status as
    a failure and drops fpcalc's messages, which is why it is not used here.
    """
    check_number("max_length_s", max_length_s, min=0, min_inclusive=False)
    check_number("timeout_s", timeout_s, min=0, min_inclusive=False)
    segment = path if hasattr(path, "source") and hasattr(path, "start_s") else None
    p = check_file(segment.source if segment is not None else path)
    exe = _fpcalc_command()
    if _which(exe) is None:
        raise AudioError(
            p, f"fpcalc (Chromaprint) is not installed or not found as {exe!r} "
            "(Debian/Ubuntu: apt install libchromaprint-tools)"
        )  # fmt: skip
    if segment is not None:
        return _fingerprint_segment(p, exe, segment, max_length_s, timeout_s)
    cmd = [exe, "-raw", "-length", str(math.ceil(max_length_s)), p]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(p, f"fpcalc took longer than {timeout_s:g} s") from None
    except OSError as e:
        raise AudioError(p, f"fpcalc could not be run ({e.strerror or e})") from None
    stderr = r.stderr.decode("utf-8", "replace")
    duration, items = _parse_fpcalc(r.stdout.decode("utf-8", "replace"))
    if r.returncode not in (0, 3) or duration is None or items is None:
        piped = _fingerprint_via_ffmpeg(p, exe, max_length_s, timeout_s)
        if piped is None:
            raise AudioError(p, _fpcalc_reason(r.returncode, stderr))
        return piped
    if items.size == 0:
        raise AudioError(p, _fpcalc_reason(r.returncode, "Empty fingerprint"))
    return Fingerprint(items, duration, 1)


def _fingerprint_segment(p: str, exe: str, seg, max_length_s: float, timeout_s: float) -> Fingerprint:
    """A cue track's fingerprint: ffmpeg decodes ``[start, min(end, start + max_length_s))``
    of ``p`` to a pipe that fpcalc reads."""
    start = float(seg.start_s)
    end = None if seg.end_s is None else float(seg.end_s)
    if not start >= 0 or (end is not None and not end > start):
        raise ParameterError(f"segment={start:g}..{end}: start must be >= 0 and end after start")
    at = f"the cue track at {start:.3f} s: "
    ffmpeg = _which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(p, at + "ffmpeg is not installed (it decodes a cue track for fpcalc)")
    length = max_length_s if end is None else min(max_length_s, end - start)
    dec = [ffmpeg, "-v", "error", "-nostdin", "-ss", f"{start:.6f}", "-i", p, "-t", f"{length:.6f}", "-vn",
           "-ac", "1", "-ar", "11025", "-f", "s16le", "-"]
    try:
        pcm = subprocess.run(dec, capture_output=True, timeout=timeout_s, check=False)
        if pcm.returncode != 0 or not pcm.stdout:
            detail = pcm.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no audio there"]
            raise AudioError(p, at + f"ffmpeg could not decode it ({detail[0]})")
        r = subprocess.run([exe, "-raw", "-length", str(math.ceil(length)), "-format", "s16le", "-rate", "11025",
                            "-channels", "1", "-"], input=pcm.stdout, capture_output=True,
                           timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(p, at + f"decoding and fingerprinting took longer than {timeout_s:g} s") from None
    except OSError as e:
        raise AudioError(p, at + f"ffmpeg or fpcalc could not be run ({e.strerror or e})") from None
    _, items = _parse_fpcalc(r.stdout.decode("utf-8", "replace"))
    if r.returncode not in (0, 3) or items is None or items.size == 0:
        raise AudioError(p, at + _fpcalc_reason(r.returncode, r.stderr.decode("utf-8", "replace") or
                                               "Empty fingerprint"))
    return Fingerprint(items, _segment_length(p, start, end), 1)


def _segment_length(p: str, start: float, end: float | None) -> float:
    """Seconds from ``start`` to ``end`` (``None``: the end of the file, ``nan`` if unknown)."""
    if end is not None:
        return end - start
    from .audio import info

    try:
        return float(info(p).duration_s) - start
    except Exception:  # noqa: BLE001 - the length is a convenience here
        return float("nan")


def _fingerprint_via_ffmpeg(p: str, exe: str, max_length_s: float, timeout_s: float) -> Fingerprint | None:
    """Second try for files fpcalc's own demuxer fails on (it crashes on some
    chained Ogg files): ffmpeg decodes the first ``max_length_s`` seconds to
    mono 16-bit PCM at 11025 Hz (Chromaprint's internal rate) and fpcalc reads
    that from a pipe. ``None`` if ffmpeg is missing or this fails too."""
    ffmpeg = _which("ffmpeg")
    if ffmpeg is None:
        return None
    n = str(math.ceil(max_length_s))
    dec = [ffmpeg, "-v", "error", "-nostdin", "-i", p, "-t", n, "-vn", "-ac", "1", "-ar", "11025",
           "-f", "s16le", "-"]
    try:
        pcm = subprocess.run(dec, capture_output=True, timeout=timeout_s, check=False)
        if pcm.returncode != 0 or not pcm.stdout:
            return None
        r = subprocess.run([exe, "-raw", "-length", n, "-format", "s16le", "-rate", "11025",
                            "-channels", "1", "-"], input=pcm.stdout, capture_output=True,
                           timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    _, items = _parse_fpcalc(r.stdout.decode("utf-8", "replace"))
    if r.returncode not in (0, 3) or items is None or items.size == 0:
        return None
    from .audio import info

    try:
        duration = int(info(p).duration_s)
    except Exception:  # noqa: BLE001 - the length is a convenience here
        duration = len(pcm.stdout) // (2 * 11025)
    return Fingerprint(items, duration, 1)



#: Files per ``fpcalc`` process in :func:`fingerprint_files`.  Starting
#: fpcalc (it loads FFmpeg's libraries) costs ~35 ms of CPU, more than
#: fingerprinting 30 s of audio (~25 ms); measured on the selection half of
#: the dev collection (99 Ogg Vorbis files, ``-length 30``): 6.5 s of CPU one
#: file per process, 2.9 s 8 per process, 2.2 s 16 per process.
FPCALC_BATCH = 16


def _segment_of(item):
    return item if hasattr(item, "source") and hasattr(item, "start_s") else None


def _attempt(path, max_length_s: float, timeout_s: float):
    """:func:`fingerprint_file`'s result or its :class:`AudioError` (returned, not raised)."""
    try:
        return fingerprint_file(path, max_length_s=max_length_s, timeout_s=timeout_s)
    except AudioError as e:
        return e


def _parse_fpcalc_many(stdout: str) -> list[tuple[float | None, np.ndarray | None]] | None:
    """``(duration, items)`` of each result fpcalc printed, in order; ``None`` if the output is malformed."""
    out: list = []
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if len(lines) % 2:
        return None
    for head, body in zip(lines[::2], lines[1::2]):
        if not (head.startswith("DURATION=") and body.startswith("FINGERPRINT=")):
            return None
        out.append(_parse_fpcalc(head + "\n" + body))
    return out


def _argv_path(p: str) -> str:
    """``p`` as an fpcalc argument: never read as an option or as standard input."""
    return os.path.join(".", p) if p.startswith("-") else p


def _fpcalc_many(exe: str, paths: list[str], max_length_s: float, timeout_s: float) -> list:
    """Fingerprints of ``paths`` (checked files), as few fpcalc processes as the files allow.

    fpcalc 1.5 fingerprints its arguments in order and exits at the first file
    it cannot read: status 2 when that file printed nothing, 3 when it printed
    a fingerprint first (``ProcessFile`` in Chromaprint's ``fpcalc.cpp``;
    Debian 12's fpcalc returns 3 at the end of every file shorter than
    ``-length``).  So the ``k`` results printed belong to the first ``k``
    files; a file that printed nothing is fingerprinted again on its own by
    :func:`fingerprint_file` (its FFmpeg fallback and its plain reason), and
    a new process takes the files after it.
    """
    n = str(math.ceil(max_length_s))
    out: list = [None] * len(paths)
    start = 0
    while start < len(paths):
        todo = paths[start:]
        try:
            r = subprocess.run([exe, "-raw", "-length", n, *map(_argv_path, todo)], capture_output=True,
                               timeout=timeout_s * len(todo), check=False)
        except (OSError, subprocess.TimeoutExpired):
            r = None
        text = "" if r is None else r.stdout.decode("utf-8", "replace")
        crashed = r is not None and r.returncode not in (0, 2, 3)
        if crashed:
            # killed by a signal (fpcalc's demuxer crashes on some chained Ogg
            # files): its last result may be cut off, and what it had not yet
            # flushed is lost -- keep the results before the last one
            text = text[: max(0, text.rfind("DURATION="))]
        blocks = None if r is None else _parse_fpcalc_many(text)
        if blocks is None or len(blocks) > len(todo) or (r.returncode == 0 and len(blocks) < len(todo)):
            # not what fpcalc prints: one file at a time, each with its own limit and reason
            out[start:] = [_attempt(p, max_length_s, timeout_s) for p in todo]
            break
        for j, (duration, items) in enumerate(blocks):
            p = todo[j]
            if duration is None or items is None:
                out[start + j] = _attempt(p, max_length_s, timeout_s)
            elif items.size == 0:
                out[start + j] = AudioError(p, _fpcalc_reason(r.returncode, "Empty fingerprint"))
            else:
                out[start + j] = Fingerprint(items, duration, 1)
        start += len(blocks)
        if r.returncode == 0 or start >= len(paths):
            break
        if crashed or r.returncode != 3 or not blocks:  # the next file printed nothing: on its own
            out[start] = _attempt(paths[start], max_length_s, timeout_s)
            start += 1
    return out


def fingerprint_files(paths, *, max_length_s: float = 120, timeout_s: float = 600, batch: int = FPCALC_BATCH):
    """Chromaprint fingerprints of many files, :data:`FPCALC_BATCH` files per ``fpcalc`` process.

    The same fingerprints as :func:`fingerprint_file` called on each file
    (the same ``fpcalc -raw -length N`` command, given several files; tested),
    for about a third of the CPU on short fingerprints: fpcalc's start-up
    (~35 ms) is paid once per batch, not once per file.  A file that fails
    costs only itself: it is retried on its own by :func:`fingerprint_file`,
    and the files after it are fingerprinted by a new process.

    Parameters
    ----------
    paths : iterable of str, os.PathLike or Segment
        Files (any format fpcalc decodes); a cue track (a
        :class:`~recommender.io.cuesheet.Segment`) is fingerprinted by
        :func:`fingerprint_file`.
    max_length_s : float
        Seconds fingerprinted from the start of each file (see :func:`fingerprint_file`).
    timeout_s : float
        Limit per file; a process of ``n`` files gets ``n * timeout_s``.
    batch : int
        Files per fpcalc process (>= 1).

    Yields
    ------
    (path, Fingerprint or AudioError)
        In input order, ``path`` as given: the fingerprint, or the
        :class:`~recommender.errors.AudioError` :func:`fingerprint_file` would
        raise for that file (missing, empty, not audio, too short, no fpcalc).

    Raises
    ------
    ParameterError
        ``max_length_s`` or ``timeout_s`` not a number > 0, ``batch`` not an int >= 1.
    """
    check_number("max_length_s", max_length_s, min=0, min_inclusive=False)
    check_number("timeout_s", timeout_s, min=0, min_inclusive=False)
    batch = check_int("batch", batch, min=1)
    exe = _fpcalc_command()
    have = _which(exe) is not None
    items = list(paths)
    for lo in range(0, len(items), batch):
        chunk = items[lo : lo + batch]
        results: list = [None] * len(chunk)
        plain: list[tuple[int, str]] = []
        for j, item in enumerate(chunk):
            if _segment_of(item) is not None or not have:
                results[j] = _attempt(item, max_length_s, timeout_s)
                continue
            try:
                plain.append((j, check_file(item)))
            except AudioError as e:
                results[j] = e
        if plain:
            got = _fpcalc_many(exe, [p for _, p in plain], max_length_s, timeout_s)
            for (j, _), res in zip(plain, got):
                results[j] = res
        yield from zip(chunk, results)

# --------------------------------------------------------------------------- comparison
_POP8 = np.array([i.bit_count() for i in range(256)], np.uint8)


def _popcount32(x: np.ndarray) -> np.ndarray:
    """Set bits of each ``uint32`` (same shape, small ints)."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(x)
    b = np.ascontiguousarray(x, dtype=np.uint32).view(np.uint8).reshape(x.shape + (4,))
    return _POP8[b].sum(axis=-1, dtype=np.uint8)


def _items(fp, name: str) -> np.ndarray:
    if isinstance(fp, Fingerprint):
        return fp.items
    a = np.asarray(fp)
    if a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
        raise ParameterError(f"{name}: must be a Fingerprint or a 1-D integer array of items")
    return a.astype(np.uint32, copy=False)


class Match(NamedTuple):
    """What :func:`compare` found at the best alignment of two fingerprints.

    Attributes
    ----------
    score : float
        In [0, 1]: share of the aligned items that differ in at most
        :data:`ITEM_TOLERANCE_BITS` of their 32 bits (:func:`match`).
    ber : float
        Bit error rate at that alignment, in [0, 1]: 0 = identical items,
        ~0.5 = unrelated audio; 0.5 when no offset had enough overlap.
    offset_s : float
        Seconds to add to a time in ``fp_a`` to get the same audio in
        ``fp_b`` (a multiple of :data:`ITEM_S`; e.g. -4.0 when ``fp_b`` had
        4 s cut at its start).
    overlap_s : float
        Seconds of audio compared (silent items of both excluded).
    """

    score: float
    ber: float
    offset_s: float
    overlap_s: float


def _compare(a: np.ndarray, b: np.ndarray, k: int, min_overlap: int) -> Match:
    """Best alignment of ``a[i]`` with ``b[i + d]``, ``|d| <= k`` (items), by bit error rate."""
    na, nb = a.size, b.size
    tail = k + max(na - nb, 0)
    bp = np.concatenate((np.zeros(k, np.uint32), b, np.zeros(tail, np.uint32)))
    valid = np.concatenate((np.zeros(k, bool), np.ones(nb, bool), np.zeros(tail, bool)))
    win_b = np.lib.stride_tricks.sliding_window_view(bp, na)[: 2 * k + 1]  # (2k+1, na): b shifted by d = -k..k
    win_v = np.lib.stride_tricks.sliding_window_view(valid, na)[: 2 * k + 1]
    use = win_v & ~((a == SILENCE_ITEM)[None, :] & (win_b == SILENCE_ITEM))
    bits = _popcount32(win_b ^ a[None, :])  # (2k+1, na) differing bits per item pair
    overlap = use.sum(axis=1, dtype=np.int64)
    ok = overlap >= min_overlap
    if not ok.any():
        return Match(0.0, 0.5, 0.0, 0.0)
    ber = np.where(ok, (bits * use).sum(axis=1, dtype=np.int64) / np.maximum(32 * overlap, 1), np.inf)
    j = int(np.argmin(ber))
    close = np.count_nonzero((bits[j] <= ITEM_TOLERANCE_BITS) & use[j])
    return Match(float(close / overlap[j]), float(ber[j]), (j - k) * ITEM_S, float(overlap[j] * ITEM_S))


def compare(fp_a, fp_b, *, max_offset_s: float = 10.0, min_overlap_s: float = 10.0) -> Match:
    """Align two fingerprints and score how alike their items are.

    Method (Chromaprint / AcoustID): slide ``fp_b`` over ``fp_a`` by up to
    ``max_offset_s`` either way, one item (:data:`ITEM_S` = 0.1238 s) at a
    time; at each offset the bit error rate is ``popcount(a XOR b) / (32 *
    overlap)`` over the overlapping items (items that are Chromaprint silence
    in both are skipped), and the offset with the lowest rate is the
    alignment (AcoustID's ``acoustid_compare``, done densely).  The score at
    that alignment is the share of items differing in at most
    :data:`ITEM_TOLERANCE_BITS` (4) bits.

    Why not ``1 - 2 * ber`` as the score: a re-encoded or trimmed copy keeps
    most items exact or nearly so (its bit errors gather on a few items at
    transients), while a different recording that sounds alike -- same
    tempo, same kick, same chord -- can reach a low *average* bit error rate
    with every item a few bits off.  Measured on the benchmark set (see
    :func:`same_recording`): ``1 - 2 * ber`` gives same-recording pairs
    >= 0.846 and different recordings up to 0.709 (two synthetic techno
    tracks); the item score gives >= 0.901 against <= 0.438.

    Parameters
    ----------
    fp_a, fp_b : Fingerprint or array-like of shape (n_items,)
        Raw ``uint32`` items.
    max_offset_s : float
        Largest shift tried, in seconds (>= 0): covers that much audio cut or
        added at the start of either file.
    min_overlap_s : float
        Offsets whose overlap is shorter than this (or than the shorter
        fingerprint, if that is shorter) are not considered.

    Returns
    -------
    Match
        ``(score, ber, offset_s, overlap_s)``; ``Match(0.0, 0.5, 0.0, 0.0)``
        when a fingerprint is empty.

    Raises
    ------
    ParameterError
        On a bad argument.

    Notes
    -----
    Cost: ``(2 * max_offset_s / ITEM_S + 1) * n_items`` XOR + popcounts,
    ~1-2 ms for two 120 s fingerprints at the default 10 s.  A copy played at
    another speed (even 1 %) drifts out of alignment and is not recognised
    (measured score < 0.21), as with Chromaprint in general.
    """
    a, b = _items(fp_a, "fp_a"), _items(fp_b, "fp_b")
    check_number("max_offset_s", max_offset_s, min=0)
    check_number("min_overlap_s", min_overlap_s, min=0)
    if a.size == 0 or b.size == 0:
        return Match(0.0, 0.5, 0.0, 0.0)
    k = round(max_offset_s / ITEM_S)
    min_overlap = max(1, min(round(min_overlap_s / ITEM_S), a.size, b.size))
    return _compare(a, b, k, min_overlap)


def match(fp_a, fp_b, *, max_offset_s: float = 10.0, min_overlap_s: float = 10.0) -> float:
    """Similarity of two fingerprints in [0, 1]: ``compare(fp_a, fp_b).score``.

    The share of items, at the alignment with the lowest bit error rate
    (within +-``max_offset_s``), whose 32 bits differ in at most
    :data:`ITEM_TOLERANCE_BITS`; see :func:`compare` for the method.
    1 = the same items, ~0 = unrelated audio.  Measured: same recording
    0.901-1.000 (median 1.000), different recordings <= 0.438 (median 0.000);
    see :func:`same_recording`.

    Parameters
    ----------
    fp_a, fp_b : Fingerprint or array-like of shape (n_items,)
    max_offset_s, min_overlap_s : float
        Seconds; see :func:`compare`.

    Returns
    -------
    float
        0.0 when either fingerprint is empty.

    Raises
    ------
    ParameterError
        On a bad argument.
    """
    return compare(fp_a, fp_b, max_offset_s=max_offset_s, min_overlap_s=min_overlap_s).score


def same_recording(fp_a, fp_b, *, threshold: float = THRESHOLD, max_offset_s: float = 10.0) -> bool:
    """True if two fingerprints are of the same recording: ``match(...) >= threshold``.

    The default :data:`THRESHOLD` = 0.7 was chosen on
    ``benchmarks/bench_duplicates.py``, run as
    ``PYTHONPATH=. python benchmarks/bench_duplicates.py``: 24 recordings from
    Debian game soundtracks (freedroidrpg, hedgewars, lincity-ng, supertux,
    xmoto; 20-150 s), each as the Ogg original + MP3 128 kbit/s + Opus
    64 kbit/s + 3-5 s cut at the start (Vorbis) + 4 s cut with a 3 s fade at
    the end (AAC), plus 24 synthetic sound-alikes
    (``recommender.io.demo.synth_track``, 4 styles x 6 seeds, 30 s, each with
    an MP3 copy).  Measured (168 files, 14 028 pairs):

    * 264 same-recording pairs: score 0.901-1.000, median 1.000; recall at
      0.7 = 1.000 (264/264).  Weakest: a start cut that falls half an item
      (62 ms) between two items.
    * 13 764 different-recording pairs (1 665 of one soundtrack or one
      synthetic style): score <= 0.438 (two 128 BPM synthetic techno tracks),
      99.9th percentile 0.305; 0 pairs at or above 0.5 already.
    * :func:`find_duplicate_pairs` on the 168 files: 264/264 pairs, 0 others.

    0.7 sits a little above the middle of the gap (0.438, 0.901): the
    positives' low end is set by the item grid and barely moves with bitrate
    (MP3 32 kbit/s and Opus 24 kbit/s copies score >= 0.986), while music
    that only sounds alike has no such bound.

    Parameters
    ----------
    fp_a, fp_b : Fingerprint or array-like of shape (n_items,)
    threshold : float
        In [0, 1].
    max_offset_s : float
        See :func:`compare`.

    Returns
    -------
    bool

    Raises
    ------
    ParameterError
        On a bad argument.
    """
    check_number("threshold", threshold, min=0, max=1)
    return match(fp_a, fp_b, max_offset_s=max_offset_s) >= threshold


# --------------------------------------------------------------------------- collection search
def _candidate_pairs(items: list[np.ndarray], min_shared: int, max_df: int) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, sharing >= ``min_shared`` distinct item values; shape (n_pairs, 2)."""
    n = len(items)
    vals, tids = [], []
    for t, it in enumerate(items):
        u = np.unique(it)
        u = u[u != SILENCE_ITEM]
        vals.append(u)
        tids.append(np.full(u.size, t, np.int32))
    if not vals:
        return np.zeros((0, 2), np.int64)
    v = np.concatenate(vals)
    t = np.concatenate(tids)
    order = np.argsort(v, kind="stable")  # stable: tids stay increasing within a value
    v, t = v[order], t[order]
    del order
    starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
    sizes = np.diff(np.append(starts, v.size))
    codes = []
    for s in np.unique(sizes):
        if s < 2 or s > max_df:  # unique values, or "stop words" (too common to tell anything)
            continue
        members = t[starts[sizes == s][:, None] + np.arange(s)]  # (n_groups, s)
        iu, ju = np.triu_indices(int(s), 1)
        codes.append(members[:, iu].astype(np.int64).ravel() * n + members[:, ju].ravel())
    if not codes:
        return np.zeros((0, 2), np.int64)
    uniq, counts = np.unique(np.concatenate(codes), return_counts=True)
    keep = uniq[counts >= min_shared]
    return np.stack((keep // n, keep % n), axis=1)


def find_duplicate_pairs(
    fingerprints: Mapping[Hashable, Fingerprint],
    *,
    threshold: float = THRESHOLD,
    max_offset_s: float = 10.0,
    min_shared: int = 2,
    max_df: int = 64,
) -> list[tuple[Hashable, Hashable, float]]:
    """All pairs of the same recording in a collection.

    Two stages (AcoustID's lookup): an inverted index of the exact 32-bit item
    values proposes the pairs of tracks sharing at least ``min_shared``
    distinct values; only those are aligned with :func:`match`.  A re-encode
    keeps many items bit-exact (measured on the benchmark set: >= 22 shared
    values for every same-recording pair, median 289), different recordings
    share few (at most 6 there; 0 for most pairs).

    Parameters
    ----------
    fingerprints : mapping of id -> Fingerprint (or array of shape (n_items,))
        Ids are any hashable (track ids, paths); empty fingerprints are skipped.
    threshold : float
        Score at or above which a pair is reported (see :func:`same_recording`).
    max_offset_s : float
        See :func:`match`.
    min_shared : int
        Distinct item values two tracks must share to be aligned (>= 1).
    max_df : int
        Item values found in more than this many tracks are ignored as
        uninformative (>= 2).

    Returns
    -------
    list of (id_a, id_b, score)
        ``id_a`` before ``id_b`` in the mapping's order; sorted by score,
        highest first.

    Raises
    ------
    ParameterError
        On a bad argument.

    Notes
    -----
    Memory ~ 16 bytes per distinct item per track while the index is built
    (10 000 tracks x 120 s: ~160 MB); time is dominated by sorting the
    ~10^7 values plus ~1-2 ms per candidate pair.  Measured
    (``bench_duplicates.py --scale 10000``): 10 100 synthetic 120 s
    fingerprints with 100 injected copies, 1.8-2.6 s, 100/100 copies
    found, no other pair.
    """
    if not isinstance(fingerprints, Mapping):
        raise ParameterError(f"fingerprints={type(fingerprints).__name__}: must be a mapping id -> Fingerprint")
    check_number("threshold", threshold, min=0, max=1)
    check_number("max_offset_s", max_offset_s, min=0)
    min_shared = check_int("min_shared", min_shared, min=1)
    max_df = check_int("max_df", max_df, min=2)
    ids = [key for key, fp in fingerprints.items() if _items(fp, f"fingerprints[{key!r}]").size]
    items = [_items(fingerprints[key], "") for key in ids]
    out = []
    for i, j in _candidate_pairs(items, min_shared, max_df).tolist():
        s = match(items[i], items[j], max_offset_s=max_offset_s)
        if s >= threshold:
            out.append((ids[i], ids[j], s))
    out.sort(key=lambda r: -r[2])
    return out
