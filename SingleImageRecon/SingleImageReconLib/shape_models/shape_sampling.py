"""New bone shapes for a labelled case, drawn from the shape models (shape-model anatomy augmentation).

Each whole bone that a model describes gets the model's mean registered onto its labels once
(:func:`.case_landmarks.register_bones`; cached per case). A new shape keeps the case's own
shape, detail the model cannot express included, and moves its mode coefficients by
``sd_fraction · z · σ_k`` (z standard normal, cut at ±2): the vertices move by
``Σ_k δb_k · mode_k``, turned into the bone's pose. ``sd_fraction`` 1 changes a bone about as much
as two patients differ. The vertebra model spans every level from T1 to L5 (5.8 mm per-vertex
SD, most of it the difference between levels), so its changes are scaled by
:data:`VERTEBRA_SD_FACTOR` to about 2 mm per vertex at a fraction of 1: a vertebra varies, but
stays a vertebra of its level.

Bones change one by one, but joints must still fit: a vertebra that grows taller would press
into its discs and fold the anatomy. :func:`keep_joints` moves each bone as a whole so that its
joint faces follow its neighbour's (up the spine from the sacrum, vertebral body endplate to
endplate; each femoral head with its acetabulum), so the spine lengthens or shortens instead.

Bones the scan cuts keep their shape (the model would invent the missing part); their
neighbours' deformation fades smoothly into them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SyntheticDataGenLib.atomic_io import atomic_path
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras
from SyntheticDataGenLib.cases.labels import Segmentation
from SyntheticDataGenLib.anatomy.point_deformation import PointTargets

from .case_landmarks import register_bones
from .model_files import structure_bone_type
from .procrustes import rigid_transform
from .shape_model import ShapeModel

COEFFICIENT_LIMIT_SD = 2.0
VERTEBRA_SD_FACTOR = 0.35


def shape_change_mm(model: ShapeModel, vertices_mm: np.ndarray, delta_coefficients_mm: np.ndarray) -> np.ndarray:
    """(N, 3) vertex displacements of a posed bone whose mode coefficients change by ``delta`` (K or fewer)."""
    rotation, _ = rigid_transform(model.mean_mm, vertices_mm)
    k = len(delta_coefficients_mm)
    return np.tensordot(delta_coefficients_mm, model.modes[:k], axes=1) @ rotation.T


def _spine_level(structure: str) -> int | None:
    """Position down the spine (C1 = 1, T1 = 8, L1 = 20, sacrum after L5), None for other bones."""
    if structure == "sacrum":
        return 25
    if structure.startswith("vertebrae_") and structure[10:11] in "CTL" and structure[11:].isdigit():
        return {"C": 0, "T": 7, "L": 19}[structure[10]] + int(structure[11:])
    return None


def _landmark_change(model: ShapeModel, change: np.ndarray, names: tuple[str, ...]) -> np.ndarray | None:
    """Mean (3,) displacement of the named landmarks under a vertex change, None if the model lacks one."""
    if not all(name in model.landmark_names for name in names):
        return None
    rows = [model.landmark_names.index(name) for name in names]
    return (model.landmark_weights[rows] @ change).mean(axis=0)


_SUPERIOR = {"vertebra": ("body_superior_anterior", "body_superior_posterior"), "sacrum": ("sacral_promontory",)}
_INFERIOR = {"vertebra": ("body_inferior_anterior", "body_inferior_posterior")}


def keep_joints(changes: dict[str, tuple[ShapeModel, np.ndarray]]) -> dict[str, np.ndarray]:
    """{structure: (N, 3) vertex change} with each bone translated so its joints still meet.

    Up the spine, a vertebra whose caudal neighbour also changes moves by that neighbour's
    translation plus the difference between the neighbour's superior endplate change and its own
    inferior one. A femur moves by its acetabular centre's change less its head centre's.
    """
    result = {name: change for name, (_, change) in changes.items()}
    spine = sorted((level, name) for name in changes if (level := _spine_level(name)) is not None)
    shift, below = {}, None
    for level, name in reversed(spine):  # from the sacrum up
        model, change = changes[name]
        shift[name] = np.zeros(3)
        if below is not None and _spine_level(below) == level + 1:
            top = _landmark_change(changes[below][0], changes[below][1], _SUPERIOR.get(changes[below][0].name, ()))
            bottom = _landmark_change(model, change, _INFERIOR.get(model.name, ()))
            if top is not None and bottom is not None:
                shift[name] = shift[below] + top - bottom
        result[name] = change + shift[name]
        below = name
    for side in ("left", "right"):
        femur, hip = changes.get(f"femur_{side}"), changes.get(f"hip_{side}")
        if femur and hip:
            socket = _landmark_change(hip[0], hip[1], ("acetabular_centre",))
            head = _landmark_change(femur[0], femur[1], ("femoral_head_centre",))
            if socket is not None and head is not None:
                result[f"femur_{side}"] = femur[1] + socket - head
    return result


class ShapeModelSampler:
    """A :class:`SyntheticDataGenLib.anatomy.point_deformation.ShapeSampler` over the bundled shape models.

    Args:
        models: {bone type: model} (:func:`.model_files.load_models`).
        cache_dir: where each case's registered bones are kept (``<case>.npz``), so shards and
            resumed runs register a case once; None keeps them in memory only.
    """

    def __init__(self, models: dict[str, ShapeModel], cache_dir: Path | None = None):
        self.models = models
        self.cache_dir = cache_dir
        self._bones: dict[str, dict[str, tuple[ShapeModel, np.ndarray]]] = {}

    def bones(self, case: str, segmentation: Segmentation, structures: list[str] | None = None
              ) -> dict[str, tuple[ShapeModel, np.ndarray]]:
        """{structure: (model for its side, registered vertices RAS mm)} of the case's whole bones
        (of ``structures`` only, when given: a dataset's structures never change)."""
        if case in self._bones:
            return self._bones[case]
        path = self.cache_dir / f"{case}.npz" if self.cache_dir else None
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as stored:
                vertices = {name: stored[name] for name in stored.files}
        else:
            registered, _ = register_bones(segmentation, ijk_to_ras(segmentation.reference), self.models,
                                           structures=structures, whole_only=True)
            vertices = {bone.structure: bone.vertices_mm for bone in registered}
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path, "shape correspondences", suffix=".partial.npz") as temporary:
                    np.savez(temporary, **vertices)
        bones = {}
        for name, points in vertices.items():
            bone, side = structure_bone_type(name)
            if bone in self.models and len(points) == self.models[bone].vertex_count:
                bones[name] = (self.models[bone].for_side(side), points)
        self._bones[case] = bones
        return bones

    def __call__(self, case: str, segmentation: Segmentation, structures: list[str], sd_fraction: float,
                 rng: np.random.Generator) -> PointTargets:
        bones = self.bones(case, segmentation, structures)
        changes = {}
        for name in sorted(bones):  # a fixed order: the same rng gives the same shapes
            model, vertices = bones[name]
            z = np.clip(rng.standard_normal(model.mode_count), -COEFFICIENT_LIMIT_SD, COEFFICIENT_LIMIT_SD)
            if name in structures:
                factor = VERTEBRA_SD_FACTOR if model.name == "vertebra" else 1.0
                delta = factor * sd_fraction * z * model.standard_deviations_mm
                changes[name] = (model, shape_change_mm(model, vertices, delta))
        if not changes:
            return PointTargets(np.zeros((0, 3)), np.zeros((0, 3)))
        moved = list(changes)
        changes = keep_joints(changes)
        sources = np.concatenate([bones[name][1] for name in moved])
        return PointTargets(sources, sources + np.concatenate([changes[name] for name in moved]), tuple(moved))
