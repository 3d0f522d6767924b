"""StreamingFeatures vs offline_features, vs librosa, and on awkward input (silence, DC, clipping)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from livedance.errors import AudioError, ConfigError
from livedance.features import FeatureConfig, FeatureFrames, StreamingFeatures, offline_features
from livedance.data.tang import default_data_root  # ../shared/data, or $LIVEDANCE_DATA

DATA = default_data_root()
CFG = FeatureConfig()


def _music_like(seconds: float, seed: int = 0, bpm: float = 120.0) -> np.ndarray:
    """Tone + noise with percussive bursts every beat: (N,) float32 at CFG.sr."""
    rng = np.random.default_rng(seed)
    n = int(seconds * CFG.sr)
    t = np.arange(n) / CFG.sr
    beat = (t % (60.0 / bpm)) < 0.01
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(n) + 0.6 * beat * rng.standard_normal(n)
    return x.astype(np.float32)


def _stream(audio: np.ndarray, block_sizes, cfg: FeatureConfig = CFG) -> FeatureFrames:
    feats = StreamingFeatures(cfg)
    parts, i = [], 0
    for b in block_sizes:
        if i >= len(audio):
            break
        parts.append(feats.push(audio[i : i + b]))
        i += b
    assert i >= len(audio)
    return FeatureFrames.concat(parts)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return _music_like(8.0)


@pytest.fixture(scope="module")
def offline(audio) -> FeatureFrames:
    return offline_features(audio, CFG)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_stream_in_random_blocks_matches_offline(audio, offline, seed):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(1, 4097, size=len(audio))  # far more than needed
    got = _stream(audio, blocks)
    assert len(got) == len(offline) == len(audio) // CFG.hop
    np.testing.assert_array_equal(got.frame_index, offline.frame_index)
    np.testing.assert_array_equal(got.times_s, offline.times_s)
    assert np.max(np.abs(got.values - offline.values)) <= 1e-5


def test_stream_sample_by_sample_matches_offline(audio, offline):
    n = 3 * CFG.n_fft + 77
    got = _stream(audio[:n], np.ones(n, int))
    assert np.max(np.abs(got.values - offline.values[: len(got)])) <= 1e-5


def test_frame_clock_and_counts():
    feats = StreamingFeatures(CFG)
    assert len(feats.push(np.zeros(CFG.hop - 1, np.float32))) == 0
    one = feats.push(np.zeros(1, np.float32))
    assert one.frame_index.tolist() == [0]
    assert one.times_s[0] == pytest.approx(CFG.hop / CFG.sr)  # end of frame 0's window
    many = feats.push(np.zeros(10 * CFG.hop + 5, np.float32))
    assert many.frame_index.tolist() == list(range(1, 11))
    np.testing.assert_allclose(np.diff(many.times_s), CFG.hop / CFG.sr)
    assert many.values.shape == (10, CFG.feature_dim) and many.values.dtype == np.float32
    assert feats.frames_done == 11 and feats.samples_seen == 11 * CFG.hop + 5
    assert len(feats.push(np.zeros(0, np.float32))) == 0


def test_reset_restarts_the_stream(audio):
    feats = StreamingFeatures(CFG)
    first = feats.push(audio[:20000])
    feats.push(audio[20000:40000])
    feats.reset()
    again = feats.push(audio[:20000])
    np.testing.assert_array_equal(first.values, again.values)
    np.testing.assert_array_equal(first.frame_index, again.frame_index)


def test_logmel_matches_librosa_melspectrogram(audio, offline):
    """Frame k is librosa's center=False frame of the signal left-padded with n_fft - hop zeros."""
    librosa = pytest.importorskip("librosa")
    padded = np.concatenate([np.zeros(CFG.n_fft - CFG.hop), audio.astype(np.float64)])
    mel = librosa.feature.melspectrogram(
        y=padded, sr=CFG.sr, n_fft=CFG.n_fft, hop_length=CFG.hop, center=False, power=2.0, n_mels=CFG.n_mels
    )
    ref = librosa.power_to_db(mel, ref=1.0, amin=CFG.amin, top_db=None).T
    assert ref.shape == (len(offline), CFG.n_mels)
    np.testing.assert_allclose(offline.values[:, CFG.slices["logmel"]], ref, atol=1e-4)


def test_onset_matches_librosa_onset_strength(offline):
    librosa = pytest.importorskip("librosa")
    logmel = offline.values[:, CFG.slices["logmel"]].astype(np.float64)
    ref = librosa.onset.onset_strength(
        S=logmel.T, lag=1, max_size=1, detrend=False, center=False, aggregate=np.mean
    )
    np.testing.assert_allclose(offline.values[:, CFG.slices["onset"]][:, 0], ref, atol=1e-4)


def test_band_onsets_average_to_the_onset_with_equal_bands():
    cfg = FeatureConfig(n_mels=60, n_onset_bands=3)  # 3 groups of 20 bands
    f = offline_features(_music_like(3.0, seed=4), cfg).values
    np.testing.assert_allclose(f[:, cfg.slices["band_onset"]].mean(axis=1), f[:, cfg.slices["onset"]][:, 0], atol=1e-5)


def test_phase_locks_to_the_beat():
    """120 BPM bursts: the 120 BPM component dominates the non-harmonic tempi and its phase is ~0
    (cos ~ 1) at the onset peaks, i.e. the phase is referenced to the current frame."""
    cfg = CFG
    f = offline_features(_music_like(12.0, seed=5, bpm=120.0), cfg).values
    n_ch, n_k = cfg.n_phase_channels, cfg.n_tempi
    mag = f[:, cfg.slices["phase_mag"]].reshape(-1, n_ch, n_k)[:, 0]  # onset channel
    phase = f[:, cfg.slices["phase"]].reshape(-1, n_ch, n_k, 2)[:, 0]
    k120 = cfg.phase_bpm.index(120.0)
    settled = slice(cfg.phase_frames, None)
    for bpm in (75.0, 90.0, 105.0, 150.0, 180.0):
        k = cfg.phase_bpm.index(bpm)
        assert mag[settled, k120].mean() > 3 * mag[settled, k].mean(), bpm
    onset = f[:, cfg.slices["onset"]][:, 0]
    peaks = [n for n in range(cfg.phase_frames, len(onset) - 1)
             if onset[n] > onset[n - 1] and onset[n] >= onset[n + 1] and onset[n] > 0.5 * onset.max()]
    assert len(peaks) >= 10
    cos = phase[peaks, k120, 0] / np.hypot(phase[peaks, k120, 0], phase[peaks, k120, 1])
    assert np.mean(cos) > 0.9
    # The phase advances (not retreats) by 2 pi (bpm / 60) / frame_rate per frame.
    angle = np.arctan2(phase[settled, k120, 1], phase[settled, k120, 0])
    step = np.angle(np.exp(1j * np.diff(angle)))
    assert np.median(step) == pytest.approx(2 * np.pi * 2.0 / cfg.frame_rate, abs=0.05)


def test_phase_is_causal(audio):
    """Changing the future must not change past frames."""
    a = audio.copy()
    b = audio.copy()
    b[len(b) // 2 :] = 0.0
    fa, fb = offline_features(a, CFG).values, offline_features(b, CFG).values
    last_same = (len(b) // 2) // CFG.hop  # frames ending at or before the change
    np.testing.assert_array_equal(fa[:last_same], fb[:last_same])
    assert np.abs(fa[last_same + 1] - fb[last_same + 1]).max() > 0


@pytest.mark.parametrize(
    "kind", ["silence", "dc", "clipped", "white_noise", "tiny"]
)
def test_awkward_input_gives_finite_features(kind):
    n = 3 * CFG.sr
    rng = np.random.default_rng(6)
    x = {
        "silence": np.zeros(n),
        "dc": np.full(n, 0.5),
        "clipped": np.clip(10 * np.sin(2 * np.pi * 100 * np.arange(n) / CFG.sr), -1, 1),
        "white_noise": rng.uniform(-1, 1, n),
        "tiny": 1e-30 * rng.standard_normal(n),
    }[kind].astype(np.float32)
    f = offline_features(x, CFG).values
    s = _stream(x, np.random.default_rng(7).integers(1, 4097, size=n))
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(s.values))
    assert np.max(np.abs(s.values - f)) <= 1e-5
    if kind == "silence":
        floor = 10 * np.log10(CFG.amin)
        np.testing.assert_array_equal(f[:, CFG.slices["logmel"]], floor)
        assert not f[:, CFG.slices["logmel"].stop :].any()  # no onset, no modulation, no phase


def test_mel_filterbank_shape_and_slices():
    feats = StreamingFeatures(CFG)
    assert feats.mel_fb.shape == (CFG.n_mels, 1 + CFG.n_fft // 2)
    assert np.all(feats.mel_fb >= 0) and np.all(feats.mel_fb.sum(axis=1) > 0)
    covered = np.zeros(CFG.feature_dim, int)
    for sl in CFG.slices.values():
        covered[sl] += 1
    assert np.all(covered == 1)
    assert list(CFG.slices) == ["logmel", "onset", "band_onset", "phase", "phase_mag"]
    assert feats.feature_dim == CFG.feature_dim == CFG.slices["phase_mag"].stop


def test_push_allocates_only_its_output(audio):
    feats = StreamingFeatures(CFG)
    feats.push(audio[: 8 * CFG.hop])  # warm up
    block = audio[8 * CFG.hop : 72 * CFG.hop]  # 64 hops
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = feats.push(block)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    output_bytes = out.values.nbytes + out.frame_index.nbytes + out.times_s.nbytes
    # Any per-hop temporary of the spectrum size (>= 8 KiB) would push the peak over this.
    assert peak < output_bytes + 4096, f"peak {peak} B for {output_bytes} B of output"


def test_bad_input_raises_audio_error():
    feats = StreamingFeatures(CFG)
    with pytest.raises(AudioError, match="mono"):
        feats.push(np.zeros((512, 2), np.float32))
    with pytest.raises(AudioError, match="float"):
        feats.push(np.zeros(512, np.int16))
    bad = np.zeros(512, np.float32)
    bad[3] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        feats.push(bad)
    assert feats.samples_seen == 0  # rejected blocks leave the state alone
    with pytest.raises(AudioError):
        offline_features(np.full(4096, np.inf, np.float32), CFG)
    from livedance.features.offline import offline_logmel

    for what, samples in (("float", np.ones(4096, np.int16)), ("NaN", np.full(4096, np.nan)),
                          ("mono", np.zeros((4096, 2), np.float32))):
        with pytest.raises(AudioError, match=what):  # the public log-mel twin checks like the rest
            offline_logmel(samples, CFG)


@pytest.mark.parametrize(
    "kwargs",
    [dict(hop=0), dict(hop=4096), dict(n_mels=0), dict(fmax=20000.0), dict(n_onset_bands=0),
     dict(phase_bpm=()), dict(phase_bpm=(10.0,)), dict(phase_bpm=(2000.0,)), dict(amin=0.0)],
)
def test_bad_config_raises_config_error(kwargs):
    with pytest.raises(ConfigError):
        FeatureConfig(**kwargs)


@pytest.mark.parametrize("name, value", [("hop", 367.5), ("sr", 22050.5), ("n_mels", "80"), ("phase_frames", True),
                                         ("n_fft", float("nan")), ("sr", 10**400)])
def test_counts_that_are_not_whole_numbers_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match=f"FeatureConfig.{name} must be a whole number"):
        FeatureConfig(**{name: value})
    cfg = FeatureConfig(hop=256.0)  # a whole number given as a float (a JSON config) is taken as an int
    assert cfg.hop == 256 and isinstance(cfg.hop, int)


def test_unknown_window_raises_config_error():
    with pytest.raises(ConfigError, match="window"):
        StreamingFeatures(FeatureConfig(window="no-such-window"))
    with pytest.raises(ConfigError, match="phase_window"):
        StreamingFeatures(FeatureConfig(phase_window="no-such-window"))


def test_half_hann_phase_window_streams_like_offline(audio):
    cfg = FeatureConfig(phase_window="half-hann", phase_frames=128, n_mels=64)
    off = offline_features(audio, cfg)
    got = _stream(audio, np.random.default_rng(8).integers(1, 4097, size=len(audio)), cfg)
    assert np.max(np.abs(got.values - off.values)) <= 1e-5


@pytest.mark.data
def test_real_music_stream_matches_offline():
    path = DATA / "beats" / "gtzan_country_00000.wav"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path} (see ../shared/data/README.md)")
    from livedance.data.audio_io import load_audio

    x, sr = load_audio(path, sr=CFG.sr, duration_s=10.0)
    off = offline_features(x, CFG)
    got = _stream(x, np.random.default_rng(9).integers(1, 4097, size=len(x)))
    assert np.max(np.abs(got.values - off.values)) <= 1e-5
    assert np.all(np.isfinite(off.values))
