"""Read a radiograph for reconstruction: NRRD, NIfTI, MHA, DICOM or an ordinary picture (PNG, ...).

A radiograph is one 2D image ``[height, width]``. 3D files holding one slice (what ``xrecon
render`` writes, a detector image placed in RAS) are accepted. Colour pictures are converted
to grey. The projection geometry comes from a DICOM file's tags when it has them; otherwise
the caller must supply it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SyntheticDataGenLib.ct_io import check_nifti_file, itk_reason, native_output_silenced
from SyntheticDataGenLib.dicom_geometry import geometry_from_dicom
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.geometry import ProjectionGeometry

_DICOM_SUFFIXES = (".dcm", ".dicom", "")


@dataclass
class Radiograph:
    """A radiograph as float32 ``[height, width]``, and its geometry when the file states one.

    Attributes:
        image: pixel values as stored (DICOM MONOCHROME1 already inverted so that bone is bright).
        geometry: from DICOM tags, else None.
        path: where it came from.
    """

    image: np.ndarray
    geometry: ProjectionGeometry | None
    path: Path


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        header = handle.read(132)
    return len(header) == 132 and header[128:132] == b"DICM"


def read_radiograph(path: str | os.PathLike) -> Radiograph:
    """Read one radiograph; missing, unreadable, non-2D, NaN-holding or blank images raise
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
    if image.GetNumberOfComponentsPerPixel() > 1:
        components = image.GetNumberOfComponentsPerPixel()
        image = sitk.VectorIndexSelectionCast(image, 0) if components == 2 else sum(
            sitk.VectorIndexSelectionCast(image, c, sitk.sitkFloat32) for c in range(3)) / 3.0
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array = np.squeeze(array)  # one-slice 3D files (detector images) become 2D
    if array.ndim != 2 or min(array.shape) < 2:
        raise XreconInputError(f"radiograph {path} must be one 2D image, got an array of shape "
                               f"{sitk.GetArrayViewFromImage(image).shape}")
    if not np.isfinite(array).all():
        raise XreconInputError(f"radiograph {path} holds NaN or infinite values")
    if float(array.max() - array.min()) <= 0:
        raise XreconInputError(f"radiograph {path} is blank (every pixel is {float(array.flat[0])})")
    geometry = None
    if dicom:
        if image.HasMetaDataKey("0028|0004") and image.GetMetaData("0028|0004").strip() == "MONOCHROME1":
            array = array.max() + array.min() - array
        try:
            geometry = geometry_from_dicom(path)
        except XreconInputError:
            geometry = None  # the caller asks for --geometry
    return Radiograph(array, geometry, path)


def check_fits(radiograph: Radiograph, geometry: ProjectionGeometry) -> None:
    """Raise unless the image has the geometry's detector size."""
    height, width = radiograph.image.shape
    if (width, height) != tuple(geometry.size_px):
        raise XreconInputError(
            f"radiograph {radiograph.path.name} is {width}x{height} px but its geometry's detector is "
            f"{geometry.size_px[0]}x{geometry.size_px[1]} px; give the geometry of this image")
