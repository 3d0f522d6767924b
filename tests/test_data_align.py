"""Tang alignment study: the estimators on synthetic dances with a known rate, and the committed result."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.data.tang_align import (
    ALIGNMENT_PATH,
    AlignConfig,
    beat_alignment_score,
    load_alignment,
    motion_rhythm,
    scan_scale,
)
from livedance.errors import DataError

CFG = AlignConfig()


def _dance(T: int, period: float, seed: int = 0) -> np.ndarray:
    """Markers whose pelvis (marker 2) rises and falls once every ``period`` frames."""
    rng = np.random.default_rng(seed)
    f = np.arange(T)
    m = rng.normal(0, 0.002, (T, 23, 3)) + np.linspace(0, 1.5, 23)[None, :, None]
    m[:, 2, 1] = 1.0 + 0.05 * np.sin(2 * np.pi * f / period)
    return m


def test_motion_rhythm_finds_the_cycle():
    r = motion_rhythm(_dance(1200, 51.3))
    assert r.signal == "pelvis_height"
    assert r.period == pytest.approx(51.3, abs=0.5)
    cycles = (r.phase[-100] - r.phase[100]) / (2 * np.pi)
    assert cycles == pytest.approx(1000 / 51.3, rel=0.02)


@pytest.mark.parametrize("true_scale", [1.0, 1.015, 1.03])
def test_scan_scale_recovers_a_known_rate(true_scale):
    # a waltz: 3 beats of 0.69 s per bar; the dance does one cycle per bar of SONG time, and its raw
    # frames run at 25 / true_scale song frames per second
    ibi, offset, T = 0.69, 3.0, 1500
    beats = np.arange(0, 200) * ibi
    t_song = offset + np.arange(T) * true_scale / 25
    phase = 2 * np.pi * (t_song / (3 * ibi)) + 0.4
    scale, score = scan_scale(phase, beats, offset, 3, CFG)
    assert scale == pytest.approx(true_scale, abs=0.002)
    assert score > 0.9
    # the same dance against a song 4 % slower (a shuffled song) does not lock at that scale
    other = np.arange(0, 200) * ibi * 1.04
    _, s_other = scan_scale(phase, other, offset, 3, AlignConfig(scale_min=true_scale - 0.005, scale_max=true_scale + 0.005))
    assert s_other < 0.5


def test_bas():
    beats = np.arange(10) * 0.5
    assert beat_alignment_score(beats, beats, 0.05, 0, 10) == pytest.approx(1.0)
    assert beat_alignment_score(beats, beats + 0.25, 0.05, 0, 10) < 0.01
    assert beat_alignment_score(beats, np.array([]), 0.05, 0, 10) == 0.0


def test_short_motion_rejected():
    with pytest.raises(DataError):
        motion_rhythm(np.zeros((50, 23, 3)))


def test_committed_alignment_is_consistent():
    entries = load_alignment()
    assert len(entries) == 38
    for name, e in entries.items():
        assert e["usable_for_beat"] == (e["tempo_locked"] and e["own_beats_shuffled"]), name
        assert CFG.scale_min <= e["scale"] <= CFG.scale_max
        # a fitted offset moves at most half a beat from the nominal one
        assert abs(e["fitted_offset_s"] - e["nominal_offset_s"]) <= 0.5 * e["beat_period_s"] + 0.011
        if e["tempo_locked"]:
            assert (e["scale"], e["offset_s"]) == (e["fitted_scale"], e["fitted_offset_s"])
        else:  # untrusted fits fall back to the population's rate and the nominal offset
            assert e["offset_s"] == e["nominal_offset_s"]
        if not e["usable_for_beat"]:
            assert e["reason"]
    assert ALIGNMENT_PATH.name == "tang_alignment.json"


def test_missing_alignment_file(tmp_path):
    with pytest.raises(DataError, match="align-tang"):
        load_alignment(tmp_path / "none.json")
