"""offline_features: the whole-file twin of StreamingFeatures, vectorised over frames.

It computes exactly the features of :class:`livedance.features.stream.StreamingFeatures` (same
framing, same filterbank, same causal phase bank; see that module for the maths) with batched
numpy operations instead of a per-hop loop. Work goes in chunks of frames, carrying the state across
chunk edges as the streaming path does, so the working memory stays bounded (about 70 MB at the
defaults, measured with tracemalloc) however long the file; only the float32 output grows with it.
"""

from __future__ import annotations

from collections.abc import Iterator

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

#: Frames per batch of the vectorised passes (bounds the temporary arrays: about 70 MB at the defaults).
CHUNK_FRAMES = 1024


def _logmel_chunks(x: np.ndarray, cfg: FeatureConfig) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first frame, (m, n_mels) float64 log-mel of frames first .. first + m - 1) per chunk.

    Each chunk reads only its own samples (converted to float64 chunk by chunk), so nothing of the
    length of ``x`` is allocated.
    """
    hop, n_fft = cfg.hop, cfg.n_fft
    n_frames = x.shape[0] // hop
    window = analysis_window(cfg)
    mel_t = mel_filterbank(cfg).T  # (n_bins, n_mels)
    for s in range(0, n_frames, CHUNK_FRAMES):
        e = min(n_frames, s + CHUNK_FRAMES)
        a, b = (s + 1) * hop - n_fft, e * hop  # samples of frames s .. e - 1 (zeros before sample 0)
        seg = np.zeros(b - a, np.float64)
        seg[max(0, -a) :] = x[max(0, a) : b]
        frames = sliding_window_view(seg, n_fft)[::hop]  # (e - s, n_fft) view, no copy
        spec = np.fft.rfft(frames * window, axis=-1)
        power = spec.real**2 + spec.imag**2
        out = power @ mel_t
        np.maximum(out, cfg.amin, out=out)
        np.log10(out, out=out)
        out *= 10.0
        yield s, out


def offline_logmel(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram of a whole signal with the causal framing of ``cfg``.

    Args:
        audio: (N,) float mono audio at ``cfg.sr`` Hz.
        cfg: feature configuration.

    Returns:
        (N // hop, n_mels) float64 log-mel power in dB, ``10 log10(max(M @ |X|^2, amin))``, where
        frame k is the window ending at sample (k + 1) * hop (zeros before sample 0).

    Raises:
        AudioError: if ``audio`` is not a 1-D float array, holds NaN/inf or magnitudes above 1e30 (as
            :func:`offline_features`; integer PCM must be scaled to [-1, 1] first).
    """
    x = check_samples(audio, "audio")
    out = np.empty((x.shape[0] // cfg.hop, cfg.n_mels), np.float64)
    for s, chunk in _logmel_chunks(x, cfg):
        out[s : s + chunk.shape[0]] = chunk
    return out


def offline_features(audio: np.ndarray, cfg: FeatureConfig | None = None) -> FeatureFrames:
    """All features of a whole signal at once (the offline twin of ``StreamingFeatures.push``).

    Works through the frames in chunks of :data:`CHUNK_FRAMES`, carrying across chunk edges what the
    streaming path keeps (the previous log-mel row and the last W - 1 rows of the onset channels), so
    the working memory is bounded (about 70 MB at the defaults) however long the file; only the
    output grows with it (F x D float32, 720 bytes per frame at the defaults, 1.9 MB per minute).

    Args:
        audio: (N,) float32/float64 mono audio at ``cfg.sr`` Hz.
        cfg: feature configuration (default ``FeatureConfig()``).

    Returns:
        FeatureFrames with F = N // hop frames: values (F, D) float32 laid out by ``cfg.slices``,
        frame_index 0 .. F-1 (int64), times_s = (k + 1) * hop / sr (float64, end of each window).

    Raises:
        AudioError: if ``audio`` is not a 1-D float array, holds NaN/inf or magnitudes above 1e30.
    """
    cfg = cfg if cfg is not None else FeatureConfig()
    x = check_samples(audio, "audio")
    n_frames = x.shape[0] // cfg.hop
    if n_frames == 0:
        return FeatureFrames.empty(cfg.feature_dim)
    sl = cfg.slices
    n_ch, n_k, w_len = cfg.n_phase_channels, cfg.n_tempi, cfg.phase_frames
    values = np.empty((n_frames, cfg.feature_dim), np.float32)
    bands_t = band_average_matrix(cfg).T  # (n_mels, C)
    basis = modulation_basis(cfg)  # (2K, W)
    chan_sl = slice(sl["onset"].start, sl["band_onset"].stop)
    hist = np.zeros((w_len - 1, n_ch))  # channel rows of the W - 1 frames before the chunk (zeros before 0)
    last = None  # log-mel of the frame before the chunk

    for s, logmel in _logmel_chunks(x, cfg):
        m = logmel.shape[0]
        out = values[s : s + m]
        out[:, sl["logmel"]] = logmel
        # Rectified flux against the previous frame (frame 0 against itself), band averages.
        prev = np.concatenate([logmel[:1] if last is None else last[None, :], logmel[:-1]], axis=0)
        chan = np.maximum(logmel - prev, 0.0) @ bands_t  # (m, C): onset, band onsets
        out[:, chan_sl] = chan
        # Causal Fourier bank along time: frame n sees chan[n - W + 1 .. n].
        ext = np.concatenate([hist, chan], axis=0)  # (W - 1 + m, C)
        windows = sliding_window_view(ext, w_len, axis=0)  # (m, C, W) view
        reim = np.matmul(basis, windows.transpose(0, 2, 1))  # (m, 2K, C)
        re = reim[:, 0::2, :].transpose(0, 2, 1)  # (m, C, K)
        im = reim[:, 1::2, :].transpose(0, 2, 1)
        mag = np.hypot(re, im)
        den = np.maximum(mag, cfg.phase_mag_floor)
        phase = np.stack([re / den, im / den], axis=-1)  # (m, C, K, 2)
        out[:, sl["phase"]] = phase.reshape(m, n_ch * n_k * 2)
        out[:, sl["phase_mag"]] = mag.reshape(m, n_ch * n_k)
        last = logmel[-1].copy()
        hist = ext[ext.shape[0] - (w_len - 1) :].copy()

    index = np.arange(n_frames, dtype=np.int64)
    return FeatureFrames(values, index, (index + 1) * cfg.hop / cfg.sr)
