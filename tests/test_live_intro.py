"""livedance.live.intro: the on-beat intro's weight, its beat-stepped cross-fade, the start gate and the blend."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.errors import ConfigError
from livedance.live.intro import IntroConfig, IntroGate, blend_poses, intro_weight


def test_weight_is_zero_during_the_intro_then_reaches_one():
    cfg = IntroConfig(seconds=4.0, fade_s=1.5)
    assert intro_weight(10.0, None, cfg) == 1.0  # no start seen
    assert intro_weight(10.0, 9.0, IntroConfig(seconds=0.0)) == 1.0  # intro off
    s = np.linspace(9.0, 16.0, 701)
    w = np.array([intro_weight(t, 9.0, cfg) for t in s])  # no grid: a linear ramp from 13 to 14.5 s
    assert np.all(w[s <= 13.0] == 0.0) and np.all(w[s >= 14.5] == 1.0)
    assert np.all(np.diff(w) >= 0)
    assert intro_weight(13.75, 9.0, cfg) == pytest.approx(0.5)


def test_beat_stepped_fade_starts_on_a_beat_and_stands_still_on_every_beat():
    cfg = IntroConfig(seconds=4.0, fade_s=1.5)
    anchor, period = 0.1, 0.5  # beats at 0.1 + 0.5 k
    s = np.arange(12.0, 17.0, 0.001)
    w = np.array([intro_weight(t, 9.0, cfg, (anchor, period)) for t in s])
    assert np.all(np.diff(w) >= -1e-12) and w[0] == 0.0 and w[-1] == 1.0
    first = s[np.argmax(w > 0)]
    assert first == pytest.approx(13.1, abs=0.002)  # the first beat at or after 9 + 4 s
    assert s[np.argmax(w >= 1.0)] == pytest.approx(13.1 + 3 * period, abs=0.002)  # n = 1.5 / 0.5 = 3 beats
    dw = np.gradient(w, s)
    for beat in 13.1 + period * np.arange(4):
        k = int(np.argmin(np.abs(s - beat)))
        assert abs(dw[k]) < 0.05  # w stands still on the beats: motion beats stay there
    assert dw.max() > 0.9  # and moves between them (smoothstep peak: 1.5 / (n period) = 1 per second)
    # a grid without a usable period falls back to the linear ramp
    assert intro_weight(13.75, 9.0, cfg, (0.0, 0.0)) == pytest.approx(0.5)


def test_gate_starts_on_sound_and_rearms_only_after_a_long_silence():
    g = IntroGate(IntroConfig(seconds=2.0, fade_s=1.0, rearm_silence_s=2.0))
    assert g.update(0.0, True) == 1.0 and g.starts == 0 and not g.active
    assert g.update(1.0, False) == 0.0 and g.starts == 1 and g.music_on_s == 1.0 and g.active
    assert g.update(2.5, False) == 0.0
    assert g.update(3.5, False) == pytest.approx(0.5)
    assert g.update(4.5, False) == 1.0
    g.update(5.0, True)  # a quiet bar: 1 s of silence does not restart the intro
    assert g.update(6.0, False) == 1.0 and g.starts == 1
    g.update(7.0, True)
    g.update(9.5, True)  # 2.5 s of silence: the next sound is a new start
    assert g.music_on_s is None
    assert g.update(10.0, False) == 0.0 and g.starts == 2 and g.music_on_s == 10.0


def test_blend_endpoints_and_midpoint():
    qi = np.tile(np.array([0, 0, 0, 1.0], np.float32), (3, 1))
    q = np.tile(np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)], np.float32), (3, 1))  # 90 deg about z
    ri, r = np.zeros(3, np.float32), np.array([1.0, 2.0, 3.0], np.float32)
    assert blend_poses(qi, ri, q, r, 1.0)[0] is q and blend_poses(qi, ri, q, r, 0.0)[0] is qi
    qb, rb = blend_poses(qi, ri, q, r, 0.5)
    assert qb.dtype == np.float32 and rb.dtype == np.float32
    assert np.allclose(qb[0], [0, 0, np.sin(np.pi / 8), np.cos(np.pi / 8)], atol=1e-6)  # 45 deg
    assert np.allclose(rb, [0.5, 1.0, 1.5])


@pytest.mark.parametrize("field,value", [("seconds", -1.0), ("fade_s", 0.0), ("rearm_silence_s", float("nan"))])
def test_bad_settings_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=f"IntroConfig.{field}"):
        IntroConfig(**{field: value}).validate()


def test_a_quiet_bar_inside_the_intro_keeps_its_weight_and_the_fade_never_goes_back():
    """A short silence during the intro must not switch to the learned dancer (a one-tick pose jump), and a
    grid that appears, moves or vanishes during the fade must not make the weight jump back."""
    cfg = IntroConfig(seconds=2.0, fade_s=1.0, rearm_silence_s=2.0)
    g = IntroGate(cfg)
    g.update(0.0, True)
    assert g.update(0.5, False, (0.5, 0.5)) == 0.0
    assert g.update(1.0, True, None) == 0.0  # 0.7 s of quiet inside the intro: still the intro dancer
    assert g.update(1.7, True, None) == 0.0
    assert g.update(1.8, False, (0.5, 0.5)) == 0.0 and g.starts == 1
    assert g.fade_end_s == pytest.approx(2.5 + 2 * 0.5)  # first beat at or after 0.5 + 2 s, then n = 2 beats
    ws, s = [], 2.4
    while s < 4.0:  # during the fade the grid jumps by a third of a beat, then disappears
        grid = (0.5, 0.5) if s < 2.9 else ((0.67, 0.5) if s < 3.2 else None)
        ws.append(g.update(s, False, grid))
        s += 1 / 60
    assert np.all(np.diff(ws) >= 0) and ws[-1] == 1.0
    assert max(np.diff(ws)) < 0.1  # no jump: at most a smoothstep's slope per 60 fps tick


def test_fade_end_without_a_start_or_with_the_intro_off_is_none():
    assert IntroGate(IntroConfig()).fade_end_s is None
    g = IntroGate(IntroConfig(seconds=0.0))
    g.update(0.0, True)
    assert g.update(1.0, False) == 1.0 and g.fade_end_s is None
