"""Forward kinematics for the sinks that need world positions (raw OSC ``/pos``, tests, previews).

Standard rigid-body FK over a parent table (for SMPL-X: Loper et al. 2015, SMPL, Eq. 4, without the
skinning): ``G_j = G_parent(j) * q_j`` and ``p_j = p_parent(j) + G_parent(j) * offset_j``, with the root
placed at ``root_position`` and rotated by ``q_0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation


def forward_kinematics(
    local_quats: np.ndarray,
    rest_offsets: np.ndarray,
    root_position: np.ndarray,
    parents: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations and joint positions of one pose.

    Args:
        local_quats: (J, 4) local rotations, unit quaternions (x, y, z, w).
        rest_offsets: (J, 3) offset of each joint from its parent in the parent's rest frame (any unit;
            the output positions have the same unit). Row of the root is ignored.
        root_position: (3,) world position of the root joint.
        parents: length-J parent indices, ``-1`` for the root; parents must precede their children.

    Returns:
        (global_quats (J, 4) float64 xyzw, positions (J, 3) float64).

    Raises:
        ValueError: when a parent index does not precede its child.
    """
    quats = np.asarray(local_quats, dtype=np.float64)
    offsets = np.asarray(rest_offsets, dtype=np.float64)
    n = len(parents)
    local = Rotation.from_quat(quats).as_matrix()  # (J, 3, 3), one vectorized call
    glob = np.empty_like(local)
    positions = np.zeros((n, 3))
    for j, p in enumerate(parents):
        if p < 0:
            glob[j] = local[j]
            positions[j] = np.asarray(root_position, dtype=np.float64)
        else:
            if p >= j:
                raise ValueError(f"parent {p} of joint {j} does not precede it")
            glob[j] = glob[p] @ local[j]
            positions[j] = positions[p] + glob[p] @ offsets[j]
    return Rotation.from_matrix(glob).as_quat(), positions
