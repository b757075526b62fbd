"""``xrecon labels``: propagated bone labels for an unlabelled CT, from labelled CTs (atlases)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .number_options import GRID_SPACING_MM, number_in

SPINE_AND_PELVIS = ([f"vertebrae_T{i}" for i in range(1, 13)] + [f"vertebrae_L{i}" for i in range(1, 6)]
                    + ["sacrum", "hip_left", "hip_right", "femur_left", "femur_right"])


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "labels", help="propagate bone labels from labelled CTs onto an unlabelled CT",
        description="Register each atlas (a labelled CT) onto the target CT (affine, then diffeomorphic demons, on "
                    "bone-threshold masks), carry its labels over, fuse several atlases by majority vote, and refine "
                    "the result with the target's own bone (HU threshold, nearest propagated label, marrow filled, "
                    "largest piece kept). Writes OUT/labels.nii.gz (on the target's grid), OUT/labels.csv, "
                    "OUT/propagation.json (atlases, settings, overlap figures, the command) and OUT/contact_sheet.png "
                    "to check every label by eye. These are propagated labels, not ground truth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ct", required=True, metavar="FILE", help="the unlabelled CT (HU)")
    parser.add_argument("--atlas", nargs=3, action="append", required=True, metavar=("CT", "LABELS", "TABLE"),
                        help="a labelled CT: its CT, label map and id,structure table (repeat for several)")
    parser.add_argument("--structures", type=lambda text: [s for s in text.split(",") if s],
                        default=SPINE_AND_PELVIS, metavar="A,B,...", help="structures to carry over")
    parser.add_argument("--bone-hu", type=number_in(-1000, 3000, "HU"), default=120.0,
                        help="bone threshold of the refinement")
    parser.add_argument("--reach-mm", type=number_in(0, 50, "mm", low_inclusive=True), default=4.0,
                        help="how far the target's bone may lie from a propagated structure")
    parser.add_argument("--spacing-mm", type=GRID_SPACING_MM, default=3.0, help="registration grid")
    parser.add_argument("--name", help="case name on the contact sheet (default: the CT's folder)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import SimpleITK as sitk
    from tqdm import tqdm

    from SyntheticDataGenLib.atomic_io import check_output_folder, staged_output
    from SyntheticDataGenLib.cases.ct_io import read_ct, write_image
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.cases.label_propagation import Atlas, fuse_votes, overlap, refine_with_bone, warp_atlas
    from SyntheticDataGenLib.cases.label_sheet import contact_sheet
    from SyntheticDataGenLib.cases.labels import read_segmentation
    from SyntheticDataGenLib.memory import check_fits, registration_bytes

    check_output_folder(args.out, "labels")
    ct = read_ct(args.ct)
    name = args.name or Path(args.ct).resolve().parent.name
    atlases = []
    for atlas_ct, atlas_labels, table in args.atlas:
        reference = read_ct(atlas_ct)
        segmentation = read_segmentation(atlas_labels, table, reference=reference)
        if not set(args.structures) & set(segmentation.names):
            raise XreconInputError(f"atlas {atlas_labels} has none of the structures asked for")
        atlases.append(Atlas(Path(atlas_ct).resolve().parent.name, reference, segmentation))
    largest = max((image for image in [ct] + [atlas.ct for atlas in atlases]), key=lambda image: np.prod(image.GetSize()))
    check_fits(registration_bytes(np.multiply(largest.GetSize(), largest.GetSpacing()), args.spacing_mm),
               f"registration on a {args.spacing_mm:g} mm grid", "use a larger --spacing-mm")
    warped = []
    for atlas in atlases:
        with tqdm(total=100, desc=f"registering {atlas.name}", unit="%", file=sys.stderr) as bar:
            def progress(fraction: float, stage: str, bar=bar) -> None:
                bar.n = round(100 * fraction)
                bar.set_postfix_str(stage)
                bar.refresh()
            warped.append(warp_atlas(ct, atlas, args.structures, args.spacing_mm, progress=progress))
    fused = fuse_votes(warped, len(args.structures))
    refined = refine_with_bone(ct, fused, args.bone_hu, args.reach_mm)
    report = overlap(fused, refined, args.structures, warped)
    kept = [s for s in args.structures if s in report]
    with staged_output(args.out, "labels") as staging:
        # renumber 1..n over the structures found, so the table lists only what the map holds
        renumbered = np.zeros_like(refined)
        for new, structure in enumerate(kept, start=1):
            renumbered[refined == args.structures.index(structure) + 1] = new
        image = sitk.GetImageFromArray(renumbered.astype(np.uint8 if len(kept) < 256 else np.uint16))
        image.CopyInformation(ct)
        write_image(image, staging / "labels.nii.gz")
        (staging / "labels.csv").write_text("id,structure\n" + "".join(f"{i},{s}\n" for i, s in enumerate(kept, 1)))
        (staging / "propagation.json").write_text(json.dumps({
            "kind": "propagated labels", "target_ct": str(args.ct),
            "atlases": [{"name": a.name, "ct": c, "labels": l, "table": t} for a, (c, l, t) in zip(atlases, args.atlas)],
            "settings": {"bone_hu": args.bone_hu, "reach_mm": args.reach_mm, "registration_spacing_mm": args.spacing_mm},
            "overlap": report, "command": ["xrecon", *sys.argv[1:]] if sys.argv[0].endswith("xrecon") else sys.argv}, indent=2))
        contact_sheet(staging / "contact_sheet.png", ct, renumbered, kept,
                      f"{name}: propagated labels from {', '.join(a.name for a in atlases)}")
    print(f"wrote {args.out}: {len(kept)} structure(s): {', '.join(kept)}")
    return 0
