"""Projection geometry from a DICOM radiograph's tags."""

import numpy as np
import pytest
import SimpleITK as sitk

from SyntheticDataGenLib.projection.dicom_geometry import geometry_from_dicom
from SyntheticDataGenLib.errors import XreconInputError


def write_radiograph(path, tags, size=(300, 200)):
    image = sitk.Image(list(size), sitk.sitkUInt16)
    if "0018|1164" in tags:  # GDCM writes ImagerPixelSpacing from the image spacing
        row, column = (float(x) for x in tags["0018|1164"].split("\\"))
        image.SetSpacing([column, row])
    for key, value in {"0008|0060": "DX", **tags}.items():
        image.SetMetaData(key, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    writer.Execute(image)
    return path


def test_geometry_comes_from_the_tags(tmp_path):
    path = write_radiograph(tmp_path / "xray.dcm", {
        "0018|1110": "1150.0", "0018|1111": "950.0", "0018|1164": "0.2\\0.15", "0018|5101": "PA"})
    geometry = geometry_from_dicom(path)
    assert geometry.size_px == (300, 200)
    np.testing.assert_allclose(geometry.pixel_spacing_mm, [0.15, 0.2])  # (column, row) = (u, v)
    assert geometry.source_to_detector_mm == pytest.approx(1150.0)
    assert np.linalg.norm(geometry.source_ras_mm) == pytest.approx(950.0)  # isocentre at the origin
    assert geometry.source_ras_mm[1] < 0, "PA: source behind the patient"
    assert geometry.extra["assumptions"] == []


def test_c_arm_angles_come_from_the_positioner_tags(tmp_path):
    path = write_radiograph(tmp_path / "xa.dcm", {
        "0008|0060": "XA", "0018|1110": "1000", "0018|1111": "700", "0018|1164": "0.3\\0.3",
        "0018|1510": "30", "0018|1511": "-15"})
    geometry = geometry_from_dicom(path)
    detector = geometry.detector_center_ras_mm
    assert detector[0] < 0 and detector[2] < 0, "LAO 30 / caudal 15: detector to the left and towards the feet"


def test_missing_distance_is_a_clear_error(tmp_path):
    path = write_radiograph(tmp_path / "bare.dcm", {"0018|1164": "0.2\\0.2"})
    with pytest.raises(XreconInputError, match="DistanceSourceToDetector"):
        geometry_from_dicom(path)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom" * 100)
    with pytest.raises(XreconInputError, match="cannot read"):
        geometry_from_dicom(junk)
