"""Reading CT volumes (NIfTI, NRRD, MHA, DICOM series) and their voxel-to-RAS geometry.

SimpleITK reads every format and gives geometry in LPS; everything this package hands out is
RAS (Slicer's world), so the conversion lives here, once.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import XreconInputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

# Air (-1000 HU) or fat (-100 HU) is below this in any CT of a body part, ...
_CT_MIN_BELOW_HU = -150.0
# ... bone is above this, ...
_CT_MAX_ABOVE_HU = 150.0
# ... and nothing in a CT (even metal, clipped by most scanners at 3071 or 31743) is beyond these.
_CT_PLAUSIBLE_HU = (-32768.0, 32767.0)


def ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """4×4 matrix from voxel index (i, j, k) = SimpleITK's (x, y, z) index to RAS mm."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = LPS_TO_RAS @ np.asarray(image.GetOrigin(), dtype=np.float64)
    return matrix


_NIFTI_HEADER_BYTES = 348


def check_nifti_file(path: Path, what: str) -> None:
    """Refuse a NIfTI-1 file that ITK would read wrongly without a word: one whose data ends
    early (ITK fills the rest with zeros) or, for floating-point data, one holding NaN or
    infinity (ITK turns NaN into 0)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    dtype = sitk.GetArrayViewFromImage(sitk.Image([1] * reader.GetDimension(), reader.GetPixelID())).dtype
    count = int(np.prod(reader.GetSize())) * reader.GetNumberOfComponents()
    try:
        with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")) as stream:
            data = stream.read()
    except (EOFError, OSError, zlib.error):
        raise XreconInputError(f"{what} {path} is truncated or corrupt (its gzip stream ends early)") from None
    expected = _NIFTI_HEADER_BYTES + count * dtype.itemsize
    if len(data) < expected:
        raise XreconInputError(f"{what} {path} is truncated: {len(data)} bytes of data, expected at least {expected}")
    if dtype.kind == "f":
        little = int.from_bytes(data[:4], "little") == _NIFTI_HEADER_BYTES
        offset = int(np.frombuffer(data, dtype="<f4" if little else ">f4", count=1, offset=108)[0])
        voxels = np.frombuffer(data, dtype=dtype.newbyteorder("<" if little else ">"), count=count,
                               offset=max(offset, _NIFTI_HEADER_BYTES))
        if not np.isfinite(voxels).all():
            raise XreconInputError(f"{what} {path} holds NaN or infinite values")


@contextlib.contextmanager
def native_output_silenced():
    """Hide what ITK's C++ readers print straight to the process's stdout/stderr."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def itk_reason(error: RuntimeError) -> str:
    """The human part of a SimpleITK exception ("File cannot be read: ..."), on one line."""
    text = str(error)
    match = re.search(r"ERROR:\s*(?:\w+\(0x[0-9a-f]+\):\s*)?(.*)", text, flags=re.S)
    return " ".join((match.group(1) if match else text).split()) or "unknown reason"


def read_image(path: str | os.PathLike, what: str = "image") -> sitk.Image:
    """Read a 3D image file or a DICOM series folder; unreadable input raises XreconInputError."""
    path = Path(path)
    if not path.exists():
        raise XreconInputError(f"{what} not found: {path}")
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise XreconInputError(f"{what} folder {path} holds no DICOM series")
            if len(series) > 1:
                raise XreconInputError(
                    f"{what} folder {path} holds {len(series)} DICOM series; point at a folder with one")
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
            image = reader.Execute()
        else:
            if path.name.lower().endswith((".nii", ".nii.gz")):
                check_nifti_file(path, what)
            with native_output_silenced():
                image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise XreconInputError(f"cannot read {what} {path}: {itk_reason(error)}") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise XreconInputError(
            f"{what} {path} must be a 3D scalar volume, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)")
    return image


def write_image(image: sitk.Image, path: str | os.PathLike, use_compression: bool = True) -> None:
    """``sitk.WriteImage``, with a failed write (a full disk, a folder that vanished) raised as
    the OSError it is rather than ITK's RuntimeError, so that callers clean up and say so."""
    try:
        sitk.WriteImage(image, str(path), useCompression=use_compression)
    except RuntimeError as error:
        reason = itk_reason(error).rsplit(": ", 1)[-1]
        raise OSError(errno.EIO, f"the write failed ({reason}); is the disk full?", str(path)) from None


def read_ct(path: str | os.PathLike) -> sitk.Image:
    """Read a CT in Hounsfield units and check that it looks like one.

    Returns the image as SimpleITK read it (pixel type kept). Raises XreconInputError for an
    unreadable or truncated file, a non-3D volume, NaNs, or intensities that are not CT-like
    (for example an MR volume, a label map or a probability map).
    """
    image = read_image(path, "CT")
    check_ct_intensities(sitk.GetArrayViewFromImage(image), str(path))
    return image


def check_ct_intensities(voxels: np.ndarray, name: str) -> None:
    """Raise XreconInputError unless the values look like Hounsfield units of a body CT."""
    if voxels.size == 0:
        raise XreconInputError(f"CT {name} is empty")
    if np.issubdtype(voxels.dtype, np.floating) and not np.all(np.isfinite(voxels)):
        raise XreconInputError(f"CT {name} contains NaN or infinite values")
    low, high = float(voxels.min()), float(voxels.max())
    if low < _CT_PLAUSIBLE_HU[0] or high > _CT_PLAUSIBLE_HU[1]:
        raise XreconInputError(
            f"CT {name} has values from {low:g} to {high:g}, outside any Hounsfield range")
    if low > _CT_MIN_BELOW_HU or high < _CT_MAX_ABOVE_HU:
        raise XreconInputError(
            f"CT {name} does not look like a CT in Hounsfield units: values {low:g} to {high:g}, "
            f"expected air or fat below {_CT_MIN_BELOW_HU:g} HU and bone above {_CT_MAX_ABOVE_HU:g} HU")


def same_grid(a: sitk.Image, b: sitk.Image, tolerance_mm: float = 1e-3) -> bool:
    """True when both images have the same size and the same voxel-to-RAS matrix."""
    return a.GetSize() == b.GetSize() and bool(
        np.allclose(ijk_to_ras(a), ijk_to_ras(b), atol=tolerance_mm, rtol=0))


def grid_summary(image: sitk.Image) -> str:
    """One-line description of an image grid for error messages."""
    ras_origin = ijk_to_ras(image)[:3, 3]
    return (f"size {list(image.GetSize())}, spacing {[round(s, 4) for s in image.GetSpacing()]} mm, "
            f"origin {np.round(ras_origin, 2).tolist()} RAS mm")
