"""Motion tokenizer: causal temporal conv VQ-VAE with part-chained residual quantisation (HRVQ).

Adapted from SoulNet's hierarchical residual VQ (HRVQ: body parts quantised in a chain, each part's
code conditioning the next) on top of the residual VQ of SoundStream (Zeghidour et al. 2021, Alg. 1,
with quantizer dropout, Sec. 3.3) and the temporal conv VQ-VAE of T2M-GPT (Zhang et al. 2023) /
Bailando (Siyao et al. 2022), with every convolution made causal.

Per active part p (``lower``, ``upper``; ``hands``/``face`` when their data exists) of the feature vector
of :mod:`livedance.model.representation`:

* encoder ``E_p``: causal conv, then ``down`` stages of [causal strided conv (kernel 4, stride 2) + causal
  dilated residual blocks], then a causal conv to ``latent_dim``; 2 stages = 4x downsampling, 25 fps ->
  6.25 tokens/s. Token n depends on frames <= 4n + 3 only (frames 4n .. 4n+3 are "its" frames).
* residual quantiser with V levels (``levels``), one EMA codebook per part per level
  (``vector_quantize_pytorch.VectorQuantize``: EMA updates, k-means init, dead-code replacement,
  rotation-trick gradients). With ``r_p^0 = z_p`` and ``q_p^v`` the level-v output of part p:

      hint_p^v = H_p^v(q_{p-1}^v)   (HRVQ only; 0 for the first part and for the 'vq'/'rvq' variants)
      q_p^v    = hint_p^v + VQ_p^v(r_p^v - hint_p^v)          (codebook index c_p^v)
      r_p^{v+1} = r_p^v - q_p^v,    z_hat_p = sum_v q_p^v

  i.e. at EVERY level the previous part's quantised vector (lower -> upper -> hands -> face), projected
  by a learned linear map ``H_p^v``, predicts this part's residual and this part's codebook codes only
  what that prediction misses. ``q`` is a deterministic function of the codes, so :meth:`Tokenizer.decode`
  needs nothing else.
* quantizer dropout (training only): with probability ``quantizer_dropout`` an example keeps only its
  first n ~ U{1..V} levels (the same n for all parts), so that decoding from the first levels works.
  With ``dropout_masks_ema`` (the default for new runs) a dropped level's codebook learns nothing from the
  example: its EMA averages, dead-code replacement and commitment loss see only the examples that keep
  the level. The shipped tokenizers were trained without it (before session 19: every example fed every
  level's codebook, only the decoder input was masked); their JSON has no such field, read as False.
* decoder ``D_p``: causal conv, ``down`` stages of [causal residual blocks + nearest x2 upsampling +
  causal conv], causal convs to the part's features. Frame 4n + k (k = 0..3) depends on tokens <= n.

Variants (the ablation): ``vq`` = 1 level, no chaining; ``rvq`` = V levels, no chaining; ``hrvq`` = V
levels, chained.

Streaming: the decoder is causal with a finite receptive field of :attr:`Tokenizer.decoder_context_tokens`
past tokens (R, computed from the layer list), so :class:`StreamingDecoder` keeps the last R tokens'
de-quantised latents (bounded state) and decodes each new chunk of tokens to exactly the frames the
offline :meth:`Tokenizer.decode` gives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import torch
import torch.distributed as tdist
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from livedance.errors import ConfigError, DataError, WeightsError

__all__ = [
    "VARIANTS",
    "TokenizerConfig",
    "Tokenizer",
    "StreamingDecoder",
    "CausalConv1d",
    "TOKENIZER_FORMAT",
    "same_codes",
    "require_same_codes",
    "code_lineage",
]

#: Ablation variants.
VARIANTS: tuple[str, ...] = ("vq", "rvq", "hrvq")
#: ``format`` field of the tokenizer's JSON.
TOKENIZER_FORMAT = "livedance.tokenizer"


@dataclass(frozen=True)
class TokenizerConfig:
    """Hyper-parameters of :class:`Tokenizer`.

    Attributes:
        part_dims: ordered ``(part name, feature size)`` pairs of the active parts, in chaining order
            (from :attr:`RepresentationConfig.part_dims`, zero-size parts left out).
        variant: ``'vq'``, ``'rvq'`` or ``'hrvq'`` (see the module docstring).
        levels: V, residual levels (forced to 1 for ``'vq'``).
        codebook_size: codes per codebook (one codebook per part per level).
        latent_dim: dimension of the latent / code vectors.
        width: channels of the conv stacks.
        down: number of x2 down/upsampling stages (2 -> 4x).
        depth: residual blocks per stage.
        dilation_growth: dilation of residual block i is ``dilation_growth ** i``.
        quantizer_dropout: probability that a training example keeps only its first n ~ U{1..V} levels.
        ema_decay: EMA decay of the codebooks.
        dead_code_threshold: codes whose EMA cluster size falls below this are replaced by batch samples.
        kmeans_init: initialise codebooks by k-means on the first batch.
        commitment_weight: weight of the commitment loss ``|z - sg(q)|^2`` per codebook.
        dropout_masks_ema: quantizer dropout also hides a dropped level from that level's codebook (EMA
            averages, dead-code replacement, commitment loss); False is the legacy behaviour the shipped
            tokenizers were trained with, and what :meth:`from_dict` reads from a JSON without the field.
            Training only: encoding and decoding do not depend on it.
    """

    part_dims: tuple[tuple[str, int], ...] = (("lower", 62), ("upper", 78))
    variant: str = "hrvq"
    levels: int = 4
    codebook_size: int = 512
    latent_dim: int = 64
    width: int = 64
    down: int = 2
    depth: int = 2
    dilation_growth: int = 3
    quantizer_dropout: float = 0.5
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0
    kmeans_init: bool = True
    commitment_weight: float = 0.02
    dropout_masks_ema: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "part_dims", tuple((str(n), int(d)) for n, d in self.part_dims))
        if self.variant not in VARIANTS:
            raise ConfigError(f"tokenizer variant {self.variant!r}; expected one of {', '.join(VARIANTS)}")
        if self.variant == "vq":
            object.__setattr__(self, "levels", 1)
        if not self.part_dims or any(d <= 0 for _, d in self.part_dims):
            raise ConfigError(f"tokenizer part_dims {self.part_dims}; expected at least one part, all sizes > 0")
        if self.levels < 1 or self.codebook_size < 2 or self.down < 0 or not 0 <= self.quantizer_dropout <= 1:
            raise ConfigError(
                f"tokenizer config: levels={self.levels}, codebook_size={self.codebook_size}, down={self.down}, "
                f"quantizer_dropout={self.quantizer_dropout}; expected levels >= 1, codebook_size >= 2, down >= 0, "
                "0 <= quantizer_dropout <= 1"
            )

    @property
    def parts(self) -> tuple[str, ...]:
        """Active part names in chaining order."""
        return tuple(n for n, _ in self.part_dims)

    @property
    def dim(self) -> int:
        """Total feature size D."""
        return sum(d for _, d in self.part_dims)

    @property
    def chained(self) -> bool:
        """Whether parts are chained (HRVQ)."""
        return self.variant == "hrvq"

    @property
    def stride(self) -> int:
        """Frames per token (``2 ** down``)."""
        return 2 ** self.down

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        d = asdict(self)
        d["part_dims"] = [list(p) for p in self.part_dims]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "TokenizerConfig":
        """Inverse of :meth:`to_dict`. A dict written before ``dropout_masks_ema`` existed (the shipped
        ``tokenizer.json`` / ``baseline_tokenizer.json``) was trained without it: the field reads as False."""
        d = dict(d)
        d["part_dims"] = tuple(tuple(p) for p in d["part_dims"])
        d.setdefault("dropout_masks_ema", False)
        return cls(**d)


# --------------------------------------------------------------------------------------------- layers
class CausalConv1d(nn.Conv1d):
    """Conv1d over (B, C, T) padded on the left only: output t depends on inputs <= t * stride + stride - 1.

    Left padding is ``(kernel - 1) * dilation + 1 - stride`` zeros, so with stride s the output has
    ``ceil(T / s)`` steps when T is a multiple of s.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, dilation=dilation)
        self.left = (kernel - 1) * dilation + 1 - stride

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return super().forward(F.pad(x, (self.left, 0)))


class _ResBlock(nn.Module):
    """``x + conv1x1(relu(causal_conv_k3_dilated(relu(x))))`` (T2M-GPT's Resnet1D block, causal)."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(width, width, 3, dilation=dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x + self.proj(F.relu(self.conv(F.relu(x))))


class _Upsample2(nn.Module):
    """Nearest-neighbour x2 upsampling in time (causal: output 2t, 2t+1 copy input t)."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x.repeat_interleave(2, dim=-1)


def _encoder(cfg: TokenizerConfig, din: int) -> nn.Sequential:
    layers: list[nn.Module] = [CausalConv1d(din, cfg.width, 3), nn.ReLU()]
    for _ in range(cfg.down):
        layers.append(CausalConv1d(cfg.width, cfg.width, 4, stride=2))
        layers += [_ResBlock(cfg.width, cfg.dilation_growth ** i) for i in range(cfg.depth)]
    layers += [nn.ReLU(), CausalConv1d(cfg.width, cfg.latent_dim, 3)]
    return nn.Sequential(*layers)


def _decoder(cfg: TokenizerConfig, dout: int) -> nn.Sequential:
    layers: list[nn.Module] = [CausalConv1d(cfg.latent_dim, cfg.width, 3), nn.ReLU()]
    for _ in range(cfg.down):
        layers += [_ResBlock(cfg.width, cfg.dilation_growth ** i) for i in reversed(range(cfg.depth))]
        layers += [_Upsample2(), CausalConv1d(cfg.width, cfg.width, 3)]
    layers += [nn.ReLU(), CausalConv1d(cfg.width, cfg.width, 3), nn.ReLU(), CausalConv1d(cfg.width, dout, 3)]
    return nn.Sequential(*layers)


def _min_input_index(layers: nn.Sequential, out_index: int) -> int:
    """Earliest input step that output step ``out_index`` of a causal stack depends on."""
    i = out_index
    for layer in reversed(list(layers)):
        if isinstance(layer, CausalConv1d):  # output t reads inputs t*s + s - 1 - (k-1)*d .. t*s + s - 1
            s, k, d = layer.stride[0], layer.kernel_size[0], layer.dilation[0]
            i = i * s + s - 1 - (k - 1) * d
        elif isinstance(layer, _ResBlock):
            i = i - 2 * layer.conv.dilation[0]
        elif isinstance(layer, _Upsample2):
            i = i // 2
    return i


def _receptive_context(layers: nn.Sequential, rate: int) -> int:
    """Past input steps needed by the first output of a chunk: max over phases of ``n0 - min_index(rate*n0)``."""
    return max(n0 - _min_input_index(layers, rate * n0) for n0 in range(1000, 1000 + rate))


# --------------------------------------------------------------------------------------------- model
def same_codes(trained_with: str | None, tokenizer_doc: dict) -> bool:
    """Whether a model trained on the tokenizer with sha256 ``trained_with`` may use this tokenizer.

    True when ``trained_with`` is empty (a record older than the check), when the tokenizer's JSON has no
    ``sha256`` to compare (likewise), when it equals the tokenizer file's ``sha256``, or when it is listed
    in its ``same_codes_as``: the tokenizers it was made from by decoder fine-tuning
    (:mod:`livedance.model.decoder_tune`, which checks encoders, codebooks and hint maps bit for bit), so
    that every code means the same pose. A ``same_codes_as`` that is not a list of strings counts as empty.

    Args:
        trained_with: the ``tokenizer_sha256`` a generator's JSON records.
        tokenizer_doc: the tokenizer's JSON (:meth:`Tokenizer.load`'s third value).
    """
    got = tokenizer_doc.get("sha256")
    if not trained_with or not got or trained_with == got:
        return True
    listed = tokenizer_doc.get("same_codes_as", [])
    return isinstance(listed, list) and any(isinstance(s, str) and s == trained_with for s in listed)


def require_same_codes(model_json: str | Path, trained_with: str | None, tokenizer_doc: dict,
                       tokenizer_name: str = "the tokenizer loaded") -> None:
    """Raise unless :func:`same_codes` allows the model described by ``model_json`` on this tokenizer.

    Args:
        model_json: the model's JSON file (named in the error).
        trained_with: the ``tokenizer_sha256`` it records.
        tokenizer_doc: the tokenizer's JSON.
        tokenizer_name: how the error names the tokenizer (e.g. its JSON path).
    Raises:
        WeightsError: naming both sha256s and the fix.
    """
    if not same_codes(trained_with, tokenizer_doc):
        raise WeightsError(
            f"{model_json}: trained with tokenizer sha256 {trained_with[:12]}..., but {tokenizer_name} has "
            f"{str(tokenizer_doc.get('sha256'))[:12]}... (and does not list it in same_codes_as); retrain the model "
            "or restore the matching tokenizer weights")


def code_lineage(tokenizer_doc: dict) -> set[str]:
    """The sha256s of the tokenizers whose codes this one has: its own and those in ``same_codes_as``.

    Two tokenizers with intersecting lineages encode and de-quantise alike (decoder fine-tunes of one
    trained tokenizer), so a model trained on either's codes runs on both (:func:`same_codes`).
    """
    listed = tokenizer_doc.get("same_codes_as", [])
    out = {s for s in listed if isinstance(s, str)} if isinstance(listed, list) else set()
    own = tokenizer_doc.get("sha256")
    return out | ({own} if isinstance(own, str) and own else set())


class Tokenizer(nn.Module):
    """Part-chained residual VQ-VAE over normalised motion features (see the module docstring).

    Shapes: B batch, T frames (at the data rate, 25 fps), N = ceil(T / stride) tokens (6.25 /s), V levels,
    D features (:attr:`TokenizerConfig.dim`), d = ``latent_dim``.
    """

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.config = cfg = config
        self.encoders = nn.ModuleDict({p: _encoder(cfg, d) for p, d in cfg.part_dims})
        self.decoders = nn.ModuleDict({p: _decoder(cfg, d) for p, d in cfg.part_dims})
        self.quantizers = nn.ModuleDict({
            p: nn.ModuleList([
                VectorQuantize(
                    dim=cfg.latent_dim, codebook_size=cfg.codebook_size, decay=cfg.ema_decay,
                    kmeans_init=cfg.kmeans_init, kmeans_iters=10, threshold_ema_dead_code=cfg.dead_code_threshold,
                    commitment_weight=cfg.commitment_weight,
                )
                for _ in range(cfg.levels)
            ])
            for p in cfg.parts
        })
        self.hints = nn.ModuleDict()
        if cfg.chained:
            for p in cfg.parts[1:]:
                hs = nn.ModuleList([nn.Linear(cfg.latent_dim, cfg.latent_dim) for _ in range(cfg.levels)])
                for h in hs:  # start as plain RVQ; the hint is learned
                    nn.init.zeros_(h.weight)
                    nn.init.zeros_(h.bias)
                self.hints[p] = hs
        off, self._slices = 0, {}
        for p, d in cfg.part_dims:
            self._slices[p] = slice(off, off + d)
            off += d

    # -------------------------------------------------------------------------------- properties
    @property
    def stride(self) -> int:
        """Frames per token (4)."""
        return self.config.stride

    @property
    def decoder_context_tokens(self) -> int:
        """R: past tokens (before a chunk's first new token) that the decoder's output for the chunk depends on."""
        return max(_receptive_context(dec, self.stride) for dec in self.decoders.values())

    @property
    def encoder_context_frames(self) -> int:
        """Past frames (before a token's own ``stride`` frames) that the encoder's output depends on."""
        enc = next(iter(self.encoders.values()))
        n0 = 1000
        return self.stride * n0 - _min_input_index(enc, n0)

    # -------------------------------------------------------------------------------- encode
    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != self.config.dim or x.shape[1] < 1:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise DataError(f"tokenizer: input features have shape {shape}, expected (B, T >= 1, {self.config.dim})")

    def _pad(self, x: Tensor) -> Tensor:
        T = x.shape[1]
        pad = (-T) % self.stride
        if pad:
            x = torch.cat([x, x[:, -1:].expand(-1, pad, -1)], dim=1)
        return x

    def encode_latents(self, x: Tensor) -> dict[str, Tensor]:
        """Continuous encoder outputs: (B, T, D) -> part -> (B, N, d). T is edge-padded to a multiple of 4."""
        self._check_x(x)
        x = self._pad(x)
        return {p: self.encoders[p](x[..., self._slices[p]].transpose(1, 2)).transpose(1, 2) for p in self.config.parts}

    def quantize(self, z: Mapping[str, Tensor], keep_levels: Tensor | None = None) -> tuple[dict, dict, Tensor]:
        """Chained residual quantisation of latents.

        Args:
            z: part -> (B, N, d) latents.
            keep_levels: optional (B,) int64, levels kept per example (quantizer dropout); None keeps all.
                Example b's level v enters ``z_hat`` only when ``keep_levels[b] > v``; with
                ``config.dropout_masks_ema`` it also reaches level v's codebook (EMA, dead-code replacement,
                commitment) only then, and a level no example keeps is not quantised at all.
        Returns:
            ``(z_hat part -> (B, N, d), codes part -> (B, N, V) int64, commitment loss scalar)``; with
            ``dropout_masks_ema`` the codes of a dropped level are -1 (legacy, and the DDP fallback below: the
            nearest code anyway).

        Under ``torch.distributed`` in training mode the masked path all-reduces, per level, how many examples
        keep it, so that every rank calls the (synchronised) codebook or none does; a rank none of whose examples
        keeps a level that another rank's do quantises its examples unmasked for that level (legacy behaviour, as
        the codebook cannot take an empty batch there).
        """
        cfg = self.config
        parts = cfg.parts
        B, N = next(iter(z.values())).shape[:2]
        acc = {p: torch.zeros_like(z[p]) for p in parts}
        codes = {p: [] for p in parts}
        loss = z[parts[0]].new_zeros(())
        masked = keep_levels is not None and cfg.dropout_masks_ema
        for v in range(cfg.levels):
            mask = vq_mask = None
            run_vq = True
            if keep_levels is not None:
                kept = keep_levels > v  # (B,) bool
                mask = kept.to(z[parts[0]].dtype).view(B, 1, 1)
                if masked:
                    n_local = int(kept.sum())
                    n_all = n_local
                    if self.training and tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1:
                        t = torch.tensor([n_local], device=kept.device)
                        tdist.all_reduce(t)
                        n_all = int(t.item())
                    run_vq = n_all > 0
                    if 0 < n_local < B:
                        vq_mask = kept.view(B, 1).expand(B, N)
            prev_q = None
            for p in parts:
                r = z[p] - acc[p]
                hint = self.hints[p][v](prev_q) if (cfg.chained and prev_q is not None) else None
                if not run_vq:  # nobody keeps level v: its codebook is left alone, the hints stay in the graph
                    q = torch.zeros_like(r) if hint is None else hint
                    acc[p] = acc[p] + q * mask
                    codes[p].append(torch.full(r.shape[:2], -1, dtype=torch.int64, device=r.device))
                    prev_q = q
                    continue
                x_in = r - hint if hint is not None else r
                if vq_mask is not None:
                    q, idx, l = self.quantizers[p][v](x_in, mask=vq_mask)
                else:
                    q, idx, l = self.quantizers[p][v](x_in)
                if hint is not None:
                    q = q + hint
                loss = loss + l.sum()
                acc[p] = acc[p] + (q if mask is None else q * mask)
                codes[p].append(idx)
                prev_q = q
        return acc, {p: torch.stack(codes[p], dim=-1) for p in parts}, loss

    @torch.no_grad()
    def encode(self, x: Tensor) -> dict[str, Tensor]:
        """Features to codes.

        Args:
            x: (B, T, D) normalised features (:meth:`Representation.encode`), float32.
        Returns:
            part -> (B, ceil(T/4), V) int64 codebook indices in [0, codebook_size).
        Raises:
            DataError: on a wrong input shape.

        Runs in eval mode even when the module is training (no codebook EMA updates, no dropout).
        """
        was = self.training
        self.eval()
        try:
            z = self.encode_latents(x)
            _, codes, _ = self.quantize(z)
        finally:
            self.train(was)
        return codes

    # -------------------------------------------------------------------------------- decode
    def _check_codes(self, codes: Mapping[str, Tensor]) -> tuple[int, int]:
        cfg = self.config
        if set(codes) != set(cfg.parts):
            raise DataError(f"tokenizer.decode: code parts {sorted(codes)}, expected {list(cfg.parts)}")
        shapes = {tuple(c.shape[:2]) for c in codes.values()}
        for p, c in codes.items():
            if c.ndim != 3 or c.shape[-1] < 1 or c.shape[-1] > cfg.levels or len(shapes) != 1:
                raise DataError(
                    f"tokenizer.decode: codes[{p!r}] has shape {tuple(c.shape)}; expected (B, N, L <= {cfg.levels}), the "
                    "same B and N for every part"
                )
        c0 = next(iter(codes.values()))
        if c0.numel() and (min(int(c.min()) for c in codes.values()) < 0 or max(int(c.max()) for c in codes.values()) >= cfg.codebook_size):
            raise DataError(f"tokenizer.decode: code indices must lie in [0, {cfg.codebook_size})")
        return c0.shape[0], c0.shape[1]

    def dequantize(self, codes: Mapping[str, Tensor], levels: int | None = None) -> dict[str, Tensor]:
        """Codes to quantised latents: part -> (B, N, L) int64 -> part -> (B, N, d), summing the first
        ``levels`` levels (default: all levels present in the codes), with the HRVQ hints."""
        self._check_codes(codes)
        L = min(c.shape[-1] for c in codes.values())
        L = L if levels is None else min(int(levels), L)
        return self._chain_levels(lambda p, v: self.quantizers[p][v].get_output_from_indices(codes[p][..., v]), L)

    def _chain_levels(self, level_output, levels: int) -> dict[str, Tensor]:
        """part -> sum over the first ``levels`` levels of ``level_output(part, level)`` (B, N, d), each plus its HRVQ
        hint from the previous part's output at the same level (the decode side of :meth:`quantize`)."""
        cfg = self.config
        out = {}
        qs_prev: list[Tensor] | None = None
        for p in cfg.parts:
            qs = []
            for v in range(levels):
                q = level_output(p, v)
                if cfg.chained and qs_prev is not None:
                    q = q + self.hints[p][v](qs_prev[v])
                qs.append(q)
            out[p] = torch.stack(qs, 0).sum(0)
            qs_prev = qs
        return out

    def dequantize_onehot(self, onehot: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """:meth:`dequantize` of one-hot (or soft) codes, differentiable in them: the alignment loss's path
        (:mod:`livedance.model.align`).

        Args:
            onehot: part -> (B, N, L, C) float weights over each level's C codes (L <= V levels).
        Returns:
            part -> (B, N, d): sum over levels of weights @ codebook, plus the HRVQ hints (linear, so a soft code's
            hint is the weighted hints). One-hot weights give exactly :meth:`dequantize` of their codes.
        Raises:
            DataError: missing parts or a wrong shape.
        """
        cfg = self.config
        if set(onehot) != set(cfg.parts):
            raise DataError(f"tokenizer.dequantize_onehot: parts {sorted(onehot)}, expected {list(cfg.parts)}")
        for p, w in onehot.items():
            if w.ndim != 4 or w.shape[-1] != cfg.codebook_size or not 1 <= w.shape[-2] <= cfg.levels:
                raise DataError(f"tokenizer.dequantize_onehot: {p!r} has shape {tuple(w.shape)}, expected "
                                f"(B, N, L <= {cfg.levels}, {cfg.codebook_size})")
        L = min(w.shape[-2] for w in onehot.values())
        return self._chain_levels(
            lambda p, v: onehot[p][..., v, :] @ self.quantizers[p][v].codebook.to(onehot[p].dtype), L)

    def decode_latents(self, zq: Mapping[str, Tensor]) -> Tensor:
        """Quantised latents part -> (B, N, d) to features (B, 4N, D)."""
        outs = [self.decoders[p](zq[p].transpose(1, 2)).transpose(1, 2) for p in self.config.parts]
        return torch.cat(outs, dim=-1)

    def decode(self, codes: Mapping[str, Tensor], levels: int | None = None) -> Tensor:
        """Codes to normalised features.

        Args:
            codes: part -> (B, N, L) int64 (L <= V; fewer levels decode coarser motion).
            levels: use only the first ``levels`` levels.
        Returns:
            (B, 4N, D) float32 normalised features (:meth:`Representation.decode` turns them into motion).
        Raises:
            DataError: on missing parts, mismatched shapes or out-of-range indices.
        """
        return self.decode_latents(self.dequantize(codes, levels))

    # -------------------------------------------------------------------------------- training
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Encode, quantise (with quantizer dropout in training mode), decode.

        Args:
            x: (B, T, D) normalised features.
        Returns:
            dict with ``recon`` (B, T, D), ``codes`` part -> (B, N, V) (-1 at levels quantizer dropout dropped, with
            ``dropout_masks_ema``), ``commit`` (scalar commitment loss, summed over parts and levels).
        """
        z = self.encode_latents(x)
        keep = None
        if self.training and self.config.quantizer_dropout > 0 and self.config.levels > 1:
            B = x.shape[0]
            drop = torch.rand(B, device=x.device) < self.config.quantizer_dropout
            n = torch.randint(1, self.config.levels + 1, (B,), device=x.device)
            keep = torch.where(drop, n, torch.full_like(n, self.config.levels))
        zq, codes, commit = self.quantize(z, keep)
        recon = self.decode_latents(zq)[:, : x.shape[1]]
        return {"recon": recon, "codes": codes, "commit": commit}

    def num_parameters(self) -> int:
        """Number of trainable parameters (codebooks are EMA buffers and not counted)."""
        return sum(p.numel() for p in self.parameters())

    # -------------------------------------------------------------------------------- weights
    def save(self, stem: str | Path, representation=None, extra: dict | None = None) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` + ``<stem>.json`` (config, representation stats, ``extra``)."""
        from livedance.model.checkpoint import save_weights

        ext = dict(extra or {})
        if representation is not None:
            ext["representation"] = representation.to_dict()
        ext.setdefault("decoder_context_tokens", self.decoder_context_tokens)
        return save_weights(stem, self.state_dict(), TOKENIZER_FORMAT, self.config.to_dict(), ext)

    @classmethod
    def load(cls, stem: str | Path | None = None) -> tuple["Tokenizer", "object", dict]:
        """Load a tokenizer written by :meth:`save` (default: the shipped ``livedance/weights/tokenizer``).

        Returns:
            ``(tokenizer in eval mode, Representation, json doc)``.
        Raises:
            WeightsError: missing / corrupt files, bad config, or tensors that do not match the config.
        """
        from livedance.model.checkpoint import WEIGHTS_DIR, load_state_into, load_weights, weight_paths
        from livedance.model.representation import Representation

        stem = Path(stem) if stem is not None else WEIGHTS_DIR / "tokenizer"
        state, doc = load_weights(stem, TOKENIZER_FORMAT)
        st_path, src = weight_paths(stem)
        try:
            cfg = TokenizerConfig.from_dict(doc["config"])
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise WeightsError(f"{src}: bad tokenizer config ({type(e).__name__}: {e})") from None
        if "representation" not in doc:
            raise WeightsError(f"{src}: no 'representation' entry (normalisation statistics)")
        rep = Representation.from_dict(doc["representation"], source=str(src))
        rep_parts = tuple((n, d) for n, d in rep.config.part_dims.items() if d > 0)
        if rep_parts != cfg.part_dims:
            raise WeightsError(f"{src}: tokenizer parts {cfg.part_dims} do not match the representation's {rep_parts}")
        tok = cls(cfg)
        load_state_into(tok, state, st_path)
        tok.eval()
        return tok, rep, doc


class StreamingDecoder:
    """Decode tokens chunk by chunk with bounded state; equals :meth:`Tokenizer.decode` on the whole sequence.

    State: the de-quantised latents of the last R = :attr:`Tokenizer.decoder_context_tokens` tokens per
    part, (B, <= R, d) each. Each :meth:`step` re-runs the causal decoder over [context, new tokens]
    (R + n tokens) and returns the 4n frames of the new tokens; with the decoder's receptive field
    inside the window, the result is the offline decode's, to float rounding.

    Args:
        tokenizer: a :class:`Tokenizer` (put in eval mode by the caller).
        levels: decode with the first ``levels`` levels only (None: all given).
    """

    def __init__(self, tokenizer: Tokenizer, levels: int | None = None):
        self.tok = tokenizer
        self.levels = levels
        self.context_tokens = tokenizer.decoder_context_tokens
        self._ctx: dict[str, Tensor] | None = None
        self.tokens_seen = 0

    def reset(self) -> None:
        """Forget the context (start of a new performance)."""
        self._ctx = None
        self.tokens_seen = 0

    @torch.no_grad()
    def step(self, codes: Mapping[str, Tensor]) -> Tensor:
        """Decode new tokens.

        Args:
            codes: part -> (B, n, L) int64, the next n >= 0 tokens.
        Returns:
            (B, 4n, D) float32 normalised features for frames 4*s .. 4*(s+n) - 1, s = tokens seen before.
        """
        zq = self.tok.dequantize(codes, self.levels)
        n = next(iter(zq.values())).shape[1]
        if self._ctx is None:
            window = zq
        else:
            window = {p: torch.cat([self._ctx[p], zq[p]], dim=1) for p in zq}
        out = self.tok.decode_latents(window)[:, -self.tok.stride * n:] if n else None
        R = self.context_tokens
        self._ctx = {p: w[:, max(0, w.shape[1] - R):] for p, w in window.items()}
        self.tokens_seen += n
        if out is None:
            B = next(iter(zq.values())).shape[0]
            return torch.zeros(B, 0, self.tok.config.dim)
        return out
