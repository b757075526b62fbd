"""Render our attenuation volume and projection geometry with DiffDRR 0.6.1, for benchmarks.

DiffDRR (https://github.com/eigenvivek/DiffDRR) is the peer renderer that ``xrecon bench drr
--vs diffdrr`` and ``Testing/benchmarks/`` compare against. It is an optional dependency
(``pip install '.[bench]'``, in a separate environment: it pulls a CUDA build of PyTorch and
many packages); nothing in the product imports this module.

How our geometry maps onto DiffDRR's camera (read from DiffDRR 0.6.1's ``detector.py``,
``drr.py``, ``renderers.py``):

* DiffDRR's camera frame has the source at the origin and the detector plane at z = sdd. The
  pixel in row r, column c of its [H, W] image has its centre at
  ``(x0 + delx·s_c, y0 + dely·((H − 1)/2 − r), sdd)`` with ``s_c = (W − 1)/2 − c`` when
  ``reverse_x_axis`` (the default) and ``c − (W − 1)/2`` otherwise. Rows run towards −y.
* ``drr(pose)`` with a ``RigidTransform`` maps camera to world by ``pose`` after the subject's
  ``reorient`` (we use the identity: ``orientation=None``). The volume's voxel→world matrix
  is the torchio image affine (voxel (i, j, k) centre at the affine of (i, j, k), as
  ``voxel_shift=0.5`` with ``align_corners=False`` makes grid_sample use it).
* Ours: centre(u, v) = O + u·su·U + v·sv·V. With N the beam direction, P = S + sdd·N the
  foot of the source on the detector, a = (O − P)·U and b = (O − P)·V, we set
  delx = su, dely = sv, camera y = −V, camera z = N, and
  - if U × V = N: camera x = −U, ``reverse_x_axis=True``, x0 = −a − su·(W − 1)/2;
  - if U × V = −N: camera x = +U, ``reverse_x_axis=False``, x0 = a + su·(W − 1)/2;
  y0 = −b − sv·(H − 1)/2. DiffDRR's row r is then our v and its column c our u.
* World coordinates are shifted so the volume centre is at the origin (DiffDRR keeps the
  affine and the rays in float32).

Units: DiffDRR starts each pixel with the ray length |target − source| (world units, mm) and
multiplies the sum of samples by the step in the ray parameter (trilinear: (α_max − α_min)/
(n_points − 1); Siddon: the parameter length of each voxel crossing), so both renderers return
Σ density·Δl in mm with no normalisation. We pass μ in 1/mm as ``density`` (not through
``diffdrr.data.read``, whose HU→density mapping rescales to [0, 1]), so the result is our
dimensionless line integral.

Sampling: the trilinear renderer takes ``n_points`` (default 500) equally spaced samples over
one ray-parameter interval shared by the whole batch (from the earliest entry to the latest
exit of any ray into the voxel box extended by half a voxel, one extra voxel on the far side),
with trilinear interpolation and zero padding outside the grid (grid_sample ``padding_mode=
'zeros'``) — the same field as our renderer. The Siddon renderer integrates the nearest-voxel
(piecewise constant) field exactly.
"""

from __future__ import annotations

import numpy as np

from .geometry import ProjectionGeometry

_INSTALL_HINT = ("DiffDRR is not installed; it is only needed for benchmarks: "
                 "pip install '.[bench]' in a separate environment (it pulls a CUDA build of PyTorch)")


def diffdrr_camera(geometry: ProjectionGeometry, world_offset_ras_mm=(0.0, 0.0, 0.0)) -> dict:
    """DiffDRR 0.6.1 intrinsics and camera-to-world pose (4×4) for one of our geometries.

    ``world_offset_ras_mm`` is subtracted from RAS positions (DiffDRR's world = RAS − offset).
    Returns a dict with ``sdd``, ``height``, ``width``, ``delx``, ``dely``, ``x0``, ``y0``
    (mm), ``reverse_x_axis`` and ``pose`` (4×4 numpy, camera → world, mm).
    """
    offset = np.asarray(world_offset_ras_mm, dtype=np.float64)
    u_axis, v_axis = geometry.detector_u_ras, geometry.detector_v_ras
    beam = geometry.beam_direction_ras
    sdd = geometry.source_to_detector_mm
    su, sv = (float(s) for s in geometry.pixel_spacing_mm)
    width, height = geometry.width, geometry.height
    foot = geometry.source_ras_mm + sdd * beam
    a = float((geometry.detector_origin_ras_mm - foot) @ u_axis)
    b = float((geometry.detector_origin_ras_mm - foot) @ v_axis)
    right_handed = float(np.cross(u_axis, v_axis) @ beam) > 0
    if right_handed:
        x_axis, reverse_x_axis, x0 = -u_axis, True, -a - su * (width - 1) / 2
    else:
        x_axis, reverse_x_axis, x0 = u_axis, False, a + su * (width - 1) / 2
    y0 = -b - sv * (height - 1) / 2
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x_axis, -v_axis, beam
    pose[:3, 3] = geometry.source_ras_mm - offset
    return {"sdd": float(sdd), "height": int(height), "width": int(width), "delx": su, "dely": sv,
            "x0": float(x0), "y0": float(y0), "reverse_x_axis": reverse_x_axis, "pose": pose}


def build_diffdrr(mu_kji: np.ndarray, ijk_to_ras: np.ndarray, geometry: ProjectionGeometry,
                  renderer: str = "trilinear", device: str = "cpu", patch_size: int | None = None):
    """A DiffDRR ``DRR`` module and the pose that renders ``geometry``: ``drr(pose)`` → [1, 1, H, W].

    Building is separate from rendering so that benchmarks can time ``drr(pose, **kwargs)``
    alone. ``mu_kji`` is μ (1/mm) indexed [k, j, i]; ``ijk_to_ras`` maps voxel (i, j, k) to RAS mm.
    """
    try:
        import torch
        from diffdrr.drr import DRR
        from diffdrr.pose import RigidTransform
        from torchio import ScalarImage, Subject
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})") from error

    mu = np.asarray(mu_kji, dtype=np.float32)
    matrix = np.asarray(ijk_to_ras, dtype=np.float64)
    size_ijk = np.array(mu.shape[::-1], dtype=np.float64)
    centre = matrix[:3, :3] @ ((size_ijk - 1) / 2) + matrix[:3, 3]
    affine = matrix.copy()
    affine[:3, 3] -= centre
    density = ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(mu.transpose(2, 1, 0)))[None],
                          affine=affine)
    subject = Subject(volume=density, density=density, mask=None, orientation=None,
                      reorient=torch.eye(4, dtype=torch.float32), fiducials=None)
    camera = diffdrr_camera(geometry, centre)
    drr = DRR(subject, sdd=camera["sdd"], height=camera["height"], width=camera["width"],
              delx=camera["delx"], dely=camera["dely"], x0=camera["x0"], y0=camera["y0"],
              reverse_x_axis=camera["reverse_x_axis"], renderer=renderer, patch_size=patch_size,
              voxel_shift=0.5).to(device)
    pose = RigidTransform(torch.as_tensor(camera["pose"], dtype=torch.float32)[None].to(device))
    return drr, pose


def render_with_diffdrr(mu_kji: np.ndarray, ijk_to_ras: np.ndarray, geometry: ProjectionGeometry,
                        renderer: str = "trilinear", device: str = "cpu", patch_size: int | None = None,
                        **render_kwargs) -> np.ndarray:
    """Line integrals Σμ·Δl (dimensionless for μ in 1/mm) of our volume and geometry by DiffDRR.

    Args:
        mu_kji: attenuation (1/mm) indexed [k, j, i] (SimpleITK array order); passed to DiffDRR
            as its density unchanged (no HU mapping).
        ijk_to_ras: 4×4 voxel index (i, j, k) → RAS mm.
        geometry: our projection geometry (any pinhole geometry, not only presets).
        renderer: ``"trilinear"`` or ``"siddon"``.
        device: torch device for DiffDRR.
        patch_size: DiffDRR's option to render the image in patches (saves memory).
        **render_kwargs: passed to DiffDRR's renderer, e.g. ``n_points`` (trilinear; default 500).

    Returns:
        float64 array [height, width], indexed [v, u] like our images.
    """
    import torch  # after build_diffdrr has checked the imports

    drr, pose = build_diffdrr(mu_kji, ijk_to_ras, geometry, renderer=renderer, device=device,
                              patch_size=patch_size)
    with torch.no_grad():
        image = drr(pose, **render_kwargs)
    return image[0, 0].double().cpu().numpy()
