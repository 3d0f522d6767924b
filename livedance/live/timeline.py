"""The motion timeline between the scheduler (writer) and the output clock (reader).

The scheduler appends the generator's :class:`~livedance.engine.base.MotionFrames` (model frames on the
stream clock, at the model's fps); the output clock samples the timeline at arbitrary stream times
(its own 60 fps ticks shifted by the output latency) and gets an interpolated pose: quaternion slerp
between the two model frames around the time (shortest arc), linear interpolation of the root.

Past the newest frame (the generator is late: a *miss*) the sample holds the newest frame; before the
oldest kept frame it holds the oldest. Storage is a preallocated ring of ``capacity`` frames; a lock
guards each append and sample (both copy a few hundred floats, so it is held for microseconds).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from livedance.engine.base import MotionFrames
from livedance.errors import DataError
from livedance.motion.rotations import quat_slerp_fast_np as slerp  # noqa: F401  (the live package's slerp)


@dataclass
class Sample:
    """One interpolated pose from the timeline.

    Attributes:
        local_quats: (55, 4) float32 local rotations (x, y, z, w).
        root: (3,) float32 pelvis position, metres.
        missed: True when the requested time lay past the newest frame (held, not interpolated).
        t_s: the stream time asked for, seconds.
    """

    local_quats: np.ndarray
    root: np.ndarray
    missed: bool
    t_s: float


class MotionTimeline:
    """A thread-safe ring of model frames on the stream clock, sampled with slerp/lerp.

    Args:
        capacity: frames kept (>= 2); 512 keeps 8.5 s at 60 fps, 20 s at 25 fps.
        n_joints: joints per frame (55 for SMPL-X).

    Raises:
        DataError: capacity < 2.
    """

    def __init__(self, capacity: int = 512, n_joints: int = 55) -> None:
        if capacity < 2:
            raise DataError(f"MotionTimeline capacity must be >= 2 frames, got {capacity}")
        self._cap = int(capacity)
        self._q = np.zeros((self._cap, n_joints, 4), np.float32)
        self._r = np.zeros((self._cap, 3), np.float32)
        self._t = np.full(self._cap, np.inf)
        self._n = 0  # frames stored, minus those dropped by an overwrite: the newest frame is slot (_n - 1) % cap
        self._held = 0  # frames held now (<= cap; an overwrite after the ring wrapped leaves fewer than cap)
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Drop every frame."""
        with self._lock:
            self._n = 0
            self._held = 0
            self._t.fill(np.inf)

    @property
    def count(self) -> int:
        """Frames held now (at most ``capacity``)."""
        return self._held

    @property
    def end_s(self) -> float | None:
        """Stream time (s) of the newest frame, or None when empty."""
        with self._lock:
            return None if self._n == 0 else float(self._t[(self._n - 1) % self._cap])

    def append(self, frames: MotionFrames) -> None:
        """Add a run of frames; frame i is at ``frames.t0_s + i / frames.fps`` stream seconds.

        Frames at or before the newest stored time replace what follows them (a new generator's
        frames overwrite the old one's future), so times stay strictly increasing.
        """
        n = len(frames)
        if n == 0:
            return
        times = frames.t0_s + np.arange(n) / float(frames.fps)
        with self._lock:
            # drop stored frames at or after the first new time
            while self._held > 0 and self._t[(self._n - 1) % self._cap] >= times[0] - 1e-9:
                self._t[(self._n - 1) % self._cap] = np.inf
                self._n -= 1
                self._held -= 1
            for i in range(n):
                k = self._n % self._cap
                self._q[k] = frames.local_quats[i]
                self._r[k] = frames.root_translation[i]
                self._t[k] = times[i]
                self._n += 1
                self._held = min(self._held + 1, self._cap)

    def sample(self, t_s: float) -> Sample | None:
        """The pose at stream time ``t_s`` seconds, or None when the timeline is empty."""
        with self._lock:
            n = self.count
            if n == 0:
                return None
            last = (self._n - 1) % self._cap
            first = (self._n - n) % self._cap
            if t_s >= self._t[last]:
                exact = t_s - self._t[last] < 1e-9
                return Sample(self._q[last].copy(), self._r[last].copy(), not exact, t_s)
            if t_s <= self._t[first]:
                return Sample(self._q[first].copy(), self._r[first].copy(), False, t_s)
            # logical order: index i -> slot (first + i) % cap; times increase with i
            order = (first + np.arange(n)) % self._cap
            i = int(np.searchsorted(self._t[order], t_s, side="right")) - 1
            k0, k1 = order[i], order[i + 1]
            t0, t1 = self._t[k0], self._t[k1]
            q0, q1 = self._q[k0].copy(), self._q[k1].copy()
            r0, r1 = self._r[k0].copy(), self._r[k1].copy()
        u = float((t_s - t0) / (t1 - t0))
        q = slerp(q0, q1, u).astype(np.float32)
        r = ((1.0 - u) * r0 + u * r1).astype(np.float32)
        return Sample(q, r, False, t_s)
