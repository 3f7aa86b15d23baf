"""Pictures: spectrogram, taggram, confusion matrix, collection map.

Importing this package is cheap (no matplotlib): the drawing modules are
:mod:`.plots` (pictures of a track, and the figure factory
:func:`.plots.figure` / :func:`.plots.save`) and :mod:`.training`
(figures of a classifier's evaluation report).
"""

#: The picture kinds of :func:`recommender.viz.plots.plot` (the CLI's ``plot --kind``).
KINDS = ("waveform", "spectrogram", "mfcc", "chroma", "taggram")

__all__ = ["KINDS"]
