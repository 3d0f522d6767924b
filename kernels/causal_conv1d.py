"""Depthwise causal 1-D convolution: the short convolution inside a Mamba block.

Reference semantics are those of the ``causal-conv1d`` package (Dao-AILab/causal-conv1d,
``causal_conv1d/causal_conv1d_interface.py``: ``causal_conv1d_ref`` and ``causal_conv1d_update_ref``),
rewritten here as a readable pure-PyTorch op; ``tests/test_kernels_mamba.py`` checks them against
golden outputs of the package's own reference functions (``tests/fixtures/mamba_golden.safetensors``).

For channel ``d`` with kernel ``w[d, 0..W-1]`` (``W`` = width) and input ``x[d, t]``::

    out[d, t] = act( bias[d] + sum_{k=0}^{W-1} w[d, k] * x[d, t - (W - 1) + k] )

with ``x[d, t] = 0`` (or the carried state) for ``t < 0``; ``act`` is identity or SiLU ("silu"/"swish").

Three entry points:

* :func:`causal_conv1d_ref` -- whole sequence, optionally continuing from ``initial_states``.
* :func:`causal_conv1d_update_ref` -- streaming update that writes the new state into ``conv_state``
  in place, exactly like the package (and like ``mamba_ssm``'s ``Mamba.step``).
* :func:`causal_conv1d_step` -- the same update written functionally (returns the new state, mutates
  nothing), which is what exports to ONNX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["causal_conv1d_ref", "causal_conv1d_update_ref", "causal_conv1d_step"]

_ACTIVATIONS = (None, "silu", "swish")


def _check_activation(activation: str | None) -> bool:
    """Return True when ``activation`` asks for SiLU; raise NotImplementedError like the package."""
    if activation not in _ACTIVATIONS:
        raise NotImplementedError(f"activation must be None, 'silu' or 'swish', got {activation!r}")
    return activation is not None


def _check_weight(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[int, int]:
    """Validate ``weight (dim, width)`` / ``bias (dim,)`` against ``x (batch, dim, ...)``."""
    if weight.dim() != 2:
        raise ValueError(f"weight must be (dim, width), got shape {tuple(weight.shape)}")
    dim, width = weight.shape
    if x.shape[1] != dim:
        raise ValueError(f"x has {x.shape[1]} channels but weight is for {dim} (x shape {tuple(x.shape)})")
    if bias is not None and tuple(bias.shape) != (dim,):
        raise ValueError(f"bias must be ({dim},), got shape {tuple(bias.shape)}")
    return dim, width


def causal_conv1d_ref(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    initial_states: Tensor | None = None,
    return_final_states: bool = False,
    final_states_out: Tensor | None = None,
    activation: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Depthwise causal convolution over a whole sequence (causal-conv1d's ``causal_conv1d_ref``).

    Args:
        x: ``(batch, dim, seqlen)`` input, any float dtype; computed in ``weight.dtype``.
        weight: ``(dim, width)`` per-channel kernel (a ``nn.Conv1d(groups=dim)`` weight
            ``(dim, 1, width)`` squeezed on axis 1). Tap ``width - 1`` multiplies the current sample.
        bias: ``(dim,)`` or None.
        initial_states: ``(batch, dim, width - 1)``: the ``width - 1`` inputs that came before
            ``x[..., 0]`` (oldest first), or None for zeros.
        return_final_states: also return the last ``width - 1`` inputs (the state to continue with).
        final_states_out: optional ``(batch, dim, width - 1)`` tensor the final states are copied into.
        activation: None, "silu" or "swish".

    Returns:
        ``out (batch, dim, seqlen)`` in ``x``'s dtype, or ``(out, final_states (batch, dim, width - 1))``
        when ``return_final_states``.

    Raises:
        NotImplementedError: unknown ``activation`` (same as the package).
        ValueError: shapes that do not fit together.
    """
    silu = _check_activation(activation)
    dim, width = _check_weight(x, weight, bias)
    dtype_in = x.dtype
    x = x.to(weight.dtype)
    seqlen = x.shape[-1]
    if initial_states is None:
        out = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=dim)
    else:
        if tuple(initial_states.shape) != (x.shape[0], dim, width - 1):
            raise ValueError(
                f"initial_states must be {(x.shape[0], dim, width - 1)}, got {tuple(initial_states.shape)}"
            )
        x = torch.cat([initial_states.to(x.dtype), x], dim=-1)
        out = F.conv1d(x, weight.unsqueeze(1), bias, padding=0, groups=dim)
    out = out[..., :seqlen]
    out = (F.silu(out) if silu else out).to(dtype_in)
    if not return_final_states:
        return out
    # Left-pad with zeros when fewer than width - 1 samples were seen, else keep the last width - 1.
    final_states = F.pad(x, (width - 1 - x.shape[-1], 0)).to(dtype_in)
    if final_states_out is not None:
        final_states_out.copy_(final_states)
        final_states = final_states_out
    return out, final_states


def causal_conv1d_update_ref(
    x: Tensor,
    conv_state: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str | None = None,
    cache_seqlens: Tensor | None = None,
) -> Tensor:
    """Streaming causal conv that updates ``conv_state`` IN PLACE (causal-conv1d's ``causal_conv1d_update_ref``).

    Args:
        x: ``(batch, dim)`` one new sample per channel, or ``(batch, dim, seqlen)`` several.
        conv_state: ``(batch, dim, state_len)`` with ``state_len >= width - 1``: the most recent inputs,
            oldest first. Overwritten with the last ``state_len`` inputs after appending ``x``.
            (Mamba uses ``state_len = d_conv = width``.)
        weight: ``(dim, width)``; bias: ``(dim,)`` or None; activation: None, "silu" or "swish".
        cache_seqlens: optional ``(batch,)`` int tensor; when given, ``conv_state`` is a circular buffer
            and ``x`` is written at index ``cache_seqlens % state_len`` (the package's semantics).

    Returns:
        ``out`` with ``x``'s shape and dtype.

    Raises:
        NotImplementedError: unknown ``activation``. ValueError: mismatched shapes.
    """
    silu = _check_activation(activation)
    dtype_in = x.dtype
    unsqueeze = x.dim() == 2
    if unsqueeze:
        x = x.unsqueeze(-1)
    dim, width = _check_weight(x, weight, bias)
    batch, _, seqlen = x.shape
    state_len = conv_state.shape[-1]
    if tuple(conv_state.shape) != (batch, dim, state_len) or state_len < width - 1:
        raise ValueError(
            f"conv_state must be (batch={batch}, dim={dim}, state_len>={width - 1}), got {tuple(conv_state.shape)}"
        )
    if cache_seqlens is None:
        x_new = torch.cat([conv_state, x.to(conv_state.dtype)], dim=-1).to(weight.dtype)
        conv_state.copy_(x_new[:, :, -state_len:])
    else:
        offsets = torch.arange(-(width - 1), 0, dtype=torch.long, device=x.device)
        read_idx = torch.remainder(offsets.unsqueeze(0) + cache_seqlens.long().unsqueeze(1), state_len)
        read_idx = read_idx.unsqueeze(1).expand(-1, dim, -1)
        x_new = torch.cat([conv_state.gather(2, read_idx), x.to(conv_state.dtype)], dim=-1).to(weight.dtype)
        steps = torch.arange(seqlen, dtype=torch.long, device=x.device)
        write_idx = torch.remainder(steps.unsqueeze(0) + cache_seqlens.long().unsqueeze(1), state_len)
        conv_state.scatter_(2, write_idx.unsqueeze(1).expand(-1, dim, -1), x.to(conv_state.dtype))
    out = F.conv1d(x_new, weight.unsqueeze(1), bias, padding=0, groups=dim)[:, :, -seqlen:]
    if unsqueeze:
        out = out.squeeze(-1)
    return (F.silu(out) if silu else out).to(dtype_in)


def causal_conv1d_step(
    x: Tensor,
    conv_state: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str | None = None,
) -> tuple[Tensor, Tensor]:
    """One streaming step, functional: same maths as :func:`causal_conv1d_update_ref` for one sample.

    Mutates nothing, uses only cat/slice/mul/sum, so it traces and exports to ONNX (opset 17).

    Args:
        x: ``(batch, dim)`` the new sample.
        conv_state: ``(batch, dim, state_len)``, ``state_len >= width - 1``, oldest sample first.
        weight: ``(dim, width)``; bias: ``(dim,)`` or None; activation: None, "silu" or "swish".

    Returns:
        ``(out (batch, dim) in x's dtype, new_conv_state (batch, dim, state_len) in conv_state's dtype)``
        where ``new_conv_state = cat(conv_state[..., 1:], x)``.

    Raises:
        NotImplementedError: unknown ``activation``. ValueError: ``x`` not 2-D or width > state_len + 1.
    """
    silu = _check_activation(activation)
    if x.dim() != 2:
        raise ValueError(f"x must be (batch, dim) for one step, got shape {tuple(x.shape)}")
    width = weight.shape[-1]
    if not torch.jit.is_tracing() and width > conv_state.shape[-1] + 1:
        raise ValueError(f"conv_state holds {conv_state.shape[-1]} samples, width {width} needs >= {width - 1}")
    full = torch.cat([conv_state, x.unsqueeze(-1).to(conv_state.dtype)], dim=-1)  # (batch, dim, state_len + 1)
    new_state = full[:, :, 1:]
    window = full[:, :, full.shape[-1] - width :].to(weight.dtype)
    out = (window * weight).sum(dim=-1)
    if bias is not None:
        out = out + bias
    out = F.silu(out) if silu else out
    return out.to(x.dtype), new_state
