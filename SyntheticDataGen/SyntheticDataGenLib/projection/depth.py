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
from .slice_sampler import SliceRays, SliceStacks, plan_rays, sample_points, sample_slices

_LEVEL = 0.5
_BISECTIONS = 10  # brackets one slice step wide: 2^-10 of a step is far below a voxel


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


@dataclass
class StructureBox:
    """A structure's mask cropped to its bounding box, ready for many views.

    Attributes:
        occupancy: (1, k, j, i) float32 mask of the box.
        ijk_to_ras: 4×4 voxel index of the box -> RAS mm.
        stacks: the box's slice stacks, made on first use.
    """

    occupancy: torch.Tensor
    ijk_to_ras: np.ndarray
    stacks: SliceStacks

    @classmethod
    def from_mask(cls, mask_kji: np.ndarray, ijk_to_ras: np.ndarray, device: torch.device | str = "cpu"
                  ) -> "StructureBox | None":
        """The box of a (K, J, I) boolean mask on a grid; None for an empty mask."""
        kji = np.nonzero(mask_kji)
        if not kji[0].size:
            return None
        low = [int(axis.min()) for axis in kji]
        high = [int(axis.max()) + 1 for axis in kji]
        crop = np.asarray(mask_kji[low[0]:high[0], low[1]:high[1], low[2]:high[2]], dtype=np.float32)
        shift = np.eye(4)
        shift[:3, 3] = [low[2], low[1], low[0]]  # (i, j, k) of the box's first voxel
        occupancy = torch.as_tensor(crop, device=device)[None]
        return cls(occupancy, ijk_to_ras @ shift, SliceStacks(occupancy))


def _pixels_reaching(box: StructureBox, geometry: ProjectionGeometry) -> np.ndarray:
    """(N, 2) integer (u, v) of the pixels whose rays can meet the box (its interpolant reaches 1 voxel out)."""
    size = np.array(box.stacks.size_ijk, dtype=np.float64)
    corners = np.array([[i, j, k] for i in (-1, size[0]) for j in (-1, size[1]) for k in (-1, size[2])])
    uv, _ = geometry.project(corners @ box.ijk_to_ras[:3, :3].T + box.ijk_to_ras[:3, 3])
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
    return render_box_depth(StructureBox.from_mask(mask_kji, ijk_to_ras, device), geometry, device)


def render_box_depth(box: StructureBox | None, geometry: ProjectionGeometry,
                     device: torch.device | str = "cpu") -> DepthMap:
    """:func:`render_depth` for a prepared box (None: an empty structure)."""
    height, width = geometry.height, geometry.width
    mask = torch.zeros(height * width, dtype=torch.bool, device=device)
    front = torch.zeros(height * width, dtype=torch.float32, device=device)
    back = torch.zeros(height * width, dtype=torch.float32, device=device)
    maps = DepthMap(mask.view(height, width), front.view(height, width), back.view(height, width))  # filled below
    if box is None:
        return maps
    pixels = _pixels_reaching(box, geometry)
    rays = plan_rays(box.ijk_to_ras, [geometry], pixels_uv=pixels.astype(np.float64), device=device)
    slices, positions = box.stacks.along(rays.axis)
    # beyond the box's first and last slices the occupancy is 0: brackets may reach there
    inside = torch.cat([sample[:, 0] >= _LEVEL for _, sample in sample_slices(slices, positions, rays, chunk=64)])
    hit = inside.any(dim=0)
    if not hit.any():
        return maps
    inside = inside[:, hit]
    rays = rays.subset(hit)
    first = inside.float().argmax(dim=0)
    last = inside.shape[0] - 1 - inside.flip(0).float().argmax(dim=0)
    along = rays.direction_index[:, rays.axis]
    t_first = (positions[first] - rays.source_index[:, rays.axis]) / along
    t_last = (positions[last] - rays.source_index[:, rays.axis]) / along
    # along the ray, slice indices run forwards or backwards: the front is the smaller t
    t_low_inside, t_high_inside = torch.minimum(t_first, t_last), torch.maximum(t_first, t_last)
    one_slice = 1.0 / along.abs()  # change of t between two slices
    both = SliceRays.concatenate([rays, rays])  # front and back crossings found in one pass
    t = _bisect(box.occupancy, both, torch.cat([t_low_inside - one_slice, t_high_inside + one_slice]),
                torch.cat([t_low_inside, t_high_inside]))
    t_front, t_back = t[: len(along)], t[len(along):]
    index = torch.as_tensor(pixels[:, 1] * width + pixels[:, 0], device=device)[hit]
    mask[index] = True
    front[index] = t_front * rays.length_mm
    back[index] = t_back * rays.length_mm
    return maps
