"""The ban list (``recommender ban``, ``unban``, ``bans``) and the exclusion flags of the query commands.

:func:`add_exclusion_args` / :func:`exclusions_from_args` give ``similar``,
``playlist`` and ``map`` the same ``--exclude-path``, ``--exclude-tag``,
``--min-duration`` and ``--max-duration`` flags
(:class:`recommender.recommend.exclusions.Exclusions`).
"""

from __future__ import annotations

import sys

from ._common import display, print_json, query_arg, records

__all__ = ["add_commands", "add_exclusion_args", "exclusions_from_args"]


def add_exclusion_args(s) -> None:
    """Add the exclusion flags to the sub-parser ``s``."""
    g = s.add_argument_group("exclusions (banned tracks are always left out: recommender ban)")
    g.add_argument("--exclude-path", action="append", default=[], metavar="GLOB",
                   help="leave out files whose path matches (case-insensitive; 'Audiobooks/*', '*.m4b', "
                        "'/music/Xmas'); repeat for several")
    g.add_argument("--exclude-tag", action="append", default=[], metavar="TAG",
                   help="leave out tracks with this model tag in their top 5, or this word in their "
                        "genre/album/artist/title ('christmas'); repeat for several")
    g.add_argument("--min-duration", type=float, default=None, metavar="S",
                   help="leave out tracks shorter than S seconds (interludes)")
    g.add_argument("--max-duration", type=float, default=None, metavar="S",
                   help="leave out tracks longer than S seconds (DJ mixes, audiobooks)")


def exclusions_from_args(args):
    """The :class:`~recommender.recommend.exclusions.Exclusions` of the parsed flags (``None`` when unset)."""
    from ..recommend.exclusions import Exclusions

    ex = Exclusions(paths=args.exclude_path, tags=args.exclude_tag,
                    min_duration_s=args.min_duration, max_duration_s=args.max_duration)
    return ex if ex.active else None


def _tracks(items) -> list:
    return [query_arg(t) for t in items]


def cmd_ban(args) -> int:
    from ..recommender import Recommender

    rec = Recommender(args.index)
    added = rec.ban(*_tracks(args.tracks))
    if args.json:
        print_json({"banned": len(added), "total": len(rec.bans())})
    else:
        print(f"banned {len(added)} track(s) ({len(args.tracks) - len(added)} already banned); "
              f"{len(rec.bans())} banned track(s) in {display(rec.index_dir)}")
    return 0


def cmd_unban(args) -> int:
    from ..recommender import Recommender

    from ..recommend.exclusions import ban_causes

    rec = Recommender(args.index)
    tracks = _tracks(args.tracks)
    n = rec.unban(*tracks)  # logs a warning for each track still banned through its CUE album's audio file
    causes = ban_causes(rec, [t for t in tracks if rec.resolve(t) is not None])
    if args.json:
        print_json({"unbanned": n, "still_banned": causes})
    else:
        print(f"unbanned {n} track(s)")
    if n == 0 and not causes:
        print("note: none of these was banned (recommender bans lists the ban list)", file=sys.stderr)
    return 0


def cmd_bans(args) -> int:
    import datetime

    import pandas as pd

    from ..io.cuesheet import source_of_key
    from ..recommender import Recommender

    df = Recommender(args.index).bans()
    rows = [{**r, "id": None if pd.isna(r["id"]) else int(r["id"])} for r in records(df)]
    if args.json:
        print_json(rows)
        return 0
    if len(df) == 0:
        print("no banned tracks")
        return 0
    albums: dict = {}  # a banned CUE audio file -> the ids of its cue tracks (shown as one line)
    for r in rows:
        if r["id"] is not None and r["path"] != r["banned_path"] and source_of_key(r["path"]) == r["banned_path"]:
            albums.setdefault(r["banned_path"], []).append(r["id"])
    for r in rows:
        when = datetime.datetime.fromtimestamp(r["added_at"]).strftime("%Y-%m-%d") if r["added_at"] else "?"
        ids = albums.get(r["banned_path"])
        if ids and source_of_key(r["path"]) == r["banned_path"]:
            if r["id"] == ids[0]:
                print(f"  -  {when}  {display(r['banned_path'])}  (CUE album: {len(ids)} track(s), "
                      f"ids {', '.join(map(str, ids))})")
            continue
        tid = "  -" if r["id"] is None else f"{r['id']:>3d}"
        note = "" if r["path"] == r["banned_path"] else f"  (banned as {display(r['banned_path'])})"
        if r["id"] is None:
            note += "  (not indexed)"
        print(f"{tid}  {when}  {display(r['path'])}{note}")
    print(f"{len(df)} banned")
    return 0


def add_commands(sub) -> None:
    """Add ``ban``, ``unban`` and ``bans`` to the CLI's subparsers."""
    from ..recommender import DEFAULT_INDEX_DIR

    s = sub.add_parser("ban", help="never recommend these tracks (kept in the index, survives re-indexing)")
    s.add_argument("tracks", nargs="+", metavar="TRACK", help="track id, indexed path, or a file not yet indexed")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ban)

    s = sub.add_parser("unban", help="take tracks off the ban list")
    s.add_argument("tracks", nargs="+", metavar="TRACK", help="track id or path")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_unban)

    s = sub.add_parser("bans", help="list the banned tracks")
    s.add_argument("--index", default=DEFAULT_INDEX_DIR)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bans)
