"""Which views of a structure agree with each other, so that one bad view cannot spoil a fusion.

A view can miss a bone (nothing predicted) or get it wrong (a mask in the wrong place, depths
far off). With three or more views, each one is checked against the others: the others are
fused, the result is projected into the view being checked (exact mask and front depth, with
the depth renderer used for training targets), and the view is dropped when its mask overlaps
that projection poorly or its front depths disagree. At most one view short of a majority is
dropped, the worst first, and at least two always remain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SyntheticDataGenLib.depth import render_depth

from .surface import Grid, ViewEvidence, signed_distance


@dataclass
class ViewAgreement:
    """How one view agrees with the fusion of the others (NaN where it could not be checked)."""

    dice: float
    front_median_mm: float


def _agreement(view: ViewEvidence, others: list[ViewEvidence], spacing_mm: float) -> ViewAgreement:
    grid = Grid.around(others, spacing_mm)
    if grid is None:
        return ViewAgreement(0.0, np.nan)
    inside = signed_distance(grid.points_ras(), others)[0].reshape(grid.size_ijk[::-1]) > 0
    ijk_to_ras = np.diag([grid.spacing_mm] * 3 + [1.0])
    ijk_to_ras[:3, 3] = grid.origin_ras_mm
    projected = render_depth(inside, ijk_to_ras, view.geometry)
    mask = projected.mask.numpy()
    overlap = mask & view.mask
    total = mask.sum() + view.mask.sum()
    dice = 2.0 * overlap.sum() / total if total else 0.0
    front = (np.median(np.abs(projected.front_mm.numpy()[overlap] - view.front_mm[overlap]))
             if overlap.any() else np.nan)
    return ViewAgreement(float(dice), float(front))


def consistent_views(views: list[ViewEvidence], *, spacing_mm: float = 2.0, min_dice: float = 0.5,
                     max_front_error_mm: float = 15.0) -> tuple[list[int], list[ViewAgreement | None]]:
    """Indices of the views to fuse, and each view's agreement with the others (None: not checked).

    Empty views are never used. With fewer than three non-empty views there is no majority to
    check against, and all of them are used.
    """
    candidates = [index for index, view in enumerate(views) if not view.empty]
    agreements: list[ViewAgreement | None] = [None] * len(views)
    if len(candidates) < 3:
        return candidates, agreements
    for index in candidates:
        others = [views[other] for other in candidates if other != index]
        agreements[index] = _agreement(views[index], others, spacing_mm)

    def badness(index: int) -> float:
        agreement = agreements[index]
        front = agreement.front_median_mm if np.isfinite(agreement.front_median_mm) else np.inf
        return max((min_dice - agreement.dice) / min_dice, (front - max_front_error_mm) / max_front_error_mm)

    kept = list(candidates)
    for index in sorted(candidates, key=badness, reverse=True)[: (len(candidates) - 1) // 2]:
        if badness(index) > 0:
            kept.remove(index)
    return kept, agreements
