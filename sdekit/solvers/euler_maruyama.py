"""Euler-Maruyama for the forward and the reverse-time linear SDE."""
from __future__ import annotations

import dataclasses

import torch

from .._checks import check_conditioning, check_finite, check_float_batch, check_real
from . import loop
from .base import ReverseSampler, check_agrees, with_drawn_seed
from .options import RunOptions
from .plan import Plan, coefficient_table, time_grid
from .registry import register_sampler


@register_sampler("euler_maruyama")
class EulerMaruyama(ReverseSampler):
    r"""Euler-Maruyama (Maruyama 1955), strong order 1 and weak order 1 for these SDEs (Ito).

    Forward, ``dx = (a x + c y) dt + g dw`` from ``t`` to ``t + h``::

        x <- (1 + a(t) h) x + c(t) h y + g(t) sqrt(h) z

    Reverse (Anderson 1982), ``dx = [a x + c y - g^2 score] dt + g dw_bar`` from ``t`` to ``t - h``::

        x <- (1 - a(t) h) x - c(t) h y + g(t)^2 h score(x, t) + g(t) sqrt(h) z

    The noise is additive (``g`` depends on ``t`` only), so the strong order is 1, not the
    general 1/2 (Kloeden & Platen 1992, sec. 10.2).  Each step is one fused kernel.
    """

    strong_order = 1.0
    weak_order = 1.0

    def step_coefficients(self, t, s):
        a, c, g = self.sde.coefficients(t)
        h = t - s
        return 1.0 - a * h, -c * h, g * g * h, g * h.sqrt()

    def forward_coefficients(self, t, t_next):
        """``(A, C, S, N)`` of forward steps from ``t`` to ``t_next > t`` (``S = 0``)."""
        a, c, g = self.sde.coefficients(t)
        h = t_next - t
        return 1.0 + a * h, c * h, torch.zeros_like(h), g * h.sqrt()

    def forward_plan(self, t0: float, t1: float) -> Plan:
        """The plan of the forward run from ``t0`` to ``t1`` in ``steps`` steps (no score)."""
        ts = time_grid(t0, t1, self.steps)
        return Plan(ts, coefficient_table(*self.forward_coefficients(ts[:-1], ts[1:])), uses_score=False,
                    name=f"{type(self).__name__} (forward)", direction="forward")

    def simulate(self, x0, y=None, t0=0.0, t1=None, *args, options: RunOptions | None = None, **kwargs):
        """Integrate the forward SDE from ``x0`` at ``t0`` to ``t1`` (default ``T``) in ``steps`` steps.

        Run options as for :meth:`sample` (``seed`` and ``backend`` may go positionally after
        ``t1``; ``sample_offset``: the global index of ``x0``'s first row); ``denoise`` does not
        apply (every forward step draws its normals).  Complex ``x0`` (and ``y``) get complex
        normals of unit variance (:mod:`sdekit.solvers.complex_data`).
        """
        if "denoise" in kwargs:
            raise TypeError("simulate has no denoise option (every forward step draws its normals)")
        options = with_drawn_seed(dataclasses.replace(RunOptions.merge(options, args, kwargs), denoise=False))
        sde = self.sde
        check_float_batch("x0", x0, allow_complex=True)
        check_conditioning(y, x0, "x0", has_y_drift=sde.has_y_drift)
        check_agrees(options, x0, "x0")
        t0 = check_real("t0", t0)
        t1 = sde.T if t1 is None else check_real("t1", t1)
        if not (0.0 <= t0 < t1 <= sde.T):
            raise ValueError(f"need 0 <= t0 < t1 <= T = {sde.T}, got t0={t0}, t1={t1}")
        check_finite("x0", x0)
        if y is not None:
            check_finite("y", y)
        x = x0.resolve_conj().clone(memory_format=torch.contiguous_format)
        return loop.run(self.forward_plan(t0, t1), x, None, y if sde.has_y_drift else None, options)
