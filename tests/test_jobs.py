"""``jobs``: the rule that picks the analysis processes (issue #20), and that
worker processes give the same results as one process."""

import numpy as np
import pytest
import soundfile as sf

from recommender.analysis import parallel
from recommender.analysis.parallel import JOBS_AUTO, check_jobs, resolve_jobs
from recommender.errors import ParameterError


@pytest.mark.parametrize("cores, n_files, expected", [
    (1, 1000, 1), (2, 10, 1), (2, 100, 1), (2, 1000, 1), (3, 1000, 1),  # one process keeps 2 cores busy
    (4, 10, 1), (4, 63, 1), (4, 64, 2), (4, 1000, 2),  # a worker needs 32 files to pay
    (16, 100, 3), (16, 1000, 8), (16, None, 8),
])
def test_auto_rule(cores, n_files, expected):
    assert resolve_jobs("auto", n_files, cores=cores) == expected


@pytest.mark.parametrize("jobs, cores, n_files, expected", [
    (1, 16, 1000, 1),  # never raised
    (2, 2, 1000, 1),  # lowered by the same rule: 2 processes on 2 cores were slower
    (4, 16, 1000, 4), (4, 16, 64, 2), (64, 16, 10_000, 8),
])
def test_explicit_jobs_is_an_upper_bound(jobs, cores, n_files, expected):
    assert resolve_jobs(jobs, n_files, cores=cores) == expected


def test_auto_uses_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_count", lambda: 8)
    assert resolve_jobs("auto", 1000) == 4
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    assert resolve_jobs("auto", 1000) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two", None, "0"])
def test_bad_jobs_named_in_the_error(bad):
    with pytest.raises(ParameterError, match=r"jobs=.*'auto' or a whole number >= 1"):
        check_jobs(bad)
    with pytest.raises(ParameterError, match="jobs="):
        resolve_jobs(bad, 10)


def test_check_jobs_accepts_auto_in_any_case():
    assert check_jobs("AUTO") == JOBS_AUTO and check_jobs(" auto ") == JOBS_AUTO and check_jobs(3) == 3


def test_cli_jobs_option():
    from recommender.cli.main import build_parser

    p = build_parser()
    assert p.parse_args(["index", "x"]).jobs == "auto"
    assert p.parse_args(["index", "x", "--jobs", "3"]).jobs == 3
    with pytest.raises(SystemExit):
        p.parse_args(["index", "x", "--jobs", "0"])


@pytest.fixture(scope="module")
def short_tracks(tmp_path_factory):
    d = tmp_path_factory.mktemp("jobs")
    rng = np.random.default_rng(0)
    t = np.arange(4 * 16000) / 16000
    paths = []
    for i in range(3):
        y = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.05 * rng.normal(size=t.size)
        p = str(d / f"t{i}.wav")
        sf.write(p, y.astype(np.float32), 16000)
        paths.append(p)
    return paths


def test_workers_give_the_results_of_one_process(short_tracks):
    """Two loky workers (the model loaded by name and precision in each) agree with this process."""
    from recommender.models import load_model

    m = load_model()
    one = {r.path: r for r in parallel.analyse_parallel(short_tracks, model=m, jobs=1)}
    auto = {r.path: r for r in parallel.analyse_parallel(short_tracks, model=m, jobs="auto")}
    two = {r.path: r for r in parallel.analyse_processes(short_tracks, model=m, sampling=None, jobs=2)}
    assert set(one) == set(auto) == set(two) == set(short_tracks)
    for p in short_tracks:
        np.testing.assert_array_equal(one[p].patch_embeddings, auto[p].patch_embeddings)
        np.testing.assert_allclose(one[p].patch_embeddings, two[p].patch_embeddings, atol=1e-5)
        np.testing.assert_allclose(one[p].patch_probs, two[p].patch_probs, atol=1e-6)


def test_worker_loads_the_parents_precision():
    from recommender.models import load_model

    m = load_model(precision="float32")
    assert parallel._model_ref(m) == ("msd-musicnn", "float32")
