"""Tempo: the onset envelope (spectral flux of the dB mel spectrogram) and
its autocorrelation (:func:`estimate_tempo`, :func:`tempo_timeline`)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from ._base import (
    DESCRIPTOR_SR,
    MAX_BPM,
    MIN_BPM,
    MIN_TEMPO_DURATION_S,
    ONSET_FPS,
    _check_positive,
    as_mono,
)
from .spectral import _mel_db_of

__all__ = ["estimate_tempo", "tempo_timeline"]

# Tempo decision parameters (tuned on the DEV set of the benchmark).
_LEVEL_RATIO = 0.62  # a faster metrical level is taken when its periodicity
#                      reaches this share of the strongest one
_PRIOR_CENTRE_BPM = 115.0
_PRIOR_SIGMA_OCT = 1.5  # log2-normal prior: broad, only breaks near-ties
_HARMONIC_ONLY = True  # metrical levels: integer ratios of the strongest
_ONSET_TOP_DB = 60.0  # onset levels floored 60 dB under the loudest bin


def _onset_envelope_from_mel_db(mel_db: np.ndarray) -> np.ndarray:
    """Spectral flux of the dB mel spectrogram (frames as rows), shape ``(n_frames,)``.

    Levels are floored at ``_ONSET_TOP_DB`` below the loudest bin, so that
    quiet events (and noise) make proportionally small onsets.
    """
    if mel_db.shape[0] < 2:
        return np.zeros(mel_db.shape[0], dtype=np.float32)
    m = np.maximum(mel_db, mel_db.max() - _ONSET_TOP_DB)
    flux = np.maximum(0.0, np.diff(m, axis=0)).mean(axis=1)
    return np.concatenate([[0.0], flux]).astype(np.float32)


def _onset_envelope(y: np.ndarray) -> np.ndarray:
    return _onset_envelope_from_mel_db(_mel_db_of(y))


def _acf_sums(o: np.ndarray, max_lag: int) -> np.ndarray:
    """``sum_t o[t] o[t + lag]`` for lags ``0..max_lag`` (0 where ``lag >= len(o)``)."""
    n = o.size
    nfft = 1 << int(math.ceil(math.log2(max(2 * n, max_lag + 1, 2))))
    f = np.fft.rfft(o, nfft)
    return np.fft.irfft(f * np.conj(f), nfft)[: max_lag + 1]


def _acf(o: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of ``o`` for lags ``0..max_lag``."""
    a = _acf_sums(o, max_lag)
    a /= o.size - np.arange(max_lag + 1)
    return a


def _parabolic(a: np.ndarray, i: int) -> tuple[float, float]:
    """Sub-sample peak position and height around index ``i``."""
    if 0 < i < a.size - 1:
        l, c, r = a[i - 1], a[i], a[i + 1]
        d = l - 2 * c + r
        if d < 0:
            off = 0.5 * (l - r) / d
            off = max(-0.5, min(0.5, off))
            return i + off, c - 0.25 * (l - r) * off
    return float(i), float(a[i])


def _prepare_onset(o: np.ndarray, fps: float) -> np.ndarray:
    o = np.asarray(o, dtype=np.float64)
    if o.size == 0:
        return o
    # Subtract a 1-second moving average and half-wave rectify: keeps the
    # accents, removes the floor that noise and sustained sounds add.
    w = max(3, int(round(fps)) | 1)
    kernel = np.ones(w) / w
    pad = np.pad(o, (w // 2, w // 2), mode="edge")
    local = np.convolve(pad, kernel, mode="valid")
    return np.maximum(0.0, o - local)


def _tempo_from_onset(o, fps, *, min_bpm=MIN_BPM, max_bpm=MAX_BPM):
    """Tempo (BPM) and confidence from an onset envelope sampled at ``fps``."""
    return _tempo_from_onsets([o], fps, min_bpm=min_bpm, max_bpm=max_bpm)


def _tempo_from_onsets(onsets, fps, *, min_bpm=MIN_BPM, max_bpm=MAX_BPM):
    """Tempo (BPM) and confidence from the onset envelopes of one or more excerpts.

    The autocorrelations of the excerpts are pooled (lagged products summed
    over all excerpts, divided by the number of products at each lag), so
    excerpts spread over a track vote with their length; one excerpt gives
    its plain unbiased autocorrelation.  Lags reach half the longest excerpt.
    """
    os_ = [o for o in (_prepare_onset(o, fps) for o in onsets) if o.size]
    n = max((o.size for o in os_), default=0)
    if n == 0 or n / fps < MIN_TEMPO_DURATION_S or not any(np.any(o > 0) for o in os_):
        return math.nan, 0.0
    # Candidate periodicities are searched from 3x faster to 3x slower than
    # the output range, so that metrical levels around it can be compared.
    lag_lo = max(2, int(math.floor(60.0 * fps / (max_bpm * 1.5))))
    max_lag = min(int(math.ceil(60.0 * fps / (min_bpm / 2.0))) + 2, n // 2)
    if max_lag <= lag_lo + 2:
        return math.nan, 0.0
    if len(os_) == 1:
        a = _acf(os_[0], max_lag)
    else:
        lag = np.arange(max_lag + 1)
        num = sum(_acf_sums(o, max_lag) for o in os_)
        den = sum(np.maximum(o.size - lag, 0) for o in os_)
        a = num / den
    if not a[0] > 0:
        return math.nan, 0.0
    a = a / a[0]
    # local maxima
    idx = np.flatnonzero((a[1:-1] > a[:-2]) & (a[1:-1] >= a[2:])) + 1
    idx = idx[idx >= lag_lo]
    if idx.size == 0:
        return math.nan, 0.0
    peaks = [_parabolic(a, int(i)) for i in idx]
    lags = np.array([p[0] for p in peaks])
    vals = np.array([p[1] for p in peaks])
    bpms = 60.0 * fps / lags
    ok = (bpms >= min_bpm) & (bpms <= max_bpm)
    if not np.any(ok):
        return math.nan, 0.0
    # broad log-normal prior, only decisive between near-equal peaks
    prior = np.exp(-0.5 * (np.log2(bpms / _PRIOR_CENTRE_BPM) / _PRIOR_SIGMA_OCT) ** 2)
    score = np.clip(vals, 0.0, None) * prior
    best_all = float(np.max(score[ok]))
    if best_all <= 0:
        return math.nan, 0.0
    # tactus = the fastest level in range that is (nearly) as periodic as
    # the strongest one; subdivisions are weaker because they alternate
    # accented and unaccented events.
    cand = ok & (score >= _LEVEL_RATIO * best_all)
    if _HARMONIC_ONLY:
        # keep only levels related to the strongest by (near) integer ratios
        ref = lags[ok][int(np.argmax(score[ok]))]
        q = np.maximum(lags, ref) / np.minimum(lags, ref)
        cand &= np.abs(q - np.round(q)) <= 0.06 * q
    cand = np.flatnonzero(cand)
    j = int(cand[np.argmin(lags[cand])])
    lag0 = float(lags[j])
    conf = float(np.clip(vals[j], 0.0, 1.0))
    lag = _refine_lag(a, lag0)
    return float(60.0 * fps / lag), conf


def _refine_lag(a: np.ndarray, lag0: float) -> float:
    """Refine a period estimate with the ACF peaks at its multiples."""
    ks, ps = [1.0], [lag0]
    k = 2
    while k * lag0 + 2 < a.size and k <= 8:
        centre = k * lag0
        lo = int(max(1, math.floor(centre - max(1.0, 0.04 * centre))))
        hi = int(min(a.size - 2, math.ceil(centre + max(1.0, 0.04 * centre))))
        if hi <= lo:
            break
        i = lo + int(np.argmax(a[lo : hi + 1]))
        if i in (lo, hi) or a[i] <= 0:
            break
        ks.append(float(k))
        ps.append(_parabolic(a, i)[0])
        k += 1
    ks, ps = np.array(ks), np.array(ps)
    return float(np.sum(ks * ps) / np.sum(ks * ks))


def estimate_tempo(y, *, sr, min_bpm=MIN_BPM, max_bpm=MAX_BPM) -> tuple[float, float]:
    """Estimate the global tempo (beats per minute) of a waveform.

    The onset envelope (spectral flux of the dB mel spectrogram, 43 frames
    per second, levels floored 60 dB under the loudest bin, 1-s moving
    average removed) is autocorrelated.  Among the autocorrelation peaks
    whose tempo lies in ``[min_bpm, max_bpm]``, that stand in an integer
    ratio (2, 3, 4...) to the strongest peak and reach 62 % of it (all
    weighted by a broad log-normal prior centred on 115 BPM with a
    1.5-octave spread), the *fastest* is taken as the beat: the beat carries
    accents on every pulse, its subdivisions do not, its multiples (half
    bars, bars) are no more periodic.  The period is then refined with the
    peaks at its multiples (sub-frame precision).  Unlike
    ``librosa.beat.beat_track``, no narrow prior pulls the answer to 120.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform.
    sr : int
        Sample rate of ``y`` (Hz); resampled to :data:`DESCRIPTOR_SR`.
    min_bpm, max_bpm : float
        Range of tempi that can be returned.

    Returns
    -------
    tempo_bpm : float
        NaN for silence or audio shorter than 1.5 s.
    confidence : float
        Normalised autocorrelation of the onset envelope at the beat period,
        in ``[0, 1]``: about 0.8-1 for steady percussive music, low for
        free rhythm or noise, 0.0 when there is no tempo.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = np.zeros(10 * sr, dtype=np.float32)
    >>> y[:: sr // 2][:20] = 1.0           # a click every 0.5 s: 120 BPM
    >>> bpm, conf = estimate_tempo(y, sr=sr)
    >>> round(bpm)
    120
    """
    min_bpm = _check_positive("min_bpm", min_bpm, allow_none=False)
    max_bpm = _check_positive("max_bpm", max_bpm, allow_none=False)
    if not max_bpm > min_bpm:
        raise ParameterError(f"max_bpm={max_bpm!r}: must be greater than min_bpm={min_bpm!r}")
    y = as_mono(y, sr)
    o = _onset_envelope(y)
    return _tempo_from_onset(o, ONSET_FPS, min_bpm=min_bpm, max_bpm=max_bpm)


def tempo_timeline(y, *, sr, segment_s=10.0, hop_s=None, min_bpm=MIN_BPM, max_bpm=MAX_BPM):
    """Tempo over time, one estimate per segment.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform.
    sr : int
        Sample rate of ``y`` (Hz).
    segment_s : float
        Length of each analysed segment in seconds (>= 1.5 s gives a tempo).
    hop_s : float or None
        Distance between segment starts; default ``segment_s`` (no overlap).
        A last segment shorter than ``segment_s`` is kept if it is at least
        half as long.
    min_bpm, max_bpm : float
        As in :func:`estimate_tempo`.

    Returns
    -------
    pandas.DataFrame
        Columns ``start_s``, ``end_s``, ``tempo_bpm``, ``confidence``; one
        row per segment.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> y = np.zeros(20 * sr, dtype=np.float32)
    >>> y[: 10 * sr : sr // 2] = 1.0      # 120 BPM ...
    >>> y[10 * sr :: sr // 3] = 1.0      # ... then 180 BPM
    >>> tempo_timeline(y, sr=sr, segment_s=10.0)["tempo_bpm"].round().tolist()
    [120.0, 180.0]
    """
    import pandas as pd

    segment_s = _check_positive("segment_s", segment_s, allow_none=False)
    hop_s = _check_positive("hop_s", hop_s) or segment_s
    y = as_mono(y, sr)
    o = _onset_envelope(y)
    duration_s = y.size / DESCRIPTOR_SR
    rows = []
    start = 0.0
    while True:
        end = min(start + segment_s, duration_s)
        if rows and end - start < 0.5 * segment_s:
            break
        seg = o[int(round(start * ONSET_FPS)) : int(round(end * ONSET_FPS))]
        bpm, conf = _tempo_from_onset(seg, ONSET_FPS, min_bpm=min_bpm, max_bpm=max_bpm)
        rows.append({"start_s": start, "end_s": end, "tempo_bpm": bpm, "confidence": conf})
        start += hop_s
        if start >= duration_s:
            break
    return pd.DataFrame(rows, columns=["start_s", "end_s", "tempo_bpm", "confidence"])
