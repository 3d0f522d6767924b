"""How busy the generator's own draws are, teacher forced: decoded acceleration on train windows.

For 16 x ``--batches`` train windows (fixed seed, the same for every row) this draws, with each generator
weights stem given as an argument, the codes the model predicts in a training window (the chunks' masked base positions and every
residual level, straight-through Gumbel at ``--temperature``, the real dance's history elsewhere; as the
continuity and alignment losses see them), decodes them with the shipped tokenizer and FK, and prints the mean joint
acceleration (m/s^2), the mean joint speed (m/s) and the rate of mean-speed minima per second, from the first frame
with the decoder's full context, beside the same figures for the real codes (docs/model.md, "A training signal on the
decoded motion").

    .venv/bin/python benchmarks/draw_kinetics.py livedance/weights/generator runs/gen/generator

Needs ``../shared/data`` (the Tang train split); a few minutes of music analysis first.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("generator", nargs="*", default=["livedance/weights/generator"], help="generator weights stems")
    ap.add_argument("--batches", type=int, default=20, help="batches of 16 train windows (default 20)")
    ap.add_argument("--temperature", type=float, default=0.6, help="the draws' sampling temperature (default 0.6)")
    args = ap.parse_args()

    import torch

    from livedance.data.dataset import load_split
    from livedance.model.continuity import ContinuityLoss
    from livedance.model.train_generator import (TokenWindowDataset, drawn_codes, fixed_batches, load_model,
                                                 load_tokenizer_for_training, prepare_clips)

    torch.set_num_threads(1)
    tok, rep, _, _ = load_tokenizer_for_training(None)
    models = {stem: load_model(Path(stem))[0] for stem in args.generator}
    first = next(iter(models.values()))
    for stem, m in models.items():  # one set of training windows serves every row only if they read the same inputs
        if (m.config.window, m.config.lag_s, m.config.chunk) != (first.config.window, first.config.lag_s,
                                                                 first.config.chunk):
            raise SystemExit(f"{stem}: window / lag / chunk {(m.config.window, m.config.lag_s, m.config.chunk)} differ "
                             f"from {args.generator[0]}'s; compare them in separate runs")
    data = prepare_clips(load_split("train", progress=False), tok, rep, first.config.window, first.config.lag_s,
                         chunk=first.config.chunk, pace=any(m.config.pace is not None for m in models.values()))
    ds = TokenWindowDataset(data, 64, 8)
    dec = ContinuityLoss(tok, rep)
    fps = float(rep.config.fps)
    parts = tok.config.parts

    def figures(onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = dec.positions({q: onehot[:, :, i] for i, q in enumerate(parts)})  # (B, T, 24, 3) m
        speed = (p[:, 1:] - p[:, :-1]).norm(dim=-1) * fps  # (B, T-1, 24) m/s
        acc = (p[:, 2:] - 2 * p[:, 1:-1] + p[:, :-2]).norm(dim=-1) * fps ** 2
        s = speed.mean(-1)
        minima = ((s[:, 1:-1] < s[:, :-2]) & (s[:, 1:-1] < s[:, 2:])).float().sum(1) / (s.shape[1] / fps)
        return acc.mean((1, 2)), speed.mean((1, 2)), minima

    print(f"{'codes':40s} {'acc m/s^2':>10s} {'speed m/s':>10s} {'minima /s':>10s}")
    for name, model in [("real codes", None)] + list(models.items()):
        torch.manual_seed(0)
        rows = [torch.stack(figures(drawn_codes(model, b, tok.config.codebook_size, args.temperature)), dim=1)
                for b in fixed_batches(ds, args.batches)]
        m = torch.cat(rows).mean(0)
        print(f"{name:40s} {m[0]:10.3f} {m[1]:10.3f} {m[2]:10.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
