"""Chunked mask-predict decoding (MaskGIT, Chang et al. CVPR 2022, Sec. 3.2, Eq. 3) with fixed shapes.

A chunk of P positions (K token slots x parts) starts fully masked. Iteration i = 0..N-1 predicts every
masked position, samples a code per position (Gumbel-max with noise passed in, so the result is a
deterministic function of the inputs and exports to ONNX), keeps the codes already fixed, and re-masks
the ``n_i`` least confident new ones, with the cosine schedule of MaskGIT Eq. 3:

    n_i = floor(P * cos(pi / 2 * (i + 1) / N)),    n_{N-1} = 0,

clamped to [1, n_{i-1} - 1] before the last iteration as MaskGIT's reference sampler does
(:func:`cosine_mask_counts`).

Confidence is the sampled code's probability (log-softmax); fixed positions never get re-masked.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cosine_mask_counts", "gumbel_sample", "remask_least_confident", "mask_predict", "training_mask"]


def cosine_mask_counts(n_positions: int, n_iters: int) -> list[int]:
    """Positions still masked after each of the ``n_iters`` iterations (MaskGIT Eq. 3); the last is 0.

    As in MaskGIT's reference sampler (``mask_len = max(1, min(unknown - 1, mask_len))``), every iteration but the
    last fixes at least one new position and leaves at least one masked: the counts fall strictly while
    ``n_iters <= n_positions`` (the cosine's floor alone stalls, e.g. 8 positions in 8 iterations gave
    7, 7, 6, ...), and stay at 1 until the last iteration when there are more iterations than positions.
    """
    counts, unknown = [], int(n_positions)
    for i in range(n_iters):
        c = 0 if i == n_iters - 1 else max(1, min(unknown - 1,
                                                 int(math.floor(n_positions * math.cos(math.pi / 2 * (i + 1) / n_iters)))))
        counts.append(c)
        unknown = c
    return counts


def gumbel_sample(logits: Tensor, gumbel: Tensor, temperature: float, top_k: int = 0,
                  min_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """Gumbel-max sampling with given noise, optionally truncated to the ``top_k`` most likely codes
    and/or to the codes at least ``min_p`` times as likely as the most likely one.

    Args:
        logits: (..., C) float.
        gumbel: (..., C) float Gumbel(0, 1) noise (zeros: greedy argmax).
        temperature: softmax temperature (> 0).
        top_k: sample among the k most likely codes (top-k sampling, Fan et al. 2018); 0 or >= C: all.
            A Python int, so exported graphs keep fixed shapes.
        min_p: min-p sampling (Nguyen et al. 2024, "Turning up the heat: min-p sampling"): keep the codes
            whose probability at ``temperature`` is at least ``min_p`` times the largest one, i.e.
            ``log p_i >= max_j log p_j + temperature * log(min_p)`` in the untempered log-probabilities.
            Unlike top-k the cut adapts to how sure the model is: a peaked distribution keeps few codes,
            a flat one many. 0 = off. A Python float (baked into exported graphs).
    Returns:
        ``(codes (...,) int64, log-probability of each sampled code (...,) float)`` (the log-probability
        under the full softmax, before the top-k / min-p cut).
    """
    logp = F.log_softmax(logits, dim=-1)
    score = logp / temperature + gumbel
    if 0 < top_k < logits.shape[-1]:
        # (ReduceMin, not a [..., -1:] slice: the TorchScript ONNX exporter slices the wrong axis there)
        kth = torch.topk(logp, top_k, dim=-1).values.amin(dim=-1, keepdim=True)
        score = torch.where(logp >= kth, score, torch.full_like(score, -1e9))
    if min_p > 0.0:
        floor = logp.amax(dim=-1, keepdim=True) + temperature * math.log(min_p)
        score = torch.where(logp >= floor, score, torch.full_like(score, -1e9))
    codes = torch.argmax(score, dim=-1)
    conf = torch.gather(logp, -1, codes.unsqueeze(-1)).squeeze(-1)
    return codes, conf


def remask_least_confident(conf: Tensor, known: Tensor, n_mask: int) -> Tensor:
    """New mask: the ``n_mask`` least confident positions among those not yet fixed.

    Args:
        conf: (B, P) float confidences. known: (B, P) bool, positions fixed before this iteration.
        n_mask: how many to mask (a Python int, so the graph has fixed shapes).
    Returns:
        (B, P) bool, True = masked again.
    """
    score = torch.where(known, torch.full_like(conf, 1e9), conf)
    idx = torch.topk(-score, n_mask, dim=-1).indices
    return torch.zeros_like(known).scatter(-1, idx, torch.ones_like(idx, dtype=torch.bool))


def mask_predict(
    logits_fn: Callable[[Tensor, Tensor], Tensor], batch: int, n_positions: int, gumbel: Tensor, temperature: float,
    n_iters: int, top_k: int = 0, min_p: float = 0.0,
) -> Tensor:
    """Run the iterations.

    Args:
        logits_fn: ``(codes (B, P) int64, masked (B, P) bool) -> logits (B, P, C)``.
        batch, n_positions: B and P.
        gumbel: (B, N, P, C) noise, N = iterations.
        temperature: sampling temperature.
        n_iters: N (a Python int: the loop is unrolled in exported graphs).
        top_k: top-k sampling (see :func:`gumbel_sample`; 0 = off).
        min_p: min-p sampling (see :func:`gumbel_sample`; 0 = off).
    Returns:
        (B, P) int64 codes.
    """
    counts = cosine_mask_counts(n_positions, n_iters)
    codes = torch.zeros(batch, n_positions, dtype=torch.long, device=gumbel.device)
    known = torch.zeros(batch, n_positions, dtype=torch.bool, device=gumbel.device)
    for i in range(n_iters):
        logits = logits_fn(codes, ~known)
        new, conf = gumbel_sample(logits, gumbel[:, i], temperature, top_k, min_p)
        codes = torch.where(known, codes, new)
        if counts[i] == 0:
            known = torch.ones_like(known)
        else:
            known = ~remask_least_confident(conf, known, counts[i])
    return codes


def training_mask(shape: tuple[int, ...], n_positions: int, device: torch.device | None = None) -> Tensor:
    """Random training masks: per example ``n = ceil(cos(pi/2 * r) * P)``, r ~ U(0, 1), n in [1, P] (MaskGIT).

    Args:
        shape: leading shape of the examples. n_positions: P.
    Returns:
        (*shape, P) bool, True = masked. Uses torch's global RNG.
    """
    r = torch.rand(*shape, device=device)
    n = torch.ceil(torch.cos(math.pi / 2 * r) * n_positions).clamp(1, n_positions)
    ranks = torch.rand(*shape, n_positions, device=device).argsort(-1).argsort(-1)
    return ranks < n.unsqueeze(-1)
