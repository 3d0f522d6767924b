"""The tokenizers' floor: real dances encoded and decoded by each shipped tokenizer, scored like generated ones.

A generator that emits a tokenizer's codes can at best reproduce what the tokenizer's decoder makes of
real dances. This script encodes every dance of ``--split`` with each shipped tokenizer (ours: the
part-chained residual VQ; the baseline's: Bailando-style VQ-VAE), decodes it whole (root heading and
position integrated from the clip's first frame), and scores the reconstructions with the same suite as
``livedance eval`` (FIDk, FIDg, Divk, Divg, BAS, PFC; first 20 s of each clip, 25 fps; FID reference = the
train split's real dances). Rows: the split's real dances, then one per tokenizer, then any generated
dances given with ``--motions LABEL=DIR`` (e.g. the ``--models-out`` folders of ``livedance eval``).

Beside the suite's figures it prints, per row, how close the poses lie to the train split's poses: the
distance from each frame's pose (22 body joints relative to the pelvis, in the dancer's heading frame)
to the nearest train-split frame, as a root mean square over the joints in centimetres (median over
frames), and the share of frames within 1 cm of one.

    .venv/bin/python benchmarks/tokenizer_fid.py                 # test split, both shipped tokenizers
    .venv/bin/python benchmarks/tokenizer_fid.py --split val --json runs/tokenizer_fid-val.json
    .venv/bin/livedance eval --split test --models livedance,baseline --models-out runs/gen-s0
    .venv/bin/python benchmarks/tokenizer_fid.py --motions livedance=runs/gen-s0/livedance \
        --motions baseline=runs/gen-s0/baseline

Reading it (docs/model.md, "The tokenizers' floor"): a generated row below its tokenizer's row on FIDk
or FIDg sits closer to the *train* dances than the test dances' own reconstructions do, which is what
replaying training fragments looks like under a train-split FID reference.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

TOKENIZERS = {"livedance (HRVQ)": "tokenizer", "baseline (VQ-VAE)": "baseline_tokenizer"}


def _heading_frame(rel: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """(T, J, 3) pelvis-relative positions rotated by -heading (T,) radians about +y: the dancer faces +z."""
    c, s = np.cos(heading)[:, None], np.sin(heading)[:, None]
    x, z = rel[..., 0], rel[..., 2]
    return np.stack([c * x - s * z, rel[..., 1], s * x + c * z], axis=-1)


def pose_descriptors(positions: np.ndarray, pelvis_rotmats: np.ndarray) -> np.ndarray:
    """(T, >=22, 3) positions (m) and (T, 3, 3) global pelvis rotations -> (T, 66) heading-frame pose vectors."""
    from livedance.model.representation import pelvis_heading

    rel = _heading_frame(positions[:, :22] - positions[:, :1], pelvis_heading(pelvis_rotmats))
    return rel.reshape(len(rel), -1)


def nearest_train_pose(tree, descriptors: list[np.ndarray]) -> tuple[float, float]:
    """Median RMS-over-joints distance (cm) to the nearest train pose, and the share of frames within 1 cm."""
    d = np.concatenate([tree.query(x, k=1)[0] for x in descriptors]) / np.sqrt(22.0)
    return 100.0 * float(np.median(d)), float((d < 0.01).mean())


def reconstruct(stem: Path, clips, out: Path) -> float:
    """Encode + decode every clip with the tokenizer at ``stem``; write motion npz files into ``out``.

    Returns:
        the reconstruction MPJPE in millimetres over all body joints, as the tokenizer's training reports
        it (:func:`livedance.model.train_tokenizer.reconstruction_mpjpe`: pelvis-relative, heading frame,
        frame-weighted over the clips).
    """
    from livedance.data.dataset import smpl24_positions
    from livedance.eval.motion_io import save_motion
    from livedance.model.representation import pelvis_heading
    from livedance.model.tokenizer import Tokenizer
    from livedance.model.train_tokenizer import reconstruction_mpjpe
    from livedance.motion.rotations import rotmat_to_quat

    tok, rep, _ = Tokenizer.load(stem)
    for c in clips:
        x = torch.from_numpy(rep.encode(c))[None]
        with torch.no_grad():
            y = tok.decode(tok.encode(x))[0, : x.shape[1]].numpy()
        # decoded onto the representation's one skeleton, as the generators' dances are (and as livedance eval
        # scores the real dances by default, EvalConfig.skeleton "shared")
        rot, transl = rep.decode(y, rest_offsets=rep.rest_offsets, start_xz=c.root_translation[0, [0, 2]],
                                 start_heading=pelvis_heading(c.local_rotmats[0, 0]))
        pos = smpl24_positions(rot, transl, rep.rest_offsets)
        quats = np.zeros((len(rot), 55, 4), np.float32)
        quats[..., 3] = 1.0
        quats[:, :22] = rotmat_to_quat(torch.from_numpy(rot)).numpy()
        save_motion(out / f"{c.name}.npz", pos, c.fps, c.audio_path, c.audio_offset_s, quats, transl)
    with torch.no_grad():
        return float(reconstruction_mpjpe(tok, rep, clips)["all"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", help="split whose dances are reconstructed (default: test)")
    ap.add_argument("--weights", type=Path, default=None,
                    help="folder holding tokenizer.* and baseline_tokenizer.* (default: the shipped weights)")
    ap.add_argument("--motions", action="append", default=[], metavar="LABEL=DIR",
                    help="also score these generated dances (motion npz folder); repeatable")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from rich.console import Console

    from livedance.cli.eval_cmd import render_table
    from livedance.data.dataset import load_split
    from livedance.eval.motion_io import find_motions
    from livedance.eval.suite import EvalConfig, evaluate
    from livedance.model.checkpoint import WEIGHTS_DIR

    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation

    from livedance.errors import ConfigError

    generated = {}
    for item in args.motions:
        label, sep, path = item.partition("=")
        if not sep or not label or not Path(path).is_dir():
            raise ConfigError(f"--motions {item!r}: expected LABEL=DIR with DIR a folder of motion npz files")
        generated[label] = find_motions(Path(path))
    folder = args.weights or WEIGHTS_DIR
    clips = load_split(args.split, progress=False)
    reference = load_split("train", progress=False)
    tree = cKDTree(np.concatenate([pose_descriptors(c.positions, c.local_rotmats[:, 0]) for c in reference]))
    near = {"ground truth": nearest_train_pose(tree, [pose_descriptors(c.positions, c.local_rotmats[:, 0])
                                                     for c in clips])}
    motions, mpjpe = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, stem in TOKENIZERS.items():
            out = Path(tmp) / stem
            mpjpe[label] = reconstruct(folder / stem, clips, out)
            motions[f"{label} reconstruction"] = find_motions(out)
        motions.update(generated)
        for label, files in motions.items():
            desc = []
            for m in files:
                if m.local_rotations is None:
                    raise ConfigError(f"{m.path}: no local_rotations (needed for the heading frame)")
                desc.append(pose_descriptors(m.positions, Rotation.from_quat(m.local_rotations[:, 0]).as_matrix()))
            near[label] = nearest_train_pose(tree, desc)
        report = evaluate(clips, reference, motions, EvalConfig(), split=args.split)
    console = Console()
    console.print(render_table(report, f"Tokenizer reconstructions of the {args.split} split, scored as dances"))
    for label, v in mpjpe.items():
        console.print(f"  - {label}: reconstruction MPJPE {v:.1f} mm (all body joints, pelvis-relative, heading frame)")
    console.print("  - nearest train-split pose (RMS over 22 joints, heading frame): median cm / frames within 1 cm")
    for label, (med, share) in near.items():
        console.print(f"      {label}: {med:.1f} cm / {100 * share:.0f} %")
    if args.json:
        doc = report.to_dict()
        doc["mpjpe_mm"] = mpjpe
        doc["nearest_train_pose"] = {k: {"median_cm": a, "share_within_1cm": b} for k, (a, b) in near.items()}
        doc["command"] = " ".join(["benchmarks/tokenizer_fid.py", "--split", args.split,
                                   *(["--weights", str(args.weights)] if args.weights else []),
                                   *(f"--motions {m}" for m in args.motions)])
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
        console.print(f"  - wrote {args.json}")


if __name__ == "__main__":
    main()
