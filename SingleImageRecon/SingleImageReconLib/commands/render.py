"""``xrecon render``: one view of a CT: DRR, per-structure masks and depth maps, landmarks, geometry."""

from __future__ import annotations

import argparse

from .case_arguments import add_case_arguments, load_case
from .geometry_arguments import add_geometry_arguments, geometry_from_arguments
from .number_options import number_in


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "render", help="render one view: DRR, masks, front/back depth maps, landmarks",
        description="Render a DRR of a CT for one projection geometry, and for each structure its mask and "
                    "front/back depth maps (mm from the source). Writes OUT/drr.nrrd (line integral, "
                    "dimensionless), OUT/mask_<s>.nrrd, OUT/front_<s>.nrrd, OUT/back_<s>.nrrd, "
                    "OUT/landmarks.mrk.json (with --landmarks) and OUT/geometry.json. Each image lies on the "
                    "detector plane in RAS, so Slicer shows it in place next to the CT. Nothing is written "
                    "unless everything succeeds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_case_arguments(parser)
    add_geometry_arguments(parser)
    parser.add_argument("--landmarks", metavar="MRK_JSON", help="3D landmarks (Slicer .mrk.json) to project")
    physics = parser.add_argument_group("attenuation")
    physics.add_argument("--attenuation", choices=("linear", "two-material"), default="linear",
                         help="HU to attenuation model")
    energy = physics.add_mutually_exclusive_group()
    energy.add_argument("--energy-kev", type=float, default=60.0, help="effective photon energy")
    energy.add_argument("--kvp", type=float, help="tube voltage; sets the effective energy to 0.4 x kVp")
    physics.add_argument("--bone-density", type=number_in(0, 10), default=1.0, help="multiplier of the HU above water")
    physics.add_argument("--bone-only", action="store_true",
                         help="render only the selected structures (a bone-only image)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # heavy imports here, so that `xrecon --help` and light commands start fast
    import numpy as np
    import torch

    from SyntheticDataGenLib.atomic_io import check_output_folder, staged_output
    from SyntheticDataGenLib.projection.attenuation import effective_energy_kev
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.memory import check_fits, render_bytes
    from SyntheticDataGenLib.cases.landmarks import (detector_points_ras, project_landmarks, read_markups_json,
                                               write_markups_json)
    from SyntheticDataGenLib.projection.view import CaseVolume, render_view

    from .view_files import write_view

    check_output_folder(args.out, "render")
    ct, segmentation = load_case(args)
    geometry = geometry_from_arguments(args, ct)
    landmarks = read_markups_json(args.landmarks) if args.landmarks else None
    if args.bone_only and segmentation is None:
        raise XreconInputError("--bone-only needs --labels (or --case)")
    structures = len(segmentation.select(args.structures)) if segmentation is not None else 0
    check_fits(render_bytes(*geometry.size_px, structures, int(np.prod(ct.GetSize()))), "this render",
               "use a smaller --detector-size-px or fewer --structures")
    case = CaseVolume.from_ct(ct, segmentation, args.structures, bone_only=args.bone_only,
                              device=torch.device(args.device))
    view = render_view(case, geometry, model=args.attenuation, bone_density=args.bone_density,
                       energy_kev=effective_energy_kev(args.kvp) if args.kvp else args.energy_kev)
    with staged_output(args.out, "render") as staging:
        write_view(staging, "drr", view.line_integral.cpu().numpy(), geometry, view.names, view.masks.cpu().numpy(),
                   view.front_mm.cpu().numpy(), view.back_mm.cpu().numpy())
        if landmarks is not None:
            labels, points = landmarks
            uv, visible = project_landmarks(points, geometry)
            on_detector = np.where(visible[:, None], detector_points_ras(uv, geometry), np.nan)  # NaN: undefined
            write_markups_json(staging / "landmarks.mrk.json", labels, on_detector)
    print(f"wrote {args.out}: drr.nrrd, {len(view.names)} structure(s), geometry.json")
    return 0
