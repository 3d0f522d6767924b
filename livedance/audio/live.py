"""Live audio input from a sound card, USB interface or JACK port (sounddevice / PortAudio).

The PortAudio callback only copies the block into a :class:`~livedance.audio.ring.RingBuffer`
and notes the time; the mono mixdown happens on the reader's side. A monitor thread (started by
:meth:`LiveSource.start`, ended by :meth:`LiveSource.stop`) watches the stream and declares the
device *lost* when PortAudio ends the stream unexpectedly, marks it inactive, or when no callback
arrives for ``watchdog_s``. While lost, :meth:`LiveSource.read` returns None (it never raises) and
the monitor retries with exponential backoff until the device is back (automatic reconnect can be
turned off; :meth:`LiveSource.reconnect` then retries on demand). Samples missed while the device
was away appear as a gap in the blocks' sample indices, so the stream clock keeps tracking time.
A stream is closed on a short-lived daemon thread (a close can block on a failing device): the monitor
never waits for a lost one, and :meth:`LiveSource.stop` waits at most its ``timeout``.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from livedance.audio import portaudio
from livedance.audio.base import (
    FALLBACK_SAMPLE_RATE,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioBlock,
    AudioSource,
    CaptureClock,
    SourceStatus,
    validate_sample_rate,
)
from livedance.audio.devices import DeviceInfo, DeviceLister, list_devices, resolve_device
from livedance.audio.ring import RingBuffer
from livedance.data.audio_io import to_mono
from livedance.errors import AudioError, ConfigError, DeviceNotFoundError

_ALSA_CARD = re.compile(r"\s*\(hw:\d+,\d+\)$")


def alsa_base_name(name: str) -> str:
    """A PortAudio device name without ALSA's trailing card and device numbers: ``"USB Audio CODEC: - (hw:2,0)"``
    -> ``"USB Audio CODEC: -"``; other names are returned unchanged."""
    return _ALSA_CARD.sub("", name)


#: A factory with sounddevice.InputStream's keyword signature (tests pass a fake one).
StreamFactory = Callable[..., Any]


def _is_active(stream: Any) -> bool:
    try:
        return bool(stream.active)
    except Exception:
        return False


class LiveSource(AudioSource):
    """Audio from an input device, delivered as mono float32 :class:`AudioBlock` s.

    Args:
        device: None (default input), a PortAudio index, a name (case-insensitive substring) or
            "<hostapi>:<name>" such as "jack:system" (see :mod:`livedance.audio.devices`).
        sample_rate: Hz; None takes the device's default rate (a JACK device only runs at the
            server's rate), or 48000 when that lies outside 8000..96000 (e.g. a 192 kHz interface).
            Must lie in 8000..96000; the consumer resamples.
        block_size: frames per PortAudio callback (16..16384; 512 = 11.6 ms at 44.1 kHz).
        channels: input channels to open and mix down (averaged) to mono; None opens
            min(2, the device's input channels).
        input_channels: listen to these channels only, numbered from 1 as on the interface (e.g. ``(3, 4)`` for a
            line in on inputs 3-4, or ``(1,)`` for a mic on input 1 of a 2-input interface, which averaging with an
            empty input 2 would make 6 dB quieter); they are averaged to mono. The stream opens channels 1 to
            max(input_channels). None: ``channels``.
        ring_seconds: seconds of audio the ring holds before it drops (and counts) samples.
        watchdog_s: the device counts as lost after this long without a callback; None takes
            max(20 blocks, 1 s).
        auto_reconnect: retry a lost device in the background (backoff ``backoff_s`` = (first,
            longest) wait in seconds, doubling). A JACK device whose server went away is tried
            once only: PortAudio cannot re-attach to a restarted JACK server in-process.
        latency: PortAudio's suggested latency ("low", "high" or seconds).
        rescan_on_reconnect: let a reconnect rebuild PortAudio's device list (needed to find a
            re-plugged device; it closes all other PortAudio streams of the process).
        device_lister: returns the device list to search (default: ask PortAudio).
        stream_factory: builds the input stream with sounddevice.InputStream's keywords
            (default: sounddevice.InputStream). Tests inject a fake stream here.

    Raises:
        DeviceNotFoundError: no input device matches ``device`` (the message lists them).
        AudioError: an unsupported sample rate or channel count, or an input channel the device does not have.
        ConfigError: a bad block size, ring size, watchdog or backoff; ``input_channels`` empty, repeated or given
            with a ``channels`` that does not cover them.
    """

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int | None = None,
        block_size: int = 512,
        channels: int | None = None,
        *,
        input_channels: Sequence[int] | None = None,
        ring_seconds: float = 10.0,
        watchdog_s: float | None = None,
        auto_reconnect: bool = True,
        backoff_s: tuple[float, float] = (0.5, 5.0),
        latency: str | float = "low",
        rescan_on_reconnect: bool = True,
        device_lister: DeviceLister | None = None,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        super().__init__()
        if not 16 <= int(block_size) <= 16384:
            raise ConfigError(f"block_size must be 16..16384 frames, got {block_size}")
        if not (math.isfinite(ring_seconds) and ring_seconds > 0) or (
                watchdog_s is not None and not (math.isfinite(watchdog_s) and watchdog_s > 0)):
            raise ConfigError(f"ring_seconds and watchdog_s must be finite and > 0 seconds, got {ring_seconds}, "
                              f"{watchdog_s}")
        if not (math.isfinite(backoff_s[0]) and math.isfinite(backoff_s[1]) and 0 < backoff_s[0] <= backoff_s[1]):
            raise ConfigError(f"backoff_s must be (first, longest) with 0 < first <= longest, got {backoff_s}")
        self._spec = device
        self._custom_lister = device_lister is not None
        self._lister: DeviceLister = device_lister or list_devices
        self._stream_factory = stream_factory
        self._device = self._resolve(device)
        self._known_names = self._device_names()  # the names listed when the device was opened (see _find_again)
        self._reopen_failed = False
        what = f"input device {self._device.label()}"
        rate = self._device.default_samplerate if sample_rate is None else sample_rate
        if sample_rate is None and not self._device.is_jack and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            rate = FALLBACK_SAMPLE_RATE  # e.g. a 192 kHz interface: ask it for 48 kHz (PortAudio says if it can't)
        self._sr = validate_sample_rate(rate, what, "pass a sample rate the device supports, e.g. 48000"
                                        + (" (a JACK device runs at its server's rate: restart jackd with -r 48000)"
                                           if self._device.is_jack else ""))
        max_in = self._device.max_input_channels
        self._pick: np.ndarray | None = None  # 0-based columns averaged to mono (None: all opened)
        if input_channels is not None:
            if isinstance(input_channels, (str, bytes)) or not all(
                    isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in input_channels):
                raise ConfigError(f"{what}: input_channels must be channel numbers from 1, e.g. (3, 4); got "
                                  f"{input_channels!r}")
            picked = [int(c) for c in input_channels]
            if not picked or len(set(picked)) != len(picked):
                raise ConfigError(f"{what}: input_channels must list distinct channel numbers, got {input_channels}")
            bad = [c for c in picked if not 1 <= c <= max_in]
            if bad:
                raise AudioError(f"{what} has input channels 1..{max_in}; input channel(s) {bad} do not exist")
            if channels is not None and int(channels) < max(picked):
                raise ConfigError(f"{what}: channels={channels} does not open input channel {max(picked)}; leave "
                                  "channels out with input_channels")
            self._pick = np.asarray(sorted(c - 1 for c in picked), dtype=np.intp)
            channels = max(picked) if channels is None else channels
        self._channels = min(2, max_in) if channels is None else int(channels)
        if not 1 <= self._channels <= max_in:
            raise AudioError(f"{what}: channels must be 1..{max_in}, got {channels}")
        self._block = int(block_size)
        self._latency = latency
        self._watchdog_s = float(watchdog_s) if watchdog_s is not None else max(20 * self._block / self._sr, 1.0)
        self._auto_reconnect = bool(auto_reconnect)
        self._backoff = (float(backoff_s[0]), float(backoff_s[1]))
        self._rescan = bool(rescan_on_reconnect)
        self._ring = RingBuffer(max(int(ring_seconds * self._sr), 4 * self._block), self._channels)
        self._clock = CaptureClock(self._sr)
        self._ctl = threading.RLock()  # control paths only (start/stop/lost/reconnect), never the callback
        self._status = SourceStatus.STOPPED
        self._stream: Any = None
        self._gen = 0  # stream generation; callbacks of older streams are ignored
        self._stop_evt = threading.Event()  # one per start(): its monitor thread ends when it is set
        self._monitor_thread: threading.Thread | None = None
        self._closing: threading.Thread | None = None  # a lost stream's close still under way
        self._finished_unexpectedly = False
        self._last_cb = 0.0
        self._callbacks = 0
        self._xruns = 0
        self._resync = False  # set when a stream opens: its first callback re-anchors the sample indices
        self._lost_count = 0
        self._reconnects = 0
        self._attempts = 0
        self.last_error: str | None = None
        """Why the device was last lost or why the last reconnect failed (None if never)."""

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        """Hz of the delivered blocks (the device's rate)."""
        return self._sr

    @property
    def channels(self) -> int:
        """Input channels opened (1..channels; all are mixed down to mono unless :attr:`input_channels` picks)."""
        return self._channels

    @property
    def input_channels(self) -> tuple[int, ...]:
        """The channels averaged to mono, numbered from 1."""
        return tuple(range(1, self._channels + 1)) if self._pick is None else tuple(int(c) + 1 for c in self._pick)

    @property
    def block_size(self) -> int:
        """Frames per PortAudio callback."""
        return self._block

    @property
    def device(self) -> DeviceInfo:
        """The device in use (after a reconnect, its possibly new index)."""
        return self._device

    @property
    def status(self) -> SourceStatus:
        """STOPPED, RUNNING or LOST."""
        return self._status

    @property
    def overflows(self) -> int:
        """Samples dropped because the reader fell more than ``ring_seconds`` behind."""
        return self._ring.overflows

    @property
    def xruns(self) -> int:
        """Callbacks in which PortAudio reported an input overflow (samples lost before us)."""
        return self._xruns

    @property
    def lost_count(self) -> int:
        """How many times the device was lost."""
        return self._lost_count

    @property
    def reconnects(self) -> int:
        """How many times a lost device was reopened."""
        return self._reconnects

    @property
    def reconnect_attempts(self) -> int:
        """Reopen attempts so far, failed ones included."""
        return self._attempts

    @property
    def callbacks(self) -> int:
        """Audio callbacks received (all streams)."""
        return self._callbacks

    # ------------------------------------------------------------------ device lookup
    def _resolve(self, spec: int | str | None) -> DeviceInfo:
        try:
            return resolve_device(spec, "input", self._lister() if self._custom_lister else None)
        except DeviceNotFoundError:
            # A device plugged in (or a JACK server started) after PortAudio started is only seen
            # after a rescan; nothing of ours is open yet.
            if self._custom_lister or spec is None or portaudio.jack_is_dead():
                raise
            portaudio.rescan()
            return resolve_device(spec, "input", None)

    def _device_names(self) -> set[str]:
        """Names of the devices listed now (empty if the list cannot be read)."""
        try:
            return {d.name for d in self._lister()}
        except Exception:  # noqa: BLE001 - PortAudio trouble: no names, the exact-name match still works
            return set()

    def _find_again(self) -> DeviceInfo:
        """The same device (name and host API) in a fresh list; its index may have changed, and so may the card
        number in an ALSA name (:func:`alsa_base_name`), when a re-plugged USB interface comes back as another card.
        Only a name that was not in the list when the device was opened counts as the re-plugged card (a twin
        interface plugged in all along is another performer's input). PortAudio's list is cached: it is rebuilt
        when the device is not in it, and after a reopen of the device found in it failed (a stale entry)."""
        old = self._device

        def search() -> DeviceInfo | None:
            fits = [d for d in self._lister() if d.hostapi == old.hostapi and d.max_input_channels >= self._channels]
            for d in fits:
                if d.name == old.name:
                    return d
            for d in fits:  # ALSA names end in the card number, "(hw:1,0)", which a re-plug may change
                if alsa_base_name(d.name) == alsa_base_name(old.name) and d.name not in self._known_names:
                    return d
            return None

        can_rescan = self._rescan and not self._custom_lister and not portaudio.jack_is_dead()
        if can_rescan and self._reopen_failed:
            portaudio.rescan()
        found = search()
        if found is None and can_rescan and not self._reopen_failed:
            portaudio.rescan()
            found = search()
        if found is None:
            raise DeviceNotFoundError(f"input device {old.name!r} ({old.hostapi}) is not back yet")
        return found

    # ------------------------------------------------------------------ audio thread
    def _callback(self, gen: int, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio callback: copy into the ring, note the time. No allocation of sample
        buffers, no locks, no logging."""
        if gen != self._gen:
            return
        now = time.perf_counter()
        ring = self._ring
        lag = frames / self._sr
        try:
            adc = time_info.inputBufferAdcTime
            cur = time_info.currentTime
            if adc > 0.0 and cur > 0.0 and lag <= cur - adc < 1.0:
                lag = cur - adc
        except AttributeError:
            pass
        if status:
            self._xruns += 1
        if self._resync or status:  # (any PortAudio flag: the overflow one, or a host API that sets another)
            # The first block of a (re)opened stream, or one after PortAudio dropped input: the samples the
            # device did not deliver (while the stream opened, or in the overflow) become a gap in the indices,
            # so the stream clock stays on time and the reader sees the loss (int / float arithmetic only).
            self._resync = False
            due = self._clock.index_at(now - lag)
            if due is not None and due - ring.write_index > frames // 2:
                ring.skip(due - ring.write_index)
        first = ring.write_index
        self._clock.observe(first, now - lag)  # before the write: a reader that sees the samples sees their time
        ring.write(indata)
        self._last_cb = now
        self._callbacks += 1

    def _on_finished(self, gen: int) -> None:
        if gen == self._gen and self._status is SourceStatus.RUNNING:
            self._finished_unexpectedly = True

    # ------------------------------------------------------------------ stream control
    def _open_and_start(self) -> None:
        """Open and start a new stream (caller holds ``_ctl``). Raises AudioError."""
        self._gen += 1
        gen = self._gen
        factory = self._stream_factory
        if factory is None:
            factory = portaudio.import_sounddevice().InputStream
        self._finished_unexpectedly = False
        self._last_cb = time.perf_counter()
        self._resync = True  # the first callback puts the new stream's samples on the stream clock
        hint = ""
        if self._device.is_jack:
            hint = f" (a JACK device runs only at the server's rate, {self._device.default_samplerate:g} Hz)"
            if portaudio.jack_is_dead():
                hint = (
                    " (the JACK server this process was attached to went away; PortAudio cannot "
                    "re-attach to a restarted server: restart livedance)"
                )
        self._stream = portaudio.open_stream(
            factory,
            f"input device {self._device.label()} at {self._sr} Hz, {self._channels} ch, block {self._block}",
            hint,
            device=self._device.index,
            samplerate=self._sr,
            blocksize=self._block,
            channels=self._channels,
            dtype="float32",
            latency=self._latency,
            callback=functools.partial(self._callback, gen),
            finished_callback=functools.partial(self._on_finished, gen),
        )
        self._last_cb = time.perf_counter()  # the watchdog counts from the open, not from before it (a slow open)

    def _dispose(self, stream: Any, dead: bool, wait_s: float = 1.0) -> None:
        """Stop and close ``stream`` on a daemon thread, waiting for it at most ``wait_s`` seconds (a close that
        blocks on a failing device finishes on its own; a reconnect waits for it); a dead JACK stream is abandoned
        instead (it would hang)."""
        if stream is None:
            return
        if dead and self._device.is_jack:
            portaudio.abandon_stream(stream)
            return
        self._closing = portaudio.close_stream_within(stream, wait_s, name="livedance-close-input")

    def start(self) -> None:
        """Open the device and start capturing; also starts the monitor thread.

        Starting a running (or lost) source does nothing.

        Raises:
            AudioError: PortAudio cannot open the stream (the message names the device).
        """
        with self._ctl:
            if self._status in (SourceStatus.RUNNING, SourceStatus.LOST):
                return
            self._ring.reset()
            self._clock = CaptureClock(self._sr)
            self._lost_event.clear()
            self._open_and_start()
            self._status = SourceStatus.RUNNING
            self._stop_evt = threading.Event()  # (a monitor of an earlier start that outlived its stop keeps its own)
            self._monitor_thread = threading.Thread(
                target=self._monitor, args=(self._stop_evt,), name=f"livedance-audio-monitor[{self._device.name}]",
                daemon=True,
            )
            self._monitor_thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop capturing, close the device and end the monitor thread. Idempotent; never raises.

        Returns within about ``timeout`` seconds: the monitor thread (which may be reopening a lost device) is
        joined for at most that long, and the stream's close is waited for with what is left (at least 50 ms).
        What is still busy then finishes on its own: the monitor sees the stop and ends after its current step
        (closing a stream it was reopening), and a close that blocks on a failing device ends with its daemon
        thread.
        """
        deadline = time.perf_counter() + max(float(timeout), 0.0)
        self._stop_evt.set()
        th = self._monitor_thread
        if th is not None and th is not threading.current_thread():
            th.join(max(deadline - time.perf_counter(), 0.0))
        self._monitor_thread = None
        # the monitor holds _ctl only briefly, except while it reopens a lost device (no stream to close then)
        locked = self._ctl.acquire(timeout=max(deadline - time.perf_counter(), 0.0))
        try:
            stream, self._stream = self._stream, None
            self._gen += 1
            self._status = SourceStatus.STOPPED
            self._lost_event.clear()
        finally:
            if locked:
                self._ctl.release()
        if stream is not None:
            stale = time.perf_counter() - self._last_cb > max(4 * self._block / self._sr, 0.25)
            self._dispose(stream, dead=self._device.is_jack and (stale or not _is_active(stream)),
                          wait_s=max(deadline - time.perf_counter(), 0.05))

    def reconnect(self) -> bool:
        """Try once, now, to reopen a lost device. Returns True if it runs again; never raises.

        On failure :attr:`last_error` says why. Does nothing (returns False) unless lost.
        """
        return self._try_reconnect()

    def _mark_lost(self, reason: str) -> None:
        with self._ctl:
            if self._status is not SourceStatus.RUNNING:
                return
            self._status = SourceStatus.LOST
            self.last_error = reason
            self._lost_count += 1
            self._gen += 1  # ignore anything the old stream still delivers
            stream, self._stream = self._stream, None
            self._dispose(stream, dead=True, wait_s=0.0)  # never wait here: stop() may need _ctl
            self._lost_event.set()

    def _try_reconnect(self) -> bool:
        with self._ctl:
            if self._status is not SourceStatus.LOST or self._stop_evt.is_set():
                return False
            closing = self._closing
            if closing is not None and closing.is_alive():  # a rescan or reopen must not race the old stream's close
                self.last_error = "the lost input stream is still closing (its device does not answer); retrying later"
                return False
            self._attempts += 1
            try:
                self._device = self._find_again()
            except Exception as err:  # DeviceNotFoundError, AudioError from a rescan, PortAudio trouble
                self.last_error = str(err)
                return False
            # Keep the stream clock on time: skip the samples the device missed while it was away
            # (no stream is writing now, so this thread may act as the ring's producer). The
            # clock's t0 stays valid across the gap, so the new stream keeps refining it.
            missed_to = self._clock.index_at(time.perf_counter())
            if missed_to is not None and missed_to > self._ring.write_index:
                self._ring.skip(missed_to - self._ring.write_index)
            try:
                self._open_and_start()
            except AudioError as err:
                self.last_error = str(err)
                self._reopen_failed = True  # the entry may be stale: the next attempt rebuilds the list first
                return False
            self._reopen_failed = False
            self._known_names = self._device_names()
            if self._stop_evt.is_set():  # stop() came while the device reopened (it did not wait for us)
                stream, self._stream = self._stream, None
                self._gen += 1
                self._dispose(stream, dead=False, wait_s=0.0)
                return False
            self._status = SourceStatus.RUNNING
            self._reconnects += 1
            self._lost_event.clear()
            return True

    def _monitor(self, stop_evt: threading.Event) -> None:
        """Monitor thread: detect a lost device, retry with backoff. Exits when ``stop_evt`` (its start's) is set."""
        poll = min(0.05, self._watchdog_s / 4)
        backoff = self._backoff[0]
        next_try = 0.0
        while not stop_evt.wait(poll):
            now = time.perf_counter()
            status = self._status
            if status is SourceStatus.RUNNING:
                stream = self._stream
                reason = None
                if self._finished_unexpectedly:
                    reason = "the input stream finished unexpectedly"
                elif stream is not None and not _is_active(stream):
                    reason = "PortAudio reports the input stream inactive (device gone or server down)"
                elif now - self._last_cb > self._watchdog_s:
                    reason = f"no audio callback for {now - self._last_cb:.2f} s"
                if reason is not None:
                    self._mark_lost(f"input device {self._device.label()} lost: {reason}")
                    backoff = self._backoff[0]
                    next_try = now + backoff
            elif status is SourceStatus.LOST and self._auto_reconnect and now >= next_try:
                if self._try_reconnect():
                    backoff = self._backoff[0]
                elif self._device.is_jack and portaudio.jack_is_dead():
                    # PortAudio's JACK client died with its server: retrying cannot succeed in
                    # this process (last_error says so); reconnect() can still be called by hand.
                    next_try = float("inf")
                else:
                    backoff = min(2 * backoff, self._backoff[1])
                    next_try = time.perf_counter() + backoff

    # ------------------------------------------------------------------ reading
    def _read_now(self, max_frames: int) -> AudioBlock | None:
        got = self._ring.read(max_frames)
        if got is None:
            return None
        frames, index = got
        if self._pick is not None:
            frames = frames[:, self._pick]
        samples = np.ascontiguousarray(to_mono(frames), dtype=np.float32)
        return AudioBlock(samples, int(index), self._clock.time_of(index), self._sr)
