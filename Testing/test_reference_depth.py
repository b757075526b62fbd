"""Self-test of the independent depth reference (marching cubes + VTK ray casting)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import vtk

from reference_depth import (marching_cubes_surface, ray_intersections, reference_depths,
                             surface_arrays)
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry, preset_geometry

N = 31           # grid size (voxels along each axis)
C = 15           # sphere centre voxel index
RADIUS = 10      # voxels: the mask is |ijk - C|^2 <= RADIUS^2
ORIGIN = np.array([-20.0, 35.0, 100.0])  # RAS of voxel (0, 0, 0), 1 mm voxels
SIZE = 61        # odd, so the central pixel's ray runs through the isocentre
SPACING = 0.64   # mm: the sphere's shadow is about 40 px across (magnification 1100 / 900)


def sphere_mask() -> np.ndarray:
    k, j, i = np.mgrid[:N, :N, :N]
    return (i - C) ** 2 + (j - C) ** 2 + (k - C) ** 2 <= RADIUS ** 2


def lumpy_mask() -> np.ndarray:
    """No symmetry at all: a sphere, an off-centre box and a detached blob, touching the edge."""
    mask = sphere_mask()
    mask[3:9, 20:29, 17:N] = True    # [k, j, i]; reaches the i = N-1 face
    mask[24:29, 2:6, 3:7] = True
    mask[0:2, 14:17, 14:16] = True   # reaches the k = 0 face
    return mask


def grid_matrix(origin=ORIGIN, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def reindexed(mask_kji: np.ndarray, matrix: np.ndarray, flip_ijk=(False, False, False),
              order_ijk=(0, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels stored with flipped and/or permuted axes, with the matching ijk_to_ras.

    New index axis n is old axis ``order_ijk[n]``, counted backwards where ``flip_ijk[n]``.
    """
    old_shape_ijk = mask_kji.shape[::-1]
    # index map new (i', j', k') -> old (i, j, k): old[order[n]] = flip ? size-1-new[n] : new[n]
    new_to_old = np.zeros((4, 4))
    new_to_old[3, 3] = 1
    for n, (axis, flip) in enumerate(zip(order_ijk, flip_ijk)):
        new_to_old[axis, n] = -1.0 if flip else 1.0
        new_to_old[axis, 3] = old_shape_ijk[axis] - 1 if flip else 0.0
    array_ijk = mask_kji.transpose(2, 1, 0)            # [i, j, k]
    array_ijk = array_ijk.transpose(order_ijk)          # new axis n = old axis order[n]
    for n, flip in enumerate(flip_ijk):
        if flip:
            array_ijk = np.flip(array_ijk, axis=n)
    return np.ascontiguousarray(array_ijk.transpose(2, 1, 0)), matrix @ new_to_old


def sphere_geometry(size=SIZE, spacing=SPACING, **kwargs) -> ProjectionGeometry:
    return preset_geometry("ap", isocenter_ras_mm=ORIGIN + C, size_px=(size, size),
                           pixel_spacing_mm=(spacing, spacing), **kwargs)


def effective_radius(mask_kji: np.ndarray) -> float:
    """Where the 0.5 isosurface crosses the grid line through the centre along j (voxels).

    On a grid line the interpolated occupancy is linear between neighbouring voxel centres: it
    falls from 1 at the last inside voxel (offset L) to 0 at the first outside one (L + 1), so it
    crosses 0.5 half-way, at L + 0.5. For |d|^2 <= 10^2, L = 10 and the crossing is at 10.5.
    """
    line = mask_kji[C, C:, C]  # [k, j, i]: along +j from the centre
    last_inside = int(np.flatnonzero(line)[-1])
    assert line[: last_inside + 1].all() and not line[last_inside + 1]
    return last_inside + 0.5


def boundary_edges(surface: vtk.vtkPolyData) -> int:
    edges = vtk.vtkFeatureEdges()
    edges.SetInputData(surface)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    return edges.GetOutput().GetNumberOfCells()


def signed_volume(surface: vtk.vtkPolyData) -> float:
    points, triangles = surface_arrays(surface)
    a, b, c = (points[triangles[:, n]] for n in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def brute_force_depths(surface, geometry, pixels_uv):
    """Möller–Trumbore against every triangle, in numpy: a check on VTK's locator."""
    points, triangles = surface_arrays(surface)
    a, b, c = (points[triangles[:, n]] for n in range(3))
    e1, e2 = b - a, c - a
    source = geometry.source_ras_mm
    targets = geometry.pixel_center_ras(pixels_uv[:, 0], pixels_uv[:, 1])
    front, back, hit = np.zeros(len(targets)), np.zeros(len(targets)), np.zeros(len(targets), bool)
    for n, target in enumerate(targets):
        d = (target - source) / np.linalg.norm(target - source)
        p = np.cross(d, e2)
        det = np.einsum("ij,ij->i", e1, p)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = source - a
        u = np.einsum("ij,ij->i", s, p) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        t = np.einsum("ij,ij->i", e2, q) * inv
        inside = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        if inside.any():
            hit[n] = True
            front[n], back[n] = t[inside].min(), t[inside].max()
    return front, back, hit


# --- the sphere against analytic values ---------------------------------------------------
def test_effective_radius_of_the_voxelised_sphere_is_ten_and_a_half():
    assert effective_radius(sphere_mask()) == 10.5


def test_sphere_central_ray_front_and_back_match_the_analytic_crossings():
    mask = sphere_mask()
    r_eff = effective_radius(mask)
    geometry = sphere_geometry()
    front, back, hit = reference_depths(marching_cubes_surface(mask, grid_matrix()), geometry)
    centre = SIZE // 2
    distance = np.linalg.norm(geometry.source_ras_mm - (ORIGIN + C))
    assert distance == pytest.approx(900.0)
    assert hit[centre, centre]
    assert abs(front[centre, centre] - (distance - r_eff)) < 0.3
    assert abs(back[centre, centre] - (distance + r_eff)) < 0.3
    # The central ray runs along a grid line, where marching cubes is exact.
    assert front[centre, centre] == pytest.approx(distance - r_eff, abs=1e-6)
    assert back[centre, centre] == pytest.approx(distance + r_eff, abs=1e-6)


def test_sphere_hit_mask_is_the_projected_disc_to_within_a_pixel_at_the_rim():
    mask = sphere_mask()
    r_eff = effective_radius(mask)
    geometry = sphere_geometry()
    front, back, hit = reference_depths(marching_cubes_surface(mask, grid_matrix()), geometry)
    # Silhouette of a sphere of radius R at distance D: the tangent cone's half-angle is
    # asin(R / D), so on a detector at distance S it is a disc of radius S·R / sqrt(D² − R²).
    D, S = 900.0, 1100.0
    radius_px = S * r_eff / np.sqrt(D ** 2 - r_eff ** 2) / SPACING
    assert 36 < 2 * radius_px < 44
    v, u = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(u - SIZE // 2, v - SIZE // 2)
    assert hit[r <= radius_px - 1].all()
    assert not hit[r >= radius_px + 1].any()
    assert abs(hit.sum() - np.pi * radius_px ** 2) < 2 * np.pi * radius_px  # within a rim's width
    # Depths where hit: nearer than the centre in front, farther behind; zero where missed.
    assert np.all(front[hit] < back[hit] + 1e-9)
    assert np.all(front[hit] >= D - r_eff - 1e-6) and np.all(back[hit] <= D + r_eff + 1e-6)
    assert np.all(front[~hit] == 0) and np.all(back[~hit] == 0)


def assert_same_depths(depths, reference) -> None:
    """Two (front, back, hit) maps of one surface stored with another axis order agree.

    Same edge crossings everywhere. Flying edges may triangulate a cell differently when the
    grid is stored the other way round; a ray grazing such a cell then moves by up to a
    sizeable fraction of a voxel along the ray (seen: 0.33 mm with 1 mm voxels). Most rays
    are bit-for-bit the same.
    """
    front, back, hit = depths
    both = hit & reference[2]
    assert (hit != reference[2]).sum() <= 2
    for depth, expected in ((front, reference[0]), (back, reference[1])):
        difference = np.abs(depth - expected)[both]
        assert np.median(difference) < 1e-6 and np.mean(difference > 1e-6) < 0.01
        assert difference.max() < 0.5


@pytest.mark.parametrize("flip_ijk, order_ijk", [
    ((True, False, False), (0, 1, 2)),   # one flipped axis: a left-handed ijk_to_ras
    ((False, True, True), (0, 1, 2)),
    ((True, False, True), (2, 0, 1)),    # permuted and flipped
])
def test_flipped_axes_give_the_same_sphere_depths(flip_ijk, order_ijk):
    mask, matrix = reindexed(sphere_mask(), grid_matrix(), flip_ijk, order_ijk)
    handedness = np.linalg.det(np.eye(3)[:, list(order_ijk)]) * (-1) ** sum(flip_ijk)
    assert np.sign(np.linalg.det(matrix[:3, :3])) == handedness
    geometry = sphere_geometry()
    reference = reference_depths(marching_cubes_surface(sphere_mask(), grid_matrix()), geometry)
    front, back, hit = reference_depths(marching_cubes_surface(mask, matrix), geometry)
    centre = SIZE // 2
    assert front[centre, centre] == pytest.approx(900.0 - 10.5, abs=1e-6)
    assert back[centre, centre] == pytest.approx(900.0 + 10.5, abs=1e-6)
    assert_same_depths((front, back, hit), reference)


@pytest.mark.parametrize("flip_ijk, order_ijk", [
    ((True, False, False), (0, 1, 2)),
    ((False, True, True), (0, 1, 2)),
    ((False, False, True), (1, 0, 2)),
])
def test_flipped_axes_give_the_same_depths_for_an_irregular_mask_and_an_oblique_view(flip_ijk, order_ijk):
    matrix = grid_matrix(spacing=(0.9, 1.2, 1.0))
    geometry = sphere_geometry(size=71, lao_deg=25, cranial_deg=12)
    reference = reference_depths(marching_cubes_surface(lumpy_mask(), matrix), geometry)
    mask, flipped = reindexed(lumpy_mask(), matrix, flip_ijk, order_ijk)
    front, back, hit = reference_depths(marching_cubes_surface(mask, flipped), geometry)
    assert hit.sum() > 1000
    assert_same_depths((front, back, hit), reference)


# --- the surface ---------------------------------------------------------------------------
@pytest.mark.parametrize("flip_ijk, order_ijk", [
    ((False, False, False), (0, 1, 2)),
    ((True, False, False), (0, 1, 2)),
    ((False, True, False), (1, 2, 0)),
])
def test_surface_is_closed_outward_and_in_ras(flip_ijk, order_ijk):
    base = lumpy_mask()
    expected, _ = surface_arrays(marching_cubes_surface(base, grid_matrix()))
    mask, matrix = reindexed(base, grid_matrix(), flip_ijk, order_ijk)
    surface = marching_cubes_surface(mask, matrix)
    assert boundary_edges(surface) == 0  # closed although the mask touches the volume's faces
    volume = signed_volume(surface)
    assert volume > 0  # outward faces, whatever the handedness of ijk_to_ras
    assert abs(volume - base.sum()) < 0.1 * base.sum()
    points, _ = surface_arrays(surface)
    # The vertices are the grid-edge crossings, which do not depend on how the grid is stored.
    key = lambda p: p[np.lexsort(np.round(p, 6).T)]  # noqa: E731
    np.testing.assert_allclose(key(points), key(expected), atol=1e-9)
    # The box reaching the i = N-1 face closes half a voxel beyond that face's voxel centres.
    assert surface.GetBounds()[1] == pytest.approx(ORIGIN[0] + N - 1 + 0.5)
    assert surface.GetBounds()[4] == pytest.approx(ORIGIN[2] - 0.5)


def test_oblique_volume_and_geometry_turned_together_give_the_same_depths():
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    if np.linalg.det(rotation) < 0:
        rotation[:, 0] *= -1
    pivot = np.array([10.0, -30.0, 50.0])
    turn = np.eye(4)
    turn[:3, :3] = rotation
    turn[:3, 3] = pivot - rotation @ pivot
    matrix = grid_matrix(spacing=(0.8, 1.0, 1.3))
    geometry = sphere_geometry(size=71, lao_deg=20, cranial_deg=-10)
    turned = ProjectionGeometry(
        turn[:3, :3] @ geometry.source_ras_mm + turn[:3, 3],
        turn[:3, :3] @ geometry.detector_origin_ras_mm + turn[:3, 3],
        rotation @ geometry.detector_u_ras, rotation @ geometry.detector_v_ras,
        geometry.pixel_spacing_mm, geometry.size_px)
    mask = lumpy_mask()
    front, back, hit = reference_depths(marching_cubes_surface(mask, matrix), geometry)
    front2, back2, hit2 = reference_depths(marching_cubes_surface(mask, turn @ matrix), turned)
    assert hit.sum() > 500
    assert (hit != hit2).sum() <= 2  # a ray grazing an edge may fall either way
    both = hit & hit2
    np.testing.assert_allclose(front2[both], front[both], atol=1e-6)
    np.testing.assert_allclose(back2[both], back[both], atol=1e-6)


# --- the ray caster --------------------------------------------------------------------------
def test_vtk_locator_agrees_with_brute_force_ray_triangle_intersection():
    surface = marching_cubes_surface(lumpy_mask(), grid_matrix(spacing=(0.9, 1.1, 1.0)))
    geometry = sphere_geometry(size=71, lao_deg=33, cranial_deg=17)
    rng = np.random.default_rng(7)
    pixels = rng.uniform(-0.5, 70.5, (300, 2))
    front, back, hit = reference_depths(surface, geometry, pixels)
    expected = brute_force_depths(surface, geometry, pixels)
    assert hit.shape == (300,) and hit.sum() > 50
    np.testing.assert_array_equal(hit, expected[2])
    np.testing.assert_allclose(front, expected[0], atol=1e-6)
    np.testing.assert_allclose(back, expected[1], atol=1e-6)


def test_pixel_list_matches_the_full_map():
    surface = marching_cubes_surface(lumpy_mask(), grid_matrix())
    geometry = sphere_geometry(lao_deg=10)
    front, back, hit = reference_depths(surface, geometry)
    v, u = np.nonzero(np.ones_like(hit))
    some = np.random.default_rng(0).choice(len(u), 200, replace=False)
    uv = np.stack([u[some], v[some]], axis=1)
    front2, back2, hit2 = reference_depths(surface, geometry, uv)
    np.testing.assert_array_equal(hit2, hit[v[some], u[some]])
    np.testing.assert_array_equal(front2, front[v[some], u[some]])
    np.testing.assert_array_equal(back2, back[v[some], u[some]])


def test_grazing_ray_through_a_single_vertex_has_front_equal_to_back():
    # One voxel's isosurface is an octahedron |x| + |y| + |z| <= 0.5 (voxel units) about it;
    # the AP central ray through the vertex at x = +0.5 touches the surface at that point only.
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[1, 1, 1] = True
    surface = marching_cubes_surface(mask, grid_matrix(origin=(-1.0, -1.0, -1.0)))
    geometry = preset_geometry("ap", isocenter_ras_mm=(0.5, 0.0, 0.0), size_px=(5, 5),
                               pixel_spacing_mm=(0.1, 0.1))
    front, back, hit = reference_depths(surface, geometry)
    # VTK may or may not count a touch at a vertex; if it does, the ray enters and leaves there.
    if hit[2, 2]:
        assert front[2, 2] == pytest.approx(900.0) and back[2, 2] == pytest.approx(900.0)
    else:
        assert front[2, 2] == 0 and back[2, 2] == 0
    # Rays through the octahedron's inside: two distinct crossings, front < back.
    grazing = ray_intersections(surface, geometry.source_ras_mm, (0.0, -1.0, 0.0))
    assert len(grazing) <= 1  # duplicates from the triangles sharing the vertex are merged
    crossings = ray_intersections(surface, geometry.source_ras_mm - (0.5, 0.0, 0.0), (0.0, -1.0, 0.0))
    assert len(crossings) == 2
    np.testing.assert_allclose(crossings, [899.5, 900.5], atol=1e-9)


def test_empty_mask_and_missing_rays_give_zeros():
    surface = marching_cubes_surface(np.zeros((4, 5, 6), dtype=bool), np.eye(4))
    assert surface.GetNumberOfCells() == 0
    front, back, hit = reference_depths(surface, sphere_geometry(size=9))
    assert front.shape == (9, 9) and not hit.any() and not front.any() and not back.any()
    surface = marching_cubes_surface(sphere_mask(), grid_matrix(origin=ORIGIN + 500))
    front, back, hit = reference_depths(surface, sphere_geometry(size=9))
    assert not hit.any() and not front.any() and not back.any()


# --- speed on real data ----------------------------------------------------------------------
def test_full_detector_over_a_femur_is_fast():
    from SyntheticDataGenLib.cases.ct_io import ijk_to_ras
    from SyntheticDataGenLib.cases.labels import read_segmentation
    from SyntheticDataGenLib.cases.sample_data import sample_case

    case = sample_case("abdomen-pelvis")
    segmentation = read_segmentation(case.labels_path, case.table_path)
    mask = segmentation.mask_array("femur_left")
    matrix = ijk_to_ras(segmentation.reference)
    start = time.perf_counter()
    surface = marching_cubes_surface(mask, matrix)
    geometry = preset_geometry("ap", isocenter_ras_mm=surface.GetCenter(), size_px=(256, 256))
    front, back, hit = reference_depths(surface, geometry)
    elapsed = time.perf_counter() - start
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert boundary_edges(surface) == 0
    assert hit.sum() > 1000
    assert np.all(back[hit] >= front[hit])
    # Every depth lies between the nearest and farthest surface point from the source.
    points, _ = surface_arrays(surface)
    distance = np.linalg.norm(points - geometry.source_ras_mm, axis=1)
    assert front[hit].min() >= distance.min() - 1e-6 and back[hit].max() <= distance.max() + 1e-6
    # Hit pixels lie inside the box of the projected vertices (the silhouette is made of edges).
    uv, _ = geometry.project(points)
    v, u = np.nonzero(hit)
    assert u.min() >= uv[:, 0].min() and u.max() <= uv[:, 0].max()
    assert v.min() >= uv[:, 1].min() and v.max() <= uv[:, 1].max()
    # The projected vertices' pixels are mostly hit (the rest sit on the rim).
    inside = hit[np.round(uv[:, 1]).astype(int), np.round(uv[:, 0]).astype(int)]
    assert inside.mean() > 0.6
