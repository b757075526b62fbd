"""A smaller scan of the same patient: the CT cut to a reconstruction field and a scan range.

Clinical CTs are often reconstructed on a small field around what was asked about (a spine, a
hip, one thigh), and every scan stops where it was told to. The DRR of such a CT shows a body cut
off by a disc or a square, bones cut through and others missing. A network that only ever saw
scans as wide as the body finds no bone in them at all: on the hip-and-thigh CT sts001 (a
195 mm square around one thigh) the landmark network found 5 % of the landmarks.

This rung of the anatomy group keeps an axial disc or square around one bone, over part of the
head-foot range, and puts air everywhere else. Labels outside go too, so masks and depth targets
stay exact, and a landmark outside is no longer in the image (known, not visible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..cases.ct_io import ijk_to_ras
from ..cases.labels import Segmentation

AIR_HU = -1000


@dataclass(frozen=True)
class ScanField:
    """What a smaller scan holds: an axial disc (or square) of radius (or half side) ``half_width_mm``
    about ``centre_ras_mm``'s R and A, between S = centre ± ``length_mm`` / 2."""

    centre_ras_mm: tuple[float, float, float]
    half_width_mm: float
    length_mm: float
    disc: bool

    def contains(self, points_ras_mm: np.ndarray) -> np.ndarray:
        """(N,) bool for (N, 3) RAS points; a NaN point is outside."""
        points = np.asarray(points_ras_mm, float).reshape(-1, 3)
        return _inside(self, points[:, 0], points[:, 1], points[:, 2])

    def head_foot_range_mm(self) -> tuple[float, float]:
        return self.centre_ras_mm[2] - self.length_mm / 2, self.centre_ras_mm[2] + self.length_mm / 2


def _inside(field: ScanField, r, a, s):
    dr, da, ds = r - field.centre_ras_mm[0], a - field.centre_ras_mm[1], s - field.centre_ras_mm[2]
    across = dr * dr + da * da <= field.half_width_mm ** 2 if field.disc else np.maximum(np.abs(dr), np.abs(da)) <= field.half_width_mm
    with np.errstate(invalid="ignore"):
        return across & (np.abs(ds) <= field.length_mm / 2)


def scan_field(draw: dict | None, bone_centres_ras_mm: dict[str, np.ndarray]) -> ScanField | None:
    """The field an anatomy draw asks for (:func:`..augmentation.ladder.sample_anatomy`'s
    ``scan_field``): about the bone at ``bone_fraction`` of the case's bones (in their order),
    moved by ``offset`` (fractions of the half width across, of the length along the body).
    None where the draw has no field or the case no bone."""
    if not draw or not bone_centres_ras_mm:
        return None
    names = list(bone_centres_ras_mm)
    bone = np.asarray(bone_centres_ras_mm[names[min(int(draw["bone_fraction"] * len(names)), len(names) - 1)]], float)
    across, along = draw["half_width_mm"], draw["length_mm"]
    offset = np.asarray(draw["offset"], float) * [across, across, along]
    return ScanField(tuple(float(x) for x in bone + offset), float(across), float(along), bool(draw["disc"]))


def cut_to_field(ct: sitk.Image, segmentation: Segmentation | None, field: ScanField
                 ) -> tuple[sitk.Image, Segmentation | None]:
    """The CT with air outside ``field`` and the labels emptied there; same grid."""
    size_i, size_j, size_k = ct.GetSize()
    matrix = ijk_to_ras(ct).astype(np.float32)
    i = np.arange(size_i, dtype=np.float32)[None, None, :]
    j = np.arange(size_j, dtype=np.float32)[None, :, None]
    k = np.arange(size_k, dtype=np.float32)[:, None, None]
    r, a, s = (matrix[row, 0] * i + matrix[row, 1] * j + matrix[row, 2] * k + matrix[row, 3] for row in range(3))
    outside = ~_inside(field, r, a, s)
    values = sitk.GetArrayFromImage(ct)
    values[outside] = AIR_HU
    cut = sitk.GetImageFromArray(values)
    cut.CopyInformation(ct)
    if segmentation is None:
        return cut, None
    layers = []
    for layer in segmentation.layers:
        labels = sitk.GetArrayFromImage(layer)
        labels[outside] = 0
        kept = sitk.GetImageFromArray(labels)
        kept.CopyInformation(layer)
        layers.append(kept)
    return cut, Segmentation(layers, dict(segmentation.structures))
