"""Analyse one half of the development collection once, for ``retrieval_protocol.py``.

For every track of ``FOLDER/<soundtrack>/<file>`` and every sampling policy of
:data:`POLICIES` the patches are built exactly as ``recommender index``
builds them (:func:`recommender.analysis.blocks._file_blocks`: same windows,
same log-mel), and each shipped network (MSD and MTT musicnn, ONNX Runtime,
one thread) returns per patch its tag probabilities (50), ``penultimate``
(200) and ``pool`` (1506) layers.  Per track it also keeps a Musly-style
timbre model: mean (25) and covariance (25 x 25) of 25 MFCCs
(``librosa.feature.mfcc``, 16 kHz) of the central 30 s, and the
ARTIST/COMPOSER tag (mutagen; blobwars keeps it in ``NAME.tags`` beside the
file).  Every step is timed per track, so the protocol can state what each
candidate costs at index time.

Output: one ``.npz`` of plain arrays (``allow_pickle=False``), float16 patch
vectors; :func:`load` reads it back as a :class:`HalfCache`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

#: (model, patches a track) pairs analysed: both networks at 4, 8 and 16
#: patches, MSD also at 32 (the "best" end of the time curve).
POLICIES = (("msd", 4), ("msd", 8), ("msd", 16), ("msd", 32), ("mtt", 4), ("mtt", 8), ("mtt", 16))
MODELS = {"msd": "msd-musicnn", "mtt": "mtt-musicnn"}
LAYERS = ("probs", "pen", "pool")
MFCC_EXCERPT_S = 30.0
N_MFCC = 25


def artist_of(path) -> str:
    """Normalised ARTIST (else COMPOSER) tag of ``path``; ``''`` when it has none.

    Lower case, spaces collapsed; a blobwars file without extension reads the
    ``NAME.tags`` text file beside its target.
    """
    import mutagen

    real = os.path.realpath(path)
    name = ""
    try:
        m = mutagen.File(real)
        tags = m.tags if m is not None else None
        if tags:
            for key in ("artist", "ARTIST", "composer", "COMPOSER"):
                v = tags.get(key)
                if v and str(v[0]).strip():
                    name = str(v[0])
                    break
    except Exception:  # noqa: BLE001 - an unreadable tag is "no tag"
        name = ""
    if not name and os.path.exists(real + ".tags"):
        with open(real + ".tags", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("artist="):
                    name = line.split("=", 1)[1]
                    break
    return " ".join(name.lower().split())


def mfcc_gaussian(path, duration_s):
    """Mean (25,) and covariance (25, 25) of 25 MFCCs of the central 30 s of ``path``."""
    import librosa

    from recommender.io import audio

    start = max(0.0, duration_s / 2 - MFCC_EXCERPT_S / 2)
    y = audio.load(path, sr=16000, offset_s=start, duration_s=min(MFCC_EXCERPT_S, duration_s))
    M = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=N_MFCC).T.astype(np.float64)  # (frames, 25)
    return M.mean(axis=0), np.cov(M, rowvar=False) + 1e-6 * np.eye(N_MFCC)


def build(folder, out, *, limit=None, policies=POLICIES):
    """Analyse every track under ``folder``; write ``out`` (.npz). Returns seconds spent.

    ``policies``: the ``(model, patches)`` pairs to analyse (default :data:`POLICIES`);
    the confirmation half needs only those of the default and the confirmed candidate.
    """
    from _common import audio_files

    from recommender.analysis import Sampling
    from recommender.analysis.blocks import _file_blocks
    from recommender.io import audio
    from recommender.models import load_model

    files = audio_files(folder, limit)
    if not files:
        raise SystemExit(f"{folder}: no audio files (lay the half out first: benchmarks/devset.py)")
    models = {k: load_model(v, threads=1) for k, v in MODELS.items() if any(m == k for m, _ in policies)}
    policies = tuple(policies)
    windows = sorted({n for _, n in policies})
    arr = {f"{m}{n}_{L}": [] for m, n in policies for L in LAYERS}
    lens = {f"{m}{n}": [] for m, n in policies}
    timing = {k: [] for k in [f"decode{n}" for n in windows] + ["mfcc"] + [f"cnn_{m}{n}" for m, n in policies]}
    mu, cov, artists, durations = [], [], [], []
    t_all = time.perf_counter()
    for i, f in enumerate(files):
        inf = audio.info(f)
        durations.append(inf.duration_s)
        patches = {}
        for n in windows:
            t0 = time.perf_counter()
            blocks = list(_file_blocks(f, Sampling.spread(n), 64, inf))
            patches[n] = np.concatenate([b[1] for b in blocks])
            timing[f"decode{n}"].append(time.perf_counter() - t0)
        for m, n in policies:
            t0 = time.perf_counter()
            probs, pen, pool = models[m].predict_patches(patches[n], with_pool=True)
            timing[f"cnn_{m}{n}"].append(time.perf_counter() - t0)
            for L, v in zip(LAYERS, (probs, pen, pool)):
                arr[f"{m}{n}_{L}"].append(v.astype(np.float16))
            lens[f"{m}{n}"].append(len(pen))
        t0 = time.perf_counter()
        a, c = mfcc_gaussian(f, inf.duration_s)
        timing["mfcc"].append(time.perf_counter() - t0)
        mu.append(a)
        cov.append(c)
        artists.append(artist_of(f))
        if (i + 1) % 10 == 0:
            print(f"  {folder}: {i + 1}/{len(files)} tracks, {time.perf_counter() - t_all:.0f} s", flush=True)
    arrays = {"paths": np.array(files, dtype=str), "artists": np.array(artists, dtype=str),
              "duration_s": np.array(durations), "mfcc_mean": np.stack(mu), "mfcc_cov": np.stack(cov)}
    arrays.update({k: np.concatenate(v) for k, v in arr.items()})
    arrays.update({f"lens_{k}": np.array(v, dtype=np.int64) for k, v in lens.items()})
    arrays.update({f"time_{k}": np.array(v) for k, v in timing.items()})
    tmp = os.fspath(out) + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return time.perf_counter() - t_all


@dataclasses.dataclass
class HalfCache:
    """One analysed half: per-track lists of per-patch arrays, MFCC Gaussians, labels, timings.

    Attributes
    ----------
    paths : list of str (n,)
    labels : np.ndarray of str (n,)      soundtrack (parent folder)
    artists : np.ndarray of str (n,)     normalised ARTIST/COMPOSER tag, '' if none
    patches : dict ``'msd8_pool'`` -> list of float32 (m_i, d)
    mfcc_mean : float64 (n, 25);  mfcc_cov : float64 (n, 25, 25)
    timing : dict ``'cnn_msd8'`` / ``'decode8'`` / ``'mfcc'`` -> float64 (n,) seconds per track
    duration_s : float64 (n,)
    """

    paths: list
    labels: np.ndarray
    artists: np.ndarray
    patches: dict
    mfcc_mean: np.ndarray
    mfcc_cov: np.ndarray
    timing: dict
    duration_s: np.ndarray

    def __len__(self):
        return len(self.paths)

    def subset(self, rows):
        rows = np.asarray(rows)
        return HalfCache([self.paths[i] for i in rows], self.labels[rows], self.artists[rows],
                         {k: [v[i] for i in rows] for k, v in self.patches.items()},
                         self.mfcc_mean[rows], self.mfcc_cov[rows],
                         {k: v[rows] for k, v in self.timing.items()}, self.duration_s[rows])


def load(path) -> HalfCache:
    """Read a cache written by :func:`build`."""
    with np.load(path, allow_pickle=False) as z:
        paths = [str(p) for p in z["paths"]]
        patches = {}
        for k in z.files:
            if k.startswith("lens_"):
                pol = k[len("lens_"):]
                cuts = np.cumsum(z[k])[:-1]
                for L in LAYERS:
                    patches[f"{pol}_{L}"] = np.split(z[f"{pol}_{L}"].astype(np.float32), cuts)
        return HalfCache(
            paths=paths,
            labels=np.array([os.path.basename(os.path.dirname(p)) for p in paths]),
            artists=z["artists"].astype(str),
            patches=patches,
            mfcc_mean=z["mfcc_mean"],
            mfcc_cov=z["mfcc_cov"],
            timing={k[len("time_"):]: z[k] for k in z.files if k.startswith("time_")},
            duration_s=z["duration_s"],
        )


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--policies", default=None, help="e.g. 'msd8,mtt8' (default: every POLICIES entry)")
    a = ap.parse_args()
    pols = POLICIES if not a.policies else [(p[:3], int(p[3:])) for p in a.policies.split(",")]
    print(f"{a.out}: {build(a.folder, a.out, limit=a.limit, policies=pols):.0f} s")
