"""Fréchet distance between feature sets (FIDk, FIDg) and the reference normalisation.

Follows Bailando's ``utils/metrics_new.py`` (``normalize`` and ``calc_fid``), itself the FID code
of Heusel et al., "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium" (NeurIPS 2017):

    d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))

with mu and S the mean and (unbiased, ``np.cov``) covariance of each set. Before that, both sets
are z-normalised with the mean and standard deviation of the ground-truth (reference) set:
x -> (x - mean_gt) / (std_gt + 1e-10).
"""

from __future__ import annotations

import warnings

import numpy as np

from livedance.errors import DataError

#: Added to the reference standard deviation before dividing (as the reference code).
NORMALISE_EPS = 1e-10
#: Added to the covariance diagonals when sqrtm of their product is not finite (as the reference).
SINGULAR_EPS = 1e-5


def _as_feature_matrix(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"{what}: expected a (N, D) feature matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{what}: features hold NaN or inf")
    return arr


def normalize_with_reference(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Z-normalise ``reference`` and every array in ``others`` with the reference statistics.

    Args:
        reference: (N, D) ground-truth features; its per-dimension mean and (population) standard
            deviation define the normalisation.
        others: (M_i, D) feature sets to normalise the same way.

    Returns:
        ``[reference_normalised, *others_normalised]``, float64 of the input shapes.

    Raises:
        DataError: a set is not 2-D, its width differs from the reference's, or holds NaN/inf.
    """
    ref = _as_feature_matrix(reference, "reference features")
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    out = [(ref - mean) / (std + NORMALISE_EPS)]
    for i, other in enumerate(others):
        arr = _as_feature_matrix(other, f"feature set {i}")
        if arr.shape[1] != ref.shape[1]:
            raise DataError(f"feature set {i} has {arr.shape[1]} dimensions, the reference {ref.shape[1]}")
        out.append((arr - mean) / (std + NORMALISE_EPS))
    return out


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, eq. 6).

    Args:
        mu1, mu2: (D,) means.
        sigma1, sigma2: (D, D) covariance matrices.

    Returns:
        The squared Fréchet distance (a float >= 0 up to rounding), as FID reports it.

    When sqrtm(sigma1 @ sigma2) is not finite (a near-singular product), ``SINGULAR_EPS`` is added
    to both diagonals and sqrtm is taken again; a small imaginary part from rounding is dropped.
    Both steps as in the reference.

    Raises:
        DataError: the means and covariances do not have matching (D,) and (D, D) shapes.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise DataError(
            f"Fréchet distance: mismatched shapes mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():  # the reference passes disp=False: no singular-matrix warning
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * SINGULAR_EPS
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(features: np.ndarray, reference: np.ndarray) -> float:
    """FID between two (already normalised) feature sets, Bailando's ``calc_fid``.

    Args:
        features: (N, D) features of the dances under test, N >= 2.
        reference: (M, D) ground-truth features, M >= 2.

    Returns:
        The Fréchet distance between Gaussians fitted to the two sets (sample mean, ``np.cov``).

    Raises:
        DataError: fewer than 2 rows in a set (no covariance), mismatched widths, NaN/inf.
    """
    a = _as_feature_matrix(features, "features")
    b = _as_feature_matrix(reference, "reference features")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise DataError(f"FID needs at least 2 dances per set, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"FID: features have {a.shape[1]} dimensions, the reference {b.shape[1]}")
    return frechet_distance(a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0), np.cov(b, rowvar=False))


def fid_terms(features: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """:func:`fid` split into its two terms, for reading where a row's distance comes from.

    Args:
        features: (N, D) normalised features of the dances under test, N >= 2.
        reference: (M, D) normalised ground-truth features, M >= 2.

    Returns:
        ``{"fid", "mean_term", "cov_term"}`` floats with ``fid = mean_term + cov_term``: the mean term
        |mu_1 - mu_2|^2 (the sets' centres apart) and the covariance term tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))
        (their spreads unlike), Heusel et al. 2017, eq. 6.

    Raises:
        DataError: as :func:`fid`.
    """
    total = fid(features, reference)
    diff = _as_feature_matrix(features, "features").mean(axis=0) - _as_feature_matrix(reference, "reference").mean(axis=0)
    mean_term = float(diff @ diff)
    return {"fid": total, "mean_term": mean_term, "cov_term": total - mean_term}
