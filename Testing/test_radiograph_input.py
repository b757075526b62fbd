"""Real radiographs in: DICOM polarity, VOI window and missing geometry tags; implausible input refused.

DICOM files are written with pydicom, which (unlike SimpleITK's writer) keeps the
PhotometricInterpretation, window and spacing tags exactly as given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import xrecon_in_process
from SingleImageReconLib import cli
from SingleImageReconLib.commands.reconstruct import resolve_geometries
from SingleImageReconLib.radiographs.radiograph_checks import check_plausible, neighbour_correlation
from SingleImageReconLib.radiographs.radiograph_io import read_radiograph
from SyntheticDataGenLib.projection.dicom_geometry import geometry_from_dicom
from SyntheticDataGenLib.errors import XreconInputError

_DTYPES = {(8, 0): np.uint8, (16, 0): np.uint16, (16, 1): np.int16}


def write_dicom(path: Path, stored: np.ndarray, photometric: str = "MONOCHROME2", bits: tuple = (16, 12, 0),
                **tags) -> Path:
    """A DX file holding ``stored`` [rows, columns] as its stored values; ``bits`` = (allocated, stored, signed)."""
    allocated, bits_stored, signed = bits
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    dataset.Rows, dataset.Columns = stored.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = allocated, bits_stored, bits_stored - 1
    dataset.PixelRepresentation = signed
    for key, value in tags.items():
        setattr(dataset, key, value)
    dataset.PixelData = stored.astype(_DTYPES[allocated, signed]).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


def bone_phantom(rows: int = 64, columns: int = 80, background: int = 500, bone: int = 3000) -> np.ndarray:
    """Smooth soft tissue with a bright 'bone' block, in the MONOCHROME2 sense (bone the higher value)."""
    ramp = np.linspace(0, 200, columns)[np.newaxis, :] * np.ones((rows, 1))
    image = background + ramp
    image[20:40, 25:50] = bone
    return np.rint(image).astype(np.int64)


def is_bone_bright(image: np.ndarray) -> bool:
    return float(image[20:40, 25:50].mean()) > float(image[:, :20].mean())


def dicom_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window, mapped to [0, 1]."""
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1)


def reconstruct_args(*options: str):
    return cli.build_parser().parse_args(["reconstruct", *map(str, options), "--out", "unused"])



# ----------------------------------------------------------------------------------------------
# Polarity and VOI window


def test_monochrome1_dicom_is_read_bone_bright(tmp_path):
    phantom = bone_phantom()
    path = write_dicom(tmp_path / "m1.dcm", 4095 - phantom, "MONOCHROME1")  # bone stored dark
    image = read_radiograph(path).image
    assert is_bone_bright(image)
    np.testing.assert_array_equal(image, phantom)  # inverted once, about the 12-bit range


def test_monochrome2_dicom_is_kept_as_stored(tmp_path):
    phantom = bone_phantom()
    image = read_radiograph(write_dicom(tmp_path / "m2.dcm", phantom, "MONOCHROME2")).image
    assert is_bone_bright(image)
    np.testing.assert_array_equal(image, phantom)


def test_window_is_applied_after_rescale_and_maps_to_unit_range(tmp_path):
    phantom = bone_phantom()
    path = write_dicom(tmp_path / "w.dcm", phantom, RescaleSlope="2", RescaleIntercept="-100",
                       WindowCenter="1200\\3000", WindowWidth="1000\\4000")  # the first window counts
    image = read_radiograph(path).image
    np.testing.assert_allclose(image, dicom_window(2.0 * phantom - 100, 1200, 1000), atol=1e-6)
    assert image.max() == 1 and 0 < image[0, 40] < 1  # bone above the window: clipped


# bone stored dark (MONOCHROME1) in each pixel format: (allocated, stored, signed) -> stored values
_MONOCHROME1_STORED = {
    (16, 12, 0): lambda phantom: 4095 - phantom,
    (16, 16, 0): lambda phantom: 60000 - 16 * phantom,
    (16, 16, 1): lambda phantom: 20000 - 12 * phantom,
    (8, 8, 0): lambda phantom: 250 - phantom // 16,
}


@pytest.mark.parametrize("bits", list(_MONOCHROME1_STORED), ids=["u12", "u16", "s16", "u8"])
def test_window_of_a_monochrome1_dicom_is_applied_to_its_own_values_then_inverted(tmp_path, bits):
    stored = _MONOCHROME1_STORED[bits](bone_phantom())
    modality = 0.5 * stored + 10
    center, width = float(np.median(modality)), float(np.ptp(modality) * 0.8)
    path = write_dicom(tmp_path / "m1w.dcm", stored, "MONOCHROME1", bits, RescaleSlope="0.5",
                       RescaleIntercept="10", WindowCenter=f"{center:g}", WindowWidth=f"{width:g}")
    image = read_radiograph(path).image
    np.testing.assert_allclose(image, 1 - dicom_window(modality, center, width), atol=1e-6)
    assert is_bone_bright(image)


def test_voi_lut_sequence_is_applied_where_there_is_no_window(tmp_path):
    phantom = bone_phantom()
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]  # entries, first stored value mapped, bits per entry
    item.LUTData = (np.sqrt(np.arange(4096) / 4095) * 65535).astype(np.uint16).tobytes()
    path = write_dicom(tmp_path / "lut.dcm", phantom, VOILUTSequence=Sequence([item]))
    image = read_radiograph(path).image
    np.testing.assert_allclose(image, np.sqrt(phantom / 4095), atol=2e-4)


# ----------------------------------------------------------------------------------------------
# Geometry where the file has no spacing or distances


@pytest.mark.parametrize("spacing_tags", [{}, {"ImagerPixelSpacing": "0\\0"}], ids=["missing", "zero"])
def test_dicom_without_spacing_takes_the_default_field_of_view_with_a_warning(tmp_path, capsys, spacing_tags):
    path = write_dicom(tmp_path / "chest.dcm", bone_phantom(), **spacing_tags)  # 80 columns, 64 rows
    capsys.readouterr()
    (geometry,) = resolve_geometries(reconstruct_args("--image", path), [read_radiograph(path)])
    np.testing.assert_allclose(geometry.pixel_spacing_mm, [430 / 80, 430 / 80])
    assert geometry.source_to_detector_mm == pytest.approx(1100)
    assert np.linalg.norm(geometry.source_ras_mm) == pytest.approx(900)  # isocentre at the origin
    assert len(geometry.extra["assumptions"]) == 3  # spacing, distances, view position
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("xrecon reconstruct: warning: chest.dcm: ")
    assert "430 mm field of view" in lines[0] and "--field-of-view-mm" in lines[0]
    assert "1100 mm" in lines[0] and "900 mm" in lines[0]


def test_field_of_view_sets_the_spacing_of_a_dicom_without_spacing(tmp_path, capsys):
    path = write_dicom(tmp_path / "chest.dcm", bone_phantom(), DistanceSourceToDetector="1800",
                       DistanceSourceToPatient="1650", ViewPosition="PA")
    capsys.readouterr()
    args = reconstruct_args("--image", path, "--field-of-view-mm", "350")
    (geometry,) = resolve_geometries(args, [read_radiograph(path)])
    np.testing.assert_allclose(geometry.pixel_spacing_mm, [350 / 80, 350 / 80])
    assert geometry.source_to_detector_mm == pytest.approx(1800)
    assert geometry.extra["assumptions"] == []
    assert capsys.readouterr().err == ""  # nothing was assumed


def test_tagged_spacing_is_used_and_pixel_spacing_is_a_fallback(tmp_path):
    tags = {"DistanceSourceToDetector": "1100", "DistanceSourceToPatient": "1000", "ViewPosition": "AP"}
    imager = write_dicom(tmp_path / "imager.dcm", bone_phantom(), ImagerPixelSpacing="0.2\\0.15", **tags)
    assert geometry_from_dicom(imager).pixel_spacing_mm.tolist() == [0.15, 0.2]  # (column, row) = (u, v)
    plain = write_dicom(tmp_path / "plain.dcm", bone_phantom(), PixelSpacing="0.3\\0.25", **tags)
    geometry = geometry_from_dicom(plain)
    assert geometry.pixel_spacing_mm.tolist() == [0.25, 0.3]
    assert geometry.extra["assumptions"] == ["no ImagerPixelSpacing: PixelSpacing taken as the spacing at the detector"]


def test_field_of_view_gives_a_picture_an_ap_geometry(tmp_path, capsys, shared_data):
    png = shared_data / "radiographs" / "nih-chestxray14-00000001_000.png"  # 512 x 512
    radiographs = [read_radiograph(png)]
    capsys.readouterr()
    (geometry,) = resolve_geometries(reconstruct_args("--image", png, "--field-of-view-mm", "400"), radiographs)
    assert geometry.extra["preset"] == "ap"
    np.testing.assert_allclose(geometry.pixel_spacing_mm, [400 / 512, 400 / 512])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no --geometry: taken as an AP view" in lines[0], lines
    # an explicit preset: nothing assumed; --pixel-spacing-mm wins over --field-of-view-mm
    args = reconstruct_args("--image", png, "--geometry", "ap", "--field-of-view-mm", "400",
                            "--pixel-spacing-mm", "0.5", "0.6")
    (geometry,) = resolve_geometries(args, radiographs)
    np.testing.assert_allclose(geometry.pixel_spacing_mm, [0.5, 0.6])
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------------------------
# Plausibility


def colour_image(size: int = 256) -> np.ndarray:
    """A smooth colour picture: three unrelated smooth channels (uint8 RGB)."""
    v, u = np.mgrid[0:size, 0:size] / size
    channels = [np.sin(6 * u), np.cos(5 * v), np.sin(4 * (u + v))]
    return np.stack([np.rint(127.5 * (c + 1)) for c in channels], axis=-1).astype(np.uint8)


def noise_image(size: int = 256) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)


@pytest.fixture(scope="module")
def drr(tmp_path_factory) -> np.ndarray:
    """A DRR of the sample case, as ``xrecon render`` writes it (small detector: quick)."""
    out = tmp_path_factory.mktemp("drr")
    assert cli.main(["render", "--case", "abdomen-pelvis", "--structures", "femur_left", "--detector-size-px",
                     "128", "128", "--pixel-spacing-mm", "3.2", "3.2", "--out", str(out)]) == 0
    return read_radiograph(out / "drr.nrrd").image


def test_real_radiographs_and_drrs_pass(shared_data, drr):
    pictures = sorted((shared_data / "radiographs").glob("*.png"))
    assert len(pictures) == 2
    for path in pictures:
        check_plausible(read_radiograph(path).image, path.name)
    check_plausible(drr, "drr.nrrd")
    # heavy photon noise, 30 photons in the brightest pixel, is still a radiograph
    photons = np.random.default_rng(1).poisson(30 * np.exp(-drr) / np.exp(-drr).max())
    check_plausible(photons.astype(np.float32), "noisy")


def test_greyscale_saved_as_rgb_is_read_as_grey(tmp_path, shared_data):
    grey = np.asarray(Image.open(shared_data / "radiographs" / "nih-chestxray14-00027426_000.png"))
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_radiograph(tmp_path / "rgb.png").image, grey)


def test_statistic_separates_noise_from_radiographs(drr):
    assert abs(neighbour_correlation(noise_image().astype(np.float32))) < 0.05
    assert neighbour_correlation(drr) > 0.95


def test_colour_picture_is_refused(tmp_path):
    Image.fromarray(colour_image()).save(tmp_path / "photo.png")
    with pytest.raises(XreconInputError, match="photo.png is a colour image"):
        read_radiograph(tmp_path / "photo.png")


def test_implausible_input_exits_2_with_one_line_before_the_network(tmp_path, capfd):
    Image.fromarray(colour_image()).save(tmp_path / "colour.png")
    Image.fromarray(noise_image()).save(tmp_path / "noise.png")
    almost_blank = np.full((256, 256), 7.0, np.float32)
    almost_blank[10, 10:20] = 9.0
    sitk.WriteImage(sitk.GetImageFromArray(almost_blank), str(tmp_path / "almost_blank.nrrd"))
    cases = {"colour.png": ["colour image", "greyscale"], "noise.png": ["looks like noise", "correlate"],
             "almost_blank.nrrd": ["nearly constant"]}
    for name, words in cases.items():
        out = tmp_path / f"out_{name}"
        # an unknown bundle: reaching the network would be a different error
        status, stdout, stderr = xrecon_in_process(capfd, "reconstruct", "--image", tmp_path / name, "--geometry", "ap",
                                                   "--pixel-spacing-mm", "1", "1", "--bundle", tmp_path / "no_bundle",
                                                   "--out", out)
        assert status == 2, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("xrecon reconstruct: error: radiograph "), (name, stderr)
        assert all(word in lines[0] for word in words), (name, lines[0])
        assert stdout == "" and not out.exists()
