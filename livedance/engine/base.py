"""The one step interface between the live loop and any dance generator.

The live loop (:mod:`livedance.live`) owns time; a generator owns motion. Each call to
:meth:`MotionGenerator.step` hands the generator the music heard since the last call (streaming
feature frames, on the stream clock) and the beat grid predicted for the frames it is about to
produce, and gets back the next ``frames_per_step`` motion frames at ``fps``. Generators keep their
recurrent state inside (explicit, resettable); engines (torch eager, ONNX Runtime, TensorRT) wrap
the same step graph behind this interface.

Causality (DESIGN.md): ``music.features`` only ever covers audio up to the moment of the call minus
the pipeline's own lag; what is known about the future comes only through ``bpm``/``beat_phase``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class MusicContext:
    """What the live loop knows about the music when it asks for the next motion frames.

    Attributes:
        features: (F, D) float32 streaming feature frames (:mod:`livedance.features`) that became
            available since the previous step; F may be 0.
        times_s: (F,) float64 stream-clock time (seconds, sample 0 = 0.0) of each feature frame.
        bpm: current tempo estimate, beats per minute (0.0 when unknown / silence).
        beat_phase: predicted beat phase in [0, 1) at the time of the first frame to be produced.
        confidence: beat tracker confidence in [0, 1]; 0 means no rhythm (silence).
        t_first_frame_s: stream-clock time (seconds) at which the first produced frame is due.
        energy: live control in [0, 2], 1.0 = as trained (VJ "energy" fader).
    """

    features: np.ndarray
    times_s: np.ndarray
    bpm: float
    beat_phase: float
    confidence: float
    t_first_frame_s: float
    energy: float = 1.0


@dataclass
class MotionFrames:
    """A run of consecutive motion frames on the SMPL-X skeleton.

    Attributes:
        local_quats: (N, 55, 4) float32 local (parent-relative) joint rotations, quaternions x, y, z, w,
            relative to the SMPL-X rest pose (DESIGN.md conventions: y up, right-handed, faces +z).
        root_translation: (N, 3) float32 pelvis position in metres.
        fps: frame rate of these frames (frames per second).
        t0_s: stream-clock time (seconds) of frame 0.
        n_bad: number of frames in which the generator produced NaN/inf and a safe pose was used.
    """

    local_quats: np.ndarray
    root_translation: np.ndarray
    fps: float
    t0_s: float
    n_bad: int = 0

    def __len__(self) -> int:
        return int(self.local_quats.shape[0])


@runtime_checkable
class MotionGenerator(Protocol):
    """Anything that dances: the learned model's engines and the procedural fallback."""

    fps: float
    frames_per_step: int

    def reset(self, seed: int = 0) -> None:
        """Forget all state (new song / new show)."""

    def step(self, music: MusicContext) -> MotionFrames:
        """Produce the next ``frames_per_step`` frames, starting at ``music.t_first_frame_s``."""


def apply_pace(gen: object, pace_m_s: float | None) -> None:
    """Set a generator's pace, where it has a pace input (the optional ``set_pace`` of the
    :class:`MotionGenerator` protocol: :meth:`~livedance.engine.learned.LearnedGenerator.set_pace`, for a model
    trained with ``livedance train generator --pace``). Used by ``livedance perform --pace`` at start-up and by the
    live loop for ``/livedance/pace``.

    Args:
        gen: the generator. pace_m_s: limb speed about the pelvis, m/s (:mod:`livedance.model.pace`); None: the
            model's own draw.
    Raises:
        ConfigError: the generator has no pace input, or refuses the value (its own message names the range).
    """
    from livedance.errors import ConfigError

    setter = getattr(gen, "set_pace", None)
    if setter is None:
        raise ConfigError("the generator has no pace input")
    setter(pace_m_s)


def apply_style(gen: object, style: str | int | None, strength: float | None = None) -> None:
    """Set a generator's dance style and / or its strength, where the generator has them.

    The optional part of the :class:`MotionGenerator` protocol: ``set_style(style)`` (the procedural dancer's
    ``groove`` / ``bounce`` / ``wave``) or ``set_style(style, strength)`` with a ``style_strength`` attribute (the
    learned dancer's training styles, :meth:`~livedance.engine.learned.LearnedGenerator.set_style`). A strength
    alone keeps the current style. Used by ``livedance perform --style / --style-strength`` at start-up and by the
    live loop for ``/livedance/style`` and ``/livedance/style/strength``.

    Args:
        gen: the generator.
        style: a style name or index, or None (keep the current one); the learned dancer also takes ``"none"``
            (clear it), the procedural dancer only its own names.
        strength: the style's strength lambda (None: leave it as it is). Both None: nothing changes.
    Raises:
        ConfigError: the generator has no styles, or no strength while one is given, or refuses the style or the
            strength (its own message, which names the styles it has or the strength's range).
    """
    from livedance.errors import ConfigError

    if style is None and strength is None:
        return
    setter = getattr(gen, "set_style", None)
    if setter is None:
        raise ConfigError("the generator has no styles")
    if strength is None:
        setter(style)
    elif not hasattr(gen, "style_strength"):
        raise ConfigError("the generator has no style strength (the learned dancer has)")
    else:
        setter(getattr(gen, "style", None) if style is None else style, strength)
