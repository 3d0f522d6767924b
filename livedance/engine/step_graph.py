"""The step graph: one generator step + token decode as a pure tensor function (what the engines run).

``StepGraph.forward(*states, dec_ctx, pend_codes, pend_window, pend_cond, pend_kind, window, cond,
gumbel_base, gumbel_res) -> (codes, frames, *states, dec_ctx)``:

1. the generator's :meth:`~livedance.model.generator.DanceGenerator.step` (commit the previous chunk's
   tokens into the recurrent state, mask-predict the next K slots, residual levels);
2. token decode: the new codes are de-quantised (HRVQ sum of code vectors plus the part-chain hints,
   exactly :meth:`Tokenizer.dequantize`) and decoded by the tokenizer's causal decoder over the last
   R = ``tokenizer.decoder_context_tokens`` latents + the K new ones (``dec_ctx`` carries the last R;
   :class:`~livedance.model.tokenizer.StreamingDecoder` does the same), giving the 4K new frames of
   normalised motion features (D = ``Representation.dim`` = 140 for the body-only representation: 62
   ``lower`` + 78 ``upper``).

Every shape is fixed (batch 1 in the engines), so the graph exports to ONNX (no negative slice starts:
torch's TorchScript exporter mis-exported some here); the state tensors are
named by :meth:`StepGraph.input_names` / :meth:`StepGraph.output_names`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["StepGraph", "GRAPH_FORMAT"]

#: Version of the step graph's code: bump it whenever a change here, in the generator's ``step``, the tokenizer's
#: decoder or the exporter changes the exported graph for the same weights (it is part of the ONNX cache key,
#: :func:`livedance.engine.loader.graph_key`, so a cached ``.onnx`` of the old code is never reused).
GRAPH_FORMAT = 2  # 2: the music clamp (Z_MAX) and the BOS select (session 23)


class StepGraph(nn.Module):
    """Generator step + token decode (see the module docstring).

    Args:
        model: :class:`~livedance.model.generator.DanceGenerator` or
            :class:`~livedance.model.baseline_gpt.BaselineGPT` (both expose ``state_shapes`` and ``step``).
        tokenizer: the :class:`~livedance.model.tokenizer.Tokenizer` whose codes the model predicts.
    """

    def __init__(self, model: nn.Module, tokenizer: nn.Module):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.config = model.config
        self.context_tokens = int(tokenizer.decoder_context_tokens)
        self.state_names = list(model.state_shapes(1))

    # ------------------------------------------------------------------ shapes
    def input_shapes(self, batch: int = 1) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Name -> (shape, dtype) of every input, in call order."""
        c = self.config
        K, P, V, C, W = c.chunk, c.n_parts, c.levels, c.codebook_size, c.window
        out = {n: (s, torch.float32) for n, s in self.model.state_shapes(batch).items()}
        out["dec_ctx"] = ((batch, P, self.context_tokens, self.tokenizer.config.latent_dim), torch.float32)
        out.update({
            "pend_codes": ((batch, K, P, V), torch.int64),
            "pend_window": ((batch, K, W, c.feat_dim), torch.float32),
            "pend_cond": ((batch, K, c.cond_dim), torch.float32),
            "pend_kind": ((batch, K), torch.float32),
            "window": ((batch, W, c.feat_dim), torch.float32),
            "cond": ((batch, K, c.cond_dim), torch.float32),
            "gumbel_base": ((batch, c.mask_iters, K * P, C), torch.float32),
            "gumbel_res": ((batch, K, P, max(V - 1, 1), C), torch.float32),
        })
        return out

    def input_names(self) -> list[str]:
        """Input names in call order."""
        return list(self.input_shapes(1))

    def output_names(self) -> list[str]:
        """Output names: ``codes``, ``frames``, then the new states (``<name>_out``) and ``dec_ctx_out``."""
        return ["codes", "frames"] + [f"{n}_out" for n in self.state_names] + ["dec_ctx_out"]

    def zero_inputs(self, batch: int = 1) -> dict[str, Tensor]:
        """All-zero inputs (the start of a stream, pending slots empty)."""
        return {n: torch.zeros(s, dtype=dt) for n, (s, dt) in self.input_shapes(batch).items()}

    # ------------------------------------------------------------------ graph
    def dequantize(self, codes: Tensor) -> Tensor:
        """(B, K, P, V) int64 -> (B, P, K, latent_dim): HRVQ latents (= ``Tokenizer.dequantize``)."""
        tok = self.tokenizer
        cfg = tok.config
        outs = []
        prev: list[Tensor] | None = None
        for i, p in enumerate(cfg.parts):
            qs = []
            for v in range(cfg.levels):
                q = F.embedding(codes[:, :, i, v], tok.quantizers[p][v].codebook)
                if cfg.chained and prev is not None:
                    q = q + tok.hints[p][v](prev[v])
                qs.append(q)
            outs.append(torch.stack(qs, 0).sum(0))
            prev = qs
        return torch.stack(outs, 1)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """Run one step; inputs and outputs as named by :meth:`input_names` / :meth:`output_names`."""
        ns = len(self.state_names)
        states = inputs[:ns]
        dec_ctx = inputs[ns]
        rest = inputs[ns + 1:]
        pend_codes, pend_window, pend_cond, pend_kind, window, cond, gumbel_base, gumbel_res = rest
        out = self.model.step(*states, pend_codes, pend_window, pend_cond, pend_kind, window, cond,
                              gumbel_base, gumbel_res)
        codes, new_states = out[0], out[1:]
        zq = self.dequantize(codes)  # (B, P, K, d)
        win = torch.cat([dec_ctx, zq], dim=2)  # (B, P, R + K, d)
        K = codes.shape[1]
        stride = self.tokenizer.stride
        frames = torch.cat([
            self.tokenizer.decoders[p](win[:, i].transpose(1, 2)).transpose(1, 2)[:, stride * self.context_tokens:]
            for i, p in enumerate(self.tokenizer.config.parts)
        ], dim=-1)
        return (codes, frames, *new_states, win[:, :, K:])
