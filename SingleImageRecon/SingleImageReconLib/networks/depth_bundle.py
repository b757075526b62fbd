"""MONAI bundles of the depth network: write after training, load (safely) for inference.

Layout::

    configs/metadata.json    MONAI bundle metadata + an "xrecon" section: structures, network
                             features, the geometry trained for, the dataset and commands, figures
    configs/inference.json   network definition for MONAI's ConfigParser
    models/model.safetensors weights (no pickled code)
    docs/README.md           what the model is, how it was made, how to retrain it
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import monai
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from SyntheticDataGenLib.atomic_io import write_text_atomically
from SyntheticDataGenLib.errors import XreconInputError

from .bundle_format import BUNDLE_FORMAT, read_bundle_metadata
from .depth_network import DepthNet



def bundle_metadata(structures: list[str], features, image_size: tuple[int, int], extra: dict,
                    downsample: int = 1, chains: list[list[int]] = ()) -> dict:
    """MONAI-style metadata for a depth network (``extra`` joins the "xrecon" section).

    ``chains``: the network's chains (:class:`.network.DepthNet`), recorded by structure name.
    """
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.1.0",
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {"slicer-xrecon": "0.1.0"},
        "name": "xrecon dual-face depth network",
        "task": "Per-bone masks and front/back depth maps from one radiograph",
        "description": "Predicts, for each structure, the mask of rays that hit it and the distances from the X-ray "
                       "source to where each ray enters and leaves it (3DDX-style dual-face depth). Trained on "
                       "synthetic radiographs rendered from CT with exact targets.",
        "authors": "xrecon developers",
        "copyright": "Copyright (c) xrecon developers",
        "license": "Apache-2.0",
        "network_data_format": {
            "inputs": {
                "image": {"type": "image", "format": "magnitude", "modality": "XR", "num_channels": 1,
                          "spatial_shape": list(image_size[::-1]), "dtype": "float32", "value_range": [0, 1],
                          "is_patch_data": False, "channel_def": {"0": "radiograph, bone bright"}},
                "reference_mm": {"type": "tensor", "format": "distance", "num_channels": 1, "spatial_shape": [],
                                 "dtype": "float32", "value_range": [100, 3000], "is_patch_data": False,
                                 "channel_def": {"0": "source-to-isocentre distance of the image's geometry"}},
            },
            "outputs": {
                name: {"type": "image", "format": format_, "num_channels": len(structures),
                       "spatial_shape": list(image_size[::-1]), "dtype": "float32", "value_range": range_,
                       "is_patch_data": False, "channel_def": {str(i): s for i, s in enumerate(structures)}}
                for name, format_, range_ in (("mask_logits", "logits", [-100, 100]), ("front_mm", "distance", [0, 5000]),
                                              ("back_mm", "distance", [0, 5000]))
            } | {"presence_logits": {"type": "tensor", "format": "logits", "num_channels": len(structures),
                                     "spatial_shape": [], "dtype": "float32", "value_range": [-100, 100],
                                     "is_patch_data": False,
                                     "channel_def": {str(i): s for i, s in enumerate(structures)}}},
        },
        "xrecon": {"format": BUNDLE_FORMAT, "structures": list(structures), "features": list(features),
                   "downsample": int(downsample),
                   "chains": [[structures[i] for i in chain] for chain in chains], **extra},
    }


def write_bundle(bundle_dir: str | os.PathLike, model: DepthNet, metadata: dict, readme: str = "") -> None:
    """Write a bundle folder; each file lands atomically."""
    bundle_dir = Path(bundle_dir)
    for sub in ("configs", "models", "docs"):
        (bundle_dir / sub).mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    temporary = bundle_dir / "models" / ".model.safetensors.partial"
    save_file(state, str(temporary), metadata={"format": BUNDLE_FORMAT})
    os.replace(temporary, bundle_dir / "models" / "model.safetensors")
    write_text_atomically(bundle_dir / "configs" / "metadata.json", json.dumps(metadata, indent=2))
    inference = {"imports": ["$import SingleImageReconLib.networks.depth_network"],
                 "network_def": {"_target_": "SingleImageReconLib.networks.depth_network.DepthNet",
                                 "structure_count": len(metadata["xrecon"]["structures"]),
                                 "features": metadata["xrecon"]["features"],
                                 "downsample": metadata["xrecon"].get("downsample", 1),
                                 "chains": _chain_indices(metadata["xrecon"])},
                 "weights": "$@bundle_root + '/models/model.safetensors'"}
    write_text_atomically(bundle_dir / "configs" / "inference.json", json.dumps(inference, indent=2))
    write_text_atomically(bundle_dir / "docs" / "README.md", readme or metadata["description"] + "\n")


def load_bundle(bundle_dir: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[DepthNet, dict]:
    """The network of a bundle with its weights, and the bundle's metadata.

    Raises XreconInputError for a missing or malformed bundle, metadata that does not describe
    this network, or a weights file that is not safetensors weights of that network.
    """
    bundle_dir = Path(bundle_dir)
    metadata = read_bundle_metadata(bundle_dir)
    section, metadata_path = metadata["xrecon"], bundle_dir / "configs" / "metadata.json"
    weights_path = bundle_dir / "models" / "model.safetensors"
    structures, features, downsample = section["structures"], section["features"], section.get("downsample", 1)
    try:
        model = DepthNet(len(structures), features, downsample, _chain_indices(section))
    except (ValueError, TypeError) as error:
        raise XreconInputError(f"{metadata_path}: {error}") from None
    try:
        state = load_file(str(weights_path))
    except FileNotFoundError:
        raise XreconInputError(f"{bundle_dir} has no weights (models/model.safetensors)") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise XreconInputError(f"{weights_path} is not a safetensors weights file: {error}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise XreconInputError(f"{weights_path} does not match the network its metadata describes ({first})") from None
    return model.to(device).eval(), metadata


def _chain_indices(section: dict) -> list[list[int]]:
    """The "chains" of an "xrecon" metadata section as structure indices."""
    structures = section["structures"]
    try:
        return [[structures.index(name) for name in chain] for chain in section.get("chains", [])]
    except (ValueError, TypeError):
        raise ValueError(f"chains {section.get('chains')!r} name structures the bundle does not have") from None


def environment() -> dict:
    """Versions and machine, recorded with a trained model."""
    return {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__,
            "machine": platform.machine(), "threads": torch.get_num_threads()}
