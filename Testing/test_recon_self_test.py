"""Reading MRML nodes back into arrays (``SingleImageReconLib.scene``) and the SingleImageRecon
module's self-test bodies (``SingleImageReconLib.self_test``), in a real MRML scene.

Runs against ``slicer-core`` (Slicer's Qt-free MRML) in scenes made by ``scene.new_scene``;
coordinates are RAS mm, SimpleITK geometry LPS mm.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import SimpleITK as sitk  # noqa: E402

from SingleImageReconLib import scene as mrml  # noqa: E402
from SingleImageReconLib import self_test  # noqa: E402
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras  # noqa: E402
from SyntheticDataGenLib.errors import XreconInputError  # noqa: E402
from SyntheticDataGenLib.projection.geometry import preset_geometry  # noqa: E402


@pytest.fixture
def scene():
    mrml_scene = mrml.new_scene()
    yield mrml_scene
    mrml.close_scene(mrml_scene)


@pytest.fixture
def ct() -> sitk.Image:
    """A small int16 CT (HU) with unequal spacing (mm) and an oblique direction."""
    voxels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 100
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((0.8, 1.1, 2.5))
    image.SetOrigin((-12.0, 30.5, 7.25))
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    image.SetDirection(rotation.ravel().tolist())
    return image


def test_volume_image_gives_back_the_ct(scene, ct):
    back = mrml.volume_image(mrml.add_ct(scene, "CT", ct))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(ct))
    assert back.GetPixelID() == ct.GetPixelID()
    np.testing.assert_allclose(back.GetOrigin(), ct.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), ct.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), ct.GetDirection(), atol=1e-9)
    np.testing.assert_allclose(ijk_to_ras(back), ijk_to_ras(ct), atol=1e-9)


def test_volume_array_is_kji_and_a_copy(scene, ct):
    node = mrml.add_ct(scene, "CT", ct)
    voxels = mrml.volume_array(node)
    np.testing.assert_array_equal(voxels, sitk.GetArrayFromImage(ct))
    voxels[0, 0, 0] = 999
    assert mrml.volume_array(node)[0, 0, 0] == sitk.GetArrayFromImage(ct)[0, 0, 0]


def test_volume_array_refuses_a_node_without_voxels(scene):
    with pytest.raises(ValueError, match="no voxels"):
        mrml.volume_array(scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty"))


def test_segment_masks_round_trip_on_the_volume_grid(scene, ct):
    ct_node = mrml.add_ct(scene, "CT", ct)
    shape = sitk.GetArrayViewFromImage(ct).shape
    box = np.zeros(shape, dtype=bool)
    box[1:3, 1:4, 2:5] = True
    corner = np.zeros(shape, dtype=bool)
    corner[0, 0, 0] = True
    masks = {"box": box, "corner": corner, "empty": np.zeros(shape, dtype=bool)}
    segmentation_node = mrml.add_segmentation(scene, "labels", masks, ijk_to_ras(ct), closed_surface=False,
                                              reference_volume=ct_node)
    back = mrml.segment_masks(segmentation_node, ct_node)
    assert list(back) == ["box", "corner", "empty"]
    for name, mask in masks.items():
        assert back[name].dtype == bool
        np.testing.assert_array_equal(back[name], mask, err_msg=name)
    assert list(mrml.segment_masks(segmentation_node, ct_node, ["corner"])) == ["corner"]


def test_segment_masks_resamples_onto_another_grid(scene, ct):
    """A segment made on a grid twice as fine along i lands on the CT grid's voxels it covers."""
    ct_node = mrml.add_ct(scene, "CT", ct)
    shape = sitk.GetArrayViewFromImage(ct).shape
    fine = np.zeros((shape[0], shape[1], 2 * shape[2]), dtype=bool)
    fine[:, :, 4:8] = True  # fine voxels 4..7 are CT voxels 2..3
    fine_ijk_to_ras = ijk_to_ras(ct) @ np.diag([0.5, 1.0, 1.0, 1.0])
    segmentation_node = mrml.add_segmentation(scene, "labels", {"slab": fine}, fine_ijk_to_ras, closed_surface=False)
    expected = np.zeros(shape, dtype=bool)
    expected[:, :, 2:4] = True
    np.testing.assert_array_equal(mrml.segment_masks(segmentation_node, ct_node)["slab"], expected)


def test_segment_masks_refuses_a_transformed_node_and_unknown_names(scene, ct):
    ct_node = mrml.add_ct(scene, "CT", ct)
    shape = sitk.GetArrayViewFromImage(ct).shape
    segmentation_node = mrml.add_segmentation(scene, "labels", {"all": np.ones(shape, bool)}, ijk_to_ras(ct),
                                              closed_surface=False)
    with pytest.raises(XreconInputError):
        mrml.segment_masks(segmentation_node, ct_node, ["missing"])
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    segmentation_node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(XreconInputError, match="harden the transform"):
        mrml.segment_masks(segmentation_node, ct_node)


def test_reference_images_skip_names_the_segmentation_lacks(scene, ct):
    ct_node = mrml.add_ct(scene, "CT", ct)
    shape = sitk.GetArrayViewFromImage(ct).shape
    mask = np.zeros(shape, dtype=bool)
    mask[2, 2, 2] = True
    segmentation_node = mrml.add_segmentation(scene, "labels", {"bone": mask}, ijk_to_ras(ct), closed_surface=False)
    image, segmentation = mrml.reference_images(ct_node, segmentation_node, ["other", "bone"])
    assert segmentation.names == ["bone"]
    np.testing.assert_allclose(ijk_to_ras(segmentation.reference), ijk_to_ras(ct), atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segmentation.reference) > 0, mask)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(ct))


def test_radiograph_array_and_geometry_read_back(scene):
    geometry = preset_geometry("ap", isocenter_ras_mm=(0.0, 0.0, 0.0), size_px=(6, 4), pixel_spacing_mm=(2.0, 1.5))
    image = np.arange(24, dtype=np.float64).reshape(4, 6)
    node = mrml.add_radiograph(scene, "AP", image, geometry)
    back = mrml.radiograph_array(node)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, image)
    assert mrml.radiograph_geometry(node, "", (6, 4)) == geometry
    with pytest.raises(XreconInputError, match="select the geometry of this radiograph"):
        mrml.radiograph_geometry(node, "", (4, 6))
    with pytest.raises(XreconInputError, match="Select a radiograph"):
        mrml.radiograph_array(None)


def test_sample_case_self_test_body_passes(scene):
    volume_node, segmentation_node = self_test.sample_case_checks(scene)
    assert volume_node.GetScene() is scene and segmentation_node.GetScene() is scene


@pytest.mark.slow
def test_demo_run_self_test_body_passes_and_fails_on_a_broken_folder(scene, tmp_path):
    """The Demo button's body in a slicer-core scene: ``xrecon demo`` in a subprocess, its bundle
    imported into the scene; then a model that lost its distances, and a stray node, fail it."""
    import sys

    run_dir = tmp_path / "demo run"
    nodes = self_test.demo_run_checks(scene, sys.executable, None, run_dir)
    segmentation = nodes["metrics"].GetNodeReference("xrecon.reference")
    hierarchy = scene.GetSubjectHierarchyNode()
    stray = hierarchy.CreateItem(nodes["folder"], mrml.add_metrics_table(scene, "stray", [{"a": 1}]))
    with pytest.raises(AssertionError, match="the demo folder holds"):
        self_test._check_demo_nodes(scene, nodes, run_dir / "demo", segmentation)
    hierarchy.SetItemParent(stray, hierarchy.GetSceneItemID())  # out of the folder again
    self_test._check_demo_nodes(scene, nodes, run_dir / "demo", segmentation)
    model = next(iter(nodes["models"]["depth"].values()))
    model.GetPolyData().GetPointData().RemoveArray("distance_mm")
    with pytest.raises(AssertionError, match="shows no distances"):
        self_test._check_demo_nodes(scene, nodes, run_dir / "demo", segmentation)


def test_second_load_self_test_body_passes(scene):
    self_test.second_load_checks(scene)
    with pytest.raises(AssertionError, match="nodes of class vtkMRMLScalarVolumeNode"):
        self_test.second_load_checks(scene)  # four volumes now
