"""Fixed matrices built once from a :class:`FeatureConfig`, shared by the streaming and offline paths.

* :func:`analysis_window`: the STFT window (periodic, as ``scipy.signal.get_window`` gives it).
* :func:`mel_filterbank`: librosa's mel filterbank (the filter design is librosa's job).
* :func:`band_average_matrix`: averages the per-mel-band flux into the onset strength and band onsets.
* :func:`modulation_basis`: the causal short-time Fourier basis along time of the rhythm-phase bank.
"""

from __future__ import annotations

import numpy as np

from livedance.errors import ConfigError
from livedance.features.config import FeatureConfig


def analysis_window(cfg: FeatureConfig) -> np.ndarray:
    """(n_fft,) float64 periodic STFT window ``scipy.signal.get_window(cfg.window, n_fft)``.

    Raises:
        ConfigError: if ``cfg.window`` is not a window name scipy knows.
    """
    from scipy.signal import get_window

    try:
        return np.asarray(get_window(cfg.window, cfg.n_fft, fftbins=True), dtype=np.float64)
    except ValueError as err:
        raise ConfigError(f"FeatureConfig.window {cfg.window!r} is not a scipy window name: {err}") from None


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """Mel filterbank ``librosa.filters.mel`` for the config: (n_mels, n_fft // 2 + 1) float64.

    Row m weights the power-spectrum bins into mel band m (Slaney mel scale and equal-area
    normalisation by default, as librosa). Applied as ``mel = M @ |X|^2``.
    """
    import librosa

    return librosa.filters.mel(
        sr=cfg.sr,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=cfg.mel_htk,
        norm=cfg.mel_norm,
        dtype=np.float64,
    )


def band_average_matrix(cfg: FeatureConfig) -> np.ndarray:
    """(1 + n_onset_bands, n_mels) float64 averaging matrix for the rectified log-mel flux.

    Row 0 averages all mel bands (the onset strength, librosa's ``aggregate=np.mean``); row 1 + b
    averages the b-th of ``n_onset_bands`` contiguous groups of mel bands (``np.array_split`` of the
    band indices, low to high frequency).
    """
    a = np.zeros((cfg.n_phase_channels, cfg.n_mels), dtype=np.float64)
    a[0] = 1.0 / cfg.n_mels
    for b, idx in enumerate(np.array_split(np.arange(cfg.n_mels), cfg.n_onset_bands)):
        a[1 + b, idx] = 1.0 / len(idx)
    return a


def modulation_basis(cfg: FeatureConfig) -> np.ndarray:
    """Causal Fourier basis along time of the rhythm-phase bank: (2 * n_tempi, W) float64.

    The window w along time is ``cfg.phase_window`` (periodic Hann by default, as a Fourier
    tempogram) or "half-hann", the rising half of a 2W-long Hann window, which weighs the newest
    frames most and so reacts faster to changes, at a coarser tempo resolution.

    For tempo k with angular frequency ``omega_k = 2 pi (bpm_k / 60) / frame_rate`` (radians per
    frame) and the last W frames ``x[n - W + 1 .. n]`` of a channel (index m = 0 oldest .. W-1 newest),
    the bank computes the windowed DFT referenced to the NEWEST frame:

        X_k(n) = (2 / sum(w)) * sum_m  w[m] * x[n - W + 1 + m] * exp(-i omega_k (m - (W - 1)))

    minus its response to a constant (DC removal: the basis row is made to sum to zero by
    subtracting ``w * sum(b_k) / sum(w)``), so a constant channel gives 0 and a channel
    ``A cos(omega_k t + phi)`` gives ``X_k(n) ~= A exp(i (omega_k n + phi))``: its amplitude and its
    phase AT THE CURRENT FRAME. Rows ``2k`` and ``2k + 1`` hold ``Re`` and ``Im`` of ``b_k`` so that
    ``basis @ window_of_frames`` gives ``[Re X_0, Im X_0, Re X_1, ...]``.

    Raises:
        ConfigError: if ``cfg.phase_window`` is not a known window.
    """
    from scipy.signal import get_window

    w_len = cfg.phase_frames
    if cfg.phase_window == "half-hann":  # rising half of a 2W Hann: the newest frame weighs most
        w = np.asarray(get_window("hann", 2 * w_len, fftbins=False)[:w_len], dtype=np.float64)
    else:
        try:
            w = np.asarray(get_window(cfg.phase_window, w_len, fftbins=True), dtype=np.float64)
        except ValueError as err:
            raise ConfigError(
                f"FeatureConfig.phase_window {cfg.phase_window!r} is not a scipy.signal.get_window "
                f"name or 'half-hann': {err}"
            ) from None
    age = np.arange(w_len, dtype=np.float64) - (w_len - 1)  # 0 for the newest frame, negative before
    omega = 2.0 * np.pi * (np.asarray(cfg.phase_bpm) / 60.0) / cfg.frame_rate
    b = w[None, :] * np.exp(-1j * omega[:, None] * age[None, :]) * (2.0 / w.sum())
    b = b - w[None, :] * (b.sum(axis=1, keepdims=True) / w.sum())  # DC removal
    out = np.empty((2 * len(omega), w_len), dtype=np.float64)
    out[0::2] = b.real
    out[1::2] = b.imag
    return out
