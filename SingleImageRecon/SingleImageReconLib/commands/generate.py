"""``xrecon generate``: a synthetic training set from a few CTs (reproducible, resumable, shardable)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from SyntheticDataGenLib.dataset.generation_job import progress_line

from .case_arguments import case_name
from .geometry_arguments import add_geometry_arguments
from .structure_progress import add_progress_option


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"need 0 <= I < N, got {text!r}")
    return index, count


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="make a synthetic training set (DRRs + exact targets, augmented)",
        description="Render VIEWS augmented radiographs per case with exact per-structure masks, front/back depth "
                    "maps and projected landmarks. The same --seed gives identical files; --shard I/N renders a "
                    "disjoint part (the union of all parts is the unsharded set); running again with the same "
                    "options resumes. Cases: --case NAME for bundled samples, or --ct/--labels/--labels-table "
                    "triples (repeat the options; the n-th of each belong together). A case's 3D landmarks are "
                    "read from --landmarks-dir/<case>.mrk.json, else from landmarks.mrk.json beside its CT, when "
                    "present (`xrecon ssm landmarks` makes them). Validation cases (--holdout) are "
                    "split by case, never by image.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cases = parser.add_argument_group("cases")
    cases.add_argument("--case", action="append", default=[], metavar="NAME", help="a bundled sample case")
    cases.add_argument("--ct", action="append", default=[], metavar="FILE", help="a CT (NIfTI, NRRD, MHA, DICOM folder)")
    cases.add_argument("--labels", action="append", default=[], metavar="FILE", help="its labels (label map or .seg.nrrd)")
    cases.add_argument("--labels-table", action="append", default=[], metavar="CSV",
                       help="its id,structure table (for label maps; give one per --ct, or none for .seg.nrrd)")
    cases.add_argument("--landmarks-dir", type=Path, metavar="DIR",
                       help="folder of <case name>.mrk.json landmark files (from `xrecon ssm landmarks`)")
    cases.add_argument("--holdout", action="append", default=[], metavar="NAME", help="a validation case")
    cases.add_argument("--structures", type=lambda text: [s for s in text.split(",") if s], metavar="A,B,...",
                       help="target structures, in channel order (default: every structure of any case)")
    add_geometry_arguments(parser)
    augmentation = parser.add_argument_group("augmentation")
    augmentation.add_argument("--preset", default="heavy", choices=("none", "light", "heavy"))
    for group in ("geometric", "physics", "style", "anatomy"):
        augmentation.add_argument(f"--{group}", type=float, default=1.0, metavar="STRENGTH",
                                  help=f"scale the preset's {group} augmentation (0 = off)")
    augmentation.add_argument("--shape", type=float, default=1.0, metavar="STRENGTH",
                              help="scale the preset's shape-model anatomy (bones given new shapes drawn from the "
                                   "bundled shape models; 0 = off). Each case's bones are registered to the models "
                                   "once, kept in DATASET/shape_correspondences/")
    augmentation.add_argument("--hip-pose", type=float, default=0.0, metavar="STRENGTH",
                              help="turn femurs about their heads, the thigh with them (1: 40%% of femurs, flexed "
                                   "-10 to 80°, abducted -10 to 40°; needs each case's femoral_head_centre landmark, "
                                   "--landmarks-dir). Off by default: no shipped bundle was trained with it")
    augmentation.add_argument("--views-per-anatomy", type=int, default=4,
                              help="views rendered from each deformed anatomy")
    parser.add_argument("--views", type=int, required=True, help="samples per case")
    parser.add_argument("--ct-spacing-mm", type=float, default=0.0, metavar="MM",
                        help="resample CT axes finer than this to it before rendering (faster; 0 keeps every CT's grid)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N")
    parser.add_argument("--preview", action="store_true", help="also write OUT/preview.png, 32 samples with targets")
    add_progress_option(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, metavar="DATASET")
    parser.set_defaults(run=run)


def case_sources(args: argparse.Namespace) -> list:
    """The cases named on the command line, with their split."""
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.dataset.generation import CaseSource
    from SyntheticDataGenLib.cases.sample_data import sample_case

    sources = []
    for name in args.case:
        case = sample_case(name)
        sources.append((name, case.ct_path, case.labels_path, case.table_path))
    if args.labels and len(args.labels) != len(args.ct):
        raise XreconInputError("give one --labels per --ct")
    if args.labels_table and len(args.labels_table) != len(args.ct):
        raise XreconInputError("give one --labels-table per --ct (or none, for .seg.nrrd labels)")
    for index, ct in enumerate(args.ct):
        path = Path(ct)
        name = case_name(path)
        labels = Path(args.labels[index]) if args.labels else None
        table = Path(args.labels_table[index]) if args.labels_table else None
        sources.append((name, path, labels, table))
    names = [source[0] for source in sources]
    unknown = set(args.holdout) - set(names)
    if unknown:
        raise XreconInputError(f"--holdout {', '.join(sorted(unknown))} is not among the cases: {', '.join(names)}")
    result = []
    if args.landmarks_dir is not None and not args.landmarks_dir.is_dir():
        raise XreconInputError(f"--landmarks-dir {args.landmarks_dir} is not a folder")
    for name, ct, labels, table in sources:
        landmarks = (ct.parent if ct.is_file() else ct) / "landmarks.mrk.json"
        if args.landmarks_dir is not None and (args.landmarks_dir / f"{name}.mrk.json").is_file():
            landmarks = args.landmarks_dir / f"{name}.mrk.json"
        result.append(CaseSource(name, ct, labels, table, "validation" if name in args.holdout else "train",
                                 landmarks if landmarks.is_file() else None))
    return result


def _existing_folder(path: Path) -> Path:
    """The nearest folder that exists on the way to ``path`` (where its files would go)."""
    path = path.resolve()
    while not path.is_dir():
        path = path.parent
    return path


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def run(args: argparse.Namespace) -> int:
    import shutil

    import torch

    from SyntheticDataGenLib.augmentation.ladder import preset
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.dataset.generation import (BaseView, CaseLoader, GenerationSettings, dataset_plan,
                                                generate_dataset)
    from SyntheticDataGenLib.memory import check_fits, render_bytes

    if args.views < 1 or args.views_per_anatomy < 1:
        raise XreconInputError("--views and --views-per-anatomy must be at least 1")
    if not 0 <= args.ct_spacing_mm <= 10:
        raise XreconInputError(f"--ct-spacing-mm must be between 0 and 10, got {args.ct_spacing_mm}")
    if args.geometry.endswith(".json"):
        raise XreconInputError("generate varies a preset view; give --geometry ap|pa|lateral-left|lateral-right")
    cases = case_sources(args)
    if not cases:
        raise XreconInputError("name at least one case (--case NAME or --ct FILE --labels FILE)")
    structures = args.structures
    if structures is None:
        loader = CaseLoader([])
        structures = []
        for case in cases:
            segmentation = loader.raw(case).segmentation
            present = segmentation.select(None) if segmentation else []
            structures += [name for name in present if name not in structures]
    # the detector's maps dominate a sample's memory; the CT, read later, adds a few hundred MB at most
    check_fits(render_bytes(*args.detector_size_px, len(structures), 0), "rendering one sample",
               "use a smaller --detector-size-px or fewer --structures")
    augmentation = preset(args.preset).with_hip_poses(args.hip_pose).scaled(
        geometric=args.geometric, physics=args.physics, style=args.style, anatomy=args.anatomy, shape=args.shape)
    shape_sampler = None
    if augmentation.shape_model_probability > 0:
        from ..shape_models.model_files import load_models
        from ..shape_models.shape_sampling import ShapeModelSampler

        shape_sampler = ShapeModelSampler(load_models(), Path(args.out) / "shape_correspondences")
    settings = GenerationSettings(
        structures=structures, views_per_case=args.views, seed=args.seed, augmentation=augmentation,
        augmentation_name=args.preset, views_per_anatomy=args.views_per_anatomy, ct_spacing_mm=args.ct_spacing_mm,
        base_view=BaseView(args.geometry, args.lao, args.cranial, args.source_to_isocenter_mm,
                           args.source_to_detector_mm, tuple(args.detector_size_px), tuple(args.pixel_spacing_mm)))

    plan = dataset_plan(args.out, cases, settings, args.shard)
    free = shutil.disk_usage(_existing_folder(Path(args.out))).free
    print(f"xrecon generate: {plan.samples} sample(s) in shard {args.shard[0]}/{args.shard[1]}, {plan.finished} "
          f"already there; the rest take about {_duration(plan.seconds)} and {plan.bytes / 1e9:.2g} GB "
          f"({free / 1e9:.0f} GB free)", file=sys.stderr, flush=True)
    if plan.bytes > free:
        raise XreconInputError(f"the samples would need about {plan.bytes / 1e9:.2g} GB, but {args.out} has "
                               f"{free / 1e9:.2g} GB free; ask for fewer --views, or write to a disk with more room")
    bar = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar
        if args.progress == "lines":
            print(progress_line(done, total), flush=True)
        elif args.progress == "bar":
            if bar is None:
                from tqdm import tqdm  # only here: Slicer's Python, which runs --progress lines, lacks it

                bar = tqdm(total=total, initial=done, unit="sample", desc="generate", dynamic_ncols=True)
            bar.update(done - bar.n)

    written = generate_dataset(args.out, cases, settings, shard=args.shard, command=["xrecon", *sys.argv[1:]],
                               device=torch.device(args.device), shape_sampler=shape_sampler,
                               on_progress=on_progress)
    if bar is not None:
        bar.close()
    if args.preview:
        from SyntheticDataGenLib.dataset.preview import contact_sheet

        contact_sheet(args.out, Path(args.out) / "preview.png")
    print(f"{args.out}: {written} new sample(s); shard {args.shard[0]}/{args.shard[1]} complete", file=sys.stderr)
    return 0
