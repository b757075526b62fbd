"""Principal component analysis of aligned shapes, and a smooth kernel that widens a small one.

A model of S shapes spans at most S − 1 directions. With few instances (the project's vertebrae)
it cannot express a real patient's differences, so :func:`widen_with_smooth_kernel` adds the
covariance of a smooth random deformation: k(x, y) = s²·exp(−|x − y|² / 2ℓ²)·I₃ between vertices
x, y of the mean (a Gaussian-process deformation model). The combined covariance
Σ = Σ_sample + Σ_kernel is kept as its leading eigenvectors, as any PCA model is.
"""

from __future__ import annotations

import numpy as np


def pca(aligned: np.ndarray, max_modes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (N, 3), modes (K, N, 3) orthonormal, variances (K,) mm²) of (S, N, 3) aligned shapes.

    Variances use the unbiased sample covariance (divided by S − 1); K ≤ S − 1.
    """
    shapes = np.asarray(aligned, dtype=np.float64)
    count, n, _ = shapes.shape
    mean = shapes.mean(axis=0)
    centred = (shapes - mean).reshape(count, -1)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variances = singular ** 2 / max(count - 1, 1)
    keep = int((variances > 1e-9 * max(variances.max(), 1e-30)).sum())
    keep = min(keep, count - 1, max_modes or keep)
    return mean, vt[:keep].reshape(keep, n, 3), variances[:keep]


def widen_with_smooth_kernel(mean: np.ndarray, modes: np.ndarray, variances: np.ndarray, kernel_sd_mm: float,
                             kernel_width_mm: float, max_modes: int) -> tuple[np.ndarray, np.ndarray]:
    """(modes, variances) of Σ_sample + Σ_kernel, its ``max_modes`` leading eigenpairs.

    Args:
        mean: (N, 3) the mean shape; the kernel is evaluated between its vertices.
        modes, variances: the sample model (K, N, 3) and (K,).
        kernel_sd_mm: s, the standard deviation of each vertex's added displacement per axis.
        kernel_width_mm: ℓ, how far apart two vertices still move together.
        max_modes: how many combined modes to keep.
    """
    n = mean.shape[0]
    squared = ((mean[:, None, :] - mean[None, :, :]) ** 2).sum(axis=2)
    kernel = kernel_sd_mm ** 2 * np.exp(-squared / (2.0 * kernel_width_mm ** 2))
    kernel_values, kernel_vectors = np.linalg.eigh(kernel)
    order = np.argsort(kernel_values)[::-1][:max_modes]
    kernel_values, kernel_vectors = np.maximum(kernel_values[order], 0.0), kernel_vectors[:, order]
    # each scalar kernel eigenvector moves all vertices along one axis: three 3N-vectors a pair
    kernel_basis = np.zeros((3 * len(order), n, 3))
    for axis in range(3):
        kernel_basis[axis::3, :, axis] = kernel_vectors.T
    factors = np.concatenate([modes.reshape(len(modes), -1) * np.sqrt(variances)[:, None],
                              kernel_basis.reshape(len(kernel_basis), -1) * np.sqrt(np.repeat(kernel_values, 3))[:, None]])
    _, singular, vt = np.linalg.svd(factors, full_matrices=False)
    keep = min(max_modes, len(singular))
    return vt[:keep].reshape(keep, n, 3), singular[:keep] ** 2
