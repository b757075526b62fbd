"""Detector and display effects: each does what it says, all off by default, reproducible."""

import math

import pytest
import torch

from SyntheticDataGenLib.augmentation.detector import (
    DetectorEffects, add_scatter, collimate, collimation_weight, gain_offset, gamma_correct,
    gaussian_blur, intensity_from_line_integral, invert, poisson_noise)
from SyntheticDataGenLib.errors import XreconInputError


def radiograph_like(batch: int = 2, height: int = 48, width: int = 40, seed: int = 0) -> torch.Tensor:
    """A [B, H, W] float32 intensity in (0, 1]: exp of a random smooth-ish line integral."""
    generator = torch.Generator().manual_seed(seed)
    line_integral = 3 * torch.rand(batch, height, width, generator=generator)
    return intensity_from_line_integral(line_integral)


def flat_padded(height: int = 64, width: int = 64, border_px: int = 16) -> torch.Tensor:
    """A flat field of 1 with an attenuating random block in the middle, [H, W]."""
    image = torch.ones(height, width)
    inner = torch.rand(height - 2 * border_px, width - 2 * border_px, generator=torch.Generator().manual_seed(3))
    image[border_px:-border_px, border_px:-border_px] = 0.1 + 0.8 * inner
    return image


def test_intensity_is_beer_lambert():
    line_integral = torch.tensor([0.0, 1.0, 2.5])
    torch.testing.assert_close(intensity_from_line_integral(line_integral),
                               torch.tensor([1.0, math.exp(-1.0), math.exp(-2.5)]))


@pytest.mark.parametrize("shape", [(48, 40), (3, 48, 40), (2, 3, 48, 40)])
def test_defaults_leave_the_image_unchanged_bit_for_bit(shape):
    image = radiograph_like(batch=math.prod(shape[:-2]) if len(shape) > 2 else 1).reshape(shape)
    before = image.clone()
    out = DetectorEffects().apply(image, torch.Generator().manual_seed(0))
    assert out.shape == image.shape and out.dtype == image.dtype
    assert torch.equal(out, before)
    assert torch.equal(image, before)


def test_poisson_noise_variance_is_intensity_over_photons():
    intensity, photons = 0.3, 2000.0
    image = torch.full((256, 256), intensity)
    noisy = poisson_noise(image, photons, torch.Generator().manual_seed(42))
    n = noisy.numel()
    expected_variance = intensity / photons
    # Sample mean within 5 standard errors; sample variance within 5 standard errors (~sqrt(2/n)).
    assert abs(noisy.double().mean().item() - intensity) < 5 * math.sqrt(expected_variance / n)
    assert noisy.double().var().item() == pytest.approx(expected_variance, rel=5 * math.sqrt(2 / n))
    # Counts are whole photons.
    counts = noisy.double() * photons
    torch.testing.assert_close(counts, counts.round(), atol=1e-3, rtol=0)


def test_fewer_photons_give_more_noise():
    image = torch.full((128, 128), 0.5)
    low = poisson_noise(image, 100, torch.Generator().manual_seed(1)).var()
    high = poisson_noise(image, 10000, torch.Generator().manual_seed(1)).var()
    assert low > 50 * high


def test_blur_keeps_the_mean_of_a_flat_padded_image_and_reduces_variance():
    image = flat_padded()
    blurred = gaussian_blur(image, 2.0)
    assert blurred.shape == image.shape
    assert blurred.double().mean().item() == pytest.approx(image.double().mean().item(), rel=1e-5)
    assert blurred.var() < 0.8 * image.var()
    # Inside the random block, the pixel-to-pixel noise is mostly gone.
    assert blurred[24:40, 24:40].var() < 0.2 * image[24:40, 24:40].var()
    # The flat field far from the block stays flat.
    torch.testing.assert_close(blurred[:4, :], torch.ones(4, 64))
    # Wider blur smooths more.
    assert gaussian_blur(image, 4.0).var() < blurred.var()


def test_blur_is_exact_on_a_flat_image_even_with_a_kernel_wider_than_the_image():
    image = torch.full((2, 9, 7), 0.25)
    torch.testing.assert_close(gaussian_blur(image, 50.0), image)


def test_blur_batches_independently():
    images = radiograph_like(batch=3)
    together = gaussian_blur(images, 1.5)
    for index in range(3):
        torch.testing.assert_close(together[index], gaussian_blur(images[index], 1.5))


def test_scatter_keeps_the_open_field_and_lowers_contrast():
    image = flat_padded()
    scattered = add_scatter(image, 0.3, 10.0)
    torch.testing.assert_close(add_scatter(torch.ones(32, 32), 0.3, 10.0), torch.ones(32, 32))
    assert scattered.std() < image.std()
    assert scattered.min() > image.min()
    # Scatter is (1 - f)·I plus f times a low-pass copy.
    torch.testing.assert_close(scattered, 0.7 * image + 0.3 * gaussian_blur(image, 10.0))


def test_gain_offset_gamma_inversion_on_hand_computed_values():
    image = torch.tensor([[0.0, 0.25], [0.5, 1.0]])
    torch.testing.assert_close(gain_offset(image, 2.0, 0.1), torch.tensor([[0.1, 0.6], [1.1, 2.1]]))
    # An image spanning [0, 1] is normalised already: gamma is x**gamma.
    torch.testing.assert_close(gamma_correct(image, 2.0), torch.tensor([[0.0, 0.0625], [0.25, 1.0]]))
    torch.testing.assert_close(gamma_correct(image, 0.5), torch.tensor([[0.0, 0.5], [math.sqrt(0.5), 1.0]]))
    # Another range: normalise to [0, 1], apply gamma, map back.
    shifted = torch.tensor([[1.0, 2.0], [3.0, 1.5]])
    torch.testing.assert_close(gamma_correct(shifted, 2.0), torch.tensor([[1.0, 1.5], [3.0, 1.125]]))
    # Each image of a batch is normalised on its own; a constant image is unchanged.
    batch = torch.stack([image, 2 * image, torch.full((2, 2), 0.7)])
    out = gamma_correct(batch, 2.0)
    torch.testing.assert_close(out[1], 2 * gamma_correct(image, 2.0))
    torch.testing.assert_close(out[2], torch.full((2, 2), 0.7))
    torch.testing.assert_close(invert(image), torch.tensor([[1.0, 0.75], [0.5, 0.0]]))


def test_the_chain_runs_in_order_on_hand_computed_values():
    image = torch.tensor([[0.0, 0.25], [0.5, 1.0]])
    effects = DetectorEffects(gain=2.0, offset=-0.5, gamma=2.0, invert=True)
    # gain/offset: [[-0.5, 0], [0.5, 1.5]]; gamma on [-0.5, 1.5]: normalised [[0, .25], [.5, 1]]
    # -> [[0, .0625], [.25, 1]] -> back: [[-0.5, -0.375], [0, 1.5]]; inverted: [[1.5, 1.375], [1, -0.5]].
    torch.testing.assert_close(effects.apply(image), torch.tensor([[1.5, 1.375], [1.0, -0.5]]))


def test_collimation_zeroes_the_border_and_keeps_the_field():
    image = radiograph_like(batch=2, height=50, width=40)
    fractions = (0.1, 0.2, 0.3, 0.1)  # left, right, top, bottom
    out = collimate(image, fractions, edge_px=3.0)
    # Blades cover columns [0, 4) and [32, 40), rows [0, 15) and [45, 50): exactly zero there.
    assert torch.all(out[:, :, :4] == 0) and torch.all(out[:, :, 32:] == 0)
    assert torch.all(out[:, :15, :] == 0) and torch.all(out[:, 45:, :] == 0)
    # Beyond the 3 px soft edge the field is untouched.
    torch.testing.assert_close(out[:, 18:42, 7:29], image[:, 18:42, 7:29], rtol=0, atol=0)
    # The edge rises monotonically from the blade into the field.
    weight = collimation_weight(50, 40, fractions, 3.0)
    row = weight[30, :8]
    assert torch.all(row[1:] >= row[:-1]) and 0 < row[4] < row[6] < 1
    # A chosen background instead of zero, and a hard edge.
    hard = collimate(image, fractions, edge_px=0.0, background=0.5)
    assert torch.all(hard[:, :, :4] == 0.5)
    torch.testing.assert_close(hard[:, 15:45, 4:32], image[:, 15:45, 4:32], rtol=0, atol=0)


def test_collimation_through_the_chain():
    image = radiograph_like()
    out = DetectorEffects(collimation=(0.25, 0.25, 0.25, 0.25), invert=True).apply(image)
    assert torch.all(out[:, :12, :] == 0) and torch.all(out[:, :, -10:] == 0)
    torch.testing.assert_close(out[:, 20:28, 16:24], 1 - image[:, 20:28, 16:24])


def test_the_same_seed_gives_the_same_image():
    effects = DetectorEffects(scatter_fraction=0.2, scatter_sigma_px=8, blur_sigma_px=1.0,
                              photons_per_pixel=500, gain=1.1, offset=0.01, gamma=0.8, invert=True,
                              collimation=(0.05, 0.05, 0.1, 0.0))
    image = radiograph_like()
    first = effects.apply(image, torch.Generator().manual_seed(7))
    second = effects.apply(image, torch.Generator().manual_seed(7))
    other = effects.apply(image, torch.Generator().manual_seed(8))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert first.shape == image.shape and first.dtype == torch.float32
    assert torch.isfinite(first).all()


@pytest.mark.parametrize("parameters", [
    {"photons_per_pixel": -100},
    {"photons_per_pixel": 0},
    {"blur_sigma_px": -1},
    {"blur_sigma_px": float("nan")},
    {"scatter_sigma_px": -2},
    {"scatter_fraction": -0.1},
    {"scatter_fraction": 1.0},
    {"gamma": 0},
    {"gamma": -1},
    {"gain": 0},
    {"offset": float("inf")},
    {"collimation": (0.5, 0.5, 0.0, 0.0)},
    {"collimation": (0.0, 0.0, 0.6, 0.7)},
    {"collimation": (-0.1, 0.0, 0.0, 0.0)},
    {"collimation": (0.1, 0.1)},
    {"collimation_edge_px": -1},
    {"invert": "yes"},
])
def test_bad_parameters_are_refused(parameters):
    with pytest.raises(XreconInputError) as error:
        DetectorEffects(**parameters)
    assert "\n" not in str(error.value)


def test_bad_parameters_are_refused_by_the_functions_too():
    image = radiograph_like()
    for call in (lambda: poisson_noise(image, -5), lambda: gaussian_blur(image, -1),
                 lambda: gamma_correct(image, 0), lambda: collimate(image, (0.6, 0.4, 0, 0)),
                 lambda: gaussian_blur(image.numpy(), 1.0)):
        with pytest.raises(XreconInputError):
            call()
