"""The SyntheticDataGen module's MRML seam (``SyntheticDataGenLib.scene``) in a real MRML scene.

Runs against ``slicer-core`` (Slicer's Qt-free MRML); the scene is set up as the QA scene's
(``SingleImageReconLib.scene.new_scene``). Coordinates are RAS mm.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402
from vtkmodules.vtkCommonMath import vtkMatrix4x4  # noqa: E402

from SingleImageReconLib.scene import close_scene, new_scene  # noqa: E402
from SyntheticDataGenLib import scene as datagen_scene  # noqa: E402
from SyntheticDataGenLib.errors import XreconInputError  # noqa: E402
from SyntheticDataGenLib.projection.geometry import preset_geometry  # noqa: E402
from SyntheticDataGenLib.projection.geometry_model import PART_COLORS, PART_NAMES  # noqa: E402


@pytest.fixture
def scene():
    mrml_scene = new_scene()
    yield mrml_scene
    close_scene(mrml_scene)


@pytest.fixture
def geometry():
    return preset_geometry("ap", isocenter_ras_mm=(10.0, -20.0, 30.0), lao_deg=15.0, size_px=(6, 4),
                           pixel_spacing_mm=(2.0, 1.5))


def matrix_of(volume_node) -> np.ndarray:
    """The node's 4x4 IJK->RAS matrix (mm)."""
    matrix = vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def voxels_of(volume_node) -> np.ndarray:
    """The node's voxels as [k, j, i]."""
    image = volume_node.GetImageData()
    i, j, k = image.GetDimensions()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(k, j, i)


def assert_color_entries(color_node, expected) -> None:
    """The table holds exactly ``expected`` [(name, (r, g, b), opacity)], colours to 8 bits (as stored)."""
    assert [color_node.GetColorName(index) for index in range(color_node.GetNumberOfColors())] == [
        name for name, _rgb, _opacity in expected]
    rgba = []
    for index in range(color_node.GetNumberOfColors()):
        color = [0.0] * 4
        color_node.GetColor(index, color)
        rgba.append(color)
    np.testing.assert_allclose(rgba, [(*rgb, opacity) for _name, rgb, opacity in expected], atol=0.5 / 255)


def test_output_node_is_found_again_by_role_and_exact_class(scene):
    model = datagen_scene.output_node(scene, "vtkMRMLModelNode", "a model", "geometry")
    assert model.GetName() == "a model"
    assert model.GetAttribute(datagen_scene.ROLE_ATTRIBUTE) == "geometry"
    assert model.GetDisplayNode() is not None
    assert datagen_scene.output_node(scene, "vtkMRMLModelNode", "another name", "geometry") is model
    assert datagen_scene.output_node(scene, "vtkMRMLModelNode", "a model", "other") is not model
    assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") == 2

    # A label map is a scalar volume to GetNthNodeByClass: the role must not cross classes
    labels = datagen_scene.output_node(scene, "vtkMRMLLabelMapVolumeNode", "labels", "same")
    volume = datagen_scene.output_node(scene, "vtkMRMLScalarVolumeNode", "volume", "same")
    assert volume is not labels and volume.GetClassName() == "vtkMRMLScalarVolumeNode"
    assert volume.GetDisplayNode() is not None


def test_color_table_holds_the_entries_and_updates_in_place(scene):
    entries = [("background", (0.0, 0.0, 0.0), 0.0), ("femur", (0.25, 0.5, 0.75), 1.0)]
    color_node = datagen_scene.color_table_node(scene, "maskColors", "mask colors", entries)
    assert color_node.GetName() == "mask colors"
    assert_color_entries(color_node, entries)

    tibia = [("tibia", (1.0, 0.0, 0.5), 0.5)]
    assert datagen_scene.color_table_node(scene, "maskColors", "mask colors", tibia) is color_node
    assert_color_entries(color_node, tibia)
    assert [node for node in scene.GetNodesByClass("vtkMRMLColorTableNode")
            if node.GetAttribute(datagen_scene.ROLE_ATTRIBUTE) == "maskColors"] == [color_node]


def test_geometry_model_is_coloured_by_part(scene, geometry):
    model = datagen_scene.update_geometry_model(scene, geometry)
    assert model.GetName() == datagen_scene.GEOMETRY_MODEL_NAME
    parts = vtk_to_numpy(model.GetPolyData().GetCellData().GetArray("part"))
    assert set(parts.tolist()) == set(range(len(PART_NAMES)))
    np.testing.assert_allclose(model.GetPolyData().GetPoint(0), geometry.source_ras_mm, atol=1e-6)

    display = model.GetDisplayNode()
    color_node = display.GetColorNode()
    assert color_node.GetName() == f"{datagen_scene.GEOMETRY_MODEL_NAME} colors"
    assert_color_entries(color_node, [(name, rgb, 1.0) for name, rgb in zip(PART_NAMES, PART_COLORS)])
    assert display.GetActiveScalarName() == "part"
    assert display.GetActiveAttributeLocation() == 1  # vtkAssignAttribute.CELL_DATA
    assert display.GetScalarRangeFlag() == slicer.vtkMRMLDisplayNode.UseManualScalarRange
    assert tuple(display.GetScalarRange()) == (0.0, len(PART_NAMES) - 1.0)
    assert display.GetScalarVisibility() and display.GetVisibility3D() and not display.GetVisibility2D()

    other = preset_geometry("lateral-left", isocenter_ras_mm=(0.0, 0.0, 0.0), size_px=(6, 4))
    assert datagen_scene.update_geometry_model(scene, other) is model
    np.testing.assert_allclose(model.GetPolyData().GetPoint(0), other.source_ras_mm, atol=1e-6)
    assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") == 1


def test_drr_node_holds_the_image_on_the_detector(scene, geometry):
    line_integral = np.arange(24, dtype=np.float32).reshape(4, 6) / 10.0
    drr = datagen_scene.update_drr_node(scene, line_integral, geometry)
    assert drr.GetName() == datagen_scene.DRR_NODE_NAME
    assert drr.GetImageData().GetDimensions() == (6, 4, 1)
    np.testing.assert_array_equal(voxels_of(drr)[0], line_integral)
    ijk_to_ras = matrix_of(drr)
    np.testing.assert_allclose(ijk_to_ras, geometry.detector_ijk_to_ras(), atol=1e-9)
    np.testing.assert_allclose((ijk_to_ras @ [5, 3, 0, 1])[:3], geometry.pixel_center_ras(5, 3), atol=1e-9)
    display = drr.GetDisplayNode()
    assert display.GetColorNodeID() == "vtkMRMLColorTableNodeGrey"
    assert not display.GetAutoWindowLevel()
    assert display.GetWindowLevelMin() < display.GetWindowLevelMax() <= float(line_integral.max())

    assert datagen_scene.update_drr_node(scene, line_integral * 2, geometry) is drr
    np.testing.assert_array_equal(voxels_of(drr)[0], line_integral * 2)


def test_masks_node_stacks_later_structures_over_earlier_ones(scene, geometry):
    masks = np.zeros((2, 4, 6), dtype=bool)
    masks[0, :, :3] = True
    masks[1, 1:3, 2:5] = True
    names = ["femur", "tibia"]
    masks_node = datagen_scene.update_masks_node(scene, masks, geometry, names, {"femur": (0.2, 0.4, 0.6)})
    assert masks_node.GetClassName() == "vtkMRMLLabelMapVolumeNode"
    assert masks_node.GetName() == datagen_scene.MASKS_NODE_NAME
    labels = voxels_of(masks_node)[0]
    expected = np.where(masks[1], 2, np.where(masks[0], 1, 0))
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_allclose(matrix_of(masks_node), geometry.detector_ijk_to_ras(), atol=1e-9)
    assert_color_entries(masks_node.GetDisplayNode().GetColorNode(), [
        ("background", (0.0, 0.0, 0.0), 0.0), ("femur", (0.2, 0.4, 0.6), 1.0),
        ("tibia", datagen_scene.DEFAULT_MASK_COLOR, 1.0)])
    with pytest.raises(ValueError, match="one"):
        datagen_scene.update_masks_node(scene, masks, geometry, ["femur"], {})


def test_remove_node_with_helpers_removes_display_and_storage_nodes(scene):
    model = datagen_scene.output_node(scene, "vtkMRMLModelNode", "model", "geometry")
    model.AddDefaultStorageNode()
    helpers = [model.GetDisplayNode(), model.GetStorageNode()]
    assert all(helper is not None and helper.GetScene() is scene for helper in helpers)
    keep = datagen_scene.output_node(scene, "vtkMRMLModelNode", "kept", "other")

    datagen_scene.remove_node_with_helpers(model)
    assert model.GetScene() is None
    assert all(helper.GetScene() is None for helper in helpers)
    assert keep.GetScene() is scene and keep.GetDisplayNode().GetScene() is scene
    datagen_scene.remove_node_with_helpers(model)  # no longer in a scene: nothing to do
    datagen_scene.remove_node_with_helpers(None)


def test_check_no_transform_refuses_a_transformed_node(scene):
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    datagen_scene.check_no_transform(volume)
    datagen_scene.check_no_transform(None)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "moved")
    volume.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(XreconInputError, match="CT is under the transform moved"):
        datagen_scene.check_no_transform(volume)


def test_segments_by_name(scene):
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "labels")
    segmentation = segmentation_node.GetSegmentation()
    segmentation.AddEmptySegment("s1", "femur", [0.25, 0.5, 0.75])
    segmentation.AddEmptySegment("s2", "tibia", [1.0, 0.0, 0.0])

    assert datagen_scene.segment_names_and_colors(segmentation_node) == [
        ("femur", (0.25, 0.5, 0.75)), ("tibia", (1.0, 0.0, 0.0))]
    assert datagen_scene.segment_names_and_colors(None) == []
    assert datagen_scene.segment_ids(segmentation_node) == {"femur": "s1", "tibia": "s2"}
    assert list(datagen_scene.segment_ids(segmentation_node, ["tibia", "femur"]).items()) == [
        ("tibia", "s2"), ("femur", "s1")]
    with pytest.raises(XreconInputError, match="labels has no segment named 'fibula'"):
        datagen_scene.segment_ids(segmentation_node, ["femur", "fibula"])


def test_segment_masks_one_at_a_time_match_all_at_once(scene):
    """The module's label map asks for one segment at a time (``segmentLabelmap``): same masks,
    on the volume's grid, in the order asked for. SingleImageReconLib.scene reads with the same code."""
    import SingleImageReconLib.scene as recon_scene

    ijk_to_ras = np.diag([1.5, 2.0, 2.5, 1.0])
    ijk_to_ras[:3, 3] = (-4.0, 3.0, 10.0)
    volume_node = datagen_scene.add_volume(scene, "CT", np.zeros((4, 5, 6), dtype=np.int16), ijk_to_ras)
    femur = np.zeros((4, 5, 6), dtype=bool)
    femur[1:3, 1:4, 2:5] = True
    tibia = np.zeros((4, 5, 6), dtype=bool)
    tibia[0, 0, :2] = True
    segmentation_node = datagen_scene.add_segmentation(scene, "labels", {"femur": femur, "tibia": tibia},
                                                       ijk_to_ras, closed_surface=False)

    together = datagen_scene.segment_masks(segmentation_node, volume_node, ["tibia", "femur"])
    assert list(together) == ["tibia", "femur"]
    for name, expected in (("femur", femur), ("tibia", tibia)):
        alone = datagen_scene.segment_masks(segmentation_node, volume_node, [name])[name]
        assert alone.dtype == bool and alone.shape == (4, 5, 6)
        np.testing.assert_array_equal(alone, expected)
        np.testing.assert_array_equal(together[name], expected)
    for name in ("volume_ijk_to_ras", "volume_array", "volume_image", "segment_masks"):
        assert getattr(recon_scene, name) is getattr(datagen_scene, name)
