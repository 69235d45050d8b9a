"""Training objectives for score models of linear SDEs.

``denoising_score_matching`` is the denoising score-matching objective of score_sde
(Song et al. 2021, eq. 7) in the form DriftRec trains with (Welker, Chapman, Gerkmann 2022,
eq. 6): for the marginal ``x_t = mx(t) x0 + my(t) y + std(t) z`` of a :class:`~sdekit.LinearSDE`,

    L = E_{t ~ U(t_eps, T)} E_{x0, z ~ N(0, I)} (1/n) || std(t) score(x_t, t) + z ||^2,

``n`` the number of elements per sample.  The score of ``N(x_t; mean, std^2 I)`` is
``-z / std``, so this is ``lambda(t) ||score - grad log p(x_t | x0)||^2 / n`` with the
weighting ``lambda(t) = std(t)^2`` (score_sde's likelihood-free choice; the
noise-prediction form of DDPM).  Its minimiser over all functions is the score of
the marginal ``p_t`` (given ``y``), because the target's conditional mean is it.
Networks that output noise, data or velocity train with ``prediction=`` (the same minimiser,
each output's standard weighting; see the function).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable

import torch

from ._checks import check_generator
from .parameterisation import MarginalCoefficients, check_prediction
from .sde import batch

_DATA_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)

__all__ = ["denoising_score_matching", "likelihood_time_weight", "sample_likelihood_times", "dirac_loss",
           "incremental_reconstruction_loss"]


def denoising_score_matching(sde, score_fn: Callable, x0: torch.Tensor, y: torch.Tensor | None = None,
                             t_eps: float | None = None, generator: torch.Generator | None = None,
                             reduction: str = "mean", *, likelihood_weighting: bool = False, reduce_mean: bool = True,
                             importance_sampling: bool = False, prediction: str = "score") -> torch.Tensor:
    r"""Denoising score-matching loss; by default ``lambda(t) = std(t)^2`` (noise-prediction form).

    Per sample ``i`` (DriftRec eq. 6, score_sde eq. 7)::

        t_i ~ U(t_eps, T),   z_i ~ N(0, I),   x_i = mx(t_i) x0_i + my(t_i) y_i + std(t_i) z_i,
        l_i = R( (std(t_i) score_fn(x_i, t_i) + z_i)^2 )                      (default)
        l_i = g(t_i)^2 R( (score_fn(x_i, t_i) + z_i / std(t_i))^2 )          (likelihood_weighting)

    with ``R`` the mean over the ``n = x0[i].numel()`` elements (``reduce_mean=True``) or half
    their sum (``reduce_mean=False``: score_sde's ``0.5 * torch.sum``, its training default; sgmse's
    too).  The loss is ``mean_i l_i`` (``reduction="mean"``) or the vector ``l`` (``"none"``).
    ``t`` is drawn first, then ``z`` (score_sde's order), both from ``generator``.  With ``t`` and
    ``z`` given, this is score_sde's ``get_sde_loss_fn`` (``losses.py``) term for term.

    The default equals ``std^2 ||score - (-z/std)||^2 / n``: ``lambda = std^2``.  At the exact score
    of a Gaussian ``x0 ~ N(mu, s^2)`` per element its expectation given ``t`` is
    ``mx^2 s^2 / (mx^2 s^2 + std^2)`` per element (``tests/test_losses.py``): the loss does not go
    to 0, and only differences between models mean anything.

    ``likelihood_weighting`` is ``lambda(t) = g(t)^2``, for which the integrated loss bounds the
    negative log-likelihood (Song, Durkan, Murray & Ermon 2021, Theorem 1).  ``importance_sampling``
    (only with it) draws ``t`` from ``p(t) = g^2 / (std^2 Z)`` instead, which takes the ``g^2 / std^2``
    factor out of the estimator (the same paper's variance reduction; score_flow's ``importance_weighting``)::

        l_i = Z / (T - t_eps) * R( (std(t_i) score_fn(x_i, t_i) + z_i)^2 ),     t_i ~ p

    an unbiased estimator of the uniform-``t`` likelihood-weighted loss (score_flow leaves out the
    constant ``Z / (T - t_eps)``).  See :func:`likelihood_time_weight` for ``Z`` and the sampler.

    Other network outputs (``prediction``, :mod:`sdekit.parameterisation`): ``score_fn`` then returns
    ``"eps"``, ``"x0"``, ``"velocity"`` or ``"v"``, regressed on its own target
    ``T_i = p x0_i + q z_i + r y_i`` with that output's standard weighting, the plain mean square::

        l_i = R( (score_fn(x_i, t_i) - T_i)^2 )           eps: z (DDPM's L_simple, Ho et al. 2020 eq. 14)
                                                         x0: x0;  velocity: a' x0 + m' y + b' z (flow
                                                         matching, Lipman et al. 2023);  v: a z - b x0
                                                         (Salimans & Ho 2022)

    An error ``d`` in the output is an error ``d / kappa`` in the implied score (``kappa`` of
    :func:`sdekit.parameterisation.score_sensitivity`: ``-b``, ``b^2/a``, ``-g^2/2``, ``-b (a^2+b^2)/a``),
    so this is the score loss with ``lambda(t) = kappa^2``: for ``"eps"`` the default above, term
    for term.  Every one has the same minimiser, the output implied by the true score.  With
    ``likelihood_weighting`` the per-sample loss is multiplied by ``g^2 / kappa^2`` (by
    ``Z b^2 / ((T - t_eps) kappa^2)`` with ``importance_sampling``), which makes it the
    likelihood-weighted score loss above exactly.

    Time cutoffs: ``t_eps`` defaults to ``sde.t_eps`` (VE ``1e-5``; VP and sub-VP ``1e-3``; the
    DriftRec family ``0.01``).  score_sde trains with ``eps = 1e-5`` for every SDE (``get_sde_loss_fn``);
    sgmse with ``t_eps = 0.03``; DriftRec with ``0.01``.  Pass the peer's value to reproduce it.

    Args:
        sde: a :class:`~sdekit.LinearSDE` (``T``, ``t_eps``, ``marginal_prob``).
        score_fn: ``score_fn(x_t, t)``, or ``score_fn(x_t, t, y)`` when ``y`` is given
            (sgmse's ``ScoreModel(x, t, y)`` order); ``t`` has shape ``(B,)`` and the
            dtype of ``x0``; returns a tensor shaped like ``x0``.
        x0: clean data, ``(B, ...)``, float32 or float64, or complex64/complex128 (sgmse's
            spectrograms: ``z`` is then complex of unit variance, parts ``N(0, 1/2)`` as sgmse
            draws them, the squares above are ``|.|^2`` and ``t`` is real).
        y: conditioning tensor shaped like ``x0`` (the corrupted image in DriftRec);
            required when the SDE's drift depends on ``y``.
        t_eps: lower end of the time range (default ``sde.t_eps``).
        generator: ``torch.Generator`` on ``x0``'s device for ``t`` and ``z``.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (shape ``(B,)``).
        likelihood_weighting: ``lambda = g^2`` instead of ``std^2``.
        reduce_mean: mean over elements (``True``) or half their sum (``False``).
        importance_sampling: ``t ~ g^2 / std^2`` (needs ``likelihood_weighting``).
        prediction: what ``score_fn`` returns: ``"score"`` (default), ``"eps"``, ``"x0"``,
            ``"velocity"`` or ``"v"`` (see above).

    Gradients flow into ``score_fn``'s parameters; ``x0`` and ``y`` are data.

    A non-finite loss is an error, not a NaN to train on: a ValueError names the cause (``x0``
    or ``y`` with non-finite entries, or ``score_fn`` returning NaN/inf).  The check is one
    host-device sync per call, on the ``(B,)`` per-sample losses.
    """
    if not hasattr(sde, "sample_marginal") or not hasattr(sde, "has_y_drift"):
        raise TypeError(f"sde must be a LinearSDE, got {type(sde).__name__}")
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
    if not isinstance(x0, torch.Tensor) or x0.dtype not in _DATA_DTYPES:
        raise TypeError("x0 must be a float32, float64, complex64 or complex128 tensor")
    if x0.dim() < 1 or x0.shape[0] < 1 or x0[0].numel() < 1:
        raise ValueError(f"x0 must have a non-empty leading batch dimension, got shape {tuple(x0.shape)}")
    if y is None and sde.has_y_drift:
        raise ValueError("this SDE's drift depends on y: pass y (the conditioning tensor)")
    check_generator("generator", generator, x0.device)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    for name, flag in (("likelihood_weighting", likelihood_weighting), ("reduce_mean", reduce_mean),
                       ("importance_sampling", importance_sampling)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    check_prediction("prediction", prediction)
    if importance_sampling and not likelihood_weighting:
        raise ValueError("importance_sampling draws t for the likelihood weighting: "
                         "pass likelihood_weighting=True with it")
    t_eps = sde.t_eps if t_eps is None else t_eps
    if isinstance(t_eps, bool) or not isinstance(t_eps, numbers.Real) or not 0.0 <= float(t_eps) < sde.T:
        raise ValueError(f"t_eps must be a number in [0, T) = [0, {sde.T}), got {t_eps!r}")
    t_eps = float(t_eps)

    B, real = x0.shape[0], x0.real.dtype  # t, std and the weights are real for complex data too
    if importance_sampling:
        t, Z = sample_likelihood_times(sde, B, t_eps, generator=generator, dtype=real, device=x0.device)
    else:
        u = torch.rand(B, generator=generator, dtype=real, device=x0.device)
        t = t_eps + (sde.T - t_eps) * u
    x_t, z = sde.sample_marginal(x0, y, t, generator=generator)
    std = batch.per_sample(sde.marginal_std(t), x0.real)
    score = score_fn(x_t, t) if y is None else score_fn(x_t, t, y)
    if not isinstance(score, torch.Tensor) or score.shape != x0.shape:
        raise ValueError(f"score_fn must return a tensor of shape {tuple(x0.shape)}, "
                         f"got {getattr(score, 'shape', type(score).__name__)}")

    def reduce(err: torch.Tensor) -> torch.Tensor:
        sq = (torch.view_as_real(err).pow(2).sum(-1) if err.is_complex() else err.pow(2)).flatten(1)  # |err|^2
        return sq.mean(dim=1) if reduce_mean else 0.5 * sq.sum(dim=1)

    if prediction != "score":
        coefs = MarginalCoefficients(sde, t)
        p, q, r = (batch.per_sample(c, x0.real) for c in coefs.pqr(prediction))
        target = p * x0 + q * z + (r * y if sde.has_y_drift else 0.0)
        per_sample = reduce(score - target)
        if likelihood_weighting:
            kappa2 = coefs.score_sensitivity(prediction) ** 2
            weight = coefs.b**2 * (Z / (sde.T - t_eps)) if importance_sampling else coefs.g2
            per_sample = per_sample * (weight / kappa2).to(real)
    elif likelihood_weighting and not importance_sampling:
        g2 = sde.coefficients(t)[2].to(real) ** 2
        per_sample = reduce(score + z / std) * g2
    else:
        per_sample = reduce(std * score + z)
        if importance_sampling:
            per_sample = per_sample * (Z / (sde.T - t_eps))
    if not bool(torch.isfinite(per_sample).all()):
        _raise_non_finite(x0, y, score)
    return per_sample.mean() if reduction == "mean" else per_sample


def _raise_non_finite(x0: torch.Tensor, y, score: torch.Tensor) -> None:
    """Name what made the loss non-finite: the data, or the model."""
    for name, v in (("x0", x0), ("y", y)):
        if v is not None and not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} has non-finite entries (NaN or inf); the loss would be NaN")
    if not bool(torch.isfinite(score).all()):
        raise ValueError("score_fn returned non-finite values (NaN or inf); the loss would be NaN")
    raise ValueError("the loss overflowed (score_fn's values are too large for the dtype)")


def likelihood_time_weight(sde, t, t_eps: float) -> torch.Tensor:
    r"""``W(t) = int_{t_eps}^t g(s)^2 / std(s)^2 ds``, the unnormalised CDF of the importance density.

    From the variance ODE ``v' = 2 a v + g^2``, ``g^2 / v = (log v)' - 2 a = (log(v / mx^2))'``, so

        W(t) = log r(t) - log r(t_eps),      r = v / mx^2   (the noise-to-signal ratio),

    for every :class:`~sdekit.LinearSDE` (score_flow writes it out for VP as
    ``likelihood_importance_cum_weight``; for VE it is ``2 log(sigma_max/sigma_min) (t - t_eps)``:
    uniform).  ``Z = W(T)``.  Float64, shaped like ``t``.
    """
    return _log_noise_to_signal(sde, t) - _log_noise_to_signal(sde, t_eps)


def _log_noise_to_signal(sde, t) -> torch.Tensor:
    t64 = torch.as_tensor(t, dtype=torch.float64)
    return torch.log(sde.marginal_var(t64, check=False)) - 2.0 * torch.log(sde.mean_coeffs(t64, check=False)[0])


# Bisection halvings: (T - t_eps) / 2^56 is below float64 resolution on [0, T].
_BISECTIONS = 56


def sample_likelihood_times(sde, n: int, t_eps: float, generator: torch.Generator | None = None,
                            dtype: torch.dtype = torch.float32, device=None) -> tuple[torch.Tensor, float]:
    """``n`` times from ``p(t) = g(t)^2 / (std(t)^2 Z)`` on ``[t_eps, T]``, and ``Z``.

    ``u ~ U(0, 1)`` from ``generator`` (in ``dtype``), then ``t = W^{-1}(u Z)`` by bisection on the
    monotone ``W`` of :func:`likelihood_time_weight` (score_flow's
    ``sample_importance_weighted_time_for_likelihood``).  Needs ``std(t_eps) > 0``.
    """
    log_r0 = float(_log_noise_to_signal(sde, t_eps))
    if not math.isfinite(log_r0):
        raise ValueError(f"importance sampling needs std(t_eps) > 0; t_eps={t_eps} gives std 0 for this SDE")
    Z = float(_log_noise_to_signal(sde, sde.T)) - log_r0
    u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    target = log_r0 + u.to(torch.float64) * Z
    lo = torch.full((n,), t_eps, dtype=torch.float64, device=u.device)
    hi = torch.full((n,), float(sde.T), dtype=torch.float64, device=u.device)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        below = _log_noise_to_signal(sde, mid) <= target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (0.5 * (lo + hi)).to(dtype), Z


# ------------------------------------------------------------------------------------ Dirac
DIRAC_WEIGHTINGS = ("none", "sigma", "time")


def _dirac_objective(process, x0_predictor, x0, look_ahead, weighting, steps, generator, reduction):
    """Shared body of :func:`dirac_loss` and :func:`incremental_reconstruction_loss`."""
    if not callable(x0_predictor):
        raise TypeError(f"x0_predictor must be callable, got {type(x0_predictor).__name__}")
    if not hasattr(process, "family") or not hasattr(process, "sample"):
        raise TypeError(f"process must be a StochasticDegradation, got {type(process).__name__}")
    if not isinstance(x0, torch.Tensor) or x0.dtype not in (torch.float32, torch.float64):
        raise TypeError("x0 must be a float32 or float64 tensor")
    if x0.dim() < 2 or x0.shape[0] < 1 or x0[0].numel() < 1:
        raise ValueError(f"x0 must be a non-empty batch of images, got shape {tuple(x0.shape)}")
    if isinstance(look_ahead, bool) or not isinstance(look_ahead, numbers.Real) or not 0.0 <= look_ahead <= 1.0:
        raise ValueError(f"look_ahead must be a number in [0, 1], got {look_ahead!r}")
    if weighting not in DIRAC_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {DIRAC_WEIGHTINGS}, got {weighting!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1):
        raise ValueError(f"steps must be None or an int >= 1, got {steps!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")

    B = x0.shape[0]
    u = torch.rand(B, generator=generator, dtype=torch.float64, device=x0.device)
    t = (1.0 - u) if steps is None else torch.floor(u * steps).add_(1.0).div_(steps).clamp_(max=1.0)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    y_t = process.sample(x0, t.to(x0.dtype), noise=z)
    x0_hat = x0_predictor(y_t, t.to(x0.dtype))
    if not isinstance(x0_hat, torch.Tensor) or x0_hat.shape != x0.shape:
        raise ValueError(f"x0_predictor must return a tensor of shape {tuple(x0.shape)}, "
                         f"got {getattr(x0_hat, 'shape', type(x0_hat).__name__)}")
    tau = (t - float(look_ahead)).clamp_(min=0.0)
    err = process.family.apply(x0_hat, tau) - process.family.apply(x0, tau)
    per_sample = err.pow(2).flatten(1).mean(dim=1)
    if weighting == "sigma":
        per_sample = per_sample / process.sigma_of(t).to(x0.dtype).pow(2)
    elif weighting == "time":
        per_sample = per_sample * t.pow(-2.0).clamp(1.0, 100.0).to(x0.dtype)
    return per_sample.mean() if reduction == "mean" else per_sample


def dirac_loss(process, x0_predictor: Callable, x0: torch.Tensor, weighting: str = "none", steps: int | None = None,
               generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Dirac's training loss (Fabian et al. 2023, eq. 12): the prediction's error seen through ``A_t``.

    Per sample ``i``, for a :class:`~sdekit.inverse.StochasticDegradation` ``process``::

        t_i ~ U(0, 1],   z_i ~ N(0, I),   y_i = A_{t_i} x0_i + sigma_{t_i} z_i,
        l_i = w(t_i) || A_{t_i} x0_predictor(y_i, t_i) - A_{t_i} x0_i ||^2 / n      (n = x0[i].numel())

    with the weighting ``w``: ``"none"`` (1), ``"sigma"`` (``1 / sigma_t^2``, the authors' code with
    noise conditioning) or ``"time"`` (``clip(1 / t^2, 1, 100)``, their time conditioning).  The loss is
    ``mean_i l_i`` (``reduction="mean"``) or ``l`` (``"none"``); the authors' code sums over elements
    (``n`` times this).  ``steps``: draw ``t`` from the grid ``{1/steps, ..., 1}`` of a
    :class:`~sdekit.inverse.Dirac` sampler instead (its operators are then built once and cached).
    ``t`` (``(B,)``, float64, then ``z``) come from ``generator`` as in
    :func:`denoising_score_matching`; ``x0_predictor(y_t, t)`` gets ``t`` in ``x0``'s dtype.
    """
    return _dirac_objective(process, x0_predictor, x0, 0.0, weighting, steps, generator, reduction)


def incremental_reconstruction_loss(process, x0_predictor: Callable, x0: torch.Tensor, look_ahead: float,
                                    weighting: str = "none", steps: int | None = None,
                                    generator: torch.Generator | None = None, reduction: str = "mean") -> torch.Tensor:
    r"""Dirac's incremental reconstruction loss (Fabian et al. 2023, eq. 14).

    As :func:`dirac_loss`, but the error is seen through the slightly milder ``A_tau``::

        tau_i = max(t_i - look_ahead, 0),
        l_i = w(t_i) || A_{tau_i} x0_predictor(y_i, t_i) - A_{tau_i} x0_i ||^2 / n

    (the authors' ``inc_recon_loss`` with ``look_ahead`` their ``dt``; ``look_ahead = 0`` is eq. 12,
    the same draws giving the same number).  Arguments as in :func:`dirac_loss`.
    """
    return _dirac_objective(process, x0_predictor, x0, look_ahead, weighting, steps, generator, reduction)
