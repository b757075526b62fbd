"""Brute-force reference DRR for tests: dense sampling along each pixel ray, in float64 numpy.

Deliberately independent of ``SyntheticDataGenLib.projection.drr`` (no shared code beyond the geometry
object): it is what the fast renderer is checked against.

The attenuation field is the trilinear interpolant of the voxel values with zero-valued voxels
all around the grid. Along each index axis of size n the field is therefore non-zero only for
continuous indices in (-1, n): it ramps linearly from 0 at -1 to the first voxel's value at 0,
and from the last voxel's value at n - 1 to 0 at n (``scipy.ndimage.map_coordinates(...,
order=1, mode='grid-constant', cval=0)`` semantics; note that scipy's ``mode='constant'`` is
*not* this: it returns ``cval`` for every point outside [0, n - 1]).

A pixel's line integral is ∫ μ dl along the segment from the source to the pixel centre, in mm
times μ's units (μ in 1/mm gives a dimensionless integral). The segment is clipped to the box
[-1, n] of each axis (slab method; outside it μ is exactly 0), and integrated with the midpoint
rule, step ≤ 0.1 × the smallest voxel spacing.
"""

from __future__ import annotations

import numpy as np

# Samples handled at once (memory ~ 20 doubles a sample).
_CHUNK_SAMPLES = 2_000_000


def _ray_box_interval(start: np.ndarray, direction: np.ndarray, low: np.ndarray,
                      high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameters t0 <= t1 (clipped to [0, 1]) where start + t·direction lies in the box.

    start, direction: (N, 3); low, high: (3,). Rays that miss have t1 <= t0.
    """
    t0 = np.zeros(len(start))
    t1 = np.ones(len(start))
    for axis in range(3):
        d = direction[:, axis]
        s = start[:, axis]
        parallel = np.abs(d) < 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (low[axis] - s) / d
            b = (high[axis] - s) / d
        near = np.where(parallel, -np.inf, np.minimum(a, b))
        far = np.where(parallel, np.inf, np.maximum(a, b))
        outside = parallel & ((s <= low[axis]) | (s >= high[axis]))
        near = np.where(outside, np.inf, near)
        t0 = np.maximum(t0, near)
        t1 = np.minimum(t1, far)
    return t0, t1


def _trilinear_zero_padded(padded: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of ``padded`` ([K+2, J+2, I+2], zero border) at voxel indices.

    ijk: (M, 3) continuous (i, j, k) indices of the *unpadded* grid.
    """
    shape_kji = np.array(padded.shape)
    size_ijk = shape_kji[::-1]  # padded sizes along i, j, k
    position = ijk + 1.0  # index into the padded grid
    base = np.floor(position)
    base = np.clip(base, 0, size_ijk - 2)
    frac = position - base
    base = base.astype(np.int64)
    stride_i, stride_j, stride_k = 1, size_ijk[0], size_ijk[0] * size_ijk[1]
    flat = padded.reshape(-1)
    index0 = base[:, 0] * stride_i + base[:, 1] * stride_j + base[:, 2] * stride_k
    fi, fj, fk = frac[:, 0], frac[:, 1], frac[:, 2]
    result = np.zeros(len(ijk))
    for di, wi in ((0, 1.0 - fi), (1, fi)):
        for dj, wj in ((0, 1.0 - fj), (1, fj)):
            wij = wi * wj
            for dk, wk in ((0, 1.0 - fk), (1, fk)):
                offset = di * stride_i + dj * stride_j + dk * stride_k
                result += wij * wk * flat[index0 + offset]
    return result


def reference_line_integrals(mu_kji: np.ndarray, ijk_to_ras: np.ndarray, geometry,
                             pixels_uv: np.ndarray | None = None,
                             max_step_voxels: float = 0.1) -> np.ndarray:
    """Line integrals ∫ μ dl (mm × μ's units) from the source to pixel centres, by brute force.

    Args:
        mu_kji: attenuation volume indexed [k, j, i] (SimpleITK array order), e.g. 1/mm.
        ijk_to_ras: 4×4 matrix from voxel index (i, j, k) to RAS mm (any affine, not only
            diagonal).
        geometry: a ``ProjectionGeometry``.
        pixels_uv: optional (N, 2) detector coordinates (u, v) in pixels (need not be whole
            numbers); default every pixel.
        max_step_voxels: sample step as a fraction of the smallest voxel spacing (≤ 0.1).

    Returns:
        float64 array [height, width] (indexed [v, u]) when ``pixels_uv`` is None, else [N].
    """
    mu = np.asarray(mu_kji, dtype=np.float64)
    if mu.ndim != 3:
        raise ValueError(f"mu_kji must be 3D, got shape {mu.shape}")
    matrix = np.asarray(ijk_to_ras, dtype=np.float64)
    ras_to_ijk = np.linalg.inv(matrix)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    step_mm = max_step_voxels * float(spacing.min())

    if pixels_uv is None:
        v, u = np.meshgrid(np.arange(geometry.height), np.arange(geometry.width), indexing="ij")
        uv = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
        image_shape = (geometry.height, geometry.width)
    else:
        uv = np.asarray(pixels_uv, dtype=np.float64).reshape(-1, 2)
        image_shape = None

    source_ras = np.asarray(geometry.source_ras_mm, dtype=np.float64)
    targets_ras = geometry.pixel_center_ras(uv[:, 0], uv[:, 1]).reshape(-1, 3)
    length_mm = np.linalg.norm(targets_ras - source_ras, axis=1)
    source_ijk = ras_to_ijk[:3, :3] @ source_ras + ras_to_ijk[:3, 3]
    targets_ijk = targets_ras @ ras_to_ijk[:3, :3].T + ras_to_ijk[:3, 3]
    direction_ijk = targets_ijk - source_ijk
    starts = np.broadcast_to(source_ijk, direction_ijk.shape)

    size_ijk = np.array(mu.shape[::-1], dtype=np.float64)
    t0, t1 = _ray_box_interval(starts, direction_ijk, np.full(3, -1.0), size_ijk)
    inside_mm = np.clip(t1 - t0, 0.0, None) * length_mm
    n_samples = np.where(inside_mm > 0, np.ceil(inside_mm / step_mm), 0).astype(np.int64)

    padded = np.pad(mu, 1)
    result = np.zeros(len(uv))
    order = np.flatnonzero(n_samples)
    start = 0
    while start < len(order):
        # take rays until the chunk holds about _CHUNK_SAMPLES samples (at least one ray)
        counts = n_samples[order[start:]]
        stop = start + max(1, int(np.searchsorted(np.cumsum(counts), _CHUNK_SAMPLES, side="right")))
        rays = order[start:stop]
        counts = n_samples[rays]
        ray_of_sample = np.repeat(np.arange(len(rays)), counts)
        first = np.cumsum(counts) - counts
        m = np.arange(int(counts.sum())) - np.repeat(first, counts)
        dt = (t1[rays] - t0[rays]) / counts
        t = t0[rays][ray_of_sample] + (m + 0.5) * dt[ray_of_sample]
        points = source_ijk + t[:, None] * direction_ijk[rays][ray_of_sample]
        values = _trilinear_zero_padded(padded, points)
        sums = np.bincount(ray_of_sample, weights=values, minlength=len(rays))
        result[rays] = sums * dt * length_mm[rays]
        start = stop
    return result.reshape(image_shape) if image_shape is not None else result


def downsampled_geometry(geometry, factor: int):
    """The same detector area with ``factor``× fewer pixels a side (pixel pitch × factor).

    The new pixel centres sit at the centres of the original factor×factor blocks.
    """
    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

    su, sv = geometry.pixel_spacing_mm
    width, height = geometry.width // factor, geometry.height // factor
    origin = geometry.pixel_center_ras((factor - 1) / 2, (factor - 1) / 2)
    return ProjectionGeometry(geometry.source_ras_mm, origin, geometry.detector_u_ras,
                              geometry.detector_v_ras, (su * factor, sv * factor), (width, height),
                              extra=dict(geometry.extra))


__all__ = ["reference_line_integrals", "downsampled_geometry"]
