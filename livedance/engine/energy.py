"""The VJ's energy fader for learned dancers: the dance's amplitude about its own running mean pose.

``/livedance/energy`` (:class:`~livedance.live.controls.LiveControls`, 0..2, 1 = as generated) reaches every
generator as ``MusicContext.energy``. The procedural dancer scales its own amplitudes with it; a learned dancer
has no amplitude parameter, so :class:`EnergyFader` scales what it produced, frame by frame, as a geodesic
scaling about a slowly moving reference pose. Per joint j >= 1 (the pelvis's own rotation, joint 0, carries the
dancer's facing: it stays as generated, see below) and frame t:

    m_t   = (1 - alpha) m_{t-1} + alpha s q_t, normalised      the reference: an exponential moving average of the
                                                             generated local rotations (time constant ``tau_s``)
    b_t   = 1 + (a_t - 1) cos^2(theta_t / 2)                   theta_t = angle(m_t, q_t): the scaling fades out
                                                             towards 180 degrees from the reference
    q'_t  = m_t * exp(b_t log(m_t^-1 * q_t))                 = slerp(m_t, q_t, b_t), extrapolated for b_t > 1
    p'_t  = c_t + a_t (p_t - c_t)                            pelvis position, c_t its moving average

with ``alpha = 1 - exp(-1 / (fps tau_s))``. The averages are computed in closed form over each call's frames,
with each quaternion's sign s taken from the hemisphere of the previous call's reference (q and -q are one
rotation), so a result depends on the call's length: by about 1e-3 rad on most joints between 8-frame and
1-frame calls, by more for a few seconds after a joint has passed 180 degrees from its reference.
The cos^2 fade keeps the output continuous where the shortest arc from the reference flips side (a joint 180
degrees from its mean): there b_t = 1 and the output is the generated rotation, from either side. Its price: a
joint far from its mean is scaled less, and at a low fader it swings through the fade faster than generated
(the output angle theta sin^2(theta / 2) at a = 0 grows up to 1.7x as fast as theta); on the shipped model's
dances that is the elbows and wrists (docs/model.md, "Energy fader"). The pelvis's
rotation is left alone because a turning dancer's facing runs ahead of any average of it (a spin's average
orientation is no orientation), and scaling it would spin the avatar against the dance.

Below a fader of 0.5 a calming smoother follows (session 14): per joint but the pelvis, y_t = slerp(y_{t-1}, q'_t,
s_t) with s_t = ``calm_follow`` + (1 - ``calm_follow``) min(1, 2 a_t), a one-pole low-pass on the sphere (y_{t-1} the
last frame given out), each step y_{t-1} -> y_t capped at the larger of the joint's generated step q_{t-1} -> q_t and
0.15 rad (``EnergyFader.CATCH_UP_RAD``), so the lag it builds closes without a pop when the fader comes back up. It
slows what the cos^2 fade lets through, the joints far from their mean: at fader 0 the shipped model's elbows and
wrists keep 30 % of their speed instead of 68 %, and no joint turns faster in one frame than generated or 0.15 rad
(`benchmarks/energy_fader.py`). From a fader of 0.5 up s_t = 1; once no lag is left it changes nothing.

The amplitude a_t glides (time constant ``glide_s``) towards A(e) = e for e <= 1 and 1 + (e - 1) x
``over_gain`` above: at 0 the avatar holds the dance's mean posture (which still drifts with the dance; joints
far from their mean excepted, above), at 2
it moves 1.5x as far from it by default (twice would bend joints past their limits). The reference follows
the generated frames, never the scaled ones, so moving the fader back returns the dance exactly. At a_t = 1
with the fader at 1 the frames pass through untouched, bit for bit: a show, an eval or a recording with the
fader at rest is the generator's own dance.
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
        calm_follow: the calming smoother's follow rate per frame at fader 0 (in (0, 1]; 1 turns the smoother
            off). Below a fader of 0.5 each joint's output (the pelvis's excepted) follows the scaled rotation by the share
            s = calm_follow + (1 - calm_follow) min(1, 2 a) per frame (see the module docstring).
    """

    tau_s: float = 1.5
    glide_s: float = 0.25
    over_gain: float = 0.5
    calm_follow: float = 0.1

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if not 0.1 <= float(self.tau_s) <= 30.0:
            raise ConfigError(f"EnergyConfig.tau_s must be in [0.1, 30] seconds, got {self.tau_s}")
        if not 0.0 < float(self.glide_s) <= 10.0:
            raise ConfigError(f"EnergyConfig.glide_s must be in (0, 10] seconds, got {self.glide_s}")
        if not 0.0 <= float(self.over_gain) <= 1.0:
            raise ConfigError(f"EnergyConfig.over_gain must be in [0, 1], got {self.over_gain}")
        if not 0.0 < float(self.calm_follow) <= 1.0:
            raise ConfigError(f"EnergyConfig.calm_follow must be in (0, 1], got {self.calm_follow}")


def fader_amplitude(energy: float | None, over_gain: float = 0.5) -> float:
    """The amplitude A(e) in [0, 1 + over_gain] for a fader value ``energy`` (clamped to [0, 2]; None, NaN, inf
    and anything that is not a number count as 1, the rest position). Never raises for a bad ``energy``: the
    learned dancer calls it after its state has advanced."""
    if energy is None:
        return 1.0
    try:
        e = float(energy)
    except (TypeError, ValueError, OverflowError):
        return 1.0
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

    Attributes:
        cfg: the :class:`EnergyConfig`. fps: frames per second.
        amplitude: the amplitude a_t after the last frame given (1.0 at rest).

    State: the reference pose, the pelvis's moving average and the amplitude, advanced by every
    :meth:`apply` (also while the frames pass through untouched, so the reference is warm when the fader
    moves); :meth:`reset` forgets them. Cost per 8 frames of 55 joints on one core: about 0.1 ms at rest,
    about 1.3 ms (roma's quaternion maps) while the fader is elsewhere, about 2 ms more below 0.5 (the calming smoother).
    """

    CATCH_UP_RAD = 0.15  # the calming smoother's least allowed step per frame, radians (3.75 rad/s at 25 fps)

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
        # the calming smoother: the last frame given out, the last generated frame, whether the output lags
        self._last_out: np.ndarray | None = None  # (J, 4) float64
        self._last_in: np.ndarray | None = None  # (J, 4) float64
        self._lagging = False
        self.amplitude = 1.0

    def apply(self, frames, energy: float | None):
        """The frames with the fader applied.

        Args:
            frames: :class:`~livedance.engine.base.MotionFrames` (local_quats (n, J, 4) float32 x, y, z, w unit
                quaternions; root_translation (n, 3) float32 metres), as generated, at ``fps``.
            energy: the fader, 0..2 (clamped; None / non-finite = 1).
        Returns:
            ``frames`` itself while the amplitude rests at 1, or when they hold a non-finite value or a
            quaternion that is not unit (they are then left out of the reference too, so one bad frame cannot
            poison it); else a new MotionFrames with
            scaled local_quats and root_translation (same shapes, float32; fps, t0_s, n_bad kept).
        """
        q = np.asarray(frames.local_quats, np.float64)
        p = np.asarray(frames.root_translation, np.float64)
        n = q.shape[0]
        if n == 0 or not (np.isfinite(q).all() and np.isfinite(p).all()):
            return frames
        if not (np.abs(np.linalg.norm(q, axis=-1) - 1.0) < 1e-3).all():  # not rotations: pass on, keep out
            return frames
        target = fader_amplitude(energy, self.cfg.over_gain)
        prev_q = q[0] if self._mean_q is None else self._mean_q
        prev_p = p[0] if self._mean_p is None else self._mean_p
        # The moving averages over this call's frames in closed form (one matrix product, no loop):
        # m_i = (1 - alpha)^(i+1) m_prev + sum_k<=i alpha (1 - alpha)^(i-k) x_k.
        w, keep = self._weights(n)
        q_aligned = q * np.where((q * prev_q).sum(-1, keepdims=True) < 0.0, -1.0, 1.0)
        if self.amplitude == 1.0 and target == 1.0 and not self._lagging:  # at rest: only the means carried on
            self._commit_means(keep[-1] * prev_q + np.tensordot(w[-1], q_aligned, axes=1),
                               keep[-1] * prev_p + w[-1] @ p)
            self._last_out = self._last_in = q[-1]
            return frames
        mean_q = keep[:, None, None] * prev_q + np.einsum("ik,kjc->ijc", w, q_aligned)
        norm = np.linalg.norm(mean_q, axis=-1, keepdims=True)
        if not (np.isfinite(norm).all() and norm.min() > 1e-6):  # degenerate input (e.g. zero quaternions)
            return frames
        mean_q /= norm
        mean_p = keep[:, None] * prev_p + w @ p
        amp = target + (self.amplitude - target) * (1.0 - self._beta) ** np.arange(1, n + 1)  # the glide, same form
        amp[np.abs(amp - target) < 1e-4] = target
        self._commit_means(mean_q[-1], mean_p[-1])
        self.amplitude = float(amp[-1])
        if np.all(amp == 1.0) and not self._lagging:
            self._last_out = self._last_in = q[-1]
            return frames
        from livedance.motion.rotations import quat_slerp_np

        cos_half = np.abs((mean_q * q).sum(-1))  # (n, J) cos(theta / 2), both unit
        b = 1.0 + (amp[:, None] - 1.0) * np.clip(cos_half, 0.0, 1.0) ** 2
        b[:, 0] = 1.0  # the pelvis's rotation (the dancer's facing) stays as generated
        out = q.copy() if np.all(amp == 1.0) else quat_slerp_np(mean_q, q, b)  # (amp 1: a lag still to close)
        out = self._calm(out, amp, q)
        out_q = out.astype(np.float32)
        out_q[:, 0] = frames.local_quats[:, 0]
        return replace(frames, local_quats=out_q,
                       root_translation=(mean_p + amp[:, None] * (p - mean_p)).astype(np.float32))

    def _calm(self, out: np.ndarray, amp: np.ndarray, q: np.ndarray) -> np.ndarray:
        """The calming smoother below a fader of 0.5: y_t = slerp(y_{t-1}, x_t, s_t) per joint (see the module
        docstring), each joint's step y_{t-1} -> y_t at most max(its generated step q_{t-1} -> q_t, ``CATCH_UP_RAD``), so
        a lag built up at a low fader closes without a pop when the fader comes back up, however fast it glides.

        Args:
            out: (n, J, 4) float64 unit quaternions, the scaled frames x_t (the pelvis, joint 0, is put back by
                :meth:`apply`).
            amp: (n,) the amplitude a_t of each frame.
            q: (n, J, 4) float64, the generated frames q_t.
        Returns:
            (n, J, 4) float64: ``out`` itself while every s_t is 1 and nothing lags, else the smoothed frames.
        """
        s = self.cfg.calm_follow + (1.0 - self.cfg.calm_follow) * np.minimum(1.0, 2.0 * amp)  # amp >= 0: s in [cf, 1]
        if (np.all(s >= 1.0) and not self._lagging) or self._last_out is None:
            self._last_out, self._last_in = out[-1], q[-1]
            self._lagging = False
            return out
        from livedance.motion.rotations import quat_angle_np, quat_slerp_fast_np

        y, q_prev = self._last_out, self._last_in
        res = out.copy()
        for i in range(out.shape[0]):
            x = out[i]
            y_new = x if s[i] >= 1.0 else quat_slerp_fast_np(y, x, float(s[i]))
            step = quat_angle_np(y, y_new)  # (J,)
            allowed = np.maximum(quat_angle_np(q_prev, q[i]), self.CATCH_UP_RAD)
            over = step > allowed
            if over.any():
                w = np.where(over, allowed / np.maximum(step, 1e-12), 1.0)[:, None]
                y_new = np.where(over[:, None], quat_slerp_fast_np(y, y_new, w), y_new)
            y, q_prev = y_new, q[i]
            res[i] = y
        self._last_out, self._last_in = res[-1], q[-1]
        self._lagging = not np.array_equal(res[-1, 1:], out[-1, 1:])
        return res

    def _commit_means(self, mean_q: np.ndarray, mean_p: np.ndarray) -> None:
        """Carry the last frame's reference forward (normalised), unless it is degenerate."""
        norm = np.linalg.norm(mean_q, axis=-1, keepdims=True)
        if np.isfinite(norm).all() and norm.min() > 1e-6 and np.isfinite(mean_p).all():
            self._mean_q, self._mean_p = mean_q / norm, mean_p

    def _weights(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """((n, n) lower-triangular EMA weights alpha (1 - alpha)^(i-k), (n,) (1 - alpha)^(i+1)), cached per n."""
        if n not in self._w_cache:
            k = np.arange(n)
            w = np.where(k[:, None] >= k[None, :], self._alpha * (1.0 - self._alpha) ** (k[:, None] - k[None, :]), 0.0)
            self._w_cache[n] = (w, (1.0 - self._alpha) ** (k + 1))
        return self._w_cache[n]
