"""SMPL-X <-> Unity HumanBodyBones map, checked against third-party name lists (vmcp, smplx)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from livedance.bridges import frame as frame_mod
from livedance.bridges.frame import NUM_JOINTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS, PoseFrame, joint_index
from livedance.bridges.humanoid import (
    HUMANOID_BONES,
    HUMANOID_PARENTS,
    SMPLX_TO_HUMANOID,
    arm_subtree,
    humanoid_bone,
    smplx_joint,
)
from livedance.errors import DataError


def test_joint_names_match_the_smplx_package():
    # load smplx/joint_names.py alone: importing the smplx package would pull in torch (seconds)
    spec = importlib.util.find_spec("smplx")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("smplx (dev extra) not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "joint_names.py"
    mod_spec = importlib.util.spec_from_file_location("_smplx_joint_names", path)
    joint_names = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(joint_names)
    assert list(SMPLX_JOINT_NAMES) == list(joint_names.JOINT_NAMES[:55])


def test_bridges_use_the_motion_packages_skeleton_tables():
    from livedance.motion import skeleton

    assert frame_mod.SMPLX_JOINT_NAMES is skeleton.SMPLX_JOINT_NAMES
    assert frame_mod.SMPLX_PARENTS is skeleton.SMPLX_PARENTS


def test_parents_form_one_tree_in_topological_order():
    assert len(SMPLX_PARENTS) == NUM_JOINTS == 55
    assert SMPLX_PARENTS[0] == -1
    assert all(0 <= p < j for j, p in enumerate(SMPLX_PARENTS) if j > 0)


def test_every_joint_maps_to_a_distinct_unity_bone_known_to_vmcp():
    typing = pytest.importorskip("vmcp.typing")
    unity = {b.value for b in typing.Bone}
    assert len(set(HUMANOID_BONES)) == 55
    # the 55 bones are exactly the humanoid bones a VMC peer knows (body, jaw, eyes, all fingers)
    assert set(HUMANOID_BONES) == unity


def test_tree_shape_matches_unity_humanoid_hierarchy():
    # Unity humanoid hierarchy facts (HumanTrait.GetParentBone): not derived from our table
    expected = {
        "Spine": "Hips", "Chest": "Spine", "UpperChest": "Chest", "Neck": "UpperChest", "Head": "Neck",
        "Jaw": "Head", "LeftEye": "Head", "LeftShoulder": "UpperChest", "LeftUpperArm": "LeftShoulder",
        "LeftLowerArm": "LeftUpperArm", "LeftHand": "LeftLowerArm", "LeftThumbProximal": "LeftHand",
        "LeftLittleDistal": "LeftLittleIntermediate", "RightUpperLeg": "Hips", "RightFoot": "RightLowerLeg",
        "RightToes": "RightFoot", "RightIndexProximal": "RightHand",
    }
    for bone, parent in expected.items():
        assert HUMANOID_PARENTS[bone] == parent, bone
    assert HUMANOID_PARENTS["Hips"] is None


def test_named_correspondences():
    assert humanoid_bone("spine1") == "Spine"
    assert humanoid_bone("spine3") == "UpperChest"
    assert humanoid_bone("left_collar") == "LeftShoulder"
    assert humanoid_bone("right_shoulder") == "RightUpperArm"
    assert humanoid_bone("left_wrist") == "LeftHand"
    assert humanoid_bone("left_foot") == "LeftToes"
    assert humanoid_bone("right_pinky2") == "RightLittleIntermediate"
    assert smplx_joint("LeftEye") == "left_eye_smplhf"
    with pytest.raises(KeyError, match="nose"):
        humanoid_bone("nose")
    with pytest.raises(KeyError, match="Tail"):
        smplx_joint("Tail")
    assert all(SMPLX_TO_HUMANOID[n] == HUMANOID_BONES[joint_index(n)] for n in SMPLX_JOINT_NAMES)


def test_arm_subtree():
    left = arm_subtree("Left")
    assert len(left) == 3 + 15 and left[0] == "LeftUpperArm"
    assert all(b.startswith("Left") for b in left) and "LeftShoulder" not in left
    with pytest.raises(ValueError):
        arm_subtree("left")


def test_pose_frame_validation():
    rest = np.zeros((55, 3))
    f = PoseFrame.rest(rest, t_show_s=1.0)
    assert f.local_quats.dtype == np.float32 and f.local_quats.shape == (55, 4)
    with pytest.raises(DataError, match="local_quats"):
        PoseFrame(0.0, np.zeros((22, 4)), np.zeros(3), rest)
    bad = f.local_quats.copy()
    bad[3] = 0
    with pytest.raises(DataError, match="spine1"):
        PoseFrame(0.0, bad, np.zeros(3), rest)
    with pytest.raises(DataError, match="root_position"):
        PoseFrame(0.0, f.local_quats, [np.nan, 0, 0], rest)
    with pytest.raises(DataError, match="local_quats is not an array of numbers"):  # ragged rows
        PoseFrame(0.0, [[0, 0, 0, 1]] * 54 + [[0, 0]], np.zeros(3), rest)
    with pytest.raises(DataError, match="rest_offsets is not an array of numbers"):
        PoseFrame(0.0, f.local_quats, np.zeros(3), "zero")
    from livedance.bridges.fk import forward_kinematics
    from livedance.bridges.frame import SMPLX_PARENTS

    with pytest.raises(DataError, match=r"local_quats has shape \(55, 3\)"):
        forward_kinematics(np.zeros((55, 3)), rest, np.zeros(3), SMPLX_PARENTS)


@pytest.mark.parametrize("blend, needle", [
    ({"A": float("nan")}, "'A'"),
    ({"A": np.inf}, "'A'"),
    ({"A": "0.5"}, "'A'"),
    ({"A": None}, "'A'"),
    ({"A": True}, "'A'"),
    ({3: 0.5}, "key 3"),
    ({"Bl\0ink": 0.5}, "key"),
    (["A", 0.5], "blendshapes"),
])
def test_pose_frame_checks_blend_shapes(blend, needle):
    rest = np.zeros((55, 3))
    with pytest.raises(DataError, match="blendshapes") as err:
        PoseFrame(0.0, PoseFrame.rest(rest).local_quats, np.zeros(3), rest, blendshapes=blend)
    assert needle in str(err.value)


def test_pose_frame_accepts_numeric_blend_shapes_and_stores_a_float_time():
    rest = np.zeros((55, 3))
    f = PoseFrame(np.int64(3), PoseFrame.rest(rest).local_quats, np.zeros(3), rest,
                  blendshapes={"A": 1, "Joy": np.float32(0.5), "O": 0.0})
    assert type(f.t_show_s) is float and f.t_show_s == 3.0
    for bad in ("3", None, True, float("nan")):
        with pytest.raises(DataError, match="t_show_s"):
            PoseFrame(bad, f.local_quats, np.zeros(3), rest)
