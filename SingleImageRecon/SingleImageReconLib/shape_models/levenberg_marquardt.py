"""A lean Levenberg–Marquardt solver for small dense least-squares problems.

``scipy.optimize.least_squares`` takes an SVD of the whole (M, P) Jacobian at every step and
runs a few dozen numpy calls around it. For the combined fit's problems (M ≈ 1000 residuals,
P ≤ 18 unknowns, a few hundred solves a bone) that was about a third of the fit's time. The
normal equations are (P, P): one product and one small solve a step. Squaring the Jacobian's
condition number is harmless here: the unknowns are scaled to comparable units and the priors
keep JᵀJ well away from singular.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Solution:
    """x (P,): the solution; cost: ½|r(x)|²; evaluations: how many times r was evaluated."""

    x: np.ndarray
    cost: float
    evaluations: int


def levenberg_marquardt(residuals: Callable[[np.ndarray], np.ndarray], jacobian: Callable[[np.ndarray], np.ndarray],
                        x0: np.ndarray, scale: np.ndarray, max_evaluations: int = 60,
                        relative_cost_tolerance: float = 1e-3, step_tolerance: float = 1e-6) -> Solution:
    """Minimise ½|r(x)|² from ``x0``.

    Args:
        residuals: x (P,) → r (M,).
        jacobian: x (P,) → ∂r/∂x (M, P), asked for only at accepted points.
        scale: (P,) the size of a meaningful change of each unknown: the damping is isotropic in
            x / scale (as ``least_squares``'s ``x_scale``).
        max_evaluations: at most this many evaluations of ``residuals``.
        relative_cost_tolerance: stop when an accepted step lowers the cost by less than this
            fraction of it.
        step_tolerance: stop when the step, in units of ``scale``, is smaller than this relative
            to |x / scale| (plus this).

    The damping follows Nielsen (1999): it starts at 10⁻³ of JᵀJ's largest diagonal entry, shrinks
    by up to 3 after a step that did as predicted and doubles (and doubles again) after a rejected one.
    A non-finite cost counts as a rejected step; a Jacobian that is zero or not finite ends the
    solve where it stands.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    scale = np.asarray(scale, dtype=np.float64)
    r = residuals(x)
    cost, evaluations = 0.5 * float(r @ r), 1
    if not np.isfinite(cost):
        return Solution(x, cost, evaluations)
    scaled = jacobian(x) * scale
    normal, gradient = scaled.T @ scaled, scaled.T @ r
    damping, growth = 1e-3 * float(np.max(np.diag(normal))), 2.0
    identity = np.eye(len(x))
    while evaluations < max_evaluations:
        try:
            step = -np.linalg.solve(normal + damping * identity, gradient)
        except np.linalg.LinAlgError:  # JᵀJ + λI is singular only where J is zero or not finite: no step to take
            break
        if np.linalg.norm(step) <= step_tolerance * (step_tolerance + np.linalg.norm(x / scale)):
            break
        candidate = x + step * scale
        r_candidate = residuals(candidate)
        evaluations += 1
        new_cost = 0.5 * float(r_candidate @ r_candidate)
        predicted = -float(gradient @ step + 0.5 * step @ normal @ step)
        ratio = (cost - new_cost) / predicted if predicted > 0 else -1.0
        if not ratio > 0:  # also where the new cost is NaN or infinite
            damping, growth = damping * growth, growth * 2
            continue
        lowered = cost - new_cost
        x, r, cost = candidate, r_candidate, new_cost
        damping, growth = damping * max(1 / 3, 1 - (2 * ratio - 1) ** 3), 2.0
        if lowered < relative_cost_tolerance * (cost + lowered) and ratio > 0.25:
            break
        scaled = jacobian(x) * scale
        normal, gradient = scaled.T @ scaled, scaled.T @ r
    return Solution(x, cost, evaluations)
