"""How much the retrieval model's own training moves MM-Dist and R@1 (docs/eval.md, "Music-dance retrieval").

``livedance eval`` scores every row with one retrieval model (the shipped ensemble). This script scores the same
dances with several retrieval weights side by side: the split's real dances on their own songs, the same dances
each paired with the next clip's song (a cyclic shift), and every folder of generated dances given with
``--motions LABEL=PATTERN``, where ``{s}`` in the pattern stands for the sampling seed (the ``--models-out`` folders
of ``livedance eval``). ``--shift S`` adds a row of the real dances on their own songs read S seconds late (a
half beat at the Tang tempi is 0.25-0.35 s): if it scores like the unshifted row, the model hears the tempo and the
style of the music, not where its beats fall. Each figure is the mean over ``--seeds`` (the seed of R@1's negative draws; for the
generated rows also the folder's seed).

    for S in 0 1 2 3 4 5; do .venv/bin/livedance eval --split test --models livedance,baseline --seed $S \\
        --models-out runs/gen-test-s$S; done
    .venv/bin/livedance train retrieval --seed 1 --out runs/retrieval-ens-s1
    .venv/bin/python benchmarks/retrieval.py --weights livedance/weights/retrieval --weights runs/retrieval-ens-s1/retrieval \\
        --motions 'livedance=runs/gen-test-s{s}/livedance' --motions 'baseline=runs/gen-test-s{s}/baseline'

Needs ``../shared/data`` (the Tang split).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="test", help="split whose real dances give the reference rows")
    ap.add_argument("--weights", action="append", default=[], help="retrieval weights stem (repeat; default: the shipped)")
    ap.add_argument("--motions", action="append", default=[], help="LABEL=PATTERN of motion npz folders, {s} = seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--shift", type=float, nargs="*", default=[], help="seconds: rows of the real dances on their own "
                    "songs read this much late")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from livedance.data.dataset import load_split
    from livedance.eval.alignment import retrieval_figures, wrong_song_figures
    from livedance.eval.motion_io import find_motions
    from livedance.model.retrieval import MusicDanceRetrieval
    from livedance.model.retrieval import paired_clip

    from livedance.eval.suite import EvalClip, shared_skeleton

    canon = shared_skeleton(load_split("train", progress=False))

    def pair(clip, fps: float, shift: float = 0.0):  # every dance at the model's frame rate, as livedance eval does
        c = EvalClip.from_clip(clip, canon).at_fps(fps)  # (real dances on the one skeleton, as eval scores them)
        return paired_clip(c.name, c.positions, fps, c.audio_path, c.audio_offset_s + shift)

    fps = MusicDanceRetrieval.load(args.weights[0] if args.weights else None)[0].config.fps
    split_clips = load_split(args.split)
    real = [pair(c, fps) for c in split_clips]
    shifted = {d: [pair(c, fps, d) for c in split_clips] for d in args.shift}
    generated: dict[str, dict[int, list]] = {}
    for spec in args.motions:
        label, _, pattern = spec.partition("=")
        if not pattern:
            ap.error(f"--motions {spec!r}: expected LABEL=PATTERN")
        for s in args.seeds:
            folder = Path(pattern.replace("{s}", str(s)))
            if folder.is_dir():
                generated.setdefault(label, {})[s] = [pair(m, fps) for m in find_motions(folder)]
    table = Table(title=f"MM-Dist / R@1, split '{args.split}', mean over seeds {args.seeds}", title_justify="left")
    table.add_column("row")
    stems = args.weights or [None]
    for stem in stems:
        table.add_column(str(stem or "shipped"), justify="right")
    rows: dict[str, list[str]] = {}
    for stem in stems:
        model, _ = MusicDanceRetrieval.load(stem)
        if model.config.fps != fps:
            ap.error(f"--weights {stem}: {model.config.fps:g} fps, the first weights' are {fps:g} fps")
        figs: dict[str, list[dict]] = {}
        for s in args.seeds:
            f = wrong_song_figures(model, real, seed=s)
            figs.setdefault("real dance, own song", []).append(f["own"])
            figs.setdefault("real dance, next clip's song", []).append(f["wrong"])
            for d, pairs in shifted.items():
                figs.setdefault(f"real dance, own song {d:+g} s", []).append(retrieval_figures(model, pairs, seed=s))
        for label, by_seed in generated.items():
            figs[f"{label} ({len(by_seed)} seeds)"] = [retrieval_figures(model, p, seed=s) for s, p in by_seed.items()]
        for label, fs in figs.items():
            rows.setdefault(label, []).append(
                f"{np.mean([f['MM-Dist'] for f in fs]):.3f} / {np.mean([f['R@1'] for f in fs]):.3f}")
    for label, cells in rows.items():
        table.add_row(label, *cells)
    Console().print(table)


if __name__ == "__main__":
    main()
