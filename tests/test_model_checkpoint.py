"""Tests of livedance.model.checkpoint: weights pairs without a digest, dtype kinds in load_state_into."""

from __future__ import annotations

import json

import pytest
import torch

from livedance.errors import WeightsError
from livedance.model.checkpoint import load_state_into, load_weights, save_weights, weight_paths


class Net(torch.nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.lin = torch.nn.Linear(3, width)
        self.register_buffer("count", torch.zeros(2, dtype=torch.int64))


def _pair(tmp_path, name: str, fmt: str = "livedance.test", width: int = 4, digest: bool = False):
    stem = tmp_path / name
    save_weights(stem, Net(width).state_dict(), fmt, {"width": width})
    if not digest:
        _, js = weight_paths(stem)
        doc = json.loads(js.read_text())
        doc.pop("sha256")
        js.write_text(json.dumps(doc))
    return stem


def test_a_pair_without_digest_loads_when_format_and_tensors_match(tmp_path):
    stem = _pair(tmp_path, "a")
    state, doc = load_weights(stem, "livedance.test")
    assert "sha256" not in doc and set(state) == {"lin.weight", "lin.bias", "count"}


def test_a_pair_without_digest_refuses_another_models_file(tmp_path):
    stem = _pair(tmp_path, "a")
    st, js = weight_paths(stem)
    # another format's safetensors under this JSON
    other = _pair(tmp_path, "b", fmt="livedance.other")
    st.write_bytes(weight_paths(other)[0].read_bytes())
    with pytest.raises(WeightsError, match=r"a\.safetensors: safetensors metadata format is 'livedance.other'.*"
                                           r"'livedance.test'"):
        load_weights(stem, "livedance.test")
    # the same format, other shapes
    wide = _pair(tmp_path, "c", width=6)
    st.write_bytes(weight_paths(wide)[0].read_bytes())
    with pytest.raises(WeightsError, match=r"a\.safetensors: does not match the tensors list of a\.json.*"
                                           r"lin\.weight: file \(6, 3\) vs json \(4, 3\)"):
        load_weights(stem, "livedance.test")
    # a JSON with neither a digest nor a tensors list
    st.write_bytes(weight_paths(_pair(tmp_path, "d"))[0].read_bytes())
    doc = json.loads(js.read_text())
    doc.pop("tensors")
    js.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match=r"a\.json: records neither a sha256 nor a tensors list"):
        load_weights(stem, "livedance.test")


def test_a_digest_still_decides_when_present(tmp_path):
    stem = _pair(tmp_path, "a", digest=True)
    state, doc = load_weights(stem, "livedance.test")
    assert doc["sha256"] and "count" in state


def test_load_state_into_refuses_another_dtype_kind_but_casts_within_one():
    net = Net()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["count"] = torch.tensor([1.5, 2.0])  # a float file into an int64 buffer
    with pytest.raises(WeightsError, match=r"src\.safetensors.*dtype kind mismatch: count: file torch.float32 vs "
                                           r"model torch.int64"):
        load_state_into(net, state, "src.safetensors")
    assert net.count.tolist() == [0, 0]  # nothing was copied
    state["count"] = torch.tensor([1, 2], dtype=torch.int32)
    state["lin.weight"] = torch.ones(4, 3, dtype=torch.float16)
    load_state_into(net, state, "src.safetensors")
    assert net.count.dtype == torch.int64 and net.count.tolist() == [1, 2]
    assert net.lin.weight.dtype == torch.float32 and bool((net.lin.weight == 1).all())
