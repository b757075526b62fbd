"""Tidy a network's mask and depth maps of one structure before they are lifted to 3D.

Predicted masks have specks and pinholes, and predicted depths have outliers. A bone projects
as a few large blobs at most, so specks far smaller than the largest blob go; small holes are
filled, while large ones stay (the obturator foramen of the hip bone is a real hole); depths
are replaced by their local median where they stray from it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import morphology

from .surface import ViewEvidence


def clean_evidence(evidence: ViewEvidence, *, min_blob_fraction: float = 0.1, max_hole_px: int = 16,
                   median_px: int = 5, outlier_mm: float = 10.0) -> ViewEvidence:
    """The evidence with specks, pinholes and depth outliers removed.

    Args:
        min_blob_fraction: blobs smaller than this fraction of the largest are dropped.
        max_hole_px: holes up to this area (pixels) are filled.
        median_px: window of the local median of the depths (pixels).
        outlier_mm: a depth further than this from its local median is replaced by it.
    """
    mask = evidence.mask
    if not mask.any():
        return evidence
    labels, count = ndimage.label(mask)
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    mask = np.isin(labels, 1 + np.flatnonzero(areas >= min_blob_fraction * areas.max()))
    mask = morphology.remove_small_holes(mask, max_size=max_hole_px)
    # the median of the mask's own pixels: continue the depths past the edge first
    nearest = tuple(ndimage.distance_transform_edt(~evidence.mask, return_distances=False, return_indices=True))
    # filtered only around the mask (the window's reach beyond it), where the surface reads them
    rows, columns = np.nonzero(evidence.mask)
    box = tuple(slice(max(int(lo) - median_px, 0), int(hi) + median_px + 1)
                for lo, hi in ((rows.min(), rows.max()), (columns.min(), columns.max())))
    depths = []
    for depth in (evidence.front_mm, evidence.back_mm):
        continued = depth[nearest]
        median = ndimage.median_filter(continued[box], size=median_px, mode="nearest")
        cropped = continued[box]
        continued[box] = np.where(np.abs(cropped - median) > outlier_mm, median, cropped)
        depths.append(continued)
    front, back = depths
    return ViewEvidence(evidence.geometry, mask, front, np.maximum(back, front))
