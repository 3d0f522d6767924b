"""A small generic training loop (tokenizer and generator): AdamW, warmup + cosine LR, resumable
safetensors checkpoints, and DDP under ``torchrun``.

Usage::

    dist = init_distributed()                       # no-op unless RANK / WORLD_SIZE are set
    model = build_model()                           # after init_distributed (some layers sync over DDP)
    trainer = Trainer(model, dataset, loss_fn, TrainConfig(steps=2000, minutes=10), out_dir, resume=False)
    result = trainer.fit()
    shutdown_distributed()

``loss_fn(model, batch) -> (loss scalar tensor, {name: scalar tensor})`` is called with the (possibly
DDP-wrapped) model; it must call ``model(...)`` so DDP sees the forward. ``dataset`` is a map-style
``torch.utils.data.Dataset`` whose items ``collate_fn`` (default ``torch.utils.data.default_collate``)
stacks into a batch; batches are built in the main process (no worker processes: 2-core machines).

Distributed: when ``WORLD_SIZE > 1`` (``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) the process group is initialised with ``nccl`` on CUDA and ``gloo`` on the CPU, the model is
wrapped in ``DistributedDataParallel``, each rank reads its shard of every epoch through a
``DistributedSampler`` (same seed on every rank), the python / numpy / torch RNGs are reseeded with
``seed + rank`` on every rank when the :class:`Trainer` is built (so augmentation and dropout differ between
ranks; a single process keeps the streams its caller seeded), rank 0 decides when the time budget is spent
and broadcasts it, and only rank 0 writes files. ``batch_size`` is per rank.

Learning rate (per step): ``lr * min(1, (step + 1) / warmup_steps) * (min_lr_ratio + (1 - min_lr_ratio) *
(1 + cos(pi * p)) / 2)`` with progress ``p = max(step / steps, elapsed / (60 * minutes))``, so a run cut
short by its wall-clock budget still anneals. Training stops when ``p >= 1``.

Checkpoints (``<out_dir>/checkpoint/``, written every ``ckpt_every`` steps or ``ckpt_every_minutes``, and at
the end; never pickle): written to ``checkpoint.tmp/`` (``trainer.json`` last, so a folder with it is
complete), then swapped in through ``checkpoint.old/``. A swap cut short is finished by the next save, and
``--resume`` reads ``checkpoint/``, else a complete ``checkpoint.tmp/`` (the newer), else ``checkpoint.old/``;
no save deletes the only complete checkpoint.

* ``model.safetensors``: the unwrapped model's ``state_dict`` (parameters and buffers);
* ``optimizer.safetensors``: AdamW state tensors as ``state.<param index>.<name>``, each rank's torch
  CPU RNG state as ``rng.torch.<rank>`` and, on CUDA, its device's RNG state as ``rng.cuda.<rank>``;
* ``trainer.json``: step, epoch, batch within the epoch, elapsed seconds, world size, the optimizer's param
  groups and non-tensor state, python / numpy RNG states per rank, each rank's loss sums since the last logged
  step (``log_acc``, so a resumed run logs the same means), the ``TrainConfig`` and the caller's ``run_config``.

Resuming checks the world size, the ``run_config`` and the ``TrainConfig`` (all but the reporting and
checkpoint-cadence fields in :data:`RESUME_FREE_FIELDS`) and refuses any difference; it cuts ``log.jsonl``
back to the resumed step, so steps after the last checkpoint are not logged twice. The resumed run
reproduces the uninterrupted one exactly (same batches, same RNG streams) only on the CPU and with
``minutes=None``: a wall-clock budget makes the LR schedule and the stopping step depend on elapsed time,
and CUDA kernels need not be deterministic. ``tests/test_trainer.py`` checks the CPU case.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.distributed as tdist
from torch import Tensor

from livedance.errors import ConfigError, WeightsError
from livedance.model.checkpoint import atomic_write_bytes, load_tensors, save_tensors

__all__ = [
    "TrainConfig",
    "DistInfo",
    "TrainResult",
    "Trainer",
    "init_distributed",
    "shutdown_distributed",
    "seed_everything",
    "lr_at",
    "RESUME_FREE_FIELDS",
    "has_checkpoint",
    "prepare_run_dir",
]

#: :class:`TrainConfig` fields that a resumed run may change: they only report or set the checkpoint cadence.
RESUME_FREE_FIELDS: tuple[str, ...] = ("progress", "log_every", "ckpt_every", "ckpt_every_minutes")


@dataclass
class TrainConfig:
    """Optimiser, schedule, budget and bookkeeping settings.

    Attributes:
        steps: optimiser steps (the schedule's length).
        minutes: optional wall-clock budget in minutes (whichever of steps / minutes ends first).
        batch_size: examples per rank per step.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay.
        betas: AdamW betas.
        warmup_steps: linear warm-up steps.
        min_lr_ratio: final LR as a fraction of ``lr`` (cosine floor).
        grad_clip: max global gradient norm (None: no clipping).
        seed: base seed (model init, data order, augmentation; each DDP rank seeds its RNGs with seed + rank).
        log_every: steps between logged (rank-averaged) losses.
        ckpt_every: steps between checkpoints (0: only by time and at the end).
        ckpt_every_minutes: minutes between checkpoints.
        progress: show a rich progress bar (rank 0).
        ema_decay: decay d of an exponential moving average of the weights (Polyak averaging; 0 = off, else
            in (0, 1)): after every step theta_avg <- d theta_avg + (1 - d) theta, the first step copying theta
            (``torch.optim.swa_utils.AveragedModel``). Buffers (statistics, EMA codebooks) are copied, not
            averaged. It is checkpointed, and :attr:`Trainer.averaged` is the model to save. About 1 / (1 - d) steps carry its weight: 0.99 averages the last ~100.
    """

    steps: int = 1000
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float | None = 1.0
    seed: int = 0
    log_every: int = 20
    ckpt_every: int = 500
    ckpt_every_minutes: float = 2.0
    progress: bool = True
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"TrainConfig: ema_decay={self.ema_decay}; expected 0 (off) or a decay in (0, 1), "
                              "e.g. 0.99")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or (self.minutes is not None and self.minutes <= 0):
            raise ConfigError(
                f"TrainConfig: steps={self.steps}, batch_size={self.batch_size}, lr={self.lr}, minutes={self.minutes}; "
                "expected steps >= 1, batch_size >= 1, lr > 0 and minutes > 0 when given"
            )


@dataclass(frozen=True)
class DistInfo:
    """Process-group facts: ``rank``, ``world_size``, ``local_rank``, ``device``, ``backend`` (None when single)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the rank that writes files and prints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Initialise ``torch.distributed`` from ``torchrun``'s environment (idempotent).

    Reads RANK, WORLD_SIZE, LOCAL_RANK; with WORLD_SIZE > 1 initialises ``cpu:gloo,cuda:nccl`` (CUDA: NCCL for the
    model's tensors, gloo for the loop's small CPU tensors) or ``gloo`` (CPU) through ``env://``. Without them returns a single-process :class:`DistInfo` (CUDA device 0 if available).

    Raises:
        ConfigError: when the environment variables are malformed.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ConfigError(f"distributed environment: RANK/WORLD_SIZE/LOCAL_RANK must be integers ({e})") from None
    cuda = torch.cuda.is_available()
    if world <= 1:
        return DistInfo(device=torch.device("cuda", 0) if cuda else torch.device("cpu"))
    # NCCL carries CUDA tensors only; the loop's small progress / stop-vote tensors live on the CPU, so CPU tensors
    # get gloo in the same group
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device, backend=backend)


def shutdown_distributed() -> None:
    """Destroy the process group if one is initialised."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def command_line(default: str) -> str:
    """The command that started this process as a user would type it (``livedance`` + its arguments), for model
    cards and weights JSON; ``default`` when the process had no arguments (called from Python)."""
    import sys

    return "livedance " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else default


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Learning rate at ``step`` with schedule progress ``progress`` in [0, 1] (see the module docstring)."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    p = min(max(progress, 0.0), 1.0)
    return cfg.lr * warm * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns: final ``step``, ``elapsed_s`` (training wall time, seconds,
    including earlier resumed runs), ``history`` (logged dicts: step, lr, loss and the loss_fn's metrics,
    averaged over ranks), and ``stopped_by`` ('steps' or 'minutes')."""

    step: int
    elapsed_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_by: str = "steps"


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _differences(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every leaf where two JSON-like values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}" if path else str(k))
        return out
    return [] if a == b else [(path or "run_config", a, b)]


def _complete(d: Path) -> bool:
    """Whether folder ``d`` holds a whole checkpoint (``trainer.json`` is written last)."""
    return all((d / n).is_file() for n in ("trainer.json", "model.safetensors", "optimizer.safetensors"))


def prepare_run_dir(out_dir: str | Path, resume: bool) -> Path:
    """Check a training run's folder before any data is read, so a bad ``--out`` or ``--resume`` fails in
    seconds instead of after the data preparation.

    Args:
        out_dir: the run folder (created with its parents when missing). resume: ``--resume`` was given.
    Returns:
        the folder, as a Path.
    Raises:
        ConfigError: ``out_dir`` is a file, cannot be created or written, (``resume``) holds no complete
            checkpoint (nor ``checkpoint.tmp`` / ``checkpoint.old``, as :meth:`Trainer.load_checkpoint` reads), or
            (not ``resume``) holds an earlier run's checkpoint, which a fresh run would overwrite.
    """
    from livedance.atomic import check_output_path

    d = Path(out_dir)  # as the Trainer will use it
    if d.exists() and not d.is_dir():
        raise ConfigError(f"--out {d} is a file; expected a run folder")
    check_output_path(d / ".livedance-write-check", f"--out {d}", overwrite=True, make_parent=True)  # creates d
    found = has_checkpoint(d)
    if resume and not found:
        raise ConfigError(f"--resume: no checkpoint in {d / 'checkpoint'} (start without --resume, or point --out "
                          "at the run to continue)")
    if not resume and found:
        raise ConfigError(f"--out {d} holds an earlier run's checkpoint, which a fresh run would overwrite: pass "
                          "--resume to continue it, or another --out (or delete the folder)")
    return d


def has_checkpoint(out_dir: str | Path) -> bool:
    """Whether a run folder holds a complete checkpoint that ``--resume`` would read (:func:`checkpoint_candidates`)."""
    return any(_complete(c) for c in checkpoint_candidates(Path(out_dir)))


def checkpoint_candidates(out_dir: Path) -> list[Path]:
    """Where a run's checkpoint may be, in the order :meth:`Trainer.load_checkpoint` reads them: ``checkpoint/``,
    then ``checkpoint.tmp/`` and ``checkpoint.old/`` (a swap cut short by a crash)."""
    return [out_dir / "checkpoint", out_dir / "checkpoint.tmp", out_dir / "checkpoint.old"]


def _json_state(obj: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        return [_json_state(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _json_state(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


class Trainer:
    """Generic training loop (see the module docstring).

    Args:
        model: the module to train (moved to the device; wrapped in DDP when distributed).
        dataset: map-style dataset.
        loss_fn: ``(model, batch) -> (loss, metrics)``.
        config: :class:`TrainConfig`.
        out_dir: folder for ``checkpoint/`` and ``log.jsonl`` (rank 0 writes).
        collate_fn: list of items -> batch (default ``default_collate``).
        resume: continue from ``<out_dir>/checkpoint``.
        run_config: JSON-serialisable description of the model/data; stored and compared on resume.
        dist: a :class:`DistInfo` (default :func:`init_distributed`).
        upgrade_run_config: applied to a checkpoint's saved ``run_config`` before the comparison on
            resume: it writes the saved description as this version would (fields added since the
            checkpoint was written get their defaults), so adding a setting does not orphan older runs.

    Raises:
        ConfigError: when the dataset is smaller than one global batch, or ``resume`` finds no checkpoint
            or one written for a different ``run_config``, ``TrainConfig`` (outside
            :data:`RESUME_FREE_FIELDS`) or world size (raised by :meth:`fit`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        dataset: torch.utils.data.Dataset,
        loss_fn: Callable[[torch.nn.Module, Any], tuple[Tensor, Mapping[str, Tensor]]],
        config: TrainConfig,
        out_dir: str | Path,
        collate_fn: Callable | None = None,
        resume: bool = False,
        run_config: dict | None = None,
        dist: DistInfo | None = None,
        upgrade_run_config: Callable[[dict], dict] | None = None,
    ):
        self.cfg = config
        self.dist = dist or init_distributed()
        self.out_dir = Path(out_dir)
        self.dataset = dataset
        self.loss_fn = loss_fn
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.run_config = _json_state(run_config or {})
        self.upgrade_run_config = upgrade_run_config
        self.model = model.to(self.dist.device)
        if len(dataset) < config.batch_size * self.dist.world_size:
            raise ConfigError(
                f"training data: {len(dataset)} examples, fewer than one global batch "
                f"({config.batch_size} x {self.dist.world_size} ranks)"
            )
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.dist.local_rank] if self.dist.device.type == "cuda" else None
            self.wrapped = DDP(self.model, device_ids=ids)
        else:
            self.wrapped = self.model
        if self.dist.distributed:  # one RNG stream per rank (a single process keeps its caller's streams)
            seed_everything(config.seed + self.dist.rank)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.sampler = torch.utils.data.DistributedSampler(
            dataset, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True, seed=config.seed,
            drop_last=True,
        )
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.elapsed_s = 0.0
        self.history: list[dict[str, float]] = []
        self.ema = None  # the weights' moving average (TrainConfig.ema_decay), checkpointed as ema.safetensors
        if config.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),
                                     use_buffers=False)
        self._acc_loss: dict[str, float] = {}  # loss sums since the last logged step (checkpointed: ``log_acc``)
        self._acc_n = 0
        self.resume = resume

    @property
    def averaged(self) -> torch.nn.Module:
        """The model to save: the weights' moving average with ``TrainConfig.ema_decay`` > 0, else :attr:`model`."""
        return self.ema.module if self.ema is not None else self.model

    # --------------------------------------------------------------------------------- checkpoint
    @property
    def ckpt_dir(self) -> Path:
        """``<out_dir>/checkpoint``."""
        return self.out_dir / "checkpoint"

    def _gather(self, obj: Any) -> list[Any]:
        if not self.dist.distributed:
            return [obj]
        out: list[Any] = [None] * self.dist.world_size
        tdist.all_gather_object(out, obj)
        return out

    def save_checkpoint(self) -> None:
        """Write the checkpoint (collective under DDP: every rank must call it; rank 0 writes)."""
        rng_t = self._gather(torch.get_rng_state())
        cuda = self.dist.device.type == "cuda"
        rng_c = self._gather(torch.cuda.get_rng_state(self.dist.device) if cuda else None)
        rng_py = self._gather(random.getstate())
        rng_np = self._gather(np.random.get_state())
        acc = self._gather({"sums": dict(self._acc_loss), "n": self._acc_n})
        if not self.dist.is_main:
            return
        tmp = self.out_dir / "checkpoint.tmp"
        old = self.out_dir / "checkpoint.old"
        if not self.ckpt_dir.exists():  # finish a swap a crash cut short: never delete the only checkpoint
            for src in (tmp, old):
                if _complete(src):
                    os.replace(src, self.ckpt_dir)
                    break
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_tensors(tmp / "model.safetensors", self.model.state_dict())
        if self.ema is not None:
            save_tensors(tmp / "ema.safetensors", self.ema.state_dict())  # module.* and n_averaged
        osd = self.optimizer.state_dict()
        tensors: dict[str, Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for idx, st in osd["state"].items():
            for k, v in st.items():
                if isinstance(v, Tensor):
                    tensors[f"state.{idx}.{k}"] = v
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        for r, s in enumerate(rng_t):
            tensors[f"rng.torch.{r}"] = s
        for r, s in enumerate(rng_c):
            if s is not None:
                tensors[f"rng.cuda.{r}"] = s
        save_tensors(tmp / "optimizer.safetensors", tensors)
        doc = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "elapsed_s": self.elapsed_s,
            "world_size": self.dist.world_size,
            "param_groups": _json_state(osd["param_groups"]),
            "optimizer_scalars": _json_state(scalars),
            "rng_python": _json_state(rng_py),
            "rng_numpy": [_json_state(list(s)) for s in rng_np],
            "log_acc": acc,
            "train_config": _json_state(asdict(self.cfg)),
            "run_config": self.run_config,
        }
        atomic_write_bytes(tmp / "trainer.json", json.dumps(doc).encode())  # last: marks tmp complete
        if old.exists():  # checkpoint/ exists here unless there never was a complete checkpoint
            shutil.rmtree(old)
        if self.ckpt_dir.exists():
            os.replace(self.ckpt_dir, old)
        os.replace(tmp, self.ckpt_dir)
        from livedance.atomic import fsync_path

        fsync_path(self.out_dir)  # the swap is on disk before the previous checkpoint goes (each file was fsync'ed)
        if old.exists():
            shutil.rmtree(old)

    def load_checkpoint(self) -> None:
        """Restore model, optimizer, position in the data and RNG streams from ``<out_dir>/checkpoint``.

        Reads ``checkpoint/``, else a complete ``checkpoint.tmp/``, else ``checkpoint.old/`` (a swap cut short
        by a crash). Rank 0 then cuts ``log.jsonl`` back to the records of steps <= the resumed step.

        Raises:
            ConfigError: no checkpoint, or one for another world size, run config or ``TrainConfig`` (fields
                outside :data:`RESUME_FREE_FIELDS`), naming the checkpoint folder and every difference.
            WeightsError: unreadable / mismatched checkpoint files.
        """
        from livedance.model.checkpoint import load_state_into

        cands = checkpoint_candidates(self.out_dir)
        d = next((c for c in cands if _complete(c)), None)
        if d is None:
            raise ConfigError(f"--resume: no checkpoint in {self.ckpt_dir} (expected trainer.json, model.safetensors "
                              "and optimizer.safetensors there, or in checkpoint.tmp / checkpoint.old beside it)")
        try:
            doc = json.loads((d / "trainer.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise WeightsError(f"{d / 'trainer.json'}: unreadable ({e})") from None
        saved_world = int(doc.get("world_size", 1))
        if saved_world != self.dist.world_size:
            raise ConfigError(
                f"--resume: the checkpoint in {d} was written by {saved_world} process(es), this run has "
                f"{self.dist.world_size}; resume with {saved_world} (torchrun --nproc_per_node {saved_world}), or train "
                "into a new --out folder"
            )
        saved = doc.get("run_config")
        if self.upgrade_run_config is not None and isinstance(saved, dict):
            try:
                saved = _json_state(self.upgrade_run_config(saved))
            except ConfigError as e:
                raise ConfigError(f"--resume: the checkpoint in {d} holds a config this version cannot read: {e}") from None
        if saved != self.run_config:
            diff = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, a, b in _differences(saved, self.run_config))
            raise ConfigError(
                f"--resume: the checkpoint in {d} was written for another model/data config ({diff}); "
                "resume with the same settings, or train into a new --out folder"
            )
        saved_tc = doc.get("train_config")
        if isinstance(saved_tc, dict):
            now_tc = {k: v for k, v in _json_state(asdict(self.cfg)).items() if k not in RESUME_FREE_FIELDS}
            defaults = _json_state(asdict(TrainConfig()))  # fields added since the checkpoint: their defaults
            saved_tc = {k: v for k, v in {**defaults, **saved_tc}.items() if k not in RESUME_FREE_FIELDS}
            if saved_tc != now_tc:
                diff = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, a, b in _differences(saved_tc, now_tc))
                raise ConfigError(
                    f"--resume: the checkpoint in {d} was written with other training settings ({diff}); "
                    "resume with the same settings, or train into a new --out folder"
                )
        load_state_into(self.model, load_tensors(d / "model.safetensors"), d / "model.safetensors")
        if self.ema is not None:
            if not (d / "ema.safetensors").is_file():
                raise WeightsError(f"{d / 'ema.safetensors'}: missing (the run averages its weights, ema_decay "
                                   f"{self.cfg.ema_decay}, but its checkpoint holds no average)")
            load_state_into(self.ema, load_tensors(d / "ema.safetensors"), d / "ema.safetensors")
        ot = load_tensors(d / "optimizer.safetensors")
        state: dict[int, dict[str, Any]] = {}
        for k, v in ot.items():
            if k.startswith("state."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        for idx, sc in doc.get("optimizer_scalars", {}).items():
            state.setdefault(int(idx), {}).update(sc)
        groups = doc["param_groups"]
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        try:
            self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (ValueError, KeyError) as e:
            raise WeightsError(f"{d / 'optimizer.safetensors'}: does not match the model's parameters ({e})") from None
        self.step = int(doc["step"])
        self.epoch = int(doc["epoch"])
        self.batch_in_epoch = int(doc["batch_in_epoch"])
        self.elapsed_s = float(doc["elapsed_s"])
        r = self.dist.rank
        torch.set_rng_state(ot[f"rng.torch.{r}"])
        if self.dist.device.type == "cuda" and f"rng.cuda.{r}" in ot:  # absent in CPU runs and older checkpoints
            torch.cuda.set_rng_state(ot[f"rng.cuda.{r}"], self.dist.device)
        py = doc["rng_python"][r]
        random.setstate((py[0], tuple(py[1]), py[2]))
        npst = doc["rng_numpy"][r]
        np.random.set_state((npst[0], np.asarray(npst[1], dtype=np.uint32), npst[2], npst[3], npst[4]))
        acc = (doc.get("log_acc") or [None] * (r + 1))[r] or {"sums": {}, "n": 0}  # absent before session 22
        self._acc_loss, self._acc_n = {k: float(v) for k, v in acc["sums"].items()}, int(acc["n"])
        if self.dist.is_main:
            self._truncate_log()

    def _truncate_log(self) -> None:
        """Keep only the ``log.jsonl`` records of steps <= ``self.step`` (and drop a line cut off by a crash)."""
        logf = self.out_dir / "log.jsonl"
        if not logf.is_file():
            return
        keep = []
        for line in logf.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("step"), (int, float)) and rec["step"] <= self.step:
                keep.append(line)
        atomic_write_bytes(logf, "".join(k + "\n" for k in keep).encode())

    # --------------------------------------------------------------------------------- loop
    def _progress(self) -> float:
        p = self.step / self.cfg.steps
        if self.cfg.minutes:
            p = max(p, self.elapsed_s / (60.0 * self.cfg.minutes))
        return p

    def _batches(self):
        """Endless (epoch, batch index, indices) stream from the sampler, starting at the saved position."""
        B = self.cfg.batch_size
        while True:
            self.sampler.set_epoch(self.epoch)
            idx = list(self.sampler)
            nb = len(idx) // B
            while self.batch_in_epoch < nb:
                i = self.batch_in_epoch
                yield idx[i * B:(i + 1) * B]  # fit() advances batch_in_epoch once the batch is used
            self.epoch += 1
            self.batch_in_epoch = 0

    def _sync_buffers(self) -> None:
        if self.dist.distributed:
            for b in self.model.buffers():
                tdist.broadcast(b.data, src=0)

    def fit(self) -> TrainResult:
        """Train until the step or time budget is spent; returns a :class:`TrainResult`."""
        cfg = self.cfg
        self._acc_loss, self._acc_n = {}, 0  # a second fit() starts its log afresh (a checkpoint restores them)
        if self.resume:
            self.load_checkpoint()
        self.model.train()
        logf = self.out_dir / "log.jsonl"
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if not self.resume and self.step == 0:  # a fresh run's log holds no earlier run's lines
                logf.unlink(missing_ok=True)
        bar = None
        if cfg.progress and self.dist.is_main:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TextColumn("{task.fields[info]}"))
            bar.start()
            task = bar.add_task("train", total=cfg.steps, completed=self.step, info="")
        stopped_by = "steps"
        last_ckpt_t = time.perf_counter()
        t0 = time.perf_counter() - self.elapsed_s
        batches = self._batches()
        try:
            while True:
                self.elapsed_s = time.perf_counter() - t0
                prog = torch.tensor([self._progress()], dtype=torch.float64)
                if self.dist.distributed:
                    tdist.broadcast(prog, src=0)  # rank 0's clock decides for everyone
                if prog.item() >= 1.0:
                    stopped_by = "steps" if self.step >= cfg.steps else "minutes"
                    break
                lr = lr_at(cfg, self.step, prog.item())
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                ids = next(batches)
                batch = _to_device(self.collate_fn([self.dataset[i] for i in ids]), self.dist.device)
                self.batch_in_epoch += 1  # the batch is consumed (position saved with the checkpoint)
                loss, metrics = self.loss_fn(self.wrapped, batch)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                self.step += 1
                acc = self._acc_loss
                for k, v in {"loss": loss, **dict(metrics)}.items():
                    acc[k] = acc.get(k, 0.0) + float(v.detach())
                self._acc_n += 1
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    vals = torch.tensor([acc[k] / self._acc_n for k in sorted(acc)], dtype=torch.float64)
                    if self.dist.distributed:
                        tdist.all_reduce(vals)
                        vals /= self.dist.world_size
                    rec = {"step": self.step, "lr": lr, "elapsed_s": round(time.perf_counter() - t0, 2)}
                    rec.update({k: float(v) for k, v in zip(sorted(acc), vals)})
                    self.history.append(rec)
                    self._acc_loss, self._acc_n = {}, 0
                    if self.dist.is_main:
                        with open(logf, "a") as f:
                            f.write(json.dumps(rec) + "\n")
                        if bar is not None:
                            bar.update(task, info=f"loss {rec['loss']:.4f}  lr {lr:.2e}")
                if bar is not None:
                    bar.update(task, completed=self.step)
                due = torch.tensor([
                    float((cfg.ckpt_every and self.step % cfg.ckpt_every == 0)
                          or time.perf_counter() - last_ckpt_t > 60 * cfg.ckpt_every_minutes)
                ])
                if self.dist.distributed:
                    tdist.broadcast(due, src=0)
                if due.item():
                    self.elapsed_s = time.perf_counter() - t0
                    self._sync_buffers()
                    self.save_checkpoint()
                    last_ckpt_t = time.perf_counter()
            self.elapsed_s = time.perf_counter() - t0
            self._sync_buffers()
            self.save_checkpoint()
        finally:
            if bar is not None:
                bar.stop()
        if self.dist.distributed:
            tdist.barrier()
        return TrainResult(self.step, self.elapsed_s, self.history, stopped_by)
