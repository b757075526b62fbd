"""Where the bundled shape models live, and reading a folder of them."""

from __future__ import annotations

from pathlib import Path

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.cases.sample_data import resources_dir

from .shape_model import ShapeModel, load_shape_model

BONE_TYPES = ("vertebra", "sacrum", "hip", "femur")


def bundled_models_dir() -> Path:
    """``Resources/ShapeModels``: one ``<bone type>.npz`` each, with their provenance."""
    return resources_dir() / "ShapeModels"


def load_models(folder: Path | None = None) -> dict[str, ShapeModel]:
    """{bone type: model} of every ``.npz`` in ``folder`` (default: the bundled ones)."""
    folder = bundled_models_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        raise XreconInputError(f"shape model folder not found: {folder}")
    models = {path.stem: load_shape_model(path) for path in sorted(folder.glob("*.npz"))}
    if not models:
        raise XreconInputError(f"{folder} holds no shape models (.npz)")
    return dict(sorted(models.items(), key=lambda item: BONE_TYPES.index(item[0]) if item[0] in BONE_TYPES else 99))


def structure_bone_type(structure: str) -> tuple[str, str] | None:
    """(bone type, side) of a structure name (``vertebrae_L3`` → vertebra, ``hip_left`` → hip, left); None if no model fits."""
    if structure.startswith("vertebrae_") and not structure.endswith("S1"):
        return "vertebra", "midline"
    if structure == "sacrum":
        return "sacrum", "midline"
    for bone in ("hip", "femur"):
        for side in ("left", "right"):
            if structure == f"{bone}_{side}":
                return bone, side
    return None
