"""Raw OSC sender: liblo's ``oscdump`` (a third-party OSC receiver) prints what we send; FK positions;
bad settings raise ConfigError; no receiver gives one warning."""

import logging
import shutil
import subprocess
import time

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from scipy.spatial.transform import Rotation

from livedance.bridges.fk import forward_kinematics
from livedance.bridges.frame import SMPLX_JOINT_NAMES, SMPLX_PARENTS, PoseFrame, joint_index
from livedance.bridges.osc_raw import MusicState, RawOSCSender
from livedance.errors import ConfigError

from fakes_io import free_udp_port


def make_frame(seed: int = 0, t: float = 5.0) -> PoseFrame:
    rng = np.random.default_rng(seed)
    off = rng.normal(0, 0.05, (55, 3))
    off[0] = [0, 0.9, 0]
    q = Rotation.random(55, random_state=seed).as_quat()
    return PoseFrame(t, q, [0.3, 0.95, -0.1], off)


def canonical(q) -> np.ndarray:
    """Unit quaternion(s) with w >= 0: what the sender puts on the wire."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:] < 0, -q, q)


def run_oscdump(port: int, send, expect_lines: int, tmp_path, timeout: float = 5.0) -> list[list[str]]:
    """Start ``oscdump -L port`` writing to a file, call ``send()`` once it is up, collect its lines."""
    exe = shutil.which("oscdump")
    if exe is None:
        pytest.skip("oscdump not installed (Debian package liblo-tools; scripts/setup.sh installs it)")
    out = tmp_path / f"oscdump_{port}.txt"
    with open(out, "w") as fh:
        proc = subprocess.Popen([exe, "-L", str(port)], stdout=fh, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.2)  # let oscdump bind its port
        send()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(out.read_text().splitlines()) >= expect_lines:
                break
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    return [line.split() for line in out.read_text().splitlines() if line.strip()]


def parse(lines: list[list[str]]) -> dict[str, tuple[str, list[float]]]:
    # oscdump line: <timetag> <address> <typetags> <values...> (bundled messages carry the bundle's tag)
    out = {}
    for toks in lines:
        addr, types, vals = toks[1], toks[2], toks[3:]
        out[addr] = (types, [float(v) for v in vals])
    return out


def test_oscdump_receives_vector_layout(tmp_path):
    port = free_udp_port()
    frame = make_frame(1)
    joints = ["pelvis", "left_wrist", "right_thumb3"]
    tx = RawOSCSender("127.0.0.1", port, joints=joints, max_datagram_bytes=256)
    music = MusicState(beat_phase=0.25, bpm=128.0, energy=0.75)
    expect = 1 + 2 * len(joints) + 3
    lines = run_oscdump(port, lambda: tx.send(frame, music), expect, tmp_path)
    tx.close()
    got = parse(lines)
    assert len(got) == expect, f"oscdump printed {len(lines)} lines: {lines}"
    _, pos = forward_kinematics(frame.local_quats, frame.rest_offsets, frame.root_position, SMPLX_PARENTS)
    for name in joints:
        j = joint_index(name)
        types, vals = got[f"/livedance/{name}/rot"]
        assert types == "ffff"
        np.testing.assert_allclose(vals, canonical(frame.local_quats[j]), atol=2e-6)
        types, vals = got[f"/livedance/{name}/pos"]
        assert types == "fff"
        np.testing.assert_allclose(vals, pos[j], atol=2e-6)
    assert got["/livedance/beat"] == ("f", [0.25])
    assert got["/livedance/bpm"] == ("f", [128.0])
    assert got["/livedance/energy"] == ("f", [0.75])
    assert got["/livedance/t"] == ("f", [0.0])


def test_oscdump_receives_scalar_layout_with_prefix(tmp_path):
    port = free_udp_port()
    frame = make_frame(2)
    tx = RawOSCSender("127.0.0.1", port, prefix="/vj/dancer1", joints=["head"], send_positions=False,
                      layout="scalar")
    lines = run_oscdump(port, lambda: tx.send(frame), 1 + 4, tmp_path)
    tx.close()
    got = parse(lines)
    q = canonical(frame.local_quats[joint_index("head")])
    for c, v in zip("xyzw", q):
        types, vals = got[f"/vj/dancer1/head/rot/{c}"]
        assert types == "f"
        assert vals[0] == pytest.approx(float(v), abs=2e-6)


def test_fk_positions_are_right_for_a_known_pose():
    off = np.zeros((55, 3))
    off[joint_index("left_hip")] = [0.1, -0.1, 0.0]
    off[joint_index("left_knee")] = [0.0, -0.4, 0.0]
    q = np.tile([0, 0, 0, 1.0], (55, 1))
    q[0] = Rotation.from_euler("y", 90, degrees=True).as_quat()  # turn to face +x: left side goes to -z
    _, pos = forward_kinematics(q, off, [1.0, 0.9, 0.0], SMPLX_PARENTS)
    np.testing.assert_allclose(pos[joint_index("left_hip")], [1.0, 0.8, -0.1], atol=1e-12)
    np.testing.assert_allclose(pos[joint_index("left_knee")], [1.0, 0.4, -0.1], atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"prefix": "livedance"}, "prefix"),
        ({"prefix": "/live dance"}, "prefix"),
        ({"prefix": "/a/*"}, "prefix"),
        ({"joints": ["pelvis", "tail"]}, "tail"),
        ({"layout": "matrix"}, "layout"),
        ({"port": 0}, "port"),
        ({"host": "300.0.0.1"}, "host"),
    ],
)
def test_invalid_settings_raise_config_error(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        RawOSCSender(**kwargs)


def test_no_receiver_warns_once(caplog):
    frame = make_frame(3)
    with caplog.at_level(logging.WARNING, logger="livedance.bridges"):
        with RawOSCSender("127.0.0.1", free_udp_port()) as tx:
            for _ in range(30):
                tx.send(frame, MusicState(0.5, 120.0))
                time.sleep(0.001)
            assert tx.stats.send_errors > 0
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_all_joints_by_default():
    tx = RawOSCSender("127.0.0.1", free_udp_port(), send_positions=False)
    msgs = tx.build_messages(make_frame(4))
    tx.close()
    assert [OscMessage(m).address for m in msgs[1:]] == [f"/livedance/{n}/rot" for n in SMPLX_JOINT_NAMES]


def test_demo_pattern_waves_the_characters_left_arm_above_the_head():
    from livedance.bridges.demo import demo_frame, demo_rest_offsets

    rest = demo_rest_offsets()
    for t in (0.0, 0.37, 1.2):
        f = demo_frame(t, rest)
        _, pos = forward_kinematics(f.local_quats, f.rest_offsets, f.root_position, SMPLX_PARENTS)
        head, lw, rw = (pos[joint_index(n)] for n in ("head", "left_wrist", "right_wrist"))
        assert lw[1] > head[1] and lw[0] > 0  # left (+x) hand up
        assert rw[1] < pos[joint_index("right_shoulder")][1] and rw[0] < 0  # right hand down


def test_rotations_go_out_unit_length_with_w_not_negative():
    q = Rotation.random(55, random_state=21).as_quat()
    q[q[:, 3] > 0] *= -1.0  # every w negative (the same rotations)
    q *= np.random.default_rng(0).uniform(0.2, 3.0, (55, 1))  # and not unit length
    frame = PoseFrame(1.0, q, [0.0, 0.9, 0.0], make_frame().rest_offsets)
    with RawOSCSender("127.0.0.1", free_udp_port(), send_positions=False) as tx:
        rots = np.array([m.params for m in map(OscMessage, tx.build_messages(frame))
                         if m.address.endswith("/rot")])
    assert rots.shape == (55, 4)
    np.testing.assert_allclose(np.linalg.norm(rots, axis=1), 1.0, atol=1e-6)
    assert np.all(rots[:, 3] >= 0)
    np.testing.assert_allclose(rots, -q / np.linalg.norm(q, axis=1, keepdims=True), atol=1e-6)


def test_a_spin_through_180_degrees_keeps_the_channels_continuous():
    rest = make_frame().rest_offsets
    with RawOSCSender("127.0.0.1", free_udp_port(), joints=["pelvis"], send_positions=False) as tx:
        sent = []
        for yaw in np.arange(170.0, 200.0, 2.0):  # the pelvis turns through 180 degrees (w crosses 0)
            q = np.tile([0.0, 0.0, 0.0, 1.0], (55, 1))
            q[0] = Rotation.from_euler("y", yaw, degrees=True).as_quat()
            msg = [m for m in map(OscMessage, tx.build_messages(PoseFrame(yaw, q, [0, 0.9, 0], rest)))
                   if m.address.endswith("/rot")][0]
            sent.append(msg.params)
    sent = np.array(sent)
    assert sent[0, 3] >= 0  # the first frame: w >= 0
    assert (np.sum(sent[1:] * sent[:-1], axis=1) > 0.99).all()  # no jump to the negated quaternion
    assert sent[-1, 3] < 0  # past 180 degrees: continuity, not w >= 0


def test_an_integer_show_time_goes_out_as_a_float():
    frame = make_frame(t=5)
    with RawOSCSender("127.0.0.1", free_udp_port(), joints=[]) as tx:
        for t in (5, 7):
            frame.t_show_s = t  # an int, also when set after validation
            (msg,) = [m for m in map(OscMessage, tx.build_messages(frame)) if m.address == "/livedance/t"]
            assert b",f\0\0" in msg.dgram and msg.params == [float(t - 5)]
    assert isinstance(PoseFrame(5, frame.local_quats, frame.root_position, frame.rest_offsets).t_show_s, float)


@pytest.mark.parametrize("joints, needle", [("pelvis", "joints 'pelvis'"), (b"pelvis", "joints b'pelvis'"),
                                            (3, "joints 3")])
def test_joints_must_be_a_list_of_names_not_a_string(joints, needle):
    with pytest.raises(ConfigError, match=needle):  # not split into letters
        RawOSCSender(joints=joints)


def test_music_values_that_are_not_numbers_are_left_out():
    with RawOSCSender("127.0.0.1", free_udp_port()) as tx:
        msgs = tx.build_messages(None, MusicState(beat_phase=float("nan"), bpm="fast", energy=0.5))
        tx.send(None, MusicState(beat_phase=0.5, bpm=None, energy=np.inf))
    assert [(m.address, m.params) for m in map(OscMessage, msgs)] == [("/livedance/energy", [0.5])]
