"""Latency calibration: tap-along maths and session, loopback cross-correlation, the user config, the CLI.

The JACK test needs a running JACK server (scripts/test.sh starts one on the dummy backend and sets
LIVEDANCE_JACK=1); it skips otherwise.
"""

from __future__ import annotations

import json
import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from livedance.audio.devices import DeviceInfo
from livedance.calibration.latency import (
    LoopbackConfig,
    SoundDevicePlayer,
    StreamTaps,
    TapConfig,
    TapSession,
    estimate_round_trip,
    estimate_tap_offset,
    loopback_signal,
    measure_loopback,
    nearest_beat_offsets,
)
from livedance.calibration.user_config import (
    LoopbackRecord,
    TapRecord,
    UserConfig,
    config_path,
    load_user_config,
    save_user_config,
)
from livedance.errors import AudioError, ConfigError, DataError


# ---------------------------------------------------------------------------------------------- helpers
class FakeClock:
    """A settable clock (seconds)."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class ScriptedTaps:
    """A text stream without a file descriptor: each readline() jumps the clock to the next scripted
    tap time (relative to the first readline() call) and returns a newline; then EOF."""

    def __init__(self, clock: FakeClock, times_rel: list[float]) -> None:
        self.clock = clock
        self.times = list(times_rel)
        self.origin: float | None = None

    def readline(self) -> str:
        if self.origin is None:
            self.origin = self.clock.t
        if not self.times:
            return ""
        self.clock.t = self.origin + self.times.pop(0)
        return "\n"


class RealtimeScriptedStdin:
    """Like ScriptedTaps on the real perf_counter clock: readline() sleeps until the tap is due."""

    def __init__(self, times_rel: list[float]) -> None:
        self.times = list(times_rel)
        self.origin: float | None = None

    def readline(self) -> str:
        if self.origin is None:
            self.origin = time.perf_counter()
        if not self.times:
            return ""
        due = self.origin + self.times.pop(0)
        while (left := due - time.perf_counter()) > 0:
            time.sleep(min(left, 0.002) if left < 0.01 else left - 0.005)
        return "\n"

    def isatty(self) -> bool:
        return False


class FakePlayer:
    """A ClickPlayer whose first sample reached the DAC at a known time."""

    label = "fake output"
    sample_rate = 8000

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.audio: np.ndarray | None = None
        self.stopped = False

    def start(self, audio):
        self.audio = audio

    def first_sample_time(self):
        return self.t0

    def stop(self):
        self.stopped = True


def _device(index=0, name="fake", ins=2, outs=2, sr=48000.0) -> DeviceInfo:
    return DeviceInfo(
        index=index, name=name, hostapi="Fake", max_input_channels=ins, max_output_channels=outs,
        default_samplerate=sr, default_input=True, default_output=True,
    )


# ---------------------------------------------------------------------------------------------- tap maths
def test_nearest_beat_offsets_signs_and_edges():
    beats = [1.0, 1.5, 2.0]
    taps = [0.9, 1.04, 1.30, 1.74, 2.2]
    # 0.9 -> 1.0 (-0.1); 1.04 -> 1.0 (+0.04); 1.30 -> 1.5 (-0.2); 1.74 -> 1.5 (+0.24); 2.2 -> 2.0 (+0.2)
    np.testing.assert_allclose(nearest_beat_offsets(taps, beats), [-0.1, 0.04, -0.2, 0.24, 0.2], atol=1e-12)
    with pytest.raises(DataError):
        nearest_beat_offsets([1.0], [])
    with pytest.raises(DataError):
        nearest_beat_offsets([1.0], [2.0, 1.0])


def test_tap_offset_median_drops_warmup_and_outliers():
    rng = np.random.default_rng(7)
    period = 0.6
    beats = 2.0 + period * np.arange(32)
    true_offset = 0.045
    taps = beats + true_offset + rng.normal(0.0, 0.008, beats.size)
    taps[:4] = beats[:4] + np.array([0.21, -0.18, 0.15, 0.12])  # finding the beat
    taps[10] = beats[10] + 0.25  # a late stumble
    taps[20] = beats[20] - 0.2  # an early one
    est = estimate_tap_offset(taps, beats, discard_first=4, mad_k=3.0)
    assert abs(est.offset_s - true_offset) < 0.005
    assert 0.004 < est.spread_s < 0.014  # recovers the 8 ms scatter
    assert est.n_discarded == 4
    assert not est.kept[:4].any()
    assert not est.kept[10] and not est.kept[20]
    assert est.n_outliers == 2
    assert est.n_kept == 32 - 4 - 2
    # The mean would be pulled by the outliers; the median is not.
    assert abs(est.offset_ms - 45.0) < 5.0


def test_tap_offset_ignores_taps_off_the_grid_and_needs_enough_taps():
    beats = np.arange(10) * 0.5
    taps = list(beats + 0.03) + [beats[-1] + 2.0]  # a stray tap long after the last beat
    est = estimate_tap_offset(taps, beats, discard_first=2, min_kept=4)
    assert est.offset_s == pytest.approx(0.03, abs=1e-9)
    assert not est.kept[-1]
    with pytest.raises(DataError, match="usable taps"):
        estimate_tap_offset(beats[:5] + 0.03, beats, discard_first=4, min_kept=4)
    with pytest.raises(ConfigError):
        estimate_tap_offset(taps, beats, mad_k=0.0)


# ---------------------------------------------------------------------------------------------- tap session
def test_visual_tap_session_with_scripted_input_recovers_offset():
    clock = FakeClock()
    cfg = TapConfig(bpm=120, beats=16, lead_in_s=1.0, discard_first=4, min_kept=6)
    rel = cfg.beat_offsets_s()
    script = [rel[0] + 0.3, rel[1] - 0.2]  # two wild warm-up taps
    script += list(rel[2:] + 0.030)
    script.insert(9, rel[7] + 0.2)  # a double tap between beats 7 and 8: an outlier
    lines: list[str] = []
    taps = StreamTaps(ScriptedTaps(clock, script), clock=clock)
    run = TapSession(cfg, taps, player=None, clock=clock, echo=lines.append).run()
    assert run.mode == "visual"
    assert run.estimate.offset_s == pytest.approx(0.030, abs=1e-6)
    assert run.estimate.n_taps == len(script)
    assert run.estimate.n_outliers == 1
    np.testing.assert_allclose(np.diff(run.beat_times_s), 0.5)
    assert sum(s.lower().startswith("beat") for s in lines) == cfg.beats  # every beat was shown


def _audio_session(cfg, clock, player, script):
    """An audio tap session with scripted taps at ``script`` (session seconds), run to the end."""
    return TapSession(cfg, StreamTaps(ScriptedTaps(clock, script), clock=clock), player=player, clock=clock,
                      echo=lambda s: None).run()


def test_audio_tap_session_uses_the_players_dac_time():
    clock = FakeClock(50.0)
    cfg = TapConfig(bpm=100, beats=14, lead_in_s=0.5, discard_first=2, min_kept=6)
    # The first sample reached the DAC 0.120 s after the session started; taps come 0.040 s after
    # each click as heard. The session must measure 40 ms, not 160 ms.
    player = FakePlayer(t0=clock.t + 0.120)
    run = _audio_session(cfg, clock, player, list(0.120 + cfg.beat_offsets_s() + 0.040))
    assert run.mode == "audio" and run.device == "fake output"
    assert run.estimate.offset_ms == pytest.approx(40.0, abs=1e-3)
    assert player.stopped
    # The click track has exactly `beats` clicks, the first after the lead-in.
    audio = player.audio
    env = np.abs(audio) > 0.05
    onsets = np.flatnonzero(env[1:] & ~env[:-1]) + 1
    starts = onsets[np.insert(np.diff(onsets) > 0.2 * player.sample_rate, 0, True)]
    assert starts.size == cfg.beats
    assert starts[0] / player.sample_rate == pytest.approx(cfg.lead_in_s, abs=0.002)


def test_audio_tap_session_waits_for_the_taps_of_a_late_opening_slow_output():
    """An output that starts 0.5 s after the session (a slow device open) and a tapper 0.1 s behind each click
    at 240 BPM: the session waits for the last click as heard, so no tap is lost."""
    clock = FakeClock(50.0)
    cfg = TapConfig(bpm=240, beats=14, lead_in_s=0.5, discard_first=2, min_kept=6)
    player = FakePlayer(t0=clock.t + 0.5)
    run = _audio_session(cfg, clock, player, list(0.5 + cfg.beat_offsets_s() + 0.1))
    assert len(run.tap_times_s) == cfg.beats  # the last ones too (they came after t_start + last click + 1 beat)
    assert run.estimate.offset_ms == pytest.approx(100.0, abs=1e-3)


def test_tap_config_validation():
    with pytest.raises(ConfigError, match="--bpm"):
        TapConfig(bpm=5).validate()
    with pytest.raises(ConfigError, match="--beats"):
        TapConfig(beats=5, discard_first=4, min_kept=6).validate()


def test_sound_device_player_timestamps_sample_zero():
    """A fake OutputStream calls back in real time and reports a 25 ms DAC lead: sample 0's time is the
    first callback's time + 25 ms (the lower envelope of the per-callback observations)."""
    lead = 0.025
    calls: list[float] = []

    class FakeOut:
        def __init__(self, callback, blocksize, channels, samplerate, **kw):
            self.cb, self.bs, self.ch, self.sr = callback, blocksize, channels, samplerate
            self.out: list[np.ndarray] = []
            self._stop = threading.Event()
            self._th = threading.Thread(target=self._run)

        def _run(self):
            t_start = time.perf_counter()
            for k in range(20):
                due = t_start + k * self.bs / self.sr
                while time.perf_counter() < due:
                    time.sleep(0.0005)
                buf = np.zeros((self.bs, self.ch), np.float32)
                now = time.perf_counter()
                calls.append(now)
                self.cb(buf, self.bs, SimpleNamespace(currentTime=1000.0, outputBufferDacTime=1000.0 + lead), None)
                self.out.append(buf)

        def start(self):
            self._th.start()

        def stop(self):
            self._th.join()

        def close(self):
            pass

    made = []

    def factory(**kw):
        made.append(FakeOut(**kw))
        return made[-1]

    player = SoundDevicePlayer(device=0, sample_rate=8000, block_size=80, stream_factory=factory, devices=[_device(sr=8000)])
    audio = np.linspace(-1, 1, 1000, dtype=np.float32)
    player.start(audio)
    made[0]._th.join()
    t0 = player.first_sample_time()
    player.stop()
    assert t0 is not None
    assert calls[0] + lead - 0.002 <= t0 <= calls[0] + lead + 0.001
    played = np.concatenate(made[0].out)
    np.testing.assert_array_equal(played[:1000, 0], audio)
    np.testing.assert_array_equal(played[:1000, 1], audio)
    assert not played[1000:].any()


# ---------------------------------------------------------------------------------------------- loopback
def test_estimate_round_trip_finds_a_known_delay_in_noise():
    sr = 48000
    cfg = LoopbackConfig(clicks=6, interval_s=0.3, max_latency_s=0.2, lead_in_s=0.1)
    sig, starts, tpl = loopback_signal(cfg, sr)
    delay = 1234
    rng = np.random.default_rng(3)
    rec = np.zeros_like(sig)
    rec[delay:] = 0.3 * sig[:-delay]
    rec[delay + 200 :] += 0.1 * sig[: -(delay + 200)]  # a weaker reflection
    rec += rng.normal(0, 0.01, rec.size).astype(np.float32)
    lags, snr = estimate_round_trip(rec, starts, tpl, int(0.2 * sr))
    assert lags.tolist() == [delay] * 6
    assert np.all(snr > 8)
    # Pure noise: nothing is found.
    lags0, _ = estimate_round_trip(rng.normal(0, 0.01, rec.size), starts, tpl, int(0.2 * sr))
    assert lags0.size <= 1


class FakeDuplex:
    """A fake sounddevice.Stream: the callback runs in a thread, the input is the output delayed by
    `delay` >= blocksize samples (a cable), or silence when not connected."""

    def __init__(self, callback, blocksize, channels, samplerate, delay, connected=True, reported=(0.004, 0.006), **kw):
        self.cb, self.bs, (self.cin, self.cout), self.sr = callback, blocksize, channels, samplerate
        self.delay, self.connected, self.latency = delay, connected, reported
        self._halt = threading.Event()
        self._th = threading.Thread(target=self._run)
        self.closed = False

    def _run(self):
        line = np.zeros(self.delay, np.float32)  # a sample written now is read back `delay` samples later
        while not self._halt.is_set():
            out = np.zeros((self.bs, self.cout), np.float32)
            # Input for this block: the delay line's oldest samples.
            indata = np.repeat(line[: self.bs, None], self.cin, axis=1) if self.connected else np.zeros((self.bs, self.cin), np.float32)
            self.cb(indata, out, self.bs, None, None)
            line = np.concatenate([line[self.bs :], out[:, 0]])
            time.sleep(0.0002)

    def start(self):
        self._th.start()

    def stop(self):
        self._halt.set()
        self._th.join()

    def close(self):
        self.closed = True


def test_measure_loopback_with_a_fake_cable():
    made = []

    def factory(**kw):
        made.append(FakeDuplex(delay=700, **kw))
        return made[-1]

    cfg = LoopbackConfig(clicks=5, interval_s=0.1, lead_in_s=0.02, max_latency_s=0.05, sample_rate=48000, block_size=128)
    est = measure_loopback(0, 0, cfg, stream_factory=factory, devices=[_device()])
    assert est.round_trip_samples == 700
    assert est.lags_samples.size == 5
    assert est.reported_s == pytest.approx(0.010)
    assert est.extra_s == pytest.approx(700 / 48000 - 0.010)
    assert made[0].closed


def test_measure_loopback_without_connection_names_the_input():
    def factory(**kw):
        return FakeDuplex(delay=10, connected=False, **kw)

    cfg = LoopbackConfig(clicks=4, interval_s=0.1, lead_in_s=0.02, max_latency_s=0.05, sample_rate=48000, block_size=128)
    with pytest.raises(AudioError, match="came back on input"):
        measure_loopback(0, 0, cfg, stream_factory=factory, devices=[_device(name="cardX")])


def _jack_ready() -> bool:
    if not os.environ.get("LIVEDANCE_JACK"):
        return False
    from livedance.audio import jack

    return jack.jack_tools_available() and jack.server_running()


@pytest.mark.jack
@pytest.mark.skipif(not _jack_ready(), reason="needs a running JACK server (scripts/test.sh starts one and sets LIVEDANCE_JACK=1)")
def test_loopback_through_jack_ports_matches_portaudio_report():
    """A real JACK graph: livedance's own output ports connected to its input ports. The measured round
    trip is exact to the sample and equals PortAudio's reported stream latency (JACK reports its
    buffers exactly), for two block sizes."""
    from livedance.audio import list_devices, portaudio

    if not any(d.is_jack for d in list_devices()):
        portaudio.rescan()
    if not any(d.is_jack for d in list_devices()):
        pytest.skip("PortAudio sees no JACK device")
    results = {}
    for bs in (256, 512):
        cfg = LoopbackConfig(clicks=4, interval_s=0.3, lead_in_s=0.3, max_latency_s=0.25, block_size=bs)
        est = measure_loopback("jack:", "jack:", cfg, jack_loop=True)
        assert est.lags_samples.size == 4
        assert np.ptp(est.lags_samples) == 0
        assert est.round_trip_samples == round(est.reported_s * est.sample_rate)
        results[bs] = est.round_trip_samples
    assert results[512] > results[256] > 0


# ---------------------------------------------------------------------------------------------- user config
def test_config_path_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVEDANCE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "livedance" / "config.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/path")  # invalid per the XDG spec: ignored
    assert config_path().parent.parent.name == ".config"
    monkeypatch.setenv("LIVEDANCE_CONFIG", str(tmp_path / "mine.json"))
    assert config_path() == tmp_path / "mine.json"


def test_config_round_trip_keeps_unknown_keys(monkeypatch, tmp_path):
    path = tmp_path / "a" / "b" / "config.json"
    monkeypatch.setenv("LIVEDANCE_CONFIG", str(path))
    assert load_user_config() == UserConfig()  # missing file: defaults
    cfg = UserConfig(
        output_latency_ms=42.5,
        input_latency_ms=-3.0,
        tap=TapRecord(offset_ms=42.5, spread_ms=9.0, taps=30, kept=24, bpm=100.0, device="card"),
        loopback=LoopbackRecord(round_trip_ms=20.0, reported_ms=14.0, extra_ms=6.0, spread_ms=0.0, clicks=8, sample_rate=48000),
        extra={"future_key": {"x": 1}},
    )
    assert save_user_config(cfg) == path
    back = load_user_config()
    assert back == cfg
    assert back.output_latency_s == pytest.approx(0.0425)
    assert json.loads(path.read_text())["future_key"] == {"x": 1}
    assert not list(path.parent.glob(".*.tmp*"))  # no temporary file left behind


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"output_latency_ms": "fast"}', "output_latency_ms"),
        ('{"output_latency_ms": 99999}', "output_latency_ms"),
        ('{"input_latency_ms": true}', "input_latency_ms"),
        ('{"tap": {"offset_ms": 1}}', r"tap\.spread_ms"),
        ('{"loopback": 3}', "loopback"),
        ('{"version": 99}', "newer"),
        ('{"output_latency_ms": 1' + "0" * 400 + "}", "output_latency_ms must be a finite number"),
        ('{"tap": {"offset_ms": 1' + "0" * 400 + "}}", r"tap\.offset_ms must be a finite number"),
        ('{"output_latency_ms": 1' + "0" * 5000 + "}", "cannot read it as JSON"),
    ],
)
def test_malformed_config_raises_config_error_naming_the_file(tmp_path, text, match):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_user_config(path)
    assert str(path) in str(info.value)


def test_save_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "dotfiles" / "livedance.json"
    real.parent.mkdir()
    save_user_config(UserConfig(output_latency_ms=1.0), real)
    link = tmp_path / "config.json"
    link.symlink_to(real)
    save_user_config(UserConfig(output_latency_ms=33.0), link)  # as a dotfile manager's link
    assert link.is_symlink() and load_user_config(real).output_latency_ms == 33.0


def test_a_config_path_that_cannot_be_checked_is_a_config_error(tmp_path):
    """A name too long for the file system (or a folder the user may not enter) is a ConfigError naming the
    path, not an OSError traceback that would stop perform before the show."""
    from livedance.calibration.user_config import config_exists

    long = tmp_path / ("a" * 300 + ".json")
    with pytest.raises(ConfigError, match="cannot check the livedance config") as info:
        load_user_config(long)
    assert "a" * 300 in str(info.value)
    assert config_exists(tmp_path / "none.json") is False
    assert config_exists(tmp_path / "none" / "deeper.json") is False
    (tmp_path / "file").write_text("x")
    assert config_exists(tmp_path / "file" / "under-a-file.json") is False  # ENOTDIR: missing, not an error


def test_a_rewrite_keeps_the_files_permissions(tmp_path):
    path = tmp_path / "c.json"
    save_user_config(UserConfig(output_latency_ms=1.0), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a new file: the usual permissions, not mkstemp's 0600
    os.chmod(path, 0o644)
    save_user_config(UserConfig(output_latency_ms=2.0), path)
    assert path.stat().st_mode & 0o777 == 0o644 and load_user_config(path).output_latency_ms == 2.0


def test_save_refuses_out_of_range(tmp_path):
    with pytest.raises(ConfigError, match="output_latency_ms"):
        save_user_config(UserConfig(output_latency_ms=float("nan")), tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_tap_visual_writes_config(monkeypatch, tmp_path, capsys):
    """`livedance calibrate latency --tap --visual` end to end on the real clock: the scripted stdin
    taps 30 ms after each printed beat; the stored visual offset is 30 ms (within sleep jitter)."""
    import sys

    from livedance.cli import main

    bpm, beats, lead = 400.0, 14, 0.3
    rel = lead + (60.0 / bpm) * np.arange(beats)
    monkeypatch.setattr(sys, "stdin", RealtimeScriptedStdin(list(rel + 0.030)))
    cfg_file = tmp_path / "config.json"
    save_user_config(UserConfig(output_latency_ms=12.0), cfg_file)
    rc = main(["calibrate", "latency", "--tap", "--visual", "--bpm", str(bpm), "--beats", str(beats),
               "--lead-in", str(lead), "--config", str(cfg_file), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "tap-visual"
    assert out["offset_ms"] == pytest.approx(30.0, abs=12.0)
    stored = load_user_config(cfg_file)
    assert stored.visual_tap is not None and stored.visual_tap.offset_ms == pytest.approx(out["offset_ms"])
    assert stored.output_latency_ms == 12.0  # a visual tap does not claim to be audio latency


def test_cli_set_show_and_malformed_file(tmp_path, capsys):
    from livedance.cli import main

    cfg_file = tmp_path / "c.json"
    assert main(["calibrate", "set", "--output-ms", "33", "--config", str(cfg_file)]) == 0
    assert load_user_config(cfg_file).output_latency_ms == 33.0
    capsys.readouterr()
    assert main(["calibrate", "show", "--config", str(cfg_file)]) == 0
    shown = capsys.readouterr().out
    assert '"output_latency_ms": 33.0' in shown
    cfg_file.write_text("{oops")
    assert main(["calibrate", "show", "--config", str(cfg_file)]) == 2
    assert str(cfg_file) in capsys.readouterr().err.replace("\n", "")
    assert main(["calibrate", "latency", "--tap", "--loopback", "--config", str(tmp_path / "x.json")]) == 2
    capsys.readouterr()
    # a negative unreported latency is a measurement like any other (the config and the tap accept it)
    neg = tmp_path / "neg.json"
    assert main(["calibrate", "set", "--output-ms", "-12", "--input-ms", "-3", "--config", str(neg)]) == 0
    assert (load_user_config(neg).output_latency_ms, load_user_config(neg).input_latency_ms) == (-12.0, -3.0)


def test_cli_show_expands_a_tilde_path(tmp_path, monkeypatch, capsys):
    from livedance.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    save_user_config(UserConfig(output_latency_ms=7.0), tmp_path / "home.json")
    assert main(["calibrate", "show", "--config", "~/home.json"]) == 0
    out = capsys.readouterr().out
    assert "not written yet" not in out and '"output_latency_ms": 7.0' in out


def test_avatar_hip_height_is_stored_checked_and_kept(tmp_path, capsys):
    from livedance.cli import main

    cfg_file = tmp_path / "c.json"
    assert main(["calibrate", "set", "--hip-height", "0.81", "--config", str(cfg_file)]) == 0
    assert "avatar hip height 0.81 m" in capsys.readouterr().out
    assert load_user_config(cfg_file).avatar_hip_height_m == 0.81
    assert main(["calibrate", "set", "--output-ms", "20", "--config", str(cfg_file)]) == 0  # other keys keep it
    assert load_user_config(cfg_file).avatar_hip_height_m == 0.81
    capsys.readouterr()
    assert main(["calibrate", "set", "--hip-height", "9", "--config", str(cfg_file)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--hip-height" in err and "less than or equal to 5" in err, err
    assert load_user_config(cfg_file).avatar_hip_height_m == 0.81  # a refused value changes nothing
    cfg_file.write_text('{"avatar_hip_height_m": "tall"}')
    with pytest.raises(ConfigError, match="avatar_hip_height_m must be a finite number"):
        load_user_config(cfg_file)


def test_piped_taps_count_each_line_once_whatever_its_line_end():
    r, w = os.pipe()
    os.write(w, b"\r\n \n\n\r")  # CRLF, a line holding a space, an empty line, a bare CR: four taps
    os.close(w)
    with os.fdopen(r, "r") as stream:
        taps = StreamTaps(stream)
        got = [taps.wait(1.0) for _ in range(4)]
        assert all(t is not None for t in got)
        with pytest.raises(EOFError):  # no fifth tap: the input ends
            taps.wait(1.0)
