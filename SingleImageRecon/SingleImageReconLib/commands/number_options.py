"""Numbers on the command line that must be finite and within a physical range, checked while parsing.

An out-of-range value ends with argparse's own one-line error (exit status 2) that names the
option and the range, before any file is read.
"""

from __future__ import annotations

import argparse
import math


def number_in(low: float, high: float, unit: str = "", low_inclusive: bool = False):
    """An argparse ``type``: a float with low < x <= high (low <= x with ``low_inclusive``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above = value >= low if low_inclusive else value > low
        if not math.isfinite(value) or not above or value > high:
            bracket = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(f"{text} is outside {bracket}{low:g}, {high:g}]{' ' + unit if unit else ''}")
        return value
    return parse


GRID_SPACING_MM = number_in(0, 10, "mm")  # surface extraction and registration grids
PIXEL_SPACING_MM = number_in(0, 50, "mm")  # detector pixels (coarse test renders use 12.8 mm)
DISTANCE_MM = number_in(0, 5000, "mm")  # source to isocentre or detector
FIELD_OF_VIEW_MM = number_in(10, 1000, "mm")  # a detector's width: cassettes are 430 mm at most
