"""Lay out the development collection of ``DEVSET.md`` as ``OUT/<soundtrack>/<file>`` symlinks.

The label of a track is the Debian package (soundtrack) it ships in. Only the
packages named in ``DEVSET.md`` are used; tracks shorter than 20 s are left out,
as are the copies that file lists (``menu.ogg`` of widelands, the sped-up
supertuxkart copies, …)::

    python benchmarks/devset.py /tmp/devset                 # selection half (the default)
    python benchmarks/devset.py /tmp/devset-confirm --half confirmation
    python benchmarks/devset.py /tmp/devset --packages supertux-data hedgewars-data  # a subset

Packages that are not installed are skipped with a note (install them with the
``apt-get`` lines of ``DEVSET.md``).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: package -> (label, glob of the music files, globs left out)
SELECTION = {
    "supertux-data": ("supertux", "*/music/*.ogg", ()),
    "hedgewars-data": ("hedgewars", "*/Music/*.ogg", ()),
    "freedroidrpg-data": ("freedroidrpg", "*/sound/music/*.ogg", ()),
    "xmoto-data": ("xmoto", "*/Musics/*.ogg", ()),
    "lincity-ng-data": ("lincity-ng", "*/music/*.ogg", ()),
}
CONFIRMATION = {
    "widelands-data": ("widelands", "*/widelands/data/music/*.ogg", ("*/menu.ogg",)),
    "supertuxkart-data": ("supertuxkart", "*/supertuxkart/data/music/*.ogg", ("*_fast.ogg", "*/farm_f.ogg")),
    "redeclipse-data": ("redeclipse", "*/sounds/music/*.ogg", ()),
    "warmux-data": ("warmux", "*/warmux/music/*/*.ogg", ("*Apnee2.ogg",)),
    "ardentryst": ("ardentryst", "*/ardentryst/Music/*.ogg", ("*/theme1_raw.ogg",)),
    "pushover-data": ("pushover", "*/pushover/themes/*.ogg", ()),
    "blobwars-data": ("blobwars", "*/blobwars/music/*", ("*.tags",)),
}
MIN_DURATION_S = 20.0


def package_files(pkg: str) -> list[str]:
    try:
        out = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [p for p in out.splitlines() if os.path.isfile(p)]


def layout(out: str, packages: dict, *, min_duration_s: float = MIN_DURATION_S) -> dict[str, int]:
    """Make ``out/<label>/<file>`` symlinks; returns tracks per label."""
    from recommender.io.audio import info

    counts = {}
    for pkg, (label, pattern, leave_out) in packages.items():
        files = [p for p in package_files(pkg) if fnmatch.fnmatch(p, pattern)
                 and not any(fnmatch.fnmatch(p, x) for x in leave_out)]
        if not files:
            print(f"  {pkg}: not installed (or no music), skipped", file=sys.stderr)
            continue
        os.makedirs(os.path.join(out, label), exist_ok=True)
        n = 0
        for p in sorted(files):
            try:
                if info(p).duration_s < min_duration_s:
                    continue
            except Exception as exc:  # noqa: BLE001 - a broken file is reported, not fatal
                print(f"  {p}: {exc}", file=sys.stderr)
                continue
            name = os.path.basename(p)
            if "." not in name:  # blobwars ships Ogg Vorbis without an extension
                name += ".ogg"
            dst = os.path.join(out, label, name)
            if not os.path.lexists(dst):
                os.symlink(p, dst)
            n += 1
        counts[label] = n
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--half", choices=["selection", "confirmation"], default="selection")
    ap.add_argument("--packages", nargs="*", default=None)
    a = ap.parse_args(argv)
    table = SELECTION if a.half == "selection" else CONFIRMATION
    if a.packages:
        table = {k: v for k, v in {**SELECTION, **CONFIRMATION}.items() if k in a.packages}
    counts = layout(a.out, table)
    for label, n in counts.items():
        print(f"{label:>14s}: {n} tracks")
    print(f"{'total':>14s}: {sum(counts.values())} tracks in {a.out}")


if __name__ == "__main__":
    main()
