"""The reverse-time SDE and the probability-flow ODE of a forward SDE.

For a forward SDE ``dx = f(x, t) dt + g(t) dw`` with score ``s(x, t) = grad log p_t(x)``,

    dx = [f(x, t) - g(t)^2 s(x, t)] dt + g(t) dw_bar      (Anderson 1982),
    dx = [f(x, t) - g(t)^2 s(x, t) / 2] dt                (probability flow),

both run from ``T`` down to ``0``.  ``score_fn(x, t)`` takes ``t`` of shape ``(batch,)``,
as in score_sde.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .batch import per_sample


class ReverseSDE:
    """Reverse-time SDE (or probability-flow ODE) of ``forward``; score_sde's ``sde.reverse()``."""

    def __init__(self, forward, score_fn: Callable, probability_flow: bool = False):
        if not callable(score_fn):
            raise TypeError("score_fn must be callable as score_fn(x, t)")
        self.forward = forward
        self.score_fn = score_fn
        self.probability_flow = bool(probability_flow)
        self.T = forward.T

    def sde(self, x: torch.Tensor, y, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(drift, diffusion)`` of the reverse-time equation (``diffusion = 0`` for the ODE)."""
        drift, g = self.forward.sde(x, y, t)
        score = self.score_fn(x, t)
        if not isinstance(score, torch.Tensor) or score.shape != x.shape:
            raise ValueError(f"score_fn must return a tensor of shape {tuple(x.shape)}, "
                             f"got {getattr(score, 'shape', type(score).__name__)}")
        weight = 0.5 if self.probability_flow else 1.0
        drift = drift - per_sample(g**2, x) * score * weight
        return drift, torch.zeros_like(g) if self.probability_flow else g

    def discretize(self, x: torch.Tensor, y, t, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Increments ``(drift dt, diffusion sqrt(|dt|))`` for a step of length ``dt``."""
        drift, diffusion = self.sde(x, y, t)
        return drift * dt, diffusion * math.sqrt(abs(dt))
