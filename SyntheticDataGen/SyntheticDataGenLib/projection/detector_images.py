"""Detector images (DRRs, masks, depth maps) as 3D volumes placed on the detector plane in RAS.

A [height, width] image becomes a one-slice volume whose voxel (u, v, 0) sits at the centre of
detector pixel (u, v), so Slicer shows it in place next to the CT. Files store LPS geometry, as
SimpleITK and Slicer expect.
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk
import torch

from ..cases.ct_io import LPS_TO_RAS, write_image
from .geometry import ProjectionGeometry


def detector_image(array: np.ndarray | torch.Tensor, geometry: ProjectionGeometry) -> sitk.Image:
    """A (H, W) array as a (W, H, 1) SimpleITK image on the detector plane."""
    array = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if array.shape != (geometry.height, geometry.width):
        raise ValueError(f"image of shape {array.shape} does not fit a {geometry.height}x{geometry.width} detector")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array)[None])
    matrix = geometry.detector_ijk_to_ras()
    axes_lps = LPS_TO_RAS @ matrix[:3, :3] / np.array([*geometry.pixel_spacing_mm, 1.0])
    image.SetSpacing([*geometry.pixel_spacing_mm.tolist(), 1.0])
    image.SetDirection(axes_lps.ravel().tolist())
    image.SetOrigin((LPS_TO_RAS @ matrix[:3, 3]).tolist())
    return image


def write_detector_image(path: str | os.PathLike, array, geometry: ProjectionGeometry) -> None:
    """Write a (H, W) detector image (NRRD, NIfTI, ...) placed on the detector plane."""
    write_image(detector_image(array, geometry), path)
