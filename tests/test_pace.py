"""The dancer's pace (livedance.model.pace): its measure, its code, the config, and the engine's draw and setting."""

from __future__ import annotations

import numpy as np
import pytest

from engine_fixtures import music_contexts, tiny_step_graph
from livedance.errors import ConfigError, DataError
from livedance.model.conditioning import COND_DIM
from livedance.model.generator import GeneratorConfig
from livedance.model.pace import (PACE_CODE_LIMIT, PACE_REF_M_S, motion_pace, pace_code, pace_m_s, pace_prior,
                                  slot_pace_codes)

FPS = 25.0


def _swing(T: int, amp_m: float, hz: float, travel_m_s: float = 0.0) -> np.ndarray:
    """(T, 3, 3): a pelvis travelling along x at ``travel_m_s`` and two joints circling it (radius amp, hz turns/s):
    each moves at 2 pi amp hz m/s relative to the pelvis."""
    t = np.arange(T) / FPS
    pelvis = np.stack([travel_m_s * t, np.ones(T), np.zeros(T)], 1)
    ang = 2 * np.pi * hz * t
    ring = np.stack([np.cos(ang), np.zeros(T), np.sin(ang)], 1) * amp_m
    return np.stack([pelvis, pelvis + ring, pelvis - ring], 1)


def test_motion_pace_is_the_limbs_speed_about_the_pelvis_and_ignores_travel():
    still = motion_pace(_swing(250, 0.2, 0.5), FPS)
    travelling = motion_pace(_swing(250, 0.2, 0.5, travel_m_s=1.5), FPS)
    expected = 2 * np.pi * 0.2 * 0.5  # chord speed at 25 fps is within 0.1 % of the arc's
    assert still.shape == (250,) and still.dtype == np.float32
    np.testing.assert_allclose(still, expected, rtol=2e-3)
    np.testing.assert_allclose(travelling, still, atol=1e-6)
    # a dance that speeds up half way: the centred window follows it
    fast = _swing(250, 0.2, 1.0)
    p = motion_pace(np.concatenate([_swing(250, 0.2, 0.5), fast - fast[:1] + _swing(250, 0.2, 0.5)[-1:]]), FPS)
    assert p[50] == pytest.approx(expected, rel=5e-3) and p[450] == pytest.approx(2 * expected, rel=5e-3)
    assert expected < p[250] < 2 * expected


def test_motion_pace_names_bad_input():
    with pytest.raises(DataError, match=r"\(T >= 2, J >= 2, 3\)"):
        motion_pace(np.zeros((10, 24)), FPS)
    bad = _swing(10, 0.2, 1.0)
    bad[3, 1, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        motion_pace(bad, FPS)
    with pytest.raises(ConfigError, match="fps"):
        motion_pace(_swing(10, 0.2, 1.0), 0.0)


def test_pace_code_is_log2_of_the_reference_and_inverts():
    v = np.array([0.1, PACE_REF_M_S, 0.8, 1e-9, 1e3])
    c = pace_code(v)
    np.testing.assert_allclose(c[:3], [-2.0, 0.0, 1.0], atol=1e-6)
    assert c[3] == -PACE_CODE_LIMIT and c[4] == PACE_CODE_LIMIT
    np.testing.assert_allclose(pace_m_s(c[:3]), v[:3], rtol=1e-6)


def test_slot_codes_take_each_slots_middle_frame_and_the_prior_their_per_dance_means():
    pos = _swing(100, 0.2, 0.5)
    codes = slot_pace_codes(pos, FPS, 4, 26)  # the last slot's frames run past the dance
    np.testing.assert_allclose(codes, pace_code(motion_pace(pos, FPS)[np.minimum(np.arange(26) * 4 + 2, 99)]))
    mean, std = pace_prior([np.full(5, -1.0), np.full(3, 1.0), np.array([0.0, 0.0])])
    assert mean == pytest.approx(0.0) and std == pytest.approx(np.sqrt(2 / 3))
    with pytest.raises(DataError, match="at least two"):
        pace_prior([np.zeros(3)])


def test_config_takes_a_pace_prior_only_with_its_condition_channel():
    cfg = GeneratorConfig(pace=(0.1, 0.3), cond_dim=COND_DIM + 1)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["pace"] == [0.1, 0.3]
    with pytest.raises(ConfigError, match="cond_dim 11"):
        GeneratorConfig(pace=(0.1, 0.3))
    with pytest.raises(ConfigError, match="std >= 0"):
        GeneratorConfig(pace=(0.1, -0.3), cond_dim=COND_DIM + 1)
    assert GeneratorConfig().pace is None


@pytest.fixture(scope="module")
def pace_graph():
    return tiny_step_graph(pace=(0.0, 0.5), cond_dim=COND_DIM + 1)


class _Spy:
    """Backend wrapper that keeps every run's ``cond`` input."""

    def __init__(self, inner):
        self.inner, self.conds = inner, []

    def run(self, inputs):
        self.conds.append(np.array(inputs["cond"]))
        return self.inner.run(inputs)


def _dance(gen, steps=6):
    return np.concatenate([gen.step(m).local_quats for m in music_contexts(steps)])


def test_the_engine_draws_a_pace_per_seed_feeds_it_and_keeps_a_set_one(pace_graph):
    from livedance.engine import build_generator

    graph, rep = pace_graph
    gen = build_generator(graph, rep, "torch", seed=0)
    spy = gen.backend = _Spy(gen.backend)
    drawn = {}
    for seed in range(6):
        gen.reset(seed)
        drawn[seed] = gen.pace
        gen.reset(seed)
        assert gen.pace == drawn[seed]  # a function of the seed
    assert len(set(drawn.values())) == 6 and all(0.05 < p < 3.0 for p in drawn.values())
    gen.reset(0)
    gen.step(next(iter(music_contexts(1))))
    assert spy.conds[-1].shape == (1, graph.model.config.chunk, COND_DIM + 1)
    np.testing.assert_allclose(spy.conds[-1][..., -1], pace_code(drawn[0]), atol=1e-6)

    gen.set_pace(0.7)
    for seed in (0, 5):
        gen.reset(seed)
        assert gen.pace == pytest.approx(0.7)  # a show setting: kept over resets
    slow, fast = build_generator(graph, rep, "torch", seed=3), build_generator(graph, rep, "torch", seed=3)
    slow.set_pace(0.2)
    fast.set_pace(1.2)
    slow.reset(3)
    fast.reset(3)
    assert not np.allclose(_dance(slow), _dance(fast))  # the same noise, another pace: another dance
    gen.set_pace(None)
    gen.reset(4)
    assert gen.pace == drawn[4]


def test_set_pace_refuses_bad_values_and_models_without_a_pace_input(pace_graph):
    from livedance.engine import build_generator

    graph, rep = pace_graph
    gen = build_generator(graph, rep, "torch", seed=0)
    before = gen.pace
    for bad in (0.0, 3.5, float("nan"), "fast"):
        with pytest.raises(ConfigError, match=r"\[0.05, 3\] m/s"):
            gen.set_pace(bad)
        assert gen.pace == before
    plain = build_generator(*tiny_step_graph(), "torch", seed=0)
    assert plain.pace is None and not plain.has_pace
    with pytest.raises(ConfigError, match="--pace"):
        plain.set_pace(0.4)


def test_widened_init_weights_dance_as_before_whatever_the_pace():
    """``livedance train generator --init W --pace``: the pace column starts at zero, so the fine-tune starts from
    exactly the weights' model."""
    import torch

    from livedance.model.generator import DanceGenerator
    from livedance.model.train_generator import widen_for_pace

    small = dict(d_model=32, n_layers=2, chunk_layers=1, n_heads=2, codebook_size=16, levels=3, window=4, d_state=4)
    torch.manual_seed(0)
    plain = DanceGenerator(GeneratorConfig(**small)).eval()
    paced = DanceGenerator(GeneratorConfig(**small, pace=(0.0, 0.3), cond_dim=COND_DIM + 1)).eval()
    paced.load_state_dict(widen_for_pace(plain.state_dict()))
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 16, (2, 6, 2, 3), generator=g)
    win = torch.randn(2, 6, 4, 180, generator=g)
    cond = torch.randn(2, 6, COND_DIM, generator=g)
    with torch.no_grad():
        torch.manual_seed(2)  # the same MaskGIT masks in every call
        want = plain(codes, win, cond)["loss"]
        for pace in (-2.0, 0.0, 1.5):
            torch.manual_seed(2)
            got = paced(codes, win, torch.cat([cond, torch.full((2, 6, 1), pace)], -1))["loss"]
            assert torch.equal(got, want)
    with pytest.raises(ConfigError, match="width 10"):
        widen_for_pace(paced.state_dict())


def test_training_slots_carry_the_real_dances_pace_as_their_last_condition_channel():
    """prepare_clips(pace=True) on a real Tang dance: the last cond column is each slot's pace code, the other
    columns are the beat condition unchanged, and the codes lie inside the clip limits (a real dance is no edge case)."""
    from livedance.data.dataset import load_split
    from livedance.model.train_generator import load_tokenizer_for_training, prepare_clips

    clip = load_split("test", progress=False, names=["DANCE_W_4"])
    tok, rep, _, _ = load_tokenizer_for_training(None)
    plain, = prepare_clips(clip, tok, rep, 8, 0.16)
    paced, = prepare_clips(clip, tok, rep, 8, 0.16, pace=True)
    n = paced.codes.shape[1]
    assert plain.pace is None and paced.cond.shape == (n, COND_DIM + 1) and paced.cond.dtype == np.float32
    np.testing.assert_array_equal(paced.cond[:, :COND_DIM], plain.cond)
    np.testing.assert_array_equal(paced.cond[:, -1], paced.pace)
    np.testing.assert_allclose(paced.pace, slot_pace_codes(clip[0].positions, clip[0].fps, 4, n))
    assert (np.abs(paced.pace) < PACE_CODE_LIMIT).all()
    assert 0.2 < pace_m_s(np.median(paced.pace)) < 0.6  # a waltz: calm limbs (m/s)
