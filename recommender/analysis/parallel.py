"""Spreading analysis over processes (joblib) or a Dask cluster.

Every worker loads the model once (a per-process cache in
:func:`recommender.models.load_model`) and analyses small chunks of files, so
results stream back to the parent, which writes them into the catalog as they
arrive.  Only file paths and plain results (NumPy arrays, strings) cross
process boundaries; nothing read from disk is unpickled.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

from .._utils import cpu_count
from .pipeline import AnalysisFailure, Sampling, TrackAnalysis, analyze_files

logger = logging.getLogger(__name__)

__all__ = ["analyse_parallel", "analyse_chunk"]

#: Files per task sent to a worker: small enough for results to stream back
#: and for work to balance, large enough to keep CNN batches full.
CHUNK_FILES = 8


def _model_ref(model) -> str:
    """What a worker needs to load the same model: its name or file path."""
    return os.fspath(getattr(model, "source", None) or model.name)


def analyse_chunk(paths: Sequence[str], model_ref: str, sampling: str, descriptors: bool, threads: int | None,
                  quiet: bool = False):
    """Worker entry point: analyse ``paths`` with the model ``model_ref``.

    Returns a list of :class:`TrackAnalysis` / :class:`AnalysisFailure`.
    """
    from .. import models

    with models.quiet_startup(quiet):  # as quiet as the parent (the CLI)
        m = models.load_model(model_ref, threads=threads)
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
    jobs: int = 1,
    descriptors: bool = False,
    client=None,
) -> Iterator[TrackAnalysis | AnalysisFailure]:
    """Analyse ``paths`` in this process (``jobs=1``), in ``jobs`` worker
    processes, or on a Dask cluster (``client``: a ``dask.distributed.Client``
    or a scheduler address).  Yields results in completion order."""
    sampling = Sampling.parse(sampling)
    paths = list(paths)
    if client is None and jobs == 1:
        yield from analyze_files(paths, model=model, sampling=sampling, descriptors=descriptors)
        return
    ref = _model_ref(model)
    chunks = _chunks(paths, CHUNK_FILES)
    if client is not None:
        yield from _dask(chunks, ref, sampling.name, descriptors, client)
        return
    from joblib import Parallel, delayed

    # TensorFlow threads per worker: the CPUs this process may use (affinity,
    # not the machine's core count) shared among the workers, so that jobs=2
    # on 2 allowed CPUs gives 1 thread each instead of oversubscribing.
    threads = max(1, cpu_count() // jobs)
    par = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
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
