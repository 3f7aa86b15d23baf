"""Read and write four analysis fields in a file's own tags, with :mod:`mutagen`.

The fields and where each format keeps them (the frame or field players read):

=========  ==============  ===========================  ==================================  ============
field      MP3 (ID3v2.4)   FLAC / Ogg Vorbis / Opus     MP4 / M4A (AAC, ALAC)               WAV / AIFF
=========  ==============  ===========================  ==================================  ============
``bpm``    ``TBPM``        ``BPM``                      ``tmpo`` (integer atom)             ``id3 `` chunk:
``key``    ``TKEY``        ``INITIALKEY`` (and ``KEY``)  ``----:com.apple.iTunes:initialkey``  the same ID3v2.4
``mood``   ``TMOO``        ``MOOD``                     ``----:com.apple.iTunes:MOOD``      frames as MP3
``genre``  ``TCON``        ``GENRE``                    ``©gen``                            (``TCON``...)
=========  ==============  ===========================  ==================================  ============

A value is a list of strings (``[]``: the field is absent); several values
are written the way each format holds several (ID3v2.4: one frame with
NUL-separated strings; Vorbis: the field repeated; MP4: several data atoms).
Vorbis' ``KEY`` is written with ``INITIALKEY`` (Picard and Mixxx read
``KEY``, Traktor and foobar2000 ``INITIALKEY``) and read when
``INITIALKEY`` is absent.

WAV files: the values go into the ``id3 `` chunk (read by mutagen, TagLib,
foobar2000, MusicBee...).  A WAV file that also carries a RIFF ``LIST/INFO``
chunk (every file ffmpeg writes has one, with ``ISFT``; rippers write
``INAM``/``IART``...) hides that chunk from FFmpeg: libavformat keeps a
demuxer's own metadata and drops the ID3 tag ("Discarding ID3 tags because
more suitable tags were found", ``avformat_open_input``), whatever the
chunk order or the ID3 version.  So in such a file the fields are also
mirrored into the existing ``INFO`` list: ``genre`` as ``IGNR`` (the RIFF
genre) and, as RIFF has no id for them, ``bpm``/``key``/``mood`` under the
ids of their ID3 frames (``TBPM``, ``TKEY``, ``TMOO``: ``ffprobe`` then
shows the same keys as for a WAV with only an ID3 chunk).  INFO values are
UTF-8 text, several values joined with ``;`` (as ffprobe joins ID3
values); other INFO entries are kept byte for byte.  A file without an
``INFO`` list gets none.  Reading (:func:`read_fields`) takes the ID3
value, else the INFO one.  AIFF has no such conflict (ffmpeg shows its
``ID3 `` chunk).

Writing (:func:`write_fields`) never touches audio data and is atomic: the
file is copied to a temporary file in the same folder, the tags are written
there, the copy is fsynced and renamed over the original.  A full disk, a
crash or a file changed meanwhile leaves the original as it was.  A symbolic
link is followed (the link stays a link); a file with several hard links, a
read-only file and a tag mutagen would drop part of (an ID3 frame whose text
is not valid in its declared encoding, Vorbis comments that are not UTF-8,
ID3v2.3 frames mutagen cannot convert to v2.4) are refused with
:class:`TagWriteError` naming the file and the reason.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat

from .._utils import atomic_write
from ..errors import TagWriteError
from .collection import display_path

__all__ = ["FIELDS", "TagWriteError", "read_fields", "write_fields", "tag_format"]

logger = logging.getLogger(__name__)

#: The fields this module reads and writes, in display order.
FIELDS = ("bpm", "key", "mood", "genre")

_ID3 = {"bpm": "TBPM", "key": "TKEY", "mood": "TMOO", "genre": "TCON"}
_VORBIS = {"bpm": ("BPM",), "key": ("INITIALKEY", "KEY"), "mood": ("MOOD",), "genre": ("GENRE",)}
_RIFF_INFO = {"bpm": b"TBPM", "key": b"TKEY", "mood": b"TMOO", "genre": b"IGNR"}
_MP4 = {"bpm": "tmpo", "key": "----:com.apple.iTunes:initialkey", "mood": "----:com.apple.iTunes:MOOD",
        "genre": "\xa9gen"}  # fmt: skip


# --------------------------------------------------------------------------- opening
def _junk_recording_frames(junk: list) -> dict:
    """mutagen's ID3 frame classes, each recording a frame it has to drop into ``junk``.

    mutagen silently drops a frame it cannot parse (e.g. text that is not
    valid in the frame's declared encoding); saving would then delete it.
    ``ID3.load(known_frames=...)`` is mutagen's documented hook to choose the
    frame classes; subclasses keep the frame's name (its ``FrameID``).
    """
    from mutagen.id3 import Frames, Frames_2_2
    from mutagen.id3._util import ID3JunkFrameError

    def wrap(name, cls):
        def _fromData(klass, header, tflags, data):
            try:
                return super(sub, klass)._fromData(header, tflags, data)
            except ID3JunkFrameError as e:
                junk.append((name, str(e)))
                raise

        sub = type(name, (cls,), {"_fromData": classmethod(_fromData)})
        return sub

    out = {name: wrap(name, cls) for name, cls in Frames.items()}
    out.update({name: wrap(name, cls) for name, cls in Frames_2_2.items()})
    return out


def _open(path: str):
    """``(mutagen file, kind)`` with kind in ``'id3'``, ``'vorbis'``, ``'mp4'``; checks the tag is safe to rewrite."""
    import mutagen
    from mutagen.aiff import AIFF
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.ogg import OggFileType
    from mutagen.wave import WAVE

    try:
        probe = mutagen.File(path)
    except mutagen.MutagenError as e:
        if isinstance(getattr(e, "__context__", None), OSError) or not os.path.exists(path):
            cause = e.__context__ if isinstance(e.__context__, OSError) else OSError(errno.ENOENT, "vanished")
            raise TagWriteError(path, _os_reason(cause, writing=False)) from None
        raise TagWriteError(path, f"cannot read its tags ({e})") from None
    if probe is None:
        raise TagWriteError(path, "not an audio format whose tags mutagen can write")
    if isinstance(probe, (MP3, WAVE, AIFF)):
        junk: list = []
        try:
            mf = type(probe)(path, known_frames=_junk_recording_frames(junk))
        except mutagen.MutagenError as e:
            raise TagWriteError(path, f"cannot read its ID3 tag ({e})") from None
        if junk:
            names = ", ".join(sorted({n for n, _ in junk}))
            raise TagWriteError(path, f"its ID3 frame(s) {names} hold text that is not valid in the declared "
                                      "encoding; rewriting the tag would drop them (fix them first)")
        tags = mf.tags
        if tags is not None and tags.unknown_frames and tags.version[:2] != (2, 4):
            ids = sorted({bytes(f[:4]).decode("latin-1", "replace") for f in tags.unknown_frames})
            raise TagWriteError(path, f"its ID3v2.{tags.version[1]} tag holds frames mutagen cannot convert to "
                                      f"ID3v2.4 ({', '.join(ids)}); rewriting would drop them")
        return mf, "id3"
    if isinstance(probe, (FLAC, OggFileType)):
        if probe.tags is not None:
            bad = [k for k, v in probe.tags if "\ufffd" in k or "\ufffd" in v]
            if "\ufffd" in (probe.tags.vendor or "") or bad:
                raise TagWriteError(path, "its Vorbis comments are not valid UTF-8"
                                          f"{' (' + ', '.join(sorted(set(bad))) + ')' if bad else ''}; "
                                          "rewriting them would replace those characters (fix them first)")
        return probe, "vorbis"
    if isinstance(probe, MP4):
        failed = getattr(probe.tags, "_failed_atoms", None) if probe.tags is not None else None
        if failed:
            names = ", ".join(sorted(display_path(str(k)) for k in failed))
            raise TagWriteError(path, f"its MP4 atom(s) {names} could not be read (e.g. text that is not UTF-8); "
                                      "rewriting could lose them (fix them first)")
        return probe, "mp4"
    raise TagWriteError(path, f"writing {type(probe).__name__} tags is not supported "
                              "(formats: MP3, FLAC, Ogg Vorbis/Opus, MP4/M4A, WAV, AIFF)")


def tag_format(path) -> str:
    """Where :func:`write_fields` puts the fields of ``path``: ``'id3'``, ``'vorbis'`` or ``'mp4'``.

    Raises
    ------
    TagWriteError
        Not a supported format, or a tag that is unsafe to rewrite.
    """
    return _open(os.fspath(path))[1]


# --------------------------------------------------------------------------- fields
def _clean(values) -> list:
    out = []
    for v in values:
        s = str(v).replace("\x00", "").strip()
        if s and s not in out:
            out.append(s)
    return out


def _get(mf, kind: str, field: str) -> list:
    tags = mf.tags
    if tags is None:
        return []
    if kind == "id3":
        frames = tags.getall(_ID3[field])
        if field == "genre":  # TCON: "(17)" / "17" are ID3v1 genre numbers
            return _clean(g for fr in frames for g in fr.genres)
        return _clean(t for fr in frames for t in fr.text)
    if kind == "vorbis":
        for key in _VORBIS[field]:
            vals = _clean(tags.get(key, []))
            if vals:
                return vals
        return []
    vals = tags.get(_MP4[field], [])
    if field == "bpm":
        return _clean(str(int(v)) for v in vals)
    return _clean(bytes(v).decode("utf-8", "replace") if isinstance(v, bytes) else v for v in vals)


def _set(mf, kind: str, field: str, values: list) -> None:
    if mf.tags is None:
        mf.add_tags()
    tags = mf.tags
    if kind == "id3":
        import mutagen.id3 as id3

        fid = _ID3[field]
        tags.delall(fid)
        if values:
            tags.add(getattr(id3, fid)(encoding=id3.Encoding.UTF8, text=list(values)))
    elif kind == "vorbis":
        for key in _VORBIS[field]:
            if key in tags:
                del tags[key]
            if values:
                tags[key] = list(values)
    else:
        from mutagen.mp4 import AtomDataType, MP4FreeForm

        key = _MP4[field]
        if key in tags:
            del tags[key]
        if values and field == "bpm":
            tags[key] = [int(round(float(values[0])))]
        elif values and key.startswith("----"):
            tags[key] = [MP4FreeForm(v.encode("utf-8"), dataformat=AtomDataType.UTF8) for v in values]
        elif values:
            tags[key] = list(values)


def _check_values(path, values: dict) -> dict:
    out = {}
    for field, vals in values.items():
        if field not in FIELDS:
            raise TagWriteError(path, f"unknown field {field!r} (fields: {', '.join(FIELDS)})")
        vals = [vals] if isinstance(vals, str) else list(vals)
        out[field] = _clean(vals)
        if field == "bpm" and out[field]:
            try:
                float(out[field][0])
            except ValueError:
                raise TagWriteError(path, f"bpm={out[field][0]!r}: must be a number") from None
    return out


def read_fields(path, fields=FIELDS) -> dict:
    """The current values of ``fields`` in ``path``'s tags.

    Parameters
    ----------
    path : path-like
    fields : iterable of str
        Some of :data:`FIELDS`.

    Returns
    -------
    dict
        ``{field: [str, ...]}``; ``[]`` when the file has no value.

    Raises
    ------
    TagWriteError
        Unreadable file or tag, unsupported format, or a tag unsafe to rewrite.
    """
    path = os.fspath(path)
    try:
        mf, kind = _open(path)
    except OSError as e:
        raise TagWriteError(path, _os_reason(e, writing=False)) from None
    out = {f: _get(mf, kind, f) for f in fields}
    if _is_wave(mf) and not all(out.values()):
        try:
            info = _info_entries(path)
        except OSError as e:
            raise TagWriteError(path, _os_reason(e, writing=False)) from None
        for f in out:
            if not out[f]:
                out[f] = _info_values(info, f)
    return out


# --------------------------------------------------------------------------- RIFF INFO (WAV)
def _is_wave(mf) -> bool:
    from mutagen.wave import WAVE

    return isinstance(mf, WAVE)


def _info_chunk(riff):
    """The first ``LIST`` chunk of type ``INFO`` of a :class:`mutagen._riff.RiffFile`, or ``None``."""
    return next((c for c in riff.root.subchunks() if c.id == "LIST" and getattr(c, "name", None) == "INFO"), None)


def _parse_info(body: bytes) -> list:
    """``[(id, raw value bytes)]`` of an INFO list's data (after ``INFO``), in file order."""
    out, pos = [], 0
    while pos + 8 <= len(body):
        sid, size = body[pos:pos + 4], int.from_bytes(body[pos + 4:pos + 8], "little")
        out.append((sid, body[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


def _info_entries(path: str) -> list:
    """``[(id, raw bytes)]`` of the WAV file's first ``LIST/INFO`` chunk; ``[]`` if it has none."""
    from mutagen._riff import RiffFile

    with open(path, "rb") as f:
        try:
            chunk = _info_chunk(RiffFile(f))
        except Exception:  # noqa: BLE001 - no readable RIFF structure: no INFO
            return []
        return _parse_info(chunk.read()[4:]) if chunk is not None else []


def _info_values(entries: list, field: str) -> list:
    for sid, raw in entries:
        if sid == _RIFF_INFO[field]:
            raw = raw.split(b"\x00", 1)[0]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("cp1252", "replace")
            return _clean(text.split(";"))
    return []


def _set_info(path: str, values: dict) -> None:
    """Mirror ``values`` into the existing ``LIST/INFO`` chunk of the WAV file ``path``
    (resized in place by mutagen's RIFF code; the other chunks' bytes are moved, not changed)."""
    from mutagen._riff import RiffFile

    with open(path, "r+b") as f:
        chunk = _info_chunk(RiffFile(f))
        if chunk is None:
            return
        entries = _parse_info(chunk.read()[4:])
        for field, vals in values.items():
            sid = _RIFF_INFO[field]
            new = ";".join(vals).encode("utf-8") + b"\x00" if vals else None
            at = next((k for k, (s, _) in enumerate(entries) if s == sid), None)
            entries = [e for e in entries if e[0] != sid or new is not None]
            if new is not None and at is not None:
                entries = [(s, new if s == sid else v) for s, v in entries]
            elif new is not None:
                entries.append((sid, new))
        body = b"INFO" + b"".join(s + len(v).to_bytes(4, "little") + v + b"\x00" * (len(v) & 1)
                                  for s, v in entries)
        chunk.resize(len(body))
        chunk.write(body)


# --------------------------------------------------------------------------- writing
def _os_reason(e: OSError, *, writing: bool = True) -> str:
    left = "; the file was left as it was" if writing else ""
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return f"the disk is full ({e.strerror}){left}"
    if e.errno == errno.ENOENT:
        return f"the file vanished{left}"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: the file or its folder is read-only or locked{left}"
    if e.errno == errno.EROFS:
        return f"read-only file system{left}"
    return f"{e.strerror or e}{left}"


def write_fields(path, values: dict) -> dict:
    """Set tag fields of ``path``, atomically; the audio data is not touched.

    Parameters
    ----------
    path : path-like
        An MP3, FLAC, Ogg Vorbis/Opus, MP4/M4A, WAV or AIFF file.
    values : dict
        ``{field: [str, ...]}`` (a single ``str`` is one value); ``[]``
        removes the field.  Fields not given are left as they are.  ``bpm``
        is written as an integer string (rounded), the form ID3's ``TBPM``
        and MP4's ``tmpo`` require.

    Returns
    -------
    dict
        ``{field: [str, ...]}``: the values as read back from the temporary
        copy before it replaced the file.

    Raises
    ------
    TagWriteError
        Read-only file (or folder), several hard links, unsupported format,
        a tag unsafe to rewrite, the file vanished or changed while being
        written, or the disk is full.  In every case the file is unchanged.
    """
    path = os.fspath(path)
    values = _check_values(path, values)
    if "bpm" in values and values["bpm"]:
        values["bpm"] = [str(int(round(float(values["bpm"][0]))))]
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as e:
        raise TagWriteError(path, _os_reason(e)) from None
    if not os.access(real, os.W_OK) or not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise TagWriteError(path, "the file is read-only; not changed")  # marked so, even for root
    if st.st_nlink > 1:
        raise TagWriteError(path, f"the file has {st.st_nlink} hard links; writing a new copy would split "
                                  "them, so it was not changed")
    got: dict = {}

    def writer(tmp):
        with open(real, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        shutil.copymode(real, tmp)
        mf, kind = _open(tmp)
        for field, vals in values.items():
            _set(mf, kind, field, vals)
        if kind == "id3":
            mf.save(v2_version=4)
        else:
            mf.save()
        if _is_wave(mf):
            _set_info(tmp, values)
        back, kind = _open(tmp)
        got.update({f: _get(back, kind, f) for f in values})
        now = os.stat(real)
        if (now.st_size, now.st_mtime_ns, now.st_ino) != (st.st_size, st.st_mtime_ns, st.st_ino):
            raise TagWriteError(path, "the file changed while its tags were being written; not changed")

    try:
        atomic_write(real, writer, binary=None)
    except TagWriteError as e:
        raise TagWriteError(path, e.reason.replace(real, "the copy")) from None
    except OSError as e:
        raise TagWriteError(path, _os_reason(e)) from None
    except Exception as e:  # mutagen raises many types on a tag it cannot rewrite
        raise TagWriteError(path, f"cannot write its tags ({type(e).__name__}: {e}); the file was left as it was") from None
    logger.debug("tagged %s: %s", display_path(path), got)
    return got
