"""Projection geometry from a DICOM radiograph's tags (CR, DX, XA, RF).

Tags used where present: DistanceSourceToDetector (0018,1110), DistanceSourceToPatient
(0018,1111), ImagerPixelSpacing (0018,1164), ViewPosition (0018,5101), PositionerPrimaryAngle
(0018,1510, + = LAO) and PositionerSecondaryAngle (0018,1511, + = cranial). A radiograph has
no patient coordinates, so the isocentre (the point at DistanceSourceToPatient along the
central ray) is placed at the RAS origin unless given.
"""

from __future__ import annotations

import os

import SimpleITK as sitk

from .errors import XreconInputError
from .geometry import ProjectionGeometry, preset_geometry

_SOURCE_TO_DETECTOR = "0018|1110"
_SOURCE_TO_PATIENT = "0018|1111"
_IMAGER_PIXEL_SPACING = "0018|1164"
_VIEW_POSITION = "0018|5101"
_PRIMARY_ANGLE = "0018|1510"
_SECONDARY_ANGLE = "0018|1511"
_VIEW_TO_PRESET = {"AP": "ap", "PA": "pa", "LL": "lateral-left", "LLAT": "lateral-left",
                   "RL": "lateral-right", "RLAT": "lateral-right"}


def _number(reader: sitk.ImageFileReader, tag: str) -> list[float] | None:
    if not reader.HasMetaDataKey(tag):
        return None
    text = reader.GetMetaData(tag).strip()
    try:
        return [float(part) for part in text.split("\\") if part.strip()]
    except ValueError:
        raise XreconInputError(f"DICOM tag ({tag.replace('|', ',')}) holds {text!r}, not a number") from None


def geometry_from_dicom(path: str | os.PathLike, isocenter_ras_mm=(0.0, 0.0, 0.0)) -> ProjectionGeometry:
    """Read the projection geometry of a DICOM radiograph from its tags.

    Raises XreconInputError when the file is not readable DICOM or lacks the source-to-detector
    distance or the imager pixel spacing (then give the geometry as JSON instead). Choices made
    for missing optional tags are recorded in the geometry's ``assumptions`` key.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("GDCMImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise XreconInputError(f"cannot read {path} as DICOM") from None
    source_to_detector = _number(reader, _SOURCE_TO_DETECTOR)
    spacing = _number(reader, _IMAGER_PIXEL_SPACING)
    if not source_to_detector or not spacing or len(spacing) != 2:
        raise XreconInputError(
            f"DICOM {path} lacks DistanceSourceToDetector (0018,1110) or ImagerPixelSpacing "
            "(0018,1164); give the geometry as JSON (--geometry FILE)")
    assumptions = []
    source_to_patient = _number(reader, _SOURCE_TO_PATIENT)
    if not source_to_patient:
        source_to_patient = [source_to_detector[0] - 150.0]
        assumptions.append("no DistanceSourceToPatient: patient 150 mm in front of the detector")
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
    width, height = reader.GetSize()[:2]
    geometry = preset_geometry(
        preset, isocenter_ras_mm=isocenter_ras_mm,
        source_to_isocenter_mm=source_to_patient[0], source_to_detector_mm=source_to_detector[0],
        size_px=(width, height),
        # ImagerPixelSpacing is (row spacing, column spacing): along v, then along u
        pixel_spacing_mm=(spacing[1], spacing[0]),
        lao_deg=primary, cranial_deg=secondary)
    return ProjectionGeometry.from_dict({**geometry.to_dict(), "source": "DICOM tags",
                                         "assumptions": assumptions})
