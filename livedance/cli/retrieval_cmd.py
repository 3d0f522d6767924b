"""``livedance train retrieval``: the music-dance retrieval model behind eval's MM-Dist and R@1 (docs/eval.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from livedance.cli import DATA_ROOT_HELP
from livedance.cli.model_cmd import train_app


@train_app.command("retrieval")
def train_retrieval_cmd(
    steps: int = typer.Option(600, min=1, help="Optimiser steps (the LR schedule's length)."),
    minutes: Optional[float] = typer.Option(None, min=0.01, help="Wall-clock budget in minutes (stops and anneals early; "
                                            "default none: --steps decides)."),
    seed: int = typer.Option(0, min=0, help="Seed of the initialisation and the batch order (another seed gives another model; "
                             "docs/eval.md shows how much the figures move)."),
    out: Path = typer.Option(Path("runs/retrieval"), help="Run folder (checkpoints, log, retrieval.*)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoint."),
    batch_size: int = typer.Option(64, min=2, help="Window pairs per step (per rank); the InfoNCE negatives."),
    window: int = typer.Option(100, min=8, help="Frames per window at 25 fps (100 = 4 s)."),
    hop: int = typer.Option(5, min=1, help="Frames between training windows (5 = 0.2 s)."),
    members: int = typer.Option(3, min=1, help="Encoder pairs in the ensemble, each from its own initialisation "
                                "(1 = a single model; its figures depend more on the training seed, docs/eval.md)."),
    lr: float = typer.Option(1e-3, min=1e-8, max=1.0, help="Peak learning rate (AdamW)."),
    threads: int = typer.Option(1, min=1, help="torch CPU threads per process."),
    ship: bool = typer.Option(False, "--ship", help="Also write livedance/weights/retrieval.* and the model card section."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train the SoulNet-style contrastive music-dance retrieval model on the Tang train split (90 s on one core).

    It scores how well a dance belongs to its music (eval's MM-Dist and R@1 columns). At the end it prints the val
    split's figures for the real dances on their own songs and on wrong songs: the own-song R@1 should stand well
    above the wrong-song one (chance is 1/32).

    Example: livedance train retrieval --ship
    """
    import torch
    from rich.console import Console

    from livedance.model.retrieval import RetrievalConfig
    from livedance.model.train_retrieval import RetrievalRunConfig, run_training

    torch.set_num_threads(threads)
    cfg = RetrievalRunConfig(steps=steps, minutes=minutes, seed=seed, batch_size=batch_size, lr=lr, hop=hop, out=out,
                             resume=resume, ship=ship, data_root=data_root, progress=progress,
                             model=RetrievalConfig(window=window, members=members))
    res = run_training(cfg)
    v = res.get("val", {})
    con = Console()
    con.print(f"retrieval: {res['steps']} steps in {res['elapsed_s']:.0f} s (stopped by {res['stopped_by']}); "
              f"wrote {', '.join(res.get('paths', []))}" + (f"; shipped {', '.join(res['shipped'])}" if res.get("shipped") else ""),
              highlight=False)
    for k in ("own", "wrong"):
        if k in v:
            con.print(f"  val, real dances, {k} song: R@1 {v[k]['R@1']:.3f}  R@3 {v[k]['R@3']:.3f}  "
                      f"MM-Dist {v[k]['MM-Dist']:.3f}  ({v[k]['windows']} windows; chance R@1 0.031)", highlight=False)
