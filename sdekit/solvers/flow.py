"""Euler and Heun steps of the velocity ODE ``dx = v dt`` (probability flow, flow matching), fused."""
from __future__ import annotations

import torch

from .base import ReverseSampler
from .plan import Plan, coefficient_table
from .registry import register_sampler


def velocity_coefficients(sde, t):
    """``(alpha, gamma, sigma)`` with ``v(x, t) = alpha x + gamma y + sigma score(x, t)``: the
    probability-flow drift ``f x + c y - g^2 score / 2`` (Song et al. 2021, eq. 13), which is also
    the expected velocity ``E[a' x0 + m' y + b' z | x_t]`` of a flow model (:mod:`sdekit.parameterisation`)."""
    f, c, g = sde.coefficients(t)
    return f, c, -0.5 * g * g


def euler_coefficients(sde, t, s):
    """``(A, C, S, N)`` of the Euler step ``x <- x - h v(x, t)`` from ``t`` to ``s = t - h``."""
    alpha, gamma, sigma = velocity_coefficients(sde, t)
    h = t - s
    return 1.0 - alpha * h, -gamma * h, -sigma * h, 0.0 * h


@register_sampler("flow")
class FlowODE(ReverseSampler):
    r"""The velocity ODE ``dx = v(x, t) dt`` from ``T`` to ``t_eps``, ``v = f x + c y - g^2 score / 2``.

    A velocity network ``v(x, t)`` enters as a score through
    ``sdekit.parameterisation.as_score_fn(v, sde, "velocity")``; the step turns it back into
    ``v`` inside its affine coefficients (the two maps are inverse to rounding), so every update
    stays one fused kernel.  With ``h = t - s``:

    ``method="euler"`` (order 1; DMPS's Algorithm 2 step, Meng & Kabashima 2022)::

        x <- x - h v(x, t) = (1 - f_t h) x - c_t h y + (g_t^2 h / 2) score(x, t)

    ``method="heun"`` (explicit trapezoidal rule, order 2; EDM's Algorithm 1 without churn,
    Karras et al. 2022), two score evaluations per step::

        x~ <- x - h v(x, t)
        x  <- x - h (v(x, t) + v(x~, s)) / 2
            = x / 2 + (1 - f_s h) x~ / 2 - c_s h y / 2 + (g_s^2 h / 4) score(x~, s)

    (the second line eliminates ``v(x, t) = (x - x~) / h``), the plan's second stage
    (:mod:`sdekit.solvers.plan`).  Deterministic: a run is a function of ``x_T``.
    """

    noise = False

    def __init__(self, sde, steps: int = 100, t_eps: float | None = None, method: str = "euler"):
        super().__init__(sde, steps, t_eps)
        if method not in ("euler", "heun"):
            raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
        self.method = method
        self.strong_order = self.weak_order = 1.0 if method == "euler" else 2.0

    def step_coefficients(self, t, s):
        """``(A, C, S, N)`` of the Euler step (Heun's first stage)."""
        return euler_coefficients(self.sde, t, s)

    def second_stage_coefficients(self, t, s):
        """``(A2, B2, C2, S2)`` of Heun's second stage (class docstring)."""
        alpha, gamma, sigma = velocity_coefficients(self.sde, s)
        h = t - s
        return 0.5 + 0.0 * h, 0.5 * (1.0 - alpha * h), -0.5 * gamma * h, -0.5 * sigma * h

    def plan(self) -> Plan:
        plan = super().plan()
        if self.method == "euler":
            return plan
        t, s = plan.times[:-1], plan.times[1:]
        return Plan(plan.times, plan.table, noise=False, second_stage=coefficient_table(
            *self.second_stage_coefficients(t, s)), name=f"{type(self).__name__} (heun)")

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, method={self.method!r})"


@register_sampler("flow_heun")
class FlowHeun(FlowODE):
    """:class:`FlowODE` with ``method="heun"`` (the name ``"flow_heun"`` for ``DMPS(solver=...)``)."""

    def __init__(self, sde, steps: int = 100, t_eps: float | None = None):
        super().__init__(sde, steps, t_eps, method="heun")


__all__ = ["FlowHeun", "FlowODE", "euler_coefficients", "velocity_coefficients"]
