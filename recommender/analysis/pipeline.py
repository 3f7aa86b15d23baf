"""File → per-track analysis: patches, CNN outputs, pooled vectors.

The three layers of the design (after openl3):

* array level: :func:`analyze_waveform` (a waveform already in memory);
* file level: :func:`analyze_file` and :func:`analyze_files` (a stream of
  results, batched across tracks, decoding overlapped with the CNN);
* the CLI and the :class:`~recommender.Recommender` facade load the model once
  and pass it down.

Which seconds of a track are analysed is a :class:`Sampling` policy:
``Sampling.full()`` analyses every non-overlapping 3-s patch (as musicnn
does); ``Sampling.spread(n)`` analyses at most ``n`` patches spread evenly over
the whole track, decoding only those windows.  The policy and the patch start
times are recorded with each result so an index knows what it holds.

Memory is bounded: files are decoded by a few threads into blocks of at most
``block_patches`` patches that wait in a bounded queue, and the CNN consumes
them in fixed-size batches, so a 3-hour file never sits in memory whole.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..features import frontend as features
from ..errors import AudioError, ParameterError, RecommenderError

logger = logging.getLogger(__name__)

__all__ = [
    "Sampling",
    "TrackAnalysis",
    "AnalysisFailure",
    "analyze_waveform",
    "analyze_file",
    "analyze_files",
    "patch_starts",
    "PipelineStats",
]


# --------------------------------------------------------------------------
# Sampling policy
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Sampling:
    """Which 3-s patches of a track are analysed.

    Parameters
    ----------
    max_patches : int or None
        ``None`` analyses the whole track (every non-overlapping patch).
        An integer ``n`` analyses at most ``n`` patches, spread evenly over the
        track (each window centred in one of ``n`` equal parts of the track),
        so intros and fades do not dominate; a track with at most ``n``
        patches is analysed whole.
    """

    max_patches: int | None = None

    def __post_init__(self):
        if self.max_patches is not None and (
            not isinstance(self.max_patches, (int, np.integer)) or self.max_patches < 1
        ):
            raise ParameterError(
                f"max_patches={self.max_patches!r}: must be a positive integer or None (full track)"
            )

    @classmethod
    def full(cls) -> "Sampling":
        return cls(None)

    @classmethod
    def spread(cls, n: int) -> "Sampling":
        return cls(int(n))

    @classmethod
    def parse(cls, value) -> "Sampling":
        """Accept a :class:`Sampling`, ``None``/``'full'``, an int, or ``'spread:N'``."""
        if isinstance(value, Sampling):
            return value
        if value is None or value == "full":
            return cls.full()
        if isinstance(value, (int, np.integer)):
            return cls.spread(int(value))
        if isinstance(value, str) and value.startswith("spread:"):
            try:
                return cls.spread(int(value.split(":", 1)[1]))
            except ValueError:
                pass
        raise ParameterError(f"sampling={value!r}: expected 'full', a positive int, or 'spread:N'")

    @property
    def name(self) -> str:
        return "full" if self.max_patches is None else f"spread:{self.max_patches}"

    def to_json(self) -> dict:
        return {"policy": "full" if self.max_patches is None else "spread", "max_patches": self.max_patches}


def _n_full_patches(n_samples: int) -> int:
    """Patches musicnn would cut from ``n_samples`` samples (centred frames)."""
    n_frames = 1 + n_samples // features.HOP_LENGTH
    return n_frames // features.PATCH_FRAMES


def patch_starts(n_samples: int, sampling: Sampling) -> np.ndarray | None:
    """Start samples (centre of the first frame) of the patches to analyse.

    Returns ``None`` when the whole track is analysed in order (full policy,
    or a track with no more patches than the policy allows).
    """
    m = _n_full_patches(n_samples)
    k = sampling.max_patches
    if k is None or m <= k:
        return None
    # Window i is centred in part i of k equal parts of the track.
    span = n_samples - features.PATCH_HOP_SAMPLES
    centres = (np.arange(k) + 0.5) / k
    return np.round(centres * span).astype(np.int64)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------
@dataclasses.dataclass
class TrackAnalysis:
    """What the analysis of one track yields.

    Attributes
    ----------
    path : str or None
    duration_s : float
        Duration of the whole track (not only of the analysed patches).
    starts_s : np.ndarray, shape (n_patches,)
        Start time of each analysed patch.
    patch_probs : np.ndarray, shape (n_patches, n_tags)
    patch_embeddings : np.ndarray, shape (n_patches, embedding_dim)
    sampling : dict
        The policy that chose the patches (see :class:`Sampling`).
    padded : bool
        True when the clip was shorter than one patch and was repeat-padded.
    layer_summary : np.ndarray or None
        :func:`recommender.representations.layer_summary` of the patches:
        mean and standard deviation over patches of musicnn's ``pool`` and
        ``penultimate`` layers (3412 values), what the ``'similarity'`` space
        is built from; ``None`` for a model without a ``pool`` layer.
    """

    path: str | None
    duration_s: float
    starts_s: np.ndarray
    patch_probs: np.ndarray
    patch_embeddings: np.ndarray
    sampling: dict
    padded: bool = False
    descriptors: dict | None = None
    layer_summary: np.ndarray | None = None

    @property
    def n_patches(self) -> int:
        return int(len(self.starts_s))

    @property
    def probs(self) -> np.ndarray:
        """Track-level tag probabilities: mean over patches, shape ``(n_tags,)``."""
        return self.patch_probs.mean(axis=0).astype(np.float32)

    @property
    def embedding(self) -> np.ndarray:
        """Track embedding: mean of the penultimate layer over patches, ``(embedding_dim,)``."""
        return self.patch_embeddings.mean(axis=0).astype(np.float32)

    def sampling_json(self) -> str:
        return json.dumps({**self.sampling, "starts_s": [round(float(s), 3) for s in self.starts_s]})


@dataclasses.dataclass
class AnalysisFailure:
    """A file that could not be analysed, with the reason."""

    path: str
    reason: str
    error: BaseException | None = None


# --------------------------------------------------------------------------
# Patch producers
# --------------------------------------------------------------------------
def _reflect_head(y: np.ndarray, pad: int) -> np.ndarray:
    if len(y) > pad:
        return y[1 : pad + 1][::-1]
    return np.zeros(pad, dtype=np.float32)


def _waveform_blocks(y: np.ndarray, block_patches: int) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """Patches of a whole waveform in memory, in blocks."""
    S = features.logmel(y)
    padded = len(S) < features.PATCH_FRAMES
    P = features.patches(S)
    starts = np.arange(len(P)) * features.PATCH_SECONDS
    for i in range(0, len(P), block_patches):
        yield starts[i : i + block_patches], P[i : i + block_patches], padded


def _stream_blocks(
    chunks: Iterable[np.ndarray], block_patches: int, first_block: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """Full-track patches from a stream of 16 kHz blocks, frames identical to
    :func:`features.logmel` on the concatenated signal.

    Keeps at most one block plus one patch window of samples in memory.  The
    first block has at most ``first_block`` patches (so the CNN can start
    early), the others ``block_patches``.
    """
    limit = min(first_block or block_patches, block_patches)
    half = features.N_FFT // 2
    W = features.PATCH_WINDOW_SAMPLES
    H = features.PATCH_HOP_SAMPLES
    buf = np.zeros(0, dtype=np.float32)  # samples in padded coordinates, from buf_start
    buf_start = 0  # padded-coordinate index of buf[0]
    next_patch = 0
    started = False
    total = 0
    out_starts: list[float] = []
    out_P: list[np.ndarray] = []
    head = np.zeros(0, dtype=np.float32)

    def flush():
        nonlocal out_starts, out_P, limit
        if out_P:
            yield np.asarray(out_starts), np.stack(out_P), False
            out_starts, out_P = [], []
            limit = block_patches

    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float32)
        if len(chunk) == 0:
            continue
        total += len(chunk)
        if not started:
            head = np.concatenate([head, chunk])
            if len(head) <= half:
                continue  # need > half samples to reflect-pad like librosa
            buf = np.concatenate([_reflect_head(head, half), head])
            started = True
        else:
            buf = np.concatenate([buf, chunk])
        while buf_start + len(buf) >= next_patch * H + W:
            off = next_patch * H - buf_start
            out_starts.append(next_patch * features.PATCH_SECONDS)
            out_P.append(features.window_logmel(buf[off : off + W]))
            next_patch += 1
            if len(out_P) >= limit:
                yield from flush()
        # drop samples no later patch needs
        keep_from = next_patch * H - buf_start
        if keep_from > 0:
            buf = buf[keep_from:]
            buf_start += keep_from
    if not started:
        # whole signal shorter than the reflect pad: compute directly
        if total == 0:
            return
        yield from _waveform_blocks(head, block_patches)
        return
    m = _n_full_patches(total)
    if next_patch < m:
        # last patch(es) need the end reflect padding
        tail = buf[-(half + 1) : -1][::-1] if len(buf) > half else np.zeros(half, np.float32)
        buf = np.concatenate([buf, tail])
        while next_patch < m:
            off = next_patch * H - buf_start
            out_starts.append(next_patch * features.PATCH_SECONDS)
            out_P.append(features.window_logmel(buf[off : off + W]))
            next_patch += 1
    if m == 0:
        # shorter than one patch: repeat-pad the whole (short) spectrogram
        y = buf[half:]
        yield from _waveform_blocks(y[:total], block_patches)
        return
    yield from flush()


def _file_blocks(path: str, sampling: Sampling, block_patches: int, info, first_block: int | None = None):
    """Yield ``(starts_s, patches, padded)`` blocks for one file."""
    from ..io import audio

    n_samples = int(round(info.duration_s * features.SR))
    starts = patch_starts(n_samples, sampling)
    if starts is None:
        # 15-s decode blocks: 5 patches each, a small fraction of the queue's memory
        yield from _stream_blocks(audio.stream(path, sr=features.SR, block_s=15.0), block_patches, first_block)
        return
    half = features.N_FFT // 2
    win_starts_s = (starts - half) / features.SR
    for i in range(0, len(starts), block_patches):
        W = audio.load_windows(
            path, win_starts_s[i : i + block_patches], features.PATCH_WINDOW_SAMPLES, sr=features.SR
        )
        P = np.stack([features.window_logmel(w) for w in W])
        yield starts[i : i + block_patches] / features.SR, P, False


# --------------------------------------------------------------------------
# Running the model
# --------------------------------------------------------------------------
def _resolve_model(model):
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
    m = _resolve_model(model)
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
    return TrackAnalysis(
        path=None,
        duration_s=len(y) / features.SR,
        starts_s=np.asarray(starts_s, dtype=np.float64),
        patch_probs=out[0],
        patch_embeddings=out[1],
        sampling=sampling.to_json(),
        padded=padded,
        layer_summary=_layer_summary([out[2]], out[1]) if with_pool else None,
    )


def _layer_summary(pools, embeddings) -> np.ndarray:
    from ..features.pooling import layer_summary

    return layer_summary(np.concatenate(pools), embeddings).astype(np.float32)


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


class _Accumulator:
    __slots__ = ("path", "info", "starts", "probs", "embs", "pools", "padded", "done_blocks", "total_blocks",
                 "descriptors")

    def __init__(self, path, info):
        self.path = path
        self.info = info
        self.starts, self.probs, self.embs, self.pools = [], [], [], []
        self.padded = False
        self.done_blocks = 0
        self.total_blocks = None
        self.descriptors = None


_END = object()


@dataclasses.dataclass
class PipelineStats:
    """Where the time of one :func:`analyze_files` run went (pass one in to fill it).

    Attributes
    ----------
    files, failed : int
        Tracks analysed / failed.
    patches : int
        Patches that went through the CNN.
    padded_patches : int
        Zero patches added to round a final partial batch up to a compiled shape.
    cnn_calls : int
        Calls of ``predict_patches``.
    cnn_s : float
        Wall-clock seconds inside the CNN.
    starved_s : float
        Seconds the CNN thread waited on an empty queue (decoding too slow).
    starved : int
        Times the CNN found the queue empty.
    producer_blocked_s : float
        Seconds decode threads waited on a full queue (the CNN too slow),
        summed over threads.
    wall_s : float
        Wall-clock seconds of the whole run.
    """

    files: int = 0
    failed: int = 0
    patches: int = 0
    padded_patches: int = 0
    cnn_calls: int = 0
    cnn_s: float = 0.0
    starved_s: float = 0.0
    starved: int = 0
    producer_blocked_s: float = 0.0
    wall_s: float = 0.0

    @property
    def cnn_busy(self) -> float:
        """Fraction of the run the CNN was computing."""
        return self.cnn_s / self.wall_s if self.wall_s > 0 else 0.0

    def __str__(self):
        return (f"{self.files} files, {self.patches} patches (+{self.padded_patches} padding) in "
                f"{self.cnn_calls} CNN calls; CNN busy {100 * self.cnn_busy:.0f}% of {self.wall_s:.1f} s, "
                f"starved {self.starved_s:.2f} s ({self.starved}x), decoders blocked {self.producer_blocked_s:.1f} s")


def _padding(n: int, bs: int) -> int:
    """Zero patches ``predict_patches`` adds to ``n`` patches in batches of ``bs``."""
    r = n % bs
    return 0 if r == 0 else min(bs, 1 << (r - 1).bit_length()) - r


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
    paths : iterable of path-like
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
    from ..io import audio

    if on_error not in ("yield", "raise"):
        raise ParameterError(f"on_error={on_error!r}: must be 'yield' or 'raise'")
    if isinstance(decode_threads, bool) or not isinstance(decode_threads, (int, np.integer)) or decode_threads < 1:
        raise ParameterError(f"decode_threads={decode_threads!r}: must be an integer >= 1")
    if isinstance(block_patches, bool) or not isinstance(block_patches, (int, np.integer)) or block_patches < 1:
        raise ParameterError(f"block_patches={block_patches!r}: must be an integer >= 1")
    sampling = Sampling.parse(sampling)
    m = _resolve_model(model)
    bs = int(batch_size or getattr(m, "batch_size", 32))
    with_pool = bool(getattr(m, "has_pool", False))
    st = stats if stats is not None else PipelineStats()
    t_start = time.perf_counter()

    path_q: queue.Queue = queue.Queue()
    paths = [os.fspath(p) for p in paths]
    for i, p in enumerate(paths):
        path_q.put((i, p))
    # Bounded: at most this many decoded blocks wait for the CNN.
    block_q: queue.Queue = queue.Queue(maxsize=max(4, 2 * decode_threads))
    stop = threading.Event()
    blocked = [0.0] * decode_threads

    def producer(k):
        started_any = False

        def put(item):
            try:
                block_q.put_nowait(item)
            except queue.Full:
                t0 = time.perf_counter()
                block_q.put(item)
                blocked[k] += time.perf_counter() - t0

        while not stop.is_set():
            try:
                i, p = path_q.get_nowait()
            except queue.Empty:
                break
            try:
                info = audio.info(p)
                if info.duration_s <= 0:
                    raise AudioError(p, "contains no audio samples")
                put(("start", i, info))
                n = 0
                # the first file's first block is one batch: the CNN starts early
                first = bs if not started_any else None
                started_any = True
                # the descriptor excerpts lie inside the CNN's windows: decoded once
                with audio.reuse_decoded():
                    for starts_s, P, padded in _file_blocks(p, sampling, block_patches, info, first):
                        if stop.is_set():
                            return
                        put(("block", i, (starts_s, P, padded)))
                        n += 1
                    if n == 0:
                        raise AudioError(p, "contains no audio samples")
                    # descriptors after the patches are queued: the CNN has work meanwhile
                    desc = _descriptors_for(p, info, sampling) if descriptors else None
                put(("end", i, (n, desc)))
            except RecommenderError as e:
                put(("error", i, e))
            except MemoryError as e:
                put(("error", i, AudioError(p, f"out of memory while decoding ({e})")))
            except Exception as e:  # an unexpected decoder failure must not kill the run
                logger.debug("unexpected error analysing %s", p, exc_info=True)
                put(("error", i, AudioError(p, f"{type(e).__name__}: {e}")))
        put((_END, None, None))

    n_threads = max(1, min(decode_threads, len(paths)))
    threads = [threading.Thread(target=producer, args=(k,), daemon=True, name=f"decode-{k}")
               for k in range(n_threads)]
    blas = _single_threaded_blas()
    for t in threads:
        t.start()

    acc: dict[int, _Accumulator] = {}
    pend_P: list[np.ndarray] = []  # decoded blocks (or their unprocessed tails) waiting for the CNN
    pend_owner: list[list[int]] = []  # [file index, patches] per pending block
    pend_n = 0
    failed: set[int] = set()

    def run_batch(force=False):
        """Run the CNN on every full batch pending (and the partial rest if ``force``)."""
        nonlocal pend_P, pend_n
        take = pend_n if force else pend_n - pend_n % bs
        if take <= 0:
            return
        P = np.concatenate(pend_P) if len(pend_P) > 1 else pend_P[0]
        t0 = time.perf_counter()
        out = (m.predict_patches(P[:take], batch_size=bs, with_pool=True) if with_pool
               else m.predict_patches(P[:take], batch_size=bs))
        probs, embs = out[0], out[1]
        st.cnn_s += time.perf_counter() - t0
        st.cnn_calls += -(-take // bs)
        st.patches += take
        st.padded_patches += _padding(take, bs)
        rest = P[take:]
        pend_P = [rest] if len(rest) else []
        pend_n = len(rest)
        # route outputs back to their tracks, in order
        pos = 0
        while pos < take:
            owner = pend_owner[0]
            fi, n = owner
            used = min(n, take - pos)
            a = acc.get(fi)
            if a is not None and fi not in failed:
                a.probs.append(probs[pos : pos + used])
                a.embs.append(embs[pos : pos + used])
                if with_pool:
                    a.pools.append(out[2][pos : pos + used])
            pos += used
            if used == n:
                pend_owner.pop(0)
            else:
                owner[1] = n - used

    def finished(fi) -> TrackAnalysis | None:
        a = acc[fi]
        if a.total_blocks is None:
            return None
        if sum(len(x) for x in a.probs) < sum(len(x) for x in a.starts):
            return None
        del acc[fi]
        st.files += 1
        embs = np.concatenate(a.embs).astype(np.float32)
        return TrackAnalysis(
            path=a.path,
            duration_s=float(a.info.duration_s),
            starts_s=np.concatenate(a.starts).astype(np.float64),
            patch_probs=np.concatenate(a.probs).astype(np.float32),
            patch_embeddings=embs,
            sampling=sampling.to_json(),
            padded=a.padded,
            descriptors=a.descriptors,
            layer_summary=_layer_summary(a.pools, embs) if with_pool else None,
        )

    def next_item():
        try:
            return block_q.get_nowait()
        except queue.Empty:
            pass
        t0 = time.perf_counter()
        item = block_q.get()
        st.starved_s += time.perf_counter() - t0
        st.starved += 1
        return item

    ended = 0
    try:
        while ended < n_threads:
            kind, fi, payload = next_item()
            if kind is _END:
                ended += 1
                if ended == n_threads:
                    run_batch(force=True)
            elif kind == "start":
                acc[fi] = _Accumulator(paths[fi], payload)
            elif kind == "block":
                starts_s, P, padded = payload
                a = acc.get(fi)
                if a is None:  # pragma: no cover - a block after its track failed
                    continue
                a.starts.append(np.asarray(starts_s))
                a.padded = a.padded or padded
                pend_P.append(P)
                pend_owner.append([fi, len(P)])
                pend_n += len(P)
                run_batch()
            elif kind == "end":
                a = acc[fi]
                a.total_blocks, a.descriptors = payload
                if block_q.empty():
                    # nothing decoded is waiting (the CNN would idle): do not
                    # hold this track back for a full batch
                    run_batch(force=True)
            elif kind == "error":
                failed.add(fi)
                acc.pop(fi, None)
                st.failed += 1
                if on_error == "raise":
                    raise payload
                yield AnalysisFailure(paths[fi], payload.reason if hasattr(payload, "reason") else str(payload), payload)
            for done_fi in [f for f in list(acc) if acc[f].total_blocks is not None]:
                res = finished(done_fi)
                if res is not None:
                    yield res
        run_batch(force=True)
        for done_fi in list(acc):
            res = finished(done_fi)
            if res is not None:
                yield res
    finally:
        stop.set()
        # unblock producers waiting on a full queue
        while any(t.is_alive() for t in threads):
            try:
                block_q.get(timeout=0.05)
            except queue.Empty:
                pass
        st.producer_blocked_s += sum(blocked)
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


def _descriptors_for(path, info, sampling=None) -> dict | None:
    """MIR descriptors of a file; ``None`` (logged) if they cannot be computed."""
    try:
        from ..descriptors import summary as _d
    except ImportError:  # pragma: no cover
        return None
    try:
        starts = _descriptor_starts(info, sampling) if sampling is not None else None
        if starts is not None:
            from ..descriptors.summary import INDEX_CLIP_S, INDEX_EXCERPTS

            return _d.describe_at(path, starts, INDEX_CLIP_S / INDEX_EXCERPTS)
        return _d.describe_file(path, **_descriptor_clip(info))
    except RecommenderError as e:
        logger.warning("descriptors failed for %s: %s", path, e)
        return None


def _excerpt_windows(k: int, n: int) -> list[int]:
    """Which ``n`` of ``k`` evenly spread windows hold the descriptor excerpts.

    Spread like ``n`` equal parts of the track, placed symmetrically about
    its middle (for k=8, n=4: windows 1, 3, 4, 6, i.e. at about 19, 44, 56
    and 81 % of the track).

    >>> _excerpt_windows(8, 4), _excerpt_windows(4, 4), _excerpt_windows(16, 4)
    ([1, 3, 4, 6], [0, 1, 2, 3], [2, 6, 9, 13])
    """
    if not 1 <= n <= k:
        raise ParameterError(f"cannot pick {n} of {k} windows")
    half = [int((i + 0.5) * k / n) for i in range(n // 2)]
    middle = [(k - 1) // 2] if n % 2 else []
    return half + middle + [k - 1 - j for j in reversed(half)]


def _descriptor_starts(info, sampling) -> list[float] | None:
    """Starts (s) of the descriptor excerpts when they can be cut from the CNN's
    windows (the middle of :data:`~recommender.descriptors.INDEX_EXCERPTS` of
    them), else ``None`` (whole-track analysis, short tracks, too few windows)."""
    from ..descriptors.summary import INDEX_CLIP_S, INDEX_EXCERPTS

    if not (np.isfinite(info.duration_s) and info.duration_s > INDEX_CLIP_S):
        return None
    starts = patch_starts(int(round(info.duration_s * features.SR)), sampling)
    if starts is None or len(starts) < INDEX_EXCERPTS:
        return None
    window_s = features.PATCH_WINDOW_SAMPLES / features.SR
    inset = (window_s - INDEX_CLIP_S / INDEX_EXCERPTS) / 2
    first_s = (starts - features.N_FFT // 2) / features.SR
    return [float(first_s[j]) + inset for j in _excerpt_windows(len(starts), INDEX_EXCERPTS)]


def _descriptor_clip(info) -> dict[str, Any]:
    # Indexing analyses INDEX_CLIP_S (10) seconds in INDEX_EXCERPTS (4)
    # excerpts spread over the track (issue #9), cut from the CNN's windows
    # when the track is sampled (_descriptor_starts), else at 1/8, 3/8, 5/8
    # and 7/8 of it.  Shorter tracks are analysed whole.
    from ..descriptors.summary import INDEX_CLIP_S, INDEX_EXCERPTS

    if np.isfinite(info.duration_s) and info.duration_s <= INDEX_CLIP_S:
        return {}
    return {"clip_s": INDEX_CLIP_S, "n_excerpts": INDEX_EXCERPTS}
