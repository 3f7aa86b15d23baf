"""M3U8 and XSPF playlist files of indexed tracks (what the web page downloads).

The files themselves are made by :mod:`recommender.io.playlist_files` (the one
implementation, shared with the CLI); these are the response bodies.
"""

from __future__ import annotations

from ..io.playlist_files import m3u8_bytes, xspf_bytes

__all__ = ["m3u8_text", "xspf_text"]


def m3u8_text(rows, *, title: str = "recommender playlist") -> bytes:
    """Extended M3U (UTF-8) of catalog rows, as the bytes of the response body.

    Bytes, not ``str``: a file name that is not UTF-8 is sent as its raw bytes
    (what a player needs to open the file).  See :func:`recommender.io.playlist_files.m3u8_bytes`.
    """
    return m3u8_bytes(rows, title=title)


def xspf_text(rows, *, title: str = "recommender playlist") -> bytes:
    """XSPF 1 document (absolute, percent-encoded ``file://`` locations) of catalog rows, as bytes.

    See :func:`recommender.io.playlist_files.xspf_bytes`.
    """
    return xspf_bytes(rows, title=title)
