"""Shape models: LLP26 conversion, the vertebra model's parts, file safety, landmarks and fitting."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import xrecon_in_process
from SingleImageReconLib.shape_models.correspondence import register_template, similarity_transform
from SingleImageReconLib.shape_models.lagrange_mesh import _element_triangles
from SingleImageReconLib.shape_models.landmark_fit import LandmarkView, fit_shape_to_landmarks
from SingleImageReconLib.shape_models.llp26 import build_llp26_model, read_pca_pickle
from SingleImageReconLib.shape_models.model_files import load_models, structure_bone_type
from SingleImageReconLib.shape_models.pca import pca, widen_with_smooth_kernel
from SingleImageReconLib.shape_models.procrustes import generalized_procrustes, rigid_transform
from SingleImageReconLib.shape_models.rebuild import leave_one_out
from SingleImageReconLib.shape_models.shape_model import load_shape_model, save_shape_model
from SingleImageReconLib.reconstruction.surface import open_and_non_manifold_edges
from SingleImageReconLib.meshes.triangle_mesh import as_mesh, polydata_from_arrays
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import preset_geometry
from SyntheticDataGenLib.cases.landmarks import read_markups_json

MODELS = load_models()


def _sphere(count: int = 400) -> np.ndarray:
    """Fibonacci points on a unit sphere."""
    index = np.arange(count) + 0.5
    polar, azimuth = np.arccos(1 - 2 * index / count), np.pi * (1 + 5 ** 0.5) * index
    return np.c_[np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)]


@pytest.mark.parametrize("kind, nodes, triangles", [("quad44", 16, 18), ("quad54", 20, 24), ("quad55", 25, 32),
                                                    ("tri10", 10, 9), ("tri15", 15, 16)])
def test_lagrange_elements_are_cut_into_their_node_grids(kind, nodes, triangles):
    count, local = _element_triangles(kind)
    assert count == nodes and len(local) == triangles
    assert set(local.ravel()) == set(range(nodes))  # every node is a vertex of the surface


@pytest.mark.parametrize("bone", ["hip", "sacrum", "femur", "vertebra"])
def test_bundled_models_are_closed_outward_surfaces_with_landmarks(bone):
    model = MODELS[bone]
    surface = polydata_from_arrays(model.mean_mm, model.triangles)
    assert open_and_non_manifold_edges(surface) == 0
    assert as_mesh(surface, bone).signed_volume > 0  # triangles ordered outward
    mirrored = model.mirrored()
    assert as_mesh(polydata_from_arrays(mirrored.mean_mm, mirrored.triangles), bone).signed_volume > 0
    assert np.allclose(model.landmark_weights.sum(axis=1), 1.0, atol=1e-6)
    assert len(model.landmark_names) >= 4 and len(set(model.landmark_names)) == len(model.landmark_names)
    assert np.abs(model.mean_mm.mean(axis=0)).max() < 1.0  # centred
    gram = model.modes.reshape(model.mode_count, -1) @ model.modes.reshape(model.mode_count, -1).T
    assert np.allclose(gram, np.eye(model.mode_count), atol=1e-4)
    assert np.all(np.diff(model.variances_mm2) <= 1e-6)
    assert len(model.instances_mm) >= 19


def test_landmarks_lie_where_their_names_say():
    """RAS: +x the patient's right, +y anterior, +z superior; the models describe a left hip and femur."""
    def landmark(bone, name):
        model = MODELS[bone]
        return model.landmarks(model.mean_mm)[model.landmark_names.index(name)]

    assert landmark("vertebra", "spinous_process_tip")[1] < landmark("vertebra", "canal_centre")[1] \
        < landmark("vertebra", "body_superior_anterior")[1]
    assert landmark("vertebra", "transverse_process_tip_right")[0] > landmark("vertebra", "transverse_process_tip_left")[0]
    assert landmark("vertebra", "body_superior_anterior")[2] > landmark("vertebra", "body_inferior_anterior")[2]
    assert landmark("hip", "anterior_superior_iliac_spine")[1] > landmark("hip", "posterior_superior_iliac_spine")[1]
    assert landmark("hip", "iliac_crest_top")[2] > landmark("hip", "acetabular_centre")[2] \
        > landmark("hip", "ischial_tuberosity")[2]
    assert landmark("hip", "pubic_symphysis")[0] > landmark("hip", "acetabular_centre")[0]  # medial of a left hip
    assert landmark("femur", "femoral_head_centre")[2] > landmark("femur", "lesser_trochanter")[2] \
        > landmark("femur", "medial_condyle_distal")[2]
    assert landmark("femur", "femoral_head_centre")[0] > landmark("femur", "greater_trochanter")[0]
    head = MODELS["femur"]
    distances = np.linalg.norm(head.mean_mm - landmark("femur", "femoral_head_centre"), axis=1)
    assert 15.0 < distances.min() < 30.0  # a centre inside the head, a head radius from its surface


def test_llp26_conversion_reproduces_the_bundled_models():
    for bone in ("hip", "sacrum", "femur"):
        fresh, bundled = build_llp26_model(bone), MODELS[bone]
        assert np.abs(fresh.mean_mm - bundled.mean_mm).max() < 1e-6
        assert np.abs(np.abs(fresh.modes) - np.abs(bundled.modes)).max() < 1e-4
        assert fresh.landmark_names == bundled.landmark_names


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pca_pickle_reader_refuses_anything_but_arrays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pc"
    path.write_bytes(pickle.dumps({"mean": np.zeros(3), "modes": _Exploit(), "projectedWeights": np.zeros(1)}))
    with pytest.raises(XreconInputError, match="refused global"):
        read_pca_pickle(path)
    assert not (tmp_path / "pwned").exists()


def test_model_file_round_trip_and_no_pickles(tmp_path):
    model = MODELS["femur"]
    save_shape_model(model, tmp_path / "femur.npz")
    again = load_shape_model(tmp_path / "femur.npz")
    assert np.array_equal(again.triangles, model.triangles) and again.landmark_names == model.landmark_names
    assert np.abs(again.modes - model.modes).max() < 1e-6
    with np.load(tmp_path / "femur.npz") as data:
        arrays = dict(data)
    np.savez(tmp_path / "object.npz", **{**arrays, "modes": np.array([_Exploit()], dtype=object)})
    with pytest.raises(XreconInputError, match="not an xrecon shape model"):
        load_shape_model(tmp_path / "object.npz")


def test_pca_recovers_known_modes_and_the_kernel_adds_its_variance():
    rng = np.random.default_rng(0)
    mean = _sphere(60) * 20.0
    direction = rng.standard_normal((60, 3))
    direction /= np.linalg.norm(direction)
    shapes = mean + rng.standard_normal(200)[:, None, None] * 5.0 * direction
    fitted_mean, modes, variances = pca(shapes)
    assert np.abs(fitted_mean - mean).max() < 1.0
    assert abs(variances[0] - 25.0) < 5.0 and len(variances) == 1  # the other directions hold no variance
    assert abs(abs(modes[0].ravel() @ direction.ravel()) - 1.0) < 1e-6
    widened_modes, widened = widen_with_smooth_kernel(fitted_mean, modes[:1], variances[:1], 2.0, 10.0, 181)
    # trace of the combined covariance: the sample's plus the kernel's (3 axes x N vertices x s²)
    assert widened.sum() == pytest.approx(variances[0] + 3 * 60 * 4.0, rel=1e-6)
    assert widened_modes.shape == (180, 60, 3)  # all 3N directions


def test_procrustes_undoes_rigid_motion():
    rng = np.random.default_rng(1)
    base = _sphere(50) * np.array([30.0, 20.0, 10.0])
    rotations = Rotation.random(5, random_state=2).as_matrix()
    instances = np.stack([base @ r.T + rng.uniform(-50, 50, 3) for r in rotations])
    aligned = generalized_procrustes(instances)
    assert np.abs(aligned - aligned[0]).max() < 1e-6
    rotation, translation = rigid_transform(instances[0], instances[1])
    assert np.abs(instances[0] @ rotation.T + translation - instances[1]).max() < 1e-6


def test_template_registration_finds_a_similarity_and_then_the_shape():
    template = _sphere(500) * 20.0
    rotation = Rotation.from_rotvec([0.1, -0.2, 0.15]).as_matrix()
    scale, turned, shift = similarity_transform(template, 1.3 * template @ rotation.T + 7.0)
    assert scale == pytest.approx(1.3) and np.allclose(turned, rotation) and np.allclose(shift, 7.0)
    target = _sphere(4000) * np.array([30.0, 22.0, 16.0]) + 5.0  # an ellipsoid: no similarity reaches it
    result = register_template(template, target)
    assert result.rigid_residual_mm > 1.0
    assert result.residual_mm < 0.5 * result.rigid_residual_mm


def _views(names, centre):
    return [preset_geometry(name, isocenter_ras_mm=centre, size_px=(256, 256), pixel_spacing_mm=(1.6, 1.6))
            for name in names]


def _landmark_views(model, truth, geometries, noise_px, rng, sigma=None):
    views = []
    for geometry in geometries:
        uv, _ = geometry.project(model.landmarks(truth))
        scale = np.full(len(uv), noise_px) if sigma is None else sigma
        views.append(LandmarkView(geometry, uv + rng.standard_normal(uv.shape) * scale[:, None],
                                  np.maximum(scale, 0.5)))
    return views


def _vertex_error(fit, truth):
    return float(np.linalg.norm(fit.vertices_mm - truth, axis=1).mean())


def test_two_views_of_exact_landmarks_recover_a_left_out_shape():
    model = MODELS["hip"]
    rebuilt = leave_one_out(model, 3)
    truth = model.instances_mm[3] @ Rotation.from_rotvec([0.05, -0.08, 0.1]).as_matrix().T + [10.0, -20.0, 30.0]
    fit = fit_shape_to_landmarks(rebuilt, _landmark_views(rebuilt, truth, _views(("ap", "lateral-left"),
                                                                                  truth.mean(axis=0)), 0.0,
                                                          np.random.default_rng(0)))
    mean_only = fit_shape_to_landmarks(rebuilt, _landmark_views(
        rebuilt, truth, _views(("ap", "lateral-left"), truth.mean(axis=0)), 0.0, np.random.default_rng(0)),
        mode_count=0)
    assert fit.reprojection_px < 1.0  # a model without this hip cannot match it exactly
    assert _vertex_error(fit, truth) < 0.9 * _vertex_error(mean_only, truth)


def test_robust_loss_ignores_gross_outliers_and_sigma_weighting_helps():
    model = MODELS["femur"]
    rng = np.random.default_rng(4)
    robust, plain, weighted, unweighted = [], [], [], []
    for index in range(6):
        rebuilt = leave_one_out(model, index)
        truth = model.instances_mm[index] + [0.0, 0.0, 20.0]
        geometries = _views(("ap", "lateral-left"), truth.mean(axis=0))
        views = _landmark_views(rebuilt, truth, geometries, 1.0, rng)
        views[0].uv_px[2] += [40.0, -35.0]  # one landmark gone far astray
        robust.append(_vertex_error(fit_shape_to_landmarks(rebuilt, views), truth))
        plain.append(_vertex_error(fit_shape_to_landmarks(rebuilt, views, robust_scale=None), truth))
        sigma = np.where(np.arange(len(model.landmark_names)) % 2 == 0, 0.5, 6.0)
        views = _landmark_views(rebuilt, truth, geometries, 0.0, rng, sigma)
        weighted.append(_vertex_error(fit_shape_to_landmarks(rebuilt, views), truth))
        unweighted.append(_vertex_error(fit_shape_to_landmarks(rebuilt, views, weighted=False), truth))
    assert np.mean(robust) < 0.7 * np.mean(plain)
    assert np.mean(weighted) < np.mean(unweighted)
    outlier_fit = fit_shape_to_landmarks(leave_one_out(model, 0), _landmark_views(
        model, model.instances_mm[0], _views(("ap",), model.instances_mm[0].mean(axis=0)), 0.0, rng))
    assert outlier_fit.outliers[0].sum() == 0


def test_fit_refuses_landmarks_of_the_wrong_shape():
    model = MODELS["femur"]
    geometry = _views(("ap",), np.zeros(3))[0]
    with pytest.raises(XreconInputError, match="expected"):
        fit_shape_to_landmarks(model, [LandmarkView(geometry, np.zeros((3, 2)), np.ones(3))])


def test_structure_names_map_to_bone_types():
    assert structure_bone_type("vertebrae_T7") == ("vertebra", "midline")
    assert structure_bone_type("femur_right") == ("femur", "right")
    assert structure_bone_type("vertebrae_S1") is None and structure_bone_type("rib_left_3") is None


def test_ssm_commands(tmp_path, capfd):
    import vtk

    status, out, _ = xrecon_in_process(capfd, "ssm", "info", "--figure", tmp_path / "models.png")
    assert status == 0 and [m["name"] for m in json.loads(out)] == ["vertebra", "sacrum", "hip", "femur"]
    assert (tmp_path / "models.png").stat().st_size > 10_000
    status, _, _ = xrecon_in_process(capfd, "ssm", "sample", "hip", "--side", "right", "--count", "2",
                                     "--out", tmp_path / "samples")
    assert status == 0
    reader = vtk.vtkPolyDataReader()
    reader.SetFileName(str(tmp_path / "samples" / "hip_right_2.vtk"))
    reader.Update()
    assert reader.GetOutput().GetNumberOfPoints() == MODELS["hip"].vertex_count
    labels, points = read_markups_json(tmp_path / "samples" / "hip_right_2.mrk.json")
    assert labels == list(MODELS["hip"].landmark_names) and np.isfinite(points).all()
    status, out, _ = xrecon_in_process(capfd, "ssm", "build", "femur", "--out", tmp_path / "femur.npz")
    assert status == 0 and json.loads(out)["training_shapes"] == 26
    assert np.abs(load_shape_model(tmp_path / "femur.npz").mean_mm - MODELS["femur"].mean_mm).max() < 1e-6


@pytest.mark.slow
def test_case_landmarks_land_on_the_sample_case_bones(tmp_path, capfd):
    from SyntheticDataGenLib.cases.sample_data import sample_case

    case = sample_case("abdomen-pelvis")
    out = tmp_path / "landmarks.mrk.json"
    status, report, _ = xrecon_in_process(capfd, "ssm", "landmarks", "--labels", case.labels_path,
                                          "--labels-table", case.table_path, "--out", out)
    assert status == 0
    report = json.loads(report)
    labels, points = read_markups_json(out)
    assert "vertebrae_L3/spinous_process_tip" in labels
    assert all(value < 1.5 for value in report["residual_mm"].values()), report["residual_mm"]
    # a spinous process tip lies behind its vertebral body
    tip = points[labels.index("vertebrae_L3/spinous_process_tip")]
    body = points[labels.index("vertebrae_L3/body_superior_anterior")]
    assert tip[1] < body[1] - 40.0
    # the scan cuts the hips and femurs: registered from their scanned part, landmarks outside it undefined
    assert set(report["cut_by_the_scan"]) >= {"hip_left", "femur_left"} and not report["left_out"]
    head = points[labels.index("femur_left/femoral_head_centre")]
    cup = points[labels.index("hip_left/acetabular_centre")]
    assert np.linalg.norm(head - cup) < 10.0  # the femoral head sits in the acetabulum
    assert np.isnan(points[labels.index("femur_left/medial_condyle_distal")]).all()  # the knee is not in the scan


def test_unplaced_bones_are_written_with_every_landmark_undefined(tmp_path, capfd):
    """A thigh's femur shaft and a hip fragment: not registered, every landmark undefined (present,
    unplaced), and a name no model describes is refused before anything is written."""
    import SimpleITK as sitk

    labels = np.zeros((12, 20, 20), np.uint8)
    labels[2:10, 5:15, 5:15] = 1
    image = sitk.GetImageFromArray(labels)
    sitk.WriteImage(image, str(tmp_path / "labels.nii.gz"))
    (tmp_path / "labels.csv").write_text("id,structure\n1,femur_left\n")
    arguments = ["ssm", "landmarks", "--labels", tmp_path / "labels.nii.gz", "--labels-table", tmp_path / "labels.csv"]
    out = tmp_path / "thigh.mrk.json"
    status, report, _ = xrecon_in_process(capfd, *arguments, "--unplaced", "femur_left", "--unplaced", "sacrum",
                                          "--out", out)
    assert status == 0 and json.loads(report)["unplaced"] == ["femur_left", "sacrum"]
    names, points = read_markups_json(out)
    assert names == ([f"femur_left/{name}" for name in MODELS["femur"].landmark_names]
                     + [f"sacrum/{name}" for name in MODELS["sacrum"].landmark_names])
    assert np.isnan(points).all()
    status, _, err = xrecon_in_process(capfd, *arguments, "--unplaced", "ulna_left", "--out", tmp_path / "u.mrk.json")
    assert status == 2 and "no model describes ulna_left" in err and not (tmp_path / "u.mrk.json").exists()


def test_a_reconstruction_past_the_scan_is_measured_inside_it_only():
    """A whole sphere against a label the scan cuts in half: clipped and capped where the scan ends."""
    import vtk

    from SingleImageReconLib.evaluation.metrics import clip_to_scan, cut_sides

    mask = np.zeros((20, 40, 40), dtype=bool)
    k, j, i = np.mgrid[:20, :40, :40]
    mask[(k - 19.5) ** 2 + (j - 19.5) ** 2 + (i - 19.5) ** 2 <= 15 ** 2] = True
    assert cut_sides(mask) == [(2, 1)]  # the last k layer only
    sphere = vtk.vtkSphereSource()
    sphere.SetCenter(19.5, 19.5, 19.5)
    sphere.SetRadius(15)
    sphere.SetThetaResolution(64)
    sphere.SetPhiResolution(64)
    sphere.Update()
    clipped = clip_to_scan(sphere.GetOutput(), mask.shape, np.eye(4), cut_sides(mask))
    bounds = clipped.GetBounds()
    assert bounds[5] == pytest.approx(19.5, abs=1e-6) and bounds[4] == pytest.approx(4.5, abs=0.1)
    assert clip_to_scan(sphere.GetOutput(), mask.shape, np.eye(4), []) is sphere.GetOutput()
