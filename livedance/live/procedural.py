"""ProceduralGenerator: a beat-synced procedural dancer (fallback, safe pose, test generator).

It implements :class:`livedance.engine.base.MotionGenerator` without any weights: a knee bounce, a hip
sway and a twist, arm swings, a torso pump and a head nod, all locked to the beat. It is what
``livedance perform --procedural`` runs, what the live loop falls back to when no model weights load
or the model fails, and its idle pose is the loop's safe pose.

Beat lock. Let theta be a continuous beat counter (beats). Every motion component is a function of
theta whose velocity is zero at integer theta (on the beats):

* down-beat shape   d(theta) = (1 + cos(2 pi theta)) / 2   (1 on each beat: knees bent, head down)
* alternating shape s(theta) = cos(pi theta)                (+-1 on alternate beats: sway, arm swing)

so the mean joint speed has its local minima on the beats: the motion beats that the AIST++ beat
alignment score (BAS) looks for land on the music's beats. theta advances by bpm / 60 / fps per
frame and is pulled towards the phase the live loop asks for (``MusicContext.beat_phase`` at the first
frame, extrapolated at ``bpm`` over the step) by a first-order phase-locked loop,
``theta += gain * wrap(phi_target - theta)`` with wrap into [-0.5, 0.5) beats, so a tempo or phase
correction of the beat tracker bends the motion instead of making it jump (gain 1, a snap, while the
dancer is idle, so that it starts on the beat).

Dance amount. The dance is scaled by w in [0, 1]: its target is a smoothstep of the tracker confidence
between ``conf_low`` and ``conf_high`` (0 in silence), and w moves towards it at most ``1 / fade_s`` per
second; ``MusicContext.energy`` (the VJ fader, 0..2) scales the amplitudes. At w = 0 the dancer
stands with relaxed arms and breathes (0.25 Hz chest and shoulder motion, a few millimetres).

Joint angles are Euler angles, intrinsic XYZ (R = Rx Ry Rz), turned into quaternions (x, y, z, w)
with ``scipy.spatial.transform.Rotation``; SMPL-X rest frame (y up, faces +z, left at +x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from livedance.engine.base import MotionFrames, MusicContext
from livedance.errors import ConfigError
from livedance.live.rest import default_rest_offsets
from livedance.motion.skeleton import SMPLX_JOINT_NAMES

_J = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
_DEG = math.pi / 180.0
#: Sum of the default skeleton's thigh and shin lengths, metres (pelvis drop of a knee bend).
_LEG_M = 0.78


@dataclass(frozen=True)
class DanceStyle:
    """Weights of the motion components of one procedural style (1.0 = the default amplitude).

    Attributes:
        name: the style's name (``/livedance/style s`` selects it by name, ``i`` by index).
        bounce: knee bounce, torso pump and head nod.
        sway: hip sway, roll and twist.
        arms: arm swings and elbow pumps.
    """

    name: str
    bounce: float
    sway: float
    arms: float


#: The built-in styles, in index order.
STYLES: tuple[DanceStyle, ...] = (
    DanceStyle("groove", 1.0, 1.0, 1.0),
    DanceStyle("bounce", 1.5, 0.4, 0.6),
    DanceStyle("wave", 0.6, 1.4, 1.7),
)


@dataclass
class ProceduralConfig:
    """Settings of :class:`ProceduralGenerator`.

    Attributes:
        fps: output frame rate, frames per second.
        frames_per_step: frames produced per :meth:`ProceduralGenerator.step`.
        knee_deg: knee bend on the beat at full amplitude, degrees.
        sway_m: hip sway amplitude, metres.
        arm_swing_deg: shoulder swing amplitude, degrees.
        arm_down_deg: how far the arms hang down from the T-pose, degrees.
        pll_gain: fraction of the phase error corrected per frame (0..1).
        conf_low, conf_high: tracker confidence at which the dance starts to fade in / is at full size.
        fade_s: seconds for the dance amount to go from 0 to 1 (and back).
        breath_hz: idle breathing rate, Hz.
    """

    fps: float = 60.0
    frames_per_step: int = 3
    knee_deg: float = 13.0
    sway_m: float = 0.02
    arm_swing_deg: float = 24.0
    arm_down_deg: float = 72.0
    pll_gain: float = 0.15
    conf_low: float = 0.08
    conf_high: float = 0.2
    fade_s: float = 0.4
    breath_hz: float = 0.25

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"ProceduralConfig.fps must be a positive frame rate, got {self.fps}")
        if int(self.frames_per_step) < 1:
            raise ConfigError(f"ProceduralConfig.frames_per_step must be >= 1, got {self.frames_per_step}")
        if not 0.0 < self.pll_gain <= 1.0:
            raise ConfigError(f"ProceduralConfig.pll_gain must be in (0, 1], got {self.pll_gain}")
        if not 0.0 <= self.conf_low < self.conf_high <= 1.0:
            raise ConfigError(
                f"ProceduralConfig needs 0 <= conf_low < conf_high <= 1, got {self.conf_low}, {self.conf_high}"
            )
        if self.fade_s <= 0:
            raise ConfigError(f"ProceduralConfig.fade_s must be > 0 seconds, got {self.fade_s}")


def _wrap(x: float) -> float:
    """Wrap a phase difference (beats) into [-0.5, 0.5)."""
    return (x + 0.5) % 1.0 - 0.5


def _smoothstep(x: float, lo: float, hi: float) -> float:
    u = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


class ProceduralGenerator:
    """A beat-synced procedural dancer; see the module docstring. Implements ``MotionGenerator``.

    Args:
        config: :class:`ProceduralConfig` (default 60 fps, 3 frames per step).
        rest_offsets: (55, 3) metres, the skeleton (default :func:`default_rest_offsets`); only the
            pelvis rest height (row 0) is used, for the root position.

    Raises:
        ConfigError: invalid config or rest offsets.

    State (explicit, reset by :meth:`reset`): the beat counter theta, the dance amount w, the
    number of frames produced and the style.
    """

    def __init__(self, config: ProceduralConfig | None = None, rest_offsets: np.ndarray | None = None) -> None:
        self.config = config or ProceduralConfig()
        self.config.validate()
        rest = default_rest_offsets() if rest_offsets is None else np.asarray(rest_offsets, np.float32)
        if rest.shape != (len(SMPLX_JOINT_NAMES), 3) or not np.all(np.isfinite(rest)):
            raise ConfigError(f"ProceduralGenerator rest_offsets must be finite (55, 3) metres, got {rest.shape}")
        self.rest_offsets = rest
        self.fps = float(self.config.fps)
        self.frames_per_step = int(self.config.frames_per_step)
        self.styles = tuple(s.name for s in STYLES)
        self._style = STYLES[0]
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, seed: int = 0) -> None:
        """Forget the beat counter and the dance amount (back to idle). ``seed`` is unused (deterministic)."""
        self._theta: float | None = None
        self._w = 0.0
        self._bpm = 0.0

    @property
    def style(self) -> str:
        """Name of the current style."""
        return self._style.name

    @property
    def dance_amount(self) -> float:
        """Current dance amount w in [0, 1] (0 = idle)."""
        return self._w

    def set_style(self, style: str | int) -> None:
        """Select a style by name (``"groove"``, ``"bounce"``, ``"wave"``) or index.

        Raises:
            ConfigError: unknown name or index out of range.
        """
        if isinstance(style, (int, np.integer)) and not isinstance(style, bool):
            if not 0 <= int(style) < len(STYLES):
                raise ConfigError(f"procedural style index {style} is out of range 0..{len(STYLES) - 1}")
            self._style = STYLES[int(style)]
            return
        for s in STYLES:
            if s.name == str(style).strip().lower():
                self._style = s
                return
        raise ConfigError(f"unknown procedural style {style!r}; expected one of {', '.join(self.styles)}")

    # ------------------------------------------------------------------ stepping
    def step(self, music: MusicContext) -> MotionFrames:
        """Produce the next ``frames_per_step`` frames from ``music.t_first_frame_s`` on.

        Args:
            music: the live loop's :class:`MusicContext` (features are not used; bpm, beat_phase,
                confidence and energy are).

        Returns:
            :class:`MotionFrames` with local_quats (N, 55, 4) float32 (x, y, z, w), root_translation
            (N, 3) float32 metres (pelvis world position), fps = ``config.fps``, t0_s =
            ``music.t_first_frame_s``; N = ``frames_per_step``.
        """
        c = self.config
        n = self.frames_per_step
        dt = 1.0 / self.fps
        bpm = float(music.bpm) if math.isfinite(music.bpm) and music.bpm > 0 else 0.0
        conf = float(music.confidence) if math.isfinite(music.confidence) else 0.0
        phase0 = float(music.beat_phase) if math.isfinite(music.beat_phase) else 0.0
        energy = min(max(float(music.energy) if math.isfinite(music.energy) else 1.0, 0.0), 2.0)
        target_w = _smoothstep(conf, c.conf_low, c.conf_high) if bpm > 0 else 0.0
        if bpm > 0:
            self._bpm = bpm
        rate = self._bpm / 60.0  # beats per second (keeps the last tempo while fading out)
        thetas = np.empty(n)
        ws = np.empty(n)
        max_dw = dt / c.fade_s
        for k in range(n):
            target_phase = phase0 + k * dt * rate
            if self._theta is None:
                self._theta = target_phase
            else:
                self._theta += dt * rate
                if bpm > 0:
                    # While (nearly) idle the phase snaps to the grid; while dancing it is pulled.
                    gain = 1.0 if self._w < 0.05 else c.pll_gain
                    self._theta += gain * _wrap(target_phase - self._theta)
            self._w += min(max(target_w - self._w, -max_dw), max_dw)
            thetas[k] = self._theta
            ws[k] = self._w
        times = music.t_first_frame_s + dt * np.arange(n)
        quats, root = self.pose(thetas, ws * energy, times)
        return MotionFrames(quats, root, self.fps, float(music.t_first_frame_s))

    def safe_pose(self, t_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The idle (breathing) pose at stream time ``t_s`` seconds: ((55, 4) float32 quats, (3,) float32 root m)."""
        q, r = self.pose(np.zeros(1), np.zeros(1), np.array([float(t_s)]))
        return q[0], r[0]

    def pose(self, theta: np.ndarray, amount: np.ndarray, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pose for beat counters ``theta`` (N,) beats, dance amounts (N,) (w x energy) and times (N,) s.

        Returns:
            ((N, 55, 4) float32 local quaternions x, y, z, w; (N, 3) float32 pelvis position, metres).
        """
        c, st = self.config, self._style
        theta = np.asarray(theta, np.float64)
        a = np.asarray(amount, np.float64)
        t = np.asarray(times_s, np.float64)
        n = theta.shape[0]
        d = 0.5 * (1.0 + np.cos(2.0 * np.pi * theta))  # 1 on the beats
        s = np.cos(np.pi * theta)  # +-1 on alternate beats
        breath = np.sin(2.0 * np.pi * c.breath_hz * t)
        ab, asw, aa = a * st.bounce, a * st.sway, a * st.arms

        eul = np.zeros((n, len(SMPLX_JOINT_NAMES), 3))  # intrinsic XYZ, radians
        knee = ab * c.knee_deg * _DEG * d
        for side in ("left", "right"):
            eul[:, _J[f"{side}_hip"], 0] = -knee
            eul[:, _J[f"{side}_knee"], 0] = 2.0 * knee
            eul[:, _J[f"{side}_ankle"], 0] = -knee
        eul[:, _J["pelvis"], 1] = asw * 6.0 * _DEG * s
        eul[:, _J["pelvis"], 2] = asw * 4.0 * _DEG * s
        eul[:, _J["spine1"], 2] = -asw * 3.0 * _DEG * s
        eul[:, _J["spine2"], 0] = ab * 5.0 * _DEG * d
        eul[:, _J["spine3"], 0] = 1.5 * _DEG * breath
        eul[:, _J["spine3"], 1] = -asw * 4.0 * _DEG * s
        eul[:, _J["spine3"], 2] = -asw * 2.0 * _DEG * s
        eul[:, _J["neck"], 0] = ab * 8.0 * _DEG * d
        eul[:, _J["head"], 0] = ab * 4.0 * _DEG * d
        down = c.arm_down_deg * _DEG
        swing = aa * c.arm_swing_deg * _DEG * s
        elbow = (12.0 + 30.0 * aa * d) * _DEG
        lift = 1.5 * _DEG * breath
        eul[:, _J["left_shoulder"], 0] = -swing
        eul[:, _J["left_shoulder"], 2] = -down + lift
        eul[:, _J["right_shoulder"], 0] = swing
        eul[:, _J["right_shoulder"], 2] = down - lift
        eul[:, _J["left_elbow"], 1] = -elbow
        eul[:, _J["right_elbow"], 1] = elbow

        quats = Rotation.from_euler("XYZ", eul.reshape(-1, 3)).as_quat().reshape(n, -1, 4)
        # The hips cancel the pelvis' twist and roll, so the legs stay under the body (no foot skate).
        pelvis_inv = Rotation.from_quat(quats[:, _J["pelvis"]]).inv()
        for side in ("left", "right"):
            j = _J[f"{side}_hip"]
            quats[:, j] = (pelvis_inv * Rotation.from_quat(quats[:, j])).as_quat()
        root = np.zeros((n, 3))
        root[:, 0] = asw * c.sway_m * s
        root[:, 1] = float(self.rest_offsets[0, 1]) - _LEG_M * (1.0 - np.cos(knee)) + 0.003 * breath
        root[:, 2] = float(self.rest_offsets[0, 2])
        return quats.astype(np.float32), root.astype(np.float32)
