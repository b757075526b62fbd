"""``xrecon reconstruct --method ssm`` and ``--method combined``: bones as shape models fitted to
predicted landmarks, or to the depth network's evidence and the landmarks together."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

DEFAULT_LANDMARK_BUNDLE = "xrecon-landmarks-ap256"


def default_landmark_bundle_dir() -> Path:
    from SyntheticDataGenLib.cases.sample_data import resources_dir

    return resources_dir() / "Models" / DEFAULT_LANDMARK_BUNDLE


def run_ssm(args, radiographs: list, geometries: list, start: float, depth=None) -> int:
    """Predict landmarks in every view, fit each bone's model (to them, or with the ``depth``
    reconstruction of the same views to its evidence as well), write OUT like the depth method."""
    from SyntheticDataGenLib.atomic_io import staged_output
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.cases.landmarks import detector_points_ras, write_markups_json

    from ..meshes.mesh_io import write_model
    from ..shape_models.model_files import load_models
    from .reconstruct import default_bundle_dir
    from .view_files import file_stem, write_depth_view

    bundle_dir = Path(args.landmark_bundle) if args.landmark_bundle else default_landmark_bundle_dir()
    print("xrecon reconstruct: loading the landmark model ...", file=sys.stderr, flush=True)
    from ..networks.landmark_bundle import load_landmark_bundle
    from ..shape_models.ssm_reconstruction import combine_bones, fit_bones, predict_landmarks

    model, metadata = load_landmark_bundle(bundle_dir, args.device)
    labels = metadata["xrecon"]["landmarks"]
    known = list(dict.fromkeys(label.split("/")[0] for label in labels))
    unknown = sorted(set(args.structures or []) - set(known))
    if unknown:
        raise XreconInputError(f"--structures: {', '.join(unknown)} have no landmarks in {bundle_dir}")
    images = [-r.image if args.invert else r.image for r in radiographs]
    predictions = predict_landmarks(model, metadata, images, geometries, args.device)
    if depth is None:
        fits = fit_bones(predictions, load_models(), args.structures or known, args.presence_threshold)
    else:
        print("xrecon reconstruct: fitting the shape models to the depth maps and landmarks ...", file=sys.stderr,
              flush=True)
        fits = combine_bones(depth, predictions, load_models(), args.structures or list(depth.structures),
                             args.presence_threshold, args.threshold)
    with staged_output(args.out, "reconstruct") as staging:
        structures, fitted_labels, fitted_points = {}, [], []
        for name, fit in fits.items():
            file, reason = None, fit if isinstance(fit, str) else None
            fit = None if reason else fit
            if fit is not None:
                file = f"{file_stem(name)}.vtk"
                write_model(staging / file, fit.surface)
                fitted_labels += [f"{name}/{landmark}" for landmark in fit.landmark_names]
                fitted_points.append(fit.landmarks_ras_mm)
            rows = [i for i, label in enumerate(labels) if label.startswith(f"{name}/")]
            presence = ([round(float(p), 4) for p in depth.structures[name].presence] if depth is not None
                        else [round(float(p.presence[rows].max()), 4) if rows else 0.0 for p in predictions])
            structures[name] = {
                "found": fit is not None, "file": file, "not_found_because": reason, "presence": presence,
                "landmarks_found_per_view": fit.found_per_view if fit else [],
                "reprojection_px": round(fit.fit.reprojection_px, 3) if fit else None,
                "shape_coefficients_sd": [round(float(c), 3) for c in fit.fit.coefficients_sd] if fit else []}
        if fitted_points:
            import numpy as np

            write_markups_json(staging / "landmarks.mrk.json", fitted_labels, np.concatenate(fitted_points))
        views = []
        for index, (prediction, source) in enumerate(zip(predictions, [str(p) for p in args.image]), start=1):
            folder = staging / f"view{index}"
            folder.mkdir()
            found = prediction.presence >= args.presence_threshold
            points = detector_points_ras(prediction.uv_px, prediction.geometry)
            points[~found] = float("nan")
            write_markups_json(folder / "landmarks.mrk.json", prediction.labels, points)
            (folder / "landmarks.json").write_text(json.dumps(
                {"labels": prediction.labels, "uv_px": prediction.uv_px.round(2).tolist(),
                 "sigma_px": prediction.sigma_px.round(3).tolist(), "presence": prediction.presence.round(4).tolist(),
                 "geometry": prediction.geometry.to_dict()}))
            if depth is not None:
                write_depth_view(folder, depth.predictions[index - 1], args.threshold)
            views.append({"image": source, "folder": f"view{index}", "geometry": prediction.geometry.to_dict()})
        found_names = [name for name, entry in structures.items() if entry["found"]]
        summary = {"format": "xrecon-reconstruction/1", "coordinate_system": "files LPS, geometry RAS mm",
                   "method": "ssm" if depth is None else "combined", "bundle": str(bundle_dir),
                   **({"depth_bundle": str(args.bundle or default_bundle_dir())} if depth is not None else {}),
                   "settings": {"presence_threshold": args.presence_threshold, "invert": args.invert,
                                **({"threshold": args.threshold} if depth is not None else {})},
                   "views": views, "structures": structures, "found": found_names,
                   "not_found": [name for name in structures if name not in found_names],
                   "timing_s": {"total": time.perf_counter() - start}}
        (staging / "reconstruction.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}: {len(found_names)} shape-model fit(s) from {len(images)} view(s) in "
          f"{time.perf_counter() - start:.1f} s: {', '.join(found_names) or 'no structure found'}")
    missing = [f"{name} ({entry['not_found_because']})" for name, entry in structures.items() if not entry["found"]]
    if missing:
        print(f"not found ({'landmark ' if depth is None else ''}presence threshold {args.presence_threshold:.2f}): "
              f"{'; '.join(missing)}")
    return 0
