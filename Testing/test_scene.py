"""The QA scene against Slicer's real MRML library (``slicer-core``): build, write ``.mrb``, read back."""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
sitk = pytest.importorskip("SimpleITK")
vtk = pytest.importorskip("vtk")
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy  # noqa: E402

from SingleImageReconLib import scene as qa_scene  # noqa: E402
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras  # noqa: E402
from SyntheticDataGenLib.projection.geometry import preset_geometry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GRID = (20, 20, 20)


def _sphere(center, radius: float) -> "vtk.vtkPolyData":
    """A small sphere with a point array ``distance_mm`` (here: the x offset from the centre)."""
    source = vtk.vtkSphereSource()
    source.SetCenter(*center)
    source.SetRadius(radius)
    source.SetThetaResolution(12)
    source.SetPhiResolution(8)
    source.Update()
    surface = vtk.vtkPolyData()
    surface.DeepCopy(source.GetOutput())
    points = vtk_to_numpy(surface.GetPoints().GetData())
    distance = numpy_to_vtk(np.ascontiguousarray(points[:, 0] - center[0], dtype=np.float32), deep=True)
    distance.SetName("distance_mm")
    surface.GetPointData().AddArray(distance)
    return surface


def _truth_grid() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Two boxes on a 20^3 grid whose IJK->RAS turns and scales the axes and shifts the origin."""
    femur = np.zeros(GRID, bool)
    femur[2:8, 3:9, 4:11] = True
    tibia = np.zeros(GRID, bool)
    tibia[10:15, 11:18, 5:7] = True
    matrix = np.eye(4)
    angle = math.radians(30)
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    matrix[:3, :3] = rotation @ np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]]) @ np.diag([1.5, 1.0, 2.0])
    matrix[:3, 3] = [5.0, -3.0, 7.0]
    return {"femur": femur, "tibia": tibia}, matrix


def _ct() -> "sitk.Image":
    """A tiny int16 CT with a non-identity LPS direction."""
    voxels = (np.arange(5 * 4 * 3, dtype=np.int16).reshape(5, 4, 3) * 37 - 1000)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((0.8, 1.2, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    return image


def _voxel_ras(mask_kji: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """RAS centres (mm) of a mask's voxels, sorted, for comparing grids that differ in extent."""
    kji = np.argwhere(mask_kji)
    ijk = kji[:, ::-1].astype(np.float64)
    ras = ijk @ matrix[:3, :3].T + matrix[:3, 3]
    return ras[np.lexsort(np.round(ras, 3).T)]


def _oriented_image_arrays(image) -> tuple[np.ndarray, np.ndarray]:
    """A vtkOrientedImageData as a [k, j, i] array and its IJK->RAS matrix (extent origin included)."""
    extent = image.GetExtent()
    dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    voxels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    ijk_to_ras_matrix = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    ijk_to_ras_matrix[:3, 3] += ijk_to_ras_matrix[:3, :3] @ np.array(extent[::2], dtype=np.float64)
    return voxels, ijk_to_ras_matrix


def _vtk_matrix(matrix: np.ndarray) -> "vtk.vtkMatrix4x4":
    result = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            result.SetElement(row, column, float(matrix[row, column]))
    return result


def _node_matrix(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _volume_array(volume_node) -> np.ndarray:
    image = volume_node.GetImageData()
    i, j, k = image.GetDimensions()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(k, j, i)


def _nodes(scene, class_name: str) -> dict[str, object]:
    count = scene.GetNumberOfNodesByClass(class_name)
    return {node.GetName(): node for node in (scene.GetNthNodeByClass(n, class_name) for n in range(count))}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Inputs of a small QA scene, the ``.mrb`` built from them, and the scene read back from it."""
    geometry = preset_geometry("ap", isocenter_ras_mm=[0, 0, 0], size_px=(32, 24))
    radiograph = (np.arange(24 * 32, dtype=np.float32).reshape(24, 32) / 7.0).astype(np.float32)
    masks, matrix = _truth_grid()
    models = {"depth femur": _sphere((10.0, 20.0, 30.0), 5.0), "depth tibia": _sphere((-12.5, 3.25, -40.0), 3.0)}
    truth_models = {"truth femur": _sphere((10.0, 20.0, 31.0), 5.5)}
    truth_models["truth femur"].GetPointData().RemoveArray("distance_mm")
    rows = [
        {"method": "depth", "structure": "femur", "assd_mm": 1.25, "hd95_mm": 3.5, "dice": 0.91, "n_points": 82},
        {"method": "depth", "structure": "tibia", "assd_mm": 2.0, "hd95_mm": None, "dice": 0.5, "n_points": 82},
    ]
    labels = ["femur_head", "missing", "tibia_plateau"]
    points = np.array([[1.5, -2.25, 3.0], [np.nan, np.nan, np.nan], [-4.0, 5.5, -60.125]])
    ct = _ct()
    path = tmp_path_factory.mktemp("qa") / "case one.mrb"
    qa_scene.build_qa_scene(path, radiographs=[("AP radiograph", radiograph, geometry)], models=models,
                            truth_masks=masks, truth_ijk_to_ras=matrix, truth_models=truth_models,
                            metrics_rows=rows, landmarks=(labels, points), ct=ct)
    scene = qa_scene.new_scene()
    assert scene.ReadFromMRB(str(path.absolute()))
    yield dict(path=path, scene=scene, geometry=geometry, radiograph=radiograph, masks=masks, matrix=matrix,
               models=models, rows=rows, labels=labels, points=points, ct=ct)
    qa_scene.close_scene(scene)


def test_bundle_is_a_slicer_zip(bundle):
    names = zipfile.ZipFile(bundle["path"]).namelist()
    assert "case one/case one.mrml" in names
    assert all(name.startswith("case one/") for name in names)
    assert any(name.startswith("case one/Data/") and name.endswith(".seg.nrrd") for name in names)
    assert not [p for p in bundle["path"].parent.iterdir() if p.name != "case one.mrb"], "temporary files left"


def test_node_counts_and_names(bundle):
    scene = bundle["scene"]
    assert set(_nodes(scene, "vtkMRMLScalarVolumeNode")) == {"CT", "AP radiograph"}
    assert set(_nodes(scene, "vtkMRMLModelNode")) == {"depth femur", "depth tibia", "truth femur"}
    assert set(_nodes(scene, "vtkMRMLSegmentationNode")) == {"Ground truth"}
    assert set(_nodes(scene, "vtkMRMLMarkupsFiducialNode")) == {"Landmarks"}
    assert set(_nodes(scene, "vtkMRMLTableNode")) == {"Metrics"}
    for node in _nodes(scene, "vtkMRMLDisplayableNode").values():
        assert node.GetDisplayNode() is not None, node.GetName()


def test_radiograph_in_place(bundle):
    node = _nodes(bundle["scene"], "vtkMRMLScalarVolumeNode")["AP radiograph"]
    geometry = bundle["geometry"]
    np.testing.assert_allclose(_node_matrix(node), geometry.detector_ijk_to_ras(), atol=1e-6)
    assert node.GetImageData().GetDimensions() == (32, 24, 1)
    np.testing.assert_array_equal(_volume_array(node)[0], bundle["radiograph"])
    assert node.GetAttribute("xrecon.role") == "radiograph"
    stored = type(geometry).from_dict(__import__("json").loads(node.GetAttribute("xrecon.geometry")))
    assert stored == geometry


def test_ct_in_place(bundle):
    node = _nodes(bundle["scene"], "vtkMRMLScalarVolumeNode")["CT"]
    ct = bundle["ct"]
    np.testing.assert_allclose(_node_matrix(node), ijk_to_ras(ct), atol=1e-6)
    np.testing.assert_array_equal(_volume_array(node), sitk.GetArrayFromImage(ct))


def test_models_round_trip_in_ras_coloured_by_distance(bundle):
    scene = bundle["scene"]
    read = _nodes(scene, "vtkMRMLModelNode")
    for name, surface in bundle["models"].items():
        node = read[name]
        points = vtk_to_numpy(node.GetPolyData().GetPoints().GetData())
        np.testing.assert_allclose(points, vtk_to_numpy(surface.GetPoints().GetData()), atol=1e-4)
        distance = node.GetPolyData().GetPointData().GetArray("distance_mm")
        assert distance is not None
        np.testing.assert_allclose(vtk_to_numpy(distance),
                                   vtk_to_numpy(surface.GetPointData().GetArray("distance_mm")), atol=1e-5)
        display = node.GetDisplayNode()
        assert display.GetScalarVisibility()
        assert display.GetActiveScalarName() == "distance_mm"
        assert display.GetActiveAttributeLocation() == vtk.vtkAssignAttribute.POINT_DATA
        assert display.GetScalarRangeFlag() == slicer.vtkMRMLDisplayNode.UseManualScalarRange
        assert tuple(display.GetScalarRange()) == (-5.0, 5.0)
        color_node = display.GetColorNode()
        assert color_node is not None and color_node.IsA("vtkMRMLProceduralColorNode")
        function = color_node.GetColorTransferFunction()
        assert tuple(function.GetRange()) == (-5.0, 5.0)
        low, high = function.GetColor(-5.0), function.GetColor(5.0)
        assert low[2] > low[0] and high[0] > high[2], "blue for negative, red for positive distances"
    # Both reconstructions share one colour scale; the truth model has a plain colour.
    assert read["depth femur"].GetDisplayNode().GetColorNodeID() == read["depth tibia"].GetDisplayNode().GetColorNodeID()
    assert not read["truth femur"].GetDisplayNode().GetScalarVisibility()


def test_model_files_are_lps(bundle):
    with zipfile.ZipFile(bundle["path"]) as archive:
        header = archive.read("case one/Data/depth femur.vtk")[:200].decode("latin-1")
    assert "SPACE=LPS" in header


def test_segmentation_round_trip(bundle):
    node = _nodes(bundle["scene"], "vtkMRMLSegmentationNode")["Ground truth"]
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    assert names == ["femur", "tibia"]
    colors = [tuple(segmentation.GetNthSegment(n).GetColor()) for n in range(2)]
    assert colors[0] != colors[1]
    labelmap_name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    assert segmentation.GetSourceRepresentationName() == labelmap_name
    # The reference geometry (what Slicer's Segment Editor edits on) is the whole CT grid.
    geometry_name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    whole_grid = slicer.vtkSegmentationConverter.SerializeImageGeometry(
        _vtk_matrix(bundle["matrix"]), [0, GRID[2] - 1, 0, GRID[1] - 1, 0, GRID[0] - 1])
    assert segmentation.GetConversionParameter(geometry_name) == whole_grid
    for structure, mask in bundle["masks"].items():
        segment = segmentation.GetSegment(structure)
        voxels, matrix = _oriented_image_arrays(segment.GetRepresentation(labelmap_name))
        inside = voxels == segment.GetLabelValue()
        assert int(inside.sum()) == int(mask.sum())
        np.testing.assert_allclose(_voxel_ras(inside, matrix), _voxel_ras(mask, bundle["matrix"]), atol=1e-4)


def test_segmentation_closed_surface(bundle):
    node = _nodes(bundle["scene"], "vtkMRMLSegmentationNode")["Ground truth"]
    segmentation = node.GetSegmentation()
    surface_name = slicer.vtkSegmentationConverter.GetClosedSurfaceRepresentationName()
    assert segmentation.ContainsRepresentation(surface_name)
    for structure, mask in bundle["masks"].items():
        surface = segmentation.GetSegment(structure).GetRepresentation(surface_name)
        assert surface is not None and surface.GetNumberOfPoints() > 0
        # The surface lies around the structure's voxels, within a voxel's size.
        ras = _voxel_ras(mask, bundle["matrix"])
        bounds = np.array(surface.GetBounds()).reshape(3, 2)
        assert np.all(bounds[:, 0] > ras.min(axis=0) - 2.0) and np.all(bounds[:, 1] < ras.max(axis=0) + 2.0)


def test_metrics_table_round_trip(bundle):
    table = _nodes(bundle["scene"], "vtkMRMLTableNode")["Metrics"].GetTable()
    rows = bundle["rows"]
    columns = [table.GetColumn(n).GetName() for n in range(table.GetNumberOfColumns())]
    assert columns == list(rows[0])
    assert table.GetNumberOfRows() == len(rows)
    for column_name in columns:
        column = table.GetColumnByName(column_name)
        for index, row in enumerate(rows):
            expected = row[column_name]
            if isinstance(expected, str):
                assert column.IsA("vtkStringArray") and column.GetValue(index) == expected
            else:
                assert column.IsA("vtkDoubleArray"), column_name
                value = column.GetValue(index)
                assert math.isnan(value) if expected is None else value == expected


def test_landmarks_round_trip(bundle):
    node = _nodes(bundle["scene"], "vtkMRMLMarkupsFiducialNode")["Landmarks"]
    keep = [n for n, label in enumerate(bundle["labels"]) if np.all(np.isfinite(bundle["points"][n]))]
    assert node.GetNumberOfControlPoints() == len(keep)
    for index, original in enumerate(keep):
        assert node.GetNthControlPointLabel(index) == bundle["labels"][original]
        np.testing.assert_allclose(node.GetNthControlPointPositionWorld(index), bundle["points"][original], atol=1e-6)


def test_write_replaces_existing_bundle_and_reads_back(tmp_path):
    scene = qa_scene.new_scene()
    try:
        qa_scene.add_metrics_table(scene, "Metrics", [{"method": "ssm", "structure": "femur", "dice": 0.75}])
        path = tmp_path / "again.mrb"
        path.write_bytes(b"old")
        qa_scene.write_scene_bundle(scene, path)
        qa_scene.write_scene_bundle(scene, path)
        assert zipfile.is_zipfile(path)
        assert [p.name for p in tmp_path.iterdir()] == ["again.mrb"]
    finally:
        qa_scene.close_scene(scene)
    read = qa_scene.read_scene_bundle(path)
    try:
        table = _nodes(read, "vtkMRMLTableNode")["Metrics"].GetTable()
        assert table.GetColumnByName("dice").GetValue(0) == 0.75
    finally:
        qa_scene.close_scene(read)


def test_segmentation_on_a_ct_volume_takes_its_grid():
    scene = qa_scene.new_scene()
    try:
        ct = _ct()
        ct_node = qa_scene.add_ct(scene, "CT", ct)
        mask = np.zeros(sitk.GetArrayViewFromImage(ct).shape, bool)
        mask[1:3, 1:3, 1:2] = True
        node = qa_scene.add_segmentation(scene, "seg", {"bone": mask}, ijk_to_ras(ct), reference_volume=ct_node,
                                         closed_surface=False)
        geometry_name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
        size = ct.GetSize()
        expected = slicer.vtkSegmentationConverter.SerializeImageGeometry(
            _vtk_matrix(ijk_to_ras(ct)), [0, size[0] - 1, 0, size[1] - 1, 0, size[2] - 1])
        assert node.GetSegmentation().GetConversionParameter(geometry_name) == expected
        assert node.GetNodeReferenceID(node.GetReferenceImageGeometryReferenceRole()) == ct_node.GetID()
    finally:
        qa_scene.close_scene(scene)


def test_bad_input_is_refused():
    scene = qa_scene.new_scene()
    try:
        geometry = preset_geometry("ap", size_px=(32, 24))
        with pytest.raises(ValueError, match="24x32"):
            qa_scene.add_radiograph(scene, "wrong", np.zeros((32, 24), np.float32), geometry)
        with pytest.raises(ValueError, match="shape"):
            qa_scene.add_segmentation(scene, "seg", {"a": np.zeros((2, 2, 2)), "b": np.zeros((3, 2, 2))}, np.eye(4))
        with pytest.raises(ValueError, match="labels"):
            qa_scene.add_landmarks(scene, "lm", ["a"], np.zeros((2, 3)))
        with pytest.raises(ValueError, match=".mrb"):
            qa_scene.write_scene_bundle(scene, "/tmp/not-a-bundle.zip")
    finally:
        qa_scene.close_scene(scene)


def test_only_scene_py_imports_slicer():
    """The Lib packages stay Slicer-free; each one's scene.py is the one file that may import MRML."""
    pattern = re.compile(r"^\s*(import slicer\b|from slicer\b|import qt\b|import ctk\b)", re.M)
    offenders = [str(path.relative_to(REPO))
                 for lib in ("SyntheticDataGen/SyntheticDataGenLib", "SingleImageRecon/SingleImageReconLib")
                 for path in (REPO / lib).rglob("*.py")
                 if path.name != "scene.py"
                 if pattern.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
