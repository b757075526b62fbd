"""Depth losses on hand-computed values."""

import math

import pytest
import torch

from SingleImageReconLib.networks.losses import (MaskLoss, absolute_depth_loss, object_dependent_loss,
                                        object_independent_loss, presence_loss, scale_invariant_log_loss)


def test_single_map_loss_ignores_a_global_scale_when_its_variance_weight_is_one():
    target = torch.rand(2, 1, 8, 8) * 100 + 800
    predicted = target * torch.exp(torch.randn(2, 1, 8, 8) * 0.05)
    valid = torch.rand(2, 1, 8, 8) > 0.3
    base = scale_invariant_log_loss(predicted, target, valid)
    for scale in (0.5, 1.7, 30.0):
        assert scale_invariant_log_loss(predicted * scale, target, valid).item() == pytest.approx(base.item(), abs=1e-6)
    assert scale_invariant_log_loss(predicted * 1.7, target, valid, variance_weight=0.5).item() > base.item() + 0.01


def test_single_map_loss_on_hand_computed_values():
    predicted = torch.tensor([[[2.0, 4.0]]])
    target = torch.tensor([[[1.0, 1.0]]])
    valid = torch.ones_like(predicted, dtype=torch.bool)
    d = [math.log(2), math.log(4)]
    expected = (d[0] ** 2 + d[1] ** 2) / 2 - (d[0] + d[1]) ** 2 / 4
    assert scale_invariant_log_loss(predicted, target, valid).item() == pytest.approx(expected, rel=1e-6)
    assert scale_invariant_log_loss(predicted, target, valid, 0.0).item() == pytest.approx(
        (d[0] ** 2 + d[1] ** 2) / 2, rel=1e-6)


def test_object_dependent_and_independent_variants_differ_as_the_equations_say():
    # one image, two maps: map A has d = (a1, a2), map B has d = (b1,) at one valid pixel
    a1, a2, b1 = math.log(1.5), math.log(0.8), math.log(2.0)
    target = torch.full((1, 2, 1, 2), 1000.0)
    predicted = target * torch.tensor([[[[1.5, 0.8]], [[2.0, 3.0]]]])
    valid = torch.tensor([[[[True, True]], [[True, False]]]])
    pooled = (a1 ** 2 + a2 ** 2 + b1 ** 2) / 3 - (a1 + a2 + b1) ** 2 / 9
    per_map = ((a1 ** 2 + a2 ** 2) / 2 - (a1 + a2) ** 2 / 4 + (b1 ** 2 - b1 ** 2)) / 2
    assert object_dependent_loss(predicted, target, valid).item() == pytest.approx(pooled, rel=1e-6)
    assert object_independent_loss(predicted, target, valid).item() == pytest.approx(per_map, rel=1e-6)
    # a scale on one map only: the independent variant does not mind, the dependent one does
    rescaled = predicted.clone()
    rescaled[:, 1] *= 3.0
    assert object_independent_loss(rescaled, target, valid).item() == pytest.approx(per_map, rel=1e-6)
    assert object_dependent_loss(rescaled, target, valid).item() > pooled + 0.05
    # a scale on all maps: neither minds
    assert object_dependent_loss(predicted * 4, target, valid).item() == pytest.approx(pooled, rel=1e-5)


@pytest.mark.parametrize("loss", [scale_invariant_log_loss, object_dependent_loss, object_independent_loss])
def test_pixels_outside_the_mask_do_not_contribute(loss):
    target = torch.rand(2, 3, 6, 6) * 50 + 900
    predicted = (target * torch.exp(torch.randn(2, 3, 6, 6) * 0.1)).requires_grad_()
    valid = torch.rand(2, 3, 6, 6) > 0.5
    value = loss(predicted, target, valid)
    value.backward()
    assert torch.all(predicted.grad[~valid] == 0)
    changed_prediction = predicted.detach().clone()
    changed_prediction[~valid] = torch.nan  # even NaN or zero depths off the mask are ignored
    changed_target = target.clone()
    changed_target[~valid] = 0.0
    assert loss(changed_prediction, changed_target, valid).item() == pytest.approx(value.item(), rel=1e-6)


def test_mask_loss_prefers_the_right_mask():
    target = (torch.rand(2, 3, 16, 16) > 0.5).float()
    good = loss_of(target * 20 - 10, target)
    bad = loss_of(-(target * 20 - 10), target)
    assert good < 0.05 < bad


def loss_of(logits, target):
    return MaskLoss()(logits, target).item()


def test_a_one_millimetre_shift_costs_a_tenth_in_the_absolute_term():
    target = torch.full((1, 2, 4, 4), 900.0)
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[:, :, 0] = False
    shifted = target + 1.0
    shifted[~valid] = 500.0  # off the mask: must not count
    assert absolute_depth_loss(shifted, target, valid).item() == pytest.approx(0.1, rel=1e-6)
    assert absolute_depth_loss(target - 3.0, target, valid, scale_mm=10.0).item() == pytest.approx(0.3, rel=1e-6)
    # the scale-invariant term alone barely sees the same millimetre: (1 - 0.85) * log(901/900)^2
    seen = object_independent_loss(shifted, target, valid, 0.85).item()
    assert seen == pytest.approx(0.15 * math.log(901 / 900) ** 2, rel=1e-3) and seen < 1e-6


def test_the_training_loss_rises_by_the_hand_computed_amount_for_a_one_millimetre_shift():
    from SingleImageReconLib.networks.depth_training import TrainConfig, per_sample_loss

    masks = torch.zeros(1, 2, 8, 8)
    masks[0, 0, 2:6, 2:6] = 1  # structure 0 in the image, structure 1 absent
    front = torch.where(masks > 0, torch.full_like(masks, 880.0), torch.zeros_like(masks))
    back = torch.where(masks > 0, torch.full_like(masks, 920.0), torch.zeros_like(masks))
    batch = {"image": torch.zeros(1, 1, 8, 8), "masks": masks, "front_mm": front, "back_mm": back}
    logits = torch.where(masks > 0, torch.tensor(20.0), torch.tensor(-20.0))
    presence = torch.tensor([[20.0, -20.0]])
    config = TrainConfig(min_visible_px=4)

    def loss(offset_mm: float) -> float:
        prediction = {"mask_logits": logits, "presence_logits": presence,
                      "front_mm": front + offset_mm, "back_mm": back + offset_mm}
        return per_sample_loss(prediction, batch, config, MaskLoss()).item()

    assert loss(1.0) - loss(0.0) == pytest.approx(0.01, abs=1e-5)  # 1 mm / 100 mm, weight 1
    assert loss(5.0) - loss(0.0) == pytest.approx(0.05, abs=1e-4)


def test_presence_loss_and_dice_only_where_the_structure_is_in_the_image():
    assert presence_loss(torch.zeros(1, 2), torch.tensor([[True, False]])).item() == pytest.approx(math.log(2))
    target = torch.zeros(1, 2, 8, 8)
    target[0, 0, :4] = 1
    logits = torch.where(target > 0, torch.tensor(30.0), torch.tensor(-30.0))
    logits[0, 1] = -3.0  # a faint prediction of the absent structure: Dice would call it a total miss
    loss = MaskLoss()(logits, target).item()
    assert loss < 0.1, "an absent structure is left to the cross-entropy"
    everywhere = MaskLoss()(logits, target, torch.tensor([[True, True]])).item()
    assert everywhere > loss + 0.4
