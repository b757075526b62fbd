"""A JSON summary of a CT and its structures (what ``xrecon info`` prints)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import SimpleITK as sitk

from .ct_io import ijk_to_ras
from .labels import Segmentation


def _ras_bounds(ijk_to_ras_matrix: np.ndarray, index_min, index_max) -> list[list[float]]:
    """RAS bounding box [[xmin, ymin, zmin], [xmax, ymax, zmax]] of voxel centres in an index box."""
    corners = np.array([[i, j, k] for i in (index_min[0], index_max[0])
                        for j in (index_min[1], index_max[1]) for k in (index_min[2], index_max[2])],
                       dtype=np.float64)
    ras = corners @ ijk_to_ras_matrix[:3, :3].T + ijk_to_ras_matrix[:3, 3]
    return [ras.min(axis=0).tolist(), ras.max(axis=0).tolist()]


def describe_case(ct: sitk.Image, segmentation: Segmentation | None = None,
                  structures: list[str] | None = None) -> dict:
    """Geometry and intensity range of a CT, and size and place of each structure.

    Returns a JSON-ready dict::

        {"coordinate_system": "RAS",
         "ct": {"size": [i, j, k], "spacing_mm": [..], "origin_ras_mm": [..],
                "direction_ras": 3×3 rows, "hu_range": [min, max]},
         "structures": {name: {"voxels": n, "volume_ml": v,
                               "bounds_ras_mm": [[xmin, ymin, zmin], [xmax, ymax, zmax]]}}}

    Bounds are those of the structure's voxel centres. ``structures`` None lists every
    non-empty structure.
    """
    matrix = ijk_to_ras(ct)
    spacing = np.asarray(ct.GetSpacing(), dtype=np.float64)
    voxels = sitk.GetArrayViewFromImage(ct)
    info = {
        "coordinate_system": "RAS",
        "ct": {
            "size": list(ct.GetSize()),
            "spacing_mm": spacing.tolist(),
            "origin_ras_mm": matrix[:3, 3].tolist(),
            "direction_ras": (matrix[:3, :3] / spacing).tolist(),
            "hu_range": [float(voxels.min()), float(voxels.max())],
        },
        "structures": {},
    }
    if segmentation is None:
        return info
    voxel_ml = float(np.prod(spacing)) / 1000.0
    for name in segmentation.select(structures):
        mask = segmentation.mask_array(name)  # (k, j, i)
        kji = np.nonzero(mask)
        index_min = [int(kji[2].min()), int(kji[1].min()), int(kji[0].min())]
        index_max = [int(kji[2].max()), int(kji[1].max()), int(kji[0].max())]
        count = int(kji[0].size)
        info["structures"][name] = {
            "voxels": count,
            "volume_ml": count * voxel_ml,
            "bounds_ras_mm": _ras_bounds(matrix, index_min, index_max),
        }
    return info


def structures_centre_ras(ct: sitk.Image, masks_kji: Iterable[np.ndarray]) -> np.ndarray:
    """Centre (RAS mm) of the voxel box that holds all the (K, J, I) masks; of the CT box without any.

    The isocentre of generated views: the bones, not the scan, should sit in the middle.
    """
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    for mask in masks_kji:
        kji = np.argwhere(mask)
        if len(kji):
            low, high = np.minimum(low, kji.min(axis=0)), np.maximum(high, kji.max(axis=0))
    if not np.all(np.isfinite(low)):
        low, high = np.zeros(3), (np.array(ct.GetSize()) - 1)[::-1].astype(float)
    matrix = ijk_to_ras(ct)
    return matrix[:3, :3] @ ((low + high)[::-1] / 2) + matrix[:3, 3]


BODY_HU = -300.0  # soft tissue and bone; air, lung and the scanner's padding are below


def case_centre_ras(ct: sitk.Image, masks_kji: list[np.ndarray]) -> tuple[np.ndarray, tuple[float, float]]:
    """Where a case's generated views are centred, and the head-foot range of its bones.

    Returns:
        centre (RAS mm): right-left and anterior-posterior from the body's centroid (tissue above
            ``BODY_HU``; a patient lies centred in the beam, so the depth of each bone about the
            isocentre is anatomy the network can learn), head-foot from the bones' box centre
            (:func:`structures_centre_ras`);
        (lowest, highest) RAS S coordinate (mm) of any labelled voxel centre.
    """
    bones = structures_centre_ras(ct, masks_kji)
    matrix = ijk_to_ras(ct)
    step = max(1, int(round(2.0 / min(ct.GetSpacing()))))  # a 2 mm sampling is plenty for a centroid
    body = np.argwhere(sitk.GetArrayViewFromImage(ct)[::step, ::step, ::step] > BODY_HU) * step
    centre = bones.copy()
    if len(body):
        centre[:2] = (matrix[:3, :3] @ body.mean(axis=0)[::-1] + matrix[:3, 3])[:2]
    heights = [(matrix[:3, :3] @ np.argwhere(mask)[:, ::-1].T)[2] + matrix[2, 3] for mask in masks_kji if mask.any()]
    if heights:
        every = np.concatenate(heights)
        head_foot = (float(every.min()), float(every.max()))
    else:
        head_foot = (float(bones[2]), float(bones[2]))
    return centre, head_foot
