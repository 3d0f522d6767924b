"""Token-boundary jitter of dances: mean joint acceleration by frame position within a 4-frame token.

The tokenizers decode 4 frames per token with a causal decoder, so a step between tokens shows as extra
acceleration at the two frames that straddle each boundary (docs/model.md, "Token-boundary jitter"). This
prints, for the real dances of a split and for every folder of generated dances given, the mean joint
acceleration (m/s^2, SMPL-24 joint positions at 25 fps, central second difference) at each frame position
mod 4, the ratio of positions 3 and 0 (around a boundary) to positions 1 and 2 (inside a token), and the
overall mean.

Usage::

    livedance eval --split test --models livedance,baseline --seed 0 --models-out runs/motions-s0
    .venv/bin/python benchmarks/token_jitter.py runs/motions-s0/livedance runs/motions-s0/baseline

Needs the Tang 2018 data (``../shared/data`` or ``$LIVEDANCE_DATA``) for the real dances' row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

STRIDE = 4  # frames per token (the tokenizers at 25 fps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("motions", nargs="*", type=Path, help="folders of motion npz files (livedance eval --models-out)")
    ap.add_argument("--split", default="test", help="split whose real dances form the first row (default test)")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from livedance.data.dataset import load_split
    from livedance.eval.motion_io import find_motions
    from livedance.model.decoder_tune import acceleration_by_token_position, boundary_and_inside

    rows = []
    clips = load_split(args.split, progress=False)
    rows.append((f"real dances ({args.split})", [np.asarray(c.positions, np.float64) for c in clips], clips[0].fps))
    for folder in args.motions:
        files = find_motions(folder)
        if not files:
            raise SystemExit(f"{folder}: no motion npz files (expected the output of livedance eval --models-out)")
        if abs(files[0].fps - 25.0) > 1e-6:
            raise SystemExit(f"{folder}: motions at {files[0].fps:g} fps; the token positions assume the "
                             "tokenizer's 25 fps (4 frames per token)")
        rows.append(("/".join(folder.parts[-2:]), [np.asarray(f.positions, np.float64) for f in files], files[0].fps))
    tab = Table(title="mean joint acceleration (m/s^2) by frame position in the token (frame index mod 4)",
                title_justify="left")
    for col in ("dances", "clips", *(f"mod 4 = {k}" for k in range(STRIDE)), "boundary (3, 0) / inside (1, 2)",
                "mean"):
        tab.add_column(col, justify="left" if col == "dances" else "right")
    for name, pos, fps in rows:
        a, n = acceleration_by_token_position(pos, fps, STRIDE)
        boundary, inside = boundary_and_inside(a, n)
        tab.add_row(name, str(len(pos)), *(f"{v:.2f}" for v in a), f"{boundary / inside:.2f}", f"{a.mean():.2f}")
    Console(width=110).print(tab)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
