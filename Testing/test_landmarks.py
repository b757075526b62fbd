"""Landmarks: Slicer markups files (checked against real MRML), projection, detector placement."""

import json
import os

import numpy as np
import pytest

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import preset_geometry
from SyntheticDataGenLib.cases.landmarks import (
    MARKUPS_SCHEMA_URL, detector_points_ras, project_landmarks, read_markups_json, write_markups_json)

LABELS = ["femoral head L", "femoral head R", "sacral promontory", "pubic symphysis"]
POINTS_RAS = np.array([[85.25, 10.5, -60.125], [-84.75, 11.0, -61.5],
                       [0.3333333333333333, 30.0, 20.0], [1e-7, -70.0, -110.0]])


def markups_file(path, markups):
    path.write_text(json.dumps({"@schema": MARKUPS_SCHEMA_URL, "markups": markups}))
    return path


@pytest.fixture
def slicer_scene():
    """A Qt-free MRML scene with the markups logic, from the ``slicer-core`` package."""
    if os.environ.get("CI"):
        import slicer
    else:
        slicer = pytest.importorskip("slicer")
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    logic = slicer.vtkSlicerMarkupsLogic()
    logic.SetMRMLScene(scene)
    logic.SetMRMLApplicationLogic(app)
    yield slicer, scene, logic
    # The logics refer to each other without owning references: release them in order.
    logic.SetMRMLScene(None)
    app.SetMRMLScene(None)


def mrml_points(node):
    """(labels, RAS positions, defined flags) that an MRML markups node holds."""
    labels, points, defined = [], [], []
    for index in range(node.GetNumberOfControlPoints()):
        position = [0.0, 0.0, 0.0]
        node.GetNthControlPointPosition(index, position)
        labels.append(node.GetNthControlPointLabel(index))
        points.append(position)
        defined.append(node.GetNthControlPointPositionStatus(index) == node.PositionDefined)
    return labels, np.array(points), np.array(defined)


@pytest.mark.parametrize("coordinate_system", ["LPS", "RAS"])
def test_write_then_read_preserves_labels_and_points(tmp_path, coordinate_system):
    path = tmp_path / "landmarks.mrk.json"
    write_markups_json(path, LABELS, POINTS_RAS, coordinate_system=coordinate_system)
    labels, points = read_markups_json(path)
    assert labels == LABELS
    np.testing.assert_allclose(points, POINTS_RAS, rtol=0, atol=1e-9)
    data = json.loads(path.read_text())
    assert data["@schema"] == MARKUPS_SCHEMA_URL
    assert data["markups"][0]["type"] == "Fiducial"
    assert data["markups"][0]["coordinateSystem"] == coordinate_system
    # No temporary file is left beside the result.
    assert [p.name for p in tmp_path.iterdir()] == ["landmarks.mrk.json"]


def test_lps_is_the_file_default_and_positions_are_flipped(tmp_path):
    path = tmp_path / "landmarks.mrk.json"
    write_markups_json(path, LABELS, POINTS_RAS)
    markup = json.loads(path.read_text())["markups"][0]
    assert markup["coordinateSystem"] == "LPS"
    np.testing.assert_array_equal([p["position"] for p in markup["controlPoints"]], POINTS_RAS * [-1, -1, 1])


def test_undefined_points_survive_a_round_trip(tmp_path):
    points = POINTS_RAS.copy()
    points[1] = np.nan
    path = tmp_path / "landmarks.mrk.json"
    write_markups_json(path, LABELS, points)
    labels, read_back = read_markups_json(path)
    assert labels == LABELS
    assert np.isnan(read_back[1]).all()
    np.testing.assert_allclose(read_back[[0, 2, 3]], POINTS_RAS[[0, 2, 3]], rtol=0, atol=1e-9)


def test_ras_and_lps_files_give_the_same_ras_points(tmp_path):
    ras = markups_file(tmp_path / "ras.mrk.json", [{"type": "Fiducial", "coordinateSystem": "RAS", "controlPoints": [
        {"label": label, "position": point.tolist()} for label, point in zip(LABELS, POINTS_RAS)]}])
    # No coordinateSystem: the schema default, LPS.
    lps = markups_file(tmp_path / "lps.mrk.json", [{"type": "Fiducial", "controlPoints": [
        {"label": label, "position": (point * [-1, -1, 1]).tolist()} for label, point in zip(LABELS, POINTS_RAS)]}])
    labels_ras, points_ras = read_markups_json(ras)
    labels_lps, points_lps = read_markups_json(lps)
    assert labels_ras == labels_lps == LABELS
    np.testing.assert_allclose(points_ras, POINTS_RAS, rtol=0, atol=1e-12)
    np.testing.assert_allclose(points_lps, POINTS_RAS, rtol=0, atol=1e-12)


def test_every_markup_in_a_file_is_read_in_order(tmp_path):
    path = markups_file(tmp_path / "two.mrk.json", [
        {"type": "Fiducial", "coordinateSystem": "RAS", "controlPoints": [{"label": "a", "position": [1, 2, 3]}]},
        {"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": []},
        {"type": "Line", "coordinateSystem": "LPS", "coordinateUnits": "um",
         "controlPoints": [{"label": "b", "position": [1000, 2000, 3000]}, {"position": [0, 0, 0]}]},
    ])
    labels, points = read_markups_json(path)
    assert labels == ["a", "b", ""]
    np.testing.assert_allclose(points, [[1, 2, 3], [-1, -2, 3], [0, 0, 0]], atol=1e-12)


@pytest.mark.parametrize("coordinate_system", ["LPS", "RAS"])
def test_written_file_loads_in_slicer_mrml(tmp_path, slicer_scene, coordinate_system):
    _, scene, logic = slicer_scene
    points = POINTS_RAS.copy()
    points[2] = np.nan
    path = tmp_path / "landmarks.mrk.json"
    write_markups_json(path, LABELS, points, coordinate_system=coordinate_system)
    node = scene.GetNodeByID(logic.LoadMarkups(str(path), "landmarks"))
    assert node is not None and node.IsA("vtkMRMLMarkupsFiducialNode")
    labels, mrml_ras, defined = mrml_points(node)  # MRML holds positions in RAS
    assert labels == LABELS
    np.testing.assert_array_equal(defined, [True, True, False, True])
    np.testing.assert_allclose(mrml_ras[defined], POINTS_RAS[defined], rtol=0, atol=1e-9)


def test_files_that_slicer_writes_are_read_as_mrml_holds_them(tmp_path, slicer_scene):
    slicer, scene, logic = slicer_scene
    node = scene.GetNodeByID(logic.AddNewFiducialNode("landmarks", scene))
    for label, point in zip(LABELS, POINTS_RAS):
        node.AddControlPoint(point.tolist(), label)
    node.UnsetNthControlPointPosition(3)
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    scene.AddNode(storage)
    path = tmp_path / "from_slicer.mrk.json"
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    labels, points = read_markups_json(path)
    mrml_labels, mrml_ras, defined = mrml_points(node)
    assert labels == mrml_labels == LABELS
    np.testing.assert_allclose(points[defined], mrml_ras[defined], rtol=0, atol=1e-9)
    assert np.isnan(points[3]).all()


def test_projection_agrees_with_the_geometry_and_flags_invisible_points():
    geometry = preset_geometry("ap", size_px=(256, 200), pixel_spacing_mm=(1.6, 1.6))
    points = np.concatenate([
        POINTS_RAS,
        [[0.0, 0.0, 0.0]],                                                 # isocentre: detector centre
        [[600.0, 0.0, 0.0]],                                               # far to the side: off the detector
        [geometry.source_ras_mm - 50 * geometry.beam_direction_ras],       # behind the source
        [[np.nan, np.nan, np.nan]],                                        # undefined
    ])
    uv, visible = project_landmarks(points, geometry)
    expected_uv, _ = geometry.project(points)
    np.testing.assert_allclose(uv, expected_uv, rtol=0, atol=0)
    np.testing.assert_allclose(uv[4], [127.5, 99.5], atol=1e-9)
    assert uv.shape == (8, 2) and visible.shape == (8,) and visible.dtype == bool
    np.testing.assert_array_equal(visible, [True, True, True, True, True, False, False, False])
    assert np.isnan(uv[6]).all()
    assert not geometry.on_detector(uv[5])


def test_detector_points_lie_on_the_detector_where_the_image_shows_them():
    geometry = preset_geometry("lateral-left", lao_deg=20, cranial_deg=-10, size_px=(120, 90))
    uv, _ = project_landmarks(POINTS_RAS, geometry)
    on_detector = detector_points_ras(uv, geometry)
    assert on_detector.shape == (len(POINTS_RAS), 3)
    # On the detector plane, and projecting back to the same pixel.
    distance_to_plane = (on_detector - geometry.detector_origin_ras_mm) @ geometry.beam_direction_ras
    np.testing.assert_allclose(distance_to_plane, 0, atol=1e-9)
    np.testing.assert_allclose(geometry.project(on_detector)[0], uv, atol=1e-9)
    # Where an image placed with detector_ijk_to_ras shows pixel (u, v).
    ijk = np.column_stack([uv, np.zeros(len(uv)), np.ones(len(uv))])
    np.testing.assert_allclose(on_detector, (ijk @ geometry.detector_ijk_to_ras().T)[:, :3], atol=1e-9)
    # Each landmark lies on the ray from the source through its detector point.
    rays = on_detector - geometry.source_ras_mm
    towards = POINTS_RAS - geometry.source_ras_mm
    np.testing.assert_allclose(np.linalg.norm(np.cross(rays, towards), axis=1)
                               / np.linalg.norm(rays, axis=1) / np.linalg.norm(towards, axis=1), 0, atol=1e-12)


def bad_files(tmp_path):
    good_point = {"label": "a", "position": [1, 2, 3]}
    truncated = tmp_path / "truncated.mrk.json"
    write_markups_json(truncated, LABELS, POINTS_RAS)
    truncated.write_text(truncated.read_text()[:100])
    binary = tmp_path / "binary.mrk.json"
    binary.write_bytes(bytes(range(256)))
    list_file = tmp_path / "list.mrk.json"
    list_file.write_text("[1, 2, 3]")
    geometry_file = tmp_path / "geometry.json"
    preset_geometry("ap").save(geometry_file)
    return {
        "missing": (tmp_path / "nope.mrk.json", "not found"),
        "folder": (tmp_path, "folder"),
        "truncated": (truncated, "not valid JSON"),
        "binary": (binary, "not valid JSON"),
        "a JSON list": (list_file, "no 'markups' list"),
        "another JSON object": (geometry_file, "no 'markups' list"),
        "bad coordinate system": (markups_file(tmp_path / "cs.mrk.json", [
            {"coordinateSystem": "XYZ", "controlPoints": [good_point]}]), "coordinateSystem"),
        "bad units": (markups_file(tmp_path / "units.mrk.json", [
            {"coordinateUnits": "inch", "controlPoints": [good_point]}]), "coordinateUnits"),
        "two coordinates": (markups_file(tmp_path / "short.mrk.json", [
            {"controlPoints": [{"label": "a", "position": [1, 2]}]}]), "three finite numbers"),
        "text coordinate": (markups_file(tmp_path / "text.mrk.json", [
            {"controlPoints": [{"label": "a", "position": [1, "2", 3]}]}]), "three finite numbers"),
        "no position": (markups_file(tmp_path / "nopos.mrk.json", [{"controlPoints": [{"label": "a"}]}]),
                        "three finite numbers"),
        "points not a list": (markups_file(tmp_path / "dict.mrk.json", [{"controlPoints": {"a": 1}}]),
                              "not a list"),
        "markup not an object": (markups_file(tmp_path / "str.mrk.json", ["Fiducial"]), "not a JSON object"),
    }


def test_malformed_files_raise_a_one_line_input_error(tmp_path):
    for name, (path, message) in bad_files(tmp_path).items():
        with pytest.raises(XreconInputError) as error:
            read_markups_json(path)
        assert message in str(error.value), name
        assert "\n" not in str(error.value), name


def test_bad_arguments_to_the_writer_and_projection_raise(tmp_path):
    path = tmp_path / "out.mrk.json"
    geometry = preset_geometry("ap")
    calls = [
        lambda: write_markups_json(path, LABELS[:2], POINTS_RAS),
        lambda: write_markups_json(path, LABELS, POINTS_RAS[:, :2]),
        lambda: write_markups_json(path, LABELS, POINTS_RAS, coordinate_system="XYZ"),
        lambda: write_markups_json(path, ["a"], [[1.0, np.inf, 0.0]]),
        lambda: write_markups_json(path, ["a"], [[1.0, np.nan, 0.0]]),
        lambda: write_markups_json(tmp_path / "no_such_folder" / "out.mrk.json", LABELS, POINTS_RAS),
        lambda: project_landmarks(POINTS_RAS[:, :2], geometry),
        lambda: detector_points_ras(POINTS_RAS, geometry),
    ]
    for call in calls:
        with pytest.raises(XreconInputError):
            call()
    assert not path.exists()


def test_an_empty_point_list_reads_and_writes(tmp_path):
    path = tmp_path / "empty.mrk.json"
    write_markups_json(path, [], np.zeros((0, 3)))
    labels, points = read_markups_json(path)
    assert labels == [] and points.shape == (0, 3)
