"""Shared helpers for the benchmark scripts (not part of the package)."""

from __future__ import annotations

import glob
import os
import resource
import time

AUDIO_GLOBS = ("*.ogg", "*.mp3", "*.flac", "*.wav", "*.opus", "*.m4a")


def audio_files(folder, limit=None):
    files = []
    for pat in AUDIO_GLOBS:
        files += glob.glob(os.path.join(folder, "**", pat), recursive=True)
    files = sorted(files)
    return files[:limit] if limit else files


def synthetic_collection(folder, *, per_style=3, duration_s=60.0):
    """Write (once) a synthetic collection with the demo synthesiser."""
    from recommender.io.demo import make_demo_collection

    return make_demo_collection(folder, per_style=per_style, duration_s=duration_s)


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for child processes so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Timer:
    def __init__(self):
        self.t = 0.0

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.t += time.perf_counter() - self._t0
