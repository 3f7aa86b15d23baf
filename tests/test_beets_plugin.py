"""The beets plugin (``beetsplug/recommender.py``) end to end on fresh beets libraries.

Every command runs through beets' own command line (``python -m beets``) in a
subprocess with its own config directory, exactly as a user would run it:
``plugins: recommender`` in a temporary config, tracks imported as-is with
``beet import -A -q``, then ``beet recanalyze``, ``beet ls``, ``beet similar``
and ``beet radio``.  The expected values come from the ``recommender`` index
the plugin built, read through the library's Python API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("beets", reason="beets is not installed (pip install 'recommender[beets]')")

from recommender import Recommender
from recommender.io.demo import make_demo_collection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # beetsplug/ of this checkout, also when the package is not installed
    sys.path.insert(0, ROOT)


class Beets:
    """One beets installation: a config dir, a library database and the ``beet`` command."""

    def __init__(self, home, *, index=None, options=()):
        self.home = str(home)
        os.makedirs(self.home, exist_ok=True)
        self.config = os.path.join(self.home, "config.yaml")
        self.library = os.path.join(self.home, "library.db")
        lines = [
            f"directory: {os.path.join(self.home, 'music')}",
            f"library: {self.library}",
            "plugins: recommender",
            "import:",
            "    copy: no",
            "    move: no",
            "    write: no",
            "    autotag: no",
            "    threaded: no",
            "    log: null",
        ]
        if index is not None or options:
            lines += ["recommender:"] + ([f"    index: {index}"] if index is not None else [])
            lines += [f"    {o}" for o in options]
        with open(self.config, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def run(self, *args, ok=True):
        env = dict(os.environ, BEETSDIR=self.home, HOME=self.home,
                   PYTHONPATH=os.pathsep.join([ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        proc = subprocess.run([sys.executable, "-m", "beets", "-c", self.config, *args],
                              capture_output=True, text=True, env=env, timeout=600, check=False)
        if ok and proc.returncode != 0:
            raise AssertionError(f"beet {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def lines(self, *args):
        return [line for line in self.run(*args).stdout.splitlines() if line.strip()]

    @property
    def default_index(self):
        return os.path.join(self.home, "recommender-index")


@pytest.fixture(scope="module")
def beets_lib(tmp_path_factory):
    """A fresh beets library of 8 synthetic tracks (4 styles), imported and recanalysed."""
    root = tmp_path_factory.mktemp("beets")
    music = root / "tracks"
    paths = sorted(make_demo_collection(music, per_style=2, duration_s=9.0))
    b = Beets(root / "home")
    b.run("import", "-A", "-q", str(music))
    out = b.run("recanalyze", "-q")
    return b, paths, out


def _fields(b):
    """``{path: {field: text}}`` for every item, as ``beet ls`` prints them."""
    names = ("bpm", "initial_key", "recommender_bpm", "recommender_key", "recommender_mood",
             "recommender_genre", "recommender_id")
    fmt = "\t".join(["$path"] + [f"${n}" for n in names])
    out = {}
    for line in b.lines("ls", "-f", fmt):
        parts = line.split("\t")
        out[parts[0]] = dict(zip(names, parts[1:]))
    return out


def test_plugin_loads_from_the_beetsplug_namespace(beets_lib):
    b, _, _ = beets_lib
    assert "plugins: recommender" in b.run("version").stdout
    # a beetsplug/__init__.py would hide beets' own plugins (beetsplug is a namespace package)
    assert not os.path.exists(os.path.join(ROOT, "beetsplug", "__init__.py"))
    helps = b.run("help").stdout
    for cmd in ("recanalyze", "similar", "radio"):
        assert cmd in helps


def test_recanalyze_stores_the_analysis_as_beets_fields(beets_lib):
    from beetsplug.recommender import beets_key, field_values
    from recommender.recommend import writeback

    b, paths, out = beets_lib
    assert "8 of 8 items analysed" in out.stdout, out.stdout + out.stderr
    assert os.path.isdir(b.default_index)
    rec = Recommender(b.default_index)
    fields = _fields(b)
    assert sorted(fields) == paths
    desc = rec.catalog.descriptors()
    expected = field_values(rec, list(rec.tracks().index))
    want_bpm = {t: int(v["bpm"][0]) for t, v in writeback.track_values(rec.catalog, list(expected)).items()}
    for p, f in fields.items():
        tid = rec.resolve(p)
        assert tid is not None and int(f["recommender_id"]) == tid
        tempo, key, mode = desc.loc[tid, "tempo_bpm"], desc.loc[tid, "key"], desc.loc[tid, "mode"]
        assert int(f["bpm"]) == round(tempo), (p, f, tempo)
        assert int(f["bpm"]) == want_bpm[tid] == expected[tid]["bpm"]  # what `recommender tag` writes
        assert float(f["recommender_bpm"]) == pytest.approx(tempo, abs=0.051)
        assert f["initial_key"] == f["recommender_key"] == beets_key(key, mode)
        want = expected[tid]
        for field in ("recommender_mood", "recommender_genre"):
            assert f[field] == (want[field] if want[field] is not None else f"${field}")
    # every track gets a genre from the demo's clear styles; the techno tracks keep their 128 BPM
    assert all(not f["recommender_genre"].startswith("$") for f in fields.values())
    assert {int(f["bpm"]) for p, f in fields.items() if "/techno/" in p} == {128}


def test_fields_are_in_the_database_only_unless_write_is_asked(beets_lib, tmp_path):
    import mutagen

    _, paths, _ = beets_lib
    flac = [p for p in paths if p.endswith(".flac")]
    for p in flac:
        tags = mutagen.File(p).tags
        assert "bpm" not in tags and "initialkey" not in tags, p
    # -w writes the built-in fields into the file (a copy in its own library)
    music = tmp_path / "one"
    music.mkdir()
    src = next(p for p in flac if "/techno/" in p)
    dst = str(music / os.path.basename(src))
    shutil.copy(src, dst)
    b2 = Beets(tmp_path / "home")
    b2.run("import", "-A", "-q", str(music))
    out = b2.run("recanalyze", "-q").stdout  # database only
    assert "fields changed on 1" in out and "files written" not in out
    assert "bpm" not in mutagen.File(dst).tags
    # -w (with or without --overwrite) writes the file although the fields do not change
    out = b2.run("recanalyze", "-q", "-w", "--overwrite").stdout
    assert "fields changed on 0, files written 1" in out, out
    tags = mutagen.File(dst).tags
    (line,) = b2.lines("ls", "-f", "$bpm\t$initial_key")
    bpm, key = line.split("\t")
    assert tags["bpm"] == [bpm] and bpm == "128"
    assert tags["initialkey"] == [key]
    # the file now agrees with the database: nothing to write
    assert "fields changed on 0, files written 0" in b2.run("recanalyze", "-q", "-w").stdout
    # a tag changed in the file behind beets' back is written again
    f = mutagen.File(dst)
    f["bpm"] = "90"
    f.save()
    assert "files written 1" in b2.run("recanalyze", "-q", "-w").stdout
    assert mutagen.File(dst).tags["bpm"] == ["128"]


def test_bpm_is_rounded_once_like_recommender_tag():
    from beetsplug.recommender import apply_fields
    from recommender.recommend import writeback

    assert writeback.bpm_value(150.543) == 151 and writeback.bpm_value(150.46) == 150
    assert writeback.bpm_value(float("nan")) is None and writeback.bpm_value(0) is None
    values = {"bpm": 151, "recommender_bpm": 150.5, "recommender_key": "Am", "recommender_id": 3}
    item = {}
    assert apply_fields(item, values, overwrite=False)
    assert item["bpm"] == 151 and item["recommender_bpm"] == 150.5 and item["initial_key"] == "Am"
    # a re-analysis with a new tempo replaces the bpm this plugin set (not one set by hand)
    assert apply_fields(item, {**values, "bpm": 149, "recommender_bpm": 149.2}, overwrite=False)
    assert item["bpm"] == 149
    item["bpm"] = 99
    apply_fields(item, {**values, "bpm": 140, "recommender_bpm": 140.0}, overwrite=False)
    assert item["bpm"] == 99


def test_warnings_are_formatted_by_beets_logger(tmp_path):
    music = tmp_path / "m"
    paths = sorted(make_demo_collection(music, per_style=1, duration_s=4.0))
    b = Beets(tmp_path / "home")
    b.run("import", "-A", "-q", str(music))
    gone, broken = paths[0], paths[1]
    os.remove(gone)  # deleted after the import
    with open(broken, "wb") as f:  # no longer audio: analysis fails
        f.write(b"not audio at all" * 64)
    r = b.run("recanalyze", "-q")
    assert "Logging error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert f"{gone}: file not found, skipped" in r.stderr, r.stderr
    assert f"{broken}: not analysed: " in r.stderr, r.stderr
    assert f"{len(paths) - 2} of {len(paths)} items analysed" in r.stdout


def test_beets_queries_use_the_fields(beets_lib):
    b, _, _ = beets_lib
    fields = _fields(b)
    fast = sorted(p for p, f in fields.items() if 120 <= int(f["bpm"]) <= 135)
    assert fast and len(fast) < len(fields)
    assert sorted(b.lines("ls", "-p", "bpm:120..135")) == fast
    genre = fields[fast[0]]["recommender_genre"].split(", ")[0]
    with_genre = sorted(p for p, f in fields.items() if genre in f["recommender_genre"])
    assert sorted(b.lines("ls", "-p", f"recommender_genre:{genre}")) == with_genre
    # recommender_id is typed as an integer field: numeric ranges work
    assert len(b.lines("ls", "-p", "recommender_id:1..3")) == 3


def test_mood_fields_and_their_threshold(beets_lib, tmp_path):
    from beetsplug.recommender import field_values

    b, _, _ = beets_lib
    # the synthetic tracks' moods stay under the default threshold (0.2): a second
    # library on the same index with a lower one (nothing is analysed again)
    b2 = Beets(tmp_path / "home", index=b.default_index, options=["min_probability: 0.05", "max_tags: 3"])
    shutil.copy(b.library, b2.library)
    assert all(f["recommender_mood"] == "$recommender_mood" for f in _fields(b2).values())
    out = b2.run("recanalyze", "-q").stdout
    assert "unchanged 8" in out
    rec = Recommender(b.default_index)
    want = field_values(rec, list(rec.tracks().index), min_p=0.05, max_tags=3)
    fields = _fields(b2)
    moods = set()
    for p, f in fields.items():
        w = want[rec.resolve(p)]
        assert f["recommender_mood"] == (w["recommender_mood"] or "$recommender_mood")
        assert f["recommender_genre"] == w["recommender_genre"]
        assert len(w["recommender_genre"].split(", ")) <= 3
        moods.update(w["recommender_mood"].split(", ") if w["recommender_mood"] else [])
    assert moods
    for m in moods:
        expect = sorted(p for p, f in fields.items() if m in f["recommender_mood"].split(", "))
        assert sorted(b2.lines("ls", "-p", f"recommender_mood:{m}")) == expect
    r = Beets(tmp_path / "bad", index=b.default_index, options=["max_tags: 1.5"]).run("recanalyze", ok=False)
    assert r.returncode != 0 and "recommender.max_tags: 1.5 is not an integer" in r.stderr


def _seed_path(b, query):
    return b.lines("ls", "-p", *query)[0]


def test_similar_prints_the_closest_other_items(beets_lib):
    b, paths, _ = beets_lib
    query = ["path:" + os.path.dirname(next(p for p in paths if "/techno/" in p))]
    seed = _seed_path(b, query)
    got = b.lines("similar", "-n", "3", "-p", *query)
    rec = Recommender(b.default_index)
    want = list(rec.similar(rec.resolve(seed), k=3)["path"])
    assert got == want
    assert seed not in got and len(set(got)) == 3 and set(got) <= set(paths)
    # beets' own format: the default item format, and -f
    default = b.lines("similar", "-n", "2", *query)
    assert len(default) == 2 and all(" - " in line for line in default)
    titled = b.lines("similar", "-n", "7", "-f", "$recommender_id", *query)
    assert sorted(int(t) for t in titled) == sorted(set(rec.tracks().index) - {rec.resolve(seed)})


def test_radio_prints_a_playlist_of_other_items(beets_lib):
    from recommender.recommend import playlists

    b, paths, _ = beets_lib
    query = ["path:" + os.path.dirname(next(p for p in paths if "/ballad/" in p))]
    seed = _seed_path(b, query)
    got = b.lines("radio", "-n", "5", "-p", *query)
    rec = Recommender(b.default_index)
    want = list(playlists.radio(rec, [rec.resolve(seed)], n=5)["path"])
    assert got == want
    assert len(set(got)) == 5 and seed not in got and set(got) <= set(paths)
    # the cap counts the artists the index read from the files (the WAV files have none)
    capped = [int(t) for t in b.lines("radio", "-n", "7", "--max-per-artist", "1", "-f", "$recommender_id", *query)]
    artists = [rec.track(t)["artist"] for t in capped]
    tagged = [a for a in artists if a]
    assert len(tagged) == len(set(tagged)) and len(tagged) >= 2


def test_items_removed_from_beets_are_not_recommended(beets_lib, tmp_path):
    b, paths, _ = beets_lib
    # a second library on the same index (the `index` option), with one item removed
    b2 = Beets(tmp_path / "home", index=b.default_index)
    shutil.copy(b.library, b2.library)
    gone = next(p for p in paths if "/rock/" in p)
    b2.run("rm", "-f", f"path:{gone}")
    assert gone not in b2.lines("ls", "-p")
    query = ["path:" + os.path.dirname(next(p for p in paths if "/techno/" in p))]
    sim = b2.lines("similar", "-n", "10", "-p", *query)
    assert len(sim) == 6 and gone not in sim
    radio = b2.lines("radio", "-n", "10", "-p", *query)
    assert len(radio) == 6 and gone not in radio


def test_existing_bpm_is_kept_unless_overwrite(beets_lib, tmp_path):
    b, paths, _ = beets_lib
    b2 = Beets(tmp_path / "home", index=b.default_index)
    shutil.copy(b.library, b2.library)
    target = next(p for p in paths if "/techno/" in p)
    b2.run("modify", "-y", "bpm=99", f"path:{target}")
    out = b2.run("recanalyze", "-q").stdout
    assert "unchanged 8" in out and "fields changed on 0" in out
    assert b2.lines("ls", "-f", "$bpm", f"path:{target}") == ["99"]
    b2.run("recanalyze", "-q", "--overwrite", f"path:{target}")
    assert b2.lines("ls", "-f", "$bpm", f"path:{target}") == ["128"]


def test_errors_are_plain_messages(beets_lib, tmp_path):
    b, _, _ = beets_lib
    r = b.run("similar", "no-such-track-anywhere", ok=False)
    assert r.returncode != 0 and "no item matches the query" in r.stderr
    r = b.run("radio", "-n", "0", "techno", ok=False)
    assert r.returncode != 0 and "-n 0: must be at least 1" in r.stderr
    fresh = Beets(tmp_path / "home")
    music = tmp_path / "m"
    make_demo_collection(music, per_style=1, duration_s=4.0)
    fresh.run("import", "-A", "-q", str(music))
    r = fresh.run("similar", "ambient", ok=False)
    assert r.returncode != 0 and "run `beet recanalyze` first" in r.stderr


CUE = """PERFORMER "Tux"
TITLE "Three Styles"
FILE "album.flac" WAVE
  TRACK 01 AUDIO
    TITLE "Rock One"
    INDEX 01 00:00:00
  TRACK 02 AUDIO
    TITLE "Techno Two"
    INDEX 01 00:08:00
  TRACK 03 AUDIO
    TITLE "Ballad Three"
    INDEX 01 00:16:00
"""


@pytest.fixture(scope="module")
def cue_lib(tmp_path_factory):
    """A fresh beets library: 4 single tracks and one CUE album (album.flac + album.cue, 3 x 8 s)."""
    import numpy as np
    import soundfile as sf

    from recommender.io.demo import SR, synth_track

    root = tmp_path_factory.mktemp("beets_cue")
    music = root / "tracks"
    singles = sorted(make_demo_collection(music / "singles", per_style=1, duration_s=6.0))
    (music / "cd").mkdir(parents=True)
    album = str(music / "cd" / "album.flac")
    x = np.concatenate([synth_track(s, seed=7, duration_s=8.0) for s in ("rock", "techno", "ballad")])
    sf.write(album, x, SR)
    (music / "cd" / "album.cue").write_text(CUE, encoding="utf-8")
    b = Beets(root / "home")
    b.run("import", "-A", "-q", str(music))
    out = b.run("recanalyze", "-q")
    return b, singles, album, out


def test_cue_album_item_is_analysed_as_its_tracks(cue_lib):
    b, singles, album, out = cue_lib
    assert album in b.lines("ls", "-p")  # beets: one item for the file
    assert "5 of 5 items analysed (1 CUE album item(s) as 3 cue tracks, no fields stored on them)" in out.stdout, \
        out.stdout + out.stderr
    assert "not analysed" not in out.stderr, out.stderr
    rec = Recommender(b.default_index)
    tr = rec.tracks()
    cue = tr[tr["source_path"] == album].sort_values("start_s")
    assert list(cue["title"]) == ["Rock One", "Techno Two", "Ballad Three"] and len(tr) == 7
    for (start, end), (_, row) in zip(((0, 8), (8, 16), (16, 24)), cue.iterrows()):
        assert abs(row["start_s"] - start) <= 0.05 and abs(row["end_s"] - end) <= 0.05
    # no tempo/key of one cue track pretends to be the album item's
    assert b.lines("ls", "-f", "$bpm|$recommender_id", f"path:{album}") == ["0|$recommender_id"]
    assert all(line != "0|$recommender_id" for line in b.lines("ls", "-f", "$bpm|$recommender_id", "path:" +
                                                                os.path.dirname(singles[0])))


def test_cue_album_item_as_seed_and_cue_tracks_in_the_answers(cue_lib):
    from recommender.recommend import playlists

    b, singles, album, _ = cue_lib
    rec = Recommender(b.default_index)
    tr = rec.tracks()
    cue = [int(t) for t in tr[tr["source_path"] == album].sort_values("start_s").index]
    q = [f"path:{album}"]
    # the album item stands for its first cue track; -t N for track N; -p prints the cue tracks' index paths
    assert b.lines("similar", "-n", "4", "-p", *q) == list(rec.similar(cue[0], k=4)["path"])
    got = b.lines("similar", "-n", "4", "-p", "-t", "2", *q)
    assert got == list(rec.similar(cue[1], k=4)["path"]) and tr.at[cue[1], "path"] not in got
    assert b.lines("radio", "-n", "4", "-p", "--track", "3", *q) == \
        list(playlists.radio(rec, [cue[2]], n=4)["path"])
    # in beets' own format, a cue track is its album item plus which track it is
    seed = ["path:" + singles[0]]
    lines = b.lines("similar", "-n", "6", *seed)
    marked = sorted(line.split(" [cue track ")[1] for line in lines if " [cue track " in line)
    assert marked == ["1/3: Rock One]", "2/3: Techno Two]", "3/3: Ballad Three]"], lines
    assert len(lines) == 6
    r = b.run("similar", "-t", "4", *q, ok=False)
    assert r.returncode != 0 and "is a CUE album of 3 tracks" in r.stderr
    r = b.run("radio", "-t", "2", *seed, ok=False)
    assert r.returncode != 0 and "is not a CUE album in the index" in r.stderr
