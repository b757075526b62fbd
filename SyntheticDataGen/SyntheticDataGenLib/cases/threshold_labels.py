"""Bone labels made from a CT's own bone (threshold labels), for CTs no atlas covers.

The scripts beside such labels (``data/propagated-labels/<case>/make_labels.py``) split the bone
into named pieces their own way; what they share is here: filling each piece's marrow, and
writing the label map with its table, a provenance record and a contact sheet to check by eye.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .label_map import label_table_text
from .label_sheet import contact_sheet


def fill_marrow(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """``mask`` (k, j, i) with each axial slice's cortex closed by a disc of ``radius_px`` and its
    holes filled: cancellous bone below a threshold leaves C-shaped or hollow sections."""
    disk = np.hypot(*np.mgrid[-radius_px:radius_px + 1, -radius_px:radius_px + 1]) <= radius_px
    filled = mask.copy()
    for k in range(mask.shape[0]):
        closed = ndimage.binary_closing(np.pad(mask[k], radius_px), disk)[radius_px:-radius_px, radius_px:-radius_px]
        filled[k] = ndimage.binary_fill_holes(closed) | mask[k]
    return filled


def write_threshold_labels(out_dir: Path, ct: sitk.Image, label: np.ndarray, structures: Sequence[str],
                           record: dict, command: str, title: str) -> dict[str, int]:
    """Write ``label`` ((k, j, i) on the CT grid, value i + 1 for ``structures[i]``) as
    ``labels.nii.gz`` and ``labels.csv``, ``record`` with the voxel counts and the ``command``
    that made them as ``propagation.json``, and ``contact_sheet.png`` headed ``title``; returns
    {structure: voxels}."""
    image = sitk.GetImageFromArray(label)
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(out_dir / "labels.nii.gz"), useCompression=True)
    (out_dir / "labels.csv").write_text(label_table_text(structures))
    voxels = {name: int((label == value).sum()) for value, name in enumerate(structures, start=1)}
    (out_dir / "propagation.json").write_text(json.dumps({**record, "voxels": voxels, "command": command}, indent=2) + "\n")
    contact_sheet(out_dir / "contact_sheet.png", ct, label, structures, title)
    return voxels
