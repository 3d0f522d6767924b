"""Latency calibration: tap-along (as rhythm games do it) and a loopback click (round trip).

**Tap-along** (:class:`TapSession`). A click track at a known tempo plays on the output device; the
user taps a key (Enter or space) on each beat. Each tap's offset is (tap time - nearest beat time),
both on the ``time.perf_counter()`` clock, the beat times being the times PortAudio reports the clicks
reach the DAC (``outputBufferDacTime``). The estimate is what rhythm games (osu!, StepMania, Rock Band)
compute in their offset wizards: drop the first taps (the user is finding the beat), drop outliers by
the median absolute deviation (MAD; Hampel's rule, |x - median| > k * 1.4826 * MAD, Leys et al.
2013, "Detecting outliers: do not use standard deviation around the mean, use absolute deviation
around the median"), and take the median of the rest; the spread is 1.4826 * MAD of the kept taps
(a standard deviation for Gaussian scatter). The result is the output latency PortAudio does not
report, plus the keyboard's delay and the user's own bias. Offsets beyond half a beat period are
ambiguous (the nearest beat is the wrong one), so the tempo must be slow enough: at the default
100 BPM, offsets up to +-300 ms are measured.

With no output device the session prints the beats on the terminal instead ("visual" mode): that
offset is keyboard + display + reaction, useful only as a comparison.

**Loopback** (:func:`measure_loopback`). A full-duplex stream plays a train of short chirps and
records its input at the same time; an audio cable (or a JACK connection) takes the output back to
the input. Since a duplex callback handles output sample n and input sample n together, the lag
between the played and the recorded chirp (found by cross-correlation, the matched filter) is the
round-trip latency in samples, every buffer included. Subtracting what PortAudio reports for the
stream (input + output latency) gives the unreported part.

Times are seconds on the ``time.perf_counter()`` clock unless a name says samples or ms.
"""

from __future__ import annotations

import math
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import numpy as np

from livedance.audio import jack, portaudio
from livedance.audio.base import CaptureClock, validate_sample_rate
from livedance.audio.devices import resolve_device
from livedance.errors import AudioError, ConfigError, DataError

#: Scale from MAD to a standard deviation for Gaussian data (1 / Phi^-1(3/4)).
MAD_TO_SIGMA = 1.4826


# ====================================================================================== tap maths
@dataclass
class TapEstimate:
    """Result of :func:`estimate_tap_offset`.

    Attributes:
        offset_s: median offset of the kept taps, seconds (positive: taps after the beats).
        spread_s: 1.4826 * MAD of the kept offsets, seconds.
        offsets_s: (T,) float64 offset of every tap to its nearest beat, seconds.
        kept: (T,) bool, True for the taps the estimate used.
        n_discarded: taps dropped because they came first (warm-up).
        n_outliers: taps dropped as outliers (MAD rule, or more than half a period off the grid).
    """

    offset_s: float
    spread_s: float
    offsets_s: np.ndarray
    kept: np.ndarray
    n_discarded: int
    n_outliers: int

    @property
    def n_taps(self) -> int:
        """Taps counted."""
        return int(self.offsets_s.shape[0])

    @property
    def n_kept(self) -> int:
        """Taps used for the estimate."""
        return int(self.kept.sum())

    @property
    def offset_ms(self) -> float:
        """``offset_s`` in milliseconds."""
        return self.offset_s * 1000.0

    @property
    def spread_ms(self) -> float:
        """``spread_s`` in milliseconds."""
        return self.spread_s * 1000.0


def nearest_beat_offsets(tap_times_s: Sequence[float], beat_times_s: Sequence[float]) -> np.ndarray:
    """Signed distance of each tap to its nearest beat.

    Args:
        tap_times_s: (T,) tap times, seconds (any clock shared with the beats).
        beat_times_s: (B,) beat times, seconds, sorted ascending, B >= 1.

    Returns:
        (T,) float64 ``tap - nearest beat`` in seconds.

    Raises:
        DataError: no beats, or beats not sorted.
    """
    taps = np.asarray(tap_times_s, dtype=np.float64).reshape(-1)
    beats = np.asarray(beat_times_s, dtype=np.float64).reshape(-1)
    if beats.size == 0:
        raise DataError("nearest_beat_offsets: no beat times given; expected at least one")
    if np.any(np.diff(beats) < 0):
        raise DataError("nearest_beat_offsets: beat times must be sorted ascending")
    if taps.size == 0:
        return np.zeros(0)
    idx = np.clip(np.searchsorted(beats, taps), 1, max(beats.size - 1, 1))
    left = beats[idx - 1]
    right = beats[np.minimum(idx, beats.size - 1)]
    d_left = taps - left
    d_right = taps - right
    return np.where(np.abs(d_left) <= np.abs(d_right), d_left, d_right)


def estimate_tap_offset(
    tap_times_s: Sequence[float],
    beat_times_s: Sequence[float],
    discard_first: int = 4,
    mad_k: float = 3.0,
    min_kept: int = 4,
    mad_floor_s: float = 0.005,
) -> TapEstimate:
    """Tap-along latency as rhythm games compute it (see the module docstring).

    Args:
        tap_times_s: (T,) tap times, seconds, in the order they happened.
        beat_times_s: (B,) beat times on the same clock, seconds, sorted, evenly spaced or not.
        discard_first: taps dropped at the start (warm-up).
        mad_k: outlier threshold in robust standard deviations (k in |x - med| > k * 1.4826 * MAD).
        min_kept: fewest taps the estimate may rest on.
        mad_floor_s: lower bound on 1.4826 * MAD when testing outliers, seconds (so that a run of
            near-identical taps does not flag every small deviation).

    Returns:
        A :class:`TapEstimate`.

    Raises:
        DataError: fewer than ``min_kept`` taps remain (too few taps, or too scattered).
        ConfigError: a negative ``discard_first`` or a non-positive ``mad_k``.
    """
    if discard_first < 0 or not mad_k > 0 or min_kept < 1:
        raise ConfigError(
            f"estimate_tap_offset: need discard_first >= 0, mad_k > 0, min_kept >= 1; got {discard_first}, {mad_k}, {min_kept}"
        )
    beats = np.asarray(beat_times_s, dtype=np.float64).reshape(-1)
    offsets = nearest_beat_offsets(tap_times_s, beats)
    n = offsets.size
    kept = np.ones(n, dtype=bool)
    kept[: min(discard_first, n)] = False
    n_discarded = int(min(discard_first, n))
    # A tap more than half a period from every beat lies off the grid (before the first or after
    # the last beat): it cannot belong to any beat.
    half = 0.5 * float(np.median(np.diff(beats))) if beats.size >= 2 else math.inf
    off_grid = np.abs(offsets) > half
    kept &= ~off_grid
    base = kept.copy()
    for _ in range(2):  # median and MAD of the current set, then once more on the survivors
        if kept.sum() == 0:
            break
        med = float(np.median(offsets[kept]))
        sigma = max(MAD_TO_SIGMA * float(np.median(np.abs(offsets[kept] - med))), mad_floor_s)
        kept = base & (np.abs(offsets - med) <= mad_k * sigma)
    n_kept = int(kept.sum())
    if n_kept < min_kept:
        raise DataError(
            f"only {n_kept} usable taps out of {n} (first {n_discarded} dropped, the rest too scattered); "
            f"expected at least {min_kept}: tap steadily on every beat and try again"
        )
    sel = offsets[kept]
    med = float(np.median(sel))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(sel - med)))
    return TapEstimate(
        offset_s=med,
        spread_s=spread,
        offsets_s=offsets,
        kept=kept,
        n_discarded=n_discarded,
        n_outliers=int(n - n_discarded - n_kept),
    )


# ====================================================================================== tap input
class TapInput(Protocol):
    """Where taps come from."""

    def wait(self, timeout_s: float | None) -> float | None:
        """Wait up to ``timeout_s`` seconds (None: forever) for one tap.

        Returns:
            The tap's time on the session clock (seconds), or None on timeout.

        Raises:
            EOFError: the input ended or the user quit.
        """


class StreamTaps:
    """Taps from a text stream: the terminal (Enter or space; q, Esc or Ctrl-D quits) or a script.

    Three cases, by what ``stream`` offers:

    * a terminal (``isatty()``): switched to cbreak mode (keys arrive without Enter, no echo) until
      :meth:`close`; keys are read one byte at a time from the file descriptor under ``select``, so
      timeouts hold.
    * another file descriptor (a pipe): each line end is a tap (``\n``, ``\r`` or ``\r\n``, counted once; a
      space on the line is not a tap), read under ``select``.
    * no file descriptor (an in-memory stream, as tests use): each ``readline()`` is a tap; it blocks,
      so timeouts are not honoured; an empty read is the end.

    Args:
        stream: the text stream (default ``sys.stdin``).
        clock: the session clock (seconds); read right after a tap arrives.

    Use as a context manager, or call :meth:`close` to restore the terminal.
    """

    _TAP_KEYS = frozenset(b" \n\r")
    _QUIT_KEYS = frozenset(b"qQ\x1b\x04")

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.stream = sys.stdin if stream is None else stream
        self.clock = clock
        self._fd: int | None = None
        self._saved_tty: Any = None
        self._prev_byte = -1  # the last byte read from a pipe (a \n right after a \r ends the same line)
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        self._fd = fd
        if fd is not None and self._isatty():
            import termios
            import tty

            self._saved_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)

    def _isatty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):
            return False

    def wait(self, timeout_s: float | None) -> float | None:
        """See :meth:`TapInput.wait`."""
        if self._fd is None:
            line = self.stream.readline()
            if line == "" or line.strip().lower() == "q":
                raise EOFError
            return self.clock()
        deadline = None if timeout_s is None else time.perf_counter() + max(timeout_s, 0.0)
        while True:
            remaining = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                return None
            data = os.read(self._fd, 1)
            t = self.clock()
            if not data:
                raise EOFError
            if data[0] in self._QUIT_KEYS:
                raise EOFError
            if self._saved_tty is not None:
                if data[0] in self._TAP_KEYS:
                    return t
            else:  # a pipe: a line end is a tap, whether \n, \r or \r\n (the \n after a \r is the same line end)
                prev, self._prev_byte = self._prev_byte, data[0]
                if data[0] == 13 or (data[0] == 10 and prev != 13):
                    return t
            if deadline is not None and time.perf_counter() >= deadline:
                return None

    def close(self) -> None:
        """Restore the terminal mode (idempotent)."""
        if self._saved_tty is not None and self._fd is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None

    def __enter__(self) -> StreamTaps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ====================================================================================== click output
class ClickPlayer(Protocol):
    """Plays a click track and tells when its first sample reached the DAC."""

    label: str
    sample_rate: int

    def start(self, audio: np.ndarray) -> None:
        """Start playing ``audio`` ((N,) float32 mono at :attr:`sample_rate`) once."""

    def first_sample_time(self) -> float | None:
        """perf_counter seconds at which sample 0 reached the DAC (as reported), None before any callback."""

    def stop(self) -> None:
        """Stop and release the device (idempotent)."""


class SoundDevicePlayer:
    """Plays a mono signal on a PortAudio output device and timestamps it like :class:`FileSource` does.

    Each output callback observes ``sample index -> perf_counter + (outputBufferDacTime - currentTime)``
    in a :class:`~livedance.audio.base.CaptureClock` (a lower-envelope filter), so the time of sample 0
    is known to a fraction of a millisecond once a few callbacks have run.

    Args:
        device: output device spec (index, name, ``"jack:system"``; None: the default output).
        sample_rate: Hz; None takes the device's default.
        block_size: frames per callback.
        latency: PortAudio's suggested latency ("low", "high" or seconds).
        stream_factory: replaces ``sounddevice.OutputStream`` (tests).
        devices: the device list to resolve ``device`` in (tests); None asks PortAudio.

    Raises:
        DeviceNotFoundError: no output device matches ``device``.
        AudioError: PortAudio is missing.
    """

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int | None = None,
        block_size: int = 256,
        latency: str | float = "low",
        stream_factory: Callable[..., Any] | None = None,
        devices: Sequence[Any] | None = None,
    ) -> None:
        self.device = resolve_device(device, "output", devices)
        self.label = self.device.label()
        sr = self.device.default_samplerate if sample_rate is None else sample_rate
        self.sample_rate = validate_sample_rate(sr, self.label)
        self.block_size = int(block_size)
        self.latency = latency
        self._factory = stream_factory
        self._stream: Any = None
        self._audio = np.zeros(0, np.float32)
        self._pos = 0
        self._clock: CaptureClock | None = None
        self._channels = max(1, min(2, int(self.device.max_output_channels)))

    def start(self, audio: np.ndarray) -> None:
        """Open the stream and start playing ``audio`` (mono float32) on every output channel.

        Raises:
            AudioError: the stream cannot open.
        """
        self._audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        self._pos = 0
        self._clock = CaptureClock(self.sample_rate)
        factory = self._factory or portaudio.import_sounddevice().OutputStream
        self._stream = portaudio.open_stream(
            factory,
            f"output device {self.label} to play clicks at {self.sample_rate} Hz",
            device=self.device.index,
            samplerate=self.sample_rate,
            blocksize=self.block_size,
            channels=self._channels,
            dtype="float32",
            latency=self.latency,
            callback=self._callback,
        )

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio output callback: copy the next ``frames`` samples to every channel (silence after the
        end) and note when the first of them reaches the DAC. No allocation, no locks."""
        now = time.perf_counter()
        first = self._pos
        chunk = self._audio[first : first + frames]
        outdata[: chunk.shape[0]] = chunk[:, None]
        outdata[chunk.shape[0] :] = 0.0
        self._pos = first + frames
        self._clock.observe(first, now + portaudio.output_lead_s(time_info))

    def first_sample_time(self) -> float | None:
        """perf_counter seconds of sample 0 at the DAC, or None before the first callback."""
        return None if self._clock is None else self._clock.t0

    def stop(self) -> None:
        """Stop and close the stream (idempotent, never raises)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            portaudio.close_stream(stream, ("stop", "close"))


# ====================================================================================== tap session
@dataclass
class TapConfig:
    """Settings of a tap-along run.

    Attributes:
        bpm: click tempo, beats per minute (30..600; above 300 only offsets under 100 ms are measurable); offsets up
            to half a period are measurable.
        beats: clicks played (>= discard_first + min_kept).
        lead_in_s: silence before the first click, seconds.
        discard_first: first taps dropped (warm-up).
        mad_k: MAD outlier threshold (robust standard deviations).
        min_kept: fewest usable taps for a result.
        accent_every: clicks per bar; the first of each bar is higher pitched (0: no accent).
    """

    bpm: float = 100.0
    beats: int = 32
    lead_in_s: float = 2.0
    discard_first: int = 4
    mad_k: float = 3.0
    min_kept: int = 6
    accent_every: int = 4

    @property
    def period_s(self) -> float:
        """Beat period, seconds."""
        return 60.0 / self.bpm

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if not (math.isfinite(self.bpm) and 30.0 <= self.bpm <= 600.0):
            raise ConfigError(f"--bpm must be 30..600 beats per minute, got {self.bpm}")
        if self.beats < self.discard_first + self.min_kept:
            raise ConfigError(
                f"--beats must be at least {self.discard_first + self.min_kept} (warm-up taps {self.discard_first} "
                f"+ usable taps {self.min_kept}), got {self.beats}"
            )
        if not (math.isfinite(self.lead_in_s) and 0.0 <= self.lead_in_s <= 30.0):
            raise ConfigError(f"--lead-in must be 0..30 seconds, got {self.lead_in_s}")
        if self.discard_first < 0 or not self.mad_k > 0 or self.min_kept < 1:
            raise ConfigError(
                f"TapConfig: need discard_first >= 0, mad_k > 0, min_kept >= 1; got "
                f"{self.discard_first}, {self.mad_k}, {self.min_kept}"
            )

    def beat_offsets_s(self) -> np.ndarray:
        """(beats,) float64 beat times relative to the start of the click track, seconds."""
        return self.lead_in_s + self.period_s * np.arange(self.beats)


@dataclass
class TapRun:
    """Everything a tap-along run produced.

    Attributes:
        estimate: the :class:`TapEstimate`.
        tap_times_s: (T,) tap times, session clock seconds.
        beat_times_s: (B,) beat times, session clock seconds.
        mode: ``"audio"`` or ``"visual"``.
        device: the output device label ("" in visual mode).
    """

    estimate: TapEstimate
    tap_times_s: np.ndarray
    beat_times_s: np.ndarray
    mode: str
    device: str = ""


#: Audio tap sessions wait this long (s) after the last click as heard plus one beat, for taps that come late by the
#: latency being measured (a Bluetooth output can add 0.2-0.3 s).
TAP_TAIL_S = 0.5


@dataclass
class TapSession:
    """One tap-along run: play (or print) the beats, collect taps, estimate the offset.

    Attributes:
        config: :class:`TapConfig`.
        taps: the :class:`TapInput` (e.g. :class:`StreamTaps` on the terminal).
        player: a :class:`ClickPlayer`, or None for visual mode (beats printed through ``echo``).
        clock: the session clock, seconds (``time.perf_counter`` for real runs; the player's times
            are on perf_counter, so a player needs the default clock).
        echo: where instructions and beat marks go (one line per call).
    """

    config: TapConfig
    taps: TapInput
    player: ClickPlayer | None = None
    clock: Callable[[], float] = time.perf_counter
    echo: Callable[[str], None] = field(default=print)

    def click_audio(self, sample_rate: int) -> np.ndarray:
        """(N,) float32 click track: lead-in silence, ``beats`` clicks, one period of tail."""
        from livedance.beats.clicks import click_track

        cfg = self.config
        duration = cfg.lead_in_s + cfg.period_s * (cfg.beats + 0.5)
        audio, _ = click_track(
            cfg.bpm, duration, sample_rate, start_s=cfg.lead_in_s, accent_every=cfg.accent_every
        )
        cut = int(round((cfg.lead_in_s + cfg.period_s * (cfg.beats - 0.5)) * sample_rate))
        audio[cut:] = 0.0  # exactly `beats` clicks
        return audio

    def run(self) -> TapRun:
        """Run the session (blocks for about lead_in + beats * period seconds).

        Returns:
            A :class:`TapRun`.

        Raises:
            DataError: too few usable taps.
            AudioError: the player never started (no output callback arrived).
        """
        cfg = self.config
        cfg.validate()
        rel = cfg.beat_offsets_s()
        visual = self.player is None
        n = cfg.beats
        if visual:
            self.echo(
                f"Tap Enter (or space) on each beat mark; {n} beats at {cfg.bpm:g} BPM, the first "
                f"{cfg.discard_first} are warm-up. q quits."
            )
        else:
            self.echo(
                f"Tap Enter (or space) on each click you hear; {n} clicks at {cfg.bpm:g} BPM on "
                f"{self.player.label}, the first {cfg.discard_first} are warm-up. q quits."
            )
        t_start = self.clock()
        if not visual:
            self.player.start(self.click_audio(self.player.sample_rate))
        beats_guess = t_start + rel
        end = beats_guess[-1] + cfg.period_s
        heard_from: float | None = None  # audio mode: when the first sample reached the DAC, once known
        taps: list[float] = []
        next_mark = 0
        try:
            while True:
                now = self.clock()
                if not visual and heard_from is None:
                    heard_from = self.player.first_sample_time()
                    if heard_from is not None:  # the clicks are heard from then on, not from t_start: wait for
                        end = max(end, heard_from + rel[-1] + cfg.period_s + TAP_TAIL_S)  # the last taps
                if visual:
                    while next_mark < n and now >= beats_guess[next_mark]:
                        accent = cfg.accent_every > 0 and next_mark % cfg.accent_every == 0
                        self.echo(f"{'BEAT' if accent else 'beat'} {next_mark + 1:3d}/{n}")
                        next_mark += 1
                if now >= end:
                    break
                timeout = end - now
                if visual and next_mark < n:
                    timeout = min(timeout, beats_guess[next_mark] - now)
                try:
                    t = self.taps.wait(max(timeout, 0.0))
                except EOFError:
                    break
                if t is not None:
                    taps.append(t)
        finally:
            if not visual:
                self.player.stop()
        if visual:
            beats = beats_guess
        else:
            t0 = self.player.first_sample_time()
            if t0 is None:
                raise AudioError(f"output device {self.player.label} never asked for audio: no clicks were played")
            beats = t0 + rel
        est = estimate_tap_offset(
            taps, beats, discard_first=cfg.discard_first, mad_k=cfg.mad_k, min_kept=cfg.min_kept
        )
        return TapRun(
            estimate=est,
            tap_times_s=np.asarray(taps, dtype=np.float64),
            beat_times_s=np.asarray(beats, dtype=np.float64),
            mode="visual" if visual else "audio",
            device="" if visual else self.player.label,
        )


# ====================================================================================== loopback
@dataclass
class LoopbackConfig:
    """Settings of a loopback measurement.

    Attributes:
        clicks: chirps played (>= 3; the median of their lags is the result).
        interval_s: time between chirps, seconds; must exceed ``max_latency_s`` + the chirp.
        lead_in_s: silence before the first chirp, seconds (counted from when the loop is wired).
        max_latency_s: longest round trip searched, seconds.
        chirp_s: chirp length, seconds.
        chirp_hz: (start, end) chirp frequencies, Hz (clipped below Nyquist).
        amplitude: chirp peak amplitude (0..1).
        sample_rate: Hz; None takes the output device's default.
        block_size: frames per callback (0: PortAudio's choice).
        latency: PortAudio's suggested latency ("low", "high" or seconds).
        min_snr: a chirp counts as found when its correlation peak is at least this many times the
            median correlation magnitude in its search window.
    """

    clicks: int = 8
    interval_s: float = 0.5
    lead_in_s: float = 0.5
    max_latency_s: float = 0.4
    chirp_s: float = 0.005
    chirp_hz: tuple[float, float] = (300.0, 8000.0)
    amplitude: float = 0.5
    sample_rate: int | None = None
    block_size: int = 256
    latency: str | float = "low"
    min_snr: float = 8.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if self.clicks < 3:
            raise ConfigError(f"LoopbackConfig.clicks must be >= 3, got {self.clicks}")
        if not (0.0 < self.max_latency_s and self.max_latency_s + self.chirp_s < self.interval_s):
            raise ConfigError(
                f"LoopbackConfig: need 0 < max_latency_s + chirp_s < interval_s, got "
                f"{self.max_latency_s} + {self.chirp_s} vs {self.interval_s} s"
            )
        if not (0.0 < self.amplitude <= 1.0):
            raise ConfigError(f"LoopbackConfig.amplitude must be in (0, 1], got {self.amplitude}")
        if self.lead_in_s < 0 or self.chirp_s <= 0:
            raise ConfigError(f"LoopbackConfig: lead_in_s >= 0 and chirp_s > 0 required, got {self.lead_in_s}, {self.chirp_s}")


@dataclass
class LoopbackEstimate:
    """What a loopback measurement found.

    Attributes:
        lags_samples: (K,) int64 round trip of each chirp found, samples.
        snr: (K,) float64 correlation peak / median magnitude of each chirp found.
        clicks_played: chirps played.
        sample_rate: Hz.
        reported_s: PortAudio's reported input + output latency of the stream, seconds (NaN if unknown).
        output_device, input_device: device labels.
    """

    lags_samples: np.ndarray
    snr: np.ndarray
    clicks_played: int
    sample_rate: int
    reported_s: float = float("nan")
    output_device: str = ""
    input_device: str = ""

    @property
    def round_trip_samples(self) -> int:
        """Median lag, samples."""
        return int(np.round(np.median(self.lags_samples)))

    @property
    def round_trip_s(self) -> float:
        """Median lag, seconds."""
        return float(np.median(self.lags_samples)) / self.sample_rate

    @property
    def spread_s(self) -> float:
        """max - min lag, seconds."""
        return float(np.ptp(self.lags_samples)) / self.sample_rate

    @property
    def extra_s(self) -> float:
        """round_trip_s - reported_s: the latency PortAudio does not report, seconds (NaN if unknown)."""
        return self.round_trip_s - self.reported_s


def chirp(sample_rate: int, duration_s: float, f0: float, f1: float, amplitude: float) -> np.ndarray:
    """A Hann-windowed linear chirp: a short broadband probe with a sharp autocorrelation peak.

    Args:
        sample_rate: Hz. duration_s: seconds. f0, f1: start and end frequency, Hz (f1 clipped to
        0.45 * sample_rate). amplitude: peak value.

    Returns:
        (M,) float32, M = max(8, round(duration_s * sample_rate)).
    """
    from scipy.signal import chirp as _chirp

    m = max(8, int(round(duration_s * sample_rate)))
    t = np.arange(m) / sample_rate
    f1 = min(f1, 0.45 * sample_rate)
    sig = _chirp(t, f0=f0, t1=t[-1], f1=f1, method="linear") * np.hanning(m)
    return (amplitude * sig / np.max(np.abs(sig))).astype(np.float32)


def loopback_signal(config: LoopbackConfig, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probe signal of a loopback run.

    Returns:
        (signal (N,) float32, starts (K,) int64 sample index of each chirp, template (M,) float32),
        with N covering the lead-in, K chirps ``interval_s`` apart, and one interval of tail.
    """
    config.validate()
    tpl = chirp(sample_rate, config.chirp_s, config.chirp_hz[0], config.chirp_hz[1], config.amplitude)
    starts = (np.round((config.lead_in_s + config.interval_s * np.arange(config.clicks)) * sample_rate)).astype(np.int64)
    n = int(round((config.lead_in_s + config.interval_s * (config.clicks + 1)) * sample_rate))
    sig = np.zeros(n, np.float32)
    for s in starts:
        sig[s : s + tpl.size] = tpl
    return sig, starts, tpl


def estimate_round_trip(
    recording: np.ndarray,
    starts: np.ndarray,
    template: np.ndarray,
    max_lag: int,
    min_snr: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Find each played chirp in the recording by cross-correlation (a matched filter).

    Args:
        recording: (N,) float input samples, aligned with the played signal (sample n of both was
            handled in the same duplex callback).
        starts: (K,) sample index of each played chirp.
        template: (M,) the chirp.
        max_lag: largest lag searched, samples.
        min_snr: peak / median |correlation| a chirp needs to count as found.

    Returns:
        (lags (K',) int64 samples, snr (K',) float64) for the K' <= K chirps found, in order.
    """
    from scipy.signal import correlate

    rec = np.asarray(recording, dtype=np.float64).reshape(-1)
    tpl = np.asarray(template, dtype=np.float64).reshape(-1)
    lags: list[int] = []
    snrs: list[float] = []
    for s in np.asarray(starts, dtype=np.int64):
        seg = rec[s : s + max_lag + tpl.size]
        if seg.size < tpl.size:
            continue
        corr = np.abs(correlate(seg, tpl, mode="valid", method="auto"))
        k = int(np.argmax(corr))
        peak = float(corr[k])
        floor = float(np.median(corr))
        snr = peak / floor if floor > 0 else (math.inf if peak > 0 else 0.0)
        if peak > 1e-6 and snr >= min_snr:
            lags.append(k)
            snrs.append(snr)
    return np.asarray(lags, dtype=np.int64), np.asarray(snrs, dtype=np.float64)


def _jack_self_connect(client: str) -> list[tuple[str, str]]:
    """Connect ``client``'s JACK output ports to its input ports, pairwise; unhook other inputs."""
    outs = sorted((p for p in jack.list_ports("output") if p.startswith(client + ":")), key=jack.port_number)
    ins = sorted((p for p in jack.list_ports("input") if p.startswith(client + ":")), key=jack.port_number)
    if not outs or not ins:
        raise AudioError(f"JACK client {client!r} has no output or no input ports to connect in a loop")
    made = []
    conns = jack.connections()
    for dst in ins:
        for src in conns.get(dst, []):
            jack.disconnect(src, dst)
    for i, dst in enumerate(ins):
        src = outs[min(i, len(outs) - 1)]
        jack.connect(src, dst)
        made.append((src, dst))
    return made


def measure_loopback(
    output: int | str | None = None,
    input: int | str | None = None,  # noqa: A002 - mirrors the CLI option
    config: LoopbackConfig | None = None,
    jack_loop: bool = False,
    stream_factory: Callable[..., Any] | None = None,
    devices: Sequence[Any] | None = None,
    timeout_s: float | None = None,
) -> LoopbackEstimate:
    """Measure the round-trip latency output -> input with a train of chirps (a full-duplex stream).

    Args:
        output, input: device specs (index, name, ``"jack:system"``; None: the defaults). Both must
            be on the same host API (PortAudio full duplex).
        config: :class:`LoopbackConfig`.
        jack_loop: the devices are JACK devices: connect this stream's own JACK output ports to its
            own input ports (a software loop through the JACK graph, no cable needed).
        stream_factory: replaces ``sounddevice.Stream`` (tests).
        devices: the device list to resolve the specs in (tests); None asks PortAudio.
        timeout_s: give up after this long (default: the signal's length + 5 s).

    Returns:
        A :class:`LoopbackEstimate`.

    Raises:
        DeviceNotFoundError: a device spec matches nothing.
        AudioError: the stream cannot open, the callback stalls, or fewer than half the chirps came
            back (nothing connects the output to the input, or the input level is too low).
        ConfigError: a bad config.
    """
    cfg = config or LoopbackConfig()
    cfg.validate()
    dev_out = resolve_device(output, "output", devices)
    dev_in = resolve_device(input, "input", devices)
    sr = validate_sample_rate(cfg.sample_rate or dev_out.default_samplerate, dev_out.label())
    sig, starts, tpl = loopback_signal(cfg, sr)
    n = sig.size
    rec = np.zeros(n, np.float32)
    pos = [0]
    done = threading.Event()
    in_ch = max(1, min(2, int(dev_in.max_input_channels)))
    out_ch = max(1, min(2, int(dev_out.max_output_channels)))

    armed = threading.Event()  # set once the loop is wired (JACK connections made): the probe starts

    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if not armed.is_set():
            outdata[:] = 0.0
            return
        p = pos[0]
        k = max(0, min(frames, n - p))
        if k:
            outdata[:k] = sig[p : p + k, None]
            np.mean(indata[:k], axis=1, out=rec[p : p + k])  # into the preallocated recording
        outdata[k:] = 0.0
        pos[0] = p + frames
        if pos[0] >= n:
            done.set()

    factory = stream_factory or portaudio.import_sounddevice().Stream
    stream = portaudio.open_stream(
        factory,
        f"a duplex stream (in: {dev_in.label()}, out: {dev_out.label()}) at {sr} Hz",
        device=(dev_in.index, dev_out.index),
        samplerate=sr,
        blocksize=cfg.block_size,
        channels=(in_ch, out_ch),
        dtype="float32",
        latency=cfg.latency,
        callback=callback,
    )
    try:
        if jack_loop:
            client = portaudio.jack_client_name() if stream_factory is None else "fake"
            if client is None:
                raise AudioError("--jack-loop: PortAudio has no JACK client (is the device a JACK device?)")
            if stream_factory is None:
                _jack_self_connect(client)
        armed.set()
        limit = n / sr + 5.0 if timeout_s is None else timeout_s
        if not done.wait(limit):
            raise AudioError(
                f"the duplex stream (in: {dev_in.label()}, out: {dev_out.label()}) delivered {pos[0]} of {n} "
                f"samples in {limit:.1f} s: the audio callback stalled"
            )
        try:
            lat = stream.latency
            reported = float(lat[0]) + float(lat[1]) if isinstance(lat, (tuple, list)) else float("nan")
        except Exception:
            reported = float("nan")
    finally:
        portaudio.close_stream(stream, ("stop", "close"))
    lags, snr = estimate_round_trip(rec, starts, tpl, int(round(cfg.max_latency_s * sr)), cfg.min_snr)
    if lags.size < max(3, (cfg.clicks + 1) // 2):
        peak = float(np.max(np.abs(rec))) if rec.size else 0.0
        raise AudioError(
            f"only {lags.size} of {cfg.clicks} clicks came back on input {dev_in.label()} (input peak "
            f"{peak:.3g}): connect output {dev_out.label()} to that input (cable, or --jack-loop on JACK) "
            "and raise the input level"
        )
    return LoopbackEstimate(
        lags_samples=lags,
        snr=snr,
        clicks_played=cfg.clicks,
        sample_rate=sr,
        reported_s=reported,
        output_device=dev_out.label(),
        input_device=dev_in.label(),
    )


__all__ = [
    "MAD_TO_SIGMA",
    "ClickPlayer",
    "LoopbackConfig",
    "LoopbackEstimate",
    "SoundDevicePlayer",
    "StreamTaps",
    "TapConfig",
    "TapEstimate",
    "TapInput",
    "TapRun",
    "TapSession",
    "chirp",
    "estimate_round_trip",
    "estimate_tap_offset",
    "loopback_signal",
    "measure_loopback",
    "nearest_beat_offsets",
]
