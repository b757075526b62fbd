"""The brute-force reference DRR (Testing/reference_drr.py) against values known exactly.

The CT is the trilinear interpolant of the voxels with zero-valued voxels all around, so along
an index axis of n voxels a constant field integrates to exactly n voxel lengths (n − 1 between
the extreme voxel centres plus two linear ramps of half a voxel each).
"""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from reference_drr import downsampled_geometry, reference_line_integrals
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry, preset_geometry

MU = 0.02  # 1/mm


def oblique_affine(spacing, origin=(12.0, -30.0, 41.0)) -> np.ndarray:
    """ijk -> RAS with rotated, anisotropic axes (no axis of RAS lines up with i, j or k)."""
    q, _ = np.linalg.qr(np.array([[0.9, 0.3, -0.2], [-0.1, 0.8, 0.5], [0.3, -0.4, 0.85]]))
    matrix = np.eye(4)
    matrix[:3, :3] = q @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def to_ras(matrix, ijk):
    return matrix[:3, :3] @ np.asarray(ijk, dtype=float) + matrix[:3, 3]


def one_ray_geometry(source_ras, target_ras) -> ProjectionGeometry:
    """A 1×1 detector whose single pixel centre is ``target_ras``."""
    beam = np.asarray(target_ras, float) - np.asarray(source_ras, float)
    beam /= np.linalg.norm(beam)
    helper = np.array([1.0, 0.0, 0.0]) if abs(beam[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u_axis = np.cross(beam, helper)
    u_axis /= np.linalg.norm(u_axis)
    v_axis = np.cross(beam, u_axis)
    return ProjectionGeometry(source_ras, target_ras, u_axis, v_axis, (1.0, 1.0), (1, 1))


def test_axis_aligned_ray_through_a_uniform_box_integrates_n_voxel_lengths():
    shape_kji = (6, 7, 9)
    spacing = (1.3, 0.8, 2.1)  # along i, j, k
    matrix = oblique_affine(spacing)
    mu = np.full(shape_kji, MU)
    n_k, n_j, n_i = shape_kji
    # along i through voxel centres and through an arbitrary interior point
    for j0, k0 in ((3.0, 2.0), (0.0, 5.0), (2.37, 4.61)):
        geometry = one_ray_geometry(to_ras(matrix, (-40, j0, k0)), to_ras(matrix, (n_i + 30, j0, k0)))
        value = reference_line_integrals(mu, matrix, geometry)[0, 0]
        assert value == pytest.approx(MU * n_i * spacing[0], rel=1e-3)
    # along k, in the zero-padded ramp of j (j0 in (-1, 0) scales the field by 1 + j0)
    for j0, factor in ((-0.25, 0.75), (-0.5, 0.5), (n_j - 0.6, 0.6)):
        geometry = one_ray_geometry(to_ras(matrix, (4.0, j0, n_k + 25)), to_ras(matrix, (4.0, j0, -35)))
        value = reference_line_integrals(mu, matrix, geometry)[0, 0]
        assert value == pytest.approx(factor * MU * n_k * spacing[2], rel=1e-3)


def test_oblique_ray_through_a_linear_field_is_exact():
    """μ = c + a·j + b·k (constant in i) is reproduced exactly by trilinear interpolation inside
    the grid. A ray that crosses the i faces while its j and k stay inside the grid integrates
    to n_i × μ(at i = (n_i − 1)/2) × (mm of ray per unit of i)."""
    n_k, n_j, n_i = 12, 14, 20
    spacing = (1.5, 0.9, 1.2)
    matrix = oblique_affine(spacing)
    k, j, _ = np.meshgrid(np.arange(n_k), np.arange(n_j), np.arange(n_i), indexing="ij")
    c, a, b = 0.01, 0.0007, -0.0004
    mu = c + a * j + b * k
    for start_jk, end_jk in (((1.0, 2.0), (12.5, 9.0)), ((12.0, 10.5), (0.5, 0.2)), ((6.0, 6.0), (6.0, 6.0))):
        # parametrise the ray by i: j and k go linearly from start (at i = -1) to end (at i = n_i)
        def point(i):
            f = (i + 1) / (n_i + 1)
            return (i, start_jk[0] + f * (end_jk[0] - start_jk[0]), start_jk[1] + f * (end_jk[1] - start_jk[1]))

        source_ijk, target_ijk = np.array(point(-30.0)), np.array(point(n_i + 25.0))
        geometry = one_ray_geometry(to_ras(matrix, source_ijk), to_ras(matrix, target_ijk))
        value = reference_line_integrals(mu, matrix, geometry)[0, 0]
        # j, k outside the grid only where i is outside [-1, n_i], where μ is 0 anyway
        _, j_mid, k_mid = point((n_i - 1) / 2)
        direction = target_ijk - source_ijk
        mm_per_i = np.linalg.norm(matrix[:3, :3] @ direction) / abs(direction[0])
        expected = n_i * (c + a * j_mid + b * k_mid) * mm_per_i
        assert value == pytest.approx(expected, rel=1e-3)


def test_matches_scipy_grid_constant_interpolation_on_a_random_volume():
    """Same field as scipy's map_coordinates(order=1, mode='grid-constant'), densely sampled."""
    rng = np.random.default_rng(3)
    mu = rng.uniform(0.0, 0.03, (7, 9, 8))
    matrix = oblique_affine((1.1, 1.7, 0.9))
    source_ijk, target_ijk = np.array([-12.0, 3.3, -8.0]), np.array([15.0, 5.1, 13.0])
    geometry = one_ray_geometry(to_ras(matrix, source_ijk), to_ras(matrix, target_ijk))
    value = reference_line_integrals(mu, matrix, geometry)[0, 0]
    t = (np.arange(200_000) + 0.5) / 200_000
    points_ijk = source_ijk + t[:, None] * (target_ijk - source_ijk)
    samples = map_coordinates(mu, points_ijk[:, ::-1].T, order=1, mode="grid-constant", cval=0.0)
    length_mm = np.linalg.norm(matrix[:3, :3] @ (target_ijk - source_ijk))
    assert value == pytest.approx(samples.mean() * length_mm, rel=1e-4)


def test_pixel_subset_and_full_image_agree_and_missing_rays_are_zero():
    rng = np.random.default_rng(4)
    mu = rng.uniform(0.0, 0.03, (10, 11, 12))
    matrix = oblique_affine((2.0, 2.0, 2.5), origin=(-10.0, -12.0, -14.0))
    centre = to_ras(matrix, (5.5, 5.0, 4.5))
    geometry = preset_geometry("ap", isocenter_ras_mm=centre, size_px=(12, 10), pixel_spacing_mm=(8.0, 8.0),
                               lao_deg=20, cranial_deg=-10)
    image = reference_line_integrals(mu, matrix, geometry)
    assert image.shape == (10, 12)
    pixels = np.array([[0, 0], [11, 9], [5, 3], [7, 8]])
    subset = reference_line_integrals(mu, matrix, geometry, pixels_uv=pixels)
    np.testing.assert_allclose(subset, image[pixels[:, 1], pixels[:, 0]], rtol=1e-12)
    assert image[0, 0] == 0.0  # the corner rays pass beside the small volume
    assert image[5, 6] > 0.1
    # a coarser detector over the same area samples the centres of the fine pixel blocks
    coarse = downsampled_geometry(geometry, 2)
    np.testing.assert_allclose(coarse.pixel_center_ras(0, 0), geometry.pixel_center_ras(0.5, 0.5))
    assert reference_line_integrals(mu, matrix, coarse).shape == (5, 6)
