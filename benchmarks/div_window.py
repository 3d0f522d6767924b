"""Diversity (Divk, Divg) of real and generated dances over later windows of the clips.

``livedance eval`` scores the first 20 s of every clip (25 fps), as the protocol does. A causal dancer
starts from nothing while the beat tracker is still locking, so a diversity deficit could come from the
first seconds alone. This script recomputes Divk and Divg (Bailando's ``quantized_metrics``: features
z-normalised with the train split's real dances over the same window, then the mean pairwise distance)
for windows that start ``--starts`` seconds into each clip, for the split's real dances and for each
folder of generated dances given with ``--motions LABEL=DIR`` (the ``--models-out`` folders of
``livedance eval``). If the generated rows catch up with the real ones in later windows, the deficit is
the start-up; if not, it is the dance.

    .venv/bin/livedance eval --split test --models livedance --seed 0 --models-out runs/test-s0
    .venv/bin/python benchmarks/div_window.py --motions livedance=runs/test-s0/livedance --starts 0 5 10

Needs ``../shared/data`` (the Tang split). Train clips shorter than start + 20 s are left out of the
reference of that window (the script prints how many remain).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def window_features(positions: np.ndarray, fps: float, start_s: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Kinetic (72,) and geometric (32,) features of the ``seconds`` window from ``start_s`` of a clip.

    Args:
        positions: (T, 24, 3) float SMPL-24 joint positions, metres, y up, at ``fps``.
        fps: frames per second of ``positions``.
        start_s: window start, seconds from the clip's first frame.
        seconds: window length in seconds (the protocol's 20 s).

    Raises:
        DataError: the window holds fewer than 3 frames (from the eval suite's checks).
    """
    from livedance.eval.geometric import geometric_features
    from livedance.eval.kinetic import kinetic_features
    from livedance.eval.window import protocol_window

    w = protocol_window(np.asarray(positions)[int(round(start_s * fps)):], fps, seconds)
    return kinetic_features(w, fps).reshape(-1), geometric_features(w, fps).reshape(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", help="split whose dances are scored (default: test)")
    ap.add_argument("--motions", action="append", default=[], metavar="LABEL=DIR",
                    help="generated dances to score (a folder of motion npz files named after the split's clips)")
    ap.add_argument("--starts", type=float, nargs="+", default=[0.0, 5.0, 10.0],
                    help="window starts, seconds into each clip (default: 0 5 10)")
    ap.add_argument("--seconds", type=float, default=20.0, help="window length, seconds (default: 20, the protocol's)")
    args = ap.parse_args()

    from livedance.data.dataset import load_split
    from livedance.errors import ConfigError
    from livedance.eval.diversity import average_pairwise_distance
    from livedance.eval.fid import normalize_with_reference
    from livedance.eval.motion_io import find_motions

    fps = 25.0
    folders = {}
    for item in args.motions:
        label, sep, path = item.partition("=")
        if not sep or not label or not Path(path).is_dir():
            ap.error(f"--motions {item!r}: expected LABEL=DIR with DIR a folder of motion npz files")
        folders[label] = Path(path)
    clips = load_split(args.split, progress=False)
    train = load_split("train", progress=False)
    rows = {"ground truth": {c.name: c.positions for c in clips}}
    for label, path in folders.items():
        found = {Path(m.path).stem: m for m in find_motions(path)}
        missing = [c.name for c in clips if c.name not in found]
        if missing:
            raise ConfigError(f"--motions {path}: no motion file for {', '.join(missing)} (split {args.split!r})")
        for c in clips:
            if abs(found[c.name].fps - fps) > 1e-6:
                raise ConfigError(f"--motions {path}: {c.name} is at {found[c.name].fps} fps, expected {fps}")
        rows[label] = {c.name: found[c.name].positions for c in clips}

    print(f"split {args.split}, {len(clips)} clips, windows of {args.seconds:g} s at {fps:g} fps")
    print(f"{'start s':>8} {'ref clips':>9} " + " ".join(f"{lab[:14]:>14} Divk / Divg" for lab in rows))
    for start in args.starts:
        ref = [window_features(c.positions, fps, start, args.seconds) for c in train
               if len(c.positions) >= (start + args.seconds) * fps]
        cells = []
        for label, pos in rows.items():
            feats = [window_features(pos[c.name], fps, start, args.seconds) for c in clips]
            div = []
            for i in (0, 1):
                _, x = normalize_with_reference(np.array([r[i] for r in ref]), np.array([f[i] for f in feats]))
                div.append(average_pairwise_distance(x))
            cells.append(f"{div[0]:14.2f} / {div[1]:.2f}")
        print(f"{start:8.1f} {len(ref):9d} " + " ".join(cells))


if __name__ == "__main__":
    main()
