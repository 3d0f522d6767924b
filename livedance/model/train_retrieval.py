"""``livedance train retrieval``: train the music-dance retrieval model on the Tang train split.

Windows of W frames (default 4 s at 25 fps) every ``hop`` frames of every train dance, each paired with the music
features at the same song times (:mod:`livedance.model.retrieval`). The generic :class:`~livedance.model.trainer.
Trainer` runs the loop (progress bar, seeds, resumable safetensors checkpoints, DDP under ``torchrun``); the loss is
the symmetric InfoNCE of :meth:`MusicDanceRetrieval.forward`. At the end the weights are written to
``<out>/retrieval.{safetensors,json}`` with the val split's retrieval figures (:mod:`livedance.eval.alignment`), and
with ``ship`` also to ``livedance/weights/retrieval.*`` and the model card's "Retrieval model" section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from livedance.errors import ConfigError
from livedance.model.retrieval import MusicDanceRetrieval, PairedClip, RetrievalConfig, paired_clip

__all__ = ["RetrievalRunConfig", "PairedClip", "paired_clip", "RetrievalWindows", "run_training"]


@dataclass
class RetrievalRunConfig:
    """Settings of ``livedance train retrieval``.

    Attributes:
        steps, minutes, seed, batch_size, lr: optimisation (:class:`~livedance.model.trainer.TrainConfig`).
        hop: frames between the starts of two training windows (5 = 0.2 s).
        out: run folder; resume: continue from ``<out>/checkpoint``.
        ship: also write ``livedance/weights/retrieval.*`` and the model card section.
        data_root: folder holding ``dance-tang2018/``. progress: progress bars.
        model: the :class:`RetrievalConfig`.
    """

    steps: int = 600
    minutes: float | None = None
    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    hop: int = 5
    out: Path = Path("runs/retrieval")
    resume: bool = False
    ship: bool = False
    data_root: Path | None = None
    progress: bool = True
    model: RetrievalConfig | None = None


class RetrievalWindows(torch.utils.data.Dataset):
    """Every window of ``window`` frames, ``hop`` frames apart, of a list of :class:`PairedClip`.

    Items: ``{"motion": (W, motion_dim) float32, "music": (W, music_dim) float32, "clip": int64 index of the dance's
    song}`` (:attr:`PairedClip.song_key`; the loss never uses windows of one song as each other's negatives).

    Raises:
        ConfigError: ``hop`` < 1, or no dance as long as one window.
    """

    def __init__(self, clips: Sequence[PairedClip], window: int, hop: int) -> None:
        if hop < 1:
            raise ConfigError(f"retrieval window hop must be >= 1 frame, got {hop}")
        self.clips, self.window = list(clips), int(window)
        songs: dict[str, int] = {}
        self.song = [songs.setdefault(c.song_key, len(songs)) for c in self.clips]
        self.index = [(k, s) for k, c in enumerate(self.clips) for s in range(0, len(c.motion) - self.window + 1, hop)]
        if not self.index:
            raise ConfigError(f"no dance is at least {window} frames long: nothing to train the retrieval model on")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k, s = self.index[i]
        c = self.clips[k]
        return {"motion": torch.from_numpy(c.motion[s:s + self.window]),
                "music": torch.from_numpy(c.music[s:s + self.window]), "clip": torch.tensor(self.song[k])}


def _pairs(clips: Sequence[Any], fps: float, progress: bool, what: str) -> list[PairedClip]:
    from rich.progress import track

    items = list(clips)
    it = track(items, description=f"music features ({what})", transient=True) if progress else items
    return [paired_clip(c.name, c.positions, fps, c.audio_path, c.audio_offset_s) for c in it]


def run_training(cfg: RetrievalRunConfig) -> dict[str, Any]:
    """Train the retrieval model and write ``<out>/retrieval.{safetensors,json}`` (and ship it with ``cfg.ship``).

    Returns:
        dict with ``steps``, ``elapsed_s``, ``stopped_by``, ``final`` (last logged loss and accuracy), ``val``
        (:func:`livedance.eval.alignment.retrieval_figures` of the val split's real dances, own and wrong song),
        ``paths``.
    Raises:
        DataError: missing data. ConfigError: bad settings or a foreign checkpoint.
    """
    from livedance.data.dataset import data_description, load_split
    from livedance.eval.alignment import wrong_song_figures
    from livedance.model.checkpoint import WEIGHTS_DIR, write_card_section
    from livedance.model.trainer import TrainConfig, Trainer, command_line, init_distributed, seed_everything

    mcfg = cfg.model or RetrievalConfig()
    dist = init_distributed()
    show = cfg.progress and dist.is_main
    from livedance.model.trainer import prepare_run_dir

    prepare_run_dir(cfg.out, cfg.resume)  # a bad --out or --resume fails before the data is read
    train = _pairs(load_split("train", data_root=cfg.data_root, progress=show, fps=mcfg.fps), mcfg.fps, show, "train")
    ds = RetrievalWindows(train, mcfg.window, cfg.hop)
    seed_everything(cfg.seed)
    model = MusicDanceRetrieval(mcfg)
    model.set_stats(np.concatenate([c.motion for c in train]), np.concatenate([c.music for c in train]))
    tcfg = TrainConfig(steps=cfg.steps, minutes=cfg.minutes, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.05,
                       warmup_steps=min(50, max(cfg.steps // 10, 1)), seed=cfg.seed, progress=show, log_every=10,
                       ckpt_every=200, ckpt_every_minutes=2.0)
    run_config = {"retrieval": mcfg.to_dict(), "hop": cfg.hop, "train_clips": [c.name for c in train]}

    def loss_fn(m, b):
        out = m(b["motion"], b["music"], b["clip"])
        return out["loss"], {"acc": out["acc"]}

    res = Trainer(model, ds, loss_fn, tcfg, cfg.out, resume=cfg.resume, run_config=run_config, dist=dist).fit()
    model.cpu()  # the Trainer may have moved it to a GPU; wrong_song_figures feeds it CPU tensors
    result: dict[str, Any] = {"steps": res.step, "elapsed_s": res.elapsed_s, "stopped_by": res.stopped_by,
                              "final": res.history[-1] if res.history else None}
    if not dist.is_main:
        return result
    model.eval()
    val = _pairs(load_split("val", data_root=cfg.data_root, progress=show, fps=mcfg.fps), mcfg.fps, show, "val")
    result["val"] = wrong_song_figures(model, val)
    command = command_line("livedance train retrieval")
    extra = {"training": {"command": command, "steps": res.step, "elapsed_s": round(res.elapsed_s, 1),
                          "stopped_by": res.stopped_by, "train_windows": len(ds), "train_clips": len(train),
                          "world_size": dist.world_size, "final": result["final"]},
             "val": result["val"], "data": f"{data_description(cfg.data_root)}, train split"}
    result["paths"] = [str(p) for p in model.save(Path(cfg.out) / "retrieval", extra)]
    if cfg.ship:
        result["shipped"] = [str(p) for p in model.save(WEIGHTS_DIR / "retrieval", extra)]
        write_card_section(WEIGHTS_DIR / "MODEL_CARD.md", "Retrieval model", _card(model, extra))
    (Path(cfg.out) / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def _card(model: MusicDanceRetrieval, extra: dict[str, Any]) -> str:
    c, t, v = model.config, extra["training"], extra["val"]
    n = sum(p.numel() for p in model.parameters())
    return "\n".join([
        "SoulNet-style contrastive music-dance retrieval model (`livedance.model.retrieval`), the alignment metric of",
        "`livedance eval` (columns MM-Dist and R@1; docs/eval.md).",
        "",
        f"- Data: {extra['data']}; {t['train_clips']} dances, {t['train_windows']} windows of {c.window} frames "
        f"({c.window / c.fps:g} s at {c.fps:g} fps).",
        f"- Inputs: joint velocities in the heading frame and pelvis height above the local floor ({c.motion_dim}; "
        f"motion features version {c.motion_features}); rhythm features and beat state ({c.music_dim}). An ensemble of {c.members} encoder pairs, each embedding {c.embed_dim} numbers "
        f"({c.members * c.embed_dim} in all); {n:,} parameters.",
        f"- Training: `{t['command']}`; {t['steps']} steps in {t['elapsed_s']:.0f} s (stopped by {t['stopped_by']}).",
        f"- Val split, real dances (first 20 s, 1 s hop, pools of 32, negatives drawn with seed 0): own song R@1 {v['own']['R@1']:.3f}, "
        f"MM-Dist {v['own']['MM-Dist']:.3f}; the next clip's song R@1 {v['wrong']['R@1']:.3f}, MM-Dist {v['wrong']['MM-Dist']:.3f} "
        "(chance R@1 = 1/32 = 0.031).",
        "- Format: safetensors + JSON config; never pickle.",
    ])
