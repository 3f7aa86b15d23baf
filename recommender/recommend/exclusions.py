"""What is never recommended: per-query exclusions and the index's ban list.

Two things keep tracks out of every result (``similar``, radio, paths, the
collection map):

* :class:`Exclusions` -- filters given with one query: path globs, tags and
  a duration range (audiobooks, Christmas music, long DJ mixes, interludes).
* The **ban list** of an index -- tracks you never want recommended, kept in
  the catalog's ``meta`` table (key ``'bans'``; no schema change) so that it
  survives re-indexing: :func:`ban`, :func:`unban`, :func:`bans` (on the
  facade: :meth:`Recommender.ban` ...; on the command line ``recommender
  ban``, ``unban``, ``bans``).

Rules
-----
Path globs
    Shell patterns (``*``, ``?``, ``[...]``; ``*`` also crosses ``/``),
    case-insensitive.  A pattern starting with ``/`` (or ``~``) must match
    the whole absolute path or one of its folders (``/music/Audiobooks``
    excludes everything under it); any other pattern matches the end of the
    path from a folder boundary on, or a folder anywhere in it:
    ``'Audiobooks/*'``, ``'Audiobooks'`` and ``'*/Audiobooks/*'`` all exclude
    ``/music/Audiobooks/book/01.m4b``; ``'*.m4b'`` excludes every ``.m4b``.
    A track cut from a file by a CUE sheet (path ``album.flac#t=0,245.3``)
    is matched with and without its ``#t=`` fragment (``'*.flac'`` excludes it).
Tags
    A track is excluded by the tag ``T`` when ``T`` (case-insensitive) is a
    tag of the index's model and among the track's :data:`TOP_TAGS`
    strongest (the rule of ``similar(tag=...)``), **or** when ``T`` appears
    as a whole word (case-insensitive) in the track's genre, album, artist
    or title tag read from the file (``'christmas'``: genre ``Christmas``,
    album ``A Christmas Gift``, title ``Last Christmas``).  Whole words: the
    tag ``rock`` does not exclude ``Rockabilly`` but does exclude the artist
    ``Kid Rock``.
Durations
    ``min_duration_s`` / ``max_duration_s`` in seconds, inclusive; a track
    whose duration is unknown is kept.
Bans
    Each entry stores the file's absolute path (the identity that survives a
    re-index: a file removed and indexed again gets a new id but the same
    path) and its content hash (the identity that survives a move: the
    indexer keeps a moved file's id and finds it by that hash).  A track is
    banned when its path or its content hash equals an entry's, so byte-identical
    copies of a banned file are banned too; banning the audio file of a CUE
    album bans every track cut from it (each cue track can also be banned
    alone, by id or its ``#t=`` path).  Paths that are not UTF-8 are
    stored as the hex of their bytes (``path_hex``), losslessly.

Named tracks
    Exclusions act on what is *returned*.  A track you name yourself -- the
    query of ``similar``, a radio seed, an end of a path, an ``avoid`` track
    -- is used even when an exclusion filter matches it.  A banned track is
    refused as a radio seed or a path end (``ParameterError`` saying how to
    unban it: it would be played), and allowed as a ``similar`` query or an
    ``avoid`` track (it is never returned).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import re
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._utils import check_number
from ..errors import CatalogError, NotInIndexError, ParameterError
from . import view

logger = logging.getLogger(__name__)

__all__ = [
    "Exclusions",
    "TOP_TAGS",
    "BANS_META_KEY",
    "excluded_ids",
    "check_seeds",
    "read_bans",
    "bans_key",
    "ban",
    "unban",
    "bans",
    "ban_causes",
    "BanList",
    "BAN_COLUMNS",
]

#: A model tag excludes a track when it is among the track's TOP_TAGS strongest tags.
TOP_TAGS = 5
#: Key of the ban list in the catalog's ``meta`` table.
BANS_META_KEY = "bans"
#: Columns of :func:`bans`.
BAN_COLUMNS = ["id", "path", "banned_path", "content_hash", "added_at"]
#: Seconds a ban / unban waits for an index another process is writing.
WRITE_LOCK_TIMEOUT_S = 10.0
_TEXT_FIELDS = ("genre", "album", "artist", "title")


# ------------------------------------------------------------------ exclusions
@dataclasses.dataclass(frozen=True)
class Exclusions:
    """Per-query filters: which tracks a result may not hold.

    Parameters
    ----------
    paths : sequence of str
        Path globs (see the module's rules: case-insensitive, relative
        patterns match from any folder boundary).
    tags : sequence of str
        Model tags (among a track's :data:`TOP_TAGS` strongest) or words of
        its genre / album / artist / title.
    min_duration_s, max_duration_s : float, optional
        Keep only tracks whose duration (seconds) lies in this range
        (inclusive); unknown durations are kept.

    Raises
    ------
    ParameterError
        A pattern or tag that is not a non-empty string, a negative or
        non-finite duration, or ``min_duration_s > max_duration_s``.

    Examples
    --------
    >>> Exclusions(paths=["Audiobooks/*"], tags=["christmas"], max_duration_s=900).active
    True
    >>> Exclusions.coerce({"tags": "christmas"}).tags
    ('christmas',)
    """

    paths: tuple = ()
    tags: tuple = ()
    min_duration_s: float | None = None
    max_duration_s: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "paths", _strings("paths", self.paths, path_like=True))
        object.__setattr__(self, "tags", _strings("tags", self.tags))
        lo = check_number("min_duration_s", self.min_duration_s, min=0, allow_none=True)
        hi = check_number("max_duration_s", self.max_duration_s, min=0, allow_none=True)
        if lo is not None and hi is not None and lo > hi:
            raise ParameterError(f"min_duration_s={lo!r}: must not exceed max_duration_s={hi!r}")
        object.__setattr__(self, "min_duration_s", None if lo is None else float(lo))
        object.__setattr__(self, "max_duration_s", None if hi is None else float(hi))

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.paths or self.tags) or self.min_duration_s is not None or self.max_duration_s is not None

    @classmethod
    def coerce(cls, value) -> Exclusions:
        """``value`` as :class:`Exclusions`: ``None`` (nothing excluded), an instance, or a mapping of
        its fields (``{"paths": [...], "tags": [...], "min_duration_s": .., "max_duration_s": ..}``).

        Raises
        ------
        ParameterError
            Anything else, or an unknown field.
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            fields = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - fields)
            if unknown:
                raise ParameterError(f"exclusions: unknown field {unknown[0]!r} (fields: {', '.join(sorted(fields))})")
            return cls(**value)
        raise ParameterError(f"exclusions={value!r}: give an Exclusions, a mapping of its fields, or None")


def _strings(name, values, *, path_like=False) -> tuple:
    if isinstance(values, (str, os.PathLike)):
        values = [values]
    out = []
    for v in values or ():
        if path_like and isinstance(v, os.PathLike):
            v = os.fspath(v)
        if not isinstance(v, str) or not v.strip():
            raise ParameterError(f"{name}: {v!r} is not a non-empty string")
        out.append(v.strip())
    return tuple(out)


def _glob_regex(pattern: str) -> re.Pattern:
    """The compiled test of one path glob (see the module's rules)."""
    pat = os.path.expanduser(pattern)
    absolute = pat.startswith("/")
    core = fnmatch.translate(pat.rstrip("/") or "/")
    core = re.sub(r"\\[zZ]$", "", core)
    lead = "^" if absolute else "(?:^|/)"
    return re.compile(f"{lead}{core}(?:/.*)?\\Z", re.IGNORECASE | re.DOTALL)


#: The media fragment of a track that is a part of a file (a CUE album's track: ``album.flac#t=0,245.3``).
_FRAGMENT = re.compile(r"#t=\d+(?:\.\d+)?(?:,\d+(?:\.\d+)?)?\Z")


def _source(path: str) -> str:
    """``path`` without a ``#t=start,end`` media fragment (the audio file a cue track is cut from)."""
    return _FRAGMENT.sub("", path)


def _path_mask(paths, patterns) -> np.ndarray:
    tests = [_glob_regex(p) for p in patterns]

    def hit(p):
        return isinstance(p, str) and any(t.search(p) or t.search(_source(p)) for t in tests)

    return np.fromiter((hit(p) for p in paths), dtype=bool, count=len(paths))


def _duration_mask(durations, lo, hi) -> np.ndarray:
    d = pd.to_numeric(pd.Series(durations), errors="coerce").to_numpy(dtype=np.float64)
    known = np.isfinite(d)
    out = np.zeros(len(d), dtype=bool)
    if lo is not None:
        out |= known & (d < lo)
    if hi is not None:
        out |= known & (d > hi)
    return out


def _tag_mask(rec, meta, tags) -> np.ndarray:
    """Tracks (rows of ``meta``) excluded by any of ``tags``: model tag in the top
    :data:`TOP_TAGS`, or a whole word of genre / album / artist / title."""
    out = np.zeros(len(meta), dtype=bool)
    words = re.compile("|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in tags), re.IGNORECASE)
    for field in _TEXT_FIELDS:
        if field in meta.columns:
            out |= np.fromiter((isinstance(v, str) and words.search(v) is not None for v in meta[field]),
                               dtype=bool, count=len(meta))
    names = [str(t).casefold() for t in (rec.catalog.get_meta("tags") or [])]
    cols = sorted({names.index(t.casefold()) for t in tags if t.casefold() in names})
    if cols:
        ids, T = view.cached(rec, ("tag vectors",), lambda: rec.catalog.vectors("tags"))
        if T is not None and len(ids):
            top = np.argsort(-T, axis=1, kind="stable")[:, :TOP_TAGS]
            hit = np.isin(top, cols).any(axis=1)
            bad = set(np.asarray(ids)[hit].tolist())
            out |= np.fromiter((int(i) in bad for i in meta.index), dtype=bool, count=len(meta))
    return out


def excluded_ids(rec, exclusions=None, *, bans: bool = True) -> frozenset:
    """Ids of the tracks ``exclusions`` and (with ``bans``) the index's ban list keep out.

    Computed over the whole collection at once and cached per catalog
    generation, filters and ban list; no filters and no bans cost one
    ``meta`` read.

    Parameters
    ----------
    rec : Recommender
    exclusions : Exclusions, mapping or None
        See :meth:`Exclusions.coerce`.
    bans : bool
        Also exclude banned tracks (default).

    Returns
    -------
    frozenset of int

    Raises
    ------
    ParameterError
        Invalid ``exclusions``.
    CatalogError
        A malformed ban list in the catalog.
    """
    ex = Exclusions.coerce(exclusions)
    entries = read_bans(rec.catalog) if bans else []
    if not ex.active and not entries:
        return frozenset()
    return view.cached(rec, ("excluded", ex, bans_key(entries)), lambda: _compute_excluded(rec, ex, entries))


def bans_key(entries) -> tuple:
    """A hashable key of a ban list (:func:`read_bans`): caches of what bans hide must include it,
    because banning does not change the catalog's ``generation``."""
    return tuple(sorted((e.get("path") or "", e.get("path_hex") or "", e.get("content_hash") or "") for e in entries))


def _compute_excluded(rec, ex: Exclusions, entries) -> frozenset:
    meta = view.metadata(rec)
    mask = np.zeros(len(meta), dtype=bool)
    if ex.paths:
        mask |= _path_mask(meta["path"], ex.paths)
    if ex.min_duration_s is not None or ex.max_duration_s is not None:
        mask |= _duration_mask(meta["duration_s"], ex.min_duration_s, ex.max_duration_s)
    if ex.tags:
        mask |= _tag_mask(rec, meta, ex.tags)
    if entries:
        mask |= _ban_mask(meta, entries)
    out = frozenset(int(i) for i in meta.index[mask])
    logger.debug("exclusions %s and %d ban(s) keep out %d of %d tracks", ex, len(entries), len(out), len(meta))
    return out


def check_seeds(rec, ids, what="seed") -> None:
    """Refuse banned tracks as seeds / path ends (they would be played).

    Raises
    ------
    ParameterError
        ``"seed 12 (/music/x.mp3) is banned in this index: …"``.
    """
    banned = excluded_ids(rec, None, bans=True)
    for t in ids:
        if int(t) in banned:
            path = view.metadata(rec).at[int(t), "path"]
            src = _source(path) if isinstance(path, str) else path
            if src != path and any(_entry_path(e) == src for e in read_bans(rec.catalog)):
                how = f"recommender unban {_quoted(src)} --index {_quoted(rec.index_dir)}: its CUE album's audio file"
            else:
                how = f"recommender unban {int(t)} --index {_quoted(rec.index_dir)}"
            raise ParameterError(
                f"{what} {int(t)} ({view_path(path)}) is banned in this index: unban it first "
                f"({how}) or pick another {what}")


def view_path(path) -> str:
    """A stored path as printable text (undecodable bytes as ``\\xNN``)."""
    from ..io.collection import display_path

    return display_path(path) if isinstance(path, str) else str(path)


# ------------------------------------------------------------------ ban list
def _entry_path(e) -> str | None:
    if "path_hex" in e:
        return os.fsdecode(bytes.fromhex(e["path_hex"]))
    return e.get("path")


def _path_fields(path: str) -> dict:
    try:
        path.encode("utf-8")
        return {"path": path}
    except UnicodeEncodeError:
        return {"path_hex": os.fsencode(path).hex()}


def read_bans(catalog) -> list:
    """The ban list stored in ``catalog`` (``meta['bans']``), checked.

    Returns
    -------
    list of dict
        Entries with ``path`` (UTF-8 text) or ``path_hex`` (the hex of a
        non-UTF-8 path's bytes), ``content_hash`` (str or ``None``) and
        ``added_at`` (Unix time).

    Raises
    ------
    CatalogError
        The stored value is not such a list.
    """
    value = catalog.get_meta(BANS_META_KEY, None)
    if value is None:
        return []
    ok = isinstance(value, list) and all(
        isinstance(e, dict) and (isinstance(e.get("path"), str) or isinstance(e.get("path_hex"), str)) for e in value)
    if ok:
        try:
            for e in value:
                if "path_hex" in e:
                    bytes.fromhex(e["path_hex"])
        except ValueError:
            ok = False
    if not ok:
        raise CatalogError(catalog.path, f"meta[{BANS_META_KEY!r}] is not a list of ban entries "
                                         "({'path' or 'path_hex', 'content_hash', 'added_at'})")
    return value


def _ban_mask(meta, entries) -> np.ndarray:
    paths = {_entry_path(e) for e in entries}
    hashes = {e["content_hash"] for e in entries if isinstance(e.get("content_hash"), str) and e["content_hash"]}
    return np.fromiter(((p in paths) or (h in hashes) or (isinstance(p, str) and _source(p) in paths)
                        for p, h in zip(meta["path"], meta["hash_key"])), dtype=bool, count=len(meta))


def _writer(rec):
    from ..store.catalog import Catalog

    if not rec.exists():
        raise CatalogError(rec.catalog_path, "no index here yet: run `recommender index PATH --index DIR` first")
    return Catalog(rec.catalog_path, mode="w", lock_timeout_s=WRITE_LOCK_TIMEOUT_S)


def _as_list(tracks) -> list:
    if isinstance(tracks, (str, int, np.integer, os.PathLike)):
        return [tracks]
    return list(tracks)


def _is_path(item) -> bool:
    return isinstance(item, (str, bytes, os.PathLike))


def _given_path(item) -> str:
    """The absolute path of a path given as str, bytes or path-like (bytes: :func:`os.fsdecode`)."""
    return os.path.abspath(os.path.expanduser(os.fsdecode(item)))


def _resolve(rec, cat, item) -> dict:
    """``{'id', 'path', 'content_hash'}`` of one track id or path (``id`` None: a file not indexed).

    An id or an indexed path is looked up by :meth:`Recommender.resolve` (the one
    resolver of ``similar``, radio seeds, paths and tags); then ``cat`` (the
    write connection) gives the stored row."""
    if isinstance(item, bool) or not (isinstance(item, (int, np.integer)) or _is_path(item)):
        raise ParameterError(f"{item!r}: give a track id or a path")
    tid = rec.resolve(item)  # NotInIndexError for an id not in the index
    if tid is not None:
        row = cat.track(int(tid))
        return {"id": int(row["id"]), "path": row["path"], "content_hash": row.get("content_hash")}
    s = os.fsdecode(item)
    p = _given_path(item)
    if os.path.isfile(p):
        from ..io import collection

        try:
            chash = collection.content_hash(p)
        except OSError as e:
            raise NotInIndexError(f"{view_path(p)}: not indexed and unreadable ({e.strerror or e})") from None
        return {"id": None, "path": p, "content_hash": chash}
    raise NotInIndexError(f"{view_path(s)!r} is neither an indexed track (id or path) nor an existing file")


def _cause(rec, entries, target) -> str | None:
    """Why the indexed track ``target`` is still banned by ``entries`` (not by its own entry), or ``None``."""
    if target.get("id") is None:
        return None
    path = target["path"]
    src = _source(path) if isinstance(path, str) else path
    for e in entries:
        ep = _entry_path(e)
        if src != path and ep == src:
            n = int(sum(1 for q in view.metadata(rec)["path"] if isinstance(q, str) and _source(q) == src))
            return (f"track {target['id']} is part of the CUE album {view_path(src)}, whose audio file is "
                    f"banned (all {n} of its tracks); lift that ban with: recommender unban {_quoted(src)} "
                    f"--index {_quoted(rec.index_dir)}, then ban the tracks to keep out by id")
    return None


def _quoted(path) -> str:
    import shlex

    return shlex.quote(view_path(path))


def _matches(e, target) -> bool:
    h = e.get("content_hash")
    return _entry_path(e) == target["path"] or (bool(h) and h == target.get("content_hash"))


def _heal(cat, entries) -> list:
    """Entries whose path no longer exists in the index but whose content hash does: the current path."""
    out = []
    for e in entries:
        h = e.get("content_hash")
        if h and cat.track_by_path(_entry_path(e)) is None:
            rows = cat.tracks_by_hash(h)
            if len(rows) == 1:
                e = {**{k: v for k, v in e.items() if k not in ("path", "path_hex")}, **_path_fields(_row_path(rows[0]))}
        out.append(e)
    return out


def _row_path(row):
    return row["path"] if isinstance(row, dict) else row


def ban(rec, tracks) -> list:
    """Ban tracks from every recommendation of the index ``rec``.

    Parameters
    ----------
    rec : Recommender
    tracks : int, path-like, or a list of them
        Track ids, indexed paths, or files not (yet) indexed (banned once indexed).

    Returns
    -------
    list of dict
        The new entries (``path`` or ``path_hex``, ``content_hash``, ``added_at``);
        a track already banned is skipped.

    Raises
    ------
    NotInIndexError
        An id not in the index, or a path neither indexed nor an existing file
        (nothing is written then).
    CatalogError
        No index, or another process holds the index's write lock for more
        than :data:`WRITE_LOCK_TIMEOUT_S`.
    """
    with _writer(rec) as cat:
        targets = [_resolve(rec, cat, t) for t in _as_list(tracks)]
        entries = _heal(cat, read_bans(cat))
        added = []
        for t in targets:
            if any(_matches(e, t) for e in entries + added):
                continue
            added.append({**_path_fields(t["path"]), "content_hash": t.get("content_hash") or None,
                          "added_at": round(time.time(), 3)})
        cat.set_meta(**{BANS_META_KEY: entries + added})
    logger.info("banned %d track(s) in %s", len(added), rec.index_dir)
    return added


def unban(rec, tracks) -> int:
    """Take tracks off the ban list of ``rec`` (ids, indexed paths, or paths as banned).

    An entry is removed when it is the track's own: its path, or its content
    hash.  A track banned through another entry stays banned, and that is
    logged as a warning naming the entry and the command that lifts it
    (:func:`ban_causes`): a cue track whose CUE album's audio file is banned
    stays banned (unbanning the album would bring back all its tracks:
    unban the audio file, then ban the tracks to keep out).

    Returns
    -------
    int
        Entries removed (0 when none matched).

    Raises
    ------
    NotInIndexError
        An id not in the index (a path that is neither indexed nor a file
        is matched against the stored paths only).
    CatalogError
        As for :func:`ban`.
    """
    with _writer(rec) as cat:
        entries = _heal(cat, read_bans(cat))
        keep = list(entries)
        targets = []
        for item in _as_list(tracks):
            try:
                t = _resolve(rec, cat, item)
            except NotInIndexError:
                if not _is_path(item):
                    raise
                t = {"id": None, "path": _given_path(item), "content_hash": None}
            keep = [e for e in keep if not _matches(e, t)]
            targets.append(t)
        cat.set_meta(**{BANS_META_KEY: keep})
    logger.info("unbanned %d track(s) in %s", len(entries) - len(keep), rec.index_dir)
    for t in targets:
        why = _cause(rec, keep, t)
        if why:
            logger.warning("still banned: %s", why)
    return len(entries) - len(keep)


def ban_causes(rec, tracks) -> list:
    """Why each of ``tracks`` is banned through an entry that is not its own.

    Parameters
    ----------
    rec : Recommender
    tracks : int, path-like, or a list of them
        Track ids or indexed paths (str, bytes or path-like).

    Returns
    -------
    list of str
        One sentence per cue track banned through the ban of its CUE album's
        audio file, naming that file and the ``recommender unban`` command
        that lifts it; other tracks give nothing.

    Raises
    ------
    NotInIndexError
        An id not in the index.
    """
    entries = read_bans(rec.catalog)
    out = []
    for item in _as_list(tracks):
        tid = rec.resolve(item)
        if tid is None:
            continue
        row = rec.catalog.track(int(tid))
        why = _cause(rec, entries, {"id": int(tid), "path": row["path"], "content_hash": row.get("content_hash")})
        if why:
            out.append(why)
    return out


def bans(rec) -> pd.DataFrame:
    """The ban list of ``rec``, with the tracks it bans now.

    Returns
    -------
    pd.DataFrame
        Columns :data:`BAN_COLUMNS`: ``id`` (nullable Int64: the banned
        track, ``<NA>`` while no indexed track matches), ``path`` (the
        track's current path; the banned path while not indexed),
        ``banned_path`` (as stored), ``content_hash``, ``added_at`` (Unix
        time).  One row per entry and matching track, in the order banned:
        the banned audio file of a CUE album gives one row per cue track
        (``path`` ``<audio file>#t=start,end``, ``banned_path`` the file).
    """
    cat = rec.catalog
    entries = read_bans(cat)
    meta = view.metadata(rec) if entries else None
    # the audio file of a CUE album bans its tracks (paths "<audio file>#t=start,end")
    sources = meta["path"].map(lambda q: _source(q) if isinstance(q, str) else q) if entries else None
    rows = []
    for e in entries:
        p = _entry_path(e)
        h = e.get("content_hash")
        same = (meta["path"] == p) | (sources == p)
        hit = meta.index[same | (meta["hash_key"] == h)] if h else meta.index[same]
        common = {"banned_path": p, "content_hash": h, "added_at": e.get("added_at")}
        if len(hit) == 0:
            rows.append({"id": None, "path": p, **common})
        for tid in hit:
            rows.append({"id": int(tid), "path": meta.at[tid, "path"], **common})
    df = pd.DataFrame(rows, columns=BAN_COLUMNS)
    df["id"] = df["id"].astype("Int64")
    return df


class BanList:
    """The ban-list methods of :class:`recommender.Recommender` (see :mod:`recommender.recommend.exclusions`)."""

    def ban(self, *tracks) -> list:
        """Never recommend these tracks (ids, indexed paths, or files not yet indexed).

        Kept in the catalog: survives re-indexing and moved files.  Returns the
        new entries.  ``NotInIndexError`` for an unknown id or a missing file.

        Examples
        --------
        >>> rec.ban(12, "~/Music/Xmas/jingle.mp3")      # doctest: +SKIP
        """
        return ban(self, tracks)

    def unban(self, *tracks) -> int:
        """Take tracks off the ban list; returns how many entries were removed."""
        return unban(self, tracks)

    def bans(self) -> pd.DataFrame:
        """The ban list: ``id, path, banned_path, content_hash, added_at`` (see :func:`bans`)."""
        return bans(self)

