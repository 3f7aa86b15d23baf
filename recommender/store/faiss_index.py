"""FAISS wrapper: cosine nearest neighbours with stable int64 track ids.

Vectors are L2-normalised float32 and searched by inner product, so scores
are cosine similarities.  Every index is an :class:`faiss.IndexIDMap2` around
one of three structures, picked by :func:`choose_index`:

============  ==================  ===================================================
kind          used for (auto)     structure
============  ==================  ===================================================
``'flat'``    n < 50 000          exact ``IndexFlatIP``
``'hnsw'``    n < 5 000 000       ``IndexHNSWFlat`` (M=32, efConstruction=80,
                                  efSearch=128): ~0.95+ recall@10, sub-ms queries
``'ivfpq'``   n >= 5 000 000      ``IVF{nlist},PQ{m}x4fs`` (fast-scan PQ) + exact
                                  re-ranking (``IndexRefineFlat``, k_factor=8);
                                  nlist ~ 4 sqrt(n), nprobe ~ nlist/32 in [16, 128]
============  ==================  ===================================================

FAISS files are *derived* data: the SQLite catalog (:mod:`recommender.catalog`)
is the source of truth and an index can always be rebuilt from it.  Each file
``<path>`` has a JSON sidecar ``<path>.json`` with its dim, kind, size, the
catalog generation it was built from, the SHA-256 of the FAISS file and a
checksum of its ids.  :meth:`VectorIndex.load` verifies the SHA-256 before
FAISS parses a byte, so a truncated, garbage or swapped file (e.g. a pickle
renamed ``.faiss``) never reaches the FAISS reader.  The sidecar is written
last: a crash between the two ``os.replace`` calls leaves a pair whose hashes
disagree, which loading reports (and the caller rebuilds).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os

import numpy as np

from .._utils import atomic_write, atomic_write_bytes, check_int, cpu_count, sha256_file
from ..errors import IndexFileError, NotInIndexError, ParameterError, RecommenderError, StaleIndexError

__all__ = [
    "choose_index",
    "VectorIndex",
    "StaleIndexError",
    "ids_checksum",
    "save_rebuilt",
    "set_num_threads",
    "FLAT_MAX_N",
    "HNSW_MAX_N",
]

logger = logging.getLogger(__name__)

#: Below this many vectors ``kind='auto'`` uses exact search.
FLAT_MAX_N = 50_000
#: Below this many vectors ``kind='auto'`` uses HNSW, above IVF-PQ + re-ranking.
HNSW_MAX_N = 5_000_000
#: At most this many (sampled) vectors train IVF/PQ.
MAX_TRAIN = 256_000
#: Vectors are normalised and added in chunks of this size (bounded memory).
ADD_CHUNK = 65_536
#: Searches with at most this many queries run on one OpenMP thread.
_SERIAL_MAX_NQ = 4

_KINDS = ("flat", "hnsw", "ivfpq")
_DEFAULTS = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 128},
    "ivfpq": {"nlist": None, "pq_m": None, "nprobe": None, "k_factor": 8},
}
# fourcc of the structure inside the IndexIDMap2 (byte 37 of the file)
_INNER_FOURCC = {"flat": b"IxFI", "hnsw": b"IHNf", "ivfpq": b"IxRF"}
_SIDECAR_FORMAT = "recommender-faiss/1"
_SIDECAR_MAX_BYTES = 1 << 20
_RESERVED_SIDECAR = frozenset(
    {"format", "dim", "kind", "metric", "n", "faiss_sha256", "faiss_size", "ids_sha256", "params"}
)




# --------------------------------------------------------------------- threads
_threads_configured = False


def _load_faiss():
    """Import FAISS on first use (module global ``faiss``).

    FAISS's OpenMP threads spin while idle by default; on a small machine
    (2 cores) the spinning competes with OpenBLAS and the next parallel
    region: measured 2-4x slower k-means and builds.  The OpenMP runtime
    bundled with FAISS reads ``OMP_WAIT_POLICY`` once, when it is loaded, so
    the passive policy is set here, just before the first ``import faiss``,
    and never over a user's own setting: importing this module changes
    nothing in the process.
    """
    global faiss
    mod = globals().get("faiss")
    if mod is None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import faiss as mod

        globals()["faiss"] = mod
    return mod


def __getattr__(name):  # ``recommender.store.faiss_index.faiss``: the (lazily imported) module
    if name == "faiss":
        return _load_faiss()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_num_threads(n=None) -> int:
    """Set FAISS's OpenMP thread count; ``None`` = the CPUs this process may use.

    FAISS otherwise uses as many threads as the machine has cores, which in a
    container limited to 2 CPUs oversubscribes badly.  Called automatically
    (unless ``OMP_NUM_THREADS`` is set) the first time an index is built or
    loaded.  Returns the count set.

    Raises
    ------
    ParameterError
        ``n`` is not a positive integer or ``None``.
    """
    global _threads_configured
    if n is None:
        n = cpu_count()
    n = check_int("n", n, min=1)
    _load_faiss().omp_set_num_threads(n)
    _threads_configured = True
    return n


def _auto_threads():
    _load_faiss()
    if not _threads_configured and "OMP_NUM_THREADS" not in os.environ:
        set_num_threads(None)


# ------------------------------------------------------------------- choosing
def choose_index(n, d) -> str:
    """Pick the index structure for ``n`` vectors of dimension ``d``.

    Parameters
    ----------
    n : int
        Number of vectors.
    d : int
        Dimension.

    Returns
    -------
    str
        ``'flat'`` (exact) for ``n < FLAT_MAX_N`` (50 000): a 200-d exact
        scan of 50k vectors takes ~1-2 ms, so approximation buys nothing.
        ``'hnsw'`` for ``n < HNSW_MAX_N`` (5 000 000): graph search, recall@10
        >= 0.95 at well under 2 ms; memory ~ n * (4 d + 256) bytes.
        ``'ivfpq'`` beyond: IVF with PQ codes and exact re-ranking; trains on
        at most ``MAX_TRAIN`` sampled vectors and builds much faster than HNSW.

    Examples
    --------
    >>> choose_index(10_000, 200), choose_index(1_000_000, 200)
    ('flat', 'hnsw')
    """
    n, d = check_int("n", n, min=0), check_int("d", d, min=1)
    if n < FLAT_MAX_N:
        return "flat"
    if n < HNSW_MAX_N:
        return "hnsw"
    return "ivfpq"


def _ivf_shape(n, d, params):
    """nlist, PQ m, training size for ``n`` vectors (no FAISS under-training warnings)."""
    n_train = min(n, MAX_TRAIN)
    nlist = params.get("nlist") or int(round(4 * math.sqrt(n)))
    nlist = max(1, min(nlist, n_train // 39))  # FAISS wants >= 39 points per centroid
    m = params.get("pq_m")
    if not m:
        # smallest divisor of d giving <= 4 dimensions per sub-quantizer
        m = next(k for k in range(max(1, math.ceil(d / 4)), d + 1) if d % k == 0)
    if d % m:
        raise ParameterError(f"pq_m={m}: must divide the dimension {d}")
    return nlist, int(m), n_train


def ids_checksum(ids) -> str:
    """SHA-256 of the sorted ids (little-endian int64): compare index and catalog."""
    a = np.sort(np.asarray(ids, dtype=np.int64).reshape(-1)).astype("<i8", copy=False)
    return hashlib.sha256(a.tobytes()).hexdigest()


# ---------------------------------------------------------------------- index
class VectorIndex:
    """Cosine nearest-neighbour index over float vectors with int64 ids.

    Parameters
    ----------
    dim : int
        Vector dimension.
    kind : {'auto', 'flat', 'hnsw', 'ivfpq'}
        Structure; ``'auto'`` resolves with :func:`choose_index` on the size
        of the first :meth:`add` (or :meth:`build`).
    metric : {'cosine'}
        Only cosine is supported (vectors are L2-normalised on the way in).
    **params
        HNSW: ``M`` (32), ``ef_construction`` (80), ``ef_search`` (128).
        IVF-PQ: ``nlist`` (~4 sqrt(n)), ``pq_m`` (d/4), ``nprobe``
        (nlist/32, clipped to 16..128), ``k_factor`` (8, re-ranking depth).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 200)).astype(np.float32)
    >>> index = VectorIndex.build(np.arange(1000) * 10, X)
    >>> scores, ids = index.search(X[:2], k=5)
    >>> ids[:, 0].tolist()
    [0, 10]
    """

    def __init__(self, dim, *, kind="auto", metric="cosine", **params):
        self._dim = check_int("dim", dim, min=1)
        if kind != "auto" and kind not in _KINDS:
            raise ParameterError(f"kind={kind!r}: must be 'auto', 'flat', 'hnsw' or 'ivfpq'")
        if metric != "cosine":
            raise ParameterError(f"metric={metric!r}: only 'cosine' is supported")
        allowed = set().union(*(_DEFAULTS[k] for k in (_KINDS if kind == "auto" else (kind,))))
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ParameterError(
                f"unknown parameter(s) {unknown} for kind={kind!r}: allowed are {sorted(allowed)}"
            )
        for name in ("M", "ef_construction", "ef_search", "nlist", "pq_m", "nprobe", "k_factor"):
            if params.get(name) is not None:
                check_int(name, params[name], min=1)
        self._requested_kind = kind
        self._kind = None if kind == "auto" else kind
        self._metric = metric
        self._user_params = dict(params)
        self._params = {}
        self._index = None
        self._random_state = 0
        if self._kind is not None and self._kind != "ivfpq":
            self._create(self._kind, 0)

    # ------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    @property
    def kind(self):
        """``'flat'``, ``'hnsw'``, ``'ivfpq'`` (or ``None`` while ``'auto'`` is unresolved)."""
        return self._kind

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def params(self) -> dict:
        """Structure and search parameters in use."""
        return dict(self._params)

    @property
    def ntotal(self) -> int:
        """Number of vectors held."""
        return 0 if self._index is None else int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self):
        return f"VectorIndex(dim={self._dim}, kind={self._kind!r}, n={self.ntotal})"

    # ------------------------------------------------------------- creation
    def _create(self, kind, n):
        _auto_threads()
        d = self._dim
        p = {**_DEFAULTS[kind], **{k: v for k, v in self._user_params.items() if k in _DEFAULTS[kind]}}
        ip = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            base = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            base = faiss.IndexHNSWFlat(d, int(p["M"]), ip)
            base.hnsw.efConstruction = int(p["ef_construction"])
            base.hnsw.efSearch = int(p["ef_search"])
        else:
            nlist, m, _ = _ivf_shape(n, d, p)
            # 4-bit fast-scan PQ: trains in seconds (8-bit PQ50 took ~160 s on
            # 20k vectors on 2 cores), scans with SIMD; the exact re-ranking
            # of k * k_factor candidates restores the recall.
            base = faiss.index_factory(d, f"IVF{nlist},PQ{m}x4fs,RFlat", ip)
            p.update(nlist=nlist, pq_m=m)
            if p.get("nprobe") is None:
                p["nprobe"] = int(min(nlist, max(16, min(128, nlist // 32))))
            ivf = faiss.extract_index_ivf(base)
            ivf.nprobe = int(p["nprobe"])
            ivf.cp.seed = int(self._random_state) % (2**31)
            base.k_factor = float(p["k_factor"])
        self._kind = kind
        self._params = p
        self._index = faiss.IndexIDMap2(base)

    @classmethod
    def build(cls, ids, X, *, kind="auto", random_state=0, **params) -> "VectorIndex":
        """Build an index over ``X`` with ids ``ids``.

        Parameters
        ----------
        ids : array_like of int, shape (n,)
            Unique, non-negative (catalog track ids).
        X : array_like, shape (n, d)
            Vectors (any float dtype, need not be normalised; a
            ``np.memmap`` works: it is read in chunks).
        kind : {'auto', 'flat', 'hnsw', 'ivfpq'}
        random_state : int
            Seeds the training sample and k-means (IVF-PQ).
        **params
            See :class:`VectorIndex`.

        Returns
        -------
        VectorIndex
        """
        X = _as_2d(X, "X")
        self = cls(X.shape[1], kind=kind, **params)
        self._random_state = check_int("random_state", random_state, min=0)
        self.add(ids, X)
        return self

    def add(self, ids, X) -> "VectorIndex":
        """Add vectors with new ids (an ``'ivfpq'`` index trains on the first call).

        Raises
        ------
        ParameterError
            Shape, dtype, non-finite values, negative or duplicate ids, or
            an id already in the index.
        """
        X = _as_2d(X, "X")
        if X.shape[1] != self._dim:
            raise ParameterError(f"X has dim {X.shape[1]}: this index has dim {self._dim}")
        ids = _as_ids(ids, X.shape[0])
        if self.ntotal and len(ids):
            clash = np.intersect1d(ids, self.ids(), assume_unique=True)
            if len(clash):
                raise ParameterError(f"ids {clash[:5].tolist()} are already in the index")
        if self._index is None:
            kind = self._kind or choose_index(len(ids), self._dim)
            self._create(kind, len(ids))
            if kind == "ivfpq":
                self._train(X)
        n = X.shape[0]
        for i in range(0, n, ADD_CHUNK):
            chunk = _normalised(X[i : i + ADD_CHUNK], "X")
            self._index.add_with_ids(chunk, ids[i : i + ADD_CHUNK])
        return self

    def _train(self, X):
        n = X.shape[0]
        _, _, n_train = _ivf_shape(n, self._dim, self._params)
        if n_train < 1000:
            raise ParameterError(
                f"kind='ivfpq' with n={n}: needs at least 1000 vectors to train; use 'flat' or 'hnsw'"
            )
        rng = np.random.default_rng(self._random_state)
        sample = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else slice(None)
        xt = _normalised(np.asarray(X[sample]), "X")
        self._index.train(xt)

    def remove(self, ids) -> int:
        """Remove ids (``'flat'`` only; other kinds are rebuilt from the catalog).

        Returns the number removed.
        """
        if self._kind != "flat":
            raise RecommenderError(
                f"remove is supported for kind='flat' only (this index is {self._kind!r}); "
                "rebuild the index from the catalog"
            )
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))

    # --------------------------------------------------------------- search
    def set_search_params(self, *, ef_search=None, nprobe=None, k_factor=None) -> None:
        """Trade recall for speed after building/loading (not thread-safe with search)."""
        if self._index is None:
            return
        base = faiss.downcast_index(self._index.index)
        if ef_search is not None:
            if self._kind != "hnsw":
                raise ParameterError(f"ef_search: applies to kind='hnsw', not {self._kind!r}")
            base.hnsw.efSearch = self._params["ef_search"] = check_int("ef_search", ef_search, min=1)
        if nprobe is not None or k_factor is not None:
            if self._kind != "ivfpq":
                raise ParameterError(f"nprobe/k_factor: apply to kind='ivfpq', not {self._kind!r}")
            if nprobe is not None:
                faiss.extract_index_ivf(base).nprobe = self._params["nprobe"] = check_int(
                    "nprobe", nprobe, min=1
                )
            if k_factor is not None:
                base.k_factor = self._params["k_factor"] = check_int("k_factor", k_factor, min=1)

    def search(self, Q, k):
        """The ``k`` most similar vectors to each query.

        Parameters
        ----------
        Q : array_like, shape (d,) or (nq, d)
            Queries (normalised internally).
        k : int
            Neighbours per query.

        Returns
        -------
        scores : np.ndarray, float32, shape (nq, k)
            Cosine similarities, best first; ``-inf`` where fewer than ``k``
            were found.
        ids : np.ndarray, int64, shape (nq, k)
            ``-1`` where fewer than ``k`` were found.
        """
        k = check_int("k", k, min=1)
        Q = _as_2d(Q, "Q", allow_1d=True)
        if Q.shape[1] != self._dim:
            raise ParameterError(f"Q has dim {Q.shape[1]}: this index has dim {self._dim}")
        Q = _normalised(Q, "Q")
        nq = Q.shape[0]
        if self.ntotal == 0:
            return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)
        if nq <= _SERIAL_MAX_NQ:
            # One thread for a few queries.  The work is too small to split,
            # and on a busy 2-core machine an OpenMP barrier costs more than
            # the search: flat 100k x 200, one query, measured 3.6 ms with 1
            # thread vs 15-24 ms with 2.  omp_set_num_threads only affects
            # parallel regions started by the calling thread, so this is
            # safe with concurrent searches from other Python threads.
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                D, I = self._index.search(Q, k)
            finally:
                faiss.omp_set_num_threads(before)
        else:
            D, I = self._index.search(Q, k)
        D = np.asarray(D, dtype=np.float32)
        D[I < 0] = -np.inf
        return D, np.asarray(I, dtype=np.int64)

    def reconstruct(self, track_id) -> np.ndarray:
        """The stored (normalised) vector of ``track_id``, float32 (d,)."""
        if self._index is None:
            raise NotInIndexError(f"id {track_id} is not in the index (empty)")
        try:
            return self._index.reconstruct(int(track_id)).astype(np.float32, copy=False)
        except RuntimeError:
            raise NotInIndexError(f"id {track_id} is not in the index") from None

    def ids(self) -> np.ndarray:
        """Ids held, in insertion order, int64."""
        if self._index is None:
            return np.empty(0, dtype=np.int64)
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    # ------------------------------------------------------------ save/load
    def save(self, path, *, meta=None) -> None:
        """Write ``path`` and its sidecar ``path + '.json'`` atomically.

        Parameters
        ----------
        path : str or os.PathLike
        meta : dict, optional
            JSON values stored in the sidecar, conventionally ``space`` and
            ``generation`` (the catalog's ``vectors_generation`` this was
            built from, checked by :meth:`load`).

        Notes
        -----
        Each file goes to a temporary file in the same directory, is
        fsync'ed, and is moved over the old one with :func:`os.replace`; the
        FAISS file first, the sidecar last.  The sidecar is deterministic (no
        timestamps), so saving an unchanged index twice gives identical bytes.
        """
        if self._index is None:
            raise RecommenderError("cannot save an empty 'auto' index before anything is added")
        meta = dict(meta or {})
        clash = sorted(set(meta) & _RESERVED_SIDECAR)
        if clash:
            raise ParameterError(f"meta key(s) {clash}: reserved for the sidecar")
        path = os.fspath(path)
        written = {}

        def write(tmp):
            faiss.write_index(self._index, tmp)
            written["sha"], written["size"] = sha256_file(tmp), os.path.getsize(tmp)

        atomic_write(path, write, binary=None)  # fsync'ed before the rename
        sha, size = written["sha"], written["size"]
        side = {
            **meta,
            "format": _SIDECAR_FORMAT,
            "dim": self._dim,
            "kind": self._kind,
            "metric": self._metric,
            "n": self.ntotal,
            "faiss_sha256": sha,
            "faiss_size": size,
            "ids_sha256": ids_checksum(self.ids()),
            "params": {k: v for k, v in self._params.items() if v is not None},
        }
        try:
            text = json.dumps(side, sort_keys=True, indent=1, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"meta: must be JSON serialisable ({exc})") from None
        atomic_write_bytes(path + ".json", text.encode("utf-8"))

    @classmethod
    def read_sidecar(cls, path) -> dict:
        """The validated sidecar of ``path`` (without touching the FAISS file)."""
        path = os.fspath(path)
        side_path = path + ".json"
        try:
            with open(side_path, "rb") as fh:
                raw = fh.read(_SIDECAR_MAX_BYTES + 1)
        except FileNotFoundError:
            raise IndexFileError(
                path, f"sidecar {os.path.basename(side_path)} is missing; rebuild the index from the catalog"
            ) from None
        except OSError as exc:
            raise IndexFileError(side_path, f"cannot read sidecar: {exc.strerror}") from None
        if len(raw) > _SIDECAR_MAX_BYTES:
            raise IndexFileError(side_path, "sidecar larger than 1 MiB, not an index sidecar")
        try:
            side = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise IndexFileError(side_path, "sidecar is not valid JSON") from None
        if not isinstance(side, dict) or side.get("format") != _SIDECAR_FORMAT:
            raise IndexFileError(side_path, f"not a {_SIDECAR_FORMAT} sidecar")
        checks = {
            "dim": lambda v: isinstance(v, int) and v >= 1,
            "n": lambda v: isinstance(v, int) and v >= 0,
            "kind": lambda v: v in _KINDS,
            "metric": lambda v: v == "cosine",
            "faiss_sha256": lambda v: isinstance(v, str) and len(v) == 64,
            "faiss_size": lambda v: isinstance(v, int) and v > 0,
            "ids_sha256": lambda v: isinstance(v, str) and len(v) == 64,
            "params": lambda v: isinstance(v, dict),
        }
        for key, ok in checks.items():
            if key not in side or not ok(side[key]):
                raise IndexFileError(side_path, f"sidecar field {key!r} missing or invalid")
        return side

    @classmethod
    def load(cls, path, *, expected_dim=None, expected_generation=None) -> "VectorIndex":
        """Load and validate an index written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
        expected_dim : int, optional
            Raise if the index has another dimension.
        expected_generation : int, optional
            Raise :class:`StaleIndexError` if the sidecar's ``generation``
            differs (the catalog changed since the index was built).

        Raises
        ------
        IndexFileError
            Missing file or sidecar, SHA-256 mismatch (modified, truncated,
            interrupted save, or not an index at all), unreadable by FAISS,
            or a dimension other than ``expected_dim``.
        StaleIndexError
            Generation mismatch: rebuild from the catalog.

        Notes
        -----
        Cheap checks (sidecar, dim, generation) run before the file is read.
        The file is hashed and parsed from one open file descriptor, so a
        concurrent :meth:`save` cannot slip another file in between; when the
        sidecar changed during the read, the load is retried.
        """
        path = os.fspath(path)
        for attempt in range(3):
            side = cls.read_sidecar(path)
            if expected_dim is not None and side["dim"] != expected_dim:
                raise IndexFileError(path, f"index has dim {side['dim']}, expected {expected_dim}")
            if expected_generation is not None and side.get("generation") != expected_generation:
                raise StaleIndexError(
                    path,
                    f"index was built from catalog generation {side.get('generation')}, the catalog "
                    f"is at generation {expected_generation}; rebuild the index",
                    found_generation=side.get("generation"),
                    expected_generation=expected_generation,
                )
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                raise IndexFileError(path, "index file is missing; rebuild it from the catalog") from None
            except OSError as exc:
                raise IndexFileError(path, f"cannot read: {exc.strerror}") from None
            with fh:
                sha, size = _sha256_fileobj(fh)
                if sha != side["faiss_sha256"] or size != side["faiss_size"]:
                    try:
                        again = cls.read_sidecar(path)
                    except IndexFileError:
                        again = None
                    if again is not None and again != side and attempt < 2:
                        continue  # a concurrent save replaced the pair: retry
                    raise IndexFileError(
                        path,
                        f"file does not match its sidecar (sha256/size {size} bytes vs "
                        f"{side['faiss_size']}): modified, truncated, or an interrupted save; "
                        "rebuild the index from the catalog",
                    )
                fh.seek(0)
                head = fh.read(41)
                if (
                    head[:4] != b"IxM2"
                    or head[37:41] != _INNER_FOURCC[side["kind"]]
                    or int.from_bytes(head[4:8], "little", signed=True) != side["dim"]
                    or int.from_bytes(head[8:16], "little", signed=True) != side["n"]
                ):
                    raise IndexFileError(path, f"header does not describe a {side['kind']!r} index")
                fh.seek(0)
                _auto_threads()
                try:
                    raw = faiss.read_index(faiss.PyCallbackIOReader(fh.read, 1 << 20))
                except (RuntimeError, MemoryError, ValueError) as exc:
                    msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    raise IndexFileError(path, f"FAISS cannot read the file: {msg[:200]}") from None
            break
        return cls._from_faiss(path, raw, side)

    @classmethod
    def _from_faiss(cls, path, raw, side):
        if not isinstance(raw, faiss.IndexIDMap2):
            raise IndexFileError(path, f"unexpected index type {type(raw).__name__}")
        base = faiss.downcast_index(raw.index)
        expect = {"flat": faiss.IndexFlat, "hnsw": faiss.IndexHNSW, "ivfpq": faiss.IndexRefine}
        if not isinstance(base, expect[side["kind"]]):
            raise IndexFileError(path, f"contains {type(base).__name__}, sidecar says {side['kind']!r}")
        if raw.d != side["dim"] or raw.ntotal != side["n"]:
            raise IndexFileError(path, f"holds {raw.ntotal} x {raw.d}, sidecar says {side['n']} x {side['dim']}")
        if raw.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise IndexFileError(path, "index does not use inner product (not a cosine index)")
        self = cls.__new__(cls)
        self._dim = int(raw.d)
        self._kind = side["kind"]
        self._requested_kind = side["kind"]
        self._metric = "cosine"
        self._user_params = {}
        self._params = dict(side["params"])
        self._random_state = 0
        self._index = raw
        if ids_checksum(self.ids()) != side["ids_sha256"]:
            raise IndexFileError(path, "ids do not match the sidecar checksum")
        return self


def save_rebuilt(index: VectorIndex, path, *, meta: dict, read_only: bool = False) -> bool:
    """Store an index rebuilt from the catalog (its file was missing or stale) at ``path``.

    Source: :meth:`recommender.Recommender.faiss_index` after a rebuild.

    Parameters
    ----------
    index : VectorIndex
        The rebuilt index.
    path : str or os.PathLike
        Where it belongs (``<index>/<space>.faiss``, sidecar ``.json`` beside it).
    meta : dict
        Sidecar values (``space``, ``generation``), see :meth:`VectorIndex.save`.
    read_only : bool
        ``True`` (``recommender serve``): nothing is written; the index stays in memory.

    Returns
    -------
    bool
        Whether it was written.  A folder that cannot be written is logged (INFO) and
        the index kept in memory, as with ``read_only``; no error is raised.
    """
    if read_only:
        logger.info("rebuilt %s in memory (read-only: the index folder is not written)", os.fspath(path))
        return False
    try:
        index.save(path, meta=meta)
        return True
    except (OSError, RecommenderError) as e:  # read-only index dir: keep it in memory
        logger.info("could not save the rebuilt index %s (%s); using it in memory", os.fspath(path), e)
        return False


# ------------------------------------------------------------------- helpers
def _as_2d(X, name, *, allow_1d=False):
    if isinstance(X, np.ndarray) and X.dtype.kind in "fiu":
        a = X
    else:
        try:
            a = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{name}: not a numeric array ({exc})") from None
    if allow_1d and a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ParameterError(f"{name} has shape {a.shape}: must be 2-D (n, d) with d >= 1")
    return a


def _normalised(X, name):
    """Contiguous float32 copy with unit-norm rows (zero rows stay zero)."""
    a = np.array(X, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(a).all():
        raise ParameterError(f"{name}: contains NaN or infinity")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    np.divide(a, norms, out=a, where=norms > 0)
    return a


def _as_ids(ids, n):
    try:
        a = np.asarray(ids)
    except (TypeError, ValueError):
        raise ParameterError("ids: not an array of integers") from None
    if a.ndim != 1 or a.shape[0] != n:
        raise ParameterError(f"ids has shape {a.shape}: expected ({n},) to match X")
    if n and a.dtype.kind not in "iu":
        raise ParameterError(f"ids has dtype {a.dtype}: must be integers")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if n and a.min() < 0:
        raise ParameterError(f"ids: {int(a.min())} is negative; ids must be >= 0")
    if len(np.unique(a)) != n:
        raise ParameterError("ids: contains duplicates")
    return a


def _sha256_fileobj(fh):
    h = hashlib.sha256()
    size = 0
    while True:
        b = fh.read(1 << 22)
        if not b:
            break
        h.update(b)
        size += len(b)
    return h.hexdigest(), size
