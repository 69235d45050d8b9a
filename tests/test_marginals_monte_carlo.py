"""Closed-form marginals against Monte Carlo: simulate the SDE itself with many small
steps (a plain torch loop, independent of sdekit's solvers and of the derived moments)
and compare the sample mean and variance within 5 standard errors, over
hypothesis-drawn parameters.

The loop is Heun's method for additive noise (weak order 2): with 500 steps per unit
time and drift rates up to 8, its bias is ~(8/500)^2 ~ 3e-4 relative, against a
5-sigma band of 5 sqrt(2/20000) = 5% of the variance.  Initial values are of the size
of the marginal std, so the band on the mean is not dwarfed by the mean's own bias."""
import math

import torch
from hypothesis import given, strategies as st

from sdekit import OUVE, TSDVE, DriftVE, LinearSDE, SubVPSDE, VPSDE

PATHS = 20000
STEPS_PER_UNIT = 500


def simulate(sde, x0, y, t_end, seed):
    gen = torch.Generator().manual_seed(seed)
    n = max(1, math.ceil(t_end * STEPS_PER_UNIT))
    dt = t_end / n
    x = x0.clone()
    times = torch.arange(n + 1, dtype=torch.float64) * dt
    a, c, g = sde.coefficients(times.clamp_max(sde.T))

    def f(i, x):
        return a[i] * x + (c[i] * y if sde.has_y_drift else 0.0)

    for i in range(n):
        dw = math.sqrt(dt) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
        predictor = x + f(i, x) * dt + g[i] * dw
        x = x + 0.5 * (f(i, x) + f(i + 1, predictor)) * dt + 0.5 * (g[i] + g[i + 1]) * dw
    return x


def assert_within_5_standard_errors(sde, x0_value, y_value, t_end, seed):
    """x0 and y are given in units of the marginal std at t_end."""
    scale = float(sde.marginal_std(t_end))
    x0_value, y_value = x0_value * scale, y_value * scale
    x0 = torch.full((PATHS,), x0_value, dtype=torch.float64)
    y = torch.full((PATHS,), y_value, dtype=torch.float64) if sde.has_y_drift else None
    xt = simulate(sde, x0, y, t_end, seed)
    mean = float(sde.marginal_mean(x0[:1], None if y is None else y[:1], t_end))
    var = float(sde.marginal_var(t_end))
    se_mean = math.sqrt(var / PATHS)
    se_var = var * math.sqrt(2.0 / (PATHS - 1))
    assert abs(float(xt.mean()) - mean) <= 5 * se_mean, (float(xt.mean()), mean, se_mean)
    assert abs(float(xt.var()) - var) <= 5 * se_var, (float(xt.var()), var, se_var)


@given(gamma=st.floats(0.1, 4.0), smin=st.floats(0.01, 0.1), ratio=st.floats(2.0, 50.0),
       t_end=st.floats(0.05, 1.0), alpha=st.sampled_from([0, 1, 2]), seed=st.integers(0, 2**31))
def test_driftrec_marginals_match_simulation(gamma, smin, ratio, t_end, alpha, seed):
    sde = DriftVE(alpha=alpha, gamma=gamma, sigma_min=smin, sigma_max=smin * ratio)
    assert_within_5_standard_errors(sde, 1.0, -0.5, t_end, seed)


@given(beta_min=st.floats(0.05, 1.0), beta_span=st.floats(0.0, 15.0), t_end=st.floats(0.05, 1.0),
       sub=st.booleans(), seed=st.integers(0, 2**31))
def test_vp_family_marginals_match_simulation(beta_min, beta_span, t_end, sub, seed):
    sde = (SubVPSDE if sub else VPSDE)(beta_min, beta_min + beta_span)
    assert_within_5_standard_errors(sde, 1.5, 0.0, t_end, seed)


@given(k=st.floats(0.1, 3.0), s=st.floats(0.05, 2.0), v0=st.sampled_from([0.0, 0.3]),
       t_end=st.floats(0.1, 1.0), seed=st.integers(0, 2**31))
def test_user_sde_marginals_match_simulation(k, s, v0, t_end, seed):
    sde = LinearSDE("-k*(1 + t)*x + k*exp(-t)*y", "s*sqrt(1 + t)", {"k": k, "s": s}, v0=v0)
    gen = torch.Generator().manual_seed(seed)
    x0 = 0.8 + math.sqrt(v0) * torch.randn(PATHS, generator=gen, dtype=torch.float64)
    y = torch.full((PATHS,), 0.4, dtype=torch.float64)
    xt = simulate(sde, x0, y, t_end, seed + 1)
    mean = float(sde.marginal_mean(torch.tensor([0.8], dtype=torch.float64), y[:1], t_end))
    var = float(sde.marginal_var(t_end))
    assert abs(float(xt.mean()) - mean) <= 5 * math.sqrt(var / PATHS)
    assert abs(float(xt.var()) - var) <= 5 * var * math.sqrt(2.0 / (PATHS - 1))


def test_tsdve_default_terminal_marginal_matches_simulation():
    assert_within_5_standard_errors(TSDVE(), 0.3, -0.2, 1.0, seed=7)
    assert_within_5_standard_errors(OUVE(), 0.3, -0.2, 1.0, seed=8)
