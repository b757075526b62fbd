"""The fast surface comparison against measuring every sample exactly, on real bone shapes.

The metrics of ``compare_surfaces`` measure distances exactly only near the other surface and
interpolate them elsewhere (``surface_distance.py``). Here they are checked against the plain
definition, on the bundled sample case's vertebrae and hip bones: every surface split to 1 mm
edges, sampled at its vertices with a third of the area of their triangles, and every sample
measured exactly (VTK's implicit poly-data distance). Distances must agree within 0.1 mm.
"""

import numpy as np
import pytest
from scipy import ndimage

from SingleImageReconLib.evaluation.metrics import compare_surfaces, mask_surface, metrics_from_samples
from SingleImageReconLib.evaluation.surface_distance import DistanceTarget, surface_samples
from SingleImageReconLib.meshes.triangle_mesh import as_mesh
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct
from SyntheticDataGenLib.cases.labels import read_segmentation
from SyntheticDataGenLib.cases.sample_data import sample_case

TAUS_MM = (1.0, 2.0)


@pytest.fixture(scope="module")
def bones():
    case = sample_case("abdomen-pelvis")
    segmentation = read_segmentation(case.labels_path, case.table_path, reference=read_ct(case.ct_path))
    return segmentation, ijk_to_ras(segmentation.reference)


def _exact_samples(source, target):
    """The definition: vertices of the surface split to 1 mm edges, exact distances."""
    split = source.split(1.0)
    weights = np.bincount(split.triangles.ravel(), weights=np.repeat(split.areas / 3.0, 3), minlength=len(split.points))
    used = weights > 0
    return np.abs(DistanceTarget(target).signed_distances(split.points[used])), weights[used]


def _exact_metrics(reconstruction, truth):
    recon_mesh, truth_mesh = as_mesh(reconstruction, "reconstruction"), as_mesh(truth, "truth")
    return metrics_from_samples(*_exact_samples(recon_mesh, truth_mesh), *_exact_samples(truth_mesh, recon_mesh),
                                TAUS_MM)


def _surface(segmentation, matrix, name, shift_voxels=(0, 0, 0), grow_voxels=0):
    mask = segmentation.mask_array(name) != 0
    if grow_voxels:
        mask = ndimage.binary_dilation(mask, iterations=grow_voxels)
    return mask_surface(np.roll(mask, shift_voxels, axis=(0, 1, 2)), matrix)


@pytest.mark.parametrize("truth_name, recon_name, shift_voxels, grow_voxels", [
    ("vertebrae_L3", "vertebrae_L3", (0, 0, 1), 0),   # 3 mm apart: every sample near
    ("vertebrae_L3", "vertebrae_L3", (0, 2, -1), 1),  # a swollen, displaced vertebra: near and far
    ("vertebrae_L3", "vertebrae_L1", (0, 0, 0), 0),   # the wrong level, ~60 mm away: nearly all far
    ("hip_left", "hip_left", (4, -3, 0), 0),          # a curved sheet, 15 mm off
])
def test_fast_metrics_agree_with_measuring_every_sample(bones, truth_name, recon_name, shift_voxels, grow_voxels):
    segmentation, matrix = bones
    truth = _surface(segmentation, matrix, truth_name)
    reconstruction = _surface(segmentation, matrix, recon_name, shift_voxels, grow_voxels)
    fast = compare_surfaces(reconstruction, truth, TAUS_MM).metrics
    exact = _exact_metrics(reconstruction, truth)
    for key in ("assd_mm", "hd95_mm", "chamfer_mm"):
        assert fast[key] == pytest.approx(exact[key], abs=0.1), key
    for tau, f1 in exact["f1_by_tau_mm"].items():
        assert fast["f1_by_tau_mm"][tau] == pytest.approx(f1, abs=0.01), tau
    assert exact["assd_mm"] > 1.0  # the surfaces do differ


def test_interpolated_samples_are_close_to_exact_far_away(bones):
    segmentation, matrix = bones
    truth = as_mesh(_surface(segmentation, matrix, "vertebrae_L3"), "truth")
    far = as_mesh(_surface(segmentation, matrix, "vertebrae_L1"), "reconstruction")
    target = DistanceTarget(truth)
    samples = surface_samples(far, target)
    exact = np.abs(target.signed_distances(samples.points))
    assert np.median(exact) > 30.0
    assert np.average(np.abs(samples.distances_mm - exact), weights=samples.weights) < 0.05
    assert samples.weights.sum() == pytest.approx(far.areas.sum())
    np.testing.assert_allclose(np.abs(samples.vertex_signed_mm), np.abs(target.signed_distances(far.points)))


def test_signed_distances_of_the_input_points_follow_the_input_order(bones):
    segmentation, matrix = bones
    truth = _surface(segmentation, matrix, "vertebrae_L3")
    moved = _surface(segmentation, matrix, "vertebrae_L3", (0, 0, 2))
    comparison = compare_surfaces(moved, truth)
    points = np.array([moved.GetPoint(i) for i in range(moved.GetNumberOfPoints())])
    expected = DistanceTarget(as_mesh(truth, "truth")).signed_distances(points)
    np.testing.assert_allclose(comparison.reconstruction_signed_mm, expected)
    assert comparison.reconstruction_signed_mm.max() > 0 > comparison.reconstruction_signed_mm.min()
