"""StreamingFeatures: log-mel, onset strength and causal rhythm phase, computed hop by hop.

Per completed frame k (framing and clock in :class:`~livedance.features.config.FeatureConfig`):

1. STFT frame from the ring of the last ``n_fft`` samples (:class:`livedance.kernels.stft.StftFrame`),
   power spectrum ``P = |X|^2``.
2. log-mel ``L = 10 log10(max(M @ P, amin))`` in dB (``M`` = librosa's mel filterbank), i.e.
   ``librosa.power_to_db(ref=1, top_db=None)`` of the mel power spectrogram.
3. rectified flux ``d = max(0, L_k - L_{k-1})`` per mel band (``L_{-1} := L_0``, so frame 0 has 0);
   onset strength = mean of d over all bands (``librosa.onset.onset_strength`` with lag 1,
   max_size 1, aggregate mean); band onsets = means over ``n_onset_bands`` groups of bands.
4. rhythm phase: the last W values of the onset strength and band onsets go through the causal
   Fourier basis of :func:`~livedance.features.filters.modulation_basis`; for each channel and tempo
   the amplitude ``|X|`` ('phase_mag') and ``X / max(|X|, phase_mag_floor)`` as (cos, sin) ('phase').

State is a sample ring (n_fft), the previous log-mel and a doubled ring of the last W channel
values; every buffer is allocated in ``__init__`` and only the returned arrays are new per push.
The offline twin :func:`livedance.features.offline.offline_features` computes the same values.
"""

from __future__ import annotations

import numpy as np

from livedance.features.config import FeatureConfig
from livedance.features.filters import (
    analysis_window,
    band_average_matrix,
    mel_filterbank,
    modulation_basis,
)
from livedance.features.frames import FeatureFrames
from livedance.features.validate import check_samples
from livedance.kernels.stft import StftFrame


class StreamingFeatures:
    """Incremental audio features with bounded memory and no per-hop allocation.

    Args:
        cfg: the feature configuration (default ``FeatureConfig()``: 22050 Hz, n_fft 2048 Hann,
            hop 512, 80 mel bands, 3 onset bands, 8 tempi over a 256-frame window; D = 180).

    Use ``push`` with consecutive blocks of any size; it returns the frames those samples completed.
    Not thread-safe: one instance per stream, driven by one thread.
    """

    def __init__(self, cfg: FeatureConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else FeatureConfig()
        c = self.cfg
        self.mel_fb = mel_filterbank(c)  # (n_mels, n_bins)
        self._stft = StftFrame(analysis_window(c))
        self._bands = band_average_matrix(c)  # (C, n_mels)
        self._basis = modulation_basis(c)  # (2K, W)
        n_ch, n_k, w_len = c.n_phase_channels, c.n_tempi, c.phase_frames

        self._ring = np.zeros(c.n_fft, np.float64)
        self._pow = np.zeros(c.n_bins, np.float64)
        self._prev = np.zeros(c.n_mels, np.float64)
        self._flux = np.zeros(c.n_mels, np.float64)
        self._hist = np.zeros((2 * w_len, n_ch), np.float64)  # each row stored at j and j + W
        self._reim = np.zeros((2 * n_k, n_ch), np.float64)
        self._den = np.zeros((n_ch, n_k), np.float64)
        self._row = np.zeros(c.feature_dim, np.float64)  # the frame being computed

        sl = c.slices
        self._logmel = self._row[sl["logmel"]]
        self._chan = self._row[sl["onset"].start : sl["band_onset"].stop]  # onset + band onsets
        self._phase = self._row[sl["phase"]].reshape(n_ch, n_k, 2)
        self._mag = self._row[sl["phase_mag"]].reshape(n_ch, n_k)
        self._re_t = self._reim[0::2].T  # (C, K) views
        self._im_t = self._reim[1::2].T
        self.reset()

    @property
    def feature_dim(self) -> int:
        """D, the width of each feature vector (``cfg.feature_dim``)."""
        return self.cfg.feature_dim

    @property
    def frames_done(self) -> int:
        """Frames emitted since the start (or the last reset); the next frame's index."""
        return self._k

    @property
    def samples_seen(self) -> int:
        """Samples pushed since the start (or the last reset)."""
        return self._n

    def reset(self) -> None:
        """Forget the stream: back to the state before the first sample (silence before 0 s)."""
        self._ring.fill(0.0)
        self._hist.fill(0.0)
        self._pos = 0  # ring index of the oldest sample = next write position
        self._fill = 0  # samples received since the last frame (0 .. hop - 1)
        self._j = 0  # next row of the channel history
        self._k = 0  # frames emitted
        self._n = 0  # samples pushed

    def push(self, samples: np.ndarray) -> FeatureFrames:
        """Feed the next block of the stream and return the frames it completed.

        Args:
            samples: (N,) float32 (or float64) mono audio at ``cfg.sr`` Hz, any N >= 0.

        Returns:
            FeatureFrames with F = (pending + N) // hop frames: values (F, D) float32,
            frame_index (F,) int64, times_s (F,) float64 (end of each frame's window, stream clock).

        Raises:
            AudioError: if ``samples`` is not a 1-D float array or holds NaN/inf (state unchanged).
        """
        x = check_samples(samples)
        c = self.cfg
        hop, n_fft = c.hop, c.n_fft
        n = x.shape[0]
        n_frames = (self._fill + n) // hop
        values = np.empty((n_frames, c.feature_dim), np.float32)
        index = np.arange(self._k, self._k + n_frames, dtype=np.int64)
        times = (index + 1) * hop / c.sr

        ring, f, i = self._ring, 0, 0
        while i < n:
            m = min(hop - self._fill, n - i)
            first = min(m, n_fft - self._pos)
            ring[self._pos : self._pos + first] = x[i : i + first]
            if first < m:
                ring[: m - first] = x[i + first : i + m]
            self._pos = (self._pos + m) % n_fft
            self._fill += m
            i += m
            if self._fill == hop:
                self._step()
                values[f] = self._row
                f += 1
                self._fill = 0
        self._n += n
        return FeatureFrames(values, index, times)

    def _step(self) -> None:
        """Compute one frame from the current ring into ``self._row`` (float64)."""
        c = self.cfg
        # 1-2. power spectrum -> mel -> dB
        self._stft.power(self._ring, self._pos, out=self._pow)
        L = self._logmel
        np.dot(self.mel_fb, self._pow, out=L)
        np.maximum(L, c.amin, out=L)
        np.log10(L, out=L)
        L *= 10.0
        # 3. half-wave rectified flux, averaged into onset strength and band onsets
        if self._k == 0:
            self._prev[:] = L  # L_{-1} := L_0
        np.subtract(L, self._prev, out=self._flux)
        np.maximum(self._flux, 0.0, out=self._flux)
        self._prev[:] = L
        np.dot(self._bands, self._flux, out=self._chan)
        # 4. causal Fourier bank along time over the last W channel values
        w_len, j = c.phase_frames, self._j
        self._hist[j] = self._chan
        self._hist[j + w_len] = self._chan
        np.dot(self._basis, self._hist[j + 1 : j + 1 + w_len], out=self._reim)
        self._j = (j + 1) % w_len
        np.hypot(self._re_t, self._im_t, out=self._mag)
        np.maximum(self._mag, c.phase_mag_floor, out=self._den)
        np.divide(self._re_t, self._den, out=self._phase[:, :, 0])
        np.divide(self._im_t, self._den, out=self._phase[:, :, 1])
        self._k += 1
