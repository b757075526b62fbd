"""The dual-face depth network: one radiograph in, each structure's mask and front/back depth out.

A MONAI ``BasicUNet`` (2D, instance norm, no downloaded weights) maps the image to 3 channels per
structure: a mask logit and two log-depth offsets. Depth is predicted relative to the known
geometry, so that the absolute scale, which a scale-invariant loss cannot see, comes from the
projection rather than from the image:

    front_mm = reference_mm · exp(front offset)
    back_mm  = front_mm · exp(softplus(thickness))      (back >= front by construction)

where ``reference_mm`` is the distance from the source to the isocentre (:func:`reference_depth_mm`).
Each structure has its own channels, named in the bundle's metadata; vertebrae of different
levels are different structures, told apart by the network from context (ribs, sacrum).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet

DEFAULT_FEATURES = (16, 32, 64, 128, 256, 16)
# a geometry without a recorded isocentre: the patient's centre sits at this fraction of the
# source-to-detector distance in the usual set-ups (900 mm of 1100 mm)
_ISOCENTRE_FRACTION = 0.82


def reference_depth_mm(geometry: dict) -> float:
    """Distance (mm) from the source to the isocentre of a geometry dict (DESIGN.md JSON)."""
    if geometry.get("source_to_isocenter_mm"):
        return float(geometry["source_to_isocenter_mm"])
    from SyntheticDataGenLib.geometry import ProjectionGeometry

    return _ISOCENTRE_FRACTION * ProjectionGeometry.from_dict(geometry).source_to_detector_mm


class DepthNet(torch.nn.Module):
    """Masks and dual-face depth maps of ``structure_count`` structures from a (B, 1, H, W) image.

    H and W must be multiples of 16 (four poolings).
    """

    def __init__(self, structure_count: int, features: Sequence[int] = DEFAULT_FEATURES):
        super().__init__()
        self.structure_count = int(structure_count)
        self.features = tuple(int(f) for f in features)
        self.unet = BasicUNet(spatial_dims=2, in_channels=1, out_channels=3 * self.structure_count,
                              features=self.features, norm=("instance", {"affine": True}), dropout=0.0)

    def forward(self, image: torch.Tensor, reference_mm: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``mask_logits``, ``front_mm`` and ``back_mm``, each (B, S, H, W).

        Args:
            image: (B, 1, H, W) radiograph in [0, 1], bone bright.
            reference_mm: (B,) source-to-isocentre distance of each image's geometry.
        """
        out = self.unet(image)
        logits, front_offset, thickness = out.split(self.structure_count, dim=1)
        front = reference_mm.view(-1, 1, 1, 1).to(out.dtype) * torch.exp(front_offset.clamp(-3, 3))
        back = front * torch.exp(F.softplus(thickness).clamp(max=3))
        return {"mask_logits": logits, "front_mm": front, "back_mm": back}
