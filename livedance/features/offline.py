"""offline_features: the whole-file twin of StreamingFeatures, vectorised over frames.

It computes exactly the features of :class:`livedance.features.stream.StreamingFeatures` (same
framing, same filterbank, same causal phase bank; see that module for the maths) with batched
numpy operations instead of a per-hop loop. Work goes in chunks of frames so memory stays bounded
(about 50 MB at the defaults) however long the file.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from livedance.features.config import FeatureConfig
from livedance.features.filters import (
    analysis_window,
    band_average_matrix,
    mel_filterbank,
    modulation_basis,
)
from livedance.features.frames import FeatureFrames
from livedance.features.validate import check_samples

#: Frames per batch of the vectorised passes (bounds the temporary arrays).
CHUNK_FRAMES = 1024


def offline_logmel(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram of a whole signal with the causal framing of ``cfg``.

    Args:
        audio: (N,) float mono audio at ``cfg.sr`` Hz.
        cfg: feature configuration.

    Returns:
        (N // hop, n_mels) float64 log-mel power in dB, ``10 log10(max(M @ |X|^2, amin))``, where
        frame k is the window ending at sample (k + 1) * hop (zeros before sample 0).
    """
    x = np.asarray(audio, dtype=np.float64)
    hop, n_fft = cfg.hop, cfg.n_fft
    n_frames = x.shape[0] // hop
    padded = np.concatenate([np.zeros(n_fft - hop), x])
    frames = sliding_window_view(padded, n_fft)[::hop][:n_frames]  # (F, n_fft) view, no copy
    window = analysis_window(cfg)
    mel_t = mel_filterbank(cfg).T  # (n_bins, n_mels)
    out = np.empty((n_frames, cfg.n_mels), np.float64)
    for s in range(0, n_frames, CHUNK_FRAMES):
        spec = np.fft.rfft(frames[s : s + CHUNK_FRAMES] * window, axis=-1)
        power = spec.real**2 + spec.imag**2
        out[s : s + CHUNK_FRAMES] = power @ mel_t
    np.maximum(out, cfg.amin, out=out)
    np.log10(out, out=out)
    out *= 10.0
    return out


def offline_features(audio: np.ndarray, cfg: FeatureConfig | None = None) -> FeatureFrames:
    """All features of a whole signal at once (the offline twin of ``StreamingFeatures.push``).

    Args:
        audio: (N,) float32/float64 mono audio at ``cfg.sr`` Hz.
        cfg: feature configuration (default ``FeatureConfig()``).

    Returns:
        FeatureFrames with F = N // hop frames: values (F, D) float32 laid out by ``cfg.slices``,
        frame_index 0 .. F-1 (int64), times_s = (k + 1) * hop / sr (float64, end of each window).

    Raises:
        AudioError: if ``audio`` is not a 1-D float array or holds NaN/inf.
    """
    cfg = cfg if cfg is not None else FeatureConfig()
    x = check_samples(audio, "audio")
    n_frames = x.shape[0] // cfg.hop
    if n_frames == 0:
        return FeatureFrames.empty(cfg.feature_dim)
    sl = cfg.slices
    n_ch, n_k, w_len = cfg.n_phase_channels, cfg.n_tempi, cfg.phase_frames
    row = np.empty((n_frames, cfg.feature_dim), np.float64)

    logmel = offline_logmel(x, cfg)
    row[:, sl["logmel"]] = logmel

    # Rectified flux against the previous frame (frame 0 against itself), band averages.
    prev = np.concatenate([logmel[:1], logmel[:-1]], axis=0)
    flux = np.maximum(logmel - prev, 0.0)
    chan = flux @ band_average_matrix(cfg).T  # (F, C): onset, band onsets
    row[:, sl["onset"].start : sl["band_onset"].stop] = chan

    # Causal Fourier bank along time: frame n sees chan[n - W + 1 .. n] (zeros before frame 0).
    basis = modulation_basis(cfg)  # (2K, W)
    hist = np.concatenate([np.zeros((w_len - 1, n_ch)), chan], axis=0)
    windows = sliding_window_view(hist, w_len, axis=0)  # (F, C, W) view
    reim = np.empty((n_frames, 2 * n_k, n_ch), np.float64)
    for s in range(0, n_frames, CHUNK_FRAMES):
        reim[s : s + CHUNK_FRAMES] = np.matmul(basis, windows[s : s + CHUNK_FRAMES].transpose(0, 2, 1))
    re = reim[:, 0::2, :].transpose(0, 2, 1)  # (F, C, K)
    im = reim[:, 1::2, :].transpose(0, 2, 1)
    mag = np.hypot(re, im)
    den = np.maximum(mag, cfg.phase_mag_floor)
    phase = np.stack([re / den, im / den], axis=-1)  # (F, C, K, 2)
    row[:, sl["phase"]] = phase.reshape(n_frames, n_ch * n_k * 2)
    row[:, sl["phase_mag"]] = mag.reshape(n_frames, n_ch * n_k)

    index = np.arange(n_frames, dtype=np.int64)
    return FeatureFrames(row.astype(np.float32), index, (index + 1) * cfg.hop / cfg.sr)
