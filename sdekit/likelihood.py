"""Log-likelihood of data under the probability-flow ODE (Song et al. 2021, Sec. 4.3 and App. D.2).

For the probability-flow ODE ``dx/dt = f~(x, t) = a(t) x + c(t) y - g(t)^2 / 2 * score(x, t)``
of a :class:`~sdekit.LinearSDE`, the instantaneous change of variables (Chen et al. 2018) gives

    log p_{t_eps}(x(t_eps)) = log p_T(x(T)) + int_{t_eps}^{T} div f~(x(t), t) dt,

    div f~ = d a(t) - g(t)^2 / 2 * tr(d score / d x),

``d`` the number of elements per sample.  The data ``x0`` is placed at ``t_eps`` (score_sde's
convention: it integrates from ``eps = 1e-5`` to ``T``), the pair ``(x, delta_logp)`` is integrated
forward with :class:`~sdekit.solvers.adaptive.DormandPrince`, and ``p_T`` is the SDE's prior, the one
its samplers draw from: ``N(prior_mean(y), v(T) I)``.  (score_sde's VP prior is ``N(0, I)``, where
sdekit's has ``v(T) = 1 - exp(-int beta)``; its VE prior ``N(0, sigma_max^2 I)`` is sdekit's.)

The trace ``tr(d score / d x)`` is exact (``d`` vector-Jacobian products per evaluation: small ``d``)
or the Hutchinson-Skilling estimate ``eps^T (d score / d x) eps`` with one probe ``eps`` per sample,
fixed for the whole solve (Gaussian or Rademacher, drawn from sdekit's counter-based normals).  The
linear part ``d a(t)`` is always exact, so a Gaussian probe's estimate has less variance than
score_sde's ``eps^T (d f~ / d x) eps``; with a Rademacher probe (``|eps_i| = 1``) they are equal.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ._checks import check_bool, check_conditioning, check_float_batch, check_int, check_like, check_t_eps
from .kernels.rng import philox_normal_like
from .solvers.adaptive import DormandPrince, probability_flow_drift
from .solvers.base import check_sde, with_drawn_seed
from .solvers.options import RunOptions

__all__ = ["log_likelihood", "bits_per_dim", "prior_log_prob"]

# The counter-based generator's step word the Hutchinson probe is drawn from.
PROBE_STEP = 0


def prior_log_prob(sde, x_T: torch.Tensor, y=None) -> torch.Tensor:
    """Per-sample ``log N(x_T; prior_mean(y), v(T) I)`` in nats (score_sde's ``sde.prior_logp``)::

        -d/2 log(2 pi v(T)) - ||x_T - prior_mean(y)||^2 / (2 v(T))
    """
    check_float_batch("x_T", x_T)
    check_conditioning(y, x_T, "x_T", has_y_drift=sde.has_y_drift)
    var = float(sde.marginal_var(sde.T))
    d = x_T[0].numel()
    r = (x_T - sde.prior_mean(y)).flatten(1)
    return -0.5 * d * math.log(2.0 * math.pi * var) - r.square().sum(dim=1) / (2.0 * var)


def _probe(x0: torch.Tensor, seed, probe) -> torch.Tensor:
    if isinstance(probe, torch.Tensor):
        check_like("probe", probe, x0, "x0")
        return probe
    if probe not in ("gaussian", "rademacher"):
        raise ValueError(f"probe must be 'gaussian', 'rademacher' or a tensor shaped like x0, got {probe!r}")
    z = philox_normal_like(x0, with_drawn_seed(RunOptions(seed=seed)).seed, PROBE_STEP)
    return z if probe == "gaussian" else torch.where(z >= 0, 1.0, -1.0).to(x0.dtype)


def _score_trace(score_fn: Callable, x: torch.Tensor, t: torch.Tensor, probe: torch.Tensor | None):
    """``(score, tr(d score / d x))`` per sample: exact (``probe=None``) or ``probe^T J probe``."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        score = score_fn(xg, t)
        if not isinstance(score, torch.Tensor) or score.shape != x.shape:
            raise ValueError(f"score_fn must return a tensor of shape {tuple(x.shape)}, "
                             f"got {getattr(score, 'shape', type(score).__name__)}")
        if probe is not None:
            (vjp,) = torch.autograd.grad(score, xg, probe)
            return score.detach(), (vjp * probe).flatten(1).sum(dim=1)
        flat = score.flatten(1)
        d = flat.shape[1]
        trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(d):
            (row,) = torch.autograd.grad(flat[:, i].sum(), xg, retain_graph=i + 1 < d)
            trace += row.flatten(1)[:, i]
        return score.detach(), trace


def log_likelihood(sde, score_fn: Callable, x0: torch.Tensor, y=None, *, divergence: str = "hutchinson",
                   rtol: float = 1e-5, atol: float = 1e-5, seed: int | None = None, probe="rademacher",
                   t_eps: float | None = None, norm: str = "sample", return_stats: bool = False):
    r"""Per-sample ``log p(x0)`` in nats under the probability-flow ODE (score_sde's ``likelihood_fn``).

    ``log p = prior_log_prob(x(T)) + int_{t_eps}^T div f~ dt`` (module docstring), solved with
    Dormand-Prince 5(4) at ``rtol``/``atol`` (score_sde's defaults ``1e-5``).  For bits per dimension
    use :func:`bits_per_dim`.  No gradient flows to ``score_fn``'s parameters (as in score_sde).

    Args:
        sde: a :class:`~sdekit.LinearSDE`.
        score_fn: ``score_fn(x, t)`` with ``t`` of shape ``(B,)`` (``y`` closed over, as for the
            samplers); differentiable in ``x``.
        x0: data ``(B, ...)``, float32 or float64, placed at time ``t_eps``.
        y: conditioning tensor, required when the drift depends on ``y``.
        divergence: ``"exact"`` (``d`` autograd passes per evaluation) or ``"hutchinson"``.
        seed: key of the Hutchinson probe (``None``: drawn from torch's global generator).
        probe: ``"rademacher"`` (score_sde's default), ``"gaussian"``, or a tensor shaped like ``x0``
            (a probe of your own: the same one across calls, or one drawn as another code draws it).
        t_eps: start time of the flow (default ``sde.t_eps``; score_sde's likelihood uses ``1e-5``).
        norm: the solver's error norm, ``"sample"`` or ``"batch"`` (see ``DormandPrince``).
        return_stats: also return ``(x_T, nfe)``: the latent code and the evaluation count.
    """
    check_sde(sde)
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
    check_float_batch("x0", x0)
    check_conditioning(y, x0, "x0", has_y_drift=sde.has_y_drift)
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
    t_eps = check_t_eps(sde.t_eps if t_eps is None else t_eps, sde.T)
    return_stats = check_bool("return_stats", return_stats)
    solver = DormandPrince(rtol, atol, norm=norm)
    eps = _probe(x0, seed, probe) if divergence == "hutchinson" else None
    y_arg = y if (y is not None and sde.has_y_drift) else None
    drift = probability_flow_drift(sde, score_fn, y_arg)
    d = x0[0].numel()

    def f(t: float, state):
        x, _ = state
        a, _, g2 = drift.coefficients(t)
        score, trace = _score_trace(score_fn, x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device), eps)
        return drift(t, x, score), d * a - 0.5 * g2 * trace

    start = (x0.detach(), torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device))
    with torch.no_grad():
        sol = solver.solve(f, t_eps, sde.T, start)
    x_T, delta_logp = sol.y
    logp = prior_log_prob(sde, x_T, y_arg) + delta_logp
    return (logp, x_T, sol.nfe) if return_stats else logp


def bits_per_dim(log_p: torch.Tensor, dims: int, *, centered: bool = False) -> torch.Tensor:
    r"""Bits per dimension of 8-bit data from ``log p`` in nats, as score_sde's ``likelihood_fn`` reports it::

        bpd = -log_p / (d log 2) + offset,     offset = 7 - inverse_scaler(-1) = 8, or 7 if centered

    ``log_p`` is the density of uniformly dequantised data ``(k + u) / 256`` (``k`` in ``0..255``,
    ``u ~ U(0, 1)``: score_sde's ``uniform_dequantization``), scaled to ``[0, 1]`` or, with
    ``centered``, to ``[-1, 1]``; the offset turns a density on that scale into a probability of the
    integer pixels: ``log2 256 = 8`` bits per dimension, one fewer for the doubled range.

    Args:
        log_p: per-sample ``log p(x0)`` in nats (:func:`log_likelihood`).
        dims: elements per sample (``x0[0].numel()``).
        centered: data scaled to ``[-1, 1]`` (score_sde's ``config.data.centered``).
    """
    if not isinstance(log_p, torch.Tensor) or not log_p.is_floating_point():
        raise TypeError("log_p must be a floating-point tensor")
    dims = check_int("dims", dims, min=1)
    offset = 7.0 if check_bool("centered", centered) else 8.0
    return -log_p / (dims * math.log(2.0)) + offset
