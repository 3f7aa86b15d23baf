"""Describe one track: descriptors, genre/mood profile, changes over time, five pictures.

Usage::

    python examples/describe_track.py song.mp3 [--out DIR] [--clip S]

Prints tempo, key, loudness and brightness, the grouped tag profile, the
per-segment timeline and the points where the track changes, and writes
``DIR/<name>_{waveform,spectrogram,mfcc,chroma,taggram}.png`` (DIR defaults
to the current folder).  No index is needed; the pretrained network is
loaded once and reused for the profile, the timeline and the taggram.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--out", default=".", help="folder for the PNGs (default: current folder)")
    ap.add_argument("--clip", type=float, default=None, help="descriptors of the central S seconds only")
    args = ap.parse_args(argv)

    from recommender import AudioError, classify
    from recommender.viz import plots
    from recommender.descriptors import describe_file
    from recommender.analysis.profiles import changes, profile, profile_text, timeline

    try:
        d = describe_file(args.file, clip_s=args.clip)
    except AudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    print(f"== {args.file}")
    key = f"{d['key']} {d['mode']}" if d["key"] else "unknown"
    print(f"duration   {d['duration_s']:.1f} s")
    print(f"tempo      {d['tempo_bpm']:.1f} BPM (confidence {d['tempo_confidence']:.2f})")
    print(f"key        {key} (confidence {d['key_confidence']:.2f})")
    print(f"loudness   {d['loudness_db']:.1f} LUFS")
    print(f"brightness {d['spectral_centroid_mean'] / 1000:.2f} kHz spectral centroid")

    c = classify(args.file)  # whole track, every 3-s patch
    print(f"\n== profile: {profile_text(c.tags)}")
    for group, tags in profile(c.tags, top=3).items():
        print(f"  {group:<12s}" + ", ".join(f"{t} {p:.2f}" for t, p in tags))

    tl = timeline(args.file, classification=c)
    print(f"\n== timeline ({len(tl)} segments)")
    print(tl[["start_s", "end_s", "tempo_bpm", "loudness_db", "genre", "mood"]].round(1).to_string(index=False))
    ch = changes(tl)
    print("\n== changes")
    if len(ch) == 0:
        print("  none marked")
    for r in ch.itertuples(index=False):
        print(f"  {r.time_s:7.1f} s  {r.description}")

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.splitext(os.path.basename(args.file))[0]
    print("\n== pictures")
    for kind in plots.KINDS:
        out = os.path.join(args.out, f"{stem}_{kind}.png")
        source = c if kind == "taggram" else args.file
        plots.plot(source, kind=kind, out=out)
        print(f"  {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
