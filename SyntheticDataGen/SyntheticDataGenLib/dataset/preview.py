"""A contact sheet of dataset samples with their targets drawn on: to look at, not to read."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import XreconInputError
from .torch_dataset import load_sample, read_header
from .generation import read_manifests


def contact_sheet(dataset_dir: str | os.PathLike, out_png: str | os.PathLike, count: int = 32, seed: int = 0,
                  columns: int = 8, where: Callable[[dict], bool] | None = None) -> Path:
    """Write a PNG of ``count`` random samples (of the manifest rows ``where`` accepts): image in
    grey, each structure's mask outlined in its own colour, visible landmarks as dots, the case
    and view above each tile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dataset_dir = Path(dataset_dir)
    structures = read_header(dataset_dir)["settings"]["structures"]
    rows = [row for row in read_manifests(dataset_dir) if where is None or where(row)]
    if not rows:
        raise XreconInputError(f"{dataset_dir} holds no sample{' that the filter accepts' if where else ''} to draw")
    picked = sorted(np.random.default_rng(seed).choice(len(rows), size=min(count, len(rows)), replace=False))
    lines = -(-len(picked) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(2.2 * columns, 2.4 * lines), squeeze=False)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(structures), 1)))
    for axis in axes.ravel():
        axis.axis("off")
    for axis, index in zip(axes.ravel(), picked):
        row = rows[index]
        arrays = load_sample(dataset_dir / row["file"])
        axis.imshow(arrays["image"], cmap="gray", vmin=0, vmax=1)
        for channel, colour in zip(range(len(structures)), colours):
            if arrays["masks"][channel].any():
                axis.contour(arrays["masks"][channel], levels=[0.5], colors=[colour], linewidths=0.6)
        if "landmarks_uv" in arrays and arrays["landmarks_visible"].any():
            uv = arrays["landmarks_uv"][arrays["landmarks_visible"]]
            axis.plot(uv[:, 0], uv[:, 1], "o", color="yellow", markersize=2)
        draw = row["augmentation"]
        field = (row.get("anatomy") or {}).get("scan_field")
        scan = f" scan {'⌀' if field['disc'] else '□'}{2 * field['half_width_mm']:.0f} mm" if field else ""
        axis.set_title(f"{row['case']} #{row['view']}\nLAO {draw['lao_deg']:.0f} CRA {draw['cranial_deg']:.0f}"
                       f"{' flip' if draw['flip'] else ''}{scan}", fontsize=6)
    figure.suptitle(f"{dataset_dir.name}: {len(rows)} samples; outlines: {len(structures)} structures", fontsize=9)
    figure.tight_layout()
    out_png = Path(out_png)
    figure.savefig(out_png, dpi=110)
    plt.close(figure)
    return out_png
