"""The landmark network: each anatomical landmark's 2D position, its standard deviation, and
whether it is in the image at all.

A MONAI ``BasicUNet`` on the radiograph (average-pooled by ``downsample``) gives three maps per
landmark l: heatmap logits h_l, log-σ values s_l and presence logits q_l. Then, with
p_l = softmax(h_l) over the pixels,

* position (u, v) = Σ p_l · pixel centre (a soft arg-max, differentiable, sub-pixel);
* σ = (softplus(Σ p_l · s_l) + 0.5) · downsample pixels (an isotropic 2D Gaussian's σ; p_l
  held constant here);
* presence logit = max over pixels of q_l.

Positions and σ are in pixels of the full-size input image, (u, v) = (column, row) as the
detector's pixel centres (DESIGN's convention).

Why the loss has three parts (:func:`landmark_loss`): trained with the Gaussian NLL alone, the
first bundle collapsed. Early positions are poor, the NLL lowers itself fastest by growing σ, and
the position's gradient |Δ|/σ² then fades: every landmark settled near its mean place with σ
≈ 41 px (median error 48 px on held-out views and about as much on the training views). So the
heatmap is also taught directly where each landmark is (the cross-entropy of p_l against a small
Gaussian at the true point, as DSNT-style regularisation does), and the NLL of each landmark is
weighted by its own σ^(2β), held constant (β-NLL, Seitzer et al. 2022; relative weights of mean
1), so an uncertain landmark's position gradient does not fade against the others' while σ still
settles where the NLL is least. σ reads the σ map under the heatmap without steering it.
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
        #: σ is multiplied by this (set from held-out views after training: ``calibrate_sigma``)
        self.sigma_scale = 1.0
        self.unet = BasicUNet(spatial_dims=2, in_channels=1, out_channels=3 * self.landmark_count,
                              features=tuple(features))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``uv_px`` (B, L, 2), ``sigma_px`` (B, L), ``presence_logits`` (B, L) and
        ``heat_log_p`` (B, L, h, w): log p_l on the pooled grid, for the heatmap loss."""
        small = F.avg_pool2d(image, self.downsample) if self.downsample > 1 else image
        maps = self.unet(small)
        batch, _, height, width = maps.shape
        count = self.landmark_count
        heat, log_sigma, presence = maps[:, :count], maps[:, count:2 * count], maps[:, 2 * count:]
        log_weights = torch.log_softmax(heat.reshape(batch, count, -1), dim=-1)
        weights = log_weights.exp()
        rows = torch.arange(height, dtype=maps.dtype, device=maps.device)
        columns = torch.arange(width, dtype=maps.dtype, device=maps.device)
        v_small = (weights.reshape(batch, count, height, width).sum(dim=3) * rows).sum(dim=2)
        u_small = (weights.reshape(batch, count, height, width).sum(dim=2) * columns).sum(dim=2)
        uv = torch.stack([u_small, v_small], dim=-1) * self.downsample + pooled_centre_offset(self.downsample)
        # σ reads the σ map where the heatmap points, but does not steer the heatmap: through p,
        # the NLL would move each heatmap to where the σ map is large instead of to the landmark
        sigma = (F.softplus((weights.detach() * log_sigma.reshape(batch, count, -1)).sum(dim=-1)) + SIGMA_FLOOR_PX) \
            * self.downsample * self.sigma_scale
        return {"uv_px": uv, "sigma_px": sigma, "presence_logits": presence.amax(dim=(2, 3)),
                "heat_log_p": log_weights.reshape(batch, count, height, width)}


def pooled_centre_offset(downsample: int) -> float:
    """A pooled pixel k covers full-size pixels k·f … k·f + f − 1: its centre is k·f + (f − 1)/2."""
    return (downsample - 1) / 2.0


def heatmap_cross_entropy(heat_log_p: torch.Tensor, uv_px: torch.Tensor, downsample: int,
                          target_sigma_px: float) -> torch.Tensor:
    """KL divergence (nats) from a small Gaussian at each true point to the predicted heatmap p.

    Args:
        heat_log_p: (..., h, w) log p of landmarks on the pooled grid.
        uv_px: (..., 2) their true (u, v) in full-size pixels.
        downsample: pooling factor of the grid.
        target_sigma_px: the target Gaussian's σ in full-size pixels.
    Returns (...): each landmark's KL (0 when p equals the target).
    """
    height, width = heat_log_p.shape[-2:]
    centre = (uv_px - pooled_centre_offset(downsample)) / downsample  # pooled pixel units
    sigma = max(float(target_sigma_px) / downsample, 0.5)
    rows = torch.arange(height, dtype=heat_log_p.dtype, device=heat_log_p.device)
    columns = torch.arange(width, dtype=heat_log_p.dtype, device=heat_log_p.device)
    # The target is separable, t(v, u) = t_v(v)·t_u(u), so neither it nor its log is built whole:
    # KL = Σ t log t − Σ t log p, with Σ t log t = Σ t_v log t_v + Σ t_u log t_u.
    log_t_v = torch.log_softmax(-0.5 * ((rows - centre[..., 1:2]) / sigma) ** 2, dim=-1)  # (..., h)
    log_t_u = torch.log_softmax(-0.5 * ((columns - centre[..., 0:1]) / sigma) ** 2, dim=-1)  # (..., w)
    t_v, t_u = log_t_v.exp(), log_t_u.exp()
    negative_entropy = (t_v * log_t_v).sum(dim=-1) + (t_u * log_t_u).sum(dim=-1)
    cross = ((heat_log_p * t_u.unsqueeze(-2)).sum(dim=-1) * t_v).sum(dim=-1)
    return negative_entropy - cross


def landmark_loss(prediction: dict[str, torch.Tensor], uv_px: torch.Tensor, visible: torch.Tensor,
                  known: torch.Tensor, presence_weight: float = 1.0, nll_beta: float = 0.0,
                  heatmap_weight: float = 0.0, heatmap_sigma_px: float = 4.0, downsample: int = 1
                  ) -> dict[str, torch.Tensor]:
    """Gaussian negative log-likelihood of the visible landmarks, plus presence cross-entropy,
    plus (``heatmap_weight`` > 0) the heatmap cross-entropy.

    Per visible landmark, with Δ its 2D error and σ its predicted standard deviation (both
    pixels), the NLL of an isotropic 2D Gaussian is |Δ|²/(2σ²) + 2·log σ (+ const), which
    ``torch.nn.functional.gaussian_nll_loss`` gives as the sum over u and v with variance σ².
    With ``nll_beta`` β > 0 each landmark's NLL is weighted by σ^(2β), held constant and scaled
    to mean 1 over the batch (β-NLL: a landmark's position gradient does not fade against the
    others' as its σ grows; σ's minimum stays at σ = |Δ|/√2).
    Presence is a binary cross-entropy against ``visible`` over the landmarks the sample
    ``known`` (placed by its case, or of a bone the case does not have: known absent).
    The heatmap term is :func:`heatmap_cross_entropy` of the visible landmarks (needs
    ``prediction["heat_log_p"]`` and the network's ``downsample``).

    Args:
        prediction: :class:`LandmarkNet`'s output.
        uv_px: (B, L, 2) true positions (any value where not visible).
        visible: (B, L) bool, on the detector.
        known: (B, L) bool.
    """
    visible = visible & known
    zero = prediction["uv_px"].sum() * 0.0
    nll = heatmap = zero
    if visible.any():
        sigma = prediction["sigma_px"][visible]
        per_landmark = 2.0 * F.gaussian_nll_loss(prediction["uv_px"][visible], uv_px[visible],
                                                 sigma[:, None].expand(-1, 2) ** 2, reduction="none").mean(dim=-1)
        if nll_beta:
            # relative weights (mean 1), so that the term keeps the plain NLL's scale beside the others
            weight = sigma.detach() ** (2.0 * nll_beta)
            per_landmark = per_landmark * (weight / weight.mean())
        nll = per_landmark.mean()
        if heatmap_weight:
            # on every landmark, then the visible ones' mean: no copy of the visible heatmaps
            per_map = heatmap_cross_entropy(prediction["heat_log_p"], uv_px, downsample, heatmap_sigma_px)
            heatmap = per_map[visible].mean()
    presence = (F.binary_cross_entropy_with_logits(prediction["presence_logits"][known], visible[known].float())
                if known.any() else zero)
    return {"loss": nll + presence_weight * presence + heatmap_weight * heatmap, "nll": nll, "presence": presence,
            "heatmap": heatmap}
