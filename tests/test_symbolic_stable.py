"""``sdekit.symbolic.stable``: each rewrite keeps the value (checked by mpmath at 50 digits on the
original expression) and stays accurate in float64 where the naive form cancels or overflows."""
import math

import mpmath
import pytest
import scipy.special
import sympy as sp
import torch
from sympy.codegen.cfunctions import expm1

from sdekit.symbolic.codegen import torch_function
from sdekit.symbolic.functions import dawsn
from sdekit.symbolic.stable import (erfi_to_dawsn, factor_exponential_polynomial, merge_exponentials, stabilize,
                                    use_expm1)

t = sp.Symbol("t", positive=True)
g = sp.Symbol("g", positive=True)


def mp_value(expr, **values):
    f = sp.lambdify(list(values), expr, modules=[{"dawsn": lambda z: mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-z * z)
                                                   * mpmath.erfi(z), "expm1": mpmath.expm1}, "mpmath"])
    with mpmath.workdps(50):
        return f(*(mpmath.mpf(v) for v in values.values()))


def float64_value(expr, **values):
    f = torch_function(expr, tuple(sp.Symbol(n, positive=True) for n in values))
    return float(f(*(torch.tensor(v, dtype=torch.float64) for v in values.values())))


def test_use_expm1_turns_one_minus_exp_into_expm1_accurate_for_tiny_arguments():
    expr = 3 * (1 - sp.exp(-g * t))
    stable = use_expm1(expr)
    assert stable.has(expm1) and not stable.has(sp.exp)
    for tt in (1e-300, 1e-12, 1e-3, 2.0):
        want = mp_value(expr, g=0.5, t=tt)
        assert float64_value(stable, g=0.5, t=tt) == pytest.approx(float(want), rel=4e-16)


def test_factor_exponential_polynomial_makes_sub_vp_variance_accurate_near_zero():
    B = g * t
    expr = 1 - 2 * sp.exp(-B) + sp.exp(-2 * B)
    stable = use_expm1(factor_exponential_polynomial(expr, t))
    assert sp.simplify(stable.rewrite(sp.exp) - expr) == 0
    for tt in (1e-9, 1e-5, 0.3):
        want = mp_value(expr, g=0.5, t=tt)
        assert float64_value(stable, g=0.5, t=tt) == pytest.approx(float(want), rel=1e-15)
        if tt == 1e-9:  # the naive form has lost every digit there
            assert abs(float64_value(expr, g=0.5, t=tt) - float(want)) > 100 * float(want)


def test_erfi_to_dawsn_and_merging_keep_tsdve_terms_finite_where_erfi_overflows():
    term = sp.exp(-g * t**2) * sp.erfi(sp.sqrt(g) * t + 3 / sp.sqrt(g))
    stable = merge_exponentials(erfi_to_dawsn(term))
    assert stable.has(dawsn) and not stable.has(sp.erfi)
    values = {"g": 400.0, "t": 1.0}  # erfi(20.15) ~ 1e175 times exp(-400) ~ 1e-174 is fine ...
    assert float64_value(stable, **values) == pytest.approx(float(mp_value(term, **values)), rel=1e-14)
    values = {"g": 900.0, "t": 1.0}  # ... but erfi(30.1) overflows float64 while the product is ~ 1e2
    naive = math.exp(-900.0) * scipy.special.erfi(30.0 + 3 / 30.0)
    assert not naive == pytest.approx(float(mp_value(term, **values)), rel=0.5)  # exp underflows, erfi overflows
    assert float64_value(stable, **values) == pytest.approx(float(mp_value(term, **values)), rel=1e-14)


def test_stabilize_keeps_the_value_of_piecewise_solutions():
    expr = sp.Piecewise((1 - sp.exp(-g * t), g > 1), (t, True))
    stable = stabilize(expr, t)
    assert isinstance(stable, sp.Piecewise) and stable.args[0][0].has(expm1)
