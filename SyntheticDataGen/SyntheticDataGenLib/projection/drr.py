"""Digitally reconstructed radiographs: line integrals of attenuation through a CT.

The model is DiffDRR's and DeepDRR's: the CT is the trilinear interpolant of its voxels, and a
pixel's value is the integral of μ along the ray from the source to the pixel centre,
Σ μ·Δl (dimensionless). :func:`.detector.intensity_from_line_integral` turns it into
the radiograph-like exp(−integral).
Rays are sampled where they cross the CT's slices (:mod:`.slice_sampler`): one sample per slice,
or per slab of a few averaged slices where the rays run nearly along the slice axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .geometry import ProjectionGeometry
from .slice_sampler import SliceRays, SliceStacks, in_plane_shift_per_slice, plan_rays, sample_slices

_MAX_MERGE = 4  # slabs thicker than this gain little and blur what the ray passes


def render_drr(mu_kji: torch.Tensor | SliceStacks, ijk_to_ras: np.ndarray,
               geometries: ProjectionGeometry | Sequence[ProjectionGeometry],
               max_slab_shift_voxels: float = 1.0, slices_per_chunk: int = 4) -> torch.Tensor:
    """Line integrals Σ μ·Δl for one geometry or a batch of them.

    Args:
        mu_kji: (K, J, I) linear attenuation in 1/mm (see :func:`.attenuation.hu_to_mu`) on the
            device to render on, or ``SliceStacks`` of its (1, K, J, I) form to re-use across calls.
        ijk_to_ras: 4×4 voxel index (i, j, k) -> RAS mm of the volume.
        geometries: one geometry or several of the same detector size.
        max_slab_shift_voxels: where rays run nearly along the slice axis, neighbouring slices are
            averaged into slabs (2 or 4) as long as no ray moves more than this many voxels
            sideways within a slab; 0 samples every slice. Averaging keeps the sum along the axis
            and the sideways moves are symmetric about the slab centre, so the error is second
            order (about 2e-4 relative L2 on a chest CT at the default).
        slices_per_chunk: slices sampled per step; small chunks keep the work in the CPU's cache.

    Returns:
        (B, H, W) float32 line integrals on the volume's device (B = 1 for a single geometry).

    Raises XreconInputError when a geometry puts the source inside the CT, faces away from it
    or has the CT's centre beyond the detector.
    """
    stacks = mu_kji if isinstance(mu_kji, SliceStacks) else SliceStacks(mu_kji.to(torch.float32)[None])
    return render_line_integrals(stacks, ijk_to_ras, geometries, max_slab_shift_voxels, slices_per_chunk)[:, 0]


def render_line_integrals(stacks: SliceStacks, ijk_to_ras: np.ndarray,
                          geometries: ProjectionGeometry | Sequence[ProjectionGeometry],
                          max_slab_shift_voxels: float = 1.0, slices_per_chunk: int = 4) -> torch.Tensor:
    """Line integrals of every channel of a (C, K, J, I) volume: (B, C, H, W). See :func:`render_drr`."""
    device = stacks.volume.device
    channels = stacks.volume.shape[0]
    if isinstance(geometries, ProjectionGeometry):
        geometries = [geometries]
    sizes = {g.size_px for g in geometries}
    if len(sizes) != 1:
        raise ValueError(f"all geometries of a batch need the same detector size, got {sorted(sizes)}")
    width, height = sizes.pop()
    for geometry in geometries:
        geometry.check_against_volume(ijk_to_ras, stacks.size_ijk)
    result = torch.empty((len(geometries), channels, height * width), dtype=torch.float32, device=device)
    groups: dict[tuple[int, int], list[tuple[int, SliceRays]]] = {}
    for index, geometry in enumerate(geometries):
        rays = plan_rays(ijk_to_ras, [geometry], device=device)
        groups.setdefault((rays.axis, _slab_size(rays, stacks.size_ijk, max_slab_shift_voxels)), []).append((index, rays))
    for (axis, merge), members in groups.items():
        rays = SliceRays.concatenate([rays for _, rays in members])
        meeting = rays.meeting(stacks.size_ijk)  # rays that miss the CT stay 0 and cost nothing
        rays = rays.subset(meeting)
        slices, positions = stacks.along(axis, merge)
        total = torch.zeros((channels, len(rays.step_mm)), dtype=torch.float32, device=device)
        for _, samples in sample_slices(slices, positions, rays, slices_per_chunk):
            total += samples.sum(dim=0)
        line_integrals = torch.zeros((channels, len(meeting)), dtype=torch.float32, device=device)
        line_integrals[:, meeting] = total * (rays.step_mm * merge)
        result[[index for index, _ in members]] = line_integrals.view(channels, len(members), -1).transpose(0, 1)
    return result.view(len(geometries), channels, height, width)


def _slab_size(rays: SliceRays, size_ijk, max_shift_voxels: float) -> int:
    """How many slices one geometry's rays may sample as one averaged slab (1 = every slice).

    Slabs only where every ray crosses the whole volume (no clipping at the source or the
    detector) and no ray moves more than ``max_shift_voxels`` sideways within a slab.
    """
    if max_shift_voxels <= 0 or not rays.spans(-1.0, size_ijk[rays.axis]):
        return 1
    slabs = max(1, min(_MAX_MERGE, int(max_shift_voxels / max(in_plane_shift_per_slice(rays), 1e-6))))
    return 1 << (slabs.bit_length() - 1)  # 1, 2 or 4: few stacks to keep per axis


def restrict_to_structures(volume: torch.Tensor, masks_kji: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
    """A (..., K, J, I) volume inside the union of structure masks, 0 elsewhere: a bone-only image."""
    union = torch.zeros(volume.shape[-3:], dtype=torch.bool, device=volume.device)
    for mask in masks_kji:
        union |= torch.as_tensor(np.asarray(mask), device=volume.device).bool()
    return volume * union
