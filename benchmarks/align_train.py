"""The alignment prior's loss on train windows: real codes against codes drawn by generator weights.

``livedance train generator --align-weight W`` adds SoulNet's alignment prior (livedance.model.align) to the
generator's loss. This script asks what that loss says, in the training setting (the train split's windows, the
model's draws conditioned on the real dance's history, the other train songs' music as negatives), about:

* the real dances' own codes (``GT``: no draws), and
* the codes drawn at T 0.6 by each ``--generator`` weights stem (in eval mode: every chunk hears its music),

judged by each ``--judge`` retrieval stem (``shipped`` = livedance/weights/retrieval; a model trained with another
``--seed`` is an independent judge). Lower loss and higher acc (share of windows whose own music beats every other
train song's window) = more specific to its music. The same batches (``--batches`` x 16 windows, fixed seed),
and the same retrieval windows in them, for every row. Compare with ``livedance eval --split val``'s MM-Dist / R@1, which ask the same of free-running dances on
songs the model never heard (docs/model.md, "SoulNet's alignment prior in training").

    .venv/bin/python benchmarks/align_train.py --judge shipped --judge runs/retrieval-ens-s1/retrieval \\
        --generator livedance/weights/generator --generator runs/ft-a0.5/generator

Needs ``../shared/data`` (the Tang train split); about 2 minutes of music analysis first.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--judge", action="append", default=[], help="retrieval stem or 'shipped' (repeat)")
    ap.add_argument("--generator", action="append", default=[], help="generator weights stem (repeat)")
    ap.add_argument("--batches", type=int, default=30, help="batches of 16 train windows")
    ap.add_argument("--temperature", type=float, default=0.6, help="the draws' sampling temperature")
    args = ap.parse_args()

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from livedance.data.dataset import load_split
    from livedance.model.align import AlignConfig, AlignmentLoss, music_bank
    from livedance.model.retrieval import MusicDanceRetrieval
    from livedance.model.train_generator import (TokenWindowDataset, drawn_codes, fixed_batches, load_model,
                                                 load_tokenizer_for_training, prepare_clips)

    torch.set_num_threads(1)
    tok, rep, _, _ = load_tokenizer_for_training(None)
    models = {"GT (the real codes)": None}
    for stem in args.generator:
        models[stem] = load_model(Path(stem))[0]  # eval mode: the draws hear every chunk's music
    first = next((m for m in models.values() if m is not None), None)
    window, lag = (first.config.window, first.config.lag_s) if first is not None else (8, 0.16)
    pace = any(m is not None and m.config.pace is not None for m in models.values())  # (the last cond column)
    chunk = first.config.chunk if first is not None else 2
    data = prepare_clips(load_split("train", progress=False), tok, rep, window, lag, align_music=True, pace=pace,
                         chunk=chunk)
    ds = TokenWindowDataset(data, 64, 8)
    table = Table(title=f"alignment loss on train windows ({args.batches} x 16, draws at T {args.temperature:g})")
    for col in ("judge", "codes", "align loss", "acc"):
        table.add_column(col)
    for judge in args.judge or ["shipped"]:
        retr, _ = MusicDanceRetrieval.load(None if judge == "shipped" else judge)
        bank, owner = music_bank(retr, [c.music for c in data], round(rep.config.fps), ds.song_ids)
        loss = AlignmentLoss(tok, rep, retr, bank, owner, AlignConfig(weight=1.0, temperature=args.temperature))
        for name, model in models.items():
            torch.manual_seed(0)
            losses, accs = [], []
            for k, b in enumerate(fixed_batches(ds, args.batches)):
                with torch.no_grad():
                    oh = drawn_codes(model, b, tok.config.codebook_size, args.temperature)
                    places = torch.Generator().manual_seed(k)  # the same retrieval windows for every row
                    out = loss({p: oh[:, :, i] for i, p in enumerate(tok.config.parts)}, b["music"], b["song"], places)
                losses.append(float(out["loss"]))
                accs.append(float(out["acc"]))
            table.add_row(judge, name, f"{np.mean(losses):.3f}", f"{np.mean(accs):.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
