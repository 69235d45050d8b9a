"""Euler-Maruyama for the forward and the reverse-time linear SDE."""
from __future__ import annotations

import torch

from ..kernels import steps as _steps
from .base import (ReverseSampler, StepChecker, check_backend, check_seed, check_state, coef_table,
                   time_grid)


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

    def coefficients(self, t, s):
        a, c, g = self.sde.coefficients(t)
        h = t - s
        return 1.0 - a * h, -c * h, g * g * h, g * h.sqrt()

    def forward_coefficients(self, t, t_next):
        """``(A, C, S, N)`` of forward steps from ``t`` to ``t_next > t`` (``S = 0``)."""
        a, c, g = self.sde.coefficients(t)
        h = t_next - t
        return 1.0 + a * h, c * h, torch.zeros_like(h), g * h.sqrt()

    def simulate(self, x0, y=None, t0=0.0, t1=None, seed=None, backend="auto", *, check_every=0):
        """Integrate the forward SDE from ``x0`` at ``t0`` to ``t1`` (default ``T``) in ``steps`` steps."""
        sde, steps = self.sde, self.steps
        check_state(sde, x0, y, "x0")
        t1 = sde.T if t1 is None else t1
        for name, v in (("t0", t0), ("t1", t1)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must be a float, got {type(v).__name__}")
        t0, t1 = float(t0), float(t1)
        if not (0.0 <= t0 < t1 <= sde.T):
            raise ValueError(f"need 0 <= t0 < t1 <= T = {sde.T}, got t0={t0}, t1={t1}")
        seed = check_seed(seed)
        affine = _steps.resolve("affine_step", check_backend(backend), x0.device)
        ts = time_grid(t0, t1, steps, "cpu")
        table = coef_table(*self.forward_coefficients(ts[:-1], ts[1:]), x0.dtype).to(x0.device)
        y_arg = y if (y is not None and sde.has_y_drift) else None
        t_host = ts.tolist()
        checker = StepChecker(steps, x0.device, lambda w: f"step {w} of {steps} (forward, t={t_host[w]:.6g})",
                              check_every)
        x = x0.clone(memory_format=torch.contiguous_format)
        for n in range(steps):
            affine(x, table[n], y=y_arg, seed=seed, step=n, out=x, flags=checker.flags[n])
            checker.maybe_check(n, n + 1)
        checker.raise_if_bad()
        return x
