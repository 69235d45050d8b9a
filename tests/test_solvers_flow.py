"""Euler and Heun steps of the velocity ODE (``sdekit.solvers.FlowODE``).

With the exact score (or velocity) of Gaussian data ``x0 ~ N(MU, S0^2)`` the ODE's flow map
is affine in ``x_T``, so two deterministic runs (from ``x_T = 0`` and ``1``) give the exact
output law ``N(K m_T + c, K^2 v_T)`` of a run started from the exact marginal at ``T``; its
distance to the exact marginal at ``t_eps`` is the method's global error, whose order is
measured by halving the step.  Heun's two-stage plan is also checked against a plain float64
transcription of the trapezoidal rule (with ``y``-drift, where the second stage is two launches).
"""
import math

import pytest
import torch

from sdekit import OUVE, VESDE, ProbabilityFlow
from sdekit.parameterisation import as_score_fn
from sdekit.solvers import FlowHeun, FlowODE, NonFiniteError
from sdekit.solvers.plan import Plan

from _problems import MU, S0, gaussian_score, gaussian_truth, shared_rectified_flow, shared_vpsde

F64 = torch.float64


def exact_rf_velocity(x, t):
    """``E[-x0 + z | x_t]`` for rectified flow (``a = 1 - t``, ``b = t``) and Gaussian data, by hand."""
    a, b = (1 - t)[:, None], t[:, None]
    V = a * a * S0**2 + b * b
    resid = x - a * MU
    return -(MU + a * S0**2 * resid / V) + b * resid / V


def output_law_error(sampler, score):
    """Relative variance error and mean error of the output law against the marginal at ``t_eps``."""
    sde = sampler.sde
    out = sampler.sample(score, x_T=torch.tensor([[0.0], [1.0]], dtype=F64), seed=0)
    c, K = float(out[0]), float(out[1] - out[0])
    m_T, v_T = gaussian_truth(sde, sde.T)
    m, v = gaussian_truth(sde, sampler.t_eps)
    return abs(K * K * v_T - v) / v, abs(K * m_T + c - m)


@pytest.mark.parametrize("name", ["RF", "VP", "VE"])
@pytest.mark.parametrize("method, order", [("euler", 1.0), ("heun", 2.0)])
def test_measured_convergence_order_is_one_for_euler_and_two_for_heun(name, method, order):
    if name == "RF":  # a velocity network's output, through the parameterisation wrapper
        sde = shared_rectified_flow()
        score = as_score_fn(exact_rf_velocity, sde, "velocity")
    else:
        sde = shared_vpsde() if name == "VP" else VESDE(sigma_max=5.0)
        score = gaussian_score(sde)
    steps = (40, 80, 160, 320)
    errors = [output_law_error(FlowODE(sde, n, method=method), score)[0] for n in steps]
    slopes = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    # measured (benchmarks/RESULTS.md): Euler 0.88-0.99, Heun 1.88-2.17 over these halvings
    assert all(abs(s - order) < 0.15 for s in slopes), slopes
    assert FlowODE(sde, 10, method=method).weak_order == order


def test_flow_euler_is_the_probability_flow_euler_step():
    sde = shared_vpsde()
    a, b = FlowODE(sde, 50), ProbabilityFlow(sde, 50)
    assert torch.equal(a.plan().table, b.plan().table)


def heun_transcription(sde, score, x, y, steps, t_eps):
    """The trapezoidal rule ``x <- x - h (v(x, t) + v(x - h v(x, t), s)) / 2``, written out."""
    ts = torch.linspace(sde.T, t_eps, steps + 1, dtype=F64)

    def v(x, t):
        f, c, g = (float(q) for q in sde.coefficients(t))
        return f * x + c * y - g * g / 2 * score(x, torch.full((x.shape[0],), float(t), dtype=F64))

    for t, s in zip(ts[:-1], ts[1:]):
        h = float(t - s)
        v1 = v(x, t)
        x = x - h * (v1 + v(x - h * v1, s)) / 2
    return x


@pytest.mark.parametrize("backend", ["torch", "triton", "cpu"])
def test_heun_plan_matches_the_trapezoidal_rule_written_out_with_and_without_y(backend):
    g = torch.Generator().manual_seed(0)
    for sde, has_y in ((shared_vpsde(), False), (OUVE(), True)):
        x_T = torch.randn(4, 3, generator=g, dtype=F64)
        y = torch.randn(4, 3, generator=g, dtype=F64) if has_y else None
        score = gaussian_score(sde, y)
        got = FlowODE(sde, 12, method="heun").sample(score, y=y, x_T=x_T, seed=0, backend=backend)
        want = heun_transcription(sde, score, x_T, y if has_y else 0.0, 12, sde.t_eps)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_heun_trajectory_and_float32_and_the_registered_names():
    sde = shared_vpsde()
    x, traj = FlowHeun(sde, 8).sample(gaussian_score(sde), shape=(5, 2), seed=3, return_trajectory=True)
    assert traj.shape == (9, 5, 2) and x.dtype == torch.float32 and torch.equal(traj[-1], x)
    ref = FlowODE(sde, 8, method="heun").sample(gaussian_score(sde), shape=(5, 2), seed=3, dtype=F64)
    torch.testing.assert_close(x.double(), ref, rtol=1e-5, atol=1e-5)


def test_a_non_finite_score_at_the_second_stage_is_named():
    sde = shared_vpsde()
    grid = FlowHeun(sde, 4).time_grid()

    def score(x, t):  # NaN only at the second stage's time of step 1
        return torch.where(t[:, None] == float(grid[2]), torch.nan, -x)

    with pytest.raises(NonFiniteError, match=r"step 1 of 4 \(second stage"):
        FlowHeun(sde, 4).sample(score, shape=(2, 3), seed=0, dtype=F64)


def test_flow_sampler_bad_arguments():
    sde = shared_vpsde()
    with pytest.raises(ValueError, match="method"):
        FlowODE(sde, 4, method="rk4")
    ts = torch.linspace(1, 0.5, 3, dtype=F64)
    with pytest.raises(ValueError, match="second_stage"):
        Plan(ts, torch.zeros(2, 4, dtype=F64), noise=False, second_stage=torch.zeros(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="noise-free"):
        Plan(ts, torch.zeros(2, 4, dtype=F64), noise=True, second_stage=torch.zeros(2, 4, dtype=F64))


def test_heun_on_complex_data_is_heun_on_the_real_and_imaginary_parts():
    sde = shared_vpsde()
    g = torch.Generator().manual_seed(0)
    re, im = torch.randn(3, 4, generator=g, dtype=F64), torch.randn(3, 4, generator=g, dtype=F64)
    score_re, score_im = gaussian_score(sde), gaussian_score(sde, mu=0.0)

    def score(x, t):  # affine in each part: the second stage must see x~ as complex, like the first
        return torch.complex(score_re(x.real, t), score_im(x.imag, t))

    out = FlowHeun(sde, 7).sample(score, x_T=torch.complex(re, im), seed=0)
    assert torch.equal(out.real, FlowHeun(sde, 7).sample(score_re, x_T=re, seed=0))
    assert torch.equal(out.imag, FlowHeun(sde, 7).sample(score_im, x_T=im, seed=0))
