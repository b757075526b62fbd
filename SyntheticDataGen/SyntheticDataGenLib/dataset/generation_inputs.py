"""The files ``xrecon generate`` reads for a case that lives in a Slicer scene: CT, label map, table.

The SyntheticDataGen module turns its nodes into SimpleITK images and writes them here, into the
dataset's ``inputs/`` folder, so a dataset keeps what it was made from. Files that already hold
the same data are left alone (same bytes, same modification time): a resumed run then sees
exactly the inputs it started from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..cases.case_names import GENERIC_CASE_NAMES
from ..cases.ct_io import write_image
from ..cases.label_map import label_table_text
from ..errors import XreconInputError


@dataclass(frozen=True)
class GenerationInputs:
    """Paths of one exported case: the CT, its label map and the ``id,structure`` table."""

    ct_path: str
    labels_path: str
    table_path: str


def input_file_stem(name: str) -> str:
    """File name stem for a CT named ``name`` (a node's name), safe on every file system.

    ``xrecon generate`` names the case after the stem, so a generic one (``ct``, ``image``...)
    gets a ``case_`` prefix.
    """
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name or "").strip("_")
    return stem if stem and stem.lower() not in GENERIC_CASE_NAMES else f"case_{stem or 'ct'}"


def same_image(path: str | os.PathLike, image: sitk.Image) -> bool:
    """True when the file holds the same voxels on the same grid (origin, spacing, direction) as ``image``."""
    try:
        existing = sitk.ReadImage(str(path))
    except RuntimeError:
        return False
    if (existing.GetSize() != image.GetSize() or existing.GetPixelID() != image.GetPixelID()
            or not np.allclose(existing.GetOrigin(), image.GetOrigin(), atol=1e-6)
            or not np.allclose(existing.GetSpacing(), image.GetSpacing(), atol=1e-9)
            or not np.allclose(existing.GetDirection(), image.GetDirection(), atol=1e-9)):
        return False
    return bool(np.array_equal(sitk.GetArrayViewFromImage(existing), sitk.GetArrayViewFromImage(image)))


def write_generation_inputs(ct: sitk.Image, labels: sitk.Image, names: Sequence[str], folder: str | os.PathLike,
                            stem: str) -> GenerationInputs:
    """Write ``STEM.nrrd`` (the CT), ``STEM-labels.nrrd`` and ``STEM-labels.csv`` into ``folder``.

    ``labels`` is on the CT grid with label k + 1 for ``names[k]``. A file that already holds the
    same data is not rewritten. When the folder's parent holds a dataset (``dataset.json``), a file
    that differs is refused with XreconInputError rather than replaced: ``xrecon generate``
    resumes a dataset only from the inputs it was made from.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    inputs = GenerationInputs(os.path.join(folder, f"{stem}.nrrd"), os.path.join(folder, f"{stem}-labels.nrrd"),
                              os.path.join(folder, f"{stem}-labels.csv"))
    dataset = os.path.dirname(os.path.abspath(folder))
    dataset_exists = os.path.isfile(os.path.join(dataset, "dataset.json"))
    for image, path in ((ct, inputs.ct_path), (labels, inputs.labels_path)):
        if os.path.isfile(path) and same_image(path, image):
            continue
        if dataset_exists and os.path.isfile(path):
            raise XreconInputError(
                f"The dataset in {dataset} was made from other data ({os.path.basename(path)} differs); "
                "choose a new output folder")
        temporary = path + ".partial.nrrd"  # ends in .nrrd: SimpleITK picks the writer by extension
        write_image(image, temporary)
        os.replace(temporary, path)
    table = label_table_text(names)
    if os.path.isfile(inputs.table_path):
        with open(inputs.table_path, encoding="utf-8") as stream:
            same_table = stream.read() == table
    else:
        same_table = False
    if not same_table:
        if dataset_exists and os.path.isfile(inputs.table_path):
            raise XreconInputError(
                f"The dataset in {dataset} was made with other structures; choose a new output folder")
        with open(inputs.table_path, "w", encoding="utf-8", newline="") as stream:
            stream.write(table)
    return inputs
