"""Reconstruction benchmark: accuracy bounds, model accuracy and latency, measured in one run.

    xrecon bench recon [--bundle DIR] [--case NAME ...] [--heldout CT LABELS TABLE] [--views N]

1. Oracle: exact depth maps rendered from the CT labels, lifted to surfaces: AP alone, and
   three views fused (AP, lateral, 45° oblique; and AP with the C-arm at ±15°, the demo's
   views). Prints ASSD/HD95 per bone and the ratio fused / single.
2. Model, one AP radiograph: N new views of each case (the C-arm and table moved a little,
   seeds unlike any training set), ASSD/HD95/Dice per bone, absolute and after the best shift
   of each bone along its ray ("shape", what one view can see), beside the oracle of the same
   views; 2D mask Dice; precision and recall of the presence decision; then each held-out patient.
3. Model, three views fused (AP, LAO 15°, RAO 15°): F1 at 2 mm and ASSD, ratio to one view.
4. Latency of one radiograph to all surfaces (network + surfaces), median of 5 runs, and its
   ratio to the network alone and to the 1 s aim.
5. Real radiographs (no 3D truth): which structures the model finds (a chest must show no
   pelvis or femur).
6. Shape models (``--parts ssm``, with the landmark bundle): on the same new AP views, each bone
   as the depth method gives it beside the shape model fitted to the predicted landmarks
   (``reconstruct --method ssm``) and to the depth maps and landmarks together (``combined``):
   ASSD and HD95, absolute and after the best shift along the ray, on the bones all three
   found and on every bone depth and combined found; HD95 before and after says how much the shape
   model closes what one view leaves open. Bones the scan cuts are measured inside the scan.
   Then the combined fit's wall time a bone on those predictions (median over the case's fits,
   against the 100 ms aim).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from SingleImageReconLib.networks.depth_bundle import load_bundle
from SingleImageReconLib.commands.reconstruct import default_bundle_dir
from SingleImageReconLib.demo import EXTEND_BODY_MM, study_geometries
from SingleImageReconLib.reconstruction.depth_placement import best_ray_shift_mm, ray_direction, shifted_surface
from SingleImageReconLib.evaluation.evaluate import evaluate_surfaces
from SingleImageReconLib.networks.inference import predict
from SingleImageReconLib.reconstruction.reconstruct import reconstruct_radiographs, surfaces_from_evidence
from SingleImageReconLib.reconstruction.surface import ViewEvidence
from SyntheticDataGenLib.cases.case_info import case_centre_ras
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct
from SyntheticDataGenLib.projection.dicom_geometry import DEFAULT_FIELD_OF_VIEW_MM, spacing_from_field_of_view
from SyntheticDataGenLib.projection.geometry import preset_geometry
from SyntheticDataGenLib.cases.labels import read_segmentation
from SyntheticDataGenLib.cases.sample_data import sample_case
from SyntheticDataGenLib.projection.view import CaseVolume, render_view

AIM_LATENCY_S = 1.0
FIT_AIM_MS = 100.0  # issue 11's aim for a shape-model fit a bone
MIN_VISIBLE_PX = 16  # a structure is in a view from this many mask pixels, as in training


def _load(name_or_paths) -> tuple[str, object, object]:
    """(name, CT, labels) of a sample case by name, or of (CT, LABELS, TABLE) named by the CT's folder."""
    if isinstance(name_or_paths, str):
        case = sample_case(name_or_paths)
        paths, name = (case.ct_path, case.labels_path, case.table_path), name_or_paths
    else:
        paths = name_or_paths
        ct_path = Path(paths[0])
        name = ct_path.name if ct_path.is_dir() else ct_path.parent.name
        if name == "dicom":
            name = ct_path.parent.name
    ct = read_ct(paths[0])
    return name, ct, read_segmentation(paths[1], paths[2], reference=ct)


def _mean(evaluations: list[dict], name: str, key: str) -> float:
    values = [e[name].metrics[key] for e in evaluations if name in e]
    return float(np.mean(values)) if values else float("nan")


def _table(title: str, columns: dict[str, list[dict]], structures: list[str], keys=("assd_mm", "hd95_mm")) -> dict:
    """Print mean metrics per structure for each column (a list of evaluations); return them."""
    print(title)
    header = "".join(f" {column[:22]:>22s}" for column in columns)
    print(f"  {'structure':16s}{header}   ({' / '.join(keys)})")
    summary = {}
    for name in structures:
        cells = {column: [_mean(evaluations, name, key) for key in keys] for column, evaluations in columns.items()}
        summary[name] = cells
        print(f"  {name:16s}" + "".join(f" {' / '.join(f'{v:6.2f}' for v in cell):>22s}" for cell in cells.values()))
    means = {column: [float(np.nanmean([summary[n][column][i] for n in structures])) for i in range(len(keys))]
             for column in columns}
    print(f"  {'mean':16s}" + "".join(f" {' / '.join(f'{v:6.2f}' for v in cell):>22s}" for cell in means.values()))
    summary["mean"] = means
    return summary


def oracle(case: CaseVolume, segmentation, structures, geometries, spacing_mm) -> dict:
    evidence = {name: [] for name in structures}
    for geometry in geometries:
        view = render_view(case, geometry)
        for index, name in enumerate(view.names):
            evidence[name].append(ViewEvidence(geometry, view.masks[index].numpy(), view.front_mm[index].numpy(),
                                               view.back_mm[index].numpy()))
    results = surfaces_from_evidence(evidence, spacing_mm=spacing_mm, clean=False)
    surfaces = {name: result.surface for name, result in results.items() if result.surface is not None}
    return evaluate_surfaces(surfaces, segmentation, ijk_to_ras(segmentation.reference))


def new_views(metadata, centre, count: int, seed: int) -> list:
    """AP views with the C-arm turned a little and the table moved, from a seed no training set used."""
    rng = np.random.default_rng([seed, 7919])
    views = []
    for _ in range(count):
        base = study_geometries(metadata, centre + rng.uniform(-10, 10, 3), lao_deg=(rng.uniform(-5, 5),))[0]
        views.append(base)
    return views


def _absolute_and_shape(surfaces: dict, segmentation, geometry) -> dict:
    """{"absolute": each surface's evaluation, "shape": its evaluation after its best shift along
    its central ray (metrics["ray_shift_mm"]: that shift)}."""
    matrix = ijk_to_ras(segmentation.reference)
    absolute = evaluate_surfaces(surfaces, segmentation, matrix)
    shape = {}
    for name, result in absolute.items():
        direction = ray_direction(surfaces[name], geometry.source_ras_mm)
        shift = best_ray_shift_mm(surfaces[name], result.truth, direction)
        shape[name] = evaluate_surfaces({name: shifted_surface(surfaces[name], shift * direction)}, segmentation,
                                        matrix)[name]
        shape[name].metrics["ray_shift_mm"] = shift
    return {"absolute": absolute, "shape": shape}


def _model_view(model, metadata, case: CaseVolume, segmentation, structures, geometry, spacing_mm) -> dict:
    """One radiograph of a case through the model: absolute and shape metrics of each found
    structure, 2D mask Dice, and the presence decision against what the view shows."""
    view = render_view(case, geometry)
    recon = reconstruct_radiographs(model, metadata, [view.line_integral.numpy()], [geometry], spacing_mm=spacing_mm)
    measured = _absolute_and_shape({n: s for n, s in recon.surfaces.items() if n in structures}, segmentation, geometry)
    prediction = recon.predictions[0]
    shown = {name: int(view.masks[i].sum()) >= MIN_VISIBLE_PX for i, name in enumerate(view.names)}
    mask_dice = {}
    for index, name in enumerate(view.names):
        if shown[name]:
            truth = view.masks[index].numpy() > 0
            predicted = (prediction.probability[prediction.names.index(name)] >= 0.5) & recon.structures[name].found
            mask_dice[name] = 2 * float((truth & predicted).sum()) / max(1, int(truth.sum() + predicted.sum()))
    presence = {name: (shown.get(name, False), result.found) for name, result in recon.structures.items()}
    return {**measured, "mask_dice": mask_dice, "presence": presence}


def _ssm_view(model, metadata, landmark_model, landmark_metadata, models, case: CaseVolume, segmentation,
              structures, geometry, spacing_mm) -> dict:
    """One radiograph through the three methods: {method: {"absolute": ..., "shape": ...}} of the
    bones all three found, and {"<method>, all found": ...} of depth and combined on every bone
    both found (combined fits only bones depth found)."""
    from SingleImageReconLib.shape_models.ssm_reconstruction import combine_bones, fit_bones, predict_landmarks

    image = render_view(case, geometry).line_integral.numpy()
    reconstruction = reconstruct_radiographs(model, metadata, [image], [geometry], spacing_mm=spacing_mm)
    depth = reconstruction.surfaces
    predictions = predict_landmarks(landmark_model, landmark_metadata, [image], [geometry])
    fitted = {"ssm": fit_bones(predictions, models, structures),
              "combined": combine_bones(reconstruction, predictions, models, structures)}
    ssm, combined = ({name: fit.surface for name, fit in fits.items() if not isinstance(fit, str)}
                     for fits in fitted.values())
    found = {"depth": depth, "ssm": ssm, "combined": combined}
    measured = {method: _absolute_and_shape({n: s for n, s in surfaces.items() if n in structures}, segmentation,
                                            geometry) for method, surfaces in found.items()}

    def subset(method: str, names: list[str]) -> dict:
        return {kind: {n: measured[method][kind][n] for n in names if n in measured[method][kind]}
                for kind in ("absolute", "shape")}

    every = [name for name in structures if all(name in surfaces for surfaces in found.values())]
    by_depth = [name for name in structures if name in depth and name in combined]
    result = {**{method: subset(method, every) for method in found},
              **{f"{method}, all found": subset(method, by_depth) for method in ("depth", "combined")}}
    result["found"] = {"depth": sorted(depth), "ssm": sorted(ssm), "combined": sorted(combined)}
    result["combined_fit_s"] = [fit.fit.seconds for fit in fitted["combined"].values() if not isinstance(fit, str)]
    return result


def _presence_figures(views: list[dict]) -> dict:
    """Precision and recall of "found" against "in the image", pooled over views and structures."""
    pairs = [pair for view in views for pair in view["presence"].values()]
    true_pos = sum(shown and found for shown, found in pairs)
    false_pos = sum(found and not shown for shown, found in pairs)
    false_neg = sum(shown and not found for shown, found in pairs)
    return {"precision": true_pos / max(1, true_pos + false_pos), "recall": true_pos / max(1, true_pos + false_neg),
            "shown": true_pos + false_neg, "absent": len(pairs) - true_pos - false_neg, "false_positives": false_pos}


def _report_model(name: str, views: list[dict], oracle_views: list[dict], structures, spacing_mm) -> dict:
    title = f"\n[{name}] model, one AP radiograph ({len(views)} view(s)), {spacing_mm} mm grid  (ASSD / HD95 / Dice)"
    shown = [s for s in structures if any(s in v["absolute"] for v in views) or any(s in o for o in oracle_views)]
    table = _table(title, {"model": [v["absolute"] for v in views], "shape (best ray shift)":
                           [v["shape"] for v in views], "oracle, same views": oracle_views}, shown,
                   keys=("assd_mm", "hd95_mm", "dice"))
    presence = _presence_figures(views)
    dice_2d = [d for v in views for d in v["mask_dice"].values()]
    means = table["mean"]
    print(f"  ratio ASSD model/oracle: {means['model'][0] / means['oracle, same views'][0]:.1f}; "
          f"shape/oracle {means['shape (best ray shift)'][0] / means['oracle, same views'][0]:.1f}")
    print(f"  mask Dice (2D, views that show the structure): {np.mean(dice_2d) if dice_2d else float('nan'):.3f}; "
          f"presence precision {presence['precision']:.3f}, recall {presence['recall']:.3f} "
          f"({presence['shown']} shown, {presence['absent']} absent structure-views, "
          f"{presence['false_positives']} false positives)")
    return {"table": table, "presence": presence, "mask_dice_2d": float(np.mean(dice_2d)) if dice_2d else None}


def real_radiographs(model, metadata, paths: list[str], figure_path: str | None = None) -> dict:
    """What the model finds in real radiographs without 3D truth (a PNG: AP, 430 mm field);
    with ``figure_path``, a PNG of each radiograph beside its masks, named, for a person to check."""
    from SingleImageReconLib.radiographs.radiograph_io import read_radiograph

    print("\nreal radiographs (no 3D truth; AP, source-isocentre 900 mm, 430 mm field across the larger side)")
    found, predictions = {}, []
    for path in paths:
        image = read_radiograph(path).image
        height, width = image.shape
        geometry = preset_geometry("ap", isocenter_ras_mm=(0, 0, 0), size_px=(width, height),
                                   pixel_spacing_mm=spacing_from_field_of_view(DEFAULT_FIELD_OF_VIEW_MM, (width, height)))
        prediction = predict(model, metadata, [image], [geometry])[0]
        predictions.append((Path(path).name, prediction))
        found[path] = {n: round(float(p), 3) for n, p in zip(prediction.names, prediction.presence) if p >= 0.5}
        lower = [n for n in found[path] if n.startswith(("femur", "hip", "sacrum"))]
        print(f"  {Path(path).name}: found {', '.join(found[path]) or 'nothing'}"
              f"; pelvis or femur: {', '.join(lower) or 'none'}")
    if figure_path:
        _mask_figure(predictions, figure_path)
        print(f"  masks drawn in {figure_path}")
    return found


def _mask_figure(predictions: list, path: str) -> None:
    """Each network input beside it with the masks of the structures found, coloured and named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(predictions), 2, figsize=(9, 4.6 * len(predictions)), squeeze=False)
    colours = plt.get_cmap("tab20")
    for row, (name, prediction) in zip(axes, predictions):
        for axis in row:
            axis.imshow(prediction.image, cmap="gray")
            axis.set_axis_off()
        row[0].set_title(name, fontsize=9)
        row[1].set_title("masks of the structures found (presence ≥ 0.5)", fontsize=9)
        for index, structure in enumerate(prediction.names):
            mask = prediction.probability[index] >= 0.5
            if prediction.presence[index] < 0.5 or not mask.any():
                continue
            colour = colours(index % 20)
            overlay = np.zeros((*mask.shape, 4))
            overlay[mask] = (*colour[:3], 0.45)
            row[1].imshow(overlay)
            v, u = np.nonzero(mask)
            row[1].text(u.max() + 2, v.mean(), structure.replace("vertebrae_", ""), color=colour, fontsize=6,
                        va="center")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench recon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=str(default_bundle_dir()))
    parser.add_argument("--case", action="append", metavar="NAME", help="training case(s) (default: both samples)")
    parser.add_argument("--train-case", action="append", nargs=3, default=[], metavar=("CT", "LABELS", "TABLE"),
                        help="another training patient")
    parser.add_argument("--heldout", action="append", nargs=3, default=[], metavar=("CT", "LABELS", "TABLE"),
                        help="a held-out patient (repeat for several)")
    parser.add_argument("--radiograph", action="append", metavar="FILE",
                        help=f"a real radiograph (default: {', '.join(str(p) for p in _default_radiographs()) or 'none'})")
    parser.add_argument("--views", type=int, default=2, help="new AP views per case for the model")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--spacing-mm", type=float, default=1.5)
    parser.add_argument("--oracle-spacing-mm", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--landmark-bundle", default=None,
                        help="landmark bundle for --parts ssm (default: the bundled xrecon-landmarks-ap256)")
    parser.add_argument("--parts", default="oracle,model,fusion,latency,radiographs",
                        help="comma-separated parts to run: oracle, model, fusion, latency, radiographs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--radiograph-figure", metavar="PNG", help="draw the masks found on the real radiographs")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    model, metadata = load_bundle(args.bundle)
    report = {"bundle": args.bundle}
    cases = [_load(name) for name in (args.case or ["abdomen-pelvis", "chest"])] + [_load(tuple(p)) for p in args.train_case]
    heldout = [_load(tuple(paths)) for paths in args.heldout]
    heldout_names = {name for name, _, _ in heldout}

    for name, ct, segmentation in cases + heldout:
        structures = [s for s in metadata["xrecon"]["structures"] if s in segmentation.names
                      and segmentation.mask_array(s).any()]
        if not structures:
            print(f"\n[{name}] holds none of the model's structures; skipped")
            continue
        centre, _ = case_centre_ras(ct, [segmentation.mask_array(s) for s in structures])
        case = CaseVolume.from_ct(ct, segmentation, structures, extend_body_mm=EXTEND_BODY_MM)
        entry = report.setdefault(name, {"held_out": name in heldout_names})
        if "oracle" in parts and name not in heldout_names:
            wide = [preset_geometry("ap", isocenter_ras_mm=centre), preset_geometry("lateral-left", isocenter_ras_mm=centre),
                    preset_geometry("ap", isocenter_ras_mm=centre, lao_deg=45)]
            demo_views = study_geometries(metadata, centre)
            single = oracle(case, segmentation, structures, wide[:1], args.oracle_spacing_mm)
            fused = oracle(case, segmentation, structures, wide, args.oracle_spacing_mm)
            fused_demo = oracle(case, segmentation, structures, demo_views, args.oracle_spacing_mm)
            entry["oracle"] = _table(f"\n[{name}] oracle (exact depth maps), {args.oracle_spacing_mm} mm grid",
                                     {"AP": [single], "AP+lateral+45deg": [fused], "AP+LAO/RAO 15deg": [fused_demo]},
                                     structures)
            means = entry["oracle"]["mean"]
            print(f"  ratio ASSD fused/AP: wide {means['AP+lateral+45deg'][0] / means['AP'][0]:.2f}, "
                  f"±15° {means['AP+LAO/RAO 15deg'][0] / means['AP'][0]:.2f}")
        if "model" in parts:
            views = new_views(metadata, centre, args.views, args.seed)
            results = [_model_view(model, metadata, case, segmentation, structures, g, args.spacing_mm) for g in views]
            oracle_views = [oracle(case, segmentation, structures, [g], args.spacing_mm) for g in views]
            entry["model_single"] = _report_model(name + (" (held out)" if name in heldout_names else ""), results,
                                                  oracle_views, structures, args.spacing_mm)
        if "ssm" in parts:
            from SingleImageReconLib.commands.reconstruct_ssm import default_landmark_bundle_dir
            from SingleImageReconLib.networks.landmark_bundle import load_landmark_bundle
            from SingleImageReconLib.shape_models.model_files import load_models

            landmark_model, landmark_metadata = load_landmark_bundle(args.landmark_bundle
                                                                     or default_landmark_bundle_dir())
            views = [_ssm_view(model, metadata, landmark_model, landmark_metadata, load_models(), case, segmentation,
                               structures, g, args.spacing_mm) for g in new_views(metadata, centre, args.views,
                                                                                   args.seed)]
            held = ' (held out)' if name in heldout_names else ''
            for label, methods in (("bones all three found", ("depth", "ssm", "combined")),
                                   ("every bone depth found", ("depth, all found", "combined, all found"))):
                columns = {f"{method} {kind}": [view[method][kind] for view in views]
                           for method in methods for kind in ("absolute", "shape")}
                table = _table(f"\n[{name}{held}] depth, shape model on predicted landmarks (ssm) and on depth "
                               f"maps + landmarks (combined), {label} (ASSD / HD95 mm)", columns, structures)
                entry["ssm" if "ssm" in methods else "combined"] = table
                means = table["mean"]
                reference = methods[0]
                for method in methods[1:]:
                    print(f"  ratio {method}/{reference}: ASSD "
                          f"{means[f'{method} absolute'][0] / max(means[f'{reference} absolute'][0], 1e-9):.2f}, "
                          f"shape ASSD {means[f'{method} shape'][0] / max(means[f'{reference} shape'][0], 1e-9):.2f}, "
                          f"HD95 {means[f'{method} absolute'][1] / max(means[f'{reference} absolute'][1], 1e-9):.2f} "
                          f"(shape HD95 {means[f'{method} shape'][1] / max(means[f'{reference} shape'][1], 1e-9):.2f})")
            entry["ssm"]["found"] = [view["found"] for view in views]
            print("  found per view: " + ", ".join(f"{method} {np.mean([len(v['found'][method]) for v in views]):.1f}"
                                                   for method in ("depth", "ssm", "combined")))
            fit_ms = [1000 * seconds for view in views for seconds in view["combined_fit_s"]]
            if fit_ms:
                entry["combined_fit_ms"] = fit_ms
                print(f"  combined fit: median {np.median(fit_ms):.0f} ms a bone over {len(fit_ms)} fits "
                      f"({np.median(fit_ms) / FIT_AIM_MS:.2f} of the {FIT_AIM_MS:.0f} ms aim; slowest {max(fit_ms):.0f} ms)")
        if "fusion" in parts and name not in heldout_names:
            geometries = study_geometries(metadata, centre)
            images = [render_view(case, g).line_integral.numpy() for g in geometries]
            fused = reconstruct_radiographs(model, metadata, images, geometries, structures=structures,
                                            spacing_mm=args.spacing_mm)
            single = reconstruct_radiographs(model, metadata, images[:1], geometries[:1], structures=structures,
                                             spacing_mm=args.spacing_mm)
            evaluations = [evaluate_surfaces(r.surfaces, segmentation, ijk_to_ras(segmentation.reference))
                           for r in (single, fused)]
            entry["model_fusion"] = _table(f"\n[{name}] model, AP alone vs AP+LAO/RAO 15° fused  (F1@2mm / ASSD)",
                                           {"AP": evaluations[:1], "3 views fused": evaluations[1:]}, structures,
                                           keys=("f1", "assd_mm"))
            means = entry["model_fusion"]["mean"]
            print(f"  ratio F1@2mm fused/AP: {means['3 views fused'][0] / max(means['AP'][0], 1e-9):.2f}")

    if "radiographs" in parts:
        paths = args.radiograph or [str(p) for p in _default_radiographs()]
        if paths:
            report["radiographs"] = real_radiographs(model, metadata, paths, args.radiograph_figure)
    if "latency" in parts:
        report["latency_s"] = latency(model, metadata, cases[0], args.spacing_mm)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2, default=lambda value: None)
    return 0


def _default_radiographs() -> list[Path]:
    folder = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "radiographs"
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def latency(model, metadata, case, spacing_mm: float) -> dict:
    """Seconds from one radiograph to all surfaces (median of 5 after a warm-up), and the network's share."""
    name, ct, segmentation = case
    structures = [s for s in metadata["xrecon"]["structures"] if s in segmentation.names]
    centre, _ = case_centre_ras(ct, [segmentation.mask_array(s) for s in structures])
    geometry = study_geometries(metadata, centre)[0]
    image = render_view(CaseVolume.from_ct(ct, None, [], extend_body_mm=EXTEND_BODY_MM), geometry).line_integral.numpy()
    totals, networks = [], []
    for _ in range(6):
        start = time.perf_counter()
        predict(model, metadata, [image], [geometry])
        networks.append(time.perf_counter() - start)
        start = time.perf_counter()
        recon = reconstruct_radiographs(model, metadata, [image], [geometry], spacing_mm=spacing_mm)
        totals.append(time.perf_counter() - start)
    total, network = statistics.median(totals[1:]), statistics.median(networks[1:])
    print(f"\nlatency, one 256x256 radiograph -> {len(recon.surfaces)} surfaces ({torch.get_num_threads()} threads): "
          f"{total:.2f} s (network {network * 1000:.0f} ms); ratio to network {total / network:.1f}, "
          f"to the {AIM_LATENCY_S:.0f} s aim {total / AIM_LATENCY_S:.2f}")
    return {"total": total, "network": network, "surfaces": len(recon.surfaces)}
