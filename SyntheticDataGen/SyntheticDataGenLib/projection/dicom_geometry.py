"""Projection geometry from a DICOM radiograph's tags (CR, DX, XA, RF).

Tags used where present: DistanceSourceToDetector (0018,1110), DistanceSourceToPatient
(0018,1111), ImagerPixelSpacing (0018,1164), else PixelSpacing (0028,0030), ViewPosition
(0018,5101), PositionerPrimaryAngle (0018,1510, + = LAO) and PositionerSecondaryAngle (0018,1511,
+ = cranial). A radiograph has no patient coordinates, so the isocentre (the point at
DistanceSourceToPatient along the central ray) is placed at the RAS origin unless given.

Many real files lack some of these (anonymised exports, secondary captures, the ``0\\0`` pixel
spacing of some chest films). With ``assume_missing`` such a file is still usable: the gaps
take the defaults below and each is recorded as one line in the geometry's ``assumptions`` key,
for the caller to show the user:

- no usable pixel spacing (missing or not positive): the image's larger side spans
  ``DEFAULT_FIELD_OF_VIEW_MM`` (430 mm, the common 43 cm / 17-inch detector), square pixels;
- one of the two distances missing: the patient's isocentre ``PATIENT_TO_DETECTOR_MM`` (150 mm)
  in front of the detector;
- both missing: the presets' 1100 mm source to detector and 900 mm source to isocentre.
"""

from __future__ import annotations

import os

import SimpleITK as sitk

from ..errors import XreconInputError
from .geometry import ProjectionGeometry, preset_geometry

_SOURCE_TO_DETECTOR = "0018|1110"
_SOURCE_TO_PATIENT = "0018|1111"
_IMAGER_PIXEL_SPACING = "0018|1164"
_PIXEL_SPACING = "0028|0030"
_VIEW_POSITION = "0018|5101"
_PRIMARY_ANGLE = "0018|1510"
_SECONDARY_ANGLE = "0018|1511"
_VIEW_TO_PRESET = {"AP": "ap", "PA": "pa", "LL": "lateral-left", "LLAT": "lateral-left",
                   "RL": "lateral-right", "RLAT": "lateral-right"}

DEFAULT_FIELD_OF_VIEW_MM = 430.0
DEFAULT_SOURCE_TO_DETECTOR_MM = 1100.0
DEFAULT_SOURCE_TO_ISOCENTER_MM = 900.0
PATIENT_TO_DETECTOR_MM = 150.0


def _number(reader: sitk.ImageFileReader, tag: str) -> list[float] | None:
    if not reader.HasMetaDataKey(tag):
        return None
    text = reader.GetMetaData(tag).strip()
    try:
        return [float(part) for part in text.split("\\") if part.strip()]
    except ValueError:
        raise XreconInputError(f"DICOM tag ({tag.replace('|', ',')}) holds {text!r}, not a number") from None


def _positive(values: list[float] | None, count: int) -> list[float] | None:
    """``values`` when it holds ``count`` positive numbers; None for a missing or unusable tag."""
    return values if values and len(values) == count and min(values) > 0 else None


def spacing_from_field_of_view(field_of_view_mm: float, size_px) -> tuple[float, float]:
    """Square pixel spacing (mm) of an image of ``size_px`` (width, height) whose larger side spans
    ``field_of_view_mm`` mm at the detector."""
    if not field_of_view_mm > 0:
        raise XreconInputError(f"field of view must be positive (mm), got {field_of_view_mm}")
    side = field_of_view_mm / max(size_px)
    return side, side


def _tagged_spacing(reader: sitk.ImageFileReader, assumptions: list[str]) -> tuple[float, float] | None:
    """(along u, along v) in mm from ImagerPixelSpacing, else PixelSpacing; None when neither is usable."""
    for tag in (_IMAGER_PIXEL_SPACING, _PIXEL_SPACING):
        spacing = _positive(_number(reader, tag), 2)
        if spacing:
            if tag == _PIXEL_SPACING:
                assumptions.append("no ImagerPixelSpacing: PixelSpacing taken as the spacing at the detector")
            return spacing[1], spacing[0]  # the tags hold (row spacing, column spacing): along v, then u
    return None


def _distances(reader: sitk.ImageFileReader, assumptions: list[str]) -> tuple[float, float]:
    """(source to isocentre, source to detector) in mm, with the defaults for missing tags."""
    to_detector = _positive(_number(reader, _SOURCE_TO_DETECTOR), 1)
    to_patient = _positive(_number(reader, _SOURCE_TO_PATIENT), 1)
    if to_detector and to_patient:
        return to_patient[0], to_detector[0]
    if to_detector:
        assumptions.append(f"no DistanceSourceToPatient: patient {PATIENT_TO_DETECTOR_MM:g} mm in front of the "
                           "detector")
        return to_detector[0] - PATIENT_TO_DETECTOR_MM, to_detector[0]
    if to_patient:
        assumptions.append(f"no DistanceSourceToDetector: detector {PATIENT_TO_DETECTOR_MM:g} mm behind the patient")
        return to_patient[0], to_patient[0] + PATIENT_TO_DETECTOR_MM
    assumptions.append(f"no DistanceSourceToDetector or DistanceSourceToPatient: source "
                       f"{DEFAULT_SOURCE_TO_DETECTOR_MM:g} mm from the detector, "
                       f"{DEFAULT_SOURCE_TO_ISOCENTER_MM:g} mm from the isocentre")
    return DEFAULT_SOURCE_TO_ISOCENTER_MM, DEFAULT_SOURCE_TO_DETECTOR_MM


def geometry_from_dicom(path: str | os.PathLike, isocenter_ras_mm=(0.0, 0.0, 0.0), *,
                        pixel_spacing_mm=None, assume_missing: bool = False) -> ProjectionGeometry:
    """Read the projection geometry of a DICOM radiograph from its tags.

    ``pixel_spacing_mm`` (along u, along v; mm at the detector), when given, is used instead of the
    file's spacing tags (see :func:`spacing_from_field_of_view`). Without ``assume_missing``, a file that lacks
    the source-to-detector distance or a pixel spacing raises XreconInputError (then give the
    geometry as JSON); with it, the module's defaults fill the gaps. Raises XreconInputError for a
    file that is not readable DICOM. Every choice made for a missing tag is one line in the
    geometry's ``assumptions`` key.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("GDCMImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise XreconInputError(f"cannot read {path} as DICOM") from None
    width, height = reader.GetSize()[:2]
    assumptions: list[str] = []
    spacing = pixel_spacing_mm if pixel_spacing_mm is not None else _tagged_spacing(reader, assumptions)
    if not assume_missing and (spacing is None or not _positive(_number(reader, _SOURCE_TO_DETECTOR), 1)):
        raise XreconInputError(
            f"DICOM {path} lacks DistanceSourceToDetector (0018,1110) or a pixel spacing (ImagerPixelSpacing "
            "0018,1164 or PixelSpacing 0028,0030); give the geometry as JSON (--geometry FILE)")
    if spacing is None:
        assumptions.append(f"no usable ImagerPixelSpacing or PixelSpacing: a {DEFAULT_FIELD_OF_VIEW_MM:g} mm "
                           "field of view across the larger image side (give --field-of-view-mm)")
        spacing = spacing_from_field_of_view(DEFAULT_FIELD_OF_VIEW_MM, (width, height))
    source_to_isocenter, source_to_detector = _distances(reader, assumptions)
    view = reader.GetMetaData(_VIEW_POSITION).strip().upper() if reader.HasMetaDataKey(_VIEW_POSITION) else ""
    primary = (_number(reader, _PRIMARY_ANGLE) or [0.0])[0]
    secondary = (_number(reader, _SECONDARY_ANGLE) or [0.0])[0]
    if view in _VIEW_TO_PRESET:
        preset = _VIEW_TO_PRESET[view]
    elif reader.HasMetaDataKey(_PRIMARY_ANGLE):
        preset = "pa"  # C-arm positioner angles are relative to its rest pose, detector anterior
    else:
        preset = "ap"
        assumptions.append(f"ViewPosition {view or 'missing'}: taken as AP")
    geometry = preset_geometry(
        preset, isocenter_ras_mm=isocenter_ras_mm, source_to_isocenter_mm=source_to_isocenter,
        source_to_detector_mm=source_to_detector, size_px=(width, height), pixel_spacing_mm=spacing,
        lao_deg=primary, cranial_deg=secondary)
    return ProjectionGeometry.from_dict({**geometry.to_dict(), "source": "DICOM tags",
                                         "assumptions": assumptions})
