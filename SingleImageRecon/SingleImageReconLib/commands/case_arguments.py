"""The options that name a CT case, shared by the subcommands that read one."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.cases.sample_data import list_sample_cases, sample_case

if TYPE_CHECKING:  # readers are imported where a case is loaded, so parsing stays fast
    import SimpleITK as sitk

    from SyntheticDataGenLib.cases.labels import Segmentation


def add_case_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--case", metavar="NAME",
                        help=f"a bundled sample case: {', '.join(list_sample_cases()) or 'none installed'}")
    source.add_argument("--ct", metavar="FILE",
                        help="CT volume in HU: NIfTI, NRRD, MHA, or a folder holding one DICOM series")
    parser.add_argument("--labels", metavar="FILE",
                        help="bone labels: a label map (with --labels-table) or a Slicer .seg.nrrd")
    parser.add_argument("--labels-table", metavar="CSV",
                        help="CSV with columns id,structure naming the label map's ids")
    parser.add_argument("--structures", metavar="A,B,...", type=lambda text: [s for s in text.split(",") if s],
                        help="only these structures (default: every non-empty one)")
    parser.add_argument("--resample-labels", action="store_true",
                        help="resample labels on another grid onto the CT grid (nearest neighbour) "
                             "instead of refusing them")


def load_case(args: argparse.Namespace) -> tuple["sitk.Image", "Segmentation | None"]:
    """The CT and (if any) its segmentation named by the case options."""
    from SyntheticDataGenLib.cases.ct_io import read_ct
    from SyntheticDataGenLib.cases.labels import read_segmentation

    if args.case:
        if args.labels or args.labels_table:
            raise XreconInputError("--case brings its own labels; drop --labels/--labels-table")
        case = sample_case(args.case)
        ct_path, labels_path, table_path = case.ct_path, case.labels_path, case.table_path
    else:
        ct_path, labels_path, table_path = args.ct, args.labels, args.labels_table
    ct = read_ct(ct_path)
    if labels_path is None:
        if args.structures:
            raise XreconInputError("--structures needs --labels")
        return ct, None
    return ct, read_segmentation(labels_path, table_path, reference=ct, resample=args.resample_labels)
