"""Track-level classification: "what is this?" (tags with confidence, over time).

The module is called ``tagging`` so that ``recommender.classify`` stays the
function (a submodule of the same name would shadow it once imported).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd

from ..errors import ParameterError

__all__ = ["Classification", "classify", "classification_from_analysis"]


@dataclasses.dataclass
class Classification:
    """Tags of one track.

    Attributes
    ----------
    path : str or None
    tags : pd.Series
        Probability of every tag (mean over the analysed patches), sorted from
        the most to the least likely; index = tag names.
    embedding : np.ndarray, shape (embedding_dim,)
        Mean of the penultimate layer over patches.
    timeline : pd.DataFrame
        Per-patch probabilities: one row per analysed patch (index ``start_s``),
        one column per tag (model order).
    duration_s : float
    model : str
    """

    path: str | None
    tags: pd.Series
    embedding: np.ndarray
    timeline: pd.DataFrame
    duration_s: float
    model: str

    def top(self, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` most likely tags as ``(tag, probability)`` pairs."""
        if n < 1:
            raise ParameterError(f"n={n}: must be >= 1")
        return [(str(t), float(p)) for t, p in self.tags.iloc[:n].items()]

    def to_json(self, *, top: int = 5) -> dict:
        """``{"path", "tags": {tag: p for all tags}, "top": [[tag, p], ...]}``."""
        return {
            "path": self.path,
            "tags": {str(t): round(float(p), 6) for t, p in self.tags.items()},
            "top": [[t, round(p, 6)] for t, p in self.top(top)],
            "duration_s": round(float(self.duration_s), 3),
            "model": self.model,
        }


def classification_from_analysis(res, model) -> Classification:
    tags = list(model.tags)
    probs = pd.Series(res.probs, index=tags, name="probability")
    probs = probs.sort_values(ascending=False, kind="stable")
    timeline = pd.DataFrame(res.patch_probs, columns=tags, index=pd.Index(np.round(res.starts_s, 3), name="start_s"))
    return Classification(
        path=res.path,
        tags=probs,
        embedding=res.embedding,
        timeline=timeline,
        duration_s=res.duration_s,
        model=model.name,
    )


def classify(source, *, sr=None, model=None, sampling=None) -> Classification:
    """Tag a file or a waveform with the pretrained network.

    Parameters
    ----------
    source : path-like or np.ndarray
        An audio file, or a waveform of shape ``(n_samples,)`` /
        ``(n_samples, n_channels)``.
    sr : int, optional
        Sample rate of a waveform (required for arrays).
    model : TagModel, str or None
        Default: the shipped MSD musicnn model.
    sampling : Sampling, int, str or None
        Default: the whole track.

    Returns
    -------
    Classification

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).standard_normal(16000 * 4).astype(np.float32) * 0.1
    >>> c = classify(y, sr=16000)
    >>> len(c.tags), c.embedding.shape
    (50, (200,))
    """
    from .pipeline import analyze_file, analyze_waveform, resolve_model

    m = resolve_model(model)
    if isinstance(source, (str, os.PathLike)):
        if sr is not None:
            raise ParameterError("sr: only for waveforms; a file is decoded at the model's rate")
        res = analyze_file(source, model=m, sampling=sampling)
    else:
        if sr is None:
            raise ParameterError("sr=None: give the sample rate of the waveform")
        res = analyze_waveform(source, sr=sr, model=m, sampling=sampling)
    return classification_from_analysis(res, m)
