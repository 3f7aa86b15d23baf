"""Playlist files that players open: M3U8 and XSPF, written and read back.

A playlist is a sequence of *rows*: mappings with ``path`` (required) and the
optional ``artist``, ``title``, ``album``, ``duration_s`` (seconds), and
``start_s`` / ``end_s`` (seconds) for a track that is a part of a file (a CUE
album stored as one file).  The catalog's rows and the frames of ``similar`` /
``radio`` / ``path_between`` (as dicts) are such rows.

M3U8
    UTF-8 text: ``#EXTM3U``, an optional ``#PLAYLIST:`` title, and per track
    ``#EXTINF:<seconds>,<artist> - <title>`` (``-1`` when the duration is
    unknown; the Winamp convention players split on ``" - "``) followed by the
    path, absolute or relative to ``relative_to`` (a relative path is
    resolved from the playlist's folder by players).  A file name that is not
    UTF-8 or holds a line break is written as an absolute ``file://`` URI of
    its raw bytes (``%96``, ``%0A``), so the file stays UTF-8 with one line
    per entry and the player opens the same file.
XSPF
    An XSPF 1 document (http://xspf.org/ns/0/): ``<trackList>`` of
    ``<track>`` with ``<location>`` (an absolute ``file://`` URI of the path's
    raw bytes, percent-encoded per RFC 3986 / RFC 8089: a space is ``%20``,
    ``#`` is ``%23``, ``%`` is ``%25``, ``é`` is ``%C3%A9``, the byte 0x96 of
    a Latin-1 name is ``%96``), ``<title>``, ``<creator>`` (the artist),
    ``<album>`` and ``<duration>`` (milliseconds).
Part of a file (``start_s`` / ``end_s``)
    Both formats name the whole file and add VLC's playback options, the
    notation that players read in playlists: in M3U8 ``#EXTVLCOPT:start-time=S``
    and ``#EXTVLCOPT:stop-time=E`` lines before the path; in XSPF an
    ``<extension application="http://www.videolan.org/vlc/playlist/0">``
    holding ``<vlc:option>start-time=S</vlc:option>`` (and ``stop-time``).
    VLC plays just that part; players that do not know the options play the
    whole file (the location stays a plain file URI, so every player opens
    it; a W3C media fragment ``#t=S,E`` in the URI would make most players
    look for a file named ``…#t=S,E``).  The readers also accept ``#t=S,E``.
    The duration written is ``end_s - start_s``.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import re
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from .._utils import atomic_write_bytes
from ..errors import ParameterError, PlaylistFileError
from .collection import display_path

__all__ = [
    "XSPF_NS",
    "VLC_APPLICATION",
    "VLC_NS",
    "path_to_uri",
    "uri_to_path",
    "m3u8_bytes",
    "xspf_bytes",
    "write_m3u8",
    "write_xspf",
    "read_m3u8",
    "read_xspf",
]

logger = logging.getLogger(__name__)

#: XML namespace of XSPF version 1.
XSPF_NS = "http://xspf.org/ns/0/"
#: ``application`` of VLC's ``<extension>`` in XSPF (playback options of a track).
VLC_APPLICATION = "http://www.videolan.org/vlc/playlist/0"
#: XML namespace of the ``vlc:`` elements inside that extension.
VLC_NS = "http://www.videolan.org/vlc/playlist/ns/0/"

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_MEDIA_FRAGMENT = re.compile(r"^t=(?:npt:)?([0-9.]*)(?:,([0-9.]+))?$")


# --------------------------------------------------------------------------- fields of a row
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _shown(path) -> str:
    """``path`` for a message or log line: :func:`display_path`, and control characters
    (a line break in a name) escaped as ``\\n`` / ``\\xNN`` so the message stays one line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], display_path(path))


def _text(v) -> str | None:
    """A tag value as one line of valid UTF-8 text, or ``None`` when empty/missing."""
    if not isinstance(v, str) or not v.strip():
        return None
    # no line break splits a line of M3U; no control character makes the XML invalid
    return " ".join(_XML_INVALID.sub("", display_path(v)).split()) or None


def _number(row, key):
    v = row.get(key)
    if v is None or isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ParameterError(f"{key}={row.get(key)!r} of {_shown(str(row.get('path')))}: "
                             "must be a number of seconds") from None
    return v if math.isfinite(v) else None


def _segment(row):
    """``(start_s, end_s)`` of a part of a file (each ``None`` when not given)."""
    start, end = _number(row, "start_s"), _number(row, "end_s")
    where = _shown(str(row.get("path")))
    if start is not None and start < 0:
        raise ParameterError(f"start_s={start} of {where}: must be >= 0")
    if end is not None and end <= (start or 0.0):
        raise ParameterError(f"end_s={end} of {where}: must be after start_s={start or 0.0}")
    return (start if start else None), end


def _duration_s(row) -> float | None:
    start, end = _segment(row)
    if end is not None:
        return end - (start or 0.0)
    d = _number(row, "duration_s")
    return d if d is not None and d >= 0 else None


def _seconds_text(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _display_name(row) -> str:
    return " - ".join(x for x in (_text(row.get("artist")), _text(row.get("title"))) if x)


def _path(row) -> str:
    """The file a player opens for ``row``: its ``source_path`` when set (a CUE
    track, whose catalog ``path`` is ``"<audio>#t=start,end"``), else ``path``."""
    try:
        p = row.get("source_path") or row["path"]
    except (KeyError, TypeError, AttributeError):
        raise ParameterError(f"playlist row {row!r}: has no 'path'") from None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    return os.fspath(p)


# --------------------------------------------------------------------------- file URIs
def path_to_uri(path) -> str:
    """Absolute ``file://`` URI of ``path``, its raw bytes percent-encoded (RFC 3986 / 8089).

    Parameters
    ----------
    path : str, bytes or path-like
        Relative paths are made absolute from the working folder.  A name
        that is not UTF-8 (held with surrogates, :func:`os.fsdecode`) keeps
        its bytes: ``b"\\x96"`` is ``%96``.

    Returns
    -------
    str
        ASCII text, e.g. ``file:///music/A%20%231%20100%25.flac``.
    """
    p = os.fsdecode(os.fspath(path)) if isinstance(path, bytes) else os.fspath(path)
    return pathlib.Path(os.path.abspath(p)).as_uri()


def uri_to_path(uri: str, *, base: str | None = None) -> str:
    """The local path of a ``file:`` URI (inverse of :func:`path_to_uri`).

    Parameters
    ----------
    uri : str
        ``file:///…`` (or ``file://localhost/…``); a relative reference is
        resolved against ``base`` first.
    base : str, optional
        URI of the playlist that holds ``uri`` (for relative references).

    Returns
    -------
    str
        The path, bytes that are not UTF-8 held with surrogates (``os.fsencode``
        gives the original name back).

    Raises
    ------
    ParameterError
        Not a ``file:`` URI of this machine (another scheme or host).
    """
    parts = urllib.parse.urlsplit(uri)
    if base and not parts.scheme:  # a relative reference
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(base, uri))
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise ParameterError(f"location {uri!r}: not a file:// URI of a local file")
    if os.name == "nt":  # pragma: no cover - Windows drive letters
        from urllib.request import url2pathname

        return url2pathname(parts.path)
    return os.fsdecode(urllib.parse.unquote_to_bytes(parts.path))


# --------------------------------------------------------------------------- writers
def _needs_uri(path: str) -> bool:
    """Whether ``path`` cannot be an M3U line as it is: not UTF-8, or a line break in it."""
    if "\n" in path or "\r" in path:
        return True
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def m3u8_bytes(rows, *, title: str | None = None, relative_to=None) -> bytes:
    """An extended M3U playlist (UTF-8) of ``rows``.

    Parameters
    ----------
    rows : iterable of mapping
        ``path`` and optional ``artist``, ``title``, ``duration_s``,
        ``start_s``/``end_s`` (see the module docstring).
    title : str, optional
        Written as ``#PLAYLIST:title``.
    relative_to : path-like, optional
        Write paths relative to this folder (give the folder the playlist is
        saved in: players resolve relative paths from there).  A path on
        another drive stays absolute.  Default: absolute paths.

    Returns
    -------
    bytes
        Valid UTF-8. One entry per row; a path whose name is not UTF-8 or
        holds a line break (``\n``, ``\r``: it would end the M3U line) is
        written as an absolute ``file://`` URI with its raw bytes
        percent-encoded (:func:`path_to_uri`; ``\n`` is ``%0A``), so the
        playlist stays UTF-8, one line per entry, and players still open the
        same file (as in XSPF).

    Raises
    ------
    ParameterError
        A row without ``path``, or with a non-numeric or inverted ``start_s``/``end_s``.
    """
    lines = [b"#EXTM3U"]
    if _text(title):
        lines.append(b"#PLAYLIST:" + _text(title).encode())
    base = os.path.abspath(os.fspath(relative_to)) if relative_to is not None else None
    for row in rows:
        path = _path(row)
        start, end = _segment(row)
        d = _duration_s(row)
        lines.append(f"#EXTINF:{-1 if d is None else math.floor(d + 0.5)},{_display_name(row)}".encode())
        if start is not None:
            lines.append(f"#EXTVLCOPT:start-time={_seconds_text(start)}".encode())
        if end is not None:
            lines.append(f"#EXTVLCOPT:stop-time={_seconds_text(end)}".encode())
        p = os.path.abspath(path)
        if _needs_uri(p):
            # a name that is not UTF-8, or holds a line break (which would end the M3U line):
            # the file stays valid UTF-8 with one line per entry and the path still opens the
            # file, as a file:// URI with the raw bytes percent-encoded (b"\x96" -> %96,
            # "\n" -> %0A), which VLC, mpv and read_m3u8 open
            lines.append(path_to_uri(p).encode("ascii"))
            continue
        if base is not None:
            try:
                p = os.path.relpath(p, base)
            except ValueError:  # another drive (Windows): only an absolute path reaches it
                pass
            if p.startswith("#"):  # a line starting with '#' is a comment to every M3U reader
                p = os.path.join(os.curdir, p)
        lines.append(os.fsencode(p))
    return b"\n".join(lines) + b"\n"


def xspf_bytes(rows, *, title: str | None = None) -> bytes:
    """An XSPF 1 playlist (UTF-8 XML) of ``rows``.

    Parameters
    ----------
    rows : iterable of mapping
        As for :func:`m3u8_bytes`; ``album`` is written too.
    title : str, optional
        The playlist's ``<title>``.

    Returns
    -------
    bytes
        ``<playlist version="1" xmlns="http://xspf.org/ns/0/">`` with one
        ``<trackList>``; each ``<track>`` has an absolute ``file://``
        ``<location>`` (paths are never relative in XSPF: the spec's
        locations are URIs, and absolute ones open in every player).

    Raises
    ------
    ParameterError
        As :func:`m3u8_bytes`.
    """
    body = []
    vlc = False
    for row in rows:
        start, end = _segment(row)
        d = _duration_s(row)
        body.append("    <track>")
        body.append(f"      <location>{escape(path_to_uri(_path(row)))}</location>")
        for tag, key in (("title", "title"), ("creator", "artist"), ("album", "album")):
            v = _text(row.get(key))
            if v:
                body.append(f"      <{tag}>{escape(v)}</{tag}>")
        if d is not None:
            body.append(f"      <duration>{round(1000 * d)}</duration>")
        if start is not None or end is not None:
            vlc = True
            body.append(f"      <extension application={quoteattr(VLC_APPLICATION)}>")
            if start is not None:
                body.append(f"        <vlc:option>start-time={_seconds_text(start)}</vlc:option>")
            if end is not None:
                body.append(f"        <vlc:option>stop-time={_seconds_text(end)}</vlc:option>")
            body.append("      </extension>")
        body.append("    </track>")
    ns = f' xmlns="{XSPF_NS}"' + (f' xmlns:vlc="{VLC_NS}"' if vlc else "")
    head = ['<?xml version="1.0" encoding="UTF-8"?>', f'<playlist version="1"{ns}>']
    if _text(title):
        head.append(f"  <title>{escape(_text(title))}</title>")
    out = head + ["  <trackList>"] + body + ["  </trackList>", "</playlist>"]
    return ("\n".join(out) + "\n").encode("utf-8")


def write_m3u8(path, rows, *, title: str | None = None, relative_to=None) -> None:
    """Write :func:`m3u8_bytes` to ``path`` atomically (all or nothing).

    Raises
    ------
    ParameterError
        As :func:`m3u8_bytes` (nothing is written).
    OSError
        The folder cannot be written (the previous file, if any, stays).
    """
    atomic_write_bytes(path, m3u8_bytes(rows, title=title, relative_to=relative_to))


def write_xspf(path, rows, *, title: str | None = None) -> None:
    """Write :func:`xspf_bytes` to ``path`` atomically (all or nothing).

    Raises
    ------
    ParameterError
        As :func:`xspf_bytes` (nothing is written).
    OSError
        The folder cannot be written (the previous file, if any, stays).
    """
    atomic_write_bytes(path, xspf_bytes(rows, title=title))


# --------------------------------------------------------------------------- readers
def _entry(path, *, name=None, duration_s=None, start_s=None, end_s=None, album=None):
    artist, _, title = name.partition(" - ") if name and " - " in name else (None, None, name or None)
    return {"path": path, "artist": artist or None, "title": title or None, "album": album,
            "duration_s": duration_s, "start_s": start_s, "end_s": end_s}


def _float(text, where):
    try:
        v = float(text)
    except ValueError:
        raise ParameterError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ParameterError(f"{where}: {text!r} is not a finite number")
    return v


def _vlc_option(opt: str, entry: dict, where: str) -> None:
    key, _, value = opt.strip().partition("=")
    if key == "start-time":
        entry["start_s"] = _float(value, where)
    elif key == "stop-time":
        entry["end_s"] = _float(value, where)


def _media_fragment(fragment: str, entry: dict) -> None:
    m = _MEDIA_FRAGMENT.match(urllib.parse.unquote(fragment))
    if m:
        entry["start_s"] = float(m.group(1)) if m.group(1) else entry["start_s"]
        entry["end_s"] = float(m.group(2)) if m.group(2) else entry["end_s"]


def read_m3u8(path) -> list[dict]:
    """The entries of an (extended) M3U / M3U8 playlist.

    Parameters
    ----------
    path : path-like
        The playlist.  Relative entries are resolved from its folder; lines
        are UTF-8 (bytes that are not are kept as surrogates, so a raw
        non-UTF-8 file name still opens); ``file://`` URIs are accepted.

    Returns
    -------
    list of dict
        ``path`` (absolute), ``artist`` / ``title`` (the ``#EXTINF`` text
        split at the first ``" - "``), ``album`` (``None``), ``duration_s``
        (``None`` for ``-1``), ``start_s`` / ``end_s`` (from ``#EXTVLCOPT``).

    Raises
    ------
    OSError
        The playlist cannot be read.
    ParameterError
        A malformed ``#EXTINF`` duration or VLC time (the message names the
        playlist and the line).
    """
    where_file = _shown(os.fspath(path))
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    out, pending = [], _entry(None)
    for n, bline in enumerate(raw.splitlines(), 1):
        line = bline.decode("utf-8", "surrogateescape").strip()
        where = f"{where_file} line {n}"
        if not line:
            continue
        if line.startswith("#EXTINF:"):
            secs, _, name = line[len("#EXTINF:"):].partition(",")
            d = _float(secs.split()[0] if secs.split() else "", where)
            named = _entry(None, name=name.strip())
            pending.update(artist=named["artist"], title=named["title"], duration_s=None if d < 0 else d)
        elif line.startswith("#EXTVLCOPT:"):
            _vlc_option(line[len("#EXTVLCOPT:"):], pending, where)
        elif line.startswith("#"):
            continue
        else:
            if re.match(r"^file:", line, re.IGNORECASE):
                p, frag = uri_to_path(line.split("#", 1)[0]), urllib.parse.urlsplit(line).fragment
                _media_fragment(frag, pending)
            else:
                p = os.path.normpath(os.path.join(folder, line))
            pending["path"] = p
            out.append(pending)
            pending = _entry(None)
    return out


def read_xspf(path) -> list[dict]:
    """The tracks of an XSPF playlist.

    Parameters
    ----------
    path : path-like
        The playlist (XSPF version 0 or 1).

    Returns
    -------
    list of dict
        ``path`` (from the first ``file:`` ``<location>``; relative URIs
        resolved against the playlist's own URI), ``artist`` (``<creator>``),
        ``title``, ``album``, ``duration_s`` (``<duration>`` / 1000),
        ``start_s`` / ``end_s`` (VLC's ``start-time`` / ``stop-time``
        options, or a ``#t=S,E`` media fragment).  Tracks without a local
        location are left out (logged).

    Raises
    ------
    OSError
        The playlist cannot be read.
    PlaylistFileError
        Not well-formed XML, or not an XSPF playlist (``path`` and ``reason``).
    """
    where = _shown(os.fspath(path))
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise PlaylistFileError(path, f"not well-formed XML ({e})") from None
    x = f"{{{XSPF_NS}}}"
    if root.tag != x + "playlist" or root.get("version") not in ("0", "1"):
        raise PlaylistFileError(path, f"not an XSPF playlist (root <{root.tag}> version={root.get('version')!r})")
    lists = root.findall(x + "trackList")
    if len(lists) != 1:
        raise PlaylistFileError(path, f"an XSPF playlist has exactly one <trackList>, found {len(lists)}")
    base = path_to_uri(path)
    out = []
    for i, tr in enumerate(lists[0].findall(x + "track"), 1):
        e = _entry(None, album=(tr.findtext(x + "album") or None))
        e["artist"], e["title"] = tr.findtext(x + "creator") or None, tr.findtext(x + "title") or None
        dur = tr.findtext(x + "duration")
        e["duration_s"] = _float(dur.strip(), f"{where} track {i} <duration>") / 1000.0 if dur else None
        for ext in tr.findall(x + "extension"):
            if ext.get("application") == VLC_APPLICATION:
                for opt in ext.findall(f"{{{VLC_NS}}}option"):
                    _vlc_option(opt.text or "", e, f"{where} track {i} <vlc:option>")
        for loc in tr.findall(x + "location"):
            uri = (loc.text or "").strip()
            try:
                e["path"] = uri_to_path(uri.split("#", 1)[0], base=base)
            except ParameterError:
                continue
            _media_fragment(urllib.parse.urlsplit(uri).fragment, e)
            break
        if e["path"] is None:
            logger.warning("%s track %d: no file:// location, left out", where, i)
            continue
        out.append(e)
    return out
