"""Pure-PyTorch Mamba block: mamba-ssm golden parity, forward == step, state-dict compatibility, ONNX step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from livedance.errors import ConfigError
from livedance.model.mamba import Mamba, MambaConfig, MambaStep

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "mamba_golden.safetensors"
ATOL, RTOL = 1e-5, 1e-5

# Keys and shapes of mamba_ssm.modules.mamba_simple.Mamba(d_model=16) with defaults (d_state=16, expand=2,
# d_conv=4, dt_rank=ceil(16/16)=1), as printed by mamba-ssm 2.3.2.post1.
UPSTREAM_SHAPES_D16 = {
    "A_log": (32, 16), "D": (32,), "in_proj.weight": (64, 16), "conv1d.weight": (32, 1, 4),
    "conv1d.bias": (32,), "x_proj.weight": (33, 32), "dt_proj.weight": (32, 1), "dt_proj.bias": (32,),
    "out_proj.weight": (16, 32),
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not GOLDEN.exists():
        pytest.skip(f"{GOLDEN} missing: run scripts/make_mamba_golden.py in a mamba-ssm venv")
    with safe_open(str(GOLDEN), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k.startswith("block.")}, f.metadata()


def _golden_block(golden) -> tuple[Mamba, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    tensors, meta = golden
    params = {k[len("block.param."):]: v for k, v in tensors.items() if k.startswith("block.param.")}
    model = Mamba(**json.loads(meta["block_config"]))
    model.load_state_dict(params, strict=True)
    return model.eval(), params, tensors


def test_state_dict_keys_and_shapes_match_mamba_ssm():
    model = Mamba(16)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == UPSTREAM_SHAPES_D16
    assert list(model.state_dict()) == list(UPSTREAM_SHAPES_D16)  # same order too


def test_seeded_init_equals_mamba_ssm(golden):
    """Same seed -> the same weights as mamba_ssm's Mamba.__init__ (same init, same RNG order)."""
    _, meta = golden
    _, params, _ = _golden_block(golden)
    torch.manual_seed(int(meta["block_seed"]))
    ours = Mamba(**json.loads(meta["block_config"])).state_dict()
    assert set(ours) == set(params)
    for k, v in params.items():
        assert ours[k].shape == v.shape and ours[k].dtype == v.dtype, k
        if k in ("A_log", "dt_proj.bias"):  # through torch.log / exp: the last bit depends on the CPU's vector
            # units (AVX-512 and AVX2 kernels differ by 1 ulp); a wrong init or RNG order is off by far more
            torch.testing.assert_close(ours[k], v, atol=1e-6, rtol=1e-6, msg=f"init of {k}")
        else:  # drawn from the RNG: bit for bit
            torch.testing.assert_close(ours[k], v, atol=0, rtol=0, msg=f"init of {k}")


def test_forward_prefill_and_steps_match_mamba_ssm(golden):
    model, _, t = _golden_block(golden)
    prefill, decode = json.loads(golden[1]["block_prefill_decode"])
    x = t["block.x"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), t["block.out"], atol=ATOL, rtol=RTOL)
        out, conv_state, ssm_state = model.forward_with_states(x[:, :prefill])
        torch.testing.assert_close(out, t["block.out_prefill"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(conv_state, t["block.conv_state_prefill"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(ssm_state, t["block.ssm_state_prefill"], atol=ATOL, rtol=RTOL)
        outs = []
        for i in range(prefill, prefill + decode):
            y, conv_state, ssm_state = model.step(x[:, i : i + 1], conv_state, ssm_state)
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), t["block.out_steps"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(conv_state, t["block.conv_state_final"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ssm_state, t["block.ssm_state_final"], atol=ATOL, rtol=RTOL)


def _trained_looking_block(seed: int = 0, **kw) -> Mamba:
    """A block whose parameters are perturbed away from init (so A, D, biases are not special values)."""
    torch.manual_seed(seed)
    model = Mamba(**kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("kw", [dict(d_model=24), dict(d_model=32, d_state=8, d_conv=3, expand=1, bias=True)])
def test_forward_equals_token_by_token_step(kw):
    model = _trained_looking_block(**kw)
    x = torch.randn(3, 40, kw["d_model"])
    with torch.no_grad():
        full = model(x)
        conv_state, ssm_state = model.allocate_inference_cache(3)
        outs = []
        for i in range(x.shape[1]):
            y, conv_state, ssm_state = model.step(x[:, i], conv_state, ssm_state)  # (B, D) form
            outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), full, atol=1e-5, rtol=1e-5)


def test_forward_with_states_continues_a_stream():
    model = _trained_looking_block(d_model=16)
    x = torch.randn(2, 23, 16)
    with torch.no_grad():
        full = model(x)
        y1, c1, s1 = model.forward_with_states(x[:, :2])  # shorter than d_conv: left zero padding
        y2, c2, s2 = model.forward_with_states(x[:, 2:13], c1, s1)
        y3, _, _ = model.forward_with_states(x[:, 13:], c2, s2)
    torch.testing.assert_close(torch.cat([y1, y2, y3], 1), full, atol=1e-5, rtol=1e-5)


def test_step_is_functional():
    model = _trained_looking_block(d_model=16)
    conv_state, ssm_state = torch.randn(2, 32, 4), torch.randn(2, 32, 16)
    before = conv_state.clone(), ssm_state.clone()
    with torch.no_grad():
        y, new_conv, new_ssm = model.step(torch.randn(2, 1, 16), conv_state, ssm_state)
    assert y.shape == (2, 1, 16) and new_conv.shape == conv_state.shape and new_ssm.shape == ssm_state.shape
    assert torch.equal(conv_state, before[0]) and torch.equal(ssm_state, before[1])
    assert not torch.equal(new_ssm, ssm_state)


def test_forward_trains():
    """Gradients reach every parameter through the CPU fast scan."""
    model = _trained_looking_block(d_model=16)
    model(torch.randn(2, 12, 16)).pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_bad_input_and_config_raise():
    model = Mamba(16)
    conv_state, ssm_state = model.allocate_inference_cache(1)
    with pytest.raises(ValueError, match="one token"):
        model.step(torch.randn(1, 2, 16), conv_state, ssm_state)
    with pytest.raises(ValueError, match="d_model=16"):
        model(torch.randn(1, 5, 8))
    with pytest.raises(ConfigError, match="dt_init"):
        Mamba(16, dt_init="zeros")
    with pytest.raises(ConfigError, match="d_state"):
        Mamba(16, d_state=0)
    assert Mamba.from_config(MambaConfig(d_model=8, d_state=4)).A_log.shape == (16, 4)


def test_cpu_path_never_imports_mamba_ssm():
    code = (
        "import sys, torch; from livedance.model.mamba import Mamba; m = Mamba(8);"
        "c, s = m.allocate_inference_cache(1); m(torch.randn(1, 3, 8)); m.step(torch.randn(1, 8), c, s);"
        "assert 'mamba_ssm' not in sys.modules and 'causal_conv1d' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo=False: the TorchScript exporter
def test_onnx_step_matches_torch(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = _trained_looking_block(d_model=32, d_state=8)
    wrapper = MambaStep(model).eval()
    token = torch.randn(2, 32)
    conv_state, ssm_state = torch.randn(2, 64, 4), torch.randn(2, 64, 8)
    path = tmp_path / "mamba_step.onnx"
    names_in, names_out = ["token", "conv_state", "ssm_state"], ["out", "conv_state_out", "ssm_state_out"]
    torch.onnx.export(
        wrapper, (token, conv_state, ssm_state), str(path), opset_version=17, dynamo=False,
        input_names=names_in, output_names=names_out,
        dynamic_axes={n: {0: "batch"} for n in names_in + names_out},
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    # Chain a few steps in both runtimes (with a different batch size than at export).
    tokens = torch.randn(6, 3, 32)
    c_t, s_t = torch.zeros(3, 64, 4), torch.zeros(3, 64, 8)
    c_o, s_o = c_t.numpy(), s_t.numpy()
    for i in range(tokens.shape[0]):
        with torch.no_grad():
            y_t, c_t, s_t = wrapper(tokens[i], c_t, s_t)
        y_o, c_o, s_o = session.run(None, {"token": tokens[i].numpy(), "conv_state": c_o, "ssm_state": s_o})
        np.testing.assert_allclose(y_o, y_t.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(s_o, s_t.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(c_o, c_t.numpy(), atol=1e-4, rtol=1e-4)
