"""The CT, label map and table the SyntheticDataGen module writes for ``xrecon generate``
(``generation_inputs``): unchanged files stay untouched, changed ones are rewritten, and a
dataset is never silently given other inputs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.cases.label_map import label_table_text
from SyntheticDataGenLib.dataset.generation_inputs import (
    input_file_stem,
    same_image,
    write_generation_inputs,
)

OLD = 1_000_000_000  # a modification time long past (s since the epoch): a rewrite is unmistakable


def images() -> tuple[sitk.Image, sitk.Image]:
    """A small oblique CT (HU, int16) and a label map on its grid."""
    rng = np.random.default_rng(0)
    ct = sitk.GetImageFromArray(rng.integers(-1000, 1500, (6, 7, 8)).astype(np.int16))
    ct.SetSpacing((0.8, 0.9, 2.5))
    ct.SetOrigin((-30.0, 12.5, 100.0))
    ct.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    labels = np.zeros((6, 7, 8), np.uint8)
    labels[1:4, 2:5, 3:6] = 1
    labels[2:5, 4:6, 1:3] = 2
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct)
    return ct, label_image


def age(*paths: str) -> None:
    for path in paths:
        os.utime(path, (OLD, OLD))


def mtimes(inputs) -> tuple[float, float, float]:
    return tuple(os.stat(path).st_mtime for path in (inputs.ct_path, inputs.labels_path, inputs.table_path))


def test_writes_the_three_files(tmp_path):
    ct, labels = images()
    inputs = write_generation_inputs(ct, labels, ["femur_left", "hip_left"], tmp_path / "inputs", "pelvis")
    assert inputs.ct_path == str(tmp_path / "inputs" / "pelvis.nrrd")
    assert inputs.labels_path == str(tmp_path / "inputs" / "pelvis-labels.nrrd")
    assert open(inputs.table_path, encoding="utf-8").read() == "id,structure\n1,femur_left\n2,hip_left\n"
    for path, image in ((inputs.ct_path, ct), (inputs.labels_path, labels)):
        assert same_image(path, image)
        np.testing.assert_allclose(sitk.ReadImage(path).GetDirection(), image.GetDirection())
    assert sorted(os.listdir(tmp_path / "inputs")) == ["pelvis-labels.csv", "pelvis-labels.nrrd", "pelvis.nrrd"]


def test_unchanged_files_are_not_rewritten_changed_ones_are(tmp_path):
    ct, labels = images()
    names = ["femur_left", "hip_left"]
    inputs = write_generation_inputs(ct, labels, names, tmp_path, "case")
    age(inputs.ct_path, inputs.labels_path, inputs.table_path)

    assert write_generation_inputs(ct, labels, names, tmp_path, "case") == inputs
    assert mtimes(inputs) == (OLD, OLD, OLD)

    changed = sitk.Image(ct)
    changed[3, 3, 3] = int(changed[3, 3, 3]) + 1  # one voxel
    write_generation_inputs(changed, labels, names, tmp_path, "case")
    ct_time, labels_time, table_time = mtimes(inputs)
    assert ct_time > OLD and (labels_time, table_time) == (OLD, OLD)
    assert same_image(inputs.ct_path, changed)

    age(inputs.ct_path)
    write_generation_inputs(changed, labels, ["femur_left", "hip_right"], tmp_path, "case")
    assert mtimes(inputs)[:2] == (OLD, OLD) and mtimes(inputs)[2] > OLD
    assert open(inputs.table_path, encoding="utf-8").read() == label_table_text(["femur_left", "hip_right"])


def test_a_dataset_is_not_given_other_inputs(tmp_path):
    ct, labels = images()
    names = ["femur_left", "hip_left"]
    inputs = write_generation_inputs(ct, labels, names, tmp_path / "inputs", "case")
    (tmp_path / "dataset.json").write_text("{}")
    age(inputs.ct_path, inputs.labels_path, inputs.table_path)
    write_generation_inputs(ct, labels, names, tmp_path / "inputs", "case")  # the same inputs: fine

    moved = sitk.Image(ct)
    moved.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(XreconInputError, match="case.nrrd differs"):
        write_generation_inputs(moved, labels, names, tmp_path / "inputs", "case")
    with pytest.raises(XreconInputError, match="other structures"):
        write_generation_inputs(ct, labels, names[:1], tmp_path / "inputs", "case")
    assert mtimes(inputs) == (OLD, OLD, OLD)
    assert same_image(inputs.ct_path, ct)


@pytest.mark.parametrize("change", ["size", "type", "origin", "spacing", "direction", "voxels", "missing"])
def test_same_image_sees_every_difference(tmp_path, change):
    ct, _ = images()
    path = str(tmp_path / "ct.nrrd")
    sitk.WriteImage(ct, path, True)
    assert same_image(path, ct)
    other = sitk.Image(ct)
    if change == "size":
        other = ct[:, :, :5]
    elif change == "type":
        other = sitk.Cast(ct, sitk.sitkFloat32)
    elif change == "origin":
        other.SetOrigin((-30.0, 12.5, 100.01))
    elif change == "spacing":
        other.SetSpacing((0.8, 0.9, 2.0))
    elif change == "direction":
        other.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    elif change == "voxels":
        other[0, 0, 0] = int(other[0, 0, 0]) + 1
    else:
        path = str(tmp_path / "none.nrrd")
    assert not same_image(path, other)


@pytest.mark.parametrize("name, stem", [
    ("Pelvis CT 3", "Pelvis_CT_3"), ("case-7_b", "case-7_b"), ("ct", "case_ct"), ("Image", "case_Image"),
    ("", "case_ct"), ("  ", "case_ct"), ("über/../x", "ber_x"), ("inputs", "case_inputs")])
def test_input_file_stem(name, stem):
    assert input_file_stem(name) == stem


def test_a_case_is_named_after_its_file_or_the_folder_of_a_generic_one(tmp_path):
    """A case's name keys its samples and its --landmarks-dir file: thorax-dicom-totalseg/dicom is
    the thorax case, not "dicom"."""
    from SingleImageReconLib.commands.case_arguments import case_name

    (tmp_path / "thorax-dicom-totalseg" / "dicom").mkdir(parents=True)
    (tmp_path / "lumbar" / "series_3").mkdir(parents=True)
    assert case_name(tmp_path / "thorax-dicom-totalseg" / "dicom") == "thorax-dicom-totalseg"
    assert case_name(tmp_path / "lumbar" / "series_3") == "series_3"
    assert case_name(tmp_path / "abdomen-pelvis" / "ct.nii.gz") == "abdomen-pelvis"
    assert case_name(tmp_path / "abdomen-pelvis" / "patient7.nii.gz") == "patient7"
