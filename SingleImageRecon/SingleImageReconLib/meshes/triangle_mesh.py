"""A closed triangle surface as numpy arrays (RAS mm)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkTriangleFilter
from vtkmodules.vtkFiltersModeling import vtkAdaptiveSubdivisionFilter

from SyntheticDataGenLib.errors import XreconInputError


@dataclass
class TriangleMesh:
    """A triangle mesh as arrays.

    Attributes:
        points: (P, 3) vertex coordinates, mm; coincident points are merged.
        triangles: (M, 3) vertex ids of triangles with non-zero area, consistently ordered.
        vertex_of_input: (N,) for each point of the polydata the mesh came from, its vertex id.
    """

    points: np.ndarray
    triangles: np.ndarray
    vertex_of_input: np.ndarray

    @cached_property
    def corners(self) -> np.ndarray:
        """(M, 3, 3): the three corners of every triangle."""
        return self.points[self.triangles]

    @cached_property
    def _cross(self) -> np.ndarray:
        corners = self.corners
        return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])

    @cached_property
    def areas(self) -> np.ndarray:
        """(M,) triangle areas, mm²."""
        return 0.5 * np.linalg.norm(self._cross, axis=1)

    @cached_property
    def longest_edges(self) -> np.ndarray:
        """(M,) length of each triangle's longest edge, mm."""
        corners = self.corners
        return np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)

    @cached_property
    def signed_volume(self) -> float:
        """Volume enclosed, mm³; negative when the triangles are ordered inward."""
        corners = self.corners
        return float(np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0)

    def split(self, max_edge_mm: float, which: np.ndarray | None = None) -> TriangleMesh:
        """The triangles (all, or those where ``which`` is true) with edges longer than
        ``max_edge_mm`` split: new points lie on the old edges, so the surface keeps its shape,
        and neighbours are split alike, so a closed surface stays closed."""
        triangles = self.triangles if which is None else self.triangles[which]
        subdivide = vtkAdaptiveSubdivisionFilter()
        subdivide.SetInputData(polydata_from_arrays(self.points, triangles))
        subdivide.SetMaximumEdgeLength(float(max_edge_mm))
        # Edges <= L bound the area by 0.43 L²; the default area limit (1 mm²) would act on its own for L > 1.5.
        subdivide.SetMaximumTriangleArea(float(max_edge_mm) ** 2)
        subdivide.Update()
        output = subdivide.GetOutput()
        # The filter shares the points of split edges between neighbours: nothing to merge.
        points = vtk_to_numpy(output.GetPoints().GetData()).astype(np.float64)
        triangles = vtk_to_numpy(output.GetPolys().GetConnectivityArray()).astype(np.int64).reshape(-1, 3)
        return TriangleMesh(points, triangles, np.arange(len(points)))


def polydata_from_arrays(points: np.ndarray, triangles: np.ndarray) -> vtkPolyData:
    """A vtkPolyData of triangles from (P, 3) points and (M, 3) vertex ids."""
    polydata = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    polydata.SetPoints(vtk_points)
    cells = vtkCellArray()
    offsets = np.arange(0, 3 * len(triangles) + 1, 3, dtype=np.int64)
    cells.SetData(numpy_to_vtk(offsets, deep=True), numpy_to_vtk(triangles.astype(np.int64).ravel(), deep=True))
    polydata.SetPolys(cells)
    return polydata


def as_mesh(surface: vtkPolyData, what: str) -> TriangleMesh:
    """Triangulate ``surface`` and merge coincident points, so that neighbours share vertices
    and edges; ``what`` names the surface in errors."""
    if surface is None or surface.GetNumberOfPoints() == 0 or surface.GetNumberOfCells() == 0:
        raise XreconInputError(f"{what} surface is empty (no points or no triangles)")
    triangulate = vtkTriangleFilter()
    triangulate.SetInputData(surface)
    triangulate.PassVertsOff()
    triangulate.PassLinesOff()
    triangulate.Update()
    output = triangulate.GetOutput()
    polys = output.GetPolys()
    if polys.GetNumberOfCells() == 0:
        raise XreconInputError(f"{what} surface has no triangles")
    input_points = vtk_to_numpy(output.GetPoints().GetData()).astype(np.float64)
    if not np.all(np.isfinite(input_points)):
        raise XreconInputError(f"{what} surface has points that are not finite numbers")
    points, vertex_of_input = np.unique(input_points, axis=0, return_inverse=True)
    vertex_of_input = vertex_of_input.ravel()
    # only triangles are left after the triangle filter
    triangles = vertex_of_input[vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64).reshape(-1, 3)]
    corners = points[triangles]
    # Zero-area triangles are segments or points: they add no area and have no normal.
    keep = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1) > 0
    if not keep.any():
        raise XreconInputError(f"{what} surface has no triangle with a non-zero area")
    return TriangleMesh(points, triangles[keep], vertex_of_input)
