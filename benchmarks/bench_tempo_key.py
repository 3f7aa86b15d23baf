"""Tempo and key accuracy of :mod:`recommender.descriptors` against baselines.

Everything is synthesized here with NumPy (nothing downloaded):

* tempo items: 2/4, 3/4, 4/4 and 6/8 patterns at tempi drawn from 60-200 BPM
  (6/8: 60-140 dotted-quarter beats, i.e. 180-420 eighths per minute), played
  by clicks (metronome with accented downbeats), drum kits (kick/snare/hi-hat,
  several tunings; plain, or busy with 16th hats, syncopated kicks and ghost
  notes), plucked tones (Karplus-Strong bass + melody) or a piano-
  like tone over a sustained pad; random swing, timing jitter, velocity
  variation and additive noise (SNR 6-30 dB).  The annotated tempo is the
  quarter note for x/4 meters and the dotted quarter for 6/8.
* key items: I-IV-V-I, i-iv-V-i (harmonic minor), ii-V-I (major) and
  i-VI-iv-V (minor) progressions in all 24 keys, bass + voiced triads in
  octaves 2-5, played by organ, piano-like, plucked (Karplus-Strong),
  sawtooth "strings" or an FM electric piano.

Metrics: Accuracy1 = within 4 % of the annotation; Accuracy2 = within 4 % of
1x, 2x, 1/2x, 3x or 1/3x (MIREX).  Key: share exactly right, and the MIREX
weighted score (1 correct, 0.5 fifth, 0.3 relative, 0.2 parallel).

The baselines run in the same invocation: ``librosa.beat.beat_track`` with
its defaults for tempo; for key a plain binary major/minor scale template on
librosa's default ``chroma_stft``.

Usage::

    PYTHONPATH=. python benchmarks/bench_tempo_key.py            # TEST set
    PYTHONPATH=. python benchmarks/bench_tempo_key.py --split dev --n-tempo 120
    PYTHONPATH=. python benchmarks/bench_tempo_key.py --no-key --excerpts 4   # as indexing (4 x 2.5 s)
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

SR = 22050
NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
SPLIT_SEEDS = {"dev": 1000, "test": 2000}


# --------------------------------------------------------------------------
# sound sources


def _env(n, decay_s, sr=SR):
    return np.exp(-np.arange(n) / (decay_s * sr))


def kick(rng, sr=SR):
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    f0, f1 = rng.uniform(100, 180), rng.uniform(40, 60)
    f = f1 + (f0 - f1) * np.exp(-t / 0.04)
    ph = 2 * np.pi * np.cumsum(f) / sr
    click = rng.normal(0, 1, n) * _env(n, 0.003)
    return (np.sin(ph) * _env(n, rng.uniform(0.12, 0.3)) + 0.3 * click).astype(np.float32)


def snare(rng, sr=SR):
    import scipy.signal

    n = int(0.25 * sr)
    noise = rng.normal(0, 1, n)
    b, a = scipy.signal.butter(2, [rng.uniform(800, 1500) / (sr / 2), rng.uniform(5000, 9000) / (sr / 2)], "band")
    noise = scipy.signal.lfilter(b, a, noise)
    tone = np.sin(2 * np.pi * rng.uniform(160, 240) * np.arange(n) / sr)
    return (0.8 * noise * _env(n, rng.uniform(0.05, 0.12)) + 0.5 * tone * _env(n, 0.05)).astype(np.float32)


def hihat(rng, sr=SR):
    import scipy.signal

    n = int(0.08 * sr)
    b, a = scipy.signal.butter(2, rng.uniform(6000, 8000) / (sr / 2), "high")
    return (scipy.signal.lfilter(b, a, rng.normal(0, 1, n)) * _env(n, rng.uniform(0.01, 0.03))).astype(np.float32)


def click(freq, sr=SR):
    n = int(0.03 * sr)
    return (np.sin(2 * np.pi * freq * np.arange(n) / sr) * _env(n, 0.006)).astype(np.float32)


def pluck(freq, dur_s, rng, sr=SR, brightness=0.5):
    """Karplus-Strong plucked string."""
    n = int(dur_s * sr)
    p = max(2, int(round(sr / freq)))
    buf = rng.uniform(-1, 1, p)
    out = np.empty(n)
    decay = 0.996
    b = 0.5 + 0.5 * brightness
    for i in range(0, n, p):  # vectorised by period
        m = min(p, n - i)
        out[i : i + m] = buf[:m]
        buf = decay * (b * buf + (1 - b) * np.roll(buf, 1))
    return (out * _env(n, dur_s)).astype(np.float32)


def harmonic_tone(freq, dur_s, *, kind, sr=SR, rng=None):
    n = int(dur_s * sr)
    t = np.arange(n) / sr
    out = np.zeros(n)
    if kind == "organ":
        for h, a in ((1, 1.0), (2, 0.6), (3, 0.3), (4, 0.25), (6, 0.1), (8, 0.08)):
            if freq * h < sr / 2:
                out += a * np.sin(2 * np.pi * freq * h * t)
        env = np.minimum(1.0, t / 0.02) * np.minimum(1.0, (dur_s - t) / 0.05).clip(0)
    elif kind == "piano":
        for h in range(1, 12):
            fh = freq * h * math.sqrt(1 + 0.0004 * h * h)
            if fh < sr / 2:
                out += (1.0 / h**1.2) * np.sin(2 * np.pi * fh * t) * np.exp(-t * (1.5 + 0.8 * h))
        env = np.minimum(1.0, t / 0.003) * np.minimum(1.0, (dur_s - t) / 0.03).clip(0)
    elif kind == "strings":  # band-limited sawtooth with vibrato and slow attack
        vib = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * t)
        ph = 2 * np.pi * freq * np.cumsum(vib) / sr
        for h in range(1, 20):
            if freq * h < sr / 2:
                out += ((-1) ** (h + 1) / h) * np.sin(h * ph)
        env = np.minimum(1.0, t / 0.15) * np.minimum(1.0, (dur_s - t) / 0.1).clip(0)
    elif kind == "epiano":  # 2-operator FM
        mod = 2.0 * np.exp(-t * 3) * np.sin(2 * np.pi * freq * 1.0 * t)
        out = np.sin(2 * np.pi * freq * t + mod) * np.exp(-t * 1.2)
        env = np.minimum(1.0, t / 0.002) * np.minimum(1.0, (dur_s - t) / 0.03).clip(0)
    else:
        raise ValueError(kind)
    return (out * env).astype(np.float32)


def midi_hz(m):
    return 440.0 * 2 ** ((m - 69) / 12)


def add_at(buf, x, start, gain):
    s = int(round(start))
    if s >= buf.size or s < 0:
        return
    m = min(x.size, buf.size - s)
    buf[s : s + m] += gain * x[:m]


def add_noise(y, snr_db, rng, colour="white"):
    n = rng.normal(0, 1, y.size)
    if colour == "pink":
        f = np.fft.rfft(n)
        f /= np.sqrt(np.maximum(1, np.arange(f.size)))
        n = np.fft.irfft(f, y.size)
    p_sig = np.mean(y**2) + 1e-12
    n *= math.sqrt(p_sig / (10 ** (snr_db / 10)) / np.mean(n**2))
    return (y + n).astype(np.float32)


# --------------------------------------------------------------------------
# tempo items

METERS = {"2/4": (2, 2), "3/4": (3, 2), "4/4": (4, 2), "6/8": (2, 3)}  # beats/bar, subdivisions/beat
INSTRUMENTS = ["clicks", "drums", "busy-drums", "pluck", "piano+pad"]


def tempo_item(rng, *, duration_s=20.0, sr=SR):
    """One synthesized rhythm: (y, bpm, description)."""
    meter = str(rng.choice(list(METERS)))
    beats, sub = METERS[meter]
    bpm = float(rng.uniform(60, 140) if meter == "6/8" else rng.uniform(60, 200))
    inst = str(rng.choice(INSTRUMENTS))
    swing = sub == 2 and rng.random() < 0.3
    jitter_s = rng.uniform(0, 0.012)
    beat_s = 60.0 / bpm
    y = np.zeros(int(duration_s * sr), dtype=np.float32)
    sounds = {"kick": kick(rng), "snare": snare(rng), "hat": hihat(rng)}
    hi, lo = rng.uniform(1200, 2000), rng.uniform(600, 1000)
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    root = int(rng.integers(36, 48))
    pad_kind = str(rng.choice(["organ", "strings"]))
    if inst == "piano+pad":
        chord = [root + 12, root + 16, root + 19, root + 24]
        for m in chord:
            y += 0.08 * harmonic_tone(midi_hz(m), duration_s, kind=pad_kind)[: y.size]
    n_beats = int(duration_s / beat_s) + 1
    for b in range(n_beats):
        bar_pos = b % beats
        for s in range(sub):
            t = (b + s / sub) * beat_s
            if swing and s == 1:
                t = (b + 2 / 3) * beat_s
            t += rng.normal(0, jitter_s)
            pos = t * sr
            vel = rng.uniform(0.8, 1.0)
            on_beat = s == 0
            if inst == "clicks":
                if on_beat:
                    add_at(y, click(hi if bar_pos == 0 else lo), pos, vel * (1.0 if bar_pos == 0 else 0.7))
                elif rng.random() < 0.25:
                    add_at(y, click(lo), pos, 0.25 * vel)
            elif inst == "drums":
                add_at(y, sounds["hat"], pos, vel * (0.35 if on_beat else 0.22))
                if on_beat:
                    if meter in ("4/4",):
                        name = "kick" if bar_pos in (0, 2) else "snare"
                    elif meter == "3/4":
                        name = "kick" if bar_pos == 0 else "snare"
                    else:  # 2/4 and 6/8: kick on 1, snare on 2
                        name = "kick" if bar_pos == 0 else "snare"
                    add_at(y, sounds[name], pos, vel * (1.0 if name == "kick" else 0.7))
                elif meter == "4/4" and bar_pos == 2 and rng.random() < 0.3:
                    add_at(y, sounds["kick"], pos, 0.6 * vel)
            elif inst == "busy-drums":  # 16th (or 8th-triplet) hats, syncopated kicks, ghost snares
                n_hat = 2 if sub == 2 else 1
                for h in range(n_hat):
                    add_at(y, sounds["hat"], pos + h * beat_s / (2 * sub) * sr, vel * (0.3 if on_beat and h == 0 else 0.15))
                if on_beat:
                    name = "kick" if bar_pos == 0 or (beats == 4 and bar_pos == 2) else "snare"
                    add_at(y, sounds[name], pos, vel * (1.0 if name == "kick" else 0.75))
                else:
                    r = rng.random()
                    if r < 0.25:
                        add_at(y, sounds["kick"], pos, 0.6 * vel)
                    elif r < 0.45:
                        add_at(y, sounds["snare"], pos, 0.2 * vel)
            elif inst == "pluck":
                if on_beat:
                    f = midi_hz(root + (0 if bar_pos == 0 else int(rng.choice([7, 12, 5]))))
                    add_at(y, pluck(f, min(0.6, beat_s * 1.5), rng), pos, vel * (1.0 if bar_pos == 0 else 0.8))
                if rng.random() < (0.7 if on_beat else 0.3):
                    f = midi_hz(root + 24 + int(rng.choice(scale)))
                    add_at(y, pluck(f, 0.4, rng, brightness=0.8), pos, vel * (0.45 if on_beat else 0.25))
            else:  # piano over pad
                if on_beat:
                    f = midi_hz(root + 12 + int(rng.choice(scale)))
                    add_at(y, harmonic_tone(f, 0.5, kind="piano"), pos, vel * (0.9 if bar_pos == 0 else 0.7))
                elif rng.random() < 0.3:
                    f = midi_hz(root + 24 + int(rng.choice(scale)))
                    add_at(y, harmonic_tone(f, 0.3, kind="piano"), pos, 0.3 * vel)
    if rng.random() < 0.5:
        snr = rng.uniform(6, 30)
        y = add_noise(y, snr, rng, colour=str(rng.choice(["white", "pink"])))
        noise = f"{snr:.0f}dB"
    else:
        noise = "-"
    y = (0.5 * y / (np.max(np.abs(y)) + 1e-9)).astype(np.float32)
    desc = f"{meter} {inst}{' swing' if swing else ''} noise={noise}"
    return y, bpm, desc


# --------------------------------------------------------------------------
# key items

PROGRESSIONS = {
    # (mode, [(root degree in semitones, chord quality)])
    "I-IV-V-I": ("major", [(0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")]),
    "ii-V-I": ("major", [(2, "min"), (7, "maj"), (0, "maj")]),
    "i-iv-V-i": ("minor", [(0, "min"), (5, "min"), (7, "maj"), (0, "min")]),
    "i-VI-iv-V-i": ("minor", [(0, "min"), (8, "maj"), (5, "min"), (7, "maj"), (0, "min")]),
}
TIMBRES = ["organ", "piano", "pluck", "strings", "epiano"]


def key_item(tonic, prog, timbre, rng, *, chord_s=1.5, sr=SR):
    mode, chords = PROGRESSIONS[prog]
    octave = int(rng.integers(3, 5))  # triads in octave 3 or 4
    base = 12 * (octave + 1) + tonic
    y = np.zeros(int(chord_s * len(chords) * sr) + sr // 2, dtype=np.float32)
    for i, (deg, q) in enumerate(chords):
        root = base + deg
        third = 3 if q == "min" else 4
        notes = [root, root + third, root + 7, root + 12]
        if rng.random() < 0.5:  # first inversion voicing
            notes = [root + third, root + 7, root + 12, root + 12 + third]
        notes = [root - 12 - (12 if octave == 4 else 0)] + notes  # bass
        t0 = i * chord_s * sr
        for m in notes:
            f = midi_hz(m)
            if timbre == "pluck":
                x = pluck(f, chord_s, rng)
            else:
                x = harmonic_tone(f, chord_s, kind=timbre)
            add_at(y, x, t0, 0.3)
    if rng.random() < 0.3:
        y = add_noise(y, rng.uniform(15, 30), rng)
    return (0.5 * y / (np.max(np.abs(y)) + 1e-9)).astype(np.float32), NAMES[tonic], mode


# --------------------------------------------------------------------------
# metrics and baselines


def tempo_hits(est, ref, tol=0.04):
    if not (est > 0 and math.isfinite(est)):
        return False, False
    a1 = abs(est - ref) <= tol * ref
    a2 = any(abs(est - ref * f) <= tol * ref * f for f in (1, 2, 0.5, 3, 1 / 3))
    return a1, a2


def key_score(est_key, est_mode, key, mode):
    """MIREX weighted key score."""
    if est_key is None:
        return 0.0
    e, r = NAMES.index(est_key), NAMES.index(key)
    if (e, est_mode) == (r, mode):
        return 1.0
    if est_mode == mode and (e - r) % 12 in (5, 7):
        return 0.5
    if mode == "major" and est_mode == "minor" and (e - r) % 12 == 9:
        return 0.3
    if mode == "minor" and est_mode == "major" and (e - r) % 12 == 3:
        return 0.3
    if e == r:
        return 0.2
    return 0.0


def baseline_tempo(y, sr):
    import librosa

    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    return float(np.atleast_1d(tempo)[0])


def baseline_key(y, sr):
    import librosa

    # tuning=0: librosa.estimate_tuning (piptrack) segfaults with numba 0.68 + numpy 2.4
    c = librosa.feature.chroma_stft(y=y, sr=sr, tuning=0.0).sum(axis=1)
    major = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], float)
    minor = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], float)
    best = (-np.inf, None, None)
    for mode, tmpl in (("major", major), ("minor", minor)):
        for k in range(12):
            r = np.corrcoef(c, np.roll(tmpl, k))[0, 1]
            if r > best[0]:
                best = (r, NAMES[k], mode)
    return best[1], best[2]


# --------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="test", help="seed family (tune on dev, report test)")
    p.add_argument("--n-tempo", type=int, default=120, help="number of tempo items")
    p.add_argument("--duration-s", type=float, default=20.0, help="length of each tempo item")
    p.add_argument("--key-timbres", type=int, default=2, help="timbres per key x progression (<= 5)")
    p.add_argument("--no-key", action="store_true")
    p.add_argument("--no-tempo", action="store_true")
    p.add_argument("--excerpts", type=int, default=None,
                   help="estimate tempo as indexing does: describe_excerpts() of this many excerpts "
                        "(--clip-s seconds in all) spread over each item")
    p.add_argument("--clip-s", type=float, default=10.0, help="seconds analysed in all with --excerpts")
    p.add_argument("--verbose", "-v", action="store_true", help="list the misses")
    args = p.parse_args(argv)

    import librosa

    from recommender import descriptors as D

    seed = SPLIT_SEEDS[args.split]
    print(f"split={args.split} seed={seed} librosa={librosa.__version__}")

    def tempo_of(y):
        if not args.excerpts:
            return D.estimate_tempo(y, sr=SR)
        length = int(round(args.clip_s / args.excerpts * SR))
        starts = [int(round((i + 0.5) / args.excerpts * (y.size - length))) for i in range(args.excerpts)]
        d = D.describe_excerpts([y[s : s + length] for s in starts], sr=SR)
        return d["tempo_bpm"], d["tempo_confidence"]

    if not args.no_tempo:
        rng = np.random.default_rng(seed)
        items = [tempo_item(rng, duration_s=args.duration_s) for _ in range(args.n_tempo)]
        tempo_of(items[0][0])  # warm caches
        baseline_tempo(items[0][0], SR)
        res = {"ours": [], "beat_track": []}
        secs = {"ours": 0.0, "beat_track": 0.0}
        by_cat = {}
        for y, bpm, desc in items:
            t0 = time.perf_counter()
            est, _conf = tempo_of(y)
            secs["ours"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            base = baseline_tempo(y, SR)
            secs["beat_track"] += time.perf_counter() - t0
            h = tempo_hits(est, bpm)
            res["ours"].append(h)
            res["beat_track"].append(tempo_hits(base, bpm))
            cat = desc.split(" noise")[0].replace(" swing", "")
            by_cat.setdefault(cat, []).append(h)
            if args.verbose and not h[0]:
                print(f"  miss: {desc:38s} ref={bpm:6.1f} ours={est:6.1f} beat_track={base:6.1f}")
        n = len(items)
        how = f"; ours from {args.excerpts} excerpts, {args.clip_s:g} s in all" if args.excerpts else ""
        print(f"\nTEMPO: {n} items of {args.duration_s:.0f} s, 60-200 BPM (6/8: 60-140), tolerance 4 %{how}")
        print(f"{'method':<22}{'Accuracy1':>10}{'Accuracy2':>10}{'s/item':>9}")
        for m in ("ours", "beat_track"):
            a1 = np.mean([h[0] for h in res[m]])
            a2 = np.mean([h[1] for h in res[m]])
            print(f"{m:<22}{a1:>10.3f}{a2:>10.3f}{secs[m] / n:>9.4f}")
        a1o, a1b = (np.mean([h[0] for h in res[m]]) for m in ("ours", "beat_track"))
        print(f"{'ours - beat_track':<22}{a1o - a1b:>+10.3f}{np.mean([h[1] for h in res['ours']]) - np.mean([h[1] for h in res['beat_track']]):>+10.3f}"
              f"{secs['ours'] / max(secs['beat_track'], 1e-9):>8.2f}x")
        print("\nours by meter/instrument (Accuracy1, Accuracy2, n):")
        for cat in sorted(by_cat):
            hs = by_cat[cat]
            print(f"  {cat:<22}{np.mean([h[0] for h in hs]):>6.2f}{np.mean([h[1] for h in hs]):>6.2f}{len(hs):>4}")

    if not args.no_key:
        rng = np.random.default_rng(seed + 1)
        items = []
        for tonic in range(12):
            for prog in PROGRESSIONS:
                for timbre in rng.choice(TIMBRES, size=min(args.key_timbres, len(TIMBRES)), replace=False):
                    y, k, mode = key_item(tonic, prog, str(timbre), rng)
                    items.append((y, k, mode, f"{prog} {timbre}"))
        sc = {"ours": [], "template": []}
        secs = {"ours": 0.0, "template": 0.0}
        for y, k, mode, desc in items:
            t0 = time.perf_counter()
            ek, em, _ = D.estimate_key(y, sr=SR)
            secs["ours"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            bk, bm = baseline_key(y, SR)
            secs["template"] += time.perf_counter() - t0
            sc["ours"].append(key_score(ek, em, k, mode))
            sc["template"].append(key_score(bk, bm, k, mode))
            if args.verbose and (ek, em) != (k, mode):
                print(f"  key miss: {desc:24s} ref={k} {mode} ours={ek} {em} template={bk} {bm}")
        n = len(items)
        print(f"\nKEY: {n} items (24 keys x {len(PROGRESSIONS) // 2} progressions/mode x {args.key_timbres} timbres)")
        print(f"{'method':<22}{'correct':>9}{'+fifth':>8}{'+rel':>7}{'MIREX':>8}{'s/item':>9}")
        for m in ("ours", "template"):
            s = np.array(sc[m])
            print(f"{m:<22}{np.mean(s == 1):>9.3f}{np.mean(s >= 0.5):>8.3f}{np.mean(s >= 0.3):>7.3f}{s.mean():>8.3f}{secs[m] / n:>9.4f}")
        print(f"{'ours - template':<22}{np.mean(np.array(sc['ours']) == 1) - np.mean(np.array(sc['template']) == 1):>+9.3f}"
              f"{'':>22}{np.mean(sc['ours']) - np.mean(sc['template']):>+8.3f}{secs['ours'] / max(secs['template'], 1e-9):>8.2f}x")

    # speed: one 3-minute "track" (drums + pad + noise), full describe()
    rng = np.random.default_rng(seed + 2)
    y = np.concatenate([tempo_item(rng, duration_s=30.0)[0] for _ in range(6)])
    D.describe(y[: SR * 5], sr=SR)
    t0 = time.perf_counter()
    D.describe(y, sr=SR)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    baseline_tempo(y, SR)
    t_base = time.perf_counter() - t0
    print(f"\nSPEED: describe() of a {y.size / SR:.0f} s track: {t_ours:.3f} s "
          f"(librosa beat_track alone: {t_base:.3f} s, ratio {t_ours / t_base:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
