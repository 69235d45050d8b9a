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
"""
from __future__ import annotations

import numbers
from typing import Callable

import torch

from ._checks import check_generator

__all__ = ["denoising_score_matching", "dirac_loss", "incremental_reconstruction_loss"]


def denoising_score_matching(sde, score_fn: Callable, x0: torch.Tensor, y: torch.Tensor | None = None,
                             t_eps: float | None = None, generator: torch.Generator | None = None,
                             reduction: str = "mean") -> torch.Tensor:
    r"""Denoising score-matching loss with ``lambda(t) = std(t)^2`` (noise-prediction form).

    Per sample ``i`` (DriftRec eq. 6, score_sde eq. 7)::

        t_i ~ U(t_eps, T),   z_i ~ N(0, I),   x_i = mx(t_i) x0_i + my(t_i) y_i + std(t_i) z_i,
        l_i = || std(t_i) score_fn(x_i, t_i) + z_i ||^2 / n          (n = x0[i].numel())

    and the loss is ``mean_i l_i`` (``reduction="mean"``) or the vector ``l``
    (``reduction="none"``).  This equals ``std^2 ||score - (-z/std)||^2 / n``: the weighting is
    ``lambda(t) = std(t)^2``.  At the exact score of a Gaussian ``x0 ~ N(mu, s^2)`` per element
    its expectation given ``t`` is ``mx^2 s^2 / (mx^2 s^2 + std^2)`` per element (see
    ``tests/test_losses.py``): the loss does not go to 0, and only differences between
    models mean anything.  The mean over elements is score_sde's ``reduce_mean=True``;
    sgmse sums over elements and halves (``n / 2`` times this).

    Args:
        sde: a :class:`~sdekit.LinearSDE` (``T``, ``t_eps``, ``marginal_prob``).
        score_fn: ``score_fn(x_t, t)``, or ``score_fn(x_t, t, y)`` when ``y`` is given
            (sgmse's ``ScoreModel(x, t, y)`` order); ``t`` has shape ``(B,)`` and the
            dtype of ``x0``; returns a tensor shaped like ``x0``.
        x0: clean data, ``(B, ...)``, float32 or float64.
        y: conditioning tensor shaped like ``x0`` (the corrupted image in DriftRec);
            required when the SDE's drift depends on ``y``.
        t_eps: lower end of the time range (default ``sde.t_eps``).
        generator: ``torch.Generator`` on ``x0``'s device for ``t`` and ``z``.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (shape ``(B,)``).

    Gradients flow into ``score_fn``'s parameters; ``x0`` and ``y`` are data.

    A non-finite loss is an error, not a NaN to train on: a ValueError names the cause (``x0``
    or ``y`` with non-finite entries, or ``score_fn`` returning NaN/inf).  The check is one
    host-device sync per call, on the ``(B,)`` per-sample losses.
    """
    if not hasattr(sde, "sample_marginal") or not hasattr(sde, "has_y_drift"):
        raise TypeError(f"sde must be a LinearSDE, got {type(sde).__name__}")
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
    if not isinstance(x0, torch.Tensor) or x0.dtype not in (torch.float32, torch.float64):
        raise TypeError("x0 must be a float32 or float64 tensor")
    if x0.dim() < 1 or x0.shape[0] < 1 or x0[0].numel() < 1:
        raise ValueError(f"x0 must have a non-empty leading batch dimension, got shape {tuple(x0.shape)}")
    if y is None and sde.has_y_drift:
        raise ValueError("this SDE's drift depends on y: pass y (the conditioning tensor)")
    check_generator("generator", generator, x0.device)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    t_eps = sde.t_eps if t_eps is None else t_eps
    if isinstance(t_eps, bool) or not isinstance(t_eps, numbers.Real) or not 0.0 <= float(t_eps) < sde.T:
        raise ValueError(f"t_eps must be a number in [0, T) = [0, {sde.T}), got {t_eps!r}")

    B = x0.shape[0]
    u = torch.rand(B, generator=generator, dtype=x0.dtype, device=x0.device)
    t = float(t_eps) + (sde.T - float(t_eps)) * u
    x_t, z = sde.sample_marginal(x0, y, t, generator=generator)
    std = sde._per_sample(sde.marginal_std(t), x0)
    score = score_fn(x_t, t) if y is None else score_fn(x_t, t, y)
    if not isinstance(score, torch.Tensor) or score.shape != x0.shape:
        raise ValueError(f"score_fn must return a tensor of shape {tuple(x0.shape)}, "
                         f"got {getattr(score, 'shape', type(score).__name__)}")
    per_sample = (std * score + z).pow(2).flatten(1).mean(dim=1)
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
