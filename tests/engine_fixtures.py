"""Small engine inputs shared by the pose-guard and style-prior tests (not a test module: pytest does not collect it).

* :func:`music_contexts`: ``n`` seeded :class:`~livedance.engine.base.MusicContext` steps, 14 random feature frames
  each at 43.07 fps, 118 BPM, 320 ms apart from 3 s on.
* :class:`PoisonBackend`: a backend wrapper that poisons chosen runs' frames or states.
* :func:`tiny_step_graph`: a randomly initialised, seeded step graph (tokenizer + generator, d_model 32) and the
  default :class:`~livedance.model.representation.Representation`, small enough for the torch backend in a test.
"""

from __future__ import annotations

import numpy as np
import torch

from livedance.engine.base import MusicContext


def music_contexts(n: int):
    """Yield ``n`` music contexts (see the module docstring); the same sequence on every call."""
    rng = np.random.default_rng(0)
    t = 3.0
    for _ in range(n):
        f = rng.normal(size=(14, 180)).astype(np.float32)
        yield MusicContext(f, t - 0.2 + np.arange(14) / 43.07, 118.0, float(rng.random()), 0.9, t)
        t += 0.32


def tiny_step_graph(codebook_size: int = 32, **generator_options):
    """``(StepGraph in eval mode, Representation)``; ``generator_options`` go to ``GeneratorConfig``."""
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator, GeneratorConfig
    from livedance.model.representation import Representation
    from livedance.model.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(codebook_size=codebook_size, latent_dim=16, width=32, kmeans_init=False)).eval()
    cfg = GeneratorConfig(d_model=32, n_layers=2, chunk_layers=1, n_heads=2, codebook_size=codebook_size, window=4,
                          d_state=4, **generator_options)
    return StepGraph(DanceGenerator(cfg).eval(), tok).eval(), Representation()


class PoisonBackend:
    """Wraps a backend and poisons the chosen runs' frames (NaN) or recurrent states (non-finite); runs count from 0."""

    def __init__(self, inner, bad_frames=(), bad_state=()):
        self.inner, self.bad_frames, self.bad_state, self.n = inner, set(bad_frames), set(bad_state), 0

    def run(self, inputs):
        out = self.inner.run(inputs)
        if self.n in self.bad_frames:
            out["frames"] = out["frames"].copy()
            out["frames"][0, 2:5] = np.nan
        if self.n in self.bad_state:
            k = next(n for n in out if n.endswith("_out"))
            out[k] = out[k] * np.inf
        self.n += 1
        return out
