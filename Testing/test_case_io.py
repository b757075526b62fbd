"""CT and label I/O on real data: sample cases, a DICOM series, a Slicer .seg.nrrd."""

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import run_xrecon
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct
from SyntheticDataGenLib.cases.labels import read_segmentation
from SyntheticDataGenLib.cases.sample_data import list_sample_cases, sample_case


def independent_structure_stats(labels_path, table_path):
    """Voxel count, volume and RAS bounds per structure, computed with SimpleITK's own filters."""
    labels = sitk.ReadImage(str(labels_path))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    names = {int(line.split(",")[0]): line.split(",")[1] for line in Path(table_path).read_text().splitlines()[1:]}
    result = {}
    for label in stats.GetLabels():
        x, y, z, sx, sy, sz = stats.GetBoundingBox(label)
        corners = [labels.TransformIndexToPhysicalPoint((i, j, k))
                   for i in (x, x + sx - 1) for j in (y, y + sy - 1) for k in (z, z + sz - 1)]
        ras = np.array(corners) * [-1, -1, 1]
        result[names[label]] = (stats.GetNumberOfPixels(label), stats.GetPhysicalSize(label) / 1000,
                                ras.min(axis=0), ras.max(axis=0))
    return result


def test_sample_cases_are_bundled():
    assert {"abdomen-pelvis", "chest"} <= set(list_sample_cases())
    total = sum(f.stat().st_size for name in list_sample_cases()
                for f in sample_case(name).ct_path.parent.iterdir())
    assert total < 15e6


@pytest.mark.parametrize("name, bones", [
    ("abdomen-pelvis", {"femur_left", "femur_right", "hip_left", "hip_right", "sacrum", "vertebrae_L3"}),
    ("chest", {"vertebrae_T6", "rib_left_5", "rib_right_5", "sternum"}),
])
def test_xrecon_info_agrees_with_simpleitk(name, bones):
    case = sample_case(name)
    result = run_xrecon("info", "--case", name)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    ct = sitk.ReadImage(str(case.ct_path))
    assert info["ct"]["size"] == list(ct.GetSize())
    np.testing.assert_allclose(info["ct"]["spacing_mm"], ct.GetSpacing())
    np.testing.assert_allclose(info["ct"]["origin_ras_mm"], np.array(ct.GetOrigin()) * [-1, -1, 1])
    np.testing.assert_allclose(np.array(info["ct"]["direction_ras"]),
                               np.diag([-1, -1, 1]) @ np.array(ct.GetDirection()).reshape(3, 3))
    minmax = sitk.MinimumMaximumImageFilter()
    minmax.Execute(ct)
    assert info["ct"]["hu_range"] == [minmax.GetMinimum(), minmax.GetMaximum()]
    expected = independent_structure_stats(case.labels_path, case.table_path)
    assert bones <= set(info["structures"])
    assert set(info["structures"]) == set(expected)
    for structure, (count, volume_ml, low, high) in expected.items():
        got = info["structures"][structure]
        assert got["voxels"] == count
        assert got["volume_ml"] == pytest.approx(volume_ml, rel=1e-9)
        np.testing.assert_allclose(got["bounds_ras_mm"], [low, high], atol=1e-6)


def test_info_selects_structures():
    result = run_xrecon("info", "--case", "abdomen-pelvis", "--structures", "femur_left,sacrum")
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)["structures"]) == ["femur_left", "sacrum"]


def test_dicom_series_loads_with_simpleitk_series_geometry(shared_data):
    folder = shared_data / "thorax-dicom-totalseg" / "dicom"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reference = reader.Execute()
    ct = read_ct(folder)
    assert ct.GetSize() == reference.GetSize()
    np.testing.assert_allclose(ijk_to_ras(ct), ijk_to_ras(reference))
    assert np.array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(reference))


def test_dicom_labels_with_flipped_axes_are_moved_onto_the_ct_without_loss(shared_data):
    """The thorax label map stores rows bottom-up: same voxel centres, another axis order."""
    case = shared_data / "thorax-dicom-totalseg"
    ct = read_ct(case / "dicom")
    raw = sitk.ReadImage(str(case / "labels.nii.gz"))
    segmentation = read_segmentation(case / "labels.nii.gz", case / "labels.csv", reference=ct)
    assert segmentation.reference.GetSize() == ct.GetSize()
    np.testing.assert_allclose(ijk_to_ras(segmentation.reference), ijk_to_ras(ct))
    flipped_back = sitk.GetArrayViewFromImage(raw)[:, ::-1, :]
    assert np.array_equal(sitk.GetArrayViewFromImage(segmentation.reference), flipped_back)
    result = run_xrecon("info", "--ct", case / "dicom", "--labels", case / "labels.nii.gz",
                        "--labels-table", case / "labels.csv", "--structures", "vertebrae_T12")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["structures"]["vertebrae_T12"]["voxels"] == int(
        np.count_nonzero(flipped_back == 32))


def test_slicer_seg_nrrd_loads_by_segment_name():
    import slicerio

    data = Path(slicerio.__file__).parent / "data"
    ct = read_ct(data / "CTChest4.nrrd")
    segmentation = read_segmentation(data / "Segmentation.seg.nrrd", reference=ct)
    assert "ribs" in segmentation.names and "thoracic vertebral column" in segmentation.names
    independent = slicerio.read_segmentation(str(data / "Segmentation.seg.nrrd"))
    expected = slicerio.segment_mask(independent, slicerio.segment_from_name(independent, "ribs"))
    assert segmentation.voxel_counts()["ribs"] == int(np.count_nonzero(expected)) > 0
    assert np.array_equal(segmentation.mask_array("ribs").transpose(2, 1, 0), expected.astype(bool))
    overlapping = read_segmentation(data / "SegmentationOverlapping.seg.nrrd", reference=ct)
    assert overlapping.voxel_counts()["overlapping sphere"] > 0
    both = overlapping.mask_array("overlapping sphere") & overlapping.mask_array("tissue")
    assert both.any(), "overlapping segments live on separate layers"
    result = run_xrecon("info", "--ct", data / "CTChest4.nrrd", "--labels", data / "Segmentation.seg.nrrd",
                        "--structures", "ribs")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["structures"]["ribs"]["voxels"] == int(np.count_nonzero(expected))


def test_lumbar_case_with_oblique_axis_order_loads(shared_data):
    case = shared_data / "lumbar-tptbox"
    ct = read_ct(case / "ct.nii.gz")
    segmentation = read_segmentation(case / "labels.nii.gz", case / "labels.csv", reference=ct)
    assert segmentation.select(None) == ["vertebrae_L2", "vertebrae_L3", "vertebrae_L4"]
