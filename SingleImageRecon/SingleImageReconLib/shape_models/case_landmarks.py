"""A labelled case's anatomical landmarks: each bone's model carried onto its labels.

For every structure that a model describes (vertebrae, sacrum, hip bones, femurs) and that the
scan holds whole, the model's mean (mirrored for the right side) is registered onto the bone's
labelled surface (:func:`.correspondence.register_template`) and the model's landmarks are read
off the registered vertices. A partial surface would pull the whole template out of shape, so a bone the scan cuts is registered from its scanned part only (the cap
that closes it at the scan's edge removed, only its points pulling on the template), and its
landmarks outside the scanned volume are written as undefined. Landmark labels are ``<structure>/<landmark>``, e.g.
``vertebrae_L3/spinous_process_tip``, which is what ``xrecon generate`` projects and mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SyntheticDataGenLib.errors import XreconInputError

from .bone_surface import bone_surface, touches_volume_edge
from .correspondence import register_template
from .model_files import structure_bone_type
from .shape_model import ShapeModel


@dataclass(frozen=True)
class CaseLandmarks:
    """Landmarks of one case.

    Attributes:
        labels: ``<structure>/<landmark>`` for each point.
        points_ras_mm: (L, 3) RAS mm.
        residual_mm: {structure: symmetric mean distance of the registered template to the
            labelled surface} (for a cut bone, only the template's part inside the scan).
        left_out: {structure: why it has no landmarks}.
        cut: {structure the scan cuts: how many of its landmarks lie outside the scan (NaN)}.
    """

    labels: list[str]
    points_ras_mm: np.ndarray
    residual_mm: dict[str, float]
    left_out: dict[str, str]
    cut: dict[str, int]


@dataclass(frozen=True)
class RegisteredBone:
    """A bone's model mean registered onto its labelled surface.

    Attributes:
        structure: the label's name.
        model: the bone type's model, for the bone's side.
        vertices_mm: (N, 3) the registered template, RAS mm, in the model's vertex order.
        residual_mm: symmetric mean distance to the labelled surface (inside the scan).
        cut: True when the scan cuts the bone (only its scanned part pulled on the template).
    """

    structure: str
    model: ShapeModel
    vertices_mm: np.ndarray
    residual_mm: float
    cut: bool


def register_bones(segmentation, ijk_to_ras: np.ndarray, models: dict[str, ShapeModel], progress=None,
                   structures: list[str] | None = None, whole_only: bool = False
                   ) -> tuple[list[RegisteredBone], dict[str, str]]:
    """(registered bones, {structure: why it was left out}) of every bone of ``segmentation``
    (or of ``structures``) that one of ``models`` describes; ``whole_only`` leaves out the bones
    the scan cuts. ``progress(done, total, name)``."""
    registered, left_out = [], {}
    names = segmentation.names if structures is None else [name for name in structures if name in segmentation.names]
    wanted = [(name, structure_bone_type(name)) for name in names]
    wanted = [(name, kind) for name, kind in wanted if kind is not None and kind[0] in models]
    for done, (name, (bone, side)) in enumerate(wanted, start=1):
        mask = segmentation.mask_array(name)
        cut = touches_volume_edge(mask) if mask.any() else False
        model = models[bone].for_side(side)
        wanted_surface = mask.any() and not (cut and whole_only)
        surface_points = bone_surface(mask, ijk_to_ras, name)[1] if wanted_surface else np.zeros((0, 3))
        if cut:
            surface_points = surface_points[_inside(surface_points, ijk_to_ras, mask.shape, margin=1.0)]
        if not mask.any():
            left_out[name] = "empty label"
        elif cut and whole_only:
            left_out[name] = "cut by the scan"
        elif len(surface_points) < 200:
            left_out[name] = "too little of it inside the scan"
        else:
            seen = (lambda points: _inside(points, ijk_to_ras, mask.shape, margin=1.0)) if cut else None
            result = register_template(model.mean_mm, surface_points, seen=seen, triangles=model.triangles)
            registered.append(RegisteredBone(name, model, result.vertices_mm, result.residual_mm, cut))
        if progress:
            progress(done, len(wanted), name)
    return registered, left_out


def case_landmarks(segmentation, ijk_to_ras: np.ndarray, models: dict[str, ShapeModel], progress=None,
                   unplaced: tuple[str, ...] = ()) -> CaseLandmarks:
    """Landmarks of every bone in ``segmentation`` that one of ``models`` describes.

    ``unplaced`` names bones that the scan shows but that no registration can place: a fragment,
    or a shaft whose ends lie outside the scan, or a bone the labels do not hold although it may
    be in the field. They are not registered and all their landmarks are undefined (NaN), so
    that training counts them as present without teaching a position, instead of known absent.

    Raises:
        XreconInputError: an unplaced name that no model describes.
    """
    kinds = {name: structure_bone_type(name) for name in unplaced}
    unknown = [name for name, kind in kinds.items() if kind is None or kind[0] not in models]
    if unknown:
        raise XreconInputError(f"landmarks: no model describes {', '.join(unknown)} (--unplaced takes bone "
                               f"structures such as femur_left or vertebrae_L5)")
    placed = [name for name in segmentation.names if name not in unplaced]
    bones, left_out = register_bones(segmentation, ijk_to_ras, models, progress, structures=placed)
    labels, points, partly = [], [], {}
    for name, (bone, side) in kinds.items():
        names = models[bone].landmark_names
        labels += [f"{name}/{landmark}" for landmark in names]
        points.append(np.full((len(names), 3), np.nan))
    shape = segmentation.reference.GetSize()[::-1]
    for bone in bones:
        found = bone.model.landmarks(bone.vertices_mm)
        if bone.cut:
            found[~_inside(found, ijk_to_ras, shape, margin=0.0)] = np.nan
            partly[bone.structure] = int(np.isnan(found[:, 0]).sum())
        labels += [f"{bone.structure}/{landmark}" for landmark in bone.model.landmark_names]
        points.append(found)
    residuals = {bone.structure: bone.residual_mm for bone in bones}
    return CaseLandmarks(labels, np.concatenate(points) if points else np.zeros((0, 3)), residuals, left_out, partly)


def _inside(points_ras: np.ndarray, ijk_to_ras: np.ndarray, shape_kji: tuple[int, int, int], margin: float
            ) -> np.ndarray:
    """True for RAS points at least ``margin`` voxels inside the volume (voxel centres span it)."""
    ijk = (np.c_[points_ras, np.ones(len(points_ras))] @ np.linalg.inv(ijk_to_ras).T)[:, :3]
    upper = np.array(shape_kji[::-1]) - 1 - margin
    return np.all((ijk >= margin) & (ijk <= upper), axis=1)
