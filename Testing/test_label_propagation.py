"""Propagated labels: voting, refinement with the target's bone, and `xrecon labels` end to end."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SingleImageReconLib.cli import main
from SyntheticDataGenLib.cases.label_propagation import dice, fuse_votes, refine_with_bone
from SyntheticDataGenLib.cases.label_sheet import sheet_panels


def _phantom(offset_mm: float = 0.0) -> tuple[sitk.Image, np.ndarray]:
    """A soft-tissue box in air holding two hollow bones (700 HU cortex, 60 HU marrow) stacked head to
    foot, 2 mm voxels; returns the CT and its (k, j, i) labels 1 and 2."""
    hu = np.full((40, 40, 40), -1000.0, np.float32)  # air around
    hu[:, 4:36, 4:36] = 40.0
    labels = np.zeros(hu.shape, np.uint8)
    for value, (k0, k1) in enumerate(((6, 17), (21, 32)), start=1):
        hu[k0:k1, 12:28, 12:28] = 700.0
        hu[k0 + 2:k1 - 2, 14:26, 14:26] = 60.0
        labels[k0:k1, 12:28, 12:28] = value
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetOrigin((0.0, 0.0, offset_mm))
    return image, labels


def test_votes_take_the_majority_and_background_does_not_vote():
    a = np.array([1, 1, 2, 0, 0])
    b = np.array([1, 2, 2, 0, 3])
    c = np.array([2, 2, 0, 0, 0])
    assert fuse_votes([a, b, c], 3).tolist() == [1, 2, 2, 0, 3]


def test_refinement_follows_the_cortex_and_fills_the_marrow():
    ct, truth = _phantom()
    shifted = np.roll(truth, 2, axis=2)  # the propagated label 4 mm off to one side
    refined = refine_with_bone(ct, shifted, bone_hu=120.0, reach_mm=6.0)
    for value in (1, 2):
        assert dice(refined == value, truth == value) > 0.95
        assert dice(shifted == value, truth == value) < 0.9
    assert (refined[10, 20, 20] == 1) and (refined[26, 20, 20] == 2), "marrow belongs to its bone"


def test_threshold_labels_close_a_broken_cortex_and_fill_the_marrow_slice_by_slice(tmp_path):
    from SyntheticDataGenLib.cases.threshold_labels import fill_marrow, write_threshold_labels

    ring = np.zeros((3, 30, 30), bool)
    j, i = np.mgrid[:30, :30]
    radius = np.hypot(j - 15, i - 15)
    ring[:] = (radius >= 7) & (radius <= 11)
    ring[1, 13:17, 22:] = False  # a 4-voxel gap in the cortex of the middle slice (cancellous bone below the threshold)
    assert not fill_marrow(ring, 2)[1, 15, 15], "a disc narrower than the gap does not close it"
    filled = fill_marrow(ring, 3)
    assert filled[:, 15, 15].all() and not filled[:, 15, 27:].any() and not filled[:, 0, 0].any()
    assert np.array_equal(filled[1:2], fill_marrow(ring[1:2], 3)), "each slice is filled on its own"
    ct = sitk.GetImageFromArray(np.where(filled, 700, -1000).astype(np.int16))
    voxels = write_threshold_labels(tmp_path, ct, filled.astype(np.uint8), ["femur_left"], {"kind": "threshold labels"},
                                    "python make_labels.py", "test")
    assert voxels == {"femur_left": int(filled.sum())}
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "labels.nii.gz"))), filled)
    assert json.loads((tmp_path / "propagation.json").read_text())["command"] == "python make_labels.py"
    assert (tmp_path / "labels.csv").read_text() == "id,structure\n1,femur_left\n"
    assert (tmp_path / "contact_sheet.png").stat().st_size > 0


def test_xrecon_labels_carries_an_atlas_onto_a_moved_copy(tmp_path):
    target, truth = _phantom(offset_mm=6.0)
    atlas, atlas_labels = _phantom()
    sitk.WriteImage(target, str(tmp_path / "target.nii.gz"))
    sitk.WriteImage(atlas, str(tmp_path / "atlas.nii.gz"))
    label_image = sitk.GetImageFromArray(atlas_labels)
    label_image.CopyInformation(atlas)
    sitk.WriteImage(label_image, str(tmp_path / "atlas_labels.nii.gz"))
    (tmp_path / "table.csv").write_text("id,structure\n1,vertebrae_L1\n2,vertebrae_L2\n")
    out = tmp_path / "out"
    assert main(["labels", "--ct", str(tmp_path / "target.nii.gz"), "--atlas", str(tmp_path / "atlas.nii.gz"),
                 str(tmp_path / "atlas_labels.nii.gz"), str(tmp_path / "table.csv"), "--spacing-mm", "2",
                 "--out", str(out)]) == 0
    result = sitk.ReadImage(str(out / "labels.nii.gz"))
    assert result.GetSize() == target.GetSize() and result.GetOrigin() == target.GetOrigin()
    table = dict(line.split(",")[::-1] for line in (out / "labels.csv").read_text().split()[1:])
    array = sitk.GetArrayFromImage(result)
    # L2 is the upper bone (higher k, higher S); the label follows it though the copy moved 6 mm
    for name, value in (("vertebrae_L1", 1), ("vertebrae_L2", 2)):
        assert dice(array == int(table[name]), truth == value) > 0.9
    report = json.loads((out / "propagation.json").read_text())
    assert report["kind"] == "propagated labels" and set(report["overlap"]) == {"vertebrae_L1", "vertebrae_L2"}
    assert (out / "contact_sheet.png").stat().st_size > 10_000


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1)],
                         ids=["LPS grid", "RAS grid"])
def test_contact_sheet_shows_the_patients_right_on_the_left_and_anterior_on_the_right(direction):
    """As a radiograph is read, whatever the CT's axis order (a bone's side is checked by eye here)."""
    ct = sitk.Image([40, 30, 20], sitk.sitkInt16)
    ct.SetSpacing((2.0, 2.0, 2.0))
    ct.SetDirection(direction)
    labels = np.zeros((20, 30, 40), np.uint8)
    right_anterior = ct.TransformPhysicalPointToIndex(  # LPS: -x is the patient's right, -y anterior
        np.asarray(ct.TransformIndexToPhysicalPoint((20, 15, 10))) + (-25.0, -15.0, 0.0))
    labels[right_anterior[2], right_anterior[1] - 2:right_anterior[1] + 3, right_anterior[0] - 2:right_anterior[0] + 3] = 1
    (_, coronal, _), (_, sagittal, _), _ = sheet_panels(ct, labels)
    assert np.nonzero(coronal)[1].mean() < coronal.shape[1] / 2 - 5
    assert np.nonzero(sagittal)[1].mean() > sagittal.shape[1] / 2 + 3
