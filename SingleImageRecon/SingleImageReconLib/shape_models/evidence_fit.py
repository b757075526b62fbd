"""The combined method: a shape model fitted to what the depth network saw (its masks and
front/back depth maps), and to the landmarks where the landmark network found them.

One view leaves a bone's concavities open: the depth path fills everything between the two
faces along each ray (the spinal canal, the acetabulum). A shape model knows those parts. The
fit asks of the posed model X(ω, t, z) (as in :mod:`.landmark_fit`), with τ the evidence's
tolerance in mm and ρ the Cauchy loss (errors much beyond τ stop pulling: a wrong patch of
predicted depth does not drag the bone):

* **faces**: the points where the network says each ray enters and leaves the bone (mask
  pixels back-projected at their front and back depths) lie on the surface: point-to-plane
  distance to the nearest vertex, correspondences renewed each round (ICP);
* **inside**: no vertex lies outside the region the views allow (the signed distance of
  :func:`..surface.signed_distance`, negative outside: in front of the front face, behind the
  back face or off the silhouette), while a vertex inside it, in a concavity, costs nothing;
* **landmarks**: σ-weighted reprojection errors (:func:`.landmark_fit.landmark_terms`);
* the shape prior |z|² and the pose prior |ω|/σ_ω.

The faces and inside terms are means over their points, weighted as ``evidence_weight``
independent observations each: neighbouring pixels of a predicted depth map err together, so
their count says little about how much they know.

The start is the mean shape, unturned, centred on the evidence in two ways, each also shifted
either way along each axis on which the evidence is much shorter than the model (a bone the image
cuts shows only part of itself); the best few after a few steps each (on a part of the points: a
ranking needs less than a solution) are solved for pose over the first two rounds, the best pose
then for pose and shape from the second round on (the first round's wide tolerance only served
to find the pose).
Each round is a Levenberg–Marquardt solve (:mod:`.levenberg_marquardt`) with the faces' nearest
vertices held fixed; nearest vertices are looked up in the shape's own frame, so the pose stage
(the mean shape) builds its k-d tree once. Each evaluation poses only the vertices the terms
read, and the residuals and the Jacobian at the same parameters share it.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.spatial import cKDTree

from SyntheticDataGenLib.errors import XreconInputError

from ..reconstruction.surface import ViewEvidence, signed_distance_gradient
from .landmark_fit import (ROTATION_SD_DEG, LandmarkView, ShapeFit, cauchy, cauchy_slope, finished_fit, landmark_terms,
                           mode_sum, pose_jacobian, posed_instance, rotation_matrix)
from .levenberg_marquardt import levenberg_marquardt
from .shape_model import ShapeModel

TOLERANCE_MM = 3.0  # what a predicted face may be off before it counts less and less
EVIDENCE_WEIGHT = 50.0
FACE_POINTS_PER_VIEW = 300
INSIDE_VERTICES = 400
ROUNDS = 4
COARSE_FACTOR = 5.0  # the first round's tolerance, in τ
MODE_COUNT = 12
# a bone the image or the scan cuts misses a good part of its length on some axis; a smaller
# shortfall is a smaller bone (the vertebra model spans T1-L5: a thoracic vertebra's outline falls
# 20-30 % short of the mean's across and along the spine), which the centred starts place. With a
# fixed 10 mm instead, 19 of a chest's 27 vertebra fits got 18 or 54 starts instead of 6, for
# 0.004 mm of mean label-to-fit distance over 51 real bones
CUT_FRACTION = 0.35
STARTS_REFINED = 3  # of the candidate starts, the best this many after a few steps are solved (with
# only the best, abdomen-pelvis's predicted hips settled 2-4 mm further off over 6 views)
QUICK_EVALUATIONS = 5  # (4 put a predicted hip 10 mm further off; 5, with SHAPE_FROM_ROUND, moves every bone
# of the recon benchmark by under 1 mm but the thorax's T11, 7 mm closer)
QUICK_FACE_POINTS = 300  # of the faces' points and ...
QUICK_INSIDE_VERTICES = 200  # ... of the inside term's vertices, those that rank the starts (150 and 100 put
# abdomen-pelvis's predicted right hip 14 mm further off; 300 and 200 as close as all, as fast)
# each round's correspondences are fixed: solving them to scipy's default 1e-8 was wasted work;
# the next round renews them (the same figures on exact evidence, a third of the evaluations)
RELATIVE_COST_TOLERANCE = 1e-3
STEP_TOLERANCE = 1e-6
SHAPE_FROM_ROUND = 1  # the shape joins at the second round's tolerance: the pose has been through the first


def face_points_ras(evidence: ViewEvidence, count: int, rng: np.random.Generator) -> np.ndarray:
    """(M, 3) RAS points on the front and back faces: up to ``count`` mask pixels, each at both depths."""
    rows, columns = np.nonzero(evidence.mask)
    if len(rows) == 0:
        return np.zeros((0, 3))
    chosen = rng.choice(len(rows), size=min(count, len(rows)), replace=False)
    rows, columns = rows[chosen], columns[chosen]
    depths = np.concatenate([evidence.front_mm[rows, columns], evidence.back_mm[rows, columns]])
    u, v = np.tile(columns, 2).astype(np.float64), np.tile(rows, 2).astype(np.float64)
    points = evidence.geometry.backproject(u, v, depths)
    return points[np.isfinite(points).all(axis=1)]


def soft_l1(error: np.ndarray) -> np.ndarray:
    """Values r rescaled so that r² becomes 2·(√(1 + r²) − 1): quadratic near 0, then linear, so
    a vertex far outside still pulls (a Cauchy loss would let it go)."""
    return np.sign(error) * np.sqrt(2.0 * (np.sqrt(1.0 + error ** 2) - 1.0))


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N, 3) unit area-weighted vertex normals of a closed surface ordered outward."""
    corners = vertices[triangles]
    face = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    corners_flat, faces_flat = triangles.ravel(), np.repeat(face, 3, axis=0)
    normals = np.stack([np.bincount(corners_flat, faces_flat[:, axis], len(vertices)) for axis in range(3)], axis=1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _seen_centroid(vertices: np.ndarray, triangles: np.ndarray, beam: np.ndarray) -> np.ndarray:
    """(3,) where face points of this surface would centre: its triangles' centroids weighted by
    their area seen along the beam (mask pixels are uniform over the image, and each gives a
    front and a back point, so broad plates count more than the thick parts of a bone)."""
    corners = vertices[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]) / 2
    weights = np.abs(normals @ beam)
    return (corners.mean(axis=1) * weights[:, None]).sum(axis=0) / max(weights.sum(), 1e-12)


def _starts(model: ShapeModel, points: np.ndarray, beam: np.ndarray) -> list[np.ndarray]:
    """Candidate poses [ω, t]: the mean shape placed by two estimates of where its face points
    would centre (the points' median on the vertices' mean, and the points' mean on
    :func:`_seen_centroid`: neither is right for every bone), each also shifted, along every axis on
    which the evidence falls short of the model by more than ``CUT_FRACTION`` of its length (a bone
    the image or the scan cuts), by half the difference either way."""
    centres = [np.median(points, axis=0) - model.mean_mm.mean(axis=0),
               points.mean(axis=0) - _seen_centroid(model.mean_mm, model.triangles, beam)]
    extent = np.ptp(model.mean_mm, axis=0)
    missing = extent - np.ptp(points, axis=0)
    offsets = [(0.0,) if gap <= CUT_FRACTION * length else (0.0, gap / 2, -gap / 2)
               for gap, length in zip(missing, extent)]
    return [np.r_[np.zeros(3), centre + np.array([x, y, z])] for centre in centres for x in offsets[0]
            for y in offsets[1] for z in offsets[2]]


def soft_l1_slope(error: np.ndarray) -> np.ndarray:
    """d/dr of :func:`soft_l1` (1 at 0)."""
    q = np.sqrt(1.0 + error ** 2)
    root = np.sqrt(2.0 * (q - 1.0))
    return np.where(np.abs(error) > 1e-6, np.abs(error) / (q * np.maximum(root, 1e-300)), 1.0)


def fit_shape_to_evidence(model: ShapeModel, evidence: list[ViewEvidence],
                          landmark_views: list[LandmarkView] | None = None, *, mode_count: int = MODE_COUNT,
                          tolerance_mm: float = TOLERANCE_MM, evidence_weight: float = EVIDENCE_WEIGHT,
                          rounds: int = ROUNDS, rotation_sd_deg: float = ROTATION_SD_DEG, seed: int = 0) -> ShapeFit:
    """Fit pose and shape of ``model`` to one bone's evidence (see the module docstring).

    Args:
        model: the bone type's model, for the bone's side.
        evidence: the bone's mask and depth maps in each view (e.g. cleaned network predictions).
        landmark_views: its predicted landmarks in the same or other views, or None.
        mode_count: how many shape modes to fit.
        tolerance_mm: τ, the scale of the faces term (Cauchy) and the inside term (soft L1), in
            the last round; the first round's is ``COARSE_FACTOR`` times larger.
        evidence_weight: how many independent observations the faces (and the inside) term is worth.
        rounds: ICP rounds (nearest vertices renewed between them).

    Raises XreconInputError when no view shows the bone.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    evidence = [view for view in evidence if not view.empty]
    if not evidence:
        raise XreconInputError(f"no view shows the {model.name}: nothing to fit")
    points = np.concatenate([face_points_ras(view, FACE_POINTS_PER_VIEW, rng) for view in evidence])
    if len(points) < 10:
        raise XreconInputError(f"the {model.name}'s evidence has {len(points)} usable face points, too few to fit")
    k = min(mode_count, model.mode_count)
    sampled = np.sort(rng.choice(model.vertex_count, size=min(INSIDE_VERTICES, model.vertex_count), replace=False))
    reprojection, reprojection_jacobian = (
        landmark_terms(model, landmark_views, k) if landmark_views
        and any(np.isfinite(view.uv_px).all(axis=1).any() for view in landmark_views) else (None, None))
    # ranking many starts needs less than solving one: a part of the points and vertices
    quick_points = points[np.sort(rng.choice(len(points), min(QUICK_FACE_POINTS, len(points)), replace=False))]
    quick_sampled = np.sort(rng.choice(sampled, min(QUICK_INSIDE_VERTICES, len(sampled)), replace=False))

    def make_residuals(face_points: np.ndarray, inside_vertices: np.ndarray, nearest: np.ndarray,
                       normals: np.ndarray, tolerance: float, count: int):
        face_scale = np.sqrt(evidence_weight / len(face_points))
        inside_scale = np.sqrt(evidence_weight / len(inside_vertices))
        # only the vertices some term reads are posed: the faces' nearest and the inside term's sample
        used, at = np.unique(np.r_[nearest, inside_vertices], return_inverse=True)
        nearest_at, sampled_at = at[:len(nearest)], at[len(nearest):]
        modes = model.modes[:count - 6, used] * model.standard_deviations_mm[:count - 6, None, None]
        mean, posed = model.mean_mm[used], {}

        def pose(parameters: np.ndarray) -> dict:
            # the solver asks for the Jacobian where it has just asked for the residuals: pose the
            # vertices and read the views (with the slopes) once for both
            if posed.get("at") != parameters.tobytes():
                shape = mean + mode_sum(parameters[6:], modes)
                vertices = shape @ rotation_matrix(parameters[:3]).T + parameters[3:6]
                inside, gradient = signed_distance_gradient(vertices[sampled_at], evidence)
                gap = np.einsum("nd,nd->n", face_points - vertices[nearest_at], normals) / tolerance
                posed.update(at=parameters.tobytes(), shape=shape, gap=gap, inside=inside, gradient=gradient)
            return posed

        def residuals(parameters: np.ndarray) -> np.ndarray:
            found = pose(parameters)
            inside = found["inside"]
            outside = np.where(np.isfinite(inside), np.minimum(inside, 0.0), 0.0) / tolerance
            parts = [face_scale * cauchy(found["gap"][:, None], 1.0).ravel(), inside_scale * soft_l1(outside),
                     parameters[:3] / np.radians(rotation_sd_deg), parameters[6:]]
            if reprojection is not None:
                parts.append(reprojection(parameters))
            return np.concatenate(parts)

        def jacobian(parameters: np.ndarray) -> np.ndarray:
            """The residuals' Jacobian: the chain rule through the posed vertices (the faces and
            inside terms) with the signed distance's spatial gradient, and through the posed
            landmarks and the projection (the landmarks' rows)."""
            found = pose(parameters)
            moved = pose_jacobian(found["shape"], parameters[:3], modes)
            face = -(face_scale / tolerance) * cauchy_slope(found["gap"])[:, None] * np.einsum(
                "nd,ndp->np", normals, moved[nearest_at])
            inside = found["inside"]
            pulled = np.isfinite(inside) & (inside < 0)
            slope = np.where(pulled, soft_l1_slope(np.where(pulled, inside, 0.0) / tolerance) / tolerance, 0.0)
            inside_rows = inside_scale * slope[:, None] * np.einsum("nd,ndp->np", found["gradient"], moved[sampled_at])
            rotation_rows = np.zeros((3, count))
            rotation_rows[:, :3] = np.eye(3) / np.radians(rotation_sd_deg)
            parts = [face, inside_rows, rotation_rows, np.eye(count)[6:]]
            if reprojection is not None:
                parts.append(reprojection_jacobian(parameters))
            return np.concatenate(parts)
        return residuals, jacobian

    frames: dict[bytes, tuple[cKDTree, np.ndarray]] = {}

    def correspondences(parameters: np.ndarray, face_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each face point's nearest vertex and that vertex's normal, found in the shape's own frame:
        the pose stage's starts and rounds (the mean shape) share one k-d tree and its normals."""
        coefficients = parameters[6:] if parameters[6:].any() else np.zeros(0)
        if coefficients.tobytes() not in frames:
            shape = posed_instance(model, np.r_[np.zeros(6), coefficients])
            frames[coefficients.tobytes()] = cKDTree(shape), vertex_normals(shape, model.triangles)
        tree, normals = frames[coefficients.tobytes()]
        rotation = rotation_matrix(parameters[:3])
        _, nearest = tree.query((face_points - parameters[3:6]) @ rotation)
        return nearest, normals[nearest] @ rotation.T

    def solve(parameters: np.ndarray, tolerances: np.ndarray, evaluations: int = 60, quick: bool = False
              ) -> tuple[np.ndarray, float]:
        scale = np.r_[0.1, 0.1, 0.1, 10.0, 10.0, 10.0, np.ones(len(parameters) - 6)]
        terms = (quick_points, quick_sampled) if quick else (points, sampled)
        cost = np.inf
        for tolerance in tolerances:
            residuals, jacobian = make_residuals(*terms, *correspondences(parameters, terms[0]), tolerance,
                                                 len(parameters))
            result = levenberg_marquardt(residuals, jacobian, parameters, scale, evaluations,
                                         RELATIVE_COST_TOLERANCE, STEP_TOLERANCE)
            parameters, cost = result.x, float(result.cost)
        return parameters, cost

    # the tolerance shrinks over the rounds (graduated non-convexity): far-off faces pull at first,
    # while the pose is rough, and stop pulling once it is close
    coarse = np.geomspace(COARSE_FACTOR * tolerance_mm, tolerance_mm, rounds)
    starts = _starts(model, points, evidence[0].geometry.beam_direction_ras)
    if len(starts) > STARTS_REFINED:  # a few steps from each start tell the promising ones (a start's own cost does not)
        quick = [solve(start, coarse[:1], evaluations=QUICK_EVALUATIONS, quick=True) for start in starts]
        starts = [quick[index][0] for index in np.argsort([cost for _, cost in quick])[:STARTS_REFINED]]
    poses = [solve(start, coarse[:2]) for start in starts]
    pose = min(poses, key=lambda found: found[1])[0]
    parameters, _ = solve(np.r_[pose, np.zeros(k)], coarse[SHAPE_FROM_ROUND:])
    return finished_fit(model, landmark_views or [], posed_instance(model, parameters), parameters,
                        time.perf_counter() - started)
