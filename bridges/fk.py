"""Forward kinematics of one quaternion pose, for the sinks that need world positions (raw OSC ``/pos``,
the web preview, tests): a thin adapter over :func:`livedance.motion.fk.fk_np`.

The sinks hold a pose as a :class:`~livedance.bridges.frame.PoseFrame`: (J, 4) local quaternions and the
root's *absolute* world position. :func:`livedance.motion.fk.fk_np` takes rotation matrices and the root's
displacement from its rest position; this converts between the two and calls it (the skinning-free FK of
SMPL, Loper et al. 2015, Eq. 3-4): ``G_j = G_parent(j) q_j``, ``p_j = p_parent(j) + G_parent(j) offset_j``,
with the root placed at ``root_position`` and rotated by ``q_root``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from livedance.errors import DataError
from livedance.motion.fk import fk_np


def forward_kinematics(
    local_quats: np.ndarray,
    rest_offsets: np.ndarray,
    root_position: np.ndarray,
    parents: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations and joint positions of one pose.

    Args:
        local_quats: (J, 4) local rotations, quaternions (x, y, z, w) (normalised here).
        rest_offsets: (J, 3) offset of each joint from its parent in the parent's rest frame (any unit;
            the output positions have the same unit). The root's row is ignored.
        root_position: (3,) world position of the root joint (same unit).
        parents: length-J parent indices, ``-1`` for the root; parents must precede their children.

    Returns:
        (global_quats (J, 4) float64 x, y, z, w; positions (J, 3) float64).

    Raises:
        DataError: mismatched shapes, or a parent index that does not precede its child.
    """
    q = np.asarray(local_quats, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 4 or q.shape[0] != len(parents):
        raise DataError(f"forward_kinematics: local_quats has shape {q.shape}; expected ({len(parents)}, 4) "
                        "unit quaternions (x, y, z, w), one per joint")
    local = Rotation.from_quat(q).as_matrix()  # (J, 3, 3)
    offsets = np.array(rest_offsets, dtype=np.float64)  # a copy: the root rows are zeroed below
    offsets[[j for j, p in enumerate(parents) if p < 0]] = 0.0  # fk_np adds the root's rest offset
    positions, glob = fk_np(local, np.asarray(root_position, dtype=np.float64), offsets, parents, True)
    return Rotation.from_matrix(glob).as_quat(), positions
