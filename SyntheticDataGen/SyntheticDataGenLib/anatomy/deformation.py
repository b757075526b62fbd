"""Anatomy augmentation: deform a CT and its labels together, and move landmarks with them.

Every transform here follows SimpleITK's resampling convention: a transform ``T`` maps a point
``x`` of the *output* (warped) image to the point ``T(x)`` of the *input* image it takes its
value from, ``output(x) = input(T(x))``. A point ``p`` of the input anatomy therefore lands at
the ``x`` with ``T(x) = p``: images are pulled through ``T``, landmarks are pushed through its
inverse (:func:`inverse_transform_points`). SimpleITK transforms work in LPS millimetres; the
point functions here take and return RAS millimetres, as everything in xrecon does.

Two kinds of augmentation:

* **random** (:func:`random_bspline_transform`): a smooth random cubic B-spline deformation,
  checked to stay diffeomorphic. Recommended ``magnitude_mm`` (standard deviation of each
  displacement component) with the default 60 mm control spacing: ``LIGHT_MAGNITUDE_MM``
  (local volume changes within about ±30 %) and ``HEAVY_MAGNITUDE_MM`` (within about a factor 2).
* **between cases** (:func:`register_cases`, :func:`interpolate_displacement`): register a
  shape donor B onto the case A to augment, then move A's anatomy a fraction of the way towards
  B's shape ("along" samples), optionally with a small random jitter on top ("around" samples).
  The intensities always come from A; only the shape moves. Register only cases that cover the
  same body region: where one CT has anatomy the other lacks, the correspondence is invented.

Recipe (A = the case to augment, B = the shape donor)::

    field = register_cases(fixed_ct=ct_a, moving_ct=ct_b, fixed_mask=bones_a, moving_mask=bones_b)
    transform = interpolate_displacement(field, fraction=0.5,
                                         jitter=random_bspline_transform(ct_a, rng, LIGHT_MAGNITUDE_MM))
    transform = sample_displacement_field(transform, ct_a)  # once, so landmarks match exactly
    new_ct, new_labels = warp_case(ct_a, labels_a, transform)
    new_landmarks_ras_mm = inverse_transform_points(transform, landmarks_a_ras_mm)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import SimpleITK as sitk

from ..cases.ct_io import LPS_TO_RAS, same_grid
from ..errors import XreconInputError
from ..cases.labels import Segmentation

# Recommended magnitudes (per-component displacement standard deviation, mm) at 60 mm control
# spacing; measured on the sample cases: light keeps the local volume ratio (Jacobian
# determinant) within about [0.73, 1.32], heavy within about [0.41, 1.92] (8 seeds each).
LIGHT_MAGNITUDE_MM = 2.0
HEAVY_MAGNITUDE_MM = 5.0

AIR_HU = -1024.0

# A cubic B-spline averages its control points with weights whose squares sum, on average over a
# knot interval, to 151/315 per axis; in 3D the displacement at a point has the standard
# deviation of the coefficients times (151/315)^(3/2). Dividing by it makes ``magnitude_mm`` the
# displacement's standard deviation rather than the coefficients'.
_BSPLINE_COEFFICIENT_GAIN = (315.0 / 151.0) ** 1.5

# Sampling a B-spline onto a displacement field of this spacing, then interpolating it linearly,
# is 3-4x faster than evaluating the B-spline at every voxel of a 1.5 mm CT and errs by under
# 0.05 mm for the recommended magnitudes (linear interpolation error ~ h^2/8 * curvature).
_FIELD_SPACING_MM = 3.0

# Newton iteration for inverse points: stop when T(x) is this close to the target.
_INVERSE_TOLERANCE_MM = 1e-4
_INVERSE_MAX_ITERATIONS = 50

ProgressCallback = Callable[[float, str], None]


# ---------------------------------------------------------------------------------------------
# Grids and fields


def _aligned_grid(image: sitk.Image, spacing_mm: float) -> tuple[list[int], list[float]]:
    """(size, spacing) of a grid with the image's origin and direction whose first and last
    nodes are the image's first and last voxel centres, spaced about ``spacing_mm`` (never
    coarser); every node lies inside the image, so a B-spline over the image is defined there."""
    sizes, spacings = [], []
    for n, s in zip(image.GetSize(), image.GetSpacing()):
        extent = (n - 1) * s
        intervals = max(1, int(np.ceil(extent / spacing_mm - 1e-9))) if n > 1 else 0
        sizes.append(intervals + 1)
        spacings.append(extent / intervals if intervals else s)
    return sizes, spacings


def sample_displacement_field(transform: sitk.Transform, reference: sitk.Image,
                              spacing_mm: float = _FIELD_SPACING_MM) -> sitk.DisplacementFieldTransform:
    """The transform sampled on a grid over ``reference`` and interpolated linearly between nodes.

    The grid has the reference's origin and direction and spans its first to last voxel centre
    at about ``spacing_mm`` (never coarser than asked, never finer than the reference). Warping
    through the sampled field is much faster than through a B-spline; sample once and use the
    result for the images *and* the landmarks so that both see the identical map.

    Args:
        transform: any SimpleITK transform (output LPS mm -> input LPS mm).
        reference: the image whose domain the field covers.
        spacing_mm: node spacing in mm.
    Returns:
        a DisplacementFieldTransform (float64 vectors, LPS mm).
    """
    spacing_mm = max(spacing_mm, min(reference.GetSpacing()))
    size, spacing = _aligned_grid(reference, spacing_mm)
    field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, size, reference.GetOrigin(),
                                              spacing, reference.GetDirection())
    return sitk.DisplacementFieldTransform(field)


def _field_array(transform: sitk.DisplacementFieldTransform) -> tuple[np.ndarray, sitk.Image]:
    """Displacements (k, j, i, 3) in LPS mm and an image carrying the field's grid."""
    field = transform.GetDisplacementField()
    return sitk.GetArrayFromImage(field), field


def jacobian_determinant(field: sitk.Image) -> np.ndarray:
    """det(∂T/∂x) of ``T(x) = x + u(x)`` at every node of a displacement field image, (k, j, i).

    Central differences along the grid axes, turned into physical derivatives with the grid's
    direction. (sitk.DisplacementFieldJacobianDeterminant differentiates along the index axes
    and ignores the direction, which is wrong for the flipped axes that most CTs have.)
    """
    u = sitk.GetArrayViewFromImage(field).astype(np.float64)  # (k, j, i, component)
    spacing = field.GetSpacing()
    # du_c / ds_a along grid axis a = (i, j, k), each (k, j, i, c).
    along_axes = [np.gradient(u, spacing[a], axis=2 - a) if u.shape[2 - a] > 1 else np.zeros_like(u)
                  for a in range(3)]
    g = np.stack(along_axes, axis=-1)  # (k, j, i, c, a)
    direction = np.asarray(field.GetDirection()).reshape(3, 3)  # columns: axis a in LPS
    # s_a = D^T x  ->  du/dx = (du/ds) D^T.
    gradient = g @ direction.T
    return np.linalg.det(np.eye(3) + gradient)


# ---------------------------------------------------------------------------------------------
# Random deformations


def _bspline_mesh_size(image: sitk.Image, control_spacing_mm: float) -> list[int]:
    """Mesh cells per axis so that control points are about ``control_spacing_mm`` apart."""
    return [max(1, int(round(n * s / control_spacing_mm))) for n, s in zip(image.GetSize(), image.GetSpacing())]


def random_bspline_transform(image: sitk.Image, rng: np.random.Generator, magnitude_mm: float,
                             control_spacing_mm: float = 60.0, *, min_jacobian: float = 0.4,
                             check_spacing_mm: float | None = None) -> sitk.BSplineTransform:
    """A smooth random deformation over the image's physical domain (cubic B-spline).

    Control points lie about ``control_spacing_mm`` apart over the image; their displacements
    are independent Gaussians, scaled so that each LPS component of the displacement at a point
    has a standard deviation of about ``magnitude_mm``. The map must stay a diffeomorphism with
    plausible local volume changes: the Jacobian determinant, checked on a grid about
    ``control_spacing_mm / 10`` apart, must lie in [min_jacobian, 1 / min_jacobian]; if it does
    not, all displacements are scaled down by 0.8 until it does (so rare draws come out milder).
    Outside the image's domain the transform is the identity.

    Deterministic for a given ``rng`` state: it draws exactly one array of normals.

    Args:
        image: defines the domain (origin, spacing, direction, size).
        rng: numpy random generator.
        magnitude_mm: displacement standard deviation per component, mm; 0 gives the identity.
            See LIGHT_MAGNITUDE_MM and HEAVY_MAGNITUDE_MM.
        control_spacing_mm: approximate distance between control points, mm; larger is smoother.
        min_jacobian: lowest local volume ratio allowed (and 1/min_jacobian the highest); in (0, 1).
        check_spacing_mm: grid spacing of the Jacobian check; default control_spacing_mm / 10.
    Returns:
        a sitk.BSplineTransform (LPS mm), mapping output points to input points.
    """
    if magnitude_mm < 0 or not np.isfinite(magnitude_mm):
        raise XreconInputError(f"deformation magnitude must be a finite number >= 0 mm, got {magnitude_mm}")
    if not control_spacing_mm > 0:
        raise XreconInputError(f"control point spacing must be > 0 mm, got {control_spacing_mm}")
    if not 0 < min_jacobian < 1:
        raise XreconInputError(f"min_jacobian must lie in (0, 1), got {min_jacobian}")
    transform = sitk.BSplineTransformInitializer(image, _bspline_mesh_size(image, control_spacing_mm), 3)
    coefficients = rng.standard_normal(len(transform.GetParameters())) * (magnitude_mm * _BSPLINE_COEFFICIENT_GAIN)
    transform.SetParameters(coefficients.tolist())
    if magnitude_mm == 0:
        return transform
    check_spacing_mm = check_spacing_mm or control_spacing_mm / 10.0
    size, spacing = _aligned_grid(image, check_spacing_mm)
    for _ in range(60):  # 0.8^60 ~ 1e-6: any field is tame long before
        field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, size, image.GetOrigin(),
                                                  spacing, image.GetDirection())
        determinant = jacobian_determinant(field)
        if determinant.min() >= min_jacobian and determinant.max() <= 1.0 / min_jacobian:
            break
        coefficients *= 0.8
        transform.SetParameters(coefficients.tolist())
    return transform


# ---------------------------------------------------------------------------------------------
# Warping images and points


def _needs_sampling(transform: sitk.Transform) -> bool:
    """True for transforms that are costly to evaluate per voxel (B-splines, composites)."""
    return not (transform.IsLinear() or isinstance(transform, sitk.DisplacementFieldTransform))


def _is_identity_field(transform: sitk.DisplacementFieldTransform) -> bool:
    field = transform.GetDisplacementField()  # held: an array view does not keep its image alive
    return not np.any(sitk.GetArrayViewFromImage(field))


def warp_case(ct: sitk.Image, segmentation: Segmentation, transform: sitk.Transform,
              default_hu: float = AIR_HU) -> tuple[sitk.Image, Segmentation]:
    """Resample a CT and all its label layers through one transform onto the CT's own grid.

    ``output(x) = input(transform(x))`` (SimpleITK's convention): the CT with linear
    interpolation (``default_hu`` where ``transform(x)`` falls outside the CT), every label layer
    with nearest neighbour (0 outside), so labels keep exactly their label values. The CT keeps
    its pixel type; integer CTs are rounded, not truncated. A B-spline or composite transform is
    first sampled on a ~3 mm field over the CT (:func:`sample_displacement_field`), which is
    3-4x faster on a 1.5 mm CT and moves points by under 0.05 mm at the recommended magnitudes;
    pass an already sampled field to use the same map for landmarks.

    Args:
        ct: CT in HU.
        segmentation: structures on the CT's grid.
        transform: output LPS mm -> input LPS mm.
        default_hu: value where the transform leaves the CT.
    Returns:
        (warped CT, warped Segmentation with the same structure names), both on the CT's grid.
    """
    if not same_grid(segmentation.reference, ct):
        raise XreconInputError("labels must lie on the CT's grid to be warped with it")
    if _needs_sampling(transform):
        transform = sample_displacement_field(transform, ct)
    if isinstance(transform, sitk.DisplacementFieldTransform) and _is_identity_field(transform):
        # Exact copies: resampling at voxel centres is exact only up to rounding for float CTs.
        return sitk.Image(ct), Segmentation([sitk.Image(layer) for layer in segmentation.layers],
                                            dict(segmentation.structures))
    warped_ct = _resample_ct(ct, transform, default_hu)
    layers = [sitk.Resample(layer, ct, transform, sitk.sitkNearestNeighbor, 0, layer.GetPixelID())
              for layer in segmentation.layers]
    for layer in layers:
        layer.CopyInformation(ct)
    return warped_ct, Segmentation(layers, dict(segmentation.structures))


def _resample_ct(ct: sitk.Image, transform: sitk.Transform, default_hu: float) -> sitk.Image:
    """Linear resampling onto the CT's grid, keeping its pixel type (rounded for integers)."""
    pixel_id = ct.GetPixelID()
    floating = pixel_id in (sitk.sitkFloat32, sitk.sitkFloat64)
    warped = sitk.Resample(ct, ct, transform, sitk.sitkLinear, default_hu,
                           pixel_id if floating else sitk.sitkFloat32)
    if floating:
        return warped
    # ITK's cast truncates towards zero; round instead so warping adds no bias.
    dtype = sitk.GetArrayViewFromImage(ct).dtype
    limits = np.iinfo(dtype)
    values = np.clip(np.rint(sitk.GetArrayViewFromImage(warped)), limits.min, limits.max).astype(dtype)
    result = sitk.GetImageFromArray(values)
    result.CopyInformation(ct)
    return result


def _as_lps(points_ras_mm: np.ndarray) -> np.ndarray:
    points = np.asarray(points_ras_mm, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise XreconInputError(f"points must be an (N, 3) array of RAS mm, got shape {points.shape}")
    return points @ LPS_TO_RAS  # the flip is diagonal and its own inverse


def transform_points(transform: sitk.Transform, points_ras_mm: np.ndarray) -> np.ndarray:
    """``T(x)`` for each point: where a warped image takes the value it shows at ``x``.

    Args:
        transform: output LPS mm -> input LPS mm (as given to warp_case).
        points_ras_mm: (N, 3) RAS mm; NaN rows (undefined landmarks) stay NaN.
    Returns:
        (N, 3) RAS mm.
    """
    points = _as_lps(points_ras_mm)
    mapped = np.full_like(points, np.nan)
    for index, point in enumerate(points):
        if np.all(np.isfinite(point)):
            mapped[index] = transform.TransformPoint(point.tolist())
    return mapped @ LPS_TO_RAS


def _jacobian_lps(transform: sitk.Transform, point: np.ndarray, step_mm: float = 0.05) -> np.ndarray:
    """∂T/∂x at a point, 3x3, by central differences (a sampled field is only piecewise smooth)."""
    columns = []
    for axis in range(3):
        offset = np.zeros(3)
        offset[axis] = step_mm
        ahead = np.asarray(transform.TransformPoint((point + offset).tolist()))
        behind = np.asarray(transform.TransformPoint((point - offset).tolist()))
        columns.append((ahead - behind) / (2 * step_mm))
    return np.stack(columns, axis=1)


def _invert_point(transform: sitk.Transform, target: np.ndarray) -> np.ndarray:
    """The x with T(x) = target (LPS mm), by damped Newton iteration from x = target."""
    x = target.copy()
    residual = np.asarray(transform.TransformPoint(x.tolist())) - target
    for _ in range(_INVERSE_MAX_ITERATIONS):
        error = np.linalg.norm(residual)
        if error < _INVERSE_TOLERANCE_MM:
            return x
        try:
            step = np.linalg.solve(_jacobian_lps(transform, x), residual)
        except np.linalg.LinAlgError:
            step = residual  # the fixed-point step x <- target - u(x)
        # Halve the step until the residual shrinks: Newton overshoots on a piecewise-linear field.
        for _ in range(20):
            candidate = x - step
            candidate_residual = np.asarray(transform.TransformPoint(candidate.tolist())) - target
            if np.linalg.norm(candidate_residual) < error:
                break
            step = step / 2
        x, residual = candidate, candidate_residual
    if np.linalg.norm(residual) < 10 * _INVERSE_TOLERANCE_MM:
        return x
    raise ValueError(f"cannot invert the transform at LPS {np.round(target, 3).tolist()} mm "
                     f"(residual {np.linalg.norm(residual):.3g} mm); is it folding there?")


def inverse_transform_points(transform: sitk.Transform, points_ras_mm: np.ndarray, unresolved: str = "raise"
                             ) -> np.ndarray:
    """Where points of the input anatomy land in the warped image: the x with ``T(x) = p``.

    This is how landmarks move with the anatomy through :func:`warp_case` (which pulls
    values through ``T``, so pushing points needs its inverse). Solved per point by damped
    Newton iteration on ``T`` to 1e-4 mm. Use the transform exactly as passed to warp_case
    (sample it with :func:`sample_displacement_field` first if it is a B-spline or composite,
    for a match to the last 0.05 mm).

    Args:
        transform: output LPS mm -> input LPS mm.
        points_ras_mm: (N, 3) RAS mm of the input anatomy; NaN rows stay NaN.
        unresolved: ``"raise"``, or ``"nan"`` to give NaN for a point where the iteration does not
            converge (a training set then marks that landmark unknown in that sample).
    Returns:
        (N, 3) RAS mm in the warped image.
    Raises:
        ValueError where the iteration does not converge (a folding transform, or a point at the
        edge of a sampled field's domain), unless ``unresolved="nan"``.
    """
    points = _as_lps(points_ras_mm)
    moved = np.full_like(points, np.nan)
    for index, point in enumerate(points):
        if np.all(np.isfinite(point)):
            try:
                moved[index] = _invert_point(transform, point)
            except ValueError:
                if unresolved != "nan":
                    raise
    return moved @ LPS_TO_RAS


# ---------------------------------------------------------------------------------------------
# Registration between cases


# HU window of the registration images: air to dense bone. Metal and contrast beyond it would
# only pull the registration towards structures the other case lacks.
_REGISTRATION_HU = (-1000.0, 1500.0)


def _working_grid(image: sitk.Image, spacing_mm: float, margin_voxels: int = 0) -> sitk.Image:
    """An empty float32 image with the image's direction, isotropic ``spacing_mm``, covering the
    image's physical box (voxel corners) centred on it, plus ``margin_voxels`` on every side."""
    size = np.asarray(image.GetSize())
    spacing = np.asarray(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    centre = np.asarray(image.GetOrigin()) + direction @ ((size - 1) / 2 * spacing)
    new_size = np.maximum(1, np.ceil(size * spacing / spacing_mm).astype(int)) + 2 * margin_voxels
    grid = sitk.Image([int(n) for n in new_size], sitk.sitkFloat32)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetDirection(direction.ravel().tolist())
    grid.SetOrigin((centre - direction @ ((new_size - 1) / 2 * spacing_mm)).tolist())
    return grid


def _registration_image(ct: sitk.Image, grid: sitk.Image) -> sitk.Image:
    """The CT in its HU window, smoothed against aliasing and resampled onto ``grid`` (float32)."""
    image = sitk.Clamp(sitk.Cast(ct, sitk.sitkFloat32), sitk.sitkFloat32, *_REGISTRATION_HU)
    sigma_mm = [np.sqrt(max(0.0, grid.GetSpacing()[0] ** 2 - s ** 2)) / 2.0 for s in ct.GetSpacing()]
    if max(sigma_mm) > 0:
        image = sitk.SmoothingRecursiveGaussian(image, [max(s, 1e-3) for s in sigma_mm])
    return sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, _REGISTRATION_HU[0], sitk.sitkFloat32)


def _mask_on(mask: sitk.Image, grid: sitk.Image) -> sitk.Image:
    """A binary mask as a float32 image on ``grid`` (partial-volume fractions in [0, 1])."""
    binary = sitk.Cast(mask != 0, sitk.sitkFloat32)
    return sitk.Resample(binary, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _density(image: sitk.Image) -> sitk.Image:
    """HU + 1000 (>= 0 in the window): a mass whose moments locate the body."""
    return image - _REGISTRATION_HU[0]


def _initial_affine(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None,
                    moving_mask: sitk.Image | None) -> sitk.AffineTransform:
    """Identity matrix, centred on the fixed centroid, translated onto the moving centroid:
    centroids of the bone masks when both are given (bones are what must correspond), else of
    the tissue density."""
    if fixed_mask is not None and moving_mask is not None:
        fixed_mass, moving_mass = fixed_mask, moving_mask
    else:
        fixed_mass, moving_mass = _density(fixed), _density(moving)
    initial = sitk.CenteredTransformInitializer(fixed_mass, moving_mass, sitk.AffineTransform(3),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    return sitk.AffineTransform(initial)


def _affine_stage(fixed: sitk.Image, moving: sitk.Image, initial: sitk.AffineTransform,
                  fixed_mask: sitk.Image | None, iterations: int) -> sitk.AffineTransform:
    """Mattes mutual information, two levels, regular sampling with a fixed seed."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.REGULAR)
    # ITK jitters even "regular" sample points, seeded by the wall clock unless told otherwise.
    method.SetMetricSamplingPercentage(0.25, seed=20240601)
    if fixed_mask is not None:
        # Bones and a band around them decide the alignment, not the body outline or the gut.
        band = sitk.BinaryDilate(fixed_mask > 0.5, [3] * 3)
        method.SetMetricFixedMask(band)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01, numberOfIterations=iterations,
                                                    relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1.0, 0.0])
    affine = sitk.AffineTransform(initial)
    method.SetInitialTransform(affine, inPlace=True)

    method.Execute(fixed, moving)
    return affine


def _demons_stage(fixed: sitk.Image, moving_aligned: sitk.Image, iterations: int,
                  progress: ProgressCallback | None, progress_range: tuple[float, float]) -> sitk.Image:
    """Diffeomorphic demons, coarse (2x) then working resolution; returns the displacement field
    (fixed grid, LPS mm) that maps fixed points to points of ``moving_aligned``."""
    field = None
    levels = (2, 1)
    for level, shrink in enumerate(levels):
        fixed_level = sitk.BinShrink(fixed, [shrink] * 3) if shrink > 1 else fixed
        moving_level = sitk.Resample(moving_aligned, fixed_level, sitk.Transform(), sitk.sitkLinear,
                                     _REGISTRATION_HU[0])
        if field is None:
            initial = sitk.Image(fixed_level.GetSize(), sitk.sitkVectorFloat64)
            initial.CopyInformation(fixed_level)
        else:
            initial = sitk.Resample(field, fixed_level, sitk.Transform(), sitk.sitkLinear, 0.0,
                                    sitk.sitkVectorFloat64)
        demons = sitk.DiffeomorphicDemonsRegistrationFilter()
        demons.SetNumberOfIterations(iterations)
        # Smoothing in voxels: ~1.5 voxels keeps the field smooth at the working resolution.
        demons.SetStandardDeviations(1.5)
        demons.SetSmoothDisplacementField(True)
        demons.SetSmoothUpdateField(True)
        demons.SetUpdateFieldStandardDeviations(1.0)
        demons.SetMaximumUpdateStepLength(2.0)
        if progress is not None:
            start, stop = progress_range
            span = (stop - start) / len(levels)
            level_start = start + level * span
            demons.AddCommand(sitk.sitkIterationEvent, lambda f=demons, s=level_start: progress(
                s + span * min(1.0, f.GetElapsedIterations() / iterations), "deformable registration"))
        field = demons.Execute(fixed_level, moving_level, initial)
    return field


def register_cases(fixed_ct: sitk.Image, moving_ct: sitk.Image, fixed_mask: sitk.Image | None = None,
                   moving_mask: sitk.Image | None = None, iterations: int = 50,
                   progress: ProgressCallback | None = None, *, spacing_mm: float = 4.0
                   ) -> sitk.DisplacementFieldTransform:
    """Deformable registration of ``moving_ct`` onto ``fixed_ct`` at reduced resolution.

    Both CTs are windowed to [-1000, 1500] HU, smoothed and resampled to isotropic
    ``spacing_mm``. An affine stage (Mattes mutual information; started from the bone masks'
    centroids when both masks are given, else from the tissue centroids; the metric limited to
    a band around the fixed bones when its mask is given) is followed by diffeomorphic demons
    (8 then 4 mm at the default spacing). Takes seconds to tens of seconds on two cores.

    Register only cases that cover the same body region. Where one CT shows anatomy that the
    other lacks, demons still produces a (smooth, invertible) field, but its correspondence
    there is meaningless.

    Args:
        fixed_ct, moving_ct: CTs in HU (any grids).
        fixed_mask, moving_mask: optional bone masks (non-zero inside) on their CT's grid; give
            masks of the structures both cases contain.
        iterations: iterations per level of each stage.
        progress: called as ``progress(fraction_done, stage)``.
        spacing_mm: working resolution.
    Returns:
        a DisplacementFieldTransform on a grid over the fixed CT (``spacing_mm``, one voxel of
        margin) mapping fixed LPS points to corresponding moving LPS points: resampling the
        moving CT through it gives the moving anatomy in the fixed shape and position.
    """
    if iterations < 1:
        raise XreconInputError(f"registration needs at least one iteration, got {iterations}")
    if (fixed_mask is None) != (moving_mask is None):
        raise XreconInputError("give bone masks for both cases or for neither")

    def report(fraction: float, stage: str) -> None:
        if progress is not None:
            progress(fraction, stage)

    report(0.0, "resampling")
    grid = _working_grid(fixed_ct, spacing_mm)
    fixed = _registration_image(fixed_ct, grid)
    moving = _registration_image(moving_ct, _working_grid(moving_ct, spacing_mm))
    fixed_bones = _mask_on(fixed_mask, grid) if fixed_mask is not None else None
    moving_bones = _mask_on(moving_mask, moving) if moving_mask is not None else None

    report(0.05, "affine registration")
    affine = _affine_stage(fixed, moving, _initial_affine(fixed, moving, fixed_bones, moving_bones),
                           fixed_bones, max(iterations, 100))
    moving_aligned = sitk.Resample(moving, fixed, affine, sitk.sitkLinear, _REGISTRATION_HU[0])

    report(0.3, "deformable registration")
    demons_field = _demons_stage(fixed, moving_aligned, iterations, progress, (0.3, 0.95))

    report(0.95, "composing")
    # One voxel of margin (the edge values repeated) so that every fixed voxel lies well inside
    # the field's buffer; outside it a displacement field transform is the identity.
    demons_field = sitk.ZeroFluxNeumannPad(demons_field, [1] * 3, [1] * 3)
    # Fixed point x -> x + d(x) on the affinely aligned moving image -> affine into the moving CT.
    total = sitk.CompositeTransform([affine, sitk.DisplacementFieldTransform(sitk.Image(demons_field))])
    field = sitk.TransformToDisplacementField(total, sitk.sitkVectorFloat64, demons_field.GetSize(),
                                              demons_field.GetOrigin(), demons_field.GetSpacing(),
                                              demons_field.GetDirection())
    report(1.0, "done")
    return sitk.DisplacementFieldTransform(field)


def interpolate_displacement(field_transform: sitk.DisplacementFieldTransform, fraction: float,
                             jitter: sitk.Transform | None = None, *, keep_position: bool = True
                             ) -> sitk.Transform:
    """A transform for :func:`warp_case` that moves the fixed case's anatomy towards the moving
    case's shape.

    With ``field = register_cases(fixed_ct=A, moving_ct=B)``, the field lives on A's grid and
    maps each A point ``a`` to its corresponding B point ``a + u(a)``. The new anatomy puts the
    tissue of ``a`` at ``W(a) = a + fraction * u(a)`` (straight-line "along" interpolation of
    corresponding positions); warp_case pulls values, so the returned transform is ``W⁻¹``
    (computed with sitk.InvertDisplacementField). Warping A through it gives, on A's grid:

    * fraction 0: A unchanged (identity);
    * fraction 1: A's intensities and labels in B's shape (as registered; up to the global
      translation when ``keep_position``);
    * in between: the shape part-way from A's to B's. Intensities always come from A (A's
      density, contrast and gas); only the geometry moves towards B.

    Landmarks of A move to ``inverse_transform_points(transform, landmarks)`` (= ``W(a)``).

    Args:
        field_transform: from :func:`register_cases` (A fixed, B moving).
        fraction: 0 = A, 1 = B's shape; values a little outside [0, 1] extrapolate.
        jitter: an optional transform on A's grid (e.g. random_bspline_transform(A_ct, rng,
            LIGHT_MAGNITUDE_MM)) applied on top, for "around" samples: the result pulls
            through ``W⁻¹(jitter(x))``.
        keep_position: subtract the mean displacement over the field's grid, so the anatomy
            keeps A's position (two scans' coordinates differ arbitrarily) and only its shape
            and orientation move.
    Returns:
        a DisplacementFieldTransform (no jitter) or a CompositeTransform, output -> input LPS mm.
    """
    if not np.isfinite(fraction):
        raise XreconInputError(f"fraction must be finite, got {fraction}")
    displacement, field = _field_array(field_transform)
    if keep_position:
        displacement = displacement - displacement.reshape(-1, 3).mean(axis=0)
    forward = sitk.GetImageFromArray(fraction * displacement, isVector=True)
    forward.CopyInformation(field)
    if fraction == 0 or not np.any(displacement):
        inverse = forward  # all zeros: the identity is its own inverse
    else:
        # enforceBoundaryCondition=False: the field need not vanish on the grid's edge.
        inverse = sitk.InvertDisplacementField(forward, maximumNumberOfIterations=50,
                                               maxErrorToleranceThreshold=0.01,
                                               meanErrorToleranceThreshold=0.0001,
                                               enforceBoundaryCondition=False)
    pull = sitk.DisplacementFieldTransform(sitk.Cast(inverse, sitk.sitkVectorFloat64))
    if jitter is None:
        return pull
    # CompositeTransform applies its last transform first: x -> jitter(x) -> W⁻¹(jitter(x)).
    return sitk.CompositeTransform([pull, jitter])
