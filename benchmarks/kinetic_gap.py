"""Where a row's FIDk comes from: the Fréchet distance split into its mean and covariance terms, which kinetic
features are shifted, and how often the dance stops (motion beats per second).

FIDk (Bailando's protocol, ``livedance.eval``) is the Fréchet distance between Gaussians fitted to the 72-d
kinetic features (per SMPL joint: horizontal and vertical kinetic energy KE_h, KE_v and energy expenditure EE,
the mean acceleration magnitude; ``livedance.eval.kinetic``) of a row's dances and of the train split's real
dances, both z-normalised by the reference statistics:

    FID = |mu_g - mu_r|^2  +  Tr(S_g + S_r - 2 (S_g S_r)^(1/2))          (Heusel et al. 2017, Eq. 6)
          "mean term"          "covariance term"

This script prints, per row, the FIDk and its two terms; the mean z-shift of each feature kind (averaged over
the 24 joints: + means more than the reference dances); Tr(S_g), the spread of the row's own features (Divk's
relative); and two readings of the motion itself over the protocol window (first 20 s, 25 fps): the median over
clips of motion beats per second (velocity minima of the mean joint speed, the "motion beats" of BAS,
``livedance.eval.beat_align.motion_beats``) and of the mean joint speed (m/s).

Rows: the split's real dances, our tokenizer's reconstruction of them (encode + decode, all levels: what the
generator could reach at best), and every ``--motions LABEL=DIR``. A label may be given several times (e.g.
once per sampling seed, the ``--models-out`` folders of ``livedance eval``): the FID terms are then the mean
over the folders (each folder is one set of dances, as one eval run scores it) and the motion readings pool
all clips.

    .venv/bin/livedance eval --split test --models livedance,baseline --no-retrieval --seed S --models-out runs/gen-sS
    .venv/bin/python benchmarks/kinetic_gap.py $(for S in 0 1 2 3; do \
        echo --motions livedance=runs/gen-s$S/livedance --motions baseline=runs/gen-s$S/baseline; done)

Reading it (docs/model.md, "Where the FIDk gap is"): a row whose mean term is large and whose EE shift is
positive while KE_h is negative moves slowly but accelerates a lot: it stops and starts more often than the
dancers, which the motion-beat rate shows directly.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Order of the three kinetic features of a joint in the 72-d vector (``livedance.eval.kinetic``).
KINDS = ("KE_h", "KE_v", "EE")


def kinetic_terms(features: np.ndarray, reference: np.ndarray) -> dict[str, object]:
    """FIDk's terms for one set of dances.

    Args:
        features: (N, 72) kinetic features of the row's dances (N >= 2).
        reference: (M, 72) kinetic features of the reference dances (M >= 2).
    Returns:
        ``{"FID", "mean_term", "cov_term", "trace_gen"}`` floats and ``"shift"``: (72,) float64 z-shift of the
        row's mean from the reference's (reference standard deviations).
    """
    from livedance.eval.fid import fid_terms, normalize_with_reference

    ref, feat = normalize_with_reference(reference, features)
    t = fid_terms(feat, ref)
    return {"FID": t["fid"], "mean_term": t["mean_term"], "cov_term": t["cov_term"],
            "trace_gen": float(np.trace(np.cov(feat, rowvar=False))), "shift": feat.mean(axis=0) - ref.mean(axis=0)}


def motion_readings(positions: np.ndarray, fps: float, seconds: float) -> tuple[float, float]:
    """(motion beats per second, mean joint speed m/s) over the protocol window of one dance.

    Args:
        positions: (T, 24, 3) metres, y up. fps: frames per second. seconds: the protocol window's length.
    """
    from livedance.eval.beat_align import mean_joint_speed, motion_beats
    from livedance.eval.window import protocol_window

    w = protocol_window(positions, fps, seconds)
    dur = (len(w) - 1) / fps
    return len(motion_beats(w, fps)) / dur, float(mean_joint_speed(w).mean() * fps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", help="split of the real dances and of the motions (default: test)")
    ap.add_argument("--motions", action="append", default=[], metavar="LABEL=DIR",
                    help="a folder of generated motion npz files; repeat a label for more sampling seeds")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from rich.console import Console
    from rich.table import Table

    from livedance.data.dataset import load_split
    from livedance.errors import ConfigError
    from livedance.eval.motion_io import find_motions
    from livedance.eval.suite import EvalClip, EvalConfig, compute_features, shared_skeleton
    from livedance.model.checkpoint import WEIGHTS_DIR
    from tokenizer_fid import reconstruct

    cfg = EvalConfig()
    rows: dict[str, list[list[EvalClip]]] = {}
    for item in args.motions:
        label, sep, path = item.partition("=")
        if not sep or not label or not Path(path).is_dir():
            raise ConfigError(f"--motions {item!r}: expected LABEL=DIR with DIR a folder of motion npz files")
        rows.setdefault(label, []).append([EvalClip.from_clip(m).at_fps(cfg.fps) for m in find_motions(Path(path))])
    clips = load_split(args.split, progress=False)
    train = load_split("train", progress=False)
    canon = shared_skeleton(train)  # the real dances on the generators' one skeleton, as `livedance eval` scores them
    real = [EvalClip.from_clip(c, canon).at_fps(cfg.fps) for c in clips]
    reference = compute_features([EvalClip.from_clip(c, canon).at_fps(cfg.fps) for c in train], cfg).kinetic
    with tempfile.TemporaryDirectory() as tmp:
        reconstruct(WEIGHTS_DIR / "tokenizer", clips, Path(tmp))
        recon = [EvalClip.from_clip(m).at_fps(cfg.fps) for m in find_motions(Path(tmp))]
    rows = {"ground truth": [real], "our tokenizer, reconstruction": [recon], **rows}

    report = {}
    for label, sets in rows.items():
        terms = [kinetic_terms(compute_features(s, cfg).kinetic, reference) for s in sets]
        shift = np.mean([t["shift"] for t in terms], axis=0).reshape(24, 3)
        readings = np.array([motion_readings(c.positions, c.fps, cfg.seconds) for s in sets for c in s])
        report[label] = {
            "runs": len(sets), "clips": int(sum(len(s) for s in sets)),
            **{k: float(np.mean([t[k] for t in terms])) for k in ("FID", "mean_term", "cov_term", "trace_gen")},
            "shift": {k: float(shift[:, i].mean()) for i, k in enumerate(KINDS)},
            "motion_beats_per_s": float(np.median(readings[:, 0])), "mean_joint_speed_m_s": float(np.median(readings[:, 1])),
        }

    table = Table(title=f"FIDk split into its terms, {args.split} split (reference: the train split's real dances)")
    for col in ("row", "runs", "FIDk", "mean term", "cov. term", "Tr(S_gen)", "KE_h shift", "KE_v shift", "EE shift",
                "motion beats /s", "joint speed m/s"):
        table.add_column(col, justify="left" if col == "row" else "right")
    for label, r in report.items():
        table.add_row(label, str(r["runs"]), f"{r['FID']:.2f}", f"{r['mean_term']:.2f}", f"{r['cov_term']:.2f}",
                      f"{r['trace_gen']:.2f}", *(f"{r['shift'][k]:+.2f}" for k in KINDS),
                      f"{r['motion_beats_per_s']:.2f}", f"{r['mean_joint_speed_m_s']:.3f}")
    Console().print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"split": args.split, "rows": report, "command": " ".join(
            ["benchmarks/kinetic_gap.py", "--split", args.split, *(f"--motions {m}" for m in args.motions)])}, indent=1))


if __name__ == "__main__":
    main()
