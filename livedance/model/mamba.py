"""Pure-PyTorch Mamba (v1) block with a functional, ONNX-exportable recurrent ``step``.

Implements the Mamba block of Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State
Spaces" (2023), Fig. 3 / Algorithm 2, exactly as ``mamba_ssm.modules.mamba_simple.Mamba``
(state-spaces/mamba) computes it::

    x, z   = in_proj(h).chunk(2)                         # (B, L, d_inner) each
    x      = silu(causal_conv1d(x))                      # depthwise, width d_conv
    dt, B, C = split(x_proj(x), [dt_rank, d_state, d_state])
    dt     = dt_proj.weight @ dt   (+ dt_proj.bias inside the scan, then softplus)
    y      = selective_scan(x, dt, A = -exp(A_log), B, C, D, z)   # Eq. (2a)-(2b)
    out    = out_proj(y)

Parameter names and shapes are mamba_ssm's (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``,
``D``, ``out_proj``), and the constructor consumes the random generator in the same order with the same
initialisation, so ``torch.manual_seed(s); Mamba(...)`` gives the same weights as mamba_ssm and state
dicts load both ways (``tests/test_mamba.py`` checks both against ``tests/fixtures/mamba_golden.safetensors``).

On CPU everything runs on :mod:`livedance.kernels` (a chunked selective scan for whole sequences, the
functional step ops for ``step``). When ``mamba_ssm`` is importable and the tensors are on CUDA, its
fused kernels are used instead (``selective_scan_fn``, ``causal_conv1d_fn``/``causal_conv1d_update``,
Triton ``selective_state_update``); they are imported lazily, never on a CPU path. See docs/gpu.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from livedance.errors import ConfigError
from livedance.kernels.causal_conv1d import causal_conv1d_ref, causal_conv1d_step
from livedance.kernels.selective_scan import selective_scan_fast, selective_state_step

__all__ = ["Mamba", "MambaConfig", "MambaStep", "cuda_kernels"]


@dataclass(frozen=True)
class MambaConfig:
    """Hyper-parameters of one Mamba block (defaults are mamba_ssm's).

    Attributes:
        d_model: model width D (input and output features per token).
        d_state: SSM state size N per channel.
        d_conv: width of the depthwise causal convolution (tokens).
        expand: d_inner = expand * d_model.
        dt_rank: rank of the dt projection, or "auto" = ceil(d_model / 16).
        dt_min, dt_max: range of softplus(dt_proj.bias) at init (log-uniform), in units of the token step.
        dt_init: "random" (uniform +-dt_rank^-0.5 * dt_scale) or "constant" init of dt_proj.weight.
        dt_scale: scale of the dt_proj.weight init.
        dt_init_floor: lower clamp of the initial dt.
        conv_bias: conv1d has a bias.
        bias: in_proj / out_proj have biases.
    """

    d_model: int
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | Literal["auto"] = "auto"
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init: Literal["random", "constant"] = "random"
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False


@functools.lru_cache(maxsize=1)
def cuda_kernels() -> SimpleNamespace | None:
    """mamba_ssm / causal_conv1d CUDA and Triton kernels, or None when mamba_ssm cannot be imported.

    Returns a namespace with ``selective_scan_fn`` (required) and ``causal_conv1d_fn``,
    ``causal_conv1d_update``, ``selective_state_update`` (each None when missing). Imported on first
    call only (memoised), and only called for CUDA tensors.
    """
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a missing compiled extension raising something else
        return None
    ns = SimpleNamespace(
        selective_scan_fn=selective_scan_fn,
        causal_conv1d_fn=None,
        causal_conv1d_update=None,
        selective_state_update=None,
    )
    try:
        from causal_conv1d import causal_conv1d_fn, causal_conv1d_update

        ns.causal_conv1d_fn, ns.causal_conv1d_update = causal_conv1d_fn, causal_conv1d_update
    except Exception:
        pass
    try:
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update

        ns.selective_state_update = selective_state_update
    except Exception:
        pass
    return ns


class Mamba(nn.Module):
    """Mamba (v1) block, state-dict compatible with ``mamba_ssm.modules.mamba_simple.Mamba``.

    Args:
        d_model, d_state, d_conv, expand, dt_rank, dt_min, dt_max, dt_init, dt_scale, dt_init_floor,
        conv_bias, bias: see :class:`MambaConfig` (same meaning and defaults as mamba_ssm).
        use_fast_path: allow mamba_ssm's CUDA kernels for CUDA tensors (ignored on CPU).
        layer_idx: index of this block in a stack (kept for mamba_ssm compatibility; unused here).
        device, dtype: factory arguments for the parameters; A_log and D are created in float32 whatever
            ``dtype`` (as mamba_ssm), but a later ``.to(dtype)`` / ``.double()`` / ``.half()`` converts them like
            every parameter. The scan reads them as float32 (``A_log.float()``, ``D.float()``) on the sequence
            path; the recurrent :meth:`step` takes A as float32 and D as stored.

    Shapes: ``d_inner = expand * d_model``. Parameters: ``in_proj.weight (2*d_inner, d_model)``,
    ``conv1d.weight (d_inner, 1, d_conv)``, ``conv1d.bias (d_inner,)``,
    ``x_proj.weight (dt_rank + 2*d_state, d_inner)``, ``dt_proj.weight (d_inner, dt_rank)``,
    ``dt_proj.bias (d_inner,)``, ``A_log (d_inner, d_state)``, ``D (d_inner,)``,
    ``out_proj.weight (d_model, d_inner)``.

    Recurrent state for :meth:`step`: ``conv_state (B, d_inner, d_conv)`` (the last ``d_conv`` conv
    inputs, oldest first) and ``ssm_state (B, d_inner, d_state)``.

    Raises:
        ConfigError: non-positive sizes, or ``dt_init`` not "random"/"constant".
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | Literal["auto"] = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: Literal["random", "constant"] = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_fast_path: bool = True,
        layer_idx: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("d_state", d_state), ("d_conv", d_conv), ("expand", expand)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"Mamba {name} must be a positive int, got {value!r}")
        if dt_rank != "auto" and (not isinstance(dt_rank, int) or dt_rank < 1):
            raise ConfigError(f"Mamba dt_rank must be 'auto' or a positive int, got {dt_rank!r}")
        if dt_init not in ("random", "constant"):
            raise ConfigError(f"Mamba dt_init must be 'random' or 'constant', got {dt_init!r}")
        if not 0 < dt_min <= dt_max:
            raise ConfigError(f"Mamba needs 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        factory = {"device": device, "dtype": dtype}
        self.config = MambaConfig(
            d_model, d_state, d_conv, expand, dt_rank, dt_min, dt_max, dt_init, dt_scale, dt_init_floor,
            conv_bias, bias,
        )
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.use_fast_path = use_fast_path
        self.layer_idx = layer_idx
        self.activation = "silu"

        # Module creation order matters: it fixes how the RNG is consumed (same as mamba_ssm).
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias, **factory)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner, padding=d_conv - 1,
            bias=conv_bias, **factory,
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **factory)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory)

        # dt_proj.weight keeps the variance of dt at init.
        dt_init_std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, dt_init_std)
        else:
            nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        # dt_proj.bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max].
        dt = torch.exp(
            torch.rand(self.d_inner, **factory) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        inv_dt = dt + torch.log(-torch.expm1(-dt))
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_dt)
        self.dt_proj.bias._no_reinit = True  # type: ignore[attr-defined]

        # S4D-real init: A[d, n] = -(n + 1); stored as log(-A) in float32.
        A = torch.arange(1, d_state + 1, dtype=torch.float32, device=device).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True  # type: ignore[attr-defined]
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))
        self.D._no_weight_decay = True  # type: ignore[attr-defined]

        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory)

    @classmethod
    def from_config(cls, config: MambaConfig, **kwargs: object) -> "Mamba":
        """Build a block from a :class:`MambaConfig`; ``kwargs`` go to the constructor (layer_idx, device, ...)."""
        return cls(**vars(config), **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ helpers
    def _use_cuda_kernels(self, t: Tensor) -> SimpleNamespace | None:
        """mamba_ssm kernels when allowed, on CUDA, and importable; else None (pure PyTorch)."""
        if not (self.use_fast_path and t.is_cuda):
            return None
        return cuda_kernels()

    def _conv_weight(self) -> Tensor:
        """Depthwise conv kernel as ``(d_inner, d_conv)``."""
        return self.conv1d.weight.squeeze(1)

    def _check_input(self, hidden_states: Tensor, what: str) -> None:
        if not torch.jit.is_tracing() and hidden_states.shape[-1] != self.d_model:
            raise ValueError(
                f"Mamba {what}: last dimension must be d_model={self.d_model}, got shape {tuple(hidden_states.shape)}"
            )

    # ------------------------------------------------------------------ full sequence
    def forward(self, hidden_states: Tensor) -> Tensor:
        """Run the block over whole sequences (causal: token t sees tokens <= t only).

        Args:
            hidden_states: ``(B, L, d_model)``.

        Returns:
            ``(B, L, d_model)`` in the input's dtype.

        Raises:
            ValueError: wrong rank or last dimension.
        """
        out, _, _ = self.forward_with_states(hidden_states)
        return out

    def forward_with_states(
        self,
        hidden_states: Tensor,
        conv_state: Tensor | None = None,
        ssm_state: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Full-sequence forward that starts from, and returns, the recurrent state (a "prefill").

        ``forward_with_states(x[:, :k], s0)`` followed by ``forward_with_states(x[:, k:], s1)`` (or by
        :meth:`step` per token) equals ``forward(x)`` on the whole sequence.

        Args:
            hidden_states: ``(B, L, d_model)``.
            conv_state: ``(B, d_inner, d_conv)`` or None (zeros = start of the stream).
            ssm_state: ``(B, d_inner, d_state)`` or None (zeros).

        Returns:
            ``(out (B, L, d_model), conv_state (B, d_inner, d_conv), ssm_state (B, d_inner, d_state) float32)``;
            new tensors, the inputs are not modified.

        Raises:
            ValueError: wrong shapes.
        """
        if hidden_states.dim() != 3:
            raise ValueError(f"Mamba forward expects (B, L, d_model), got shape {tuple(hidden_states.shape)}")
        self._check_input(hidden_states, "forward")
        batch, seqlen, _ = hidden_states.shape
        xz = self.in_proj(hidden_states).transpose(1, 2)  # (B, 2*d_inner, L)
        x, z = xz.chunk(2, dim=1)
        A = -torch.exp(self.A_log.float())  # (d_inner, d_state)
        weight = self._conv_weight()
        kernels = self._use_cuda_kernels(hidden_states)

        # New conv state = last d_conv conv inputs (zero-padded on the left), as mamba_ssm stores it.
        history = x if conv_state is None else torch.cat([conv_state.to(x.dtype), x], dim=-1)
        new_conv_state = F.pad(history, (self.d_conv - history.shape[-1], 0))

        initial = None if conv_state is None else conv_state[:, :, 1:].to(x.dtype)
        if kernels is not None and kernels.causal_conv1d_fn is not None and initial is None:
            x = kernels.causal_conv1d_fn(x=x, weight=weight, bias=self.conv1d.bias, activation=self.activation)
        else:
            x = causal_conv1d_ref(x, weight, self.conv1d.bias, initial_states=initial, activation=self.activation)

        x_dbl = self.x_proj(x.transpose(1, 2))  # (B, L, dt_rank + 2*d_state)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # (B, d_inner, L), bias added in the scan
        B = B.transpose(1, 2).contiguous()  # (B, d_state, L)
        C = C.transpose(1, 2).contiguous()
        scan_args = (x, dt, A, B, C, self.D.float())
        scan_kwargs = {"z": z, "delta_bias": self.dt_proj.bias.float(), "delta_softplus": True,
                       "return_last_state": True}
        if kernels is not None and ssm_state is None:
            y, last_state = kernels.selective_scan_fn(*scan_args, **scan_kwargs)
        else:
            y, last_state = selective_scan_fast(*scan_args, initial_state=ssm_state, **scan_kwargs)
        out = self.out_proj(y.transpose(1, 2))
        return out, new_conv_state, last_state

    # ------------------------------------------------------------------ one token
    def step(self, hidden_states: Tensor, conv_state: Tensor, ssm_state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Advance the block by one token, functionally (nothing is mutated; exports to ONNX).

        Args:
            hidden_states: ``(B, 1, d_model)`` or ``(B, d_model)``: the new token.
            conv_state: ``(B, d_inner, d_conv)`` from :meth:`allocate_inference_cache` or the last step.
            ssm_state: ``(B, d_inner, d_state)``.

        Returns:
            ``(out, conv_state, ssm_state)``: ``out`` has the input's shape and dtype; the states are new
            tensors with the shapes and dtypes of the ones passed in.

        Raises:
            ValueError: a sequence of more than one token, or wrong last dimension.
        """
        self._check_input(hidden_states, "step")
        if hidden_states.dim() == 3:
            if hidden_states.shape[1] != 1:
                raise ValueError(f"Mamba step takes one token, got shape {tuple(hidden_states.shape)}")
            token = hidden_states.squeeze(1)
        elif hidden_states.dim() == 2:
            token = hidden_states
        else:
            raise ValueError(f"Mamba step expects (B, 1, d_model) or (B, d_model), got {tuple(hidden_states.shape)}")
        dtype = token.dtype
        xz = self.in_proj(token)  # (B, 2*d_inner)
        x, z = xz.chunk(2, dim=-1)
        weight = self._conv_weight()
        kernels = self._use_cuda_kernels(token)

        if kernels is not None and kernels.causal_conv1d_update is not None:
            conv_state = conv_state.clone()
            x = kernels.causal_conv1d_update(x, conv_state, weight, self.conv1d.bias, self.activation)
        else:
            x, conv_state = causal_conv1d_step(x, conv_state, weight, self.conv1d.bias, self.activation)
        x = x.to(dtype)

        x_db = self.x_proj(x)  # (B, dt_rank + 2*d_state)
        dt, B, C = torch.split(x_db, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # (B, d_inner), bias added below
        A = -torch.exp(self.A_log.float())
        if kernels is not None and kernels.selective_state_update is not None:
            ssm_state = ssm_state.clone()
            y = kernels.selective_state_update(
                ssm_state, x, dt, A, B, C, self.D, z=z, dt_bias=self.dt_proj.bias, dt_softplus=True
            )
        else:
            y, ssm_state = selective_state_step(
                ssm_state, x, dt, A, B, C, self.D, z=z, dt_bias=self.dt_proj.bias, dt_softplus=True
            )
        out = self.out_proj(y.to(dtype))
        return (out.unsqueeze(1) if hidden_states.dim() == 3 else out), conv_state, ssm_state

    def allocate_inference_cache(
        self, batch_size: int, dtype: torch.dtype | None = None, **kwargs: object
    ) -> tuple[Tensor, Tensor]:
        """Zero recurrent state for :meth:`step` (start of a stream).

        Args:
            batch_size: B.
            dtype: dtype of both states; default: conv1d's / dt_proj's parameter dtype (as mamba_ssm).
            **kwargs: ignored (accepts mamba_ssm's ``max_seqlen=`` keyword).

        Returns:
            ``(conv_state (B, d_inner, d_conv), ssm_state (B, d_inner, d_state))`` on the module's device.
        """
        device = self.out_proj.weight.device
        conv_dtype = self.conv1d.weight.dtype if dtype is None else dtype
        ssm_dtype = self.dt_proj.weight.dtype if dtype is None else dtype
        conv_state = torch.zeros(batch_size, self.d_inner, self.d_conv, device=device, dtype=conv_dtype)
        ssm_state = torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=ssm_dtype)
        return conv_state, ssm_state


class MambaStep(nn.Module):
    """Export wrapper: ``forward(token, conv_state, ssm_state) = mamba.step(...)`` for torch.onnx.export.

    Args:
        mamba: the block to wrap (shares its parameters).

    Inputs/outputs: ``token (B, d_model)``, ``conv_state (B, d_inner, d_conv)``,
    ``ssm_state (B, d_inner, d_state)`` -> ``(out (B, d_model), conv_state, ssm_state)``.
    """

    def __init__(self, mamba: Mamba) -> None:
        super().__init__()
        self.mamba = mamba

    def forward(self, token: Tensor, conv_state: Tensor, ssm_state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step; see :meth:`Mamba.step`."""
        return self.mamba.step(token, conv_state, ssm_state)
