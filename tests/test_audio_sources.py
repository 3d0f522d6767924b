"""FileSource (offline, paced on a fake clock, played to a fake output), AudioBlock, rate checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedance.audio import AudioBlock, CaptureClock, DeviceInfo, FileSource, SourceStatus, validate_sample_rate
from livedance.errors import AudioError, ConfigError, DeviceNotFoundError

from fakes_io import FakeOutputStream


def _write(path: Path, audio: np.ndarray, sr: int) -> Path:
    sf.write(str(path), audio, sr, subtype="FLOAT")
    return path


@pytest.fixture
def stereo_file(tmp_path):
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, size=(11025, 2)).astype(np.float32)  # 0.25 s at 44.1 kHz
    return _write(tmp_path / "stereo.wav", audio, 44100), audio


def _collect(src, max_frames):
    blocks = []
    while (b := src.read(max_frames)) is not None:
        blocks.append(b)
    return blocks


@pytest.mark.parametrize("rate", [8000, 22050, 44100.0, 48000, 96000])
def test_validate_sample_rate_accepts_8k_to_96k(rate):
    assert validate_sample_rate(rate, "x") == int(rate)


@pytest.mark.parametrize("rate", [7999, 96001, 192000, 0, -44100, 44100.5, float("nan"), "fast"])
def test_validate_sample_rate_rejects_with_the_input_named(rate):
    with pytest.raises(AudioError, match="my-mic"):
        validate_sample_rate(rate, "my-mic")


def test_file_source_rejects_rates_outside_range(tmp_path):
    path = _write(tmp_path / "low.wav", np.zeros(4000, np.float32), 4000)
    with pytest.raises(AudioError, match=r"low\.wav.*4000 Hz"):
        FileSource(path, realtime=False)


def test_file_source_offline_content_equals_file_mixed_to_mono(stereo_file):
    path, audio = stereo_file
    src = FileSource(path, realtime=False)
    assert src.sample_rate == 44100 and src.status is SourceStatus.STOPPED
    assert src.read(100) is None  # not started
    src.start()
    blocks = _collect(src, 1000)
    assert src.status is SourceStatus.FINISHED
    data = np.concatenate([b.samples for b in blocks])
    np.testing.assert_allclose(data, audio.mean(axis=1), atol=1e-7)
    assert all(b.samples.dtype == np.float32 and b.samples.ndim == 1 for b in blocks)
    assert [b.sample_index for b in blocks] == list(range(0, len(audio), 1000))
    # t_capture is the nominal clock: start + index / rate
    t0 = blocks[0].t_capture
    for b in blocks:
        assert b.t_capture == pytest.approx(t0 + b.sample_index / 44100, abs=1e-9)
    src.stop()
    src.stop()  # idempotent
    assert src.status is SourceStatus.FINISHED


def test_file_source_loop_keeps_counting(stereo_file):
    path, audio = stereo_file
    mono = audio.mean(axis=1)
    src = FileSource(path, realtime=False, loop=True)
    with src:
        blocks = [src.read(4000) for _ in range(8)]  # 32000 samples > 2 x the file
    assert src.status is SourceStatus.STOPPED
    idx = np.concatenate([np.arange(b.sample_index, b.end_index) for b in blocks])
    data = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(idx, np.arange(len(idx)))
    np.testing.assert_allclose(data, mono[idx % len(mono)], atol=1e-7)
    assert max(b.n_frames for b in blocks) <= 4000


def test_file_source_realtime_paces_whole_blocks_on_its_clock(stereo_file):
    path, audio = stereo_file
    now = [100.0]
    src = FileSource(path, realtime=True, block_size=512, time_fn=lambda: now[0])
    src.start()
    assert src.read(10_000) is None  # nothing is due at t = 0
    now[0] += 500 / 44100  # less than one block
    assert src.read(10_000) is None
    now[0] += 600 / 44100  # 1100 samples due -> two whole blocks
    b = src.read(10_000)
    assert (b.sample_index, b.n_frames) == (0, 1024)
    assert b.t_capture == pytest.approx(100.0)
    assert src.read(10_000) is None
    now[0] += 10.0  # long after the end: the rest, in reads capped by max_frames
    rest = _collect(src, 4096)
    assert sum(r.n_frames for r in rest) == len(audio) - 1024
    assert rest[0].t_capture == pytest.approx(100.0 + 1024 / 44100)
    assert src.status is SourceStatus.FINISHED


def test_blocking_read_returns_none_when_finished(stereo_file):
    path, _ = stereo_file
    src = FileSource(path, realtime=False)
    src.start()
    _collect(src, 100_000)
    assert src.read(10, timeout=None) is None  # finished: does not wait forever


def test_play_without_realtime_is_a_config_error(stereo_file):
    with pytest.raises(ConfigError, match="realtime"):
        FileSource(stereo_file[0], realtime=False, play=True)


def _play_all(stream) -> np.ndarray:
    """Pump a FakeOutputStream 512 frames at a time until its callback stops; (N, C) float32 what it played."""
    played, stopped = [], False
    while not stopped:
        out, stopped = stream.pump(512)
        played.append(out)
    return np.concatenate(played)


def test_play_mode_delivers_exactly_what_is_played(stereo_file):
    path, audio = stereo_file
    speakers = [DeviceInfo(3, "Speakers", "ALSA", 0, 2, 44100.0, default_output=True)]
    made = []

    def factory(**kw):
        made.append(FakeOutputStream(**kw))
        return made[-1]

    src = FileSource(path, play=True, block_size=512, device_lister=lambda: speakers, stream_factory=factory)
    assert src.output_device.name == "Speakers"
    src.start()
    assert made[0].kw["device"] == 3 and made[0].kw["channels"] == 2
    played = _play_all(made[0])
    np.testing.assert_array_equal(played[: len(audio)], audio)  # the room hears the stereo file
    assert np.all(played[len(audio) :] == 0)  # then silence
    blocks = _collect(src, 100_000)
    data = np.concatenate([b.samples for b in blocks])
    np.testing.assert_allclose(data, audio.mean(axis=1), atol=1e-7)
    assert src.read(10) is None and src.status is SourceStatus.FINISHED
    src.stop()
    assert made[0].closed


@pytest.mark.parametrize("outputs", [2, 1])
def test_a_mono_file_plays_on_both_speakers(tmp_path, outputs):
    path = tmp_path / "mono.wav"
    x = (0.3 * np.sin(np.arange(8000) / 7.0)).astype(np.float32)
    sf.write(path, x, 44100, subtype="FLOAT")
    dev = [DeviceInfo(3, "Speakers", "ALSA", 0, outputs, 44100.0, default_output=True)]
    made = []
    src = FileSource(path, play=True, block_size=512, device_lister=lambda: dev,
                     stream_factory=lambda **kw: made.append(FakeOutputStream(**kw)) or made[-1])
    src.start()
    assert made[0].kw["channels"] == outputs
    played = _play_all(made[0])[: len(x)]
    for ch in range(outputs):  # the same signal on every speaker (a 1-channel stream sounds on the left only)
        np.testing.assert_array_equal(played[:, ch], x)
    src.stop()


@pytest.mark.parametrize("takes_file_rate", [True, False])
def test_play_mode_resamples_for_a_device_that_refuses_the_files_rate(tmp_path, takes_file_rate):
    """A 44.1 kHz file on a 48 kHz-only output device (many HDMI and USB devices) is played resampled to the
    device's rate instead of failing at start; a device that takes the file's rate plays it untouched."""
    path = tmp_path / "song.wav"
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(44100) / 44100)).astype(np.float32)
    sf.write(path, x, 44100, subtype="FLOAT")
    dev = [DeviceInfo(5, "HDMI", "ALSA", 0, 2, 48000.0, default_output=True)]
    asked = []

    def rate_check(d, hz):
        asked.append((d.index, hz))
        return takes_file_rate or hz == 48000

    made = []
    src = FileSource(path, play=True, block_size=512, device_lister=lambda: dev, rate_check=rate_check,
                     stream_factory=lambda **kw: made.append(FakeOutputStream(**kw)) or made[-1])
    assert asked == [(5, 44100)]
    want = 44100 if takes_file_rate else 48000
    assert src.sample_rate == want and made == []
    assert src.n_samples == pytest.approx(want, abs=2)  # still 1 s of audio
    src.start()
    assert made[0].kw["samplerate"] == want
    played = _play_all(made[0])[: src.n_samples, 0]
    spectrum = np.abs(np.fft.rfft(played[want // 4: 3 * want // 4]))
    peak_hz = np.argmax(spectrum) * want / (want // 2)
    assert abs(peak_hz - 440) < 4  # the same pitch at either rate
    src.stop()


def test_play_mode_unknown_output_device_lists_outputs(stereo_file):
    devs = [
        DeviceInfo(0, "Mic", "ALSA", 1, 0, 48000.0),
        DeviceInfo(1, "Speakers", "ALSA", 0, 2, 48000.0),
    ]
    with pytest.raises(DeviceNotFoundError) as err:
        FileSource(stereo_file[0], play=True, output_device="hdmi", device_lister=lambda: devs)
    assert "Speakers" in str(err.value) and "Mic" not in str(err.value)


def test_audio_block_properties():
    b = AudioBlock(np.zeros(480, np.float32), 48000, 12.5, 48000)
    assert (b.n_frames, b.end_index, b.time_s, b.duration_s) == (480, 48480, 1.0, 0.01)


def test_capture_clock_follows_lower_envelope_of_late_callbacks():
    clock = CaptureClock(1000, max_drift=1e-4)
    rng = np.random.default_rng(1)
    true_t0 = 50.0
    for i in range(0, 20_000, 100):  # callbacks arrive 0..5 ms late
        clock.observe(i, true_t0 + i / 1000 + rng.uniform(0, 0.005))
    assert clock.t0 == pytest.approx(true_t0, abs=5e-4)
    assert clock.index_at(true_t0 + 2.0) == pytest.approx(2000, abs=1)


@pytest.mark.parametrize("failure", ["stream ends", "callbacks stop"])
def test_a_failing_output_device_leaves_the_file_going_without_sound(tmp_path, caplog, failure):
    """play=True: an output device that fails mid-file (PortAudio ends its stream, or its callbacks stop) must
    not end or hang the input: the source says why and delivers the rest of the file, paced, on the same clock,
    every sample once."""
    import time

    rng = np.random.default_rng(1)
    audio = rng.uniform(-0.5, 0.5, size=(44100, 1)).astype(np.float32)  # 1 s
    path = _write(tmp_path / "song.wav", audio, 44100)
    speakers = [DeviceInfo(3, "Speakers", "ALSA", 0, 2, 44100.0, default_output=True)]
    made = []
    src = FileSource(path, play=True, block_size=512, device_lister=lambda: speakers,
                     stream_factory=lambda **kw: made.append(FakeOutputStream(**kw)) or made[-1])
    src.start()
    for _ in range(20):  # 0.23 s played
        made[0].pump(512)
    if failure == "stream ends":
        made[0].kw["finished_callback"]()  # PortAudio: the stream finished (device unplugged)
    blocks, deadline = [], time.monotonic() + 6.0
    while src.status is not SourceStatus.FINISHED and time.monotonic() < deadline:
        b = src.read(4096, timeout=0.05)
        if b is not None:
            blocks.append(b)
    assert src.status is SourceStatus.FINISHED, src.last_error
    data = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(data, audio[:, 0])  # every sample once, in order
    idx = [b.sample_index for b in blocks]
    assert idx[0] == 0 and all(b.end_index == n for b, n in zip(blocks, idx[1:]))
    assert "Speakers" in src.last_error and "without sound from 0.23 s" in src.last_error
    assert ("finished before the end" if failure == "stream ends" else "no output callback") in src.last_error
    assert sum("Speakers" in r.getMessage() for r in caplog.records if r.levelname == "WARNING") == 1
    out, stopped = made[0].pump(512)  # the given-up stream comes back to life: silence, and it is told to stop
    assert stopped and not out.any() and src.status is SourceStatus.FINISHED
    deadline = time.monotonic() + 2.0
    while not made[0].closed and time.monotonic() < deadline:  # closed off the reader's thread
        time.sleep(0.01)
    assert made[0].closed
    src.stop()


def test_an_output_device_slow_to_start_is_not_taken_for_a_failed_one(stereo_file):
    import time

    class SlowStart(FakeOutputStream):
        def start(self):
            time.sleep(1.1)  # a device waking up
            super().start()

    path, _ = stereo_file
    speakers = [DeviceInfo(3, "Speakers", "ALSA", 0, 2, 44100.0, default_output=True)]
    made = []
    src = FileSource(path, play=True, block_size=512, device_lister=lambda: speakers,
                     stream_factory=lambda **kw: made.append(SlowStart(**kw)) or made[-1])
    src.start()
    assert src.read(512) is None and src.last_error is None  # no callback yet, but the stream only just started
    made[0].pump(512)
    assert src.read(512).n_frames == 512 and src.last_error is None
    src.stop()


def test_an_excerpt_must_start_at_or_after_the_files_start(stereo_file):
    """A negative excerpt start is refused by name (it used to be clamped to 0 with the duration kept, so the
    excerpt silently moved)."""
    from livedance.data.audio_io import load_audio

    path, data = stereo_file  # 0.25 s at 44.1 kHz
    with pytest.raises(AudioError, match=r"start -1\.0 s is not a finite number >= 0"):
        load_audio(path, offset_s=-1.0, duration_s=0.1, min_duration_s=0.01)
    audio, sr = load_audio(path, mono=False, offset_s=0.05, duration_s=0.1, min_duration_s=0.01)
    np.testing.assert_array_equal(audio, data[round(0.05 * sr):round(0.15 * sr)])
