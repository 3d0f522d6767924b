"""Stage leash: keep a learned dancer's pelvis within a radius of the stage centre, live.

The learned model integrates its own root velocity, as the dances it learned from do, and the Tang
dances travel (ballroom figures cross the floor): over a 3-minute song the shipped model's pelvis ends
17 to 25 m from where it started (``livedance generate`` on Armygeddon, seeds 0 and 1). A VMC receiver
moves the avatar with that travel (sent on the root, ``/VMC/Ext/Root/Pos``), so without a bound the avatar
walks out of the camera's view.

:class:`StageLeash` offsets the ground-plane (x, z) position of each model frame by o, an offset that
only moves while the shown position p - o is farther than ``radius_m`` from the centre c:

    e = p - o - c,  d = |e|,  if d > R:  o <- o + (d - R) (e / d) min(1, dt / pull_s)

so inside the radius the dance is untouched (no foot sliding), and beyond it the excess decays with time
constant ``pull_s`` (a dancer drifting at v m/s settles about v * pull_s past the radius, and slides at v
while it keeps drifting outwards). Height and rotations are never changed. The centre is the first frame's
(x, z). The performer applies it to a learned generator's frames on the scheduler thread, before the
idle cross-fade, so the warp, the sinks and the recordings all see the leashed motion; offline generation,
evaluation and ``benchmarks/warp_replay.py`` see the model's own root.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from livedance.engine.base import MotionFrames
from livedance.errors import ConfigError

__all__ = ["StageConfig", "StageLeash"]


@dataclass
class StageConfig:
    """Settings of the stage leash (see the module docstring).

    Attributes:
        radius_m: the shown pelvis stays within about this ground-plane distance of the centre, metres
            (0: no leash).
        pull_s: time constant of the pull back beyond the radius, seconds (> 0).
    """

    radius_m: float = 1.0
    pull_s: float = 1.0

    def validate(self) -> None:
        """Raise ConfigError naming the field: ``radius_m`` negative or not finite, ``pull_s`` <= 0."""
        if not (math.isfinite(self.radius_m) and self.radius_m >= 0):
            raise ConfigError(f"StageConfig.radius_m must be a finite distance >= 0 m, got {self.radius_m!r}")
        if not (math.isfinite(self.pull_s) and self.pull_s > 0):
            raise ConfigError(f"StageConfig.pull_s must be > 0 seconds, got {self.pull_s!r}")


class StageLeash:
    """Offsets model frames' pelvis (x, z) so the shown dancer stays on stage (one thread only).

    Args:
        cfg: the leash's settings.
    """

    def __init__(self, cfg: StageConfig) -> None:
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        """Forget the centre and the offset (a new show)."""
        self.centre: np.ndarray | None = None
        self.offset = np.zeros(2, np.float64)

    def apply(self, frames: MotionFrames) -> MotionFrames:
        """The frames with the pelvis (x, z) offset (a new :class:`MotionFrames`; ``frames`` itself when off).

        Args:
            frames: N frames; ``root_translation`` (N, 3) float32 pelvis world position, metres (y up).
        Returns:
            :class:`MotionFrames` with the same rotations, times and height; x and z moved by the offset.
        """
        R = float(self.cfg.radius_m)
        if R <= 0 or len(frames) == 0:
            return frames
        root = np.array(frames.root_translation, np.float64)
        if not np.isfinite(root).all():
            return frames  # the performer's sanitiser deals with it; the offset stays as it was
        if self.centre is None:
            self.centre = root[0, [0, 2]].copy()
        gain = min(1.0, 1.0 / (frames.fps * self.cfg.pull_s))
        for i in range(len(root)):
            e = root[i, [0, 2]] - self.offset - self.centre
            d = float(np.hypot(e[0], e[1]))
            if d > R:
                self.offset += (d - R) * (e / d) * gain
            root[i, [0, 2]] -= self.offset
        return MotionFrames(frames.local_quats, root.astype(np.float32), frames.fps, frames.t0_s, frames.n_bad)
