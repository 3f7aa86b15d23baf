"""Helpers every command module uses: JSON and table output, playlist files, query arguments."""

from __future__ import annotations

import json
import math
import os

from .._utils import escape_surrogates, json_default
from ..io.collection import display_path

__all__ = ["print_json", "json_text", "display", "records", "write_m3u", "playlist_rows", "add_playlist_file_args",
           "write_playlist_files", "query_arg"]


def _cli_default(o):
    try:
        return json_default(o)
    except TypeError:
        return str(o)


def json_text(obj, *, indent=2) -> str:
    """``obj`` as JSON text that is valid UTF-8, whatever file names it holds.

    A file name whose bytes are not UTF-8 is held by Python with lone
    surrogates (``os.fsdecode``: byte 0x96 is ``"\\udc96"``); those, and only
    those, are written as ``\\uXXXX`` escapes (``"\\udc96"``).  Python's
    :func:`json.loads` reads them back to the same ``str``, and
    :func:`os.fsencode` turns that into the original bytes, so the path still
    opens the file.  Everything else is written as UTF-8 text.
    """
    try:
        s = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False, default=_cli_default)
    except ValueError:  # NaN or infinity somewhere: strict JSON has no such numbers
        s = json.dumps(_finite(obj), indent=indent, ensure_ascii=False, allow_nan=False, default=_cli_default)
    return escape_surrogates(s)


def _finite(o):
    """``o`` with every NaN / infinity (float or NumPy value) as ``None``."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if not isinstance(o, (str, int, float, type(None))):
        o = _cli_default(o)  # NumPy values and arrays; anything else as its str
    if isinstance(o, (dict, list, tuple)):
        return _finite(o)
    return None if isinstance(o, float) and not math.isfinite(o) else o


def print_json(obj) -> None:
    """Print ``obj`` as indented JSON (NumPy values converted; anything else as its ``str``).

    Strict JSON in valid UTF-8: see :func:`json_text` for undecodable file-name bytes.
    """
    print(json_text(obj))


def display(text) -> str:
    """``text`` for a table or message: valid UTF-8, an undecodable file-name byte shown as ``\\xNN``."""
    return display_path(str(text)) if isinstance(text, str) else str(text)


def records(df) -> list[dict]:
    """DataFrame rows as plain dicts, missing values as ``None`` (valid JSON)."""
    out = []
    for r in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return out


def write_m3u(path, rows, *, relative_to=None) -> None:
    """Write ``rows`` (dicts with ``path``, optional ``artist``/``title``/``duration_s``) as M3U, atomically.

    The same file as ``--m3u8`` (:func:`recommender.io.playlist_files.write_m3u8`):
    lines are UTF-8; a path whose name is not UTF-8 is written as its raw
    bytes, so that a player opens the same file.
    """
    from ..io.playlist_files import write_m3u8

    write_m3u8(path, rows, relative_to=relative_to)


#: Catalog fields a playlist file uses that result frames do not carry.
_PLAYLIST_FIELDS = ("artist", "title", "album", "duration_s", "start_s", "end_s", "source_path")


def playlist_rows(rec, rows) -> list[dict]:
    """``rows`` (dicts with ``id``) completed from the catalog with what a playlist file shows.

    Adds ``album``, ``duration_s`` and, for a track that is a part of a file
    (a CUE album), ``start_s``/``end_s`` and ``source_path`` (the file the
    playlist writers name); values already in a row are kept.
    """
    out = []
    for r in rows:
        full = dict(r)
        tid = r.get("id")
        if tid is not None:
            track = rec.track(int(tid))
            for k in _PLAYLIST_FIELDS:
                if full.get(k) is None and track.get(k) is not None:
                    full[k] = track[k]
        out.append(full)
    return out


def add_playlist_file_args(parser, *, what: str = "the results") -> None:
    """``--m3u8 FILE``, ``--xspf FILE`` and ``--relative-to DIR`` on a sub-parser."""
    parser.add_argument("--m3u8", default=None, metavar="FILE",
                        help=f"also write {what} as an M3U8 playlist (UTF-8, #EXTINF duration and artist - title)")
    parser.add_argument("--xspf", default=None, metavar="FILE",
                        help=f"also write {what} as an XSPF playlist (file:// URIs, title/creator/album/duration)")
    parser.add_argument("--relative-to", default=None, metavar="DIR",
                        help="M3U/M3U8 paths relative to DIR (the folder the playlist is kept in); "
                             "default absolute. XSPF locations are always absolute URIs")


def write_playlist_files(args, rec, rows, *, title: str | None = None) -> list[str]:
    """Write the playlist files a command was asked for (``--m3u``, ``--m3u8``, ``--xspf``).

    Returns
    -------
    list of str
        The files written, in that order.

    Raises
    ------
    ParameterError
        ``--relative-to`` without an M3U file to apply it to.
    """
    from ..errors import ParameterError
    from ..io.playlist_files import write_m3u8, write_xspf

    m3u, m3u8, xspf = getattr(args, "m3u", None), getattr(args, "m3u8", None), getattr(args, "xspf", None)
    rel = getattr(args, "relative_to", None)
    if rel is not None and not (m3u or m3u8):
        raise ParameterError(f"--relative-to {rel}: applies to --m3u8/--m3u paths; give one of them")
    if not (m3u or m3u8 or xspf):
        return []
    full = playlist_rows(rec, rows)
    written = []
    for out, write in ((m3u, lambda p: write_m3u(p, full, relative_to=rel)),
                       (m3u8, lambda p: write_m3u8(p, full, title=title, relative_to=rel)),
                       (xspf, lambda p: write_xspf(p, full, title=title))):
        if out:
            write(out)
            written.append(out)
    return written


def query_arg(q: str):
    """A track id (digits that are not an existing file) or a path."""
    return int(q) if q.strip().isdigit() and not os.path.exists(q) else q
