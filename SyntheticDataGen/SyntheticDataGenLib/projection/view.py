"""One view of a case: its DRR and every structure's mask and depth maps, rendered together.

:class:`CaseVolume` holds what is worth preparing once per CT (the two attenuation basis volumes
as slice stacks, and the structure masks); :func:`render_view` renders one geometry from it, at
any energy and bone density, since the DRR is a weighted sum of two basis DRRs. The
``xrecon render`` and ``generate`` commands and the Slicer module all go through here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from .attenuation import DEFAULT_ENERGY_KEV, basis_volumes, mu_weights
from ..cases.ct_io import ijk_to_ras
from .depth import StructureBox, render_box_depth
from .drr import render_line_integrals, restrict_to_structures
from .geometry import ProjectionGeometry
from ..cases.labels import Segmentation
from .slice_sampler import SliceStacks


@dataclass
class CaseVolume:
    """A CT ready to render: its two attenuation basis volumes as slice stacks, and structure masks.

    Attributes:
        stacks: (2, K, J, I) basis volumes (see :func:`.attenuation.basis_volumes`) as slice stacks.
        ijk_to_ras: 4×4 voxel index -> RAS mm.
        boxes: structure name -> its mask cropped to its box, in the order targets are stacked.
    """

    stacks: SliceStacks
    ijk_to_ras: np.ndarray
    boxes: dict[str, StructureBox]

    @classmethod
    def from_ct(cls, ct: sitk.Image, segmentation: Segmentation | None = None, structures: list[str] | None = None,
                *, bone_only: bool = False, extend_body_mm: float = 0.0,
                device: torch.device | str = "cpu") -> "CaseVolume":
        """Prepare a CT (HU) and the named structures (None: every non-empty one; [] for none).

        ``bone_only`` keeps attenuation inside the structures only (a bone-only image).
        ``extend_body_mm`` continues the body beyond the scan's head and foot ends (see
        :func:`extend_along_body`); masks and depth targets are unaffected.
        """
        names = [] if segmentation is None or structures == [] else segmentation.select(structures)
        masks = {name: segmentation.mask_array(name) for name in names}
        basis = basis_volumes(torch.from_numpy(sitk.GetArrayFromImage(ct).astype(np.float32)).to(device))
        if bone_only:
            basis = restrict_to_structures(basis, list(masks.values()))
        matrix = ijk_to_ras(ct)
        boxes = {name: StructureBox.from_mask(mask, matrix, device) for name, mask in masks.items()}
        basis_matrix = matrix
        if extend_body_mm > 0:
            basis, basis_matrix = extend_along_body(basis, matrix, extend_body_mm)
        return cls(SliceStacks(basis), basis_matrix, boxes)

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        return self.stacks.size_ijk


def extend_along_body(volume: torch.Tensor, ijk_to_ras_matrix: np.ndarray, length_mm: float
                      ) -> tuple[torch.Tensor, np.ndarray]:
    """Continue a (C, K, J, I) volume past both ends of the body axis, fading out over ``length_mm``.

    A CT stops where the scan stopped, but the patient does not: without this a DRR shows the
    body cut off along a straight line, which no real radiograph does. The end slices are
    repeated with a linear fade to zero. Returns the longer volume and its voxel-to-RAS matrix.
    """
    axis = int(np.argmax(np.abs(ijk_to_ras_matrix[2, :3]) / np.linalg.norm(ijk_to_ras_matrix[:3, :3], axis=0)))
    spacing = float(np.linalg.norm(ijk_to_ras_matrix[:3, axis]))
    count = int(round(length_mm / spacing))
    if count < 1:
        return volume, ijk_to_ras_matrix
    dim = 3 - axis  # torch dimension of index axis i, j, k in (C, K, J, I)
    fade = torch.linspace(1.0, 0.0, count + 2, device=volume.device)[1:-1]
    shape = [1] * volume.ndim
    shape[dim] = count
    first = volume.narrow(dim, 0, 1) * fade.flip(0).view(shape)
    last = volume.narrow(dim, volume.shape[dim] - 1, 1) * fade.view(shape)
    shifted = ijk_to_ras_matrix.copy()
    shifted[:3, 3] -= count * ijk_to_ras_matrix[:3, axis]
    return torch.cat([first, volume, last], dim=dim), shifted


@dataclass
class View:
    """A rendered view; images are (H, W), target stacks (S, H, W) in ``names`` order.

    Attributes:
        line_integral: DRR Σ μ·Δl (dimensionless).
        names: structure names.
        masks: True where a pixel's ray hits the structure.
        front_mm, back_mm: distance from the source to the first entry / last exit (0 off the mask).
    """

    line_integral: torch.Tensor
    names: list[str]
    masks: torch.Tensor
    front_mm: torch.Tensor
    back_mm: torch.Tensor


def render_view(case: CaseVolume, geometry: ProjectionGeometry, *, model: str = "linear",
                energy_kev: float = DEFAULT_ENERGY_KEV, bone_density: float = 1.0) -> View:
    """DRR and all structures' masks and depth maps for one geometry (checked against the CT first).

    ``model``, ``energy_kev`` and ``bone_density`` choose the attenuation (see :mod:`.attenuation`).
    """
    weights = mu_weights(model=model, energy_kev=energy_kev, bone_density=bone_density)
    basis = render_line_integrals(case.stacks, case.ijk_to_ras, geometry)[0]
    line_integral = weights[0] * basis[0] + weights[1] * basis[1]
    device = case.stacks.volume.device
    depths = [render_box_depth(box, geometry, device) for box in case.boxes.values()]
    empty = torch.zeros((0, geometry.height, geometry.width), device=device)
    stack = lambda images: torch.stack(images) if images else empty  # noqa: E731
    return View(line_integral, list(case.boxes), stack([d.mask for d in depths]).bool(),
                stack([d.front_mm for d in depths]), stack([d.back_mm for d in depths]))
