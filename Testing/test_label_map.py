"""Masks stacked into one label map (``label_map``): what the module writes and shows."""

from __future__ import annotations

import numpy as np

from SyntheticDataGenLib.cases.label_map import stack_masks


def test_later_masks_win_and_overlaps_are_named():
    a = np.zeros((4, 5), bool)
    a[0:2, 0:3] = True
    b = np.zeros((4, 5), np.uint8)  # any non-zero value is inside
    b[1:3, 2:4] = 7
    c = np.zeros((4, 5), bool)
    c[3, 4] = True
    labels, overlapping = stack_masks(iter([a, b, c]), (4, 5), 3)  # a generator: one mask at a time
    assert labels.dtype == np.uint8
    assert overlapping == [1]  # b covers a at (1, 2); c covers nothing
    expected = np.zeros((4, 5), np.uint8)
    expected[a] = 1
    expected[b != 0] = 2
    expected[c] = 3
    np.testing.assert_array_equal(labels, expected)


def test_many_masks_need_16_bits_and_none_give_background():
    masks = [np.eye(300, dtype=bool)[i:i + 1] for i in range(300)]  # row i marks column i
    labels, overlapping = stack_masks(masks, (1, 300), len(masks))
    assert labels.dtype == np.uint16 and overlapping == []
    np.testing.assert_array_equal(labels[0], np.arange(1, 301))
    labels, overlapping = stack_masks([], (2, 3, 4), 0)
    assert labels.shape == (2, 3, 4) and not labels.any() and overlapping == []
