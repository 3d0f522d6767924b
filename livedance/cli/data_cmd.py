"""``livedance data align-tang`` and ``livedance data split-tang``: the Tang 2018 alignment study
and the train/val/test split (both write committed JSON files under livedance/data/)."""

from __future__ import annotations

from pathlib import Path

import typer

from livedance.cli.motion_cmd import data_app


@data_app.command("align-tang")
def align_tang(
    data_root: Path = typer.Option(None, help="Folder holding dance-tang2018/ (default: $LIVEDANCE_DATA or ../shared/data)."),
    out: Path = typer.Option(None, help="Output JSON (default: livedance/data/tang_alignment.json)."),
    only: list[str] = typer.Option(None, help="Align only these sequences (the others still serve as shuffled songs)."),
) -> None:
    """Fit each Tang sequence's motion rate and song offset to its song's beats, validate them against shuffled songs, and write tang_alignment.json (needs librosa; a few minutes)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from livedance.atomic import check_output_path
    from livedance.data import tang_align as ta
    from livedance.data.tang import list_tang_sequences, load_tang_sequence
    from livedance.errors import ConfigError

    target = check_output_path(out or ta.ALIGNMENT_PATH, f"--out {out or ta.ALIGNMENT_PATH}", overwrite=True)
    paths = list_tang_sequences(data_root)
    unknown = sorted(set(only or ()) - {p.name for p in paths})
    if unknown:  # an empty study would replace the committed alignment
        raise ConfigError(f"--only {', '.join(unknown)}: no such Tang sequence; expected names such as "
                          f"{', '.join(p.name for p in paths[:3])} (the folders of dance-tang2018/)")
    seqs = [load_tang_sequence(p) for p in paths]
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as prog:
        task = prog.add_task("analysing", total=len(seqs) + (len(set(only)) if only else len(seqs)))
        result = ta.run_study(
            seqs, ta.AlignConfig(), lambda label: prog.update(task, advance=1, description=label),
            set(only) if only else None,
        )
    entries = list(result["sequences"].values())
    path = ta.write_alignment(result, target)
    table = Table(title=f"Tang alignment ({path})")
    table.add_column("sequence", no_wrap=True)
    for col in ("scale", "offset_s", "nominal", "score", "shuf. median", "rank", "locked", "usable"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e["name"], f"{e['scale']:.4f}", f"{e['offset_s']:.2f}", f"{e['nominal_offset_s']:.2f}",
            f"{e['score']:.2f}", "-" if e["shuffled_median"] != e["shuffled_median"] else f"{e['shuffled_median']:.2f}",
            "-" if e["rank"] != e["rank"] else f"{e['rank']:.2f}", "yes" if e["tempo_locked"] else "no",
            "[green]yes[/]" if e["usable_for_beat"] else "no",
        )
    console = Console()
    console.print(table)
    console.print(result["summary"])


@data_app.command("split-tang")
def split_tang(
    data_root: Path = typer.Option(None, help="Folder holding dance-tang2018/ (default: $LIVEDANCE_DATA or ../shared/data)."),
    seed: int = typer.Option(0, min=0, help="Seed of numpy.random.default_rng."),
    val_frac: float = typer.Option(0.15, min=0.0, max=0.5, help="Fraction of each style for validation (0..0.5)."),
    test_frac: float = typer.Option(0.15, min=0.0, max=0.5, help="Fraction of each style for test (0..0.5)."),
    out: Path = typer.Option(None, help="Output JSON (default: livedance/data/tang_split.json)."),
) -> None:
    """Split the Tang sequences into train/val/test by whole sequence, stratified by style (seeded), and write tang_split.json."""
    from rich.console import Console
    from rich.table import Table

    from livedance.atomic import check_output_path
    from livedance.data.split import SPLIT_PATH, make_tang_split, write_split
    from livedance.data.tang import list_tang_sequences

    target = check_output_path(out or SPLIT_PATH, f"--out {out or SPLIT_PATH}", overwrite=True)
    names = [p.name for p in list_tang_sequences(data_root)]
    split = make_tang_split(names, seed=seed, val_frac=val_frac, test_frac=test_frac)
    path = write_split(split, target)
    table = Table(title=f"Tang split, seed {seed} ({path})")
    for col in ("style", "train", "val", "test"):
        table.add_column(col)
    for style, c in split["by_style"].items():
        table.add_row(style, str(c["train"]), str(c["val"]), str(c["test"]))
    Console().print(table)
    Console().print(f"test: {', '.join(split['test'])}\nval: {', '.join(split['val'])}")
