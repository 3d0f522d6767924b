"""Decoder fine-tuning of a trained tokenizer: smooth token boundaries, the same codes.

Why: the tokenizer's decoder is causal, so frame 4n + 4 is the first frame that sees token n + 1. The
quantisation error changes from one token to the next, and the decoded motion steps there, every 4 frames
(6.25 Hz at 25 fps). Measured on the test split (whole clips encoded and decoded with the first shipped
tokenizer): the mean joint acceleration is 5.6 m/s^2 at the two frames that straddle each token boundary
against 4.0 m/s^2 inside tokens, while the real dances are flat at 3.3 m/s^2. The generated dances show the
same step about twice as large (docs/model.md, "Token-boundary jitter"), and the kinetic features count it
as extra acceleration.

What: Bailando trains its VQ-VAE with velocity *and acceleration* reconstruction terms (Siyao et al. 2022,
Sec. 3.1, Eq. 2). Here only the decoders are fine-tuned with them added
(:func:`~livedance.model.train_tokenizer.tokenizer_loss` with ``acc_weight`` and ``pos_acc_weight``).
The encoders, codebooks and HRVQ hint maps are frozen, and they are checked bit for bit before saving.
So every code means what it meant, and a generator trained on the source tokenizer's codes stays valid.
The saved tokenizer lists the source's sha256 under ``same_codes_as``, which the weight loaders accept
(:func:`livedance.model.tokenizer.same_codes`).

* :class:`DecoderOnly`: the training wrapper (encode without gradients, decode with them).
* :func:`token_boundary_acceleration`: the jitter figure, boundary against other frames.
* :func:`run_decoder_tune`: ``livedance train tokenizer-decoder``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from livedance.errors import ConfigError, DataError, WeightsError
from livedance.model.representation import Representation
from livedance.model.tokenizer import Tokenizer, code_lineage
from livedance.model.train_tokenizer import TokenizerRunConfig

__all__ = ["DecoderTuneConfig", "DecoderOnly", "acceleration_by_token_position", "boundary_and_inside",
           "token_boundary_acceleration", "run_decoder_tune"]

#: Which shipped tokenizer each ``--model`` tunes, and where ``--ship`` writes it (in ``livedance/weights``).
SHIPPED_STEMS = {"livedance": "tokenizer", "baseline": "baseline_tokenizer"}


class DecoderOnly(nn.Module):
    """A tokenizer whose decoders alone learn.

    ``forward(x)`` encodes x (B, T, D) normalised features to codes with gradients off and the quantisers in
    eval mode (no codebook EMA updates, :meth:`Tokenizer.encode`). It de-quantises them with all levels and
    decodes with gradients on. It returns ``{"recon": (B, T, D), "commit": 0}``, the dict that
    :func:`~livedance.model.train_tokenizer.tokenizer_loss` reads. Every parameter outside ``decoders`` has
    ``requires_grad = False``, so the optimiser leaves it alone.

    Args:
        tokenizer: the trained :class:`Tokenizer` (modified in place: its decoders train).
    """

    def __init__(self, tokenizer: Tokenizer):
        super().__init__()
        self.tok = tokenizer
        for name, p in self.tok.named_parameters():
            p.requires_grad_(name.startswith("decoders."))

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # noqa: D102
        with torch.no_grad():
            zq = self.tok.dequantize(self.tok.encode(x))
        return {"recon": self.tok.decode_latents(zq)[:, : x.shape[1]], "commit": x.new_zeros(())}


def acceleration_by_token_position(positions: Sequence[np.ndarray], fps: float, stride: int = 4
                                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mean joint acceleration at each frame position within a token, over clips.

    Args:
        positions: per clip (T, J, 3) joint positions in metres at ``fps``, frame 0 the first frame of a
            token; clips shorter than 3 frames add nothing.
        fps: frames per second. stride: frames per token (the tokenizers': 4).
    Returns:
        ``(mean (stride,) float64 m/s^2, count (stride,) int64)``: the central second difference's joint
        mean magnitude at frames f = 1 .. T-2, grouped by f mod stride.
    """
    sums, counts = np.zeros(stride), np.zeros(stride, np.int64)
    for p in positions:
        p = np.asarray(p, np.float64)
        if len(p) < 3:
            continue
        a = np.linalg.norm(p[2:] - 2.0 * p[1:-1] + p[:-2], axis=-1).mean(-1) * fps * fps
        k = np.arange(1, len(a) + 1) % stride
        np.add.at(sums, k, a)
        np.add.at(counts, k, 1)
    return sums / np.maximum(counts, 1), counts


def boundary_and_inside(mean: np.ndarray, count: np.ndarray) -> tuple[float, float]:
    """Frame-weighted mean acceleration around token boundaries and inside tokens.

    A step between token n (frames 4n .. 4n + 3) and token n + 1 shows in the two central second
    differences that straddle it, at positions stride - 1 and 0; the other positions see only the inside
    of a token.

    Args:
        mean, count: :func:`acceleration_by_token_position`'s outputs.
    Returns:
        ``(boundary, inside)`` m/s^2 (NaN where no frame counts).
    """
    edge = np.zeros(len(mean), bool)
    edge[[0, -1]] = True

    def avg(m: np.ndarray) -> float:
        n = count[m].sum()
        return float((mean[m] * count[m]).sum() / n) if n else float("nan")

    return avg(edge), avg(~edge)


def token_boundary_acceleration(tokenizer: Tokenizer | None, rep: Representation, clips: Sequence[Any],
                                fps: float = 25.0) -> dict[str, float]:
    """Mean joint acceleration at the frames around token boundaries against the frames inside tokens
    (:func:`boundary_and_inside`), for whole clips encoded and decoded.

    Positions are :meth:`Representation.pose_positions` (pelvis-relative FK joints in the heading frame,
    each clip's skeleton), so the root's path is left out.

    Args:
        tokenizer: in eval mode; whole clips are encoded and decoded. None scores the clips themselves
            (the real dances' level, with a ratio of about 1).
        rep: the tokenizer's representation.
        clips: MotionClips (``local_rotmats``, ``root_translation``, ``rest_offsets``).
        fps: the clips' frame rate (the Tang data: 25).
    Returns:
        ``{"boundary", "other"}`` in m/s^2 (positions 3 and 0; positions 1 and 2) and ``"ratio"`` =
        boundary / other.
    Raises:
        DataError: no clip is at least two tokens long.
    """
    stride = tokenizer.stride if tokenizer is not None else 4
    positions = []
    for c in clips:
        x = torch.from_numpy(rep.encode(c))[None]
        if x.shape[1] < 2 * stride:
            continue
        if tokenizer is not None:
            with torch.no_grad():
                x = tokenizer.decode(tokenizer.encode(x))[:, : x.shape[1]]
        off = np.asarray(c.rest_offsets, np.float32)
        positions.append(rep.pose_positions(rep.denormalize(x[0]), normalized=False, rest_offsets=off).numpy())
    if not positions:
        raise DataError(f"token_boundary_acceleration: no clip of at least {2 * stride} frames (two tokens)")
    boundary, other = boundary_and_inside(*acceleration_by_token_position(positions, fps, stride))
    return {"boundary": boundary, "other": other, "ratio": boundary / other}


@dataclass
class DecoderTuneConfig:
    """Settings of one ``livedance train tokenizer-decoder`` run (the CLI's help explains each field)."""

    model: str = "livedance"
    source: Path | None = None
    out: Path | None = None  # None: runs/tokenizer-decoder-<model>
    steps: int = 300
    minutes: float | None = None
    seed: int = 0
    resume: bool = False
    batch_size: int = 32
    window: int = 64
    hop: int = 8
    lr: float = 3e-4
    warmup_steps: int = 20
    vel_weight: float = TokenizerRunConfig.vel_weight  # the tokenizer's own loss terms, as trained
    pos_weight: float = TokenizerRunConfig.pos_weight
    root_weight: float = TokenizerRunConfig.root_weight
    acc_weight: float = 1.0
    pos_acc_weight: float = 50.0
    kin_weight: float = 0.0
    data_root: Path | None = None
    ship: bool = False
    progress: bool = True
    eval_split: str = "test"

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if self.model not in SHIPPED_STEMS:
            raise ConfigError(f"--model {self.model!r}: expected one of {', '.join(SHIPPED_STEMS)}")
        if self.window % 4 or self.window < 8:
            raise ConfigError(f"--window {self.window}: must be a multiple of 4 (frames per token), at least 8")
        if self.acc_weight < 0 or self.pos_acc_weight < 0 or (self.acc_weight == 0 and self.pos_acc_weight == 0):
            raise ConfigError(f"--acc-weight {self.acc_weight} / --pos-acc-weight {self.pos_acc_weight}: expected "
                              "weights >= 0, at least one of them > 0 (the acceleration terms are what this run adds)")
        if not self.kin_weight >= 0:
            raise ConfigError(f"--kin-weight {self.kin_weight}: expected a weight >= 0 (0: no kinetic term)")


def _command(cfg: DecoderTuneConfig) -> str:
    src = f" --from {cfg.source}" if cfg.source is not None else ""
    mins = f" --minutes {cfg.minutes:g}" if cfg.minutes else ""
    return (f"livedance train tokenizer-decoder --model {cfg.model}{src} --steps {cfg.steps}{mins} --seed {cfg.seed} "
            f"--acc-weight {cfg.acc_weight:g} --pos-acc-weight {cfg.pos_acc_weight:g} --lr {cfg.lr:g}"
            + (f" --kin-weight {cfg.kin_weight:g}" if cfg.kin_weight else ""))


def _frozen_state(tok: Tokenizer) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in tok.state_dict().items() if not k.startswith("decoders.")}


def run_decoder_tune(cfg: DecoderTuneConfig) -> dict:
    """Fine-tune a tokenizer's decoders with acceleration terms; codes unchanged (module docstring).

    Writes ``<out>/checkpoint/`` (resumable), ``<out>/tokenizer.{safetensors,json}`` and ``<out>/metrics.json``;
    with ``ship``, also the shipped tokenizer of ``cfg.model`` (``livedance/weights/tokenizer.*`` or
    ``baseline_tokenizer.*``) and a section of ``livedance/weights/MODEL_CARD.md``.

    Returns:
        dict with ``before`` / ``after`` (MPJPE mm per part and token-boundary acceleration on
        ``eval_split``, and the real dances' acceleration as ``real``), ``steps``, ``elapsed_s``, ``paths``.
    Raises:
        ConfigError: bad settings, or ``ship`` with a source whose codes are not those of the shipped
        tokenizer it would replace (the shipped models would stop loading). WeightsError: the source
        tokenizer is missing or corrupt, or a frozen tensor changed (a bug; nothing is written then).
        DataError: the data is missing.
    """
    from livedance.data.dataset import load_split
    from livedance.model.checkpoint import WEIGHTS_DIR, write_card_section
    from livedance.model.train_tokenizer import WindowDataset, clip_raw_features, reconstruction_mpjpe, tokenizer_loss
    from livedance.model.trainer import TrainConfig, Trainer, init_distributed, prepare_run_dir, seed_everything

    cfg.validate()
    source = cfg.source if cfg.source is not None else WEIGHTS_DIR / SHIPPED_STEMS[cfg.model]
    tok, rep, doc = Tokenizer.load(source)
    src_sha = str(doc.get("sha256", ""))
    if cfg.source is None and "decoder_tune" in doc:
        raise ConfigError(
            f"--model {cfg.model}: the shipped {source.name} is already decoder-tuned (from sha256 "
            f"{doc['decoder_tune'].get('source_sha256', '?')[:12]}...); a second run would tune it again. Pass "
            f"--from with the tokenizer as trained (e.g. runs/tokenizer-hrvq/tokenizer), or --from {source} to "
            "tune it once more on purpose")
    out = Path(cfg.out) if cfg.out is not None else Path("runs") / f"tokenizer-decoder-{cfg.model}"
    target = WEIGHTS_DIR / SHIPPED_STEMS[cfg.model]
    if cfg.ship and target.with_suffix(".json").is_file():
        shipped = json.loads(target.with_suffix(".json").read_text())
        if not code_lineage(shipped) & code_lineage(doc):
            raise ConfigError(
                f"--ship --model {cfg.model}: {source} does not have the codes of the shipped {target.name} "
                f"(sha256 {str(shipped.get('sha256', ''))[:12]}...): the shipped models trained on those codes would "
                "stop loading. "
                "Tune the shipped tokenizer (leave out --from), or drop --ship")
    prepare_run_dir(out, cfg.resume)  # a bad --out or --resume fails before the data is read
    dist = init_distributed()
    show = cfg.progress and dist.is_main
    train = load_split("train", data_root=cfg.data_root, progress=show)
    test = load_split(cfg.eval_split, data_root=cfg.data_root, progress=show)
    tok.eval()
    before = {**reconstruction_mpjpe(tok, rep, test), "acceleration": token_boundary_acceleration(tok, rep, test)}
    real = token_boundary_acceleration(None, rep, test)
    frozen = _frozen_state(tok)
    ds = WindowDataset(clip_raw_features(train, rep.config), rep, window=cfg.window, hop=cfg.hop)
    seed_everything(cfg.seed)
    model = DecoderOnly(tok)
    tcfg = TrainConfig(steps=cfg.steps, minutes=cfg.minutes, batch_size=cfg.batch_size, lr=cfg.lr,
                       warmup_steps=cfg.warmup_steps, seed=cfg.seed, progress=show)
    run_config = {"source_sha256": src_sha, "window": cfg.window, "hop": cfg.hop, "vel_weight": cfg.vel_weight,
                  "pos_weight": cfg.pos_weight, "root_weight": cfg.root_weight, "acc_weight": cfg.acc_weight,
                  "pos_acc_weight": cfg.pos_acc_weight}
    if cfg.kin_weight:  # only when used, so that runs from before the option resume
        run_config["kin_weight"] = cfg.kin_weight

    def loss_fn(m, b):
        return tokenizer_loss(m, b, cfg.vel_weight, rep, cfg.pos_weight, cfg.root_weight, cfg.acc_weight,
                              cfg.pos_acc_weight, cfg.kin_weight)

    trainer = Trainer(model, ds, loss_fn, tcfg, out, resume=cfg.resume, run_config=run_config, dist=dist)
    res = trainer.fit()
    tok.cpu()  # the Trainer may have moved it to a GPU; the checks and the metrics below run on the CPU
    result: dict[str, Any] = {"steps": res.step, "elapsed_s": res.elapsed_s, "stopped_by": res.stopped_by}
    if not dist.is_main:
        return result
    tok.eval()
    changed = [k for k, v in _frozen_state(tok).items() if not torch.equal(v, frozen[k])]
    if changed:
        raise WeightsError(f"decoder fine-tune changed frozen tensors {changed[:5]}; nothing written")
    after = {**reconstruction_mpjpe(tok, rep, test), "acceleration": token_boundary_acceleration(tok, rep, test)}
    info = {"command": _command(cfg), "steps": res.step, "elapsed_s": round(res.elapsed_s, 1),
            "stopped_by": res.stopped_by, "source_sha256": src_sha, **{k: v for k, v in run_config.items()
                                                                         if k != "source_sha256"},
            "final_loss": res.history[-1] if res.history else None}
    extra = {k: v for k, v in doc.items() if k not in ("format", "format_version", "config", "tensors", "sha256",
                                                       "representation", "decoder_context_tokens")}
    extra["metrics"] = {**dict(doc.get("metrics") or {}), cfg.eval_split: {k: v for k, v in after.items()
                                                                           if k != "acceleration"}}
    extra["decoder_tune"] = {**info, "eval_split": cfg.eval_split, "before": before, "after": after, "real": real}
    extra["same_codes_as"] = [src_sha, *[s for s in doc.get("same_codes_as", []) if s != src_sha]]
    paths = tok.save(out / "tokenizer", rep, extra)
    (out / "metrics.json").write_text(json.dumps(extra["decoder_tune"], indent=1, default=float))
    result.update(before=before, after=after, real=real, paths=[str(p) for p in paths])
    if cfg.ship:
        shipped = tok.save(WEIGHTS_DIR / SHIPPED_STEMS[cfg.model], rep, extra)
        title = "Tokenizer decoder fine-tune" if cfg.model == "livedance" else "Baseline tokenizer decoder fine-tune"
        write_card_section(WEIGHTS_DIR / "MODEL_CARD.md", title, _card(cfg, info, before, after, real))
        result["shipped"] = [str(p) for p in shipped]
    _print_table(cfg, before, after, real)
    return result


def _card(cfg: DecoderTuneConfig, info: dict, before: dict, after: dict, real: dict) -> str:
    stem = SHIPPED_STEMS[cfg.model]
    ab, aa = before["acceleration"], after["acceleration"]
    mm = ", ".join(f"{k} {before[k]:.1f} -> {after[k]:.1f}" for k in ("all", "lower", "upper", "root"))
    return f"""`{stem}.*` is the trained tokenizer with its decoders fine-tuned (livedance.model.decoder_tune):
encoders, codebooks and hint maps unchanged (checked bit for bit), so the codes mean the same, and the
model trained on the source tokenizer's codes (sha256 {info['source_sha256'][:12]}..., listed in
`same_codes_as`) stays valid.

- Why: the causal decoder stepped at every token boundary (every 4 frames, 6.25 Hz).
- Training: `{info['command']}`; {info['steps']} steps in {info['elapsed_s'] / 60:.1f} min.
  Loss: the tokenizer's, plus {cfg.acc_weight:g} x feature acceleration L1 and {cfg.pos_acc_weight:g} x FK
  joint acceleration L1 (m per frame^2): Bailando's VQ-VAE acceleration term (Siyao et al. 2022, Eq. 2).
  Train split windows.
- Metrics ({cfg.eval_split} split, whole clips encoded and decoded):
  - mean joint acceleration around token boundaries (the two frames that straddle one) / inside tokens:
    {ab['boundary']:.2f} / {ab['other']:.2f} m/s^2
    before, {aa['boundary']:.2f} / {aa['other']:.2f} after; real dances {real['boundary']:.2f} / {real['other']:.2f};
  - MPJPE (mm), before -> after: {mm}.
  - Generated dances: `benchmarks/token_jitter.py` (docs/model.md).
"""


def _print_table(cfg: DecoderTuneConfig, before: dict, after: dict, real: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    tab = Table(title=f"tokenizer decoder fine-tune ({cfg.model}), {cfg.eval_split} split")
    for col in ("", "all (mm)", "lower (mm)", "upper (mm)", "root (mm)", "acc. boundary / inside (m/s^2)"):
        tab.add_column(col, justify="right" if col else "left")
    for name, m in (("before", before), ("after", after)):
        a = m["acceleration"]
        tab.add_row(name, *(f"{m[k]:.1f}" for k in ("all", "lower", "upper", "root")),
                    f"{a['boundary']:.2f} / {a['other']:.2f}")
    tab.add_row("real dances", "", "", "", "", f"{real['boundary']:.2f} / {real['other']:.2f}")
    Console().print(tab)
