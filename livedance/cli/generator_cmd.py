"""``livedance train generator``, ``livedance generate``, ``livedance export``.

See docs/model.md (generator and engine sections). ``livedance train baseline`` lives in baseline_cmd.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from livedance.cli import DATA_ROOT_HELP, app
from livedance.cli.model_cmd import train_app

_MODELS = ("livedance", "baseline")


def _train(model: str, steps: int, minutes: Optional[float], seed: int, out: Optional[Path], resume: bool,
           batch_size: int, tokens: int, lr: float, threads: int, tokenizer: Optional[Path], ship: bool,
           data_root: Optional[Path], progress: bool, corrupt: float = 0.0, mirror: bool = False,
           dropout: Optional[float] = None, music_dropout: Optional[float] = None, style_balance: float = 0.0,
           speeds: tuple[float, ...] = (), align_weight: float = 0.0, align_temperature: float = 0.6,
           retrieval: Optional[Path] = None, init: Optional[Path] = None, timbre: bool = True,
           pace: bool = False, continuity_weight: float = 0.0, ema_decay: float = 0.0,
           hold: float = 0.0, hold_slots: int = 12) -> None:
    import torch
    from rich.console import Console

    from livedance.model.train_generator import GeneratorRunConfig, run_training

    torch.set_num_threads(threads)
    name = "generator" if model == "livedance" else "baseline"
    cfg = GeneratorRunConfig(model=model, steps=steps, minutes=minutes, seed=seed, batch_size=batch_size, lr=lr,
                             tokens=tokens, out=out or Path("runs") / name, resume=resume, tokenizer=tokenizer,
                             ship=ship, data_root=data_root, progress=progress, corrupt=corrupt, mirror=mirror,
                             style_balance=style_balance, speeds=speeds, align_weight=align_weight,
                             align_temperature=align_temperature, retrieval=retrieval, init=init, timbre=timbre,
                             pace=pace, continuity_weight=continuity_weight, ema_decay=ema_decay, hold=hold,
                             hold_slots=hold_slots,
                             overrides={k: v for k, v in (("dropout", dropout), ("music_dropout", music_dropout))
                                        if v is not None})
    res = run_training(cfg)
    Console().print(f"{name}: {res['steps']} steps in {res['elapsed_s']:.0f} s (stopped by {res['stopped_by']}); "
                    f"last losses {res.get('final')}; wrote {', '.join(res.get('paths', []))}"
                    + (f"; shipped {', '.join(res['shipped'])}" if res.get("shipped") else ""), highlight=False)


_STEPS = typer.Option(3000, min=1, help="Optimiser steps (the LR schedule's length).")
_MIN = typer.Option(None, min=0.01, help="Wall-clock budget in minutes (stops and anneals early).")


@train_app.command("generator")
def train_generator_cmd(
    steps: int = _STEPS, minutes: Optional[float] = _MIN,
    seed: int = typer.Option(0, min=0, help="Random seed."),
    out: Optional[Path] = typer.Option(None, help="Run folder (checkpoints, log); default runs/generator."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoint."),
    batch_size: int = typer.Option(16, min=1, help="Token windows per step (per rank)."),
    tokens: int = typer.Option(64, min=3, help="Token slots per training window (0.16 s each)."),
    lr: float = typer.Option(1e-3, min=1e-8, max=1.0, help="Peak learning rate (AdamW)."),
    threads: int = typer.Option(1, min=1, help="torch CPU threads per process (1 is fastest on a loaded 2-core machine)."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer weights stem (default: the shipped one)."),
    ship: bool = typer.Option(False, "--ship", help="Also write livedance/weights/generator.*."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    corrupt: float = typer.Option(0.0, min=0.0, max=1.0, help="Token corruption of the committed history "
                                  "(T2M-GPT): each window replaces a share r ~ U(0, CORRUPT) of its input tokens "
                                  "by random codes; targets stay clean. Against memorising few clips."),
    mirror: bool = typer.Option(False, "--mirror", help="Also train on each dance mirrored left/right (same "
                                "music): twice the data, against memorising few clips."),
    dropout: Optional[float] = typer.Option(None, min=0.0, max=0.9, help="Dropout on token inputs and residual "
                                            "branches while training (GPT-2 placement; none at inference). Against "
                                            "memorising few clips. Default: 0, or the --init weights' value."),
    music_dropout: Optional[float] = typer.Option(None, min=0.0, max=0.9, help="Share of chunks whose head music "
                                                  "is replaced by a learned null vector while training: a "
                                                  "regulariser (the shipped run uses 0.2) and what classifier-free "
                                                  "guidance needs (livedance eval --guidance W; docs/model.md, "
                                                  "\"Music dropout\"). Default: 0, or the --init weights' value."),
    style_balance: float = typer.Option(0.0, min=0.0, max=1.0, help="Draw the dance styles in proportion to "
                                        "n^(1 - B) of their training windows n instead of n (the rarer styles' "
                                        "windows repeated): 0 keeps the data's shares (Tang: 19 of 26 train dances "
                                        "are waltzes), 1 draws every style equally often."),
    speed: list[float] = typer.Option([], "--speed", min=0.5, max=2.0, help="Speed perturbation: also train on "
                                      "every dance danced SPEED times as fast to its song played as fast (tempo "
                                      "and pitch together; repeat the option, e.g. --speed 0.9 --speed 1.1)."),
    align_weight: float = typer.Option(0.0, min=0.0, help="Weight of SoulNet's music-dance alignment prior beside "
                                       "the cross-entropy: the model's drawn codes are decoded to a dance and scored "
                                       "by the frozen retrieval model against its music (InfoNCE; "
                                       "livedance.model.align). 0 = off. Needs --tokens 42 or more (with the shipped "
                                       "tokenizer and retrieval model)."),
    align_temperature: float = typer.Option(0.6, min=0.01, help="Sampling temperature of the straight-through draws "
                                            "of --align-weight and --continuity-weight (the shipped sampling uses 0.6)."),
    continuity_weight: float = typer.Option(0.0, min=0.0, help="Weight of a kinetic-continuity loss beside the "
                                            "cross-entropy: the model's drawn codes are decoded and each joint's mean "
                                            "acceleration is held to the real dance's (log ratio squared; "
                                            "livedance.model.continuity). 0 = off."),
    retrieval: Optional[Path] = typer.Option(None, help="Retrieval weights stem for --align-weight (default: the "
                                             "shipped livedance/weights/retrieval)."),
    init: Optional[Path] = typer.Option(None, help="Start from these generator weights (a fine-tune; e.g. "
                                        "livedance/weights/generator) instead of a fresh model. Their config is kept; "
                                        "--dropout or --music-dropout, when given (0 included), overrides it."),
    timbre: bool = typer.Option(True, "--timbre/--no-timbre", help="Hear the log-mel bands of the music (default). "
                                "--no-timbre mutes them in the music encoder's normalisation, so the model hears "
                                "onsets, the rhythm bank and the beat only (docs/model.md, \"Without timbre\"). "
                                "--init weights trained with --no-timbre stay muted."),
    pace: bool = typer.Option(False, "--pace", help="Give the model the dancer's pace (mean limb speed around each "
                              "slot, m/s) as an input: the engine draws one per performance from the train dances' "
                              "paces, or takes the user's (livedance eval/generate --pace). docs/model.md, \"Pace\"."),
    ema: float = typer.Option(0.0, "--ema", min=0.0, max=0.9999, help="Average the weights over training with this "
                              "decay (Polyak averaging; e.g. 0.99 averages the last ~100 steps) and write the average "
                              "as the run's weights, the last step's as <out>/generator-last. 0 = off."),
    hold: float = typer.Option(0.0, "--hold", min=0.0, max=1.0, help="Share of training windows whose history holds "
                               "one run of tokens (2-12 slots repeating one slot), the targets staying real: teaches "
                               "the model to leave a held code (docs/model.md). 0 = off."),
    hold_slots: int = typer.Option(12, "--hold-slots", min=2, max=64, help="The longest held run of --hold, in slots "
                                   "(0.16 s each); the sampler's worst holds last 31 slots (5 s)."),
) -> None:
    """Train the causal dance generator (Mamba + chunked mask-predict) on the Tang train split."""
    _train("livedance", steps, minutes, seed, out, resume, batch_size, tokens, lr, threads, tokenizer, ship, data_root,
           progress, corrupt, mirror, dropout, music_dropout, style_balance, tuple(speed), align_weight,
           align_temperature, retrieval, init, timbre, pace, continuity_weight, ema, hold, hold_slots)


@app.command("generate")
def generate_cmd(
    song: Path = typer.Argument(..., help="Audio file (wav, flac, ogg, opus or mp3)."),
    output: Path = typer.Option(..., "-o", "--output", help="Motion .npz to write (docs/formats.md)."),
    model: str = typer.Option("livedance", "--model", help="livedance (the generator) or baseline."),
    weights: Optional[Path] = typer.Option(None, help="Weights stem (default: the shipped weights of --model)."),
    backend: str = typer.Option("onnx", help="Engine backend: onnx (default), torch or tensorrt."),
    seed: int = typer.Option(0, min=0, help="Sampling seed (>= 0)."),
    greedy: bool = typer.Option(False, "--greedy", help="Argmax decoding instead of sampling."),
    start: float = typer.Option(0.0, min=0.0, help="Song time of the first frame, seconds (>= 0)."),
    duration: Optional[float] = typer.Option(None, help="Seconds to dance, > 0 (default: to the end)."),
    bvh: Optional[Path] = typer.Option(None, help="Also write a BVH of the 22 body joints."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer weights stem (default: the shipped one)."),
    device: str = typer.Option("cpu", help="torch device for --backend torch (cuda: mamba-ssm kernels if installed)."),
    cuda_graph: bool = typer.Option(False, "--cuda-graph", help="With --backend torch --device cuda: capture the step "
                                    "once and replay it as a CUDA graph (about 8x faster per step on an H100; docs/gpu.md)."),
    pose_guard: bool = typer.Option(
        False, "--pose-guard/--no-pose-guard", help="Resample hotter when the dance holds a pose the train dances "
        "hardly hold (livedance.engine.pose_guard; docs/model.md)."),
    style: Optional[str] = typer.Option(None, help="Dance in a training style: cha-cha, rumba, tango or waltz with the "
                                        "shipped weights (a code prior on the sampler, livedance.engine.style_prior; "
                                        "default: the model's own choice)."),
    style_strength: float = typer.Option(1.0, min=0.0, help="How hard --style pushes (1 = the prior-shift "
                                         "correction; 2 = twice as far in log-probability)."),
    pace: Optional[float] = typer.Option(None, min=0.05, max=3.0, help="Dance at this pace: mean limb speed about "
                                         "the pelvis, m/s (the Tang train dances: 0.25-0.87). Needs weights trained "
                                         "with --pace; default: drawn from the train dances' paces by --seed."),
) -> None:
    """Dance to a song offline, writing a motion npz (and optionally a BVH).

    It runs the SAME causal step path as the live loop: streaming features, the causal beat tracker and the generator's step, so a file generated here is what a show would have danced to that song.

    Example: livedance generate song.ogg -o dance.npz --bvh dance.bvh --duration 30
    """
    from rich.console import Console

    from livedance.engine import load_generator
    from livedance.engine.offline import generate_song, save_generated
    from livedance.errors import ConfigError

    if model not in _MODELS:
        raise ConfigError(f"--model {model!r}; expected one of {', '.join(_MODELS)}")
    import math

    from livedance.atomic import check_output_path

    if output.suffix.lower() != ".npz":
        raise ConfigError(f"--output {output}: expected a .npz file")
    if not math.isfinite(start):
        raise ConfigError(f"--start must be a finite number of seconds >= 0, got {start}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ConfigError(f"--duration must be a finite number of seconds > 0, got {duration}")
    if bvh is not None and bvh.suffix.lower() != ".bvh":
        raise ConfigError(f"--bvh {bvh}: expected a .bvh file")
    from livedance.audio.base import validate_sample_rate
    from livedance.data.audio_io import load_audio

    validate_sample_rate(load_audio(song, duration_s=1.0)[1], f"audio file {song}",  # as a live input (8..96 kHz)
                         "resample it, e.g. sox IN -r 48000 OUT")
    check_output_path(output, f"--output {output}", overwrite=True, make_parent=True)  # (before the generation, not after it)
    if bvh is not None:
        check_output_path(bvh, f"--bvh {bvh}", overwrite=True, make_parent=True)
    from livedance.engine.pose_guard import PoseGuardConfig

    gen = load_generator(weights, backend=backend, seed=seed, greedy=greedy, kind=model, tokenizer=tokenizer,
                         device=device, cuda_graph=cuda_graph, pose_guard=PoseGuardConfig(enabled=pose_guard),
                         style=style, style_strength=style_strength)
    if pace is not None:
        gen.set_pace(pace)  # ConfigError for weights without a pace input
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]dancing[/] {task.description}"), BarColumn(),
                  TextColumn("{task.completed:.0f} / {task.total:.0f} s"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(Path(song).name, total=1.0)  # the song's length comes with the first block
        motion = generate_song(gen, song, start, duration, seed,
                               on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    save_generated(motion, output, gen.rep.rest_offsets, bvh)
    dur = len(motion.local_quats) / motion.fps
    Console().print(
        f"{output}: {len(motion.local_quats)} frames ({dur:.1f} s at {motion.fps:g} fps), model {model} ({backend}), "
        f"{motion.n_bad} bad frames replaced"
        + (f", {motion.n_state_resets} state resets" if motion.n_state_resets else "")
        + (f", {motion.n_bad_inputs} steps with bad music input" if motion.n_bad_inputs else "")
        + f"; generator {motion.step_s.sum():.1f} s = real-time factor "
        f"{dur / max(motion.step_s.sum(), 1e-9):.0f}x" + (f"; BVH {bvh}" if bvh else "")
        + (f"; pose guard: {gen.n_pose_resamples} extra runs, {gen.n_pose_over} steps still over budget"
           if pose_guard else "") + (f"; style {gen.style} (strength {gen.style_strength:g})" if gen.style else ""),
        highlight=False)


@app.command("export")
def export_cmd(
    output: Path = typer.Option(..., "-o", "--output", help="ONNX file to write."),
    model: str = typer.Option("livedance", "--model", help="livedance or baseline."),
    weights: Optional[Path] = typer.Option(None, help="Weights stem (default: the shipped weights of --model)."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer weights stem (default: the shipped one)."),
) -> None:
    """Export the step graph (Mamba states + chunk mask-predict + residual head + token decode) to ONNX.

    Example: livedance export -o step.onnx   (then trtexec --onnx=step.onnx on a GPU host, docs/gpu.md)
    """
    from rich.console import Console

    from livedance.engine import load_step_graph
    from livedance.engine.backends import export_onnx
    from livedance.errors import ConfigError

    from livedance.atomic import check_output_path

    if model not in _MODELS:
        raise ConfigError(f"--model {model!r}; expected one of {', '.join(_MODELS)}")
    if output.suffix.lower() != ".onnx":
        raise ConfigError(f"--output {output}: expected a .onnx file")
    check_output_path(output, f"--output {output}", overwrite=True, make_parent=True)
    graph, _, _ = load_step_graph(weights, model, tokenizer)
    path = export_onnx(graph, output)
    shapes = graph.input_shapes(1)
    Console().print(f"{path}: inputs " + ", ".join(f"{n}{list(s)}" for n, (s, _) in shapes.items())
                    + f"; outputs {', '.join(graph.output_names())}", highlight=False)


@train_app.command("ship-generator")
def ship_generator_cmd(
    run: Path = typer.Argument(..., help="Weights stem written by `livedance train generator`, e.g. runs/generator/generator."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature to ship (choose it on --split val)."),
    residual_temperature: Optional[float] = typer.Option(
        None, "--residual-temperature", help="Temperature of the residual code levels to ship (0 = argmax)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=0, help="Top-k sampling to ship (0 = all codes; "
                                        "choose it on --split val with `livedance eval --top-k`)."),
    min_p: Optional[float] = typer.Option(None, "--min-p", min=0.0, max=0.999, help="Min-p sampling to ship (0 = off; "
                                          "choose it on --split val with `livedance eval --min-p`)."),
    eval_json: list[Path] = typer.Option([], "--eval-json", help="`livedance eval --split test --models "
                                         "livedance,baseline --seed S --json F` of these weights (repeat the option, "
                                         "one per seed), averaged into the model card."),
    selection: list[Path] = typer.Option([], "--selection", help="`livedance eval --split val ... --temperature T "
                                         "--json F` files (repeat the option), listed in the card as the selection."),
) -> None:
    """Ship a trained generator as livedance/weights/generator.* and write its model card section.

    Example: livedance train ship-generator runs/generator/generator --temperature 0.6 --selection val-0.6.json --eval-json test.json
    """
    from rich.console import Console

    from livedance.model.train_generator import ship_generator

    paths = ship_generator(run, temperature, eval_json, selection, residual_temperature=residual_temperature,
                           top_k=top_k, min_p=min_p)
    Console().print(f"shipped {', '.join(paths)} and the Generator section of livedance/weights/MODEL_CARD.md", highlight=False)
