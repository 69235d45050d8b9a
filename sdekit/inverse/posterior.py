"""Posterior score = prior score + (weighted) likelihood score, with the QCS-SGM authors' scale rules.

For a reverse diffusion (or annealed Langevin) targeting ``p(x0 | y)`` the score is

    score(x_t, t) = grad log p_t(x_t) + w(x_t, t) grad log p(y | x_t)

with ``w``:

* ``match_prior_norm=None``: ``w = likelihood_scale`` (QCS-SGM, ``mengxiangming/QCS-SGM``,
  ``anneal_Langevin_dynamics_linear_inverse``: ``grad + likelihood_scale * likelihood_grad``);
* ``match_prior_norm="batch"``: ``w = likelihood_scale ||prior|| / ||likelihood||`` with both norms
  over the whole batch, as the QCS-SGM+ code does (``mengxiangming/QCS-SGM-plus``, same function:
  ``likelihood_scale * torch.norm(grad) / torch.norm(likelihood_grad)``, ``w = 1`` when the
  likelihood score is zero);
* ``match_prior_norm="sample"``: the same ratio per sample, so that a sample's update does not
  depend on the rest of the batch.
"""
from __future__ import annotations

import numbers
from typing import Callable

import torch

__all__ = ["posterior_score_fn"]


def posterior_score_fn(prior_score_fn: Callable, likelihood_score_fn: Callable, *, likelihood_scale: float = 1.0,
                       match_prior_norm: str | None = None) -> Callable:
    """``score(x, t) = prior(x, t) + w * likelihood(x, t)`` (module docstring for ``w``).

    ``prior_score_fn``, ``likelihood_score_fn``: callables ``(x, t) -> tensor shaped like x``;
    ``likelihood_scale``: a finite number >= 0; ``match_prior_norm``: ``None``, ``"batch"`` or
    ``"sample"``.
    """
    if not callable(prior_score_fn) or not callable(likelihood_score_fn):
        raise TypeError("prior_score_fn and likelihood_score_fn must be callables (x, t) -> score")
    if isinstance(likelihood_scale, bool) or not isinstance(likelihood_scale, numbers.Real) \
            or not 0 <= float(likelihood_scale) < float("inf"):
        raise ValueError(f"likelihood_scale must be a finite number >= 0, got {likelihood_scale!r}")
    if match_prior_norm not in (None, "batch", "sample"):
        raise ValueError(f"match_prior_norm must be None, 'batch' or 'sample', got {match_prior_norm!r}")
    lam = float(likelihood_scale)

    def score(x: torch.Tensor, t) -> torch.Tensor:
        prior = prior_score_fn(x, t)
        lik = likelihood_score_fn(x, t)
        if match_prior_norm is None:
            return prior + lam * lik
        if match_prior_norm == "batch":
            pn, ln = prior.norm(), lik.norm()
            w = torch.where(ln > 0, lam * pn / torch.where(ln > 0, ln, torch.ones_like(ln)), torch.ones_like(ln))
            return prior + w * lik
        B = x.shape[0]
        pn = prior.reshape(B, -1).norm(dim=1)
        ln = lik.reshape(B, -1).norm(dim=1)
        w = torch.where(ln > 0, lam * pn / torch.where(ln > 0, ln, torch.ones_like(ln)), torch.ones_like(ln))
        return prior + w.reshape(B, *([1] * (x.dim() - 1))) * lik

    return score
