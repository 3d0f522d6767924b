"""Beat-synchronous playback warp: play a learned dancer's motion at a varying rate so that its motion
beats land on the music's beats, causally.

Time warping of motion onto music beats follows Kim, Park and Shin, "Rhythmic-motion synthesis based on
motion-beat analysis" (SIGGRAPH 2003) and Shiratori, Nakazawa and Ikeuchi, "Dancing-to-Music Character
Animation" (Eurographics 2006): find the motion beats, then re-time the motion so that each one
coincides with a music beat. Here both halves run live:

* :class:`MotionBeatDetector` (scheduler thread, where model frames arrive): the motion's speed curve
  is the mean joint speed of forward-kinematics joint positions, exactly the quantity of the AIST++
  Beat Align Score (:mod:`livedance.eval.beat_align`) that the perform benchmark scores, Gaussian-smoothed
  with the same sigma in seconds (5 frames at 60 fps = 1/12 s). Motion beats are its local minima,
  refined to sub-frame time by a parabola through the three samples, published once ``confirm_s`` of
  later frames exist (minima nearer the newest frame may still move and are not published), at least
  ``min_separation_s`` apart, and only where the motion moves (the neighbouring speed peaks exceed
  ``still_speed``). FK rather than a cheaper joint angular speed: the motion beats must be the ones
  that the BAS definition (and the audience) sees, and angular speed weighs joints and the root
  differently; FK of one 8-frame chunk costs well under a millisecond on the scheduler thread, which
  has the time (it runs once per 320 ms chunk), never on the output clock.
* :class:`BeatWarp` (output clock, cheap float work only: about 10 us a tick): the clock shows the
  timeline at *motion time* tau instead of stream time s; tau advances by r * dt per tick. The warp is
  built from segments centred on the motion beats. From the next motion beat's "switch point" (the
  speed peak before it, at most half-way from the previous beat, or ``engage_s`` before it if that
  comes first) it picks the upcoming music beat T for it: the required rate r = (tau_b - tau) / (T - s)
  is clipped to [rate_min, rate_max]; the candidate minimises
  log(r)^2 + lag_weight * ((D_b - lag_s) / lag_s)^2 + (miss / 35 ms)^2, with D_b the lag at the beat
  (kept in [0, 0.8 max_lag_s]) and miss the distance from T at which a clipped rate lands it (a miss
  over a quarter beat is no better than chance and is not taken). The beat after next is a candidate
  too (at ``skip_cost``): over time r must average 1 because the lag is bounded, so a motion with more
  beats per second than the music has to let some pass. The warp then steers r so that tau reaches
  tau_b at T (the remaining rate is recomputed every tick, accounting for the first-order smoothing
  ``rate_smooth_s`` that avoids visible pops) and holds that rate for ``hold_s`` past the beat. So the
  rate is nearly constant around each motion beat: the shown speed is r * v(tau), and a rate that
  differs on the two sides of a minimum tilts it and moves the smoothed minimum. The grid aimed at is
  the median phase of the grids of the last ``grid_median_s`` seconds (a causal tracker's phase
  sometimes jumps by a fraction of a beat for a moment), with the latest tempo.
  Without a confident beat grid (silence, no tempo) or without a known motion beat, r relaxes towards
  the rate that restores the nominal lag ``lag_s``.

Beat accent (``accent`` a, default 0.15): the warp runs on an accented show time sigma(s) instead of s.
On a steady grid sigma = s - a P / (2 pi) sin(2 pi phi) for the beat phase phi and period P of the grid in
use, so d sigma / ds = 1 - a cos(2 pi phi). Every motion speed the warp produces is then multiplied by that
factor: the shown motion decelerates into each music beat (1 - a) and accelerates between beats (1 + a),
the way a dancer hits the beat, and the speed minima near a beat are drawn onto it. Since sigma = s on
every beat, the music beats the warp aims at are where they were; only the pace between them changes.
sigma is integrated tick by tick, so a grid that jumps, changes tempo, appears or goes away never makes it
jump (it returns to the steady form within P / pi seconds, at a pace within [1 - 2a, 1 + 2a]). The
statistics (hits, their residual, the lag) are taken on the show time s itself.

Hard constraints: tau never passes the newest generated frame (that would be a miss) nor sigma (so the lag
s - tau >= 0 up to |sigma - s| <= a P / pi; without the accent sigma = s), and never falls more than
``max_lag_s`` behind sigma (then it jumps to the nominal lag, counted in :attr:`BeatWarp.resyncs`).

Clocks: s, tau, T and the motion beat times are all on the stream clock (seconds, sample 0 of the
source = 0); tau is a time of the model frames in the :class:`~livedance.live.timeline.MotionTimeline`.
Motion beat times use the BAS convention: speed sample k (between frames k and k+1) sits at the middle
of the two frames' times.

Threads: the detector and the warp live on different threads and share only the immutable
:class:`MotionBeats` that the detector returns (the performer publishes it by a single attribute
assignment, atomic in Python); the warp's own state is touched by the output clock only.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from livedance.engine.base import MotionFrames
from livedance.errors import ConfigError, DataError

__all__ = ["WarpConfig", "MotionBeats", "MotionBeatDetector", "BeatWarp"]


@dataclass
class WarpConfig:
    """Settings of the beat-synchronous playback warp (see the module docstring).

    Attributes:
        enabled: warp the learned generator's playback (False: show stream time s as before).
        lag_s: nominal lag D_target = s - tau, seconds: how far the shown motion runs behind the
            model's own schedule, which is the look-ahead the warp has on confirmed motion beats.
        max_lag_s: D_max, seconds: a lag beyond it makes tau jump back to ``lag_s`` (a resync).
        rate_min, rate_max: bounds of the playback rate r (motion seconds per stream second).
        rate_smooth_s: time constant (s) of the first-order smoothing of r towards its command.
        relax_s: time constant (s) with which r restores the nominal lag when not aligning beats.
        relax_max: largest |r - 1| used for that restoring.
        lag_weight: weight of the lag term against log(r)^2 when choosing the music beat.
        min_confidence: beat grid confidence below which the grid is not used.
        freeze_s: in the last ``freeze_s`` seconds before the target beat the rate command is held
            (the remaining-time division would amplify small grid updates).
        hold_s: motion seconds after a motion beat during which its rate is kept: the shown speed is
            r * v(tau), and a rate that differs on the two sides of a minimum tilts it and moves the
            smoothed minimum, so the rate should stay constant for about the smoothing width around it.
        engage_s: the warp aims at the next motion beat from its switch point (the speed peak before
            it, at most half-way from the previous beat) or from ``engage_s`` motion seconds before it,
            whichever comes first, but not while holding: a longer run-up leaves more music beats
            within the rate bounds (with [0.6, 1.6] about 0.35 s guarantees one at 170 BPM).
        skip_cost: cost added for aiming at the motion beat after next (letting the next one pass
            off the grid). Over time the rate must average 1 (the lag is bounded), so when the motion
            has more beats per second than the music, some have to pass; this lets the warp choose which.
        smooth_sigma_s: Gaussian smoothing of the speed curve, seconds (BAS: 5 frames at 60 fps).
        confirm_s: a minimum is published once this many seconds of later speed samples exist.
        min_separation_s: minimum time between published motion beats, seconds (the lower minimum wins).
        still_speed: m/s; minima whose neighbouring peaks are both slower are ignored (near-still motion).
        min_prominence: fraction; a minimum must lie this fraction below its lower neighbouring peak.
        history_s: seconds of speed curve kept by the detector.
        grid_median_s: the warp aims at the median phase of the grids given over the last
            ``grid_median_s`` seconds (a causal tracker's grid sometimes jumps by a fraction of a beat
            for a moment and jumps back; 0 uses each tick's grid as it is).
        accent: beat accent a, in [0, 0.5]: the warp runs on the accented show time sigma(s), with
            d sigma / ds = 1 - a cos(2 pi phi) for the beat phase phi of the grid in use, so the shown motion
            slows to 1 - a of its speed on every music beat and speeds up to 1 + a between beats, the way a
            dancer hits the beat; sigma = s on every beat, so the warp's alignment of motion beats to music
            beats is unchanged. The motion's speed minima near a beat are drawn onto it (in the replay of
            session 9: median |offset| 31.2 -> 27.3 ms over six dances; `benchmarks/warp_replay.py`). 0 = off.
    """

    enabled: bool = True
    lag_s: float = 0.3
    max_lag_s: float = 0.8
    rate_min: float = 0.5
    rate_max: float = 1.8
    rate_smooth_s: float = 0.04
    relax_s: float = 1.0
    relax_max: float = 0.25
    lag_weight: float = 1.0
    min_confidence: float = 0.1
    freeze_s: float = 0.04
    hold_s: float = 0.12
    engage_s: float = 0.35
    skip_cost: float = 0.5
    smooth_sigma_s: float = 1.0 / 12.0
    confirm_s: float = 0.12
    min_separation_s: float = 0.25
    still_speed: float = 0.05
    min_prominence: float = 0.0
    history_s: float = 6.0
    grid_median_s: float = 0.75
    accent: float = 0.15

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        checks = [
            ("lag_s", 0.0 <= self.lag_s <= self.max_lag_s, "in [0, max_lag_s] seconds"),
            ("max_lag_s", 0.0 < self.max_lag_s <= 2.0, "in (0, 2] seconds"),
            ("rate_min", 0.0 < self.rate_min <= 1.0, "in (0, 1]"),
            ("rate_max", 1.0 <= self.rate_max <= 4.0, "in [1, 4]"),
            ("rate_smooth_s", self.rate_smooth_s >= 0.0, ">= 0 seconds"),
            ("relax_s", self.relax_s > 0.0, "> 0 seconds"),
            ("relax_max", 0.0 <= self.relax_max <= 1.0, "in [0, 1]"),
            ("lag_weight", self.lag_weight >= 0.0, ">= 0"),
            ("min_confidence", 0.0 <= self.min_confidence <= 1.0, "in [0, 1]"),
            ("freeze_s", self.freeze_s >= 0.0, ">= 0 seconds"),
            ("hold_s", self.hold_s >= 0.0, ">= 0 seconds"),
            ("engage_s", self.engage_s >= 0.0, ">= 0 seconds"),
            ("skip_cost", self.skip_cost >= 0.0, ">= 0"),
            ("smooth_sigma_s", self.smooth_sigma_s > 0.0, "> 0 seconds"),
            ("confirm_s", self.confirm_s >= 0.0, ">= 0 seconds"),
            ("min_separation_s", self.min_separation_s >= 0.0, ">= 0 seconds"),
            ("still_speed", self.still_speed >= 0.0, ">= 0 m/s"),
            ("min_prominence", 0.0 <= self.min_prominence < 1.0, "in [0, 1)"),
            ("history_s", self.history_s >= 1.0, ">= 1 second"),
            ("grid_median_s", 0.0 <= self.grid_median_s <= 4.0, "in [0, 4] seconds"),
            ("accent", 0.0 <= self.accent <= 0.5, "in [0, 0.5]"),
        ]
        for name, ok, want in checks:
            value = getattr(self, name)
            if not (isinstance(value, bool) or math.isfinite(float(value))) or not ok:
                raise ConfigError(f"WarpConfig.{name} must be {want}, got {value}")


@dataclass(frozen=True)
class MotionBeats:
    """What the detector knows about the motion in the timeline (immutable; published whole).

    Attributes:
        times_s: confirmed motion beat times tau_b, ascending, stream-clock seconds (timeline time).
        switch_s: per motion beat, the time of the speed peak before it (where the warp may change
            rate), stream-clock seconds; same length as ``times_s``, ``switch_s[i] < times_s[i]``.
        end_s: time of the newest model frame analysed, stream-clock seconds.
    """

    times_s: tuple = ()
    switch_s: tuple = ()
    end_s: float = -math.inf


class MotionBeatDetector:
    """Causal motion-beat detector over the generator's frames (scheduler thread).

    Args:
        rest_offsets: (55, 3) metres, the skeleton the frames are shown on (row 0: pelvis rest position).
        parents: parent index per joint (``SMPLX_PARENTS``).
        config: :class:`WarpConfig` (smoothing, confirmation, separation, stillness).

    Raises:
        DataError: rest offsets and parents disagree in joint count.

    :meth:`push` takes each run of :class:`~livedance.engine.base.MotionFrames` as it is appended to the
    timeline (root = pelvis world position, metres) and returns the updated :class:`MotionBeats`.
    The speed curve is BAS's (Li et al., ICCV 2021, as in Bailando): s[k] = mean_j |p[k+1, j] - p[k, j]|
    (here in m/s), smoothed by a Gaussian of ``smooth_sigma_s`` seconds.
    """

    def __init__(self, rest_offsets: np.ndarray, parents, config: WarpConfig | None = None) -> None:
        self.cfg = config or WarpConfig()
        self.rest = np.asarray(rest_offsets, np.float64)
        self.parents = tuple(int(p) for p in parents)
        if self.rest.shape != (len(self.parents), 3):
            raise DataError(f"motion beat detector: rest offsets {self.rest.shape} do not fit {len(self.parents)} parents")
        self.reset()

    def reset(self) -> None:
        """Forget the speed history (a gap or a new generator)."""
        self._speed = np.zeros(0)
        self._t_speed = np.zeros(0)  # time of each speed sample, stream seconds
        self._last_pos: np.ndarray | None = None
        self._last_t: float | None = None
        self._fps: float | None = None
        self.beats = MotionBeats()

    def positions(self, frames: MotionFrames) -> np.ndarray:
        """(N, J, 3) float64 joint positions, metres, by forward kinematics (:func:`livedance.motion.fk.fk_np`)."""
        from scipy.spatial.transform import Rotation

        from livedance.motion.fk import fk_np

        q = np.asarray(frames.local_quats, np.float64)
        n, j = q.shape[0], q.shape[1]
        rot = Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(n, j, 3, 3)
        root = np.asarray(frames.root_translation, np.float64) - self.rest[0]
        return fk_np(rot, root, self.rest, self.parents)

    def push(self, frames: MotionFrames) -> MotionBeats:
        """Add the frames just appended to the timeline; return the motion beats known now.

        Frames that do not continue the previous run (a gap or overlap of more than half a frame, or
        another frame rate) restart the history.
        """
        n = len(frames)
        if n == 0:
            return self.beats
        fps = float(frames.fps)
        t0 = float(frames.t0_s)
        if self._last_t is None or self._fps != fps or abs(t0 - (self._last_t + 1.0 / fps)) > 0.5 / fps:
            self.reset()
        self._fps = fps
        pos = self.positions(frames)
        if self._last_pos is not None:
            pos_all = np.concatenate([self._last_pos[None], pos])
            t_first = self._last_t
        else:
            pos_all, t_first = pos, t0
        if len(pos_all) >= 2:
            sp = np.linalg.norm(np.diff(pos_all, axis=0), axis=2).mean(axis=1) * fps
            ts = t_first + (np.arange(len(sp)) + 0.5) / fps
            keep = int(self.cfg.history_s * fps)
            self._speed = np.concatenate([self._speed, sp])[-keep:]
            self._t_speed = np.concatenate([self._t_speed, ts])[-keep:]
        self._last_pos = pos[-1]
        self._last_t = t0 + (n - 1) / fps
        self.beats = self._detect(self._last_t)
        return self.beats

    def _detect(self, end_s: float) -> MotionBeats:
        from scipy.ndimage import gaussian_filter1d

        cfg, fps = self.cfg, float(self._fps or 1.0)
        v = self._speed
        if len(v) < 3:
            return MotionBeats((), (), end_s)
        sm = gaussian_filter1d(v, cfg.smooth_sigma_s * fps, mode="nearest")
        last_ok = len(sm) - 1 - int(math.ceil(cfg.confirm_s * fps))
        k = np.where((sm[1:-1] < sm[:-2]) & (sm[1:-1] <= sm[2:]))[0] + 1
        k = k[k <= last_ok]
        # neighbouring peaks: the maximum between adjacent minima (or the curve's ends)
        bounds = np.concatenate([[0], k, [len(sm) - 1]])
        beats: list[tuple[float, float, int]] = []  # (time, value, index)
        for i, ki in enumerate(k):
            left = sm[bounds[i] : ki + 1].max()
            right = sm[ki : bounds[i + 2] + 1].max()
            peak = min(left, right)
            if max(left, right) < cfg.still_speed or sm[ki] > (1.0 - cfg.min_prominence) * peak:
                continue
            y0, y1, y2 = sm[ki - 1], sm[ki], sm[ki + 1]
            den = y0 - 2.0 * y1 + y2
            frac = 0.5 * (y0 - y2) / den if den > 1e-12 else 0.0
            t = float(self._t_speed[ki]) + float(np.clip(frac, -0.5, 0.5)) / fps
            if beats and t - beats[-1][0] < cfg.min_separation_s:
                if sm[ki] < beats[-1][1]:
                    beats[-1] = (t, float(sm[ki]), int(ki))
                continue
            beats.append((t, float(sm[ki]), int(ki)))
        times, switch = [], []
        for i, (t, _, ki) in enumerate(beats):
            lo = beats[i - 1][2] if i > 0 else max(ki - int(round(0.5 * fps)), 0)
            seg = sm[lo : ki + 1]
            j = lo + int(np.argmax(seg))
            sw = float(self._t_speed[j]) if j < ki else t - 0.5 / fps
            if i > 0:
                sw = min(sw, 0.5 * (beats[i - 1][0] + t))  # at most half-way from the previous beat
            times.append(t)
            switch.append(min(sw, t - 0.5 / fps))
        return MotionBeats(tuple(times), tuple(switch), end_s)


class BeatWarp:
    """The output clock's motion time tau(s) (see the module docstring; Kim et al. 2003, Shiratori
    et al. 2006, made causal).

    Args:
        config: :class:`WarpConfig`.

    Raises:
        ConfigError: invalid config.

    Call :meth:`tick` once per output tick with the show time s (stream seconds), the latest
    :class:`MotionBeats` and the music beat grid; it returns tau, the timeline time to show.
    Only float arithmetic, tuple bisection and a median over at most ``grid_median_s * fps`` floats:
    no arrays, no locks, no FK. Odd inputs (None, empty tuples, NaN or non-positive grid values) are
    treated as "no information", not errors.

    Attributes (read any time; written by the output clock only):
        tau: motion time shown at the last tick, stream seconds (None before the first tick).
        rate: playback rate r of the last tick.
        lag_s: s - tau at the last tick, seconds.
        aligning: a music beat target was active at the last tick.
        resyncs: jumps back to the nominal lag (lag over ``max_lag_s``).
        clamps: ticks where tau was held at the newest frame or at s.
        beats_hit: motion beats reached while aimed at a music beat.
        hit_error_sum_s: sum of |s - T| at those moments (the residual, seconds).
        recent_hits: the last 256 hits as (s at the hit, music beat T), stream seconds (a bounded deque;
            diagnostics: ``benchmarks/perform.py --start-detail`` matches them with the shown motion beats).
        ticks, aligned_ticks: ticks run / ticks with a target; rate_dev_sum: sum of |r - 1| over ticks.
    """

    def __init__(self, config: WarpConfig | None = None) -> None:
        self.cfg = config or WarpConfig()
        self.cfg.validate()
        self.tau: float | None = None
        self.rate = 1.0
        self.lag_s = self.cfg.lag_s
        self.aligning = False
        self.resyncs = 0
        self.clamps = 0
        self.beats_hit = 0
        self.hit_error_sum_s = 0.0
        self.recent_hits: deque = deque(maxlen=256)
        self.ticks = 0
        self.aligned_ticks = 0
        self.rate_dev_sum = 0.0
        self._s: float | None = None  # accented show time sigma of the last tick
        self._s_raw: float | None = None  # show time s of the last tick
        self._cmd = 1.0
        self._target: tuple[float, float] | None = None  # (tau_b, T)
        self._grids: deque = deque()  # (s, a grid beat near s) of the last grid_median_s seconds
        self._done_tau = -math.inf  # motion beats at or before this were handled (hit or skipped)

    def reset(self) -> None:
        """Restart at the nominal lag on the next tick (counters are kept)."""
        self.tau = None
        self._s = self._s_raw = None
        self.rate = self._cmd = 1.0
        self._target = None
        self._grids.clear()
        self._done_tau = -math.inf
        self.aligning = False

    @property
    def mean_abs_rate_dev(self) -> float:
        """Mean |r - 1| over the ticks run (0.0 before any)."""
        return self.rate_dev_sum / self.ticks if self.ticks else 0.0

    # ------------------------------------------------------------------ per tick
    def tick(self, s: float, beats: MotionBeats | None, grid: tuple[float, float] | None,
             accent: float | None = None) -> float:
        """Advance to show time ``s`` and return the motion time tau to show.

        Args:
            s: show time of this tick on the stream clock, seconds (increasing from tick to tick).
            beats: the detector's latest :class:`MotionBeats` (None: nothing known yet).
            grid: the music beat grid in use as (anchor_s, period_s): beats at anchor + k * period,
                stream seconds; None when there is no confident grid (silence, no tempo): the rate
                then relaxes to restore the nominal lag.
            accent: the beat accent for this tick, in [0, 0.5] (clamped; None: ``WarpConfig.accent``): the live
                control. A change is smooth: sigma moves to the new steady form at a bounded pace.

        Returns:
            tau, stream-clock seconds, with sigma - max_lag_s <= tau <= min(sigma, newest frame) whenever a
            newest frame is known and lies after sigma - max_lag_s; sigma is the accented show time
            (``accent``; sigma = s with accent 0, and on every beat of a steady grid; |sigma - s| <= a P / pi).
        """
        cfg = self.cfg
        s = float(s)
        first = self.tau is None or self._s is None or self._s_raw is None or not math.isfinite(self.tau)
        if not first and not (s > self._s_raw and math.isfinite(s)):
            return self.tau  # no show time passed: nothing changes
        if grid is not None:
            a, p = float(grid[0]), float(grid[1])
            grid = (a, p) if (math.isfinite(a) and math.isfinite(p) and p > 0.05) else None
        grid = self._median_grid(s, grid)
        a = cfg.accent if accent is None or not math.isfinite(accent) else min(max(float(accent), 0.0), 0.5)
        if first:
            sig = self._sigma_star(s, grid, a)
            self.tau, self._s, self._s_raw = sig - cfg.lag_s, sig, s
            self._clamp(sig, beats)
            self.lag_s = s - self.tau
            return self.tau
        s_prev, raw_prev = self._s, self._s_raw  # sigma and s at which the motion was at self.tau
        sig = self._accented(s, raw_prev, s_prev, grid, a)
        dt = sig - s_prev
        self._s, self._s_raw = sig, s
        if not (dt > 0.0 and math.isfinite(dt)):
            self.lag_s = s - self.tau
            return self.tau
        cmd = self._command(s_prev, beats, grid)
        self._cmd = cmd
        alpha = 1.0 if cfg.rate_smooth_s <= 0 else 1.0 - math.exp(-dt / cfg.rate_smooth_s)
        self.rate += alpha * (cmd - self.rate)
        self.rate = min(max(self.rate, cfg.rate_min), cfg.rate_max)
        tau_prev = self.tau
        self.tau += self.rate * dt
        if sig - self.tau > cfg.max_lag_s:  # too far behind: jump back to the nominal lag
            self.tau = sig - cfg.lag_s
            self.resyncs += 1
            self._target = None
            self.rate = self._cmd = 1.0
        self._clamp(sig, beats)
        tgt = self._target
        if tgt is not None and self.tau >= tgt[0]:  # reached the motion beat
            self.beats_hit += 1
            # show time s at which tau crossed tau_b (linear within the tick) vs the music beat
            frac = min(max((tgt[0] - tau_prev) / max(self.tau - tau_prev, 1e-12), 0.0), 1.0)
            s_hit = raw_prev + frac * (s - raw_prev)
            self.hit_error_sum_s += abs(s_hit - tgt[1])
            self.recent_hits.append((s_hit, tgt[1]))
            self._done_tau = tgt[0]
            self._target = None
        self.lag_s = s - self.tau
        self.ticks += 1
        self.aligned_ticks += int(self.aligning)
        self.rate_dev_sum += abs(self.rate - 1.0)
        return self.tau

    def _median_grid(self, s: float, grid: tuple[float, float] | None) -> tuple[float, float] | None:
        """The grid with the latest period and the median phase of the last ``grid_median_s`` seconds."""
        hist = self._grids
        if grid is None:
            hist.clear()
            return None
        anchor, period = grid
        hist.append((s, anchor + round((s - anchor) / period) * period))  # a beat near s
        while hist and hist[0][0] < s - self.cfg.grid_median_s:
            hist.popleft()
        if len(hist) < 3:
            return grid
        ref = hist[-1][1]
        phases = sorted((b - ref + 0.5 * period) % period - 0.5 * period for _, b in hist)
        return (ref + phases[len(phases) // 2], period)

    @staticmethod
    def _sigma_star(s: float, grid: tuple[float, float] | None, a: float) -> float:
        """The accented show time for a steady grid: sigma*(s) = s - a P / (2 pi) sin(2 pi (s - anchor) / P),
        so d sigma* / ds = 1 - a cos(2 pi phi) and sigma* = s on every beat; s without a grid or with accent 0."""
        if grid is None or a <= 0.0:
            return s
        anchor, period = grid
        return s - a * period / (2.0 * math.pi) * math.sin(2.0 * math.pi * (s - anchor) / period)

    def _accented(self, s: float, raw_prev: float, sig_prev: float, grid: tuple[float, float] | None,
                  a: float) -> float:
        """Advance the accented show time sigma from show time ``raw_prev`` (where it was ``sig_prev``) to ``s``.

        sigma advances by sigma*(s) - sigma*(raw_prev) on the grid of this tick (the exact integral of the
        pace 1 - a cos(2 pi phi) over the tick, > 0), then moves towards sigma*(s) by at most max(a, 0.1) x the
        tick's length: when the grid or the accent changes (a phase jump, a new tempo, the grid appearing or
        going away, the live control) sigma stays continuous and moving forward, at a pace within
        1 +- (a + max(a, 0.1)), and is back on sigma* within P / pi seconds for a steady a (a P / pi is the largest
        gap). With a steady grid and accent sigma = sigma*.
        """
        if a <= 0.0 and sig_prev == raw_prev:
            return s
        target = self._sigma_star(s, grid, a)
        sig = sig_prev + (target - self._sigma_star(raw_prev, grid, a))
        pull = max(a, 0.1) * (s - raw_prev)
        return sig + min(max(target - sig, -pull), pull)

    def _clamp(self, s: float, beats: MotionBeats | None) -> None:
        hi = s
        if beats is not None and math.isfinite(beats.end_s):
            hi = min(hi, beats.end_s)
        if self.tau > hi and hi >= s - self.cfg.max_lag_s:
            self.tau = hi
            self.clamps += 1

    def _relax(self, s: float) -> float:
        cfg = self.cfg
        dev = (s - self.tau - cfg.lag_s) / cfg.relax_s
        return 1.0 + min(max(dev, -cfg.relax_max), cfg.relax_max)

    def _command(self, s: float, beats: MotionBeats | None, grid: tuple[float, float] | None) -> float:
        """The rate command for this tick (beat alignment when possible, else lag restoring)."""
        cfg = self.cfg
        tau = self.tau
        if grid is None or beats is None or not beats.times_s:
            self._target = None
            self.aligning = False
            return self._relax(s)
        anchor, period = grid
        tgt = self._target
        if tgt is not None:
            tau_b, T = tgt
            T = anchor + round((T - anchor) / period) * period  # follow grid updates
            tau_b = _nearest(beats.times_s, tau_b, 0.5 * cfg.min_separation_s)  # follow refinements
            if T < s - 0.5 * period:  # the music beat went by without the motion beat: give it up
                self._done_tau = max(tau_b, tau)
                self._target = None
                self.aligning = False
                return self._relax(s)
            self._target = (tau_b, T)
            self.aligning = True
            if T - s <= cfg.freeze_s:
                return self._cmd
            return self._steer(tau_b - tau, T - s)
        # no target: the next unhandled motion beat after tau
        times = beats.times_s
        i = bisect.bisect_right(times, max(tau, self._done_tau))
        holding = tau < self._done_tau + cfg.hold_s  # just past a motion beat: keep its rate
        if i >= len(times) or holding or tau < min(beats.switch_s[i], times[i] - cfg.engage_s):
            self.aligning = False  # next beat unknown, or not yet at its switch point
            return self._cmd if holding else self._relax(s)
        best, best_cost = None, math.inf
        for j in range(i, min(i + 2, len(times))):  # this motion beat, or (letting it pass) the next one
            T, cost = self._choose(s, times[j], anchor, period)
            cost += cfg.skip_cost * (j - i)
            if T is not None and cost < best_cost:
                best, best_cost = (times[j], T), cost
        if best is None:  # this motion beat cannot be placed near a beat: let it pass, restore the lag
            self._done_tau = times[i]
            self.aligning = False
            return self._relax(s)
        self._target = best
        self.aligning = True
        return self._steer(best[0] - tau, best[1] - s)

    def _choose(self, s: float, tau_b: float, anchor: float, period: float) -> tuple[float | None, float]:
        """(the music beat T (stream s) for motion beat ``tau_b``, its cost), or (None, inf) if none is
        worth aiming at.

        Candidates are the next grid beats; each needs rate r = (tau_b - tau) / (T - s), clipped to
        [rate_min, rate_max]; the clipped rate lands the motion beat at s + (tau_b - tau) / r, which
        must keep the lag in [0, 0.8 max_lag_s] (room for the hold after the beat) and miss T by less than a quarter period (else chance would
        do as well). Cost: log(r)^2 + lag_weight * ((lag at the beat - lag_s) / lag_s)^2 + (miss / 35 ms)^2.
        """
        cfg = self.cfg
        dist = tau_b - self.tau
        best, best_cost = None, math.inf
        k0 = math.floor((s - anchor) / period) + 1
        for k in range(k0, k0 + 8):
            T = anchor + k * period
            if T - s <= cfg.freeze_s:
                continue
            need = dist / (T - s)
            r = min(max(need, cfg.rate_min), cfg.rate_max)
            arrive = s + dist / r
            miss = abs(arrive - T)
            lag_b = arrive - tau_b
            if miss < 0.25 * period and 0.0 <= lag_b <= 0.8 * cfg.max_lag_s:
                cost = (math.log(r) ** 2 + cfg.lag_weight * ((lag_b - cfg.lag_s) / max(cfg.lag_s, 0.05)) ** 2
                        + (miss / 0.035) ** 2)
                if cost < best_cost:
                    best, best_cost = T, cost
            if need < cfg.rate_min:  # later beats need still slower rates
                break
        return best, best_cost

    def _steer(self, dist: float, remaining: float) -> float:
        """Rate command c that covers ``dist`` motion seconds in ``remaining`` stream seconds, given
        that the rate approaches c from the current rate r0 with time constant ts (first order):
        dist = c * R + (r0 - c) * g with g = ts * (1 - exp(-R / ts)), so c = (dist - r0 * g) / (R - g);
        clipped to [rate_min, rate_max]."""
        cfg = self.cfg
        ts = cfg.rate_smooth_s
        g = ts * (1.0 - math.exp(-remaining / ts)) if ts > 0 else 0.0
        if remaining - g <= 1e-3:
            c = dist / max(remaining, 1e-3)
        else:
            c = (dist - self.rate * g) / (remaining - g)
        return min(max(c, cfg.rate_min), cfg.rate_max)


def _nearest(times: tuple, t: float, within: float) -> float:
    """The element of ascending ``times`` nearest to ``t`` if it lies within ``within`` seconds, else ``t``."""
    i = bisect.bisect_left(times, t)
    best, dist = t, within
    for j in (i - 1, i):
        if 0 <= j < len(times) and abs(times[j] - t) <= dist:
            best, dist = times[j], abs(times[j] - t)
    return best
