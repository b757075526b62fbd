"""Surfaces from dual-face depth maps: exact evidence of known shapes gives the shapes back.

Evidence is exact here: an ellipsoid's depths come from intersecting each pixel's ray with it
(a quadratic), a voxel shape's from the depth renderer that makes training targets. What is
checked is the lifting to 3D (surface.py), the choice of views (view_consistency.py), the
tidying of predictions (evidence_cleanup.py) and how reconstruction/reconstruct.py strings them together.
"""

from __future__ import annotations

import numpy as np
import pytest
import vtk
from scipy import ndimage
from vtk.util import numpy_support

from conftest import sample_bone_ap_view
from SingleImageReconLib.reconstruction.evidence_cleanup import clean_evidence
from SingleImageReconLib.evaluation.metrics import mask_surface, surface_metrics
from SingleImageReconLib.reconstruction.reconstruct import surfaces_from_evidence
from SingleImageReconLib.reconstruction.surface import BACK, FRONT, SILHOUETTE, Grid, ViewEvidence, signed_distance, surface_from_views
from SingleImageReconLib.reconstruction.view_consistency import consistent_views
from SyntheticDataGenLib.projection.geometry import preset_geometry

DETECTOR_PX = (128, 128)
PIXEL_MM = (1.2, 1.2)  # about 1 mm at the isocentre (magnification 1100/900)

# ----------------------------------------------------------------------------------------------
# Shapes and their exact evidence

ELLIPSOID_CENTRE = np.array([5.0, -3.0, 10.0])
ELLIPSOID_RADII = np.array([30.0, 20.0, 45.0])


def _geometry(name: str, centre, lao_deg: float = 0.0, cranial_deg: float = 0.0):
    return preset_geometry(name, isocenter_ras_mm=centre, size_px=DETECTOR_PX, pixel_spacing_mm=PIXEL_MM,
                           lao_deg=lao_deg, cranial_deg=cranial_deg)


def ellipsoid_view(name: str, lao_deg: float = 0.0, cranial_deg: float = 0.0) -> ViewEvidence:
    """Exact mask and depths of the ellipsoid: each ray source + t·d solved against it."""
    geometry = _geometry(name, ELLIPSOID_CENTRE, lao_deg, cranial_deg)
    direction = geometry.ray_directions_ras() / ELLIPSOID_RADII
    start = (geometry.source_ras_mm - ELLIPSOID_CENTRE) / ELLIPSOID_RADII
    a = (direction ** 2).sum(axis=-1)
    b = 2.0 * (direction * start).sum(axis=-1)
    c = (start ** 2).sum() - 1.0
    discriminant = b * b - 4 * a * c
    hit = discriminant > 0
    root = np.sqrt(np.where(hit, discriminant, 0.0))
    front = np.where(hit, (-b - root) / (2 * a), 0.0)
    back = np.where(hit, (-b + root) / (2 * a), 0.0)
    return ViewEvidence(geometry, hit, front, back)


def ellipsoid_surface(resolution: int = 200) -> vtk.vtkPolyData:
    """The ellipsoid finely tessellated: a unit sphere scaled and moved."""
    sphere = vtk.vtkSphereSource()
    sphere.SetRadius(1.0)
    sphere.SetThetaResolution(resolution)
    sphere.SetPhiResolution(resolution)
    transform = vtk.vtkTransform()
    transform.Translate(*ELLIPSOID_CENTRE)
    transform.Scale(*ELLIPSOID_RADII)
    moved = vtk.vtkTransformPolyDataFilter()
    moved.SetInputConnection(sphere.GetOutputPort())
    moved.SetTransform(transform)
    moved.Update()
    return moved.GetOutput()


U_ISOCENTRE = np.array([10.0, -20.0, 30.0])
U_VOXEL_MM = 0.75


def u_shape() -> tuple[np.ndarray, np.ndarray]:
    """A U of three rods (radius 8 mm) seen from above: two along x at y = ±20 mm and a bridge
    along y at x = +30 mm, centred on U_ISOCENTRE. An AP ray through one rod passes through
    the other, so one AP view fills the 24 mm gap between them.

    Returns the (k, j, i) mask and its ijk_to_ras, on a grid whose i and j run R→L and A→P, as
    a CT in LPS would.
    """
    shape_kji = (40, 90, 120)
    ijk_to_ras = np.diag([-U_VOXEL_MM, -U_VOXEL_MM, U_VOXEL_MM, 1.0])
    extent = np.array(shape_kji[::-1]) * U_VOXEL_MM
    ijk_to_ras[:3, 3] = U_ISOCENTRE + np.array([extent[0] / 2, extent[1] / 2, -extent[2] / 2])
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape_kji], indexing="ij")
    ras = np.stack([i, j, k], axis=-1) @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3] - U_ISOCENTRE
    x, y, z = ras[..., 0], ras[..., 1], ras[..., 2]
    radius = 8.0
    rods = [((y - side) ** 2 + z ** 2 <= radius ** 2) & (np.abs(x) <= 30) for side in (-20.0, 20.0)]
    bridge = ((x - 30) ** 2 + z ** 2 <= radius ** 2) & (np.abs(y) <= 20)
    return rods[0] | rods[1] | bridge, ijk_to_ras


def rendered_view(mask_kji, ijk_to_ras, name: str, lao_deg: float = 0.0, cranial_deg: float = 0.0) -> ViewEvidence:
    return ViewEvidence.rendered(mask_kji, ijk_to_ras, _geometry(name, U_ISOCENTRE, lao_deg, cranial_deg))


# ----------------------------------------------------------------------------------------------
# Mesh checks


def _points(surface) -> np.ndarray:
    return numpy_support.vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)


def _triangles(surface) -> np.ndarray:
    triangulate = vtk.vtkTriangleFilter()
    triangulate.SetInputData(surface)
    triangulate.Update()
    polys = triangulate.GetOutput().GetPolys()
    return numpy_support.vtk_to_numpy(polys.GetConnectivityArray()).reshape(-1, 3)


def signed_volume(surface) -> float:
    """Enclosed volume (mm³) by the divergence theorem; negative when triangles face inward."""
    corners = _points(surface)[_triangles(surface)]
    return float(np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0)


def open_and_non_manifold_edges(surface) -> tuple[int, int]:
    counts = []
    for boundary in (True, False):
        edges = vtk.vtkFeatureEdges()
        edges.SetInputData(surface)
        edges.FeatureEdgesOff()
        edges.ManifoldEdgesOff()
        edges.SetBoundaryEdges(boundary)
        edges.SetNonManifoldEdges(not boundary)
        edges.Update()
        counts.append(edges.GetOutput().GetNumberOfCells())
    return counts[0], counts[1]


def assd(surface, truth) -> float:
    return surface_metrics(surface, truth)["assd_mm"]


def point_array(surface, name: str) -> np.ndarray:
    array = surface.GetPointData().GetArray(name)
    assert array is not None, f"no point array {name!r}"
    return numpy_support.vtk_to_numpy(array)


# ----------------------------------------------------------------------------------------------
# Fixtures (each shape and its views are made once)


@pytest.fixture(scope="module")
def ellipsoid_truth():
    return ellipsoid_surface()


@pytest.fixture(scope="module")
def ellipsoid_views():
    """AP, lateral-left and a 45° LAO oblique of the ellipsoid."""
    return [ellipsoid_view("ap"), ellipsoid_view("lateral-left"), ellipsoid_view("ap", lao_deg=45.0)]


@pytest.fixture(scope="module")
def ellipsoid_from_ap(ellipsoid_views):
    """The ellipsoid's surface from its AP view alone."""
    return surface_from_views(ellipsoid_views[:1], 1.0)


@pytest.fixture(scope="module")
def ellipsoid_fused(ellipsoid_views):
    """The three-view fusion of the ellipsoid."""
    return surface_from_views(ellipsoid_views, 1.0)


@pytest.fixture(scope="module")
def ellipsoid_fused_assd(ellipsoid_fused, ellipsoid_truth):
    return assd(ellipsoid_fused, ellipsoid_truth)


@pytest.fixture(scope="module")
def u():
    mask, ijk_to_ras = u_shape()
    views = [rendered_view(mask, ijk_to_ras, "ap"), rendered_view(mask, ijk_to_ras, "lateral-left"),
             rendered_view(mask, ijk_to_ras, "ap", lao_deg=45.0)]
    return {"mask": mask, "ijk_to_ras": ijk_to_ras, "views": views, "truth": mask_surface(mask, ijk_to_ras)}


# ----------------------------------------------------------------------------------------------
# One view of a convex shape


def test_one_view_of_an_ellipsoid_gives_it_back_closed_and_sub_voxel(ellipsoid_from_ap, ellipsoid_truth):
    surface = ellipsoid_from_ap
    assert surface is not None and surface.GetNumberOfPoints() > 1000
    assert open_and_non_manifold_edges(surface) == (0, 0)
    metrics = surface_metrics(surface, ellipsoid_truth)
    assert metrics["assd_mm"] < 0.25, metrics  # about 0.04 mm: the grid is 1 mm
    assert metrics["hd95_mm"] < 0.75, metrics
    # in RAS where the ellipsoid is (a frame or sign error would move or mirror it)
    bounds = np.array(surface.GetBounds()).reshape(3, 2)
    expected = np.stack([ELLIPSOID_CENTRE - ELLIPSOID_RADII, ELLIPSOID_CENTRE + ELLIPSOID_RADII], axis=1)
    np.testing.assert_allclose(bounds, expected, atol=1.0)


def test_surface_faces_outward_and_encloses_the_right_volume(ellipsoid_from_ap):
    surface = ellipsoid_from_ap
    true_volume = 4.0 / 3.0 * np.pi * np.prod(ELLIPSOID_RADII)
    volume = signed_volume(surface)
    assert volume > 0, "triangles are ordered inward"
    assert volume == pytest.approx(true_volume, rel=0.02)
    mass = vtk.vtkMassProperties()
    mass.SetInputData(surface)
    mass.Update()
    assert mass.GetVolume() == pytest.approx(true_volume, rel=0.02)
    normals = point_array(surface, "Normals")
    radial = (_points(surface) - ELLIPSOID_CENTRE) / ELLIPSOID_RADII ** 2  # the ellipsoid's outward gradient
    assert np.mean(np.einsum("ij,ij->i", normals, radial) > 0) > 0.99


def test_each_view_of_a_convex_shape_is_exact_and_fusing_them_keeps_it(ellipsoid_fused, ellipsoid_fused_assd):
    """Between the two faces a convex shape has no hidden part: any one view is exact."""
    assert open_and_non_manifold_edges(ellipsoid_fused) == (0, 0)
    assert ellipsoid_fused_assd < 0.25


def test_signed_distance_is_positive_inside_negative_outside_and_about_mm(ellipsoid_views):
    centre = ELLIPSOID_CENTRE
    points = np.array([centre,  # deep inside
                       centre + [0, 0, ELLIPSOID_RADII[2] - 3],  # 3 mm inside the top
                       centre + [0, 0, ELLIPSOID_RADII[2] + 3],  # 3 mm above it
                       centre + [ELLIPSOID_RADII[0] + 5, 0, 0],  # 5 mm right of it
                       centre + [0, ELLIPSOID_RADII[1] + 4, 0],  # 4 mm in front of it
                       centre + [0, 0, 500.0]])  # off every detector (all beams are axial)
    distance, view, constraint = signed_distance(points, ellipsoid_views)
    assert distance[0] > 15
    assert distance[1] == pytest.approx(3.0, abs=0.6)
    assert distance[2] == pytest.approx(-3.0, abs=0.6)
    # outside, the fused value is the most negative view's: a bound, not the distance
    assert -15 < distance[3] < -4 and -15 < distance[4] < -3
    assert distance[5] == -np.inf and view[5] == -1
    assert set(view[:5]) <= {0, 1, 2} and set(constraint[:5]) <= {FRONT, BACK, SILHOUETTE}
    # one AP view: beside the bone its silhouette tells the distance, in front of it the front face
    distance, view, constraint = signed_distance(points[3:5], ellipsoid_views[:1])
    assert distance[0] == pytest.approx(-5.0, abs=0.6) and constraint[0] == SILHOUETTE
    assert distance[1] == pytest.approx(-4.0, abs=0.6) and constraint[1] == FRONT


def test_grid_covers_the_views_boxes(ellipsoid_views):
    grid = Grid.around(ellipsoid_views, 1.0)
    low, high = grid.origin_ras_mm, grid.origin_ras_mm + grid.spacing_mm * (np.array(grid.size_ijk) - 1)
    assert np.all(low < ELLIPSOID_CENTRE - ELLIPSOID_RADII) and np.all(high > ELLIPSOID_CENTRE + ELLIPSOID_RADII)
    assert grid.spacing_mm == 1.0
    assert Grid.around([], 1.0) is None


# ----------------------------------------------------------------------------------------------
# Several views of a non-convex shape


def test_fusion_carves_what_one_view_of_a_non_convex_shape_fills(u):
    single = surface_from_views(u["views"][:1], 1.0)
    fused = surface_from_views(u["views"], 1.0)
    assert open_and_non_manifold_edges(fused) == (0, 0)
    single_assd, fused_assd = assd(single, u["truth"]), assd(fused, u["truth"])
    # one AP view fills the gap between the arms (about 1.8 mm ASSD); three views carve it (about 0.5 mm)
    assert fused_assd < 0.6 * single_assd, (single_assd, fused_assd)
    assert fused_assd < 1.0
    true_volume = u["mask"].sum() * U_VOXEL_MM ** 3
    assert signed_volume(single) > 1.5 * true_volume  # the filled gap
    assert signed_volume(fused) == pytest.approx(true_volume, rel=0.15)


def _truncated_ellipsoid_view() -> ViewEvidence:
    """AP view of the ellipsoid with the isocentre 40 mm above its centre: its lower part runs
    off the detector's lower edge, as a femur does on a pelvis radiograph."""
    geometry = _geometry("ap", ELLIPSOID_CENTRE + [0.0, 0.0, 40.0])
    direction = geometry.ray_directions_ras() / ELLIPSOID_RADII
    start = (geometry.source_ras_mm - ELLIPSOID_CENTRE) / ELLIPSOID_RADII
    a, b, c = (direction ** 2).sum(-1), 2.0 * (direction * start).sum(-1), (start ** 2).sum() - 1.0
    discriminant = b * b - 4 * a * c
    hit = discriminant > 0
    root = np.sqrt(np.where(hit, discriminant, 0.0))
    return ViewEvidence(geometry, hit, np.where(hit, (-b - root) / (2 * a), 0.0),
                        np.where(hit, (-b + root) / (2 * a), 0.0))


def test_points_no_view_sees_are_marked_view_minus_one():
    view = _truncated_ellipsoid_view()
    assert view.mask[-1].any(), "the ellipsoid should run off the detector"
    surface = surface_from_views([view], 1.0)
    uv, _ = view.geometry.project(_points(surface))
    seen = view.geometry.on_detector(uv)
    np.testing.assert_array_equal(point_array(surface, "view") == -1, ~seen)


def test_a_bone_cut_by_the_detector_edge_is_not_extended_beyond_the_field_of_view():
    view = _truncated_ellipsoid_view()
    surface = surface_from_views([view], 1.0)
    uv, _ = view.geometry.project(_points(surface))
    assert uv[:, 1].max() < view.geometry.height - 0.5 + 1.5  # within about a voxel of the field of view
    low, high = np.array(surface.GetBounds()).reshape(3, 2)[1]
    true_low, true_high = ELLIPSOID_CENTRE[1] - ELLIPSOID_RADII[1], ELLIPSOID_CENTRE[1] + ELLIPSOID_RADII[1]
    assert true_low - 1.0 < low and high < true_high + 1.0  # no wider than the bone along the beam


@pytest.mark.parametrize("where", ["inside the detector", "cut by its edge", "the whole detector"])
def test_the_silhouette_distance_is_the_whole_detectors_distance_transform(where):
    geometry = _geometry("ap", (0.0, 0.0, 0.0))
    mask = np.zeros((geometry.height, geometry.width), dtype=bool)
    mask[{"inside the detector": np.s_[40:70, 30:90], "cut by its edge": np.s_[:50, 20:],
          "the whole detector": np.s_[:, :]}[where]] = True
    mask[45:48, 50:52] = False  # a hole: its pixels are outside
    view = ViewEvidence(geometry, mask, np.full(mask.shape, 900.0), np.full(mask.shape, 950.0))
    expected = np.where(mask, ndimage.distance_transform_edt(mask) - 0.5, 0.5 - ndimage.distance_transform_edt(~mask))
    np.testing.assert_array_equal(view.maps[2].numpy(), expected.astype(np.float32))


def test_view_and_constraint_arrays_have_a_value_per_point_and_name_both_views(ellipsoid_views):
    surface = surface_from_views(ellipsoid_views[:2], 1.0)
    view, constraint = point_array(surface, "view"), point_array(surface, "constraint")
    assert len(view) == len(constraint) == surface.GetNumberOfPoints()
    assert set(np.unique(view)) == {0, 1}
    assert set(np.unique(constraint)) <= {FRONT, BACK, SILHOUETTE}
    assert FRONT in constraint and BACK in constraint


@pytest.fixture(scope="module")
def sacrum_ap():
    """Exact AP evidence of the sample case's sacrum (a bone with holes and thin parts)."""
    return sample_bone_ap_view("sacrum")[0]


def test_a_real_bone_surface_is_closed_and_manifold_before_decimation(sacrum_ap):
    surface = surface_from_views([sacrum_ap], 1.0, decimation=0.0)
    assert open_and_non_manifold_edges(surface) == (0, 0)


def test_a_real_bone_surface_is_closed_and_manifold(sacrum_ap):
    surface = surface_from_views([sacrum_ap], 1.0)
    assert open_and_non_manifold_edges(surface) == (0, 0)


# ----------------------------------------------------------------------------------------------
# Bad, empty and missing views


def _shifted_depths(view: ViewEvidence, mm: float) -> ViewEvidence:
    return ViewEvidence(view.geometry, view.mask, view.front_mm + mm, view.back_mm + mm)


def _translated(view: ViewEvidence, pixels: int) -> ViewEvidence:
    """The view's mask and depths moved ``pixels`` along u: a bone predicted in the wrong place."""
    return ViewEvidence(view.geometry, *(np.roll(a, pixels, axis=1) for a in (view.mask, view.front_mm, view.back_mm)))


def test_consistent_views_keep_good_views(ellipsoid_views, u):
    for views in (ellipsoid_views, u["views"]):
        kept, report = consistent_views(views)
        assert kept == [0, 1, 2]
        assert report["consistency_all"] > 0.9


def test_a_view_with_depths_30mm_off_is_dropped_and_the_fusion_stays_good(ellipsoid_views, ellipsoid_truth,
                                                                          ellipsoid_fused_assd):
    bad = _shifted_depths(ellipsoid_view("ap", lao_deg=-30.0, cranial_deg=25.0), 30.0)
    views = [ellipsoid_views[0], bad, *ellipsoid_views[1:]]
    result = surfaces_from_evidence({"ellipsoid": views}, clean=False)["ellipsoid"]
    assert result.views_used == [0, 2, 3]
    assert result.consistency["consistency_used"] > result.consistency["consistency_all"] + 0.1
    # as good as the three good views alone (ASSD within 20 %; 0.05 mm is the noise floor)
    assert assd(result.surface, ellipsoid_truth) <= 1.2 * max(ellipsoid_fused_assd, 0.05)
    # without the check, the bad view would have carved away much of the ellipsoid
    true_volume = 4.0 / 3.0 * np.pi * np.prod(ELLIPSOID_RADII)
    assert signed_volume(surface_from_views(views, 1.0)) < 0.7 * true_volume


def test_a_view_with_its_mask_20px_off_is_dropped(ellipsoid_views):
    bad = _translated(ellipsoid_view("ap", lao_deg=-30.0, cranial_deg=25.0), 20)
    kept, _ = consistent_views([*ellipsoid_views, bad])
    assert kept == [0, 1, 2]


def test_a_view_with_depths_30mm_off_is_dropped_on_a_non_convex_shape(u):
    bad = _shifted_depths(rendered_view(u["mask"], u["ijk_to_ras"], "ap", lao_deg=-30.0, cranial_deg=25.0), 30.0)
    kept, _ = consistent_views([*u["views"], bad])
    assert kept == [0, 1, 2]


def test_an_empty_view_is_ignored(ellipsoid_views):
    views = ellipsoid_views[:2]
    empty = ViewEvidence(ellipsoid_views[2].geometry, np.zeros(DETECTOR_PX[::-1], bool),
                         np.zeros(DETECTOR_PX[::-1]), np.zeros(DETECTOR_PX[::-1]))
    assert empty.empty
    with_empty = surface_from_views([views[0], empty, views[1]], 1.0)
    without = surface_from_views(views, 1.0)
    np.testing.assert_allclose(_points(with_empty), _points(without))
    kept, report = consistent_views([views[0], empty, views[1]])
    assert kept == [0, 2] and report == {}
    assert surface_from_views([empty], 1.0) is None


def test_no_views_give_no_surface():
    assert surface_from_views([], 1.0) is None
    result = surfaces_from_evidence({"nothing": []}, clean=False)["nothing"]
    assert result.surface is None and result.views_used == []


# ----------------------------------------------------------------------------------------------
# Vote fusion


def test_vote_keeps_what_one_eroded_mask_would_carve(ellipsoid_views, ellipsoid_truth):
    eroded = ellipsoid_views[2]
    eroded = ViewEvidence(eroded.geometry, ndimage.binary_erosion(eroded.mask, iterations=6),
                          eroded.front_mm, eroded.back_mm)
    views = [ellipsoid_views[0], ellipsoid_views[1], eroded]
    intersection = surface_from_views(views, 1.0, fusion="intersection")
    vote = surface_from_views(views, 1.0, fusion="vote")
    assert signed_volume(vote) > 1.1 * signed_volume(intersection)
    true_volume = 4.0 / 3.0 * np.pi * np.prod(ELLIPSOID_RADII)
    assert signed_volume(vote) == pytest.approx(true_volume, rel=0.03)
    vote_assd, intersection_assd = assd(vote, ellipsoid_truth), assd(intersection, ellipsoid_truth)
    assert vote_assd <= intersection_assd and vote_assd < 0.25, (vote_assd, intersection_assd)


def test_an_unknown_fusion_is_refused(ellipsoid_views):
    with pytest.raises(ValueError, match="fusion"):
        signed_distance(np.zeros((1, 3)), ellipsoid_views, fusion="union")


# ----------------------------------------------------------------------------------------------
# Tidying predictions


@pytest.fixture(scope="module")
def untidy():
    """A disk of bone on a 64 × 64 detector with a speck, holes of 4, 16, 20 and 81 px, and
    smooth depths (a tilted plane) with one outlier."""
    geometry = preset_geometry("ap", size_px=(64, 64), pixel_spacing_mm=(1.6, 1.6))
    v, u = np.mgrid[:64, :64]
    mask = (u - 28) ** 2 + (v - 30) ** 2 <= 20 ** 2
    mask[2:4, 58:60] = True  # a speck, far from the bone
    holes = {"4px": (slice(28, 30), slice(36, 38)), "16px": (slice(20, 24), slice(20, 24)),
             "20px": (slice(34, 38), slice(20, 25))}
    for hole in holes.values():
        mask[hole] = False
    large_hole = (u - 32) ** 2 + (v - 40) ** 2 <= 25  # 81 px, like a foramen
    mask[large_hole] = False
    front = 880.0 + 0.1 * u + 0.05 * v
    back = front + 30.0
    noisy_front = front.copy()
    noisy_front[30, 30] += 100.0
    noisy_back = back.copy()
    noisy_back[25, 15] -= 60.0
    evidence = ViewEvidence(geometry, mask, noisy_front, noisy_back)
    return {"evidence": evidence, "front": front, "back": back, "holes": holes, "large_hole": large_hole}


def test_clean_evidence_drops_specks_and_fills_only_small_holes(untidy):
    cleaned = clean_evidence(untidy["evidence"])
    mask = cleaned.mask
    assert not mask[2:4, 58:60].any(), "speck kept"
    assert mask[untidy["holes"]["4px"]].all() and mask[untidy["holes"]["16px"]].all(), "pinhole kept"
    assert not mask[untidy["holes"]["20px"]].any(), "hole above max_hole_px filled"
    assert not mask[untidy["large_hole"]].any(), "large hole filled"
    bone = untidy["evidence"].mask.copy()
    bone[2:4, 58:60] = False
    assert np.array_equal(mask & bone, bone), "bone pixels lost"


def test_clean_evidence_replaces_depth_outliers_by_their_neighbours(untidy):
    cleaned = clean_evidence(untidy["evidence"])
    assert cleaned.front_mm[30, 30] == pytest.approx(untidy["front"][30, 30], abs=0.5)
    assert cleaned.back_mm[25, 15] == pytest.approx(untidy["back"][25, 15], abs=0.5)
    inside = untidy["evidence"].mask
    np.testing.assert_allclose(cleaned.front_mm[inside], untidy["front"][inside], atol=0.5)
    np.testing.assert_allclose(cleaned.back_mm[inside], untidy["back"][inside], atol=0.5)
    assert np.all(cleaned.back_mm >= cleaned.front_mm)
    # filled pinholes get depths too, continued from around them
    hole = untidy["holes"]["16px"]
    np.testing.assert_allclose(cleaned.front_mm[hole], untidy["front"][hole], atol=1.0)


def test_clean_evidence_leaves_an_empty_view_alone():
    geometry = preset_geometry("ap", size_px=(32, 32), pixel_spacing_mm=(1.6, 1.6))
    empty = ViewEvidence(geometry, np.zeros((32, 32), bool), np.zeros((32, 32)), np.zeros((32, 32)))
    assert clean_evidence(empty).empty


def test_surfaces_from_noisy_evidence_are_cleaned_first(ellipsoid_truth):
    view = ellipsoid_view("ap")
    mask, front = view.mask.copy(), view.front_mm.copy()
    mask[5:7, 5:7] = True  # a speck in the corner, far from the bone
    rows, columns = np.nonzero(view.mask)
    front[rows[len(rows) // 2], columns[len(rows) // 2]] += 100.0
    noisy = ViewEvidence(view.geometry, mask, front, view.back_mm)
    result = surfaces_from_evidence({"ellipsoid": [noisy]}, clean=True)["ellipsoid"]
    assert result.views_used == [0]
    assert assd(result.surface, ellipsoid_truth) < 0.25


def test_few_and_many_points_read_a_view_alike(ellipsoid_views, monkeypatch):
    """A fit's few points are read in numpy, a surface grid's many through torch: same values,
    also at the border (clamped) and off the detector (+inf)."""
    from SingleImageReconLib.reconstruction import surface

    rng = np.random.default_rng(4)
    points = np.concatenate([rng.normal(0.0, 40.0, (3000, 3)), rng.normal(0.0, 400.0, (300, 3))])
    monkeypatch.setattr(surface, "_NUMPY_POINTS", len(points))
    few = signed_distance(points, ellipsoid_views)
    monkeypatch.setattr(surface, "_NUMPY_POINTS", 0)
    many = signed_distance(points, ellipsoid_views)
    assert np.isinf(few[0]).any() and (few[0] > 0).any() and (few[0] < 0).any()
    np.testing.assert_allclose(few[0], many[0], atol=1e-3)
    np.testing.assert_array_equal(few[1], many[1])


def test_the_signed_distance_gradient_is_its_derivative(ellipsoid_views):
    """The combined fit's Jacobian reads ∇s instead of probing s six times a point."""
    from SingleImageReconLib.reconstruction.surface import signed_distance_gradient

    rng = np.random.default_rng(5)
    points = np.asarray(ELLIPSOID_CENTRE) + rng.normal(0.0, 25.0, (500, 3))
    distance, gradient = signed_distance_gradient(points, ellipsoid_views)
    np.testing.assert_array_equal(distance, signed_distance(points, ellipsoid_views)[0])
    step = 1e-5
    with np.errstate(invalid="ignore"):  # off every detector: -inf - -inf
        numeric = np.stack([(signed_distance(points + step * axis, ellipsoid_views)[0]
                             - signed_distance(points - step * axis, ellipsoid_views)[0]) / (2 * step)
                            for axis in np.eye(3)], axis=1)
    smooth = np.isfinite(numeric).all(axis=1) & (np.abs(numeric).max(axis=1) < 1e3)
    assert smooth.mean() > 0.9 and (distance > 0).any() and (distance < 0).any()
    np.testing.assert_allclose(gradient[smooth], numeric[smooth], atol=1e-4)
    assert 0.5 < np.median(np.linalg.norm(gradient[smooth], axis=1)) < 2.0  # about mm per mm


def test_decimation_in_two_threads_keeps_each_surface_its_own():
    """fast-simplification holds its mesh in module globals between its load, simplify and return
    calls: two threads decimating at once (as ``reconstruct_radiographs`` meshes two structures at
    once) must not get each other's mesh back. Fails without the lock around it."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from SingleImageReconLib.reconstruction.surface import decimate

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        shifts = [np.zeros(3), np.array([300.0, 0.0, 0.0])]
        surfaces = []
        for shift in shifts:
            surface = ellipsoid_surface(60)
            points = _points(surface) + shift
            surface.GetPoints().SetData(numpy_support.numpy_to_vtk(points, deep=True))
            surfaces.append(surface)

        def centre_x(index: int) -> float:
            return float(_points(decimate(surfaces[index], 0.5))[:, 0].mean())

        with ThreadPoolExecutor(max_workers=2) as pool:
            centres = list(pool.map(centre_x, [0, 1] * 40))
    finally:
        sys.setswitchinterval(interval)
    expected = [float(_points(surfaces[index])[:, 0].mean()) for index in [0, 1] * 40]
    swapped = sum(abs(got - want) > 50 for got, want in zip(centres, expected))
    assert swapped == 0, f"{swapped} of {len(centres)} decimations returned the other thread's surface"
