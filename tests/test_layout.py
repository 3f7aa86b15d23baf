"""The layered package: old indexes and models answer identically, old module
paths still import (with a DeprecationWarning), imports only run down, nothing
changes process state at import, and no module/class/function grows past the
limits the architecture review set.

The legacy fixture (``tests/fixtures/legacy_0_1``) was written by the release
before the move (commit 5da7340) with ``tests/fixtures/make_legacy_fixture.py``.
"""

import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import recommender

HERE = os.path.dirname(os.path.abspath(__file__))
LEGACY = os.path.join(HERE, "fixtures", "legacy_0_1")
PKG = os.path.dirname(os.path.abspath(recommender.__file__))

OLD_PATHS = {
    "audio": "io.audio", "collection": "io.collection", "demo": "io.demo",
    "parallel": "analysis.parallel", "tagging": "analysis.tagging", "profiles": "analysis.profiles",
    "catalog": "store.catalog", "index": "store.faiss_index", "representations": "contrib.representations",
    "playlists": "recommend.playlists", "explore": "recommend.explore",
    "explanations": "recommend.explanations", "datasets": "learn.datasets",
    "training": "learn.classifier", "plots": "viz.plots", "cli_describe": "cli.describe",
    "cli_playlists": "cli.playlists", "cli_train": "cli.train",
}


@pytest.fixture(scope="module")
def expected():
    with open(os.path.join(LEGACY, "expected.json")) as fh:
        return json.load(fh)


# --------------------------------------------------------------------------- on-disk formats
def test_legacy_index_answers_identically(tmp_path, expected):
    from recommender import Recommender

    idx = tmp_path / "index"
    shutil.copytree(os.path.join(LEGACY, "index"), idx)
    rec = Recommender(idx)
    assert len(rec) == 8
    for key, want in expected["similar"].items():
        tid, space = key.split(":")
        df = rec.similar(int(tid), k=5, space=space)
        assert list(df["id"]) == want["ids"], key
        np.testing.assert_allclose(df["score"], want["scores"], rtol=0, atol=1e-6, err_msg=key)
    rec.close()


def test_legacy_catalog_rebuilds_the_same_faiss_files(tmp_path, expected):
    """The space recipes are unchanged: FAISS files rebuilt from the old catalog give the same answers."""
    from recommender import Recommender

    idx = tmp_path / "index"
    shutil.copytree(os.path.join(LEGACY, "index"), idx)
    for f in os.listdir(idx):
        if ".faiss" in f:
            os.remove(idx / f)
    rec = Recommender(idx)
    for key, want in expected["similar"].items():
        tid, space = key.split(":")
        df = rec.similar(int(tid), k=5, space=space)
        assert list(df["id"]) == want["ids"], key
        np.testing.assert_allclose(df["score"], want["scores"], rtol=0, atol=1e-5, err_msg=key)
    rec.close()


@pytest.mark.parametrize("mode", ["classical", "head"])
def test_legacy_trained_models_predict_identically(tmp_path, expected, mode):
    from recommender.io.demo import synth_track
    from recommender.learn.classifier import load_classifier

    want = expected["classifiers"][mode]
    paths = []
    for style in want["probe_styles"]:
        p = str(tmp_path / f"probe_{style}.wav")
        sf.write(p, synth_track(style, seed=99, duration_s=9.0), 16000)
        paths.append(p)
    model_dir = tmp_path / mode
    shutil.copytree(os.path.join(LEGACY, f"model_{mode}"), model_dir)
    clf = load_classifier(model_dir)
    assert [str(c) for c in clf.classes_] == want["classes"]
    np.testing.assert_allclose(clf.predict_proba(paths), want["proba"], rtol=0, atol=1e-5)
    if mode == "head":  # the same file also backs classify/index through load_model
        from recommender.models import load_model

        m = load_model(str(model_dir))
        assert m.tags == want["classes"]


# --------------------------------------------------------------------------- old paths, public face
@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_module_paths_import_with_a_deprecation_warning(old):
    code = (
        "import warnings, importlib\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module('recommender.{old}')\n"
        f"new = importlib.import_module('recommender.{OLD_PATHS[old]}')\n"
        "assert old is new, (old, new)\n"
        "msgs = [str(x.message) for x in w if issubclass(x.category, DeprecationWarning)]\n"
        f"assert any('recommender.{OLD_PATHS[old]}' in m for m in msgs), msgs\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_error_is_in_errors_and_all():
    from recommender import errors

    classes = [v for v in vars(errors).values()
               if isinstance(v, type) and issubclass(v, Exception) and not v.__name__.startswith("_")]
    for cls in classes:
        assert cls.__module__ == "recommender.errors"
        if cls.__name__.endswith("Error"):
            assert cls.__name__ in recommender.__all__, cls
            assert cls.__name__ in dir(recommender)
    for name in recommender.__all__:
        assert getattr(recommender, name) is not None


def test_public_names_of_the_previous_release_still_resolve():
    lazy = ["Recommender", "classify", "Classification", "Sampling", "analyze_file", "analyze_files",
            "analyze_waveform", "load_model", "available_models", "load_audio", "describe",
            "describe_file", "describe_files", "explain", "profile", "profile_text", "timeline"]
    for name in lazy:
        assert callable(getattr(recommender, name)), name
    from recommender.analysis import PipelineStats, Sampling, analyze_files, patch_starts  # noqa: F401
    from recommender.descriptors import DESCRIPTOR_COLUMNS, describe  # noqa: F401
    from recommender.features import FRONTEND_PARAMS, SR, logmel, patches  # noqa: F401
    from recommender.recommender import CATALOG_NAME, DEFAULT_INDEX_DIR, DEFAULT_SAMPLING, SPACES  # noqa: F401
    from recommender.cli import build_parser, main  # noqa: F401


# --------------------------------------------------------------------------- layers
def _module_name(path):
    rel = os.path.relpath(path, os.path.dirname(PKG))[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _import_graph():
    files = [os.path.join(d, f) for d, _, fs in os.walk(PKG) for f in fs if f.endswith(".py")]
    mods = {_module_name(f): f for f in files}
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        is_pkg = f.endswith("__init__.py")
        with open(f, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):  # imports inside functions count
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = m.split(".") if is_pkg else m.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in mods and t != m and not (is_pkg and t.startswith(m + ".")):
                    graph[m].add(t)
    return graph


DEPRECATED_ALIASES = {f"recommender.{old}" for old in OLD_PATHS}


def test_no_import_cycle_inside_the_package():
    graph = {m: e - DEPRECATED_ALIASES for m, e in _import_graph().items() if m not in DEPRECATED_ALIASES}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def strong(v, counter=[0]):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    assert cycles == []


def test_no_module_class_or_function_past_the_limits():
    """~900 lines a module, ~500 a class, ~120 a function (audio.py: one topic, kept whole)."""
    whole = {"recommender.io.audio"}
    over = []
    for d, _, fs in os.walk(PKG):
        for f in fs:
            if not f.endswith(".py"):
                continue
            path = os.path.join(d, f)
            name = _module_name(path)
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            if text.count("\n") > 900 and name not in whole:
                over.append(f"{name}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    n = node.end_lineno - node.lineno + 1
                    limit = 500 if isinstance(node, ast.ClassDef) else 120
                    if n > limit:
                        over.append(f"{name}.{node.name}: {n} lines")
    assert over == []


def test_importing_the_library_changes_no_process_state():
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import recommender.store.faiss_index, recommender.recommend.explore, recommender.recommend.playlists\n"
        "import recommender.viz.plots, recommender.learn.classifier, recommender.models, recommender.recommender\n"
        "import recommender.cli.main\n"
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())\n"
        "assert matplotlib.get_backend().lower() == 'svg', matplotlib.get_backend()\n"
        "import recommender.models as m\n"
        "assert not hasattr(m, 'QUIET_STARTUP'), 'mutable module global'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_drawing_a_map_leaves_the_matplotlib_backend_alone(tmp_path):
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import numpy as np\n"
        "from recommender.viz import plots\n"
        "fig = plots.figure((3, 2))\n"
        "fig.add_subplot(1, 1, 1).plot(np.arange(3))\n"
        f"plots.save(fig, {str(tmp_path / 'x.png')!r})\n"
        "assert matplotlib.get_backend().lower() == 'svg', matplotlib.get_backend()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.path.getsize(tmp_path / "x.png") > 0


def test_import_contract_is_declared_for_the_ci_guard():
    """.ci/run runs ``lint-imports`` on the [importlinter] contract in setup.cfg."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(HERE, "..", "setup.cfg"))
    layers = [line.strip() for line in cfg["importlinter:contract:layers"]["layers"].splitlines() if line.strip()]
    assert layers[0] == "recommender.cli" and layers[-1] == "recommender.errors"
    with open(os.path.join(HERE, "..", ".ci", "run")) as fh:
        assert "lint-imports" in fh.read()
