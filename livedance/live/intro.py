"""On-beat intro: the procedural groove leads when the music starts, then hands over to the learned dance.

A learned dancer needs a few beats after the music starts before its motion beats land on the music's:
its recurrent state starts from the silence, the beat tracker's grid is still settling, and the
beat-synchronous warp (:mod:`livedance.live.warp`) can only move the motion beats the model makes. The
procedural dancer (:mod:`livedance.live.procedural`) is phase-locked to the grid by construction and is
on the beat as soon as the tracker is (about 1.8 s on the perform benchmark's reaction show, against a
median of 2.2 to 3.5 s and up to 8.5 s for the learned dancer alone; docs/perform.md).

So for ``seconds`` after the music starts (the listener's silence gate opening after at least
``rearm_silence_s`` of silence) the shown pose is the procedural dancer's, sampled at show time s (it is
not warped), and then it cross-fades to the learned dancer's warped pose over ``fade_s``: per joint
``slerp(q_intro, q_learned, w)``, the root lerped. With a beat grid (the usual case) w moves only between
beats: from the first beat at or after ``s_on + seconds`` it climbs by 1/n per beat (n = fade_s / period)
with a smoothstep inside each beat, so dw/ds = 0 on the beats, where both dances have their motion
beats; a steady ramp would add (dw/ds) x (pose difference) to the joint speed and smear them. Without a
grid, w(s) = clip((s - s_on - seconds) / fade_s, 0, 1). The grid is the latest one seen (kept while the
tracker has none), and w never goes down during a fade (:class:`IntroGate`). (Freezing the grid at the
fade's start was tried: on the replay the hand-over window's median offset rose from 27.0 to 34.8 ms, the
tracker's grid of the first seconds being the less settled one.)

The learned dancer runs all along (its state and the warp are in step by the hand-over). ``seconds`` = 0
turns the intro off. Functions here are pure; the performer keeps the state (:class:`IntroGate`) on the
output clock's thread, and ``benchmarks/warp_replay.py --reaction`` uses the same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from livedance.errors import ConfigError
from livedance.live.timeline import slerp

__all__ = ["IntroConfig", "IntroGate", "intro_weight", "blend_poses"]


@dataclass
class IntroConfig:
    """Settings of the on-beat intro (see the module docstring).

    Attributes:
        seconds: how long the procedural groove leads after the music starts, seconds (0: no intro).
        fade_s: the cross-fade to the learned dance that follows, seconds (> 0).
        rearm_silence_s: silence (seconds, by the listener's gate) after which the next sound is a new start;
            shorter gaps (a quiet bar) do not restart the intro.
    """

    seconds: float = 4.0
    fade_s: float = 1.5
    rearm_silence_s: float = 2.0

    def validate(self) -> None:
        """Raise ConfigError naming the field for a negative or non-finite value (or ``fade_s`` <= 0)."""
        for name in ("seconds", "fade_s", "rearm_silence_s"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ConfigError(f"IntroConfig.{name} must be a finite number >= 0 seconds, got {v!r}")
        if not self.fade_s > 0:
            raise ConfigError(f"IntroConfig.fade_s must be > 0 seconds, got {self.fade_s!r}")


def _fade_beats(music_on_s: float, cfg: IntroConfig, grid: tuple[float, float]) -> tuple[float, int]:
    """(time of the first beat at or after ``music_on_s + cfg.seconds``, where the fade starts; its length in
    beats, n = max(1, round(fade_s / period))) on the grid ``(anchor_s, period_s)``."""
    anchor, period = grid
    start = music_on_s + cfg.seconds
    return anchor + math.ceil((start - anchor) / period - 1e-9) * period, max(1, round(cfg.fade_s / period))


def intro_weight(s: float, music_on_s: float | None, cfg: IntroConfig,
                 grid: tuple[float, float] | None = None) -> float:
    """Weight in [0, 1] of the learned dance at show time ``s`` (seconds, stream clock).

    Args:
        s: show time. music_on_s: when the music started (None: no start seen, or silent now).
        cfg: the intro's settings.
        grid: the beat grid ``(anchor_s, period_s)`` (None: unknown). With a grid the cross-fade moves only
            between beats: w climbs by ``1 / n`` per beat (n = fade_s / period, at least 1) with a smoothstep
            inside each beat, so dw/ds = 0 on the beats and the blend keeps both dances' motion beats there
            (a steady ramp adds (dw/ds) x (pose difference) to the joint speed and smears them).
    Returns:
        0 during the intro, rising to 1 over about ``cfg.fade_s``; 1 without a start or with the intro off.
    """
    if music_on_s is None or cfg.seconds <= 0:
        return 1.0
    x = (s - music_on_s - cfg.seconds) / cfg.fade_s  # fade progress on a plain clock
    if grid is None or not grid[1] > 0:
        return float(min(max(x, 0.0), 1.0))
    first, n = _fade_beats(music_on_s, cfg, grid)
    period = grid[1]
    b = (s - first) / period
    if b <= 0:
        return 0.0
    if b >= n:
        return 1.0
    k, f = math.floor(b), b - math.floor(b)
    return float((k + f * f * (3.0 - 2.0 * f)) / n)


def blend_poses(q_intro: np.ndarray, r_intro: np.ndarray, q: np.ndarray, r: np.ndarray,
                w: float) -> tuple[np.ndarray, np.ndarray]:
    """``slerp(q_intro, q, w)`` per joint and ``r_intro + w (r - r_intro)``.

    Args:
        q_intro, q: (J, 4) float32 unit quaternions (x, y, z, w). r_intro, r: (3,) float32 pelvis positions, m.
        w: weight of ``q`` / ``r`` in [0, 1].
    Returns:
        ((J, 4) float32, (3,) float32); ``q, r`` themselves when w >= 1.
    """
    if w >= 1.0:
        return q, r
    if w <= 0.0:
        return q_intro, r_intro
    qb = slerp(np.asarray(q_intro, np.float32), np.asarray(q, np.float32), float(w)).astype(np.float32)
    rb = (np.asarray(r_intro, np.float32) + np.float32(w) * (np.asarray(r, np.float32) - r_intro)).astype(np.float32)
    return qb, rb


class IntroGate:
    """When the music started and how far the hand-over is, from the silence gate and the beat grid seen
    tick by tick (output clock thread; :attr:`music_on_s` and :attr:`fade_end_s` may be read from others).

    A start is the gate opening after at least ``rearm_silence_s`` of silence (the show begins in silence).
    A shorter silence inside the intro keeps its weight (the intro dancer fades to idle by itself), so the
    pose never jumps between the two dancers. The cross-fade follows the latest grid seen (kept while the
    tracker has none), and the weight never goes down during one intro.

    Args:
        cfg: the intro's settings.
    """

    def __init__(self, cfg: IntroConfig) -> None:
        self.cfg = cfg
        self.music_on_s: float | None = None
        self._silent_since: float | None = 0.0  # the show starts in silence: the first sound is a start
        self._grid: tuple[float, float] | None = None
        self._w = 1.0
        self.starts = 0

    def update(self, s: float, silent: bool, grid: tuple[float, float] | None = None) -> float:
        """Feed the gate at show time ``s`` (seconds; with the beat grid ``(anchor_s, period_s)``, if known);
        returns the learned dance's weight in [0, 1] (:func:`intro_weight`)."""
        if silent:
            if self._silent_since is None:
                self._silent_since = s
            if s - self._silent_since >= self.cfg.rearm_silence_s:
                self.music_on_s = None
        elif self._silent_since is not None:
            self._silent_since = None
            if self.music_on_s is None:
                self.music_on_s = s
                self.starts += 1
                self._grid, self._w = None, 0.0
        if self.music_on_s is None or self.cfg.seconds <= 0:
            return 1.0  # no intro under way (in silence the learned dance is faded to idle: performer.fade_to_idle)
        if grid is not None and grid[1] > 0:
            self._grid = (float(grid[0]), float(grid[1]))  # the latest grid (kept while the tracker has none)
        self._w = max(self._w, intro_weight(s, self.music_on_s, self.cfg, self._grid))
        return self._w

    @property
    def fade_end_s(self) -> float | None:
        """Show time (s) by which the hand-over is complete, or None while no intro is under way.

        Safe from other threads while the output clock updates the gate: each attribute is read once.
        """
        on, c, grid = self.music_on_s, self.cfg, self._grid
        if on is None or c.seconds <= 0:
            return None
        if grid is None:
            return on + c.seconds + c.fade_s + 2.0  # no grid yet: a beat-stepped fade ends within 2 periods more
        first, n = _fade_beats(on, c, grid)
        return first + n * grid[1]

    @property
    def active(self) -> bool:
        """True from a start until the next re-arm (the learned dance may be shown alone for most of it)."""
        return self.music_on_s is not None and self.cfg.seconds > 0
