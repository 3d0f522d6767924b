"""The dancer's pace: how fast the limbs move, as a generator input (a per-performance latent the VJ can set).

On 26 training dances the generator dances every song in about the same kinetic register (docs/model.md, "Div").
The pace makes that register an input: in training, each token slot gets the pace of the real dance around it;
at inference the pace is drawn once per performance from the training dances' pace distribution, or set by the
user (``livedance perform --pace``, ``livedance eval --pace``), and held.

* pace (m/s): the mean over the 23 non-root SMPL-24 joints of each joint's speed relative to the pelvis, averaged
  over a centred window of :data:`PACE_WINDOW_S` seconds (:func:`motion_pace`). Root travel is left out: a waltz
  travels fast with calm limbs. The Tang train dances lie between 0.25 and 0.87 m/s over their first 20 s (median 0.36).
* pace code (the generator's input, one more channel of the slot condition): ``log2(pace / PACE_REF_M_S)``,
  clipped to +-:data:`PACE_CODE_LIMIT` (:func:`pace_code`).
* prior: the mean and standard deviation of the per-dance mean pace codes of the training dances
  (:func:`pace_prior`), kept in :attr:`GeneratorConfig.pace <livedance.model.generator.GeneratorConfig>`; the
  engine draws ``mean + std * z``, z ~ N(0, 1), at each reset (:class:`~livedance.engine.learned.LearnedGenerator`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from livedance.errors import ConfigError, DataError

__all__ = ["PACE_REF_M_S", "PACE_WINDOW_S", "PACE_CODE_LIMIT", "motion_pace", "pace_code", "pace_m_s",
           "slot_pace_codes", "pace_prior"]

#: Reference pace, m/s: code 0.
PACE_REF_M_S = 0.4
#: Averaging window of :func:`motion_pace`, seconds (centred).
PACE_WINDOW_S = 8.0
#: Pace codes are clipped to [-limit, limit] (a factor 16 either side of the reference).
PACE_CODE_LIMIT = 4.0


def motion_pace(positions: np.ndarray, fps: float, window_s: float = PACE_WINDOW_S) -> np.ndarray:
    """Per-frame pace of a dance: mean joint speed relative to the pelvis, smoothed over a centred window.

    Args:
        positions: (T, J, 3) float joint positions in metres, joint 0 the pelvis (SMPL-24 order), T >= 2.
        fps: frames per second (> 0).
        window_s: centred moving-average window, seconds (> 0); at the ends the window is cut to the frames there.
    Returns:
        (T,) float32 m/s.
    Raises:
        DataError: positions not (T >= 2, J >= 2, 3) or not finite. ConfigError: fps or window_s not > 0.
    """
    p = np.asarray(positions, np.float64)
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[1] < 2 or p.shape[2] != 3:
        raise DataError(f"motion_pace: positions of shape {p.shape}; expected (T >= 2, J >= 2, 3) metres")
    if not np.isfinite(p).all():
        raise DataError("motion_pace: positions hold NaN or inf")
    if not (math.isfinite(fps) and fps > 0 and math.isfinite(window_s) and window_s > 0):
        raise ConfigError(f"motion_pace: fps={fps}, window_s={window_s}; expected both finite and > 0")
    rel = p[:, 1:] - p[:, :1]
    v = np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(-1) * fps  # (T - 1,)
    v = np.concatenate([v[:1], v])
    w = max(1, int(round(window_s * fps)))
    k = np.ones(w)
    return (np.convolve(v, k, "same") / np.convolve(np.ones_like(v), k, "same")).astype(np.float32)


def pace_code(pace: np.ndarray | float) -> np.ndarray:
    """Pace (m/s, > 0; smaller values are taken as 1 mm/s) -> code ``log2(pace / PACE_REF_M_S)`` clipped to
    +-:data:`PACE_CODE_LIMIT`: float32, the input's shape."""
    x = np.maximum(np.asarray(pace, np.float64), 1e-3)
    return np.clip(np.log2(x / PACE_REF_M_S), -PACE_CODE_LIMIT, PACE_CODE_LIMIT).astype(np.float32)


def pace_m_s(code: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`pace_code`: code -> pace in m/s, float64, the input's shape."""
    return PACE_REF_M_S * np.exp2(np.asarray(code, np.float64))


def slot_pace_codes(positions: np.ndarray, fps: float, stride: int, n_slots: int) -> np.ndarray:
    """The pace code of each token slot: the dance's :func:`motion_pace` at the slot's middle frame.

    Args:
        positions: (T, J, 3) metres. fps: frames per second. stride: frames per slot (4). n_slots: N.
    Returns:
        (N,) float32 codes (slot n covers frames stride*n .. stride*n + stride - 1; frames past T take the last).
    """
    pace = motion_pace(positions, fps)
    idx = np.minimum(np.arange(int(n_slots)) * int(stride) + int(stride) // 2, pace.shape[0] - 1)
    return pace_code(pace[idx])


def pace_prior(slot_codes: Sequence[np.ndarray]) -> tuple[float, float]:
    """The training dances' pace distribution: mean and standard deviation of their per-dance mean codes.

    Args:
        slot_codes: per dance, (N_i,) slot pace codes (:func:`slot_pace_codes`), at least two dances.
    Returns:
        ``(mean, std)`` floats, in code units (log2 of pace / :data:`PACE_REF_M_S`).
    Raises:
        DataError: fewer than two dances, or an empty one.
    """
    means = [float(np.mean(c)) for c in slot_codes if np.size(c)]
    if len(means) < 2 or len(means) != len(slot_codes):
        raise DataError(f"pace prior: {len(slot_codes)} dances ({len(means)} non-empty); expected at least two, "
                        "none empty")
    return float(np.mean(means)), float(np.std(means))
