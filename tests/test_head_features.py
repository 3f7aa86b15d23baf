"""Head-mode feature recipes (issue #21, item 0): track-level layer summaries of
the shipped networks, ``C`` by grouped cross-validation, calibrated
probabilities, and the saved format of a track-level head.

Audio is synthesised (tests/test_training.py's three separable classes: low
tones, noise bursts, fast clicks), so the labels are known by construction.
"""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from test_training import CLASSES, SR, synth

from recommender.errors import ModelError, ParameterError
from recommender.learn import _linear as linear
from recommender.learn import features as hf
from recommender.learn.datasets import load_folder, split_dataset

PER_CLASS = 7


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    for ci, c in enumerate(CLASSES):
        os.makedirs(root / c)
        for i in range(PER_CLASS):
            sf.write(root / c / f"{c}{i}.wav", synth(c, 1000 + 100 * ci + i, 6.0 + (i % 3)), SR)
    return split_dataset(load_folder(root), test_size=0.3, validation_size=0.15, random_state=0)


@pytest.fixture(scope="module")
def fitted(dataset):
    from recommender.learn.classifier import MusicClassifier

    return MusicClassifier("head", head_features="summary-all", patches_per_track=4, random_state=0).fit(dataset)


# --------------------------------------------------------------------------- recipes and calibration
def test_track_rows_of_pool_and_penultimate_is_the_index_layer_summary():
    from recommender.features.pooling import layer_summary

    rng = np.random.default_rng(0)
    pool, pen = rng.normal(size=(5, 1506)), rng.normal(size=(5, 200))
    row = hf.track_rows(hf.recipe("summary"), [{"pool": pool, "penultimate": pen}])
    np.testing.assert_allclose(row[0], layer_summary(pool, pen), rtol=1e-5, atol=1e-5)
    both = hf.track_rows(hf.recipe("summary-all"), [{"pool": pool, "penultimate": pen}] * 2)
    assert both.shape == (1, 2 * 3412)


def test_unknown_recipe_names_the_choices():
    from recommender.learn.classifier import MusicClassifier

    with pytest.raises(ParameterError, match="head_features=.*summary-all"):
        hf.recipe("mfcc")
    with pytest.raises(ParameterError, match="head_features"):
        MusicClassifier("head", head_features="mfcc").fit(["a.wav", "b.wav"], ["x", "y"])


def test_all_recipes_run_every_shipped_network_backbone_first():
    from recommender.models import available_models

    names = hf.recipe("summary-all").network_names("mtt-musicnn")
    assert names[0] == "mtt-musicnn" and sorted(names) == sorted(available_models())
    assert hf.recipe("summary").network_names("mtt-musicnn") == ["mtt-musicnn"]


def test_temperature_softens_overconfident_probabilities_and_keeps_calibrated_ones():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    # right 70 % of the time but always 99 % sure: over-confident
    right = rng.random(n) < 0.7
    pred = np.where(right, y, 1 - y)
    P = np.full((n, 2), 0.01)
    P[np.arange(n), pred] = 0.99
    T, before, after = linear.fit_temperature(P, y, np.arange(n))
    assert T > 2 and after < before
    # honest 70 % probabilities are left alone
    Q = np.full((n, 2), 0.3)
    Q[np.arange(n), pred] = 0.7
    T2, _, _ = linear.fit_temperature(Q, y, np.arange(n))
    assert 0.8 <= T2 <= 1.25
    np.testing.assert_allclose(linear.temper(Q, 1.0), Q, atol=1e-12)


def test_temperature_not_fitted_on_few_tracks_and_not_at_grid_edge():
    # issue #21: 18 tracks, 3 classes, 3 confidently wrong out-of-fold: T went to the top of the grid
    y = np.repeat([0, 1, 2], 6)
    P = np.full((18, 3), 1e-7)
    pred = y.copy()
    pred[[0, 6, 12]] = (y[[0, 6, 12]] + 1) % 3
    P[np.arange(18), pred] = 1 - 2e-7
    T, before, after = linear.fit_temperature(P, y, np.arange(18))
    assert T == 1.0 and after == before
    T_big, _, _ = linear.fit_temperature(P, y, np.arange(18), min_tracks=0)
    assert T_big > 5  # what it would have been without the floor: most probabilities flattened
    assert linear.T_GRID[0] == 0.1 and linear.T_GRID[-1] == 100.0 and linear.C_GRID_TRACK[-1] == 10.0


def test_fit_linear_with_calibration_uses_grouped_cv_on_training_rows_only():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 1, (20, 5)), rng.normal(1.5, 1, (20, 5))])
    y = np.repeat([0, 1], 20)
    tracks = np.arange(40)
    _, _, C, hist = linear.fit_linear(X, y, tracks, tracks, n_classes=2, C=None, class_weight="balanced",
                                            random_state=0, calibrate=True, grid=linear.C_GRID_TRACK)
    assert C in linear.C_GRID_TRACK and len(hist["val_loss"]) == len(linear.C_GRID_TRACK)
    assert hist["temperature"] in (1.0, *linear.T_GRID)
    assert hist["val_loss_calibrated"] <= min(hist["val_loss"]) + 1e-9


# --------------------------------------------------------------------------- the estimator
def test_track_level_head_learns_the_synthesised_classes(fitted, dataset):
    from recommender.learn.classifier import evaluate

    rep = evaluate(fitted, dataset)
    assert rep["n_test"] >= 6
    assert rep["accuracy"] >= 0.8, rep["accuracy"]
    assert fitted.C_ in linear.C_GRID_TRACK and fitted.temperature_ > 0
    test = dataset[dataset["split"] == "test"]
    P = fitted.predict_proba(test)
    assert P.shape == (len(test), 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)


def test_track_level_head_saves_plain_arrays_and_loads_to_identical_predictions(fitted, dataset, tmp_path):
    from recommender.learn.classifier import load_classifier

    d = fitted.save(tmp_path / "m")
    with open(os.path.join(d, "model.json")) as fh:
        meta = json.load(fh)
    assert meta["mode"] == "head" and meta["weights_file"] == "model.npz"
    assert meta["head_recipe"]["name"] == "summary-all" and meta["params"]["head_features"] == "summary-all"
    assert [n["name"] for n in meta["head_networks"]] == ["msd-musicnn", "mtt-musicnn"]
    with np.load(os.path.join(d, "model.npz"), allow_pickle=False) as z:
        assert set(z.files) == {"mean", "scale", "coef", "intercept", "classes", "temperature"}
    test = list(dataset[dataset["split"] == "test"]["path"])
    back = load_classifier(d)
    np.testing.assert_allclose(back.predict_proba(test), fitted.predict_proba(test), rtol=0, atol=1e-9)
    assert list(back.predict(test)) == list(fitted.predict(test))


def test_track_level_head_backs_classify_and_an_index(fitted, dataset, tmp_path, capsys):
    """Every network on the same patches, then finish(): what predict() computes, for an index and classify."""
    from recommender import Recommender
    from recommender.analysis.pipeline import analyze_files
    from recommender.cli.main import main
    from recommender.models import load_model

    d = fitted.save(tmp_path / "m")
    tm = load_model(d)  # what `index --model` / `classify --model` load
    assert tm.name == "custom:" + d and tm.tags == [str(c) for c in fitted.classes_]
    assert [n.name for n in tm.networks] == ["msd-musicnn", "mtt-musicnn"] and tm.embedding_dim == 200
    assert fitted.tag_model().tags == tm.tags
    test = [os.path.abspath(p) for p in dataset[dataset["split"] == "test"]["path"]]
    want, _ = fitted.predict_proba_files(test)
    raw = list(analyze_files(test, model=tm, sampling=fitted.patches_per_track))
    for r in raw:  # the analysis finishes the track (every entry point: files, waveforms, the index)
        np.testing.assert_allclose(r.probs, want[os.path.abspath(r.path)], atol=1e-5)
        assert r.layer_summary.shape == (3412,)  # the backbone's own summary
        assert tm.finish(r) is r  # finishing twice changes nothing
    from recommender.analysis.pipeline import analyze_waveform
    from recommender.io import audio

    w = analyze_waveform(audio.load(test[0], sr=16000), sr=16000, model=tm, sampling=fitted.patches_per_track)
    np.testing.assert_allclose(w.probs, want[test[0]], atol=1e-3)
    rec = Recommender(str(tmp_path / "idx"), model=d, sampling=f"spread:{fitted.patches_per_track}")
    root = os.path.dirname(os.path.dirname(test[0]))
    rep = rec.update([root], progress=False, fingerprints=False, descriptors=False)
    assert rep.failed == 0 and rep.added == len(dataset)
    cat = rec.catalog
    assert cat.get_meta("tags") == tm.tags and cat.get_meta("model_name") == tm.name
    ids, T = cat.vectors("tags")
    path_of = cat.tracks()["path"].to_dict()
    for i, t in zip(ids, T):
        if path_of[int(i)] in want:
            np.testing.assert_allclose(t, want[path_of[int(i)]], atol=1e-5)
    _, L = cat.vectors("layer_summary")
    assert L.shape[1] == 3412  # the backbone's own summary: the similarity space of a plain index
    assert len(rec.similar(int(ids[0]), k=3, tag=tm.tags[0])) >= 1
    assert main(["classify", test[0], "--model", d, "--sampling", f"spread:{fitted.patches_per_track}",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)[0]
    assert got["top"][0][0] == str(fitted.predict([test[0]])[0])
    assert got["tags"][got["top"][0][0]] == pytest.approx(float(max(want[test[0]])), abs=1e-4)


def test_a_track_level_head_from_other_network_weights_is_refused(fitted, tmp_path):
    from recommender.learn.classifier import load_classifier

    d = fitted.save(tmp_path / "m")
    bad = tmp_path / "bad"
    shutil.copytree(d, bad)
    side = bad / "model.json"
    meta = json.loads(side.read_text())
    meta["head_networks"][1]["weights_sha256"] = "0" * 64
    side.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="mtt-musicnn.*retrain"):
        load_classifier(bad)
    del meta["head_recipe"]
    side.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="not a valid track-level head"):
        load_classifier(bad)
