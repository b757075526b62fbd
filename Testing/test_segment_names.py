"""Picking segments by name (``segment_names``), as the module does for a Slicer segmentation."""

from __future__ import annotations

import pytest

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.cases.segment_names import segment_ids_by_name

SEGMENTS = [("Segment_1", "femur_left"), ("Segment_2", "hip_left"), ("Segment_3", "sacrum")]


def test_all_or_the_named_in_the_order_asked_for():
    assert list(segment_ids_by_name(SEGMENTS).items()) == [(name, sid) for sid, name in SEGMENTS]
    assert list(segment_ids_by_name(SEGMENTS, ["sacrum", "femur_left"]).items()) == [
        ("sacrum", "Segment_3"), ("femur_left", "Segment_1")]
    assert segment_ids_by_name(SEGMENTS, []) == {}


def test_missing_and_repeated_names_are_refused():
    with pytest.raises(XreconInputError, match=r"Pelvis has no segment named 'tibia'.*available: femur_left, hip_left"):
        segment_ids_by_name(SEGMENTS, ["tibia", "femur_left"], "Pelvis")
    with pytest.raises(XreconInputError, match="'hip_left' occurs twice"):
        segment_ids_by_name(SEGMENTS + [("Segment_4", "hip_left")], ["sacrum"])
