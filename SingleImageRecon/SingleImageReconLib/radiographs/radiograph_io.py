"""Read a radiograph for reconstruction: NRRD, NIfTI, MHA, DICOM or an ordinary picture (PNG, ...).

A radiograph is one 2D image ``[height, width]``. 3D files holding one slice (what ``xrecon
render`` writes, a detector image placed in RAS) are accepted. A greyscale picture stored as RGB
is converted to grey; a colour picture is refused (``radiograph_checks``).

DICOM pixel values become what a radiologist is shown, bone bright:

1. RescaleSlope / RescaleIntercept (0028,1053 / 0028,1052) are applied (by ITK).
2. PhotometricInterpretation (0028,0004) MONOCHROME1 (the lowest value is shown white) is
   inverted. ITK's GDCM reader (ITK >= 5.1, so every SimpleITK this project supports) already
   inverts MONOCHROME1 pixels while the tag still says MONOCHROME1, so the pixels are not
   inverted a second time here; that double inversion once handed the network dark bone.
3. The VOI transform, where the file has one: WindowCenter / WindowWidth (0028,1050 / 0028,1051;
   the first value of several) with VOILUTFunction (0028,1056: LINEAR, the default, LINEAR_EXACT
   or SIGMOID), else, where pydicom is installed, the first VOI LUT of the VOI LUT Sequence
   (0028,3010). Either maps the window to [0, 1], clipping values outside it (for MONOCHROME1
   the window is applied to the file's own values and the result is then inverted, 1 - y). A
   window that is not a number or has no positive width is ignored. Without a VOI transform the
   values are kept as they are; the network's input is normalised downstream.

The projection geometry comes from a DICOM file's tags when it has them, with the defaults of
``dicom_geometry`` for missing ones; otherwise the caller must supply it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SyntheticDataGenLib.cases.ct_io import check_nifti_file, itk_reason, native_output_silenced
from SyntheticDataGenLib.projection.dicom_geometry import geometry_from_dicom
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

from .radiograph_checks import check_not_colour

_PHOTOMETRIC = "0028|0004"
_BITS_ALLOCATED = "0028|0100"
_BITS_STORED = "0028|0101"
_PIXEL_REPRESENTATION = "0028|0103"
_WINDOW_CENTER = "0028|1050"
_WINDOW_WIDTH = "0028|1051"
_RESCALE_INTERCEPT = "0028|1052"
_RESCALE_SLOPE = "0028|1053"
_VOI_LUT_FUNCTION = "0028|1056"


@dataclass
class Radiograph:
    """A radiograph as float32 ``[height, width]``, and its geometry when the file states one.

    Attributes:
        image: pixel values, bone bright: as stored, or for DICOM after its VOI window (in [0, 1])
            and MONOCHROME1 inversion.
        geometry: from DICOM tags (missing ones filled in and listed in ``extra["assumptions"]``),
            else None.
        path: where it came from.
    """

    image: np.ndarray
    geometry: ProjectionGeometry | None
    path: Path


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        header = handle.read(132)
    return len(header) == 132 and header[128:132] == b"DICM"


def _grey_pixels(image: sitk.Image, path: Path) -> np.ndarray:
    """The image's pixels as float32 ``[height, width]``: one channel, or grey from RGB(A) or grey+alpha."""
    channels = sitk.GetArrayFromImage(image)
    if np.iscomplexobj(channels):
        raise XreconInputError(f"radiograph {path} holds complex numbers; give the image's intensities")
    if image.GetNumberOfComponentsPerPixel() == 1:
        channels = channels[..., np.newaxis]
    # one-slice 3D files (detector images) become 2D
    channels = np.squeeze(channels, axis=tuple(axis for axis, n in enumerate(channels.shape[:-1]) if n == 1))
    if channels.ndim != 3 or min(channels.shape[:2]) < 2:
        raise XreconInputError(f"radiograph {path} must be one 2D image, got an array of shape "
                               f"{sitk.GetArrayViewFromImage(image).shape}")
    if channels.shape[-1] < 3:
        return channels[..., 0].astype(np.float32)  # grey, or grey and alpha
    rgb = channels[..., :3].astype(np.float32)  # alpha, if any, left out
    check_not_colour(rgb, path.name)
    return rgb.mean(axis=-1)


def _text(image: sitk.Image, tag: str) -> str:
    return image.GetMetaData(tag).strip().upper() if image.HasMetaDataKey(tag) else ""


def _first_number(image: sitk.Image, tag: str) -> float | None:
    """The first value of a numeric DICOM tag; None where it is missing or not a number."""
    try:
        return float(_text(image, tag).split("\\")[0])
    except ValueError:
        return None


def _monochrome1_modality_values(image: sitk.Image, array: np.ndarray) -> np.ndarray:
    """The modality values (stored values after rescale) of a MONOCHROME1 file, undoing ITK's inversion.

    GDCM inverts a MONOCHROME1 stored value s into M - s (``ImageCodec::DoInvertMonochrome``:
    M = 2**BitsStored - 1 for unsigned pixels of more than 8 bits, 255 for unsigned bytes, -1,
    a bit flip, for signed pixels), then ITK rescales: array = slope * (M - s) + intercept. The
    modality value slope * s + intercept is therefore slope * M + 2 * intercept - array.
    """
    slope = _first_number(image, _RESCALE_SLOPE) or 1.0
    intercept = _first_number(image, _RESCALE_INTERCEPT) or 0.0
    if _text(image, _PIXEL_REPRESENTATION) == "1":
        reflection = -1.0
    elif _text(image, _BITS_ALLOCATED) == "8":
        reflection = 255.0
    else:
        reflection = 2.0 ** int(_first_number(image, _BITS_STORED) or 16) - 1
    return slope * reflection + 2 * intercept - array


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) mapped to [0, 1] instead of the output bit range."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        low, span = center - width / 2, width
    else:  # LINEAR: the standard's half-pixel offsets
        low, span = center - 0.5 - (width - 1) / 2, width - 1
    if span <= 0:  # a width of 1: a threshold
        return (values > low).astype(np.float32)
    return np.clip((values - low) / span, 0.0, 1.0)


def _voi_lut(path: Path, values: np.ndarray) -> np.ndarray | None:
    """The file's first VOI LUT applied to ``values`` and scaled to [0, 1]; None without a VOI LUT
    Sequence, or without pydicom (an optional package; GDCM does not expose the sequence)."""
    try:
        import pydicom
        from pydicom.pixels import apply_voi
    except ImportError:
        return None
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    if not dataset.get("VOILUTSequence"):
        return None
    bits = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
    return apply_voi(np.rint(values).astype(np.int64), dataset) / float(2 ** bits - 1)


def _dicom_display(image: sitk.Image, array: np.ndarray, path: Path) -> np.ndarray:
    """Bone-bright values of a grey DICOM radiograph: its VOI transform applied where it has one."""
    monochrome1 = _text(image, _PHOTOMETRIC) == "MONOCHROME1"
    values = _monochrome1_modality_values(image, array) if monochrome1 else array
    center, width = _first_number(image, _WINDOW_CENTER), _first_number(image, _WINDOW_WIDTH)
    if center is not None and width is not None and width > 0:
        shown = _window(values, center, width, _text(image, _VOI_LUT_FUNCTION))
    else:
        shown = _voi_lut(path, values)
        if shown is None:
            return array  # ITK's values, bone bright already
    return (1.0 - shown if monochrome1 else shown).astype(np.float32)


def read_radiograph(path: str | os.PathLike) -> Radiograph:
    """Read one radiograph; missing, unreadable, non-2D, colour, NaN-holding or blank images raise
    :class:`XreconInputError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise XreconInputError(f"radiograph not found: {path}")
    dicom = _is_dicom(path)
    try:
        if path.name.lower().endswith((".nii", ".nii.gz")):
            check_nifti_file(path, "radiograph")
        with native_output_silenced():
            image = sitk.ReadImage(str(path), imageIO="GDCMImageIO" if dicom else "")
    except RuntimeError as error:
        raise XreconInputError(f"cannot read radiograph {path}: {itk_reason(error)}") from None
    array = _grey_pixels(image, path)
    if not np.isfinite(array).all():
        raise XreconInputError(f"radiograph {path} holds NaN or infinite values")
    if float(array.max() - array.min()) <= 0:
        raise XreconInputError(f"radiograph {path} is blank (every pixel is {float(array.flat[0])})")
    geometry = None
    if dicom:
        if image.GetNumberOfComponentsPerPixel() == 1:
            array = _dicom_display(image, array, path)
        try:
            geometry = geometry_from_dicom(path, assume_missing=True)
        except XreconInputError:
            geometry = None  # a tag that is not a number: the caller asks for --geometry
    return Radiograph(array, geometry, path)


def check_fits(radiograph: Radiograph, geometry: ProjectionGeometry) -> None:
    """Raise unless the image has the geometry's detector size."""
    height, width = radiograph.image.shape
    if (width, height) != tuple(geometry.size_px):
        raise XreconInputError(
            f"radiograph {radiograph.path.name} is {width}x{height} px but its geometry's detector is "
            f"{geometry.size_px[0]}x{geometry.size_px[1]} px; give the geometry of this image")
