"""The compiled marginals (``sdekit.symbolic.marginals``) against mpmath: 30-digit quadrature of the
integrating-factor integrals with the coefficients written out here by hand, within each path's
stated error bound (``Marginals.error_bounds``, relative, times ``kappa = 1 + 2 int_0^t |a|``)."""
import math
import os
import unittest.mock

import mpmath
import pytest
import torch
from hypothesis import given, settings, strategies as st

import sdekit.symbolic.moments as moments
from sdekit import DriftVE, LinearSDE
from mpmath_moments import assert_within_stated_bounds, driftve_reference, integral, mp_moments

THOROUGH = os.environ.get("SDEKIT_HYPOTHESIS_PROFILE") == "thorough"
# Each example derives a new SDE form (sympy, Taylor table, quadrature tables): a few seconds.
FEW = settings(max_examples=60 if THOROUGH else 2)
# Non-integer exponents make sympy run into its budget; a short one keeps the run short.
SHORT_BUDGET = 1.0


def short_sympy_budget():
    return unittest.mock.patch.object(moments, "DEFAULT_TIME_BUDGET", SHORT_BUDGET)


# ----------------------------------------------------------------------------- DriftVE(alpha) family
DRIFTVE_TIMES = [1e-6, 1e-3, 5e-3, 0.01, 0.1, 0.37, 0.8, 1.0]


@pytest.mark.parametrize("alpha, gamma, my_at_1", [(5, 400.0, 1.0), (5, 2.0, 1 - math.exp(-2.0 / 6))])
def test_driftve_mean_is_not_a_truncated_series(alpha, gamma, my_at_1):
    """The reported bug: a Taylor table ending in zeros was taken for a terminating series, and
    DriftVE(5, 400) gave my(1) = -2155.56, DriftVE(5, 2) my(1) = 0.27778 (the two-term truncation)."""
    sde = DriftVE(alpha, gamma)
    assert float(sde.mean_coeffs(1.0)[1]) == pytest.approx(my_at_1, rel=1e-14)
    assert float(sde.prior_mean(torch.ones(()))) == pytest.approx(1.0, rel=1e-14)
    assert sde.marginals.taylor_radius["my"] < 0.01


@FEW
@given(alpha=st.integers(0, 20), gamma=st.sampled_from([0.05, 0.7, 2.0, 25.0, 400.0]))
def test_driftve_integer_alpha_family_matches_mpmath_within_stated_bounds(alpha, gamma):
    sde = DriftVE(alpha, gamma)
    assert_within_stated_bounds(sde, driftve_reference(sde), DRIFTVE_TIMES)
    if alpha:  # OUVE (alpha = 0) keeps the paper's nu, std(1) just short of sigma_max
        assert float(sde.marginal_std(1.0)) == pytest.approx(0.3, rel=1e-12)


@FEW
@given(alpha=st.floats(0.05, 20.0).map(lambda a: round(a, 2)), gamma=st.sampled_from([0.7, 2.0, 400.0]))
def test_driftve_non_integer_alpha_family_matches_mpmath_within_stated_bounds(alpha, gamma):
    with short_sympy_budget():
        sde = DriftVE(alpha, gamma)
    assert_within_stated_bounds(sde, driftve_reference(sde), DRIFTVE_TIMES)


# ----------------------------------------------------------------------------- random polynomial SDEs
def polynomial():
    return st.integers(0, 16).flatmap(
        lambda deg: st.lists(st.floats(-2.0, 2.0).map(lambda x: round(x, 3)), min_size=deg + 1, max_size=deg + 1))


def poly_text(coeffs):
    return " + ".join(f"({c!r})*t**{k}" for k, c in enumerate(coeffs))


def mp_poly(coeffs):
    return lambda s: mpmath.fsum(mpmath.mpf(c) * s**k for k, c in enumerate(coeffs))


@FEW
@given(a=polynomial(), c=polynomial(), g=polynomial(), v0=st.sampled_from([0.0, 0.3]))
def test_random_polynomial_sdes_match_mpmath_within_stated_bounds(a, c, g, v0):
    if not any(g):
        g = [1.0]
    with short_sympy_budget():
        sde = LinearSDE(f"({poly_text(a)})*x + ({poly_text(c)})*y", poly_text(g), v0=v0)
    A_coeffs = [0.0] + [ck / (k + 1) for k, ck in enumerate(a)]  # int_0^t a, by hand
    a_fn, g_fn = mp_poly(a), mp_poly(g)
    reference = lambda t: mp_moments(mp_poly(A_coeffs), lambda tt: integral(lambda s: abs(a_fn(s)), tt),  # noqa: E731
                                     mp_poly(c), lambda s: g_fn(s) ** 2, mpmath.mpf(v0), t)
    if not any(c):
        assert not sde.has_y_drift
    assert_within_stated_bounds(sde, reference, [1e-6, 1e-3, 0.01, 0.2, 0.6, 1.0])


def test_self_check_passes_and_catches_a_marginal_evaluated_at_the_wrong_time():
    with short_sympy_budget():
        sde = LinearSDE("-(1 + t**2)*x + t*y", "0.5 + t")
    errors = sde.self_check()
    assert max(errors.values()) < 1e-12
    # A marginal evaluated at t/2 (the mutant of issue 12) is caught.
    wrong = sde.marginals.v
    object.__setattr__(sde.marginals, "v", lambda t: wrong(t / 2))
    with pytest.raises(AssertionError, match="v: relative error"):
        sde.self_check()
