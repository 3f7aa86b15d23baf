"""Every indexed track's nearest neighbours, searched once when the FAISS index is saved.

A k-nearest-neighbour graph of the collection (the "similar items" table of
item-based recommenders): row ``j`` holds the ``K`` hits of track ``ids[j]``'s
own vector in its space's FAISS index, exactly what
:meth:`~recommender.store.faiss_index.VectorIndex.search` returns for it (the
track itself included).  A ``similar`` query of an indexed track that needs at
most ``K`` candidates then reads a row instead of searching: on the 400-d
HNSW index of 100k tracks the search is ~0.45 ms of the ~2 ms a query costs.

Stored beside the FAISS file as ``<space>.neighbours.npz`` (uncompressed NumPy
arrays ``ids`` int64 (n,), ``neighbours`` int64 (n, K), ``scores`` float32
(n, K) and ``meta``: the FAISS sidecar's ``generation`` and ``faiss_sha256``
it was searched in).  A file that does not match the FAISS index loaded is
ignored (the query searches, as before).

Equality with a search: an HNSW search keeps its ``ef_search`` best
candidates and returns the first ``k`` of them, so for ``k <= K <= ef_search``
the first ``k`` hits of a K-search are the hits of a k-search (checked on
1,500 random tracks of the 100k benchmark index: identical ids and scores).
A flat (exact) index is searched 16 tracks at a time, which FAISS scores
query by query like a single search (a large batch goes through BLAS and its
scores differ in the last bits); a flat index above :data:`FLAT_LISTS_MAX_N`
tracks gets no lists (quadratic cost), nor does an IVF-PQ index (its re-ranked
pool grows with ``k``: a 25-search is not the first 25 hits of a 40-search).
``tests/test_neighbours.py`` checks the equality on each kind.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from .._utils import atomic_write, unit_rows
from ..errors import IndexFileError, RecommenderError

logger = logging.getLogger(__name__)

__all__ = ["NeighbourLists", "neighbours_path", "DEFAULT_K", "SPACES_WITH_LISTS", "save_index"]

#: Neighbours kept per track: ``similar(k)`` asks for ``max(4k + 10, 50)`` candidates (a plain
#: query on an index whose search of that many stays within ``ef_search``: ``k + 8`` first), so
#: every ``k <= 13`` (the API's default is 10) is answered from the lists.
DEFAULT_K = 64
#: Spaces whose lists are written: the default space of a track query.
SPACES_WITH_LISTS = ("similarity",)
#: Tracks searched per FAISS call while building an HNSW index's lists (bounds the temporary arrays).
_CHUNK = 4096
#: ... and a flat or IVF index's: FAISS scores a batch of that size one query at a time, bit for
#: bit as a single search (a larger batch goes through BLAS, whose sums round differently).
_CHUNK_EXACT = 16
#: A flat index's lists cost n^2 d multiply-adds, paid by every index run that changes the
#: collection (10k tracks x 400-d: 2.3 s on this machine's 2 cores, 20k: 10 s); above this many
#: tracks they are not written (queries search, ~1 ms each).
FLAT_LISTS_MAX_N = 10000


def neighbours_path(faiss_path) -> str:
    """``<space>.neighbours.npz`` beside the FAISS file ``<space>.faiss``."""
    base = os.fspath(faiss_path)
    return (base[:-len(".faiss")] if base.endswith(".faiss") else base) + ".neighbours.npz"


class NeighbourLists:
    """The ``K`` nearest tracks of every track of one FAISS index.

    Attributes
    ----------
    ids : np.ndarray, int64, (n,)
        Track ids, in the index's order.
    neighbours : np.ndarray, int64, (n, K)
        Hit ids, best first (``-1`` where the index held fewer than ``K``).
    scores : np.ndarray, float32, (n, K)
        Cosines (``-inf`` with ``-1``).
    meta : dict
        ``generation`` and ``faiss_sha256`` of the FAISS file searched (``None`` before saving).
    """

    def __init__(self, ids, neighbours, scores, meta=None):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.neighbours = np.asarray(neighbours, dtype=np.int64)
        self.scores = np.asarray(scores, dtype=np.float32)
        self.meta = dict(meta or {})
        self._row = {int(t): j for j, t in enumerate(self.ids.tolist())}

    @property
    def k(self) -> int:
        """Neighbours per track (``K``)."""
        return int(self.neighbours.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, index, k: int = DEFAULT_K, *, meta=None) -> "NeighbourLists":
        """Search every vector of ``index`` (a :class:`~recommender.store.faiss_index.VectorIndex`).

        Each track's query is its stored vector, as a track query searches
        (:meth:`recommender.Recommender.vector` reconstructs it).  Cost: one batch
        search, ~0.15 ms a track on 2 cores for a 400-d HNSW index of 100k tracks.
        """
        ids = index.ids()
        k = int(min(k, max(len(ids), 1)))
        N = np.full((len(ids), k), -1, np.int64)
        S = np.full((len(ids), k), -np.inf, np.float32)
        chunk = _CHUNK if index.kind == "hnsw" else _CHUNK_EXACT
        for a in range(0, len(ids), chunk):
            X = np.stack([index.reconstruct(int(t)) for t in ids[a:a + chunk]])
            S[a:a + len(X)], N[a:a + len(X)] = index.search(unit_rows(X), k)
        return cls(ids, N, S, meta)

    def serves(self, index) -> bool:
        """Whether these lists hold ``index``'s answers: built with its search parameters
        (``ef_search`` of an HNSW index: tuning it changes what a search returns)."""
        return index.kind != "hnsw" or index.params.get("ef_search") == self.meta.get("ef_search")

    def lookup(self, track_id: int, fetch: int):
        """``(scores (1, fetch), ids (1, fetch))`` of ``track_id``, as a search for ``fetch`` hits
        returns them; ``None`` when the track is not held or ``fetch`` exceeds ``K``."""
        j = self._row.get(int(track_id))
        if j is None or fetch > self.k:
            return None
        return self.scores[j:j + 1, :fetch], self.neighbours[j:j + 1, :fetch]

    def save(self, path) -> None:
        """Write ``path`` (``.npz``) atomically."""
        def write(fh):
            np.savez(fh, ids=self.ids, neighbours=self.neighbours, scores=self.scores,
                     meta=np.frombuffer(json.dumps(self.meta, sort_keys=True).encode(), dtype=np.uint8))

        atomic_write(path, write)

    @classmethod
    def load(cls, path, *, side: dict) -> "NeighbourLists":
        """The lists at ``path`` when they were searched in the FAISS file whose sidecar is ``side``.

        Raises
        ------
        FileNotFoundError
            No file.
        IndexFileError
            An unreadable file, or lists of another FAISS file (``generation`` /
            ``faiss_sha256`` differ from ``side``'s).
        """
        path = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                arrays = z["ids"], z["neighbours"], z["scores"]
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError) as e:
            raise IndexFileError(path, f"unreadable neighbour lists ({e})") from None
        want = {key: side.get(key) for key in ("generation", "faiss_sha256")}
        if {key: meta.get(key) for key in want} != want:
            raise IndexFileError(path, "neighbour lists of another FAISS index (re-run `recommender index`)")
        ids, N, S = arrays
        if N.ndim != 2 or N.shape != S.shape or N.shape[0] != len(ids):
            raise IndexFileError(path, f"neighbour lists of inconsistent shapes {ids.shape}, {N.shape}, {S.shape}")
        return cls(ids, N, S, meta)


def save_index(index, path, *, space: str, generation: int) -> None:
    """Save the FAISS ``index`` of ``space`` at ``path`` (:meth:`VectorIndex.save`) and, for the
    spaces of :data:`SPACES_WITH_LISTS`, its :class:`NeighbourLists` beside it.  Lists that
    cannot be written are logged and left out (queries search the index instead)."""
    from .faiss_index import VectorIndex

    index.save(path, meta={"space": space, "generation": generation})
    lists_path = neighbours_path(path)
    if not _wanted(space, index.kind, len(index)):
        _remove(lists_path)
        return
    side = VectorIndex.read_sidecar(path)
    try:
        meta = {k: side.get(k) for k in ("generation", "faiss_sha256")}
        NeighbourLists.build(index, meta=dict(meta, ef_search=index.params.get("ef_search"))).save(lists_path)
    except (OSError, RecommenderError) as e:  # a search answers without them
        logger.warning("could not write the neighbour lists %s: %s", lists_path, e)
        _remove(lists_path)


def _wanted(space: str, kind: str, n: int) -> bool:
    """Whether an index of ``space``, ``kind`` and ``n`` tracks gets lists."""
    return space in SPACES_WITH_LISTS and (kind == "hnsw" or (kind == "flat" and n <= FLAT_LISTS_MAX_N))


def _remove(path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def lists_are_current(faiss_path, space: str) -> bool:
    """Whether ``space`` needs no lists, or its lists file matches the FAISS file ``faiss_path``."""
    from .faiss_index import VectorIndex

    if space not in SPACES_WITH_LISTS:
        return True
    try:
        side = VectorIndex.read_sidecar(faiss_path)
        if not _wanted(space, side.get("kind"), int(side.get("n", 0))):
            return True
        with np.load(neighbours_path(faiss_path), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
    except (OSError, ValueError, KeyError, RecommenderError):
        return False
    return all(meta.get(k) == side.get(k) for k in ("generation", "faiss_sha256"))
