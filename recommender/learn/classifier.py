"""Train a classifier on your own labels, evaluate it honestly, index with it.

:class:`MusicClassifier` is a scikit-learn estimator (``fit`` returns
``self``, learned state ends in ``_``, ``predict_proba`` columns follow
``classes_``, ``random_state`` for all randomness) with four modes:

``"head"`` (default, fast)
    The pretrained networks stay frozen.  By default
    (``head_features="summary-all"``) each track becomes the mean and spread
    over its patches of the ``pool`` and ``penultimate`` layers of both
    shipped networks, and a multinomial logistic regression (standardised
    inputs, L2 strength ``C`` chosen by cross-validation grouped by track --
    by artist when known -- on the training + validation tracks, scored by
    track-level log loss) with calibrated probabilities learns the classes
    (:mod:`recommender.learn.features`; it backs ``classify --model`` and
    ``index --model`` through :class:`recommender.models.trackhead.TrackHeadModel`,
    both networks on the same patches).  Chosen on the selection half of the
    dev collection and confirmed once on the confirmation half: accuracy on
    held-out tracks 0.653 -> 0.749 against ``head_features="embedding"``
    (+9.6 points, paired 95 % CI +3.0..+16.5;
    ``benchmarks/bench_head_features.py``).  ``head_features="embedding"``
    (the previous default) learns from each 3-s patch's 200-d ``penultimate``
    embedding of one network, the regression folded into a Keras ``Dense`` +
    softmax on top of it, so the saved model is one ``.keras`` file and the
    index sees exactly what ``predict_proba`` sees; ``"embedding+tags"`` adds
    the 50 tag probabilities (measured no better).  A logistic regression
    rather than a Keras dense head: deterministic, nothing to early-stop,
    seconds to fit on precomputed embeddings.
``"finetune"``
    The whole pretrained network with a new ``class_logits`` layer, trained
    on log-mel patches; the body learns ``body_lr_ratio`` (0.1) times slower
    than the new layer and its batch normalisations stay frozen (small
    batches would wreck their statistics).
``"scratch"``
    A small CNN trained from nothing: 4 x [Conv 3x3, BatchNorm, ReLU,
    MaxPool 2x2] (16/32/64/128 filters), global average pooling, a 128-d
    ``penultimate`` Dense (the embedding), dropout, softmax.
``"classical"``
    MFCC / spectral / chroma / tempo / loudness statistics from
    :func:`recommender.descriptors.describe` on up to ``patches_per_track``
    10-s clips of each track, a ``StandardScaler`` + ``LogisticRegression``
    pipeline (``C`` chosen as for ``head``).  Saved as JSON + ``.npz`` numbers and
    rebuilt on load: no pickle, no joblib.

The Keras modes train on random 187-frame crops of each track's log-mel
spectrogram (a fresh crop every epoch), with audio-like augmentation applied
in the log-mel domain: gain (+-6 dB), additive white noise (SNR 15-40 dB,
half the time) and SpecAugment-style masking (one time mask <= 20 frames,
one frequency mask <= 12 bands, half the time).  Classes are weighted by
their inverse frequency.  Early stopping watches the *track-level*
validation loss (patch probabilities averaged per track) and restores the
best epoch.  Every prediction is per patch, then averaged per track.

Splits are by track (patches of one track never land in two splits) and by
artist when artists are known: see :func:`recommender.learn.datasets.split_dataset`.

Persistence (the format is defined in :mod:`recommender.models.trained`):
:meth:`MusicClassifier.save` writes a directory with
``model.keras`` (or ``model.npz`` for ``classical``), the JSON sidecar
``model.json`` (classes, front end, backbone and its SHA-256, mode,
SHA-256 of the weights file, training history) and ``tracks.json`` (the
tracks it was trained and validated on, so :func:`evaluate` never scores a
model on them).  :meth:`MusicClassifier.load` (or :func:`load_classifier`) loads it back with
``keras.saving.load_model(..., safe_mode=True)``; a file with a ``Lambda``
layer (which would run code) is refused with :class:`ModelError`.
``recommender.models.load_model(path)`` returns the same model as a
:class:`~recommender.models.TagModel` (tags = your classes, embedding = its
penultimate layer), so it can build an index and classify; a ``classical``
model cannot (it has no patches and no embedding) and says so.

Metrics and the report live in :mod:`.evaluate` (re-exported here), the
Keras networks in :mod:`._networks`, the report figures in
:mod:`recommender.viz.training`.

Examples
--------
>>> from recommender.learn.datasets import load_dataset, split_dataset      # doctest: +SKIP
>>> from recommender.learn.classifier import MusicClassifier, evaluate, write_report  # doctest: +SKIP
>>> df = split_dataset(load_dataset("genres/"), random_state=0)       # doctest: +SKIP
>>> clf = MusicClassifier("head").fit(df)       # test rows are never used by fit  # doctest: +SKIP
>>> report = evaluate(clf, df)                  # scores the test split  # doctest: +SKIP
>>> report["accuracy"], report["macro_f1"]                            # doctest: +SKIP
>>> write_report(report, "report/"); clf.save("models/genres")        # doctest: +SKIP
>>> Recommender("idx", model="models/genres").update(["~/Music"])     # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import logging
import os
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .._utils import check_choice, check_int, check_number
from ..errors import AudioError, ModelError, ParameterError
from ..models import trained
from ..models.trained import (  # noqa: F401 - the format's names, importable from here as before
    FORMAT,
    FORMAT_VERSION,
    MODES,
    SIDECAR,
    TRACKS_FILE,
    TrainedTagModel,
    is_trained_model,
    load_tag_model,
)
from . import _head as head
from . import _linear as linear
from . import _networks as nets
from ._inputs import (  # noqa: F401 - CLASSICAL_CLIP_S importable from here as before
    CLASSICAL_CLIP_S,
    as_frame,
    descriptor_clips,
    descriptor_names,
    embedding_table,
    map_paths,
    stack_rows,
    track_segments,
)
from .evaluate import evaluate_classifier, write_report
from .features import RECIPES

__all__ = [
    "MODES",
    "MusicClassifier",
    "load_classifier",
    "load_tag_model",
    "is_trained_model",
    "evaluate",
    "write_report",
]

logger = logging.getLogger(__name__)

_DEFAULT_EPOCHS = {"finetune": 8, "scratch": 30}
_DEFAULT_LR = {"finetune": 1e-3, "scratch": 1e-3}
_HEAD_FEATURES = tuple(RECIPES)


# =========================================================================== estimator
class MusicClassifier(ClassifierMixin, BaseEstimator):
    """Classify tracks into your own labels (genres, moods, games...).

    Parameters
    ----------
    mode : {"head", "finetune", "scratch", "classical"}
        See the module docstring.  ``"head"`` is fast and a good default.
    backbone : str
        Pretrained model (name or path) used by ``head`` and ``finetune``.
    patches_per_track : int
        3-s patches per track analysed (spread over the track, as the index
        does); for ``classical`` the number of 10-s clips.  Also the number of
        6-s segments kept per long track for random crops in the Keras modes.
    epochs : int, optional
        Maximum epochs for ``finetune``/``scratch`` (default 8 / 30).
    batch_size : int
    learning_rate : float, optional
        Adam learning rate of the new layers (default 1e-3).
    body_lr_ratio : float
        ``finetune``: learning rate of the pretrained body relative to
        ``learning_rate``.
    patience : int
        Epochs without a better validation loss before stopping.
    augment : bool
        Random crops, gain, noise and masking (Keras modes).
    head_features : str
        ``head``: a recipe of :data:`recommender.learn.features.RECIPES`
        (``"embedding"``, ``"embedding+tags"``, track-level ``"summary"``,
        ``"summary-all"``, ``"embedding-summary-all"``); see that module.
    C : float, optional
        ``head``/``classical``: inverse L2 strength; ``None`` picks it from
        ``(0.003 ... 10)`` by grouped cross-validation (see the module docstring).
    validation_size : float
        Fraction of the training tracks held out for early stopping / ``C``
        when the data has no ``validation`` split (by artist when known), for
        early stopping (Keras modes).  ``head``/``classical`` cross-validate
        on training + validation tracks together.
    class_weight : "balanced" or None
    random_state : int or None
        Seeds the splits, crops and augmentation, and (Keras modes) Keras
        through ``keras.utils.set_random_seed``, which also seeds Python's,
        NumPy's and TensorFlow's global generators.  Runs are repeatable up
        to TensorFlow's multithreaded float round-off.
    verbose : bool
        Progress bars.

    Only ``__init__`` stores the hyperparameters (scikit-learn's contract):
    ``get_params``/``set_params``/``clone``/``repr`` come from
    :class:`sklearn.base.BaseEstimator`; they are checked by :meth:`fit`.

    Attributes
    ----------
    classes_ : np.ndarray of str
    model_ : keras.Model or sklearn Pipeline
        Keras: ``(batch, 187, 96) -> [class probabilities, embedding]``.
    history_ : dict of lists
        ``epoch, loss, accuracy, val_loss, val_accuracy`` (Keras modes) or
        ``C, loss, accuracy, val_loss, val_accuracy`` (head/classical).
    n_train_, n_validation_ : int
        Tracks used to train / validate (after failures).
    failures_ : list of dict
        ``{"path", "reason"}`` of tracks that could not be read, skipped.
    split_strategy_ : str
    training_paths_, validation_paths_ : list of str
    backbone_sha256_ : str or None
    fit_time_s_ : float

    Examples
    --------
    >>> clf = MusicClassifier("head", random_state=0).fit(paths, labels)   # doctest: +SKIP
    >>> clf.predict(["new.mp3"])                                         # doctest: +SKIP
    array(['jazz'], dtype=object)
    """

    def __init__(self, mode="head", *, backbone="msd-musicnn", patches_per_track=16, epochs=None,
                 batch_size=32, learning_rate=None, body_lr_ratio=0.1, patience=4, augment=True,
                 head_features="summary-all", C=None, validation_size=0.15, class_weight="balanced",
                 random_state=0, verbose=False):
        self.mode = mode
        self.backbone = backbone
        self.patches_per_track = patches_per_track
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.body_lr_ratio = body_lr_ratio
        self.patience = patience
        self.augment = augment
        self.head_features = head_features
        self.C = C
        self.validation_size = validation_size
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose


    def set_params(self, **params):
        """Set hyperparameters (scikit-learn's ``set_params``); returns ``self``.

        Raises
        ------
        ParameterError
            A name that is not a parameter of ``__init__``.
        """
        names = self._get_param_names()
        unknown = [k for k in params if k not in names]
        if unknown:
            raise ParameterError(f"{unknown[0]}: not a parameter of MusicClassifier ({', '.join(names)})")
        return super().set_params(**params)

    def _validate(self):
        check_choice("mode", self.mode, MODES)
        check_int("patches_per_track", self.patches_per_track)
        check_int("epochs", self.epochs, allow_none=True)
        check_int("batch_size", self.batch_size)
        check_int("patience", self.patience)
        check_choice("head_features", self.head_features, _HEAD_FEATURES)
        check_number("validation_size", self.validation_size, min=0, max=1, max_inclusive=False)
        check_number("learning_rate", self.learning_rate, min=0, min_inclusive=False, allow_none=True)
        check_number("C", self.C, min=0, min_inclusive=False, allow_none=True)
        check_number("body_lr_ratio", self.body_lr_ratio, min=0, max=1)
        check_choice("class_weight", self.class_weight, ("balanced", None))

    def _check_fitted(self):
        if not hasattr(self, "classes_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this MusicClassifier is not fitted yet: call fit() or MusicClassifier.load()")

    # ------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Train on labelled tracks.

        Parameters
        ----------
        X : pandas.DataFrame or list of path-like
            A dataset from :mod:`recommender.learn.datasets` (``path``, ``label``,
            optional ``artist``/``split``), or audio paths.  Rows whose
            ``split`` is ``"test"`` are never used; ``"validation"`` rows
            drive early stopping / the choice of ``C``.  Without validation
            rows, ``validation_size`` of the training tracks are held out
            (whole tracks; whole artists when known).
        y : array-like of str, optional
            Labels, when ``X`` is a list of paths (or to override ``label``).

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            A bad hyperparameter, no labels, no training tracks, or fewer than
            2 classes (left) among the readable training tracks.
        """
        self._validate()
        t0 = time.perf_counter()
        df = self._training_frame(X, y)
        train = df[df["split"] == "train"]
        classes = np.array(sorted(train["label"].unique()), dtype=object)
        if len(classes) < 2:
            raise ParameterError(f"training tracks have {len(classes)} label(s): need at least 2")
        val = df[df["split"] == "validation"]
        unknown = sorted(set(val["label"]) - set(classes))
        if unknown:
            logger.warning("validation labels without training tracks ignored: %s", unknown)
            val = val[val["label"].isin(classes)]
        self.classes_ = classes
        self.failures_ = []
        rng = np.random.default_rng(self.random_state)
        fit = {"head": self._fit_head, "classical": self._fit_classical}.get(self.mode, self._fit_keras)
        groups_of = {}
        if "artist" in df and df["artist"].notna().all():
            groups_of = dict(zip(df["path"], df["artist"].astype(str)))
        fit(list(train["path"]), self._encode(train["label"]), list(val["path"]),
            self._encode(val["label"]), rng, groups_of)
        self.fit_time_s_ = time.perf_counter() - t0
        logger.info("trained %s on %d tracks (%d validation) in %.1f s", self.mode, self.n_train_,
                    self.n_validation_, self.fit_time_s_)
        return self

    def _training_frame(self, X, y):
        """The tracks of ``X`` without the test split, each marked ``train`` or ``validation``.

        Sets ``split_strategy_``.
        """
        from .datasets import split_dataset

        df = as_frame(X, y)
        if "label" not in df:
            raise ParameterError("y=None: give labels, or a DataFrame with a 'label' column")
        df["label"] = df["label"].astype(str)
        split = df["split"] if "split" in df else None
        if split is not None and split.notna().any():
            n_test = int((split == "test").sum())
            if n_test:
                logger.info("fit: %d test tracks held out (never used for training)", n_test)
            df = df[split != "test"].reset_index(drop=True)
            df.loc[df["split"].isna(), "split"] = "train"
        if not len(df):
            raise ParameterError("X: no training tracks")
        self.split_strategy_ = X.attrs.get("split_strategy", "") if hasattr(X, "attrs") else ""
        if "split" not in df or not (df["split"] == "validation").any():
            if self.validation_size > 0 and len(df) >= 4:
                sub = df.drop(columns=["split"], errors="ignore")
                sub = split_dataset(sub, test_size=0.0, validation_size=self.validation_size,
                                    random_state=self.random_state)
                df["split"] = sub["split"].to_numpy()
                self.split_strategy_ = (self.split_strategy_ + "; " if self.split_strategy_ else "") + \
                    "validation: " + sub.attrs["split_strategy"]
            else:
                df["split"] = "train"
        return df

    def _encode(self, labels):
        index = {c: i for i, c in enumerate(self.classes_)}
        return np.array([index[str(v)] for v in labels], dtype=int)

    def _keep(self, paths, y, table):
        keep = [i for i, p in enumerate(paths) if p in table]
        return [paths[i] for i in keep], y[keep]

    # ------------------------------------------------------------- head
    def _fit_linear(self, table, tr, ytr, va, yva, groups_of):
        """Shared by head and classical: choose C by grouped CV, fit on train+val."""
        tr, ytr = self._keep(tr, ytr, table)
        va, yva = self._keep(va, yva, table)
        if len(set(ytr)) < 2:
            raise ParameterError("fewer than 2 classes left with readable training tracks")
        paths = tr + va
        X, y, tracks = stack_rows(table, paths, np.concatenate([ytr, yva]).astype(int))
        groups = np.array([groups_of.get(paths[t], paths[t]) for t in tracks], dtype=object)
        scaler, lr, self.C_, self.history_ = linear.fit_linear(
            X, y, tracks, groups, n_classes=len(self.classes_), C=self.C, class_weight=self.class_weight,
            random_state=self.random_state)
        self.n_train_, self.n_validation_ = len(tr), len(va)
        self.training_paths_, self.validation_paths_ = list(tr), list(va)
        return scaler, lr

    def _fit_head(self, tr, ytr, va, yva, rng, groups_of):
        head.fit_head(self, tr, ytr, va, yva, groups_of)  # the recipes: see .features and ._head

    # ------------------------------------------------------------- classical
    def _fit_classical(self, tr, ytr, va, yva, rng, groups_of):
        from sklearn.pipeline import Pipeline

        table, fails = map_paths(lambda p: descriptor_clips(p, self.patches_per_track), tr + va,
                                 desc="descriptors", verbose=self.verbose)
        self.failures_.extend(fails)
        scaler, lr = self._fit_linear(table, tr, ytr, va, yva, groups_of)
        self.model_ = Pipeline([("scale", scaler), ("logreg", lr)])
        self.feature_names_ = descriptor_names()
        self.backbone_ = None
        self.backbone_sha256_ = None
        self.embedding_dim_ = None

    # ------------------------------------------------------------- keras modes
    def _fit_keras(self, tr, ytr, va, yva, rng, groups_of=None):
        keras = nets.keras_module()
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        segs, tr, ytr, va, yva = self._read_segments(tr, ytr, va, yva)
        n_classes = len(self.classes_)
        model = self._new_network(n_classes)
        lr = float(self.learning_rate or _DEFAULT_LR[self.mode])
        groups = nets.optimizer_groups(model, self.mode, lr, self.body_lr_ratio)
        train_step, predict = nets.compile_steps(model, groups, n_classes)
        best_w, hist, self.best_epoch_ = nets.train_epochs(
            model, train_step, predict, segs, tr, ytr, va, yva, rng, mode=self.mode,
            epochs=int(self.epochs or _DEFAULT_EPOCHS[self.mode]), patience=self.patience,
            batch_size=self.batch_size, augment=self.augment, class_weight=self.class_weight,
            patches_per_track=self.patches_per_track, verbose=self.verbose)
        model.set_weights(best_w)
        self.model_ = model
        self.history_ = hist
        self.n_train_, self.n_validation_ = len(tr), len(va)
        self.training_paths_, self.validation_paths_ = list(tr), list(va)
        self._tag_model = None

    def _read_segments(self, tr, ytr, va, yva):
        """Log-mel segments of every readable track; the splits without the unreadable ones."""
        segs, fails = map_paths(lambda p: track_segments(p, self.patches_per_track), tr + va,
                                desc="log-mel", verbose=self.verbose)
        self.failures_.extend(fails)
        tr, ytr = self._keep(tr, ytr, segs)
        va, yva = self._keep(va, yva, segs)
        if len(set(ytr)) < 2:
            raise ParameterError("fewer than 2 classes left with readable training tracks")
        return segs, tr, ytr, va, yva

    def _new_network(self, n_classes):
        """The untrained network of the mode (``finetune``: on a copy of the backbone)."""
        if self.mode == "finetune":
            tm = nets.backbone(self.backbone)
            model = nets.build_finetune_model(tm, n_classes)
            self.backbone_, self.backbone_sha256_ = tm.name, tm.weights_sha256
        else:
            model = nets.build_scratch_model(n_classes)
            self.backbone_, self.backbone_sha256_ = None, None
        self.embedding_dim_ = int(model.outputs[1].shape[-1])
        return model

    # ------------------------------------------------------------- prediction
    def tag_model(self):
        """This classifier as a :class:`~recommender.models.TagModel` (Keras modes; a track-level
        head as a :class:`~recommender.models.trackhead.TrackHeadModel`, whose analyses need
        its ``finish``).

        ``predict_patches(P)`` gives (class probabilities, embedding); use it
        with :func:`recommender.analysis.analyze_files`, ``classify`` or an
        index.

        Raises
        ------
        ModelError
            A ``classical`` model (no patches, no embedding).
        """
        self._check_fitted()
        if self.mode == "classical":
            raise ModelError(None, trained.CLASSICAL_NO_PATCHES)
        tm = getattr(self, "_tag_model", None)
        if tm is None and isinstance(self.model_, head.TrackHead):  # every network, then finish(res)
            tm = self._tag_model = head.track_head_model(self)
        if tm is None:
            tm = self._tag_model = TrainedTagModel(
                getattr(self, "name_", None) or f"custom:{self.mode}", self.model_,
                trained.tag_metadata(self.classes_, self.embedding_dim_, self.mode),
                getattr(self, "weights_sha256_", None) or "unsaved",
                source=getattr(self, "source_", None), mode=self.mode)
        return tm

    def predict_proba_files(self, paths, *, on_error="skip", per_patch=False):
        """Class probabilities of audio files, skipping (or raising on) unreadable ones.

        Parameters
        ----------
        paths : iterable of path-like
        on_error : {"skip", "raise"}
            ``"skip"``: leave unreadable files out of the result and list them
            in ``failures``; ``"raise"``: raise on the first one.
        per_patch : bool
            Return every patch's (``classical``: every clip's) probabilities
            instead of the track's (their mean).

        Returns
        -------
        probabilities : dict
            Absolute path -> ``(n_classes,)`` track probabilities, or
            ``(n_patches, n_classes)`` with ``per_patch=True`` (float64;
            columns follow :attr:`classes_`).
        failures : list of dict
            ``{"path", "reason"}`` of the files that could not be read.

        Raises
        ------
        AudioError
            ``on_error="raise"`` and a file cannot be read.
        """
        self._check_fitted()
        check_choice("on_error", on_error, ("skip", "raise"))
        out, fails = self._patch_outputs(paths, on_error)
        if not per_patch:
            out = {p: v.mean(axis=0) for p, v in out.items()}
        return out, fails

    def _patch_outputs(self, paths, on_error="raise"):
        """({path: patch class probabilities (n, C)}, failures)."""
        paths = [os.path.abspath(os.fspath(p)) for p in paths]
        if self.mode == "classical":
            table, fails = map_paths(lambda p: descriptor_clips(p, self.patches_per_track), paths,
                                     desc="descriptors", verbose=self.verbose)
            out = {p: self.model_.predict_proba(X) for p, X in table.items()}
        elif isinstance(self.model_, head.TrackHead):
            out, fails = head.patch_outputs(self, paths)
        else:
            from ..analysis.pipeline import TrackAnalysis, analyze_files

            out, fails = {}, []
            for res in analyze_files(paths, model=self.tag_model(), sampling=self.patches_per_track):
                if isinstance(res, TrackAnalysis):
                    out[res.path] = res.patch_probs.astype(np.float64)
                else:
                    fails.append({"path": res.path, "reason": res.reason})
                    logger.warning("skipping %s: %s", res.path, res.reason)
            out = {os.path.abspath(p): v for p, v in out.items()}
        if fails and on_error == "raise":
            raise AudioError(fails[0]["path"], fails[0]["reason"])
        return out, fails

    def predict_proba(self, X):
        """Track probabilities, mean of the patch probabilities.

        Parameters
        ----------
        X : list of path-like, a path, or a DataFrame with a ``path`` column

        Returns
        -------
        np.ndarray, shape (n_tracks, n_classes)
            Columns follow :attr:`classes_`.

        Raises
        ------
        AudioError
            A file cannot be read.
        """
        self._check_fitted()
        paths = list(as_frame(X)["path"])
        out, _ = self._patch_outputs(paths)
        return np.stack([out[p].mean(axis=0) for p in paths]) if paths else np.zeros((0, len(self.classes_)))

    def predict(self, X):
        """Most likely class of each track (array of str)."""
        P = self.predict_proba(X)
        return self.classes_[P.argmax(axis=1)]

    def score(self, X, y=None):
        """Track accuracy; labels from ``y`` or ``X['label']``."""
        df = as_frame(X, y)
        if "label" not in df:
            raise ParameterError("y=None: give labels, or a DataFrame with a 'label' column")
        return float((self.predict(df) == df["label"].astype(str).to_numpy()).mean())

    # ------------------------------------------------------------- persistence
    def save(self, path):
        """Save to a directory (created; files replaced atomically one by one).

        Writes ``model.keras`` (Keras modes) or ``model.npz`` (classical),
        ``tracks.json`` and ``model.json`` (the sidecar, written last); see
        :mod:`recommender.models.trained`.

        Returns
        -------
        str
            The directory.

        Raises
        ------
        ParameterError
            ``path`` exists and is not a directory.
        """
        self._check_fitted()
        d = os.path.abspath(os.fspath(path))
        if os.path.exists(d) and not os.path.isdir(d):
            raise ParameterError(f"path={d!r}: exists and is not a directory")
        if not hasattr(self.model_, "save"):  # classical pipeline or track-level head: plain arrays
            arrays = linear.classical_arrays(self.model_) if self.mode == "classical" else self.model_.arrays()

            def write_weights(tmp):
                np.savez(tmp, **arrays)
        else:
            write_weights = self.model_.save
        meta = _sidecar(self)
        tracks = {"train": self.training_paths_, "validation": self.validation_paths_, "failures": self.failures_}
        self.weights_sha256_ = trained.write_model(d, write_weights=write_weights, meta=meta, tracks=tracks)
        self.source_ = d
        self.name_ = trained.custom_name(d)
        self._tag_model = None
        logger.info("saved %s model to %s", self.mode, d)
        return d

    @classmethod
    def load(cls, path) -> "MusicClassifier":
        """Load a classifier saved by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The model directory (or its ``model.json`` / weights file).

        Returns
        -------
        MusicClassifier
            Fitted, with the saved hyperparameters, history and track lists.

        Raises
        ------
        ModelError
            Missing/corrupt/replaced files (SHA-256 checked), another front end,
            a Keras file that safe_mode refuses (``Lambda`` layers), or a regressor /
            multi-label model (the message names ``load_regressor`` / ``load_multilabel``).
        """
        d = trained.model_dir(path)
        if d is None:
            raise ModelError(path, "not a model directory (expected a folder with model.json)")
        meta, wpath = trained.read_sidecar(d)
        task = meta.get("task", "classify")
        if task != "classify":
            raise ModelError(d, f"a {task} model, not a classifier: load it with "
                                f"recommender.learn.{_LOADER_MODULES[task]}.{trained.LOADERS[task]}(path)")
        names = cls._get_param_names()
        params = {k: v for k, v in (meta.get("params") or {}).items() if k in names}
        params["mode"] = meta["mode"]
        if meta.get("head_recipe") is None:  # a Keras head saved before recipes: the patch embedding
            params.setdefault("head_features", "embedding")
        clf = cls(**params)
        for name, value in _fitted_state(meta, wpath, d).items():
            setattr(clf, name, value)
        clf._tag_model = None
        return clf


#: Module of :mod:`recommender.learn` holding the loader of another task's model.
_LOADER_MODULES = {"regress": "regression", "multilabel": "multilabel"}

#: ``__init__``'s parameters in signature order (``get_params`` sorts them; model.json keeps this order).
_PARAM_ORDER = [p for p in inspect.signature(MusicClassifier.__init__).parameters if p != "self"]


def _sidecar(clf) -> dict:
    """The ``model.json`` of a fitted classifier (``weights_sha256`` filled in by the writer)."""
    npz = clf.mode == "classical" or isinstance(clf.model_, head.TrackHead)
    meta = trained.new_sidecar(mode=clf.mode, classes=clf.classes_, embedding_dim=clf.embedding_dim_,
                               weights_file=trained.NPZ_FILE if npz else trained.KERAS_FILE)
    meta.update({
        "backbone": None if clf.backbone_ is None else {"name": str(clf.backbone_),
                                                        "weights_sha256": clf.backbone_sha256_},
        "patches_per_track": int(clf.patches_per_track),
        "params": {k: getattr(clf, k) for k in _PARAM_ORDER},
        "C": getattr(clf, "C_", None),
        "best_epoch": getattr(clf, "best_epoch_", None),
        "feature_names": getattr(clf, "feature_names_", None),
        "history": clf.history_,
        "n_train": clf.n_train_,
        "n_validation": clf.n_validation_,
        "split_strategy": clf.split_strategy_,
        "n_failures": len(clf.failures_),
        "fit_time_s": round(float(getattr(clf, "fit_time_s_", 0.0)), 3),
        "library_version": _library_version(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    if isinstance(clf.model_, head.TrackHead):  # new keys: older readers ignore them
        meta.update(clf.model_.sidecar(), temperature=clf.model_.temperature)
    return meta


def _fitted_state(meta, weights_path, d) -> dict:
    """The fitted attributes (``classes_``, ``model_``, ``history_``...) of a saved classifier."""
    bb = meta.get("backbone") or {}
    state = {
        "classes_": np.array(meta["classes"], dtype=object),
        "model_": (linear.load_classical(weights_path, meta) if meta["mode"] == "classical"
                   else head.TrackHead.load(weights_path, meta) if weights_path.endswith(trained.NPZ_FILE)
                   else trained.load_keras(weights_path, meta)),
        "history_": meta.get("history") or {},
        "n_train_": meta.get("n_train"),
        "n_validation_": meta.get("n_validation"),
        "split_strategy_": meta.get("split_strategy", ""),
        "embedding_dim_": meta.get("embedding_dim"),
        "backbone_": bb.get("name"),
        "backbone_sha256_": bb.get("weights_sha256"),
        "C_": meta.get("C"),
        "feature_names_": meta.get("feature_names"),
        "fit_time_s_": meta.get("fit_time_s"),
        "failures_": [],
        "training_paths_": [],
        "validation_paths_": [],
    }
    try:
        tracks = trained.read_tracks(d)
        state.update(training_paths_=tracks["train"], validation_paths_=tracks["validation"],
                     failures_=tracks["failures"])
    except (OSError, ValueError, AttributeError):
        logger.warning("%s: no readable %s; evaluate cannot exclude the training tracks", d, TRACKS_FILE)
    state.update(weights_sha256_=meta["weights_sha256"], source_=d, name_=trained.custom_name(d))
    return state


def _library_version():
    """This library's installed version (recorded in ``model.json``), or None."""
    import importlib.metadata

    try:
        return importlib.metadata.version("recommender")
    except importlib.metadata.PackageNotFoundError:
        return None


def load_classifier(path) -> MusicClassifier:
    """Load a :class:`MusicClassifier` saved by :meth:`MusicClassifier.save` (= :meth:`MusicClassifier.load`)."""
    return MusicClassifier.load(path)


def evaluate(model, dataset, *, split="test") -> dict:
    """Score a classifier on labelled tracks it has not seen.

    Parameters
    ----------
    model : MusicClassifier or path
        A fitted classifier or a saved model directory.
    dataset : pandas.DataFrame or path
        A dataset (see :func:`recommender.learn.datasets.load_dataset`).
    split : str
        Which split to score when the dataset has one.

    Returns
    -------
    dict
        See :func:`recommender.learn.evaluate.evaluate_classifier`.

    Raises
    ------
    ModelError
        ``model`` is a path that does not load.
    """
    clf = model if isinstance(model, MusicClassifier) else MusicClassifier.load(model)
    return evaluate_classifier(clf, dataset, split=split)
