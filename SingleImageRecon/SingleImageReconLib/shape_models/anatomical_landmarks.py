"""Anatomical landmarks defined once on a model's mean shape, as fixed weights over its vertices.

The mean lies in RAS anatomical axes (x to the patient's right, y anterior, z superior). Each
landmark is found there by a geometric rule and stored as weights over vertices, so it moves with
every shape and pose exactly (an affine combination commutes with rigid motion):

* a surface point (a tip, a corner) is one vertex;
* a centre inside the bone (femoral head, pedicle, acetabulum) is the least-norm affine
  combination of a group of surface vertices that reproduces the centre on the mean.

Sides: the rules take the side of a hip bone or femur, so medial and lateral are right for both.
Every rule is checked by eye in ``docs/shape_models.png`` (``xrecon ssm info --figure``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

Landmarks = tuple[tuple[str, ...], np.ndarray]


def _one_vertex(n: int, index: int) -> np.ndarray:
    weights = np.zeros(n)
    weights[int(index)] = 1.0
    return weights


def _group_mean(n: int, ids: np.ndarray) -> np.ndarray:
    weights = np.zeros(n)
    weights[np.asarray(ids)] = 1.0 / len(ids)
    return weights


def point_weights(vertices: np.ndarray, ids: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(N,) least-norm weights over vertices ``ids``, summing to 1, whose combination is ``point``."""
    ids = np.asarray(ids)
    system = np.vstack([vertices[ids].T, np.ones(len(ids))])  # (4, G)
    solution = np.linalg.lstsq(system, np.append(point, 1.0), rcond=None)[0]
    weights = np.zeros(len(vertices))
    weights[ids] = solution
    return weights


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre, radius) of the least-squares sphere through (P, 3) points (algebraic fit)."""
    system = np.hstack([2.0 * points, np.ones((len(points), 1))])
    solution = np.linalg.lstsq(system, (points ** 2).sum(axis=1), rcond=None)[0]
    centre = solution[:3]
    return centre, float(np.sqrt(solution[3] + centre @ centre))


def _projected_holes(vertices: np.ndarray, triangles: np.ndarray, axes: tuple[int, int], pixel_mm: float = 1.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hole label image, number per pixel, pixel → plane mm origin) of the surface projected along
    the third axis: the regions that the projected bone encloses (foramina, the spinal canal)."""
    from skimage.draw import polygon

    plane = vertices[:, axes]
    origin = plane.min(axis=0) - 3 * pixel_mm
    size = np.ceil((plane.max(axis=0) - origin) / pixel_mm).astype(int) + 4
    covered = np.zeros(size, dtype=bool)
    pixels = (plane - origin) / pixel_mm
    for triangle in triangles:
        rows, columns = polygon(pixels[triangle, 0], pixels[triangle, 1], covered.shape)
        covered[rows, columns] = True
        covered[np.round(pixels[triangle, 0]).astype(int), np.round(pixels[triangle, 1]).astype(int)] = True
    holes, _ = ndimage.label(ndimage.binary_fill_holes(covered) & ~covered)
    return holes, origin, np.array([pixel_mm, pixel_mm])


def _hole_ring(vertices: np.ndarray, triangles: np.ndarray, axes: tuple[int, int], choose, ring_mm: float = 3.0
               ) -> np.ndarray:
    """Vertex ids whose projection lies within ``ring_mm`` of the hole that ``choose`` picks
    (a function of the holes' (centre, area) lists, returning an index)."""
    holes, origin, pixel = _projected_holes(vertices, triangles, axes)
    labels = np.arange(1, holes.max() + 1)
    if not len(labels):
        raise ValueError("the projected surface encloses no hole")
    centres = np.array(ndimage.center_of_mass(holes > 0, holes, labels)) * pixel + origin
    areas = np.array(ndimage.sum(holes > 0, holes, labels)) * pixel.prod()
    chosen = labels[choose(centres, areas)]
    distance = ndimage.distance_transform_edt(holes != chosen) * pixel[0]
    pixels = np.round((vertices[:, axes] - origin) / pixel).astype(int)
    pixels = np.clip(pixels, 0, np.array(holes.shape) - 1)
    return np.flatnonzero(distance[pixels[:, 0], pixels[:, 1]] <= ring_mm)


def vertebra_landmarks(vertices: np.ndarray, triangles: np.ndarray) -> Landmarks:
    """Spinous and transverse process tips, pedicle centres, canal centre and body corners."""
    n = len(vertices)
    x, y, z = vertices.T
    # the spinal canal: the largest hole of the axial projection
    canal = _hole_ring(vertices, triangles, (0, 1), lambda centres, areas: int(np.argmax(areas)))
    canal_centre = vertices[canal].mean(axis=0)
    canal_front = np.percentile(y[canal], 90)
    canal_half_width = (np.percentile(x[canal], 95) - np.percentile(x[canal], 5)) / 2
    body = np.flatnonzero((y > canal_front + 2.0) & (np.abs(x - canal_centre[0]) < 4.0))
    names, rows = [], []

    def add(name: str, weights: np.ndarray) -> None:
        names.append(name)
        rows.append(weights)

    behind = np.flatnonzero(y < canal_centre[1])
    add("spinous_process_tip", _one_vertex(n, behind[np.argmin(y[behind] - 0.3 * np.abs(x[behind] - canal_centre[0]))]))
    for side, sign in (("right", 1.0), ("left", -1.0)):
        add(f"transverse_process_tip_{side}", _one_vertex(n, np.argmax(sign * (x - canal_centre[0]))))
    for side, sign in (("right", 1.0), ("left", -1.0)):
        axis = np.array([canal_centre[0] + sign * (canal_half_width + 4.0), canal_centre[1]])
        column = np.flatnonzero((np.linalg.norm(vertices[:, :2] - axis, axis=1) < 6.0)
                                & (np.abs(z - canal_centre[2]) < 8.0))
        add(f"pedicle_centre_{side}", _group_mean(n, column))
    add("canal_centre", _group_mean(n, canal))
    front = y[body] - canal_front
    for name, score in (("body_superior_anterior", z[body] + front), ("body_inferior_anterior", -z[body] + front),
                        ("body_superior_posterior", z[body] - front), ("body_inferior_posterior", -z[body] - front)):
        add(name, _one_vertex(n, body[np.argmax(score)]))
    return tuple(names), np.stack(rows)


def femoral_head(vertices: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(vertex ids on the head, centre, radius) of a femur in RAS axes."""
    medial = 1.0 if side == "left" else -1.0  # RAS +x is the patient's right: a left bone's medial side
    x, z = vertices[:, 0] * medial, vertices[:, 2]
    top = np.argmax(z + x)  # the head: the most superior-medial part of the femur
    ids = np.flatnonzero(np.linalg.norm(vertices - vertices[top], axis=1) < 25.0)
    centre, radius = fit_sphere(vertices[ids])
    on_head = np.flatnonzero(np.abs(np.linalg.norm(vertices - centre, axis=1) - radius) < 2.0)
    centre, radius = fit_sphere(vertices[on_head])
    return on_head, centre, radius


def femur_landmarks(vertices: np.ndarray, side: str) -> Landmarks:
    """Head centre, neck centre, greater and lesser trochanter, epicondyles and distal condyles."""
    n = len(vertices)
    medial = 1.0 if side == "left" else -1.0
    x, y, z = vertices.T
    head_ids, head_centre, radius = femoral_head(vertices, side)
    proximal = np.flatnonzero(z > head_centre[2] - 40.0)
    greater = proximal[np.argmin(medial * x[proximal] - 0.5 * z[proximal])]
    neck_point = (head_centre + vertices[greater]) / 2.0
    axis = (vertices[greater] - head_centre) / np.linalg.norm(vertices[greater] - head_centre)
    along = (vertices - neck_point) @ axis
    neck = np.flatnonzero((np.abs(along) < 3.0) & (np.linalg.norm(vertices - neck_point, axis=1) < 30.0))
    band = np.flatnonzero((z < head_centre[2] - 40.0) & (z > head_centre[2] - 80.0))
    lesser = band[np.argmax(medial * x[band] - 0.5 * y[band])]
    distal = np.flatnonzero(z < z.min() + 50.0)
    centre_x = np.median(x[distal])
    inner = distal[medial * (x[distal] - centre_x) > 0]
    outer = distal[medial * (x[distal] - centre_x) <= 0]
    names = ("femoral_head_centre", "femoral_neck_centre", "greater_trochanter", "lesser_trochanter",
             "medial_epicondyle", "lateral_epicondyle", "medial_condyle_distal", "lateral_condyle_distal")
    rows = [point_weights(vertices, head_ids, head_centre), _group_mean(n, neck), _one_vertex(n, greater),
            _one_vertex(n, lesser), _one_vertex(n, distal[np.argmax(medial * x[distal])]),
            _one_vertex(n, distal[np.argmin(medial * x[distal])]), _one_vertex(n, inner[np.argmin(z[inner])]),
            _one_vertex(n, outer[np.argmin(z[outer])])]
    return names, np.stack(rows)


def hip_landmarks(vertices: np.ndarray, triangles: np.ndarray, side: str, joint_centre: np.ndarray,
                  head_radius_mm: float) -> Landmarks:
    """ASIS, PSIS, iliac crest, acetabular centre, pubic tubercle and symphysis, ischial spine and
    tuberosity, obturator foramen centre, greater sciatic notch.

    ``joint_centre`` and ``head_radius_mm`` are the femoral head's in the same frame: the
    acetabulum is the hip bone's surface around it.
    """
    n = len(vertices)
    medial = 1.0 if side == "left" else -1.0
    x, y, z = vertices.T
    cup = np.flatnonzero(np.linalg.norm(vertices - joint_centre, axis=1) < head_radius_mm + 6.0)
    centre, _ = fit_sphere(vertices[cup])
    high = np.flatnonzero(z > centre[2] + 30.0)
    low = np.flatnonzero(z < centre[2] - 10.0)
    spine_band = np.flatnonzero((z < centre[2]) & (z > centre[2] - 35.0) & (y < centre[1]))
    foramen = _hole_ring(vertices, triangles, (1, 2), lambda centres, areas: int(np.argmax(
        areas * (centres[:, 1] < centre[2]))), ring_mm=2.0)
    spine = spine_band[np.argmax(medial * x[spine_band] - y[spine_band])]
    psis = high[np.argmin(y[high])]
    notch = _sciatic_notch(vertices, triangles, z[spine] + 5.0, z[psis] - 10.0)
    names = ("anterior_superior_iliac_spine", "posterior_superior_iliac_spine", "iliac_crest_top",
             "acetabular_centre", "pubic_tubercle", "pubic_symphysis", "ischial_spine", "ischial_tuberosity",
             "obturator_foramen_centre", "greater_sciatic_notch")
    rows = [_one_vertex(n, high[np.argmax(y[high])]), _one_vertex(n, psis), _one_vertex(n, np.argmax(z)),
            point_weights(vertices, cup, centre), _one_vertex(n, low[np.argmax(y[low] + 0.5 * medial * x[low])]),
            _one_vertex(n, low[np.argmax(medial * x[low])]), _one_vertex(n, spine), _one_vertex(n, np.argmin(z)),
            _group_mean(n, foramen), _group_mean(n, notch)]
    return names, np.stack(rows)


def _sciatic_notch(vertices: np.ndarray, triangles: np.ndarray, bottom_mm: float, top_mm: float) -> np.ndarray:
    """Vertex ids at the greater sciatic notch: the deepest (most anterior) point of the hip
    bone's posterior border in a lateral projection, between two heights."""
    from skimage.draw import polygon

    pixel_mm = 1.0
    plane = vertices[:, 1:]
    origin = plane.min(axis=0) - 2.0
    covered = np.zeros(np.ceil((plane.max(axis=0) - origin) / pixel_mm).astype(int) + 3, dtype=bool)
    pixels = (plane - origin) / pixel_mm
    for triangle in triangles:
        rows, columns = polygon(pixels[triangle, 0], pixels[triangle, 1], covered.shape)
        covered[rows, columns] = True
    heights = np.arange(int(np.ceil((bottom_mm - origin[1]) / pixel_mm)), int((top_mm - origin[1]) / pixel_mm))
    border = np.array([np.argmax(covered[:, h]) if covered[:, h].any() else -1 for h in heights])
    deepest = int(np.argmax(border))
    point = np.array([border[deepest], heights[deepest]]) * pixel_mm + origin
    return np.flatnonzero(np.linalg.norm(plane - point, axis=1) < 8.0)


def sacrum_landmarks(vertices: np.ndarray) -> Landmarks:
    """Promontory, median crest top, superior articular processes, alae tips, auricular surfaces'
    lower ends, the anterior surface's midpoint, sacral hiatus and apex."""
    n = len(vertices)
    x, y, z = vertices.T
    centre_x = np.median(x)
    lateral = x - centre_x
    midline = np.flatnonzero(np.abs(lateral) < 6.0)
    top, low = np.percentile(z, 80), np.percentile(z, 35)
    upper = np.flatnonzero(z > top)
    promontory = upper[np.argmax(y[upper] + z[upper])]
    names, rows = [], []

    def add(name: str, index) -> None:
        names.append(name)
        rows.append(_one_vertex(n, index))

    add("sacral_promontory", promontory)
    upper_midline = np.intersect1d(midline, upper)
    add("median_crest_top", upper_midline[np.argmax(z[upper_midline] - y[upper_midline])])
    for side, sign in (("right", 1.0), ("left", -1.0)):
        facet = np.flatnonzero((sign * lateral > 10.0) & (sign * lateral < 35.0) & (y < y[promontory] - 20.0))
        add(f"superior_articular_process_{side}", facet[np.argmax(z[facet])])
    for side, sign in (("right", 1.0), ("left", -1.0)):
        add(f"ala_tip_{side}", upper[np.argmax(sign * lateral[upper])])
    middle = np.flatnonzero((z > low) & (z < top))
    for side, sign in (("right", 1.0), ("left", -1.0)):
        add(f"auricular_surface_inferior_{side}", middle[np.argmax(sign * lateral[middle] - 0.5 * z[middle])])
    middle_midline = np.intersect1d(midline, middle)
    add("anterior_surface_midpoint", middle_midline[np.argmax(y[middle_midline])])
    lower_midline = np.intersect1d(midline, np.flatnonzero(z <= low))
    add("sacral_hiatus", lower_midline[np.argmin(y[lower_midline])])
    add("sacral_apex", np.argmin(z))
    return tuple(names), np.stack(rows)
