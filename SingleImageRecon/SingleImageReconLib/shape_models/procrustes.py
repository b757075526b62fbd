"""Rigid alignment of corresponding point sets (Kabsch) and generalised Procrustes analysis.

Alignment is rigid (rotation and translation, no scaling): a bone's size is part of its shape
here, because a radiograph's magnification is known from its geometry.
"""

from __future__ import annotations

import numpy as np


def rigid_transform(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) minimising Σ w·|R·source + t − target|², for (N, 3) corresponding points (Kabsch)."""
    w = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    source_centre, target_centre = w @ source, w @ target
    covariance = (source - source_centre).T @ ((target - target_centre) * w[:, None])
    u, _, vt = np.linalg.svd(covariance)
    reflection = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    rotation = vt.T @ reflection @ u.T
    return rotation, target_centre - rotation @ source_centre


def align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` moved rigidly onto corresponding ``target`` points."""
    rotation, translation = rigid_transform(source, target)
    return source @ rotation.T + translation


def mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """The rotation nearest (Frobenius) to the mean of (S, 3, 3) rotation matrices."""
    u, _, vt = np.linalg.svd(np.mean(rotations, axis=0))
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt


def generalized_procrustes(instances: np.ndarray, iterations: int = 20, tolerance_mm: float = 1e-4) -> np.ndarray:
    """(S, N, 3) instances rigidly aligned to their common mean, centred at the origin.

    The common frame is the instances' average orientation, so a model built from bones in
    patient coordinates (RAS) keeps its anatomical axes.
    """
    instances = np.asarray(instances, dtype=np.float64)
    aligned = instances - instances.mean(axis=1, keepdims=True)
    mean = aligned[0]
    for _ in range(iterations):
        aligned = np.stack([align(shape, mean) for shape in aligned])
        new_mean = aligned.mean(axis=0)
        new_mean = align(new_mean, mean)  # keep the frame from drifting
        change = np.sqrt(((new_mean - mean) ** 2).sum(axis=1).mean())
        mean = new_mean
        if change < tolerance_mm:
            break
    turn = mean_rotation(np.stack([rigid_transform(mean, shape)[0] for shape in instances]))
    mean = mean @ turn.T
    return np.stack([align(shape, mean) for shape in aligned])
