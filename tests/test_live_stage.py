"""livedance.live.stage: the stage leash keeps a travelling dancer's pelvis near the centre, leaves the
dance untouched inside the radius, and never changes height or rotations."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.engine.base import MotionFrames
from livedance.errors import ConfigError
from livedance.live.stage import StageConfig, StageLeash


def _walk(n_steps: int, speed: float, fps: float = 25.0, chunk: int = 8):
    """A dancer walking along +x at ``speed`` m/s with a 5 cm side-to-side sway, in chunks of ``chunk`` frames."""
    rng = np.random.default_rng(0)
    for k in range(n_steps):
        t = (k * chunk + np.arange(chunk)) / fps
        root = np.stack([0.3 + speed * t, 0.95 + 0.02 * np.sin(8 * t), 0.05 * np.sin(3 * t)], axis=1).astype(np.float32)
        q = rng.normal(size=(chunk, 55, 4)).astype(np.float32)
        yield MotionFrames(q / np.linalg.norm(q, axis=-1, keepdims=True), root, fps, float(t[0]))


def test_a_travelling_dancer_stays_within_the_radius_plus_the_pull_overshoot():
    leash = StageLeash(StageConfig(radius_m=1.0, pull_s=1.0))
    shown, raw = [], []
    for mf in _walk(200, speed=0.12):  # 64 s, 7.7 m of travel
        out = leash.apply(mf)
        assert np.array_equal(out.local_quats, mf.local_quats) and out.t0_s == mf.t0_s and out.fps == mf.fps
        assert np.allclose(out.root_translation[:, 1], mf.root_translation[:, 1])  # height untouched
        shown.append(out.root_translation)
        raw.append(mf.root_translation)
    shown, raw = np.concatenate(shown), np.concatenate(raw)
    r_shown = np.linalg.norm(shown[:, [0, 2]] - raw[0, [0, 2]], axis=1)
    r_raw = np.linalg.norm(raw[:, [0, 2]] - raw[0, [0, 2]], axis=1)
    assert r_raw.max() > 7.0
    assert r_shown.max() < 1.0 + 0.12 * 1.0 + 0.06  # radius + v * pull_s + the sway
    assert r_shown[-200:].min() > 0.8  # held near the edge, not snapped back to the centre


def test_inside_the_radius_the_dance_is_untouched():
    leash = StageLeash(StageConfig(radius_m=1.0))
    for mf in _walk(20, speed=0.05):  # 6.4 s, 0.32 m: never reaches the radius
        out = leash.apply(mf)
        assert np.array_equal(out.root_translation, mf.root_translation)


def test_radius_zero_is_off_and_bad_settings_are_config_errors():
    mf = next(_walk(1, speed=1.0))
    assert StageLeash(StageConfig(radius_m=0.0)).apply(mf) is mf
    with pytest.raises(ConfigError, match="radius_m"):
        StageConfig(radius_m=-1.0).validate()
    with pytest.raises(ConfigError, match="pull_s"):
        StageConfig(pull_s=0.0).validate()
