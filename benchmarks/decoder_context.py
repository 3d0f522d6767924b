"""The engine's zero-latent decoder context at a stream's start, against the offline decode.

The engine's step graph decodes each step's tokens over the last R = ``Tokenizer.decoder_context_tokens`` latents
(``dec_ctx``), which are zeros when a stream starts; the offline decode (``Tokenizer.decode``) has no context at
all (its causal convolutions pad with zeros inside). This prints, for the real dances of a split encoded by a
tokenizer, how far the two decodes of the same codes differ: the pelvis-relative SMPL-24 MPJPE (mm) per token slot
(mean over the clips) for the first slots, and per clip the mean over the first R slots, the largest difference of the
decoded features after them (the decoder itself: 0 when its receptive field is within R slots), and the largest
pose difference after them (what the different first slots leave in the integrated root heading).

Usage::

    .venv/bin/python benchmarks/decoder_context.py --split test

Needs the Tang 2018 data (``../shared/data`` or ``$LIVEDANCE_DATA``); a few seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="test", choices=("train", "val", "test"), help="Tang split (default test)")
    ap.add_argument("--tokenizer", type=Path, default=None, help="tokenizer weights stem (default: the shipped one)")
    ap.add_argument("--slots", type=int, default=8, help="token slots to print per-slot figures for")
    args = ap.parse_args()

    import numpy as np
    import torch

    from livedance.data.dataset import load_split
    from livedance.model.align import smpl24_positions_torch
    from livedance.model.train_generator import load_tokenizer_for_training
    from livedance.model.train_tokenizer import clip_raw_features

    torch.set_num_threads(1)
    tok, rep, _, _ = load_tokenizer_for_training(args.tokenizer)
    R, s = tok.decoder_context_tokens, tok.stride
    clips = load_split(args.split, progress=False)
    if not clips:
        raise SystemExit(f"split {args.split!r} has no clips")
    per_slot = []
    print(f"tokenizer decoder context R = {R} slots ({R * s} frames at {rep.config.fps:g} fps)")
    for clip, raw in zip(clips, clip_raw_features(clips, rep.config)):
        x = rep.normalize(torch.from_numpy(np.ascontiguousarray(raw, np.float32)))[None]
        with torch.no_grad():
            zq = tok.dequantize(tok.encode(x))
            offline = tok.decode_latents(zq)
            padded = {p: torch.cat([torch.zeros(1, R, z.shape[-1]), z], dim=1) for p, z in zq.items()}
            engine = tok.decode_latents(padded)[:, R * s:]
            a, b = smpl24_positions_torch(rep, offline)[0], smpl24_positions_torch(rep, engine)[0]
        feat_after = float((offline[:, R * s:] - engine[:, R * s:]).abs().max())
        a, b = a - a[:, :1], b - b[:, :1]  # pelvis-relative: the pose, not the integrated path
        err = 1000.0 * (a - b).norm(dim=-1).mean(-1).numpy()  # (T,) mm
        n = (len(err) // s) * s
        per_slot.append(err[:n].reshape(-1, s).mean(1))
        print(f"{clip.name:12s} first {R} slots: {err[:R * s].mean():6.1f} mm mean; after them: decoded features "
              f"differ by at most {feat_after:.1e}, poses by at most {err[R * s:].max():6.1f} mm")
    k = min(args.slots, min(len(p) for p in per_slot))
    mean = np.mean([p[:k] for p in per_slot], axis=0)
    print("per slot (mm, mean over clips): " + " ".join(f"{v:.1f}" for v in mean))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
