"""Trained models behind an index (issue #21): a regressor's outputs become per-track
descriptors that ``--where`` filters and ``--sort`` orders by; a multi-label model's
thresholded outputs are the index's tags (``--tag``); ``where`` wired through
:func:`recommender.recommend.query.similar`, the facade, the CLI and the web API.

Data made so the answer is known: tracks at known gains (a loudness target a head
regressor learns from the embedding), and mixtures of known instruments.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import SYNTH_SR, gain_track, write_mix_csv
from recommender.errors import ParameterError

SR = SYNTH_SR


@pytest.fixture(scope="module")
def energy_index(tmp_path_factory):
    """``(index dir, model dir, {path: gain})``: 16 tracks indexed with a head regressor of their gain."""
    from recommender import Recommender
    from recommender.learn._targets import load_targets, split_regression
    from recommender.learn.regression import MusicRegressor

    root = tmp_path_factory.mktemp("energy")
    music = root / "music"
    music.mkdir()
    gains = np.linspace(-36, 0, 16)
    rows, truth = [], {}
    for i, g in enumerate(gains):
        p = music / f"g{i:02d}.wav"
        sf.write(p, gain_track(g, 50 + i), SR)
        rows.append(f"{p.name},{g:.2f}")
        truth[str(p)] = float(g)
    (music / "gain.csv").write_text("path,energy\n" + "\n".join(rows) + "\n")
    df = split_regression(load_targets(music / "gain.csv"), ["energy"], test_size=0.25, validation_size=0.1,
                          random_state=0)
    model = MusicRegressor("head", patches_per_track=3).fit(df).save(root / "energy_model")
    rec = Recommender(str(root / "index"), model=model, sampling="spread:3")
    rep = rec.update([str(music)], progress=False, fingerprints=False)
    assert rep.added == 16 and rep.failed == 0, rep
    return str(root / "index"), model, truth


def test_regressor_values_are_descriptors(energy_index):
    from recommender import Recommender

    index, _, truth = energy_index
    rec = Recommender(index)
    cat = rec.catalog
    assert cat.get_meta("value_names") == ["energy"]
    d = cat.descriptors()
    assert "energy" in d.columns and d["energy"].notna().all()
    paths = cat.tracks()["path"]
    pred = d["energy"].reindex(paths.index).to_numpy()
    true = np.array([truth[p] for p in paths])
    # the stored value is the model's prediction of the known gain (a learned, not a copied value)
    assert np.corrcoef(pred, true)[0, 1] > 0.8
    # the estimator's own descriptors are still there
    assert "loudness_db" in d.columns and d["tempo_bpm"].notna().any()



def test_index_values_are_clipped_like_predict(energy_index):
    """The values ``index --model`` stores are clipped to the model's target range, as predict() clips."""
    from recommender.models import load_model

    _, model, _ = energy_index
    tm = load_model(model)
    lo, hi = np.asarray(tm.target_range).reshape(-1, 2)[0]
    assert lo < -36 and hi > 0  # the training range (-36..0 dB) widened by half its span
    assert tm.named_values([1e6]) == {"energy": pytest.approx(hi)}
    assert tm.named_values([-1e6]) == {"energy": pytest.approx(lo)}
    assert tm.named_values([-10.0]) == {"energy": pytest.approx(-10.0)}


def test_regressor_index_has_no_tags(energy_index):
    from recommender import Recommender
    from recommender.errors import ParameterError

    rec = Recommender(energy_index[0])
    cat = rec.catalog
    assert cat.get_meta("tags") == [] and cat.output_names() == ["energy"]
    hint = r"built with a regressor \(values: energy\): it has no tags; use --where"
    for kw in ({"tag": "energy"}, {"space": "tags"}, {"space": "both"}):
        with pytest.raises(ParameterError, match=hint):
            rec.similar(1, k=3, **kw)
    assert rec.classify(1).to_json()["tags"] == {}
    assert len(rec.similar(1, k=3, space="embedding")) == 3

def test_where_filters_and_sort_orders_by_model_values(energy_index):
    from recommender import Recommender

    index, _, _ = energy_index
    rec = Recommender(index)
    d = rec.catalog.descriptors()
    cut = float(d["energy"].median())
    q = int(d["energy"].idxmin())
    df = rec.similar(q, k=15, where=f"energy>{cut}")
    expect = set(d.index[d["energy"] > cut]) - {q}
    assert len(df) == len(expect) and set(df["id"]) == expect and "energy" in df.columns
    assert (df["energy"] > cut).all()
    both = rec.similar(q, k=15, where=f"energy>{cut} and loudness_db<0")
    assert set(both["id"]) <= expect
    from recommender.recommend.query import similar

    srt = similar(rec, q, k=15, where=f"energy>{cut}", sort="-energy")
    assert list(srt["energy"]) == sorted(srt["energy"], reverse=True) and list(srt["rank"]) == list(range(1, len(srt) + 1))
    assert set(srt["id"]) == expect
    for bad, pat in (("valence>0.5", r"no descriptor 'valence' in this index \(known: .*energy"),
                     ("energy>>1", "needs a number")):
        with pytest.raises(ParameterError, match=pat):
            rec.similar(q, k=3, where=bad)
    with pytest.raises(ParameterError, match="^sort: no descriptor 'valence'"):
        similar(rec, q, k=3, sort="valence")
    with pytest.raises(ParameterError, match="only 'and' may join conditions"):
        similar(rec, q, k=3, where="energy>1 or energy<-40")


def test_cli_similar_where_and_sort(energy_index, capsys):
    from recommender.cli.main import main

    index, _, _ = energy_index
    assert main(["similar", "1", "--index", index, "-k", "20", "--where", "energy>-12", "--sort=-energy",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["energy"] > -12 for r in rows)
    assert [r["energy"] for r in rows] == sorted((r["energy"] for r in rows), reverse=True)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert main(["similar", "1", "--index", index, "--where", "danceability>1"]) == 2
    err = capsys.readouterr().err
    assert "no descriptor 'danceability'" in err and "energy" in err
    assert main(["similar", "1", "--index", index, "--where", "energy>1000"]) == 0
    out = capsys.readouterr().out
    assert "no track matches --where 'energy>1000'" in out and "Empty DataFrame" not in out


def test_serve_similar_where(energy_index):
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from recommender.serve.app import create_app

    index, _, _ = energy_index
    with TestClient(create_app(index)) as c:
        r = c.get("/api/tracks/1/similar", params={"k": 20, "where": "energy>-12"})
        assert r.status_code == 200, r.text
        ids = {row["id"] for row in r.json()}
        from recommender import Recommender

        d = Recommender(index).catalog.descriptors()
        assert ids == set(d.index[d["energy"] > -12]) - {1}
        bad = c.get("/api/tracks/1/similar", params={"where": "valence>1"})
        assert bad.status_code == 400 and "valence" in bad.text


def test_value_column_keeps_the_estimators_names():
    from recommender.recommend.indexer import value_column

    assert value_column("energy") == "energy" and value_column("tempo_bpm") == "tempo_bpm_model"


# --------------------------------------------------------------------------- multi-label: tags by threshold
INSTRUMENTS = ("bass", "hats")


def test_multilabel_model_tags_are_thresholded(tmp_path, capsys):
    from recommender import Recommender
    from recommender.learn._targets import load_targets, split_multilabel
    from recommender.learn.multilabel import MultiLabelClassifier

    music = tmp_path / "music"
    music.mkdir()
    write_mix_csv(music, INSTRUMENTS, [(1, 0), (0, 1), (1, 1)], rounds=5)
    df = split_multilabel(load_targets(music / "mix.csv"), list(INSTRUMENTS), test_size=0.3, validation_size=0.2,
                          random_state=0)
    clf = MultiLabelClassifier("head", patches_per_track=3).fit(df)
    d = clf.save(tmp_path / "mix_model")
    rec = Recommender(str(tmp_path / "index"), model=d, sampling="spread:3")
    assert rec.update([str(music)], progress=False, fingerprints=False).added == 15
    cat = rec.catalog
    th = cat.get_meta("tag_thresholds")
    assert th == [float(t) for t in clf.thresholds_] and cat.get_meta("tags") == list(INSTRUMENTS)
    assert rec.info()["tag_thresholds"] == dict(zip(INSTRUMENTS, th))
    ids, P = cat.vectors("tags")
    q = int(ids[0])
    for j, label in enumerate(INSTRUMENTS):
        got = set(rec.similar(q, k=20, tag=label)["id"])
        expect = {int(i) for i, p in zip(ids, P) if p[j] >= th[j]} - {q}
        # (other copies of the query's recording never appear: near-identical synthetic mixes may go)
        assert got <= expect and len(got) >= 0.7 * len(expect), (label, got, expect)
    # with 2 labels "among the top 5" would keep every track: the threshold is what decides
    assert any(p[0] < th[0] for p in P)
    # classify / predict / evaluate with the same multi-label model
    from recommender.cli.main import main

    wav = str(music / "m01.wav")  # hats only
    assert main(["classify", wav, "--model", d, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)[0]
    assert set(got["labels"]) <= set(INSTRUMENTS) and "tags" in got
    assert main(["classify", wav, "--model", d]) == 0
    assert "labels: " in capsys.readouterr().out
    assert main(["predict", d, wav, "--json"]) == 0
    assert "hats" in json.dumps(json.loads(capsys.readouterr().out))
    assert main(["evaluate", d, str(music / "mix.csv"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["task"] == "multilabel" and set(rep["per_label"]) == set(INSTRUMENTS)


def test_cli_classify_predict_evaluate_with_a_head_regressor(energy_index, capsys):
    from recommender.cli.main import main

    _, model, truth = energy_index
    wav = max(truth, key=truth.get)  # the loudest track
    assert main(["classify", wav, "--model", model, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)[0]
    assert set(got["values"]) == {"energy"} and np.isfinite(got["values"]["energy"])
    assert main(["classify", wav, "--model", model]) == 0
    assert "energy" in capsys.readouterr().out
    assert main(["predict", model, wav, "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)[0]["values"]["energy"]
    assert pred == pytest.approx(got["values"]["energy"], abs=0.5)
    csv = str(next(iter(truth)).rsplit("/", 1)[0] + "/gain.csv")
    assert main(["evaluate", model, csv, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["task"] == "regress" and "mean_baseline" in rep["per_target"]["energy"]


def test_explain_on_a_regressor_index_claims_no_tags(energy_index):
    """An index built with a regressor has no tags: explanations compare descriptors only."""
    from recommender import Recommender
    from recommender.recommend.explanations import explain

    rec = Recommender(energy_index[0])
    ids = list(rec.catalog.tracks().index[:2])
    e = explain(rec, int(ids[0]), int(ids[1]))
    assert e.shared_tags == [] and e.different_tags == [] and "tagged" not in e.sentence


def test_info_names_the_model_values(energy_index):
    from recommender import Recommender

    info = Recommender(energy_index[0]).info()
    assert info["model_values"] == ["energy"] and "tag_thresholds" not in info


def test_describe_prints_a_regressors_values(energy_index, capsys):
    from recommender.cli.main import main

    _, model, truth = energy_index
    path = sorted(truth)[0]
    assert main(["describe", path, "--model", model, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)[0]
    assert set(got["values"]) == {"energy"} and np.isfinite(got["values"]["energy"])
    assert main(["describe", path, "--model", model, "--tags"]) == 2  # a regressor has no tags
    assert "regressor" in capsys.readouterr().err
