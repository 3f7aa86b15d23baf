"""CUE sheets: an album stored as one audio file, described track by track.

A CUE sheet (``album.cue`` beside ``album.flac``) lists the tracks of a disc
image: for each ``TRACK nn AUDIO`` its title, performer, ISRC and its
``INDEX`` points (``mm:ss:ff``, 75 frames a second).  Indexing turns the file
into one catalog track per cue track (:func:`album_segments`).

Parsing is strict (:func:`parse_cue`): the commands of the CDRWIN
specification (``REM CATALOG CDTEXTFILE FILE FLAGS INDEX ISRC PERFORMER
POSTGAP PREGAP SONGWRITER TITLE TRACK``) and the CD-TEXT extras some
rippers write (``ARRANGER COMPOSER MESSAGE GENRE DISC_ID UPC_EAN``), each
where the specification allows it; anything else (an unknown command, a
malformed time, an ``INDEX`` before any ``TRACK``, track numbers that do not
increase, index times that go back) is a :class:`CueSheetError` naming the
sheet and the line.  No library on PyPI fits: ``cueparser`` and ``cuetools``
are unmaintained and accept broken sheets silently, ``deflacue`` is a
splitting tool whose parser reports no line numbers.

Encodings: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252
(the usual encoding of sheets written by Windows rippers; Latin-1 text reads
the same except in 0x80-0x9F, where the bytes cp1252 leaves undefined are
taken as Latin-1).

Track boundaries: a track starts at its ``INDEX 01`` and ends at the next
track's ``INDEX 01`` (what players do: a pregap, ``INDEX 00``, is heard at
the end of the track before it); the last track ends with the file.

A ``FILE`` with one ``AUDIO`` track (sheets with one file per track) is not
cut: the file is indexed whole, as itself, with that track's title,
performer, album... from the sheet (:class:`SheetFileEntry`,
:func:`apply_sheet_tags`).

Identity: a cue track is stored under the path
``"<audio path>#t=<start>,<end>"`` (:func:`segment_key`; W3C Media
Fragments, seconds with at most 3 decimals; the last track ``#t=<start>``),
with ``source_path`` the audio file and ``start_s``/``end_s`` the bounds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re

from ..errors import CueSheetError
from .collection import FileEntry

logger = logging.getLogger(__name__)

__all__ = [
    "FRAMES_PER_SECOND",
    "CueFile",
    "CueSheet",
    "CueSheetError",
    "CueTrack",
    "Segment",
    "SheetFileEntry",
    "album_segments",
    "apply_sheet_tags",
    "apply_track_tags",
    "decode_cue",
    "expand_albums",
    "parse_cue",
    "read_cue",
    "resolve_file",
    "segment_key",
    "sheet_of",
    "sheets_in",
    "source_of_key",
    "track_tags",
]

#: CD frames (sectors) per second: the ``ff`` of ``mm:ss:ff``.
FRAMES_PER_SECOND = 75
#: A file larger than this is not a cue sheet (a 99-track sheet is ~10 KiB).
MAX_SHEET_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class CueTrack:
    """One ``TRACK`` of a sheet.

    Attributes
    ----------
    number : int
        ``TRACK nn`` (1..99).
    kind : str
        Its data type (``AUDIO``; ``MODE1/2352``... for data tracks).
    start_s : float
        ``INDEX 01`` in seconds from the start of its file.
    end_s : float or None
        The next track's ``INDEX 01`` in the same file; ``None`` for the last (to the end of the file).
    pregap_s : float or None
        ``INDEX 00`` in seconds, when given.
    title, performer, songwriter, isrc : str or None
    flags : tuple of str
    line : int
        Line of its ``TRACK`` command.
    """

    number: int
    kind: str
    start_s: float
    end_s: float | None
    pregap_s: float | None
    title: str | None
    performer: str | None
    songwriter: str | None
    isrc: str | None
    flags: tuple
    line: int


@dataclasses.dataclass(frozen=True)
class CueFile:
    """One ``FILE`` block: ``name`` as written, its ``kind`` (``WAVE``, ``MP3``...),
    its ``line`` and its tracks (audio and data)."""

    name: str
    kind: str
    line: int
    tracks: tuple

    @property
    def audio_tracks(self) -> tuple:
        return tuple(t for t in self.tracks if t.kind == "AUDIO")


@dataclasses.dataclass(frozen=True)
class CueSheet:
    """A parsed sheet: album ``title``, ``performer``, ``songwriter``, ``catalog``
    (UPC/EAN), ``rem`` (``{"GENRE": "Jazz", "DATE": "1971", ...}``, keys upper
    case), its ``files`` and the ``encoding`` it was read in."""

    path: str | None
    encoding: str
    title: str | None
    performer: str | None
    songwriter: str | None
    catalog: str | None
    rem: dict
    files: tuple


@dataclasses.dataclass(frozen=True)
class Segment:
    """A part of an audio file analysed as a track of its own (a cue track).

    Attributes
    ----------
    source : str
        The audio file.
    start_s : float
        Start in seconds (>= 0).
    end_s : float or None
        End in seconds; ``None``: to the end of the file.
    sheet : str or None
        The sheet it comes from.
    tags : tuple of (str, str)
        Tags from the sheet (:func:`track_tags` keys), as ``(key, value)`` pairs.
    """

    source: str
    start_s: float
    end_s: float | None = None
    sheet: str | None = None
    tags: tuple = ()

    @property
    def key(self) -> str:
        """The catalog path of this track (:func:`segment_key`)."""
        return segment_key(self.source, self.start_s, self.end_s)

    def content_hash(self, file_hash: str) -> str:
        """The content hash of this track from its file's: it stays with the
        bytes (a moved album keeps its tracks) and differs from track to track."""
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{file_hash}#t={_fmt(self.start_s)},{'' if self.end_s is None else _fmt(self.end_s)}".encode())
        return h.hexdigest()


def _fmt(x: float) -> str:
    s = f"{float(x):.3f}".rstrip("0").rstrip(".")
    return s or "0"


def segment_key(source, start_s: float, end_s: float | None = None) -> str:
    """``"<source>#t=<start>,<end>"``: the catalog path of a part of ``source``.

    W3C Media Fragments temporal notation, plain seconds with at most three
    decimals; ``end_s=None`` (to the end of the file) gives ``#t=<start>``.

    >>> segment_key("/m/album.flac", 0, 245.3333333)
    '/m/album.flac#t=0,245.333'
    >>> segment_key("/m/album.flac", 245.3333333)
    '/m/album.flac#t=245.333'
    """
    src = os.fspath(source)
    return f"{src}#t={_fmt(start_s)}" + ("" if end_s is None else f",{_fmt(end_s)}")


# ------------------------------------------------------------------ parsing
def decode_cue(data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` of a sheet's bytes: UTF-8 (BOM or not), UTF-16 with
    BOM, else Windows-1252 (bytes it leaves undefined read as Latin-1)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    out = []
    for b in data:  # cp1252, with its five undefined bytes as Latin-1
        try:
            out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(b))
    return "".join(out), "cp1252"


def read_cue(path) -> CueSheet:
    """Read and parse the sheet at ``path`` (:func:`parse_cue`).

    Raises
    ------
    CueSheetError
        The sheet cannot be read, is too large, or is malformed (the message
        names the sheet and the line).
    """
    p = os.fspath(path)
    try:
        size = os.path.getsize(p)
        if size > MAX_SHEET_BYTES:
            raise CueSheetError(p, None, f"{size} bytes: too large to be a cue sheet")
        with open(p, "rb") as f:
            data = f.read(MAX_SHEET_BYTES + 1)
    except OSError as e:
        raise CueSheetError(p, None, f"cannot read the sheet ({e.strerror or e})") from None
    try:
        text, enc = decode_cue(data)
    except UnicodeDecodeError as e:
        raise CueSheetError(p, None, f"not text in UTF-16 ({e.reason})") from None
    return parse_cue(text, path=p, encoding=enc)


_TIME = re.compile(r"^(\d{1,3}):(\d{2}):(\d{2})$")
_TEXT_FIELDS = {"TITLE", "PERFORMER", "SONGWRITER", "ARRANGER", "COMPOSER", "MESSAGE", "GENRE"}
_DISC_ONLY = {"CATALOG", "CDTEXTFILE", "DISC_ID", "UPC_EAN", "FILE"}
_TRACK_ONLY = {"FLAGS", "INDEX", "ISRC", "PREGAP", "POSTGAP"}
_FLAGS = {"DCP", "4CH", "PRE", "SCMS"}
_KNOWN = _TEXT_FIELDS | _DISC_ONLY | _TRACK_ONLY | {"REM", "TRACK"}


def _time(s: str, where) -> float:
    m = _TIME.match(s)
    if not m:
        raise where(f"time {s!r}: expected mm:ss:ff")
    mm, ss, ff = (int(g) for g in m.groups())
    if ss >= 60:
        raise where(f"time {s!r}: seconds must be below 60")
    if ff >= FRAMES_PER_SECOND:
        raise where(f"time {s!r}: frames must be below {FRAMES_PER_SECOND}")
    return mm * 60 + ss + ff / FRAMES_PER_SECOND


def _split_value(rest: str, where) -> tuple[str, str]:
    """``(value, what follows)`` of ``"quoted text" tail`` or ``word tail``."""
    rest = rest.strip()
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end < 0:
            raise where("unterminated quoted text")
        return rest[1:end], rest[end + 1 :].strip()
    parts = rest.split(None, 1)
    return (parts[0] if parts else ""), (parts[1].strip() if len(parts) > 1 else "")


class _Track:
    """A track being parsed."""

    def __init__(self, number, kind, line):
        self.number, self.kind, self.line = number, kind, line
        self.fields: dict = {}
        self.flags: tuple = ()
        self.indexes: dict = {}  # number -> (seconds, line)


class _Parser:
    """The state of :func:`parse_cue`: the disc's fields, the FILE blocks, the open track."""

    def __init__(self, name):
        self.name = name
        self.disc: dict = {}
        self.rem: dict = {}
        self.files: list = []  # [name, kind, line, [_Track]]
        self.track = None
        self.last_number = 0

    def line(self, lineno: int, raw: str) -> None:
        def where(reason):
            return CueSheetError(self.name, lineno, reason)

        line = raw.strip().lstrip("\ufeff")
        if not line:
            return
        parts = line.split(None, 1)
        cmd, rest = parts[0].upper(), (parts[1] if len(parts) > 1 else "")
        if cmd not in _KNOWN:
            raise where(f"unknown command {parts[0]!r}")
        if cmd == "REM":  # a comment: never an error; REM KEY value before the tracks is kept
            bits = rest.split(None, 1)
            if bits and self.track is None:
                v = bits[1].strip() if len(bits) > 1 else ""
                if len(v) >= 2 and v[0] == v[-1] == '"':
                    v = v[1:-1]
                self.rem.setdefault(bits[0].upper(), v)
            return
        if cmd in _DISC_ONLY and self.track is not None and cmd != "FILE":
            raise where(f"{cmd} must come before the first TRACK")
        if cmd in _TRACK_ONLY and self.track is None:
            raise where(f"{cmd} outside a TRACK")
        if cmd == "FILE":
            fname, kind = _split_value(rest, where)
            if not fname or not kind or len(kind.split()) != 1:
                raise where('FILE needs a file name and a type (FILE "album.flac" WAVE)')
            self.files.append([fname, kind.upper(), lineno, []])
            self.track = None
        elif cmd == "TRACK":
            self._track(rest, lineno, where)
        elif cmd == "INDEX":
            self._index(rest, lineno, where)
        elif cmd in ("PREGAP", "POSTGAP"):
            _time(rest.strip(), where)
        elif cmd == "FLAGS":
            flags = tuple(f.upper() for f in rest.split())
            if not flags or any(f not in _FLAGS for f in flags):
                raise where(f"FLAGS {rest.strip()!r}: expected some of {sorted(_FLAGS)}")
            self.track.flags = flags
        else:  # text fields, ISRC, CATALOG, CDTEXTFILE, DISC_ID, UPC_EAN
            value, tail = _split_value(rest, where)
            quoted = rest.strip().startswith('"')
            if tail and quoted:
                raise where(f"unexpected text after the quoted value: {tail!r}")
            if not quoted:
                value = rest.strip()  # an unquoted value is the rest of the line
            if cmd == "ISRC" and not re.fullmatch(r"[A-Za-z0-9]{12}", value):
                raise where(f"ISRC {value!r}: expected 12 letters and digits")
            (self.track.fields if self.track is not None else self.disc)[cmd] = value

    def _track(self, rest, lineno, where) -> None:
        if not self.files:
            raise where("TRACK before any FILE")
        bits = rest.split()
        if len(bits) != 2 or not bits[0].isdigit():
            raise where("TRACK needs a number and a type (TRACK 01 AUDIO)")
        number = int(bits[0])
        if not 1 <= number <= 99:
            raise where(f"track number {bits[0]}: must be 1 to 99")
        if number <= self.last_number:
            raise where(f"track number {number} after track {self.last_number}: numbers must increase")
        if self.track is not None:
            _close_track(self.track, self.name)
        self.last_number = number
        self.track = _Track(number, bits[1].upper(), lineno)
        self.files[-1][3].append(self.track)

    def _index(self, rest, lineno, where) -> None:
        bits = rest.split()
        if len(bits) != 2 or not bits[0].isdigit():
            raise where("INDEX needs a number and a time (INDEX 01 00:00:00)")
        num = int(bits[0])
        if num > 99:
            raise where(f"index number {bits[0]}: must be 0 to 99")
        t = _time(bits[1], where)
        track = self.track
        if track.indexes:
            last_num = max(track.indexes)
            if num <= last_num:
                raise where(f"INDEX {num:02d} after INDEX {last_num:02d}: index numbers must increase")
            if t <= track.indexes[last_num][0]:
                raise where(f"INDEX {num:02d} at {bits[1]} is not after INDEX {last_num:02d} of this track")
        else:
            tracks = self.files[-1][3]
            prev = tracks[-2] if len(tracks) > 1 else None
            if prev is not None and t <= max(v[0] for v in prev.indexes.values()):
                raise where(f"INDEX {num:02d} at {bits[1]} overlaps track {prev.number:02d} "
                            "(times must increase through the file)")
        track.indexes[num] = (t, lineno)

    def sheet(self, path, encoding) -> CueSheet:
        if self.track is not None:
            _close_track(self.track, self.name)
        if not any(f[3] for f in self.files):
            raise CueSheetError(self.name, None, "no TRACK in the sheet")
        out_files = []
        for fname, kind, line, tracks in self.files:
            done = []
            for i, t in enumerate(tracks):
                nxt = tracks[i + 1] if i + 1 < len(tracks) else None
                done.append(CueTrack(
                    number=t.number, kind=t.kind, start_s=t.indexes[1][0],
                    end_s=nxt.indexes[1][0] if nxt is not None else None,
                    pregap_s=t.indexes[0][0] if 0 in t.indexes else None,
                    title=t.fields.get("TITLE"), performer=t.fields.get("PERFORMER"),
                    songwriter=t.fields.get("SONGWRITER") or t.fields.get("COMPOSER"),
                    isrc=t.fields.get("ISRC"), flags=t.flags, line=t.line,
                ))
            out_files.append(CueFile(fname, kind, line, tuple(done)))
        d = self.disc
        return CueSheet(path=path, encoding=encoding, title=d.get("TITLE"), performer=d.get("PERFORMER"),
                        songwriter=d.get("SONGWRITER"), catalog=d.get("CATALOG") or d.get("UPC_EAN"),
                        rem=self.rem, files=tuple(out_files))


def parse_cue(text: str, *, path=None, encoding: str = "utf-8") -> CueSheet:
    """Parse the text of a CUE sheet, strictly.

    Parameters
    ----------
    text : str
        The sheet (lines end with LF, CRLF or CR).
    path : str, optional
        The sheet's path, named in errors.
    encoding : str
        Recorded in the result.

    Returns
    -------
    CueSheet

    Raises
    ------
    CueSheetError
        Naming the sheet and the line: unknown command, a command where the
        specification does not allow it, a missing or malformed argument,
        a time that is not ``mm:ss:ff`` (``ss`` < 60, ``ff`` < 75), track or
        index numbers that do not increase, a track without ``INDEX 01``,
        index times that go back or overlap the previous track, a sheet without tracks.
    """
    parser = _Parser(path if path is not None else "<cue sheet>")
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parser.line(lineno, raw)
    return parser.sheet(path, encoding)


def _close_track(t: _Track, name) -> None:
    if 1 not in t.indexes:
        raise CueSheetError(name, t.line, f"TRACK {t.number:02d} has no INDEX 01")


# ------------------------------------------------------------------ sheets and files
def sheets_in(folder: str) -> list[str]:
    """The ``.cue`` files of ``folder`` (any case; hidden and ``._*`` left out), sorted."""
    out = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.lower().endswith(".cue") and not e.name.startswith(".") and e.is_file():
                out.append(e.path)
    return sorted(out)


def resolve_file(sheet: CueSheet, block: CueFile, audio: dict) -> str:
    """The audio file a ``FILE`` block of ``sheet`` names.

    Tried in order: the name relative to the sheet's folder (``\\`` read as
    a folder separator too), its base name in that folder, the name's bytes
    re-encoded as the sheet's (a cp1252 sheet naming a cp1252 file name),
    and, where the named file is missing, the one audio file of the folder
    with the same stem (a sheet written for ``album.wav`` beside
    ``album.flac``).

    Parameters
    ----------
    audio : dict of str to object
        The audio files found in the sheet's folder, by path.

    Raises
    ------
    CueSheetError
        No such file among ``audio`` (naming the ``FILE`` line).
    """
    folder = os.path.dirname(os.fspath(sheet.path))
    names = [block.name, block.name.replace("\\", "/")]
    names.append(os.path.basename(names[-1]))
    if sheet.encoding == "cp1252":
        try:
            names += [os.fsdecode(n.encode("cp1252")) for n in names]
        except UnicodeEncodeError:
            pass
    for n in names:
        p = os.path.normpath(os.path.join(folder, n))
        if p in audio:
            return p
    stem = os.path.splitext(os.path.basename(names[2]))[0].lower()
    same = [p for p in audio if os.path.dirname(p) == folder and os.path.splitext(os.path.basename(p))[0].lower() == stem]
    if len(same) == 1:
        logger.info("%s: FILE %r is not there; using %s (same name)", sheet.path, block.name, same[0])
        return same[0]
    raise CueSheetError(sheet.path, block.line, f"FILE {block.name!r}: no such audio file beside the sheet")


def album_segments(sheet: CueSheet, block: CueFile, source: str) -> list[Segment]:
    """The cue tracks of one ``FILE`` block as :class:`Segment` s of ``source``
    (audio tracks only, each with its :func:`track_tags`)."""
    out = []
    for t in block.audio_tracks:
        tags = track_tags(sheet, t)
        out.append(Segment(source=source, start_s=t.start_s, end_s=t.end_s, sheet=sheet.path,
                           tags=tuple(sorted(tags.items()))))
    return out


def track_tags(sheet: CueSheet, track: CueTrack) -> dict:
    """What the sheet says of one track, in :func:`recommender.io.collection.read_tags`'
    easy tag names: ``title``, ``artist`` (the track's performer, else the
    album's), ``albumartist``, ``album``, ``tracknumber``, ``composer``,
    ``isrc``, ``genre``, ``date``, ``discnumber`` (from ``REM``); only those
    the sheet gives."""
    out = {
        "title": track.title,
        "artist": track.performer or sheet.performer,
        "albumartist": sheet.performer,
        "album": sheet.title,
        "tracknumber": str(track.number),
        "composer": track.songwriter or sheet.songwriter,
        "isrc": track.isrc,
        "genre": sheet.rem.get("GENRE"),
        "date": sheet.rem.get("DATE"),
        "discnumber": sheet.rem.get("DISCNUMBER"),
    }
    return {k: v for k, v in out.items() if v}


_KEY_TAIL = re.compile(r"#t=\d+(?:\.\d+)?(?:,\d+(?:\.\d+)?)?$")


def source_of_key(path) -> str | None:
    """The audio file of a cue track's catalog path (:func:`segment_key`), or ``None``
    when ``path`` does not end like one.

    >>> source_of_key("/m/album.flac#t=0,245.333"), source_of_key("/m/song.flac")
    ('/m/album.flac', None)
    """
    p = os.fspath(path)
    m = _KEY_TAIL.search(p)
    return p[: m.start()] if m else None


def sheet_of(source) -> str | None:
    """The ``.cue`` sheet that cuts the audio file ``source`` into tracks, as indexing
    chooses it (:func:`expand_albums`), or ``None`` (no usable sheet beside it).

    >>> sheet_of("/m/album.flac")  # doctest: +SKIP
    '/m/album.cue'
    """
    src = os.path.abspath(os.fspath(source))
    try:
        sheets = sheets_in(os.path.dirname(src))
    except OSError:
        return None
    usable = []
    for sp in sheets:  # quietly: sheets of other albums in the folder name other files
        try:
            sheet = read_cue(sp)
        except (CueSheetError, OSError):
            continue
        if any(len(b.audio_tracks) >= 2 and _names(sheet, b, src) for b in sheet.files):
            usable.append(sp)
    stem = os.path.splitext(src)[0]
    return next((sp for sp in usable if os.path.splitext(sp)[0] == stem), usable[0] if usable else None)


def _names(sheet: CueSheet, block: CueFile, path: str) -> bool:
    """Whether the ``FILE`` block names the audio file ``path`` (:func:`resolve_file`)."""
    try:
        return resolve_file(sheet, block, {path: None}) == path
    except CueSheetError:
        return False


@dataclasses.dataclass(frozen=True)
class SheetFileEntry(FileEntry):
    """A whole audio file that a ``FILE`` block with one ``AUDIO`` track describes:
    indexed as itself (``segment`` ``None``: same path, hash and analysis as
    any file), with the ``sheet`` it comes from and that track's
    :func:`track_tags` as ``(key, value)`` pairs in ``tags``
    (:func:`apply_sheet_tags`)."""

    sheet: str | None = None
    tags: tuple = ()


def apply_sheet_tags(file_tags: dict, entry) -> dict:
    """The tags of a walk entry that is a whole file: ``file_tags``
    (:func:`recommender.io.collection.read_tags`) with what its sheet says of
    its one track in their place, as :func:`apply_track_tags` does for a cue
    track (a title the sheet does not give stays the file's); ``file_tags``
    itself for an entry without a sheet."""
    if not isinstance(entry, SheetFileEntry) or not entry.tags:
        return file_tags
    out = apply_track_tags(file_tags, Segment(source=entry.path, start_s=0.0, sheet=entry.sheet, tags=entry.tags))
    if not dict(entry.tags).get("title"):
        out["title"] = file_tags.get("title")  # the file is the whole track: not "<title> (n)"
    return out


def _int_prefix(s) -> int | None:
    m = re.match(r"\s*(\d{1,9})", str(s or ""))
    return int(m.group(1)) if m else None


def apply_track_tags(file_tags: dict, seg: Segment) -> dict:
    """A cue track's tags: ``file_tags`` (:func:`recommender.io.collection.read_tags`
    of the audio file) with what the sheet says of the track in their place
    (title, artist, album artist, album, track number, year, genre, disc;
    ``tags`` holds every value, the sheet's first)."""
    sheet = dict(seg.tags)
    out = dict(file_tags)
    out["tags"] = {**(file_tags.get("tags") or {}), **{k: [v] for k, v in sheet.items()}}
    for easy, field in (("title", "title"), ("artist", "artist"), ("albumartist", "album_artist"),
                        ("album", "album"), ("genre", "genre")):
        if sheet.get(easy):
            out[field] = sheet[easy]
    for easy, field in (("tracknumber", "track_no"), ("date", "year"), ("discnumber", "disc_no")):
        if _int_prefix(sheet.get(easy)) is not None:
            out[field] = _int_prefix(sheet.get(easy))
    if not sheet.get("title"):  # the file's title (or name) is the album's: say which track
        out["title"] = f"{out.get('title') or os.path.basename(seg.source)} ({sheet.get('tracknumber', '?')})"
    return out


def _whole_file(sheet: CueSheet, block: CueFile, audio: dict) -> tuple | None:
    """``(audio path, tags)`` of a ``FILE`` block with one ``AUDIO`` track: the file it
    names and that track's :func:`track_tags` as sorted pairs; ``None`` when it names
    no file found (a file with one track is not an album to cut: not an error)."""
    try:
        src = resolve_file(sheet, block, audio)
    except CueSheetError as e:
        logger.debug("%s line %s: %s", sheet.path, e.line, e.reason)
        return None
    return src, tuple(sorted(track_tags(sheet, block.audio_tracks[0]).items()))


def _keep_new(src: str, new_sheet: str, old_sheet: str) -> bool:
    """Two sheets describe ``src``: the new one wins only when it has the file's stem and the old does not."""
    stem = os.path.splitext(src)[0]
    return os.path.splitext(new_sheet)[0] == stem and os.path.splitext(old_sheet)[0] != stem


def expand_albums(found: dict, *, sheet_errors: list | None = None) -> dict:
    """The walk's ``{path: FileEntry}`` with every audio file that a sheet beside it
    cuts into tracks replaced, in place, by one entry per cue track.

    The ``.cue`` files of each folder holding a found audio file are read;
    a ``FILE`` block with two or more ``AUDIO`` tracks cuts the file it
    names (:func:`resolve_file`); a block with one ``AUDIO`` track (a sheet
    with one ``FILE`` per track) leaves its file whole, as a
    :class:`SheetFileEntry` carrying that track's title, performer, album...
    (:func:`apply_sheet_tags`), ``mtime_ns`` the later of the file's and the
    sheet's.  A sheet that cannot be used (malformed,
    naming a missing file) is logged as a warning naming the sheet and the
    line, appended to ``sheet_errors`` as ``(sheet, reason)``, and the audio
    file stays whole.  Two usable sheets for one file: the one with the
    file's stem wins (else the first by name), the other is reported.

    Parameters
    ----------
    found : dict of str to FileEntry
        In walk order.
    sheet_errors : list, optional
        Receives ``(sheet path, reason)`` for each sheet not used.

    Returns
    -------
    dict of str to FileEntry
        Same order; a cue track's entry has ``path`` :func:`segment_key`,
        the audio file's ``size``, ``mtime_ns`` the later of the audio
        file's and the sheet's, and its ``segment``.
    """
    from .collection import display_path

    def report(sheet, reason):
        logger.warning("%s: %s", display_path(sheet), reason)
        if sheet_errors is not None:
            sheet_errors.append((sheet, display_path(reason)))

    by_dir: dict = {}
    for p, fe in found.items():
        if fe.segment is None:
            by_dir.setdefault(os.path.dirname(p), {})[p] = fe
    replace: dict = {}
    for folder, audio in by_dir.items():
        try:
            sheets = sheets_in(folder)
        except OSError as e:
            logger.debug("cannot list %s for cue sheets: %s", display_path(folder), e)
            continue
        claims: dict = {}  # audio path -> (sheet, segments, sheet mtime_ns)
        singles: dict = {}  # audio path -> (sheet, its one track's tags, sheet mtime_ns)
        for sp in sheets:
            try:
                sheet = read_cue(sp)
                mtime = os.stat(sp).st_mtime_ns
                mine, whole = {}, []
                for block in sheet.files:
                    if len(block.audio_tracks) >= 2:
                        src = resolve_file(sheet, block, audio)
                        mine[src] = album_segments(sheet, block, src)
                    elif len(block.audio_tracks) == 1:  # a file with one track is that track: its tags
                        whole.append(_whole_file(sheet, block, audio))
            except CueSheetError as e:
                where = f"line {e.line}: " if e.line else ""
                report(sp, f"{where}{e.reason}; not used (its audio file is indexed whole)")
                continue
            except OSError as e:
                report(sp, f"cannot read the sheet ({e.strerror or e}); not used")
                continue
            for src, tags in filter(None, whole):  # (quietly: a whole file keeps its audio either way)
                if src not in singles or _keep_new(src, sp, singles[src][0]):
                    singles[src] = (sp, tags, mtime)
            for src, segs in mine.items():
                prev = claims.get(src)
                if prev is not None:
                    keep_new = _keep_new(src, sp, prev[0])
                    loser = prev[0] if keep_new else sp
                    report(loser, f"{display_path(src)} is also described by "
                                  f"{display_path(sp if keep_new else prev[0])}; this sheet is not used")
                    if not keep_new:
                        continue
                claims[src] = (sp, segs, mtime)
        for src, (sp, segs, mtime) in claims.items():
            fe = audio[src]
            replace[src] = [FileEntry(s.key, fe.size, max(fe.mtime_ns, mtime), segment=s) for s in segs]
            logger.debug("%s: %d tracks from %s", display_path(src), len(segs), display_path(sp))
        for src, (sp, tags, mtime) in singles.items():
            if src not in claims:  # a sheet that cuts the file wins over one that names it whole
                fe = audio[src]
                replace[src] = [SheetFileEntry(fe.path, fe.size, max(fe.mtime_ns, mtime), sheet=sp, tags=tags)]
    if not replace:
        return found
    out: dict = {}
    for p, fe in found.items():
        for e in replace.get(p, (fe,)):
            out[e.path] = e
    return out
