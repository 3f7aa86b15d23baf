"""Cost and agreement of the MIR descriptors computed while indexing (issue #9).

Every audio file under the given folders is analysed three ways, in the same
run (the order rotates from file to file, so that a shared machine slows
them alike):

* ``baseline`` -- what indexing computed before issue #9: the central 30 s
  (the whole track if shorter) decoded at 22050 Hz and described by the
  previous implementation (librosa's STFT, ``spectral_contrast`` and
  ``mfcc``; kept verbatim below as ``baseline_describe``);
* ``new-30s`` -- the same 30 s through the current :func:`describe`: the
  cost of the implementation alone (same definitions: the values should
  match the baseline to a few 1e-5, single-precision FFT aside);
* ``index`` -- what indexing computes now (``blocks._descriptors_for``
  with the default sampling: 4 excerpts of 2.5 s, the middle of 4 of the 8
  CNN windows, ``descriptors.describe_at``; timed alone, so their decoding
  is counted, which indexing shares with the CNN).

With ``--whole`` the whole track is also described (current implementation):
the reference for "how well does an excerpt describe the track".

Cost: CPU is the thread CPU time (``time.thread_time``: immune to other
processes) of decoding, resampling and computing the features, wall the
elapsed time; each the minimum over ``--repeats`` runs, averaged over files.

Agreement over the files: tempo within 4 % (Acc1) and with octave errors
allowed (x2, x1/2, x3, x1/3: Acc2); key exactly the same, and "close" (same,
a fifth apart, or relative major/minor); the Pearson correlation across
files of each MFCC mean/std column (mean and minimum over the 40 columns),
likewise for the spectral/RMS/ZCR statistics and the chroma; loudness
absolute difference (mean, 95th percentile, LU).

Usage::

    taskset -c 1 env OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_descriptors.py /tmp/devset
    ... python benchmarks/bench_descriptors.py /tmp/devset --whole --csv /tmp/desc   # + whole-track reference
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

BASELINE_CLIP_S = 30.0


# --------------------------------------------------------------------------
# the previous implementation (recommender/descriptors.py before issue #9)


def _old_stft_mag(y, D):
    import librosa

    if y.size == 0:
        return np.zeros((D.N_FFT // 2 + 1, 0), dtype=np.float32)
    return np.abs(librosa.stft(y, n_fft=D.N_FFT, hop_length=D.HOP_LENGTH, center=True, pad_mode="constant")).astype(
        np.float32
    )


def _old_mel_db(mag, D):
    mel = D.spectral._mel_basis() @ (mag * mag)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if db.size:
        db = np.maximum(db, db.max() - 80.0)
    return db.astype(np.float32)


def _old_onset(mel_db, D):
    if mel_db.shape[1] < 2:
        return np.zeros(mel_db.shape[1], dtype=np.float32)
    m = np.maximum(mel_db, mel_db.max() - D.tempo._ONSET_TOP_DB)
    flux = np.maximum(0.0, np.diff(m, axis=1)).mean(axis=0)
    return np.concatenate([[0.0], flux]).astype(np.float32)


def _old_key_chroma(y, D):
    import scipy.fft

    n = max(y.size, D.KEY_N_FFT)
    n_frames = 1 + int(math.ceil(max(0, n - D.KEY_N_FFT) / D.KEY_HOP_LENGTH))
    padded = np.zeros((n_frames - 1) * D.KEY_HOP_LENGTH + D.KEY_N_FFT, dtype=np.float32)
    padded[: y.size] = y
    frames = np.lib.stride_tricks.sliding_window_view(padded, D.KEY_N_FFT)[:: D.KEY_HOP_LENGTH]
    fb, lo, hi = D.key._chroma_basis()
    spec = np.abs(scipy.fft.rfft(frames * D._base._hann(D.KEY_N_FFT), axis=1)[:, lo:hi])
    return fb @ np.ascontiguousarray(spec.T, dtype=np.float32)


def _old_key(c, D):
    c = np.asarray(c, dtype=np.float64)
    if not np.any(c > 0) or np.ptp(c) <= 1e-9 * float(np.max(c)):
        return None, None, 0.0
    cz = D.key._zscore(c)
    scores = np.empty((2, 12))
    for m in range(2):
        pz = D.key._zscore(D.key._KEY_PROFILES[D.key._KEY_PROFILE][m])
        tz = D.key._zscore(D.key._SCALE_TEMPLATES[m])
        for k in range(12):
            r_prof = np.mean(cz * np.roll(pz, k))
            r_scale = np.mean(cz * np.roll(tz, k))
            scores[m, k] = (r_prof + D.key._SCALE_WEIGHT * r_scale) / (1.0 + D.key._SCALE_WEIGHT)
    m, k = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return D.PITCH_CLASSES[k], ("major", "minor")[m], float(np.clip(scores[m, k], 0.0, 1.0))


def _old_loudness(y, sr):
    import scipy.signal

    from recommender import descriptors as D

    if y.size == 0:
        return math.nan
    z = scipy.signal.sosfilt(D.loudness._k_weighting_sos(sr).astype(np.float32), y)
    step = int(round(0.1 * sr))
    if z.size < 4 * step:
        ms = np.array([np.mean(z.astype(np.float64) ** 2)])
    else:
        n_steps = z.size // step
        zz = z[: n_steps * step].reshape(n_steps, step)
        e = np.einsum("ij,ij->i", zz, zz, dtype=np.float64)
        ms = (e[:-3] + e[1:-2] + e[2:-1] + e[3:]) / (4 * step)
    return D.loudness._gated_lufs(ms)


def _old_rms_zcr(y, D):
    padded = np.pad(y, D.N_FFT // 2)
    n_frames = 1 + (padded.size - D.N_FFT) // D.HOP_LENGTH
    starts = np.arange(n_frames) * D.HOP_LENGTH
    sq = np.concatenate([[0.0], np.cumsum(padded.astype(np.float64) ** 2)])
    rms = np.sqrt(np.maximum(0.0, (sq[starts + D.N_FFT] - sq[starts]) / D.N_FFT))
    s = np.signbit(padded)
    cross = np.concatenate([[0], np.cumsum(s[1:] != s[:-1])])
    return rms, (cross[starts + D.N_FFT - 1] - cross[starts]) / D.N_FFT


def _old_shape(mag, D):
    freqs = np.arange(mag.shape[0], dtype=np.float64) * D.DESCRIPTOR_SR / D.N_FFT
    total = mag.sum(axis=0, dtype=np.float64)
    safe = np.where(total > 0, total, 1.0)
    centroid = (freqs @ mag) / safe
    second = ((freqs * freqs) @ mag) / safe
    bandwidth = np.sqrt(np.maximum(0.0, second - centroid * centroid))
    cum = np.cumsum(mag.T, axis=1, dtype=np.float32)
    idx = np.argmax(cum >= (0.85 * total)[:, None].astype(np.float32), axis=1)
    return centroid, bandwidth, np.where(total > 0, freqs[idx], 0.0)


def baseline_describe(y, sr):
    """``describe(y, sr=sr)`` as computed before issue #9."""
    import librosa

    from recommender import descriptors as D

    def stats(out, name, x):
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        out[f"{name}_mean"] = float(x.mean()) if x.size else math.nan
        out[f"{name}_std"] = float(x.std()) if x.size else math.nan

    y = D.as_mono(y, sr)
    sr = D.DESCRIPTOR_SR
    out = {"duration_s": y.size / sr}
    mag = _old_stft_mag(y, D)
    mel_db = _old_mel_db(mag, D)
    out["tempo_bpm"], out["tempo_confidence"] = D.tempo._tempo_from_onset(_old_onset(mel_db, D), D.ONSET_FPS)
    chroma = _old_key_chroma(y, D)
    out["key"], out["mode"], out["key_confidence"] = _old_key(chroma.sum(axis=1, dtype=np.float64), D)
    out["loudness_db"] = _old_loudness(y, sr)
    if y.size:
        rms, zcr = _old_rms_zcr(y, D)
        centroid, bandwidth, rolloff = _old_shape(mag, D)
        with np.errstate(divide="ignore", invalid="ignore"):
            contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=D.N_FFT)
        mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=D.N_MFCC)
    else:
        rms = zcr = centroid = bandwidth = rolloff = np.zeros(0)
        contrast, mfcc = np.zeros((7, 0)), np.zeros((D.N_MFCC, 0))
    for name, x in (("rms", rms), ("zcr", zcr), ("spectral_centroid", centroid),
                    ("spectral_bandwidth", bandwidth), ("spectral_rolloff", rolloff)):  # fmt: skip
        stats(out, name, x)
    for i in range(7):
        stats(out, f"spectral_contrast_{i}", contrast[i])
    peak = chroma.max(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cnorm = np.where(peak > 0, chroma / np.where(peak > 0, peak, 1.0), 0.0)
    for i, p in enumerate(D.PITCH_CLASSES):
        stats(out, f"chroma_{p}", cnorm[i])
    for i in range(D.N_MFCC):
        stats(out, f"mfcc_{i}", mfcc[i])
    return {c: out[c] for c in D.DESCRIPTOR_COLUMNS}


# --------------------------------------------------------------------------
# the analyses (each: path -> descriptor dict, timed as a whole)


def central_kwargs(path, clip_s=BASELINE_CLIP_S):
    """What ``blocks._descriptor_clip`` gave before issue #9 (+ the header,
    which indexing reads before the descriptors in any case)."""
    from recommender.io import audio

    info = audio.info(path)
    dur = info.duration_s
    return {"offset_s": (dur - clip_s) / 2, "clip_s": clip_s, "info": info} if dur > clip_s else {"info": info}


def run_baseline(path, kw):
    from recommender.io import audio
    from recommender import descriptors as D

    if "offset_s" in kw:  # as describe_file(path, offset_s=..., clip_s=...) did
        y = audio.load(path, sr=D.DESCRIPTOR_SR, offset_s=kw["offset_s"], duration_s=kw["clip_s"])
    else:
        y = audio.load(path, sr=D.DESCRIPTOR_SR)
    return baseline_describe(y, D.DESCRIPTOR_SR)


def run_new30(path, kw):
    from recommender import descriptors as D

    return D.describe_file(path, **{k: v for k, v in kw.items() if k != "info"})


def run_index(path, kw):
    from recommender.analysis import blocks
    from recommender.recommender import DEFAULT_SAMPLING

    # exactly what indexing runs with the default sampling: the excerpts are the
    # middle of 4 of the CNN's windows.  Timed alone, so their decoding is
    # counted here; while indexing it is shared with the CNN (audio.reuse_decoded).
    return blocks._descriptors_for(path, kw["info"], DEFAULT_SAMPLING)


def run_whole(path, kw):
    from recommender import descriptors as D

    return D.describe_file(path)


# --------------------------------------------------------------------------
# agreement


def tempo_agreement(est, ref):
    est, ref = np.asarray(est, float), np.asarray(ref, float)
    both = np.isfinite(est) & np.isfinite(ref)
    neither = ~np.isfinite(est) & ~np.isfinite(ref)
    a1 = both & (np.abs(est - ref) <= 0.04 * ref)
    a2 = a1.copy()
    for f in (2, 0.5, 3, 1 / 3):
        a2 |= both & (np.abs(est - ref * f) <= 0.04 * ref * f)
    return float(np.mean(a1 | neither)), float(np.mean(a2 | neither))


def key_agreement(est, ref, names):
    same = close = 0
    for (k1, m1), (k2, m2) in zip(est, ref):
        if not (isinstance(k1, str) and isinstance(k2, str)):
            same += k1 == k2
            close += k1 == k2
            continue
        d = (names.index(k1) - names.index(k2)) % 12
        if (d, m1) == (0, m2):
            same += 1
            close += 1
        elif (m1 == m2 and d in (5, 7)) or (m2 == "major" and m1 == "minor" and d == 9) or (
            m2 == "minor" and m1 == "major" and d == 3
        ):
            close += 1
    return same / len(est), close / len(est)


def correlations(est, ref, cols):
    r = []
    for c in cols:
        a, b = est[c].to_numpy(float), ref[c].to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() > 2 and np.std(a[ok]) > 0 and np.std(b[ok]) > 0:
            r.append(np.corrcoef(a[ok], b[ok])[0, 1])
    return (float(np.mean(r)), float(np.min(r))) if r else (math.nan, math.nan)


def agreement_row(name, est, ref, D):
    mfcc = [c for c in D.DESCRIPTOR_COLUMNS if c.startswith("mfcc_")]
    spec = [c for c in D.DESCRIPTOR_COLUMNS if c.startswith(("spectral_", "rms_", "zcr_"))]
    chroma = [c for c in D.DESCRIPTOR_COLUMNS if c.startswith("chroma_")]
    t1, t2 = tempo_agreement(est["tempo_bpm"], ref["tempo_bpm"])
    k1, k2 = key_agreement(list(zip(est["key"], est["mode"])), list(zip(ref["key"], ref["mode"])), D.PITCH_CLASSES)
    mm, mmin = correlations(est, ref, mfcc)
    sm, smin = correlations(est, ref, spec)
    cm, _ = correlations(est, ref, chroma)
    ld = np.abs(est["loudness_db"].to_numpy(float) - ref["loudness_db"].to_numpy(float))
    ld = ld[np.isfinite(ld)]
    return (f"{name:<22}{t1:>6.3f}{t2:>6.3f}{k1:>7.3f}{k2:>6.3f}{mm:>7.3f}{mmin:>6.3f}{sm:>7.3f}{smin:>6.3f}"
            f"{cm:>7.3f}{ld.mean():>7.2f}{np.quantile(ld, 0.95):>6.2f}")  # fmt: skip


AGREEMENT_HEADER = (f"{'':<22}{'tempo':>12}{'key':>13}{'MFCC r':>13}{'spectral r':>13}{'chroma':>7}{'loudness':>13}\n"
                    f"{'':<22}{'Acc1':>6}{'Acc2':>6}{'same':>7}{'close':>6}{'mean':>7}{'min':>6}{'mean':>7}{'min':>6}"
                    f"{'r':>7}{'|d|':>7}{'p95':>6}")  # fmt: skip


# --------------------------------------------------------------------------


def find_audio(roots):
    from recommender.io import audio

    out = []
    for root in roots:
        if os.path.isfile(root):
            out.append(root)
            continue
        for dirpath, _, files in os.walk(root, followlinks=True):
            out += [os.path.join(dirpath, f) for f in files if audio.is_audio_path(f)]
    return sorted(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="*", default=["/tmp/devset"], help="audio files or folders (default /tmp/devset)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per file and analysis (the minimum is kept)")
    p.add_argument("--whole", action="store_true", help="also describe whole tracks (the reference)")
    p.add_argument("--limit", type=int, default=None, help="only the first N files")
    p.add_argument("--csv", default=None, help="write each analysis' table to PREFIX_<name>.csv")
    args = p.parse_args(argv)

    import pandas as pd

    from recommender import descriptors as D

    paths = find_audio(args.roots)[: args.limit]
    if not paths:
        print("no audio files found", file=sys.stderr)
        return 2
    runs = {"baseline": run_baseline, "new-30s": run_new30, "index": run_index}
    if args.whole:
        runs["whole"] = run_whole
    names = list(runs)
    kws = [central_kwargs(path) for path in paths]
    for name in names:  # warm up: imports, filterbanks, FFT plans
        runs[name](paths[0], kws[0])

    cpu = {n: np.full(len(paths), np.inf) for n in names}
    wall = {n: np.full(len(paths), np.inf) for n in names}
    rows: dict[str, list] = {n: [None] * len(paths) for n in names}
    for rep in range(max(1, args.repeats)):
        for i, (path, kw) in enumerate(zip(paths, kws)):
            order = names[(i + rep) % len(names) :] + names[: (i + rep) % len(names)]
            for n in order:
                if n == "whole" and rep > 0:
                    continue  # the reference is not timed twice
                t0, w0 = time.thread_time(), time.perf_counter()
                d = runs[n](path, kw)
                cpu[n][i] = min(cpu[n][i], time.thread_time() - t0)
                wall[n][i] = min(wall[n][i], time.perf_counter() - w0)
                rows[n][i] = {k: v for k, v in d.items() if k != "path"}
    tables = {n: pd.DataFrame(rows[n], index=paths) for n in names}
    if args.csv:
        for n, df in tables.items():
            df.to_csv(f"{args.csv}_{n}.csv", index_label="path")

    audio_s = sum(float(t["duration_s"].sum()) for t in (tables.get("whole"),) if t is not None)
    print(f"{len(paths)} files" + (f", {audio_s / 3600:.2f} h of audio" if audio_s else "")
          + f"; index mode: {D.INDEX_EXCERPTS} excerpts, {D.INDEX_CLIP_S:g} s in all")  # fmt: skip
    print(f"\nCOST per track (min of {args.repeats} runs; decode + resample + features)")
    print(f"{'analysis':<22}{'CPU ms':>9}{'wall ms':>9}{'CPU vs baseline':>17}")
    for n in names:
        c, w = 1000 * cpu[n].mean(), 1000 * wall[n].mean()
        print(f"{n:<22}{c:>9.1f}{w:>9.1f}{cpu[n].mean() / cpu['baseline'].mean():>16.2f}x")

    print("\nAGREEMENT with the baseline (central 30 s, previous implementation)")
    print(AGREEMENT_HEADER)
    for n in names[1:]:
        print(agreement_row(n, tables[n], tables["baseline"], D))
    if "whole" in tables:
        print("\nAGREEMENT with the whole track (current implementation)")
        print(AGREEMENT_HEADER)
        for n in names[:-1]:
            print(agreement_row(n, tables[n], tables["whole"], D))

    # implementation check: new-30s vs baseline, same audio and definitions
    num = [c for c in D.DESCRIPTOR_COLUMNS if c not in ("key", "mode")]
    a, b = tables["new-30s"][num].to_numpy(float), tables["baseline"][num].to_numpy(float)
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-3)
    rel = np.where(np.isnan(a) & np.isnan(b), 0.0, rel)
    worst = np.nanmax(rel, axis=0)
    j = np.argsort(worst)[::-1][:3]
    print("\nnew-30s vs baseline, largest relative differences per column: "
          + ", ".join(f"{num[k]} {worst[k]:.1e}" for k in j)  # fmt: skip
          + f"; key/mode identical on {np.mean(tables['new-30s']['key'].eq(tables['baseline']['key']) & tables['new-30s']['mode'].eq(tables['baseline']['mode'])):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
