"""Left/right mirroring of SMPL-X body motion (the standard data augmentation of dance and motion models).

Reflection across the character's sagittal plane x = 0 of the SMPL-X template frame (y up, faces +z,
left side at +x), M = diag(-1, 1, 1). A mirrored pose swaps every left joint with its right twin:

* parent-relative rotation of joint j: R'_j = M R_{s(j)} M (s: the left/right swap; the pelvis's
  global rotation likewise), which keeps R' a proper rotation (det +1);
* rest offsets o'_j = M o_{s(j)}, root translation t' = M t, joint positions p'_j = M p_{s(j)}.

With these, forward kinematics of the mirrored motion equals the mirror of the original's joint
positions: p_j = p_par + G_par o_j maps to M p_j = M p_par + (M G_par M)(M o_j), and the SMPL-X tree
is symmetric (s maps each joint's parent to its twin's parent). Used by generator training
(``livedance train generator --mirror``) to double the 26 Tang train dances.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from livedance.errors import DataError
from livedance.motion.skeleton import SMPL24_JOINT_NAMES, SMPLX_BODY_JOINT_NAMES

__all__ = ["swap_permutation", "mirror_motion", "mirror_clip", "MIRROR"]

#: The reflection across the sagittal plane, x -> -x (3, 3) float32.
MIRROR = np.diag([-1.0, 1.0, 1.0]).astype(np.float32)


def swap_permutation(names: Sequence[str]) -> np.ndarray:
    """Index of each joint's left/right twin (itself for centre joints): (J,) int64.

    Raises:
        DataError: a ``left_*`` / ``right_*`` joint whose twin is not in ``names``.
    """
    index = {n: i for i, n in enumerate(names)}
    out = np.arange(len(names))
    for i, n in enumerate(names):
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if n.startswith(a):
                twin = b + n[len(a):]
                if twin not in index:
                    raise DataError(f"mirroring: joint {n!r} has no twin {twin!r} in the skeleton")
                out[i] = index[twin]
    return out


def mirror_motion(local_rotmats: np.ndarray, root_translation: np.ndarray, rest_offsets: np.ndarray,
                  positions: np.ndarray | None = None):
    """Mirror a body motion left/right (module docstring for the equations).

    Args:
        local_rotmats: (T, 22, 3, 3) float parent-relative rotations of the SMPL-X body joints (joint 0:
            the pelvis's global rotation).
        root_translation: (T, 3) float metres.
        rest_offsets: (22, 3) float metres.
        positions: optional (T, 22, 3) or (T, 24, 3) float joint positions in metres (SMPL-X body joints,
            or SMPL-24 with the two hand joints after them).
    Returns:
        ``(local_rotmats, root_translation, rest_offsets, positions)`` mirrored, same shapes and dtypes
        (positions None when not given).
    Raises:
        DataError: shapes other than the above.
    """
    R = np.asarray(local_rotmats)
    t = np.asarray(root_translation)
    o = np.asarray(rest_offsets)
    J = len(SMPLX_BODY_JOINT_NAMES)
    if R.ndim != 4 or R.shape[1:] != (J, 3, 3) or t.shape != (R.shape[0], 3) or o.shape != (J, 3):
        raise DataError(f"mirroring: got local_rotmats {R.shape}, root_translation {t.shape}, rest_offsets "
                        f"{o.shape}; expected (T, {J}, 3, 3), (T, 3), ({J}, 3)")
    M = MIRROR.astype(R.dtype)
    s = swap_permutation(SMPLX_BODY_JOINT_NAMES)
    R2 = (M @ R[:, s] @ M).astype(R.dtype)
    t2 = (t * np.diag(M)).astype(t.dtype)
    o2 = (o[s] * np.diag(M)).astype(o.dtype)
    p2 = None
    if positions is not None:
        p = np.asarray(positions)
        names = {J: SMPLX_BODY_JOINT_NAMES, len(SMPL24_JOINT_NAMES): SMPL24_JOINT_NAMES}.get(p.shape[1] if p.ndim == 3 else -1)
        if names is None or p.shape[0] != R.shape[0] or p.shape[2] != 3:
            raise DataError(f"mirroring: positions {p.shape}; expected ({R.shape[0]}, 22 or 24, 3)")
        p2 = (p[:, swap_permutation(names)] * np.diag(M)).astype(p.dtype)
    return R2, t2, o2, p2


def mirror_clip(clip):
    """A :class:`~livedance.data.dataset.MotionClip` mirrored left/right, named ``<name>~mirror``; the
    music (path, offset) and the beat-alignment flag are unchanged.

    Raises:
        DataError: see :func:`mirror_motion`.
    """
    R, t, o, p = mirror_motion(clip.local_rotmats, clip.root_translation, clip.rest_offsets, clip.positions)
    return replace(clip, name=f"{clip.name}~mirror", local_rotmats=R, root_translation=t, rest_offsets=o, positions=p)
