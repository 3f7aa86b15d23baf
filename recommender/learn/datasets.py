"""Labelled audio datasets and honest train/validation/test splits.

Three layouts are read, each into the same :class:`pandas.DataFrame`
(one row per track) with columns ``path`` (absolute), ``label`` (str),
``artist`` (str or ``None``) and ``split`` (``"train"``, ``"validation"``,
``"test"`` or ``None``):

* **folder per label** (GTZAN: ``genres/<label>/*.wav``):
  :func:`load_folder`;
* **generic CSV** ``path,label[,artist][,split]`` with paths relative to the
  CSV's folder: :func:`load_csv`;
* **FMA** metadata ``tracks.csv`` (two header rows: ``track``/``set``/
  ``artist`` ... over ``genre_top``/``split``/``subset``/``name`` ...) with
  audio under ``<audio_dir>/NNN/NNNNNN.mp3``: :func:`load_fma`.

:func:`load_dataset` picks the right one.  Files that are missing or cannot
be opened as audio are logged, skipped, and listed in
``df.attrs["failures"]`` (a list of ``{"path", "reason"}``); files that
fail later, at feature extraction, are reported by the estimator
(``MusicClassifier.failures_``).

:func:`split_dataset` assigns honest splits: by track (so the patches of one
track never land in two splits), by artist when artists are known (so an
artist's tracks are never both in training and in test), stratified by
label, reproducible with ``random_state``; a split the user gave wins.

Examples
--------
>>> from recommender.datasets import load_dataset, split_dataset   # doctest: +SKIP
>>> df = load_dataset("genres/")                                   # doctest: +SKIP
>>> df = split_dataset(df, test_size=0.2, random_state=0)          # doctest: +SKIP
>>> df.attrs["split_strategy"]                                     # doctest: +SKIP
'stratified by track (no artist information)'
"""

from __future__ import annotations

import csv
import logging
import os

import numpy as np

from .._utils import check_choice, check_int, check_number
from ..errors import AudioError, DatasetError, ParameterError

__all__ = [
    "COLUMNS",
    "SPLITS",
    "load_dataset",
    "load_folder",
    "load_csv",
    "load_fma",
    "drop_rare_classes",
    "split_dataset",
    "split_summary",
]

logger = logging.getLogger(__name__)

COLUMNS = ["path", "label", "artist", "split"]
SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {
    "train": "train", "training": "train", "tr": "train",
    "val": "validation", "valid": "validation", "validation": "validation", "dev": "validation",
    "test": "test", "testing": "test", "eval": "test",
}  # fmt: skip


# --------------------------------------------------------------------------- helpers
def _frame(rows, failures, source):
    import pandas as pd

    df = pd.DataFrame(rows, columns=COLUMNS)
    for c in ("artist", "split"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    df["label"] = df["label"].astype(str)
    df = df.reset_index(drop=True)
    df.attrs["failures"] = list(failures)
    df.attrs["source"] = os.fspath(source)
    if failures:
        logger.warning("%d of %d files of %s skipped (see df.attrs['failures'])",
                       len(failures), len(failures) + len(df), source)
    return df


def _check_files(rows, check_audio):
    """Drop rows whose file is missing or unreadable; return (rows, failures)."""
    from ..io import audio

    ok, failures = [], []
    for r in rows:
        p = r[0]
        if not os.path.isfile(p):
            reason = "file not found"
        elif check_audio:
            try:
                inf = audio.info(p)
                reason = None if inf.duration_s > 0 else "contains no audio samples"
            except AudioError as e:
                reason = e.reason
        else:
            reason = None
        if reason is None:
            ok.append(r)
        else:
            logger.warning("skipping %s: %s", p, reason)
            failures.append({"path": p, "reason": reason})
    return ok, failures


def _norm_split(value, where):
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    s = str(value).strip().lower()
    if s in ("", "nan", "none"):
        return None
    try:
        return _SPLIT_ALIASES[s]
    except KeyError:
        raise DatasetError(where, f"split={value!r}: expected one of train/validation/test "
                                  "(or training/val/valid/dev/testing)") from None


def _clean_str(value):
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    s = str(value).strip()
    return s or None


# --------------------------------------------------------------------------- loaders
def load_folder(root, *, check_audio=True):
    """A folder per label: ``root/<label>/**/<audio files>``.

    Parameters
    ----------
    root : str or os.PathLike
        Folder whose sub-folders are the labels (GTZAN: ``genres/``).
    check_audio : bool
        Open every file's header (cheap) and skip the unreadable ones.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`; ``artist`` and ``split`` are ``None``.

    Raises
    ------
    DatasetError
        ``root`` is not a folder or holds no labelled audio.
    """
    from ..io.audio import is_audio_path

    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise DatasetError(root, "not a folder")
    rows = []
    for label in sorted(os.listdir(root)):
        d = os.path.join(root, label)
        if label.startswith(".") or not os.path.isdir(d):
            continue
        for dirpath, dirnames, files in os.walk(d, followlinks=True):
            dirnames[:] = sorted(x for x in dirnames if not x.startswith("."))
            for f in sorted(files):
                if not f.startswith(".") and is_audio_path(f):
                    rows.append((os.path.join(dirpath, f), label, None, None))
    if not rows:
        raise DatasetError(root, "no audio files in label sub-folders (expected ROOT/<label>/*.wav)")
    rows, failures = _check_files(rows, check_audio)
    return _frame(rows, failures, root)


def load_csv(path, *, check_audio=True):
    """A CSV with columns ``path,label[,artist][,split]`` (header required).

    Relative paths are relative to the CSV's folder.  ``split`` values may be
    ``train``/``validation``/``test`` (or ``training``, ``val``, ``valid``,
    ``dev``, ``testing``); empty means "not assigned".

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`.

    Raises
    ------
    DatasetError
        Unreadable CSV, missing ``path``/``label`` columns, bad split value.
    """
    path = os.path.abspath(os.fspath(path))
    base = os.path.dirname(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "path" not in fields or "label" not in fields:
                raise DatasetError(path, f"columns {fields}: need at least 'path' and 'label'")
            rows = []
            for lineno, rec in enumerate(reader, start=2):
                rec = {k.strip().lower(): v for k, v in rec.items() if k is not None}
                p, label = _clean_str(rec.get("path")), _clean_str(rec.get("label"))
                if p is None or label is None:
                    raise DatasetError(path, f"line {lineno}: empty path or label")
                p = os.path.normpath(os.path.join(base, os.path.expanduser(p)))
                rows.append((p, label, _clean_str(rec.get("artist")),
                             _norm_split(rec.get("split"), f"{path}:{lineno}")))
    except OSError as e:
        raise DatasetError(path, f"cannot read CSV ({e})") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise DatasetError(path, f"not a valid CSV ({e})") from None
    if not rows:
        raise DatasetError(path, "no rows")
    rows, failures = _check_files(rows, check_audio)
    return _frame(rows, failures, path)


def _fma_audio_path(audio_dir, track_id: int) -> str:
    tid = f"{int(track_id):06d}"
    return os.path.join(audio_dir, tid[:3], tid + ".mp3")


def load_fma(tracks_csv, *, audio_dir=None, subset=None, check_audio=True):
    """The Free Music Archive layout (``fma_metadata/tracks.csv``).

    ``tracks.csv`` has two header rows (``track``/``set``/``artist``/``album``
    over the field names) and ``track_id`` as first column.  The label is
    ``track.genre_top``; tracks without one are left out (logged, not counted
    as failures).  ``set.split`` (``training``/``validation``/``test``) becomes
    the ``split`` column and ``artist.name`` the ``artist`` column.

    Parameters
    ----------
    tracks_csv : str or os.PathLike
    audio_dir : str or os.PathLike, optional
        Folder holding ``NNN/NNNNNN.mp3``.  Default: the CSV's folder if it
        has such sub-folders, else an ``fma_*`` sibling folder of the
        CSV's folder that has them (``fma_metadata/../fma_small``).
    subset : str, optional
        Keep only ``set.subset == subset`` (``small``, ``medium``...; FMA's
        subsets are nested, so ``medium`` includes ``small``).
    check_audio : bool
        Skip (and list) files that are missing or unreadable.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, plus ``track_id``.
    """
    import pandas as pd

    tracks_csv = os.path.abspath(os.fspath(tracks_csv))
    try:
        meta = pd.read_csv(tracks_csv, header=[0, 1], index_col=0, low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DatasetError(tracks_csv, f"cannot read FMA tracks.csv ({e})") from None
    cols = set(meta.columns)
    if ("track", "genre_top") not in cols:
        raise DatasetError(tracks_csv, "no ('track', 'genre_top') column: not an FMA tracks.csv "
                                       "(expected two header rows)")
    if subset is not None:
        if ("set", "subset") not in cols:
            raise DatasetError(tracks_csv, "subset given but no ('set', 'subset') column")
        sub = meta[("set", "subset")].astype(str)
        order = ["small", "medium", "large", "full"]
        if subset in order:  # nested subsets
            keep = sub.isin(order[: order.index(subset) + 1])
        else:
            keep = sub == subset
        meta = meta[keep]
    if audio_dir is None:
        audio_dir = _guess_fma_audio_dir(tracks_csv, meta.index[:50])
    audio_dir = os.path.abspath(os.fspath(audio_dir))
    labels = meta[("track", "genre_top")]
    artists = meta[("artist", "name")] if ("artist", "name") in cols else None
    splits = meta[("set", "split")] if ("set", "split") in cols else None
    rows, ids, unlabelled = [], [], 0
    for tid in meta.index:
        label = _clean_str(labels.loc[tid])
        if label is None:
            unlabelled += 1
            continue
        rows.append((_fma_audio_path(audio_dir, tid), label,
                     _clean_str(artists.loc[tid]) if artists is not None else None,
                     _norm_split(splits.loc[tid], f"{tracks_csv}:track {tid}") if splits is not None else None))
        ids.append(int(tid))
    if unlabelled:
        logger.info("%d FMA tracks without genre_top left out", unlabelled)
    if not rows:
        raise DatasetError(tracks_csv, "no track has a genre_top label")
    id_of = dict(zip((r[0] for r in rows), ids))
    rows, failures = _check_files(rows, check_audio)
    df = _frame(rows, failures, tracks_csv)
    df["track_id"] = [id_of[p] for p in df["path"]]
    return df


def _guess_fma_audio_dir(tracks_csv, some_ids):
    here = os.path.dirname(tracks_csv)
    candidates = [here]
    parent = os.path.dirname(here)
    try:
        candidates += [os.path.join(parent, d) for d in sorted(os.listdir(parent)) if d.startswith("fma_")]
    except OSError:
        pass
    for c in candidates:
        tids = [f"{int(t):06d}" for t in some_ids]
        if any(os.path.isdir(os.path.join(c, t[:3])) for t in tids):
            return c
    return here


def load_dataset(source, **kwargs):
    """Load a labelled dataset from a folder, a CSV, or an FMA ``tracks.csv``.

    A folder is read with :func:`load_folder`; a CSV whose first line starts
    with an empty field or ``track`` followed by an FMA-like second header row
    with :func:`load_fma`; any other CSV with :func:`load_csv`.  ``kwargs``
    go to the chosen loader.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise ParameterError(f"source={source!r}: expected a folder or a CSV path")
    p = os.path.abspath(os.path.expanduser(os.fspath(source)))
    if os.path.isdir(p):
        return load_folder(p, **kwargs)
    if not os.path.isfile(p):
        raise DatasetError(p, "no such file or folder")
    if _looks_like_fma(p):
        return load_fma(p, **kwargs)
    return load_csv(p, **kwargs)


def _looks_like_fma(path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            r = csv.reader(fh)
            first = next(r, [])
            second = next(r, [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "genre_top" in [s.strip() for s in second] and "track" in [s.strip() for s in first]


# --------------------------------------------------------------------------- splits
def drop_rare_classes(df, min_tracks=5):
    """Drop labels with fewer than ``min_tracks`` tracks (logged; listed in
    ``df.attrs["dropped_classes"]``).

    Raises
    ------
    ParameterError
        ``min_tracks`` is not an integer >= 0.
    """
    check_int("min_tracks", min_tracks, min=0)
    counts = df["label"].value_counts()
    rare = sorted(counts[counts < min_tracks].index)
    out = df[~df["label"].isin(rare)].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    out.attrs["dropped_classes"] = {str(k): int(counts[k]) for k in rare}
    if rare:
        logger.warning("dropped classes with fewer than %d tracks: %s", min_tracks,
                       ", ".join(f"{k} ({counts[k]})" for k in rare))
    return out


def _alloc(n, test_size, val_size):
    """(n_test, n_val) for a group of n items: at least one each when possible."""
    n_test = int(round(n * test_size)) if test_size else 0
    n_val = int(round(n * val_size)) if val_size else 0
    if test_size and n >= 3:
        n_test = max(1, n_test)
    if val_size and n >= 3:
        n_val = max(1, n_val)
    while n_test + n_val > n - 1 and (n_test or n_val):  # keep one for training
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    return n_test, n_val


def split_dataset(df, *, test_size=0.2, validation_size=0.1, random_state=0, by_artist="auto"):
    """Assign honest ``train``/``validation``/``test`` splits.

    * A ``split`` column the user filled for every row wins, untouched.
    * Otherwise whole tracks are assigned, stratified by label (each label
      keeps its proportion in every split), so the patches of one track
      never land in two splits.
    * When every row has an ``artist`` (``by_artist="auto"``) whole artists
      are assigned instead (scikit-learn's ``StratifiedGroupKFold``), so no
      artist is in training and in test: otherwise a model can score by
      recognising the artist or the album's production.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`load_dataset` (columns ``path``, ``label``, optionally
        ``artist``, ``split``).
    test_size, validation_size : float
        Fractions in ``[0, 1)``; ``validation_size=0`` gives no validation set.
    random_state : int or None
    by_artist : {"auto", True, False}
        ``True`` requires artists on every row.

    Returns
    -------
    pandas.DataFrame
        A copy with ``split`` filled; ``attrs["split_strategy"]`` says how.
    """
    for name, v in (("test_size", test_size), ("validation_size", validation_size)):
        check_number(name, v, min=0, max=1, max_inclusive=False)
    if test_size + validation_size >= 1:
        raise ParameterError(f"test_size + validation_size = {test_size + validation_size}: must be < 1")
    check_choice("by_artist", by_artist, ("auto", True, False))
    if "path" not in df or "label" not in df:
        raise ParameterError("df: needs 'path' and 'label' columns")
    out = df.copy().reset_index(drop=True)
    out.attrs = dict(df.attrs)
    if out["path"].duplicated().any():
        dup = out.loc[out["path"].duplicated(), "path"].iloc[0]
        raise DatasetError(dup, "listed more than once: a track must have one label and one split")
    if "split" in out and out["split"].notna().all() and len(out):
        out["split"] = [_norm_split(s, "split column") for s in out["split"]]
        out.attrs["split_strategy"] = "given by the dataset (split column)"
        return out
    if "split" in out and out["split"].notna().any():
        logger.warning("split column only partly filled: ignored, splitting anew")
    artists = out["artist"] if "artist" in out else None
    have_artists = artists is not None and artists.notna().all() and len(out) > 0
    if by_artist is True and not have_artists:
        raise ParameterError("by_artist=True: some rows have no artist")
    rng = np.random.default_rng(random_state)
    if have_artists and by_artist is not False:
        out["split"] = _split_groups(out, test_size, validation_size, random_state)
        n_art = out["artist"].nunique()
        out.attrs["split_strategy"] = (f"by artist ({n_art} artists; no artist in two splits), "
                                       "stratified by label")
    else:
        split = np.empty(len(out), dtype=object)
        for label, idx in out.groupby("label", sort=True).indices.items():
            idx = rng.permutation(idx)
            n_test, n_val = _alloc(len(idx), test_size, validation_size)
            split[idx[:n_test]] = "test"
            split[idx[n_test:n_test + n_val]] = "validation"
            split[idx[n_test + n_val:]] = "train"
        out["split"] = list(split)
        why = "no artist information" if not have_artists else "by_artist=False"
        out.attrs["split_strategy"] = f"stratified by track ({why})"
    return out


def _split_groups(df, test_size, val_size, random_state):
    """Artist-grouped, label-stratified split via StratifiedGroupKFold.

    When every label has fewer tracks than the folds needed for a fraction
    (e.g. 24 tracks in 5 tempo bins for a 1/8 validation share), falls back
    to an artist-grouped split that is not stratified (GroupShuffleSplit).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = df["label"].to_numpy()
    g = df["artist"].to_numpy()
    split = np.full(len(df), "train", dtype=object)

    def carve(idx, frac, name, seed):
        if frac <= 0 or len(idx) < 2:
            return
        n_groups = len(set(g[idx]))
        k = int(round(1 / frac))
        k = max(2, min(k, n_groups))
        if n_groups < 2:
            return
        if np.unique(y[idx], return_counts=True)[1].max() < k:
            # StratifiedGroupKFold refuses when every label has fewer than k tracks:
            # hold out the same fraction of artists, without stratifying.
            from sklearn.model_selection import GroupShuffleSplit

            logger.info("%s split: too few tracks per stratum for %d folds; plain artist-grouped split", name, k)
            gss = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed)
            _, hold = next(gss.split(np.zeros(len(idx)), groups=g[idx]))
        else:
            skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "least populated class has only n members"
                _, hold = next(skf.split(np.zeros(len(idx)), y[idx], g[idx]))
        split[idx[hold]] = name

    seed = None if random_state is None else int(random_state)
    carve(np.arange(len(df)), test_size, "test", seed)
    rest = np.flatnonzero(split == "train")
    carve(rest, val_size / max(1e-9, 1 - test_size), "validation", None if seed is None else seed + 1)
    missing = sorted(set(y) - set(y[split == "train"]))
    if missing:
        logger.warning("artist split left no training track for %s (too few artists)", missing)
    return list(split)


def split_summary(df):
    """Tracks per label and split: a DataFrame (labels x splits), for reports."""
    import pandas as pd

    t = pd.crosstab(df["label"], df["split"]).reindex(columns=list(SPLITS), fill_value=0)
    return t
