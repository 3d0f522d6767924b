"""Incremental STFT frame op: one windowed FFT frame from a ring buffer of the last ``n_fft`` samples.

This is the per-hop step of a short-time Fourier transform (STFT) computed on a live stream. The
stream keeps its last ``n_fft`` samples in a ring buffer ``ring`` (float64, shape ``(n_fft,)``)
whose oldest sample sits at index ``pos`` (the next write position), so the frame in time order is
``np.roll(ring, -pos)``. For that frame ``x[0..n_fft-1]`` and analysis window ``w`` the op returns
the one-sided DFT

    X[k] = sum_{n=0}^{n_fft-1} w[n] x[n] exp(-2 pi i k n / n_fft),   k = 0 .. n_fft // 2

(the usual STFT frame, e.g. Allen & Rabiner 1977; the same as one column of
``librosa.stft(..., center=False)``), and the power spectrum ``|X[k]|^2``.

Two implementations with the same maths:

* :func:`stft_frame_ref` / :func:`power_frame_ref`: readable reference (``np.roll`` then ``rfft``),
  allocating fresh arrays on every call.
* :class:`StftFrame`: the fast path used per hop by :class:`livedance.features.StreamingFeatures`.
  It windows the two halves of the ring straight into a preallocated buffer (no roll) and runs
  ``numpy.fft.rfft`` into a preallocated output (``out=``, numpy >= 2.0), so a call allocates no array
  memory. ``tests/test_kernels_stft.py`` checks parity with the reference and with librosa.
"""

from __future__ import annotations

import inspect

import numpy as np

__all__ = ["stft_frame_ref", "power_frame_ref", "StftFrame"]

# numpy >= 2.0 lets rfft write into a preallocated array; older numpy falls back to one copy.
_RFFT_HAS_OUT = "out" in inspect.signature(np.fft.rfft).parameters


def _check(ring: np.ndarray, pos: int, n_fft: int) -> None:
    if ring.shape != (n_fft,):
        raise ValueError(f"ring must have shape ({n_fft},), got {ring.shape}")
    if not 0 <= pos < n_fft:
        raise ValueError(f"pos (index of the oldest sample) must be in [0, {n_fft}), got {pos}")


def stft_frame_ref(ring: np.ndarray, pos: int, window: np.ndarray) -> np.ndarray:
    """Reference STFT frame of a ring buffer (readable, allocates).

    Args:
        ring: (n_fft,) real samples, the last ``n_fft`` samples of the stream in ring order.
        pos: index in ``ring`` of the oldest sample (the ring's next write position), 0 <= pos < n_fft.
        window: (n_fft,) analysis window (e.g. periodic Hann).

    Returns:
        (n_fft // 2 + 1,) complex128 one-sided spectrum of ``window * roll(ring, -pos)``.

    Raises:
        ValueError: on a shape mismatch or ``pos`` out of range.
    """
    ring = np.asarray(ring, dtype=np.float64)
    window = np.asarray(window, dtype=np.float64)
    _check(ring, pos, window.shape[0])
    frame = np.roll(ring, -pos)  # oldest sample first
    return np.fft.rfft(frame * window)


def power_frame_ref(ring: np.ndarray, pos: int, window: np.ndarray) -> np.ndarray:
    """Reference power spectrum ``|X[k]|^2`` of :func:`stft_frame_ref`: (n_fft // 2 + 1,) float64."""
    return np.abs(stft_frame_ref(ring, pos, window)) ** 2


class StftFrame:
    """Fast incremental STFT frame op with preallocated buffers (the per-hop path).

    Args:
        window: (n_fft,) analysis window; copied to float64.

    Attributes:
        n_fft: frame length in samples.
        n_bins: ``n_fft // 2 + 1`` one-sided frequency bins (bin k is ``k * sr / n_fft`` Hz).

    The arrays returned by :meth:`spectrum` (when ``out`` is None) are internal buffers, overwritten
    by the next call: copy them if you keep them. Not thread-safe (one instance per stream).
    """

    def __init__(self, window: np.ndarray) -> None:
        window = np.asarray(window, dtype=np.float64)
        if window.ndim != 1 or window.shape[0] < 2:
            raise ValueError(f"window must be a 1-D array of length >= 2, got shape {window.shape}")
        self.n_fft = int(window.shape[0])
        self.n_bins = self.n_fft // 2 + 1
        self._window = window.copy()
        self._frame = np.zeros(self.n_fft, dtype=np.float64)  # windowed frame, time order
        self._spec = np.zeros(self.n_bins, dtype=np.complex128)
        self._tmp = np.zeros(self.n_bins, dtype=np.float64)

    def spectrum(self, ring: np.ndarray, pos: int, out: np.ndarray | None = None) -> np.ndarray:
        """One-sided spectrum of the ring's frame, same maths as :func:`stft_frame_ref`.

        Args:
            ring: (n_fft,) float64 ring buffer (other dtypes are cast while windowing).
            pos: index of the oldest sample in ``ring``.
            out: optional (n_bins,) complex128 array to write into; default an internal buffer.

        Returns:
            (n_bins,) complex128: ``out`` or the internal buffer.

        Raises:
            ValueError: on a shape mismatch or ``pos`` out of range.
        """
        n = self.n_fft
        _check(ring, pos, n)
        head = n - pos  # samples from the oldest one to the ring's end
        w, f = self._window, self._frame
        np.multiply(ring[pos:], w[:head], out=f[:head])
        np.multiply(ring[:pos], w[head:], out=f[head:])
        dst = self._spec if out is None else out
        if _RFFT_HAS_OUT:
            np.fft.rfft(f, out=dst)
        else:  # numpy < 2.0: one temporary array per call
            dst[:] = np.fft.rfft(f)
        return dst

    def power(self, ring: np.ndarray, pos: int, out: np.ndarray) -> np.ndarray:
        """Power spectrum ``|X[k]|^2`` of the ring's frame, written into ``out``.

        Args:
            ring, pos: as in :meth:`spectrum`.
            out: (n_bins,) float64 array to write into.

        Returns:
            ``out`` (n_bins,) float64, in squared sample units (unnormalised DFT).
        """
        spec = self.spectrum(ring, pos)
        re, im = spec.real, spec.imag
        np.multiply(re, re, out=out)
        np.multiply(im, im, out=self._tmp)
        np.add(out, self._tmp, out=out)
        return out
