"""Training on your own labels: datasets, honest splits, the four modes,
save/load in safe formats, evaluation, and indexing with a trained model.

Audio is synthesised here: three clearly separable classes (low sine tones,
noise bursts, fast clicks), 7 tracks of 6-9 s each.
"""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from recommender.learn.datasets import (  # noqa: E402
    drop_rare_classes,
    load_csv,
    load_dataset,
    load_fma,
    load_folder,
    split_dataset,
)
from recommender.errors import DatasetError, ModelError, ParameterError  # noqa: E402

SR = 16000
CLASSES = ("clicks", "noise", "tones")
PER_CLASS = 7


def synth(kind, seed, seconds):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = np.zeros(n)
    if kind == "tones":  # low harmonic notes
        step = int(rng.uniform(0.4, 0.8) * SR)
        for s in range(0, n, step):
            f, m = rng.uniform(60, 180), min(n - s, step)
            t = np.arange(m) / SR
            y[s : s + m] += sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) * np.exp(-1.5 * t)
    elif kind == "noise":  # white-noise bursts
        for s in range(0, n, int(rng.uniform(0.35, 0.6) * SR)):
            m = min(int(0.25 * SR), n - s)
            y[s : s + m] += rng.normal(0, rng.uniform(0.1, 0.3), m)
    else:  # fast clicks, 10-16 per second
        period, L = int(SR / rng.uniform(10, 16)), 80
        for s in range(0, n - L, period):
            y[s : s + L] += rng.uniform(0.4, 0.8) * np.exp(-np.arange(L) / 15.0) * np.sign(rng.normal(size=L))
    y += rng.normal(0, 0.003, n)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """GTZAN layout: root/<label>/*.wav, plus one broken file."""
    root = tmp_path_factory.mktemp("genres")
    for ci, c in enumerate(CLASSES):
        os.makedirs(root / c)
        for i in range(PER_CLASS):
            seconds = 6.0 + 3.0 * ((i * 3) % PER_CLASS) / (PER_CLASS - 1)
            sf.write(root / c / f"{c}{i}.wav", synth(c, 100 * ci + i, seconds), SR)
    (root / "tones" / "broken.wav").write_bytes(b"RIFF not really a wave file" * 10)
    return root


@pytest.fixture(scope="module")
def dataset(data_dir):
    df = load_folder(data_dir)
    return split_dataset(df, test_size=0.3, validation_size=0.15, random_state=0)


@pytest.fixture(scope="module")
def head_model(dataset, tmp_path_factory):
    from recommender.learn.classifier import MusicClassifier

    clf = MusicClassifier("head", head_features="embedding", random_state=0).fit(dataset)
    path = clf.save(tmp_path_factory.mktemp("models") / "head")
    return clf, path


# --------------------------------------------------------------------------- datasets
def test_load_folder_reports_and_skips_unreadable(data_dir):
    df = load_folder(data_dir)
    assert list(df.columns) == ["path", "label", "artist", "split"]
    assert len(df) == 3 * PER_CLASS
    assert sorted(df["label"].unique()) == list(CLASSES)
    assert all(os.path.isabs(p) for p in df["path"])
    fails = df.attrs["failures"]
    assert [os.path.basename(f["path"]) for f in fails] == ["broken.wav"]
    assert fails[0]["reason"]
    assert load_dataset(data_dir).equals(df)
    with pytest.raises(DatasetError):
        load_folder(data_dir / "tones" / "tones0.wav")


def test_load_csv_relative_paths_artists_and_splits(data_dir, tmp_path):
    csv_path = tmp_path / "labels.csv"
    rel = os.path.relpath(data_dir, tmp_path)
    csv_path.write_text(
        "path,label,artist,split\n"
        f"{rel}/tones/tones0.wav,tones,Ann,training\n"
        f"{rel}/noise/noise0.wav,noise,Bob,val\n"
        f"{rel}/clicks/clicks0.wav,clicks,Cy,test\n"
        f"{rel}/clicks/missing.wav,clicks,Cy,test\n"
        f"{rel}/clicks/clicks1.wav,clicks,,\n"
    )
    df = load_dataset(csv_path)
    assert len(df) == 4
    assert df["path"].iloc[0] == os.path.join(str(data_dir), "tones", "tones0.wav")
    assert list(df["split"]) == ["train", "validation", "test", None]
    assert list(df["artist"]) == ["Ann", "Bob", "Cy", None]
    assert [os.path.basename(f["path"]) for f in df.attrs["failures"]] == ["missing.wav"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,genre\na.wav,x\n")
    with pytest.raises(DatasetError, match="path"):
        load_csv(bad)
    bad.write_text(f"path,label,split\n{rel}/tones/tones0.wav,tones,holdout\n")
    with pytest.raises(DatasetError, match="split"):
        load_csv(bad)


def test_load_fma_two_row_header(data_dir, tmp_path):
    meta = tmp_path / "fma_metadata"
    audio_dir = tmp_path / "fma_small"
    meta.mkdir()
    rows = [(2, "Hip-Hop", "AWOL", "training", "small"), (5, "Hip-Hop", "AWOL", "training", "small"),
            (10, "Pop", "Kurt Vile", "validation", "small"), (140, "Folk", "Alec K.", "test", "small"),
            (141, "", "Alec K.", "test", "small"),  # no genre_top: left out
            (1482, "Rock", "Nobody", "training", "medium"),  # not in 'small'
            (3000, "Rock", "Gone", "test", "small")]  # audio missing: a failure
    y = synth("tones", 1, 4.0)
    for tid, *_ in rows:
        if tid == 3000:
            continue
        d = audio_dir / f"{tid:06d}"[:3]
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / f"{tid:06d}.mp3", y, SR, format="MP3")
    # the real tracks.csv layout: two header rows, then a 'track_id' index-name row
    lines = [",album,album,artist,artist,set,set,track,track,track",
             ",id,title,id,name,split,subset,genre_top,genres,title",
             "track_id,,,,,,,,,"]
    for tid, genre, artist, split, subset in rows:
        lines.append(f'{tid},1,"Album, with comma",7,{artist},{split},{subset},{genre},"[21, 12]",Song {tid}')
    (meta / "tracks.csv").write_text("\n".join(lines) + "\n")

    df = load_dataset(meta / "tracks.csv", subset="small")  # audio dir found as a sibling fma_* folder
    assert list(df["track_id"]) == [2, 5, 10, 140]
    assert list(df["label"]) == ["Hip-Hop", "Hip-Hop", "Pop", "Folk"]
    assert list(df["split"]) == ["train", "train", "validation", "test"]
    assert df["artist"].iloc[2] == "Kurt Vile"
    assert df["path"].iloc[0] == str(audio_dir / "000" / "000002.mp3")
    assert [f["path"] for f in df.attrs["failures"]] == [str(audio_dir / "003" / "003000.mp3")]
    full = load_fma(meta / "tracks.csv", audio_dir=audio_dir)
    assert 1482 in set(full["track_id"])


# --------------------------------------------------------------------------- splits
def _by_split(df, col):
    return {s: set(df.loc[df["split"] == s, col]) for s in ("train", "validation", "test")}


def test_split_by_track_stratified_and_reproducible(data_dir):
    df = load_folder(data_dir)
    a = split_dataset(df, test_size=0.3, validation_size=0.15, random_state=3)
    b = split_dataset(df, test_size=0.3, validation_size=0.15, random_state=3)
    assert a["split"].tolist() == b["split"].tolist()
    parts = _by_split(a, "path")
    assert not (parts["train"] & parts["test"]) and not (parts["train"] & parts["validation"])
    assert not (parts["validation"] & parts["test"])
    counts = pd.crosstab(a["label"], a["split"])
    assert (counts["test"] == 2).all() and (counts["validation"] == 1).all() and (counts["train"] == 4).all()
    assert "by track" in a.attrs["split_strategy"]


def test_split_by_artist_when_known(data_dir):
    df = load_folder(data_dir)
    # 3 artists per class, tracks spread over them
    df["artist"] = [f"{lab}-artist{i % 3}" for i, lab in enumerate(df["label"])]
    s = split_dataset(df, test_size=0.3, validation_size=0.2, random_state=0)
    assert "by artist" in s.attrs["split_strategy"]
    parts = _by_split(s, "artist")
    assert parts["test"] and parts["train"]
    assert not (parts["train"] & parts["test"]) and not (parts["train"] & parts["validation"])
    assert not (parts["validation"] & parts["test"])
    assert set(s.loc[s["split"] == "train", "label"]) == set(CLASSES)
    t = split_dataset(df, test_size=0.3, by_artist=False, random_state=0)
    assert "by track" in t.attrs["split_strategy"]


def test_user_split_wins_and_rare_classes(data_dir):
    df = load_folder(data_dir)
    df["split"] = ["test" if p.endswith("0.wav") else "train" for p in df["path"]]
    s = split_dataset(df, random_state=0)
    assert s["split"].tolist() == df["split"].tolist()
    assert "given" in s.attrs["split_strategy"]
    small = drop_rare_classes(df[~(df["label"] == "noise") | df["path"].str.endswith(("0.wav", "1.wav"))], 5)
    assert set(small["label"]) == {"clicks", "tones"}
    assert small.attrs["dropped_classes"] == {"noise": 2}
    with pytest.raises(ParameterError):
        split_dataset(df.drop(columns="split"), test_size=0.7, validation_size=0.4)


# --------------------------------------------------------------------------- estimator contract
def test_estimator_contract():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    from recommender.learn.classifier import MusicClassifier

    clf = MusicClassifier("scratch", epochs=3, random_state=7)
    assert clf.get_params()["epochs"] == 3 and not hasattr(clf, "classes_")
    c2 = clone(clf)
    assert c2.get_params() == clf.get_params() and c2 is not clf
    assert clf.set_params(epochs=5) is clf and clf.epochs == 5
    with pytest.raises(NotFittedError):
        clf.predict(["x.wav"])
    with pytest.raises(ParameterError, match="mode"):
        MusicClassifier("magic").fit(["a.wav", "b.wav"], ["x", "y"])
    with pytest.raises(ParameterError):
        clf.set_params(nope=1)


# --------------------------------------------------------------------------- head
def test_head_accuracy_on_held_out_tracks(dataset, head_model):
    from recommender.learn.classifier import evaluate

    clf, _ = head_model
    test = dataset[dataset["split"] == "test"]
    assert not set(test["path"]) & (set(clf.training_paths_) | set(clf.validation_paths_))
    assert list(clf.classes_) == list(CLASSES)
    P = clf.predict_proba(test)
    assert P.shape == (len(test), 3) and np.allclose(P.sum(axis=1), 1, atol=1e-5)
    report = evaluate(clf, dataset)
    assert report["n_test"] == len(test) == 6
    assert report["accuracy"] >= 0.9 and report["macro_f1"] >= 0.9
    assert report["per_patch"]["accuracy"] >= 0.9
    assert report["n_train"] + report["n_validation"] == 15
    assert clf.score(test) == report["accuracy"]


def test_save_load_round_trip_identical(dataset, head_model, tmp_path):
    from recommender.learn.classifier import evaluate, load_classifier, write_report

    clf, path = head_model
    files = sorted(os.listdir(path))
    assert files == ["model.json", "model.keras", "tracks.json"]
    meta = json.loads(open(os.path.join(path, "model.json")).read())
    assert meta["mode"] == "head" and meta["classes"] == list(CLASSES)
    assert meta["backbone"]["name"] == "msd-musicnn" and len(meta["weights_sha256"]) == 64
    assert meta["frontend"]["n_mels"] == 96
    test = list(dataset.loc[dataset["split"] == "test", "path"])
    again = load_classifier(path)
    for w1, w2 in zip(clf.model_.get_weights(), again.model_.get_weights()):
        np.testing.assert_array_equal(w1, w2)  # byte-identical weights
    # outputs agree to float32 round-off (oneDNN results depend on how patches are batched)
    np.testing.assert_allclose(clf.predict_proba(test), again.predict_proba(test), atol=1e-6)
    assert list(clf.predict(test)) == list(again.predict(test))
    # evaluate on a dataset without a split column: the training tracks are excluded
    report = evaluate(path, dataset.drop(columns="split"))
    assert report["n_test"] == 6 and any("excluded" in n for n in report["notes"])
    written = write_report(report, tmp_path / "report")
    for key in ("json", "confusion_track", "confusion_patch", "training_curves"):
        assert os.path.getsize(written[key]) > 0
    assert json.load(open(written["json"]))["confusion"] == report["confusion"]


def test_trained_model_backs_index_and_classify(dataset, head_model, data_dir, tmp_path):
    from recommender import Recommender, classify
    from recommender.models import load_model

    _, path = head_model
    m = load_model(path)
    assert m.tags == list(CLASSES) and m.n_tags == 3 and m.embedding_dim == 200
    assert m.source == path and m.name.startswith("custom:") and len(m.weights_sha256) == 64
    assert load_model(os.path.join(path, "model.json")) is m and load_model(m.name) is m
    P = np.random.default_rng(0).random((3, 187, 96)).astype(np.float32) * 3
    probs, emb = m.predict_patches(P)
    assert probs.shape == (3, 3) and emb.shape == (3, 200) and np.allclose(probs.sum(1), 1, atol=1e-5)

    test = dataset[dataset["split"] == "test"]
    c = classify(test["path"].iloc[0], model=path)
    assert c.top(1)[0][0] == test["label"].iloc[0] and list(c.timeline.columns) == list(CLASSES)

    rec = Recommender(tmp_path / "idx", model=path)
    rep = rec.update([str(data_dir)], jobs=1)
    assert rep.added == 3 * PER_CLASS and rep.failed == 1  # broken.wav
    info = rec.info()
    assert info["dims"]["embedding"] == 200 and info["dims"]["tags"] == 3 and info["model"] == m.name
    reopened = Recommender(tmp_path / "idx")  # the model comes back from the catalog's model name
    assert reopened.model is m
    q = test["path"].iloc[1]
    res = reopened.similar(q, k=3, space="tags")
    assert (res["path"].map(lambda p: os.path.basename(os.path.dirname(p))) == test["label"].iloc[1]).all()


# --------------------------------------------------------------------------- classical
def test_classical_accuracy_and_pickle_free_save(dataset, tmp_path):
    from recommender.models import load_model
    from recommender.learn.classifier import MusicClassifier, evaluate, load_classifier

    clf = MusicClassifier("classical", random_state=0).fit(dataset)
    report = evaluate(clf, dataset)
    assert report["accuracy"] >= 0.9 and report["macro_f1"] >= 0.9
    path = clf.save(tmp_path / "classical")
    assert sorted(os.listdir(path)) == ["model.json", "model.npz", "tracks.json"]
    with np.load(os.path.join(path, "model.npz"), allow_pickle=False) as z:
        assert z["coef"].shape == (3, len(clf.feature_names_))
    test = list(dataset.loc[dataset["split"] == "test", "path"])
    np.testing.assert_allclose(load_classifier(path).predict_proba(test), clf.predict_proba(test), rtol=1e-12)
    with pytest.raises(ModelError, match="cannot back an index"):
        load_model(path)


# --------------------------------------------------------------------------- keras modes
@pytest.mark.parametrize("mode", ["scratch", "finetune"])
def test_keras_modes_train_save_reload(mode, dataset, tmp_path):
    from recommender.learn.classifier import MusicClassifier, evaluate, load_classifier

    # tiny: 2 patches per track, few epochs; this checks the machinery, not accuracy
    clf = MusicClassifier(mode, epochs=2 if mode == "scratch" else 1, patches_per_track=2, batch_size=16,
                          random_state=0)
    assert clf.fit(dataset) is clf
    h = clf.history_
    assert 1 <= len(h["epoch"]) <= clf.epochs and h["val_loss"][0] is not None
    path = clf.save(tmp_path / mode)
    again = load_classifier(path)
    test = list(dataset.loc[dataset["split"] == "test", "path"])
    p1, p2 = clf.predict_proba(test), again.predict_proba(test)
    assert p1.shape == (6, 3)
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    assert evaluate(again, dataset)["n_test"] == 6
    assert again.model_.get_layer("class_logits") is not None


def test_lambda_layer_refused_under_safe_mode(head_model, tmp_path):
    import keras

    from recommender.models import load_model
    from recommender._utils import sha256_file as _sha256
    from recommender.learn.classifier import load_classifier

    _, path = head_model
    evil = tmp_path / "evil"
    shutil.copytree(path, evil)
    x = keras.Input((187, 96))
    y = keras.layers.Lambda(lambda t: t * 2.0)(x)
    p = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling1D()(y))
    e = keras.layers.Dense(200)(keras.layers.GlobalAveragePooling1D()(y))
    keras.Model(x, [p, e]).save(evil / "model.keras")
    meta = json.loads((evil / "model.json").read_text())
    meta["weights_sha256"] = _sha256(evil / "model.keras")
    (evil / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="Lambda"):
        load_classifier(evil)
    with pytest.raises(ModelError, match="Lambda"):
        load_model(evil)
    # a replaced weights file without an updated sidecar is refused too
    meta["weights_sha256"] = "0" * 64
    (evil / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="sha256"):
        load_classifier(evil)


def test_unreadable_files_skipped_at_feature_extraction(data_dir):
    from recommender.learn.classifier import MusicClassifier

    paths = [str(data_dir / c / f"{c}{i}.wav") for c in CLASSES for i in range(3)]
    labels = [c for c in CLASSES for _ in range(3)]
    paths.append(str(data_dir / "tones" / "broken.wav"))
    labels.append("tones")
    clf = MusicClassifier("classical", patches_per_track=1, validation_size=0, C=1.0).fit(paths, labels)
    assert [os.path.basename(f["path"]) for f in clf.failures_] == ["broken.wav"]
    assert clf.n_train_ == 9


# --------------------------------------------------------------------------- CLI
def test_cli_train_and_evaluate(data_dir, tmp_path, capsys):
    from recommender.cli import main

    out = tmp_path / "cli_model"
    assert main(["train", str(data_dir), "--out", str(out), "--mode", "classical", "--patches", "1",
                 "--test-size", "0.3", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "macro_f1", "n_train", "n_test", "classes", "confusion"):
        assert key in rep
    assert rep["classes"] == list(CLASSES) and rep["n_test"] == 6 and rep["accuracy"] >= 0.9
    assert os.path.isfile(out / "report" / "confusion_track.png")
    assert any("broken.wav" in f["path"] for f in rep["failures"])
    assert main(["evaluate", str(out), str(data_dir), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["n_test"] == 6 and ev["accuracy"] == rep["accuracy"]
    assert main(["predict", str(out), str(data_dir / "noise" / "noise0.wav"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["predicted"] == "noise"
