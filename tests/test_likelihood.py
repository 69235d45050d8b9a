"""Log-likelihood under the probability-flow ODE, against closed forms and score_sde's likelihood_fn.

For Gaussian data ``x0 ~ N(MU, S^2)`` per element and its exact score, the marginal at ``t`` is
``N(m(t), V(t))`` with ``V = mx^2 S^2 + v`` and the flow keeps ``(x - m) / sqrt(V)`` constant, so
the ODE started at ``x0`` at ``t_eps`` ends at ``x_T = m_T + sqrt(V_T / V_eps) (x0 - m_eps)`` and the
divergence integral is ``d/2 log(V_T / V_eps)``:

    log p = log N(x_T; prior_mean, v(T)) + d/2 log(V_T / V_eps).

The moments of VP, VE, sub-VP and OUVE are written out here (score_sde / DriftRec closed forms),
not taken from sdekit.
"""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from sdekit import OUVE, VESDE, VPSDE, SubVPSDE, bits_per_dim, log_likelihood
from sdekit.likelihood import prior_log_prob

MU, S = 0.3, 0.7


def moments_of(sde, y):
    """``t -> (mx, m(t), V(t), v(t))`` for Gaussian data, from the SDE's published closed form."""
    def vp_B(t):
        return sde.beta_min * t + (sde.beta_max - sde.beta_min) * t * t / 2

    def fn(t):
        if isinstance(sde, SubVPSDE):
            mx, v = math.exp(-vp_B(t) / 2), (-math.expm1(-vp_B(t))) ** 2
        elif isinstance(sde, VPSDE):
            mx, v = math.exp(-vp_B(t) / 2), -math.expm1(-vp_B(t))
        elif isinstance(sde, VESDE):
            mx, v = 1.0, (sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t) ** 2
        else:  # OUVE (DriftRec eq. 7)
            mx = math.exp(-sde.gamma * t)
            v = sde.sigma_min**2 * ((sde.sigma_max / sde.sigma_min) ** (2 * t) - math.exp(-2 * sde.gamma * t))
        m = mx * MU + ((1 - mx) * y if y is not None else 0.0)
        return mx, m, mx**2 * S**2 + v, v
    return fn


def exact_score(sde, y):
    moments = moments_of(sde, y)

    def score(x, t):
        assert t.shape == (x.shape[0],) and bool((t == t[0]).all())
        _, m, V, _ = moments(float(t[0]))
        return -(x - m) / V
    return score


def closed_form_log_p(sde, x0, y):
    moments = moments_of(sde, y)
    _, m_e, V_e, _ = moments(sde.t_eps)
    _, m_T, V_T, v_T = moments(sde.T)
    x_T = m_T + math.sqrt(V_T / V_e) * (x0 - m_e)
    prior_mean = y if y is not None else 0.0   # DriftRec: mx(T) + my(T) = 1
    d = x0[0].numel()
    prior = -0.5 * d * math.log(2 * math.pi * v_T) - (x_T - prior_mean).flatten(1).square().sum(1) / (2 * v_T)
    return prior + 0.5 * d * math.log(V_T / V_e)


SDES = [VPSDE(), VESDE(sigma_max=5.0), SubVPSDE(), OUVE()]
IDS = ["VP", "VE", "subVP", "OUVE"]


def data(sde, B=4, shape=(3,), seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = MU + S * torch.randn(B, *shape, generator=g, dtype=torch.float64)
    y = torch.randn(B, *shape, generator=g, dtype=torch.float64) if sde.has_y_drift else None
    return x0, y


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_exact_divergence_log_likelihood_matches_the_closed_form(sde):
    x0, y = data(sde, shape=(3,))
    logp = log_likelihood(sde, exact_score(sde, y), x0, y, divergence="exact", rtol=1e-10, atol=1e-10)
    assert logp.shape == (4,)
    assert torch.allclose(logp, closed_form_log_p(sde, x0, y), rtol=0, atol=1e-6)


def test_image_shaped_data_and_float32_work():
    sde = VPSDE()
    x0, _ = data(sde, B=2, shape=(1, 2, 2))
    logp = log_likelihood(sde, exact_score(sde, None), x0.float(), divergence="exact")
    assert logp.dtype == torch.float32
    assert torch.allclose(logp.double(), closed_form_log_p(sde, x0.float().double(), None), atol=2e-3)


@pytest.mark.parametrize("sde", [VPSDE(), OUVE()], ids=["VP", "OUVE"])
def test_rademacher_hutchinson_is_exact_when_the_jacobian_is_diagonal(sde):
    x0, y = data(sde)
    logp = log_likelihood(sde, exact_score(sde, y), x0, y, divergence="hutchinson", probe="rademacher",
                          seed=3, rtol=1e-10, atol=1e-10)
    assert torch.allclose(logp, closed_form_log_p(sde, x0, y), rtol=0, atol=1e-6)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_max=5.0)], ids=["VP", "VE"])
def test_gaussian_hutchinson_is_unbiased_within_monte_carlo_error(sde):
    # One data point repeated: each copy gets its own probe, so the spread is the estimator's.
    # For J = -I / V the score part of the divergence integral is ||eps||^2 / 2 int g^2 / V dt, and
    # int g^2 / V dt = log(V_T / V_e) - 2 log(mx_T / mx_e) (from V' = 2 a V + g^2); sd(||eps||^2) = sqrt(2 d).
    B, d = 4000, 3
    x0 = (MU + S * torch.randn(1, d, generator=torch.Generator().manual_seed(4), dtype=torch.float64)).expand(B, d)
    logp = log_likelihood(sde, exact_score(sde, None), x0.contiguous(), divergence="hutchinson",
                          probe="gaussian", seed=11, rtol=1e-8, atol=1e-8)
    exact = closed_form_log_p(sde, x0[:1], None)[0]
    moments = moments_of(sde, None)
    (mx_T, _, V_T, _), (mx_e, _, V_e, _) = moments(sde.T), moments(sde.t_eps)
    sd = 0.5 * abs(math.log(V_T / V_e) - 2 * math.log(mx_T / mx_e)) * math.sqrt(2 * d)
    assert float(logp.std()) == pytest.approx(sd, rel=0.08)
    assert abs(float(logp.mean()) - float(exact)) < 4.5 * sd / math.sqrt(B)


def test_hutchinson_is_reproducible_for_a_seed():
    sde = VPSDE()
    x0, _ = data(sde, B=3)

    def score(x, t):  # a non-diagonal Jacobian, so the probe matters
        return -x + 0.3 * torch.tanh(x.flip(-1))

    run = lambda seed, probe: log_likelihood(sde, score, x0, seed=seed, probe=probe, rtol=1e-6, atol=1e-6)  # noqa: E731
    assert torch.equal(run(1, "gaussian"), run(1, "gaussian"))
    assert not torch.equal(run(1, "gaussian"), run(2, "gaussian"))
    assert not torch.equal(run(1, "rademacher"), run(1, "gaussian"))


def test_prior_log_prob_is_the_normal_log_density():
    sde = OUVE()
    x, y = torch.randn(5, 2, 3, dtype=torch.float64), torch.randn(5, 2, 3, dtype=torch.float64)
    ref = torch.distributions.Normal(y, math.sqrt(moments_of(sde, y)(1.0)[3])).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(prior_log_prob(sde, x, y), ref, rtol=1e-13)


# ---------------------------------------------------------------- score_sde, transcribed
def score_sde_ve_bpd(sigma_min, sigma_max, score_fn, data, eps, rtol, atol, epsilon, centered):
    """score_sde's ``likelihood_fn`` (likelihood.py) with its ``VESDE`` (sde_lib.py), float64 for the test."""
    def sde(x, t):
        sigma = sigma_min * (sigma_max / sigma_min) ** t
        return torch.zeros_like(x), sigma * np.sqrt(2 * (np.log(sigma_max) - np.log(sigma_min)))

    def prior_logp(z):
        shape = z.shape
        N = np.prod(shape[1:])
        return -N / 2. * np.log(2 * np.pi * sigma_max ** 2) - torch.sum(z ** 2, dim=(1,)) / (2 * sigma_max ** 2)

    def drift_fn(x, t):
        drift, diffusion = sde(x, t)
        return drift - diffusion[:, None] ** 2 * score_fn(x, t) * 0.5

    def div_fn(x, t, eps_):
        with torch.enable_grad():
            x.requires_grad_(True)
            fn_eps = torch.sum(drift_fn(x, t) * eps_)
            grad_fn_eps = torch.autograd.grad(fn_eps, x)[0]
        x.requires_grad_(False)
        return torch.sum(grad_fn_eps * eps_, dim=tuple(range(1, len(x.shape))))

    shape = data.shape

    def ode_func(t, x):
        sample = torch.from_numpy(x[:-shape[0]].reshape(shape))
        vec_t = torch.ones(sample.shape[0], dtype=torch.float64) * t
        drift = drift_fn(sample, vec_t).detach().numpy().reshape(-1)
        logp_grad = div_fn(sample, vec_t, epsilon).detach().numpy().reshape(-1)
        return np.concatenate([drift, logp_grad], axis=0)

    init = np.concatenate([data.numpy().reshape(-1), np.zeros((shape[0],))], axis=0)
    solution = integrate.solve_ivp(ode_func, (eps, 1.0), init, rtol=rtol, atol=atol, method="RK45")
    zp = solution.y[:, -1]
    z = torch.from_numpy(zp[:-shape[0]].reshape(shape))
    delta_logp = torch.from_numpy(zp[-shape[0]:])
    bpd = -(prior_logp(z) + delta_logp) / np.log(2)
    bpd = bpd / np.prod(shape[1:])
    inverse_scaler_at_minus_1 = 0.0 if centered else -1.0     # (x + 1) / 2, or the identity
    return bpd + 7. - inverse_scaler_at_minus_1


@pytest.mark.parametrize("centered", [False, True])
def test_bits_per_dim_agrees_with_score_sde_likelihood_fn(centered):
    sde = VESDE(sigma_min=0.01, sigma_max=5.0)            # t_eps = 1e-5 as score_sde's likelihood
    x0, _ = data(sde, B=3, shape=(4,))

    def score(x, t):  # a non-linear score with a non-diagonal Jacobian
        sig2 = (sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t) ** 2
        return -(x - 0.2 * torch.tanh(x.roll(1, -1))) / (S**2 + sig2)[:, None]

    rademacher = torch.where(torch.arange(12).reshape(3, 4) % 3 == 0, 1.0, -1.0).double()
    ref = score_sde_ve_bpd(sde.sigma_min, sde.sigma_max, score, x0, sde.t_eps, 1e-9, 1e-9, rademacher, centered)
    logp = log_likelihood(sde, score, x0, rtol=1e-9, atol=1e-9, probe=rademacher)   # score_sde's probe
    assert torch.allclose(bits_per_dim(logp, 4, centered=centered), ref, rtol=0, atol=1e-6)


def test_uniform_density_on_the_unit_cube_is_8_bits_per_dim():
    assert torch.equal(bits_per_dim(torch.zeros(3), 12), torch.full((3,), 8.0))
    assert torch.equal(bits_per_dim(torch.full((2,), -12 * math.log(2.0)), 12, centered=True), torch.full((2,), 8.0))


def test_bad_arguments_raise_errors_that_name_them():
    sde = VPSDE()
    x0, _ = data(sde)
    score = exact_score(sde, None)
    with pytest.raises(ValueError, match="divergence"):
        log_likelihood(sde, score, x0, divergence="trace")
    with pytest.raises(ValueError, match="probe"):
        log_likelihood(sde, score, x0, probe="sphere")
    with pytest.raises(ValueError, match="probe"):
        log_likelihood(sde, score, x0, probe=torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="score_fn"):
        log_likelihood(sde, None, x0)
    with pytest.raises(TypeError, match="x0"):
        log_likelihood(sde, score, x0.long())
    with pytest.raises(ValueError, match="y"):
        log_likelihood(OUVE(), score, x0)
    with pytest.raises(ValueError, match="rtol"):
        log_likelihood(sde, score, x0, rtol=0.0)
    with pytest.raises(ValueError, match="score_fn must return"):
        log_likelihood(sde, lambda x, t: x[:, :1], x0, divergence="exact")
    with pytest.raises(ValueError, match="dims"):
        bits_per_dim(torch.zeros(2), 0)
    with pytest.raises(TypeError, match="dims must be an int"):
        bits_per_dim(torch.zeros(2), 2.5)
    with pytest.raises(TypeError, match="centered must be True or False"):
        bits_per_dim(torch.zeros(2), 2, centered=1)
