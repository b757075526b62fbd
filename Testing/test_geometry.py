"""Projection geometry: projection, back-projection, presets, JSON, invalid input."""

import json

import numpy as np
import pytest

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import PRESETS, ProjectionGeometry, preset_geometry


def random_geometry(rng: np.random.Generator) -> ProjectionGeometry:
    u_axis, v_axis, _ = np.linalg.qr(rng.normal(size=(3, 3)))[0].T
    source = rng.uniform(-500, 500, 3)
    normal = np.cross(u_axis, v_axis)
    origin = source + rng.uniform(300, 1500) * normal + rng.uniform(-200, 200, 3)
    return ProjectionGeometry(source, origin, u_axis, v_axis, rng.uniform(0.1, 3, 2),
                              tuple(rng.integers(16, 1024, 2)))


def all_geometries():
    rng = np.random.default_rng(0)
    geometries = [random_geometry(rng) for _ in range(20)]
    for name in PRESETS:
        geometries.append(preset_geometry(name, isocenter_ras_mm=rng.uniform(-100, 100, 3)))
        geometries.append(preset_geometry(name, lao_deg=35, cranial_deg=-20,
                                          translation_ras_mm=(5, -10, 20), size_px=(300, 200)))
    return geometries


@pytest.mark.parametrize("geometry", all_geometries())
def test_points_on_a_pixel_ray_project_back_to_that_pixel(geometry):
    rng = np.random.default_rng(1)
    u = rng.uniform(-0.5, geometry.width - 0.5, 50)
    v = rng.uniform(-0.5, geometry.height - 0.5, 50)
    depth = rng.uniform(10, 3000, 50)
    points = geometry.backproject(u, v, depth)
    uv, projected_depth = geometry.project(points)
    np.testing.assert_allclose(uv[:, 0], u, atol=1e-6)
    np.testing.assert_allclose(uv[:, 1], v, atol=1e-6)
    np.testing.assert_allclose(projected_depth, depth, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(points - geometry.source_ras_mm, axis=1), depth, rtol=1e-12)
    assert geometry.on_detector(uv).all()


@pytest.mark.parametrize("geometry", all_geometries()[:5])
def test_projection_matrix_maps_pixel_centres_to_their_indices(geometry):
    centres = geometry.pixel_centers_ras()
    homogeneous = np.concatenate([centres, np.ones(centres.shape[:2] + (1,))], axis=-1) @ geometry.projection_matrix().T
    uv = homogeneous[..., :2] / homogeneous[..., 2:]
    v, u = np.mgrid[: geometry.height, : geometry.width]
    np.testing.assert_allclose(uv[..., 0], u, atol=1e-6)
    np.testing.assert_allclose(uv[..., 1], v, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(geometry.ray_directions_ras(), axis=-1), 1.0)


def test_points_behind_the_source_do_not_project():
    geometry = preset_geometry("ap")
    behind = geometry.source_ras_mm - 100 * geometry.beam_direction_ras
    uv, _ = geometry.project(behind[None])
    assert np.isnan(uv).all() and not geometry.on_detector(uv).any()


def test_ap_preset_puts_the_isocentre_at_the_detector_centre_and_patient_left_on_image_right():
    """AP view, read as a radiologist does: patient's left on the image right, head at the top."""
    isocentre = np.array([12.0, -30.0, 45.0])
    geometry = preset_geometry("ap", isocenter_ras_mm=isocentre, size_px=(256, 200))
    (u, v), = geometry.project(isocentre[None])[0]
    assert (u, v) == pytest.approx(((256 - 1) / 2, (200 - 1) / 2), abs=1e-9)
    assert geometry.source_ras_mm[1] > isocentre[1], "AP: the source is in front (anterior) of the patient"
    patient_left = isocentre + [-50.0, 0, 0]  # RAS: -x is the patient's left
    head = isocentre + [0, 0, 50.0]
    assert geometry.project(patient_left[None])[0][0, 0] > u
    assert geometry.project(head[None])[0][0, 1] < v


def test_pa_and_lateral_presets_put_the_source_where_named():
    isocentre = np.zeros(3)
    assert preset_geometry("pa").source_ras_mm[1] < 0  # posterior
    assert preset_geometry("lateral-left").source_ras_mm[0] > 0  # source on the right, left side on detector
    assert preset_geometry("lateral-right").source_ras_mm[0] < 0
    lateral = preset_geometry("lateral-left")
    anterior = lateral.project(np.array([[0, 50.0, 0]]))[0][0, 0]
    assert anterior < lateral.project(isocentre[None])[0][0, 0], "lateral: the patient's front on the image left"


def test_c_arm_angles_move_the_detector_like_lao_and_cranial():
    base = preset_geometry("pa", source_to_isocenter_mm=700, source_to_detector_mm=1000)
    lao = preset_geometry("pa", source_to_isocenter_mm=700, source_to_detector_mm=1000, lao_deg=30)
    cranial = preset_geometry("pa", source_to_isocenter_mm=700, source_to_detector_mm=1000, cranial_deg=20)
    assert base.detector_center_ras_mm[1] == pytest.approx(300)  # rest pose: detector anterior
    assert lao.detector_center_ras_mm[0] == pytest.approx(-300 * np.sin(np.radians(30)))  # towards the left
    assert cranial.detector_center_ras_mm[2] == pytest.approx(300 * np.sin(np.radians(20)))  # towards the head
    for geometry in (lao, cranial):
        assert np.linalg.norm(geometry.source_ras_mm) == pytest.approx(700)
        assert geometry.project(np.zeros((1, 3)))[0][0] == pytest.approx([127.5, 127.5])
    moved = preset_geometry("pa", translation_ras_mm=(10, 0, 0))
    np.testing.assert_allclose(moved.source_ras_mm - preset_geometry("pa").source_ras_mm, [10, 0, 0])


@pytest.mark.parametrize("geometry", all_geometries()[::7])
def test_geometry_json_round_trips_exactly(geometry, tmp_path):
    path = tmp_path / "geometry.json"
    geometry.save(path)
    loaded = ProjectionGeometry.load(path)
    assert loaded == geometry
    assert json.loads(path.read_text()) == geometry.to_dict()
    for name in ("source_ras_mm", "detector_origin_ras_mm", "detector_u_ras", "detector_v_ras", "pixel_spacing_mm"):
        assert np.array_equal(getattr(loaded, name), getattr(geometry, name))
    assert set(geometry.to_dict()) >= {"source_ras_mm", "detector_origin_ras_mm", "detector_u_ras",
                                       "detector_v_ras", "pixel_spacing_mm", "size_px"}


def valid_dict():
    return preset_geometry("ap").to_dict()


@pytest.mark.parametrize("change, message", [
    ({"pixel_spacing_mm": [0.0, 1.0]}, "pixel_spacing_mm must be positive"),
    ({"pixel_spacing_mm": [1.0, -2.0]}, "pixel_spacing_mm must be positive"),
    ({"size_px": [0, 256]}, "size_px"),
    ({"detector_u_ras": [-1.0, 0.1, 0.0]}, "orthogonal unit vectors"),
    ({"detector_v_ras": [-1.0, 0.0, 0.0]}, "orthogonal unit vectors"),
    (lambda data: {"source_ras_mm": data["detector_origin_ras_mm"]}, "source lies on the detector plane"),
    ({"source_ras_mm": [0.0, float("nan"), 0.0]}, "finite"),
])
def test_invalid_geometries_raise(change, message):
    data = valid_dict()
    data.update(change(data) if callable(change) else change)
    with pytest.raises(XreconInputError, match=message):
        ProjectionGeometry.from_dict(data)


def test_missing_key_and_bad_json_raise(tmp_path):
    data = valid_dict()
    del data["detector_u_ras"]
    with pytest.raises(XreconInputError, match="missing key"):
        ProjectionGeometry.from_dict(data)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(XreconInputError, match="not valid JSON"):
        ProjectionGeometry.load(bad)


def test_source_inside_the_ct_and_detector_facing_away_raise():
    ijk_to_ras = np.diag([2.0, 2.0, 2.0, 1.0])
    ijk_to_ras[:3, 3] = [-100, -100, -100]  # a 100^3 volume of 2 mm voxels centred near 0
    size = (100, 100, 100)
    preset_geometry("ap").check_against_volume(ijk_to_ras, size)
    with pytest.raises(XreconInputError, match="inside the CT"):
        preset_geometry("ap", source_to_isocenter_mm=50, source_to_detector_mm=1000).check_against_volume(ijk_to_ras, size)
    # a detector plane that clips the air corners of the CT box is allowed (rays stop at the detector) ...
    preset_geometry("ap", source_to_isocenter_mm=900, source_to_detector_mm=950).check_against_volume(ijk_to_ras, size)
    # ... but not one in front of the CT's centre
    beyond = ijk_to_ras.copy()
    beyond[1, 3] -= 250.0  # move the volume 250 mm posterior, past an AP detector 100 mm behind the isocentre
    with pytest.raises(XreconInputError, match="between source and detector"):
        preset_geometry("ap", source_to_isocenter_mm=900, source_to_detector_mm=1000).check_against_volume(beyond, size)
    ap = preset_geometry("ap")
    facing_away = ProjectionGeometry.from_dict({
        **ap.to_dict(),
        "detector_origin_ras_mm": (2 * ap.source_ras_mm - ap.detector_origin_ras_mm).tolist()})
    with pytest.raises(XreconInputError, match="faces away"):
        facing_away.check_against_volume(ijk_to_ras, size)


def test_preset_rejects_unknown_names_and_impossible_distances():
    with pytest.raises(XreconInputError, match="unknown geometry preset"):
        preset_geometry("oblique")
    with pytest.raises(XreconInputError, match="source-to-isocentre"):
        preset_geometry("ap", source_to_isocenter_mm=1200, source_to_detector_mm=1000)


def test_detector_rotation_zoom_and_mirror_keep_the_centre_and_do_what_they_say():
    from SyntheticDataGenLib.projection.geometry import mirror_detector, rotate_detector, zoom_detector

    base = preset_geometry("ap", size_px=(200, 100))
    point = np.array([[30.0, 0.0, 0.0]])  # towards the patient's right: image left of centre
    (u0, v0), = base.project(point)[0]
    centre = np.array([(200 - 1) / 2, (100 - 1) / 2])
    for changed in (rotate_detector(base, 90), zoom_detector(base, 2.0), mirror_detector(base)):
        np.testing.assert_allclose(changed.detector_center_ras_mm, base.detector_center_ras_mm, atol=1e-9)
        np.testing.assert_allclose(changed.project(np.zeros((1, 3)))[0][0], centre, atol=1e-9)
    (u, v), = rotate_detector(base, 90).project(point)[0]
    assert (u, v) == pytest.approx((centre[0], centre[1] + (centre[0] - u0)))  # anticlockwise: image left -> bottom
    (u, v), = zoom_detector(base, 2.0).project(point)[0]
    assert u - centre[0] == pytest.approx(2 * (u0 - centre[0]))
    (u, v), = mirror_detector(base).project(point)[0]
    assert u - centre[0] == pytest.approx(-(u0 - centre[0])) and v == pytest.approx(v0)
    assert mirror_detector(mirror_detector(base)).to_dict() == {**base.to_dict(), "mirrored": False}
