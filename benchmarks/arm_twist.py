"""Forearm twist snaps of the learned dancer, with and without the twist limiter (livedance.engine.twist).

Dances the bundled song (or ``--song``) offline through the causal step path, once per sampling seed with the
limiter on and once with it off, and prints per elbow and wrist (SMPL-X joints 18-21) how often a frame's local
rotation differs from the previous frame's by more than ``--step-rad`` (per minute of dance), the largest such
step, the joint-frames the limiter held back, and the largest joint-position difference between the two runs
(SMPL-24 FK, metres: twist moves no joint, so it should be float rounding). With ``--train`` it also prints the
same rate for the Tang train dances (needs ``../shared/data``).

    .venv/bin/python benchmarks/arm_twist.py                 # 40 s of the bundled song, seeds 0-2
    .venv/bin/python benchmarks/arm_twist.py --train
"""

from __future__ import annotations

import argparse

import numpy as np

JOINTS = (18, 19, 20, 21)
NAMES = ("left elbow", "right elbow", "left wrist", "right wrist")


def rotation_steps(q: np.ndarray) -> np.ndarray:
    """(T - 1, J) rotation angle (radians) between consecutive frames of (T, J, 4) unit quaternions x, y, z, w."""
    from livedance.motion.rotations import quat_angle_np

    return quat_angle_np(q[1:], q[:-1])


def main() -> None:
    """Run the dances and print the table."""
    from rich.console import Console
    from rich.table import Table

    from livedance.assets import demo_song
    from livedance.engine import load_generator
    from livedance.engine.offline import generate_song, quat_smpl24_positions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--song", default=None, help="audio file (default: the bundled excerpt)")
    ap.add_argument("--seconds", type=float, default=40.0, help="seconds danced per seed (default 40)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling seeds (default 0 1 2)")
    ap.add_argument("--step-rad", type=float, default=1.0, help="a 'snap': a step above this, radians per frame")
    ap.add_argument("--train", action="store_true", help="also the Tang train dances' rate (needs ../shared/data)")
    args = ap.parse_args()
    song = args.song or demo_song()
    gen = load_generator(backend="onnx", seed=0)
    rest = gen.rep.rest_offsets
    rows, pos_diff, held, minutes = {}, 0.0, 0, 0.0
    for on in (False, True):
        gen.twist_limiter.cfg.enabled = on
        snaps, largest = np.zeros(len(JOINTS)), np.zeros(len(JOINTS))
        positions = []
        for seed in args.seeds:
            m = generate_song(gen, song, 0.0, args.seconds, seed=seed)
            s = rotation_steps(m.local_quats[:, list(JOINTS)])
            snaps += (s > args.step_rad).sum(axis=0)
            largest = np.maximum(largest, s.max(axis=0))
            positions.append(quat_smpl24_positions(m.local_quats, m.root_translation, rest))
            if on:
                held += gen.twist_limiter.n_limited
                minutes += len(m.local_quats) / m.fps / 60.0
        rows[on] = (snaps, largest, positions)
    pos_diff = max(float(np.abs(a - b).max()) for a, b in zip(rows[False][2], rows[True][2]))
    table = Table(title=f"forearm twist: steps > {args.step_rad:g} rad per frame, per minute ({song}, "
                        f"{args.seconds:g} s x seeds {' '.join(map(str, args.seeds))}, 25 fps)")
    table.add_column("joint")
    table.add_column("limiter off: per min / largest rad", justify="right")
    table.add_column("limiter on: per min / largest rad", justify="right")
    for k, name in enumerate(NAMES):
        off, on = rows[False], rows[True]
        table.add_row(name, f"{off[0][k] / minutes:.1f} / {off[1][k]:.2f}", f"{on[0][k] / minutes:.1f} / {on[1][k]:.2f}")
    console = Console()
    console.print(table)
    console.print(f"joint-frames held back by the limiter: {held}; largest SMPL-24 joint-position difference "
                  f"between the two runs: {pos_diff:.2e} m")
    if args.train:
        import roma
        import torch

        from livedance.data.dataset import load_split

        snaps, frames = np.zeros(len(JOINTS)), 0.0
        for clip in load_split("train", progress=False):
            q = roma.rotmat_to_unitquat(torch.from_numpy(np.asarray(clip.local_rotmats[:, list(JOINTS)], np.float64)))
            snaps += (rotation_steps(q.numpy()) * clip.fps / 25.0 > args.step_rad).sum(axis=0)  # per 25 fps frame
            frames += len(clip.local_rotmats) / clip.fps * 25.0
        console.print("Tang train dances, per minute: " + ", ".join(
            f"{name} {n / frames * 1500:.1f}" for name, n in zip(NAMES, snaps)))


if __name__ == "__main__":
    main()
