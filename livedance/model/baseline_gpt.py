"""Bailando-style baseline: a causal GPT over VQ-VAE pose codes, with the same music inputs and step interface.

After Bailando (Siyao et al., CVPR 2022): a part-wise VQ-VAE (Sec. 3.1: separate upper / lower codebooks,
one level; here the tokenizer's ``vq`` variant, :mod:`livedance.model.tokenizer`) and a GPT that predicts
the next pose code from the previous codes and the music (Sec. 3.2 "motion GPT", without the actor-critic
fine-tuning of Sec. 3.3, which needs a reward model and online rollouts). Shapes: B batch, N token slots
(0.16 s each: 4 frames at 25 fps), P parts, V levels (1 for ``vq``), C codes, d width, W audio window.

Per slot j (causal, teacher-forced in training)::

    q_j = MusicEncoder(window_{s(j)}, cond_j)        same module and inputs as the livedance generator
    h_j = E(c_{j-1}) + q_j                           E(c) = sum over parts and levels of code embeddings
                                                     (a learned BOS vector instead of E(c_{-1}))
    y   = GPT(h_0 .. h_j) + learned absolute positions within the context window
    p(c_{j,p,v}) = softmax(Linear_{p,v}(y_j))        every part and level of slot j, predicted jointly

``s(j)`` is the start of slot j's chunk (chunks of K = ``config.chunk`` slots): the window holds the W audio
feature frames with time <= t_{s(j)} - lag, exactly what the live loop has when it asks for that chunk; the
beat condition ``cond_j`` is the causal tracker's phase / tempo extrapolated to slot j
(:mod:`livedance.model.conditioning`). Bailando predicts upper and lower codes jointly in one step too
(its cross-conditional GPT); here each part has its own output head over the same hidden state.

The GPT sees at most ``context`` = :data:`BASELINE_CONTEXT` slots (5.1 s). Training windows hold at most
``context`` slots; at inference the context slides (minGPT / Bailando crop the sequence to the block
size), so the step output equals the full forward on any sequence of at most ``context`` slots (tested).

:meth:`BaselineGPT.step` has the signature of :meth:`livedance.model.generator.DanceGenerator.step`, so the
step graph (:class:`livedance.engine.step_graph.StepGraph`), the engines and the live loop run it unchanged.
Its state is the window of the last ``context`` inputs ``h`` (recomputed through the GPT each slot: no KV
cache, 32 x d is small), their validity, and the embedding of the last sampled token.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from livedance.errors import ConfigError
from livedance.model.generator import GeneratorConfig
from livedance.model.maskpredict import gumbel_sample
from livedance.model.music_encoder import MusicEncoder

__all__ = ["BaselineGPT", "BASELINE_CONTEXT", "baseline_config"]

#: Attention window of the baseline, token slots (32 x 0.16 s = 5.1 s).
BASELINE_CONTEXT = 32


def baseline_config(**overrides) -> GeneratorConfig:
    """The shipped baseline's sizes: d_model 192, 3 GPT layers, 4 heads (about 1.9 M parameters with a
    ``vq`` tokenizer, close to the livedance generator's 2.0 M), everything else as the generator
    (window W = 8, lag 0.16 s, chunk K = 2). ``overrides``: any :class:`GeneratorConfig` field.

    Raises:
        ConfigError: unknown field or bad value.
    """
    d = dict(d_model=192, n_layers=3, n_heads=4)
    d.update(overrides)
    try:
        return GeneratorConfig(**d)
    except TypeError as e:
        raise ConfigError(f"baseline config: {e}") from None


class _Block(nn.Module):
    """Pre-norm masked multi-head self-attention + MLP (a GPT-2 block). x (B, L, d) -> (B, L, d)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        if d % heads:
            raise ConfigError(f"baseline GPT: d_model={d} is not divisible by n_heads={heads}")
        self.h, self.dh = heads, d // heads
        self.n1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.n2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        """x (B, L, d) float; allowed (B, L, L) bool, True where query i may attend to key j."""
        B, L, d = x.shape
        q, k, v = self.qkv(self.n1(x)).chunk(3, -1)
        q, k, v = (t.reshape(B, L, self.h, self.dh).transpose(1, 2) for t in (q, k, v))
        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh)
        att = att.masked_fill(~allowed.unsqueeze(1), -1e9)
        y = torch.matmul(F.softmax(att, -1), v).transpose(1, 2).reshape(B, L, d)
        x = x + self.o(y)
        return x + self.mlp(self.n2(x))


class BaselineGPT(nn.Module):
    """The Bailando-style baseline (see the module docstring).

    Args:
        config: :class:`GeneratorConfig`; uses ``parts``, ``levels``, ``codebook_size`` (the tokenizer's),
            ``d_model``, ``n_layers`` (GPT blocks), ``n_heads``, ``window``, ``feat_dim``, ``cond_dim``,
            ``chunk``, ``lag_s``, ``temperature``, ``top_k``, ``min_p``. ``mask_iters`` only sizes the (shared) noise input.
        context: attention window in token slots.
    Raises:
        ConfigError: d_model not divisible by n_heads, context < 1.
    """

    def __init__(self, config: GeneratorConfig, context: int = BASELINE_CONTEXT):
        super().__init__()
        self.config = cfg = config
        self.context = int(context)
        if self.context < 1:
            raise ConfigError(f"baseline GPT: context={context}; expected >= 1 token slot")
        d, P, V, C = cfg.d_model, cfg.n_parts, cfg.levels, cfg.codebook_size
        self.music = MusicEncoder(cfg.feat_dim, cfg.cond_dim, d, cfg.window, cfg.n_heads)
        self.code_emb = nn.ModuleList([nn.Embedding(V * C, d) for _ in range(P)])
        for e in self.code_emb:
            nn.init.normal_(e.weight, std=0.02)
        self.bos = nn.Parameter(torch.randn(d) * 0.02)
        self.pos = nn.Parameter(torch.randn(self.context, d) * 0.02)
        self.blocks = nn.ModuleList([_Block(d, cfg.n_heads) for _ in range(cfg.n_layers)])
        self.norm = nn.LayerNorm(d)
        self.heads = nn.Linear(d, P * V * C)

    def num_parameters(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def embed(self, codes: Tensor) -> Tensor:
        """Token embedding: (..., P, V) int64 codes -> (..., d) float32, sum over parts and levels."""
        C = self.config.codebook_size
        offs = torch.arange(codes.shape[-1], device=codes.device) * C
        return sum(self.code_emb[i](codes[..., i, :] + offs).sum(-2) for i in range(codes.shape[-2]))

    def transformer(self, h: Tensor, valid: Tensor) -> Tensor:
        """The GPT over a window of inputs.

        Args:
            h: (B, L, d) float32 inputs ``E(c_{j-1}) + q_j``, oldest first, L <= context.
            valid: (B, L) bool; invalid slots (the empty start of a stream) are never attended to.
                Positions count valid slots from the oldest (0, 1, ...).
        Returns:
            (B, L, d) float32 normalised outputs (garbage at invalid slots).
        """
        L = h.shape[1]
        pos = (torch.cumsum(valid.long(), dim=-1) - 1).clamp_min(0)
        x = h + self.pos[pos]
        i = torch.arange(L, device=h.device)
        allowed = (i[:, None] >= i[None, :]).unsqueeze(0) & valid.unsqueeze(1)
        allowed = allowed | (i[:, None] == i[None, :]).unsqueeze(0)  # (not torch.eye: ONNX Runtime lacks a bool EyeLike)
        for blk in self.blocks:
            x = blk(x, allowed)
        return self.norm(x)

    def logits(self, y: Tensor) -> Tensor:
        """(..., d) GPT outputs -> (..., P, V, C) logits."""
        c = self.config
        return self.heads(y).reshape(*y.shape[:-1], c.n_parts, c.levels, c.codebook_size)

    def teacher_forced_logits(self, codes: Tensor, window: Tensor, cond: Tensor, chunk_offset: int | None = None) -> Tensor:
        """Logits of every slot given the true previous codes (Bailando's training objective).

        Args:
            codes: (B, N, P, V) int64 codes of N consecutive slots, N <= context.
            window: (B, N, W, feat_dim) float32 audio feature windows (slot n: frames <= t_n - lag).
            cond: (B, N, cond_dim) float32 beat conditions of the slots.
            chunk_offset: first chunk start in [0, K) (None: random, as the live loop's chunks fall anywhere);
                slot j's music uses the window of its chunk start, as at inference.
        Returns:
            (B, N, P, V, C) float32 logits; slot j depends on codes < j, windows and conditions <= j only.
        Raises:
            ConfigError: N > context or N < 1.
        """
        cfg = self.config
        B, N = codes.shape[:2]
        if not 1 <= N <= self.context:
            raise ConfigError(f"baseline GPT: training windows of {N} slots; expected 1..{self.context} (its context)")
        K = cfg.chunk
        off = int(torch.randint(0, K, ())) if chunk_offset is None else int(chunk_offset) % K
        j = torch.arange(N, device=codes.device)
        start = torch.where(j < off, torch.zeros_like(j), off + torch.div(j - off, K, rounding_mode="floor") * K)
        q = self.music(window[:, start], cond)  # (B, N, d)
        prev = torch.cat([self.bos.expand(B, 1, -1), self.embed(codes[:, :-1])], dim=1)
        y = self.transformer(prev + q, torch.ones(B, N, dtype=torch.bool, device=codes.device))
        return self.logits(y)

    def forward(self, codes: Tensor, window: Tensor, cond: Tensor, chunk_offset: int | None = None) -> dict[str, Tensor]:
        """Teacher-forced next-token cross-entropy (inputs as :meth:`teacher_forced_logits`, the same as
        :meth:`DanceGenerator.forward`).

        Returns:
            dict of scalars: ``loss`` (mean cross-entropy over slots, parts and levels, nats), ``acc`` (top-1
            accuracy, detached).
        Raises:
            ConfigError: N > context or N < 1.
        """
        lg = self.teacher_forced_logits(codes, window, cond, chunk_offset)
        ce = F.cross_entropy(lg.reshape(-1, self.config.codebook_size), codes.reshape(-1))
        acc = (lg.argmax(-1) == codes).float().mean()
        return {"loss": ce, "acc": acc.detach()}

    # ------------------------------------------------------------------ inference
    def state_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Step state (float32, zeros at a stream start): ``hist`` (B, context, d) last inputs,
        ``hist_valid`` (B, context) 1.0 where filled, ``x_last`` (B, d) embedding of the last token."""
        d = self.config.d_model
        return {"hist": (batch, self.context, d), "hist_valid": (batch, self.context), "x_last": (batch, d)}

    def step(self, hist: Tensor, hist_valid: Tensor, x_last: Tensor, pend_codes: Tensor, pend_window: Tensor,
             pend_cond: Tensor, pend_kind: Tensor, window: Tensor, cond: Tensor, gumbel_base: Tensor,
             gumbel_res: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sample the next K slots one after the other (same contract as :meth:`DanceGenerator.step`).

        Args:
            hist, hist_valid, x_last: the state (:meth:`state_shapes`).
            pend_codes: (B, K, P, V) int64 previous chunk's codes; only the last slot is used (its embedding).
            pend_window, pend_cond: unused (each slot's music is already inside ``hist``).
            pend_kind: (B, K) float; the last slot decides: 2 = BOS (stream start), 1 = token, 0 = keep x_last.
            window: (B, W, feat_dim) audio window of the chunk's first slot (frames <= t_n - lag).
            cond: (B, K, cond_dim) beat conditions of the chunk's slots.
            gumbel_base: (B, mask_iters, K * P, C) noise; iteration 0 samples level 0 (zeros: greedy).
            gumbel_res: (B, K, P, max(V - 1, 1), C) noise of levels 1..V-1.
        Returns:
            ``(codes (B, K, P, V) int64, hist, hist_valid, x_last)``.
        """
        cfg = self.config
        K, P, V = cfg.chunk, cfg.n_parts, cfg.levels
        kind = pend_kind[:, K - 1:K]
        bos = (kind > 1.5).float()
        tok = (kind > 0.5).float() * (1 - bos)
        x_last = x_last * (1 - bos - tok) + self.bos * bos + self.embed(pend_codes[:, K - 1]) * tok
        out = []
        for k in range(K):
            h = x_last + self.music(window, cond[:, k])
            hist = torch.cat([hist[:, 1:], h.unsqueeze(1)], dim=1)
            hist_valid = torch.cat([hist_valid[:, 1:], torch.ones_like(hist_valid[:, :1])], dim=1)
            y = self.transformer(hist, hist_valid > 0.5)
            lg = self.logits(y[:, self.context - 1])  # (B, P, V, C)
            noise = torch.cat([gumbel_base[:, 0, k * P:(k + 1) * P].unsqueeze(2), gumbel_res[:, k]], dim=2)[:, :, :V]
            c, _ = gumbel_sample(lg, noise, cfg.temperature, cfg.top_k, cfg.min_p)  # (B, P, V)
            out.append(c)
            x_last = self.embed(c)
        return torch.stack(out, 1), hist, hist_valid, x_last


# ---------------------------------------------------------------------------------------- weights and runs
#: Stem (in the weights folder) of the baseline's GPT weights.
BASELINE_STEM = "baseline"
#: Stem of the baseline's own ``vq`` tokenizer, shipped beside it (the JSON of the GPT names it).
BASELINE_TOKENIZER_STEM = "baseline_tokenizer"
#: Where ``livedance train tokenizer --variant vq`` writes the baseline's tokenizer by default.
VQ_RUN_TOKENIZER = "runs/baseline-tokenizer-vq/tokenizer"


def load_baseline_graph(weights_dir=None):
    """The baseline's step graph: GPT + its ``vq`` tokenizer (both from ``weights_dir``).

    Args:
        weights_dir: folder holding ``baseline.{safetensors,json}`` and the tokenizer its JSON names
            (``baseline_tokenizer.*``); None: the shipped ``livedance/weights``.
    Returns:
        ``(StepGraph, Representation, baseline json doc)``.
    Raises:
        WeightsError: missing / corrupt files, a JSON that is not a baseline, a tokenizer whose SHA-256 or
            parts / levels / codebook size differ from what the GPT was trained with.
    """
    from pathlib import Path

    from livedance.engine.step_graph import StepGraph
    from livedance.errors import WeightsError
    from livedance.model.checkpoint import WEIGHTS_DIR, weight_paths
    from livedance.model.tokenizer import Tokenizer, require_same_codes
    from livedance.model.train_generator import load_model

    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    stem = folder / BASELINE_STEM
    net, doc = load_model(stem)
    _, src = weight_paths(stem)
    if doc.get("model") != "baseline" or not isinstance(net, BaselineGPT):
        raise WeightsError(f"{src}: model {doc.get('model')!r}, expected 'baseline'")
    tok_stem = folder / str(doc.get("tokenizer", BASELINE_TOKENIZER_STEM))
    tok, rep, tdoc = Tokenizer.load(tok_stem)
    require_same_codes(src, doc.get("tokenizer_sha256"), tdoc, f"{tok_stem}.json")
    c, tc = net.config, tok.config
    if (tuple(c.parts), c.levels, c.codebook_size, c.stride) != (tuple(tc.parts), tc.levels, tc.codebook_size, tok.stride):
        raise WeightsError(f"{src}: parts/levels/codebook/stride {c.parts}/{c.levels}/{c.codebook_size}/{c.stride} do "
                           f"not match {tok_stem}.json's {tc.parts}/{tc.levels}/{tc.codebook_size}/{tok.stride}")
    return StepGraph(net, tok).eval(), rep, doc


def load_baseline(weights_dir=None, backend: str = "onnx", seed: int = 0, greedy: bool = False, threads: int = 1):
    """The baseline as a :class:`~livedance.engine.base.MotionGenerator` (the same causal step path, engine
    and motion decoding as the livedance generator: :class:`~livedance.engine.learned.LearnedGenerator`).

    Args:
        weights_dir: see :func:`load_baseline_graph` (None: shipped weights).
        backend: ``'onnx'`` (default, exported once per weights digest into ``<cache>/engine/``), ``'torch'``
            or ``'tensorrt'``.
        seed, greedy: sampling (Gumbel noise from ``seed``; greedy = argmax).
        threads: CPU threads of the backend.
    Returns:
        ``LearnedGenerator`` (25 fps, 8 frames per step).
    Raises:
        WeightsError: see :func:`load_baseline_graph`. ConfigError: unknown backend.
    """
    from livedance.data.dataset import default_cache_dir
    from livedance.engine.loader import build_generator, graph_key

    graph, rep, doc = load_baseline_graph(weights_dir)
    onnx_path = None
    if backend != "torch":
        onnx_path = default_cache_dir() / "engine" / f"baseline-{graph_key(graph)}.onnx"
    return build_generator(graph, rep, backend, onnx_path, seed, greedy, threads, description=f"baseline ({backend})")


def train_baseline(minutes: float | None = 14.0, steps: int = 3000, seed: int = 0, resume: bool = False, out=None,
                   tokenizer=None, ship: bool = False, batch_size: int = 32, lr: float = 1e-3, data_root=None,
                   progress: bool = True, overrides: dict | None = None) -> dict:
    """Train the baseline GPT on the Tang train split with the generator's data pipeline and trainer.

    Same data pipeline (``prepare_clips``: causal music inputs, same lag), trainer, optimiser, LR schedule and
    wall-clock budget as ``livedance train generator`` (:func:`livedance.model.train_generator.run_training`),
    on windows of ``context`` = 32 slots (batch 32, so a step sees as many slots as the generator's 16 x 64).

    Args:
        minutes: wall-clock budget (the LR anneals over it). steps: step budget. seed, resume, lr, batch_size:
            optimisation. out: run folder (default ``runs/baseline``). tokenizer: stem of the ``vq`` tokenizer
            (default: ``runs/baseline-tokenizer-vq/tokenizer`` when present, else the shipped
            ``baseline_tokenizer``). ship: also write ``livedance/weights/baseline.*``,
            ``baseline_tokenizer.*`` and the model card section. overrides: GeneratorConfig fields.
    Returns:
        the run's result dict (``steps``, ``elapsed_s``, ``stopped_by``, ``final``, ``paths``, ``shipped``).
    Raises:
        WeightsError: no tokenizer. DataError: missing data. ConfigError: bad settings.
    """
    import json
    import sys
    from pathlib import Path

    from livedance.data.dataset import data_description, load_split
    from livedance.model.checkpoint import WEIGHTS_DIR
    from livedance.model.trainer import TrainConfig, Trainer, init_distributed, prepare_run_dir, seed_everything
    from livedance.model.train_generator import (TokenWindowDataset, feature_stats, load_tokenizer_for_training,
                                                 prepare_clips, save_model)

    if tokenizer is None:
        tokenizer = Path(VQ_RUN_TOKENIZER)
        if not tokenizer.with_suffix(".json").is_file():
            tokenizer = WEIGHTS_DIR / BASELINE_TOKENIZER_STEM
    out = prepare_run_dir(out or "runs/baseline", resume)  # a bad --out or --resume fails before the data is read
    dist = init_distributed()
    show = progress and dist.is_main
    tok, rep, tok_sha, _ = load_tokenizer_for_training(Path(tokenizer))
    tc = tok.config
    gcfg = baseline_config(parts=tuple(tc.parts), levels=tc.levels, codebook_size=tc.codebook_size, stride=tok.stride,
                           **(overrides or {}))
    train = load_split("train", data_root=data_root, progress=show)
    data = prepare_clips(train, tok, rep, gcfg.window, gcfg.lag_s)  # the generator's causal inputs, same lag
    ds = TokenWindowDataset(data, BASELINE_CONTEXT, hop=8)
    seed_everything(seed)
    model = BaselineGPT(gcfg)
    model.music.set_stats(*feature_stats(data))
    # the generator's optimiser settings (livedance.model.train_generator.run_training)
    tcfg = TrainConfig(steps=steps, minutes=minutes, batch_size=batch_size, lr=lr, weight_decay=0.01,
                       warmup_steps=min(100, max(steps // 10, 1)), seed=seed, progress=show, log_every=10,
                       ckpt_every=200, ckpt_every_minutes=2.0)
    run_config = {"model": "baseline", "generator": gcfg.to_dict(), "tokens": BASELINE_CONTEXT, "hop": 8,
                  "tokenizer_sha256": tok_sha, "train_clips": [c.name for c in data]}

    def loss_fn(m, b):
        o = m(b["codes"], b["window"], b["cond"])
        return o["loss"], {"acc": o["acc"]}

    from livedance.model.train_generator import upgrade_run_config

    res = Trainer(model, ds, loss_fn, tcfg, out, resume=resume, run_config=run_config, dist=dist,
                  upgrade_run_config=lambda saved: upgrade_run_config(saved, run_options=False)).fit()
    result = {"steps": res.step, "elapsed_s": res.elapsed_s, "stopped_by": res.stopped_by,
              "final": res.history[-1] if res.history else None}
    if not dist.is_main:
        return result
    cmd = (f"livedance train baseline --minutes {minutes:g} --steps {steps} --seed {seed} --batch-size {batch_size} "
           f"--lr {lr:g} --threads {torch.get_num_threads()}") if minutes else " ".join(["livedance", *sys.argv[1:]])
    info = {"command": cmd, "steps": res.step, "elapsed_s": round(res.elapsed_s, 1), "stopped_by": res.stopped_by,
            "train_windows": len(ds), "train_clips": len(data), "world_size": dist.world_size,
            "final_loss": result["final"]}
    extra = {"model": "baseline", "tokenizer": BASELINE_TOKENIZER_STEM, "tokenizer_sha256": tok_sha,
             "training": info, "data": data_description(data_root)}
    model.eval()
    result["paths"] = [str(p) for p in save_model(model, out / BASELINE_STEM, extra)]
    if ship:
        result["shipped"] = ship_baseline(out / BASELINE_STEM, Path(tokenizer))
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def ship_baseline(run_stem, tokenizer_stem, weights_dir=None, command: str | None = None,
                  temperature: float | None = None) -> list[str]:
    """Copy a trained baseline and its tokenizer into ``weights_dir`` (default ``livedance/weights``) as
    ``baseline.*`` + ``baseline_tokenizer.*`` and rewrite the ``Baseline`` section of ``MODEL_CARD.md``.
    ``command``: the training command to record (default: the one in the run's JSON). ``temperature``: the
    sampling temperature to ship (None: the run's; choose it on the val split, as for the generator).

    A tokenizer already in ``weights_dir`` with the run's codes (the same tokenizer, or a decoder fine-tune of it,
    :mod:`livedance.model.decoder_tune`; the run's JSON must record its ``tokenizer_sha256``) is kept, so shipping a
    retrained baseline does not undo a decoder fine-tune, and ``tokenizer_stem`` is then not written (the returned
    paths do not list a tokenizer); otherwise ``tokenizer_stem``'s is written, after checking that the run was
    trained on its codes.

    Raises:
        WeightsError: the run's files are missing or corrupt, or the run was trained on other codes than
            ``tokenizer_stem``'s (checked before anything is written). ConfigError: temperature <= 0.
    """
    from pathlib import Path

    from livedance.model.checkpoint import WEIGHTS_DIR, weight_paths, write_card_section
    from livedance.model.tokenizer import Tokenizer, require_same_codes, same_codes
    from livedance.model.train_generator import load_model, save_model

    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    net, doc = load_model(run_stem)
    if temperature is not None:  # GeneratorConfig rejects a temperature <= 0 (ConfigError)
        from dataclasses import replace

        net.config = replace(net.config, temperature=float(temperature))
    trained_with = doc.get("tokenizer_sha256")
    tpaths: tuple = ()
    shipped = folder / BASELINE_TOKENIZER_STEM
    keep_shipped = False
    if trained_with:  # (a run that records no tokenizer sha256 cannot be matched: the given tokenizer is written)
        try:
            tok, rep, tdoc = Tokenizer.load(shipped)
            keep_shipped = same_codes(trained_with, tdoc)
        except Exception:  # noqa: BLE001 - none shipped (or unreadable): write the given one
            keep_shipped = False
    if not keep_shipped:
        tok, rep, tdoc = Tokenizer.load(tokenizer_stem)
        require_same_codes(weight_paths(run_stem)[1], trained_with, tdoc, str(weight_paths(tokenizer_stem)[1]))
        keep = {k: v for k, v in tdoc.items() if k not in ("format", "format_version", "config", "tensors", "sha256",
                                                              "representation", "decoder_context_tokens")}
        tpaths = tok.save(shipped, rep, keep)
    extra = {k: v for k, v in doc.items() if k not in ("format", "format_version", "config", "tensors", "sha256")}
    extra["tokenizer"] = BASELINE_TOKENIZER_STEM
    if command:
        extra["training"] = dict(extra.get("training", {}), command=command)
    gpaths = save_model(net, folder / BASELINE_STEM, extra)
    if weights_dir is None:
        write_card_section(folder / "MODEL_CARD.md", "Baseline", _card(net, doc, tok, tdoc))
    return [str(p) for p in (*gpaths, *tpaths)]


def _card(net: "BaselineGPT", doc: dict, tok, tdoc: dict) -> str:
    from livedance.data.dataset import card_data_line

    c, tr, ttr = net.config, doc.get("training", {}), tdoc.get("training", {})
    m = tdoc.get("metrics", {}).get("test", {})
    mp = (f" Test-split reconstruction MPJPE lower {m['lower']:.1f} mm, upper {m['upper']:.1f} mm, all {m['all']:.1f} mm."
          if m else "")
    fl = tr.get("final_loss") or {}
    windows = f",\n  {tr.get('train_windows', '?')} windows of {net.context} slots"
    return f"""Files: `baseline.safetensors` + `baseline.json` (GPT, format `livedance.generator`, `"model": "baseline"`)
and `baseline_tokenizer.safetensors` + `.json` (its VQ-VAE). Load with `load_baseline()`
(livedance.model.baseline_gpt); `livedance generate SONG -o OUT.npz --model baseline` runs it.

- Model: Bailando-style (Siyao et al. 2022, without actor-critic fine-tuning): a causal temporal-conv VQ-VAE,
  tokenizer variant `{tok.config.variant}` (one {tok.config.codebook_size}-code codebook per part, parts
  {', '.join(tok.config.parts)}, no chaining), and a causal GPT ({c.n_layers} layers, d = {c.d_model}, {c.n_heads} heads,
  context {net.context} slots = {net.context * c.token_s:.1f} s, {net.num_parameters():,} parameters) predicting each
  slot's codes from the previous codes and the same causal music inputs as the livedance generator (audio
  window W = {c.window} frames up to t - {c.lag_s} s, causal beat tracker phase / tempo).
{card_data_line(doc.get("data"), tr.get("train_clips", "?"), windows)}.
- Training (CPU): tokenizer `{ttr.get('command', '?')}`, {ttr.get('steps', '?')} steps in
  {ttr.get('elapsed_s', 0) / 60:.1f} min.{mp} GPT `{tr.get('command', '?')}`, {tr.get('steps', '?')} steps in
  {tr.get('elapsed_s', 0) / 60:.1f} min (stopped by {tr.get('stopped_by', '?')}); last logged loss
  {fl.get('loss', float('nan')):.3f} nats, accuracy {fl.get('acc', float('nan')):.3f}. Sampling temperature
  {c.temperature:g} (chosen on the val split like the generator's, docs/model.md).
- Purpose: the baseline row of `livedance eval`; not meant for shows.
"""
