"""A model rebuilt from another set of its training shapes, by the recipe it was built with
(leave-one-out checks): rigid Procrustes, PCA, and the same smooth kernel where it had one."""

from __future__ import annotations

import numpy as np

from SyntheticDataGenLib.errors import XreconInputError

from .pca import pca, widen_with_smooth_kernel
from .procrustes import generalized_procrustes
from .shape_model import ShapeModel


def model_from_instances(model: ShapeModel, instances_mm: np.ndarray) -> ShapeModel:
    """``model``'s recipe applied to (S, N, 3) corresponding shapes."""
    aligned = generalized_procrustes(instances_mm)
    kernel = model.provenance.get("kernel")
    mean, modes, variances = pca(aligned, None if kernel else model.mode_count)
    if kernel:
        modes, variances = widen_with_smooth_kernel(mean, modes, variances, kernel["sd_mm"], kernel["width_mm"],
                                                    model.mode_count)
    return ShapeModel(model.name, model.side, mean, modes, variances, model.triangles, model.landmark_names,
                      model.landmark_weights, {**model.provenance, "rebuilt_from": int(len(instances_mm))}, aligned)


def leave_one_out(model: ShapeModel, index: int) -> ShapeModel:
    """``model`` rebuilt without its training shape ``index``."""
    count = len(model.instances_mm)
    if count < 3 or not 0 <= index < count:
        raise XreconInputError(f"the {model.name} model holds {count} training shapes; cannot leave out {index}")
    return model_from_instances(model, np.delete(model.instances_mm, index, axis=0))
