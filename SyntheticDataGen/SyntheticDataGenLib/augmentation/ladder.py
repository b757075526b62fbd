"""The augmentation ladder: what varies from one synthetic radiograph to the next, and how much.

Five groups, each switchable with a strength (0 = off, 1 = as the preset says):

* geometric: C-arm angles, translation, distances, zoom, in-plane rotation, left–right flip,
  and framing: the view centred anywhere along the labelled bones (chest, abdomen, lumbar
  or pelvis radiographs of one CT), so that structures are cut by the image edge or absent;
  and close-ups: the view centred on one bone and zoomed in (a hip, a knee's femur, a few
  vertebrae), so that the networks learn a bone from its own look, not from where the rest of
  the skeleton puts it, and learn that most bones can be absent. All act on the projection
  geometry, so every target stays exact.
* physics: attenuation model, effective energy, bone density.
* style: detector effects (noise, scatter, blur, gamma, inversion, collimation) and what real
  radiographs carry (tone curves, burned-in text, markers, grid lines), aimed at the gap
  between DRRs and real images.
* anatomy: smooth random deformations of CT and labels together, and deformations towards
  other training cases found by registration (new plausible patients); and smaller scans: the
  CT cut to an axial disc or square around one bone over part of its length
  (:mod:`..anatomy.scan_field`), as clinical CTs reconstructed on a small field are; and other
  hip positions: a femur turned about its head, flexed or abducted, the thigh's tissue with it
  (:mod:`..anatomy.hip_pose`; in no preset: ``with_hip_poses``, ``xrecon generate --hip-pose``).
* shape: bones given new shapes drawn from the statistical shape models, a fraction of the
  models' standard deviations away from the case's own (:mod:`..anatomy.point_deformation`); it needs a
  shape sampler (``xrecon generate`` has one), and instead of a deformation towards another case.

:func:`sample_augmentation` draws one image's concrete parameters (a JSON-able dict stored with
the image) from a config; :data:`PRESETS` holds ``none``, ``light`` and ``heavy``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import XreconInputError

Interval = tuple[float, float]


@dataclass(frozen=True)
class AugmentationConfig:
    """Ranges (uniform unless said otherwise) and probabilities for one image's parameters.

    Angles in degrees relative to the base view, distances in mm, ``zoom`` divides the pixel pitch.
    ``source_to_isocenter_mm`` None keeps the base distance; ``magnification`` is source-to-detector
    over source-to-isocentre (None keeps the base). Photon counts are drawn log-uniformly.
    """

    # geometric
    lao_deg: Interval = (0.0, 0.0)
    cranial_deg: Interval = (0.0, 0.0)
    translation_mm: float = 0.0  # across the beam, along the image's u and v
    depth_translation_mm: float = 0.0  # along the beam: an image barely shows it, so keep it small
    source_to_isocenter_mm: Interval | None = None
    magnification: Interval | None = None
    zoom: Interval = (1.0, 1.0)
    inplane_rotation_deg: Interval = (0.0, 0.0)
    flip_probability: float = 0.0
    framing_probability: float = 0.0  # centre along the whole head-foot extent of the bones
    closeup_probability: float = 0.0  # centre on one bone (drawn uniformly) and zoom in by closeup_zoom
    closeup_zoom: Interval = (1.0, 1.0)  # on top of ``zoom``; drawn log-uniformly
    # physics
    two_material_probability: float = 0.0
    energy_kev: Interval = (60.0, 60.0)
    bone_density: Interval = (1.0, 1.0)
    # style: detector effects
    noise_probability: float = 0.0
    photons_per_pixel: Interval = (1e4, 1e5)
    scatter_fraction: Interval = (0.0, 0.0)
    scatter_sigma_px: Interval = (15.0, 40.0)
    blur_sigma_px: Interval = (0.0, 0.0)
    gamma: Interval = (1.0, 1.0)
    invert_probability: float = 0.0
    collimation_probability: float = 0.0
    collimation_max_fraction: float = 0.0
    # style: what real radiographs carry
    tone_strength: Interval = (0.0, 0.0)
    max_text_count: int = 0
    max_marker_count: int = 0
    grid_strength: Interval = (0.0, 0.0)
    # anatomy
    deformation_probability: float = 0.0
    deformation_magnitude_mm: Interval = (0.0, 0.0)
    registration_probability: float = 0.0
    scan_field_probability: float = 0.0  # cut the CT to a smaller scan around one bone
    scan_field_half_width_mm: Interval = (250.0, 250.0)  # radius of the axial disc, or half the square's side
    scan_field_length_mm: Interval = (400.0, 400.0)  # head-foot extent
    hip_pose_probability: float = 0.0  # turn each femur about its head (:mod:`..anatomy.hip_pose`)
    hip_flexion_deg: Interval = (0.0, 0.0)  # positive: the knee forwards
    hip_abduction_deg: Interval = (0.0, 0.0)  # positive: the knee away from the midline
    # shape: how far each bone's mode coefficients move, in model standard deviations
    shape_model_probability: float = 0.0
    shape_model_sd: Interval = (0.0, 0.0)

    def with_hip_poses(self, strength: float) -> "AugmentationConfig":
        """The same ladder with :data:`HIP_POSES` at ``strength`` (0: none; 1: as listed there)."""
        if not 0 <= strength <= 1 or not math.isfinite(strength):  # beyond 1 hips would bend past 80°
            raise XreconInputError(f"hip pose strength must be between 0 and 1, got {strength}")
        return dataclasses.replace(
            self, hip_pose_probability=min(1.0, HIP_POSES["hip_pose_probability"] * strength),
            hip_flexion_deg=tuple(strength * bound for bound in HIP_POSES["hip_flexion_deg"]),
            hip_abduction_deg=tuple(strength * bound for bound in HIP_POSES["hip_abduction_deg"]))

    def scaled(self, *, geometric: float = 1.0, physics: float = 1.0, style: float = 1.0,
               anatomy: float = 1.0, shape: float = 1.0) -> "AugmentationConfig":
        """The same ladder with each group's ranges and probabilities scaled about "no change"."""
        strengths = {"geometric": geometric, "physics": physics, "style": style, "anatomy": anatomy, "shape": shape}
        for name, value in strengths.items():
            if not 0 <= value <= 10 or not math.isfinite(value):
                raise XreconInputError(f"augmentation strength {name} must be between 0 and 10, got {value}")
        changes = {}
        for field in dataclasses.fields(self):
            changes[field.name] = _scale(field.name, getattr(self, field.name), strengths[_GROUP[field.name]])
        return dataclasses.replace(self, **changes)


_NEUTRAL = {"lao_deg": 0.0, "cranial_deg": 0.0, "zoom": 1.0, "closeup_zoom": 1.0, "inplane_rotation_deg": 0.0, "energy_kev": 60.0,
            "bone_density": 1.0, "scatter_fraction": 0.0, "blur_sigma_px": 0.0, "gamma": 1.0, "tone_strength": 0.0,
            "grid_strength": 0.0, "deformation_magnitude_mm": 0.0, "shape_model_sd": 0.0, "hip_flexion_deg": 0.0,
            "hip_abduction_deg": 0.0}
_GROUP = {name: group for group, names in {
    "geometric": ["lao_deg", "cranial_deg", "translation_mm", "depth_translation_mm", "source_to_isocenter_mm", "magnification", "zoom",
                  "inplane_rotation_deg", "flip_probability", "framing_probability", "closeup_probability",
                  "closeup_zoom"],
    "physics": ["two_material_probability", "energy_kev", "bone_density"],
    "style": ["noise_probability", "photons_per_pixel", "scatter_fraction", "scatter_sigma_px", "blur_sigma_px",
              "gamma", "invert_probability", "collimation_probability", "collimation_max_fraction",
              "tone_strength", "max_text_count", "max_marker_count", "grid_strength"],
    "anatomy": ["deformation_probability", "deformation_magnitude_mm", "registration_probability",
                "scan_field_probability", "scan_field_half_width_mm", "scan_field_length_mm",
                "hip_pose_probability", "hip_flexion_deg", "hip_abduction_deg"],
    "shape": ["shape_model_probability", "shape_model_sd"],
}.items() for name in names}


def _scale(name: str, value, strength: float):
    if value is None:
        return None
    if name in _NEUTRAL:  # an interval about the value that changes nothing
        neutral = _NEUTRAL[name]
        return tuple(neutral + strength * (bound - neutral) for bound in value)
    if name.endswith("probability"):
        return min(1.0, value * strength)
    if name == "collimation_max_fraction":
        return min(0.45, value * strength)
    if name.startswith("max_"):
        return int(round(value * strength))
    if name in ("translation_mm", "depth_translation_mm"):
        return value * strength
    if name in ("source_to_isocenter_mm", "magnification"):  # narrow towards the centre; 0 keeps the base view
        centre = sum(value) / 2
        return None if strength == 0 else tuple(centre + strength * (bound - centre) for bound in value)
    return value  # photon counts and scatter width shape an effect that a probability switches


PRESETS: dict[str, AugmentationConfig] = {
    "none": AugmentationConfig(),
    "light": AugmentationConfig(
        lao_deg=(-10, 10), cranial_deg=(-5, 5), translation_mm=10, zoom=(0.9, 1.1), inplane_rotation_deg=(-5, 5),
        energy_kev=(50, 70), bone_density=(0.9, 1.1),
        noise_probability=0.5, photons_per_pixel=(3e4, 3e5), scatter_fraction=(0.0, 0.1), blur_sigma_px=(0.0, 0.7),
        gamma=(0.8, 1.25), collimation_probability=0.2, collimation_max_fraction=0.1,
        tone_strength=(0.0, 0.3), max_text_count=2,
        deformation_probability=0.5, deformation_magnitude_mm=(1.0, 2.0)),
    "heavy": AugmentationConfig(
        lao_deg=(-30, 30), cranial_deg=(-20, 20), translation_mm=40, depth_translation_mm=5,
        source_to_isocenter_mm=(700, 1300),
        magnification=(1.1, 1.5), zoom=(0.75, 1.33), inplane_rotation_deg=(-20, 20), flip_probability=0.5,
        framing_probability=0.7, closeup_probability=0.3, closeup_zoom=(1.5, 3.0),
        two_material_probability=0.5, energy_kev=(35, 90), bone_density=(0.7, 1.3),
        noise_probability=0.8, photons_per_pixel=(3e3, 3e5), scatter_fraction=(0.0, 0.3), blur_sigma_px=(0.0, 1.5),
        gamma=(0.6, 1.6), invert_probability=0.1, collimation_probability=0.5, collimation_max_fraction=0.2,
        tone_strength=(0.0, 1.0), max_text_count=6, max_marker_count=4, grid_strength=(0.0, 0.5),
        deformation_probability=1.0, deformation_magnitude_mm=(2.0, 5.0), registration_probability=0.3,
        scan_field_probability=0.35, scan_field_half_width_mm=(70.0, 160.0), scan_field_length_mm=(120.0, 360.0),
        shape_model_probability=0.5, shape_model_sd=(0.3, 1.0)),
}


#: Hip positions at strength 1 (``AugmentationConfig.with_hip_poses``): flexed up to 80° (sts001's
#: hip is flexed about 60°), abducted up to 40° (frog-leg views), a little extended or adducted.
#: No preset holds them and no shipped bundle was trained with them: a landmark bundle trained
#: with them (and sts002) found fewer bones (its ``docs/README.md``, "Tried and not shipped").
HIP_POSES = {"hip_pose_probability": 0.4, "hip_flexion_deg": (-10.0, 80.0), "hip_abduction_deg": (-10.0, 40.0)}


def preset(name: str) -> AugmentationConfig:
    if name not in PRESETS:
        raise XreconInputError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def _uniform(rng: np.random.Generator, interval: Interval) -> float:
    low, high = interval
    return float(low) if low == high else float(rng.uniform(low, high))


def sample_augmentation(config: AugmentationConfig, rng: np.random.Generator) -> dict:
    """One image's concrete augmentation parameters (JSON-able), drawn from ``config``.

    Every key is always drawn, in a fixed order, so that changing one range does not shift the
    random stream of the others.
    """
    draw = {}
    draw["lao_deg"] = _uniform(rng, config.lao_deg)
    draw["cranial_deg"] = _uniform(rng, config.cranial_deg)
    # (along u, along v, along the beam) of the view
    draw["translation_mm"] = [float(x) for x in rng.uniform(-1, 1, 3) * [config.translation_mm, config.translation_mm,
                                                                          config.depth_translation_mm]]
    sid = rng.uniform(*(config.source_to_isocenter_mm or (0.0, 0.0)))
    draw["source_to_isocenter_mm"] = float(sid) if config.source_to_isocenter_mm else None
    magnification = rng.uniform(*(config.magnification or (0.0, 0.0)))
    draw["magnification"] = float(magnification) if config.magnification else None
    draw["zoom"] = float(np.exp(rng.uniform(*np.log(config.zoom))))
    draw["inplane_rotation_deg"] = _uniform(rng, config.inplane_rotation_deg)
    draw["flip"] = bool(rng.random() < config.flip_probability)
    draw["model"] = "two-material" if rng.random() < config.two_material_probability else "linear"
    draw["energy_kev"] = _uniform(rng, config.energy_kev)
    draw["bone_density"] = _uniform(rng, config.bone_density)
    photons = float(np.exp(rng.uniform(*np.log(config.photons_per_pixel))))
    draw["photons_per_pixel"] = photons if rng.random() < config.noise_probability else None
    draw["scatter_fraction"] = _uniform(rng, config.scatter_fraction)
    draw["scatter_sigma_px"] = _uniform(rng, config.scatter_sigma_px)
    draw["blur_sigma_px"] = _uniform(rng, config.blur_sigma_px)
    draw["gamma"] = _uniform(rng, config.gamma)
    draw["invert"] = bool(rng.random() < config.invert_probability)
    blades = rng.uniform(0, config.collimation_max_fraction, 4) * (rng.random(4) < 0.7)
    draw["collimation"] = [float(x) for x in blades] if rng.random() < config.collimation_probability else [0.0] * 4
    draw["tone_strength"] = _uniform(rng, config.tone_strength)
    draw["text_count"] = int(rng.integers(0, config.max_text_count + 1))
    draw["marker_count"] = int(rng.integers(0, config.max_marker_count + 1))
    draw["grid_strength"] = _uniform(rng, config.grid_strength)
    draw["style_seed"] = int(rng.integers(0, 2**31 - 1))
    # drawn last, so that the streams of the keys above are those of datasets made before it
    fraction = float(rng.random())
    draw["framing_fraction"] = fraction if rng.random() < config.framing_probability else None
    # drawn after framing, for the same reason: which bone (a fraction of the case's bone list) and how close
    closeup = {"bone_fraction": float(rng.random()), "zoom": float(np.exp(rng.uniform(*np.log(config.closeup_zoom))))}
    draw["closeup"] = closeup if rng.random() < config.closeup_probability else None
    return draw


def sample_anatomy(config: AugmentationConfig, rng: np.random.Generator, partners: list[str],
                   shapes: bool = False) -> dict:
    """Concrete anatomy parameters for one deformed patient (shared by several views).

    ``partners`` are the other cases this case can be registered to (same body region);
    ``shapes`` says whether a shape sampler can give the bones new shapes.
    """
    deform = bool(rng.random() < config.deformation_probability)
    magnitude = _uniform(rng, config.deformation_magnitude_mm)
    register = bool(partners) and bool(rng.random() < config.registration_probability)
    partner = partners[int(rng.integers(len(partners)))] if partners else None
    fraction = float(rng.uniform(0.0, 1.0))
    seed = int(rng.integers(0, 2**31 - 1))
    # drawn after the keys above, so that their streams are those of datasets made before it
    shape = shapes and bool(rng.random() < config.shape_model_probability)
    shape_sd = _uniform(rng, config.shape_model_sd)
    shape = shape and shape_sd > 0
    register = register and not shape
    # drawn last, for the same reason: a smaller scan about one bone (:func:`..anatomy.scan_field.scan_field`)
    field = {"bone_fraction": float(rng.random()), "offset": [float(x) for x in rng.uniform(-0.5, 0.5, 3)],
             "half_width_mm": _uniform(rng, config.scan_field_half_width_mm),
             "length_mm": _uniform(rng, config.scan_field_length_mm), "disc": bool(rng.random() < 0.5)}
    cut = bool(rng.random() < config.scan_field_probability)
    # drawn last, for the same reason: each femur turned about its head (:mod:`..anatomy.hip_pose`)
    poses = {}
    for side in ("left", "right"):
        angles = {"flexion_deg": _uniform(rng, config.hip_flexion_deg), "abduction_deg": _uniform(rng, config.hip_abduction_deg)}
        if rng.random() < config.hip_pose_probability and any(angles.values()):
            poses[f"femur_{side}"] = angles
    return {"deformation_mm": magnitude if deform and magnitude > 0 else 0.0,
            "towards_case": partner if register else None, "towards_fraction": fraction if register else 0.0,
            "seed": seed, "shape_sd": shape_sd if shape else 0.0, "scan_field": field if cut else None,
            "hip_pose": poses or None}
