"""Held codes: how long generated dances hold one base code, against the longest hold of the train dances.

Each base code of the shipped tokenizer gets a budget per part: the most slots of any ``--window``-slot window of a
train dance that the tokenizer gives that code (slots of 4 frames, 0.16 s at 25 fps). Each motion npz given (as
``livedance eval --models-out`` writes them) is re-encoded with the same tokenizer, and the script prints, per clip,
the share of frames that show a geometric feature (``--feature``, default 16: the right ankle lifted; Bailando's
set, :mod:`livedance.eval.geometric`), and per part the code held most over its budget in any window: its slots
in that window, its budget, and the share of its train frames that show the feature. docs/model.md, "Where the
causal training's FIDg tails come from".

    .venv/bin/python benchmarks/code_holds.py runs/gen/livedance/*.npz

Needs ``../shared/data`` (the Tang train split).
"""

from __future__ import annotations

import argparse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("motions", nargs="+", help="motion npz files (docs/formats.md) with local rotations")
    ap.add_argument("--window", type=int, default=31, help="window in slots (default 31 = 4.96 s)")
    ap.add_argument("--feature", type=int, default=16, help="geometric feature index (default 16)")
    args = ap.parse_args()

    import numpy as np
    import roma
    import torch

    from livedance.data.dataset import load_split
    from livedance.eval.geometric import geometric_frame_features
    from livedance.eval.motion_io import load_motion
    from livedance.model.representation import raw_features
    from livedance.model.tokenizer import Tokenizer

    torch.set_num_threads(1)
    tok, rep, _ = Tokenizer.load(None)
    parts, C, S, W, F = tok.config.parts, tok.config.codebook_size, tok.stride, args.window, args.feature

    def base_codes(rotmats, root, positions) -> dict[str, np.ndarray]:
        raw = raw_features(rotmats, root, rep.rest_offsets, positions[:, :22], rep.config)
        codes = tok.encode(torch.from_numpy(rep.normalize(raw.astype(np.float32)))[None])
        return {p: codes[p][0, :, 0].numpy() for p in parts}

    def window_counts(k: np.ndarray) -> np.ndarray:
        """(n_windows, C) slots per code in every W-slot window (the whole clip when shorter)."""
        cs = np.cumsum(np.vstack([np.zeros((1, C), np.int64), np.eye(C, dtype=np.int64)[k]]), 0)
        return cs[W:] - cs[:-W] if len(k) >= W else cs[-1:]

    budget = {p: np.zeros(C, np.int64) for p in parts}
    frames, shown = {p: np.zeros(C) for p in parts}, {p: np.zeros(C) for p in parts}
    for clip in load_split("train", progress=False):
        codes = base_codes(clip.local_rotmats, clip.root_translation, clip.positions)
        flag = geometric_frame_features(clip.positions, clip.fps, [F])[:, 0]
        for p in parts:
            budget[p] = np.maximum(budget[p], window_counts(codes[p]).max(0))
            for i, c in enumerate(codes[p]):
                f = flag[i * S:(i + 1) * S]
                frames[p][c] += len(f)
                shown[p][c] += f.sum()
    share = {p: shown[p] / np.maximum(frames[p], 1) for p in parts}
    print(f"train dances: feature {F} in {sum(shown[parts[0]]) / sum(frames[parts[0]]):.2%} of frames; "
          f"budgets over {W} slots, median {', '.join(f'{p} {np.median(budget[p][budget[p] > 0]):g}' for p in parts)}")
    print(f"{'clip':32s} {'feature':>8s}  " + "  ".join(f"{p + ': code, slots / budget, feature share':40s}"
                                                       for p in parts))
    for path in args.motions:
        m = load_motion(path)
        if m.local_rotations is None or m.root_translation is None:
            raise SystemExit(f"{path}: no local rotations / root translation (write it with livedance eval --models-out)")
        R = roma.unitquat_to_rotmat(torch.from_numpy(m.local_rotations[:, :22].astype(np.float32))).numpy()
        codes = base_codes(R, m.root_translation, m.positions)
        flag = geometric_frame_features(m.positions, m.fps, [F])[:, 0]
        cells = []
        for p in parts:
            held = window_counts(codes[p]).max(0)
            c = int(np.argmax(held - budget[p]))
            cells.append(f"{c:4d}, {held[c]:2d} / {budget[p][c]:2d}, {share[p][c]:.2f}" if held[c] > budget[p][c]
                         else "none over budget")
        print(f"{m.name:32s} {flag.mean():8.3f}  " + "  ".join(f"{c:40s}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
