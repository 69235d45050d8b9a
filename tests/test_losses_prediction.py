"""Training targets other than the score (``denoising_score_matching(..., prediction=...)``) on a
Gaussian prior ``x0 ~ N(MU, S^2)`` per element, where every exact output is known in closed form.

Per element at time ``t`` the exact score's loss is ``a^2 S^2 / V`` (``V = a^2 S^2 + b^2``;
``tests/test_losses.py``), and an output with score sensitivity ``kappa`` (``eps: -b``,
``x0: b^2/a``, ``velocity: -g^2/2``, ``v: -b (a^2 + b^2)/a``, derived by hand here) has
per-sample loss ``kappa^2 / b^2`` times the score form's on the same draws: checked term for
term, in expectation against quadrature, and as the minimum over perturbed models.
"""
import math

import numpy as np
import pytest
import torch

from sdekit.losses import denoising_score_matching

from _problems import marginal_closed_forms, shared_rectified_flow, shared_vpsde

F64 = torch.float64
MU, S = 0.3, 0.5
PREDICTIONS = ("eps", "x0", "velocity", "v")
SDES = {"VP": shared_vpsde, "RF": shared_rectified_flow}


def g2(name, t):
    return 0.1 + t * 19.9 if name == "VP" else 2 * t / (1 - t)


def kappa(name, prediction, t):
    a, _, b, _, _, _ = marginal_closed_forms(name, t)
    return {"eps": -b, "x0": b * b / a, "velocity": -g2(name, t) / 2, "v": -b * (a * a + b * b) / a}[prediction]


def exact_model(name, prediction):
    """The exact output ``prediction`` for Gaussian data, from closed forms (score: ``-resid / V``)."""
    def model(x, t):
        a, _, b, da, _, db = (c[:, None] for c in marginal_closed_forms(name, t.to(F64)))
        V = a * a * S**2 + b * b
        resid = x - a * MU
        e_z, e_x0 = b * resid / V, MU + a * S**2 * resid / V
        return {"score": -resid / V, "eps": e_z, "x0": e_x0, "velocity": da * e_x0 + db * e_z,
                "v": a * e_z - b * e_x0}[prediction].to(x.dtype)
    return model


def data(B=4000, D=8, seed=0):
    return MU + S * torch.randn(B, D, generator=torch.Generator().manual_seed(seed), dtype=F64)


def loss(name, model, prediction, seed=1, **kw):
    sde = SDES[name]()
    return denoising_score_matching(sde, model, data(), generator=torch.Generator().manual_seed(seed),
                                    reduction="none", prediction=prediction, **kw)


@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_each_target_is_the_score_loss_reweighted_by_kappa_squared_on_the_same_draws(name, prediction):
    sde = SDES[name]()
    t = sde.t_eps + (sde.T - sde.t_eps) * torch.rand(4000, generator=torch.Generator().manual_seed(1), dtype=F64)
    base = loss(name, exact_model(name, "score"), "score")
    got = loss(name, exact_model(name, prediction), prediction)
    b = marginal_closed_forms(name, t)[2]
    torch.testing.assert_close(got, base * kappa(name, prediction, t) ** 2 / b**2, rtol=1e-9, atol=1e-14)
    if prediction == "eps":  # DDPM's L_simple is the default score loss itself
        torch.testing.assert_close(got, base, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_likelihood_weighting_makes_every_target_the_likelihood_weighted_score_loss(name, prediction):
    for importance in (False, True):
        base = loss(name, exact_model(name, "score"), "score", likelihood_weighting=True,
                    importance_sampling=importance)
        got = loss(name, exact_model(name, prediction), prediction, likelihood_weighting=True,
                   importance_sampling=importance)
        torch.testing.assert_close(got, base, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_exact_output_attains_the_analytic_expected_loss_and_is_the_minimiser(prediction):
    name, sde = "VP", shared_vpsde()
    nodes, weights = np.polynomial.legendre.leggauss(200)
    t = torch.tensor(sde.t_eps + (sde.T - sde.t_eps) * (nodes + 1) / 2)
    a, _, b, _, _, _ = marginal_closed_forms(name, t)
    per_t = kappa(name, prediction, t) ** 2 / b**2 * a * a * S**2 / (a * a * S**2 + b * b)
    expected = float((torch.tensor(weights) * per_t).sum() / 2)
    got = loss(name, exact_model(name, prediction), prediction)
    se = float(got.std()) / math.sqrt(got.numel())
    assert abs(float(got.mean()) - expected) < 4 * se, (float(got.mean()), expected, se)
    # perturbations well above the Monte Carlo noise of the paired difference (2 d mean(residual) ~ 1e-2 E)
    exact, shift = exact_model(name, prediction), 0.2 * math.sqrt(expected)
    for perturbed in (lambda x, t: 1.3 * exact(x, t), lambda x, t: exact(x, t) + shift):
        assert float(loss(name, perturbed, prediction).mean()) > float(got.mean())


def test_a_bad_prediction_is_named():
    with pytest.raises(ValueError, match="prediction"):
        denoising_score_matching(shared_vpsde(), lambda x, t: x, data(4), prediction="noise")
