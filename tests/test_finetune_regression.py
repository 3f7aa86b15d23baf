"""``MusicRegressor("finetune")`` on click tracks of known tempo (issue #21): the network
trained end to end must beat the predict-the-mean baseline on held-out tracks, save in the
safe format and load back predicting the same."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import SYNTH_SR, click_track
from recommender.errors import ParameterError

SR = SYNTH_SR


@pytest.fixture(scope="module")
def tempo_df(tmp_path_factory):
    from recommender.learn._targets import load_targets, split_regression

    root = tmp_path_factory.mktemp("clicks")
    rows = []
    for i, b in enumerate(np.linspace(70, 170, 28)):
        sf.write(root / f"c{i:02d}.wav", click_track(b, i, 10.0, hihat=False), SR)
        rows.append(f"c{i:02d}.wav,{b:.2f}")
    (root / "tempo.csv").write_text("path,tempo\n" + "\n".join(rows) + "\n")
    return split_regression(load_targets(root / "tempo.csv"), ["tempo"], test_size=0.3, validation_size=0.15,
                            random_state=0)


def test_finetune_regressor_beats_the_mean_and_round_trips(tempo_df, tmp_path):
    from recommender.learn.regression import (
        MusicRegressor,
        evaluate_regression,
        load_regressor,
    )
    from recommender.models import load_model

    reg = MusicRegressor("finetune", patches_per_track=4, epochs=3, random_state=0).fit(tempo_df)
    h = reg.history_
    assert 1 <= len(h["epoch"]) <= 3 and np.isfinite(h["loss"]).all() and h["initial_val_rmse"] is not None
    rep = evaluate_regression(reg, tempo_df, tempo_baseline=False)
    m, base = rep["per_target"]["tempo"]["model"], rep["per_target"]["tempo"]["mean_baseline"]
    assert rep["mode"] == "finetune" and rep["n_test"] >= 8
    assert m["mae"] < 0.8 * base["mae"] and m["r2"] > 0.2, rep["per_target"]
    d = reg.save(tmp_path / "ft")
    with open(os.path.join(d, "model.json")) as fh:
        meta = json.load(fh)
    assert meta["mode"] == "finetune" and meta["task"] == "regress" and meta["history"]["best_epoch"] >= 0
    again = load_regressor(d)
    test = tempo_df[tempo_df["split"] == "test"]
    np.testing.assert_allclose(again.predict(test), reg.predict(test), atol=1e-3)
    tm = load_model(d)  # backs classify / index --model like a head regressor
    assert tm.task == "regress" and tm.value_names == ["tempo"] and tm.mode == "finetune"


def test_finetune_parameters_checked(tempo_df):
    from recommender.learn.regression import MusicRegressor

    with pytest.raises(ParameterError, match="epochs"):
        MusicRegressor("finetune", epochs=0).fit(tempo_df)
    with pytest.raises(ParameterError, match="mode"):
        MusicRegressor("scratch").fit(tempo_df)
