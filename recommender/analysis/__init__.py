"""File → per-track result: sampling (:mod:`.sampling`), the decode/CNN
pipeline (:mod:`.pipeline`, with :mod:`.blocks` and :mod:`._batcher`), its
results (:mod:`.results`), tagging, profiles, and the parallel map (joblib, Dask).

``recommender.analysis.analyze_files`` and the other names keep their old paths.
"""

from .pipeline import analyze_file, analyze_files, analyze_waveform  # noqa: F401
from .results import AnalysisFailure, PipelineStats, TrackAnalysis  # noqa: F401
from .sampling import Sampling, patch_starts  # noqa: F401

__all__ = [
    "Sampling", "TrackAnalysis", "AnalysisFailure", "analyze_waveform", "analyze_file",
    "analyze_files", "patch_starts", "PipelineStats",
]
