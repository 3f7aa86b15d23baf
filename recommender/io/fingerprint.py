"""Acoustic fingerprints: recognise the same recording in another file.

A copy of a recording in another encoding or bitrate, or with a few seconds
trimmed at the start or end, has (almost) the same Chromaprint fingerprint.
This module computes that fingerprint, stores it as bytes, compares two of
them and lists the duplicate pairs of a collection.

Method
------
* **Fingerprint** -- Chromaprint (Lukas Lalinsky, https://acoustid.org/chromaprint),
  computed by its ``fpcalc`` tool (``fpcalc -raw``: the same program and
  command line as pyacoustid's ``acoustid.fingerprint_file(...,
  force_fpcalc=True)``, called directly; see :func:`fingerprint_file` for why).
  The audio is resampled to 11025 Hz mono, analysed in 4096-sample frames
  with a hop of 1365 samples, reduced to 12 chroma bands, and 16 learned
  filters over the chroma image give 2 bits each: one **32-bit
  sub-fingerprint ("item") every 1365 / 11025 = 0.1238 s** (:data:`ITEM_S`).
  :func:`decompress_fingerprint` reads the compressed base64 form that
  ``fpcalc`` prints by default, pyacoustid returns and AcoustID stores.
* **Comparison** -- as AcoustID does it (``acoustid_compare`` in the AcoustID
  server, and Chromaprint's matcher): slide one item sequence over the other,
  and at each offset count the differing bits (popcount of the XOR) over the
  overlap; the offset with the lowest bit error rate ``ber`` is the
  alignment.  Unrelated audio gives ``ber`` ~ 0.5 (coin flips), copies of one
  recording ~ 0.0-0.08.  Items equal to Chromaprint's silence item
  (:data:`SILENCE_ITEM`) in both files are left out, so two files that only
  share digital silence do not match.  :func:`match` scores that alignment
  by the share of items within :data:`ITEM_TOLERANCE_BITS` = 4 bits of each
  other (1 = all, ~0 = unrelated): it separates sound-alikes better than
  ``1 - 2 * ber`` (measured in :func:`compare`); :func:`compare` also
  returns ``ber``, the offset in seconds and the overlap.
* **Duplicate search** -- an inverted index of the exact 32-bit item values,
  as AcoustID's own index (``acoustid-index``) looks up a query: only pairs of
  files that share at least ``min_shared`` distinct item values are aligned.

Measured (``PYTHONPATH=. python benchmarks/bench_duplicates.py``, see
:data:`THRESHOLD`): 24 Debian game-soundtrack recordings x 4 copies (MP3
128 kbit/s, Opus 64 kbit/s, 3-5 s cut at the start, 4 s cut + 3 s fade at the
end) plus 24 synthetic sound-alikes; figures in :func:`same_recording`.

Storage: :func:`fingerprint_to_bytes` / :func:`fingerprint_from_bytes` -- the
raw items as little-endian ``uint32`` (4 bytes per 0.1238 s: ~3.9 kB for the
default 120 s), for a BLOB column; keep ``duration_s`` in its own column.

Requirements: the ``fpcalc`` program (Debian/Ubuntu ``libchromaprint-tools``;
or ``$FPCALC`` naming it); no Python package beyond NumPy.  No network.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import NamedTuple

import numpy as np

from .._utils import check_int, check_number
from ..errors import ParameterError
from ._fpcalc import (
    FPCALC_BATCH,
    fingerprint_available,
    fingerprint_file,
    fingerprint_files,
)
from ._fpdata import (
    ITEM_S,
    SILENCE_ITEM,
    Fingerprint,
    decompress_fingerprint,
    fingerprint_from_bytes,
    fingerprint_to_bytes,
)

__all__ = [
    "FPCALC_BATCH",
    "ITEM_S",
    "ITEM_TOLERANCE_BITS",
    "SILENCE_ITEM",
    "THRESHOLD",
    "Fingerprint",
    "Match",
    "compare",
    "decompress_fingerprint",
    "find_duplicate_pairs",
    "fingerprint_available",
    "fingerprint_file",
    "fingerprint_files",
    "fingerprint_from_bytes",
    "fingerprint_to_bytes",
    "match",
    "same_recording",
]

#: An aligned item pair counts as "the same" when at most this many of its 32 bits differ.
ITEM_TOLERANCE_BITS = 4

#: Default decision threshold on :func:`match`'s score (see :func:`same_recording`).
THRESHOLD = 0.7


# --------------------------------------------------------------------------- comparison
_POP8 = np.array([i.bit_count() for i in range(256)], np.uint8)


def _popcount32(x: np.ndarray) -> np.ndarray:
    """Set bits of each ``uint32`` (same shape, small ints)."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(x)
    b = np.ascontiguousarray(x, dtype=np.uint32).view(np.uint8).reshape(x.shape + (4,))
    return _POP8[b].sum(axis=-1, dtype=np.uint8)


def _items(fp, name: str) -> np.ndarray:
    if isinstance(fp, Fingerprint):
        return fp.items
    a = np.asarray(fp)
    if a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
        raise ParameterError(f"{name}: must be a Fingerprint or a 1-D integer array of items")
    return a.astype(np.uint32, copy=False)


class Match(NamedTuple):
    """What :func:`compare` found at the best alignment of two fingerprints.

    Attributes
    ----------
    score : float
        In [0, 1]: share of the aligned items that differ in at most
        :data:`ITEM_TOLERANCE_BITS` of their 32 bits (:func:`match`).
    ber : float
        Bit error rate at that alignment, in [0, 1]: 0 = identical items,
        ~0.5 = unrelated audio; 0.5 when no offset had enough overlap.
    offset_s : float
        Seconds to add to a time in ``fp_a`` to get the same audio in
        ``fp_b`` (a multiple of :data:`ITEM_S`; e.g. -4.0 when ``fp_b`` had
        4 s cut at its start).
    overlap_s : float
        Seconds of audio compared (silent items of both excluded).
    """

    score: float
    ber: float
    offset_s: float
    overlap_s: float


def _compare(a: np.ndarray, b: np.ndarray, k: int, min_overlap: int) -> Match:
    """Best alignment of ``a[i]`` with ``b[i + d]``, ``|d| <= k`` (items), by bit error rate."""
    na, nb = a.size, b.size
    tail = k + max(na - nb, 0)
    bp = np.concatenate((np.zeros(k, np.uint32), b, np.zeros(tail, np.uint32)))
    valid = np.concatenate((np.zeros(k, bool), np.ones(nb, bool), np.zeros(tail, bool)))
    win_b = np.lib.stride_tricks.sliding_window_view(bp, na)[: 2 * k + 1]  # (2k+1, na): b shifted by d = -k..k
    win_v = np.lib.stride_tricks.sliding_window_view(valid, na)[: 2 * k + 1]
    use = win_v & ~((a == SILENCE_ITEM)[None, :] & (win_b == SILENCE_ITEM))
    bits = _popcount32(win_b ^ a[None, :])  # (2k+1, na) differing bits per item pair
    overlap = use.sum(axis=1, dtype=np.int64)
    ok = overlap >= min_overlap
    if not ok.any():
        return Match(0.0, 0.5, 0.0, 0.0)
    ber = np.where(ok, (bits * use).sum(axis=1, dtype=np.int64) / np.maximum(32 * overlap, 1), np.inf)
    j = int(np.argmin(ber))
    close = np.count_nonzero((bits[j] <= ITEM_TOLERANCE_BITS) & use[j])
    return Match(float(close / overlap[j]), float(ber[j]), (j - k) * ITEM_S, float(overlap[j] * ITEM_S))


def compare(fp_a, fp_b, *, max_offset_s: float = 10.0, min_overlap_s: float = 10.0) -> Match:
    """Align two fingerprints and score how alike their items are.

    Method (Chromaprint / AcoustID): slide ``fp_b`` over ``fp_a`` by up to
    ``max_offset_s`` either way, one item (:data:`ITEM_S` = 0.1238 s) at a
    time; at each offset the bit error rate is ``popcount(a XOR b) / (32 *
    overlap)`` over the overlapping items (items that are Chromaprint silence
    in both are skipped), and the offset with the lowest rate is the
    alignment (AcoustID's ``acoustid_compare``, done densely).  The score at
    that alignment is the share of items differing in at most
    :data:`ITEM_TOLERANCE_BITS` (4) bits.

    Why not ``1 - 2 * ber`` as the score: a re-encoded or trimmed copy keeps
    most items exact or nearly so (its bit errors gather on a few items at
    transients), while a different recording that sounds alike -- same
    tempo, same kick, same chord -- can reach a low *average* bit error rate
    with every item a few bits off.  Measured on the benchmark set (see
    :func:`same_recording`): ``1 - 2 * ber`` gives same-recording pairs
    >= 0.846 and different recordings up to 0.709 (two synthetic techno
    tracks); the item score gives >= 0.901 against <= 0.438.

    Parameters
    ----------
    fp_a, fp_b : Fingerprint or array-like of shape (n_items,)
        Raw ``uint32`` items.
    max_offset_s : float
        Largest shift tried, in seconds (>= 0): covers that much audio cut or
        added at the start of either file.
    min_overlap_s : float
        Offsets whose overlap is shorter than this (or than the shorter
        fingerprint, if that is shorter) are not considered.

    Returns
    -------
    Match
        ``(score, ber, offset_s, overlap_s)``; ``Match(0.0, 0.5, 0.0, 0.0)``
        when a fingerprint is empty.

    Raises
    ------
    ParameterError
        On a bad argument.

    Notes
    -----
    Cost: ``(2 * max_offset_s / ITEM_S + 1) * n_items`` XOR + popcounts,
    ~1-2 ms for two 120 s fingerprints at the default 10 s.  A copy played at
    another speed (even 1 %) drifts out of alignment and is not recognised
    (measured score < 0.21), as with Chromaprint in general.
    """
    a, b = _items(fp_a, "fp_a"), _items(fp_b, "fp_b")
    check_number("max_offset_s", max_offset_s, min=0)
    check_number("min_overlap_s", min_overlap_s, min=0)
    if a.size == 0 or b.size == 0:
        return Match(0.0, 0.5, 0.0, 0.0)
    k = round(max_offset_s / ITEM_S)
    min_overlap = max(1, min(round(min_overlap_s / ITEM_S), a.size, b.size))
    return _compare(a, b, k, min_overlap)


def match(fp_a, fp_b, *, max_offset_s: float = 10.0, min_overlap_s: float = 10.0) -> float:
    """Similarity of two fingerprints in [0, 1]: ``compare(fp_a, fp_b).score``.

    The share of items, at the alignment with the lowest bit error rate
    (within +-``max_offset_s``), whose 32 bits differ in at most
    :data:`ITEM_TOLERANCE_BITS`; see :func:`compare` for the method.
    1 = the same items, ~0 = unrelated audio.  Measured: same recording
    0.901-1.000 (median 1.000), different recordings <= 0.438 (median 0.000);
    see :func:`same_recording`.

    Parameters
    ----------
    fp_a, fp_b : Fingerprint or array-like of shape (n_items,)
    max_offset_s, min_overlap_s : float
        Seconds; see :func:`compare`.

    Returns
    -------
    float
        0.0 when either fingerprint is empty.

    Raises
    ------
    ParameterError
        On a bad argument.
    """
    return compare(fp_a, fp_b, max_offset_s=max_offset_s, min_overlap_s=min_overlap_s).score


def same_recording(fp_a, fp_b, *, threshold: float = THRESHOLD, max_offset_s: float = 10.0) -> bool:
    """True if two fingerprints are of the same recording: ``match(...) >= threshold``.

    The default :data:`THRESHOLD` = 0.7 was chosen on
    ``benchmarks/bench_duplicates.py``, run as
    ``PYTHONPATH=. python benchmarks/bench_duplicates.py``: 24 recordings from
    Debian game soundtracks (freedroidrpg, hedgewars, lincity-ng, supertux,
    xmoto; 20-150 s), each as the Ogg original + MP3 128 kbit/s + Opus
    64 kbit/s + 3-5 s cut at the start (Vorbis) + 4 s cut with a 3 s fade at
    the end (AAC), plus 24 synthetic sound-alikes
    (``recommender.io.demo.synth_track``, 4 styles x 6 seeds, 30 s, each with
    an MP3 copy).  Measured (168 files, 14 028 pairs):

    * 264 same-recording pairs: score 0.901-1.000, median 1.000; recall at
      0.7 = 1.000 (264/264).  Weakest: a start cut that falls half an item
      (62 ms) between two items.
    * 13 764 different-recording pairs (1 665 of one soundtrack or one
      synthetic style): score <= 0.438 (two 128 BPM synthetic techno tracks),
      99.9th percentile 0.305; 0 pairs at or above 0.5 already.
    * :func:`find_duplicate_pairs` on the 168 files: 264/264 pairs, 0 others.

    0.7 sits a little above the middle of the gap (0.438, 0.901): the
    positives' low end is set by the item grid and barely moves with bitrate
    (MP3 32 kbit/s and Opus 24 kbit/s copies score >= 0.986), while music
    that only sounds alike has no such bound.

    Parameters
    ----------
    fp_a, fp_b : Fingerprint or array-like of shape (n_items,)
    threshold : float
        In [0, 1].
    max_offset_s : float
        See :func:`compare`.

    Returns
    -------
    bool

    Raises
    ------
    ParameterError
        On a bad argument.
    """
    check_number("threshold", threshold, min=0, max=1)
    return match(fp_a, fp_b, max_offset_s=max_offset_s) >= threshold


# --------------------------------------------------------------------------- collection search
def _candidate_pairs(items: list[np.ndarray], min_shared: int, max_df: int) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, sharing >= ``min_shared`` distinct item values; shape (n_pairs, 2)."""
    n = len(items)
    vals, tids = [], []
    for t, it in enumerate(items):
        u = np.unique(it)
        u = u[u != SILENCE_ITEM]
        vals.append(u)
        tids.append(np.full(u.size, t, np.int32))
    if not vals:
        return np.zeros((0, 2), np.int64)
    v = np.concatenate(vals)
    t = np.concatenate(tids)
    order = np.argsort(v, kind="stable")  # stable: tids stay increasing within a value
    v, t = v[order], t[order]
    del order
    starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
    sizes = np.diff(np.append(starts, v.size))
    codes = []
    for s in np.unique(sizes):
        if s < 2 or s > max_df:  # unique values, or "stop words" (too common to tell anything)
            continue
        members = t[starts[sizes == s][:, None] + np.arange(s)]  # (n_groups, s)
        iu, ju = np.triu_indices(int(s), 1)
        codes.append(members[:, iu].astype(np.int64).ravel() * n + members[:, ju].ravel())
    if not codes:
        return np.zeros((0, 2), np.int64)
    uniq, counts = np.unique(np.concatenate(codes), return_counts=True)
    keep = uniq[counts >= min_shared]
    return np.stack((keep // n, keep % n), axis=1)


def find_duplicate_pairs(
    fingerprints: Mapping[Hashable, Fingerprint],
    *,
    threshold: float = THRESHOLD,
    max_offset_s: float = 10.0,
    min_shared: int = 2,
    max_df: int = 64,
) -> list[tuple[Hashable, Hashable, float]]:
    """All pairs of the same recording in a collection.

    Two stages (AcoustID's lookup): an inverted index of the exact 32-bit item
    values proposes the pairs of tracks sharing at least ``min_shared``
    distinct values; only those are aligned with :func:`match`.  A re-encode
    keeps many items bit-exact (measured on the benchmark set: >= 22 shared
    values for every same-recording pair, median 289), different recordings
    share few (at most 6 there; 0 for most pairs).

    Parameters
    ----------
    fingerprints : mapping of id -> Fingerprint (or array of shape (n_items,))
        Ids are any hashable (track ids, paths); empty fingerprints are skipped.
    threshold : float
        Score at or above which a pair is reported (see :func:`same_recording`).
    max_offset_s : float
        See :func:`match`.
    min_shared : int
        Distinct item values two tracks must share to be aligned (>= 1).
    max_df : int
        Item values found in more than this many tracks are ignored as
        uninformative (>= 2).

    Returns
    -------
    list of (id_a, id_b, score)
        ``id_a`` before ``id_b`` in the mapping's order; sorted by score,
        highest first.

    Raises
    ------
    ParameterError
        On a bad argument.

    Notes
    -----
    Memory ~ 16 bytes per distinct item per track while the index is built
    (10 000 tracks x 120 s: ~160 MB); time is dominated by sorting the
    ~10^7 values plus ~1-2 ms per candidate pair.  Measured
    (``bench_duplicates.py --scale 10000``): 10 100 synthetic 120 s
    fingerprints with 100 injected copies, 1.8-2.6 s, 100/100 copies
    found, no other pair.
    """
    if not isinstance(fingerprints, Mapping):
        raise ParameterError(f"fingerprints={type(fingerprints).__name__}: must be a mapping id -> Fingerprint")
    check_number("threshold", threshold, min=0, max=1)
    check_number("max_offset_s", max_offset_s, min=0)
    min_shared = check_int("min_shared", min_shared, min=1)
    max_df = check_int("max_df", max_df, min=2)
    ids = [key for key, fp in fingerprints.items() if _items(fp, f"fingerprints[{key!r}]").size]
    items = [_items(fingerprints[key], "") for key in ids]
    out = []
    for i, j in _candidate_pairs(items, min_shared, max_df).tolist():
        s = match(items[i], items[j], max_offset_s=max_offset_s)
        if s >= threshold:
            out.append((ids[i], ids[j], s))
    out.sort(key=lambda r: -r[2])
    return out
