"""Beat Align Score (BAS) between a dance and its music.

Follows Bailando's ``utils/beat_align_score.py`` (Li et al., "AI Choreographer", ICCV 2021, eq. 4,
as Bailando implements it):

- motion beats: the local minima (``scipy.signal.argrelextrema(..., np.less)``) of the mean joint
  speed s[k] = mean_j |p[k+1, j] - p[k, j]| (k = 0 .. T-2), smoothed by a Gaussian filter of
  sigma 5 frames at 60 fps;
- score = (1 / |B_m|) * sum_{b in B_m} exp(-min_{d in B_d} (b - d)^2 / (2 sigma^2)), with B_m the
  music beats and B_d the motion beats, both in frames, and sigma = 3 frames at 60 fps.

Frame rate. Both sigmas are durations: 5 frames at 60 fps = 1/12 s (smoothing) and 3 frames at
60 fps = 0.05 s (tolerance). At other rates they scale with fps: sigma_smooth = 5 * fps / 60 and
sigma_bas = 3 * fps / 60 frames (2.083 and 1.25 frames at 25 fps), so the score measures the same
thing in seconds at any rate. Music beats in seconds become fractional frames b = t * fps.

Timing. A motion beat k is a minimum of the speed between frames k and k+1, i.e. at (k + 0.5) / fps seconds, but
it is scored at frame k, as in the reference: half a frame early, 8.3 ms at the reference's 60 fps and 20 ms at
25 fps. Every row of one evaluation shares it (so comparisons within a run stand), and this code keeps the
reference's convention; against sigma = 50 ms it lowers a perfectly aligned dance's score to about 0.92 at 25 fps
(0.99 at 60 fps).

A dance without motion beats scores 0 (every music beat is infinitely far); a clip without music
beats has no score (NaN) and is left out of averages.
"""

from __future__ import annotations

import numpy as np

from livedance.errors import DataError

#: Reference frame rate of the published sigmas (AIST++).
REFERENCE_FPS = 60.0
#: Gaussian smoothing of the speed curve, frames at 60 fps.
SMOOTHING_SIGMA_60FPS = 5.0
#: Tolerance of the score, frames at 60 fps.
BAS_SIGMA_60FPS = 3.0


def mean_joint_speed(positions: np.ndarray) -> np.ndarray:
    """Mean over joints of the per-frame displacement length.

    Args:
        positions: (T, J, 3) joint positions in metres.

    Returns:
        (T-1,) float64, metres per frame; entry k is between frames k and k+1.
    """
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3 or p.shape[0] < 2:
        raise DataError(f"mean joint speed: expected positions of shape (T >= 2, J, 3), got {p.shape}")
    return np.linalg.norm(p[1:] - p[:-1], axis=2).mean(axis=1)


def motion_beats(positions: np.ndarray, fps: float) -> np.ndarray:
    """Motion beats: local minima of the smoothed mean joint speed (Bailando ``calc_db``).

    Args:
        positions: (T, J, 3) joint positions in metres.
        fps: frame rate in frames per second; the smoothing sigma is 5 * fps / 60 frames.

    Returns:
        (K,) int64 frame indices into the (T-1,) speed curve, ascending.

    Raises:
        DataError: bad shape, fewer than 2 frames, NaN/inf or a non-positive fps.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import argrelextrema

    if not np.isfinite(fps) or fps <= 0:
        raise DataError(f"motion beats: fps must be positive, got {fps}")
    speed = mean_joint_speed(positions)
    if not np.isfinite(speed).all():
        raise DataError("motion beats: positions hold NaN or inf")
    # scipy.ndimage.gaussian_filter (the reference) on a 1-D array is gaussian_filter1d, mode 'reflect'.
    smooth = gaussian_filter1d(speed, SMOOTHING_SIGMA_60FPS * fps / REFERENCE_FPS)
    return argrelextrema(smooth, np.less)[0].astype(np.int64)


def beat_align_score(music_beats: np.ndarray, dance_beats: np.ndarray, fps: float) -> float:
    """BAS of one clip (Bailando ``BA``): mean over music beats of exp(-d^2 / (2 sigma^2)).

    Args:
        music_beats: (M,) music beat positions in frames at ``fps`` (may be fractional).
        dance_beats: (K,) motion beat frames (from :func:`motion_beats`).
        fps: frame rate; sigma = 3 * fps / 60 frames (0.05 s).

    Returns:
        Score in [0, 1]; NaN when there are no music beats; 0 when there are no motion beats.
    """
    mb = np.asarray(music_beats, dtype=np.float64).reshape(-1)
    db = np.asarray(dance_beats, dtype=np.float64).reshape(-1)
    if mb.size == 0:
        return float("nan")
    if db.size == 0:
        return 0.0
    sigma = BAS_SIGMA_60FPS * fps / REFERENCE_FPS
    d2 = np.min((mb[:, None] - db[None, :]) ** 2, axis=1)
    return float(np.mean(np.exp(-d2 / (2.0 * sigma**2))))


def clip_beat_align_score(positions: np.ndarray, fps: float, music_beat_times: np.ndarray) -> float:
    """BAS of a dance against music beats given in seconds from the dance's frame 0.

    Music beats are converted to frames (t * fps) and, as in the reference (which reads the music
    beat track up to the speed curve's length), only those in [0, T-1) frames are scored.

    Args:
        positions: (T, J, 3) joint positions in metres.
        fps: frame rate of ``positions``.
        music_beat_times: (M,) beat times in seconds, 0 = the time of motion frame 0.

    Returns:
        The clip's score (see :func:`beat_align_score`).
    """
    n_speed = np.asarray(positions).shape[0] - 1
    frames = np.asarray(music_beat_times, dtype=np.float64).reshape(-1) * fps
    frames = frames[(frames >= 0) & (frames < n_speed)]
    return beat_align_score(frames, motion_beats(positions, fps), fps)
