"""``livedance data ...`` commands for motion data (the ``data`` sub-app lives here).

:data:`data_app` is the typer group ``livedance data``. Other subsystems (``data_cmd``) add their
own commands to it with ``from livedance.cli.motion_cmd import data_app``.

``livedance data ik-report`` runs the Tang 2018 DANCE marker IK (:mod:`livedance.data.tang_ik`) over
every sequence, prints per-joint errors and writes ``docs/ik.md`` and ``docs/ik.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from livedance.cli import app

data_app = typer.Typer(
    help="Datasets: the Tang 2018 DANCE marker IK report (ik-report), its music alignment study (align-tang) and "
    "its train/val/test split (split-tang).",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

_DEFAULT_MD = Path("docs/ik.md")
_DEFAULT_PNG = Path("docs/ik.png")
_DEFAULT_ITERS = 5


@data_app.command("ik-report")
def ik_report(
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir",
        help="Folder holding the DANCE_<style>_<n>/ sequences (default: $LIVEDANCE_DATA/dance-tang2018, else "
        "../shared/data/dance-tang2018 beside the repository).",
    ),
    out_md: Path = typer.Option(_DEFAULT_MD, "--out-md", help="Markdown report to write."),
    out_png: Path = typer.Option(
        _DEFAULT_PNG, "--out-png", help="Figure to write (markers beside the fitted skeleton)."
    ),
    refine_iters: int = typer.Option(
        _DEFAULT_ITERS, "--refine-iters", min=0, help="Levenberg-Marquardt iterations after the analytic IK."
    ),
    max_frames: Optional[int] = typer.Option(
        None, "--max-frames", min=1, help="Use only the first N frames of each sequence (quick runs)."
    ),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N sequences (quick runs)."),
) -> None:
    """Fit SMPL-X body rotations to every Tang 2018 DANCE sequence and report the IK error (mm)."""
    import shlex

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from livedance.data.tang_ik import TangIKConfig
    from livedance.motion import ik_report as rep

    from livedance.data.tang import tang_root

    from livedance.atomic import check_output_path
    from livedance.errors import ConfigError

    check_output_path(out_md, f"--out-md {out_md}", overwrite=True, make_parent=True)  # before minutes of IK
    check_output_path(out_png, f"--out-png {out_png}", overwrite=True, make_parent=True)
    if out_png.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise ConfigError(f"--out-png {out_png}: expected an image file name (.png, .pdf, .svg or .jpg)")
    seqs = rep.find_sequences(data_dir if data_dir is not None else tang_root())
    if limit:
        seqs = seqs[:limit]
    cfg = TangIKConfig(refine_iters=refine_iters)
    console = Console()
    runs = []
    with Progress(
        TextColumn("[bold]IK[/] {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("", total=len(seqs))
        for seq in seqs:
            progress.update(task, description=seq.name)
            runs.append(rep.run_sequence(seq, cfg, max_frames))
            progress.advance(task)
    console.print(rep.joint_table(runs))
    console.print(rep.sequence_table(runs))
    # the exact command that reproduces this report (options that differ from the defaults)
    argv = ["livedance", "data", "ik-report"]
    for flag, value, default in (
        ("--data-dir", data_dir, None), ("--out-md", out_md, _DEFAULT_MD),
        ("--out-png", out_png, _DEFAULT_PNG), ("--refine-iters", refine_iters, _DEFAULT_ITERS),
        ("--max-frames", max_frames, None), ("--limit", limit, None),
    ):
        if value != default:
            argv += [flag, str(value)]
    rep.write_figure(runs, out_png)
    rep.write_markdown(runs, cfg, out_md, out_png, " ".join(shlex.quote(a) for a in argv))
    console.print(f"wrote {out_md} and {out_png}")
