"""Annealed Langevin dynamics over a VE noise ladder (NCSNv2; Song & Ermon 2020, Algorithm 1).

For noise levels ``sigma_1 > ... > sigma_L`` and, at each level ``i``, ``n_steps_each`` steps

    alpha_i = step_lr (sigma_i / sigma_L)^2
    x <- x + alpha_i score(x, sigma_i) + sqrt(2 alpha_i) z,         z ~ N(0, I)

followed (``denoise=True``) by the final denoising step ``x <- x + sigma_L^2 score(x, sigma_L)``
(Tweedie's formula; NCSNv2's ``denoise`` option).  This is ``anneal_Langevin_dynamics`` of
``ermongroup/ncsnv2`` (``models/__init__.py``), the sampler both QCS-SGM papers run.

Here the ladder is a variance-exploding ``LinearSDE``'s marginal std at ``n_levels`` equally
spaced times from ``sde.T`` down to ``t_min`` (for ``VESDE`` with ``t_min = 0`` this is NCSNv2's
geometric ladder from ``sigma_max`` to ``sigma_min``), and ``score_fn(x, t)`` is called with the
level's time, per sample, as every sdekit sampler does.  Each step is one fused
``affine_step`` (``A = 1``, ``S = alpha_i``, ``N = sqrt(2 alpha_i)``); the normals of step ``s``
of level ``i`` are sdekit's counter-based normals of ``(seed, i * n_steps_each + s)``, and the
prior draw ``x_T = sigma_1 z`` uses the reserved word ``2**64 - 1`` (as the other samplers).
"""
from __future__ import annotations

import torch

from .._checks import check_bool, check_int, check_real
from .base import ReverseSampler, check_sde
from .options import RunOptions
from .plan import Plan, coefficient_table

__all__ = ["AnnealedLangevin"]


class AnnealedLangevin(ReverseSampler):
    """NCSNv2's annealed Langevin sampler on ``sde``'s noise ladder (module docstring).

    ``sde``: a ``LinearSDE`` with ``mx(t) = 1`` (variance exploding, e.g. ``VESDE``);
    ``n_levels >= 1``, ``n_steps_each >= 1``; ``step_lr > 0`` (NCSNv2's ``step_lr``);
    ``t_min`` in ``[0, sde.T)``: the time of the last level; ``denoise``: the final step.

    A run is a :class:`~sdekit.solvers.plan.Plan` of ``n_levels * n_steps_each`` Langevin rows
    ``(1, 0, alpha_i, sqrt(2 alpha_i))`` at the level's time (plus the denoising row
    ``(1, 0, sigma_L^2, 0)``), executed by the one loop; step ``n`` draws RNG word ``n``.  The
    final denoising step is this sampler's own ``denoise``, so its run options default to
    ``denoise=False`` (which would otherwise drop the noise of the last Langevin step).
    """

    strong_order = 0.0  # a Markov chain towards the target law, not a discretised SDE path
    weak_order = 0.0
    run_defaults = RunOptions(denoise=False)

    def __init__(self, sde, n_levels: int = 10, n_steps_each: int = 100, step_lr: float = 8e-6, *,
                 t_min: float = 0.0, denoise: bool = True):
        check_sde(sde)
        self.sde = sde
        self.n_levels = check_int("n_levels", n_levels, min=1)
        self.n_steps_each = check_int("n_steps_each", n_steps_each, min=1)
        self.step_lr = check_real("step_lr", step_lr, positive=True)
        T = float(sde.T)
        self.t_min = check_real("t_min", t_min, nonnegative=True)
        if not self.t_min < T:
            raise ValueError(f"t_min must be in [0, {T}), got {t_min!r}")
        self.denoise = check_bool("denoise", denoise)
        self.steps = self.n_levels * self.n_steps_each + int(self.denoise)
        self.t_eps = self.t_min
        mx, my = sde.mean_coeffs(self.times())
        if not torch.allclose(mx, torch.ones_like(mx), rtol=0, atol=1e-12) or (my != 0).any():
            raise ValueError(f"{type(sde).__name__} is not variance exploding (mx(t) != 1 or my(t) != 0): "
                             "annealed Langevin runs on a VE noise ladder")

    def times(self) -> torch.Tensor:
        """The levels' times, ``linspace(T, t_min, n_levels)`` (float64)."""
        if self.n_levels == 1:
            return torch.tensor([float(self.sde.T)], dtype=torch.float64)
        return torch.linspace(float(self.sde.T), self.t_min, self.n_levels, dtype=torch.float64)

    def sigmas(self) -> torch.Tensor:
        """The noise ladder ``sigma_i = marginal_std(t_i)`` (float64)."""
        return self.sde.marginal_std(self.times())

    def step_coefficients(self, t, s):
        raise NotImplementedError("annealed Langevin steps are rows of its plan, not reverse steps from t to s")

    def plan(self) -> Plan:
        """Rows per level ``i``: ``n_steps_each`` times ``(1, 0, alpha_i, sqrt(2 alpha_i))`` at ``t_i``,
        ``alpha_i = step_lr (sigma_i / sigma_L)^2``; then, with ``denoise``, ``(1, 0, sigma_L^2, 0)``."""
        levels, sig = self.times(), self.sigmas()
        alpha = self.step_lr * (sig / sig[-1]) ** 2
        times = levels.repeat_interleave(self.n_steps_each)
        S, N = alpha.repeat_interleave(self.n_steps_each), (2 * alpha).sqrt().repeat_interleave(self.n_steps_each)
        if self.denoise:
            times = torch.cat([times, levels[-1:]])
            S, N = torch.cat([S, sig[-1:] ** 2]), torch.cat([N, N.new_zeros(1)])
        times = torch.cat([times, levels[-1:]])  # the grid's end point (never passed to score_fn)
        return Plan(times, coefficient_table(1.0, 0.0, S, N), name=type(self).__name__)

    def __repr__(self) -> str:
        return (f"AnnealedLangevin({type(self.sde).__name__}, n_levels={self.n_levels}, "
                f"n_steps_each={self.n_steps_each}, step_lr={self.step_lr}, t_min={self.t_min}, "
                f"denoise={self.denoise})")
