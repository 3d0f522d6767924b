"""Units of the live loop: slerp, motion timeline, deadline clock, procedural dancer, OSC controls, endpoints."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from livedance.bridges.fk import forward_kinematics
from livedance.bridges.frame import SMPLX_PARENTS
from livedance.engine.base import MotionFrames, MotionGenerator, MusicContext
from livedance.errors import ConfigError
from livedance.eval.beat_align import motion_beats
from livedance.live.clock import DeadlineClock
from livedance.live.controls import ControlServer, ControlState
from livedance.live.procedural import ProceduralConfig, ProceduralGenerator
from livedance.live.rest import default_rest_offsets
from livedance.live.setup import parse_endpoint
from livedance.live.timeline import MotionTimeline, slerp


def _music(t, bpm=120.0, phase=0.0, conf=1.0, energy=1.0):
    return MusicContext(np.zeros((0, 180), np.float32), np.zeros(0), bpm, phase, conf, t, energy)


def _dance(gen, seconds, bpm=120.0, conf=1.0, beat0=0.0, t_start=0.0):
    """Step ``gen`` over ``seconds`` with a constant grid (a beat at beat0); returns (quats, root, times)."""
    qs, rs, ts = [], [], []
    t = t_start
    while t < t_start + seconds:
        phase = ((t - beat0) * bpm / 60.0) % 1.0
        f = gen.step(_music(t, bpm, phase, conf))
        qs.append(f.local_quats)
        rs.append(f.root_translation)
        ts.append(f.t0_s + np.arange(len(f)) / f.fps)
        t = f.t0_s + len(f) / f.fps
    return np.concatenate(qs), np.concatenate(rs), np.concatenate(ts)


def _positions(q, r):
    rest = default_rest_offsets()
    return np.stack([forward_kinematics(q[i], rest, r[i], SMPLX_PARENTS)[1] for i in range(len(q))])


# ---------------------------------------------------------------------------------------------- slerp
def test_slerp_matches_roma_and_takes_the_short_arc():
    from livedance.motion.rotations import quat_slerp_np

    q0 = Rotation.random(55, random_state=1).as_quat()
    q1 = Rotation.random(55, random_state=2).as_quat()
    for t in (0.0, 0.3, 0.77, 1.0):
        ours = slerp(q0, q1, t)
        ref = quat_slerp_np(q0, q1, t)
        dots = np.abs(np.sum(ours * ref, axis=1))
        np.testing.assert_allclose(dots, 1.0, atol=1e-6)
    # -q1 is the same rotation: the midpoint must be the same rotation as with q1
    mid_a = Rotation.from_quat(slerp(q0, q1, 0.5))
    mid_b = Rotation.from_quat(slerp(q0, -q1, 0.5))
    assert np.allclose((mid_a.inv() * mid_b).magnitude(), 0.0, atol=1e-6)
    # constant angular speed: halfway in time is halfway in angle
    a = Rotation.from_quat(q0[:1]); b = Rotation.from_quat(q1[:1])
    half = Rotation.from_quat(slerp(q0[:1], q1[:1], 0.5))
    assert np.isclose((a.inv() * half).magnitude()[0], 0.5 * (a.inv() * b).magnitude()[0], atol=1e-6)


# ---------------------------------------------------------------------------------------------- timeline
def _frames(t0, n, fps, angle0=0.0, step=0.1):
    ang = angle0 + step * np.arange(n)
    q = np.tile(np.array([0, 0, 0, 1.0], np.float32), (n, 55, 1))
    q[:, 0] = Rotation.from_euler("y", ang[:, None]).as_quat()
    r = np.zeros((n, 3), np.float32)
    r[:, 0] = np.arange(n)
    return MotionFrames(q, r, fps, t0)


def test_timeline_interpolates_between_model_frames_and_flags_misses():
    tl = MotionTimeline(capacity=64)
    assert tl.sample(0.0) is None
    tl.append(_frames(1.0, 5, 25.0))  # frames at 1.00, 1.04, ... 1.16 s; root x = 0..4
    s = tl.sample(1.05)  # a quarter of the way from frame 1 to frame 2
    assert not s.missed
    np.testing.assert_allclose(s.root[0], 1.25, atol=1e-5)
    yaw = Rotation.from_quat(s.local_quats[0]).as_rotvec()[1]
    assert np.isclose(yaw, 0.125, atol=1e-5)
    late = tl.sample(1.30)  # past the newest frame: the newest frame is held, and it is a miss
    assert late.missed and late.root[0] == 4.0
    early = tl.sample(0.5)
    assert not early.missed and early.root[0] == 0.0
    # a new run that starts inside the stored one replaces the old future
    tl.append(_frames(1.08, 3, 25.0, angle0=2.0))
    assert np.isclose(tl.end_s, 1.16) and tl.sample(1.08).root[0] == 0.0
    assert np.isclose(Rotation.from_quat(tl.sample(1.12).local_quats[0]).as_rotvec()[1], 2.1, atol=1e-5)


def test_timeline_ring_keeps_the_newest_frames():
    tl = MotionTimeline(capacity=8)
    for k in range(5):
        tl.append(_frames(k * 4 / 60, 4, 60.0))
    assert tl.count == 8
    assert np.isclose(tl.end_s, 19 / 60)
    assert tl.sample(0.0).root[0] == 0.0  # oldest kept frame (frame 12 overall = run 3, index 0)
    assert np.isclose(tl.sample(12.5 / 60).root[0], 0.5, atol=1e-5)


def test_an_overwrite_after_the_ring_wrapped_interpolates_between_the_frames_it_kept():
    tl = MotionTimeline(capacity=4)
    tl.append(_frames(0.0, 10, 10.0))  # 0.0 .. 0.9 s, root x = 0..9; the ring keeps 0.6 .. 0.9
    new = _frames(0.7, 1, 10.0)
    new.root_translation[0, 0] = 50.0  # one new frame at 0.7 s replaces 0.7, 0.8, 0.9
    tl.append(new)
    assert tl.count == 2 and np.isclose(tl.end_s, 0.7)
    np.testing.assert_allclose([tl.sample(t).root[0] for t in (0.6, 0.65, 0.7)], [6.0, 28.0, 50.0], atol=1e-4)
    assert tl.sample(0.5).root[0] == 6.0  # before the oldest kept frame: held, not a dropped slot


# ---------------------------------------------------------------------------------------------- clock
def test_deadline_clock_stays_on_the_absolute_grid_and_skips_after_a_stall():
    clk = DeadlineClock(fps=100.0, spin_s=0.001)
    ticks = [clk.wait() for _ in range(5)]
    for idx, due, woke in ticks:
        assert np.isclose(due, clk.t_start + idx * 0.01)  # absolute deadlines: no drift
        assert woke >= due
    assert [t[0] for t in ticks] == sorted({t[0] for t in ticks})
    assert ticks[-1][0] == 4 + clk.skipped  # tick indices count the waits plus the skipped ticks
    skipped_before = clk.skipped
    time.sleep(0.055)  # the thread was held up for more than five periods
    idx, due, woke = clk.wait()
    assert clk.skipped - skipped_before >= 4 and idx == 5 + clk.skipped
    assert np.isclose(due, clk.t_start + idx * 0.01)  # still on the grid
    stop = threading.Event()
    stop.set()
    assert clk.wait(stop) is None
    with pytest.raises(ConfigError, match="fps"):
        DeadlineClock(fps=0)


# ---------------------------------------------------------------------------------------------- procedural
def test_procedural_dancer_implements_the_step_interface():
    gen = ProceduralGenerator()
    assert isinstance(gen, MotionGenerator)
    f = gen.step(_music(2.0))
    assert f.local_quats.shape == (3, 55, 4) and f.local_quats.dtype == np.float32
    assert f.root_translation.shape == (3, 3) and f.t0_s == 2.0 and f.fps == 60.0
    np.testing.assert_allclose(np.linalg.norm(f.local_quats, axis=2), 1.0, atol=1e-5)


@pytest.mark.parametrize("bpm,beat0", [(120.0, 0.13), (97.0, 0.4)])
def test_procedural_motion_beats_land_on_the_music_beats(bpm, beat0):
    gen = ProceduralGenerator()
    q, r, t = _dance(gen, 12.0, bpm=bpm, beat0=beat0)
    keep = t > 2.0  # after the fade-in
    pos = _positions(q[keep], r[keep])
    tt = t[keep]
    mb = motion_beats(pos, 60.0)
    mb_t = tt[mb] + 0.5 / 60  # speed sample k lies between frames k and k + 1
    period = 60.0 / bpm
    beats = beat0 + period * np.arange(int((tt[-1] - beat0) / period) + 1)
    beats = beats[(beats > tt[0] + 0.2) & (beats < tt[-1] - 0.2)]
    off = np.array([np.min(np.abs(mb_t - b)) for b in beats])
    assert np.median(off) < 1.5 / 60, np.median(off)
    # and there is about one motion beat per music beat (not two)
    assert 0.8 * len(beats) <= len(mb) <= 1.3 * len(beats) + 2


def test_procedural_idles_without_confidence_and_fades_in_and_out():
    gen = ProceduralGenerator(ProceduralConfig(fade_s=0.5))
    q, r, _ = _dance(gen, 3.0, conf=0.0)
    idle_speed = np.abs(np.diff(_positions(q, r), axis=0)).mean()
    assert gen.dance_amount == 0.0
    q, r, _ = _dance(gen, 3.0, conf=1.0, t_start=3.0)
    dance_speed = np.abs(np.diff(_positions(q[60:], r[60:]), axis=0)).mean()
    assert gen.dance_amount == 1.0 and dance_speed > 10 * idle_speed
    _dance(gen, 0.55, conf=0.0, t_start=6.0)
    assert gen.dance_amount == 0.0  # back to idle within fade_s


def test_procedural_follows_a_phase_jump_smoothly():
    gen = ProceduralGenerator()
    _dance(gen, 2.0)
    # the tracker shifts its grid by half a beat: the PLL converges within a few hundred ms
    q, r, t = _dance(gen, 2.0, beat0=0.25, t_start=2.0)
    root_y = r[:, 1]
    assert np.abs(np.diff(root_y)).max() < 0.01  # no jump (m per frame)
    assert abs(((gen._theta - (t[-1] + 1 / 60 - 0.25) * 2.0) + 0.5) % 1.0 - 0.5) < 0.05


def test_procedural_styles():
    gen = ProceduralGenerator()
    gen.set_style("wave")
    assert gen.style == "wave"
    gen.set_style(1)
    assert gen.style == "bounce"
    with pytest.raises(ConfigError, match="unknown procedural style"):
        gen.set_style("tango")
    with pytest.raises(ConfigError, match="out of range"):
        gen.set_style(7)


# ---------------------------------------------------------------------------------------------- controls
def test_control_state_applies_valid_messages_and_counts_malformed_ones():
    c = ControlState()
    assert c.apply("/livedance/energy", [1.5]) and c.energy == 1.5
    assert c.apply("/livedance/energy", [9]) and c.energy == 2.0  # clamped
    assert c.apply("/livedance/freeze", []) and c.frozen
    assert c.apply("/livedance/resume", []) and not c.frozen
    assert c.apply("/livedance/nudge", [0.25]) and c.apply("/livedance/nudge", [0.25])
    assert np.isclose(c.phase_offset_beats, 0.5)
    assert c.apply("/livedance/nudge/bpm", [-2.0]) and c.bpm_offset == -2.0
    assert c.apply("/livedance/style", ["wave"]) and c.take_style_request() == "wave"
    assert c.take_style_request() is None
    assert c.apply("/livedance/style/strength", [0.5]) and c.apply("/livedance/style/strength", [7])
    assert c.take_style_strength_request() == 2.0 and c.take_style_strength_request() is None  # clamped, taken once
    assert c.apply("/livedance/style/strength", [-1]) and c.take_style_strength_request() == 0.0
    assert c.apply("/livedance/style", [2]) and c.apply("/livedance/style/strength", [1.5])
    assert c.take_style_requests() == (2, 1.5) and c.take_style_requests() == (None, None)  # together, once
    assert c.accent is None  # the configured accent until a VJ moves the fader
    assert c.apply("/livedance/accent", [0.3]) and c.accent == 0.3
    assert c.apply("/livedance/accent", [2]) and c.accent == 0.5  # clamped
    assert c.apply("/livedance/pace", [0.6]) and c.take_pace_request() == 0.6 and c.take_pace_request() is None
    assert c.apply("/livedance/pace", [9]) and c.take_pace_request() == 3.0  # clamped
    assert c.apply("/livedance/pace", [0.01]) and c.take_pace_request() == 0.05
    assert c.apply("/livedance/pace", [0]) and c.take_pace_request() == 0.0  # the model's own pace again
    bad = [
        ("/livedance/energy", ["loud"]), ("/livedance/energy", []), ("/livedance/energy", [float("nan")]),
        ("/livedance/freeze", [1]), ("/livedance/style", [1.5]), ("/livedance/unknown", [1.0]),
        ("/livedance/nudge", [True]), ("/livedance/accent", ["hard"]), ("/livedance/style/strength", [float("inf")]),
        ("/livedance/style/strength", []), ("/livedance/pace", ["fast"]), ("/livedance/pace", [float("nan")]),
        ("/livedance/pace", [-0.5]),  # no pace is negative: refused, not read as "the model's own" (0)
    ]
    for addr, args in bad:
        assert not c.apply(addr, args)
    assert c.malformed == len(bad) and c.received == 19 and c.energy == 2.0 and c.accent == 0.5


def test_control_server_receives_over_udp_and_counts_garbage():
    from pythonosc.udp_client import SimpleUDPClient

    state = ControlState()
    srv = ControlServer(state, port=0)
    srv.start()
    try:
        cl = SimpleUDPClient("127.0.0.1", srv.port)
        cl.send_message("/livedance/energy", 0.5)
        cl.send_message("/livedance/energy", "x")
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.sendto(b"\x00garbage that is not OSC", ("127.0.0.1", srv.port))
        raw.close()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and state.received + state.malformed < 3:
            time.sleep(0.01)
    finally:
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 1.0
    assert state.energy == 0.5 and state.received == 1 and state.malformed == 2


def test_control_server_port_in_use_is_a_config_error():
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    import gc
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            with pytest.raises(ConfigError, match="control-port"):
                ControlServer(ControlState(), port=busy.getsockname()[1]).start()
            gc.collect()
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)]  # the failed socket was closed
    finally:
        busy.close()


# ---------------------------------------------------------------------------------------------- endpoints
def test_parse_endpoint():
    assert parse_endpoint("127.0.0.1:39539", "--vmc") == ("127.0.0.1", 39539)
    assert parse_endpoint(":7000", "--osc") == ("127.0.0.1", 7000)
    assert parse_endpoint("[::1]:9000", "--osc") == ("::1", 9000)
    for bad, msg in [("localhost", "HOST:PORT"), ("1.2.3.4:0", "out of range"), ("1.2.3.4:http", "not a number"),
                     ("300.1.1.1:5", "IPv4"), ("1.2.3.4:70000", "out of range")]:
        with pytest.raises(ConfigError, match=msg):
            parse_endpoint(bad, "--vmc")


def test_apply_style_sets_what_the_generator_has_and_names_what_it_lacks():
    from livedance.engine.base import apply_style

    class Styled:
        style, style_strength = "tango", 1.0

        def __init__(self):
            self.calls = []

        def set_style(self, style, strength=None):
            self.calls.append((style, strength))

    class Plain:
        def __init__(self):
            self.calls = []

        def set_style(self, style):
            self.calls.append(style)

    g = Styled()
    apply_style(g, None, None)
    assert g.calls == []  # nothing asked, nothing changed
    apply_style(g, None, 1.5)
    apply_style(g, "waltz", 0.5)
    apply_style(g, "rumba")
    assert g.calls == [("tango", 1.5), ("waltz", 0.5), ("rumba", None)]  # a strength alone keeps the style
    p = Plain()
    apply_style(p, "groove")
    assert p.calls == ["groove"]
    with pytest.raises(ConfigError, match="no style strength"):
        apply_style(p, "groove", 1.5)
    with pytest.raises(ConfigError, match="has no styles"):
        apply_style(object(), "tango")
