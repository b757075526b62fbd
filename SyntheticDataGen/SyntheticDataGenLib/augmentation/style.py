"""Randomised X-ray *style*: display processing, burned-in annotations and foreign objects.

Networks trained on DRRs must work on real radiographs, which differ from a DRR in far more
than physics: every vendor applies its own look-up table and multi-scale contrast processing,
every department burns in text and side markers, and patients carry electrodes, wires, tubes
and clips. Randomising that style during training (domain randomisation) narrows the
sim-to-real gap. This module does it, after :mod:`.detector` has made the physics.

Every function takes one displayed radiograph, a floating-point tensor ``[H, W]`` (float32 in
practice) with values in [0, 1] and **bone bright** (the caller inverts and normalises
``exp(-line integral)`` first), and a :class:`numpy.random.Generator` that supplies *all* the
randomness, so the same seed reproduces the result byte for byte. Each returns a new tensor of
the same shape, dtype and device with values in [0, 1] and never modifies its input; a strength
or count of 0 returns an exact copy without drawing from the generator.

- :func:`random_tone_curve`: a random smooth monotone look-up table (knots, window/level
  sigmoid, log/exp, power, with input clipping and output black/white levels).
- :func:`random_local_contrast`: vendor-like multi-scale processing, a cheap CLAHE stand-in:
  large-scale dynamic-range compression plus small-scale edge enhancement (unsharp masking).
- :func:`random_histogram_style`: both of the above, in the order a vendor applies them.
- :func:`burn_in_text`: patient/date/exposure text blocks, L/R side markers, rulers, boxed
  labels, redaction bars and vertical text, drawn with Pillow; returns the changed-pixel mask.
- :func:`add_markers`: ECG electrodes, wires, tubes and surgical clips (radio-opaque, so they
  brighten the image); returns the changed-pixel mask.
- :func:`random_grid_lines`: anti-scatter grid line artefacts (faint periodic lines, moiré).
- :class:`StyleAugmentation`: all of them, off by default.

Outside the returned masks, :func:`burn_in_text` and :func:`add_markers` leave every pixel
bit-for-bit unchanged. Lengths are scaled by the image size ``S = min(H, W)``, so an annotation
covers the same share of a 256 px and of a 1024 px image.
"""

from __future__ import annotations

import functools
import math
import numbers
import string
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .detector import gaussian_blur
from ..errors import XreconInputError

# Look-up tables are sampled at this many points on [0, 1] and linearly interpolated.
_LUT_SIZE = 1025
# Foreign objects are drawn at up to this many times the image resolution (and at most
# _MARKER_CANVAS_MAX_PX wide) and box-filtered down, so their edges are anti-aliased like a
# physical object's; burned-in text is drawn at the image's own resolution (digital overlays are
# crisp; Pillow anti-aliases the glyphs).
_MARKER_SUPERSAMPLING = 4
_MARKER_CANVAS_MAX_PX = 2048
# Large Gaussians (local contrast) run on an image shrunk so the blur is about this many pixels.
_LOW_PASS_SIGMA_ON_SHRUNK_PX = 3.0


# --- parameter checks ---------------------------------------------------------------------
def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or not image.is_floating_point() or image.dim() != 2:
        raise XreconInputError(
            "style: expected a floating-point tensor [height, width], got "
            f"{type(image).__name__} {getattr(image, 'dtype', '')} {tuple(getattr(image, 'shape', ()))}")
    if min(image.shape) < 2:
        raise XreconInputError(f"style: image must be at least 2x2 pixels, got {tuple(image.shape)}")


def _check_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise XreconInputError(
            f"style: rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")


def _check_strength(name: str, value: float) -> float:
    if isinstance(value, bool):
        raise XreconInputError(f"style: {name} must be a number in [0, 1], got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise XreconInputError(f"style: {name} must be a number in [0, 1], got {value!r}") from None
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise XreconInputError(f"style: {name} must be in [0, 1], got {value}")
    return value


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise XreconInputError(f"style: {name} must be a whole number >= 0, got {value!r}")
    if value < 0:
        raise XreconInputError(f"style: {name} must be >= 0, got {value}")
    return int(value)


# --- histogram style ----------------------------------------------------------------------
def _pchip(x_knots: np.ndarray, y_knots: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Monotone cubic (Fritsch–Carlson/Butland) interpolation through increasing knots."""
    h = np.diff(x_knots)
    slope = np.diff(y_knots) / h
    d = np.empty_like(y_knots)
    d[0], d[-1] = slope[0], slope[-1]
    if len(slope) > 1:
        w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
        left, right = slope[:-1], slope[1:]
        same_sign = left * right > 0
        safe_left, safe_right = np.where(same_sign, left, 1.0), np.where(same_sign, right, 1.0)
        d[1:-1] = np.where(same_sign, (w1 + w2) / (w1 / safe_left + w2 / safe_right), 0.0)
    i = np.clip(np.searchsorted(x_knots, x, side="right") - 1, 0, len(h) - 1)
    t = (x - x_knots[i]) / h[i]
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y_knots[i] + (t3 - 2 * t2 + t) * h[i] * d[i]
            + (-2 * t3 + 3 * t2) * y_knots[i + 1] + (t3 - t2) * h[i] * d[i + 1])


def _random_curve(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """One random non-decreasing map of [0, 1] onto [0, 1], sampled at ``x`` (float64)."""
    kind = rng.choice(4, p=(0.35, 0.3, 0.15, 0.2))
    # Input window: what lies below in_lo or above in_hi saturates (burnt-out soft tissue).
    in_lo, in_hi = rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0)
    # Output levels: the display's black and white points.
    out_lo, out_hi = rng.uniform(0.0, 0.08), rng.uniform(0.92, 1.0)
    t = np.clip((x - in_lo) / (in_hi - in_lo), 0.0, 1.0)
    if kind == 0:  # smooth monotone curve through random knots
        n = int(rng.integers(3, 8))
        mix = rng.uniform(0.3, 1.0)
        dx = (1 - mix) / n + mix * rng.dirichlet(np.full(n, 2.0))
        dy = (1 - mix) / n + mix * rng.dirichlet(np.full(n, 2.0))
        x_knots = np.concatenate([[0.0], np.cumsum(dx)])
        y_knots = np.concatenate([[0.0], np.cumsum(dy)])
        x_knots[-1] = y_knots[-1] = 1.0
        shape = _pchip(x_knots, y_knots, t)
    elif kind == 1:  # sigmoid window/level
        level, width = rng.uniform(0.3, 0.7), rng.uniform(0.08, 0.35)
        sig = lambda v: 1 / (1 + np.exp(-(v - level) / width))  # noqa: E731
        shape = (sig(t) - sig(0.0)) / (sig(1.0) - sig(0.0))
    elif kind == 2:  # log (lifts the darks) or exp (deepens them)
        a = math.exp(rng.uniform(math.log(2.0), math.log(30.0)))
        if rng.random() < 0.5:
            shape = np.log1p(a * t) / math.log1p(a)
        else:
            shape = 1 - np.log1p(a * (1 - t)) / math.log1p(a)
    else:  # power (display gamma)
        shape = t ** math.exp(rng.uniform(math.log(1 / 2.2), math.log(2.2)))
    curve = out_lo + (out_hi - out_lo) * np.clip(shape, 0.0, 1.0)
    return np.maximum.accumulate(curve)  # guard against round-off; the shapes are monotone already


def _apply_lut(image: torch.Tensor, lut: np.ndarray) -> torch.Tensor:
    """Piecewise-linear look-up table on [0, 1], evaluated in float64 so round-off cannot break monotonicity."""
    table = torch.from_numpy(lut).to(image.device)
    position = image.to(torch.float64).clamp(0, 1) * (len(lut) - 1)
    index = position.floor().long().clamp(max=len(lut) - 2)
    fraction = position - index
    low, high = table[index], table[index + 1]
    return (low + fraction * (high - low)).clamp(0, 1).to(image.dtype)


def random_tone_curve(image: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """A random smooth monotone look-up table, as each vendor's display processing has its own.

    The curve is one of: a monotone cubic through random sorted knots, a sigmoid window/level,
    a log or exp curve, or a power (gamma) curve; its input is windowed (values beyond a random
    window saturate) and its output spans random black and white levels. The result is
    ``x + strength·(curve(x) - x)``: non-decreasing in ``x`` for any strength, so the order of
    grey values is kept (bright stays brighter).

    Args:
        image: ``[H, W]`` displayed radiograph in [0, 1], bone bright.
        rng: source of all randomness.
        strength: in [0, 1]; 0 returns an exact copy, 1 applies the random curve fully.

    Returns:
        The restyled image, same shape, dtype and device, in [0, 1].
    """
    _check_image(image)
    _check_rng(rng)
    strength = _check_strength("tone strength", strength)
    if strength == 0:
        return image.clone()
    x = np.linspace(0.0, 1.0, _LUT_SIZE)
    curve = _random_curve(rng, x)
    return _apply_lut(image, x + strength * (curve - x))


def _low_pass(image: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """A wide Gaussian blur, computed on a shrunken copy (area average) and enlarged bilinearly."""
    height, width = image.shape
    factor = max(1.0, sigma_px / _LOW_PASS_SIGMA_ON_SHRUNK_PX)
    small_size = (max(2, round(height / factor)), max(2, round(width / factor)))
    flat = image[None, None]
    small = F.interpolate(flat, size=small_size, mode="area") if factor > 1 else flat
    small = gaussian_blur(small, sigma_px * small_size[0] / height)
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)[0, 0]


def random_local_contrast(image: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """Vendor-like multi-scale processing (a cheap stand-in for CLAHE / MUSICA-style equalisation).

    ``y = x - c·(L - mean) + b·(x - s)``, where ``L`` is a wide Gaussian low-pass of the image
    (sigma 4–15 % of the image size) and ``s`` a narrow one (0.4–1.2 %): ``c`` compresses the
    large-scale dynamic range (the lungs and the mediastinum come closer), ``b`` enhances edges
    and fine detail (unsharp masking, with the typical halo around dense bone and metal). Where
    ``y`` leaves [0, 1], the whole image is mapped linearly back into it
    (``(y - min(0, y.min())) / (max(1, y.max()) - min(0, y.min()))``), so nothing is clipped and
    a small strength changes the image only a little.

    Args:
        image: ``[H, W]`` displayed radiograph in [0, 1], bone bright.
        rng: source of all randomness.
        strength: in [0, 1]; 0 returns an exact copy. ``c`` is drawn from strength·[0.1, 0.7]
            and ``b`` from strength·[0.2, 1.5].

    Returns:
        The processed image, same shape, dtype and device, in [0, 1].
    """
    _check_image(image)
    _check_rng(rng)
    strength = _check_strength("local contrast strength", strength)
    if strength == 0:
        return image.clone()
    size = min(image.shape)
    wide_sigma = size * rng.uniform(0.04, 0.15)
    narrow_sigma = max(0.5, size * rng.uniform(0.004, 0.012))
    compression = strength * rng.uniform(0.1, 0.7)
    boost = strength * rng.uniform(0.2, 1.5)
    work = image.to(torch.float32) if image.dtype != torch.float64 else image
    large = _low_pass(work, wide_sigma)
    small = gaussian_blur(work, narrow_sigma)
    out = work - compression * (large - work.mean()) + boost * (work - small)
    lo = torch.clamp(out.min(), max=0.0)
    hi = torch.clamp(out.max(), min=1.0)
    return ((out - lo) / (hi - lo)).clamp(0, 1).to(image.dtype)


def random_histogram_style(image: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """A random vendor "look": local contrast processing (on 3 images in 4), then a tone curve.

    This is the order of a vendor's pipeline: multi-scale equalisation on the raw image, then the
    display look-up table. See :func:`random_local_contrast` and :func:`random_tone_curve`.

    Args:
        image: ``[H, W]`` displayed radiograph in [0, 1], bone bright.
        rng: source of all randomness.
        strength: in [0, 1]; 0 returns an exact copy; scales both steps.

    Returns:
        The restyled image, same shape, dtype and device, in [0, 1].
    """
    _check_image(image)
    _check_rng(rng)
    strength = _check_strength("histogram style strength", strength)
    if strength == 0:
        return image.clone()
    out = image
    if rng.random() < 0.75:
        out = random_local_contrast(out, rng, strength)
    return random_tone_curve(out, rng, strength)


# --- random strings for burned-in text ----------------------------------------------------
_WORDS = ("PORTABLE", "SUPINE", "ERECT", "SEMI-ERECT", "UPRIGHT", "AP", "PA", "LAT", "CHEST",
          "PELVIS", "ABDOMEN", "HIP", "SPINE", "KNEE", "INSP", "EXP", "MOBILE", "ICU", "ER",
          "TRAUMA", "BEDSIDE", "DECUBITUS", "STANDING", "AP SUPINE", "PA ERECT", "WEIGHT BEARING",
          "POST OP", "PRE OP", "CR", "DR", "DX", "SITTING", "CROSS TABLE", "STITCHED")
_UPPER = np.array(list(string.ascii_uppercase))
_DIGITS = np.array(list(string.digits))


def _letters(rng: np.random.Generator, low: int, high: int) -> str:
    return "".join(rng.choice(_UPPER, size=int(rng.integers(low, high + 1))))


def _digits(rng: np.random.Generator, low: int, high: int) -> str:
    return "".join(rng.choice(_DIGITS, size=int(rng.integers(low, high + 1))))


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _random_date(rng: np.random.Generator) -> str:
    year, month, day = int(rng.integers(1995, 2031)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    style = rng.integers(4)
    if style == 0:
        return f"{year}-{month:02d}-{day:02d}"
    if style == 1:
        return f"{day:02d}.{month:02d}.{year}"
    if style == 2:
        return f"{month:02d}/{day:02d}/{year}"
    return f"{day:02d}-{_MONTHS[month - 1]}-{year}"


_LINE_KINDS = 9


def _random_line(rng: np.random.Generator, kind: int | None = None) -> str:
    """One line of a typical corner block: name, ID, date/time, exposure, window, site (kind 0–8)."""
    if kind is None:
        kind = int(rng.integers(_LINE_KINDS))
    if kind == 0:
        return f"{_letters(rng, 3, 10)}^{_letters(rng, 3, 8)}"
    if kind == 1:
        return f"{rng.choice(['ID', 'MRN', 'PID', 'Acc#', ''])} {_digits(rng, 6, 10)}".strip()
    if kind == 2:
        return f"{_random_date(rng)} {int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
    if kind == 3:
        return f"{int(rng.integers(50, 126))} kV  {rng.uniform(0.5, 40):.1f} mAs"
    if kind == 4:
        window, level = int(rng.integers(200, 4096)), int(rng.integers(0, 4096))
        return f"{rng.choice(['W', 'WW'])}: {window} {rng.choice(['L', 'WL', 'C'])}: {level}"
    if kind == 5:
        index, deviation = int(rng.integers(50, 2000)), rng.uniform(-3, 3)  # exposure index, deviation
        return f"{rng.choice(['EI', 'S', 'DI', 'LgM'])} {rng.choice([str(index), f'{deviation:+.1f}'])}"
    if kind == 6:
        return f"{rng.choice(['DOB', 'Born', ''])} {_random_date(rng)} {rng.choice(['M', 'F', 'O'])}".strip()
    if kind == 7:
        return f"{_letters(rng, 2, 4)} {rng.choice(['HOSPITAL', 'MED CTR', 'RADIOLOGY', 'CLINIC', 'IMAGING'])}"
    return str(rng.choice(_WORDS))


@functools.lru_cache(maxsize=64)
def _font(size_px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font (no files needed), scalable where Pillow has FreeType (>= 10.1)."""
    try:
        return ImageFont.load_default(size=size_px)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


# --- drawing helpers ----------------------------------------------------------------------
def _new_layer(height: int, width: int, scale: int = 1) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    layer = Image.new("L", (width * scale, height * scale), 0)
    return layer, ImageDraw.Draw(layer)


def _coverage(layer: Image.Image, scale: int = 1) -> np.ndarray:
    """The layer as float32 coverage in [0, 1], box-filtered down by ``scale``."""
    if scale > 1:
        layer = layer.reduce(scale)
    return np.asarray(layer, dtype=np.float32) / np.float32(255)


def _bright_or_dark(rng: np.random.Generator, p_bright: float = 0.75) -> float:
    return float(rng.uniform(0.85, 1.0) if rng.random() < p_bright else rng.uniform(0.0, 0.12))


class _Canvas:
    """The image size, and how far each corner is filled, so corner annotations stack, not overlap."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width, self.size = height, width, min(height, width)
        self.filled = [0.0] * 4  # px used from the top (corners 0 TL, 1 TR) or bottom (2 BL, 3 BR)
        self.margin = [0.0] * 4  # px from the left or right edge

    def corner_xy(self, rng: np.random.Generator, box_w: float, box_h: float) -> tuple[float, float, int]:
        """Top-left position for a ``box_w × box_h`` px box in the emptiest corner (ties: random),
        and that corner (0 top left, 1 top right, 2 bottom left, 3 bottom right)."""
        emptiest = min(self.filled)
        corner = int(rng.choice([c for c in range(4) if self.filled[c] == emptiest]))
        if self.filled[corner] == 0:
            self.filled[corner] = self.size * rng.uniform(0.01, 0.05)
            self.margin[corner] = self.size * rng.uniform(0.01, 0.05)
        offset, margin = self.filled[corner], self.margin[corner]
        x = margin if corner in (0, 2) else self.width - margin - box_w
        y = offset if corner in (0, 1) else self.height - offset - box_h
        self.filled[corner] = offset + box_h + max(2.0, 0.015 * self.size)
        return max(0.0, x), max(0.0, y), corner


def _near_border_xy(rng: np.random.Generator, box_w: float, box_h: float,
                    height: int, width: int, size: int) -> tuple[float, float]:
    """Top-left position of a box somewhere in the outer band (20 % of the size) of the image."""
    band = 0.2 * size
    side = rng.integers(4)
    if side in (0, 1):  # top or bottom band, anywhere along it
        x = rng.uniform(0, max(1.0, width - box_w))
        inset = rng.uniform(0, max(1.0, band - box_h))
        y = inset if side == 0 else height - box_h - inset
    else:  # left or right band
        y = rng.uniform(0, max(1.0, height - box_h))
        inset = rng.uniform(0, max(1.0, band - box_w))
        x = inset if side == 2 else width - box_w - inset
    return max(0.0, float(x)), max(0.0, float(y))


def _text_block(rng: np.random.Generator, canvas: _Canvas) -> list[tuple[np.ndarray, float]]:
    height, width, size = canvas.height, canvas.width, canvas.size
    """A corner block of 1–4 lines (name, ID, date, exposure …), optionally with a drop shadow."""
    font = _font(max(7, round(size * rng.uniform(0.03, 0.05))))
    kinds = rng.choice(_LINE_KINDS, size=int(rng.integers(1, 5)), replace=False)  # no two alike
    text = "\n".join(_random_line(rng, int(kind)) for kind in kinds)
    spacing = max(1, round(font.size * 0.25)) if hasattr(font, "size") else 2
    layer, draw = _new_layer(height, width)
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=spacing)
    x, y, corner = canvas.corner_xy(rng, right - left, bottom - top)
    align = "left" if corner in (0, 2) else "right"
    xy = (x - left, y - top)
    value = _bright_or_dark(rng)
    layers = []
    if rng.random() < 0.3:  # a 1 px drop shadow of the opposite tone, as many viewers draw
        shadow, shadow_draw = _new_layer(height, width)
        shadow_draw.multiline_text((xy[0] + 1, xy[1] + 1), text, fill=255, font=font, spacing=spacing, align=align)
        layers.append((_coverage(shadow), 1.0 - value))
    draw.multiline_text(xy, text, fill=255, font=font, spacing=spacing, align=align)
    layers.append((_coverage(layer), value))
    return layers


def _side_marker(rng: np.random.Generator, canvas: _Canvas) -> list[tuple[np.ndarray, float]]:
    height, width, size = canvas.height, canvas.width, canvas.size
    """An "L"/"R" side marker: a big (often bold) letter, sometimes boxed or with initials."""
    letter = str(rng.choice(["L", "R", "LT", "RT", "L", "R"]))
    font = _font(max(9, round(size * rng.uniform(0.05, 0.1))))
    stroke = int(rng.integers(0, font.size // 14 + 1)) if hasattr(font, "size") else 0  # bold, if big enough
    layer, draw = _new_layer(height, width)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font, stroke_width=stroke)
    box_w, box_h = right - left, bottom - top
    frame = int(rng.integers(3))  # 0: bare letter, 1: rectangle around it, 2: filled plate behind it
    pad = max(2, round(0.2 * box_h))
    outer_w, outer_h = box_w + 2 * pad * (frame > 0), box_h + 2 * pad * (frame > 0)
    if rng.random() < 0.7:
        x, y, _ = canvas.corner_xy(rng, outer_w, outer_h)
        x, y = x + size * rng.uniform(0, 0.15) * (1 if x < width / 2 else -1), y
    else:
        x, y = _near_border_xy(rng, outer_w, outer_h, height, width, size)
    value = _bright_or_dark(rng, p_bright=0.85)
    layers = []
    if frame == 2:
        plate, plate_draw = _new_layer(height, width)
        plate_draw.rectangle((x, y, x + outer_w, y + outer_h), fill=255)
        layers.append((_coverage(plate), 1.0 - value))
    if frame == 1:
        draw.rectangle((x, y, x + outer_w, y + outer_h), outline=255, width=max(1, round(size * 0.006)))
    inset = pad if frame else 0
    draw.text((x + inset - left, y + inset - top), letter, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    layers.append((_coverage(layer), value))
    return layers


def _ruler(rng: np.random.Generator, canvas: _Canvas) -> list[tuple[np.ndarray, float]]:
    height, width, size = canvas.height, canvas.width, canvas.size
    """A ruler along a border: a base line with minor, mid and major ticks, sometimes numbered."""
    horizontal = rng.random() < 0.5
    length = size * rng.uniform(0.2, 0.45)
    spacing = max(2.0, size * rng.uniform(0.012, 0.03))
    tick = max(2.0, size * rng.uniform(0.012, 0.025))
    major_every = int(rng.choice([5, 10]))
    numbered = rng.random() < 0.5
    font = _font(max(7, round(size * rng.uniform(0.025, 0.035))))
    margin = size * rng.uniform(0.015, 0.06)
    along_extent = width if horizontal else height
    start = rng.uniform(margin, max(margin + 1, along_extent - length - margin))
    at_far_side = rng.random() < 0.5
    across = (height if horizontal else width) - margin if at_far_side else margin
    direction = -1.0 if at_far_side else 1.0  # ticks point into the image
    layer, draw = _new_layer(height, width)

    def point(a, c):
        return (a, c) if horizontal else (c, a)

    draw.line([point(start, across), point(start + length, across)], fill=255, width=1)
    for i in range(int(length // spacing) + 1):
        a = start + i * spacing
        scale = 2.2 if i % major_every == 0 else (1.6 if major_every == 10 and i % 5 == 0 else 1.0)
        draw.line([point(a, across), point(a, across + direction * tick * scale)], fill=255, width=1)
        if numbered and i % major_every == 0:
            label = str(i // major_every * (major_every // 5 if major_every == 10 else 1))
            lx, ly = point(a, across + direction * (tick * 2.2 + 1))
            anchor = ("mt" if direction > 0 else "md") if horizontal else ("lm" if direction > 0 else "rm")
            draw.text((lx, ly), label, fill=255, font=font, anchor=anchor)
    return [(_coverage(layer), _bright_or_dark(rng, p_bright=0.8))]


def _label(rng: np.random.Generator, canvas: _Canvas) -> list[tuple[np.ndarray, float]]:
    height, width, size = canvas.height, canvas.width, canvas.size
    """A boxed word ("PORTABLE", "AP SUPINE" …): an outlined box, or text on a filled plate."""
    text = str(rng.choice(_WORDS))
    font = _font(max(7, round(size * rng.uniform(0.035, 0.06))))
    layer, draw = _new_layer(height, width)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, round(0.3 * (bottom - top)))
    outer_w, outer_h = right - left + 2 * pad, bottom - top + 2 * pad
    if rng.random() < 0.6:
        x, y, _ = canvas.corner_xy(rng, outer_w, outer_h)
    else:
        x, y = _near_border_xy(rng, outer_w, outer_h, height, width, size)
    value = _bright_or_dark(rng)
    layers = []
    if rng.random() < 0.5:
        draw.rectangle((x, y, x + outer_w, y + outer_h), outline=255, width=1)
    else:
        plate, plate_draw = _new_layer(height, width)
        plate_draw.rectangle((x, y, x + outer_w, y + outer_h), fill=255)
        layers.append((_coverage(plate), 1.0 - value))
    draw.text((x + pad - left, y + pad - top), text, fill=255, font=font)
    layers.append((_coverage(layer), value))
    return layers


def _redaction(rng: np.random.Generator, canvas: _Canvas) -> list[tuple[np.ndarray, float]]:
    height, width, size = canvas.height, canvas.width, canvas.size
    """A filled bar over a corner, as left by de-identification (usually black)."""
    bar_w, bar_h = size * rng.uniform(0.15, 0.4), size * rng.uniform(0.03, 0.08)
    if rng.random() < 0.6:
        x, y, _ = canvas.corner_xy(rng, bar_w, bar_h)
    else:
        x, y = _near_border_xy(rng, bar_w, bar_h, height, width, size)
    layer, draw = _new_layer(height, width)
    draw.rectangle((x, y, x + bar_w, y + bar_h), fill=255)
    value = float(rng.uniform(0.0, 0.05)) if rng.random() < 0.8 else float(rng.uniform(0.9, 1.0))
    return [(_coverage(layer), value)]


def _vertical_text(rng: np.random.Generator, canvas: _Canvas) -> list[tuple[np.ndarray, float]]:
    height, width, size = canvas.height, canvas.width, canvas.size
    """A line of text running up or down along the left or right border."""
    text = _random_line(rng)
    font = _font(max(7, round(size * rng.uniform(0.03, 0.05))))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    patch = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(patch).text((1 - left, 1 - top), text, fill=255, font=font)
    patch = patch.rotate(90 if rng.random() < 0.5 else 270, expand=True)
    margin = round(size * rng.uniform(0.01, 0.05))
    x = margin if rng.random() < 0.5 else width - margin - patch.width
    y = round(rng.uniform(0, max(1, height - patch.height)))
    layer = Image.new("L", (width, height), 0)
    layer.paste(patch, (max(0, x), max(0, y)))
    return [(_coverage(layer), _bright_or_dark(rng))]


_ANNOTATIONS = (_text_block, _side_marker, _ruler, _label, _redaction, _vertical_text)
_ANNOTATION_WEIGHTS = (0.34, 0.26, 0.12, 0.13, 0.07, 0.08)


def _composite(image: torch.Tensor, layers: list[tuple[np.ndarray, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint layers (coverage, value) over the image in order; untouched pixels keep their bits."""
    out = image.detach().to("cpu", torch.float32).numpy().copy()
    changed = np.zeros(out.shape, dtype=bool)
    for coverage, value in layers:
        hit = coverage > 0
        out[hit] += coverage[hit] * (np.float32(value) - out[hit])
        changed |= hit
    out = np.clip(out, 0.0, 1.0)
    mask = torch.from_numpy(changed).to(image.device)
    painted = torch.from_numpy(out).to(device=image.device, dtype=image.dtype)
    return torch.where(mask, painted, image), mask


def burn_in_text(image: torch.Tensor, rng: np.random.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Burned-in annotations, as real radiographs carry them, drawn with Pillow's built-in font.

    Each of the ``count`` annotations is one of: a corner block of 1–4 lines (patient-name-like
    ``NAME^NAME``, ID, date and time, kV/mAs, window/level, exposure index, site; sometimes with
    a drop shadow), an "L"/"R" side marker (big, often bold, bare, boxed or on a plate), a ruler
    with ticks (sometimes numbered) along a border, a boxed label ("PORTABLE", "AP SUPINE" …), a
    de-identification bar, or a line of text running along a side border. Positions are mostly
    in the corners and near the borders; intensities are near white (0.85–1) or near black
    (0–0.12). Font sizes scale with the image (about 3–10 % of ``min(H, W)``).

    Args:
        image: ``[H, W]`` displayed radiograph in [0, 1], bone bright.
        rng: source of all randomness.
        count: number of annotations, >= 0; 0 returns an exact copy and an all-False mask.

    Returns:
        ``(image, mask)``: the annotated image (same shape, dtype and device, in [0, 1]) and a
        boolean ``[H, W]`` mask of the pixels the annotations touch (anti-aliased edges
        included); every pixel outside the mask is bit-for-bit unchanged.
    """
    _check_image(image)
    _check_rng(rng)
    count = _check_count("text count", count)
    if count == 0:
        return image.clone(), torch.zeros(image.shape, dtype=torch.bool, device=image.device)
    canvas = _Canvas(*image.shape)
    layers = []
    for _ in range(count):
        draw_annotation = _ANNOTATIONS[rng.choice(len(_ANNOTATIONS), p=_ANNOTATION_WEIGHTS)]
        layers.extend(draw_annotation(rng, canvas))
    return _composite(image, layers)


# --- foreign objects ----------------------------------------------------------------------
def _bezier(rng: np.random.Generator, start: np.ndarray, end: np.ndarray, bend: float,
            n: int = 32) -> list[tuple[float, float]]:
    """Points of a cubic Bézier from start to end whose control points leave the chord by ``bend``·length."""
    chord = end - start
    normal = np.array([-chord[1], chord[0]])
    c1 = start + chord / 3 + normal * bend * rng.uniform(-1, 1)
    c2 = start + 2 * chord / 3 + normal * bend * rng.uniform(-1, 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t ** 2 * c2 + t ** 3 * end
    return [tuple(p) for p in pts]


def _border_point(rng: np.random.Generator, height: float, width: float) -> np.ndarray:
    side = rng.integers(4)
    if side == 0:
        return np.array([rng.uniform(0, width), 0.0])
    if side == 1:
        return np.array([rng.uniform(0, width), height])
    if side == 2:
        return np.array([0.0, rng.uniform(0, height)])
    return np.array([width, rng.uniform(0, height)])


def _electrode(rng, height, width, size, s):
    """An ECG electrode: a faint gel pad, a radio-opaque ring and snap; sometimes its lead wire."""
    layer, draw = _new_layer(height, width, s)
    centre = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height]) * s
    radius = size * rng.uniform(0.015, 0.04) * s
    pad = radius * rng.uniform(1.3, 2.0)
    draw.ellipse((*(centre - pad), *(centre + pad)), fill=round(255 * rng.uniform(0.03, 0.12)))
    draw.ellipse((*(centre - radius), *(centre + radius)), fill=round(255 * rng.uniform(0.05, 0.2)),
                 outline=round(255 * rng.uniform(0.5, 0.9)), width=max(s, round(radius * rng.uniform(0.15, 0.3))))
    snap = radius * rng.uniform(0.25, 0.45)
    draw.ellipse((*(centre - snap), *(centre + snap)), fill=round(255 * rng.uniform(0.7, 0.95)))
    if rng.random() < 0.5:
        end = _border_point(rng, height * s, width * s)
        draw.line(_bezier(rng, centre, end, 0.3), fill=round(255 * rng.uniform(0.4, 0.8)),
                  width=max(s, round(size * rng.uniform(0.003, 0.007) * s)), joint="curve")
    return layer


def _wire(rng, height, width, size, s):
    """A thin radio-opaque wire (pacing lead, guide wire, ECG lead) entering from a border."""
    layer, draw = _new_layer(height, width, s)
    start = _border_point(rng, height * s, width * s) if rng.random() < 0.7 else \
        np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height]) * s
    end = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height]) * s
    draw.line(_bezier(rng, start, end, rng.uniform(0.05, 0.5)), fill=round(255 * rng.uniform(0.6, 0.95)),
              width=max(s, round(size * rng.uniform(0.003, 0.008) * s)), joint="curve")
    return layer


def _tube(rng, height, width, size, s):
    """A plastic tube or catheter: a faint wide band with a radio-opaque stripe along it."""
    layer, draw = _new_layer(height, width, s)
    start = _border_point(rng, height * s, width * s)
    end = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height]) * s
    points = _bezier(rng, start, end, rng.uniform(0.05, 0.4))
    draw.line(points, fill=round(255 * rng.uniform(0.1, 0.3)),
              width=max(2 * s, round(size * rng.uniform(0.012, 0.03) * s)), joint="curve")
    draw.line(points, fill=round(255 * rng.uniform(0.5, 0.85)),
              width=max(s, round(size * rng.uniform(0.003, 0.006) * s)), joint="curve")
    return layer


def _clip(rng, height, width, size, s):
    """A surgical clip or staple: a small dense bar or V, at a random angle."""
    layer, draw = _new_layer(height, width, s)
    centre = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height]) * s
    length = max(3.0, size * rng.uniform(0.015, 0.04)) * s
    angle = rng.uniform(0, math.pi)
    axis = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-axis[1], axis[0]])
    fill = round(255 * rng.uniform(0.8, 0.97))
    if rng.random() < 0.5:  # a bar
        half_w = max(0.6 * s, length * rng.uniform(0.12, 0.25))
        corners = [centre + a * axis * length / 2 + b * normal * half_w
                   for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        draw.polygon([tuple(c) for c in corners], fill=fill)
    else:  # a V-shaped clip, apex at the centre
        spread = rng.uniform(0.15, 0.45)
        tips = [centre + length * (axis * math.cos(spread) + sign * normal * math.sin(spread)) for sign in (-1, 1)]
        draw.line([tuple(tips[0]), tuple(centre), tuple(tips[1])], fill=fill,
                  width=max(s, round(length * rng.uniform(0.12, 0.2))), joint="curve")
    return layer


_MARKERS = (_electrode, _wire, _tube, _clip)
_MARKER_WEIGHTS = (0.4, 0.25, 0.15, 0.2)


def add_markers(image: torch.Tensor, rng: np.random.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Radio-opaque foreign objects: ECG electrodes, wires, tubes, surgical clips.

    Each of the ``count`` objects is one of: an ECG electrode (faint pad, bright ring and snap,
    sometimes its lead wire running off to a border), a thin wire with a random smooth bend
    entering from a border, a tube (faint band with a radio-opaque stripe), or a small clip (bar
    or V). An object with opacity ``a`` (0–0.97) brightens a pixel as attenuation would,
    ``x + a·(1 - x)`` (so overlapping objects add up, and dense bone stays at most 1). Objects are
    drawn at 4× resolution (less for images over 512 px) and box-filtered down, so their edges
    are anti-aliased.

    Args:
        image: ``[H, W]`` displayed radiograph in [0, 1], bone bright.
        rng: source of all randomness.
        count: number of objects, >= 0; 0 returns an exact copy and an all-False mask.

    Returns:
        ``(image, mask)``: the image with the objects (same shape, dtype and device, in [0, 1])
        and a boolean ``[H, W]`` mask of the pixels they cover (edges included); every pixel
        outside the mask is bit-for-bit unchanged.
    """
    _check_image(image)
    _check_rng(rng)
    count = _check_count("marker count", count)
    if count == 0:
        return image.clone(), torch.zeros(image.shape, dtype=torch.bool, device=image.device)
    height, width = image.shape
    size = min(height, width)
    s = max(1, min(_MARKER_SUPERSAMPLING, _MARKER_CANVAS_MAX_PX // max(height, width)))
    layers = []
    for _ in range(count):
        draw_marker = _MARKERS[rng.choice(len(_MARKERS), p=_MARKER_WEIGHTS)]
        layers.append((_coverage(draw_marker(rng, height, width, size, s), s), 1.0))
    return _composite(image, layers)


# --- anti-scatter grid --------------------------------------------------------------------
def random_grid_lines(image: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """Anti-scatter grid lines: faint periodic stripes, often aliased into a moiré pattern.

    The lead strips of a stationary grid cast parallel lines. The stripes run along the rows or
    columns (give or take a degree) on 4 images in 5, at any angle otherwise, with a frequency
    of 0.08–0.95 cycles per pixel (above 0.5 they alias into coarser moiré bands, as on real
    detectors), a random profile from smooth to thin sharp lines, and an amplitude that drifts
    by up to ±30 % across the image. They are added to the displayed image:
    ``clip(x + a·(w - mean w), 0, 1)`` with amplitude ``a = strength·[0.005, 0.03]``.

    Args:
        image: ``[H, W]`` displayed radiograph in [0, 1], bone bright.
        rng: source of all randomness.
        strength: in [0, 1]; 0 returns an exact copy.

    Returns:
        The image with grid lines, same shape, dtype and device, in [0, 1].
    """
    _check_image(image)
    _check_rng(rng)
    strength = _check_strength("grid strength", strength)
    if strength == 0:
        return image.clone()
    height, width = image.shape
    if rng.random() < 0.95:
        angle = (0.0 if rng.random() < 0.5 else math.pi / 2) + math.radians(rng.normal(0.0, 0.3))
    else:
        angle = rng.uniform(0, math.pi)
    frequency = rng.uniform(0.1, 0.9)
    sharpness = rng.uniform(1.0, 4.0)
    phase = rng.uniform(0, 2 * math.pi)
    amplitude = strength * rng.uniform(0.005, 0.03)
    drift = rng.uniform(-0.3, 0.3)
    v = torch.arange(height, dtype=torch.float32, device=image.device)[:, None]
    u = torch.arange(width, dtype=torch.float32, device=image.device)[None, :]
    along = u * math.cos(angle) + v * math.sin(angle)  # distance across the stripes, px
    across = -u * math.sin(angle) + v * math.cos(angle)
    wave = ((1 + torch.cos(2 * math.pi * frequency * along + phase)) / 2) ** sharpness
    wave = wave - wave.mean()
    envelope = 1 + drift * (across - across.mean()) / max(1.0, float(across.max() - across.min()))
    return (image + (amplitude * envelope * wave).to(image.dtype)).clamp(0, 1)


# --- the chain ----------------------------------------------------------------------------
@dataclass(frozen=True)
class StyleAugmentation:
    """Which style randomisations to apply, and how strongly; every field defaults to off.

    Attributes:
        tone_strength: strength of :func:`random_histogram_style` (local contrast + tone
            curve), in [0, 1]; 0 = off.
        text_count: number of burned-in annotations (:func:`burn_in_text`), >= 0; 0 = off.
        marker_count: number of foreign objects (:func:`add_markers`), >= 0; 0 = off.
        grid_strength: strength of the anti-scatter grid lines (:func:`random_grid_lines`), in
            [0, 1]; 0 = off.

    Invalid values raise :class:`XreconInputError` on construction.
    """

    tone_strength: float = 0.0
    text_count: int = 0
    marker_count: int = 0
    grid_strength: float = 0.0

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("tone_strength", _check_strength("tone_strength", self.tone_strength))
        set_("text_count", _check_count("text_count", self.text_count))
        set_("marker_count", _check_count("marker_count", self.marker_count))
        set_("grid_strength", _check_strength("grid_strength", self.grid_strength))

    @property
    def enabled(self) -> bool:
        """True when any effect is on."""
        return bool(self.tone_strength or self.text_count or self.marker_count or self.grid_strength)

    def apply(self, image: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the enabled effects in the order they arise on a real radiograph.

        1. foreign objects (in the beam, so the detector and the processing see them),
        2. grid lines (in the detector image),
        3. vendor processing: local contrast, then the tone curve,
        4. burned-in text (drawn on the processed image, so it keeps its crisp look).

        Each effect draws from its own child generator, seeded from ``rng`` (4 draws whenever
        any effect is on), so switching one effect on or off does not change the others' random
        choices. With every effect off, ``rng`` is not touched.

        Args:
            image: ``[H, W]`` displayed radiograph in [0, 1], bone bright, float32.
            rng: source of all randomness; the same seed gives the same bytes.

        Returns:
            ``(image, mask)``: the styled image (a new tensor, same shape, dtype and device, in
            [0, 1]) and the boolean ``[H, W]`` mask of pixels covered by text or markers. With
            every effect off, an exact copy of the input and an all-False mask.
        """
        _check_image(image)
        _check_rng(rng)
        mask = torch.zeros(image.shape, dtype=torch.bool, device=image.device)
        if not self.enabled:
            return image.clone(), mask
        marker_rng, grid_rng, tone_rng, text_rng = (np.random.default_rng(int(seed))
                                                    for seed in rng.integers(0, 2 ** 63 - 1, size=4))
        out = image.clone()
        if self.marker_count:
            out, covered = add_markers(out, marker_rng, self.marker_count)
            mask |= covered
        if self.grid_strength:
            out = random_grid_lines(out, grid_rng, self.grid_strength)
        if self.tone_strength:
            out = random_histogram_style(out, tone_rng, self.tone_strength)
        if self.text_count:
            out, covered = burn_in_text(out, text_rng, self.text_count)
            mask |= covered
        return out, mask
