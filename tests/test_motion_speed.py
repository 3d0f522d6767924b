"""Speed perturbation: the dance r times as fast, to its song played r times as fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from livedance.data.dataset import MotionClip, smpl24_positions
from livedance.errors import ConfigError
from livedance.motion.speed import speed_clip


def _clip(T: int = 41, seed: int = 0) -> MotionClip:
    rng = np.random.default_rng(seed)
    R = Rotation.random(T * 22, random_state=seed).as_matrix().reshape(T, 22, 3, 3).astype(np.float32)
    t = np.cumsum(rng.normal(scale=0.02, size=(T, 3)), axis=0).astype(np.float32)
    o = rng.normal(scale=0.2, size=(22, 3)).astype(np.float32)
    return MotionClip("DANCE_C_9", "cha-cha", 25.0, R, t, o, smpl24_positions(R, t, o), Path("song.mp3"), 3.0, True)


def test_double_speed_takes_every_other_frame_and_halves_song_times():
    c = _clip()
    f = speed_clip(c, 2.0)
    assert f.name == "DANCE_C_9~x2" and f.num_frames == 21 and f.fps == c.fps
    np.testing.assert_allclose(f.local_rotmats, c.local_rotmats[::2], atol=1e-5)
    np.testing.assert_allclose(f.root_translation, c.root_translation[::2], atol=1e-6)
    np.testing.assert_allclose(f.positions, smpl24_positions(f.local_rotmats, f.root_translation, c.rest_offsets),
                               atol=1e-5)
    assert f.audio_offset_s == pytest.approx(1.5) and f.audio_speed == 2.0
    # song time of each frame, mapped back to the file's time, is the original frame's
    np.testing.assert_allclose(f.frame_times() * f.audio_speed, c.frame_times()[::2], atol=1e-9)


def test_slower_speed_interpolates_between_frames():
    c = _clip()
    s = speed_clip(c, 0.8)
    assert s.num_frames == 51 and s.audio_speed == pytest.approx(0.8)
    # frame 5 lies at original frame 4 exactly; frame 1 at 0.8: between frames 0 and 1, nearer 1
    np.testing.assert_allclose(s.local_rotmats[5], c.local_rotmats[4], atol=1e-5)
    np.testing.assert_allclose(s.root_translation[1], 0.2 * c.root_translation[0] + 0.8 * c.root_translation[1],
                               atol=1e-6)
    # composing speeds multiplies them
    assert speed_clip(s, 1.25).audio_speed == pytest.approx(1.0)


def test_speed_one_is_the_clip_and_bad_speeds_are_refused():
    c = _clip()
    assert speed_clip(c, 1.0) is c
    for bad in (0.0, 0.3, 2.5, float("nan")):
        with pytest.raises(ConfigError, match="speed"):
            speed_clip(c, bad)


def test_song_played_faster_has_its_tempo_scaled(tmp_path):
    import soundfile as sf

    from livedance.beats.clicks import click_track
    from livedance.model.conditioning import song_conditioning

    audio, _ = click_track(100.0, 14.0)
    path = tmp_path / "clicks.wav"
    sf.write(path, audio, 44100)
    plain = song_conditioning(path, use_cache=False)
    fast = song_conditioning(path, use_cache=False, speed=1.25)
    assert fast.duration_s == pytest.approx(plain.duration_s / 1.25, abs=0.01)
    assert np.median(plain.beats.bpm[-50:]) == pytest.approx(100.0, abs=1.0)
    assert np.median(fast.beats.bpm[-50:]) == pytest.approx(125.0, abs=1.0)
    with pytest.raises(ConfigError, match="speed"):
        song_conditioning(path, use_cache=False, speed=3.0)


def test_training_data_plays_each_clips_song_at_its_speed(monkeypatch):
    import livedance.model.train_generator as tg

    seen = []

    class Stop(Exception):
        pass

    def fake_song(path, duration_s=None, speed=1.0, **kw):
        seen.append((duration_s, speed))
        raise Stop

    monkeypatch.setattr("livedance.model.train_tokenizer.clip_raw_features", lambda clips, cfg: [None] * len(clips))
    monkeypatch.setattr(tg, "song_conditioning", fake_song)
    fast = speed_clip(_clip(), 1.6)
    with pytest.raises(Stop):
        tg.prepare_clips([fast], tokenizer=None, rep=type("Rep", (), {"config": None})(), window=8, lag_s=0.1)
    assert seen == [(pytest.approx(fast.audio_offset_s + fast.num_frames / 25.0 + 1.0), 1.6)]


def test_song_speeds_are_cached_apart_and_read_enough_of_the_file(tmp_path):
    import soundfile as sf

    from livedance.beats.clicks import click_track
    from livedance.model.conditioning import _cache_key, song_conditioning

    audio, _ = click_track(120.0, 40.0)
    path = tmp_path / "clicks.wav"
    sf.write(path, audio, 44100)
    assert _cache_key(path, 30.0) == _cache_key(path, 30.0, 1.0)  # the songs as they are keep their cache
    cache = tmp_path / "cache"
    # 28 s of the song played 1.1x fast = 30.8 s of the file: two 30 s blocks, i.e. the whole 40 s file
    fast = song_conditioning(path, duration_s=28.0, cache_dir=cache, speed=1.1)
    assert fast.duration_s == pytest.approx(40.0 / 1.1, abs=0.01)
    plain = song_conditioning(path, duration_s=31.0, cache_dir=cache)  # the same two blocks of the same file
    assert plain.duration_s == pytest.approx(40.0, abs=0.01)
    assert len(list((cache / "generator").glob("*.npz"))) == 2
    again = song_conditioning(path, duration_s=28.0, cache_dir=cache, speed=1.1)  # from the cache
    np.testing.assert_array_equal(again.features, fast.features)
    assert np.median(fast.beats.bpm[-50:]) == pytest.approx(132.0, abs=1.0)
