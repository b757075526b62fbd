"""``xrecon info``: print a CT's geometry and its structures' sizes and places as JSON."""

from __future__ import annotations

import argparse
import json

from .case_arguments import add_case_arguments, load_case


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="describe a CT and its structures (JSON)",
        description="Print JSON: CT size, spacing (mm), origin and direction (RAS), HU range, and for "
                    "each structure its voxel count, volume (ml) and RAS bounding box of voxel centres (mm).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_case_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from SyntheticDataGenLib.cases.case_info import describe_case

    ct, segmentation = load_case(args)
    print(json.dumps(describe_case(ct, segmentation, args.structures), indent=2))
    return 0
