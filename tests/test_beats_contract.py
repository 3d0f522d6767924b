"""Tracker contract: when beats reach the caller (resampler hold-back), bar positions across a drop-out,
end-of-stream flush, config and input validation, and the scoring / click-track helpers."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.beats import BeatTracker, TrackerConfig, track
from livedance.beats.clicks import click_track
from livedance.beats.tempo import TempoConfig
from livedance.beats.tracker import resampler_hold_s
from livedance.errors import AudioError, ConfigError

SR = 44100


def _key(events) -> list[tuple[float, float, bool]]:
    return [(e.time_s, e.reported_at_s, e.is_downbeat) for e in events]


@pytest.mark.parametrize("sr", [48000, 22050])
def test_reported_at_is_when_the_caller_has_the_beat(sr: int) -> None:
    """soxr holds output back (up to 20 ms at 48 kHz, 42 ms at 22.05 kHz): a beat event reaches the caller
    after the analysis clock's `now`; `reported_at_s` must not claim it earlier than it arrives."""
    audio, clicks = click_track(120.0, 10.0, sr, start_s=0.3)
    cfg = TrackerConfig(sample_rate=sr)
    tr = BeatTracker(cfg)
    block = sr // 400  # 2.5 ms pushes, as from a low-latency sound card
    arrivals = []  # (event, stream time at which push returned it = samples pushed so far / rate)
    for i in range(0, len(audio), block):
        for e in tr.push(audio[i : i + block]):
            arrivals.append((e, min(i + block, len(audio)) / sr))
    assert len(arrivals) > 10
    tol = tr.hop_s
    for e, arrived in arrivals:
        assert arrived <= e.reported_at_s + tol, (e, arrived)
        assert e.reported_at_s >= arrived - tol
        assert e.reported_at_s <= arrived + resampler_hold_s(sr) + tol  # and not wildly conservative
    late = [e for e, _ in arrivals if e.time_s > 5.0]
    assert late and all(np.min(np.abs(clicks - e.time_s)) < 0.02 for e in late)
    assert all(e.reported_at_s <= e.time_s for e in late)  # still announced ahead once locked
    # The output does not depend on how the input is cut into blocks (flush included).
    ref = _key(track(audio, cfg, block=len(audio)))
    for b in (block, 997, 7000):
        got = _key(track(audio, cfg, block=b))
        assert len(got) == len(ref)
        assert np.allclose(np.asarray(got, float), np.asarray(ref, float), atol=1e-6, rtol=0)


def test_resampler_hold_is_zero_at_the_analysis_rate_and_bounds_soxr() -> None:
    assert resampler_hold_s(SR) == 0.0
    assert 0.0 < resampler_hold_s(48000) < resampler_hold_s(22050) < resampler_hold_s(8000) < 0.2


def _kick_bars(audio: np.ndarray, bars: np.ndarray) -> None:
    t = np.arange(int(0.1 * SR)) / SR
    kick = (0.8 * np.sin(2 * np.pi * 55 * t) * np.exp(-t / 0.05)).astype(np.float32)
    for b in bars:
        s = int(b * SR)
        audio[s : s + kick.size] += kick[: len(audio) - s]


def test_downbeats_stay_on_the_bar_after_a_dropout() -> None:
    """Bar positions count grid beats: beats not announced during a 1.3 s drop-out (silence gate, then the
    confidence warm-up) must not shift the downbeats after it."""
    audio, clicks = click_track(120.0, 26.0, SR, start_s=0.2)
    bars = clicks[::4]  # a kick on beat 1
    _kick_bars(audio, bars)
    drop = (12.55, 12.55 + 1.3)
    audio[int(drop[0] * SR) : int(drop[1] * SR)] = 0.0
    events = track(audio)
    announced = np.array([e.time_s for e in events])
    missed = [c for c in clicks if drop[0] < c < drop[1] + 2.0 and np.min(np.abs(announced - c)) > 0.03]
    assert missed  # the drop-out does cost announced beats (else this test tests nothing)
    downs = np.array([e.time_s for e in events if e.is_downbeat])
    before, after = downs[downs < drop[0]], downs[downs > drop[1]]
    assert len(before) >= 3 and len(after) >= 3
    assert all(np.min(np.abs(bars - t)) < 0.03 for t in np.concatenate([before, after]))


def test_flush_analyses_the_tail_and_finds_the_last_click() -> None:
    for sr in (8000, SR):
        audio, clicks = click_track(120.0, 6.21, sr, start_s=0.25)
        end = len(audio) / sr
        assert end - clicks[-1] < 0.5
        tr = BeatTracker(TrackerConfig(sample_rate=sr))
        events = []
        for i in range(0, len(audio), 4096):
            events += tr.push(audio[i : i + 4096])
        assert tr.time_s < end  # the resampler's hold-back and the last partial hop are still pending
        tail = tr.flush()
        assert tr.time_s >= end  # now the whole input has been analysed
        assert tr.flush() == []
        assert all(e.time_s <= end and e.reported_at_s == pytest.approx(end) for e in tail)
        events += tail
        assert any(abs(e.time_s - clicks[-1]) < 0.02 for e in events)
        assert _key(events) == _key(track(audio, TrackerConfig(sample_rate=sr)))
        with pytest.raises(RuntimeError, match="reset"):
            tr.push(audio[:100])
        tr.reset()
        assert tr.push(audio[:100]) == []


@pytest.mark.parametrize(
    "cfg, field",
    [
        (TrackerConfig(period_smooth_s=0.0), "period_smooth_s"),
        (TrackerConfig(tempo=TempoConfig(acf_time_s=0.0)), "acf_time_s"),
        (TrackerConfig(tempo=TempoConfig(smooth_time_s=0.0)), "smooth_time_s"),
        (TrackerConfig(tempo=TempoConfig(mean_time_s=-1.0)), "mean_time_s"),
        (TrackerConfig(phase_beats=0), "phase_beats"),
        (TrackerConfig(phase_beats=2.5), "phase_beats"),
        (TrackerConfig(tempo=TempoConfig(n_harmonics=0)), "n_harmonics"),
    ],
)
def test_bad_config_values_raise_config_error_naming_the_field(cfg: TrackerConfig, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        BeatTracker(cfg)


def test_push_checks_its_input_like_the_features_path() -> None:
    tr = BeatTracker()
    pcm = (np.sin(np.arange(4096) / 10.0) * 20000).astype(np.int16)
    with pytest.raises(AudioError, match="BeatTracker.push samples.*int16"):
        tr.push(pcm)
    with pytest.raises(AudioError, match="complex"):
        tr.push(np.zeros(512, np.complex64))
    with pytest.raises(AudioError, match="BeatTracker.push samples"):
        tr.push("not audio")
    with pytest.raises(AudioError, match="magnitude 1e\\+39.*\\[-1, 1\\]"):
        tr.push(np.array([0.0, 1e39, 0.0]))
    with pytest.raises(AudioError, match="NaN"):
        tr.push(np.array([0.0, np.inf], np.float32))
    assert tr.time_s == 0.0  # nothing was analysed
    # odd but valid audio never raises: float64, float16, a little beyond [-1, 1]
    assert tr.push(np.full(4096, 1.5)) == []
    assert tr.push(np.ones(4096, np.float16)) == []


def test_midi_tempo_events_at_the_same_tick_keep_file_order(tmp_path) -> None:
    """Two set_tempo events at tick 0: the later one (150 BPM) holds, whatever their values."""
    mido = pytest.importorskip("mido")
    from livedance.beats.scoring import midi_beat_grid

    mid = mido.MidiFile(ticks_per_beat=480)
    trk = mido.MidiTrack()
    trk.append(mido.MetaMessage("set_tempo", tempo=600000, time=0))
    trk.append(mido.MetaMessage("set_tempo", tempo=400000, time=0))
    trk.append(mido.MetaMessage("end_of_track", time=480 * 8))
    mid.tracks.append(trk)
    path = tmp_path / "t.mid"
    mid.save(str(path))
    beats = midi_beat_grid(path, 2.0)
    np.testing.assert_allclose(np.diff(beats), 0.4)


def test_midi_tempo_of_zero_or_an_endless_grid_is_refused(tmp_path) -> None:
    """A set_tempo of 0 would never advance the beats (the grid loop would not end); it is named instead."""
    mido = pytest.importorskip("mido")
    from livedance.beats.scoring import midi_beat_grid
    from livedance.errors import DataError

    mid = mido.MidiFile(ticks_per_beat=480)
    trk = mido.MidiTrack()
    trk.append(mido.MetaMessage("set_tempo", tempo=0, time=0))
    trk.append(mido.MetaMessage("end_of_track", time=480))
    mid.tracks.append(trk)
    path = tmp_path / "zero.mid"
    mid.save(str(path))
    with pytest.raises(DataError, match="set_tempo of 0"):
        midi_beat_grid(path, 2.0)
    with pytest.raises(DataError, match="finite"):
        midi_beat_grid(path, float("inf"))


def test_click_track_rejects_a_negative_start() -> None:
    with pytest.raises(ConfigError, match="start_s"):
        click_track(120.0, 2.0, start_s=-0.05)
    audio, beats = click_track(120.0, 2.0, start_s=0.0)
    assert beats[0] == 0.0 and audio.shape == (88200,)
