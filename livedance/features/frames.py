"""FeatureFrames: a run of consecutive feature frames with their indices and stream-clock times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureFrames:
    """Feature frames ``k0 .. k0 + F - 1`` of one stream.

    Attributes:
        values: (F, D) float32 feature vectors; the blocks are named by ``FeatureConfig.slices``.
        frame_index: (F,) int64 frame numbers k on the stream (0 = the first frame).
        times_s: (F,) float64 time of each frame in seconds on the stream clock (sample 0 = 0 s):
            the END of the frame's analysis window, ``(k + 1) * hop / sr``.
    """

    values: np.ndarray
    frame_index: np.ndarray
    times_s: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @staticmethod
    def empty(feature_dim: int) -> "FeatureFrames":
        """No frames: values (0, feature_dim) float32, empty index and times."""
        return FeatureFrames(
            np.zeros((0, feature_dim), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float64)
        )

    @staticmethod
    def concat(parts: Sequence["FeatureFrames"]) -> "FeatureFrames":
        """Join consecutive runs (e.g. the results of successive ``push`` calls) along frames.

        Raises:
            ValueError: if ``parts`` is empty or the feature widths differ.
        """
        if not parts:
            raise ValueError("FeatureFrames.concat needs at least one part")
        dims = {p.values.shape[1] for p in parts}
        if len(dims) != 1:
            raise ValueError(f"FeatureFrames.concat: parts have different feature widths {sorted(dims)}")
        return FeatureFrames(
            np.concatenate([p.values for p in parts], axis=0),
            np.concatenate([p.frame_index for p in parts]),
            np.concatenate([p.times_s for p in parts]),
        )
