"""Music information retrieval (MIR) descriptors: tempo, key, loudness, timbre.

This module pools the algorithms of :mod:`.spectral`, :mod:`.tempo`, :mod:`.key`
and :mod:`.loudness` (constants and checks in :mod:`._base`) into one record per
track, and reads files for them.

Every track gets one flat record of human-readable descriptors (the
``descriptors`` columns of the catalog and of the DataFrames given back to
users).  Three layers, as elsewhere in the package:

* :func:`describe` — one waveform (array) to one ``dict``;
  :func:`describe_excerpts` — several excerpts of one track to one ``dict``;
* :func:`describe_file` / :func:`describe_files` — paths to a ``dict`` / a
  :class:`pandas.DataFrame` with one row per file and an ``error`` column;
* :func:`describe_clips` and :func:`tempo_timeline` — fixed-length clips and
  tempo over time, as DataFrames.

Analysis parameters
-------------------
Everything is computed at :data:`DESCRIPTOR_SR` = 22050 Hz (inputs at another
rate are resampled; 22050 Hz keeps the spectral statistics comparable with
librosa's defaults and with the literature, and covers the 0-11 kHz band that
zero-crossing rate, roll-off and contrast need).  One STFT
(``n_fft=2048``, ``hop_length=512``, Hann, centred frames) is computed once
and shared by all frame features; frame statistics are the mean and the
(population) standard deviation over frames.  Key and chroma use a second,
long-window STFT (``n_fft=16384`` = 0.74 s, hop 0.37 s, 1.35 Hz resolution),
which resolves semitones down to the bass register (55 Hz) for a few
milliseconds per minute of audio (a constant-Q transform would cost ~20x more).
The FFTs run in single precision (scipy), a few frames at a time so that the
work arrays stay in the CPU cache; values agree with librosa's
double-precision STFT to ~1e-5 except in bands that hold no signal (e.g.
above a lossy codec's low-pass, where ``spectral_contrast_6`` measures the
arithmetic's noise floor and can differ by a few per cent).  About 1 ms of
CPU per second of audio, decoding aside (benchmarks/bench_descriptors.py).

What is analysed
----------------
:func:`describe` analyses the waveform it is given (or its central
``clip_s`` seconds), :func:`describe_file` the whole file unless told
otherwise: the ``describe`` command of the CLI keeps this full analysis.
Indexing (:func:`recommender.analysis.analyze_files`) analyses
:data:`INDEX_EXCERPTS` = 4 excerpts of 2.5 s spread over each track
(:data:`INDEX_CLIP_S` = 10 s in all; tracks up to 10 s whole), pooled by
:func:`describe_excerpts`: ~33 ms of CPU per track, decoding included,
instead of ~100 ms for the central 30 s used before.  When the CNN samples
the track, the excerpts are the middle 2.5 s of 4 of its windows (for 8
patches the 2nd, 4th, 5th and 7th, at about 19, 44, 56 and 81 % of the
track: :func:`describe_at`) and their audio, decoded once for both, costs
nothing more (~17 ms of CPU per track).  On 103 game-soundtrack
tracks the excerpts describe the whole track about as well as the central
30 s did (tempo the same within 4 % on 86 % of tracks against 87 %; MFCC
statistics correlate better, 0.88 against 0.87; loudness closer, 0.5 LU
against 0.7 LU), the key less well (same key on 67 % against 75 %).

Columns (:data:`DESCRIPTOR_COLUMNS`, in this order)
----------------------------------------------------
``duration_s``
    length of the *analysed* audio in seconds (the excerpt if ``clip_s``,
    the excerpts together if ``n_excerpts``).
``tempo_bpm``, ``tempo_confidence``
    see :func:`estimate_tempo`.  NaN and 0.0 for silence or audio too short
    (< 1.5 s) to hold two beats.
``key``, ``mode``, ``key_confidence``
    see :func:`estimate_key`; key names use sharps (``'C'``, ``'C#'``, ...,
    ``'B'``), mode is ``'major'`` or ``'minor'``.  ``None``, ``None``, 0.0 for
    silence.
``loudness_db``
    integrated loudness following ITU-R BS.1770-4 (K-weighting, 400 ms
    blocks with 75 % overlap, absolute gate at -70 and relative gate at -10),
    in LUFS (dB relative to full scale; a full-scale 997 Hz sine reads
    -3.0).  NaN when nothing is above the absolute gate (silence).
``rms_mean``, ``rms_std``
    frame RMS amplitude (linear, full scale = 1).
``zcr_mean``, ``zcr_std``
    zero-crossing rate, crossings per sample (0..1).
``spectral_centroid_mean/std``, ``spectral_bandwidth_mean/std``, ``spectral_rolloff_mean/std``
    in Hz (roll-off at 85 % of the magnitude).
``spectral_contrast_{0..6}_mean/std``
    in dB, librosa's octave bands from 200 Hz (band 6 is 6.4-11 kHz).
``chroma_{C,C#,...,B}_mean/std``
    pitch-class magnitude of the long-window STFT (55 Hz-2 kHz), each frame
    max-normalised to 1 (0..1).
``mfcc_{0..19}_mean/std``
    MFCCs of a 128-band Slaney mel power spectrogram in dB (librosa's
    ``mfcc`` convention, orthonormal DCT-II).

Numbers are Python ``float``; ``key`` and ``mode`` are ``str`` or ``None``.

Silence
-------
Silent or inaudible audio (:mod:`.level`: digital silence, or nothing that
reaches the BS.1770 gate of -70 LUFS) claims nothing: ``tempo_bpm`` NaN,
``tempo_confidence`` 0.0, ``key`` and ``mode`` ``None``, ``key_confidence``
0.0, and ``loudness_db`` is NaN exactly for such audio, so it marks it
(:func:`.level.flag_of_descriptors` gives the flag).  Excerpts standing for a
whole file (:func:`describe_at`, ``describe_file(n_excerpts=...)``) that look
silent or inaudible are confirmed on the whole file, which is then what is
described: so indexing and ``describe`` agree on a song that ends in silence.
:func:`describe_at` also gives the flag itself, as ``audio_flag``.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np

from .._utils import check_choice, check_int, check_number
from ..errors import ParameterError, RecommenderError
from ._base import (
    DESCRIPTOR_SR,
    N_MELS,
    N_MFCC,
    ONSET_FPS,
    PITCH_CLASSES,
    _as_mono,  # noqa: F401 - the old private path, until viz.plots uses load_for_descriptors
    _centre_clip,
    _check_positive,
    as_mono,
)
from .key import _chroma_for_key, _key_chroma, _key_from_chroma_sum
from .level import flag_from_levels
from .loudness import _gated_lufs, _loudness_blocks
from .spectral import (
    _contrast_db,
    _contrast_peak_valley,
    _dct_t,
    _floor_db,
    _frame_rms_zcr,
    _mel_db_raw,
    _n_frames,
    _spectral_shape,
    _stft_chunks,
)
from .tempo import _onset_envelope_from_mel_db, _tempo_from_onsets

__all__ = [
    "DESCRIPTOR_COLUMNS",
    "describe",
    "describe_file",
    "describe_files",
    "describe_clips",
    "describe_excerpts",
    "INDEX_CLIP_S",
    "INDEX_EXCERPTS",
    "describe_at",
]

logger = logging.getLogger(__name__)

_SCALARS = [
    "duration_s",
    "tempo_bpm",
    "tempo_confidence",
    "key",
    "mode",
    "key_confidence",
    "loudness_db",
]
_FRAME_FEATURES = (
    ["rms", "zcr", "spectral_centroid", "spectral_bandwidth", "spectral_rolloff"]
    + [f"spectral_contrast_{i}" for i in range(7)]
    + [f"chroma_{p}" for p in PITCH_CLASSES]
    + [f"mfcc_{i}" for i in range(N_MFCC)]
)
#: The documented column order of :func:`describe` (and of the DataFrames).
DESCRIPTOR_COLUMNS: list[str] = _SCALARS + [
    f"{name}_{stat}" for name in _FRAME_FEATURES for stat in ("mean", "std")
]
_STRING_COLUMNS = ("key", "mode")


#: Frame features computed on the main STFT grid, in the order of the
#: columns of :attr:`_Excerpt.frames`.
_GRID_FEATURES = (
    ["rms", "zcr", "spectral_centroid", "spectral_bandwidth", "spectral_rolloff"]
    + [f"spectral_contrast_{i}" for i in range(7)]
    + [f"mfcc_{i}" for i in range(N_MFCC)]
)


class _Excerpt:
    """What :func:`describe` keeps of one stretch of audio before pooling."""

    __slots__ = ("n_samples", "peak", "frames", "onset", "chroma", "loudness_ms")

    def __init__(self, y: np.ndarray):
        self.n_samples = y.size
        self.peak = float(np.max(np.abs(y))) if y.size else 0.0
        n = _n_frames(y)
        mel = np.empty((n, N_MELS), dtype=np.float32)
        frames = np.empty((n, len(_GRID_FEATURES)))
        peak, valley = np.empty((n, 7)), np.empty((n, 7))
        for i, mag in _stft_chunks(y):
            rows = slice(i, i + len(mag))
            mel[rows] = _mel_db_raw(mag)
            frames[rows, 2], frames[rows, 3], frames[rows, 4] = _spectral_shape(mag)
            peak[rows], valley[rows] = _contrast_peak_valley(mag)
        mel = _floor_db(mel, 80.0)
        self.onset = _onset_envelope_from_mel_db(mel)
        if n:
            frames[:, 0], frames[:, 1] = _frame_rms_zcr(y)
            with np.errstate(divide="ignore", invalid="ignore"):
                frames[:, 5:12] = _contrast_db(peak, valley)
            frames[:, 12:] = mel @ _dct_t()
        self.frames = frames
        self.chroma = _key_chroma(y)
        self.loudness_ms = _loudness_blocks(y, DESCRIPTOR_SR)


def _pool(excerpts: list) -> dict:
    """One descriptor record from the excerpts of a track (see :func:`describe_excerpts`)."""
    sr = DESCRIPTOR_SR
    out: dict = {"duration_s": sum(e.n_samples for e in excerpts) / sr}
    out["tempo_bpm"], out["tempo_confidence"] = _tempo_from_onsets([e.onset for e in excerpts], ONSET_FPS)
    chroma = np.concatenate([e.chroma for e in excerpts], axis=1)
    out["key"], out["mode"], out["key_confidence"] = _key_from_chroma_sum(_chroma_for_key(chroma))
    out["loudness_db"] = _gated_lufs(np.concatenate([e.loudness_ms for e in excerpts]))
    if _flag(excerpts) is not None:
        # nothing to hear: no tempo or key is claimed (see .level)
        out["tempo_bpm"], out["tempo_confidence"] = math.nan, 0.0
        out["key"], out["mode"], out["key_confidence"] = None, None, 0.0

    frames = np.concatenate([e.frames for e in excerpts], axis=0)
    if frames.shape[0]:
        mean, std = frames.mean(axis=0), frames.std(axis=0)
    else:
        mean = std = np.full(frames.shape[1], math.nan)
    for i, name in enumerate(_GRID_FEATURES):
        out[f"{name}_mean"] = float(mean[i])
        out[f"{name}_std"] = float(std[i])
    peak = chroma.max(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cnorm = np.where(peak > 0, chroma / np.where(peak > 0, peak, 1.0), 0.0)
    cmean, cstd = cnorm.mean(axis=1, dtype=np.float64), cnorm.std(axis=1, dtype=np.float64)
    for i, p in enumerate(PITCH_CLASSES):
        out[f"chroma_{p}_mean"] = float(cmean[i])
        out[f"chroma_{p}_std"] = float(cstd[i])
    return {c: out[c] for c in DESCRIPTOR_COLUMNS}


def _flag(excerpts: list) -> str | None:
    """:func:`.level.audio_flag` of the excerpts together (from what they hold already)."""
    blocks = [e.loudness_ms.max() for e in excerpts if e.loudness_ms.size]
    return flag_from_levels(max(e.peak for e in excerpts), float(max(blocks)) if blocks else 0.0)


def _confirmed(path, excerpts: list) -> tuple[dict, str | None]:
    """The record of a file from its excerpts and their flag, unless they are
    flagged (silent or inaudible): then the whole file is decoded and described,
    so that the index and ``describe`` (whole file) agree on the flag and the
    values (a song is not flagged because its excerpts fell in a silence)."""
    flag = _flag(excerpts)
    if flag is not None:
        from ..io import audio

        logger.info("%s: excerpts are %s, checking the whole file", path, flag)
        excerpts = [_Excerpt(audio.load(path, sr=DESCRIPTOR_SR))]
        flag = _flag(excerpts)
    return {"path": os.fspath(path), **_pool(excerpts)}, flag


def describe(y, *, sr, clip_s=None) -> dict:
    """Describe a waveform with the documented MIR descriptors.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform (float or integer samples; float full scale is 1).
    sr : int
        Sample rate of ``y`` (Hz); resampled to :data:`DESCRIPTOR_SR`.
    clip_s : float or None
        Analyse only the central ``clip_s`` seconds (all descriptors,
        including ``duration_s``).  ``None`` analyses everything; a 3-minute
        track takes about 0.3 s of CPU on one core (benchmarks/bench_tempo_key.py).

    Returns
    -------
    dict
        Keys :data:`DESCRIPTOR_COLUMNS` in that order; values ``float``, or
        ``str``/``None`` for ``key`` and ``mode``.  See the module docstring
        for units and the values for silent, inaudible and very short audio.

    Raises
    ------
    recommender.errors.ParameterError
        ``y`` is not 1-D or holds NaN/inf; ``sr`` or ``clip_s`` invalid.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(3 * sr) / sr)
    >>> d = describe(y, sr=sr)
    >>> d["key"] in PITCH_CLASSES, round(d["spectral_centroid_mean"], -1)
    (True, 440.0)
    """
    y = _centre_clip(as_mono(y, sr), clip_s)
    return _pool([_Excerpt(y)])


def describe_clips(y, *, sr, clip_s):
    """Describe consecutive fixed-length clips of a waveform.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform.
    sr : int
        Sample rate of ``y`` (Hz).
    clip_s : float
        Clip length in seconds (e.g. 2.0 or 30.0).  Clips do not overlap; a
        remainder shorter than ``clip_s`` is dropped, except that audio
        shorter than one clip gives one (short) row.

    Returns
    -------
    pandas.DataFrame
        One row per clip: ``start_s`` then :data:`DESCRIPTOR_COLUMNS`.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = np.random.default_rng(0).normal(0, 0.1, 7 * sr).astype(np.float32)
    >>> describe_clips(y, sr=sr, clip_s=2.0)["start_s"].tolist()
    [0.0, 2.0, 4.0]
    """
    clip_s = _check_positive("clip_s", clip_s, allow_none=False)
    y = as_mono(y, sr)
    n = int(round(clip_s * DESCRIPTOR_SR))
    n_clips = max(1, y.size // n)
    rows = []
    for i in range(n_clips):
        d = {"start_s": i * n / DESCRIPTOR_SR}
        d.update(describe(y[i * n : (i + 1) * n], sr=DESCRIPTOR_SR))
        rows.append(d)
    return _frame(rows, ["start_s"] + DESCRIPTOR_COLUMNS)


def describe_excerpts(excerpts, *, sr) -> dict:
    """Describe a track from several excerpts of it, as one record.

    Each excerpt is analysed like :func:`describe` analyses its waveform,
    then the excerpts are pooled: frame statistics (means and standard
    deviations) over the frames of all excerpts; tempo from the pooled
    autocorrelation of their onset envelopes (lags up to half the longest
    excerpt, so excerpts of 2.5 s still resolve 48-240 BPM); key from their
    summed chroma; loudness gated (BS.1770) over the 400-ms blocks of all
    excerpts; ``duration_s`` is their total length.  One excerpt gives
    exactly :func:`describe`'s result.

    Parameters
    ----------
    excerpts : sequence of np.ndarray, each of shape (n_samples,)
        Mono waveforms (e.g. a few seconds from the start, middle and end).
    sr : int
        Sample rate of every excerpt (Hz); resampled to :data:`DESCRIPTOR_SR`.

    Returns
    -------
    dict
        As :func:`describe`.

    Raises
    ------
    recommender.errors.ParameterError
        No excerpts, an excerpt that is not 1-D or holds NaN/inf, or ``sr``
        invalid.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(60 * sr) / sr)
    >>> d = describe_excerpts([y[i * 15 * sr : i * 15 * sr + 3 * sr] for i in range(4)], sr=sr)
    >>> d["duration_s"], round(d["spectral_centroid_mean"], -1)
    (12.0, 440.0)
    """
    if isinstance(excerpts, np.ndarray) and excerpts.ndim == 1:
        raise ParameterError("excerpts: must be a sequence of 1-D waveforms, not one waveform (use describe)")
    excerpts = list(excerpts)
    if not excerpts:
        raise ParameterError("excerpts=[]: must hold at least one waveform")
    return _pool([_Excerpt(as_mono(y, sr)) for y in excerpts])


#: Descriptors computed while indexing (:func:`recommender.analysis.analyze_files`):
#: :data:`INDEX_EXCERPTS` excerpts of ``INDEX_CLIP_S / INDEX_EXCERPTS``
#: seconds spread over the track (tracks up to ``INDEX_CLIP_S`` are analysed
#: whole; sampled tracks: inside the CNN's windows, see the module notes).
#: About 33 ms of CPU per track, decoding included, against ~100 ms for the
#: central 30 s analysed before; see benchmarks/bench_descriptors.py
#: for the cost and the agreement with the 30-s and whole-track analyses.
INDEX_CLIP_S = 10.0
INDEX_EXCERPTS = 4


def _excerpt_starts(duration_s: float, clip_s: float, n_excerpts: int) -> list[float]:
    """Starts of ``n_excerpts`` excerpts of ``clip_s / n_excerpts`` s, centred at
    ``(i + 0.5) / n_excerpts`` of the track's usable span."""
    length = clip_s / n_excerpts
    return [(i + 0.5) / n_excerpts * (duration_s - length) for i in range(n_excerpts)]


def _load_excerpts(path, clip_s: float, n_excerpts: int):
    """Decode the excerpts of :func:`describe_file` at DESCRIPTOR_SR, or ``None``
    when the whole file is to be analysed (short, or of unknown length)."""
    from ..io import audio

    inf = audio.info(path)
    if not (math.isfinite(inf.duration_s) and inf.duration_s > clip_s):
        return None
    return _load_at(path, _excerpt_starts(inf.duration_s, clip_s, n_excerpts), clip_s / n_excerpts, inf)


def _load_at(path, starts_s, length_s, inf=None):
    """Excerpts of ``length_s`` seconds starting at ``starts_s``, at DESCRIPTOR_SR."""
    from ..io import audio

    sr0 = (inf or audio.info(path)).sr_native
    # at the native rate: exact seeks, no resampler margins; then one soxr call each
    windows = audio.load_windows(path, starts_s, int(round(length_s * sr0)), sr=sr0)
    return [audio.resample(w, sr_orig=sr0, sr_target=DESCRIPTOR_SR) for w in windows]


def describe_at(path, starts_s, length_s) -> dict:
    """Describe a file from excerpts at chosen places (only they are decoded).

    ``{"path": str(path), **describe_excerpts(...)}`` of the excerpts of
    ``length_s`` seconds that start at ``starts_s``, and ``"audio_flag"``
    (:mod:`.level`) last.  If the excerpts look silent or inaudible, the
    whole file is decoded and described instead (a rare path: ~30 ms of CPU
    per minute of audio more), so that a song with a silent stretch is not
    flagged from its excerpts, and the record is :func:`describe_file`'s.  Indexing uses it with
    excerpts inside the patches the CNN analyses, so that within
    :func:`recommender.audio.reuse_decoded` they cost no decoding.

    Raises
    ------
    recommender.errors.AudioError
        The file cannot be decoded.
    recommender.errors.ParameterError
        No excerpt, or a bad ``length_s``.
    """
    length_s = _check_positive("length_s", length_s, allow_none=False)
    if not len(starts_s):
        raise ParameterError("starts_s is empty: describe_at needs at least one excerpt")
    ys = _load_at(path, starts_s, length_s)
    d, flag = _confirmed(path, [_Excerpt(y) for y in ys])
    return {**d, "audio_flag": flag}


def _check_excerpts(n_excerpts, clip_s, offset_s=None):
    if n_excerpts is None:
        return None
    check_int("n_excerpts", n_excerpts, min=1)
    if clip_s is None:
        raise ParameterError(f"n_excerpts={n_excerpts!r}: needs clip_s (the seconds analysed in all)")
    if offset_s is not None:
        raise ParameterError(f"n_excerpts={n_excerpts!r}: cannot be combined with offset_s")
    return int(n_excerpts)


def describe_file(path, *, clip_s=None, offset_s=None, n_excerpts=None) -> dict:
    """Load an audio file and describe it.

    Parameters
    ----------
    path : str or os.PathLike
        Any format :func:`recommender.audio.load` decodes.
    clip_s : float or None
        Analyse only ``clip_s`` seconds: from ``offset_s`` if given (only
        that part is decoded), else the central ``clip_s`` seconds, or, with
        ``n_excerpts``, that many seconds in all.
    offset_s : float or None
        Start of the analysed part in seconds.
    n_excerpts : int or None
        Split the ``clip_s`` seconds into this many excerpts spread over the
        track (centred at 1/8, 3/8, 5/8 and 7/8 of it for 4) and pool them
        (:func:`describe_excerpts`); only they are decoded.  A track not
        longer than ``clip_s`` is analysed whole.  Needs ``clip_s``; not
        with ``offset_s``.  ``clip_s=10, n_excerpts=4`` is what indexing
        computes (:data:`INDEX_CLIP_S`, :data:`INDEX_EXCERPTS`): about a
        third of the cost of the central 30 s, and closer to a whole-track
        analysis for timbre and loudness.  Excerpts that look silent or inaudible are
        confirmed on the whole file, which is then described.

    Returns
    -------
    dict
        ``{"path": str(path), **describe(...)}``.

    Raises
    ------
    recommender.errors.AudioError
        The file cannot be decoded.
    recommender.errors.ParameterError
        Bad ``clip_s``, ``offset_s`` or ``n_excerpts``.

    Examples
    --------
    >>> d = describe_file("song.mp3", clip_s=30.0)       # doctest: +SKIP
    >>> d["tempo_bpm"], d["key"], d["mode"]              # doctest: +SKIP
    (128.1, 'A', 'minor')
    >>> describe_file("song.mp3", clip_s=10.0, n_excerpts=4)["duration_s"]  # doctest: +SKIP
    10.0
    """
    from ..io import audio  # lazy: decoding back ends load only when needed

    check_number("offset_s", offset_s, min=0, allow_none=True)
    clip_s = _check_positive("clip_s", clip_s)
    if _check_excerpts(n_excerpts, clip_s, offset_s) is not None:
        if n_excerpts > 1:
            ys = _load_excerpts(path, clip_s, int(n_excerpts))
            if ys is not None:
                return _confirmed(path, [_Excerpt(y) for y in ys])[0]
            # short (or of unknown length): the whole track, or its central clip_s
            y = audio.load(path, sr=DESCRIPTOR_SR)
            return {"path": os.fspath(path), **describe(y, sr=DESCRIPTOR_SR, clip_s=clip_s)}
    if offset_s is not None:
        y = audio.load(path, sr=DESCRIPTOR_SR, offset_s=float(offset_s), duration_s=clip_s)
        d = describe(y, sr=DESCRIPTOR_SR)
    else:
        y = audio.load(path, sr=DESCRIPTOR_SR)
        d = describe(y, sr=DESCRIPTOR_SR, clip_s=clip_s)
    return {"path": os.fspath(path), **d}


def _describe_one(path, clip_s, on_error, n_excerpts=None):
    try:
        return describe_file(path, clip_s=clip_s, n_excerpts=n_excerpts)
    except Exception as exc:  # noqa: BLE001 - recorded, see describe_files
        if on_error == "raise":
            raise
        if not isinstance(exc, (RecommenderError, OSError, ValueError, RuntimeError, ImportError)):
            logger.warning("unexpected %s while describing %s", type(exc).__name__, path, exc_info=True)
        else:
            logger.warning("could not describe %s: %s", path, exc)
        return {"path": os.fspath(path), "error": f"{type(exc).__name__}: {exc}"}


def _frame(rows, columns):
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c in _STRING_COLUMNS or c in ("path", "error"):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
        else:
            df[c] = df[c].astype("float64")
    return df


def describe_files(paths, *, clip_s=None, n_excerpts=None, n_jobs=1, on_error="record", progress=False):
    """Describe many audio files: one DataFrame row per file.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Audio files.
    clip_s : float or None
        As in :func:`describe_file` (central excerpt).
    n_excerpts : int or None
        As in :func:`describe_file` (``clip_s`` seconds in that many
        excerpts spread over each track).
    n_jobs : int
        Worker processes (joblib); ``1`` runs in this process, ``-1`` uses
        all cores.
    on_error : {'record', 'raise'}
        ``'record'`` keeps going and writes the exception into the ``error``
        column of the failed file's row (other columns NaN/None);
        ``'raise'`` re-raises the first error.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pandas.DataFrame
        Columns ``path``, :data:`DESCRIPTOR_COLUMNS`, ``error`` (``None`` when
        the file was described); rows in the order of ``paths``.  Numbers
        are float64, ``key``/``mode``/``error`` are objects (str or None),
        so ``df.to_csv`` and ``df.to_parquet`` (with pyarrow) both work.

    Examples
    --------
    >>> df = describe_files(["a.wav", "b.mp3"], clip_s=30.0)   # doctest: +SKIP
    >>> df[df["error"].isna()].to_csv("descriptors.csv", index=False)  # doctest: +SKIP
    """
    check_choice("on_error", on_error, ("record", "raise"))
    if check_int("n_jobs", n_jobs, min=-1) == 0:
        raise ParameterError(f"n_jobs={n_jobs!r}: must be a positive integer or -1")
    clip_s = _check_positive("clip_s", clip_s)
    _check_excerpts(n_excerpts, clip_s)
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise ParameterError(f"paths={paths!r}: must be an iterable of paths, not one path")
    paths = list(paths)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(paths, desc="descriptors", unit="file")
    else:
        it = paths
    if n_jobs == 1 or len(paths) <= 1:
        rows = [_describe_one(p, clip_s, on_error, n_excerpts) for p in it]
    else:
        from joblib import Parallel, delayed

        rows = Parallel(n_jobs=n_jobs)(delayed(_describe_one)(p, clip_s, on_error, n_excerpts) for p in it)
    for r in rows:
        r.setdefault("error", None)
    return _frame(rows, ["path"] + DESCRIPTOR_COLUMNS + ["error"])
