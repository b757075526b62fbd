"""Dual-face depth maps against an independent reference: ray casting on the marching-cubes surface."""

import numpy as np
import pytest

from reference_depth import marching_cubes_surface, reference_depths
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct
from SyntheticDataGenLib.projection.depth import render_depth
from SyntheticDataGenLib.projection.geometry import preset_geometry
from SyntheticDataGenLib.cases.labels import read_segmentation
from SyntheticDataGenLib.cases.sample_data import sample_case


@pytest.fixture(scope="module")
def pelvis():
    case = sample_case("abdomen-pelvis")
    ct = read_ct(case.ct_path)
    return ct, read_segmentation(case.labels_path, case.table_path, reference=ct)


def centre_of(mask_kji, ijk_to_ras_matrix):
    kji = np.argwhere(mask_kji).mean(axis=0)
    return ijk_to_ras_matrix[:3, :3] @ kji[::-1] + ijk_to_ras_matrix[:3, 3]


@pytest.mark.parametrize("structure", ["femur_left", "hip_right", "vertebrae_L3"])
@pytest.mark.parametrize("view", [dict(name="ap"), dict(name="lateral-left"),
                                  dict(name="pa", lao_deg=35, cranial_deg=-20)])
def test_depths_match_ray_casting_on_the_marching_cubes_surface(pelvis, structure, view):
    ct, segmentation = pelvis
    matrix = ijk_to_ras(ct)
    mask = segmentation.mask_array(structure)
    geometry = preset_geometry(view["name"], lao_deg=view.get("lao_deg", 0), cranial_deg=view.get("cranial_deg", 0),
                               isocenter_ras_mm=centre_of(mask, matrix), size_px=(128, 128),
                               pixel_spacing_mm=(1.0, 1.0))
    depth = render_depth(mask, matrix, geometry)
    front, back, hit = reference_depths(marching_cubes_surface(mask, matrix), geometry)
    ours = depth.mask.numpy()
    iou = (ours & hit).sum() / (ours | hit).sum()
    both = ours & hit
    voxel_mm = min(ct.GetSpacing())
    front_error = np.abs(depth.front_mm.numpy()[both] - front[both])
    back_error = np.abs(depth.back_mm.numpy()[both] - back[both])
    errors = np.concatenate([front_error, back_error])
    print(f"{structure} {view}: IoU {iou:.4f}, median {np.median(errors):.3f} mm, "
          f"p95 {np.percentile(errors, 95):.3f} mm (voxel {voxel_mm} mm), {both.sum()} rays")
    assert both.sum() > 500
    assert iou >= 0.98
    assert np.median(errors) <= 0.25 * voxel_mm
    assert np.percentile(errors, 95) <= voxel_mm
    assert np.all(depth.front_mm.numpy()[~ours] == 0) and np.all(depth.back_mm.numpy()[~ours] == 0)
    assert np.all(depth.back_mm.numpy()[ours] >= depth.front_mm.numpy()[ours])


def test_depths_of_a_sphere_are_analytic():
    """A ball of radius 20 voxels (1 mm): the 0.5 level sits where the analytic depth says."""
    n = 64
    k, j, i = np.mgrid[:n, :n, :n]
    centre_index = np.array([31.5, 31.5, 31.5])
    radius = 20.0
    mask = (i - centre_index[0]) ** 2 + (j - centre_index[1]) ** 2 + (k - centre_index[2]) ** 2 <= radius ** 2
    matrix = np.eye(4)
    geometry = preset_geometry("ap", isocenter_ras_mm=centre_index, size_px=(101, 101), pixel_spacing_mm=(0.6, 0.6))
    depth = render_depth(mask, matrix, geometry)
    rays = geometry.ray_directions_ras()
    to_centre = centre_index - geometry.source_ras_mm
    along = rays @ to_centre
    miss_sq = np.sum(to_centre ** 2) - along ** 2
    analytic_hit = miss_sq < (radius - 4) ** 2  # away from the rim, where rays graze the voxel staircase
    half_chord = np.sqrt(np.clip(radius ** 2 - miss_sq, 0, None))
    ours = depth.mask.numpy()
    assert ours[analytic_hit].all()
    front_error = depth.front_mm.numpy()[analytic_hit] - (along - half_chord)[analytic_hit]
    back_error = depth.back_mm.numpy()[analytic_hit] - (along + half_chord)[analytic_hit]
    # the voxelised ball's surface wanders within about half a voxel of the true sphere
    assert np.abs(front_error).max() < 0.7 and np.abs(back_error).max() < 0.7
    assert abs(np.median(front_error)) < 0.2 and abs(np.median(back_error)) < 0.2


def test_a_structure_off_the_detector_or_empty_gives_empty_maps(pelvis):
    ct, segmentation = pelvis
    matrix = ijk_to_ras(ct)
    mask = segmentation.mask_array("femur_left")
    far = preset_geometry("ap", isocenter_ras_mm=centre_of(mask, matrix) + [500.0, 0, 0], size_px=(64, 64))
    assert not render_depth(mask, matrix, far).mask.any()
    empty = render_depth(np.zeros_like(mask), matrix, preset_geometry("ap"))
    assert not empty.mask.any() and float(empty.front_mm.abs().sum()) == 0.0
