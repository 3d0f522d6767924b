"""Inverse kinematics: Tang et al. 2018 DANCE markers (23 points) -> SMPL-X body joint rotations.

The DANCE dataset (Tang, Jia, Mao 2018, "Dance with Melody", ACM MM; see
``../shared/data/dance-tang2018/README.md``) stores 23 points per frame at 25 fps: ``center`` (T, 3)
plus ``skeletons`` (T, 23, 3) relative to it. This module turns them into the 22 SMPL-X body joints'
local rotations, a root translation and a per-sequence skeleton, so the rest of livedance can treat
the data like any SMPL-X motion.

Facts checked on all 38 sequences (figures in ``docs/ik.md``; tests in ``tests/test_tang_ik.py``):

* Units are centimetres (thigh 44-55, shin 31-38, upper arm 27-33, shoulder width 26-32); y is up (the
  head is 150-170 above the feet, the feet lie near y = 0 at the start of each take). The floor drifts
  (up to 40 cm in y over 5 m of travel in some waltzes); it is kept as it is, not corrected.
* Facing: with markers 3-11 called side A and 12-20 side B, bent knees bulge, toes (11/20, 17-19 cm
  from the ankle, vs heels 10/19 at 11-13 cm) point and bent elbows point consistently: the physical
  forward direction is ``F = (hip_B - hip_A) x up`` in the file's coordinates, in every sequence.
* Which side is left depends on the handedness of the file's frame, which positions alone cannot
  tell. The waltz/tango takes (27 of 38) settle it: in closed hold both ballroom partners turn the
  head to their own left; in every one of them the head is turned 29-42 degrees towards side A relative
  to the shoulders (3-6 degrees in the Latin takes, i.e. marker placement) and leans back 5-9 cm, the
  follower's top line, with the side-B forearm raised (the follower's right hand in hold). So side A
  is the dancer's **left** and the file's frame is left-handed (the dataset authors built their demo in
  Unity, which is left-handed). :func:`markers_to_smplx` therefore mirrors x (``x -> -x``) to get a
  right-handed frame; after that, ``(left_hip - right_hip) x up`` points where the toes point, as in
  SMPL-X. ``TangIKConfig(mirror_x=False)`` keeps the file's frame (and then makes B the left side).

Marker -> joint map (after the side decision; :data:`TANG_MARKER_NAMES`): hips 7/16; knees 8/17;
ankles 9/18; feet (SMPL-X ``*_foot``, the ball of the foot) = toe markers 11/20 (heels 10/19 give the
sole's roll); shoulders 3/12; elbows 4/13; wrists 5/14 (the dataset's own "wrist" markers; 6/15 are
the hands); head = midpoint of 0/1; spine1 = marker 2 (the README's "pelvis/root" marker: it lies
12-16 cm above the hip midpoint and 4-6 cm in front, and moves against the hips in the Latin takes'
hip action, so it sits where SMPL's lower spine does). Joints without a marker are built from the
markers: pelvis = hip midpoint + 0.45 of the way up towards marker 2 (across the hip axis; SMPL
template proportions, constant length per sequence); neck = shoulder midpoint + 0.35 (head -
shoulder midpoint); collars = shoulder midpoint + 0.45 (shoulder - shoulder midpoint); spine2/3 on a
quadratic Bezier curve from marker 2 to the neck whose end tangents are the pelvis' and the chest's up
axes, at the SMPL template's length fractions (0.333, 0.466). Those six joints are therefore
"targets" by construction, not by measurement (:data:`CONSTRUCTED_JOINTS`); ``docs/ik.md`` marks them.

IK: (1) analytic: each joint's global frame from its bone direction (to its child's target) and a
second direction for the twist: pelvis from the hip axis and marker 2, chest from the shoulder axis
and the marker 2 -> shoulders line, spine1/2 twist interpolated between them; thigh twist from the
knee bend (handing over to the pelvis' forward axis when the knee is nearly straight or seems to
bend backwards); the shin a hinge about the thigh's flexion axis; ankle roll from the
heel-toe-ankle plane; upper-arm twist from the elbow bend (falling back to the chest's forward axis);
the forearm a hinge of the upper arm; the hand's swing from the hand marker and its twist from the
extra markers 22 (left, near 6) and 21 (right, near 14), which the dataset authors added "to describe
the direction of the hands", unwrapped over time and interpolated where that marker is implausible;
half of the hand's twist moves to the elbow (forearm pronation); the neck twist from the head-marker
axis (blending to the chest's axis where the pair collapses). Per sequence, the pelvis and chest
frames are calibrated so that their median pitch is upright, and the hand twist so that its median
is zero. (2) refinement: a few per-frame Levenberg-Marquardt steps on per-joint rotation corrections
and the root translation, minimising the squared FK-vs-target distance plus a small penalty on the
corrections (analytic Jacobian; twists the targets cannot see stay as step 1 set them).

Rest offsets come from the sequence's own median bone lengths (no SMPL model files) laid out as an
SMPL-X T-pose: legs straight down, arms along +-x, spine and neck along +y, feet forward-down at the
sequence's median shin-foot angle; pelvis->hips, pelvis->spine1 and spine3->collars are the medians
of those vectors in the calibrated pelvis / chest frames (left/right symmetrised). Left and right
limb lengths are kept separate (the data's arms differ).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livedance.errors import DataError
from livedance.motion.fk import fk_np, global_to_local_np
from livedance.motion.rotations import axis_angle_to_rotmat_np, rotmat_to_axis_angle_np, rotmat_to_quat_np
from livedance.motion.skeleton import (
    NUM_BODY_JOINTS,
    SMPLX_BODY_JOINT_NAMES,
    SMPLX_BODY_PARENTS,
    Skeleton,
)

#: Frames per second of the DANCE data.
TANG_FPS = 25.0

#: Number of markers per frame.
NUM_TANG_MARKERS = 23

#: Marker names after the side decision (side A = left; see the module docstring).
TANG_MARKER_NAMES: tuple[str, ...] = (
    "head_left", "head_right", "waist",
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "left_hip", "left_knee", "left_ankle", "left_heel", "left_toe",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "right_hip", "right_knee", "right_ankle", "right_heel", "right_toe",
    "right_hand_direction", "left_hand_direction",
)

# Marker indices (side A = left).
_M = {name: i for i, name in enumerate(TANG_MARKER_NAMES)}

# SMPL-X body joint indices.
_J = {name: i for i, name in enumerate(SMPLX_BODY_JOINT_NAMES)}

#: Marker pairs to draw (the original repository's drawing, with direct lines where it used midpoints).
TANG_MARKER_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (3, 12), (2, 3), (2, 12), (3, 4), (4, 5), (5, 6), (6, 22), (12, 13), (13, 14), (14, 15),
    (14, 21), (2, 7), (2, 16), (7, 8), (8, 9), (9, 10), (9, 11), (10, 11), (16, 17), (17, 18),
    (18, 19), (18, 20), (19, 20),
)

#: SMPL-X body joints whose target is a marker (the rest are built from markers).
MEASURED_JOINTS: tuple[str, ...] = (
    "spine1", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_foot", "right_foot", "head", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist",
)

#: SMPL-X body joints whose target is constructed from markers (pelvis, spine2/3, neck, collars).
CONSTRUCTED_JOINTS: tuple[str, ...] = ("pelvis", "spine2", "spine3", "neck", "left_collar", "right_collar")

# Approximate neutral SMPL template joint heights (m): hip midpoint -0.314, pelvis -0.223,
# spine1 -0.114, spine2 0.019,
# spine3 0.072, neck 0.285: the pelvis lies 0.45 of the way from the hip midpoint to spine1, and
# spine2 / spine3 at 0.333 / 0.466 of the length from spine1 to the neck.
_PELVIS_FRACTION = 0.45
_SPINE_S = (0.333, 0.466)

_EX = np.array([1.0, 0.0, 0.0])
_EY = np.array([0.0, 1.0, 0.0])
_EZ = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class TangIKConfig:
    """Options of :func:`markers_to_smplx`.

    Attributes:
        mirror_x: negate x on input, turning the file's left-handed frame into a right-handed one
            (the checked default; see the module docstring). False keeps the file's frame.
        neck_fraction: neck = shoulder midpoint + this * (head - shoulder midpoint).
        collar_fraction: collar = shoulder midpoint + this * (shoulder - shoulder midpoint).
        refine_iters: Levenberg-Marquardt iterations of the refinement (0 = analytic IK only).
        refine_damping: initial LM damping (m^2 per rad^2), adapted per frame.
        refine_prior: weight (m^2 per rad^2) of the penalty on the refinement's rotation corrections
            (the squared axis-angle of each joint's correction from the analytic solution); it keeps
            frames with glitching markers from being fitted by large twists.
        arm_fallback: weight (fraction of the forearm length) of the chest-forward fallback for the
            upper-arm twist when the elbow is straight.
        leg_fallback: same for the thigh twist (fraction of the shin length), with the pelvis'
            forward axis as the fallback when the knee is straight.
    """

    mirror_x: bool = True
    neck_fraction: float = 0.35
    collar_fraction: float = 0.45
    refine_iters: int = 5
    refine_damping: float = 1e-3
    refine_prior: float = 1e-3
    arm_fallback: float = 0.3
    leg_fallback: float = 0.3


@dataclass(frozen=True)
class TangIKResult:
    """Output of :func:`markers_to_smplx` (output frame: metres, y up, right-handed, rest pose faces +z,
    left side at +x; the world's horizontal axes are the file's, x mirrored when ``mirror_x``).

    Attributes:
        local_rotmats: (T, 22, 3, 3) float32, SMPL-X body joints' parent-relative rotations (joint 0:
            global pelvis rotation). Leaves: feet and head are identity; wrists hold the hand's rotation.
        root_translation: (T, 3) float32 metres; pelvis position = root_translation + rest_offsets[0].
        rest_offsets: (22, 3) float32 metres, this sequence's skeleton (row 0 = rest pelvis position,
            chosen so that the rest pose's lowest joint is at y = 0).
        joint_targets: (T, 22, 3) float32 metres, the marker-derived joint positions the IK fitted.
    """

    local_rotmats: np.ndarray
    root_translation: np.ndarray
    rest_offsets: np.ndarray
    joint_targets: np.ndarray
    config: TangIKConfig = field(default_factory=TangIKConfig, repr=False)

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.local_rotmats.shape[0])

    @property
    def skeleton(self) -> Skeleton:
        """This sequence's 22-joint SMPL-X body :class:`Skeleton`."""
        return Skeleton(SMPLX_BODY_JOINT_NAMES, SMPLX_BODY_PARENTS, self.rest_offsets)

    def joint_positions(self) -> np.ndarray:
        """FK of the result: (T, 22, 3) float32 metres."""
        return fk_np(
            self.local_rotmats.astype(np.float64),
            self.root_translation.astype(np.float64),
            self.rest_offsets.astype(np.float64),
            SMPLX_BODY_PARENTS,
        ).astype(np.float32)


@dataclass(frozen=True)
class IKError:
    """Reconstruction error of a :class:`TangIKResult`: per joint, FK position vs target.

    Attributes:
        mean_mm: (22,) float64, mean over frames of the Euclidean error, millimetres.
        max_mm: (22,) float64, maximum over frames, millimetres.
        per_frame_mm: (T, 22) float64, the errors themselves.
    """

    mean_mm: np.ndarray
    max_mm: np.ndarray
    per_frame_mm: np.ndarray

    @property
    def overall_mean_mm(self) -> float:
        """Mean over frames and joints, millimetres."""
        return float(self.per_frame_mm.mean())


@dataclass(frozen=True)
class FacingEvidence:
    """The side decision's evidence, in the file's own coordinates (side A = markers 3-11).

    Attributes:
        toes_forward: mean cosine between the horizontal ankle->toe direction and ``F = (hip_B - hip_A)
            x up`` (positive: the toes point along F).
        knees_forward: fraction of frames with a bent knee (> 3 cm off the hip-ankle line) whose knee
            bulges along F.
        elbows_backward: fraction of frames with a bent elbow whose elbow points against F.
        head_yaw_to_a_deg: median yaw of the head-marker axis relative to the shoulder axis, degrees,
            positive when the head is turned towards side A.
    """

    toes_forward: float
    knees_forward: float
    elbows_backward: float
    head_yaw_to_a_deg: float


# ----- reading ---------------------------------------------------------------------------------


def read_tang_markers(seq_dir: str | Path) -> np.ndarray:
    """Read one DANCE sequence's markers in world coordinates, converted to metres.

    Args:
        seq_dir: a ``DANCE_<style>_<n>`` folder holding ``skeletons.json``.
    Returns:
        (T, 23, 3) float32 metres, ``(center[:, None] + skeletons) / 100`` in the file's own frame
        (y up, left-handed; :func:`markers_to_smplx` mirrors it).
    Raises:
        DataError: when the file is missing, is not valid JSON, lacks ``center``/``skeletons``, has
            inconsistent shapes, or holds NaN/inf (the message names the frame).
    """
    path = Path(seq_dir) / "skeletons.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; expected a DANCE sequence folder holding skeletons.json")
    try:
        with path.open() as fh:
            data = json.load(fh)
        center = np.asarray(data["center"], dtype=np.float64)
        skel = np.asarray(data["skeletons"], dtype=np.float64)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: cannot read 'center' (T x 3) and 'skeletons' (T x 23 x 3): {err}") from err
    if skel.ndim != 3 or skel.shape[1:] != (NUM_TANG_MARKERS, 3) or center.shape != (skel.shape[0], 3):
        raise DataError(
            f"{path}: 'skeletons' has shape {skel.shape} and 'center' {center.shape}; "
            f"expected (T, {NUM_TANG_MARKERS}, 3) and (T, 3)"
        )
    markers = (center[:, None, :] + skel) / 100.0
    _check_finite(markers, str(path))
    return markers.astype(np.float32)


def _check_finite(markers: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(markers)
    if bad.any():
        t, m, _ = np.argwhere(bad)[0]
        raise DataError(
            f"{what}: NaN/inf at frame {int(t)} (marker {int(m)}); "
            f"{int(bad.any(axis=(1, 2)).sum())} frame(s) affected. Expected finite marker positions."
        )


def _validate(markers) -> np.ndarray:
    m = np.asarray(markers, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (NUM_TANG_MARKERS, 3) or m.shape[0] < 1:
        raise DataError(f"Tang markers: shape {m.shape}, expected (T, {NUM_TANG_MARKERS}, 3) with T >= 1")
    _check_finite(m, "Tang markers")
    leg = np.median(np.linalg.norm(m[:, 7] - m[:, 9], axis=-1))
    if not 0.3 <= leg <= 1.5:
        hint = " (they look like centimetres: divide by 100)" if 30 <= leg <= 150 else ""
        raise DataError(
            f"Tang markers: median hip-ankle distance is {leg:.3g}; expected 0.3-1.5 metres{hint}"
        )
    return m


# ----- small geometry helpers ------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _perp(v: np.ndarray, axis_unit: np.ndarray) -> np.ndarray:
    return v - np.sum(v * axis_unit, axis=-1, keepdims=True) * axis_unit


def _frame(primary, secondary, rest_primary, rest_secondary) -> np.ndarray:
    """Global rotations (T, 3, 3) taking rest_primary onto primary and rest_secondary into the plane
    of (primary, secondary), on its side. Degenerate secondaries fall back to any perpendicular."""
    p = _unit(primary)
    s = _perp(secondary, p)
    n = np.linalg.norm(s, axis=-1)
    bad = n < 1e-9
    if bad.any():
        alt = np.where(np.abs(p[bad, 0:1]) < 0.9, _EX, _EY)
        s[bad] = _perp(alt, p[bad])
    s = _unit(s)
    a = np.stack([p, s, np.cross(p, s)], axis=-1)
    rp = _unit(np.asarray(rest_primary, dtype=np.float64))
    rs = _unit(_perp(np.asarray(rest_secondary, dtype=np.float64), rp))
    b = np.stack([rp, rs, np.cross(rp, rs)], axis=-1)
    return a @ b.T


def _rot_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by ``angle`` (T,) radians about the fixed unit ``axis`` (3,)."""
    return axis_angle_to_rotmat_np(np.asarray(angle, dtype=np.float64)[:, None] * _unit(axis)[None, :])


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 3, 3) shortest-arc rotations taking the fixed unit vector ``a`` (3,) onto directions ``b`` (T, 3)."""
    b = _unit(b)
    axis = np.cross(np.broadcast_to(a, b.shape), b)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    cos = np.sum(a * b, axis=-1, keepdims=True)
    rotvec = np.where(sin > 1e-12, axis / np.maximum(sin, 1e-12), 0.0) * np.arctan2(sin, cos)
    return axis_angle_to_rotmat_np(rotvec)


def _twist_angle(rot: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Twist (T,) radians of rotations (T, 3, 3) about ``axis`` (swing-twist decomposition)."""
    q = rotmat_to_quat_np(rot)
    tw = 2.0 * np.arctan2(q[:, :3] @ _unit(axis), q[:, 3])
    return (tw + np.pi) % (2 * np.pi) - np.pi


def _fill_twist(angle: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Unwrap a twist angle series (T,) over time and replace invalid frames by linear interpolation
    between valid neighbours. Left unwrapped, so that a share of it (the forearm's half) stays
    continuous in time. All invalid: zeros."""
    if not valid.any():
        return np.zeros_like(angle)
    t = np.arange(angle.shape[0])
    return np.interp(t, t[valid], np.unwrap(angle[valid]))


def _circ_mean(angle: np.ndarray) -> float:
    return float(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()))


def _upright(frame: np.ndarray) -> np.ndarray:
    """Post-multiply frames (T,3,3) by a constant pitch about their x axis so that the median pitch of
    world-up, seen in the frame, is zero (the sequence's median posture becomes upright)."""
    up_local = np.swapaxes(frame, -1, -2) @ _EY
    pitch = np.arctan2(up_local[:, 2], up_local[:, 1])
    return frame @ _rot_about(_EX, np.full(1, _circ_mean(pitch)))[0]


def _median_length(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(a - b, axis=-1)))


def _sym(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left/right symmetrise two offsets (mirror x)."""
    mir = np.array([-1.0, 1.0, 1.0])
    avg = 0.5 * (left + right * mir)
    return avg, avg * mir


# ----- the side decision -----------------------------------------------------------------------


def facing_evidence(markers_file_frame: np.ndarray) -> FacingEvidence:
    """Measure the side decision's evidence on raw markers (file frame, any unit, (T, 23, 3)).

    Raises:
        DataError: on a wrong shape or NaN/inf.
    """
    m = np.asarray(markers_file_frame, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (NUM_TANG_MARKERS, 3):
        raise DataError(f"Tang markers: shape {m.shape}, expected (T, {NUM_TANG_MARKERS}, 3)")
    _check_finite(m, "Tang markers")
    scale = np.median(np.linalg.norm(m[:, 7] - m[:, 9], axis=-1))  # leg length, unit-free thresholds
    fwd = np.cross(m[:, 16] - m[:, 7], _EY)
    fwd[:, 1] = 0.0
    fwd = _unit(fwd)

    def horiz_unit(v):
        v = v.copy()
        v[:, 1] = 0.0
        return _unit(v)

    toes = np.mean([np.mean(np.sum(horiz_unit(m[:, t] - m[:, a]) * fwd, -1)) for a, t in ((9, 11), (18, 20))])

    def bulge(a, b, c):
        off = _perp(m[:, b] - m[:, a], _unit(m[:, c] - m[:, a]))
        ok = np.linalg.norm(off, axis=-1) > 0.04 * scale
        return np.sum(off * fwd, -1)[ok]

    knees = np.concatenate([bulge(7, 8, 9), bulge(16, 17, 18)])
    elbows = np.concatenate([bulge(3, 4, 5), bulge(12, 13, 14)])
    # head yaw relative to the shoulders, in a torso frame with x towards side A
    xa = _unit(m[:, 3] - m[:, 12])
    up = _unit(_perp(0.5 * (m[:, 3] + m[:, 12]) - m[:, 2], xa))
    z = np.cross(up, xa)  # across the torso; its sign is then chosen to agree with F
    z = -z if np.mean(np.sum(z * fwd, -1)) < 0 else z
    head = m[:, 0] - m[:, 1]  # side-A head marker minus side-B one
    yaw = np.degrees(np.arctan2(-np.sum(head * z, -1), np.sum(head * xa, -1)))
    return FacingEvidence(
        toes_forward=float(toes),
        knees_forward=float(np.mean(knees > 0)) if knees.size else float("nan"),
        elbows_backward=float(np.mean(elbows < 0)) if elbows.size else float("nan"),
        head_yaw_to_a_deg=float(np.median(yaw)),
    )


# ----- IK --------------------------------------------------------------------------------------


def markers_to_output_frame(markers: np.ndarray, config: TangIKConfig | None = None) -> np.ndarray:
    """Markers (T, 23, 3) from the file's frame to the right-handed output frame, float64.

    With ``config.mirror_x`` (default) x is negated and the indices keep the meanings of
    :data:`TANG_MARKER_NAMES`; otherwise the frame is kept and sides A and B (and the head and hand
    direction markers) are swapped, so that the names still hold. Does not validate.
    """
    cfg = config or TangIKConfig()
    m = np.asarray(markers, dtype=np.float64)
    if cfg.mirror_x:
        return m * np.array([-1.0, 1.0, 1.0])
    swap = list(range(NUM_TANG_MARKERS))
    for a, b in zip(range(3, 12), range(12, 21)):
        swap[a], swap[b] = b, a
    swap[0], swap[1] = 1, 0
    swap[21], swap[22] = 22, 21
    return m[:, swap]


def _bezier(p0, c, p1, s: float) -> np.ndarray:
    return (1 - s) ** 2 * p0 + 2 * s * (1 - s) * c + s**2 * p1


def markers_to_smplx(markers: np.ndarray, config: TangIKConfig | None = None) -> TangIKResult:
    """Fit SMPL-X body joint rotations to one DANCE sequence's markers (see the module docstring).

    Args:
        markers: (T, 23, 3) float, world positions in metres in the file's frame (as
            :func:`read_tang_markers` returns them), T >= 1.
        config: :class:`TangIKConfig`; defaults when None.
    Returns:
        :class:`TangIKResult`.
    Raises:
        DataError: on a wrong shape, NaN/inf (naming the first bad frame) or implausible units.
    """
    cfg = config or TangIKConfig()
    m = markers_to_output_frame(_validate(markers), cfg)
    T = m.shape[0]
    mk = {name: m[:, i] for name, i in _M.items()}

    # ---- targets: measured joints
    tgt = np.zeros((T, NUM_BODY_JOINTS, 3))
    for joint, marker in (
        ("spine1", "waist"), ("left_hip", "left_hip"), ("right_hip", "right_hip"),
        ("left_knee", "left_knee"), ("right_knee", "right_knee"),
        ("left_ankle", "left_ankle"), ("right_ankle", "right_ankle"),
        ("left_foot", "left_toe"), ("right_foot", "right_toe"),
        ("left_shoulder", "left_shoulder"), ("right_shoulder", "right_shoulder"),
        ("left_elbow", "left_elbow"), ("right_elbow", "right_elbow"),
        ("left_wrist", "left_wrist"), ("right_wrist", "right_wrist"),
    ):
        tgt[:, _J[joint]] = mk[marker]
    head = 0.5 * (mk["head_left"] + mk["head_right"])
    tgt[:, _J["head"]] = head
    sh_mid = 0.5 * (mk["left_shoulder"] + mk["right_shoulder"])
    neck = sh_mid + cfg.neck_fraction * (head - sh_mid)
    tgt[:, _J["neck"]] = neck
    for side in ("left", "right"):
        tgt[:, _J[f"{side}_collar"]] = sh_mid + cfg.collar_fraction * (mk[f"{side}_shoulder"] - sh_mid)

    # ---- pelvis and chest frames (calibrated upright at the median); pelvis joint between the hips
    waist = mk["waist"]
    hip_axis = mk["left_hip"] - mk["right_hip"]
    hip_mid = 0.5 * (mk["left_hip"] + mk["right_hip"])
    up_p = _perp(waist - hip_mid, _unit(hip_axis))
    tgt[:, _J["pelvis"]] = hip_mid + _PELVIS_FRACTION * np.median(np.linalg.norm(up_p, axis=-1)) * _unit(up_p)
    g_pelvis = _upright(_frame(hip_axis, up_p, _EX, _EY))
    g_chest = _upright(_frame(mk["left_shoulder"] - mk["right_shoulder"], sh_mid - waist, _EX, _EY))

    # ---- spine2/3 on a Bezier curve spine1 (waist) -> neck, the frames' up axes as end tangents
    d = np.linalg.norm(neck - waist, axis=-1, keepdims=True)
    ctrl = 0.5 * ((waist + 0.5 * d * g_pelvis[:, :, 1]) + (neck - 0.5 * d * g_chest[:, :, 1]))
    for name, s in zip(("spine2", "spine3"), _SPINE_S):
        tgt[:, _J[name]] = _bezier(waist, ctrl, neck, s)

    # ---- global frames
    G = np.zeros((T, NUM_BODY_JOINTS, 3, 3))
    G[:, _J["pelvis"]] = g_pelvis
    rel_chest = np.einsum("tji,tjk->tik", g_pelvis, g_chest)  # pelvis^T chest
    rel_rv = rotmat_to_axis_angle_np(rel_chest)
    chain = ("spine1", "spine2", "spine3", "neck")
    for k, name in enumerate(chain[:-1]):
        interp = g_pelvis @ axis_angle_to_rotmat_np(rel_rv * (k + 1) / 3.0)
        child = tgt[:, _J[chain[k + 1]]]
        G[:, _J[name]] = _frame(child - tgt[:, _J[name]], interp[:, :, 0], _EY, _EX)
    # neck -> head; twist from the head-marker axis (left minus right marker). Where that axis is
    # short across the neck direction (markers collapsed or in line with the neck) or points against
    # the chest's x axis (no head turns 90 degrees), blend smoothly towards the chest's x axis.
    head_axis = _perp(mk["head_left"] - mk["head_right"], _unit(head - neck))
    across = np.linalg.norm(head_axis, axis=-1)
    head_axis = _unit(head_axis)
    w = np.clip((across / np.median(across) - 0.3) / 0.4, 0.0, 1.0)
    w *= np.clip(3.0 * np.sum(head_axis * g_chest[:, :, 0], -1), 0.0, 1.0)
    head_axis = w[:, None] * head_axis + (1.0 - w[:, None]) * g_chest[:, :, 0]
    G[:, _J["neck"]] = _frame(head - neck, head_axis, _EY, _EX)
    G[:, _J["head"]] = G[:, _J["neck"]]
    chest_up = G[:, _J["spine3"], :, 1]
    chest_fwd = G[:, _J["spine3"], :, 2]

    for side, sgn in (("left", 1.0), ("right", -1.0)):
        ax = sgn * _EX
        col, sho, elb, wri = (tgt[:, _J[f"{side}_{n}"]] for n in ("collar", "shoulder", "elbow", "wrist"))
        G[:, _J[f"{side}_collar"]] = _frame(sho - col, chest_up, ax, _EY)
        fore = wri - elb
        upper_u = _unit(elb - sho)
        len_fore = np.median(np.linalg.norm(fore, axis=-1))
        bend = _perp(fore, upper_u) + cfg.arm_fallback * len_fore * _perp(chest_fwd, upper_u)
        G[:, _J[f"{side}_shoulder"]] = _frame(elb - sho, bend, ax, _EZ)
        G[:, _J[f"{side}_elbow"]] = _frame(fore, G[:, _J[f"{side}_shoulder"], :, 1], ax, _EY)
        # hand: swing from the hand marker; twist about the hand axis from the hand-direction marker,
        # measured against the forearm's hinge frame, calibrated (median 0: placement unknown),
        # unwrapped over time, and interpolated over frames where that marker is implausible
        g_e = G[:, _J[f"{side}_elbow"]]
        hand = mk[f"{side}_hand"] - mk[f"{side}_wrist"]
        hand_dir = mk[f"{side}_hand_direction"] - mk[f"{side}_wrist"]
        g_w0 = g_e @ _swing(ax, np.einsum("tji,tj->ti", g_e, hand))  # no twist relative to the forearm
        tw = _twist_angle(np.swapaxes(g_w0, -1, -2) @ _frame(hand, hand_dir, ax, _EZ), ax)
        off = np.linalg.norm(_perp(hand_dir, _unit(hand)), axis=-1)
        dist = np.linalg.norm(hand_dir, axis=-1)
        ok = (off > 0.3 * np.median(off)) & (np.abs(dist / np.median(dist) - 1.0) < 0.5)
        tw = _fill_twist(tw - _circ_mean(tw[ok] if ok.any() else tw), ok)
        G[:, _J[f"{side}_wrist"]] = g_w0 @ _rot_about(ax, tw)
        # forearm pronation: half of the hand's twist moves into the elbow (positions unchanged)
        G[:, _J[f"{side}_elbow"]] = g_e @ _rot_about(ax, 0.5 * tw)

        hip, knee, ank, foot = (tgt[:, _J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle", "foot"))
        heel = mk[f"{side}_heel"]
        thigh_u = _unit(knee - hip)
        shin = ank - knee
        len_shin = np.median(np.linalg.norm(shin, axis=-1))
        sole = foot - heel
        # knee bend direction. A slightly bent knee that seems to bend backwards against the pelvis
        # (noise on a straight leg, marker glitches) hands over smoothly to the pelvis' forward axis;
        # a clearly bent knee (> ~35 degrees) is trusted whichever way it points.
        bend = -_perp(shin, thigh_u)
        pelvis_fwd = _unit(_perp(g_pelvis[:, :, 2], thigh_u))
        w_dir = np.clip((np.sum(_unit(bend) * pelvis_fwd, -1) + 0.3) / 0.5, 0.0, 1.0)
        w_mag = np.clip((np.linalg.norm(bend, axis=-1) / len_shin - 0.3) / 0.3, 0.0, 1.0)
        w = np.maximum(w_dir, w_mag)
        fwd = w[:, None] * bend + cfg.leg_fallback * len_shin * pelvis_fwd
        G[:, _J[f"{side}_hip"]] = _frame(knee - hip, fwd, -_EY, _EZ)
        # shin: a hinge about the thigh's x axis (the flexion axis, always across the shin)
        G[:, _J[f"{side}_knee"]] = _frame(shin, G[:, _J[f"{side}_hip"], :, 0], -_EY, _EX)
        # sole roll from heel-toe-ankle (this points to the character's left for both feet), with the
        # shin's x axis as a weak fallback for a collapsed heel/toe/ankle triangle
        lateral = _unit(np.cross(ank - heel, sole)) + 0.2 * G[:, _J[f"{side}_knee"], :, 0]
        foot_rest = _foot_rest_dir(shin, foot - ank)
        G[:, _J[f"{side}_ankle"]] = _frame(foot - ank, lateral, foot_rest, _EX)
        G[:, _J[f"{side}_foot"]] = G[:, _J[f"{side}_ankle"]]

    # ---- rest offsets (median lengths, SMPL-X T-pose layout)
    rest = _rest_offsets(tgt, G, mk)
    local = global_to_local_np(G, SMPLX_BODY_PARENTS)
    root = tgt[:, 0] - rest[0]
    if cfg.refine_iters > 0:
        local, root = _refine(local, root, rest, tgt, cfg)
    return TangIKResult(
        local_rotmats=local.astype(np.float32),
        root_translation=root.astype(np.float32),
        rest_offsets=rest.astype(np.float32),
        joint_targets=tgt.astype(np.float32),
        config=cfg,
    )


def _foot_rest_dir(shin: np.ndarray, foot: np.ndarray) -> np.ndarray:
    """Rest direction of ankle->foot: forward-down at the median shin-foot angle, (3,)."""
    cos = np.sum(_unit(shin) * _unit(foot), -1)
    ang = float(np.median(np.arccos(np.clip(cos, -1.0, 1.0))))
    return np.array([0.0, -np.cos(ang), np.sin(ang)])


def _rest_offsets(tgt: np.ndarray, G: np.ndarray, mk: dict) -> np.ndarray:
    rest = np.zeros((NUM_BODY_JOINTS, 3))

    def local_median(parent: str, child: str) -> np.ndarray:
        vec = tgt[:, _J[child]] - tgt[:, _J[parent]]
        return np.median(np.einsum("tji,tj->ti", G[:, _J[parent]], vec), axis=0)

    def length(parent: str, child: str) -> float:
        return _median_length(tgt[:, _J[child]], tgt[:, _J[parent]])

    rest[_J["left_hip"]], rest[_J["right_hip"]] = _sym(
        local_median("pelvis", "left_hip"), local_median("pelvis", "right_hip")
    )
    rest[_J["spine1"]] = local_median("pelvis", "spine1") * np.array([0.0, 1.0, 1.0])
    rest[_J["spine2"]] = length("spine1", "spine2") * _EY
    rest[_J["spine3"]] = length("spine2", "spine3") * _EY
    rest[_J["neck"]] = length("spine3", "neck") * _EY
    rest[_J["head"]] = length("neck", "head") * _EY
    rest[_J["left_collar"]], rest[_J["right_collar"]] = _sym(
        local_median("spine3", "left_collar"), local_median("spine3", "right_collar")
    )
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        for parent, child in (("collar", "shoulder"), ("shoulder", "elbow"), ("elbow", "wrist")):
            rest[_J[f"{side}_{child}"]] = sgn * length(f"{side}_{parent}", f"{side}_{child}") * _EX
        for parent, child in (("hip", "knee"), ("knee", "ankle")):
            rest[_J[f"{side}_{child}"]] = -length(f"{side}_{parent}", f"{side}_{child}") * _EY
        shin = tgt[:, _J[f"{side}_ankle"]] - tgt[:, _J[f"{side}_knee"]]
        foot = tgt[:, _J[f"{side}_foot"]] - tgt[:, _J[f"{side}_ankle"]]
        rest[_J[f"{side}_foot"]] = length(f"{side}_ankle", f"{side}_foot") * _foot_rest_dir(shin, foot)
    pos = fk_np(np.broadcast_to(np.eye(3), (NUM_BODY_JOINTS, 3, 3)), np.zeros(3), rest, SMPLX_BODY_PARENTS)
    rest[0] = np.array([0.0, -pos[:, 1].min(), 0.0])
    return rest


def _skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices (..., 3, 3) of vectors (..., 3)."""
    z = np.zeros(v.shape[:-1])
    return np.stack(
        [np.stack([z, -v[..., 2], v[..., 1]], -1),
         np.stack([v[..., 2], z, -v[..., 0]], -1),
         np.stack([-v[..., 1], v[..., 0], z], -1)], -2,
    )


def _refine(local: np.ndarray, root: np.ndarray, rest: np.ndarray, tgt: np.ndarray, cfg: TangIKConfig):
    """Per-frame Levenberg-Marquardt on local rotation corrections and the root translation.

    Parameters per frame: a right-multiplied correction ``R_j <- R_j exp([d_j]x)`` for every joint
    that moves another joint (17 of 22), and a root translation step. Residual: FK positions minus
    targets (66 values), plus ``sqrt(refine_prior)`` times each correction's axis-angle. Jacobian
    (analytic): a small rotation ``d_j`` of joint j moves each strict
    descendant k by ``(G_j d_j) x (p_k - p_j)``, i.e. ``dp_k/dd_j = -[p_k - p_j]x G_j``; the root
    translation moves every joint by the identity. Directions the targets do not see (twist about a
    bone with a single, collinear child) get zero steps from the damping, so step 1's twists stay.
    """
    parents = SMPLX_BODY_PARENTS
    J = NUM_BODY_JOINTS
    movers = sorted({p for p in parents if p >= 0})
    nm = len(movers)
    n_par = 3 * nm + 3
    desc = np.zeros((J, J), dtype=bool)  # desc[k, j]: k is a strict descendant of j
    for k in range(J):
        p = parents[k]
        while p >= 0:
            desc[k, p] = True
            p = parents[p]
    T = local.shape[0]
    base = local[:, movers].copy()
    local = local.copy()
    root = root.copy()
    lam = np.full(T, cfg.refine_damping)
    mu = cfg.refine_prior

    def correction(loc):  # (T, nm, 3) axis-angle of the correction from the analytic rotations
        return rotmat_to_axis_angle_np(np.swapaxes(base, -1, -2) @ loc[:, movers])

    def cost_of(loc, rt):
        pos, glob = fk_np(loc, rt, rest, parents, return_global_rotmats=True)
        corr = correction(loc)
        return pos, glob, corr, np.sum((pos - tgt) ** 2, axis=(1, 2)) + mu * np.sum(corr**2, axis=(1, 2))

    pos, glob, corr, cost = cost_of(local, root)
    eye = np.eye(n_par)
    prior = np.diag(np.r_[np.full(3 * nm, mu), np.zeros(3)])
    for _ in range(cfg.refine_iters):
        jac = np.zeros((T, J, 3, n_par))
        for a, j in enumerate(movers):
            lever = pos - pos[:, j : j + 1]
            block = -_skew(lever) @ glob[:, j][:, None]
            jac[..., 3 * a : 3 * a + 3] = block * desc[:, j][None, :, None, None]
        jac[..., -3:] = np.eye(3)
        jac = jac.reshape(T, 3 * J, n_par)
        res = (pos - tgt).reshape(T, 3 * J)
        jtj = np.swapaxes(jac, 1, 2) @ jac + prior
        jtr = np.einsum("tpi,tp->ti", jac, res)
        jtr[:, : 3 * nm] += mu * corr.reshape(T, 3 * nm)
        step = -np.linalg.solve(jtj + lam[:, None, None] * eye, jtr[..., None])[..., 0]
        trial = local.copy()
        trial[:, movers] = local[:, movers] @ axis_angle_to_rotmat_np(step[:, : 3 * nm].reshape(T, nm, 3))
        trial_root = root + step[:, -3:]
        t_pos, t_glob, t_corr, t_cost = cost_of(trial, trial_root)
        better = t_cost < cost
        local[better], root[better] = trial[better], trial_root[better]
        pos[better], glob[better] = t_pos[better], t_glob[better]
        corr[better], cost[better] = t_corr[better], t_cost[better]
        lam = np.where(better, np.maximum(lam / 3.0, 1e-6), lam * 4.0)
    return local, root


def target_bone_deviation_mm(result: TangIKResult) -> np.ndarray:
    """Per frame, the largest deviation of a measured limb bone's length from its rest length, (T,)
    float64 mm, over the bones whose two ends are both markers (thighs, shins, feet, upper arms,
    forearms).

    Large values flag frames where the data's own bone lengths jump (in several takes the thighs and
    upper arms switch between two lengths, e.g. 44 and 54 cm, for whole passages): no rigid skeleton
    can fit those frames closely.
    """
    measured = {_J[n] for n in MEASURED_JOINTS}
    bones = [j for j, p in enumerate(SMPLX_BODY_PARENTS) if p >= 0 and j in measured and p in measured]
    par = [SMPLX_BODY_PARENTS[j] for j in bones]
    tgt = result.joint_targets.astype(np.float64)
    lengths = np.linalg.norm(tgt[:, bones] - tgt[:, par], axis=-1)
    rest = np.linalg.norm(result.rest_offsets[bones].astype(np.float64), axis=-1)
    return np.abs(lengths - rest).max(axis=-1) * 1000.0


def ik_error_mm(result: TangIKResult) -> IKError:
    """FK of ``result`` vs its ``joint_targets``: per-joint mean and max Euclidean error, millimetres."""
    err = np.linalg.norm(
        result.joint_positions().astype(np.float64) - result.joint_targets.astype(np.float64), axis=-1
    ) * 1000.0
    return IKError(mean_mm=err.mean(axis=0), max_mm=err.max(axis=0), per_frame_mm=err)
