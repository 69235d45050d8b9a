"""``LinearSDE.from_marginals`` and the zoo entries built on it (issue 17): the SDE recovered from
``x_t = a_t x0 + b_t z`` against the zoo's hand-written SDEs and against ``a_t``, ``b_t`` themselves."""
import math

import pytest
import torch

from sdekit.sde import EDM, CosineVP, LinearSDE, RectifiedFlow, SubVPSDE, VESDE, VPSDE

B = "(beta_min*t + (beta_max - beta_min)*t**2/2)"  # int_0^t beta
BETAS = {"beta_min": 0.1, "beta_max": 20.0}
T_GRID = torch.tensor([1e-5, 1e-3, 0.01, 0.1, 0.4, 0.77, 1.0], dtype=torch.float64)


def assert_same_sde(got, want, t=T_GRID):
    for name in ("coefficients", "mean_coeffs"):
        for g, w in zip(getattr(got, name)(t), getattr(want, name)(t)):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-300)
    torch.testing.assert_close(got.marginal_var(t), want.marginal_var(t), rtol=1e-10, atol=0)
    assert got.v0 == pytest.approx(want.v0, rel=1e-15)


def test_from_marginals_reproduces_vp():
    sde = LinearSDE.from_marginals(f"exp(-{B}/2)", f"sqrt(1 - exp(-{B}))", BETAS)
    assert_same_sde(sde, VPSDE())


def test_from_marginals_reproduces_sub_vp():
    sde = LinearSDE.from_marginals(f"exp(-{B}/2)", f"1 - exp(-{B})", BETAS)
    assert_same_sde(sde, SubVPSDE())


def test_from_marginals_reproduces_ve():
    sde = LinearSDE.from_marginals("1", "sigma_min*(sigma_max/sigma_min)**t", {"sigma_min": 0.01, "sigma_max": 50.0},
                                   t_eps=1e-5)
    assert_same_sde(sde, VESDE())


def test_rectified_flow_marginal_is_one_minus_t_x0_plus_t_z():
    sde = RectifiedFlow()
    t = torch.tensor([0.0, 1e-6, 1e-3, 0.25, 0.5, 0.9, 0.999], dtype=torch.float64)
    mx, my = sde.mean_coeffs(t)
    torch.testing.assert_close(mx, 1 - t, rtol=1e-12, atol=0)
    torch.testing.assert_close(sde.marginal_std(t), t, rtol=1e-12, atol=0)
    assert not sde.has_y_drift
    a, _, g = sde.coefficients(t)
    torch.testing.assert_close(a, -1 / (1 - t), rtol=1e-14, atol=0)
    torch.testing.assert_close(g**2, 2 * t / (1 - t), rtol=1e-14, atol=0)


def test_edm_marginal_std_is_t():
    sde = EDM(0.002, 80.0)
    t = torch.tensor([0.002, 0.1, 1.0, 79.0, 80.0], dtype=torch.float64)
    torch.testing.assert_close(sde.marginal_std(t), t, rtol=1e-14, atol=0)
    assert sde.t_eps == 0.002 and sde.T == 80.0


def test_cosine_vp_matches_the_improved_ddpm_schedule():
    """Nichol & Dhariwal 2021, eq. 17: abar(t) = f(t)/f(0), f(t) = cos^2(pi/2 (t + s)/(1 + s))."""
    s = 0.008
    sde = CosineVP(s)
    t = torch.tensor([1e-4, 0.01, 0.3, 0.7, 0.99], dtype=torch.float64)
    abar = torch.cos(math.pi / 2 * (t + s) / (1 + s)) ** 2 / math.cos(math.pi / 2 * s / (1 + s)) ** 2
    torch.testing.assert_close(sde.mean_coeffs(t)[0], abar.sqrt(), rtol=1e-10, atol=0)
    torch.testing.assert_close(sde.marginal_var(t), 1 - abar, rtol=1e-10, atol=0)
    sde.self_check()


@pytest.mark.parametrize("mean, std, words", [
    ("2 - t", "t", "must be 1 at t = 0"),
    ("1", "1 - t/2", "need g\\(t\\)\\^2 = .* >= 0"),
])
def test_from_marginals_refuses_schedules_that_are_not_an_sde(mean, std, words):
    with pytest.raises(ValueError, match=words):
        LinearSDE.from_marginals(mean, std)


def test_flow_zoo_entries_refuse_t_at_the_singularity():
    with pytest.raises(ValueError, match="T < 1"):
        RectifiedFlow(T=1.0)
