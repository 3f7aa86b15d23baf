"""beets plugin: similar songs, radio and analysis fields from a ``recommender`` index.

Turn it on with ``plugins: recommender`` in beets' ``config.yaml`` (the
module ships with the ``recommender`` package in beets' ``beetsplug``
namespace; install with ``pip install "recommender[beets]"``).  Commands:

``beet recanalyze [QUERY]``
    Builds or updates a ``recommender`` index of the matching items' files
    (only new or changed files are analysed) and stores what the analysis
    found as fields of each item, so beets queries and smart playlists can
    use them (``beet ls bpm:120..130``, ``beet ls recommender_mood:happy``).
``beet similar QUERY [-n N]``
    Items like the first item matching ``QUERY``, most similar first.
``beet radio QUERY [-n N]``
    A radio playlist around the first item matching ``QUERY``.

CUE albums (one audio file + a ``.cue`` sheet beside it): beets sees one item
for the file; ``recanalyze`` indexes it as ``recommender index`` does, one
index track per cue track (counted in its summary as a CUE album item), and
stores no fields on that item (one item holds no single tempo or key; use
``recommender tag``'s note and the index for the tracks).  As a seed of
``similar`` / ``radio`` such an item stands for its first cue track
(``-t N`` / ``--track N``: its track N).  A cue track in the answers is
printed as its album's item followed by ``[cue track N/M: title]``; with
``-p`` as its index path ``<audio file>#t=<start>,<end>`` (seconds, W3C
Media Fragments, as ``recommender similar`` prints it).

Fields stored on items (database only; written into the files only with
``-w``/``--write`` or ``import.write: yes``, for the fields files carry; with
``-w`` every analysed item's file whose ``bpm`` / ``initial_key`` tags differ
from the database is written, also when the fields did not change):

===================== ======== =============================================
field                 type     value
===================== ======== =============================================
``bpm``               integer  tempo rounded once to a whole BPM, as
                               ``recommender tag`` writes it (built-in field)
``initial_key``       string   key as beets spells it: ``C``, ``C#m``, ``A#``
                               (built-in field)
``recommender_bpm``   float    tempo as measured, to 0.1 BPM
``recommender_key``   string   same notation as ``initial_key``
``recommender_mood``  string   mood, e.g. ``Happy`` or ``Mellow, Chill``
``recommender_genre`` string   genre, e.g. ``Rock`` or ``Techno, Electronic``
``recommender_id``    integer  the track's id in the index
===================== ======== =============================================

``bpm`` and ``initial_key`` are only filled in when empty, or when they hold
the value a previous ``recanalyze`` put there (so tags from files or other
plugins are kept), unless ``overwrite: yes`` / ``--overwrite``.  Key, mood
and genre are the values ``recommender tag`` writes into files
(:mod:`recommender.recommend.writeback`: the model's tags of the mood /
genre group with a probability of at least ``min_probability`` and at least
half the group's strongest, at most ``max_tags`` of them); a field is
removed when nothing passes.  Silent or inaudible tracks get no tempo or key.

Configuration (``recommender:`` section), with the defaults::

    recommender:
        index: ''              # index directory; '' = recommender-index beside the library database
        jobs: 1                # analysis worker processes
        overwrite: no          # replace existing bpm / initial_key values
        min_probability: null  # mood / genre threshold; null = writeback.WRITE_MIN_P (0.2)
        max_tags: null         # mood / genre values per field; null = writeback.WRITE_MAX_VALUES (2)
"""

from __future__ import annotations

import functools
import math
import os

from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin
from beets.util import displayable_path

__all__ = ["RecommenderPlugin", "apply_fields", "beets_key", "field_values"]

# Messages go through the plugin's own logger, ``self._log`` (beets' logger
# ``beets.recommender``, which formats with ``str.format``: ``{}`` placeholders).
# Do not create ``logging.getLogger("beets.recommender")`` here: a stdlib logger of
# that name, made before beets makes its own, would take its place and fail to
# format the ``{}`` messages ("--- Logging error ---").

#: Flexible fields this plugin stores, with their beets types.
FIELDS = {
    "recommender_bpm": types.FLOAT,
    "recommender_key": types.STRING,
    "recommender_mood": types.STRING,
    "recommender_genre": types.STRING,
    "recommender_id": types.INTEGER,
}
#: Built-in fields filled from a flexible field of the plugin (see the module doc).
_BUILTIN = {"bpm": "recommender_bpm", "initial_key": "recommender_key"}


def beets_key(key, mode) -> str | None:
    """A key and mode in beets' ``initial_key`` notation (the ID3 ``TKEY`` one).

    Parameters
    ----------
    key : str or None
        Tonic as the index stores it (``'C'``, ``'C#'`` … sharps).
    mode : str or None
        ``'major'`` or ``'minor'``.

    Returns
    -------
    str or None
        ``'C'``, ``'C#m'``… (``None`` when the key is unknown, e.g. silence).
    """
    from recommender.recommend.writeback import key_notation

    return key_notation(key, mode)


def field_values(rec, ids, *, min_p: float | None = None, max_tags: int | None = None) -> dict:
    """What ``recanalyze`` stores for each indexed track.

    Key, mood and genre are the values ``recommender tag`` writes into files
    (:func:`recommender.recommend.writeback.track_values`), so beets and the
    files' tags agree; several mood / genre values are joined with ``', '``.

    Parameters
    ----------
    rec : recommender.Recommender
        An existing index.
    ids : sequence of int
        Track ids of the index.
    min_p : float, optional
        Probability a mood / genre tag must reach (default
        :data:`recommender.recommend.writeback.WRITE_MIN_P`).
    max_tags : int, optional
        Most values per mood / genre field (default
        :data:`recommender.recommend.writeback.WRITE_MAX_VALUES`).

    Returns
    -------
    dict
        ``{id: {field: value or None}}`` with the keys of :data:`FIELDS`;
        ``None`` means "unknown: remove the field".  ``recommender_bpm`` is
        the measured tempo rounded to 0.1 BPM; the extra key ``bpm`` holds the
        whole BPM for the built-in field, rounded once from the measured tempo
        (:func:`recommender.recommend.writeback.bpm_value`, what ``recommender
        tag`` writes: 150.543 -> 151).

    Raises
    ------
    recommender.errors.NotInIndexError
        An id is not in the index.
    """
    from recommender.recommend import writeback

    ids = [int(i) for i in ids]
    if not ids:
        return {}
    cat = rec.catalog
    vals = writeback.track_values(
        cat, ids, fields=("key", "mood", "genre"),
        min_p=writeback.WRITE_MIN_P if min_p is None else min_p,
        max_values=writeback.WRITE_MAX_VALUES if max_tags is None else max_tags,
    )
    tempo = cat.descriptors(ids)["tempo_bpm"]
    out = {}
    for tid in ids:
        whole = writeback.bpm_value(tempo.get(tid))
        v = vals[tid]
        out[tid] = {
            "bpm": whole,
            "recommender_bpm": None if whole is None else round(float(tempo.get(tid)), 1),
            "recommender_key": v["key"][0] if v["key"] else None,
            "recommender_mood": ", ".join(v["mood"]) or None,
            "recommender_genre": ", ".join(v["genre"]) or None,
            "recommender_id": tid,
        }
    return out


def _builtin_value(field: str, values: dict):
    """The value of built-in ``field`` from :func:`field_values`' ``values``."""
    if field == "bpm":
        if values.get("bpm") is not None:
            return values["bpm"]
        flex = values.get("recommender_bpm")  # values without "bpm": round the 0.1 BPM value once
        return None if flex is None else math.floor(float(flex) + 0.5)
    return values.get(_BUILTIN[field])


def _is_ours(item, field: str) -> bool:
    """Whether built-in ``field`` of ``item`` holds what this plugin set from its flexible field."""
    flex = _BUILTIN[field]
    if flex not in item or item.get(flex) is None:
        return False
    current = item.get(field)
    if field == "bpm":  # set from the measured tempo, stored to 0.1 BPM: within half a BPM
        try:
            return abs(float(current) - float(item.get(flex))) <= 0.5 + 1e-9
        except (TypeError, ValueError):
            return False
    return current == item.get(flex)


def apply_fields(item, values: dict, *, overwrite: bool) -> bool:
    """Set ``values`` (from :func:`field_values`) on a beets ``item``; True if anything changed.

    ``bpm`` / ``initial_key`` are set when empty, when they still hold what
    this plugin set last time, or with ``overwrite``.  The item is not stored.
    """
    changed = False
    for field in _BUILTIN:
        new = _builtin_value(field, values)
        if new is None:
            continue
        current = item.get(field)
        if (overwrite or not current or _is_ours(item, field)) and current != new:
            item[field] = new
            changed = True
    for field in FIELDS:
        new = values.get(field)
        if new is None:
            if field in item:
                del item[field]
                changed = True
        elif item.get(field) != new:
            item[field] = new
            changed = True
    return changed


def _plain_errors(func):
    """``func`` with :class:`recommender.errors.RecommenderError` shown as a beets error (no traceback)."""

    @functools.wraps(func)
    def run(lib, opts, args):
        from recommender.errors import RecommenderError

        try:
            return func(lib, opts, args)
        except RecommenderError as e:
            raise ui.UserError(f"recommender: {e}") from None

    return run


class RecommenderPlugin(BeetsPlugin):
    """``recanalyze``, ``similar`` and ``radio`` on a ``recommender`` index of the library."""

    item_types = FIELDS

    def __init__(self, name=None):
        super().__init__(name)
        self.config.add({"index": "", "jobs": 1, "overwrite": False, "min_probability": None, "max_tags": None})

    # ------------------------------------------------------------ helpers
    def index_dir(self, lib) -> str:
        """The index directory: config ``index``, or ``recommender-index`` beside the library database."""
        configured = self.config["index"].as_str()
        if configured:
            return os.path.abspath(os.path.expanduser(configured))
        return os.path.join(os.path.dirname(os.path.abspath(os.fsdecode(lib.path))), "recommender-index")

    def _option(self, name: str, kind, low, high):
        """Config option ``name`` as ``kind`` in ``[low, high]``, or ``None`` when unset (the library's default)."""
        raw = self.config[name].get()
        if raw is None:
            return None
        try:
            value = kind(raw)
            ok = value == raw and (low is None or value >= low) and (high is None or value <= high)
        except (TypeError, ValueError):
            ok = False
        if not ok or isinstance(raw, bool):
            rng = f"from {low}" + (f" to {high}" if high is not None else "")
            raise ui.UserError(f"recommender.{name}: {raw!r} is not a{'n integer' if kind is int else ' number'} {rng}")
        return value

    def _open(self, lib, *, must_exist: bool = True):
        from recommender import Recommender

        d = self.index_dir(lib)
        rec = Recommender(d)
        if must_exist and not rec.exists():
            raise ui.UserError(f"no recommender index at {d}: run `beet recanalyze` first")
        return rec

    @staticmethod
    def _cue_tracks(rec, path: str) -> list:
        """Track ids of the CUE album whose audio file is ``path``, in track order; ``[]`` if it is none."""
        tr = rec.tracks()
        if not len(tr) or "source_path" not in tr:
            return []
        rows = tr[tr["source_path"] == path]
        return [int(t) for t in rows.sort_values("start_s").index]

    def _seed(self, lib, rec, args, track=None):
        """The first item matching ``args`` and its track id in ``rec`` (a CUE album item: its
        cue track ``track``, default 1)."""
        if not args:
            raise ui.UserError("give a query for the seed item (the first matching item is used)")
        item = next(iter(lib.items(args)), None)
        if item is None:
            raise ui.UserError(f"no item matches the query {' '.join(args)!r}")
        path = os.fsdecode(item.path)
        tid = rec.resolve(path)
        cue = self._cue_tracks(rec, path) if tid is None else []
        if track is not None and not cue:
            raise ui.UserError(f"--track {track}: {displayable_path(item.path)} is not a CUE album in the index")
        if cue:
            n = track or 1
            if not 1 <= n <= len(cue):
                raise ui.UserError(f"--track {n}: {displayable_path(item.path)} is a CUE album of {len(cue)} tracks")
            self._log.info("{}: a CUE album of {} tracks; the seed is its track {}", displayable_path(item.path),
                           len(cue), n)
            tid = cue[n - 1]
        if tid is None:
            raise ui.UserError(
                f"{displayable_path(item.path)}: not in the recommender index {rec.index_dir}: "
                "run `beet recanalyze` first"
            )
        return item, tid

    @staticmethod
    def _library_ids(lib, rec) -> tuple[dict, list, dict]:
        """``({track id: item id}, [ids of tracks that are no library item], {track id: cue row})``:
        a cue track belongs to the item of its audio file; the cue rows are the tracks'
        ``path`` (``<audio>#t=<start>,<end>``), ``title``, number and count in their album."""
        by_path = {os.fsdecode(it.path): it.id for it in lib.items()}
        inside, outside, cue = {}, [], {}
        tr = rec.tracks()  # index = track id
        sources = tr.get("source_path", {})
        albums: dict = {}
        for tid, p in tr["path"].items():
            src = sources.get(tid)
            src = src if isinstance(src, str) and src else None
            if p in by_path:
                inside[int(tid)] = by_path[p]
            elif src is not None and src in by_path:
                inside[int(tid)] = by_path[src]
                albums.setdefault(src, []).append((float(tr.at[tid, "start_s"]), int(tid)))
            else:
                outside.append(int(tid))
        for tracks in albums.values():
            for n, (_, tid) in enumerate(sorted(tracks), 1):
                cue[tid] = {"path": tr.at[tid, "path"], "title": tr.at[tid, "title"], "number": n,
                            "of": len(tracks)}
        return inside, outside, cue

    @staticmethod
    def _line(lib, tid: int, inside: dict, cue: dict, opts) -> str:
        """One output line: the item as beets formats it; a cue track as its media-fragment path
        with ``-p``, else the item followed by ``[cue track N/M: title]``."""
        row = cue.get(tid)
        if row is None:
            return format(lib.get_item(inside[tid]))
        if getattr(opts, "path", False):
            return row["path"]
        title = row["title"] if isinstance(row["title"], str) and row["title"] else "?"
        return f"{format(lib.get_item(inside[tid]))} [cue track {row['number']}/{row['of']}: {title}]"

    # ----------------------------------------------------------- commands
    def commands(self):
        """The ``recanalyze``, ``similar`` and ``radio`` subcommands."""
        re_cmd = ui.Subcommand("recanalyze", help="analyse items into the recommender index and store bpm, key, mood")
        re_cmd.parser.add_option("--overwrite", action="store_true", default=None,
                                 help="replace existing bpm and initial_key values")
        re_cmd.parser.add_option("-j", "--jobs", type="int", default=None, help="analysis worker processes")
        re_cmd.parser.add_option("-w", "--write", action="store_true", default=None,
                                 help="also write bpm and initial_key into the files' tags")
        re_cmd.parser.add_option("-W", "--nowrite", action="store_false", dest="write",
                                 help="do not write the files' tags")
        re_cmd.parser.add_option("-q", "--quiet", action="store_true", default=False, help="no progress bar")
        re_cmd.func = _plain_errors(self.cmd_recanalyze)

        sim = ui.Subcommand("similar", help="items like the first item matching QUERY (from the recommender index)")
        sim.parser.add_option("-n", "--number", type="int", default=10, help="number of items (default 10)")
        sim.parser.add_option("--space", default=None, help="similarity space: similarity, embedding, tags, both")
        sim.parser.add_option("-t", "--track", type="int", default=None,
                              help="the seed is a CUE album item: use its cue track N (default 1)")
        sim.parser.add_path_option()
        sim.parser.add_format_option(target="item")
        sim.func = _plain_errors(self.cmd_similar)

        radio = ui.Subcommand("radio", help="a radio playlist around the first item matching QUERY")
        radio.parser.add_option("-n", "--number", type="int", default=20, help="number of items (default 20)")
        radio.parser.add_option("--drift", action="store_true", default=False,
                                help="each next song close to the previous one")
        radio.parser.add_option("--max-per-artist", type="int", default=None, help="at most N items per artist")
        radio.parser.add_option("-t", "--track", type="int", default=None,
                                help="the seed is a CUE album item: use its cue track N (default 1)")
        radio.parser.add_path_option()
        radio.parser.add_format_option(target="item")
        radio.func = _plain_errors(self.cmd_radio)
        return [re_cmd, sim, radio]

    def cmd_recanalyze(self, lib, opts, args):
        """Update the index with the matching items' files and store the fields on the items."""
        min_p = self._option("min_probability", float, 0.0, 1.0)
        max_tags = self._option("max_tags", int, 1, None)
        items = list(lib.items(args))
        if not items:
            ui.print_("recanalyze: no item matches")
            return
        present = []
        for it in items:
            p = os.fsdecode(it.path)
            if os.path.isfile(p):
                present.append((it, p))
            else:
                self._log.warning("{}: file not found, skipped", displayable_path(it.path))
        rec = self._open(lib, must_exist=False)
        jobs = opts.jobs if opts.jobs is not None else self.config["jobs"].get(int)
        report = rec.update([p for _, p in present], jobs=jobs, progress=not opts.quiet, remove_missing=False)
        failed = {}
        if len(rec.failures()):
            fails = rec.failures()
            failed = dict(zip(fails["path"], fails["reason"]))
        ids = {}
        cue_items = cue_tracks = 0
        for it, p in present:
            tid = rec.resolve(p) if len(rec) else None
            cue = self._cue_tracks(rec, p) if tid is None and len(rec) else []
            if cue:  # a CUE album: indexed as its tracks; one item holds no single tempo or key
                cue_items += 1
                cue_tracks += len(cue)
                self._log.info("{}: a CUE album, analysed as its {} tracks; no fields stored on the item",
                               displayable_path(it.path), len(cue))
            elif tid is None:
                self._log.warning("{}: not analysed: {}", displayable_path(it.path),
                                  failed.get(p, "unknown reason (see `recommender failures`)"))
            else:
                ids[it.id] = tid
        values = field_values(rec, sorted(set(ids.values())), min_p=min_p, max_tags=max_tags)
        overwrite = opts.overwrite if opts.overwrite is not None else self.config["overwrite"].get(bool)
        write = ui.should_write(opts.write)
        changed = written = 0
        for it, _ in present:
            if it.id not in ids:
                continue
            dirty = apply_fields(it, values[ids[it.id]], overwrite=overwrite)
            changed += dirty
            # -w: write the file whenever its tags differ from the fields, not only on a change
            if write and (dirty or self._file_differs(it)) and it.try_write():
                written += 1
                dirty = True  # try_write updated the item's mtime
            if dirty:
                it.store()
        ui.print_(f"recanalyze: index {rec.index_dir}: {report}")
        line = f"recanalyze: {len(ids) + cue_items} of {len(items)} items analysed"
        if cue_items:
            line += f" ({cue_items} CUE album item(s) as {cue_tracks} cue tracks, no fields stored on them)"
        line += f", fields changed on {changed}"
        ui.print_(line + (f", files written {written}" if write else ""))

    def _file_differs(self, item) -> bool:
        """Whether the file's ``bpm`` / ``initial_key`` tags differ from the item's (True when unreadable)."""
        from mediafile import MediaFile, UnreadableFileError

        try:
            mf = MediaFile(os.fsdecode(item.path))
        except (UnreadableFileError, OSError) as e:
            self._log.debug("{}: tags not read: {}", displayable_path(item.path), e)
            return True
        for field in _BUILTIN:
            want = item.get(field)
            if want in (None, "", 0):  # beets writes nothing for an empty field
                continue
            if getattr(mf, field, None) != want:
                return True
        return False

    def cmd_similar(self, lib, opts, args):
        """Print the items most similar to the seed."""
        if opts.number < 1:
            raise ui.UserError(f"-n {opts.number}: must be at least 1")
        rec = self._open(lib)
        _, tid = self._seed(lib, rec, args, opts.track)
        inside, outside, cue = self._library_ids(lib, rec)
        k = min(opts.number + len(outside), max(len(rec) - 1, 1))
        df = rec.similar(tid, k=k, space=opts.space)
        shown = 0
        for t in df["id"]:
            if int(t) in inside and shown < opts.number:
                ui.print_(self._line(lib, int(t), inside, cue, opts))
                shown += 1

    def cmd_radio(self, lib, opts, args):
        """Print a radio playlist around the seed."""
        from recommender.recommend import playlists

        if opts.number < 1:
            raise ui.UserError(f"-n {opts.number}: must be at least 1")
        rec = self._open(lib)
        _, tid = self._seed(lib, rec, args, opts.track)
        inside, outside, cue = self._library_ids(lib, rec)
        df = playlists.radio(rec, [tid], n=opts.number, drift=opts.drift,
                             max_per_artist=opts.max_per_artist, exclude=outside)
        for t in df["id"]:
            ui.print_(self._line(lib, int(t), inside, cue, opts))
