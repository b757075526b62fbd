"""Smooth surfaces of labelled bones, and whether the volume cuts a bone off."""

from __future__ import annotations

import numpy as np

from ..evaluation.metrics import cut_sides, mask_surface
from ..reconstruction.surface import finish_surface
from ..meshes.triangle_mesh import TriangleMesh, as_mesh


def touches_volume_edge(mask_kji: np.ndarray) -> bool:
    """True when a mask reaches the first or last voxel layer of any axis: the scan cuts the bone."""
    return bool(cut_sides(mask_kji))


def bone_surface(mask_kji: np.ndarray, ijk_to_ras: np.ndarray, name: str) -> tuple[TriangleMesh, np.ndarray]:
    """(smoothed surface, points on it at most 1 mm apart), RAS mm, of one bone's mask.

    Windowed-sinc smoothing removes the voxel steps without shrinking the bone; the dense points
    are what template registration pairs with.
    """
    mesh = as_mesh(finish_surface(mask_surface(mask_kji, ijk_to_ras), smoothing_iterations=20, decimation=0.0), name)
    return mesh, mesh.split(1.0).points
