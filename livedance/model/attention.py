"""Gated causal attention (TGCA) for the generator.

Danceba (Fan et al., "Align Your Rhythm: Generating Highly Aligned Dance Poses with Gating-Enhanced
Rhythm-Aware Feature Representation", arXiv 2503.17340, Sec. 3.3 "Temporal-Gated Causal Attention")
multiplies the output of causal multi-head attention by a SiLU gate computed from the query stream::

    y = Attention(Q = x W_q, K = m W_k, V = m W_v; causal mask) W_o  *  SiLU(x W_g)

Here the mask is optional (``allowed``) and every current caller leaves it out, so the attention is
bidirectional over the keys it is given: the generator's chunk head (:mod:`livedance.model.generator`'s
``_ChunkBlock``) lets the slots of one chunk see each other, and the music encoder's single query
(:mod:`livedance.model.music_encoder`) sees every frame of its window. Any causality in time comes from
what the callers feed in, not from this layer; "causal" in the name is Danceba's.

The attention is written out with plain matmuls and a masked fill (-1e9) so that it exports to ONNX with
fixed shapes (no fused SDPA kernel whose export differs between torch versions).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from livedance.errors import ConfigError

__all__ = ["GatedCausalAttention"]


class GatedCausalAttention(nn.Module):
    """Multi-head attention whose output is gated by ``SiLU(Linear(query input))`` (TGCA).

    Args:
        d_model: width of the query stream and of the output.
        n_heads: attention heads (``d_model`` must be divisible by it).
        d_kv: width of the key/value stream (default ``d_model``).

    Raises:
        ConfigError: when ``d_model`` is not divisible by ``n_heads``.
    """

    def __init__(self, d_model: int, n_heads: int = 4, d_kv: int | None = None) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"GatedCausalAttention: d_model={d_model} is not divisible by n_heads={n_heads}")
        d_kv = d_kv or d_model
        self.h, self.dh = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_kv, 2 * d_model)
        self.o = nn.Linear(d_model, d_model)
        self.gate = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, mem: Tensor, allowed: Tensor | None = None) -> Tensor:
        """Attend from ``x`` to ``mem``.

        Args:
            x: (..., Lq, d_model) queries (and gate input).
            mem: (..., Lk, d_kv) keys/values; same leading shape as ``x``.
            allowed: optional (Lq, Lk) bool, True where query i may see key j (a causal mask: only the
                past and present); None lets every query see every key.

        Returns:
            (..., Lq, d_model) float, ``Attn(x, mem) * SiLU(gate(x))``.
        """
        lead = x.shape[:-2]
        Lq, Lk = x.shape[-2], mem.shape[-2]
        q = self.q(x).reshape(*lead, Lq, self.h, self.dh).transpose(-2, -3)  # (..., h, Lq, dh)
        k, v = self.kv(mem).chunk(2, dim=-1)
        k = k.reshape(*lead, Lk, self.h, self.dh).transpose(-2, -3)
        v = v.reshape(*lead, Lk, self.h, self.dh).transpose(-2, -3)
        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh)
        if allowed is not None:
            att = att.masked_fill(~allowed, -1e9)
        y = torch.matmul(F.softmax(att, dim=-1), v).transpose(-2, -3).reshape(*lead, Lq, self.h * self.dh)
        return self.o(y) * F.silu(self.gate(x))
