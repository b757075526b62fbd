"""The ``xrecon generate`` command line that the SyntheticDataGen module runs, and its environment.

The arguments are a list handed to the process as they are (no shell, nothing quoted), so a
path or a structure name with spaces or quotes reaches the generator unchanged. Which folders
hold the Lib packages is the caller's business (Slicer knows where its modules live); here they
only become PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..augmentation.ladder import PRESETS as AUGMENTATION_PRESETS
from ..errors import XreconInputError
from .generation_inputs import GenerationInputs
from ..projection.geometry import PRESETS as VIEW_PRESETS


def as_pair(value, kind: type = float) -> tuple:
    """``(value, value)`` for one number, else the two entries of ``value``, each cast to ``kind``.

    Detector size (px) and pixel spacing (mm) are given either way: one number means square.
    """
    if isinstance(value, (int, float)) or (hasattr(value, "__float__") and not hasattr(value, "__len__")):
        return (kind(value), kind(value))
    values = tuple(kind(entry) for entry in value)
    if len(values) != 2:
        raise XreconInputError(f"expected one number or two, got {len(values)}: {values}")
    return values


@dataclass(frozen=True)
class GenerationOptions:
    """What the module's GUI sets for ``xrecon generate``: the base view, the set's size and how
    strongly each group of the augmentation preset is applied.

    Angles in degrees (LAO and cranial positive), distances in mm; ``detector_size_px`` and
    ``pixel_spacing_mm`` are one number (square) or (width, height) / (su, sv); each
    ``<group>_strength`` scales that group of the preset (0 off, 1 as the preset has it, at most
    10), as ``xrecon generate --<group>`` does.
    """

    views: int = 100
    seed: int = 0
    augmentation_preset: str = "light"
    preset: str = "ap"
    lao_deg: float = 0.0
    cranial_deg: float = 0.0
    source_to_isocenter_mm: float = 900.0
    source_to_detector_mm: float = 1100.0
    detector_size_px: int | Sequence[int] = 256
    pixel_spacing_mm: float | Sequence[float] = 1.6
    geometric_strength: float = 1.0
    physics_strength: float = 1.0
    style_strength: float = 1.0
    anatomy_strength: float = 1.0
    shape_strength: float = 1.0


#: The augmentation groups a strength scales (``xrecon generate --geometric`` ...).
STRENGTH_GROUPS = ("geometric", "physics", "style", "anatomy", "shape")


def generate_arguments(python: str, inputs: GenerationInputs, structures: Sequence[str], out_dir: str,
                       options: GenerationOptions = GenerationOptions()) -> list[str]:
    """``python -m SingleImageReconLib.cli generate ...`` for one exported case, as a list of strings.

    Floats are written with ``repr`` so the generator gets exactly the GUI's numbers. Raises
    XreconInputError for no structures, a structure name with a comma (``--structures`` splits
    on commas), an unknown preset or a strength the generator would refuse
    (``AugmentationConfig.scaled``).
    """
    structures = list(structures)
    if not structures:
        raise XreconInputError("Select at least one structure to generate")
    commas = [name for name in structures if "," in name]
    if commas:
        raise XreconInputError(f"Structure names must not contain commas: {', '.join(commas)}")
    if options.augmentation_preset not in AUGMENTATION_PRESETS:
        raise XreconInputError(f"Unknown augmentation preset {options.augmentation_preset!r}; "
                               f"choose one of {', '.join(AUGMENTATION_PRESETS)}")
    if options.preset not in VIEW_PRESETS:
        raise XreconInputError(f"Unknown view preset {options.preset!r}; choose one of {', '.join(VIEW_PRESETS)}")
    strengths = {group: float(getattr(options, f"{group}_strength")) for group in STRENGTH_GROUPS}
    AUGMENTATION_PRESETS[options.augmentation_preset].scaled(**strengths)  # the generator's own check, before it starts
    width, height = as_pair(options.detector_size_px, int)
    su, sv = as_pair(options.pixel_spacing_mm, float)
    return [
        str(python), "-m", "SingleImageReconLib.cli", "generate",
        "--ct", str(inputs.ct_path), "--labels", str(inputs.labels_path), "--labels-table", str(inputs.table_path),
        "--structures", ",".join(structures),
        "--out", str(out_dir), "--views", str(int(options.views)), "--seed", str(int(options.seed)),
        "--preset", options.augmentation_preset,
        "--geometry", options.preset, "--lao", repr(float(options.lao_deg)),
        "--cranial", repr(float(options.cranial_deg)),
        "--source-to-isocenter-mm", repr(float(options.source_to_isocenter_mm)),
        "--source-to-detector-mm", repr(float(options.source_to_detector_mm)),
        "--detector-size-px", str(width), str(height),
        "--pixel-spacing-mm", repr(su), repr(sv),
        *[text for group, value in strengths.items() for text in (f"--{group}", repr(value))],
        "--progress", "lines",
    ]


def module_python_paths(candidates: Iterable[str | os.PathLike]) -> list[str]:
    """The existing folders among ``candidates`` (each once, in order) for the generator's PYTHONPATH.

    Raises RuntimeError when none holds ``SingleImageReconLib/cli.py`` (the ``xrecon`` command).
    """
    candidates = [os.fspath(path) for path in candidates]
    result = []
    for path in candidates:
        if os.path.isdir(path) and path not in result:
            result.append(path)
    if not any(os.path.isfile(os.path.join(path, "SingleImageReconLib", "cli.py")) for path in result):
        raise RuntimeError("The SingleImageRecon module (which holds the xrecon command) was not found; "
                           f"looked in {', '.join(candidates)}")
    return result


def generation_environment(python_paths: Sequence[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with ``python_paths`` in front of PYTHONPATH,
    unbuffered UTF-8 output (progress lines arrive as they are printed)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(list(python_paths) + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def python_executable(executable: str = sys.executable,
                      which: Callable[[str], str | None] = shutil.which) -> str:
    """Slicer's Python launcher (PythonSlicer, which sets up Slicer's libraries), or ``executable``
    itself when that is a plain Python (outside Slicer).

    ``executable`` and ``which`` are this process's; tests pass others. Raises RuntimeError when
    neither is found (inside Slicer ``sys.executable`` is the Slicer application).
    """
    found = which("PythonSlicer")
    if found:
        return found
    candidate = os.path.join(os.path.dirname(executable), "PythonSlicer" + (".exe" if os.name == "nt" else ""))
    if os.path.isfile(candidate):
        return candidate
    if os.path.basename(executable).lower().startswith("python"):
        return executable
    raise RuntimeError("Slicer's Python launcher (PythonSlicer) was not found")
