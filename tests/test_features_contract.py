"""offline_features' bounded memory and chunk-edge state, and check_samples' range checks."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from livedance.errors import AudioError
from livedance.features import FeatureConfig, FeatureFrames, StreamingFeatures, offline_features
from livedance.features import offline as offline_mod
from livedance.features.validate import check_samples

CFG = FeatureConfig()


def _stream(audio: np.ndarray, block: int, cfg: FeatureConfig = CFG) -> FeatureFrames:
    feats = StreamingFeatures(cfg)
    return FeatureFrames.concat([feats.push(audio[i : i + block]) for i in range(0, len(audio), block)])


def _noise(minutes: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(minutes * 60 * CFG.sr))).astype(np.float32)


def _working_peak(audio: np.ndarray) -> tuple[int, FeatureFrames]:
    """tracemalloc peak of offline_features minus the bytes of its output (which must grow with length)."""
    tracemalloc.start()
    try:
        out = offline_features(audio, CFG)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - (out.values.nbytes + out.frame_index.nbytes + out.times_s.nbytes), out


def test_offline_memory_does_not_grow_with_length() -> None:
    short = _noise(2.0)
    work_2, out_2 = _working_peak(short)
    work_6, out_6 = _working_peak(_noise(6.0, seed=1))
    assert len(out_6) > 3 * len(out_2) - 3
    # Same working memory for 2 and 6 minutes (no full-length float64 intermediates: those would add
    # over 30 MB per extra minute), and about 70 MB at the defaults.
    assert work_6 <= work_2 + 1_000_000, (work_2, work_6)
    assert work_6 < 100_000_000, work_6
    # Still the streaming features (across several CHUNK_FRAMES chunks).
    got = _stream(short, 4096)
    assert np.max(np.abs(got.values - out_2.values)) <= 1e-5


@pytest.mark.parametrize("chunk", [1, 37, 256])
def test_offline_chunk_edges_carry_the_stream_state(monkeypatch, chunk: int) -> None:
    """Small chunks put many chunk edges inside the phase window; the result must not change."""
    rng = np.random.default_rng(4)
    t = np.arange(6 * CFG.sr) / CFG.sr
    x = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.5 * ((t % 0.5) < 0.01) * rng.standard_normal(t.size)).astype(np.float32)
    cfg = FeatureConfig(phase_frames=64)
    ref = _stream(x, 1000, cfg)
    monkeypatch.setattr(offline_mod, "CHUNK_FRAMES", chunk)
    got = offline_features(x, cfg)
    assert np.max(np.abs(got.values - ref.values)) <= 1e-5
    np.testing.assert_array_equal(got.times_s, ref.times_s)
    logmel = offline_mod.offline_logmel(x, cfg)
    assert np.max(np.abs(logmel - ref.values[:, cfg.slices["logmel"]])) <= 1e-4


def test_check_samples_float16_and_huge_values() -> None:
    ones = np.ones(70000, np.float16)  # its float16 sum would overflow to inf
    assert check_samples(ones) is ones
    assert np.all(np.isfinite(offline_features(ones, CFG).values))
    huge = np.zeros(4096)
    huge[100] = -3e160  # finite, but its power spectrum overflows float64
    with pytest.raises(AudioError, match=r"audio .*magnitude 3e\+160.*expected float samples in \[-1, 1\]"):
        offline_features(huge, CFG)
    feats = StreamingFeatures(CFG)
    with pytest.raises(AudioError, match="magnitude"):
        feats.push(huge)
    assert feats.samples_seen == 0
    # a little beyond [-1, 1] (and up to 1e30) is fine and gives finite features
    assert np.all(np.isfinite(feats.push(np.full(4096, 1e30)).values))
    with pytest.raises(AudioError, match="NaN"):
        check_samples(np.array([np.nan, 0.0], np.float16))
