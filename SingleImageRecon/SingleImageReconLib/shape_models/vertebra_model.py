"""The vertebra shape model, built from every whole labelled vertebra the project has.

Each vertebra label that does not touch its volume's edge (a cut vertebra would teach the model
cut shapes) becomes a surface. One template (a well-resolved vertebra, decimated) is carried onto
every instance (:mod:`.correspondence`); the corresponded shapes are aligned (rigid Procrustes)
and their mean becomes the template of a second pass, which removes most of the first
template's bias. PCA of the second pass gives the sample model, which is then widened by a
smooth Gaussian-kernel deformation (:func:`.pca.widen_with_smooth_kernel`), because some twenty
vertebrae of a few patients span too few directions to fit a new patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SyntheticDataGenLib.errors import XreconInputError

from ..reconstruction.surface import decimate, finish_surface
from ..meshes.triangle_mesh import TriangleMesh, as_mesh, polydata_from_arrays
from .anatomical_landmarks import vertebra_landmarks
from .bone_surface import bone_surface, touches_volume_edge
from .correspondence import register_template
from .pca import pca, widen_with_smooth_kernel
from .procrustes import generalized_procrustes
from .shape_model import ShapeModel

TEMPLATE_VERTICES = 1500
KERNEL_SD_MM = 1.5
KERNEL_WIDTH_MM = 12.0
MAX_MODES = 40


@dataclass(frozen=True)
class VertebraInstance:
    """One whole labelled vertebra: where it comes from, its surface and points covering it (RAS mm)."""

    case: str
    structure: str
    mesh: TriangleMesh
    surface_points_mm: np.ndarray


def whole_vertebrae(labels_path: Path, table_path: Path | None, case: str) -> tuple[list[VertebraInstance], list[str]]:
    """(whole vertebrae, names of those left out because the volume cuts them) of one label map."""
    from SyntheticDataGenLib.cases.ct_io import ijk_to_ras
    from SyntheticDataGenLib.cases.labels import read_segmentation

    segmentation = read_segmentation(labels_path, table_path)
    matrix = ijk_to_ras(segmentation.reference)
    instances, cut = [], []
    for name in segmentation.names:
        if not name.startswith("vertebrae_") or name.endswith("S1"):
            continue
        mask = segmentation.mask_array(name)
        if not mask.any():
            continue
        if touches_volume_edge(mask):
            cut.append(f"{case}/{name}")
            continue
        instances.append(VertebraInstance(case, name, *bone_surface(mask, matrix, name)))
    return instances, cut


def _template(instance: VertebraInstance) -> TriangleMesh:
    """A smooth surface of about TEMPLATE_VERTICES vertices through one instance."""
    surface = polydata_from_arrays(instance.mesh.points, instance.mesh.triangles)
    reduction = max(0.0, 1.0 - TEMPLATE_VERTICES / len(instance.mesh.points))
    return as_mesh(finish_surface(decimate(surface, reduction), smoothing_iterations=10, decimation=0.0), "template")


def build_vertebra_model(instances: list[VertebraInstance], template: str = "vertebrae_T12",
                         progress=None) -> ShapeModel:
    """The vertebra model of whole labelled vertebrae (see the module docstring).

    Args:
        instances: from :func:`whole_vertebrae`; at least three.
        template: the structure whose best-resolved instance (most surface points) starts the template.
        progress: optional callable(done, total) per registration.
    """
    if len(instances) < 3:
        raise XreconInputError(f"a vertebra model needs at least 3 whole vertebrae, got {len(instances)}")
    named = [i for i in instances if i.structure == template] or instances
    mesh = _template(max(named, key=lambda i: len(i.surface_points_mm)))
    vertices, triangles = mesh.points, mesh.triangles
    total = 2 * len(instances)
    for round_number in range(2):
        results = []
        for index, instance in enumerate(instances):
            results.append(register_template(vertices, instance.surface_points_mm, triangles=triangles))
            if progress:
                progress(round_number * len(instances) + index + 1, total)
        aligned = generalized_procrustes(np.stack([r.vertices_mm for r in results]))
        vertices = aligned.mean(axis=0)
    mean, modes, variances = pca(aligned)
    sample_sd = float(np.sqrt(variances.sum() / len(mean)))
    modes, variances = widen_with_smooth_kernel(mean, modes, variances, KERNEL_SD_MM, KERNEL_WIDTH_MM, MAX_MODES)
    provenance = {
        "source": "the project's whole labelled vertebrae (reference labels, see ../shared/data/README.md)",
        "licence": "as the source cases (MIT, Apache-2.0)",
        "built_by": "xrecon ssm build vertebra",
        "instances": [f"{i.case}/{i.structure}" for i in instances],
        "template": f"{template}, {len(vertices)} vertices; second pass from the first pass's mean",
        "correspondence_residual_mm": [round(r.residual_mm, 3) for r in results],
        "rigid_residual_mm": [round(r.rigid_residual_mm, 3) for r in results],
        "method": "similarity ICP, then smooth two-way non-rigid ICP (Gaussian kernel 12→2 mm); rigid "
                  "generalised Procrustes; PCA; widened by a Gaussian-kernel deformation model",
        "sample_sd_mm": sample_sd,
        "kernel": {"sd_mm": KERNEL_SD_MM, "width_mm": KERNEL_WIDTH_MM},
        "modes": int(len(variances)),
    }
    names, weights = vertebra_landmarks(mean, triangles)
    return ShapeModel("vertebra", "midline", mean, modes, variances, triangles, names, weights, provenance, aligned)
