"""Finding audio files, reading their tags, and fingerprinting their bytes.

These are the cheap, TensorFlow-free steps of indexing: they decide which
files must be analysed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)

__all__ = ["FileEntry", "iter_audio_files", "stat_entry", "content_hash", "read_tags"]

_HASH_CHUNK = 256 * 1024


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """A file found on disk: absolute path, size in bytes, mtime in ns."""

    path: str
    size: int
    mtime_ns: int


def _audio_ext(name: str) -> bool:
    from .audio import is_audio_path

    return is_audio_path(name)


def iter_audio_files(paths: Iterable, *, errors: list | None = None) -> Iterator[str]:
    """Absolute paths of the audio files named by ``paths``, recursively.

    A path that is a file is yielded as given (whatever its extension); a
    directory is walked recursively and files with an audio extension are
    yielded, sorted for a stable order.  Symbolic links to directories are not
    followed (no loops); links to files are.  Problems (a path that does not
    exist, an unreadable directory) are appended to ``errors`` as
    ``(path, reason)`` when given, else logged.
    """

    def report(p, reason):
        if errors is not None:
            errors.append((p, reason))
        else:
            logger.warning("%s: %s", p, reason)

    seen = set()
    for p in paths:
        p = os.path.abspath(os.fspath(p))
        if os.path.isdir(p):
            def onerror(e, _p=p):
                report(getattr(e, "filename", None) or _p, f"cannot list directory ({e.strerror or e})")

            for root, dirs, files in os.walk(p, onerror=onerror, followlinks=False):
                dirs.sort()
                for f in sorted(files):
                    if _audio_ext(f):
                        fp = os.path.join(root, f)
                        if fp not in seen:
                            seen.add(fp)
                            yield fp
        elif os.path.lexists(p):
            if p not in seen:
                seen.add(p)
                yield p
        else:
            report(p, "no such file or directory")


def stat_entry(path: str) -> FileEntry:
    """``FileEntry`` for ``path``; raises ``OSError`` if it cannot be stat'ed."""
    st = os.stat(path)
    return FileEntry(path, int(st.st_size), int(st.st_mtime_ns))


def content_hash(path: str, *, size: int | None = None) -> str:
    """Fingerprint of a file's bytes: BLAKE2b of its size and of three 256-KiB
    chunks (start, middle, end) — the whole file when it is under 768 KiB.

    Reading three chunks instead of the whole file keeps re-scans of large
    collections fast; it is used to recognise moved files and duplicates of
    the same encoded file, not as a security digest.
    """
    if size is None:
        size = os.path.getsize(path)
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        if size <= 3 * _HASH_CHUNK:
            h.update(f.read())
        else:
            for off in (0, (size - _HASH_CHUNK) // 2, size - _HASH_CHUNK):
                f.seek(off)
                h.update(f.read(_HASH_CHUNK))
    return h.hexdigest()


def _first(tags, *keys):
    for k in keys:
        v = tags.get(k)
        if v:
            v = v[0] if isinstance(v, list) else v
            v = str(v).strip()
            if v:
                return v
    return None


def _int_prefix(s):
    if not s:
        return None
    digits = ""
    for ch in str(s).strip():
        if ch.isdigit():
            digits += ch
        else:
            break
    return int(digits) if digits else None


def read_tags(path: str) -> dict:
    """Artist, album, title, year, genre and track number from a file's tags.

    Uses :mod:`mutagen` (ID3, Vorbis comments, MP4 atoms, FLAC…).  Missing
    values are ``None``; when a file carries no title, the file name (without
    extension) is used, and when it carries no album, the name of the folder
    it sits in (the usual ``Artist/Album/track`` layout).  Never raises for a
    broken file: tags are a convenience, the audio decides whether the file is
    usable.
    """
    out = {"artist": None, "album": None, "title": None, "year": None, "genre": None, "track_no": None}
    try:
        import mutagen

        mf = mutagen.File(path, easy=True)
        tags = dict(mf.tags) if mf is not None and mf.tags is not None else {}
    except Exception as e:  # mutagen raises many types on broken files
        logger.debug("no tags for %s: %s", path, e)
        tags = {}
    tags = {str(k).lower(): v for k, v in tags.items()}
    out["artist"] = _first(tags, "artist", "albumartist", "performer")
    out["album"] = _first(tags, "album")
    out["title"] = _first(tags, "title")
    out["genre"] = _first(tags, "genre")
    out["year"] = _int_prefix(_first(tags, "date", "year", "originaldate"))
    out["track_no"] = _int_prefix(_first(tags, "tracknumber"))
    if not out["title"]:
        out["title"] = os.path.splitext(os.path.basename(path))[0]
    if not out["album"]:
        out["album"] = os.path.basename(os.path.dirname(path)) or None
    return out
