"""Will a job fit in memory? Estimates checked against the RAM free now, before any work.

Each estimate is bytes per unit of the job's size, measured with ``/usr/bin/time -v`` on the
sample cases (2026-12-02): peak resident memory grew by ~460 bytes per detector pixel for a
25-structure render (256² → 2048²), and by ~150 bytes per voxel of the registration grid for
``labels`` (6 mm → 3 mm). They are rounded up, so a refusal means the job would surely not fit.
"""

from __future__ import annotations

from .errors import XreconInputError

RENDER_BYTES_PER_PIXEL_AND_MAP = 8  # a float32 map and its intermediate, per pixel and per structure map
RENDER_BYTES_PER_PIXEL = 64  # the line integral, ray directions, sample positions
REGISTRATION_BYTES_PER_VOXEL = 200
CT_BYTES_PER_VOXEL = 16  # HU and labels, as read and as resampled for the renderer


def available_bytes() -> int | None:
    """Memory that can be had now without swapping (Linux's MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(needed_bytes: float, what: str, advice: str) -> None:
    """Raise XreconInputError when ``what`` needs more memory than is available now."""
    available = available_bytes()
    if available is not None and needed_bytes > available:
        raise XreconInputError(f"{what} needs about {needed_bytes / 2 ** 30:.1f} GiB of memory, but only "
                               f"{available / 2 ** 30:.1f} GiB are free; {advice}")


def render_bytes(width_px: int, height_px: int, structures: int, ct_voxels: int) -> float:
    """Peak memory of rendering one view: a DRR and a mask, front and back map per structure."""
    pixels = float(width_px) * float(height_px)
    return pixels * (RENDER_BYTES_PER_PIXEL + 3 * structures * RENDER_BYTES_PER_PIXEL_AND_MAP) \
        + float(ct_voxels) * CT_BYTES_PER_VOXEL


def registration_bytes(extent_mm, spacing_mm: float) -> float:
    """Peak memory of registering a CT of physical ``extent_mm`` (3 sides) on a grid of ``spacing_mm``."""
    voxels = 1.0
    for side in extent_mm:
        voxels *= max(float(side) / spacing_mm, 1.0)
    return voxels * REGISTRATION_BYTES_PER_VOXEL
