"""``xrecon evaluate``: a reconstruction against the CT's bone labels → metrics.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .structure_progress import add_progress_option


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="compare a reconstruction with the CT's bone labels (writes metrics.json)",
        description="Compare each surface of an 'xrecon reconstruct' folder with the same structure in the CT's "
                    "labels: ASSD, HD95, Chamfer (sum of the two mean distances), F1 at each --tau-mm "
                    "(area fractions of each surface within tau of the other), all in mm, and Dice and IoU of "
                    "the reconstruction voxelised on the labels' grid. Writes OUT (metrics.json, schema in "
                    "DESIGN.md) and, with --models, both surfaces of each structure coloured by their signed "
                    "distance to each other (point array distance_mm, + outside), as Slicer .vtk models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--recon", required=True, metavar="DIR", help="folder written by 'xrecon reconstruct'")
    truth = parser.add_mutually_exclusive_group(required=True)
    truth.add_argument("--case", metavar="NAME", help="a bundled sample case's labels")
    truth.add_argument("--labels", metavar="FILE", help="label map (with --labels-table) or Slicer .seg.nrrd")
    parser.add_argument("--labels-table", metavar="CSV", help="CSV with columns id,structure")
    parser.add_argument("--tau-mm", type=float, nargs="+", default=[1.0, 2.0], help="F1 thresholds")
    parser.add_argument("--models", metavar="DIR", help="also write distance-coloured models here")
    add_progress_option(parser)
    parser.add_argument("--out", required=True, metavar="METRICS_JSON", help="metrics file to write")
    parser.set_defaults(run=run)


def read_reconstruction(folder: str | Path) -> tuple[dict, dict]:
    """reconstruction.json of a folder and its surfaces (structure -> RAS polydata)."""
    from SyntheticDataGenLib.atomic_io import read_json
    from SyntheticDataGenLib.errors import XreconInputError

    from ..meshes.mesh_io import read_model

    folder = Path(folder)
    summary = read_json(folder / "reconstruction.json", f"{folder} is not a reconstruction (no reconstruction.json)")
    structures = summary.get("structures", {})
    if not isinstance(structures, dict) or not all(isinstance(entry, dict) and isinstance(entry.get("file"), (str, type(None)))
                                                   for entry in structures.values()):
        raise XreconInputError(f"{folder / 'reconstruction.json'}: 'structures' must map each structure to "
                               '{"file": "<name>.vtk" or null, ...}')
    surfaces = {name: read_model(folder / entry["file"]) for name, entry in structures.items() if entry.get("file")}
    return summary, surfaces


FAR_APART_MM = 50.0  # a bone this far off with no overlap is a mix-up, not a poor reconstruction


def run(args: argparse.Namespace) -> int:
    import time

    from SyntheticDataGenLib.atomic_io import check_output_folder, staged_output, write_text_atomically
    from SyntheticDataGenLib.cases.ct_io import ijk_to_ras
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.cases.labels import read_segmentation
    from SyntheticDataGenLib.cases.sample_data import sample_case

    from ..evaluation.evaluate import default_workers, evaluate_surfaces, measuring_pool, metrics_document, metrics_table
    from ..meshes.mesh_io import write_model
    from .structure_progress import structure_progress
    from .view_files import file_stem

    start = time.perf_counter()
    if any(tau <= 0 for tau in args.tau_mm):
        raise XreconInputError("--tau-mm values must be positive")
    summary, surfaces = read_reconstruction(args.recon)
    if args.models:
        check_output_folder(args.models, "evaluate")
    if Path(args.out).is_dir():
        raise XreconInputError(f"--out {args.out} is a folder; give the metrics JSON file to write")
    try:  # before the long part: a bad output path should fail at once
        Path(args.out).resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise XreconInputError(f"cannot write {args.out}: {error.strerror or error}") from None
    if args.case:
        case = sample_case(args.case)
        labels, table = case.labels_path, case.table_path
    else:
        labels, table = args.labels, args.labels_table
    segmentation = read_segmentation(labels, table)
    compared = [name for name in surfaces if name in segmentation.names]
    if not compared:
        raise XreconInputError(f"none of the reconstructed structures ({', '.join(surfaces) or 'none'}) is in "
                               f"{labels} ({', '.join(segmentation.names)})")
    with structure_progress(len(compared), "evaluating", args.progress) as progress, \
            measuring_pool(min(default_workers(), len(compared))) as pool:
        evaluations = evaluate_surfaces(surfaces, segmentation, ijk_to_ras(segmentation.reference), tuple(args.tau_mm),
                                        pool=pool, progress=progress)
    method = summary.get("method", "depth")
    timing = {f"reconstruct_{stage}": seconds for stage, seconds in summary.get("timing_s", {}).items()}
    timing["evaluate"] = time.perf_counter() - start
    not_in_labels = sorted(set(surfaces) - set(segmentation.names))
    document = metrics_document({method: evaluations}, timing,
                                {"reconstruction": str(Path(args.recon).resolve()), "labels": str(labels),
                                 "not_in_labels": not_in_labels})
    write_text_atomically(args.out, json.dumps(document, indent=2))
    if args.models:
        with staged_output(args.models, "evaluate") as staging:
            for name, evaluation in evaluations.items():
                write_model(staging / f"{file_stem(name)}.vtk", evaluation.reconstruction)
                write_model(staging / f"{file_stem(name)}_truth.vtk", evaluation.truth)
    print(metrics_table({method: evaluations}))
    apart = [name for name, e in evaluations.items() if e.metrics["dice"] == 0 and e.metrics["assd_mm"] > FAR_APART_MM]
    if apart:
        print(f"warning: {', '.join(apart)} do not overlap the labels at all (ASSD above {FAR_APART_MM:.0f} mm): "
              "are the reconstruction and the labels of the same patient, in the same coordinates?", file=sys.stderr)
    print(f"wrote {args.out}" + (f" and coloured models in {args.models}" if args.models else ""))
    return 0
