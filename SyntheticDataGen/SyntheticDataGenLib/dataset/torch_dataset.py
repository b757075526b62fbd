"""Reading a synthetic training set made by :mod:`.generation` as a ``torch.utils.data.Dataset``."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic_io import read_json
from ..errors import XreconInputError
from .generation import READABLE_SCHEMA_VERSIONS, SAMPLE_ARRAYS, SCHEMA_VERSION, read_manifests


def read_header(dataset_dir: str | os.PathLike) -> dict:
    """``dataset.json`` of a dataset, checked for its schema version."""
    header = read_json(Path(dataset_dir) / "dataset.json", f"{dataset_dir} is not a dataset (no dataset.json)")
    if header.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        raise XreconInputError(f"{dataset_dir} has schema version {header.get('schema_version')}; this xrecon "
                               f"reads versions {', '.join(map(str, READABLE_SCHEMA_VERSIONS))} (make the dataset "
                               f"again with this version, {SCHEMA_VERSION})")
    settings = header.get("settings")
    if (not isinstance(settings, dict) or not isinstance(settings.get("structures"), list)
            or not isinstance(settings.get("base_view"), dict)):
        raise XreconInputError(f"{dataset_dir}/dataset.json lacks its settings (structures, base_view): "
                               "make the dataset again with 'xrecon generate'")
    return header


def load_sample(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of one sample file (no pickled objects are loaded)."""
    with np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


@dataclass(frozen=True)
class IntensityJitter:
    """Cheap augmentation done while training, on the image only (targets stay exact).

    gamma and contrast are drawn uniformly from their ranges; noise is Gaussian with a standard
    deviation drawn from [0, noise_sigma]; the image stays in [0, 1].
    """

    gamma: tuple[float, float] = (0.8, 1.25)
    contrast: tuple[float, float] = (0.8, 1.2)
    noise_sigma: float = 0.02

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        draw = torch.rand(3, generator=generator)
        gamma = self.gamma[0] + (self.gamma[1] - self.gamma[0]) * draw[0]
        contrast = self.contrast[0] + (self.contrast[1] - self.contrast[0]) * draw[1]
        image = image.clamp(0, 1) ** gamma
        image = (image - image.mean()) * contrast + image.mean()
        noise = torch.randn(image.shape, generator=generator) * (self.noise_sigma * draw[2])
        return (image + noise).clamp(0, 1)


class SyntheticXrayDataset(torch.utils.data.Dataset):
    """Samples of one split as tensors.

    Each item is a dict: ``image`` (1, H, W) float32 in [0, 1]; ``masks`` (S, H, W) float32;
    ``front_mm``, ``back_mm`` (S, H, W) float32; ``present`` (S,) bool; ``geometry`` (the
    sample's projection geometry as a dict); ``id``. ``structures`` lists the S channels.
    """

    def __init__(self, dataset_dir: str | os.PathLike, split: str | None = "train",
                 jitter: IntensityJitter | None = None, seed: int = 0):
        self.root = Path(dataset_dir)
        self.header = read_header(self.root)
        self.structures: list[str] = self.header["settings"]["structures"]
        rows = read_manifests(self.root)
        self.rows = [row for row in rows if split is None or row["split"] == split]
        self.jitter = jitter
        self.seed = seed

    def __len__(self) -> int:
        return len(self.rows)

    def arrays(self, index: int, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Only the named arrays of a sample (each is decompressed on its own: the targets cost
        ten times the image), the ones it lacks left out."""
        with np.load(self.root / self.rows[index]["file"], allow_pickle=False) as data:
            return {name: data[name] for name in names if name in data.files}

    def network_image(self, index: int, image: np.ndarray) -> torch.Tensor:
        """(1, H, W) a sample's image as the network sees it: with this dataset's jitter, if any."""
        tensor = torch.from_numpy(image)[None]
        if self.jitter is not None:
            # a seed from the sample, not from Python's per-process string hash: the same in every process
            generator = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}/{self.rows[index]['id']}".encode()))
            tensor = self.jitter(tensor, generator)
        return tensor

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        arrays = load_sample(self.root / row["file"])
        missing = {"image", "masks", "front_mm", "back_mm", "present"} - set(arrays)
        if missing:
            raise XreconInputError(f"{row['file']} lacks {', '.join(sorted(missing))}; expected {list(SAMPLE_ARRAYS)}")
        image = self.network_image(index, arrays["image"])
        return {"id": row["id"], "image": image, "masks": torch.from_numpy(arrays["masks"]).float(),
                "front_mm": torch.from_numpy(arrays["front_mm"]), "back_mm": torch.from_numpy(arrays["back_mm"]),
                "present": torch.from_numpy(arrays["present"]), "geometry": row["geometry"]}
