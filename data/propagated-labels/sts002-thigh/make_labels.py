"""Bone labels of sts002-thigh from its own bone: the proximal femur and the pelvic bone beside it.

A 157 × 140 mm field on the patient's left, 157 mm long (the hip flexed as in sts001, so the
femoral shaft crosses the axial slices obliquely), with the scanner table in its posterior
rows. No atlas covers it. Bone above BONE_HU, below the table, is eroded in-plane until the
femur parts from the pelvic bone beside it; each bone voxel takes the nearest eroded piece
within REACH_MM (the table does not); the cortex is closed and filled slice by slice. The
most lateral piece is the femur; the rest, towards the midline,
is the hip bone (pubic and ischial parts, which this field cuts). Checked by eye on
contact_sheet.png. Run from the repository root:

    python data/propagated-labels/sts002-thigh/make_labels.py
"""

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from SyntheticDataGenLib.cases.threshold_labels import fill_marrow, write_threshold_labels

CT = Path("../shared/data/unlabelled/sts002-thigh/ct.nii.gz")
OUT = Path(__file__).resolve().parent
BONE_HU = 180.0
ERODE_PX = (1, 1, 0)  # (x, y, z) voxels: 1 mm in plane; the slices are 3.27 mm apart
MIN_PIECE_VOXELS = 300
REACH_MM = 3.0
TABLE_ROW = 100  # rows from here on (y ≥ 157 mm, posterior of the skin) hold the table only
CLOSE_PX = {"femur": 6, "hip": 3}


def main() -> None:
    ct = sitk.ReadImage(str(CT))
    bone = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(sitk.BinaryThreshold(ct, BONE_HU, 1e6), [1, 1, 0]))
    bone[:, TABLE_ROW:, :] = 0
    bone_image = sitk.GetImageFromArray(bone)
    bone_image.CopyInformation(ct)
    pieces = sitk.GetArrayFromImage(sitk.RelabelComponent(
        sitk.ConnectedComponent(sitk.BinaryErode(bone_image, list(ERODE_PX))), minimumObjectSize=MIN_PIECE_VOXELS))
    distance, nearest = ndimage.distance_transform_edt(pieces == 0, sampling=ct.GetSpacing()[::-1],
                                                       return_indices=True)
    grown = np.where(bone.astype(bool) & (distance <= REACH_MM), pieces[tuple(nearest)], 0)

    x_mean = {piece: np.nonzero(grown == piece)[2].mean() for piece in range(1, pieces.max() + 1)}
    femur = max(x_mean, key=x_mean.get)  # the most lateral piece (+x is the patient's left)
    structures = ["femur_left", "hip_left"]
    label = np.zeros_like(grown, dtype=np.uint8)
    for value, name in enumerate(structures, start=1):  # marrow: each axial slice's cortex closed and filled
        mask = (grown == femur) if name.startswith("femur") else (grown > 0) & (grown != femur)
        label[fill_marrow(mask, CLOSE_PX[name.split("_")[0]]) & (label == 0)] = value
    voxels = write_threshold_labels(OUT, ct, label, structures, {
        "kind": "threshold labels", "target_ct": str(CT),
        "method": "bone threshold above the table, in-plane erosion into pieces, nearest piece within reach, "
                  "cortex closed and filled slice by slice; the most lateral piece is the femur",
        "settings": {"bone_hu": BONE_HU, "erode_voxels_xyz": ERODE_PX, "min_piece_voxels": MIN_PIECE_VOXELS,
                     "reach_mm": REACH_MM, "table_row": TABLE_ROW, "close_voxels_in_plane": CLOSE_PX}},
        "python data/propagated-labels/sts002-thigh/make_labels.py", "sts002-thigh: threshold labels")
    print(voxels)


if __name__ == "__main__":
    main()
