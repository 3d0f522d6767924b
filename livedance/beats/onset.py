"""Streaming onset-strength envelope: log-mel spectral flux with a frequency max filter.

This is the onset detection function (ODF) the beat tracker runs on. It follows SuperFlux
(Boeck & Widmer, "Maximum filter vibrato suppression for onset detection", DAFx 2013, eqs. 2-4):
the magnitude spectrum of a Hann-windowed frame goes through a triangular mel filterbank, is
compressed to decibels with a floor, and the flux is the mean over bands of the half-wave rectified
rise against the previous frame after a maximum filter across neighbouring bands. A second value,
the same flux over the bands below ``low_hz`` (kick drum and bass), is the accent used for the
downbeat estimate.

One call to :meth:`OnsetEnvelope.step` takes the newest ``win`` samples (the analysis window that
ends at the current hop) and returns the flux for that frame. :func:`onset_envelope` is the offline
twin: it runs the same frames over a whole signal.
"""

from __future__ import annotations

import numpy as np

from livedance.errors import ConfigError


def mel_filterbank(sample_rate: int, n_fft: int, n_bands: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Triangular mel filterbank (HTK mel scale, unit peak), shape (n_bands, n_fft // 2 + 1), float32.

    Bands narrower than one FFT bin still get the nearest bin so that no band is empty.

    Raises:
        ConfigError: if the frequency range is empty or above Nyquist.
    """
    if not 0.0 <= fmin_hz < fmax_hz <= sample_rate / 2:
        raise ConfigError(
            f"mel filterbank range must satisfy 0 <= fmin < fmax <= Nyquist ({sample_rate / 2} Hz), "
            f"got {fmin_hz}..{fmax_hz} Hz"
        )

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_bands + 2))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    fb = np.zeros((n_bands, freqs.size), dtype=np.float32)
    for b in range(n_bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[b] = np.clip(np.minimum(up, down), 0.0, None)
        if not fb[b].any():
            fb[b, int(np.argmin(np.abs(freqs - mid)))] = 1.0
    return fb


class OnsetEnvelope:
    """Streaming log-mel spectral flux (SuperFlux-style), one value per analysis frame.

    Args:
        sample_rate: analysis rate in Hz.
        win: analysis window length in samples (Hann); 2048 at 44.1 kHz = 46 ms.
        n_bands: mel bands between ``fmin_hz`` and ``fmax_hz``.
        low_hz: upper edge of the low-band accent (bands whose centre is below it).
        floor_db: decibel floor relative to full scale (a full-scale sine); quieter content,
            dither included, gives zero flux.
        max_filter: width of the maximum filter across bands applied to the previous frame (odd).
        max_rise_db: clip of each band's rise, dB (0 = none). A rise from the floor after silence
            (60 dB in every band) would otherwise dominate the autocorrelation for its whole
            memory; any rise above about 10 dB within one hop is an onset anyway.

    State: the previous frame's band levels. :meth:`reset` clears it.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        win: int = 2048,
        n_bands: int = 64,
        fmin_hz: float = 30.0,
        fmax_hz: float = 16000.0,
        low_hz: float = 200.0,
        floor_db: float = -75.0,
        max_filter: int = 3,
        max_rise_db: float = 0.0,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self.win = int(win)
        fmax_hz = min(fmax_hz, self.sample_rate / 2)
        self._window = np.hanning(self.win).astype(np.float32)
        self._fb = mel_filterbank(self.sample_rate, self.win, n_bands, fmin_hz, fmax_hz)
        # Scale so that a full-scale sine inside one band reads about 0 dB.
        self._ref = float(self._window.sum() / 2.0)
        centres = (self._fb * np.arange(self._fb.shape[1])).sum(1) / np.maximum(self._fb.sum(1), 1e-9)
        self._low = centres * self.sample_rate / self.win < low_hz
        if not self._low.any():
            self._low[0] = True
        self.floor_db = float(floor_db)
        self.max_filter = int(max_filter) | 1
        self.max_rise_db = float(max_rise_db)
        self._prev: np.ndarray | None = None
        self.low_accent = 0.0  # unclipped low-band flux of the last frame (downbeat accent)

    def reset(self) -> None:
        """Forget the previous frame (the next frame then gives zero flux)."""
        self._prev = None

    def step(self, frame: np.ndarray) -> tuple[float, float]:
        """Flux of one frame.

        Args:
            frame: (win,) float32, the newest ``win`` samples.

        Returns:
            (flux, low_flux): mean rectified rise in dB per band over all bands and over the low
            bands; both >= 0, each band's rise clipped at ``max_rise_db`` (0 = no clip). The first
            frame after :meth:`reset` returns (0, 0). :attr:`low_accent` keeps the unclipped
            low-band flux (the downbeat accent, where the size of the rise matters).
        """
        spec = np.abs(np.fft.rfft(frame * self._window)) / self._ref
        level = 20.0 * np.log10(np.maximum(self._fb @ spec, 1e-12))
        level = np.maximum(level - self.floor_db, 0.0)  # dB above the floor
        prev = self._prev
        self._prev = level
        if prev is None:
            self.low_accent = 0.0
            return 0.0, 0.0
        if self.max_filter > 1:  # maximum over bands b - r .. b + r, edge bands over those that exist
            spread = prev.copy()
            for d in range(1, self.max_filter // 2 + 1):
                np.maximum(spread[d:], prev[:-d], out=spread[d:])
                np.maximum(spread[:-d], prev[d:], out=spread[:-d])
            prev = spread
        rise = np.maximum(level - prev, 0.0)
        self.low_accent = float(rise[self._low].mean())
        flux, low = float(rise.mean()), self.low_accent
        if self.max_rise_db > 0:
            flux, low = min(flux, self.max_rise_db), min(low, self.max_rise_db)
        return flux, low


def onset_envelope(audio: np.ndarray, sample_rate: int = 44100, hop: int = 512, win: int = 2048) -> np.ndarray:
    """Offline twin of :class:`OnsetEnvelope`: flux of every hop of ``audio``.

    Args:
        audio: (N,) float mono samples at ``sample_rate``.
        hop, win: hop and window in samples. Frame n is the window that ends at sample (n+1)*hop
            (zero-padded before the start), exactly as the streaming tracker sees it.

    Returns:
        (N // hop, 2) float64: columns flux and low-band flux.
    """
    env = OnsetEnvelope(sample_rate=sample_rate, win=win)
    x = np.concatenate([np.zeros(win, np.float32), np.asarray(audio, np.float32)])
    n = len(audio) // hop
    out = np.zeros((n, 2))
    for i in range(n):
        end = win + (i + 1) * hop
        out[i] = env.step(x[end - win : end])
    return out
