"""Dual-face depth maps and masks of bones: where each ray first enters and last leaves a structure.

A structure's surface is the 0.5 level of the trilinear interpolant of its binary mask (the
surface that marching cubes approximates). Each ray is sampled where it crosses the slices of
the structure's bounding box (:mod:`.slice_sampler`); the first and last samples inside bracket
the entry and exit, which bisection on the trilinear interpolant then pins down to a small
fraction of a voxel. Depths are in mm from the source along the ray; a ray that misses has
mask False and depth 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .geometry import ProjectionGeometry
from .slice_sampler import SliceRays, as_slices, plan_rays, sample_points, sample_slices

_LEVEL = 0.5
_BISECTIONS = 12  # brackets one slice step wide: 2^-12 of a step is far below a voxel


@dataclass
class DepthMap:
    """Front and back faces of one structure on the detector, each (H, W).

    Attributes:
        mask: True where the pixel's ray hits the structure.
        front_mm: distance from the source to the first entry (0 where mask is False).
        back_mm: distance from the source to the last exit (0 where mask is False).
    """

    mask: torch.Tensor
    front_mm: torch.Tensor
    back_mm: torch.Tensor


def _crop(mask_kji: np.ndarray, ijk_to_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The structure's bounding box and the voxel-to-RAS matrix of that box."""
    kji = np.nonzero(mask_kji)
    low = [int(axis.min()) for axis in kji]
    high = [int(axis.max()) + 1 for axis in kji]
    crop = mask_kji[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    shift = np.eye(4)
    shift[:3, 3] = [low[2], low[1], low[0]]  # (i, j, k) of the box's first voxel
    return crop, ijk_to_ras @ shift


def _pixels_reaching(box_ijk_to_ras: np.ndarray, shape_kji, geometry: ProjectionGeometry) -> np.ndarray:
    """(N, 2) integer (u, v) of the pixels whose rays can meet the box (its interpolant reaches 1 voxel out)."""
    size = np.array(shape_kji[::-1], dtype=np.float64)
    corners = np.array([[i, j, k] for i in (-1, size[0]) for j in (-1, size[1]) for k in (-1, size[2])])
    uv, _ = geometry.project(corners @ box_ijk_to_ras[:3, :3].T + box_ijk_to_ras[:3, 3])
    low = np.clip(np.floor(np.nanmin(uv, axis=0)), 0, [geometry.width - 1, geometry.height - 1]).astype(int)
    high = np.clip(np.ceil(np.nanmax(uv, axis=0)), 0, [geometry.width - 1, geometry.height - 1]).astype(int)
    v, u = np.mgrid[low[1]:high[1] + 1, low[0]:high[0] + 1]
    return np.stack([u.ravel(), v.ravel()], axis=1)


def _bisect(volume: torch.Tensor, rays: SliceRays, t_outside: torch.Tensor, t_inside: torch.Tensor) -> torch.Tensor:
    """Ray parameter where the interpolant crosses the level, between a point outside and one inside."""
    for _ in range(_BISECTIONS):
        t_middle = (t_outside + t_inside) / 2
        inside = sample_points(volume, rays.point_index(t_middle))[0] >= _LEVEL
        t_inside = torch.where(inside, t_middle, t_inside)
        t_outside = torch.where(inside, t_outside, t_middle)
    return (t_outside + t_inside) / 2


def render_depth(mask_kji: np.ndarray, ijk_to_ras: np.ndarray, geometry: ProjectionGeometry,
                 device: torch.device | str = "cpu") -> DepthMap:
    """Mask and front/back depth maps (H, W) of one structure for one geometry.

    Args:
        mask_kji: (K, J, I) boolean mask of the structure on the CT grid.
        ijk_to_ras: 4×4 voxel index (i, j, k) -> RAS mm of that grid.
        geometry: the projection; call ``geometry.check_against_volume`` first for user input.
    """
    height, width = geometry.height, geometry.width
    mask = torch.zeros(height * width, dtype=torch.bool, device=device)
    front = torch.zeros(height * width, dtype=torch.float32, device=device)
    back = torch.zeros(height * width, dtype=torch.float32, device=device)
    if not np.any(mask_kji):
        return DepthMap(mask.view(height, width), front.view(height, width), back.view(height, width))
    crop, box_to_ras = _crop(np.asarray(mask_kji, dtype=bool), ijk_to_ras)
    pixels = _pixels_reaching(box_to_ras, crop.shape, geometry)
    volume = torch.as_tensor(crop, dtype=torch.float32, device=device)[None]
    rays = plan_rays(box_to_ras, [geometry], pixels_uv=pixels.astype(np.float64), device=device)
    slices = as_slices(volume, rays.axis)
    # slices -1 and n are zero planes just outside the box: brackets may start or end there
    positions, samples = [], []
    slice_positions = torch.arange(slices.shape[0], dtype=torch.float32, device=device)
    for position, sample in sample_slices(slices, slice_positions, rays, chunk=64):
        positions.append(position)
        samples.append(sample[:, 0] >= _LEVEL)
    inside = torch.cat(samples)  # (S, P)
    position = torch.cat(positions)
    hit = inside.any(dim=0)
    if not hit.any():
        return DepthMap(mask.view(height, width), front.view(height, width), back.view(height, width))
    inside = inside[:, hit]
    rays = rays.subset(hit)
    first = inside.float().argmax(dim=0)
    last = inside.shape[0] - 1 - inside.flip(0).float().argmax(dim=0)
    # along the ray, slice indices run forwards or backwards: the front is the smaller t
    t_first = rays.parameter(position)[first, torch.arange(first.numel(), device=device)]
    t_last = rays.parameter(position)[last, torch.arange(last.numel(), device=device)]
    t_low_inside, t_high_inside = torch.minimum(t_first, t_last), torch.maximum(t_first, t_last)
    one_slice = 1.0 / rays.direction_index[:, rays.axis].abs()  # change of t between two slices
    t_front = _bisect(volume, rays, t_low_inside - one_slice, t_low_inside)
    t_back = _bisect(volume, rays, t_high_inside + one_slice, t_high_inside)
    index = torch.as_tensor(pixels[:, 1] * width + pixels[:, 0], device=device)[hit]
    mask[index] = True
    front[index] = t_front * rays.length_mm
    back[index] = t_back * rays.length_mm
    return DepthMap(mask.view(height, width), front.view(height, width), back.view(height, width))
