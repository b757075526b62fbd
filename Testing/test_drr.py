"""DRR renderer against an independent brute-force reference (dense trilinear sampling, step 0.1 voxel)."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from reference_drr import reference_line_integrals
from SyntheticDataGenLib.projection.attenuation import hu_to_mu
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct
from SyntheticDataGenLib.projection.drr import render_drr, restrict_to_structures
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import preset_geometry
from SyntheticDataGenLib.cases.labels import read_segmentation
from SyntheticDataGenLib.cases.sample_data import sample_case
from SyntheticDataGenLib.projection.slice_sampler import SliceStacks

VIEWS = {
    "ap": dict(name="ap"),
    "lateral": dict(name="lateral-left"),
    "oblique C-arm": dict(name="pa", lao_deg=40, cranial_deg=25),
}


def load(case_name):
    case = sample_case(case_name)
    ct = read_ct(case.ct_path)
    matrix = ijk_to_ras(ct)
    mu = hu_to_mu(torch.from_numpy(sitk.GetArrayFromImage(ct).astype(np.float32)))
    centre = matrix[:3, :3] @ ((np.array(ct.GetSize()) - 1) / 2) + matrix[:3, 3]
    return ct, matrix, mu, centre


def ncc(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("case_name, pixels", [("abdomen-pelvis", 3000), pytest.param("chest", 600, marks=pytest.mark.slow)])
@pytest.mark.parametrize("view", list(VIEWS))
def test_drr_matches_brute_force_reference(case_name, pixels, view):
    ct, matrix, mu, centre = load(case_name)
    spec = VIEWS[view]
    geometry = preset_geometry(spec["name"], lao_deg=spec.get("lao_deg", 0), cranial_deg=spec.get("cranial_deg", 0),
                               isocenter_ras_mm=centre, size_px=(256, 256), pixel_spacing_mm=(1.6, 1.6))
    ours = render_drr(mu, matrix, geometry)[0].numpy()
    rng = np.random.default_rng(0)
    uv = np.stack([rng.integers(0, 256, pixels), rng.integers(0, 256, pixels)], axis=1)
    reference = reference_line_integrals(mu.numpy(), matrix, geometry, pixels_uv=uv.astype(float))
    sampled = ours[uv[:, 1], uv[:, 0]]
    relative_l2 = np.linalg.norm(sampled - reference) / np.linalg.norm(reference)
    print(f"{case_name} {view}: NCC {ncc(sampled, reference):.6f}, relative L2 {relative_l2:.5f}")
    assert reference.max() > 1.0, "the rays cross the body"
    assert ncc(sampled, reference) >= 0.999
    assert relative_l2 <= 0.01


def test_a_uniform_box_gives_chord_lengths():
    """μ = 0.02/mm in a box: an axis-aligned ray integrates μ over the box plus half a voxel each side."""
    mu = torch.full((40, 30, 20), 0.02)
    matrix = np.diag([2.0, 2.0, 2.0, 1.0])
    centre = matrix[:3, :3] @ ((np.array([20, 30, 40]) - 1) / 2)
    geometry = preset_geometry("ap", isocenter_ras_mm=centre, size_px=(9, 9), pixel_spacing_mm=(1.0, 1.0))
    value = render_drr(mu, matrix, geometry)[0, 4, 4].item()
    # along j: 30 voxel centres span 29 voxels; the zero-padded ramps add half a voxel each end
    assert value == pytest.approx(0.02 * 2.0 * 30, rel=1e-5)


def test_batches_and_reused_stacks_equal_single_renders():
    ct, matrix, mu, centre = load("abdomen-pelvis")
    geometries = [preset_geometry(name, isocenter_ras_mm=centre, lao_deg=lao, size_px=(64, 48), pixel_spacing_mm=(6, 6))
                  for name, lao in [("ap", 0), ("ap", 20), ("lateral-left", 5), ("pa", -30)]]
    batch = render_drr(mu, matrix, geometries)
    stacks = SliceStacks(mu[None])
    for index, geometry in enumerate(geometries):
        single = render_drr(stacks, matrix, geometry)[0]
        torch.testing.assert_close(batch[index], single, rtol=1e-5, atol=1e-5)
    assert batch.shape == (4, 48, 64)


def test_rays_stop_at_the_detector():
    """A detector plane clipping the volume counts only what lies between source and detector."""
    mu = torch.full((50, 50, 50), 0.01)
    matrix = np.eye(4)
    centre = np.array([24.5, 24.5, 24.5])
    geometry = preset_geometry("ap", isocenter_ras_mm=centre, source_to_isocenter_mm=200,
                               source_to_detector_mm=210, size_px=(5, 5), pixel_spacing_mm=(0.5, 0.5))
    ours = render_drr(mu, matrix, geometry)[0].numpy()
    reference = reference_line_integrals(mu.numpy(), matrix, geometry)
    np.testing.assert_allclose(ours, reference, rtol=2e-3)
    assert ours[2, 2] == pytest.approx(0.01 * (10 + 24.5 + 0.5), rel=2e-3)  # from the box's edge to the detector


def test_bone_only_image_keeps_only_the_structures():
    ct, matrix, mu, centre = load("abdomen-pelvis")
    case = sample_case("abdomen-pelvis")
    segmentation = read_segmentation(case.labels_path, case.table_path, reference=ct)
    femur = segmentation.mask_array("femur_left")
    bone_only = restrict_to_structures(mu, [femur])
    assert float(bone_only[~torch.from_numpy(femur)].abs().sum()) == 0.0
    geometry = preset_geometry("ap", isocenter_ras_mm=centre, size_px=(64, 64), pixel_spacing_mm=(6, 6))
    full, bones = render_drr(mu, matrix, geometry)[0], render_drr(bone_only, matrix, geometry)[0]
    assert (bones <= full + 1e-5).all() and bones.max() > 0 and (bones == 0).float().mean() > 0.5


def test_impossible_geometry_is_refused():
    ct, matrix, mu, centre = load("abdomen-pelvis")
    with pytest.raises(XreconInputError, match="inside the CT"):
        render_drr(mu, matrix, preset_geometry("ap", isocenter_ras_mm=centre, source_to_isocenter_mm=50,
                                               source_to_detector_mm=500))


def test_slabs_stay_close_to_every_slice_and_are_not_used_when_rays_are_clipped():
    ct, matrix, mu, centre = load("chest")
    geometry = preset_geometry("ap", isocenter_ras_mm=centre, size_px=(128, 128), pixel_spacing_mm=(3.2, 3.2))
    exact = render_drr(mu, matrix, geometry, max_slab_shift_voxels=0)[0]
    slabs = render_drr(mu, matrix, geometry)[0]
    assert not torch.equal(exact, slabs), "the chest AP view is rendered with slabs"
    assert float(torch.linalg.norm(slabs - exact) / torch.linalg.norm(exact)) < 2e-3
    clipped = preset_geometry("ap", isocenter_ras_mm=centre, source_to_isocenter_mm=900, source_to_detector_mm=1000,
                              size_px=(64, 64), pixel_spacing_mm=(4, 4))
    torch.testing.assert_close(render_drr(mu, matrix, clipped), render_drr(mu, matrix, clipped, max_slab_shift_voxels=0))


def test_body_extension_fades_the_end_slices_out_along_the_body_axis():
    from SyntheticDataGenLib.projection.view import extend_along_body

    volume = torch.ones((2, 5, 4, 3))  # (C, K, J, I), k along the body axis (RAS z)
    matrix = np.diag([1.0, 1.0, 2.0, 1.0])
    extended, moved = extend_along_body(volume, matrix, 6.0)
    assert extended.shape == (2, 11, 4, 3)
    torch.testing.assert_close(extended[0, :3, 0, 0], torch.tensor([0.25, 0.5, 0.75]))
    torch.testing.assert_close(extended[0, 3:8], volume[0])
    torch.testing.assert_close(extended[0, 8:, 0, 0], torch.tensor([0.75, 0.5, 0.25]))
    np.testing.assert_allclose(moved[:3, 3], [0, 0, -6.0])  # voxel 3 of the new volume is voxel 0 of the old
