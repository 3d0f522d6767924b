"""Training and evaluation of the motion tokenizer on the Tang 2018 splits.

* :class:`WindowDataset`: fixed-length windows (``window`` frames, hop ``hop``) of normalised
  per-clip features (heading-invariant by construction, so no heading augmentation is needed).
* :func:`tokenizer_loss`: ``L1(x_hat, x) + vel_weight * L1(diff x_hat, diff x) + commitment`` on normalised
  features (T2M-GPT's reconstruction + velocity loss; the codebooks themselves learn by EMA).
* :func:`reconstruction_mpjpe`: encode + decode whole clips and compare FK joint positions (each clip's
  own skeleton): MPJPE in millimetres of root-relative positions (global orientation errors included)
  per part, plus the root trajectory error over 4 s windows.
* :func:`run_training`: ``livedance train tokenizer`` (data, representation statistics, :class:`Trainer`,
  export of ``tokenizer.safetensors`` / ``tokenizer.json``, optional shipping into ``livedance/weights``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livedance.errors import ConfigError, DataError
from livedance.model.representation import (
    LOWER_JOINTS,
    UPPER_JOINTS,
    Representation,
    RepresentationConfig,
    raw_features,
)
from livedance.model.tokenizer import Tokenizer, TokenizerConfig

__all__ = [
    "WindowDataset",
    "tokenizer_loss",
    "reconstruction_mpjpe",
    "TokenizerRunConfig",
    "run_training",
    "clip_raw_features",
]

#: Joints scored per part (the pelvis is the reference of root-relative positions, so it is left out).
MPJPE_JOINTS: dict[str, tuple[int, ...]] = {
    "lower": tuple(j for j in LOWER_JOINTS if j != 0),
    "upper": UPPER_JOINTS,
    "all": tuple(range(1, 22)),
}


def clip_raw_features(clips: Sequence[Any], config: RepresentationConfig | None = None) -> list[np.ndarray]:
    """Raw (un-normalised) features of each clip: list of (T_i, D) float32."""
    return [raw_features(c.local_rotmats, c.root_translation, c.rest_offsets, getattr(c, "positions", None), config)
            for c in clips]


class WindowDataset(torch.utils.data.Dataset):
    """Windows of normalised features for tokenizer training.

    Args:
        raw: list of (T_i, D) float32 raw features (:func:`clip_raw_features`).
        representation: supplies the normalisation.
        window: frames per window.
        hop: frames between window starts.
    Items: (window, D) float32 tensors.

    Raises:
        DataError: when no clip is at least ``window`` frames long.
    """

    def __init__(self, raw: Sequence[np.ndarray], representation: Representation, window: int = 64, hop: int = 8):
        self.data = [torch.from_numpy(representation.normalize(np.asarray(r, dtype=np.float32))) for r in raw]
        self.window = int(window)
        self.index = [(i, s) for i, r in enumerate(self.data) for s in range(0, r.shape[0] - self.window + 1, hop)]
        if not self.index:
            raise DataError(f"tokenizer training: no clip is at least {window} frames long")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> torch.Tensor:
        i, s = self.index[k]
        return self.data[i][s:s + self.window]


def tokenizer_loss(model: torch.nn.Module, x: torch.Tensor, vel_weight: float = 0.5,
                   rep: Representation | None = None, pos_weight: float = 0.0, root_weight: float = 0.0,
                   acc_weight: float = 0.0, pos_acc_weight: float = 0.0, kin_weight: float = 0.0):
    """Training loss of a :class:`Tokenizer` (or its DDP wrapper) on a batch x (B, T, D) normalised.

    ``L1(x_hat, x) + vel_weight * L1(diff x_hat, diff x) + pos_weight * L1(P(x_hat), P(x))
    + root_weight * L1(x_hat[root], x[root]) + acc_weight * L1(diff2 x_hat, diff2 x)
    + pos_acc_weight * L1(diff2 P(x_hat), diff2 P(x)) + kin_weight * L1(K(P(x_hat)), K(P(x))) + commitment``
    with ``K(P)`` (B, J) the RMS joint speed of each window (metres per frame: the square root of the mean
    over frames of |diff P|^2, the kinetic energy per unit mass that the FIDk kinetic features average), and ``P`` =
    :meth:`Representation.pose_positions` (pelvis-relative FK positions in metres with the canonical
    skeleton), ``root`` the heading velocity, ground velocity and height channels
    (:attr:`Representation.root_channels`) and ``diff2`` the second difference over frames (Bailando's
    acceleration term, Siyao et al. 2022, Eq. 2; metres per frame^2 for positions); the position terms need
    ``rep``.

    Returns:
        ``(loss, {"recon": ..., "vel": ..., "commit": ..., "pos": ..., "root": ..., "acc": ..., "pos_acc": ...})``,
        scalars (each term only when its weight is > 0).
    """
    out = model(x)
    y = out["recon"]
    rec = F.l1_loss(y, x)
    vel = F.l1_loss(y[:, 1:] - y[:, :-1], x[:, 1:] - x[:, :-1])
    loss = rec + vel_weight * vel + out["commit"]
    metrics = {"recon": rec.detach(), "vel": vel.detach(), "commit": out["commit"].detach()}
    py = px = None
    if (pos_weight > 0 or pos_acc_weight > 0 or kin_weight > 0) and rep is not None:
        py, px = rep.pose_positions(y), rep.pose_positions(x)
    if pos_weight > 0 and py is not None:
        pos = F.l1_loss(py, px)
        loss = loss + pos_weight * pos
        metrics["pos"] = pos.detach()
    if root_weight > 0 and rep is not None:
        ch = rep.root_channels
        idx = [ch["heading_velocity"], ch["velocity_xz"].start, ch["velocity_xz"].start + 1, ch["height"]]
        root = F.l1_loss(y[..., idx], x[..., idx])
        loss = loss + root_weight * root
        metrics["root"] = root.detach()
    if acc_weight > 0:
        acc = F.l1_loss(_diff2(y), _diff2(x))
        loss = loss + acc_weight * acc
        metrics["acc"] = acc.detach()
    if pos_acc_weight > 0 and py is not None:
        pos_acc = F.l1_loss(_diff2(py), _diff2(px))
        loss = loss + pos_acc_weight * pos_acc
        metrics["pos_acc"] = pos_acc.detach()
    if kin_weight > 0 and py is not None:
        kin = F.l1_loss(_rms_speed(py), _rms_speed(px))
        loss = loss + kin_weight * kin
        metrics["kin"] = kin.detach()
    return loss, metrics


def _rms_speed(p: torch.Tensor) -> torch.Tensor:
    """(B, T, J, 3) positions -> (B, J) RMS speed over the window, metres per frame."""
    v = p[:, 1:] - p[:, :-1]
    return (v.pow(2).sum(-1).mean(1) + 1e-12).sqrt()


def _diff2(y: torch.Tensor) -> torch.Tensor:
    """Second difference over dim 1 (frames): (B, T, ...) -> (B, T - 2, ...)."""
    return y[:, 2:] - 2.0 * y[:, 1:-1] + y[:, :-2]


@torch.no_grad()
def reconstruction_mpjpe(tokenizer: Tokenizer, rep: Representation, clips: Sequence[Any], root_window: int = 100) -> dict[str, float]:
    """Reconstruction error of whole clips through the tokenizer (encode -> codes -> decode).

    Args:
        tokenizer: in eval mode (anything with ``encode(x) -> codes`` and ``decode(codes) -> x``).
        rep: the representation the tokenizer was trained with.
        clips: MotionClips (``local_rotmats``, ``root_translation``, ``rest_offsets``, ``positions``).
        root_window: frames over which the decoded heading and root velocities are integrated from the
            true start (100 frames = 4 s at 25 fps) for the root error.
    Returns:
        ``{"lower", "upper", "all"}``: MPJPE in mm of pelvis-relative FK joint positions in the dancer's
        heading frame (pose error including the pelvis tilt; the integrated heading is scored by
        ``root``), frame-weighted mean over clips; ``"root"``: mean root position error in mm after
        integrating the decoded heading and velocity over ``root_window`` frames (plus height error);
        ``"frames"``.
    """
    tokenizer.eval()
    ch = rep.root_channels
    sums = {k: 0.0 for k in (*MPJPE_JOINTS, "root")}
    n = 0
    for c in clips:
        x = torch.from_numpy(rep.encode(c))[None]
        y = tokenizer.decode(tokenizer.encode(x))[0, : x.shape[1]]
        xr, yr = rep.denormalize(x[0]), rep.denormalize(y)
        off = np.asarray(c.rest_offsets, np.float32)
        T = xr.shape[0]
        pos = [rep.pose_positions(r, normalized=False, rest_offsets=off) for r in (xr, yr)]
        err = (pos[0] - pos[1]).norm(dim=-1)  # (T, 22)
        for k, js in MPJPE_JOINTS.items():
            sums[k] += float(err[:, list(js)].mean(dim=1).sum())
        for s in range(0, T, root_window):
            tr_w = []
            for r in (xr, yr):
                w = r[s:s + root_window].clone()
                w[0, ch["heading_velocity"]] = 0.0  # start both at the same heading and position
                w[0, ch["velocity_xz"]] = 0.0
                tr_w.append(rep.decode(w, normalized=False, rest_offsets=off)[1])
            sums["root"] += float((tr_w[0] - tr_w[1]).norm(dim=-1).sum())
        n += T
    if n == 0:
        raise DataError("reconstruction_mpjpe: no frames in the given clips")
    out = {k: 1000.0 * v / n for k, v in sums.items()}
    out["frames"] = n
    return out


@dataclass
class TokenizerRunConfig:
    """Settings of one ``livedance train tokenizer`` run (see the CLI's help for each field)."""

    variant: str = "hrvq"
    steps: int = 3000
    minutes: float | None = None
    seed: int = 0
    out: Path = Path("runs/tokenizer-hrvq")
    resume: bool = False
    batch_size: int = 32
    window: int = 64
    hop: int = 8
    lr: float = 1e-3
    warmup_steps: int = 100
    vel_weight: float = 0.5
    pos_weight: float = 5.0
    root_weight: float = 0.5
    data_root: Path | None = None
    ship: bool = False
    progress: bool = True
    codebook_size: int = 512
    levels: int = 4
    width: int = 64
    latent_dim: int = 64
    eval_split: str = "test"
    legacy_dropout: bool = False  # TokenizerConfig.dropout_masks_ema = False: how the shipped tokenizers were trained


def build_tokenizer(cfg: TokenizerRunConfig, rep: Representation) -> Tokenizer:
    """The :class:`Tokenizer` a run config asks for, sized for ``rep``'s parts."""
    parts = tuple((n, d) for n, d in rep.config.part_dims.items() if d > 0)
    return Tokenizer(TokenizerConfig(part_dims=parts, variant=cfg.variant, levels=cfg.levels,
                                     codebook_size=cfg.codebook_size, width=cfg.width, latent_dim=cfg.latent_dim,
                                     dropout_masks_ema=not cfg.legacy_dropout))


def upgrade_run_config(saved: dict) -> dict:
    """A checkpoint's saved run config as this version writes it: its ``tokenizer`` entry goes through
    :meth:`TokenizerConfig.from_dict`, so a run begun before ``dropout_masks_ema`` existed reads as the legacy
    behaviour it was trained with (resume it with ``--legacy-dropout``).

    Raises:
        ConfigError: the saved tokenizer config cannot be read (unknown fields, bad values).
    """
    if not isinstance(saved.get("tokenizer"), dict):
        return saved
    try:
        tok = TokenizerConfig.from_dict(saved["tokenizer"]).to_dict()
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"tokenizer config {saved['tokenizer']}: {type(e).__name__}: {e}") from None
    return {**saved, "tokenizer": tok}


def _train_command(cfg: TokenizerRunConfig) -> str:
    from livedance.data.dataset import data_root_option

    mins = f" --minutes {cfg.minutes:g}" if cfg.minutes else ""
    return (f"livedance train tokenizer --variant {cfg.variant} --steps {cfg.steps}{mins} --seed {cfg.seed} "
            f"--batch-size {cfg.batch_size} --window {cfg.window} --lr {cfg.lr:g} --width {cfg.width} "
            f"--codebook-size {cfg.codebook_size} --threads {torch.get_num_threads()}"
            f"{' --legacy-dropout' if cfg.legacy_dropout else ''}"
            + data_root_option(cfg.data_root))


def run_training(cfg: TokenizerRunConfig) -> dict:
    """Train a tokenizer on the train split, export it, score it on ``eval_split``.

    Writes ``<out>/checkpoint/`` (resumable), ``<out>/log.jsonl``, ``<out>/tokenizer.{safetensors,json}``
    and ``<out>/metrics.json``; with ``ship``, also ``livedance/weights/tokenizer.*`` and the tokenizer
    section of ``livedance/weights/MODEL_CARD.md``.

    Returns:
        dict with ``metrics`` (MPJPE mm per part on ``eval_split``), ``steps``, ``elapsed_s``, ``paths``.
    Raises:
        DataError: the data is missing; ConfigError: bad settings or a checkpoint of another run.
    """
    from livedance.data.dataset import data_description, load_split
    from livedance.model.trainer import TrainConfig, Trainer, init_distributed, seed_everything

    from livedance.model.tokenizer import VARIANTS

    if cfg.variant not in VARIANTS:
        raise ConfigError(f"--variant {cfg.variant!r}: expected one of {', '.join(VARIANTS)}")
    if cfg.window % 4:
        raise ConfigError(f"--window {cfg.window}: must be a multiple of 4 (the tokenizer's frames per token)")
    dist = init_distributed()
    show = cfg.progress and dist.is_main
    from livedance.model.trainer import prepare_run_dir

    prepare_run_dir(cfg.out, cfg.resume)  # a bad --out or --resume fails before the data is read
    train = load_split("train", data_root=cfg.data_root, progress=show)
    rep = Representation.fit(train)
    raw = clip_raw_features(train, rep.config)
    ds = WindowDataset(raw, rep, window=cfg.window, hop=cfg.hop)
    seed_everything(cfg.seed)
    model = build_tokenizer(cfg, rep)
    tcfg = TrainConfig(steps=cfg.steps, minutes=cfg.minutes, batch_size=cfg.batch_size, lr=cfg.lr,
                       warmup_steps=cfg.warmup_steps, seed=cfg.seed, progress=show)
    run_config = {"tokenizer": model.config.to_dict(), "window": cfg.window, "hop": cfg.hop,
                  "vel_weight": cfg.vel_weight, "pos_weight": cfg.pos_weight, "root_weight": cfg.root_weight, "train_clips": [getattr(c, "name", str(i)) for i, c in enumerate(train)]}
    trainer = Trainer(model, ds, lambda m, b: tokenizer_loss(m, b, cfg.vel_weight, rep, cfg.pos_weight, cfg.root_weight), tcfg, cfg.out,
                      resume=cfg.resume, run_config=run_config, dist=dist, upgrade_run_config=upgrade_run_config)
    res = trainer.fit()
    model.cpu()  # the Trainer may have moved it to a GPU; the metrics below feed it CPU tensors
    result: dict[str, Any] = {"steps": res.step, "elapsed_s": res.elapsed_s, "stopped_by": res.stopped_by}
    if not dist.is_main:
        return result
    model.eval()
    test = load_split(cfg.eval_split, data_root=cfg.data_root, progress=show)
    metrics = reconstruction_mpjpe(model, rep, test)
    train_info = {
        "command": _train_command(cfg), "steps": res.step, "elapsed_s": round(res.elapsed_s, 1),
        "world_size": dist.world_size, "stopped_by": res.stopped_by, "train_windows": len(ds),
        "train_clips": len(train), "final_loss": res.history[-1] if res.history else None,
    }
    extra = {"training": train_info, "metrics": {cfg.eval_split: metrics}, "data": data_description(cfg.data_root)}
    paths = model.save(Path(cfg.out) / "tokenizer", rep, extra)
    (Path(cfg.out) / "metrics.json").write_text(json.dumps({"metrics": metrics, "training": train_info}, indent=1))
    result.update(metrics=metrics, paths=[str(p) for p in paths])
    if cfg.ship:
        from livedance.model.checkpoint import WEIGHTS_DIR

        paths = model.save(WEIGHTS_DIR / "tokenizer", rep, extra)
        write_model_card(model, rep, metrics, train_info, cfg)
        result["shipped"] = [str(p) for p in paths]
    from rich.console import Console
    from rich.table import Table

    tab = Table(title=f"tokenizer {cfg.variant}: reconstruction on the {cfg.eval_split} split ({metrics['frames']} frames)")
    for k in ("lower", "upper", "all", "root"):
        tab.add_column(f"{k} (mm)", justify="right")
    tab.add_row(*(f"{metrics[k]:.1f}" for k in ("lower", "upper", "all", "root")))
    Console().print(tab)
    return result


def write_model_card(model: Tokenizer, rep: Representation, metrics: dict, train_info: dict, cfg: TokenizerRunConfig) -> None:
    """Write the ``Tokenizer`` section of ``livedance/weights/MODEL_CARD.md``."""
    from livedance.data.dataset import AISTPP_DATA, TANG_DATA, data_description
    from livedance.model.checkpoint import WEIGHTS_DIR, write_card_section

    c = model.config
    dropout = f"{c.quantizer_dropout:g}" + ("" if c.dropout_masks_ema else " (`--legacy-dropout`: dropped levels still update their codebooks)")
    windows = f"{train_info['train_windows']} windows of {cfg.window} frames, hop {cfg.hop}"
    if data_description(cfg.data_root) == TANG_DATA:
        data = f"""- Data: Tang et al. 2018 DANCE (mhy12345/Music-to-Dance-Motion-Synthesis), markers solved to SMPL-X body
  rotations (livedance.data.tang_ik), split by `livedance.data.dataset.load_split` (train: {train_info['train_clips']} clips,
  {windows}).
  **Research use only**: the data carries no license."""
    else:
        data = f"- Data: {AISTPP_DATA}, SMPL fits as SMPL-X body rotations (livedance.data.aistpp_clips); train: " \
               f"{train_info['train_clips']} clips, {windows}."
    body = f"""Files: `tokenizer.safetensors` (state dict) + `tokenizer.json` (config, normalisation statistics,
canonical skeleton, training record, metrics). Load with `Tokenizer.load()` (livedance.model.tokenizer).

- Model: causal temporal-conv VQ-VAE, variant `{c.variant}` (part-chained residual VQ, SoulNet-style HRVQ),
  parts {', '.join(f'{p} ({d})' for p, d in c.part_dims)}, {c.levels} levels x {c.codebook_size} codes x {c.latent_dim}-d per part,
  4x downsampling (25 fps -> 6.25 tokens/s), width {c.width}; {model.num_parameters():,} trainable parameters.
  The decoder needs {model.decoder_context_tokens} past tokens of context for exact streaming decode.
{data}
- Training: `{train_info['command']}` on the CPU ({train_info['world_size']} process(es)); {train_info['steps']} steps in
  {train_info['elapsed_s'] / 60:.1f} min (stopped by {train_info['stopped_by']}), AdamW, warmup + cosine LR; loss = feature L1
  + {cfg.vel_weight:g} x velocity L1 + {cfg.pos_weight:g} x FK joint position L1 (m) + {cfg.root_weight:g} x root-channel L1
  + commitment; EMA codebooks with k-means init and dead-code replacement, quantizer dropout {dropout}.
- Metrics ({cfg.eval_split} split, {metrics['frames']} frames, whole clips encoded and decoded, FK with each clip's
  skeleton): MPJPE of pelvis-relative joints lower {metrics['lower']:.1f} mm, upper {metrics['upper']:.1f} mm,
  all {metrics['all']:.1f} mm; root position error (velocity integrated over 4 s windows, plus height)
  {metrics['root']:.1f} mm.
- Limits: body only (22 SMPL-X joints; hands and face stay at rest), 38 ballroom / Latin takes (waltz
  dominates), so other dance styles reconstruct worse.
"""
    write_card_section(WEIGHTS_DIR / "MODEL_CARD.md", "Tokenizer", body)
