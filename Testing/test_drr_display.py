"""The display window of a DRR preview (``drr_display``)."""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticDataGenLib.projection.drr_display import drr_window


def test_window_spans_the_body_not_the_air():
    rng = np.random.default_rng(1)
    image = np.zeros((64, 64))
    image[16:48, 16:48] = rng.uniform(2.0, 6.0, (32, 32))  # the body; the rest is air (0)
    image[0, 0] = np.nan
    image[0, 1] = np.inf
    low, high = drr_window(image)
    body = image[16:48, 16:48]
    assert low == pytest.approx(np.percentile(body, 1.0))
    assert high == pytest.approx(np.percentile(body, 99.8))
    assert 2.0 <= low < high <= 6.0


@pytest.mark.parametrize("image, expected", [
    (np.zeros((4, 4)), (0.0, 1.0)), (np.full((4, 4), 3.0), (3.0, 4.0)),
    (np.full((2, 2), np.nan), (0.0, 1.0)), (np.empty((0, 5)), (0.0, 1.0))])
def test_flat_or_empty_images_still_get_a_window(image, expected):
    assert drr_window(image) == expected


def test_negative_images_use_every_pixel():
    image = -np.linspace(1.0, 2.0, 1000)
    low, high = drr_window(image)
    assert low == pytest.approx(np.percentile(image, 1.0)) and high == pytest.approx(np.percentile(image, 99.8))
