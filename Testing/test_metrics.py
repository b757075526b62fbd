"""Surface and volume metrics on shapes whose answers are known, and against MONAI on masks."""

import math
import warnings

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFeatureEdges, vtkImplicitPolyDataDistance
from vtkmodules.vtkFiltersSources import vtkPlaneSource, vtkSphereSource

from SingleImageReconLib.evaluation.metrics import (evaluate_structure, mask_surface, signed_distance_to, surface_distances,
                                         surface_metrics, volume_overlap, voxelize)
from SyntheticDataGenLib.errors import XreconInputError


def _sphere(radius: float, resolution: int = 120, centre=(0.0, 0.0, 0.0)) -> vtkPolyData:
    source = vtkSphereSource()
    source.SetRadius(radius)
    source.SetCenter(*centre)
    source.SetThetaResolution(resolution)
    source.SetPhiResolution(resolution)
    source.Update()
    return source.GetOutput()


def _points(surface: vtkPolyData) -> np.ndarray:
    return vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)


def _triangles(surface: vtkPolyData) -> np.ndarray:
    return vtk_to_numpy(surface.GetPolys().GetConnectivityArray()).reshape(-1, 3)


def _faceting_mm(sphere: vtkPolyData, radius: float, centre=(0.0, 0.0, 0.0)) -> float:
    """How far the tessellated sphere dips inside the true one: radius − nearest facet plane.

    The polyhedron lies between the balls of radius (radius − this) and radius, which bounds
    every distance measured on it.
    """
    corners = _points(sphere)[_triangles(sphere)] - centre
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return float(radius - np.abs(np.einsum("ij,ij->i", normals, corners[:, 0])).min())


def _grid(shape_kji, matrix_3x3, origin=(0.0, 0.0, 0.0)):
    """ijk_to_ras and the RAS position of every voxel centre, shape (k, j, i, 3)."""
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = matrix_3x3
    ijk_to_ras[:3, 3] = origin
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape_kji], indexing="ij")
    return ijk_to_ras, np.stack([i, j, k], axis=-1) @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]


def _ellipsoid(ras, centre, radii) -> np.ndarray:
    return (((ras - np.asarray(centre)) / np.asarray(radii)) ** 2).sum(axis=-1) <= 1.0


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = math.radians(degrees)
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


# Permuted and mirrored axes (det < 0), and oblique axes with anisotropic spacing (det > 0).
GRIDS = {
    "permuted-flipped": np.array([[0.0, 0.0, 0.8], [1.0, 0.0, 0.0], [0.0, -1.2, 0.0]]),
    "oblique": _rotation((1, 1, 0), 30) @ np.diag([1.0, 1.2, 0.8]),
}


# ----------------------------------------------------------------------------------------------
# Surface distances


def test_concentric_spheres_are_two_millimetres_apart():
    inner, outer = _sphere(20.0, 120), _sphere(22.0, 130)
    tolerance = max(_faceting_mm(inner, 20.0), _faceting_mm(outer, 22.0)) + 1e-9
    assert tolerance < 0.02  # the check below means something
    metrics = surface_metrics(inner, outer, taus_mm=(1.0, 3.0))
    assert metrics["assd_mm"] == pytest.approx(2.0, abs=tolerance)
    assert metrics["hd95_mm"] == pytest.approx(2.0, abs=tolerance)
    assert metrics["chamfer_mm"] == pytest.approx(4.0, abs=2 * tolerance)
    assert metrics["f1_by_tau_mm"] == {"1": 0.0, "3": 1.0}
    assert (metrics["f1"], metrics["f1_tau_mm"], metrics["precision"], metrics["recall"]) == (1.0, 3.0, 1.0, 1.0)
    distances, weights = surface_distances(inner, outer)
    assert np.all(np.abs(distances - 2.0) <= tolerance)
    assert weights.sum() == pytest.approx(4 * math.pi * 20.0 ** 2, rel=2 * tolerance / 20.0)


def test_identical_surfaces_score_perfectly():
    sphere = _sphere(15.0, 60)
    metrics = surface_metrics(sphere, sphere, taus_mm=(0.5, 1.0))
    for key in ("assd_mm", "hd95_mm", "chamfer_mm"):
        assert metrics[key] == pytest.approx(0.0, abs=1e-9)
    assert metrics["f1_by_tau_mm"] == {"0.5": 1.0, "1": 1.0}
    assert metrics["f1"] == 1.0


def test_averages_are_area_weighted_whatever_the_tessellation():
    # A 10 × 10 mm square at z = 0 whose vertices crowd at x = 0, against a plane tilted about
    # the y axis: the distance is x·sin(α), linear on every triangle, so the area-weighted
    # vertex mean is exactly its mean over the square, 5·sin(α), while a plain vertex mean is far off.
    xs = 10.0 * np.linspace(0.0, 1.0, 30) ** 3
    points = np.array([[x, y, 0.0] for x in xs for y in (0.0, 10.0)])
    vtk_points = vtkPoints()
    for point in points:
        vtk_points.InsertNextPoint(*point)
    cells = vtkCellArray()
    for column in range(len(xs) - 1):
        a, b, c, d = 2 * column, 2 * column + 1, 2 * column + 2, 2 * column + 3
        for triangle in ((a, c, b), (b, c, d)):
            cells.InsertNextCell(3, triangle)
    strip = vtkPolyData()
    strip.SetPoints(vtk_points)
    strip.SetPolys(cells)
    alpha = math.radians(20.0)
    plane = vtkPlaneSource()
    plane.SetOrigin(-5 * math.cos(alpha), -5.0, -5 * math.sin(alpha))
    plane.SetPoint1(20 * math.cos(alpha), -5.0, 20 * math.sin(alpha))
    plane.SetPoint2(-5 * math.cos(alpha), 15.0, -5 * math.sin(alpha))
    plane.Update()
    for max_edge_mm in (None, 1.0):
        distances, weights = surface_distances(strip, plane.GetOutput(), max_edge_mm=max_edge_mm)
        assert weights.sum() == pytest.approx(100.0)
        mean = np.sum(distances * weights) / weights.sum()
        assert mean == pytest.approx(5 * math.sin(alpha), rel=1e-6)  # points are float32
    distances, _ = surface_distances(strip, plane.GetOutput(), max_edge_mm=None)
    assert distances.mean() < 0.8 * 5 * math.sin(alpha)  # what vertex density alone would give


@pytest.mark.parametrize("spacing_ijk, offset, radii_a, radii_b, axis_mix_up_shows", [
    ((1.0, 1.2, 0.8), (1.5, -1.0, 2.0), (12.0, 10.0, 9.0), (13.0, 9.0, 10.0), False),
    ((0.6, 1.5, 1.0), (2.0, -0.5, 0.3), (10.6, 12.8, 8.7), (13.3, 11.6, 8.3), True),
])
def test_mesh_distances_agree_with_monai_on_masks(spacing_ijk, offset, radii_a, radii_b, axis_mix_up_shows):
    torch = pytest.importorskip("torch")
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    shape = (40, 36, 48)  # (k, j, i)
    ijk_to_ras, ras = _grid(shape, np.diag([-1.0, 1.0, 1.0]) @ np.diag(spacing_ijk), origin=(20.0, -15.0, 5.0))
    centre = ras[20, 18, 24]
    truth = _ellipsoid(ras, centre, radii_a)
    predicted = _ellipsoid(ras, centre + offset, radii_b)
    ours = surface_metrics(mask_surface(predicted, ijk_to_ras), mask_surface(truth, ijk_to_ras))
    # MONAI measures on the (k, j, i) array, so its spacing is the ijk spacing reversed.
    spacing_kji = tuple(float(s) for s in spacing_ijk[::-1])
    y_pred, y = torch.from_numpy(predicted[None, None]), torch.from_numpy(truth[None, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI's own deprecated argument inside
        assd = compute_average_surface_distance(y_pred, y, include_background=True, symmetric=True,
                                                spacing=spacing_kji).item()
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95,
                                          spacing=spacing_kji).item()
        hd95_axes_mixed_up = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95,
                                                        spacing=tuple(float(s) for s in spacing_ijk)).item()
    half_voxel = max(spacing_ijk) / 2
    assert ours["assd_mm"] == pytest.approx(assd, abs=half_voxel)
    assert ours["hd95_mm"] == pytest.approx(hd95, abs=half_voxel)
    if axis_mix_up_shows:  # the tolerance is tight enough to see spacing given in the wrong axis order
        assert abs(ours["hd95_mm"] - hd95_axes_mixed_up) > half_voxel


# ----------------------------------------------------------------------------------------------
# Masks, surfaces and voxels


@pytest.mark.parametrize("grid", GRIDS)
def test_mask_surface_is_in_place_closed_and_outward(grid):
    shape = (30, 34, 38)
    ijk_to_ras, ras = _grid(shape, GRIDS[grid], origin=(5.0, -7.0, 11.0))
    centre, radii = ras[15, 17, 19], np.array([9.0, 7.0, 8.0])
    mask = _ellipsoid(ras, centre, radii)
    surface = mask_surface(mask, ijk_to_ras)
    points = _points(surface)
    # In RAS where the ellipsoid is: every vertex within a voxel of its analytic surface.
    on_surface = np.linalg.norm((points - centre) / radii, axis=1)
    assert np.all(np.abs(on_surface - 1.0) * radii.min() < 1.3)
    edges = vtkFeatureEdges()
    edges.SetInputData(surface)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    assert edges.GetOutput().GetNumberOfCells() == 0
    corners = points[_triangles(surface)]
    volume = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0
    voxel_volume = abs(np.linalg.det(ijk_to_ras[:3, :3]))
    assert volume == pytest.approx(mask.sum() * voxel_volume, rel=0.05)  # positive: triangles face outward
    normals = vtk_to_numpy(surface.GetPointData().GetNormals())
    assert np.mean(np.einsum("ij,ij->i", normals, points - centre) > 0) > 0.99


@pytest.mark.parametrize("grid", GRIDS)
def test_voxelize_gives_back_the_mask(grid):
    shape = (30, 34, 38)
    ijk_to_ras, ras = _grid(shape, GRIDS[grid], origin=(5.0, -7.0, 11.0))
    mask = _ellipsoid(ras, ras[15, 17, 19], (9.0, 7.0, 8.0)) | _ellipsoid(ras, ras[12, 12, 12], (4.0, 5.0, 4.0))
    voxels = voxelize(mask_surface(mask, ijk_to_ras), mask.shape, ijk_to_ras)
    assert voxels.shape == mask.shape
    assert volume_overlap(voxels, mask)["dice"] > 0.99


def test_dice_of_two_spheres_matches_the_analytic_lens():
    big, small, apart = 8.0, 6.0, 5.0
    shape = (40, 50, 50)
    ijk_to_ras, _ = _grid(shape, np.diag([0.5, 0.5, 0.5]), origin=(-12.0, -12.0, -9.0))
    a = voxelize(_sphere(big, 80), shape, ijk_to_ras)
    b = voxelize(_sphere(small, 80, centre=(apart, 0.0, 0.0)), shape, ijk_to_ras)
    lens = (math.pi * (big + small - apart) ** 2
            * (apart ** 2 + 2 * apart * small - 3 * small ** 2 + 2 * apart * big + 6 * small * big - 3 * big ** 2)
            / (12 * apart))
    volumes = 4 / 3 * math.pi * (big ** 3 + small ** 3)
    overlap = volume_overlap(a, b)
    assert overlap["dice"] == pytest.approx(2 * lens / volumes, rel=0.03)
    assert overlap["iou"] == pytest.approx(lens / (volumes - lens), rel=0.03)
    assert a.sum() * 0.125 == pytest.approx(4 / 3 * math.pi * big ** 3, rel=0.03)


def test_volume_overlap_conventions():
    empty = np.zeros((3, 3, 3), dtype=bool)
    full = np.ones((3, 3, 3), dtype=bool)
    half = full.copy()
    half[:, :, :1] = False
    assert volume_overlap(empty, empty) == {"dice": 1.0, "iou": 1.0}
    assert volume_overlap(full, empty) == {"dice": 0.0, "iou": 0.0}
    assert volume_overlap(full, half) == pytest.approx({"dice": 2 * 18 / 45, "iou": 18 / 27})


# ----------------------------------------------------------------------------------------------
# Signed distance


def test_signed_distance_is_negative_inside_and_positive_outside_a_sphere():
    sphere = _sphere(20.0, 120)
    directions = np.random.default_rng(0).normal(size=(200, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    signed = signed_distance_to(np.concatenate([10 * directions, 30 * directions]), sphere)
    tolerance = _faceting_mm(sphere, 20.0) + 1e-9
    np.testing.assert_allclose(signed[:200], -10.0, atol=tolerance)
    np.testing.assert_allclose(signed[200:], 10.0, atol=tolerance)


def test_signed_distance_on_a_staircase_surface_is_exact_and_has_the_right_sign():
    ijk_to_ras, ras = _grid((24, 26, 28), GRIDS["permuted-flipped"], origin=(3.0, 4.0, -5.0))
    # Two overlapping blobs: concave creases as well as the staircase's convex and concave edges.
    mask = _ellipsoid(ras, ras[12, 13, 10], (7.0, 6.0, 6.0)) | _ellipsoid(ras, ras[12, 13, 18], (5.0, 7.0, 5.0))
    surface = mask_surface(mask, ijk_to_ras)
    signed = signed_distance_to(ras.reshape(-1, 3), surface)
    # Marching cubes separates every voxel centre from its neighbours of the other value.
    assert np.array_equal(signed < 0, mask.ravel())
    reference = vtkImplicitPolyDataDistance()
    reference.SetInput(surface)
    probes = np.random.default_rng(1).uniform(ras.min(axis=(0, 1, 2)), ras.max(axis=(0, 1, 2)), size=(300, 3))
    expected = np.array([abs(reference.EvaluateFunction(*probe)) for probe in probes])
    np.testing.assert_allclose(np.abs(signed_distance_to(probes, surface)), expected, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# One structure


def test_evaluate_structure_reports_the_metrics_json_keys():
    ijk_to_ras, ras = _grid((30, 34, 38), GRIDS["oblique"], origin=(5.0, -7.0, 11.0))
    truth = _ellipsoid(ras, ras[15, 17, 19], (9.0, 7.0, 8.0))
    shifted = _ellipsoid(ras, ras[15, 17, 19] + (1.0, 0.5, 0.0), (9.0, 7.5, 8.0))
    metrics = evaluate_structure(mask_surface(shifted, ijk_to_ras), truth, ijk_to_ras).metrics
    assert set(metrics) == {"assd_mm", "hd95_mm", "chamfer_mm", "to_truth_mm", "to_reconstruction_mm", "dice", "f1",
                            "f1_tau_mm", "iou", "precision", "recall", "f1_by_tau_mm"}
    assert metrics["to_truth_mm"] + metrics["to_reconstruction_mm"] == pytest.approx(metrics["chamfer_mm"])
    assert metrics["dice"] == pytest.approx(volume_overlap(shifted, truth)["dice"], abs=0.01)
    assert 0 < metrics["assd_mm"] < metrics["hd95_mm"] < 3.0
    assert metrics["chamfer_mm"] == pytest.approx(2 * metrics["assd_mm"])
    assert metrics["f1_tau_mm"] == 2.0 and set(metrics["f1_by_tau_mm"]) == {"1", "2"}
    assert 0 < metrics["f1_by_tau_mm"]["1"] < metrics["f1"] <= 1


def test_empty_inputs_raise_input_errors():
    ijk_to_ras = np.eye(4)
    with pytest.raises(XreconInputError, match="empty"):
        mask_surface(np.zeros((4, 4, 4), dtype=bool), ijk_to_ras)
    with pytest.raises(XreconInputError, match="reconstruction surface is empty"):
        surface_metrics(vtkPolyData(), _sphere(5.0, 12))
    with pytest.raises(XreconInputError, match="empty"):
        evaluate_structure(_sphere(5.0, 12), np.zeros((4, 4, 4), dtype=bool), ijk_to_ras)
    with pytest.raises(XreconInputError, match="empty"):
        voxelize(vtkPolyData(), (4, 4, 4), ijk_to_ras)
