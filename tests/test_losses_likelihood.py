"""The likelihood-weighted, summed and importance-sampled DSM losses.

References: a transcription of score_sde's ``get_sde_loss_fn`` (losses.py) with its ``VPSDE`` and
``VESDE`` (sde_lib.py) fed the same ``t`` and ``z``; score_flow's closed-form VP importance CDF
(``likelihood_importance_cum_weight``) and its bisection sampler; scipy quadrature of the expected
loss at the exact score of Gaussian data (``x0 ~ N(MU, S^2)``: ``E (std score + z)^2 = mx^2 S^2 / V``
per element, ``V = mx^2 S^2 + std^2``), against which the Monte Carlo means must fall within
4.5 standard errors.
"""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from sdekit import OUVE, VESDE, VPSDE, denoising_score_matching
from sdekit.losses import likelihood_time_weight, sample_likelihood_times

MU, S = 0.3, 0.5


# ---------------------------------------------------------------- score_sde, transcribed
class ScoreSdeVPSDE:
    def __init__(self, beta_min=0.1, beta_max=20):
        self.beta_0, self.beta_1, self.T = beta_min, beta_max, 1

    def sde(self, x, t):
        beta_t = self.beta_0 + t * (self.beta_1 - self.beta_0)
        drift = -0.5 * beta_t[:, None, None, None] * x
        diffusion = torch.sqrt(beta_t)
        return drift, diffusion

    def marginal_prob(self, x, t):
        log_mean_coeff = -0.25 * t ** 2 * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0
        mean = torch.exp(log_mean_coeff[:, None, None, None]) * x
        std = torch.sqrt(1. - torch.exp(2. * log_mean_coeff))
        return mean, std


class ScoreSdeVESDE:
    def __init__(self, sigma_min=0.01, sigma_max=50):
        self.sigma_min, self.sigma_max, self.T = sigma_min, sigma_max, 1

    def sde(self, x, t):
        sigma = self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        drift = torch.zeros_like(x)
        diffusion = sigma * torch.sqrt(torch.tensor(2 * (np.log(self.sigma_max) - np.log(self.sigma_min)),
                                                    device=t.device))
        return drift, diffusion

    def marginal_prob(self, x, t):
        std = self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        mean = x
        return mean, std


def score_sde_loss(sde, score_fn, batch, generator, reduce_mean, likelihood_weighting, eps):
    """``get_sde_loss_fn(...)(model, batch)``; ``torch.rand``/``randn_like`` take ``generator`` (float64)."""
    reduce_op = torch.mean if reduce_mean else lambda *args, **kwargs: 0.5 * torch.sum(*args, **kwargs)
    t = torch.rand(batch.shape[0], generator=generator, dtype=batch.dtype) * (sde.T - eps) + eps
    z = torch.randn(batch.shape, generator=generator, dtype=batch.dtype)
    mean, std = sde.marginal_prob(batch, t)
    perturbed_data = mean + std[:, None, None, None] * z
    score = score_fn(perturbed_data, t)
    if not likelihood_weighting:
        losses = torch.square(score * std[:, None, None, None] + z)
        losses = reduce_op(losses.reshape(losses.shape[0], -1), dim=-1)
    else:
        g2 = sde.sde(torch.zeros_like(batch), t)[1] ** 2
        losses = torch.square(score + z / std[:, None, None, None])
        losses = reduce_op(losses.reshape(losses.shape[0], -1), dim=-1) * g2
    return torch.mean(losses)


def net(x, t):  # any score model: a fixed non-linear function of (x, t)
    return -x * (1 + t[:, None, None, None]) + 0.3 * torch.sin(3 * x.flip(-1))


@pytest.mark.parametrize("kind", ["VP", "VE"])
@pytest.mark.parametrize("reduce_mean", [True, False])
@pytest.mark.parametrize("likelihood_weighting", [False, True])
def test_loss_matches_score_sde_get_sde_loss_fn_on_the_same_noise(kind, reduce_mean, likelihood_weighting):
    ours, theirs = (VPSDE(), ScoreSdeVPSDE()) if kind == "VP" else (VESDE(0.01, 50.0), ScoreSdeVESDE())
    batch = torch.randn(16, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = 1e-5                                             # score_sde's training cutoff
    ref = score_sde_loss(theirs, net, batch, torch.Generator().manual_seed(7), reduce_mean, likelihood_weighting, eps)
    loss = denoising_score_matching(ours, net, batch, t_eps=eps, generator=torch.Generator().manual_seed(7),
                                    likelihood_weighting=likelihood_weighting, reduce_mean=reduce_mean)
    assert float(loss) == pytest.approx(float(ref), rel=1e-11)


# ---------------------------------------------------------------- score_flow's VP importance sampler
def score_flow_cum_weight(t, beta_0, beta_1, eps):
    """score_flow's ``VPSDE.likelihood_importance_cum_weight`` (sde_lib.py), numpy for jnp.

    One change: score_flow takes ``1 - exp(x) ~ -x`` for ``|x| <= 1e-3`` (relative error ``|x|/2``,
    5e-7 in ``W`` at ``t = 1e-5``); here ``-expm1(x)``, exact, so the comparison can be tight.
    """
    exponent1 = 0.5 * eps * (eps - 2) * beta_0 - 0.5 * eps ** 2 * beta_1
    exponent2 = 0.5 * t * (t - 2) * beta_0 - 0.5 * t ** 2 * beta_1
    term1 = -np.expm1(exponent1)
    term2 = -np.expm1(exponent2)
    return 0.5 * (-2 * np.log(term1) + 2 * np.log(term2)
                  + beta_0 * (-2 * eps + eps ** 2 - (t - 2) * t) + beta_1 * (-eps ** 2 + t ** 2))


def score_flow_sample(quantile, beta_0, beta_1, eps, T=1.0, steps=100):
    lb, ub = np.ones_like(quantile) * eps, np.ones_like(quantile) * T
    for _ in range(steps):
        mid = (lb + ub) / 2.
        value = score_flow_cum_weight(mid, beta_0, beta_1, eps)
        lb, ub = np.where(value <= quantile, mid, lb), np.where(value <= quantile, ub, mid)
    return (lb + ub) / 2.


def test_importance_cdf_is_score_flows_closed_form_for_vp():
    sde, eps = VPSDE(), 1e-5
    t = np.array([1e-5, 1e-4, 3e-3, 0.1, 0.5, 0.99, 1.0])
    ref = score_flow_cum_weight(t, 0.1, 20.0, eps)
    assert likelihood_time_weight(sde, torch.tensor(t), eps).numpy() == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_importance_cdf_of_ve_is_uniform():
    sde = VESDE(0.01, 50.0)
    t = torch.tensor([0.2, 0.7, 1.0], dtype=torch.float64)
    expected = 2 * math.log(5000.0) * (t - 1e-5)
    assert torch.allclose(likelihood_time_weight(sde, t, 1e-5), expected, rtol=1e-12)


def test_importance_sampled_times_are_score_flows_for_the_same_quantiles():
    sde, eps, n = VPSDE(), 1e-5, 1000
    t, Z = sample_likelihood_times(sde, n, eps, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    u = torch.rand(n, generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    Z_ref = float(score_flow_cum_weight(1.0, 0.1, 20.0, eps))
    assert Z == pytest.approx(Z_ref, rel=1e-10)
    assert t.numpy() == pytest.approx(score_flow_sample(u * Z_ref, 0.1, 20.0, eps), rel=1e-9, abs=1e-13)


def test_importance_sampled_times_follow_g2_over_std2():
    sde, eps = VPSDE(), 1e-3
    t, Z = sample_likelihood_times(sde, 20000, eps, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    cdf = lambda s: score_flow_cum_weight(np.asarray(s), 0.1, 20.0, eps) / Z  # noqa: E731
    assert stats.kstest(t.numpy(), cdf).pvalue > 1e-3
    assert float(t.min()) >= eps and float(t.max()) <= 1.0


# ---------------------------------------------------------------- unbiasedness at the exact score
def vp_functions(sde):
    b0, b1 = sde.beta_min, sde.beta_max
    B = lambda t: b0 * t + (b1 - b0) * t * t / 2  # noqa: E731
    mx2 = lambda t: math.exp(-B(t))  # noqa: E731
    v = lambda t: -math.expm1(-B(t))  # noqa: E731
    g2 = lambda t: b0 + t * (b1 - b0)  # noqa: E731
    return mx2, v, g2


def gaussian_score(sde):
    def score(x, t):
        mx, _ = (sde._per_sample(c, x) for c in sde.mean_coeffs(t))
        V = mx**2 * S**2 + sde._per_sample(sde.marginal_var(t), x)
        return -(x - mx * MU) / V
    return score


def test_likelihood_weighted_loss_is_unbiased_with_uniform_and_importance_sampled_t():
    sde, eps, B, D = VPSDE(), 1e-3, 40000, 4
    mx2, v, g2 = vp_functions(sde)
    expected = integrate.quad(lambda t: g2(t) / v(t) * mx2(t) * S**2 / (mx2(t) * S**2 + v(t)), eps, 1.0,
                              points=[0.01, 0.1], limit=200)[0] / (1.0 - eps)
    x0 = MU + S * torch.randn(B, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    se = {}
    for importance in (False, True):
        l = denoising_score_matching(sde, gaussian_score(sde), x0, t_eps=eps, reduction="none",
                                     generator=torch.Generator().manual_seed(1), likelihood_weighting=True,
                                     importance_sampling=importance)
        se[importance] = float(l.std()) / math.sqrt(B)
        assert abs(float(l.mean()) - expected) < 4.5 * se[importance], importance
    assert se[True] < 0.5 * se[False]       # what importance sampling is for


def test_loss_variants_reject_bad_arguments():
    sde = VPSDE()
    x0 = torch.randn(4, 3)
    with pytest.raises(ValueError, match="likelihood_weighting=True"):
        denoising_score_matching(sde, lambda x, t: -x, x0, importance_sampling=True)
    with pytest.raises(TypeError, match="reduce_mean"):
        denoising_score_matching(sde, lambda x, t: -x, x0, reduce_mean="sum")
    with pytest.raises(ValueError, match="std\\(t_eps\\) > 0"):
        denoising_score_matching(sde, lambda x, t: -x, x0, t_eps=0.0, likelihood_weighting=True,
                                 importance_sampling=True)


def test_importance_sampling_works_for_a_y_drift_sde_in_float32():
    sde = OUVE()
    x0, y = torch.randn(8, 3), torch.randn(8, 3)
    loss = denoising_score_matching(sde, lambda x, t, yy: -(x - yy), x0, y, likelihood_weighting=True,
                                    importance_sampling=True, generator=torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
