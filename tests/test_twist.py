"""The forearm twist limiter (livedance.engine.twist) and its place in LearnedGenerator."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from livedance.engine.base import MotionFrames
from livedance.engine.offline import quat_smpl24_positions
from livedance.engine.twist import TwistConfig, TwistLimiter, twist_angle
from livedance.errors import ConfigError

REST = np.zeros((22, 3))
REST[18], REST[19], REST[20], REST[21] = [0.29, 0, 0], [-0.28, 0, 0], [0.25, 0, 0], [-0.25, 0, 0]
REST[16], REST[17] = [0.08, 0, 0], [-0.08, 0, 0]
REST[1:16] = np.random.default_rng(0).normal(scale=0.1, size=(15, 3))


def _rot(rotvec) -> np.ndarray:
    return roma.rotvec_to_unitquat(torch.as_tensor(np.asarray(rotvec, np.float64))).numpy()


def _arm_dance(n: int, snap_at: int | None, snap: float = 2.8, compensate: bool = True, base: float = 0.0) -> MotionFrames:
    """n frames: every body joint bent a little (fixed), the left elbow flexing slowly with a twist of ``base`` rad
    about the forearm (+x), and at ``snap_at`` that twist snapping by ``snap`` rad (the wrist taking the snap back
    when ``compensate``)."""
    rng = np.random.default_rng(1)
    q = np.zeros((n, 55, 4))
    q[..., 3] = 1.0
    q[:, :22] = _rot(rng.normal(scale=0.3, size=(22, 3)))[None]
    t = np.arange(n) / 25.0
    flex = _rot(np.stack([np.zeros(n), 0.8 + 0.3 * np.sin(2 * np.pi * t), np.zeros(n)], -1))  # about y: a bend
    twist = np.zeros(n) if snap_at is None else np.where(np.arange(n) >= snap_at, snap, 0.0)
    whole = base + twist
    q[:, 18] = roma.quat_product(torch.from_numpy(flex), torch.from_numpy(_rot(np.stack([whole, 0 * t, 0 * t], -1)))).numpy()
    if compensate:
        q[:, 20] = roma.quat_product(torch.from_numpy(_rot(np.stack([-twist, 0 * t, 0 * t], -1))),
                                     torch.from_numpy(q[:, 20])).numpy()
    root = np.zeros((n, 3), np.float32)
    return MotionFrames(q.astype(np.float32), root, 25.0, 0.0)


def _run(lim: TwistLimiter, dance: MotionFrames) -> MotionFrames:
    parts = [lim.apply(MotionFrames(dance.local_quats[i:i + 8], dance.root_translation[i:i + 8], 25.0, i / 25))
             for i in range(0, len(dance), 8)]
    return MotionFrames(np.concatenate([p.local_quats for p in parts]), dance.root_translation, 25.0, 0.0)


def test_a_twist_snap_becomes_a_turn_at_the_bounded_speed_and_no_joint_moves():
    dance = _arm_dance(48, snap_at=12)
    lim = TwistLimiter(REST, 25.0, TwistConfig(max_rad_s=13.0))
    out = _run(lim, dance)
    tw = np.unwrap(twist_angle(out.local_quats[:, 18].astype(np.float64), np.array([1.0, 0, 0])))
    assert np.abs(np.diff(tw)).max() <= 13.0 / 25.0 + 1e-5  # 0.52 rad per frame at most
    tw_in = np.unwrap(twist_angle(dance.local_quats[:, 18].astype(np.float64), np.array([1.0, 0, 0])))
    assert np.abs(np.diff(tw_in)).max() > 2.5  # the input did snap
    np.testing.assert_allclose(tw[-10:], tw_in[-10:], atol=1e-5)  # and the output caught up within 6 frames
    assert lim.n_limited >= 5
    p_in = quat_smpl24_positions(dance.local_quats, dance.root_translation, REST)
    p_out = quat_smpl24_positions(out.local_quats, out.root_translation, REST)
    np.testing.assert_allclose(p_out, p_in, atol=2e-6)  # twist moves no joint, the hands included


def test_a_snap_across_half_a_turn_takes_the_short_way_and_chunking_does_not_matter():
    # 2.5 rad -> -2.9 rad is +0.88 rad the short way (through +pi), -5.4 rad the long way
    dance = _arm_dance(32, snap_at=10, snap=-5.4, base=2.5)
    outs = []
    for size in (1, 3, 8):
        lim = TwistLimiter(REST, 25.0)
        parts = [lim.apply(MotionFrames(dance.local_quats[i:i + size], dance.root_translation[i:i + size], 25.0, 0.0))
                 for i in range(0, 32, size)]
        outs.append(np.concatenate([p.local_quats for p in parts]))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    axis = np.array([1.0, 0, 0])
    tw = np.unwrap(twist_angle(outs[2][:, 18].astype(np.float64), axis))
    tw_in = np.unwrap(twist_angle(dance.local_quats[:, 18].astype(np.float64), axis))
    assert np.abs(np.diff(tw)).max() <= 13.0 / 25.0 + 1e-5
    np.testing.assert_allclose(tw[12:], tw_in[12:], atol=1e-5)  # caught up in 2 frames: it went the short way


def test_a_hand_carried_by_the_snap_turns_with_the_forearm_and_ends_where_the_dancer_put_it():
    dance = _arm_dance(24, snap_at=8, compensate=False)  # the snap turns the hand too (globally)

    def hand(q):  # global rotation of the left wrist through the body's parent chain
        from livedance.motion.skeleton import SMPLX_BODY_PARENTS as parent
        g = [None] * 22
        qt = torch.from_numpy(q[:, :22].astype(np.float64))
        for j in range(22):
            g[j] = qt[:, j] if parent[j] < 0 else roma.quat_product(g[parent[j]], qt[:, j])
        return g[20].numpy()

    def steps(g):  # rotation angle between consecutive frames, radians
        from livedance.motion.rotations import quat_angle_np

        return quat_angle_np(g[1:], g[:-1])

    out = _run(TwistLimiter(REST, 25.0), dance)
    assert steps(hand(dance.local_quats)).max() > 2.5
    flex = steps(hand(_arm_dance(24, snap_at=None).local_quats)).max()  # the arm's own slow bend
    # the elbow and the wrist each turn at the bound (their axes differ by the wrist's bend, so not exactly 2x)
    assert steps(hand(out.local_quats)).max() <= 2.5 * 13.0 / 25.0 + flex
    a, b = hand(out.local_quats)[-8:], hand(dance.local_quats)[-8:]
    assert np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1)).max() < 1e-5  # and it ends as the dancer's


def test_slow_twists_pass_bit_for_bit_and_bad_frames_pass_untouched():
    dance = _arm_dance(40, snap_at=None)
    lim = TwistLimiter(REST, 25.0)
    for i in range(0, 40, 8):
        part = MotionFrames(dance.local_quats[i:i + 8], dance.root_translation[i:i + 8], 25.0, 0.0)
        assert lim.apply(part) is part
    bad_q = dance.local_quats[:8].copy()
    bad_q[2, 18] = np.nan
    bad = MotionFrames(bad_q, dance.root_translation[:8], 25.0, 0.0)
    assert lim.apply(bad) is bad
    snap = _arm_dance(16, snap_at=4)
    off = TwistLimiter(REST, 25.0, TwistConfig(enabled=False))
    assert off.apply(snap) is snap
    with pytest.raises(ConfigError, match="max_rad_s"):
        TwistLimiter(REST, 25.0, TwistConfig(max_rad_s=0.0))
    with pytest.raises(ConfigError, match="fps"):
        TwistLimiter(REST, 0.0)
    with pytest.raises(ConfigError, match="below pi"):
        TwistLimiter(REST, 25.0, TwistConfig(max_rad_s=100.0))  # half a turn a frame would hold nothing


def test_a_swing_near_half_a_turn_passes_instead_of_being_twisted():
    # the twist is ill-defined near a 180-degree swing: a small wobble there swings phi wildly, which must
    # not be "limited" into a turn of the forearm that the dancer never made
    n = 24
    q = np.zeros((n, 55, 4))
    q[..., 3] = 1.0
    wobble = 0.0135 * np.arange(n)  # 0.77 degrees a frame, perpendicular to the swing
    swing = np.stack([wobble, np.full(n, np.pi * 179.4 / 180), np.zeros(n)], -1)  # about y, a little about x
    q[:, 18] = _rot(swing)
    dance = MotionFrames(q.astype(np.float32), np.zeros((n, 3), np.float32), 25.0, 0.0)
    out = _run(TwistLimiter(REST, 25.0), dance)
    a, b = out.local_quats[:, 18].astype(np.float64), dance.local_quats[:, 18].astype(np.float64)
    assert np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1)).max() < 1e-6


def test_learned_generator_limits_twist_without_moving_any_joint():
    from livedance.engine import build_generator
    from livedance.engine.base import MusicContext
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator, GeneratorConfig
    from livedance.model.representation import Representation
    from livedance.model.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(codebook_size=32, latent_dim=16, width=32, kmeans_init=False)).eval()
    cfg = GeneratorConfig(d_model=32, n_layers=2, chunk_layers=1, n_heads=2, codebook_size=32, window=4, d_state=4)
    graph = StepGraph(DanceGenerator(cfg).eval(), tok).eval()
    gens = [build_generator(graph, Representation(), "torch", seed=2) for _ in range(2)]
    gens[1].twist_limiter.cfg.enabled = False
    rng, t, frames = np.random.default_rng(0), 3.0, ([], [])
    for _ in range(25):
        f = rng.normal(size=(14, 180)).astype(np.float32)
        for g, acc in zip(gens, frames):
            acc.append(g.step(MusicContext(f, t - 0.2 + np.arange(14) / 43.07, 118.0, 0.25, 0.9, t)))
        t += 0.32
    q = [np.concatenate([m.local_quats for m in acc]) for acc in frames]
    r = [np.concatenate([m.root_translation for m in acc]) for acc in frames]
    rest = np.asarray(Representation().rest_offsets)
    np.testing.assert_allclose(quat_smpl24_positions(q[0], r[0], rest), quat_smpl24_positions(q[1], r[1], rest), atol=1e-5)
    axis = np.array([1.0, 0, 0])
    assert np.abs(np.diff(np.unwrap(twist_angle(q[0][:, 18].astype(np.float64), axis)))).max() <= 13.0 / 25 + 1e-4
