"""SMPL-X / SMPL-24 joint tables and the Skeleton dataclass (livedance.motion.skeleton)."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.errors import DataError, WeightsError
from livedance.motion.skeleton import (
    NUM_BODY_JOINTS,
    SMPL24_FROM_SMPLX,
    SMPL24_JOINT_NAMES,
    SMPL24_PARENTS,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
    Skeleton,
)


def test_names_match_the_smplx_package():
    joint_names = pytest.importorskip("smplx.joint_names")
    assert list(SMPLX_JOINT_NAMES) == list(joint_names.JOINT_NAMES[:55])


def _side(name: str) -> str:
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "centre"


def test_smplx_tree_is_anatomically_consistent():
    assert len(SMPLX_JOINT_NAMES) == len(SMPLX_PARENTS) == 55
    assert SMPLX_PARENTS[0] == -1
    for j, p in enumerate(SMPLX_PARENTS[1:], start=1):
        assert 0 <= p < j
        # a sided joint hangs off the same side or the centre line; a centre joint off the centre
        child, parent = _side(SMPLX_JOINT_NAMES[j]), _side(SMPLX_JOINT_NAMES[p])
        assert parent in (child, "centre"), (SMPLX_JOINT_NAMES[j], SMPLX_JOINT_NAMES[p])
    name = SMPLX_JOINT_NAMES.index
    for side in ("left", "right"):
        for finger in ("index", "middle", "pinky", "ring", "thumb"):
            assert SMPLX_PARENTS[name(f"{side}_{finger}1")] == name(f"{side}_wrist")
            assert SMPLX_PARENTS[name(f"{side}_{finger}2")] == name(f"{side}_{finger}1")
            assert SMPLX_PARENTS[name(f"{side}_{finger}3")] == name(f"{side}_{finger}2")
        chain = ["collar", "shoulder", "elbow", "wrist"]
        for a, b in zip(chain, chain[1:]):
            assert SMPLX_PARENTS[name(f"{side}_{b}")] == name(f"{side}_{a}")
        assert SMPLX_PARENTS[name(f"{side}_collar")] == name("spine3")
    for face in ("jaw", "left_eye_smplhf", "right_eye_smplhf"):
        assert SMPLX_PARENTS[name(face)] == name("head")
    # body = the first 22; nothing in the body hangs off a non-body joint
    assert max(SMPLX_PARENTS[:NUM_BODY_JOINTS]) < NUM_BODY_JOINTS


def test_smpl24_mapping():
    assert len(SMPL24_JOINT_NAMES) == len(SMPL24_PARENTS) == len(SMPL24_FROM_SMPLX) == 24
    for i, j in enumerate(SMPL24_FROM_SMPLX[:22]):
        assert SMPL24_JOINT_NAMES[i] == SMPLX_JOINT_NAMES[j]
    for i in (22, 23):
        smplx_joint = SMPLX_JOINT_NAMES[SMPL24_FROM_SMPLX[i]]
        assert _side(smplx_joint) == _side(SMPL24_JOINT_NAMES[i])
        # the SMPL hand joint's parent (the wrist) is the mapped joint's parent too
        assert SMPLX_JOINT_NAMES[SMPLX_PARENTS[SMPL24_FROM_SMPLX[i]]] == SMPL24_JOINT_NAMES[SMPL24_PARENTS[i]]


def _chain_skeleton() -> Skeleton:
    names = ("root", "a", "b", "c", "d")
    parents = (-1, 0, 1, 2, 1)
    offsets = np.array([[0, 1, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [0, -1, 0]], float)
    return Skeleton(names, parents, offsets)


def test_skeleton_helpers():
    sk = _chain_skeleton()
    assert sk.num_joints == 5 and sk.children("a") == [2, 4] and sk.children(3) == []
    np.testing.assert_allclose(sk.rest_positions()[3], [1, 3, 3])
    np.testing.assert_allclose(sk.bone_lengths(), [0, 1, 2, 3, 1])
    with pytest.raises(DataError, match="no joint named"):
        sk.index("zz")


def test_subset_reparents_and_keeps_rest_positions():
    sk = _chain_skeleton()
    sub = sk.subset(["root", "c", "d"])
    assert sub.names == ("root", "c", "d") and sub.parents == (-1, 0, 0)
    full = dict(zip(sk.names, sk.rest_positions()))
    for n, p in zip(sub.names, sub.rest_positions()):
        np.testing.assert_allclose(p, full[n])
    with pytest.raises(DataError, match="root"):
        sk.subset(["a", "b"])
    with pytest.raises(DataError, match=r"index \[-1\] out of range"):  # the root is kept: the index is wrong
        sk.subset([0, -1])


@pytest.mark.parametrize(
    "names,parents,offsets,match",
    [
        (("a", "b"), (-1,), np.zeros((2, 3)), "one parent per joint"),
        (("a", "b"), (-1, 1), np.zeros((2, 3)), "topological"),
        (("a", "a"), (-1, 0), np.zeros((2, 3)), "unique"),
        (("a", "b"), (-1, 0), np.zeros((3, 3)), "shape"),
        (("a", "b"), (-1, 0), np.full((2, 3), np.nan), "NaN"),
    ],
)
def test_bad_trees_are_rejected(names, parents, offsets, match):
    with pytest.raises(DataError, match=match):
        Skeleton(names, parents, offsets)


def test_smplx_model_missing_file_is_a_clear_error(tmp_path):
    from livedance.motion.smplx_model import load_smplx_skeleton

    with pytest.raises(WeightsError, match=r"SMPLX_NEUTRAL\.npz.*licensed"):
        load_smplx_skeleton(tmp_path / "models")
    with pytest.raises(WeightsError, match="gender"):
        load_smplx_skeleton(tmp_path, gender="robot")
