"""Tag a folder with its analysis (BPM, key, mood, genre) and write an XSPF radio.

Usage::

    python examples/tag_and_radio.py FOLDER [--index DIR] [--seed FILE] [-n 20]
                                     [--out radio.xspf] [--dry-run] [--overwrite]

1. indexes FOLDER (incremental: only new or changed files are analysed);
2. shows what it writes into each file's own tags, then writes them (ID3v2.4
   for MP3/WAV/AIFF, Vorbis comments for FLAC/Ogg/Opus, MP4 atoms for M4A);
   values the files already have are kept unless ``--overwrite``, and
   ``recommender tag --undo --write --index DIR`` puts everything back;
   ``--dry-run`` only shows the changes;
3. plays radio around the seed (default: the first indexed track) and writes
   it as an XSPF playlist (title, creator, album, duration, percent-encoded
   ``file://`` locations) that VLC, foobar2000, Strawberry, Clementine open.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--index", default=None, help="index directory (default: FOLDER/.recommender-index)")
    ap.add_argument("--seed", default=None, help="seed track (an indexed file or id; default: the first track)")
    ap.add_argument("-n", type=int, default=20, help="tracks in the radio (default 20)")
    ap.add_argument("--out", default="radio.xspf", help="XSPF file to write (default radio.xspf)")
    ap.add_argument("--dry-run", action="store_true", help="show the tag changes without writing them")
    ap.add_argument("--overwrite", action="store_true", help="replace values the files already have")
    args = ap.parse_args(argv)

    from recommender import Recommender, RecommenderError
    from recommender.io.playlist_files import write_xspf
    from recommender.recommend.playlists import radio

    folder = os.path.abspath(args.folder)
    index = args.index or os.path.join(folder, ".recommender-index")
    rec = Recommender(index)
    try:
        rep = rec.update([folder])
        print(f"indexed {folder}: {rep.added} added, {rep.updated} updated, {rep.unchanged} unchanged, "
              f"{rep.failed} failed")

        plan = rec.write_tags([folder], overwrite=args.overwrite)
        for row in plan.to_frame().itertuples():
            if row.action in ("set", "replace"):
                print(f"  {os.path.basename(row.path)}: {row.field} {row.old or '-'} -> {row.new}")
        print(f"{plan.n_changes} tag field(s) to write; "
              f"{sum(c['action'] == 'keep' for c in plan.changes)} kept (the files have their own)")
        if not args.dry_run and plan.n_changes:
            done = rec.write_tags([folder], write=True, overwrite=args.overwrite)
            print(f"wrote {done.n_changes} field(s) in {done.written} file(s); "
                  f"undo with: recommender tag --undo --write --index {index}")
        else:
            done = plan
        for e in done.errors:
            print(f"  not tagged: {e['path']}: {e['reason']}", file=sys.stderr)

        seed = args.seed if args.seed is not None else int(rec.tracks().index[0])
        if isinstance(seed, str) and seed.isdigit() and not os.path.exists(seed):
            seed = int(seed)
        df = radio(rec, [seed], n=args.n)
        durations = rec.tracks()["duration_s"]
        rows = [{**r, "duration_s": durations.get(r["id"])} for r in df.to_dict(orient="records")]
        write_xspf(args.out, rows, title=f"Radio around {os.path.basename(str(rows[0]['path']))}" if rows else None)
        print(f"radio of {len(rows)} track(s) written to {args.out}")
        for r in rows:
            artist = r["artist"] if isinstance(r.get("artist"), str) else "?"
            title = r["title"] if isinstance(r.get("title"), str) else os.path.basename(r["path"])
            print(f"  {r['position']:>2}. {artist} - {title}")
    except RecommenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        rec.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
