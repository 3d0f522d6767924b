"""Left/right mirroring: FK of the mirrored motion is the mirror of the original's joints."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.errors import DataError
from livedance.motion.fk import fk_np
from livedance.motion.mirror import mirror_motion, swap_permutation
from scipy.spatial.transform import Rotation
from livedance.motion.skeleton import SMPL24_JOINT_NAMES, SMPLX_BODY_JOINT_NAMES, SMPLX_BODY_PARENTS


def _motion(T: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    R = Rotation.random(T * 22, random_state=seed).as_matrix().reshape(T, 22, 3, 3).astype(np.float32)
    t = rng.normal(size=(T, 3)).astype(np.float32)
    o = rng.normal(scale=0.2, size=(22, 3)).astype(np.float32)  # deliberately asymmetric skeleton
    return R, t, o


def test_swap_permutation_pairs_left_and_right():
    s = swap_permutation(SMPL24_JOINT_NAMES)
    names = SMPL24_JOINT_NAMES
    assert names[s[names.index("left_hip")]] == "right_hip"
    assert names[s[names.index("right_hand")]] == "left_hand"
    assert s[names.index("spine2")] == names.index("spine2")
    assert np.array_equal(s[s], np.arange(len(names)))  # an involution
    with pytest.raises(DataError, match="twin"):
        swap_permutation(["pelvis", "left_hip"])


def test_fk_of_mirrored_motion_is_the_mirrored_fk():
    R, t, o = _motion()
    p = fk_np(R, t, o, SMPLX_BODY_PARENTS)
    R2, t2, o2, p2 = mirror_motion(R, t, o, p)
    fk2 = fk_np(R2, t2, o2, SMPLX_BODY_PARENTS)
    np.testing.assert_allclose(fk2, p2, atol=1e-5)
    s = swap_permutation(SMPLX_BODY_JOINT_NAMES)
    np.testing.assert_allclose(p2[:, s, 0], -p[:, :, 0], atol=1e-6)  # left joints now at -x of the old right
    np.testing.assert_allclose(np.linalg.det(R2), 1.0, atol=1e-5)  # proper rotations


def test_mirroring_twice_is_the_identity_and_shapes_are_checked():
    R, t, o = _motion(seed=1)
    R2, t2, o2, _ = mirror_motion(*mirror_motion(R, t, o)[:3])
    np.testing.assert_allclose(R2, R, atol=1e-6)
    np.testing.assert_allclose(t2, t)
    np.testing.assert_allclose(o2, o)
    with pytest.raises(DataError, match="expected"):
        mirror_motion(R[:, :21], t, o)
    with pytest.raises(DataError, match="positions"):
        mirror_motion(R, t, o, np.zeros((5, 23, 3)))
