"""``recommender index --quality fast|default|best``: the mapping to sampling policies and the CLI wiring (fast, no audio)."""

import pytest

from recommender.analysis.sampling import QUALITIES, Sampling, quality_sampling
from recommender.cli.main import build_parser
from recommender.errors import ParameterError


def test_levels_are_increasing_patch_counts():
    assert list(QUALITIES) == ["fast", "default", "best"]
    counts = [quality_sampling(q).max_patches for q in QUALITIES]
    assert counts == sorted(counts) and len(set(counts)) == 3
    assert quality_sampling("fast") == Sampling.spread(QUALITIES["fast"])


def test_default_level_is_the_default_sampling():
    from recommender.recommender import DEFAULT_SAMPLING

    assert quality_sampling("default") == DEFAULT_SAMPLING


def test_unknown_level_names_the_parameter():
    with pytest.raises(ParameterError, match="quality='turbo'"):
        quality_sampling("turbo")


def test_cli_flag_parses_and_excludes_other_sampling_flags(capsys):
    p = build_parser()
    assert p.parse_args(["index", "music", "--quality", "best"]).quality == "best"
    assert p.parse_args(["index", "music"]).quality is None
    for other in (["--full"], ["--sampling", "spread:4"]):
        with pytest.raises(SystemExit):
            p.parse_args(["index", "music", "--quality", "fast", *other])
    with pytest.raises(SystemExit):
        p.parse_args(["index", "music", "--quality", "turbo"])
    assert "--quality" in capsys.readouterr().err


def test_cli_passes_the_level_to_the_indexer(monkeypatch, tmp_path):
    import recommender.recommender as facade
    from recommender.cli import index as cli_index

    seen = {}

    class Stop(Exception):
        pass

    def fake(index_dir, *, model=None, sampling=None):
        seen["sampling"] = sampling
        raise Stop

    monkeypatch.setattr(facade, "Recommender", fake)
    args = build_parser().parse_args(["index", str(tmp_path), "--index", str(tmp_path / "ix"), "--quality", "fast"])
    with pytest.raises(Stop):
        cli_index.cmd_index(args)
    assert seen["sampling"] == Sampling.spread(QUALITIES["fast"])
