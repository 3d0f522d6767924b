"""Kinetic features (72-d) of a dance: the "k" of FIDk and Divk.

Implements ``extract_kinetic_features`` of the AIST++ / Bailando evaluation code
(``utils/features/kinetic.py`` and ``utils/features/utils.py``, from fairmotion, modified by
Ruilong Li), vectorised, with the frame time as a parameter instead of the fixed 1/60 s.

For every joint j and every frame i = 1 .. T-1, a sliding window of half-width w = 2 averages the
per-frame displacements D[m] = p[m+1] - p[m] for m in [i-1-w, i-1+w] (clipped to the sequence):

    v_i = sum_m D[m] / (count * dt)                            (average velocity, m/s)
    a_i = sum_n (p[n+1] - 2 p[n] + p[n-1]) / (count' * dt^2)   n in [i-w, i+w] ∩ [1, T-2]  (m/s^2)

and the three features of the joint are

    KE_h = sum_i |v_i restricted to the horizontal plane (x, z)|^2 / (T - 1)
    KE_v = sum_i (v_i . y)^2 / (T - 1)
    EE   = sum_i |a_i| / (T - 1)

("kinetic energy" per unit mass, without the factor 1/2, exactly as the reference). The output
lays them out joint by joint: [KE_h(0), KE_v(0), EE(0), KE_h(1), ...].

**One deliberate deviation: EE.** The reference's ``calc_average_acceleration`` (fairmotion, AIST++ API, Bailando)
has an operator-precedence slip, ``v1 = (p[n] - p[n-1] / frame_time)``, so its "acceleration" is
((p[n+1] - p[n]) / dt - p[n] + p[n-1] / dt) / dt, dominated by the joint's position (about 3600 |p| at 60 fps,
m/s^2 only in name). Some later forks correct it. Published FIDk figures (Bailando and those that reuse its code)
carry the slip; here the default (``ee="physical"``) is the true second difference above, and ``ee="upstream"``
reproduces the slip exactly (``livedance eval --kinetic-ee upstream``), for comparing with published figures.

Velocities are divided by the true frame time, so the features are in physical units (m^2/s^2 and
m/s^2). The window, though, is w frames: at 60 fps (the reference's rate) it spans 5 frames = 83 ms, at
25 fps 200 ms, which damps dance-rate motion (a 3 Hz sway loses 68 % of its kinetic energy). So a dance at
another rate is first resampled to 60 fps (linear interpolation of the joint positions in time) and the
window keeps the reference's duration: the same motion at 25 or 60 fps then gives nearly the same vector
(91-99 % for 1-3 Hz motion; session 19, after a review; before, FIDk / Divk at 25 fps used the 200 ms window).
"""

from __future__ import annotations

import numpy as np

from livedance.errors import DataError
from livedance.eval.joints import UP_AXIS, check_positions
from livedance.eval.window import resample_positions

#: Half-width (frames) of the reference's sliding window.
SLIDING_WINDOW = 2
#: The reference's frame rate (AIST++ motions, Bailando's fixed frame time 1/60 s).
REFERENCE_FPS = 60.0


def _window_mean(x: np.ndarray, half_width: int) -> np.ndarray:
    """Mean of x[c-w .. c+w] (clipped to 0 .. len-1) along axis 0, for every c; same shape as x."""
    n = x.shape[0]
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)], axis=0)
    c = np.arange(n)
    lo = np.maximum(c - half_width, 0)
    hi = np.minimum(c + half_width, n - 1)
    count = (hi - lo + 1).reshape((-1,) + (1,) * (x.ndim - 1))
    return (csum[hi + 1] - csum[lo]) / count


#: The energy-expenditure variants of :func:`kinetic_features`.
EE_VARIANTS: tuple[str, ...] = ("physical", "upstream")


def kinetic_features(positions: np.ndarray, fps: float, sliding_window: int = SLIDING_WINDOW,
                     reference_fps: float | None = REFERENCE_FPS, ee: str = "physical") -> np.ndarray:
    """72-d kinetic feature vector of one dance (AIST++ / Bailando ``extract_kinetic_features``).

    Args:
        positions: (T, J, 3) joint positions in metres, y up (J = 24 for the protocol; any J
            works), already cut and root-anchored as the protocol wants
            (:func:`livedance.eval.window.protocol_window`). T >= 3.
        fps: frame rate in frames per second (the reference fixes 60).
        sliding_window: half-width of the averaging window in frames at ``reference_fps`` (2 in the reference).
        reference_fps: the positions are first resampled to this rate (:func:`resample_positions`), so the
            window keeps the reference's duration (83 ms at 60 fps; :func:`livedance.eval.window.resample_positions`);
            None computes at ``fps`` itself.
        ee: ``"physical"`` (default): EE from the true second difference (m/s^2); ``"upstream"``: the reference
            code's expression with its precedence slip (module docstring), for comparison with published FIDk.

    Returns:
        (3 * J,) float32: per joint, horizontal kinetic energy (m^2/s^2), vertical kinetic energy
        (m^2/s^2) and energy expenditure (mean acceleration magnitude, m/s^2).

    Raises:
        DataError: fewer than 3 frames, a wrong shape, NaN/inf, a non-positive ``fps``, a
            ``sliding_window`` below 1, or an unknown ``ee``.
    """
    if ee not in EE_VARIANTS:
        raise DataError(f"kinetic features: ee={ee!r}; expected one of {', '.join(EE_VARIANTS)}")
    p = check_positions(positions, fps, "kinetic features", min_frames=3, joints=None)
    if sliding_window < 1:
        raise DataError(f"kinetic features: sliding_window must be >= 1 frame, got {sliding_window}")
    if reference_fps is not None and reference_fps != fps:
        if not (np.isfinite(reference_fps) and reference_fps > 0):
            raise DataError(f"kinetic features: reference_fps must be > 0 frames per second, got {reference_fps}")
        p, fps = resample_positions(p, fps, reference_fps), float(reference_fps)
        if p.shape[0] < 3:
            raise DataError(f"kinetic features: {positions.shape[0]} frames resample to {p.shape[0]} at the reference's "
                            f"{reference_fps:g} fps; at least 3 are needed")
    dt = 1.0 / fps
    n_steps = p.shape[0] - 1  # frames i = 1 .. T-1

    # Average velocity at frame i uses displacements D[m], m in [i-1-w, i-1+w]: window over c = i-1.
    disp = p[1:] - p[:-1]  # (T-1, J, 3)
    vel = _window_mean(disp, sliding_window) / dt  # (T-1, J, 3), row c <-> frame i = c + 1
    horizontal = [a for a in range(3) if a != UP_AXIS]
    ke_h = np.sum(np.sum(vel[..., horizontal] ** 2, axis=-1), axis=0) / n_steps
    ke_v = np.sum(vel[..., UP_AXIS] ** 2, axis=0) / n_steps

    # Average acceleration at frame i uses second differences at n in [i-w, i+w] ∩ [1, T-2];
    # with a = n - 1 (row of `acc`) that is the window [i-1-w, i-1+w] ∩ [0, T-3] around c = i-1.
    if ee == "physical":
        acc = (p[2:] - 2.0 * p[1:-1] + p[:-2]) / dt**2  # (T-2, J, 3)
    else:  # the reference's v2 - v1 with v1 = (p[n] - p[n-1] / frame_time), verbatim
        acc = ((p[2:] - p[1:-1]) / dt - (p[1:-1] - p[:-2] / dt)) / dt
    n_acc = acc.shape[0]
    csum = np.concatenate([np.zeros((1,) + acc.shape[1:]), np.cumsum(acc, axis=0)], axis=0)
    c = np.arange(n_steps)
    lo = np.maximum(c - sliding_window, 0)
    hi = np.minimum(c + sliding_window, n_acc - 1)
    count = (hi - lo + 1)[:, None, None]
    mean_acc = (csum[hi + 1] - csum[lo]) / count  # (T-1, J, 3)
    ee_feat = np.sum(np.linalg.norm(mean_acc, axis=-1), axis=0) / n_steps

    return np.stack([ke_h, ke_v, ee_feat], axis=1).reshape(-1).astype(np.float32)
