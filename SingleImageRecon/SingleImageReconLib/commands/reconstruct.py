"""``xrecon reconstruct``: calibrated radiograph(s) → one closed surface per bone."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from SyntheticDataGenLib.projection.geometry import PRESETS

from .number_options import CRANIAL_DEG, DISTANCE_MM, FIELD_OF_VIEW_MM, GRID_SPACING_MM, LAO_DEG, PIXEL_SPACING_MM
from .structure_progress import add_progress_option

DEFAULT_BUNDLE = "xrecon-depth-ap256"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "reconstruct", help="radiograph(s) with known geometry -> per-bone surface models",
        description="Predict each bone's mask and front/back depth maps from each radiograph with a bundled "
                    "network, lift them to 3D, fuse the views (several calibrated radiographs of one patient) "
                    "and write one closed surface per bone: OUT/<structure>.vtk (LPS, as Slicer writes "
                    "models; point arrays 'view' and 'constraint' tell which view and which face shaped each "
                    "vertex), OUT/reconstruction.json, and for each view OUT/view<N>/ with the network input "
                    "and the predicted masks and depth maps on the detector plane. Radiographs: NRRD, NIfTI, "
                    "MHA, DICOM or PNG/JPEG/TIFF, bone bright. Nothing is written unless everything succeeds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--image", nargs="+", required=True, metavar="FILE", help="radiograph(s) of one patient")
    group = parser.add_argument_group("projection geometry (RAS mm)")
    group.add_argument("--geometry", nargs="+", metavar="JSON|PRESET",
                       help=f"one per image, or one for all: a geometry JSON file (as 'xrecon render' writes) or a "
                            f"preset ({', '.join(PRESETS)}) about --isocenter. Default: the DICOM file's tags (missing "
                            "ones assumed, with a warning); for a picture with --pixel-spacing-mm or "
                            "--field-of-view-mm, the preset ap (with a warning)")
    group.add_argument("--lao", type=LAO_DEG, nargs="+", default=[0.0], metavar="DEG",
                       help="C-arm LAO angle of each preset view (one per image, or one for all)")
    group.add_argument("--cranial", type=CRANIAL_DEG, nargs="+", default=[0.0], metavar="DEG",
                       help="C-arm cranial angle of each preset view")
    group.add_argument("--source-to-isocenter-mm", type=DISTANCE_MM, default=900.0)
    group.add_argument("--source-to-detector-mm", type=DISTANCE_MM, default=1100.0)
    group.add_argument("--pixel-spacing-mm", type=PIXEL_SPACING_MM, nargs=2, metavar=("SU", "SV"),
                       help="detector pixel size; a preset or a picture needs it or --field-of-view-mm (a picture "
                            "does not say its scale); wins over --field-of-view-mm and a DICOM file's tags")
    group.add_argument("--field-of-view-mm", type=FIELD_OF_VIEW_MM, metavar="W",
                       help="physical width of the image's larger side at the detector (square pixels: spacing = "
                            "W / larger side in px), instead of --pixel-spacing-mm or a DICOM file's spacing tags. "
                            "DICOM files without spacing tags get 430 mm (a 43 cm detector), with a warning")
    group.add_argument("--isocenter", type=float, nargs=3, default=(0.0, 0.0, 0.0), metavar=("R", "A", "S"),
                       help="isocentre of preset views in RAS mm")
    parser.add_argument("--method", choices=("depth", "ssm", "combined"), default="depth",
                        help="depth: masks and front/back depth maps lifted to surfaces; ssm: each bone's shape "
                             "model fitted to predicted landmarks (σ-weighted, robust; OUT/landmarks.mrk.json holds "
                             "the fitted 3D landmarks, OUT/view<N>/landmarks.mrk.json the 2D ones); combined: each "
                             "bone the depth network finds as its shape model fitted to the depth network's masks "
                             "and front/back depth maps and to the predicted landmarks (closes the concavities one "
                             "view leaves open, such as the spinal canal)")
    parser.add_argument("--bundle", metavar="DIR",
                        help=f"model bundle (default: the bundled Resources/Models/{DEFAULT_BUNDLE})")
    parser.add_argument("--landmark-bundle", metavar="DIR",
                        help="landmark model bundle of --method ssm and combined (default: the bundled "
                             "Resources/Models/xrecon-landmarks-ap256)")
    parser.add_argument("--structures", metavar="A,B,...", type=lambda text: [s for s in text.split(",") if s],
                        help="only these of the bundle's structures")
    parser.add_argument("--spacing-mm", type=GRID_SPACING_MM, default=1.5, help="voxel size of the surface extraction grid")
    parser.add_argument("--fusion", choices=("intersection", "vote"), default="intersection",
                        help="combine views by intersecting what each allows, or by majority vote")
    parser.add_argument("--threshold", type=float, default=0.5, help="mask probability taken as bone")
    parser.add_argument("--presence-threshold", type=float, default=0.5,
                        help="presence probability from which a structure counts as found; the others get no "
                             "surface and are listed as not found")
    parser.add_argument("--invert", action="store_true",
                        help="the images show bone dark (raw detector intensity); not needed for DICOM files, whose "
                             "PhotometricInterpretation (MONOCHROME1) and VOI window are applied")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    add_progress_option(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.set_defaults(run=run)


def _per_image(values: list, count: int, option: str) -> list:
    from SyntheticDataGenLib.errors import XreconInputError

    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise XreconInputError(f"{option}: give one value for all {count} images or one per image, not {len(values)}")
    return values


def resolve_geometries(args: argparse.Namespace, radiographs: list) -> list:
    """Each radiograph's geometry: from --geometry (JSON or preset), else from its DICOM tags, else, for a
    picture given a scale (--pixel-spacing-mm or --field-of-view-mm), the preset ap.

    Then refuses radiographs that are not plausible (``radiograph_checks``), before any network is
    loaded, and prints one warning line on stderr per view whose geometry rests on assumptions
    (missing DICOM tags, the ap default); printed last, so that refused input gives one line only.
    """
    import sys

    from SyntheticDataGenLib.projection.dicom_geometry import geometry_from_dicom, spacing_from_field_of_view
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry, preset_geometry

    from ..radiographs.radiograph_checks import check_plausible
    from ..radiographs.radiograph_io import check_fits

    if args.field_of_view_mm is not None and not args.field_of_view_mm > 0:
        raise XreconInputError(f"--field-of-view-mm must be positive (mm), got {args.field_of_view_mm}")
    specs = _per_image(args.geometry, len(radiographs), "--geometry") if args.geometry else [None] * len(radiographs)
    lao = _per_image(args.lao, len(radiographs), "--lao")
    cranial = _per_image(args.cranial, len(radiographs), "--cranial")
    geometries, warnings = [], []
    for radiograph, spec, lao_deg, cranial_deg in zip(radiographs, specs, lao, cranial):
        height, width = radiograph.image.shape
        spacing = args.pixel_spacing_mm or (
            spacing_from_field_of_view(args.field_of_view_mm, (width, height)) if args.field_of_view_mm else None)
        if spec is None and radiograph.geometry is not None:
            geometry = radiograph.geometry if spacing is None else geometry_from_dicom(
                radiograph.path, pixel_spacing_mm=spacing, assume_missing=True)
        elif spec is None and spacing is None:
            raise XreconInputError(
                f"no projection geometry for {radiograph.path.name}: give --geometry (a JSON file, or a preset with "
                "--pixel-spacing-mm or --field-of-view-mm), or --field-of-view-mm alone for an AP view; only DICOM "
                "files carry their own")
        elif spec is None or spec in PRESETS:
            if spacing is None:
                raise XreconInputError(f"--geometry {spec}: give the detector's --pixel-spacing-mm or "
                                       "--field-of-view-mm as well")
            geometry = preset_geometry(spec or "ap", isocenter_ras_mm=args.isocenter,
                                       source_to_isocenter_mm=args.source_to_isocenter_mm,
                                       source_to_detector_mm=args.source_to_detector_mm, size_px=(width, height),
                                       pixel_spacing_mm=spacing, lao_deg=lao_deg, cranial_deg=cranial_deg)
            if spec is None:
                geometry = ProjectionGeometry.from_dict({**geometry.to_dict(), "assumptions": [
                    f"no --geometry: taken as an AP view (preset ap, source {args.source_to_isocenter_mm:g} mm from "
                    f"the isocentre and {args.source_to_detector_mm:g} mm from the detector)"]})
        else:
            if not Path(spec).is_file():
                raise XreconInputError(f"--geometry {spec}: neither a preset ({', '.join(PRESETS)}) nor a file")
            geometry = ProjectionGeometry.load(spec)
        check_fits(radiograph, geometry)
        geometries.append(geometry)
        if spec is None and geometry.extra.get("assumptions"):
            warnings.append(f"{radiograph.path.name}: {'; '.join(geometry.extra['assumptions'])}")
    for radiograph in radiographs:
        check_plausible(radiograph.image, radiograph.path.name)
    for line in warnings:
        print(f"xrecon reconstruct: warning: {line}", file=sys.stderr)
    return geometries


def default_bundle_dir() -> Path:
    from SyntheticDataGenLib.cases.sample_data import resources_dir

    return resources_dir() / "Models" / DEFAULT_BUNDLE


def write_reconstruction(out: str | Path, reconstruction, sources: list[str], bundle_dir: Path, settings: dict) -> None:
    """The surfaces, reconstruction.json and each view's prediction, all or nothing."""
    from SyntheticDataGenLib.atomic_io import staged_output

    from ..meshes.mesh_io import write_model
    from .view_files import file_stem, write_depth_view

    structures = {}
    with staged_output(out, "reconstruct") as staging:
        for name, result in reconstruction.structures.items():
            file = None
            if result.surface is not None:
                file = f"{file_stem(name)}.vtk"
                write_model(staging / file, result.surface)
            structures[name] = {
                "found": result.found, "file": file, "presence": [round(p, 4) for p in result.presence],
                "views_used": [index + 1 for index in result.views_used], "view_consistency": result.consistency}
        views = []
        for index, (prediction, source) in enumerate(zip(reconstruction.predictions, sources), start=1):
            write_depth_view(staging / f"view{index}", prediction, settings["threshold"])
            views.append({"image": source, "folder": f"view{index}", "geometry": prediction.geometry.to_dict()})
        summary = {"format": "xrecon-reconstruction/1", "coordinate_system": "files LPS, geometry RAS mm",
                   "method": "fusion" if len(views) > 1 else "depth", "bundle": str(bundle_dir),
                   "settings": settings, "views": views, "structures": structures,
                   "found": [name for name, entry in structures.items() if entry["found"]],
                   "not_found": [name for name, entry in structures.items() if not entry["found"]],
                   "timing_s": reconstruction.timing_s}
        (staging / "reconstruction.json").write_text(json.dumps(summary, indent=2))


def run(args: argparse.Namespace) -> int:
    import time

    from SyntheticDataGenLib.atomic_io import check_output_folder
    from SyntheticDataGenLib.errors import XreconInputError

    start = time.perf_counter()
    check_output_folder(args.out, "reconstruct")
    if not 0 < args.threshold < 1 or not 0 < args.presence_threshold < 1:
        raise XreconInputError("--threshold and --presence-threshold must be between 0 and 1")
    from ..networks.bundle_format import read_bundle_metadata
    from ..radiographs.radiograph_io import read_radiograph
    from .structure_progress import structure_progress

    radiographs = [read_radiograph(path) for path in args.image]
    geometries = resolve_geometries(args, radiographs)
    if args.method == "ssm":
        from .reconstruct_ssm import run_ssm

        return run_ssm(args, radiographs, geometries, start)
    bundle_dir = Path(args.bundle) if args.bundle else default_bundle_dir()
    known = read_bundle_metadata(bundle_dir)["xrecon"]["structures"]
    unknown = sorted(set(args.structures or []) - set(known))
    if unknown:
        raise XreconInputError(f"--structures: {', '.join(unknown)} not in the bundle; it knows {', '.join(known)}")
    # every check done: one line before torch and MONAI are imported (seconds), so the user sees it run
    print("xrecon reconstruct: loading the model ...", file=sys.stderr, flush=True)
    from ..networks.depth_bundle import load_bundle
    from ..reconstruction.reconstruct import reconstruct_radiographs

    model, metadata = load_bundle(bundle_dir, args.device)
    images = [-r.image if args.invert else r.image for r in radiographs]
    with structure_progress(len(args.structures or known), "surfaces", args.progress) as progress:
        reconstruction = reconstruct_radiographs(model, metadata, images, geometries, structures=args.structures,
                                                 spacing_mm=args.spacing_mm, fusion=args.fusion,
                                                 threshold=args.threshold, presence_threshold=args.presence_threshold,
                                                 device=args.device, progress=progress)
    if args.method == "combined":
        from .reconstruct_ssm import run_ssm

        return run_ssm(args, radiographs, geometries, start, depth=reconstruction)
    reconstruction.timing_s["total"] = time.perf_counter() - start
    settings = {"spacing_mm": args.spacing_mm, "fusion": args.fusion, "threshold": args.threshold,
                "presence_threshold": args.presence_threshold, "invert": args.invert}
    write_reconstruction(args.out, reconstruction, [str(path) for path in args.image], bundle_dir, settings)
    found = [name for name, result in reconstruction.structures.items() if result.found]
    missing = [name for name in reconstruction.structures if name not in found]
    print(f"wrote {args.out}: {len(found)} surface(s) from {len(images)} view(s) in "
          f"{reconstruction.timing_s['total']:.1f} s: {', '.join(found) or 'no structure found'}")
    best = {name: max(reconstruction.structures[name].presence, default=0.0) for name in missing}
    absent = [name for name in missing if best[name] < args.presence_threshold]
    no_mask = [name for name in missing if name not in absent]
    if absent:
        print("not found (presence below {:.2f}): {}".format(
            args.presence_threshold, ", ".join(f"{name} ({best[name]:.2f})" for name in absent)))
    if no_mask:
        print("not found (present, but its mask at --threshold {:.2f} gave no surface): {}".format(
            args.threshold, ", ".join(f"{name} ({best[name]:.2f})" for name in no_mask)))
    return 0
