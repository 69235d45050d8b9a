"""``sdekit.symbolic.numeric``: Chebyshev tables of integrals against mpmath quadrature, their
stated relative error bounds honest (measured error below them), down to t -> 0."""
import math

import mpmath
import numpy as np
import pytest
import torch

from sdekit import LinearSDE
from sdekit.symbolic.numeric import tabulate_integral

TIMES = [1e-9, 1e-6, 1e-3, 0.01, 0.2, 0.5, 0.99, 1.0]


def measured_relative_error(table, exact):
    t = torch.tensor(TIMES, dtype=torch.float64)
    got = table(t).numpy()
    with mpmath.workdps(30):
        want = np.array([float(exact(mpmath.mpf(tt))) for tt in TIMES])
    return float(np.max(np.abs(got - want) / np.abs(want)))


def test_table_of_a_smooth_integral_is_within_its_stated_bound():
    table = tabulate_integral(lambda tt, s: math.cos(3 * s) * math.exp(-s), 1.0)
    exact = lambda t: mpmath.quad(lambda s: mpmath.cos(3 * s) * mpmath.exp(-s), [0, t])  # noqa: E731
    err = measured_relative_error(table, exact)
    assert err <= table.rel_error_bound < 1e-12


def test_table_depending_on_t_and_s_is_within_its_stated_bound():
    """The integrating-factor form I(t) = int_0^t exp(2 (A(t) - A(s))) h(s) ds with A = -t^2."""
    table = tabulate_integral(lambda tt, s: math.exp(-2 * (tt**2 - s**2)) * (1 + s), 1.0)
    exact = lambda t: mpmath.quad(lambda s: mpmath.exp(-2 * (t**2 - s**2)) * (1 + s), [0, t])  # noqa: E731
    assert measured_relative_error(table, exact) <= table.rel_error_bound < 1e-12


def test_integral_vanishing_like_t_to_the_p_keeps_relative_accuracy_with_its_order():
    """h(s) = s^7.5 (DriftVE(7.5)'s my): with q = I / t^8.5 the relative error holds down to 1e-9."""
    table = tabulate_integral(lambda tt, s: s**7.5, 1.0, order=8.5, q0=1 / 8.5)
    exact = lambda t: t**8.5 / 8.5  # noqa: E731
    assert measured_relative_error(table, exact) <= table.rel_error_bound < 1e-12
    assert table.integral(0.5) == pytest.approx(0.5**8.5 / 8.5, rel=1e-13)


def test_sqrt_map_tabulates_half_integer_powers():
    table = tabulate_integral(lambda tt, s: math.sqrt(s) + 1.0, 2.0, sqrt_map=True)
    t = torch.tensor([1e-8, 0.5, 2.0], dtype=torch.float64)
    want = 2 / 3 * t**1.5 + t
    torch.testing.assert_close(table(t), want, rtol=max(table.rel_error_bound, 1e-14), atol=0)


def test_series_evaluation_matches_extended_precision_clenshaw_over_the_whole_interval():
    """The fast evaluation ``cos(k arccos x) @ c`` of the degree-2047 table of ``A`` of
    ``LinearSDE("-x*t**t", "1")`` (``s^s = exp(s log s)`` keeps its coefficients from decaying fast) against
    Clenshaw's recurrence in 80-bit long double, at 40002 points (uniform in ``x`` and in
    ``arccos x``, both end points included): within 128 ulps of ``max |q|`` (the rounding of
    ``k arccos x``; Clenshaw in float64 stays within one), a tenth of the stated bound."""
    if np.finfo(np.longdouble).eps > 1e-18:
        pytest.skip("numpy's long double is no wider than float64 here")
    table = LinearSDE("-x*t**t", "1").marginals.mx.table  # A(t) = -int_0^t s^s ds
    assert table.coeffs.size == 2048 and table.sqrt_map and table.T == 1.0
    t = np.concatenate([np.linspace(0.0, 1.0, 20001), ((1.0 - np.cos(np.linspace(0.0, np.pi, 20001))) / 2.0) ** 2])
    x = 2.0 * t**0.5 - 1.0  # the point the table maps t to (in sqrt(t), T = 1), rounded as it rounds it
    ref = np.polynomial.chebyshev.chebval(x.astype(np.longdouble), table.coeffs.astype(np.longdouble))
    got = table.q(t)
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    assert err < 128 * np.finfo(np.float64).eps
    assert err < table.rel_error_bound / 10
