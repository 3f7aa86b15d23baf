"""The index a server answers from: one read-only facade, reloaded when the catalog changes.

The catalog is SQLite in WAL mode: a reader sees committed snapshots while
another process (``recommender index``) writes.  Every request asks
:meth:`IndexState.current` for the facade; when the catalog's ``generation``
has moved on, one thread builds a new :class:`~recommender.Recommender` and
warms its default FAISS index and the track table of ``similar``
(:func:`recommender.recommend.view.track_table`) while the other requests wait for it (so 100
clients do not rebuild it 100 times), then everything derived from the old
generation (search table, map coordinates) is dropped.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
import time

import numpy as np
import pandas as pd

from ..errors import NotInIndexError, RecommenderError
from ..recommend import view
from ..recommender import Recommender

logger = logging.getLogger(__name__)

__all__ = ["IndexState"]

#: File content hashes remembered by :meth:`IndexState.audio_file` (then forgotten all at once).
FILE_HASHES_KEPT = 65536
#: The ``#t=START[,END]`` tail of a cue track's catalog path (:func:`recommender.io.cuesheet.segment_key`).
_SEGMENT = re.compile(r"#t=(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?")

#: Search table columns (plus ``top_tags``), read once per catalog generation.
SEARCH_COLUMNS = ("path", "artist", "title", "album", "genre", "year", "duration_s")


class IndexState:
    """A read-only index shared by the request threads of one server.

    Loading a generation ends with :func:`gc.freeze` (after a collection): what the process
    holds then, the index included, is left out of later cyclic collections until the next
    generation is loaded (Python's documented use for long-lived servers; a full collection
    walking a 100k-track index took 34 ms).

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
        self._file_hashes: dict = {}  # file identity -> content hash (audio_file)
        self.reloads = 0
        self._open()

    # ------------------------------------------------------------------ facade
    def _open(self) -> None:
        rec = Recommender(self.index_dir, model=self._model)
        rec.read_only = True  # a FAISS file older than the catalog is rebuilt in memory, never written
        gen = rec.catalog.generation  # CatalogError here when there is no index
        t0 = time.perf_counter()
        if len(rec):
            try:
                rec.faiss_index(self.warm_space)
                # what /similar reads of its candidates, in memory (one bulk read per generation)
                view.track_table(rec)
                view.vectors(rec, "embedding")  # same-recording checks of every answer (radio loads it anyway)
                view.neighbour_lists(rec, self.warm_space)  # an indexed track's hits, searched at index time
            except RecommenderError as e:  # answered again (and reported) by the requests that need it
                logger.warning("could not load the %s index: %s", self.warm_space, e)
        self._rec, self._gen, self._cache = rec, gen, {}
        # The loaded index (~70k objects for 100k tracks) out of the cyclic garbage collector: a
        # full collection walking it took 34 ms, a pause every request in flight would wait for.
        # Unfrozen first, so that what the previous generation leaves in cycles is collected.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
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

    def fresh(self):
        """The current facade when the catalog is still at the loaded generation and the track
        table of ``similar`` is in memory, else ``None`` (without waiting: a caller that must not
        block, such as the event loop, goes on to :meth:`current` in a worker thread, where a
        reload or a rebuilt table may take seconds).  Cost: one read of the catalog's ``meta``
        (none inside :meth:`read_once` once the block has read it)."""
        rec = self._rec
        if rec.catalog.generation != self._gen or view.cached(rec, ("table",), None) is None:
            return None
        return rec

    def read_once(self):
        """A block in which the loaded catalog reads each ``meta`` value once (one
        ``PRAGMA data_version`` when nothing has changed since the last block):
        :meth:`~recommender.store._meta.IndexMeta.meta_read_once`.  A reload in the block opens
        another catalog, which reads as usual."""
        return self._rec.catalog.meta_read_once()

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
        The file reached must still be the one that was indexed, by one rule
        for whole files and CUE albums (whose audio file, ``source_path``, is
        the one checked and returned; the client plays ``start_s`` to ``end_s``):

        * a regular file whose name has an audio extension;
        * of the recorded ``size``, with a modification time not later than the
          recorded ``mtime_ns`` (the catalog records the later of the audio
          file's and its CUE sheet's, so an older file is not a changed one);
        * of the recorded ``content_hash``
          (:func:`recommender.io.collection.content_hash`, for a cue track
          :meth:`recommender.io.cuesheet.Segment.content_hash` of it): a link
          swapped to another file, or a file rewritten, with the same size and
          modification time is refused.  The catalog does not record device
          and inode; the hash (768 KiB read) is checked once per file identity
          (real path, device, inode, size, mtime, ctime) and remembered.

        A row without a ``content_hash`` (a catalog not written by the indexer)
        is checked by size and mtime only.  The real path (links resolved) is
        returned, the one checked.

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
        cue = bool(row.get("source_path"))  # a track of a CUE album: a part of this file
        path = row["source_path"] if cue else row["path"]
        if os.path.splitext(path)[1].lower() not in AUDIO_EXTENSIONS:
            raise PermissionError(f"track {track_id}: its file is not an audio file")
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError:
            raise NotInIndexError(f"track {track_id}: its file {path} is gone (re-run `recommender index`)") from None
        if not _stat.S_ISREG(st.st_mode):
            raise PermissionError(f"track {track_id}: its path is not a regular file")
        size, mtime, chash = row.get("size"), row.get("mtime_ns"), row.get("content_hash")
        same = ((size is None or int(size) == st.st_size) and (mtime is None or st.st_mtime_ns <= int(mtime))
                and (not chash or self._track_hash(row, real, st) == chash))
        if not same:
            linked = real != os.path.abspath(path)
            what = ("its path leads through a link to another file than the one indexed" if linked
                    else "its file changed since it was indexed")
            raise PermissionError(f"track {track_id}: {what} (re-run `recommender index` to stream it)")
        return real

    def _track_hash(self, row: dict, real: str, st) -> str | None:
        """The content hash the indexer would give the track ``row`` now (``None``: unreadable).

        The file's hash is computed once per ``(real path, device, inode, size,
        mtime, ctime)``; a cue track's is derived from it by its catalog path's
        ``#t=START[,END]`` (:meth:`recommender.io.cuesheet.Segment.content_hash`).
        """
        from ..io import collection, cuesheet

        key = (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        h = self._file_hashes.get(key)
        if h is None:
            try:
                h = collection.content_hash(real, size=st.st_size)
            except OSError:
                return None
            if len(self._file_hashes) >= FILE_HASHES_KEPT:
                self._file_hashes.clear()
            self._file_hashes[key] = h
        source = row.get("source_path")
        if not source:
            return h
        m = _SEGMENT.fullmatch(os.fsdecode(row["path"])[len(os.fsdecode(source)):])
        if m is None:
            return None
        end = float(m.group(2)) if m.group(2) is not None else None
        return cuesheet.Segment(source, float(m.group(1)), end).content_hash(h)
