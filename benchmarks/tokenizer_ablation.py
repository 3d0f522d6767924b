"""Tokenizer ablation: VQ vs RVQ vs HRVQ trained with the same budget, scored on the TEST split.

For each variant, trains a tokenizer on the Tang 2018 train split for ``--minutes`` of wall time (same
seed, data, loss and schedule; the LR schedule anneals over the time budget), then encodes and decodes
every test clip whole and reports reconstruction MPJPE in mm per part (pelvis-relative joints in the
heading frame; see :func:`livedance.model.train_tokenizer.reconstruction_mpjpe`) and the root error
(heading + velocity integrated over 4 s windows). A "mean pose" row (every frame decoded as the train
mean) gives the scale.

    python benchmarks/tokenizer_ablation.py --minutes 4.5 --json runs/tokenizer_ablation.json

Wall-clock budgets make the step counts depend on the machine's load; the table prints them.

``--mirror-check SPLIT`` instead scores the shipped tokenizer (no training) on that split's dances as they
are and mirrored left/right (:mod:`livedance.motion.mirror`): how far mirrored dances (the generator's
``--mirror`` augmentation) lie outside what the tokenizer learned (docs/model.md).

    python benchmarks/tokenizer_ablation.py --mirror-check val
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.5, help="training budget per variant (wall clock)")
    ap.add_argument("--steps", type=int, default=4000, help="schedule length cap per variant")
    ap.add_argument("--variants", default="vq,rvq,hrvq")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--mirror-check", default=None, metavar="SPLIT",
                    help="only score the shipped tokenizer on SPLIT's dances, as is and mirrored")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from rich.console import Console
    from rich.table import Table

    from livedance.data.dataset import load_split
    from livedance.model.representation import Representation
    from livedance.model.train_tokenizer import TokenizerRunConfig, reconstruction_mpjpe, run_training
    from livedance.model.trainer import has_checkpoint

    if args.mirror_check:
        from livedance.model.tokenizer import Tokenizer
        from livedance.motion.mirror import mirror_clip

        tok, rep, _ = Tokenizer.load(None)
        clips = load_split(args.mirror_check, progress=False)
        tab = Table(title=f"Shipped tokenizer, reconstruction MPJPE (mm) on the {args.mirror_check} split")
        for col in ("dances", "lower", "upper", "all", "root"):
            tab.add_column(col, justify="left" if col == "dances" else "right")
        out = {}
        for name, cs in (("as recorded", clips), ("mirrored left/right", [mirror_clip(c) for c in clips])):
            with torch.no_grad():
                out[name] = m = reconstruction_mpjpe(tok, rep, cs)
            tab.add_row(name, *(f"{m[k]:.1f}" for k in ("lower", "upper", "all", "root")))
        Console().print(tab)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
        return
    rows = {}
    for v in args.variants.split(","):
        # a folder per variant and seed; a rerun into a finished one continues it (--resume), never overwrites it
        out = args.out / f"{v}-seed{args.seed}"
        cfg = TokenizerRunConfig(variant=v, steps=args.steps, minutes=args.minutes, seed=args.seed,
                                 out=out, progress=False, resume=has_checkpoint(out))
        res = run_training(cfg)
        rows[v] = {**res["metrics"], "steps": res["steps"], "minutes": res["elapsed_s"] / 60}

    class MeanPose(torch.nn.Module):
        def encode(self, x):
            return {"x": x}

        def decode(self, c):
            return torch.zeros_like(c["x"])

    rep = Representation.fit(load_split("train", progress=False))
    rows["mean pose"] = {**reconstruction_mpjpe(MeanPose(), rep, load_split("test", progress=False)), "steps": 0, "minutes": 0.0}

    tab = Table(title=f"Tokenizer ablation: reconstruction on the Tang test split ({rows['mean pose']['frames']} frames)")
    for col in ("variant", "lower (mm)", "upper (mm)", "all (mm)", "root (mm)", "steps", "train min"):
        tab.add_column(col, justify="right" if col != "variant" else "left")
    for v, r in rows.items():
        tab.add_row(v, *(f"{r[k]:.1f}" for k in ("lower", "upper", "all", "root")), str(r["steps"]), f"{r['minutes']:.1f}")
    Console().print(tab)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
