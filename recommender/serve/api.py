"""JSON endpoints of ``recommender serve`` (each documented for OpenAPI in its docstring).

Result rows have the keys of the CLI's ``--json`` output (``recommender
similar --json``, ``recommender playlist --json``) plus ``similarity``: the
cosine ``score`` mapped to [0, 1] as ``(1 + score) / 2`` (what OpenSubsonic's
sonic-similarity extension expects).  Errors are ``{"error": message,
"status": code}`` with 400 (bad parameter), 403 (file refused), 404 (unknown
track), 413 (upload too big) or 503 (index unreadable).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import threading

import numpy as np
import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, MalformedRangeHeader

from ..errors import AudioError, ParameterError
from .responses import HTTPError, json_response

__all__ = ["SIMILAR_KEYS", "SIMILAR_EXTRA_KEYS", "PLAYLIST_KEYS", "ENDPOINTS", "to_similarity"]

#: Keys of a ``/similar`` row: those of ``recommender similar --json`` ...
SIMILAR_KEYS = ("rank", "id", "path", "score", "artist", "title", "album", "shared_tags")
#: ... and its optional columns, when the index has them.
SIMILAR_EXTRA_KEYS = ("tempo_bpm", "key", "mode", "why")
#: Keys of a radio / path row: those of ``recommender playlist --json``.
PLAYLIST_KEYS = ("position", "id", "path", "artist", "title", "distance_from_previous")
SPACES = ("similarity", "embedding", "tags", "both")
MAP_GROUPS = ("genre", "artist", "album", "folder")
#: t-SNE is refused above this many tracks (it takes minutes); PCA has no limit.
TSNE_MAX_TRACKS = 20000
#: Points sent to the page at most; a larger collection is subsampled (evenly, by id).
MAP_MAX_POINTS = 20000

#: A track id as the API takes it: ASCII digits only (``str.isdigit`` and ``int`` also take
#: '²', Arabic-Indic '١' or fullwidth '１'), at most 18 of them (an SQLite integer).
_ID = re.compile(r"[0-9]{1,18}")
#: A whole-number parameter: an optional sign and ASCII digits (``int`` also takes '١', '1_0', ' 5 ').
_INT = re.compile(r"[+-]?[0-9]{1,18}")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_classify_lock = threading.Lock()  # one CNN analysis at a time (it uses every core)


# --------------------------------------------------------------------------- parameters
class Params:
    """Query parameters of one request, checked; unknown names are a 400."""

    def __init__(self, request: Request, allowed):
        self.q = request.query_params
        unknown = sorted(set(self.q.keys()) - set(allowed) - {"token"})
        if unknown:
            raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")

    def str(self, name, default=None, *, choices=None):
        v = self.q.get(name)
        if v is None or v == "":
            return default
        if choices is not None and v not in choices:
            raise ParameterError(f"{name}={v!r}: must be one of {', '.join(choices)}")
        return v

    def int(self, name, default=None, *, lo=1, hi=None):
        v = self.q.get(name)
        if v is None or v == "":
            return default
        if not _INT.fullmatch(v):
            raise ParameterError(f"{name}={v!r}: must be a whole number (digits 0-9)")
        n = int(v)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise ParameterError(f"{name}={n}: must be between {lo} and {hi}" if hi is not None
                                 else f"{name}={n}: must be at least {lo}")
        return n

    def float(self, name, default=None):
        v = self.q.get(name)
        if v is None or v == "":
            return default
        try:
            if not v.isascii():  # float() also takes '١' or fullwidth digits
                raise ValueError(v)
            x = float(v)
        except ValueError:
            raise ParameterError(f"{name}={v!r}: must be a number") from None
        if not math.isfinite(x):
            raise ParameterError(f"{name}={v!r}: must be a finite number")
        return x

    def bool(self, name, default=False):
        v = self.q.get(name)
        if v is None:
            return default
        if v.lower() in _TRUE:
            return True
        if v.lower() in _FALSE:
            return False
        raise ParameterError(f"{name}={v!r}: must be true or false (1/0)")

    def strs(self, name, *, most=100):
        """Every value of a repeatable parameter (``?exclude_path=a&exclude_path=b``)."""
        vals = [v for v in self.q.getlist(name) if v != ""]
        if len(vals) > most:
            raise ParameterError(f"{name}: at most {most} values")
        return vals

    def exclusions(self):
        """The exclusion filters of ``recommender similar/playlist`` (``None`` when none is given)."""
        from ..recommend.exclusions import Exclusions

        paths, tags = self.strs("exclude_path"), self.strs("exclude_tag")
        lo, hi = self.float("min_duration"), self.float("max_duration")
        if not paths and not tags and lo is None and hi is None:
            return None
        for name, x in (("min_duration", lo), ("max_duration", hi)):
            if x is not None and x < 0:
                raise ParameterError(f"{name}={x:g}: must be at least 0 (seconds)")
        if lo is not None and hi is not None and lo > hi:
            raise ParameterError(f"min_duration={lo:g}: must not exceed max_duration={hi:g}")
        return Exclusions(paths=paths, tags=tags, min_duration_s=lo, max_duration_s=hi)

    def ids(self, name, *, required=True, most=10000):
        v = self.q.get(name, "")
        parts = [p for p in v.replace(" ", ",").split(",") if p]
        if not parts:
            if required:
                raise ParameterError(f"{name}: give one or more track ids, comma-separated")
            return []
        if len(parts) > most:
            raise ParameterError(f"{name}: at most {most} ids")
        return [parse_id(p, name) for p in parts]


_EXCLUSION_PARAMS = ("exclude_path", "exclude_tag", "min_duration", "max_duration")


def parse_id(text: str, what: str = "track id") -> int:
    """A track id given as text (path or query), the one rule of every endpoint.

    Parameters
    ----------
    text : str
        ASCII digits 0-9, 1 to 18 of them.
    what : str
        The parameter's name, for the message.

    Raises
    ------
    ParameterError
        Anything else (a 400): a sign, spaces, '1.0', or digits of other scripts
        ('²', '١', '１') that ``str.isdigit`` or ``int`` would take.
    """
    if not _ID.fullmatch(text):
        raise ParameterError(f"{what} {text!r}: must be a whole number (digits 0-9, at most 18)")
    return int(text)


def track_id(request: Request) -> int:
    """The ``{track_id}`` path parameter (:func:`parse_id`; a 400 unless it is a whole number)."""
    return parse_id(request.path_params["track_id"])


def to_similarity(score):
    """Cosine in [-1, 1] as a similarity in [0, 1] (``None`` stays ``None``)."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return None
    return round(min(1.0, max(0.0, (1.0 + float(score)) / 2.0)), 6)


def _rows(table, keys):
    """JSON rows of ``table``: a result frame, or the columns of
    :func:`recommender.recommend.query.to_columns` (the same values, no frame built)."""
    from .responses import clean

    cols = [k for k in keys if k in table]  # a frame's columns, or a dict's keys
    values = [_list(table[k]) for k in cols]  # Python values, column by column (to_dict row by row is slower)
    scores = _list(table["score"]) if "score" in table else None
    out = [dict(zip(cols, row)) for row in zip(*values)]  # not cleaned: json_bytes writes NaN, NA, NumPy values
    if scores is not None:
        for row, score in zip(out, scores):
            row["similarity"] = to_similarity(clean(score))
    return out


def _list(column) -> list:
    return column if isinstance(column, list) else column.tolist()


def _state(request: Request):
    return request.app.state.index


# --------------------------------------------------------------------------- endpoints
def info(request: Request):
    """
    summary: What the index holds
    description: Counts, model, dimensions, catalog generation, tag names and descriptor names (for colouring the map).
    responses:
      200: {description: "{index_dir, tracks, failures, generation, tags, descriptors, ...}"}
    """
    Params(request, ())
    st = _state(request)
    rec = st.rec
    out = rec.info()
    out["tags"] = list(rec.catalog.get_meta("tags") or [])
    desc = st.cached(("descriptors",), lambda r: r.catalog.descriptors())
    out["descriptors"] = [c for c in desc.columns if pd.api.types.is_numeric_dtype(desc[c])]
    out["map_groups"] = list(MAP_GROUPS)
    out["spaces"] = list(SPACES)
    return json_response(out)


def search(request: Request):
    """
    summary: Search tracks
    description: >-
      Case-insensitive substring search in title, artist, album, path, the file's genre tag and the
      track's 5 strongest predicted tags (`field=any`, the default), or in one of them. An empty `q` lists tracks.
    parameters:
      - {name: q, in: query, schema: {type: string}, description: text to look for}
      - {name: field, in: query, schema: {type: string, enum: [any, title, artist, album, path, genre, tag]}}
      - {name: limit, in: query, schema: {type: integer, default: 50, minimum: 1, maximum: 1000}}
    responses:
      200: {description: "{total, tracks: [{id, path, artist, title, album, genre, year, duration_s, top_tags}]}"}
      400: {description: bad parameter}
    """
    p = Params(request, ("q", "field", "limit"))
    q = (p.str("q", "") or "").strip().casefold()
    field = p.str("field", "any", choices=("any", "title", "artist", "album", "path", "genre", "tag"))
    limit = p.int("limit", 50, lo=1, hi=1000)
    df = _state(request).search_table()
    if q:
        cols = ["_title", "_artist", "_album", "_path", "_genre", "_tags"] if field == "any" else \
            ["_tags" if field == "tag" else f"_{field}"]
        mask = np.zeros(len(df), dtype=bool)
        for c in cols:
            mask |= df[c].str.contains(q, regex=False).to_numpy()
        df = df[mask]
    total = int(len(df))
    df = df.sort_values(["artist", "album", "title", "path"], na_position="last").head(limit)
    rows = []
    for tid, r in df.iterrows():
        rows.append({"id": int(tid), "path": r["path"], "artist": r["artist"], "title": r["title"],
                     "album": r["album"], "genre": r["genre"], "year": r["year"],
                     "duration_s": r["duration_s"], "top_tags": r["top_tags"]})
    return json_response({"total": total, "tracks": rows})


def track(request: Request):
    """
    summary: One track
    description: >-
      Catalog fields, every tag with its probability (most likely first), the stored descriptors
      (tempo, key, loudness, MFCC/chroma/spectral statistics) and the fields the explanations read
      (`explain`: tempo_bpm, key, mode, loudness_db, brightness_hz).
    parameters:
      - {name: track_id, in: path, required: true, schema: {type: integer}}
    responses:
      200: {description: "{id, path, artist, title, album, ..., source_path, start_s, end_s, tags, top, descriptors, explain, audio_url}"}
      400: {description: the id is not a whole number}
      404: {description: no such track}
    """
    Params(request, ())
    tid = track_id(request)
    rec = _state(request).rec
    row = rec.track(tid)
    out = {k: row.get(k) for k in ("id", "path", "artist", "title", "album", "year", "genre", "track_no",
                                     "duration_s", "n_patches", "source_path", "start_s", "end_s")}
    c = rec.classify(tid)
    out.update({"tags": c.to_json(top=10)["tags"], "top": c.to_json(top=10)["top"], "model": c.model})
    d = rec.catalog.descriptors([tid])
    desc = {} if d.empty or tid not in d.index else d.loc[tid].to_dict()
    out["descriptors"] = desc
    out["explain"] = {"tempo_bpm": desc.get("tempo_bpm"), "key": desc.get("key"), "mode": desc.get("mode"),
                      "loudness_db": desc.get("loudness_db"),
                      "brightness_hz": desc.get("spectral_centroid_mean")}
    out["audio_url"] = audio_url(tid, row)
    return json_response(out)


def audio_url(tid: int, row: dict) -> str:
    """``/api/tracks/ID/audio``; for a track of a CUE album (``source_path`` set) with the W3C
    media fragment ``#t=START,END`` of its part of the file (``#t=START`` when its end is
    not known), which an ``<audio>`` element plays: from START, pausing at END."""
    url = f"/api/tracks/{tid}/audio"
    start, end = row.get("start_s"), row.get("end_s")
    if not row.get("source_path") or start is None:
        return url
    frag = f"#t={float(start):.3f}".rstrip("0").rstrip(".")
    if end is not None:
        frag += f",{float(end):.3f}".rstrip("0").rstrip(".")
    return url + frag


async def similar(request: Request):
    """
    summary: Songs like a track
    description: >-
      The options of `recommender similar`. Rows have the keys of `recommender similar --json`
      plus `similarity` = (1 + score) / 2 in [0, 1]; `why` with `explain=true`.
    parameters:
      - {name: track_id, in: path, required: true, schema: {type: integer}}
      - {name: k, in: query, schema: {type: integer, default: 10, minimum: 1, maximum: 500}}
      - {name: space, in: query, schema: {type: string, enum: [similarity, embedding, tags, both], default: similarity}}
      - {name: hubness, in: query, schema: {type: string, enum: [none, mp, csls], default: none}}
      - {name: exclude_same_artist, in: query, schema: {type: boolean}}
      - {name: exclude_same_album, in: query, schema: {type: boolean}}
      - {name: max_per_artist, in: query, schema: {type: integer, minimum: 1}}
      - {name: tag, in: query, schema: {type: string}, description: only tracks with this tag in their top 5}
      - {name: tempo_min, in: query, schema: {type: number}}
      - {name: tempo_max, in: query, schema: {type: number}}
      - {name: key, in: query, schema: {type: string}, description: "e.g. 'A minor' or 'C'"}
      - {name: min_loudness_db, in: query, schema: {type: number}}
      - {name: where, in: query, schema: {type: string}, description: "stored descriptors, e.g. 'energy>0.6 and tempo_bpm<130'"}
      - {name: sort, in: query, schema: {type: string}, description: "re-order the k results by a descriptor: 'tempo_bpm', '-energy' or 'energy desc' (as `--sort`)"}
      - {name: explain, in: query, schema: {type: boolean}, description: add a `why` sentence per row}
      - {name: exclude_path, in: query, schema: {type: string}, description: "path glob to leave out (repeatable)"}
      - {name: exclude_tag, in: query, schema: {type: string}, description: "tag/genre word to leave out (repeatable)"}
      - {name: min_duration, in: query, schema: {type: number}, description: seconds}
      - {name: max_duration, in: query, schema: {type: number}, description: seconds}
    responses:
      200: {description: "[{rank, id, path, score, similarity, artist, title, album, shared_tags, tempo_bpm, key, mode, why}]"}
      400: {description: bad parameter}
      404: {description: no such track}
    """
    p = Params(request, ("k", "space", "hubness", "exclude_same_artist", "exclude_same_album", "max_per_artist",
                         "tag", "tempo_min", "tempo_max", "key", "min_loudness_db", "where", "sort", "explain",
                         *_EXCLUSION_PARAMS))
    tid = track_id(request)
    lo, hi = p.float("tempo_min"), p.float("tempo_max")
    if (lo is None) != (hi is None):
        raise ParameterError("tempo_min and tempo_max: give both or neither")
    hub = p.str("hubness", "none", choices=("none", "mp", "csls"))
    search = dict(
        k=p.int("k", 10, lo=1, hi=500),
        space=p.str("space", "similarity", choices=SPACES),
        hubness=None if hub == "none" else hub,
        exclude_same_artist=p.bool("exclude_same_artist"),
        exclude_same_album=p.bool("exclude_same_album"),
        max_per_artist=p.int("max_per_artist", None),
        tag=p.str("tag"),
        tempo_range=(lo, hi) if lo is not None else None,
        key=p.str("key"),
        min_loudness_db=p.float("min_loudness_db"),
        exclusions=p.exclusions(),
        where=p.str("where"),
    )
    order, explain = p.str("sort"), p.bool("explain")
    st = _state(request)
    if not (explain or order or search["hubness"] or search["exclusions"] or search["where"]):
        with st.read_once():  # the generation check and the query read the catalog's meta once
            rec = st.fresh()  # None while a new catalog generation is not loaded yet
            if rec is not None:  # a plain search on a loaded generation: < 1 ms, answered on the event loop
                return _similar_response(rec, tid, search, None, False)
    return await run_in_threadpool(lambda: _similar_response(st.rec, tid, search, order, explain))


def _similar_response(rec, tid: int, search: dict, order, explain: bool):
    """``/similar``'s response: the result rows of ``rec.similar(tid, **search)`` (sorted, explained)."""
    from ..recommend import query

    if order is None and not explain:
        table = query.similar_columns(rec, tid, as_lists=True, **search)  # the same rows, without a frame
    else:
        table = rec.similar(tid, explain=explain, **search)
        if order is not None:  # as `recommender similar --sort` does it, after the search
            table = query.sort_results(rec, table, order)
    # every column, as --json prints it (the sort and `where` descriptors included)
    keys = SIMILAR_KEYS + tuple(c for c in table if c not in SIMILAR_KEYS)
    return json_response(_rows(table, keys))


def radio(request: Request):
    """
    summary: Radio from seed tracks
    description: The options of `recommender playlist SEED…`; rows have the keys of `recommender playlist --json` plus `similarity`.
    parameters:
      - {name: seeds, in: query, required: true, schema: {type: string}, description: comma-separated track ids}
      - {name: n, in: query, schema: {type: integer, default: 20, minimum: 1, maximum: 1000}}
      - {name: space, in: query, schema: {type: string, enum: [similarity, embedding, tags, both], default: embedding}}
      - {name: drift, in: query, schema: {type: boolean}}
      - {name: max_per_artist, in: query, schema: {type: integer, minimum: 1}}
      - {name: max_per_album, in: query, schema: {type: integer, minimum: 1}}
      - {name: include_seeds, in: query, schema: {type: boolean}}
      - {name: hubness, in: query, schema: {type: string, enum: [mp, csls, none]}}
      - {name: avoid, in: query, schema: {type: string}, description: comma-separated track ids to steer away from}
      - {name: exclude_path, in: query, schema: {type: string}, description: "path glob to leave out (repeatable)"}
      - {name: exclude_tag, in: query, schema: {type: string}, description: "tag/genre word to leave out (repeatable)"}
      - {name: min_duration, in: query, schema: {type: number}, description: seconds}
      - {name: max_duration, in: query, schema: {type: number}, description: seconds}
    responses:
      200: {description: "[{position, id, path, artist, title, distance_from_previous, similarity}]"}
      400: {description: bad parameter}
      404: {description: a seed is not in the index}
    """
    from ..recommend import playlists

    p = Params(request, ("seeds", "n", "space", "drift", "max_per_artist", "max_per_album", "include_seeds",
                         "hubness", "avoid", *_EXCLUSION_PARAMS))
    hub = p.str("hubness", None, choices=("mp", "csls", "none"))
    df = playlists.radio(
        _state(request).rec,
        p.ids("seeds", most=100),
        n=p.int("n", 20, lo=1, hi=1000),
        space=p.str("space", "embedding", choices=SPACES),
        drift=p.bool("drift"),
        max_per_artist=p.int("max_per_artist", None),
        max_per_album=p.int("max_per_album", None),
        include_seeds=p.bool("include_seeds"),
        hubness=playlists.DEFAULT_HUBNESS if hub is None else (None if hub == "none" else hub),
        avoid=p.ids("avoid", required=False, most=100) or None,
        exclusions=p.exclusions(),
    )
    return json_response(_rows(df, PLAYLIST_KEYS))


def path(request: Request):
    """
    summary: A smooth path from one track to another
    description: The options of `recommender playlist A --to B`; `n` counts both ends.
    parameters:
      - {name: from, in: query, required: true, schema: {type: integer}}
      - {name: to, in: query, required: true, schema: {type: integer}}
      - {name: n, in: query, schema: {type: integer, default: 10, minimum: 2, maximum: 200}}
      - {name: space, in: query, schema: {type: string, enum: [similarity, embedding, tags, both], default: embedding}}
      - {name: exclude_path, in: query, schema: {type: string}, description: "path glob to leave out (repeatable)"}
      - {name: exclude_tag, in: query, schema: {type: string}, description: "tag/genre word to leave out (repeatable)"}
      - {name: min_duration, in: query, schema: {type: number}, description: seconds}
      - {name: max_duration, in: query, schema: {type: number}, description: seconds}
    responses:
      200: {description: "[{position, id, path, artist, title, distance_from_previous, similarity}]"}
      400: {description: bad parameter}
      404: {description: an end is not in the index}
    """
    from ..recommend import playlists

    p = Params(request, ("from", "to", "n", "space", *_EXCLUSION_PARAMS))
    a, b = p.int("from", None, lo=0), p.int("to", None, lo=0)
    if a is None or b is None:
        raise ParameterError("from and to: give the ids of the first and the last track")
    df = playlists.path_between(_state(request).rec, a, b, n=p.int("n", 10, lo=2, hi=200),
                                space=p.str("space", "embedding", choices=SPACES), exclusions=p.exclusions())
    return json_response(_rows(df, PLAYLIST_KEYS))


def explain(request: Request):
    """
    summary: Why two tracks are close
    parameters:
      - {name: a, in: query, required: true, schema: {type: integer}}
      - {name: b, in: query, required: true, schema: {type: integer}}
    responses:
      200: {description: "{sentence, score, shared_tags, different_tags, descriptors}"}
      400: {description: bad parameter}
      404: {description: no such track}
    """
    from ..recommend import explanations

    p = Params(request, ("a", "b"))
    a, b = p.int("a", None, lo=0), p.int("b", None, lo=0)
    if a is None or b is None:
        raise ParameterError("a and b: give two track ids")
    out = explanations.explain(_state(request).rec, a, b).to_json()
    out["similarity"] = to_similarity(out.get("score"))
    return json_response(out)


def _map_coordinates(rec, method, space):
    from ..recommend import explore

    n = len(rec)
    if method == "tsne" and n > TSNE_MAX_TRACKS:
        raise ParameterError(f"method=tsne: the index holds {n} tracks; t-SNE is limited to "
                             f"{TSNE_MAX_TRACKS} (use method=pca)")
    df = explore.collection_map(rec, method=method, color_by="genre", space=space)  # banned tracks left out
    return df.set_index("id")


def collection_map(request: Request):
    """
    summary: The 2-D map of the collection
    description: >-
      PCA or t-SNE coordinates (`recommender.recommend.explore.collection_map`), one point per track,
      with a `label` (`color_by` genre, artist, album or folder) or a number `value`
      (`color_by=tag:NAME`: the tag's probability; `color_by=descriptor:NAME`: tempo_bpm, loudness_db...).
      Collections above MAP_MAX_POINTS tracks are subsampled evenly.
    parameters:
      - {name: method, in: query, schema: {type: string, enum: [pca, tsne], default: pca}}
      - {name: space, in: query, schema: {type: string, enum: [embedding, tags, both], default: embedding}}
      - {name: color_by, in: query, schema: {type: string, default: genre}}
    responses:
      200: {description: "{method, space, color_by, kind, total, points: [{id, x, y, label|value, artist, title, album}]}"}
      400: {description: bad parameter, or fewer than 2 tracks}
    """
    p = Params(request, ("method", "space", "color_by"))
    method = p.str("method", "pca", choices=("pca", "tsne"))
    space = p.str("space", "embedding", choices=("embedding", "tags", "both"))
    color_by = p.str("color_by", "genre")
    st = _state(request)
    from ..recommend.exclusions import bans_key, read_bans

    bans = bans_key(read_bans(st.current()[0].catalog))  # one meta read: a ban does not bump the generation
    df = st.cached(("map", method, space, bans), lambda rec: _map_coordinates(rec, method, space))
    kind, values = "label", None
    if color_by.startswith("tag:"):
        tag = color_by[4:]
        tags = st.cached(("tagframe",), _tag_frame)
        if tag not in tags.columns:
            raise ParameterError(f"color_by={color_by!r}: unknown tag; the index's tags are {', '.join(tags.columns)}")
        kind, values = "value", tags[tag].reindex(df.index)
    elif color_by.startswith("descriptor:"):
        name = color_by[len("descriptor:"):]
        desc = st.cached(("descriptors",), lambda rec: rec.catalog.descriptors())
        if name not in desc.columns or not pd.api.types.is_numeric_dtype(desc[name]):
            raise ParameterError(f"color_by={color_by!r}: unknown numeric descriptor")
        kind, values = "value", desc[name].reindex(df.index)
    elif color_by in MAP_GROUPS:
        if color_by != "genre":
            from ..recommend import explore

            labels = st.cached(("labels", color_by), lambda rec: explore.group_labels(rec, color_by))
            df = df.assign(label=labels.reindex(df.index).fillna("(unknown)").to_numpy())
    else:
        raise ParameterError(f"color_by={color_by!r}: one of {', '.join(MAP_GROUPS)}, tag:NAME or descriptor:NAME")
    total = len(df)
    if total > MAP_MAX_POINTS:
        keep = np.linspace(0, total - 1, MAP_MAX_POINTS).astype(int)
        df = df.iloc[keep]
        values = values.iloc[keep] if values is not None else None
    from .responses import clean

    pts = []
    vals = values.to_numpy() if values is not None else None
    for i, (tid, r) in enumerate(df.iterrows()):
        pt = {"id": int(tid), "x": round(float(r["x"]), 5), "y": round(float(r["y"]), 5),
              "artist": clean(r["artist"]), "title": clean(r["title"]), "album": clean(r["album"])}
        if kind == "label":
            pt["label"] = clean(r["label"])
        else:
            pt["value"] = clean(float(vals[i]))
        pts.append(pt)
    return json_response({"method": method, "space": space, "color_by": color_by, "kind": kind,
                          "total": total, "points": pts})


def _tag_frame(rec):
    from ..recommend import explore

    return explore.tag_frame(rec)


def audio(request: Request):
    """
    summary: The audio of a track
    description: >-
      The indexed file of the track, by id (never by a path from the client), with HTTP Range
      support so a browser can seek. For a track of a CUE album this is the album's audio file:
      the track's `audio_url` carries its part as a media fragment (`#t=start,end`, seconds)
      and the track's `start_s`/`end_s` say the same. A track whose path is a symbolic link plays (the indexer
      follows links); refused (403) when the file reached is not the indexed one any more
      (another size, a later modification time or other content: a link swapped to another
      file is refused even with the same size and time; one rule for whole files and CUE albums). A Range header that cannot be parsed is ignored
      (200 with the whole file, RFC 9110 section 14.2).
    parameters:
      - {name: track_id, in: path, required: true, schema: {type: integer}}
      - {name: Range, in: header, schema: {type: string}, description: "e.g. bytes=0-1023"}
    responses:
      200: {description: the whole file}
      206: {description: the requested range}
      403: {description: the file is not the indexed one any more}
      404: {description: no such track, or its file is gone}
      416: {description: a range that starts past the end of the file}
    """
    Params(request, ())
    tid = track_id(request)
    try:
        real = _state(request).audio_file(tid)
    except PermissionError as e:
        raise HTTPError(403, str(e)) from None
    row = _state(request).rec.track(tid)
    name = os.path.basename(row.get("source_path") or row["path"]) or os.path.basename(real)
    ext = os.path.splitext(name)[1].lower()
    media = AUDIO_TYPES.get(ext) or AUDIO_TYPES.get(os.path.splitext(real)[1].lower(), "application/octet-stream")
    return _AudioFileResponse(real, media_type=media, headers={"Content-Disposition": content_disposition(name)})


def content_disposition(name: str, kind: str = "inline") -> str:
    """A ``Content-Disposition`` header value (RFC 6266) for a file name held as ``os.fsdecode`` gives it.

    ``filename*`` is the name's UTF-8, percent-encoded (RFC 5987); a byte that
    is not UTF-8 (a lone surrogate in the ``str``) is sent as U+FFFD, since the
    header declares UTF-8.  ``filename`` is an ASCII fallback (others as ``_``).
    """
    from urllib.parse import quote

    text = os.fsencode(name).decode("utf-8", "replace")
    ascii_name = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in text)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(text, safe='')}"


class _AudioFileResponse(FileResponse):
    """Starlette's FileResponse, but a Range header it cannot parse is ignored (200, whole file).

    RFC 9110 section 14.2: a server ignores a Range of an unknown unit or of an
    invalid syntax (``items=0-5``, ``bytes=abc``, ``bytes=5-2``); 416 stays for
    a valid range that starts past the end of the file.
    """

    @classmethod
    def _parse_range_header(cls, http_range, file_size):
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []  # no range: the whole file


AUDIO_TYPES = {".mp3": "audio/mpeg", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
               ".opus": "audio/ogg", ".wav": "audio/wav", ".wave": "audio/wav", ".m4a": "audio/mp4",
               ".m4b": "audio/mp4", ".mp4": "audio/mp4", ".aac": "audio/aac", ".webm": "audio/webm",
               ".aif": "audio/aiff", ".aiff": "audio/aiff", ".mka": "audio/x-matroska"}


def _multipart_available() -> bool:
    """Whether Starlette can parse ``multipart/form-data`` (python-multipart is installed; not a dependency)."""
    from starlette import formparsers

    return getattr(formparsers, "multipart", None) is not None


async def _limited(stream, limit: int):
    """The chunks of ``stream``, a 413 once they add up to more than ``limit`` bytes."""
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"upload is over the limit of {limit} bytes")
        yield chunk


def _audio_name(name: str, how: str) -> tuple:
    """``(basename, extension)`` of an upload's name; a 400 unless it has an audio extension."""
    from ..io.audio import AUDIO_EXTENSIONS

    name = os.path.basename((name or "").replace("\\", "/"))
    ext = os.path.splitext(name)[1].lower()
    if ext not in AUDIO_EXTENSIONS:
        raise ParameterError(f"{how}={name!r}: give the file's name with an audio extension "
                             f"({', '.join(sorted(e[1:] for e in AUDIO_EXTENSIONS))})")
    return name, ext


async def _save_multipart(request: Request, limit: int, tmpdir: str, name):
    """The first file of a ``multipart/form-data`` body, saved in ``tmpdir``: ``(path, name, size)``."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    parser = MultiPartParser(request.headers, _limited(request.stream(), limit), max_files=1, max_fields=20,
                             max_part_size=64 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ParameterError(f"the multipart/form-data body could not be read: {e.message}") from None
    try:
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise ParameterError("the multipart/form-data body holds no file: send it as a file field "
                                 "(curl -F file=@song.mp3)")
        up = files[0]
        name, ext = _audio_name(name or up.filename, "filename" if name else "the uploaded file's name")
        tmp = os.path.join(tmpdir, "upload" + ext)
        await up.seek(0)
        return tmp, name, await run_in_threadpool(_copy_to, up.file, tmp)
    finally:
        await form.close()


def _copy_to(src, path: str) -> int:
    with open(path, "wb") as fh:
        shutil.copyfileobj(src, fh)
    return os.path.getsize(path)


async def classify_upload(request: Request):
    """
    summary: Classify an uploaded audio file
    description: >-
      The request body is the file itself (`Content-Type: application/octet-stream`); `filename`
      gives its extension (mp3, flac, ogg, wav, m4a...). A `multipart/form-data` body (an HTML form,
      `curl -F file=@song.mp3`) is accepted too when the server has python-multipart installed
      (415 otherwise); its first file is used, named by its own file name unless `filename` is given.
      It is decoded and analysed like `recommender classify` with the index's model, and the `k`
      closest tracks of the index (embedding space) are returned with it. The upload is limited to
      the server's `--max-upload-mb` (413 beyond) and deleted afterwards.
    parameters:
      - {name: filename, in: query, schema: {type: string}, description: "required with a raw body"}
      - {name: top, in: query, schema: {type: integer, default: 5, minimum: 1, maximum: 50}}
      - {name: k, in: query, schema: {type: integer, default: 10, minimum: 0, maximum: 100}}
    requestBody:
      content:
        application/octet-stream: {schema: {type: string, format: binary}}
        multipart/form-data: {schema: {type: object, properties: {file: {type: string, format: binary}}}}
    responses:
      200: {description: "{path, tags, top, duration_s, model, similar: [...]}"}
      400: {description: bad parameter, empty or undecodable file}
      413: {description: upload too big}
      415: {description: a multipart/form-data body on a server without python-multipart}
    """
    p = Params(request, ("filename", "top", "k"))
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = ctype == "multipart/form-data"
    given = p.str("filename", "") or ""
    if multipart and not _multipart_available():
        raise HTTPError(415, "multipart/form-data uploads need python-multipart on the server: send the raw file "
                             "as the request body with ?filename=NAME (curl --data-binary @song.mp3 "
                             "-H 'Content-Type: application/octet-stream' '.../api/classify?filename=song.mp3')")
    name = ext = None
    if given or not multipart:
        if not given:
            raise ParameterError("filename: give the file's name with an audio extension as ?filename=NAME "
                                 "(the request body is the audio file itself)")
        name, ext = _audio_name(given, "filename")
    top, k = p.int("top", 5, lo=1, hi=50), p.int("k", 10, lo=0, hi=100)
    limit = request.app.state.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPError(413, f"upload of {int(length)} bytes is over the limit of {limit} bytes")
    tmpdir = tempfile.mkdtemp(prefix="recommender-upload-")
    try:
        if multipart:
            tmp, name, size = await _save_multipart(request, limit, tmpdir, name)
        else:
            tmp = os.path.join(tmpdir, "upload" + ext)
            size = 0
            with open(tmp, "wb") as fh:
                async for chunk in _limited(request.stream(), limit):
                    size += len(chunk)
                    fh.write(chunk)
        if size == 0:
            raise ParameterError("the uploaded file is empty: send the audio file as the body")
        try:
            out = await run_in_threadpool(_classify_file, _state(request), tmp, top, k)
        except AudioError as e:  # name the upload, not its temporary path
            reason = e.reason.replace(tmp, name).replace(tmpdir, "")
            raise HTTPError(400, f"{name}: the uploaded file could not be decoded: {reason}") from None
        out["path"] = name
        return json_response(out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _classify_file(st, tmp, top, k):
    from ..analysis.tagging import classify

    with _classify_lock:
        c = classify(tmp, model=st.model())  # decoded and analysed as `recommender classify` does
    rec = st.rec
    out = c.to_json(top=top)
    out["similar"] = []
    if k:
        df = rec.similar(np.asarray(c.embedding, dtype=np.float32), k=k, space="embedding")
        out["similar"] = _rows(df, SIMILAR_KEYS + SIMILAR_EXTRA_KEYS)
    return out


# --------------------------------------------------------------------------- playlist files
def _playlist_rows(request: Request):
    p = Params(request, ("ids", "title"))
    ids = p.ids("ids")
    title = p.str("title", "recommender playlist")
    rec = _state(request).rec
    rows = [rec.track(t) for t in ids]
    return title, rows


def m3u8(request: Request):
    """
    summary: Tracks as an M3U8 playlist (UTF-8, file paths)
    parameters:
      - {name: ids, in: query, required: true, schema: {type: string}, description: comma-separated track ids, in order}
      - {name: title, in: query, schema: {type: string}}
    responses:
      200: {description: an audio/x-mpegurl attachment}
      400: {description: bad parameter}
      404: {description: no such track}
    """
    from starlette.responses import Response

    from .playlist_files import m3u8_text

    title, rows = _playlist_rows(request)
    return Response(m3u8_text(rows, title=title), media_type="audio/x-mpegurl; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="playlist.m3u8"'})


def xspf(request: Request):
    """
    summary: Tracks as an XSPF playlist (file URIs)
    parameters:
      - {name: ids, in: query, required: true, schema: {type: string}, description: comma-separated track ids, in order}
      - {name: title, in: query, schema: {type: string}}
    responses:
      200: {description: an application/xspf+xml attachment}
      400: {description: bad parameter}
      404: {description: no such track}
    """
    from starlette.responses import Response

    from .playlist_files import xspf_text

    title, rows = _playlist_rows(request)
    return Response(xspf_text(rows, title=title), media_type="application/xspf+xml",
                    headers={"Content-Disposition": 'attachment; filename="playlist.xspf"'})


#: ``(path, endpoint, methods)`` of the JSON API, in the order of the OpenAPI document.
ENDPOINTS = (
    ("/api/info", info, ["GET"]),
    ("/api/search", search, ["GET"]),
    ("/api/tracks/{track_id}", track, ["GET"]),
    ("/api/tracks/{track_id}/similar", similar, ["GET"]),
    ("/api/tracks/{track_id}/audio", audio, ["GET", "HEAD"]),
    ("/api/radio", radio, ["GET"]),
    ("/api/path", path, ["GET"]),
    ("/api/explain", explain, ["GET"]),
    ("/api/map", collection_map, ["GET"]),
    ("/api/classify", classify_upload, ["POST"]),
    ("/api/playlist.m3u8", m3u8, ["GET"]),
    ("/api/playlist.xspf", xspf, ["GET"]),
)
