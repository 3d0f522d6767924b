"""The motion excerpt that the AIST++ protocol scores, and frame-rate conversion.

The AIST++ protocol as Bailando implements it (``utils/metrics_new.py``, ``calc_and_save_feats``)
keeps the first 1200 frames at 60 fps (20 s) of each dance and subtracts the root position of
frame 0 from every joint of every frame ("root-anchored": the dance starts at the origin, its
global path is kept). Here the frame rate is a parameter: the excerpt is the first
``round(seconds * fps)`` frames, i.e. the same 20 s at any rate.
"""

from __future__ import annotations

import numpy as np

from livedance.errors import DataError

#: Length of the scored excerpt in seconds (1200 frames at 60 fps).
PROTOCOL_SECONDS = 20.0


def check_positions(positions: np.ndarray, what: str = "positions") -> np.ndarray:
    """Return ``positions`` as float64 (T, 24, 3) after checking its shape and values.

    Raises:
        DataError: wrong shape, fewer than 2 frames, or a NaN/inf value (the message names
            ``what`` and the first bad frame index).
    """
    arr = np.asarray(positions, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (24, 3):
        raise DataError(f"{what}: expected SMPL-24 joint positions of shape (T, 24, 3), got {arr.shape}")
    if arr.shape[0] < 2:
        raise DataError(f"{what}: need at least 2 frames, got {arr.shape[0]}")
    bad = ~np.isfinite(arr).all(axis=(1, 2))
    if bad.any():
        raise DataError(f"{what}: NaN or inf at frame {int(np.argmax(bad))}")
    return arr


def protocol_window(positions: np.ndarray, fps: float, seconds: float = PROTOCOL_SECONDS) -> np.ndarray:
    """First ``round(seconds * fps)`` frames, root-anchored at frame 0 (Bailando's protocol).

    Args:
        positions: (T, 24, 3) SMPL-24 joint positions in metres, y up.
        fps: frame rate of ``positions`` in frames per second.
        seconds: excerpt length in seconds (20 s = 1200 frames at 60 fps).

    Returns:
        (min(T, N), 24, 3) float64 with the root (joint 0) of frame 0 at the origin.

    Raises:
        DataError: bad shape/values (see :func:`check_positions`) or non-positive ``fps``.
    """
    if not np.isfinite(fps) or fps <= 0:
        raise DataError(f"frame rate must be a positive number of frames per second, got {fps}")
    arr = check_positions(positions)
    n = max(2, int(round(seconds * fps)))
    arr = arr[:n]
    return arr - arr[:1, :1, :]


def resample_positions(positions: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Resample (T, J, 3) positions from ``fps_in`` to ``fps_out`` by linear interpolation in time.

    Output frame k lies at time k / fps_out seconds (frame 0 stays at time 0); the output holds
    every such frame up to the last input frame's time, i.e. floor((T - 1) * fps_out / fps_in) + 1
    frames. Returns the input (as float64) when the rates are equal.

    Raises:
        DataError: a non-positive or non-finite frame rate.
    """
    for name, fps in (("fps_in", fps_in), ("fps_out", fps_out)):
        if not np.isfinite(fps) or fps <= 0:
            raise DataError(f"{name} must be a positive frame rate, got {fps}")
    arr = np.asarray(positions, dtype=np.float64)
    if fps_in == fps_out:
        return arr
    if arr.shape[0] < 2:
        return arr.copy()
    n_out = int(np.floor((arr.shape[0] - 1) * fps_out / fps_in + 1e-9)) + 1
    src = np.minimum(np.arange(n_out) * (fps_in / fps_out), arr.shape[0] - 1)  # input frame index
    i0 = np.minimum(np.floor(src).astype(np.int64), arr.shape[0] - 2)
    w = (src - i0).reshape((-1,) + (1,) * (arr.ndim - 1))
    return arr[i0] + w * (arr[i0 + 1] - arr[i0])  # (exact where a joint does not move)
