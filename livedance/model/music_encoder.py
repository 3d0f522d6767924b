"""Music encoder: a short causal window of streaming audio features + the beat condition -> one vector per token slot.

Inputs per token slot (see :mod:`livedance.model.conditioning`): the last W feature frames (43.07 fps,
:class:`livedance.features.FeatureConfig` layout: log-mel, onset, band onsets, rhythm phase and its
magnitude) with time <= slot time - lag, and the slot's beat condition (sin/cos beat phase at the
slot's 4 frames, log tempo, confidence: :func:`~livedance.model.conditioning.slot_condition`).

    e_w = GELU(Linear((f_w - mu) / sigma)) + pos_w           w = 1..W   (mu, sigma: train-split statistics)
    q   = Linear(cond) + q0
    m   = LayerNorm(q + TGCA(q, e))                          (gated attention, :mod:`livedance.model.attention`)

The query carries where the slot sits in the beat, so the attention pools the audio frames that matter
for that phase (Danceba's rhythm-aware feature, made causal). The result is "pooled to the token rate":
one vector per 160 ms slot.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from livedance.model.attention import GatedCausalAttention

__all__ = ["MusicEncoder", "Z_MAX"]

#: Normalised music features are clamped to +-Z_MAX standard deviations (:meth:`MusicEncoder.forward`).
Z_MAX = 100.0


class MusicEncoder(nn.Module):
    """See the module docstring.

    Args:
        feat_dim: audio feature width (180 with ``FeatureConfig()``).
        cond_dim: beat condition width (10, :data:`~livedance.model.conditioning.COND_DIM`).
        d_model: output width.
        window: W, feature frames per slot.
        n_heads: attention heads.

    Buffers ``feat_mean``/``feat_std`` (feat_dim,) hold the normalisation (set by :meth:`set_stats`).
    """

    def __init__(self, feat_dim: int = 180, cond_dim: int = 10, d_model: int = 128, window: int = 8, n_heads: int = 4):
        super().__init__()
        self.register_buffer("feat_mean", torch.zeros(feat_dim))
        self.register_buffer("feat_std", torch.ones(feat_dim))
        self.frame = nn.Linear(feat_dim, d_model)
        self.pos = nn.Parameter(torch.zeros(window, d_model))
        self.query = nn.Linear(cond_dim, d_model)
        self.q0 = nn.Parameter(torch.zeros(d_model))
        self.attn = GatedCausalAttention(d_model, n_heads)
        self.norm = nn.LayerNorm(d_model)
        nn.init.normal_(self.pos, std=0.02)

    @torch.no_grad()
    def set_stats(self, mean: Tensor, std: Tensor) -> None:
        """Store per-dimension feature mean / std (std floored at 1e-3)."""
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp_min(1e-3))

    def forward(self, window: Tensor, cond: Tensor) -> Tensor:
        """Encode slots.

        Args:
            window: (..., W, feat_dim) float32 raw feature frames, oldest first.
            cond: (..., cond_dim) float32 beat condition; same leading shape.

        Returns:
            (..., d_model) float32.

        The normalised features are clamped to +-:data:`Z_MAX` standard deviations: real music stays within
        about 30 (the Tang songs, the bundled excerpt), and a finite but absurd input (1e30) would otherwise
        overflow the attention into NaN logits, which sample code 0 without any non-finite output to detect.
        """
        z = ((window - self.feat_mean) / self.feat_std).clamp(-Z_MAX, Z_MAX)
        e = F.gelu(self.frame(z)) + self.pos
        q = (self.query(cond) + self.q0).unsqueeze(-2)  # (..., 1, d)
        return self.norm(q + self.attn(q, e)).squeeze(-2)
