"""livedance.engine: the learned dancer behind the live loop's step interface (:mod:`livedance.engine.base`).

- :class:`~livedance.engine.step_graph.StepGraph`: generator step + token decode as one tensor function.
- backends (:mod:`livedance.engine.backends`): torch eager, ONNX Runtime (CPU default), TensorRT (GPU hosts).
- :class:`~livedance.engine.learned.LearnedGenerator`: a ``MotionGenerator`` over any backend.
- :func:`load_generator`: from the shipped (or given) weights. See docs/model.md.
"""

from livedance.engine.loader import build_generator, load_generator, load_step_graph

__all__ = ["build_generator", "load_generator", "load_step_graph"]
