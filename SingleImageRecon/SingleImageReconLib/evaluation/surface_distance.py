"""Distances (mm) between closed triangle surfaces: exact near them, interpolated far from them.

A point's distance to a surface is the exact point-to-triangle distance, from VTK's implicit
poly-data distance (a cell locator). Its sign (+ outside, − inside) is that of the
angle-weighted pseudonormal at the closest point (Bærentzen & Aanæs 2005), right for any point
when the surface is closed and manifold; triangles ordered inward are recognised by their
negative enclosed volume.

Exact queries cost most far from a surface: at a distance D, every triangle within a cap of
radius about sqrt(2·D·cell size) is nearly as close (a bone 5 cm off took 20 s each way). So a
surface is *sampled* at three levels (:func:`surface_samples`): its vertices are measured
exactly; triangles that may come within ``near_mm`` of the other surface are split to
``QUERY_EDGE_MM`` edges and measured at the new vertices; pieces that may come within F1's
largest τ are split to 1 mm and every sample there is measured exactly. Elsewhere distances
are interpolated linearly onto the centroids of 1 mm sub-triangles: the distance function is
1-Lipschitz and smooth away from the surface, so the means and percentiles err by hundredths
of a millimetre, and every fraction below τ is exact (``Testing/test_surface_distance.py``
checks them against measuring every sample exactly, on real bones near and far).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkDoubleArray
from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

from ..meshes.triangle_mesh import TriangleMesh, polydata_from_arrays

DEFAULT_MAX_EDGE_MM = 1.0
NEAR_MM = 5.0  # closer than this, distances are measured every QUERY_EDGE_MM
QUERY_EDGE_MM = 2.0


class DistanceTarget:
    """A surface to measure signed distances to."""

    def __init__(self, mesh: TriangleMesh):
        self.mesh = mesh

    @cached_property
    def _implicit(self) -> vtkImplicitPolyDataDistance:
        implicit = vtkImplicitPolyDataDistance()
        implicit.SetInput(polydata_from_arrays(self.mesh.points, self.mesh.triangles))
        return implicit

    def signed_distances(self, points: np.ndarray) -> np.ndarray:
        """(N,) signed distances (mm, + outside) from (N, 3) points."""
        if len(points) == 0:
            return np.zeros(0)
        values = vtkDoubleArray()
        self._implicit.FunctionValue(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True), values)
        signed = vtk_to_numpy(values).astype(np.float64)
        return -signed if self.mesh.signed_volume < 0 else signed


def _uniform_centroids(subdivisions: int) -> np.ndarray:
    """(n², 3) barycentric coordinates of the centroids of a triangle cut into n² equal ones."""
    n = subdivisions
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    up, down = (i + j) <= n - 1, (i + j) <= n - 2
    u = np.concatenate([i[up] + 1 / 3, i[down] + 2 / 3]) / n
    v = np.concatenate([j[up] + 1 / 3, j[down] + 2 / 3]) / n
    return np.stack([1 - u - v, u, v], axis=1)


@dataclass
class SurfaceSamples:
    """Area-weighted samples of a surface and their distances to another.

    Attributes:
        points: (S, 3) sample positions, RAS mm.
        weights: (S,) area each sample stands for, mm² (they sum to the surface's area).
        distances_mm: (S,) unsigned distance of each sample to the other surface.
        vertex_signed_mm: (P,) exact signed distance of each vertex of the surface (+ outside).
    """

    points: np.ndarray
    weights: np.ndarray
    distances_mm: np.ndarray
    vertex_signed_mm: np.ndarray


def _centroid_samples(points: np.ndarray, triangles: np.ndarray, signed: np.ndarray, areas: np.ndarray,
                      longest_edges: np.ndarray, max_edge_mm: float | None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each triangle cut into n² equal ones with edges of at most ``max_edge_mm`` (None: n = 1),
    sampled at their centroids with the signed distance interpolated from the corners."""
    longest = longest_edges if max_edge_mm is not None else np.zeros(len(triangles))
    subdivisions = np.maximum(np.ceil(longest / (max_edge_mm or 1.0)), 1).astype(int)
    positions, values, weights = [], [], []
    for n in np.unique(subdivisions):
        which = subdivisions == n
        barycentric = _uniform_centroids(int(n))
        positions.append(np.einsum("sc,tcx->tsx", barycentric, points[triangles[which]]).reshape(-1, 3))
        values.append((signed[triangles[which]] @ barycentric.T).ravel())
        weights.append(np.repeat(areas[which] / n ** 2, len(barycentric)))
    return np.concatenate(positions), np.abs(np.concatenate(values)), np.concatenate(weights)



def _split_signed(source: TriangleMesh, which: np.ndarray, edge_mm: float, target: DistanceTarget,
                  vertex_signed: np.ndarray) -> tuple[TriangleMesh, np.ndarray]:
    """The chosen triangles split to ``edge_mm`` edges, and the signed distance of every point."""
    split = source.split(edge_mm, which)
    count = len(source.points)
    if np.array_equal(split.points[:count], source.points):  # the filter keeps the input points first
        return split, np.concatenate([vertex_signed, target.signed_distances(split.points[count:])])
    return split, target.signed_distances(split.points)


def _vertex_samples(mesh: TriangleMesh, signed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A mesh's vertices with their unsigned distances and a third of their triangles' area."""
    weights = np.bincount(mesh.triangles.ravel(), weights=np.repeat(mesh.areas / 3.0, 3), minlength=len(mesh.points))
    used = weights > 0
    return mesh.points[used], np.abs(signed[used]), weights[used]


def _closest_possible(mesh: TriangleMesh, signed: np.ndarray) -> np.ndarray:
    """(M,) a lower bound on the distance of any point of each triangle: every point lies within
    the longest edge / √3 of a corner, and distances are 1-Lipschitz."""
    return np.abs(signed)[mesh.triangles].min(axis=1) - mesh.longest_edges / np.sqrt(3.0)


def surface_samples(source: TriangleMesh, target: DistanceTarget, exact_below_mm: float = 2.0,
                    near_mm: float = NEAR_MM, max_edge_mm: float | None = DEFAULT_MAX_EDGE_MM,
                    query_edge_mm: float = QUERY_EDGE_MM) -> SurfaceSamples:
    """Area-weighted samples of the source surface with their distances to the target.

    Distances are measured exactly at the source's vertices; triangles that may come closer
    than ``near_mm`` are split to ``query_edge_mm`` edges and measured at the new vertices too;
    and of those, the pieces that may come closer than ``exact_below_mm`` are split to
    ``max_edge_mm`` edges (None: not split) and sampled by the plain definition: at their
    vertices, each weighing a third of the area of its triangles, every distance exact. So any
    fraction of the area closer than a threshold up to ``exact_below_mm`` (F1's τ) is exact.

    Every other triangle is cut into equal ones with edges of at most ``max_edge_mm``, sampled
    at their centroids, each weighing its area, with the signed distance interpolated linearly
    from its corners; those samples, like the values they interpolate, are all at least
    ``exact_below_mm`` away.
    """
    vertex_signed = target.signed_distances(source.points)
    pieces = []

    def interpolated(mesh: TriangleMesh, signed: np.ndarray, which: np.ndarray) -> None:
        if which.any():
            pieces.append(_centroid_samples(mesh.points, mesh.triangles[which], signed, mesh.areas[which],
                                            mesh.longest_edges[which], max_edge_mm))

    near = _closest_possible(source, vertex_signed) < near_mm
    interpolated(source, vertex_signed, ~near)
    if near.any():
        coarse, coarse_signed = _split_signed(source, near, query_edge_mm, target, vertex_signed)
        close = _closest_possible(coarse, coarse_signed) < exact_below_mm
        interpolated(coarse, coarse_signed, ~close)
        if close.any():
            if max_edge_mm is None:
                fine, fine_signed = TriangleMesh(coarse.points, coarse.triangles[close], coarse.vertex_of_input), coarse_signed
            else:
                fine, fine_signed = _split_signed(coarse, close, max_edge_mm, target, coarse_signed)
            pieces.append(_vertex_samples(fine, fine_signed))
    positions, distances, weights = (np.concatenate(parts) for parts in zip(*pieces))
    return SurfaceSamples(positions, weights, distances, vertex_signed)
