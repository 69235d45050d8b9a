"""Statistical and convergence properties of the samplers against closed-form marginals.

Two kinds of check:
* Monte Carlo: the samplers' output against the closed-form distribution, within 5
  standard errors plus the scheme's own O(h) bias;
* exact moment recursions: for Gaussian data the exact score is affine in x, so every
  sampler's output is exactly Gaussian and its mean and variance follow from the
  coefficient table by a deterministic recursion (no sampling noise).  This measures the
  discretisation error itself: weak orders, and exponential integrator vs Euler-Maruyama.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from _problems import MU, S0, exact_x_T, gaussian_score, gaussian_truth, reverse_moments
from sdekit.sde import OUVE, TSDVE, VESDE, VPSDE, SubVPSDE
from sdekit.solvers import (EulerMaruyama, ExponentialIntegrator, LangevinCorrector, PredictorCorrector,
                            ProbabilityFlow, ReverseDiffusion)

F64 = torch.float64


def _make_sde(family, p1, p2, p3):
    if family == "OUVE":
        return OUVE(gamma=0.5 + 2 * p1, sigma_min=0.005 + 0.05 * p2, sigma_max=0.2 + 0.5 * p3)
    if family == "TSDVE":
        return TSDVE(gamma=0.5 + 2 * p1, sigma_min=0.005 + 0.05 * p2, sigma_max=0.2 + 0.5 * p3)
    if family == "VPSDE":
        return VPSDE(beta_min=0.05 + 0.2 * p1, beta_max=2 + 10 * p2)
    if family == "SubVPSDE":
        return SubVPSDE(beta_min=0.05 + 0.2 * p1, beta_max=2 + 10 * p2)
    return VESDE(sigma_min=0.01 + 0.05 * p1, sigma_max=1 + 10 * p2)


def forward_moments(solver, t0, t1, x0, y):
    """Exact mean and variance of the forward EM chain (a linear Gaussian recursion)."""
    ts = torch.linspace(t0, t1, solver.steps + 1, dtype=F64)
    A, C, _, N = solver.forward_coefficients(ts[:-1], ts[1:])
    m, v = torch.tensor(x0, dtype=F64), torch.tensor(0.0, dtype=F64)
    for n in range(solver.steps):
        m = A[n] * m + C[n] * y
        v = A[n] ** 2 * v + N[n] ** 2
    return float(m), float(v)


@settings(max_examples=12, deadline=None)
@given(family=st.sampled_from(["OUVE", "TSDVE", "VPSDE", "SubVPSDE", "VESDE"]),
       p=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
       t1=st.floats(0.2, 1.0), x0=st.floats(-2, 2), y=st.floats(-2, 2), seed=st.integers(0, 2**40))
def test_forward_simulate_matches_closed_form_marginal_within_5_standard_errors(family, p, t1, x0, y, seed):
    sde = _make_sde(family, *p)
    solver = EulerMaruyama(sde, steps=100)
    shape = (4, 1024)
    yt = torch.full(shape, y, dtype=F64) if sde.has_y_drift else None
    x = solver.simulate(torch.full(shape, x0, dtype=F64), yt, t1=t1, seed=seed, backend="torch")
    phi, psi, var = (float(v) for v in sde.transition(torch.tensor(0.0, dtype=F64), torch.tensor(t1, dtype=F64)))
    mean = phi * x0 + (psi * y if sde.has_y_drift else 0.0)
    m_em, v_em = forward_moments(solver, 0.0, t1, x0, y if sde.has_y_drift else 0.0)
    n = x.numel()
    se_mean, se_var = math.sqrt(var / n), var * math.sqrt(2 / (n - 1))
    assert abs(float(x.mean()) - mean) <= 5 * se_mean + abs(m_em - mean)
    assert abs(float(x.var()) - var) <= 5 * se_var + abs(v_em - var)
    # The O(h) bias the tolerance allows for is small (EM's weak error at 100 steps).
    assert abs(m_em - mean) <= 0.02 * (abs(mean) + math.sqrt(var)) and abs(v_em - var) <= 0.05 * var


def _slope(steps, errors):
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


@pytest.mark.parametrize("sde", [OUVE(), VPSDE(), VESDE(sigma_max=5.0)], ids=["OUVE", "VPSDE", "VESDE"])
def test_euler_maruyama_weak_order_is_one(sde):
    """Exact moments of the forward EM chain: mean and variance errors shrink like h^1."""
    x0, y = 0.7, 1.3
    steps = [40, 80, 160, 320]
    phi, psi, var = (float(v) for v in sde.transition(torch.tensor(0.0, dtype=F64), torch.tensor(sde.T, dtype=F64)))
    mean = phi * x0 + (psi * y if sde.has_y_drift else 0.0)
    errs = []
    for n in steps:
        m, v = forward_moments(EulerMaruyama(sde, n), 0.0, sde.T, x0, y if sde.has_y_drift else 0.0)
        errs.append(abs(m - mean) + abs(v - var))
    order = _slope(steps, errs)
    assert abs(order - EulerMaruyama.weak_order) < 0.1, order


def test_euler_maruyama_strong_order_is_one_for_additive_noise():
    """E|x_h(T) - x_ref(T)| on shared Brownian paths: slope 1 (additive noise), not 1/2.

    Reference: the same scheme on the finest grid (2^11 steps); 4000 paths.  Tolerance 0.1
    on the fitted slope (the Monte Carlo error of each level is about 2%).
    """
    sde = OUVE()
    em = EulerMaruyama(sde, steps=1)
    M, fine = 4000, 2**11
    g = torch.Generator().manual_seed(0)
    dW = torch.randn(M, fine, generator=g, dtype=F64) * math.sqrt(sde.T / fine)
    y, x0 = 1.0, 0.0

    def solve(n):
        ts = torch.linspace(0.0, sde.T, n + 1, dtype=F64)
        A, C, _, N = em.forward_coefficients(ts[:-1], ts[1:])
        h = sde.T / n
        inc = dW.reshape(M, n, fine // n).sum(-1) / math.sqrt(h)  # the coarse Brownian increments, as N(0,1)
        x = torch.full((M,), x0, dtype=F64)
        for k in range(n):
            x = A[k] * x + C[k] * y + N[k] * inc[:, k]
        return x

    ref = solve(fine)
    steps = [16, 32, 64, 128]
    errs = [float((solve(n) - ref).abs().mean()) for n in steps]
    order = _slope(steps, errs)
    assert abs(order - EulerMaruyama.strong_order) < 0.1, (order, errs)


# ---------------------------------------------------------------- reverse sampling, Gaussian data
# (MU, S0, gaussian_score, gaussian_truth, exact_x_T, reverse_moments: tests/_problems.py)
SAMPLERS = {
    "euler_maruyama": lambda sde, n: EulerMaruyama(sde, n),
    "reverse_diffusion": lambda sde, n: ReverseDiffusion(sde, n),
    "exponential": lambda sde, n: ExponentialIntegrator(sde, n),
    "probability_flow": lambda sde, n: ProbabilityFlow(sde, n),
    "probability_flow_exponential": lambda sde, n: ProbabilityFlow(sde, n, method="exponential"),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("sde_name", ["VPSDE", "OUVE"])
def test_reverse_sampling_of_gaussian_data_reproduces_the_marginal(name, sde_name):
    sde = VPSDE() if sde_name == "VPSDE" else OUVE()
    y_val = 0.8
    shape = (4, 2048)
    y = torch.full(shape, y_val, dtype=F64) if sde.has_y_drift else None
    sampler = SAMPLERS[name](sde, 100)
    x_T = exact_x_T(sde, shape, y_val)
    x = sampler.sample(gaussian_score(sde, y), y=y, x_T=x_T, seed=11, backend="torch", denoise=False)
    mean, var = gaussian_truth(sde, sampler.t_eps, y_val)
    m_s, v_s = reverse_moments(sampler, y_val)
    n = x.numel()
    assert abs(float(x.mean()) - mean) <= 5 * math.sqrt(var / n) + abs(m_s - mean)
    assert abs(float(x.var()) - var) <= 5 * var * math.sqrt(2 / (n - 1)) + abs(v_s - var)
    # and the scheme's own bias at 100 steps is a few percent at most
    assert abs(m_s - mean) <= 0.05 * math.sqrt(var) and abs(v_s - var) <= 0.1 * var


def test_predictor_corrector_reproduces_gaussian_data():
    """PC (reverse diffusion + Langevin, snr 0.16) with the exact score: 5 SE plus the predictor's bias."""
    sde = VPSDE()
    shape = (4, 2048)
    pc = PredictorCorrector(sde, steps=100, snr=0.16)
    x = pc.sample(gaussian_score(sde), x_T=exact_x_T(sde, shape), seed=5, backend="torch", denoise=True)
    mean, var = gaussian_truth(sde, pc.t_eps)
    m_s, v_s = reverse_moments(pc.predictor, denoise=True)
    n = x.numel()
    assert abs(float(x.mean()) - mean) <= 5 * math.sqrt(var / n) + abs(m_s - mean)
    assert abs(float(x.var()) - var) <= 5 * var * math.sqrt(2 / (n - 1)) + abs(v_s - var)


@pytest.mark.parametrize("sde", [VPSDE(), OUVE()], ids=["VPSDE", "OUVE"])
def test_reverse_euler_maruyama_weak_order_is_one(sde):
    """W2 error of the exact output moments, Gaussian data, 50..400 steps: slope 1 +- 0.15.

    (For VESDE the O(h) term happens to cancel for Gaussian data and the slope is about 2.)
    """
    y = 0.8
    mean, var = gaussian_truth(sde, sde.t_eps, y)
    steps = [50, 100, 200, 400]
    errs = []
    for n in steps:
        m, v = reverse_moments(EulerMaruyama(sde, n), y)
        errs.append(math.hypot(m - mean, math.sqrt(v) - math.sqrt(var)))
    assert abs(_slope(steps, errs) - EulerMaruyama.weak_order) < 0.15, errs


def _w2_to_truth(sampler, y):
    mean, var = gaussian_truth(sampler.sde, sampler.t_eps, y)
    m, v = reverse_moments(sampler, y)
    return math.hypot(m - mean, math.sqrt(max(v, 0.0)) - math.sqrt(var))


@pytest.mark.parametrize("sde,steps", [(VESDE(), 10), (VESDE(), 20), (VESDE(), 50), (OUVE(), 10), (OUVE(), 20),
                                       (OUVE(), 50), (TSDVE(), 10), (TSDVE(), 20), (TSDVE(), 50), (VPSDE(), 10)],
                         ids=lambda v: type(v).__name__ if not isinstance(v, int) else str(v))
def test_exponential_integrator_beats_euler_maruyama_at_equal_steps(sde, steps):
    """W2 distance of the (exactly Gaussian) outputs to the true marginal at t_eps, equal step counts.

    Holds for VE and the DriftRec family at every count tried from 10 to 400; for VP on the
    uniform time grid only at <= 10 steps (at 20 and more EM is closer: see the next test).
    """
    y = 0.8
    ei, em = _w2_to_truth(ExponentialIntegrator(sde, steps), y), _w2_to_truth(EulerMaruyama(sde, steps), y)
    assert ei < em, (ei, em)
    m, _ = reverse_moments(ExponentialIntegrator(sde, steps), y)
    if not sde.has_y_drift:  # the mean of Gaussian data is exact: the linear part is solved exactly
        assert abs(m - gaussian_truth(sde, sde.t_eps, y)[0]) < 1e-6


def test_exponential_integrator_on_vp_loses_to_euler_maruyama_beyond_a_few_steps():
    """The documented limit: on VP's uniform t grid the last steps are huge in log-SNR."""
    sde = VPSDE()
    assert _w2_to_truth(ExponentialIntegrator(sde, 50), 0.0) > _w2_to_truth(EulerMaruyama(sde, 50), 0.0)


# ---------------------------------------------------------------- Gaussian-mixture data
W, MUS, SDS = np.array([0.3, 0.7]), np.array([-1.0, 1.5]), np.array([0.2, 0.4])


def mixture_score(sde):
    w, mus, sds = (torch.tensor(a, dtype=F64) for a in (W, MUS, SDS))

    def score(x, t):
        mx = sde.mean_coeffs(t)[0].to(x.dtype).view(-1, 1, 1)
        v = sde.marginal_var(t).to(x.dtype).view(-1, 1, 1)
        var_k = mx**2 * sds**2 + v                      # (B, 1, K)
        d = x.unsqueeze(-1) - mx * mus                   # (B, N, K)
        logp = torch.log(w) - 0.5 * torch.log(var_k) - 0.5 * d**2 / var_k
        r = torch.softmax(logp, dim=-1)
        return (r * (-d / var_k)).sum(-1)
    return score


def mixture_cdf(sde, t):
    mx = float(sde.mean_coeffs(t)[0])
    sd = np.sqrt(mx**2 * SDS**2 + float(sde.marginal_var(t)))
    return lambda x: (W * stats.norm.cdf((np.asarray(x)[..., None] - mx * MUS) / sd)).sum(-1)


@pytest.mark.parametrize("name", ["exponential", "predictor_corrector"])
def test_reverse_sampling_of_gaussian_mixture_reproduces_the_data_distribution(name):
    """KS test against the exact mixture marginal at t_eps (4096 samples, p > 1e-3), and the mode weights."""
    sde = VPSDE()
    sampler = ExponentialIntegrator(sde, 200) if name == "exponential" else PredictorCorrector(sde, 200)
    x = sampler.sample(mixture_score(sde), shape=(2, 2048), seed=3, backend="torch", dtype=F64,
                       denoise=name == "predictor_corrector")
    z = x.flatten().numpy()
    assert stats.kstest(z, mixture_cdf(sde, sampler.t_eps)).pvalue > 1e-3
    frac = (z > 0.25).mean()  # the modes at -1 and 1.5 are well separated at 0.25
    assert abs(frac - W[1]) < 5 * math.sqrt(W[0] * W[1] / z.size)


# ---------------------------------------------------------------- one step against score_sde's formulas
def _score_ouve(y):
    return lambda x, t: -(x - y) / (0.05 + t.view(-1, 1, 1))


@pytest.mark.parametrize("probability_flow", [False, True])
def test_one_reverse_step_equals_score_sde_euler_maruyama_predictor(probability_flow):
    """The fused step vs score_sde's EulerMaruyamaPredictor written on ``sde.reverse(score_fn)``."""
    from sdekit.kernels.rng import philox_normal_like
    sde = OUVE()
    g = torch.Generator().manual_seed(1)
    x_T, y = torch.randn(3, 4, 5, generator=g, dtype=F64), torch.randn(3, 4, 5, generator=g, dtype=F64)
    score = _score_ouve(y)
    solver = ProbabilityFlow(sde, 1, t_eps=0.6) if probability_flow else EulerMaruyama(sde, 1, t_eps=0.6)
    got = solver.sample(score, y=y, x_T=x_T, seed=13, backend="torch", denoise=False)
    dt = -(sde.T - 0.6)
    t = torch.full((3,), sde.T, dtype=F64)
    drift, diffusion = sde.reverse(score, probability_flow=probability_flow).sde(x_T, y, t)
    want = x_T + drift * dt
    if not probability_flow:
        want = want + diffusion.view(-1, 1, 1) * math.sqrt(-dt) * philox_normal_like(x_T, 13, 0)
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-13)


def test_one_langevin_step_equals_score_sde_langevin_corrector():
    """score_sde's LangevinCorrector update read per sample (``norm="sample"``), written out with torch.norm."""
    from sdekit.kernels.rng import philox_normal_like
    sde = VPSDE()
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
    score = -x / 1.3
    corr = LangevinCorrector(sde, snr=0.16, norm="sample")
    alpha = torch.tensor(0.97, dtype=F64)
    got = corr.step(x, score, alpha, seed=5, step=9, backend="torch")
    z = philox_normal_like(x, 5, 9)
    grad_norm = torch.norm(score.reshape(3, -1), dim=-1)
    noise_norm = torch.norm(z.reshape(3, -1), dim=-1)
    eps = (0.16 * noise_norm / grad_norm) ** 2 * 2 * alpha
    want = x + eps.view(-1, 1, 1) * score + torch.sqrt(eps * 2).view(-1, 1, 1) * z
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-13)


def _langevin_by_hand(x, grad, z, snr, alpha):
    """score_sde's and sgmse's LangevinCorrector.update_fn, one step, on given normals ``z``:
    batch means of the per-sample norms, ``step_size = (snr ||z|| / ||grad||)^2 2 alpha``."""
    grad_norm = torch.norm(grad.reshape(grad.shape[0], -1), dim=-1).mean()
    noise_norm = torch.norm(z.reshape(z.shape[0], -1), dim=-1).mean()
    step_size = (snr * noise_norm / grad_norm) ** 2 * 2 * alpha
    x_mean = x + step_size * grad
    return x_mean + torch.sqrt(step_size * 2) * z


@pytest.mark.parametrize("alpha", ["transition", 1.0])
def test_default_langevin_step_equals_score_sde_and_sgmse_batch_mean_update(alpha):
    """The default ``norm="batch_mean"`` is the peers' code; ``alpha=1.0`` is sgmse's (its
    corrector has no alpha), ``"transition"`` score_sde's ``alphas_i`` for VP."""
    from sdekit.kernels.rng import philox_normal_like
    sde = VPSDE()
    x = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(6), dtype=F64)
    grad = -x / torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=F64).view(-1, 1, 1)
    corr = LangevinCorrector(sde, snr=0.16, alpha=alpha)
    t, s = torch.tensor([0.5], dtype=F64), torch.tensor([0.49], dtype=F64)
    a = corr.constants(t, s)[0]
    got = corr.step(x, grad, a, seed=3, step=4, backend="torch")
    want_alpha = 1.0 if alpha == 1.0 else math.exp(-(0.1 * 0.01 + 19.9 * (0.5**2 - 0.49**2) / 2))  # 1 - beta_i
    assert float(a) == pytest.approx(float(want_alpha), rel=1e-13)
    want = _langevin_by_hand(x, grad, philox_normal_like(x, 3, 4), 0.16, want_alpha)
    assert torch.allclose(got, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("n", [10_000, pytest.param(200_000, marks=pytest.mark.slow)])  # the n: 150 s here
def test_predictor_corrector_on_a_batch_of_scalars_matches_the_exact_variance(n):
    """Issue 14's regression: OUVE(1, 0.01, 0.3), 200 steps, snr 0.1, 200000 scalar samples of
    Gaussian data N(MU, 0.2^2) with the exact score.  With per-sample norms the chain diverged
    (variance 5.5e5); with the default batch means the variance at t_eps is the exact one within
    5 Monte Carlo standard errors plus the predictor's own bias (exact recursion, no corrector)."""
    sde, s0, y_val = OUVE(1.0, 0.01, 0.3), 0.2, 0.8
    pc = PredictorCorrector(sde, steps=200, snr=0.1)
    y = torch.full((n,), y_val, dtype=F64)
    x_T = exact_x_T(sde, (n,), y_val, seed=1, s0=s0)
    exact = gaussian_score(sde, y_val, s0=s0)
    x = pc.sample(lambda x, t: exact(x, t[:1]), y=y, x_T=x_T, seed=4, backend="torch")  # one t per step
    mean, var = gaussian_truth(sde, pc.t_eps, y_val, s0=s0)
    assert var == pytest.approx(0.039, abs=5e-4)  # the exact value
    _, v_pred = reverse_moments(pc.predictor, y_val, denoise=True, s0=s0)
    assert abs(float(x.var()) - var) <= 5 * var * math.sqrt(2 / (n - 1)) + abs(v_pred - var)
    assert abs(float(x.mean()) - mean) <= 5 * math.sqrt(var / n) + 1e-3


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_exponential_integrator_on_vp_at_few_steps_warns_and_is_far_off(steps):
    """The documented failure (benchmarks/RESULTS.md): VP's uniform grid at 1-4 steps puts a step of
    more than 4 in log(mx/std); the output variance of Gaussian data is then more than 100x the
    truth and more than 10x Euler-Maruyama's.  Construction warns."""
    sde = VPSDE()
    with pytest.warns(RuntimeWarning, match="frozen-noise error"):
        ei = ExponentialIntegrator(sde, steps)
    _, v_ei = reverse_moments(ei)
    _, v_em = reverse_moments(EulerMaruyama(sde, steps))
    _, var = gaussian_truth(sde, ei.t_eps)
    assert v_ei > 100 * var and v_ei > 10 * v_em, (v_ei, v_em, var)


def test_exponential_integrator_does_not_warn_where_it_was_measured_fine():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for sde, steps in ((VPSDE(), 8), (VPSDE(), 100), (OUVE(), 2), (VESDE(), 10), (TSDVE(), 5)):
            ExponentialIntegrator(sde, steps)
