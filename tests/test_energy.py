"""The energy fader for learned dancers (livedance.engine.energy) and its place in LearnedGenerator."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from livedance.engine.base import MotionFrames, MusicContext
from livedance.engine.energy import EnergyConfig, EnergyFader, fader_amplitude
from livedance.errors import ConfigError


def _dance(n: int, seed: int = 0, fps: float = 25.0) -> MotionFrames:
    """n frames of 55 joints swinging about a fixed posture (2 Hz, 0.4 rad) with a bobbing pelvis."""
    rng = np.random.default_rng(seed)
    base = roma.random_unitquat(55, generator=torch.Generator().manual_seed(seed)).numpy()
    axes = rng.normal(size=(55, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    t = np.arange(n) / fps
    swing = 0.4 * np.sin(2 * np.pi * 2.0 * t)[:, None, None] * axes[None]  # (n, 55, 3) rad
    q = roma.quat_product(torch.from_numpy(base).expand(n, 55, 4).double(),
                          roma.rotvec_to_unitquat(torch.from_numpy(swing))).float().numpy()
    root = np.stack([0.1 * np.sin(2 * np.pi * t), 0.9 + 0.05 * np.sin(2 * np.pi * 2.0 * t), 0.0 * t], -1)
    return MotionFrames(q, root.astype(np.float32), fps, 0.0)


def _run(fader: EnergyFader, dance: MotionFrames, energy, step: int = 8) -> MotionFrames:
    """Feed ``dance`` through ``fader`` in steps of ``step`` frames; energy: a float or one value per step."""
    out_q, out_p = [], []
    for k, i in enumerate(range(0, len(dance), step)):
        e = energy[k] if isinstance(energy, (list, tuple)) else energy
        part = MotionFrames(dance.local_quats[i:i + step], dance.root_translation[i:i + step], dance.fps, i / dance.fps)
        got = fader.apply(part, e)
        out_q.append(got.local_quats)
        out_p.append(got.root_translation)
    return MotionFrames(np.concatenate(out_q), np.concatenate(out_p), dance.fps, 0.0)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle (rad) between the rotations of unit quaternions, elementwise over leading axes (from the
    chord, which stays accurate for small angles where arccos of the dot product does not)."""
    from livedance.motion.rotations import quat_angle_np

    return quat_angle_np(a, b)


def test_fader_at_rest_passes_the_dance_through_bit_for_bit():
    dance = _dance(200)
    fader = EnergyFader(25.0)
    part = MotionFrames(dance.local_quats[:8], dance.root_translation[:8], 25.0, 0.0)
    assert fader.apply(part, 1.0) is part
    out = _run(EnergyFader(25.0), dance, 1.0)
    np.testing.assert_array_equal(out.local_quats, dance.local_quats)
    np.testing.assert_array_equal(out.root_translation, dance.root_translation)


def test_half_energy_halves_the_moves_about_the_reference_pose():
    dance = _dance(400)
    fader = EnergyFader(25.0)
    out = _run(fader, dance, 0.5)
    assert fader.amplitude == 0.5
    # frame-to-frame joint speed (the kinetic side) halves once the glide has settled (after 1 s)
    v_in = _angle(dance.local_quats[26:, 1:], dance.local_quats[25:-1, 1:]).mean()
    v_out = _angle(out.local_quats[26:, 1:], out.local_quats[25:-1, 1:]).mean()
    assert v_out == pytest.approx(0.5 * v_in, rel=0.1)
    bob_in = np.ptp(dance.root_translation[200:, 1])
    bob_out = np.ptp(out.root_translation[200:, 1])
    assert bob_out == pytest.approx(0.5 * bob_in, rel=0.15)
    assert np.allclose(np.linalg.norm(out.local_quats, axis=-1), 1.0, atol=1e-5)


def test_zero_energy_holds_the_mean_posture_and_two_moves_further():
    dance = _dance(400)
    still = _run(EnergyFader(25.0), dance, 0.0)
    big = _run(EnergyFader(25.0), dance, 2.0)
    v = {name: _angle(m.local_quats[101:, 1:], m.local_quats[100:-1, 1:]).mean()
         for name, m in (("in", dance), ("still", still), ("big", big))}
    assert v["still"] < 0.1 * v["in"]
    assert v["big"] == pytest.approx(1.5 * v["in"], rel=0.1)  # over_gain 0.5: the fader's 2 is 1.5x
    # the held posture is the dance's own mean posture: close to the posture it swings about
    assert _angle(still.local_quats[200:], dance.local_quats[200:]).max() < 0.45
    # the pelvis's rotation (the dancer's facing) is left as generated
    np.testing.assert_array_equal(still.local_quats[:, 0], dance.local_quats[:, 0])


def test_turns_and_joints_far_from_their_mean_do_not_pop():
    # a dancer spinning (pelvis, 1 turn/s) while one arm whirls full circles (0.5 /s) about its rest pose:
    # joints pass 180 degrees from their running mean, where the shortest arc flips side
    n, fps = 200, 25.0
    t = np.arange(n) / fps
    dance = _dance(n)
    spin = np.stack([np.zeros(n), 2 * np.pi * 1.0 * t, np.zeros(n)], -1)
    whirl = np.stack([2 * np.pi * 0.5 * t, np.zeros(n), np.zeros(n)], -1)
    q = dance.local_quats.copy()
    q[:, 0] = roma.rotvec_to_unitquat(torch.from_numpy(spin)).numpy()
    q[:, 18] = roma.rotvec_to_unitquat(torch.from_numpy(whirl)).numpy()
    dance = MotionFrames(q.astype(np.float32), dance.root_translation, fps, 0.0)
    step_in = _angle(dance.local_quats[1:], dance.local_quats[:-1]).max()
    for e in (0.0, 0.5, 2.0):
        out = _run(EnergyFader(fps), dance, e)
        step_out = _angle(out.local_quats[1:], out.local_quats[:-1]).max()
        assert step_out < 1.6 * step_in, (e, step_out, step_in)  # no single-frame flip (those are 2-3 rad)


def test_low_fader_calms_a_joint_that_swings_far_from_its_mean():
    # an arm swinging +-150 degrees at 1 Hz: half the time beyond 90 degrees from its mean, where the cos^2 fade
    # passes it through; below a fader of 0.5 the calming smoother takes over there
    n, fps = 300, 25.0
    t = np.arange(n) / fps
    dance = _dance(n)
    q = dance.local_quats.copy()
    swing = np.stack([2.6 * np.sin(2 * np.pi * 1.0 * t), np.zeros(n), np.zeros(n)], -1)
    q[:, 18] = roma.rotvec_to_unitquat(torch.from_numpy(swing)).numpy()
    dance = MotionFrames(q.astype(np.float32), dance.root_translation, fps, 0.0)
    arm_in = _angle(dance.local_quats[1:, 18], dance.local_quats[:-1, 18])
    arm = {}
    for follow in (1.0, 0.1):
        out = _run(EnergyFader(fps, EnergyConfig(calm_follow=follow)), dance, 0.0)
        arm[follow] = _angle(out.local_quats[1:, 18], out.local_quats[:-1, 18])
        assert np.allclose(np.linalg.norm(out.local_quats, axis=-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(out.local_quats[:, 0], dance.local_quats[:, 0])  # the facing as generated
    assert arm[1.0][50:].mean() > 0.8 * arm_in[50:].mean()  # without the smoother the fade lets the arm through
    assert arm[0.1][50:].mean() < 0.4 * arm_in[50:].mean()
    assert arm[0.1].max() <= arm_in.max()  # and no faster than generated (the fade alone swings it through faster)
    # from a fader of 0.5 up the smoother does nothing: the same frames as without it
    for e in (0.5, 1.0, 2.0):
        a = _run(EnergyFader(fps, EnergyConfig(calm_follow=0.1)), dance, e)
        b = _run(EnergyFader(fps, EnergyConfig(calm_follow=1.0)), dance, e)
        np.testing.assert_array_equal(a.local_quats, b.local_quats)
    # the lag built up at 0 closes without a pop when the fader comes back (the step is capped), then exactly
    step_in = _angle(dance.local_quats[1:], dance.local_quats[:-1]).max()
    for back in (12, 13, 14, 15, 16, 17):
        energy = [1.0] * 8 + [0.0] * (back - 8) + [1.0] * (n // 8 + 1 - back)
        out = _run(EnergyFader(fps, EnergyConfig(calm_follow=0.1)), dance, energy)
        assert _angle(out.local_quats[1:], out.local_quats[:-1]).max() < 1.25 * step_in, back
        np.testing.assert_array_equal(out.local_quats[-40:], dance.local_quats[-40:])
    # also when the amplitude snaps back at once (no glide): the output catches up, no faster than generated
    snap = EnergyConfig(calm_follow=0.1, glide_s=0.001)
    for back in (10, 12, 13, 15):
        out = _run(EnergyFader(fps, snap), dance, [1.0] * 8 + [0.0] * (back - 8) + [1.0] * (n // 8 + 1 - back))
        assert _angle(out.local_quats[1:], out.local_quats[:-1]).max() < 1.25 * step_in, back
        np.testing.assert_array_equal(out.local_quats[-40:], dance.local_quats[-40:])
    # and in one-frame calls, where the call after the return already finds the amplitude at rest
    out = _run(EnergyFader(fps, snap), dance, [1.0] * 64 + [0.0] * 40 + [1.0] * (n - 104), step=1)
    assert _angle(out.local_quats[1:], out.local_quats[:-1]).max() < 1.25 * step_in
    with pytest.raises(ConfigError, match="calm_follow"):
        EnergyFader(fps, EnergyConfig(calm_follow=0.0))


def test_a_bad_frame_does_not_poison_the_reference():
    dance = _dance(64)

    def chunk(i, q=None, p=None):
        return MotionFrames(dance.local_quats[8 * i:8 * i + 8] if q is None else q,
                            dance.root_translation[8 * i:8 * i + 8] if p is None else p, 25.0, 0.32 * i)

    fader = EnergyFader(25.0)
    assert np.isfinite(fader.apply(chunk(0), 0.5).local_quats).all()
    good = (fader._mean_q.copy(), fader._mean_p.copy(), fader.amplitude)
    nan_q = dance.local_quats[8:16].copy()
    nan_q[3, 5] = np.nan
    inf_p = dance.root_translation[16:24].copy()
    inf_p[5, 1] = np.inf
    zero_q = np.zeros_like(dance.local_quats[24:32])
    long_q = 2.0 * dance.local_quats[32:40]  # not unit: not a rotation
    for i, bad in ((1, chunk(1, q=nan_q)), (2, chunk(2, p=inf_p)), (3, chunk(3, q=zero_q)), (4, chunk(4, q=long_q))):
        assert fader.apply(bad, 0.5) is bad, i  # passed on as it is (the generator counts and replaces bad frames)
        np.testing.assert_array_equal(fader._mean_q, good[0])  # ... and kept out of the reference
        np.testing.assert_array_equal(fader._mean_p, good[1])
        assert fader.amplitude == good[2]
    later = fader.apply(chunk(5), 0.5)
    assert np.isfinite(later.local_quats).all() and np.isfinite(later.root_translation).all()
    assert not np.array_equal(later.local_quats, dance.local_quats[40:48])


def test_fader_changes_glide_and_moving_it_back_returns_the_dance():
    dance = _dance(300)
    energy = [1.0] * 10 + [0.0] * 10 + [1.0] * (300 // 8 + 1 - 20)
    out = _run(EnergyFader(25.0, EnergyConfig(glide_s=0.25)), dance, energy)
    d = _angle(out.local_quats, dance.local_quats).max(axis=1)  # (n,) largest joint deviation per frame
    assert d[:80].max() == 0.0
    jumps = _angle(out.local_quats[1:], out.local_quats[:-1]).max(axis=1)
    jumps_in = _angle(dance.local_quats[1:], dance.local_quats[:-1]).max(axis=1)
    assert jumps.max() <= jumps_in.max() + 0.02  # no pop when the fader jumps from 1 to 0 and back
    # what a pop looks like (without the calming smoother, which would catch this one too)
    snap = _run(EnergyFader(25.0, EnergyConfig(glide_s=0.001, calm_follow=1.0)), dance, energy)
    assert _angle(snap.local_quats[1:], snap.local_quats[:-1]).max() > jumps_in.max() + 0.1
    fader, amps = EnergyFader(25.0, EnergyConfig(glide_s=0.25)), []
    for k in range(6):  # it glides: 0.25 s time constant, so a third of the way after one 8-frame step
        fader.apply(MotionFrames(dance.local_quats[8 * k:8 * k + 8], dance.root_translation[8 * k:8 * k + 8], 25.0, 0.0),
                    0.0)
        amps.append(fader.amplitude)
    assert 0.2 < amps[0] < 0.4 and all(a > b for a, b in zip(amps, amps[1:])) and amps[-1] < 0.01
    assert d[-40:].max() < 1e-4  # back at 1: the generated dance again, exactly once the glide settles


def test_fader_amplitude_mapping_and_bad_values():
    assert fader_amplitude(0.0) == 0.0 and fader_amplitude(0.4) == 0.4 and fader_amplitude(1.0) == 1.0
    assert fader_amplitude(2.0) == 1.5 and fader_amplitude(9.0) == 1.5 and fader_amplitude(-3.0) == 0.0
    assert fader_amplitude(float("nan")) == 1.0 and fader_amplitude(float("inf")) == 1.0 and fader_amplitude(None) == 1.0
    assert fader_amplitude(2.0, over_gain=1.0) == 2.0
    assert fader_amplitude("loud") == 1.0 and fader_amplitude([1, 2]) == 1.0  # not a number: the rest position
    with pytest.raises(ConfigError, match="tau_s"):
        EnergyFader(25.0, EnergyConfig(tau_s=0.0))
    with pytest.raises(ConfigError, match="fps"):
        EnergyFader(0.0)


def test_learned_generator_fades_its_frames_without_touching_its_sampling_or_stall_guard():
    from livedance.engine import build_generator
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator, GeneratorConfig
    from livedance.model.representation import Representation
    from livedance.model.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(codebook_size=32, latent_dim=16, width=32, kmeans_init=False)).eval()
    cfg = GeneratorConfig(d_model=32, n_layers=2, chunk_layers=1, n_heads=2, codebook_size=32, window=4, d_state=4)
    graph = StepGraph(DanceGenerator(cfg).eval(), tok).eval()
    gens = {e: build_generator(graph, Representation(), "torch", seed=5) for e in (1.0, 0.2)}
    rng = np.random.default_rng(0)
    frames = {e: [] for e in gens}
    t = 3.0
    for _ in range(30):
        f = rng.normal(size=(14, 180)).astype(np.float32)
        for e, g in gens.items():
            frames[e].append(g.step(MusicContext(f, t - 0.2 + np.arange(14) / 43.07, 118.0, 0.25, 0.9, t, energy=e)))
        assert (gens[1.0]._pend_codes == gens[0.2]._pend_codes).all()  # the same dance was sampled
        t += 0.32
    assert gens[1.0].n_stall_steps == gens[0.2].n_stall_steps  # a low fader is not a stall
    q = {e: np.concatenate([m.local_quats for m in v])[50:] for e, v in frames.items()}
    speed = {e: _angle(v[1:, 1:22], v[:-1, 1:22]).mean() for e, v in q.items()}
    assert speed[0.2] < 0.4 * speed[1.0]
