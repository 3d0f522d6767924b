"""The evaluation table (livedance.eval.suite) and the ``livedance eval`` command, on synthetic
dances whose speed minima fall on the clicks of their own synthetic songs."""

from __future__ import annotations

import json
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from livedance.errors import ConfigError, DataError
from livedance.eval import EvalConfig, MusicBeatCache, derangement, evaluate, find_motions, save_motion

SR = 22050
SECONDS = 8.0
FPS = 25.0
TEMPI = (96.0, 120.0, 150.0, 108.0)


@dataclass
class StubClip:
    """Stands in for livedance.data.dataset.MotionClip in these tests only."""

    name: str
    style: str
    fps: float
    positions: np.ndarray
    audio_path: Path
    audio_offset_s: float
    beat_aligned: bool


def click_song(path: Path, bpm: float, first_beat_s: float, seconds: float) -> np.ndarray:
    import soundfile as sf

    rng = np.random.default_rng(int(bpm))
    audio = 0.001 * rng.normal(size=int(seconds * SR))
    beats = np.arange(first_beat_s, seconds - 0.05, 60.0 / bpm)
    burst = rng.normal(size=int(0.015 * SR)) * np.hanning(int(0.015 * SR))
    for b in beats:
        i = int(b * SR)
        audio[i : i + burst.size] += 0.8 * burst
    sf.write(path, audio.astype(np.float32), SR)
    return beats


def dance_on(beats_s: np.ndarray, n_frames: int, seed: int) -> np.ndarray:
    """A swaying dancer whose mean joint speed dips on every beat (speed minima = motion beats)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames - 1) / FPS
    period = float(np.median(np.diff(beats_s)))
    phase = 2 * np.pi * (t - beats_s[0]) / period
    speed = 0.01 * (1.05 - np.cos(phase))  # metres per frame, minima on the beats
    base = rng.normal(scale=0.3, size=(24, 3)) + [0.0, 1.0, 0.0]
    base[15] = base[0] + [0.0, 0.6, 0.0]  # the head above the pelvis (eval --motions checks metres, y up)
    direction = rng.normal(size=(24, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    direction[15] = direction[0]  # ... and travelling with it
    x = np.concatenate([[0.0], np.cumsum(speed)])
    wobble = 0.02 * np.sin(2 * np.pi * np.arange(n_frames)[:, None, None] / (3 + seed) + direction)
    return (base[None] + x[:, None, None] * direction[None] + wobble).astype(np.float32)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_songs")
    clips = []
    for i, bpm in enumerate(TEMPI):
        path = root / f"song{i}.wav"
        offset = 1.0  # the dance starts 1 s into the song
        beats = click_song(path, bpm, 0.3, SECONDS + offset)
        own = beats[beats >= offset] - offset
        pos = dance_on(own, int(SECONDS * FPS), seed=i)
        clips.append(StubClip(f"clip{i}", "synthetic", FPS, pos, path, offset, beat_aligned=(i != 3)))
    return root, clips


def test_derangement_is_deterministic_and_has_no_fixed_points():
    for n in (2, 3, 10, 38):
        perm = derangement(n, seed=0)
        assert sorted(perm.tolist()) == list(range(n))
        assert np.all(perm != np.arange(n))
        np.testing.assert_array_equal(perm, derangement(n, seed=0))
    assert not np.array_equal(derangement(38, 0), derangement(38, 1))
    keys = ["a", "a", "b", "b"]
    perm = derangement(4, seed=3, keys=keys)
    assert all(keys[i] != keys[perm[i]] for i in range(4))
    with pytest.raises(DataError, match="at least 2"):
        derangement(1, 0)


def test_feature_outliers_name_the_clip_and_the_rare_feature():
    from livedance.eval.suite import feature_outliers

    rng = np.random.default_rng(0)
    ref = rng.normal(0.5, 0.1, size=(26, 32))
    ref[:, 16] = 0.001 * rng.standard_normal(26)  # a pose the reference dances (almost) never make
    gen = rng.normal(0.5, 0.1, size=(6, 32))
    gen[:, 16] = 0.0
    gen[3, 16] = 0.3  # one clip makes it 30 % of the time
    z, dim = feature_outliers(gen, ref)
    assert int(np.argmax(z)) == 3 and int(dim[3]) == 16 and z[3] > 100
    assert np.all(z[[0, 1, 2, 4, 5]] < 10)
    with pytest.raises(DataError):
        feature_outliers(gen[:, :31], ref)


def test_a_row_names_the_clip_that_dominates_fid_in_its_notes():
    from livedance.eval.suite import EvalClip, FeatureSet, _row

    rng = np.random.default_rng(1)
    ref = FeatureSet([f"r{i}" for i in range(26)], rng.normal(size=(26, 72)), rng.normal(0.5, 0.1, (26, 32)), np.ones(26))
    ref.geometric[:, 16] = 0.001 * rng.standard_normal(26)
    geo = rng.normal(0.5, 0.1, (4, 32))
    geo[:, 16] = 0.0
    clips = [EvalClip(f"c{i}", np.zeros((3, 24, 3)), 25.0, Path(f"s{i}.wav"), 0.0, False) for i in range(4)]
    music = [(Path(f"s{i}.wav"), 0.0) for i in range(4)]

    def row(g):
        feats = FeatureSet([c.name for c in clips], rng.normal(size=(4, 72)), g, np.ones(4))
        return _row("gen", clips, feats, ref, np.arange(4), np.full(4, 0.2), music, None, ["base note"])

    quiet = row(geo.copy())
    assert quiet.notes == ["base note"]
    geo[2, 16] = 0.3  # clip c2 holds a pose the reference never makes
    loud = row(geo)
    assert loud.notes[0] == "base note" and len(loud.notes) == 2
    assert "clip c2" in loud.notes[1] and "feature 16" in loud.notes[1] and "rankle" in loud.notes[1]
    assert loud.per_clip[2]["max_zg_feature"] == 16 and loud.per_clip[2]["max_zg"] > 100


def test_reference_rows_own_song_beats_wrong_song(songs, tmp_path):
    _, clips = songs
    cache = MusicBeatCache(tmp_path / "cache")
    report = evaluate(clips, clips[:3], config=EvalConfig(fps=FPS, seed=0), cache=cache)
    gt, wrong = report.rows
    assert gt.label == "ground truth" and wrong.label == "real dance, wrong song"
    # only the music changes: FID, Div and PFC are those of the same dances
    for k in ("FIDk", "FIDg", "Divk", "Divg", "PFC"):
        assert gt.metrics[k] == wrong.metrics[k]
        assert np.isfinite(gt.metrics[k])
    # BAS reads the 3 beat-aligned clips of 4
    assert gt.beat_aligned == 3 and gt.bas_clips == 3
    assert gt.metrics["BAS"] > 0.7
    assert gt.metrics["BAS"] > wrong.metrics["BAS"] + 0.15
    assert all(p != i for i, p in enumerate(report.derangement))
    assert any("it holds 3 of the 4 scored dances" in n for n in gt.notes)  # the reference is clips[:3]
    own = [c["music"] for c in gt.per_clip]
    assert all(c["max_zg"] >= 0 and 0 <= c["max_zg_feature"] < 32 for c in gt.per_clip)
    assert all(a != b for a, b in zip(own, (c["music"] for c in wrong.per_clip)))
    # the second run reads every music beat track from the cache
    computed = cache.misses
    assert computed == 4  # one per song (the wrong-song excerpts reuse the own-song ones where they coincide)
    again = evaluate(clips, clips[:3], config=EvalConfig(fps=FPS, seed=0), cache=cache)
    assert cache.misses == computed and cache.hits > 0
    assert again.rows[0].metrics == gt.metrics


def test_resampled_motions_row_matches_ground_truth(songs, tmp_path):
    """Saving the real dances as 50 fps motion files must give (almost) the ground-truth row."""
    from livedance.eval import resample_positions

    root, clips = songs
    out = tmp_path / "motions"
    for c in clips:
        save_motion(out / f"{c.name}.npz", resample_positions(c.positions, FPS, 50.0), 50.0,
                    c.audio_path, c.audio_offset_s)  # fmt: skip
    report = evaluate(clips, clips, {"motions": find_motions(out)}, EvalConfig(fps=FPS), MusicBeatCache(tmp_path / "c"))
    gt, _, mot = report.rows
    assert mot.label == "motions" and mot.n_clips == 4 and mot.bas_clips == 4
    assert mot.metrics["FIDk"] == pytest.approx(gt.metrics["FIDk"], abs=1e-6)
    assert mot.metrics["Divg"] == pytest.approx(gt.metrics["Divg"], abs=1e-6)


def test_a_dance_left_with_its_own_song_is_named_in_the_wrong_song_rows_notes(songs, tmp_path):
    """Three dances of which two share a song: every derangement gives some dance its own song back; the row says
    which (it flatters that row's BAS), and a split without such a clash has no such note."""
    from dataclasses import replace

    _, clips = songs
    shared = [clips[0], replace(clips[1], audio_path=clips[0].audio_path), clips[2]]
    report = evaluate(shared, clips, config=EvalConfig(fps=FPS, seed=0), cache=MusicBeatCache(tmp_path))
    wrong = report.rows[1]
    notes = [n for n in wrong.notes if "kept their own song" in n]
    assert len(notes) == 1 and notes[0].startswith("1 dance(s)")
    plain = evaluate(clips[:3], clips, config=EvalConfig(fps=FPS, seed=0), cache=MusicBeatCache(tmp_path))
    assert not any("kept their own song" in n for n in plain.rows[1].notes)


def test_the_upstream_ee_reaches_fidk_and_divk_only_and_is_named(songs, tmp_path):
    """EvalConfig.kinetic_ee="upstream" changes the kinetic features (FIDk, Divk) and nothing else, and the report
    says so (a row note and the JSON's kinetic_ee), so its numbers are not mixed up with the default's."""
    _, clips = songs
    cache = MusicBeatCache(tmp_path)
    plain = evaluate(clips, clips[:3], config=EvalConfig(fps=FPS, seed=0), cache=cache)
    up = evaluate(clips, clips[:3], config=EvalConfig(fps=FPS, seed=0, kinetic_ee="upstream"), cache=cache)
    a, b = plain.rows[0].metrics, up.rows[0].metrics
    assert a["FIDk"] != b["FIDk"] and a["Divk"] != b["Divk"]
    assert all(a[k] == b[k] for k in ("FIDg", "Divg", "BAS", "PFC"))
    assert any("EE 'upstream'" in n for n in up.rows[0].notes)
    assert not any("EE '" in n for n in plain.rows[0].notes)
    assert up.to_dict()["kinetic_ee"] == "upstream" and plain.to_dict()["kinetic_ee"] == "physical"


@dataclass
class RotClip(StubClip):
    """A stub dance with joint rotations, a root path and its dancer's skeleton (as a dataset MotionClip)."""

    local_rotmats: np.ndarray = None
    root_translation: np.ndarray = None
    rest_offsets: np.ndarray = None


def test_real_dances_are_scored_on_one_skeleton_so_a_dancers_size_is_no_diversity(songs, tmp_path):
    """The same motion danced by a small and a tall dancer: on their own skeletons the two differ (Divk > 0);
    on the shared skeleton (the default, the mean of the reference dancers') they are one dance (Divk 0), and the
    positions scored are FK on that mean."""
    from scipy.spatial.transform import Rotation

    from livedance.data.dataset import smpl24_positions
    from livedance.eval import EvalClip, shared_skeleton
    from livedance.live.rest import default_rest_offsets

    _, clips = songs
    n = int(SECONDS * FPS)
    rng = np.random.default_rng(0)
    t = np.arange(n) / FPS
    rotvec = 0.3 * np.sin(2 * np.pi * 1.5 * t[:, None, None] + rng.uniform(0, 6, size=(1, 22, 3)))
    rotmats = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(n, 22, 3, 3).astype(np.float32)
    root = np.stack([0.3 * np.sin(t), np.zeros(n), 0.2 * t], axis=1).astype(np.float32)
    base = default_rest_offsets()[:22]
    dancers = []
    for k, scale in enumerate((0.9, 1.1)):
        off = (base * scale).astype(np.float32)
        c = clips[k]
        dancers.append(RotClip(f"dancer{k}", "synthetic", FPS, smpl24_positions(rotmats, root, off), c.audio_path,
                               c.audio_offset_s, True, rotmats, root, off))
    canon = shared_skeleton(dancers)
    np.testing.assert_allclose(canon, base, atol=1e-6)  # the mean of 0.9x and 1.1x
    np.testing.assert_allclose(EvalClip.from_clip(dancers[1], canon).positions,
                               smpl24_positions(rotmats, root, canon), atol=1e-6)
    cache = MusicBeatCache(tmp_path)
    own = evaluate(dancers, dancers, config=EvalConfig(fps=FPS, skeleton="own"), cache=cache)
    one = evaluate(dancers, dancers, config=EvalConfig(fps=FPS), cache=cache)
    assert own.rows[0].metrics["Divk"] > 0.1 and one.rows[0].metrics["Divk"] < 1e-6
    assert any("own skeletons" in n_ for n_ in own.rows[0].notes)
    assert one.to_dict()["skeleton"] == "shared" and own.to_dict()["skeleton"] == "own"
    with pytest.raises(DataError, match="skeleton"):
        evaluate(dancers, dancers, config=EvalConfig(fps=FPS, skeleton="mine"), cache=cache)


def test_evaluate_needs_two_clips(songs, tmp_path):
    _, clips = songs
    with pytest.raises(DataError, match="at least 2"):
        evaluate(clips[:1], clips, cache=MusicBeatCache(tmp_path))


def _stub_dataset(monkeypatch, clips):
    """Make ``livedance.data.dataset.load_split`` return the synthetic clips."""

    def load_split(name, *args, **kwargs):
        return clips if name == "test" else clips[:3]

    try:
        import livedance.data.dataset as real

        monkeypatch.setattr(real, "load_split", load_split)
    except ImportError:  # the dataset module is not there yet: a throwaway module for this test
        stub = types.ModuleType("livedance.data.dataset")
        stub.load_split = load_split
        monkeypatch.setitem(sys.modules, "livedance.data.dataset", stub)


def test_cli_prints_table_and_writes_json(songs, tmp_path, monkeypatch, capsys):
    from livedance.cli import main

    _, clips = songs
    monkeypatch.setenv("LIVEDANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    _stub_dataset(monkeypatch, clips)
    mdir = tmp_path / "gen"
    for c in clips[:2]:
        save_motion(mdir / f"{c.name}.npz", c.positions[::-1].copy(), FPS, c.audio_path, c.audio_offset_s)
    out_json = tmp_path / "res.json"
    code = main(["eval", "--split", "test", "--motions", str(mdir), "--json", str(out_json), "--seed", "2"])
    text = capsys.readouterr().out
    assert code == 0
    assert "ground truth" in text and "real dance, wrong song" in text and "motions (gen)" in text
    data = json.loads(out_json.read_text())
    assert [r["label"] for r in data["rows"]] == ["ground truth", "real dance, wrong song", "motions (gen)"]
    assert data["seed"] == 2 and data["fps"] == FPS
    assert (tmp_path / "cache" / "music_beats").is_dir()
    assert "MM-Dist" in text and "R@1" in text  # the shipped retrieval model's columns (scored in the next test)
    assert main(["eval", "--split", "test", "--motions", str(mdir), "--json", str(out_json), "--no-retrieval"]) == 0
    assert all("R@1" not in r for r in json.loads(out_json.read_text())["rows"])
    assert "R@1" not in capsys.readouterr().out


def test_alignment_columns_score_each_row_against_its_own_pairing(songs, tmp_path, monkeypatch):
    from livedance.eval.suite import EvalClip, alignment_figures
    from livedance.model.retrieval import MusicDanceRetrieval

    _, clips = songs
    monkeypatch.setenv("LIVEDANCE_CACHE", str(tmp_path / "cache"))
    model, _ = MusicDanceRetrieval.load()
    cfg = EvalConfig(fps=FPS, seed=1)
    mdir = tmp_path / "gen"
    for c in clips:  # each clip's dance to the next clip's song
        nxt = clips[(clips.index(c) + 1) % len(clips)]
        save_motion(mdir / f"{c.name}.npz", c.positions, FPS, nxt.audio_path, nxt.audio_offset_s)
    one = tmp_path / "one_song"  # two dances to one song: MM-Dist, but no R@1 (no other song to draw against)
    for c in clips[:2]:
        save_motion(one / f"{c.name}.npz", c.positions, FPS, clips[0].audio_path, 1.0)
    report = evaluate(clips, clips[:3], {"gen": find_motions(mdir), "one": find_motions(one)}, cfg,
                      MusicBeatCache(tmp_path / "beats"), retrieval=model)
    gt = [EvalClip.from_clip(c) for c in clips]
    own = [(c.audio_path, c.audio_offset_s) for c in gt]
    wrong = [own[int(i)] for i in report.derangement]
    gen = sorted(find_motions(mdir), key=lambda m: m.name)
    expected = {
        "ground truth": alignment_figures(model, gt, own, cfg),
        "real dance, wrong song": alignment_figures(model, gt, wrong, cfg),
        "gen": alignment_figures(model, [EvalClip.from_clip(m) for m in gen], [(m.audio_path, m.audio_offset_s) for m in gen], cfg),
    }
    by_label = {r.label: r for r in report.rows}
    for label, fig in expected.items():
        assert by_label[label].metrics["MM-Dist"] == pytest.approx(fig["MM-Dist"], abs=1e-12), label
        assert by_label[label].metrics["R@1"] == pytest.approx(fig["R@1"], abs=1e-12, nan_ok=True), label
    assert expected["gen"]["MM-Dist"] != pytest.approx(expected["ground truth"]["MM-Dist"])  # other music, other score
    per_clip = [c["MM-Dist"] for c in by_label["ground truth"].per_clip]  # equal-length clips: the row is their mean
    assert np.mean(per_clip) == pytest.approx(by_label["ground truth"].metrics["MM-Dist"], abs=1e-12)
    assert len(set(per_clip)) == len(per_clip)
    single = by_label["one"]
    assert np.isfinite(single.metrics["MM-Dist"]) and np.isnan(single.metrics["R@1"])
    assert any("no R@1" in n for n in single.notes)


def test_cli_reports_bad_input_without_traceback(songs, tmp_path, monkeypatch, capsys):
    from livedance.cli import main

    _, clips = songs
    monkeypatch.setenv("LIVEDANCE_CACHE", str(tmp_path / "cache"))
    _stub_dataset(monkeypatch, clips)
    assert main(["eval", "--motions", str(tmp_path / "missing")]) == 2
    assert "motion folder not found" in capsys.readouterr().err
    assert main(["eval", "--fps", "0"]) == 2
    capsys.readouterr()
    assert main(["eval", "--retrieval", str(tmp_path / "nothing")]) == 2  # before any data loads
    assert "nothing.json: weights config not found" in capsys.readouterr().err
    assert main(["eval", "--retrieval", str(tmp_path / "nothing"), "--no-retrieval"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_cli_weights_and_temperature_need_the_livedance_row(songs, tmp_path, monkeypatch, capsys):
    from livedance.cli import main

    _, clips = songs
    monkeypatch.setenv("LIVEDANCE_CACHE", str(tmp_path / "cache"))
    _stub_dataset(monkeypatch, clips)
    assert main(["eval", "--temperature", "0.9"]) == 2
    assert "--models livedance" in capsys.readouterr().err
    assert main(["eval", "--models", "baseline", "--weights", str(tmp_path / "w")]) == 2
    assert "--models livedance" in capsys.readouterr().err
    assert main(["eval", "--models", "livedance", "--temperature", "-1"]) == 2
    assert "--temperature must be a positive number" in capsys.readouterr().err


def test_bailando_music_beats_come_from_the_whole_song_and_each_excerpt_takes_its_own(tmp_path):
    """Bailando tracks the whole song's percussive part once; an excerpt's beats are those inside it, in seconds
    from its start, the same beats whichever excerpt asks (and a click track's beats are its clicks)."""
    import soundfile as sf

    from livedance.beats.clicks import click_track
    from livedance.eval.music_beats import BeatTrackConfig

    sr = 22050
    song = tmp_path / "clicks.wav"
    sf.write(song, click_track(120.0, 12.0, sample_rate=sr)[0], sr)  # clicks every 0.5 s
    cache = MusicBeatCache(tmp_path / "cache")
    a = cache.beats(song, 2.0, 4.0)
    b = cache.beats(song, 3.0, 4.0)
    assert cache.misses == 1 and cache.hits == 1  # one analysis of the song, cached
    assert a.min() >= 0 and a.max() < 4.0 and b.min() >= 0 and b.max() < 4.0
    common = np.intersect1d(np.round(a - 1.0, 6), np.round(b, 6))
    assert len(common) >= len(b) - 2  # the same song beats, shifted by the excerpts' 1 s
    np.testing.assert_allclose(np.diff(a), 0.5, atol=0.02)
    with pytest.raises(ConfigError, match="music beat method"):
        BeatTrackConfig(method="madmom")


def test_a_row_says_why_bas_or_fid_are_missing():
    """A clip without music beats (a dance past its song's end) and a one-dance row are named in the notes."""
    from livedance.eval.suite import EvalClip, FeatureSet, _row

    rng = np.random.default_rng(0)
    ref = FeatureSet(["a", "b", "c"], rng.normal(size=(3, 72)), rng.normal(size=(3, 32)), np.zeros(3))
    one = FeatureSet(["x"], rng.normal(size=(1, 72)), rng.normal(size=(1, 32)), np.zeros(1))
    clip = EvalClip("x", np.zeros((30, 24, 3), np.float32), 25.0, Path("song.wav"), 0.0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = _row("gen", [clip], one, ref, np.arange(1), np.array([np.nan]), [(Path("song.wav"), 0.0)], None, [])
    text = " ".join(row.notes)
    assert "no music beats within the dance for 1 of 1 clips" in text and "need at least 2 dances" in text


def test_song_key_follows_the_bytes_and_sees_a_rewrite(tmp_path):
    import os

    from livedance.eval.suite import _song_key

    a, b = tmp_path / "a" / "song.mp3", tmp_path / "b" / "song.mp3"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"one recording")
    assert _song_key(a) == _song_key(b)  # two copies are one song
    b.write_bytes(b"another recording")
    st = os.stat(b)
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a rewrite within the clock's resolution
    assert _song_key(a) != _song_key(b)
    assert _song_key(tmp_path / "missing.mp3") == str((tmp_path / "missing.mp3").resolve())
