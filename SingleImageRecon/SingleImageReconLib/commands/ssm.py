"""``xrecon ssm``: statistical shape models of bones: build, inspect, sample, and landmark a case."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .number_options import number_in

LLP26_BONES = ("hip", "sacrum", "femur")
BONES = ("vertebra",) + LLP26_BONES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "ssm", help="statistical shape models: build, info, sample, landmarks",
        description="Shape models of the vertebra, sacrum, hip bone and femur (Resources/ShapeModels: mean surface, "
                    "PCA modes, named landmarks, provenance; .npz files read without unpickling).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build", help="build a bone type's model",
        description="hip, sacrum, femur: from the 26-subject LLP26 model (needs `pip install "
                    "musculoskeletal-models==0.2.4`; its pickle is read by an unpickler that admits numpy arrays only). "
                    "vertebra: from every whole vertebra of the label maps given (a template carried onto each by "
                    "similarity and smooth non-rigid ICP, two passes; Procrustes; PCA widened by a Gaussian-kernel "
                    "deformation model). Landmarks are defined on the mean by anatomical rules.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    build.add_argument("bone", choices=BONES)
    build.add_argument("--labels", nargs=2, action="append", metavar=("LABELS", "TABLE"), default=[],
                       help="vertebra: a label map and its id,structure table (repeat; e.g. ../shared/data/*/)")
    build.add_argument("--out", required=True, metavar="FILE.npz", help="the model file to write")
    build.set_defaults(run=run_build)

    info = actions.add_parser("info", help="describe models (JSON); optionally draw them",
                              description="Print each model's vertices, modes, standard deviations, landmarks and "
                                          "provenance as JSON. --figure draws every mean from three sides with its "
                                          "numbered landmarks, and mode 1 at ±2 SD.")
    info.add_argument("models", nargs="*", metavar="BONE|FILE", help="bone types or .npz files (default: all bundled)")
    info.add_argument("--figure", metavar="PNG", help="write the picture of the models here")
    info.set_defaults(run=run_info)

    sample = actions.add_parser("sample", help="random plausible bones as Slicer models",
                                description="Write COUNT random shapes of a model (coefficients drawn from the model, "
                                            "cut at --limit-sd) as OUT/<bone>_<n>.vtk (LPS, as Slicer writes models) "
                                            "and OUT/<bone>_<n>.mrk.json with its landmarks, in the model frame "
                                            "(centred at the origin, RAS axes).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sample.add_argument("model", metavar="BONE|FILE")
    sample.add_argument("--count", type=int, default=5)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--side", choices=("left", "right"), default=None, help="hip bone and femur: which side")
    sample.add_argument("--limit-sd", type=number_in(0.1, 5.0, "SD"), default=3.0)
    sample.add_argument("--out", required=True, metavar="DIR")
    sample.set_defaults(run=run_sample)

    landmarks = actions.add_parser(
        "landmarks", help="a labelled case's landmarks (.mrk.json) from the models",
        description="Register each model's mean onto every bone of a label map and write the bones' "
                    "landmarks (labels <structure>/<landmark>) as a Slicer markups file. A bone the scan cuts is "
                    "registered from its scanned part; its landmarks outside the scan are written undefined. Put it beside the case's CT "
                    "as landmarks.mrk.json and `xrecon generate` projects it into every sample.")
    landmarks.add_argument("--labels", required=True, metavar="FILE", help="label map or .seg.nrrd")
    landmarks.add_argument("--labels-table", metavar="CSV", help="id,structure table of a label map")
    landmarks.add_argument("--models", metavar="DIR", help="folder of models (default: the bundled ones)")
    landmarks.add_argument("--unplaced", action="append", default=[], metavar="STRUCTURE",
                           help="a bone in the field that registration cannot place (a fragment, a shaft "
                                "without its ends, or one the labels may lack): written with every landmark "
                                "undefined, so that training counts it present but teaches no position, "
                                "where leaving it out would call it absent (repeatable)")
    landmarks.add_argument("--out", required=True, metavar="FILE.mrk.json")
    landmarks.set_defaults(run=run_landmarks)


def _model(reference: str):
    from ..shape_models.model_files import bundled_models_dir
    from ..shape_models.shape_model import load_shape_model

    path = Path(reference)
    if reference in BONES and not path.exists():
        path = bundled_models_dir() / f"{reference}.npz"
    return load_shape_model(path)


def _out_file(path: str, suffix: str) -> Path:
    from SyntheticDataGenLib.errors import XreconInputError

    out = Path(path)
    if not out.name.endswith(suffix):
        raise XreconInputError(f"--out {out} must end in {suffix}")
    if out.is_dir():
        raise XreconInputError(f"--out {out} is a folder; give a file name ending in {suffix}")
    if not out.parent.is_dir():
        raise XreconInputError(f"--out {out}: folder {out.parent} does not exist")
    return out


def run_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    from SyntheticDataGenLib.errors import XreconInputError

    from ..shape_models.shape_model import save_shape_model

    out = _out_file(args.out, ".npz")
    if args.bone in LLP26_BONES:
        if args.labels:
            raise XreconInputError(f"{args.bone} is built from LLP26; --labels is for the vertebra model")
        from ..shape_models.llp26 import build_llp26_model

        model = build_llp26_model(args.bone)
    else:
        if not args.labels:
            raise XreconInputError("the vertebra model needs --labels LABELS TABLE (repeat for every labelled case)")
        from ..shape_models.vertebra_model import build_vertebra_model, whole_vertebrae

        instances, cut = [], []
        for labels, table in args.labels:
            found, left = whole_vertebrae(Path(labels), Path(table), Path(labels).resolve().parent.name)
            instances += found
            cut += left
        print(f"{len(instances)} whole vertebrae; left out (cut by the scan): {', '.join(cut) or 'none'}",
              file=sys.stderr)
        with tqdm(total=2 * len(instances), desc="registering the template", unit="vertebra",
                  file=sys.stderr) as bar:
            model = build_vertebra_model(instances, progress=lambda done, total: bar.update(done - bar.n))
    model = replace(model, provenance={**model.provenance, "command": " ".join(["xrecon"] + sys.argv[1:])})
    save_shape_model(model, out)
    print(json.dumps(_summary(model), indent=2))
    return 0


def _summary(model) -> dict:
    return {"name": model.name, "side": model.side, "vertices": model.vertex_count, "triangles": len(model.triangles),
            "modes": model.mode_count, "training_shapes": len(model.instances_mm),
            "sd_per_vertex_mm": [round(float(sd) / model.vertex_count ** 0.5, 3)
                                 for sd in model.standard_deviations_mm[:5]],
            "landmarks": list(model.landmark_names), "provenance": model.provenance}


def run_info(args: argparse.Namespace) -> int:
    from ..shape_models.model_files import load_models

    models = [_model(reference) for reference in args.models] if args.models else list(load_models().values())
    print(json.dumps([_summary(model) for model in models], indent=2))
    if args.figure:
        from ..shape_models.shape_model_figure import save_shape_model_figure

        save_shape_model_figure(models, args.figure)
        print(f"figure: {args.figure}", file=sys.stderr)
    return 0


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from SyntheticDataGenLib.atomic_io import check_output_folder, staged_output
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.cases.landmarks import write_markups_json

    from ..meshes.mesh_io import write_model
    from ..meshes.triangle_mesh import polydata_from_arrays

    if not 1 <= args.count <= 1000:
        raise XreconInputError(f"--count must be 1 to 1000, got {args.count}")
    check_output_folder(args.out, "ssm sample")
    model = _model(args.model)
    if args.side:
        if model.side == "midline":
            raise XreconInputError(f"the {model.name} model is a midline bone; --side does not apply")
        model = model.for_side(args.side)
    shapes = model.sample(np.random.default_rng(args.seed), args.count, args.limit_sd)
    with staged_output(args.out, "ssm sample") as staging:
        for number, vertices in enumerate(shapes, start=1):
            stem = f"{model.name}_{model.side}_{number}" if model.side != "midline" else f"{model.name}_{number}"
            write_model(staging / f"{stem}.vtk", polydata_from_arrays(vertices, model.triangles))
            if model.landmark_names:
                write_markups_json(staging / f"{stem}.mrk.json", list(model.landmark_names), model.landmarks(vertices))
    print(f"{args.count} {model.name} shapes in {args.out}", file=sys.stderr)
    return 0


def run_landmarks(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from SyntheticDataGenLib.cases.ct_io import ijk_to_ras
    from SyntheticDataGenLib.cases.landmarks import write_markups_json
    from SyntheticDataGenLib.cases.labels import read_segmentation

    from ..shape_models.case_landmarks import case_landmarks
    from ..shape_models.model_files import load_models

    out = _out_file(args.out, ".mrk.json")
    models = load_models(Path(args.models) if args.models else None)
    segmentation = read_segmentation(args.labels, args.labels_table)
    with tqdm(desc="registering models", unit="bone", file=sys.stderr) as bar:
        def progress(done, total, name):
            bar.total = total
            bar.set_postfix_str(name)
            bar.update(done - bar.n)

        result = case_landmarks(segmentation, ijk_to_ras(segmentation.reference), models, progress,
                                unplaced=tuple(args.unplaced))
    write_markups_json(out, result.labels, result.points_ras_mm)
    print(json.dumps({"landmarks": len(result.labels), "residual_mm": {k: round(v, 3) for k, v in
                                                                       result.residual_mm.items()},
                      "cut_by_the_scan": {name: f"{count} landmarks outside the scan" for name, count in
                                          result.cut.items()},
                      "left_out": result.left_out, "unplaced": args.unplaced}, indent=2))
    return 0
