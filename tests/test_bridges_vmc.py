"""VMC sender: a third-party VMC peer (PyPI vmcp) decodes our stream; retargeting is checked by driving
a simulated avatar rig; bad endpoints raise ConfigError; no receiver gives one warning."""

import logging
import time

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from scipy.spatial.transform import Rotation

from livedance.bridges.fk import forward_kinematics
from livedance.bridges.frame import SMPLX_PARENTS, PoseFrame, joint_index
from livedance.bridges.humanoid import HUMANOID_BONES, arm_subtree
from livedance.bridges.osc_transport import pack_bundles
from livedance.bridges.retarget import HumanoidRetargeter
from livedance.bridges.vmc import VMCSender
from livedance.calibration.profiles import parse_profile, unity_to_rh_quat
from livedance.errors import ConfigError

from fakes_io import free_udp_port


def smplx_like_rest() -> np.ndarray:
    """A plausible SMPL-X rest skeleton (metres): arms along +-x, legs down, fingers along the arm."""
    rng = np.random.default_rng(7)
    off = np.zeros((55, 3))
    for j, p in enumerate(SMPLX_PARENTS):
        off[j] = rng.normal(0, 0.03, 3)
    off[0] = [0.0, 0.95, 0.0]
    return off


def random_frame(seed: int, t: float = 0.0, blend=None) -> PoseFrame:
    q = Rotation.random(55, random_state=seed).as_quat()
    return PoseFrame(t_show_s=t, local_quats=q, root_position=[0.1, 0.9, -0.2], rest_offsets=smplx_like_rest(),
                     blendshapes=blend)


def same_rotation(a, b, atol=2e-6):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.allclose(a, b, atol=atol) or np.allclose(a, -b, atol=atol)


# --- third-party peer ------------------------------------------------------------------------------

def test_vmcp_receiver_decodes_our_stream():
    pytest.importorskip("osc4py3", reason="vmcp needs its osc4py3 backend: pip install 'vmcp[osc4py3]'")
    from vmcp.events import (BlendShapeApplyEvent, BlendShapeEvent, BoneTransformEvent, RelativeTimeEvent,
                             RootTransformEvent, StateEvent)
    from vmcp.facades import on_receive
    from vmcp.osc import OSC
    from vmcp.osc.backend.osc4py3 import as_comthreads as backend

    port = free_udp_port()
    events: list = []
    frames = [random_frame(s, t=10.0 + s / 60, blend={"A": 0.25, "Blink": 1.0}) for s in range(3)]
    osc = OSC(backend)
    with osc.open():
        rx = osc.create_receiver("127.0.0.1", port, "livedance_test").open()
        for ev in (BoneTransformEvent, RootTransformEvent, StateEvent, RelativeTimeEvent, BlendShapeEvent,
                   BlendShapeApplyEvent):
            on_receive(rx, ev, events.append)
        time.sleep(0.05)
        with VMCSender("127.0.0.1", port, profile="vrm0", max_datagram_bytes=600) as tx:
            for f in frames:
                assert tx.send(f) >= 1
        deadline = time.monotonic() + 3.0
        need = 3 * (55 + 1 + 1 + 1 + 2 + 1)
        while len(events) < need and time.monotonic() < deadline:
            osc.run()
            time.sleep(0.005)
    bones = [e for e in events if isinstance(e, BoneTransformEvent)]
    assert len(bones) == 3 * 55, f"received {len(bones)} bone events of {3 * 55}"
    last = {e.joint.value: e for e in bones[-55:]}
    assert set(last) == set(HUMANOID_BONES)
    f = frames[-1]
    for j, bone in enumerate(HUMANOID_BONES):
        e = last[bone]
        got_p = [e.position.x, e.position.y, e.position.z]
        got_q = [e.rotation.x, e.rotation.y, e.rotation.z, e.rotation.w]
        x, y, z = (float(v) for v in f.rest_offsets[j])  # Hips: the pelvis's rest position (travel: on the root)
        np.testing.assert_allclose(got_p, [-x, y, z], atol=1e-6)  # right- to left-handed
        qx, qy, qz, qw = (float(v) for v in f.local_quats[j])
        assert same_rotation(got_q, [qx, -qy, -qz, qw]), bone
    roots = [e for e in events if isinstance(e, RootTransformEvent)]
    assert len(roots) == 3 and roots[0].joint == "root"
    x, y, z = np.asarray(f.root_position) - f.rest_offsets[0]  # the pelvis's travel, mirrored to Unity
    np.testing.assert_allclose([roots[-1].position.x, roots[-1].position.y, roots[-1].position.z], [-x, y, z], atol=1e-6)
    states = [e for e in events if isinstance(e, StateEvent)]
    assert len(states) == 3 and states[0].model_state.value == 1
    times = [e.delta for e in events if isinstance(e, RelativeTimeEvent)]
    np.testing.assert_allclose(times, [0.0, 1 / 60, 2 / 60], atol=1e-6)
    blends = [(e.key, e.value) for e in events if isinstance(e, BlendShapeEvent)]
    assert blends[:2] == [("A", 0.25), ("Blink", 1.0)]
    assert sum(isinstance(e, BlendShapeApplyEvent) for e in events) == 3


# --- datagram packing ------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [200, 1400, 8000])
def test_frame_fits_in_few_bounded_bundles_in_order(limit):
    tx = VMCSender("127.0.0.1", free_udp_port(), max_datagram_bytes=limit)
    msgs = tx.build_messages(random_frame(1, blend={"Joy": 0.5}))
    tx.close()
    dgrams = pack_bundles(msgs, limit)
    assert all(len(d) <= limit for d in dgrams)
    assert len(dgrams) < 30  # EVMC4U keeps about 30 packets per Unity frame
    decoded = [m.address for d in dgrams for m in OscBundle(d)]
    assert decoded == [OscMessage(m).address for m in msgs]
    assert decoded[-1] == "/VMC/Ext/Blend/Apply" and decoded[0] == "/VMC/Ext/OK"


# --- retargeting ------------------------------------------------------------------------------------

def _avatar_joint_positions(profile, frame):
    """Simulate a Unity rig that sets Transform.localRotation = received value (EVMC4U), in the
    right-handed frame: the avatar stands in its own rest pose (A-pose arms, arbitrary bone axes)."""
    rest = frame.rest_offsets
    _, p_t = forward_kinematics(np.tile([0, 0, 0, 1.0], (55, 1)), rest, rest[0], SMPLX_PARENTS)
    p_rest = p_t.copy()  # avatar rest joint positions: arms lowered by arm_down_deg about the shoulders
    th = np.radians(profile.arm_down_deg)
    for side, sign in (("Left", -1.0), ("Right", 1.0)):
        sub = [HUMANOID_BONES.index(b) for b in arm_subtree(side)]
        pivot = p_t[sub[0]]
        rot = Rotation.from_rotvec([0, 0, sign * th])
        p_rest[sub] = pivot + rot.apply(p_t[sub] - pivot)
    w_rest = [Rotation.identity()] * 55
    for bone, q in profile.bone_axis_offsets.items():
        w_rest[HUMANOID_BONES.index(bone)] = Rotation.from_quat(unity_to_rh_quat(q))
    # the rig's local bone translations, in its parent's rest frame
    t_local = np.zeros((55, 3))
    for j, p in enumerate(SMPLX_PARENTS):
        if p >= 0:
            t_local[j] = w_rest[p].inv().apply(p_rest[j] - p_rest[p])
    local = HumanoidRetargeter(profile).local_rotations(frame.local_quats)
    w = [None] * 55
    pos = np.zeros((55, 3))
    for j, p in enumerate(SMPLX_PARENTS):
        if p < 0:
            w[j], pos[j] = Rotation.from_quat(local[j]), frame.root_position
        else:
            w[j] = w[p] * Rotation.from_quat(local[j])
            pos[j] = pos[p] + w[p].apply(t_local[j])
    return pos


@pytest.mark.parametrize("arm_down", [0.0, 40.0])
def test_retargeted_rig_reproduces_smplx_joint_positions(arm_down):
    offsets = {b: list(Rotation.random(random_state=i).as_quat()) for i, b in enumerate(HUMANOID_BONES)}
    profile = parse_profile({
        "name": "odd_rig", "rest_pose": "A" if arm_down else "T", "arm_down_deg": arm_down,
        "native_coordinates": {"handedness": "right", "up": "+y", "forward": "+z", "unit_m": 1.0},
        "bone_axis_offsets": offsets,
    })
    frame = random_frame(3)
    _, expected = forward_kinematics(frame.local_quats, frame.rest_offsets, frame.root_position, SMPLX_PARENTS)
    np.testing.assert_allclose(_avatar_joint_positions(profile, frame), expected, atol=1e-5)


def test_left_arm_raised_points_up_in_unity():
    rest = smplx_like_rest()
    rest[joint_index("left_elbow")] = [0.25, 0.0, 0.0]  # upper arm along +x = the character's left
    q = np.tile([0, 0, 0, 1.0], (55, 1))
    q[joint_index("left_shoulder")] = Rotation.from_euler("z", 90, degrees=True).as_quat()  # +x -> +y
    frame = PoseFrame(0.0, q, rest[0], rest)
    pos, rot = HumanoidRetargeter(parse_profile({**_T, "name": "vrm"})).to_unity(frame)
    upper, lower = HUMANOID_BONES.index("LeftUpperArm"), HUMANOID_BONES.index("LeftLowerArm")
    np.testing.assert_allclose(pos[lower], [-0.25, 0, 0], atol=1e-7)  # left is -x in Unity
    # Unity applies rotations with the same numeric matrices: the forearm now sits straight above
    np.testing.assert_allclose(Rotation.from_quat(rot[upper]).apply(pos[lower]), [0, 0.25, 0], atol=1e-7)


_T = {"rest_pose": "T", "native_coordinates": {"handedness": "right", "up": "+y", "forward": "+z", "unit_m": 1.0}}


def _decoded(tx: VMCSender, frame: PoseFrame) -> dict:
    return {m.params[0]: m.params[1:] for m in map(OscMessage, tx.build_messages(frame))
            if m.address in ("/VMC/Ext/Root/Pos", "/VMC/Ext/Bone/Pos")}


@pytest.mark.parametrize("bone_positions", [False, True])
def test_the_dancers_travel_reaches_an_evmc4u_avatar_with_or_without_bone_positions(bone_positions):
    """EVMC4U (Root Position Synchronize on, as shipped) puts Root/Pos on the model root and, only with Bone
    Position Synchronize, the Hips position on the Hips; its Hips keeps its own rest position otherwise. Either
    way the avatar's pelvis must follow the dancer: 1 m to its left, 0.5 m forward, a 35 cm squat."""
    rest = smplx_like_rest()
    q = np.tile([0, 0, 0, 1.0], (55, 1))
    pelvis = rest[0] + np.array([1.0, -0.35, 0.5])
    tx = VMCSender("127.0.0.1", free_udp_port())
    got = _decoded(tx, PoseFrame(0.0, q, pelvis, rest))
    tx.close()
    avatar_hips_local = np.array([0.0, 0.82, 0.0])  # the avatar's own pelvis height (a smaller body)
    hips_local = np.array(got["Hips"][:3]) if bone_positions else avatar_hips_local
    pelvis_unity = np.array(got["root"][:3]) + hips_local  # the root's rotation is the identity (vrm0)
    rest_unity = rest[0] if bone_positions else avatar_hips_local * [-1, 1, 1]
    np.testing.assert_allclose(pelvis_unity, (rest_unity + [1.0, -0.35, 0.5]) * [-1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(got["Hips"][:3], rest[0] * [-1, 1, 1], atol=1e-6)  # constant: no double travel


def test_travel_turns_with_the_root_yaw_and_scales_with_the_avatar():
    import dataclasses

    from livedance.calibration.profiles import load_profile

    rest = smplx_like_rest()
    frame = PoseFrame(0.0, np.tile([0, 0, 0, 1.0], (55, 1)), rest[0] + [0.0, 0.0, 1.0], rest)  # 1 m forward (+z)
    turned = dataclasses.replace(load_profile("vrm0"), root_yaw_deg=90.0)
    tx = VMCSender("127.0.0.1", free_udp_port(), profile=turned, travel_scale=0.5)
    root = _decoded(tx, frame)["root"]
    tx.close()
    # the avatar faces +x after a 90 degree yaw in Unity: its forward travel goes there, at half the distance
    np.testing.assert_allclose(root[:3], [0.5, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(Rotation.from_quat(root[3:]).apply([0, 0, 1.0]), [1.0, 0, 0], atol=1e-6)
    for bad in (0, -1.0, float("nan"), "big", True):
        with pytest.raises(ConfigError, match="travel_scale"):
            VMCSender(travel_scale=bad)


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", [0, 70000, -1, "abc", True, None, 1.5])
def test_invalid_port_raises_config_error(port):
    with pytest.raises(ConfigError, match="port"):
        VMCSender("127.0.0.1", port)


@pytest.mark.parametrize("host", ["", "999.1.1.1", "bad host", "no-such-host.invalid", None])
def test_invalid_host_raises_config_error(host):
    with pytest.raises(ConfigError, match="host"):
        VMCSender(host, 39539)


def test_invalid_profile_and_datagram_size():
    with pytest.raises(ConfigError, match="profile"):
        VMCSender(profile="no_such_rig")
    with pytest.raises(ConfigError, match="max_datagram_bytes"):
        VMCSender(max_datagram_bytes=10)


def test_no_receiver_warns_once_and_keeps_going(caplog):
    frame = random_frame(5)
    with caplog.at_level(logging.WARNING, logger="livedance.bridges"):
        with VMCSender("127.0.0.1", free_udp_port()) as tx:
            for _ in range(40):
                tx.send(frame)
                time.sleep(0.001)
            assert tx.frames_sent == 40
            assert tx.stats.send_errors > 0
            assert "Connection refused" in (tx.stats.last_error or "")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "VMC" in warnings[0].getMessage()
    assert tx.send(frame) == 0  # closed: silently nothing


# --- bones the avatar lacks -----------------------------------------------------------------------

def _receiver_world(tx: VMCSender, frame: PoseFrame) -> dict:
    """What an EVMC4U-like receiver builds: each received bone hangs from its nearest received ancestor and
    gets Transform.localPosition/localRotation = the values (Unity numbers). Returns bone -> (world rotation,
    world position) and checks that no bone came twice."""
    from livedance.bridges.humanoid import HUMANOID_PARENTS

    msgs = [m for m in map(OscMessage, tx.build_messages(frame)) if m.address == "/VMC/Ext/Bone/Pos"]
    got = {m.params[0]: (np.array(m.params[1:4]), np.array(m.params[4:8])) for m in msgs}
    assert len(got) == len(msgs)
    world: dict = {}
    for bone in HUMANOID_BONES:  # parents first
        if bone not in got:
            continue
        t, q = got[bone]
        a = HUMANOID_PARENTS[bone]
        while a is not None and a not in got:
            a = HUMANOID_PARENTS[a]
        if a is None:
            world[bone] = (Rotation.from_quat(q), t)
        else:
            wa, pa = world[a]
            world[bone] = (wa * Rotation.from_quat(q), pa + wa.apply(t))
    return world


@pytest.mark.parametrize("absent", [
    ("UpperChest", "LeftShoulder", "RightShoulder", "LeftToes"),  # optional in VRM 0.x
    ("Chest", "UpperChest", "Neck"),  # a chain of absent bones (chest and neck are optional in VRM 1.0)
])
def test_absent_bones_are_not_sent_and_their_children_keep_their_world_pose(absent):
    offsets = {b: list(Rotation.random(random_state=10 + i).as_quat()) for i, b in enumerate(HUMANOID_BONES)}
    base = {**_T, "rest_pose": "A", "arm_down_deg": 30.0, "bone_axis_offsets": offsets}
    full = parse_profile({**base, "name": "full"})
    lacking = parse_profile({**base, "name": "lacking", "bone_names": {b: None for b in absent}})
    frame = random_frame(11)
    rest = PoseFrame.rest(frame.rest_offsets)
    with VMCSender("127.0.0.1", free_udp_port(), profile=full) as tx_full, \
            VMCSender("127.0.0.1", free_udp_port(), profile=lacking) as tx_lacking:
        want, got = _receiver_world(tx_full, frame), _receiver_world(tx_lacking, frame)
        want_rest, got_rest = _receiver_world(tx_full, rest), _receiver_world(tx_lacking, rest)
    assert set(got) == set(HUMANOID_BONES) - set(absent)
    for bone in ("Head", "LeftUpperArm", "RightHand", "LeftIndexDistal", "LeftFoot", "Jaw"):
        assert same_rotation(got[bone][0].as_quat(), want[bone][0].as_quat(), atol=1e-5), bone
        # the bone offsets fold too: in the rest pose every received bone sits where it did with the full rig
        # (posed, a child's pivot no longer swings with the bone the avatar lacks)
        np.testing.assert_allclose(got_rest[bone][1], want_rest[bone][1], atol=1e-5, err_msg=bone)


def test_a_profile_without_hips_is_a_config_error():
    with pytest.raises(ConfigError, match="Hips"):
        VMCSender(profile=parse_profile({**_T, "name": "nohips", "bone_names": {"Hips": None}}))


# --- blend shapes, time, profile type -------------------------------------------------------------

def test_bad_blend_shapes_are_clamped_or_skipped_and_sending_never_raises():
    frame = random_frame(12)
    frame.blendshapes = {"A": float("nan"), "B": "loud", "C": 2, "D": -np.inf, 5: 0.3, "E\0x": 1.0,
                         "F": np.float32(0.25)}  # set after validation, as a live caller might
    with VMCSender("127.0.0.1", free_udp_port()) as tx:
        tx.send(frame)
        blends = [tuple(m.params) for m in map(OscMessage, tx.build_messages(frame))
                  if m.address == "/VMC/Ext/Blend/Val"]
        assert blends == [("A", 0.0), ("C", 1.0), ("D", 0.0), ("F", 0.25)]
        assert tx.blendshapes_skipped == 2 * 3


def test_an_integer_show_time_goes_out_as_a_float():
    rest = smplx_like_rest()
    q = np.tile([0, 0, 0, 1.0], (55, 1))
    with VMCSender("127.0.0.1", free_udp_port()) as tx:
        for t in (10, 12):
            frame = PoseFrame(t, q, rest[0], rest)
            (msg,) = [m for m in map(OscMessage, tx.build_messages(frame)) if m.address == "/VMC/Ext/T"]
            assert b",f\0\0" in msg.dgram and isinstance(msg.params[0], float)
        frame.t_show_s = 13  # an int set after validation
        (msg,) = [m for m in map(OscMessage, tx.build_messages(frame)) if m.address == "/VMC/Ext/T"]
        assert msg.params == [3.0] and b",f\0\0" in msg.dgram


@pytest.mark.parametrize("profile", [None, 3, ["vrm0"]])
def test_a_profile_of_the_wrong_type_is_a_config_error(profile):
    with pytest.raises(ConfigError, match="profile"):
        VMCSender(profile=profile)


@pytest.mark.parametrize("port", [np.int64(39539), 39539.0, np.float32(39539), "39539"])
def test_integer_valued_ports_are_accepted(port):
    with VMCSender("127.0.0.1", port) as tx:
        assert tx.port == 39539 and type(tx.port) is int
