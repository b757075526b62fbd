"""Detector and display effects that turn an ideal DRR intensity into a radiograph look-alike.

The input of every function is a radiograph-like intensity image, a floating-point tensor
``[..., H, W]`` (for example ``[H, W]``, ``[C, H, W]`` or ``[B, H, W]``) holding
``exp(-line integral)``, so 1 means "no attenuation" and values lie in (0, 1]. Every effect is
a small pure function that works on CPU and CUDA, on any number of leading (batch) dimensions,
and never modifies its input. :class:`DetectorEffects` bundles them, all off by default, and
applies them in the order the physics dictates:

1. scatter (in the patient, before the photons reach the detector),
2. focal-spot blur (geometric unsharpness of the finite source),
3. Poisson photon noise (quantum noise of the detected photons),
4. detector gain and offset (the read-out electronics),
5. gamma (display look-up table, on the normalised image),
6. inversion (many viewers show radiographs with bone bright),
7. collimation (a rectangular field, with a soft edge, outside of which there is no image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import XreconInputError

# A Gaussian kernel truncated at 4 sigma keeps all but 6e-5 of its weight; renormalising the
# truncated kernel keeps the mean of the image exact.
_KERNEL_HALF_WIDTH_SIGMAS = 4.0


# --- parameter checks ---------------------------------------------------------------------
def _finite(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise XreconInputError(f"detector: {name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise XreconInputError(f"detector: {name} must be finite, got {value}")
    return value


def _non_negative(name: str, value: float) -> float:
    value = _finite(name, value)
    if value < 0:
        raise XreconInputError(f"detector: {name} must be >= 0, got {value}")
    return value


def _positive(name: str, value: float) -> float:
    value = _finite(name, value)
    if value <= 0:
        raise XreconInputError(f"detector: {name} must be > 0, got {value}")
    return value


def _check_fraction(name: str, value: float) -> float:
    value = _finite(name, value)
    if not 0 <= value < 1:
        raise XreconInputError(f"detector: {name} must be in [0, 1), got {value}")
    return value


def _check_collimation(fractions) -> tuple[float, float, float, float]:
    try:
        left, right, top, bottom = (float(f) for f in fractions)
    except (TypeError, ValueError):
        raise XreconInputError(
            "detector: collimation must be four fractions (left, right, top, bottom), "
            f"got {fractions!r}") from None
    for name, value in zip(("left", "right", "top", "bottom"), (left, right, top, bottom)):
        _check_fraction(f"collimation {name}", value)
    if left + right >= 1 or top + bottom >= 1:
        raise XreconInputError(
            "detector: collimation leaves no open field (left + right and top + bottom must be < 1), "
            f"got {(left, right, top, bottom)}")
    return left, right, top, bottom


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or not image.is_floating_point() or image.dim() < 2:
        raise XreconInputError(
            "detector: expected a floating-point tensor [..., height, width], got "
            f"{type(image).__name__} {getattr(image, 'dtype', '')} {tuple(getattr(image, 'shape', ()))}")


# --- the effects --------------------------------------------------------------------------
def intensity_from_line_integral(line_integral: torch.Tensor) -> torch.Tensor:
    """Beer–Lambert: the detected intensity ``exp(-Σ μ·Δl)`` relative to an unattenuated ray.

    Args:
        line_integral: dimensionless line integrals, any shape (>= 0 for physical input).

    Returns:
        Intensity of the same shape, in (0, 1] for non-negative input.
    """
    return torch.exp(-line_integral)


def _gaussian_kernel_1d(sigma_px: float, radius_px: int, like: torch.Tensor) -> torch.Tensor:
    """Normalised Gaussian taps at offsets -radius..radius px, on ``like``'s device and dtype."""
    offsets = torch.arange(-radius_px, radius_px + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    return (kernel / kernel.sum()).to(device=like.device, dtype=like.dtype)


def gaussian_blur(image: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding.

    Args:
        image: ``[..., H, W]`` floating-point tensor.
        sigma_px: standard deviation of the Gaussian in pixels, the same along rows and columns;
            0 returns the image unchanged.

    Returns:
        The blurred image, same shape, dtype and device. The kernel is truncated at 4 sigma and
        at the image size (reflect padding cannot reach further), then renormalised, so a flat
        image stays flat and the mean of an image with flat borders is kept.
    """
    _check_image(image)
    sigma_px = _non_negative("blur sigma_px", sigma_px)
    if sigma_px == 0:
        return image
    height, width = image.shape[-2:]
    flat = image.reshape(-1, 1, height, width)
    for axis, size in ((-1, width), (-2, height)):
        radius_px = min(math.ceil(_KERNEL_HALF_WIDTH_SIGMAS * sigma_px), size - 1)
        if radius_px < 1:
            continue
        kernel = _gaussian_kernel_1d(sigma_px, radius_px, flat)
        if axis == -1:
            flat = F.conv2d(F.pad(flat, (radius_px, radius_px, 0, 0), mode="reflect"),
                            kernel.view(1, 1, 1, -1))
        else:
            flat = F.conv2d(F.pad(flat, (0, 0, radius_px, radius_px), mode="reflect"),
                            kernel.view(1, 1, -1, 1))
    return flat.reshape(image.shape)


def add_scatter(intensity: torch.Tensor, scatter_fraction: float, scatter_sigma_px: float) -> torch.Tensor:
    """Scattered radiation: a broad low-pass copy of the image replaces part of the primary.

    ``(1 - f)·I + f·G_σ * I``. Scatter is modelled as the primary image spread by a wide Gaussian;
    ``f`` is the share of the detected signal that is scatter. Mixing (rather than adding on top)
    keeps the open field at 1, so the photon count of step 3 still means "photons per
    unattenuated pixel"; the visible effect, lost contrast and a haze around dense bone, is the
    same.

    Args:
        intensity: ``[..., H, W]`` intensity in (0, 1].
        scatter_fraction: f in [0, 1); 0 returns the image unchanged.
        scatter_sigma_px: width of the scatter kernel in pixels (> 0), typically tens of pixels.
    """
    _check_image(intensity)
    scatter_fraction = _check_fraction("scatter_fraction", scatter_fraction)
    if scatter_fraction == 0:
        return intensity
    scatter_sigma_px = _positive("scatter_sigma_px", scatter_sigma_px)
    scatter = gaussian_blur(intensity, scatter_sigma_px)
    return (1 - scatter_fraction) * intensity + scatter_fraction * scatter


def poisson_noise(intensity: torch.Tensor, photons_per_pixel: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Quantum noise: ``Poisson(N0·I) / N0`` for N0 photons reaching an unattenuated pixel.

    Args:
        intensity: ``[..., H, W]`` expected intensity (negative values count as 0 photons).
        photons_per_pixel: N0 > 0. The noise variance is I/N0, so fewer photons look noisier.
        generator: random generator on the tensor's device, for reproducible noise; None uses
            torch's global generator.

    Returns:
        Detected intensity, same shape; multiples of 1/N0.
    """
    _check_image(intensity)
    photons_per_pixel = _positive("photons_per_pixel", photons_per_pixel)
    expected_counts = intensity.clamp(min=0) * photons_per_pixel
    return torch.poisson(expected_counts, generator=generator) / photons_per_pixel


def gain_offset(image: torch.Tensor, gain: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    """Detector read-out: ``gain·x + offset`` (gain > 0, both dimensionless)."""
    _check_image(image)
    gain, offset = _positive("gain", gain), _finite("offset", offset)
    return image * gain + offset


def _per_image_range(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum and maximum over the last two dimensions, shaped ``[..., 1, 1]``."""
    flat = image.flatten(-2)
    return flat.amin(-1)[..., None, None], flat.amax(-1)[..., None, None]


def display_window(image: torch.Tensor, low_quantile: float = 0.005, high_quantile: float = 0.995) -> torch.Tensor:
    """A (H, W) image mapped to [0, 1] between two of its quantiles, as a radiograph is shown.

    Training images and the radiographs given to the networks both pass through this, so
    that a network sees the same value range whatever the detector's units.
    """
    sample = image.flatten()[:: max(1, image.numel() // 20000)]
    low, high = torch.quantile(sample, torch.tensor([low_quantile, high_quantile], dtype=sample.dtype,
                                                    device=sample.device))
    return ((image - low) / (high - low).clamp(min=1e-6)).clamp(0.0, 1.0)


def gamma_correct(image: torch.Tensor, gamma: float) -> torch.Tensor:
    """Display gamma applied to the normalised image, mapped back to the image's range.

    Each image (the last two dimensions) is normalised to [0, 1] by its own minimum and maximum,
    raised to ``gamma`` and scaled back: ``lo + (hi - lo)·((x - lo)/(hi - lo))**gamma``. An image
    spanning [0, 1] therefore becomes exactly ``x**gamma``. Working on the normalised image keeps
    the effect defined after any gain and offset; mapping back keeps gamma = 1 the identity.
    A constant image is returned unchanged.

    Args:
        image: ``[..., H, W]`` floating-point tensor.
        gamma: exponent > 0; < 1 brightens the mid-tones, > 1 darkens them.
    """
    _check_image(image)
    gamma = _positive("gamma", gamma)
    if gamma == 1:
        return image
    lo, hi = _per_image_range(image)
    span = hi - lo
    # A constant image has no range to normalise; dividing by 1 there keeps it unchanged.
    normalised = ((image - lo) / torch.where(span > 0, span, torch.ones_like(span))).clamp(0, 1)
    return lo + span * normalised ** gamma


def invert(image: torch.Tensor) -> torch.Tensor:
    """``1 - x``: dense structures (bone) bright, as radiographs are usually displayed."""
    _check_image(image)
    return 1 - image


def collimation_weight(height: int, width: int, fractions, edge_px: float = 3.0,
                       device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Opening of a rectangular collimator, 1 in the field and 0 outside, as a ``[H, W]`` map.

    Args:
        height, width: image size in pixels.
        fractions: (left, right, top, bottom) share of the image width (left, right) or height
            (top, bottom) that the collimator blades cover, each in [0, 1); a side with 0 is open.
        edge_px: width of the soft edge (penumbra) in pixels, >= 0. It lies inside the field, so
            every pixel whose centre is covered by a blade is exactly 0.
    """
    left, right, top, bottom = _check_collimation(fractions)
    edge_px = _non_negative("collimation edge_px", edge_px)

    def ramp(distance_px: torch.Tensor) -> torch.Tensor:
        """Weight at a signed distance (px) inside a blade's edge: 0 outside, smooth rise to 1."""
        if edge_px == 0:
            return (distance_px > 0).to(torch.float64)
        t = (distance_px / edge_px).clamp(0, 1)
        return t * t * (3 - 2 * t)  # smoothstep: no kink where the penumbra meets the field

    # Pixel centres in units of pixel edges: the image spans [0, width] x [0, height].
    u = torch.arange(width, dtype=torch.float64) + 0.5
    v = torch.arange(height, dtype=torch.float64) + 0.5
    weight_u = torch.ones(width, dtype=torch.float64)
    weight_v = torch.ones(height, dtype=torch.float64)
    if left > 0:
        weight_u = weight_u * ramp(u - left * width)
    if right > 0:
        weight_u = weight_u * ramp((1 - right) * width - u)
    if top > 0:
        weight_v = weight_v * ramp(v - top * height)
    if bottom > 0:
        weight_v = weight_v * ramp((1 - bottom) * height - v)
    return (weight_v[:, None] * weight_u[None, :]).to(device=device, dtype=dtype)


def collimate(image: torch.Tensor, fractions, edge_px: float = 3.0, background: float = 0.0) -> torch.Tensor:
    """Blank the image outside a rectangular field: ``w·x + (1 - w)·background``.

    Args:
        image: ``[..., H, W]`` floating-point tensor.
        fractions: (left, right, top, bottom) covered share of each side, see
            :func:`collimation_weight`; all 0 returns the image unchanged.
        edge_px: soft-edge width in pixels.
        background: value outside the field (0: black, as digital shutters show it).
    """
    _check_image(image)
    fractions = _check_collimation(fractions)
    background = _finite("collimation background", background)
    if not any(fractions):
        return image
    weight = collimation_weight(*image.shape[-2:], fractions, edge_px, image.device, image.dtype)
    # This form is exact at both ends: x where w = 1, the background where w = 0.
    return weight * image + (1 - weight) * background


# --- the chain ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectorEffects:
    """Which detector and display effects to apply, and how strongly; every field defaults to off.

    Attributes:
        scatter_fraction: share of the signal that is scatter, [0, 1); 0 = off.
        scatter_sigma_px: width of the scatter kernel (px, > 0).
        blur_sigma_px: focal-spot blur (px, >= 0); 0 = off.
        photons_per_pixel: photons reaching an unattenuated pixel (> 0); None = no noise.
        gain: detector gain (> 0); 1 = off.
        offset: detector offset (dimensionless); 0 = off.
        gamma: display gamma on the normalised image (> 0); 1 = off.
        invert: show ``1 - x`` (bone bright); False = off.
        collimation: (left, right, top, bottom) fractions covered by the collimator, each in
            [0, 1) with left + right < 1 and top + bottom < 1; all 0 = off.
        collimation_edge_px: soft-edge width of the collimated field (px, >= 0).
        collimation_background: value outside the collimated field.

    Invalid values raise :class:`XreconInputError` on construction.
    """

    scatter_fraction: float = 0.0
    scatter_sigma_px: float = 25.0
    blur_sigma_px: float = 0.0
    photons_per_pixel: float | None = None
    gain: float = 1.0
    offset: float = 0.0
    gamma: float = 1.0
    invert: bool = False
    collimation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    collimation_edge_px: float = 3.0
    collimation_background: float = 0.0

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("scatter_fraction", _check_fraction("scatter_fraction", self.scatter_fraction))
        set_("scatter_sigma_px", _positive("scatter_sigma_px", self.scatter_sigma_px))
        set_("blur_sigma_px", _non_negative("blur_sigma_px", self.blur_sigma_px))
        if self.photons_per_pixel is not None:
            set_("photons_per_pixel", _positive("photons_per_pixel", self.photons_per_pixel))
        set_("gain", _positive("gain", self.gain))
        set_("offset", _finite("offset", self.offset))
        set_("gamma", _positive("gamma", self.gamma))
        if self.invert not in (True, False):
            raise XreconInputError(f"detector: invert must be true or false, got {self.invert!r}")
        set_("invert", bool(self.invert))
        set_("collimation", _check_collimation(self.collimation))
        set_("collimation_edge_px", _non_negative("collimation_edge_px", self.collimation_edge_px))
        set_("collimation_background", _finite("collimation_background", self.collimation_background))

    def apply(self, intensity: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run the enabled effects in physical order (see the module docstring).

        Args:
            intensity: ``[..., H, W]`` intensity ``exp(-line integral)`` in (0, 1], float32.
            generator: random generator for the photon noise, on the tensor's device; the same
                seed gives the same image. None uses torch's global generator.

        Returns:
            A new tensor of the same shape, dtype and device; with every effect off, the input
            itself, untouched.
        """
        _check_image(intensity)
        image = intensity
        if self.scatter_fraction > 0:
            image = add_scatter(image, self.scatter_fraction, self.scatter_sigma_px)
        if self.blur_sigma_px > 0:
            image = gaussian_blur(image, self.blur_sigma_px)
        if self.photons_per_pixel is not None:
            image = poisson_noise(image, self.photons_per_pixel, generator)
        if self.gain != 1 or self.offset != 0:
            image = gain_offset(image, self.gain, self.offset)
        if self.gamma != 1:
            image = gamma_correct(image, self.gamma)
        if self.invert:
            image = invert(image)
        if any(self.collimation):
            image = collimate(image, self.collimation, self.collimation_edge_px, self.collimation_background)
        return image
