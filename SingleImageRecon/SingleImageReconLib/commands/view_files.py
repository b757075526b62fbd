"""One view as files Slicer opens in place: the image and each structure's mask and depth maps on
the detector plane (RAS), and the geometry. ``xrecon render`` and ``xrecon reconstruct`` share it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from SyntheticDataGenLib.projection.detector_images import write_detector_image
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry


def file_stem(structure: str) -> str:
    """A structure name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", structure)


def write_view(folder: Path, image_name: str, image, geometry: ProjectionGeometry, names: list[str],
               masks, fronts, backs) -> None:
    """Write ``folder/<image_name>.nrrd``, ``mask_<s>.nrrd``, ``front_<s>.nrrd``, ``back_<s>.nrrd``
    (mm) for each structure s, and ``geometry.json``. Stacks are (S, H, W) in ``names`` order."""
    folder.mkdir(parents=True, exist_ok=True)
    write_detector_image(folder / f"{image_name}.nrrd", image, geometry)
    for index, name in enumerate(names):
        stem = file_stem(name)
        write_detector_image(folder / f"mask_{stem}.nrrd", np.asarray(masks[index]).astype(np.uint8), geometry)
        write_detector_image(folder / f"front_{stem}.nrrd", fronts[index], geometry)
        write_detector_image(folder / f"back_{stem}.nrrd", backs[index], geometry)
    geometry.save(folder / "geometry.json")


def write_depth_view(folder: Path, prediction, threshold: float) -> None:
    """A depth network's prediction of one view (:class:`..inference.DepthPrediction`): its input
    image, and each structure's mask at ``threshold`` with its depth maps (0 off the mask)."""
    masks = prediction.probability >= threshold
    write_view(folder, "radiograph", prediction.image, prediction.geometry, prediction.names, masks,
               np.where(masks, prediction.front_mm, 0), np.where(masks, prediction.back_mm, 0))
