"""The whole live loop and its faults: no receiver, bad endpoints, device lost, SIGTERM, bad controls,
failing generators and sinks, and beat alignment of the output on a click track."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from livedance.audio import DeviceInfo, LiveSource
from livedance.audio.file import FileSource
from livedance.bridges.fk import forward_kinematics
from livedance.bridges.frame import SMPLX_PARENTS
from livedance.errors import ConfigError
from livedance.eval.beat_align import motion_beats
from livedance.live.intro import IntroConfig
from livedance.live.performer import PerformConfig, Performer
from livedance.live.rest import default_rest_offsets
from livedance.live.sinks import RecorderThread, VMCSink, make_recorder

SR = 22050
REPO = Path(__file__).resolve().parents[1]


def click_track(seconds: float, bpm: float = 120.0, sr: int = SR, start_s: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(audio (N,) float32, click times (B,) s): 20 ms decaying 1 kHz clicks over a little noise."""
    n = int(seconds * sr)
    x = 0.003 * np.random.default_rng(0).standard_normal(n)
    clicks = np.arange(start_s, seconds, 60.0 / bpm)
    for c in clicks:
        i = int(c * sr)
        k = np.arange(min(int(0.02 * sr), n - i))
        x[i : i + len(k)] += 0.8 * np.sin(2 * np.pi * 1000 * k / sr) * np.exp(-k / (0.004 * sr))
    return x.astype(np.float32), clicks


@pytest.fixture(scope="module")
def click_wav(tmp_path_factory) -> tuple[Path, np.ndarray]:
    x, clicks = click_track(6.5)
    p = tmp_path_factory.mktemp("audio") / "clicks.wav"
    sf.write(p, x, SR)
    return p, clicks


class Collect:
    """A sink that keeps every frame (and can be told to fail)."""

    def __init__(self, fail: bool = False):
        self.name = "collect"
        self.frames = []
        self.fail = fail
        self.closed = False

    def send(self, frame, music):
        if self.fail:
            raise RuntimeError("sink exploded")
        self.frames.append((frame.t_show_s, frame.local_quats.copy(), frame.root_position.copy(), music))

    def close(self):
        self.closed = True


def positions(frames):
    rest = default_rest_offsets()
    return np.stack([forward_kinematics(q, rest, r, SMPLX_PARENTS)[1] for _, q, r, _ in frames])


def mean_speed(frames):
    p = positions(frames)
    return float(np.linalg.norm(np.diff(p, axis=0), axis=2).mean()) if len(p) > 1 else 0.0


def free_udp_port() -> int:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("audio_delay_s", [0.0, 0.15])
def test_motion_beats_land_on_heard_beats_with_output_latency(click_wav, audio_delay_s):
    """End to end on a click track: the motion beats of the frames, at the time they are SEEN (100 ms visual
    latency), fall on the clicks at the time they are HEARD, also when the room hears the music 150 ms after
    its stream-clock time (a played file's unreported output latency; the wrong sign would miss by 0.3 s)."""
    path, clicks = click_wav
    col = Collect()
    p = Performer(FileSource(path, realtime=True), [col],
                  config=PerformConfig(latency_s=0.1, audio_delay_s=audio_delay_s))
    p.run()
    origin = p.stream_origin
    p.stop()
    st = p.stats()
    assert st.frames_sent > 300 and st.misses <= 0.02 * st.frames_sent and st.clock_errors == 0  # misses only under heavy load
    t_show = np.array([f[0] for f in col.frames])
    keep = t_show - origin > 3.0  # the tracker locks within a few seconds
    frames = [f for f, k in zip(col.frames, keep) if k]
    mb = motion_beats(positions(frames), 60.0)
    mb_t = t_show[keep][mb] + 0.5 / 60 - origin - audio_delay_s  # the stream time of the music heard then
    heard = clicks[(clicks > mb_t[0] + 0.1) & (clicks < mb_t[-1] - 0.1)]
    off = np.array([np.min(np.abs(mb_t - c)) for c in heard])
    assert len(heard) >= 5
    assert np.median(off) < 0.05, (np.median(off), off)


@pytest.mark.parametrize("audio_delay_s", [0.0, 0.5])
def test_the_show_goes_on_until_the_files_end_is_heard(tmp_path, audio_delay_s):
    """A file's last sample is read audio_delay_s before the room hears it: run() returns only after the frame
    that shows the music's end was sent, so a recording keeps the song's last hit."""
    path = tmp_path / "two_seconds.wav"
    sf.write(path, (0.1 * np.sin(np.arange(2 * SR) * 0.05)).astype(np.float32), SR)
    col = Collect()
    p = Performer(FileSource(path, realtime=True), [col], None,
                  PerformConfig(audio_delay_s=audio_delay_s, gc_freeze=False, rt_priority=None))
    p.run(duration_s=10.0)
    p.stop()
    last_heard = p.heard_stream_time(col.frames[-1][0])
    assert 2.0 <= last_heard < 2.0 + 0.2  # the end was danced, and the show stopped soon after it


def test_live_nudges_move_the_grid_given_to_the_sinks_and_the_generator_alike(click_wav):
    """The VJ's nudges (BPM offset, phase offset in beats) move the grid of ``Performer._nudged`` (which the
    output clock's music state for the sinks uses) and of the generator's music context alike, and a nudge that
    takes the tempo to zero or below gives no tempo, not a negative one."""
    from livedance.live.listener import BeatSnapshot

    path, _ = click_wav
    p = Performer(FileSource(path, realtime=True), [Collect()], config=PerformConfig())
    snap = BeatSnapshot(bpm=120.0, beat_s=1.0, confidence=0.9, silent=False)
    assert p._nudged(snap, 1.25) == pytest.approx((120.0, 0.5))
    p.controls.apply("/livedance/nudge", [0.25])
    p.controls.apply("/livedance/nudge/bpm", [-30.0])
    bpm, phase = p._nudged(snap, 1.0 + 0.5 * 60.0 / 90.0)  # half a beat of the nudged 90 BPM grid later
    assert bpm == pytest.approx(90.0) and phase == pytest.approx(0.75)
    p.beat = lambda: snap  # the grid in use, as the listener would give it
    ctx = p._beat_context(1.0 + 0.5 * 60.0 / 90.0)
    assert (ctx.bpm, ctx.beat_phase) == pytest.approx((bpm, phase))
    slow = BeatSnapshot(bpm=25.0, beat_s=1.0, confidence=0.9, silent=False)
    assert p._nudged(slow, 2.0) == (0.0, 0.0)
    p.stop()


def test_a_nudge_reset_arriving_mid_read_never_pairs_old_and_new_nudges(click_wav):
    """The clock reads both nudges as one pair (``ControlState.nudges``): a ``/livedance/nudge/reset`` that the
    control thread applies while the clock is reading waits for the read, so the grid is the old one or the reset
    one, never the old tempo offset with the reset phase offset."""
    from livedance.live.controls import ControlState
    from livedance.live.listener import BeatSnapshot

    class ResetMidRead(ControlState):
        def __getattribute__(self, name):
            value = object.__getattribute__(self, name)
            if name == "bpm_offset" and object.__getattribute__(self, "__dict__").pop("armed", False):
                t = threading.Thread(target=self.apply, args=("/livedance/nudge/reset", []))
                t.start()
                t.join(0.3)  # the reset lands now unless the reader holds the state's lock
            return value

    path, _ = click_wav
    p = Performer(FileSource(path, realtime=True), [Collect()], config=PerformConfig())
    snap = BeatSnapshot(bpm=120.0, beat_s=1.0, confidence=0.9, silent=False)
    reads = (lambda: p._nudged(snap, 1.3), lambda: p._warp_grid(snap))
    plain = [read() for read in reads]  # no nudges
    for read, unnudged in zip(reads, plain):
        c = ResetMidRead()
        c.apply("/livedance/nudge", [0.25])
        c.apply("/livedance/nudge/bpm", [-30.0])
        p.controls = c
        nudged = read()
        assert nudged != pytest.approx(unnudged)
        c.__dict__["armed"] = True
        got = read()
        deadline = time.monotonic() + 2.0
        while c.bpm_offset != 0.0 and time.monotonic() < deadline:  # the reset, once the read let it in
            time.sleep(0.01)
        assert c.bpm_offset == 0.0 and c.phase_offset_beats == 0.0
        assert got == pytest.approx(nudged)  # the whole old pair, not half of it
        assert read() == pytest.approx(unnudged)
    p.stop()


# ---------------------------------------------------------------------------------------------- faults
def test_no_receiver_listening_keeps_running_with_one_warning(click_wav, caplog):
    path, _ = click_wav
    port = free_udp_port()  # nothing listens there
    caplog.set_level(logging.WARNING)
    vmc = VMCSink("127.0.0.1", port, "vrm0")
    p = Performer(FileSource(path, realtime=True), [vmc], config=PerformConfig())
    p.run(duration_s=1.0)
    p.stop()
    st = p.stats()
    assert st.frames_sent >= 40 and st.send_errors > 10 and st.clock_errors == 0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "Connection refused" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--vmc", "127.0.0.1:70000"], "out of range"),
        (["--osc", "no such host!:9000"], "neither an IP address"),
        (["--vmc", "localhost"], "HOST:PORT"),
        (["--record", "/nonexistent-dir/x.bvh"], "does not exist"),
    ],
)
def test_invalid_endpoint_is_one_line_error_without_traceback(click_wav, args, needle, capsys):
    from livedance.cli import main

    path, _ = click_wav
    code = main(["perform", str(path), "--duration", "1", "--quiet", "--no-controls", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in " ".join(err.split()) and "Traceback" not in err
    assert err.strip().count("error:") == 1


def test_invalid_endpoint_from_the_shell_exits_2_with_one_line():
    r = subprocess.run(
        [sys.executable, "-m", "livedance", "perform", "--vmc", "127.0.0.1:0", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--vmc '127.0.0.1:0'" in " ".join(r.stderr.split()) and len(r.stderr.strip().splitlines()) <= 2


class PacedBackend:
    """A fake PortAudio backend whose input stream plays a 120 BPM click track in real time from its own
    thread (as PortAudio's audio thread would), and whose device can be unplugged and plugged back."""

    DEV = DeviceInfo(1, "Fake USB interface", "ALSA", 2, 0, float(SR))

    def __init__(self):
        self.present = True
        self.streams = []
        self.audio, _ = click_track(600.0, start_s=0.0)  # clicks every 0.5 s from the backend's t0
        self.t0 = time.perf_counter()
        self.first_sample: int | None = None  # click-track sample of the first stream's sample 0

    def lister(self):
        return [self.DEV] if self.present else []

    def factory(self, **kw):
        backend = self

        class Stream:
            def __init__(self):
                self.active = False
                self._stop = threading.Event()
                self._th = None

            def start(self):
                self.active = True
                self._th = threading.Thread(target=self._pump, daemon=True)
                self._th.start()

            def _pump(self):
                bs = kw["blocksize"]
                n = int((time.perf_counter() - backend.t0) * SR) // bs * bs
                if backend.first_sample is None:
                    backend.first_sample = n
                while not self._stop.is_set():
                    due = backend.t0 + (n + bs) / SR
                    time.sleep(max(due - time.perf_counter(), 0))
                    if not backend.present:
                        return  # unplugged: no more callbacks
                    block = np.repeat(backend.audio[n : n + bs, None], 2, axis=1)
                    kw["callback"](block, bs, SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0), None)
                    n += bs

            def abort(self):
                self.active = False
                self._stop.set()

            stop = abort

            def close(self):
                self.abort()

        s = Stream()
        self.streams.append(s)
        return s


def test_device_lost_keeps_dancing_on_the_grid_and_reconnects():
    be = PacedBackend()
    src = LiveSource("fake usb", block_size=512, watchdog_s=0.2, backoff_s=(0.1, 0.2),
                     device_lister=be.lister, stream_factory=be.factory)
    col = Collect()
    p = Performer(src, [col], config=PerformConfig())
    p.start()
    try:
        time.sleep(3.5)  # the tracker locks on the clicks
        assert p.listener.beat.bpm > 0 and p.listener.beat.confidence > 0.1
        n_before = len(col.frames)
        be.present = False  # unplugged
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not p.listener.beat.lost:
            time.sleep(0.02)
        assert p.listener.beat.lost and p.listener.stats.lost_events == 1
        t_lost = time.perf_counter()
        time.sleep(1.2)
        during = [f for f in col.frames[n_before:] if f[0] > t_lost]
        blocks_lost = p.listener.stats.blocks
        be.present = True  # plugged back in
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and p.listener.stats.blocks < blocks_lost + 20:
            time.sleep(0.02)
        assert p.listener.stats.blocks >= blocks_lost + 20, "the source never came back"
        assert not p.listener.beat.lost and src.reconnects == 1 and p.listener.stats.gaps == 1
    finally:
        p.stop()
    st = p.stats()
    assert st.clock_errors == 0 and st.misses <= 0.02 * st.frames_sent  # misses only under heavy load
    # while the device was away the avatar kept dancing (not idling) on the predicted grid
    assert len(during) > 60
    assert mean_speed(during) > 2e-3
    mb = motion_beats(positions(during), 60.0)
    t = np.array([f[0] for f in during])[mb] + 0.5 / 60 - p.stream_origin
    t = t + be.first_sample / SR  # stream time 0 is click-track time first_sample / SR (the stream opens late)
    period = 0.5
    resid = (t / period + 0.5) % 1.0 - 0.5
    assert np.median(np.abs(resid)) * period < 0.06, resid * period


def test_sigterm_stops_cleanly_with_valid_recordings(click_wav, tmp_path):
    path, _ = click_wav
    bvh, npz = tmp_path / "out.bvh", tmp_path / "out.npz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedance", "perform", str(path), "--no-vmc", "--no-controls", "--quiet",
         "--record", str(bvh), "--record", str(npz)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any((tmp_path / "out.npz.parts").glob("chunk_*.npz")):
            time.sleep(0.05)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert took < 3.0, took  # generous bound for a loaded CI machine; the loop itself joins within 1 s
    assert "Traceback" not in err
    z = np.load(npz)
    n = z["local_quats"].shape[0]
    assert n >= 60 and z["root_position"].shape == (n, 3) and np.all(np.diff(z["t_show_s"]) > 0)
    import bvhio

    root = bvhio.readAsHierarchy(str(bvh))
    text = bvh.read_text()
    frames_decl = int(text.split("Frames:")[1].split()[0])
    motion_lines = text.split("Frame Time:")[1].strip().splitlines()[1:]
    assert frames_decl == len(motion_lines) >= 60
    assert root is not None and len(root.layout()) == 55


def test_malformed_osc_controls_are_ignored_and_counted_and_freeze_holds_the_pose(click_wav):
    from pythonosc.udp_client import SimpleUDPClient
    import socket

    path, _ = click_wav
    col = Collect()
    p = Performer(FileSource(path, realtime=True), [col], config=PerformConfig(control_port=0))
    p.start()
    try:
        cl = SimpleUDPClient("127.0.0.1", p.control_port)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.sendto(b"not osc at all", ("127.0.0.1", p.control_port))
        raw.sendto(b"/livedance/energy\x00\x00\x00,f\x00", ("127.0.0.1", p.control_port))  # truncated
        cl.send_message("/livedance/energy", "very")
        cl.send_message("/livedance/style", "tango")  # well-formed, but the dancer has no such style
        cl.send_message("/livedance/energy", 1.5)
        time.sleep(2.5)
        cl.send_message("/livedance/freeze", [])
        time.sleep(0.3)
        n0 = len(col.frames)
        time.sleep(0.3)
        frozen = col.frames[n0:]
        cl.send_message("/livedance/resume", [])
        time.sleep(0.3)
    finally:
        p.stop()
    st, c = p.stats(), p.controls
    assert c.malformed == 3 and c.energy == 1.5 and c.unsupported == 1
    assert st.clock_errors == 0 and st.frames_sent > 100
    assert len(frozen) > 10 and all(np.array_equal(f[1], frozen[0][1]) for f in frozen)
    assert not np.array_equal(col.frames[-1][1], frozen[0][1])  # moving again after resume


def test_osc_style_and_style_strength_reach_the_learned_dancer_between_steps(click_wav):
    """/livedance/style and /livedance/style/strength go through the scheduler to the learned generator's
    set_style; a strength alone keeps the style; requests it cannot apply are counted, and the show goes on."""
    from pythonosc.udp_client import SimpleUDPClient

    from engine_fixtures import tiny_step_graph
    from livedance.engine import build_generator
    from livedance.engine.style_prior import StylePrior

    graph, rep = tiny_step_graph()
    counts = {"jive": np.ones((2, 4, 32)), "slow": np.full((2, 4, 32), 2.0)}
    counts["jive"][:, :, 7] = 50.0
    gen = build_generator(graph, rep, "torch", seed=0,
                          style_prior=StylePrior.from_counts(counts, ("lower", "upper"), lineage=("abc",)))
    path, _ = click_wav
    p = Performer(FileSource(path, realtime=True), [Collect()], gen, config=PerformConfig(control_port=0))
    p.start()
    seen = []
    try:
        cl = SimpleUDPClient("127.0.0.1", p.control_port)
        cl.send_message("/livedance/style", "jive")
        time.sleep(1.0)
        seen.append((gen.style, gen.style_strength))
        cl.send_message("/livedance/style/strength", 2.5)  # clamped to 2
        time.sleep(1.0)
        seen.append((gen.style, gen.style_strength))
        cl.send_message("/livedance/style/strength", "hard")  # malformed
        cl.send_message("/livedance/style", "salsa")  # well-formed, unknown: counted, the style stays
        time.sleep(1.0)
        seen.append((gen.style, gen.style_strength))
        cl.send_message("/livedance/style", "none")
        time.sleep(1.0)
        seen.append((gen.style, gen.style_strength))
    finally:
        p.stop()
    assert seen == [("jive", 1.0), ("jive", 2.0), ("jive", 2.0), (None, 2.0)]
    c, st = p.controls, p.stats()
    assert c.malformed == 1 and c.unsupported == 1 and st.gen_errors == 0 and not st.fallback
    assert st.clock_errors == 0 and st.frames_sent > 100


def test_a_style_strength_for_a_dancer_without_one_is_counted_not_applied(click_wav):
    from livedance.live.procedural import ProceduralGenerator

    path, _ = click_wav
    gen = ProceduralGenerator()
    p = Performer(FileSource(path, realtime=True), [Collect()], gen, config=PerformConfig(control_port=0))
    p.controls.apply("/livedance/style", ["wave"])
    p.controls.apply("/livedance/style/strength", [0.5])
    p._apply_style_requests(gen)
    assert gen.style == "groove" and p.controls.unsupported == 1  # the pair is one request: neither applied
    p.controls.apply("/livedance/style", ["wave"])
    p._apply_style_requests(gen)
    assert gen.style == "wave" and p.controls.unsupported == 1
    p._apply_style_requests(gen)  # nothing pending: nothing happens
    assert p.controls.unsupported == 1


def test_a_pace_request_reaches_a_dancer_with_a_pace_input_and_is_counted_for_one_without(click_wav):
    """/livedance/pace between steps: a model trained with --pace takes it (0: its own draw again); a model without
    a pace input and the procedural dancer count it as unsupported, and the dance goes on as it was."""
    from engine_fixtures import tiny_step_graph
    from livedance.engine import build_generator
    from livedance.live.procedural import ProceduralGenerator
    from livedance.model.conditioning import COND_DIM

    path, _ = click_wav
    paced = build_generator(*tiny_step_graph(pace=(0.0, 0.4), cond_dim=COND_DIM + 1), "torch", seed=2)
    drawn = paced.pace
    p = Performer(FileSource(path, realtime=True), [Collect()], paced, config=PerformConfig(control_port=0))
    p.controls.apply("/livedance/pace", [0.7])
    p._apply_style_requests(paced)
    assert paced.pace == pytest.approx(0.7) and p.controls.unsupported == 0
    p.controls.apply("/livedance/pace", [0])
    p._apply_style_requests(paced)
    assert paced.pace == pytest.approx(drawn)
    for gen in (build_generator(*tiny_step_graph(), "torch", seed=2), ProceduralGenerator()):
        p.controls.apply("/livedance/pace", [0.7])
        p._apply_style_requests(gen)
    assert p.controls.unsupported == 2


class Exploding:
    fps = 25.0
    frames_per_step = 2

    def __init__(self, after: int, nan: bool = False):
        self.after, self.nan, self.calls = after, nan, 0

    def reset(self, seed=0):
        pass

    def step(self, music):
        from livedance.engine.base import MotionFrames

        self.calls += 1
        if self.calls > self.after and not self.nan:
            raise RuntimeError("CUDA error: out of memory")
        q = np.tile(np.array([0, 0, 0, 1.0], np.float32), (2, 55, 1))
        if self.nan and self.calls % 2:
            q[1, 3] = np.nan
        return MotionFrames(q, np.tile([0, 0.95, 0], (2, 1)).astype(np.float32), self.fps, music.t_first_frame_s)


def test_failing_generator_falls_back_and_nan_frames_become_safe_poses(click_wav, caplog):
    path, _ = click_wav
    caplog.set_level(logging.WARNING)
    p = Performer(FileSource(path, realtime=True), [Collect()], Exploding(after=5))
    p.run(duration_s=0.6)
    p.stop()
    st = p.stats()
    assert st.fallback and st.gen_errors == 1 and st.clock_errors == 0 and st.frames_sent > 20
    assert sum("switching to the procedural dancer" in r.getMessage() for r in caplog.records) == 1
    col = Collect()
    p = Performer(FileSource(path, realtime=True), [col], Exploding(after=10**9, nan=True))
    p.run(duration_s=0.5)
    p.stop()
    st = p.stats()
    assert not st.fallback and st.bad_frames > 3
    assert all(np.isfinite(f[1]).all() for f in col.frames)


def test_failing_sink_is_counted_and_warned_once_while_others_get_every_frame(click_wav, caplog, tmp_path):
    path, _ = click_wav
    caplog.set_level(logging.WARNING)
    good, bad = Collect(), Collect(fail=True)
    bad.name = "bad sink"
    rec = RecorderThread([make_recorder(tmp_path / "r.npz", default_rest_offsets(), 60.0)])
    p = Performer(FileSource(path, realtime=True), [bad, good, rec])
    p.run(duration_s=0.7)
    p.stop()
    st = p.stats()
    assert st.sink_errors["bad sink"] == st.frames_sent == len(good.frames) > 20
    assert sum("bad sink" in r.getMessage() for r in caplog.records) == 1
    assert good.closed and np.load(tmp_path / "r.npz")["local_quats"].shape[0] == st.frames_sent


class SlowRecorder:
    """A recorder on a slow disk: each write takes ``write_s``; ``gate`` (when given) blocks writes until set."""

    def __init__(self, write_s: float = 0.0, gate: threading.Event | None = None):
        self.write_s, self.gate, self.calls, self.path = write_s, gate, [], "slow.rec"

    def write(self, frame):
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.write_s)
        self.calls.append("write")

    def close(self):
        self.calls.append("close")


def test_a_recording_on_a_slow_disk_is_written_whole_before_it_is_closed():
    rec = SlowRecorder(write_s=0.004)
    rt = RecorderThread([rec], max_queue=1000)
    for _ in range(300):
        rt.send(object(), None)
    assert rt.close() is True  # waits as long as the disk needs (about 1.2 s here), not a fixed 5 s
    assert rec.calls == ["write"] * 300 + ["close"] and rt.frames == 300 and rt.dropped == 0
    rt.send(object(), None)  # after close: dropped and counted, never written to a closed file
    assert rt.dropped == 1 and rec.calls[-1] == "close"


def test_a_blocked_recording_cannot_hang_a_bounded_close_and_finishes_on_its_own():
    gate = threading.Event()
    rec = SlowRecorder(gate=gate)
    rt = RecorderThread([rec], max_queue=4)
    for _ in range(10):  # a full queue: the rest are dropped
        rt.send(object(), None)
    t0 = time.monotonic()
    assert rt.close(timeout=0.3) is False and time.monotonic() - t0 < 1.0
    assert "close" not in rec.calls  # never closed under a writer that is still busy
    gate.set()
    deadline = time.monotonic() + 5
    while "close" not in rec.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.calls == ["write"] * (10 - rt.dropped) + ["close"] and rt.dropped in (5, 6)  # (the writer may hold one)


class InterruptOnce(Collect):
    """A sink whose first close() is interrupted (a second Ctrl-C while the recordings close)."""

    def __init__(self):
        super().__init__()
        self.closes = 0

    def close(self):
        self.closes += 1
        if self.closes == 1:
            raise KeyboardInterrupt
        super().close()


def test_a_stop_cut_short_by_an_interrupt_is_finished_by_the_next_stop(click_wav):
    path, _ = click_wav
    sink = InterruptOnce()
    p = Performer(FileSource(path, realtime=True), [sink])
    p.run(duration_s=0.3)
    with pytest.raises(KeyboardInterrupt):
        p.stop()
    assert not sink.closed and not p.running
    p.stop()  # e.g. the CLI's finally block, or the user's own retry
    assert sink.closed and sink.closes == 2
    p.stop()
    assert sink.closes == 2  # idempotent once finished


def test_a_stop_interrupted_while_joining_the_threads_still_stops_the_listener_on_the_next_stop(click_wav):
    path, _ = click_wav
    p = Performer(FileSource(path, realtime=True), [Collect()], config=PerformConfig(control_port=0))
    p.start()
    time.sleep(0.3)
    real_stop = p.listener.stop
    calls = []

    def interrupted(timeout=1.0):
        calls.append(timeout)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real_stop(timeout)

    p.listener.stop = interrupted
    with pytest.raises(KeyboardInterrupt):
        p.stop()
    assert p.sinks.sinks[0].closed  # the recordings were closed all the same
    p.stop()
    assert len(calls) == 2 and p.listener._thread is None  # the next stop finished the job


def test_the_summary_names_every_recording_loss_and_the_recovery(tmp_path):
    from rich.console import Console

    from livedance.cli.perform_cmd import _report_recordings

    ok, dropped, unmerged, missing = (tmp_path / n for n in ("ok.bvh", "dropped.bvh", "cut.npz", "gone.bvh"))
    ok.write_text("x")
    dropped.write_text("x")
    (tmp_path / "cut.npz.parts").mkdir()
    con = Console(record=True, width=300)
    counts = {str(ok): (120, 0, 0), str(dropped): (100, 15, 0), str(unmerged): (100, 15, 0), str(missing): (0, 15, 62)}
    _report_recordings(con, [ok, dropped, unmerged, missing], SimpleNamespace(recordings=counts))
    text = con.export_text()
    assert f"recorded {ok}: 120 frames" in text and f"recorded {ok}: 120 frames;" not in text  # its own counts
    assert f"recorded {dropped}: 100 frames; 15 dropped" in text and "0 write errors" in text
    assert f"{unmerged} was not merged" in text and "recover_npz" in text
    assert f"{missing} was not written (62 recording errors)" in text


def test_each_recording_keeps_its_own_counts_when_another_one_fails(tmp_path):
    """One recording on a full disk must not make the good one's line read as empty."""
    from livedance.bridges.frame import PoseFrame

    class Full:
        path = str(tmp_path / "full.bvh")

        def write(self, frame):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    good = make_recorder(tmp_path / "good.npz", default_rest_offsets(), 60.0)
    rt = RecorderThread([good, Full()])
    rest = default_rest_offsets()
    for i in range(30):
        rt.send(PoseFrame.rest(rest), None)
    assert rt.close()
    assert rt.per_recorder[str(tmp_path / "good.npz")] == [30, 0] and rt.per_recorder[Full.path] == [0, 30]
    assert np.load(tmp_path / "good.npz")["local_quats"].shape[0] == 30


def test_stop_joins_every_thread_within_a_second(click_wav):
    path, _ = click_wav
    before = set(threading.enumerate())
    p = Performer(FileSource(path, realtime=True), [Collect()], config=PerformConfig(control_port=0))
    p.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    p.stop()
    assert time.monotonic() - t0 < 1.0
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not left, left
    with pytest.raises(ConfigError, match="fps"):
        Performer(FileSource(path), config=PerformConfig(fps=0))


def test_the_show_freezes_the_garbage_collector_before_the_stream_and_thaws_it_at_stop(click_wav):
    """``PerformConfig.gc_freeze``: a full collection holds the GIL for 100-200 ms, so the objects that exist
    when the show starts are frozen out of the collector's reach while it runs (and only then); with the
    option off nothing is frozen."""
    import gc

    path, _ = click_wav
    assert gc.get_freeze_count() == 0
    p = Performer(FileSource(path, realtime=True), [Collect()], config=PerformConfig())
    p.start()
    try:
        time.sleep(0.2)
        assert gc.get_freeze_count() > 1000  # at least the imported modules and the dancer
    finally:
        p.stop()
    assert gc.get_freeze_count() == 0
    p = Performer(FileSource(path, realtime=True), [Collect()], config=PerformConfig(gc_freeze=False))
    p.start()
    try:
        time.sleep(0.2)
        assert gc.get_freeze_count() == 0
    finally:
        p.stop()


def test_ableton_link_peers_set_the_tempo_of_the_dance(click_wav):
    """While the Link session has peers, the DJ's tempo (100 BPM) wins over the 120 BPM clicks."""
    import asyncio

    aalink = pytest.importorskip("aalink", reason="aalink (Ableton Link) is not installed")
    from livedance.beats.link import LinkBeatGrid

    loop = asyncio.new_event_loop()

    async def make():
        return aalink.Link(100.0)

    peer = loop.run_until_complete(make())
    peer.enabled = True
    grid = LinkBeatGrid(bpm=100.0)
    try:
        deadline = time.monotonic() + 3.0
        while grid.num_peers == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if grid.num_peers == 0:
            pytest.skip("Link peers did not discover each other in 3 s (multicast on loopback blocked?)")
        path, _ = click_wav
        p = Performer(FileSource(path, realtime=True), [Collect()], link=grid)
        p.run(duration_s=1.5)
        snap = p.beat()
        phase = grid.beat_phase(snap.beat_s)  # the snapshot's beat is a beat of the session
        p.stop()
    finally:
        peer.enabled = False
        loop.close()
        grid.close()
    assert snap.bpm == pytest.approx(100.0, abs=0.01) and snap.beat_s is not None
    assert min(phase, 1.0 - phase) < 0.02
    assert p.stats().clock_errors == 0


class Walker:
    """A 'learned' generator that walks 1 m/s along x (the stage leash pulls it back) and fails at step ``fail_at``."""

    fps = 30.0
    frames_per_step = 8

    def __init__(self, fail_at: int):
        self.k, self.fail_at = 0, fail_at

    def reset(self, seed=0):
        pass

    def step(self, music):
        from livedance.engine.base import MotionFrames

        self.k += 1
        if self.k >= self.fail_at:
            raise RuntimeError("model blew up")
        q = np.tile(np.array([0, 0, 0, 1.0], np.float32), (8, 55, 1))
        r = np.zeros((8, 3), np.float32)
        r[:, 1] = 0.95
        r[:, 0] = music.t_first_frame_s + np.arange(8) / self.fps
        return MotionFrames(q, r, self.fps, music.t_first_frame_s)


def test_the_fallback_dancer_is_not_leashed_or_faded_like_the_learned_one(tmp_path):
    """When the learned dancer fails, the procedural dancer's frames must not get the learned dancer's stage-leash
    offset (which had the avatar flash metres off stage) nor its idle fade; a --procedural dancer neither."""
    from livedance.live.listener import BeatSnapshot
    from livedance.live.procedural import ProceduralGenerator

    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    cfg = PerformConfig(gc_freeze=False, rt_priority=None, gil_switch_s=None)
    p = Performer(FileSource(path, realtime=True), [], Walker(fail_at=50), cfg)
    p._presence = 1.0
    p.listener._beat = BeatSnapshot(bpm=120.0, beat_s=0.0, confidence=0.9, silent=False)
    t, roots = 0.0, []
    for _ in range(55):
        f = p._step(p.generator, t)
        roots.append(np.asarray(f.root_translation)[:, 0])
        t = f.t0_s + len(f) / f.fps
    assert isinstance(p.generator, ProceduralGenerator) and np.abs(p._leash.offset).max() > 5  # it had walked away
    assert max(np.abs(r).max() for r in roots) < 3.0  # leashed while learned, in place after: never far off stage
    g = ProceduralGenerator()
    p = Performer(FileSource(path, realtime=True), [], g, cfg)
    p.listener._beat = BeatSnapshot(bpm=120.0, beat_s=0.0, confidence=0.9, silent=False)
    presence = p._presence
    ours = g.step(p._music(0.0))
    g.reset()
    shown = p._step(g, 0.0)
    assert p._presence == presence  # no learned-dancer fade for the procedural dancer
    np.testing.assert_allclose(shown.root_translation, ours.root_translation, atol=1e-6)


class HoldPose:
    """A 'learned' generator that always dances the same pose: left shoulder raised 90 degrees."""

    fps = 25.0
    frames_per_step = 4

    def reset(self, seed=0):
        pass

    def step(self, music):
        from livedance.engine.base import MotionFrames

        q = np.tile(np.array([0, 0, 0, 1.0], np.float32), (4, 55, 1))
        q[:, 16] = [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]  # left_shoulder, 90 deg about z
        return MotionFrames(q, np.tile([0, 0.95, 0], (4, 1)).astype(np.float32), self.fps, music.t_first_frame_s)


def test_learned_generator_fades_to_idle_when_the_music_stops(tmp_path):
    x, _ = click_track(2.5)
    path = tmp_path / "music_then_silence.wav"
    sf.write(path, np.concatenate([x, np.zeros(int(3.0 * SR), np.float32)]), SR)
    col = Collect()
    p = Performer(FileSource(path, realtime=True), [col], HoldPose(),
                  config=PerformConfig(idle_fade_s=0.3, intro=IntroConfig(seconds=0.0)))  # (the intro: below)
    p.run(duration_s=5.4)
    p.stop()
    origin = p.stream_origin
    dance_q = np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])

    def angle_to_dance(q):  # radians between the sent left-shoulder rotation and the model's
        return 2 * np.arccos(min(1.0, abs(float(np.dot(q[16], dance_q)))))

    during = [angle_to_dance(q) for t, q, _, _ in col.frames if 1.5 < t - origin < 2.4]
    after = [angle_to_dance(q) for t, q, _, _ in col.frames if t - origin > 4.6]
    assert during and after
    assert np.median(during) < 0.05  # the model's pose is shown while music plays
    assert np.median(after) > 1.2  # settled back near the idle pose (90 deg away) after the music stopped


def test_on_beat_intro_leads_then_hands_over_to_the_learned_dance(tmp_path):
    """When the music starts, the procedural dancer (on the beat by construction) leads for
    ``IntroConfig.seconds``; then the learned dance is shown alone. One start is counted, nothing fails."""
    x, _ = click_track(5.0)
    path = tmp_path / "music.wav"
    sf.write(path, x, SR)
    col = Collect()
    p = Performer(FileSource(path, realtime=True), [col], HoldPose(),
                  config=PerformConfig(intro=IntroConfig(seconds=1.5, fade_s=0.5)))
    p.run(duration_s=4.8)
    p.stop()
    origin = p.stream_origin
    dance_q = np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])

    def angle_to_dance(q):
        return 2 * np.arccos(min(1.0, abs(float(np.dot(q[16], dance_q)))))

    intro = [angle_to_dance(q) for t, q, _, _ in col.frames if 0.4 < t - origin < 1.4]
    after = [angle_to_dance(q) for t, q, _, _ in col.frames if 2.8 < t - origin < 4.6]
    assert intro and after
    assert np.median(intro) > 0.5  # the intro dancer's arms, not the model's raised shoulder
    assert np.median(after) < 0.05  # handed over: the model's pose alone
    st = p.stats()
    assert st.intro_starts == 1 and st.intro_ticks > 0 and st.intro_errors == 0 and st.clock_errors == 0


class Counting(Exploding):
    """A generator that counts a state reset every 3rd step and a bad input every step, and resets its counters
    (as a learned generator does at a new song) every 4th step."""

    def __init__(self):
        super().__init__(after=10**9)
        self.n_state_resets = self.n_bad_inputs = 0

    def step(self, music):
        if self.calls % 4 == 3:
            self.n_state_resets = self.n_bad_inputs = 0
        out = super().step(music)
        self.n_bad_inputs += 1
        self.n_state_resets += self.calls % 3 == 0
        return out


def test_the_learned_generators_state_resets_and_bad_inputs_reach_the_stats(click_wav):
    path, _ = click_wav
    gen = Counting()
    p = Performer(FileSource(path, realtime=True), [Collect()], gen)
    p.run(duration_s=0.5)
    p.stop()
    st = p.stats()
    assert st.gen_steps == gen.calls > 3
    assert st.bad_inputs == gen.calls  # one per step, across the generator's own counter resets
    assert st.state_resets == gen.calls // 3
