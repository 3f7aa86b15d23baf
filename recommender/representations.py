"""Deprecated path: use :mod:`recommender.contrib.representations` (moved in 0.2; this alias goes in the next release)."""

from ._deprecated import alias

alias(__name__, "recommender.contrib.representations")
