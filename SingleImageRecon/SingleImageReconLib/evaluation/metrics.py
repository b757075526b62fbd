"""How far a reconstructed bone surface is from the CT ground truth: surface distances, F1@τ, Dice.

Everything is in RAS millimetres. Surface metrics compare two closed triangle meshes, each
*sampled* with area weights on pieces of at most 1 mm, so that averages and percentiles do not
depend on how densely a mesh happens to be tessellated. Samples within F1's largest τ of the
other surface are measured exactly (point-to-triangle); farther ones are interpolated from
exact values nearby (:func:`.surface_distance.surface_samples`: within 0.1 mm of measuring
every sample, and much faster far from the surface).

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

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkCommonDataModel import vtkPlane, vtkPlaneCollection
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkPolyDataNormals, vtkReverseSense, vtkTriangleFilter
from vtkmodules.vtkFiltersGeneral import vtkClipClosedSurface
from vtkmodules.vtkImagingStencil import vtkImageStencilToImage, vtkPolyDataToImageStencil

from SyntheticDataGenLib.errors import XreconInputError

from .surface_distance import DEFAULT_MAX_EDGE_MM, NEAR_MM, DistanceTarget, surface_samples
from ..meshes.triangle_mesh import TriangleMesh, as_mesh, polydata_from_arrays


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


@dataclass
class SurfaceComparison:
    """A reconstructed surface against the true one.

    Attributes:
        metrics: see :func:`surface_metrics` (and :func:`evaluate_structure`, which adds
            ``dice`` and ``iou``).
        reconstruction_signed_mm: (N,) signed distance of each point of the reconstruction's
            polydata to the truth, mm, + outside.
        truth_signed_mm: the same for the truth's points, to the reconstruction.
    """

    metrics: dict
    reconstruction_signed_mm: np.ndarray
    truth_signed_mm: np.ndarray


def metrics_from_samples(to_truth: np.ndarray, recon_weights: np.ndarray, to_recon: np.ndarray,
                         truth_weights: np.ndarray, taus_mm: tuple[float, ...]) -> dict:
    """The metrics of :func:`compare_surfaces` from area-weighted samples: distances (mm) from
    the reconstruction's samples to the truth with their weights (mm²), and the reverse."""
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
        "to_truth_mm": mean_to_truth,
        "to_reconstruction_mm": mean_to_recon,
        "hd95_mm": max(_weighted_percentile(to_truth, recon_weights, 95.0),
                       _weighted_percentile(to_recon, truth_weights, 95.0)),
        "f1_by_tau_mm": {_tau_key(tau): f1 for tau, (f1, _, _) in scores.items()},
        "f1": scores[largest][0],
        "f1_tau_mm": largest,
        "precision": scores[largest][1],
        "recall": scores[largest][2],
    }


def compare_surfaces(reconstruction: vtkPolyData, truth: vtkPolyData, taus_mm: tuple[float, ...] = (1.0, 2.0),
                     max_edge_mm: float | None = DEFAULT_MAX_EDGE_MM, near_mm: float = NEAR_MM) -> SurfaceComparison:
    """Symmetric surface metrics of a reconstructed surface against the true one, RAS mm, and
    each surface's point-wise signed distance to the other.

    With d(R→T) the area-weighted mean distance from the reconstruction R to the truth T and
    d(T→R) the reverse:

    * ``assd_mm`` = (d(R→T) + d(T→R)) / 2, the average symmetric surface distance;
    * ``chamfer_mm`` = d(R→T) + d(T→R) (the sum of the two means of *unsquared* distances);
    * ``to_truth_mm`` = d(R→T) and ``to_reconstruction_mm`` = d(T→R), the one-sided means (the
      first is what the reconstruction's ``distance_mm`` colours average, by area);
    * ``hd95_mm`` = max of the two directed area-weighted 95th percentiles (MONAI's convention);
    * ``f1_by_tau_mm`` = {"τ": F1} with precision P = area fraction of R closer than τ to T,
      recall Q = area fraction of T closer than τ to R, F1 = 2PQ / (P + Q), 0 when both are 0;
    * ``f1``, ``precision``, ``recall`` at the largest τ, which is ``f1_tau_mm``.

    Keys of ``f1_by_tau_mm`` are τ written with ``:g`` ("1", "2", "0.5"). Each surface is
    sampled on triangles with edges of at most ``max_edge_mm`` (None: its own), with distances
    measured densely where the surfaces come closer than ``near_mm`` (at least twice the
    largest τ) and interpolated elsewhere (:func:`.surface_distance.surface_samples`).
    """
    return compare_meshes(as_mesh(reconstruction, "reconstruction"), as_mesh(truth, "truth"), taus_mm, max_edge_mm,
                          near_mm)


def compare_meshes(recon_mesh: TriangleMesh, truth_mesh: TriangleMesh, taus_mm: tuple[float, ...] = (1.0, 2.0),
                   max_edge_mm: float | None = DEFAULT_MAX_EDGE_MM, near_mm: float = NEAR_MM) -> SurfaceComparison:
    """:func:`compare_surfaces` of two meshes."""
    if not taus_mm:
        raise ValueError("surface_metrics needs at least one tau")
    exact_below_mm = max(taus_mm)
    near_mm = max(float(near_mm), 2.0 * exact_below_mm)
    recon_samples = surface_samples(recon_mesh, DistanceTarget(truth_mesh), exact_below_mm, near_mm, max_edge_mm)
    truth_samples = surface_samples(truth_mesh, DistanceTarget(recon_mesh), exact_below_mm, near_mm, max_edge_mm)
    metrics = metrics_from_samples(recon_samples.distances_mm, recon_samples.weights,
                                   truth_samples.distances_mm, truth_samples.weights, taus_mm)
    return SurfaceComparison(metrics, recon_samples.vertex_signed_mm[recon_mesh.vertex_of_input],
                             truth_samples.vertex_signed_mm[truth_mesh.vertex_of_input])


def surface_metrics(reconstruction: vtkPolyData, truth: vtkPolyData, taus_mm: tuple[float, ...] = (1.0, 2.0),
                    max_edge_mm: float | None = DEFAULT_MAX_EDGE_MM) -> dict:
    """The metrics of :func:`compare_surfaces`."""
    return compare_surfaces(reconstruction, truth, taus_mm, max_edge_mm).metrics


def surface_distances(a: vtkPolyData, b: vtkPolyData, max_edge_mm: float | None = DEFAULT_MAX_EDGE_MM
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned distances (mm) from area-weighted samples of surface ``a`` to surface ``b``, and
    the samples' weights (mm²; they sum to the area of ``a``). ``a`` is sampled with edges of
    ``max_edge_mm`` (None: at its vertices) wherever it comes within 5 mm of ``b``."""
    samples = surface_samples(as_mesh(a, "first"), DistanceTarget(as_mesh(b, "second")), max_edge_mm=max_edge_mm)
    return samples.distances_mm, samples.weights


def signed_distance_to(points_ras: np.ndarray, surface: vtkPolyData) -> np.ndarray:
    """Signed distance (mm) from (N, 3) RAS points to a closed surface: + outside, − inside."""
    points = np.asarray(points_ras, dtype=np.float64).reshape(-1, 3)
    return DistanceTarget(as_mesh(surface, "target")).signed_distances(points)


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
    if as_mesh(surface, "mask").signed_volume < 0:  # a mirroring ijk_to_ras (or the contour's own order) turned it inside out
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


def cut_sides(mask_kji: np.ndarray) -> list[tuple[int, int]]:
    """The volume faces a mask touches, as (axis: 0 i, 1 j, 2 k; side: -1 first layer, +1 last):
    where the scan cuts the structure off."""
    mask = np.asarray(mask_kji) != 0
    sides = []
    for axis in range(3):
        layers = np.moveaxis(mask, 2 - axis, 0)
        sides += [(axis, side) for side, layer in ((-1, layers[0]), (1, layers[-1])) if layer.any()]
    return sides


def clip_to_scan(surface: vtkPolyData, shape_kji: tuple[int, int, int], ijk_to_ras: np.ndarray,
                 sides: list[tuple[int, int]]) -> vtkPolyData:
    """A closed RAS surface cut off, and capped, where the scan ends on each of ``sides``
    (:func:`cut_sides`): at the same place as the label's surface (:func:`mask_surface`), half a
    voxel past the last layer. A reconstruction that completes a bone beyond the scan is then
    compared with what the scan holds, not with a truth that is not known there."""
    if not sides:
        return surface
    inverse = np.linalg.inv(ijk_to_ras)
    planes = vtkPlaneCollection()
    for axis, side in sides:
        index = np.zeros(3)
        index[axis] = -0.5 if side < 0 else shape_kji[2 - axis] - 0.5
        gradient = inverse[axis, :3] / np.linalg.norm(inverse[axis, :3])  # of the index along axis, in RAS
        plane = vtkPlane()
        plane.SetOrigin(*(ijk_to_ras @ np.r_[index, 1.0])[:3])
        plane.SetNormal(*(-side * gradient))  # VTK keeps the side the normal points to
        planes.AddItem(plane)
    clip = vtkClipClosedSurface()
    clip.SetInputData(surface)
    clip.SetClippingPlanes(planes)
    clip.Update()
    return clip.GetOutput()


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
                       taus_mm: tuple[float, ...] = (1.0, 2.0), truth_surface: vtkPolyData | None = None
                       ) -> SurfaceComparison:
    """All metrics of one reconstructed structure against its CT mask, with each surface's
    signed distance to the other.

    The truth surface is the mask's :func:`mask_surface`; Dice and IoU compare the mask with
    the reconstruction voxelised on the mask's grid. ``truth_surface`` saves recomputing it.

    Returns:
        metrics ``assd_mm``, ``hd95_mm``, ``chamfer_mm``, ``dice``, ``f1``, ``f1_tau_mm`` (the
        keys of ``metrics.json``) plus ``iou``, ``precision``, ``recall`` and ``f1_by_tau_mm``; see
        :func:`compare_surfaces`. Distances in mm.
    """
    truth_mask = np.asarray(truth_mask_kji) != 0
    if truth_surface is None:
        truth_surface = mask_surface(truth_mask, ijk_to_ras)
    return evaluate_meshes(as_mesh(reconstruction_ras, "reconstruction"), as_mesh(truth_surface, "truth"), truth_mask,
                           ijk_to_ras, taus_mm)


def evaluate_meshes(recon_mesh: TriangleMesh, truth_mesh: TriangleMesh, truth_mask_kji: np.ndarray,
                    ijk_to_ras: np.ndarray, taus_mm: tuple[float, ...] = (1.0, 2.0)) -> SurfaceComparison:
    """:func:`evaluate_structure` of meshes: numpy arrays only, so that it can run in another process."""
    truth_mask = np.asarray(truth_mask_kji) != 0
    comparison = compare_meshes(recon_mesh, truth_mesh, taus_mm)
    voxels = voxelize(polydata_from_arrays(recon_mesh.points, recon_mesh.triangles), truth_mask.shape, ijk_to_ras)
    comparison.metrics.update(volume_overlap(voxels, truth_mask))
    return comparison
