"""A drift-free fixed-rate tick schedule on ``time.perf_counter()``: sleep, then a short spin.

Tick k is due at the absolute deadline ``t_start + k / fps`` (never ``previous wake-up + period``,
which accumulates every wake-up delay into drift). :meth:`DeadlineClock.wait` sleeps until
``spin_s`` before the deadline (``Event.wait`` so that a stop request wakes it at once), then
busy-waits the rest, yielding the GIL (``time.sleep(0)``) on every poll so that the audio and
feature threads are not held up. If a tick is found to be more than one period late, the ticks that can no
longer be met are skipped (counted in :attr:`DeadlineClock.skipped`) so that the schedule stays on
the absolute grid instead of bursting to catch up.
"""

from __future__ import annotations

import math
import threading
import time

from livedance.errors import ConfigError


class DeadlineClock:
    """Absolute-deadline tick schedule.

    Args:
        fps: ticks per second (> 0).
        spin_s: seconds before each deadline spent spinning instead of sleeping (0 disables spin);
            the OS sleep overshoots by about 0.05-1 ms, the spin removes that.
        t_start: perf_counter seconds of tick 0 (default: now).

    Raises:
        ConfigError: fps <= 0 or spin_s < 0.
    """

    def __init__(self, fps: float = 60.0, spin_s: float = 0.001, t_start: float | None = None) -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ConfigError(f"output clock fps must be a positive number of frames per second, got {fps}")
        if not spin_s >= 0:
            raise ConfigError(f"output clock spin_s must be >= 0 seconds, got {spin_s}")
        self.fps = float(fps)
        self.period_s = 1.0 / self.fps
        self.spin_s = float(spin_s)
        self.t_start = time.perf_counter() if t_start is None else float(t_start)
        self.tick = 0  #: index of the next tick
        self.skipped = 0  #: ticks skipped because the thread woke up more than one period late

    def deadline(self, k: int | None = None) -> float:
        """perf_counter seconds at which tick ``k`` (default: the next tick) is due."""
        return self.t_start + (self.tick if k is None else k) * self.period_s

    def wait(self, stop: threading.Event | None = None) -> tuple[int, float, float] | None:
        """Block until the next tick's deadline.

        Args:
            stop: when set (before or during the wait), return None at once.

        Returns:
            (tick index, deadline, actual wake-up time), perf_counter seconds; None if stopped.
        """
        now = time.perf_counter()
        late_ticks = int((now - self.deadline()) / self.period_s)
        if late_ticks >= 1:  # more than a period behind: skip what cannot be met any more
            self.tick += late_ticks
            self.skipped += late_ticks
        due = self.deadline()
        sleep_for = due - self.spin_s - time.perf_counter()
        if sleep_for > 0:
            if stop is not None:
                if stop.wait(sleep_for):
                    return None
            else:
                time.sleep(sleep_for)
        elif stop is not None and stop.is_set():
            return None
        while True:  # spin; sleep(0) hands the GIL to the audio/feature threads between polls
            now = time.perf_counter()
            if now >= due:
                break
            time.sleep(0)
        k = self.tick
        self.tick += 1
        return k, due, now
