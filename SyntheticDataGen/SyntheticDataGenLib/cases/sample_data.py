"""The sample cases bundled in ``Resources/SampleData`` (found by name, e.g. ``abdomen-pelvis``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import XreconInputError


def resources_dir() -> Path:
    """The extension's top-level ``Resources`` folder.

    ``XRECON_RESOURCES`` overrides it; otherwise it is found beside the source tree (an editable
    install or a Slicer build tree).
    """
    override = os.environ.get("XRECON_RESOURCES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "Resources"


@dataclass(frozen=True)
class SampleCase:
    """Files of one bundled case: CT, label map and its ``id,structure`` table."""

    name: str
    ct_path: Path
    labels_path: Path
    table_path: Path


def list_sample_cases() -> list[str]:
    """Names of the bundled cases, sorted."""
    folder = resources_dir() / "SampleData"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "ct.nii.gz").is_file())


def sample_case(name: str) -> SampleCase:
    """Look a bundled case up by name; an unknown name raises XreconInputError listing the names."""
    folder = resources_dir() / "SampleData" / name
    if name not in list_sample_cases():
        available = ", ".join(list_sample_cases()) or f"none (no sample data under {folder.parent})"
        raise XreconInputError(f"unknown sample case {name!r}; available: {available}")
    return SampleCase(name, folder / "ct.nii.gz", folder / "labels.nii.gz", folder / "labels.csv")
