"""Indexing as a named plan: what :meth:`recommender.Recommender.update` does.

::

    walk(paths)                    -> {path: FileEntry}, walk errors (and what was skipped, and why);
                                      an audio file cut by a CUE sheet gives one entry per cue track
    plan_update(found, states, …)  -> IndexPlan(todo, changed, moved, missing, unchanged, known_failures, hashes)
    apply_plan(catalog, plan)      -> moves and removals written
    analyse_into(catalog, plan, …) -> results committed every COMMIT_EVERY_S seconds;
                                      fingerprints (fpcalc) computed beside the analysis

One file never stops a run: whatever goes wrong with one file at any stage
(walk, stat, content hash, tags, decoding and analysis, storing) is recorded
as that file's failure with a plain reason (:meth:`Catalog.record_failure`,
:attr:`UpdateReport.failures`) and the run goes on; only a catalog that
cannot be written (:class:`~recommender.errors.CatalogError`: disk full, I/O)
or an interrupt stops it.  A fingerprint that cannot be computed is logged
and the track is indexed without one.

:func:`plan_update` is a pure function of the walk, the catalog's
:meth:`~recommender.store.catalog.Catalog.file_states` and its recorded
failures (plus a content-hash function used only to recognise moved files),
so every decision can be tested without audio.  A content hash computed while
planning is reused when the file's analysis is stored; a file is hashed once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

from ..analysis.parallel import check_jobs
from ..analysis.pipeline import AnalysisFailure
from ..errors import CatalogError, RecommenderError
from ..io import collection, cuesheet, fingerprint
from ..io.collection import FileEntry, display_path

logger = logging.getLogger(__name__)

__all__ = [
    "COMMIT_EVERY_S",
    "UpdateReport",
    "Move",
    "IndexPlan",
    "walk",
    "plan_update",
    "apply_plan",
    "track_record",
    "model_values",
    "analyse_into",
    "update",
]

#: How often (seconds) analysed tracks are committed during an update.
COMMIT_EVERY_S = 2.0
#: Seconds of audio fingerprinted from the start of each track (Chromaprint via fpcalc): 30 s
#: finds every copy that 60 s does (bench_duplicates.py: recall 1.000, 0 false pairs, both)
#: for ~65 ms of fpcalc CPU per track instead of ~94 ms (one file per fpcalc; 16 per fpcalc:
#: 26.6 ms, bench_fingerprints.py).  20 s also kept recall 1.000 and 0 false pairs on the
#: selection half (3-5 s start cuts) but leaves only the 10-s minimum overlap at a 10-s offset;
#: 15 s loses every start-cut copy (bench_duplicates.py --max-length 20 / 15).
FINGERPRINT_LENGTH_S = 30
#: Threads running fpcalc beside the analysis (each runs one subprocess at a time, for
#: up to :data:`recommender.io.fingerprint.FPCALC_BATCH` files).
FINGERPRINT_THREADS = 1
#: Fingerprints computed ahead of the analysis at most (bounds memory).
FINGERPRINT_AHEAD = 32


@dataclasses.dataclass
class UpdateReport:
    """Summary of :meth:`recommender.Recommender.update` (counts of files; times in seconds)."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped_failed: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    failures: list = dataclasses.field(default_factory=list)
    #: Entries the walk left out on purpose (OS metadata, hidden, reached twice through links):
    #: ``{reason: count}`` (see :func:`recommender.io.collection.iter_audio_files`).
    skipped: dict = dataclasses.field(default_factory=dict)
    #: Tracks given an acoustic fingerprint in this update.
    fingerprinted: int = 0
    #: CUE sheets not used, ``[(sheet path, reason naming the line)]``: their audio files are indexed whole.
    sheet_errors: list = dataclasses.field(default_factory=list)
    #: Scanned folders found empty whose tracks were kept, ``{folder: tracks}`` (an unmounted disk).
    kept_empty: dict = dataclasses.field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        """Number of entries the walk left out on purpose."""
        return int(sum(self.skipped.values()))

    def to_json(self) -> dict:
        """The report as JSON-ready values; ``skipped`` is ``{"total": n, "by_reason": {reason: n}}``."""
        d = dataclasses.asdict(self)
        d["failures"] = [{"path": p, "reason": r} for p, r in self.failures]
        d["skipped"] = {"total": self.n_skipped, "by_reason": dict(sorted(self.skipped.items()))}
        d["sheet_errors"] = [{"path": display_path(p), "reason": r} for p, r in self.sheet_errors]
        d["kept_empty"] = {display_path(k): v for k, v in self.kept_empty.items()}
        return d

    def __str__(self):
        rtf = self.audio_seconds / self.seconds if self.seconds > 0 else 0.0
        why = ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.items(), key=lambda x: (-x[1], x[0])))
        return (
            f"added {self.added}, updated {self.updated}, moved {self.moved}, removed {self.removed}, "
            f"unchanged {self.unchanged}, failed {self.failed}"
            + (f" (+{self.skipped_failed} known failures skipped)" if self.skipped_failed else "")
            + (f", skipped {self.n_skipped} ({why})" if self.skipped else "")
            + (f", {len(self.sheet_errors)} cue sheet(s) not used" if self.sheet_errors else "")
            + "".join(f"; {display_path(k)} is empty: its {v} track(s) were kept (an unmounted disk? "
                      f"--prune-empty removes them)" for k, v in self.kept_empty.items())
            + f" in {self.seconds:.1f} s"
            + (f" ({rtf:.0f}x real time)" if self.audio_seconds > 0 else "")
        )


class Move(NamedTuple):
    """A track whose file moved: it keeps its id and analysis."""

    track_id: int
    old_path: str
    entry: FileEntry


@dataclasses.dataclass
class IndexPlan:
    """What an update does to each file it found (and to tracks it did not find).

    Attributes
    ----------
    todo : list of FileEntry
        Files to analyse (new and changed), in walk order.
    changed : set of str
        Paths in ``todo`` that are already tracks (re-analysed in place).
    moved : list of Move
        New paths whose content hash is a missing track's: the track moves.
    missing : dict of str to FileState
        Tracks under the scanned paths whose file is gone: removed.
    unchanged : list of str
        Tracks whose file, model and sampling did not change.
    known_failures : list of str
        Files that failed before and did not change (skipped unless retried).
    hashes : dict of str to str
        Content hashes computed while planning, reused when storing.
    kept_empty : dict of str to int
        Scanned folders in which the walk found no file at all although the
        index holds tracks under them (an unmounted disk or share, an emptied
        mount point): ``{folder: tracks kept}``. Their tracks are not removed.
    """

    todo: list = dataclasses.field(default_factory=list)
    changed: set = dataclasses.field(default_factory=set)
    moved: list = dataclasses.field(default_factory=list)
    missing: dict = dataclasses.field(default_factory=dict)
    unchanged: list = dataclasses.field(default_factory=list)
    kept_empty: dict = dataclasses.field(default_factory=dict)
    known_failures: list = dataclasses.field(default_factory=list)
    hashes: dict = dataclasses.field(default_factory=dict)


# ------------------------------------------------------------------------ plan
def walk(paths: Iterable[str], *, skipped: list | None = None, include_hidden: bool = False,
         cue_sheets: bool = True, sheet_errors: list | None = None) -> tuple[dict, list]:
    """``({path: FileEntry}, [(path, reason), ...])``: the audio files under
    ``paths`` and what could not be listed or stat'ed.

    ``skipped``, when given, receives ``(path, reason)`` for each entry left
    out on purpose (see :func:`recommender.io.collection.iter_audio_files`).
    With ``cue_sheets``, an audio file that a ``.cue`` sheet beside it cuts
    into tracks is replaced by one entry per cue track
    (:func:`recommender.io.cuesheet.expand_albums`); ``sheet_errors``
    receives ``(sheet, reason)`` for each sheet not used.
    """
    errors: list = []
    found: dict = {}
    for p in collection.iter_audio_files(paths, errors=errors, skipped=skipped, include_hidden=include_hidden):
        try:
            found[p] = collection.stat_entry(p)
        except OSError as e:
            reason = "broken symbolic link" if os.path.islink(p) and not os.path.exists(p) else \
                f"cannot read the file's size and date ({e.strerror or e})"
            errors.append((p, reason))
        except Exception as e:  # one file never stops a run
            errors.append((p, plain_reason("cannot read the file's size and date", e)))
    if cue_sheets:
        found = cuesheet.expand_albums(found, sheet_errors=sheet_errors)
    return found, errors


def plain_reason(what: str, exc: BaseException) -> str:
    """``"what (message)"``: a failure reason for a user, without the exception's type name.

    Our errors carry a plain ``reason``; an ``OSError`` its ``strerror``;
    anything else its message (or "unexpected error" when it has none).
    The result is valid UTF-8 (undecodable file-name bytes as ``\\xNN``).
    """
    msg = getattr(exc, "reason", None) if isinstance(exc, RecommenderError) else None
    if msg is None and isinstance(exc, OSError):
        msg = exc.strerror
    if not msg:
        msg = str(exc).strip() or "unexpected error"
    return display_path(f"{what} ({msg})")


def plan_update(
    found: dict,
    states: dict,
    failed: dict,
    *,
    key: str,
    paths: Iterable[str] = (),
    folders: Iterable[str] = (),
    remove_missing: bool = True,
    retry_failed: bool = False,
    content_hash: Callable | None = None,
    prune_empty: bool = False,
) -> IndexPlan:
    """Decide, for every file found and every track known, what an update does.

    Parameters
    ----------
    found : dict of str to FileEntry
        The walk (:func:`walk`), in walk order.
    states : dict of str to FileState
        :meth:`Catalog.file_states`.
    failed : dict of str to (size, mtime_ns)
        Recorded failures.
    key : str
        The analysis key of this update (model, weights, sampling): a track
        analysed under another key is re-analysed.
    paths, folders : iterable of str
        The absolute paths scanned, and those of them that are folders: only
        tracks at one of ``paths`` or under one of ``folders`` can be missing.
    remove_missing, retry_failed : bool
        As in :meth:`Recommender.update`.
    content_hash : callable, optional
        ``content_hash(path, size=...) -> str`` (default
        :func:`recommender.io.collection.content_hash`); called only for new
        files while some track is missing; ``OSError`` means "not a move".
        A cue track's hash is :meth:`Segment.content_hash` of its audio
        file's (hashed once per file).
    prune_empty : bool
        Also remove the tracks of a scanned folder in which nothing was found
        (default: keep them, listed in ``plan.kept_empty``).

    A cue track (path ``"<audio>#t=..."``) is under the scanned paths when
    its audio file is one of ``paths``; a moved album (audio and sheet)
    keeps its tracks.

    Returns
    -------
    IndexPlan
    """
    plan = IndexPlan()
    for p, fe in found.items():
        st = states.get(p)
        if st is not None:
            if st.size == fe.size and st.mtime_ns == fe.mtime_ns and st.analysis_key == key:
                plan.unchanged.append(p)
                continue
            plan.changed.add(p)
            plan.todo.append(fe)
            continue
        kf = failed.get(p)
        if kf is not None and not retry_failed and tuple(kf) == (fe.size, fe.mtime_ns):
            plan.known_failures.append(p)
            continue
        plan.todo.append(fe)
    if remove_missing:
        paths = set(paths)
        roots = tuple(f.rstrip(os.sep) + os.sep for f in folders)
        # a scanned folder in which nothing at all was found while the index holds tracks under it
        # is an unmounted disk or share, not a deleted album: its tracks are kept (and reported)
        found_roots = {r for r in roots if any(p.startswith(r) for p in found)}
        empty = () if prune_empty else tuple(r for r in roots if r not in found_roots)
        if empty:
            for r in empty:
                n = sum(1 for p in states if p not in found and p.startswith(r))
                if n:
                    plan.kept_empty[r.rstrip(os.sep) or os.sep] = n
            roots = tuple(r for r in roots if r not in empty or not plan.kept_empty.get(r.rstrip(os.sep) or os.sep))
        plan.missing = {p: st for p, st in states.items()
                        if p not in found and (p in paths or (roots and p.startswith(roots))
                                               or cuesheet.source_of_key(p) in paths)}
    if plan.missing:
        _find_moves(plan, key, content_hash or collection.content_hash)
    return plan


def _find_moves(plan: IndexPlan, key: str, content_hash: Callable) -> None:
    """Move new files whose content hash is a missing track's (analysed under ``key``) out of
    ``todo``/``missing`` into ``moved``; each missing track moves at most once."""
    by_hash = {st.content_hash: p for p, st in plan.missing.items() if st.content_hash}
    still = []
    for fe in plan.todo:
        if fe.path in plan.changed:
            still.append(fe)
            continue
        try:
            h = plan.hashes[fe.path] = entry_hash(fe, content_hash, plan.hashes)
        except Exception as e:  # not a move; hashed (and failing, if it must) again when stored
            if not isinstance(e, OSError):
                logger.warning("%s: %s", display_path(fe.path), plain_reason("cannot hash the file", e))
            still.append(fe)
            continue
        old_path = by_hash.get(h)
        if old_path is not None and plan.missing[old_path].analysis_key == key:
            plan.moved.append(Move(plan.missing.pop(old_path).id, old_path, fe))
            del by_hash[h]
        else:
            still.append(fe)
    plan.todo = still


def entry_hash(fe: FileEntry, content_hash: Callable, cache: dict | None = None) -> str:
    """The content hash of a walk entry: its file's, or for a cue track
    :meth:`~recommender.io.cuesheet.Segment.content_hash` of its audio file's
    (``cache`` keeps the file's under the audio path: an album is hashed once)."""
    seg = fe.segment
    if seg is None:
        return content_hash(fe.path, size=fe.size)
    h = cache.get(seg.source) if cache is not None else None
    if h is None:
        h = content_hash(seg.source, size=fe.size)
        if cache is not None:
            cache[seg.source] = h
    return seg.content_hash(h)


def apply_plan(cat, plan: IndexPlan, report: UpdateReport) -> None:
    """Write the plan's moves and removals (each its own transaction) and count them."""
    for mv in plan.moved:
        seg = mv.entry.segment
        cat.move_track(mv.track_id, new_path=mv.entry.path, size=mv.entry.size, mtime_ns=mv.entry.mtime_ns,
                       source_path=seg.source if seg is not None else None)
        report.moved += 1
    if plan.missing:
        report.removed = cat.remove_tracks([st.id for st in plan.missing.values()])


# --------------------------------------------------------------------- analyse
def track_record(res, fe: FileEntry, key: str, *, content_hash, tags: dict):
    """``(record, vectors, patches)`` for :meth:`Catalog.add_track` from an analysis result.

    ``record`` holds ``tags`` (artist, album_artist, album …, as
    :func:`~recommender.io.collection.read_tags` gives them; its ``tags``
    entry, every value of every tag, goes to ``tags_json``), the file's
    bookkeeping and ``audio_flag`` (``None``, ``'silent'`` or ``'inaudible'``,
    from the analysis when it tells); for a cue track (``fe.segment``)
    ``source_path``, ``start_s`` and ``end_s`` (= start + the analysed
    duration, s); ``vectors`` the ``embedding`` (d,),
    ``tags`` (n_tags,), ``embedding_std`` (d,) and, when analysed,
    ``layer_summary`` vectors.
    """
    record = dict(tags)
    all_tags = record.pop("tags", None)
    record.update(
        path=fe.path,
        size=fe.size,
        mtime_ns=fe.mtime_ns,
        content_hash=content_hash,
        duration_s=float(res.duration_s),
        analysis_key=key,
        sampling=res.sampling_json(),
        n_patches=res.n_patches,
        tags_json=all_tags or None,
        audio_flag=getattr(res, "audio_flag", None),
    )
    seg = getattr(fe, "segment", None)
    if seg is not None:
        record.update(source_path=seg.source, start_s=float(seg.start_s),
                      end_s=float(seg.start_s) + float(res.duration_s))
    vectors = {
        "embedding": res.embedding,
        "tags": res.probs,
        # spread of the patches around the mean: half of the 'similarity' space
        "embedding_std": res.patch_embeddings.std(axis=0).astype(np.float32),
    }
    if res.layer_summary is not None:
        vectors["layer_summary"] = res.layer_summary
    patches = {"starts_s": res.starts_s, "embeddings": res.patch_embeddings, "probs": res.patch_probs}
    return record, vectors, patches


_TYPE_PREFIX = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Warning|Exit): ")


def _plain_analysis_reason(reason) -> str:
    """An analysis failure's reason without a leading exception type name ("ValueError: x" -> "x")."""
    r = display_path(str(reason))
    if _TYPE_PREFIX.match(r):
        r = "could not be analysed (" + _TYPE_PREFIX.sub("", r, count=1) + ")"
    return r


class _StageError(Exception):
    """One file failed at one stage of storing; ``reason`` is the plain reason recorded."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def model_values(model, res) -> dict:
    """The per-track descriptors a trained model adds to an index: a regressor's outputs
    (the mean over the track's patches, :attr:`TrackAnalysis.probs`) by the model's own
    target names (:meth:`~recommender.models.trained.TrainedTagModel.named_values`);
    ``{}`` for any other model (a multi-label model's labels are its tags, thresholded by
    the catalog meta ``tag_thresholds`` that :func:`record_model` writes)."""
    if getattr(model, "task", "classify") != "regress":
        return {}
    return {value_column(k): v for k, v in model.named_values(res.probs).items()}


def value_column(name) -> str:
    """The descriptor column of a regressor output called ``name``: the name itself, or
    ``NAME_model`` when the index already stores a descriptor of that name (``tempo_bpm``:
    the estimator's value stays, the model's is ``tempo_bpm_model``)."""
    from ..descriptors import DESCRIPTOR_COLUMNS
    from ..store._rows import FILTER_COLUMNS

    return f"{name}_model" if name in FILTER_COLUMNS or name in DESCRIPTOR_COLUMNS or name == "path" else name


def _store(cat, res, fe: FileEntry, key: str, hashes: dict, fingerprints=None, values=None) -> bool:
    """Store one analysis (one savepoint); ``True`` if a fingerprint was stored with it.

    ``values`` (:func:`model_values`) are stored with the track's descriptors.

    Raises :class:`_StageError` with a reason naming the stage that failed
    (hash, tags, storing); :class:`CatalogError` (the catalog cannot be
    written) propagates.
    """
    chash = hashes.get(fe.path)
    if chash is None:
        try:
            chash = entry_hash(fe, collection.content_hash, hashes)
        except OSError as e:
            raise _StageError(plain_reason("cannot read the file", e)) from None
        except Exception as e:
            raise _StageError(plain_reason("cannot hash the file", e)) from None
    try:
        if fe.segment is None:  # a whole file; one that a sheet names as one track takes the sheet's tags
            tags = cuesheet.apply_sheet_tags(collection.read_tags(fe.path), fe)
        else:
            tags = cuesheet.apply_track_tags(collection.read_tags(fe.segment.source), fe.segment)
    except Exception as e:
        raise _StageError(plain_reason("cannot read its tags", e)) from None
    try:
        record, vectors, patches = track_record(res, fe, key, content_hash=chash, tags=tags)
        with cat.write_batch():  # one savepoint: the track and its fingerprint, or neither
            desc = {**(res.descriptors or {}), **values} if values else res.descriptors
            tid = cat.add_track(record, vectors=vectors, patches=patches, descriptors=desc)
            fp = fingerprints.take(fe.path) if fingerprints is not None else None  # a cue track: its segment's
            if fp is not None:
                cat.set_fingerprint(tid, *fp)
    except CatalogError:
        raise  # the catalog itself cannot be written: stop the run
    except Exception as e:
        raise _StageError(plain_reason("cannot be stored in the index", e)) from None
    return fp is not None


class _Fingerprints:
    """Chromaprint fingerprints computed beside the analysis, in a small thread pool.

    ``fpcalc`` runs as a subprocess, so its threads do not hold the GIL; each
    run fingerprints up to ``batch`` files (:func:`~recommender.io.fingerprint.fingerprint_files`:
    fpcalc's start-up costs more than a 30-s fingerprint).  At most ``ahead``
    results wait to be taken (memory stays bounded).  A failure is logged and
    gives ``None``: the track is indexed without a fingerprint.
    """

    def __init__(self, paths, *, length_s: float, threads: int, ahead: int, batch: int = 1, segments=None):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self.length_s = length_s
        self._segments = dict(segments or {})  # catalog path of a cue track -> its Segment
        self._queue = deque(paths)
        self._pending: dict = {}
        self._ahead = max(1, int(ahead))
        self._batch = max(1, int(batch))
        self._pool = ThreadPoolExecutor(max_workers=max(1, int(threads)), thread_name_prefix="fpcalc")
        self.failed = 0
        self._fill()

    def _submit(self, paths):
        from concurrent.futures import Future

        futures = {p: Future() for p in paths}
        self._pending.update(futures)
        self._pool.submit(self._run, futures)

    def _run(self, futures):
        """Fingerprint the paths of ``futures`` (one fpcalc run) and settle each future."""
        try:
            items = [self._segments.get(p, p) for p in futures]
            got = fingerprint.fingerprint_files(items, max_length_s=self.length_s, batch=len(items))
            for fut, (_, res) in zip(futures.values(), got):
                if not fut.set_running_or_notify_cancel():
                    continue  # forgotten meanwhile
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
        except BaseException as e:  # noqa: BLE001 - reaches the tracks as their failure
            for fut in futures.values():
                if not fut.done() and (fut.running() or fut.set_running_or_notify_cancel()):
                    fut.set_exception(e)

    def _fill(self):
        # whole batches: a batch waits until it can be full (or the queue is shorter)
        while self._queue and self._ahead - len(self._pending) >= min(self._batch, len(self._queue)):
            batch: list = []
            while self._queue and len(batch) < self._batch and len(self._pending) + len(batch) < self._ahead:
                p = self._queue.popleft()
                if p not in self._pending and p not in batch:
                    batch.append(p)
            if batch:
                self._submit(batch)

    def take(self, path):
        """``(bytes, duration_s)`` of ``path``'s fingerprint, or ``None`` if it could not be computed."""
        fut = self._pending.pop(path, None)
        if fut is None:
            try:
                self._queue.remove(path)
            except ValueError:
                pass
            self._submit([path])
            fut = self._pending.pop(path)
        self._fill()
        try:
            fp = fut.result()
            return fingerprint.fingerprint_to_bytes(fp), fp.duration_s
        except Exception as e:
            self.failed += 1
            logger.warning("%s: no fingerprint: %s", display_path(path), plain_reason("not fingerprinted", e))
            return None

    def forget(self, path):
        """Drop ``path``'s fingerprint (its analysis failed)."""
        fut = self._pending.pop(path, None)
        if fut is not None:
            fut.cancel()
        self._fill()

    def close(self):
        self._queue.clear()
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _fingerprinter(paths, enabled, length_s, segments=None):
    """A :class:`_Fingerprints` for ``paths``, or ``None`` (disabled, nothing to do, or no fpcalc)."""
    if not enabled or not paths or not length_s:
        return None
    if not fingerprint.fingerprint_available():
        logger.warning("fpcalc (Chromaprint) not found: tracks are indexed without acoustic fingerprints "
                       "(Debian/Ubuntu: apt install libchromaprint-tools)")
        return None
    return _Fingerprints(paths, length_s=length_s, threads=FINGERPRINT_THREADS, ahead=FINGERPRINT_AHEAD,
                         batch=fingerprint.FPCALC_BATCH, segments=segments)


def _results(paths, *, model, sampling, jobs, descriptors, client):
    """Analysis results of ``paths``, in completion order, whatever goes wrong with one file.

    If the analysis itself raises (a bug, or a file that breaks the pipeline
    beyond the per-file errors it already turns into
    :class:`AnalysisFailure`), the files not yet returned are analysed again
    one at a time in this process, so that only the file that raises is a
    failure.
    """
    from ..analysis.blocks import item_key
    from ..analysis.parallel import analyse_parallel

    done: set = set()
    try:
        for res in analyse_parallel(list(paths), model=model, sampling=sampling, jobs=jobs,
                                    descriptors=descriptors, client=client):
            done.add(res.path)
            yield res
        return
    except CatalogError:
        raise
    except Exception as e:
        logger.warning("the analysis stopped (%s); analysing the %d remaining files one at a time",
                       plain_reason("error", e), len({item_key(p) for p in paths} - done))
    for p in paths:
        if item_key(p) in done:
            continue
        try:
            got = list(analyse_parallel([p], model=model, sampling=sampling, jobs=1, descriptors=descriptors))
        except CatalogError:
            raise
        except Exception as e:
            got = [AnalysisFailure(item_key(p), plain_reason("could not be analysed", e), e)]
        yield from got


def _finisher(model):
    """``res -> res``: a track-level head's :meth:`~recommender.models.trackhead.TrackHeadModel.finish`
    (class probabilities from the whole track's layer summary), failing as :class:`_StageError`."""
    f = getattr(model, "finish", None)
    if f is None:
        return lambda res: res

    def run(res):
        try:
            return f(res)
        except Exception as e:  # one file never stops a run
            raise _StageError(plain_reason("the model's track-level head failed", e)) from None
    return run


def analyse_into(cat, plan: IndexPlan, key: str, report: UpdateReport, *, model, sampling, jobs="auto",
                 progress=True, descriptors=True, client=None, commit_every_s=COMMIT_EVERY_S,
                 fingerprints=True, fingerprint_length_s=None) -> None:
    """Analyse ``plan.todo`` (:func:`recommender.analysis.parallel.analyse_parallel`) and
    store each result as it arrives, committing every ``commit_every_s`` seconds; a
    failure of one file (analysis, hash, tags, storing) is recorded in the catalog
    and the report, and the run goes on.  An exception that stops the run (the
    catalog cannot be written, an interrupt) rolls back only the batch not yet
    committed.

    With ``fingerprints`` (and ``fpcalc`` installed), each track's Chromaprint
    fingerprint of its first ``fingerprint_length_s`` seconds (default
    :data:`FINGERPRINT_LENGTH_S`) is computed in
    :data:`FINGERPRINT_THREADS` threads beside the analysis and stored with
    it (:meth:`Catalog.set_fingerprint`).
    """
    entries = {fe.path: fe for fe in plan.todo}
    finish = _finisher(model)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan.todo), unit="track", desc="indexing", dynamic_ncols=True)
    fps = _fingerprinter(list(entries), fingerprints,
                         FINGERPRINT_LENGTH_S if fingerprint_length_s is None else fingerprint_length_s,
                         segments={p: fe.segment for p, fe in entries.items() if fe.segment is not None})

    def fail(path, reason):
        fe = entries[path]
        cat.record_failure(path, reason, size=fe.size, mtime_ns=fe.mtime_ns)
        report.failed += 1
        report.failures.append((path, reason))

    try:
        with cat.committing_every(commit_every_s) as tick:
            for res in _results([fe.segment or fe.path for fe in entries.values()], model=model,
                                sampling=sampling, jobs=jobs,
                                descriptors=descriptors, client=client):
                fe = entries[res.path]
                if isinstance(res, AnalysisFailure):
                    fail(res.path, _plain_analysis_reason(res.reason))
                    if fps is not None:
                        fps.forget(res.path)
                else:
                    try:
                        res = finish(res)
                        report.fingerprinted += bool(_store(cat, res, fe, key, plan.hashes, fps,
                                                            values=model_values(model, res)))
                    except _StageError as e:
                        fail(res.path, e.reason)
                    else:
                        report.audio_seconds += res.duration_s
                        if fe.path in plan.changed:
                            report.updated += 1
                        else:
                            report.added += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(failed=report.failed, refresh=False)
                tick()
    finally:
        if fps is not None:
            fps.close()
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------------- update
def _int_or_none(v):
    """A nullable integer column's value as ``int`` or ``None`` (``pd.NA`` has no truth value)."""
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def record_model(cat, model):
    """Check ``model`` against the model the catalog records (or record it), with
    the front-end parameters and tag names; returns ``model``.

    Raises
    ------
    CatalogError
        The index was built with another model or other dimensions.
    """
    from ..features import frontend as features

    cat.check_compatible(
        model_name=model.name,
        weights_sha256=model.weights_sha256,
        dims={"embedding": model.embedding_dim, "tags": model.n_tags},
    )
    if cat.get_meta("frontend") is None:
        cat.set_meta(frontend=features.FRONTEND_PARAMS, tags=list(model.tags))
    task = getattr(model, "task", "classify")
    if task == "regress" and cat.get_meta("value_names") is None:
        cat.set_meta(value_names=[value_column(n) for n in model.value_names])  # names `--where` may use
    if task == "multilabel" and cat.get_meta("tag_thresholds") is None:
        cat.set_meta(tag_thresholds=list(model.thresholds))  # `--tag` = the model's label, thresholded
    return model


def update(
    catalog_path: str,
    paths,
    *,
    analysis_key: Callable,
    check_model: Callable,
    sampling,
    rebuild: Callable,
    jobs: int | str = "auto",
    progress: bool = True,
    remove_missing: bool = True,
    retry_failed: bool = False,
    descriptors: bool = True,
    client=None,
    commit_every_s: float = COMMIT_EVERY_S,
    before_open: Callable | None = None,
    include_hidden: bool = False,
    fingerprints: bool = True,
    cue_sheets: bool = True,
    prune_empty: bool = False,
) -> UpdateReport:
    """Run one update of the catalog at ``catalog_path`` (see :meth:`Recommender.update`).

    The facade passes what only it knows: ``analysis_key(catalog) -> str``
    (the key of the model this update uses), ``check_model(catalog) -> model``
    (load the analysis model and check/record it in the catalog; called only
    when something is to be analysed, or for a new catalog) and
    ``rebuild(catalog)`` (refresh the derived FAISS files); ``before_open()``
    runs just before the catalog is opened for writing (the facade closes
    its reader).  ``include_hidden`` also walks hidden folders and files
    (a name starting with ``.``); ``fingerprints`` computes each new or
    changed track's Chromaprint fingerprint (needs ``fpcalc``); with
    ``cue_sheets`` an audio file cut by a ``.cue`` sheet beside it is
    indexed as its cue tracks (:mod:`recommender.io.cuesheet`; sheets not
    used are in :attr:`UpdateReport.sheet_errors`).

    Raises
    ------
    ParameterError
        ``jobs`` is neither ``"auto"`` nor a positive integer.
    CatalogError, IndexLockedError
        The catalog cannot be opened for writing.
    """
    from ..store.catalog import Catalog

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.path.abspath(os.path.expanduser(os.fspath(p))) for p in paths]
    jobs = check_jobs(jobs)
    t0 = time.perf_counter()
    report = UpdateReport()
    index_dir = os.path.dirname(os.path.abspath(catalog_path))
    try:
        os.makedirs(index_dir, exist_ok=True)
    except FileExistsError:
        raise CatalogError(index_dir, "the index must be a directory, and this is a file") from None
    except OSError as e:
        raise CatalogError(index_dir, f"cannot create the index directory ({e.strerror or e})") from None
    if before_open is not None:
        before_open()
    with Catalog(catalog_path, mode="c") as cat:
        if not cat.get_meta("model_name"):
            check_model(cat)  # a new index records its model up front
        key = analysis_key(cat)
        skipped: list = []
        found, walk_errors = walk(paths, skipped=skipped, include_hidden=include_hidden,
                                  cue_sheets=cue_sheets, sheet_errors=report.sheet_errors)
        for _, why in skipped:
            report.skipped[why] = report.skipped.get(why, 0) + 1
        for p, reason in walk_errors:
            reason = display_path(reason)
            cat.record_failure(p, reason)
            report.failures.append((p, reason))
            report.failed += 1
        failures = cat.failures()
        failed = {r.path: (_int_or_none(r.size), _int_or_none(r.mtime_ns))
                  for r in failures.itertuples(index=False)}
        plan = plan_update(found, cat.file_states(), failed, key=key, paths=paths,
                           folders=[p for p in paths if os.path.isdir(p)],
                           remove_missing=remove_missing, retry_failed=retry_failed, prune_empty=prune_empty)
        report.kept_empty = dict(plan.kept_empty)
        for folder, n in plan.kept_empty.items():
            logger.warning("%s is empty: its %d track(s) were kept (an unmounted disk?); "
                           "prune_empty=True / --prune-empty removes them", display_path(folder), n)
        report.unchanged = len(plan.unchanged)
        report.skipped_failed = len(plan.known_failures)
        apply_plan(cat, plan, report)
        if plan.todo:
            model = check_model(cat)
            analyse_into(cat, plan, key, report, model=model, sampling=sampling, jobs=jobs, progress=progress,
                         descriptors=descriptors, client=client, commit_every_s=commit_every_s,
                         fingerprints=fingerprints)
        # derived FAISS indexes (only where stale: an unchanged re-scan rebuilds nothing)
        rebuild(cat)
    report.seconds = time.perf_counter() - t0
    return report
