"""The real-time loop: listener -> scheduler -> motion timeline -> output clock -> sinks.

Threads (each has a stop; :meth:`Performer.stop` joins them within its ``timeout``, one second by default,
plus the time the recordings take to close):

* **feature thread** (:class:`~livedance.live.listener.Listener`): source blocks -> features and
  beat tracker. Never touches the output clock.
* **scheduler** (``livedance-scheduler``): keeps the :class:`~livedance.live.timeline.MotionTimeline`
  filled ``latency_s - audio_delay_s + ahead_s`` seconds ahead of *now* on the stream clock, calling
  ``generator.step`` with the features heard since the last step and the beat grid predicted for the
  first new frame. So the output clock never waits for the model. If the generator raises or returns
  a malformed result, the loop logs one warning and switches to the procedural fallback.
* **output clock** (``livedance-output``): ticks at ``fps`` on absolute deadlines
  (:class:`~livedance.live.clock.DeadlineClock`). Tick k, due at perf_counter time T_k, builds the
  frame that will be *seen* at ``t_show = T_k + latency_s`` (network + render): it samples the
  timeline at the stream time of the music *heard* at ``t_show``, ``t_show - origin - audio_delay_s``
  (slerp/lerp between model frames), so that motion beats land on the beats as they are heard. No frame ready (the generator is late): it holds
  the newest frame and counts a *miss*. Sink exceptions are caught and counted by the
  :class:`~livedance.live.sinks.SinkSet`; anything else in a tick is caught and counted too. Its log calls, the scheduler's
  and the network senders' one send-error warning only queue the record
  (:class:`~livedance.live.deferlog.DeferredLog`); its own writer thread writes them out, so a blocked terminal
  stalls neither the clock nor the scheduler.
  With a learned generator the clock samples the timeline at a warped *motion time* tau instead
  (:mod:`livedance.live.warp`, beat-synchronous playback): the scheduler finds the motion beats of the
  frames it appends (FK speed minima, as the BAS) and publishes them as an immutable
  :class:`~livedance.live.warp.MotionBeats`; the clock varies the playback rate so that they land on the
  beat grid in use. The procedural dancer (phase-locked by construction) is shown at s unwarped.
  When the music starts, a learned generator's pose is blended with an intro procedural dancer's
  (stepped by the scheduler beside the model, sampled at s) for ``intro.seconds``, then handed over
  between beats (:mod:`livedance.live.intro`).
* **controls** (optional, :class:`~livedance.live.controls.ControlServer`): OSC on 127.0.0.1.
* **recorder** (in the sink set, when recording): writes BVH/npz off the clock thread.

Clocks: the stream clock (seconds, sample 0 of the source = 0) maps to perf_counter through the
listener's :attr:`~livedance.live.listener.Listener.stream_origin`.
"""

from __future__ import annotations

import gc
import logging
import math
import numbers
import os
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from livedance.audio.base import AudioSource
from livedance.beats.tracker import TrackerConfig
from livedance.bridges.frame import PoseFrame
from livedance.bridges.osc_raw import MusicState
from livedance.engine.base import MotionFrames, MotionGenerator, MusicContext, apply_pace, apply_style
from livedance.errors import ConfigError
from livedance.features import FeatureConfig
from livedance.live.clock import DeadlineClock
from livedance.live.controls import ControlServer, ControlState
from livedance.live.deferlog import DeferredLog
from livedance.live.intro import IntroConfig, IntroGate, blend_poses
from livedance.live.listener import BeatSnapshot, Listener
from livedance.live.procedural import ProceduralConfig, ProceduralGenerator
from livedance.live.rest import default_rest_offsets
from livedance.live.sinks import SinkSet
from livedance.live.stage import StageConfig, StageLeash
from livedance.live.timeline import MotionTimeline, slerp
from livedance.live.warp import BeatWarp, MotionBeatDetector, MotionBeats, WarpConfig
from livedance.motion.skeleton import SMPLX_PARENTS

_log = logging.getLogger("livedance.live")


def set_realtime_priority(priority: int | None) -> bool:
    """Give the calling thread SCHED_FIFO real-time priority ``priority`` (Linux). Returns True on success.

    Never raises: without permission (EPERM) or on other systems it returns False and the thread keeps
    its normal priority.
    """
    if priority is None or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
        return True
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class PerformConfig:
    """Settings of the live loop.

    Attributes:
        fps: output clock rate, frames per second.
        latency_s: visual latency in seconds (network + the avatar's render): a frame sent at tick time T is
            seen at ``T + latency_s`` (its ``t_show_s``).
        audio_delay_s: how much later than its stream-clock time the audience hears a sound, seconds (signed): +
            the unreported output latency when livedance plays the file (the stream clock is the DAC's), - the
            unreported input latency for an input device (the room heard it before its reported capture time); 0 for
            a file paced without sound. The frame seen at ``t_show`` shows the motion of stream time
            ``t_show - origin - audio_delay_s``: the music heard then (``livedance.live.setup.default_audio_delay_ms``).
        ahead_s: how far beyond the show time the scheduler keeps model frames ready, seconds.
        idle_fade_s: cross-fade time of a learned generator to the idle pose when the music stops (and
            back when it starts), seconds.
        spin_s: the output clock spins (instead of sleeping) this long before each deadline, seconds.
        control_port: UDP port of the OSC controls (None: no control server; 0: any free port).
        control_host: interface of the control server (127.0.0.1: this machine only).
        record_ticks: keep every tick's deadline and wake-up time (for the jitter figures; two floats per tick,
            about 13 MB an hour at 60 fps, so ``livedance perform`` turns it off).
        rt_priority: SCHED_FIFO priority (1..99) for the output clock thread, one less for the
            feature thread and two less for the scheduler, as audio software does (all three, since a
            thread that holds the GIL and is preempted stalls the others) (Linux; needs root or CAP_SYS_NICE / an rtprio
            limit, otherwise the threads silently keep normal priority). None: normal priority.
        gil_switch_s: while running, the interpreter's GIL switch interval (``sys.setswitchinterval``)
            in seconds, in (0, 0.1], restored by stop(); CPython's 5 ms default lets the feature thread hold the
            output clock up to 5 ms past its deadline. None leaves it alone.
        warp: beat-synchronous playback warp of a learned generator (:class:`~livedance.live.warp.WarpConfig`;
            ``WarpConfig(enabled=False)`` shows the model's frames at stream time, as before).
        intro: the on-beat intro of a learned generator (:class:`~livedance.live.intro.IntroConfig`): for
            ``intro.seconds`` after the music starts the procedural dancer (phase-locked to the grid) leads,
            then a beat-stepped cross-fade hands over to the learned dance. ``IntroConfig(seconds=0)``: off.
        stage: the stage leash of a learned generator (:class:`~livedance.live.stage.StageConfig`): the
            shown pelvis stays within ``stage.radius_m`` of where the dance started (the model travels
            like the ballroom dances it learned from: 17-25 m in 3 minutes). ``StageConfig(radius_m=0)``: off.
        gc_freeze: before anything starts, run one full garbage collection and move every object that
            exists then (the model, the imported modules: about 390 000 objects) out of the collector's
            reach (``gc.freeze()``; ``gc.unfreeze()`` at stop). A full (generation 2) collection
            traverses all of them while holding the GIL: 100-200 ms on the development machine, during
            which the output clock cannot tick (measured: 2 skipped ticks, 62 ms late, in a 90 s run;
            with the freeze none, 2 ms at most; docs/perform.md). Costs one such collection at start. The
            freeze is process-wide: with two shows in one process, the first to stop thaws both.
    """

    fps: float = 60.0
    latency_s: float = 0.0
    audio_delay_s: float = 0.0
    ahead_s: float = 0.15
    idle_fade_s: float = 0.5
    spin_s: float = 0.001
    control_port: int | None = None
    control_host: str = "127.0.0.1"
    record_ticks: bool = True
    gil_switch_s: float | None = 0.0005
    rt_priority: int | None = 20
    warp: WarpConfig = field(default_factory=WarpConfig)
    intro: IntroConfig = field(default_factory=IntroConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    gc_freeze: bool = True

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if not (math.isfinite(self.fps) and 1.0 <= self.fps <= 1000.0):
            raise ConfigError(f"--fps must be 1..1000 frames per second, got {self.fps}")
        if not (math.isfinite(self.latency_s) and 0.0 <= self.latency_s <= 2.0):
            raise ConfigError(f"--latency-ms must be 0..2000 ms, got {self.latency_s * 1000:g}")
        if not (math.isfinite(self.audio_delay_s) and -2.0 <= self.audio_delay_s <= 2.0):
            raise ConfigError(f"--audio-delay-ms must be -2000..2000 ms, got {self.audio_delay_s * 1000:g}")
        if not (math.isfinite(self.ahead_s) and 0.0 < self.ahead_s <= 2.0):
            raise ConfigError(f"PerformConfig.ahead_s must be in (0, 2] seconds, got {self.ahead_s}")
        if not (isinstance(self.spin_s, numbers.Real) and not isinstance(self.spin_s, bool)
                and math.isfinite(self.spin_s) and 0 <= self.spin_s <= 0.1):  # inf would busy-wait the whole show
            raise ConfigError(f"PerformConfig.spin_s must be 0..0.1 seconds, got {self.spin_s}")
        if not (math.isfinite(self.idle_fade_s) and self.idle_fade_s > 0):
            raise ConfigError(f"PerformConfig.idle_fade_s must be > 0 seconds, got {self.idle_fade_s}")
        gil, rtp = self.gil_switch_s, self.rt_priority
        if gil is not None and (isinstance(gil, bool) or not isinstance(gil, numbers.Real)
                                or not (math.isfinite(gil) and 0.0 < gil <= 0.1)):
            raise ConfigError(f"PerformConfig.gil_switch_s must be None or in (0, 0.1] seconds, got {gil!r}")
        if rtp is not None and (isinstance(rtp, bool) or not isinstance(rtp, numbers.Integral) or not 1 <= rtp <= 99):
            raise ConfigError(f"PerformConfig.rt_priority must be None or an integer SCHED_FIFO priority 1..99, "
                              f"got {self.rt_priority!r}")
        if not isinstance(self.warp, WarpConfig):
            raise ConfigError(f"PerformConfig.warp must be a WarpConfig, got {type(self.warp).__name__}")
        self.warp.validate()
        if not isinstance(self.intro, IntroConfig):
            raise ConfigError(f"PerformConfig.intro must be an IntroConfig, got {type(self.intro).__name__}")
        self.intro.validate()
        if not isinstance(self.stage, StageConfig):
            raise ConfigError(f"PerformConfig.stage must be a StageConfig, got {type(self.stage).__name__}")
        self.stage.validate()


def _engine_counts(gen: object) -> tuple[int, int]:
    """``(n_state_resets, n_bad_inputs)`` of a learned generator (0, 0 for a generator without them)."""
    return int(getattr(gen, "n_state_resets", 0) or 0), int(getattr(gen, "n_bad_inputs", 0) or 0)


@dataclass
class PerformStats:
    """Counters of a performance (read them any time; :meth:`Performer.stats` returns a copy).

    Attributes:
        frames_sent: output ticks whose frame went to the sinks.
        misses: ticks for which no model frame was ready (the newest one was held).
        startup_frames: ticks before the first model frame (the safe pose was sent).
        skipped_ticks: ticks skipped because the clock thread woke more than a period late.
        clock_errors: exceptions caught outside the sinks, in an output tick or a scheduler pass (each thread
            counts its own; both keep running).
        gen_steps: generator steps run.
        gen_errors: generator exceptions / malformed results (each switches to the fallback).
        bad_frames: model frames replaced by the safe pose (NaN/inf or counted by the generator).
        state_resets: learned-generator steps whose recurrent state came out non-finite and restarted (its
            ``n_state_resets``).
        bad_inputs: learned-generator steps whose music input held non-finite or misshaped values, dropped or
            taken as "no tempo" (its ``n_bad_inputs``).
        resyncs: times the scheduler found itself behind the show time and restarted there.
        fallback: True once the procedural fallback replaced the generator.
        sink_errors: exceptions caught per sink.
        send_errors: UDP send failures counted inside the senders (no receiver, ...).
        tick_deadlines, tick_wakes: perf_counter seconds of each tick's deadline and wake-up.
        warp_ticks: ticks shown at a warped motion time (learned generator, warp enabled).
        warp_aligned_ticks: of those, ticks steering a motion beat onto a music beat.
        warp_beats_hit: motion beats brought to their music beat.
        warp_hit_error_ms: mean |stream time the motion beat was shown - its music beat|, ms (the
            warp's own residual, on the grid in use).
        warp_resyncs: jumps of the motion time back to the nominal lag (lag over ``max_lag_s``).
        warp_clamps: ticks at which the motion time was held at the newest frame or at show time.
        warp_mean_abs_rate_dev: mean |r - 1| of the playback rate over the warped ticks.
        warp_lag_s: the lag s - tau at the last tick, seconds.
        warp_errors: exceptions in the motion-beat detector or the warp (the tick then shows s).
        intro_starts: music starts that began an on-beat intro (:mod:`livedance.live.intro`).
        intro_ticks: ticks that showed some of the intro dancer (its weight above 0).
        intro_errors: exceptions in the intro (the tick then shows the learned dance alone).
        recordings: per recording (its path): (frames written, frames dropped because the disk could not keep
            up, write / close errors such as a full disk).
        recording_fills: copies of a previous frame written into BVH recordings (constant frame time) where a
            tick had no frame (skipped, failed, or dropped by the recorder queue), so that the take stays in time.
        recording_fills_capped: such gaps longer than the fill cap (10 s by default): the take after each is early
            against the music by the rest of the gap.
    """

    frames_sent: int = 0
    misses: int = 0
    startup_frames: int = 0
    skipped_ticks: int = 0
    clock_errors: int = 0
    gen_steps: int = 0
    gen_errors: int = 0
    bad_frames: int = 0
    state_resets: int = 0
    bad_inputs: int = 0
    resyncs: int = 0
    fallback: bool = False
    sink_errors: dict = field(default_factory=dict)
    send_errors: int = 0
    recordings: dict = field(default_factory=dict)
    recording_fills: int = 0
    recording_fills_capped: int = 0
    tick_deadlines: list = field(default_factory=list)
    tick_wakes: list = field(default_factory=list)
    warp_ticks: int = 0
    warp_aligned_ticks: int = 0
    warp_beats_hit: int = 0
    warp_hit_error_ms: float = 0.0
    warp_resyncs: int = 0
    warp_clamps: int = 0
    warp_mean_abs_rate_dev: float = 0.0
    warp_lag_s: float = 0.0
    warp_errors: int = 0
    intro_starts: int = 0
    intro_ticks: int = 0
    intro_errors: int = 0


def fade_to_idle(frames: MotionFrames, presence: float, silent: bool, fade_s: float,
                 idle_pose) -> tuple[MotionFrames, float]:
    """Cross-fade a learned generator's frames towards the idle pose while the music is silent.

    A learned model keeps dancing on its recurrent state after the music stops; the show wants the avatar
    to settle. The presence weight w ramps linearly (over ``fade_s`` seconds) towards 0 while ``silent`` and
    back to 1 when music returns; each frame is ``slerp(idle, model, w)`` for rotations and a lerp for the
    root.

    Args:
        frames: the generator's :class:`MotionFrames` (N frames at ``frames.fps``).
        presence: w before the first of them, in [0, 1].
        silent: the listener's silence gate when the frames were made.
        fade_s: seconds for a full fade (> 0).
        idle_pose: ``t_s -> ((55, 4) float32 quats, (3,) float32 root m)``, the idle pose at stream time t_s
            (:meth:`ProceduralGenerator.safe_pose`).

    Returns:
        (the faded frames, or ``frames`` itself when w stays 1; w after the last frame).
    """
    target = 0.0 if silent else 1.0
    n = len(frames)
    rate = 1.0 / (frames.fps * max(fade_s, 1e-3))
    w = np.clip(presence + np.sign(target - presence) * rate * np.arange(1, n + 1),
                min(presence, target), max(presence, target))
    if presence >= 1.0 and target >= 1.0:
        return frames, float(w[-1])
    q = np.array(frames.local_quats, np.float32)
    r = np.array(frames.root_translation, np.float32)
    for i in range(n):
        iq, ir = idle_pose(frames.t0_s + i / frames.fps)
        q[i] = slerp(iq, q[i], float(w[i]))
        r[i] = ir + float(w[i]) * (r[i] - ir)
    return MotionFrames(q, r, frames.fps, frames.t0_s, frames.n_bad), float(w[-1])


class Performer:
    """The live loop (see the module docstring).

    Args:
        source: an audio source, not started (the performer starts and stops it).
        sinks: sink objects (see :mod:`livedance.live.sinks`); closed by :meth:`stop`.
        generator: any :class:`~livedance.engine.base.MotionGenerator`; None = the procedural dancer.
        config: :class:`PerformConfig`.
        feature_config, tracker_config: listener settings.
        rest_offsets: (55, 3) metres, the skeleton of the output frames (default
            :func:`~livedance.live.rest.default_rest_offsets`).
        fallback: the procedural generator used as safe pose and fallback (default: a new one).
        link: an Ableton Link grid (:class:`livedance.beats.link.LinkBeatGrid`); while its session has
            peers its tempo and phase replace the tracker's (the DJ's tempo wins, as in
            :class:`livedance.beats.grid.PreferLink`). Only the scheduler thread queries it; closed by stop().

    Raises:
        ConfigError: invalid config.
    """

    def __init__(
        self,
        source: AudioSource,
        sinks: list | None = None,
        generator: MotionGenerator | None = None,
        config: PerformConfig | None = None,
        *,
        feature_config: FeatureConfig | None = None,
        tracker_config: TrackerConfig | None = None,
        rest_offsets: np.ndarray | None = None,
        fallback: ProceduralGenerator | None = None,
        link=None,
    ) -> None:
        self.link = link
        self._link_snap = None
        self.config = config or PerformConfig()
        self.config.validate()
        self.rest_offsets = (default_rest_offsets() if rest_offsets is None else np.asarray(rest_offsets, np.float32))
        self.fallback = fallback or ProceduralGenerator(rest_offsets=self.rest_offsets)
        self.generator: MotionGenerator = generator if generator is not None else self.fallback
        rtp = self.config.rt_priority
        self.listener = Listener(source, feature_config, tracker_config, rt_priority=None if rtp is None else max(rtp - 1, 1))
        self.rt_output = False
        self._clock_log = DeferredLog(_log)  # the output clock's and the scheduler's log: written out by its own thread (start / stop)
        self.sinks = SinkSet(list(sinks or []), logger=self._clock_log)
        self.controls = ControlState()
        self._control_server: ControlServer | None = None
        if self.config.control_port is not None:
            self._control_server = ControlServer(self.controls, self.config.control_port, self.config.control_host,
                                                 logger=self._clock_log)
        self.timeline = MotionTimeline(capacity=max(256, int(4 * max(self.generator.fps, 60.0) * 4)))
        self._stats = PerformStats()
        self._count_lock = threading.Lock()  # counters both threads add to (_count)
        self._presence = 0.0  # learned generator's weight against the idle pose (see _fade_to_idle)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopped = False
        self._threads_stopped = False
        self._sinks_closed = False
        self._listening_stopped = False
        self._frozen = False  # gc.freeze() done by start(), undone by stop()
        self._last_pose: tuple[np.ndarray, np.ndarray] | None = None
        self._sent_heard_s = -math.inf  # heard stream time of the last frame sent (output thread writes; run() reads)
        self._warned_clock = False  # output clock thread
        self._warned_sched = False  # scheduler thread
        self._warned_gen = False
        self._t_start = 0.0
        self._old_switch: float | None = None
        # beat-synchronous playback warp: detector on the scheduler thread, warp on the output clock
        self._beat_detector = MotionBeatDetector(self.rest_offsets, SMPLX_PARENTS, self.config.warp)
        self._motion_beats: MotionBeats | None = None  # replaced whole by the scheduler (atomic)
        self._warp = BeatWarp(self.config.warp)
        self._warping = False  # the output clock showed warped motion time at its last tick
        # on-beat intro: its own procedural dancer and timeline (scheduler thread), the gate (output clock)
        self._intro_dancer = ProceduralGenerator(ProceduralConfig(fps=max(self.config.fps, 1.0)),
                                                 rest_offsets=self.rest_offsets)
        self._intro_timeline = MotionTimeline(capacity=int(16 * max(self.config.fps, 60.0)))  # 16 s of frames
        self._intro_next: float | None = None  # stream time of the intro dancer's next frame
        self._intro_gate = IntroGate(self.config.intro)
        self._leash = StageLeash(self.config.stage)  # scheduler thread

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the source, the threads and the control server.

        If a step fails, what the steps before it started is undone (the control server, the garbage collector's
        freeze, the source and the feature thread, the GIL switch interval, the threads) before the error is
        raised; the sinks stay open until :meth:`stop`.

        Raises:
            AudioError: the source cannot start.
            ConfigError: the control port cannot be bound, or the performer was stopped (a performer runs one
                show: its sinks are closed; make a new one).
        """
        if self._stopped:
            raise ConfigError("this Performer was stopped (its recordings are closed): make a new one for the next show")
        if self._started:
            return
        self._started = True
        try:
            self._clock_log.start()
            if self._control_server is not None:
                self._control_server.start()
            if self.config.gc_freeze:
                # before the audio stream runs: the collection holds the GIL for 100-200 ms, which a running
                # source's watchdog would take for a lost device (PerformConfig.gc_freeze)
                gc.collect()
                gc.freeze()
                self._frozen = True
            self.listener.start()
            self._t_start = time.perf_counter()
            if self.config.gil_switch_s is not None:
                old = sys.getswitchinterval()
                sys.setswitchinterval(self.config.gil_switch_s)
                self._old_switch = old
            self._threads = []
            for target, name in ((self._schedule_loop, "livedance-scheduler"), (self._output_loop, "livedance-output")):
                th = threading.Thread(target=target, name=name, daemon=True)
                th.start()
                self._threads.append(th)
        except BaseException:
            deadline = time.perf_counter() + 1.0
            try:
                self._join_threads(deadline)
            finally:
                self._stop_listening(deadline)
                self._threads = []
                self._stop.clear()
                self._started = False
                self._clock_log.stop()
            raise

    def stop(self, timeout: float = 1.0) -> None:
        """End the output clock and the scheduler, close the sinks (recordings are flushed and complete: this waits
        for a slow disk, however long), then stop the listener and its audio source, the control server and Link.

        The thread joins and the source's stop share ``timeout`` seconds (the recordings' close does not count
        against it); a thread or a device close still busy then finishes on its own, in the background (daemon
        threads that end with what they are doing). Idempotent; raises nothing of its own. A stop cut short by an
        interrupt (``KeyboardInterrupt`` while the recordings close) is finished by the next call.
        """
        self._stopped = True
        t0 = time.perf_counter()
        joined_s = 0.0
        try:
            if not self._threads_stopped:
                self._join_threads(t0 + timeout)
                self._threads_stopped = True
            joined_s = time.perf_counter() - t0
        finally:
            try:
                if not self._sinks_closed:
                    self._close_sinks()
            finally:
                if not self._listening_stopped:
                    self._stop_listening(time.perf_counter() + max(timeout - joined_s, 0.0))
                    self._close_link()
                    self._listening_stopped = True
                self._clock_log.stop(timeout=0.2)

    def _close_sinks(self) -> None:
        self.sinks.close()
        self._sinks_closed = True

    def _join_threads(self, deadline: float) -> None:
        """Stop and join the scheduler and the output clock (by perf_counter ``deadline``); thaw the collector."""
        self._stop.set()
        if self._frozen:
            gc.unfreeze()  # the show's objects go back to the collector's oldest generation
            self._frozen = False
        for th in self._threads:
            if th.ident is not None and th is not threading.current_thread():
                th.join(timeout=max(deadline - time.perf_counter(), 0.01))

    def _stop_listening(self, deadline: float) -> None:
        """Restore the GIL switch interval, stop the control server, the listener and its source (by ``deadline``,
        perf_counter seconds; at least 50 ms for the listener)."""
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None
        if self._control_server is not None:
            self._control_server.stop()
        self.listener.stop(timeout=max(deadline - time.perf_counter(), 0.05))

    def _close_link(self) -> None:
        if self.link is not None:
            try:
                self.link.close()
            except Exception:  # noqa: BLE001
                pass

    @property
    def control_port(self) -> int | None:
        """The bound OSC control port (None without a control server)."""
        return None if self._control_server is None else self._control_server.port

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._started and not self._stopped

    @property
    def finished(self) -> bool:
        """True when a file source has delivered its last sample."""
        return self.listener.finished.is_set()

    @property
    def warp(self):
        """The learned dancer's :class:`~livedance.live.warp.BeatWarp` (read it for diagnostics, e.g.
        ``recent_hits``; only the output clock writes it)."""
        return self._warp

    @property
    def stream_origin(self) -> float:
        """perf_counter seconds of the source's sample 0."""
        return self.listener.stream_origin

    def heard_stream_time(self, t_perf: float) -> float:
        """The stream-clock time of the music the audience hears at ``t_perf``, seconds.

        ``t_perf - origin - audio_delay_s`` (module docstring): the one place this is written. ``t_perf`` is
        perf_counter seconds; a positive ``audio_delay_s`` means the room hears a sound later than it entered.
        """
        return t_perf - self.listener.stream_origin - self.config.audio_delay_s

    def run(self, duration_s: float | None = None, on_status=None, status_every_s: float = 0.25) -> None:
        """Block until the source finishes and its end has been danced, ``duration_s`` passes or :meth:`stop` is
        called.

        A file's last sample is read before the audience hears it (``audio_delay_s`` later, and for ``--play``
        the output buffer's latency on top, both in the stream clock's origin), so after the source finishes the
        show goes on until a frame that shows the music's end has been sent (``heard_stream_time`` of its
        ``t_show`` at or past the end; 0.25 s after that frame's tick at most): a recording keeps the song's last hit.

        Args:
            duration_s: stop after this many seconds (None: until the source ends or forever).
            on_status: called with :meth:`stats` every ``status_every_s`` seconds (e.g. a status line).
        """
        self.start()
        t_end = None if duration_s is None else time.perf_counter() + float(duration_s)
        while not self._stop.is_set():
            if self.finished:
                cfg = self.config
                end_s = self.listener.end_s
                # the tick whose frame is seen when the end is heard (origin + end + D - L); wait until a frame at
                # or past the end was sent, 0.25 s longer at most (a late output thread skips ticks)
                t_cap = self.stream_origin + end_s + cfg.audio_delay_s - cfg.latency_s + 0.25
                if t_end is not None:
                    t_cap = min(t_cap, t_end)
                while self._sent_heard_s < end_s and time.perf_counter() < t_cap and not self._stop.is_set():
                    self._stop.wait(min(0.005, max(t_cap - time.perf_counter(), 0.0)))
                if on_status is not None:
                    on_status(self.stats())
                break
            if t_end is not None and time.perf_counter() >= t_end:
                break
            wait = status_every_s if t_end is None else min(status_every_s, max(t_end - time.perf_counter(), 0.0))
            self.listener.finished.wait(wait)
            if on_status is not None:
                on_status(self.stats())

    def stats(self) -> PerformStats:
        """A copy of the counters (tick lists are shared, not copied)."""
        s = self._stats
        out = PerformStats(**{k: getattr(s, k) for k in s.__dataclass_fields__})
        out.sink_errors = dict(self.sinks.errors)
        out.send_errors = self.sinks.send_errors
        out.recordings = self.sinks.record_counts
        out.recording_fills = self.sinks.record_fills
        out.recording_fills_capped = self.sinks.record_fills_capped
        w = self._warp
        out.warp_aligned_ticks = w.aligned_ticks
        out.warp_beats_hit = w.beats_hit
        out.warp_hit_error_ms = 1e3 * w.hit_error_sum_s / w.beats_hit if w.beats_hit else 0.0
        out.warp_resyncs = w.resyncs
        out.warp_clamps = w.clamps
        out.warp_mean_abs_rate_dev = w.mean_abs_rate_dev
        out.warp_lag_s = w.lag_s
        return out

    def _count(self, name: str) -> None:
        """Add 1 to the error counter ``name`` of :class:`PerformStats`, under a lock: the scheduler thread and the
        output clock both count clock, warp and intro errors, and ``+=`` on an attribute is not atomic."""
        with self._count_lock:  # (a misspelt name counts in a new attribute rather than raise in an except block)
            setattr(self._stats, name, getattr(self._stats, name, 0) + 1)

    # ------------------------------------------------------------------ scheduler
    def _schedule_loop(self) -> None:
        cfg = self.config
        if cfg.rt_priority is not None:
            set_realtime_priority(max(cfg.rt_priority - 2, 1))
        next_t: float | None = None
        while not self._stop.is_set():
            try:
                gen = self.generator
                s_show = self.heard_stream_time(time.perf_counter() + cfg.latency_s)  # heard when this tick's frame is seen
                if next_t is None or next_t < s_show - 1.0 / max(gen.fps, 1.0):
                    if next_t is not None:
                        self._stats.resyncs += 1
                    next_t = s_show
                if next_t > s_show + cfg.ahead_s:
                    self._stop.wait(min(next_t - (s_show + cfg.ahead_s), 0.005) + 1e-4)
                    continue
                frames = self._step(gen, next_t)
                self.timeline.append(frames)
                next_t = frames.t0_s + len(frames) / frames.fps
                self._detect_motion_beats(frames)
                self._step_intro(frames.t0_s, next_t)
            except Exception as err:  # noqa: BLE001 - never let the scheduler die
                self._count("clock_errors")
                if not self._warned_sched:
                    self._warned_sched = True
                    self._clock_log.warning("scheduler error: %s: %s (counted)", type(err).__name__, err)
                self._stop.wait(0.01)

    def _intro_wanted(self) -> bool:
        """The on-beat intro applies: on, and a learned generator (not a procedural dancer) dances."""
        return self.config.intro.seconds > 0 and not isinstance(self.generator, ProceduralGenerator)

    def _step_intro(self, t_from: float, t_until: float) -> None:
        """Scheduler thread: run the intro's procedural dancer over [t_from, t_until) of show time while it
        may be shown: in silence (so its phase lock is settled when the music starts) and until its
        hand-over is done (about 1.7 ms per 320 ms of show; nothing once the learned dance is on its own).
        Never raises."""
        try:
            end = self._intro_gate.fade_end_s  # the output clock's gate (it reads each attribute once)
            done = end is not None and t_from > end + 0.5 and not self.beat().silent
            if not self._intro_wanted() or done:
                self._intro_next = None
                return
            if self._intro_next is None or not t_from - 1.0 <= self._intro_next <= t_until + 1.0:
                self._intro_next = t_from  # (re)start; a dancer already ahead of t_until just waits
            while self._intro_next < t_until:
                mf = self._intro_dancer.step(self._beat_context(self._intro_next))
                self._intro_timeline.append(mf)
                self._intro_next = mf.t0_s + len(mf) / mf.fps
        except Exception as err:  # noqa: BLE001 - the intro is an extra: the learned dance shows alone
            self._count("intro_errors")
            self._intro_next = None
            self._clock_log.debug("intro dancer: %s: %s", type(err).__name__, err)

    def _warp_wanted(self) -> bool:
        """The warp applies: enabled, and the learned generator (not a procedural dancer, which is
        phase-locked to the beat already: the fallback, or the one ``--procedural`` chose) dances."""
        return self.config.warp.enabled and not isinstance(self.generator, ProceduralGenerator)

    def _detect_motion_beats(self, frames: MotionFrames) -> None:
        """Scheduler thread: motion beats of the frames just appended; published as one immutable object."""
        if not self._warp_wanted():
            self._motion_beats = None
            return
        try:
            self._motion_beats = self._beat_detector.push(frames)
        except Exception as err:  # noqa: BLE001 - the warp is an extra: without beats it keeps the lag
            self._count("warp_errors")
            self._motion_beats = None
            self._beat_detector.reset()
            self._clock_log.debug("motion beat detector: %s: %s", type(err).__name__, err)

    def _warp_grid(self, snap: BeatSnapshot, nudges: tuple[float, float] | None = None) -> tuple[float, float] | None:
        """The music beat grid the warp aims at, (anchor_s, period_s) on the stream clock, with the live
        nudges applied (beats where :meth:`_tick`'s beat phase is 0); None when not confident or silent.
        ``nudges``: the tick's ``(bpm_offset, phase_offset_beats)`` (:meth:`ControlState.nudges`), read now if None."""
        bpm_offset, phase_offset = nudges if nudges is not None else self.controls.nudges()
        bpm = snap.bpm + bpm_offset
        if snap.silent or snap.beat_s is None or snap.bpm <= 0 or bpm <= 0:
            return None
        if not snap.confidence >= self.config.warp.min_confidence:
            return None
        period = 60.0 / bpm
        return (float(snap.beat_s) - float(phase_offset) * period, period)

    def _motion_time(self, s: float, grid: tuple[float, float] | None) -> float:
        """Output clock: the timeline time to show at show time ``s`` (warped for a learned generator onto
        ``grid``, the tick's :meth:`_warp_grid`).

        Never raises: a failure counts in ``warp_errors`` and shows ``s``.
        """
        if not self._warp_wanted():
            if self._warping:
                self._warp.reset()
                self._warping = False
            return s
        try:
            tau = self._warp.tick(s, self._motion_beats, None if self.controls.frozen else grid,
                                  accent=self.controls.accent)
            self._warping = True
            self._stats.warp_ticks += 1
            return tau
        except Exception as err:  # noqa: BLE001 - the output clock never dies
            self._count("warp_errors")
            self._warp.reset()
            self._clock_log.debug("warp: %s: %s", type(err).__name__, err)
            return s

    def _intro(self, s: float, silent: bool, grid: tuple[float, float] | None, q: np.ndarray,
               r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output clock: the learned pose blended with the intro dancer's at show time ``s`` (the silence gate
        and the tick's :meth:`_warp_grid`; :mod:`livedance.live.intro`). Never raises: a failure counts in
        ``intro_errors`` and shows ``q, r``."""
        if not self._intro_wanted():
            return q, r
        try:
            starts = self._intro_gate.starts
            w = self._intro_gate.update(s, silent, grid)
            self._stats.intro_starts += self._intro_gate.starts - starts
            if w >= 1.0:
                return q, r
            smp = self._intro_timeline.sample(s)
            if smp is None:
                return q, r
            self._stats.intro_ticks += 1
            return blend_poses(smp.local_quats, smp.root, q, r, w)
        except Exception as err:  # noqa: BLE001 - the output clock never dies
            self._count("intro_errors")
            self._clock_log.debug("intro: %s: %s", type(err).__name__, err)
            return q, r

    @property
    def link_active(self) -> bool:
        """True while the beat grid comes from the Ableton Link session (it has peers)."""
        return self._link_snap is not None

    def beat(self) -> BeatSnapshot:
        """The beat grid in use: the Link session's while it has peers (refreshed by the scheduler), else the tracker's."""
        snap = self._link_snap
        return snap if snap is not None else self.listener.beat

    def _refresh_link(self) -> None:
        """Scheduler thread: take the Link session's grid while it has peers."""
        link = self.link
        if link is None:
            return
        try:
            if link.num_peers <= 0:
                self._link_snap = None
                return
            # Link times a beat by when it sounds: its stream starts where the heard music's stream time is 0
            link.stream_start = -self.heard_stream_time(0.0)
            s_now = self.listener.stream_time()
            tr = self.listener.beat
            beat = link.predict_beats(1, s_now)
            self._link_snap = BeatSnapshot(
                bpm=float(link.bpm), beat_s=float(beat[0]) if beat.size else None,
                confidence=0.0 if tr.silent else 1.0, silent=tr.silent, lost=tr.lost,
                analysed_s=tr.analysed_s, loudness=tr.loudness,
            )
        except Exception:  # noqa: BLE001 - Link trouble never stops the show: use the tracker
            self._link_snap = None

    def _beat_context(self, t_first: float, features: np.ndarray | None = None,
                      times_s: np.ndarray | None = None) -> MusicContext:
        """The beat grid in use (live nudges applied) at ``t_first`` as a :class:`MusicContext`, with the given
        features (none by default: the intro dancer's input; :meth:`_music` passes the drained ones)."""
        snap = self.beat()
        bpm, phase = self._nudged(snap, t_first)
        return MusicContext(
            features=np.zeros((0, 0), np.float32) if features is None else features,
            times_s=np.zeros(0) if times_s is None else times_s,
            bpm=bpm,
            beat_phase=phase,
            confidence=snap.confidence,
            t_first_frame_s=float(t_first),
            energy=float(self.controls.energy),
        )

    def _nudged(self, snap: BeatSnapshot, t_s: float, nudges: tuple[float, float] | None = None) -> tuple[float, float]:
        """(bpm, beat phase in [0, 1)) of ``snap`` at stream time ``t_s`` with the live nudges (BPM offset,
        phase offset in beats) applied; (0.0, 0.0) while no tempo is known or the nudged tempo is not positive.
        ``nudges``: as for :meth:`_warp_grid` (one consistent pair, read now if None)."""
        bpm_offset, phase_offset = nudges if nudges is not None else self.controls.nudges()
        bpm = snap.bpm + bpm_offset if snap.bpm > 0 else 0.0
        if bpm <= 0:
            return 0.0, 0.0
        return float(bpm), float((snap.phase(t_s, bpm_offset) + phase_offset) % 1.0)

    def _music(self, t_first: float) -> MusicContext:
        """Scheduler thread: the learned generator's input: the features heard since the last step and the grid."""
        feats, times = self.listener.drain_features()
        self._refresh_link()
        return self._beat_context(t_first, feats, times)

    def _apply_style_requests(self, gen: MotionGenerator) -> None:
        """Scheduler thread, between steps: the pending ``/livedance/pace``, ``/livedance/style`` and
        ``/livedance/style/strength``.

        A strength alone keeps the current style (the learned dancer's ``set_style(style, strength)``); a request
        the generator cannot apply (no styles, no strength, an unknown name) is logged and counted in
        ``controls.unsupported``, and the dance goes on as it was.
        """
        pace = self.controls.take_pace_request()
        if pace is not None:
            try:
                apply_pace(gen, None if pace == 0 else pace)
            except Exception as err:  # noqa: BLE001 - a control never stops the show
                self.controls.unsupported += 1
                self._clock_log.info("pace %r not applied: %s", pace, err)
        req, lam = self.controls.take_style_requests()  # both under one lock: sent together, applied together
        if req is None and lam is None:
            return
        try:
            apply_style(gen, req, lam)
        except Exception as err:  # noqa: BLE001 - a control never stops the show
            self.controls.unsupported += 1
            self._clock_log.info("style %r (strength %r) not applied: %s", req, lam, err)

    def _step(self, gen: MotionGenerator, t_first: float) -> MotionFrames:
        self._apply_style_requests(gen)
        music = self._music(t_first)
        before = _engine_counts(gen)
        made_by = gen  # the generator whose frames these are (the fallback's once ``gen`` failed)
        try:
            frames = gen.step(music)
            self._check(frames, t_first)
            n_bad = int(getattr(frames, "n_bad", 0))
            # the counters run since the generator's last reset: add this step's increase (all of the counter when
            # it was reset during the step)
            after = _engine_counts(gen)
            self._stats.state_resets += after[0] - before[0] if after[0] >= before[0] else after[0]
            self._stats.bad_inputs += after[1] - before[1] if after[1] >= before[1] else after[1]
        except Exception as err:  # noqa: BLE001 - the show goes on with the procedural dancer
            self._stats.gen_errors += 1
            if gen is self.fallback:
                raise
            if not self._warned_gen:
                self._warned_gen = True
                self._clock_log.warning(
                    "generator failed (%s: %s); switching to the procedural dancer", type(err).__name__, err
                )
            self.generator = self.fallback
            self._stats.fallback = True
            frames = self.fallback.step(music)
            made_by = self.fallback
            n_bad = 0
        self._stats.gen_steps += 1
        self._stats.bad_frames += n_bad
        frames = self._sanitise(frames, t_first)
        if not isinstance(made_by, ProceduralGenerator):  # a learned dancer's travel is leashed, its silence faded;
            # the procedural dancer (the fallback, or --procedural's own) dances in place and idles by itself
            frames = self._fade_to_idle(self._leash.apply(frames))
        return frames

    def _fade_to_idle(self, frames: MotionFrames) -> MotionFrames:
        """Cross-fade a learned generator's frames to the idle pose while the music is silent
        (:func:`fade_to_idle`, with the procedural dancer's breathing pose as idle). Runs on the scheduler
        thread."""
        frames, self._presence = fade_to_idle(frames, self._presence, self.beat().silent, self.config.idle_fade_s,
                                              self.fallback.safe_pose)
        return frames

    @staticmethod
    def _check(frames: MotionFrames, t_first: float) -> None:
        """A step's frames must have the right shapes, a usable fps and start where they were asked to (a NaN or
        stale ``t0_s`` would put NaN times in the timeline, or make the scheduler resync on every step). Raises
        ValueError, which switches the show to the procedural dancer."""
        q, r = np.asarray(frames.local_quats), np.asarray(frames.root_translation)
        n = q.shape[0] if q.ndim else 0
        if q.ndim != 3 or q.shape[1:] != (55, 4) or r.shape != (n, 3) or n < 1:
            raise ValueError(f"generator returned local_quats {q.shape}, root {r.shape}; expected (N, 55, 4), (N, 3)")
        try:
            fps, t0 = float(frames.fps), float(frames.t0_s)
        except (TypeError, ValueError):
            raise ValueError(f"generator returned fps {frames.fps!r}, t0_s {frames.t0_s!r}; expected numbers") from None
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"generator returned fps {frames.fps}")
        if not (math.isfinite(t0) and abs(t0 - t_first) <= 0.5 / fps):
            raise ValueError(f"generator returned frames from {t0} s for a step asked to start at {t_first:.3f} s")

    def _sanitise(self, frames: MotionFrames, t_first: float) -> MotionFrames:
        q = np.asarray(frames.local_quats, np.float32)
        r = np.asarray(frames.root_translation, np.float32)
        bad = ~(np.isfinite(q).all(axis=(1, 2)) & np.isfinite(r).all(axis=1) & (np.linalg.norm(q, axis=2) > 1e-6).all(axis=1))
        if bad.any():
            q, r = q.copy(), r.copy()
            sq, sr = self.fallback.safe_pose(t_first)
            q[bad], r[bad] = sq, sr
            self._stats.bad_frames += int(bad.sum())
        return MotionFrames(q, r, float(frames.fps), float(frames.t0_s))

    # ------------------------------------------------------------------ output clock
    def _output_loop(self) -> None:
        cfg = self.config
        self.rt_output = set_realtime_priority(cfg.rt_priority)
        clock = DeadlineClock(cfg.fps, cfg.spin_s)
        st = self._stats
        while True:
            got = clock.wait(self._stop)
            if got is None:
                break
            k, due, woke = got
            st.skipped_ticks = clock.skipped
            if cfg.record_ticks:
                st.tick_deadlines.append(due)
                st.tick_wakes.append(woke)
            try:
                self._tick(due)
            except Exception as err:  # noqa: BLE001 - the output clock never dies
                self._count("clock_errors")
                if not self._warned_clock:
                    self._warned_clock = True
                    self._clock_log.warning("output clock error: %s: %s (counted)", type(err).__name__, err)

    def _tick(self, due: float) -> None:
        cfg, st = self.config, self._stats
        t_show = due + cfg.latency_s  # when this frame is seen
        s = self.heard_stream_time(t_show)
        snap = self.beat()
        nudges = self.controls.nudges()  # once per tick: the warp, the intro and the sinks see one grid
        grid = self._warp_grid(snap, nudges)
        tau = self._motion_time(s, grid)
        if self.controls.frozen and self._last_pose is not None:
            q, r = self._last_pose
        else:
            smp = self.timeline.sample(tau)
            if smp is None:
                st.startup_frames += 1
                q, r = self.fallback.safe_pose(s)
            else:
                if smp.missed:
                    st.misses += 1
                q, r = smp.local_quats, smp.root
                q, r = self._intro(s, snap.silent, grid, q, r)
            self._last_pose = (q, r)
        frame = PoseFrame(t_show_s=t_show, local_quats=q, root_position=r, rest_offsets=self.rest_offsets)
        bpm, phase = self._nudged(snap, s, nudges)
        music = MusicState(beat_phase=phase, bpm=bpm, energy=float(snap.loudness))
        self.sinks.send(frame, music)
        st.frames_sent += 1
        self._sent_heard_s = s
