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
``t_b = O_parent^-1 * offset_b`` with ``offset_b`` the SMPL-X rest offset; Hips gets the pelvis rest
position (``rest_offsets[0]``), and the pelvis's travel from it goes on the VMC root
(:meth:`HumanoidRetargeter.root_travel`). For a normalized humanoid (all ``O`` identity, as VRM) (1) is just
``L_b = q_b``.

Bones the avatar lacks: a profile's ``bone_names`` may mark a bone absent (``null``: VRM 0.x's optional
UpperChest, shoulders and toes, VRM 1.0's optional chest and neck, a rig without jaw or eyes). The receiver
skips such a bone and parents its children to the nearest present ancestor ``a``, so the absent bone ``m``'s
rotation is folded into each child ``c``: ``L_c' = L_m * L_c = O_a^-1 * q_m * q_c * O_c`` (by Eq. 1, with
``L_m`` itself already folded when ``m``'s parent is absent too), which keeps ``W_c = G_c * O_c``. The rest
offsets fold the same way (``t_c' = O_a^-1 * (offset_m + offset_c)``). Absent bones are not sent
(:attr:`HumanoidRetargeter.sent_joints`). Hips (the root) cannot be absent.

Handedness (last step): internal right-handed (y up, +z forward, left at +x) to Unity left-handed
(y up, +z forward, left at -x) mirrors x: position (x, y, z) -> (-x, y, z), quaternion
(x, y, z, w) -> (x, -y, -z, w) (an axis is a pseudovector: it mirrors with a sign flip).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from livedance.bridges.frame import SMPLX_PARENTS, PoseFrame
from livedance.bridges.humanoid import HUMANOID_BONES
from livedance.calibration.profiles import AvatarProfile
from livedance.errors import ConfigError

_MIRROR_POS = np.array([-1.0, 1.0, 1.0])
_MIRROR_QUAT = np.array([1.0, -1.0, -1.0, 1.0])


def rh_to_unity_position(p: np.ndarray) -> np.ndarray:
    """(..., 3) right-handed positions -> Unity left-handed: (-x, y, z). Units unchanged (metres)."""
    return np.asarray(p, dtype=np.float64) * _MIRROR_POS


def rh_to_unity_quat(q: np.ndarray) -> np.ndarray:
    """(..., 4) right-handed quaternions (x, y, z, w) -> Unity left-handed: (x, -y, -z, w)."""
    return np.asarray(q, dtype=np.float64) * _MIRROR_QUAT


class HumanoidRetargeter:
    """Applies Eq. (1) of the module docstring for one avatar profile, folding bones the profile marks absent
    into their children.

    Args:
        profile: the target avatar's profile.

    Attributes:
        sent_joints: (K,) int64 SMPL-X joint indices of the bones the avatar has (all 55 unless the profile's
            ``bone_names`` maps some to ``None``), ascending; the rows a VMC sender sends.

    Raises:
        ConfigError: the profile marks ``Hips`` absent (the root of every humanoid).
    """

    def __init__(self, profile: AvatarProfile) -> None:
        self.profile = profile
        absent = [profile.bone_names.get(b, "") is None for b in HUMANOID_BONES]
        if absent[0]:
            raise ConfigError(
                f"avatar profile {profile.name!r} marks Hips absent (bone_names.Hips = null); expected the root "
                "bone Hips to be present"
            )
        self.sent_joints = np.array([j for j, a in enumerate(absent) if not a], dtype=np.int64)
        # (child, absent parent) in joint order: parents precede children, so a chain of absent bones folds
        # from the top down
        self._folds = [(j, p) for j, p in enumerate(SMPLX_PARENTS) if p >= 0 and absent[p]]
        rest = Rotation.from_quat(profile.rest_world_rotations())
        self._rest = rest
        parent_q = np.zeros((len(SMPLX_PARENTS), 4))
        parent_q[:, 3] = 1.0
        for j, p in enumerate(SMPLX_PARENTS):
            if p >= 0:
                parent_q[j] = rest[p].as_quat()
        self._parent_inv = Rotation.from_quat(parent_q).inv()
        anc = list(SMPLX_PARENTS)  # nearest present ancestor: the bone the receiver parents each bone to
        for j in range(len(anc)):
            if anc[j] >= 0 and absent[anc[j]]:
                anc[j] = anc[anc[j]]
        for j, a in enumerate(anc):
            parent_q[j] = rest[a].as_quat() if a >= 0 else [0.0, 0.0, 0.0, 1.0]
        self._present_parent_inv = Rotation.from_quat(parent_q).inv()

    def local_rotations(self, local_quats: np.ndarray) -> np.ndarray:
        """Avatar-local rotations ``L_b`` (Eq. 1), right-handed, with absent bones folded into their children.

        Args:
            local_quats: (55, 4) SMPL-X local rotations (x, y, z, w).

        Returns:
            (55, 4) float64 (x, y, z, w), w >= 0. Row ``b`` is relative to ``b``'s nearest present ancestor;
            rows of absent bones (not in :attr:`sent_joints`) are intermediate values, not meant to be sent.
        """
        q = Rotation.from_quat(np.asarray(local_quats, dtype=np.float64))
        out = (self._parent_inv * q * self._rest).as_quat()
        for j, p in self._folds:  # L_j' = L_p * L_j (p absent, L_p already folded)
            out[j] = _quat_mul(out[p], out[j])
        out[out[:, 3] < 0] *= -1.0
        return out

    def local_positions(self, rest_offsets: np.ndarray) -> np.ndarray:
        """Avatar-local bone positions, right-handed, metres: row 0 the pelvis's rest position relative to the
        avatar root (``rest_offsets[0]``: the dancer's travel goes on the root, :meth:`root_travel`), row b
        ``O_a^-1 * offset_b`` with ``a`` the nearest present ancestor (``offset_b`` summed with the offsets of
        the absent bones between ``a`` and ``b``).

        Args:
            rest_offsets: (55, 3) SMPL-X rest offsets, metres.

        Returns:
            (55, 3) float64.
        """
        off = np.array(rest_offsets, dtype=np.float64)
        for j, p in self._folds:
            off[j] += off[p]  # off[p] already holds the offsets of p's absent ancestors
        out = self._present_parent_inv.apply(off)
        out[0] = np.asarray(rest_offsets[0], dtype=np.float64)
        return out

    @staticmethod
    def root_travel(rest_offsets: np.ndarray, root_position: np.ndarray) -> np.ndarray:
        """The pelvis's displacement from its rest position, right-handed, metres: (3,) float64
        ``root_position - rest_offsets[0]`` (travel over the floor, and up or down: a squat, a jump)."""
        return np.asarray(root_position, dtype=np.float64) - np.asarray(rest_offsets[0], dtype=np.float64)

    def to_unity(self, frame: PoseFrame) -> tuple[np.ndarray, np.ndarray]:
        """The VMC bone transforms of a frame, in Unity's left-handed frame.

        Args:
            frame: the pose; its ``local_quats`` (55, 4) and ``rest_offsets`` (55, 3) metres are used
                (``root_position`` goes on the VMC root: :meth:`root_travel`).

        Returns:
            (positions (55, 3) float64 metres, quaternions (55, 4) float64 x, y, z, w), in SMPL-X joint order
            (bone names: :data:`livedance.bridges.humanoid.HUMANOID_BONES`); only the rows
            :attr:`sent_joints` are meant for the receiver (absent bones are folded into their children).
        """
        pos = rh_to_unity_position(self.local_positions(frame.rest_offsets))
        rot = rh_to_unity_quat(self.local_rotations(frame.local_quats))
        return pos, rot


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of two (4,) quaternions (x, y, z, w) (rotation ``b`` first, then ``a``)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])
