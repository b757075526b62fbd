"""Sample a volume along many rays where they cross its slices (Joseph's method).

Every ray is sampled where it crosses each slice plane of the volume axis it runs most along.
On a slice plane the trilinear interpolant of the voxels equals the bilinear interpolant of that
slice, so each sample is an exact trilinear sample of the CT, and sampling a whole slice for all
rays is one coherent 2D ``grid_sample`` call: on a CPU that is tens of times faster than
scattered 3D trilinear look-ups. Consecutive samples of a ray are ``step_mm`` apart, at most
one voxel in every index direction.

The volume is the trilinear interpolant of its voxel values with zeros outside, so a sample
half a voxel beyond the last voxel centre gets half its value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import XreconInputError
from .geometry import ProjectionGeometry

@dataclass
class SliceRays:
    """Rays from a source through pixels, in the continuous voxel index (i, j, k) of a volume.

    Attributes:
        axis: index axis (0 = i, 1 = j, 2 = k) whose slices every ray crosses.
        source_index: (P, 3) source of each ray, continuous index.
        direction_index: (P, 3) pixel centre minus source, continuous index (ray parameter t in [0, 1]).
        step_mm: (P,) distance between the crossings of two consecutive slices.
        length_mm: (P,) distance from the source to the pixel centre.
    """

    axis: int
    source_index: torch.Tensor
    direction_index: torch.Tensor
    step_mm: torch.Tensor
    length_mm: torch.Tensor

    def parameter(self, slice_position: torch.Tensor) -> torch.Tensor:
        """Ray parameter t (0 at the source, 1 at the pixel) where each ray meets each slice: (S, P)."""
        return (slice_position[:, None] - self.source_index[:, self.axis]) / self.direction_index[:, self.axis]

    def point_index(self, t: torch.Tensor) -> torch.Tensor:
        """Continuous index of the points at parameters t (..., P) -> (..., P, 3)."""
        return self.source_index + t[..., None] * self.direction_index

    @staticmethod
    def concatenate(parts: Sequence["SliceRays"]) -> "SliceRays":
        """The rays of several plans of the same slice axis, in order."""
        return SliceRays(parts[0].axis, *(torch.cat([getattr(part, name) for part in parts]) for name in
                                          ("source_index", "direction_index", "step_mm", "length_mm")))

    def extent(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(P,) lowest and highest position along the slice axis of each source-to-pixel segment."""
        ends = torch.stack([self.source_index[:, self.axis],
                            self.source_index[:, self.axis] + self.direction_index[:, self.axis]])
        return ends.min(dim=0).values, ends.max(dim=0).values

    def spans(self, first: float, last: float) -> bool:
        """True when every ray's source-to-pixel segment covers the slice positions first..last."""
        lower, upper = self.extent()
        return bool(lower.max() < first and upper.min() > last)

    def subset(self, keep: torch.Tensor) -> "SliceRays":
        """The rays selected by a (P,) boolean mask or index tensor."""
        return SliceRays(self.axis, self.source_index[keep], self.direction_index[keep], self.step_mm[keep],
                         self.length_mm[keep])

    def meeting(self, size_ijk) -> torch.Tensor:
        """(P,) True for rays whose source-to-pixel segment meets the volume's interpolant.

        The interpolant of an (n_i, n_j, n_k) grid with zeros outside is non-zero only inside
        the open index box (-1, n) along each axis.
        """
        low = torch.full((3,), -1.0, device=self.source_index.device)
        high = torch.tensor(size_ijk, dtype=torch.float32, device=self.source_index.device)
        with torch.no_grad():
            inverse = 1.0 / self.direction_index  # ±inf along axes a ray does not move in
            t_a = (low - self.source_index) * inverse
            t_b = (high - self.source_index) * inverse
            t_a, t_b = torch.nan_to_num(t_a, nan=-torch.inf), torch.nan_to_num(t_b, nan=torch.inf)
            entry = torch.minimum(t_a, t_b).amax(dim=1).clamp(min=0.0)
            exit_ = torch.maximum(t_a, t_b).amin(dim=1).clamp(max=1.0)
        return entry < exit_


def plan_rays(ijk_to_ras: np.ndarray, geometries: Sequence[ProjectionGeometry],
              pixels_uv: np.ndarray | None = None, device: torch.device | str = "cpu") -> SliceRays:
    """Rays of all pixels of several geometries (or of the given (N, 2) pixels of each), pixel-major.

    All geometries must share the slice axis (the one the central rays run most along); the
    renderer groups them by axis before calling this.
    """
    ras_to_ijk = np.linalg.inv(ijk_to_ras)
    sources, directions = [], []
    for geometry in geometries:
        if pixels_uv is None:
            centres = geometry.pixel_centers_ras().reshape(-1, 3)
        else:
            centres = geometry.pixel_center_ras(pixels_uv[:, 0], pixels_uv[:, 1])
        source = ras_to_ijk[:3, :3] @ geometry.source_ras_mm + ras_to_ijk[:3, 3]
        sources.append(np.broadcast_to(source, centres.shape))
        directions.append(centres @ ras_to_ijk[:3, :3].T + ras_to_ijk[:3, 3] - source)
    axis = slice_axis(ijk_to_ras, geometries[0])
    for direction in directions:  # each ray must cross the slices in its geometry's one direction
        if not (np.all(direction[:, axis] > 0) or np.all(direction[:, axis] < 0)):
            raise XreconInputError("the detector's field of view is too wide (a cone angle over 90 degrees)")
    source_index = np.concatenate(sources)
    direction_index = np.concatenate(directions)
    along = direction_index[:, axis]
    length_mm = np.linalg.norm(direction_index @ ijk_to_ras[:3, :3].T, axis=1)
    step_mm = length_mm / np.abs(along)
    as_tensor = lambda array: torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)  # noqa: E731
    return SliceRays(axis, as_tensor(source_index), as_tensor(direction_index), as_tensor(step_mm),
                     as_tensor(length_mm))


def slice_axis(ijk_to_ras: np.ndarray, geometry: ProjectionGeometry) -> int:
    """The index axis that the central ray of a geometry crosses most slices of."""
    ras_to_ijk = np.linalg.inv(ijk_to_ras)
    central = ras_to_ijk[:3, :3] @ (geometry.detector_center_ras_mm - geometry.source_ras_mm)
    return int(np.argmax(np.abs(central)))


def as_slices(volume: torch.Tensor, axis: int) -> torch.Tensor:
    """(C, K, J, I) volume -> (N_axis, C, H, W) stack of slices across ``axis``.

    In a slice, W runs along the lower of the two remaining index axes and H along the higher.
    """
    order = {0: (3, 0, 1, 2), 1: (2, 0, 1, 3), 2: (1, 0, 2, 3)}[axis]
    return volume.permute(order).contiguous()


class SliceStacks:
    """A (C, K, J, I) volume and its slice stacks, each made on first use and kept.

    Rendering many views of one CT re-uses the stacks instead of re-ordering the volume each time.
    """

    def __init__(self, volume: torch.Tensor):
        self.volume = volume
        self._stacks: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        return (self.volume.shape[3], self.volume.shape[2], self.volume.shape[1])

    def along(self, axis: int, merge: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Slices across ``axis``, each the mean of ``merge`` neighbours, and their positions.

        Returns:
            (N, C, H, W) stack (see :func:`as_slices`) and (N,) float positions along the axis,
            in voxel index units: merged slab n stands at ``merge·n + (merge - 1)/2``. The
            volume is padded with zero slices to a whole number of slabs, so ``merge`` times the
            sum over slabs equals the sum over slices.
        """
        if (axis, merge) not in self._stacks:
            stack = as_slices(self.volume, axis)
            if merge > 1:
                padding = -stack.shape[0] % merge
                stack = torch.cat([stack, stack.new_zeros((padding, *stack.shape[1:]))])
                stack = stack.view(-1, merge, *stack.shape[1:]).mean(dim=1)
            positions = torch.arange(stack.shape[0], dtype=torch.float32, device=stack.device) * merge + (merge - 1) / 2
            self._stacks[(axis, merge)] = (stack, positions)
        return self._stacks[(axis, merge)]


def sample_slices(slices: torch.Tensor, positions: torch.Tensor, rays: SliceRays,
                  chunk: int = 4) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Samples of every ray on each slice, a chunk of slices at a time.

    Only the part of each ray between its source and its pixel counts: samples outside it are 0
    (they matter where a CT's air corners reach past the detector plane or behind the source).

    Args:
        slices: (N, C, H, W) from :func:`as_slices` or :meth:`SliceStacks.along`.
        positions: (N,) where each slice stands along ``rays.axis``, in voxel index units.
    Yields:
        (positions (S,), samples (S, C, P)).
    """
    axis = rays.axis
    low, high = sorted({0, 1, 2} - {axis})  # W follows `low`, H follows `high`
    height, width = slices.shape[2], slices.shape[3]
    # grid_sample's normalised coordinates (align_corners=True): -1 at index 0, +1 at index n-1
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=slices.device)
    per_slice = rays.direction_index[:, [low, high]] / rays.direction_index[:, axis:axis + 1] * scale
    start = rays.source_index[:, [low, high]] * scale - 1.0 - rays.source_index[:, axis:axis + 1] * per_slice
    # slice positions strictly between each ray's source (t = 0) and pixel (t = 1)
    lower, upper = rays.extent()
    clip = not rays.spans(float(positions.min()), float(positions.max()))
    for begin in range(0, len(positions), chunk):
        position = positions[begin:begin + chunk]
        grid = torch.addcmul(start, position[:, None, None], per_slice)  # (S, P, 2)
        if clip:
            outside = (position[:, None] <= lower) | (position[:, None] >= upper)
            grid.masked_fill_(outside[..., None], -4.0)  # far outside the slice: zero-padded
        samples = F.grid_sample(slices[begin:begin + len(position)], grid[:, None], mode="bilinear",
                                padding_mode="zeros", align_corners=True)
        yield position, samples[:, :, 0, :]


def in_plane_shift_per_slice(rays: SliceRays) -> float:
    """The largest in-plane move (voxels) of any ray from one slice to the next."""
    other = [axis for axis in range(3) if axis != rays.axis]
    return float((rays.direction_index[:, other] / rays.direction_index[:, rays.axis:rays.axis + 1]).abs().max())


def sample_points(volume: torch.Tensor, points_index: torch.Tensor) -> torch.Tensor:
    """Trilinear samples (C, N) of a (C, K, J, I) volume at (N, 3) continuous (i, j, k) indices."""
    sizes = torch.tensor([volume.shape[3], volume.shape[2], volume.shape[1]], device=volume.device,
                         dtype=torch.float32)
    grid = points_index / (sizes - 1).clamp(min=1) * 2.0 - 1.0
    samples = F.grid_sample(volume[None], grid[None, None, None], mode="bilinear", padding_mode="zeros",
                            align_corners=True)
    return samples[0, :, 0, 0, :]
