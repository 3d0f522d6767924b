"""SMPL-X joints <-> Unity ``HumanBodyBones`` (the bone names the VMC protocol carries).

Every one of the 55 SMPL-X joints has exactly one Unity humanoid bone, and the two trees have the same
shape (a joint's parent maps to the bone's parent), so local rotations carry over bone by bone once
the rest pose and axes are accounted for (see :mod:`livedance.bridges.retarget`).

| SMPL-X joint | HumanBodyBones | note |
| --- | --- | --- |
| pelvis | Hips | root; its travel goes on the VMC root (/VMC/Ext/Root/Pos) |
| left/right_hip | Left/RightUpperLeg | |
| left/right_knee | Left/RightLowerLeg | |
| left/right_ankle | Left/RightFoot | SMPL-X "ankle" is Unity's foot bone |
| left/right_foot | Left/RightToes | SMPL-X "foot" is the ball of the foot |
| spine1 / spine2 / spine3 | Spine / Chest / UpperChest | |
| neck / head / jaw | Neck / Head / Jaw | |
| left/right_eye_smplhf | Left/RightEye | |
| left/right_collar | Left/RightShoulder | the clavicle |
| left/right_shoulder | Left/RightUpperArm | SMPL-X names the shoulder *joint* |
| left/right_elbow | Left/RightLowerArm | |
| left/right_wrist | Left/RightHand | |
| <side>_thumb1..3 | <Side>ThumbProximal / Intermediate / Distal | |
| <side>_index1..3 | <Side>IndexProximal / Intermediate / Distal | |
| <side>_middle1..3 | <Side>MiddleProximal / Intermediate / Distal | |
| <side>_ring1..3 | <Side>RingProximal / Intermediate / Distal | |
| <side>_pinky1..3 | <Side>LittleProximal / Intermediate / Distal | Unity calls it "Little" |

Names follow ``UnityEngine.HumanBodyBones`` (the same strings the PyPI ``vmcp`` package's ``Bone``
enum holds). VRM 1.0 renamed the thumb (``thumbMetacarpal``, ``thumbProximal``, ``thumbDistal``), but
VMC keeps Unity's names; see ``calibration/profiles/vrm1.json`` for that map.
"""

from __future__ import annotations

from livedance.bridges.frame import SMPLX_JOINT_NAMES, SMPLX_PARENTS


def _build() -> dict[str, str]:
    body = {
        "pelvis": "Hips",
        "spine1": "Spine",
        "spine2": "Chest",
        "spine3": "UpperChest",
        "neck": "Neck",
        "head": "Head",
        "jaw": "Jaw",
        "left_eye_smplhf": "LeftEye",
        "right_eye_smplhf": "RightEye",
    }
    for side, Side in (("left", "Left"), ("right", "Right")):
        body.update({
            f"{side}_hip": f"{Side}UpperLeg",
            f"{side}_knee": f"{Side}LowerLeg",
            f"{side}_ankle": f"{Side}Foot",
            f"{side}_foot": f"{Side}Toes",
            f"{side}_collar": f"{Side}Shoulder",
            f"{side}_shoulder": f"{Side}UpperArm",
            f"{side}_elbow": f"{Side}LowerArm",
            f"{side}_wrist": f"{Side}Hand",
        })
        for finger, Finger in (("thumb", "Thumb"), ("index", "Index"), ("middle", "Middle"),
                               ("ring", "Ring"), ("pinky", "Little")):
            for k, segment in enumerate(("Proximal", "Intermediate", "Distal"), start=1):
                body[f"{side}_{finger}{k}"] = f"{Side}{Finger}{segment}"
    return body


SMPLX_TO_HUMANOID: dict[str, str] = _build()
"""SMPL-X joint name -> Unity HumanBodyBones name (all 55 joints)."""

HUMANOID_TO_SMPLX: dict[str, str] = {v: k for k, v in SMPLX_TO_HUMANOID.items()}
"""Unity HumanBodyBones name -> SMPL-X joint name."""

HUMANOID_BONES: tuple[str, ...] = tuple(SMPLX_TO_HUMANOID[n] for n in SMPLX_JOINT_NAMES)
"""The 55 HumanBodyBones names in SMPL-X joint order (index ``j`` = SMPL-X joint ``j``)."""

HUMANOID_PARENTS: dict[str, str | None] = {
    HUMANOID_BONES[j]: (HUMANOID_BONES[p] if p >= 0 else None) for j, p in enumerate(SMPLX_PARENTS)
}
"""HumanBodyBones name -> parent bone name in the SMPL-X-shaped tree (``None`` for Hips)."""


def humanoid_bone(smplx_joint: str) -> str:
    """Unity HumanBodyBones name of an SMPL-X joint.

    Raises:
        KeyError: naming the unknown joint.
    """
    try:
        return SMPLX_TO_HUMANOID[smplx_joint]
    except KeyError:
        raise KeyError(f"unknown SMPL-X joint {smplx_joint!r}") from None


def smplx_joint(humanoid: str) -> str:
    """SMPL-X joint name of a Unity HumanBodyBones name.

    Raises:
        KeyError: naming the unknown bone.
    """
    try:
        return HUMANOID_TO_SMPLX[humanoid]
    except KeyError:
        raise KeyError(f"unknown HumanBodyBones name {humanoid!r}") from None


def arm_subtree(side: str) -> tuple[str, ...]:
    """HumanBodyBones names of one arm from the upper arm down (upper arm, lower arm, hand, fingers).

    Args:
        side: ``"Left"`` or ``"Right"``.

    Returns:
        18 HumanBodyBones names (str): ``<Side>UpperArm`` first, then its descendants in SMPL-X joint order
        (lower arm, hand, the 15 finger bones); the shoulder (clavicle) is not included.

    Raises:
        ValueError: for another side.
    """
    if side not in ("Left", "Right"):
        raise ValueError(f"side must be 'Left' or 'Right', got {side!r}")
    root = f"{side}UpperArm"
    out = [root]
    for bone in HUMANOID_BONES:
        b = HUMANOID_PARENTS[bone]
        while b is not None:
            if b == root:
                out.append(bone)
                break
            b = HUMANOID_PARENTS[b]
    return tuple(out)
