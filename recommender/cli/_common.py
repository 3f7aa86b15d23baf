"""Helpers every command module uses: JSON and table output, M3U files, query arguments."""

from __future__ import annotations

import json
import math
import os
import re

from .._utils import atomic_write, json_default
from ..io.collection import display_path

__all__ = ["print_json", "json_text", "display", "records", "write_m3u", "query_arg"]


def _cli_default(o):
    try:
        return json_default(o)
    except TypeError:
        return str(o)


_SURROGATE = re.compile("[\ud800-\udfff]")


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
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


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


def _m3u_bytes(text: str) -> bytes:
    try:  # a path: its own bytes, whatever they are (what a player needs to open the file)
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def write_m3u(path, rows) -> None:
    """Write ``rows`` (dicts with ``path``, optional ``artist``/``title``) as an M3U playlist, atomically.

    Lines are UTF-8; a path whose name is not UTF-8 is written as its raw
    bytes, so that a player opens the same file.
    """

    def write(fh):
        fh.write(b"#EXTM3U\n")
        for r in rows:
            title = " - ".join(display(x) for x in (r.get("artist"), r.get("title")) if isinstance(x, str) and x)
            fh.write(b"#EXTINF:-1," + title.encode("utf-8") + b"\n" + _m3u_bytes(str(r["path"])) + b"\n")

    atomic_write(path, write, binary=True)


def query_arg(q: str):
    """A track id (digits that are not an existing file) or a path."""
    return int(q) if q.strip().isdigit() and not os.path.exists(q) else q
