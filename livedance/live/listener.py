"""The listening half of the loop: audio source -> streaming features -> beat tracker, in one thread.

The *feature thread* reads the source's blocks as they arrive and, per block:

1. resamples to the feature rate and pushes into :class:`~livedance.features.StreamingFeatures`; the
   completed feature frames are published at once to the scheduler (``drain_features``), and the
   pipeline latency (block's last sample captured -> its features available) is recorded;
2. pushes the block into the causal :class:`~livedance.beats.tracker.BeatTracker` and publishes a
   :class:`BeatSnapshot` (tempo, a beat of the predicted grid, confidence);
3. keeps a fast silence gate (RMS over ``silence_window_s``) so that the dancer stops within a
   fraction of a second when the music stops, before the tracker's own one-second gate.

Clocks. All music times are on the source's *stream clock* (seconds, sample 0 = 0.0). The mapping to
``time.perf_counter()`` is learnt from the blocks' capture times (:class:`CaptureClock`, minimum
filter); until the first block arrives a provisional origin (the start time) is used.

Faults. While the source is LOST (device unplugged), no audio arrives; the snapshot keeps the last
grid (marked ``lost``) so the dancer keeps dancing on the predicted beats. A short gap in the sample indices
(an input overflow, a dropped block: at most ``fill_gap_s``) is filled with silence, so the features and the
tracker keep their tempo, phase and history. After a longer gap, the features and the tracker restart at the
new position (their times are offset back onto the stream clock) and the held grid stays in use until the
tracker is confident again or ``reacquire_s`` pass.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from livedance.audio.base import AudioSource, CaptureClock, SourceStatus
from livedance.beats.grid import grid_phase
from livedance.beats.tracker import BeatTracker, TrackerConfig
from livedance.features import FeatureConfig, StreamingFeatures, StreamResampler

_log = logging.getLogger("livedance.live")


@dataclass(frozen=True)
class BeatSnapshot:
    """What the listener knows about the beat, at one moment (immutable; swapped atomically).

    Attributes:
        bpm: tempo, beats per minute (0.0 while unknown).
        beat_s: one beat of the predicted grid, stream-clock seconds (None while unknown).
        confidence: tracker confidence in [0, 1]; 0.0 while silent.
        silent: the fast silence gate is closed (no music).
        lost: the audio device is lost (the grid is held).
        analysed_s: stream time up to which audio has been analysed, seconds.
        loudness: input level in [0, 1] (RMS over the silence window, -60 dBFS -> 0, 0 dBFS -> 1).
    """

    bpm: float = 0.0
    beat_s: float | None = None
    confidence: float = 0.0
    silent: bool = True
    lost: bool = False
    analysed_s: float = 0.0
    loudness: float = 0.0

    @property
    def period_s(self) -> float:
        """Beat period in seconds (inf while the tempo is unknown)."""
        return 60.0 / self.bpm if self.bpm > 0 else float("inf")

    def phase(self, t_s: float, bpm_offset: float = 0.0) -> float:
        """Beat phase in [0, 1) at stream time ``t_s`` (0 on a beat), with the tempo nudged by ``bpm_offset``.

        The nudged grid keeps the beat at :attr:`beat_s` and uses period 60 / (bpm + bpm_offset).
        0.0 while the tempo is unknown.
        """
        bpm = self.bpm + bpm_offset
        if self.beat_s is None or self.bpm <= 0 or bpm <= 0:
            return 0.0
        return grid_phase(t_s, self.beat_s, 60.0 / bpm)


@dataclass
class ListenerStats:
    """Counters of the feature thread.

    Attributes:
        blocks: audio blocks processed.
        samples: samples processed.
        feature_frames: feature frames produced.
        latency_s: pipeline latency per block that completed a feature frame, seconds (block's last
            sample capture time -> its features published), most recent ``maxlen`` values.
        gaps: gaps in the sample indices after which the analysis restarted (longer than ``fill_gap_s``, e.g.
            around a device loss, or any gap after a block that failed).
        filled_gaps: shorter gaps, filled with silence (``filled_samples`` samples in all).
        lost_events: times the source went LOST.
        errors: exceptions caught in the feature thread (the block is skipped and the analysis restarts at the
            next block, so its clock cannot fall behind the stream's).
        bad_blocks: blocks holding NaN/inf or samples beyond +-``Listener.MAX_ABS`` (a broken plugin or file):
            non-finite samples became 0 and the rest were clipped, so the block still counts on the clock.
    """

    blocks: int = 0
    samples: int = 0
    feature_frames: int = 0
    latency_s: deque = field(default_factory=lambda: deque(maxlen=200_000))
    gaps: int = 0
    filled_gaps: int = 0
    filled_samples: int = 0
    lost_events: int = 0
    errors: int = 0
    bad_blocks: int = 0


class Listener:
    """Feature thread: source -> features + beat tracker (see the module docstring).

    Args:
        source: any :class:`~livedance.audio.base.AudioSource` (not started yet; :meth:`start` starts it).
        feature_config: streaming feature settings (default ``FeatureConfig()``).
        tracker_config: beat tracker settings; its ``sample_rate`` is set to the source's rate.
        read_frames: most samples taken per read.
        poll_s: how often the thread polls the source for a block (seconds); bounds the added latency.
        silence_db: RMS level (dBFS) under which the fast gate calls the input silent.
        silence_window_s: length of that RMS window, seconds.
        reacquire_s: after a gap, how long the held grid may stay in use while the tracker relearns.
        fill_gap_s: a gap in the sample indices up to this long (seconds; 0: none) is filled with silence instead
            of restarting the analysis: one input overflow then costs a few blocks of silence, not the tracker's
            tempo and the features' 6 s of phase history. Silence is not added to the fast silence gate.
        rt_priority: SCHED_FIFO priority of the feature thread (None: normal priority); see
            :func:`livedance.live.performer.set_realtime_priority`.

    Thread-safety: :meth:`drain_features`, :attr:`beat`, :attr:`stream_origin` may be called from
    any thread.
    """

    def __init__(
        self,
        source: AudioSource,
        feature_config: FeatureConfig | None = None,
        tracker_config: TrackerConfig | None = None,
        *,
        read_frames: int = 2048,
        poll_s: float = 0.0005,
        silence_db: float = -55.0,
        silence_window_s: float = 0.3,
        reacquire_s: float = 8.0,
        fill_gap_s: float = 0.5,
        rt_priority: int | None = None,
    ) -> None:
        self.rt_priority = rt_priority
        self.source = source
        self.feature_config = feature_config or FeatureConfig()
        self.tracker_config = tracker_config or TrackerConfig()
        self.tracker_config.sample_rate = int(source.sample_rate)
        self.read_frames = int(read_frames)
        self.poll_s = float(poll_s)
        self.silence_db = float(silence_db)
        self.silence_window_s = float(silence_window_s)
        self.reacquire_s = float(reacquire_s)
        self.fill_gap_s = float(fill_gap_s)
        self.stats = ListenerStats()
        self.finished = threading.Event()  #: set when a file source has delivered its last sample
        self._features = StreamingFeatures(self.feature_config)
        self._resampler = StreamResampler(int(source.sample_rate), self.feature_config.sr)
        self._tracker = BeatTracker(self.tracker_config)
        self._clock = CaptureClock(int(source.sample_rate))
        self._provisional_t0: float | None = None
        self._offset_s = 0.0  # stream time of the features' / tracker's sample 0
        self._next_index: int | None = None
        self._restart_next = False  # the last block failed: restart the analysis at the next one
        self._reacquire_until = -1.0
        self._ms: deque = deque()  # (n samples, sum of squares) of recent blocks
        self._ms_n = 0
        self._ms_sum = 0.0
        self._beat = BeatSnapshot()
        self._fq_lock = threading.Lock()
        self._fq: list[tuple[np.ndarray, np.ndarray]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_lost = False

    # ------------------------------------------------------------------ public
    @property
    def beat(self) -> BeatSnapshot:
        """The latest :class:`BeatSnapshot`."""
        return self._beat

    @property
    def stream_origin(self) -> float:
        """perf_counter seconds of stream sample 0 (provisional, the start time, before audio arrives)."""
        t0 = self._clock.t0
        if t0 is not None:
            return t0
        return self._provisional_t0 if self._provisional_t0 is not None else time.perf_counter()

    @property
    def has_audio(self) -> bool:
        """True once the first block arrived (the stream origin is measured, not provisional)."""
        return self._clock.t0 is not None

    @property
    def end_s(self) -> float:
        """Stream-clock seconds of the end of the last sample read (0.0 before any); once :attr:`finished` is set,
        the end of the file."""
        n = self._next_index
        return 0.0 if n is None else n / float(self.source.sample_rate)

    def stream_time(self, t_perf: float | None = None) -> float:
        """Stream-clock seconds at perf_counter time ``t_perf`` (default now)."""
        return (time.perf_counter() if t_perf is None else t_perf) - self.stream_origin

    def drain_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Take the feature frames published since the last call.

        Returns:
            (values (F, D) float32, times_s (F,) float64 stream-clock seconds); F may be 0.
        """
        with self._fq_lock:
            parts, self._fq = self._fq, []
        d = self.feature_config.feature_dim
        if not parts:
            return np.zeros((0, d), np.float32), np.zeros(0, np.float64)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def start(self) -> None:
        """Start the source and the feature thread.

        Raises:
            AudioError: the source cannot start.
        """
        if self._thread is not None:
            return
        self._provisional_t0 = time.perf_counter()
        self.source.poll_interval_s = self.poll_s  # instance override of AudioSource's poll period
        self.source.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="livedance-features", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread and the source (idempotent, never raises).

        The thread's join and the source's stop share ``timeout`` seconds (the source gets what is left, at least
        50 ms, when its ``stop`` takes a ``timeout``, as the livedance sources do; another source's stop takes
        as long as it takes).
        """
        deadline = time.perf_counter() + timeout
        self._stop.set()
        th, self._thread = self._thread, None
        if th is not None and th is not threading.current_thread():
            th.join(timeout=timeout)
        try:
            stop = self.source.stop
            try:
                bounded = "timeout" in inspect.signature(stop).parameters
            except (TypeError, ValueError):
                bounded = False
            if bounded:
                stop(timeout=max(deadline - time.perf_counter(), 0.05))
            else:
                stop()
        except Exception:  # noqa: BLE001 - stop never raises
            _log.debug("source stop failed", exc_info=True)

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        if self.rt_priority is not None:
            from livedance.live.performer import set_realtime_priority

            set_realtime_priority(self.rt_priority)
        src = self.source
        while not self._stop.is_set():
            try:
                block = src.read(self.read_frames, timeout=0.02)
            except Exception:  # noqa: BLE001 - sources should not raise here; never die on it
                self.stats.errors += 1
                _log.debug("source read failed", exc_info=True)
                time.sleep(0.01)
                continue
            if block is None:
                status = src.status
                if status is SourceStatus.FINISHED:
                    self.finished.set()
                    return
                if status is SourceStatus.LOST and not self._was_lost:
                    self._was_lost = True
                    self.stats.lost_events += 1
                    self._beat = _replace(self._beat, lost=True)
                if status is not SourceStatus.RUNNING:  # a read returns at once then: never spin on a core
                    self._stop.wait(0.02)
                continue
            self._handle(block)

    def _handle(self, block) -> None:
        """One audio block through the analysis; never raises (the feature thread goes on)."""
        try:
            self._process(block)
        except Exception:  # noqa: BLE001 - a bad block is skipped, the thread goes on
            self.stats.errors += 1
            # the features / tracker may have taken part of the block: restart them at the next one, on the
            # stream clock, rather than let their sample counts lag the stream for the rest of the show
            self._restart_next = True
            if self.stats.errors == 1:
                _log.warning("feature thread: skipped a block that failed to process (the analysis restarts at "
                             "the next block; further errors are counted)", exc_info=True)
            else:
                _log.debug("feature thread: skipped a block", exc_info=True)

    #: Largest sample magnitude passed to the analysis (float audio is within +-1; far beyond it is a fault).
    MAX_ABS = 16.0

    def _process(self, block) -> None:
        if self._was_lost:
            self._was_lost = False
        restart, self._restart_next = self._restart_next, False
        if self._next_index is not None and (restart or block.sample_index != self._next_index):
            gap = block.sample_index - self._next_index
            if not restart and 0 < gap <= self.fill_gap_s * block.sample_rate:
                self._fill(gap)
            else:
                self._restart_at(block)
        elif self._next_index is None and block.sample_index != 0:
            self._offset_s = block.sample_index / block.sample_rate
        self._next_index = block.end_index
        self._clock.observe(block.sample_index, block.t_capture)
        x = block.samples
        if not float(np.abs(x).max(initial=0.0)) <= self.MAX_ABS:  # NaN/inf (the comparison is False) or huge
            x = np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -self.MAX_ABS, self.MAX_ABS)
            self.stats.bad_blocks += 1
        # 1. features, published at once
        if self._push_features(x):
            self.stats.latency_s.append(time.perf_counter() - (block.t_capture + block.duration_s))
        self.stats.blocks += 1
        self.stats.samples += block.n_frames
        # 3. fast silence gate
        ms = float(np.dot(x, x))
        self._ms.append((block.n_frames, ms))
        self._ms_n += block.n_frames
        self._ms_sum += ms
        window = max(int(self.silence_window_s * block.sample_rate), block.n_frames)
        while self._ms_n - self._ms[0][0] >= window:
            n, s = self._ms.popleft()
            self._ms_n -= n
            self._ms_sum -= s
        level_db = 10.0 * np.log10(max(self._ms_sum / max(self._ms_n, 1), 1e-20))
        silent = bool(level_db < self.silence_db)
        loudness = float(min(max((level_db + 60.0) / 60.0, 0.0), 1.0))
        # 2. beat tracker
        tr = self._tracker
        tr.push(x)
        analysed = tr.time_s + self._offset_s
        bpm, conf = float(tr.bpm), float(tr.confidence)
        prev = self._beat
        reacquiring = time.perf_counter() < self._reacquire_until
        if reacquiring and not silent and prev.bpm > 0 and (bpm <= 0 or conf < 0.2):
            self._beat = _replace(prev, silent=False, lost=False, analysed_s=analysed, loudness=loudness)
            return
        beat = grid_anchor(tr)
        beat_s = beat + self._offset_s if beat is not None else None
        self._beat = BeatSnapshot(
            bpm=bpm if beat_s is not None else 0.0,
            beat_s=beat_s,
            confidence=0.0 if silent else conf,
            silent=silent,
            lost=False,
            analysed_s=analysed,
            loudness=loudness,
        )

    def _push_features(self, x: np.ndarray) -> int:
        """Resample ``x`` (float32 samples at the source rate), compute its feature frames and publish them on the
        stream clock at once; returns how many frames it completed."""
        ff = self._features.push(self._resampler.push(x))
        if len(ff):
            with self._fq_lock:
                self._fq.append((ff.values, ff.times_s + self._offset_s))
            self.stats.feature_frames += len(ff)
        return len(ff)

    def _fill(self, n: int) -> None:
        """A short gap of ``n`` samples: the analysis hears silence in its place and keeps its state."""
        z = np.zeros(int(n), np.float32)
        self._push_features(z)
        self._tracker.push(z)
        self.stats.filled_gaps += 1
        self.stats.filled_samples += int(n)

    def _restart_at(self, block) -> None:
        """Samples were lost: restart features and tracker at the block's stream time."""
        self.stats.gaps += 1
        self._offset_s = block.sample_index / block.sample_rate
        self._features.reset()
        self._resampler.reset()
        self._tracker.reset()
        self._ms.clear()
        self._ms_n, self._ms_sum = 0, 0.0
        self._reacquire_until = time.perf_counter() + self.reacquire_s


def grid_anchor(tracker: BeatTracker) -> float | None:
    """The beat the published grid is anchored on: the tracker's first predicted beat after
    ``time_s - one period`` (the latest beat, heard or due), tracker seconds; None without a tempo."""
    bpm = float(tracker.bpm)
    if bpm <= 0:
        return None
    got = tracker.predict_beats(1, tracker.time_s - 60.0 / bpm)
    return float(got[0]) if got.size else None


def _replace(snap: BeatSnapshot, **kw) -> BeatSnapshot:
    from dataclasses import replace

    return replace(snap, **kw)
