"""From radiographs (or any per-view evidence) to one closed surface per structure.

The steps, each in its own module: the network predicts masks and depths
(:mod:`..networks.inference`), predictions are tidied (:mod:`.evidence_cleanup`), views that disagree
with the others are set aside (:mod:`.view_consistency`), and the rest are fused and meshed
(:mod:`.surface`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import torch
import vtk

from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

from .evidence_cleanup import clean_evidence
from ..networks.inference import DepthPrediction, predict
from ..networks.depth_network import DepthNet
from .surface import ViewEvidence, surface_from_views
from .view_consistency import consistent_views

# numpy, scipy and torch release the GIL, so two structures are meshed side by side (on two
# cores: 0.95 -> 0.76 s for the sample case's bones); VTK keeps it, so more threads gain little
_SURFACE_THREADS = 2


@dataclass
class StructureSurface:
    """One structure's result: its surface (RAS mm; None when no view saw it), the views used,
    how consistent the views were (see :func:`.view_consistency.consistent_views`), and the
    network's presence probability in each view (empty for evidence that is not a prediction)."""

    surface: vtk.vtkPolyData | None
    views_used: list[int]
    consistency: dict[str, float]
    presence: list[float] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.surface is not None


@dataclass
class Reconstruction:
    """Surfaces of every structure, the predictions they came from, and how long each stage took."""

    structures: dict[str, StructureSurface]
    predictions: list[DepthPrediction] = field(default_factory=list)
    timing_s: dict[str, float] = field(default_factory=dict)

    @property
    def surfaces(self) -> dict[str, vtk.vtkPolyData]:
        return {name: result.surface for name, result in self.structures.items() if result.surface is not None}


def surfaces_from_evidence(evidence: dict[str, list[ViewEvidence]], *, spacing_mm: float = 1.0,
                           fusion: str = "intersection", clean: bool = True) -> dict[str, StructureSurface]:
    """Each structure's surface from its views' evidence.

    ``clean`` tidies masks and depths first (for predictions; exact evidence needs none).
    """
    results = {}
    for name, views in evidence.items():
        views = [clean_evidence(view) for view in views] if clean else list(views)
        used, consistency = consistent_views(views)
        surface = surface_from_views([views[index] for index in used], spacing_mm, fusion=fusion) if used else None
        results[name] = StructureSurface(surface, used, consistency)
    return results


def reconstruct_radiographs(model: DepthNet, metadata: dict, images: list[np.ndarray],
                            geometries: list[ProjectionGeometry], *, structures: list[str] | None = None,
                            spacing_mm: float = 1.0, fusion: str = "intersection", threshold: float = 0.5,
                            presence_threshold: float = 0.5, device: torch.device | str = "cpu",
                            progress: Callable[[int, int, str], None] = lambda done, total, name: None
                            ) -> Reconstruction:
    """Surfaces of the bundle's structures (or ``structures``) from calibrated radiographs.

    A structure is reconstructed from the views whose presence probability reaches
    ``presence_threshold``; one that no view finds gets no surface (``found`` False), whatever
    its mask says, so that bones the image does not show are not invented.

    Args:
        images: (H, W) radiographs, bone bright.
        geometries: one per image, of matching size.
        threshold: mask probability above which a pixel's ray is taken to meet the bone.
        presence_threshold: presence probability above which a view is taken to show a structure.
        progress: called with (structures done, of how many, the structure last done) as
            each structure is meshed, for a progress bar (in the calling thread).
    """
    start = time.perf_counter()
    predictions = predict(model, metadata, images, geometries, device)
    predicted = time.perf_counter()
    names = structures or predictions[0].names

    def one(name: str) -> StructureSurface:
        index = predictions[0].names.index(name)
        presence = [float(prediction.presence[index]) for prediction in predictions]
        showing = [view for view, p in enumerate(presence) if p >= presence_threshold]
        if not showing:
            return StructureSurface(None, [], {}, presence)
        found = surfaces_from_evidence({name: [predictions[view].evidence(name, threshold) for view in showing]},
                                       spacing_mm=spacing_mm, fusion=fusion, clean=True)[name]
        found.views_used = [showing[view] for view in found.views_used]  # back to the caller's view numbers
        found.presence = presence
        return found

    done = {}
    progress(0, len(names), names[0] if names else "")
    pool = ThreadPoolExecutor(max_workers=_SURFACE_THREADS)
    try:
        futures = {pool.submit(one, name): name for name in names}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            progress(len(done), len(names), futures[future])
    finally:  # a progress callback may stop the job (a cancel button, Ctrl-C): drop what has not started
        pool.shutdown(wait=True, cancel_futures=True)
    results = {name: done[name] for name in names}
    finished = time.perf_counter()
    return Reconstruction(results, predictions, {"network": predicted - start, "surfaces": finished - predicted})
