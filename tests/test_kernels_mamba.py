"""Selective scan and causal conv kernels: golden parity with mamba-ssm / causal-conv1d, fast == reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from livedance.kernels.causal_conv1d import causal_conv1d_ref, causal_conv1d_step, causal_conv1d_update_ref
from livedance.kernels.selective_scan import (
    selective_scan_fast,
    selective_scan_ref,
    selective_state_step,
    selective_state_update_ref,
)

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "mamba_golden.safetensors"
ATOL, RTOL = 1e-5, 1e-5


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)  # later test modules keep the machine's threads


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    """All fixture tensors; complex ones re-assembled from ``_re`` / ``_im``."""
    if not GOLDEN.exists():
        pytest.skip(f"{GOLDEN} missing: run scripts/make_mamba_golden.py in a mamba-ssm venv")
    with safe_open(str(GOLDEN), "pt") as f:
        raw = {k: f.get_tensor(k) for k in f.keys()}
    out = {}
    for k, v in raw.items():
        if k.endswith("_re"):
            out[k[:-3]] = torch.complex(v, raw[k[:-3] + "_im"])
        elif not k.endswith("_im"):
            out[k] = v
    return out


def _case(golden: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in golden.items() if k.startswith(prefix)}


def test_fixture_records_upstream_version():
    if not GOLDEN.exists():
        pytest.skip("golden fixture missing")
    with safe_open(str(GOLDEN), "pt") as f:
        meta = f.metadata()
    assert meta["mamba_ssm_version"] and meta["causal_conv1d_version"]
    assert GOLDEN.stat().st_size < 200 * 1024


SCAN_CASES = {
    "scan_var": {"delta_softplus": True},
    "scan_group": {},
    "scan_const": {"delta_softplus": True},
    "scan_complex": {"delta_softplus": True},
}


@pytest.mark.parametrize("impl", [selective_scan_ref, selective_scan_fast], ids=["ref", "fast"])
@pytest.mark.parametrize("name", list(SCAN_CASES))
def test_selective_scan_matches_mamba_ssm(golden, impl, name):
    c = _case(golden, name)
    inputs = {k: c[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias") if k in c}
    out, last = impl(**inputs, **SCAN_CASES[name], return_last_state=True)
    torch.testing.assert_close(out, c["out"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(last, c["last_state"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", ["ssu", "ssu_heads"])
def test_selective_state_update_matches_mamba_ssm(golden, name):
    c = _case(golden, name)
    kw = {k: c[k] for k in ("x", "dt", "A", "B", "C", "D", "z", "dt_bias") if k in c}
    softplus = name == "ssu"
    state = c["state"].clone()
    out = selective_state_update_ref(state, **kw, dt_softplus=softplus)
    torch.testing.assert_close(out, c["out"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(state, c["state_out"], atol=ATOL, rtol=RTOL)

    # The functional twin gives the same numbers and leaves its input state alone.
    state0 = c["state"].clone()
    out_f, new_state = selective_state_step(state0, **kw, dt_softplus=softplus)
    torch.testing.assert_close(out_f, c["out"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(new_state, c["state_out"], atol=ATOL, rtol=RTOL)
    assert torch.equal(state0, c["state"])


def test_causal_conv1d_matches_package(golden):
    c = _case(golden, "conv")
    out = causal_conv1d_ref(c["x"], c["weight"], c["bias"], activation="silu")
    torch.testing.assert_close(out, c["out"], atol=ATOL, rtol=RTOL)
    out, final = causal_conv1d_ref(
        c["x"], c["weight"], c["bias"], initial_states=c["initial_states"], return_final_states=True,
        activation="silu",
    )
    torch.testing.assert_close(out, c["out_init"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(final, c["final_states"], atol=ATOL, rtol=RTOL)


def test_causal_conv1d_update_matches_package(golden):
    w, b = golden["conv.weight"], golden["conv.bias"]
    c = _case(golden, "conv_update")
    state = c["state"].clone()
    out = causal_conv1d_update_ref(c["x"], state, w, b, activation="silu")
    torch.testing.assert_close(out, c["out"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(state, c["state_out"], atol=ATOL, rtol=RTOL)

    state0 = c["state"].clone()
    out_f, new_state = causal_conv1d_step(c["x"], state0, w, b, activation="silu")
    torch.testing.assert_close(out_f, c["out"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(new_state, c["state_out"], atol=ATOL, rtol=RTOL)
    assert torch.equal(state0, c["state"])

    c = _case(golden, "conv_circ")
    state = c["state"].clone()
    out = causal_conv1d_update_ref(c["x"], state, w, None, activation=None, cache_seqlens=c["cache_seqlens"])
    torch.testing.assert_close(out, c["out"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(state, c["state_out"], atol=ATOL, rtol=RTOL)


def test_conv_streaming_equals_whole_sequence():
    """Feeding the conv one sample at a time (with state_len = width - 1 or width) equals the full conv."""
    g = torch.Generator().manual_seed(3)
    x, w, b = torch.randn(2, 5, 9, generator=g), torch.randn(5, 3, generator=g), torch.randn(5, generator=g)
    full = causal_conv1d_ref(x, w, b, activation="swish")
    for state_len in (2, 3):
        state = torch.zeros(2, 5, state_len)
        outs = []
        for t in range(x.shape[-1]):
            y, state = causal_conv1d_step(x[..., t], state, w, b, activation="swish")
            outs.append(y)
        torch.testing.assert_close(torch.stack(outs, -1), full, atol=1e-6, rtol=1e-6)
    # Splitting the sequence and carrying final_states gives the same result.
    y1, s1 = causal_conv1d_ref(x[..., :4], w, b, return_final_states=True)
    y2 = causal_conv1d_ref(x[..., 4:], w, b, initial_states=s1)
    torch.testing.assert_close(torch.cat([y1, y2], -1), causal_conv1d_ref(x, w, b), atol=1e-6, rtol=1e-6)


def test_conv_rejects_bad_input():
    x, w = torch.randn(1, 4, 5), torch.randn(4, 3)
    with pytest.raises(NotImplementedError):
        causal_conv1d_ref(x, w, activation="relu")
    with pytest.raises(ValueError, match="channels"):
        causal_conv1d_ref(torch.randn(1, 3, 5), w)
    with pytest.raises(ValueError, match="conv_state"):
        causal_conv1d_step(x[..., 0], torch.zeros(1, 4, 1), w)


def _random_scan_inputs(g, b=2, d=6, n=5, l=37, groups=None):
    A = -(0.2 + torch.rand(d, n, generator=g) * 3)
    if groups is None:
        B, C = torch.randn(b, n, l, generator=g), torch.randn(b, n, l, generator=g)
    else:
        B, C = torch.randn(b, groups, n, l, generator=g), torch.randn(b, groups, n, l, generator=g)
    return dict(u=torch.randn(b, d, l, generator=g), delta=torch.randn(b, d, l, generator=g), A=A, B=B, C=C,
                D=torch.randn(d, generator=g), z=torch.randn(b, d, l, generator=g),
                delta_bias=torch.randn(d, generator=g), delta_softplus=True)


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 100])
@pytest.mark.parametrize("groups", [None, 3])
def test_fast_scan_equals_reference(chunk_size, groups):
    kw = _random_scan_inputs(torch.Generator().manual_seed(chunk_size), groups=groups)
    ref_out, ref_last = selective_scan_ref(**kw, return_last_state=True)
    out, last = selective_scan_fast(**kw, return_last_state=True, chunk_size=chunk_size)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last, ref_last, atol=1e-5, rtol=1e-5)


def test_fast_scan_in_blocks_with_initial_state():
    """Scanning [0, k) then [k, L) from the carried state equals one scan over [0, L)."""
    kw = _random_scan_inputs(torch.Generator().manual_seed(7), l=30)
    full, full_last = selective_scan_fast(**kw, return_last_state=True)
    seq_keys = ("u", "delta", "B", "C", "z")
    first = {k: (v[..., :11] if k in seq_keys else v) for k, v in kw.items()}
    second = {k: (v[..., 11:] if k in seq_keys else v) for k, v in kw.items()}
    y1, s1 = selective_scan_fast(**first, return_last_state=True)
    y2, s2 = selective_scan_fast(**second, return_last_state=True, initial_state=s1)
    torch.testing.assert_close(torch.cat([y1, y2], -1), full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s2, full_last, atol=1e-5, rtol=1e-5)


def test_fast_scan_gradients_match_reference():
    kw = _random_scan_inputs(torch.Generator().manual_seed(11), l=20)
    grads = []
    for fn in (selective_scan_ref, selective_scan_fast):
        leaves = {k: v.clone().requires_grad_(True) for k, v in kw.items() if isinstance(v, torch.Tensor)}
        out = fn(**leaves, delta_softplus=True)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append({k: v.grad for k, v in leaves.items()})
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-4, rtol=1e-4, msg=f"grad of {k}")


def test_scan_equals_token_by_token_state_updates():
    """The whole-sequence scan and repeated one-token updates are the same recurrence."""
    kw = _random_scan_inputs(torch.Generator().manual_seed(5), l=9)
    out = selective_scan_fast(**kw)
    state = torch.zeros(2, 6, 5)
    steps = []
    for t in range(9):
        y, state = selective_state_step(
            state, kw["u"][..., t], kw["delta"][..., t], kw["A"], kw["B"][..., t], kw["C"][..., t], kw["D"],
            z=kw["z"][..., t], dt_bias=kw["delta_bias"], dt_softplus=True,
        )
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, -1), out, atol=1e-5, rtol=1e-5)


def test_scan_rejects_bad_input():
    kw = _random_scan_inputs(torch.Generator().manual_seed(1), groups=3)
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan_fast(**kw, chunk_size=0)
    with pytest.raises(ValueError, match="initial_state"):
        selective_scan_fast(**kw, initial_state=torch.zeros(1, 1, 1))
    kw["B"] = torch.randn(2, 4, 5, 37)  # 4 groups do not divide 6 channels
    with pytest.raises(ValueError, match="divisible"):
        selective_scan_ref(**kw)
    with pytest.raises(ValueError, match="A must be"):
        selective_state_step(torch.zeros(2, 6, 5), torch.zeros(2, 6), torch.zeros(2, 6), torch.zeros(6, 4),
                             torch.zeros(2, 5), torch.zeros(2, 5))
