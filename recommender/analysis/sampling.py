"""Which 3-s patches of a track are analysed: the :class:`Sampling` policy
and the start samples it gives (:func:`patch_starts`).

``Sampling.full()`` analyses every non-overlapping 3-s patch (as musicnn
does); ``Sampling.spread(n)`` analyses at most ``n`` patches spread evenly
over the whole track, decoding only those windows.  The policy and the patch
start times are recorded with each result so an index knows what it holds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._utils import check_int
from ..errors import ParameterError
from ..features import frontend as features

__all__ = ["QUALITIES", "Sampling", "patch_starts", "quality_sampling"]


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Which 3-s patches of a track are analysed.

    Parameters
    ----------
    max_patches : int or None
        ``None`` analyses the whole track (every non-overlapping patch).
        An integer ``n`` analyses at most ``n`` patches, spread evenly over the
        track (each window centred in one of ``n`` equal parts of the track),
        so intros and fades do not dominate; a track with at most ``n``
        patches is analysed whole.

    Raises
    ------
    ParameterError
        ``max_patches`` is neither ``None`` nor an integer >= 1.
    """

    max_patches: int | None = None

    def __post_init__(self):
        check_int("max_patches", self.max_patches, min=1, allow_none=True)

    @classmethod
    def full(cls) -> "Sampling":
        return cls(None)

    @classmethod
    def spread(cls, n: int) -> "Sampling":
        return cls(int(n))

    @classmethod
    def parse(cls, value) -> "Sampling":
        """Accept a :class:`Sampling`, ``None``/``'full'``, an int, or ``'spread:N'``."""
        if isinstance(value, Sampling):
            return value
        if value is None or value == "full":
            return cls.full()
        if isinstance(value, (int, np.integer)):
            return cls.spread(int(value))
        if isinstance(value, str) and value.startswith("spread:"):
            try:
                return cls.spread(int(value.split(":", 1)[1]))
            except ValueError:
                pass
        raise ParameterError(f"sampling={value!r}: expected 'full', a positive int, or 'spread:N'")

    @property
    def name(self) -> str:
        return "full" if self.max_patches is None else f"spread:{self.max_patches}"

    def to_json(self) -> dict:
        return {"policy": "full" if self.max_patches is None else "spread", "max_patches": self.max_patches}


#: ``recommender index --quality`` levels -> patches per track (spread windows).
#: Measured points of the precision-vs-time curve (``benchmarks/retrieval_protocol.py``,
#: selection half of the dev collection, 99 tracks, ``'similarity'`` space): against
#: 8 patches, 4 give -0.9 point of precision@10 by soundtrack (paired 95 % CI
#: -3.5..+1.8) at about 0.8x the index time, 32 give +3.2 (+1.2..+5.3) at about
#: 3x; the README table "Index quality" has the confirmation-half figures.
#: ``'default'`` is the default policy (:data:`recommender.recommender.DEFAULT_SAMPLING`).
QUALITIES = {"fast": 4, "default": 8, "best": 32}


def quality_sampling(quality: str) -> Sampling:
    """The :class:`Sampling` of a ``--quality`` level.

    Parameters
    ----------
    quality : {'fast', 'default', 'best'}
        :data:`QUALITIES` (patches per track: 4, 8, 32).

    Returns
    -------
    Sampling
        ``Sampling.spread(QUALITIES[quality])``.

    Raises
    ------
    ParameterError
        ``"quality='x': must be one of 'fast', 'default', 'best'"``.
    """
    from .._utils import check_choice

    return Sampling.spread(QUALITIES[check_choice("quality", quality, tuple(QUALITIES))])


def _n_full_patches(n_samples: int) -> int:
    """Patches musicnn would cut from ``n_samples`` samples (centred frames)."""
    n_frames = 1 + n_samples // features.HOP_LENGTH
    return n_frames // features.PATCH_FRAMES


def patch_starts(n_samples: int, sampling: Sampling) -> np.ndarray | None:
    """Start samples (centre of the first frame) of the patches to analyse.

    Parameters
    ----------
    n_samples : int
        Length of the track at 16 kHz (:data:`recommender.features.SR`).
    sampling : Sampling

    Returns
    -------
    np.ndarray of int64, shape (max_patches,), or None
        ``None`` when the whole track is analysed in order (full policy, or a
        track with no more patches than the policy allows).
    """
    m = _n_full_patches(n_samples)
    k = sampling.max_patches
    if k is None or m <= k:
        return None
    # Window i is centred in part i of k equal parts of the track.
    span = n_samples - features.PATCH_HOP_SAMPLES
    centres = (np.arange(k) + 0.5) / k
    return np.round(centres * span).astype(np.int64)
