"""``sdekit.symbolic.series`` against exact series (sympy's rational Taylor expansions) and mpmath."""
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from sdekit.symbolic.parse import t
from sdekit.symbolic.series import TERMS, analytic_at_zero, taylor_coefficients, taylor_integral

k = sp.Symbol("k", positive=True)


@pytest.mark.parametrize("expr, analytic", [
    (t**2 + 3, True), (sp.exp(-k * t) * sp.cos(t), True), (sp.sqrt(1 + t), True), (sp.log(1 + t), True),
    (sp.sqrt(t), False), (t**sp.Rational(3, 10), False), (sp.log(t), False), (1 / t, False),
])
def test_analytic_at_zero_refuses_fractional_powers_and_logs_of_t(expr, analytic):
    assert analytic_at_zero(expr) is analytic


def test_taylor_coefficients_match_sympys_exact_series():
    expr = sp.exp(-k * t) * sp.cos(t) + sp.sqrt(1 + t**2)
    got = taylor_coefficients(expr, (t, k), (0.75,))
    exact = sp.series(expr.subs(k, sp.Rational(3, 4)), t, 0, TERMS).removeO()
    want = [float(exact.coeff(t, n)) for n in range(TERMS)]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)


def test_taylor_coefficients_are_none_where_not_analytic():
    assert taylor_coefficients(sp.sqrt(t), (t,), ()) is None


def test_taylor_integral_reproduces_one_minus_exp():
    """I' = K a I + h with a = -1, h = 1, K = 1: I = 1 - exp(-t) = sum (-1)^(n+1) t^n / n!."""
    a, h = np.array([-1.0] + [0.0] * 15), np.array([1.0] + [0.0] * 15)
    coeffs, radius = taylor_integral(a, h, 1.0)
    want = [0.0] + [(-1) ** (n + 1) / math.factorial(n) for n in range(1, 17)]
    np.testing.assert_allclose(coeffs, want, rtol=1e-15, atol=0)
    # The candidate radius: the last term at most 2^-56 of the leading one.
    assert abs(coeffs[16]) * radius**15 == pytest.approx(2.0**-56 * abs(coeffs[1]), rel=1e-9)
    with mpmath.workdps(40):
        series = mpmath.polyval([mpmath.mpf(c) for c in coeffs[::-1]], mpmath.mpf(radius))
        assert abs(series - (1 - mpmath.exp(-mpmath.mpf(radius)))) <= 1e-15 * abs(series)


def test_a_table_ending_in_zeros_is_not_taken_for_a_terminating_series():
    """DriftVE(5, gamma)'s my = 1 - exp(-gamma t^6 / 6): nonzero terms at t^6, t^12 only within 16
    terms (then t^18), which once gave an infinite radius and my(1) = -2155.56 for gamma = 400."""
    gamma = 400.0
    a = np.zeros(TERMS)
    a[5] = -gamma
    h = -a
    coeffs, radius = taylor_integral(a, h, 1.0)
    assert np.count_nonzero(coeffs) == 2 and coeffs[6] == pytest.approx(gamma / 6)
    assert math.isfinite(radius) and radius < 0.01


def test_a_single_nonzero_term_gives_no_radius():
    a, h = np.zeros(TERMS), np.zeros(TERMS)
    h[15] = 1.0
    assert taylor_integral(a, h, 2.0)[1] == 0.0
