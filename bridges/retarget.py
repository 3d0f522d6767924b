"""SMPL-X local rotations -> an avatar's Unity humanoid bone transforms (what VMC receivers apply).

VMC receivers such as EVMC4U set each bone's ``Transform.localRotation`` (and ``localPosition``) to the
received values, so the values must be relative to the *avatar's* bone axes and rest pose, not SMPL-X's.

Let ``q_b`` be SMPL-X joint b's local rotation (relative to the SMPL-X rest pose, where every joint frame
is world-aligned), ``G_b = G_parent * q_b`` its world rotation, and ``O_b`` the avatar bone's world
rotation when the avatar stands in the SMPL-X rest pose (:meth:`AvatarProfile.rest_world_rotations`).
We want the avatar bone to turn in the world exactly as the SMPL-X joint does, ``W_b = G_b * O_b``, so its
local rotation is

    L_b = W_parent^-1 * W_b = O_parent^-1 * q_b * O_b                                  (1)

(``O_parent`` = identity for Hips, whose parent is the VMC root). Local positions follow the same frames:
``t_b = O_parent^-1 * offset_b`` with ``offset_b`` the SMPL-X rest offset; Hips gets the pelvis world
position. For a normalized humanoid (all ``O`` identity, as VRM) (1) is just ``L_b = q_b``.

Handedness (last step): internal right-handed (y up, +z forward, left at +x) to Unity left-handed
(y up, +z forward, left at -x) mirrors x: position (x, y, z) -> (-x, y, z), quaternion
(x, y, z, w) -> (x, -y, -z, w) (an axis is a pseudovector: it mirrors with a sign flip).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from livedance.bridges.frame import SMPLX_PARENTS, PoseFrame
from livedance.calibration.profiles import AvatarProfile

_MIRROR_POS = np.array([-1.0, 1.0, 1.0])
_MIRROR_QUAT = np.array([1.0, -1.0, -1.0, 1.0])


def rh_to_unity_position(p: np.ndarray) -> np.ndarray:
    """(..., 3) right-handed positions -> Unity left-handed: (-x, y, z). Units unchanged (metres)."""
    return np.asarray(p, dtype=np.float64) * _MIRROR_POS


def rh_to_unity_quat(q: np.ndarray) -> np.ndarray:
    """(..., 4) right-handed quaternions (x, y, z, w) -> Unity left-handed: (x, -y, -z, w)."""
    return np.asarray(q, dtype=np.float64) * _MIRROR_QUAT


class HumanoidRetargeter:
    """Applies Eq. (1) of the module docstring for one avatar profile.

    Args:
        profile: the target avatar's profile.
    """

    def __init__(self, profile: AvatarProfile) -> None:
        self.profile = profile
        rest = Rotation.from_quat(profile.rest_world_rotations())
        self._rest = rest
        parent_q = np.zeros((len(SMPLX_PARENTS), 4))
        parent_q[:, 3] = 1.0
        for j, p in enumerate(SMPLX_PARENTS):
            if p >= 0:
                parent_q[j] = rest[p].as_quat()
        self._parent_inv = Rotation.from_quat(parent_q).inv()

    def local_rotations(self, local_quats: np.ndarray) -> np.ndarray:
        """Avatar-local rotations ``L_b`` (Eq. 1), right-handed.

        Args:
            local_quats: (55, 4) SMPL-X local rotations (x, y, z, w).

        Returns:
            (55, 4) float64 (x, y, z, w), w >= 0.
        """
        q = Rotation.from_quat(np.asarray(local_quats, dtype=np.float64))
        out = (self._parent_inv * q * self._rest).as_quat()
        out[out[:, 3] < 0] *= -1.0
        return out

    def local_positions(self, rest_offsets: np.ndarray) -> np.ndarray:
        """Avatar-local bone positions, right-handed, metres: row 0 the pelvis's rest position relative to the
        avatar root (``rest_offsets[0]``: the dancer's travel goes on the root, :meth:`root_travel`), row b
        ``O_parent^-1 * offset_b``.

        Args:
            rest_offsets: (55, 3) SMPL-X rest offsets, metres.

        Returns:
            (55, 3) float64.
        """
        out = self._parent_inv.apply(np.asarray(rest_offsets, dtype=np.float64))
        out[0] = np.asarray(rest_offsets[0], dtype=np.float64)
        return out

    @staticmethod
    def root_travel(rest_offsets: np.ndarray, root_position: np.ndarray) -> np.ndarray:
        """The pelvis's displacement from its rest position, right-handed, metres: (3,) float64
        ``root_position - rest_offsets[0]`` (travel over the floor, and up or down: a squat, a jump)."""
        return np.asarray(root_position, dtype=np.float64) - np.asarray(rest_offsets[0], dtype=np.float64)

    def to_unity(self, frame: PoseFrame) -> tuple[np.ndarray, np.ndarray]:
        """The VMC bone transforms of a frame, in Unity's left-handed frame.

        Returns:
            (positions (55, 3) metres, quaternions (55, 4) x, y, z, w), in SMPL-X joint order
            (bone names: :data:`livedance.bridges.humanoid.HUMANOID_BONES`).
        """
        pos = rh_to_unity_position(self.local_positions(frame.rest_offsets))
        rot = rh_to_unity_quat(self.local_rotations(frame.local_quats))
        return pos, rot
