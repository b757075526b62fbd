"""Bone labels of sts001-hip-thigh from its own bone, split where the hip joint narrows.

No atlas covers this field of view (one hip joint, the pubic symphysis and a thigh), and
registering abdomen-pelvis onto it failed (see ../README.md), so the labels come from the CT
alone: bone above BONE_HU, eroded in-plane until the femoral head parts from the acetabulum
and the two pubic bones part at the symphysis; each bone voxel then takes the nearest eroded
piece (mm), the cortex is closed in-plane (the cancellous bone of the trochanters lies below the
threshold, which leaves C-shaped sections) and filled slice by slice, and the pieces are named by where they lie (LPS:
+x is the patient's left). Checked by eye on contact_sheet.png. Run from the repository root:

    python data/propagated-labels/sts001-hip-thigh/make_labels.py
"""

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from SyntheticDataGenLib.cases.threshold_labels import fill_marrow, write_threshold_labels

CT = Path("../shared/data/unlabelled/sts001-hip-thigh/ct.nii.gz")
OUT = Path(__file__).resolve().parent
BONE_HU = 180.0
ERODE_PX = (2, 2, 0)  # (x, y, z) voxels: 2 mm in plane; the slices are 3.27 mm apart
MIN_PIECE_VOXELS = 1000
#: In-plane closing radius (voxels of about 1 mm) before the slice-by-slice fill: wide for the
#: femur, whose trochanteric sections open where the cortex is thin; narrow for the hip bone,
#: whose notches and foramen must stay open.
CLOSE_PX = {"femur": 9, "hip": 3}


def main() -> None:
    ct = sitk.ReadImage(str(CT))
    bone = sitk.BinaryMorphologicalOpening(sitk.BinaryThreshold(ct, BONE_HU, 1e6), [1, 1, 0])
    pieces = sitk.GetArrayFromImage(sitk.RelabelComponent(
        sitk.ConnectedComponent(sitk.BinaryErode(bone, list(ERODE_PX))), minimumObjectSize=MIN_PIECE_VOXELS))
    bone_array = sitk.GetArrayFromImage(bone).astype(bool)
    spacing_zyx = ct.GetSpacing()[::-1]
    _, nearest = ndimage.distance_transform_edt(pieces == 0, sampling=spacing_zyx, return_indices=True)
    grown = np.where(bone_array, pieces[tuple(nearest)], 0)

    # name each piece by where it lies: the one reaching the lowest slice is the femur; of the
    # others, the one on the femur's side of the midline (x beyond the symphysis) is that side's hip
    names, label = {}, np.zeros_like(grown, dtype=np.uint8)
    z_low = {piece: np.nonzero(grown == piece)[0].min() for piece in range(1, pieces.max() + 1)}
    femur = min(z_low, key=z_low.get)
    x_mm = lambda piece: ct.TransformContinuousIndexToPhysicalPoint(  # noqa: E731
        [float(np.nonzero(grown == piece)[2].mean()), 0.0, 0.0])[0]
    side = "left" if x_mm(femur) > 0 else "right"
    others = sorted((piece for piece in z_low if piece != femur), key=lambda piece: -abs(x_mm(piece)))
    names[femur] = f"femur_{side}"
    for piece in others:
        piece_side = "left" if x_mm(piece) > 0 else "right"
        if f"hip_{piece_side}" in names.values():
            sys.exit(f"two pieces on the {piece_side}: check the erosion")
        names[piece] = f"hip_{piece_side}"
    order = sorted(names, key=lambda piece: names[piece])
    for value, piece in enumerate(order, start=1):  # marrow: each axial slice's cortex closed and filled
        mask = fill_marrow(grown == piece, CLOSE_PX[names[piece].split("_")[0]])
        label[mask & (label == 0)] = value
    structures = [names[piece] for piece in order]
    voxels = write_threshold_labels(OUT, ct, label, structures, {
        "kind": "threshold labels", "target_ct": str(CT),
        "method": "bone threshold, in-plane erosion into pieces, nearest piece, cortex closed and filled "
                  "slice by slice; named by position",
        "settings": {"bone_hu": BONE_HU, "erode_voxels_xyz": ERODE_PX, "min_piece_voxels": MIN_PIECE_VOXELS,
                     "close_voxels_in_plane": CLOSE_PX}},
        "python data/propagated-labels/sts001-hip-thigh/make_labels.py", "sts001-hip-thigh: threshold labels")
    print(voxels)


if __name__ == "__main__":
    main()
