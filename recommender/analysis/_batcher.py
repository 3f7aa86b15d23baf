"""The two halves of :func:`~recommender.analysis.analyze_files`.

* :class:`_Decoder` — the decode threads: each takes files from a shared
  list and puts, per file, ``("start", i, info)``, its ``("block", i,
  (starts_s, patches, padded))`` and ``("end", i, (n_blocks, descriptors))``
  (or ``("error", i, exc)``) on one bounded queue, then ``(_END, None, None)``
  when the list is empty.
* :class:`_Batcher` — the CNN side: pending patches from several tracks,
  which track each belongs to, running full batches and routing the outputs
  back, assembling finished tracks into :class:`TrackAnalysis`.

Memory is bounded by the queue (at most ``max(4, 2 * decode_threads)``
blocks of at most ``block_patches`` patches wait) plus at most one batch of
pending patches.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator

import numpy as np

from ..errors import AudioError, RecommenderError
from ..io.cuesheet import Segment
from . import blocks as _blocks  # read at call time: tests replace its _file_blocks
from .results import PipelineStats, TrackAnalysis, track_layer_summary
from .sampling import Sampling

logger = logging.getLogger(__name__)

#: The last item each decode thread puts on the queue.
_END = object()


class _Decoder:
    """Decode threads feeding one bounded queue of blocks.

    Parameters
    ----------
    paths : list of str or Segment
        Files (or parts of files: :class:`~recommender.io.cuesheet.Segment`), by
        index ``i`` (the ``i`` of every queued item).
    sampling : Sampling
    block_patches : int
        Patches per block (the memory bound per block).
    first_block : int
        Patches in the first block of each thread's first file, so the CNN
        can start early (one batch).
    descriptors : bool
        Also compute each file's MIR descriptors (after its blocks are queued).
    decode_threads : int
        Threads asked for; ``min(decode_threads, len(paths))`` run (at least one).
        The queue holds ``max(4, 2 * decode_threads)`` items.
    """

    def __init__(self, paths: list[str], *, sampling: Sampling, block_patches: int, first_block: int,
                 descriptors: bool, decode_threads: int):
        self.paths = paths
        self._sampling = sampling
        self._block_patches = block_patches
        self._first_block = first_block
        self._descriptors = descriptors
        self._todo: queue.Queue = queue.Queue()
        for i, p in enumerate(paths):
            self._todo.put((i, p))
        # Bounded: at most this many decoded blocks wait for the CNN.
        self.blocks: queue.Queue = queue.Queue(maxsize=max(4, 2 * decode_threads))
        self._stop = threading.Event()
        self._blocked = [0.0] * decode_threads  # seconds each thread waited on a full queue
        self._started = [False] * decode_threads  # each thread: has it queued a file's start yet?
        self.n_threads = max(1, min(decode_threads, len(paths)))
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True, name=f"decode-{k}")
                         for k in range(self.n_threads)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def get(self, stats: PipelineStats):
        """The next queued item; time spent waiting for one counts as the CNN starving."""
        try:
            return self.blocks.get_nowait()
        except queue.Empty:
            pass
        t0 = time.perf_counter()
        item = self.blocks.get()
        stats.starved_s += time.perf_counter() - t0
        stats.starved += 1
        return item

    def idle(self) -> bool:
        """Nothing decoded is waiting."""
        return self.blocks.empty()

    def stop(self) -> float:
        """Stop the threads (unblocking those waiting on a full queue); the
        seconds they spent blocked, summed."""
        self._stop.set()
        while any(t.is_alive() for t in self._threads):
            try:
                self.blocks.get(timeout=0.05)
            except queue.Empty:
                pass
        return sum(self._blocked)

    def _put(self, k: int, item) -> None:
        try:
            self.blocks.put_nowait(item)
        except queue.Full:
            t0 = time.perf_counter()
            self.blocks.put(item)
            self._blocked[k] += time.perf_counter() - t0

    def _run(self, k: int) -> None:
        while not self._stop.is_set():
            try:
                i, p = self._todo.get_nowait()
            except queue.Empty:
                break
            try:
                if not self._decode(k, i, p):
                    return
            except RecommenderError as e:
                self._put(k, ("error", i, e))
            except MemoryError as e:
                self._put(k, ("error", i, AudioError(_blocks.item_key(p), f"out of memory while decoding ({e})")))
            except Exception as e:  # an unexpected decoder failure must not kill the run
                logger.debug("unexpected error analysing %s", p, exc_info=True)
                detail = str(e).strip()
                reason = "could not be analysed (an unexpected decoder error" + (f": {detail})" if detail else ")")
                self._put(k, ("error", i, AudioError(_blocks.item_key(p), reason)))
        self._put(k, (_END, None, None))

    def _decode(self, k: int, i: int, p) -> bool:
        """Queue one file's (or :class:`~recommender.io.cuesheet.Segment`'s) start, blocks
        and end; ``False`` if told to stop meanwhile."""
        from ..io import audio

        seg = p if isinstance(p, Segment) else None
        info = audio.info(seg.source if seg is not None else p)
        if seg is not None:
            info = _blocks.segment_info(seg, info)
        if info.duration_s <= 0:
            raise AudioError(_blocks.item_key(p), "contains no audio samples")
        self._put(k, ("start", i, info))
        # the thread's first file's first block is one batch: the CNN starts early
        first = self._first_block if not self._started[k] else None
        self._started[k] = True
        n = 0
        # the descriptor excerpts lie inside the CNN's windows: decoded once
        with audio.reuse_decoded():
            for starts_s, P, padded in _blocks._file_blocks(p, self._sampling, self._block_patches, info, first):
                if self._stop.is_set():
                    return False
                self._put(k, ("block", i, (starts_s, P, padded)))
                n += 1
            if n == 0:
                raise AudioError(_blocks.item_key(p), "contains no audio samples")
            # descriptors after the patches are queued: the CNN has work meanwhile
            desc = _blocks._descriptors_for(p, info, self._sampling) if self._descriptors else None
        self._put(k, ("end", i, (n, desc)))
        return True


class _Accumulator:
    """One track's outputs so far."""

    __slots__ = ("path", "info", "starts", "probs", "embs", "pools", "padded", "done_blocks", "total_blocks",
                 "descriptors", "patch_level")

    def __init__(self, path, info):
        self.path = path
        self.info = info
        self.starts, self.probs, self.embs, self.pools = [], [], [], []
        self.padded = False
        self.done_blocks = 0
        self.total_blocks = None
        self.descriptors = None
        self.patch_level = -math.inf  # loudest log-mel value seen (silence check)


def _padding(n: int, bs: int) -> int:
    """Zero patches ``predict_patches`` adds to ``n`` patches in batches of ``bs``."""
    r = n % bs
    return 0 if r == 0 else min(bs, 1 << (r - 1).bit_length()) - r


class _Batcher:
    """Patches waiting for the CNN, whose they are, and the tracks being assembled.

    Blocks from several tracks are concatenated and run in batches of
    ``batch_size`` patches (:meth:`run`); the outputs go back to their tracks
    in order (:meth:`_route`); a track whose blocks are all in and all run is
    handed out by :meth:`finished`.

    Parameters
    ----------
    model : TagModel
    batch_size : int
        Patches per CNN call.
    sampling : Sampling
        Recorded in every result.
    stats : PipelineStats
        Filled with the CNN's calls, patches and time (``files``, ``failed`` too).
    """

    def __init__(self, model, *, batch_size: int, sampling: Sampling, stats: PipelineStats):
        self.model = model
        self.batch_size = batch_size
        self.with_pool = bool(getattr(model, "has_pool", False))
        self.sampling = sampling
        self.stats = stats
        self._tracks: dict[int, _Accumulator] = {}
        self._failed: set[int] = set()
        self._pending: list[np.ndarray] = []  # decoded blocks (or their unprocessed tails) waiting for the CNN
        self._owners: list[list[int]] = []  # [file index, patches] per pending block
        self._n_pending = 0

    # ------------------------------------------------------------ events
    def start(self, fi: int, path: str, info) -> None:
        self._tracks[fi] = _Accumulator(path, info)

    def add(self, fi: int, starts_s, P: np.ndarray, padded: bool) -> bool:
        """Queue a block of track ``fi`` and run the full batches; ``False`` if the track is gone."""
        a = self._tracks.get(fi)
        if a is None:  # pragma: no cover - a block after its track failed
            return False
        a.starts.append(np.asarray(starts_s))
        a.padded = a.padded or padded
        if len(P):
            a.patch_level = max(a.patch_level, float(P.max()))
        self._pending.append(P)
        self._owners.append([fi, len(P)])
        self._n_pending += len(P)
        self.run()
        return True

    def end(self, fi: int, n_blocks: int, descriptors: dict | None) -> None:
        a = self._tracks[fi]
        a.total_blocks, a.descriptors = n_blocks, descriptors

    def fail(self, fi: int) -> None:
        self._failed.add(fi)
        self._tracks.pop(fi, None)
        self.stats.failed += 1

    # ------------------------------------------------------------ the CNN
    def run(self, force: bool = False) -> None:
        """Run the CNN on every full batch pending (and the partial rest if ``force``)."""
        bs, st = self.batch_size, self.stats
        take = self._n_pending if force else self._n_pending - self._n_pending % bs
        if take <= 0:
            return
        P = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        t0 = time.perf_counter()
        out = (self.model.predict_patches(P[:take], batch_size=bs, with_pool=True) if self.with_pool
               else self.model.predict_patches(P[:take], batch_size=bs))
        st.cnn_s += time.perf_counter() - t0
        st.cnn_calls += -(-take // bs)
        st.patches += take
        st.padded_patches += _padding(take, bs)
        rest = P[take:]
        self._pending = [rest] if len(rest) else []
        self._n_pending = len(rest)
        self._route(out, take)

    def _route(self, out, take: int) -> None:
        """Hand the first ``take`` outputs back to their tracks, in order."""
        probs, embs = out[0], out[1]
        pos = 0
        while pos < take:
            owner = self._owners[0]
            fi, n = owner
            used = min(n, take - pos)
            a = self._tracks.get(fi)
            if a is not None and fi not in self._failed:
                a.probs.append(probs[pos : pos + used])
                a.embs.append(embs[pos : pos + used])
                if self.with_pool:
                    a.pools.append(out[2][pos : pos + used])
            pos += used
            if used == n:
                self._owners.pop(0)
            else:
                owner[1] = n - used

    # ------------------------------------------------------------ results
    def finished(self) -> Iterator[TrackAnalysis]:
        """The tracks that are complete (end announced, every patch through the CNN), in arrival order."""
        for fi in [f for f in list(self._tracks) if self._tracks[f].total_blocks is not None]:
            res = self._finish(fi)
            if res is not None:
                yield res

    def _finish(self, fi: int) -> TrackAnalysis | None:
        a = self._tracks[fi]
        if a.total_blocks is None:
            return None
        if sum(len(x) for x in a.probs) < sum(len(x) for x in a.starts):
            return None
        del self._tracks[fi]
        self.stats.files += 1
        embs = np.concatenate(a.embs).astype(np.float32)
        res = TrackAnalysis(
            path=a.path,
            duration_s=float(a.info.duration_s),
            starts_s=np.concatenate(a.starts).astype(np.float64),
            patch_probs=np.concatenate(a.probs).astype(np.float32),
            patch_embeddings=embs,
            sampling=self.sampling.to_json(),
            padded=a.padded,
            descriptors=a.descriptors,
            layer_summary=track_layer_summary(a.pools, embs) if self.with_pool else None,
            patch_level=a.patch_level,
        )
        finish = getattr(self.model, "finish", None)  # a track-level head: its classes from the whole track
        return finish(res) if finish is not None else res
