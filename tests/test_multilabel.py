"""Multi-label classification: label CSVs (a ``;`` cell or 0/1 columns) and their errors,
iterative stratification, sigmoid outputs with per-label thresholds, AUC metrics, safe
saving, and the model used like the built-in tagger.

Audio is synthesised: a sine bass, noise hi-hats and a click kick mixed in known
combinations, so every track's labels are known by construction.
"""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from conftest import write_mix_csv  # noqa: E402
from recommender.errors import DatasetError
from recommender.learn._targets import (
    balanced_group_folds,
    check_multilabel,
    iterative_stratification,
    label_matrix,
    load_targets,
    split_deviation,
    split_multilabel,
)

INSTRUMENTS = ("bass", "hats", "kick")
COMBOS = [c for c in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1))]


@pytest.fixture(scope="module")
def mix_csv(tmp_path_factory):
    return write_mix_csv(tmp_path_factory.mktemp("mixes"), INSTRUMENTS, COMBOS, rounds=4)


def _csv(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    for line in text.splitlines()[1:]:
        (tmp_path / line.split(",")[0]).touch()
    return p


# --------------------------------------------------------------------------- CSVs and their errors
def test_two_layouts_give_the_same_matrix(tmp_path):
    a = load_targets(_csv(tmp_path, "path,labels\na.wav,calm;sad\nb.wav,happy\nc.wav,sad\n"), check_audio=False)
    b = load_targets(_csv(tmp_path, "path,sad,calm,happy\na.wav,1,1,0\nb.wav,0,0,1\nc.wav,1,0,0\n", "u.csv"),
                     check_audio=False)
    assert a.attrs["task"] == b.attrs["task"] == "multilabel"
    assert a.attrs["labels"] == b.attrs["labels"] == ["calm", "happy", "sad"]
    np.testing.assert_array_equal(label_matrix(a, a.attrs["labels"]), label_matrix(b, b.attrs["labels"]))


def test_bad_label_cells(tmp_path):
    for text, pat in (("path,labels\na.wav,calm;sad\nb.wav,\n", r"line 3: column 'labels' is empty \(rule"),
                      ("path,calm,sad\na.wav,1,0\nb.wav,0,2\n", r"line 3: column 'sad' = '2' \(rule: one 0/1"),
                      ("path,calm,sad,x\na.wav,1,0,0\nb.wav,0,0,1\n", r"label 'sad': no track has it \(rule"),
                      ("path,labels\na.wav,calm;sad\nb.wav,calm;x\n", r"label 'calm': every track has it")):
        with pytest.raises(DatasetError, match=pat):
            load_targets(_csv(tmp_path, text), task="multilabel", check_audio=False)


def test_label_seen_in_one_split_is_refused(tmp_path):
    text = "path,labels,split\n" + "".join(f"a{i}.wav,{'calm;sad' if i < 3 else 'calm' if i < 5 else 'sad'},train\n" for i in range(6)) \
        + "".join(f"b{i}.wav,calm;x,test\n" for i in range(3)) + "c.wav,sad,test\n"
    df = load_targets(_csv(tmp_path, text), check_audio=False)
    with pytest.raises(DatasetError, match=r"label 'x': seen only in test, no train track has it \(rule"):
        check_multilabel(df, df.attrs["labels"])


def test_iterative_stratification_keeps_label_proportions():
    rng = np.random.default_rng(0)
    Y = (rng.random((300, 6)) < [0.5, 0.3, 0.1, 0.05, 0.2, 0.03]).astype(int)
    Y[:40, 2] = Y[:40, 3] = 1  # a co-occurring pair
    fold = iterative_stratification(Y, [0.2, 0.1, 0.7], random_state=0)
    sizes = np.bincount(fold, minlength=3) / len(Y)
    assert np.allclose(sizes, [0.2, 0.1, 0.7], atol=0.02)
    for j in range(Y.shape[1]):
        share = np.array([Y[fold == f, j].sum() for f in range(3)]) / Y[:, j].sum()
        assert np.allclose(share, [0.2, 0.1, 0.7], atol=0.08), (j, share)
    pair = (Y[:, 2] & Y[:, 3]).astype(bool)
    assert all((fold[pair] == f).sum() > 0 for f in range(3))  # the pair reaches every split
    # a random split of the same sizes loses the rare label in some split far more often
    assert np.array_equal(fold, iterative_stratification(Y, [0.2, 0.1, 0.7], random_state=0))


def test_split_multilabel_by_artist(tmp_path):
    text = "path,labels,artist\n" + "".join(
        f"a{i}.wav,{['calm', 'sad', 'calm;sad', 'happy'][i % 4]},art{i % 10}\n" for i in range(40))
    df = split_multilabel(load_targets(_csv(tmp_path, text), check_audio=False), ["calm", "happy", "sad"])
    assert "by artist" in df.attrs["split_strategy"] and "iterative stratification" in df.attrs["split_strategy"]
    assert all(g["split"].nunique() == 1 for _, g in df.groupby("artist"))
    check_multilabel(df, ["calm", "happy", "sad"])


# issue #21: 10 artists x 3 tracks; plain iterative stratification on artists put 8 of 9 test
# tracks with bass (47 % overall) and 2 of 9 with pad (43 %): max |test share - overall| 0.42
ISSUE21 = ["bass;hiss", "bass;hiss;pad", "bass", "hiss;pad", "bell", "hiss", "hiss", "hiss;pad;bell", "bell",
           "pad;bell", "bass;hiss;bell", "bass;hiss;pad;bell", "hiss;bell", "bell", "pad", "pad;bell",
           "bass;hiss;bell", "bell", "bass;hiss;pad", "hiss;pad;bell", "bass", "bass", "bass;hiss", "bass;hiss",
           "bass", "bass;pad", "bass;pad;bell", "hiss;pad", "hiss;pad;bell", "hiss;bell"]


def test_split_multilabel_by_artist_balances_labels(tmp_path):
    text = "path,labels,artist\n" + "".join(f"t{i:02d}.wav,{c},a{i % 10}\n" for i, c in enumerate(ISSUE21))
    df = load_targets(_csv(tmp_path, text), check_audio=False)
    labels = ["bass", "bell", "hiss", "pad"]
    for seed in (0, 1, 2):
        out = split_multilabel(df, labels, random_state=seed)
        assert all(g["split"].nunique() == 1 for _, g in out.groupby("artist"))
        Y = label_matrix(out, labels)
        assert (out["split"] == "test").sum() == 6 and (out["split"] == "validation").sum() == 3  # 0.2 / 0.1
        for split in ("train", "test"):
            m = (out["split"] == split).to_numpy()
            assert np.abs(Y[m].mean(0) - Y.mean(0)).max() <= 0.17, (seed, split, Y[m].mean(0), Y.mean(0))
        check_multilabel(out, labels)
        assert out["split"].tolist() == split_multilabel(df, labels, random_state=seed)["split"].tolist()


def test_balanced_group_folds_beats_plain_stratification():
    rng = np.random.default_rng(3)
    fr = np.array([0.2, 0.1, 0.7])
    worse = 0
    for trial in range(6):
        sizes = rng.integers(1, 9, 25).astype(float)
        G = np.floor(sizes[:, None] * rng.random((25, 5)) * (rng.random((25, 5)) < 0.5) + 0.5)

        def dev(fold):
            C = np.zeros((3, 5))
            np.add.at(C, fold, G)
            return float(split_deviation(C, np.bincount(fold, weights=sizes, minlength=3), fr))

        old = dev(iterative_stratification(G, fr, weights=sizes, random_state=trial))
        new = dev(balanced_group_folds(G, sizes, fr, random_state=trial))
        assert new <= old + 1e-12
        worse += new < 0.7 * old
    assert worse >= 4  # most often clearly better, not just equal


# --------------------------------------------------------------------------- training
def test_multilabel_head_on_known_mixtures(mix_csv, tmp_path):
    from recommender.learn.multilabel import (
        MultiLabelClassifier,
        evaluate_multilabel,
        load_multilabel,
        write_multilabel_report,
    )
    from recommender.models import load_model

    df = split_multilabel(load_targets(mix_csv), list(INSTRUMENTS), test_size=0.3, validation_size=0.2,
                          random_state=0)
    check_multilabel(df, list(INSTRUMENTS), require_validation=True)
    clf = MultiLabelClassifier("head", patches_per_track=3).fit(df)
    rep = evaluate_multilabel(clf, df)
    assert rep["n_test"] == (df["split"] == "test").sum()
    assert rep["macro"]["roc_auc"] >= 0.85 and rep["micro"]["pr_auc"] > rep["prior_baseline"]["macro_pr_auc"] + 0.2, \
        {k: rep[k] for k in ("macro", "micro", "per_label")}
    assert set(rep["per_label"]) == set(INSTRUMENTS) and all(0 < t < 1 for t in clf.thresholds_)
    written = write_multilabel_report(rep, tmp_path / "report")
    assert os.path.getsize(written["roc"]) > 0 and os.path.getsize(written["precision_recall"]) > 0
    d = clf.save(tmp_path / "m")
    meta = json.loads((tmp_path / os.path.basename(d) / "model.json").read_text())
    assert meta["task"] == "multilabel" and meta["classes"] == list(INSTRUMENTS)
    assert meta["thresholds"] == [float(t) for t in clf.thresholds_]
    test = df[df["split"] == "test"]
    again = load_multilabel(d)
    np.testing.assert_allclose(again.predict_proba(test), clf.predict_proba(test), atol=1e-5)
    # the TagModel view: tags = labels, independent sigmoid probabilities, thresholds known
    tm = load_model(d)
    assert tm.task == "multilabel" and tm.tags == list(INSTRUMENTS) and tm.thresholds == meta["thresholds"]
    P = np.random.default_rng(0).random((4, 187, 96)).astype(np.float32)
    probs, _ = tm.predict_patches(P)
    assert probs.shape == (4, 3) and (probs >= 0).all() and (probs <= 1).all()
    assert set(tm.labels_of(probs.mean(0))) <= set(INSTRUMENTS)


def test_multilabel_classical_saved_as_arrays(mix_csv, tmp_path):
    from recommender.errors import ModelError
    from recommender.learn.multilabel import (
        MultiLabelClassifier,
        evaluate_multilabel,
        load_multilabel,
    )
    from recommender.models import load_model

    df = split_multilabel(load_targets(mix_csv), list(INSTRUMENTS), test_size=0.3, validation_size=0.2,
                          random_state=1)
    clf = MultiLabelClassifier("classical", patches_per_track=1).fit(df)
    rep = evaluate_multilabel(clf, df)
    assert rep["macro"]["roc_auc"] >= 0.8, rep["per_label"]
    d = clf.save(tmp_path / "c")
    assert sorted(os.listdir(d)) == ["model.json", "model.npz", "tracks.json"]
    np.testing.assert_allclose(load_multilabel(d).predict_proba(df[df["split"] == "test"]),
                               clf.predict_proba(df[df["split"] == "test"]), rtol=1e-9)
    with pytest.raises(ModelError, match=r"classical.*load_multilabel\(path\)"):
        load_model(d)
    from recommender.learn.classifier import load_classifier

    with pytest.raises(ModelError, match=r"a multilabel model, not a classifier: .*multilabel\.load_multilabel"):
        load_classifier(d)
