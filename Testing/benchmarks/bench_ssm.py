"""Shape-model fitting benchmark: leave-one-out fits from projected landmarks, in one run.

    xrecon bench ssm [--models DIR] [--bones hip,femur,...] [--poses N] [--limit N] [--settings A,B] [--json FILE]

For every training shape of each bundled model (``Resources/ShapeModels``), the model is rebuilt
without it, the left-out bone is placed at a random pose in front of a 256 px AP detector
(1.6 mm pixels, 1100 mm from the source), its landmarks are projected, and the rebuilt model is
fitted to them (:func:`fit_shape_to_landmarks`). Reported per bone type, mean over the cases:

* ASSD of the fit against the left-out bone for one AP view and for AP + lateral; beside it the
  reference measured in the same run, **the mean shape at the same pose**: the same fit with
  no shape modes, on the same landmarks, and their ratio; and once per bone the mean at the
  true pose (rigidly aligned with known correspondence: the best the mean can do with the pose
  given, which one view does not give);
* "shape" ASSD after the best shift along the central ray (one view cannot see depth);
* the same one-view fit with 1 and 3 px noise, with 10 % gross outliers (20–60 px), and with
  σ varying per landmark (0.5–6 px) fitted σ-weighted and unweighted;
* fit time per bone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from SingleImageReconLib.evaluation.metrics import compare_meshes
from SingleImageReconLib.shape_models.landmark_fit import LandmarkView, fit_shape_to_landmarks
from SingleImageReconLib.shape_models.model_files import bundled_models_dir, load_models
from SingleImageReconLib.shape_models.procrustes import align
from SingleImageReconLib.shape_models.rebuild import leave_one_out
from SingleImageReconLib.meshes.triangle_mesh import as_mesh, polydata_from_arrays
from SyntheticDataGenLib.projection.geometry import preset_geometry

SETTINGS = {  # name: (views, noise px, outlier fraction, σ range px, weighted)
    "AP exact": (("ap",), 0.0, 0.0, None, True),
    "AP+lateral exact": (("ap", "lateral-left"), 0.0, 0.0, None, True),
    "AP 1 px": (("ap",), 1.0, 0.0, None, True),
    "AP 3 px": (("ap",), 3.0, 0.0, None, True),
    "AP 1 px + 10% outliers": (("ap",), 1.0, 0.1, None, True),
    "AP 1 px + 10% outliers, plain LSQ": (("ap",), 1.0, 0.1, None, "plain"),
    "AP σ 0.5-6 px, σ-weighted": (("ap",), None, 0.0, (0.5, 6.0), True),
    "AP σ 0.5-6 px, unweighted": (("ap",), None, 0.0, (0.5, 6.0), False),
}


def _assd(points_a, points_b, triangles) -> float:
    a = as_mesh(polydata_from_arrays(points_a, triangles), "fit")
    b = as_mesh(polydata_from_arrays(points_b, triangles), "truth")
    return compare_meshes(a, b).metrics["assd_mm"]


def _views(names, centre):
    return [preset_geometry(name, isocenter_ras_mm=centre, source_to_isocenter_mm=900.0,
                            source_to_detector_mm=1100.0, size_px=(256, 256), pixel_spacing_mm=(1.6, 1.6))
            for name in names]


def _one_case(model, truth, rng, setting):
    names, noise, outlier_fraction, sigma_range, weighted = setting
    # the detector is centred near the bone, not on it, as a radiograph's framing is
    centre = truth.mean(axis=0) + rng.uniform(-30, 30, 3)
    geometries = _views(names, centre)
    views = []
    for geometry in geometries:
        uv, _ = geometry.project(model.landmarks(truth))
        count = len(uv)
        if sigma_range:
            sigma = rng.uniform(*sigma_range, count)
        else:
            sigma = np.full(count, max(noise, 0.5))
        uv = uv + rng.standard_normal(uv.shape) * (sigma[:, None] if sigma_range else noise)
        outliers = rng.random(count) < outlier_fraction
        angle = rng.uniform(0, 2 * np.pi, count)
        uv[outliers] += rng.uniform(20, 60, (outliers.sum(), 1)) * np.c_[np.cos(angle), np.sin(angle)][outliers]
        views.append(LandmarkView(geometry, uv, sigma))
    ray = truth.mean(axis=0) - geometries[0].source_ras_mm
    ray /= np.linalg.norm(ray)
    row = []
    for mode_count in (None, 0):
        fit = fit_shape_to_landmarks(model, views, mode_count=mode_count, weighted=weighted is True,
                                     robust_scale=None if weighted == "plain" else 2.5)
        shift = float((truth - fit.vertices_mm).mean(axis=0) @ ray)
        row += [_assd(fit.vertices_mm, truth, model.triangles),
                _assd(fit.vertices_mm + shift * ray, truth, model.triangles), fit.seconds]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench ssm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=bundled_models_dir())
    parser.add_argument("--bones", default=None, help="comma-separated bone types (default: all)")
    parser.add_argument("--poses", type=int, default=1, help="random poses per left-out shape")
    parser.add_argument("--limit", type=int, default=0, help="leave out only the first N shapes of each model (0: all)")
    parser.add_argument("--settings", default=None, help="comma-separated setting names (default: all)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    models = load_models(args.models)
    bones = args.bones.split(",") if args.bones else list(models)
    settings = {k: v for k, v in SETTINGS.items() if not args.settings or k in args.settings.split(",")}
    results = {}
    rng = np.random.default_rng(20261202)
    for bone in bones:
        model = models[bone]
        rows = {name: [] for name in settings}
        reference = []
        count = min(args.limit or len(model.instances_mm), len(model.instances_mm))
        for index in range(count):
            rebuilt = leave_one_out(model, index)
            for _ in range(args.poses):
                rotation = Rotation.from_rotvec(rng.uniform(-1, 1, 3) * np.radians(8)).as_matrix()
                truth = model.instances_mm[index] @ rotation.T + rng.uniform(-40, 40, 3)
                reference.append(_assd(align(rebuilt.mean_mm, truth), truth, model.triangles))
                for name, setting in settings.items():
                    rows[name].append(_one_case(rebuilt, truth, rng, setting))
        mean_reference = float(np.mean(reference))
        print(f"\n{bone}: {count} left out x {args.poses} pose(s); {len(model.landmark_names)} "
              f"landmarks, {model.mode_count} modes")
        print(f"  mean shape at the true pose (oracle): ASSD {mean_reference:.2f} mm")
        results[bone] = {"mean_at_true_pose_assd_mm": mean_reference, "settings": {}}
        for name, values in rows.items():
            values = np.array(values)
            assd, shape, _, mean_assd, mean_shape, _ = values.mean(axis=0)
            print(f"  {name:35s} ASSD {assd:5.2f} mm, mean at the same pose {mean_assd:5.2f} (x{assd / mean_assd:.2f}); "
                  f"shape ASSD {shape:5.2f} vs {mean_shape:5.2f} (x{shape / mean_shape:.2f}); "
                  f"fit {1000 * np.median(values[:, 2]):.0f} ms")
            results[bone]["settings"][name] = {
                "assd_mm": assd, "shape_assd_mm": shape, "mean_shape_same_pose_assd_mm": mean_assd,
                "mean_shape_same_pose_shape_assd_mm": mean_shape, "ratio_to_mean": assd / mean_assd,
                "fit_ms_median": 1000 * float(np.median(values[:, 2]))}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
