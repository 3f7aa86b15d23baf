"""What the analysis yields: :class:`TrackAnalysis` per track,
:class:`AnalysisFailure` per file that could not be analysed, and
:class:`PipelineStats`, where the time of an :func:`~recommender.analysis.analyze_files` run went."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from ..errors import ParameterError, RecommenderError

__all__ = ["TrackAnalysis", "AnalysisFailure", "PipelineStats", "track_layer_summary"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrackAnalysis:
    """What the analysis of one track yields.

    Attributes
    ----------
    path : str or None
    duration_s : float
        Duration of the whole track (not only of the analysed patches).
    starts_s : np.ndarray, shape (n_patches,)
        Start time of each analysed patch.
    patch_probs : np.ndarray, shape (n_patches, n_tags)
    patch_embeddings : np.ndarray, shape (n_patches, embedding_dim)
    sampling : dict
        The policy that chose the patches (see :class:`Sampling`).
    padded : bool
        True when the clip was shorter than one patch and was repeat-padded.
    descriptors : dict or None
        MIR descriptors (``{"path": ..., **describe(...)}``, see
        :mod:`recommender.descriptors`) when they were asked for and could be
        computed, else ``None``.
    layer_summary : np.ndarray, shape (3412,), or None
        :func:`recommender.features.pooling.layer_summary` of the patches:
        mean and standard deviation over patches of musicnn's ``pool`` and
        ``penultimate`` layers (3412 values), what the ``'similarity'`` space
        is built from; ``None`` for a model without a ``pool`` layer.
    audio_flag : {'silent', 'inaudible'} or None
        Whether the track holds nothing to hear (see
        :mod:`recommender.descriptors.level`: digital silence, or no 400-ms
        block reaching the BS.1770 gate of -70 LUFS); its tags and tempo
        mean nothing then.  Always a property of the whole file.  Left
        ``None`` by the caller, it is derived: from the descriptors when they
        were computed (:func:`recommender.descriptors.level.flag_of_descriptors`:
        their ``audio_flag``, or a NaN ``loudness_db`` confirmed on the whole
        file), else from ``patch_level``: patches that could hold only silence
        are confirmed by decoding the whole file (``path``; a rare path, ~30 ms
        of CPU per minute of audio).  ``None`` when neither is known.
    patch_level : float or None
        Largest log-mel value (musicnn front end, ``log10(1 + 10000 mel)``)
        over all the analysed patches, or ``None`` if not recorded; only used
        to derive ``audio_flag``.

    Raises
    ------
    recommender.errors.ParameterError
        ``audio_flag`` is not one of the flags.
    """

    path: str | None
    duration_s: float
    starts_s: np.ndarray
    patch_probs: np.ndarray
    patch_embeddings: np.ndarray
    sampling: dict
    padded: bool = False
    descriptors: dict | None = None
    layer_summary: np.ndarray | None = None
    audio_flag: str | None = None
    patch_level: float | None = None

    def __post_init__(self):
        from ..descriptors.level import AUDIO_FLAGS

        if self.audio_flag is None:
            self.audio_flag = self._derived_flag()
        if self.audio_flag is not None and self.audio_flag not in AUDIO_FLAGS:
            raise ParameterError(f"audio_flag={self.audio_flag!r}: must be None or one of {AUDIO_FLAGS}")

    def _derived_flag(self) -> str | None:
        from ..descriptors.level import file_audio_flag, flag_of_descriptors, patches_look_flagged

        try:
            if self.descriptors:
                return flag_of_descriptors(self.descriptors, self.path)
            if self.patch_level is None or not patches_look_flagged(self.patch_level):
                return None
            if self.path is None:
                logger.warning("patches look silent but there is no file to confirm it on: not flagged")
                return None
            from ..io.cuesheet import source_of_key

            # a CUE track is judged on its album's audio file (the segment is not a file of its own)
            return file_audio_flag(source_of_key(self.path) or self.path)
        except RecommenderError as e:
            logger.warning("could not check the level of %s: %s", self.path, e)
            return None

    @property
    def n_patches(self) -> int:
        return int(len(self.starts_s))

    @property
    def probs(self) -> np.ndarray:
        """Track-level tag probabilities: mean over patches, shape ``(n_tags,)``."""
        return self.patch_probs.mean(axis=0).astype(np.float32)

    @property
    def embedding(self) -> np.ndarray:
        """Track embedding: mean of the penultimate layer over patches, ``(embedding_dim,)``."""
        return self.patch_embeddings.mean(axis=0).astype(np.float32)

    def sampling_json(self) -> str:
        return json.dumps({**self.sampling, "starts_s": [round(float(s), 3) for s in self.starts_s]})


@dataclasses.dataclass
class AnalysisFailure:
    """A file that could not be analysed, with the reason."""

    path: str
    reason: str
    error: BaseException | None = None


@dataclasses.dataclass
class PipelineStats:
    """Where the time of one :func:`analyze_files` run went (pass one in to fill it).

    Attributes
    ----------
    files, failed : int
        Tracks analysed / failed.
    patches : int
        Patches that went through the CNN.
    padded_patches : int
        Zero patches added to round a final partial batch up to a compiled shape.
    cnn_calls : int
        Calls of ``predict_patches``.
    cnn_s : float
        Wall-clock seconds inside the CNN.
    starved_s : float
        Seconds the CNN thread waited on an empty queue (decoding too slow).
    starved : int
        Times the CNN found the queue empty.
    producer_blocked_s : float
        Seconds decode threads waited on a full queue (the CNN too slow),
        summed over threads.
    wall_s : float
        Wall-clock seconds of the whole run.
    """

    files: int = 0
    failed: int = 0
    patches: int = 0
    padded_patches: int = 0
    cnn_calls: int = 0
    cnn_s: float = 0.0
    starved_s: float = 0.0
    starved: int = 0
    producer_blocked_s: float = 0.0
    wall_s: float = 0.0

    @property
    def cnn_busy(self) -> float:
        """Fraction of the run the CNN was computing."""
        return self.cnn_s / self.wall_s if self.wall_s > 0 else 0.0

    def __str__(self):
        return (f"{self.files} files, {self.patches} patches (+{self.padded_patches} padding) in "
                f"{self.cnn_calls} CNN calls; CNN busy {100 * self.cnn_busy:.0f}% of {self.wall_s:.1f} s, "
                f"starved {self.starved_s:.2f} s ({self.starved}x), decoders blocked {self.producer_blocked_s:.1f} s")


def track_layer_summary(pools: list[np.ndarray], embeddings: np.ndarray) -> np.ndarray:
    """:attr:`TrackAnalysis.layer_summary` from a track's ``pool``-layer outputs.

    Parameters
    ----------
    pools : list of np.ndarray, each of shape (n_i, pool_dim)
        The ``pool`` layer of the track's patches, in blocks (sum of ``n_i`` = n_patches).
    embeddings : np.ndarray, shape (n_patches, embedding_dim)

    Returns
    -------
    np.ndarray, float32, shape (2 * (pool_dim + embedding_dim),)
        :func:`recommender.features.pooling.layer_summary` of them.
    """
    from ..features.pooling import layer_summary

    return layer_summary(np.concatenate(pools), embeddings).astype(np.float32)
