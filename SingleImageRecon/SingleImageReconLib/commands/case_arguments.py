"""The options that name a CT case, shared by the subcommands that read one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from SyntheticDataGenLib.cases.case_names import GENERIC_CASE_NAMES
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.cases.sample_data import list_sample_cases, sample_case

if TYPE_CHECKING:  # readers are imported where a case is loaded, so parsing stays fast
    import SimpleITK as sitk

    from SyntheticDataGenLib.cases.labels import Segmentation


def add_case_arguments(parser: argparse.ArgumentParser, default_case: str | None = None,
                       structures: bool = True) -> None:
    """--case or --ct (required unless ``default_case`` names the case taken without either),
    --labels, --labels-table, --resample-labels and (with ``structures``) --structures."""
    source = parser.add_mutually_exclusive_group(required=default_case is None)
    source.add_argument("--case", metavar="NAME", default=default_case,
                        help=f"a bundled sample case: {', '.join(list_sample_cases()) or 'none installed'}")
    source.add_argument("--ct", metavar="FILE",
                        help="CT volume in HU: NIfTI, NRRD, MHA, or a folder holding one DICOM series")
    parser.add_argument("--labels", metavar="FILE",
                        help="bone labels: a label map (with --labels-table) or a Slicer .seg.nrrd")
    parser.add_argument("--labels-table", metavar="CSV",
                        help="CSV with columns id,structure naming the label map's ids")
    if structures:
        parser.add_argument("--structures", metavar="A,B,...", type=lambda text: [s for s in text.split(",") if s],
                            help="only these structures (default: every non-empty one)")
    parser.add_argument("--resample-labels", action="store_true",
                        help="resample labels on another grid onto the CT grid (nearest neighbour) "
                             "instead of refusing them")


def case_name(ct_path: str | Path) -> str:
    """A --ct case's name: a DICOM folder's name or the file name without extensions, or for a
    generic one (``ct.nii.gz``, a folder ``dicom``: :data:`GENERIC_CASE_NAMES`) the name of the
    folder holding it."""
    path = Path(ct_path).absolute()
    stem = path.name if path.is_dir() else path.name.split(".")[0]
    return path.parent.name if stem.lower() in GENERIC_CASE_NAMES and path.parent.name else stem


def case_files(args: argparse.Namespace) -> tuple[str, str, str | None, str | None]:
    """(case name, CT path, labels path or None, label table path or None) named by the case options."""
    if args.ct:
        return case_name(args.ct), args.ct, args.labels, args.labels_table
    if args.labels or args.labels_table:
        raise XreconInputError("--case brings its own labels; drop --labels/--labels-table")
    case = sample_case(args.case)
    return case.name, str(case.ct_path), str(case.labels_path), str(case.table_path)


def load_case(args: argparse.Namespace) -> tuple["sitk.Image", "Segmentation | None"]:
    """The CT and (if any) its segmentation named by the case options."""
    from SyntheticDataGenLib.cases.ct_io import read_ct
    from SyntheticDataGenLib.cases.labels import read_segmentation

    _name, ct_path, labels_path, table_path = case_files(args)
    ct = read_ct(ct_path)
    if labels_path is None:
        if getattr(args, "structures", None):
            raise XreconInputError("--structures needs --labels")
        return ct, None
    return ct, read_segmentation(labels_path, table_path, reference=ct, resample=args.resample_labels)
