"""A kinetic-continuity loss on the generator's own draws (an option of ``livedance train generator``).

Why: the shipped generator's dances accelerate more than the dancers' (energy expenditure +0.47 reference standard
deviations on the test split) and stop 1.40 times a second against the dancers' 0.83, and that is where its FIDk
gap to the real dances is (docs/model.md, "Where the FIDk gap is"). Every code it samples is a plausible 160 ms of
dance; the cross-entropy never sees that successive codes change direction more often than a dancer does, because
it scores each code, not the motion they decode to.

What: per training window (B windows of N token slots),

1. the codes the model would dance are drawn where it predicts them, by straight-through Gumbel-softmax, exactly as
   for the alignment prior (:meth:`~livedance.model.generator.DanceGenerator.forward` with ``draw_temperature``,
   :func:`~livedance.model.align.straight_through_sample`);
2. the drawn window and the real one are decoded by the frozen tokenizer and forward kinematics to SMPL-24 joint
   positions (:func:`~livedance.model.align.smpl24_positions_torch`), from the first frame the decoder has its full
   context;
3. each joint's energy expenditure, the mean magnitude of its acceleration (the second difference of its
   position, m/s^2 at the representation's fps, per frame, without the kinetic features' +-2-frame window; in the
   spirit of the energy expenditure of Onuma et al. 2008 behind FIDk), is compared between the two in log scale:

       L_cont = mean over windows b and joints j of ( log(EE_gen[b, j] + eps) - log(EE_real[b, j] + eps) )^2

   so a drawn window may differ from the real one in what it dances but not in how busy it is. eps = 0.1 m/s^2.

The loss is ours; the straight-through decode is the alignment prior's (SoulNet, Li et al. ICCV 2025, Sec. 3.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from livedance.errors import ConfigError

__all__ = ["ContinuityConfig", "ContinuityLoss", "energy_expenditure"]

#: Floor added to each energy expenditure before the log, m/s^2 (a still joint's jitter).
EE_EPS = 0.1


@dataclass(frozen=True)
class ContinuityConfig:
    """Settings of :class:`ContinuityLoss`.

    Attributes:
        weight: the loss's weight beside the cross-entropy (0 = off).
        temperature: sampling temperature T of the straight-through draws (the shipped sampling uses 0.6).

    Raises:
        ConfigError: (on construction) a value out of range; the message names the field.
    """

    weight: float = 0.0
    temperature: float = 0.6

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ConfigError(f"ContinuityConfig.weight must be a finite number >= 0, got {self.weight}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"ContinuityConfig.temperature must be > 0, got {self.temperature}")


def energy_expenditure(positions: Tensor, fps: float) -> Tensor:
    """Mean acceleration magnitude of each joint.

    Args:
        positions: (B, T, J, 3) joint positions, metres, at ``fps`` frames per second (T >= 3).
        fps: frame rate, frames per second.
    Returns:
        (B, J) m/s^2, differentiable.
    Raises:
        ConfigError: fewer than 3 frames.
    """
    if positions.shape[1] < 3:
        raise ConfigError(f"energy_expenditure: {positions.shape[1]} frames; need 3 or more for an acceleration")
    acc = (positions[:, 2:] - 2.0 * positions[:, 1:-1] + positions[:, :-2]) * float(fps) ** 2
    return acc.norm(dim=-1).mean(dim=1)


class ContinuityLoss(nn.Module):
    """L_cont of the module docstring on drawn codes.

    Args:
        tokenizer: :class:`~livedance.model.tokenizer.Tokenizer` the codes belong to (frozen here: ``requires_grad``
            off, eval mode). rep: its :class:`~livedance.model.representation.Representation`.

    Gradients flow only to the drawn codes' one-hot vectors.
    """

    def __init__(self, tokenizer, rep) -> None:
        super().__init__()
        self.tokenizer, self.rep = tokenizer.eval(), rep
        for p in tokenizer.parameters():
            p.requires_grad_(False)

    def positions(self, onehot: dict[str, Tensor]) -> Tensor:
        """(B, T', 24, 3) metres: the decoded SMPL-24 joints of one-hot codes (part -> (B, N, V, C) float), from the
        first frame with the decoder's full context (T' = stride * N - stride * decoder_context_tokens frames)."""
        from livedance.model.align import smpl24_positions_torch

        x = self.tokenizer.decode_latents(self.tokenizer.dequantize_onehot(onehot))
        lo = self.tokenizer.decoder_context_tokens * self.tokenizer.stride
        return smpl24_positions_torch(self.rep, x)[:, lo:]

    def forward(self, drawn: dict[str, Tensor], real: dict[str, Tensor]) -> dict[str, Tensor]:
        """L_cont of the drawn window against the real one.

        Args:
            drawn: part -> (B, N, V, C) float one-hot codes with straight-through gradients (the model's draws).
            real: part -> (B, N, V, C) float one-hot codes of the real dance (no gradient needed).
        Returns:
            ``{"loss": scalar, "ee_ratio": mean over windows and joints of (EE_gen + eps) / (EE_real + eps)
            (detached)}``.
        Raises:
            ConfigError: windows too short to leave 3 frames after the decoder's context.
        """
        fps = float(self.rep.config.fps)
        ee_gen = energy_expenditure(self.positions(drawn), fps)
        with torch.no_grad():
            ee_real = energy_expenditure(self.positions(real), fps)
        d = torch.log(ee_gen + EE_EPS) - torch.log(ee_real + EE_EPS)
        return {"loss": (d ** 2).mean(), "ee_ratio": ((ee_gen + EE_EPS) / (ee_real + EE_EPS)).mean().detach()}
