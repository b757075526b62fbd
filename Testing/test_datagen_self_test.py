"""The SyntheticDataGen module's self-test bodies (``SyntheticDataGenLib.self_test``) and what its
Logic adapts (``SyntheticDataGenLib.prepared_case``, the slice view of ``scene.py``), in a real
MRML scene from ``slicer-core``. Coordinates are RAS mm.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from SingleImageReconLib.scene import close_scene, new_scene  # noqa: E402
from SyntheticDataGenLib import scene as mrml  # noqa: E402
from SyntheticDataGenLib import self_test  # noqa: E402
from SyntheticDataGenLib.dataset.generation_command import module_python_paths  # noqa: E402
from SyntheticDataGenLib.errors import XreconInputError  # noqa: E402
from SyntheticDataGenLib.prepared_case import PreparedCase, start_generation  # noqa: E402
from SyntheticDataGenLib.projection.geometry import preset_geometry  # noqa: E402
from conftest import REPO  # noqa: E402

PYTHON_PATHS = module_python_paths([REPO / "SyntheticDataGen", REPO / "SingleImageRecon"])


@pytest.fixture
def scene():
    mrml_scene = new_scene()
    yield mrml_scene
    close_scene(mrml_scene)


def test_describe_body_passes(scene):
    info = self_test.describe_checks(scene)
    assert info["structures"]


def test_describe_body_fails_on_a_structure_outside_the_ct(scene, monkeypatch):
    real = mrml.volume_bounds_ras
    monkeypatch.setattr(mrml, "volume_bounds_ras", lambda node: [b + 500.0 for b in real(node)])
    with pytest.raises(AssertionError, match="is not inside the CT"):
        self_test.describe_checks(scene)


def test_preset_geometry_and_geometry_model_bodies_pass(scene):
    self_test.preset_geometry_checks(scene)
    self_test.geometry_model_checks(scene)


def test_geometry_model_body_fails_when_a_second_drawing_makes_a_new_node(scene, monkeypatch):
    real = mrml.update_geometry_model
    drawn = []

    def always_new(scene, geometry, model_node=None):
        drawn.append(geometry)
        if len(drawn) > 1:
            model_node = scene.AddNewNodeByClass("vtkMRMLModelNode")
            model_node.CreateDefaultDisplayNodes()
        return real(scene, geometry, model_node)

    monkeypatch.setattr(mrml, "update_geometry_model", always_new)
    with pytest.raises(AssertionError, match="made a new node"):
        self_test.geometry_model_checks(scene)


@pytest.mark.slow
def test_preview_body_passes(scene):
    result = self_test.preview_checks(scene)
    assert result["seconds"] > 0


@pytest.mark.slow
def test_preview_body_fails_when_the_masks_leave_the_detector(scene, monkeypatch):
    real = mrml.update_masks_node

    def shifted(scene, masks, geometry, names, colors):
        node = real(scene, masks, geometry, names, colors)
        node.SetOrigin([x + 1.0 for x in node.GetOrigin()])
        return node

    monkeypatch.setattr(mrml, "update_masks_node", shifted)
    with pytest.raises(AssertionError, match="off the detector"):
        self_test.preview_checks(scene)


@pytest.mark.slow
def test_batch_generation_and_cancel_bodies_pass(scene, tmp_path):
    self_test.batch_generation_checks(scene, str(tmp_path / "set"), PYTHON_PATHS)
    close_scene(scene)
    self_test.cancel_generation_checks(new_scene(), str(tmp_path / "long"), PYTHON_PATHS)


def test_start_generation_refuses_missing_inputs_before_any_work(scene, tmp_path):
    volume_node, segmentation_node = self_test._first_sample_case(scene)
    for nodes, folder, structures, message in (((None, segmentation_node), tmp_path, ["sacrum"], "CT volume"),
                                               ((volume_node, segmentation_node), "", ["sacrum"], "output folder"),
                                               ((volume_node, segmentation_node), tmp_path, [], "one structure")):
        with pytest.raises(XreconInputError, match=message):
            start_generation(PreparedCase(), *nodes, structures, str(folder), None, PYTHON_PATHS)
    assert not list(tmp_path.iterdir())


def test_prepared_case_is_kept_until_the_segments_or_the_choice_change(scene):
    volume_node, segmentation_node = self_test._first_sample_case(scene)
    names = [name for name, _color in mrml.segment_names_and_colors(segmentation_node)]
    case = PreparedCase()
    first = case.inputs(volume_node, segmentation_node, names[:2])
    assert case.inputs(volume_node, segmentation_node, names[:2]) is first
    assert first[2] == names[:2]
    assert set(np.unique(sitk.GetArrayViewFromImage(first[1]))) <= {0, 1, 2}
    other = case.inputs(volume_node, segmentation_node, names[1:3])
    assert other is not first and other[2] == names[1:3]
    # a segment renamed: its data changed, so it is prepared again
    segmentation = segmentation_node.GetSegmentation()
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(names[1])).SetName("renamed")
    with pytest.raises(XreconInputError):
        case.inputs(volume_node, segmentation_node, names[1:3])  # names[1] is gone
    assert case.inputs(volume_node, segmentation_node, [])[1] is None
    assert case.isocenter_ras(volume_node, segmentation_node, []) == mrml.volume_center_ras(volume_node)


def test_show_on_slice_view_turns_the_view_to_the_detector(scene):
    from SyntheticDataGenLib.projection.geometry_model import detector_slice_to_ras

    geometry = preset_geometry("lateral-left", isocenter_ras_mm=(0.0, 0.0, 0.0), lao_deg=10.0, size_px=(8, 6))
    image_node = mrml.update_drr_node(scene, np.ones((6, 8), np.float32), geometry)
    slice_logic = slicer.vtkMRMLSliceLogic()
    slice_logic.SetMRMLScene(scene)
    slice_logic.AddSliceNode("Red")
    mrml.show_on_slice_view(slice_logic, image_node, None, geometry, fit=False)
    composite = slice_logic.GetSliceCompositeNode()
    assert composite.GetBackgroundVolumeID() == image_node.GetID() and composite.GetLabelVolumeID() is None
    slice_to_ras = slice_logic.GetSliceNode().GetSliceToRAS()
    matrix = np.array([[slice_to_ras.GetElement(r, c) for c in range(4)] for r in range(4)])
    np.testing.assert_allclose(matrix, detector_slice_to_ras(geometry), atol=1e-9)
    assert slice_logic.GetSliceNode().GetSliceVisible()
