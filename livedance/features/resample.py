"""StreamResampler: block-by-block sample-rate conversion (soxr) ahead of the feature stream.

Features run at a fixed internal rate (``FeatureConfig.sr``, 22050 Hz by default); a source at
another rate (44.1 kHz sound card, 48 kHz JACK) goes through this first. It wraps
``soxr.ResampleStream`` (libsoxr, "HQ" quality by default): output sample i of the concatenated
output is the resampled signal at time i / sr_out on the same stream clock as the input (soxr holds
some samples back, see :attr:`StreamResampler.pending`, but it does not shift the signal in time).
"""

from __future__ import annotations

import numpy as np

from livedance.errors import ConfigError
from livedance.features.validate import check_samples


class StreamResampler:
    """Stateful mono resampler from ``sr_in`` to ``sr_out`` Hz.

    Args:
        sr_in: input sample rate in Hz (> 0).
        sr_out: output sample rate in Hz (> 0), default 22050 (the feature rate).
        quality: soxr quality: "QQ", "LQ", "MQ", "HQ" (default) or "VHQ".

    When the rates are equal the samples pass through unchanged (as float32 copies).

    Raises:
        ConfigError: on a non-positive rate or an unknown quality.
    """

    def __init__(self, sr_in: int, sr_out: int = 22050, quality: str = "HQ") -> None:
        if sr_in <= 0 or sr_out <= 0:
            raise ConfigError(f"StreamResampler rates must be positive Hz, got {sr_in} -> {sr_out}")
        if quality not in ("QQ", "LQ", "MQ", "HQ", "VHQ"):
            raise ConfigError(f"StreamResampler quality must be QQ, LQ, MQ, HQ or VHQ, got {quality!r}")
        self.sr_in, self.sr_out, self.quality = int(sr_in), int(sr_out), quality
        self._rs = None
        if self.sr_in != self.sr_out:
            import soxr

            self._rs = soxr.ResampleStream(self.sr_in, self.sr_out, 1, dtype="float32", quality=quality)

    @property
    def pending(self) -> float:
        """Output samples soxr holds back (not yet returned), at ``sr_out``; 0 for pass-through.

        soxr returns its output in internal blocks, so this is a sawtooth: to 22.05 kHz at HQ, between
        about 4 and 43 ms' worth from 44.1 or 48 kHz input, 13-116 ms from 8 kHz (docs/features.md).
        """
        return 0.0 if self._rs is None else float(self._rs.delay())

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Resample the next block: (N,) float audio at sr_in -> (M,) float32 at sr_out.

        M varies from block to block (about N * sr_out / sr_in on average).

        Raises:
            AudioError: if ``samples`` is not 1-D float audio or holds NaN/inf.
        """
        x = np.ascontiguousarray(check_samples(samples), dtype=np.float32)
        if self._rs is None:
            return x.copy()
        return self._rs.resample_chunk(x, last=False)

    def flush(self) -> np.ndarray:
        """End of stream: return the samples soxr still holds, (M,) float32. Then call reset()."""
        if self._rs is None:
            return np.zeros(0, np.float32)
        return self._rs.resample_chunk(np.zeros(0, np.float32), last=True)

    def reset(self) -> None:
        """Start a new stream with the same rates (soxr's ``clear``)."""
        if self._rs is not None:
            self._rs.clear()
