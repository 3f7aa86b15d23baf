"""Explore a discography: album profiles, cross-album neighbours, a map, a path.

Index a folder of albums (say, the Beatles' studio albums, one folder per
album) and print

* each album's genre and mood profile (mean tag probabilities),
* for every song, its closest songs on the *other* albums,
* the closest pairs of songs across albums,
* a path of songs from the first album's opening track to the last album's
  closing track,

and write ``album_genres.png``, ``album_moods.png`` and ``map.png``.

Works on any folder: albums are the album tags of the files (untagged files
take their folder name), ordered by year when tagged, else by name.

Usage::

    python examples/discography.py ~/Music/Beatles --index indexes/beatles --out beatles-report
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd

from recommender import Recommender
from recommender.recommend import explore
from recommender.recommend import playlists


def _name(row):
    t = row.get("title")
    return t if isinstance(t, str) and t else os.path.splitext(os.path.basename(row["path"]))[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="folder of albums (any layout; album tags or folder names group tracks)")
    ap.add_argument("--index", default=None, help="index directory (default: indexes/<folder name>)")
    ap.add_argument("--out", default=None, help="where to write the PNGs (default: <index>/report)")
    ap.add_argument("-k", type=int, default=3, help="closest songs on other albums per song (default 3)")
    ap.add_argument("--jobs", type=int, default=1, help="analysis processes (default 1)")
    ap.add_argument("--space", choices=["embedding", "tags", "both"], default="embedding")
    ap.add_argument("--path-length", type=int, default=12, help="songs in the first->last album path")
    args = ap.parse_args(argv)

    folder = os.path.abspath(os.path.expanduser(args.folder))
    if not os.path.isdir(folder):
        ap.error(f"{args.folder}: not a folder")
    index = args.index or os.path.join("indexes", os.path.basename(folder.rstrip(os.sep)) or "discography")
    out = args.out or os.path.join(index, "report")
    os.makedirs(out, exist_ok=True)

    rec = Recommender(index)
    print(f"indexing {folder} into {index} …")
    print(f"  {rec.update([folder], jobs=args.jobs, progress=sys.stderr.isatty())}")

    tracks = rec.tracks()
    tracks = tracks[tracks["path"].str.startswith(folder.rstrip(os.sep) + os.sep)]
    if len(tracks) == 0:
        print("no tracks could be indexed in this folder (see `recommender failures --index ...`)")
        return 1
    albums = explore.group_labels(rec, "album").loc[tracks.index]
    tracks = tracks.assign(album_label=albums)
    year = {a: (None if pd.isna(y) else int(y)) for a, y in tracks.groupby("album_label")["year"].min().items()}
    order = sorted(year, key=lambda a: (year[a] if year[a] is not None else 10**4, a))
    print(f"\n{len(tracks)} songs on {len(order)} album(s)")

    # 1. album profiles
    genres = explore.profiles(rec, albums, group="genre")
    moods = explore.profiles(rec, albums, group="mood")
    genres, moods = genres.loc[order], moods.loc[order]
    print("\n== genre and mood profile per album (mean tag probability) ==")
    for a in order:
        g = ", ".join(f"{t} {p:.2f}" for t, p in genres.loc[a].sort_values(ascending=False).head(4).items())
        m = ", ".join(f"{t} {p:.2f}" for t, p in moods.loc[a].sort_values(ascending=False).head(3).items())
        y = f" ({year[a]})" if year[a] is not None else ""
        print(f"{a}{y}  [{int((albums == a).sum())} songs]\n    genre: {g}\n    mood:  {m}")
    explore.plot_profiles(genres, os.path.join(out, "album_genres.png"), title="genre profile per album")
    explore.plot_profiles(moods, os.path.join(out, "album_moods.png"), title="mood profile per album")

    # 2. per song, its closest songs on the other albums
    if len(order) > 1:
        print(f"\n== each song's {args.k} closest songs on the other albums ==")
        for a in order:
            print(f"\n{a}")
            sel = tracks[tracks["album_label"] == a].sort_values(["track_no", "path"], na_position="last")
            for tid, row in sel.iterrows():
                sim = rec.similar(int(tid), k=args.k + 5, space=args.space, exclude_same_album=True)
                # untagged files: albums are folder names, so filter on our labels too
                sim = sim[[albums.get(i) != a for i in sim["id"]]].head(args.k)
                near = "; ".join(f"{_name(r)} [{albums.get(r['id'], '?')}] {r['score']:.2f}"
                                 for r in sim.to_dict(orient="records"))
                print(f"  {_name(row)[:38]:<38s} -> {near}")

        # 3. closest pairs across albums
        print("\n== closest pairs of songs across albums ==")
        pairs = explore.closest_pairs(rec, n=10, space=args.space, exclude_same_album=True)
        for r in pairs.itertuples(index=False):
            print(f"  {r.cosine:.3f}  {r.title_a} [{r.album_a}]  ~  {r.title_b} [{r.album_b}]")

        # 4. a path from the first album's first song to the last album's last song
        first = tracks[tracks["album_label"] == order[0]].sort_values(["track_no", "path"], na_position="last")
        last = tracks[tracks["album_label"] == order[-1]].sort_values(["track_no", "path"], na_position="last")
        a_id, b_id = int(first.index[0]), int(last.index[-1])
        n = min(args.path_length, len(tracks))
        if a_id != b_id and n >= 2:
            path = playlists.path_between(rec, a_id, b_id, n=n, space=args.space)
            print(f"\n== a path from {order[0]} to {order[-1]} ({n} songs) ==")
            for r in path.to_dict(orient="records"):
                print(f"  {r['position']:>2d}. {_name(r)[:40]:<40s} [{albums.get(r['id'], '?')}]"
                      f"  step {r['distance_from_previous']:.3f}")
            steps = path["distance_from_previous"].to_numpy()[1:]
            va, vb = (rec.vector(t, space=args.space) for t in (a_id, b_id))
            direct = 1.0 - float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
            print(f"  mean step {steps.mean():.3f}, largest {steps.max():.3f} "
                  f"(first -> last directly: {direct:.3f})")
    else:
        print("\n(one album only: no cross-album neighbours, pairs or path)")

    # 5. the map
    if len(tracks) >= 2:
        explore.collection_map(rec, os.path.join(out, "map.png"), method="pca", color_by=albums,
                               space=args.space, annotate=len(tracks) <= 80)
    dups = explore.near_duplicates(rec)
    if len(dups):
        print(f"\n{len(dups)} duplicate pair(s) (same recording twice), e.g. {dups.iloc[0]['path_a']}"
              f" = {dups.iloc[0]['path_b']}")
    print(f"\nwrote {', '.join(os.path.join(out, f) for f in ('album_genres.png', 'album_moods.png', 'map.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
