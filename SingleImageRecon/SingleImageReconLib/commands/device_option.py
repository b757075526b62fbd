"""The ``--device`` option shared by the subcommands that run torch: checked before any work starts."""

from __future__ import annotations

import re

from SyntheticDataGenLib.errors import XreconInputError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(device: str) -> None:
    """Refuse a device name torch does not know, or CUDA where this torch has none (XreconInputError)."""
    if not _DEVICE.match(device):
        raise XreconInputError(f"--device {device}: use cpu, cuda or cuda:N (auto where offered)")
    if not device.startswith("cuda"):
        return
    import torch  # only for a CUDA request: plain commands need not wait for it

    if not torch.cuda.is_available():
        raise XreconInputError(f"--device {device}: this torch has no CUDA device; use --device cpu")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise XreconInputError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
