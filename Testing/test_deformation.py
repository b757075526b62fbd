"""Anatomy augmentation: random B-spline deformations, warping CT + labels, moving landmarks,
and registration-based interpolation between cases."""

import numpy as np
import pytest
import SimpleITK as sitk

from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct
from SyntheticDataGenLib.anatomy.deformation import (
    HEAVY_MAGNITUDE_MM, LIGHT_MAGNITUDE_MM, interpolate_displacement, inverse_transform_points,
    jacobian_determinant, random_bspline_transform, register_cases, sample_displacement_field,
    transform_points, warp_case)
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.cases.labels import Segmentation, read_segmentation
from SyntheticDataGenLib.cases.sample_data import sample_case


def load_case(name):
    case = sample_case(name)
    ct = read_ct(case.ct_path)
    return ct, read_segmentation(case.labels_path, case.table_path, reference=ct)


@pytest.fixture(scope="module")
def abdomen():
    return load_case("abdomen-pelvis")


@pytest.fixture(scope="module")
def chest():
    return load_case("chest")


def phantom(bone_semi_axes_mm, spacing_mm=3.0, size=(86, 74, 96), flip_xy=True):
    """A synthetic "CT": a bone ellipsoid (700 HU) in a water body (0 HU) in air (-1000 HU),
    both centred on the physical origin; the bone is labelled 1."""
    direction = np.diag([-1.0, -1.0, 1.0] if flip_xy else [1.0, 1.0, 1.0])
    origin = -direction @ ((np.asarray(size) - 1) / 2 * spacing_mm)
    k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    points_lps = np.stack([i, j, k], axis=-1) * spacing_mm @ direction.T + origin
    body = ((points_lps / [110.0, 85.0, 125.0]) ** 2).sum(-1) <= 1
    bone = ((points_lps / np.asarray(bone_semi_axes_mm, dtype=float)) ** 2).sum(-1) <= 1
    ct = sitk.GetImageFromArray(np.where(bone, 700, np.where(body, 0, -1000)).astype(np.int16))
    ct.SetSpacing([spacing_mm] * 3)
    ct.SetOrigin(origin.tolist())
    ct.SetDirection(direction.ravel().tolist())
    labels = sitk.GetImageFromArray(bone.astype(np.uint8))
    labels.CopyInformation(ct)
    return ct, Segmentation([labels], {"bone": (0, 1)})


def dice(a, b):
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def centroid_ras(segmentation, name):
    """Mean RAS position of a structure's voxel centres, mm."""
    kji = np.argwhere(segmentation.mask_array(name)).mean(axis=0)
    return (ijk_to_ras(segmentation.reference) @ np.r_[kji[::-1], 1.0])[:3]


def points_inside(image, count, seed=0, margin=0.1):
    """Random RAS points inside the image's domain (away from its faces)."""
    rng = np.random.default_rng(seed)
    ijk = rng.uniform(margin, 1 - margin, (count, 3)) * (np.asarray(image.GetSize()) - 1)
    return (np.c_[ijk, np.ones(count)] @ ijk_to_ras(image).T)[:, :3]


# --- random deformations ------------------------------------------------------------------------


def test_same_seed_gives_identical_transform_and_warp(abdomen):
    ct, segmentation = abdomen
    first = random_bspline_transform(ct, np.random.default_rng(7), LIGHT_MAGNITUDE_MM)
    second = random_bspline_transform(ct, np.random.default_rng(7), LIGHT_MAGNITUDE_MM)
    other = random_bspline_transform(ct, np.random.default_rng(8), LIGHT_MAGNITUDE_MM)
    assert first.GetParameters() == second.GetParameters()
    assert first.GetParameters() != other.GetParameters()
    ct_1, labels_1 = warp_case(ct, segmentation, first)
    ct_2, labels_2 = warp_case(ct, segmentation, second)
    assert np.array_equal(sitk.GetArrayViewFromImage(ct_1), sitk.GetArrayViewFromImage(ct_2))
    assert np.array_equal(sitk.GetArrayViewFromImage(labels_1.layers[0]),
                          sitk.GetArrayViewFromImage(labels_2.layers[0]))
    assert not np.array_equal(sitk.GetArrayViewFromImage(ct_1), sitk.GetArrayViewFromImage(ct))


def test_zero_magnitude_is_the_identity(abdomen):
    ct, segmentation = abdomen
    transform = random_bspline_transform(ct, np.random.default_rng(0), 0.0)
    assert not np.any(transform.GetParameters())
    warped_ct, warped_labels = warp_case(ct, segmentation, transform)
    assert warped_ct.GetPixelID() == ct.GetPixelID()
    assert np.array_equal(sitk.GetArrayViewFromImage(warped_ct), sitk.GetArrayViewFromImage(ct))
    assert np.array_equal(sitk.GetArrayViewFromImage(warped_labels.layers[0]),
                          sitk.GetArrayViewFromImage(segmentation.layers[0]))
    points = points_inside(ct, 5)
    assert np.allclose(inverse_transform_points(transform, points), points, atol=1e-9)


@pytest.mark.parametrize("case", ["abdomen", "chest"])
@pytest.mark.parametrize("magnitude_mm", [LIGHT_MAGNITUDE_MM, HEAVY_MAGNITUDE_MM])
def test_recommended_magnitudes_stay_diffeomorphic(case, magnitude_mm, request):
    ct, _ = request.getfixturevalue(case)
    for seed in range(3):
        transform = random_bspline_transform(ct, np.random.default_rng(seed), magnitude_mm)
        # A finer grid than the built-in check (6 mm) and the whole image domain.
        field = sample_displacement_field(transform, ct, spacing_mm=4.0).GetDisplacementField()
        determinant = jacobian_determinant(field)
        assert determinant.min() > 0.35 and determinant.max() < 2.9
        # magnitude_mm is the standard deviation of each displacement component.
        displacement = sitk.GetArrayViewFromImage(field)
        assert 0.6 * magnitude_mm < displacement.std() < 1.4 * magnitude_mm


def test_excessive_magnitude_is_scaled_down_to_stay_invertible(abdomen):
    ct, _ = abdomen
    transform = random_bspline_transform(ct, np.random.default_rng(1), 40.0)
    determinant = jacobian_determinant(sample_displacement_field(transform, ct, 3.0).GetDisplacementField())
    assert determinant.min() > 0.3 and determinant.max() < 1 / 0.3


def test_jacobian_determinant_respects_the_grid_direction():
    """A stretch by 1.2 along LPS x has determinant 1.2 whatever the grid's axis directions."""
    for direction in (np.eye(3), np.diag([-1.0, -1.0, 1.0]), np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1.0]])):
        grid = sitk.Image([6, 7, 8], sitk.sitkFloat32)
        grid.SetSpacing([2.0, 3.0, 4.0])
        grid.SetDirection(direction.ravel().tolist())
        stretch = sitk.AffineTransform(3)
        stretch.SetMatrix([1.2, 0, 0, 0, 1, 0, 0, 0, 1])
        field = sitk.TransformToDisplacementField(stretch, sitk.sitkVectorFloat64, grid.GetSize(), grid.GetOrigin(),
                                                  grid.GetSpacing(), grid.GetDirection())
        assert np.allclose(jacobian_determinant(field), 1.2)


def test_sampled_field_matches_the_bspline(chest):
    ct, _ = chest
    transform = random_bspline_transform(ct, np.random.default_rng(2), HEAVY_MAGNITUDE_MM)
    sampled = sample_displacement_field(transform, ct)
    points = points_inside(ct, 300, margin=0.0)
    error = np.linalg.norm(transform_points(sampled, points) - transform_points(transform, points), axis=1)
    assert error.max() < 0.05


def test_bad_arguments_are_refused(abdomen):
    ct, segmentation = abdomen
    with pytest.raises(XreconInputError):
        random_bspline_transform(ct, np.random.default_rng(0), -1.0)
    other_grid = sitk.Image(segmentation.layers[0])
    other_grid.SetOrigin([0.0, 0.0, 0.0])
    with pytest.raises(XreconInputError, match="grid"):
        warp_case(ct, Segmentation([other_grid], segmentation.structures), sitk.Transform())
    with pytest.raises(XreconInputError, match="masks"):
        register_cases(ct, ct, fixed_mask=segmentation.layers[0])
    with pytest.raises(XreconInputError):
        transform_points(sitk.Transform(), np.zeros(3))


# --- warping CT and labels ----------------------------------------------------------------------


def test_labels_keep_label_values_and_volumes_change_little(abdomen):
    ct, segmentation = abdomen
    transform = random_bspline_transform(ct, np.random.default_rng(3), LIGHT_MAGNITUDE_MM)
    warped_ct, warped = warp_case(ct, segmentation, transform)
    assert warped_ct.GetPixelID() == ct.GetPixelID()
    assert set(np.unique(sitk.GetArrayViewFromImage(warped.layers[0]))) <= set(
        np.unique(sitk.GetArrayViewFromImage(segmentation.layers[0])))
    assert warped.structures == segmentation.structures
    before, after = segmentation.voxel_counts(), warped.voxel_counts()
    for name in ("femur_left", "femur_right", "hip_left", "hip_right", "sacrum", "vertebrae_L4"):
        # Light: local volume ratio within about [0.75, 1.3]; a whole bone averages it out.
        assert 0.8 < after[name] / before[name] < 1.25, name


def test_landmarks_move_with_the_anatomy():
    """A small ball's centre, mapped with inverse_transform_points, is where the warped ball is."""
    ct, _ = phantom((60, 45, 80), spacing_mm=2.0, size=(100, 90, 110))
    centres_ras = np.array([[20.0, -10.0, 30.0], [-35.0, 25.0, -40.0]])
    ball = sitk.GetArrayFromImage(ct) * 0
    kji = np.stack(np.meshgrid(*[np.arange(n) for n in ball.shape], indexing="ij"), axis=-1)
    ras = np.c_[kji[..., ::-1].reshape(-1, 3), np.ones(ball.size)] @ ijk_to_ras(ct).T
    for label, centre in enumerate(centres_ras, start=1):
        ball.ravel()[np.linalg.norm(ras[:, :3] - centre, axis=1) <= 7.0] = label
    labels = sitk.GetImageFromArray(ball.astype(np.uint8))
    labels.CopyInformation(ct)
    segmentation = Segmentation([labels], {"first": (0, 1), "second": (0, 2)})
    transform = random_bspline_transform(ct, np.random.default_rng(4), 6.0, control_spacing_mm=50.0)
    _, warped = warp_case(ct, segmentation, transform)
    moved = inverse_transform_points(transform, centres_ras)
    assert np.linalg.norm(moved - centres_ras, axis=1).min() > 2.0  # the test means something
    for name, expected in zip(("first", "second"), moved):
        assert np.linalg.norm(centroid_ras(warped, name) - expected) < 0.5


# --- points -------------------------------------------------------------------------------------


def test_inverse_points_round_trip(abdomen):
    ct, _ = abdomen
    transform = random_bspline_transform(ct, np.random.default_rng(5), HEAVY_MAGNITUDE_MM)
    points = points_inside(ct, 40, seed=1)
    points[3] = np.nan  # an undefined landmark stays undefined
    for candidate in (transform, sample_displacement_field(transform, ct)):
        inverse = inverse_transform_points(candidate, points)
        assert np.isnan(inverse[3]).all()
        defined = ~np.isnan(points).any(axis=1)
        round_trip = transform_points(candidate, inverse[defined])
        assert np.abs(round_trip - points[defined]).max() < 0.05
        assert np.abs(inverse[defined] - points[defined]).max() > 1.0


def test_point_transforms_speak_ras():
    """A translation of +5 mm along LPS x (= 5 mm to the patient's left) moves RAS x by -5."""
    shift = sitk.TranslationTransform(3, (5.0, 0.0, 0.0))
    points = np.array([[1.0, 2.0, 3.0]])
    assert np.allclose(transform_points(shift, points), [[-4.0, 2.0, 3.0]])
    assert np.allclose(inverse_transform_points(shift, points), [[6.0, 2.0, 3.0]])


# --- real case ----------------------------------------------------------------------------------


def test_warped_abdomen_keeps_its_femur(abdomen):
    ct, segmentation = abdomen
    transform = sample_displacement_field(
        random_bspline_transform(ct, np.random.default_rng(6), HEAVY_MAGNITUDE_MM), ct)
    warped_ct, warped = warp_case(ct, segmentation, transform)
    for name in ("femur_left", "femur_right", "sacrum", "vertebrae_L4"):
        assert warped.voxel_counts()[name] > 0.6 * segmentation.voxel_counts()[name]
        before, after = centroid_ras(segmentation, name), centroid_ras(warped, name)
        # Each displacement component has a standard deviation of magnitude_mm.
        assert np.linalg.norm(after - before) < 2 * np.sqrt(3) * HEAVY_MAGNITUDE_MM
        # (A bone's centroid need not land where its old centroid's tissue does: expanded parts
        # weigh more. test_landmarks_move_with_the_anatomy checks points with small balls.)
    # Bone stays bone: HU inside the warped femur look like the original femur's.
    hu_before = sitk.GetArrayViewFromImage(ct)[segmentation.mask_array("femur_left")].mean()
    hu_after = sitk.GetArrayViewFromImage(warped_ct)[warped.mask_array("femur_left")].mean()
    assert abs(hu_after - hu_before) < 0.1 * abs(hu_before)


# --- registration between cases -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ellipsoids():
    """Case A (to augment) and a shape donor B whose bone is wider, deeper and shorter, with the
    field of registering B (moving) onto A (fixed)."""
    a = phantom((40, 30, 60))
    b = phantom((55, 36, 45))
    stages = []
    field = register_cases(a[0], b[0], a[1].mask("bone"), b[1].mask("bone"),
                           progress=lambda fraction, stage: stages.append((fraction, stage)))
    return a, b, field, stages


def test_registration_maps_fixed_points_to_moving_points(ellipsoids):
    (ct_a, labels_a), (_, labels_b), field, stages = ellipsoids
    assert isinstance(field, sitk.DisplacementFieldTransform)
    assert stages[0][0] == 0.0 and stages[-1][0] == 1.0
    assert all(later[0] >= earlier[0] for earlier, later in zip(stages, stages[1:]))
    # Pulling B's bone through the field onto A's grid gives A's shape.
    pulled = sitk.Resample(labels_b.layers[0], ct_a, field, sitk.sitkNearestNeighbor)
    assert dice(sitk.GetArrayViewFromImage(pulled) == 1, labels_a.mask_array("bone")) > 0.9
    # The tip of A's bone on its x axis (60 mm ... LPS (40, 0, 0)) corresponds to B's (55, 0, 0).
    assert np.allclose(field.TransformPoint((40.0, 0.0, 0.0)), (55.0, 0.0, 0.0), atol=4.0)


def test_interpolation_moves_the_shape_towards_the_donor(ellipsoids):
    (ct_a, labels_a), (_, labels_b), field, _ = ellipsoids
    bone_a, bone_b = labels_a.mask_array("bone"), labels_b.mask_array("bone")
    identity = interpolate_displacement(field, 0.0)
    warped_ct, warped = warp_case(ct_a, labels_a, identity)
    assert np.array_equal(sitk.GetArrayViewFromImage(warped_ct), sitk.GetArrayViewFromImage(ct_a))
    _, halfway = warp_case(ct_a, labels_a, interpolate_displacement(field, 0.5))
    _, full = warp_case(ct_a, labels_a, interpolate_displacement(field, 1.0))
    bone_half, bone_full = halfway.mask_array("bone"), full.mask_array("bone")
    assert dice(bone_full, bone_b) >= 0.85
    assert dice(bone_a, bone_b) < dice(bone_half, bone_b) < dice(bone_full, bone_b)
    assert bone_a.sum() < bone_half.sum() < bone_b.sum()


def test_interpolated_landmarks_move_along_the_correspondence(ellipsoids):
    (ct_a, _), _, field, _ = ellipsoids
    transform = interpolate_displacement(field, 0.5)
    points = points_inside(ct_a, 20, margin=0.25)
    moved = inverse_transform_points(transform, points)
    # W(a) = a + 0.5 (u(a) - mean u): half way to the corresponding donor point.
    displacement = sitk.GetArrayFromImage(field.GetDisplacementField())  # a copy: a view of a temporary dangles
    mean_lps = displacement.reshape(-1, 3).mean(axis=0)
    expected = points + 0.5 * (transform_points(field, points) - points - mean_lps * [-1, -1, 1])
    assert np.abs(moved - expected).max() < 0.2


def test_jitter_composes_around_samples(ellipsoids):
    (ct_a, labels_a), _, field, _ = ellipsoids
    jitter = random_bspline_transform(ct_a, np.random.default_rng(9), LIGHT_MAGNITUDE_MM)
    transform = interpolate_displacement(field, 0.5, jitter=jitter)
    plain = interpolate_displacement(field, 0.5)
    points = points_inside(ct_a, 10, margin=0.2)
    # The jitter acts first on output points: T(x) = W⁻¹(jitter(x)).
    expected = transform_points(plain, transform_points(jitter, points))
    assert np.allclose(transform_points(transform, points), expected, atol=1e-6)
    round_trip = transform_points(transform, inverse_transform_points(transform, points))
    assert np.abs(round_trip - points).max() < 0.05
    _, warped = warp_case(ct_a, labels_a, transform)
    assert warped.voxel_counts()["bone"] > 0


@pytest.mark.slow
def test_registration_recovers_a_known_deformation_of_a_real_case(abdomen):
    """Deform the abdomen with a known B-spline and register the original back onto it."""
    ct, segmentation = abdomen
    known = random_bspline_transform(ct, np.random.default_rng(3), HEAVY_MAGNITUDE_MM)
    deformed_ct, deformed = warp_case(ct, segmentation, known)
    bones, deformed_bones = (sitk.Cast(s.layers[0] > 0, sitk.sitkUInt8) for s in (segmentation, deformed))
    field = register_cases(deformed_ct, ct, deformed_bones, bones)
    # The field maps deformed points to original points, as the known transform does.
    points = np.argwhere(sitk.GetArrayViewFromImage(deformed_bones))[::40, ::-1]
    points_ras = (np.c_[points, np.ones(len(points))] @ ijk_to_ras(ct).T)[:, :3]
    error = np.linalg.norm(transform_points(field, points_ras) - transform_points(known, points_ras), axis=1)
    moved = np.linalg.norm(transform_points(known, points_ras) - points_ras, axis=1)
    assert np.mean(error) < 0.25 * np.mean(moved)
    pulled = sitk.Resample(segmentation.layers[0], ct, field, sitk.sitkNearestNeighbor)
    for name in ("femur_left", "hip_right", "sacrum", "vertebrae_L3"):
        _, value = segmentation.structures[name]
        before = dice(segmentation.mask_array(name), deformed.mask_array(name))
        after = dice(sitk.GetArrayViewFromImage(pulled) == value, deformed.mask_array(name))
        assert after > max(0.9, before), name
