"""How far a reconstructed bone surface is from the CT ground truth: surface distances, F1@τ, Dice.

Everything is in RAS millimetres. Surface metrics compare two closed triangle meshes:

* a surface is *sampled* at its vertices after subdividing long edges (``max_edge_mm``), each
  vertex weighted by a third of the area of its triangles, so that averages and percentiles are
  area-weighted and do not depend on how densely a mesh happens to be tessellated;
* the distance of a sample to the other surface is the exact point-to-triangle distance
  (VTK's static cell locator).

Directed area-weighted means d(R→T) and d(T→R) give ASSD = (d(R→T) + d(T→R)) / 2 and
Chamfer = d(R→T) + d(T→R). HD95 is the larger of the two directed area-weighted 95th
percentiles (MONAI's ``compute_hausdorff_distance(percentile=95, directed=False)``). F1@τ
follows Tatarchenko et al. (CVPR 2019): precision is the area fraction of the reconstruction
closer than τ to the truth, recall the area fraction of the truth closer than τ to the
reconstruction.

Volume overlap (Dice, IoU) is measured on the truth's voxel grid, with the reconstruction
voxelised there (a voxel is inside when its centre is).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import reference, vtkPoints
from vtkmodules.vtkCommonDataModel import (vtkCellArray, vtkGenericCell, vtkImageData, vtkPolyData,
                                            vtkStaticCellLocator)
from vtkmodules.vtkFiltersCore import (vtkCleanPolyData, vtkFlyingEdges3D, vtkPolyDataNormals, vtkReverseSense,
                                       vtkTriangleFilter)
from vtkmodules.vtkFiltersModeling import vtkAdaptiveSubdivisionFilter
from vtkmodules.vtkImagingStencil import vtkImageStencilToImage, vtkPolyDataToImageStencil

from SyntheticDataGenLib.errors import XreconInputError

DEFAULT_MAX_EDGE_MM = 1.0


# ----------------------------------------------------------------------------------------------
# Triangle meshes as arrays


@dataclass
class _Mesh:
    """A triangle mesh as arrays, with what distance queries to it need.

    Attributes:
        points: (P, 3) vertex coordinates, mm.
        triangles: (M, 3) vertex ids of triangles with non-zero area, consistently ordered.
    """

    points: np.ndarray
    triangles: np.ndarray

    @cached_property
    def corners(self) -> np.ndarray:
        """(M, 3, 3): the three corners of every triangle."""
        return self.points[self.triangles]

    @cached_property
    def areas(self) -> np.ndarray:
        """(M,) triangle areas, mm²."""
        return 0.5 * np.linalg.norm(self._cross, axis=1)

    @cached_property
    def _cross(self) -> np.ndarray:
        corners = self.corners
        return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])

    @cached_property
    def vertex_weights(self) -> np.ndarray:
        """(P,) a third of the area of the triangles around each vertex, mm²."""
        return np.bincount(self.triangles.ravel(), weights=np.repeat(self.areas / 3.0, 3),
                           minlength=len(self.points))

    @cached_property
    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample points (vertices that belong to a triangle) and their area weights."""
        used = self.vertex_weights > 0
        return self.points[used], self.vertex_weights[used]

    @cached_property
    def vertex_tree(self) -> cKDTree:
        return cKDTree(self.points)

    @cached_property
    def _fans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flat = self.triangles.ravel()
        counts = np.bincount(flat, minlength=len(self.points))
        return np.argsort(flat, kind="stable") // 3, np.concatenate([[0], np.cumsum(counts)[:-1]]), counts

    def triangles_around(self, vertices: np.ndarray) -> np.ndarray:
        """(n, valence) ids of the triangles around each vertex, padded by repeating the first."""
        triangle_of_slot, starts, counts = self._fans
        valence = max(int(counts[vertices].max()), 1)
        slot = np.minimum(np.arange(valence)[None], np.maximum(counts[vertices, None] - 1, 0))
        return triangle_of_slot[starts[vertices, None] + slot]

    @cached_property
    def locator(self) -> vtkStaticCellLocator:
        """VTK's cell locator over the triangles (ids as in ``triangles``)."""
        locator = vtkStaticCellLocator()
        locator.SetDataSet(_polydata_from_arrays(self.points, self.triangles))
        locator.BuildLocator()
        return locator

    @cached_property
    def signed_volume(self) -> float:
        """Volume enclosed, mm³; negative when the triangles are ordered inward."""
        corners = self.corners
        return float(np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0)

    @cached_property
    def unit_normals(self) -> np.ndarray:
        """(M, 3) unit normals of the triangles, by their vertex order."""
        return self._cross / np.linalg.norm(self._cross, axis=1, keepdims=True)

    @cached_property
    def edge_ids(self) -> np.ndarray:
        """(M, 3) id of the edges (a-b, b-c, c-a) of every triangle, shared between neighbours."""
        pairs = np.sort(self.triangles[:, [[0, 1], [1, 2], [2, 0]]], axis=2).reshape(-1, 2)
        keys = pairs[:, 0].astype(np.int64) * len(self.points) + pairs[:, 1]
        return np.unique(keys, return_inverse=True)[1].reshape(-1, 3)

    @cached_property
    def edge_pseudonormals(self) -> np.ndarray:
        """(E, 3) sum of the unit normals of the triangles that share each edge."""
        return _sum_by(self.edge_ids.ravel(), np.repeat(self.unit_normals, 3, axis=0), self.edge_ids.max() + 1)

    @cached_property
    def vertex_pseudonormals(self) -> np.ndarray:
        """(P, 3) angle-weighted sum of the unit normals of the triangles around each vertex."""
        corners = self.corners
        angles = np.empty((len(corners), 3))
        for corner in range(3):
            u = corners[:, (corner + 1) % 3] - corners[:, corner]
            v = corners[:, (corner + 2) % 3] - corners[:, corner]
            angles[:, corner] = np.arctan2(np.linalg.norm(np.cross(u, v), axis=1), np.einsum("ij,ij->i", u, v))
        weighted = (angles[:, :, None] * self.unit_normals[:, None, :]).reshape(-1, 3)
        return _sum_by(self.triangles.ravel(), weighted, len(self.points))


def _sum_by(ids: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """Rows of ``values`` (N, 3) summed per id: (count, 3)."""
    return np.stack([np.bincount(ids, weights=values[:, axis], minlength=count) for axis in range(3)], axis=1)


def _polydata_from_arrays(points: np.ndarray, triangles: np.ndarray) -> vtkPolyData:
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


def _as_mesh(surface: vtkPolyData, what: str, max_edge_mm: float | None) -> _Mesh:
    """Triangulate, merge coincident points (so neighbours share vertices and edges) and, when
    ``max_edge_mm`` is given, split edges longer than it (new points lie on the old edges, so the
    surface keeps its shape and stays closed)."""
    if surface is None or surface.GetNumberOfPoints() == 0 or surface.GetNumberOfCells() == 0:
        raise XreconInputError(f"{what} surface is empty (no points or no triangles)")
    triangulate = vtkTriangleFilter()
    triangulate.SetInputData(surface)
    triangulate.PassVertsOff()
    triangulate.PassLinesOff()
    clean = vtkCleanPolyData()
    clean.SetInputConnection(triangulate.GetOutputPort())
    clean.SetTolerance(0.0)
    clean.PointMergingOn()
    last = clean
    if max_edge_mm is not None:
        subdivide = vtkAdaptiveSubdivisionFilter()
        subdivide.SetInputConnection(clean.GetOutputPort())
        subdivide.SetMaximumEdgeLength(float(max_edge_mm))
        # Edges <= L bound the area by 0.43 L²; the default area limit (1 mm²) would act on its own for L > 1.5.
        subdivide.SetMaximumTriangleArea(float(max_edge_mm) ** 2)
        last = subdivide
    last.Update()
    output = last.GetOutput()
    polys = output.GetPolys()
    if output.GetNumberOfPoints() == 0 or polys.GetNumberOfCells() == 0:
        raise XreconInputError(f"{what} surface has no triangles")
    connectivity = vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64)
    points = vtk_to_numpy(output.GetPoints().GetData()).astype(np.float64)
    triangles = connectivity.reshape(-1, 3)  # only triangles are left after the triangle filter
    if not np.all(np.isfinite(points)):
        raise XreconInputError(f"{what} surface has points that are not finite numbers")
    corners = points[triangles]
    # Zero-area triangles are segments or points: they add no area and have no normal.
    keep = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1) > 0
    if not keep.any():
        raise XreconInputError(f"{what} surface has no triangle with a non-zero area")
    return _Mesh(points, triangles[keep])


# ----------------------------------------------------------------------------------------------
# Exact point-to-triangle distances


# Which part of a triangle holds the closest point; the sign of a distance uses its pseudonormal.
_FACE, _VERTEX_A, _VERTEX_B, _VERTEX_C, _EDGE_AB, _EDGE_BC, _EDGE_CA = range(7)


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Closest points of triangles (a, b, c) to points p, all (..., 3), and the feature holding it.

    Ericson, Real-Time Collision Detection (2005), 5.1.5: the Voronoi region of p among the
    triangle's vertices, edges and face, tested in that order. Triangles must have non-zero area.
    """
    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = np.einsum("...i,...i", ab, ap), np.einsum("...i,...i", ac, ap)
    d3, d4 = np.einsum("...i,...i", ab, bp), np.einsum("...i,...i", ac, bp)
    d5, d6 = np.einsum("...i,...i", ab, cp), np.einsum("...i,...i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    regions = [
        (d1 <= 0) & (d2 <= 0),
        (d3 >= 0) & (d4 <= d3),
        (vc <= 0) & (d1 >= 0) & (d3 <= 0),
        (d6 >= 0) & (d5 <= d6),
        (vb <= 0) & (d2 >= 0) & (d6 <= 0),
        (va <= 0) & (d4 >= d3) & (d5 >= d6),
    ]
    with np.errstate(divide="ignore", invalid="ignore"):  # divisions of regions that are not selected
        t_ab = d1 / (d1 - d3)
        t_ca = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        denominator = va + vb + vc
        face_v, face_w = vb / denominator, vc / denominator
    zero, one = np.zeros_like(d1), np.ones_like(d1)
    # Barycentric (v, w) of the closest point a + v·ab + w·ac in each region; np.select takes the first.
    v = np.select(regions, [zero, one, t_ab, zero, zero, 1 - t_bc], face_v)
    w = np.select(regions, [zero, zero, zero, one, t_ca, t_bc], face_w)
    feature = np.select(regions, [_VERTEX_A, _VERTEX_B, _EDGE_AB, _VERTEX_C, _EDGE_CA, _EDGE_BC], _FACE)
    return a + v[..., None] * ab + w[..., None] * ac, feature.astype(np.int8)


_NEAREST_VERTICES = 3


def _closest_triangles(points: np.ndarray, mesh: _Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) from each of the (N, 3) points to the mesh, and the closest triangle's id.

    The three closest vertices come from a k-d tree (fast even for points far from the
    surface), and the exact distance to each triangle around them is taken. That is the exact
    distance to the surface whenever the closest point lies on one of those triangles, which
    is the rule on meshes with edges of 1 mm or less (targets are split to such edges first,
    see :func:`_as_mesh`); otherwise it overestimates by a small fraction of an edge.
    """
    tree = mesh.vertex_tree
    distance = np.empty(len(points))
    triangle = np.empty(len(points), dtype=np.int64)
    for chunk in np.array_split(np.arange(len(points)), max(1, len(points) // 8192)):
        _, vertices = tree.query(points[chunk], k=min(_NEAREST_VERTICES, len(mesh.points)))
        vertices = vertices.reshape(len(chunk), -1)
        candidates = np.concatenate([mesh.triangles_around(vertices[:, n]) for n in range(vertices.shape[1])], axis=1)
        corners = mesh.corners[candidates]
        closest, _ = _closest_on_triangles(points[chunk, None], corners[:, :, 0], corners[:, :, 1], corners[:, :, 2])
        distances = np.linalg.norm(closest - points[chunk, None], axis=2)
        best = distances.argmin(axis=1)
        rows = np.arange(len(chunk))
        distance[chunk], triangle[chunk] = distances[rows, best], candidates[rows, best]
    return distance, triangle


def surface_distances(a: vtkPolyData, b: vtkPolyData, max_edge_mm: float | None = DEFAULT_MAX_EDGE_MM
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned distances from samples of surface ``a`` to surface ``b``, and the samples' weights.

    Args:
        a, b: triangle surfaces (any polygons are triangulated), RAS mm.
        max_edge_mm: ``a``'s edges longer than this are split first, so that a coarse or
            decimated mesh is still sampled evenly; None samples the vertices as they are.

    Returns:
        (N,) distances in mm from the vertices of (subdivided) ``a`` to the closest point of any
        triangle of ``b``, and (N,) the vertices' area weights in mm² (a third of the area of
        the triangles around each vertex; they sum to the area of ``a``).
    """
    # b is split too: the closest-vertex search needs short edges (see _closest_triangles).
    return _directed(_as_mesh(a, "first", max_edge_mm), _as_mesh(b, "second", max_edge_mm or DEFAULT_MAX_EDGE_MM))


def _directed(source: _Mesh, target: _Mesh) -> tuple[np.ndarray, np.ndarray]:
    points, weights = source.samples
    return _closest_triangles(points, target)[0], weights


def signed_distance_to(points_ras: np.ndarray, surface: vtkPolyData) -> np.ndarray:
    """Signed distance (mm) from points to a closed surface: positive outside, negative inside.

    The magnitude is the exact distance to the closest triangle; the sign is that of the
    angle-weighted pseudonormal at the closest point (Bærentzen & Aanæs 2005), which is right
    for any point when the surface is closed and manifold. Triangles ordered inward are
    recognised (negative enclosed volume) and the sign turned round.

    Args:
        points_ras: (N, 3) points, RAS mm.
        surface: closed triangle surface, RAS mm.

    Returns:
        (N,) signed distances in mm.
    """
    points = np.asarray(points_ras, dtype=np.float64).reshape(-1, 3)
    mesh = _as_mesh(surface, "target", DEFAULT_MAX_EDGE_MM)
    if len(points) == 0:
        return np.zeros(0)
    distance, triangle = _closest_triangles(points, mesh)
    corners = mesh.corners[triangle]
    closest, feature = _closest_on_triangles(points, corners[:, 0], corners[:, 1], corners[:, 2])
    normal = mesh.unit_normals[triangle].copy()
    for code, corner in ((_VERTEX_A, 0), (_VERTEX_B, 1), (_VERTEX_C, 2)):
        where = feature == code
        normal[where] = mesh.vertex_pseudonormals[mesh.triangles[triangle[where], corner]]
    for code, edge in ((_EDGE_AB, 0), (_EDGE_BC, 1), (_EDGE_CA, 2)):
        where = feature == code
        normal[where] = mesh.edge_pseudonormals[mesh.edge_ids[triangle[where], edge]]
    side = np.sign(np.einsum("ij,ij->i", points - closest, normal))
    side[side == 0] = 1.0
    if mesh.signed_volume < 0:
        side = -side
    return side * distance


# ----------------------------------------------------------------------------------------------
# Surface metrics


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(values * weights) / np.sum(weights))


def _weighted_percentile(values: np.ndarray, weights: np.ndarray, percentile: float) -> float:
    """Smallest value below which at least ``percentile`` % of the weight lies."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    index = np.searchsorted(cumulative, percentile / 100.0 * cumulative[-1] * (1 - 1e-12))
    return float(values[order][min(index, len(order) - 1)])


def _fraction_within(values: np.ndarray, weights: np.ndarray, tau_mm: float) -> float:
    return float(np.sum(weights[values < tau_mm]) / np.sum(weights))


def _tau_key(tau_mm: float) -> str:
    return f"{float(tau_mm):g}"


def surface_metrics(reconstruction: vtkPolyData, truth: vtkPolyData, taus_mm: tuple[float, ...] = (1.0, 2.0),
                    max_edge_mm: float | None = DEFAULT_MAX_EDGE_MM) -> dict:
    """Symmetric surface metrics of a reconstructed surface against the true one, RAS mm.

    With d(R→T) the area-weighted mean distance from the reconstruction R to the truth T and
    d(T→R) the reverse:

    * ``assd_mm`` = (d(R→T) + d(T→R)) / 2, the average symmetric surface distance;
    * ``chamfer_mm`` = d(R→T) + d(T→R) (the sum of the two means of *unsquared* distances);
    * ``hd95_mm`` = max of the two directed area-weighted 95th percentiles (MONAI's convention);
    * ``f1_by_tau_mm`` = {"τ": F1} with precision P = area fraction of R closer than τ to T,
      recall Q = area fraction of T closer than τ to R, F1 = 2PQ / (P + Q), 0 when both are 0;
    * ``f1``, ``precision``, ``recall`` at the largest τ, which is ``f1_tau_mm``.

    Keys of ``f1_by_tau_mm`` are τ written with ``:g`` ("1", "2", "0.5").
    """
    if not taus_mm:
        raise ValueError("surface_metrics needs at least one tau")
    recon_mesh = _as_mesh(reconstruction, "reconstruction", max_edge_mm)
    truth_mesh = _as_mesh(truth, "truth", max_edge_mm)
    to_truth, recon_weights = _directed(recon_mesh, truth_mesh)
    to_recon, truth_weights = _directed(truth_mesh, recon_mesh)
    mean_to_truth = _weighted_mean(to_truth, recon_weights)
    mean_to_recon = _weighted_mean(to_recon, truth_weights)
    scores = {}
    for tau in taus_mm:
        precision = _fraction_within(to_truth, recon_weights, tau)
        recall = _fraction_within(to_recon, truth_weights, tau)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        scores[float(tau)] = (f1, precision, recall)
    largest = max(scores)
    return {
        "assd_mm": (mean_to_truth + mean_to_recon) / 2,
        "chamfer_mm": mean_to_truth + mean_to_recon,
        "hd95_mm": max(_weighted_percentile(to_truth, recon_weights, 95.0),
                       _weighted_percentile(to_recon, truth_weights, 95.0)),
        "f1_by_tau_mm": {_tau_key(tau): f1 for tau, (f1, _, _) in scores.items()},
        "f1": scores[largest][0],
        "f1_tau_mm": largest,
        "precision": scores[largest][1],
        "recall": scores[largest][2],
    }


# ----------------------------------------------------------------------------------------------
# Between masks and surfaces


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _with_points(surface: vtkPolyData, points: np.ndarray) -> vtkPolyData:
    """A shallow copy of ``surface`` with other point coordinates."""
    moved = vtkPolyData()
    moved.ShallowCopy(surface)
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    moved.SetPoints(vtk_points)
    return moved


def mask_surface(mask_kji: np.ndarray, ijk_to_ras: np.ndarray) -> vtkPolyData:
    """Closed surface (RAS mm, triangles ordered outward, outward point normals) of a binary mask.

    The 0.5 level of the mask between voxel centres (flying edges, no smoothing: this is the
    ground truth), padded by one empty voxel so that the surface closes where the mask touches
    the volume's edge.

    Args:
        mask_kji: boolean or 0/1 array, shape (k, j, i) as SimpleITK gives it.
        ijk_to_ras: 4×4 voxel index (i, j, k) → RAS mm; may be oblique or flip axes.
    """
    mask = np.asarray(mask_kji) != 0
    if mask.ndim != 3:
        raise XreconInputError(f"mask must be 3D (k, j, i), got shape {mask.shape}")
    if not mask.any():
        raise XreconInputError("mask is empty: there is no surface to extract")
    padded = np.pad(mask, 1).astype(np.uint8)
    image = vtkImageData()
    image.SetDimensions(padded.shape[2], padded.shape[1], padded.shape[0])
    image.SetOrigin(-1.0, -1.0, -1.0)
    image.GetPointData().SetScalars(numpy_to_vtk(padded.ravel(), deep=True))  # i varies fastest, as in VTK
    contour = vtkFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, 0.5)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    contour.Update()
    index_surface = contour.GetOutput()
    points_ijk = vtk_to_numpy(index_surface.GetPoints().GetData()).astype(np.float64)
    surface = _with_points(index_surface, _apply(np.asarray(ijk_to_ras, dtype=np.float64), points_ijk))
    mesh = _as_mesh(surface, "mask", None)
    if mesh.signed_volume < 0:  # a mirroring ijk_to_ras (or the contour's own order) turned it inside out
        reverse = vtkReverseSense()
        reverse.SetInputData(surface)
        reverse.ReverseCellsOn()
        reverse.Update()
        surface = reverse.GetOutput()
    normals = vtkPolyDataNormals()
    normals.SetInputData(surface)
    normals.SplittingOff()
    normals.ConsistencyOff()  # already consistent; the check would only cost time
    normals.AutoOrientNormalsOff()
    normals.ComputePointNormalsOn()
    normals.ComputeCellNormalsOff()
    normals.Update()
    result = vtkPolyData()
    result.ShallowCopy(normals.GetOutput())
    return result


def voxelize(surface_ras: vtkPolyData, shape_kji: tuple[int, int, int], ijk_to_ras: np.ndarray) -> np.ndarray:
    """Voxels of a grid whose centres lie inside a closed surface.

    Args:
        surface_ras: closed triangle surface, RAS mm (triangle order does not matter).
        shape_kji: grid shape (k, j, i).
        ijk_to_ras: 4×4 voxel index (i, j, k) → RAS mm of the grid; may be oblique or flip axes.

    Returns:
        bool array of shape (k, j, i); parts of the surface outside the grid are cut off.
    """
    if surface_ras is None or surface_ras.GetNumberOfPoints() == 0 or surface_ras.GetNumberOfCells() == 0:
        raise XreconInputError("surface to voxelize is empty")
    nk, nj, ni = (int(n) for n in shape_kji)
    points = vtk_to_numpy(surface_ras.GetPoints().GetData()).astype(np.float64)
    # In index space the grid is a unit grid at the origin, whatever its direction in RAS.
    in_index_space = _with_points(surface_ras, _apply(np.linalg.inv(np.asarray(ijk_to_ras, dtype=np.float64)), points))
    triangulate = vtkTriangleFilter()
    triangulate.SetInputData(in_index_space)
    triangulate.PassVertsOff()
    triangulate.PassLinesOff()
    stencil = vtkPolyDataToImageStencil()
    stencil.SetInputConnection(triangulate.GetOutputPort())
    stencil.SetOutputOrigin(0.0, 0.0, 0.0)
    stencil.SetOutputSpacing(1.0, 1.0, 1.0)
    stencil.SetOutputWholeExtent(0, ni - 1, 0, nj - 1, 0, nk - 1)
    to_image = vtkImageStencilToImage()
    to_image.SetInputConnection(stencil.GetOutputPort())
    to_image.SetInsideValue(1)
    to_image.SetOutsideValue(0)
    to_image.SetOutputScalarTypeToUnsignedChar()
    to_image.Update()
    voxels = vtk_to_numpy(to_image.GetOutput().GetPointData().GetScalars())
    return voxels.reshape(nk, nj, ni).astype(bool)


def volume_overlap(a_mask: np.ndarray, b_mask: np.ndarray) -> dict:
    """Dice and IoU (Jaccard) of two masks on the same grid.

    Both empty counts as perfect agreement (1.0, nothing predicted where there is nothing);
    one empty and the other not gives 0.
    """
    a, b = np.asarray(a_mask) != 0, np.asarray(b_mask) != 0
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} and {b.shape}")
    intersection = int(np.count_nonzero(a & b))
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return {"dice": 1.0, "iou": 1.0}
    return {"dice": 2.0 * intersection / total, "iou": intersection / (total - intersection)}


def evaluate_structure(reconstruction_ras: vtkPolyData, truth_mask_kji: np.ndarray, ijk_to_ras: np.ndarray,
                       taus_mm: tuple[float, ...] = (1.0, 2.0), truth_surface: vtkPolyData | None = None) -> dict:
    """All metrics of one reconstructed structure against its CT mask.

    The truth surface is the mask's :func:`mask_surface`; Dice and IoU compare the mask with
    the reconstruction voxelised on the mask's grid. ``truth_surface`` saves recomputing it.

    Returns:
        ``assd_mm``, ``hd95_mm``, ``chamfer_mm``, ``dice``, ``f1``, ``f1_tau_mm`` (the keys of
        ``metrics.json``) plus ``iou``, ``precision``, ``recall`` and ``f1_by_tau_mm``; see
        :func:`surface_metrics`. Distances in mm.
    """
    truth_mask = np.asarray(truth_mask_kji) != 0
    if truth_surface is None:
        truth_surface = mask_surface(truth_mask, ijk_to_ras)
    metrics = surface_metrics(reconstruction_ras, truth_surface, taus_mm)
    metrics.update(volume_overlap(voxelize(reconstruction_ras, truth_mask.shape, ijk_to_ras), truth_mask))
    return metrics
