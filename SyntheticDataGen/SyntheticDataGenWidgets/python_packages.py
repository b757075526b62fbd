"""PyTorch and other Python packages, installed into Slicer's Python when first needed.

Never at import time, and never over Slicer's own numpy, VTK or SimpleITK: PyTorch comes from
the PyTorch extension (which picks the build for the GPU), the rest from pip after asking.
"""

import importlib.util

import slicer
from slicer.i18n import tr as _


class TorchUnavailableError(RuntimeError):
    """PyTorch is not installed in Slicer and was not installed now."""


def ensureTorch(purpose: str = "The DRR preview"):
    """Import PyTorch, installing it through the PyTorch extension (asking the user) if missing.

    Raises TorchUnavailableError when the PyTorch extension is missing or the user declines.
    """
    try:
        import torch

        return torch
    except ImportError:
        pass
    try:
        import PyTorchUtils
    except ImportError:
        raise TorchUnavailableError(
            f"{purpose} needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, "
            "restart Slicer and try again.") from None
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=">=2.2")
    if torch is None:
        raise TorchUnavailableError(f"{purpose} needs PyTorch, which was not installed.")
    return torch


def ensurePackages(requirements: dict, purpose: str, askConfirmation: bool = True) -> None:
    """PyTorch first (so that pip does not fetch another one for MONAI), then ``requirements``
    ({import name: pip requirement}) that are missing, asking the user before installing anything.
    Raises RuntimeError when they stay missing."""
    ensureTorch(purpose)
    missing = [requirement for name, requirement in requirements.items() if importlib.util.find_spec(name) is None]
    if not missing:
        return
    if askConfirmation and not slicer.util.confirmOkCancelDisplay(
            _("{purpose} needs these Python packages: {packages}. Install them now?").format(
                purpose=purpose, packages=", ".join(missing))):
        raise RuntimeError(f"{purpose} needs the Python packages {', '.join(missing)}")
    slicer.util.pip_install(" ".join(missing))
