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

from .sde import batch

__all__ = ["denoising_score_matching"]


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
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
    if not isinstance(x0, torch.Tensor) or x0.dtype not in (torch.float32, torch.float64):
        raise TypeError("x0 must be a float32 or float64 tensor")
    if x0.dim() < 1 or x0.shape[0] < 1 or x0[0].numel() < 1:
        raise ValueError(f"x0 must have a non-empty leading batch dimension, got shape {tuple(x0.shape)}")
    if y is None and sde.has_y_drift:
        raise ValueError("this SDE's drift depends on y: pass y (the conditioning tensor)")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    t_eps = sde.t_eps if t_eps is None else t_eps
    if isinstance(t_eps, bool) or not isinstance(t_eps, numbers.Real) or not 0.0 <= float(t_eps) < sde.T:
        raise ValueError(f"t_eps must be a number in [0, T) = [0, {sde.T}), got {t_eps!r}")

    B = x0.shape[0]
    u = torch.rand(B, generator=generator, dtype=x0.dtype, device=x0.device)
    t = float(t_eps) + (sde.T - float(t_eps)) * u
    x_t, z = sde.sample_marginal(x0, y, t, generator=generator)
    std = batch.per_sample(sde.marginal_std(t), x0)
    score = score_fn(x_t, t) if y is None else score_fn(x_t, t, y)
    if not isinstance(score, torch.Tensor) or score.shape != x0.shape:
        raise ValueError(f"score_fn must return a tensor of shape {tuple(x0.shape)}, "
                         f"got {getattr(score, 'shape', type(score).__name__)}")
    per_sample = (std * score + z).pow(2).flatten(1).mean(dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample
