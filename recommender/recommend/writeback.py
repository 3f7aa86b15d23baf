"""What to write back into the files' own tags, the plan, and the undo log.

:func:`write_tags` (``recommender tag``, ``Recommender.write_tags``) takes
the analysis stored in an index and writes four fields into each indexed
file's tags through :mod:`recommender.io.tagwriter`:

=========  =====================================================================
field      value
=========  =====================================================================
``bpm``    the stored tempo (``descriptors.tempo_bpm``) rounded to an integer
           (ID3 ``TBPM`` and MP4 ``tmpo`` only hold integers; written the same
           everywhere)
``key``    the stored key in the usual (ID3 ``TKEY``) notation: tonic in sharps
           plus ``m`` for minor, e.g. ``"Am"``, ``"F#"``, ``"C#m"``
``genre``  the strongest tags of the genre group of
           :mod:`recommender.analysis.profiles` (musicnn MSD: rock, pop,
           alternative, indie, electronic, dance, alternative rock, jazz,
           metal, classic rock, soul, indie rock, electronica, folk, punk,
           blues, hard rock, ambient, experimental, hip-hop, country, funk,
           electro, heavy metal, progressive rock, rnb, indie pop, house)
``mood``   the same for the mood group (beautiful, chillout, mellow, chill,
           party, easy listening, sexy, catchy, sad, happy, slow, fast, loud,
           quiet, soft, weird)
=========  =====================================================================

A tag is written when its probability is at least ``min_p``
(:data:`WRITE_MIN_P`) and at least :data:`WRITE_RELATIVE` times the group's
strongest; at most ``max_values`` (:data:`WRITE_MAX_VALUES`) per field, the
strongest first (players that show one value show that one).  Values are
written in title case with a few fixed spellings (:data:`TAG_SPELLING`:
``rnb`` -> ``R&B``, ``hip-hop`` -> ``Hip-Hop``, ``chillout`` -> ``Chill``);
synonyms count once.  Tracks analysed without descriptors get no ``bpm`` /
``key``.

By default nothing is written: the result lists what would change.  A field
the file already holds is left alone unless ``overwrite``.  Every change
written is recorded (file, field, old value, new value) in
``<index>/tag_undo.json`` *before* the file is written (a crash then leaves
an entry whose file still holds its old value, which undo recognises and
drops); ``undo=True`` puts the old values back where the file still holds
what was written (``overwrite`` restores even fields changed since), at
the file's current path: the log keeps the track id, so a file moved and
re-indexed since (``recommender index`` reports it moved, same id) is
restored where it is now.  After
a file is written its new size and modification time are stored in the
catalog, so the next ``recommender index`` does not analyse it again.

Tracks of a CUE album (catalog paths ``<audio file>#t=start,end``, see
:func:`recommender.io.cuesheet.source_of_key`) are never tagged: their one
audio file holds several tracks, and a file has one set of tags.  They are
reported once per album in :attr:`TagReport.notes` ("part of a CUE album:
its audio file holds N tracks, not tagged"), which are not errors.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time

import numpy as np
import pandas as pd

from .._utils import atomic_write_text, check_choice, check_int, check_number
from ..analysis.profiles import tag_group
from ..errors import CatalogError
from ..io import tagwriter
from ..io.collection import display_path
from ..io.cuesheet import sheet_of, source_of_key

__all__ = [
    "FIELDS",
    "TAG_SPELLING",
    "UNDO_LOG",
    "WRITE_MAX_VALUES",
    "WRITE_MIN_P",
    "WRITE_RELATIVE",
    "TagReport",
    "bpm_value",
    "key_notation",
    "tag_spelling",
    "track_values",
    "write_tags",
]

logger = logging.getLogger(__name__)

FIELDS = tagwriter.FIELDS
#: Undo log, inside the index directory.
UNDO_LOG = "tag_undo.json"
#: A genre / mood tag is written from this probability up (the MSD model rarely
#: goes past 0.6; 0.2 is twice :data:`~recommender.analysis.profiles.TEXT_MIN_P`,
#: the level at which profiles start naming a tag).
WRITE_MIN_P = 0.2
#: ... and only when at least this share of the group's strongest tag.
WRITE_RELATIVE = 0.5
#: At most this many values per field.
WRITE_MAX_VALUES = 2
#: Spellings other than title case (lower-case tag -> written value).
TAG_SPELLING = {
    "rnb": "R&B", "hip-hop": "Hip-Hop", "chillout": "Chill", "classic": "Classical",
    "new age": "New Age", "easy listening": "Easy Listening",
}  # fmt: skip
_BATCH = 100  # files per undo-log write
_LOCK_TIMEOUT_S = 10.0
_CHANGING = ("set", "replace", "restore")


def key_notation(key, mode) -> str | None:
    """``('A', 'minor')`` -> ``'Am'``, ``('F#', 'major')`` -> ``'F#'``; ``None`` if unknown."""
    if not isinstance(key, str) or not key.strip():
        return None
    return key.strip() + ("m" if str(mode).strip().lower() == "minor" else "")


def bpm_value(tempo) -> int | None:
    """The ``bpm`` written for a measured tempo: rounded once to a whole BPM (150.543 -> 151);
    ``None`` for an unknown, non-finite or non-positive tempo."""
    try:
        t = float(tempo)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(t) or t <= 0:
        return None
    return round(t)


def tag_spelling(tag: str) -> str:
    """How a model tag is written into a file: ``'alternative rock'`` -> ``'Alternative Rock'``."""
    t = str(tag).strip().lower()
    return TAG_SPELLING.get(t, " ".join(w[:1].upper() + w[1:] for w in t.split()))


def _group_values(probs: pd.Series, group: str, min_p: float, max_values: int) -> list:
    s = probs[[t for t in probs.index if tag_group(t) == group]].dropna().sort_values(ascending=False, kind="stable")
    if not len(s) or s.iloc[0] < min_p:
        return []
    out: list = []
    for tag, p in s.items():
        if p < min_p or p < WRITE_RELATIVE * s.iloc[0] or len(out) >= max_values:
            break
        v = tag_spelling(tag)
        if v not in out:
            out.append(v)
    return out


def track_values(cat, ids, *, fields=FIELDS, min_p: float = WRITE_MIN_P,
                 max_values: int = WRITE_MAX_VALUES) -> dict:
    """The values to write for each track, from the catalog.

    Parameters
    ----------
    cat : Catalog
    ids : sequence of int
    fields : iterable of str
        Some of :data:`FIELDS`.
    min_p : float
        See :data:`WRITE_MIN_P`.
    max_values : int
        See :data:`WRITE_MAX_VALUES`.

    Returns
    -------
    dict
        ``{id: {field: [str, ...]}}``; ``[]`` where the analysis has no value.
    """
    ids = [int(i) for i in ids]
    out = {i: {f: [] for f in fields} for i in ids}
    if not ids:
        return out
    if "bpm" in fields or "key" in fields:
        d = cat.descriptors(ids)
        for i in ids:
            if i not in d.index:
                continue
            bpm = bpm_value(d.at[i, "tempo_bpm"])
            if "bpm" in fields and bpm is not None:
                out[i]["bpm"] = [str(bpm)]
            k = key_notation(d.at[i, "key"], d.at[i, "mode"])
            if "key" in fields and k:
                out[i]["key"] = [k]
    groups = [f for f in ("genre", "mood") if f in fields]
    names = cat.get_meta("tags")
    if groups and names:
        have, T = cat.vectors("tags")
        row = {int(t): r for r, t in enumerate(have)}
        for i in ids:
            if i in row:
                probs = pd.Series(np.asarray(T[row[i]], dtype=np.float64), index=list(names))
                for g in groups:
                    out[i][g] = _group_values(probs, g, min_p, max_values)
    return out


# --------------------------------------------------------------------------- report
@dataclasses.dataclass
class TagReport:
    """What :func:`write_tags` did (or would do).

    Attributes
    ----------
    changes : list of dict
        One row per file and field: ``path``, ``id``, ``field``, ``old`` and
        ``new`` (lists of str) and ``action``: ``'set'`` (the file had no
        value), ``'replace'`` (``overwrite``), ``'restore'`` (undo),
        ``'keep'`` (the file has its own value), ``'same'`` (already so),
        ``'skip'`` (undo: changed since; the note says so).
    errors : list of dict
        ``path`` and ``reason`` of files not changed; the others were done.
    notes : list of dict
        ``path`` and ``reason`` of files deliberately left alone, not errors:
        the audio file of a CUE album (one per album, whatever the number of
        its tracks chosen).
    written : int
        Files written (0 in a dry run).
    dry_run : bool
    """

    changes: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    written: int = 0
    dry_run: bool = True

    @property
    def n_changes(self) -> int:
        """Fields changed (or, in a dry run, that would change)."""
        return sum(c["action"] in _CHANGING for c in self.changes)

    def to_frame(self) -> pd.DataFrame:
        """``changes`` as a DataFrame (values joined with ``"; "``)."""
        cols = ["path", "id", "field", "old", "new", "action"]
        rows = [{**c, "old": "; ".join(c["old"]), "new": "; ".join(c["new"])} for c in self.changes]
        return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- paths
def _cue_note(source: str, n_tracks: int) -> dict:
    return {"path": source, "sheet": sheet_of(source),
            "reason": f"part of a CUE album: its audio file holds {n_tracks} tracks, not tagged"}


def _select(cat, paths) -> tuple[list, list, list]:
    """``([(id, stored path)], [error], [note])`` for files and folders ``paths``.

    CUE tracks are left out with one note per album (their audio file)."""
    tr = cat.tracks(columns=["path"])
    stored = {p: int(i) for i, p in zip(tr.index, tr["path"])}
    cue_tracks: dict = {}  # audio file -> number of its cue tracks in the catalog
    for s in stored:
        src = source_of_key(s)
        if src is not None:
            cue_tracks[src] = cue_tracks.get(src, 0) + 1
    chosen: dict = {}
    errors = []
    for arg in paths:
        arg = os.fsdecode(arg)  # str, bytes (a name that is not UTF-8) or path-like, as Recommender.resolve
        p = os.path.abspath(os.path.expanduser(arg))
        cands = [p, os.path.realpath(p)]
        if os.path.isdir(p):
            prefixes = tuple(c.rstrip(os.sep) + os.sep for c in cands)
            hits = [(i, s) for s, i in stored.items() if s.startswith(prefixes)]
            if not hits:
                errors.append({"path": arg, "reason": "no indexed track in this folder"})
            chosen.update({i: s for i, s in hits})
            continue
        hit = next((c for c in cands if c in stored), None)
        if hit is None and any(c in cue_tracks for c in cands):
            hit = next(c for c in cands if c in cue_tracks)  # the audio file of a CUE album
            chosen.update({i: s for s, i in stored.items() if source_of_key(s) == hit})
            continue
        if hit is None:
            reason = "not in the index (run `recommender index` on it first)" if os.path.exists(p) else \
                "no such file"
            errors.append({"path": arg, "reason": reason})
        else:
            chosen[stored[hit]] = hit
    selected, notes, noted = [], [], set()
    for i, s in sorted(chosen.items(), key=lambda x: x[1]):
        src = source_of_key(s)
        if src is None:
            selected.append((i, s))
        elif src not in noted:
            noted.add(src)
            notes.append(_cue_note(src, cue_tracks[src]))
    return selected, errors, notes


# --------------------------------------------------------------------------- undo log
def _log_path(index_dir) -> str:
    return os.path.join(os.fspath(index_dir), UNDO_LOG)


def _load_log(index_dir) -> list:
    p = _log_path(index_dir)
    try:
        with open(p, encoding="ascii") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise CatalogError(p, f"the tag undo log cannot be read ({e}); move it away to start a new one") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise CatalogError(p, "the tag undo log is not a recommender undo log")
    return data["entries"]


def _save_log(index_dir, entries: list) -> None:
    # ensure_ascii: a non-UTF-8 file name (lone surrogates) round-trips as \udcXX
    text = json.dumps({"version": 1, "entries": entries}, ensure_ascii=True, indent=1)
    atomic_write_text(_log_path(index_dir), text + "\n")


# --------------------------------------------------------------------------- writing
def _decide(path, tid, current: dict, wanted: dict, overwrite: bool) -> list:
    rows = []
    for field, new in wanted.items():
        old = current.get(field, [])
        if not new:
            continue
        if old == new:
            action = "same"
        elif old and not overwrite:
            action = "keep"
        else:
            action = "replace" if old else "set"
        rows.append({"path": path, "id": tid, "field": field, "old": old, "new": new, "action": action})
    return rows


def _refresh(cat, path) -> None:
    """Store the file's new size, mtime and content hash so re-indexing does not analyse it
    again and a later move of the file (or a ban by content) still recognises it."""
    if cat is None:
        return
    row = cat.track_by_path(path)
    if row is None:
        return
    from ..io.collection import content_hash

    st = os.stat(path)
    # same path: size, mtime and content hash change (so moves and bans by hash keep working);
    # vectors and FAISS files stay valid
    cat.move_track(int(row["id"]), new_path=path, size=int(st.st_size), mtime_ns=int(st.st_mtime_ns),
                   content_hash=content_hash(path, size=int(st.st_size)))


def _write_batch(index_dir, log: list, batch: list, report: TagReport, cat) -> None:
    """Log the batch's changes, write its files, drop the entries of files that failed."""
    now = round(time.time(), 3)
    entries = [{"path": c["path"], "id": c["id"], "field": c["field"], "old": c["old"], "new": c["new"],
                "at": now} for rows in batch for c in rows if c["action"] in ("set", "replace")]
    if not entries:
        return
    log.extend(entries)
    _save_log(index_dir, log)
    failed = set()
    for rows in batch:
        todo = {c["field"]: c["new"] for c in rows if c["action"] in ("set", "replace")}
        if not todo:
            continue
        path = rows[0]["path"]
        try:
            tagwriter.write_fields(path, todo)
        except tagwriter.TagWriteError as e:
            report.errors.append({"path": path, "reason": e.reason})
            failed.add(path)
            for c in rows:
                if c["action"] in ("set", "replace"):
                    c["action"], c["note"] = "error", e.reason
            continue
        report.written += 1
        _refresh(cat, path)
    if failed:
        log[:] = [e for e in log if not (e["path"] in failed and e["at"] == now)]
        _save_log(index_dir, log)


def _apply(rec, selected, values, *, overwrite, write, report) -> None:
    cat = _writer(rec) if write else None
    try:
        batch: list = []
        log = _load_log(rec.index_dir) if write else []
        for tid, path in selected:
            try:
                current = tagwriter.read_fields(path, list(values[tid]))
            except tagwriter.TagWriteError as e:
                report.errors.append({"path": path, "reason": e.reason})
                continue
            rows = _decide(path, tid, current, values[tid], overwrite)
            report.changes.extend(rows)
            if write and rows:
                batch.append(rows)
            if len(batch) >= _BATCH:
                _write_batch(rec.index_dir, log, batch, report, cat)
                batch = []
        if write and batch:
            _write_batch(rec.index_dir, log, batch, report, cat)
    finally:
        if cat is not None:
            cat.close()


def _writer(rec):
    from ..store.catalog import Catalog

    return Catalog(rec.catalog_path, mode="w", lock_timeout_s=_LOCK_TIMEOUT_S)


def _follow_moves(cat, log: list) -> None:
    """Point each undo-log entry at its track's current path (in place).

    The log stores the track id; ``recommender index`` keeps a moved file's id
    (a move is recognised by content) and ids are never reused, so the
    catalog's path of that id is where the file is now.  Entries whose track
    is no longer indexed keep the path they were written at."""
    ids = {int(e["id"]) for e in log if isinstance(e.get("id"), int)}
    if not ids:
        return
    now = cat.tracks(sorted(ids), columns=["path"])["path"].to_dict()
    for e in log:
        p = now.get(e.get("id"))
        if p is not None and p != e["path"] and source_of_key(p) is None:
            logger.info("tag undo: %s moved to %s since it was tagged", display_path(e["path"]), display_path(p))
            e["path"] = p


def _undo(rec, paths, fields, *, overwrite, write, report) -> None:
    log = _load_log(rec.index_dir)
    was = [e["path"] for e in log]
    _follow_moves(rec.catalog, log)
    wanted = [os.path.abspath(os.path.expanduser(os.fsdecode(a))) for a in paths]
    wanted += [os.path.realpath(w) for w in wanted]

    def chosen(*candidates):
        return not paths or any(path == w or path.startswith(w.rstrip(os.sep) + os.sep)
                                for path in candidates for w in wanted)

    by_file: dict = {}
    for n, e in enumerate(log):
        if e["field"] not in fields:
            continue
        if not chosen(e["path"], was[n]):  # the file's path now, or where it was tagged
            continue
        by_file.setdefault(e["path"], {}).setdefault(e["field"], []).append(n)
    done: set = set()
    cat = _writer(rec) if write and by_file else None
    try:
        for path, per_field in by_file.items():
            _undo_file(path, per_field, log, overwrite=overwrite, write=write, report=report, done=done, cat=cat)
    finally:
        if cat is not None:
            cat.close()
    if write and (done or was != [e["path"] for e in log]):
        _save_log(rec.index_dir, [e for n, e in enumerate(log) if n not in done])


def _undo_file(path, per_field, log, *, overwrite, write, report, done, cat) -> None:
    try:
        current = tagwriter.read_fields(path, list(per_field))
    except tagwriter.TagWriteError as e:
        report.errors.append({"path": path, "reason": e.reason})
        return
    todo, settled, rows = {}, [], []
    for field, idx in per_field.items():
        original, written = log[idx[0]]["old"], log[idx[-1]]["new"]
        row = {"path": path, "id": log[idx[-1]].get("id"), "field": field, "old": current[field], "new": original}
        if current[field] == original:
            row["action"] = "same"
            settled += idx
        elif current[field] == written or overwrite:
            row["action"] = "restore"
            todo[field] = original
            settled += idx
        else:
            row["action"] = "skip"
            row["note"] = (f"changed since it was tagged (now {'; '.join(current[field]) or 'empty'}); "
                           "left alone (--overwrite restores it anyway)")
        rows.append(row)
    report.changes.extend(rows)
    if not write:
        return
    if todo:
        try:
            tagwriter.write_fields(path, todo)
        except tagwriter.TagWriteError as e:
            report.errors.append({"path": path, "reason": e.reason})
            for r in rows:
                if r["action"] == "restore":
                    r["action"], r["note"] = "error", e.reason
            return
        report.written += 1
        _refresh(cat, path)
    done.update(settled)


def write_tags(rec, paths=(), *, write: bool = False, overwrite: bool = False, undo: bool = False,
               fields=FIELDS, min_p: float = WRITE_MIN_P, max_values: int = WRITE_MAX_VALUES) -> TagReport:
    """Write the analysis of indexed files into their own tags (or show what would change).

    Parameters
    ----------
    rec : Recommender
        The index whose analysis is written.
    paths : iterable of path-like
        Indexed files and folders (every indexed track under a folder).
        With ``undo``, limits the undo to these files / folders (default all).
    write : bool
        Write (default ``False``: a dry run that reads the files and reports).
    overwrite : bool
        Replace values the files already hold (default: leave them); with
        ``undo``, restore fields changed since they were tagged.
    undo : bool
        Put back the values recorded in the undo log (:data:`UNDO_LOG`).
    fields : iterable of str
        Some of :data:`FIELDS` (default all four).
    min_p : float in [0, 1]
        Genre / mood threshold, see :data:`WRITE_MIN_P`.
    max_values : int >= 1
        Values per genre / mood field.

    Returns
    -------
    TagReport
        One file that cannot be read or written (read-only, vanished, a tag
        in the wrong encoding, a full disk) is listed in ``errors`` and left
        as it was; the others are done.  CUE tracks are not tagged (their
        audio file holds several tracks): one entry per album in ``notes``.

    Raises
    ------
    ParameterError
        A bad field, ``min_p`` or ``max_values``.
    CatalogError
        No index, or an unreadable undo log.
    IndexLockedError
        Another process is updating the index (only when writing).
    """
    fields = tuple(check_choice("fields", f, FIELDS) for f in (fields or FIELDS))
    min_p = check_number("min_p", min_p, min=0.0, max=1.0)
    max_values = check_int("max_values", max_values, min=1)
    if not rec.exists():
        raise CatalogError(rec.catalog_path, "no index here yet: run `recommender index PATH --index DIR` first")
    report = TagReport(dry_run=not write)
    if undo:
        _undo(rec, list(paths), fields, overwrite=overwrite, write=write, report=report)
        return report
    cat = rec.catalog
    selected, report.errors, report.notes = _select(cat, paths)
    values = track_values(cat, [i for i, _ in selected], fields=fields, min_p=min_p, max_values=max_values)
    _apply(rec, selected, values, overwrite=overwrite, write=write, report=report)
    logger.info("tags: %d field(s) %s in %d file(s), %d error(s)", report.n_changes,
                "written" if write else "to write", report.written, len(report.errors))
    for e in report.notes + report.errors:
        logger.info("not tagged %s: %s", display_path(e["path"]), e["reason"])
    return report
