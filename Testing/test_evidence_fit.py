"""The combined method's fit (``evidence_fit``): its derivatives, and a bone recovered from exact evidence."""

import numpy as np
import pytest
from scipy.optimize._numdiff import approx_derivative
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from conftest import sample_bone_ap_view, xrecon_in_process
from SingleImageReconLib.shape_models.bone_surface import bone_surface
from SingleImageReconLib.shape_models.evidence_fit import fit_shape_to_evidence, soft_l1, soft_l1_slope
from SingleImageReconLib.shape_models.landmark_fit import (LandmarkView, cauchy, cauchy_slope, landmark_terms,
                                                           posed_instance, rotation_derivatives, rotation_matrix,
                                                           vertex_jacobian)
from SingleImageReconLib.shape_models.model_files import load_models


@pytest.fixture(scope="module")
def vertebra():
    return load_models(None)["vertebra"]


def test_vertex_jacobian_is_the_derivative_of_the_posed_vertices(vertebra):
    rng = np.random.default_rng(1)
    parameters = np.r_[rng.normal(0, 0.2, 3), rng.normal(0, 20, 3), rng.normal(0, 1, 8)]
    numeric = approx_derivative(lambda p: posed_instance(vertebra, p).ravel(), parameters, method="3-point")
    analytic = vertex_jacobian(vertebra, parameters).reshape(-1, len(parameters))
    np.testing.assert_allclose(analytic, numeric, atol=1e-5 * np.abs(numeric).max())


@pytest.mark.parametrize("robust_scale", [None, 2.5])
def test_the_landmarks_jacobian_is_the_derivative_of_their_residuals(vertebra, robust_scale):
    """Two views, some landmarks unseen, one far off (beyond the Cauchy scale) and one on its
    mark (the rescaling's limit at 0)."""
    from SyntheticDataGenLib.projection.geometry import preset_geometry

    rng = np.random.default_rng(4)
    parameters = np.r_[rng.normal(0, 0.1, 3), 0.0, 0.0, 0.0, rng.normal(0, 1, 8)]
    truth = vertebra.landmarks(posed_instance(vertebra, parameters))
    views = []
    for preset in ("ap", "lateral-left"):
        geometry = preset_geometry(preset, isocenter_ras_mm=(0.0, 0.0, 0.0), size_px=(256, 256))
        uv, _ = geometry.project(truth)
        uv = uv + rng.normal(0, 3, uv.shape)
        uv[0] += 60.0  # far off
        uv[1] = geometry.project(truth[1:2])[0][0]  # exactly on its mark
        uv[2] = np.nan  # unseen
        views.append(LandmarkView(geometry, uv, rng.uniform(1, 4, len(uv))))
    residuals, jacobian = landmark_terms(vertebra, views, 8, robust_scale=robust_scale)
    numeric = approx_derivative(residuals, parameters, method="3-point")
    np.testing.assert_allclose(jacobian(parameters), numeric, atol=1e-6 * np.abs(numeric).max())


@pytest.mark.parametrize("value", [-40.0, -3.0, -0.5, -1e-3, 0.0, 1e-3, 0.7, 5.0])
def test_robust_slopes_are_the_derivatives_of_the_rescalings(value):
    step = 1e-6
    cauchy_1d = lambda r: cauchy(np.array([[r]]), 1.0)[0, 0]  # noqa: E731
    assert cauchy_slope(np.array(value)) == pytest.approx(
        (cauchy_1d(value + step) - cauchy_1d(value - step)) / (2 * step), rel=1e-4, abs=1e-4)
    assert soft_l1_slope(np.array(value)) == pytest.approx(
        (soft_l1(np.array(value + step)) - soft_l1(np.array(value - step))) / (2 * step), rel=1e-4, abs=1e-4)


def test_a_vertebra_is_recovered_from_its_exact_evidence_better_than_the_mean_shape(vertebra):
    """The sample case's L4 in one AP view, its mask and depth maps rendered from the reference
    labels: the fit lands within a voxel or so of the labelled surface, closer than the mean shape
    placed on it."""
    evidence, mask, matrix = sample_bone_ap_view("vertebrae_L4")
    surface = bone_surface(mask, matrix, "vertebrae_L4")[1]

    def assd(vertices):
        return (cKDTree(surface).query(vertices)[0].mean() + cKDTree(vertices).query(surface)[0].mean()) / 2

    fit = fit_shape_to_evidence(vertebra, [evidence])
    mean_on_bone = vertebra.mean_mm - vertebra.mean_mm.mean(axis=0) + surface.mean(axis=0)
    assert assd(fit.vertices_mm) < 1.5 < assd(mean_on_bone)


@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-5, 0.3, 3.0])
def test_rodrigues_rotation_is_scipys(scale):
    vector = scale * np.array([0.6, -0.48, 0.64])
    np.testing.assert_allclose(rotation_matrix(vector), Rotation.from_rotvec(vector).as_matrix(), atol=1e-14)


@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-5, 0.3, 3.0])
def test_rotation_derivatives_are_those_of_scipys_rotation(scale):
    vector, step = scale * np.array([0.6, -0.48, 0.64]), 1e-6
    numeric = np.stack([(Rotation.from_rotvec(vector + step * axis).as_matrix()
                         - Rotation.from_rotvec(vector - step * axis).as_matrix()) / (2 * step) for axis in np.eye(3)])
    np.testing.assert_allclose(rotation_derivatives(vector), numeric, atol=1e-8)


def test_the_combined_fit_benchmark_fits_every_bone_of_the_sample_case(tmp_path, capfd):
    """``xrecon bench combined-fit`` times a fit of each of the sample case's 11 bones and says how
    close it came to the labels; the lumbar vertebrae, whole in the scan, within 2.5 mm."""
    import json

    status, out, _ = xrecon_in_process(capfd, "bench", "combined-fit", "--repeat", "1", "--json", tmp_path / "fit.json")
    assert status == 0 and "of the 100 ms aim" in out
    figures = json.loads((tmp_path / "fit.json").read_text())
    assert len(figures["label_to_fit_mm"]) == 11 and figures["median_ms"] > 0
    lumbar = [figures["label_to_fit_mm"][f"vertebrae_L{level}"] for level in range(1, 6)]
    assert max(lumbar) < 2.5, lumbar


def test_a_speck_of_evidence_leaves_that_bone_unfitted_and_the_others_fitted():
    """``combined`` over every structure the depth network found: a bone whose mask is a speck
    (nothing once cleaned) is reported as not fitted instead of ending the whole reconstruction."""
    import vtk

    from SingleImageReconLib.networks.inference import DepthPrediction
    from SingleImageReconLib.reconstruction.reconstruct import Reconstruction, StructureSurface
    from SingleImageReconLib.shape_models.ssm_reconstruction import BoneFit, combine_bones

    evidence, _, _ = sample_bone_ap_view("vertebrae_L4")
    speck = np.zeros_like(evidence.mask)
    speck[10:12, 10:12] = True
    names = ["vertebrae_L4", "vertebrae_L3"]
    prediction = DepthPrediction(evidence.geometry, np.zeros(evidence.mask.shape, np.float32), names,
                                 np.stack([evidence.mask, speck]).astype(np.float32),
                                 np.stack([evidence.front_mm] * 2), np.stack([evidence.back_mm] * 2), np.ones(2))
    found = {name: StructureSurface(vtk.vtkPolyData(), [0], {}, [1.0]) for name in names}
    fits = combine_bones(Reconstruction(found, [prediction]), None, load_models(None), names)
    assert isinstance(fits["vertebrae_L4"], BoneFit)
    assert isinstance(fits["vertebrae_L3"], str) and "vertebra" in fits["vertebrae_L3"]


def test_starts_are_shifted_along_an_axis_only_where_the_scan_or_image_cuts_the_bone(vertebra):
    """A smaller vertebra (the model spans T1-L5) is placed by its centre; one whose lower half the
    scan cut off is also tried shifted either way along the spine."""
    from SingleImageReconLib.shape_models.evidence_fit import _starts

    beam = np.array([0.0, 1.0, 0.0])
    whole = vertebra.mean_mm
    smaller = whole * [0.75, 1.0, 0.75]
    cut = whole[whole[:, 2] > np.percentile(whole[:, 2], 50)]
    assert len(_starts(vertebra, whole, beam)) == len(_starts(vertebra, smaller, beam)) == 2
    starts = _starts(vertebra, cut, beam)
    centres = {}
    for start in starts:  # both centre estimates, each shifted along S (index 5) only
        centres.setdefault(tuple(np.round(start[3:5], 6)), set()).add(round(float(start[5]), 6))
    assert len(starts) == 6 and len(centres) == 2 and all(len(heights) == 3 for heights in centres.values())
