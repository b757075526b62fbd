"""Reconstructed surfaces against the CT's labels: metrics per structure, and both surfaces
coloured by their signed distance to each other (point array ``distance_mm``, + outside)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import vtk
from vtk.util import numpy_support

from SyntheticDataGenLib.cases.labels import Segmentation

from .metrics import SurfaceComparison, clip_to_scan, cut_sides, evaluate_meshes, mask_surface, volume_overlap
from ..meshes.triangle_mesh import as_mesh

DISTANCE_ARRAY = "distance_mm"
_MARGIN_VOXELS = 3


@dataclass
class StructureEvaluation:
    """One structure: its metrics (see :func:`.metrics.evaluate_structure`), the reconstruction
    coloured by its distance to the truth, and the truth surface coloured by its distance to
    the reconstruction (RAS mm)."""

    metrics: dict
    reconstruction: vtk.vtkPolyData
    truth: vtk.vtkPolyData


def with_distance(surface: vtk.vtkPolyData, signed_mm: np.ndarray) -> vtk.vtkPolyData:
    """A copy of ``surface`` with the point array ``distance_mm``: (N,) signed distances, mm."""
    copy = vtk.vtkPolyData()
    copy.DeepCopy(surface)
    array = numpy_support.numpy_to_vtk(np.asarray(signed_mm, dtype=np.float32), deep=True)
    array.SetName(DISTANCE_ARRAY)
    copy.GetPointData().AddArray(array)
    copy.GetPointData().SetActiveScalars(DISTANCE_ARRAY)
    return copy


def _crop(mask_kji: np.ndarray, ijk_to_ras: np.ndarray, surface: vtk.vtkPolyData) -> tuple[np.ndarray, np.ndarray]:
    """The mask cut to the box holding it and the surface (plus a margin), and that box's matrix."""
    bounds = np.array(surface.GetBounds()).reshape(3, 2)
    corners = np.array([[x, y, z, 1.0] for x in bounds[0] for y in bounds[1] for z in bounds[2]])
    corners_ijk = (np.linalg.inv(ijk_to_ras) @ corners.T)[:3].T[:, ::-1]  # as (k, j, i)
    occupied = np.argwhere(mask_kji)
    low = np.floor(np.minimum(occupied.min(axis=0), corners_ijk.min(axis=0))).astype(int) - _MARGIN_VOXELS
    high = np.ceil(np.maximum(occupied.max(axis=0), corners_ijk.max(axis=0))).astype(int) + _MARGIN_VOXELS + 1
    low, high = np.maximum(low, 0), np.minimum(high, mask_kji.shape)
    shift = np.eye(4)
    shift[:3, 3] = low[::-1]
    crop = mask_kji[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    return crop, ijk_to_ras @ shift


def default_workers() -> int:
    """Processes for :func:`evaluate_surfaces` on this machine: its CPUs, at most 4."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


@contextmanager
def measuring_pool(workers: int) -> Iterator[Executor | None]:
    """``workers`` processes for :func:`evaluate_surfaces`, started at once so that they import
    numpy and VTK while the caller goes on; None for one worker (measure in this process)."""
    if workers <= 1:
        yield None
        return
    # spawn, not fork: a forked child inherits VTK's and torch's thread pools without their threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for _ in range(workers):
            pool.submit(volume_overlap, np.zeros(1), np.zeros(1))  # any task from metrics: starts and imports
        yield pool


def evaluate_surfaces(surfaces: dict[str, vtk.vtkPolyData], segmentation: Segmentation, ijk_to_ras: np.ndarray,
                      taus_mm: tuple[float, ...] = (1.0, 2.0), pool: Executor | None = None,
                      progress: Callable[[int, int, str], None] | None = None) -> dict[str, StructureEvaluation]:
    """Evaluate each reconstructed structure that the segmentation holds (others are skipped).

    Where the scan cuts a structure off (its label touches the volume's edge), the
    reconstruction is measured only inside the scan (:func:`.metrics.clip_to_scan`): a shape
    model completes a bone past the scan's end, where there is no truth to compare with.

    Args:
        surfaces: structure name -> closed RAS surface.
        segmentation: the CT's labels; ``ijk_to_ras`` their grid.
        pool: processes that measure structures side by side (:func:`measuring_pool`); None
            measures them here, as in Slicer, whose embedded Python cannot start them.
        progress: called with (structures done, structures in all, the last one's name).
    """
    truths, jobs, surfaces = {}, {}, dict(surfaces)
    for name, surface in surfaces.items():
        if name not in segmentation.names or not segmentation.mask_array(name).any():
            continue
        whole = segmentation.mask_array(name) != 0
        clipped = clip_to_scan(surface, whole.shape, ijk_to_ras, cut_sides(whole))
        surface = surfaces[name] = clipped if clipped.GetNumberOfPolys() else surface
        mask, matrix = _crop(whole, ijk_to_ras, surface)
        truths[name] = mask_surface(mask, matrix)
        jobs[name] = (as_mesh(surface, name), as_mesh(truths[name], f"{name} labels"), mask, matrix, taus_mm)
    comparisons = {}
    for name, comparison in _measure_all(jobs, pool):
        comparisons[name] = comparison
        if progress is not None:
            progress(len(comparisons), len(jobs), name)
    return {name: StructureEvaluation(comparisons[name].metrics,
                                      with_distance(surfaces[name], comparisons[name].reconstruction_signed_mm),
                                      with_distance(truths[name], comparisons[name].truth_signed_mm))
            for name in jobs}


def _measure_all(jobs: dict[str, tuple], pool: Executor | None) -> Iterator[tuple[str, SurfaceComparison]]:
    """(name, comparison) of every job, in the order they finish."""
    if pool is None:
        for name, job in jobs.items():
            yield name, evaluate_meshes(*job)
        return
    largest_first = sorted(jobs, key=lambda name: -len(jobs[name][0].triangles) - len(jobs[name][1].triangles))
    futures = {pool.submit(evaluate_meshes, *jobs[name]): name for name in largest_first}
    for future in as_completed(futures):
        yield futures[future], future.result()


METRIC_KEYS = ("assd_mm", "hd95_mm", "chamfer_mm", "to_truth_mm", "to_reconstruction_mm", "dice", "iou", "f1",
               "f1_tau_mm", "precision", "recall", "f1_by_tau_mm")


def metrics_document(methods: dict[str, dict[str, StructureEvaluation]], timing_s: dict[str, float],
                     extra: dict | None = None) -> dict:
    """``metrics.json`` as DESIGN.md gives it: methods -> structures -> metrics, and stage timings.

    Each method also has ``mean``: the mean over its structures of each number (the printed
    table's last row), with ``structures`` counting them.
    """
    document = {"methods": {method: {"structures": {name: {key: evaluation.metrics[key] for key in METRIC_KEYS}
                                                    for name, evaluation in evaluations.items()},
                                     "mean": mean_metrics(evaluations)}
                            for method, evaluations in methods.items()},
                "timing_s": {stage: round(float(seconds), 4) for stage, seconds in timing_s.items()}}
    document.update(extra or {})
    return document


def mean_metrics(evaluations: dict[str, StructureEvaluation]) -> dict:
    """The mean of each numeric metric over the structures, and ``structures``: how many."""
    numbers = [key for key in METRIC_KEYS if all(isinstance(e.metrics[key], (int, float)) for e in evaluations.values())]
    mean = {key: float(np.mean([e.metrics[key] for e in evaluations.values()])) for key in numbers} if evaluations else {}
    return {**mean, "structures": len(evaluations)}


def metrics_table(methods: dict[str, dict[str, StructureEvaluation]]) -> str:
    """A plain-text table of the main metrics, one row per method and structure."""
    lines = [f"{'method':8s} {'structure':16s} {'ASSD mm':>8s} {'HD95 mm':>8s} {'Dice':>6s} {'F1@1mm':>7s} {'F1@2mm':>7s}"]
    for method, evaluations in methods.items():
        for name, evaluation in evaluations.items():
            m = evaluation.metrics
            f1 = m["f1_by_tau_mm"]
            lines.append(f"{method:8s} {name:16s} {m['assd_mm']:8.2f} {m['hd95_mm']:8.2f} {m['dice']:6.3f} "
                         f"{f1.get('1', float('nan')):7.3f} {f1.get('2', float('nan')):7.3f}")
        if evaluations:
            mean = lambda key: np.mean([e.metrics[key] for e in evaluations.values()])  # noqa: E731
            lines.append(f"{method:8s} {'mean':16s} {mean('assd_mm'):8.2f} {mean('hd95_mm'):8.2f} {mean('dice'):6.3f}")
    return "\n".join(lines)
