"""Why two tracks are close (or not): shared tags, differing tags, descriptors.

:func:`explain` compares two tracks — ids or paths of indexed tracks, or any
audio files (analysed on the fly with the index's model) — and gives an
:class:`Explanation`: one short sentence for people plus the numbers behind
it.  :func:`explain_results` annotates the rows of
:meth:`Recommender.similar <recommender.Recommender.similar>`.

Nothing in the sentence is hard-coded: every clause comes from a comparison
against one of the thresholds below (module constants, so they can be read
and tuned).

Tags
    A tag **differs** when one track has it with p >= :data:`DIFFERENT_MIN_P`,
    at least :data:`DIFFERENT_MIN_DELTA` more than the other and at least
    :data:`DIFFERENT_MIN_RATIO` times as much; it is **shared** when both
    tracks have it with p >= :data:`SHARED_MIN_P` and it does not differ.
    (MSD musicnn tag probabilities rarely exceed 0.7; 0.1 already marks a
    tag the network hears.)
Tempo (needs a tempo confidence >= :data:`TEMPO_MIN_CONFIDENCE` on both sides)
    similar when the faster is at most :data:`TEMPO_SIMILAR_RATIO` times the
    slower; "twice as fast" within :data:`TEMPO_DOUBLE_TOLERANCE` of a ratio
    of 2; "much faster" from :data:`TEMPO_MUCH_RATIO`; "faster" from
    :data:`TEMPO_DIFFERENT_RATIO`.
Loudness (LUFS)
    similar within :data:`LOUDNESS_SIMILAR_LU`; "louder/quieter" from
    :data:`LOUDNESS_DIFFERENT_LU`; "much" from :data:`LOUDNESS_MUCH_LU`.
Brightness (spectral centroid)
    "brighter/darker" from a ratio of :data:`BRIGHTNESS_DIFFERENT_RATIO`,
    "much" from :data:`BRIGHTNESS_MUCH_RATIO`.
Key (needs a key confidence >= :data:`KEY_MIN_CONFIDENCE` on both sides)
    same key, relative keys (C major / A minor) or a change of mode ("B is
    in a minor key").
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pandas as pd

from ..errors import NotInIndexError, ParameterError

__all__ = ["Explanation", "explain", "explain_results", "DESCRIPTOR_ROWS"]

SHARED_MIN_P = 0.1
DIFFERENT_MIN_P = 0.1
DIFFERENT_MIN_DELTA = 0.1
DIFFERENT_MIN_RATIO = 2.0
#: Tags listed in ``shared_tags`` / ``different_tags`` (the sentence names at most 2).
MAX_TAGS = 5
SENTENCE_TAGS = 2

TEMPO_MIN_CONFIDENCE = 0.3
TEMPO_SIMILAR_RATIO = 1.04
TEMPO_DIFFERENT_RATIO = 1.15
TEMPO_MUCH_RATIO = 1.4
TEMPO_DOUBLE_TOLERANCE = 0.06

LOUDNESS_SIMILAR_LU = 2.0
LOUDNESS_DIFFERENT_LU = 3.0
LOUDNESS_MUCH_LU = 6.0

BRIGHTNESS_DIFFERENT_RATIO = 1.4
BRIGHTNESS_MUCH_RATIO = 2.0

KEY_MIN_CONFIDENCE = 0.3

#: Descriptors compared in :attr:`Explanation.descriptor_diffs` (when known).
DESCRIPTOR_ROWS = [
    "tempo_bpm",
    "key",
    "loudness_db",
    "spectral_centroid_mean",
    "spectral_rolloff_mean",
    "spectral_bandwidth_mean",
    "zcr_mean",
    "rms_mean",
    "duration_s",
]

_PITCHES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


@dataclasses.dataclass
class _Track:
    """One side of a comparison, resolved."""

    label: str
    name: str
    track_id: int | None
    path: str | None
    probs: pd.Series  # tag -> p, model order
    embedding: np.ndarray
    descriptors: dict


@dataclasses.dataclass
class Explanation:
    """Why two tracks are close or different.

    Attributes
    ----------
    a, b : str
        The two tracks as named in the sentence's numbers (title or file name).
    sentence : str
        One short sentence, e.g. ``"Both are tagged electronic (0.62 / 0.55)
        and dance (0.41 / 0.38), at a similar tempo (128 vs 126 BPM); B is
        much quieter (-18 vs -9 LUFS) and in a minor key."``
    score : float
        Cosine similarity of the two CNN embeddings (the ``'embedding'``
        space of :meth:`Recommender.similar`; 1 = same direction).
    shared_tags : list of (tag, pa, pb)
        Tags both tracks have at a similar level, strongest (by
        ``min(pa, pb)``) first (at most 5).
    different_tags : list of (tag, pa, pb)
        Tags one track has at least twice as much as the other, largest gap
        first (at most 5).  No tag is in both lists.
    descriptor_diffs : pandas.DataFrame
        Columns ``descriptor, a, b, difference, comment``: the descriptors
        in :data:`DESCRIPTOR_ROWS` both tracks have; ``difference`` is
        ``b - a`` (NaN for ``key``), ``comment`` the reading of the numbers
        (``"B much quieter"``, ``"similar"``, ...).
    a_id, b_id : int or None
        Track ids when the tracks are in the index.
    """

    a: str
    b: str
    sentence: str
    score: float
    shared_tags: list
    different_tags: list
    descriptor_diffs: pd.DataFrame
    a_id: int | None = None
    b_id: int | None = None

    def __str__(self):
        return self.sentence

    def to_json(self) -> dict:
        """Plain JSON-serialisable dict (NaN becomes ``None``)."""

        def num(v):
            if v is None:
                return None
            if isinstance(v, (float, np.floating)):
                return None if math.isnan(v) else round(float(v), 6)
            if isinstance(v, np.integer):
                return int(v)
            return v

        return {
            "a": self.a,
            "b": self.b,
            "a_id": self.a_id,
            "b_id": self.b_id,
            "sentence": self.sentence,
            "score": num(self.score),
            "shared_tags": [{"tag": t, "a": num(pa), "b": num(pb)} for t, pa, pb in self.shared_tags],
            "different_tags": [{"tag": t, "a": num(pa), "b": num(pb)} for t, pa, pb in self.different_tags],
            "descriptors": [
                {k: num(v) for k, v in r.items()} for r in self.descriptor_diffs.to_dict(orient="records")
            ],
        }


# --------------------------------------------------------------------------
# resolving the two sides


def _tag_names(rec) -> list[str]:
    if rec.exists():
        tags = rec.catalog.get_meta("tags")
        if tags is not None:
            return list(tags)
    return list(rec.model.tags)


def _tag_series(values, tags: list) -> pd.Series:
    """Tag probabilities as a Series; empty for an index without tags (built with a regressor,
    whose outputs are descriptors, not tags)."""
    if not tags:
        return pd.Series(dtype="float64")
    return pd.Series(values, index=tags, dtype="float64")


def _display_name(row: dict | None, path: str | None, fallback: str) -> str:
    if row and row.get("title"):
        artist = row.get("artist")
        return f"{artist} - {row['title']}" if artist else str(row["title"])
    if path:
        return os.path.basename(path)
    return fallback


def _resolve(rec, x, label: str) -> _Track:
    if isinstance(x, _Track):
        return dataclasses.replace(x, label=label)
    from ..analysis.pipeline import TrackAnalysis

    if isinstance(x, TrackAnalysis):
        tags = _tag_names(rec)
        return _Track(label, _display_name(None, x.path, label), None, x.path,
                      _tag_series(x.probs, tags),
                      np.asarray(x.embedding, dtype=np.float32), dict(x.descriptors or {}))
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer, str, bytes, os.PathLike)):
        raise ParameterError(f"{label}={x!r}: expected a track id, an indexed path or an audio file")
    tid = None
    if rec.exists():
        tid = rec.resolve(x)
    if tid is not None:
        cat = rec.catalog
        tags = _tag_names(rec)
        row = cat.track(tid)
        _, T = cat.vectors("tags", ids=[tid])
        _, E = cat.vectors("embedding", ids=[tid])
        d = cat.descriptors(ids=[tid])
        desc = {} if len(d) == 0 else {k: _py(v) for k, v in d.iloc[0].items()}
        return _Track(label, _display_name(row, row.get("path"), label), tid, row.get("path"),
                      _tag_series(T[0], tags), E[0], desc)
    if isinstance(x, (int, np.integer)):
        raise NotInIndexError(f"track id {x} is not in the index {rec.index_dir}")
    p = os.path.abspath(os.path.expanduser(os.fsdecode(x)))
    if not os.path.exists(p):
        raise NotInIndexError(f"{os.fspath(x)!r} is neither an indexed track (id or path) nor an existing file")
    res = rec.analyse(p, descriptors=True)
    tags = _tag_names(rec)
    return _Track(label, os.path.basename(p), None, p,
                  _tag_series(res.probs, tags),
                  np.asarray(res.embedding, dtype=np.float32), dict(res.descriptors or {}))


def _py(v):
    if isinstance(v, np.generic):
        v = v.item()
    if v is pd.NA:
        return None
    return v


# --------------------------------------------------------------------------
# comparisons


def _cosine(u, v) -> float:
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return float("nan")
    return float(u @ v / (nu * nv))


def _tag_comparison(pa: pd.Series, pb: pd.Series):
    common = [t for t in pa.index if t in pb.index]
    a = pa[common].astype("float64").fillna(0.0)
    b = pb[common].astype("float64").fillna(0.0)
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    gap = (a - b).abs()
    differs = (hi >= DIFFERENT_MIN_P) & (gap >= DIFFERENT_MIN_DELTA) & (hi >= DIFFERENT_MIN_RATIO * lo)
    shared = [(str(t), float(a[t]), float(b[t])) for t in lo.sort_values(ascending=False, kind="stable").index
              if lo[t] >= SHARED_MIN_P and not differs[t]][:MAX_TAGS]
    diff = [(str(t), float(a[t]), float(b[t])) for t in gap.sort_values(ascending=False, kind="stable").index
            if differs[t]][:MAX_TAGS]
    return shared, diff


def _num(d: dict, k: str):
    v = d.get(k)
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _key_name(d: dict) -> str | None:
    k, m = d.get("key"), d.get("mode")
    if not k:
        return None
    return f"{k} {m}" if m else str(k)


def _relative(ka, ma, kb, mb) -> bool:
    if ka not in _PITCHES or kb not in _PITCHES or {ma, mb} != {"major", "minor"}:
        return False
    major, minor = (ka, kb) if ma == "major" else (kb, ka)
    return (_PITCHES.index(major) - _PITCHES.index(minor)) % 12 == 3


class _Reading:
    """Per-descriptor reading: table rows, similar clauses, different clauses."""

    def __init__(self, la: str, lb: str):
        self.la, self.lb = la, lb
        self.rows: list[dict] = []
        self.similar: list[str] = []
        self.different: list[str] = []  # clauses with subject B

    def row(self, name, a, b, comment, difference=None):
        if difference is None and isinstance(a, (int, float)) and isinstance(b, (int, float)):
            difference = b - a
        self.rows.append({"descriptor": name, "a": a, "b": b,
                          "difference": float("nan") if difference is None else float(difference),
                          "comment": comment})


def _read_tempo(r: _Reading, da: dict, db: dict):
    ta, tb = _num(da, "tempo_bpm"), _num(db, "tempo_bpm")
    if ta is None or tb is None or ta <= 0 or tb <= 0:
        return
    ca, cb = _num(da, "tempo_confidence"), _num(db, "tempo_confidence")
    sure = (ca is None or ca >= TEMPO_MIN_CONFIDENCE) and (cb is None or cb >= TEMPO_MIN_CONFIDENCE)
    ratio = max(ta, tb) / min(ta, tb)
    faster = tb > ta
    nums = f"{tb:.0f} vs {ta:.0f} BPM"
    if not sure:
        r.row("tempo_bpm", ta, tb, "uncertain (low tempo confidence)")
        return
    if ratio <= TEMPO_SIMILAR_RATIO:
        r.row("tempo_bpm", ta, tb, "similar")
        r.similar.append(f"at a similar tempo ({ta:.0f} vs {tb:.0f} BPM)")
    elif abs(ratio - 2.0) <= TEMPO_DOUBLE_TOLERANCE * 2.0:
        word = "twice as fast" if faster else "half as fast"
        r.row("tempo_bpm", ta, tb, f"{r.lb} {word}")
        r.different.append(f"{word} ({nums})")
    elif ratio >= TEMPO_DIFFERENT_RATIO:
        word = ("much " if ratio >= TEMPO_MUCH_RATIO else "") + ("faster" if faster else "slower")
        r.row("tempo_bpm", ta, tb, f"{r.lb} {word}")
        r.different.append(f"{word} ({nums})")
    else:
        r.row("tempo_bpm", ta, tb, "slightly " + ("faster" if faster else "slower"))


def _read_key(r: _Reading, da: dict, db: dict):
    na, nb = _key_name(da), _key_name(db)
    if na is None or nb is None:
        return
    ca, cb = _num(da, "key_confidence"), _num(db, "key_confidence")
    sure = (ca is None or ca >= KEY_MIN_CONFIDENCE) and (cb is None or cb >= KEY_MIN_CONFIDENCE)
    ka, ma, kb, mb = da.get("key"), da.get("mode"), db.get("key"), db.get("mode")
    if not sure:
        r.row("key", na, nb, "uncertain (low key confidence)")
    elif na == nb:
        r.row("key", na, nb, "same key")
        r.similar.append(f"in the same key ({na})")
    elif _relative(ka, ma, kb, mb):
        r.row("key", na, nb, "relative keys")
        r.similar.append(f"in relative keys ({na} / {nb})")
    elif ma and mb and ma != mb:
        r.row("key", na, nb, f"{r.lb} in {mb}")
        r.different.append(f"in a {mb} key")
    else:
        r.row("key", na, nb, "different key")


def _read_loudness(r: _Reading, da: dict, db: dict):
    la, lb = _num(da, "loudness_db"), _num(db, "loudness_db")
    if la is None or lb is None:
        return
    d = lb - la
    nums = f"{lb:.0f} vs {la:.0f} LUFS"
    if abs(d) <= LOUDNESS_SIMILAR_LU:
        r.row("loudness_db", la, lb, "similar")
        r.similar.append(f"equally loud ({la:.0f} vs {lb:.0f} LUFS)")
    elif abs(d) >= LOUDNESS_DIFFERENT_LU:
        word = ("much " if abs(d) >= LOUDNESS_MUCH_LU else "") + ("louder" if d > 0 else "quieter")
        r.row("loudness_db", la, lb, f"{r.lb} {word}")
        r.different.append(f"{word} ({nums})")
    else:
        r.row("loudness_db", la, lb, "slightly " + ("louder" if d > 0 else "quieter"))


def _read_brightness(r: _Reading, da: dict, db: dict):
    ca, cb = _num(da, "spectral_centroid_mean"), _num(db, "spectral_centroid_mean")
    if ca is None or cb is None or ca <= 0 or cb <= 0:
        return
    ratio = max(ca, cb) / min(ca, cb)
    brighter = cb > ca
    if ratio >= BRIGHTNESS_DIFFERENT_RATIO:
        word = ("much " if ratio >= BRIGHTNESS_MUCH_RATIO else "") + ("brighter" if brighter else "darker")
        r.row("spectral_centroid_mean", ca, cb, f"{r.lb} {word}")
        r.different.append(f"{word} (spectral centroid {cb / 1000:.1f} vs {ca / 1000:.1f} kHz)")
    else:
        r.row("spectral_centroid_mean", ca, cb, "similar" if ratio < 1.15 else
              "slightly " + ("brighter" if brighter else "darker"))


def _read_plain(r: _Reading, da: dict, db: dict, name: str):
    a, b = _num(da, name), _num(db, name)
    if a is None or b is None:
        return
    r.row(name, a, b, "")


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _fmt_p(p: float) -> str:
    return f"{p:.2f}"


def _sentence(ta: _Track, tb: _Track, shared, different, reading: _Reading) -> str:
    from ..analysis.profiles import tag_label

    first = []
    if shared:
        tags = [f"{tag_label(t)} ({_fmt_p(pa)} / {_fmt_p(pb)})" for t, pa, pb in shared[:SENTENCE_TAGS]]
        first.append("both are tagged " + " and ".join(tags))
    first += reading.similar[:2]
    if not shared:
        lead = "they share no strong tags"
        first = [lead + (", but are " + _join(reading.similar[:2]) if reading.similar else "")]
        head = first[0]
    else:
        head = first[0] + (", " + _join(first[1:]) if len(first) > 1 else "")

    clauses = []
    b_parts = list(reading.different[:3])
    a_more, b_more = [], []
    for t, pa, pb in different[:SENTENCE_TAGS]:
        (b_more if pb > pa else a_more).append((t, pa, pb))
    for t, pa, pb in b_more:
        b_parts.append(f"more {tag_label(t)} ({_fmt_p(pb)} vs {_fmt_p(pa)})")
    if b_parts:
        clauses.append(f"{tb.label} is " + _join(b_parts))
    if a_more:
        clauses.append(f"{ta.label} is " + _join([f"more {tag_label(t)} ({_fmt_p(pa)} vs {_fmt_p(pb)})"
                                                   for t, pa, pb in a_more]))
    if not clauses:
        clauses.append("no marked differences in tags, tempo, key or loudness")
    s = head + "; " + "; ".join(clauses) + "."
    return s[0].upper() + s[1:]


def _compare(ta: _Track, tb: _Track) -> Explanation:
    shared, different = _tag_comparison(ta.probs, tb.probs)
    reading = _Reading(ta.label, tb.label)
    da, db = ta.descriptors or {}, tb.descriptors or {}
    # order of the clauses in the sentence: loudness, tempo, key, brightness
    _read_loudness(reading, da, db)
    _read_tempo(reading, da, db)
    _read_key(reading, da, db)
    _read_brightness(reading, da, db)
    for name in DESCRIPTOR_ROWS:
        if name not in ("tempo_bpm", "key", "loudness_db", "spectral_centroid_mean"):
            _read_plain(reading, da, db, name)
    order = {n: i for i, n in enumerate(DESCRIPTOR_ROWS)}
    rows = sorted(reading.rows, key=lambda r: order.get(r["descriptor"], 99))
    table = pd.DataFrame(rows, columns=["descriptor", "a", "b", "difference", "comment"])
    return Explanation(
        a=ta.name,
        b=tb.name,
        sentence=_sentence(ta, tb, shared, different, reading),
        score=_cosine(ta.embedding, tb.embedding),
        shared_tags=shared,
        different_tags=different,
        descriptor_diffs=table,
        a_id=ta.track_id,
        b_id=tb.track_id,
    )


def explain(rec, a, b, *, labels=("A", "B")) -> Explanation:
    """Explain what makes two tracks close or different.

    Parameters
    ----------
    rec : Recommender
        The index the tracks come from (and whose model analyses files that
        are not in it; the index may not exist yet when both are files).
    a, b : int, path-like or TrackAnalysis
        Track ids, paths of indexed files, or any audio files (analysed on
        the fly with descriptors, a few seconds each).
    labels : (str, str)
        How the sentence names the two tracks.

    Returns
    -------
    Explanation

    Raises
    ------
    NotInIndexError
        ``a`` or ``b`` is neither in the index nor an existing file.
    AudioError
        A file cannot be decoded.

    Examples
    --------
    >>> rec = Recommender("indexes/mine")                        # doctest: +SKIP
    >>> e = explain(rec, 12, "new_song.mp3")                     # doctest: +SKIP
    >>> print(e.sentence)                                        # doctest: +SKIP
    Both are tagged electronic (0.62 / 0.55) and dance (0.41 / 0.38), at a similar tempo (128 vs 126 BPM); B is much quieter (-18 vs -9 LUFS) and in a minor key.
    >>> e.descriptor_diffs                                       # doctest: +SKIP
    """
    if not (isinstance(labels, (tuple, list)) and len(labels) == 2 and all(isinstance(x, str) and x for x in labels)):
        raise ParameterError(f"labels={labels!r}: must be two non-empty strings")
    ta = _resolve(rec, a, labels[0])
    tb = _resolve(rec, b, labels[1])
    if list(ta.probs.index) != list(tb.probs.index):
        raise ParameterError("a, b: tag probabilities come from different models")
    return _compare(ta, tb)


def explain_results(rec, query, results_df: pd.DataFrame, *, labels=("the query", "this one")) -> list[str]:
    """One explanation sentence per row of :meth:`Recommender.similar`.

    Parameters
    ----------
    rec : Recommender
    query : int, path-like or TrackAnalysis
        The query given to ``similar`` (a file outside the index is analysed
        once, not once per row).
    results_df : pandas.DataFrame
        ``similar``'s result: uses its ``id`` column (or ``path``).
    labels : (str, str)
        Names of the query and of the result in the sentences.

    Returns
    -------
    list of str
        In the row order of ``results_df``.

    Examples
    --------
    >>> df = rec.similar(12, k=5)                               # doctest: +SKIP
    >>> df["why"] = explain_results(rec, 12, df)                # doctest: +SKIP
    """
    if not isinstance(results_df, pd.DataFrame):
        raise ParameterError("results_df: expected the DataFrame returned by Recommender.similar")
    if "id" in results_df.columns:
        refs = [int(i) for i in results_df["id"]]
    elif "path" in results_df.columns:
        refs = list(results_df["path"])
    else:
        raise ParameterError("results_df: needs an 'id' or a 'path' column")
    tq = _resolve(rec, query, labels[0])
    return [explain(rec, tq, r, labels=labels).sentence for r in refs]
