"""Profiles, explanations, timelines, pictures and the describe/explain/plot/timeline CLI."""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from recommender.errors import NotInIndexError, ParameterError

SR = 22050
MSD_TAGS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
]


# --------------------------------------------------------------------------- audio helpers
def _clicks(bpm, *, seconds=8.0, freq=1000.0, gain=0.8):
    y = np.zeros(int(seconds * SR), np.float32)
    t = np.arange(int(0.03 * SR)) / SR
    click = (np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.008)).astype(np.float32)
    for s in np.arange(0.0, seconds - 0.05, 60.0 / bpm):
        i = int(s * SR)
        y[i : i + click.size] += gain * click
    return y


def _write(path, y):
    sf.write(path, y, SR, subtype="PCM_16")
    return str(path)


@pytest.fixture(scope="module")
def rec(demo_collection, tmp_path_factory):
    """An index over the 8-track demo collection (built once for this module)."""
    from recommender import Recommender

    root, _ = demo_collection
    r = Recommender(tmp_path_factory.mktemp("explain_index"))
    r.update([root], progress=False)
    return r


@pytest.fixture(scope="module")
def ids(rec):
    """{style: [track ids]} of the demo index."""
    out = {}
    for tid, row in rec.tracks().iterrows():
        out.setdefault(os.path.basename(os.path.dirname(row["path"])), []).append(int(tid))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def quiet_then_loud(tmp_path_factory):
    """12 s of soft ambient pads, then 12 s of loud techno (WAV)."""
    from recommender.io.demo import synth_track

    y = np.concatenate([0.05 * synth_track("ambient", seed=3, duration_s=12.0),
                        synth_track("techno", seed=4, duration_s=12.0)]).astype(np.float32)
    return _write(tmp_path_factory.mktemp("tl") / "quiet_then_loud.wav", y)


# --------------------------------------------------------------------------- profiles
def test_tag_groups_msd_mtt_and_unknown():
    from recommender.analysis.profiles import GROUPS, tag_groups

    g = tag_groups(MSD_TAGS)
    assert list(g) == ["genre", "mood", "instruments", "era"]  # every MSD tag is known
    assert sum(len(v) for v in g.values()) == 50
    assert {"60s", "70s", "80s", "90s", "00s", "oldies"} == set(g["era"])
    assert {"Mellow", "happy", "sad", "chill", "party", "beautiful", "sexy", "catchy", "easy listening"} <= set(g["mood"])
    assert {"guitar", "female vocalists", "male vocalists", "instrumental", "acoustic"} <= set(g["instruments"])
    assert {"rock", "jazz", "Hip-Hop", "House", "rnb", "Progressive rock"} <= set(g["genre"])

    mtt = ["guitar", "classical", "slow", "techno", "strings", "no vocals", "female voice", "opera", "new age"]
    g2 = tag_groups(mtt + ["kazoo", "1990s"])
    assert set(g2["genre"]) == {"classical", "techno", "opera", "new age"}
    assert "slow" in g2["mood"] and "no vocals" in g2["instruments"]
    assert g2["other"] == ["kazoo"] and g2["era"] == ["1990s"]
    assert set(g2) <= set(GROUPS)
    with pytest.raises(ParameterError):
        tag_groups("rock")


def test_profile_and_text_on_known_series():
    from recommender.analysis.profiles import profile, profile_text

    p = pd.Series(0.01, index=MSD_TAGS)
    p[["electronic", "dance", "House", "party", "happy", "instrumental", "00s", "90s"]] = [
        0.62, 0.41, 0.12, 0.30, 0.05, 0.35, 0.22, 0.04]
    prof = profile(p, top=2)
    assert prof["genre"] == [("electronic", pytest.approx(0.62)), ("dance", pytest.approx(0.41))]
    assert prof["mood"][0] == ("party", pytest.approx(0.30))
    assert prof["instruments"][0][0] == "instrumental"
    assert prof["era"][0] == ("00s", pytest.approx(0.22))
    assert all(isinstance(x[1], float) for items in prof.values() for x in items)
    assert profile_text(p) == "electronic/dance, party mood, instrumental, 00s"
    assert profile_text(prof) == profile_text(p)  # a profile dict works too
    # synonyms count once; weak groups are left out
    q = pd.Series({"female vocalists": 0.4, "female vocalist": 0.38, "rock": 0.05})
    assert profile_text(q) == "female vocals"
    assert profile_text(pd.Series({"rock": 0.01})) == "no clear tags"
    assert profile(p, top=1, min_p=0.3) == {"genre": [("electronic", pytest.approx(0.62))],
                                            "mood": [("party", pytest.approx(0.30))],
                                            "instruments": [("instrumental", pytest.approx(0.35))]}
    with pytest.raises(ParameterError, match="top"):
        profile(p, top=0)
    with pytest.raises(ParameterError, match="probs"):
        profile([0.1, 0.2])


# --------------------------------------------------------------------------- explanations
def test_explain_same_style_shares_tags(rec, ids):
    from recommender.recommend.explanations import Explanation, explain

    a, b = ids["techno"]
    e = explain(rec, a, b)
    assert isinstance(e, Explanation) and (e.a_id, e.b_id) == (a, b)
    assert e.shared_tags, e
    top_shared = e.shared_tags[0][0]
    assert e.sentence.startswith("Both are tagged ") and top_shared.lower() in e.sentence.lower()
    for t, pa, pb in e.shared_tags:
        assert min(pa, pb) >= 0.1
    assert not {t for t, *_ in e.shared_tags} & {t for t, *_ in e.different_tags}
    # both techno tracks are at 128 BPM: similar tempo, said with the numbers
    assert "similar tempo (128 vs 128 BPM)" in e.sentence
    # far apart styles score lower and list differing tags
    far = explain(rec, a, ids["ambient"][0])
    assert far.score < e.score <= 1.0 + 1e-6
    assert far.different_tags and "more ambient" in far.sentence
    d = e.descriptor_diffs
    assert list(d.columns) == ["descriptor", "a", "b", "difference", "comment"]
    assert {"tempo_bpm", "key", "loudness_db", "spectral_centroid_mean"} <= set(d["descriptor"])
    row = d.set_index("descriptor").loc["loudness_db"]
    assert row["difference"] == pytest.approx(row["b"] - row["a"])
    j = e.to_json()
    json.dumps(j, allow_nan=False)
    assert j["sentence"] == e.sentence and j["shared_tags"][0]["tag"] == top_shared


def test_explain_files_mentions_tempo(rec, tmp_path):
    from recommender.recommend.explanations import explain

    a = _write(tmp_path / "clicks80.wav", _clicks(80))
    b = _write(tmp_path / "clicks160.wav", _clicks(160))
    e = explain(rec, a, b)  # files outside the index, analysed on the fly
    assert e.a_id is None and e.a == "clicks80.wav"
    tempo = e.descriptor_diffs.set_index("descriptor").loc["tempo_bpm"]
    assert tempo["a"] == pytest.approx(80, rel=0.03) and tempo["b"] == pytest.approx(160, rel=0.03)
    assert "twice as fast (160 vs 80 BPM)" in e.sentence
    assert e.shared_tags and e.sentence.startswith("Both are tagged")
    # a quieter copy: loudness difference in LUFS, B "much quieter"
    c = _write(tmp_path / "clicks80_quiet.wav", 0.1 * _clicks(80))
    q = explain(rec, a, c, labels=("the original", "the copy"))
    assert "the copy is much quieter" in q.sentence and "LUFS" in q.sentence
    assert "similar tempo (80 vs 80 BPM)" in q.sentence
    with pytest.raises(NotInIndexError):
        explain(rec, a, str(tmp_path / "missing.wav"))
    with pytest.raises(NotInIndexError):
        explain(rec, a, 999_999)


def test_explain_results_annotates_similar(rec, ids):
    from recommender.recommend.explanations import explain_results

    q = ids["rock"][0]
    df = rec.similar(q, k=3)
    why = explain_results(rec, q, df)
    assert len(why) == len(df) == 3
    assert all(isinstance(s, str) and s.endswith(".") and len(s) > 20 for s in why)
    assert any("this one" in s or "the query" in s for s in why)
    with pytest.raises(ParameterError):
        explain_results(rec, q, df[["rank", "score"]])


# --------------------------------------------------------------------------- timelines
def test_timeline_and_changes_find_the_loud_part(quiet_then_loud):
    from recommender.analysis.profiles import TIMELINE_COLUMNS, changes, timeline

    tl = timeline(quiet_then_loud, segment_s=6.0)
    assert list(tl.columns[: len(TIMELINE_COLUMNS)]) == TIMELINE_COLUMNS
    assert tl["start_s"].tolist() == [0.0, 6.0, 12.0, 18.0]
    assert len(tl.attrs["tags"]) == 50 and set(tl.attrs["tags"]) <= set(tl.columns)
    probs = tl[tl.attrs["tags"]].to_numpy()
    assert np.all((probs >= 0) & (probs <= 1))
    assert tl["loudness_db"].iloc[2] > tl["loudness_db"].iloc[1] + 15
    assert tl["tempo_bpm"].iloc[3] == pytest.approx(128, rel=0.03)
    ch = changes(tl)
    assert list(ch.columns) == ["time_s", "kind", "before", "after", "description"]
    loud = ch[ch["kind"] == "loudness"]
    assert loud["time_s"].tolist() == [12.0]
    assert "gets louder" in loud["description"].iloc[0]
    assert changes(tl.iloc[:2]).query("kind == 'loudness'").empty
    # the same on a waveform (with sr) gives the same segments
    y, sr = sf.read(quiet_then_loud, dtype="float32")
    tl2 = timeline(y, sr=sr, segment_s=6.0)
    np.testing.assert_allclose(tl2["loudness_db"], tl["loudness_db"], atol=0.01)
    with pytest.raises(ParameterError, match="sr"):
        timeline(y)


# --------------------------------------------------------------------------- pictures
@pytest.mark.parametrize("kind", ["waveform", "spectrogram", "mfcc", "chroma", "taggram"])
def test_each_plot_kind_writes_a_real_png(kind, quiet_then_loud, tmp_path):
    import matplotlib.image

    from recommender.viz import plots

    out = tmp_path / "sub" / f"{kind}.png"
    fig = plots.plot(quiet_then_loud, kind=kind, out=out)
    assert fig.axes and fig.axes[0].get_title(loc="left")
    assert fig.axes[0].get_xlabel().startswith("time")
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(str(out))
    h, w = img.shape[:2]
    assert w == 1000 and 250 <= h <= 700
    assert float(img[..., :3].var()) > 0.01  # not blank
    assert not [p for p in os.listdir(out.parent) if p.endswith(".part")]
    if kind in ("spectrogram", "mfcc", "chroma", "taggram"):
        assert len(fig.axes) == 2  # plot + colorbar


def test_plot_arrays_and_errors(tmp_path):
    from recommender.viz import plots

    y = _clicks(120, seconds=4.0)
    fig = plots.spectrogram(y, sr=SR, out=tmp_path / "s.png", title="clicks")
    assert fig.axes[0].get_title(loc="left") == "clicks"
    with pytest.raises(ParameterError, match="kind"):
        plots.plot(y, kind="histogram", sr=SR)
    with pytest.raises(ParameterError, match="sr"):
        plots.waveform(y)


# --------------------------------------------------------------------------- CLI
def _cli(argv, capsys):
    from recommender.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_describe_json_keys_and_bad_file(tmp_path, capsys):
    good = _write(tmp_path / "good.wav", _clicks(120, seconds=6.0))
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all")
    rc, out, err = _cli(["describe", good, "--json", "--clip", "5"], capsys)
    assert rc == 0
    [d] = json.loads(out)
    assert {"path", "tempo_bpm", "key", "mode", "duration_s", "loudness_db"} <= set(d)
    assert d["duration_s"] == pytest.approx(5.0) and d["tempo_bpm"] == pytest.approx(120, rel=0.03)
    assert "profile" not in d

    csv = tmp_path / "d.csv"
    rc, out, err = _cli(["describe", str(bad), good, "--csv", str(csv)], capsys)
    assert rc == 1
    assert "bad.wav" in err and "error" in err
    assert "good.wav" in out and "BPM" in out and "bad.wav" not in out
    df = pd.read_csv(csv)
    assert df["path"].tolist() == [str(bad), good]
    assert df["error"].notna().tolist() == [True, False]

    rc, out, err = _cli(["describe", good, str(bad), "--json", "--tags", "--top", "2"], capsys)
    assert rc == 1 and "bad.wav" in err
    ok, failed = json.loads(out)
    assert set(ok["profile"]) <= {"genre", "mood", "instruments", "era", "other"}
    assert all(len(v) <= 2 for v in ok["profile"].values())
    assert isinstance(ok["profile_text"], str) and failed["error"]


def test_cli_explain_plot_timeline(rec, ids, quiet_then_loud, tmp_path, capsys):
    a, b = ids["techno"][0], ids["ballad"][0]
    rc, out, err = _cli(["explain", str(a), str(b), "--index", rec.index_dir, "--json"], capsys)
    assert rc == 0
    j = json.loads(out)
    assert j["a_id"] == a and j["b_id"] == b and j["sentence"].endswith(".")
    assert -1.0 <= j["score"] <= 1.0
    rc, out, err = _cli(["explain", str(a), str(b), "--index", rec.index_dir], capsys)
    assert rc == 0 and "similarity" in out and "tempo_bpm" in out

    png = tmp_path / "w.png"
    rc, out, err = _cli(["plot", quiet_then_loud, "--kind", "waveform", "--out", str(png)], capsys)
    assert rc == 0 and png.read_bytes()[:4] == b"\x89PNG"
    rc, out, err = _cli(["plot", str(tmp_path / "nope.wav"), "--kind", "chroma", "--out", str(png)], capsys)
    assert rc == 1 and "nope.wav" in err

    rc, out, err = _cli(["timeline", quiet_then_loud, "--json"], capsys)
    assert rc == 0
    j = json.loads(out)
    assert len(j["segments"]) == len(j["probs"]) == 4 and len(j["tags"]) == 50
    assert any(c["kind"] == "loudness" and c["time_s"] == 12.0 for c in j["changes"])
    rc, out, err = _cli(["timeline", quiet_then_loud], capsys)
    assert rc == 0 and "changes:" in out and "gets louder" in out
    assert math.isfinite(j["segments"][0]["loudness_db"])
