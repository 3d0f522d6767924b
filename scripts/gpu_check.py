#!/usr/bin/env python
"""Check and time livedance's GPU path on a CUDA host (docs/gpu.md has the figures and how to install).

Two subcommands, because the GPU host need not have the audio stack:

* ``record`` (any host, here the CPU one): dances ``--seconds`` of a song with the shipped model through
  the torch backend on the CPU and stores every step's named inputs and outputs (``StepGraph`` order,
  float32 / int64) in one safetensors file. The inputs include the sampling noise (``gumbel_*``), so
  a step is a deterministic function of its inputs on any device.
* ``check`` (the GPU host): prints and writes (``--json``) four things:
  1. mamba-ssm's and causal-conv1d's compiled CUDA / Triton kernels (``selective_scan_fn``,
     ``selective_state_update``, ``causal_conv1d_fn``, ``causal_conv1d_update``) on the golden inputs of
     ``tests/fixtures/mamba_golden.safetensors`` against the golden outputs of their own reference ops
     (the same fixture that pins livedance's pure-PyTorch ops on the CPU);
  2. ``livedance.model.mamba.Mamba`` on CUDA with mamba-ssm's kernels against the same block on the
     CPU (pure PyTorch), whole sequence and token steps;
  3. the shipped step graph on CUDA against the recorded CPU outputs, step by step on the recorded
     inputs ("teacher-forced") and in a free run that feeds back its own states and codes;
  4. batch-1 step latency on CUDA through ``TorchBackend.run`` (numpy in, numpy out, as the live loop
     calls it) with mamba-ssm's kernels and without, and the CPU torch backend on one thread of the
     same host for comparison.

    .venv/bin/python scripts/gpu_check.py record --out .gpu/steps.safetensors
    python scripts/gpu_check.py check --steps .gpu/steps.safetensors --json gpu.json

Exits 1 when a parity check fails (tolerances below), 0 otherwise; checks that cannot run (no CUDA, no
mamba-ssm) are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "mamba_golden.safetensors"
SONG = ROOT / "livedance" / "assets" / "armygeddon-excerpt.ogg"
# Kernel vs reference: fp32 on both sides, but different summation orders (CUDA scan, Triton reductions).
KERNEL_TOL = 1e-4
# Non-recurrent inputs of the step graph (every other input is a state fed back from `<name>_out`).
NOT_STATE = ("pend_codes", "pend_window", "pend_cond", "pend_kind", "window", "cond", "gumbel_base", "gumbel_res")


# ---------------------------------------------------------------------------------------------- record
def record(out: Path, song: Path, seconds: float, seed: int) -> None:
    """Dance ``seconds`` of ``song`` on the CPU torch backend; store each step's inputs and outputs."""
    import torch
    from safetensors.torch import save_file

    from livedance.engine import build_generator, load_step_graph
    from livedance.engine.offline import generate_song

    graph, rep, _ = load_step_graph(None, "livedance", None)
    gen = build_generator(graph, rep, "torch", None, seed=seed, threads=1)
    steps: list[tuple[dict, dict]] = []
    run = gen.backend.run

    def recording_run(inputs: dict) -> dict:
        outputs = run(inputs)
        steps.append(({k: np.array(v) for k, v in inputs.items()}, outputs))
        return outputs

    gen.backend.run = recording_run
    generate_song(gen, song, 0.0, seconds, seed=seed)
    store = {}
    for i, (inp, outp) in enumerate(steps):
        for kind, d in (("in", inp), ("out", outp)):
            for k, v in d.items():
                store[f"{i:05d}.{kind}.{k}"] = torch.from_numpy(np.ascontiguousarray(v))
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"song": song.name, "seconds": str(seconds), "seed": str(seed), "steps": str(len(steps)),
            "torch": torch.__version__, "host": platform.platform()}
    save_file(store, str(out), metadata=meta)
    print(f"recorded {len(steps)} steps of {song.name} ({seconds:.0f} s) -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


def _load_steps(path: Path) -> tuple[list[tuple[dict, dict]], dict]:
    from safetensors.numpy import safe_open

    steps: dict[int, tuple[dict, dict]] = {}
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        for key in f.keys():
            i, kind, name = key.split(".", 2)
            steps.setdefault(int(i), ({}, {}))[0 if kind == "in" else 1][name] = f.get_tensor(key)
    return [steps[i] for i in sorted(steps)], meta


# ---------------------------------------------------------------------------------------------- checks
def _max_err(a, b) -> float:
    """max |a - b| / (1 + |b|) over all elements (relative for large values, absolute for small ones)."""
    import torch

    a, b = a.detach().cpu(), b.detach().cpu()
    if a.is_complex() or b.is_complex():
        a, b = torch.view_as_real(a.to(torch.complex128)), torch.view_as_real(b.to(torch.complex128))
    a, b = a.double(), b.double()
    return float(((a - b).abs() / (1 + b.abs())).max())


def check_golden(device: str) -> dict:
    """mamba-ssm / causal-conv1d kernels on the golden inputs vs the golden reference outputs."""
    import torch
    from safetensors.torch import load_file

    from livedance.model.mamba import cuda_kernels

    if not device.startswith("cuda"):
        return {"skipped": "not a CUDA device"}
    k = cuda_kernels()
    if k is None:
        return {"skipped": "mamba_ssm.ops.selective_scan_interface cannot be imported"}
    g = {n: v.to(device) for n, v in load_file(str(GOLDEN)).items()}

    def c(name: str, key: str):
        if f"{name}.{key}_re" in g:
            return torch.complex(g[f"{name}.{key}_re"], g[f"{name}.{key}_im"])
        return g.get(f"{name}.{key}")

    res: dict[str, dict] = {}

    def case(label: str, fn):
        try:
            pairs = fn()
            errs = {n: _max_err(a, b) for n, (a, b) in pairs.items()}
            res[label] = {"max_err": max(errs.values()), "per_output": errs, "ok": max(errs.values()) <= KERNEL_TOL}
        except Exception as e:  # an unsupported layout is reported, not fatal
            res[label] = {"error": f"{type(e).__name__}: {e}"[:300]}

    for name in ("scan_var", "scan_group", "scan_const", "scan_complex"):
        def scan(name=name):
            kw = {a: c(name, a) for a in ("D", "z", "delta_bias") if c(name, a) is not None}
            out, last = k.selective_scan_fn(c(name, "u"), c(name, "delta"), c(name, "A"), c(name, "B"), c(name, "C"),
                                             delta_softplus=name != "scan_group", return_last_state=True, **kw)
            if name == "scan_const":  # the kernel folds a constant B into C: its state is h / B (Mamba never uses this)
                last = last * c(name, "B")
            return {"out": (out, c(name, "out")), "last_state": (last, c(name, "last_state"))}
        case(f"selective_scan_fn/{name}", scan)
    if k.selective_state_update is not None:
        for name in ("ssu", "ssu_heads"):
            def ssu(name=name):
                state = c(name, "state").clone()
                kw = {a: c(name, a) for a in ("D", "z", "dt_bias") if c(name, a) is not None}
                if name == "ssu_heads":  # the Triton launcher needs D and dt_bias; zeros equal the reference's None
                    kw = {"D": torch.zeros_like(c(name, "x")[0]), "dt_bias": torch.zeros_like(c(name, "x")[0])}
                out = k.selective_state_update(state, c(name, "x"), c(name, "dt"), c(name, "A"), c(name, "B"),
                                               c(name, "C"), dt_softplus=name == "ssu", **kw)
                return {"out": (out, c(name, "out")), "state": (state, c(name, "state_out"))}
            case(f"selective_state_update/{name}", ssu)
    if k.causal_conv1d_fn is not None:
        def conv():
            return {"out": (k.causal_conv1d_fn(c("conv", "x"), c("conv", "weight"), c("conv", "bias"),
                                               activation="silu"), c("conv", "out"))}
        case("causal_conv1d_fn/conv", conv)

        def conv_init():  # initial_states needs channel-last x: (b, l, d) transposed to a (b, d, l) view
            x = c("conv", "x").transpose(1, 2).contiguous().transpose(1, 2)
            init = c("conv", "initial_states").transpose(1, 2).contiguous().transpose(1, 2)
            out, final = k.causal_conv1d_fn(x, c("conv", "weight"), c("conv", "bias"), initial_states=init,
                                            return_final_states=True, activation="silu")
            return {"out": (out, c("conv", "out_init")), "final_states": (final, c("conv", "final_states"))}
        case("causal_conv1d_fn/initial_states", conv_init)
    if k.causal_conv1d_update is not None:
        def upd():
            state = c("conv_update", "state").clone()
            out = k.causal_conv1d_update(c("conv_update", "x"), state, c("conv", "weight"), c("conv", "bias"), "silu")
            return {"out": (out, c("conv_update", "out")), "state": (state, c("conv_update", "state_out"))}
        case("causal_conv1d_update/plain", upd)

        def circ():
            state = c("conv_circ", "state").clone()
            out = k.causal_conv1d_update(c("conv_circ", "x"), state, c("conv", "weight"), None, None,
                                         cache_seqlens=g["conv_circ.cache_seqlens"])
            return {"out": (out, c("conv_circ", "out")), "state": (state, c("conv_circ", "state_out"))}
        case("causal_conv1d_update/circular", circ)
    res["_kernels"] = {n: getattr(k, n) is not None for n in
                       ("selective_scan_fn", "selective_state_update", "causal_conv1d_fn", "causal_conv1d_update")}
    return res


def check_block(device: str) -> dict:
    """Golden block (mamba_ssm's Mamba forward/step) and a d=256 block: CUDA kernels vs pure PyTorch on the CPU."""
    import torch
    from safetensors.torch import load_file

    from livedance.model.mamba import Mamba

    if not device.startswith("cuda"):
        return {"skipped": "not a CUDA device"}
    out: dict[str, dict] = {}
    g = load_file(str(GOLDEN))
    meta_cfg = {"d_model": 16, "d_state": 8, "d_conv": 4, "expand": 2}
    params = {k[len("block.param."):]: v for k, v in g.items() if k.startswith("block.param.")}
    blk = Mamba(**meta_cfg)
    blk.load_state_dict(params)
    gpu = blk.to(device).eval()
    x = g["block.x"].to(device)
    pre, dec = 9, 5
    with torch.no_grad():
        y = gpu(x)
        yp, cs, ss = gpu.forward_with_states(x[:, :pre])
        steps = []
        for t in range(pre, pre + dec):
            s, cs, ss = gpu.step(x[:, t:t + 1], cs, ss)
            steps.append(s)
    errs = {"out": _max_err(y, g["block.out"]), "out_prefill": _max_err(yp, g["block.out_prefill"]),
            "out_steps": _max_err(torch.cat(steps, 1), g["block.out_steps"]),
            "ssm_state_final": _max_err(ss, g["block.ssm_state_final"]),
            "conv_state_final": _max_err(cs, g["block.conv_state_final"])}
    out["golden_block"] = {"max_err": max(errs.values()), "per_output": errs, "ok": max(errs.values()) <= KERNEL_TOL}

    torch.manual_seed(0)
    cpu = Mamba(256).eval()
    with torch.no_grad():  # move A, D and the biases off their init values
        for p in cpu.parameters():
            p.add_(0.02 * torch.randn_like(p))
    gpu = Mamba(256).to(device).eval()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(2, 300, 256)
    with torch.no_grad():
        e_fwd = _max_err(gpu(x.to(device)), cpu(x))
        c, s = gpu.allocate_inference_cache(2)
        c0, s0 = cpu.allocate_inference_cache(2)
        e_step = 0.0
        for t in range(50):
            y, c, s = gpu.step(x[:, t].to(device), c, s)
            y0, c0, s0 = cpu.step(x[:, t], c0, s0)
            e_step = max(e_step, _max_err(y, y0), _max_err(s, s0))
    out["d256_block"] = {"forward_max_err": e_fwd, "step_max_err": e_step, "ok": max(e_fwd, e_step) <= KERNEL_TOL}
    return out


def _feed_back(inputs: dict, prev_out: dict) -> dict:
    """Step inputs with the recurrent states and pending codes taken from the previous step's outputs."""
    new = dict(inputs)
    for n in inputs:
        if n not in NOT_STATE:
            new[n] = prev_out[f"{n}_out"]
    new["pend_codes"] = prev_out["codes"].astype(np.int64)
    return new


def check_graph(device: str, steps: list[tuple[dict, dict]], cuda_graph: bool = False) -> dict:
    """Shipped step graph on ``device`` vs the recorded CPU outputs: teacher-forced and free-running."""
    from livedance.engine import load_step_graph
    from livedance.engine.backends import TorchBackend

    graph, _, _ = load_step_graph(None, "livedance", None)
    be = TorchBackend(graph, device=device, threads=None, cuda_graph=cuda_graph)
    tf_frames, tf_states, tf_codes = 0.0, 0.0, []
    for inp, ref in steps:
        o = be.run(inp)
        tf_frames = max(tf_frames, float(np.abs(o["frames"] - ref["frames"]).max()))
        tf_states = max(tf_states, max(float((np.abs(o[k] - ref[k]) / (1 + np.abs(ref[k]))).max())
                                       for k in o if k.endswith("_out")))
        tf_codes.append(float((o["codes"] == ref["codes"]).mean()))
    free_codes, first_diff, free_frames = [], None, []
    prev = None
    for i, (inp, ref) in enumerate(steps):
        o = be.run(inp if prev is None else _feed_back(inp, prev))
        agree = float((o["codes"] == ref["codes"]).mean())
        if agree < 1.0 and first_diff is None:
            first_diff = i
        free_codes.append(agree)
        free_frames.append(float(np.abs(o["frames"] - ref["frames"]).max()))
        prev = o
    return {"steps": len(steps),
            "teacher_forced": {"frames_max_abs": tf_frames, "states_max_err": tf_states,
                               "codes_agree_min": min(tf_codes), "codes_agree_mean": float(np.mean(tf_codes))},
            "free_run": {"codes_agree_mean": float(np.mean(free_codes)), "first_step_with_a_different_code": first_diff,
                         "frames_max_abs_first_10_steps": max(free_frames[:10])},
            "ok": tf_frames <= 1e-3 and min(tf_codes) >= 0.99}


def _set_fast_path(graph, on: bool) -> None:
    from livedance.model.mamba import Mamba

    for m in graph.modules():
        if isinstance(m, Mamba):
            m.use_fast_path = on


def time_steps(device: str, steps: list[tuple[dict, dict]], n: int, fast_path: bool, threads: int | None,
               cuda_graph: bool = False) -> dict:
    """p50 / p99 of ``TorchBackend.run`` (ms per step) over ``n`` recorded steps after 20 warm-up steps."""
    import torch

    from livedance.engine import load_step_graph
    from livedance.engine.backends import TorchBackend

    graph, _, _ = load_step_graph(None, "livedance", None)
    _set_fast_path(graph, fast_path)
    be = TorchBackend(graph, device=device, threads=threads, cuda_graph=cuda_graph)
    seq = [steps[i % len(steps)][0] for i in range(n + 20)]
    ms = np.empty(n)
    for i, inp in enumerate(seq):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter_ns()
        be.run(inp)  # ends with .cpu(): synchronous
        if i >= 20:
            ms[i - 20] = (time.perf_counter_ns() - t0) / 1e6
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": n}


def check(steps_path: Path, device: str, json_out: Path | None, n_time: int) -> int:
    """Run every check; print a summary; return the exit status."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    steps, meta = _load_steps(steps_path)
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
           "recorded": meta}
    for mod in ("mamba_ssm", "causal_conv1d", "triton"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:
            env[mod] = f"not importable ({type(e).__name__})"
    res = {"env": env}
    res["golden_kernels"] = check_golden(device)
    res["blocks"] = check_block(device)
    res["step_graph"] = check_graph(device, steps)
    if device.startswith("cuda"):
        try:
            res["step_graph_cuda_graph"] = check_graph(device, steps, cuda_graph=True)
        except Exception as e:  # a capture failure is reported with the rest
            res["step_graph_cuda_graph"] = {"error": f"{type(e).__name__}: {e}"[:500], "ok": False}
    frames_per_step = int(steps[0][1]["frames"].shape[1])
    timing = {}
    if device.startswith("cuda"):
        from livedance.model.mamba import cuda_kernels

        # Without mamba-ssm both settings run the same pure-PyTorch ops: time them once.
        modes = (True, False) if cuda_kernels() is not None else (False,)
        for fast in modes:
            timing[f"cuda_{'mamba_kernels' if fast else 'pure_pytorch'}"] = time_steps(device, steps, n_time, fast, None)
        for fast in modes:
            try:
                timing[f"cuda_graph_{'mamba_kernels' if fast else 'pure_pytorch'}"] = time_steps(
                    device, steps, n_time, fast, None, cuda_graph=True)
            except Exception as e:
                print(f"cuda graph timing (fast path {fast}) failed: {type(e).__name__}: {e}")
    timing["cpu_torch_1_thread"] = time_steps("cpu", steps, min(n_time, 200), False, 1)
    for v in timing.values():
        v["p99_ms_per_frame"] = v["p99_ms"] / frames_per_step
    res["timing"] = {"frames_per_step": frames_per_step, **timing}

    print(json.dumps(res["env"], indent=1))
    print("\n== mamba-ssm kernels vs golden reference outputs (max |a-b|/(1+|b|)) ==")
    for name, r in res["golden_kernels"].items():
        print(f"  {name:40s} {r}")
    print("\n== Mamba block: CUDA kernels vs pure PyTorch ==")
    for name, r in res["blocks"].items():
        print(f"  {name:40s} {r}")
    print("\n== shipped step graph on", device, "vs recorded CPU outputs ==")
    print(" ", json.dumps(res["step_graph"]))
    if "step_graph_cuda_graph" in res:
        print("  replayed as a CUDA graph:", json.dumps(res["step_graph_cuda_graph"]))
    print(f"\n== step latency, batch 1, {frames_per_step} frames per step at 25 fps ==")
    for name, r in timing.items():
        print(f"  {name:24s} p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms  "
              f"p99/frame {r['p99_ms_per_frame']:6.3f} ms  (n={r['n']})")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(res, indent=1))
    failed = [n for sec in ("golden_kernels", "blocks") for n, r in res[sec].items()
              if isinstance(r, dict) and r.get("ok") is False]
    failed += [n for n in ("step_graph", "step_graph_cuda_graph") if res.get(n, {}).get("ok") is False]
    print("\nFAILED: " + ", ".join(failed) if failed else "\nall checks that ran passed")
    return 1 if failed else 0


def main() -> None:
    """Parse the subcommand and run it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="record the shipped model's step inputs/outputs on this (CPU) host")
    r.add_argument("--out", type=Path, default=ROOT / ".gpu" / "steps.safetensors")
    r.add_argument("--song", type=Path, default=SONG)
    r.add_argument("--seconds", type=float, default=30.0)
    r.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check", help="run the checks and timings on a CUDA host")
    c.add_argument("--steps", type=Path, default=ROOT / ".gpu" / "steps.safetensors")
    c.add_argument("--device", default="cuda")
    c.add_argument("--json", type=Path, default=None)
    c.add_argument("--time-steps", type=int, default=500, help="timed steps per configuration")
    a = ap.parse_args()
    if a.cmd == "record":
        record(a.out, a.song, a.seconds, a.seed)
    else:
        sys.exit(check(a.steps, a.device, a.json, a.time_steps))


if __name__ == "__main__":
    main()
