"""One query of :meth:`recommender.Recommender.similar`, step by step.

::

    resolve_query(rec, query, space)  -> Query(vector, track_id, tags, content_hash, meta)
    candidates(rec, index, q, fetch)  -> (scores, ids) of the nearest tracks (+ hubness re-ranking)
    Candidates.read(catalog, ids)     -> their rows, tag vectors and descriptors: one read each
    apply_filters(q, cands, filters)  -> result rows, at most k
    to_frame(rows, descriptors)       -> the DataFrame ``similar`` returns

:func:`similar` runs them, fetching more candidates while filters leave fewer
than ``k`` results.  The steps use only public methods of the facade
(``resolve``, ``vector``, ``analyse``, ``similarity_normalizer``,
``faiss_index``, ``catalog``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._utils import PITCH_CLASSES, unit_rows
from ..errors import NotInIndexError, ParameterError
from ..io import collection
from ..store.spaces import SPACES, both
from . import view
from .recordings import SameRecording
from .where import check_columns, parse_order, parse_where, passes

__all__ = [
    "Query",
    "Filters",
    "Candidates",
    "parse_key",
    "resolve_query",
    "candidates",
    "apply_filters",
    "to_frame",
    "similar",
    "similar_columns",
    "to_columns",
    "sort_results",
    "where_columns",
    "RESULT_COLUMNS",
]

#: Columns of every result frame (``rank`` first; ``tempo_bpm, key, mode`` and ``why`` may follow).
RESULT_COLUMNS = ["id", "path", "artist", "title", "album", "score", "shared_tags"]

_FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#"}
_MODES = {"major": "major", "maj": "major", "minor": "minor", "min": "minor"}


class Query(NamedTuple):
    """What a query is, in the searched space.

    Attributes
    ----------
    vector : np.ndarray, float32, (d,)
        The query vector in the space (not necessarily unit length).
    track_id : int or None
        The query's track id when it is indexed.
    tags : np.ndarray, float32, (n_tags,) or None
        Its tag probabilities (``None`` for a vector query).
    content_hash : str or None
        Its content hash: results with the same hash (duplicates) are dropped.
    meta : dict
        Its catalog row (from a track table: its :attr:`~recommender.recommend.view.TrackTable.COLUMNS`)
        or the tags read from the file (``artist``, ``album`` ...).
    recording : SameRecording or None
        Tells which candidates are the query's own recording (another copy,
        encoding or trim: :mod:`recommender.recommend.recordings`); they are
        dropped.  ``None`` for a vector query.
    """

    vector: np.ndarray
    track_id: int | None
    tags: np.ndarray | None
    content_hash: str | None
    meta: dict
    recording: SameRecording | None = None


@dataclasses.dataclass(frozen=True)
class Filters:
    """Which candidates a query keeps (see :meth:`recommender.Recommender.similar`).

    ``tag_column`` is the tag's column in the tag vectors; ``key`` the
    ``(pitch class, mode or None)`` of :func:`parse_key`; ``excluded`` the
    track ids no result may be (exclusions and bans:
    :func:`recommender.recommend.exclusions.excluded_ids`); ``where`` the
    conditions of :func:`recommender.recommend.where.parse_where` on the
    stored descriptors (and a trained regressor's values); ``tag_threshold``
    a multi-label model's threshold for ``tag_column`` (then a track has the
    tag when its probability reaches it, instead of "among its top 5").
    """

    exclude_same_artist: bool = False
    exclude_same_album: bool = False
    max_per_artist: int | None = None
    tag_column: int | None = None
    tempo_range: tuple | None = None
    key: tuple | None = None
    min_loudness_db: float | None = None
    excluded: frozenset = frozenset()
    where: tuple = ()
    tag_threshold: float | None = None

    @property
    def on_descriptors(self) -> bool:
        """Whether a candidate needs stored descriptors to pass."""
        return (self.tempo_range is not None or self.key is not None or self.min_loudness_db is not None
                or bool(self.where))


class Candidates(NamedTuple):
    """Nearest tracks of one search and what the filters need of them (one read each).

    ``ids`` int (n,) in search order; ``scores`` ``{id: cosine}``; ``rows``
    ``{id: catalog row}``; ``tags`` ``{id: tag vector}``; ``descriptors``
    the stored descriptors of the candidates (indexed by track id).
    """

    ids: list
    scores: dict
    rows: dict
    tags: dict
    descriptors: pd.DataFrame

    @classmethod
    def read(cls, catalog, scores, ids, *, table=None) -> "Candidates":
        """Read rows, tag vectors and descriptors of the hits ``ids`` (1, n) / ``scores`` (1, n).

        With ``table`` (:class:`recommender.recommend.view.TrackTable` of the catalog's
        generation) holding every hit, they are looked up there instead (the same values;
        rows hold ``id`` and the table's columns; ``descriptors`` is the table's, of every
        track, without JSON extras).
        """
        idl, sl = ids[0].tolist(), scores[0].tolist()  # Python ints and floats (tolist: one call each)
        if idl and min(idl) >= 0:  # no -1 padding (FAISS found fewer than asked): the usual case
            cand, score_of = idl, dict(zip(idl, sl))
        else:
            cand = [i for i in idl if i >= 0]
            score_of = {i: s for s, i in zip(sl, idl) if i >= 0}
        if table is not None and all(map(table.row_of.__contains__, cand)):
            return cls(cand, score_of, table.rows(cand), table.tag_vectors(cand), table.descriptors)
        rows = catalog.track_rows(cand)
        tids, TT = catalog.vectors("tags", ids=cand) if cand else (np.zeros(0, np.int64), None)
        tvec = {int(i): TT[j] for j, i in enumerate(tids)} if TT is not None else {}
        return cls(cand, score_of, rows, tvec, catalog.descriptors(ids=cand))


def parse_key(text) -> tuple:
    """``'A minor'`` → ``('A', 'minor')``; ``'c'`` → ``('C', None)``; ``'Bb'`` → ``('A#', None)``.

    Pitch classes are spelt as :data:`recommender._utils.PITCH_CLASSES`
    (sharps; flats are mapped to them, case is ignored); the mode is
    ``'major'``/``'minor'`` (or ``'maj'``/``'min'``, or an ``m`` suffix:
    ``'Am'``).

    Raises
    ------
    ParameterError
        ``"key='H minor': not a key (e.g. 'A', 'A minor', 'F# major')"``.
    """
    parts = text.split() if isinstance(text, str) else []
    pitch = mode = None
    if len(parts) in (1, 2):
        name = parts[0].upper().replace("♯", "#").replace("♭", "B")
        if len(parts) == 1 and len(name) >= 2 and name.endswith("M") and parts[0][-1] == "m":
            name, mode = name[:-1], "minor"
        pitch = _FLATS.get(name, name)
        if len(parts) == 2:
            mode = _MODES.get(parts[1].lower())
            if mode is None:
                pitch = None
    if pitch not in PITCH_CLASSES:
        raise ParameterError(f"key={text!r}: not a key (e.g. 'A', 'A minor', 'F# major')")
    return pitch, mode


def _narrowing(f: Filters) -> bool:
    """Whether ``f`` keeps out tracks for what they are (artist, album, tag, descriptors), not only by id."""
    return (f.exclude_same_artist or f.exclude_same_album or f.max_per_artist is not None
            or f.tag_column is not None or f.on_descriptors)


def _is_vector(query) -> bool:
    return isinstance(query, np.ndarray) or (
        isinstance(query, (list, tuple)) and bool(query) and isinstance(query[0], (float, np.floating))
    )


def resolve_query(rec, query, space, *, table=None) -> Query:
    """The :class:`Query` of ``query`` in ``space``: a vector, an indexed track
    (id or path) or any audio file (analysed with the index's model).  ``table``
    (:class:`~recommender.recommend.view.TrackTable`): where a track's tag vector is looked up.

    Raises
    ------
    NotInIndexError
        ``query`` is neither indexed nor an existing file.
    """
    if _is_vector(query):
        return Query(np.asarray(query, dtype=np.float32).ravel(), None, None, None, {})
    held = table is not None and isinstance(query, (int, np.integer)) and int(query) in table.row_of
    tid = int(query) if held else rec.resolve(query)
    cat = rec.catalog
    if tid is not None:
        row = table.row(tid) if held else cat.track(tid)  # the table's columns are what filters read
        tv = table.tag_vectors([tid]).get(tid) if table is not None and tid in table.row_of else None
        T = [tv] if tv is not None else cat.vectors("tags", ids=[tid])[1]
        # a held track is indexed: its similarity vector is read from the FAISS index without
        # looking the id up in the catalog again (what Recommender.vector does after resolving)
        v = rec.faiss_index(space).reconstruct(tid) if held and space == "similarity" else rec.vector(tid, space=space)
        return Query(v, tid, T[0], row.get("content_hash"), row,
                     SameRecording(rec, track_id=tid, content_hash=row.get("content_hash") or ""))
    p = os.path.abspath(os.path.expanduser(os.fspath(query)))
    if not os.path.exists(p):
        raise NotInIndexError(f"{query!r} is neither an indexed track (id or path) nor an existing file")
    res = rec.analyse(p)
    if space == "similarity":
        from ..features.pooling import l2_normalize, similarity_vectors

        norm = rec.similarity_normalizer()
        if res.layer_summary is not None and norm.n_features_in_ == len(res.layer_summary):
            v = l2_normalize(norm.transform(res.layer_summary[None]))[0]
        else:
            v = similarity_vectors([res.patch_embeddings], normalizer=norm)[0][0]
    elif space == "embedding":
        v = res.embedding
    elif space == "tags":
        v = res.probs
    else:
        v = both(res.embedding, res.probs)
    try:
        chash = collection.content_hash(p)
    except OSError:
        chash = None
    same = SameRecording(rec, path=p, content_hash=chash, embedding=res.embedding)
    return Query(v, None, res.probs, chash, collection.read_tags(p), same)


def candidates(rec, index, q: Query, fetch: int, *, space: str, hubness=None, lists=None):
    """The ``fetch`` nearest tracks of ``q`` in ``index``: ``(scores, ids)``, each (1, fetch).

    With ``hubness`` (``'mp'``/``'csls'``) the hits are re-ranked
    (:func:`recommender.recommend.hubness.rerank`); scores stay cosines.  ``lists``
    (:class:`~recommender.store.neighbours.NeighbourLists` of ``index``): an indexed
    query's hits are read there when it holds ``fetch`` of them (the same hits).
    """
    got = None
    if lists is not None and q.track_id is not None and lists.serves(index):
        got = lists.lookup(q.track_id, fetch)
    scores, ids = got if got is not None else index.search(unit_rows(q.vector[None]), fetch)
    if hubness is not None:
        from .hubness import rerank

        rids, _, rcos = rerank(rec, scores, ids, method=hubness, space=space,
                               query_id=q.track_id, query_vector=q.vector)
        scores, ids = rcos[None], rids[None]
    return scores, ids


def _passes_descriptors(desc, i, f: Filters) -> bool:
    if i not in desc.index:
        return False
    d = desc.loc[i]
    if f.tempo_range is not None and not (f.tempo_range[0] <= (d.get("tempo_bpm") or -1) <= f.tempo_range[1]):
        return False
    if f.key is not None:
        if d.get("key") != f.key[0] or (f.key[1] and d.get("mode") != f.key[1]):
            return False
    if f.min_loudness_db is not None and not ((d.get("loudness_db") or -1e9) >= f.min_loudness_db):
        return False
    return not f.where or passes(f.where, d)


def _has_tag(tv, column, threshold) -> bool:
    """A tag vector has tag ``column``: among its 5 strongest, or (multi-label model) >= its threshold."""
    if threshold is not None:
        return bool(tv[column] >= threshold)
    return column in np.argsort(tv)[::-1][:5]


def apply_filters(q: Query, cands: Candidates, filters: Filters, k: int, *, tag_names=()) -> list:
    """The first ``k`` candidates (in search order) that pass ``filters``, as result rows.

    The query itself, tracks with its content hash and other copies of its
    recording (``q.recording``: fingerprints, or for tracks without one an
    embedding cosine >= :data:`~recommender.recommend.recordings.DUPLICATE_COSINE`)
    never pass.  Each row holds :data:`RESULT_COLUMNS`; ``shared_tags`` names
    the 3 tags strongest in both (when the query has tags).
    """
    f = filters
    q_artist = (q.meta.get("artist") or "").casefold() if q.meta else ""
    q_album = (q.meta.get("album") or "").casefold() if q.meta else ""
    by_artist = f.exclude_same_artist or f.max_per_artist is not None  # else no name is compared
    rows: list = []
    per_artist: dict = {}
    own, judged = set(), 0
    for n, i in enumerate(cands.ids):
        if q.recording is not None and n >= judged:  # same recording? judged k + 8 candidates at a time
            chunk = cands.ids[n:n + k + 8]
            own |= q.recording.matches(chunk, hashes=_content_hashes(cands.rows, chunk))
            judged = n + len(chunk)
        if i == q.track_id or i in own or i in f.excluded:
            continue
        r = cands.rows[i]
        if q.content_hash and r.get("content_hash") == q.content_hash:
            continue
        artist = (r.get("artist") or "").casefold() if by_artist else ""
        if f.exclude_same_artist and q_artist and artist == q_artist:
            continue
        if f.exclude_same_album and q_album and (r.get("album") or "").casefold() == q_album:
            continue
        if f.max_per_artist is not None and artist and per_artist.get(artist, 0) >= f.max_per_artist:
            continue
        if f.tag_column is not None:
            tv = cands.tags.get(i)
            if tv is None or not _has_tag(tv, f.tag_column, f.tag_threshold):
                continue
        if f.on_descriptors and not _passes_descriptors(cands.descriptors, i, f):
            continue
        if artist:
            per_artist[artist] = per_artist.get(artist, 0) + 1
        rows.append({"id": i, "path": r.get("path"), "artist": r.get("artist"), "title": r.get("title"),
                     "album": r.get("album"), "score": cands.scores[i], "shared_tags": ""})
        if len(rows) == k:
            break
    tagged = [r for r in rows if r["id"] in cands.tags] if q.tags is not None and tag_names else []
    if tagged:  # one sort for all rows (row by row, as argsort of each row alone orders it)
        common = np.minimum(q.tags[None], np.stack([cands.tags[r["id"]] for r in tagged]))
        for r, top in zip(tagged, np.argsort(common, axis=1)[:, ::-1][:, :3].tolist()):
            r["shared_tags"] = ", ".join(tag_names[j] for j in top)
    return rows


def _content_hashes(rows, ids) -> dict:
    """``{id: content hash}`` of candidate ``ids`` (``rows`` of :class:`Candidates`; a track
    table's rows are read by column, without making their row dicts)."""
    table = getattr(rows, "table", None)
    return table.field(ids, "content_hash") if table is not None else {i: rows[i].get("content_hash") for i in ids}


def _ties_by_path(rows) -> list:
    """``rows`` with each run of exactly equal scores ordered by path (byte-identical copies
    score the same; FAISS would order them by track id, which depends on indexing order):
    the same collection gives the same answers whatever order it was indexed in."""
    pos = RESULT_COLUMNS.index("score")
    path = RESULT_COLUMNS.index("path")
    out, i = [], 0
    rows = list(rows)
    if len({_score(r, pos) for r in rows}) == len(rows):  # no two equal: nothing to order
        return rows
    while i < len(rows):
        j = i + 1
        while j < len(rows) and _score(rows[j], pos) == _score(rows[i], pos):
            j += 1
        out.extend(rows[i:j] if j - i == 1 else sorted(rows[i:j], key=lambda r: os.fsencode(_field(r, path, "path"))))
        i = j
    return out


def _field(row, i, name):
    return row[name] if isinstance(row, dict) else row[i]


def _score(row, i):
    return _field(row, i, "score")


def to_columns(rows, descriptors=None, *, extra=(), table=None, as_lists: bool = False) -> dict:
    """Result rows as the columns of the frame ``similar`` returns (no pandas frame built).

    Returns
    -------
    dict of str to sequence
        ``rank`` (int64 array) + :data:`RESULT_COLUMNS` (lists of Python values), plus
        ``tempo_bpm, key, mode`` (and the descriptor names in ``extra``: those a ``where``
        tested; arrays, NaN/NA where a result has no value) when any result has stored
        descriptors.  Runs of equal scores are ordered by path (``_ties_by_path``).
        ``pd.DataFrame(columns)`` is :func:`to_frame`; a server serialises the lists as they are.
        With ``table`` (:class:`~recommender.recommend.view.TrackTable`) whose ``descriptors``
        these are, values are looked up by dict (the same arrays; ``as_lists``: as lists of
        Python values, NaN where a result has none, for a JSON writer).
    """
    rows = _ties_by_path(rows)
    data = {"rank": np.arange(1, len(rows) + 1)}
    dicts = bool(rows) and isinstance(rows[0], dict)  # apply_filters' rows (else tuples in RESULT_COLUMNS order)
    for j, c in enumerate(RESULT_COLUMNS):
        data[c] = [r[c] for r in rows] if dicts else [_field(r, j, c) for r in rows]
    if rows and descriptors is not None:
        if table is not None and descriptors is table.descriptors:  # looked up by dict
            at, found = None, any(i in table.descriptor_row for i in data["id"])
        else:
            at = descriptors.index.get_indexer(data["id"])  # -1: no stored descriptors
            found = (at >= 0).any()
        if found:
            for col in dict.fromkeys(("tempo_bpm", "key", "mode", *extra)):
                if col in descriptors.columns:  # as Series.map: missing ids get the column's NA
                    data[col] = (table.descriptor_values(data["id"], col, as_list=as_lists) if at is None
                                 else descriptors[col].array.take(at, allow_fill=True))
    return data


def to_frame(rows, descriptors=None, *, extra=()) -> pd.DataFrame:
    """Result rows as the frame ``similar`` returns: ``rank`` + :data:`RESULT_COLUMNS`,
    plus ``tempo_bpm, key, mode`` (and the descriptor names in ``extra``: those a
    ``where`` tested) when any result has stored descriptors (:func:`to_columns`)."""
    return _frame(to_columns(rows, descriptors, extra=extra))


def _frame(data: dict) -> pd.DataFrame:
    """The frame of :func:`to_columns`' ``data`` (one constructor call, column by column)."""
    if not len(data["rank"]):  # object columns, as a frame of no rows has always had
        df = pd.DataFrame([], columns=RESULT_COLUMNS)
        df.insert(0, "rank", data["rank"])
        return df
    return pd.DataFrame(data, columns=list(data))


def _check_args(query, k, space, hubness, max_per_artist):
    """Validated ``(space, hubness)`` (messages as :meth:`Recommender.similar` has always given)."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k={k!r}: must be a positive integer")
    if max_per_artist is not None and max_per_artist < 1:
        raise ParameterError(f"max_per_artist={max_per_artist!r}: must be >= 1")
    if space is None:
        space = "embedding" if isinstance(query, (np.ndarray, list, tuple)) else "similarity"
    if space not in SPACES:
        raise ParameterError(f"space={space!r}: must be one of {', '.join(SPACES)}")
    if hubness not in (None, "none", "mp", "csls"):
        raise ParameterError(f"hubness={hubness!r}: must be None, 'mp' or 'csls'")
    return space, (None if hubness == "none" else hubness)


def where_columns(catalog) -> list:
    """The names a ``where`` (or a sort) may use on this index: the stored descriptor columns
    (:data:`recommender.store._rows.FILTER_COLUMNS`, the MIR descriptors of
    :data:`recommender.descriptors.DESCRIPTOR_COLUMNS`) and the values of the trained
    regressor the index was built with (catalog meta ``value_names``)."""
    from ..descriptors import DESCRIPTOR_COLUMNS
    from ..store._rows import FILTER_COLUMNS

    names = [*FILTER_COLUMNS, *DESCRIPTOR_COLUMNS, *(catalog.get_meta("value_names") or [])]
    return list(dict.fromkeys(str(n) for n in names if n != "path"))


def _where(where, catalog) -> tuple:
    """``where`` (text or parsed conditions) checked against :func:`where_columns`."""
    if where is None:
        return ()
    conds = parse_where(where) if isinstance(where, str) else tuple(where)
    check_columns(conds, where_columns(catalog))
    return conds


def sort_results(rec, df, order) -> pd.DataFrame:
    """``df`` (a :func:`similar` frame) re-ordered by a stored descriptor, ranks renumbered.

    ``order`` is ``"NAME"``, ``"-NAME"`` or ``"NAME desc"``
    (:func:`~recommender.recommend.where.parse_order`); tracks without a value come last,
    ties keep their similarity order.  The column is added to the frame.  Cost: one
    read of the results' descriptors (``k`` rows).

    Raises
    ------
    ParameterError
        A malformed ``order`` or a name that is not in :func:`where_columns` (listing them).
    """
    name, desc = parse_order(order)
    from .where import Condition

    check_columns([Condition(name, "=", 0.0)], where_columns(rec.catalog), what="sort")
    df = df.copy()
    if name not in df.columns:
        d = rec.catalog.descriptors(ids=df["id"].tolist()) if len(df) else pd.DataFrame()
        df[name] = df["id"].map(d[name]) if name in d.columns else None
    key = pd.to_numeric(df[name], errors="coerce")
    if key.isna().all() and df[name].notna().any():
        key = df[name].astype(str)
    order_idx = key.sort_values(ascending=not desc, na_position="last", kind="stable").index
    df = df.loc[order_idx].reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    return df


def _tag_column(tag, tag_names, no_tags=None):
    if tag is None:
        return None
    if no_tags:
        raise ParameterError(f"tag={tag!r}: {no_tags}")
    lower = [t.lower() for t in tag_names]
    if tag.lower() not in lower:
        raise ParameterError(f"tag={tag!r}: not a tag of this index's model (e.g. {', '.join(tag_names[:8])}…)")
    return lower.index(tag.lower())


def similar_columns(rec, query, k=10, *, space=None, hubness=None, exclude_same_artist=False,
                    exclude_same_album=False, max_per_artist=None, tag=None, tempo_range=None, key=None,
                    min_loudness_db=None, exclusions=None, where=None, as_lists=False) -> dict:
    """The search of :func:`similar` without its frame: the result columns of :func:`to_columns`.

    What a server serialises (a pandas frame of 10 rows costs more than the search); ``similar``
    is ``pd.DataFrame`` of it, then ``sort`` and ``explain``.  ``as_lists``: descriptor columns
    read from the track table come as lists of Python values (:func:`to_columns`), for a JSON
    writer.  Parameters and errors: :func:`similar`.
    """
    # meta values read once (not in one catalog snapshot: it holds the catalog's lock, and a slow
    # query, e.g. one that rebuilds a FAISS index, would hold up every other request of a server)
    with rec.catalog.meta_read_once():
        return _similar_columns(rec, query, k, space=space, hubness=hubness, exclude_same_artist=exclude_same_artist,
                                exclude_same_album=exclude_same_album, max_per_artist=max_per_artist, tag=tag,
                                tempo_range=tempo_range, key=key, min_loudness_db=min_loudness_db,
                                exclusions=exclusions, where=where, as_lists=as_lists)


def _similar_columns(rec, query, k, *, space, hubness, exclude_same_artist, exclude_same_album, max_per_artist, tag,
                     tempo_range, key, min_loudness_db, exclusions, where, as_lists=False) -> dict:
    from .exclusions import excluded_ids

    space, hubness = _check_args(query, k, space, hubness, max_per_artist)
    no_tags = rec.catalog.no_tags_reason()
    if no_tags and space in ("tags", "both"):
        raise ParameterError(f"space={space!r}: {no_tags} (or --space embedding / similarity)")
    conds = _where(where, rec.catalog)
    excluded = excluded_ids(rec, exclusions)
    table = None if conds else view.track_table(rec, build=False)  # where: JSON extras, read per query
    q = resolve_query(rec, query, space, table=table)
    idx = rec.faiss_index(space)
    if q.vector.shape[0] != idx.dim:
        raise ParameterError(f"query vector has dim {q.vector.shape[0]}; the {space!r} space has dim {idx.dim}")
    cat = rec.catalog
    tag_names = cat.get_meta("tags") or []
    col = _tag_column(tag, tag_names, no_tags)
    thresholds = cat.get_meta("tag_thresholds")
    filters = Filters(exclude_same_artist, exclude_same_album, max_per_artist, col,
                      tempo_range, parse_key(key) if key is not None else None, min_loudness_db, excluded, conds,
                      None if col is None or not thresholds else float(thresholds[col]))
    n = len(idx)
    kept = max(1.0 - len(excluded) / max(n, 1), 0.05)  # excluded tracks are spread: ask for more
    # a repeated caller (the track table is built) reads an indexed query's hits from the lists
    lists = view.neighbour_lists(rec, space) if table is not None and q.track_id is not None else None
    wide = min(n, int(max(4 * k + 10, 50) / kept))  # what a query without lists fetches first
    fetch = wide
    # only copies of the query and excluded tracks drop out: k + 8 hits are a prefix of the lists and
    # of the wide search (HNSW: only while both stay within ef_search, which bounds what it explores)
    if (lists is not None and hubness is None and not _narrowing(filters) and lists.serves(idx)
            and (idx.kind != "hnsw" or wide <= (idx.params.get("ef_search") or 0))):
        fetch = min(n, int((k + 8) / kept))
    while True:
        cands = Candidates.read(cat, *candidates(rec, idx, q, fetch, space=space, hubness=hubness, lists=lists),
                                table=table)
        rows = apply_filters(q, cands, filters, k, tag_names=tag_names)
        # a narrow fetch answers only when the k-th result scores above its last hit: equal scores
        # (identical vectors) beyond it could order differently in the wide search
        enough = len(rows) >= k and (fetch >= wide or rows[-1]["score"] > cands.scores[cands.ids[-1]])
        if enough or fetch >= n:
            break
        fetch = wide if fetch < wide else min(n, fetch * 4)  # then the wide search's sequence
    return to_columns(rows, cands.descriptors, extra=[c.name for c in conds], table=table, as_lists=as_lists)


def similar(rec, query, k=10, *, space=None, hubness=None, exclude_same_artist=False, exclude_same_album=False,
            max_per_artist=None, tag=None, tempo_range=None, key=None, min_loudness_db=None,
            explain=False, exclusions=None, where=None, sort=None) -> pd.DataFrame:
    """:meth:`recommender.Recommender.similar` (see there) on the facade ``rec``.

    ``where`` (``"energy>0.6 and tempo_bpm<130"``, :mod:`recommender.recommend.where`) keeps
    only tracks whose stored descriptors meet every condition; a name that is neither a
    stored descriptor column nor an output of the regressor the index was built with is a
    :class:`ParameterError` listing the valid names (:func:`where_columns`).  ``sort``
    (``"energy"``, ``"-tempo_bpm"``) re-orders the ``k`` results by a descriptor
    (:func:`sort_results`).

    ``exclusions`` (:class:`~recommender.recommend.exclusions.Exclusions`, a mapping of its
    fields, or ``None``) and the index's ban list keep tracks out of the results; the query
    itself may be excluded or banned (it is never a result anyway).
    """
    if sort is not None:
        parse_order(sort)
    data = similar_columns(rec, query, k, space=space, hubness=hubness, exclude_same_artist=exclude_same_artist,
                           exclude_same_album=exclude_same_album, max_per_artist=max_per_artist, tag=tag,
                           tempo_range=tempo_range, key=key, min_loudness_db=min_loudness_db,
                           exclusions=exclusions, where=where)
    df = _frame(data)
    if sort is not None:
        df = sort_results(rec, df, sort)
    if explain and len(df):
        tid = None if _is_vector(query) else rec.resolve(query)
        if tid is None and not isinstance(query, (str, os.PathLike)):
            raise ParameterError("explain=True needs a track or a file as the query, not a vector")
        from .explanations import explain_results

        df["why"] = explain_results(rec, tid if tid is not None else query, df)
    return df
