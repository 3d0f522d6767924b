"""LiveSource with a fake PortAudio stream: mixdown, device lookup errors, device lost / back.

The fake stream's callback is driven by the test (pump), as PortAudio's audio thread would;
the LiveSource's own monitor thread is real.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from livedance.audio import DeviceInfo, LiveSource, SourceStatus, resolve_device
from livedance.errors import AudioError, ConfigError, DeviceNotFoundError

from fakes_io import FakeInputStream as FakeStream

MIC = DeviceInfo(0, "USB Mic", "ALSA", 1, 0, 48000.0, default_input=True)
INTERFACE = DeviceInfo(1, "Scarlett 4i4 USB", "ALSA", 4, 4, 44100.0)
SPEAKERS = DeviceInfo(2, "HDMI out", "ALSA", 0, 8, 48000.0, default_output=True)
JACK_SYSTEM = DeviceInfo(3, "system", "JACK Audio Connection Kit", 2, 2, 44100.0, True, True)
DEVICES = [MIC, INTERFACE, SPEAKERS, JACK_SYSTEM]


class FakeBackend:
    """A device list and a stream factory whose device can vanish and come back."""

    def __init__(self, devices=DEVICES):
        self.devices = list(devices)
        self.present = True
        self.open_errors = 0  # the next N opens raise, like a PortAudio error
        self.streams: list[FakeStream] = []

    def lister(self):
        return self.devices if self.present else [d for d in self.devices if d.index != 1]

    def factory(self, **kw):
        if self.open_errors > 0:
            self.open_errors -= 1
            raise RuntimeError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        self.streams.append(FakeStream(**kw))
        return self.streams[-1]


def _source(backend, **kw):
    kw.setdefault("watchdog_s", 30.0)
    return LiveSource(
        kw.pop("device", "scarlett"), device_lister=backend.lister, stream_factory=backend.factory, **kw
    )


def _wait(pred, timeout=6.0):
    """True as soon as ``pred()`` is, False after ``timeout`` seconds (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_opens_the_named_device_and_mixes_channels_down():
    be = FakeBackend()
    src = _source(be, channels=4, block_size=256)
    assert src.device is INTERFACE and src.sample_rate == 44100 and src.channels == 4
    with src:
        s = be.streams[0]
        assert (s.kw["device"], s.kw["channels"], s.kw["blocksize"], s.kw["samplerate"]) == (1, 4, 256, 44100)
        block = np.tile(np.array([1.0, 0.0, 0.5, -0.5], np.float32), (256, 1))
        block[:, 0] = np.linspace(0, 1, 256)
        s.pump(block)
        b = src.read(1000)
    np.testing.assert_allclose(b.samples, block.mean(axis=1), atol=1e-7)
    assert b.samples.shape == (256,) and b.samples.dtype == np.float32 and b.sample_index == 0
    assert src.status is SourceStatus.STOPPED and be.streams[0].closed


def test_default_channels_is_stereo_at_most_and_mono_passes_through():
    be = FakeBackend()
    assert _source(be).channels == 2
    mono = _source(be, device="usb mic")
    assert mono.device is MIC and mono.channels == 1 and mono.sample_rate == 48000
    with mono:
        x = np.sin(np.arange(480, dtype=np.float32))
        be.streams[-1].pump(x[:, None])
        np.testing.assert_array_equal(mono.read(1000).samples, x)


def test_input_channels_listen_to_the_chosen_inputs_only():
    """A mic on input 1 of a 2-input interface keeps its level (averaging an empty input 2 halves it), and a line
    in on inputs 3-4 of a 4-input one is heard without inputs 1-2."""
    be = FakeBackend()
    src = _source(be, input_channels=(3, 4), block_size=256)
    assert src.channels == 4 and src.input_channels == (3, 4)
    with src:
        block = np.zeros((256, 4), np.float32)
        block[:, 0] = 0.9  # a mic left open on input 1
        block[:, 2] = np.sin(np.arange(256) / 5.0)
        block[:, 3] = block[:, 2]
        be.streams[-1].pump(block)
        np.testing.assert_allclose(src.read(1000).samples, block[:, 2], atol=1e-7)
    mic = _source(be, input_channels=(1,), block_size=256)
    assert mic.channels == 1
    with mic:
        x = 0.5 * np.sin(np.arange(256, dtype=np.float32) / 3.0)
        be.streams[-1].pump(x[:, None])
        np.testing.assert_array_equal(mic.read(1000).samples, x)
    with pytest.raises(AudioError, match=r"input channels 1..4; input channel\(s\) \[5\] do not exist"):
        _source(be, input_channels=(3, 5))
    for bad in ((), (2, 2)):
        with pytest.raises(ConfigError, match="distinct"):
            _source(be, input_channels=bad)
    for bad in ((3.7,), (True,), "34"):
        with pytest.raises(ConfigError, match="input_channels must be channel numbers"):
            _source(be, input_channels=bad)
    with pytest.raises(ConfigError, match="does not open input channel 4"):
        _source(be, input_channels=(4,), channels=2)


def test_rate_and_channel_validation():
    be = FakeBackend()
    with pytest.raises(AudioError, match=r"Scarlett.*192000 Hz.*8000\.\.96000 Hz; pass a sample rate the device"):
        _source(be, sample_rate=192000)
    hi = FakeBackend([DeviceInfo(5, "Studio DAC 192k", "ALSA", 2, 2, 192000.0)])
    assert _source(hi, device="studio").sample_rate == 48000  # its default is out of range: asked for 48 kHz
    jack_hi = FakeBackend([DeviceInfo(6, "system", "JACK Audio Connection Kit", 2, 2, 192000.0, True, True)])
    with pytest.raises(AudioError, match="restart jackd with -r 48000"):  # JACK runs at its server's rate
        _source(jack_hi, device="jack:system")
    with pytest.raises(AudioError, match="channels must be 1..4"):
        _source(be, channels=6)
    with pytest.raises(ConfigError, match="block_size"):
        _source(be, block_size=4)


def test_device_not_found_lists_the_input_devices():
    with pytest.raises(DeviceNotFoundError) as err:
        _source(FakeBackend(), device="focusrite")
    msg = str(err.value)
    assert "'focusrite'" in msg
    for d in (MIC, INTERFACE, JACK_SYSTEM):
        assert d.name in msg
    assert "HDMI" not in msg  # output-only devices are not offered as inputs


def test_resolve_device_by_index_prefix_and_default():
    assert resolve_device(None, "input", DEVICES) is MIC
    assert resolve_device(None, "output", DEVICES) is SPEAKERS
    assert resolve_device("1", "input", DEVICES) is INTERFACE
    assert resolve_device("jack:", "input", DEVICES) is JACK_SYSTEM
    assert resolve_device("JACK:System", "input", DEVICES) is JACK_SYSTEM
    with pytest.raises(DeviceNotFoundError, match="no input channels"):
        resolve_device(2, "input", DEVICES)
    with pytest.raises(DeviceNotFoundError, match="alsa"):
        resolve_device("alsa:system", "input", DEVICES)


def test_device_lost_then_back_reconnects_with_a_gap_in_sample_indices():
    be = FakeBackend()
    src = _source(be, watchdog_s=0.15, backoff_s=(0.05, 0.1), block_size=256)
    src.start()
    first = be.streams[0]
    for _ in range(4):
        first.pump(np.full((256, 2), 0.25, np.float32))
    before = src.read(10_000)
    assert before.end_index == 1024 and not src.lost.is_set()

    be.present = False  # unplugged: callbacks stop, the device leaves the list
    assert _wait(src.lost.is_set), "the watchdog never declared the device lost"
    assert src.status is SourceStatus.LOST and src.lost_count == 1
    assert "no audio callback" in src.last_error and "Scarlett" in src.last_error
    assert first.closed  # the dead stream was released
    assert src.read(100) is None and src.read(100, timeout=0.05) is None  # never raises
    assert _wait(lambda: src.reconnect_attempts >= 2), "no retries while lost"
    assert src.status is SourceStatus.LOST and "not back" in src.last_error

    be.open_errors = 1  # it is back, but the first open fails once more
    be.present = True
    assert _wait(lambda: src.status is SourceStatus.RUNNING), src.last_error
    assert not src.lost.is_set() and src.reconnects == 1 and len(be.streams) == 2
    be.streams[1].pump(np.full((256, 2), 0.5, np.float32))
    after = src.read(10_000)
    # the stream clock kept running while the device was away: a gap, not a splice
    assert after.sample_index > before.end_index
    np.testing.assert_allclose(after.samples, 0.5)
    src.stop()
    assert src.status is SourceStatus.STOPPED and be.streams[1].closed


def test_a_replugged_alsa_card_with_another_number_is_found_again():
    old = DeviceInfo(1, "USB Audio CODEC: - (hw:1,0)", "ALSA", 2, 2, 48000.0)
    be = FakeBackend([MIC, old])
    src = _source(be, device="usb audio codec", watchdog_s=0.15, backoff_s=(0.05, 0.1), block_size=256)
    src.start()
    be.streams[0].pump(np.zeros((256, 2), np.float32))
    be.present = False
    assert _wait(src.lost.is_set)
    # back after a hub power blip: ALSA gave it card 2, PortAudio another index
    be.devices = [MIC, DeviceInfo(4, "USB Audio CODEC: - (hw:2,0)", "ALSA", 2, 2, 48000.0)]
    be.present = True
    assert _wait(lambda: src.status is SourceStatus.RUNNING), src.last_error
    assert src.reconnects == 1 and be.streams[-1].kw["device"] == 4
    src.stop()


def test_a_twin_interface_plugged_in_all_along_is_not_taken_for_the_lost_one():
    mine = DeviceInfo(1, "USB Audio CODEC: - (hw:1,0)", "ALSA", 2, 2, 48000.0)
    theirs = DeviceInfo(2, "USB Audio CODEC: - (hw:2,0)", "ALSA", 2, 2, 48000.0)  # another performer's dongle
    be = FakeBackend([MIC, mine, theirs])
    src = _source(be, device="1", watchdog_s=0.15, backoff_s=(0.05, 0.1), block_size=256)
    src.start()
    be.streams[0].pump(np.zeros((256, 2), np.float32))
    be.present = False  # mine is unplugged (index 1 leaves the list); theirs stays
    assert _wait(src.lost.is_set)
    assert _wait(lambda: src.reconnect_attempts >= 3)
    assert src.status is SourceStatus.LOST and len(be.streams) == 1  # never opened theirs
    be.devices = [MIC, theirs, DeviceInfo(5, "USB Audio CODEC: - (hw:3,0)", "ALSA", 2, 2, 48000.0)]
    be.present = True  # mine is back as card 3
    assert _wait(lambda: src.status is SourceStatus.RUNNING), src.last_error
    assert be.streams[-1].kw["device"] == 5
    src.stop()


def test_a_reader_never_sees_samples_before_their_capture_time():
    """The callback stamps the block's time before the samples reach the ring: a reader that gets the very
    first block sees its capture time, not the time of the read."""
    be = FakeBackend()
    src = _source(be, block_size=256)
    src.start()
    ring = src._ring
    write = ring.write
    got = []
    ring.write = lambda x: (write(x), got.append(src._read_now(10_000)))[0]  # a reader between the two steps
    be.streams[0].pump(np.zeros((256, 2), np.float32))
    ring.write = write
    src.stop()
    assert got[0] is not None and got[0].t_capture == pytest.approx(src._clock.time_of(0), abs=1e-9)


def test_unexpected_end_of_stream_and_inactive_stream_count_as_lost():
    be = FakeBackend()
    src = _source(be, auto_reconnect=False)
    src.start()
    be.streams[0].kw["finished_callback"]()  # PortAudio ended the stream on its own
    assert _wait(src.lost.is_set)
    assert "finished unexpectedly" in src.last_error
    assert src.reconnect()  # manual reconnect
    assert src.status is SourceStatus.RUNNING
    be.streams[1].active = False  # PortAudio marks the stream inactive (host API down)
    assert _wait(src.lost.is_set)
    assert "inactive" in src.last_error
    time.sleep(0.2)
    assert src.reconnect_attempts == 1  # auto_reconnect=False: no retries on its own
    src.stop()
    src.stop()
    assert src.status is SourceStatus.STOPPED and not src.lost.is_set()


def test_a_slow_open_is_not_a_lost_device():
    """The watchdog counts from the stream's open: a device that takes longer than it to open is not lost."""
    be = FakeBackend()
    slow = be.factory

    def slow_factory(**kw):
        time.sleep(0.4)  # e.g. a USB interface waking up
        return slow(**kw)

    src = LiveSource("scarlett", device_lister=be.lister, stream_factory=slow_factory, watchdog_s=0.3,
                     backoff_s=(0.05, 0.1), block_size=256)
    src.start()
    be.streams[0].pump(np.full((256, 2), 0.25, np.float32))  # its first block, right after the open
    time.sleep(0.1)  # the monitor has looked at least once (every 50 ms)
    assert src.status is SourceStatus.RUNNING and src.lost_count == 0, src.last_error
    assert src.read(1000).end_index == 256
    src.stop()


def test_a_blocking_read_returns_when_the_device_is_lost():
    import threading

    be = FakeBackend()
    src = _source(be, watchdog_s=0.15, auto_reconnect=False)
    src.start()
    got = []
    reader = threading.Thread(target=lambda: got.append(src.read(100, timeout=None)), daemon=True)
    reader.start()
    be.present = False  # unplugged: no callback comes
    reader.join(3.0)
    assert not reader.is_alive() and got == [None] and src.status is SourceStatus.LOST
    src.stop()


@pytest.mark.parametrize("kw", [dict(ring_seconds=float("nan")), dict(watchdog_s=float("nan")),
                                dict(watchdog_s=float("inf")), dict(backoff_s=(0.5, float("nan")))])
def test_nan_timings_are_refused(kw):
    with pytest.raises(ConfigError, match="must be"):
        _source(FakeBackend(), **kw)


def test_stop_joins_the_monitor_thread():
    import threading

    be = FakeBackend()
    src = _source(be)
    src.start()
    assert any(t.name.startswith("livedance-audio-monitor") for t in threading.enumerate())
    src.stop()
    assert not any(t.name.startswith("livedance-audio-monitor") for t in threading.enumerate())


def test_overflow_counted_when_the_reader_falls_behind():
    be = FakeBackend()
    src = _source(be, device="usb mic", ring_seconds=0.01)  # 480 samples -> ring of 4 blocks (2048)
    with src:
        for _ in range(10):
            be.streams[0].pump(np.zeros((512, 1), np.float32))
        assert src.overflows == 10 * 512 - 2048


def test_devices_command_json_and_table(capsys):
    from livedance.cli import main

    assert main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert isinstance(listed, list)
    for d in listed:
        assert {"index", "name", "hostapi", "max_input_channels", "default_samplerate"} <= set(d)
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    if listed:
        assert "Audio devices" in out and listed[0]["name"] in out
    else:
        assert "no input devices" in out and "jackd" in out  # the hint to start a JACK server


def _pump_paced(stream, n_blocks: int, block: int, sr: int, status=None, skip_before: int = -1, skip: int = 0):
    """Deliver ``n_blocks`` blocks at the device's pace; returns each block's true capture time (perf_counter) of
    its first sample. Before block ``skip_before`` the device loses ``skip`` blocks (PortAudio drops them, an
    overflow) and flags the next callback with ``status``."""
    from types import SimpleNamespace

    caps, t_start = [], time.perf_counter()
    for b in range(n_blocks):
        k = b + (skip if b >= skip_before >= 0 else 0)  # the block's number on the device's own timeline
        due = t_start + (k + 1) * block / sr
        while time.perf_counter() < due:
            time.sleep(0.0002)
        caps.append(due - block / sr)  # on the device's timeline: a pump the OS runs late delivers late, not later samples
        flag = status if b == skip_before else None
        stream.kw["callback"](np.zeros((block, stream.kw["channels"]), np.float32), block,
                              SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0), flag)
    return caps


def test_a_stream_that_takes_long_to_reopen_keeps_its_samples_on_the_stream_clock():
    """After a replug the new stream's first sample is captured when its (slow) open has finished; its blocks
    must carry that time, not the time the reconnect began (300 ms early before the fix, for minutes)."""
    be = FakeBackend()

    class SlowStart(FakeStream):
        def start(self):
            if len(be.streams) > 1:
                time.sleep(0.3)
            super().start()

    def factory(**kw):
        be.streams.append(SlowStart(**kw))
        return be.streams[-1]

    src = LiveSource("usb mic", block_size=480, watchdog_s=0.1, backoff_s=(0.05, 0.05), device_lister=be.lister,
                     stream_factory=factory)
    src.start()
    _pump_paced(be.streams[0], 30, 480, 48000)
    while src.read(10_000) is not None:
        pass
    assert _wait(lambda: src.status is SourceStatus.LOST) and _wait(lambda: src.status is SourceStatus.RUNNING)
    caps = _pump_paced(be.streams[1], 40, 480, 48000)
    got = []
    while (b := src.read(480)) is not None:
        got.append(b)
    src.stop()
    assert len(got) == 40
    errs_ms = np.abs([1e3 * (b.t_capture - c) for b, c in zip(got, caps)])
    # (a callback the loaded CI machine runs late can put one block off by its lateness; the next on-time one
    # corrects the clock, so the median and the tail are the figures)
    assert np.median(errs_ms) < 5 and errs_ms[10:].max() < 20, errs_ms[:5]


def test_samples_portaudio_dropped_in_an_overflow_become_a_gap_on_the_stream_clock():
    be = FakeBackend()
    src = LiveSource("usb mic", block_size=480, device_lister=be.lister, stream_factory=be.factory)
    src.start()
    caps = _pump_paced(be.streams[0], 120, 480, 48000, status="input overflow", skip_before=60, skip=5)
    got = []
    while (b := src.read(480)) is not None:
        got.append(b)
    src.stop()
    assert src.xruns == 1 and len(got) == 120
    # the 50 ms PortAudio dropped: a gap (within a block: the fake device's callbacks run late on a loaded machine)
    assert abs(got[60].sample_index - got[59].end_index - 5 * 480) < 480
    errs_ms = np.abs([1e3 * (b.t_capture - c) for b, c in zip(got, caps)])
    assert np.median(errs_ms[60:]) < 5 and errs_ms[70:].max() < 20  # before the fix: 50 ms early for good


def test_more_jack_ports_than_the_jack_device_takes_names_the_ports_and_the_fix(monkeypatch):
    import livedance.audio.jack as jack

    monkeypatch.setattr(jack, "jack_tools_available", lambda: True)
    monkeypatch.setattr(jack, "list_ports", lambda direction=None: ["mixxx:out_0", "mixxx:out_1", "mixxx:out_2"])
    with pytest.raises(AudioError, match=r"3 JACK ports requested \(mixxx:out_0, mixxx:out_1, mixxx:out_2\).*"
                                         r"capture fewer ports, or pass device="):
        jack.JackSource(port=["mixxx:out_0", "mixxx:out_1", "mixxx:out_2"], device_lister=lambda: [JACK_SYSTEM])
