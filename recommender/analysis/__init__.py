"""File → per-track result: sampling, the decode/CNN pipeline, tagging,
profiles, and the parallel map (joblib, Dask).

``recommender.analysis.analyze_files`` and the other names keep their old paths.
"""

from .pipeline import (  # noqa: F401
    AnalysisFailure,
    PipelineStats,
    Sampling,
    TrackAnalysis,
    analyze_file,
    analyze_files,
    analyze_waveform,
    patch_starts,
)

__all__ = [
    "Sampling", "TrackAnalysis", "AnalysisFailure", "analyze_waveform", "analyze_file",
    "analyze_files", "patch_starts", "PipelineStats",
]
