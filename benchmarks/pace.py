"""The dancer's pace (livedance.model.pace): the real dances' paces, how well the music predicts them, and the knob.

    .venv/bin/python benchmarks/pace.py [--data-root ../shared/data] [--weights STEM --song FILE --start S]

Prints
* per split (train / val / test), each dance's mean pace (m/s; :func:`livedance.model.pace.motion_pace` over its
  first 20 s, the eval protocol's excerpt) and style;
* a ridge regression of the slot pace code on the causal music (mean onset strength and mean band onset over the last
  5 s of audio before the slot's lag, the causal tracker's log2 tempo and confidence; z-scored on train, lambda =
  1 % of the slots): fitted on train, the correlation of the per-dance mean prediction with the real per-dance
  pace on each split, and the spread (std) of both, in m/s;
* with ``--weights`` (a generator trained with ``--pace``): the realised pace of 30 s dances generated at set
  paces of 0.25 / 0.35 / 0.5 / 0.7 m/s to ``--song`` from ``--start`` (``livedance generate --pace``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from livedance.data.dataset import load_split
from livedance.features import FeatureConfig
from livedance.model.conditioning import beat_state_before, feature_index_before, song_conditioning
from livedance.model.pace import motion_pace, pace_code, pace_m_s, slot_pace_codes

EXCERPT_S = 20.0
MUSIC_WINDOW_S = 5.0
LAG_S = 0.16


def music_summary(clip) -> np.ndarray:
    """(N, 5) float64 per slot: 1, mean onset, mean band onset (last 5 s before t - lag), log2(bpm / 120), confidence."""
    song = song_conditioning(clip.audio_path, duration_s=clip.audio_offset_s + clip.num_frames / clip.fps + 1.0)
    sl = FeatureConfig().slices
    n = clip.num_frames // 4
    t = clip.audio_offset_s + np.arange(n) * 4 / clip.fps
    last = feature_index_before(song.feature_times_s, t - LAG_S)
    f = song.features
    w = int(MUSIC_WINDOW_S * FeatureConfig().frame_rate)
    lo, hi = np.maximum(last + 1 - w, 0), last + 1

    def window_mean(x):
        c = np.concatenate([[0.0], np.cumsum(x)])
        return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)

    _, bpm, _, conf = beat_state_before(song.beats, t - LAG_S)
    lb = np.where(bpm > 0, np.log2(np.maximum(bpm, 1.0) / 120.0), 0.0)
    return np.stack([np.ones(n), window_mean(f[:, sl["onset"]].ravel()), window_mean(f[:, sl["band_onset"]].mean(1)),
                     lb, conf], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=None, help="folder holding dance-tang2018/ (default: ../shared/data)")
    ap.add_argument("--weights", type=Path, default=None, help="generator weights stem trained with --pace (the knob)")
    ap.add_argument("--song", type=Path, default=None, help="song for the knob check")
    ap.add_argument("--start", type=float, default=0.0, help="song time of the knob check's first frame, seconds")
    a = ap.parse_args()

    data = {s: load_split(s, data_root=a.data_root, progress=False) for s in ("train", "val", "test")}
    print("Dance paces, m/s (mean over the first 20 s):")
    for split, clips in data.items():
        row = [f"{c.name} ({c.style}) {motion_pace(c.positions, c.fps)[:int(EXCERPT_S * c.fps)].mean():.2f}"
               for c in clips]
        print(f"  {split}: " + ", ".join(row))

    xy = {s: [(music_summary(c), slot_pace_codes(c.positions, c.fps, 4, c.num_frames // 4)) for c in clips]
          for s, clips in data.items()}
    X = np.concatenate([x for x, _ in xy["train"]])
    y = np.concatenate([y for _, y in xy["train"]])
    mu, sd = X[:, 1:].mean(0), X[:, 1:].std(0) + 1e-9

    def z(x):
        out = x.copy()
        out[:, 1:] = (x[:, 1:] - mu) / sd
        return out

    Z = z(X)
    w = np.linalg.solve(Z.T @ Z + 0.01 * len(y) * np.eye(Z.shape[1]), Z.T @ y)
    print("\nRidge regression of the slot pace code on the causal music (fitted on train):")
    print("  split  corr(pred, real) per dance   std real / std pred, m/s")
    for split in ("train", "val", "test"):
        real = np.array([pace_m_s(yc[: int(EXCERPT_S * 25 / 4)].mean()) for _, yc in xy[split]])
        pred = np.array([pace_m_s((z(xc) @ w)[: int(EXCERPT_S * 25 / 4)].mean()) for xc, _ in xy[split]])
        print(f"  {split:5s}  {np.corrcoef(real, pred)[0, 1]:+.2f}                        {real.std():.3f} / {pred.std():.3f}")

    if a.weights is not None:
        if a.song is None:
            sys.exit("--weights needs --song (and optionally --start)")
        print(f"\nThe knob: {a.weights} dancing to {a.song} from {a.start:g} s, 30 s each")
        with tempfile.TemporaryDirectory() as tmp:
            for p in ("0.25", "0.35", "0.5", "0.7"):
                out = Path(tmp) / f"pace-{p}.npz"
                subprocess.run([sys.executable, "-m", "livedance", "generate", str(a.song), "--weights", str(a.weights),
                                "--start", str(a.start), "--duration", "30", "--pace", p, "-o", str(out)],
                               check=True, capture_output=True)
                realised = motion_pace(np.load(out)["positions"], 25.0).mean()
                print(f"  set {p} m/s (code {float(pace_code(float(p))):+.2f}) -> realised {realised:.3f} m/s")


if __name__ == "__main__":
    main()
