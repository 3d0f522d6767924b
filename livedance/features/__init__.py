"""Incremental audio features for the live loop: log-mel, onset strength and causal rhythm phase.

* :class:`FeatureConfig`: sample rate (22050 Hz), STFT framing (n_fft 2048 Hann, hop 512 =
  23.2 ms, 43.07 frames/s), mel bands, onset bands, rhythm-phase bank; ``cfg.slices`` names the blocks.
* :class:`StreamingFeatures`: ``push(samples) -> FeatureFrames`` hop by hop, no per-hop allocation.
* :func:`offline_features`: the same features for a whole file, vectorised.
* :class:`StreamResampler`: streaming soxr resampler to the feature rate.

See ``docs/features.md``.
"""

from livedance.features.config import FEATURE_NAMES, FeatureConfig
from livedance.features.frames import FeatureFrames
from livedance.features.offline import offline_features, offline_logmel
from livedance.features.resample import StreamResampler
from livedance.features.stream import StreamingFeatures

__all__ = [
    "FEATURE_NAMES",
    "FeatureConfig",
    "FeatureFrames",
    "StreamingFeatures",
    "offline_features",
    "offline_logmel",
    "StreamResampler",
]
