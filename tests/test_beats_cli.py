"""The ``livedance beats`` command: output format of the causal and offline modes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from livedance.beats.clicks import click_track
from livedance.cli import main


@pytest.fixture()
def click_wav(tmp_path):
    audio, clicks = click_track(120.0, 10.0, 22050, start_s=0.25)
    path = tmp_path / "clicks.wav"
    sf.write(path, audio, 22050)
    return path, clicks


def test_beats_prints_one_time_per_line(click_wav, capsys) -> None:
    path, clicks = click_wav
    assert main(["beats", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 10
    times = np.array([float(x) for x in lines])
    assert all(len(x.split(".")[1]) == 3 for x in lines)  # seconds, 3 decimals
    assert np.all(np.diff(times) > 0)
    late = times[times > 5.0]
    assert np.all(np.min(np.abs(clicks[None, :] - late[:, None]), axis=1) < 0.02)


def test_beats_json(click_wav, capsys) -> None:
    path, _ = click_wav
    assert main(["beats", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "causal"
    assert abs(out["bpm"] - 120.0) < 1.0
    assert 0.0 < out["confidence"] <= 1.0
    assert len(out["times"]) == len(out["latency_s"]) == len(out["beats"])
    for t, lat, b in zip(out["times"], out["latency_s"], out["beats"]):
        assert t == pytest.approx(max(b["time_s"], b["reported_at_s"]), abs=1e-5)
        assert lat == pytest.approx(b["reported_at_s"] - b["time_s"], abs=1e-5)


def test_beats_offline(click_wav, capsys) -> None:
    pytest.importorskip("librosa")
    path, clicks = click_wav
    assert main(["beats", str(path), "--offline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "offline" and out["latency_s"] is None
    times = np.array(out["times"])
    assert len(times) >= 15 and np.median(np.min(np.abs(clicks[None, :] - times[:, None]), axis=1)) < 0.05


def test_beats_missing_file_is_a_clean_error(tmp_path, capsys) -> None:
    assert main(["beats", str(tmp_path / "nope.wav")]) == 2
    assert "not found" in capsys.readouterr().err
