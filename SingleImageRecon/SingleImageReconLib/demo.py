"""The main job on one CT case, start to finish: render radiographs of the CT, reconstruct the
bones from them with a bundled network, and measure the surfaces against the CT's labels.

Methods compared: ``depth`` reconstructs from the AP radiograph alone; ``fusion`` adds two
oblique views (the C-arm turned to either side) and fuses all three; ``ssm`` (where a landmark
bundle is given) fits each bone's shape model to the landmarks predicted in the AP radiograph,
and ``combined`` fits it to the depth method's masks and depth maps of the AP radiograph and
those landmarks together. The radiographs are
rendered as the network's training images were (same geometry, body continued past the scan
ends, no noise), so the figures measure reconstruction, not a change of imaging.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import torch

from SyntheticDataGenLib.cases.case_info import case_centre_ras
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry, preset_geometry
from SyntheticDataGenLib.cases.labels import Segmentation
from SyntheticDataGenLib.projection.view import CaseVolume, render_view

from .evaluation.evaluate import StructureEvaluation, evaluate_surfaces, measuring_pool
from .networks.depth_network import DepthNet
from .reconstruction.reconstruct import Reconstruction, StructureSurface, reconstruct_radiographs

FUSION_LAO_DEG = (0.0, 15.0, -15.0)  # AP, then the C-arm turned 15° to either side
EXTEND_BODY_MM = 150.0  # as the training sets were rendered (GenerationSettings.extend_body_mm)


@dataclass
class CaseStudy:
    """Everything one run produced: views, reconstructions, evaluations, stage timings (s)."""

    structures: list[str]
    geometries: list[ProjectionGeometry]
    line_integrals: list[np.ndarray]
    reconstructions: dict[str, Reconstruction] = field(default_factory=dict)
    evaluations: dict[str, dict[str, StructureEvaluation]] = field(default_factory=dict)
    timing_s: dict[str, float] = field(default_factory=dict)
    fitted_landmarks: dict[str, tuple] = field(default_factory=dict)  # ssm: {structure: (names, (L, 3) RAS mm)}


def study_geometries(metadata: dict, isocenter_ras_mm: np.ndarray, lao_deg=FUSION_LAO_DEG) -> list[ProjectionGeometry]:
    """The views of the study: the geometry the bundle was trained for, about the isocentre."""
    base = metadata["xrecon"].get("geometry", {})
    return [preset_geometry(base.get("preset", "ap"), isocenter_ras_mm=isocenter_ras_mm,
                            source_to_isocenter_mm=base.get("source_to_isocenter_mm", 900.0),
                            source_to_detector_mm=base.get("source_to_detector_mm", 1100.0),
                            size_px=base.get("size_px", (256, 256)),
                            pixel_spacing_mm=base.get("pixel_spacing_mm", (1.6, 1.6)), lao_deg=angle)
            for angle in lao_deg]


def case_structures(segmentation: Segmentation, metadata: dict) -> list[str]:
    """The bundle's structures that the case holds (non-empty), in the bundle's order; XreconInputError if none."""
    structures = [name for name in metadata["xrecon"]["structures"]
                  if name in segmentation.names and segmentation.mask_array(name).any()]
    if not structures:
        raise XreconInputError(f"the case holds none of the model's structures "
                               f"({', '.join(metadata['xrecon']['structures'])})")
    return structures


def case_radiographs(ct: sitk.Image, segmentation: Segmentation, structures: list[str], metadata: dict,
                     lao_deg=FUSION_LAO_DEG, device: torch.device | str = "cpu"
                     ) -> tuple[list[ProjectionGeometry], list[np.ndarray]]:
    """Radiographs of a CT as the bundle's training images were rendered: the views of
    :func:`study_geometries` about the centre of ``structures``, and each view's DRR line
    integral [height, width] (dimensionless)."""
    centre, _ = case_centre_ras(ct, [segmentation.mask_array(name) for name in structures])
    case = CaseVolume.from_ct(ct, segmentation, [], extend_body_mm=EXTEND_BODY_MM, device=device)
    geometries = study_geometries(metadata, centre, lao_deg)
    return geometries, [render_view(case, geometry).line_integral.cpu().numpy() for geometry in geometries]


def run_case_study(ct: sitk.Image, segmentation: Segmentation, model: DepthNet, metadata: dict, *,
                   spacing_mm: float = 1.5, device: torch.device | str = "cpu",
                   progress: Callable[[str], None] = lambda stage: None, workers: int = 1,
                   landmarks: tuple | None = None) -> CaseStudy:
    """Render, reconstruct (AP alone, three views fused, and with ``landmarks`` = (landmark
    network, its metadata, {bone type: shape model}) the shape models fitted on the AP view) and
    evaluate one case, with ``workers`` processes measuring the surfaces
    (see :func:`.evaluation.evaluate_surfaces`).

    Raises XreconInputError when the case has none of the bundle's structures.
    """
    with measuring_pool(workers) as pool:
        return _run_case_study(ct, segmentation, model, metadata, spacing_mm, device, progress, pool, landmarks)


def _shape_model_reconstructions(landmarks: tuple, depth: Reconstruction, image: np.ndarray,
                                 geometry: ProjectionGeometry, structures: list[str], device
                                 ) -> tuple[dict[str, Reconstruction], dict]:
    """({"ssm": ..., "combined": ...} of one view, {structure: ssm-fitted 3D landmarks (names, RAS mm)})."""
    from .shape_models.ssm_reconstruction import combine_bones, fit_bones, predict_landmarks

    landmark_model, landmark_metadata, models = landmarks
    predictions = predict_landmarks(landmark_model, landmark_metadata, [image], [geometry], device)
    fitted = {"ssm": fit_bones(predictions, models, structures),
              "combined": combine_bones(depth, predictions, models, structures)}
    reconstructions = {method: Reconstruction({name: StructureSurface(
        None if isinstance(fit, str) else fit.surface, [] if isinstance(fit, str) else [0], {})
        for name, fit in fits.items()}) for method, fits in fitted.items()}
    points = {name: (fit.landmark_names, fit.landmarks_ras_mm) for name, fit in fitted["ssm"].items()
              if not isinstance(fit, str)}
    return reconstructions, points


def _run_case_study(ct, segmentation, model, metadata, spacing_mm, device, progress, pool, landmarks=None
                    ) -> CaseStudy:
    start = time.perf_counter()
    structures = case_structures(segmentation, metadata)
    progress("rendering radiographs")
    geometries, line_integrals = case_radiographs(ct, segmentation, structures, metadata, device=device)
    study = CaseStudy(structures, geometries, line_integrals)
    study.timing_s["render"] = time.perf_counter() - start
    for method, views in (("depth", [0]), ("fusion", [0, 1, 2])):
        progress(f"reconstructing ({method}, {len(views)} view{'s' if len(views) > 1 else ''})")
        started = time.perf_counter()
        study.reconstructions[method] = reconstruct_radiographs(
            model, metadata, [line_integrals[v] for v in views], [geometries[v] for v in views],
            structures=structures, spacing_mm=spacing_mm, device=device)
        study.timing_s[f"reconstruct_{method}"] = time.perf_counter() - started
        progress(f"evaluating ({method})")
        started = time.perf_counter()
        study.evaluations[method] = evaluate_surfaces(study.reconstructions[method].surfaces, segmentation,
                                                      ijk_to_ras(segmentation.reference), pool=pool)
        study.timing_s[f"evaluate_{method}"] = time.perf_counter() - started
    if landmarks is not None:
        progress("fitting shape models to the landmarks (ssm) and to the depth maps as well (combined), 1 view")
        started = time.perf_counter()
        fitted, study.fitted_landmarks = _shape_model_reconstructions(
            landmarks, study.reconstructions["depth"], line_integrals[0], geometries[0], structures, device)
        study.reconstructions.update(fitted)
        study.timing_s["reconstruct_ssm_and_combined"] = time.perf_counter() - started
        for method in fitted:
            progress(f"evaluating ({method})")
            started = time.perf_counter()
            study.evaluations[method] = evaluate_surfaces(study.reconstructions[method].surfaces, segmentation,
                                                          ijk_to_ras(segmentation.reference), pool=pool)
            study.timing_s[f"evaluate_{method}"] = time.perf_counter() - started
    return study
