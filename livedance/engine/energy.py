"""The VJ's energy fader for learned dancers: the dance's amplitude about its own running mean pose.

``/livedance/energy`` (:class:`~livedance.live.controls.LiveControls`, 0..2, 1 = as generated) reaches every
generator as ``MusicContext.energy``. The procedural dancer scales its own amplitudes with it; a learned dancer
has no amplitude parameter, so :class:`EnergyFader` scales what it produced, frame by frame, as a geodesic
scaling about a slowly moving reference pose:

    m_t   = normalise(m_{t-1} + alpha (s_t q_t - m_{t-1}))   per joint; s_t = sign(<m_{t-1}, q_t>), the EMA of the
                                                             generated local rotations (time constant ``tau_s``)
    q'_t  = m_t * exp(a_t log(m_t^-1 * q_t))                 = slerp(m_t, q_t, a_t), extrapolated for a_t > 1
    p'_t  = c_t + a_t (p_t - c_t)                            pelvis position, c_t its EMA

with ``alpha = 1 - exp(-1 / (fps tau_s))``. The amplitude a_t glides (time constant ``glide_s``) towards
A(e) = e for e <= 1 and 1 + (e - 1) x ``over_gain`` above: at 0 the avatar holds the dance's mean posture (which
still drifts with the dance), at 2 it moves 1.5x as far from it by default (twice would bend joints past their
limits). The reference follows the generated frames, never the scaled ones, so moving the fader back returns
the dance exactly. At a_t = 1 with the fader at 1 the frames pass through untouched, bit for bit: a show, an
eval or a recording with the fader at rest is the generator's own dance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from livedance.errors import ConfigError

__all__ = ["EnergyConfig", "EnergyFader", "fader_amplitude"]


@dataclass
class EnergyConfig:
    """Settings of :class:`EnergyFader`.

    Attributes:
        tau_s: time constant of the reference pose's moving average, seconds (a few beats: the posture the
            dance holds, not its moves).
        glide_s: time constant with which the amplitude follows the fader, seconds (no pop when a VJ jumps it).
        over_gain: amplitude gained per unit of fader above 1 (0.5: the fader's 2 is 1.5x the generated moves).
    """

    tau_s: float = 1.5
    glide_s: float = 0.25
    over_gain: float = 0.5

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if not 0.1 <= float(self.tau_s) <= 30.0:
            raise ConfigError(f"EnergyConfig.tau_s must be in [0.1, 30] seconds, got {self.tau_s}")
        if not 0.0 < float(self.glide_s) <= 10.0:
            raise ConfigError(f"EnergyConfig.glide_s must be in (0, 10] seconds, got {self.glide_s}")
        if not 0.0 <= float(self.over_gain) <= 1.0:
            raise ConfigError(f"EnergyConfig.over_gain must be in [0, 1], got {self.over_gain}")


def fader_amplitude(energy: float, over_gain: float = 0.5) -> float:
    """The amplitude A(e) for a fader value ``energy`` (clamped to [0, 2]; NaN / inf count as 1, the rest position)."""
    e = float(energy)
    if not math.isfinite(e):
        return 1.0
    e = min(max(e, 0.0), 2.0)
    return e if e <= 1.0 else 1.0 + (e - 1.0) * float(over_gain)


class EnergyFader:
    """Scales a learned dancer's frames by the energy fader (see the module docstring).

    Args:
        fps: frame rate of the frames it is given (25 for the shipped model).
        config: :class:`EnergyConfig`.
    Raises:
        ConfigError: bad config or ``fps`` <= 0.

    Cost per 8 frames of 55 joints on one core: the reference update only while the fader rests at 1 (about
    0.1 ms), plus the geodesic scaling (roma's quaternion maps, about 1.2 ms) while it is elsewhere.
    """

    def __init__(self, fps: float, config: EnergyConfig | None = None):
        self.cfg = config or EnergyConfig()
        self.cfg.validate()
        if not fps > 0:
            raise ConfigError(f"EnergyFader fps must be > 0, got {fps}")
        self.fps = float(fps)
        self._alpha = 1.0 - math.exp(-1.0 / (self.fps * float(self.cfg.tau_s)))
        self._beta = 1.0 - math.exp(-1.0 / (self.fps * float(self.cfg.glide_s)))
        self._w_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the reference pose and return the amplitude to 1 (a new song)."""
        self._mean_q: np.ndarray | None = None  # (J, 4) float64
        self._mean_p: np.ndarray | None = None  # (3,) float64
        self.amplitude = 1.0

    def apply(self, frames, energy: float):
        """The frames with the fader applied.

        Args:
            frames: :class:`~livedance.engine.base.MotionFrames` (local_quats (n, J, 4) float32 x, y, z, w unit
                quaternions; root_translation (n, 3) float32 metres), as generated.
            energy: the fader, 0..2 (clamped; non-finite = 1).
        Returns:
            ``frames`` itself while the amplitude rests at 1, else a new MotionFrames with scaled local_quats
            and root_translation (same shapes, float32).
        """
        q = np.asarray(frames.local_quats, np.float64)
        p = np.asarray(frames.root_translation, np.float64)
        n = q.shape[0]
        if n == 0:
            return frames
        target = fader_amplitude(energy, self.cfg.over_gain)
        prev_q = q[0] if self._mean_q is None else self._mean_q
        prev_p = p[0] if self._mean_p is None else self._mean_p
        # The moving averages over this run of frames in closed form (one matrix product instead of a loop):
        # m_i = (1 - alpha)^(i+1) m_prev + sum_k<=i alpha (1 - alpha)^(i-k) x_k, normalised for rotations;
        # the quaternions take the sign of the hemisphere of the previous mean (q and -q are one rotation).
        w, keep = self._weights(n)
        q_aligned = q * np.where((q * prev_q).sum(-1, keepdims=True) < 0.0, -1.0, 1.0)
        if self.amplitude == 1.0 and target == 1.0:  # at rest: only the last frame's means are carried on
            last = keep[-1] * prev_q + np.tensordot(w[-1], q_aligned, axes=1)
            self._mean_q = last / np.linalg.norm(last, axis=-1, keepdims=True)
            self._mean_p = keep[-1] * prev_p + w[-1] @ p
            return frames
        mean_q = keep[:, None, None] * prev_q + np.einsum("ik,kjc->ijc", w, q_aligned)
        mean_q /= np.linalg.norm(mean_q, axis=-1, keepdims=True)
        mean_p = keep[:, None] * prev_p + w @ p
        amp = target + (self.amplitude - target) * (1.0 - self._beta) ** np.arange(1, n + 1)  # the glide, same form
        amp[np.abs(amp - target) < 1e-4] = target
        self._mean_q, self._mean_p, self.amplitude = mean_q[-1], mean_p[-1], float(amp[-1])
        if np.all(amp == 1.0):
            return frames
        from livedance.motion.rotations import quat_slerp_np

        return replace(frames, local_quats=quat_slerp_np(mean_q, q, amp[:, None]).astype(np.float32),
                       root_translation=(mean_p + amp[:, None] * (p - mean_p)).astype(np.float32))

    def _weights(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """((n, n) lower-triangular EMA weights alpha (1 - alpha)^(i-k), (n,) (1 - alpha)^(i+1)), cached per n."""
        if n not in self._w_cache:
            k = np.arange(n)
            w = np.where(k[:, None] >= k[None, :], self._alpha * (1.0 - self._alpha) ** (k[:, None] - k[None, :]), 0.0)
            self._w_cache[n] = (w, (1.0 - self._alpha) ** (k + 1))
        return self._w_cache[n]
