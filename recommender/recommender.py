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

import dataclasses
import logging
import os
import time
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .io import collection
from .analysis.pipeline import AnalysisFailure, Sampling, TrackAnalysis
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
#: ``'similarity'`` (the default of :meth:`Recommender.similar` and the
#: playlists) is the *layer space*,
#: :func:`recommender.representations.layer_similarity_vectors`: per track,
#: mean and standard deviation over its patches of musicnn's ``pool`` (1506)
#: and ``penultimate`` (200) layers, each dimension standardised over the
#: collection, cosine.  On the dev set (103 tracks, 5 labels, 8 patches a
#: track) precision@10 by label is 8.5 points above the raw mean embedding
#: (paired 95 % CI +4.7 to +12.6), and 7.0 (+3.3 to +10.8) on a second set of
#: 92 soundtracks (``benchmarks/bench_neighbours.py --layers``); the pool
#: layer comes from the same forward pass (cost ratio 1.003).  Catalogs
#: written before it was stored use mean and standard deviation of the
#: patch embeddings until their tracks are re-analysed by ``update``.
SPACES = ("embedding", "tags", "both", "similarity")
#: Above this many tracks the ``'similarity'`` space falls back to the 400-d
#: mean and spread of the embeddings: the layer space keeps 3412 floats a
#: track (13.6 KB; 2.7 GB at this size) and is read whole to build FAISS.
LAYER_SPACE_MAX_TRACKS = 200_000
#: Above this many tracks the standardised layer space is projected on its
#: ``LAYER_PCA_DIMS`` principal axes before FAISS (the dev set kept +8.3 of
#: its +8.5 points at 32 axes): a 100k-track FAISS file of 100 MB instead
#: of 1.4 GB keeps cold queries fast.
LAYER_PCA_ABOVE = 20_000
LAYER_PCA_DIMS = 256
CATALOG_NAME = "catalog.sqlite"
#: How often (seconds) analysed tracks are committed during an update.
COMMIT_EVERY_S = 2.0


@dataclasses.dataclass
class UpdateReport:
    """Summary of :meth:`Recommender.update`."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped_failed: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    failures: list = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["failures"] = [{"path": p, "reason": r} for p, r in self.failures]
        return d

    def __str__(self):
        rtf = self.audio_seconds / self.seconds if self.seconds > 0 else 0.0
        return (
            f"added {self.added}, updated {self.updated}, moved {self.moved}, removed {self.removed}, "
            f"unchanged {self.unchanged}, failed {self.failed}"
            + (f" (+{self.skipped_failed} known failures skipped)" if self.skipped_failed else "")
            + f" in {self.seconds:.1f} s"
            + (f" ({rtf:.0f}x real time)" if self.audio_seconds > 0 else "")
        )


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.maximum(n, 1e-12)


def _both(emb: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """Joint space: cosine in it is the mean of the two cosines."""
    return np.concatenate([_unit(emb), _unit(tags)], axis=-1) / np.sqrt(2.0, dtype=np.float32)


class Recommender:
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
        from .features import frontend as features

        model = self.model
        cat.check_compatible(
            model_name=model.name,
            weights_sha256=model.weights_sha256,
            dims={"embedding": model.embedding_dim, "tags": model.n_tags},
        )
        if cat.get_meta("frontend") is None:
            cat.set_meta(frontend=features.FRONTEND_PARAMS, tags=list(model.tags))
        return model

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
        jobs: int = 1,
        progress: bool = True,
        remove_missing: bool = True,
        retry_failed: bool = False,
        descriptors: bool = True,
        client=None,
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
        jobs : int
            Worker processes for analysis (joblib); 1 analyses in this process.
        progress : bool
            Show a tqdm progress bar (tracks/s, ETA).
        descriptors : bool
            Also compute MIR descriptors (tempo, key, loudness…) per track.
        client : dask.distributed.Client, optional
            Spread analysis over a Dask cluster instead of local processes.

        Returns
        -------
        UpdateReport
        """
        from .store.catalog import Catalog

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = [os.path.abspath(os.path.expanduser(os.fspath(p))) for p in paths]
        if not isinstance(jobs, int) or jobs < 1:
            raise ParameterError(f"jobs={jobs!r}: must be a positive integer")
        t0 = time.perf_counter()
        report = UpdateReport()
        os.makedirs(self.index_dir, exist_ok=True)
        self.close()
        with Catalog(self.catalog_path, mode="c") as cat:
            if not cat.get_meta("model_name"):
                self._check_model(cat)  # a new index records its model up front
            key = self._analysis_key(self._model_identity(cat))

            # 1. discover files
            walk_errors: list = []
            found: dict[str, collection.FileEntry] = {}
            for p in collection.iter_audio_files(paths, errors=walk_errors):
                try:
                    found[p] = collection.stat_entry(p)
                except OSError as e:
                    walk_errors.append((p, f"cannot stat ({e.strerror or e})"))
            for p, reason in walk_errors:
                cat.record_failure(p, reason)
                report.failures.append((p, reason))
                report.failed += 1

            # 2. plan
            states = cat.file_states()
            failures = cat.failures()
            known_failed = {}
            if len(failures):
                for r in failures.itertuples(index=False):
                    known_failed[r.path] = (r.size, r.mtime_ns)
            todo: list[collection.FileEntry] = []
            changed_paths = set()
            for p, fe in found.items():
                st = states.get(p)
                if st is not None:
                    tid, size, mtime_ns, chash, akey = st
                    if size == fe.size and mtime_ns == fe.mtime_ns and akey == key:
                        report.unchanged += 1
                        continue
                    changed_paths.add(p)
                    todo.append(fe)
                    continue
                kf = known_failed.get(p)
                if kf is not None and not retry_failed and kf == (fe.size, fe.mtime_ns):
                    report.skipped_failed += 1
                    continue
                todo.append(fe)
            roots = [p.rstrip(os.sep) + os.sep for p in paths if os.path.isdir(p)]
            missing = {}
            if remove_missing:
                for p, st in states.items():
                    if p not in found and (p in paths or any(p.startswith(r) for r in roots)):
                        missing[p] = st
            # 3. moves: a new file whose content hash is a missing track's
            hashes: dict[str, str] = {}  # computed once, reused when the track is stored
            if missing:
                by_hash = {st[3]: (p, st) for p, st in missing.items() if st[3]}
                still = []
                for fe in todo:
                    if fe.path in changed_paths:
                        still.append(fe)
                        continue
                    try:
                        h = hashes[fe.path] = collection.content_hash(fe.path, size=fe.size)
                    except OSError:
                        still.append(fe)
                        continue
                    hit = by_hash.get(h)
                    if hit is not None and hit[1][4] == key:
                        old_path, st = hit
                        cat.move_track(st[0], new_path=fe.path, size=fe.size, mtime_ns=fe.mtime_ns)
                        del missing[old_path]
                        del by_hash[h]
                        report.moved += 1
                    else:
                        still.append(fe)
                todo = still
            # 4. removed
            if missing:
                report.removed = cat.remove_tracks([st[0] for st in missing.values()])

            # 5. analyse and commit as results arrive
            if todo:
                self._check_model(cat)
                self._analyse_into(cat, todo, changed_paths, key, report, hashes, jobs=jobs, progress=progress,
                                   descriptors=descriptors, client=client)
            # 6. derived FAISS indexes (only where stale: an unchanged re-scan rebuilds nothing)
            self._rebuild_indexes(cat, only_stale=True)
        report.seconds = time.perf_counter() - t0
        logger.info("index %s: %s", self.index_dir, report)
        return report

    add = update

    def _analyse_into(self, cat, todo, changed_paths, key, report, hashes, *, jobs, progress, descriptors, client):
        from .analysis.parallel import analyse_parallel

        entries = {fe.path: fe for fe in todo}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="track", desc="indexing", dynamic_ncols=True)
        last_commit = time.monotonic()
        batch = cat.write_batch()
        batch.__enter__()
        try:
            for res in analyse_parallel(
                [fe.path for fe in todo],
                model=self.model,
                sampling=self.sampling,
                jobs=jobs,
                descriptors=descriptors,
                client=client,
            ):
                fe = entries[res.path]
                if isinstance(res, AnalysisFailure):
                    cat.record_failure(res.path, res.reason, size=fe.size, mtime_ns=fe.mtime_ns)
                    report.failed += 1
                    report.failures.append((res.path, res.reason))
                else:
                    self._store(cat, res, fe, key, chash=hashes.get(fe.path))
                    report.audio_seconds += res.duration_s
                    if fe.path in changed_paths:
                        report.updated += 1
                    else:
                        report.added += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(failed=report.failed, refresh=False)
                if time.monotonic() - last_commit > COMMIT_EVERY_S:
                    batch.__exit__(None, None, None)
                    batch = cat.write_batch()
                    batch.__enter__()
                    last_commit = time.monotonic()
        except BaseException as e:
            batch.__exit__(type(e), e, e.__traceback__)
            raise
        else:
            batch.__exit__(None, None, None)
        finally:
            if bar is not None:
                bar.close()

    def _store(self, cat, res: TrackAnalysis, fe, key, *, chash=None):
        if chash is None:
            try:
                chash = collection.content_hash(fe.path, size=fe.size)
            except OSError:
                chash = None
        record = dict(collection.read_tags(fe.path))
        record.update(
            path=fe.path,
            size=fe.size,
            mtime_ns=fe.mtime_ns,
            content_hash=chash,
            duration_s=float(res.duration_s),
            analysis_key=key,
            sampling=res.sampling_json(),
            n_patches=res.n_patches,
        )
        vectors = {
            "embedding": res.embedding,
            "tags": res.probs,
            # spread of the patches around the mean: half of the 'similarity' space
            "embedding_std": res.patch_embeddings.std(axis=0).astype(np.float32),
        }
        if res.layer_summary is not None:
            vectors["layer_summary"] = res.layer_summary
        patches = {"starts_s": res.starts_s, "embeddings": res.patch_embeddings, "probs": res.patch_probs}
        cat.add_track(record, vectors=vectors, patches=patches, descriptors=res.descriptors)

    # ---------------------------------------------------------------- indexes
    def _similarity_parts(self, cat):
        """(ids, mean embedding, patch std) of every track; the std is read from
        the ``embedding_std`` vectors, or computed from the stored patches for
        tracks indexed before it was stored (zeros for a track without patches)."""
        ids, E = cat.vectors("embedding")
        sids, S = cat.vectors("embedding_std") if "embedding_std" in cat.spaces() else (np.zeros(0, np.int64), None)
        pos = {int(t): i for i, t in enumerate(sids)}
        Sd = np.zeros_like(E)
        for j, t in enumerate(ids):
            i = pos.get(int(t))
            if i is not None:
                Sd[j] = S[i]
                continue
            try:
                Sd[j] = cat.patch_vectors(int(t))["embeddings"].std(axis=0)
            except NotInIndexError:
                pass
        return ids, E, Sd

    @staticmethod
    def _uses_layers(cat) -> bool:
        """Whether the ``'similarity'`` space is the layer space (every track has its layer summary)."""
        n = cat.count_vectors("layer_summary")
        return 0 < n <= LAYER_SPACE_MAX_TRACKS and n == cat.count_vectors("embedding")

    def _similarity_input(self, cat):
        """(ids, raw matrix, whether it is the layer space) the ``'similarity'`` space standardises."""
        if self._uses_layers(cat):
            return (*cat.vectors("layer_summary"), True)
        ids, E, Sd = self._similarity_parts(cat)
        return ids, np.concatenate([E, Sd], axis=1), False

    @staticmethod
    def _similarity_fit(X, layers):
        """The fitted normaliser of the ``'similarity'`` space for the raw matrix ``X``."""
        from .features.pooling import CollectionNormalizer

        if layers and len(X) > LAYER_PCA_ABOVE:
            return CollectionNormalizer("pca", n_components=min(LAYER_PCA_DIMS, X.shape[1])).fit(X)
        return CollectionNormalizer("standardize").fit(X)

    def similarity_normalizer(self):
        """Collection statistics of the ``'similarity'`` space (derived from the
        catalog, recomputed once per catalog generation; nothing to store)."""
        cat = self.catalog
        gen = cat.vectors_generation
        if self._similarity_norm is None or self._similarity_norm[0] != gen:
            _, X, layers = self._similarity_input(cat)
            self._similarity_norm = (gen, self._similarity_fit(X, layers))
        return self._similarity_norm[1]

    def _space_vectors(self, cat, space):
        if space == "similarity":
            from .features.pooling import l2_normalize

            ids, X, layers = self._similarity_input(cat)
            if len(ids) < 2:
                return ids, l2_normalize(X)
            norm = self._similarity_fit(X, layers)
            self._similarity_norm = (cat.vectors_generation, norm)
            return ids, l2_normalize(norm.transform(X))
        if space == "both":
            ids, E = cat.vectors("embedding")
            ids2, T = cat.vectors("tags", ids=ids)
            if not np.array_equal(ids, ids2):
                raise CatalogError(self.catalog_path, "embedding and tag vectors do not cover the same tracks")
            return ids, _both(E, T)
        return cat.vectors(space)

    def _index_is_current(self, space, gen) -> bool:
        from .store.faiss_index import VectorIndex

        try:
            side = VectorIndex.read_sidecar(self._space_path(space))
        except (OSError, RecommenderError):
            return False
        return os.path.exists(self._space_path(space)) and side.get("generation") == gen

    def _rebuild_indexes(self, cat, spaces=SPACES, *, only_stale=False):
        from .store.faiss_index import VectorIndex

        for space in spaces:
            if only_stale and self._index_is_current(space, cat.vectors_generation):
                continue
            with cat.snapshot():
                gen = cat.vectors_generation
                ids, X = self._space_vectors(cat, space)
            if len(ids) == 0:
                for suffix in ("", ".json"):
                    try:
                        os.remove(self._space_path(space) + suffix)
                    except FileNotFoundError:
                        pass
                continue
            idx = VectorIndex.build(ids, _unit(X))
            idx.save(self._space_path(space), meta={"space": space, "generation": gen})
            self._indexes[space] = (gen, idx)

    def _space_dim(self, cat, space) -> int | None:
        dims = cat.get_meta("dims") or {}
        if space == "both":
            return (dims["embedding"] + dims["tags"]) if "embedding" in dims and "tags" in dims else None
        if space == "similarity":
            if self._uses_layers(cat):
                d = dims.get("layer_summary")
                if d and cat.count_vectors("layer_summary") > LAYER_PCA_ABOVE:
                    return min(LAYER_PCA_DIMS, d)
                return d
            return 2 * dims["embedding"] if "embedding" in dims else None
        return dims.get(space)

    def _index(self, space):
        """The FAISS index of ``space``, loaded or rebuilt from the catalog if stale."""
        from .store.faiss_index import VectorIndex

        if space not in SPACES:
            raise ParameterError(f"space={space!r}: must be one of {', '.join(SPACES)}")
        cat = self.catalog
        gen = cat.vectors_generation
        cached = self._indexes.get(space)
        if cached is not None and cached[0] == gen:
            return cached[1]
        idx = None
        try:
            idx = VectorIndex.load(self._space_path(space), expected_dim=self._space_dim(cat, space),
                                   expected_generation=gen)
        except FileNotFoundError:
            logger.info("no %s index yet in %s: building it from the catalog", space, self.index_dir)
        except IndexFileError as e:
            logger.warning("%s; rebuilding it from the catalog", e)
        if idx is None:
            with cat.snapshot():
                gen = cat.vectors_generation
                ids, X = self._space_vectors(cat, space)
            if len(ids) == 0:
                raise NotInIndexError(f"the index {self.index_dir} holds no tracks")
            idx = VectorIndex.build(ids, _unit(X))
            try:
                idx.save(self._space_path(space), meta={"space": space, "generation": gen})
            except (OSError, RecommenderError) as e:  # read-only index dir: keep it in memory
                logger.info("could not save rebuilt %s index (%s); using it in memory", space, e)
        self._indexes[space] = (gen, idx)
        return idx

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
        """Track id of ``query`` (an id, or the path of an indexed file); ``None`` if not indexed."""
        if isinstance(query, (int, np.integer)):
            self.track(int(query))
            return int(query)
        if isinstance(query, (str, os.PathLike)):
            s = os.fspath(query)
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
            return _both(E, T)[0]
        if space == "similarity":
            # derived with collection statistics: the index holds it, exactly
            return self._index(space).reconstruct(tid)
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
            s = pd.Series(T[0], index=tags, name="probability").sort_values(ascending=False, kind="stable")
            tl = pd.DataFrame(pv["probs"], columns=tags, index=pd.Index(np.round(pv["starts_s"], 3), name="start_s"))
            return Classification(row["path"], s, E[0], tl, float(row["duration_s"] or 0.0), cat.get_meta("model_name"))
        if isinstance(query, np.ndarray):
            raise ParameterError("classify(query): give a track id or a path; use recommender.classify() for waveforms")
        if isinstance(query, (str, os.PathLike)) and not os.path.exists(os.fspath(query)):
            raise NotInIndexError(f"{query!r} is neither an indexed track nor an existing file")
        from .analysis.pipeline import analyze_file

        res = analyze_file(query, model=self.model, sampling=sampling)
        return classification_from_analysis(res, self.model)

    def _query_vectors(self, query, space):
        """(query vector in ``space``, query track id or None, tag vector or None, content hash, metadata)."""
        if isinstance(query, np.ndarray) or (isinstance(query, (list, tuple)) and query and
                                             isinstance(query[0], (float, np.floating))):
            v = np.asarray(query, dtype=np.float32).ravel()
            return v, None, None, None, {}
        tid = self.resolve(query)
        cat = self.catalog
        if tid is not None:
            row = cat.track(tid)
            _, T = cat.vectors("tags", ids=[tid])
            return self.vector(tid, space=space), tid, T[0], row.get("content_hash"), row
        p = os.path.abspath(os.path.expanduser(os.fspath(query)))
        if not os.path.exists(p):
            raise NotInIndexError(f"{query!r} is neither an indexed track (id or path) nor an existing file")
        res = self.analyse(p)
        vecs = {"embedding": res.embedding, "tags": res.probs, "both": _both(res.embedding, res.probs)}
        if space == "similarity":
            from .features.pooling import l2_normalize, similarity_vectors

            norm = self.similarity_normalizer()
            if res.layer_summary is not None and norm.n_features_in_ == len(res.layer_summary):
                vecs[space] = l2_normalize(norm.transform(res.layer_summary[None]))[0]
            else:
                vecs[space] = similarity_vectors([res.patch_embeddings], normalizer=norm)[0][0]
        try:
            chash = collection.content_hash(p)
        except OSError:
            chash = None
        meta = collection.read_tags(p)
        return vecs[space], None, res.probs, chash, meta

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

        Returns
        -------
        pd.DataFrame
            Columns ``rank, id, path, artist, title, album, score, shared_tags``
            (plus ``tempo_bpm, key, mode`` when descriptors were stored).  The
            query itself and exact duplicates of it (same content hash) never
            appear.
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError(f"k={k!r}: must be a positive integer")
        if max_per_artist is not None and max_per_artist < 1:
            raise ParameterError(f"max_per_artist={max_per_artist!r}: must be >= 1")
        if space is None:
            space = "embedding" if isinstance(query, (np.ndarray, list, tuple)) else "similarity"
        if space not in SPACES:
            raise ParameterError(f"space={space!r}: must be one of {', '.join(SPACES)}")
        if hubness not in (None, "none", "mp", "csls"):
            raise ParameterError(f"hubness={hubness!r}: must be None, 'mp' or 'csls'")
        hubness = None if hubness == "none" else hubness
        qv, qid, qtags, qhash, qmeta = self._query_vectors(query, space)
        idx = self._index(space)
        if qv.shape[0] != idx.dim:
            raise ParameterError(f"query vector has dim {qv.shape[0]}; the {space!r} space has dim {idx.dim}")
        cat = self.catalog
        tag_names = cat.get_meta("tags") or []
        tag_col = None
        if tag is not None:
            lower = [t.lower() for t in tag_names]
            if tag.lower() not in lower:
                raise ParameterError(f"tag={tag!r}: not a tag of this index's model (e.g. {', '.join(tag_names[:8])}…)")
            tag_col = lower.index(tag.lower())
        key_filter = None
        if key is not None:
            parts = key.split()
            key_filter = (parts[0].upper() if len(parts[0]) == 1 else parts[0][0].upper() + parts[0][1:],
                          parts[1].lower() if len(parts) > 1 else None)
        q_artist = (qmeta.get("artist") or "").casefold() if qmeta else ""
        q_album = (qmeta.get("album") or "").casefold() if qmeta else ""
        n = len(idx)
        fetch = min(n, max(4 * k + 10, 50))
        while True:
            scores, ids = idx.search(_unit(qv[None]), fetch)
            if hubness is not None:
                from .recommend import playlists

                rids, _, rcos = playlists.rerank(self, scores, ids, method=hubness, space=space,
                                                 query_id=qid, query_vector=qv)
                scores, ids = rcos[None], rids[None]
            rows = []
            per_artist: dict = {}
            cand = [int(i) for i in ids[0] if i >= 0]
            score_of = {int(i): float(s) for s, i in zip(scores[0], ids[0]) if i >= 0}
            meta = {i: cat.track(i) for i in cand}
            tids, TT = cat.vectors("tags", ids=cand) if cand else (np.zeros(0, np.int64), None)
            tvec = {int(i): TT[j] for j, i in enumerate(tids)} if TT is not None else {}
            desc = None
            if tempo_range is not None or key_filter is not None or min_loudness_db is not None:
                desc = cat.descriptors(ids=cand)
            for i in cand:
                if i == qid:
                    continue
                r = meta[i]
                if qhash and r.get("content_hash") == qhash:
                    continue
                artist = (r.get("artist") or "").casefold()
                album = (r.get("album") or "").casefold()
                if exclude_same_artist and q_artist and artist == q_artist:
                    continue
                if exclude_same_album and q_album and album == q_album:
                    continue
                if max_per_artist is not None and artist:
                    if per_artist.get(artist, 0) >= max_per_artist:
                        continue
                if tag_col is not None:
                    tv = tvec.get(i)
                    if tv is None or tag_col not in np.argsort(tv)[::-1][:5]:
                        continue
                if desc is not None:
                    if i not in desc.index:
                        continue
                    d = desc.loc[i]
                    if tempo_range is not None and not (tempo_range[0] <= (d.get("tempo_bpm") or -1) <= tempo_range[1]):
                        continue
                    if key_filter is not None:
                        if d.get("key") != key_filter[0] or (key_filter[1] and d.get("mode") != key_filter[1]):
                            continue
                    if min_loudness_db is not None and not ((d.get("loudness_db") or -1e9) >= min_loudness_db):
                        continue
                if artist:
                    per_artist[artist] = per_artist.get(artist, 0) + 1
                shared = ""
                if qtags is not None and i in tvec and tag_names:
                    common = np.minimum(qtags, tvec[i])
                    shared = ", ".join(tag_names[j] for j in np.argsort(common)[::-1][:3])
                rows.append(
                    {
                        "id": i,
                        "path": r.get("path"),
                        "artist": r.get("artist"),
                        "title": r.get("title"),
                        "album": r.get("album"),
                        "score": score_of[i],
                        "shared_tags": shared,
                    }
                )
                if len(rows) == k:
                    break
            if len(rows) >= k or fetch >= n:
                break
            fetch = min(n, fetch * 4)
        df = pd.DataFrame(rows, columns=["id", "path", "artist", "title", "album", "score", "shared_tags"])
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        if len(df):
            d = cat.descriptors(ids=df["id"].tolist())
            if len(d):
                for col in ("tempo_bpm", "key", "mode"):
                    if col in d.columns:
                        df[col] = df["id"].map(d[col])
        if explain and len(df):
            if qid is None and not isinstance(query, (str, os.PathLike)):
                raise ParameterError("explain=True needs a track or a file as the query, not a vector")
            from .recommend.explanations import explain_results

            df["why"] = explain_results(self, qid if qid is not None else query, df)
        return df

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
            "dims": cat.get_meta("dims"),
            "schema_version": cat.get_meta("schema_version"),
            "generation": cat.generation,
            "spaces": spaces,
        }
