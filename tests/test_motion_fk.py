"""Forward kinematics (livedance.motion.fk), numpy and torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from livedance.errors import DataError
from livedance.motion.fk import fk_np, fk_torch, forward_kinematics, global_to_local_np
from livedance.motion.rotations import axis_angle_to_rotmat_np
from livedance.motion.skeleton import SMPLX_PARENTS, Skeleton

torch.set_num_threads(1)


def _random_pose(shape, J, seed=0):
    rng = np.random.default_rng(seed)
    R = axis_angle_to_rotmat_np(rng.normal(scale=0.8, size=(*shape, J, 3)))
    t = rng.normal(size=(*shape, 3))
    off = rng.normal(scale=0.2, size=(J, 3))
    return R, t, off


def test_identity_pose_is_the_rest_pose():
    _, _, off = _random_pose((1,), 55)
    sk = Skeleton([f"j{i}" for i in range(55)], SMPLX_PARENTS, off)
    pos = fk_np(np.broadcast_to(np.eye(3), (55, 3, 3)), np.zeros(3), off, SMPLX_PARENTS)
    np.testing.assert_allclose(pos, sk.rest_positions(), atol=1e-12)


def test_hand_computed_chain():
    parents = (-1, 0, 1)
    off = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    R = np.broadcast_to(np.eye(3), (3, 3, 3)).copy()
    R[1] = axis_angle_to_rotmat_np(np.array([0.0, 0.0, math.pi / 2]))  # joint 1 turns x -> y
    pos, glob = fk_np(R, np.array([0.0, 0.0, 5.0]), off, parents, return_global_rotmats=True)
    # joint 1 itself does not move; its child swings from +x to +y
    np.testing.assert_allclose(pos, [[0, 1, 5], [1, 1, 5], [1, 2, 5]], atol=1e-12)
    np.testing.assert_allclose(glob[2], R[1], atol=1e-12)


def test_numpy_and_torch_agree_and_globals_invert():
    R, t, off = _random_pose((2, 5), 55)
    p_np, g_np = fk_np(R, t, off, SMPLX_PARENTS, return_global_rotmats=True)
    p_t, g_t = fk_torch(torch.from_numpy(R), torch.from_numpy(t), off, SMPLX_PARENTS, return_global_rotmats=True)
    np.testing.assert_allclose(p_t.numpy(), p_np, atol=1e-10)
    np.testing.assert_allclose(g_t.numpy(), g_np, atol=1e-10)
    np.testing.assert_allclose(global_to_local_np(g_np, SMPLX_PARENTS), R, atol=1e-10)
    assert isinstance(forward_kinematics(torch.from_numpy(R), torch.from_numpy(t), off, SMPLX_PARENTS), torch.Tensor)


def test_bone_lengths_kept_and_root_rotation_rotates_everything():
    R, t, off = _random_pose((4,), 22, seed=3)
    parents = SMPLX_PARENTS[:22]
    pos = fk_np(R, t, off, parents)
    for j, p in enumerate(parents[1:], start=1):
        np.testing.assert_allclose(np.linalg.norm(pos[:, j] - pos[:, p], axis=-1), np.linalg.norm(off[j]))
    spin = axis_angle_to_rotmat_np(np.array([0.3, -1.1, 0.4]))
    R2 = R.copy()
    R2[:, 0] = spin @ R[:, 0]
    pos2 = fk_np(R2, t, off, parents)
    root = pos[:, :1]
    np.testing.assert_allclose(pos2 - root, (pos - root) @ spin.T, atol=1e-10)


def test_gradients_flow():
    R, t, off = _random_pose((3,), 22)
    Rt = torch.from_numpy(R).requires_grad_(True)
    fk_torch(Rt, torch.from_numpy(t), off, SMPLX_PARENTS[:22]).sum().backward()
    assert Rt.grad is not None and torch.isfinite(Rt.grad).all()


def test_shape_errors():
    R, t, off = _random_pose((3,), 22)
    with pytest.raises(DataError, match="local rotations"):
        fk_np(R[:, :21], t, off, SMPLX_PARENTS[:22])
    with pytest.raises(DataError, match="root translation"):
        fk_np(R, t[:2], off, SMPLX_PARENTS[:22])
    with pytest.raises(DataError, match="rest offsets"):
        fk_torch(torch.from_numpy(R), torch.from_numpy(t), off[:5], SMPLX_PARENTS[:22])


def test_a_parent_after_its_child_is_a_data_error():
    R, t, off = _random_pose((2,), 3)
    with pytest.raises(DataError, match="parent 2 of joint 1"):
        fk_np(R, t, off, (-1, 2, 0))
    with pytest.raises(DataError, match="parent 1 of joint 1"):
        fk_torch(torch.from_numpy(R), torch.from_numpy(t), off, (-1, 1, 0))


def test_bridges_quaternion_adapter_places_the_root_at_its_absolute_position():
    """livedance.bridges.fk takes the root's world position (the sinks' convention); motion.fk takes its
    displacement from rest. Same pose both ways -> same positions."""
    from scipy.spatial.transform import Rotation

    from livedance.bridges.fk import forward_kinematics as fk_quats

    R, t, off = _random_pose((), 22)
    quats = Rotation.from_matrix(R).as_quat()
    root = off[0] + t
    glob_q, pos = fk_quats(quats, off, root, SMPLX_PARENTS[:22])
    expected_pos, expected_rot = fk_np(R, t, off, SMPLX_PARENTS[:22], return_global_rotmats=True)
    np.testing.assert_allclose(pos, expected_pos, atol=1e-9)
    np.testing.assert_allclose(Rotation.from_quat(glob_q).as_matrix(), expected_rot, atol=1e-9)
