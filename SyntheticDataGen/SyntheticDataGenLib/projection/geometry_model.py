"""A projection geometry as line geometry to draw in a 3D view (VTK polydata in RAS mm).

:func:`geometry_polydata` draws the X-ray source, the detector's active area, the frustum of
rays from the source to the detector corners and the central ray, as line cells tagged with a
cell-data array ``"part"`` (see :data:`PART_NAMES`) so a display can colour the parts.
:func:`detector_slice_to_ras` is the slice-view orientation that shows a detector image the way
a radiologist reads it. Slicer-free: VTK and numpy only.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkCommonCore import vtkIntArray, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

from .geometry import ProjectionGeometry

#: Values of the ``"part"`` cell-data array.
PART_DETECTOR, PART_FRUSTUM, PART_CENTRAL_RAY, PART_SOURCE = 0, 1, 2, 3
PART_NAMES = ("detector", "frustum", "central ray", "source")
#: Suggested RGB colours (0..1) of the parts, in ``"part"`` order.
PART_COLORS = ((0.95, 0.95, 0.95), (1.0, 0.85, 0.2), (1.0, 0.35, 0.2), (1.0, 0.2, 0.2))


def detector_corners_ras(geometry: ProjectionGeometry) -> np.ndarray:
    """(4, 3) RAS corners (mm) of the detector's active area, pixel edges not centres.

    Order: (u, v) = (-0.5, -0.5), (width - 0.5, -0.5), (width - 0.5, height - 0.5),
    (-0.5, height - 0.5), i.e. around the rectangle.
    """
    u_low, v_low = -0.5, -0.5
    u_high, v_high = geometry.width - 0.5, geometry.height - 0.5
    return geometry.pixel_center_ras([u_low, u_high, u_high, u_low], [v_low, v_low, v_high, v_high])


def geometry_polydata(geometry: ProjectionGeometry, source_marker_mm: float | None = None) -> vtkPolyData:
    """Lines that show a projection geometry, in RAS mm.

    Cells, all lines (``"part"`` value in brackets): the four edges of the detector's active
    area (0); the four frustum edges from the source to the detector corners (1); the central
    ray from the source to the detector centre (2); a marker at the source, three crossing lines
    along the detector u and v axes and the beam, each ``source_marker_mm`` long (3; default 3 %
    of the source-to-detector distance).

    Points: 0 the source, 1-4 the detector corners (:func:`detector_corners_ras` order), 5 the
    detector centre, 6-11 the ends of the marker lines. Every line starts at the point nearer
    the source (the detector edges run around the rectangle).
    """
    source = np.asarray(geometry.source_ras_mm, dtype=np.float64)
    corners = detector_corners_ras(geometry)
    centre = np.asarray(geometry.detector_center_ras_mm, dtype=np.float64)
    if source_marker_mm is None:
        source_marker_mm = 0.03 * geometry.source_to_detector_mm
    if not source_marker_mm > 0:
        raise ValueError(f"source_marker_mm must be positive, got {source_marker_mm}")
    half = 0.5 * float(source_marker_mm)
    marker_ends = []
    for axis in (geometry.detector_u_ras, geometry.detector_v_ras, geometry.beam_direction_ras):
        marker_ends += [source - half * np.asarray(axis), source + half * np.asarray(axis)]

    coordinates = np.vstack([source[None], corners, centre[None], np.asarray(marker_ends)])
    points = vtkPoints()
    points.SetDataTypeToDouble()
    points.SetNumberOfPoints(len(coordinates))
    for index, point in enumerate(coordinates):
        points.SetPoint(index, *(float(x) for x in point))

    segments = [((1, 2), PART_DETECTOR), ((2, 3), PART_DETECTOR), ((3, 4), PART_DETECTOR), ((4, 1), PART_DETECTOR)]
    segments += [((0, corner), PART_FRUSTUM) for corner in (1, 2, 3, 4)]
    segments += [((0, 5), PART_CENTRAL_RAY)]
    segments += [((6, 7), PART_SOURCE), ((8, 9), PART_SOURCE), ((10, 11), PART_SOURCE)]

    lines = vtkCellArray()
    parts = vtkIntArray()
    parts.SetName("part")
    parts.SetNumberOfComponents(1)
    for (start, end), part in segments:
        lines.InsertNextCell(2)
        lines.InsertCellPoint(start)
        lines.InsertCellPoint(end)
        parts.InsertNextValue(part)

    polydata = vtkPolyData()
    polydata.SetPoints(points)
    polydata.SetLines(lines)
    polydata.GetCellData().AddArray(parts)
    polydata.GetCellData().SetActiveScalars("part")
    return polydata


def detector_slice_to_ras(geometry: ProjectionGeometry) -> np.ndarray:
    """4×4 slice-to-RAS matrix of a slice view that shows the detector image as it is read.

    Columns: screen right = detector u (image columns, left to right), screen up = -detector v
    (image rows run top to bottom), the plane normal (right × up), and the detector centre as
    the slice origin. Slicer's slice views take this as a ``vtkMRMLSliceNode``'s SliceToRAS.
    """
    right = np.asarray(geometry.detector_u_ras, dtype=np.float64)
    up = -np.asarray(geometry.detector_v_ras, dtype=np.float64)
    matrix = np.eye(4)
    matrix[:3, 0] = right
    matrix[:3, 1] = up
    matrix[:3, 2] = np.cross(right, up)
    matrix[:3, 3] = geometry.detector_center_ras_mm
    return matrix
