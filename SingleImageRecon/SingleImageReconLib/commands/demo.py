"""``xrecon demo``: the main job on a bundled sample case (or any labelled CT), with figures and a Slicer scene."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .case_arguments import add_case_arguments, case_files, load_case
from .number_options import GRID_SPACING_MM

DEFAULT_CASE = "abdomen-pelvis"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="the main job on a bundled sample case: radiograph -> bones -> accuracy against the CT",
        description="Render an AP radiograph of a bundled sample CT (or of --ct with its --labels), reconstruct its bones with the bundled "
                    "network ('depth'), add two oblique views and fuse all three ('fusion'), compare every "
                    "surface with the CT's labels, and print a table. Writes OUT/metrics.json, "
                    "OUT/overview.png (radiograph with predicted masks; reconstruction and CT surfaces coloured "
                    "by their distance), the models (OUT/depth/, OUT/fusion/, OUT/truth/, .vtk in LPS with a "
                    "distance_mm point array), the radiographs on their detector planes "
                    "(OUT/radiograph_view<N>.nrrd with geometry_view<N>.json), the CT and labels, structure "
                    "centres as landmarks (OUT/landmarks_ct.mrk.json, OUT/landmarks_reconstructed.mrk.json), "
                    "and OUT/scene.mrb to open in 3D Slicer with OUT/scene.png, a picture of its 3D view (both need the "
                    "'scene' extra: slicer-core).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="xrecon-demo", metavar="DIR", help="output folder")
    add_case_arguments(parser, default_case=DEFAULT_CASE, structures=False)
    parser.add_argument("--bundle", metavar="DIR", help="model bundle (default: the bundled model)")
    parser.add_argument("--spacing-mm", type=GRID_SPACING_MM, default=1.5, help="voxel size of the surface extraction grid")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.set_defaults(run=run)


def _centres(surfaces: dict) -> tuple[list[str], np.ndarray]:
    """Each surface's centre (RAS mm): the structure's position at a glance, as a landmark."""
    import vtk

    names, points = [], []
    for name, surface in surfaces.items():
        mass = vtk.vtkCenterOfMass()
        mass.SetInputData(surface)
        mass.SetUseScalarsAsWeights(False)
        mass.Update()
        names.append(name)
        points.append(mass.GetCenter())
    return names, np.asarray(points, dtype=float).reshape(-1, 3)


def _write_scene(path, study, ct, segmentation, metrics_rows, landmarks) -> bool:
    """scene.mrb when Slicer's MRML library is installed (the 'scene' extra); False otherwise."""
    from SyntheticDataGenLib.cases.ct_io import ijk_to_ras

    from .. import scene

    if not scene.available():
        return False
    models, methods = {}, {}
    for method, evaluations in study.evaluations.items():
        for name, evaluation in evaluations.items():
            models[f"{method} {name}"], methods[f"{method} {name}"] = evaluation.reconstruction, (method, name)
    radiographs = [(f"Radiograph view {index}", image, geometry)
                   for index, (image, geometry) in enumerate(zip(study.line_integrals, study.geometries), start=1)]
    scene.build_qa_scene(path, radiographs=radiographs, models=models, model_methods=methods,
                         truth_masks={name: segmentation.mask_array(name) for name in study.structures},
                         truth_ijk_to_ras=ijk_to_ras(segmentation.reference), metrics_rows=metrics_rows,
                         landmarks=landmarks, ct=ct)
    _picture_scene(path, "combined" if "combined" in study.evaluations else "depth")
    return True


def _picture_scene(bundle, method: str) -> None:
    """scene.png beside the bundle: the bundle as read back, one method's models, as Slicer's 3D view shows it."""
    from .. import scene
    from ..scene_picture import save_scene_picture

    read_back = scene.read_scene_bundle(bundle)
    try:
        save_scene_picture(read_back, bundle.with_suffix(".png"), models=f"{method} ")
    except Exception as error:  # a machine without off-screen OpenGL still gets its scene bundle
        print(f"xrecon demo: no scene.png ({error})", file=sys.stderr)
    finally:
        scene.close_scene(read_back)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    from SyntheticDataGenLib.atomic_io import check_output_folder, staged_output

    check_output_folder(args.out, "demo")
    say = lambda stage: print(f"xrecon demo: {stage} ...", file=sys.stderr, flush=True)  # noqa: E731
    case_name, _ct_path, labels_path, _table_path = case_files(args)
    if labels_path is None:
        from SyntheticDataGenLib.errors import XreconInputError

        raise XreconInputError("the demo measures the bones against the CT's labels: give --labels "
                               "(with --labels-table for a label map)")
    say(f"loading the '{case_name}' case and the model")  # before the imports of torch and MONAI (seconds)
    from SyntheticDataGenLib.cases.ct_io import write_image
    from SyntheticDataGenLib.cases.label_map import write_label_map
    from SyntheticDataGenLib.projection.detector_images import write_detector_image
    from SyntheticDataGenLib.cases.landmarks import write_markups_json

    from ..networks.depth_bundle import load_bundle
    from ..demo import run_case_study
    from ..reconstruction_run import DEMO_LANDMARK_FILES
    from ..evaluation.evaluate import default_workers, mean_metrics, metrics_document, metrics_table
    from ..meshes.mesh_io import write_model
    from ..evaluation.overview import overview_figure
    from .reconstruct import default_bundle_dir
    from .reconstruct_ssm import default_landmark_bundle_dir
    from .view_files import file_stem

    ct, segmentation = load_case(args)
    bundle_dir = args.bundle or default_bundle_dir()
    model, metadata = load_bundle(bundle_dir, args.device)
    landmarks = None
    if (default_landmark_bundle_dir() / "configs" / "metadata.json").is_file():  # the landmark path, once trained
        from ..networks.landmark_bundle import load_landmark_bundle
        from ..shape_models.model_files import load_models

        landmarks = (*load_landmark_bundle(default_landmark_bundle_dir(), args.device), load_models())
    loaded = time.perf_counter()
    study = run_case_study(ct, segmentation, model, metadata, spacing_mm=args.spacing_mm, device=args.device,
                           progress=say, workers=default_workers(), landmarks=landmarks)
    study.timing_s = {"start_up": loaded - start, **study.timing_s}
    say("drawing the overview")
    rows = [{"method": method, "structure": name, **{key: value for key, value in evaluation.metrics.items()
                                                      if not isinstance(value, dict)}}
            for method, evaluations in study.evaluations.items() for name, evaluation in evaluations.items()]
    truth_names, truth_points = _centres({n: e.truth for n, e in study.evaluations["depth"].items()})
    recon_names, recon_points = _centres(study.reconstructions["depth"].surfaces)
    with staged_output(args.out, "demo") as staging:
        prediction = study.reconstructions["depth"].predictions[0]
        depth = study.evaluations["depth"]
        overview_figure(staging / "overview.png", radiograph=prediction.image, mask_probabilities=prediction.probability,
                        names=prediction.names, reconstructions={n: e.reconstruction for n, e in depth.items()},
                        truths={n: e.truth for n, e in depth.items()},
                        beam_direction_ras=study.geometries[0].beam_direction_ras,
                        right_ras=study.geometries[0].detector_u_ras,
                        title=f"xrecon demo: {case_name}, one AP radiograph -> {len(depth)} bones "
                              f"(model {metadata['name'] if 'name' in metadata else 'bundle'})",
                        table_rows=[(n, e.metrics["assd_mm"], e.metrics["hd95_mm"], e.metrics["dice"])
                                    for n, e in depth.items()],
                        method_rows=[(method, mean["structures"], *(mean.get(key, float("nan"))
                                                                    for key in ("assd_mm", "hd95_mm", "dice")))
                                     for method, mean in ((method, mean_metrics(found))
                                                          for method, found in study.evaluations.items())])
        say("writing the models, radiographs and the Slicer scene")
        for index, (image, geometry) in enumerate(zip(study.line_integrals, study.geometries), start=1):
            write_detector_image(staging / f"radiograph_view{index}.nrrd", image, geometry)
            geometry.save(staging / f"geometry_view{index}.json")
        for method, evaluations in study.evaluations.items():
            (staging / method).mkdir()
            for name, evaluation in evaluations.items():
                write_model(staging / method / f"{file_stem(name)}.vtk", evaluation.reconstruction)
        (staging / "truth").mkdir()
        for name, evaluation in depth.items():
            write_model(staging / "truth" / f"{file_stem(name)}.vtk", evaluation.truth)
        write_image(ct, str(staging / "ct.nii.gz"))
        write_label_map(segmentation, staging / "labels.nii.gz", staging / "labels.csv")
        point_lists = {"landmarks_ct.mrk.json": (truth_names, truth_points),
                       "landmarks_reconstructed.mrk.json": (recon_names, recon_points)}
        if study.fitted_landmarks:
            names = [f"{s}/{n}" for s, (labels, _) in study.fitted_landmarks.items() for n in labels]
            point_lists["landmarks_ssm.mrk.json"] = (names, np.concatenate([points for _, points in
                                                                            study.fitted_landmarks.values()]))
        for file, (names, points) in point_lists.items():
            write_markups_json(staging / file, names, points)
        landmarks = {DEMO_LANDMARK_FILES[file]: points for file, points in point_lists.items()}
        scene_written = _write_scene(staging / "scene.mrb", study, ct, segmentation, rows, landmarks)
        study.timing_s["total"] = time.perf_counter() - start
        # bones the CT holds that a method did not find: misses, listed rather than left out silently
        not_found = {method: [name for name in study.structures if name not in recon.surfaces]
                     for method, recon in study.reconstructions.items()}
        document = metrics_document(study.evaluations, study.timing_s, {
            "not_found": not_found,
            "case": case_name, "bundle": str(bundle_dir), "views": [g.to_dict() for g in study.geometries],
            "methods_described": {"depth": "AP radiograph alone", "fusion": "AP and C-arm LAO/RAO 15 degrees fused",
                                  "ssm": "shape models fitted to the landmarks predicted in the AP radiograph",
                                  "combined": "shape models fitted to the depth method's masks and depth maps of the "
                                              "AP radiograph and to its predicted landmarks"}})
        (staging / "metrics.json").write_text(json.dumps(document, indent=2))
    print(metrics_table(study.evaluations))
    for method, names in not_found.items():
        if names:
            print(f"{method}: not found: {', '.join(names)}")
    print(f"wrote {args.out}: metrics.json, overview.png, models ({', '.join(f'{m}/' for m in study.evaluations)}, "
          f"truth/), radiographs, CT, labels, "
          f"landmarks" + (", scene.mrb and scene.png" if scene_written else " (no scene.mrb: pip install slicer-core)")
          + f" in {time.perf_counter() - start:.1f} s")
    return 0
