"""Chromaprint fingerprints of files by the ``fpcalc`` program, one file or many per process
(see :mod:`recommender.io.fingerprint`, which re-exports everything public here)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import numpy as np

from .._utils import check_int, check_number
from ..errors import AudioError, ParameterError
from ._fpdata import Fingerprint
from .audio import check_file

__all__ = ["FPCALC_BATCH", "fingerprint_available", "fingerprint_file", "fingerprint_files"]

_FPCALC_ENV = "FPCALC"  # the variable pyacoustid reads (acoustid.FPCALC_ENVVAR)


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
    cmd = [exe, "-raw", "-length", str(math.ceil(max_length_s)), _argv_path(p)]
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
    dec = [ffmpeg, "-v", "error", "-nostdin", "-ss", f"{start:.6f}", "-i", _argv_path(p), "-t", f"{length:.6f}", "-vn",
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
    dec = [ffmpeg, "-v", "error", "-nostdin", "-i", _argv_path(p), "-t", n, "-vn", "-ac", "1", "-ar", "11025",
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
    except (AudioError, ParameterError) as e:  # ParameterError: a segment ending before it starts
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
        timed_out = False
        try:
            r = subprocess.run([exe, "-raw", "-length", n, *map(_argv_path, todo)], capture_output=True,
                               timeout=timeout_s, check=False)
            rc, text = r.returncode, r.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as e:  # a file hangs: what was printed before it is kept
            rc, text, timed_out = None, (e.stdout or b"").decode("utf-8", "replace"), True
        except OSError:
            rc, text = None, ""
        crashed = rc not in (0, 2, 3)
        if crashed:
            # killed (a time-out, or a signal: fpcalc's demuxer crashes on some
            # chained Ogg files): its last result may be cut off, and what it
            # had not yet flushed is lost -- keep the results before the last one
            text = text[: max(0, text.rfind("DURATION="))]
        blocks = _parse_fpcalc_many(text)
        if blocks is None or len(blocks) > len(todo) or (rc == 0 and len(blocks) < len(todo)):
            blocks, crashed = [], True  # not what fpcalc prints: trust none of it
        for j, (duration, items) in enumerate(blocks):
            p = todo[j]
            if duration is None or items is None:
                out[start + j] = _attempt(p, max_length_s, timeout_s)
            elif items.size == 0:
                out[start + j] = AudioError(p, _fpcalc_reason(rc, "Empty fingerprint"))
            else:
                out[start + j] = Fingerprint(items, duration, 1)
        start += len(blocks)
        if start >= len(paths) or (rc == 0 and not crashed):
            break
        if timed_out or (crashed and not blocks):
            # the rest one file at a time, each with its own limit and reason (after
            # a time-out the hanging file costs one more limit, not one per batch)
            out[start:] = [_attempt(p, max_length_s, timeout_s) for p in paths[start:]]
            break
        if crashed or rc != 3 or not blocks:  # the next file printed nothing: on its own
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
        Limit per fpcalc process (of one or of many files).  After a time-out,
        the files without a result yet are fingerprinted one by one, each
        with this limit: a hanging file costs at most two limits.
    batch : int
        Files per fpcalc process (>= 1).

    Yields
    ------
    (path, Fingerprint or AudioError or ParameterError)
        In input order, ``path`` as given: the fingerprint, or the error
        :func:`fingerprint_file` would raise for that file: an
        :class:`~recommender.errors.AudioError` (missing, empty, not audio,
        too short, no fpcalc, a time-out), a
        :class:`~recommender.errors.ParameterError` for a segment that ends
        before it starts.

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
