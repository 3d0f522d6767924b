"""StreamResampler: block-wise soxr resampling equals one-shot soxr, pass-through, errors."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.errors import AudioError, ConfigError
from livedance.features import StreamResampler


def _signal(sr: int, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(0)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("sr_in", [44100, 48000, 16000])
def test_blockwise_equals_one_shot(sr_in):
    import soxr

    x = _signal(sr_in)
    rs = StreamResampler(sr_in, 22050)
    rng = np.random.default_rng(sr_in)
    parts, i = [], 0
    while i < len(x):
        b = int(rng.integers(1, 3000))
        parts.append(rs.push(x[i : i + b]))
        i += b
    parts.append(rs.flush())
    got = np.concatenate(parts)
    ref = soxr.resample(x, sr_in, 22050, quality="HQ")
    assert abs(len(got) - len(ref)) <= 1
    n = min(len(got), len(ref))
    assert np.max(np.abs(got[:n] - ref[:n])) < 1e-4
    assert got.dtype == np.float32


def test_streaming_output_is_not_shifted_in_time():
    """A 440 Hz tone keeps its phase: output sample i is the signal at i / sr_out."""
    sr_in, sr_out = 44100, 22050
    x = np.sin(2 * np.pi * 440 * np.arange(sr_in) / sr_in).astype(np.float32)
    rs = StreamResampler(sr_in, sr_out)
    y = np.concatenate([rs.push(x[i : i + 512]) for i in range(0, len(x), 512)] + [rs.flush()])
    t = np.arange(len(y)) / sr_out
    mid = slice(2000, len(y) - 2000)
    np.testing.assert_allclose(y[mid], np.sin(2 * np.pi * 440 * t[mid]), atol=1e-3)


def test_same_rate_passes_through():
    x = _signal(22050, 0.1)
    rs = StreamResampler(22050, 22050)
    np.testing.assert_array_equal(rs.push(x), x)
    assert rs.flush().size == 0 and rs.pending == 0.0


def test_reset_forgets_the_stream():
    x = _signal(48000, 0.5)
    rs = StreamResampler(48000)
    a = np.concatenate([rs.push(x), rs.flush()])
    rs.reset()
    b = np.concatenate([rs.push(x), rs.flush()])
    np.testing.assert_array_equal(a, b)


def test_errors():
    with pytest.raises(ConfigError):
        StreamResampler(0, 22050)
    with pytest.raises(ConfigError):
        StreamResampler(44100, 22050, quality="best")
    with pytest.raises(AudioError):
        StreamResampler(44100).push(np.zeros((10, 2), np.float32))
