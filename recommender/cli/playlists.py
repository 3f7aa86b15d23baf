"""CLI commands for playlists and collection analysis.

``recommender playlist``, ``map``, ``duplicates`` and ``hubness``; wired into
:mod:`recommender.cli` through :func:`add_commands`.  They only read an index:
no TensorFlow; matplotlib / scikit-learn load inside the commands that draw.
"""

from __future__ import annotations

import argparse
import os
import sys

from .bans import add_exclusion_args, exclusions_from_args
from ._common import add_playlist_file_args, display, print_json, query_arg, records, write_playlist_files

__all__ = ["add_commands"]

PLAYLIST_JSON_KEYS = ("position", "id", "path", "artist", "title", "distance_from_previous")


def _track_arg(q):
    """A track id (digits that are not an existing file) or a path."""
    return query_arg(q)


def cmd_playlist(args) -> int:
    from ..recommend import playlists
    from ..recommender import Recommender

    rec = Recommender(args.index)
    seeds = [_track_arg(s) for s in args.seeds]
    hubness = playlists.DEFAULT_HUBNESS if args.hubness is None else (None if args.hubness == "none" else args.hubness)
    if args.to is not None:
        if len(seeds) != 1:
            print("error: --to takes exactly one SEED (the start of the path)", file=sys.stderr)
            return 2
        if args.avoid:
            print("error: --avoid steers a radio; a path (--to) has fixed ends", file=sys.stderr)
            return 2
        df = playlists.path_between(rec, seeds[0], _track_arg(args.to), n=args.n, space=args.space,
                                    exclusions=exclusions_from_args(args))
    else:
        df = playlists.radio(
            rec,
            seeds,
            n=args.n,
            space=args.space,
            drift=args.drift,
            max_per_artist=args.max_per_artist,
            max_per_album=args.max_per_album,
            include_seeds=args.include_seeds,
            hubness=hubness,
            exclusions=exclusions_from_args(args),
            avoid=[_track_arg(a) for a in args.avoid],
        )
    rows = records(df)
    title = f"path {' '.join(args.seeds)} to {args.to}" if args.to is not None else f"radio {' '.join(args.seeds)}"
    written = write_playlist_files(args, rec, rows, title=title)
    if args.json:
        print_json([{k: r.get(k) for k in PLAYLIST_JSON_KEYS} for r in rows])
        return 0
    import pandas as pd

    show = df.drop(columns=["path"]).copy()
    show["title"] = [t if isinstance(t, str) and t else os.path.basename(p) for t, p in zip(df["title"], df["path"])]
    with pd.option_context("display.max_colwidth", 40, "display.width", 200):
        print(show.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    steps = df["distance_from_previous"].iloc[1:]
    if len(steps):
        print(f"{len(df)} tracks, mean step distance {steps.mean():.3f}, largest step {steps.max():.3f}")
    for out in written:
        print(f"wrote {display(out)}")
    return 0


def cmd_map(args) -> int:
    from ..recommend import explore
    from ..recommender import Recommender

    rec = Recommender(args.index)
    clusters = _map_clusters(args, rec)
    color_by = args.color_by
    if color_by == "cluster":
        color_by = _cluster_labels(clusters)
    df = explore.collection_map(rec, args.out, method=args.method, color_by=color_by, space=args.space,
                                annotate=args.annotate, exclusions=exclusions_from_args(args),
                                excluded="mark" if args.mark_excluded else "drop")
    files = _write_cluster_playlists(args, rec, clusters, df) if args.playlists else []
    if args.json:
        print_json({"out": os.path.abspath(args.out), "tracks": len(df),
                    "labels": df["label"].value_counts().to_dict(),
                    **({"playlists": files} if args.playlists else {})})
    else:
        print(f"wrote {args.out}: {len(df)} tracks, {args.method.upper()}, "
              f"{df['label'].nunique()} {args.color_by} labels")
        for f in files:
            print(f"wrote {display(f['m3u8'])} and .xspf: cluster {f['cluster']}, {f['tracks']} tracks, {f['title']}")
    return 0


def _cluster_labels(clusters):
    """``id -> 'cluster N'`` (1-based) of :func:`_map_clusters`' frame, the labels of ``--color-by cluster``."""
    import pandas as pd

    return pd.Series([f"cluster {c + 1}" for c in clusters["cluster"]], index=clusters["id"].to_numpy(),
                     name="cluster")


def _map_clusters(args, rec):
    """k-means clusters of the map's space (``--clusters K``), or ``None``."""
    from ..errors import ParameterError

    if args.clusters is None:
        if args.playlists or args.color_by == "cluster":
            raise ParameterError("--playlists and --color-by cluster need --clusters K")
        return None
    from ..recommend.clusters import collection_clusters

    return collection_clusters(rec, args.clusters, space=args.space)


def _write_cluster_playlists(args, rec, clusters, df) -> list[dict]:
    """One ``cluster-NN.m3u8`` and ``.xspf`` per cluster in ``--playlists DIR`` (tracks on the map,
    the most typical first); what was written, per cluster."""
    from collections import Counter

    from ..io.playlist_files import write_m3u8, write_xspf

    if clusters is None:
        return []
    os.makedirs(args.playlists, exist_ok=True)
    label = dict(zip(df["id"], df["label"]))
    out = []
    for c, part in clusters[clusters["id"].isin(list(label))].groupby("cluster", sort=True):
        rows = [rec.track(int(i)) for i in part["id"]]
        title = f"cluster {c + 1} of {args.clusters}"
        if args.color_by != "cluster":
            common = Counter(label[i] for i in part["id"]).most_common(1)[0][0]
            title += f", mostly {display(common)}"
        name = os.path.join(args.playlists, f"cluster-{c + 1:02d}")
        write_m3u8(name + ".m3u8", rows, title=title)
        write_xspf(name + ".xspf", rows, title=title)
        out.append({"cluster": int(c) + 1, "tracks": len(rows), "title": title,
                    "m3u8": name + ".m3u8", "xspf": name + ".xspf"})
    return out


def cmd_duplicates(args) -> int:
    import math

    from ..recommend import explore
    from ..recommender import Recommender

    rec = Recommender(args.index)
    df = explore.near_duplicates(rec, threshold=args.threshold, space=args.space)
    if args.json:
        keep = ["id_a", "id_b", "reason", "score", "offset_s", "cosine", "path_a", "path_b"]
        print_json([{k: r[k] for k in keep} for r in records(df)])
        return 0
    if len(df) == 0:
        print("no duplicates (no two tracks with the same content or the same acoustic fingerprint"
              f"; tracks without a fingerprint: cosine >= {args.threshold})")
        return 0
    for r in df.itertuples(index=False):
        off = "" if math.isnan(r.offset_s) else f" offset {r.offset_s:+.2f} s"
        print(f"{r.score:.3f}  {r.reason:<24s}{off}\n  {r.id_a}: {r.path_a}\n  {r.id_b}: {r.path_b}")
    print(f"{len(df)} pair(s)")
    return 0


def cmd_hubness(args) -> int:
    from ..recommend import playlists
    from ..recommender import Recommender

    rec = Recommender(args.index)
    df = playlists.hubness_report(rec, k=args.k, space=args.space)
    if args.json:
        print_json({m: {k: v for k, v in row.items()} for m, row in df.to_dict(orient="index").items()})
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200):
        print(df.to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"\nskewness of k-occurrence (N_{args.k}) and share of anti-hubs (in nobody's top {args.k}): "
          "lower is better; playlists correct with "
          f"{playlists.DEFAULT_HUBNESS!r} by default")
    return 0


def add_commands(sub) -> None:
    """Add ``playlist``, ``map``, ``duplicates`` and ``hubness`` to the CLI's subparsers."""
    from ..recommender import DEFAULT_INDEX_DIR

    spaces = ["similarity", "embedding", "tags", "both"]
    s = sub.add_parser("playlist", help="radio from seed tracks, or a smooth path from one track to another")
    s.add_argument("seeds", nargs="+", metavar="SEED", help="track id or indexed path (one or more)")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("-n", type=int, default=20, help="tracks in the playlist (default 20)")
    s.add_argument("--to", default=None, metavar="TRACK", help="make a path from SEED to TRACK instead of a radio")
    s.add_argument("--max-per-artist", type=int, default=None, metavar="N")
    s.add_argument("--max-per-album", type=int, default=None, metavar="N")
    s.add_argument("--drift", action="store_true", help="each next song close to the previous one (not the seeds)")
    s.add_argument("--include-seeds", action="store_true", help="start the radio with the seeds")
    s.add_argument("--space", choices=spaces, default="embedding")
    s.add_argument("--hubness", choices=["csls", "mp", "none"], default=None,
                   help="hubness correction of the radio (default: the library's default)")
    s.add_argument("--m3u", default=None, metavar="FILE", help="also write the playlist as M3U")
    add_playlist_file_args(s, what="the playlist")
    s.add_argument("--avoid", action="append", default=[], metavar="TRACK",
                   help="steer the radio away from this track (id or path); repeat for several")
    add_exclusion_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_playlist)

    s = sub.add_parser("map", help="2-D map of the collection as a PNG (PCA or t-SNE)")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--out", required=True, metavar="PNG")
    s.add_argument("--color-by", choices=["genre", "artist", "album", "folder", "cluster"], default="genre")
    s.add_argument("--method", choices=["pca", "tsne"], default="pca")
    s.add_argument("--space", choices=spaces, default="embedding")
    s.add_argument("--annotate", action="store_true", help="label points with track titles")
    s.add_argument("--clusters", type=int, default=None, metavar="K",
                   help="k-means clusters of the collection in --space (for --playlists, --color-by cluster)")
    s.add_argument("--playlists", default=None, metavar="DIR",
                   help="write one cluster-NN.m3u8 and cluster-NN.xspf per cluster into DIR (needs --clusters)")
    add_exclusion_args(s)
    s.add_argument("--mark-excluded", action="store_true",
                   help="keep excluded and banned tracks on the map, labelled '(excluded)' (default: left out)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_map)

    from ..recommend.playlists import DUPLICATE_COSINE

    s = sub.add_parser("duplicates", help="the same recording twice: same content, or the same acoustic "
                       "fingerprint (another encoding, a trimmed copy)")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--threshold", type=float, default=DUPLICATE_COSINE,
                   help="only for tracks without a fingerprint (fpcalc missing when indexed): embedding cosine "
                   f"at or above which two tracks count as one recording (default {DUPLICATE_COSINE})")
    s.add_argument("--space", choices=["embedding"], default="embedding", help=argparse.SUPPRESS)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_duplicates)

    s = sub.add_parser("hubness", help="hub statistics of the collection before/after CSLS and MP correction")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("-k", type=int, default=10, help="neighbourhood size (default 10)")
    s.add_argument("--space", choices=spaces, default="embedding")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_hubness)
