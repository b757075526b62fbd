"""X-ray style randomisation: off by default, reproducible, in range, masks cover every change."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.augmentation.style import (
    StyleAugmentation, add_markers, burn_in_text, random_grid_lines, random_histogram_style,
    random_local_contrast, random_tone_curve)

STRENGTH_EFFECTS = [random_tone_curve, random_local_contrast, random_histogram_style, random_grid_lines]
MASK_EFFECTS = [burn_in_text, add_markers]
ALL_ON = StyleAugmentation(tone_strength=1.0, text_count=3, marker_count=3, grid_strength=1.0)


def radiograph_like(height: int = 96, width: int = 128) -> torch.Tensor:
    """A displayed radiograph look-alike [H, W] in [0, 1], bone bright: a body-like gradient and a bright ellipse."""
    v, u = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    body = (1 - u ** 2).clamp(min=0).sqrt()
    r2 = (u / 0.35) ** 2 + ((v + 0.1) / 0.6) ** 2
    bone = (r2 < 1).float() * (1 - r2).clamp(min=0) ** 0.3
    return (0.05 + 0.45 * body * (1 - 0.3 * v) + 0.45 * bone).clamp(0, 1).float()


def run(effect, image, seed, amount):
    """Call an effect; return (image, mask or None)."""
    result = effect(image, np.random.default_rng(seed), amount)
    return result if isinstance(result, tuple) else (result, None)


def on_amount(effect):
    return 3 if effect in MASK_EFFECTS else 1.0


@pytest.mark.parametrize("effect", STRENGTH_EFFECTS + MASK_EFFECTS)
def test_zero_is_an_exact_copy_and_draws_nothing(effect):
    image = radiograph_like()
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    result = effect(image, rng, 0)
    assert rng.bit_generator.state == state
    out = result[0] if isinstance(result, tuple) else result
    assert torch.equal(out, image) and out is not image and out.dtype == image.dtype
    if isinstance(result, tuple):
        assert result[1].dtype == torch.bool and result[1].shape == image.shape and not result[1].any()


def test_default_augmentation_is_identity_bit_for_bit():
    image = radiograph_like()
    before = image.clone()
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    out, mask = StyleAugmentation().apply(image, rng)
    assert not StyleAugmentation().enabled
    assert torch.equal(out, before) and out is not image
    assert mask.dtype == torch.bool and mask.shape == image.shape and not mask.any()
    assert rng.bit_generator.state == state
    assert torch.equal(image, before)


@pytest.mark.parametrize("effect", STRENGTH_EFFECTS + MASK_EFFECTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_effect_changes_the_image_and_keeps_shape_dtype_range(effect, seed):
    image = radiograph_like()
    before = image.clone()
    out, mask = run(effect, image, seed, on_amount(effect))
    assert out.shape == image.shape and out.dtype == torch.float32
    assert not torch.equal(out, image)
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    assert torch.equal(image, before)  # the input is never modified
    if mask is not None:
        assert mask.shape == image.shape and mask.dtype == torch.bool and mask.any()


@pytest.mark.parametrize("seed", range(6))
def test_full_augmentation_changes_range_and_mask(seed):
    image = radiograph_like()
    out, mask = ALL_ON.apply(image, np.random.default_rng(seed))
    assert out.shape == image.shape and out.dtype == image.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, image) and mask.any() and not mask.all()


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("strength", [0.05, 0.5, 1.0])
def test_tone_curve_is_monotone_and_bounded_by_strength(seed, strength):
    ramp = torch.linspace(0, 1, 64 * 96).reshape(64, 96)  # sorted in row-major order
    out = random_tone_curve(ramp, np.random.default_rng(seed), strength)
    flat = out.flatten()
    assert (flat[1:] >= flat[:-1]).all()
    assert flat[0] >= 0 and flat[-1] <= 1
    # x + s·(curve(x) - x) with curve in [0, 1] moves no value by more than s.
    assert (out - ramp).abs().max() <= strength + 1e-6


def test_tone_curves_vary_between_seeds():
    ramp = torch.linspace(0, 1, 1024).reshape(32, 32)
    curves = torch.stack([random_tone_curve(ramp, np.random.default_rng(s), 1.0) for s in range(20)])
    # Every pair of seeds gives a different curve, and the spread between curves is large.
    assert len({c.numpy().tobytes() for c in curves}) == 20
    assert curves[:, 16, 0].max() - curves[:, 16, 0].min() > 0.2


@pytest.mark.parametrize("effect", STRENGTH_EFFECTS + MASK_EFFECTS)
def test_same_seed_same_bytes_different_seed_different(effect):
    image = radiograph_like()
    a, mask_a = run(effect, image, 7, on_amount(effect))
    b, mask_b = run(effect, image, 7, on_amount(effect))
    c, _ = run(effect, image, 8, on_amount(effect))
    assert a.numpy().tobytes() == b.numpy().tobytes()
    assert not torch.equal(a, c)
    if mask_a is not None:
        assert torch.equal(mask_a, mask_b)


def test_augmentation_is_reproducible():
    image = radiograph_like()
    a, mask_a = ALL_ON.apply(image, np.random.default_rng(11))
    b, mask_b = ALL_ON.apply(image, np.random.default_rng(11))
    c, _ = ALL_ON.apply(image, np.random.default_rng(12))
    assert a.numpy().tobytes() == b.numpy().tobytes() and torch.equal(mask_a, mask_b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("effect", MASK_EFFECTS)
@pytest.mark.parametrize("seed", range(8))
def test_image_changes_only_inside_the_mask(effect, seed):
    image = radiograph_like(128, 128)
    out, mask = effect(image, np.random.default_rng(seed), 4)
    assert mask.any()
    changed = out != image
    assert not (changed & ~mask).any()
    # Far from the mask (3 px), every pixel keeps its exact value: no anti-aliasing leaks out.
    near = F.max_pool2d(mask[None, None].float(), 7, stride=1, padding=3)[0, 0] > 0
    assert torch.equal(out[~near], image[~near])
    # The mask holds the drawn objects, not most of the image.
    assert mask.float().mean() < 0.5


@pytest.mark.parametrize("seed", range(6))
def test_markers_are_radio_opaque_so_they_only_brighten(seed):
    image = radiograph_like()
    out, mask = add_markers(image, np.random.default_rng(seed), 4)
    assert (out >= image).all()
    assert (out[mask] > image[mask]).float().mean() > 0.5


@pytest.mark.parametrize("seed", range(6))
def test_text_is_near_white_or_near_black_where_fully_covered(seed):
    image = torch.full((128, 128), 0.5)
    out, mask = burn_in_text(image, np.random.default_rng(seed), 4)
    # Anti-aliased edges blend with the image; well-covered pixels are far from mid-grey.
    changed = (out - image).abs()
    assert changed[mask].max() > 0.35


def test_augmentation_mask_is_the_union_of_text_and_markers_and_tone_alone_has_none():
    image = radiograph_like()
    _, mask = StyleAugmentation(tone_strength=1.0, grid_strength=1.0).apply(image, np.random.default_rng(0))
    assert not mask.any()
    _, mask = StyleAugmentation(text_count=2, marker_count=2).apply(image, np.random.default_rng(0))
    assert mask.any()


def test_switching_one_effect_does_not_reshuffle_the_others():
    """Each effect has its own child generator, so the text lands in the same place either way."""
    image = radiograph_like()
    _, text_only = StyleAugmentation(text_count=3).apply(image, np.random.default_rng(5))
    _, text_and_tone = StyleAugmentation(text_count=3, tone_strength=0.7, grid_strength=0.5).apply(
        image, np.random.default_rng(5))
    assert torch.equal(text_only, text_and_tone)


@pytest.mark.parametrize("effect", MASK_EFFECTS)
def test_annotations_and_markers_scale_with_the_image(effect):
    """They cover a share of the image, not a fixed number of pixels (above the minimum font size)."""
    def covered(size):
        image = radiograph_like(size, size)
        return np.mean([effect(image, np.random.default_rng(s), 3)[1].float().mean().item() for s in range(6)])
    assert covered(768) == pytest.approx(covered(256), rel=0.5)


@pytest.mark.parametrize("effect", STRENGTH_EFFECTS)
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "strong", None, True])
def test_bad_strength_is_refused(effect, bad):
    with pytest.raises(XreconInputError):
        effect(radiograph_like(), np.random.default_rng(0), bad)


@pytest.mark.parametrize("effect", MASK_EFFECTS)
@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_bad_count_is_refused(effect, bad):
    with pytest.raises(XreconInputError):
        effect(radiograph_like(), np.random.default_rng(0), bad)


@pytest.mark.parametrize("effect", STRENGTH_EFFECTS + MASK_EFFECTS)
def test_bad_image_or_rng_is_refused(effect):
    amount = on_amount(effect)
    with pytest.raises(XreconInputError):
        effect(radiograph_like()[None], np.random.default_rng(0), amount)  # [1, H, W]
    with pytest.raises(XreconInputError):
        effect(radiograph_like().numpy(), np.random.default_rng(0), amount)
    with pytest.raises(XreconInputError):
        effect(torch.zeros(32, 32, dtype=torch.int64), np.random.default_rng(0), amount)
    with pytest.raises(XreconInputError):
        effect(radiograph_like(), 0, amount)  # a seed is not a generator


@pytest.mark.parametrize("kwargs", [dict(tone_strength=-0.5), dict(grid_strength=2.0), dict(text_count=-1),
                                    dict(marker_count=-2), dict(marker_count=0.5)])
def test_bad_augmentation_settings_are_refused_on_construction(kwargs):
    with pytest.raises(XreconInputError):
        StyleAugmentation(**kwargs)


def test_augmentation_is_frozen_and_accepts_numpy_counts():
    aug = StyleAugmentation(text_count=np.int64(2), tone_strength=np.float32(0.5))
    assert aug.text_count == 2 and type(aug.text_count) is int and aug.tone_strength == 0.5
    with pytest.raises(AttributeError):
        aug.text_count = 3
