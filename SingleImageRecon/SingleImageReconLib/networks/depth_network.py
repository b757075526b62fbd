"""The dual-face depth network: one radiograph in; each structure's presence, mask and front/back depth out.

A MONAI ``BasicUNet`` (2D, instance norm, no downloaded weights) maps the image to a presence
evidence map per structure and, per structure or chain of structures (below), a mask logit, a
front-depth offset and a thickness (:func:`output_channels`).

Depth is predicted in millimetres about the known geometry, so that a millimetre of error is a
millimetre of loss (:mod:`losses`) and the absolute scale comes from the projection:

    front_mm = reference_mm + DEPTH_UNIT_MM · front offset
    back_mm  = front_mm + DEPTH_UNIT_MM · softplus(thickness)      (back >= front by construction)

where ``reference_mm`` is the distance from the source to the isocentre
(:func:`reference_depth_mm`), the patient's centre in every training view.

Presence: the structure's evidence map is pooled by a smooth maximum (log-mean-exp) over the
image into one logit, so a structure counts as present when some region of the image says so
strongly; it is trained against "some of the structure's pixels are in the image".

Vertebrae may form a chain (:mod:`..reconstruction.vertebral_chain`): the network predicts the column's mask,
front and thickness maps once, plus a level map (the position of each pixel along the chain).
Level k's mask logit is ``min(column logit, LEVEL_SHARPNESS · (0.5 − |level − k|))``: inside
the column where the level map rounds to k. Its depths are the column's. Every other structure
has its own mask, front and thickness channels.

``downsample`` > 1 runs the U-Net on an average-pooled image; its maps are upsampled
(bilinearly) to the input size before the masks are composed, or left at the network's size
(``full_size=False``, cheaper, for training losses). 1 is full resolution.
Each structure is named in the bundle's metadata, the chains too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet

DEFAULT_FEATURES = (16, 32, 64, 128, 256, 16)
DEPTH_UNIT_MM = 100.0  # one unit of the raw offsets; keeps them near 1 for bones about the isocentre
LEVEL_SHARPNESS = 10.0  # logit per level unit: a pixel a tenth of a level past a boundary has logit -1
# a geometry without a recorded isocentre: the patient's centre sits at this fraction of the
# source-to-detector distance in the usual set-ups (900 mm of 1100 mm)
_ISOCENTRE_FRACTION = 0.82


def reference_depth_mm(geometry: dict) -> float:
    """Distance (mm) from the source to the isocentre of a geometry dict (DESIGN.md JSON)."""
    if geometry.get("source_to_isocenter_mm"):
        return float(geometry["source_to_isocenter_mm"])
    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

    return _ISOCENTRE_FRACTION * ProjectionGeometry.from_dict(geometry).source_to_detector_mm


def output_channels(structure_count: int, chains: Sequence[Sequence[int]] = ()) -> int:
    """Channels of the U-Net's last layer: mask, front and thickness per unit (a structure outside
    every chain, or a whole chain), a level map per chain, a presence evidence map per structure."""
    units = structure_count - sum(len(chain) for chain in chains) + len(chains)
    return 3 * units + len(chains) + structure_count


class DepthNet(torch.nn.Module):
    """Presence, masks and dual-face depth maps of ``structure_count`` structures from a (B, 1, H, W) image.

    ``chains``: lists of structure indices, each in head-to-foot order, that share a mask and
    depth maps and are told apart by a level map. H and W must be multiples of 16 · ``downsample``.
    """

    def __init__(self, structure_count: int, features: Sequence[int] = DEFAULT_FEATURES, downsample: int = 1,
                 chains: Sequence[Sequence[int]] = ()):
        super().__init__()
        self.structure_count = int(structure_count)
        self.features = tuple(int(f) for f in features)
        self.downsample = int(downsample)
        self.chains = [[int(i) for i in chain] for chain in chains]
        members = {i for chain in self.chains for i in chain}
        if len(members) != sum(map(len, self.chains)) or any(not 0 <= i < self.structure_count for i in members):
            raise ValueError(f"chains {self.chains} must name distinct structures of {self.structure_count}")
        singles = [i for i in range(self.structure_count) if i not in members]
        self.unit_count = len(singles) + len(self.chains)
        unit, chain_of, position = [0] * self.structure_count, [-1] * self.structure_count, [0.0] * self.structure_count
        for u, i in enumerate(singles):
            unit[i] = u
        for g, chain in enumerate(self.chains):
            for k, i in enumerate(chain):
                unit[i], chain_of[i], position[i] = len(singles) + g, g, float(k)
        self.register_buffer("_unit", torch.tensor(unit), persistent=False)
        self.register_buffer("_chain_of", torch.tensor(chain_of), persistent=False)
        self.register_buffer("_position", torch.tensor(position), persistent=False)
        self.register_buffer("_chain_length", torch.tensor([float(len(c)) for c in self.chains]), persistent=False)
        self.unet = BasicUNet(spatial_dims=2, in_channels=1, out_channels=output_channels(self.structure_count, self.chains),
                              features=self.features, norm=("instance", {"affine": True}), dropout=0.0)

    def forward(self, image: torch.Tensor, reference_mm: torch.Tensor, full_size: bool = True) -> dict[str, torch.Tensor]:
        """Returns ``mask_logits``, ``front_mm`` and ``back_mm`` (B, S, h, w), ``presence_logits`` (B, S),
        and with chains ``chain_mask_logits`` and ``level`` (B, G, h, w).

        (h, w) is the image's (H, W), or the network's (H, W) / downsample when not ``full_size``.

        Args:
            image: (B, 1, H, W) radiograph in [0, 1], bone bright.
            reference_mm: (B,) source-to-isocentre distance of each image's geometry.
        """
        size = image.shape[-2:]
        if self.downsample > 1:
            image = F.avg_pool2d(image, self.downsample)
        out = self.unet(image)
        maps, evidence = out.split([out.shape[1] - self.structure_count, self.structure_count], dim=1)
        pixels = evidence.shape[-2] * evidence.shape[-1]
        presence = torch.logsumexp(evidence.flatten(2), dim=-1) - math.log(pixels)
        if self.downsample > 1 and full_size:
            maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
        units = self.unit_count
        unit_logits, front_offset, thickness, raw_level = maps.split([units, units, units, len(self.chains)], dim=1)
        front = reference_mm.view(-1, 1, 1, 1).to(out.dtype) + DEPTH_UNIT_MM * front_offset.clamp(-5, 5)
        back = front + DEPTH_UNIT_MM * F.softplus(thickness).clamp(max=5)
        result = {"mask_logits": unit_logits[:, self._unit], "front_mm": front[:, self._unit],
                  "back_mm": back[:, self._unit], "presence_logits": presence}
        if self.chains:
            # raw 0 is the chain's middle; a raw unit spans half the chain
            length = self._chain_length.view(1, -1, 1, 1)
            level = (length - 1) / 2 + length / 2 * raw_level
            members = self._chain_of >= 0
            distance = (level[:, self._chain_of[members]] - self._position[members].view(1, -1, 1, 1)).abs()
            logits = result["mask_logits"].clone()
            logits[:, members] = torch.minimum(logits[:, members], LEVEL_SHARPNESS * (0.5 - distance))
            result["mask_logits"] = logits
            result["chain_mask_logits"] = unit_logits[:, units - len(self.chains):]
            result["level"] = level
        return result
