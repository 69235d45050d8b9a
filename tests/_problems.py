"""Test problems shared by several test modules (import from here, never from another test module).

* :func:`shared_vpsde`: one ``VPSDE(0.1, 20)`` (building one derives it with sympy);
* Gaussian data ``x0 ~ N(MU, S0^2)``: its exact score (:func:`gaussian_score`), the exact
  marginal (:func:`gaussian_truth`), a draw from it at ``T`` (:func:`exact_x_T`), and the exact
  output moments of a reverse sampler's chain (:func:`reverse_moments`: with an affine score the
  chain is a linear Gaussian recursion, written here from the sampler's coefficient table);
* :func:`fuzz_examples`: hypothesis settings for the fuzz suites (more examples under ``thorough``).
"""
import functools
import math

import torch
from hypothesis import settings

F64 = torch.float64
MU, S0 = 0.5, 0.3


def fuzz_examples(n: int) -> settings:
    """``n`` hypothesis examples without a deadline, or the loaded profile's count where larger
    (``SDEKIT_HYPOTHESIS_PROFILE=thorough``: 300): an explicit ``max_examples`` would override it."""
    return settings(max_examples=max(n, settings.default.max_examples), deadline=None)


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
