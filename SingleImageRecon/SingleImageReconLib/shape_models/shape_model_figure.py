"""A picture of shape models: each mean from the front, the side and above, with its landmarks,
and the mean ± 2 SD of its first mode, so a person can check the landmarks and the variation by eye."""

from __future__ import annotations

import os

import numpy as np

from .shape_model import ShapeModel

# (title, horizontal axis as a RAS direction, vertical, viewing direction towards the viewer)
_VIEWS = (("front (AP)", (-1, 0, 0), (0, 0, 1), (0, 1, 0)),
          ("left side", (0, 1, 0), (0, 0, 1), (-1, 0, 0)),
          ("from above", (-1, 0, 0), (0, 1, 0), (0, 0, 1)))


def _draw_surface(axes, vertices: np.ndarray, triangles: np.ndarray, view, colour=(0.85, 0.82, 0.75), alpha=1.0):
    """Shaded triangles projected orthographically, far ones first (painter's algorithm)."""
    from matplotlib.collections import PolyCollection

    right, up, towards = (np.asarray(v, dtype=float) for v in view)
    corners = vertices[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    facing = normals @ towards
    order = np.argsort(corners.mean(axis=1) @ towards)
    shade = 0.35 + 0.65 * np.clip(facing[order], 0.0, 1.0)
    polygons = np.stack([corners[order] @ right, corners[order] @ up], axis=2)
    axes.add_collection(PolyCollection(polygons, facecolors=np.clip(np.outer(shade, colour), 0, 1),
                                       edgecolors="none", alpha=alpha))
    axes.set_xlim(polygons[..., 0].min() - 5, polygons[..., 0].max() + 5)
    axes.set_ylim(polygons[..., 1].min() - 5, polygons[..., 1].max() + 5)
    axes.set_aspect("equal")
    axes.set_xticks([])
    axes.set_yticks([])


def save_shape_model_figure(models: list[ShapeModel], path: str | os.PathLike) -> None:
    """One row a model: three views of the mean with numbered landmarks, then mode 1 at ±2 SD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, grid = plt.subplots(len(models), 5, figsize=(20, 4.2 * len(models)), squeeze=False,
                                gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.25]})
    for row, model in zip(grid, models):
        points = model.landmarks(model.mean_mm) if model.landmark_names else np.zeros((0, 3))
        for axes, (title, *view) in zip(row[:3], _VIEWS):
            _draw_surface(axes, model.mean_mm, model.triangles, view)
            right, up, towards = (np.asarray(v, dtype=float) for v in view)
            axes.scatter(points @ right, points @ up, s=18, c="crimson", zorder=3)
            for number, point in enumerate(points, start=1):
                axes.annotate(str(number), (point @ right, point @ up), fontsize=7, color="darkred",
                              xytext=(3, 3), textcoords="offset points", zorder=4)
            axes.set_title(f"{model.name} ({model.side}) mean, {title}", fontsize=9)
        if model.mode_count:
            sd = model.standard_deviations_mm[0]
            for sign, colour in ((-2.0, (0.3, 0.5, 0.9)), (2.0, (0.9, 0.45, 0.3))):
                coefficients = np.zeros(1) + sign * sd
                _draw_surface(row[3], model.instance(coefficients), model.triangles, _VIEWS[0][1:], colour, 0.55)
            row[3].set_title("mode 1 at -2 SD (blue) and +2 SD (orange), front", fontsize=9)
        row[4].axis("off")
        lines = [f"{n}. {name}" for n, name in enumerate(model.landmark_names, start=1)]
        provenance = model.provenance
        lines += ["", f"{model.vertex_count} vertices, {model.mode_count} modes",
                  f"from {provenance.get('subjects', len(provenance.get('instances', [])))} instances"]
        row[4].text(0.0, 1.0, "\n".join(lines), va="top", fontsize=8, family="monospace")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    from PIL import Image

    with Image.open(path) as image:  # a palette keeps the grey shading and makes the file a quarter the size
        image.convert("RGB").quantize(colors=256).save(path, optimize=True)
