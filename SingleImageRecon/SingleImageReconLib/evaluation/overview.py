"""One PNG to look at a reconstruction: the radiograph with the predicted mask outlines, the
reconstructed surfaces and the CT ground-truth surfaces, each coloured by its signed distance to
the other, seen from the X-ray source so that the three panels line up.

The 3D panels are drawn without a 3D engine: triangles are projected orthographically onto the
screen plane and painted far to near (painter's algorithm) as one matplotlib PolyCollection,
which stays fast for a few hundred thousand triangles. Nothing here touches pyplot's global state.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import vtk
from matplotlib.cm import ScalarMappable
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from vtk.util.numpy_support import vtk_to_numpy

from SyntheticDataGenLib.atomic_io import atomic_path
from SyntheticDataGenLib.errors import XreconInputError

DISTANCE_ARRAY = "distance_mm"
DISTANCE_CMAP = "RdBu_r"
NEUTRAL_RGB = np.array([0.85, 0.80, 0.68])  # bone-ish, for surfaces without a distance array
_SIDES = ("R", "A", "S")  # the patient side each positive RAS axis points to; negative: L, P, I
_OPPOSITE = {"R": "L", "A": "P", "S": "I"}


def screen_axes(beam_direction_ras, up_ras=(0, 0, 1), right_ras=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, up, forward) unit vectors in RAS of the 3D panels' viewer; forward points away from it.

    The viewer sits at the X-ray source and looks along the beam: forward = beam direction,
    up = ``up_ras`` made orthogonal to it (another axis if the two are parallel), right =
    forward × up. An AP beam (0, -1, 0) with up (0, 0, 1) gives right = (-1, 0, 0): the patient's
    left on the screen right, as on the AP radiograph. If ``right_ras`` (e.g. the geometry's
    ``detector_u_ras``) points the other way, the viewer moves to the detector side (forward and
    right flip), so that PA or lateral images, displayed the way radiologists read them, line up too.
    """
    forward = np.asarray(beam_direction_ras, float)
    if forward.shape != (3,) or not np.all(np.isfinite(forward)) or np.linalg.norm(forward) == 0:
        raise XreconInputError(f"overview: beam direction {forward.tolist()} is not a 3D direction")
    forward = forward / np.linalg.norm(forward)
    up = np.asarray(up_ras, float)
    up = up - up.dot(forward) * forward
    if np.linalg.norm(up) < 1e-6:  # up along the beam: take the RAS axis most across the beam
        axis = np.eye(3)[np.argmin(np.abs(forward))]
        up = axis - axis.dot(forward) * forward
    up /= np.linalg.norm(up)
    right = np.cross(forward, up)
    if right_ras is not None and np.dot(right_ras, right) < 0:
        right, forward = -right, -forward
    return right, up, forward


def _triangles(polydata: vtk.vtkPolyData) -> tuple[np.ndarray, np.ndarray | None]:
    """(corners [T, 3, 3] RAS mm, distance per triangle [T] or None) of a surface's polygons."""
    triangulate = vtk.vtkTriangleFilter()
    triangulate.SetInputData(polydata)
    triangulate.PassVertsOff()
    triangulate.PassLinesOff()
    triangulate.Update()
    mesh = triangulate.GetOutput()
    if mesh.GetNumberOfPolys() == 0:
        return np.zeros((0, 3, 3)), None
    points = vtk_to_numpy(mesh.GetPoints().GetData()).astype(float)
    faces = vtk_to_numpy(mesh.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    distance = None
    if (array := mesh.GetPointData().GetArray(DISTANCE_ARRAY)) is not None:
        values = vtk_to_numpy(array).astype(float).reshape(len(points), -1)[:, 0][faces]  # [T, 3]
        finite = np.isfinite(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            distance = np.where(finite, values, 0).sum(1) / finite.sum(1)  # NaN where no finite corner
    elif (array := mesh.GetCellData().GetArray(DISTANCE_ARRAY)) is not None:
        distance = vtk_to_numpy(array).astype(float).reshape(len(faces), -1)[:, 0]
    return points[faces], distance


def _draw_surfaces(axis, surfaces: dict, right, up, forward, norm, cmap) -> np.ndarray | None:
    """Paint the surfaces on ``axis``, far first; return their screen bounds [[x0, y0], [x1, y1]]."""
    corners, rgb = [], []
    for polydata in surfaces.values():
        triangles, distance = _triangles(polydata)
        if len(triangles) == 0:
            continue
        colour = np.tile(NEUTRAL_RGB, (len(triangles), 1))
        if distance is not None:
            known = np.isfinite(distance)
            colour[known] = cmap(norm(distance[known]))[:, :3]
        corners.append(triangles)
        rgb.append(colour)
    if not corners:
        axis.text(0.5, 0.5, "no surfaces", ha="center", va="center", transform=axis.transAxes, color="0.5")
        return None
    corners, rgb = np.concatenate(corners), np.concatenate(rgb)
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normal, axis=1)
    facing = np.abs(normal @ forward) / np.where(length > 0, length, 1)  # Lambert, light at the viewer
    rgb = rgb * (0.35 + 0.65 * facing)[:, None]
    screen = np.stack([corners @ right, corners @ up], axis=-1)  # [T, 3, 2]
    order = np.argsort(-(corners.mean(1) @ forward), kind="stable")  # largest depth (farthest) first
    axis.add_collection(PolyCollection(screen[order], facecolors=rgb[order], edgecolors=rgb[order],
                                       linewidths=0.15, antialiaseds=False))
    flat = screen.reshape(-1, 2)
    return np.array([flat.min(0), flat.max(0)])


def _side_letters(axis, right, up) -> None:
    """Mark the patient side at each screen edge (R/L, A/P, S/I along the dominant RAS axis)."""
    def letter(direction):
        index = int(np.argmax(np.abs(direction)))
        side = _SIDES[index]
        return side if direction[index] > 0 else _OPPOSITE[side]
    style = dict(transform=axis.transAxes, fontsize=11, color="0.3", fontweight="bold")
    axis.text(0.99, 0.5, letter(right), ha="right", va="center", **style)
    axis.text(0.01, 0.5, letter(-right), ha="left", va="center", **style)
    axis.text(0.5, 0.99, letter(up), ha="center", va="top", **style)
    axis.text(0.5, 0.01, letter(-up), ha="center", va="bottom", **style)


def _number(value, digits: int) -> str:
    return f"{value:.{digits}f}" if value is not None and np.isfinite(value) else "–"


def _write_png_atomically(figure: Figure, path: Path) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)


def overview_figure(path: str | os.PathLike, *, radiograph: np.ndarray, mask_probabilities: np.ndarray,
                    names: list[str], reconstructions: dict[str, vtk.vtkPolyData],
                    truths: dict[str, vtk.vtkPolyData], beam_direction_ras: np.ndarray,
                    up_ras: np.ndarray = (0, 0, 1), title: str = "",
                    table_rows: list[tuple[str, float, float, float]] | None = None,
                    distance_range_mm: float = 5.0, right_ras: np.ndarray | None = None,
                    method_rows: list[tuple[str, int, float, float, float]] | None = None) -> None:
    """Write a 1800×1000 px PNG overview of one reconstruction, atomically (temporary file, rename).

    Args:
        path: the PNG to write.
        radiograph: [H, W] image, row 0 at the top (indexed [v, u]); any intensity unit, shown in
            grey between its 1st and 99th percentiles.
        mask_probabilities: [S, H', W'] predicted mask probabilities in [0, 1], one channel per
            name; outlined at 0.5 in one colour per structure (stretched onto the radiograph if
            H', W' differ from H, W).
        names: the S structure names, in channel order.
        reconstructions: structure → reconstructed surface (RAS mm), with an optional point array
            ``distance_mm``: signed distance to the CT surface in mm.
        truths: structure → CT ground-truth surface (RAS mm), ``distance_mm`` = signed distance to
            the reconstruction in mm.
        beam_direction_ras: direction the X-rays travel (source → detector) in RAS; the 3D panels
            show the view from the source along it, orthographic, with ``up_ras`` as the screen
            up and right = beam × up (AP beam (0, -1, 0): patient's left on the image right).
        right_ras: optional screen-right direction in RAS; pass the geometry's ``detector_u_ras``
            to make PA and lateral-left views line up with their radiograph too (the 3D panels
            are then seen from the detector side when that is what the image layout implies).
        title: figure title.
        table_rows: optional (structure, ASSD mm, HD95 mm, Dice) rows shown as a table.
        method_rows: optional (method, bones measured, mean ASSD mm, mean HD95 mm, mean Dice) rows:
            every method of the run side by side, under the colour scale.
        distance_range_mm: the colour scale runs from −range to +range mm; beyond it, clipped.

    Triangles are coloured by the mean of their corners' finite ``distance_mm`` values; surfaces
    without the array (or triangles without a finite value) are drawn in a neutral bone colour.
    """
    path = Path(path)
    image = np.squeeze(np.asarray(radiograph, float))
    if image.ndim != 2:
        raise XreconInputError(f"overview: radiograph must be [H, W], got shape {np.shape(radiograph)}")
    if mask_probabilities is None or np.size(mask_probabilities) == 0:
        masks = np.zeros((0, *image.shape))
    else:
        masks = np.asarray(mask_probabilities, float)
        masks = masks.reshape(-1, *masks.shape[-2:])
    if len(masks) != len(names):
        raise XreconInputError(f"overview: {len(masks)} mask channels for {len(names)} names")
    right, up, forward = screen_axes(beam_direction_ras, up_ras, right_ras)
    cmap = matplotlib.colormaps[DISTANCE_CMAP]
    norm = Normalize(-abs(distance_range_mm), abs(distance_range_mm), clip=True)
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]

    figure = Figure(figsize=(18, 10), dpi=100)
    FigureCanvasAgg(figure)  # Agg for this figure only; pyplot and its backend stay untouched
    grid = figure.add_gridspec(2, 3, height_ratios=[5, 2.0], left=0.02, right=0.98, bottom=0.02,
                               top=0.92 if title else 0.96, wspace=0.04, hspace=0.1)
    if title:
        figure.suptitle(title, fontsize=16)

    axis = figure.add_subplot(grid[0, 0])
    finite = image[np.isfinite(image)]
    low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    height, width = image.shape
    axis.imshow(np.nan_to_num(image, nan=low), cmap="gray", vmin=low, vmax=high if high > low else low + 1,
                origin="upper", interpolation="antialiased", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    handles = []
    for channel, name in enumerate(names):
        colour = palette(channel % palette.N)
        inside = np.nan_to_num(masks[channel]) >= 0.5
        if inside.any() and not inside.all():
            rows, columns = inside.shape
            u = (np.arange(columns) + 0.5) * width / columns - 0.5
            v = (np.arange(rows) + 0.5) * height / rows - 0.5
            axis.contour(u, v, inside.astype(float), levels=[0.5], colors=[colour], linewidths=1.5)
        handles.append(Line2D([], [], color=colour, lw=2, label=name if inside.any() else f"{name} (no mask)"))
    if handles:
        axis.legend(handles=handles, loc="upper right", fontsize=9, framealpha=0.7)
    axis.set_title("radiograph + predicted masks (p ≥ 0.5)")
    axis.axis("off")

    bounds = []
    panels = [(reconstructions, "reconstruction: distance to CT surface"),
              (truths, "CT ground truth: distance to reconstruction")]
    surface_axes = [figure.add_subplot(grid[0, 1]), figure.add_subplot(grid[0, 2])]
    for axis, (surfaces, label) in zip(surface_axes, panels):
        bounds.append(_draw_surfaces(axis, surfaces or {}, right, up, forward, norm, cmap))
        axis.set_title(label)
        _side_letters(axis, right, up)
    known = [b for b in bounds if b is not None]
    low, high = (np.min([b[0] for b in known], 0), np.max([b[1] for b in known], 0)) if known \
        else (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    box = surface_axes[0].get_position()  # both panels have this size; limits in its aspect ratio
    ratio = box.width * figure.get_figwidth() / (box.height * figure.get_figheight())
    centre, span = (low + high) / 2, np.maximum(high - low, 1.0)
    half_height = 0.54 * max(span[1], span[0] / ratio)  # 8 % margin
    for axis in surface_axes:  # one camera, one scale for both, equal aspect
        axis.set_xlim(centre[0] - half_height * ratio, centre[0] + half_height * ratio)
        axis.set_ylim(centre[1] - half_height, centre[1] + half_height)
        axis.set_aspect("equal", adjustable="box")
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_color("0.85")

    holder = figure.add_subplot(grid[1, 1:])
    holder.axis("off")
    bar = figure.colorbar(ScalarMappable(norm, cmap), cax=holder.inset_axes([0.2, 0.55, 0.6, 0.2]),
                          orientation="horizontal", extend="both")
    bar.set_label("signed distance to the other surface (mm): + outside it, − inside", fontsize=12)
    if method_rows:
        cells = [[method, str(count), _number(assd, 2), _number(hd95, 2), _number(dice, 3)]
                 for method, count, assd, hd95, dice in method_rows]
        table = holder.table(cellText=cells, colLabels=["method", "bones", "mean ASSD (mm)", "mean HD95 (mm)",
                                                        "mean Dice"], cellLoc="center", bbox=[0.1, 0.0, 0.8, 0.36])
        table.auto_set_font_size(False)
        table.set_fontsize(10.0)

    if table_rows:
        axis = figure.add_subplot(grid[1, 0])
        axis.axis("off")
        cells = [[str(name), _number(assd, 2), _number(hd95, 2), _number(dice, 3)]
                 for name, assd, hd95, dice in table_rows]
        # one row per structure fills the panel's height: rows never overlap, whatever their number
        table = axis.table(cellText=cells, colLabels=["structure", "ASSD (mm)", "HD95 (mm)", "Dice"],
                           cellLoc="center", bbox=[0.0, 0.0, 1.0, 1.0])
        table.auto_set_font_size(False)
        table.set_fontsize(min(10.0, 160.0 / (len(cells) + 1)))
    _write_png_atomically(figure, path)
