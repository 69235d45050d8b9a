"""Test problems shared by several test modules (import from here, never from another test module).

* :func:`shared_vpsde`: one ``VPSDE(0.1, 20)`` (building one derives it with sympy);
* Gaussian data ``x0 ~ N(MU, S0^2)``: its exact score (:func:`gaussian_score`), the exact
  marginal (:func:`gaussian_truth`), a draw from it at ``T`` (:func:`exact_x_T`), and the exact
  output moments of a reverse sampler's chain (:func:`reverse_moments`: with an affine score the
  chain is a linear Gaussian recursion, written here from the sampler's coefficient table).
"""
import functools
import math

import torch

F64 = torch.float64
MU, S0 = 0.5, 0.3


@functools.lru_cache(maxsize=None)
def shared_vpsde():
    """One VPSDE(0.1, 20) for all tests that need the default VP (building one derives it with sympy)."""
    from sdekit import VPSDE

    return VPSDE(0.1, 20.0)


def gaussian_score(sde, y=None, mu=MU, s0=S0):
    """Exact score of x_t when x0 ~ N(mu, s0^2): -(x - mx mu - my y) / (mx^2 s0^2 + v)."""
    def score(x, t):
        mx, my = sde.mean_coeffs(t)
        v = sde.marginal_var(t)
        mx, my, v = (c.to(x.dtype).view(-1, *([1] * (x.dim() - 1))) for c in (mx, my, v))
        mean = mx * mu + (my * y if y is not None else 0.0)
        return -(x - mean) / (mx**2 * s0**2 + v)
    return score


def gaussian_truth(sde, t, y=0.0, mu=MU, s0=S0):
    """``(mean, var)`` of x_t for x0 ~ N(mu, s0^2) (and the scalar conditioning ``y``)."""
    mx, my = (float(c) for c in sde.mean_coeffs(t))
    return mx * mu + (my * y if sde.has_y_drift else 0.0), mx**2 * s0**2 + float(sde.marginal_var(t))


def exact_x_T(sde, shape, y=0.0, seed=0, mu=MU, s0=S0):
    """A draw from the exact marginal at T (the SDE's prior N(prior_mean, v(T)) ignores the data:
    for OUVE its mean is off by mx(T) (MU - y), DriftRec's prior mismatch)."""
    mean, var = gaussian_truth(sde, sde.T, y, mu, s0)
    g = torch.Generator().manual_seed(seed)
    return mean + math.sqrt(var) * torch.randn(shape, generator=g, dtype=F64)


def reverse_moments(sampler, y=0.0, denoise=False, mu=MU, s0=S0):
    """Exact mean/variance of a reverse sampler's output for Gaussian data (score affine in x)."""
    sde = sampler.sde
    ts = sampler.time_grid()
    t, s = ts[:-1], ts[1:]
    A, C, S, N = sampler.step_coefficients(t, s)
    mx, my = sde.mean_coeffs(t)
    V = mx**2 * s0**2 + sde.marginal_var(t)
    k, b = -1.0 / V, (mx * mu + (my * y if sde.has_y_drift else 0.0)) / V
    m, v = gaussian_truth(sde, sde.T, y, mu, s0)  # started from the exact marginal at T (no prior mismatch)
    for n in range(sampler.steps):
        m = (A[n] + S[n] * k[n]) * m + S[n] * b[n] + (C[n] * y if sde.has_y_drift else 0.0)
        v = (A[n] + S[n] * k[n]) ** 2 * v + (0.0 if denoise and n == sampler.steps - 1 else N[n] ** 2)
    return float(m), float(v)


@functools.lru_cache(maxsize=None)
def shared_rectified_flow():
    """One ``RectifiedFlow()``: ``x_t = (1 - t) x0 + t z`` on ``[0, 0.999]`` (building one derives it with sympy)."""
    from sdekit import RectifiedFlow

    return RectifiedFlow()


def marginal_closed_forms(name, t):
    """``a, m, b, a', m', b'`` of ``x_t = a x0 + m y + b z``, written from each SDE's printed marginal and
    differentiated by hand (not from sdekit): ``"VP"`` (0.1, 20), ``"VE"`` (0.01, 50), ``"OUVE"``
    (DriftRec defaults) and ``"RF"`` (rectified flow)."""
    zero = torch.zeros_like(t)
    if name == "VP":
        beta = 0.1 + t * 19.9
        a = torch.exp(-(0.1 * t + 19.9 * t * t / 2) / 2)
        b = torch.sqrt(1 - a * a)
        da = -beta / 2 * a
        return a, zero, b, da, zero, -a * da / b
    if name == "VE":
        r = 50.0 / 0.01
        b = 0.01 * r**t
        return torch.ones_like(t), zero, b, zero, zero, b * math.log(r)
    if name == "OUVE":  # gamma = 1, sigma_min 0.01, sigma_max 0.3
        r = 0.3 / 0.01
        a = torch.exp(-t)
        v = 0.01**2 * (r ** (2 * t) - torch.exp(-2 * t))
        dv = 0.01**2 * (2 * math.log(r) * r ** (2 * t) + 2 * torch.exp(-2 * t))
        return a, 1 - a, v.sqrt(), -a, a, dv / (2 * v.sqrt())
    if name == "RF":
        return 1 - t, zero, t, -torch.ones_like(t), zero, torch.ones_like(t)
    raise KeyError(name)
