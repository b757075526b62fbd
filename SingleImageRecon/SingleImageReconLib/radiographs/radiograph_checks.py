"""Is this picture plausibly a radiograph? Refuse colour pictures, blank images and noise.

A network fed something that is not a radiograph still predicts bones, so the input is checked
first. Each check has one statistic, and its threshold was set from measurements, with a wide
margin on both sides:

- colour: the share of the pixels' RGB variance off their main colour axis. A greyscale image
  saved as RGB, and a tinted one (sepia, a lightbox photograph), have all their colours on one
  line through RGB space; a colour map or a photograph does not.
- nearly constant: the span of the central 98 % of pixel values, as a share of the full range.
- noise: the correlation of neighbouring pixels, at about the network's scale. Radiographs are
  smooth (shadows of extended anatomy); noise of independent pixels gives about 0.
"""

from __future__ import annotations

import numpy as np

from SyntheticDataGenLib.errors import XreconInputError

# Share of RGB variance off the main colour axis. Measured: greyscale PNG saved as RGB, and as
# JPEG (quality 10-50): 0.000; a DRR in sepia: 0.000, in matplotlib 'bone' / 'copper' / 'pink':
# 0.007 / 0.008 / 0.038; a chest radiograph with a red box and yellow text burned in: 0.014.
# Colour: DRR in 'viridis' 0.115, 'hot' 0.247, 'jet' 0.296; smooth random colour fields 0.479.
MAX_OFF_AXIS_COLOUR = 0.05

# (99th - 1st percentile) / (max - min). Measured: NIH chest radiographs 0.93, 0.97; DRRs of the
# sample cases 0.90-0.92; heavy-augmentation training images 0.60-1.00; a DRR under Poisson noise
# of 10 photons in its brightest pixel 0.32. A blank image with a few odd pixels: 0.
MIN_VALUE_SPREAD = 0.02

# Mean correlation of horizontal and vertical neighbours after block-averaging to about 256 px.
# Measured: NIH chest radiographs 0.995, 0.996; DRRs 0.998-1.000; heavy-augmentation training
# images 0.895-0.994; a DRR under Poisson noise of 1e4 / 1e2 / 30 / 10 photons in its brightest
# pixel 0.995 / 0.960 / 0.883 / 0.719; a chest radiograph under Gaussian noise of half its range
# 0.52. Noise: uniform and Gaussian, 100 x 80 to 2048 x 2048 px, -0.003 to 0.004.
MIN_NEIGHBOUR_CORRELATION = 0.3

_CHECK_SCALE_PX = 256  # the bundled networks' input size


def off_axis_colour(rgb: np.ndarray) -> float:
    """Share (0-1) of the RGB variance of ``rgb`` ``[height, width, 3]`` that lies off its main colour axis."""
    step = max(1, max(rgb.shape[:2]) // (2 * _CHECK_SCALE_PX))  # a pixel sample is enough for 3 x 3 moments
    covariance = np.cov(rgb[::step, ::step].reshape(-1, 3).astype(np.float64), rowvar=False)
    eigenvalues = np.linalg.eigvalsh(covariance)
    total = float(eigenvalues.sum())
    return max(0.0, 1.0 - float(eigenvalues[-1]) / total) if total > 0 else 0.0


def value_spread(image: np.ndarray) -> float:
    """(99th - 1st percentile) / (max - min) of the pixel values; 0 for a constant image."""
    full = float(image.max() - image.min())
    if full <= 0:
        return 0.0
    low, high = np.percentile(image, [1, 99])
    return float(high - low) / full


def _block_mean(image: np.ndarray, target_px: int) -> np.ndarray:
    """Average square blocks so the larger side becomes about ``target_px`` (never upsampled)."""
    factor = max(1, round(max(image.shape) / target_px))
    height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:height, :width].reshape(height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(1, 3))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / norm if norm > 0 else 0.0


def neighbour_correlation(image: np.ndarray) -> float:
    """Mean Pearson correlation (-1 to 1) of horizontally and vertically adjacent pixels of ``image``
    ``[height, width]``, after block-averaging it to about the networks' 256 px.

    At that scale a large detector image's photon noise averages out, as it does when the image
    is resampled for the network, while independent noise stays independent.
    """
    small = _block_mean(image.astype(np.float64), _CHECK_SCALE_PX)
    return 0.5 * (_correlation(small[:, 1:], small[:, :-1]) + _correlation(small[1:], small[:-1]))


def check_not_colour(rgb: np.ndarray, name: str) -> None:
    """Refuse a colour picture ``[height, width, 3]`` (XreconInputError); grey or tinted grey passes."""
    share = off_axis_colour(rgb)
    if share > MAX_OFF_AXIS_COLOUR:
        raise XreconInputError(
            f"radiograph {name} is a colour image ({share:.0%} of its colour variance is not grey); "
            "give the greyscale radiograph itself, not a colour-mapped rendering or a photograph")


def check_plausible(image: np.ndarray, name: str) -> None:
    """Refuse (XreconInputError, one line) a grey image ``[height, width]`` that is nearly constant
    or looks like noise rather than a radiograph."""
    spread = value_spread(image)
    if spread < MIN_VALUE_SPREAD:
        raise XreconInputError(
            f"radiograph {name} is nearly constant (98% of its pixels lie within {spread:.1%} of its value "
            "range); give an image that shows the anatomy")
    correlation = neighbour_correlation(image)
    if correlation < MIN_NEIGHBOUR_CORRELATION:
        raise XreconInputError(
            f"radiograph {name} looks like noise, not a radiograph (neighbouring pixels correlate "
            f"{correlation:.2f}; radiographs above {MIN_NEIGHBOUR_CORRELATION}); check that the file is "
            "the radiograph and that its pixel type and size are read right")
