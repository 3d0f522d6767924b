"""Physical Foot Contact score (PFC) of EDGE (Tseng, Castellon & Liu, "EDGE: Editable Dance
Generation from Music", CVPR 2023, sec. 5.1), as ``eval/eval_pfc.py`` of Stanford-TML/EDGE
computes it. Lower is better.

For frames k = 1 .. T-2 (root acceleration needs two differences):

    a_k  = root acceleration (finite differences of joint 0), its upward component clamped at 0
           (the root may fall freely, rising must be pushed by a foot), then |a_k|, divided by
           max_k |a_k| (so a in [0, 1])
    l_k  = min(horizontal speed of left ankle, of left toe)    (SMPL joints 7, 10)
    r_k  = min(horizontal speed of right ankle, of right toe)  (SMPL joints 8, 11)
    PFC  = 10^4 * mean_k (l_k * r_k * a_k)

i.e. whenever the body accelerates, at least one foot should be still on the ground. EDGE runs at
30 fps and its foot "speed" is the displacement per frame, in metres per 1/30 s. Here the foot
speed is the horizontal speed in m/s times 1/30 s, which equals EDGE's number at 30 fps and keeps
the same meaning at any other rate. The root acceleration is normalised by its maximum, so its
time unit cancels. EDGE reports the mean of the per-clip values (each times 10^4); so does
:func:`livedance.eval.suite`. A clip whose root never accelerates (max |a| = 0, where EDGE divides
by zero) scores 0.
"""

from __future__ import annotations

import numpy as np

from livedance.eval.joints import JOINT_INDEX, UP_AXIS, check_positions

#: EDGE's frame time (s): its motions are 30 fps and foot speeds are per EDGE frame.
EDGE_FRAME_TIME = 1.0 / 30.0
#: EDGE's reporting scale.
PFC_SCALE = 1e4
#: Feet joints as EDGE indexes them: left ankle, left toe, right ankle, right toe.
FOOT_JOINTS = (JOINT_INDEX["lankle"], JOINT_INDEX["ltoes"], JOINT_INDEX["rankle"], JOINT_INDEX["rtoes"])


def physical_foot_contact(positions: np.ndarray, fps: float) -> float:
    """PFC of one clip, in EDGE's reported units (times 10^4). Lower is better.

    Args:
        positions: (T, 24, 3) SMPL-24 joint positions in metres, y up (global: the root path
            matters); T >= 3.
        fps: frame rate in frames per second.

    Returns:
        10^4 * mean over frames 1 .. T-2 of (left foot speed * right foot speed * normalised root
        acceleration), foot speeds in metres per 1/30 s; 0 when the root never accelerates.

    Raises:
        DataError: wrong shape, fewer than 3 frames, NaN/inf, or a non-positive ``fps``.
    """
    p = check_positions(positions, fps, "PFC", min_frames=3)
    dt = 1.0 / fps
    root = p[:, JOINT_INDEX["root"]]
    root_v = (root[1:] - root[:-1]) / dt  # (T-1, 3)
    root_a = (root_v[1:] - root_v[:-1]) / dt  # (T-2, 3)
    root_a[:, UP_AXIS] = np.maximum(root_a[:, UP_AXIS], 0.0)
    root_a = np.linalg.norm(root_a, axis=-1)
    peak = root_a.max()
    if peak <= 0.0:
        return 0.0
    root_a = root_a / peak

    flat = [a for a in range(3) if a != UP_AXIS]
    feet = p[:, list(FOOT_JOINTS)][:, :, flat]  # (T, 4, 2)
    # EDGE: |feet[2:] - feet[1:-1]|, the step into frame k+1, for k = 1 .. T-2.
    foot_v = np.linalg.norm(feet[2:] - feet[1:-1], axis=-1) / dt * EDGE_FRAME_TIME  # (T-2, 4)
    left = np.minimum(foot_v[:, 0], foot_v[:, 1])
    right = np.minimum(foot_v[:, 2], foot_v[:, 3])
    return float(PFC_SCALE * np.mean(left * right * root_a))
