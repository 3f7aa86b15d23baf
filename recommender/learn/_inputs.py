"""Training inputs: the table of tracks, reading many files in threads, log-mel
segments for the Keras modes and descriptor clips for the ``classical`` mode.

Package-internal (used by :mod:`.classifier` and :mod:`.evaluate`).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import AudioError, ParameterError, RecommenderError
from ..features import frontend as features

__all__ = ["CLASSICAL_CLIP_S", "as_frame", "descriptor_clips", "descriptor_names", "embedding_table", "fixed_patches",
           "map_paths", "stack_rows", "track_segments"]

logger = logging.getLogger(__name__)

#: Seconds per clip of the classical mode's descriptors.
CLASSICAL_CLIP_S = 10.0
_EXCLUDED_DESCRIPTORS = {"duration_s", "key", "mode"}
_SEG_FRAMES = 2 * features.PATCH_FRAMES  # log-mel kept per sampled position: room for random crops


def as_frame(X, y=None):
    """(paths, labels or None, the DataFrame) from a DataFrame or a list of paths."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        if "path" not in X:
            raise ParameterError("X: a DataFrame needs a 'path' column")
        df = X.copy()
        if y is not None:
            df["label"] = [str(v) for v in y]
    else:
        if isinstance(X, (str, os.PathLike)):
            X = [X]
        paths = [os.fspath(p) for p in X]
        df = pd.DataFrame({"path": paths})
        if y is not None:
            y = list(y)
            if len(y) != len(paths):
                raise ParameterError(f"len(labels)={len(y)} but {len(paths)} paths")
            df["label"] = [str(v) for v in y]
    df["path"] = [os.path.abspath(os.fspath(p)) for p in df["path"]]
    return df.reset_index(drop=True)


def map_paths(fn, paths, *, threads=2, desc="", verbose=False):
    """Apply ``fn(path)`` in threads; return ({path: result}, [failures])."""
    from tqdm.auto import tqdm

    out, failures = {}, []

    def run(p):
        try:
            return p, fn(p), None
        except RecommenderError as e:
            return p, None, getattr(e, "reason", None) or str(e)
        except MemoryError as e:
            return p, None, f"out of memory ({e})"
        except Exception as e:  # a decoder surprise must not stop training on 10k files
            logger.debug("unexpected error on %s", p, exc_info=True)
            return p, None, f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=max(1, threads)) as ex:
        for p, res, err in tqdm(ex.map(run, paths), total=len(paths), desc=desc, disable=not verbose,
                                leave=False):
            if err is None:
                out[p] = res
            else:
                logger.warning("skipping %s: %s", p, err)
                failures.append({"path": p, "reason": err})
    return out, failures


def track_segments(path, n_segments):
    """Log-mel of a track kept for training: a list of (L, 96) float16 arrays.

    Tracks up to ``n_segments`` x 374 frames (~96 s for 16) are kept whole;
    longer ones as ``n_segments`` 374-frame (6 s) segments spread evenly over
    the track (decoding only those windows), each long enough for random
    187-frame crops.
    """
    from ..io import audio

    inf = audio.info(path)
    n = int(round(inf.duration_s * features.SR))
    if n <= 0:
        raise AudioError(path, "contains no audio samples")
    seg_samples = _SEG_FRAMES * features.HOP_LENGTH
    if 1 + n // features.HOP_LENGTH <= n_segments * _SEG_FRAMES:
        y = audio.load(path, sr=features.SR)
        if len(y) == 0:
            raise AudioError(path, "contains no audio samples")
        S = features.logmel(y)
        if len(S) < features.PATCH_FRAMES:
            S = features.repeat_pad(S)
        return [S.astype(np.float16)]
    centres = (np.arange(n_segments) + 0.5) / n_segments
    starts = np.round(centres * (n - seg_samples)).astype(np.int64) - features.N_FFT // 2
    both = np.concatenate([starts, starts + features.PATCH_HOP_SAMPLES])
    W = audio.load_windows(path, both / features.SR, features.PATCH_WINDOW_SAMPLES, sr=features.SR)
    k = len(starts)
    return [np.concatenate([features.window_logmel(W[i]), features.window_logmel(W[k + i])]).astype(np.float16)
            for i in range(k)]


def fixed_patches(segments, max_patches):
    """Deterministic non-overlapping patches of a track's segments (validation)."""
    P = np.concatenate([features.patches(s.astype(np.float32)) for s in segments])
    if len(P) > max_patches:
        P = P[np.round(np.linspace(0, len(P) - 1, max_patches)).astype(int)]
    return P


def descriptor_names():
    from ..descriptors.summary import DESCRIPTOR_COLUMNS

    return [c for c in DESCRIPTOR_COLUMNS if c not in _EXCLUDED_DESCRIPTORS]


def descriptor_clips(path, n_clips, clip_s=CLASSICAL_CLIP_S):
    """Descriptor vectors of up to ``n_clips`` clips spread over a track: (k, F)."""
    from ..io import audio
    from ..descriptors.summary import DESCRIPTOR_SR, describe

    inf = audio.info(path)
    dur = float(inf.duration_s)
    if dur <= 0:
        raise AudioError(path, "contains no audio samples")
    k = max(1, min(n_clips, int(dur // clip_s)))
    if k == 1:
        off = max(0.0, (dur - clip_s) / 2)
        offsets = [off]
    else:
        offsets = list((np.arange(k) + 0.5) / k * (dur - clip_s))
    names = descriptor_names()
    rows = []
    for off in offsets:
        y = audio.load(path, sr=DESCRIPTOR_SR, offset_s=float(off), duration_s=min(clip_s, dur))
        if len(y) == 0:
            raise AudioError(path, "contains no audio samples")
        d = describe(y, sr=DESCRIPTOR_SR)
        rows.append([d[c] if d[c] is not None else np.nan for c in names])
    X = np.asarray(rows, dtype=np.float64)
    return np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)


def embedding_table(tm, paths, *, sampling, with_tags=False, verbose=False):
    """Per-patch features of the ``head`` mode: ({path: (n_patches, d) float64}, [failures]).

    ``d`` is the backbone's embedding size (plus its tag count with ``with_tags``).
    """
    from tqdm.auto import tqdm

    from ..analysis.pipeline import TrackAnalysis, analyze_files

    out, failures = {}, []
    it = analyze_files(paths, model=tm, sampling=sampling)
    for res in tqdm(it, total=len(paths), desc="embeddings", disable=not verbose, leave=False):
        if isinstance(res, TrackAnalysis):
            f = res.patch_embeddings
            if with_tags:
                f = np.concatenate([f, res.patch_probs], axis=1)
            out[res.path] = f.astype(np.float64)
        else:
            logger.warning("skipping %s: %s", res.path, res.reason)
            failures.append({"path": res.path, "reason": res.reason})
    return out, failures


def stack_rows(table, paths, y):
    """Stack the rows of ``table[p]`` for ``paths``: (X, label per row, track index per row)."""
    X = [table[p] for p in paths]
    if not X:
        return np.zeros((0, 0)), np.zeros(0, int), np.zeros(0, int)
    return (np.concatenate(X), np.repeat(y, [len(x) for x in X]),
            np.repeat(np.arange(len(X)), [len(x) for x in X]))
