"""Numbers on the command line that must be finite and within a physical range, checked while parsing:
distances, spacings, fields of view, C-arm angles and detector sizes.

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


# a C-arm turns about the patient's long axis (LAO/RAO) and tilts towards head or feet; past
# these limits an angle names the same view as a smaller one, or none at all
LAO_LIMIT_DEG = 180.0
CRANIAL_LIMIT_DEG = 90.0
MAX_DETECTOR_PX = 4096  # a flat panel's pixel count per side (43 cm at 0.1 mm); more is a typo


def _angle(limit_deg: float, name: str):
    def parse(text: str) -> float:
        value = float(text)
        if not -limit_deg <= value <= limit_deg:
            raise argparse.ArgumentTypeError(f"{value:g}° is outside the C-arm's range for {name}, "
                                             f"-{limit_deg:g}° to {limit_deg:g}°")
        return value
    return parse


LAO_DEG = _angle(LAO_LIMIT_DEG, "LAO/RAO")
CRANIAL_DEG = _angle(CRANIAL_LIMIT_DEG, "cranial/caudal tilt")


def _detector_px(text: str) -> int:
    value = int(text)
    if not 8 <= value <= MAX_DETECTOR_PX:
        raise argparse.ArgumentTypeError(f"{value} pixels: a detector side must be 8 to {MAX_DETECTOR_PX} pixels")
    return value


DETECTOR_PX = _detector_px


def _thread_count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} threads: at least 1")
    return value


THREAD_COUNT = _thread_count
