"""Input checks shared by the streaming and offline feature paths."""

from __future__ import annotations

import math

import numpy as np

from livedance.errors import AudioError


#: Largest sample magnitude accepted. Audio is nominally in [-1, 1]; far beyond, the power spectrum
#: (|X|^2 summed over a 2048-sample window) overflows float64 into inf/NaN features.
MAX_ABS_SAMPLE = 1e30


def check_samples(samples: np.ndarray, what: str = "samples") -> np.ndarray:
    """Return ``samples`` as a 1-D float array (no copy when it already is one).

    Args:
        samples: (N,) float16/float32/float64 mono audio, nominally in [-1, 1] (a little beyond is
            fine), at the config's rate.
        what: name of the input for the error message.

    Raises:
        AudioError: if it is not 1-D (mix down with ``livedance.data.audio_io.to_mono``), not a
            floating-point array (integer PCM must be scaled to [-1, 1] first), holds NaN/inf, or a
            sample's magnitude exceeds :data:`MAX_ABS_SAMPLE` (1e30).
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise AudioError(
            f"{what} must be mono audio of shape (N,), got shape {x.shape}; "
            "mix down with livedance.data.audio_io.to_mono"
        )
    if x.dtype.kind != "f":
        raise AudioError(
            f"{what} must be float16/float32/float64 audio in [-1, 1], got dtype {x.dtype}; "
            "scale integer PCM to floats first"
        )
    if x.size:
        # Two reductions, no temporary array, no overflow (unlike a sum, which overflows float16 at
        # 65504): NaN propagates into max/min, inf shows as an infinite extreme.
        hi, lo = float(x.max()), float(x.min())
        if not (math.isfinite(hi) and math.isfinite(lo)):
            raise AudioError(f"{what} hold NaN or inf values; expected finite float samples in [-1, 1]")
        peak = max(hi, -lo)
        if peak > MAX_ABS_SAMPLE:
            raise AudioError(
                f"{what} hold a sample of magnitude {peak:.3g}; expected float samples in [-1, 1] "
                f"(a little beyond is fine, at most {MAX_ABS_SAMPLE:.0e})"
            )
    return x
