"""Silence is not music (issue #16, case 07): silent and inaudible tracks are
flagged (``audio_flag``) and get no tempo, key or tags; a song that ends in
silence, and normal songs, are not flagged; ``describe`` and the index agree."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from recommender import descriptors as D
from recommender.analysis.results import TrackAnalysis
from recommender.analysis.tagging import Classification
from recommender.descriptors import level as L
from recommender.errors import ParameterError
from recommender.io.demo import synth_track

SR = D.DESCRIPTOR_SR


def _strict(obj) -> str:
    return json.dumps(obj, allow_nan=False)


def _zeros(s=30.0):
    return np.zeros(int(s * SR), dtype=np.float32)


def _hiss(s=30.0, dbfs=-90.0, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(s * SR)) * 10 ** (dbfs / 20)).astype(np.float32)


def _song(s=30.0, style="techno", seed=1):
    return synth_track(style, seed=seed, duration_s=s, sr=SR).astype(np.float32)


def _music_then_silence():
    y = _zeros(40.0)
    y[: 3 * SR] = _song(3.0)
    return y


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    sf = pytest.importorskip("soundfile")
    d = tmp_path_factory.mktemp("silence")
    out = {}
    for name, y in [("silent", _zeros()), ("hiss", _hiss()), ("partly", _music_then_silence()),
                    ("song", _song())]:
        p = d / f"{name}.flac"
        sf.write(p, y, SR, subtype="PCM_24")
        out[name] = str(p)
    return out


# ------------------------------------------------------------------ the measure
def test_flag_of_waveforms():
    assert L.audio_flag(_zeros()) == "silent"
    assert L.audio_flag(np.zeros(0, np.float32)) == "silent"
    assert L.audio_flag(_hiss()) == "inaudible"
    assert L.audio_flag(_music_then_silence()) is None
    for style in ("ballad", "techno", "rock", "ambient"):
        assert L.audio_flag(_song(10.0, style)) is None, style


def test_thresholds():
    # silent: peak under -120 dBFS; just above it is inaudible, not silent
    assert L.audio_flag(np.full(SR, 0.9e-6, np.float32)) == "silent"
    assert L.audio_flag(_hiss(2.0, -118.0)) == "inaudible"
    # inaudible: loudest 400-ms block under -70 LUFS (a 997 Hz sine at A dBFS reads about A - 3 LUFS)
    t = np.arange(3 * SR) / SR
    sine = np.sin(2 * np.pi * 997 * t).astype(np.float32)
    assert L.audio_flag(sine * 10 ** (-69.0 / 20)) == "inaudible"  # about -72 LUFS
    assert L.audio_flag(sine * 10 ** (-65.0 / 20)) is None  # about -68 LUFS
    # one loud block is enough
    y = _zeros(60.0)
    y[SR : SR + SR // 2] = sine[: SR // 2] * 0.1
    assert L.audio_flag(y) is None
    assert L.flag_from_levels(0.0, 0.0) == "silent"
    assert L.flag_from_levels(math.nan, math.nan) == "silent"
    assert L.flag_from_levels(0.5, 0.0) == "inaudible"
    assert L.flag_from_levels(0.5, 1e-3) is None


def test_patch_candidates():
    assert L.patches_look_flagged(0.0)
    assert L.patches_look_flagged(math.nan)
    assert L.patches_look_flagged(-math.inf)
    assert not L.patches_look_flagged(L.PATCH_LOGMEL_MAX)
    assert not L.patches_look_flagged(5.0)
    # the musicnn front end on silence, hiss and a song, against the threshold
    from recommender.features import frontend as F
    from recommender.io.audio import resample

    def level(y):
        return float(F.logmel(resample(y, sr_orig=SR, sr_target=F.SR)).max())

    assert L.patches_look_flagged(level(_zeros(5.0)))
    assert L.patches_look_flagged(level(_hiss(5.0)))
    assert not L.patches_look_flagged(level(_song(5.0)))


# ------------------------------------------------------------------ descriptors
@pytest.mark.parametrize("make,flag", [(_zeros, "silent"), (_hiss, "inaudible")])
def test_describe_claims_nothing_for_flagged_audio(make, flag):
    d = D.describe(make(), sr=SR)
    assert list(d) == D.DESCRIPTOR_COLUMNS
    assert math.isnan(d["tempo_bpm"]) and d["tempo_confidence"] == 0.0
    assert d["key"] is None and d["mode"] is None and d["key_confidence"] == 0.0
    assert math.isnan(d["loudness_db"])
    assert L.flag_of_descriptors(d) == flag


def test_describe_normal_and_partly_silent():
    d = D.describe(_song(), sr=SR)
    assert L.flag_of_descriptors(d) is None and 100 < d["tempo_bpm"] < 160 and d["key"] is not None
    d = D.describe(_music_then_silence(), sr=SR)
    assert L.flag_of_descriptors(d) is None and math.isfinite(d["tempo_bpm"]) and d["key"] is not None


def test_flag_of_descriptors(files):
    assert L.flag_of_descriptors({"audio_flag": "inaudible", "loudness_db": -20.0}) == "inaudible"
    assert L.flag_of_descriptors({"loudness_db": -20.0}, files["silent"]) is None  # a number: not flagged
    assert L.flag_of_descriptors({"loudness_db": None, "rms_mean": 0.0}) == "silent"
    assert L.flag_of_descriptors({"loudness_db": math.nan, "rms_mean": 1e-5}) == "inaudible"
    # with the file, the whole file decides
    assert L.flag_of_descriptors({"loudness_db": math.nan, "rms_mean": 0.0}, files["hiss"]) == "inaudible"
    assert L.flag_of_descriptors({"loudness_db": math.nan}, files["partly"]) is None


def test_excerpts_confirmed_on_the_whole_file(files):
    # excerpts all in the silence of the partly silent file: the whole file is described
    whole = D.describe_file(files["partly"])
    at = D.describe_at(files["partly"], [10.0, 20.0, 30.0, 35.0], 2.5)
    assert at["audio_flag"] is None and L.flag_of_descriptors(whole, files["partly"]) is None
    assert list(at) == ["path"] + D.DESCRIPTOR_COLUMNS + ["audio_flag"]
    assert at["duration_s"] == pytest.approx(40.0) and at["tempo_bpm"] == pytest.approx(whole["tempo_bpm"])
    assert (at["key"], at["mode"]) == (whole["key"], whole["mode"])
    ex = D.describe_file(files["partly"], clip_s=10.0, n_excerpts=4)
    assert ex["duration_s"] == pytest.approx(40.0) and ex["tempo_bpm"] == pytest.approx(whole["tempo_bpm"])
    assert ex["mfcc_3_mean"] == pytest.approx(whole["mfcc_3_mean"]) and ex["key"] == whole["key"]
    # a plain excerpt is described as it is (the user asked for that part), the flag is the file's
    part = D.describe_file(files["partly"], offset_s=20.0, clip_s=5.0)
    assert math.isnan(part["loudness_db"]) and L.flag_of_descriptors(part, files["partly"]) is None
    for name, flag in [("silent", "silent"), ("hiss", "inaudible"), ("song", None)]:
        at = D.describe_at(files[name], [2.0, 10.0, 18.0, 25.0], 2.5)
        assert at["audio_flag"] == flag == L.flag_of_descriptors(D.describe_file(files[name])), name
        if flag:
            assert math.isnan(at["tempo_bpm"]) and at["key"] is None and at["duration_s"] == pytest.approx(30.0)


def test_describe_files_claims_nothing_for_silence(files):
    df = D.describe_files([files["silent"], files["song"]])
    assert df["key"].tolist()[0] is None and df["key"].tolist()[1] is not None
    assert df["loudness_db"].isna().tolist() == [True, False]


def test_file_flags_and_probe(files):
    for name, flag in [("silent", "silent"), ("hiss", "inaudible"), ("partly", None), ("song", None)]:
        assert L.file_audio_flag(files[name]) == flag, name
        assert L.probe_audio_flag(files[name]) == flag, name


# ------------------------------------------------------------------ analysis results
def _analysis(path=None, descriptors=None, patch_level=None, audio_flag=None):
    return TrackAnalysis(path=path, duration_s=30.0, starts_s=np.zeros(1), patch_probs=np.full((1, 3), 0.2),
                         patch_embeddings=np.zeros((1, 4)), sampling={"mode": "full"},
                         descriptors=descriptors, patch_level=patch_level, audio_flag=audio_flag)


def test_track_analysis_flag(files):
    assert _analysis().audio_flag is None
    assert _analysis(descriptors={"audio_flag": "silent"}).audio_flag == "silent"
    assert _analysis(descriptors={"loudness_db": -20.0}, patch_level=0.0).audio_flag is None
    assert _analysis(files["hiss"], descriptors={"loudness_db": math.nan}).audio_flag == "inaudible"
    # descriptors win over the patches (they are confirmed on the whole file)
    assert _analysis(files["partly"], descriptors={"audio_flag": None}, patch_level=0.0).audio_flag is None
    assert _analysis(files["silent"], patch_level=0.0).audio_flag == "silent"
    assert _analysis(files["hiss"], patch_level=0.0).audio_flag == "inaudible"
    assert _analysis(files["partly"], patch_level=0.0).audio_flag is None  # confirmed: not flagged
    assert _analysis(files["silent"], patch_level=5.0).audio_flag is None  # not a candidate
    assert _analysis(None, patch_level=0.0).audio_flag is None  # nothing to confirm on
    assert _analysis(audio_flag="inaudible").audio_flag == "inaudible"
    with pytest.raises(ParameterError, match="audio_flag"):
        _analysis(audio_flag="quiet")


def test_classification_claims_no_tag_when_flagged():
    import pandas as pd

    tags = pd.Series({"rock": 0.2, "pop": 0.1})
    c = Classification(path="x", tags=tags, embedding=np.zeros(2), timeline=pd.DataFrame(), duration_s=30.0,
                       model="m", audio_flag="silent")
    assert c.top(3) == []
    j = c.to_json(top=3)
    assert j["top"] == [] and j["audio_flag"] == "silent" and set(j["tags"]) == {"rock", "pop"}
    _strict(j)
    c.audio_flag = None
    assert c.top(1) == [("rock", 0.2)] and c.to_json()["audio_flag"] is None
    with pytest.raises(ParameterError):
        c.top(0)


# ------------------------------------------------------------------ end to end
def test_classify_flags(files):
    pytest.importorskip("onnxruntime")
    from recommender.analysis.tagging import classify

    c = classify(_zeros(10.0), sr=SR)
    assert c.audio_flag == "silent" and c.top() == []
    assert classify(np.stack([_hiss(10.0)] * 2, axis=1), sr=SR).audio_flag == "inaudible"
    assert classify(_song(10.0), sr=SR).audio_flag is None
    for name, flag in [("silent", "silent"), ("hiss", "inaudible"), ("partly", None), ("song", None)]:
        c = classify(files[name], sampling="spread:8")
        assert c.audio_flag == flag, name
        assert (c.top() == []) == (flag is not None)
        _strict(c.to_json())


@pytest.mark.parametrize("sampling", ["spread:8", "full"])
def test_analyze_files_descriptors_agree_with_describe(files, sampling):
    pytest.importorskip("onnxruntime")
    from recommender.analysis.pipeline import analyze_files

    expected = {"silent": "silent", "hiss": "inaudible", "partly": None, "song": None}
    paths = [files[k] for k in expected]
    got = {r.path: r for r in analyze_files(paths, sampling=sampling, descriptors=True, on_error="raise")}
    for name, p in zip(expected, paths):
        res, whole = got[p], D.describe_file(p)
        flag = expected[name]
        assert res.audio_flag == L.flag_of_descriptors(whole, p) == flag, (name, sampling)
        if flag is not None:
            assert math.isnan(res.descriptors["tempo_bpm"]) and res.descriptors["key"] is None
    part = got[files["partly"]].descriptors
    whole = D.describe_file(files["partly"])
    assert part["tempo_bpm"] == pytest.approx(whole["tempo_bpm"]) and part["key"] == whole["key"]


def test_cli_describe_json_is_strict(files, capsys):
    from recommender.cli import main

    rc = main(["describe", "--json", files["silent"], files["hiss"], files["partly"], files["song"]])
    assert rc == 0
    out = capsys.readouterr().out
    rows = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert [r["audio_flag"] for r in rows] == ["silent", "inaudible", None, None]
    for r in rows[:2]:
        assert r["tempo_bpm"] is None and r["tempo_confidence"] is None and r["key"] is None
        assert r["loudness_db"] is None
    assert rows[2]["tempo_bpm"] is not None and rows[3]["key"] is not None
    main(["describe", files["silent"]])
    assert "silent: nothing to hear" in capsys.readouterr().out
