"""``recommender tag``: write the analysis (BPM, key, mood, genre) into the files' own tags.

Shows what it would change unless ``--write``; ``--undo`` puts back what an
earlier ``--write`` changed (see :mod:`recommender.recommend.writeback`).
Exit status 0, or 1 when some files could not be read or written (listed on
stderr, the others done).  Tracks of a CUE album are not tagged (their one
audio file holds several tracks): a note per album says so, naming the sheet
that cuts it, and it is not an error.
"""

from __future__ import annotations

import argparse
import sys

from ._common import display, print_json

__all__ = ["add_commands"]

_VERB = {"set": "set", "replace": "replace", "restore": "restore", "keep": "keep (the file has its own)",
         "same": "already so", "skip": "skip", "error": "error"}


def _fields_arg(text: str) -> list:
    from ..recommend.writeback import FIELDS

    out = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in out if f not in FIELDS]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"{text!r}: give some of {','.join(FIELDS)}, separated by commas")
    return out


def cmd_tag(args) -> int:
    from ..recommender import Recommender

    if not args.paths and not args.undo:
        print("error: give the files or folders to tag (PATH...)", file=sys.stderr)
        return 2
    rec = Recommender(args.index)
    report = rec.write_tags(args.paths, write=args.write, overwrite=args.overwrite, undo=args.undo,
                            fields=args.fields, min_p=args.min_p)
    if args.json:
        print_json({"dry_run": report.dry_run, "written": report.written, "changes": report.changes,
                    "errors": report.errors, "notes": report.notes})
    else:
        _print_report(report, args)
        for e in report.notes:
            print(f"note: {display(e['path'])}: {e['reason']}{_sheet(e)}")
    for e in report.errors:
        print(f"error: {display(e['path'])}: {e['reason']}", file=sys.stderr)
    return 1 if report.errors else 0


def _sheet(note: dict) -> str:
    """`` (sheet: PATH)`` for a note on a CUE album's audio file, naming the sheet that cuts it."""
    from ..io.cuesheet import sheet_of

    sheet = note.get("sheet") or sheet_of(note["path"])
    return f" (sheet: {display(sheet)})" if sheet else ""


def _print_report(report, args) -> None:
    last = None
    shown = 0
    for c in report.changes:
        if c["action"] == "same" and not args.verbose_changes:
            continue
        if c["path"] != last:
            print(display(c["path"]))
            last = c["path"]
        old = "; ".join(c["old"]) or "-"
        new = "; ".join(c["new"]) or "-"
        note = f"  ({c['note']})" if c.get("note") else ""
        print(f"  {c['field']:<6} {old} -> {new}  [{_VERB.get(c['action'], c['action'])}]{note}")
        shown += 1
    n = report.n_changes
    files = len({c["path"] for c in report.changes if c["action"] in ("set", "replace", "restore")})
    kept = sum(c["action"] == "keep" for c in report.changes)
    skipped = sum(c["action"] == "skip" for c in report.changes)
    if report.dry_run:
        what = "restore" if args.undo else "change"
        print(f"dry run: {n} field(s) would {what} in {files} file(s); nothing written. "
              f"Add --write to write them.")
    else:
        print(f"{'restored' if args.undo else 'wrote'} {n} field(s) in {report.written} file(s).")
    if kept:
        print(f"{kept} field(s) kept because the file has its own value (--overwrite replaces them).")
    if skipped:
        print(f"{skipped} field(s) changed since they were tagged and left alone (--overwrite restores them).")


def add_commands(sub) -> None:
    from ..recommend.writeback import UNDO_LOG, WRITE_MIN_P

    p = sub.add_parser(
        "tag",
        help="write BPM, key, mood and genre from the index into the files' own tags",
        description="Write the analysis of indexed files into their tags (ID3v2.4 for MP3 / WAV / AIFF, "
        "Vorbis comments for FLAC / Ogg / Opus, MP4 atoms for M4A). Without --write it only shows "
        f"what would change. Every change written is recorded in INDEX/{UNDO_LOG} for --undo. "
        "Tracks of a CUE album are not tagged (one audio file holds several tracks): a note per album "
        "says so; it is not an error.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="indexed files or folders (with --undo: limit to these)")
    p.add_argument("--index", default="indexes/default", help="index directory (default indexes/default)")
    p.add_argument("--write", action="store_true", help="write the tags (default: show what would change)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace values the files already have (with --undo: restore fields changed since)")
    p.add_argument("--undo", action="store_true",
                   help="put back the values an earlier --write replaced (at the file's current path: "
                        "a file moved and re-indexed since is followed)")
    p.add_argument("--fields", type=_fields_arg, default=None, metavar="LIST",
                   help="comma-separated subset of bpm,key,mood,genre (default all)")
    p.add_argument("--min-p", type=float, default=WRITE_MIN_P, metavar="P",
                   help=f"genre/mood tags written from this probability up (default {WRITE_MIN_P})")
    p.add_argument("--all", dest="verbose_changes", action="store_true",
                   help="also list fields that already hold the value")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_tag)
