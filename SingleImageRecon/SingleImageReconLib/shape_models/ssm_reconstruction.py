"""The landmark path, radiograph(s) → predicted 2D landmarks with σ → a shape model fitted per
bone (``ssm``), and the combined method, a shape model fitted to the depth network's evidence
and the landmarks together (``combined``).

For each view the landmark network (:mod:`..networks.landmark_network`) gives every landmark's position,
σ and presence. ``ssm`` fits a bone (:func:`.landmark_fit.fit_shape_to_landmarks`, all views at
once) when at least ``min_landmarks`` of its landmarks are found (presence ≥ the threshold) over
the views. ``combined`` fits each bone the depth network found
(:func:`.evidence_fit.fit_shape_to_evidence`: its cleaned masks and front/back depth maps in the
views that found it, plus whichever of its landmarks were found). Either way the surface is the
fitted model's closed mesh, and other bones are reported not found with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

from ..reconstruction.evidence_cleanup import clean_evidence
from ..networks.inference import network_inputs
from ..reconstruction.reconstruct import Reconstruction
from ..meshes.triangle_mesh import polydata_from_arrays
from .evidence_fit import fit_shape_to_evidence
from .landmark_fit import LandmarkView, ShapeFit, fit_shape_to_landmarks
from .model_files import structure_bone_type
from .shape_model import ShapeModel

MIN_LANDMARKS = 5
DEPTH_PRIOR_SD_MM = 100.0  # a patient lies about the isocentre: a bone seldom more than 10 cm off it


@dataclass(frozen=True)
class LandmarkPrediction:
    """One view's landmarks on the network's pixel grid.

    Attributes:
        geometry: the geometry of the network input's pixels.
        image: (H, W) the network input.
        labels: L landmark labels ``<structure>/<landmark>``.
        uv_px: (L, 2) positions; sigma_px: (L,) standard deviations; presence: (L,) probabilities.
    """

    geometry: ProjectionGeometry
    image: np.ndarray
    labels: list[str]
    uv_px: np.ndarray
    sigma_px: np.ndarray
    presence: np.ndarray


@dataclass(frozen=True)
class BoneFit:
    """A fitted bone: its closed surface (RAS mm), the fit, and its landmarks found per view."""

    surface: object  # vtkPolyData
    fit: ShapeFit
    landmark_names: tuple[str, ...]
    landmarks_ras_mm: np.ndarray
    found_per_view: list[int]


@torch.no_grad()
def predict_landmarks(model, metadata: dict, images: list[np.ndarray], geometries: list[ProjectionGeometry],
                      device: torch.device | str = "cpu") -> list[LandmarkPrediction]:
    """Every landmark the bundle knows, for each (image, geometry); images bone bright, any range."""
    labels = list(metadata["xrecon"]["landmarks"])
    inputs, fitted = network_inputs(metadata, images, geometries, device)
    output = model(inputs)
    uv, sigma = output["uv_px"].cpu().numpy(), output["sigma_px"].cpu().numpy()
    presence = torch.sigmoid(output["presence_logits"]).cpu().numpy()
    return [LandmarkPrediction(geometry, inputs[index, 0].cpu().numpy(), labels, uv[index], sigma[index],
                               presence[index]) for index, (_, geometry) in enumerate(fitted)]


def _views_of(model: ShapeModel, structure: str, predictions: list[LandmarkPrediction], threshold: float
              ) -> tuple[list[LandmarkView], list[int]]:
    """Each view's landmarks of one bone in the model's order (NaN where not found)."""
    views, counts = [], []
    for prediction in predictions:
        slot = {label: i for i, label in enumerate(prediction.labels)}
        uv = np.full((len(model.landmark_names), 2), np.nan)
        sigma = np.ones(len(model.landmark_names))
        for row, name in enumerate(model.landmark_names):
            index = slot.get(f"{structure}/{name}")
            if index is not None and prediction.presence[index] >= threshold:
                uv[row], sigma[row] = prediction.uv_px[index], prediction.sigma_px[index]
        views.append(LandmarkView(prediction.geometry, uv, sigma))
        counts.append(int(np.isfinite(uv[:, 0]).sum()))
    return views, counts


def _isocentre_distance_mm(geometry: ProjectionGeometry) -> float:
    """The source-to-isocentre distance a geometry records, else 80 % of source-to-detector."""
    recorded = geometry.extra.get("source_to_isocenter_mm")
    if isinstance(recorded, (int, float)) and 0 < recorded < geometry.source_to_detector_mm:
        return float(recorded)
    return 0.8 * geometry.source_to_detector_mm


def _plausible(fit: ShapeFit, geometry: ProjectionGeometry) -> bool:
    """A fit with finite vertices between the source and the detector."""
    if not np.isfinite(fit.vertices_mm).all():
        return False
    depth = (fit.vertices_mm - geometry.source_ras_mm) @ geometry.beam_direction_ras
    return bool(depth.min() > 0.2 * geometry.source_to_detector_mm and depth.max() < geometry.source_to_detector_mm)


def _bone_model(structure: str, models: dict[str, ShapeModel]) -> ShapeModel | None:
    """The structure's shape model for its side, or None."""
    kind = structure_bone_type(structure)
    return models[kind[0]].for_side(kind[1]) if kind is not None and kind[0] in models else None


def _bone_fit(fit: ShapeFit, model: ShapeModel, geometry: ProjectionGeometry, counts: list[int]) -> BoneFit | str:
    if not _plausible(fit, geometry):
        return "the fit left the space between source and detector"
    return BoneFit(polydata_from_arrays(fit.vertices_mm, model.triangles), fit, model.landmark_names,
                   model.landmarks(fit.vertices_mm), counts)


def fit_bones(predictions: list[LandmarkPrediction], models: dict[str, ShapeModel], structures: list[str],
              presence_threshold: float = 0.5, min_landmarks: int = MIN_LANDMARKS) -> dict[str, BoneFit | str]:
    """``ssm``: {structure: its fit to the landmarks, or why there is none}, for each structure."""
    results: dict[str, BoneFit | str] = {}
    for structure in structures:
        model = _bone_model(structure, models)
        if model is None:
            results[structure] = "no shape model"
            continue
        views, counts = _views_of(model, structure, predictions, presence_threshold)
        if sum(counts) < min_landmarks:
            results[structure] = f"{sum(counts)} of its landmarks found, fewer than {min_landmarks}"
            continue
        used = [view for view, count in zip(views, counts) if count >= 2] or views
        fit = fit_shape_to_landmarks(model, used, depth_prior_mm=(_isocentre_distance_mm(used[0].geometry),
                                                                  DEPTH_PRIOR_SD_MM))
        results[structure] = _bone_fit(fit, model, used[0].geometry, counts)
    return results


def combine_bones(depth: Reconstruction, predictions: list[LandmarkPrediction] | None,
                  models: dict[str, ShapeModel], structures: list[str], presence_threshold: float = 0.5,
                  threshold: float = 0.5) -> dict[str, BoneFit | str]:
    """``combined``: {structure: its shape model fitted to the depth network's evidence (and the
    landmarks in ``predictions``, where given), or why there is none}, for each structure.

    Args:
        depth: the depth method's reconstruction of the same radiographs (its predictions and
            the views in which each structure was found).
        threshold: the mask probability taken as bone, as in the depth method.
    """
    results: dict[str, BoneFit | str] = {}
    for structure in structures:
        model = _bone_model(structure, models)
        found = depth.structures.get(structure)
        if model is None:
            results[structure] = "no shape model"
            continue
        if found is None or not found.found:
            results[structure] = "the depth network did not find it"
            continue
        evidence = [clean_evidence(depth.predictions[view].evidence(structure, threshold)) for view in found.views_used]
        views, counts = _views_of(model, structure, predictions, presence_threshold) if predictions else (None, [])
        try:
            fit = fit_shape_to_evidence(model, evidence, views)
        except XreconInputError as error:  # a speck of a mask, or none once cleaned: this bone only
            results[structure] = str(error)
            continue
        results[structure] = _bone_fit(fit, model, evidence[0].geometry, counts)
    return results
