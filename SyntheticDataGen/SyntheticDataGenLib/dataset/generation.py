"""Make a synthetic training set: many augmented radiographs with exact targets from a few CTs.

A dataset is one folder::

    dataset.json                   schema version, settings, cases and their split, the command line
    manifest.jsonl                 one JSON line per sample (manifest.shard-I-of-N.jsonl when sharded)
    samples/<case>/<view>.npz      image and targets (see :data:`SAMPLE_ARRAYS`)
    registrations/<a>__<b>.mha     deformable registrations between cases of one body region

Every sample's randomness comes from its own seed (dataset seed, case name, view index), so
the same seed gives identical bytes whatever the shard or the order, and ``--shard I/N`` splits
the work into disjoint parts whose union is the unsharded set. Views of one case come in
groups that share a deformed anatomy (preparing a deformed CT costs more than rendering it);
a shard takes whole groups. Samples are written atomically, then logged in the manifest, so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from ..atomic_io import atomic_path, write_text_atomically
from ..augmentation.ladder import AugmentationConfig, sample_anatomy, sample_augmentation
from ..cases.case_info import case_centre_ras, structures_centre_ras
from ..cases.ct_io import read_ct, write_image
from ..augmentation.detector import (add_scatter, collimate, collimation_weight, display_window, gamma_correct,
                                    gaussian_blur, invert, poisson_noise)
from ..errors import XreconInputError
from ..projection.geometry import ProjectionGeometry, mirror_detector, preset_geometry, rotate_detector, zoom_detector
from ..cases.labels import Segmentation, read_segmentation
from ..cases.landmarks import project_landmarks, read_markups_json
from ..anatomy.point_deformation import ShapeSampler
from ..anatomy.scan_field import cut_to_field, scan_field
from ..augmentation.style import StyleAugmentation
from ..projection.view import CaseVolume, View, render_view

#: 2: masks, depths and landmark visibility stop at a collimator's edge, as the image does (in
#: version 1 they ran on behind the blades, so a network learnt to draw bones it cannot see).
SCHEMA_VERSION = 2
#: Versions a reader takes: their arrays are the same.
READABLE_SCHEMA_VERSIONS = (1, 2)
SAMPLE_ARRAYS = {
    "image": "float32 [H, W]: the augmented radiograph, bone bright, in [0, 1]",
    "line_integral": "float32 [H, W]: the clean DRR Σμ·Δl before detector and style effects",
    "masks": "uint8 [S, H, W]: 1 where a pixel's ray hits the structure inside the collimated field "
             "(dataset structure order)",
    "front_mm": "float32 [S, H, W]: source to first entry, 0 off the mask",
    "back_mm": "float32 [S, H, W]: source to last exit, 0 off the mask",
    "present": "bool [S]: the case's labels hold the structure (absent ones have empty targets)",
    "overlay": "bool [H, W]: pixels covered by burned-in text or markers",
    "landmarks_uv": "float32 [L, 2]: projected landmarks (u, v) in pixels, NaN where not visible",
    "landmarks_visible": "bool [L]: on the detector, inside the collimated field",
    "landmarks_known": "bool [L]: the case's landmark has a 3D position (a bone the scan cuts may lack some)",
}


@dataclass(frozen=True)
class CaseSource:
    """One CT case of a dataset and its role."""

    name: str
    ct_path: Path
    labels_path: Path | None
    table_path: Path | None
    split: str  # "train" or "validation"
    landmarks_path: Path | None = None

    def to_dict(self) -> dict:
        return {key: (str(value) if isinstance(value, Path) else value) for key, value in self.__dict__.items()}


@dataclass(frozen=True)
class BaseView:
    """The view every sample varies about: a preset with C-arm angles, distances and detector."""

    preset: str = "ap"
    lao_deg: float = 0.0
    cranial_deg: float = 0.0
    source_to_isocenter_mm: float = 900.0
    source_to_detector_mm: float = 1100.0
    size_px: tuple[int, int] = (256, 256)
    pixel_spacing_mm: tuple[float, float] = (1.6, 1.6)


@dataclass(frozen=True)
class GenerationSettings:
    structures: list[str]
    views_per_case: int
    seed: int
    base_view: BaseView = field(default_factory=BaseView)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    augmentation_name: str = "none"
    views_per_anatomy: int = 4
    extend_body_mm: float = 150.0  # continue the body past the scan's ends (see view.extend_along_body)
    ct_spacing_mm: float = 0.0  # CT axes finer than this are resampled to it before rendering (0: never)

    def to_dict(self) -> dict:
        return {"structures": list(self.structures), "views_per_case": self.views_per_case, "seed": self.seed,
                "base_view": {**self.base_view.__dict__, "size_px": list(self.base_view.size_px),
                              "pixel_spacing_mm": list(self.base_view.pixel_spacing_mm)},
                "augmentation_preset": self.augmentation_name,
                "augmentation": {k: (list(v) if isinstance(v, tuple) else v)
                                 for k, v in self.augmentation.__dict__.items()},
                "views_per_anatomy": self.views_per_anatomy, "extend_body_mm": self.extend_body_mm,
                "ct_spacing_mm": self.ct_spacing_mm}


def sample_rng(seed: int, case: str, *keys: int) -> np.random.Generator:
    """The random stream of one sample (or anatomy group): independent of shards and order."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(case.encode()), *keys]))


def sample_id(case: str, view: int) -> str:
    return f"{case}/{view:06d}"


def mirrored_name(name: str) -> str:
    """A structure's name with left and right swapped (``femur_left`` <-> ``femur_right``)."""
    return name.replace("left", "\0").replace("right", "left").replace("\0", "right")


# --- one sample --------------------------------------------------------------------------
def framed_isocenter(centre_ras_mm: np.ndarray, head_foot_range_mm: tuple[float, float], draw: dict) -> np.ndarray:
    """The isocentre of one view: the case's centre, or with framing, moved along the body axis
    (RAS S) to ``framing_fraction`` of the way from the lowest to the highest labelled bone."""
    if draw.get("framing_fraction") is None:
        return np.asarray(centre_ras_mm, float)
    low, high = head_foot_range_mm
    return np.array([centre_ras_mm[0], centre_ras_mm[1], low + draw["framing_fraction"] * (high - low)])


def closeup_target(bone_centres_ras_mm: dict[str, np.ndarray], draw: dict) -> np.ndarray | None:
    """The centre (RAS mm) of the bone a close-up view is aimed at (the ``bone_fraction`` of the
    way along the case's bones, in their order), or None for a view that is no close-up."""
    closeup = draw.get("closeup")
    if not closeup or not bone_centres_ras_mm:
        return None
    names = list(bone_centres_ras_mm)
    return np.asarray(bone_centres_ras_mm[names[min(int(closeup["bone_fraction"] * len(names)), len(names) - 1)]])


def sample_geometry(base: BaseView, isocenter_ras_mm: np.ndarray, draw: dict,
                    closeup_ras_mm: np.ndarray | None = None) -> ProjectionGeometry:
    """The projection of one sample: the base view moved and turned as ``draw`` says; a close-up
    is moved across the beam until ``closeup_ras_mm`` projects to the image centre (its depth
    about the isocentre, which the networks learn, stays the case's) and zoomed in."""
    sid = draw["source_to_isocenter_mm"] or base.source_to_isocenter_mm
    sdd = sid * draw["magnification"] if draw["magnification"] else base.source_to_detector_mm * sid / base.source_to_isocenter_mm
    view = dict(source_to_isocenter_mm=sid, source_to_detector_mm=sdd, size_px=base.size_px,
                pixel_spacing_mm=np.asarray(base.pixel_spacing_mm) * sdd / base.source_to_detector_mm,
                lao_deg=base.lao_deg + draw["lao_deg"], cranial_deg=base.cranial_deg + draw["cranial_deg"])
    centred = preset_geometry(base.preset, isocenter_ras_mm=isocenter_ras_mm, **view)
    along_u, along_v, along_beam = draw["translation_mm"]
    shift = (along_u * centred.detector_u_ras + along_v * centred.detector_v_ras
             + along_beam * centred.beam_direction_ras)
    zoom = draw["zoom"]
    if closeup_ras_mm is not None:
        offset = np.asarray(closeup_ras_mm, float) - np.asarray(isocenter_ras_mm, float)
        beam = np.asarray(centred.beam_direction_ras)
        shift = shift + (offset - (offset @ beam) * beam)  # the assembly moves across the beam to the bone
        zoom *= draw["closeup"]["zoom"]
    geometry = preset_geometry(base.preset, isocenter_ras_mm=isocenter_ras_mm, translation_ras_mm=shift, **view)
    geometry = zoom_detector(rotate_detector(geometry, draw["inplane_rotation_deg"]), zoom)
    return mirror_detector(geometry) if draw["flip"] else geometry


def radiograph(line_integral: torch.Tensor, draw: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented radiograph (H, W) in [0, 1], bone bright, and the mask of text/markers.

    Detector physics acts on the transmitted intensity; then the image is log-transformed and
    windowed as a radiograph is shown, and display and style effects follow.
    """
    generator = torch.Generator(device=line_integral.device).manual_seed(draw["style_seed"])
    intensity = torch.exp(-line_integral)
    intensity = add_scatter(intensity, draw["scatter_fraction"], draw["scatter_sigma_px"])
    intensity = gaussian_blur(intensity, draw["blur_sigma_px"])
    if draw["photons_per_pixel"]:
        intensity = poisson_noise(intensity, draw["photons_per_pixel"], generator)
    photons = draw["photons_per_pixel"] or 1e6
    shown = -torch.log(intensity.clamp(min=0.5 / photons))
    shown = display_window(shown)
    shown = gamma_correct(shown, draw["gamma"])
    if draw["invert"]:
        shown = invert(shown)
    if any(draw["collimation"]):  # unexposed film is white where bone is bright
        shown = collimate(shown, draw["collimation"], background=1.0 if not draw["invert"] else 0.0)
    style = StyleAugmentation(tone_strength=draw["tone_strength"], text_count=draw["text_count"],
                              marker_count=draw["marker_count"], grid_strength=draw["grid_strength"])
    return style.apply(shown.float(), np.random.default_rng(draw["style_seed"]))


def collimated_field(height: int, width: int, collimation) -> np.ndarray | None:
    """bool [H, W]: where a collimator of ``collimation`` (left, right, top, bottom fractions)
    leaves at least half the image; None when there is no collimator."""
    if not any(collimation):
        return None
    return (collimation_weight(height, width, collimation) >= 0.5).numpy()


def targets_in_dataset_order(view: View, structures: list[str], flipped: bool,
                             field: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Masks and depths stacked in the dataset's structure order; a flip swaps left and right.
    Outside ``field`` (bool [H, W], the collimated field; None: everywhere) they are 0."""
    height, width = view.line_integral.shape
    masks = np.zeros((len(structures), height, width), np.uint8)
    front = np.zeros((len(structures), height, width), np.float32)
    back = np.zeros((len(structures), height, width), np.float32)
    present = np.zeros(len(structures), bool)
    rendered = {name: index for index, name in enumerate(view.names)}
    for channel, name in enumerate(structures):
        source = mirrored_name(name) if flipped else name
        if source in rendered:
            index = rendered[source]
            present[channel] = True
            masks[channel] = view.masks[index].cpu().numpy()
            front[channel] = view.front_mm[index].cpu().numpy()
            back[channel] = view.back_mm[index].cpu().numpy()
    if field is not None:
        for array in (masks, front, back):
            array[:, ~field] = 0
    return {"masks": masks, "front_mm": front, "back_mm": back, "present": present}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` whose bytes depend only on the arrays (numpy's own stamps the time), written atomically."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    with atomic_path(path, "sample") as temporary:
        temporary.write_bytes(buffer.getvalue())


# --- a prepared case, possibly deformed --------------------------------------------------
@dataclass
class RawCase:
    """A case as read: CT, labels, the dataset structures it has, landmarks, isocentre of its views
    and the head-foot (RAS S) range of its labelled bones, where framed views are centred."""

    ct: sitk.Image
    segmentation: Segmentation | None
    names: list[str]
    landmarks: tuple[list[str], np.ndarray] | None
    centre_ras_mm: np.ndarray
    head_foot_range_mm: tuple[float, float]
    bone_centres_ras_mm: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class PreparedCase:
    """A case ready to render; ``applied`` reports what its anatomy augmentation actually did."""

    source: CaseSource
    volume: CaseVolume
    isocenter_ras_mm: np.ndarray
    landmarks: tuple[list[str], np.ndarray] | None
    head_foot_range_mm: tuple[float, float]
    applied: dict = field(default_factory=dict)
    bone_centres_ras_mm: dict[str, np.ndarray] = field(default_factory=dict)  # where close-ups aim (undeformed)
    landmarks_in_scan: np.ndarray | None = None  # (L,) bool: False where a smaller scan cut the landmark away


class CaseLoader:
    """Reads each case once and prepares it, deformed when a group's anatomy says so.

    Registrations between cases (for deformations towards another patient) are computed once
    and kept in ``cache_dir`` when given, so shards and resumed runs share them. New bone shapes
    come from ``shape_sampler`` (none: the shape rung is off).
    """

    def __init__(self, structures: list[str], device: torch.device | str = "cpu", extend_body_mm: float = 0.0,
                 cases: list[CaseSource] | None = None, cache_dir: Path | None = None, ct_spacing_mm: float = 0.0,
                 shape_sampler: ShapeSampler | None = None):
        self.structures = structures
        self.shape_sampler = shape_sampler
        self.ct_spacing_mm = ct_spacing_mm
        self.device = device
        self.extend_body_mm = extend_body_mm
        self.cases = {case.name: case for case in cases or []}
        self.cache_dir = cache_dir
        self._raw: dict[str, RawCase] = {}
        self._undeformed: dict[str, PreparedCase] = {}
        self._registrations: dict[tuple[str, str], sitk.Transform] = {}

    def raw(self, source: CaseSource) -> RawCase:
        if source.name not in self._raw:
            ct = read_ct(source.ct_path)
            segmentation = (read_segmentation(source.labels_path, source.table_path, reference=ct)
                            if source.labels_path else None)
            ct, segmentation = coarsened(ct, segmentation, self.ct_spacing_mm)
            counts = segmentation.voxel_counts() if segmentation else {}
            names = [s for s in self.structures if counts.get(s, 0) > 0]
            landmarks = read_markups_json(source.landmarks_path) if source.landmarks_path else None
            masks = [segmentation.mask_array(name) for name in names]
            centre, head_foot = case_centre_ras(ct, masks)
            bones = {name: structures_centre_ras(ct, [mask]) for name, mask in zip(names, masks)}
            self._raw[source.name] = RawCase(ct, segmentation, names, landmarks, centre, head_foot, bones)
        return self._raw[source.name]

    def partners(self, source: CaseSource) -> list[str]:
        """Cases of the same body region (at least half their structures shared): registration partners."""
        names = set(self.raw(source).names)
        partners = []
        for other in self.cases.values():
            other_names = set(self.raw(other).names)
            if other.name != source.name and names and len(names & other_names) >= 0.5 * len(names | other_names):
                partners.append(other.name)
        return partners

    def registration(self, fixed: CaseSource, moving: CaseSource) -> sitk.Transform:
        """The deformable registration of ``moving`` onto ``fixed`` (a field on fixed's grid)."""
        from ..anatomy.deformation import register_cases

        key = (fixed.name, moving.name)
        if key not in self._registrations:
            # MetaImage keeps the field's geometry exactly (NIfTI's float32 header moved its origin by
            # up to 3e-5 mm, so a shard reading the cache rendered other bytes than the shard that
            # computed the field; NRRD, which stores spacing times direction, changed the direction
            # in its last bit)
            path = self.cache_dir / f"{fixed.name}__{moving.name}.mha" if self.cache_dir else None
            if path is not None and path.exists():
                field = sitk.ReadImage(str(path), sitk.sitkVectorFloat64)
            else:
                first, second = self.raw(fixed), self.raw(moving)
                transform = register_cases(first.ct, second.ct, _union_mask(first.segmentation, first.names),
                                           _union_mask(second.segmentation, second.names))
                field = transform.GetDisplacementField()
                if path is not None:  # shards running at once may each write it: same field, unique temporaries
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(path, "registration cache", suffix=".partial.mha") as temporary:
                        write_image(field, temporary, use_compression=False)
            self._registrations[key] = sitk.DisplacementFieldTransform(sitk.Image(field))
        return self._registrations[key]

    def prepare(self, source: CaseSource, anatomy: dict) -> PreparedCase:
        raw = self.raw(source)
        ct, segmentation, names, landmarks = raw.ct, raw.segmentation, raw.names, raw.landmarks
        shape_sd = anatomy.get("shape_sd", 0.0) if self.shape_sampler and segmentation else 0.0
        scan = scan_field(anatomy.get("scan_field"), raw.bone_centres_ras_mm)
        poses = anatomy.get("hip_pose") or {}
        if not anatomy["deformation_mm"] and not anatomy["towards_case"] and not shape_sd and scan is None and not poses:
            if source.name not in self._undeformed:
                self._undeformed[source.name] = PreparedCase(
                    source, CaseVolume.from_ct(ct, segmentation, names, extend_body_mm=self.extend_body_mm,
                                               device=self.device),
                    raw.centre_ras_mm, landmarks, raw.head_foot_range_mm,
                    bone_centres_ras_mm=raw.bone_centres_ras_mm)
            return self._undeformed[source.name]
        from ..anatomy.deformation import (interpolate_displacement, inverse_transform_points, random_bspline_transform,
                                  warp_case)

        rng = np.random.default_rng(anatomy["seed"])
        jitter = random_bspline_transform(ct, rng, anatomy["deformation_mm"]) if anatomy["deformation_mm"] else None
        transform, applied = jitter, {}
        if anatomy["towards_case"]:
            towards = self.registration(source, self.cases[anatomy["towards_case"]])
            transform = interpolate_displacement(towards, anatomy["towards_fraction"], jitter)
        elif shape_sd:
            transform, applied = self._new_shapes(source, raw, shape_sd, rng, jitter)
            if transform is None:  # the case has no bone a shape model describes
                return dataclasses.replace(self.prepare(source, {**anatomy, "shape_sd": 0.0}), applied=applied)
        if transform is not None:
            ct, segmentation = warp_case(ct, segmentation, transform)
            if landmarks is not None:  # a point of the input anatomy moves to where the warp pulls it from
                # a point the warp cannot carry (the edge of its field) is unknown in this anatomy
                landmarks = (landmarks[0], inverse_transform_points(transform, landmarks[1], unresolved="nan"))
        centres, in_scan = dict(raw.bone_centres_ras_mm), None
        if poses:
            ct, segmentation, landmarks, centres, in_scan, applied = _pose_hips(
                poses, ct, segmentation, names, landmarks, centres, applied)
        head_foot, isocentre = raw.head_foot_range_mm, raw.centre_ras_mm
        if scan is not None:
            isocentre = np.array([scan.centre_ras_mm[0], *raw.centre_ras_mm[1:]])  # views look at the scan, at the body's depth
            ct, segmentation = cut_to_field(ct, segmentation, scan)
            low, high = scan.head_foot_range_mm()
            head_foot = (max(head_foot[0], low), min(head_foot[1], high))
            if head_foot[0] > head_foot[1]:  # the bones moved out of the range: frame the field
                head_foot = (low, high)
            if landmarks is not None:
                in_scan = scan.contains(landmarks[1]) & (True if in_scan is None else in_scan)
        # a small structure at the scan's edge can be pushed out of it (or cut away): absent from these views
        counts = segmentation.voxel_counts() if segmentation is not None else {}
        names = [name for name in names if counts.get(name, 0) > 0]
        return PreparedCase(source, CaseVolume.from_ct(ct, segmentation, names,
                                                       extend_body_mm=self.extend_body_mm, device=self.device),
                            isocentre, landmarks, head_foot, applied,
                            {name: centre for name, centre in centres.items() if name in names}, in_scan)

    def _new_shapes(self, source: CaseSource, raw: RawCase, shape_sd: float, rng: np.random.Generator,
                    jitter: sitk.Transform | None) -> tuple[sitk.Transform | None, dict]:
        """The pull transform that gives the case's bones new shapes (with the jitter on top), and
        what it did: the fraction of the shape change kept to stay invertible, its residual."""
        from ..anatomy.deformation import interpolate_displacement
        from ..anatomy.point_deformation import point_deformation

        targets = self.shape_sampler(source.name, raw.segmentation, raw.names, shape_sd, rng)
        if not len(targets.source_ras_mm):
            return jitter, {"shape_sd": 0.0, "shape_bones": 0}
        deformation = point_deformation(raw.ct, targets, _union_mask(raw.segmentation, list(targets.structures)))
        transform = interpolate_displacement(deformation.field, 1.0, jitter, keep_position=False)
        return transform, {"shape_scale": round(deformation.scale, 4),
                           "shape_residual_mm": round(deformation.residual_mm, 3)}


def coarsened(ct: sitk.Image, segmentation: Segmentation | None, spacing_mm: float
              ) -> tuple[sitk.Image, Segmentation | None]:
    """CT (linear) and labels (nearest neighbour) on a grid whose axes are at least ``spacing_mm``
    apart, over the same box; unchanged when no axis is finer (or ``spacing_mm`` is 0).

    A DRR pixel covers about 1.3 mm at the isocentre, so 1.5 mm voxels lose little, and a 0.7 mm
    chest CT costs five times the memory and time to render.
    """
    spacing = np.asarray(ct.GetSpacing())
    if spacing_mm <= 0 or spacing.min() >= spacing_mm:
        return ct, segmentation
    new_spacing = np.maximum(spacing, spacing_mm)
    size = np.maximum(1, np.round(np.asarray(ct.GetSize()) * spacing / new_spacing)).astype(int)
    grid = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    grid.SetSpacing(new_spacing.tolist())
    grid.SetDirection(ct.GetDirection())
    # the first voxel's corner stays where it was: the new grid covers the same box
    corner = np.asarray(ct.TransformContinuousIndexToPhysicalPoint([-0.5] * 3))
    direction = np.asarray(ct.GetDirection()).reshape(3, 3)
    grid.SetOrigin((corner + direction @ (new_spacing / 2)).tolist())
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(ct, sitk.sitkFloat32),
                                             [float(max(1e-3, np.sqrt(max(0.0, n ** 2 - o ** 2)) / 2))
                                              for n, o in zip(new_spacing, spacing)])
    coarse_ct = sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkInt16)
    if segmentation is None:
        return coarse_ct, None
    layers = [sitk.Resample(layer, coarse_ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, layer.GetPixelID())
              for layer in segmentation.layers]
    return coarse_ct, Segmentation(layers, dict(segmentation.structures))


def _pose_hips(poses: dict, ct: sitk.Image, segmentation, names: list[str], landmarks, centres: dict,
               applied: dict):
    """The anatomy with each femur of ``poses`` ({structure: angles}) turned about its head's
    centre (:mod:`..anatomy.hip_pose`), where the case has that femur and its head-centre landmark:
    (CT, labels, landmarks, bone centres, (L,) landmarks still inside the volume or None, applied)."""
    from ..anatomy.hip_pose import HEAD_CENTRE, HipPose, inside_volume, pose_hip

    turned = {}
    for structure, angles in poses.items():
        label = f"{structure}/{HEAD_CENTRE}"
        if structure not in names or landmarks is None or label not in landmarks[0]:
            continue
        head = landmarks[1][landmarks[0].index(label)]
        if not np.isfinite(head).all():
            continue
        pose = HipPose(structure, tuple(float(x) for x in head), angles["flexion_deg"], angles["abduction_deg"])
        ct, segmentation = pose_hip(ct, segmentation, pose)
        on_femur = np.array([name.split("/")[0] == structure for name in landmarks[0]])
        points = landmarks[1].copy()
        points[on_femur] = pose.move_points(points[on_femur])
        landmarks = (landmarks[0], points)
        centres[structure] = pose.move_points(np.asarray(centres[structure], float)[None])[0]
        turned[structure] = angles
    in_volume = inside_volume(ct, landmarks[1]) if turned else None
    return ct, segmentation, landmarks, centres, in_volume, {**applied, "hip_pose": turned or None}


def _union_mask(segmentation: Segmentation | None, names: list[str]) -> sitk.Image | None:
    """The union of the named structures as a uint8 image (registration looks at the bones)."""
    return None if segmentation is None or not names else segmentation.union(names)


# --- the dataset ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    case: CaseSource
    group: int
    views: tuple[int, ...]


def plan_tasks(cases: list[CaseSource], settings: GenerationSettings) -> Iterator[Task]:
    """All anatomy groups of all cases, in a fixed order, one at a time (there may be millions)."""
    for source in cases:
        for group, first in enumerate(range(0, settings.views_per_case, settings.views_per_anatomy)):
            views = tuple(range(first, min(first + settings.views_per_anatomy, settings.views_per_case)))
            yield Task(source, group, views)


def _check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if not 0 <= index < count:
        raise XreconInputError(f"shard {index}/{count}: need 0 <= I < N")


def shard_tasks(tasks: Iterable[Task], shard: tuple[int, int]) -> Iterator[Task]:
    _check_shard(shard)
    return itertools.islice(tasks, shard[0], None, shard[1])


def _in_shard(task_index: int, shard: tuple[int, int]) -> bool:
    return task_index % shard[1] == shard[0]


def _groups_per_case(settings: GenerationSettings) -> int:
    return -(-settings.views_per_case // settings.views_per_anatomy)


def shard_sample_count(cases: list[CaseSource], settings: GenerationSettings, shard: tuple[int, int]) -> int:
    """How many samples the shard's tasks hold, counted without listing them."""
    _check_shard(shard)
    per_group, groups = settings.views_per_anatomy, _groups_per_case(settings)
    last_group_views = settings.views_per_case - (groups - 1) * per_group
    total = 0
    for first_task in range(0, len(cases) * groups, groups):
        selected = range((shard[0] - first_task) % shard[1], groups, shard[1])
        total += len(selected) * per_group
        if len(selected) and selected[-1] == groups - 1:
            total -= per_group - last_group_views
    return total


def manifest_path(dataset_dir: Path, shard: tuple[int, int]) -> Path:
    return dataset_dir / ("manifest.jsonl" if shard[1] == 1 else f"manifest.shard-{shard[0]}-of-{shard[1]}.jsonl")


def read_manifests(dataset_dir: Path) -> list[dict]:
    """Every sample row of every manifest of a dataset, each id once, sorted by id.

    A last line cut short by an interruption is ignored (its sample is made again on resume).
    """
    rows = {}
    for path in sorted(Path(dataset_dir).glob("manifest*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["id"]] = row
    return [rows[key] for key in sorted(rows)]


def _dataset_header(cases: list[CaseSource], settings: GenerationSettings, command: list[str]) -> dict:
    return {"schema_version": SCHEMA_VERSION, "settings": settings.to_dict(),
            "cases": [case.to_dict() for case in cases], "arrays": SAMPLE_ARRAYS, "command": command}


def _check_or_write_header(dataset_dir: Path, header: dict) -> None:
    path = dataset_dir / "dataset.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if existing.get("schema_version") != SCHEMA_VERSION:
            raise XreconInputError(f"{dataset_dir} holds a dataset of schema version "
                                   f"{existing.get('schema_version')}, not {SCHEMA_VERSION}; use a new folder")
        if existing["settings"] != header["settings"] or existing["cases"] != header["cases"]:
            raise XreconInputError(f"{dataset_dir} holds a dataset made with other settings or cases; "
                                   "use a new folder, or the same options to resume it")
        return
    write_text_atomically(path, json.dumps(header, indent=2))


# measured on a 2-core CPU (2026-12-02): the chest sample, 49 structures, 256² px, 6 samples in 30 s
# and 4.2 MB; rendering grows with the pixels, a sample's files with the pixels and the maps
SECONDS_PER_SAMPLE_256 = 5.0
COMPRESSED_BYTES_PER_PIXEL_AND_MAP = 0.1


@dataclass(frozen=True)
class DatasetPlan:
    """A shard's samples: how many in all, how many already made, and what the rest will take."""

    samples: int
    finished: int
    seconds: float
    bytes: float


def dataset_plan(dataset_dir: str | os.PathLike, cases: list[CaseSource], settings: GenerationSettings,
                 shard: tuple[int, int] = (0, 1), rows: list[dict] | None = None) -> DatasetPlan:
    """The plan of :func:`generate_dataset` for this shard, with estimates from the figures above."""
    rows = read_manifests(Path(dataset_dir)) if rows is None else rows
    names, groups = [case.name for case in cases], _groups_per_case(settings)
    finished = sum(_in_shard(names.index(row["case"]) * groups + row["view"] // settings.views_per_anatomy, shard)
                   for row in rows if row.get("case") in names)
    samples = shard_sample_count(cases, settings, shard)
    pixels = float(np.prod(settings.base_view.size_px))
    maps = 2 + 3 * len(settings.structures)  # image, line integral; mask, front and back per structure
    todo = samples - finished
    return DatasetPlan(samples, finished, todo * SECONDS_PER_SAMPLE_256 * pixels / 256 ** 2,
                       todo * pixels * maps * COMPRESSED_BYTES_PER_PIXEL_AND_MAP)


def generate_dataset(dataset_dir: str | os.PathLike, cases: list[CaseSource], settings: GenerationSettings, *,
                     shard: tuple[int, int] = (0, 1), command: list[str] | None = None,
                     device: torch.device | str = "cpu", shape_sampler: ShapeSampler | None = None,
                     on_progress: Callable[[int, int], None] | None = None) -> int:
    """Render this shard's samples into ``dataset_dir``, skipping those already there.

    Returns the number of samples written now. ``on_progress(done, total)`` is called once at
    the start (counting samples already there) and after each new sample. ``shape_sampler``
    gives bones new shapes where the augmentation's shape rung asks (none: that rung is off).
    """
    if not cases:
        raise XreconInputError("no cases given")
    if len({case.name for case in cases}) != len(cases):
        raise XreconInputError("case names must be unique: " + ", ".join(case.name for case in cases))
    dataset_dir = Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    _check_or_write_header(dataset_dir, _dataset_header(cases, settings, command or []))
    tasks = shard_tasks(plan_tasks(cases, settings), shard)
    manifest = manifest_path(dataset_dir, shard)
    rows = read_manifests(dataset_dir)
    done = {row["id"] for row in rows}
    plan = dataset_plan(dataset_dir, cases, settings, shard, rows)
    total, finished = plan.samples, plan.finished
    loader = CaseLoader(settings.structures, device, settings.extend_body_mm, cases, dataset_dir / "registrations",
                        settings.ct_spacing_mm, shape_sampler)
    partners = {case.name: loader.partners(case) for case in cases}
    written = 0
    if on_progress:
        on_progress(finished, total)
    with manifest.open("a") as log:
        for task in tasks:
            todo = [view for view in task.views if sample_id(task.case.name, view) not in done]
            if not todo:
                continue
            anatomy = sample_anatomy(settings.augmentation, sample_rng(settings.seed, task.case.name, task.group, 1),
                                     partners[task.case.name], shapes=shape_sampler is not None)
            prepared = loader.prepare(task.case, anatomy)
            anatomy = {**anatomy, **prepared.applied}
            for view in todo:
                row = _make_sample(dataset_dir, prepared, settings, view, anatomy)
                log.write(json.dumps(row) + "\n")
                log.flush()
                os.fsync(log.fileno())
                written += 1
                finished += 1
                if on_progress:
                    on_progress(finished, total)
    return written


def _make_sample(dataset_dir: Path, prepared: PreparedCase, settings: GenerationSettings, view_index: int,
                 anatomy: dict) -> dict:
    case = prepared.source
    draw = sample_augmentation(settings.augmentation, sample_rng(settings.seed, case.name, view_index, 0))
    isocenter = framed_isocenter(prepared.isocenter_ras_mm, prepared.head_foot_range_mm, draw)
    geometry = sample_geometry(settings.base_view, isocenter, draw, closeup_target(prepared.bone_centres_ras_mm, draw))
    view = render_view(prepared.volume, geometry, model=draw["model"], energy_kev=draw["energy_kev"],
                       bone_density=draw["bone_density"])
    image, overlay = radiograph(view.line_integral, draw)
    field = collimated_field(*image.shape[-2:], draw["collimation"])
    arrays = {"image": image.cpu().numpy().astype(np.float32),
              "line_integral": view.line_integral.cpu().numpy().astype(np.float32),
              **targets_in_dataset_order(view, settings.structures, draw["flip"], field),
              "overlay": overlay.cpu().numpy().astype(bool)}
    if prepared.landmarks is not None:
        uv, visible = project_landmarks(prepared.landmarks[1], geometry)
        if field is not None:
            pixel = np.nan_to_num(np.floor(uv + 0.5), nan=-1).astype(int)  # the pixel whose centre is nearest
            inside = (pixel >= 0).all(axis=1) & (pixel[:, 0] < field.shape[1]) & (pixel[:, 1] < field.shape[0])
            visible = visible & inside
            visible[inside] &= field[pixel[inside, 1], pixel[inside, 0]]
        if prepared.landmarks_in_scan is not None:  # where the scan holds air, the image shows no landmark
            visible = visible & prepared.landmarks_in_scan
        arrays["landmarks_uv"] = np.where(visible[:, None], uv, np.nan).astype(np.float32)
        arrays["landmarks_visible"] = visible
        arrays["landmarks_known"] = np.isfinite(prepared.landmarks[1]).all(axis=1)
    relative = Path("samples") / case.name / f"{view_index:06d}.npz"
    (dataset_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    write_npz(dataset_dir / relative, arrays)
    return {"id": sample_id(case.name, view_index), "case": case.name, "split": case.split, "view": view_index,
            "file": relative.as_posix(), "geometry": geometry.to_dict(), "augmentation": draw, "anatomy": anatomy,
            "landmark_labels": [mirrored_name(label) if draw["flip"] else label  # a flipped image swaps sides
                                for label in (prepared.landmarks[0] if prepared.landmarks is not None else [])]}
