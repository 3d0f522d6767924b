"""``livedance train baseline``: the Bailando-style baseline (``vq`` VQ-VAE + causal GPT), docs/model.md "Baseline".

Its tokenizer is trained first with the shared tokenizer command and the tokenizer's budget::

    livedance train tokenizer --variant vq --minutes 11 --steps 4000 --out runs/baseline-tokenizer-vq
    livedance train baseline --minutes 14 --ship

Generation and evaluation go through ``livedance generate SONG -o OUT.npz --model baseline``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from livedance.cli import DATA_ROOT_HELP
from livedance.cli.model_cmd import train_app


@train_app.command("baseline")
def train_baseline_cmd(
    minutes: Optional[float] = typer.Option(
        14.0, min=0.01, help="Wall-clock budget in minutes (the generator's shipped run; the LR anneals over it)."),
    steps: int = typer.Option(3000, min=1, help="Optimiser steps (the LR schedule's length; the wall-clock budget stops first)."),
    seed: int = typer.Option(0, min=0, help="Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoint."),
    out: Optional[Path] = typer.Option(None, help="Run folder; default runs/baseline."),
    tokenizer: Optional[Path] = typer.Option(
        None, help="vq tokenizer stem; default runs/baseline-tokenizer-vq/tokenizer, else the shipped baseline_tokenizer."),
    batch_size: int = typer.Option(32, min=1, help="Windows of 32 token slots per step."),
    lr: float = typer.Option(1e-3, min=1e-8, max=1.0, help="Peak learning rate (AdamW)."),
    threads: int = typer.Option(1, min=1, help="torch CPU threads (1, as the generator's shipped run: fastest on a loaded 2-core machine)."),
    ship: bool = typer.Option(False, "--ship", help="Also write livedance/weights/baseline.* and baseline_tokenizer.*."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train the Bailando-style baseline GPT (same data, music inputs, lag and budget as the generator)."""
    import torch
    from rich.console import Console

    from livedance.model.baseline_gpt import train_baseline

    torch.set_num_threads(threads)
    res = train_baseline(minutes=minutes, steps=steps, seed=seed, resume=resume, out=out, tokenizer=tokenizer,
                         ship=ship, batch_size=batch_size, lr=lr, data_root=data_root, progress=progress)
    Console().print(f"baseline: {res['steps']} steps in {res['elapsed_s']:.0f} s (stopped by {res['stopped_by']}); "
                    f"last losses {res.get('final')}; wrote {', '.join(res.get('paths', []))}"
                    + (f"; shipped {', '.join(res['shipped'])}" if res.get("shipped") else ""), highlight=False)


@train_app.command("ship-baseline")
def ship_baseline_cmd(
    run: Path = typer.Argument(..., help="Weights stem written by `livedance train baseline`, e.g. runs/baseline/baseline."),
    tokenizer: Path = typer.Option(Path("runs/baseline-tokenizer-vq/tokenizer"), help="Its vq tokenizer stem; written "
                                   "only when the shipped baseline_tokenizer lacks the run's codes (a shipped decoder "
                                   "fine-tune of the same codes is kept)."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature to ship (choose it on --split val)."),
) -> None:
    """Ship a trained baseline (and its tokenizer) as livedance/weights/baseline*.* and rewrite its card section.

    Example: livedance train ship-baseline runs/baseline/baseline --temperature 0.5
    """
    from rich.console import Console

    from livedance.model.baseline_gpt import ship_baseline

    paths = ship_baseline(run, tokenizer, temperature=temperature)
    kept = "" if any("baseline_tokenizer" in p for p in paths) else (
        "; kept the shipped baseline_tokenizer (it has the run's codes), --tokenizer not written")
    Console().print(f"shipped {', '.join(paths)} and the Baseline section of livedance/weights/MODEL_CARD.md{kept}",
                    highlight=False)
