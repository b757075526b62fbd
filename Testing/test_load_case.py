"""Loading a CT and its labels into an MRML scene (``SyntheticDataGenLib.scene.load_case``).

Runs against ``slicer-core`` (Slicer's Qt-free MRML) on the bundled sample case, in a scene set
up as the QA scene's (``SingleImageReconLib.scene.new_scene``); coordinates are RAS mm. The
module's self-test body (``SyntheticDataGenLib.self_test``) runs here too.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import SimpleITK as sitk  # noqa: E402
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402
from vtkmodules.vtkCommonMath import vtkMatrix4x4  # noqa: E402

from SingleImageReconLib.scene import close_scene, new_scene  # noqa: E402
from SyntheticDataGenLib import scene as datagen_scene  # noqa: E402
from SyntheticDataGenLib import self_test  # noqa: E402
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct  # noqa: E402
from SyntheticDataGenLib.errors import XreconInputError  # noqa: E402
from SyntheticDataGenLib.cases.labels import read_label_table  # noqa: E402
from SyntheticDataGenLib.cases.sample_data import sample_case  # noqa: E402

CASE = "abdomen-pelvis"


@pytest.fixture
def scene():
    mrml_scene = new_scene()
    yield mrml_scene
    close_scene(mrml_scene)


@pytest.fixture(scope="module")
def case():
    return sample_case(CASE)


def matrix_of(volume_node) -> np.ndarray:
    """The node's 4x4 IJK->RAS matrix (mm)."""
    matrix = vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def segment_names(segmentation_node) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def label_ids(case) -> np.ndarray:
    """The case's label map as [k, j, i] ids."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(case.labels_path)))


def structures_present(case) -> set[str]:
    """The label table's structures whose ids occur in the label map."""
    ids = set(np.unique(label_ids(case)).tolist())
    return {structure for structure, label in read_label_table(case.table_path).items() if label in ids}


def test_self_test_body_passes(scene):
    self_test.sample_case_checks(scene, CASE)


def test_load_case_makes_a_ct_volume_and_a_segmentation_on_its_grid(scene, case):
    volume_node, segmentation_node = datagen_scene.load_case(scene, case.ct_path, case.labels_path,
                                                             case.table_path, name="case")
    assert volume_node.GetClassName() == "vtkMRMLScalarVolumeNode"
    assert segmentation_node.GetClassName() == "vtkMRMLSegmentationNode"
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 1  # label maps count here too
    assert scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0
    assert (volume_node.GetName(), segmentation_node.GetName()) == ("case", "case labels")
    # Unmarked: the role attribute marks the module's outputs, which its widget never offers as input.
    for node in (volume_node, volume_node.GetDisplayNode(), segmentation_node, segmentation_node.GetDisplayNode()):
        assert node.GetAttribute(datagen_scene.ROLE_ATTRIBUTE) is None, node.GetName()

    names = segment_names(segmentation_node)
    assert len(names) == len(set(names))
    assert set(names) == structures_present(case)
    np.testing.assert_allclose(matrix_of(volume_node), ijk_to_ras(read_ct(case.ct_path)), atol=1e-9)
    role = segmentation_node.GetReferenceImageGeometryReferenceRole()
    assert segmentation_node.GetNodeReferenceID(role) == volume_node.GetID()


def test_each_segment_holds_its_structure_voxels(scene, case):
    _volume_node, segmentation_node = datagen_scene.load_case(scene, case.ct_path, case.labels_path,
                                                              case.table_path)
    ids, table = label_ids(case), read_label_table(case.table_path)
    segmentation = segmentation_node.GetSegmentation()
    labelmap_name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        voxels = vtk_to_numpy(segment.GetRepresentation(labelmap_name).GetPointData().GetScalars())
        assert np.count_nonzero(voxels) == np.count_nonzero(ids == table[segment.GetName()]), segment.GetName()


def test_the_ct_file_name_names_the_volume_and_a_second_load_gets_new_names(scene, case):
    first = datagen_scene.load_case(scene, case.ct_path, case.labels_path, case.table_path)
    second = datagen_scene.load_case(scene, case.ct_path, case.labels_path, case.table_path)
    assert first[0].GetName() == "ct"  # ct.nii.gz
    assert second[0].GetName() != first[0].GetName()
    assert second[1].GetName() != first[1].GetName()
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 2


def _labels_on_another_grid(case, folder):
    labels = sitk.ReadImage(str(case.labels_path))
    labels.SetSpacing([2 * s for s in labels.GetSpacing()])
    path = folder / "labels_other_grid.nii.gz"
    sitk.WriteImage(labels, str(path))
    return path


@pytest.mark.parametrize("broken", ["labels on another grid", "missing CT", "missing labels"])
def test_a_failed_load_leaves_the_scene_as_it_was(scene, case, tmp_path, broken):
    ct_path, labels_path = case.ct_path, case.labels_path
    if broken == "labels on another grid":
        labels_path = _labels_on_another_grid(case, tmp_path)
    elif broken == "missing CT":
        ct_path = tmp_path / "none.nii.gz"
    else:
        labels_path = tmp_path / "none.nii.gz"
    before = scene.GetNumberOfNodes()
    with pytest.raises(XreconInputError):
        datagen_scene.load_case(scene, ct_path, labels_path, case.table_path)
    assert scene.GetNumberOfNodes() == before


def test_a_failure_while_adding_nodes_removes_what_was_added(scene, case, monkeypatch):
    def add_then_fail(scene, name, *args, **kwargs):
        scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        raise RuntimeError("segmentation failed")

    monkeypatch.setattr(datagen_scene, "add_segmentation", add_then_fail)
    before = scene.GetNumberOfNodes()
    with pytest.raises(RuntimeError, match="segmentation failed"):
        datagen_scene.load_case(scene, case.ct_path, case.labels_path, case.table_path)
    assert scene.GetNumberOfNodes() == before
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0
