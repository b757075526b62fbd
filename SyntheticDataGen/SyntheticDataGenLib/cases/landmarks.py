"""3D landmarks: Slicer markups files in and out, and their projection onto the detector.

Points are RAS millimetres in memory, as everywhere in xrecon. A Slicer markups file
(``.mrk.json``) states its ``coordinateSystem``; the schema's default, and what
:func:`write_markups_json` writes unless asked otherwise, is LPS. A control point whose position
is undefined in Slicer (a placeholder of a landmark template that was never placed) is a row of
NaN in memory, so labels and points stay aligned through a read–write round trip.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic_io import write_text_atomically
from ..errors import XreconInputError
from ..projection.geometry import ProjectionGeometry

MARKUPS_SCHEMA_URL = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                      "Markups/Resources/Schema/markups-schema-v1.0.3.json#")
COORDINATE_SYSTEMS = ("LPS", "RAS")

# RAS and LPS differ by the sign of the first two axes; the flip is its own inverse.
_RAS_FROM_LPS = np.array([-1.0, -1.0, 1.0])
_MM_PER_UNIT = {"mm": 1.0, "um": 1e-3}


def _control_point_ras(path: Path, where: str, point, flip: np.ndarray, mm_per_unit: float) -> tuple[str, np.ndarray]:
    """(label, RAS mm position) of one control point; NaN position where Slicer left it undefined."""
    if not isinstance(point, dict):
        raise XreconInputError(f"landmarks file {path}: {where} is not a JSON object")
    label = point.get("label", "")
    label = "" if label is None else str(label)
    if point.get("positionStatus") == "undefined":
        return label, np.full(3, np.nan)
    position = point.get("position")
    if (not isinstance(position, list) or len(position) != 3
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                       for x in position)):
        raise XreconInputError(
            f"landmarks file {path}: {where} ({label!r}) needs a position of three finite numbers, "
            f"got {position!r}")
    return label, np.asarray(position, dtype=np.float64) * mm_per_unit * flip


def read_markups_json(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read the control points of every markup in a Slicer ``.mrk.json`` file.

    All markups in the file contribute, in file order (point lists, and the control points of
    lines, curves, planes and ROIs alike). Each markup's ``coordinateSystem`` (``LPS`` when
    absent, as in the schema) and ``coordinateUnits`` (``mm`` or ``um``) are honoured.

    Args:
        path: the ``.mrk.json`` file.

    Returns:
        labels: one label a control point ("" where the file has none).
        points_ras_mm: (N, 3) positions in RAS millimetres; NaN rows for control points whose
            position Slicer marks as undefined.

    Raises:
        XreconInputError: the file is missing, not JSON, or not a valid markups file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise XreconInputError(f"landmarks file not found: {path}") from None
    except IsADirectoryError:
        raise XreconInputError(f"landmarks file {path} is a folder, expected a .mrk.json file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise XreconInputError(f"landmarks file {path} is not valid JSON: {message}") from None
    if not isinstance(data, dict) or not isinstance(data.get("markups"), list):
        raise XreconInputError(f"landmarks file {path} is not a Slicer markups file (no 'markups' list)")
    labels: list[str] = []
    points: list[np.ndarray] = []
    for index, markup in enumerate(data["markups"]):
        if not isinstance(markup, dict):
            raise XreconInputError(f"landmarks file {path}: markup {index} is not a JSON object")
        system = markup.get("coordinateSystem", "LPS")
        if system not in COORDINATE_SYSTEMS:
            raise XreconInputError(
                f"landmarks file {path}: markup {index} has coordinateSystem {system!r}; expected LPS or RAS")
        units = markup.get("coordinateUnits", "mm")
        if units not in _MM_PER_UNIT:
            raise XreconInputError(
                f"landmarks file {path}: markup {index} has coordinateUnits {units!r}; expected mm or um")
        control_points = markup.get("controlPoints", [])
        if not isinstance(control_points, list):
            raise XreconInputError(f"landmarks file {path}: markup {index} has controlPoints that are not a list")
        flip = _RAS_FROM_LPS if system == "LPS" else np.ones(3)
        for number, point in enumerate(control_points):
            label, position = _control_point_ras(
                path, f"markup {index} control point {number}", point, flip, _MM_PER_UNIT[units])
            labels.append(label)
            points.append(position)
    return labels, np.array(points, dtype=np.float64).reshape(-1, 3)


def write_markups_json(path: str | os.PathLike, labels: Sequence[str], points_ras_mm,
                       coordinate_system: str = "LPS") -> None:
    """Write points as one Slicer point list (type ``Fiducial``) in a ``.mrk.json`` file, atomically.

    Args:
        path: the file to write (``.mrk.json``); replaced in one step, so a reader never sees
            half a file.
        labels: N control-point labels.
        points_ras_mm: (N, 3) RAS positions in mm. A row of NaN is written as a control point
            with an undefined position (Slicer shows the label in its list, unplaced).
        coordinate_system: ``"LPS"`` (Slicer's file default) or ``"RAS"``; positions are
            converted from RAS accordingly.

    Raises:
        XreconInputError: mismatched labels and points, partly non-finite rows, an unknown
            coordinate system, or a file that cannot be written.
    """
    if coordinate_system not in COORDINATE_SYSTEMS:
        raise XreconInputError(f"landmarks: coordinate_system must be LPS or RAS, got {coordinate_system!r}")
    points = np.asarray(points_ras_mm, dtype=np.float64)
    labels = [str(label) for label in labels]
    if points.ndim != 2 or points.shape[1] != 3 or len(points) != len(labels):
        raise XreconInputError(
            f"landmarks: need {len(labels)} labels and (N, 3) points with the same N, got points of shape {points.shape}")
    undefined = np.isnan(points).all(axis=1)
    if not np.isfinite(points[~undefined]).all():
        raise XreconInputError("landmarks: every point must be three finite numbers or all NaN (undefined)")
    flip = _RAS_FROM_LPS if coordinate_system == "LPS" else np.ones(3)
    control_points = []
    for index, (label, point, is_undefined) in enumerate(zip(labels, points, undefined)):
        control_points.append({
            "id": str(index + 1),
            "label": label,
            # An undefined position is an empty string in the files Slicer writes.
            "position": "" if is_undefined else (point * flip).tolist(),
            "positionStatus": "undefined" if is_undefined else "defined",
        })
    document = {"@schema": MARKUPS_SCHEMA_URL,
                "markups": [{"type": "Fiducial", "coordinateSystem": coordinate_system,
                             "coordinateUnits": "mm", "controlPoints": control_points}]}
    write_text_atomically(path, json.dumps(document, indent=2))


def project_landmarks(points_ras_mm, geometry: ProjectionGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Project 3D landmarks onto the detector.

    Args:
        points_ras_mm: (N, 3) RAS positions in mm (NaN rows allowed: undefined landmarks).
        geometry: the projection geometry.

    Returns:
        uv: (N, 2) detector coordinates in pixels (column u, row v); NaN for points not in front
            of the source and for undefined points.
        visible: (N,) True where the point lies in front of the source and projects onto the
            detector's active area. Occlusion by other anatomy does not count: X-rays pass
            through, so every such landmark is present in the radiograph.
    """
    points = np.asarray(points_ras_mm, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise XreconInputError(f"landmarks: expected (N, 3) points, got shape {points.shape}")
    uv, _ = geometry.project(points)
    visible = np.isfinite(uv).all(axis=1) & geometry.on_detector(uv)
    return uv, visible


def detector_points_ras(uv, geometry: ProjectionGeometry) -> np.ndarray:
    """Place detector coordinates on the detector plane in RAS, so Slicer shows them in place.

    Args:
        uv: (N, 2) detector coordinates in pixels (column u, row v); NaN rows stay NaN.
        geometry: the projection geometry.

    Returns:
        (N, 3) RAS positions in mm on the detector plane, where a DRR placed with
        ``geometry.detector_ijk_to_ras()`` shows those pixels.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise XreconInputError(f"landmarks: expected (N, 2) detector coordinates, got shape {uv.shape}")
    return geometry.pixel_center_ras(uv[:, 0], uv[:, 1])
