"""One-release aliases for module paths that moved (beets' ``deprecate_imports`` idea).

``recommender/catalog.py`` and the other old flat modules call :func:`alias`, which warns
once with a :class:`DeprecationWarning` naming the new path and puts the new module in
``sys.modules`` under the old name, so ``import recommender.catalog`` and
``from recommender import catalog`` give the very same module object (attributes,
monkeypatching and ``isinstance`` all keep working).
"""

from __future__ import annotations

import importlib
import sys
import warnings


def alias(old: str, new: str) -> None:
    """Make module ``old`` an alias of module ``new`` after a DeprecationWarning."""
    warnings.warn(
        f"{old} moved to {new}; the old path is kept for one release",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)
    sys.modules[old] = module
    parent, _, leaf = old.rpartition(".")
    setattr(sys.modules[parent], leaf, module)
