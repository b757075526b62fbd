"""The landmark network: each anatomical landmark's 2D position, its standard deviation, and
whether it is in the image at all.

A MONAI ``BasicUNet`` on the radiograph (average-pooled by ``downsample``) gives three maps per
landmark l: heatmap logits h_l, log-σ values s_l and presence logits q_l. Then, with
p_l = softmax(h_l) over the pixels,

* position (u, v) = Σ p_l · pixel centre (a soft arg-max, differentiable, sub-pixel);
* σ = (softplus(Σ p_l · s_l) + 0.5) · downsample pixels (an isotropic 2D Gaussian's σ);
* presence logit = max over pixels of q_l.

Positions and σ are in pixels of the full-size input image, (u, v) = (column, row) as the
detector's pixel centres (DESIGN's convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

SIGMA_FLOOR_PX = 0.5


class LandmarkNet(torch.nn.Module):
    """Radiograph (B, 1, H, W) in [0, 1] → landmarks.

    Args:
        landmark_count: L.
        features: BasicUNet feature widths (six numbers).
        downsample: average-pooling factor before the U-Net (1, 2 or 4).
    """

    def __init__(self, landmark_count: int, features: Sequence[int] = (32, 32, 64, 128, 256, 32), downsample: int = 2):
        super().__init__()
        from monai.networks.nets import BasicUNet

        self.landmark_count = int(landmark_count)
        self.downsample = int(downsample)
        self.unet = BasicUNet(spatial_dims=2, in_channels=1, out_channels=3 * self.landmark_count,
                              features=tuple(features))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``uv_px`` (B, L, 2), ``sigma_px`` (B, L), ``presence_logits`` (B, L)."""
        small = F.avg_pool2d(image, self.downsample) if self.downsample > 1 else image
        maps = self.unet(small)
        batch, _, height, width = maps.shape
        count = self.landmark_count
        heat, log_sigma, presence = maps[:, :count], maps[:, count:2 * count], maps[:, 2 * count:]
        weights = torch.softmax(heat.reshape(batch, count, -1), dim=-1)
        rows = torch.arange(height, dtype=maps.dtype, device=maps.device)
        columns = torch.arange(width, dtype=maps.dtype, device=maps.device)
        v_small = (weights.reshape(batch, count, height, width).sum(dim=3) * rows).sum(dim=2)
        u_small = (weights.reshape(batch, count, height, width).sum(dim=2) * columns).sum(dim=2)
        # a pooled pixel k covers full-size pixels k·f … k·f + f − 1: its centre is k·f + (f − 1)/2
        offset = (self.downsample - 1) / 2.0
        uv = torch.stack([u_small, v_small], dim=-1) * self.downsample + offset
        sigma = (F.softplus((weights * log_sigma.reshape(batch, count, -1)).sum(dim=-1)) + SIGMA_FLOOR_PX) \
            * self.downsample
        return {"uv_px": uv, "sigma_px": sigma, "presence_logits": presence.amax(dim=(2, 3))}


def landmark_loss(prediction: dict[str, torch.Tensor], uv_px: torch.Tensor, visible: torch.Tensor,
                  known: torch.Tensor, presence_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Gaussian negative log-likelihood of the visible landmarks, plus presence cross-entropy.

    Per visible landmark, with Δ its 2D error and σ its predicted standard deviation (both
    pixels), the NLL of an isotropic 2D Gaussian is |Δ|²/(2σ²) + 2·log σ (+ const), which
    ``torch.nn.functional.gaussian_nll_loss`` gives as the sum over u and v with variance σ².
    Presence is a binary cross-entropy against ``visible`` over the landmarks the sample
    ``known`` to be defined (a case lacking a bone's landmarks says nothing about that bone).

    Args:
        prediction: :class:`LandmarkNet`'s output.
        uv_px: (B, L, 2) true positions (any value where not visible).
        visible: (B, L) bool, on the detector.
        known: (B, L) bool.
    """
    visible = visible & known
    if visible.any():
        variance = prediction["sigma_px"][visible][:, None].expand(-1, 2) ** 2
        nll = 2.0 * F.gaussian_nll_loss(prediction["uv_px"][visible], uv_px[visible], variance, reduction="mean")
    else:
        nll = prediction["uv_px"].sum() * 0.0
    if known.any():
        presence = F.binary_cross_entropy_with_logits(prediction["presence_logits"][known], visible[known].float())
    else:
        presence = prediction["presence_logits"].sum() * 0.0
    return {"loss": nll + presence_weight * presence, "nll": nll, "presence": presence}
