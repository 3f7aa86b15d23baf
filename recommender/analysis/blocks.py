"""What a decode thread computes from one file: its patches, in blocks of at
most ``block_patches`` (:func:`_file_blocks`: a stream for whole tracks, only
the chosen windows for sampled ones), and its MIR descriptors, whose excerpts
lie inside the CNN's windows when the track is sampled, so that they are
decoded once for both (:func:`_descriptors_for`).

Every block is ``(starts_s, patches, padded)``: the start time (s) of each
patch, shape ``(n,)``; the log-mel patches, shape ``(n, PATCH_FRAMES, N_MELS)``;
whether a clip shorter than one patch was repeat-padded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import AudioError, ParameterError, RecommenderError
from ..features import frontend as features
from ..io.cuesheet import Segment
from .sampling import Sampling, _n_full_patches, patch_starts

logger = logging.getLogger(__name__)


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


def item_key(item) -> str:
    """The path an analysis result carries: a file's path, or a :class:`Segment`'s catalog path."""
    return item.key if isinstance(item, Segment) else item


def segment_info(seg: Segment, info):
    """``info`` (an :class:`~recommender.io.audio.AudioInfo` of ``seg.source``) as the
    segment's: ``duration_s`` its length (cut at the end of the file).

    Raises
    ------
    AudioError
        The segment starts at or after the end of the file (naming the segment).
    """
    import dataclasses

    if seg.start_s >= info.duration_s:
        raise AudioError(seg.key, f"the cue track starts at {seg.start_s:.2f} s, at or after the end of "
                                  f"the file ({info.duration_s:.2f} s)")
    end = info.duration_s if seg.end_s is None else min(float(seg.end_s), info.duration_s)
    if seg.end_s is not None and seg.end_s > info.duration_s + 1.0:
        logger.warning("%s: the cue track ends at %.2f s, after the end of the file (%.2f s): cut there",
                       seg.key, seg.end_s, info.duration_s)
    return dataclasses.replace(info, duration_s=end - seg.start_s, n_frames=None)


def _segment_stream(path: str, start_s: float, duration_s: float, block_s: float = 30.0):
    """16-kHz blocks of ``duration_s`` seconds of ``path`` from ``start_s`` (bounded memory):
    consecutive :func:`~recommender.io.audio.load` spans, sample-exact."""
    from ..io import audio

    sr = features.SR
    lo, total, block = round(start_s * sr), round(duration_s * sr), round(block_s * sr)
    done = 0
    while done < total:
        n = min(block, total - done)
        y = audio.load(path, sr=sr, offset_s=(lo + done) / sr, duration_s=n / sr)
        if len(y) == 0:
            return
        yield y[:n]
        done += len(y)
        if len(y) < n:
            return


def _file_blocks(item, sampling: Sampling, block_patches: int, info, first_block: int | None = None):
    """Yield ``(starts_s, patches, padded)`` blocks for one file, or one :class:`Segment`
    of a file (``info`` then :func:`segment_info`'s; patch starts are from the segment's start)."""
    from ..io import audio

    seg = item if isinstance(item, Segment) else None
    path, offset_s = (seg.source, float(seg.start_s)) if seg is not None else (item, 0.0)
    n_samples = int(round(info.duration_s * features.SR))
    starts = patch_starts(n_samples, sampling)
    if starts is None:
        # 15-s decode blocks: 5 patches each, a small fraction of the queue's memory
        chunks = (audio.stream(path, sr=features.SR, block_s=15.0) if seg is None
                  else _segment_stream(path, offset_s, info.duration_s))
        yield from _stream_blocks(chunks, block_patches, first_block)
        return
    half = features.N_FFT // 2
    win_starts_s = (starts - half) / features.SR + offset_s
    for i in range(0, len(starts), block_patches):
        W = audio.load_windows(
            path, win_starts_s[i : i + block_patches], features.PATCH_WINDOW_SAMPLES, sr=features.SR
        )
        P = np.stack([features.window_logmel(w) for w in W])
        yield starts[i : i + block_patches] / features.SR, P, False


def _descriptors_for(item, info, sampling=None) -> dict | None:
    """MIR descriptors of a file or :class:`Segment`; ``None`` (logged) if they cannot be computed.

    A segment is described from excerpts inside it (those of the CNN's
    windows when sampled, else at 1/8, 3/8, 5/8 and 7/8 of it; a segment of
    at most :data:`~recommender.descriptors.INDEX_CLIP_S` seconds whole).
    """
    from .. import descriptors as _d

    seg = item if isinstance(item, Segment) else None
    try:
        starts = _descriptor_starts(info, sampling) if sampling is not None else None
        if seg is not None:
            length = _d.INDEX_CLIP_S / _d.INDEX_EXCERPTS
            if starts is None and info.duration_s <= _d.INDEX_CLIP_S:
                starts, length = [0.0], info.duration_s
            elif starts is None:
                n = _d.INDEX_EXCERPTS
                starts = [max(0.0, (i + 0.5) / n * info.duration_s - length / 2) for i in range(n)]
            d = _d.describe_at(seg.source, [float(seg.start_s) + s for s in starts], length)
            return {**d, "path": seg.key}
        if starts is not None:
            return _d.describe_at(item, starts, _d.INDEX_CLIP_S / _d.INDEX_EXCERPTS)
        return _d.describe_file(item, **_descriptor_clip(info))
    except RecommenderError as e:
        logger.warning("descriptors failed for %s: %s", item_key(item), e)
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
    from ..descriptors import INDEX_CLIP_S, INDEX_EXCERPTS

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
    from ..descriptors import INDEX_CLIP_S, INDEX_EXCERPTS

    if np.isfinite(info.duration_s) and info.duration_s <= INDEX_CLIP_S:
        return {}
    return {"clip_s": INDEX_CLIP_S, "n_excerpts": INDEX_EXCERPTS}
