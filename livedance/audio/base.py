"""The audio source interface shared by live devices, JACK ports and files.

A source delivers mono float32 blocks, each labelled with the absolute sample index of its first
sample (the *stream clock*: sample 0 is the first sample the source produced) and with the
``time.perf_counter()`` time at which that sample was captured (or, for a file that is played,
heard). Sources deliver at their native rate, anywhere from 8 kHz to 96 kHz; the consumer
(the feature front end) resamples to its own rate.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum

import numpy as np

from livedance.errors import AudioError

#: Lowest sample rate a source accepts (Hz).
MIN_SAMPLE_RATE = 8000
#: Highest sample rate a source accepts (Hz).
MAX_SAMPLE_RATE = 96000
#: The rate a live device is opened at when its default rate lies outside the range (e.g. a 192 kHz interface).
FALLBACK_SAMPLE_RATE = 48000


def validate_sample_rate(sample_rate: float, what: str, fix: str = "") -> int:
    """Check that ``sample_rate`` (Hz) is an integer rate in [8000, 96000] and return it as int.

    Args:
        sample_rate: the rate in Hz (a device's default rate may come as a float such as 44100.0).
        what: the input it belongs to, named in the error (a file path or a device name).
        fix: what the user can do about an out-of-range rate, appended to that error (e.g. how to resample).

    Raises:
        AudioError: the rate is not finite, not (close to) an integer, or outside 8 kHz..96 kHz.
    """
    try:
        sr = float(sample_rate)
    except (TypeError, ValueError):
        raise AudioError(f"{what}: sample rate must be a number of Hz, got {sample_rate!r}") from None
    if not np.isfinite(sr) or abs(sr - round(sr)) > 1e-6:
        raise AudioError(f"{what}: sample rate must be a whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{what}: sample rate {sr:g} Hz is outside the supported range "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz" + (f"; {fix}" if fix else "")
        )
    return int(round(sr))


class SourceStatus(str, Enum):
    """Where a source stands. ``str`` values so they print and serialise plainly."""

    STOPPED = "stopped"  #: not started yet, or stopped by the owner
    RUNNING = "running"  #: delivering audio
    LOST = "lost"  #: the device went away; the source retries (live) or waits for reconnect()
    FINISHED = "finished"  #: a file (without loop) has delivered its last sample


@dataclass(frozen=True)
class AudioBlock:
    """A block of mono audio from a source.

    Attributes:
        samples: (N,) float32 mono samples, N >= 1, nominally in [-1, 1].
        sample_index: absolute index of samples[0] on the source's stream clock (sample 0 = the
            first sample the source produced; a gap in indices means samples were lost).
        t_capture: ``time.perf_counter()`` seconds at which samples[0] was captured (live) or
            reached the loudspeaker (played file). For a file read without playback it is the
            nominal time start() + sample_index / sample_rate.
        sample_rate: Hz, in [8000, 96000].
    """

    samples: np.ndarray
    sample_index: int
    t_capture: float
    sample_rate: int

    @property
    def n_frames(self) -> int:
        """Number of samples N."""
        return int(self.samples.shape[0])

    @property
    def end_index(self) -> int:
        """Absolute index one past the last sample."""
        return self.sample_index + self.n_frames

    @property
    def time_s(self) -> float:
        """Stream-clock time of samples[0] in seconds (sample_index / sample_rate)."""
        return self.sample_index / self.sample_rate

    @property
    def duration_s(self) -> float:
        """Block length in seconds."""
        return self.n_frames / self.sample_rate


class CaptureClock:
    """Maps absolute sample indices to ``time.perf_counter()`` seconds: t(i) = t0 + i / sr.

    Each audio callback gives one noisy observation of t0 (the callback's own lateness only ever
    makes it look *later*), so the estimate follows the lower envelope of the observations and
    rises by at most ``max_drift`` seconds per second so that it tracks a device clock that runs
    slow against perf_counter. This is the usual minimum filter of one-way-delay clock estimation.

    The cap must exceed the slowest device's drift, or its samples come out early by the excess times
    the running time (300 ppm under a 200 ppm cap: 360 ms early after an hour). Sound-card crystals are
    within about +-100 ppm, cheap USB devices a few hundred; the default 2e-3 (2000 ppm) covers them with
    room. What the cap costs: a late callback after a gap of g seconds without callbacks can raise the
    estimate by up to ``max_drift * g`` (2 ms after a 1 s stall), and the next on-time callback brings it
    back down at once.

    Args:
        sample_rate: Hz.
        max_drift: largest clock drift tracked upwards (s/s); 2e-3 = 2000 ppm.

    :meth:`observe` is called from the audio thread (float arithmetic only); :meth:`time_of` from
    the reader. The estimate is one float attribute, so a reader sees either the old or new value.
    """

    def __init__(self, sample_rate: int, max_drift: float = 2e-3) -> None:
        self.sample_rate = int(sample_rate)
        self.max_drift = float(max_drift)
        self._t0: float | None = None
        self._t_obs = 0.0

    def observe(self, index: int, t: float) -> None:
        """Record that absolute sample ``index`` happened at perf_counter time ``t`` (seconds)."""
        t0 = t - index / self.sample_rate
        cur = self._t0
        if cur is None:
            self._t0 = t0
        else:
            ceiling = cur + self.max_drift * max(t - self._t_obs, 0.0)
            self._t0 = t0 if t0 < ceiling else ceiling
        self._t_obs = t

    def set_origin(self, t0: float) -> None:
        """Fix t0 directly (a clock that is exact by construction, such as a paced file)."""
        self._t0 = float(t0)
        self._t_obs = float(t0)

    @property
    def t0(self) -> float | None:
        """perf_counter time of sample 0, or None before the first observation."""
        return self._t0

    def time_of(self, index: int) -> float:
        """perf_counter seconds of absolute sample ``index`` (now, if nothing was observed yet)."""
        t0 = self._t0
        if t0 is None:
            return time.perf_counter()
        return t0 + index / self.sample_rate

    def index_at(self, t: float) -> int | None:
        """Absolute sample index at perf_counter time ``t``, or None before the first observation."""
        t0 = self._t0
        if t0 is None:
            return None
        return int((t - t0) * self.sample_rate)


class AudioSource(ABC):
    """Interface of every audio source (live device, JACK port, file).

    Life cycle: construct (validates the device or file and raises on bad input), :meth:`start`,
    then :meth:`read` in the consumer's loop, then :meth:`stop` (idempotent; ends any thread the
    source started). Also a context manager (start on enter, stop on exit).

    While running, a live source may lose its device: :attr:`status` becomes
    :attr:`SourceStatus.LOST`, the :attr:`lost` event is set, :meth:`read` returns None instead
    of raising, and the source retries in the background (see LiveSource). Nothing raises into
    the consumer's loop after :meth:`start` returned.
    """

    #: Sleep between polls in a blocking read (seconds).
    poll_interval_s: float = 0.002

    def __init__(self) -> None:
        self._lost_event = threading.Event()

    # ------------------------------------------------------------------ abstract
    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Sample rate of the delivered blocks (Hz, 8000..96000)."""

    @property
    @abstractmethod
    def status(self) -> SourceStatus:
        """Current :class:`SourceStatus`."""

    @property
    @abstractmethod
    def overflows(self) -> int:
        """Samples dropped because the consumer read too slowly (the ring was full)."""

    @abstractmethod
    def start(self) -> None:
        """Start delivering audio. Raises AudioError (or a subclass) if the input cannot open."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and release the device and any thread. Idempotent; never raises.

        The livedance sources take ``timeout`` (seconds, default 1): the most they wait for their thread and for
        the device to close; a close that blocks on a failing device then finishes in the background.
        """

    @abstractmethod
    def _read_now(self, max_frames: int) -> AudioBlock | None:
        """Non-blocking read of what is ready now (at most ``max_frames`` samples)."""

    # ------------------------------------------------------------------ shared
    @property
    def lost(self) -> threading.Event:
        """Set while the device is lost; cleared when it is back. Wait on it or poll is_set()."""
        return self._lost_event

    def read(self, max_frames: int = 4096, timeout: float | None = 0.0) -> AudioBlock | None:
        """Return the next block of at most ``max_frames`` mono samples, or None.

        Args:
            max_frames: the most samples returned (>= 1).
            timeout: 0 (default) never blocks; > 0 waits up to that many seconds for audio;
                None waits until audio arrives or the source stops, finishes or loses its device (the
                caller then sees :attr:`status` LOST and decides; an auto-reconnect goes on meanwhile).

        Returns:
            An :class:`AudioBlock`, or None when nothing arrived in time, the device is lost,
            or the source is stopped / finished. Never raises for device trouble.
        """
        block = self._read_now(max_frames)
        if block is not None or timeout == 0:
            return block
        deadline = None if timeout is None else time.perf_counter() + timeout
        while True:
            status = self.status
            if status in (SourceStatus.STOPPED, SourceStatus.FINISHED) or (
                    deadline is None and status is SourceStatus.LOST):  # (a finite wait may see it come back)
                return self._read_now(max_frames)
            remaining = None if deadline is None else deadline - time.perf_counter()
            if remaining is not None and remaining <= 0:
                return None
            time.sleep(self.poll_interval_s if remaining is None else min(self.poll_interval_s, remaining))
            block = self._read_now(max_frames)
            if block is not None:
                return block

    def __enter__(self) -> AudioSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
