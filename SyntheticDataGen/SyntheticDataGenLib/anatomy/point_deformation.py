"""Shape anatomy: a smooth deformation that carries corresponding bone points to new positions.

Shape-model augmentation gives, for each bone of a case, points on its surface (``source``)
and where a new shape puts them (``target``). :func:`point_deformation` turns these pairs into a
forward map ``W(a) = a + u(a)`` on the CT: a displacement field that

* at each source point equals ``target − source`` (to a fraction of a millimetre, after a few
  rounds of correcting the residual at the points),
* in between and inside the bones is a Gaussian-kernel (Nadaraya–Watson) average of the point
  displacements, so a bone's interior follows its surface,
* fades to zero within a few ``falloff_mm`` of the bones (``inside``), so the soft tissue away
  from them stays put (the fade, not the kernel, decides how fast: its slope is what could fold),
* stays invertible: where its Jacobian determinant would fall below :data:`MIN_JACOBIAN` the
  whole displacement is scaled down, and the scale used is returned.

The field has the same meaning as :func:`.deformation.register_cases`' fields (a point of the
case's anatomy and where it goes), so :func:`.deformation.interpolate_displacement` with
``fraction=1, keep_position=False`` makes the pull transform that :func:`.deformation.warp_case`
needs, with any random jitter on top; landmarks follow through
:func:`.deformation.inverse_transform_points` exactly as for the other anatomy rungs.

The datagen side knows nothing of shape models: whoever has them (the ``xrecon generate``
command) hands :class:`CaseLoader <.generation.CaseLoader>` a :class:`ShapeSampler`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..cases.ct_io import LPS_TO_RAS
from .deformation import jacobian_determinant
from ..errors import XreconInputError
from ..cases.labels import Segmentation

KERNEL_SD_MM = 6.0
FALLOFF_MM = 10.0
MIN_JACOBIAN = 0.3  # local volume may shrink to 30 %, never fold
_FIELD_SPACING_MM = 3.0
_CORRECTIONS = 4


@dataclass(frozen=True)
class PointTargets:
    """Corresponding points and where a new anatomy puts them, (P, 3) RAS mm each, and the
    structures they lie on."""

    source_ras_mm: np.ndarray
    target_ras_mm: np.ndarray
    structures: tuple[str, ...] = ()


class ShapeSampler(Protocol):
    """Draws new bone shapes for one case: the seam between datagen and the shape models."""

    def __call__(self, case: str, segmentation: Segmentation, structures: list[str], sd_fraction: float,
                 rng: np.random.Generator) -> PointTargets:
        """Points on the named structures' surfaces and their positions in a new shape whose
        coefficients lie ``sd_fraction`` model standard deviations (in expectation) from the
        case's own."""


@dataclass(frozen=True)
class PointDeformation:
    """A forward field and how it was made.

    Attributes:
        field: DisplacementFieldTransform, LPS mm: ``W(a) = a + u(a)`` of each anatomy point ``a``
            (zero outside its grid, which covers the bones and their falloff).
        scale: the fraction of the asked displacement kept to stay invertible (1 = all of it).
        residual_mm: mean distance between ``W(source)`` and ``scale`` times the way to the targets.
        min_jacobian: the smallest local volume ratio of ``W``.
    """

    field: sitk.DisplacementFieldTransform
    scale: float
    residual_mm: float
    min_jacobian: float


def _field_grid(reference: sitk.Image, points_lps: np.ndarray, margin_mm: float) -> sitk.Image:
    """An empty grid about ``_FIELD_SPACING_MM`` apart, axes as the reference's, over the points'
    bounding box grown by ``margin_mm`` and cut to the reference's extent."""
    direction = np.asarray(reference.GetDirection()).reshape(3, 3)
    spacing = np.asarray(reference.GetSpacing())
    index = (points_lps - reference.GetOrigin()) @ direction / spacing  # continuous (i, j, k)
    size = np.asarray(reference.GetSize())
    lower = np.clip(np.floor(index.min(axis=0) - margin_mm / spacing), 0, size - 1)
    upper = np.clip(np.ceil(index.max(axis=0) + margin_mm / spacing), 0, size - 1)
    step = np.maximum(_FIELD_SPACING_MM, spacing)
    nodes = np.floor((upper - lower) * spacing / step).astype(int) + 1
    grid = sitk.Image([int(n) for n in nodes], sitk.sitkVectorFloat64, 3)
    grid.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint([float(x) for x in lower]))
    grid.SetSpacing([float(s) for s in step])
    grid.SetDirection(reference.GetDirection())
    return grid


def _grid_index(grid: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
    """(P, 3) continuous (k, j, i) array indices of LPS points on ``grid``."""
    direction = np.asarray(grid.GetDirection()).reshape(3, 3)
    ijk = (points_lps - grid.GetOrigin()) @ direction / np.asarray(grid.GetSpacing())
    return ijk[:, ::-1]


def _splat(shape_kji: tuple[int, ...], index_kji: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values (P, C) spread trilinearly onto a (k, j, i, C) grid; points off the grid are dropped."""
    out = np.zeros((*shape_kji, values.shape[1]))
    base = np.floor(index_kji).astype(int)
    fraction = index_kji - base
    for corner in np.ndindex(2, 2, 2):
        node = base + corner
        weight = np.prod(np.where(corner, fraction, 1.0 - fraction), axis=1)
        keep = np.all((node >= 0) & (node < shape_kji), axis=1) & (weight > 0)
        np.add.at(out, tuple(node[keep].T), weight[keep, None] * values[keep])
    return out


def _sample(field_kji: np.ndarray, index_kji: np.ndarray) -> np.ndarray:
    """(P, C) trilinear values of a (k, j, i, C) field at continuous indices (0 off the grid)."""
    return np.stack([ndimage.map_coordinates(field_kji[..., c], index_kji.T, order=1, mode="constant")
                     for c in range(field_kji.shape[-1])], axis=1)


def _envelope(grid: sitk.Image, inside: sitk.Image | None, index_kji: np.ndarray, falloff_mm: float) -> np.ndarray:
    """(k, j, i) weight 1 inside the bones (or at the points), falling as a Gaussian of the distance."""
    shape = grid.GetSize()[::-1]
    if inside is not None:
        mask = sitk.Resample(sitk.Cast(inside > 0, sitk.sitkUInt8), grid.GetSize(), sitk.Transform(),
                             sitk.sitkNearestNeighbor, grid.GetOrigin(), grid.GetSpacing(), grid.GetDirection(),
                             0, sitk.sitkUInt8)
        occupied = sitk.GetArrayFromImage(mask) > 0
    else:
        occupied = np.zeros(shape, bool)
    nearest = np.clip(np.rint(index_kji).astype(int), 0, np.array(shape) - 1)
    occupied[tuple(nearest.T)] = True
    distance = ndimage.distance_transform_edt(~occupied, sampling=grid.GetSpacing()[::-1])
    return np.exp(-0.5 * (distance / falloff_mm) ** 2)


def _kernel_average(shape_kji, index_kji: np.ndarray, values: np.ndarray, sigma_kji: np.ndarray) -> np.ndarray:
    """Nadaraya–Watson average of point values on the grid with a Gaussian kernel.

    The kernel reaches six widths, farther than the envelope lets the field go, so the average
    is defined (a smooth extrapolation of the nearest points) wherever the envelope is not ~0.
    """
    splat = _splat(shape_kji, index_kji, np.c_[values, np.ones(len(values))])
    smooth = ndimage.gaussian_filter(splat, sigma=(*sigma_kji, 0), mode="constant", truncate=6.0)
    weight = smooth[..., -1:]
    return smooth[..., :-1] / np.maximum(weight, 1e-14 * weight.max())


def point_deformation(reference: sitk.Image, targets: PointTargets, inside: sitk.Image | None = None, *,
                      kernel_sd_mm: float = KERNEL_SD_MM, falloff_mm: float = FALLOFF_MM) -> PointDeformation:
    """The smooth forward field carrying ``targets.source_ras_mm`` to ``targets.target_ras_mm``.

    Args:
        reference: the CT the field deforms (its grid's axes and extent).
        targets: (P, 3) RAS mm pairs; P ≥ 1, finite.
        inside: an optional mask on any grid (e.g. the union of the bone labels) inside which the
            field keeps its full strength: without it only the points themselves do.
        kernel_sd_mm: width of the Gaussian kernel that spreads the point displacements.
        falloff_mm: how fast the field fades away from the bones (Gaussian standard deviation).
    Returns:
        a :class:`PointDeformation`.
    """
    source = np.asarray(targets.source_ras_mm, dtype=np.float64)
    target = np.asarray(targets.target_ras_mm, dtype=np.float64)
    if source.ndim != 2 or source.shape[1] != 3 or source.shape != target.shape or not len(source):
        raise XreconInputError(f"need matching (P, 3) source and target points, got {source.shape} and {target.shape}")
    if not (np.isfinite(source).all() and np.isfinite(target).all()):
        raise XreconInputError("source and target points must be finite")
    if kernel_sd_mm <= 0 or falloff_mm <= 0:
        raise XreconInputError("kernel_sd_mm and falloff_mm must be positive")
    source_lps, wanted = source @ LPS_TO_RAS, (target - source) @ LPS_TO_RAS  # its own inverse
    grid = _field_grid(reference, source_lps, margin_mm=3.0 * falloff_mm + np.abs(wanted).max())
    shape = grid.GetSize()[::-1]
    index = _grid_index(grid, source_lps)
    sigma = kernel_sd_mm / np.asarray(grid.GetSpacing()[::-1])
    envelope = _envelope(grid, inside, index, falloff_mm)[..., None]
    displacement = np.zeros((*shape, 3))
    for _ in range(_CORRECTIONS):  # each round spreads what is still missing at the points
        missing = wanted - _sample(displacement, index)
        displacement += envelope * _kernel_average(shape, index, missing, sigma)
    scale, field = 1.0, None
    for _ in range(8):
        field = sitk.GetImageFromArray(scale * displacement, isVector=True)
        field.CopyInformation(grid)
        min_jacobian = float(jacobian_determinant(field).min())
        if min_jacobian >= MIN_JACOBIAN:
            break
        scale *= 0.7
    else:
        raise XreconInputError("the asked shape change folds the anatomy even when scaled to 8 %")
    residual = float(np.linalg.norm(scale * (wanted - _sample(displacement, index)), axis=1).mean())
    return PointDeformation(sitk.DisplacementFieldTransform(field), scale, residual, min_jacobian)
