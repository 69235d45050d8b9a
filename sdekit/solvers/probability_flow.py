"""Probability-flow ODE sampler (Song et al. 2021, eq. 13): deterministic, one fused kernel per step."""
from __future__ import annotations

from .base import ReverseSampler
from .flow import euler_coefficients
from .registry import register_sampler


@register_sampler("probability_flow")
class ProbabilityFlow(ReverseSampler):
    r"""The probability-flow ODE ``dx = [a x + c y - g^2 score / 2] dt`` from ``T`` to ``t_eps``, order 1.

    ``method="euler"``::

        x <- (1 - a(t) h) x - c(t) h y + g(t)^2 h score(x, t) / 2

    ``method="exponential"`` solves the linear part exactly with the score frozen in its
    noise form (DDIM, Song et al. 2021a; the first-order exponential integrator of Zhang &
    Chen 2023 and Lu et al. 2022): with Tweedie's ``x0 = (x - my_t y + v_t score) / mx_t``
    and ``eps = -sqrt(v_t) score``::

        x <- mx_s x0 + my_s y + sqrt(v_s) eps
           = r x + (my_s - r my_t) y + (r v_t - sqrt(v_s v_t)) score,     r = mx_s / mx_t
    """

    strong_order = 1.0
    weak_order = 1.0
    noise = False

    def __init__(self, sde, steps: int = 100, t_eps: float | None = None, method: str = "euler"):
        super().__init__(sde, steps, t_eps)
        if method not in ("euler", "exponential"):
            raise ValueError(f"method must be 'euler' or 'exponential', got {method!r}")
        self.method = method

    def step_coefficients(self, t, s):
        if self.method == "euler":
            return euler_coefficients(self.sde, t, s)
        mx_t, my_t = self.sde.mean_coeffs(t)
        mx_s, my_s = self.sde.mean_coeffs(s)
        v_t, v_s = self.sde.marginal_var(t), self.sde.marginal_var(s)
        r = mx_s / mx_t
        return r, my_s - r * my_t, r * v_t - (v_s * v_t).sqrt(), 0.0 * r
