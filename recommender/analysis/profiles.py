"""Readable genre / mood / instrument / era profiles from tag probabilities.

The pretrained taggers output flat tag lists (50 Last.fm tags for the MSD
model, 50 MagnaTagATune tags for the MTT model).  People read them better
grouped:

============  =================================================================
group         tags (MSD and MTT models; matched case-insensitively)
============  =================================================================
genre         rock, pop, electronic, jazz, metal, folk, hip-hop, house, techno,
              classical, ...
mood          mellow, chill, chillout, happy, sad, party, beautiful, sexy,
              catchy, easy listening, slow, fast, loud, quiet, soft, weird
instruments   guitar, acoustic, instrumental, female/male vocalists, piano,
              strings, drums, synth, no vocals, ...  (instruments and voice)
era           60s, 70s, 80s, 90s, 00s (any ``NNs``), oldies
other         any tag not listed (e.g. of a model trained on your labels)
============  =================================================================

:func:`tag_groups` does the grouping, :func:`profile` picks the strongest
tags of each group, :func:`profile_text` turns that into one line such as
``"electronic/dance, party mood, instrumental, 00s"``.

Over time, :func:`timeline` gives tags, tempo and loudness per segment of a
track and :func:`changes` lists where it turns (calm to loud, ambient to
electronic...).

Per-album and per-artist profiles (means over tracks) live with the
playlist tools; this module works on one probability vector.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .._utils import check_int, check_number
from ..errors import ParameterError

__all__ = [
    "GROUPS",
    "TEXT_MIN_P",
    "TEXT_RELATIVE",
    "tag_groups",
    "tag_group",
    "tag_label",
    "profile",
    "profile_text",
    "timeline",
    "changes",
    "TIMELINE_COLUMNS",
    "timeline_tags",
]

#: Group names, in the order profiles list them.
GROUPS = ("genre", "mood", "instruments", "era", "other")

_GENRE = {
    # MSD (Last.fm)
    "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
    "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock", "ambient",
    "experimental", "hip-hop", "country", "funk", "electro", "heavy metal", "progressive rock", "rnb",
    "indie pop", "house",
    # MTT (MagnaTagATune)
    "classical", "techno", "indian", "opera", "new age", "classic", "choral",
}
_MOOD = {
    "beautiful", "chillout", "mellow", "chill", "party", "easy listening", "sexy", "catchy", "sad", "happy",
    "slow", "fast", "loud", "quiet", "soft", "weird",
}
_INSTRUMENTS = {
    "female vocalists", "male vocalists", "instrumental", "acoustic", "female vocalist", "guitar",
    "strings", "drums", "piano", "beat", "violin", "vocal", "synth", "female", "male", "singing", "vocals",
    "no vocals", "harpsichord", "flute", "woman", "male vocal", "no vocal", "solo", "sitar", "man", "choir",
    "voice", "male voice", "female vocal", "beats", "harp", "cello", "no voice", "female voice",
}
_ERA = {"oldies"}
_ERA_RE = re.compile(r"^(\d{2}|\d{4})s$")  # 60s, 00s, 1980s

# How tags read in a sentence (lower case unless given here); synonyms share
# a label and count once in profile_text.
_LABELS = {
    "hip-hop": "hip-hop",
    "rnb": "R&B",
    "female vocalists": "female vocals",
    "female vocalist": "female vocals",
    "female vocal": "female vocals",
    "female voice": "female vocals",
    "female": "female vocals",
    "woman": "female vocals",
    "male vocalists": "male vocals",
    "male vocal": "male vocals",
    "male voice": "male vocals",
    "male": "male vocals",
    "man": "male vocals",
    "vocal": "vocals",
    "voice": "vocals",
    "singing": "vocals",
    "no vocals": "instrumental",
    "no vocal": "instrumental",
    "no voice": "instrumental",
    "beats": "beat",
    "chillout": "chill",
    "easy listening": "easy-listening",
    "classic": "classical",
}

#: :func:`profile_text` leaves out groups whose strongest tag is below this
#: probability (the MSD model rarely gives more than 0.6; 0.1 is already a
#: clear signal for most of its tags).
TEXT_MIN_P = 0.1
#: ... and, within a group, tags weaker than this share of the group's
#: strongest tag.
TEXT_RELATIVE = 0.5


def tag_group(tag: str) -> str:
    """Group of one tag: one of :data:`GROUPS` (``'other'`` if unknown)."""
    t = str(tag).strip().lower()
    if t in _GENRE:
        return "genre"
    if t in _MOOD:
        return "mood"
    if t in _INSTRUMENTS:
        return "instruments"
    if t in _ERA or _ERA_RE.match(t):
        return "era"
    return "other"


def tag_label(tag: str) -> str:
    """How a tag reads in text: ``'female vocalists'`` -> ``'female vocals'``, ``'Mellow'`` -> ``'mellow'``."""
    t = str(tag).strip()
    return _LABELS.get(t.lower(), t.lower())


def tag_groups(tags) -> dict[str, list[str]]:
    """Sort tag names into :data:`GROUPS`.

    Parameters
    ----------
    tags : iterable of str
        Tag names of any model (order is kept within each group).

    Returns
    -------
    dict
        ``{group: [tag, ...]}`` for the groups that received at least one
        tag, in :data:`GROUPS` order.  Tags the table does not know go to
        ``'other'``.

    Examples
    --------
    >>> tag_groups(["rock", "Mellow", "guitar", "80s", "kazoo"])
    {'genre': ['rock'], 'mood': ['Mellow'], 'instruments': ['guitar'], 'era': ['80s'], 'other': ['kazoo']}
    """
    if isinstance(tags, str):
        raise ParameterError(f"tags={tags!r}: must be an iterable of tag names, not one string")
    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    for t in tags:
        out[tag_group(t)].append(t)
    return {g: v for g, v in out.items() if v}


def _as_series(probs) -> pd.Series:
    if isinstance(probs, pd.Series):
        s = probs
    elif isinstance(probs, dict):
        s = pd.Series(probs, dtype="float64")
    else:
        raise ParameterError(
            f"probs: expected a pandas Series (or dict) of tag -> probability, got {type(probs).__name__}"
        )
    s = pd.to_numeric(s, errors="coerce").astype("float64")
    if s.index.has_duplicates:
        raise ParameterError("probs: tag names must be unique")
    return s


def profile(probs, *, top: int = 3, min_p: float = 0.0) -> dict[str, list[tuple[str, float]]]:
    """The strongest tags of each group.

    Parameters
    ----------
    probs : pandas.Series or dict
        Tag probabilities (index = tag names), e.g. ``Classification.tags``.
    top : int
        Tags kept per group.
    min_p : float
        Drop tags below this probability (groups left empty are dropped).

    Returns
    -------
    dict
        ``{group: [(tag, p), ...]}``, groups in :data:`GROUPS` order, tags
        from the most likely; ``p`` are Python floats.  NaN probabilities are
        ignored.

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.Series({"rock": 0.6, "pop": 0.2, "Mellow": 0.3, "sad": 0.1, "guitar": 0.5, "80s": 0.25})
    >>> profile(p, top=1)
    {'genre': [('rock', 0.6)], 'mood': [('Mellow', 0.3)], 'instruments': [('guitar', 0.5)], 'era': [('80s', 0.25)]}
    """
    check_int("top", top, min=1)
    s = _as_series(probs).dropna()
    out = {}
    for g, tags in tag_groups(list(s.index)).items():
        gs = s[tags]
        gs = gs[gs >= min_p].sort_values(ascending=False, kind="stable").iloc[:top]
        if len(gs):
            out[g] = [(str(t), float(p)) for t, p in gs.items()]
    return out


def _group_phrase(group: str, labels: list[str]) -> str:
    text = "/".join(labels)
    if group == "mood":
        return f"{text} mood"
    return text


def profile_text(probs, *, min_p: float = TEXT_MIN_P, relative: float = TEXT_RELATIVE, max_per_group: int = 2) -> str:
    """One readable line: ``"electronic/dance, party mood, instrumental, 00s"``.

    For each group (genre, mood, instruments, era, other, in that order) the
    strongest tag is named if its probability reaches ``min_p``; up to
    ``max_per_group`` tags are named, each at least ``relative`` times the
    group's strongest.  Synonyms (``female vocalists`` / ``female vocalist``)
    count once.

    Parameters
    ----------
    probs : pandas.Series, dict, or a :func:`profile` result
    min_p : float
        See :data:`TEXT_MIN_P`.
    relative : float
        See :data:`TEXT_RELATIVE`.
    max_per_group : int

    Returns
    -------
    str
        ``"no clear tags"`` when no group reaches ``min_p``.

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.Series({"electronic": 0.6, "dance": 0.4, "rock": 0.05, "party": 0.2,
    ...                "instrumental": 0.3, "00s": 0.15, "90s": 0.02})
    >>> profile_text(p)
    'electronic/dance, party mood, instrumental, 00s'
    """
    if isinstance(probs, dict) and probs and all(k in GROUPS for k in probs) and all(
        isinstance(v, list) for v in probs.values()
    ):
        grouped = probs
    else:
        grouped = profile(probs, top=10)
    parts = []
    for g in GROUPS:
        items = grouped.get(g) or []
        if not items or items[0][1] < min_p:
            continue
        best = items[0][1]
        labels: list[str] = []
        for t, p in items:
            if p < min_p or p < relative * best:
                break
            lab = tag_label(t)
            if lab not in labels:
                labels.append(lab)
            if len(labels) >= max_per_group:
                break
        parts.append(_group_phrase(g, labels))
    return ", ".join(parts) if parts else "no clear tags"


# --------------------------------------------------------------------------
# timelines

#: Summary columns of :func:`timeline` (the tag columns follow).
TIMELINE_COLUMNS = [
    "start_s", "end_s", "tempo_bpm", "tempo_confidence", "loudness_db", "rms_db",
    "genre", "mood", "instruments",
]
_TEXT_GROUPS = ("genre", "mood", "instruments")


def timeline(source, *, sr=None, segment_s: float = 6.0, model=None, classification=None) -> pd.DataFrame:
    """Tags, tempo and loudness per segment of a track.

    The track is cut into consecutive segments of ``segment_s`` seconds (the
    grid of :func:`recommender.descriptors.tempo_timeline`; a last segment
    shorter than half of ``segment_s`` is merged away).  For each segment:

    * tag probabilities: the mean of the network's 3-s patches whose centre
      falls in the segment (the nearest patch when none does, i.e. when
      ``segment_s`` < 3 s);
    * tempo and its confidence (:func:`~recommender.descriptors.tempo_timeline`);
    * loudness in LUFS (BS.1770, as ``loudness_db`` of the descriptors; NaN
      for silence) and RMS level in dB full scale;
    * the strongest tag of the genre, mood and instruments groups
      (:func:`tag_groups`; ``None`` when the model has no such tags or the
      strongest is below :data:`TEXT_MIN_P`).

    Parameters
    ----------
    source : path-like or np.ndarray
        An audio file, or a waveform ``(n_samples,)`` / ``(n_samples, n_channels)``.
    sr : int, optional
        Sample rate of a waveform (required for arrays, not allowed for files).
    segment_s : float
        Segment length in seconds.  6 s (two network patches) gives steady
        tags and a usable tempo; tempo needs at least 1.5 s.
    model : TagModel, str or None
        Tagging model (default: the shipped MSD musicnn).
    classification : Classification, optional
        Already computed :func:`recommender.classify` result of the *whole*
        track (``sampling='full'``) to reuse instead of running the network.

    Returns
    -------
    pandas.DataFrame
        One row per segment: :data:`TIMELINE_COLUMNS`, then one column per
        tag (model order).  ``df.attrs["tags"]`` lists the tag columns.

    Examples
    --------
    >>> tl = timeline("song.mp3")                          # doctest: +SKIP
    >>> tl[["start_s", "loudness_db", "genre", "mood"]]     # doctest: +SKIP
    >>> changes(tl)                                        # doctest: +SKIP
    """
    from .. import descriptors as d
    from ..features import frontend as features

    y, path = d.load_for_descriptors(source, sr)
    if y.size == 0:
        raise ParameterError("source: holds no audio samples")
    tt = d.tempo_timeline(y, sr=d.DESCRIPTOR_SR, segment_s=segment_s)
    if classification is None:
        from .tagging import classify

        classification = classify(y, sr=d.DESCRIPTOR_SR, model=model)
    ptl = classification.timeline
    tags = [str(t) for t in ptl.columns]
    P = ptl.to_numpy(dtype=np.float64)
    centres = np.asarray(ptl.index, dtype=np.float64) + features.PATCH_SECONDS / 2

    groups = tag_groups(tags)
    rows = []
    for r in tt.itertuples(index=False):
        a, b = int(round(r.start_s * d.DESCRIPTOR_SR)), int(round(r.end_s * d.DESCRIPTOR_SR))
        seg = y[a:b]
        loud = d.loudness_lufs(seg) if seg.size else float("nan")
        rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if seg.size else 0.0
        rms_db = 20.0 * np.log10(rms) if rms > 0 else float("-inf")
        inside = (centres >= r.start_s) & (centres < r.end_s)
        if not inside.any() and len(centres):
            inside = np.zeros(len(centres), dtype=bool)
            inside[int(np.argmin(np.abs(centres - (r.start_s + r.end_s) / 2)))] = True
        p = P[inside].mean(axis=0) if inside.any() else np.full(len(tags), np.nan)
        row = {
            "start_s": float(r.start_s),
            "end_s": float(r.end_s),
            "tempo_bpm": float(r.tempo_bpm),
            "tempo_confidence": float(r.confidence),
            "loudness_db": float(loud),
            "rms_db": float(rms_db),
        }
        ps = dict(zip(tags, p))
        for g in _TEXT_GROUPS:
            members = groups.get(g)
            lead = max(members, key=lambda t: ps[t]) if members and not np.isnan(p).all() else None
            row[g] = lead if lead is not None and ps[lead] >= TEXT_MIN_P else None
        row.update(ps)
        rows.append(row)
    df = pd.DataFrame(rows, columns=TIMELINE_COLUMNS + tags)
    df.attrs["tags"] = tags
    if path is not None:
        df.attrs["path"] = path
    return df


def timeline_tags(df: pd.DataFrame) -> list[str]:
    """The tag columns of a :func:`timeline` result, in model order.

    ``df.attrs["tags"]`` (those still present) when set, else every column
    that is not one of :data:`TIMELINE_COLUMNS`.
    """
    tags = df.attrs.get("tags")
    if tags:
        return [t for t in tags if t in df.columns]
    return [c for c in df.columns if c not in TIMELINE_COLUMNS]


#: The former private name of :func:`timeline_tags` (``viz.plots`` still imports it).
_timeline_tags = timeline_tags


#: Default thresholds of :func:`changes`.
CHANGE_LOUDNESS_LU = 6.0
CHANGE_TEMPO_RATIO = 1.15
CHANGE_TEMPO_MIN_CONFIDENCE = 0.3
CHANGE_TAG_MARGIN = 0.05
CHANGE_TAG_MIN_P = 0.1


def changes(
    timeline_df: pd.DataFrame,
    *,
    loudness_lu: float = CHANGE_LOUDNESS_LU,
    tempo_ratio: float = CHANGE_TEMPO_RATIO,
    tag_margin: float = CHANGE_TAG_MARGIN,
    min_p: float = CHANGE_TAG_MIN_P,
) -> pd.DataFrame:
    """Points where a track turns: loudness, tempo, leading genre / mood / instruments.

    Consecutive segments of :func:`timeline` are compared:

    * **loudness** changes by at least ``loudness_lu`` LU (6 LU: clearly
      louder, about a doubling of perceived loudness is 10);  a segment that
      is silent (NaN loudness) against a sounding one counts too;
    * **tempo** changes by a ratio of at least ``tempo_ratio`` where both
      segments have a tempo confidence of at least 0.3;
    * the **leading tag of a group** (genre, mood, instruments) changes,
      and decisively: the new leader reaches ``min_p`` and beats the old
      one by ``tag_margin`` after the change, the old one beat it by
      ``tag_margin`` before.

    Parameters
    ----------
    timeline_df : pandas.DataFrame
        A :func:`timeline` result.
    loudness_lu, tempo_ratio, tag_margin, min_p : float
        Thresholds (see above).

    Returns
    -------
    pandas.DataFrame
        Columns ``time_s`` (start of the segment after the change), ``kind``
        (``'loudness'``, ``'tempo'``, ``'genre'``, ``'mood'``,
        ``'instruments'``), ``before``, ``after`` (numbers for loudness and
        tempo, tag names otherwise) and ``description`` (a readable phrase).
        Sorted by time; empty when nothing changes markedly.
    """
    cols = ["time_s", "kind", "before", "after", "description"]
    for name, v in (("loudness_lu", loudness_lu), ("tag_margin", tag_margin), ("min_p", min_p)):
        check_number(name, v, min=0)
    check_number("tempo_ratio", tempo_ratio, min=1, min_inclusive=False)
    if not isinstance(timeline_df, pd.DataFrame) or "start_s" not in timeline_df.columns:
        raise ParameterError("timeline_df: expected a DataFrame from recommender.profiles.timeline()")
    tags = timeline_tags(timeline_df)
    groups = {g: ts for g, ts in tag_groups(tags).items() if g in _TEXT_GROUPS}
    out = []
    rows = timeline_df.to_dict(orient="records")
    for prev, cur in zip(rows, rows[1:]):
        t = float(cur["start_s"])
        la, lb = prev.get("loudness_db"), cur.get("loudness_db")
        if la is not None and lb is not None:
            na, nb = np.isnan(la), np.isnan(lb)
            if na != nb:
                out.append({"time_s": t, "kind": "loudness", "before": la, "after": lb,
                            "description": "sound starts" if na else "goes silent"})
            elif not na and abs(lb - la) >= loudness_lu:
                word = "gets louder" if lb > la else "gets quieter"
                out.append({"time_s": t, "kind": "loudness", "before": la, "after": lb,
                            "description": f"{word} ({la:.0f} \u2192 {lb:.0f} LUFS)"})
        ta, tb = prev.get("tempo_bpm"), cur.get("tempo_bpm")
        if (
            ta is not None and tb is not None and np.isfinite(ta) and np.isfinite(tb)
            and min(prev.get("tempo_confidence", 0.0), cur.get("tempo_confidence", 0.0)) >= CHANGE_TEMPO_MIN_CONFIDENCE
            and max(ta, tb) / min(ta, tb) >= tempo_ratio
        ):
            word = "speeds up" if tb > ta else "slows down"
            out.append({"time_s": t, "kind": "tempo", "before": ta, "after": tb,
                        "description": f"{word} ({ta:.0f} \u2192 {tb:.0f} BPM)"})
        for g, members in groups.items():
            pa = {m: prev[m] for m in members}
            pb = {m: cur[m] for m in members}
            if any(np.isnan(v) for v in list(pa.values()) + list(pb.values())):
                continue
            old = max(members, key=pa.get)
            new = max(members, key=pb.get)
            if old == new:
                continue
            if pb[new] >= min_p and pb[new] - pb[old] >= tag_margin and pa[old] - pa[new] >= tag_margin:
                what = {"genre": "genre", "mood": "mood", "instruments": "sound"}[g]
                out.append({"time_s": t, "kind": g, "before": old, "after": new,
                            "description": f"{what} turns from {tag_label(old)} to {tag_label(new)} "
                                           f"({pa[old]:.2f} \u2192 {pb[new]:.2f})"})
    df = pd.DataFrame(out, columns=cols)
    if len(df):
        df = df.sort_values("time_s", kind="stable").reset_index(drop=True)
    return df
