"""A default SMPL-X rest skeleton (metres) for when no body model or trained skeleton is at hand.

The SMPL-X body model files are licensed and not redistributable (DESIGN.md), so the live loop cannot
read the template joints from them. This is a hand-made skeleton with adult proportions in the SMPL-X
rest frame (T-pose, y up, right-handed, facing +z, the character's left at +x): pelvis 0.95 m above
the floor, legs 0.78 m, arms along +-x, fingers along the arms. It is close enough to the SMPL-X
neutral template for retargeting (VMC sends rotations; receivers use their own avatar's bones), for
BVH/npz recordings and for the preview. A trained model ships its own canonical skeleton and the live
loop uses that one instead when it exists.
"""

from __future__ import annotations

import numpy as np

from livedance.motion.skeleton import SMPLX_JOINT_NAMES, SMPLX_PARENTS

#: Height of the pelvis joint above the floor in the rest pose, metres.
PELVIS_HEIGHT_M = 0.95

_BODY = {
    "left_hip": (0.06, -0.09, 0.0),
    "right_hip": (-0.06, -0.09, 0.0),
    "spine1": (0.0, 0.11, -0.01),
    "left_knee": (0.04, -0.38, 0.0),
    "right_knee": (-0.04, -0.38, 0.0),
    "spine2": (0.0, 0.13, 0.0),
    "left_ankle": (-0.01, -0.40, -0.04),
    "right_ankle": (0.01, -0.40, -0.04),
    "spine3": (0.0, 0.06, 0.02),
    "left_foot": (0.02, -0.06, 0.12),
    "right_foot": (-0.02, -0.06, 0.12),
    "neck": (0.0, 0.21, -0.03),
    "left_collar": (0.08, 0.12, -0.01),
    "right_collar": (-0.08, 0.12, -0.01),
    "head": (0.0, 0.09, 0.05),
    "left_shoulder": (0.12, 0.04, -0.01),
    "right_shoulder": (-0.12, 0.04, -0.01),
    "left_elbow": (0.26, 0.0, -0.02),
    "right_elbow": (-0.26, 0.0, -0.02),
    "left_wrist": (0.25, 0.0, 0.0),
    "right_wrist": (-0.25, 0.0, 0.0),
    "jaw": (0.0, -0.02, 0.05),
    "left_eye_smplhf": (0.03, 0.06, 0.09),
    "right_eye_smplhf": (-0.03, 0.06, 0.09),
}
# Left-hand finger offsets (x along the arm); the right hand mirrors x.
_HAND = {
    "index1": (0.09, -0.005, 0.025), "index2": (0.035, 0.0, 0.0), "index3": (0.025, 0.0, 0.0),
    "middle1": (0.095, 0.0, 0.005), "middle2": (0.04, 0.0, 0.0), "middle3": (0.025, 0.0, 0.0),
    "pinky1": (0.075, -0.01, -0.04), "pinky2": (0.025, 0.0, 0.0), "pinky3": (0.02, 0.0, 0.0),
    "ring1": (0.085, -0.005, -0.02), "ring2": (0.035, 0.0, 0.0), "ring3": (0.025, 0.0, 0.0),
    "thumb1": (0.03, -0.015, 0.03), "thumb2": (0.03, 0.0, 0.02), "thumb3": (0.025, 0.0, 0.01),
}


def default_rest_offsets() -> np.ndarray:
    """The default SMPL-X rest skeleton.

    Returns:
        (55, 3) float32 metres in SMPL-X joint order: row 0 is the pelvis rest position
        (0, 0.95, 0); row j > 0 is joint j's offset from its parent (``SMPLX_PARENTS``).
    """
    off = np.zeros((len(SMPLX_JOINT_NAMES), 3), np.float32)
    off[0] = (0.0, PELVIS_HEIGHT_M, 0.0)
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        if name in _BODY:
            off[j] = _BODY[name]
        for side, sign in (("left_", 1.0), ("right_", -1.0)):
            if name.startswith(side) and name[len(side):] in _HAND:
                x, y, z = _HAND[name[len(side):]]
                off[j] = (sign * x, y, z)
    assert len(SMPLX_PARENTS) == off.shape[0]
    return off
