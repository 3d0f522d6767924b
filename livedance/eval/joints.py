"""SMPL-24 joint order as the AIST++ evaluation code names it.

The names are those of Bailando's ``utils/features/manual_new.py`` (fairmotion's Mueller-style
features, modified by Ruilong Li); the second column gives the SMPL name of the same joint.

=====  ===============  ==============
index  evaluation name  SMPL name
=====  ===============  ==============
0      root             pelvis
1      lhip             left_hip
2      rhip             right_hip
3      belly            spine1
4      lknee            left_knee
5      rknee            right_knee
6      spine            spine2
7      lankle           left_ankle
8      rankle           right_ankle
9      chest            spine3
10     ltoes            left_foot
11     rtoes            right_foot
12     neck             neck
13     linshoulder      left_collar
14     rinshoulder      right_collar
15     head             head
16     lshoulder        left_shoulder
17     rshoulder        right_shoulder
18     lelbow           left_elbow
19     relbow           right_elbow
20     lwrist           left_wrist
21     rwrist           right_wrist
22     lhand            left_hand
23     rhand            right_hand
=====  ===============  ==============
"""

from __future__ import annotations

import numpy as np

from livedance.errors import DataError

#: The 24 SMPL joints in SMPL order, named as the AIST++ evaluation code names them.
SMPL24_JOINT_NAMES: tuple[str, ...] = (
    "root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle", "chest",
    "ltoes", "rtoes", "neck", "linshoulder", "rinshoulder", "head", "lshoulder", "rshoulder",
    "lelbow", "relbow", "lwrist", "rwrist", "lhand", "rhand",
)  # fmt: skip

#: Number of SMPL-24 joints.
NUM_SMPL24_JOINTS = 24

#: Index of each joint name in :data:`SMPL24_JOINT_NAMES`.
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(SMPL24_JOINT_NAMES)}

#: Up axis of every position array in livedance (y up, metres).
UP_AXIS = 1


def check_positions(positions, fps: float, what: str, min_frames: int, joints: int | None = 24):
    """Validate joint positions for a metric and return them as float64.

    Args:
        positions: (T, J, 3) joint positions, metres.
        fps: frame rate, frames per second (must be finite and > 0).
        what: the metric's name, used in the error messages.
        min_frames: the fewest frames the metric can use.
        joints: the required J (24 for SMPL-24), or None for any.

    Returns:
        (T, J, 3) float64 array.

    Raises:
        DataError: a wrong shape, fewer than ``min_frames`` frames, NaN/inf, or a non-positive ``fps``.
    """
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3 or (joints is not None and p.shape[1] != joints):
        shape = f"(T, {joints}, 3)" if joints is not None else "(T, J, 3)"
        raise DataError(f"{what}: expected positions of shape {shape}, got {p.shape}")
    if p.shape[0] < min_frames:
        raise DataError(f"{what}: need at least {min_frames} frames, got {p.shape[0]}")
    if not np.isfinite(p).all():
        raise DataError(f"{what}: positions hold NaN or inf")
    if not np.isfinite(fps) or fps <= 0:
        raise DataError(f"{what}: fps must be positive, got {fps}")
    return p
