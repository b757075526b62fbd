"""The X-ray geometry drawn in 3D (``geometry_model``) and the preview's MRML nodes in a real scene.

The first tests are Slicer-free. The MRML tests use ``slicer-core`` (Slicer's Qt-free MRML) to do
what the SyntheticDataGen module does with the preview: a model node from ``geometry_polydata``,
a DRR volume node and a mask label map placed by ``detector_ijk_to_ras()``, written to a ``.mrb``
and read back. They are skipped when ``slicer`` cannot be imported, except in CI.
"""

from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
from vtkmodules.util.numpy_support import vtk_to_numpy

from SyntheticDataGenLib.projection.geometry import PRESETS, ProjectionGeometry, preset_geometry
from SyntheticDataGenLib.projection.geometry_model import (
    PART_CENTRAL_RAY,
    PART_DETECTOR,
    PART_FRUSTUM,
    PART_NAMES,
    PART_SOURCE,
    detector_corners_ras,
    detector_slice_to_ras,
    geometry_polydata,
)


def geometries() -> list[ProjectionGeometry]:
    rng = np.random.default_rng(3)
    result = [preset_geometry(name, isocenter_ras_mm=rng.uniform(-100, 100, 3), lao_deg=lao, cranial_deg=cranial,
                              size_px=(48, 32), pixel_spacing_mm=(1.2, 0.9))
              for name in PRESETS for lao, cranial in ((0, 0), (35, -20))]
    u_axis, v_axis, _ = np.linalg.qr(rng.normal(size=(3, 3)))[0].T
    source = rng.uniform(-300, 300, 3)
    origin = source + 800 * np.cross(u_axis, v_axis) + rng.uniform(-100, 100, 3)
    result.append(ProjectionGeometry(source, origin, u_axis, v_axis, (0.7, 1.3), (17, 23)))
    return result


def points_of(polydata) -> np.ndarray:
    return vtk_to_numpy(polydata.GetPoints().GetData()).astype(np.float64)


def lines_of(polydata) -> list[tuple[int, int]]:
    lines = polydata.GetLines()
    offsets = vtk_to_numpy(lines.GetOffsetsArray())
    connectivity = vtk_to_numpy(lines.GetConnectivityArray())
    assert np.all(np.diff(offsets) == 2), "every cell is a line of two points"
    return [(int(connectivity[start]), int(connectivity[start + 1])) for start in offsets[:-1]]


def parts_of(polydata) -> np.ndarray:
    return vtk_to_numpy(polydata.GetCellData().GetArray("part"))


def segments_of(polydata, part: int) -> list[tuple[np.ndarray, np.ndarray]]:
    points = points_of(polydata)
    return [(points[a], points[b]) for (a, b), p in zip(lines_of(polydata), parts_of(polydata)) if p == part]


@pytest.mark.parametrize("geometry", geometries())
def test_detector_outline_runs_along_the_pixel_edges(geometry):
    corners = detector_corners_ras(geometry)
    w, h = geometry.width, geometry.height
    expected = [geometry.pixel_center_ras(u, v) for u, v in ((-0.5, -0.5), (w - 0.5, -0.5), (w - 0.5, h - 0.5), (-0.5, h - 0.5))]
    np.testing.assert_allclose(corners, expected, atol=1e-9)
    # The outline is the active area: side lengths are the detector's size in mm
    su, sv = geometry.pixel_spacing_mm
    assert np.linalg.norm(corners[1] - corners[0]) == pytest.approx(w * su)
    assert np.linalg.norm(corners[3] - corners[0]) == pytest.approx(h * sv)

    polydata = geometry_polydata(geometry)
    edges = segments_of(polydata, PART_DETECTOR)
    assert len(edges) == 4
    for index, (start, end) in enumerate(edges):
        np.testing.assert_allclose(start, corners[index], atol=1e-9)
        np.testing.assert_allclose(end, corners[(index + 1) % 4], atol=1e-9)
    # ... and it lies on the detector plane
    normal = np.cross(geometry.detector_u_ras, geometry.detector_v_ras)
    for start, end in edges:
        assert abs((start - geometry.detector_origin_ras_mm) @ normal) < 1e-9
        assert abs((end - geometry.detector_origin_ras_mm) @ normal) < 1e-9


@pytest.mark.parametrize("geometry", geometries())
def test_frustum_and_central_ray_start_at_the_source(geometry):
    polydata = geometry_polydata(geometry)
    corners = detector_corners_ras(geometry)
    frustum = segments_of(polydata, PART_FRUSTUM)
    assert len(frustum) == 4
    w, h = geometry.width, geometry.height
    corner_uv = ((-0.5, -0.5), (w - 0.5, -0.5), (w - 0.5, h - 0.5), (-0.5, h - 0.5))
    for (start, end), corner, expected_uv in zip(frustum, corners, corner_uv):
        np.testing.assert_allclose(start, geometry.source_ras_mm, atol=1e-9)
        np.testing.assert_allclose(end, corner, atol=1e-9)
        # A frustum edge is the ray of a detector corner: all its points project onto that corner
        uv, _ = geometry.project((start + end) / 2)
        np.testing.assert_allclose(uv, expected_uv, atol=1e-6)
    (start, end), = segments_of(polydata, PART_CENTRAL_RAY)
    np.testing.assert_allclose(start, geometry.source_ras_mm, atol=1e-9)
    np.testing.assert_allclose(end, geometry.detector_center_ras_mm, atol=1e-9)
    uv, _ = geometry.project(end)
    np.testing.assert_allclose(uv, [(geometry.width - 1) / 2, (geometry.height - 1) / 2], atol=1e-6)


@pytest.mark.parametrize("geometry", geometries()[:3])
def test_source_marker_crosses_at_the_source(geometry):
    polydata = geometry_polydata(geometry, source_marker_mm=20.0)
    marker = segments_of(polydata, PART_SOURCE)
    assert len(marker) == 3
    directions = []
    for start, end in marker:
        np.testing.assert_allclose((start + end) / 2, geometry.source_ras_mm, atol=1e-9)
        assert np.linalg.norm(end - start) == pytest.approx(20.0)
        directions.append((end - start) / 20.0)
    np.testing.assert_allclose(np.abs(np.array(directions) @ np.array(directions).T), np.eye(3), atol=1e-9)
    # Default size: a few per cent of the source-to-detector distance
    default = segments_of(geometry_polydata(geometry), PART_SOURCE)[0]
    assert 0 < np.linalg.norm(default[1] - default[0]) < 0.1 * geometry.source_to_detector_mm
    with pytest.raises(ValueError):
        geometry_polydata(geometry, source_marker_mm=0)


def test_every_cell_has_a_part():
    polydata = geometry_polydata(geometries()[0])
    parts = parts_of(polydata)
    assert polydata.GetNumberOfCells() == len(parts) == 12
    assert polydata.GetNumberOfPolys() == polydata.GetNumberOfVerts() == 0
    assert sorted(set(parts.tolist())) == list(range(len(PART_NAMES)))
    assert polydata.GetCellData().GetScalars().GetName() == "part"


@pytest.mark.parametrize("geometry", geometries())
def test_slice_to_ras_shows_the_image_as_read(geometry):
    matrix = detector_slice_to_ras(geometry)
    np.testing.assert_allclose(matrix[:3, :3].T @ matrix[:3, :3], np.eye(3), atol=1e-12)
    assert np.linalg.det(matrix[:3, :3]) == pytest.approx(1.0)
    np.testing.assert_allclose(matrix[:3, 3], geometry.detector_center_ras_mm, atol=1e-9)
    # Screen right is increasing u, screen up is decreasing v (row 0 on top)
    centre = geometry.detector_center_ras_mm
    right = geometry.project(centre + 10 * matrix[:3, 0])[0] - geometry.project(centre)[0]
    up = geometry.project(centre + 10 * matrix[:3, 1])[0] - geometry.project(centre)[0]
    assert right[0] > 0 and abs(right[1]) < 1e-6
    assert up[1] < 0 and abs(up[0]) < 1e-6
    # The slice plane is the detector plane
    np.testing.assert_allclose(np.abs(matrix[:3, 2]), np.abs(np.cross(geometry.detector_u_ras, geometry.detector_v_ras)),
                               atol=1e-12)


def test_frontal_preview_has_the_patients_left_on_the_right():
    matrix = detector_slice_to_ras(preset_geometry("ap"))
    assert matrix[0, 0] < 0  # screen right points to the patient's left (-R)
    assert matrix[2, 1] > 0  # screen up points to the head (+S)


# --------------------------------------------------------------------------------- MRML (slicer-core)


@pytest.fixture
def slicer_module():
    if os.environ.get("CI"):
        import slicer
    else:
        slicer = pytest.importorskip("slicer")
    return slicer


def make_scene(slicer):
    """A scene that can write and read ``.mrb`` bundles (see shared/notes/slicer-core.md)."""
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    logics = []
    for Logic in (slicer.vtkSlicerSegmentationsModuleLogic, slicer.vtkSlicerMarkupsLogic,
                  slicer.vtkSlicerModelsLogic, slicer.vtkSlicerVolumesLogic):
        logic = Logic()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        logics.append(logic)
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(tempfile.mkdtemp())
    io = slicer.vtkDataIOManager()
    io.SetCacheManager(cache)
    scene.SetDataIOManager(io)
    scene.SetCacheManager(cache)

    def release():
        # The logics refer to each other without owning references: release them in order.
        for logic in logics:
            logic.SetMRMLScene(None)
        app.SetMRMLScene(None)
        scene.Clear(1)

    return scene, release


def vtk_matrix(array):
    """A vtkMatrix4x4 holding a 4×4 array."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row][column]))
    return matrix


def ijk_to_ras_of(node) -> np.ndarray:
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def small_ct() -> sitk.Image:
    """A water cylinder holding a bone block, 60×50×40 voxels of 2 mm (LPS on disk, as read)."""
    k, j, i = np.mgrid[0:40, 0:50, 0:60]
    hu = np.full(i.shape, -1000.0, dtype=np.float32)
    hu[(i - 30) ** 2 + (j - 25) ** 2 < 20 ** 2] = 0.0
    hu[(abs(i - 36) < 5) & (abs(j - 22) < 4) & (abs(k - 20) < 12)] = 1200.0
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetOrigin((-60.0, -50.0, -40.0))
    return image


def render_small_view(geometry):
    """A DRR and one structure's mask from the SyntheticDataGenLib renderer, as numpy arrays."""
    from SyntheticDataGenLib.cases.labels import Segmentation
    from SyntheticDataGenLib.projection.view import CaseVolume, render_view

    ct = small_ct()
    bone = sitk.Cast(ct > 500, sitk.sitkUInt8)
    case = CaseVolume.from_ct(ct, Segmentation.from_masks({"bone": bone}), ["bone"])
    view = render_view(case, geometry)
    return view.line_integral.numpy(), view.masks.numpy()


def test_preview_nodes_are_placed_on_the_detector_and_survive_an_mrb(tmp_path, slicer_module):
    slicer = slicer_module
    import slicer.util  # the array helpers the module uses

    geometry = preset_geometry("ap", lao_deg=25, cranial_deg=-10, size_px=(40, 30), pixel_spacing_mm=(4.0, 4.0))
    drr, masks = render_small_view(geometry)
    assert drr.shape == (30, 40) and masks.shape == (1, 30, 40)
    assert drr.max() > 0 and masks.any()
    labels = np.zeros(drr.shape, dtype=np.uint8)
    for index, mask in enumerate(masks):
        labels[mask] = index + 1

    scene, release = make_scene(slicer)
    try:
        # What SyntheticDataGenLogic.preview builds
        model = scene.AddNewNodeByClass("vtkMRMLModelNode", "X-ray geometry")
        model.SetAndObservePolyData(geometry_polydata(geometry))
        model.CreateDefaultDisplayNodes()
        model.GetDisplayNode().SetActiveScalar("part", 1)  # vtkAssignAttribute::CELL_DATA
        model.GetDisplayNode().SetScalarVisibility(True)
        drr_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "DRR preview")
        slicer.util.updateVolumeFromArray(drr_node, drr[None])
        drr_node.SetIJKToRASMatrix(vtk_matrix(geometry.detector_ijk_to_ras()))
        drr_node.CreateDefaultDisplayNodes()
        mask_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "DRR preview masks")
        slicer.util.updateVolumeFromArray(mask_node, labels[None])
        mask_node.SetIJKToRASMatrix(vtk_matrix(geometry.detector_ijk_to_ras()))
        mask_node.CreateDefaultDisplayNodes()

        # The image is [height, width]: i = u, j = v, one slice
        assert drr_node.GetImageData().GetDimensions() == (40, 30, 1)
        np.testing.assert_allclose(drr_node.GetSpacing(), [4.0, 4.0, 1.0])
        ijk_to_ras = ijk_to_ras_of(drr_node)
        np.testing.assert_allclose(ijk_to_ras, geometry.detector_ijk_to_ras(), atol=1e-9)
        for u, v in ((0, 0), (39, 0), (0, 29), (17, 11), (39, 29)):
            np.testing.assert_allclose((ijk_to_ras @ [u, v, 0, 1])[:3], geometry.pixel_center_ras(u, v), atol=1e-9)
            assert drr_node.GetImageData().GetScalarComponentAsDouble(u, v, 0, 0) == pytest.approx(float(drr[v, u]))
            assert mask_node.GetImageData().GetScalarComponentAsDouble(u, v, 0, 0) == labels[v, u]
        np.testing.assert_allclose(ijk_to_ras_of(mask_node), geometry.detector_ijk_to_ras(), atol=1e-9)
        # The bone's mask pixels are where the bone projects
        bone_centre_ras = np.array([-(-60 + 2 * 36), -(-50 + 2 * 22), -40 + 2 * 20])  # LPS -> RAS
        uv, _ = geometry.project(bone_centre_ras)
        assert labels[int(round(uv[1])), int(round(uv[0]))] == 1

        path = tmp_path / "preview.mrb"
        assert scene.WriteToMRB(str(path.resolve()))
        with zipfile.ZipFile(path) as bundle:
            model_files = [name for name in bundle.namelist() if name.endswith(".vtk")]
            assert len(model_files) == 1
            header = bundle.read(model_files[0])[:200].decode("latin-1")
        assert "SPACE=LPS" in header

        points_before = points_of(model.GetPolyData())
        counts_before = {cls: scene.GetNumberOfNodesByClass(cls) for cls in
                         ("vtkMRMLModelNode", "vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode")}
    finally:
        release()

    scene, release = make_scene(slicer)
    try:
        assert scene.ReadFromMRB(str(path.resolve()))
        counts = {cls: scene.GetNumberOfNodesByClass(cls) for cls in counts_before}
        assert counts == counts_before == {"vtkMRMLModelNode": 1, "vtkMRMLScalarVolumeNode": 2,
                                           "vtkMRMLLabelMapVolumeNode": 1}
        model = scene.GetFirstNodeByName("X-ray geometry")
        # Written in LPS, read back into RAS: the same points
        np.testing.assert_allclose(points_of(model.GetPolyData()), points_before, atol=1e-4)
        np.testing.assert_array_equal(parts_of(model.GetPolyData()), parts_of(geometry_polydata(geometry)))
        assert model.GetDisplayNode() is not None

        drr_node = scene.GetFirstNodeByName("DRR preview")
        mask_node = scene.GetFirstNodeByName("DRR preview masks")
        assert mask_node.IsA("vtkMRMLLabelMapVolumeNode") and not drr_node.IsA("vtkMRMLLabelMapVolumeNode")
        for node in (drr_node, mask_node):
            np.testing.assert_allclose(ijk_to_ras_of(node), geometry.detector_ijk_to_ras(), atol=1e-4)
        np.testing.assert_allclose(slicer.util.arrayFromVolume(drr_node)[0], drr, rtol=1e-6)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(mask_node)[0], labels)
    finally:
        release()


def test_slice_node_takes_the_detector_plane(slicer_module):
    slicer = slicer_module
    geometry = preset_geometry("lateral-left", lao_deg=10, cranial_deg=5, size_px=(64, 48))
    slice_node = slicer.vtkMRMLSliceNode()
    slice_node.SetDimensions(400, 300, 1)
    slice_node.SetFieldOfView(64 * 1.6, 48 * 1.6, 1.0)
    slice_node.GetSliceToRAS().DeepCopy(vtk_matrix(detector_slice_to_ras(geometry)))
    slice_node.UpdateMatrices()
    xy_to_ras = slice_node.GetXYToRAS()
    xy_to_ras = np.array([[xy_to_ras.GetElement(r, c) for c in range(4)] for r in range(4)])
    # The view's centre is the detector centre; screen corners map to the detector corners
    np.testing.assert_allclose((xy_to_ras @ [200, 150, 0, 1])[:3], geometry.detector_center_ras_mm, atol=1e-6)
    top_left = (xy_to_ras @ [0, 300, 0, 1])[:3]
    uv, _ = geometry.project(top_left)
    np.testing.assert_allclose(uv, [-0.5, -0.5], atol=1e-6)
