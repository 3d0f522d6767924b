"""The causal dance generator: music encoder + parallel part Mamba branches + chunked mask-predict + residual head.

Adapted, made causal and small, from Danceba (Fan et al., arXiv 2503.17340: phase-based rhythm features,
Temporal-Gated Causal Attention "TGCA", Parallel Mamba Motion Modeling "PMMM") and SoulNet's
part-chained residual tokens (HRVQ, :mod:`livedance.model.tokenizer`).

Tokens: per part p in (lower, upper) and slot n (4 frames, 160 ms at 25 fps) the tokenizer gives V = 4
residual codes ``c[n, p, 0..V-1]`` (codebook size C = 512).

* music: ``m_n = MusicEncoder(window_n, cond_n)`` (:mod:`livedance.model.music_encoder`): audio up to
  ``t_n - lag`` and the causal beat tracker's phase/tempo predicted for the slot's frames.
* backbone (PMMM): per part a stack of Mamba blocks (:class:`livedance.model.mamba.Mamba`); after every
  layer each branch adds a linear map of the other branches' outputs (the branches exchange information
  at every token). Input of committed token j to branch p:
  ``x_{j,p} = m_j + E_p(c_{j,p}) + X_p(E_{other}(c_{j,other}))`` with ``E_p(c) = sum_v Emb_p(v, c_v)``.
  The sequence starts with a learned BOS per branch; ``H_n`` = output after tokens < n (state advanced
  over committed tokens only).
* chunk head (mask-predict): the next K slots n..n+K-1, all parts (P = K * parts positions), are
  predicted from ``H_n``, the music of the chunk start (``window_n``, the newest audio the live loop has)
  with each slot's own beat condition, a slot and a part embedding, and the base code embedding or a
  [MASK] embedding. ``chunk_layers`` blocks of bidirectional TGCA self-attention over the P positions
  + MLP; logits over the C base codes; N MaskGIT iterations (:mod:`livedance.model.maskpredict`).
* residual head: level v >= 1 of part p from ``H_n``, the slot's music, the codes of levels < v of the
  same part, and (part chaining, as in HRVQ) all levels of the previous part.

Training (teacher forcing, :meth:`DanceGenerator.forward`): chunk starts every K slots (random offset) of a window of N tokens;
MaskGIT cross-entropy on the masked base codes + cross-entropy of the residual levels.
Inference (:meth:`DanceGenerator.step`): a pure function of tensors (states in, states out) that the
engines (:mod:`livedance.engine`) export to ONNX.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from livedance.errors import ConfigError
from livedance.model.attention import GatedCausalAttention
from livedance.model.conditioning import COND_DIM
from livedance.model.mamba import Mamba
from livedance.model.maskpredict import gumbel_sample, mask_predict, training_mask
from livedance.model.music_encoder import MusicEncoder

__all__ = ["GeneratorConfig", "DanceGenerator", "GENERATOR_FORMAT", "corrupt_codes"]

#: ``format`` field of the generator's weights JSON.
GENERATOR_FORMAT = "livedance.generator"


@dataclass(frozen=True)
class GeneratorConfig:
    """Hyper-parameters of :class:`DanceGenerator`.

    Attributes:
        parts: body parts in chaining order (the tokenizer's ``config.parts``).
        levels: V, residual levels per token (the tokenizer's).
        codebook_size: C, codes per level (the tokenizer's).
        d_model: width of every stream.
        n_layers: PMMM layers (one Mamba block per part each).
        d_state, d_conv, expand: Mamba block sizes (mamba_ssm's meaning).
        chunk: K, token slots predicted per step (K * 4 frames).
        mask_iters: N, mask-predict iterations per chunk.
        chunk_layers: TGCA self-attention blocks of the chunk head.
        n_heads: attention heads.
        window: W, audio feature frames per slot (43.07 fps; 8 = 186 ms).
        feat_dim: audio feature width (``FeatureConfig().feature_dim`` = 180).
        cond_dim: slot condition width (10: the beat condition; 11 with ``pace``).
        lag_s: audio lag, seconds: slot n sees audio up to ``t_n - lag_s`` (t_n: time of its first frame).
        fps: motion frame rate (25).
        stride: frames per token (4).
        temperature: sampling temperature at inference (base level; also the residual levels unless
            ``residual_temperature`` is set).
        residual_temperature: sampling temperature of residual levels 1..V-1 at inference (None: the same
            as ``temperature``; 0: argmax). The graph samples argmax(log p / temperature + g) with Gumbel
            noise g supplied from outside, so the engine realises it by scaling g by
            residual_temperature / temperature (:class:`~livedance.engine.learned.LearnedGenerator`).
            Residual codes refine the pose (SoulNet's levels); sampling them adds frame-to-frame jitter
            that the base level's choice of movement does not need (docs/model.md, "Sampling").
        top_k: at inference, sample every level among its k most likely codes only (top-k sampling;
            0 = all codes). Baked into the exported graph, like ``temperature``.
        min_p: at inference, sample every level among the codes at least ``min_p`` times as likely as
            its most likely code at ``temperature`` (min-p sampling, Nguyen et al. 2024; 0 = off).
            Baked into the exported graph at ``temperature``: the residual temperature and the stall
            guard scale the Gumbel noise only, so for them the cut stays the base temperature's.
        dropout: training-time dropout probability (GPT-2 placement: on the token inputs and on every
            residual branch: the Mamba blocks, the chunk head's attention and MLP, the residual head's
            inputs), against memorising a small training set; identity in eval mode, so the step graph
            and the exported ONNX do not change. 0 (default) disables it.
        music_dropout: training-time share of chunks whose head music (the chunk head's and the residual
            head's per-slot music vectors) is replaced by a learned null vector ``null_music``, so the heads
            also learn the motion prior without the chunk's music (classifier-free guidance training, Ho &
            Salimans 2022; as in MoMask, Guo et al. CVPR 2024, Sec. 3.3). 0 (default): no null vector.
        pace: the dancer's pace as an input (:mod:`livedance.model.pace`): ``(mean, std)`` of the training dances'
            per-dance pace codes, from which the engine draws each performance's pace; the slot condition then has
            one more channel, the pace code (``cond_dim`` = 11). None (default): no pace input.
        guidance: classifier-free guidance scale w of the base level at inference: the chunk head runs with
            the music and with ``null_music`` (one batched call) and samples from
            ``log p_null + w (log p_music - log p_null)``. 1 (default) is plain conditional sampling (no
            extra call); w > 1 strengthens the music's pull. Needs a model trained with ``music_dropout`` > 0.
    """

    parts: tuple[str, ...] = ("lower", "upper")
    levels: int = 4
    codebook_size: int = 512
    d_model: int = 128
    n_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 1
    chunk: int = 2
    mask_iters: int = 3
    chunk_layers: int = 2
    n_heads: int = 4
    window: int = 8
    feat_dim: int = 180
    cond_dim: int = COND_DIM
    lag_s: float = 0.16
    fps: float = 25.0
    stride: int = 4
    temperature: float = 1.0
    residual_temperature: float | None = None
    top_k: int = 0
    min_p: float = 0.0
    dropout: float = 0.0
    music_dropout: float = 0.0
    guidance: float = 1.0
    pace: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))
        if self.pace is not None:
            pace = tuple(float(v) for v in self.pace)
            if len(pace) != 2 or not all(math.isfinite(v) for v in pace) or pace[1] < 0:
                raise ConfigError(f"GeneratorConfig: pace={self.pace}; expected (mean, std) of pace codes, finite, "
                                  "std >= 0, or None")
            object.__setattr__(self, "pace", pace)
            if self.cond_dim != COND_DIM + 1:
                raise ConfigError(f"GeneratorConfig: pace needs cond_dim {COND_DIM + 1} (the beat condition and the "
                                  f"pace code), got {self.cond_dim}")
        if len(self.parts) < 1 or self.levels < 1 or self.codebook_size < 2 or self.chunk < 1 or self.mask_iters < 1:
            raise ConfigError(
                f"GeneratorConfig: parts={self.parts}, levels={self.levels}, codebook_size={self.codebook_size}, "
                f"chunk={self.chunk}, mask_iters={self.mask_iters}; expected >= 1 part, levels >= 1, "
                "codebook_size >= 2, chunk >= 1, mask_iters >= 1"
            )
        if self.lag_s < 0 or not (math.isfinite(self.temperature) and self.temperature > 0) or self.window < 1:
            raise ConfigError(
                f"GeneratorConfig: lag_s={self.lag_s}, temperature={self.temperature}, window={self.window}; "
                "expected lag_s >= 0, a finite temperature > 0, window >= 1"
            )
        if int(self.top_k) != self.top_k or self.top_k < 0:
            raise ConfigError(f"GeneratorConfig: top_k={self.top_k}; expected an integer >= 0 (0: sample all codes)")
        object.__setattr__(self, "top_k", int(self.top_k))
        if not (math.isfinite(self.min_p) and 0.0 <= self.min_p < 1.0):
            raise ConfigError(f"GeneratorConfig: min_p={self.min_p}; expected a fraction in [0, 1) (0: off)")
        object.__setattr__(self, "min_p", float(self.min_p))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"GeneratorConfig: dropout={self.dropout}; expected a probability in [0, 1)")
        if not 0.0 <= self.music_dropout < 1.0:
            raise ConfigError(f"GeneratorConfig: music_dropout={self.music_dropout}; expected a probability in [0, 1)")
        if not (math.isfinite(self.guidance) and self.guidance >= 0.0):
            raise ConfigError(f"GeneratorConfig: guidance={self.guidance}; expected a finite scale >= 0 (1: off)")
        if self.guidance != 1.0 and self.music_dropout <= 0.0:
            raise ConfigError(
                f"GeneratorConfig: guidance={self.guidance} needs a model trained with music_dropout > 0 (it has no "
                "null music vector); use guidance 1, or train with `livedance train generator --music-dropout 0.1`")
        rt = self.residual_temperature
        if rt is not None and not (math.isfinite(rt) and rt >= 0):
            raise ConfigError(f"GeneratorConfig: residual_temperature={rt}; expected a finite value >= 0, or None")

    @property
    def residual_noise_scale(self) -> float:
        """Factor on the residual levels' Gumbel noise that gives ``residual_temperature`` (1.0 when unset)."""
        if self.residual_temperature is None:
            return 1.0
        return float(self.residual_temperature) / float(self.temperature)

    @property
    def n_parts(self) -> int:
        """Number of parts."""
        return len(self.parts)

    @property
    def token_s(self) -> float:
        """Duration of one token slot, seconds (stride / fps = 0.16)."""
        return self.stride / self.fps

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        d = asdict(self)
        d["parts"] = list(self.parts)
        if self.pace is not None:
            d["pace"] = list(self.pace)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "GeneratorConfig":
        """Inverse of :meth:`to_dict` (unknown keys raise ConfigError)."""
        d = dict(d)
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(f"GeneratorConfig: unknown fields {extra}")
        if "parts" in d:
            d["parts"] = tuple(d["parts"])
        return cls(**d)


def corrupt_codes(codes: Tensor, max_rate: float, codebook_size: int) -> Tensor:
    """Replace a random share of (slot, part) tokens by uniformly random codes (T2M-GPT's corruption).

    Args:
        codes: (B, N, P, V) int64. max_rate: per window, the rate is drawn from U(0, max_rate), in [0, 1].
        codebook_size: C; replacement codes are uniform in [0, C).
    Returns:
        (B, N, P, V) int64, a new tensor (``codes`` is not modified).
    Raises:
        ConfigError: max_rate outside [0, 1].
    """
    if not 0.0 <= max_rate <= 1.0:
        raise ConfigError(f"token corruption rate {max_rate}: expected a value in [0, 1]")
    B, N, P, _ = codes.shape
    rate = torch.rand(B, 1, 1, device=codes.device) * max_rate
    hit = (torch.rand(B, N, P, device=codes.device) < rate).unsqueeze(-1)
    return torch.where(hit, torch.randint_like(codes, codebook_size), codes)


def hold_codes(codes: Tensor, rate: float, max_len: int = 12) -> Tensor:
    """Freeze a run of the committed history, as a sampler that holds a code does (session 23's diagnosis of the FIDg
    tails, docs/model.md): each window, with probability ``rate``, gets one run where slots s+1 .. s+L-1 repeat slot
    s's tokens (every part and level), L uniform in 2..``max_len``. Only the backbone's input is changed; the
    targets stay real, so the model learns to leave a hold rather than continue it.

    Args:
        codes: (B, N, P, V) int64. rate: in [0, 1]. max_len: the longest run, slots (>= 2).
    Returns:
        (B, N, P, V) int64, a new tensor.
    Raises:
        ConfigError: rate outside [0, 1] or max_len < 2.
    """
    if not 0.0 <= rate <= 1.0 or max_len < 2:
        raise ConfigError(f"hold augmentation: rate {rate}, max_len {max_len}; expected a rate in [0, 1], max_len >= 2")
    out = codes.clone()
    B, N = codes.shape[:2]
    for b in torch.nonzero(torch.rand(B) < rate).flatten().tolist():
        L = int(torch.randint(2, min(max_len, N) + 1, ()))
        s = int(torch.randint(0, N - L + 1, ()))
        out[b, s + 1:s + L] = out[b, s]
    return out


class _PMMMLayer(nn.Module):
    """One Parallel Mamba Motion Modeling layer: a pre-norm residual Mamba block per part + cross-part exchange."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        d, P = cfg.d_model, cfg.n_parts
        self.norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(P)])
        self.mamba = nn.ModuleList(
            [Mamba(d, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand) for _ in range(P)]
        )
        self.xnorm = nn.ModuleList([nn.LayerNorm(d) for _ in range(P)])
        self.cross = nn.ModuleList([nn.Linear(d * max(P - 1, 1), d) for _ in range(P)])
        self.drop = nn.Dropout(cfg.dropout)
        for c in self.cross:
            nn.init.normal_(c.weight, std=0.02 / max(P - 1, 1))
            nn.init.zeros_(c.bias)

    def _exchange(self, a: list[Tensor]) -> list[Tensor]:
        P = len(a)
        if P == 1:
            return a
        normed = [self.xnorm[i](a[i]) for i in range(P)]
        return [a[i] + self.drop(self.cross[i](torch.cat([normed[j] for j in range(P) if j != i], dim=-1)))
                for i in range(P)]

    def forward(self, h: list[Tensor]) -> list[Tensor]:
        """h: per part (B, L, d) -> per part (B, L, d)."""
        return self._exchange([h[i] + self.drop(self.mamba[i](self.norm[i](h[i]))) for i in range(len(h))])

    def step(self, h: list[Tensor], conv: list[Tensor], ssm: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """One token: h per part (B, d); conv/ssm per part Mamba states -> new (h, conv, ssm)."""
        a, nc, ns = [], [], []
        for i in range(len(h)):
            y, c, s = self.mamba[i].step(self.norm[i](h[i]), conv[i], ssm[i])
            a.append(h[i] + y)
            nc.append(c)
            ns.append(s)
        return self._exchange(a), nc, ns


class _ChunkBlock(nn.Module):
    """Pre-norm TGCA self-attention (bidirectional inside the chunk) + MLP."""

    def __init__(self, d: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.n1 = nn.LayerNorm(d)
        self.attn = GatedCausalAttention(d, heads)
        self.n2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, z: Tensor) -> Tensor:  # noqa: D102  (..., P, d) -> (..., P, d)
        y = self.n1(z)
        z = z + self.drop(self.attn(y, y))
        return z + self.drop(self.mlp(self.n2(z)))


class DanceGenerator(nn.Module):
    """See the module docstring. Shapes: B batch, N token slots, P parts, V levels, C codes, K chunk, W window.

    Args:
        config: :class:`GeneratorConfig`.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = cfg = config
        d, P, V, C, K = cfg.d_model, cfg.n_parts, cfg.levels, cfg.codebook_size, cfg.chunk
        self.music = MusicEncoder(cfg.feat_dim, cfg.cond_dim, d, cfg.window, cfg.n_heads)
        self.code_emb = nn.ModuleList([nn.Embedding(V * C, d) for _ in range(P)])
        for e in self.code_emb:
            nn.init.normal_(e.weight, std=0.02)
        self.other = nn.ModuleList([nn.Linear(d * max(P - 1, 1), d) for _ in range(P)])
        self.bos = nn.Parameter(torch.randn(P, d) * 0.02)
        self.layers = nn.ModuleList([_PMMMLayer(cfg) for _ in range(cfg.n_layers)])
        self.out_norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(P)])
        # chunk head
        self.ctx_proj = nn.ModuleList([nn.Linear(d, d) for _ in range(P)])
        self.slot_emb = nn.Parameter(torch.randn(K, d) * 0.02)
        self.part_emb = nn.Parameter(torch.randn(P, d) * 0.02)
        self.mask_emb = nn.Parameter(torch.randn(P, d) * 0.02)
        self.chunk_blocks = nn.ModuleList([_ChunkBlock(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.chunk_layers)])
        self.drop = nn.Dropout(cfg.dropout)  # on token inputs and the residual head's input (training only)
        if cfg.music_dropout > 0:  # classifier-free guidance: the heads' music when it is dropped
            self.null_music = nn.Parameter(torch.randn(d) * 0.02)
        self.base_norm = nn.LayerNorm(d)
        self.base_head = nn.ModuleList([nn.Linear(d, C) for _ in range(P)])
        # residual head
        self.res_in = nn.ModuleList([nn.Linear(d, d) for _ in range(P)])
        self.res_cross = nn.ModuleList([nn.Linear(d, d) for _ in range(max(P - 1, 0))])
        self.res_mlp = nn.ModuleList([
            nn.ModuleList([
                nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, C))
                for _ in range(V - 1)
            ])
            for _ in range(P)
        ])

    # ------------------------------------------------------------------ pieces
    def num_parameters(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def embed_codes(self, part: int, codes: Tensor) -> Tensor:
        """Sum of level embeddings: (..., L) int64 codes of part index ``part`` (L <= V levels) -> (..., d)."""
        C = self.config.codebook_size
        L = codes.shape[-1]
        offs = torch.arange(L, device=codes.device) * C
        return self.code_emb[part](codes + offs).sum(-2)

    def _level_emb(self, part: int, level: int, codes: Tensor) -> Tensor:
        return self.code_emb[part](codes + level * self.config.codebook_size)

    def token_inputs(self, music: Tensor, codes: Tensor) -> list[Tensor]:
        """Backbone inputs of committed tokens.

        Args:
            music: (..., d) music vectors of the tokens' own slots. codes: (..., P, V) int64.
        Returns:
            per part (..., d).
        """
        P = self.config.n_parts
        E = [self.embed_codes(i, codes[..., i, :]) for i in range(P)]
        if P == 1:
            return [self.drop(music + E[0])]
        return [self.drop(music + E[i] + self.other[i](torch.cat([E[j] for j in range(P) if j != i], -1)))
                for i in range(P)]

    def chunk_logits(self, ctx: Tensor, music: Tensor, base: Tensor, masked: Tensor) -> Tensor:
        """Base-level logits of a chunk.

        Args:
            ctx: (..., P, d) backbone output H_n. music: (..., K, d) per-slot music.
            base: (..., K, P) int64 base codes (ignored where masked). masked: (..., K, P) bool.
        Returns:
            (..., K, P, C) logits.
        """
        cfg = self.config
        P, K = cfg.n_parts, cfg.chunk
        per_part = []
        for i in range(P):
            e0 = self._level_emb(i, 0, base[..., i])  # (..., K, d)
            tok = torch.where(masked[..., i].unsqueeze(-1), self.mask_emb[i].expand_as(e0), e0)
            per_part.append(self.ctx_proj[i](ctx[..., i, :]).unsqueeze(-2) + tok + self.part_emb[i])
        z = torch.stack(per_part, dim=-2) + (music + self.slot_emb).unsqueeze(-2)  # (..., K, P, d)
        lead = z.shape[:-3]
        z = z.reshape(*lead, K * P, z.shape[-1])
        for blk in self.chunk_blocks:
            z = blk(z)
        z = self.base_norm(z).reshape(*lead, K, P, z.shape[-1])
        return torch.stack([self.base_head[i](z[..., i, :]) for i in range(P)], dim=-2)

    def _res_base(self, i: int, ctx: Tensor, music: Tensor) -> Tensor:
        return self.drop(self.res_in[i](ctx[..., i, :]).unsqueeze(-2) + music + self.slot_emb)

    def residual_logits(self, ctx: Tensor, music: Tensor, codes: Tensor) -> Tensor:
        """Teacher-forced residual logits.

        Args:
            ctx: (..., P, d). music: (..., K, d). codes: (..., K, P, V) int64 (all levels known).
        Returns:
            (..., K, P, V-1, C) logits of levels 1..V-1.
        """
        cfg = self.config
        out = []
        for i in range(cfg.n_parts):
            acc = self._res_base(i, ctx, music)
            if i > 0:
                acc = acc + self.res_cross[i - 1](self.embed_codes(i - 1, codes[..., i - 1, :]))
            lv = []
            for v in range(1, cfg.levels):
                acc = acc + self._level_emb(i, v - 1, codes[..., i, v - 1])
                lv.append(self.res_mlp[i][v - 1](acc))
            out.append(torch.stack(lv, dim=-2) if lv else acc.new_zeros(*acc.shape[:-1], 0, cfg.codebook_size))
        return torch.stack(out, dim=-3)

    def backbone(self, x: list[Tensor]) -> list[Tensor]:
        """Whole sequences through the PMMM stack: per part (B, L, d) -> per part (B, L, d) (normalised)."""
        for layer in self.layers:
            x = layer(x)
        return [self.out_norm[i](x[i]) for i in range(len(x))]

    # ------------------------------------------------------------------ training
    @staticmethod
    def committed_conditions(cond: Tensor, cond_chunk: Tensor | None, offset: int) -> Tensor:
        """The beat condition each slot's token is committed with, as the engine commits it.

        The engine commits a chunk's K tokens with the conditions it predicted them with: all K extrapolated from
        the tracker at the chunk start's ``t_n - lag`` (:meth:`step`'s ``pend_cond``). With chunks starting at
        ``offset``, ``offset + K``, ..., slot j = start + k gets ``cond_chunk[start, k]``; slots before ``offset``
        (their chunk started before the window) and k = 0 keep their own ``cond`` (``cond_chunk[:, :, 0] == cond``).

        Args:
            cond: (B, N, cond_dim) float32 each slot's own condition. cond_chunk: (B, N, K, cond_dim) float32 the
                chunk heads' conditions (:func:`livedance.model.train_generator.slot_inputs`), or None (``cond`` is
                returned: the baseline, and weights trained before session 23). offset: the first chunk start, in
                [0, K).
        Returns:
            (B, N, cond_dim) float32.
        """
        if cond_chunk is None or cond_chunk.shape[2] < 2:
            return cond
        N, K = cond.shape[1], cond_chunk.shape[2]
        j = torch.arange(N, device=cond.device)
        k = (j - offset) % K
        start = j - k
        picked = cond_chunk[:, start.clamp_min(0), k]  # (B, N, cond_dim)
        return torch.where((start >= 0).view(1, N, 1), picked, cond)

    def forward(self, codes: Tensor, window: Tensor, cond: Tensor, corrupt: float = 0.0,
                draw_temperature: float | None = None, cond_chunk: Tensor | None = None,
                hold: float = 0.0, hold_slots: int = 12) -> dict[str, Tensor]:
        """Teacher-forced losses over token windows.

        Args:
            codes: (B, N, P, V) int64 tokenizer codes of N consecutive slots (N > K).
            window: (B, N, W, feat_dim) float32 audio feature windows (slot n: frames <= t_n - lag).
            cond: (B, N, cond_dim) float32 beat conditions of the slots.
            corrupt: upper bound of the token-corruption rate of the committed history (T2M-GPT, Zhang et
                al. CVPR 2023, Sec. 3.3): each window draws a rate r ~ U(0, corrupt) and replaces that share
                of its (slot, part) tokens in the backbone's input, all levels, by uniformly random codes.
                The targets stay clean, so the model learns to continue from its own imperfect samples
                instead of copying a memorised history. 0 (inference, default) disables it.
            draw_temperature: when given, also return ``drawn``: the window's codes as (B, N, P, V, C) float
                one-hot vectors, the chunks' predicted positions drawn at this temperature with straight-through
                gradients (:meth:`draw_chunk_codes`), the rest the window's own codes; the alignment loss's input
                (:mod:`livedance.model.align`). The draws hear each chunk's music even where music dropout gave
                the heads the null vector.
            cond_chunk: (B, N, K, cond_dim) float32, the chunk heads' conditions of a chunk starting at each slot,
                all K from the beat tracker at the chunk start's ``t_n - lag`` (what the engine has;
                :func:`livedance.model.train_generator.slot_inputs`); the committed tokens' inputs get them too, as
                the engine commits them (:meth:`committed_conditions`). None: each slot's own ``cond`` (which for
                slots n+1.. holds tracker information the engine does not have yet; the weights before session 21
                were trained so for the heads, those before session 23 for the committed tokens).
            hold: the share of windows whose backbone input holds one run of tokens (:func:`hold_codes`); 0 (inference,
                default) disables it. hold_slots: the longest such run, slots (``max_len``).
        Returns:
            dict with scalar ``loss``, ``base`` (masked base-code cross-entropy), ``res`` (residual levels'
            cross-entropy) and ``acc`` (base accuracy on masked positions); and ``drawn`` (above).
        """
        cfg = self.config
        B, N, P, V = codes.shape
        K = cfg.chunk
        if N <= K:
            raise ConfigError(f"generator training windows need more than chunk={K} tokens, got {N}")
        # chunk starts every K slots from a random offset (inference starts them at 0, K, 2K, ...)
        offset = int(torch.randint(0, K, ()))
        m = self.music(window, self.committed_conditions(cond, cond_chunk, offset))  # (B, N, d)
        history = corrupt_codes(codes, corrupt, cfg.codebook_size) if corrupt > 0 else codes
        x = self.token_inputs(m, hold_codes(history, hold, hold_slots) if hold > 0 else history)
        seq = [torch.cat([self.bos[i].expand(B, 1, -1), x[i][:, : N - 1]], dim=1) for i in range(P)]
        h = self.backbone(seq)  # H_n at position n
        starts = torch.arange(offset, N - K + 1, K, device=codes.device)
        S = starts.numel()
        ctx = torch.stack([h[i][:, starts] for i in range(P)], dim=2)  # (B, S, P, d)
        W = window.shape[2]
        mw = window[:, starts].unsqueeze(2).expand(B, S, K, W, window.shape[-1])
        if cond_chunk is not None:
            mc = cond_chunk[:, starts]  # (B, S, K, cond_dim)
        else:
            mc = torch.stack([cond[:, starts + k] for k in range(K)], dim=2)
        mk = heard = self.music(mw, mc)  # (B, S, K, d)
        if self.training and cfg.music_dropout > 0:
            drop = torch.rand(B, S, 1, 1, device=mk.device) < cfg.music_dropout
            mk = torch.where(drop, self.null_music.expand_as(mk), mk)
        tgt = torch.stack([codes[:, starts + k] for k in range(K)], dim=2)  # (B, S, K, P, V)
        masked = training_mask((B, S), K * P, device=codes.device).reshape(B, S, K, P)
        logits = self.chunk_logits(ctx, mk, tgt[..., 0], masked)
        base_t = tgt[..., 0]
        ce = F.cross_entropy(logits.reshape(-1, cfg.codebook_size), base_t.reshape(-1), reduction="none")
        mf = masked.reshape(-1).float()
        base = (ce * mf).sum() / mf.sum().clamp_min(1.0)
        acc = ((logits.argmax(-1).reshape(-1) == base_t.reshape(-1)).float() * mf).sum() / mf.sum().clamp_min(1.0)
        if V > 1:
            rl = self.residual_logits(ctx, mk, tgt)  # (B, S, K, P, V-1, C)
            res = F.cross_entropy(rl.reshape(-1, cfg.codebook_size), tgt[..., 1:].reshape(-1))
        else:
            res = base.new_zeros(())
        out = {"loss": base + res, "base": base.detach(), "res": res.detach(), "acc": acc.detach()}
        if draw_temperature is not None:
            draw_logits = logits
            if mk is not heard:  # the draws hear the music even where the heads' music was dropped
                draw_logits = self.chunk_logits(ctx, heard, base_t, masked)
            drawn = self.draw_chunk_codes(ctx, heard, draw_logits, base_t, masked, draw_temperature)  # (B,S,K,P,V,C)
            slots = (starts[:, None] + torch.arange(K, device=codes.device)[None, :]).reshape(-1)
            full = F.one_hot(codes, cfg.codebook_size).to(drawn.dtype)
            out["drawn"] = full.index_copy(1, slots, drawn.reshape(B, S * K, P, V, cfg.codebook_size))
        return out

    def draw_chunk_codes(self, ctx: Tensor, music: Tensor, base_logits: Tensor, base: Tensor, masked: Tensor,
                         temperature: float) -> Tensor:
        """Straight-through draws of chunks' codes, close to how the engine samples them (for the alignment loss).

        The masked base positions are drawn from ``base_logits`` (the others keep ``base``); then, part by part and
        level by level as in :meth:`step`, each residual level is drawn from the residual head conditioned on the
        codes drawn below it. Draws are :func:`~livedance.model.align.straight_through_sample` (one-hot forward,
        softmax gradient) at ``temperature`` on every level. Where it differs from :meth:`step`: the base level is
        one draw of the training mask's positions given the real codes at the others (not MaskGIT's iterations from
        a fully masked chunk), and ``residual_temperature``, ``top_k``, ``min_p`` and ``guidance`` are not applied
        (the shipped sampling uses none of them).

        Args:
            ctx: (..., P, d). music: (..., K, d). base_logits: (..., K, P, C). base: (..., K, P) int64.
            masked: (..., K, P) bool. temperature: T > 0.
        Returns:
            (..., K, P, V, C) float one-hot codes with straight-through gradients into the logits.
        """
        from livedance.model.align import straight_through_sample

        cfg = self.config
        oh0 = torch.where(masked.unsqueeze(-1), straight_through_sample(base_logits, temperature),
                          F.one_hot(base, cfg.codebook_size).to(base_logits.dtype))
        parts_oh, parts_hard = [], []
        for i in range(cfg.n_parts):
            acc = self._res_base(i, ctx, music)
            if i > 0:
                acc = acc + self.res_cross[i - 1](self.embed_codes(i - 1, parts_hard[i - 1]))
            lv_oh, lv_hard = [oh0[..., i, :]], [oh0[..., i, :].argmax(-1)]
            for v in range(1, cfg.levels):
                acc = acc + self._level_emb(i, v - 1, lv_hard[-1])
                oh = straight_through_sample(self.res_mlp[i][v - 1](acc), temperature)
                lv_oh.append(oh)
                lv_hard.append(oh.argmax(-1))
            parts_oh.append(torch.stack(lv_oh, dim=-2))  # (..., K, V, C)
            parts_hard.append(torch.stack(lv_hard, dim=-1))  # (..., K, V)
        return torch.stack(parts_oh, dim=-3)

    # ------------------------------------------------------------------ inference
    def state_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Shapes of the recurrent state tensors of :meth:`step` (all float32, zeros at the start)."""
        cfg = self.config
        d_inner = cfg.expand * cfg.d_model
        return {
            "conv_state": (cfg.n_layers, cfg.n_parts, batch, d_inner, cfg.d_conv),
            "ssm_state": (cfg.n_layers, cfg.n_parts, batch, d_inner, cfg.d_state),
            "h_last": (batch, cfg.n_parts, cfg.d_model),
        }

    def step(
        self,
        conv_state: Tensor,
        ssm_state: Tensor,
        h_last: Tensor,
        pend_codes: Tensor,
        pend_window: Tensor,
        pend_cond: Tensor,
        pend_kind: Tensor,
        window: Tensor,
        cond: Tensor,
        gumbel_base: Tensor,
        gumbel_res: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Commit the pending tokens, then predict the next chunk (a pure function; exported to ONNX).

        Args:
            conv_state: (n_layers, P, B, d_inner, d_conv) Mamba conv states.
            ssm_state: (n_layers, P, B, d_inner, d_state) Mamba SSM states.
            h_last: (B, P, d) backbone output after the last committed token (H_n).
            pend_codes: (B, K, P, V) int64 codes of the previous chunk (committed now).
            pend_window: (B, K, W, feat_dim) their audio windows (slot j: frames <= t_j - lag).
            pend_cond: (B, K, cond_dim) their beat conditions.
            pend_kind: (B, K) float: 0 = empty slot (state unchanged), 1 = token, 2 = BOS (start of a stream).
            window: (B, W, feat_dim) audio window of the new chunk's first slot (frames <= t_n - lag).
            cond: (B, K, cond_dim) beat conditions of the new chunk's slots.
            gumbel_base: (B, mask_iters, K * P, C) Gumbel noise for the base codes (zeros: greedy).
            gumbel_res: (B, K, P, V-1, C) Gumbel noise for the residual levels.
        Returns:
            ``(codes (B, K, P, V) int64, conv_state, ssm_state, h_last)``.
        """
        cfg = self.config
        P, K, V = cfg.n_parts, cfg.chunk, cfg.levels
        B = h_last.shape[0]
        # 1. commit pending tokens (state advances over committed tokens only)
        pm = self.music(pend_window, pend_cond)  # (B, K, d)
        px = self.token_inputs(pm, pend_codes)  # per part (B, K, d)
        convs = [[conv_state[l, i] for i in range(P)] for l in range(cfg.n_layers)]
        ssms = [[ssm_state[l, i] for i in range(P)] for l in range(cfg.n_layers)]
        for k in range(K):
            kind = pend_kind[:, k]
            is_bos = (kind > 1.5).unsqueeze(-1)  # (B, 1) bool
            live = (kind > 0.5)
            # (a select, not a blend: a non-finite music vector of a BOS slot must not reach the fresh state)
            hk = [torch.where(is_bos, self.bos[i].expand_as(px[i][:, k]), px[i][:, k]) for i in range(P)]
            for l, layer in enumerate(self.layers):
                hk, nc, ns = layer.step(hk, convs[l], ssms[l])
                convs[l] = [torch.where(live.view(B, 1, 1), nc[i], convs[l][i]) for i in range(P)]
                ssms[l] = [torch.where(live.view(B, 1, 1), ns[i], ssms[l][i]) for i in range(P)]
            out = torch.stack([self.out_norm[i](hk[i]) for i in range(P)], dim=1)  # (B, P, d)
            h_last = torch.where(live.view(B, 1, 1), out, h_last)
        conv_state = torch.stack([torch.stack(c, 0) for c in convs], 0)
        ssm_state = torch.stack([torch.stack(s, 0) for s in ssms], 0)
        # 2. music of the new chunk: the chunk start's window, each slot's own beat condition
        mk = self.music(window.unsqueeze(1).expand(B, K, *window.shape[1:]), cond)  # (B, K, d)

        # 3. mask-predict the base codes of K slots x P parts
        def logits_fn(codes_flat: Tensor, masked_flat: Tensor) -> Tensor:
            codes_k, masked_k = codes_flat.view(B, K, P), masked_flat.view(B, K, P)
            if cfg.guidance == 1.0:
                lg = self.chunk_logits(h_last, mk, codes_k, masked_k)
                return lg.reshape(B, K * P, cfg.codebook_size)
            # classifier-free guidance: with and without the chunk's music in one batched call
            lg = self.chunk_logits(torch.cat([h_last, h_last], 0), torch.cat([mk, self.null_music.expand_as(mk)], 0),
                                   torch.cat([codes_k, codes_k], 0), torch.cat([masked_k, masked_k], 0))
            lc, lu = F.log_softmax(lg[:B], -1), F.log_softmax(lg[B:], -1)
            return (lu + cfg.guidance * (lc - lu)).reshape(B, K * P, cfg.codebook_size)

        base = mask_predict(logits_fn, B, K * P, gumbel_base, cfg.temperature, cfg.mask_iters, cfg.top_k,
                            cfg.min_p).view(B, K, P)
        # 4. residual levels, part-chained
        parts_codes = []
        for i in range(P):
            acc = self._res_base(i, h_last, mk)
            if i > 0:
                acc = acc + self.res_cross[i - 1](self.embed_codes(i - 1, parts_codes[i - 1]))
            lv = [base[..., i]]
            for v in range(1, V):
                acc = acc + self._level_emb(i, v - 1, lv[-1])
                c, _ = gumbel_sample(self.res_mlp[i][v - 1](acc), gumbel_res[:, :, i, v - 1], cfg.temperature, cfg.top_k,
                                     cfg.min_p)
                lv.append(c)
            parts_codes.append(torch.stack(lv, dim=-1))  # (B, K, V)
        codes = torch.stack(parts_codes, dim=2)
        return codes, conv_state, ssm_state, h_last
