"""``livedance train ...`` commands (the ``train`` sub-app lives here) and ``livedance train tokenizer``.

:data:`train_app` is the typer group ``livedance train``. Other subsystems add their own training
commands to it with ``from livedance.cli.model_cmd import train_app`` (e.g. ``train generator``).

Every training command runs unchanged under ``torchrun`` (DDP, gloo on the CPU / nccl on CUDA), e.g.
``torchrun --standalone --nproc_per_node 2 -m livedance train tokenizer --steps 2000``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from livedance.cli import DATA_ROOT_HELP, app

train_app = typer.Typer(help="Train and ship models on the Tang 2018 train split: tokenizer, generator, baseline, "
                        "tokenizer-decoder (fine-tune), style-prior and pose-prior (counted, seconds), ship-generator "
                        "and ship-baseline (weights + model card), retrieval (the music-dance model behind eval's "
                        "MM-Dist and R@1).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("tokenizer")
def train_tokenizer_cmd(
    variant: str = typer.Option("hrvq", help="Tokenizer variant: hrvq (part-chained residual VQ), rvq or vq."),
    steps: int = typer.Option(3000, min=1, help="Optimiser steps (the LR schedule's length)."),
    minutes: Optional[float] = typer.Option(None, min=0.01, help="Wall-clock budget in minutes (stops and anneals early)."),
    seed: int = typer.Option(0, min=0, help="Random seed."),
    out: Optional[Path] = typer.Option(None, help="Run folder (checkpoints, log); default runs/tokenizer-<variant>."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoint."),
    batch_size: int = typer.Option(32, min=1, help="Windows per step (per rank)."),
    window: int = typer.Option(64, min=4, help="Training window length, frames (multiple of 4)."),
    lr: float = typer.Option(1e-3, min=1e-8, max=1.0, help="Peak learning rate (AdamW)."),
    width: int = typer.Option(64, min=1, help="Channels of the conv encoder/decoder."),
    codebook_size: int = typer.Option(512, min=2, help="Codes per codebook (one per part per level)."),
    threads: int = typer.Option(1, min=1, help="torch CPU threads per process (1 is several times faster than 2 on a busy 2-core machine)."
    ),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    ship: bool = typer.Option(False, "--ship", help="Also write livedance/weights/tokenizer.* and its MODEL_CARD.md section."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    legacy_dropout: bool = typer.Option(False, "--legacy-dropout", help="Quantizer dropout as the shipped tokenizers "
                                        "were trained (before session 19): a dropped level's codebook still learns "
                                        "from the example (EMA, dead-code replacement, commitment)."),
) -> None:
    """Train the motion tokenizer (HRVQ / RVQ / VQ) on the train split; writes <out>/tokenizer.{safetensors,json} and prints the test-split reconstruction MPJPE per part."""
    import torch

    from livedance.model.train_tokenizer import TokenizerRunConfig, run_training

    torch.set_num_threads(threads)
    cfg = TokenizerRunConfig(
        variant=variant, steps=steps, minutes=minutes, seed=seed,
        out=out or Path("runs") / f"tokenizer-{variant}", resume=resume, batch_size=batch_size, window=window, lr=lr,
        width=width, codebook_size=codebook_size,
        data_root=data_root, ship=ship, progress=progress, legacy_dropout=legacy_dropout,
    )
    run_training(cfg)


@train_app.command("tokenizer-decoder")
def train_tokenizer_decoder_cmd(
    model: str = typer.Option("livedance", help="Which shipped tokenizer to tune: livedance (tokenizer.*) or "
                              "baseline (baseline_tokenizer.*); --ship writes it back there."),
    source: Optional[Path] = typer.Option(None, "--from", help="Tokenizer stem to start from, normally the one as "
                                          "trained, e.g. runs/tokenizer-hrvq/tokenizer (default: the shipped one of "
                                          "--model, refused when that one is already tuned)."),
    steps: int = typer.Option(300, min=1, help="Optimiser steps (the LR schedule's length)."),
    minutes: Optional[float] = typer.Option(None, min=0.01, help="Wall-clock budget in minutes (stops and anneals early)."),
    seed: int = typer.Option(0, min=0, help="Random seed."),
    out: Optional[Path] = typer.Option(None, help="Run folder (checkpoints, log, tokenizer.*, metrics.json); "
                                       "default runs/tokenizer-decoder-<model>."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoint."),
    lr: float = typer.Option(3e-4, min=1e-8, max=1.0, help="Peak learning rate (AdamW)."),
    acc_weight: float = typer.Option(1.0, help="Weight of the L1 of the normalised features' second difference."),
    pos_acc_weight: float = typer.Option(50.0, help="Weight of the L1 of the FK joints' second difference "
                                         "(metres per frame^2)."),
    kin_weight: float = typer.Option(0.0, min=0.0, help="Weight of the L1 of each window's RMS joint speed "
                                     "(metres per frame; keeps the kinetic energy that L1 terms smooth away)."),
    threads: int = typer.Option(1, min=1, help="torch CPU threads per process."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    ship: bool = typer.Option(False, "--ship", help="Also overwrite the shipped tokenizer of --model and write its "
                              "MODEL_CARD.md section."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Fine-tune a trained tokenizer's decoders against token-boundary jitter (docs/model.md).

    Only the decoders learn, with Bailando's acceleration terms added to the tokenizer's loss; encoders, codebooks and hint maps stay bit for bit, so generators trained on the source tokenizer keep working (the new tokenizer lists the source's sha256 in same_codes_as). Prints MPJPE and the mean joint acceleration around token boundaries against inside tokens, before and after.

    Example: livedance train tokenizer-decoder --from runs/tokenizer-hrvq/tokenizer --ship
    """
    import torch

    from livedance.model.decoder_tune import DecoderTuneConfig, run_decoder_tune

    torch.set_num_threads(threads)
    run_decoder_tune(DecoderTuneConfig(model=model, source=source, out=out, steps=steps, minutes=minutes, seed=seed,
                                       resume=resume, lr=lr, acc_weight=acc_weight, pos_acc_weight=pos_acc_weight,
                                       kin_weight=kin_weight,
                                       data_root=data_root, ship=ship, progress=progress))


@train_app.command("style-prior")
def train_style_prior_cmd(
    split: str = typer.Option("train", help="Split whose real dances are counted (never the one you score on)."),
    alpha: float = typer.Option(0.5, min=1e-6, help="Add-alpha smoothing of the per-style code counts."),
    tokenizer: Optional[Path] = typer.Option(None, help="Tokenizer stem whose codes are counted (default: the shipped "
                                             "one; it must be the generator's)."),
    out: Optional[Path] = typer.Option(None, help="Output stem (default: the shipped livedance/weights/style_prior)."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
) -> None:
    """Count the tokenizer's codes per dance style on a split's real dances: the prior behind `--style` and `/livedance/style` on the learned dancer (livedance.engine.style_prior; docs/model.md "Styles"). Seconds, not minutes: no training.

    Example: livedance train style-prior
    """
    from rich.console import Console

    from livedance.atomic import check_output_path
    from livedance.engine.style_prior import default_style_prior, style_prior_from_split
    from livedance.model.checkpoint import weight_paths

    stem = out or default_style_prior()
    for f in weight_paths(stem):  # before the dances are read and counted
        check_output_path(f, f"--out {stem}", overwrite=True, make_parent=True)
    prior = style_prior_from_split(split, data_root, tokenizer, alpha)
    st, js = prior.save(stem)
    con = Console()
    for i, s in enumerate(prior.styles):
        top = prior.log_ratio[i, :, 0].max(-1)
        con.print(f"  {s:10s} {prior.counts[s]:6d} token slots; largest base-level log-ratio per part "
                  + ", ".join(f"{p} {t:+.2f}" for p, t in zip(prior.parts, top)), highlight=False)
    con.print(f"wrote {st} and {js.name} ({len(prior.styles)} styles from {prior.source['clips']} {split} clips)",
              highlight=False)


@train_app.command("pose-prior")
def train_pose_prior_cmd(
    split: str = typer.Option("train", help="Split whose real dances give the budgets (never the one you score on)."),
    max_mean: float = typer.Option(0.1, "--max-mean", min=0.0, max=1.0,
                                   help="A static pose feature is rare below this mean share of a clip's frames (0..1)."),
    floor: float = typer.Option(0.03, min=0.0, max=1.0, help="Smallest budget (share of frames, 0..1) of a rare feature."),
    out: Optional[Path] = typer.Option(None, help="Output JSON (default: the shipped livedance/weights/pose_prior.json)."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
) -> None:
    """Measure the pose guard's prior (livedance.engine.pose_guard): which static poses the real dances of a split hardly ever hold, and for how large a share of a clip at most. Seconds, not minutes: no training."""
    from rich.console import Console

    from livedance.atomic import check_output_path
    from livedance.engine.pose_guard import default_prior_path, prior_from_split

    target = check_output_path(out or default_prior_path(), f"--out {out or default_prior_path()}", overwrite=True,
                               make_parent=True)
    prior = prior_from_split(split, data_root, max_mean, floor)
    path = prior.save(target)
    doc = prior.to_json()
    con = Console()
    for f in doc["features"]:
        con.print(f"  feature {f['index']:2d} {f['kind']:6s} {', '.join(f['joints']):40s} budget {f['budget']:.4f}")
    con.print(f"wrote {path} ({len(prior.features)} rare features from {prior.source['clips']} {split} clips)")
