"""Regression on numeric labels: target CSVs and their errors, honest splits, tempo against the
descriptor estimator and the mean baseline, a loudness head saved safely and used like a model,
and ``--where`` on the stored values.

Audio is synthesised here with known values: click tracks at a known BPM, noise/tone
tracks at a known gain.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from conftest import SYNTH_SR, click_track, gain_track  # noqa: E402
from recommender.errors import DatasetError, ParameterError
from recommender.learn._targets import detect_task, load_targets, split_regression

SR = SYNTH_SR


@pytest.fixture(scope="module")
def tempo_csv(tmp_path_factory):
    root = tmp_path_factory.mktemp("tempo")
    bpms = np.linspace(72, 168, 30)
    rows = []
    for i, b in enumerate(bpms):
        sf.write(root / f"t{i:02d}.wav", click_track(b, i), SR)
        rows.append(f"t{i:02d}.wav,{b:.2f}")
    (root / "tempo.csv").write_text("path,tempo\n" + "\n".join(rows) + "\n")
    return root / "tempo.csv"


@pytest.fixture(scope="module")
def gain_csv(tmp_path_factory):
    root = tmp_path_factory.mktemp("gain")
    gains = np.linspace(-36, 0, 24)
    rows = []
    for i, g in enumerate(gains):
        sf.write(root / f"g{i:02d}.wav", gain_track(g, 50 + i), SR)
        rows.append(f"g{i:02d}.wav,{g:.2f}")
    (root / "gain.csv").write_text("path,energy\n" + "\n".join(rows) + "\n")
    return root / "gain.csv"


# --------------------------------------------------------------------------- CSVs and their errors
def _csv(tmp_path, text, name="t.csv"):
    """Write a CSV and create the (empty) files it names: the loaders check they exist."""
    p = tmp_path / name
    p.write_text(text)
    for line in text.splitlines()[1:]:
        (tmp_path / line.split(",")[0]).touch()
    return p


def test_detect_task(tmp_path):
    assert detect_task(_csv(tmp_path, "path,tempo,energy\na.wav,120,0.5\n"))[0] == "regress"
    assert detect_task(_csv(tmp_path, "path,labels\na.wav,calm;sad\nb.wav,happy\n"))[0] == "multilabel"
    assert detect_task(_csv(tmp_path, "path,calm,sad\na.wav,1,0\nb.wav,0,1\n"))[0] == "multilabel"
    assert detect_task(_csv(tmp_path, "path,label\na.wav,rock\n"))[0] == "classify"
    with pytest.raises(DatasetError, match=r"line 3: column 'tempo' = 'fast' is not a number"):
        detect_task(_csv(tmp_path, "path,tempo\na.wav,120\nb.wav,fast\n"))


def test_bad_numeric_cells_name_the_line_and_rule(tmp_path):
    for body, pat in (("a.wav,120\nb.wav,fast\n", r"line 3: column 'tempo' = 'fast' is not a finite number"),
                      ("a.wav,120\nb.wav,\n", r"line 3: column 'tempo' is empty \(rule"),
                      ("a.wav,nan\n", r"line 2: column 'tempo' = 'nan' is not a finite number")):
        with pytest.raises(DatasetError, match=pat):
            load_targets(_csv(tmp_path, "path,tempo\n" + body), task="regress", check_audio=False)
    with pytest.raises(DatasetError, match=r"targets \['bpm'\]: no such column"):
        load_targets(_csv(tmp_path, "path,tempo\na.wav,1\n"), task="regress", targets=["bpm"], check_audio=False)


def test_constant_target_refused(tmp_path):
    from recommender.learn._targets import check_regression

    rows = "".join(f"a{i}.wav,100\n" for i in range(10))
    df = load_targets(_csv(tmp_path, "path,tempo\n" + rows), task="regress", check_audio=False)
    df = split_regression(df, ["tempo"], random_state=0)
    with pytest.raises(DatasetError, match=r"target 'tempo': every training track has the value 100 \(rule"):
        check_regression(df, ["tempo"])


def test_split_regression_by_track_and_by_artist(tmp_path):
    rows = "".join(f"a{i}.wav,{60 + 3 * i},art{i % 6}\n" for i in range(30))
    df = load_targets(_csv(tmp_path, "path,tempo,artist\n" + rows), task="regress", check_audio=False)
    assert df.attrs["targets"] == ["tempo"] and df["tempo"].dtype == float
    s = split_regression(df, ["tempo"], random_state=0)
    assert "by artist" in s.attrs["split_strategy"]
    for a, g in s.groupby("artist"):
        assert g["split"].nunique() == 1  # no artist in two splits
    s2 = split_regression(df.drop(columns="artist").assign(artist=None), ["tempo"], random_state=0)
    counts = s2["split"].value_counts()
    assert counts["test"] == 5 and counts["validation"] >= 2  # 1 + 1 per bin of 6 tracks and "quantile bins" in s2.attrs["split_strategy"]
    # each fifth of the tempo range has test tracks (stratified on quantile bins)
    bins = pd.qcut(s2["tempo"], 5, labels=False)
    assert set(bins[s2["split"] == "test"]) == set(range(5))
    again = split_regression(df.drop(columns="artist").assign(artist=None), ["tempo"], random_state=0)
    assert list(again["split"]) == list(s2["split"])



def test_split_regression_few_tracks_per_bin_falls_back_to_grouped_split(tmp_path):
    # 30 tracks, 10 artists x 3: the validation carve needs 8 folds but each tempo bin has < 8 tracks
    rows = "".join(f"a{i}.wav,{70 + 3.4 * i},art{i % 10}\n" for i in range(30))
    df = load_targets(_csv(tmp_path, "path,tempo,artist\n" + rows), task="regress", check_audio=False)
    s = split_regression(df, ["tempo"], random_state=0)
    assert set(s["split"]) == {"train", "validation", "test"}
    assert s.groupby("artist")["split"].nunique().max() == 1


# --------------------------------------------------------------------------- tempo
def test_tempo_regression_beats_mean_baseline(tempo_csv, tmp_path):
    from recommender.learn.regression import (
        MusicRegressor,
        evaluate_regression,
        load_regressor,
        write_regression_report,
    )

    df = split_regression(load_targets(tempo_csv), ["tempo"], test_size=0.3, validation_size=0.1, random_state=0)
    reg = MusicRegressor("classical", patches_per_track=1).fit(df)
    rep = evaluate_regression(reg, df)
    t = rep["per_target"]["tempo"]
    assert rep["n_test"] == 10 and set(t) == {"model", "mean_baseline", "descriptor_tempo"}
    # the descriptor estimator is near-perfect on clicks; the regressor must clearly beat the mean
    assert t["descriptor_tempo"]["accuracy2"] >= 0.8
    assert t["model"]["mae"] < 0.5 * t["mean_baseline"]["mae"]
    assert t["model"]["accuracy2"] > t["mean_baseline"]["accuracy2"]
    assert t["model"]["r2"] > 0.5 and t["mean_baseline"]["r2"] <= 0.05
    written = write_regression_report(rep, tmp_path / "report")
    assert os.path.getsize(written["scatter_tempo"]) > 0 and os.path.getsize(written["residuals_tempo"]) > 0
    # safe save: arrays only, sidecar with task; reload predicts the same
    d = reg.save(tmp_path / "m")
    assert sorted(os.listdir(d)) == ["model.json", "model.npz", "tracks.json"]
    meta = json.loads((tmp_path / os.path.basename(d) / "model.json").read_text())
    assert meta["task"] == "regress" and meta["classes"] == ["tempo"] and meta["mode"] == "classical"
    with np.load(os.path.join(d, "model.npz"), allow_pickle=False) as z:
        assert set(z.files) == {"kernel", "bias"}
    again = load_regressor(d)
    test = df[df["split"] == "test"]
    np.testing.assert_allclose(again.predict(test), reg.predict(test), rtol=1e-9)
    fit_t = df.loc[df["split"] != "test", "tempo"]
    span = fit_t.max() - fit_t.min()
    np.testing.assert_allclose(again.target_range_, [[fit_t.min() - span / 2, fit_t.max() + span / 2]])
    rep2 = evaluate_regression(d, df.drop(columns="split"), tempo_baseline=False)
    assert rep2["n_test"] == 10 and any("excluded" in n for n in rep2["notes"])


def test_predictions_clipped_and_worse_than_mean_noted():
    from recommender.learn.regression import MusicRegressor, evaluate_regression

    class Wild:  # a fitted model's predict_files that extrapolates wildly
        def predict_files(self, paths, tag_model=None, verbose=False):
            return {p: np.array([v]) for p, v in zip(paths, (-177.7, 500.0, 120.0))}, []

    reg = MusicRegressor("classical")
    reg.model_, reg.targets_, reg.target_means_ = Wild(), ["tempo"], np.array([120.0])
    reg.target_range_ = np.array([[20.0, 220.0]])
    reg.training_paths_, reg.validation_paths_ = [], []
    reg.n_train_ = reg.n_validation_ = reg.alpha_ = reg.split_strategy_ = None
    df = pd.DataFrame({"path": ["/a.wav", "/b.wav", "/c.wav"], "tempo": [100.0, 140.0, 120.0], "split": "test"})
    rep = evaluate_regression(reg, df, tempo_baseline=False)
    assert rep["predictions"]["predicted"]["tempo"] == [20.0, 220.0, 120.0]
    assert any("worse than predicting the training mean" in n for n in rep["notes"])
    reg.model_ = type("Good", (), {"predict_files": lambda self, p, **k: ({q: np.array([t]) for q, t in
                                                                            zip(p, (100.0, 140.0, 120.0))}, [])})()
    assert not any("worse" in n for n in evaluate_regression(reg, df, tempo_baseline=False)["notes"])

def test_tempo_accuracy_definitions():
    from recommender.learn.regression import regression_metrics, tempo_accuracy

    true = np.array([100.0, 100, 100, 100, 100])
    pred = np.array([103.9, 200, 50, 300, 110])
    assert tempo_accuracy(pred, true) == (0.2, 0.8)
    m = regression_metrics(np.array([1.0, 2, 3]), np.array([1.0, 2, 4]))
    assert m["mae"] == pytest.approx(1 / 3) and m["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert m["r2"] == pytest.approx(1 - 1 / (14 / 3))


# --------------------------------------------------------------------------- head: loudness, used like a model
def test_gain_head_regressor_saved_and_used_like_a_model(gain_csv, tmp_path):
    from recommender.learn.regression import (
        MusicRegressor,
        evaluate_regression,
        load_regressor,
    )
    from recommender.models import load_model

    df = split_regression(load_targets(gain_csv), ["energy"], test_size=0.25, validation_size=0.1, random_state=0)
    reg = MusicRegressor("head", patches_per_track=3).fit(df)
    rep = evaluate_regression(reg, df)
    m, base = rep["per_target"]["energy"]["model"], rep["per_target"]["energy"]["mean_baseline"]
    assert "descriptor_tempo" not in rep["per_target"]["energy"]
    assert m["r2"] > 0.5 and m["mae"] < 0.6 * base["mae"], rep["per_target"]
    d = reg.save(tmp_path / "energy")
    assert sorted(os.listdir(d)) == ["model.json", "model.keras", "tracks.json"]
    tm = load_model(d)  # the TagModel view: outputs are the named values
    assert tm.task == "regress" and tm.value_names == ["energy"] and tm.tags == ["energy"]
    P = np.random.default_rng(0).random((2, 187, 96)).astype(np.float32)
    vals, emb = tm.predict_patches(P)
    assert vals.shape == (2, 1) and emb.shape == (2, 200)
    assert set(tm.named_values(vals.mean(0))) == {"energy"}
    test = df[df["split"] == "test"]
    again = load_regressor(d)
    np.testing.assert_allclose(again.predict(test), reg.predict(test), atol=1e-4)
    # the track value is the ridge on the mean embedding: loaded model, index path and predict agree
    from recommender import classify

    c = classify(test["path"].iloc[0], model=d)
    assert list(c.timeline.columns) == ["energy"]
    assert float(c.timeline["energy"].mean()) == pytest.approx(float(again.predict(test.iloc[:1])[0]), abs=0.5)


# --------------------------------------------------------------------------- --where
def test_where_parser_and_filter():
    from recommender.recommend.where import (
        check_columns,
        mask,
        parse_order,
        parse_where,
        passes,
    )

    w = parse_where("energy>0.6 AND tempo_bpm<=130 and mode=minor")
    assert [str(c) for c in w] == ["energy>0.6", "tempo_bpm<=130.0", "mode=minor"]
    assert passes(w, {"energy": 0.7, "tempo_bpm": 130.0, "mode": "Minor"})
    assert not passes(w, {"energy": 0.7, "tempo_bpm": 131.0, "mode": "minor"})
    assert not passes(w, {"energy": None, "tempo_bpm": 120.0, "mode": "minor"})
    frame = pd.DataFrame({"energy": [0.1, 0.9, np.nan], "tempo_bpm": [100.0, 120, 120], "mode": ["minor"] * 3})
    assert list(mask(w, frame)) == [False, True, False]
    check_columns(w, frame.columns)
    with pytest.raises(ParameterError, match=r"no descriptor 'valence' in this index \(known: energy, mode"):
        check_columns(parse_where("valence>1"), frame.columns)
    for bad, pat in (("energy>>1", "> needs a number"), ("mode>minor", "needs a number"),
                     ("", "expected conditions"), ("energy>1 and", "expected NAME OP VALUE"),
                     ("x>inf", "not a finite number")):
        with pytest.raises(ParameterError, match=pat):
            parse_where(bad)
    assert parse_order("-energy") == ("energy", True) and parse_order("energy asc") == ("energy", False)


# --------------------------------------------------------------------------- CLI
def test_cli_train_predict_evaluate_regress(tempo_csv, tmp_path, capsys):
    from recommender.cli.main import main

    out = tmp_path / "tempo_model"
    assert main(["train", str(tempo_csv), "--out", str(out), "--mode", "classical", "--patches", "1",
                 "--test-size", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "task: regress (columns ['tempo'] hold numbers)" in text
    assert "descriptor_tempo" in text and "mean_baseline" in text and "Acc1" in text
    assert os.path.isfile(out / "report" / "scatter_tempo.png")
    wav = str(tempo_csv.parent / "t00.wav")
    assert main(["predict", str(out), wav, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got[0]["values"]) == {"tempo"}
    assert main(["evaluate", str(out), str(tempo_csv), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["task"] == "regress" and rep["n_test"] == 30 - rep["n_train"] - rep["n_validation"]
    # bad input: a clear message naming the line and the rule, exit code 2
    bad = tmp_path / "bad.csv"
    bad.write_text("path,tempo\nt00.wav,120\nt01.wav,fast\n")
    assert main(["train", str(bad), "--out", str(tmp_path / "x"), "--task", "regress"]) == 2
    assert "line 3: column 'tempo' = 'fast' is not a finite number" in capsys.readouterr().err
    assert main(["train", str(tempo_csv), "--out", str(tmp_path / "y"), "--mode", "scratch"]) == 2
    assert "trains in head, finetune, classical mode" in capsys.readouterr().err
