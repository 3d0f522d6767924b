"""An audio file as a source: paced like a live input, as fast as asked, or played aloud.

Three modes:

* ``realtime=True`` (default): blocks become readable at real-time pace, one ``block_size`` at a
  time, on the ``perf_counter`` clock started by :meth:`FileSource.start`. No thread.
* ``realtime=False``: every read returns the next ``max_frames`` samples at once (tests, offline
  runs). ``t_capture`` is still the nominal start() + index / rate.
* ``play=True``: a sounddevice OutputStream plays the file so the room hears it; its callback
  copies what it plays into the ring, so the consumer gets exactly the audio that is heard, with
  ``t_capture`` the time it reaches the loudspeaker (PortAudio's DAC time where the host reports it).
  If the output device fails (its stream ends before the file does, or its callbacks stop for
  ``max(1 s, 20 blocks)``), the source says so (:attr:`FileSource.last_error`, one warning) and goes on
  in paced mode without sound from where playback stopped, on the same stream clock: the show keeps
  dancing to the file.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from livedance.audio import portaudio
from livedance.audio.base import AudioBlock, AudioSource, CaptureClock, SourceStatus, validate_sample_rate
from livedance.audio.devices import DeviceInfo, DeviceLister, resolve_device
from livedance.audio.live import StreamFactory
from livedance.audio.ring import RingBuffer
from livedance.data.audio_io import load_audio, resample, to_mono
from livedance.errors import AudioError, ConfigError

_log = logging.getLogger("livedance.audio")


class _CallbackStop(Exception):
    """Stands in for sounddevice.CallbackStop when PortAudio is absent (fake streams)."""


def _output_channels(file_channels: int, dev: DeviceInfo) -> int:
    """Channels of the output stream that plays a file: the file's own when the device has that many (2 or more);
    else the mono mix on both speakers (one if the device has one), since a 1-channel stream would sound on the
    left only."""
    if 2 <= file_channels <= dev.max_output_channels:
        return int(file_channels)
    return max(1, min(2, dev.max_output_channels))


def _opens_at(dev: DeviceInfo, hz: int, channels: int, rate_check: Callable[[DeviceInfo, int], bool] | None,
              stream_factory: StreamFactory | None) -> bool:
    """Whether output device ``dev`` opens at ``hz`` Hz with ``channels`` float32 channels.

    ``rate_check`` decides when given; with only a fake ``stream_factory`` (tests) every rate is taken; else
    PortAudio's ``check_output_settings`` (its refusal, e.g. "Invalid sample rate", means no).

    Raises:
        AudioError: PortAudio cannot be loaded.
    """
    if rate_check is not None:
        return bool(rate_check(dev, hz))
    if stream_factory is not None:
        return True
    sd = portaudio.import_sounddevice()
    try:
        sd.check_output_settings(device=dev.index, samplerate=hz, dtype="float32", channels=int(channels))
    except Exception:  # sounddevice.PortAudioError or ValueError: the device refuses these settings
        return False
    return True


class FileSource(AudioSource):
    """Audio from a file (wav, flac, ogg, opus, mp3), delivered as mono float32 blocks.

    Args:
        path: the audio file (read whole with :func:`livedance.data.audio_io.load_audio`).
        realtime: pace the blocks in real time (True) or deliver as fast as read (False).
        play: also play the file on ``output_device`` (needs realtime=True).
        output_device: None (default output), index, name or "<hostapi>:<name>".
        loop: start again at the end (sample indices keep counting up); else the source
            becomes FINISHED after the last sample.
        block_size: samples per block in realtime mode and per output callback when playing.
        offset_s, duration_s: the excerpt of the file to use (seconds).
        ring_seconds: play mode: seconds buffered for the reader before samples are dropped.
        latency: play mode: PortAudio's suggested output latency.
        device_lister, stream_factory: play mode: replace PortAudio (tests).
        rate_check: play mode: ``rate_check(device, hz)`` says whether the output device opens at ``hz``
            (default: PortAudio's ``check_output_settings``; with a ``stream_factory`` and no ``rate_check``
            every rate is taken as supported). A device that refuses the file's rate gets the file resampled
            (soxr HQ) to the device's default rate, as JACK always does, and ``sample_rate`` reports that rate.
        time_fn: the clock that paces realtime mode, in seconds (default time.perf_counter;
            tests pass a fake clock).

    Raises:
        AudioError: unreadable, empty or too short file; a rate outside 8..96 kHz.
        DeviceNotFoundError: play=True and no output device matches ``output_device``.
        ConfigError: play without realtime, or a bad block size.

    Attributes:
        last_error: why playback stopped before the end of the file (the source then goes on without sound,
            paced), else None.
    """

    def __init__(
        self,
        path: str | Path,
        realtime: bool = True,
        play: bool = False,
        output_device: int | str | None = None,
        loop: bool = False,
        block_size: int = 512,
        *,
        offset_s: float = 0.0,
        duration_s: float | None = None,
        ring_seconds: float = 4.0,
        latency: str | float = "high",
        device_lister: DeviceLister | None = None,
        stream_factory: StreamFactory | None = None,
        rate_check: Callable[[DeviceInfo, int], bool] | None = None,
        time_fn: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        if play and not realtime:
            raise ConfigError("FileSource: play=True needs realtime=True (the output device sets the pace)")
        if not 16 <= int(block_size) <= 16384:
            raise ConfigError(f"block_size must be 16..16384 frames, got {block_size}")
        self.path = Path(path)
        audio, sr = load_audio(self.path, mono=False, offset_s=offset_s, duration_s=duration_s)
        self._sr = validate_sample_rate(sr, f"audio file {self.path}", "resample it, e.g. sox IN -r 48000 OUT")
        self._out_device: DeviceInfo | None = None
        if play:
            devs = device_lister() if device_lister is not None else None
            self._out_device = resolve_device(output_device, "output", devs)
            dev_sr = int(round(self._out_device.default_samplerate))
            out_ch = _output_channels(audio.shape[1], self._out_device)  # what _open_output will open
            if dev_sr != self._sr and (self._out_device.is_jack or not _opens_at(
                    self._out_device, self._sr, out_ch, rate_check, stream_factory)):
                # JACK runs at one rate only, and many ALSA / CoreAudio / WASAPI devices take a few rates:
                # convert the file to the device's own rate rather than fail at start.
                _log.info("output device %s does not take %d Hz: playing %s resampled to %d Hz",
                          self._out_device.label(), self._sr, self.path, dev_sr)
                audio = resample(audio, self._sr, validate_sample_rate(dev_sr, self._out_device.label()))
                self._sr = dev_sr
        self._audio = np.ascontiguousarray(audio, dtype=np.float32)  # (N, C)
        self._mono = np.ascontiguousarray(to_mono(self._audio), dtype=np.float32)  # (N,)
        self._n = int(self._mono.shape[0])
        self._realtime = bool(realtime)
        self._play = bool(play)
        self._loop = bool(loop)
        self._block = int(block_size)
        self._latency = latency
        self._stream_factory = stream_factory
        self._time = time_fn
        self._status = SourceStatus.STOPPED
        self._clock = CaptureClock(self._sr)
        self._pos = 0  # next sample index to deliver (paced / offline modes)
        self._play_pos = 0  # next sample index to play (play mode; audio thread)
        self._play_done = False
        self._ring = RingBuffer(max(int(ring_seconds * self._sr), 4 * self._block), 1) if play else None
        self._out_src = self._audio  # play mode: (N, C) what the output stream plays (set per start)
        self._callback_stop: type[BaseException] = _CallbackStop  # sounddevice.CallbackStop once known
        self._stream: Any = None
        self._ctl = threading.Lock()
        self._last_cb = 0.0
        self._gen = 0  # output stream generation: callbacks of a stream given up on (or of an older start) are ignored
        self._out_failed: str | None = None  # set (audio thread or reader) when the output device fails
        self._paced_fallback = False  # play mode gave up on the output: paced from _pos on
        self.last_error: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        """Hz: the file's, or when playing, the output device's own rate if it is JACK or refuses the file's."""
        return self._sr

    @property
    def status(self) -> SourceStatus:
        """STOPPED, RUNNING or FINISHED."""
        return self._status

    @property
    def overflows(self) -> int:
        """Play mode: samples dropped because the reader fell behind; otherwise 0."""
        return self._ring.overflows if self._ring is not None else 0

    @property
    def n_samples(self) -> int:
        """Length of the file (excerpt) in samples."""
        return self._n

    @property
    def duration_s(self) -> float:
        """Length of the file (excerpt) in seconds."""
        return self._n / self._sr

    @property
    def audio(self) -> np.ndarray:
        """The whole file as (N,) float32 mono (what the blocks deliver, in order)."""
        return self._mono

    @property
    def output_device(self) -> DeviceInfo | None:
        """The playback device (play mode), else None."""
        return self._out_device

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Start delivering from the beginning of the file (and start playback if play=True).

        Raises:
            AudioError: the output stream cannot open (play mode).
        """
        with self._ctl:
            if self._status is SourceStatus.RUNNING:
                return
            self._pos = 0
            self._play_pos = 0
            self._play_done = False
            self._out_failed = None
            self._paced_fallback = False
            self._gen += 1
            self.last_error = None
            self._clock = CaptureClock(self._sr)
            if self._play:
                self._open_output()
            else:
                self._clock.set_origin(self._time())
            self._status = SourceStatus.RUNNING

    def stop(self, timeout: float = 1.0) -> None:
        """Stop delivering and playing. Idempotent; never raises.

        Waits at most ``timeout`` seconds for the output stream to close (a close can block on a failing device; one
        still busy then finishes on its own daemon thread).
        """
        with self._ctl:
            stream, self._stream = self._stream, None
            self._gen += 1  # the old stream's callbacks play silence and stop while it closes
            if self._status is not SourceStatus.FINISHED:
                self._status = SourceStatus.STOPPED
        if stream is not None:
            dead = (
                self._out_device is not None
                and self._out_device.is_jack
                and not self._play_done
                and time.perf_counter() - self._last_cb > max(4 * self._block / self._sr, 0.25)
            )
            if dead:
                portaudio.abandon_stream(stream)
            else:
                portaudio.close_stream_within(stream, timeout, name="livedance-close-output")

    # ------------------------------------------------------------------ play mode
    def _open_output(self) -> None:
        assert self._out_device is not None and self._ring is not None
        self._ring.reset()
        dev = self._out_device
        out_ch = _output_channels(self._audio.shape[1], dev)
        # the file's own channels, or its mono mix broadcast by the callback's copy onto the stream's channels
        self._out_src = self._audio if out_ch == self._audio.shape[1] else self._mono[:, None]
        factory = self._stream_factory
        if factory is None:
            factory = portaudio.import_sounddevice().OutputStream
        try:
            self._callback_stop = portaudio.import_sounddevice().CallbackStop
        except AudioError:  # no PortAudio: only a fake stream factory can be in use
            self._callback_stop = _CallbackStop
        self._last_cb = time.perf_counter()
        self._stream = portaudio.open_stream(
            factory,
            f"output device {dev.label()} to play {self.path} at {self._sr} Hz, {out_ch} ch",
            device=dev.index,
            samplerate=self._sr,
            blocksize=self._block,
            channels=out_ch,
            dtype="float32",
            latency=self._latency,
            callback=functools.partial(self._out_callback, self._gen),
            finished_callback=functools.partial(self._on_finished, self._gen),
        )
        self._last_cb = time.perf_counter()  # (opening may take a while: the stall timer starts now)

    def _out_callback(self, gen: int, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio output callback: play the next samples and copy their mono mix to the ring (silence and a
        stop for a stream this source gave up on: ``gen`` is the stream's generation)."""
        if gen != self._gen or self._paced_fallback:
            outdata.fill(0.0)
            raise self._callback_stop
        now = time.perf_counter()
        ring = self._ring
        src = self._out_src
        pos = self._play_pos
        first = pos
        self._clock.observe(first, now + portaudio.output_lead_s(time_info))  # before the samples reach the ring
        filled = 0
        while filled < frames:
            if not self._loop and pos >= self._n:
                outdata[filled:] = 0.0
                break
            off = pos % self._n
            k = min(frames - filled, self._n - off)
            outdata[filled : filled + k] = src[off : off + k]
            ring.write(self._mono[off : off + k])
            filled += k
            pos += k
        self._play_pos = pos
        self._last_cb = now
        if not self._loop and pos >= self._n:
            self._play_done = True
            raise self._callback_stop

    def _fall_back_to_paced(self) -> None:
        """Reader thread: the output device failed and its samples are all read; go on paced, without sound."""
        dev = self._out_device.label() if self._out_device is not None else "the output device"
        self.last_error = (f"output device {dev} failed while playing {self.path} ({self._out_failed}); the file goes on "
                           f"without sound from {self._play_pos / self._sr:.2f} s")
        _log.warning("%s", self.last_error)
        self._paced_fallback = True  # first: from now on the old stream's callbacks play silence and stop
        with self._ctl:
            self._gen += 1
            stream, self._stream = self._stream, None
        if stream is not None:
            if self._out_device is not None and self._out_device.is_jack:  # (as stop() does for a stalled JACK stream)
                portaudio.abandon_stream(stream)  # PortAudio cannot close a stream of a JACK server that went away
            else:  # a close can block on a failing device: never on the reader's thread
                portaudio.close_stream_within(stream, 0.0, name="livedance-close-output")
        self._pos = self._play_pos
        if self._clock.t0 is None:  # it failed before its first callback: the clock starts now
            self._clock.set_origin(self._time() - self._pos / self._sr)

    def _on_finished(self, gen: int) -> None:
        if gen != self._gen or self._paced_fallback:
            return
        if not self._loop and self._play_pos >= self._n:
            self._play_done = True  # the end of the file
        else:  # the output stream ended on its own: the device failed
            self._out_failed = "the output stream finished before the end of the file"

    # ------------------------------------------------------------------ reading
    def _read_now(self, max_frames: int) -> AudioBlock | None:
        if self._status is not SourceStatus.RUNNING or max_frames < 1:
            return None
        if self._play and not self._paced_fallback:
            got = self._ring.read(max_frames)
            if got is not None:
                frames, index = got
                return AudioBlock(frames.reshape(-1), int(index), self._clock.time_of(index), self._sr)  # (k, 1) -> (k,) view
            if self._play_done and self._ring.available == 0:
                self._status = SourceStatus.FINISHED
                return None
            stall = time.perf_counter() - self._last_cb
            if self._out_failed is None and not self._play_done and stall > max(1.0, 20 * self._block / self._sr):
                self._out_failed = f"no output callback for {stall:.1f} s"
            if self._out_failed is None or self._ring.available:
                return None
            self._fall_back_to_paced()
        pos = self._pos
        end = np.inf if self._loop else self._n
        if pos >= end:
            self._status = SourceStatus.FINISHED
            return None
        if self._realtime:
            t0 = self._clock.t0
            due = int((self._time() - t0) * self._sr) // self._block * self._block
            ready = int(min(due, end)) - pos
            if ready <= 0:
                return None
        else:
            ready = max_frames
        off = pos % self._n
        k = min(int(max_frames), ready, self._n - off)
        samples = self._mono[off : off + k].copy()
        self._pos = pos + k
        if not self._loop and self._pos >= self._n:
            self._status = SourceStatus.FINISHED
        return AudioBlock(samples, pos, self._clock.time_of(pos), self._sr)
