"""Input checks shared by the streaming and offline feature paths."""

from __future__ import annotations

import math

import numpy as np

from livedance.errors import AudioError


def check_samples(samples: np.ndarray, what: str = "samples") -> np.ndarray:
    """Return ``samples`` as a 1-D float array (no copy when it already is one).

    Args:
        samples: (N,) float32 or float64 mono audio, nominally in [-1, 1], at the config's rate.
        what: name of the input for the error message.

    Raises:
        AudioError: if it is not 1-D (mix down with ``livedance.data.audio_io.to_mono``), not a
            floating-point array (integer PCM must be scaled to [-1, 1] first), or holds NaN/inf.
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise AudioError(
            f"{what} must be mono audio of shape (N,), got shape {x.shape}; "
            "mix down with livedance.data.audio_io.to_mono"
        )
    if x.dtype.kind != "f":
        raise AudioError(
            f"{what} must be float32/float64 audio in [-1, 1], got dtype {x.dtype}; "
            "scale integer PCM to floats first"
        )
    # One reduction, no temporary array: NaN or inf anywhere makes the sum non-finite.
    if x.size and not math.isfinite(float(np.sum(x))):
        raise AudioError(f"{what} hold NaN or inf values (or magnitudes near the float limit)")
    return x
