"""A contact sheet of a CT's bone labels, for checking propagated labels by eye.

Three panels: a coronal and a sagittal slab through the labelled bones (maximum HU over a
30 mm slab, so whole vertebrae and hips show) and a lateral projection of the labels, each
with every structure coloured and named at its centre. Rendered with matplotlib's object API
(no pyplot state), written atomically as PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from ..atomic_io import atomic_path

_SLAB_MM = 30.0


def _ras_volume(ct: sitk.Image, labels: np.ndarray, spacing_mm: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """CT and labels resampled onto an RAS-aligned grid: arrays indexed [S, A, R] (k, j, i)."""
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct)
    # LPS direction of an RAS-aligned grid whose i, j, k run towards R, A, S
    direction = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    corners = [ct.TransformContinuousIndexToPhysicalPoint([c * (n - 1) for c, n in zip(corner, ct.GetSize())])
               for corner in np.ndindex(2, 2, 2)]
    lps = np.asarray(corners)
    ras_min = np.array([-lps[:, 0].max(), -lps[:, 1].max(), lps[:, 2].min()])
    ras_max = np.array([-lps[:, 0].min(), -lps[:, 1].min(), lps[:, 2].max()])
    size = np.maximum(1, np.ceil((ras_max - ras_min) / spacing_mm).astype(int) + 1)
    grid = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetDirection(direction)
    grid.SetOrigin((-ras_min[0], -ras_min[1], ras_min[2]))
    hu = sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    lab = sitk.Resample(label_image, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16)
    return sitk.GetArrayFromImage(hu), sitk.GetArrayFromImage(lab)


def _colours(count: int) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return np.array([cmap(i % 20)[:3] for i in range(count)])


def _panel(axes, hu_slab: np.ndarray, label_slab: np.ndarray, names: Sequence[str], colours: np.ndarray,
           title: str) -> None:
    grey = np.clip((hu_slab + 200.0) / 1400.0, 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for value in range(1, len(names) + 1):
        inside = label_slab == value
        if inside.any():
            rgb[inside] = 0.45 * rgb[inside] + 0.55 * colours[value - 1]
    axes.imshow(rgb[::-1], interpolation="nearest")  # superior at the top
    height = label_slab.shape[0]
    for value in range(1, len(names) + 1):
        rows, cols = np.nonzero(label_slab == value)
        if len(rows):
            axes.text(cols.mean(), height - 1 - rows.mean(), names[value - 1].replace("vertebrae_", ""),
                      fontsize=5, color="white", ha="center", va="center")
    axes.set_title(title, fontsize=7)
    axes.set_axis_off()


def sheet_panels(ct: sitk.Image, labels: np.ndarray, spacing_mm: float = 1.5) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The three panels as (HU, labels, title), each [S, column] with row 0 inferior (shown flipped):
    a coronal slab with the patient's right in the first columns (as a radiograph is read), a
    sagittal slab with anterior in the last, and the lateral projection."""
    hu, lab = _ras_volume(ct, labels, spacing_mm)  # [S, A, R], R growing towards the patient's right
    inside = np.nonzero(lab)
    centre = [int(np.median(axis)) for axis in inside] if len(inside[0]) else [n // 2 for n in lab.shape]
    half = int(_SLAB_MM / spacing_mm / 2)
    a0, a1 = max(0, centre[1] - half), centre[1] + half + 1
    r0, r1 = max(0, centre[2] - half), centre[2] + half + 1
    return [(hu[:, a0:a1, ::-1].max(axis=1), lab[:, a0:a1, ::-1].max(axis=1),
             "coronal slab (patient's right on the left)"),
            (hu[:, :, r0:r1].max(axis=2), lab[:, :, r0:r1].max(axis=2), "sagittal slab (anterior on the right)"),
            (hu.max(axis=2), lab.max(axis=2), "lateral projection")]


def contact_sheet(path: str | os.PathLike, ct: sitk.Image, labels: np.ndarray, names: Sequence[str],
                  title: str) -> None:
    """Write the sheet of ``labels`` ((k, j, i) on the CT grid, value i + 1 for ``names[i]``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = sheet_panels(ct, labels)
    colours = _colours(len(names))
    # panel aspect: S rows over R (coronal) or A (sagittal) columns
    aspect = panels[0][1].shape[0] / max(panel[1].shape[1] for panel in panels)
    figure = Figure(figsize=(12, 0.8 + 4 * aspect), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    for axes, (hu_slab, label_slab, panel_title) in zip(figure.subplots(1, 3), panels):
        _panel(axes, hu_slab, label_slab, names, colours, panel_title)
    figure.suptitle(title, fontsize=9)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
