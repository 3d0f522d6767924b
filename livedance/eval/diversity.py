"""Diversity (Divk, Divg): mean pairwise L2 distance within a set of feature vectors.

Bailando's ``calculate_avg_distance`` (``utils/metrics_new.py``): the mean of |f_i - f_j| over all
unordered pairs i < j, computed on features already z-normalised with the ground-truth statistics
(:func:`livedance.eval.fid.normalize_with_reference`).
"""

from __future__ import annotations

import numpy as np

from livedance.errors import DataError


def average_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of rows of ``features``.

    Args:
        features: (N, D) feature vectors, N >= 2.

    Returns:
        sum_{i<j} |f_i - f_j|_2 / (N (N - 1) / 2), in the units of the features.

    Raises:
        DataError: not 2-D, fewer than 2 rows, or NaN/inf.
    """
    from scipy.spatial.distance import pdist

    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise DataError(f"diversity needs a (N >= 2, D) feature matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError("diversity: features hold NaN or inf")
    return float(pdist(arr, metric="euclidean").mean())
