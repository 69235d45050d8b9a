"""Derived marginals against an independent reference: the moment ODEs integrated by
scipy's DOP853 at rtol 1e-13, with coefficient functions written out here by hand."""
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch
from hypothesis import given, strategies as st

from sdekit import OUVE, TSDVE, DriftVE, LinearSDE, SubVPSDE, VESDE, VPSDE

# t = 0 is checked separately (v(0) = v0 exactly); the grid reaches down to where
# closed forms would cancel catastrophically without the Taylor branch.
T_GRID = np.concatenate([[1e-8, 1e-6, 1e-4, 1e-3], np.linspace(0.005, 1.0, 40)])
REL = 1e-10


def moments_by_ode(a, c, g, v0, t_grid):
    """Integrate mx' = a mx, my' = a my + c, v' = 2 a v + g^2 from (1, 0, v0)."""

    def rhs(t, u):
        mx, my, v = u
        at = a(t)
        return [at * mx, at * my + c(t), 2 * at * v + g(t) ** 2]

    sol = scipy.integrate.solve_ivp(rhs, (0.0, t_grid[-1]), [1.0, 0.0, v0], method="DOP853",
                                    t_eval=t_grid, rtol=1e-13, atol=1e-30)
    assert sol.success
    return sol.y


def assert_matches_ode(sde, a, c, g, t_grid=T_GRID):
    ref_mx, ref_my, ref_v = moments_by_ode(a, c, g, sde.v0, t_grid)
    t = torch.tensor(t_grid, dtype=torch.float64)
    mx, my = sde.mean_coeffs(t)
    v = sde.marginal_var(t)
    for name, got, ref in (("mx", mx, ref_mx), ("my", my, ref_my), ("v", v, ref_v)):
        got = got.numpy()
        scale = np.maximum(np.abs(ref), 1e-300)
        err = np.abs(got - ref) / scale
        if name == "my" and not sde.has_y_drift:
            assert np.all(got == 0.0)
            continue
        assert err.max() <= REL, f"{name}: max relative error {err.max():.2e} at t={t_grid[err.argmax()]}"
    mx0, my0 = sde.mean_coeffs(0.0)
    assert float(mx0) == 1.0 and float(my0) == 0.0 and float(sde.marginal_var(0.0)) == sde.v0


def driftrec_coefficients(alpha, gamma, nu, smin=0.01, smax=0.3):
    return (lambda t: -gamma * t**alpha, lambda t: gamma * t**alpha,
            lambda t: nu * smin * (smax / smin) ** t)


@pytest.mark.parametrize("gamma", [1.0, 0.1, 25.0])
def test_ouve_marginals_match_ode(gamma):
    sde = OUVE(gamma=gamma)
    assert sde.nu == pytest.approx(math.sqrt(2 * (gamma + math.log(30.0))), rel=1e-15)
    assert_matches_ode(sde, *driftrec_coefficients(0, gamma, sde.nu))


@pytest.mark.parametrize("gamma", [2.0, 400.0])
def test_tsdve_marginals_match_ode(gamma):
    sde = TSDVE(gamma=gamma)
    assert all(p == "closed form" for p in sde.paths.values())
    assert_matches_ode(sde, *driftrec_coefficients(1, gamma, sde.nu))


def test_driftve_alpha2_uses_numerical_path_and_matches_ode():
    sde = DriftVE(alpha=2, gamma=2.0)
    assert sde.paths["mx"] == sde.paths["my"] == "closed form"
    assert sde.paths["v"].startswith("numerical")
    bound = float(sde.paths["v"].rsplit("<= ", 1)[1].rstrip(")"))
    assert bound < REL
    assert_matches_ode(sde, *driftrec_coefficients(2, 2.0, sde.nu))


def test_vp_marginals_match_ode():
    b0, b1 = 0.1, 20.0
    beta = lambda t: b0 + t * (b1 - b0)  # noqa: E731
    assert_matches_ode(VPSDE(b0, b1), lambda t: -beta(t) / 2, lambda t: 0.0, lambda t: math.sqrt(beta(t)))


def test_subvp_marginals_match_ode():
    b0, b1 = 0.1, 20.0
    beta = lambda t: b0 + t * (b1 - b0)  # noqa: E731
    g = lambda t: math.sqrt(beta(t) * -math.expm1(-2 * b0 * t - (b1 - b0) * t**2))  # noqa: E731
    assert_matches_ode(SubVPSDE(b0, b1), lambda t: -beta(t) / 2, lambda t: 0.0, g)


def test_ve_marginals_match_ode():
    smin, smax = 0.01, 50.0
    g = lambda t: smin * (smax / smin) ** t * math.sqrt(2 * math.log(smax / smin))  # noqa: E731
    sde = VESDE(smin, smax)
    assert sde.v0 == smin**2
    assert_matches_ode(sde, lambda t: 0.0, lambda t: 0.0, g)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(sde.marginal_std(t), smin * (smax / smin) ** t, rtol=1e-14, atol=0)


# ----------------------------------------------------------------------------- paper facts
def test_ouve_terminal_variance_falls_short_of_sigma_max_squared():
    """DriftRec: v(1) - sigma_max^2 = -sigma_min^2 exp(-2 gamma) (about -1.35e-5)."""
    for gamma in (1.0, 3.0):
        sde = OUVE(gamma=gamma)
        gap = float(sde.marginal_var(1.0)) - 0.3**2
        assert gap == pytest.approx(-(0.01**2) * math.exp(-2 * gamma), rel=1e-9, abs=0)


@pytest.mark.parametrize("gamma", [2.0, 0.5, 400.0])
def test_tsdve_terminal_std_is_sigma_max(gamma):
    assert float(TSDVE(gamma=gamma).marginal_std(1.0)) == pytest.approx(0.3, rel=1e-15)


def test_ouve_variance_matches_paper_eq8():
    sde, t = OUVE(gamma=1.5), np.linspace(0.01, 1, 50)
    paper = 0.01**2 * ((30.0) ** (2 * t) - np.exp(-2 * 1.5 * t))
    np.testing.assert_allclose(sde.marginal_var(torch.tensor(t)).numpy(), paper, rtol=1e-12)


def test_tsdve_variance_matches_paper_eq10_with_scipy_dawson():
    gamma, smin, smax = 2.0, 0.01, 0.3
    sde, t, k = TSDVE(gamma=gamma), np.linspace(0.01, 1, 50), math.log(smax / smin)
    D = scipy.special.dawsn
    unnorm = (smin**2 / math.sqrt(gamma) * np.exp(-gamma * t**2)
              * (np.exp(gamma * t**2 + 2 * t * k) * D((gamma * t + k) / math.sqrt(gamma)) - D(k / math.sqrt(gamma))))
    nu2 = smax**2 / unnorm[-1]
    np.testing.assert_allclose(sde.marginal_var(torch.tensor(t)).numpy(), nu2 * unnorm, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0, 1, 2, pytest.param(0.5, marks=pytest.mark.slow)])
def test_driftrec_means_match_paper(alpha):
    sde, t = DriftVE(alpha=alpha, gamma=1.7), torch.linspace(0, 1, 21, dtype=torch.float64)
    mx, my = sde.mean_coeffs(t)
    expected = torch.exp(-1.7 * t ** (alpha + 1) / (alpha + 1))
    torch.testing.assert_close(mx, expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(my, 1 - expected, rtol=1e-12, atol=1e-300)


# ----------------------------------------------------------------------------- user SDEs
# template -> (its parameters, (a(t), c(t)) or g(t) written by hand)
DRIFTS = {
    "-k*x": ("k", lambda p: (lambda t: -p["k"], lambda t: 0.0)),
    "-k*(1 + t)*x": ("k", lambda p: (lambda t: -p["k"] * (1 + t), lambda t: 0.0)),
    "k*t*(y - x)": ("k", lambda p: (lambda t: -p["k"] * t, lambda t: p["k"] * t)),
    "-k*x + m*exp(-t)*y": ("km", lambda p: (lambda t: -p["k"], lambda t: p["m"] * math.exp(-t))),
}
DIFFUSIONS = {
    "s": ("s", lambda p: (lambda t: p["s"])),
    "s*exp(r*t)": ("sr", lambda p: (lambda t: p["s"] * math.exp(p["r"] * t))),
    "s*sqrt(1 + t)": ("s", lambda p: (lambda t: p["s"] * math.sqrt(1 + t))),
    "s*(1 + r*t)": ("sr", lambda p: (lambda t: p["s"] * (1 + p["r"] * t))),
}


@given(
    drift=st.sampled_from(sorted(DRIFTS)),
    diffusion=st.sampled_from(sorted(DIFFUSIONS)),
    k=st.floats(0.05, 8.0), m=st.floats(0.1, 3.0), s=st.floats(0.01, 3.0), r=st.floats(0.1, 4.0),
    v0=st.sampled_from([0.0, 0.25]),
)
def test_user_sde_marginals_match_ode(drift, diffusion, k, m, s, r, v0):
    values = {"k": k, "m": m, "s": s, "r": r}
    (drift_params, drift_ref), (diffusion_params, g_ref) = DRIFTS[drift], DIFFUSIONS[diffusion]
    sde = LinearSDE(drift, diffusion, {n: values[n] for n in drift_params + diffusion_params}, v0=v0)
    assert_matches_ode(sde, *drift_ref(values), g_ref(values))


def test_float32_marginals_are_float64_values_rounded():
    sde = TSDVE()
    t64 = torch.linspace(0, 1, 101, dtype=torch.float64)
    t32 = t64.float()
    assert sde.marginal_std(t32).dtype == torch.float32
    torch.testing.assert_close(sde.marginal_std(t32), sde.marginal_std(t32.double()).float(), rtol=0, atol=0)
