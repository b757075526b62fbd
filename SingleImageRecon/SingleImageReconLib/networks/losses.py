"""Losses for dual-face depth maps: scale-invariant log depth (Eigen et al. 2014) and its two
multi-depth variants from the dual-face depth (3DDX) paper, plus a mask loss.

With d = log(predicted depth) − log(true depth) over the n valid pixels of a map, the
scale-invariant loss is

    L = (1/n) Σ d²  −  (λ/n²) (Σ d)²

With λ = 1 it ignores a global scale of the prediction (a constant added to every d); λ = 0 is
the plain mean squared log error. For K maps (structures × front/back faces):

* object-dependent: the statistics are pooled over the valid pixels of all maps,
  n = Σₖ nₖ, L = (1/n) Σₖ Σᵢ d² − (λ/n²)(Σₖ Σᵢ d)², so one scale is shared by every map and the
  maps' depths relative to each other count;
* object-independent: L = (1/K') Σₖ [(1/nₖ) Σᵢ d² − (λ/nₖ²)(Σᵢ d)²] over the K' maps with any
  valid pixel, so each map has its own scale.

Tensors are (B, K, H, W); ``valid`` says which pixels count (the true mask); pixels outside it
contribute nothing, whatever their values.

The log losses shape each bone but barely see where it lies: at 900 mm from the source a 30 mm
offset is d = 0.033, and (1 − λ)·d² ≈ 1.6·10⁻⁴ with λ = 0.85. :func:`absolute_depth_loss` is the
term in which a millimetre counts: the mean absolute depth error in units of ``scale_mm``. Its
gradient does not fade as the error shrinks, so the last millimetres count as much as the
first. Training uses 100 mm (30 mm of error costs 0.3, about a mask loss); at 10 mm the depth
term outweighed the masks tenfold and they stayed blank for three epochs.
:func:`presence_loss` is the binary cross-entropy of each structure's presence logit;
:func:`level_loss` the error of a vertebral chain's level map, in levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss


def _log_difference(predicted_mm: torch.Tensor, target_mm: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """d = log(pred) − log(target) where valid, 0 elsewhere (no NaN from zero depths off the mask).

    In float64: the loss subtracts two large sums when the scale is far off.
    """
    safe = valid.bool()
    predicted_mm, target_mm = predicted_mm.double(), target_mm.double()
    one = torch.ones_like(predicted_mm)
    return torch.where(safe, torch.log(torch.where(safe, predicted_mm, one)) - torch.log(torch.where(safe, target_mm, one)),
                       torch.zeros_like(predicted_mm))


def _scale_invariant(d: torch.Tensor, valid: torch.Tensor, variance_weight: float) -> torch.Tensor:
    """Mean over the rows of (d, valid), each flattened, of (1/n)Σd² − (λ/n²)(Σd)²; rows without pixels skipped."""
    n = valid.sum(dim=-1)
    has_pixels = n > 0
    n = n.clamp(min=1)
    per_row = (d ** 2).sum(dim=-1) / n - variance_weight * d.sum(dim=-1) ** 2 / n ** 2
    return (per_row[has_pixels].mean() if has_pixels.any() else d.sum() * 0).float()


def scale_invariant_log_loss(predicted_mm: torch.Tensor, target_mm: torch.Tensor, valid: torch.Tensor,
                             variance_weight: float = 1.0) -> torch.Tensor:
    """Scale-invariant log loss of single maps, pooled over everything given (e.g. one image's one map)."""
    d = _log_difference(predicted_mm, target_mm, valid)
    return _scale_invariant(d.reshape(1, -1), valid.reshape(1, -1), variance_weight)


def object_dependent_loss(predicted_mm: torch.Tensor, target_mm: torch.Tensor, valid: torch.Tensor,
                          variance_weight: float = 1.0) -> torch.Tensor:
    """Multi-depth loss with statistics pooled over all maps of an image, averaged over the batch."""
    d = _log_difference(predicted_mm, target_mm, valid)
    return _scale_invariant(d.flatten(1), valid.flatten(1), variance_weight)


def object_independent_loss(predicted_mm: torch.Tensor, target_mm: torch.Tensor, valid: torch.Tensor,
                            variance_weight: float = 1.0) -> torch.Tensor:
    """Multi-depth loss computed per map (structure and face), averaged over the maps with pixels."""
    d = _log_difference(predicted_mm, target_mm, valid)
    return _scale_invariant(d.flatten(2), valid.flatten(2), variance_weight)


def absolute_depth_loss(predicted_mm: torch.Tensor, target_mm: torch.Tensor, valid: torch.Tensor,
                        scale_mm: float = 10.0) -> torch.Tensor:
    """Mean |predicted − target| / ``scale_mm`` over the valid pixels of each sample, averaged
    over the samples with any valid pixel; (B, K, H, W) in, a scalar out."""
    valid = valid.bool().flatten(1)
    error = torch.where(valid, (predicted_mm - target_mm).abs().flatten(1), torch.zeros((), dtype=predicted_mm.dtype))
    n = valid.sum(dim=1)
    has_pixels = n > 0
    if not has_pixels.any():
        return predicted_mm.sum() * 0
    return (error.sum(dim=1)[has_pixels] / n[has_pixels] / scale_mm).mean()


def level_loss(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean |predicted − target| of a level map (in levels) over its valid pixels; 0 without any."""
    valid = valid.bool()
    if not valid.any():
        return predicted.sum() * 0
    return (predicted - target).abs()[valid].mean()


def presence_loss(presence_logits: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of (B, S) presence logits against (B, S) "in the image"."""
    return F.binary_cross_entropy_with_logits(presence_logits, visible.to(presence_logits.dtype))


DEPTH_LOSSES = {"single": scale_invariant_log_loss, "object-dependent": object_dependent_loss,
                "object-independent": object_independent_loss}


class MaskLoss(torch.nn.Module):
    """Dice over the structures in the image + binary cross-entropy over all, on (B, K, H, W) logits.

    Each structure is its own binary problem (their projections overlap), so there is no softmax
    across channels; MONAI's DiceCELoss applies a softmax cross-entropy even with sigmoid Dice.
    Dice of a structure that is not in the image is about 1 for any faint prediction, whatever
    its size, so absent structures are left to the cross-entropy (and the presence loss).
    """

    def __init__(self):
        super().__init__()
        self.dice = DiceLoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5, reduction="none")

    def forward(self, logits: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """``visible`` (B, K) bool: structures whose Dice counts (default: those with any target pixel)."""
        if visible is None:
            visible = target.flatten(2).amax(dim=-1) > 0
        cross_entropy = F.binary_cross_entropy_with_logits(logits, target)
        if not visible.any():
            return cross_entropy
        dice = self.dice(logits, target).reshape(visible.shape)
        return dice[visible].mean() + cross_entropy
