"""Fitting a shape model to 2D landmarks in one or several calibrated radiographs.

Unknowns: the bone's pose (rotation vector ω, translation t, RAS mm) and its shape coefficients
z (in standard deviations of each mode). Vertices are ``X(z) = R(ω)·(mean + Σ z_k·sd_k·mode_k) + t``
and landmark l, a fixed combination of vertices, projects through each view's 3×4 matrix.

The cost is the sum over seen landmarks of a Cauchy loss of the reprojection error in units of
that landmark's σ (so a confident landmark pulls harder, and one far off, an outlier, stops
pulling), plus the shape prior |z|² and a pose prior on the turn |ω|/σ_ω (a patient positioned
for the view lies close to the model's anatomical axes):

    E = Σ_views Σ_l c²·log(1 + |π(P·X_l) − u_l|² / (σ_l²·c²)) + λ·|z|² + |ω|²/σ_ω²

Pose is found first with the mean shape, then pose and shape together
(``scipy.optimize.least_squares``). With a single view the depth along the central ray is
known only through the bone's apparent size, i.e. through the shape prior.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

from .shape_model import ShapeModel

CAUCHY_SCALE = 2.5  # in σ: errors beyond about 2.5 σ count less and less
ROTATION_SD_DEG = 10.0  # bones of a patient positioned for the view are turned little from anatomical axes


@dataclass(frozen=True)
class LandmarkView:
    """One radiograph's landmarks.

    Attributes:
        geometry: the calibrated view.
        uv_px: (L, 2) landmark positions in detector pixels (u, v), in the model's landmark order;
            NaN where the landmark is not seen.
        sigma_px: (L,) each landmark's standard deviation in pixels.
    """

    geometry: ProjectionGeometry
    uv_px: np.ndarray
    sigma_px: np.ndarray


@dataclass(frozen=True)
class ShapeFit:
    """A fitted bone.

    Attributes:
        vertices_mm: (N, 3) the fitted surface's vertices, RAS mm (the model's triangles).
        rotation: (3, 3) and translation_mm (3,): the pose, model frame → RAS.
        coefficients_sd: (K,) shape coefficients in standard deviations.
        reprojection_px: RMS reprojection error of the landmarks the robust loss kept (within 3σ).
        outliers: per view, (L,) True where a seen landmark ended more than 3σ from its fit.
        seconds: wall time of the fit.
    """

    vertices_mm: np.ndarray
    rotation: np.ndarray
    translation_mm: np.ndarray
    coefficients_sd: np.ndarray
    reprojection_px: float
    outliers: list[np.ndarray]
    seconds: float


def _rays_point(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The point nearest (least squares) to rays through ``origins`` along unit ``directions``."""
    system = np.zeros((3, 3))
    right = np.zeros(3)
    for origin, direction in zip(origins, directions):
        projector = np.eye(3) - np.outer(direction, direction)
        system += projector
        right += projector @ origin
    return np.linalg.solve(system, right)


def _initial_translation(model: ShapeModel, views: list[LandmarkView], rotation: np.ndarray) -> np.ndarray:
    """Where the landmarks' median is seen: triangulated from several views, or from one view at
    the depth at which the mean's landmarks take the observed spread."""
    mean_landmarks = model.landmarks(model.mean_mm) @ rotation.T
    origins, directions, depths = [], [], []
    for view in views:
        seen = np.isfinite(view.uv_px).all(axis=1)
        if seen.sum() < 2:
            continue
        centre = np.median(view.uv_px[seen], axis=0)
        target = view.geometry.pixel_center_ras(centre[0], centre[1])
        direction = (target - view.geometry.source_ras_mm) / np.linalg.norm(target - view.geometry.source_ras_mm)
        spread_px = np.median(np.linalg.norm(view.uv_px[seen] - centre, axis=1))
        offsets = mean_landmarks[seen] - np.median(mean_landmarks[seen], axis=0)
        across = offsets - np.outer(offsets @ direction, direction)
        spread_mm = np.median(np.linalg.norm(across, axis=1))
        detector_mm = spread_px * float(np.mean(view.geometry.pixel_spacing_mm))
        distance = view.geometry.source_to_detector_mm * spread_mm / max(detector_mm, 1e-6)
        origins.append(view.geometry.source_ras_mm)
        directions.append(direction)
        depths.append(distance)
    if not origins:
        raise XreconInputError("the shape fit needs at least two seen landmarks in one view")
    centroid = (_rays_point(np.array(origins), np.array(directions)) if len(origins) > 1
                else origins[0] + depths[0] * directions[0])
    return centroid - np.median(mean_landmarks, axis=0)


def fit_shape_to_landmarks(model: ShapeModel, views: list[LandmarkView], mode_count: int | None = None,
                           prior_weight: float = 1.0, weighted: bool = True,
                           robust_scale: float | None = CAUCHY_SCALE,
                           rotation_sd_deg: float = ROTATION_SD_DEG,
                           depth_prior_mm: tuple[float, float] | None = None) -> ShapeFit:
    """Fit pose and shape of ``model`` to its landmarks in ``views`` (see the module docstring).

    Args:
        model: the bone type's model, already for the right side (:meth:`ShapeModel.for_side`).
        views: one or several views of the same bone.
        mode_count: how many modes to fit (default: all).
        prior_weight: λ, the weight of the shape prior.
        weighted: divide errors by each landmark's σ (False: by one common σ, their median).
        robust_scale: the Cauchy scale c in σ; None for plain least squares.
        rotation_sd_deg: the prior's standard deviation of the bone's turn away from the model's
            anatomical axes (a patient lying in the view's RAS frame).
        depth_prior_mm: (mean, sd) of the bone centre's distance from the first view's source, for
            example the isocentre's distance with 100 mm: one view sees depth only through size,
            and a few wrong landmarks could otherwise put a bone anywhere on its ray.
    """
    started = time.perf_counter()
    k = model.mode_count if mode_count is None else min(mode_count, model.mode_count)
    reprojection = landmark_residuals(model, views, k, weighted, robust_scale)

    def residuals(parameters: np.ndarray) -> np.ndarray:
        parts = [reprojection(parameters), parameters[:3] / np.radians(rotation_sd_deg)]
        if depth_prior_mm is not None:
            distance = np.linalg.norm(parameters[3:6] - views[0].geometry.source_ras_mm)
            parts.append(np.atleast_1d((distance - depth_prior_mm[0]) / depth_prior_mm[1]))
        parts.append(np.sqrt(prior_weight) * parameters[6:])
        return np.concatenate(parts)

    start = np.concatenate([np.zeros(3), _initial_translation(model, views, np.eye(3))])
    pose = least_squares(residuals, start, x_scale=np.r_[0.1, 0.1, 0.1, 10.0, 10.0, 10.0], method="trf")
    full = least_squares(residuals, np.concatenate([pose.x, np.zeros(k)]),
                         x_scale=np.r_[0.1, 0.1, 0.1, 10.0, 10.0, 10.0, np.ones(k)], method="trf")
    return finished_fit(model, views, posed_instance(model, full.x), full.x, time.perf_counter() - started, weighted)


def rotation_matrix(rotation_vector: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of a rotation vector ω (radians), by Rodrigues' formula
    R = cos θ I + (sin θ / θ) [ω]× + ((1 − cos θ) / θ²) ω ωᵀ with θ = |ω|, written out in floats:
    a fit evaluates it thousands of times, and numpy's calls on 3-vectors cost five times more
    (scipy's ``Rotation`` twenty)."""
    x, y, z = (float(value) for value in rotation_vector)
    angle_squared = x * x + y * y + z * z
    if not math.isfinite(angle_squared):  # as numpy would give (math.sin raises on infinity)
        return np.full((3, 3), np.nan)
    if angle_squared < 1e-8:  # Taylor terms: the closed form loses precision near 0
        a, b, c = 1.0 - angle_squared / 6.0, 0.5 - angle_squared / 24.0, 1.0 - angle_squared / 2.0
    else:
        angle = math.sqrt(angle_squared)
        a, b, c = math.sin(angle) / angle, (1.0 - math.cos(angle)) / angle_squared, math.cos(angle)
    return np.array([[c + b * x * x, b * x * y - a * z, b * x * z + a * y],
                     [b * x * y + a * z, c + b * y * y, b * y * z - a * x],
                     [b * x * z - a * y, b * y * z + a * x, c + b * z * z]])


def _cross_matrices(vectors) -> np.ndarray:
    """(n, 3, 3) matrices [v]× (so that [v]× u = v × u) of n 3-vectors, built from floats."""
    return np.array([[[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]] for x, y, z in np.asarray(vectors).tolist()])


def rotation_derivatives(rotation_vector: np.ndarray) -> np.ndarray:
    """(3, 3, 3): ∂R/∂ω_i of :func:`rotation_matrix` for i = 0, 1, 2, in closed form (Gallego and
    Yezzi 2015: ∂R/∂ω_i = [ω_i ω + ω × (I − R) e_i]× R / |ω|², and [e_i]× at ω = 0)."""
    omega = np.array(rotation_vector, dtype=np.float64)
    angle_squared = float(omega @ omega)
    if angle_squared < 1e-12:  # the closed form divides by |ω|²; its limit is the generator
        return _cross_matrices(np.eye(3))
    rotation = rotation_matrix(omega)
    crossed = (_cross_matrices([omega])[0] @ (np.eye(3) - rotation)).T  # row i: ω × (I − R) e_i
    return _cross_matrices(omega[:, None] * omega + crossed) @ rotation / angle_squared


def mode_sum(coefficients: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Σ_k coefficients[k]·modes[k], of shape modes.shape[1:], as one matrix product (zeros for no
    coefficients): ``np.tensordot``'s checks made it 2-4 times slower on a fit's sizes (8 against 2 µs
    for 10 landmarks, 12 against 5 µs for 600 vertices)."""
    count = len(coefficients)
    if count == 0:
        return np.zeros(modes.shape[1:])
    return (coefficients @ modes[:count].reshape(count, -1)).reshape(modes.shape[1:])


def posed_instance(model: ShapeModel, parameters: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) RAS vertices of the parameters [ω, t, z]: the shape of coefficients z (SDs), turned by
    the rotation vector ω and moved by t (mm); only the vertices at ``indices`` when given."""
    k = len(parameters) - 6
    mean = model.mean_mm if indices is None else model.mean_mm[indices]
    modes = model.modes[:k] if indices is None else model.modes[:k, indices]
    shape = mean + mode_sum(parameters[6:] * model.standard_deviations_mm[:k], modes)
    return shape @ rotation_matrix(parameters[:3]).T + parameters[3:6]


def vertex_jacobian(model: ShapeModel, parameters: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
    """(N, 3, P) derivatives of :func:`posed_instance`'s vertices (those at ``indices`` when given)
    by the parameters [ω, t, z]."""
    k = len(parameters) - 6
    shape = posed_instance(model, np.r_[np.zeros(6), parameters[6:]], indices)  # R = I, t = 0: the shape itself
    modes = model.modes[:k] if indices is None else model.modes[:k, indices]
    return pose_jacobian(shape, parameters[:3], modes * model.standard_deviations_mm[:k, None, None])


def pose_jacobian(shape: np.ndarray, rotation_vector: np.ndarray, scaled_modes: np.ndarray) -> np.ndarray:
    """(N, 3, 6 + k) derivatives of the posed points R(ω)·shape + t by [ω, t, z], for the unposed
    ``shape`` (N, 3) and the (k, N, 3) modes times their SDs (vertices or landmarks alike)."""
    # plain matrix products: numpy's einsum loops over these small axes 4-10 times slower, and
    # this runs at every step of a fit
    count, modes = len(shape), len(scaled_modes)
    jacobian = np.empty((count, 3, 6 + modes))
    derivatives = rotation_derivatives(rotation_vector)  # (i, e, d): ∂R[e, d]/∂ω_i
    jacobian[:, :, :3] = (shape @ derivatives.transpose(2, 0, 1).reshape(3, 9)).reshape(count, 3, 3).transpose(
        0, 2, 1)
    jacobian[:, :, 3:6] = np.eye(3)
    jacobian[:, :, 6:] = (scaled_modes.reshape(-1, 3) @ rotation_matrix(rotation_vector).T).reshape(
        modes, count, 3).transpose(1, 2, 0)
    return jacobian


def cauchy(error: np.ndarray, scale: float) -> np.ndarray:
    """Rows of ``error`` (M, D) rescaled so that each row's squared norm r² becomes the Cauchy
    cost c²·log(1 + r²/c²): least squares on the result is a robust fit."""
    norm = np.linalg.norm(error, axis=1)
    robust = np.sqrt(2.0 * scale ** 2 * np.log1p((norm / scale) ** 2))
    return error * np.where(norm > 1e-12, robust / np.maximum(norm, 1e-12), 1.0)[:, None]


def cauchy_slope(error: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """d/dr of the 1-D Cauchy rescaling :func:`cauchy`, sign(r)·ρ(|r|) with ρ(n) =
    c·√(2 log(1 + n²/c²)): ρ′(|r|) = 2|r| / (ρ·(1 + r²/c²)), √2 at 0."""
    norm = np.abs(error)
    robust = np.sqrt(2.0 * scale ** 2 * np.log1p((norm / scale) ** 2))
    return np.where(norm > 1e-6, 2.0 * norm / ((1.0 + (norm / scale) ** 2) * np.maximum(robust, 1e-300)),
                    np.sqrt(2.0))


def cauchy_jacobian(error: np.ndarray, slopes: np.ndarray, scale: float) -> np.ndarray:
    """(M, D, P) derivatives of :func:`cauchy`'s rows, given the rows ``error`` (M, D) and their
    derivatives ``slopes`` (M, D, P): each row is e·g(|e|) with g(n) = ρ(n)/n and ρ(n) =
    c·√(2 log(1 + n²/c²)), so its derivative is g·∂e + e·g′(n)·(e·∂e)/n (g → √2 and g′ → 0 at 0)."""
    norm = np.linalg.norm(error, axis=1)
    safe = np.maximum(norm, 1e-12)
    robust = np.sqrt(2.0 * scale ** 2 * np.log1p((norm / scale) ** 2))
    small = norm < 1e-6  # the closed forms divide by n: their limits there
    factor = np.where(small, np.sqrt(2.0), robust / safe)
    factor_slope = np.where(small, 0.0, (cauchy_slope(norm, scale) * norm - robust) / safe ** 2)
    along = np.einsum("md,mdp->mp", error, slopes) / safe[:, None]  # ∂|e|
    return factor[:, None, None] * slopes + error[:, :, None] * (factor_slope[:, None] * along)[:, None, :]


def _view_arrays(model: ShapeModel, views: list[LandmarkView], weighted: bool) -> list[tuple]:
    """Per view: (3×4 matrix, (L, 2) observed uv with 0 where unseen, (L,) σ in use, (L,) seen)."""
    arrays = []
    for view in views:
        uv = np.asarray(view.uv_px, dtype=np.float64)
        sigma = np.asarray(view.sigma_px, dtype=np.float64)
        if uv.shape != (len(model.landmark_names), 2) or sigma.shape != (len(model.landmark_names),):
            raise XreconInputError(f"{model.name}: landmarks of shape {uv.shape} and σ {sigma.shape}; "
                                   f"expected ({len(model.landmark_names)}, 2) and ({len(model.landmark_names)},)")
        visible = np.isfinite(uv).all(axis=1) & np.isfinite(sigma) & (sigma > 0)
        common = np.median(sigma[visible]) if visible.any() else 1.0
        arrays.append((view.geometry.projection_matrix(), np.where(visible[:, None], uv, 0.0),
                       np.where(visible, sigma if weighted else common, 1.0), visible))
    return arrays


def landmark_residuals(model: ShapeModel, views: list[LandmarkView], mode_count: int, weighted: bool = True,
                       robust_scale: float | None = CAUCHY_SCALE):
    """The reprojection residuals of the landmarks as a function of the parameters [ω, t, z]
    (z: the first ``mode_count`` shape coefficients, in SDs): a flat array, each landmark's 2D
    error in units of its σ (Cauchy-rescaled with ``robust_scale``), 0 for landmarks not seen."""
    return landmark_terms(model, views, mode_count, weighted, robust_scale)[0]


def landmark_terms(model: ShapeModel, views: list[LandmarkView], mode_count: int, weighted: bool = True,
                   robust_scale: float | None = CAUCHY_SCALE):
    """(residuals, jacobian): :func:`landmark_residuals` and its (M, P) derivative by the
    parameters, by the chain rule through the posed landmarks and the projection."""
    if not model.landmark_names:
        raise XreconInputError(f"the {model.name} model has no landmarks to fit")
    landmark_mean = model.landmarks(model.mean_mm)
    landmark_modes = (np.einsum("ln,knd->kld", model.landmark_weights, model.modes[:mode_count])
                      * model.standard_deviations_mm[:mode_count, None, None])
    arrays = _view_arrays(model, views, weighted)

    def shape_of(parameters: np.ndarray) -> np.ndarray:
        return landmark_mean + mode_sum(parameters[6:], landmark_modes)

    def residuals(parameters: np.ndarray) -> np.ndarray:
        points = shape_of(parameters) @ rotation_matrix(parameters[:3]).T + parameters[3:6]
        parts = []
        for matrix, uv, sigma, visible in arrays:
            homogeneous = points @ matrix[:, :3].T + matrix[:, 3]
            error = (homogeneous[:, :2] / homogeneous[:, 2:3] - uv) / sigma[:, None]
            if robust_scale:
                error = cauchy(error, robust_scale)
            parts.append((error * visible[:, None]).ravel())
        return np.concatenate(parts)

    def jacobian(parameters: np.ndarray) -> np.ndarray:
        shape = shape_of(parameters)
        points = shape @ rotation_matrix(parameters[:3]).T + parameters[3:6]
        moved = pose_jacobian(shape, parameters[:3], landmark_modes[:len(parameters) - 6])  # (L, 3, P)
        parts = []
        for matrix, uv, sigma, visible in arrays:
            homogeneous = points @ matrix[:, :3].T + matrix[:, 3]
            turned = np.matmul(matrix[:, :3], moved)  # (L, 3, P): ∂(P·X)
            projected = homogeneous[:, :2] / homogeneous[:, 2:3]
            slopes = (turned[:, :2] - projected[:, :, None] * turned[:, 2:3]) / (
                homogeneous[:, 2:3, None] * sigma[:, None, None])
            if robust_scale:
                slopes = cauchy_jacobian((projected - uv) / sigma[:, None], slopes, robust_scale)
            parts.append((slopes * visible[:, None, None]).reshape(-1, len(parameters)))
        return np.concatenate(parts)

    return residuals, jacobian


def finished_fit(model: ShapeModel, views: list[LandmarkView], vertices_mm: np.ndarray, parameters: np.ndarray,
                 seconds: float, weighted: bool = True) -> ShapeFit:
    """The :class:`ShapeFit` of fitted ``parameters``, with its landmarks' reprojection figures."""
    points = model.landmarks(vertices_mm)
    kept_errors, outliers = [], []
    for matrix, uv, sigma, visible in _view_arrays(model, views, weighted):
        homogeneous = points @ matrix[:, :3].T + matrix[:, 3]
        error_px = np.linalg.norm(homogeneous[:, :2] / homogeneous[:, 2:3] - uv, axis=1)
        outlier = visible & (error_px > 3.0 * sigma)
        kept_errors.append(error_px[visible & ~outlier])
        outliers.append(outlier)
    kept = np.concatenate(kept_errors) if kept_errors else np.zeros(0)
    return ShapeFit(vertices_mm, rotation_matrix(parameters[:3]), parameters[3:6], parameters[6:],
                    float(np.sqrt(np.mean(kept ** 2))) if len(kept) else float("nan"), outliers, seconds)
