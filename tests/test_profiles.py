"""Avatar profiles: shipped files load, bad files fail with the file named, A-pose geometry is right."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from livedance.bridges.humanoid import HUMANOID_BONES
from livedance.calibration.profiles import PROFILE_DIR, list_profiles, load_profile, parse_profile
from livedance.errors import ConfigError


def test_shipped_profiles_load():
    names = list_profiles()
    assert {"vrm0", "vrm1", "mixamo", "ue_mannequin"} <= set(names)
    for n in names:
        p = load_profile(n)
        assert p.name == n
        assert set(p.bone_names) <= set(HUMANOID_BONES)
        rots = p.rest_world_rotations()
        assert rots.shape == (55, 4)
        np.testing.assert_allclose(np.linalg.norm(rots, axis=1), 1.0, atol=1e-9)


def test_shipped_facts():
    vrm0, vrm1, ue = load_profile("vrm0"), load_profile("vrm1"), load_profile("ue_mannequin")
    assert vrm0.native_coordinates.forward == "-z" and vrm1.native_coordinates.forward == "+z"
    assert vrm0.rest_pose == vrm1.rest_pose == "T" and ue.rest_pose == "A"
    # VRM 1.0 renamed the thumb: Unity's proximal thumb bone is VRM 1.0's metacarpal
    assert vrm1.rig_bone_name("LeftThumbProximal") == "leftThumbMetacarpal"
    assert vrm0.rig_bone_name("LeftThumbProximal") == "leftThumbProximal"
    assert load_profile("mixamo").rig_bone_name("LeftUpperArm") == "mixamorig:LeftArm"
    assert ue.rig_bone_name("LeftToes") == "ball_l"
    # normalized T-pose humanoids: every rest rotation is identity
    np.testing.assert_allclose(np.abs(vrm1.rest_world_rotations()[:, 3]), 1.0)


def test_a_pose_lift_brings_hanging_arms_to_horizontal():
    ue = load_profile("ue_mannequin")
    rots = Rotation.from_quat(ue.rest_world_rotations())
    th = np.radians(ue.arm_down_deg)
    left = HUMANOID_BONES.index("LeftLowerArm")
    right = HUMANOID_BONES.index("RightHand")
    # internal frame: left is +x, up is +y; an A-pose left arm hangs along (cos, -sin, 0)
    np.testing.assert_allclose(rots[left].apply([np.cos(th), -np.sin(th), 0]), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rots[right].apply([-np.cos(th), -np.sin(th), 0]), [-1, 0, 0], atol=1e-12)
    # the collar and the legs are not touched
    for bone in ("LeftShoulder", "LeftUpperLeg", "Head"):
        np.testing.assert_allclose(rots[HUMANOID_BONES.index(bone)].magnitude(), 0.0, atol=1e-12)


def test_load_by_path_and_unknown_name(tmp_path):
    src = json.loads((PROFILE_DIR / "vrm1.json").read_text())
    src["name"] = "mine"
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(src))
    assert load_profile(f).name == "mine"
    assert load_profile(str(f)).path == f
    with pytest.raises(ConfigError, match="vrm0"):
        load_profile("no_such_profile")


def _write(tmp_path, data, raw=None):
    f = tmp_path / "bad.json"
    f.write_text(raw if raw is not None else json.dumps(data))
    return f


BASE = {
    "name": "t", "rest_pose": "T",
    "native_coordinates": {"handedness": "right", "up": "+y", "forward": "+z", "unit_m": 1.0},
}


@pytest.mark.parametrize(
    "patch, needle",
    [
        ({"rest_pose": "X"}, "rest_pose"),
        ({"arm_down_deg": 30}, "arm_down_deg"),
        ({"rest_pose": "A", "arm_down_deg": 0}, "arm_down_deg"),
        ({"rest_pose": "A", "arm_down_deg": 120}, "arm_down_deg"),
        ({"colour": "red"}, "unknown keys"),
        ({"bone_axis_offsets": {"LeftWing": [0, 0, 0, 1]}}, "LeftWing"),
        ({"bone_axis_offsets": {"Head": [0, 0, 1]}}, "Head"),
        ({"bone_axis_offsets": {"Head": [0, 0, 0, 0]}}, "zero quaternion"),
        ({"bone_names": {"Neck": 5}}, "Neck"),
        ({"bone_names": {"Hips": None}}, "bone_names.Hips"),
        ({"native_coordinates": {"handedness": "right", "up": "+y", "forward": "+y", "unit_m": 1}}, "same axis"),
        ({"native_coordinates": {"handedness": "up", "up": "+y", "forward": "+z", "unit_m": 1}}, "handedness"),
        ({"native_coordinates": {"handedness": "right", "up": "+y", "forward": "+z", "unit_m": -1}}, "unit_m"),
        ({"offsets_frame": "unreal"}, "offsets_frame"),
        ({"rest_pose": "A", "arm_down_deg": 10**400}, "arm_down_deg"),  # beyond a float: named, not OverflowError
        ({"root_yaw_deg": -10**400}, "root_yaw_deg"),
        ({"native_coordinates": {"handedness": "right", "up": "+y", "forward": "+z", "unit_m": 10**400}}, "unit_m"),
        ({"bone_axis_offsets": {"Head": [10**400, 0, 0, 1]}}, "Head"),
    ],
)
def test_invalid_profiles_name_the_file_and_key(tmp_path, patch, needle):
    f = _write(tmp_path, {**BASE, **patch})
    with pytest.raises(ConfigError) as err:
        load_profile(f)
    assert "bad.json" in str(err.value) and needle in str(err.value)


def test_missing_key_and_broken_json(tmp_path):
    data = dict(BASE)
    del data["native_coordinates"]
    with pytest.raises(ConfigError, match="native_coordinates"):
        load_profile(_write(tmp_path, data))
    with pytest.raises(ConfigError, match=r"bad\.json.*line 1"):
        load_profile(_write(tmp_path, None, raw="{ not json"))
    with pytest.raises(ConfigError, match="JSON object"):
        parse_profile([1, 2])


def test_a_utf16_file_and_a_folder_named_like_a_profile(tmp_path, monkeypatch):
    f = tmp_path / "notepad.json"
    f.write_bytes((PROFILE_DIR / "vrm1.json").read_text().encode("utf-16"))
    with pytest.raises(ConfigError, match="notepad.json.*save it as UTF-8"):
        load_profile(f)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vrm1").mkdir()  # a folder in the working directory does not hide the shipped profile
    assert load_profile("vrm1").path == PROFILE_DIR / "vrm1.json"


def test_offsets_are_read_in_unity_frame_and_normalized():
    # Unity yaw +90 deg (about +y) is, in the mirrored right-handed frame, a yaw of -90 deg
    s = np.sqrt(0.5)
    p = parse_profile({**BASE, "bone_axis_offsets": {"Head": [0, 2 * s, 0, 2 * s]}})
    np.testing.assert_allclose(np.linalg.norm(p.bone_axis_offsets["Head"]), 1.0)
    head = Rotation.from_quat(p.rest_world_rotations()[HUMANOID_BONES.index("Head")])
    unity = Rotation.from_quat([0, s, 0, s])
    mirror = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(head.as_matrix(), mirror @ unity.as_matrix() @ mirror, atol=1e-12)


def test_huge_but_finite_offsets_are_still_a_rotation():
    p = parse_profile({**BASE, "bone_axis_offsets": {"LeftHand": [1e200, 1e200, 0, 0]}})
    np.testing.assert_allclose(p.bone_axis_offsets["LeftHand"], [np.sqrt(0.5), np.sqrt(0.5), 0, 0])


def test_with_absent_marks_the_bones_absent_as_a_profile_file_would():
    from livedance.bridges.vmc import VMCSender

    vrm0 = load_profile("vrm0")
    lacking = vrm0.with_absent(["UpperChest", "LeftShoulder", "RightShoulder"])
    assert lacking.bone_names["UpperChest"] is None and "without UpperChest" in lacking.name
    assert vrm0.bone_names.get("UpperChest") is not None or "UpperChest" not in vrm0.bone_names  # unchanged
    as_file = parse_profile({**BASE, "name": "f", "bone_names": {"UpperChest": None, "LeftShoulder": None,
                                                                  "RightShoulder": None}})
    from livedance.bridges.humanoid import HUMANOID_BONES

    with VMCSender(profile=lacking) as a, VMCSender(profile=as_file) as b:
        sent = [HUMANOID_BONES[j] for j in a._retarget.sent_joints]
        assert sent == [HUMANOID_BONES[j] for j in b._retarget.sent_joints]
        assert "UpperChest" not in sent and "LeftShoulder" not in sent and "Neck" in sent
    with pytest.raises(ConfigError, match="Tail"):
        vrm0.with_absent(["Tail"])
    with pytest.raises(ConfigError, match="Hips"):
        vrm0.with_absent(["Hips"])
    with pytest.raises(ConfigError, match="a list of HumanBodyBones names"):
        vrm0.with_absent("UpperChest")
