"""Avatar profiles: what a target rig expects, so the VMC bridge can retarget SMPL-X rotations onto it.

A profile is a JSON file (``calibration/profiles/<name>.json``; shipped: ``vrm0``, ``vrm1``, ``mixamo``,
``ue_mannequin``). Its keys:

``name`` (str, required)
    the profile's short name; must equal the file stem for shipped profiles.
``title``, ``description`` (str), ``sources`` (list of str), ``notes`` (str or list)
    what the values mean and where they come from. Free text, not used by code.
``rest_pose`` (``"T"`` or ``"A"``, required)
    the pose in which the rig's bones have the rotations given by ``bone_axis_offsets``. VRM requires a
    T-pose; the UE5 mannequin's reference pose is an A-pose.
``arm_down_deg`` (float, degrees, 0 for ``"T"``, in (0, 90] for ``"A"``)
    how far the upper arms hang below horizontal in the rest pose, measured in the frontal plane.
``root_yaw_deg`` (float, degrees, default 0)
    a yaw about +y put on ``/VMC/Ext/Root/Pos``, for receivers that do not turn the model to face +z.
``native_coordinates`` (object, required)
    ``handedness`` (``"right"``/``"left"``), ``up`` and ``forward`` (one of ``+x -x +y -y +z -z``) and
    ``unit_m`` (metres per file unit): the convention of the rig's own file. Informational for VMC
    (receivers import the rig into Unity's convention); used to document BVH/FBX interchange.
``offsets_frame`` (``"unity"``, default)
    the frame ``bone_axis_offsets`` is written in: Unity's (left-handed, y up, avatar facing +z), i.e.
    the numbers Unity's inspector shows.
``bone_axis_offsets`` (object, default empty)
    HumanBodyBones name -> quaternion [x, y, z, w]: the bone's world rotation (Unity ``Transform.rotation``)
    when the avatar stands in its rest pose unrotated at the origin. Missing bones are identity, which is
    right for every *normalized* humanoid (VRM, and what UniVRM, VSeeFace, Warudo, VMC4UE drive).
``bone_names`` (object, default empty)
    HumanBodyBones name -> the rig's own bone name (``null`` where the rig has no such bone). Used to name
    joints in exported files and in the setup guides; the VMC wire always carries HumanBodyBones names. A
    ``null`` bone is not sent over VMC: its rotation is folded into its children
    (:class:`livedance.bridges.retarget.HumanoidRetargeter`), so a rig without e.g. UpperChest or shoulders
    keeps its head and arms where the dance puts them. Hips cannot be ``null``.

Retargeting (used by :mod:`livedance.bridges.retarget`): let ``O_b`` be the world rotation of avatar bone
``b`` when the avatar is posed in the SMPL-X rest pose (a T-pose). :meth:`AvatarProfile.rest_world_rotations`
computes ``O_b = A_b * offset_b``, where ``A_b`` lifts an A-pose arm to horizontal (a rotation by
``+arm_down_deg`` about +z for the left arm subtree and ``-arm_down_deg`` for the right, in the internal
right-handed frame where the left side is +x) and ``offset_b`` is ``bone_axis_offsets[b]`` converted to
the right-handed frame.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from livedance.bridges.frame import is_weight
from livedance.bridges.humanoid import HUMANOID_BONES, arm_subtree
from livedance.errors import ConfigError

PROFILE_DIR: Path = Path(__file__).resolve().with_name("profiles")
"""Folder of the shipped profiles."""

_AXES = ("+x", "-x", "+y", "-y", "+z", "-z")
_KNOWN_KEYS = {
    "name", "title", "description", "sources", "notes", "rest_pose", "arm_down_deg", "root_yaw_deg",
    "native_coordinates", "offsets_frame", "bone_axis_offsets", "bone_names",
}


@dataclass(frozen=True)
class CoordinateConvention:
    """The axis convention of a rig's own file.

    Attributes:
        handedness: ``"right"`` or ``"left"``.
        up: the up axis, one of ``+x -x +y -y +z -z``.
        forward: the direction the character faces, same choices.
        unit_m: metres per file unit (1.0 for metres, 0.01 for centimetres).
    """

    handedness: str
    up: str
    forward: str
    unit_m: float


@dataclass(frozen=True)
class AvatarProfile:
    """A validated avatar profile (see the module docstring for each field's meaning and units).

    Attributes:
        bone_axis_offsets: HumanBodyBones name -> (4,) float64 unit quaternion (x, y, z, w) in Unity's
            left-handed frame, as written in the file (normalized).
        path: the file it came from (``None`` when parsed from a dict).
    """

    name: str
    rest_pose: str
    arm_down_deg: float
    native_coordinates: CoordinateConvention
    root_yaw_deg: float = 0.0
    bone_axis_offsets: Mapping[str, np.ndarray] = field(default_factory=dict)
    bone_names: Mapping[str, str | None] = field(default_factory=dict)
    title: str = ""
    description: str = ""
    path: Path | None = None

    def rest_world_rotations(self) -> np.ndarray:
        """``O_b`` for the 55 bones in SMPL-X joint order: the avatar bone's world rotation when the avatar
        is posed in the SMPL-X rest pose, in the internal right-handed frame.

        Returns:
            (55, 4) float64 unit quaternions (x, y, z, w).
        """
        quats = np.zeros((len(HUMANOID_BONES), 4))
        quats[:, 3] = 1.0
        index = {b: i for i, b in enumerate(HUMANOID_BONES)}
        for bone, q in self.bone_axis_offsets.items():
            quats[index[bone]] = unity_to_rh_quat(q)
        rots = Rotation.from_quat(quats)
        if self.arm_down_deg:
            lift = np.zeros(len(HUMANOID_BONES))
            for side, sign in (("Left", 1.0), ("Right", -1.0)):
                for bone in arm_subtree(side):
                    lift[index[bone]] = sign * math.radians(self.arm_down_deg)
            rots = Rotation.from_rotvec(np.outer(lift, [0.0, 0.0, 1.0])) * rots
        return rots.as_quat()

    def root_rotation_unity(self) -> np.ndarray:
        """The ``/VMC/Ext/Root/Pos`` rotation: a yaw of ``root_yaw_deg`` about +y, Unity frame, (x, y, z, w)."""
        return unity_yaw_quat(self.root_yaw_deg)

    def with_absent(self, bones: Sequence[str]) -> "AvatarProfile":
        """This profile for an avatar that lacks ``bones`` (HumanBodyBones names, e.g. VRM 0.x's optional
        ``UpperChest``, ``LeftShoulder``, ``RightShoulder``): they are marked absent (``bone_names`` null), so the
        VMC sender folds their rotation into their children (:mod:`livedance.bridges.retarget`).

        Raises:
            ConfigError: an unknown bone name (the message lists the optional ones), or ``Hips``.
        """
        if isinstance(bones, str):
            raise ConfigError(f"absent bones {bones!r}: expected a list of HumanBodyBones names, e.g. ['UpperChest']")
        valid = set(HUMANOID_BONES)
        unknown = [b for b in bones if b not in valid]
        if unknown:
            raise ConfigError(f"absent bones {unknown}: not Unity HumanBodyBones names; VRM's optional ones are "
                              "UpperChest, Chest, Neck, LeftShoulder, RightShoulder, LeftToes, RightToes, Jaw, "
                              "LeftEye, RightEye")
        if "Hips" in bones:
            raise ConfigError("absent bones: Hips cannot be absent (every humanoid has its root bone)")
        return replace(self, name=f"{self.name} without {', '.join(bones)}",
                       bone_names={**self.bone_names, **{b: None for b in bones}})

    def rig_bone_name(self, humanoid: str) -> str | None:
        """The rig's own name of a HumanBodyBones bone (``None`` when the rig lacks it or the profile
        does not say)."""
        return self.bone_names.get(humanoid)


def unity_to_rh_quat(q) -> np.ndarray:
    """Unity (left-handed, y up) quaternion -> internal right-handed one, by mirroring x: (x, -y, -z, w).

    The map is its own inverse (see :func:`livedance.bridges.retarget.rh_to_unity_quat`).
    """
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, 1.0])


def unity_yaw_quat(deg: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of a rotation by ``deg`` degrees about +y (Unity's numeric convention)."""
    half = math.radians(deg) / 2.0
    return np.array([0.0, math.sin(half), 0.0, math.cos(half)])


def list_profiles() -> list[str]:
    """Names of the shipped profiles (file stems in :data:`PROFILE_DIR`), sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def load_profile(name_or_path: str | Path | AvatarProfile) -> AvatarProfile:
    """Load and validate a profile by shipped name (``"vrm0"``) or by path to a JSON file (an
    :class:`AvatarProfile` is returned as it is).

    Raises:
        ConfigError: unknown name, unreadable file, invalid JSON, or an invalid value; the message names
            the file and the key.
    """
    if isinstance(name_or_path, AvatarProfile):
        return name_or_path
    candidate = Path(name_or_path)
    if candidate.suffix.lower() != ".json" and not candidate.is_file():  # a folder "mixamo" hides no shipped profile
        candidate = PROFILE_DIR / f"{name_or_path}.json"
        if not candidate.exists():
            raise ConfigError(
                f"avatar profile {str(name_or_path)!r} is unknown; expected one of {list_profiles()} "
                "or a path to a profile .json file"
            )
    try:
        text = candidate.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"avatar profile {candidate}: cannot read it ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"avatar profile {candidate}: not UTF-8 text (Windows Notepad's \"Unicode\" is UTF-16); "
                          "save it as UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"avatar profile {candidate}: invalid JSON at line {err.lineno}: {err.msg}") from None
    return parse_profile(data, source=str(candidate), path=candidate)


def parse_profile(data: object, source: str = "<dict>", path: Path | None = None) -> AvatarProfile:
    """Validate a profile already parsed from JSON.

    Args:
        data: the JSON object.
        source: how to name it in error messages (the file path).
        path: stored on the result.

    Raises:
        ConfigError: naming ``source`` and the offending key.
    """

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"avatar profile {source}: {msg}")

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object at the top level, got {type(data).__name__}")
    unknown = sorted(k for k in data if k not in _KNOWN_KEYS and not str(k).startswith("_"))
    if unknown:
        raise fail(f"unknown keys {unknown}; expected only {sorted(_KNOWN_KEYS)} (prefix a key with '_' for a comment)")
    for key in ("name", "rest_pose", "native_coordinates"):
        if key not in data:
            raise fail(f"missing required key {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not name:
        raise fail(f"'name' must be a non-empty string, got {name!r}")
    rest_pose = data["rest_pose"]
    if rest_pose not in ("T", "A"):
        raise fail(f"'rest_pose' must be \"T\" or \"A\", got {rest_pose!r}")
    arm = data.get("arm_down_deg", 0.0)
    if not is_weight(arm):
        raise fail(f"'arm_down_deg' must be a number of degrees, got {arm!r}")
    if rest_pose == "T" and arm != 0:
        raise fail(f"'arm_down_deg' is {arm} but 'rest_pose' is \"T\" (arms horizontal): expected 0")
    if rest_pose == "A" and not 0 < arm <= 90:
        raise fail(f"'arm_down_deg' is {arm} for an A-pose; expected degrees in (0, 90]")
    yaw = data.get("root_yaw_deg", 0.0)
    if not is_weight(yaw):
        raise fail(f"'root_yaw_deg' must be a number of degrees, got {yaw!r}")
    coords = _parse_coords(data["native_coordinates"], fail)
    frame = data.get("offsets_frame", "unity")
    if frame != "unity":
        raise fail(f"'offsets_frame' must be \"unity\", got {frame!r}")
    valid = set(HUMANOID_BONES)
    offsets_raw = data.get("bone_axis_offsets", {})
    if not isinstance(offsets_raw, dict):
        raise fail("'bone_axis_offsets' must be an object mapping HumanBodyBones names to [x, y, z, w]")
    offsets: dict[str, np.ndarray] = {}
    for bone, q in offsets_raw.items():
        if bone not in valid:
            raise fail(f"'bone_axis_offsets' has unknown bone {bone!r}; expected a Unity HumanBodyBones name")
        if not isinstance(q, list) or len(q) != 4 or not all(is_weight(v) for v in q):
            raise fail(f"'bone_axis_offsets.{bone}' must be 4 finite numbers [x, y, z, w], got {q!r}")
        arr = np.asarray(q, dtype=np.float64)
        arr = arr / max(float(np.abs(arr).max()), 1e-300)  # (scaled first: [1e200, 1e200, 0, 0] is a rotation too)
        norm = float(np.linalg.norm(arr))
        if norm < 1e-6 or float(np.abs(q).max()) < 1e-6:
            raise fail(f"'bone_axis_offsets.{bone}' is a zero quaternion; expected a rotation [x, y, z, w]")
        offsets[bone] = arr / norm
    names_raw = data.get("bone_names", {})
    if not isinstance(names_raw, dict):
        raise fail("'bone_names' must be an object mapping HumanBodyBones names to the rig's bone names")
    for bone, rig in names_raw.items():
        if bone not in valid:
            raise fail(f"'bone_names' has unknown bone {bone!r}; expected a Unity HumanBodyBones name")
        if rig is not None and (not isinstance(rig, str) or not rig):
            raise fail(f"'bone_names.{bone}' must be the rig's bone name or null, got {rig!r}")
    if "Hips" in names_raw and names_raw["Hips"] is None:
        raise fail("'bone_names.Hips' is null; expected the rig's root bone name (every humanoid has Hips)")
    for key in ("title", "description"):
        if key in data and not isinstance(data[key], str):
            raise fail(f"'{key}' must be a string")
    return AvatarProfile(
        name=name,
        rest_pose=rest_pose,
        arm_down_deg=float(arm),
        native_coordinates=coords,
        root_yaw_deg=float(yaw),
        bone_axis_offsets=offsets,
        bone_names=dict(names_raw),
        title=data.get("title", ""),
        description=data.get("description", ""),
        path=path,
    )


def _parse_coords(raw: object, fail) -> CoordinateConvention:
    if not isinstance(raw, dict):
        raise fail("'native_coordinates' must be an object with handedness, up, forward, unit_m")
    for key in ("handedness", "up", "forward", "unit_m"):
        if key not in raw:
            raise fail(f"'native_coordinates' is missing {key!r}")
    if raw["handedness"] not in ("right", "left"):
        raise fail(f"'native_coordinates.handedness' must be \"right\" or \"left\", got {raw['handedness']!r}")
    for key in ("up", "forward"):
        if raw[key] not in _AXES:
            raise fail(f"'native_coordinates.{key}' must be one of {list(_AXES)}, got {raw[key]!r}")
    if raw["up"][1] == raw["forward"][1]:
        raise fail(f"'native_coordinates' up {raw['up']} and forward {raw['forward']} are the same axis")
    unit = raw["unit_m"]
    if not (is_weight(unit) and unit > 0):
        raise fail(f"'native_coordinates.unit_m' must be a positive number of metres per unit, got {unit!r}")
    return CoordinateConvention(raw["handedness"], raw["up"], raw["forward"], float(unit))
