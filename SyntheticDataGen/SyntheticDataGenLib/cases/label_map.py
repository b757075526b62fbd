"""Several binary masks as one label map: label k + 1 marks mask k, later masks over earlier ones.

One label map costs one byte a voxel (or pixel) however many structures there are; the
SyntheticDataGen module writes the CT's structures this way for ``xrecon generate`` and shows
the preview's detector masks this way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def stack_masks(masks: Iterable[np.ndarray], shape: tuple[int, ...], count: int) -> tuple[np.ndarray, list[int]]:
    """(label map of ``shape``, indices of the masks that cover part of an earlier one).

    ``masks`` yields ``count`` arrays of ``shape`` (non-zero = inside); they may be produced one
    at a time, so only one full-size mask need exist at once. The labels are uint8 for fewer
    than 255 masks, else uint16; 0 is background.
    """
    labels = np.zeros(shape, dtype=np.uint8 if count < 255 else np.uint16)
    overlapping = []
    for index, mask in enumerate(masks):
        inside = np.asarray(mask) != 0
        if index and np.any(labels[inside]):
            overlapping.append(index)
        labels[inside] = index + 1
    return labels, overlapping


def label_table_text(names: Sequence[str]) -> str:
    """The ``id,structure`` CSV of a label map where label k + 1 is structure k."""
    return "id,structure\n" + "".join(f"{index + 1},{name}\n" for index, name in enumerate(names))


def write_label_map(segmentation, labels_path, table_path, names=None) -> list[str]:
    """Write a ``labels.Segmentation``'s structures (``names``, default all) as one label map on its
    reference grid (label k + 1 for structure k, later over earlier) and its ``id,structure``
    table; returns the names written, in label order."""
    import SimpleITK as sitk

    from .ct_io import write_image

    names = list(segmentation.names if names is None else names)
    reference = segmentation.reference
    labels, _overlapping = stack_masks((segmentation.mask_array(name) for name in names),
                                       tuple(reversed(reference.GetSize())), len(names))
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(reference)
    write_image(image, str(labels_path))
    with open(table_path, "w", encoding="utf-8") as stream:
        stream.write(label_table_text(names))
    return names
