"""AIST++ motions as clips: the conversion (rate, joints, floor, music) and every trainer / the eval on an AIST++
folder (a fixture in the published layout, tests/test_data_aistpp.py, with click-track music)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_data_aistpp import IGNORED, SEQS, make_aistpp_fixture

from livedance.data.aistpp import load_aistpp_motion
from livedance.data.aistpp_clips import FOOT_JOINTS, aistpp_clip, is_aistpp_root, load_aistpp_clips
from livedance.data.dataset import AISTPP_DATA, TANG_DATA, data_description, load_split
from livedance.errors import DataError


def _music(root: Path, seconds: float = 9.0, sr: int = 22050) -> None:
    """Click tracks at 120 BPM named by every fixture sequence's music id."""
    (root / "music").mkdir(exist_ok=True)
    y = np.zeros(int(seconds * sr), np.float32)
    for b in np.arange(0.25, seconds, 0.5):
        k = int(b * sr)
        y[k:k + 220] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(220) / sr)
    for names in SEQS.values():
        for n in names:
            sf.write(root / "music" / f"{n.split('_')[4]}.wav", y, sr)


@pytest.fixture
def aist(tmp_path) -> Path:
    make_aistpp_fixture(tmp_path, frames=8 * 60)
    _music(tmp_path)
    return tmp_path


def test_a_clip_is_the_motion_at_the_model_rate_on_the_floor(aist):
    m = load_aistpp_motion(aist / "motions" / f"{SEQS['train'][0]}.pkl", aist / "music")
    c = aistpp_clip(m, fps=25.0)
    assert c.num_frames == int(np.floor((m.num_frames - 1) * 25 / 60)) + 1 == 200
    assert c.fps == 25.0 and c.style == "gBR" and c.audio_offset_s == 0.0 and c.beat_aligned
    assert c.audio_path == aist / "music" / "mBR0.wav"
    assert c.local_rotmats.shape == (200, 22, 3, 3) and c.positions.shape == (200, 24, 3)
    # output frame k is AIST++ frame 2.4 k: every 5th frame lands on a source frame and holds its 22 body rotations
    src = m.local_rotmats()
    np.testing.assert_allclose(c.local_rotmats[::5], src[::12][:40, :22], atol=1e-5)
    np.testing.assert_allclose(c.root_translation[::5, [0, 2]], m.trans_m[::12][:40][:, [0, 2]], atol=1e-6)
    # the root path keeps its shape, lifted so that the lowest foot joint stands on y = 0
    lift = c.root_translation[::5, 1] - m.trans_m[::12][:40, 1]
    np.testing.assert_allclose(lift, lift[0], atol=1e-5)
    feet = c.positions[:, list(FOOT_JOINTS), 1].min(axis=1)
    assert abs(np.percentile(feet, 1.0)) < 1e-5 and feet.min() > -0.5


def test_load_split_reads_an_aistpp_folder(aist):
    assert is_aistpp_root(aist) and not is_aistpp_root(aist / "motions")
    train = load_split("train", data_root=aist, progress=False)
    assert [c.name for c in train] == [n for n in SEQS["train"] if n != IGNORED]
    one = load_split("train", data_root=aist, progress=False, names=[SEQS["train"][2]])
    assert [c.name for c in one] == [SEQS["train"][2]]
    with pytest.raises(DataError, match="not in AIST\\+\\+ split 'train'"):
        load_aistpp_clips(aist, "train", names=[SEQS["test"][0]], progress=False)


def test_missing_music_and_bad_settings_are_named(aist):
    (aist / "music" / "mWA2.wav").unlink()
    with pytest.raises(DataError, match=r"music missing in .*music: mWA2\.wav"):
        load_split("train", data_root=aist, progress=False)
    m = load_aistpp_motion(aist / "motions" / f"{SEQS['train'][0]}.pkl")  # no music folder given
    with pytest.raises(DataError, match="no music path"):
        aistpp_clip(m)
    m = load_aistpp_motion(aist / "motions" / f"{SEQS['train'][0]}.pkl", aist / "music")
    with pytest.raises(DataError, match="rest_offsets"):
        aistpp_clip(m, rest_offsets=np.zeros((10, 3)))
    with pytest.raises(DataError, match="fps"):
        aistpp_clip(m, fps=0.0)


@pytest.mark.parametrize("pace", [False, True])
def test_train_generator_and_eval_run_on_an_aistpp_folder(aist, tmp_path_factory, monkeypatch, pace):
    from livedance.cli import main

    out = tmp_path_factory.mktemp("run")
    monkeypatch.setenv("LIVEDANCE_CACHE", str(out / "cache"))  # song analyses and the ONNX graph stay in the test
    assert main(["train", "generator", "--data-root", str(aist), "--steps", "2", "--tokens", "16", "--batch-size", "2",
                 "--out", str(out / "gen"), "--no-progress"] + (["--pace"] if pace else [])) == 0
    doc = json.loads((out / "gen" / "generator.json").read_text())
    assert doc["training"]["steps"] == 2 and doc["training"]["train_clips"] == 2  # the ignore list applied
    assert doc["data"] == AISTPP_DATA  # the weights say what they learnt from
    assert (doc["config"]["pace"] is not None) == pace and doc["config"]["cond_dim"] == 10 + pace
    assert main(["eval", "--data-root", str(aist), "--split", "train", "--no-retrieval", "--models", "livedance",
                 "--weights", str(out / "gen" / "generator"), "--json", str(out / "eval.json")]
                + (["--pace", "0.5"] if pace else [])) == 0
    rows = json.loads((out / "eval.json").read_text())
    text = json.dumps(rows)
    assert rows["split"] == "train" and SEQS["train"][2] in text and IGNORED not in text
    assert [r["label"] for r in rows["rows"]][::2] == ["ground truth",
                                                       "livedance (generated)" + (", pace 0.5 m/s" if pace else "")]


def test_the_data_is_named_by_its_folder(aist, tmp_path_factory):
    assert data_description(aist) == AISTPP_DATA
    assert data_description(tmp_path_factory.mktemp("tang")) == TANG_DATA


def test_retrieval_never_uses_another_dance_to_the_same_song_as_a_negative():
    from livedance.model.retrieval import PairedClip
    from livedance.model.train_retrieval import RetrievalWindows

    z = np.zeros((12, 3), np.float32)
    pairs = [PairedClip("a", z, z, "/m/mBR0.wav"), PairedClip("b", z, z, "/m/mBR0.wav"), PairedClip("c", z, z, ""),
             PairedClip("d", z, z, "")]
    ds = RetrievalWindows(pairs, window=4, hop=4)
    song = {pairs[k].name: int(ds[i]["clip"]) for i, (k, _) in enumerate(ds.index)}
    assert song["a"] == song["b"]  # two dances to one song (AIST++): one key, never each other's negatives
    assert len({song["a"], song["c"], song["d"]}) == 3  # no song key: each dance its own song (the Tang data)


def test_the_wrong_song_row_never_pairs_a_dance_with_another_recording_of_its_own_song(monkeypatch):
    import livedance.eval.alignment as al
    from livedance.model.retrieval import PairedClip

    seen = []
    monkeypatch.setattr(al, "retrieval_figures", lambda model, pairs, songs=None, **kw: seen.append((pairs, songs)))
    z = np.zeros((8, 3), np.float32)
    songs = ["/m/a.wav", "/m/a.wav", "/m/b.wav", "/m/b.wav", "/m/c.wav"]  # AIST++: two dances per song, side by side
    pairs = [PairedClip(f"d{k}", z + k, z, s) for k, s in enumerate(songs)]
    al.wrong_song_figures(None, pairs)
    wrong, keys = seen[1]
    for k, w in enumerate(wrong):
        assert keys[k] != songs[k], w.name  # its music is another song's
    seen.clear()
    tang = [PairedClip(f"d{k}", z + k, z, f"/m/{k}.wav") for k in range(4)]
    al.wrong_song_figures(None, tang)
    assert [w.name for w in seen[1][0]] == ["d0 to d1", "d1 to d2", "d2 to d3", "d3 to d0"]  # one song each: the shift


def test_printed_training_commands_name_the_data_root_only_when_one_was_given(tmp_path):
    from livedance.data.dataset import data_root_option
    from livedance.model.train_tokenizer import TokenizerRunConfig, _train_command

    assert data_root_option(None) == ""
    assert _train_command(TokenizerRunConfig()).endswith("--threads 1")  # the Tang default reads as before
    cmd = _train_command(TokenizerRunConfig(data_root=tmp_path))
    assert cmd.endswith(f" --data-root {tmp_path}") and cmd.count("--data-root") == 1
