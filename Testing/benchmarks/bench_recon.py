"""Reconstruction benchmark: accuracy bounds, model accuracy and latency, measured in one run.

    xrecon bench recon [--bundle DIR] [--case NAME ...] [--heldout CT LABELS TABLE] [--views N]

1. Oracle: exact depth maps rendered from the CT labels, lifted to surfaces: AP alone, and
   three views fused (AP, lateral, 45° oblique; and AP with the C-arm at ±15°, the demo's
   views). Prints ASSD/HD95 per bone and the ratio fused / single.
2. Model, one AP radiograph: N new views of each case (the C-arm and table moved a little,
   seeds unlike any training set), ASSD/HD95/Dice per bone, and the ratio to the oracle of the
   same views; then the held-out patient.
3. Model, three views fused (AP, LAO 15°, RAO 15°): F1 at 2 mm and ASSD, ratio to one view.
4. Latency of one radiograph to all surfaces (network + surfaces), median of 5 runs, and its
   ratio to the network alone and to the 1 s aim.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from SingleImageReconLib.bundle import load_bundle
from SingleImageReconLib.commands.reconstruct import default_bundle_dir
from SingleImageReconLib.demo import EXTEND_BODY_MM, study_geometries
from SingleImageReconLib.evaluation import evaluate_surfaces
from SingleImageReconLib.inference import predict
from SingleImageReconLib.reconstruction import reconstruct_radiographs, surfaces_from_evidence
from SingleImageReconLib.surface import ViewEvidence
from SyntheticDataGenLib.case_info import structures_centre_ras
from SyntheticDataGenLib.ct_io import ijk_to_ras, read_ct
from SyntheticDataGenLib.geometry import preset_geometry
from SyntheticDataGenLib.labels import read_segmentation
from SyntheticDataGenLib.sample_data import sample_case
from SyntheticDataGenLib.view import CaseVolume, render_view

AIM_LATENCY_S = 1.0


def _load(name_or_paths) -> tuple[str, object, object]:
    if isinstance(name_or_paths, str):
        case = sample_case(name_or_paths)
        paths, name = (case.ct_path, case.labels_path, case.table_path), name_or_paths
    else:
        paths, name = name_or_paths, "held-out"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench recon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=str(default_bundle_dir()))
    parser.add_argument("--case", action="append", metavar="NAME", help="training case(s) (default: both samples)")
    parser.add_argument("--heldout", nargs=3, metavar=("CT", "LABELS", "TABLE"), help="a held-out patient")
    parser.add_argument("--views", type=int, default=2, help="new AP views per case for the model")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--spacing-mm", type=float, default=1.5)
    parser.add_argument("--oracle-spacing-mm", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default="oracle,model,fusion,latency",
                        help="comma-separated parts to run: oracle, model, fusion, latency")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    model, metadata = load_bundle(args.bundle)
    report = {"bundle": args.bundle}
    cases = [_load(name) for name in (args.case or ["abdomen-pelvis", "chest"])]
    heldout = _load(tuple(args.heldout)) if args.heldout else None

    for name, ct, segmentation in cases + ([heldout] if heldout else []):
        structures = [s for s in metadata["xrecon"]["structures"] if s in segmentation.names
                      and segmentation.mask_array(s).any()]
        centre = structures_centre_ras(ct, [segmentation.mask_array(s) for s in structures])
        case = CaseVolume.from_ct(ct, segmentation, structures, extend_body_mm=EXTEND_BODY_MM)
        entry = report.setdefault(name, {})
        if "oracle" in parts and (heldout is None or name != heldout[0]):
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
        views = new_views(metadata, centre, args.views if name != "held-out" else 1, args.seed)
        model_single, oracle_single = [], []
        for geometry in views if "model" in parts else []:
            line_integral = render_view(case, geometry).line_integral.numpy()
            recon = reconstruct_radiographs(model, metadata, [line_integral], [geometry], structures=structures,
                                            spacing_mm=args.spacing_mm)
            model_single.append(evaluate_surfaces(recon.surfaces, segmentation, ijk_to_ras(segmentation.reference)))
            oracle_single.append(oracle(case, segmentation, structures, [geometry], args.spacing_mm))
        if "model" in parts:
            entry["model_single"] = _table(f"\n[{name}] model, one AP radiograph ({len(views)} new view(s)), "
                                           f"{args.spacing_mm} mm grid  (ASSD / HD95 / Dice)",
                                           {"model": model_single, "oracle, same views": oracle_single}, structures,
                                           keys=("assd_mm", "hd95_mm", "dice"))
            means = entry["model_single"]["mean"]
            print(f"  ratio ASSD model/oracle: {means['model'][0] / means['oracle, same views'][0]:.1f}")
        if "fusion" in parts and name != "held-out":
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

    if "latency" in parts:
        report["latency_s"] = latency(model, metadata, cases[0], args.spacing_mm)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


def latency(model, metadata, case, spacing_mm: float) -> dict:
    """Seconds from one radiograph to all surfaces (median of 5 after a warm-up), and the network's share."""
    name, ct, segmentation = case
    structures = [s for s in metadata["xrecon"]["structures"] if s in segmentation.names]
    centre = structures_centre_ras(ct, [segmentation.mask_array(s) for s in structures])
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
