"""The options that choose a projection geometry: a preset with C-arm angles, or a JSON file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from SyntheticDataGenLib.projection.geometry import PRESETS, ProjectionGeometry, preset_geometry

from .number_options import CRANIAL_DEG, DETECTOR_PX, DISTANCE_MM, LAO_DEG, PIXEL_SPACING_MM

if TYPE_CHECKING:
    import SimpleITK as sitk


def add_geometry_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("projection geometry (RAS mm)")
    group.add_argument("--geometry", default="ap", metavar="PRESET|JSON",
                       help=f"a preset ({', '.join(PRESETS)}) or a geometry JSON file")
    group.add_argument("--lao", type=LAO_DEG, default=0.0, metavar="DEG",
                       help="C-arm turn: + moves the detector to the patient's left (LAO), - RAO")
    group.add_argument("--cranial", type=CRANIAL_DEG, default=0.0, metavar="DEG",
                       help="C-arm tilt: + moves the detector towards the head, - caudal")
    group.add_argument("--source-to-isocenter-mm", type=DISTANCE_MM, default=900.0)
    group.add_argument("--source-to-detector-mm", type=DISTANCE_MM, default=1100.0)
    group.add_argument("--detector-size-px", type=DETECTOR_PX, nargs=2, default=(256, 256), metavar=("WIDTH", "HEIGHT"))
    group.add_argument("--pixel-spacing-mm", type=PIXEL_SPACING_MM, nargs=2, default=(1.6, 1.6), metavar=("SU", "SV"))
    group.add_argument("--isocenter", type=float, nargs=3, metavar=("R", "A", "S"),
                       help="isocentre in RAS mm (default: the centre of the CT)")


def geometry_from_arguments(args: argparse.Namespace, ct: "sitk.Image") -> ProjectionGeometry:
    """The geometry the options name; presets are centred on the CT unless --isocenter is given."""
    from SyntheticDataGenLib.cases.case_info import structures_centre_ras

    if args.geometry not in PRESETS and (args.geometry.endswith(".json") or Path(args.geometry).exists()):
        return ProjectionGeometry.load(args.geometry)
    return preset_geometry(
        args.geometry,
        isocenter_ras_mm=args.isocenter if args.isocenter is not None else structures_centre_ras(ct, []),
        source_to_isocenter_mm=args.source_to_isocenter_mm, source_to_detector_mm=args.source_to_detector_mm,
        size_px=args.detector_size_px, pixel_spacing_mm=args.pixel_spacing_mm,
        lao_deg=args.lao, cranial_deg=args.cranial)
