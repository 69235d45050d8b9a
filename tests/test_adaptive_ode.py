"""Dormand-Prince 5(4) and the adaptive probability-flow sampler.

References independent of the code under test: the tableau as published (Dormand & Prince 1980,
RK5(4)7M) in exact fractions and the 17 Butcher order conditions up to order 5; measured local
orders; scipy's ``solve_ivp(RK45)``; and the probability-flow ODE on Gaussian data with its exact
score, which is linear: ``(x - m(t)) / sqrt(V(t))`` is constant along it, with the moments of the
VP SDE and OUVE written out here in closed form (``V = mx^2 s^2 + v``).
"""
import math
from fractions import Fraction as Fr

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from sdekit import OUVE, VPSDE, AdaptiveProbabilityFlow, DormandPrince
from sdekit.solvers import NonFiniteError, SolverError

MU, S = 0.3, 0.7

# Dormand & Prince (1980), RK5(4)7M, as published.
C_PUB = [Fr(0), Fr(1, 5), Fr(3, 10), Fr(4, 5), Fr(8, 9), Fr(1), Fr(1)]
A_PUB = [
    [],
    [Fr(1, 5)],
    [Fr(3, 40), Fr(9, 40)],
    [Fr(44, 45), Fr(-56, 15), Fr(32, 9)],
    [Fr(19372, 6561), Fr(-25360, 2187), Fr(64448, 6561), Fr(-212, 729)],
    [Fr(9017, 3168), Fr(-355, 33), Fr(46732, 5247), Fr(49, 176), Fr(-5103, 18656)],
    [Fr(35, 384), Fr(0), Fr(500, 1113), Fr(125, 192), Fr(-2187, 6784), Fr(11, 84)],
]
B_PUB = [Fr(35, 384), Fr(0), Fr(500, 1113), Fr(125, 192), Fr(-2187, 6784), Fr(11, 84), Fr(0)]
BHAT_PUB = [Fr(5179, 57600), Fr(0), Fr(7571, 16695), Fr(393, 640), Fr(-92097, 339200), Fr(187, 2100), Fr(1, 40)]


def order_conditions(b, A, c):
    """``(order, sum b Phi(tree), 1/gamma(tree))`` for the 17 rooted trees of order <= 5."""
    n = len(b)
    Am = np.zeros((n, n))
    for i, row in enumerate(A):
        Am[i, :len(row)] = [float(v) for v in row]
    b, c = np.array([float(v) for v in b]), np.array([float(v) for v in c])
    Ac = Am @ c
    return [
        (1, b.sum(), 1), (2, b @ c, 1 / 2),
        (3, b @ c**2, 1 / 3), (3, b @ Ac, 1 / 6),
        (4, b @ c**3, 1 / 4), (4, b @ (c * Ac), 1 / 8), (4, b @ Am @ c**2, 1 / 12), (4, b @ Am @ Ac, 1 / 24),
        (5, b @ c**4, 1 / 5), (5, b @ (c**2 * Ac), 1 / 10), (5, b @ (c * (Am @ c**2)), 1 / 15),
        (5, b @ (c * (Am @ Ac)), 1 / 30), (5, b @ (Ac * Ac), 1 / 20), (5, b @ Am @ c**3, 1 / 20),
        (5, b @ Am @ (c * Ac), 1 / 40), (5, b @ Am @ Am @ c**2, 1 / 60), (5, b @ Am @ Am @ Ac, 1 / 120),
    ]


def test_tableau_is_the_published_one():
    dp = DormandPrince
    assert dp.C == pytest.approx([float(v) for v in C_PUB], rel=1e-15, abs=0)
    for row, pub in zip(dp.A, A_PUB):
        assert row == pytest.approx([float(v) for v in pub], rel=1e-15, abs=0)
    assert dp.B == pytest.approx([float(v) for v in B_PUB], rel=1e-15, abs=0)
    assert dp.B_HAT == pytest.approx([float(v) for v in BHAT_PUB], rel=1e-15, abs=0)


def test_tableau_rows_sum_to_the_nodes():
    for row, c in zip(DormandPrince.A[1:], DormandPrince.C[1:]):
        assert sum(row) == pytest.approx(c, abs=1e-15)


def test_solution_weights_meet_all_order_5_conditions_and_the_estimator_only_order_4():
    dp = DormandPrince
    for order, lhs, rhs in order_conditions(dp.B, dp.A, dp.C):
        assert lhs == pytest.approx(rhs, abs=1e-14), f"order-{order} condition"
    hat = order_conditions(dp.B_HAT, dp.A, dp.C)
    for order, lhs, rhs in hat:
        if order <= 4:
            assert lhs == pytest.approx(rhs, abs=1e-14), f"order-{order} condition of b_hat"
    assert max(abs(lhs - rhs) for order, lhs, rhs in hat if order == 5) > 1e-4  # a real error estimate


def test_dense_output_weights_reproduce_the_step_at_theta_1():
    for row, b in zip(DormandPrince.P, DormandPrince.B):
        assert sum(row) == pytest.approx(b, abs=1e-14)


def _one_step(h, t_eval=None):
    """One step of ``y' = y cos(t) + t`` from ``t = 0.3`` (the tolerance never rejects it)."""
    f = lambda t, y: y * math.cos(t) + t  # noqa: E731
    y0 = torch.tensor([[1.2]], dtype=torch.float64)
    sol = DormandPrince(rtol=1e6, atol=1e6, first_step=h).solve(f, 0.3, 0.3 + h, y0, t_eval=t_eval)
    assert sol.n_accepted == 1 and sol.n_rejected == 0 and sol.nfe == 7
    ref = solve_ivp(lambda t, y: y * np.cos(t) + t, (0.3, 0.3 + h), [1.2], rtol=1e-13, atol=1e-15,
                    method="DOP853", dense_output=True)
    return sol, ref


def _slope(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


def test_local_error_of_one_step_is_order_6_and_dense_output_order_5():
    hs = [0.4, 0.2, 0.1, 0.05]
    step_err, dense_err = [], []
    for h in hs:
        sol, ref = _one_step(h, t_eval=[0.3 + 0.37 * h])
        step_err.append(abs(float(sol.y) - ref.y[0, -1]))
        dense_err.append(abs(float(sol.ys[0]) - ref.sol(0.3 + 0.37 * h)[0]))
    assert 5.6 < _slope(hs, step_err) < 6.6      # order 5: local error O(h^6)
    assert 4.6 < _slope(hs, dense_err) < 5.6     # order-4 interpolant: O(h^5)


def test_dense_output_over_an_adaptive_solve_is_as_accurate_as_the_steps():
    f = lambda t, y: (-y[0] * math.cos(t), y[1] * 0.5)  # noqa: E731   a tuple state, two components
    y0 = (torch.ones(3, 2, dtype=torch.float64), torch.full((3,), 2.0, dtype=torch.float64))
    t_eval = torch.linspace(0.0, 5.0, 41, dtype=torch.float64)
    sol = DormandPrince(1e-8, 1e-10).solve(f, 0.0, 5.0, y0, t_eval=t_eval)
    assert sol.ys[0].shape == (41, 3, 2) and sol.ys[1].shape == (41, 3)
    assert torch.allclose(sol.ys[0][:, 0, 0], torch.exp(-torch.sin(t_eval)), rtol=1e-6, atol=0)
    assert torch.allclose(sol.ys[1][:, 0], 2 * torch.exp(0.5 * t_eval), rtol=1e-6, atol=0)
    assert torch.allclose(sol.ys[0][-1], sol.y[0], rtol=1e-14, atol=0) and torch.equal(sol.ys[0][0], y0[0])


def gaussian_problem(sde, y):
    """Closed-form moments of ``x(t)`` for ``x0 ~ N(MU, S^2)`` (VP and OUVE written out here)."""
    if isinstance(sde, VPSDE):
        b0, b1 = sde.beta_min, sde.beta_max

        def moments(t):
            B = b0 * t + (b1 - b0) * t * t / 2
            mx = math.exp(-B / 2)
            return mx * MU, mx**2 * S**2 + 1 - math.exp(-B)
    else:
        g, smin, smax = sde.gamma, sde.sigma_min, sde.sigma_max

        def moments(t):
            mx = math.exp(-g * t)
            v = smin**2 * ((smax / smin) ** (2 * t) - math.exp(-2 * g * t))
            return mx * MU + (1 - mx) * y, mx**2 * S**2 + v

    def score(x, t):
        m, V = moments(float(t[0]))
        return -(x - m) / V

    return moments, score


@pytest.mark.parametrize("sde", [VPSDE(), OUVE()], ids=["VP", "OUVE"])
def test_flow_error_is_proportional_to_the_tolerance_on_the_gaussian_problem(sde):
    g = torch.Generator().manual_seed(1)
    y = torch.randn(6, 4, generator=g, dtype=torch.float64)
    moments, score = gaussian_problem(sde, y)
    mT, VT = moments(sde.T)
    x_T = mT + math.sqrt(VT) * torch.randn(6, 4, generator=g, dtype=torch.float64)
    me, Ve = moments(sde.t_eps)
    exact = me + math.sqrt(Ve / VT) * (x_T - mT)
    tols, errs, nfes = [1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11], [], []
    for tol in tols:
        x, nfe = AdaptiveProbabilityFlow(sde, rtol=tol, atol=tol).sample(score, y=y, x_T=x_T, return_nfe=True)
        errs.append(float((x - exact).abs().max()))
        nfes.append(nfe)
    assert all(e < 20 * tol for e, tol in zip(errs, tols))
    assert 0.7 < _slope(tols, errs) < 1.3             # tolerance proportionality
    # work grows like tol^(-1/5), as it should for an order-5 pair (score_sde's RK45 is the same pair)
    assert -0.25 < _slope(tols, nfes) < -0.1


def test_nfe_counts_every_evaluation_and_matches_scipy_rk45_order_of_magnitude():
    calls = []

    def f(t, y):
        calls.append(t)
        return -y * math.cos(t)

    sol = DormandPrince(1e-6, 1e-6, norm="batch").solve(f, 0.0, 5.0, torch.ones(1, 3, dtype=torch.float64))
    assert sol.nfe == len(calls) == 6 * (sol.n_accepted + sol.n_rejected) + 2
    ref = solve_ivp(lambda t, y: -y * np.cos(t), (0, 5), np.ones(3), rtol=1e-6, atol=1e-6)
    assert float(sol.y[0, 0]) == pytest.approx(math.exp(-math.sin(5.0)), rel=1e-5)
    assert 0.5 * ref.nfev <= sol.nfe <= 1.5 * ref.nfev


def test_sample_norm_holds_every_sample_to_the_tolerance_where_the_batch_norm_dilutes_it():
    rates = torch.ones(400, 1, dtype=torch.float64)
    rates[0] = 30.0                      # one fast-decaying sample among 399 slow ones
    f = lambda t, y: -rates * y * (1 + t)  # noqa: E731
    exact = torch.exp(-rates * 1.5)      # y(1) for y(0) = 1
    err = {}
    for norm in ("sample", "batch"):
        sol = DormandPrince(1e-6, 1e-9, norm=norm).solve(f, 0.0, 1.0, torch.ones(400, 1, dtype=torch.float64))
        err[norm] = float(((sol.y - exact).abs() / (1e-9 + 1e-6 * exact))[0])
    assert err["sample"] < 10.0
    assert err["batch"] > 5 * err["sample"]


def test_denoise_returns_the_posterior_mean_at_t_eps():
    sde = VPSDE()
    moments, score = gaussian_problem(sde, None)
    x_T = torch.linspace(-2, 2, 8, dtype=torch.float64).view(8, 1)
    sampler = AdaptiveProbabilityFlow(sde, rtol=1e-9, atol=1e-9)
    x, nfe = sampler.sample(score, x_T=x_T, return_nfe=True)
    x0, nfe_d = sampler.sample(score, x_T=x_T, denoise=True, return_nfe=True)
    te = sde.t_eps
    B = sde.beta_min * te + (sde.beta_max - sde.beta_min) * te * te / 2
    mx, m, V = math.exp(-B / 2), *moments(te)
    # E[x0 | x_t] for x0 ~ N(MU, S^2), x_t = mx x0 + sqrt(1 - e^-B) z
    expected = MU + mx * S**2 / V * (x - m)
    assert torch.allclose(x0, expected, rtol=1e-12, atol=1e-12)
    assert nfe_d == nfe + 1


def test_float32_sampling_reaches_float32_accuracy():
    sde = OUVE()
    y = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    moments, score = gaussian_problem(sde, y)
    mT, VT = moments(sde.T)
    x_T = (mT + math.sqrt(VT) * torch.randn(5, 3, generator=torch.Generator().manual_seed(3))).float()
    me, Ve = moments(sde.t_eps)
    x = AdaptiveProbabilityFlow(sde, rtol=1e-5, atol=1e-5).sample(score, y=y.float(), x_T=x_T)
    assert x.dtype == torch.float32
    assert torch.allclose(x.double(), me + math.sqrt(Ve / VT) * (x_T.double() - mT), atol=2e-4)


def test_prior_draw_is_reproducible_for_a_seed():
    sde = VPSDE()
    _, score = gaussian_problem(sde, None)
    sampler = AdaptiveProbabilityFlow(sde, rtol=1e-3, atol=1e-3)
    a = sampler.sample(score, shape=(3, 2), seed=5)
    b = sampler.sample(score, shape=(3, 2), seed=5)
    c = sampler.sample(score, shape=(3, 2), seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_arguments_raise_errors_that_name_them():
    f = lambda t, y: -y  # noqa: E731
    y0 = torch.ones(2, 2)
    with pytest.raises(ValueError, match="rtol"):
        DormandPrince(rtol=-1.0)
    with pytest.raises(TypeError, match="atol"):
        DormandPrince(atol="1e-3")
    with pytest.raises(ValueError, match="norm"):
        DormandPrince(norm="max")
    with pytest.raises(ValueError, match="t0 and t1"):
        DormandPrince().solve(f, 1.0, 1.0, y0)
    with pytest.raises(TypeError, match="t0 must be a real number"):
        DormandPrince().solve(f, "0", 1.0, y0)
    with pytest.raises(TypeError, match="max_steps must be an int"):
        DormandPrince(max_steps=1.5)
    with pytest.raises(TypeError, match="y0"):
        DormandPrince().solve(f, 0.0, 1.0, torch.ones(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="t_eval"):
        DormandPrince().solve(f, 0.0, 1.0, y0, t_eval=[0.5, 0.2])
    with pytest.raises(ValueError, match="t_eval"):
        DormandPrince().solve(f, 0.0, 1.0, y0, t_eval=[2.0])
    with pytest.raises(SolverError, match="f returned"):
        DormandPrince().solve(lambda t, y: y[:1], 0.0, 1.0, y0)
    with pytest.raises(SolverError, match="max_steps"):
        DormandPrince(1e-12, 1e-12, max_steps=3).solve(lambda t, y: math.cos(50 * t) * y, 0.0, 1.0, y0)
    with pytest.raises(NonFiniteError, match="not finite"):
        DormandPrince().solve(lambda t, y: y / 0.0, 0.0, 1.0, y0)
    with pytest.raises(NonFiniteError, match="step from t="):
        DormandPrince().solve(lambda t, y: y * (math.nan if t > 0.5 else 1.0), 0.0, 1.0, y0)
    with pytest.raises(SolverError, match="score_fn returned"):
        AdaptiveProbabilityFlow(VPSDE()).sample(lambda x, t: x.double(), shape=(2, 2))
    with pytest.raises(ValueError, match="t_eps"):
        AdaptiveProbabilityFlow(VPSDE(), t_eps=2.0)
    with pytest.raises(TypeError, match="dtype"):
        AdaptiveProbabilityFlow(VPSDE()).sample(lambda x, t: -x, shape=(2, 2), dtype=torch.float16)
    with pytest.raises(TypeError, match="denoise must be True or False"):
        AdaptiveProbabilityFlow(VPSDE()).sample(lambda x, t: -x, shape=(2, 2), denoise=1)


class _IController(DormandPrince):
    """The same pair under scipy's I controller (``factor = safety E^(-1/5)``)."""

    BETA1, BETA2 = 0.2, 0.0


def test_with_scipys_controller_and_norm_the_solve_is_scipys_rk45():
    f = lambda t, y: -y * math.cos(t) + torch.sin(3 * y)  # noqa: E731
    y0 = torch.linspace(-1, 2, 6, dtype=torch.float64).view(2, 3)
    sol = _IController(1e-6, 1e-8, norm="batch").solve(f, 0.0, 4.0, y0)
    ref = solve_ivp(lambda t, y: -y * np.cos(t) + np.sin(3 * y), (0.0, 4.0), y0.numpy().ravel(),
                    method="RK45", rtol=1e-6, atol=1e-8)
    assert sol.nfe == ref.nfev
    assert sol.y.numpy().ravel() == pytest.approx(ref.y[:, -1], rel=1e-12, abs=1e-14)
