"""M3U8 and XSPF playlist files of indexed tracks (what the web page downloads)."""

from __future__ import annotations

import math
import pathlib
from xml.sax.saxutils import escape

__all__ = ["m3u8_text", "xspf_text"]


def _text(v):
    return v if isinstance(v, str) and v else None


def _display(row) -> str:
    return " - ".join(x for x in (_text(row.get("artist")), _text(row.get("title"))) if x)


def _seconds(row):
    d = row.get("duration_s")
    return int(round(d)) if isinstance(d, (int, float)) and math.isfinite(d) else -1


def m3u8_text(rows, *, title: str = "recommender playlist") -> str:
    """Extended M3U (UTF-8) of catalog rows (dicts with ``path`` and optional artist/title/duration_s)."""
    lines = ["#EXTM3U", f"#PLAYLIST:{title.splitlines()[0] if title else ''}"]
    for r in rows:
        name = _display(r).replace("\n", " ").replace("\r", " ")
        lines.append(f"#EXTINF:{_seconds(r)},{name}")
        lines.append(str(r["path"]).replace("\n", " "))
    return "\n".join(lines) + "\n"


def xspf_text(rows, *, title: str = "recommender playlist") -> str:
    """XSPF 1 document (``file://`` locations) of catalog rows."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<playlist version="1" xmlns="http://xspf.org/ns/0/">',
           f"  <title>{escape(title)}</title>", "  <trackList>"]
    for r in rows:
        out.append("    <track>")
        out.append(f"      <location>{escape(pathlib.Path(r['path']).absolute().as_uri())}</location>")
        for tag, key in (("creator", "artist"), ("title", "title"), ("album", "album")):
            if _text(r.get(key)):
                out.append(f"      <{tag}>{escape(r[key])}</{tag}>")
        if _seconds(r) >= 0:
            out.append(f"      <duration>{1000 * _seconds(r)}</duration>")
        out.append("    </track>")
    out += ["  </trackList>", "</playlist>"]
    return "\n".join(out) + "\n"
