"""Bodies of the SyntheticDataGen module's self-tests, run by Slicer's ScriptedLoadableModuleTest
and by pytest against ``slicer-core``.

Each check is a plain function of an MRML scene (``slicer.mrmlScene`` inside Slicer, a
``slicer-core`` scene outside) that raises AssertionError with a message when something is
wrong. They use MRML classes only (through ``scene.py``), never ``slicer.util`` or Qt, and do
not import ``slicer`` themselves (only ``scene.py`` does), so scenes are not type-annotated.
"""

from __future__ import annotations

import numpy as np

from . import scene as mrml


def check(condition: bool, message: str) -> None:
    """Raise AssertionError(message) unless ``condition`` (not ``assert``: the checks must also
    run under ``python -O``)."""
    if not condition:
        raise AssertionError(message)


def _structures_present(labels_path, table_path) -> set[str]:
    """Names the label table gives the ids that occur in the label map (read independently of
    ``labels.read_segmentation``, so the check does not repeat the code it checks)."""
    import SimpleITK as sitk

    from .cases.labels import read_label_table

    ids = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path)))).tolist())
    return {structure for structure, label in read_label_table(table_path).items() if label in ids}


def sample_case_checks(scene, name: str | None = None) -> tuple:
    """Load a bundled sample case (the first by default) into an MRML scene (vtkMRMLScene) without
    volumes or segmentations, with ``scene.load_case``, and check it; returns (volume node,
    segmentation node).

    Checks: one scalar volume and no label map volume, one segmentation; segment names are the
    label table's structures present in the label map; the volume's IJK->RAS (mm) is the CT
    file's (``ct_io.ijk_to_ras``); the segmentation's reference volume is the CT.
    """
    from .cases.ct_io import ijk_to_ras, read_ct
    from .cases.sample_data import list_sample_cases, sample_case

    names = list_sample_cases()
    check(bool(names), "no bundled sample case")
    case = sample_case(name or names[0])
    volume_node, segmentation_node = mrml.load_case(scene, case.ct_path, case.labels_path, case.table_path,
                                                    name=case.name)

    check(volume_node.IsA("vtkMRMLScalarVolumeNode") and not volume_node.IsA("vtkMRMLLabelMapVolumeNode"),
          f"the CT is a {volume_node.GetClassName()}, not a plain scalar volume")
    check(segmentation_node.IsA("vtkMRMLSegmentationNode"),
          f"the labels are a {segmentation_node.GetClassName()}, not a segmentation")
    # A label map is a scalar volume too: one scalar volume and no label map means no leftover label map.
    for class_name, expected in (("vtkMRMLScalarVolumeNode", 1), ("vtkMRMLLabelMapVolumeNode", 0),
                                 ("vtkMRMLSegmentationNode", 1)):
        count = scene.GetNumberOfNodesByClass(class_name)
        check(count == expected, f"{count} nodes of class {class_name}, expected {expected}")
    check(volume_node.GetImageData() is not None, "the CT volume has no voxels")

    segment_names = {segment for segment, _color in mrml.segment_names_and_colors(segmentation_node)}
    expected_names = _structures_present(case.labels_path, case.table_path)
    check(bool(segment_names) and segment_names == expected_names,
          f"segments {sorted(segment_names)}, expected the structures present {sorted(expected_names)}")

    expected_matrix = ijk_to_ras(read_ct(case.ct_path))
    check(np.allclose(mrml.volume_ijk_to_ras(volume_node), expected_matrix, atol=1e-6),
          f"CT IJK->RAS\n{mrml.volume_ijk_to_ras(volume_node)}\nis not the file's\n{expected_matrix}")
    reference_id = segmentation_node.GetNodeReferenceID(segmentation_node.GetReferenceImageGeometryReferenceRole())
    check(reference_id == volume_node.GetID(), "the segmentation's reference volume is not the CT")
    return volume_node, segmentation_node
