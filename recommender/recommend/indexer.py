"""Indexing as a named plan: what :meth:`recommender.Recommender.update` does.

::

    walk(paths)                    -> {path: FileEntry}, walk errors
    plan_update(found, states, …)  -> IndexPlan(todo, changed, moved, missing, unchanged, known_failures, hashes)
    apply_plan(catalog, plan)      -> moves and removals written
    analyse_into(catalog, plan, …) -> results committed every COMMIT_EVERY_S seconds

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
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

from .._utils import check_int
from ..analysis.pipeline import AnalysisFailure
from ..io import collection
from ..io.collection import FileEntry

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
    "analyse_into",
    "update",
]

#: How often (seconds) analysed tracks are committed during an update.
COMMIT_EVERY_S = 2.0


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

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["failures"] = [{"path": p, "reason": r} for p, r in self.failures]
        return d

    def __str__(self):
        rtf = self.audio_seconds / self.seconds if self.seconds > 0 else 0.0
        return (
            f"added {self.added}, updated {self.updated}, moved {self.moved}, removed {self.removed}, "
            f"unchanged {self.unchanged}, failed {self.failed}"
            + (f" (+{self.skipped_failed} known failures skipped)" if self.skipped_failed else "")
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
    """

    todo: list = dataclasses.field(default_factory=list)
    changed: set = dataclasses.field(default_factory=set)
    moved: list = dataclasses.field(default_factory=list)
    missing: dict = dataclasses.field(default_factory=dict)
    unchanged: list = dataclasses.field(default_factory=list)
    known_failures: list = dataclasses.field(default_factory=list)
    hashes: dict = dataclasses.field(default_factory=dict)


# ------------------------------------------------------------------------ plan
def walk(paths: Iterable[str]) -> tuple[dict, list]:
    """``({path: FileEntry}, [(path, reason), ...])``: the audio files under
    ``paths`` and what could not be listed or stat'ed."""
    errors: list = []
    found: dict = {}
    for p in collection.iter_audio_files(paths, errors=errors):
        try:
            found[p] = collection.stat_entry(p)
        except OSError as e:
            errors.append((p, f"cannot stat ({e.strerror or e})"))
    return found, errors


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
        plan.missing = {p: st for p, st in states.items()
                        if p not in found and (p in paths or (roots and p.startswith(roots)))}
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
            h = plan.hashes[fe.path] = content_hash(fe.path, size=fe.size)
        except OSError:
            still.append(fe)
            continue
        old_path = by_hash.get(h)
        if old_path is not None and plan.missing[old_path].analysis_key == key:
            plan.moved.append(Move(plan.missing.pop(old_path).id, old_path, fe))
            del by_hash[h]
        else:
            still.append(fe)
    plan.todo = still


def apply_plan(cat, plan: IndexPlan, report: UpdateReport) -> None:
    """Write the plan's moves and removals (each its own transaction) and count them."""
    for mv in plan.moved:
        cat.move_track(mv.track_id, new_path=mv.entry.path, size=mv.entry.size, mtime_ns=mv.entry.mtime_ns)
        report.moved += 1
    if plan.missing:
        report.removed = cat.remove_tracks([st.id for st in plan.missing.values()])


# --------------------------------------------------------------------- analyse
def track_record(res, fe: FileEntry, key: str, *, content_hash, tags: dict):
    """``(record, vectors, patches)`` for :meth:`Catalog.add_track` from an analysis result.

    ``record`` holds ``tags`` (artist, album …) and the file's bookkeeping;
    ``vectors`` the ``embedding`` (d,), ``tags`` (n_tags,), ``embedding_std``
    (d,) and, when analysed, ``layer_summary`` vectors.
    """
    record = dict(tags)
    record.update(
        path=fe.path,
        size=fe.size,
        mtime_ns=fe.mtime_ns,
        content_hash=content_hash,
        duration_s=float(res.duration_s),
        analysis_key=key,
        sampling=res.sampling_json(),
        n_patches=res.n_patches,
    )
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


def _store(cat, res, fe: FileEntry, key: str, hashes: dict) -> None:
    chash = hashes.get(fe.path)
    if chash is None:
        try:
            chash = collection.content_hash(fe.path, size=fe.size)
        except OSError:
            chash = None
    record, vectors, patches = track_record(res, fe, key, content_hash=chash, tags=collection.read_tags(fe.path))
    cat.add_track(record, vectors=vectors, patches=patches, descriptors=res.descriptors)


def analyse_into(cat, plan: IndexPlan, key: str, report: UpdateReport, *, model, sampling, jobs=1,
                 progress=True, descriptors=True, client=None, commit_every_s=COMMIT_EVERY_S) -> None:
    """Analyse ``plan.todo`` (:func:`recommender.analysis.parallel.analyse_parallel`) and
    store each result as it arrives, committing every ``commit_every_s`` seconds; a
    failure is recorded in the catalog and the report.  An exception rolls back only
    the batch not yet committed."""
    from ..analysis.parallel import analyse_parallel

    entries = {fe.path: fe for fe in plan.todo}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan.todo), unit="track", desc="indexing", dynamic_ncols=True)
    try:
        with cat.committing_every(commit_every_s) as tick:
            for res in analyse_parallel(list(entries), model=model, sampling=sampling, jobs=jobs,
                                        descriptors=descriptors, client=client):
                fe = entries[res.path]
                if isinstance(res, AnalysisFailure):
                    cat.record_failure(res.path, res.reason, size=fe.size, mtime_ns=fe.mtime_ns)
                    report.failed += 1
                    report.failures.append((res.path, res.reason))
                else:
                    _store(cat, res, fe, key, plan.hashes)
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
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------------- update
def _int_or_none(v):
    """A nullable integer column's value as ``int`` or ``None`` (``pd.NA`` has no truth value)."""
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def update(
    catalog_path: str,
    paths,
    *,
    analysis_key: Callable,
    check_model: Callable,
    sampling,
    rebuild: Callable,
    jobs: int = 1,
    progress: bool = True,
    remove_missing: bool = True,
    retry_failed: bool = False,
    descriptors: bool = True,
    client=None,
    commit_every_s: float = COMMIT_EVERY_S,
    before_open: Callable | None = None,
) -> UpdateReport:
    """Run one update of the catalog at ``catalog_path`` (see :meth:`Recommender.update`).

    The facade passes what only it knows: ``analysis_key(catalog) -> str``
    (the key of the model this update uses), ``check_model(catalog) -> model``
    (load the analysis model and check/record it in the catalog; called only
    when something is to be analysed, or for a new catalog) and
    ``rebuild(catalog)`` (refresh the derived FAISS files); ``before_open()``
    runs just before the catalog is opened for writing (the facade closes
    its reader).

    Raises
    ------
    ParameterError
        ``jobs`` is not a positive integer.
    CatalogError, IndexLockedError
        The catalog cannot be opened for writing.
    """
    from ..store.catalog import Catalog

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.path.abspath(os.path.expanduser(os.fspath(p))) for p in paths]
    jobs = check_int("jobs", jobs)
    t0 = time.perf_counter()
    report = UpdateReport()
    os.makedirs(os.path.dirname(os.path.abspath(catalog_path)), exist_ok=True)
    if before_open is not None:
        before_open()
    with Catalog(catalog_path, mode="c") as cat:
        if not cat.get_meta("model_name"):
            check_model(cat)  # a new index records its model up front
        key = analysis_key(cat)
        found, walk_errors = walk(paths)
        for p, reason in walk_errors:
            cat.record_failure(p, reason)
            report.failures.append((p, reason))
            report.failed += 1
        failures = cat.failures()
        failed = {r.path: (_int_or_none(r.size), _int_or_none(r.mtime_ns))
                  for r in failures.itertuples(index=False)}
        plan = plan_update(found, cat.file_states(), failed, key=key, paths=paths,
                           folders=[p for p in paths if os.path.isdir(p)],
                           remove_missing=remove_missing, retry_failed=retry_failed)
        report.unchanged = len(plan.unchanged)
        report.skipped_failed = len(plan.known_failures)
        apply_plan(cat, plan, report)
        if plan.todo:
            model = check_model(cat)
            analyse_into(cat, plan, key, report, model=model, sampling=sampling, jobs=jobs, progress=progress,
                         descriptors=descriptors, client=client, commit_every_s=commit_every_s)
        # derived FAISS indexes (only where stale: an unchanged re-scan rebuilds nothing)
        rebuild(cat)
    report.seconds = time.perf_counter() - t0
    return report
