"""GPU hosts: does cuDNN's TF32 move the CUDA step away from the CPU step? (docs/gpu.md, runs 4-5)

Builds the tiny random step graph of ``tests/test_engine.py`` (same seed, same sizes), steps a CPU torch
generator and a CUDA one (eager, then CUDA graph; each with ``TorchBackend.allow_tf32`` on and off) through
the same 20 random music contexts (the test's ``_contexts``), and prints, per configuration, whether every
sampled code agreed and the largest |difference| of the local quaternions per step (unitless, float32).

    PYTHONPATH=<site with livedance installed> python3 scripts/gpu_tf32_check.py [--json OUT]

Needs a CUDA device; run it from outside the repository root so ``import livedance`` finds the installed
package (``scripts/gpu_host.sh`` installs it).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch


def contexts(n: int, seed: int = 0):
    """The music contexts of ``tests/test_engine.py::_contexts``: random 180-d features at 43.07 fps, 118 BPM."""
    from livedance.engine.base import MusicContext

    rng = np.random.default_rng(seed)
    t = 3.0
    for _ in range(n):
        f = rng.normal(size=(int(rng.integers(10, 17)), 180)).astype(np.float32)
        yield MusicContext(f, t - 0.2 + np.arange(f.shape[0]) / 43.07, 118.0, float(rng.random()), 0.9, t)
        t += 0.32


def main() -> None:
    """Run the four CUDA configurations against the CPU and print (and optionally write) the differences."""
    from livedance.engine import build_generator
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator, GeneratorConfig
    from livedance.model.mamba import cuda_kernels
    from livedance.model.representation import Representation
    from livedance.model.tokenizer import Tokenizer, TokenizerConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    ap.add_argument("--steps", type=int, default=20, help="generator steps (8 frames each)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit(f"gpu_tf32_check: this torch ({torch.__version__}) sees no CUDA device; run it on a GPU host")
    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(codebook_size=32, latent_dim=16, width=32, kmeans_init=False)).eval()
    cfg = GeneratorConfig(d_model=32, n_layers=2, chunk_layers=1, n_heads=2, codebook_size=32, window=4, d_state=4)
    graph = StepGraph(DanceGenerator(cfg).eval(), tok).eval()
    rep = Representation()
    conv = getattr(torch.backends.cudnn, "conv", None)
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "mamba_kernels": cuda_kernels() is not None,
           "cudnn_conv_precision_default": getattr(conv, "fp32_precision", None)}
    for cuda_graph in (False, True):
        for tf32 in (True, False):
            a = build_generator(copy.deepcopy(graph), rep, "torch", seed=3)
            b = build_generator(copy.deepcopy(graph), rep, "torch", seed=3, device="cuda", cuda_graph=cuda_graph)
            b.backend.allow_tf32 = tf32
            b.backend._captured = None  # recapture under this setting (build_generator captured with the default)
            worst, codes = [], True
            for ctx in contexts(args.steps):
                fa, fb = a.step(ctx), b.step(ctx)
                codes &= bool((a._pend_codes == b._pend_codes).all())
                worst.append(float(np.abs(fa.local_quats - fb.local_quats).max()))
            res[f"cuda_graph={cuda_graph} tf32={tf32}"] = {
                "codes_agree": codes, "max_quat_diff": max(worst), "per_step": [float(f"{w:.2e}") for w in worst]}
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
