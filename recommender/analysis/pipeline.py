"""File → per-track analysis: patches, CNN outputs, pooled vectors.

The three layers of the design (after openl3):

* array level: :func:`analyze_waveform` (a waveform already in memory);
* file level: :func:`analyze_file` and :func:`analyze_files` (a stream of
  results, batched across tracks, decoding overlapped with the CNN);
* the CLI and the :class:`~recommender.Recommender` facade load the model once
  and pass it down.

Which seconds of a track are analysed is a :class:`Sampling` policy
(:mod:`.sampling`); the results are :mod:`.results`; what a decode thread
computes from a file is :mod:`.blocks`; the threads and the CNN batches are
:mod:`._batcher`.

Memory is bounded: files are decoded by a few threads into blocks of at most
``block_patches`` patches that wait in a bounded queue, and the CNN consumes
them in fixed-size batches, so a 3-hour file never sits in memory whole.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

import numpy as np

from .._utils import check_choice, check_int
from ..errors import AudioError, ParameterError
from ..features import frontend as features
from ..io.cuesheet import Segment
from ._batcher import _END, _Batcher, _Decoder
from .blocks import item_key
from .results import AnalysisFailure, PipelineStats, TrackAnalysis, track_layer_summary
from .sampling import Sampling, patch_starts

__all__ = [
    "Sampling",
    "TrackAnalysis",
    "AnalysisFailure",
    "analyze_waveform",
    "analyze_file",
    "analyze_files",
    "patch_starts",
    "PipelineStats",
    "resolve_model",
]


def resolve_model(model):
    """The model to run: ``model`` itself if it is one, else :func:`recommender.models.load_model` of it.

    Parameters
    ----------
    model : TagModel, str, os.PathLike or None
        A loaded model; a model name or a path (loaded, cached per process);
        ``None`` for the default model.

    Raises
    ------
    ModelError
        The name or the file does not give a model.
    """
    from ..models import load_model

    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(model) if model is not None else load_model()
    return model


def analyze_waveform(y, *, sr=features.SR, model=None, sampling=None) -> TrackAnalysis:
    """Analyse a waveform in memory.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) or (n_samples, n_channels)
        Audio samples, floating point in [-1, 1].
    sr : int
        Sample rate of ``y``; resampled to 16 kHz if different.
    model : TagModel, str or None
        A loaded model, a model name/path, or ``None`` for the default.
    sampling : Sampling, int, str or None
        Which patches to analyse (default: the whole waveform).

    Returns
    -------
    TrackAnalysis

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(5 * 16000) / 16000
    >>> res = analyze_waveform(np.sin(2 * np.pi * 440 * t).astype(np.float32), sr=16000)
    >>> res.probs.shape, res.embedding.shape
    ((50,), (200,))
    """
    from ..descriptors.level import audio_flag
    from ..io import audio

    y = np.asarray(y)
    if y.ndim == 2:
        y = audio.to_mono(y)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"y.shape={y.shape}: expected a non-empty waveform (n_samples,) or (n_samples, n_channels)")
    y = np.asarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ParameterError("y contains NaN or infinite samples")
    if sr != features.SR:
        y = audio.resample(y, sr_orig=sr, sr_target=features.SR)
    sampling = Sampling.parse(sampling)
    m = resolve_model(model)
    starts = patch_starts(len(y), sampling)
    if starts is None:
        S = features.logmel(y)
        padded = len(S) < features.PATCH_FRAMES
        P = features.patches(S)
        starts_s = np.arange(len(P)) * features.PATCH_SECONDS
    else:
        half = features.N_FFT // 2
        ypad = np.pad(y, (half, features.PATCH_WINDOW_SAMPLES), mode="reflect")
        P = np.stack([features.window_logmel(ypad[s : s + features.PATCH_WINDOW_SAMPLES]) for s in starts])
        starts_s = starts / features.SR
        padded = False
    with_pool = bool(getattr(m, "has_pool", False))
    out = m.predict_patches(P, with_pool=True) if with_pool else m.predict_patches(P)
    res = TrackAnalysis(
        path=None,
        duration_s=len(y) / features.SR,
        starts_s=np.asarray(starts_s, dtype=np.float64),
        patch_probs=out[0],
        patch_embeddings=out[1],
        sampling=sampling.to_json(),
        padded=padded,
        layer_summary=track_layer_summary([out[2]], out[1]) if with_pool else None,
        audio_flag=audio_flag(y, features.SR),
    )
    finish = getattr(m, "finish", None)  # a track-level head: its classes from the whole track
    return finish(res) if finish is not None else res


def analyze_file(path, *, model=None, sampling=None) -> TrackAnalysis:
    """Analyse one audio file (see :func:`analyze_files`).

    Raises
    ------
    AudioError
        The file cannot be decoded; the message names the file and the reason.
    """
    for res in analyze_files([path], model=model, sampling=sampling, on_error="raise"):
        return res
    raise AudioError(path, "no result")  # pragma: no cover


def analyze_files(
    paths: Iterable,
    *,
    model=None,
    sampling=None,
    batch_size: int | None = None,
    block_patches: int = 64,
    decode_threads: int = 2,
    on_error: str = "yield",
    descriptors: bool = False,
    stats: PipelineStats | None = None,
) -> Iterator[TrackAnalysis | AnalysisFailure]:
    """Analyse many files, batching CNN calls across tracks.

    Decoding and the log-mel front end run in ``decode_threads`` threads
    (libsndfile, soxr and NumPy's FFT release the GIL) while the CNN runs in
    the calling thread on fixed-size batches of patches from several tracks.  At most a few decoded
    blocks wait in a bounded queue, so memory does not grow with the number
    or the length of the files.

    Parameters
    ----------
    paths : iterable of path-like or Segment
        Files; a :class:`~recommender.io.cuesheet.Segment` (a cue track) is
        analysed as a track of its own: only its seconds are decoded, the
        patches are sampled inside it, its result's ``path`` is
        ``Segment.key``, its ``duration_s`` the segment's and ``starts_s``
        count from the segment's start.
    model : TagModel, str or None
    sampling : Sampling, int, str or None
        Default: whole tracks.
    batch_size : int or None
        Patches per CNN call (default: the model's preferred batch size).
    block_patches : int
        Patches per decoded block; bounds memory per file in flight.
    decode_threads : int
        Threads decoding files (each works on one file at a time).  The
        results do not depend on it.
    on_error : {'yield', 'raise'}
        ``'yield'`` yields an :class:`AnalysisFailure` for a bad file and goes on;
        ``'raise'`` raises its :class:`~recommender.errors.AudioError`.
    descriptors : bool
        Also compute MIR descriptors (see :mod:`recommender.descriptors`).
    stats : PipelineStats, optional
        Filled with where the time went (CNN busy, starved, blocked decoders).

    Yields
    ------
    TrackAnalysis or AnalysisFailure
        In completion order (not necessarily input order); each carries its path.
    """
    check_choice("on_error", on_error, ("yield", "raise"))
    decode_threads = check_int("decode_threads", decode_threads, min=1)
    block_patches = check_int("block_patches", block_patches, min=1)
    sampling = Sampling.parse(sampling)
    m = resolve_model(model)
    bs = int(batch_size or getattr(m, "batch_size", 32))
    st = stats if stats is not None else PipelineStats()
    t_start = time.perf_counter()

    paths = [p if isinstance(p, Segment) else os.fspath(p) for p in paths]
    keys = [item_key(p) for p in paths]
    decoder = _Decoder(paths, sampling=sampling, block_patches=block_patches, first_block=bs,
                       descriptors=descriptors, decode_threads=decode_threads)
    batcher = _Batcher(m, batch_size=bs, sampling=sampling, stats=st)
    blas = _single_threaded_blas()
    decoder.start()
    ended = 0
    try:
        while ended < decoder.n_threads:
            kind, fi, payload = decoder.get(st)
            if kind is _END:
                ended += 1
                if ended == decoder.n_threads:
                    batcher.run(force=True)
            elif kind == "start":
                batcher.start(fi, keys[fi], payload)
            elif kind == "block":
                if not batcher.add(fi, *payload):
                    continue
            elif kind == "end":
                batcher.end(fi, *payload)
                if decoder.idle():
                    # nothing decoded is waiting (the CNN would idle): do not
                    # hold this track back for a full batch
                    batcher.run(force=True)
            elif kind == "error":
                batcher.fail(fi)
                if on_error == "raise":
                    raise payload
                yield AnalysisFailure(keys[fi], payload.reason if hasattr(payload, "reason") else str(payload), payload)
            yield from batcher.finished()
        batcher.run(force=True)
        yield from batcher.finished()
    finally:
        st.producer_blocked_s += decoder.stop()
        st.wall_s += time.perf_counter() - t_start
        if blas is not None:
            blas.restore_original_limits()


def _single_threaded_blas():
    """Limit BLAS to one thread while the decoding threads run (restored after).

    The log-mel products are small; OpenBLAS would still wake its worker
    threads, which spin and take the cores from the CNN (measured on 40
    dev-set tracks: 149 ms CPU per track for decoding and log-mel with
    OpenBLAS' default threads, 80 ms with one, the same wall time).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return None
    return threadpool_limits(limits=1, user_api="blas")
