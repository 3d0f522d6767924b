"""``livedance eval``: the dance metrics table (FIDk, FIDg, Divk, Divg, BAS, PFC, MM-Dist, R@1).

Every run prints two reference rows measured in the same run: "ground truth" (the split's real
dances) and "real dance, wrong song" (the same dances with a seeded derangement of the music), and
one row per ``--motions`` folder of motion npz files (docs/formats.md). See docs/eval.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from livedance.cli import DATA_ROOT_HELP, app


def _fmt(value: float, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.00 into 0.00


def render_table(report, title: str):
    """A ``rich.table.Table`` of an :class:`~livedance.eval.suite.EvalReport`."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("row")
    table.add_column("clips", justify="right")
    digits = {"FIDk": 2, "FIDg": 2, "Divk": 2, "Divg": 2, "BAS": 4, "PFC": 3}
    if report.rows and all(k in report.rows[0].metrics for k in ("MM-Dist", "R@1")):
        digits.update({"MM-Dist": 3, "R@1": 3})
    for name in digits:
        table.add_column(name, justify="right")
    table.add_column("BAS over", justify="right")
    for row in report.rows:
        over = f"{row.bas_clips} clips"
        if row.beat_aligned is not None:
            over += f" ({row.beat_aligned}/{row.n_clips} beat-aligned)"
        table.add_row(
            row.label, str(row.n_clips), *(_fmt(row.metrics[k], d) for k, d in digits.items()), over
        )
    return table


@app.command("eval")
def eval_command(
    split: str = typer.Option("test", "--split", help="Dataset split whose real dances give the reference rows: "
                              "train, val, test or all."),
    motions: Optional[Path] = typer.Option(
        None, "--motions", help="Folder of motion .npz files (docs/formats.md) to score as an extra row."
    ),
    fps: float = typer.Option(25.0, "--fps", help="Evaluation frame rate; every clip is resampled to it."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results (with per-clip values) here."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the 'real dance, wrong song' music derangement, of R@1's negative draws, and of the --models rows' sampling."),
    reference_split: str = typer.Option(
        "train", "--reference-split", help="Split whose real dances are the FID reference statistics."
    ),
    models: Optional[str] = typer.Option(
        None, "--models", help="Comma-separated generators to add as rows (livedance, baseline): each dances to every "
        "clip's music excerpt through the live step path (shipped weights), see docs/model.md."
    ),
    models_out: Optional[Path] = typer.Option(
        None, "--models-out", help="Folder for the --models motion npz files (default: a temporary folder)."
    ),
    weights: Optional[Path] = typer.Option(
        None, "--weights", help="Weights stem for the 'livedance' row instead of the shipped ones, e.g. "
        "runs/generator/generator (what `livedance train generator` writes)."
    ),
    temperature: Optional[float] = typer.Option(
        None, "--temperature", help="Sampling temperature of the 'livedance' row (default: the one in its weights' "
        "config). Choose it on --split val, never on test (docs/model.md)."
    ),
    baseline_temperature: Optional[float] = typer.Option(
        None, "--baseline-temperature", help="Sampling temperature of the 'baseline' row (default: its weights' "
        "config); choose it on --split val like the livedance row's."
    ),
    residual_temperature: Optional[float] = typer.Option(
        None, "--residual-temperature", help="Temperature of the residual code levels of the 'livedance' row "
        "(default: its weights' config; 0 = argmax)."
    ),
    top_k: Optional[int] = typer.Option(
        None, "--top-k", min=0, help="Top-k sampling of the 'livedance' row: sample among the k most likely codes "
        "(default: its weights' config; 0 = all). Choose it on --split val, like the temperature."),
    min_p: Optional[float] = typer.Option(
        None, "--min-p", min=0.0, max=0.999, help="Min-p sampling of the 'livedance' row: sample among the codes at "
        "least this fraction as likely as the most likely one (default: its weights' config; 0 = off). Choose it on "
        "--split val."),
    guidance: Optional[float] = typer.Option(
        None, "--guidance", min=0.0, help="Classifier-free guidance scale of the 'livedance' row (default: its "
        "weights' config; 1 = off; any other value needs weights trained with --music-dropout). Choose it on "
        "--split val."),
    style: Optional[str] = typer.Option(
        None, help="Dance the livedance row in a training style (cha-cha, rumba, tango, waltz), or 'label' for each "
        "clip's own labelled style, as a VJ who knows the dance would set it (livedance.engine.style_prior)."),
    style_strength: float = typer.Option(1.0, min=0.0, help="The style's strength lambda (1 = prior-shift correction)."),
    pose_guard: bool = typer.Option(
        False, "--pose-guard/--no-pose-guard", help="The engine's pose guard for both --models rows (livedance.engine."
        "pose_guard: steps that hold poses the train dances hardly hold are resampled hotter); docs/model.md."),
    pace: Optional[float] = typer.Option(
        None, "--pace", min=0.05, max=3.0, help="The livedance row dances every clip at this pace (mean limb speed "
        "about the pelvis, m/s; weights trained with --pace); default: each clip's pace drawn by its seed."),
    shared_seed: bool = typer.Option(
        False, "--shared-seed", help="Sample every clip of the --models rows with --seed itself (the protocol before "
        "2026-11-24) instead of each clip's own seed drawn from --seed and its name; the shared noise makes the "
        "dances more alike (docs/eval.md, \"Sampling seeds\")."),
    retrieval: Optional[Path] = typer.Option(
        None, "--retrieval", help="Retrieval model weights stem for the MM-Dist and R@1 columns (default: the shipped "
        "livedance/weights/retrieval, made by `livedance train retrieval --ship`; not with --no-retrieval)."),
    no_retrieval: bool = typer.Option(
        False, "--no-retrieval", help="Leave out the MM-Dist and R@1 columns (no retrieval model is loaded)."),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help=DATA_ROOT_HELP),
    kinetic_ee: str = typer.Option(
        "physical", "--kinetic-ee", help="Energy expenditure in the kinetic features (FIDk, Divk): physical (the true "
        "acceleration, default) or upstream (the AIST++ / Bailando code's precedence slip, to compare with published "
        "FIDk; livedance.eval.kinetic)."),
    skeleton: str = typer.Option(
        "shared", "--skeleton", help="The body the real dances are scored on: shared (default: each rendered by FK on "
        "one skeleton, the mean of the train dancers', which the generators decode onto; as Bailando scores every row "
        "on one SMPL body) or own (each dancer's own skeleton, the protocol before session 24: the dancers' size "
        "differences then count as diversity of the real rows only)."),
) -> None:
    """Score dances with the AIST++ metrics (FIDk, FIDg, Divk, Divg, BAS), EDGE's PFC, and SoulNet-style music-dance
    retrieval: MM-Dist (0..2, lower is better, 1.41 = unrelated) and R@1 (how often a dance window's own music window
    ranks first in a pool of 32: itself and 31 windows of other songs; higher is better, chance 0.031).

    Always shows two reference rows for the split, measured in the same run: 'ground truth' and 'real dance, wrong song' (music shuffled, only BAS, MM-Dist and R@1 change).

    --motions adds a row for generated dances (motion npz files, see docs/formats.md).

    Example: livedance eval --split test --models livedance,baseline --seed 0 --json test-s0.json
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from livedance.data.dataset import load_split
    from livedance.errors import ConfigError
    from livedance.eval.motion_io import check_body_frame, find_motions
    from livedance.eval.music_beats import MusicBeatCache
    from livedance.eval.suite import EvalConfig, evaluate

    if not math.isfinite(fps) or fps <= 0:
        raise ConfigError(f"--fps must be a positive frame rate, got {fps}")
    for flag, name in (("--split", split), ("--reference-split", reference_split)):
        if name not in ("train", "val", "test", "all"):
            raise ConfigError(f"{flag} {name!r}: expected train, val, test or all")
    from livedance.eval.kinetic import EE_VARIANTS

    if kinetic_ee not in EE_VARIANTS:
        raise ConfigError(f"--kinetic-ee {kinetic_ee!r}: expected {' or '.join(EE_VARIANTS)}")
    if skeleton not in ("shared", "own"):
        raise ConfigError(f"--skeleton {skeleton!r}: expected shared or own")
    config = EvalConfig(fps=fps, seed=seed, kinetic_ee=kinetic_ee, skeleton=skeleton)
    if (weights is not None or temperature is not None or residual_temperature is not None or top_k is not None
            or min_p is not None or guidance is not None or style is not None or pace is not None) and \
            "livedance" not in (models or ""):
        raise ConfigError("--weights / --temperature / --residual-temperature / --top-k / --min-p / --guidance / --style "
                          "/ --pace apply to the 'livedance' row: add --models livedance")
    if shared_seed and not models:
        raise ConfigError("--shared-seed applies to the --models rows' sampling: add --models livedance and/or baseline")
    if pose_guard and not models:
        raise ConfigError("--pose-guard applies to the --models rows' sampling: add --models livedance and/or baseline")
    if style_strength != 1.0 and style is None:
        raise ConfigError(f"--style-strength {style_strength:g} applies to a --style: add --style NAME or label")
    if baseline_temperature is not None and "baseline" not in (models or ""):
        raise ConfigError("--baseline-temperature applies to the 'baseline' row: add --models baseline")
    if baseline_temperature is not None and not (math.isfinite(baseline_temperature) and baseline_temperature > 0):
        raise ConfigError(f"--baseline-temperature must be a positive number, got {baseline_temperature}")
    if residual_temperature is not None and not (math.isfinite(residual_temperature) and residual_temperature >= 0):
        raise ConfigError(f"--residual-temperature must be >= 0, got {residual_temperature}")
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"--temperature must be a positive number, got {temperature}")
    names = [m.strip() for m in (models or "").split(",") if m.strip()]
    bad = [m for m in names if m not in ("livedance", "baseline")]
    if bad:
        raise ConfigError(f"--models {models!r}: unknown model(s) {bad}; expected livedance and/or baseline")
    if style is not None and style != "label":  # an unknown style fails before the data loads
        from livedance.engine.style_prior import StylePrior, clears_style

        if not clears_style(style):
            StylePrior.load().index(style)
    from livedance.model.checkpoint import WEIGHTS_DIR, weight_paths

    gen_json = weight_paths(weights if weights is not None else WEIGHTS_DIR / "generator")[1]
    gen_doc: dict = {}  # the livedance row's weights JSON, read once for the checks below
    if "livedance" in names and gen_json.exists():
        try:
            gen_doc = json.loads(gen_json.read_text())
        except (OSError, ValueError):
            gen_doc = {}  # the generator's own loader names a bad file when it runs
    if pace is not None and gen_doc and (gen_doc.get("config") or {}).get("pace") is None:
        # weights without a pace input fail here, before the data loads
        raise ConfigError(f"--pace {pace:g}: {gen_json} has no pace input; pass --weights of a generator trained "
                          "with `livedance train generator --pace`")
    if retrieval is not None and no_retrieval:
        raise ConfigError("--retrieval and --no-retrieval: give one of them")
    retrieval_model, judge_note = None, None
    if not no_retrieval:  # missing or mismatched weights fail here, before the data loads
        from livedance.eval.alignment import trained_against
        from livedance.model.retrieval import MusicDanceRetrieval

        retrieval_model, retrieval_doc = MusicDanceRetrieval.load(retrieval)
        if gen_doc and trained_against(gen_doc, retrieval_doc):
            judge_note = (f"{gen_json} was trained against this retrieval model (--align-weight): its MM-Dist / R@1 "
                          "flatter it; judge it with another one (--retrieval, e.g. one trained with "
                          "`livedance train retrieval --seed 1`)")
    from livedance.atomic import check_output_path

    if json_out is not None:
        check_output_path(json_out, f"--json {json_out}", overwrite=True, make_parent=True)
    if models_out is not None:
        if not models:
            raise ConfigError(f"--models-out {models_out}: no --models to generate (e.g. --models livedance,baseline)")
        if models_out.exists() and not models_out.is_dir():
            raise ConfigError(f"--models-out {models_out} is a file; expected a folder (one subfolder per model)")
        check_output_path(models_out / "probe.npz", f"--models-out {models_out}", overwrite=True,
                          make_parent=True)
    extra = {}
    if motions is not None:  # find_motions and check_body_frame name the mistake, before the data loads
        loaded = find_motions(motions)
        for m in loaded:
            check_body_frame(m)
        extra[f"motions ({motions.name or motions})"] = loaded
    # the checks above are cheap; now the data
    split_clips = load_split(split, data_root=data_root)
    reference_clips = load_split(reference_split, data_root=data_root)
    cache = MusicBeatCache()
    err = Console(stderr=True)
    if models:
        import tempfile

        from livedance.engine.offline import generate_for_clips
        from livedance.engine.pose_guard import PoseGuardConfig

        folder = models_out or Path(tempfile.mkdtemp(prefix="livedance-eval-"))
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            for m in names:
                own = m == "livedance"
                label = f"{m} (generated)" + (f", T={temperature:g}" if own and temperature is not None else "") + (
                    f", T_res={residual_temperature:g}" if own and residual_temperature is not None else "") + (
                    f", top-k={top_k}" if own and top_k is not None else "") + (
                    f", min-p={min_p:g}" if own and min_p is not None else "") + (
                    f", w={guidance:g}" if own and guidance is not None else "") + (
                    f", style={style}" + (f" x{style_strength:g}" if style_strength != 1.0 else "")
                    if own and style is not None else "") + (
                    f", T={baseline_temperature:g}" if not own and baseline_temperature is not None else "") + (
                    ", pose guard" if pose_guard else "") + (", shared seed" if shared_seed else "") + (
                    f", pace {pace:g} m/s" if own and pace is not None else "")
                extra[label] = generate_for_clips(
                    m, split_clips, folder, seed=seed, progress=progress,
                    weights=weights if own else None, temperature=temperature if own else baseline_temperature,
                    residual_temperature=residual_temperature if own else None, top_k=top_k if own else None,
                    min_p=min_p if own else None, pose_guard=PoseGuardConfig(enabled=pose_guard),
                    guidance=guidance if own else None, style=style if own else None, style_strength=style_strength,
                    shared_seed=shared_seed, pace=pace if own else None,
                )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    ) as progress:
        report = evaluate(
            split_clips, reference_clips, extra, config, cache, progress, split=split, reference_split=reference_split,
            retrieval=retrieval_model,
        )
    if judge_note is not None:
        for row in report.rows:
            if row.label.startswith("livedance"):
                row.notes.append(judge_note)
    out = Console()
    out.print(render_table(report, f"livedance eval: split '{split}' at {fps:g} fps (seed {seed})"))
    for note in dict.fromkeys(n for row in report.rows for n in row.notes):
        out.print(f"  - {note}", highlight=False)
    out.print(f"  - music beat cache: {cache.folder} ({cache.hits} hits, {cache.misses} computed)", highlight=False)
    if json_out is not None:
        data = report.to_dict()
        if models:  # how the model rows were seeded (docs/eval.md, "Sampling seeds"); older JSONs: shared
            data["sampling_seeds"] = "shared" if shared_seed else "per-clip"
        data["command"] = (
            f"livedance eval --split {split} --fps {fps:g} --seed {seed} --reference-split {reference_split}"
            + (f" --data-root {data_root}" if data_root is not None else "")
            + (f" --kinetic-ee {kinetic_ee}" if kinetic_ee != "physical" else "")
            + (f" --skeleton {skeleton}" if skeleton != "shared" else "")
            + (f" --motions {motions}" if motions is not None else "")
            + (f" --models {models}" if models else "")
            + (f" --weights {weights}" if weights is not None else "")
            + (f" --temperature {temperature:g}" if temperature is not None else "")
            + (f" --residual-temperature {residual_temperature:g}" if residual_temperature is not None else "")
            + (f" --baseline-temperature {baseline_temperature:g}" if baseline_temperature is not None else "")
            + (f" --top-k {top_k}" if top_k is not None else "")
            + (f" --min-p {min_p:g}" if min_p is not None else "")
            + (f" --guidance {guidance:g}" if guidance is not None else "")
            + (f" --style {style} --style-strength {style_strength:g}" if style is not None else "")
            + (" --pose-guard" if pose_guard else "")
            + (f" --pace {pace:g}" if pace is not None else "")
            + (" --shared-seed" if shared_seed else "")
            + (f" --retrieval {retrieval}" if retrieval is not None else "")
            + (" --no-retrieval" if no_retrieval else "")
            + f" --json {json_out}"
        )
        json_out.parent.mkdir(parents=True, exist_ok=True)
        from livedance.atomic import atomic_target

        with atomic_target(json_out) as tmp:  # a crash or a full disk never leaves half a results file
            tmp.write_text(json.dumps(data, indent=2))
        out.print(f"  - wrote {json_out}", highlight=False)
