"""Incremental STFT frame kernel: fast path vs reference vs librosa, and no per-call allocation."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.signal import get_window

from livedance.kernels.stft import StftFrame, power_frame_ref, stft_frame_ref

N_FFT = 2048


@pytest.fixture(scope="module")
def window() -> np.ndarray:
    return get_window("hann", N_FFT, fftbins=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_matches_reference_for_any_ring_position(window, seed):
    rng = np.random.default_rng(seed)
    ring = rng.standard_normal(N_FFT)
    fast = StftFrame(window)
    for pos in [0, 1, N_FFT - 1, *rng.integers(0, N_FFT, 20)]:
        ref = stft_frame_ref(ring, int(pos), window)
        np.testing.assert_allclose(fast.spectrum(ring, int(pos)), ref, rtol=0, atol=1e-9)
        out = np.empty(fast.n_bins)
        np.testing.assert_allclose(
            fast.power(ring, int(pos), out=out), power_frame_ref(ring, int(pos), window), rtol=1e-12, atol=1e-9
        )


def test_ring_frames_equal_librosa_stft_columns(window):
    """Fill a ring hop by hop; each frame must equal librosa.stft(center=False) of the signal."""
    librosa = pytest.importorskip("librosa")
    hop = 512
    rng = np.random.default_rng(3)
    x = rng.standard_normal(N_FFT * 3)
    cols = librosa.stft(x, n_fft=N_FFT, hop_length=hop, window="hann", center=False)
    ring, pos, fast = np.zeros(N_FFT), 0, StftFrame(window)
    frame = 0
    for start in range(0, len(x), hop):
        block = x[start : start + hop]
        ring[pos : pos + hop] = block
        pos = (pos + hop) % N_FFT
        end = start + hop
        if end >= N_FFT:  # the ring holds x[end - N_FFT : end], librosa's column (end - N_FFT) / hop
            np.testing.assert_allclose(fast.spectrum(ring, pos), cols[:, frame], rtol=0, atol=1e-8)
            frame += 1
    assert frame == cols.shape[1]


def test_spectrum_writes_into_out_and_reuses_buffers(window):
    fast = StftFrame(window)
    ring = np.random.default_rng(4).standard_normal(N_FFT)
    out = np.empty(fast.n_bins, np.complex128)
    assert fast.spectrum(ring, 5, out=out) is out
    a = fast.spectrum(ring, 5)
    b = fast.spectrum(ring, 6)
    assert a is b  # internal buffer, overwritten


def test_power_allocates_no_array_memory(window):
    fast = StftFrame(window)
    ring = np.random.default_rng(5).standard_normal(N_FFT)
    out = np.empty(fast.n_bins)
    fast.power(ring, 0, out=out)  # warm up
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for pos in range(0, N_FFT, 64):
            fast.power(ring, pos, out=out)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # A temporary spectrum would be 16 KiB, a temporary frame 16 KiB; views and scalars are tiny.
    assert peak < 4096, f"StftFrame.power allocated {peak} bytes at peak"


def test_bad_arguments_raise(window):
    fast = StftFrame(window)
    with pytest.raises(ValueError, match="pos"):
        fast.spectrum(np.zeros(N_FFT), N_FFT)
    with pytest.raises(ValueError, match="shape"):
        fast.spectrum(np.zeros(N_FFT - 1), 0)
    with pytest.raises(ValueError, match="window"):
        StftFrame(np.ones((2, 2)))
