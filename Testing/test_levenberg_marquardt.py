"""The combined fit's least-squares solver: the minimum of problems whose answer is known, and
scipy's answer on a curved one."""

import numpy as np
import pytest
from scipy.optimize import least_squares

from SingleImageReconLib.shape_models.levenberg_marquardt import levenberg_marquardt


def rosenbrock(x):
    return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def rosenbrock_jacobian(x):
    return np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])


def test_a_linear_problem_gets_its_least_squares_solution():
    rng = np.random.default_rng(0)
    matrix, target = rng.normal(size=(200, 6)), rng.normal(size=200)
    found = levenberg_marquardt(lambda x: matrix @ x - target, lambda x: matrix, np.zeros(6), np.ones(6),
                                max_evaluations=100, relative_cost_tolerance=1e-12, step_tolerance=1e-12)
    expected = np.linalg.lstsq(matrix, target, rcond=None)[0]
    np.testing.assert_allclose(found.x, expected, atol=1e-8)
    assert found.cost == pytest.approx(0.5 * np.sum((matrix @ expected - target) ** 2))


@pytest.mark.parametrize("scale", [(1.0, 1.0), (0.01, 100.0)])
def test_the_rosenbrock_valley_is_followed_to_its_minimum_as_scipy_finds_it(scale):
    start = np.array([-1.2, 1.0])
    found = levenberg_marquardt(rosenbrock, rosenbrock_jacobian, start, np.array(scale), max_evaluations=500,
                                relative_cost_tolerance=1e-15, step_tolerance=1e-12)
    reference = least_squares(rosenbrock, start, jac=rosenbrock_jacobian, x_scale=np.array(scale), method="trf",
                              ftol=1e-15, xtol=1e-12, gtol=1e-15)
    np.testing.assert_allclose(found.x, reference.x, atol=1e-6)
    np.testing.assert_allclose(found.x, [1.0, 1.0], atol=1e-6)
    assert found.evaluations <= 500


def test_the_evaluation_budget_is_kept():
    calls = []

    def counted(x):
        calls.append(x)
        return rosenbrock(x)

    found = levenberg_marquardt(counted, rosenbrock_jacobian, np.array([-1.2, 1.0]), np.ones(2), max_evaluations=7,
                                relative_cost_tolerance=0.0, step_tolerance=0.0)
    assert len(calls) == found.evaluations == 7


def test_a_step_into_non_finite_residuals_is_refused_and_the_solution_stays_finite():
    # r = x − 3 is undefined (NaN) beyond x = 2: the minimum within reach is the edge, never a NaN
    residuals = lambda x: np.where(x < 2.0, x - 3.0, np.nan)  # noqa: E731
    found = levenberg_marquardt(residuals, lambda x: np.eye(1), np.array([0.0]), np.ones(1), max_evaluations=60)
    assert np.isfinite(found.x).all() and np.isfinite(found.cost)
    assert 1.5 < found.x[0] < 2.0


@pytest.mark.parametrize("bad", [0.0, np.inf, np.nan])
def test_a_zero_or_non_finite_jacobian_ends_the_solve_where_it_stands(bad):
    found = levenberg_marquardt(lambda x: x - 3.0, lambda x: np.full((1, 1), bad), np.array([1.0]), np.ones(1))
    assert found.x.tolist() == [1.0] and found.evaluations <= 60
