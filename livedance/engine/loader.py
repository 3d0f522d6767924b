"""Build a :class:`~livedance.engine.learned.LearnedGenerator` from weights (shipped or given).

Files: ``<stem>.safetensors`` + ``<stem>.json`` (format ``livedance.generator``, written by
:func:`livedance.model.train_generator.save_model`), and the tokenizer they were trained with
(``livedance/weights/tokenizer.*``; the generator's JSON records its SHA-256 and a different tokenizer
is refused). The ONNX backend exports the step graph once per graph key (:func:`graph_key`: weights, configs
and the versions of the code that exports them) into ``<cache>/engine/<model>-<key>.onnx``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from livedance.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from livedance.engine.pose_guard import PoseGuardConfig

__all__ = ["load_generator", "build_generator", "load_step_graph", "default_weights", "graph_key", "make_pose_guard",
           "load_style_prior"]


def default_weights(model: str = "livedance") -> Path:
    """Stem of the shipped weights: ``livedance/weights/generator`` or ``.../baseline``."""
    from livedance.model.checkpoint import WEIGHTS_DIR

    return WEIGHTS_DIR / ("generator" if model == "livedance" else "baseline")


def load_step_graph(weights: str | Path | None = None, model: str = "livedance", tokenizer: str | Path | None = None):
    """Load generator + tokenizer weights into a :class:`~livedance.engine.step_graph.StepGraph`.

    Args:
        weights: generator weights stem or file (None: the shipped ``model``).
        model: ``'livedance'`` or ``'baseline'`` (the baseline, without ``tokenizer``, goes through
            :func:`livedance.model.baseline_gpt.load_baseline_graph`: its folder and its own vq tokenizer).
        tokenizer: tokenizer stem (None: the shipped one).
    Returns:
        ``(graph, representation, generator json doc)``.
    Raises:
        WeightsError: missing / corrupt / mismatched files (the message names the file and the mismatch).
    """
    from livedance.engine.step_graph import StepGraph
    from livedance.model.tokenizer import Tokenizer, require_same_codes
    from livedance.model.train_generator import load_model

    if model == "baseline" and tokenizer is None:  # the baseline ships with its own vq tokenizer
        from livedance.model.baseline_gpt import load_baseline_graph

        folder = None if weights is None else (Path(weights) if Path(weights).is_dir() else Path(weights).parent)
        return load_baseline_graph(folder)
    from livedance.model.checkpoint import weight_paths

    stem = Path(weights) if weights is not None else default_weights(model)
    _, js = weight_paths(stem)
    net, doc = load_model(stem)
    tok, rep, tdoc = Tokenizer.load(tokenizer)
    require_same_codes(js, doc.get("tokenizer_sha256"), tdoc)
    tc = tok.config
    c = net.config
    if (tuple(c.parts), c.levels, c.codebook_size, c.stride) != (tuple(tc.parts), tc.levels, tc.codebook_size, tok.stride):
        raise WeightsError(
            f"{js}: generator parts/levels/codebook/stride {c.parts}/{c.levels}/{c.codebook_size}/"
            f"{c.stride} do not match the tokenizer's {tc.parts}/{tc.levels}/{tc.codebook_size}/{tok.stride}"
        )
    return StepGraph(net, tok).eval(), rep, doc


def graph_key(graph, opset: int | None = None) -> str:
    """Cache key of an exported step graph: the first 20 hex digits of the sha256 over the generator's
    config (every field that shapes the graph: temperature, top-k, min-p, chunk, mask iterations, ...; not
    ``residual_temperature``, which scales the noise outside the graph, nor the training-only ``dropout`` and
    ``music_dropout``; the null music vector that ``music_dropout`` adds is among the tensors),
    the tokenizer's config, all tensors (the generator's and the tokenizer's), and the code that turns them
    into a graph: :data:`~livedance.engine.step_graph.GRAPH_FORMAT`, ``livedance.__version__``,
    ``torch.__version__`` and the ONNX opset. So a cached ONNX file is reused only for the same graph made by
    the same exporter.

    Args:
        graph: :class:`~livedance.engine.step_graph.StepGraph` (``config``, ``tokenizer``, ``state_dict()``).
        opset: the ONNX opset it is exported with (None: :data:`~livedance.engine.backends.ONNX_OPSET`).
    Returns:
        20 lowercase hex digits.
    """
    import dataclasses
    import hashlib
    import json

    import torch

    import livedance
    from livedance.engine import backends, step_graph

    cfg = {k: v for k, v in graph.config.to_dict().items() if k not in ("residual_temperature", "dropout", "music_dropout")}
    tok = getattr(graph, "tokenizer", None)
    tcfg = dataclasses.asdict(tok.config) if tok is not None and dataclasses.is_dataclass(tok.config) else None
    code = {"graph_format": step_graph.GRAPH_FORMAT, "livedance": livedance.__version__, "torch": str(torch.__version__),
            "opset": int(backends.ONNX_OPSET if opset is None else opset)}
    h = hashlib.sha256(json.dumps({"generator": cfg, "tokenizer": tcfg, "code": code}, sort_keys=True,
                                  default=str).encode())
    for name, t in sorted(graph.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def build_generator(graph, representation, backend: str = "onnx", onnx_path: str | Path | None = None,
                    seed: int = 0, greedy: bool = False, threads: int = 1, description: str = "", device: str = "cpu",
                    cuda_graph: bool = False, pose_guard=None, style_prior=None):
    """Wrap a step graph in a backend and a :class:`LearnedGenerator`.

    Args:
        graph: :class:`StepGraph`. representation: the tokenizer's Representation.
        backend: ``'onnx'`` (default), ``'torch'`` or ``'tensorrt'``.
        onnx_path: the exported graph for onnx/tensorrt (exported here when missing, and exported again
            once when the file exists but does not load, e.g. a truncated cache entry).
        seed, greedy: sampling (see :class:`LearnedGenerator`).
        threads: CPU threads of the backend.
        device: torch device of the ``torch`` backend (``"cuda"`` uses mamba-ssm's kernels when importable).
        cuda_graph: on CUDA, capture the step once and replay it (:class:`TorchBackend`; docs/gpu.md).
        pose_guard: a :class:`~livedance.engine.pose_guard.PoseGuard` for the generator (None: off).
        style_prior: a :class:`~livedance.engine.style_prior.StylePrior` with this model's codes (None: no styles).
    Returns:
        a :class:`LearnedGenerator`, warmed up (:meth:`LearnedGenerator.warm_up`: one step on zero inputs,
        state untouched).
    Raises:
        ConfigError: an unknown backend or device (cpu or cuda[:N]), or ``device`` / ``cuda_graph`` with a backend
            other than torch.
        WeightsError: the ONNX file cannot be written or loaded. DeviceNotFoundError: no CUDA / no tensorrt.
    """
    from livedance.engine.backends import OnnxBackend, TensorRTBackend, TorchBackend, check_backend, export_onnx
    from livedance.engine.learned import LearnedGenerator

    check_backend(backend)
    if not re.fullmatch(r"cpu|cuda(:\d+)?", str(device)):
        raise ConfigError(f"--device {device!r}: expected cpu or cuda[:N], the torch device of --backend torch")
    if backend != "torch" and (str(device) != "cpu" or cuda_graph):
        raise ConfigError(f"device {device!r} / cuda_graph apply to the torch backend, not {backend!r}")
    if backend == "torch":
        be = TorchBackend(graph, device=device, threads=threads, cuda_graph=cuda_graph)
    else:
        if onnx_path is None:
            raise WeightsError("the onnx/tensorrt backends need an ONNX file path")
        onnx_path = Path(onnx_path)

        def open_backend():
            return OnnxBackend(onnx_path, threads=threads) if backend == "onnx" else TensorRTBackend(onnx_path)

        cached = onnx_path.is_file()
        if not cached:
            export_onnx(graph, onnx_path)
        try:
            be = open_backend()
        except WeightsError:
            if not cached:
                raise
            # A cached file that no longer loads (truncated, or written by an older exporter): export it
            # again once; a second failure is reported.
            export_onnx(graph, onnx_path)
            be = open_backend()
    gen = LearnedGenerator(be, graph.input_shapes(1), graph.config, representation, seed=seed, greedy=greedy,
                           description=description or backend, pose_guard=pose_guard, style_prior=style_prior)
    gen.warm_up()  # one-time costs (first-run allocations, kernel compiles, CUDA-graph capture) before any show
    return gen


def load_generator(model: str | Path | None = None, backend: str = "onnx", seed: int = 0, greedy: bool = False,
                   kind: str = "livedance", threads: int = 1, tokenizer: str | Path | None = None, device: str = "cpu",
                   temperature: float | None = None, residual_temperature: float | None = None,
                   top_k: int | None = None, min_p: float | None = None, cuda_graph: bool = False,
                   pose_guard: "PoseGuardConfig | None" = None, pose_prior: str | Path | None = None,
                   guidance: float | None = None, style: str | int | None = None, style_strength: float = 1.0,
                   style_prior: str | Path | None = None):
    """The learned dancer, ready for the live loop (``livedance.live.setup.load_generator`` calls this).

    Args:
        model: weights stem / file (None: the shipped ``kind`` weights).
        backend: ``'onnx'`` (default, CPU), ``'torch'`` or ``'tensorrt'``.
        seed, greedy: sampling. kind: ``'livedance'`` or ``'baseline'`` for the default weights.
        threads: CPU threads of the backend. tokenizer: tokenizer stem (None: the shipped one).
        device: torch device for the ``torch`` backend (``"cuda"``: mamba-ssm's kernels when importable).
        cuda_graph: with ``device="cuda"``, replay the step as one captured CUDA graph (docs/gpu.md).
        temperature: sampling temperature (None: the trained config's, 1.0); baked into the exported graph.
        residual_temperature: temperature of the residual levels (None: the weights' config; 0: argmax);
            applied by scaling the residual Gumbel noise, so the exported graph does not change.
        top_k: top-k sampling (None: the weights' config; 0: all codes); baked into the exported graph.
        min_p: min-p sampling (None: the weights' config; 0: off); baked into the exported graph.
        pose_guard: settings of the pose guard (:mod:`livedance.engine.pose_guard`; None: the defaults, off;
            ``PoseGuardConfig(enabled=True)``: on).
        pose_prior: the guard's prior (None: the shipped ``livedance/weights/pose_prior.json``).
        guidance: classifier-free guidance scale of the base level (None: the weights' config; 1: off; any other
            value needs weights trained with ``music_dropout``, else ConfigError); baked into the exported graph.
        style: dance in this training style from the first step (:meth:`LearnedGenerator.set_style`; None: free).
        style_strength: its lambda (>= 0; 1 = the prior-shift correction).
        style_prior: the style prior's stem (None: the shipped ``livedance/weights/style_prior.*``). Without a
            ``style`` or ``style_prior``, a shipped prior that is missing or has other codes (the baseline's
            tokenizer) just leaves the generator without styles; asked for, it is an error.
    Returns:
        :class:`~livedance.engine.learned.LearnedGenerator`.
    Raises:
        WeightsError: missing / corrupt / mismatched weights (also a style prior asked for).
        ConfigError: ``cuda_graph`` off CUDA; an unknown style or bad strength.
    """
    from livedance.data.dataset import default_cache_dir

    graph, rep, doc = load_step_graph(model, kind, tokenizer)
    overrides: dict = {k: float(v) for k, v in (("temperature", temperature), ("residual_temperature", residual_temperature))
                       if v is not None}
    if top_k is not None:
        overrides["top_k"] = top_k
    if min_p is not None:
        overrides["min_p"] = float(min_p)
    if guidance is not None:
        overrides["guidance"] = float(guidance)
    if overrides:  # GeneratorConfig validates them (ConfigError)
        from dataclasses import replace

        graph.model.config = graph.config = replace(graph.config, **overrides)
    onnx_path = None
    if backend != "torch":
        onnx_path = default_cache_dir() / "engine" / f"{doc.get('model', kind)}-{graph_key(graph)}.onnx"
    guard = make_pose_guard(rep, graph.config.fps, pose_guard, pose_prior)
    from livedance.engine.style_prior import clears_style

    wants = not clears_style(style)
    if wants and style_prior is None and kind == "baseline" and model is None:
        raise ConfigError(f"--style {style}: the styles are a prior on the livedance model's codes; the baseline's "
                          "tokenizer has other codes (use --model livedance, or leave out --style)")
    prior = load_style_prior(doc, f"{doc.get('model', kind)} weights", style_prior,
                             required=wants or style_prior is not None)
    if wants and prior is not None:
        prior.index(style)  # an unknown style fails before the export and warm-up
    gen = build_generator(graph, rep, backend, onnx_path, seed, greedy, threads,
                          description=f"{doc.get('model', kind)} ({backend})", device=device,
                          cuda_graph=cuda_graph, pose_guard=guard, style_prior=prior)
    gen.set_style(style, style_strength)
    return gen


def load_style_prior(generator_doc: dict, what: str, stem: str | Path | None = None, required: bool = False):
    """The style prior for a generator, or None.

    Args:
        generator_doc: the generator's JSON (its ``tokenizer_sha256`` must be in the prior's code lineage).
        what: how errors name the generator.
        stem: the prior (None: the shipped one).
        required: raise when the prior is missing, corrupt or has other codes; else return None then.
    Returns:
        :class:`~livedance.engine.style_prior.StylePrior` or None.
    Raises:
        WeightsError: only when ``required`` (otherwise a missing, corrupt or mismatched prior gives None).
    """
    from livedance.engine.style_prior import StylePrior

    try:
        prior = StylePrior.load(stem)
        prior.check_codes(generator_doc.get("tokenizer_sha256"), what)
    except WeightsError:
        if required:
            raise
        return None
    return prior


def make_pose_guard(representation, fps: float, config=None, prior: str | Path | None = None):
    """The :class:`~livedance.engine.pose_guard.PoseGuard` for a model (None when ``config.enabled`` is False).

    Args:
        representation: the tokenizer's Representation (its ``rest_offsets`` (22, 3) metres).
        fps: the model's frame rate. config: :class:`PoseGuardConfig` (None: defaults).
        prior: prior JSON path (None: :func:`~livedance.engine.pose_guard.default_prior_path`).
    Raises:
        WeightsError: the prior (given, or the shipped one) is missing or malformed: a guard that was asked for
            is never silently dropped. ConfigError: bad config.
    """
    from livedance.engine.pose_guard import PoseGuard, PoseGuardConfig, PosePrior, default_prior_path

    config = config or PoseGuardConfig()
    config.validate()
    if not config.enabled:
        return None
    return PoseGuard(PosePrior.load(prior if prior is not None else default_prior_path()),
                     representation.rest_offsets, fps, config)
