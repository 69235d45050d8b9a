"""posterior_score_fn: the QCS-SGM weight and the QCS-SGM+ norm-matching rule, against the authors'
lines transcribed (mengxiangming/QCS-SGM-plus, models/__init__.py,
anneal_Langevin_dynamics_linear_inverse)."""
import pytest
import torch

from sdekit.inverse import posterior_score_fn

D64 = torch.float64


def authors_update_direction(grad, likelihood_grad, likelihood_scale):
    """``grad + likelihood_scale1 * likelihood_grad`` as the QCS-SGM+ sampler forms it."""
    if torch.norm(likelihood_grad) > 0:
        likelihood_scale1 = likelihood_scale * torch.norm(grad) / torch.norm(likelihood_grad)
    else:
        likelihood_scale1 = 1
    return grad + likelihood_scale1 * likelihood_grad


def fns(seed=0):
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(4, 2, 3, generator=g, dtype=D64)
    L = 100 * torch.randn(4, 2, 3, generator=g, dtype=D64)
    return (lambda x, t: P * x), (lambda x, t: L * x + t.reshape(-1, 1, 1)), P, L


def test_fixed_weight_is_prior_plus_scaled_likelihood():
    prior, lik, _, _ = fns()
    x, t = torch.ones(4, 2, 3, dtype=D64), torch.full((4,), 0.5, dtype=D64)
    got = posterior_score_fn(prior, lik, likelihood_scale=0.3)(x, t)
    torch.testing.assert_close(got, prior(x, t) + 0.3 * lik(x, t), rtol=0, atol=0)


def test_batch_norm_matching_is_the_authors_rule():
    prior, lik, _, _ = fns(1)
    x, t = torch.randn(4, 2, 3, dtype=D64), torch.full((4,), 0.5, dtype=D64)
    got = posterior_score_fn(prior, lik, likelihood_scale=2.0, match_prior_norm="batch")(x, t)
    torch.testing.assert_close(got, authors_update_direction(prior(x, t), lik(x, t), 2.0), rtol=1e-14, atol=1e-14)
    zero = posterior_score_fn(prior, lambda x, t: torch.zeros_like(x), match_prior_norm="batch")(x, t)
    torch.testing.assert_close(zero, prior(x, t), rtol=0, atol=0)


def test_sample_norm_matching_is_the_rule_applied_to_each_sample_alone():
    prior, lik, P, L = fns(2)
    x, t = torch.randn(4, 2, 3, dtype=D64), torch.full((4,), 0.5, dtype=D64)
    got = posterior_score_fn(prior, lik, likelihood_scale=0.7, match_prior_norm="sample")(x, t)
    for i in range(4):
        pi, li = P[i] * x[i], L[i] * x[i] + 0.5
        torch.testing.assert_close(got[i], authors_update_direction(pi, li, 0.7), rtol=1e-14, atol=1e-14)
        assert abs(float((got[i] - pi).norm() / pi.norm()) - 0.7) < 1e-12


def test_posterior_score_fn_bad_input():
    prior, lik, _, _ = fns()
    with pytest.raises(TypeError, match="callables"):
        posterior_score_fn(prior, None)
    for v in (-1.0, float("inf"), True, "1"):
        with pytest.raises(ValueError, match="likelihood_scale"):
            posterior_score_fn(prior, lik, likelihood_scale=v)
    with pytest.raises(ValueError, match="match_prior_norm"):
        posterior_score_fn(prior, lik, match_prior_norm="global")
