"""Faults of the live loop's edges: a slow device close at stop, clock drift, ``~`` in --record, malformed OSC
controls, a start that fails half-way, races and blocking logs on the output clock, and BVH gaps."""

from __future__ import annotations

import gc
import logging
import re
import socket
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from test_audio_live import _wait

from livedance.audio import CaptureClock, DeviceInfo, LiveSource, SourceStatus
from livedance.audio.file import FileSource
from livedance.bridges.frame import PoseFrame
from livedance.errors import ConfigError
from livedance.live.controls import ControlServer, ControlState
from livedance.live.intro import IntroConfig, IntroGate
from livedance.live.listener import Listener
from livedance.live.performer import PerformConfig, Performer
from livedance.live.rest import default_rest_offsets
from livedance.live.sinks import RecorderThread, make_recorder

from fakes_io import FakeInputStream

MIC = DeviceInfo(0, "USB Mic", "ALSA", 1, 0, 48000.0, default_input=True)


class SlowAbortStream(FakeInputStream):
    """A stream whose abort() blocks for ``abort_s`` (a driver that hangs on a failing device)."""

    abort_s = 3.0

    def abort(self):
        time.sleep(self.abort_s)
        super().abort()


def _slow_source(**kw) -> tuple[LiveSource, list]:
    streams: list = []

    def factory(**skw):
        streams.append(SlowAbortStream(**skw))
        return streams[-1]

    kw.setdefault("watchdog_s", 30.0)
    return LiveSource("usb mic", device_lister=lambda: [MIC], stream_factory=factory, **kw), streams


class Collect:
    def __init__(self):
        self.name = "collect"
        self.frames = 0
        self.closed_at = None

    def send(self, frame, music):
        self.frames += 1

    def close(self):
        self.closed_at = time.perf_counter()


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    sr = 22050
    t = np.arange(int(4 * sr)) / sr
    p = tmp_path_factory.mktemp("audio") / "tone.wav"
    sf.write(p, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return p


# ---------------------------------------------------------------------------------------------- 2: bounded stop
def test_live_source_stop_returns_within_its_timeout_when_the_device_close_hangs():
    src, streams = _slow_source()
    src.start()
    t0 = time.perf_counter()
    src.stop(timeout=0.5)
    assert time.perf_counter() - t0 < 2.0  # before: 3 s, the whole abort (margin for a loaded machine)
    assert src.status is SourceStatus.STOPPED
    assert _wait(lambda: streams[0].closed)  # the close finishes in the background


def test_a_lost_device_whose_close_hangs_does_not_hold_up_stop():
    src, streams = _slow_source(watchdog_s=0.1)
    src.start()
    streams[0].active = False  # PortAudio reports the stream inactive: the monitor closes it (3 s abort)
    assert _wait(lambda: src.status is SourceStatus.LOST, 3.0)
    time.sleep(0.1)  # the monitor is (before the fix: was) inside the slow close, holding the source's lock
    t0 = time.perf_counter()
    src.stop(timeout=0.5)
    assert time.perf_counter() - t0 < 2.0  # before: the rest of the 3 s abort (margin for a loaded machine)
    assert not any(t.name.startswith("livedance-audio-monitor") and t.is_alive() for t in threading.enumerate())


def test_performer_stop_closes_the_recordings_first_and_is_bounded_with_a_hanging_device():
    src, streams = _slow_source()
    sink = Collect()
    p = Performer(src, [sink], config=PerformConfig(gc_freeze=False))
    p.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    p.stop(timeout=1.0)
    took = time.perf_counter() - t0
    assert sink.frames > 5 and sink.closed_at is not None
    assert sink.closed_at - t0 < 1.5  # before: after the source stopped, 3 s
    assert took < 2.5  # before: 3 s
    assert _wait(lambda: streams[0].closed)


# ---------------------------------------------------------------------------------------------- 3: drift cap
def _drift_error_ms(clock: CaptureClock, ppm: float, hours: float = 1.0, sr: int = 48000, block: int = 512) -> float:
    """Feed ``clock`` an hour of callbacks of a device ``ppm`` slow (synthetic times, late by 0..3 ms); the largest
    |estimated - true| capture time of a block's first sample over the last minute, ms."""
    rng = np.random.default_rng(0)
    n = int(hours * 3600 * sr / block)
    late = rng.exponential(0.0005, n).clip(0, 0.003)
    scale = (1.0 + ppm * 1e-6) / sr
    t_start, worst, tail = 1000.0, 0.0, n - int(60 * sr / block)
    for k in range(n):
        first = k * block
        true = t_start + first * scale
        clock.observe(first, true + late[k])
        if k >= tail:
            worst = max(worst, abs(clock.time_of(first) - true))
    return 1e3 * worst


def test_capture_clocks_track_a_device_1000_ppm_slow_for_an_hour():
    assert _drift_error_ms(CaptureClock(48000), 1000.0) < 20.0  # before: 2880 ms early (a 200 ppm cap)
    src = LiveSource("usb mic", device_lister=lambda: [MIC], stream_factory=FakeInputStream)
    assert _drift_error_ms(src._clock, 1000.0) < 20.0

    class _Src:
        sample_rate = 48000

        def stop(self):
            pass

    assert _drift_error_ms(Listener(_Src())._clock, 1000.0) < 20.0  # the listener's own stream clock


# ---------------------------------------------------------------------------------------------- 6: ~ in --record
def test_a_recording_path_with_a_tilde_is_written_where_it_was_checked(tmp_path, monkeypatch):
    from rich.console import Console

    from livedance.cli.perform_cmd import _report_recordings
    from livedance.live.setup import build_sinks

    monkeypatch.setenv("HOME", str(tmp_path))
    rest = default_rest_offsets()
    sinks = build_sinks(None, None, ["~/take.bvh"], False, "vrm0", 60.0, rest)
    rt = sinks[0]
    for k in range(5):
        rt.send(PoseFrame.rest(rest, t_show_s=k / 60.0), None)
    assert rt.close()
    assert (tmp_path / "take.bvh").is_file() and rt.frames == 5
    con = Console(record=True, width=300)
    _report_recordings(con, ["~/take.bvh"], SimpleNamespace(recordings={k: (v[0], 0, v[1]) for k, v in
                                                                       rt.per_recorder.items()}))
    assert "recorded ~/take.bvh: 5 frames" in con.export_text()


# ---------------------------------------------------------------------------------------------- 7: malformed OSC
def test_the_first_malformed_control_is_logged_once_from_the_control_thread(caplog):
    from pythonosc.udp_client import SimpleUDPClient

    caplog.set_level(logging.WARNING, logger="livedance.live")
    state = ControlState()
    srv = ControlServer(state, port=0)
    srv.start()
    try:
        cl = SimpleUDPClient("127.0.0.1", srv.port)
        cl.send_message("/livedance/energy", "loud")
        cl.send_message("/livedance/nudge/typo", 1.0)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.sendto(b"\x00not osc", ("127.0.0.1", srv.port))
        raw.close()
        assert _wait(lambda: state.malformed == 3, 3.0)
    finally:
        srv.stop()
    warned = [r for r in caplog.records if r.name == "livedance.live" and r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].threadName == "livedance-controls"
    text = warned[0].getMessage()
    assert "/livedance/energy" in text and "'s'" in text and "expected one finite number" in text


def test_a_blocked_log_cannot_stall_the_control_thread():
    """With the show's DeferredLog, the malformed-control warning is queued, so controls keep applying while the
    terminal is blocked (the performer passes its log to the control server)."""
    from pythonosc.udp_client import SimpleUDPClient

    from livedance.live.deferlog import DeferredLog

    gate = threading.Event()
    log = logging.getLogger("livedance.test.controls")
    log.addHandler(Blocking(gate))
    log.propagate = False
    deferred = DeferredLog(log)  # its writer is not started here: nothing is written, nothing blocks
    state = ControlState()
    srv = ControlServer(state, port=0, logger=deferred)
    srv.start()
    try:
        cl = SimpleUDPClient("127.0.0.1", srv.port)
        cl.send_message("/livedance/energy", "loud")  # malformed: the one warning
        cl.send_message("/livedance/freeze", [])
        assert _wait(lambda: state.frozen, 3.0)
    finally:
        srv.stop()
        gate.set()
        log.handlers.clear()
    assert state.malformed == 1 and len(deferred._q) == 1


def test_perform_shows_the_malformed_control_count():
    from livedance.cli.perform_cmd import _controls_text, _status_text
    from livedance.live.listener import BeatSnapshot
    from livedance.live.performer import PerformStats

    line = _status_text(PerformStats(), BeatSnapshot(), 1.0, bad_controls=4)
    assert "bad controls 4" in line
    assert "bad controls" not in _status_text(PerformStats(), BeatSnapshot(), 1.0)
    c = ControlState()
    c.apply("/livedance/energy", ["x"])
    c.apply("/livedance/energy", [1.0])
    assert "1 received, 1 malformed" in _controls_text(c)


# ---------------------------------------------------------------------------------------------- 8: config, start
@pytest.mark.parametrize("field,value", [
    ("gil_switch_s", 0.0), ("gil_switch_s", -1e-3), ("gil_switch_s", float("nan")), ("gil_switch_s", 1.0),
    ("gil_switch_s", "fast"), ("rt_priority", 0), ("rt_priority", 100), ("rt_priority", 1.5), ("rt_priority", True),
    ("spin_s", float("inf")), ("spin_s", float("nan")), ("spin_s", -1e-3), ("spin_s", "1 ms"),
])
def test_perform_config_checks_the_gil_switch_interval_and_the_rt_priority(field, value):
    with pytest.raises(ConfigError, match=rf"PerformConfig\.{field} must be"):
        PerformConfig(**{field: value}).validate()
    PerformConfig(gil_switch_s=None, rt_priority=None).validate()
    PerformConfig(gil_switch_s=0.001, rt_priority=99).validate()


def test_a_start_that_fails_half_way_undoes_what_it_started(wav, monkeypatch):
    before = {t for t in threading.enumerate() if t.is_alive()}
    old = sys.getswitchinterval()
    sink = Collect()
    src = FileSource(wav, realtime=True)
    p = Performer(src, [sink], config=PerformConfig(control_port=0, gc_freeze=True))

    def refuse(_):
        raise ValueError("switch interval must be strictly positive")

    monkeypatch.setattr(sys, "setswitchinterval", refuse)
    with pytest.raises(ValueError):
        p.start()
    monkeypatch.undo()
    assert gc.get_freeze_count() == 0  # before: the show's objects stayed frozen
    assert src.status is SourceStatus.STOPPED and p.listener._thread is None
    assert _wait(lambda: not [t for t in threading.enumerate() if t.is_alive() and t not in before], 2.0), \
        [t.name for t in threading.enumerate() if t not in before]
    assert sys.getswitchinterval() == old and not p.running
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", p.control_port))  # the control server let go of its port
    finally:
        s.close()
    p.stop()
    assert sink.closed_at is not None


# ---------------------------------------------------------------------------------------------- 9: races, logs
def test_the_intro_gate_reads_its_grid_once_while_the_clock_clears_it():
    class Flaky(IntroGate):
        """The output clock sets _grid to None between the reader's two looks at it."""

        reads = 0

        @property
        def _grid(self):
            Flaky.reads += 1
            return (0.0, 0.5) if Flaky.reads % 2 == 1 else None

        @_grid.setter
        def _grid(self, value):
            pass

    g = Flaky(IntroConfig(seconds=4.0))
    g.music_on_s = 1.0
    assert isinstance(g.fade_end_s, float)  # before: TypeError on the second read


def test_the_scheduler_never_raises_when_the_intro_gate_fails(wav):
    p = Performer(FileSource(wav, realtime=True), [Collect()])

    class Broken:
        @property
        def fade_end_s(self):
            raise TypeError("'NoneType' object is not subscriptable")

    p._intro_gate = Broken()
    p._step_intro(0.0, 0.1)  # before: raised outside the method's try
    assert p.stats().intro_errors == 1


def test_scheduler_and_output_clock_errors_are_each_warned(wav, caplog):
    caplog.set_level(logging.WARNING, logger="livedance.live")
    p = Performer(FileSource(wav, realtime=True), [Collect()], config=PerformConfig(gc_freeze=False))

    def bad_step(gen, t):
        raise RuntimeError("step broke")

    def bad_tick(due):
        raise RuntimeError("tick broke")

    p._step, p._tick = bad_step, bad_tick
    p.run(duration_s=0.3)
    p.stop()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "scheduler error: RuntimeError: step broke" in text
    assert "output clock error: RuntimeError: tick broke" in text  # before: one flag silenced the other


class Blocking(logging.Handler):
    """A log handler stuck like a terminal nobody reads, until ``gate`` is set."""

    def __init__(self, gate: threading.Event):
        super().__init__(logging.WARNING)
        self.gate, self.threads = gate, []

    def emit(self, record):
        self.threads.append(threading.current_thread().name)
        self.gate.wait(10)


def test_a_blocked_log_cannot_stall_the_output_clock(wav):
    from livedance.live.sinks import VMCSink

    gate = threading.Event()
    handler = Blocking(gate)
    logs = [logging.getLogger("livedance.live"), logging.getLogger("livedance.bridges")]
    for log in logs:
        log.addHandler(handler)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    closed_port = s.getsockname()[1]
    s.close()  # nothing listens there: the VMC sender's first send error is warned (from inside its send)

    class Failing(Collect):
        def send(self, frame, music):
            super().send(frame, music)
            raise RuntimeError("receiver gone")

    sink = Failing()
    vmc = VMCSink("127.0.0.1", closed_port)
    p = Performer(FileSource(wav, realtime=True), [sink, vmc], config=PerformConfig(gc_freeze=False))
    try:
        p.start()
        time.sleep(0.2)  # the sinks' first failures are logged: the handler blocks
        n0, s0 = sink.frames, p.stats().gen_steps
        time.sleep(0.5)
        n1, s1 = sink.frames, p.stats().gen_steps
    finally:
        gate.set()
        p.stop()
        for log in logs:
            log.removeHandler(handler)
    assert n1 - n0 > 5  # 60 fps: about 30; before: 0, the clock waited on the log
    assert s1 > s0  # and the scheduler goes on stepping the dance (the log has its own writer thread)
    assert vmc.send_errors > 0
    assert handler.threads and set(handler.threads) == {"livedance-log"}


# ---------------------------------------------------------------------------------------------- 4: BVH gaps
def test_a_bvh_recording_repeats_the_last_frame_over_missing_ticks(tmp_path):
    rest = default_rest_offsets()

    class Rec:
        fixed_frame_time, fps, path = True, 60.0, "fixed"

        def __init__(self):
            self.t = []

        def write(self, frame):
            self.t.append(frame.t_show_s)

        def close(self):
            pass

    fixed = Rec()
    stamped = make_recorder(tmp_path / "take.npz", rest, 60.0)  # keeps each frame's time: no fill
    bvh = make_recorder(tmp_path / "take.bvh", rest, 60.0)
    rt = RecorderThread([fixed, stamped, bvh], max_fill_s=1.0)
    ticks = [k for k in range(20) if k not in (10, 11, 12)] + [20 + 120]  # 3 ticks lost, then a 2 s stall
    for k in ticks:
        q = np.tile(np.array([0, 0, 0, 1], np.float32), (55, 1))
        rt.send(PoseFrame(t_show_s=100.0 + k / 60.0, local_quats=q, root_position=np.array([0, 0.95, k / 1e3], np.float32),
                          rest_offsets=rest), None)
    assert rt.close()
    assert len(fixed.t) == 20 + 60 + 1  # 17 + 3 copies, the stall capped at 1 s (60 copies), the last frame
    assert fixed.t[10:13] == [100.0 + 9 / 60.0] * 3  # the frame before the gap, repeated
    assert rt.filled == 2 * 63 and rt.fill_capped == 2
    from livedance.live.sinks import SinkSet

    sinks = SinkSet([rt])  # what PerformStats reports
    assert sinks.record_fills == 2 * 63 and sinks.record_fills_capped == 2
    assert np.load(tmp_path / "take.npz")["t_show_s"].shape[0] == len(ticks)
    frames = int(re.search(rb"Frames: *(\d+)", (tmp_path / "take.bvh").read_bytes()).group(1))
    assert frames == 81 and rt.per_recorder[str(tmp_path / "take.bvh")][0] == 81


def test_frames_a_recorder_failed_to_write_are_filled_like_missing_ticks(tmp_path):
    """A disk that refuses frames 11-40 must not leave the rest of a fixed-frame-time take early against the music."""
    rest = default_rest_offsets()

    class Flaky:
        fixed_frame_time, fps, path = True, 60.0, "flaky"

        def __init__(self):
            self.t = []

        def write(self, frame):
            if 11 <= round((frame.t_show_s - 100.0) * 60.0) <= 40:
                raise OSError(28, "No space left on device")
            self.t.append(frame.t_show_s)

        def close(self):
            pass

    class Fine(Flaky):
        path = "fine"

        def write(self, frame):
            self.t.append(frame.t_show_s)

    flaky, fine = Flaky(), Fine()
    rt = RecorderThread([flaky, fine], max_fill_s=1.0)
    q = np.tile(np.array([0, 0, 0, 1], np.float32), (55, 1))
    for k in range(120):
        rt.send(PoseFrame(t_show_s=100.0 + k / 60.0, local_quats=q, root_position=np.zeros(3, np.float32),
                          rest_offsets=rest), None)
    assert rt.close()
    assert len(fine.t) == 120 and len(flaky.t) == 120  # 90 written + 30 copies: still in time with the music
    assert flaky.t[11:41] == [100.0 + 10 / 60.0] * 30  # the last frame it wrote, repeated over its outage
    assert rt.filled == 30 and rt.per_recorder["flaky"] == [120, 30]


def test_the_deferred_log_restarts_after_a_timed_out_stop_and_loses_nothing():
    from livedance.live.deferlog import DeferredLog

    gate = threading.Event()
    handler = Blocking(gate)
    log = logging.getLogger("livedance.test.deferlog")
    log.addHandler(handler)
    log.propagate = False
    try:
        d = DeferredLog(log)
        d.start(period_s=0.01)
        d.warning("a")
        time.sleep(0.1)  # the writer is now blocked in the handler on "a"
        assert d.stop(timeout=0.05) is False  # it could not finish
        d.start(period_s=0.01)  # a new writer, not the finishing one
        d.warning("b")
        gate.set()
        assert d.stop(timeout=2.0) is True
        assert len(handler.threads) == 2  # "a" and "b" both written
    finally:
        log.removeHandler(handler)


def test_dropped_records_are_reported_once_even_by_two_writers():
    """After a timed-out stop two drains can overlap; the drop count is claimed before it is written."""
    from livedance.live.deferlog import DeferredLog

    gate = threading.Event()
    messages = []

    class BlockingOnA(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())
            if record.getMessage() == "a":
                gate.wait(10)

    handler = BlockingOnA(logging.WARNING)
    log = logging.getLogger("livedance.test.deferlog.dropped")
    log.addHandler(handler)
    log.propagate = False
    try:
        d = DeferredLog(log, maxlen=1)
        for m in "abc":
            d.warning(m)  # "a" queued, "b" and "c" dropped
        first = threading.Thread(target=d.drain)
        first.start()  # blocks in the handler on "a"
        time.sleep(0.05)
        threading.Timer(0.2, gate.set).start()  # (the handler's own lock holds the second writer until then)
        d.drain()  # the second writer: it reports the drops, and the first, once unblocked, must not again
        first.join(2.0)
        texts = [m for m in messages if "dropped" in m]
        assert texts == ["2 log records of the output clock were dropped (the log could not keep up)"]
    finally:
        log.removeHandler(handler)


def test_a_stopped_performer_cannot_be_started_again(wav):
    """Its recordings are closed and its stop flags set: a second start would run a source nobody stops."""
    src = FileSource(wav, realtime=True)
    p = Performer(src, [Collect()], config=PerformConfig(gc_freeze=False, control_port=0))
    p.stop()  # e.g. a cleanup path that ran first
    with pytest.raises(ConfigError, match="was stopped"):
        p.start()
    assert src.status is not SourceStatus.RUNNING


def test_a_bvh_frame_kept_despite_a_failed_flush_is_neither_lost_nor_repeated(tmp_path, monkeypatch):
    """BVHWriter keeps a frame and then raises when the flush after it fails (a full disk): the take must hold
    every frame once, so it stays in time with the music."""
    from fakes_io import fail_first_pwrite

    rest = default_rest_offsets()
    failed = fail_first_pwrite(monkeypatch)
    rt = RecorderThread([make_recorder(tmp_path / "take.bvh", rest, 60.0)], max_fill_s=1.0)
    q = np.tile(np.array([0, 0, 0, 1], np.float32), (55, 1))
    for k in range(90):
        rt.send(PoseFrame(t_show_s=100.0 + k / 60.0, local_quats=q, root_position=np.zeros(3, np.float32),
                          rest_offsets=rest), None)
    assert rt.close()
    frames = int(re.search(rb"Frames: *(\d+)", (tmp_path / "take.bvh").read_bytes()).group(1))
    assert failed and frames == 90 and rt.filled == 0
    assert rt.per_recorder[str(tmp_path / "take.bvh")] == [90, 1]  # every frame in, the one error counted
