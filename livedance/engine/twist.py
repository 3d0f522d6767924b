"""Forearm twist limiter: no elbow or wrist twist faster than the real dances ever twist.

The twist of the elbows and wrists about the forearm's own axis moves no joint position: motion capture from
markers on the arm's joints, as in the Tang 2018 dances, barely constrains it, and the eval metrics (joint
positions) cannot see it. The learned dancer uses that freedom badly: on the bundled song it snaps a forearm
through 1.5-3 rad of twist in one frame 7-22 times a minute per joint (the train dances: 0.1-0.5 times), which on
an avatar's mesh is a forearm wringing itself in 40 ms. :class:`TwistLimiter` bounds the twist speed of each
elbow and wrist to ``max_rad_s`` (13 rad/s: the 99.9th percentile of the train dances' 10-13 rad/s), frame by
frame, so a snap becomes a turn of a few frames; below the bound nothing changes, bit for bit.

Per frame t and joint j with twist axis u (an elbow's: the forearm's rest direction, elbow to wrist; a wrist's:
SMPL-X's rest convention, +x left and -x right, along which SMPL's hands are placed), in the joint's own frame,
with the
swing-twist decomposition q = s * t(phi), t(phi) = (sin(phi/2) u, cos(phi/2)) (x, y, z, w):

    phi_t      = 2 atan2(<q_xyz, u>, q_w), unwrapped to the 2 pi k nearest the previous output's twist
    phi'_t     = phi'_{t-1} + clip(phi_t - phi'_{t-1}, -max_rad_s / fps, +max_rad_s / fps)
    q'_t       = q_t * t(phi'_t - phi_t)                  (the swing, and so the child bone, untouched)
    q'_child   = t(phi_t - phi'_t) * q_child              (an elbow's wrist keeps its global orientation)

The elbows are limited first, each wrist taking back its elbow's held-back twist (so the elbow pass leaves every
hand's global orientation as generated); then each wrist's own twist is limited, so a hand that a snap carried
along turns with the forearm instead of snapping. Joint positions (all 22 body joints, and SMPL's hands placed
along the wrist's twist axis) are unchanged by construction: the eval metrics, which see positions only, do not
move. What it does not touch: a hand whose direction (not twist) flips, which moves the hand's position and is
the generator's own choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from livedance.errors import ConfigError

__all__ = ["TwistConfig", "TwistLimiter", "twist_angle"]

#: (elbow, wrist) pairs of the SMPL-X body: the left and the right forearm.
FOREARMS = ((18, 20), (19, 21))


@dataclass
class TwistConfig:
    """Settings of :class:`TwistLimiter`.

    Attributes:
        enabled: apply the limiter (on by default in :class:`~livedance.engine.learned.LearnedGenerator`).
        max_rad_s: largest twist speed of an elbow or a wrist about the forearm, radians per second.
    """

    enabled: bool = True
    max_rad_s: float = 13.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the bad field."""
        if not 1.0 <= float(self.max_rad_s) <= 200.0:
            raise ConfigError(f"TwistConfig.max_rad_s must be in [1, 200] rad/s, got {self.max_rad_s}")


def twist_angle(q: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Twist angle (radians; some 2 pi representative in (-2 pi, 2 pi], callers unwrap) of unit quaternions ``q`` (..., 4) x, y, z, w about the unit ``axis``
    (..., 3), for the decomposition q = swing * twist (the twist applied first, in the joint's own frame)."""
    return 2.0 * np.arctan2((q[..., :3] * axis).sum(-1), q[..., 3])


def _twist_quat(angle: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions of ``angle`` (...) radians about ``axis`` (..., 3)."""
    half = 0.5 * angle[..., None]
    return np.concatenate([np.sin(half) * axis, np.cos(half)], axis=-1)


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (..., 4) x, y, z, w quaternions (roma.quat_product's maths in numpy: on the 2 x 8
    quaternions of a step, torch's per-call dispatch would cost more than the arithmetic)."""
    av, aw, bv, bw = a[..., :3], a[..., 3:], b[..., :3], b[..., 3:]
    return np.concatenate([aw * bv + bw * av + np.cross(av, bv), aw * bw - (av * bv).sum(-1, keepdims=True)], -1)


class TwistLimiter:
    """Bounds the forearm twist speed of a dancer's frames (see the module docstring).

    Args:
        rest_offsets: (22, 3) float metres, the skeleton's rest offsets (the forearm axes come from the wrists';
            a zero offset falls back to SMPL-X's rest convention, the left arm along +x and the right along -x).
        fps: frame rate of the frames it is given (25 for the shipped model).
        config: :class:`TwistConfig`.
    Raises:
        ConfigError: bad config or ``fps`` <= 0.

    Attributes:
        n_limited: frames x joints whose twist was held back so far (since the last :meth:`reset`).

    State: the last output twist angle of each of the four joints; :meth:`reset` forgets it.
    """

    def __init__(self, rest_offsets: np.ndarray, fps: float, config: TwistConfig | None = None):
        self.cfg = config or TwistConfig()
        self.cfg.validate()
        if not (math.isfinite(fps) and fps > 0):
            raise ConfigError(f"TwistLimiter fps must be finite and > 0, got {fps}")
        if not float(self.cfg.max_rad_s) / float(fps) < math.pi:
            raise ConfigError(f"TwistConfig.max_rad_s {self.cfg.max_rad_s} must be below pi x fps "
                              f"({math.pi * fps:.1f} rad/s at {fps:g} fps): a bound of half a turn a frame holds nothing")
        rest = np.asarray(rest_offsets, np.float64)
        sides = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])  # SMPL-X's rest convention: left arm +x, right -x
        axes = []
        for (_, wrist), side in zip(FOREARMS, sides):
            length = float(np.linalg.norm(rest[wrist])) if rest.shape[0] > wrist else 0.0
            axes.append(rest[wrist] / length if length > 0 else side)  # no offsets: the convention
        self._axes = {"elbow": np.stack(axes),  # (2, 3): the forearm, elbow -> wrist, in the elbow's frame
                      "wrist": sides}  # the hand's axis, along which livedance.data.dataset places SMPL's hands
        self._elbows = np.array([e for e, _ in FOREARMS])
        self._wrists = np.array([w for _, w in FOREARMS])
        self._step = float(self.cfg.max_rad_s) / float(fps)
        self.reset()

    def reset(self) -> None:
        """Forget the last output twists (a new song)."""
        self._prev = {"elbow": None, "wrist": None}  # (2,) float64 unwrapped twist angles, radians
        self.n_limited = 0

    def _slew(self, kind: str, phi: np.ndarray, free: np.ndarray) -> np.ndarray:
        """The slew limiter over the (n, 2) twists ``phi``, frame by frame (plain floats: 16 steps of scalar
        arithmetic cost less than numpy's per-call overhead); ``free`` (n, 2) bool marks frames whose twist is
        ill-defined (a swing near 180 degrees), which pass as they are and re-anchor the state. Returns (n, 2)
        output - target, radians, 0 where not held."""
        two_pi, step = 2.0 * math.pi, self._step
        prev = list(phi[0] if self._prev[kind] is None else self._prev[kind])
        delta = np.zeros_like(phi)
        for i, (row, free_row) in enumerate(zip(phi.tolist(), free.tolist())):
            for j, f in enumerate(row):
                target = f + two_pi * round((prev[j] - f) / two_pi)
                out = target if free_row[j] else prev[j] + min(max(target - prev[j], -step), step)
                prev[j] = out
                if abs(target - out) > 1e-12:
                    delta[i, j] = out - target
        self._prev[kind] = np.array(prev)
        self.n_limited += int(np.count_nonzero(delta))
        return delta

    def _within_bound(self, kind: str, phi: np.ndarray) -> bool:
        """Whether the (n, 2) twists ``phi`` need no limiting; if so, advance the state past them.

        True when no frame-to-frame twist (wrapped to (-pi, pi]; the first one from the last output's) exceeds
        the bound: the output is then the input, and the state is its last unwrapped twist.
        """
        prev = self._prev[kind]
        if prev is None:
            prev = phi[0]
        steps = np.diff(np.vstack([prev[None], phi]), axis=0)
        steps = (steps + np.pi) % (2.0 * np.pi) - np.pi
        if np.abs(steps).max() > self._step:
            return False
        self._prev[kind] = prev + steps.sum(axis=0)
        return True

    def apply(self, frames):
        """The frames with every elbow's and wrist's twist speed bounded.

        Args:
            frames: :class:`~livedance.engine.base.MotionFrames` (local_quats (n, J >= 22, 4) float32 unit
                quaternions x, y, z, w).
        Returns:
            ``frames`` itself when nothing was held back (or the limiter is off, or the frames are empty, have
            fewer than 22 joints or hold non-finite values), else a new MotionFrames with the four joints' local
            rotations changed (float32). Limiting a wrist turns its children with it: SMPL-X's finger joints
            (25-54) when they are animated, never a body joint's position.
        """
        q_in = np.asarray(frames.local_quats)
        if not self.cfg.enabled or q_in.shape[0] == 0 or q_in.shape[1] < 22 or not np.isfinite(q_in).all():
            return frames
        q = q_in.astype(np.float64)
        changed = False
        for kind, joints, children in (("elbow", self._elbows, self._wrists), ("wrist", self._wrists, None)):
            axes = self._axes[kind]
            qj = q[:, joints]
            phi = twist_angle(qj, axes)  # (n, 2) radians
            # the twist is ill-defined where the swing nears 180 degrees (w and the axis component both ~0)
            free = np.hypot(qj[..., 3], (qj[..., :3] * axes).sum(-1)) < 0.2
            if not free.any() and self._within_bound(kind, phi):
                continue  # the common case: no frame twists too fast
            delta = self._slew(kind, phi, free)  # (n, 2) the twist taken back per frame, radians (0 = untouched)
            if not delta.any():
                continue
            changed = True
            q[:, joints] = _mul(qj, _twist_quat(delta, axes))
            if children is not None:  # the wrist takes back its elbow's held-back twist: the hand stays
                q[:, children] = _mul(_twist_quat(-delta, axes), q[:, children])
        if not changed:
            return frames
        out_q = q_in.copy()
        out_q[:, self._elbows] = q[:, self._elbows].astype(np.float32)
        out_q[:, self._wrists] = q[:, self._wrists].astype(np.float32)
        return replace(frames, local_quats=out_q)
