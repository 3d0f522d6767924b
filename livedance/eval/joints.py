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
