"""Propagated labels: bone labels carried from labelled CTs (atlases) onto an unlabelled CT.

Each atlas is registered onto the target (:func:`deformation.register_cases`: affine, then
diffeomorphic demons, on bone-threshold masks of both CTs), its label map is pulled through the
field with nearest-neighbour interpolation, and several atlases are fused by majority vote per
voxel (an atlas votes only where its labels reach). The fused labels are then refined with the
target's own bone: every voxel above ``bone_hu`` within ``reach_mm`` of a propagated structure
takes the label of the nearest one, each structure's enclosed marrow is filled, and only each
structure's largest connected piece is kept. What comes out follows the target's cortex, not
the atlas's; which bone is which (the vertebral level) comes from the registration, so it must
be checked by eye (:func:`contact_sheet`).

Such labels are "propagated labels", never ground truth; ``overlap`` reports how much the
refinement moved them and, where atlases overlap, how much they agreed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..anatomy.deformation import register_cases
from .labels import Segmentation

DEFAULT_BONE_HU = 120.0  # trabecular bone and above (xrecon bench labels: 180 HU missed half of a 3 mm L1)
DEFAULT_REACH_MM = 4.0  # how far the target's bone may lie from a propagated structure


@dataclass
class Atlas:
    """A labelled CT whose structures are carried onto a target."""

    name: str
    ct: sitk.Image
    segmentation: Segmentation


def bone_mask(ct: sitk.Image, bone_hu: float = DEFAULT_BONE_HU) -> sitk.Image:
    """uint8 mask of voxels at or above ``bone_hu`` (the registration's bone evidence)."""
    return sitk.Cast(ct >= bone_hu, sitk.sitkUInt8)


def _label_map(segmentation: Segmentation, structures: Sequence[str]) -> sitk.Image:
    """One uint16 layer with value i + 1 for ``structures[i]`` (later structures win overlaps)."""
    array = np.zeros(segmentation.mask_array(segmentation.names[0]).shape, np.uint16)
    for value, name in enumerate(structures, start=1):
        if name in segmentation.structures:
            array[segmentation.mask_array(name)] = value
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(segmentation.reference)
    return image


def warp_atlas(target_ct: sitk.Image, atlas: Atlas, structures: Sequence[str], spacing_mm: float = 3.0,
               iterations: int = 50, progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """The atlas's labels on the target grid, (k, j, i) uint16 with value i + 1 for ``structures[i]``."""
    field = register_cases(target_ct, atlas.ct, bone_mask(target_ct), bone_mask(atlas.ct),
                           iterations=iterations, progress=progress, spacing_mm=spacing_mm)
    labels = sitk.Resample(_label_map(atlas.segmentation, structures), target_ct, field,
                           sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    return sitk.GetArrayFromImage(labels)


def fuse_votes(warped: Sequence[np.ndarray], label_count: int) -> np.ndarray:
    """Majority vote per voxel among the structures the atlases put there; ties go to the lower label.

    Background does not vote, so a structure that only one atlas covers is kept wherever no
    other atlas puts another structure (an atlas of another body region then adds its bones
    unopposed: give only atlases of the target's region).
    """
    if len(warped) == 1:
        return warped[0].copy()
    counts = np.zeros((label_count + 1,) + warped[0].shape, np.uint8)
    for labels in warped:
        for value in range(1, label_count + 1):
            counts[value] += labels == value
    best = counts[1:].argmax(axis=0) + 1
    return np.where(counts[1:].max(axis=0) > 0, best, 0).astype(np.uint16)


def head_foot_axis_kji(ct: sitk.Image) -> int:
    """The (k, j, i) array axis that runs most along the body (RAS S)."""
    return 2 - int(np.argmax(np.abs(np.asarray(ct.GetDirection()).reshape(3, 3)[2])))


def refine_with_bone(ct: sitk.Image, labels: np.ndarray, bone_hu: float = DEFAULT_BONE_HU,
                     reach_mm: float = DEFAULT_REACH_MM) -> np.ndarray:
    """Labels that follow the target's bone (see the module docstring); (k, j, i) uint16.

    Marrow is filled slice by slice across the body axis: in 3D a vertebral body's cortex has
    gaps at the CT's resolution, so a 3D fill leaves the body hollow; in an axial slice it is
    a closed ring.
    """
    spacing_kji = np.asarray(ct.GetSpacing())[::-1]
    hu = sitk.GetArrayViewFromImage(ct)
    bone = hu >= bone_hu
    distance, nearest = ndimage.distance_transform_edt(labels == 0, sampling=spacing_kji, return_indices=True)
    nearest_label = labels[tuple(nearest)]
    refined = np.where(bone & (distance <= reach_mm), nearest_label, 0).astype(np.uint16)
    # a cross within one slice across the body axis: fills and closes slice by slice
    flat = ndimage.generate_binary_structure(2, 1)
    in_slice = np.moveaxis(np.stack([np.zeros_like(flat), flat, np.zeros_like(flat)]), 0, head_foot_axis_kji(ct))
    out = np.zeros_like(refined)
    for value in np.unique(refined[refined > 0]):
        structure = refined == value
        pieces, count = ndimage.label(structure)
        if count > 1:
            sizes = np.bincount(pieces.ravel())[1:]
            structure = pieces == (1 + int(sizes.argmax()))
        closed = ndimage.binary_closing(structure, in_slice, iterations=1) | structure
        filled = ndimage.binary_fill_holes(closed, in_slice)
        # marrow enclosed by this structure's cortex, not another bone's voxels
        out[filled & ((out == 0) & ((refined == 0) | structure))] = value
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else float("nan")


def overlap(before: np.ndarray, after: np.ndarray, structures: Sequence[str],
            per_atlas: Sequence[np.ndarray] = ()) -> dict[str, dict]:
    """Per structure: voxels after refinement, Dice of the raw propagated label with the refined
    one, and the mean pairwise Dice between atlases where two or more cover the structure."""
    report = {}
    for value, name in enumerate(structures, start=1):
        refined = after == value
        if not refined.any():
            continue
        entry = {"voxels": int(refined.sum()), "dice_propagated_vs_refined": round(dice(before == value, refined), 3)}
        covering = [labels == value for labels in per_atlas if (labels == value).any()]
        if len(covering) > 1:
            pairs = [dice(covering[i], covering[j]) for i in range(len(covering)) for j in range(i + 1, len(covering))]
            entry["dice_between_atlases"] = round(float(np.mean(pairs)), 3)
        report[name] = entry
    return report
