"""Selective scan (the S6 layer of Mamba): readable reference, functional step, fast CPU scan.

Implements the discretised selective state-space model of Gu & Dao, "Mamba: Linear-Time Sequence
Modeling with Selective State Spaces" (2023), Algorithm 2 and Eqs. (2a)-(2b), with the zero-order-hold
discretisation of Eq. (4) as simplified in mamba_ssm (``dA = exp(delta * A)``, ``dB = delta * B``)::

    delta_t = softplus(delta_t + delta_bias)              (if delta_softplus)
    h_t     = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t        (state, per channel d, per n)
    y_t     = sum_n C_{t,n} h_{t,n} + D * u_t
    out_t   = y_t * silu(z_t)                               (if z is given)

Signatures, shapes and maths follow ``mamba_ssm`` (state-spaces/mamba):
``mamba_ssm/ops/selective_scan_interface.py::selective_scan_ref`` and
``mamba_ssm/ops/triton/selective_state_update.py::selective_state_update_ref``; the tests check them
against golden outputs of those functions (``tests/fixtures/mamba_golden.safetensors``).

Entry points:

* :func:`selective_scan_ref` -- whole sequence, one Python step per token (readable, slow).
* :func:`selective_scan_fast` -- same result; time-major, chunked tight loop (one fused
  multiply-add per token) for CPU; also takes an ``initial_state`` so a sequence can be scanned in blocks.
* :func:`selective_state_update_ref` -- one token, updates ``state`` IN PLACE like mamba_ssm.
* :func:`selective_state_step` -- one token, functional (returns the new state): exports to ONNX.

Shape letters: ``b`` batch, ``d`` channels (``d_inner``), ``n`` state size (``d_state``), ``l`` tokens,
``g`` groups of channels sharing B/C, ``h`` heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "selective_scan_ref",
    "selective_scan_fast",
    "selective_state_update_ref",
    "selective_state_step",
]


def _as_complex_pairs(t: Tensor) -> Tensor:
    """``(..., 2L)`` real tensor of interleaved (re, im) pairs -> ``(..., L)`` complex64."""
    return torch.view_as_complex(t.float().reshape(*t.shape[:-1], t.shape[-1] // 2, 2).contiguous())


def _expand_groups(t: Tensor, dim: int) -> Tensor:
    """``(b, g, n, l)`` -> ``(b, dim, n, l)``: group ``j`` serves channels ``j*dim/g .. (j+1)*dim/g - 1``."""
    groups = t.shape[1]
    if dim % groups != 0:
        raise ValueError(f"channels ({dim}) must be divisible by the number of B/C groups ({groups})")
    return t.repeat_interleave(dim // groups, dim=1)


def _prepare_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> Tensor:
    """float32 delta with bias added (broadcast over ``l``) and softplus applied when asked."""
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    return F.softplus(delta) if delta_softplus else delta


def _finish(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None, dtype_in: torch.dtype) -> Tensor:
    """``out = (y + D * u) * silu(z)`` on ``(b, d, l)`` float tensors, cast to ``dtype_in``."""
    out = y if D is None else y + u * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    return out.to(dtype_in)


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan over a whole sequence, one token at a time (mamba_ssm's ``selective_scan_ref``).

    Args:
        u: ``(b, d, l)`` input; delta: ``(b, d, l)`` step sizes (before bias/softplus).
        A: ``(d, n)`` real (float32) or complex state matrix diagonal (negative real part for stability).
        B: ``(d, n)`` constant, ``(b, n, l)`` input-dependent, or ``(b, g, n, l)`` grouped. For complex
            ``A`` an input-dependent B is real with interleaved (re, im) pairs on the last axis
            (``(b, n, 2l)`` / ``(b, g, n, 2l)``).
        C: same forms as ``B``.
        D: ``(d,)`` skip connection or None; z: ``(b, d, l)`` gate or None; delta_bias: ``(d,)`` or None.
        delta_softplus: apply softplus to ``delta + delta_bias``.
        return_last_state: also return the state after the last token.

    Returns:
        ``out (b, d, l)`` in ``u``'s dtype, or ``(out, last_state (b, d, n))``; ``last_state`` is float32
        (complex64 for complex ``A``). For complex ``A`` the output is ``2 * Re(y)`` (the conjugate pair).

    Raises:
        ValueError: when the number of groups does not divide ``d``.
    """
    dtype_in = u.dtype
    u = u.float()
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    variable_B, variable_C = B.dim() >= 3, C.dim() >= 3
    if A.is_complex():
        B = _as_complex_pairs(B) if variable_B else B
        C = _as_complex_pairs(C) if variable_C else C
    else:
        B, C = B.float(), C.float()
    if B.dim() == 4:
        B = _expand_groups(B, dim)
    if C.dim() == 4:
        C = _expand_groups(C, dim)

    # Discretise: dA[b,d,l,n] = exp(delta * A);  dBu[b,d,l,n] = delta * B * u.
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    if B.dim() == 2:
        deltaB_u = torch.einsum("bdl,dn,bdl->bdln", delta, B, u)
    elif B.dim() == 3:
        deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    else:
        deltaB_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)

    x = A.new_zeros((batch, dim, dstate))
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        if C.dim() == 2:
            y = torch.einsum("bdn,dn->bd", x, C)
        elif C.dim() == 3:
            y = torch.einsum("bdn,bn->bd", x, C[:, :, i])
        else:
            y = torch.einsum("bdn,bdn->bd", x, C[:, :, :, i])
        if y.is_complex():
            y = y.real * 2
        ys.append(y)
    out = _finish(torch.stack(ys, dim=2), u, D, z, dtype_in)
    return (out, x) if return_last_state else out


def _time_major(t: Tensor, dim: int, start: int, stop: int) -> Tensor:
    """B or C slice for tokens ``start:stop`` as a ``(l, b|1, d|1, n)`` float32 tensor (broadcastable)."""
    if t.dim() == 2:  # (d, n) constant
        return t.float()[None, None]
    if t.dim() == 3:  # (b, n, l)
        return t[:, :, start:stop].float().permute(2, 0, 1).unsqueeze(2)
    return _expand_groups(t[..., start:stop].float(), dim).permute(3, 0, 1, 2)  # (b, g, n, l)


def selective_scan_fast(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    initial_state: Tensor | None = None,
    chunk_size: int = 16,
) -> Tensor | tuple[Tensor, Tensor]:
    """Fast CPU selective scan: same arguments and result as :func:`selective_scan_ref`, plus ``initial_state``.

    Tokens are processed in chunks of ``chunk_size``. For each chunk the discretised ``dA`` and ``dBu``
    are built at once in time-major layout ``(l, b, d, n)`` so that each token's slice is contiguous;
    the recurrence ``h_t = dA_t * h_{t-1} + dBu_t`` is then one fused multiply-add per token
    (written in place into the ``dBu`` buffer when autograd is off), and the read-out
    ``y_t = C_t . h_t`` is one multiply-and-sum per chunk. Memory is ``O(chunk_size * b * d * n)``.
    Autograd works (an out-of-place loop is used when gradients are needed).

    Args:
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state: as in
            :func:`selective_scan_ref`. Complex ``A`` falls back to the reference.
        initial_state: ``(b, d, n)`` state before the first token (float32), or None for zeros; lets a
            long sequence be scanned block by block (pass the previous block's ``last_state``).
        chunk_size: tokens per chunk (> 0).

    Returns:
        ``out (b, d, l)`` in ``u``'s dtype, or ``(out, last_state (b, d, n) float32)``.

    Raises:
        ValueError: ``chunk_size < 1``, a bad ``initial_state`` shape, or groups that do not divide ``d``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if A.is_complex():
        if initial_state is not None:
            raise ValueError("initial_state is not supported for complex A")
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    dtype_in = u.dtype
    u = u.float()
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    A = A.float()
    if initial_state is None:
        h = u.new_zeros((batch, dim, dstate))
    else:
        if tuple(initial_state.shape) != (batch, dim, dstate):
            raise ValueError(f"initial_state must be {(batch, dim, dstate)}, got {tuple(initial_state.shape)}")
        h = initial_state.float()
    track_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, initial_state)
    )
    du_t = (delta * u).permute(2, 0, 1)  # (l, b, d)
    delta_t = delta.permute(2, 0, 1)  # (l, b, d)
    ys = []
    for start in range(0, seqlen, chunk_size):
        stop = min(start + chunk_size, seqlen)
        dA = (delta_t[start:stop, :, :, None] * A).exp_()  # (l, b, d, n)
        dBu = du_t[start:stop, :, :, None] * _time_major(B, dim, start, stop)  # (l, b, d, n)
        if track_grad:
            states = []
            for i in range(stop - start):
                h = torch.addcmul(dBu[i], dA[i], h)
                states.append(h)
            H = torch.stack(states)
        else:
            dBu = dBu.contiguous()
            dBu[0].addcmul_(dA[0], h)
            for i in range(1, stop - start):
                dBu[i].addcmul_(dA[i], dBu[i - 1])
            H = dBu
            h = H[-1]
        ys.append((H * _time_major(C, dim, start, stop)).sum(-1))  # (l, b, d)
    y = torch.cat(ys, dim=0).permute(1, 2, 0) if ys else u.new_zeros((batch, dim, 0))
    out = _finish(y, u, D, z, dtype_in)
    return (out, h.clone() if not track_grad else h) if return_last_state else out


def _selective_state_step_math(
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    dt_bias: Tensor | None,
    dt_softplus: bool,
) -> tuple[Tensor, Tensor]:
    """Shared maths of the one-token update; returns ``(out, new_state)`` without mutating anything."""
    has_heads = state.dim() > 3
    if state.dim() == 3:
        state = state.unsqueeze(1)
    x = x.unsqueeze(1) if x.dim() == 2 else x
    dt = dt.unsqueeze(1) if dt.dim() == 2 else dt
    A = A.unsqueeze(0) if A.dim() == 2 else A
    B = B.unsqueeze(1) if B.dim() == 2 else B
    C = C.unsqueeze(1) if C.dim() == 2 else C
    D = D.unsqueeze(0) if D is not None and D.dim() == 1 else D
    z = z.unsqueeze(1) if z is not None and z.dim() == 2 else z
    dt_bias = dt_bias.unsqueeze(0) if dt_bias is not None and dt_bias.dim() == 1 else dt_bias
    batch, nheads, dim, dstate = state.shape
    ngroups = B.shape[1]
    if not torch.jit.is_tracing():  # shape checks would only be constant-folded (and warned about) in a trace
        if tuple(x.shape) != (batch, nheads, dim) or dt.shape != x.shape:
            raise ValueError(f"x and dt must be {(batch, nheads, dim)}, got {tuple(x.shape)} and {tuple(dt.shape)}")
        if tuple(A.shape) != (nheads, dim, dstate):
            raise ValueError(f"A must be {(nheads, dim, dstate)}, got {tuple(A.shape)}")
        if nheads % ngroups != 0 or tuple(B.shape) != (batch, ngroups, dstate) or C.shape != B.shape:
            raise ValueError(
                f"B and C must be (batch={batch}, groups dividing {nheads}, {dstate}), "
                f"got {tuple(B.shape)} and {tuple(C.shape)}"
            )
        if D is not None and tuple(D.shape) != (nheads, dim):
            raise ValueError(f"D must be {(nheads, dim)}, got {tuple(D.shape)}")
        if z is not None and z.shape != x.shape:
            raise ValueError(f"z must be {tuple(x.shape)}, got {tuple(z.shape)}")
        if dt_bias is not None and tuple(dt_bias.shape) != (nheads, dim):
            raise ValueError(f"dt_bias must be {(nheads, dim)}, got {tuple(dt_bias.shape)}")
    if dt_bias is not None:
        dt = dt + dt_bias
    dt = F.softplus(dt) if dt_softplus else dt
    dA = torch.exp(dt.unsqueeze(-1) * A)  # (b, h, d, n)
    # Group j serves heads j*h/g .. (j+1)*h/g - 1 (einops "b g n -> b (g h) n"); no branch, so it traces.
    B = B.unsqueeze(2).expand(batch, ngroups, nheads // ngroups, dstate).reshape(batch, nheads, dstate)
    C = C.unsqueeze(2).expand(batch, ngroups, nheads // ngroups, dstate).reshape(batch, nheads, dstate)
    dB = dt.unsqueeze(-1) * B.unsqueeze(2)  # (b, h, d, n)
    new_state = (state * dA + dB * x.unsqueeze(-1)).to(state.dtype)
    out = torch.matmul(new_state.to(C.dtype), C.unsqueeze(-1)).squeeze(-1)  # (b, h, d)
    if D is not None:
        out = out + (x * D).to(out.dtype)
    out = (out if z is None else out * F.silu(z)).to(x.dtype)
    if not has_heads:
        out, new_state = out.squeeze(1), new_state.squeeze(1)
    return out, new_state


def selective_state_update_ref(
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
) -> Tensor:
    """One-token selective-state update, writing the new state into ``state`` IN PLACE.

    Same signature and maths as mamba_ssm's ``selective_state_update_ref`` (Mamba paper Eq. 2a/2b for a
    single step). Shapes (without / with heads):

    * state ``(b, d, n)`` / ``(b, h, d, n)``; x, dt, z ``(b, d)`` / ``(b, h, d)``
    * A ``(d, n)`` / ``(h, d, n)``; B, C ``(b, n)`` / ``(b, g, n)`` with ``g`` dividing ``h``
    * D, dt_bias ``(d,)`` / ``(h, d)``

    Returns:
        ``out`` ``(b, d)`` / ``(b, h, d)`` in ``x``'s dtype.

    Raises:
        ValueError: shapes that do not fit together.
    """
    out, new_state = _selective_state_step_math(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
    state.copy_(new_state)
    return out


def selective_state_step(
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
) -> tuple[Tensor, Tensor]:
    """Functional one-token update: :func:`selective_state_update_ref` without the in-place write.

    Arguments and shapes as :func:`selective_state_update_ref`. Mutates nothing (ONNX-exportable).

    Returns:
        ``(out, new_state)``: ``out`` like ``x`` (dtype of ``x``), ``new_state`` like ``state`` (its dtype).

    Raises:
        ValueError: shapes that do not fit together.
    """
    return _selective_state_step_math(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
