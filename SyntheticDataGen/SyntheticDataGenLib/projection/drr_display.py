"""How a DRR is shown: the display window that makes the body, not the air, fill the grey range."""

from __future__ import annotations

import numpy as np


def drr_window(line_integral: np.ndarray) -> tuple[float, float]:
    """(low, high) display window of a DRR line integral (dimensionless Σμ·Δl, any shape).

    The 1st and 99.8th percentiles of the body's pixels: pixels below 2 % of the maximum are
    air beside the patient and would otherwise pull the window down. Non-finite values are left
    out; an empty or flat image still gets a window of positive width.
    """
    values = np.asarray(line_integral, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    body = values[values > 0.02 * values.max()] if values.max() > 0 else values
    body = body if body.size else values
    low, high = float(np.percentile(body, 1.0)), float(np.percentile(body, 99.8))
    return (low, high) if high > low else (low, low + 1.0)
