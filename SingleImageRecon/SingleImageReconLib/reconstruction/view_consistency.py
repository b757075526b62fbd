"""Which views of a structure agree, so that one bad view cannot spoil a fusion.

A view can miss a bone (nothing predicted) or get it wrong (a mask in the wrong place, depths
far off). Views that agree have a fusion that projects back onto each of their masks: the
intersection of consistent views, seen from any of them, fills that view's silhouette. The
consistency of a set of views is therefore the mean Dice, over its views, between each mask
and the projection of the set's fusion (projected with the exact mask renderer used for the
training targets). With three or more views, the view whose removal makes the rest most
consistent is dropped, when that gain is clear; this repeats while a majority remains.
"""

from __future__ import annotations

import numpy as np

from SyntheticDataGenLib.projection.depth import render_depth

from .surface import Grid, ViewEvidence, signed_distance


def _projected_dice(views: list[ViewEvidence], spacing_mm: float) -> list[float]:
    """Dice of each view's mask with the projection of the views' fusion (intersection)."""
    grid = Grid.around(views, spacing_mm)
    if grid is None:
        return [0.0] * len(views)
    inside = signed_distance(grid.points_ras(), views)[0].reshape(grid.size_ijk[::-1]) > 0
    if not inside.any():
        return [0.0] * len(views)
    ijk_to_ras = np.diag([grid.spacing_mm] * 3 + [1.0])
    ijk_to_ras[:3, 3] = grid.origin_ras_mm
    scores = []
    for view in views:
        projected = render_depth(inside, ijk_to_ras, view.geometry).mask.numpy()
        scores.append(2.0 * (projected & view.mask).sum() / max(projected.sum() + view.mask.sum(), 1))
    return scores


def consistency(views: list[ViewEvidence], spacing_mm: float = 2.0) -> float:
    """Mean Dice between each view's mask and the projection of all the views' fusion (0 to 1)."""
    return float(np.mean(_projected_dice(views, spacing_mm))) if views else 0.0


def consistent_views(views: list[ViewEvidence], *, spacing_mm: float = 2.0, min_gain: float = 0.1
                     ) -> tuple[list[int], dict[str, float]]:
    """Indices of the views to fuse, and the consistency before and after any were dropped.

    Empty views are never used. A view is dropped when leaving it out raises the consistency
    of the others by at least ``min_gain``; at most ⌊(n−1)/2⌋ of n views are dropped.
    """
    kept = [index for index, view in enumerate(views) if not view.empty]
    report = {}
    if len(kept) < 3:
        return kept, report
    report["consistency_all"] = current = consistency([views[i] for i in kept], spacing_mm)
    for _ in range((len(kept) - 1) // 2):
        without = {i: consistency([views[j] for j in kept if j != i], spacing_mm) for i in kept}
        worst = max(without, key=without.get)
        if without[worst] < current + min_gain:
            break
        kept.remove(worst)
        current = without[worst]
    report["consistency_used"] = current
    return kept, report
