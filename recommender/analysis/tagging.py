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
    audio_flag : {'silent', 'inaudible'} or None
        The track holds nothing to hear (:attr:`TrackAnalysis.audio_flag
        <recommender.analysis.TrackAnalysis.audio_flag>`): the network's
        output is then no claim about it, and :meth:`top` names no tag.
        ``tags`` and ``timeline`` still hold what the network gave.
    """

    path: str | None
    tags: pd.Series
    embedding: np.ndarray
    timeline: pd.DataFrame
    duration_s: float
    model: str
    audio_flag: str | None = None

    def top(self, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` most likely tags as ``(tag, probability)`` pairs; ``[]`` for a flagged track.

        Raises
        ------
        recommender.errors.ParameterError
            ``n`` < 1.
        """
        if n < 1:
            raise ParameterError(f"n={n}: must be >= 1")
        if self.audio_flag is not None:
            return []
        return [(str(t), float(p)) for t, p in self.tags.iloc[:n].items()]

    def to_json(self, *, top: int = 5) -> dict:
        """``{"path", "tags": {tag: p for all tags}, "top": [[tag, p], ...], "duration_s",
        "model", "audio_flag"}``; ``top`` is empty when ``audio_flag`` is set."""
        return {
            "path": self.path,
            "tags": {str(t): round(float(p), 6) for t, p in self.tags.items()},
            "top": [[t, round(p, 6)] for t, p in self.top(top)],
            "duration_s": round(float(self.duration_s), 3),
            "model": self.model,
            "audio_flag": self.audio_flag,
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
        audio_flag=getattr(res, "audio_flag", None),
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
        With :attr:`~Classification.audio_flag` set for silent or inaudible
        audio.  When the analysis did not measure the level (no patch level
        nor descriptors in the :class:`TrackAnalysis`), it is measured here:
        for a waveform on the waveform itself, for a file by
        :func:`recommender.descriptors.level.probe_audio_flag` (4 excerpts of
        2.5 s, ~5 ms; the whole file only when they are quiet).

    Raises
    ------
    recommender.errors.AudioError
        The file cannot be decoded.
    recommender.errors.ParameterError
        ``sr`` given for a file or missing for a waveform; a bad waveform.

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
        if res.audio_flag is None and res.patch_level is None and res.descriptors is None:
            from ..descriptors.level import probe_audio_flag

            res.audio_flag = probe_audio_flag(source)
    else:
        if sr is None:
            raise ParameterError("sr=None: give the sample rate of the waveform")
        res = analyze_waveform(source, sr=sr, model=m, sampling=sampling)
        if res.audio_flag is None:
            from ..descriptors.level import audio_flag
            from ..io.audio import to_mono

            y = np.asarray(source, dtype=np.float32)
            res.audio_flag = audio_flag(to_mono(y) if y.ndim == 2 else y, int(sr))
    return classification_from_analysis(res, m)
