"""``recommender …`` command line: one module per command group, registered
explicitly in :mod:`.main` (the console script is ``recommender.cli:main``)."""

from .main import build_parser, main  # noqa: F401

__all__ = ["main", "build_parser"]
