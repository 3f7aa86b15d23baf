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

__all__ = [
    "FileEntry",
    "iter_audio_files",
    "skip_reason",
    "stat_entry",
    "content_hash",
    "read_tags",
    "display_path",
    "SKIP_OS_METADATA",
    "SKIP_HIDDEN",
    "SKIP_LOOP",
    "SKIP_SAME_FILE",
]

_HASH_CHUNK = 256 * 1024


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """A file found on disk: absolute path, size in bytes, mtime in ns.

    A track of a CUE album (:mod:`recommender.io.cuesheet`) is an entry too:
    ``path`` is its catalog path (``"<audio>#t=<start>,<end>"``), ``size``
    the audio file's, ``mtime_ns`` the later of the audio file's and the
    sheet's (editing either re-indexes the album) and ``segment`` the
    :class:`~recommender.io.cuesheet.Segment` to analyse; ``None`` for a
    whole file.
    """

    path: str
    size: int
    mtime_ns: int
    segment: object = None


def _audio_ext(name: str) -> bool:
    from .audio import is_audio_path

    return is_audio_path(name)


#: Why a walk left an entry out (keys of the ``skipped`` counts).
SKIP_OS_METADATA = "os metadata"
SKIP_HIDDEN = "hidden"
SKIP_LOOP = "folder reached again through a link"
SKIP_SAME_FILE = "file reached again through a link"

#: Names an operating system leaves in a music folder; never music.
OS_METADATA_DIRS = frozenset({".appledouble", "__macosx", ".spotlight-v100", ".fseventsd", ".trashes",
                              ".temporaryitems", "$recycle.bin", "system volume information", "@eadir"})
OS_METADATA_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".directory", "ehthumbs.db"})


def skip_reason(name: str, *, is_dir: bool, include_hidden: bool = False) -> str | None:
    """Why a walk leaves out the folder or file called ``name`` (a base name), or ``None``.

    Music players skip what an operating system leaves in a shared folder
    (macOS ``.AppleDouble/``, ``__MACOSX/``, ``._*`` resource forks,
    ``.DS_Store``; Windows ``Thumbs.db``, ``desktop.ini``; Synology
    ``@eaDir``) and, by default, hidden entries (a name starting with ``.``).

    Returns
    -------
    str or None
        :data:`SKIP_OS_METADATA`, :data:`SKIP_HIDDEN` or ``None`` (keep it).
    """
    low = name.lower()
    if name.startswith("._") or low in (OS_METADATA_DIRS if is_dir else OS_METADATA_FILES):
        return SKIP_OS_METADATA
    if name.startswith(".") and not include_hidden:
        return SKIP_HIDDEN
    return None


def iter_audio_files(paths: Iterable, *, errors: list | None = None, skipped: list | None = None,
                     include_hidden: bool = False) -> Iterator[str]:
    """Absolute paths of the audio files named by ``paths``, walked as a music player does.

    A path that is a file is yielded as given (whatever its extension, unless
    it is OS metadata such as ``._song.mp3``).  A directory is walked
    recursively, entries sorted by name for a stable order; files with an
    audio extension (any case: ``.MP3``) are yielded.  What is left out:

    * OS metadata (``.AppleDouble/``, ``__MACOSX/``, ``._*``, ``.DS_Store``,
      ``Thumbs.db``, ``desktop.ini`` ...) and hidden entries (a name starting
      with ``.``; kept when ``include_hidden``): see :func:`skip_reason`;
    * symbolic links to folders are followed, each real folder once: a link
      back to a folder already walked (a loop such as ``loop -> ..``) is not
      entered again;
    * a file reached twice (through a link to it or to its folder) is
      yielded once, under the first path the walk met.

    Files that are neither audio nor OS metadata (``cover.jpg``) are passed
    over silently.  Parameters ``errors`` and ``skipped``, when given, receive
    ``(path, reason)`` tuples: problems (a path that does not exist, an
    unreadable directory, a broken link is yielded and fails later at stat)
    and entries left out on purpose (the ``SKIP_*`` reasons); otherwise
    problems are logged as warnings and skips at debug level.  Paths are
    ``str`` (undecodable bytes of a file name as surrogate escapes, as
    :func:`os.fsdecode` gives them).
    """

    def report(p, reason):
        if errors is not None:
            errors.append((p, reason))
        else:
            logger.warning("%s: %s", p, reason)

    def skip(p, reason):
        if skipped is not None:
            skipped.append((p, reason))
        else:
            logger.debug("skipped %s: %s", p, reason)

    seen_files: set = set()  # real paths of the files yielded
    seen_dirs: set = set()  # real paths of the folders walked

    def new_file(p, real):
        if real in seen_files:
            skip(p, SKIP_SAME_FILE)
            return False
        seen_files.add(real)
        return True

    def walk_dir(top, top_real):
        stack = [(top, top_real)]
        while stack:
            d, d_real = stack.pop()
            try:
                with os.scandir(d) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as e:
                report(d, f"cannot list directory ({e.strerror or e})")
                continue
            subdirs = []
            for e in entries:
                try:
                    is_link = e.is_symlink()
                    is_dir = e.is_dir()  # follows links
                    why = skip_reason(e.name, is_dir=is_dir, include_hidden=include_hidden)
                    if is_dir:
                        if why is not None:
                            skip(e.path, why)
                            continue
                        real = os.path.realpath(e.path) if is_link else os.path.join(d_real, e.name)
                        if real in seen_dirs:
                            skip(e.path, SKIP_LOOP)
                            continue
                        seen_dirs.add(real)
                        subdirs.append((e.path, real))
                    elif why is not None:
                        if why == SKIP_HIDDEN and not _audio_ext(e.name):
                            continue  # a hidden non-audio file: nothing anyone would miss
                        skip(e.path, why)
                    elif _audio_ext(e.name):
                        real = os.path.realpath(e.path) if is_link else os.path.join(d_real, e.name)
                        if new_file(e.path, real):
                            yield e.path
                except Exception as exc:  # one entry never stops the walk
                    report(e.path, f"cannot read folder entry ({_message(exc)})")
            stack.extend(reversed(subdirs))  # depth first, in name order

    for p in paths:
        p = os.path.abspath(os.fspath(p))
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        try:
            if os.path.isdir(p):
                real = os.path.realpath(p)
                if real in seen_dirs:
                    skip(p, SKIP_LOOP)
                    continue
                seen_dirs.add(real)
                yield from walk_dir(p, real)
            elif os.path.lexists(p):
                if skip_reason(os.path.basename(p), is_dir=False, include_hidden=True) is not None:
                    skip(p, SKIP_OS_METADATA)
                elif new_file(p, os.path.realpath(p)):
                    yield p
            else:
                report(p, "no such file or directory")
        except Exception as exc:
            report(p, f"cannot read ({_message(exc)})")


def _message(exc: BaseException) -> str:
    """An exception's message for a user: ``strerror`` of an ``OSError``, never the type's name."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc).strip() or "unexpected error"


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


def display_path(path) -> str:
    """``path`` as printable, valid UTF-8 text: undecodable bytes of a file name become ``\\xNN``.

    A POSIX file name is bytes; Python holds the bytes that are not UTF-8 as
    lone surrogates (``os.fsdecode``), which cannot be printed or stored as
    text.  This is the form for tables, messages and tag fallbacks (lossy:
    keep the path itself to open the file).

    Examples
    --------
    >>> display_path(os.fsdecode(b"02 Band \\x96 Song.flac"))
    '02 Band \\\\x96 Song.flac'
    """
    s = os.fspath(path)
    if isinstance(s, bytes):
        return s.decode("utf-8", "backslashreplace")
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape" if _escapable(s) else "backslashreplace").decode(
            "utf-8", "backslashreplace")


def _escapable(s: str) -> bool:
    """Whether every surrogate in ``s`` is a ``surrogateescape`` byte (U+DC80..U+DCFF)."""
    return all(not ("\ud800" <= ch <= "\udfff") or "\udc80" <= ch <= "\udcff" for ch in s)


#: Tag keys kept (lower case, mutagen "easy" names) -> as the same key.
_ID3_FRAMES = {
    "TPE1": "artist", "TPE2": "albumartist", "TALB": "album", "TIT2": "title", "TCON": "genre",
    "TRCK": "tracknumber", "TPOS": "discnumber", "TDRC": "date", "TYER": "date", "TDOR": "originaldate",
    "TCOM": "composer", "TPE3": "conductor", "TBPM": "bpm", "TSRC": "isrc", "TCMP": "compilation",
}  # fmt: skip
_RIFF_INFO = {
    b"INAM": "title", b"IART": "artist", b"IPRD": "album", b"ICRD": "date", b"IGNR": "genre",
    b"ITRK": "tracknumber", b"IPRT": "tracknumber", b"ICMT": "comment", b"ICOP": "copyright",
}  # fmt: skip
_MAX_VALUE_CHARS = 1000  # a tag value longer than this (lyrics, notes) is cut in tags_json
_MAX_VALUES = 50


def _text(v) -> str:
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError:
            v = v.decode("cp1252", "replace")
    return display_path(str(v)).replace("\x00", "").strip()


def _values(v) -> list:
    """A tag's value(s) as a list of non-empty strings (multi-valued tags keep every value)."""
    vals = v if isinstance(v, (list, tuple)) else getattr(v, "text", [v])
    out = []
    for x in vals:
        if isinstance(x, tuple) and len(x) == 2 and all(isinstance(i, int) for i in x):  # MP4 trkn/disk
            x = f"{x[0]}/{x[1]}" if x[1] else str(x[0])
        t = _text(x)
        if t and t not in out:
            out.append(t[:_MAX_VALUE_CHARS])
    return out[:_MAX_VALUES]


def _riff_info(path: str) -> dict:
    """RIFF ``LIST/INFO`` text of a WAV file (``{easy key: [values]}``); ``{}`` if none."""
    out: dict = {}
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return out
        order = "little" if head[:4] == b"RIFF" else "big"
        for _ in range(1000):  # chunks of a sane file: a handful
            ch = f.read(8)
            if len(ch) < 8:
                break
            cid, size = ch[:4], int.from_bytes(ch[4:], order)
            if cid == b"LIST" and size <= 1 << 20:
                data = f.read(size)
                if data[:4] == b"INFO":
                    pos = 4
                    while pos + 8 <= len(data):
                        sid, ssz = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], order)
                        key = _RIFF_INFO.get(sid)
                        if key:
                            vals = _values([data[pos + 8:pos + 8 + ssz]])
                            out.setdefault(key, []).extend(x for x in vals if x not in out.get(key, []))
                        pos += 8 + ssz + (ssz & 1)
                if size & 1:
                    f.seek(1, os.SEEK_CUR)
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)
    return out


def _mutagen_tags(path: str) -> dict:
    """All text tags of a file as ``{easy key (lower case): [values]}``, via mutagen.

    ID3 frames (MP3, and the ``id3`` chunk of WAV/AIFF) are mapped to the
    easy names; MP4 atoms through :class:`mutagen.easymp4.EasyMP4`; Vorbis
    comments as they are.
    """
    import mutagen
    from mutagen.id3 import ID3

    mf = mutagen.File(path, easy=True)
    if mf is None or mf.tags is None:
        return {}
    tags = mf.tags
    out: dict = {}
    if isinstance(tags, ID3):  # WAVE, AIFF, ... (no "easy" wrapper)
        for fid, key in _ID3_FRAMES.items():
            for fr in tags.getall(fid):
                vals = _values([str(t) for t in getattr(fr, "text", [])])
                out.setdefault(key, []).extend(v for v in vals if v not in out.get(key, []))
        return out
    for k, v in tags.items():
        vals = _values(v)
        if vals:
            out[str(k).lower()] = vals
    return out


def _int_prefix(s):
    if not s:
        return None
    digits = ""
    for ch in str(s).strip():
        if ch.isdigit():
            digits += ch
        else:
            break
    return int(digits) if digits and len(digits) <= 9 else None


def _first(tags, *keys):
    for k in keys:
        v = tags.get(k)
        if v:
            return v[0]
    return None


def _joined(tags, *keys):
    for k in keys:
        v = tags.get(k)
        if v:
            return "; ".join(v)
    return None


def read_tags(path: str) -> dict:
    """The tags a music player shows, read with :mod:`mutagen`.

    Reads ID3 (MP3, and ID3 chunks in WAV/AIFF), Vorbis comments (FLAC --
    also behind a leading ID3 tag --, Ogg, Opus), MP4/iTunes atoms (AAC,
    ALAC) and the RIFF ``INFO`` list of WAV files (where the file has no ID3
    tag, or for the fields it lacks).

    Returns
    -------
    dict
        ``artist``, ``album_artist``, ``album``, ``title``, ``genre`` (text;
        a multi-valued tag is shown as its values joined with ``"; "``),
        ``year``, ``track_no``, ``disc_no`` (int: ``"3/12"`` gives 3) and
        ``tags`` (``{key: [values]}``, every text tag with all its values,
        keys in mutagen's lower-case "easy" names).  Missing values are
        ``None``; when a file carries no title, its file name (without
        extension) is used, and when it carries no album, the name of its
        folder.  Text is valid UTF-8 (undecodable file-name bytes as
        ``\\xNN``, see :func:`display_path`).  Never raises for a broken
        file or tag: tags are a convenience, the audio decides whether the
        file is usable.
    """
    try:
        tags = _mutagen_tags(path)
    except Exception as e:  # mutagen raises many types on broken files
        logger.debug("no tags for %s: %s", display_path(path), e)
        tags = {}
    if os.path.splitext(path)[1].lower() in (".wav", ".wave"):
        try:
            for k, v in _riff_info(path).items():
                tags.setdefault(k, v)
        except OSError as e:
            logger.debug("no RIFF INFO for %s: %s", display_path(path), e)
    out = {
        "artist": _joined(tags, "artist", "albumartist", "performer"),
        "album_artist": _joined(tags, "albumartist"),
        "album": _first(tags, "album"),
        "title": _first(tags, "title"),
        "year": _int_prefix(_first(tags, "date", "year", "originaldate")),
        "genre": _joined(tags, "genre"),
        "track_no": _int_prefix(_first(tags, "tracknumber")),
        "disc_no": _int_prefix(_first(tags, "discnumber")),
        "tags": tags,
    }
    if not out["title"]:
        out["title"] = display_path(os.path.splitext(os.path.basename(path))[0])
    if not out["album"]:
        out["album"] = display_path(os.path.basename(os.path.dirname(path))) or None
    return out
