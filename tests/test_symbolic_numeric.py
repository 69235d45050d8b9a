"""``sdekit.symbolic.numeric``: Chebyshev tables of integrals against mpmath quadrature, their
stated relative error bounds honest (measured error below them), down to t -> 0."""
import math

import mpmath
import numpy as np
import pytest
import torch

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
