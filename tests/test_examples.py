"""Smoke tests of the example programs at tiny size: they run, and their numbers are right.

``examples/gaussian_mixture.py`` compares samplers with an exact posterior, so its output
can be checked against stated bounds, not just for having run.
"""
import math
import os

import pytest
import torch

from _examples import assert_help_lists, load_example

pytestmark = pytest.mark.examples


@pytest.fixture(scope="module")
def gm():
    return load_example("gaussian_mixture")


@pytest.fixture(scope="module")
def mixture():
    return load_example("_mixture")


def test_mixture_score_is_the_gradient_of_the_marginal_log_density(mixture):
    prior = mixture.patch_mixture(4)
    g = torch.Generator().manual_seed(0)
    B, d = 6, 16
    x = torch.randn(B, d, generator=g, dtype=torch.float64)
    mx = torch.rand(B, generator=g, dtype=torch.float64)
    var = 0.01 + 0.3 * torch.rand(B, generator=g, dtype=torch.float64)
    shift = torch.randn(B, d, generator=g, dtype=torch.float64)

    def log_p(x):
        eye = torch.eye(d, dtype=torch.float64)
        comps = [prior.log_w[k] + torch.distributions.MultivariateNormal(
            mx[:, None] * prior.means[k] + shift, mx[:, None, None] ** 2 * prior.covs[k] + var[:, None, None] * eye
        ).log_prob(x) for k in range(prior.K)]
        return torch.logsumexp(torch.stack(comps), 0).sum()

    xr = x.clone().requires_grad_()
    want, = torch.autograd.grad(log_p(xr), xr)
    got = prior.marginal_score(x, mx, var, shift)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_mixture_posterior_matches_the_information_form_and_bayes_weights(mixture):
    prior = mixture.patch_mixture(4)
    g = torch.Generator().manual_seed(1)
    A = 0.3 * torch.randn(6, 16, generator=g, dtype=torch.float64)
    sigma = 0.2
    y = prior.sample(3, g) @ A.T + sigma * torch.randn(3, 6, generator=g, dtype=torch.float64)
    post = prior.posterior(A, sigma, y)
    for k in range(prior.K):
        P = torch.linalg.inv(torch.linalg.inv(prior.covs[k]) + A.T @ A / sigma**2)
        torch.testing.assert_close(post.covs[k], P)
        m = (torch.linalg.solve(prior.covs[k], prior.means[k]) + y @ A / sigma**2) @ P  # P (S^-1 mu + A^T y / s^2)
        torch.testing.assert_close(post.means[:, k], m)
    S = A @ prior.covs @ A.T + sigma**2 * torch.eye(6, dtype=torch.float64)
    log_w = torch.stack([prior.log_w[k] + torch.distributions.MultivariateNormal(A @ prior.means[k], S[k]).log_prob(y)
                         for k in range(prior.K)], dim=1)
    torch.testing.assert_close(post.log_w.exp(), torch.softmax(log_w, dim=1))
    # sampling a batched mixture: one draw per row, moments as stated
    rows = torch.arange(3).repeat_interleave(20000)
    draws = post.rows(rows).sample(rows.numel(), g).reshape(3, 20000, 16)
    se = (post.variance() / 20000).sqrt()
    assert bool(((draws.mean(1) - post.mean()).abs() < 5 * se).all())


def test_gaussian_mixture_help(gm, capsys):
    assert_help_lists(gm.main, ("--device", "--steps", "--seed", "--samples", "--no-figure"), capsys)


def test_gaussian_mixture_example_numbers(gm, tmp_path, capsys):
    try:
        import matplotlib  # noqa: F401
        figure_args = ["--out", str(tmp_path)]
    except ImportError:
        figure_args = ["--no-figure"]
    S = 100
    out = gm.main(["--steps", "50", "--samples", str(S), "--measurements", "2", *figure_args])
    printed = capsys.readouterr().out
    rows, floor = out["rows"], out["mc_floor"]
    assert "DMPS (VPSDE, exact prior score)" in printed and "mean RMSE" in printed

    # Bounds hold with margin for seeds 0-5 at this size (worst seen in brackets).
    # (a) with the exact conditional score, OUVE and TSDVE restore the exact posterior to
    # within Monte Carlo error: mean error < 3 floors [1.3], variance ratio within 0.25 of 1
    # [0.144], and well below the corrupted image's own error [y's error / 4.8].
    for name in ("OUVE, exact x_T", "OUVE, DriftRec x_T", "TSDVE, exact x_T", "TSDVE, DriftRec x_T"):
        assert rows[name]["mean_rmse"] < 3 * floor["a"], name
        assert abs(rows[name]["var_ratio"] - 1) < 0.25, name
        assert rows[name]["mean_rmse"] < rows["corrupted y itself"]["mean_rmse"] / 3, name
        assert rows[name]["component_tv"] < 0.05, name  # mixture components as often as exact draws [0.01]

    # (b) the exact posterior score with the same DDPM solver is within Monte Carlo error of
    # the posterior mean [1.6 floors]; DMPS (exact prior score, pseudo-likelihood) is well
    # below the prior's and the zero-filled pseudo-inverse's error [0.54 and 0.86 of them], but
    # its approximation leaves it far above the reference [6x at least] and over-dispersed
    # [variance ratio 5.3 at least].
    dmps, ref = rows["DMPS (VPSDE, exact prior score)"], rows["VPSDE, exact posterior score"]
    assert ref["mean_rmse"] < 3 * floor["b"]
    assert ref["component_tv"] < 0.05  # [0.015]
    assert dmps["mean_rmse"] < 0.6 * rows["prior mean"]["mean_rmse"]
    assert dmps["mean_rmse"] < rows["zero-filled A^+ y"]["mean_rmse"]
    assert dmps["mean_rmse"] > 3 * ref["mean_rmse"]
    assert dmps["var_ratio"] > 2
    assert floor["a"] == pytest.approx(out["posterior_std"]["a"] / math.sqrt(S))
    # DMPS's flow version (Algorithm 2, rectified flow, exact prior velocity): Euler steps of the
    # exact posterior velocity are within Monte Carlo error of the posterior mean [1.5 floors] and
    # under-disperse by Euler's first-order error at 50 steps [variance ratio 0.72-0.79]; DMPS's
    # pseudo-likelihood leaves it below the prior mean's error [0.64 of it] but far above the
    # reference [8.7x at least] and over-dispersed [3.1 at least], whichever step it takes (Heun
    # within 1.2 % of Euler: the error is the approximation's, not the discretisation's).
    flow, heun, ref = (rows[n] for n in ("DMPS flow (RF, exact velocity)", "DMPS flow, Heun (RF)",
                                         "RF, exact posterior velocity"))
    assert ref["mean_rmse"] < 3 * floor["b"] and ref["component_tv"] < 0.05
    assert 0.6 < ref["var_ratio"] < 0.95
    assert flow["mean_rmse"] < 0.75 * rows["prior mean"]["mean_rmse"]
    assert flow["mean_rmse"] > 3 * ref["mean_rmse"] and flow["var_ratio"] > 2
    assert heun["mean_rmse"] == pytest.approx(flow["mean_rmse"], rel=0.05)

    # (c) marginal std curves: DriftRec's closed forms at T
    std = out["marginal_std"]
    assert std["TSDVE"]["std"][-1] == pytest.approx(0.3, rel=1e-12)
    assert std["OUVE"]["std"][-1] == pytest.approx(math.sqrt(0.3**2 - 0.01**2 * math.exp(-2.0)), rel=1e-12)
    assert std["VPSDE"]["std"][0] == 0.0 and std["VPSDE"]["std"][-1] == pytest.approx(1.0, abs=1e-3)
    assert std["RF"]["std"] == pytest.approx([0.0, 0.25, 0.5, 0.75, 0.999], abs=1e-12)   # b = t, to T = 0.999
    if out["figure"] is not None:
        assert os.path.getsize(out["figure"]) > 10_000
