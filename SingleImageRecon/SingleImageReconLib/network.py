"""The dual-face depth network: one radiograph in; each structure's presence, mask and front/back depth out.

A MONAI ``BasicUNet`` (2D, instance norm, no downloaded weights) maps the image to 4 channels per
structure: a mask logit, a front-depth offset, a thickness and a presence evidence map.

Depth is predicted in millimetres about the known geometry, so that a millimetre of error is a
millimetre of loss (:mod:`losses`) and the absolute scale comes from the projection:

    front_mm = reference_mm + DEPTH_UNIT_MM · front offset
    back_mm  = front_mm + DEPTH_UNIT_MM · softplus(thickness)      (back >= front by construction)

where ``reference_mm`` is the distance from the source to the isocentre
(:func:`reference_depth_mm`), the patient's centre in every training view.

Presence: the structure's evidence map is pooled by a smooth maximum (log-mean-exp) over the
image into one logit, so a structure counts as present when some region of the image says so
strongly; it is trained against "some of the structure's pixels are in the image".

``downsample`` > 1 runs the U-Net on an average-pooled image and upsamples its outputs
(bilinearly) back to the input size: a CPU budget's model; 1 is full resolution.
Each structure has its own channels, named in the bundle's metadata; vertebrae of different
levels are different structures, told apart by the network from context (ribs, sacrum, pelvis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet

DEFAULT_FEATURES = (16, 32, 64, 128, 256, 16)
CHANNELS_PER_STRUCTURE = 4
DEPTH_UNIT_MM = 100.0  # one unit of the raw offsets; keeps them near 1 for bones about the isocentre
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
    """Presence, masks and dual-face depth maps of ``structure_count`` structures from a (B, 1, H, W) image.

    H and W must be multiples of 16 · ``downsample`` (four poolings).
    """

    def __init__(self, structure_count: int, features: Sequence[int] = DEFAULT_FEATURES, downsample: int = 1):
        super().__init__()
        self.structure_count = int(structure_count)
        self.features = tuple(int(f) for f in features)
        self.downsample = int(downsample)
        self.unet = BasicUNet(spatial_dims=2, in_channels=1, out_channels=CHANNELS_PER_STRUCTURE * self.structure_count,
                              features=self.features, norm=("instance", {"affine": True}), dropout=0.0)

    def forward(self, image: torch.Tensor, reference_mm: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``mask_logits``, ``front_mm`` and ``back_mm`` (B, S, H, W), and ``presence_logits`` (B, S).

        Args:
            image: (B, 1, H, W) radiograph in [0, 1], bone bright.
            reference_mm: (B,) source-to-isocentre distance of each image's geometry.
        """
        size = image.shape[-2:]
        if self.downsample > 1:
            image = F.avg_pool2d(image, self.downsample)
        out = self.unet(image)
        logits, front_offset, thickness, evidence = out.split(self.structure_count, dim=1)
        pixels = evidence.shape[-2] * evidence.shape[-1]
        presence = torch.logsumexp(evidence.flatten(2), dim=-1) - math.log(pixels)
        maps = torch.cat([logits, front_offset, thickness], dim=1)
        if self.downsample > 1:
            maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
        logits, front_offset, thickness = maps.split(self.structure_count, dim=1)
        front = reference_mm.view(-1, 1, 1, 1).to(out.dtype) + DEPTH_UNIT_MM * front_offset.clamp(-5, 5)
        back = front + DEPTH_UNIT_MM * F.softplus(thickness).clamp(max=5)
        return {"mask_logits": logits, "front_mm": front, "back_mm": back, "presence_logits": presence}
