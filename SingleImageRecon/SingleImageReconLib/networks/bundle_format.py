"""A model bundle's metadata, read and checked without torch or MONAI, so that a command can
refuse a bad bundle or a structure it lacks before spending seconds on those imports."""

from __future__ import annotations

import os
from pathlib import Path

from SyntheticDataGenLib.atomic_io import read_json
from SyntheticDataGenLib.errors import XreconInputError

BUNDLE_FORMAT = "xrecon-depth/3"  # /2: depth in mm about the isocentre, presence logits; /3: chains
READABLE_FORMATS = ("xrecon-depth/2", BUNDLE_FORMAT)  # a /2 bundle is a /3 one without chains


def read_bundle_metadata(bundle_dir: str | os.PathLike) -> dict:
    """``configs/metadata.json`` of a bundle, checked to describe an xrecon depth network.

    Raises XreconInputError for a missing or malformed file, or one that lacks what the network
    needs (structures, features, outputs, input shape, downsampling).
    """
    bundle_dir = Path(bundle_dir)
    metadata_path = bundle_dir / "configs" / "metadata.json"
    metadata = read_json(metadata_path, f"{bundle_dir} is not a model bundle (no configs/metadata.json)")
    section = metadata.get("xrecon")
    if not isinstance(section, dict) or not isinstance(metadata.get("network_data_format", {}), dict):
        raise XreconInputError(f"{metadata_path} lacks its 'xrecon' section: not an xrecon model bundle")
    if section.get("format") not in READABLE_FORMATS:
        raise XreconInputError(f"{bundle_dir}: bundle format {section.get('format')!r}, expected {BUNDLE_FORMAT!r} "
                               "(a bundle of another xrecon version: retrain it with 'xrecon train')")
    structures, features = section.get("structures"), section.get("features")
    if (not isinstance(structures, list) or not structures or not all(isinstance(s, str) for s in structures)
            or not isinstance(features, list) or len(features) != 6
            or not all(isinstance(f, int) and f > 0 for f in features)):
        raise XreconInputError(f"{metadata_path} lacks the structures (names) or features (6 channel counts) "
                               "of the network")
    data_format = metadata.get("network_data_format", {})
    outputs = data_format.get("outputs", {})
    if not isinstance(outputs, dict) or not all(isinstance(output, dict) for output in outputs.values()):
        raise XreconInputError(f"{metadata_path}: network_data_format.outputs must describe each output")
    if any(output.get("num_channels") != len(structures) for output in outputs.values()):
        raise XreconInputError(f"{metadata_path}: outputs do not have one channel per structure")
    shape = _nested(data_format, "inputs", "image").get("spatial_shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) and n > 0 for n in shape)):
        raise XreconInputError(f"{metadata_path}: network_data_format.inputs.image.spatial_shape must be [H, W]")
    downsample = section.get("downsample", 1)
    if downsample not in (1, 2, 4):
        raise XreconInputError(f"{metadata_path}: downsample must be 1, 2 or 4, got {downsample!r}")
    return metadata


def _nested(document: dict, *keys: str) -> dict:
    """document[k1][k2]... where each level is an object; {} where one is missing or is not."""
    for key in keys:
        document = document.get(key) if isinstance(document, dict) else None
    return document if isinstance(document, dict) else {}
