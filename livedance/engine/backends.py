"""Execution backends of the step graph: torch eager, ONNX Runtime (CPU, the default), TensorRT (GPU hosts).

Each backend has ``run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]`` over the names of
:class:`~livedance.engine.step_graph.StepGraph` (batch 1, fixed shapes) and a ``name``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from livedance.errors import ConfigError, DeviceNotFoundError, WeightsError

__all__ = ["TorchBackend", "OnnxBackend", "TensorRTBackend", "export_onnx", "BACKENDS", "ONNX_OPSET", "plan_path"]

#: Backend names accepted by :func:`livedance.engine.load_generator`.
BACKENDS = ("onnx", "torch", "tensorrt")
#: ONNX opset of the exported step graph (part of the cache key, :func:`livedance.engine.loader.graph_key`).
ONNX_OPSET = 17


class TorchBackend:
    """Runs the :class:`StepGraph` in torch eager mode (CPU, or CUDA where mamba-ssm's kernels then apply).

    On CUDA, ``cuda_graph=True`` captures the whole step once (on the first :meth:`run`, after three
    warm-up calls on a side stream) into a ``torch.cuda.CUDAGraph`` and replays it: one launch per step
    instead of a few hundred, which is what batch-1 latency on a GPU is bound by (docs/gpu.md has the
    figures). The step graph is functional with fixed shapes (every state is an input), so the graph
    needs no invalidation; each run copies the inputs into the captured buffers and the outputs out.

    Side effects on the caller's objects: ``graph`` itself is put in eval mode and moved to ``device`` in place
    (``graph.eval().to(device)``: no copy is made, so a graph moved to CUDA here is on CUDA for the caller too);
    ``threads`` sets torch's intra-op threads for the whole process (``torch.set_num_threads``), not for this
    backend only.

    Args:
        graph: the step graph (put in eval mode and moved to ``device``, in place).
        device: torch device string.
        threads: torch intra-op threads, process-wide (None: leave as is).
        cuda_graph: capture and replay a CUDA graph (CUDA devices only).
        allow_tf32: let cuDNN run the graph's convolutions in TF32 on CUDA (torch's default is to allow it).
            Off by default: the step is launch-bound, TF32 buys it no time, and with it the CUDA step drifted
            from the CPU step by 1.8e-4 in 20 steps on an H100, beyond the 1e-4 agreement the engines keep
            (docs/gpu.md, runs 3-5). Set for the duration of each call and of the capture only (through
            ``torch.backends.cudnn.conv.fp32_precision`` where torch has it, else ``cudnn.allow_tf32``), then
            restored; the flag is process-wide while a call runs (and, torch's own rule once its per-operator
            flag is set, reading the legacy ``cudnn.allow_tf32`` meanwhile raises). CPU backends leave the flags
            alone.
    Raises:
        ConfigError: ``cuda_graph`` on a device that is not CUDA. DeviceNotFoundError: a CUDA device asked
            for where torch sees none.
    """

    name = "torch"

    def __init__(self, graph, device: str = "cpu", threads: int | None = 1, cuda_graph: bool = False,
                 allow_tf32: bool = False):
        import torch

        if cuda_graph and not str(device).startswith("cuda"):
            raise ConfigError(f"torch backend: cuda_graph=True needs a CUDA device, got device={device!r}")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise DeviceNotFoundError(f"torch backend: device {device!r} asked for, but this torch ({torch.__version__}) "
                                      "sees no CUDA device; use device 'cpu' (docs/gpu.md)")
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.graph = graph.eval().to(device)
        self.device = device
        self.cuda_graph = bool(cuda_graph)
        self.names = graph.input_names()
        self.out_names = graph.output_names()
        self._captured = None  # (CUDAGraph, static inputs, static outputs) once captured
        self.allow_tf32 = bool(allow_tf32)

    @contextlib.contextmanager
    def _cudnn(self):
        """Context: cuDNN's convolutions in TF32 or not as this backend asks (``allow_tf32``), on CUDA only.

        Only the one flag changes. torch >= 2.9 has per-operator precision flags and raises when the legacy
        ``cudnn.allow_tf32`` is read after the two kinds were mixed, so the new flag is used where it exists.
        """
        cudnn = self.torch.backends.cudnn
        conv = getattr(cudnn, "conv", None)
        if not str(self.device).startswith("cuda"):
            yield
        elif conv is not None and hasattr(conv, "fp32_precision"):
            before = conv.fp32_precision
            conv.fp32_precision = "tf32" if self.allow_tf32 else "ieee"
            try:
                yield
            finally:
                conv.fp32_precision = before
        else:  # older torch: the legacy flag
            before = cudnn.allow_tf32
            cudnn.allow_tf32 = self.allow_tf32
            try:
                yield
            finally:
                cudnn.allow_tf32 = before

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step: named numpy inputs -> named numpy outputs."""
        t = self.torch
        if self.cuda_graph:
            return self._replay(inputs)
        with t.inference_mode(), self._cudnn():
            args = [t.from_numpy(np.ascontiguousarray(inputs[n])).to(self.device) for n in self.names]
            outs = self.graph(*args)
        return {n: o.detach().cpu().numpy() for n, o in zip(self.out_names, outs)}

    def _capture(self, inputs: dict[str, np.ndarray]) -> None:
        t = self.torch
        with t.cuda.device(t.device(self.device)):  # streams and the graph on the backend's own device
            static = [t.from_numpy(np.ascontiguousarray(inputs[n])).to(self.device) for n in self.names]
            side = t.cuda.Stream()
            side.wait_stream(t.cuda.current_stream())
            with t.inference_mode(), self._cudnn(), t.cuda.stream(side):
                for _ in range(3):  # kernel autotuning, Triton compiles and allocator pools settle outside the capture
                    self.graph(*static)
            t.cuda.current_stream().wait_stream(side)
            cuda_graph = t.cuda.CUDAGraph()
            with t.inference_mode(), self._cudnn(), t.cuda.graph(cuda_graph):
                outs = self.graph(*static)
        self._captured = (cuda_graph, static, outs)

    def _replay(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = self.torch
        if self._captured is None:
            self._capture(inputs)
        cuda_graph, static, outs = self._captured
        with t.inference_mode(), t.cuda.device(t.device(self.device)):
            for buf, n in zip(static, self.names):
                buf.copy_(t.from_numpy(np.ascontiguousarray(inputs[n])))
            cuda_graph.replay()
            return {n: o.cpu().numpy() for n, o in zip(self.out_names, outs)}


def export_onnx(graph, path: str | Path, opset: int = ONNX_OPSET) -> Path:
    """Export the step graph (batch 1, fixed shapes) to ONNX with the TorchScript exporter.

    Returns:
        the path written (atomically).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = graph.eval()
    zeros = graph.zero_inputs(1)
    args = tuple(zeros[n] for n in graph.input_names())
    import warnings

    from livedance.atomic import atomic_target

    with atomic_target(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / constant-folding notes about the fixed-shape graph
        torch.onnx.export(graph, args, str(tmp), input_names=graph.input_names(), output_names=graph.output_names(),
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    return path


class OnnxBackend:
    """Runs an exported step graph with ONNX Runtime on the CPU (one intra-op thread by default).

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads.
    Raises:
        WeightsError: missing or unloadable ONNX file.
    """

    name = "onnx"

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: ONNX step graph not found (export it with `livedance export -o {path}`)")
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise WeightsError(f"{path}: ONNX Runtime cannot load the step graph ({type(e).__name__}: {e})") from None
        self.names = [i.name for i in self.session.get_inputs()]
        self.out_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step: named numpy inputs -> named numpy outputs."""
        outs = self.session.run(self.out_names, {n: inputs[n] for n in self.names})
        return dict(zip(self.out_names, outs))


def plan_path(onnx_path: str | Path, fp16: bool, trt_version: str) -> Path:
    """The default cache file of a TensorRT engine built from ``onnx_path``: ``<onnx stem>.trt<version>.<fp16|fp32>.plan``
    beside it, so a plan built with another TensorRT or the other precision is never picked up.

    Args:
        onnx_path: the exported step graph. fp16: built with FP16 kernels. trt_version: ``tensorrt.__version__``
            (characters other than letters, digits, ``.``, ``-`` and ``_`` become ``_``).
    Returns:
        the path (not created).
    """
    import re

    onnx_path = Path(onnx_path)
    ver = re.sub(r"[^A-Za-z0-9._-]", "_", str(trt_version))
    return onnx_path.with_name(f"{onnx_path.stem}.trt{ver}.{'fp16' if fp16 else 'fp32'}.plan")


class TensorRTBackend:
    """Builds a TensorRT engine from the same ONNX step graph and runs it (GPU hosts only; see docs/gpu.md).

    ``tensorrt`` (and a CUDA device) is imported only here; on machines without it construction raises
    :class:`DeviceNotFoundError`. Not run: this project's machines have no TensorRT, so nothing here has run on
    a GPU (only the cache naming and the refusal of a plan that does not deserialize are tested, with a stand-in
    ``tensorrt``). The serialised engine is cached (written atomically, :func:`livedance.atomic.atomic_target`);
    a cached plan that TensorRT cannot deserialize is rebuilt once from the ONNX file.

    Args:
        onnx_path: the exported step graph.
        engine_path: where to cache the serialised engine (default: :func:`plan_path`, which names the TensorRT
            version and the precision; a path given here is used as it is, matching it is the caller's job).
        fp16: build with FP16 kernels.
    Raises:
        DeviceNotFoundError: no tensorrt or no CUDA device. WeightsError: the ONNX file is missing or does not
            parse, the build fails, or a freshly built plan does not deserialize (the message names the plan file).
    """

    name = "tensorrt"

    def __init__(self, onnx_path: str | Path, engine_path: str | Path | None = None, fp16: bool = False):
        try:
            import tensorrt as trt  # noqa: F401
            import torch
        except ImportError as e:
            raise DeviceNotFoundError(f"TensorRT backend: cannot import tensorrt ({e}); see docs/gpu.md") from None
        if not torch.cuda.is_available():
            raise DeviceNotFoundError("TensorRT backend: no CUDA device")
        self.trt, self.torch = trt, torch
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise WeightsError(f"{onnx_path}: ONNX step graph not found")
        engine_path = Path(engine_path) if engine_path else plan_path(onnx_path, fp16, getattr(trt, "__version__", "x"))
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = None
        if engine_path.is_file():  # a cached plan; one that does not deserialize (stale, damaged) is rebuilt once
            engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            data = self._build(trt, logger, onnx_path, fp16)
            from livedance.atomic import atomic_target

            with atomic_target(engine_path) as tmp:
                tmp.write_bytes(data)
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise WeightsError(f"{engine_path}: TensorRT cannot deserialize the engine it just built from "
                                   f"{onnx_path}; delete {engine_path} and check the TensorRT install (docs/gpu.md)")
        self.engine = engine
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.stream = torch.cuda.Stream()

    @staticmethod
    def _build(trt, logger, onnx_path: Path, fp16: bool) -> bytes:
        """Serialised engine of the ONNX step graph (WeightsError when it does not parse or build)."""
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise WeightsError(f"{onnx_path}: TensorRT cannot parse the step graph: {errs}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        data = builder.build_serialized_network(network, config)
        if data is None:
            raise WeightsError(f"{onnx_path}: TensorRT engine build failed")
        return bytes(data)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step on the GPU (inputs copied in, outputs copied out).

        The inputs are copied on the current CUDA stream; the engine's stream waits for that stream before it
        runs (``wait_stream``), and the host waits for the engine's stream before the outputs are read. Not run
        (no TensorRT here).
        """
        trt, torch = self.trt, self.torch
        bufs = {}
        for n in self.names:
            shape = tuple(self.engine.get_tensor_shape(n))
            dtype = torch.from_numpy(np.zeros(0, dtype=trt.nptype(self.engine.get_tensor_dtype(n)))).dtype
            if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT:
                bufs[n] = torch.from_numpy(np.ascontiguousarray(inputs[n])).to("cuda", dtype)
            else:
                bufs[n] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(n, bufs[n].data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())  # the input copies above ran on the current stream
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return {n: bufs[n].cpu().numpy() for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT}


def check_backend(name: str) -> str:
    """Validate a backend name (ConfigError naming the choices)."""
    if name not in BACKENDS:
        raise ConfigError(f"engine backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return name
