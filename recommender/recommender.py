"""The :class:`Recommender` facade: build, update and query a music index.

An index is a directory::

    catalog.sqlite        the source of truth (tracks, vectors, failures, metadata)
    catalog.sqlite.lock   held by the one process allowed to write
    <space>.faiss/.json   FAISS indexes derived from the catalog, one per space
                          ('embedding', 'tags', 'both'); rebuilt when missing or stale

Analysis loads the CNN (on ONNX Runtime); opening an index and querying it by
track id, path or vector does not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .analysis.pipeline import Sampling, TrackAnalysis
from .recommend import indexer
from .recommend.indexer import UpdateReport  # noqa: F401  (re-exported)
from .recommend import writeback as _writeback
from .recommend.exclusions import BanList
from ._utils import unit_rows
from .store import neighbours as _neighbours
from .store import spaces as _spaces
from .store.spaces import (  # noqa: F401  (re-exported: recommender.recommender.SPACES etc.)
    LAYER_PCA_ABOVE,
    LAYER_PCA_DIMS,
    LAYER_SPACE_MAX_TRACKS,
    SPACES,
    both,
)
from .errors import (
    CatalogError,
    IndexFileError,
    NotInIndexError,
    ParameterError,
    RecommenderError,
)

logger = logging.getLogger(__name__)

__all__ = ["Recommender", "UpdateReport", "DEFAULT_INDEX_DIR", "DEFAULT_SAMPLING", "SPACES"]

DEFAULT_INDEX_DIR = os.path.join("indexes", "default")
#: Patches analysed per track by default when indexing (see the README's
#: sampling table, ``benchmarks/bench_sampling.py``): 8 spread patches match
#: whole-track precision@10 by label on the dev set (-0.1 point, paired 95 %
#: CI [-1.8, +1.6]) at about half the CPU of 16; ``Sampling.full()`` analyses
#: whole tracks.
DEFAULT_SAMPLING = Sampling.spread(8)
# SPACES (what each space is, the 'similarity' layer space's measured gain) and the
# layer-space thresholds live in recommender.store.spaces; re-exported above.
CATALOG_NAME = "catalog.sqlite"
#: How often (seconds) analysed tracks are committed during an update
#: (:data:`recommender.recommend.indexer.COMMIT_EVERY_S`; read at each update).
COMMIT_EVERY_S = indexer.COMMIT_EVERY_S




class Recommender(BanList):
    """A music index on disk: add a collection, classify, find similar songs.

    Parameters
    ----------
    index_dir : path-like
        Directory of the index (created on the first :meth:`update`).
        Default: ``indexes/default``.
    model : TagModel, str or None
        Model used to analyse new audio.  ``None``: the model the index was
        built with, or the shipped default (``msd-musicnn``) for a new index.
    sampling : Sampling, int, str or None
        Which patches of each track to analyse when indexing
        (default :data:`DEFAULT_SAMPLING`; ``'full'`` for whole tracks).

    Examples
    --------
    >>> rec = Recommender("indexes/mine")                     # doctest: +SKIP
    >>> rec.update(["~/Music"], jobs=2)                       # doctest: +SKIP
    >>> rec.similar("~/Music/Abbey Road/01 Come Together.mp3", k=5)  # doctest: +SKIP
    """

    #: ``True``: never write into the index folder (a rebuilt FAISS index stays in memory; ``recommender serve``).
    read_only = False

    def __init__(self, index_dir=DEFAULT_INDEX_DIR, *, model=None, sampling=None):
        self.index_dir = os.path.abspath(os.path.expanduser(os.fspath(index_dir)))
        self._model = model
        self.sampling = Sampling.parse(sampling) if sampling is not None else DEFAULT_SAMPLING
        self._reader = None
        self._indexes: dict = {}
        self._similarity_norm = None  # (catalog generation, CollectionNormalizer)

    # ------------------------------------------------------------------ paths
    @property
    def catalog_path(self) -> str:
        return os.path.join(self.index_dir, CATALOG_NAME)

    def _space_path(self, space: str) -> str:
        return os.path.join(self.index_dir, f"{space}.faiss")

    def exists(self) -> bool:
        return os.path.isfile(self.catalog_path)

    # ------------------------------------------------------------------ model
    @property
    def model(self):
        """The analysis model (loaded on first use, on ONNX Runtime by default)."""
        if self._model is None or isinstance(self._model, (str, os.PathLike)):
            from .models import load_model

            name = self._model
            if name is None and self.exists():
                name = self.catalog.get_meta("model_name")
            self._model = load_model(name) if name else load_model()
        return self._model

    def _analysis_key(self, identity=None) -> str:
        name, sha = identity or (self.model.name, self.model.weights_sha256)
        # ':L1': the analysis stores the layer summary (tracks analysed before are re-analysed once)
        return f"{name}:{sha[:16]}:{self.sampling.name}:L1"

    def _model_identity(self, cat) -> tuple[str, str]:
        """(name, weights sha256) of the model an update uses.

        When the index already records its model and no other was asked for,
        this comes from the catalog, so a re-scan that finds nothing to analyse
        never loads TensorFlow.
        """
        name, sha = cat.get_meta("model_name"), cat.get_meta("weights_sha256")
        asked = self._model
        if name and sha and (asked is None or (isinstance(asked, str) and asked == name)):
            return name, sha
        m = self.model
        return m.name, m.weights_sha256

    def _check_model(self, cat):
        """Load the analysis model and check it against (or record it in) the catalog."""
        return indexer.record_model(cat, self.model)

    # ---------------------------------------------------------------- catalog
    @property
    def catalog(self):
        """Read-only :class:`~recommender.catalog.Catalog` of the index."""
        if self._reader is None:
            from .store.catalog import Catalog

            if not self.exists():
                raise CatalogError(self.catalog_path, "no index here yet: run `recommender index PATH --index DIR` first")
            self._reader = Catalog(self.catalog_path, mode="r")
        return self._reader

    def close(self):
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._indexes.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return len(self.catalog) if self.exists() else 0

    # ----------------------------------------------------------------- update
    def update(
        self,
        paths: Iterable,
        *,
        jobs: int | str = "auto",
        progress: bool = True,
        remove_missing: bool = True,
        retry_failed: bool = False,
        descriptors: bool = True,
        client=None,
        include_hidden: bool = False,
        fingerprints: bool = True,
        prune_empty: bool = False,
    ) -> UpdateReport:
        """Add files and folders to the index, analysing only what changed.

        New files are analysed; files whose size or mtime changed (or that were
        analysed with another model or sampling policy) are re-analysed; a file
        that moved is recognised by its content hash and keeps its id; tracks
        under the given folders that no longer exist are dropped
        (``remove_missing``).  Files that failed before and did not change are
        skipped unless ``retry_failed``.  Results are committed as they arrive,
        so an interrupted run keeps everything analysed and the next run
        resumes.

        Parameters
        ----------
        paths : iterable of path-like
            Files and/or folders (searched recursively by audio extension).
        jobs : "auto" or int
            Analysis processes, an upper bound (the rule of
            :func:`recommender.analysis.parallel.resolve_jobs`; 1 process on 2 cores).
        progress : bool
            Show a tqdm progress bar (tracks/s, ETA).
        descriptors : bool
            Also compute MIR descriptors (tempo, key, loudness…) per track.
        client : dask.distributed.Client, optional
            Spread analysis over a Dask cluster instead of local processes.
        include_hidden : bool
            Also walk hidden files and folders (OS metadata is always skipped).
        fingerprints : bool
            Store a Chromaprint fingerprint per track (``fpcalc``, first 30 s).
        prune_empty : bool
            Remove the tracks of a scanned folder found empty (by default they
            are kept and reported: an unmounted disk is not a deleted album).

        Returns
        -------
        UpdateReport
        """
        report = indexer.update(
            self.catalog_path,
            paths,
            analysis_key=lambda cat: self._analysis_key(self._model_identity(cat)),
            check_model=self._check_model,
            sampling=self.sampling,
            rebuild=lambda cat: self.rebuild_indexes(only_stale=True, catalog=cat),
            jobs=jobs,
            progress=progress,
            remove_missing=remove_missing,
            retry_failed=retry_failed,
            descriptors=descriptors,
            client=client,
            commit_every_s=COMMIT_EVERY_S,
            before_open=self.close,
            include_hidden=include_hidden,
            fingerprints=fingerprints,
            prune_empty=prune_empty,
        )
        logger.info("index %s: %s", self.index_dir, report)
        return report

    add = update

    # ------------------------------------------------------- spaces, indexes
    def similarity_normalizer(self):
        """Collection statistics of the ``'similarity'`` space (derived from the
        catalog, recomputed once per catalog generation; nothing to store).

        Returns
        -------
        recommender.features.pooling.CollectionNormalizer
            Fitted on the raw ``'similarity'`` input (:func:`recommender.store.spaces.similarity_fit`).
        """
        cat = self.catalog
        gen = cat.vectors_generation
        if self._similarity_norm is None or self._similarity_norm[0] != gen:
            _, X, layers = _spaces.similarity_input(cat)
            self._similarity_norm = (gen, _spaces.similarity_fit(X, layers))
        return self._similarity_norm[1]

    def space_vectors(self, space: str, *, catalog=None):
        """Every track's vector in ``space``, as its FAISS index holds it before L2 normalisation.

        Parameters
        ----------
        space : str
            One of :data:`SPACES`.
        catalog : Catalog, optional
            Catalog to read (default: the index's read-only :attr:`catalog`).

        Returns
        -------
        ids : np.ndarray, int64, (n,)
        X : np.ndarray, float32, (n, d)

        Raises
        ------
        ParameterError
            Unknown ``space``.
        CatalogError
            No index here yet, or inconsistent vectors.
        """
        cat = self.catalog if catalog is None else catalog
        ids, X, norm = _spaces.space_vectors(cat, space, with_normalizer=True)
        if norm is not None:
            self._similarity_norm = (cat.vectors_generation, norm)
        return ids, X

    def space_dim(self, space: str, *, catalog=None) -> int | None:
        """Dimension of ``space``'s vectors (``None`` while the catalog does not record it).

        Raises
        ------
        ParameterError
            Unknown ``space``.
        """
        return _spaces.space_dim(self.catalog if catalog is None else catalog, space)

    def _build(self, cat, space):
        """``(generation, VectorIndex)`` of ``space`` built from ``cat``; ``None`` without vectors."""
        from .store.faiss_index import VectorIndex

        with cat.snapshot():
            gen = cat.vectors_generation
            ids, X = self.space_vectors(space, catalog=cat)
        return (gen, VectorIndex.build(ids, unit_rows(X))) if len(ids) else None

    def rebuild_indexes(self, spaces=None, *, only_stale: bool = False, catalog=None) -> None:
        """(Re)build the FAISS files ``<space>.faiss`` from the catalog (a space without tracks loses its file).

        Parameters
        ----------
        spaces : iterable of str, optional
            Default: all of :data:`SPACES` (``ParameterError`` for an unknown one).
        only_stale : bool
            Skip spaces whose file already matches the catalog's vectors generation.
        catalog : Catalog, optional
            Catalog to read (default: the read-only :attr:`catalog`; ``update`` passes its writer).
        """
        cat = self.catalog if catalog is None else catalog
        for space in (SPACES if spaces is None else [_spaces.check_space(s) for s in spaces]):
            path = self._space_path(space)
            if only_stale and _spaces.index_is_current(path, cat.vectors_generation, space=space):
                continue
            built = self._build(cat, space)
            if built is None:
                _spaces.remove_index(path)
                continue
            _neighbours.save_index(built[1], path, space=space, generation=built[0])  # + its neighbour lists
            self._indexes[space] = built

    def faiss_index(self, space: str):
        """The FAISS index of ``space`` (unit vectors, inner product = cosine), loaded, or rebuilt
        from the catalog when missing or stale; cached per catalog vectors generation.  A rebuilt
        index that cannot be saved (read-only index directory) is used in memory.

        Returns
        -------
        recommender.store.faiss_index.VectorIndex

        Raises
        ------
        ParameterError
            Unknown ``space``.
        NotInIndexError
            The index holds no tracks.
        CatalogError
            No index here yet.
        """
        from .store.faiss_index import VectorIndex, save_rebuilt

        _spaces.check_space(space)
        cat, path = self.catalog, self._space_path(space)
        gen = cat.vectors_generation
        cached = self._indexes.get(space)
        if cached is not None and cached[0] == gen:
            return cached[1]
        try:
            self._indexes[space] = (gen, VectorIndex.load(path, expected_dim=self.space_dim(space),
                                                          expected_generation=gen))
            return self._indexes[space][1]
        except FileNotFoundError:
            logger.info("no %s index yet in %s: building it from the catalog", space, self.index_dir)
        except IndexFileError as e:
            logger.warning("%s; rebuilding it from the catalog", e)
        built = self._build(cat, space)
        if built is None:
            raise NotInIndexError(f"the index {self.index_dir} holds no tracks")
        save_rebuilt(built[1], path, meta={"space": space, "generation": built[0]}, read_only=self.read_only)
        self._indexes[space] = built
        return built[1]

    # ---------------------------------------------------------------- queries
    def track(self, track_id) -> dict:
        """Catalog row of one track (``NotInIndexError`` if absent)."""
        return self.catalog.track(int(track_id))

    def tracks(self) -> pd.DataFrame:
        """All tracks with their metadata (index = track id)."""
        return self.catalog.tracks()

    def failures(self) -> pd.DataFrame:
        """Files that could not be indexed, with the reason."""
        return self.catalog.failures()

    def resolve(self, query) -> int | None:
        """Track id of ``query`` (an id, or the path of an indexed file: str, bytes or path-like); ``None`` if not."""
        if isinstance(query, (int, np.integer)):
            self.track(int(query))
            return int(query)
        if isinstance(query, (str, bytes, os.PathLike)):
            s = os.fsdecode(query)
            p = os.path.abspath(os.path.expanduser(s))
            row = self.catalog.track_by_path(p)
            if row is not None:
                return int(row["id"])
            if not os.path.exists(p) and s.strip().isdigit():
                self.track(int(s))
                return int(s)
        return None

    def vector(self, query, *, space="embedding") -> np.ndarray:
        """Vector of a track in ``space`` (query: id or indexed path)."""
        tid = self.resolve(query)
        if tid is None:
            raise NotInIndexError(f"{query!r} is not in the index {self.index_dir}")
        if space == "both":
            (_, E), (_, T) = self.catalog.vectors("embedding", ids=[tid]), self.catalog.vectors("tags", ids=[tid])
            return both(E, T)[0]
        if space == "similarity":
            # derived with collection statistics: the index holds it, exactly
            return self.faiss_index(space).reconstruct(tid)
        _, X = self.catalog.vectors(space, ids=[tid])
        return X[0]

    def analyse(self, path, *, descriptors=False) -> TrackAnalysis:
        """Analyse a file outside the index with the index's model and policy."""
        from .analysis.pipeline import analyze_files

        for res in analyze_files([path], model=self.model, sampling=self.sampling, on_error="raise",
                                 descriptors=descriptors):
            return res
        raise RecommenderError(f"{path}: no analysis result")  # pragma: no cover

    def classify(self, query, *, sampling=None):
        """Tags of a track in the index (stored) or of any audio file.

        Returns
        -------
        Classification
        """
        from .analysis.tagging import Classification, classification_from_analysis

        tid = self.resolve(query) if not isinstance(query, np.ndarray) else None
        if tid is not None:
            cat = self.catalog
            tags = cat.get_meta("tags")
            row = cat.track(tid)
            pv = cat.patch_vectors(tid)
            _, E = cat.vectors("embedding", ids=[tid])
            _, T = cat.vectors("tags", ids=[tid])
            s = pd.Series(T[0][:len(tags)], index=tags, name="probability").sort_values(ascending=False, kind="stable")
            tl = pd.DataFrame(pv["probs"][:, :len(tags)], columns=tags, index=pd.Index(np.round(pv["starts_s"], 3), name="start_s"))
            return Classification(row["path"], s, E[0], tl, float(row["duration_s"] or 0.0), cat.get_meta("model_name"))
        if isinstance(query, np.ndarray):
            raise ParameterError("classify(query): give a track id or a path; use recommender.classify() for waveforms")
        if isinstance(query, (str, os.PathLike)) and not os.path.exists(os.fspath(query)):
            raise NotInIndexError(f"{query!r} is neither an indexed track nor an existing file")
        from .analysis.pipeline import analyze_file

        res = analyze_file(query, model=self.model, sampling=sampling)
        return classification_from_analysis(res, self.model)

    def _query_vectors(self, query, space):
        """The :class:`~recommender.recommend.query.Query` of ``query`` in ``space``."""
        from .recommend.query import resolve_query

        return resolve_query(self, query, space)

    def similar(
        self,
        query,
        k: int = 10,
        *,
        space: str | None = None,
        hubness: str | None = None,
        exclude_same_artist: bool = False,
        exclude_same_album: bool = False,
        max_per_artist: int | None = None,
        tag: str | None = None,
        tempo_range: tuple[float, float] | None = None,
        key: str | None = None,
        min_loudness_db: float | None = None,
        explain: bool = False,
        exclusions=None, where: str | None = None,
    ) -> pd.DataFrame:
        """Songs like ``query``.

        Parameters
        ----------
        query : int, path-like or np.ndarray
            A track id, the path of an indexed file, any audio file (analysed
            on the fly), or a vector of the chosen space.
        k : int
            Number of results.
        space : {None, 'similarity', 'embedding', 'tags', 'both'}
            ``None`` (default): ``'similarity'``, or ``'embedding'`` when the
            query is a vector (so a 200-d embedding still works as a query).
            ``'similarity'``: mean and spread over the analysed patches of
            the CNN's ``pool`` and ``penultimate`` layers, standardised over
            the collection (see :data:`SPACES`);
            ``'embedding'``: the raw mean CNN embedding; ``'tags'``: tag
            probabilities; ``'both'``: mean of the embedding and tag cosines.
        hubness : {None, 'mp', 'csls'}
            Re-rank the neighbours with a hubness correction (Mutual Proximity
            or CSLS, see :mod:`recommender.playlists`) so that "hub" tracks do
            not turn up in everyone's list.  The ``score`` column stays the
            cosine; only the order changes.  Off by default for single queries
            because the collection statistics are computed on first use
            (playlists use ``'mp'`` by default).
        exclude_same_artist, exclude_same_album : bool
            Drop results by the query's artist / from the query's album.
        max_per_artist : int, optional
            At most this many results per artist.
        tag : str, optional
            Keep only tracks that have this tag among their 5 strongest.
        tempo_range : (float, float), optional
            Keep only tracks whose tempo (BPM) lies in this range.
        key : str, optional
            Keep only tracks in this key (e.g. ``'A'`` or ``'A minor'``).
        min_loudness_db : float, optional
            Keep only tracks at least this loud.
        explain : bool
            Add a ``why`` column: one sentence per result naming the tags and
            descriptors that make it close to (or different from) the query.
        exclusions : Exclusions or mapping, optional
            Paths, tags, durations no result may match (:mod:`~recommender.recommend.exclusions`).
        where : str, optional
            ``"energy>0.6 and tempo_bpm<130"`` on stored descriptors (:func:`~recommender.recommend.query.similar`).

        Returns
        -------
        pd.DataFrame
            Columns ``rank, id, path, artist, title, album, score, shared_tags``
            (plus ``tempo_bpm, key, mode`` when descriptors were stored).  The
            query itself and other copies of its recording (same content hash,
            or the same acoustic fingerprint: another encoding, bitrate or a
            trimmed copy; see :mod:`recommender.recommend.recordings`) never
            appear.
        """
        from .recommend import query as _query

        return _query.similar(
            self, query, k, space=space, hubness=hubness, exclude_same_artist=exclude_same_artist,
            exclude_same_album=exclude_same_album, max_per_artist=max_per_artist, tag=tag, where=where,
            tempo_range=tempo_range, key=key, min_loudness_db=min_loudness_db, explain=explain, exclusions=exclusions)

    def write_tags(self, paths=(), **kwargs):
        """BPM/key/mood/genre into the files' own tags (dry run unless ``write=True``): see ``recommend.writeback``."""
        return _writeback.write_tags(self, paths, **kwargs)

    def info(self) -> dict:
        """Counts, model, dims, failures, sizes — as a dict for people and scripts."""
        cat = self.catalog
        spaces = {}
        for space in SPACES:
            p = self._space_path(space)
            spaces[space] = {"file": os.path.basename(p), "present": os.path.exists(p)}
        tr = cat.tracks(columns=["duration_s"]) if len(cat) else pd.DataFrame({"duration_s": []})
        return {
            "index_dir": self.index_dir,
            "tracks": len(cat),
            "failures": int(len(cat.failures())),
            "total_duration_h": round(float(tr["duration_s"].fillna(0).sum()) / 3600.0, 3),
            "model": cat.get_meta("model_name"),
            "weights_sha256": cat.get_meta("weights_sha256"),
            "dims": cat.get_meta("dims"), **cat.model_outputs(),
            "schema_version": cat.get_meta("schema_version"),
            "generation": cat.generation,
            "spaces": spaces,
        }
