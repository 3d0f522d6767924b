#!/usr/bin/env python
"""Write tests/fixtures/mamba_golden.safetensors: seeded inputs and mamba-ssm's own reference outputs.

The fixture pins livedance.kernels.selective_scan, livedance.kernels.causal_conv1d and
livedance.model.mamba to the upstream reference maths (tests/test_kernels_mamba.py, tests/test_mamba.py).

Run it with a THROWAWAY virtualenv that has mamba-ssm (and causal-conv1d) installed without CUDA, never
with the project's .venv::

    python3 -m venv /tmp/mambavenv
    /tmp/mambavenv/bin/pip install torch==2.13.0 numpy einops packaging setuptools wheel ninja safetensors
    MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE \\
        /tmp/mambavenv/bin/pip install --no-build-isolation mamba-ssm
    CAUSAL_CONV1D_FORCE_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE \\
        /tmp/mambavenv/bin/pip install --no-build-isolation causal-conv1d
    /tmp/mambavenv/bin/python scripts/make_mamba_golden.py [--out tests/fixtures/mamba_golden.safetensors]

How the upstream code is made to run on a CPU-only machine (this script only):

* ``selective_scan_cuda`` and ``causal_conv1d_cuda`` (the compiled extensions, absent when built with
  *_SKIP_CUDA_BUILD) are replaced by empty stub modules in ``sys.modules`` so the Python packages import.
  No function of theirs is ever called.
* ``mamba_ssm.modules.mamba_simple.Mamba`` is instantiated on CPU (its real ``__init__``: parameter
  init and state-dict keys are upstream's). For its forward/step, the module-level kernel names inside
  ``mamba_simple`` are pointed at upstream's own pure-PyTorch references: ``selective_scan_fn`` ->
  ``selective_scan_ref``, ``selective_state_update`` -> ``selective_state_update_ref``, and
  ``causal_conv1d_fn`` / ``causal_conv1d_update`` -> None, which makes ``Mamba.forward`` take its own
  slow path (``nn.Conv1d`` + scan) and ``Mamba.step`` its own torch roll/sum conv step. So the block
  golden is upstream's ``Mamba.forward`` / ``Mamba.step`` code with the CUDA ops swapped for their
  reference twins; ``use_fast_path=False`` keeps it off ``mamba_inner_fn``.

Keys: ``<case>.<tensor>`` (float32; complex tensors split into ``_re`` / ``_im``). Metadata records the
mamba-ssm, causal-conv1d and torch versions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "mamba_golden.safetensors"

# Small block config: big enough to exercise dt_rank/d_state splits, small enough for a < 200 KB fixture.
BLOCK = {"d_model": 16, "d_state": 8, "d_conv": 4, "expand": 2}
BLOCK_SEED = 0
PREFILL, DECODE = 9, 5


def _stub_extension(name: str) -> None:
    """Put an empty module called ``name`` in sys.modules unless the real one is importable."""
    if importlib.util.find_spec(name) is None:
        sys.modules[name] = types.ModuleType(name)


def _import_upstream() -> types.SimpleNamespace:
    """Import mamba-ssm's and causal-conv1d's reference functions (and versions) on a CPU-only host."""
    _stub_extension("selective_scan_cuda")
    _stub_extension("causal_conv1d_cuda")
    import causal_conv1d
    import mamba_ssm
    import mamba_ssm.modules.mamba_simple as mamba_simple
    from causal_conv1d.causal_conv1d_interface import causal_conv1d_ref, causal_conv1d_update_ref
    from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
    from mamba_ssm.ops.triton.selective_state_update import selective_state_update_ref

    return types.SimpleNamespace(
        mamba_ssm=mamba_ssm, causal_conv1d=causal_conv1d, mamba_simple=mamba_simple,
        selective_scan_ref=selective_scan_ref, selective_state_update_ref=selective_state_update_ref,
        causal_conv1d_ref=causal_conv1d_ref, causal_conv1d_update_ref=causal_conv1d_update_ref,
    )


def _put(store: dict[str, torch.Tensor], key: str, t: torch.Tensor) -> None:
    """Store ``t`` under ``key`` (complex -> key_re / key_im), contiguous, detached."""
    t = t.detach()
    if t.is_complex():
        store[key + "_re"] = t.real.contiguous().clone()
        store[key + "_im"] = t.imag.contiguous().clone()
    else:
        store[key] = t.contiguous().clone()


def _scan_cases(up: types.SimpleNamespace, g: torch.Generator, store: dict[str, torch.Tensor]) -> None:
    """selective_scan_ref on real/grouped/constant/complex inputs."""
    b, d, n, l = 2, 8, 4, 12

    def rn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    def neg_a(*shape: int) -> torch.Tensor:
        return -(0.5 + torch.rand(*shape, generator=g) * 2)

    cases = {
        # Mamba's usage: input-dependent B/C (b, n, l), D, z, delta_bias, softplus.
        "scan_var": dict(u=rn(b, d, l), delta=rn(b, d, l), A=neg_a(d, n), B=rn(b, n, l), C=rn(b, n, l),
                         D=rn(d), z=rn(b, d, l), delta_bias=rn(d) * 0.5, delta_softplus=True),
        # Grouped B/C (b, g, n, l), positive delta, no softplus/D/z.
        "scan_group": dict(u=rn(b, d, l), delta=torch.rand(b, d, l, generator=g) * 0.5, A=neg_a(d, n),
                           B=rn(b, 2, n, l), C=rn(b, 2, n, l)),
        # Constant B/C (d, n) with D.
        "scan_const": dict(u=rn(b, d, l), delta=rn(b, d, l), A=neg_a(d, n), B=rn(d, n), C=rn(d, n), D=rn(d),
                           delta_softplus=True),
        # Complex A (S4D-Lin style), input-dependent B as interleaved (re, im) pairs, constant complex C.
        "scan_complex": dict(u=rn(b, d, l), delta=rn(b, d, l),
                             A=torch.complex(neg_a(d, n), rn(d, n) * 3), B=rn(b, n, 2 * l),
                             C=torch.complex(rn(d, n), rn(d, n)), delta_softplus=True),
    }
    for name, kw in cases.items():
        out, last = up.selective_scan_ref(**kw, return_last_state=True)
        for k, v in kw.items():
            if isinstance(v, torch.Tensor):
                _put(store, f"{name}.{k}", v)
        _put(store, f"{name}.out", out)
        _put(store, f"{name}.last_state", last)


def _state_update_cases(up: types.SimpleNamespace, g: torch.Generator, store: dict[str, torch.Tensor]) -> None:
    """selective_state_update_ref without heads (Mamba v1) and with heads + groups."""

    def rn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    b, d, n, h, grp = 2, 8, 4, 4, 2
    cases = {
        "ssu": dict(state=rn(b, d, n), x=rn(b, d), dt=rn(b, d), A=-torch.rand(d, n, generator=g) - 0.5,
                    B=rn(b, n), C=rn(b, n), D=rn(d), z=rn(b, d), dt_bias=rn(d), dt_softplus=True),
        "ssu_heads": dict(state=rn(b, h, 3, n), x=rn(b, h, 3), dt=torch.rand(b, h, 3, generator=g),
                          A=-torch.rand(h, 3, n, generator=g) - 0.5, B=rn(b, grp, n), C=rn(b, grp, n)),
    }
    for name, kw in cases.items():
        for k, v in kw.items():
            if isinstance(v, torch.Tensor):
                _put(store, f"{name}.{k}", v)
        state = kw.pop("state").clone()
        out = up.selective_state_update_ref(state, **kw)
        _put(store, f"{name}.out", out)
        _put(store, f"{name}.state_out", state)


def _conv_cases(up: types.SimpleNamespace, g: torch.Generator, store: dict[str, torch.Tensor]) -> None:
    """causal_conv1d_ref (plain, and from initial states) and causal_conv1d_update_ref (plain, circular)."""

    def rn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    b, d, w, l = 2, 6, 4, 10
    x, weight, bias, init = rn(b, d, l), rn(d, w), rn(d), rn(b, d, w - 1)
    for k, v in {"x": x, "weight": weight, "bias": bias, "initial_states": init}.items():
        _put(store, f"conv.{k}", v)
    _put(store, "conv.out", up.causal_conv1d_ref(x, weight, bias, activation="silu"))
    out, final = up.causal_conv1d_ref(x, weight, bias, initial_states=init, return_final_states=True,
                                      activation="silu")
    _put(store, "conv.out_init", out)
    _put(store, "conv.final_states", final)

    xs, state = rn(b, d), rn(b, d, w)
    _put(store, "conv_update.x", xs)
    _put(store, "conv_update.state", state)
    state = state.clone()
    _put(store, "conv_update.out", up.causal_conv1d_update_ref(xs, state, weight, bias, activation="silu"))
    _put(store, "conv_update.state_out", state)

    xs3, state5 = rn(b, d, 3), rn(b, d, 5)
    seqlens = torch.tensor([2, 7], dtype=torch.int32)
    _put(store, "conv_circ.x", xs3)
    _put(store, "conv_circ.state", state5)
    store["conv_circ.cache_seqlens"] = seqlens
    state5 = state5.clone()
    _put(store, "conv_circ.out", up.causal_conv1d_update_ref(xs3, state5, weight, None, activation=None,
                                                             cache_seqlens=seqlens))
    _put(store, "conv_circ.state_out", state5)


def _block_case(up: types.SimpleNamespace, g: torch.Generator, store: dict[str, torch.Tensor]) -> None:
    """mamba_simple.Mamba: seeded init (state dict), prefill forward with states, then token steps."""
    ms = up.mamba_simple
    ms.selective_scan_fn = up.selective_scan_ref
    ms.selective_state_update = up.selective_state_update_ref
    ms.causal_conv1d_fn = None
    ms.causal_conv1d_update = None

    torch.manual_seed(BLOCK_SEED)
    block = ms.Mamba(**BLOCK, use_fast_path=False, layer_idx=0)
    block.eval()
    for k, v in block.state_dict().items():
        _put(store, f"block.param.{k}", v)

    x = torch.randn(2, PREFILL + DECODE, BLOCK["d_model"], generator=g)
    _put(store, "block.x", x)
    with torch.no_grad():
        _put(store, "block.out", block(x))  # full sequence, no cache
        params = types.SimpleNamespace(key_value_memory_dict={}, seqlen_offset=0)
        _put(store, "block.out_prefill", block(x[:, :PREFILL], inference_params=params))
        conv_state, ssm_state = params.key_value_memory_dict[0]
        _put(store, "block.conv_state_prefill", conv_state)
        _put(store, "block.ssm_state_prefill", ssm_state)
        outs = []
        for t in range(PREFILL, PREFILL + DECODE):
            out, conv_state, ssm_state = block.step(x[:, t : t + 1], conv_state, ssm_state)
            outs.append(out)
        _put(store, "block.out_steps", torch.cat(outs, dim=1))
        _put(store, "block.conv_state_final", conv_state)
        _put(store, "block.ssm_state_final", ssm_state)


def main() -> None:
    """Parse ``--out`` and ``--seed``, compute every case, write the safetensors file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    from safetensors.torch import save_file

    up = _import_upstream()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    store: dict[str, torch.Tensor] = {}
    _scan_cases(up, g, store)
    _state_update_cases(up, g, store)
    _conv_cases(up, g, store)
    _block_case(up, g, store)

    metadata = {
        "mamba_ssm_version": up.mamba_ssm.__version__,
        "causal_conv1d_version": up.causal_conv1d.__version__,
        "torch_version": torch.__version__,
        "generator": "scripts/make_mamba_golden.py",
        "seed": str(args.seed),
        "block_config": json.dumps(BLOCK),
        "block_seed": str(BLOCK_SEED),
        "block_prefill_decode": json.dumps([PREFILL, DECODE]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(store, str(args.out), metadata=metadata)
    size_kb = args.out.stat().st_size / 1024
    print(f"wrote {args.out} ({len(store)} tensors, {size_kb:.1f} KB), mamba_ssm {up.mamba_ssm.__version__}")


if __name__ == "__main__":
    main()
