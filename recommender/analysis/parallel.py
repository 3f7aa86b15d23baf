"""Spreading analysis over processes (joblib) or a Dask cluster, and how many.

Every worker loads the model once (a per-process cache in
:func:`recommender.models.load_model`) and analyses small chunks of files, so
results stream back to the parent, which writes them into the catalog as they
arrive.  Only file paths and plain results (NumPy arrays, strings) cross
process boundaries; nothing read from disk is unpickled.  The workers are
joblib's reusable loky processes: they stay for the whole run (and for the
next run of the same Python process, until idle for 300 s), so each pays its
start-up (importing the package and ONNX Runtime, building the ONNX graph:
about 1-2 s) once.

How many processes (:func:`resolve_jobs`): one process already keeps two
cores busy -- two CNN runs side by side on the pieces of each batch, while
two threads decode -- so a worker process pays only for every further
:data:`CORES_PER_PROCESS` cores, and only with at least
:data:`MIN_FILES_PER_WORKER` files for each (below that its start-up costs
more than it saves).  On 2 cores that is always one process: measured by
``benchmarks/bench_jobs.py`` on 2 cores, two worker processes spent 4.0x,
1.34x and 1.06x the CPU time of one process on 10, 100 and 1,000 files
(2.8x and 1.2x its wall time on 10 and 100 files).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

from .._utils import cpu_count
from ..errors import ParameterError
from .pipeline import AnalysisFailure, Sampling, TrackAnalysis, analyze_files

logger = logging.getLogger(__name__)

__all__ = ["analyse_parallel", "analyse_processes", "analyse_chunk", "check_jobs", "resolve_jobs", "JOBS_AUTO"]

#: Files per task sent to a worker: small enough for results to stream back
#: and for work to balance, large enough to keep CNN batches full.
CHUNK_FILES = 8
#: ``jobs`` value that picks the number of processes (:func:`resolve_jobs`).
JOBS_AUTO = "auto"
#: Cores one analysis process keeps busy (two CNN runs side by side, decoding in threads).
CORES_PER_PROCESS = 2
#: Files each worker process needs to pay for its start-up.
MIN_FILES_PER_WORKER = 4 * CHUNK_FILES


def check_jobs(jobs) -> int | str:
    """``jobs`` checked: :data:`JOBS_AUTO` (``"auto"``) or an int >= 1.

    Raises
    ------
    ParameterError
        Anything else (the message names the value and the rule).
    """
    if isinstance(jobs, str) and jobs.strip().lower() == JOBS_AUTO:
        return JOBS_AUTO
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"jobs={jobs!r}: expected 'auto' or a whole number >= 1")
    return int(jobs)


def resolve_jobs(jobs, n_files: int | None = None, *, cores: int | None = None) -> int:
    """Processes to analyse ``n_files`` files with: the rule of ``--jobs``.

    ``max(1, min(jobs, cores // CORES_PER_PROCESS, n_files // MIN_FILES_PER_WORKER))``
    where ``jobs="auto"`` puts no limit of its own: each process keeps
    :data:`CORES_PER_PROCESS` (2) cores busy, and a worker process is worth
    its start-up only with :data:`MIN_FILES_PER_WORKER` (32) files.  An
    explicit number is an upper bound, never raised and lowered by the same
    rule (more processes than that were never faster), so asking for more
    processes is never slower than ``jobs=1``.  On 2 cores the answer is
    always 1.

    Parameters
    ----------
    jobs : "auto" or int >= 1
    n_files : int, optional
        Files (or cue tracks) to analyse; ``None``: not known yet, no limit from it.
    cores : int, optional
        CPUs this process may use (default :func:`recommender._utils.cpu_count`,
        which honours the affinity mask and a cgroup quota).

    Returns
    -------
    int
        Processes (1: analyse in this process).

    Raises
    ------
    ParameterError
        ``jobs`` is neither ``"auto"`` nor an int >= 1.
    """
    jobs = check_jobs(jobs)
    cores = cpu_count() if cores is None else max(1, int(cores))
    n = max(1, cores // CORES_PER_PROCESS)
    if jobs != JOBS_AUTO:
        n = min(n, jobs)
    if n_files is not None:
        n = min(n, max(1, int(n_files) // MIN_FILES_PER_WORKER))
    return max(1, n)


def _model_ref(model):
    """What a worker needs to load the same model: its name or file path, and
    for ONNX Runtime models the precision (``(ref, precision)``)."""
    ref = os.fspath(getattr(model, "source", None) or model.name)
    if getattr(model, "runtime", None) == "onnx":
        return (ref, getattr(model, "precision", None))
    return ref


def analyse_chunk(paths: Sequence[str], model_ref, sampling: str, descriptors: bool, threads: int | None,
                  quiet: bool = False):
    """Worker entry point: analyse ``paths`` with the model ``model_ref``.

    The model is loaded on the worker's first chunk and cached in the
    process (:func:`recommender.models.load_model`), so later chunks reuse it.

    Returns a list of :class:`TrackAnalysis` / :class:`AnalysisFailure`.
    """
    from .. import models

    kw = {}
    if isinstance(model_ref, tuple):
        model_ref, precision = model_ref
        kw = {"runtime": "onnx", "precision": precision}
    with models.quiet_startup(quiet):  # as quiet as the parent (the CLI)
        m = models.load_model(model_ref, threads=threads, **kw)
    return list(analyze_files(paths, model=m, sampling=sampling, descriptors=descriptors, decode_threads=1))


def _quiet() -> bool:
    from .. import models

    return models.quiet_startup_active()


def _chunks(paths, n):
    return [list(paths[i : i + n]) for i in range(0, len(paths), n)]


def analyse_parallel(
    paths: Sequence[str],
    *,
    model,
    sampling=None,
    jobs: int | str = JOBS_AUTO,
    descriptors: bool = False,
    client=None,
) -> Iterator[TrackAnalysis | AnalysisFailure]:
    """Analyse ``paths`` in this process, in worker processes, or on a Dask cluster.

    Parameters
    ----------
    paths : sequence of path-like or Segment
    model : TagModel
        The loaded model (workers load the same one by name or path).
    sampling : Sampling, int, str or None
    jobs : "auto" or int >= 1
        Processes, as decided by :func:`resolve_jobs` (an int is an upper
        bound; ``1`` or a single process analyses in this process).
    descriptors : bool
    client : dask.distributed.Client or str, optional
        A Dask client or scheduler address: ``jobs`` is then ignored.

    Yields
    ------
    TrackAnalysis or AnalysisFailure
        In completion order.

    Raises
    ------
    ParameterError
        Bad ``jobs``.
    """
    sampling = Sampling.parse(sampling)
    paths = list(paths)
    if client is not None:
        yield from _dask(_chunks(paths, CHUNK_FILES), _model_ref(model), sampling.name, descriptors, client)
        return
    n = resolve_jobs(jobs, len(paths))
    if jobs != n and jobs != JOBS_AUTO:
        logger.info("jobs=%s: using %d process%s for %d files on %d CPUs (see resolve_jobs)", jobs, n,
                    "" if n == 1 else "es", len(paths), cpu_count())
    yield from analyse_processes(paths, model=model, sampling=sampling, jobs=n, descriptors=descriptors)


def analyse_processes(paths, *, model, sampling, jobs: int, descriptors: bool = False):
    """Analyse ``paths`` in exactly ``jobs`` processes (1: this one), without
    :func:`resolve_jobs`' limits (benchmarks; use :func:`analyse_parallel`)."""
    sampling = Sampling.parse(sampling)
    paths = list(paths)
    if jobs == 1:
        yield from analyze_files(paths, model=model, sampling=sampling, descriptors=descriptors)
        return
    ref = _model_ref(model)
    from joblib import Parallel, delayed

    # Threads per worker: the CPUs this process may use (affinity, not the
    # machine's core count) shared among the workers, so that jobs=2 on 2
    # allowed CPUs gives 1 thread each instead of oversubscribing.
    threads = max(1, cpu_count() // jobs)
    par = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
    chunks = _chunks(paths, CHUNK_FILES)
    for results in par(delayed(analyse_chunk)(c, ref, sampling.name, descriptors, threads, _quiet()) for c in chunks):
        yield from results


def _dask(chunks, ref, sampling_name, descriptors, client):
    from dask.distributed import Client, as_completed

    own = False
    if isinstance(client, str):
        client = Client(client)
        own = True
    try:
        futures = [
            client.submit(analyse_chunk, c, ref, sampling_name, descriptors, 1, _quiet(), pure=False) for c in chunks
        ]
        for fut in as_completed(futures):
            yield from fut.result()
            fut.release()
    finally:
        if own:
            client.close()
