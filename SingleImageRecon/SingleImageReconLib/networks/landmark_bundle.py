"""MONAI bundles of the landmark network: written after training, loaded safely (safetensors).

Layout as the depth bundle's (:mod:`.depth_bundle`): ``configs/metadata.json`` (MONAI metadata and an
"xrecon" section: format ``xrecon-landmarks/1``, the landmark labels in output order, features,
downsampling, the geometry trained for, training data, commands and figures, and the σ scale
calibrated on held-out patients, ``sigma_calibration.sigma_scale``, which loading applies),
``models/model.safetensors``, ``docs/README.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import monai
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from SyntheticDataGenLib.atomic_io import read_json, write_text_atomically
from SyntheticDataGenLib.errors import XreconInputError

from .depth_bundle import environment
from .landmark_network import LandmarkNet

LANDMARK_BUNDLE_FORMAT = "xrecon-landmarks/1"


def write_landmark_bundle(bundle_dir: str | os.PathLike, model: LandmarkNet, landmarks: list[str],
                          image_size: tuple[int, int], config, extra: dict) -> None:
    """Write the bundle; each file lands atomically."""
    bundle_dir = Path(bundle_dir)
    for sub in ("configs", "models", "docs"):
        (bundle_dir / sub).mkdir(parents=True, exist_ok=True)
    channel_def = {str(i): label for i, label in enumerate(landmarks)}
    metadata = {
        "version": "0.1.0", "monai_version": monai.__version__, "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__, "name": "xrecon landmark network",
        "task": "2D anatomical landmarks with a standard deviation and a presence each, from one radiograph",
        "description": "Soft-argmax heatmaps give each landmark's (u, v) in pixels; a σ map its standard deviation "
                       "(trained with a Gaussian negative log-likelihood); a presence map whether it is in the image.",
        "authors": "xrecon developers", "license": "Apache-2.0",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "XR", "num_channels": 1,
                                 "spatial_shape": list(image_size[::-1]), "dtype": "float32", "value_range": [0, 1]}},
            "outputs": {"uv_px": {"type": "tensor", "format": "points", "num_channels": len(landmarks),
                                  "channel_def": channel_def},
                        "sigma_px": {"type": "tensor", "format": "distance", "num_channels": len(landmarks),
                                     "channel_def": channel_def},
                        "presence_logits": {"type": "tensor", "format": "logits", "num_channels": len(landmarks),
                                            "channel_def": channel_def}}},
        "xrecon": {"format": LANDMARK_BUNDLE_FORMAT, "landmarks": list(landmarks), "features": list(config.features),
                   "downsample": int(config.downsample), "environment": environment(), **extra},
    }
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    temporary = bundle_dir / "models" / ".model.safetensors.partial"
    save_file(state, str(temporary), metadata={"format": LANDMARK_BUNDLE_FORMAT})
    os.replace(temporary, bundle_dir / "models" / "model.safetensors")
    write_text_atomically(bundle_dir / "configs" / "metadata.json", json.dumps(metadata, indent=2, default=str))
    if not (bundle_dir / "docs" / "README.md").exists():
        write_text_atomically(bundle_dir / "docs" / "README.md", metadata["description"] + "\n")


def load_landmark_bundle(bundle_dir: str | os.PathLike, device: torch.device | str = "cpu"
                         ) -> tuple[LandmarkNet, dict]:
    """(network in eval mode, metadata) of a landmark bundle; weights load without unpickling."""
    bundle_dir = Path(bundle_dir)
    metadata = read_json(bundle_dir / "configs" / "metadata.json",
                         f"{bundle_dir} is not a model bundle (no configs/metadata.json)")
    section = metadata.get("xrecon") if isinstance(metadata, dict) else None
    if not isinstance(section, dict) or section.get("format") != LANDMARK_BUNDLE_FORMAT:
        raise XreconInputError(f"{bundle_dir}: not a landmark bundle (format "
                               f"{section.get('format') if isinstance(section, dict) else None!r}, expected "
                               f"{LANDMARK_BUNDLE_FORMAT!r})")
    landmarks, features = section.get("landmarks"), section.get("features")
    if (not isinstance(landmarks, list) or not landmarks or not isinstance(features, list) or len(features) != 6
            or section.get("downsample") not in (1, 2, 4)):
        raise XreconInputError(f"{bundle_dir}/configs/metadata.json lacks landmarks, features or downsample")
    model = LandmarkNet(len(landmarks), features, section["downsample"])
    try:
        model.load_state_dict(load_file(str(bundle_dir / "models" / "model.safetensors")))
    except (OSError, SafetensorError, RuntimeError) as error:
        raise XreconInputError(f"{bundle_dir}: cannot load the landmark weights: {str(error).splitlines()[0]}") from None
    scale = (section.get("sigma_calibration") or {}).get("sigma_scale", 1.0)
    if not isinstance(scale, (int, float)) or not 0.01 <= scale <= 100:
        raise XreconInputError(f"{bundle_dir}/configs/metadata.json: sigma_scale {scale!r} is not a number in [0.01, 100]")
    model.sigma_scale = float(scale)
    return model.to(device).eval(), metadata
