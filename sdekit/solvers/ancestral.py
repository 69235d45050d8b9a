"""DDPM's ancestral sampler, for any linear SDE without ``y``-drift."""
from __future__ import annotations

from .base import ReverseSampler, sqrt_clamped
from .registry import register_sampler


@register_sampler("ddpm")
class AncestralDDPM(ReverseSampler):
    r"""DDPM's ancestral step (Ho et al. 2020, Algorithm 2, ``sigma_t^2 = beta_t``) for a linear
    SDE without ``y``-drift, written through its exact transition ``x_t = phi x_s + sqrt(var) z``::

        x_s = (x_t + var score(x_t, t)) / phi + sqrt(var) z

    For VP, ``phi = sqrt(alpha_t)`` and ``var = beta_t = 1 - alpha_t``; for VE (``phi = 1``,
    ``var = sigma_t^2 - sigma_s^2``) it is SMLD's reverse-diffusion rule.  First order.
    """

    strong_order = 1.0
    weak_order = 1.0

    def __init__(self, sde, steps: int = 1000, t_eps: float | None = None):
        super().__init__(sde, steps, t_eps)
        if sde.has_y_drift:
            raise ValueError("AncestralDDPM needs an SDE without y-drift")

    def step_coefficients(self, t, s):
        phi, psi, var = self.sde.transition(s, t)
        return 1.0 / phi, -psi / phi, var / phi, sqrt_clamped(var)
