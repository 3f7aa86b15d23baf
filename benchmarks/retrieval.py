"""Leave-one-out retrieval evaluation on a labelled collection (label = folder).

Importable by the other benchmarks::

    from retrieval import TrackSet, evaluate, compare, format_table

* :class:`TrackSet` -- what the catalog stores per track (mean embedding, mean
  tag probabilities, per-patch embeddings / probabilities, descriptors), plus
  the label of each track (its parent folder).  Built from analysis results
  (:meth:`TrackSet.from_analyses`), from an index directory
  (:meth:`TrackSet.from_index`) or from a cache file (:meth:`TrackSet.load`,
  plain ``.npz`` read with ``allow_pickle=False``).
* A *representation* is any function ``TrackSet -> np.ndarray``: an
  ``(n, d)`` matrix (compared by cosine) or, when the function has
  ``kind = "similarity"`` (see :func:`similarity_rep`), an ``(n, n)``
  similarity matrix (set-to-set matching, hubness-corrected scores...).
* :func:`evaluate` -- leave-one-out precision@k by label, 1-NN accuracy,
  per-label precision and a bootstrap confidence interval over queries;
  :func:`compare` -- many representations, one table, each with a *paired*
  bootstrap CI of its difference to a baseline (same resampled queries).

The protocol of issue #17 (choose on the selection half of the dev collection,
confirm once on the other, paired CIs, collection sizes, costs) is the sibling
script ``benchmarks/retrieval_protocol.py``::

    python benchmarks/retrieval_protocol.py [--confirm CANDIDATE]

Precision@k here is the share of a track's ``k`` nearest other tracks that
carry its label, averaged over all tracks (micro average; the per-label
columns and ``p@k_macro`` give the label-balanced view).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

__all__ = [
    "TrackSet",
    "similarity_rep",
    "neighbours",
    "evaluate",
    "compare",
    "format_table",
    "bootstrap_ci",
]


# --------------------------------------------------------------------------
# Per-track data
# --------------------------------------------------------------------------
@dataclasses.dataclass
class TrackSet:
    """Per-track data of a labelled collection, as the catalog stores it.

    Attributes
    ----------
    paths : list of str (n,)
    labels : np.ndarray of str (n,)
    embedding : float32 (n, D)     mean penultimate embedding
    probs : float32 (n, C)         mean tag probabilities
    patch_embeddings : list of float32 (m_i, D)
    patch_probs : list of float32 (m_i, C)
    descriptors : pandas.DataFrame or None   one row per track (same order)
    patch_pool : list of float32 (m_i, 1506) or None   musicnn's ``pool`` layer per
        patch (same patches as ``patch_embeddings``; ``layer_cache.load_trackset``)
    """

    paths: list
    labels: np.ndarray
    embedding: np.ndarray
    probs: np.ndarray
    patch_embeddings: list
    patch_probs: list
    descriptors: pd.DataFrame | None = None
    patch_pool: list | None = None

    def __len__(self):
        return len(self.paths)

    @staticmethod
    def label_of(path) -> str:
        return os.path.basename(os.path.dirname(os.fspath(path)))

    @classmethod
    def from_analyses(cls, results, *, descriptors=None, float16=True):
        """From :class:`~recommender.analysis.TrackAnalysis` results (sorted by path).

        ``float16`` stores patch vectors as the catalog does (float16), so the
        evaluation sees what an index would hold.
        """
        res = sorted(results, key=lambda r: r.path)
        q = (lambda a: a.astype(np.float16).astype(np.float32)) if float16 else (lambda a: a)
        desc = None
        if descriptors is not None:
            desc = pd.DataFrame([descriptors.get(r.path) or {} for r in res])
        return cls(
            paths=[r.path for r in res],
            labels=np.array([cls.label_of(r.path) for r in res]),
            embedding=np.stack([r.embedding for r in res]).astype(np.float32),
            probs=np.stack([r.probs for r in res]).astype(np.float32),
            patch_embeddings=[q(r.patch_embeddings) for r in res],
            patch_probs=[q(r.patch_probs) for r in res],
            descriptors=desc,
        )

    @classmethod
    def from_index(cls, index_dir):
        """From an existing index directory (read only)."""
        from recommender.store.catalog import Catalog

        with Catalog(os.path.join(index_dir, "catalog.sqlite"), mode="r") as cat:
            tr = cat.tracks(columns=["path"])
            ids, E = cat.vectors("embedding")
            _, T = cat.vectors("tags", ids=ids)
            pe, pp = [], []
            for t in ids:
                pv = cat.patch_vectors(int(t))
                pe.append(pv["embeddings"])
                pp.append(pv["probs"])
            try:
                d = cat.descriptors(ids).reindex(ids).reset_index(drop=True)
            except Exception:  # noqa: BLE001 - an index without descriptors
                d = None
        paths = [tr.loc[int(t), "path"] for t in ids]
        order = np.argsort(paths, kind="stable")
        return cls(
            paths=[paths[i] for i in order],
            labels=np.array([cls.label_of(paths[i]) for i in order]),
            embedding=E[order],
            probs=T[order],
            patch_embeddings=[pe[i] for i in order],
            patch_probs=[pp[i] for i in order],
            descriptors=None if d is None else d.iloc[order].reset_index(drop=True),
        )

    # -- cache: plain arrays only (no pickle) --------------------------------
    def save(self, path):
        lens = np.array([len(p) for p in self.patch_embeddings], dtype=np.int64)
        arrays = dict(
            paths=np.array(self.paths, dtype=str),
            embedding=self.embedding,
            probs=self.probs,
            patch_lens=lens,
            patch_embeddings=np.concatenate(self.patch_embeddings).astype(np.float16),
            patch_probs=np.concatenate(self.patch_probs).astype(np.float16),
        )
        if self.descriptors is not None:
            num = self.descriptors.select_dtypes(include=[np.number])
            arrays["desc_columns"] = np.array(list(num.columns), dtype=str)
            arrays["desc_values"] = num.to_numpy(dtype=np.float64)
        tmp = os.fspath(path) + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as z:
            lens = z["patch_lens"]
            cuts = np.cumsum(lens)[:-1]
            pe = np.split(z["patch_embeddings"].astype(np.float32), cuts)
            pp = np.split(z["patch_probs"].astype(np.float32), cuts)
            paths = [str(p) for p in z["paths"]]
            desc = None
            if "desc_columns" in z.files:
                desc = pd.DataFrame(z["desc_values"], columns=[str(c) for c in z["desc_columns"]])
            return cls(
                paths=paths,
                labels=np.array([cls.label_of(p) for p in paths]),
                embedding=z["embedding"].astype(np.float32),
                probs=z["probs"].astype(np.float32),
                patch_embeddings=pe,
                patch_probs=pp,
                descriptors=desc,
            )

    def subset(self, rows):
        rows = np.asarray(rows)
        return TrackSet(
            paths=[self.paths[i] for i in rows],
            labels=self.labels[rows],
            embedding=self.embedding[rows],
            probs=self.probs[rows],
            patch_embeddings=[self.patch_embeddings[i] for i in rows],
            patch_probs=[self.patch_probs[i] for i in rows],
            descriptors=None if self.descriptors is None else self.descriptors.iloc[rows].reset_index(drop=True),
            patch_pool=None if self.patch_pool is None else [self.patch_pool[i] for i in rows],
        )


# --------------------------------------------------------------------------
# Representations
# --------------------------------------------------------------------------
def similarity_rep(fn: Callable) -> Callable:
    """Mark a representation as returning an ``(n, n)`` similarity matrix."""
    fn.kind = "similarity"
    return fn


def _similarity(rep, ts: TrackSet) -> np.ndarray:
    out = np.asarray(rep(ts), dtype=np.float64)
    if getattr(rep, "kind", "vectors") == "similarity":
        if out.shape != (len(ts), len(ts)):
            raise ValueError(f"similarity representation gave shape {out.shape}, expected {(len(ts), len(ts))}")
        return out
    X = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return X @ X.T


def neighbours(S: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` most similar *other* items for every row of ``S`` (ties: lower index)."""
    S = np.array(S, dtype=np.float64, copy=True)
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def _per_query(S, labels, k):
    N = neighbours(S, k)
    same = labels[N] == labels[:, None]
    return same.mean(axis=1), same[:, 0].astype(np.float64)


def bootstrap_ci(values, *, n_boot=2000, alpha=0.05, random_state=0, groups=None):
    """Percentile bootstrap CI of the mean of ``values`` (resampling queries).

    ``values`` may be 2-D ``(n, r)``: each column is resampled with the *same*
    query indices (paired comparisons).  ``groups`` (labels) resamples within
    each label (stratified), keeping label proportions fixed.
    """
    v = np.asarray(values, dtype=np.float64)
    squeeze = v.ndim == 1
    if squeeze:
        v = v[:, None]
    rng = np.random.default_rng(random_state)
    n = len(v)
    if groups is None:
        idx = rng.integers(0, n, size=(n_boot, n))
    else:
        groups = np.asarray(groups)
        parts = []
        for g in np.unique(groups):
            rows = np.flatnonzero(groups == g)
            parts.append(rows[rng.integers(0, len(rows), size=(n_boot, len(rows)))])
        idx = np.concatenate(parts, axis=1)
    means = v[idx].mean(axis=1)  # (n_boot, r)
    lo = np.quantile(means, alpha / 2, axis=0)
    hi = np.quantile(means, 1 - alpha / 2, axis=0)
    return (lo[0], hi[0]) if squeeze else (lo, hi)


def evaluate(rep, ts: TrackSet, *, k=10, n_boot=2000, random_state=0) -> dict:
    """Leave-one-out retrieval figures of one representation.

    Returns
    -------
    dict
        ``p@k`` (micro), ``p@k_lo``/``p@k_hi`` (95 % bootstrap CI over
        queries), ``p@k_macro`` (mean of per-label figures), ``1nn``, one
        ``p@k[label]`` per label, and ``_hits`` (per-query precision, for
        paired comparisons).
    """
    S = rep if isinstance(rep, np.ndarray) else _similarity(rep, ts)
    p, nn1 = _per_query(S, ts.labels, k)
    lo, hi = bootstrap_ci(p, n_boot=n_boot, random_state=random_state)
    per = pd.Series(p).groupby(ts.labels).mean()
    out = {f"p@{k}": p.mean(), f"p@{k}_lo": lo, f"p@{k}_hi": hi, f"p@{k}_macro": per.mean(), "1nn": nn1.mean()}
    for lab, v in per.items():
        out[f"p@{k}[{lab}]"] = v
    out["_hits"] = p
    return out


def compare(reps: Mapping[str, Callable | np.ndarray], ts: TrackSet, *, baseline=None, k=10,
            n_boot=2000, random_state=0) -> pd.DataFrame:
    """Evaluate several representations; one row each, with the paired CI of
    the difference in precision@k to ``baseline`` (default: the first)."""
    rows = {}
    hits = {}
    for name, rep in reps.items():
        r = evaluate(rep, ts, k=k, n_boot=n_boot, random_state=random_state)
        hits[name] = r.pop("_hits")
        rows[name] = r
    df = pd.DataFrame.from_dict(rows, orient="index")
    base = baseline or next(iter(reps))
    H = np.stack([hits[n] - hits[base] for n in df.index], axis=1)
    lo, hi = bootstrap_ci(H, n_boot=n_boot, random_state=random_state)
    df.insert(3, "d_vs_base", H.mean(axis=0))
    df.insert(4, "d_lo", lo)
    df.insert(5, "d_hi", hi)
    df.attrs["baseline"] = base
    df.attrs["hits"] = hits
    return df


def format_table(df: pd.DataFrame, *, points=True) -> str:
    """Readable table: precision figures in points (x100), one decimal."""
    d = df.copy()
    if points:
        for c in d.columns:
            if d[c].dtype.kind == "f" and ("p@" in c or c in ("1nn", "d_vs_base", "d_lo", "d_hi")):
                d[c] = 100 * d[c]
    d.columns = [c.replace("p@10[", "").rstrip("]") if c.startswith("p@10[") else c for c in d.columns]
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 40):
        return d.to_string(float_format=lambda v: f"{v:.1f}")


if __name__ == "__main__":  # pragma: no cover - quick look at an index
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    ts = TrackSet.from_index(a.index)
    print(format_table(compare({"embedding": lambda t: t.embedding, "tags": lambda t: t.probs}, ts, k=a.k)))
