"""What one view cannot see: how far along its ray a reconstructed bone sits.

A single radiograph fixes a bone's outline; its distance from the source shows only as
magnification, a few per cent over centimetres. :func:`best_ray_shift_mm` finds the shift of a
reconstructed surface along the ray from the source through its centre that best matches the
truth (the mean of both directed vertex-to-vertex distances, searched coarse to fine), so that
a figure taken after it ("shape ASSD") tells shape error apart from depth placement.
"""

from __future__ import annotations

import numpy as np
import vtk
from scipy.spatial import cKDTree
from vtk.util import numpy_support

_MAX_POINTS = 4000  # vertices used by the search; the exact metrics come afterwards


def _points(surface: vtk.vtkPolyData, rng: np.random.Generator) -> np.ndarray:
    points = numpy_support.vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)
    return points if len(points) <= _MAX_POINTS else points[rng.choice(len(points), _MAX_POINTS, replace=False)]


def ray_direction(surface: vtk.vtkPolyData, source_ras_mm: np.ndarray) -> np.ndarray:
    """Unit vector from the source through the surface's vertex centroid (RAS)."""
    centre = numpy_support.vtk_to_numpy(surface.GetPoints().GetData()).mean(axis=0)
    direction = centre - np.asarray(source_ras_mm, float)
    return direction / np.linalg.norm(direction)


def best_ray_shift_mm(surface: vtk.vtkPolyData, truth: vtk.vtkPolyData, direction_ras: np.ndarray,
                      search_mm: float = 150.0) -> float:
    """The shift (mm, + away from the source) along ``direction_ras`` that brings ``surface``
    closest to ``truth`` (symmetric mean vertex distance), within ±``search_mm``."""
    rng = np.random.default_rng(0)
    moving, fixed = _points(surface, rng), _points(truth, rng)
    fixed_tree = cKDTree(fixed)
    direction = np.asarray(direction_ras, float)

    def cost(shift: float) -> float:
        shifted = moving + shift * direction
        there = fixed_tree.query(shifted)[0].mean()
        back = cKDTree(shifted).query(fixed)[0].mean()
        return 0.5 * (there + back)

    best, step = 0.0, 8.0
    candidates = np.arange(-search_mm, search_mm + step, step)
    best = float(candidates[np.argmin([cost(s) for s in candidates])])
    while step > 0.25:
        step /= 4
        candidates = best + step * np.arange(-4, 5)
        best = float(candidates[np.argmin([cost(s) for s in candidates])])
    return best


def shifted_surface(surface: vtk.vtkPolyData, offset_ras_mm: np.ndarray) -> vtk.vtkPolyData:
    """A copy of ``surface`` moved by ``offset_ras_mm``."""
    transform = vtk.vtkTransform()
    transform.Translate(*[float(x) for x in offset_ras_mm])
    moved = vtk.vtkTransformPolyDataFilter()
    moved.SetInputData(surface)
    moved.SetTransform(transform)
    moved.Update()
    copy = vtk.vtkPolyData()
    copy.DeepCopy(moved.GetOutput())
    return copy
