"""Shape-model anatomy augmentation: point-driven deformations, new bone shapes, and generate."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SingleImageReconLib.shape_models.model_files import load_models
from SingleImageReconLib.shape_models.shape_sampling import ShapeModelSampler, keep_joints, shape_change_mm
from SyntheticDataGenLib.augmentation.ladder import PRESETS, sample_anatomy
from SyntheticDataGenLib.anatomy.deformation import interpolate_displacement, inverse_transform_points
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.dataset.generation import BaseView, CaseSource, GenerationSettings, generate_dataset
from SyntheticDataGenLib.anatomy.point_deformation import MIN_JACOBIAN, PointTargets, point_deformation
from SyntheticDataGenLib.cases.sample_data import sample_case


def _volume() -> sitk.Image:
    ct = sitk.Image([100, 90, 80], sitk.sitkInt16)
    ct.SetSpacing([1.5, 1.5, 2.0])
    ct.SetOrigin([10.0, -20.0, 5.0])
    ct.SetDirection([-1, 0, 0, 0, -1, 0, 0, 0, 1])  # a flipped grid, as most CTs have
    return ct


def _sphere_points(centre, radius_mm, count=600, seed=0):
    directions = np.random.default_rng(seed).normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return centre + radius_mm * directions, directions


def _centre(ct):
    return np.array(ct.TransformContinuousIndexToPhysicalPoint([50.0, 45.0, 40.0])) * [-1, -1, 1]


def test_points_reach_their_targets_the_inside_follows_and_far_tissue_stays():
    ct = _volume()
    centre = _centre(ct)
    source, directions = _sphere_points(centre, 18.0)
    target = centre + 20.0 * directions  # the "bone" grows by 2 mm all round
    deformation = point_deformation(ct, PointTargets(source, target))
    assert deformation.scale == 1.0 and deformation.min_jacobian >= MIN_JACOBIAN
    pull = interpolate_displacement(deformation.field, 1.0, keep_position=False)
    moved = inverse_transform_points(pull, source)  # where the anatomy at each source point lands
    assert np.linalg.norm(moved - target, axis=1).max() < 0.2
    assert np.linalg.norm(inverse_transform_points(pull, centre[None]) - centre) < 0.5
    halfway = inverse_transform_points(pull, centre + 9.0 * directions[:5])
    assert np.all(np.abs(np.linalg.norm(halfway - centre, axis=1) - 10.0) < 1.0)  # scaled, like the surface
    far = centre + np.array([[60.0, 0, 0], [0, 0, 70.0]])
    assert np.allclose(inverse_transform_points(pull, far), far, atol=1e-6)


def test_a_folding_request_is_scaled_down_until_the_map_stays_invertible():
    ct = _volume()
    centre = _centre(ct)
    source, _ = _sphere_points(centre, 15.0)
    # two halves pushed through each other: no invertible map does that in full
    push = np.where((source[:, 2] > centre[2])[:, None], [0, 0, -12.0], [0, 0, 12.0])
    deformation = point_deformation(ct, PointTargets(source, source + push))
    assert deformation.scale < 1.0 and deformation.min_jacobian >= MIN_JACOBIAN


@pytest.mark.parametrize("source, target", [
    (np.zeros((4, 3)), np.zeros((5, 3))),
    (np.zeros((0, 3)), np.zeros((0, 3))),
    (np.full((3, 3), np.nan), np.zeros((3, 3))),
    (np.zeros((3, 2)), np.zeros((3, 2))),
])
def test_bad_point_targets_are_refused(source, target):
    with pytest.raises(XreconInputError):
        point_deformation(_volume(), PointTargets(source, target))


@pytest.fixture(scope="module")
def models():
    return load_models()


def test_a_shape_change_lies_in_the_model_span_turned_into_the_bone_pose(models):
    model = models["femur"]
    turn = sitk.VersorTransform([0.0, 0.0, 1.0], 0.4)
    rotation = np.asarray(turn.GetMatrix()).reshape(3, 3)
    posed = model.mean_mm @ rotation.T + [5.0, -3.0, 100.0]
    delta = np.zeros(model.mode_count)
    delta[:3] = model.standard_deviations_mm[:3]
    change = shape_change_mm(model, posed, delta)
    expected = (model.instance(delta) - model.mean_mm) @ rotation.T
    assert np.allclose(change, expected, atol=1e-6)


def test_joints_keep_meeting_when_vertebrae_change(models):
    vertebra = models["vertebra"]
    rng = np.random.default_rng(1)
    changes = {}
    for level, name in enumerate(("vertebrae_L3", "vertebrae_L4", "vertebrae_L5")):
        delta = 0.5 * rng.standard_normal(vertebra.mode_count) * vertebra.standard_deviations_mm
        posed = vertebra.mean_mm + [0.0, 0.0, -35.0 * level]
        changes[name] = (vertebra, shape_change_mm(vertebra, posed, delta))
    kept = keep_joints(changes)
    names = vertebra.landmark_names
    superior = [names.index("body_superior_anterior"), names.index("body_superior_posterior")]
    inferior = [names.index("body_inferior_anterior"), names.index("body_inferior_posterior")]
    for upper, lower in (("vertebrae_L3", "vertebrae_L4"), ("vertebrae_L4", "vertebrae_L5")):
        bottom = (vertebra.landmark_weights[inferior] @ kept[upper]).mean(axis=0)
        top = (vertebra.landmark_weights[superior] @ kept[lower]).mean(axis=0)
        assert np.allclose(bottom, top, atol=1e-9), "the disc between them would be squeezed or torn"
    assert np.allclose(kept["vertebrae_L5"], changes["vertebrae_L5"][1])  # the lowest one stays where it is
    unkept = {name: change for name, (_, change) in changes.items()}
    assert not np.allclose(kept["vertebrae_L3"], unkept["vertebrae_L3"])


def _cached_sampler(models, tmp_path, bones):
    folder = tmp_path / "correspondences"
    folder.mkdir()
    np.savez(folder / "case.npz", **bones)
    return ShapeModelSampler(models, folder)


def test_the_sampler_reads_its_cache_keeps_shapes_at_zero_and_draws_reproducibly(models, tmp_path):
    femur = models["femur"].mean_mm + [80.0, 0.0, 0.0]  # the left femur as stored
    sampler = _cached_sampler(models, tmp_path, {"femur_left": femur, "vertebrae_L3": models["vertebra"].mean_mm})
    unchanged = sampler("case", None, ["femur_left", "vertebrae_L3"], 0.0, np.random.default_rng(0))
    assert np.array_equal(unchanged.source_ras_mm, unchanged.target_ras_mm)
    assert unchanged.structures == ("femur_left", "vertebrae_L3")
    first = sampler("case", None, ["femur_left"], 1.0, np.random.default_rng(5))
    again = sampler("case", None, ["femur_left"], 1.0, np.random.default_rng(5))
    assert first.structures == ("femur_left",) and np.array_equal(first.target_ras_mm, again.target_ras_mm)
    moved = np.linalg.norm(first.target_ras_mm - first.source_ras_mm, axis=1).mean()
    assert 0.5 < moved < 30.0


def test_anatomy_draws_shapes_only_with_a_sampler_and_keeps_the_older_keys():
    config = PRESETS["heavy"]
    without = sample_anatomy(config, np.random.default_rng(3), ["other"])
    draws = [sample_anatomy(config, np.random.default_rng(seed), ["other"], shapes=True) for seed in range(40)]
    assert without["shape_sd"] == 0.0
    same_seed = draws[3]
    assert {key: same_seed[key] for key in ("deformation_mm", "seed")} == \
        {key: without[key] for key in ("deformation_mm", "seed")}
    shaped = [draw for draw in draws if draw["shape_sd"] > 0]
    assert 5 < len(shaped) < 35 and all(draw["towards_case"] is None for draw in shaped)
    assert all(0.3 <= draw["shape_sd"] <= 1.0 for draw in shaped)
    assert all(draw["shape_sd"] == 0 for draw in (sample_anatomy(config.scaled(shape=0), np.random.default_rng(s),
                                                                 [], shapes=True) for s in range(10)))


class _GrowL3:
    """A stand-in sampler (the ShapeSampler seam): the L3 label's surface voxels grow 3 mm outward."""

    def __init__(self):
        self.calls = 0

    def __call__(self, case, segmentation, structures, sd_fraction, rng):
        self.calls += 1
        mask = segmentation.mask_array("vertebrae_L3")
        kji = np.argwhere(mask)[::7]
        ras = np.array([segmentation.reference.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]])
                        for p in kji]) * [-1, -1, 1]
        outward = ras - ras.mean(axis=0)
        outward /= np.linalg.norm(outward, axis=1, keepdims=True)
        return PointTargets(ras, ras + 3.0 * outward, ("vertebrae_L3",))


def test_generate_gives_bones_new_shapes_through_the_sampler_and_records_it(tmp_path):
    files = sample_case("abdomen-pelvis")
    source = CaseSource("abdomen-pelvis", files.ct_path, files.labels_path, files.table_path, "train")
    config = PRESETS["heavy"].scaled(geometric=0, physics=0, style=0, anatomy=0).scaled(shape=2.0)  # always
    settings = GenerationSettings(["vertebrae_L3"], 2, 0, BaseView(size_px=(64, 64), pixel_spacing_mm=(6.4, 6.4)),
                                  config, "heavy", views_per_anatomy=2)
    sampler = _GrowL3()
    generate_dataset(tmp_path / "shaped", [source], settings, shape_sampler=sampler)
    generate_dataset(tmp_path / "plain", [source], settings)
    rows = [json.loads(line) for line in (tmp_path / "shaped" / "manifest.jsonl").open()]
    assert sampler.calls == 1 and all(row["anatomy"]["shape_scale"] == 1.0 for row in rows)
    plain = [json.loads(line) for line in (tmp_path / "plain" / "manifest.jsonl").open()]
    assert all(row["anatomy"]["shape_sd"] == 0.0 and "shape_scale" not in row["anatomy"] for row in plain)
    with np.load(tmp_path / "shaped" / rows[0]["file"]) as shaped, np.load(tmp_path / "plain" / plain[0]["file"]) as flat:
        assert shaped["masks"].sum() > 1.1 * flat["masks"].sum(), "L3 should cover more of the image"
