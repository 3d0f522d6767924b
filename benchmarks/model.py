"""Generator cost per output frame (ONNX Runtime vs torch eager), offline real-time factor, no-freezing check.

Times :meth:`LearnedGenerator.step` (commit + chunk mask-predict + residual head + token decode inside
the step graph, then feature -> quaternion decode in numpy) one step at a time on ONE thread, with
realistic inputs (13-14 new feature frames per 320 ms step). A step yields K * 4 = 8 frames at 25 fps,
so the amortized cost per output frame is step / 8. Goals: p99 <= 2 ms per frame; offline real-time
factor >= 50x (generator only, and end to end with streaming features + causal beat tracker).

    .venv/bin/python benchmarks/model.py                       # shipped weights (random ones if absent)
    .venv/bin/python benchmarks/model.py --steps 400 --song livedance/assets/armygeddon-excerpt.ogg
    .venv/bin/python benchmarks/model.py --freeze              # + the 10-minute no-freezing check (test songs back to back,
                                                               #   the last minute replaying the first minute's music)
    .venv/bin/python benchmarks/model.py --model baseline
    .venv/bin/python benchmarks/model.py --lookahead 1          # the offline figure with the live loop's interleaving
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _graph(model: str, weights: str | None, tokenizer: str | None):
    """The step graph from weights, or (when none are shipped) a randomly initialised one of the default size."""
    import torch

    from livedance.engine import load_step_graph
    from livedance.engine.step_graph import StepGraph
    from livedance.errors import WeightsError
    from livedance.model.generator import GeneratorConfig

    try:
        graph, rep, _ = load_step_graph(weights, model, tokenizer)
        return graph, rep, "trained weights"
    except WeightsError as e:
        print(f"(no usable weights: {e}; timing a randomly initialised model of the default size)")
    from livedance.model.representation import Representation
    from livedance.model.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    try:
        tok, rep, _ = Tokenizer.load(tokenizer)
    except WeightsError:
        tok, rep = Tokenizer(TokenizerConfig(kmeans_init=False)).eval(), Representation()
    cfg = GeneratorConfig(parts=tok.config.parts, levels=tok.config.levels, codebook_size=tok.config.codebook_size)
    if model == "baseline":
        from livedance.model.baseline_gpt import BaselineGPT

        net = BaselineGPT(cfg)
    else:
        from livedance.model.generator import DanceGenerator

        net = DanceGenerator(cfg)
    return StepGraph(net.eval(), tok).eval(), rep, "random weights"


def _contexts(n: int, seed: int = 0):
    from livedance.engine.base import MusicContext

    rng = np.random.default_rng(seed)
    t, fed = 0.0, 0
    for _ in range(n):
        t += 0.32
        upto = int((t - 0.16) * 22050 / 512)
        f = rng.normal(size=(max(upto - fed, 0), 180)).astype(np.float32)
        times = (np.arange(fed, upto) + 1) * 512 / 22050
        fed = upto
        yield MusicContext(f, times, 120.0, (2 * t) % 1.0, 0.9, t)


def _guard(rep, graph, on: bool):
    """The shipped pose guard for ``--pose-guard`` (None without it)."""
    if not on:
        return None
    from livedance.engine.loader import make_pose_guard
    from livedance.engine.pose_guard import PoseGuardConfig

    return make_pose_guard(rep, graph.config.fps, PoseGuardConfig(enabled=True))


def bench_steps(graph, rep, backend: str, steps: int, onnx_path: Path, guard: bool = False) -> dict:
    from livedance.engine import build_generator

    gen = build_generator(graph, rep, backend, onnx_path, seed=0, threads=1, pose_guard=_guard(rep, graph, guard))
    ctxs = list(_contexts(steps + 20))
    for c in ctxs[:20]:  # warm-up
        gen.step(c)
    ns = np.empty(steps, np.int64)
    for i, c in enumerate(ctxs[20:]):
        t0 = time.perf_counter_ns()
        gen.step(c)
        ns[i] = time.perf_counter_ns() - t0
    ms = ns / 1e6
    fr = gen.frames_per_step
    return {"p50_step": np.percentile(ms, 50), "p99_step": np.percentile(ms, 99),
            "p50_frame": np.percentile(ms, 50) / fr, "p99_frame": np.percentile(ms, 99) / fr, "frames_per_step": fr}


def bench_rtf(graph, rep, song: Path, seconds: float, onnx_path: Path, repeats: int = 5, guard: bool = False,
              lookahead: int | None = None) -> dict:
    """Offline real-time factor: ``seconds`` of ``song`` danced ``repeats`` times (a fresh generator each time;
    ``lookahead``: steps the audio analysis runs ahead, None = generate_song's default, 1 = the live interleaving);
    the medians of the generator's step time and of the end-to-end time, with every run's RTF listed; also the
    per-step cost on this real song (p50 / p99 over all runs' steps, ms) and the pose guard's extra runs."""
    from livedance.engine import build_generator
    from livedance.engine.offline import generate_song

    gen_s, total_s, steps, resampled = [], [], [], 0
    for _ in range(max(1, repeats)):
        gen = build_generator(graph, rep, "onnx", onnx_path, seed=0, threads=1, pose_guard=_guard(rep, graph, guard))
        t0 = time.perf_counter()
        m = generate_song(gen, song, 0.0, seconds, seed=0,
                          **({} if lookahead is None else {"lookahead_steps": lookahead}))
        total_s.append(time.perf_counter() - t0)
        gen_s.append(float(m.step_s.sum()))
        steps.append(m.step_s * 1e3)
        resampled += gen.n_pose_resamples
    dur = len(m.local_quats) / m.fps
    g, t = float(np.median(gen_s)), float(np.median(total_s))
    st = np.concatenate(steps)
    return {"seconds": dur, "gen_s": g, "total_s": t, "rtf_gen": dur / g, "rtf_total": dur / t, "n_bad": m.n_bad,
            "rtf_gen_runs": [dur / x for x in gen_s], "song_p50_step": float(np.percentile(st, 50)),
            "song_p99_step": float(np.percentile(st, 99)), "extra_runs_per_step": resampled / len(st)}


def _root_relative_speed(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T, J, 3) joint positions (m) -> (T - 1,) mean root-relative joint speed, m/s (dancing, not travelling)."""
    rel = positions - positions[:, :1]
    return np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(-1) * fps


def freeze_check(graph, rep, onnx_path: Path, minutes: float = 10.0, split: str = "test",
                 layout: str = "bookend", guard: bool = False) -> dict:
    """A split's danced excerpts back to back for ``minutes`` minutes; mean root-relative joint speed per minute.

    Layouts:
        ``bookend`` (default): the excerpts cycled for ``minutes - 1`` minutes, then the first minute's music
            again, so the first and the last minute ask for the same dance and their speed ratio measures
            the dancer, not the songs (the real dances' ratio is 1 by construction);
        ``cycle``: the excerpts cycled for ``minutes`` minutes (the first layout of this check). The real
            dances' own ratio there is printed beside ours: 0.54 on the test split, because the last minute
            is a slow waltz and the first a cha-cha, so this layout measures the songs as much as the dancer.

    Returns:
        dict with ``per_minute`` (m/s), ``ratio_last_first``, ``real_ratio`` (the real dances' ratio in
        the same layout, their speeds placed where their excerpts play), ``n_bad``, ``songs``, ``layout``.
    Raises:
        ValueError: unknown layout, or ``bookend`` with fewer than 2 minutes.
    """
    from livedance.data.audio_io import load_audio
    from livedance.data.dataset import load_split
    from livedance.engine import build_generator
    from livedance.engine.offline import generate_song, motion_positions

    if layout not in ("bookend", "cycle"):
        raise ValueError(f"layout {layout!r}: expected 'bookend' or 'cycle'")
    if layout == "bookend" and minutes < 2:
        raise ValueError(f"minutes={minutes}: the bookend layout needs at least 2 minutes")
    clips = load_split(split, progress=False)
    body_s = minutes * 60 - (60.0 if layout == "bookend" else 0.0)
    a22, a44, real, total, i = [], [], [], 0.0, 0
    while total < body_s:
        c = clips[i % len(clips)]
        d = c.num_frames / c.fps
        a22.append(load_audio(c.audio_path, sr=22050, offset_s=c.audio_offset_s, duration_s=d)[0])
        a44.append(load_audio(c.audio_path, sr=44100, offset_s=c.audio_offset_s, duration_s=d)[0])
        sp = _root_relative_speed(np.asarray(c.positions, np.float64), c.fps)
        real.append(np.append(sp, sp[-1]))  # (T,): one value per frame, so the clips stay on the audio's clock
        total += d
        i += 1
    n22, n44, n_real = int(body_s * 22050), int(body_s * 44100), int(body_s * clips[0].fps)
    x22, x44, sp_real = (np.concatenate(a22)[:n22], np.concatenate(a44)[:n44], np.concatenate(real)[:n_real])
    if layout == "bookend":  # the first minute's music (and real dance) once more at the end
        x22 = np.concatenate([x22, x22[: 60 * 22050]])
        x44 = np.concatenate([x44, x44[: 60 * 44100]])
        sp_real = np.concatenate([sp_real, sp_real[: int(60 * clips[0].fps)]])
    gen = build_generator(graph, rep, "onnx", onnx_path, seed=0, threads=1, pose_guard=_guard(rep, graph, guard))
    m = generate_song(gen, clips[0].audio_path, 0.0, None, seed=0, audio=(x22, x44))
    speed = _root_relative_speed(motion_positions(m, rep.rest_offsets), m.fps)
    per_min = [float(speed[int(k * 60 * m.fps): int((k + 1) * 60 * m.fps)].mean()) for k in range(int(minutes))]
    f_real = clips[0].fps
    real_min = [float(sp_real[int(k * 60 * f_real): int((k + 1) * 60 * f_real)].mean()) for k in (0, int(minutes) - 1)]
    return {"per_minute": per_min, "ratio_last_first": per_min[-1] / max(per_min[0], 1e-9),
            "real_ratio": real_min[1] / max(real_min[0], 1e-9), "n_bad": m.n_bad, "songs": i,
            "stall_steps": int(getattr(gen, "n_stall_steps", 0)), "layout": layout}


def _print_freeze(f: dict, split: str) -> None:
    print(f"no-freezing check ({split} songs, layout {f['layout']}), mean root-relative joint speed per minute (m/s): "
          + " ".join(f"{v:.3f}" for v in f["per_minute"]))
    print(f"last minute / first minute = {f['ratio_last_first']:.2f} (goal >= 0.70; the real dances in the same layout: "
          f"{f['real_ratio']:.2f}); {f['songs']} song excerpts; stall-guard steps {f['stall_steps']}; bad frames {f['n_bad']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="livedance", choices=["livedance", "baseline"])
    ap.add_argument("--weights", default=None, help="generator weights stem (default: shipped)")
    ap.add_argument("--tokenizer", default=None, help="tokenizer stem (default: shipped)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--song", default=str(ROOT / "livedance" / "assets" / "armygeddon-excerpt.ogg"))
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--freeze", action="store_true", help="run the 10-minute no-freezing check")
    ap.add_argument("--freeze-split", default="test", help="split whose songs the no-freezing check dances (val to choose T)")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the weights' config)")
    ap.add_argument("--only-freeze", action="store_true", help="skip the cost and real-time-factor figures")
    ap.add_argument("--lookahead", type=int, default=None,
                    help="steps the offline audio analysis runs ahead of the generator (default: generate_song's, 32; "
                    "1 = interleaved as in the live loop, the schedule before session 16)")
    ap.add_argument("--pose-guard", action="store_true",
                    help="measure with the shipped pose guard (livedance.engine.pose_guard): its check on every step and "
                         "its extra runs on steps over budget")
    ap.add_argument("--freeze-layout", default="bookend", choices=["bookend", "cycle"],
                    help="bookend: the last minute replays the first minute's music (default); cycle: the songs cycled")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    graph, rep, what = _graph(args.model, args.weights, args.tokenizer)
    if args.temperature is not None:
        from dataclasses import replace

        graph.model.config = graph.config = replace(graph.config, temperature=float(args.temperature))
    n_par = sum(p.numel() for p in graph.model.parameters())
    print(f"model {args.model} ({what}, {n_par:,} generator parameters), chunk K={graph.config.chunk}, "
          f"{graph.config.mask_iters} mask-predict iterations, token decode over {graph.context_tokens}+K tokens; "
          f"sampling temperature {graph.config.temperature:g}; "
          f"{platform.processor() or platform.machine()}, 1 thread, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "step.onnx"
        if args.only_freeze:
            _print_freeze(freeze_check(graph, rep, onnx_path, split=args.freeze_split, layout=args.freeze_layout,
                                       guard=args.pose_guard),
                          args.freeze_split)
            return
        rows = {b: bench_steps(graph, rep, b, args.steps, onnx_path, args.pose_guard) for b in ("onnx", "torch")}
        if args.pose_guard:
            print("with the pose guard (--pose-guard)")
        print(f"{'backend':8s} {'p50/step':>9s} {'p99/step':>9s} {'p50/frame':>10s} {'p99/frame':>10s}  (ms, {args.steps} steps)")
        for b, r in rows.items():
            print(f"{b:8s} {r['p50_step']:9.2f} {r['p99_step']:9.2f} {r['p50_frame']:10.3f} {r['p99_frame']:10.3f}")
        print(f"onnx speed-up over torch (p50): {rows['torch']['p50_step'] / rows['onnx']['p50_step']:.2f}x; "
              f"goal p99 <= 2 ms/frame: {'met' if rows['onnx']['p99_frame'] <= 2.0 else 'NOT met'}")
        r = bench_rtf(graph, rep, Path(args.song), args.seconds, onnx_path, guard=args.pose_guard, lookahead=args.lookahead)
        fr = graph.config.chunk * graph.config.stride
        print(f"on the real song (onnx): p50 / p99 {r['song_p50_step']:.2f} / {r['song_p99_step']:.2f} ms per step = "
              f"{r['song_p50_step'] / fr:.3f} / {r['song_p99_step'] / fr:.3f} ms per frame; pose guard extra runs per step "
              f"{r['extra_runs_per_step']:.3f}")
        runs = ", ".join(f"{x:.0f}x" for x in r["rtf_gen_runs"])
        la = "default" if args.lookahead is None else args.lookahead
        print(f"offline {r['seconds']:.1f} s of {Path(args.song).name} (lookahead {la}; median of {len(r['rtf_gen_runs'])} runs): generator "
              f"{r['gen_s']:.2f} s -> real-time factor {r['rtf_gen']:.0f}x (runs: {runs}; goal >= 50x); end to end (streaming features + causal beat tracker + generator) {r['total_s']:.1f} s "
              f"-> {r['rtf_total']:.1f}x; bad frames {r['n_bad']}")
        if args.freeze:
            _print_freeze(freeze_check(graph, rep, onnx_path, split=args.freeze_split, layout=args.freeze_layout,
                                       guard=args.pose_guard),
                          args.freeze_split)


if __name__ == "__main__":
    main()
