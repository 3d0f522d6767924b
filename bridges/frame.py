"""The motion frame that every sink (VMC, raw OSC, BVH, npz) consumes, and the SMPL-X skeleton it uses.

Skeleton: SMPL-X, 55 joints, in the order and with the names of the ``smplx`` package
(``smplx.joint_names.JOINT_NAMES[:55]``): 22 body joints (pelvis .. right_wrist), jaw, two eyes, then
15 left-hand and 15 right-hand joints; parents from SMPL-X's ``kintree_table[0]``. Both tables are
owned by :mod:`livedance.motion.skeleton` and re-exported here for the sinks.

Frame conventions (DESIGN.md): positions in metres, y up, right-handed, the character faces +z with
its left side at +x. Rotations are local (parent-relative) unit quaternions in (x, y, z, w) order,
relative to the SMPL-X rest pose (all joint frames aligned with the world axes in the rest pose, arms
along +-x: a T-pose).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from livedance.errors import DataError
from livedance.motion.skeleton import SMPLX_JOINT_NAMES, SMPLX_PARENTS

__all__ = ["NUM_JOINTS", "SMPLX_JOINT_NAMES", "SMPLX_PARENTS", "PoseFrame", "is_weight", "joint_index"]

NUM_JOINTS: int = len(SMPLX_JOINT_NAMES)
"""55: the SMPL-X joint count."""


@dataclass
class PoseFrame:
    """One skeleton pose, ready for the sinks.

    Attributes:
        t_show_s: when the frame will be seen, in seconds on the ``time.perf_counter()`` clock (stored as a
            Python float: an int or numpy scalar is converted, so OSC sinks send it as float32 ``f``).
        local_quats: (55, 4) float32, local (parent-relative) rotations as unit quaternions (x, y, z, w),
            relative to the SMPL-X rest pose; row ``j`` is joint ``SMPLX_JOINT_NAMES[j]``. Row 0 is the
            global orientation of the pelvis.
        root_position: (3,) float32, world position of the pelvis joint in metres (y up, right-handed).
        rest_offsets: (55, 3) float32, rest-pose offset of each joint from its parent in metres, in the
            parent's rest frame (= world axes, since all SMPL-X rest rotations are identity). Row 0 (the
            pelvis, no parent) is the pelvis rest position: the VMC sender puts the avatar's Hips there and sends
            ``root_position - rest_offsets[0]`` as the root's travel (/VMC/Ext/Root/Pos), so it must be the
            skeleton's real standing pelvis height (zero would float or sink the avatar by that height).
        blendshapes: optional facial blend-shape weights in [0, 1] (finite real numbers; sinks clamp to
            [0, 1]), keyed by the receiver's names (str without NUL; VRM: ``A``, ``I``, ``U``, ``E``, ``O``,
            ``Blink``, ``Joy`` ...).

    Raises:
        DataError: from :meth:`validate` when a shape is wrong, a value is NaN/inf, ``t_show_s`` is not a
            number, or a blend shape has a non-str (or NUL-holding) name or a non-finite / non-number weight.
    """

    t_show_s: float
    local_quats: np.ndarray
    root_position: np.ndarray
    rest_offsets: np.ndarray
    blendshapes: dict[str, float] | None = field(default=None)

    def __post_init__(self) -> None:
        if isinstance(self.t_show_s, numbers.Real) and not isinstance(self.t_show_s, bool):
            try:
                self.t_show_s = float(self.t_show_s)
            except OverflowError:
                raise DataError(f"PoseFrame.t_show_s {self.t_show_s} is too large; expected a time in seconds") from None
        for name in ("local_quats", "root_position", "rest_offsets"):
            try:
                setattr(self, name, np.asarray(getattr(self, name), dtype=np.float32))
            except (TypeError, ValueError) as err:  # ragged rows, strings, None: name the field
                raise DataError(f"PoseFrame.{name} is not an array of numbers ({err})") from None
        self.validate()

    def validate(self) -> None:
        """Check shapes and finiteness, and the blend shapes' names and weights.

        Raises:
            DataError: naming the field, its shape and the expected shape, or the non-finite value; or the
                offending blend shape and what was expected.
        """
        expected = {
            "local_quats": (NUM_JOINTS, 4),
            "root_position": (3,),
            "rest_offsets": (NUM_JOINTS, 3),
        }
        for name, shape in expected.items():
            arr = getattr(self, name)
            if arr.shape != shape:
                raise DataError(f"PoseFrame.{name} has shape {arr.shape}; expected {shape}")
            if not np.all(np.isfinite(arr)):
                raise DataError(f"PoseFrame.{name} holds NaN or inf values; expected finite numbers")
        norms = np.linalg.norm(self.local_quats, axis=1)
        if np.any(norms < 1e-6):
            bad = int(np.argmin(norms))
            raise DataError(
                f"PoseFrame.local_quats row {bad} ({SMPLX_JOINT_NAMES[bad]}) is a zero quaternion; "
                "expected a unit quaternion (x, y, z, w)"
            )
        t = self.t_show_s
        if not is_weight(t):
            raise DataError(f"PoseFrame.t_show_s is {t!r}; expected a finite time in seconds")
        if self.blendshapes is not None:
            if not isinstance(self.blendshapes, Mapping):
                raise DataError(
                    f"PoseFrame.blendshapes is a {type(self.blendshapes).__name__}; expected a dict name -> weight"
                )
            for name, w in self.blendshapes.items():
                if not isinstance(name, str) or "\0" in name:
                    raise DataError(f"PoseFrame.blendshapes key {name!r} is invalid; expected a str without NUL")
                if not is_weight(w):
                    raise DataError(
                        f"PoseFrame.blendshapes[{name!r}] is {w!r}; expected a finite number in [0, 1]"
                    )

    @classmethod
    def rest(cls, rest_offsets: np.ndarray, t_show_s: float = 0.0, root_position=None) -> "PoseFrame":
        """The rest pose (all local rotations identity) of a skeleton.

        Args:
            rest_offsets: (55, 3) metres, as in the attribute.
            t_show_s: perf_counter seconds.
            root_position: (3,) metres; defaults to ``rest_offsets[0]`` (the pelvis rest position).

        Returns:
            a :class:`PoseFrame` with identity (0, 0, 0, 1) local rotations.

        Raises:
            DataError: offsets or root position of the wrong shape, or non-finite.
        """
        quats = np.zeros((NUM_JOINTS, 4), dtype=np.float32)
        quats[:, 3] = 1.0
        offsets = np.asarray(rest_offsets, dtype=np.float32)
        root = offsets[0] if root_position is None else root_position
        return cls(t_show_s=t_show_s, local_quats=quats, root_position=root, rest_offsets=offsets)


def is_weight(value: object) -> bool:
    """True for a finite real number that fits a float (int, float, numpy scalar; not ``bool``): a usable
    blend-shape weight or time."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def joint_index(name: str) -> int:
    """Index of an SMPL-X joint name in :data:`SMPLX_JOINT_NAMES`.

    Raises:
        KeyError: naming the unknown joint.
    """
    try:
        return SMPLX_JOINT_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown SMPL-X joint {name!r}") from None
