"""Annealed Langevin dynamics (NCSNv2) against a transcription of NCSNv2's loop on the same noise,
and its stationary law on a Gaussian target against the exact one (Monte Carlo bounds)."""
import math

import numpy as np
import pytest
import torch

from sdekit import VESDE, VPSDE
from sdekit.kernels.rng import philox_normal_like
from sdekit.solvers import AnnealedLangevin, SolverError


def ncsnv2_anneal_langevin(x_mod, scorenet, sigmas, n_steps_each, step_lr, denoise, normals):
    """``anneal_Langevin_dynamics`` of ermongroup/ncsnv2 (models/__init__.py), transcribed; the
    diagnostics (norms, prints, image list) dropped and ``torch.randn_like`` replaced by
    ``normals(x, word)`` so both runs share the noise; ``labels`` carry the level index."""
    for c, sigma in enumerate(sigmas):
        labels = torch.ones(x_mod.shape[0], device=x_mod.device) * c
        labels = labels.long()
        step_size = step_lr * (sigma / sigmas[-1]) ** 2
        for s in range(n_steps_each):
            grad = scorenet(x_mod, labels)
            noise = normals(x_mod, c * n_steps_each + s)
            x_mod = x_mod + step_size * grad + noise * np.sqrt(step_size * 2)
    if denoise:
        last_noise = (len(sigmas) - 1) * torch.ones(x_mod.shape[0], device=x_mod.device)
        last_noise = last_noise.long()
        x_mod = x_mod + sigmas[-1] ** 2 * scorenet(x_mod, last_noise)
    return x_mod


def gaussian_score(mu, s0, sde):
    """Score of ``N(mu, s0^2 I)`` perturbed by the VE noise of std ``sigma(t)``."""
    def score(x, t):
        var = s0**2 + sde.marginal_std(t) ** 2
        return -(x - mu) / var.reshape(-1, *([1] * (x.dim() - 1)))
    return score


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("denoise", [True, False])
def test_annealed_langevin_matches_the_ncsnv2_loop_on_the_same_noise(dtype, denoise):
    sde = VESDE(0.01, 5.0)
    sampler = AnnealedLangevin(sde, n_levels=6, n_steps_each=4, step_lr=2e-4, denoise=denoise)
    sigmas = sampler.sigmas()
    torch.testing.assert_close(sigmas, torch.tensor(np.geomspace(5.0, 0.01, 6)), rtol=1e-12, atol=0)
    times = sampler.times()
    score_t = gaussian_score(0.3, 0.5, sde)

    def scorenet(x, labels):  # NCSNv2's network takes the level index
        return score_t(x, times[labels].to(x.dtype))

    x_T = 5.0 * torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0), dtype=dtype)
    got = sampler.sample(score_t, x_T=x_T, seed=7)
    ref = ncsnv2_anneal_langevin(x_T.clone(), scorenet, [float(s) for s in sigmas], 4, 2e-4, denoise,
                                 lambda x, w: philox_normal_like(x, 7, w))
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got, ref, rtol=tol, atol=tol)


@pytest.mark.slow
def test_annealed_langevin_samples_a_gaussian_target():
    """Target ``N(0.3, 0.5^2)`` per coordinate, ``VESDE(0.1, 5)``: 20 levels of 100 steps, step_lr 2e-3,
    then the denoising step.  At the last level the chain (unadjusted Langevin, step ``a``) has
    stationary variance ``v / (1 - a / (2 v))``, ``v = 0.25 + sigma_L^2``; denoising with the exact
    score maps ``x -> mu + k (x - mu)``, ``k = 1 - sigma_L^2 / v``.  Mean and variance of 20000
    draws within 5 standard errors (the previous level's excess variance, decayed by
    ``exp(-2 * 100 a / v)``, is 0.4 % of it, a fifth of a standard error)."""
    sde = VESDE(0.1, 5.0)
    a = 2e-3
    sampler = AnnealedLangevin(sde, n_levels=20, n_steps_each=100, step_lr=a)
    x = sampler.sample(gaussian_score(0.3, 0.5, sde), shape=(20000, 1), seed=3, dtype=torch.float64)
    n = x.numel()
    v = 0.25 + 0.1**2
    k = 1 - 0.1**2 / v
    var = k * k * v / (1 - a / (2 * v))
    assert abs(float(x.mean()) - 0.3) < 5 * math.sqrt(var / n)
    assert abs(float(x.var()) - var) < 5 * var * math.sqrt(2 / n)


def test_annealed_langevin_prior_draw_and_seeds():
    sde = VESDE(0.01, 5.0)
    sampler = AnnealedLangevin(sde, n_levels=2, n_steps_each=1, step_lr=1e-4)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    a = sampler.sample(zero, shape=(2, 3), seed=1, dtype=torch.float64)
    assert torch.equal(a, sampler.sample(zero, shape=(2, 3), seed=1, dtype=torch.float64))
    assert not torch.equal(a, sampler.sample(zero, shape=(2, 3), seed=2, dtype=torch.float64))
    x = torch.empty(2, 3, dtype=torch.float64)
    sig = sampler.sigmas()
    alpha = 1e-4 * (sig / sig[-1]) ** 2
    want = 5.0 * philox_normal_like(x, 1, 2**64 - 1)
    for i in range(2):
        want = want + (2 * alpha[i]).sqrt() * philox_normal_like(x, 1, i)
    torch.testing.assert_close(a, want, rtol=1e-13, atol=1e-13)


def test_annealed_langevin_bad_input():
    sde = VESDE(0.01, 5.0)
    for kw, name, err in (({"n_levels": 0}, "n_levels", ValueError), ({"n_steps_each": 1.5}, "n_steps_each", TypeError),
                          ({"step_lr": 0.0}, "step_lr", ValueError), ({"step_lr": float("nan")}, "step_lr", ValueError),
                          ({"t_min": 1.0}, "t_min", ValueError)):
        with pytest.raises(err, match=name):
            AnnealedLangevin(sde, **kw)
    with pytest.raises(ValueError, match="variance exploding"):
        AnnealedLangevin(VPSDE())
    sampler = AnnealedLangevin(sde, n_levels=2, n_steps_each=2)
    with pytest.raises(SolverError, match="shape"):
        sampler.sample(lambda x, t: x[:1], shape=(2, 3))
    with pytest.raises(ValueError, match="x_T, y or shape"):
        sampler.sample(lambda x, t: x)
    with pytest.raises(ValueError, match="seed"):
        sampler.sample(lambda x, t: x, shape=(2, 3), seed=-1)
    with pytest.raises(FloatingPointError, match="step 2 of 5"):  # level 1, step 0 of 2 levels x 2 steps + denoising
        sampler.sample(lambda x, t: torch.full_like(x, math.nan) if float(t[0]) < 0.5 else torch.zeros_like(x),
                       shape=(2, 3))
