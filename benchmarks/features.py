"""Per-hop cost of the streaming features (log-mel + onset + rhythm phase), on one core.

Pushes one hop (512 samples at 22050 Hz by default) at a time into StreamingFeatures and times each
push with time.perf_counter_ns; prints p50 / p90 / p99 / max per hop, the real-time factor (hop
duration / p99 cost) and the cost of the parts (STFT frame kernel, fast and reference) and of the
offline twin. numpy/BLAS threads are pinned to 1 before numpy is imported. Goal: p99 <= 0.3 ms.

    .venv/bin/python benchmarks/features.py            # add --cpu 0 to pin the process to core 0
    taskset -c 0 .venv/bin/python benchmarks/features.py --hops 20000
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _percentiles(ns: np.ndarray) -> dict[str, float]:
    ms = ns / 1e6
    return {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def _time_calls(fn, n: int) -> np.ndarray:
    out = np.empty(n, np.int64)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        out[i] = time.perf_counter_ns() - t0
    return out


def main() -> None:
    """Run the benchmark and print a table (see the module docstring for the options)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hops", type=int, default=10000, help="timed hops (default 10000)")
    ap.add_argument("--warmup", type=int, default=500, help="untimed hops first (default 500)")
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU core")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    from rich.console import Console
    from rich.table import Table

    from livedance.features import FeatureConfig, StreamingFeatures, offline_features
    from livedance.features.filters import analysis_window
    from livedance.kernels.stft import StftFrame, power_frame_ref

    cfg = FeatureConfig()
    hop = cfg.hop
    n_hops = args.warmup + args.hops
    rng = np.random.default_rng(args.seed)
    # Noise with a beat-like envelope: the cost does not depend on the content, but keep it musical.
    env = 0.2 + 0.8 * (np.arange(n_hops * hop) % (cfg.sr // 2) < 2000)
    audio = (0.3 * env * rng.standard_normal(n_hops * hop)).astype(np.float32)

    feats = StreamingFeatures(cfg)
    blocks = [audio[i * hop : (i + 1) * hop] for i in range(n_hops)]
    for i in range(args.warmup):
        feats.push(blocks[i])
    push_ns = _time_calls(lambda i: feats.push(blocks[args.warmup + i]), args.hops)

    stft = StftFrame(analysis_window(cfg))
    ring = rng.standard_normal(cfg.n_fft)
    power = np.empty(cfg.n_bins)
    window = analysis_window(cfg)
    fast_ns = _time_calls(lambda i: stft.power(ring, (i * hop) % cfg.n_fft, out=power), args.hops)
    ref_ns = _time_calls(lambda i: power_frame_ref(ring, (i * hop) % cfg.n_fft, window), args.hops)

    offline_features(audio[: 100 * hop], cfg)  # warm (imports, filterbank)
    t0 = time.perf_counter_ns()
    off = offline_features(audio, cfg)
    off_ns = time.perf_counter_ns() - t0

    table = Table(title=f"streaming features, 1 hop = {hop} samples = {cfg.hop_s * 1e3:.1f} ms "
                        f"at {cfg.sr} Hz, D = {cfg.feature_dim}")
    for col in ("what", "p50 ms", "p90 ms", "p99 ms", "max ms", "real-time factor (hop / p99)"):
        table.add_column(col, justify="right" if col != "what" else "left")
    for name, ns in (
        ("StreamingFeatures.push (all features)", push_ns),
        ("  StftFrame.power (fast kernel)", fast_ns),
        ("  power_frame_ref (reference kernel)", ref_ns),
    ):
        p = _percentiles(ns)
        table.add_row(name, f"{p['p50']:.4f}", f"{p['p90']:.4f}", f"{p['p99']:.4f}", f"{p['max']:.3f}",
                      f"{cfg.hop_s * 1e3 / p['p99']:.0f}x")
    per_frame = off_ns / 1e6 / len(off)
    table.add_row("offline_features (per frame, amortised)", f"{per_frame:.4f}", "", "", "",
                  f"{cfg.hop_s * 1e3 / per_frame:.0f}x")
    console = Console(width=120)
    console.print(table)
    p99 = _percentiles(push_ns)["p99"]
    console.print(
        f"goal p99 <= 0.3 ms per hop: {'met' if p99 <= 0.3 else 'NOT met'} (p99 = {p99:.4f} ms); "
        f"{args.hops} timed hops; numpy {np.__version__}; {platform.processor() or platform.machine()}; "
        f"affinity {sorted(os.sched_getaffinity(0))}"
    )


if __name__ == "__main__":
    main()
