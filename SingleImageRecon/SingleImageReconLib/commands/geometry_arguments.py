"""The options that choose a projection geometry: a preset with C-arm angles, or a JSON file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from SyntheticDataGenLib.geometry import PRESETS, ProjectionGeometry, preset_geometry

from .number_options import DISTANCE_MM, PIXEL_SPACING_MM

if TYPE_CHECKING:
    import SimpleITK as sitk


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


parse_lao_deg = _angle(LAO_LIMIT_DEG, "LAO/RAO")
parse_cranial_deg = _angle(CRANIAL_LIMIT_DEG, "cranial/caudal tilt")


def _detector_px(text: str) -> int:
    value = int(text)
    if not 8 <= value <= MAX_DETECTOR_PX:
        raise argparse.ArgumentTypeError(f"{value} pixels: a detector side must be 8 to {MAX_DETECTOR_PX} pixels")
    return value


def add_geometry_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("projection geometry (RAS mm)")
    group.add_argument("--geometry", default="ap", metavar="PRESET|JSON",
                       help=f"a preset ({', '.join(PRESETS)}) or a geometry JSON file")
    group.add_argument("--lao", type=parse_lao_deg, default=0.0, metavar="DEG",
                       help="C-arm turn: + moves the detector to the patient's left (LAO), - RAO")
    group.add_argument("--cranial", type=parse_cranial_deg, default=0.0, metavar="DEG",
                       help="C-arm tilt: + moves the detector towards the head, - caudal")
    group.add_argument("--source-to-isocenter-mm", type=DISTANCE_MM, default=900.0)
    group.add_argument("--source-to-detector-mm", type=DISTANCE_MM, default=1100.0)
    group.add_argument("--detector-size-px", type=_detector_px, nargs=2, default=(256, 256), metavar=("WIDTH", "HEIGHT"))
    group.add_argument("--pixel-spacing-mm", type=PIXEL_SPACING_MM, nargs=2, default=(1.6, 1.6), metavar=("SU", "SV"))
    group.add_argument("--isocenter", type=float, nargs=3, metavar=("R", "A", "S"),
                       help="isocentre in RAS mm (default: the centre of the CT)")


def geometry_from_arguments(args: argparse.Namespace, ct: "sitk.Image") -> ProjectionGeometry:
    """The geometry the options name; presets are centred on the CT unless --isocenter is given."""
    from SyntheticDataGenLib.case_info import structures_centre_ras

    if args.geometry not in PRESETS and (args.geometry.endswith(".json") or Path(args.geometry).exists()):
        return ProjectionGeometry.load(args.geometry)
    return preset_geometry(
        args.geometry,
        isocenter_ras_mm=args.isocenter if args.isocenter is not None else structures_centre_ras(ct, []),
        source_to_isocenter_mm=args.source_to_isocenter_mm, source_to_detector_mm=args.source_to_detector_mm,
        size_px=args.detector_size_px, pixel_spacing_mm=args.pixel_spacing_mm,
        lao_deg=args.lao, cranial_deg=args.cranial)
