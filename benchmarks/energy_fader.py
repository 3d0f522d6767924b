"""What the VJ's energy fader does to the learned dancer (livedance.engine.energy), deterministically.

Dances the bundled song (or ``--song``) offline through the causal step path with one sampling seed, once per
fader value, the fader at 1 until ``--from-s`` and at the value from then on (what ``/livedance/energy`` does
live, without a live run's timing noise), and prints the mean rotation speed of the SMPL-X body joints 1-21
(rad/s) per ``--block-s`` seconds, and the ratio to the unfaded dance after the change.

    .venv/bin/python benchmarks/energy_fader.py              # 40 s, fader from 20 s, values 1 0.5 0.25 0 2
    .venv/bin/python benchmarks/energy_fader.py --calm-follow 1   # without the calming smoother (fader < 0.5)

A second table splits the speed after the change into the elbows and wrists and the other body joints, and
prints the largest one-frame rotation of any body joint (a pop would show there).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np


class FaderFrom:
    """Wraps a generator: ``MusicContext.energy`` is ``energy`` for steps from ``from_s`` (stream seconds) on."""

    def __init__(self, generator, from_s: float, energy: float):
        self.generator, self.from_s, self.energy = generator, float(from_s), float(energy)

    def __getattr__(self, name):
        return getattr(self.generator, name)

    def step(self, music):
        """The wrapped generator's step, with the fader set once ``music.t_first_frame_s`` reaches ``from_s``."""
        if music.t_first_frame_s >= self.from_s:
            music = dataclasses.replace(music, energy=self.energy)
        return self.generator.step(music)


ARMS = (18, 19, 20, 21)  # SMPL-X left / right elbow, left / right wrist


def joint_steps(q: np.ndarray) -> np.ndarray:
    """(T - 1, 21) rotation (rad) of each body joint 1-21 between consecutive frames of (T, J, 4) x, y, z, w."""
    from livedance.motion.rotations import quat_angle_np

    return quat_angle_np(q[1:, 1:22], q[:-1, 1:22])


def body_speed(steps: np.ndarray, fps: float) -> np.ndarray:
    """(T - 1,) mean rotation speed (rad/s) of body joints 1-21 from their :func:`joint_steps` (T - 1, 21) at ``fps``."""
    return steps.mean(axis=-1) * fps


def main() -> None:
    """Dance once per fader value and print the table."""
    from rich.console import Console
    from rich.table import Table

    from livedance.assets import demo_song
    from livedance.engine import load_generator
    from livedance.engine.offline import generate_song

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--song", default=None, help="audio file (default: the bundled excerpt)")
    ap.add_argument("--seconds", type=float, default=40.0, help="seconds danced (default 40)")
    ap.add_argument("--from-s", type=float, default=20.0, help="song time from which the fader is set (default 20)")
    ap.add_argument("--values", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.0, 2.0], help="fader values")
    ap.add_argument("--block-s", type=float, default=4.0, help="seconds per column (default 4)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    ap.add_argument("--calm-follow", type=float, default=None,
                    help="EnergyConfig.calm_follow (default: the shipped 0.1; 1 turns the calming smoother off)")
    args = ap.parse_args()
    song = args.song or demo_song()
    speeds, steps = {}, {}
    for e in dict.fromkeys([1.0, *args.values]):  # the unfaded dance first: the reference of the ratios
        gen = load_generator(backend="onnx", seed=args.seed)
        if args.calm_follow is not None:
            gen.energy_fader.cfg = dataclasses.replace(gen.energy_fader.cfg, calm_follow=args.calm_follow)
            gen.energy_fader.cfg.validate()
        m = generate_song(FaderFrom(gen, args.from_s, e), song, 0.0, args.seconds, seed=args.seed)
        steps[e] = joint_steps(m.local_quats)
        speeds[e] = (body_speed(steps[e], m.fps), m.fps)
    n = int(round(args.block_s * speeds[1.0][1]))
    blocks = len(speeds[1.0][0]) // n
    after = int(np.ceil(args.from_s / args.block_s))  # first block wholly after the change
    table = Table(title=f"body-joint rotation speed (rad/s), fader set from {args.from_s:g} s ({song}, seed {args.seed})")
    table.add_column("fader")
    for k in range(blocks):
        table.add_column(f"{k * args.block_s:g}-{(k + 1) * args.block_s:g} s", justify="right")
    table.add_column("after / unfaded", justify="right")
    ref = speeds[1.0][0][after * n:blocks * n].mean()
    for e in args.values:
        v = speeds[e][0]
        cells = [f"{v[k * n:(k + 1) * n].mean():.2f}" for k in range(blocks)]
        table.add_row(f"{e:g}", *cells, f"{v[after * n:blocks * n].mean() / ref:.2f}")
    Console().print(table)
    # per joint group after the change, and the largest one-frame step (a pop would show here)
    arms = [j - 1 for j in ARMS]
    rest = [j for j in range(21) if j not in arms]
    k0, k1 = after * n, blocks * n
    groups = Table(title="after the change: speed / unfaded per joint group; largest one-frame step of a body joint")
    for col in ("fader", "trunk, legs, shoulders", "elbows, wrists", "largest step (rad)", "unfaded's (rad)"):
        groups.add_column(col, justify="right")
    ref_s = steps[1.0][k0:k1]
    for e in args.values:
        st = steps[e][k0:k1]
        groups.add_row(f"{e:g}", f"{st[:, rest].mean() / ref_s[:, rest].mean():.2f}",
                       f"{st[:, arms].mean() / ref_s[:, arms].mean():.2f}", f"{st.max():.2f}", f"{ref_s.max():.2f}")
    Console().print(groups)


if __name__ == "__main__":
    main()
