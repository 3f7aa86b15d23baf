"""The index a server answers from: one read-only facade, reloaded when the catalog changes.

The catalog is SQLite in WAL mode: a reader sees committed snapshots while
another process (``recommender index``) writes.  Every request asks
:meth:`IndexState.current` for the facade; when the catalog's ``generation``
has moved on, one thread builds a new :class:`~recommender.Recommender` and
warms its default FAISS index while the other requests wait for it (so 100
clients do not rebuild it 100 times), then everything derived from the old
generation (search table, map coordinates) is dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
import pandas as pd

from ..errors import NotInIndexError, RecommenderError
from ..recommender import Recommender

logger = logging.getLogger(__name__)

__all__ = ["IndexState"]

#: Search table columns (plus ``top_tags``), read once per catalog generation.
SEARCH_COLUMNS = ("path", "artist", "title", "album", "genre", "year", "duration_s")


class IndexState:
    """A read-only index shared by the request threads of one server.

    Parameters
    ----------
    index_dir : path-like
        An existing index directory (``recommender index … --index DIR``).
    warm_space : str
        Space whose FAISS index is loaded (or rebuilt) when a generation is
        first seen (default ``'similarity'``, the space of ``/similar``).

    Raises
    ------
    CatalogError
        No index in ``index_dir`` (or an unreadable catalog).
    """

    def __init__(self, index_dir, *, warm_space: str = "similarity"):
        self.index_dir = os.path.abspath(os.path.expanduser(os.fspath(index_dir)))
        self.warm_space = warm_space
        self._reload_lock = threading.Lock()
        self._keys_lock = threading.Lock()
        self._key_locks: dict = {}
        self._model = None  # the analysis model, loaded on the first upload, kept across reloads
        self._model_lock = threading.Lock()
        self._rec = None
        self._gen = None
        self._cache: dict = {}
        self.reloads = 0
        self._open()

    # ------------------------------------------------------------------ facade
    def _open(self) -> None:
        rec = Recommender(self.index_dir, model=self._model)
        gen = rec.catalog.generation  # CatalogError here when there is no index
        t0 = time.perf_counter()
        if len(rec):
            try:
                rec.faiss_index(self.warm_space)
            except RecommenderError as e:  # answered again (and reported) by the requests that need it
                logger.warning("could not load the %s index: %s", self.warm_space, e)
        self._rec, self._gen, self._cache = rec, gen, {}
        self.reloads += 1
        logger.info("index %s at generation %d: %d tracks (warmed in %.2f s)",
                    self.index_dir, gen, len(rec), time.perf_counter() - t0)

    def current(self):
        """``(Recommender, generation)`` for the catalog as it is now (reloaded if it changed)."""
        rec, gen = self._rec, self._gen
        if rec.catalog.generation != gen:
            with self._reload_lock:
                if self._rec.catalog.generation != self._gen:
                    self._open()
                rec, gen = self._rec, self._gen
        return rec, gen

    @property
    def rec(self) -> Recommender:
        """The current facade (see :meth:`current`)."""
        return self.current()[0]

    def cached(self, key: tuple, compute):
        """``compute(rec)`` memoised for the current generation (one computation per key at a time)."""
        rec, gen = self.current()
        cache = self._cache
        if key in cache:
            return cache[key]
        with self._keys_lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if key in cache:
                return cache[key]
            value = compute(rec)
            if self._gen == gen:
                cache[key] = value
            return value

    # ------------------------------------------------------------------ model
    def model(self):
        """The index's analysis model, loaded once (on ONNX Runtime) and kept across reloads."""
        with self._model_lock:
            if self._model is None:
                self._model = self.rec.model
            return self._model

    # ------------------------------------------------------------ derived tables
    def search_table(self) -> pd.DataFrame:
        """Tracks with case-folded search fields and their 5 strongest tags (index: id)."""

        def compute(rec):
            from ..recommend import explore

            df = rec.tracks()[list(SEARCH_COLUMNS)].copy()
            try:
                T = explore.tag_frame(rec).reindex(df.index)
                names = np.asarray(T.columns)
                top = np.argsort(-T.fillna(-1).to_numpy(), axis=1)[:, :5]
                df["top_tags"] = [list(names[row]) for row in top]
            except RecommenderError as e:
                logger.warning("no tags for the search table: %s", e)
                df["top_tags"] = [[] for _ in range(len(df))]
            for c in ("path", "artist", "title", "album", "genre"):
                df[f"_{c}"] = df[c].fillna("").astype(str).str.casefold()
            df["_tags"] = [" ".join(t).casefold() for t in df["top_tags"]]
            return df

        return self.cached(("search",), compute)

    def audio_file(self, track_id: int) -> str:
        """Path of the audio file of an indexed track, checked before it is streamed.

        The path comes from the catalog, never from the client.  It is the
        track's indexed path: a symbolic link (to a file or through a folder)
        is followed, as the indexer follows it, so a collection of links plays.
        The file reached must still be the one that was indexed: a regular
        file with the size and modification time the catalog recorded for it
        (``os.stat`` through the link), so a link swapped after indexing to
        another file is refused.  The indexed name must have an audio
        extension.  The real path (links resolved) is returned, the one checked.

        Raises
        ------
        NotInIndexError
            No such track, or its file is gone.
        PermissionError
            The file is not the indexed one any more (or not an audio file).
        """
        import stat as _stat

        from ..io.audio import AUDIO_EXTENSIONS

        row = self.rec.track(int(track_id))
        path = row["path"]
        if os.path.splitext(path)[1].lower() not in AUDIO_EXTENSIONS:
            raise PermissionError(f"track {track_id}: its file is not an audio file")
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError:
            raise NotInIndexError(f"track {track_id}: its file {path} is gone (re-run `recommender index`)") from None
        if not _stat.S_ISREG(st.st_mode):
            raise PermissionError(f"track {track_id}: its path is not a regular file")
        size, mtime = row.get("size"), row.get("mtime_ns")
        if (size is not None and int(size) != st.st_size) or (mtime is not None and int(mtime) != st.st_mtime_ns):
            linked = real != os.path.abspath(path)
            what = ("its path leads through a link to another file than the one indexed" if linked
                    else "its file changed since it was indexed")
            raise PermissionError(f"track {track_id}: {what} (re-run `recommender index` to stream it)")
        return real
