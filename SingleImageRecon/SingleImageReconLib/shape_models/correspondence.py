"""Corresponding vertices on bone surfaces: a template carried onto each instance.

A shape model needs every instance as the same vertices in the same order. Here the template
surface is moved onto an instance's surface in two stages:

1. **similarity ICP** (rotation, translation, one scale): each step pairs every template vertex
   with its nearest instance point and every instance point with its nearest template vertex,
   and solves Umeyama's closed form on both sets of pairs (the reverse pairs stop the template
   from shrinking onto one part of the instance);
2. **smooth non-rigid ICP**: the same two-way pairs give a displacement for each template
   vertex, smoothed by a Gaussian kernel over the template (width from coarse to fine), so the
   template bends as a whole before it follows detail.

The residual, the symmetric mean distance from the moved template to the instance's surface,
says how well the correspondence holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

KERNEL_WIDTHS_MM = (12.0, 8.0, 5.0, 3.0, 2.0)
Region = Callable[[np.ndarray], np.ndarray]  # (P, 3) RAS points -> (P,) True inside


@dataclass(frozen=True)
class Correspondence:
    """The template's vertices on one instance.

    Attributes:
        vertices_mm: (N, 3) the moved template vertices, in the instance's frame (RAS mm).
        residual_mm: symmetric mean distance between them and the instance's surface points.
        rigid_residual_mm: the same after the similarity stage alone.
        scale: the similarity stage's scale factor (instance size / template size).
    """

    vertices_mm: np.ndarray
    residual_mm: float
    rigid_residual_mm: float
    scale: float


def similarity_transform(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising Σ |s·R·source + t − target|² over (N, 3) pairs (Umeyama)."""
    source_centre, target_centre = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_centre, target - target_centre
    u, singular, vt = np.linalg.svd(a.T @ b / len(a))
    reflection = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    rotation = vt.T @ reflection @ u.T
    scale = float((singular * np.diag(reflection)).sum() / (a ** 2).sum() * len(a))
    return scale, rotation, target_centre - scale * rotation @ source_centre


def symmetric_distance_mm(vertices: np.ndarray, target_points: np.ndarray, target_tree: cKDTree | None = None,
                          triangles: np.ndarray | None = None, seen: Region | None = None) -> float:
    """Mean of the two directed distances between a template and an instance's surface points, mm.

    Template → instance: each vertex (inside ``seen``) to its nearest instance point, which lie
    at most 1 mm apart. Instance → template: each point to the template's surface when its
    ``triangles`` are given (a coarse template's vertices are far apart), else to its nearest vertex.
    """
    tree = cKDTree(target_points) if target_tree is None else target_tree
    forward, _ = tree.query(vertices if seen is None else vertices[seen(vertices)])
    if triangles is None:
        backward, _ = cKDTree(vertices).query(target_points)
    else:
        from ..evaluation.surface_distance import DistanceTarget
        from ..meshes.triangle_mesh import as_mesh, polydata_from_arrays

        backward = np.abs(DistanceTarget(as_mesh(polydata_from_arrays(vertices, triangles), "template"))
                          .signed_distances(target_points))
    return float((forward.mean() + backward.mean()) / 2.0)


def _pairs(vertices: np.ndarray, target_points: np.ndarray, tree: cKDTree, seen: Region | None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(vertex ids, their partner points): each target point paired with its nearest vertex, and
    each vertex (each vertex inside the ``seen`` region) with its nearest target point."""
    _, nearest_vertex = cKDTree(vertices).query(target_points)
    forward = np.arange(len(vertices)) if seen is None else np.flatnonzero(seen(vertices))
    _, nearest_target = tree.query(vertices[forward])
    ids = np.concatenate([forward, nearest_vertex])
    return ids, np.concatenate([target_points[nearest_target], target_points])


def _icp(vertices: np.ndarray, target_points: np.ndarray, tree: cKDTree, seen: Region | None, iterations: int
         ) -> tuple[np.ndarray, float]:
    """(moved vertices, scale) after similarity ICP; rigid for a partial target, which would
    otherwise shrink the template onto the part it sees."""
    total_scale = 1.0
    for _ in range(iterations):
        ids, partners = _pairs(vertices, target_points, tree, seen)
        scale, rotation, translation = similarity_transform(vertices[ids], partners)
        if seen is not None:
            scale = 1.0
            translation = partners.mean(axis=0) - vertices[ids].mean(axis=0) @ rotation.T
        vertices = scale * vertices @ rotation.T + translation
        total_scale *= scale
    return vertices, total_scale


def _shifted_starts(vertices: np.ndarray) -> list[np.ndarray]:
    """The template slid along each of its principal axes by ±20 % and ±40 % of its extent:
    where the scanned part of a cut bone may sit on it."""
    centred = vertices - vertices.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    starts = []
    for axis in axes:
        extent = np.ptp(centred @ axis)
        starts += [vertices + fraction * extent * axis for fraction in (-0.4, -0.2, 0.2, 0.4)]
    return starts


def register_template(template_mm: np.ndarray, target_points_mm: np.ndarray, rigid_iterations: int = 30,
                      iterations_per_width: int = 8, kernel_widths_mm: tuple[float, ...] = KERNEL_WIDTHS_MM,
                      seen: Region | None = None, triangles: np.ndarray | None = None) -> Correspondence:
    """Carry template vertices onto an instance given by dense points on its surface.

    Args:
        template_mm: (N, 3) template vertices, already roughly placed (same orientation, RAS mm).
        target_points_mm: (M, 3) points covering the instance's surface (its mesh vertices, or denser).
        seen: for a bone the scan cuts, a function telling which RAS points (P, 3) lie inside the
            scan. Template vertices outside it are not paired (nothing there to pair with) and follow
            the kernel; the similarity stage is rigid and tries several starts.
        triangles: the template's triangles, for the residual's instance → template distances.
    """
    tree = cKDTree(target_points_mm)
    def residual(moved: np.ndarray, exact: bool = True) -> float:
        return symmetric_distance_mm(moved, target_points_mm, tree, triangles if exact else None, seen)

    centred = template_mm - template_mm.mean(axis=0) + target_points_mm.mean(axis=0)
    starts = [centred] + (_shifted_starts(centred) if seen is not None else [])
    candidates = [_icp(start, target_points_mm, tree, seen, rigid_iterations) for start in starts]
    vertices, total_scale = min(candidates, key=lambda c: residual(c[0], exact=False))
    rigid_residual = residual(vertices)
    squared = ((vertices[:, None, :] - vertices[None, :, :]) ** 2).sum(axis=2)
    for width in kernel_widths_mm:
        kernel = np.exp(-squared / (2.0 * width ** 2))
        for _ in range(iterations_per_width):
            ids, partners = _pairs(vertices, target_points_mm, tree, seen)
            pull = np.zeros_like(vertices)
            np.add.at(pull, ids, partners - vertices[ids])
            count = np.bincount(ids, minlength=len(vertices)).astype(np.float64)
            vertices = vertices + (kernel @ pull) / np.maximum(kernel @ count, 1e-9)[:, None]
    return Correspondence(vertices, residual(vertices), rigid_residual, total_scale)
