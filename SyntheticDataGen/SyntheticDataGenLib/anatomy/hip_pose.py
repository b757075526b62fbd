"""Another hip position: a femur turned about its head's centre, the thigh's tissue with it.

The labelled CTs hold extended hips. Radiographs and CTs of hips are also taken flexed, abducted
or frog-legged (the hip of sts001 is flexed, so its femur runs forwards), and in an AP view a
flexed femur is foreshortened and its trochanters turned: a network that saw only extended hips
does not recognise it.

This rung turns one femur rigidly about its head's centre: flexion about the left-right axis
(the knee forwards), then abduction about the front-back axis (the knee away from the midline).
The soft tissue follows by a blend: a point is pulled through the femur's rotation with weight
w = d_fixed² / (d_fixed² + d_femur²), from its distances to the other labelled bones and to the
turned femur, fading beyond the thigh (``THIGH_MM``, ``FALLOFF_MM``), so the femur moves rigidly
(w = 1: its labels, depths and landmarks stay exact) and the other bones and the trunk stay (w ≈ 0). The blend reads a copy of the CT in which the femur's old place
holds soft tissue, so the bone does not appear twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..cases.ct_io import LPS_TO_RAS, ijk_to_ras
from ..cases.labels import Segmentation
from .deformation import AIR_HU, sample_displacement_field, warp_case

HEAD_CENTRE = "femoral_head_centre"  # the landmark (of the femur model) the femur turns about
SOFT_TISSUE_HU = 40.0  # what fills the femur's old place (muscle)
BLEND_SPACING_MM = 4.0  # the blend's field is sampled this coarsely: it is smooth
THIGH_MM = 40.0  # tissue this close to the turned femur moves with it, as far as the other bones allow ...
FALLOFF_MM = 40.0  # ... and further out less and less: the abdomen and the other leg stay


@dataclass(frozen=True)
class HipPose:
    """A femur's new position: ``structure`` (femur_left or femur_right) turned about
    ``head_centre_ras_mm`` by ``flexion_deg`` (positive: the knee forwards), then
    ``abduction_deg`` (positive: the knee away from the midline)."""

    structure: str
    head_centre_ras_mm: tuple[float, float, float]
    flexion_deg: float
    abduction_deg: float

    def rotation_ras(self) -> np.ndarray:
        """(3, 3): where a femur point's offset from the head's centre goes (RAS)."""
        flexion = np.radians(self.flexion_deg)
        # +R is the patient's right: a right knee moves away from the midline towards +R, a left one towards -R
        away = -np.radians(self.abduction_deg) * (1.0 if self.structure.endswith("right") else -1.0)
        about_r = np.array([[1, 0, 0], [0, np.cos(flexion), -np.sin(flexion)], [0, np.sin(flexion), np.cos(flexion)]])
        about_a = np.array([[np.cos(away), 0, np.sin(away)], [0, 1, 0], [-np.sin(away), 0, np.cos(away)]])
        return about_a @ about_r

    def move_points(self, points_ras_mm: np.ndarray) -> np.ndarray:
        """(N, 3) femur points where the new position puts them (NaN rows stay NaN)."""
        centre = np.asarray(self.head_centre_ras_mm, float)
        return (np.asarray(points_ras_mm, float) - centre) @ self.rotation_ras().T + centre


def _femur_pull(pose: HipPose) -> sitk.AffineTransform:
    """Output LPS → input LPS of the turned femur: the inverse rotation about the head's centre."""
    flip = np.diag(LPS_TO_RAS)
    rotation_lps = flip[:, None] * pose.rotation_ras() * flip[None, :]
    pull = sitk.AffineTransform(3)
    pull.SetMatrix(rotation_lps.T.ravel().tolist())
    pull.SetCenter((np.asarray(pose.head_centre_ras_mm, float) * flip).tolist())
    return pull


def _distance_mm(mask: sitk.Image) -> np.ndarray:
    """Distance (mm, 0 inside) to a mask's voxels; far everywhere when the mask is empty."""
    if not sitk.GetArrayViewFromImage(mask).any():
        return np.full(sitk.GetArrayViewFromImage(mask).shape, 1e6)
    distance = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return np.maximum(sitk.GetArrayFromImage(distance), 0.0)


def _blend_pull(ct: sitk.Image, fixed: sitk.Image, moved_femur: sitk.Image, femur_pull: sitk.Transform
                ) -> sitk.DisplacementFieldTransform:
    """The soft tissue's pull: each point moved through ``femur_pull`` by the weight w of the module's docstring."""
    grid = sample_displacement_field(femur_pull, ct, BLEND_SPACING_MM).GetDisplacementField()
    on_grid = lambda mask: sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0,  # noqa: E731
                                         sitk.sitkUInt8)
    to_fixed, to_femur = _distance_mm(on_grid(fixed)), _distance_mm(on_grid(moved_femur))
    share = np.where(to_fixed + to_femur > 0, to_fixed ** 2 / np.maximum(to_fixed ** 2 + to_femur ** 2, 1e-9), 0.0)
    weight = share * np.exp(-(np.maximum(to_femur - THIGH_MM, 0.0) / FALLOFF_MM) ** 2)
    field = sitk.GetImageFromArray(sitk.GetArrayViewFromImage(grid) * weight[..., None], isVector=True)
    field.CopyInformation(grid)
    return sitk.DisplacementFieldTransform(field)


def pose_hip(ct: sitk.Image, segmentation: Segmentation, pose: HipPose) -> tuple[sitk.Image, Segmentation]:
    """The CT and labels with ``pose.structure`` turned as ``pose`` says, on the same grid (a femur
    turned out of the grid is cut by it)."""
    femur = segmentation.mask(pose.structure)
    pull = _femur_pull(pose)
    moved_femur = sitk.Resample(femur, ct, pull, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    femur_layer, femur_value = segmentation.structures[pose.structure]
    fixed = segmentation.union([name for name in segmentation.names if name != pose.structure])
    blend = _blend_pull(ct, fixed, moved_femur, pull)

    old_place = sitk.GetArrayViewFromImage(femur).astype(bool)
    filled = sitk.GetArrayFromImage(ct)
    filled[old_place] = SOFT_TISSUE_HU
    layers = []
    for index, layer in enumerate(segmentation.layers):
        values = sitk.GetArrayFromImage(layer)
        if index == femur_layer:
            values[values == femur_value] = 0
        layers.append(_like(values, layer))
    # tissue pulled from beyond the scan is thigh the CT did not reach (its foot end cuts the
    # thighs): soft tissue, not air, or a turned thigh would leave a dark band below the pelvis
    soft_ct, soft_labels = warp_case(_like(filled, ct), Segmentation(layers, dict(segmentation.structures)), blend,
                                     default_hu=SOFT_TISSUE_HU)

    turned = sitk.GetArrayViewFromImage(moved_femur).astype(bool)
    values = sitk.GetArrayFromImage(soft_ct)
    values[turned] = sitk.GetArrayViewFromImage(
        sitk.Resample(ct, ct, pull, sitk.sitkLinear, AIR_HU, ct.GetPixelID()))[turned]
    labels = [sitk.GetArrayFromImage(layer) for layer in soft_labels.layers]
    labels[femur_layer][turned] = femur_value
    return _like(values, ct), Segmentation([_like(array, ct) for array in labels], dict(segmentation.structures))


def inside_volume(image: sitk.Image, points_ras_mm: np.ndarray) -> np.ndarray:
    """(N,) bool: the RAS points that lie within the image's voxel centres (NaN points do not)."""
    points = np.asarray(points_ras_mm, float).reshape(-1, 3)
    ijk = (points - ijk_to_ras(image)[:3, 3]) @ np.linalg.inv(ijk_to_ras(image)[:3, :3]).T
    with np.errstate(invalid="ignore"):
        return np.all((ijk >= -0.5) & (ijk <= np.array(image.GetSize()) - 0.5), axis=1)


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image
