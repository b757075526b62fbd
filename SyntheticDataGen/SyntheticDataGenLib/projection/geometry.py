"""Cone-beam projection geometry of one radiograph, in Slicer's RAS millimetres.

A geometry is a point source and a flat detector. The centre of pixel (u, v) is
``detector_origin + u·su·detector_u + v·sv·detector_v`` (u = column, v = row, so an image
array is ``[height, width]`` indexed ``[v, u]``); the ray of a pixel runs from the source to
that centre. The detector covers u in [-0.5, width - 0.5] and v in [-0.5, height - 0.5].
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..atomic_io import read_json, write_text_atomically
from ..errors import XreconInputError

PRESETS = ("ap", "pa", "lateral-left", "lateral-right")

# Beam direction (source -> detector), detector u and v, all in RAS, for each preset at zero
# C-arm angles. Frontal views are shown in the anatomical position (patient's left on the image
# right, head up), laterals with the patient's front on the image left and head up: the way a
# radiologist reads them.
_PRESET_FRAMES = {
    "ap": ((0.0, -1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "pa": ((0.0, 1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "lateral-left": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),
    "lateral-right": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),
}

_AXIS_TOLERANCE = 1e-6
_JSON_KEYS = ("source_ras_mm", "detector_origin_ras_mm", "detector_u_ras", "detector_v_ras",
              "pixel_spacing_mm", "size_px")
_NUMERIC_EXTRAS = ("lao_deg", "cranial_deg", "source_to_isocenter_mm", "source_to_detector_mm")


def _vector(name: str, value, length: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise XreconInputError(f"geometry: {name} must be {length} numbers, got {value!r}") from None
    if array.shape != (length,) or not np.all(np.isfinite(array)):
        raise XreconInputError(f"geometry: {name} must be {length} finite numbers, got {value!r}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ProjectionGeometry:
    """A point source and a flat pixel detector, in RAS millimetres.

    Attributes:
        source_ras_mm: (3,) focal spot position.
        detector_origin_ras_mm: (3,) centre of pixel (0, 0).
        detector_u_ras: (3,) unit vector along image columns (increasing u).
        detector_v_ras: (3,) unit vector along image rows (increasing v), orthogonal to u.
        pixel_spacing_mm: (su, sv) pixel pitch along u and v.
        size_px: (width, height) in pixels.
        extra: further JSON keys, kept on a round trip (for example how the geometry was made).

    Invalid geometry (non-positive spacing or size, non-orthonormal detector axes, a source on
    the detector plane, non-finite numbers) raises :class:`XreconInputError`.
    """

    source_ras_mm: np.ndarray
    detector_origin_ras_mm: np.ndarray
    detector_u_ras: np.ndarray
    detector_v_ras: np.ndarray
    pixel_spacing_mm: np.ndarray
    size_px: tuple[int, int]
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        for name in ("source_ras_mm", "detector_origin_ras_mm", "detector_u_ras", "detector_v_ras"):
            set_(name, _vector(name, getattr(self, name), 3))
        set_("pixel_spacing_mm", _vector("pixel_spacing_mm", self.pixel_spacing_mm, 2))
        size = _vector("size_px", self.size_px, 2)
        if np.any(size < 1) or np.any(size != np.round(size)):
            raise XreconInputError(f"geometry: size_px must be two positive whole numbers, got {self.size_px!r}")
        set_("size_px", (int(size[0]), int(size[1])))
        if np.any(self.pixel_spacing_mm <= 0):
            raise XreconInputError(
                f"geometry: pixel_spacing_mm must be positive, got {self.pixel_spacing_mm.tolist()}")
        u, v = self.detector_u_ras, self.detector_v_ras
        if (abs(np.linalg.norm(u) - 1) > _AXIS_TOLERANCE or abs(np.linalg.norm(v) - 1) > _AXIS_TOLERANCE
                or abs(float(u @ v)) > _AXIS_TOLERANCE):
            raise XreconInputError(
                "geometry: detector_u_ras and detector_v_ras must be orthogonal unit vectors, "
                f"got {u.tolist()} and {v.tolist()}")
        if self.source_to_detector_mm < 1e-3:
            raise XreconInputError("geometry: the source lies on the detector plane")

    # --- derived quantities -------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.size_px[0]

    @property
    def height(self) -> int:
        return self.size_px[1]

    @property
    def beam_direction_ras(self) -> np.ndarray:
        """(3,) unit normal of the detector plane, pointing from the source towards it."""
        normal = np.cross(self.detector_u_ras, self.detector_v_ras)
        return normal if normal @ (self.detector_origin_ras_mm - self.source_ras_mm) > 0 else -normal

    @property
    def source_to_detector_mm(self) -> float:
        """Perpendicular distance from the source to the detector plane (mm)."""
        normal = np.cross(self.detector_u_ras, self.detector_v_ras)
        return abs(float(normal @ (self.detector_origin_ras_mm - self.source_ras_mm)))

    @property
    def detector_center_ras_mm(self) -> np.ndarray:
        """(3,) centre of the detector's active area."""
        return self.pixel_center_ras((self.width - 1) / 2, (self.height - 1) / 2)

    def pixel_center_ras(self, u, v) -> np.ndarray:
        """RAS position (mm) of detector coordinates (u, v) in pixels; shape (..., 3)."""
        u = np.asarray(u, dtype=np.float64)[..., None]
        v = np.asarray(v, dtype=np.float64)[..., None]
        su, sv = self.pixel_spacing_mm
        return self.detector_origin_ras_mm + u * su * self.detector_u_ras + v * sv * self.detector_v_ras

    def pixel_centers_ras(self) -> np.ndarray:
        """RAS centres of all pixels, shape (height, width, 3), indexed [v, u]."""
        v, u = np.meshgrid(np.arange(self.height), np.arange(self.width), indexing="ij")
        return self.pixel_center_ras(u, v)

    def ray_directions_ras(self) -> np.ndarray:
        """Unit vectors from the source through each pixel centre, shape (height, width, 3)."""
        rays = self.pixel_centers_ras() - self.source_ras_mm
        return rays / np.linalg.norm(rays, axis=-1, keepdims=True)

    def projection_matrix(self) -> np.ndarray:
        """The 3×4 matrix P with (w·u, w·v, w) = P · (x, y, z, 1) for RAS points in mm.

        w is the distance of the point in front of the source along the beam direction (mm), so
        points with w <= 0 are behind the source and do not reach the detector.
        """
        u_axis, v_axis = self.detector_u_ras, self.detector_v_ras
        beam = self.beam_direction_ras
        source, origin = self.source_ras_mm, self.detector_origin_ras_mm
        distance = float(beam @ (origin - source))
        su, sv = self.pixel_spacing_mm
        rows = np.stack([
            (float(u_axis @ (source - origin)) * beam + distance * u_axis) / su,
            (float(v_axis @ (source - origin)) * beam + distance * v_axis) / sv,
            beam,
        ])
        return np.hstack([rows, -(rows @ source)[:, None]])

    def project(self, points_ras_mm) -> tuple[np.ndarray, np.ndarray]:
        """Project RAS points (..., 3) in mm to detector coordinates.

        Returns:
            uv: (..., 2) detector coordinates in pixels (NaN for points not in front of the source).
            depth_mm: (...,) distance from the source to each point along its ray.
        """
        points = np.asarray(points_ras_mm, dtype=np.float64)
        homogeneous = points @ self.projection_matrix()[:, :3].T + self.projection_matrix()[:, 3]
        w = homogeneous[..., 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.where(w > 0, homogeneous[..., :2] / w, np.nan)
        return uv, np.linalg.norm(points - self.source_ras_mm, axis=-1)

    def on_detector(self, uv) -> np.ndarray:
        """True where detector coordinates (..., 2) fall on the active area."""
        uv = np.asarray(uv, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return ((uv[..., 0] >= -0.5) & (uv[..., 0] <= self.width - 0.5)
                    & (uv[..., 1] >= -0.5) & (uv[..., 1] <= self.height - 0.5))

    def backproject(self, u, v, depth_mm) -> np.ndarray:
        """The RAS point (..., 3) at ``depth_mm`` from the source on the ray of pixel (u, v)."""
        direction = self.pixel_center_ras(u, v) - self.source_ras_mm
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        return self.source_ras_mm + np.asarray(depth_mm, dtype=np.float64)[..., None] * direction

    def detector_ijk_to_ras(self) -> np.ndarray:
        """4×4 matrix placing a [height, width] image on the detector plane (i = u, j = v)."""
        matrix = np.eye(4)
        matrix[:3, 0] = self.detector_u_ras * self.pixel_spacing_mm[0]
        matrix[:3, 1] = self.detector_v_ras * self.pixel_spacing_mm[1]
        matrix[:3, 2] = np.cross(self.detector_u_ras, self.detector_v_ras)
        matrix[:3, 3] = self.detector_origin_ras_mm
        return matrix

    # --- checks against a CT ------------------------------------------------------------
    def check_against_volume(self, ijk_to_ras: np.ndarray, size_ijk) -> None:
        """Raise unless the source is outside the volume and its centre lies between source and detector.

        A detector plane that clips the volume's corners is allowed: a CT's field of view is a
        box with much air around the patient, and rays are integrated only up to the detector.

        Args:
            ijk_to_ras: 4×4 matrix from voxel indices to RAS mm.
            size_ijk: number of voxels along i, j, k.
        """
        ras_to_ijk = np.linalg.inv(ijk_to_ras)
        source_ijk = ras_to_ijk[:3, :3] @ self.source_ras_mm + ras_to_ijk[:3, 3]
        size = np.asarray(size_ijk, dtype=np.float64)
        if np.all(source_ijk >= -0.5) and np.all(source_ijk <= size - 0.5):
            raise XreconInputError(
                f"geometry: the X-ray source {np.round(self.source_ras_mm, 1).tolist()} (RAS mm) "
                "lies inside the CT volume; move it further away")
        corners = np.array([[i, j, k] for i in (-0.5, size[0] - 0.5) for j in (-0.5, size[1] - 0.5)
                            for k in (-0.5, size[2] - 0.5)])
        corners_ras = corners @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]
        along_beam = (corners_ras - self.source_ras_mm) @ self.beam_direction_ras
        centre_along_beam = float(along_beam.mean())
        if centre_along_beam <= 0:
            raise XreconInputError(
                "geometry: the detector faces away from the CT (the CT lies behind the source)")
        if centre_along_beam >= self.source_to_detector_mm:
            raise XreconInputError(
                "geometry: the CT's centre lies beyond the detector plane; "
                "the patient must lie between source and detector")

    # --- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The DESIGN.md JSON object (plus ``extra`` keys)."""
        data = {
            "source_ras_mm": self.source_ras_mm.tolist(),
            "detector_origin_ras_mm": self.detector_origin_ras_mm.tolist(),
            "detector_u_ras": self.detector_u_ras.tolist(),
            "detector_v_ras": self.detector_v_ras.tolist(),
            "pixel_spacing_mm": self.pixel_spacing_mm.tolist(),
            "size_px": list(self.size_px),
        }
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ProjectionGeometry":
        if not isinstance(data, dict):
            raise XreconInputError("geometry: expected a JSON object")
        missing = [key for key in _JSON_KEYS if key not in data]
        if missing:
            raise XreconInputError(f"geometry: missing key(s) {', '.join(missing)}")
        extra = {key: value for key, value in data.items() if key not in _JSON_KEYS}
        for key in _NUMERIC_EXTRAS:  # informational, but read where present (the isocentre distance)
            value = extra.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise XreconInputError(f"geometry: {key} must be a finite number or absent, got {value!r}")
        return cls(*(data[key] for key in _JSON_KEYS), extra=extra)

    def save(self, path: str | os.PathLike) -> None:
        """Write the geometry as JSON, atomically."""
        write_text_atomically(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ProjectionGeometry":
        """Read a geometry JSON file; malformed files raise :class:`XreconInputError`."""
        return cls.from_dict(read_json(path, f"geometry file not found: {path}"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProjectionGeometry) and self.to_dict() == other.to_dict()


def _rotation(axis: str, angle_deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def preset_geometry(
    name: str = "ap",
    *,
    isocenter_ras_mm=(0.0, 0.0, 0.0),
    source_to_isocenter_mm: float = 900.0,
    source_to_detector_mm: float = 1100.0,
    size_px=(256, 256),
    pixel_spacing_mm=(1.6, 1.6),
    lao_deg: float = 0.0,
    cranial_deg: float = 0.0,
    translation_ras_mm=(0.0, 0.0, 0.0),
) -> ProjectionGeometry:
    """A standard view about an isocentre, optionally turned like a C-arm.

    Presets (at zero angles): ``ap`` (source in front of the patient, detector behind),
    ``pa`` (source behind), ``lateral-left`` (patient's left side against the detector, source
    on the right), ``lateral-right``. The isocentre projects onto the detector centre. Frontal
    images are laid out in the anatomical position: the patient's left is on the image's right
    (larger u), the head at the top (smaller v). Lateral images have the patient's front on the
    image's left and the head at the top.

    C-arm angles rotate the source–detector assembly about the isocentre: first the cranial
    tilt about the patient's right–left axis, then the LAO turn about the head–foot axis. They
    follow the C-arm naming for the ``pa`` preset, a C-arm's rest pose: positive ``lao_deg``
    moves the detector towards the patient's left (negative = RAO), positive ``cranial_deg``
    towards the head (negative = caudal). ``translation_ras_mm`` then shifts the assembly.

    Distances are in mm: ``source_to_isocenter_mm`` < ``source_to_detector_mm``.
    """
    if name not in _PRESET_FRAMES:
        raise XreconInputError(f"unknown geometry preset {name!r}; choose one of {', '.join(PRESETS)}")
    if not 0 < source_to_isocenter_mm < source_to_detector_mm:
        raise XreconInputError(
            "geometry: need 0 < source-to-isocentre distance < source-to-detector distance, got "
            f"{source_to_isocenter_mm} mm and {source_to_detector_mm} mm")
    rotation = _rotation("z", lao_deg) @ _rotation("x", cranial_deg)
    beam, u_axis, v_axis = (rotation @ np.asarray(axis) for axis in _PRESET_FRAMES[name])
    isocenter = _vector("isocenter_ras_mm", isocenter_ras_mm, 3) + _vector(
        "translation_ras_mm", translation_ras_mm, 3)
    source = isocenter - source_to_isocenter_mm * beam
    width, height = (int(n) for n in _vector("size_px", size_px, 2))
    spacing = _vector("pixel_spacing_mm", pixel_spacing_mm, 2)
    center = source + source_to_detector_mm * beam
    origin = center - (width - 1) / 2 * spacing[0] * u_axis - (height - 1) / 2 * spacing[1] * v_axis
    return ProjectionGeometry(
        source, origin, u_axis, v_axis, spacing, (width, height),
        extra={"preset": name, "lao_deg": float(lao_deg), "cranial_deg": float(cranial_deg),
               "source_to_isocenter_mm": float(source_to_isocenter_mm),
               "source_to_detector_mm": float(source_to_detector_mm)},
    )


def _with_axes(geometry: ProjectionGeometry, u_axis: np.ndarray, v_axis: np.ndarray,
               spacing=None, **extra) -> ProjectionGeometry:
    """The same source and detector centre with new in-plane axes (and pixel spacing)."""
    spacing = geometry.pixel_spacing_mm if spacing is None else np.asarray(spacing, dtype=np.float64)
    centre = geometry.detector_center_ras_mm
    origin = centre - (geometry.width - 1) / 2 * spacing[0] * u_axis - (geometry.height - 1) / 2 * spacing[1] * v_axis
    return ProjectionGeometry(geometry.source_ras_mm, origin, u_axis, v_axis, spacing, geometry.size_px,
                              extra={**geometry.extra, **extra})


def rotate_detector(geometry: ProjectionGeometry, angle_deg: float) -> ProjectionGeometry:
    """Turn the detector in its plane about its centre (positive: image content turns anticlockwise)."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    u_axis, v_axis = geometry.detector_u_ras, geometry.detector_v_ras
    return _with_axes(geometry, c * u_axis + s * v_axis, -s * u_axis + c * v_axis,
                      inplane_rotation_deg=float(angle_deg) + geometry.extra.get("inplane_rotation_deg", 0.0))


def zoom_detector(geometry: ProjectionGeometry, factor: float) -> ProjectionGeometry:
    """Magnify the image about the detector centre by shrinking the pixel pitch by ``factor``."""
    if factor <= 0:
        raise XreconInputError(f"zoom factor must be positive, got {factor:g}")
    return _with_axes(geometry, geometry.detector_u_ras, geometry.detector_v_ras,
                      geometry.pixel_spacing_mm / factor, zoom=float(factor) * geometry.extra.get("zoom", 1.0))


def mirror_detector(geometry: ProjectionGeometry) -> ProjectionGeometry:
    """Mirror the image left–right (u runs the other way), as a flipped radiograph would be."""
    return _with_axes(geometry, -geometry.detector_u_ras, geometry.detector_v_ras,
                      mirrored=not geometry.extra.get("mirrored", False))
