"""Adaptive ODE integration on torch tensors, and the probability-flow sampler built on it.

``DormandPrince`` is the embedded Runge-Kutta pair 5(4) of Dormand & Prince (1980, RK5(4)7M) with
Shampine's order-4 dense output (Shampine 1986; the interpolant of scipy's ``RK45``) and the PI
step-size controller of Hairer's DOPRI5 code (its ``BETA = 0.04``, "stabilized step size control":
Hairer & Wanner, *Solving ODEs II*, Sec. IV.2, after Gustafsson 1991).  Every stage is one
``addmv`` over the stacked stage derivatives, on the state's device and dtype; the only host
synchronisation is the accept/reject decision, once per step (score_sde drives
``scipy.integrate.solve_ivp`` instead: a device-to-host copy and back at every function evaluation).

``AdaptiveProbabilityFlow`` integrates the probability-flow ODE (Song et al. 2021, eq. 13)

    dx/dt = a(t) x + c(t) y - g(t)^2 / 2 * score(x, t)

from ``T`` down to ``t_eps`` with it: score_sde's ``get_ode_sampler``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .._checks import check_bool, check_int, check_real, check_t_eps
from .base import check_sde, initial_state, with_drawn_seed
from .loop import NonFiniteError, SolverError
from .options import RunOptions

@dataclass
class ODESolution:
    """Result of :meth:`DormandPrince.solve`.

    Attributes:
        y: the state at ``t1`` (a tensor, or a tuple shaped like ``y0``).
        ys: the states at ``t_eval`` stacked on a new leading axis (``None`` without ``t_eval``).
        nfe: number of evaluations of ``f`` (as ``scipy.integrate.solve_ivp`` counts ``nfev``).
        n_accepted, n_rejected: accepted and rejected steps.
    """

    y: object
    ys: object
    nfe: int
    n_accepted: int
    n_rejected: int


class DormandPrince:
    r"""Dormand-Prince 5(4): an explicit embedded Runge-Kutta pair, order 5, error estimate order 4.

    One step from ``t`` with step ``h`` (``k_1 = f(t, y)``, FSAL: ``k_7`` is the next ``k_1``)::

        k_i = f(t + c_i h, y + h sum_{j<i} a_ij k_j),     y_new = y + h sum_i b_i k_i,
        err = h sum_i (b_i - bhat_i) k_i

    (``A``, ``B``, ``B_HAT``, ``C``: Dormand & Prince 1980's RK5(4)7M, as in Hairer, Norsett &
    Wanner, *Solving ODEs I*, Sec. II.5; ``y_new`` is the order-5 solution, local extrapolation).
    The step is accepted when

        E = || err / (atol + rtol max(|y|, |y_new|)) || <= 1

    and the next step is ``h * clip(safety E^(-beta1) E_prev^(beta2), min_factor, max_factor)``
    with ``(beta1, beta2) = (0.17, 0.04)`` (DOPRI5's ``BETA = 0.04``: ``beta1 = 1/5 - 0.75 beta``),
    never growing right after a rejection; a rejected step retries with
    ``h * max(min_factor, safety E^(-beta1))``.  The first step is Hairer & Wanner's starting
    step-size algorithm (*Solving ODEs I*, Sec. II.4; scipy's ``select_initial_step``), one extra
    evaluation.

    The norm ``E``:

    * ``norm="sample"`` (default): the RMS over each sample's elements (leading axis = sample),
      the maximum over samples and over the components of a tuple state (torchdiffeq's mixed
      norm, per sample).  Every sample then meets the tolerance by itself, whatever batch it is
      solved in; the batch shares one step size (and one ``t`` for ``f``).
    * ``norm="batch"``: the RMS over every element of the state, as ``solve_ivp`` computes it on
      score_sde's flattened batch.  Cheaper in steps, but one sample's error is diluted by the
      others': a sample in a batch of ``B`` may carry ``sqrt(B)`` times the tolerance.

    Dense output (``t_eval``): Shampine's order-4 interpolant ``y(t + theta h) = y + h sum_i k_i
    (P theta^[1..4])_i`` (Shampine 1986; the ``P`` of scipy's ``RK45``), which equals ``y_new``
    at ``theta = 1``.
    """

    order = 5
    error_order = 4
    C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
    A = (
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    )
    B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
    B_HAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
    P = (
        (1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432),
        (0.0, 0.0, 0.0, 0.0),
        (0.0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799),
        (0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072),
        (0.0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632),
        (0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844),
        (0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423),
    )
    BETA1, BETA2 = 0.17, 0.04

    def __init__(self, rtol: float = 1e-5, atol: float = 1e-5, *, norm: str = "sample", safety: float = 0.9,
                 min_factor: float = 0.2, max_factor: float = 10.0, first_step: float | None = None,
                 max_steps: int = 100_000):
        self.rtol = check_real("rtol", rtol, positive=True)
        self.atol = check_real("atol", atol, positive=True)
        if norm not in ("sample", "batch"):
            raise ValueError(f"norm must be 'sample' or 'batch', got {norm!r}")
        self.norm = norm
        self.safety = check_real("safety", safety, positive=True)
        self.min_factor = check_real("min_factor", min_factor, positive=True)
        self.max_factor = check_real("max_factor", max_factor, positive=True)
        if not (self.safety < 1.0 and self.min_factor < 1.0 < self.max_factor):
            raise ValueError("need safety < 1 and min_factor < 1 < max_factor")
        self.first_step = None if first_step is None else check_real("first_step", first_step, positive=True)
        self.max_steps = check_int("max_steps", max_steps, min=1)

    # ------------------------------------------------------------------ norms
    def _error_norm(self, err: list[torch.Tensor], y0: list[torch.Tensor], y1: list[torch.Tensor],
                    batch: int) -> torch.Tensor:
        """``E`` of the class docstring, a 0-dim tensor on the state's device."""
        parts = []
        for e, a, b in zip(err, y0, y1):
            r = (e / (self.atol + self.rtol * torch.maximum(a.abs(), b.abs()))).view(batch, -1)
            parts.append(r.square().mean(dim=1) if self.norm == "sample" else r.square().sum())
        if self.norm == "sample":
            return torch.stack(parts).max().sqrt()
        return (torch.stack(parts).sum() / sum(e.numel() for e in err)).sqrt()

    def _rms(self, v: list[torch.Tensor], y: list[torch.Tensor], batch: int) -> float:
        zeros = [torch.zeros_like(t) for t in y]
        return float(self._error_norm(v, y, zeros, batch))

    # ------------------------------------------------------------------ the solve
    def solve(self, f: Callable, t0: float, t1: float, y0, t_eval: Sequence[float] | None = None) -> ODESolution:
        """Integrate ``dy/dt = f(t, y)`` from ``t0`` to ``t1`` (either direction).

        Args:
            f: ``f(t, y)`` with ``t`` a Python float and ``y`` shaped like ``y0``; returns ``dy/dt``
                of the same structure, shapes and dtype.
            t0, t1: start and end times, ``t0 != t1``.
            y0: a float32/float64 tensor ``(B, ...)`` or a tuple of them sharing the leading ``B``.
            t_eval: optional times in ``[t0, t1]``, ordered from ``t0`` towards ``t1``, at which the
                dense output is returned in ``ys``.
        """
        if not callable(f):
            raise TypeError(f"f must be callable as f(t, y), got {type(f).__name__}")
        t0, t1 = check_real("t0", t0), check_real("t1", t1)
        if t0 == t1:
            raise ValueError(f"t0 and t1 must differ, got both {t0}")
        is_tuple = isinstance(y0, tuple)
        comps = list(y0) if is_tuple else [y0]
        if not comps:
            raise ValueError("y0 must be a tensor or a non-empty tuple of tensors")
        for i, c in enumerate(comps):
            if not isinstance(c, torch.Tensor) or c.dtype not in (torch.float32, torch.float64) or c.dim() < 1:
                raise TypeError(f"y0{f'[{i}]' if is_tuple else ''} must be a float32/float64 tensor with a "
                                "leading batch axis")
        batch = comps[0].shape[0]
        if any(c.shape[0] != batch or c.device != comps[0].device for c in comps):
            raise ValueError("every component of y0 must share the leading batch size and the device")
        direction = 1.0 if t1 > t0 else -1.0
        evals = _check_t_eval(t_eval, t0, t1, direction)

        shapes = [c.shape for c in comps]
        y = [c.detach().reshape(-1).clone() for c in comps]
        K = [torch.empty((7, yi.numel()), dtype=yi.dtype, device=yi.device) for yi in y]
        nfe = 0

        def call(t: float, state: list[torch.Tensor], out_stage: int) -> None:
            nonlocal nfe
            args = [s.view(shape) for s, shape in zip(state, shapes)]
            out = f(t, tuple(args) if is_tuple else args[0])
            outs = list(out) if is_tuple else [out]
            if len(outs) != len(y) or any(not isinstance(o, torch.Tensor) or o.shape != s or o.dtype != yi.dtype
                                          for o, s, yi in zip(outs, shapes, y)):
                raise SolverError(f"f returned {_describe(out)} at t={t:.6g}; expected the structure, shapes "
                                  f"and dtypes of y0 {[(tuple(s), v.dtype) for s, v in zip(shapes, y)]}")
            for k, o in zip(K, outs):
                k[out_stage].copy_(o.reshape(-1))
            nfe += 1

        weights: dict = {}

        def combine(base: list[torch.Tensor] | None, coefs, h: float) -> list[torch.Tensor]:
            """``base + h sum_j coefs_j k_j`` per component (``base=None``: 0): one ``addmv`` over the stages."""
            key = tuple(coefs)
            if key not in weights:
                weights[key] = [torch.tensor(key, dtype=k.dtype, device=k.device) for k in K]
            if base is None:
                return [torch.mv(k[:len(key)].t(), w).mul_(h) for k, w in zip(K, weights[key])]
            return [torch.addmv(b, k[:len(key)].t(), w, alpha=h) for b, k, w in zip(base, K, weights[key])]

        call(t0, y, 0)
        h = self.first_step if self.first_step is not None else self._initial_step(call, K, t0, t1, y, batch)
        h = min(h, abs(t1 - t0))
        t, err_prev, rejected_last = t0, 1e-4, False
        n_acc = n_rej = 0
        outputs: list[list[torch.Tensor]] = []
        while direction * (t1 - t) > 0:
            if n_acc + n_rej >= self.max_steps:
                raise SolverError(f"max_steps={self.max_steps} reached at t={t:.6g} (step {h:.3g})")
            if h < 10 * math.ulp(max(abs(t), abs(t1))):
                raise SolverError(f"step size underflow at t={t:.6g}: the ODE is too stiff for rtol={self.rtol}, "
                                  f"atol={self.atol}")
            hs = direction * h
            last = abs(t1 - t) <= h * (1 + 1e-12)
            if last:
                hs = t1 - t
            for i in range(1, 6):
                call(t + self.C[i] * hs, combine(y, self.A[i], hs), i)
            y_new = combine(y, self.B[:6], hs)
            t_new = t1 if last else t + hs
            call(t_new, y_new, 6)
            err = combine(None, [b - bh for b, bh in zip(self.B, self.B_HAT)], hs)
            E = float(self._error_norm(err, y, y_new, batch))
            if not math.isfinite(E):
                raise NonFiniteError(f"the ODE state or f became non-finite in the step from t={t:.6g} "
                                     f"to t={t + hs:.6g}")
            if E <= 1.0:
                while evals and direction * (evals[0] - t_new) <= 0:
                    theta = (evals.pop(0) - t) / hs
                    powers = [theta ** (m + 1) for m in range(4)]
                    coefs = [sum(p * q for p, q in zip(row, powers)) for row in self.P]
                    outputs.append(combine(y, coefs, hs))
                    weights.pop(tuple(coefs))  # one-off weights: not worth keeping
                factor = self.max_factor if E == 0.0 else self.safety * E ** -self.BETA1 * err_prev ** self.BETA2
                factor = min(self.max_factor, max(self.min_factor, factor))
                if rejected_last:
                    factor = min(factor, 1.0)
                t, y, err_prev, rejected_last = t_new, y_new, max(E, 1e-4), False
                for k in K:
                    k[0].copy_(k[6])
                n_acc += 1
                h = abs(hs) * factor
            else:
                h = abs(hs) * max(self.min_factor, self.safety * E ** -self.BETA1)
                rejected_last = True
                n_rej += 1

        def pack(flat: list[torch.Tensor], lead=()):
            out = [v.view(*lead, *s) for v, s in zip(flat, shapes)]
            return tuple(out) if is_tuple else out[0]

        ys = None
        if t_eval is not None:
            n = len(outputs)
            ys = pack([torch.stack([o[i] for o in outputs]) if n else y[i].new_empty((0, y[i].numel()))
                       for i in range(len(y))], (n,))
        return ODESolution(pack(y), ys, nfe, n_acc, n_rej)

    def _initial_step(self, call, K, t0: float, t1: float, y: list[torch.Tensor], batch: int) -> float:
        """Hairer & Wanner's starting step (Sec. II.4), scaled by ``atol + rtol |y0|``: one evaluation."""
        direction = 1.0 if t1 > t0 else -1.0
        f0 = [k[0].clone() for k in K]
        d0 = self._rms(y, y, batch)
        d1 = self._rms(f0, y, batch)
        if not (math.isfinite(d0) and math.isfinite(d1)):
            raise NonFiniteError(f"y0 or f(t0, y0) is not finite (t0={t0:.6g})")
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h0 = min(h0, abs(t1 - t0))
        y1 = [yi + direction * h0 * fi for yi, fi in zip(y, f0)]
        call(t0 + direction * h0, y1, 1)
        d2 = self._rms([k[1] - fi for k, fi in zip(K, f0)], y, batch) / h0
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / (self.error_order + 1))
        return min(100 * h0, h1)


def _check_t_eval(t_eval, t0: float, t1: float, direction: float) -> list[float]:
    if t_eval is None:
        return []
    if isinstance(t_eval, torch.Tensor):
        t_eval = t_eval.detach().cpu().tolist()
    evals = [check_real("t_eval", v) for v in t_eval]
    lo, hi = min(t0, t1), max(t0, t1)
    if any(not lo <= v <= hi for v in evals):
        raise ValueError(f"t_eval must lie in [{lo}, {hi}]")
    if any(direction * (b - a) < 0 for a, b in zip(evals, evals[1:])):
        raise ValueError("t_eval must be ordered from t0 towards t1")
    return evals


def _describe(out) -> str:
    if isinstance(out, torch.Tensor):
        return f"a {out.dtype} tensor of shape {tuple(out.shape)}"
    if isinstance(out, (tuple, list)):
        return "(" + ", ".join(_describe(o) for o in out) + ")"
    return type(out).__name__


def probability_flow_drift(sde, score_fn: Callable, y) -> Callable:
    """The probability-flow right-hand side ``drift(t, x, score=None)``:

        a(t) x + c(t) y - g(t)^2 / 2 * score(x, t)

    with ``t`` a float (``score_fn`` sees a ``(B,)`` tensor in ``x``'s dtype); pass ``score`` when it is
    already computed.  ``drift.coefficients(t)`` gives ``(a, c, g^2)`` as floats (the likelihood's
    divergence needs ``a`` and ``g^2``)."""
    use_y = y is not None and sde.has_y_drift

    def coefficients(t: float) -> tuple[float, float, float]:
        a, c, g = (float(v) for v in sde.coefficients(t, check=False))
        return a, c, g * g

    def drift(t: float, x: torch.Tensor, score: torch.Tensor | None = None) -> torch.Tensor:
        a, c, g2 = coefficients(t)
        if score is None:
            score = score_fn(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
        if not isinstance(score, torch.Tensor) or score.shape != x.shape or score.dtype != x.dtype:
            raise SolverError(f"score_fn returned {_describe(score)} at t={t:.6g}; "
                              f"expected a {x.dtype} tensor of shape {tuple(x.shape)}")
        out = torch.add(a * x, score, alpha=-0.5 * g2)
        return out.add_(y, alpha=c) if use_y else out

    drift.coefficients = coefficients
    return drift


class AdaptiveProbabilityFlow:
    r"""The probability-flow ODE sampler with adaptive steps (score_sde's ``get_ode_sampler``).

    Integrates ``dx/dt = a(t) x + c(t) y - g(t)^2 / 2 * score(x, t)`` (Song et al. 2021, eq. 13)
    from ``x_T`` at ``T`` down to ``t_eps`` with :class:`DormandPrince` (``rtol``, ``atol``,
    ``norm``; score_sde's defaults ``rtol = atol = 1e-5``).

    Denoising (``denoise=True``): the result is replaced by Tweedie's posterior mean at ``t_eps``,

        x0 = (x + v(t_eps) score(x, t_eps) - my(t_eps) y) / mx(t_eps),

    one more score evaluation.  For score_sde's VE SDE this is its ``denoise`` step
    (a reverse-diffusion predictor step without noise, ``x + sigma^2 score``) with ``sigma(t_eps)``
    where score_sde takes ``sigma_min``; for VP it differs from score_sde's discrete step by
    ``O(beta_min (t_eps + 1/N))``.  Off by default, as in score_sde's ODE sampler.
    """

    def __init__(self, sde, rtol: float = 1e-5, atol: float = 1e-5, t_eps: float | None = None, *,
                 norm: str = "sample"):
        check_sde(sde)
        self.sde = sde
        self.t_eps = check_t_eps(sde.t_eps if t_eps is None else t_eps, sde.T)
        self.solver = DormandPrince(rtol, atol, norm=norm)

    def sample(self, score_fn, y=None, x_T=None, shape=None, seed=None, *, dtype=None, device=None,
               denoise: bool = False, return_nfe: bool = False, sample_offset: int = 0):
        """Integrate from ``x_T`` (default: the prior draw of the fixed-step samplers for ``seed``,
        its rows the global samples from ``sample_offset``) to ``t_eps``.  Returns ``x``, or
        ``(x, nfe)`` with ``return_nfe`` (score_sde returns both).

        ``score_fn(x, t)`` takes ``t`` of shape ``(B,)``; ``y`` is closed over, as for the other samplers.
        """
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
        denoise, return_nfe = check_bool("denoise", denoise), check_bool("return_nfe", return_nfe)
        # seed, dtype and device are checked as the fixed-step samplers' run options are
        options = RunOptions(seed=seed, dtype=dtype, device=device, sample_offset=sample_offset)
        x = initial_state(self.sde, y, x_T, shape, with_drawn_seed(options))
        y_arg = y if (y is not None and self.sde.has_y_drift) else None
        drift = probability_flow_drift(self.sde, score_fn, y_arg)
        with torch.no_grad():
            sol = self.solver.solve(drift, self.sde.T, self.t_eps, x)
            x, nfe = sol.y, sol.nfe
            if denoise:
                x = self._tweedie(score_fn, x, y_arg)
                nfe += 1
        return (x, nfe) if return_nfe else x

    def _tweedie(self, score_fn, x: torch.Tensor, y) -> torch.Tensor:
        t = self.t_eps
        mx, my = (float(v) for v in self.sde.mean_coeffs(t))
        v = float(self.sde.marginal_var(t))
        score = score_fn(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
        x0 = torch.add(x, score, alpha=v)
        if y is not None:
            x0 = x0.add_(y, alpha=-my)
        return x0.div_(mx)

    def __repr__(self) -> str:
        s = self.solver
        return (f"{type(self).__name__}(sde={type(self.sde).__name__}, rtol={s.rtol}, atol={s.atol}, "
                f"t_eps={self.t_eps}, norm={s.norm!r})")


__all__ = ["DormandPrince", "ODESolution", "AdaptiveProbabilityFlow", "probability_flow_drift"]
