"""Geometric features (32-d) of a dance: the "g" of FIDg and Divg.

Implements ``extract_manual_features`` of Bailando's ``utils/features/manual_new.py`` (fairmotion's
Mueller-style boolean relational features, Müller, Röder & Clausen, "Efficient content-based
retrieval of motion capture data", SIGGRAPH 2005), vectorised over frames. For each frame
t = 1 .. T-1 the 32 boolean features below are evaluated on frame t (and t-1 for the velocity
features); the output is their mean over the T-1 frames, i.e. the fraction of time each holds.

Feature kinds (``a, b, c, d`` are joints of frame t, ``a', ...`` of frame t-1; |x| the L2 norm):

- ``move(j1, j2, j3, thr)``: v = ((j3 - j1) - (j3' - j1')) / dt_ref; v . (j2 - j1) / |j2 - j1| > thr
- ``nmove(j1, j2, j3, j4, thr)``: v = ((j4 - j1) - (j4' - j1')) / dt_ref;
  n = (j3 - j1) x (j2 - j1); v . n / |n| > thr
- ``plane(j1, j2, j3, p, thr)``: n = (j3 - j1) x (j2 - j1); n . (p - j1) / |n| > thr
- ``nplane(n1, n2, a, p, thr)``: (n2 - n1) . (p - a) / |n2 - n1| > thr
- ``angle(j1, j2, j3, j4, lo, hi)``: lo < angle(j2 - j1, j4 - j3) in degrees < hi
- ``fast(j, thr)``: |j - j'| / dt_ref > thr

Pseudo-joints: ``zero`` = (0, 0, 0), ``y_unit`` = (0, 1, 0), ``minus_y_unit`` = (0, -1, 0),
``y_min`` = (0, lowest joint height of frame t, 0). Thresholds are multiples of the reference's
fixed humerus length ``hl``, shoulder width ``sw`` and hip width ``hw`` (metres, from an SMPL rest
pose; constants below). A degenerate direction (zero-length vector) makes a feature False, as the
NaN comparison does in the reference.

Frame rate. The reference calls its velocity helpers without their ``time_per_frame`` argument,
so they divide per-frame displacements by the default 1/120 s although AIST++ runs at 60 fps: its
"velocity" is twice the physical one. To keep the thresholds meaning what they mean in the
published numbers at any rate, ``dt_ref = 1 / (2 * fps)`` here (1/120 s at 60 fps, exactly the
reference; 1/50 s at 25 fps).
"""

from __future__ import annotations

import numpy as np

from livedance.eval.joints import JOINT_INDEX, check_positions

_L_SHOULDER = np.array([1.99113488e-01, 2.36807942e-01, -1.80702247e-02])
_L_ELBOW = np.array([4.54445392e-01, 2.21158922e-01, -4.10167128e-02])
_R_SHOULDER = np.array([-1.91692337e-01, 2.36928746e-01, -1.23055102e-02])
_L_HIP = np.array([5.64076714e-02, -3.23069185e-01, 1.09197125e-02])
_R_HIP = np.array([-6.24834076e-02, -3.31302464e-01, 1.50412619e-02])

#: Humerus length, shoulder width and hip width of the reference's rest pose (metres).
HUMERUS_LENGTH = float(np.linalg.norm(_L_SHOULDER - _L_ELBOW))
SHOULDER_WIDTH = float(np.linalg.norm(_L_SHOULDER - _R_SHOULDER))
HIP_WIDTH = float(np.linalg.norm(_L_HIP - _R_HIP))

_HL, _SW, _HW = HUMERUS_LENGTH, SHOULDER_WIDTH, HIP_WIDTH

#: The 32 features in the reference's order: (kind, joints, threshold or (lo, hi) degrees).
GEOMETRIC_FEATURES: tuple[tuple[str, tuple[str, ...], float | tuple[float, float]], ...] = (
    ("nmove", ("neck", "rhip", "lhip", "rwrist"), 1.8 * _HL),
    ("nmove", ("neck", "lhip", "rhip", "lwrist"), 1.8 * _HL),
    ("nplane", ("chest", "neck", "neck", "rwrist"), 0.2 * _HL),
    ("nplane", ("chest", "neck", "neck", "lwrist"), 0.2 * _HL),
    ("move", ("belly", "chest", "chest", "rwrist"), 1.8 * _HL),
    ("move", ("belly", "chest", "chest", "lwrist"), 1.8 * _HL),
    ("angle", ("relbow", "rshoulder", "relbow", "rwrist"), (0.0, 110.0)),
    ("angle", ("lelbow", "lshoulder", "lelbow", "lwrist"), (0.0, 110.0)),
    ("nplane", ("lshoulder", "rshoulder", "lwrist", "rwrist"), 2.5 * _SW),
    ("move", ("lwrist", "rwrist", "rwrist", "lwrist"), 1.4 * _HL),
    ("move", ("rwrist", "root", "lwrist", "root"), 1.4 * _HL),
    ("move", ("lwrist", "root", "rwrist", "root"), 1.4 * _HL),
    ("fast", ("rwrist",), 2.5 * _HL),
    ("fast", ("lwrist",), 2.5 * _HL),
    ("plane", ("root", "lhip", "ltoes", "rankle"), 0.38 * _HL),
    ("plane", ("root", "rhip", "rtoes", "lankle"), 0.38 * _HL),
    ("nplane", ("zero", "y_unit", "y_min", "rankle"), 1.2 * _HL),
    ("nplane", ("zero", "y_unit", "y_min", "lankle"), 1.2 * _HL),
    ("nplane", ("lhip", "rhip", "lankle", "rankle"), 2.1 * _HW),
    ("angle", ("rknee", "rhip", "rknee", "rankle"), (0.0, 110.0)),
    ("angle", ("lknee", "lhip", "lknee", "lankle"), (0.0, 110.0)),
    ("fast", ("rankle",), 2.5 * _HL),
    ("fast", ("lankle",), 2.5 * _HL),
    ("angle", ("neck", "root", "rshoulder", "relbow"), (25.0, 180.0)),
    ("angle", ("neck", "root", "lshoulder", "lelbow"), (25.0, 180.0)),
    ("angle", ("neck", "root", "rhip", "rknee"), (50.0, 180.0)),
    ("angle", ("neck", "root", "lhip", "lknee"), (50.0, 180.0)),
    ("plane", ("rankle", "neck", "lankle", "root"), 0.5 * _HL),
    ("angle", ("neck", "root", "zero", "y_unit"), (70.0, 110.0)),
    ("nplane", ("zero", "minus_y_unit", "y_min", "rwrist"), -1.2 * _HL),
    ("nplane", ("zero", "minus_y_unit", "y_min", "lwrist"), -1.2 * _HL),
    ("fast", ("root",), 2.3 * _HL),
)

#: Number of geometric features.
NUM_GEOMETRIC_FEATURES = len(GEOMETRIC_FEATURES)

_CONSTANT_POINTS = {
    "zero": np.array([0.0, 0.0, 0.0]),
    "y_unit": np.array([0.0, 1.0, 0.0]),
    "minus_y_unit": np.array([0.0, -1.0, 0.0]),
}


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1)


def _norm(a: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a, axis=-1)


class _Frames:
    """Joint lookup for frames 1..T-1 (``cur``) and 0..T-2 (``prev``), pseudo-joints included."""

    def __init__(self, positions: np.ndarray) -> None:
        self.cur = positions[1:]
        self.prev = positions[:-1]
        self.n = self.cur.shape[0]

    def at(self, name: str) -> np.ndarray:
        if name in _CONSTANT_POINTS:
            return np.broadcast_to(_CONSTANT_POINTS[name], (self.n, 3))
        if name == "y_min":
            out = np.zeros((self.n, 3))
            out[:, 1] = self.cur[:, :, 1].min(axis=1)
            return out
        return self.cur[:, JOINT_INDEX[name]]

    def before(self, name: str) -> np.ndarray:
        return self.prev[:, JOINT_INDEX[name]]


def _evaluate(kind: str, joints: tuple[str, ...], arg, f: _Frames, dt_ref: float) -> np.ndarray:
    """One feature for every frame 1..T-1: (T-1,) bool."""
    if kind == "move":
        j1, j2, j3 = joints[0], joints[1], joints[2]  # the reference ignores the 4th joint
        vel = (f.at(j3) - f.at(j1)) - (f.before(j3) - f.before(j1))
        direction = f.at(j2) - f.at(j1)
        return _dot(vel, direction) / _norm(direction) / dt_ref > arg
    if kind == "nmove":
        j1, j2, j3, j4 = joints
        vel = (f.at(j4) - f.at(j1)) - (f.before(j4) - f.before(j1))
        normal = np.cross(f.at(j3) - f.at(j1), f.at(j2) - f.at(j1))
        return _dot(vel, normal) / _norm(normal) / dt_ref > arg
    if kind == "plane":
        j1, j2, j3, p = (f.at(j) for j in joints)
        normal = np.cross(j3 - j1, j2 - j1)
        return _dot(normal, p - j1) / _norm(normal) > arg
    if kind == "nplane":
        n1, n2, a, p = (f.at(j) for j in joints)
        normal = n2 - n1
        return _dot(normal, p - a) / _norm(normal) > arg
    if kind == "angle":
        j1, j2, j3, j4 = (f.at(j) for j in joints)
        u, v = j2 - j1, j4 - j3
        cos = np.clip(_dot(u, v) / (_norm(u) * _norm(v)), -1.0, 1.0)
        angle = np.degrees(np.arccos(cos))
        lo, hi = arg
        return (angle > lo) & (angle < hi)
    if kind == "fast":
        (j,) = joints
        return _norm(f.at(j) - f.before(j)) / dt_ref > arg
    raise ValueError(f"unknown geometric feature kind {kind!r}")  # a bug, not bad input


def geometric_frame_features(positions: np.ndarray, fps: float, features: list[int] | None = None) -> np.ndarray:
    """The 32 boolean Mueller-style features of every frame 1 .. T-1.

    Args:
        positions: (T, 24, 3) SMPL-24 joint positions in metres, y up, root-anchored; T >= 2.
        fps: frame rate in frames per second (the reference assumes 60).
        features: indices into :data:`GEOMETRIC_FEATURES` to evaluate (None: all 32, in order).

    Returns:
        (T-1, F) bool; column i is feature ``features[i]`` of :data:`GEOMETRIC_FEATURES` (F = 32: feature i).

    Raises:
        DataError: wrong shape, fewer than 2 frames, NaN/inf, or a non-positive ``fps``.
    """
    p = check_positions(positions, fps, "geometric features", min_frames=2)
    frames = _Frames(p)
    dt_ref = 1.0 / (2.0 * fps)  # the reference's 1/120 s at 60 fps (see the module docstring)
    chosen = GEOMETRIC_FEATURES if features is None else [GEOMETRIC_FEATURES[k] for k in features]
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = [_evaluate(kind, joints, arg, frames, dt_ref) for kind, joints, arg in chosen]
    return np.stack(cols, axis=1) if cols else np.zeros((frames.n, 0), bool)


def geometric_features(positions: np.ndarray, fps: float) -> np.ndarray:
    """32-d geometric feature vector of one dance (Bailando ``extract_manual_features``).

    Args:
        positions: (T, 24, 3) SMPL-24 joint positions in metres, y up, cut and root-anchored as the
            protocol wants (:func:`livedance.eval.window.protocol_window`); T >= 2.
        fps: frame rate in frames per second.

    Returns:
        (32,) float32 in [0, 1]: the fraction of frames 1 .. T-1 in which each feature holds.

    Raises:
        DataError: see :func:`geometric_frame_features`.
    """
    return geometric_frame_features(positions, fps).mean(axis=0).astype(np.float32)
