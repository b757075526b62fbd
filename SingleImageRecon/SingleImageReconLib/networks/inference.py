"""Run the dual-face depth network on radiographs: each structure's presence, mask probability and depths.

A radiograph is windowed to [0, 1] exactly as training images were (:func:`display_window`)
and, when its detector has another pixel count than the network was trained for, resampled to
that count over the same detector area (the geometry follows, so nothing else changes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from SyntheticDataGenLib.augmentation.detector import display_window
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

from .depth_network import DepthNet, reference_depth_mm
from ..reconstruction.surface import ViewEvidence


@dataclass
class DepthPrediction:
    """The network's output for one radiograph; stacks are (S, H, W) in ``names`` order.

    Attributes:
        geometry: the detector the maps lie on (the input's, resampled to the network's size).
        image: the (H, W) network input in [0, 1], bone bright.
        names: structure names.
        probability: mask probability of each structure.
        front_mm, back_mm: distance from the source to where each ray enters / leaves the bone.
        presence: (S,) probability that each structure is in the image at all.
    """

    geometry: ProjectionGeometry
    image: np.ndarray
    names: list[str]
    probability: np.ndarray
    front_mm: np.ndarray
    back_mm: np.ndarray
    presence: np.ndarray

    def evidence(self, name: str, threshold: float = 0.5) -> ViewEvidence:
        """One structure's mask (probability >= threshold) and depths."""
        index = self.names.index(name)
        return ViewEvidence(self.geometry, self.probability[index] >= threshold, self.front_mm[index],
                            self.back_mm[index])


def network_size_px(metadata: dict) -> tuple[int, int]:
    """(width, height) of the images a bundle's network was trained on."""
    height, width = metadata["network_data_format"]["inputs"]["image"]["spatial_shape"]
    return int(width), int(height)


def fit_to_network(image: np.ndarray, geometry: ProjectionGeometry, size_px: tuple[int, int]
                   ) -> tuple[np.ndarray, ProjectionGeometry]:
    """Resample a (H, W) image to ``size_px`` (width, height) over the same detector area.

    Returns the resampled image and the geometry of its pixels.
    """
    width, height = size_px
    if (geometry.width, geometry.height) == (width, height):
        return image, geometry
    scale_u, scale_v = geometry.width / width, geometry.height / height
    resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None],
                            size=(height, width), mode="area" if scale_u >= 1 and scale_v >= 1 else "bilinear")
    spacing = geometry.pixel_spacing_mm * np.array([scale_u, scale_v])
    # the first new pixel's centre, in old pixel units, keeps the detector's outer edge in place
    origin = geometry.pixel_center_ras((scale_u - 1) / 2, (scale_v - 1) / 2)
    fitted = ProjectionGeometry(geometry.source_ras_mm, origin, geometry.detector_u_ras, geometry.detector_v_ras,
                                spacing, (width, height), extra=dict(geometry.extra))
    return resized[0, 0].numpy(), fitted


def network_inputs(metadata: dict, images: list[np.ndarray], geometries: list[ProjectionGeometry],
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[tuple[np.ndarray, ProjectionGeometry]]]:
    """(B, 1, H, W) a bundle's network input from radiographs (windowed, resampled to its
    detector size), and each (resampled image, geometry of its pixels)."""
    size = network_size_px(metadata)
    fitted = [fit_to_network(image, geometry, size) for image, geometry in zip(images, geometries)]
    inputs = torch.stack([display_window(torch.from_numpy(np.asarray(image, dtype=np.float32)))
                          for image, _ in fitted])[:, None].to(device)
    return inputs, fitted


@torch.no_grad()
def predict(model: DepthNet, metadata: dict, images: list[np.ndarray], geometries: list[ProjectionGeometry],
            device: torch.device | str = "cpu") -> list[DepthPrediction]:
    """Masks and depth maps of every structure the bundle knows, for each (image, geometry).

    Args:
        model, metadata: from :func:`.bundle.load_bundle`.
        images: (H, W) radiographs, bone bright, any value range.
        geometries: the calibrated geometry of each image (its size must match the image's).
    """
    names = list(metadata["xrecon"]["structures"])
    inputs, fitted = network_inputs(metadata, images, geometries, device)
    reference = torch.tensor([reference_depth_mm(geometry.to_dict()) for _, geometry in fitted],
                             dtype=torch.float32, device=device)
    output = model(inputs, reference)
    probability = torch.sigmoid(output["mask_logits"]).cpu().numpy()
    front, back = output["front_mm"].cpu().numpy(), output["back_mm"].cpu().numpy()
    presence = torch.sigmoid(output["presence_logits"]).cpu().numpy()
    return [DepthPrediction(geometry, inputs[index, 0].cpu().numpy(), names, probability[index], front[index],
                            back[index], presence[index]) for index, (_, geometry) in enumerate(fitted)]
