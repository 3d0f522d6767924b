"""Skeleton topologies: the SMPL-X 55-joint tree, the SMPL 24-joint tree, and a :class:`Skeleton`.

Joint names and order follow the ``smplx`` package (``smplx/joint_names.py``, first 55 entries,
i.e. the joints that carry rotations; the remaining entries there are surface landmarks). Parents
follow the ``kintree_table`` of the SMPL-X model files (Pavlakos et al. 2019, "Expressive Body
Capture: 3D Hands, Face, and Body from a Single Image", CVPR), which is the same tree as SMPL
(Loper et al. 2015) for the first 22 joints.

Layout of the 55 joints: 0..21 body (pelvis .. right_wrist), 22 jaw, 23/24 eyes, 25..39 left hand
(index, middle, pinky, ring, thumb; 3 joints each, proximal to distal), 40..54 right hand (same).

Conventions used across livedance: positions in metres, y up, right-handed, the character faces +z
in the rest pose and its left side is at +x (the SMPL-X template frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from livedance.errors import DataError

#: The 55 SMPL-X joints that carry rotations, in model order (``smplx.joint_names.JOINT_NAMES[:55]``).
SMPLX_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2", "right_middle3",
    "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
    "right_thumb1", "right_thumb2", "right_thumb3",
)

#: Parent index of each SMPL-X joint (-1 for the root), the SMPL-X ``kintree_table[0]``.
SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
    15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)

#: Number of SMPL-X body joints (pelvis .. right_wrist); body-only data fills these.
NUM_BODY_JOINTS = 22

#: The 22 SMPL-X body joint names.
SMPLX_BODY_JOINT_NAMES: tuple[str, ...] = SMPLX_JOINT_NAMES[:NUM_BODY_JOINTS]

#: Parents of the 22 body joints (a prefix of :data:`SMPLX_PARENTS`).
SMPLX_BODY_PARENTS: tuple[int, ...] = SMPLX_PARENTS[:NUM_BODY_JOINTS]

#: The 24 SMPL joints (Loper et al. 2015), in SMPL order.
SMPL24_JOINT_NAMES: tuple[str, ...] = SMPLX_BODY_JOINT_NAMES + ("left_hand", "right_hand")

#: Parents of the 24 SMPL joints (SMPL ``kintree_table[0]``).
SMPL24_PARENTS: tuple[int, ...] = SMPLX_BODY_PARENTS + (20, 21)

#: For each SMPL-24 joint, the SMPL-X joint index it maps to. The 22 body joints are shared. SMPL's
#: ``left_hand``/``right_hand`` (one joint per hand, near the knuckles) map to ``left_index1`` /
#: ``right_index1`` (25 / 40), the first finger joint of each hand. Neither richer model's first 24 joints
#: are SMPL-24: SMPL-X puts the jaw and the left eye in slots 22 / 23, SMPL-H ``left_index1`` / ``left_index2``.
#: ``left_middle1``/``right_middle1`` lie slightly closer to SMPL's hand joint; the hand joints' rotation is
#: rarely meaningful in SMPL-24 data, and only their positions enter the metrics (a small, constant offset).
SMPL24_FROM_SMPLX: tuple[int, ...] = tuple(range(NUM_BODY_JOINTS)) + (
    SMPLX_JOINT_NAMES.index("left_index1"),
    SMPLX_JOINT_NAMES.index("right_index1"),
)


def _check_tree(names: Sequence[str], parents: Sequence[int]) -> None:
    if len(names) != len(parents):
        raise DataError(f"skeleton: {len(names)} names but {len(parents)} parents; expected one parent per joint")
    if len(set(names)) != len(names):
        raise DataError("skeleton: joint names must be unique")
    for j, p in enumerate(parents):
        if j == 0:
            if p != -1:
                raise DataError(f"skeleton: joint 0 ({names[0]!r}) must be the root (parent -1), got {p}")
        elif not 0 <= p < j:
            raise DataError(
                f"skeleton: joint {j} ({names[j]!r}) has parent {p}; expected 0 <= parent < {j} "
                "(joints must be in topological order with a single root at index 0)"
            )


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree with rest-pose bone offsets.

    Attributes:
        names: joint names, length J.
        parents: parent index per joint, length J; ``parents[0] == -1`` and ``parents[j] < j``.
        rest_offsets: (J, 3) float64 metres. Row j > 0 is the position of joint j minus that of its
            parent in the rest pose (SMPL-X T-pose frame: y up, faces +z, left at +x); row 0 is the
            rest position of the root itself.

    Raises:
        DataError: on a malformed tree or offsets of the wrong shape / non-finite values.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_offsets: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "parents", tuple(int(p) for p in self.parents))
        _check_tree(self.names, self.parents)
        off = np.asarray(self.rest_offsets, dtype=np.float64)
        if off.shape != (len(self.names), 3):
            raise DataError(f"skeleton rest_offsets: shape {off.shape}, expected ({len(self.names)}, 3)")
        if not np.all(np.isfinite(off)):
            raise DataError("skeleton rest_offsets: holds NaN/inf")
        off = off.copy()
        off.setflags(write=False)
        object.__setattr__(self, "rest_offsets", off)

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of the joint called ``name``. Raises DataError when there is none."""
        try:
            return self.names.index(name)
        except ValueError:
            raise DataError(f"skeleton: no joint named {name!r}; joints are {', '.join(self.names)}") from None

    def children(self, joint: int | str) -> list[int]:
        """Indices of the direct children of ``joint`` (an index or a name), in index order."""
        j = self.index(joint) if isinstance(joint, str) else int(joint)
        return [c for c, p in enumerate(self.parents) if p == j]

    def rest_positions(self) -> np.ndarray:
        """Rest-pose joint positions, (J, 3) float64 metres (cumulative sum of offsets down the tree)."""
        pos = np.zeros_like(self.rest_offsets)
        for j, p in enumerate(self.parents):
            pos[j] = self.rest_offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos

    def bone_lengths(self) -> np.ndarray:
        """(J,) float64 metres: length of the bone from each joint's parent to it (0 for the root)."""
        lengths = np.linalg.norm(self.rest_offsets, axis=-1)
        lengths[0] = 0.0
        return lengths

    def subset(self, joints: Sequence[int | str]) -> "Skeleton":
        """A skeleton with only ``joints`` (indices or names; must include the root, any order).

        A kept joint whose parent was dropped is re-parented to its nearest kept ancestor, and its rest
        offset becomes the sum of the offsets along the dropped path (exact in the rest pose).

        Raises:
            DataError: when the root is not kept or a joint is unknown / repeated.
        """
        idx = sorted({self.index(j) if isinstance(j, str) else int(j) for j in joints})
        if len(idx) != len(joints):
            raise DataError("skeleton subset: a joint is listed twice")
        bad = [i for i in idx if not 0 <= i < self.num_joints]
        if bad:
            raise DataError(f"skeleton subset: joint index {bad} out of range 0..{self.num_joints - 1}")
        if not idx or idx[0] != 0:
            raise DataError("skeleton subset: the root (joint 0) must be kept")
        new_of = {old: new for new, old in enumerate(idx)}
        parents, offsets = [], []
        for old in idx:
            off = self.rest_offsets[old].copy()
            p = self.parents[old]
            while p >= 0 and p not in new_of:
                off += self.rest_offsets[p]
                p = self.parents[p]
            parents.append(new_of[p] if p >= 0 else -1)
            offsets.append(off)
        return Skeleton(tuple(self.names[i] for i in idx), tuple(parents), np.stack(offsets))
