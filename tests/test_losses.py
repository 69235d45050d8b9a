"""Denoising score matching on a Gaussian data prior, where the optimal score is known.

For ``x0 ~ N(mu, s^2)`` per element and ``x_t = mx x0 + my y + std z``, the marginal is
``N(mx mu + my y, V)``, ``V = mx^2 s^2 + std^2``, with score ``-(x_t - mx mu - my y) / V``.
Writing ``e = x0 - mu``,

    std * score + z = -std (mx e + std z) / V + z = (mx^2 s^2 z - std mx e) / V,

so ``E (std * score + z)^2 = (mx^4 s^4 + std^2 mx^2 s^2) / V^2 = mx^2 s^2 / V = 1 - std^2 / V``
per element, and the expected loss is that averaged over ``t ~ U(t_eps, T)``.
"""
import numpy as np
import pytest
import torch

from sdekit import OUVE, TSDVE, VESDE, VPSDE
from sdekit.losses import denoising_score_matching

MU, S = 0.3, 0.5
B, D = 20000, 8


def gaussian_score(sde, y):
    def score(x, t, y_arg=None):
        mx, my = (sde._per_sample(c, x) for c in sde.mean_coeffs(t))
        V = mx**2 * S**2 + sde._per_sample(sde.marginal_var(t), x)
        mean = mx * MU + (my * y_arg if sde.has_y_drift else 0.0)
        return -(x - mean) / V
    return score


def expected_loss(sde, t_eps):
    """``E_t [mx^2 s^2 / (mx^2 s^2 + std^2)]`` by 200-point Gauss-Legendre quadrature."""
    nodes, weights = np.polynomial.legendre.leggauss(200)
    t = torch.tensor(t_eps + (sde.T - t_eps) * (nodes + 1) / 2)
    mx, _ = sde.mean_coeffs(t)
    V = mx**2 * S**2 + sde.marginal_var(t)
    return float((torch.tensor(weights) * (mx**2 * S**2 / V)).sum() / 2)


def data(sde, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = MU + S * torch.randn(B, D, generator=g, dtype=torch.float64)
    y = torch.randn(B, D, generator=g, dtype=torch.float64) if sde.has_y_drift else None
    return x0, y


SDES = [OUVE(), TSDVE(), VPSDE(), VESDE(sigma_max=5.0)]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_dsm_loss_at_exact_score_matches_analytic_expectation(sde):
    x0, y = data(sde)
    losses = denoising_score_matching(sde, gaussian_score(sde, y), x0, y,
                                      generator=torch.Generator().manual_seed(1), reduction="none")
    assert losses.shape == (B,)
    se = float(losses.std()) / B**0.5
    want = expected_loss(sde, sde.t_eps)
    assert abs(float(losses.mean()) - want) < 5 * se, (float(losses.mean()), want, se)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_dsm_loss_is_lowest_at_the_exact_score(sde):
    x0, y = data(sde, seed=2)
    exact = gaussian_score(sde, y)

    def loss(fn):  # common random numbers: the same t and z for every candidate
        return float(denoising_score_matching(sde, fn, x0, y, generator=torch.Generator().manual_seed(3)))

    base = loss(exact)
    for name, fn in {
        "scaled 1.1": lambda x, t, *a: 1.1 * exact(x, t, *a),
        "scaled 0.9": lambda x, t, *a: 0.9 * exact(x, t, *a),
        "shifted": lambda x, t, *a: exact(x, t, *a) + 0.2,
        "wrong mean": lambda x, t, *a: exact(x + 0.05, t, *a),
    }.items():
        assert loss(fn) > base, name

    # The loss is quadratic in c for score = c * exact; its minimiser is c = 1.
    l0, l1, l2 = loss(lambda x, t, *a: 0 * exact(x, t, *a)), base, loss(lambda x, t, *a: 2 * exact(x, t, *a))
    a = (l2 - 2 * l1 + l0) / 2
    b = l1 - l0 - a
    assert abs(-b / (2 * a) - 1.0) < 0.02


def test_dsm_passes_y_and_per_sample_times_to_the_score():
    sde = OUVE()
    x0, y = data(sde)
    x0, y = x0[:16], y[:16]
    seen = {}

    def score(x, t, y_arg):
        seen.update(t=t, y=y_arg)
        return torch.zeros_like(x)

    loss = denoising_score_matching(sde, score, x0, y, t_eps=0.2, generator=torch.Generator().manual_seed(0))
    assert seen["y"] is y
    assert seen["t"].shape == (16,) and seen["t"].dtype == torch.float64
    assert bool(((seen["t"] >= 0.2) & (seen["t"] < sde.T)).all())
    # with a zero score the loss is mean z^2
    assert 0.5 < float(loss) < 1.5


def test_dsm_gradient_reaches_the_model():
    sde = VPSDE()
    x0 = torch.randn(64, 3, 4, 4)
    w = torch.zeros((), requires_grad=True)
    loss = denoising_score_matching(sde, lambda x, t: -w * x, x0, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.dtype == torch.float32 and w.grad is not None and float(w.grad) < 0


def test_dsm_rejects_bad_arguments():
    x0 = torch.randn(4, 3)
    with pytest.raises(ValueError, match="pass y"):
        denoising_score_matching(OUVE(), lambda x, t: x, x0)
    with pytest.raises(ValueError, match="shape"):
        denoising_score_matching(VPSDE(), lambda x, t: x[:, :2], x0)
    with pytest.raises(ValueError, match="reduction"):
        denoising_score_matching(VPSDE(), lambda x, t: x, x0, reduction="sum")
    with pytest.raises(ValueError, match="t_eps"):
        denoising_score_matching(VPSDE(), lambda x, t: x, x0, t_eps=1.5)
    with pytest.raises(TypeError, match="x0"):
        denoising_score_matching(VPSDE(), lambda x, t: x, x0.long())
    with pytest.raises(TypeError, match="callable"):
        denoising_score_matching(VPSDE(), None, x0)


def test_dsm_generator_must_be_a_torch_generator_on_the_data_device():
    x0 = torch.randn(4, 3)
    with pytest.raises(TypeError, match="generator"):
        denoising_score_matching(VPSDE(), lambda x, t: x, x0, generator=0)
    with pytest.raises(TypeError, match="generator"):
        denoising_score_matching(VPSDE(), lambda x, t: x, x0, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match="sde"):
        denoising_score_matching("VPSDE", lambda x, t: x, x0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_dsm_non_finite_loss_is_an_error_naming_its_cause(bad):
    """A NaN score must not become a NaN loss silently (an optimiser step on it poisons the model)."""
    x0 = torch.randn(4, 3)
    with pytest.raises(ValueError, match="score_fn returned non-finite"):
        denoising_score_matching(VPSDE(), lambda x, t: torch.full_like(x, bad), x0)
    with pytest.raises(ValueError, match="score_fn returned non-finite"):  # one entry of one sample
        denoising_score_matching(VPSDE(), lambda x, t: x.index_fill(0, torch.tensor([2]), bad), x0)
    x0_bad = x0.clone()
    x0_bad[1, 2] = bad
    with pytest.raises(ValueError, match="x0 has non-finite"):
        denoising_score_matching(VPSDE(), lambda x, t: -x, x0_bad)
    with pytest.raises(ValueError, match="overflowed"):  # finite score whose square overflows float32
        denoising_score_matching(VPSDE(), lambda x, t: torch.full_like(x, 1e30), x0)
