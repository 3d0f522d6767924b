"""Does ``--style`` / ``/livedance/style`` make the learned dancer dance that style? (livedance.engine.style_prior)

Dances each clip's music excerpt of a split (its protocol window, 20 s) once per requested style (none, then
every style of the shipped prior) and sampling seed, through the causal step path, and classifies every
dance by the nearest style centroid of the **train** split's real dances in the kinetic feature space of the
FIDk protocol (72 features, z-normalised by the train dances). The same classifier puts each real dance of
the split in its labelled style first (printed as a sanity row), so it is a fair judge of the style a dance
moves like. Prints, per requested style, the share of dances classified as each style and the mean joint
speed (SMPL-X body joints 1-21 about the pelvis, m/s).

    .venv/bin/python benchmarks/style.py                      # test split, seeds 0 1, strength 1
    .venv/bin/python benchmarks/style.py --split val --seeds 0 --strength 2
"""

from __future__ import annotations

import argparse

import numpy as np


def kinetic(positions: np.ndarray, fps: float) -> np.ndarray:
    """(72,) FIDk kinetic features of the protocol window of (T, 24, 3) metre positions at ``fps``."""
    from livedance.eval.kinetic import kinetic_features
    from livedance.eval.window import protocol_window

    return kinetic_features(protocol_window(positions, fps), fps)


def body_speed(positions: np.ndarray, fps: float) -> float:
    """Mean speed (m/s) of SMPL body joints 1-21 relative to the pelvis over (T, 24, 3) metre positions."""
    rel = positions[:, 1:22] - positions[:, :1]
    return float(np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean() * fps)


class NearestStyle:
    """Nearest-centroid style classifier over z-normalised kinetic features of labelled real dances.

    Args:
        features: (N, 72) float kinetic features. styles: N style names.
    """

    def __init__(self, features: np.ndarray, styles: list[str]):
        self.mu, self.sd = features.mean(0), features.std(0) + 1e-8
        z = (features - self.mu) / self.sd
        self.names = sorted(set(styles))
        self.centroids = np.stack([z[[s == n for s in styles]].mean(0) for n in self.names])

    def __call__(self, feature: np.ndarray) -> str:
        """The style whose centroid is nearest to a (72,) feature vector."""
        z = (feature - self.mu) / self.sd
        return self.names[int(np.argmin(np.linalg.norm(self.centroids - z, axis=-1)))]


def main() -> None:
    """Dance every clip in every style and print the table."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from livedance.data.dataset import load_split
    from livedance.engine import load_generator
    from livedance.engine.offline import generate_song, motion_positions
    from livedance.model.train_generator import clip_style

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="test", help="Split whose songs are danced (default test).")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="Sampling seeds (default 0 1).")
    ap.add_argument("--strength", type=float, default=1.0, help="Style strength lambda (default 1).")
    ap.add_argument("--weights", default=None, help="Generator weights stem (default: the shipped ones).")
    ap.add_argument("--prior", default=None, help="Style prior stem (default: the shipped livedance/weights/style_prior).")
    args = ap.parse_args()

    train = load_split("train", None, progress=False)
    clf = NearestStyle(np.stack([kinetic(c.positions, c.fps) for c in train]), [clip_style(c.name) for c in train])
    clips = load_split(args.split, None, progress=False)
    gen = load_generator(args.weights, seed=args.seeds[0], style_prior=args.prior)
    requests = [None, *gen.styles]
    got: dict = {r: [] for r in requests}
    speed: dict = {r: [] for r in requests}
    with Progress(transient=True) as bar:
        task = bar.add_task("dancing", total=len(requests) * len(clips) * len(args.seeds))
        for r in requests:
            gen.set_style(r, args.strength)
            for c in clips:
                for s in args.seeds:
                    m = generate_song(gen, c.audio_path, float(c.audio_offset_s), c.num_frames / c.fps, s)
                    pos = motion_positions(m, gen.rep.rest_offsets)
                    got[r].append(clf(kinetic(pos, m.fps)))
                    speed[r].append(body_speed(pos, m.fps))
                    bar.advance(task)

    con = Console()
    t = Table(title=f"learned dancer by requested style: {args.split} split, {len(clips)} clips x seeds "
                    f"{' '.join(map(str, args.seeds))}, strength {args.strength:g}; share classified as (nearest "
                    "train-style centroid, kinetic features)")
    t.add_column("requested")
    for n in clf.names:
        t.add_column(n, justify="right")
    t.add_column("hit", justify="right")
    t.add_column("speed m/s", justify="right")
    real = [clf(kinetic(c.positions, c.fps)) for c in clips]
    t.add_row("real dances (labelled)", *[f"{np.mean([g == n for g in real]):.2f}" for n in clf.names],
              f"{np.mean([g == clip_style(c.name) for g, c in zip(real, clips)]):.2f}",
              f"{np.mean([body_speed(c.positions, c.fps) for c in clips]):.3f}")
    for r in requests:
        hit = "" if r is None else f"{np.mean([g == r for g in got[r]]):.2f}"
        t.add_row(str(r or "none (the model's own)"), *[f"{np.mean([g == n for g in got[r]]):.2f}" for n in clf.names],
                  hit, f"{np.mean(speed[r]):.3f}")
    con.print(t)
    labels = [clip_style(c.name) for c in clips for _ in args.seeds]
    con.print(f"without a style, dances classified as their clip's labelled style: "
              f"{np.mean([g == lab for g, lab in zip(got[None], labels)]):.2f}", highlight=False)


if __name__ == "__main__":
    main()
