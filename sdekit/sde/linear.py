"""``LinearSDE``: a linear SDE whose marginals are derived, not copied.

    dx = (a(t) x + c(t) y) dt + g(t) dw,      t in [0, T],

element-wise over a tensor ``x`` with an optional conditioning tensor ``y`` (the
corrupted image in DriftRec).  Given ``x(0) = x0`` with variance ``v0``,

    x(t) ~ N(mx(t) x0 + my(t) y, v(t)),

where ``mx``, ``my``, ``v`` solve the mean and variance ODEs (see
:mod:`sdekit.symbolic.moments`).  They are derived with sympy when the SDE is first
built, rewritten into float64-stable form, and compiled to torch; where sympy
finds no closed form they come from a tabulated quadrature with a stated error
bound (:mod:`sdekit.symbolic.numeric`).  ``paths`` says which.

Coefficients are always computed in float64 and then rounded to the caller's dtype,
so float32 users get correctly rounded marginals.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Mapping

import numpy as np
import sympy as sp
import torch

from .._checks import check_like
from ..symbolic.codegen import numpy_function, torch_function
from ..symbolic.display import derivation_latex
from ..symbolic.moments import Derivation, derive, v0 as V0
from ..symbolic.numeric import ChebyshevTable, tabulate_integral
from ..symbolic.series import analytic_at_zero, taylor_coefficients, taylor_integral
from ..symbolic.parse import LinearCoefficients, parse_linear_sde, t as T_SYM, x as X_SYM, y as Y_SYM
from ..symbolic.stable import use_expm1
from .reverse import ReverseSDE

CLOSED_FORM = "closed form"

# Number of grid points on which every compiled closed form is checked to be finite.
_FINITE_CHECK_POINTS = 257


@functools.lru_cache(maxsize=256)
def _parse(drift, diffusion, names: tuple[str, ...]) -> LinearCoefficients:
    return parse_linear_sde(drift, diffusion, names)


def _validate_number(name: str, value, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if not positive and value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return value


def _select_branches(expr: sp.Expr, values: Mapping[sp.Symbol, float]) -> sp.Expr:
    """Replace each ``Piecewise`` by the branch whose condition holds at ``values``.

    sympy splits integrals on parameter values (``gamma + k = 0`` for OUVE); with the
    parameters fixed, one branch applies on all of ``[0, T]``.  A condition that
    depends on ``t`` cannot be decided here: ``ValueError``.
    """

    def choose(*pairs):
        for branch, cond in pairs:
            decided = sp.sympify(cond).subs(values)
            if decided.free_symbols:
                raise ValueError(f"cannot select a branch of a piecewise solution on {cond}")
            if bool(decided):
                return branch
        raise ValueError("no branch of a piecewise solution applies")

    return expr.replace(sp.Piecewise, choose)


def check_state(x: torch.Tensor, y, has_y_drift: bool, name: str = "x") -> None:
    """``x`` (called ``name`` in errors) is a floating-point or complex tensor; ``y`` is ``None``
    (only for SDEs without ``y``-drift) or a tensor of ``x``'s shape, device and dtype."""
    if not isinstance(x, torch.Tensor) or not (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{name} must be a floating-point or complex tensor, "
                        f"got {getattr(x, 'dtype', type(x).__name__)}")
    if y is None:
        if has_y_drift:
            raise ValueError("this SDE's drift depends on y: pass y (the conditioning tensor)")
        return
    check_like("y", y, x, name)


class LinearSDE:
    r"""A linear SDE ``dx = (a(t) x + c(t) y) dt + g(t) dw`` with derived marginals.

    Args:
        drift: sympy expression or string in ``x``, ``y``, ``t`` and the parameters,
            affine in ``x`` and ``y`` with coefficients that depend on ``t`` only,
            e.g. ``"gamma*t**2*(y - x)"``.
        diffusion: expression or string in ``t`` and the parameters, e.g.
            ``"sigma*exp(t)"``.
        params: parameter values by name; parameters are positive reals (put signs
            into the expression).
        T: final time.
        v0: variance of ``x(0)`` (``0`` for data; ``sigma_min**2`` for score_sde's VE).
        t_eps: default end time of reverse-time sampling (default ``1e-3 * T``).

    Attributes:
        paths: for ``"mx"``, ``"my"`` and ``"v"``, either ``"closed form"`` or a
            description of the numerical path with its relative error bound.
        derivation: the sympy :class:`~sdekit.symbolic.moments.Derivation` (ODEs and
            solutions with symbolic parameters).

    Example::

        sde = LinearSDE("gamma*t**2*(y - x)", "sigma*exp(t)", params={"gamma": 1.5, "sigma": 0.2})
        mean, std = sde.marginal_prob(x0, y, torch.full((x0.shape[0],), 0.5))
    """

    def __init__(self, drift, diffusion, params: Mapping[str, float] | None = None, T: float = 1.0,
                 v0: float = 0.0, *, t_eps: float | None = None):
        params = dict(params or {})
        values = {name: _validate_number(f"parameter {name!r}", v) for name, v in params.items()}
        self.T = _validate_number("T", T)
        self.v0 = _validate_number("v0", v0, positive=False)
        self.t_eps = 1e-3 * self.T if t_eps is None else _validate_number("t_eps", t_eps)
        if not self.t_eps < self.T:
            raise ValueError(f"t_eps must lie in (0, T) = (0, {self.T}), got {self.t_eps}")
        names = tuple(values)
        self.coeffs = _parse(drift, diffusion, names)
        self.params = values
        self.derivation: Derivation = derive(self.coeffs)
        self._symbols = (T_SYM, *self.coeffs.params, V0)
        self._values = (*values.values(), self.v0)
        self._param_tensors: dict = {}

        args = self._symbols  # 1 - exp(z) -> -expm1(z): sub-VP's g(t) would cancel near t = 0
        self._a, self._c, self._g = (torch_function(use_expm1(e), args)
                                     for e in (self.coeffs.a, self.coeffs.c, self.coeffs.g))
        self.paths: dict[str, str] = {}
        self._build_marginals()

    # ------------------------------------------------------------------ construction
    def _closed(self, expr: sp.Expr | None) -> Callable | None:
        """Compile ``expr`` with the branches for these parameters; ``None`` if unusable."""
        if expr is None:
            return None
        try:
            expr = _select_branches(expr, dict(zip(self._symbols[1:], self._values)))
            fn = torch_function(expr, self._symbols)
            grid = torch.linspace(0.0, self.T, _FINITE_CHECK_POINTS, dtype=torch.float64)
            if not torch.isfinite(self._call(fn, grid)).all():
                return None
        except ValueError:
            return None
        return fn

    def _numpy(self, expr: sp.Expr) -> Callable[[float], float]:
        fn = numpy_function(expr, self._symbols)
        values = self._values
        return lambda tt: float(fn(tt, *values))

    def _build_marginals(self) -> None:
        d = self.derivation
        smooth = all(analytic_at_zero(e) for e in (self.coeffs.a, self.coeffs.c, self.coeffs.g**2))
        mx_fn = self._closed(d.mx)
        if mx_fn is not None:
            self._A_np = self._numpy(d.A)
            self._mx = lambda tt: self._call(mx_fn, tt)
            self.paths["mx"] = CLOSED_FORM
        else:
            a = self._numpy(self.coeffs.a)
            table = tabulate_integral(lambda tt, ss: a(ss), self.T, sqrt_map=not smooth)
            self._A_np = lambda tt: float(tt * table.q(tt)) if tt > 0 else 0.0
            self._mx = lambda tt: torch.exp(table(tt))
            self.paths["mx"] = self._numerical_path(table)

        for name, expr, h, scale in (
            ("my", d.my, self._numpy(self.coeffs.c), 1.0),
            ("v", d.v, self._numpy(self.coeffs.g**2), 2.0),
        ):
            fn = self._closed(expr)
            if fn is not None:
                closed = functools.partial(self._call, fn)
                h_expr = self.coeffs.c if name == "my" else self.coeffs.g**2
                setattr(self, "_" + name, self._near_zero_by_series(closed, h_expr, scale, name == "v"))
                self.paths[name] = CLOSED_FORM
                continue
            A = self._A_np
            table = tabulate_integral(
                lambda tt, ss, h=h, k=scale: math.exp(k * (A(tt) - A(ss))) * h(ss), self.T, sqrt_map=not smooth
            )
            if name == "v":
                v0 = self.v0
                self._v = lambda tt, table=table: self._mx(tt) ** 2 * v0 + table(tt)
            else:
                self._my = table
            self.paths[name] = self._numerical_path(table)

    def _near_zero_by_series(self, closed: Callable, h_expr: sp.Expr, K: float, add_v0: bool) -> Callable:
        """``closed``, but below the series' radius the Taylor series of the integral
        ``I' = K a I + h`` (:mod:`sdekit.symbolic.series`), which does not cancel."""
        symbols, values = (T_SYM, *self.coeffs.params), self._values[:-1]
        a_num = taylor_coefficients(self.coeffs.a, symbols, values)
        h_num = taylor_coefficients(h_expr, symbols, values)
        if a_num is None or h_num is None:
            return closed
        coeffs, radius = taylor_integral(a_num, h_num, K)
        if radius == 0.0:
            return closed
        v0 = self.v0
        powers_and_coeffs: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

        def evaluate(t64: torch.Tensor) -> torch.Tensor:
            # sum_k c_k t^k as t^(0..N) @ c: two ops, not the 2N small ones of a Horner loop (launches
            # on a GPU); the same error bound (N eps sum |c_k t^k|), the terms shrinking below the radius.
            pc = powers_and_coeffs.get(t64.device)
            if pc is None:
                pc = (torch.arange(len(coeffs), dtype=torch.float64, device=t64.device),
                      torch.tensor(coeffs, dtype=torch.float64, device=t64.device))
                powers_and_coeffs[t64.device] = pc
            series = torch.pow(t64.unsqueeze(-1), pc[0]) @ pc[1]
            if add_v0 and v0:
                series = series + self._mx(t64) ** 2 * v0
            return torch.where(t64 < radius, series, closed(t64))

        return evaluate

    @staticmethod
    def _numerical_path(table: ChebyshevTable) -> str:
        return (f"numerical (quadrature tabulated as a degree-{table.coeffs.size - 1} Chebyshev series, "
                f"relative error <= {table.rel_error_bound:.1e})")

    def _params_on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        cached = self._param_tensors.get(device)
        if cached is None:
            cached = tuple(torch.tensor(v, dtype=torch.float64, device=device) for v in self._values)
            self._param_tensors[device] = cached
        return cached

    def _call(self, fn: Callable, t64: torch.Tensor) -> torch.Tensor:
        out = fn(t64, *self._params_on(t64.device))
        if not isinstance(out, torch.Tensor) or out.shape != t64.shape:
            out = torch.as_tensor(out, dtype=torch.float64, device=t64.device).expand(t64.shape).clone()
        return out

    # ------------------------------------------------------------------ time handling
    def _time(self, t, check: bool) -> tuple[torch.Tensor, torch.dtype]:
        """``t`` as float64 tensor and the dtype results are returned in."""
        if isinstance(t, torch.Tensor):
            if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
                raise TypeError(f"t must be a real tensor, got dtype {t.dtype}")
            dtype = t.dtype if t.is_floating_point() else torch.float64
            t64 = t.to(torch.float64)
        elif isinstance(t, (int, float, np.floating, np.integer)) and not isinstance(t, bool):
            dtype, t64 = torch.float64, torch.tensor(float(t), dtype=torch.float64)
        else:
            raise TypeError(f"t must be a float or a tensor, got {type(t).__name__}")
        if check:
            bad = ~torch.isfinite(t64) | (t64 < 0) | (t64 > self.T)
            if bool(bad.any()):
                raise ValueError(f"t must lie in [0, T] = [0, {self.T}]; got {t64[bad].flatten()[:4].tolist()}")
        return t64, dtype

    @staticmethod
    def _per_sample(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Broadcast a coefficient of shape ``()`` or ``(B,)`` over ``x`` of shape ``(B, ...)``."""
        coef = coef.to(device=x.device, dtype=x.dtype)
        if coef.dim() == 0:
            return coef
        if coef.dim() != 1 or x.dim() == 0 or coef.shape[0] != x.shape[0]:
            raise ValueError(f"t must be a scalar or of shape (batch,) = ({x.shape[0] if x.dim() else ''},); "
                             f"got shape {tuple(coef.shape)} for x of shape {tuple(x.shape)}")
        return coef.view(-1, *([1] * (x.dim() - 1)))

    def _check_xy(self, x: torch.Tensor, y, what: str = "x") -> None:
        check_state(x, y, self.has_y_drift, what)

    # ------------------------------------------------------------------ coefficients
    @property
    def has_y_drift(self) -> bool:
        """Whether the drift depends on ``y`` (``c(t) != 0``)."""
        return self.coeffs.has_y_drift

    def coefficients(self, t, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a(t), c(t), g(t))`` shaped like ``t``.  ``check=False`` skips the range check
        (and its host synchronisation); solvers validate their time grid once instead."""
        t64, dtype = self._time(t, check)
        return tuple(self._call(f, t64).to(dtype) for f in (self._a, self._c, self._g))

    def mean_coeffs(self, t, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mx(t), my(t))``: the marginal mean is ``mx x0 + my y``."""
        t64, dtype = self._time(t, check)
        return self._mx(t64).to(dtype), self._my(t64).to(dtype)

    def marginal_var(self, t, *, check: bool = True) -> torch.Tensor:
        """``v(t)``, the marginal variance."""
        t64, dtype = self._time(t, check)
        return self._v(t64).to(dtype)

    def marginal_std(self, t, *, check: bool = True) -> torch.Tensor:
        """``sqrt(v(t))``."""
        t64, dtype = self._time(t, check)
        return self._v(t64).sqrt().to(dtype)

    def transition(self, s, t, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact transition ``x(t) | x(s) ~ N(phi x(s) + psi y, var)``, for ``s <= t``:

            phi = mx(t) / mx(s),   psi = my(t) - phi my(s),   var = v(t) - phi^2 v(s).
        """
        s64, dtype = self._time(s, check)
        t64, _ = self._time(t, check)
        if check and bool((s64 > t64).any()):
            raise ValueError("transition(s, t) needs s <= t")
        phi = self._mx(t64) / self._mx(s64)
        psi = self._my(t64) - phi * self._my(s64)
        var = (self._v(t64) - phi**2 * self._v(s64)).clamp_min(0.0)
        return phi.to(dtype), psi.to(dtype), var.to(dtype)

    # ------------------------------------------------------------------ score_sde vocabulary
    def sde(self, x: torch.Tensor, y, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(drift, diffusion)`` = ``(a x + c y, g)``; the diffusion is shaped like ``t``."""
        self._check_xy(x, y)
        a, c, g = self.coefficients(t)
        drift = self._per_sample(a, x) * x
        if self.has_y_drift:
            drift = drift + self._per_sample(c, x) * y
        return drift, g.to(device=x.device, dtype=x.dtype)

    def discretize(self, x: torch.Tensor, y, t, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Euler-Maruyama increments ``(f dt, g sqrt(dt))`` (score_sde's ``discretize``)."""
        drift, diffusion = self.sde(x, y, t)
        return drift * dt, diffusion * math.sqrt(abs(dt))

    def marginal_mean(self, x0: torch.Tensor, y, t) -> torch.Tensor:
        """``mx(t) x0 + my(t) y``."""
        self._check_xy(x0, y, "x0")
        mx, my = self.mean_coeffs(t)
        mean = self._per_sample(mx, x0) * x0
        if self.has_y_drift:
            mean = mean + self._per_sample(my, x0) * y
        return mean

    def marginal_prob(self, x0: torch.Tensor, y, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` of ``x(t) | x(0) = x0``; ``std`` is shaped like ``t``, real (for complex
        ``x0`` too: ``E|x - mean|^2 = std^2`` per element)."""
        mean = self.marginal_mean(x0, y, t)
        return mean, self.marginal_std(t).to(device=x0.device, dtype=x0.real.dtype)

    def sample_marginal(self, x0: torch.Tensor, y, t, generator: torch.Generator | None = None):
        """Draw ``x(t) = mean + std z`` with ``z ~ N(0, I)``; returns ``(x_t, z)``.  For complex
        ``x0``, ``z`` is complex of unit variance (real and imaginary parts ``N(0, 1/2)``: what
        ``torch.randn`` draws for a complex dtype, and sgmse's ``torch.randn_like``)."""
        mean, std = self.marginal_prob(x0, y, t)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return mean + self._per_sample(std, x0) * z, z

    def prior_mean(self, y) -> torch.Tensor | float:
        """Mean of the prior at ``T``: ``(mx(T) + my(T)) y`` when the drift pulls towards ``y``
        (``x0`` is taken to be ``y``, as DriftRec does; for the DriftRec family ``mx + my = 1``),
        else ``0`` (the data's contribution ``mx(T) x0`` is taken to be negligible)."""
        if not self.has_y_drift:
            return 0.0
        mx, my = self.mean_coeffs(self.T)
        return float(mx + my) * y

    def prior_sampling(self, y=None, generator: torch.Generator | None = None, *, shape=None,
                       dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
        """Draw ``x(T) ~ N(prior_mean(y), v(T))``.  ``shape`` is needed when ``y`` is ``None``."""
        if y is None:
            if self.has_y_drift:
                raise ValueError("this SDE's drift depends on y: prior_sampling needs y")
            if shape is None:
                raise ValueError("prior_sampling needs y or shape")
            dtype = dtype or torch.get_default_dtype()
        else:
            if shape is not None and tuple(shape) != tuple(y.shape):
                raise ValueError(f"shape {tuple(shape)} does not match y's shape {tuple(y.shape)}")
            shape, dtype, device = y.shape, y.dtype, y.device
        z = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
        std = float(self.marginal_std(self.T))
        return self.prior_mean(y) + std * z

    def reverse(self, score_fn: Callable, probability_flow: bool = False) -> ReverseSDE:
        """The reverse-time SDE (Anderson 1982), or with ``probability_flow`` the ODE:

            dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dw_bar,
            dx = [f(x, t) - g(t)^2 score(x, t) / 2] dt.
        """
        return ReverseSDE(self, score_fn, probability_flow)

    # ------------------------------------------------------------------ display
    @property
    def solution(self) -> dict[str, sp.Expr | None]:
        """Symbolic ``mx``, ``my``, ``v`` (``None`` where the numerical path is used)."""
        d = self.derivation
        return {"mx": d.mx, "my": d.my, "v": d.v}

    def latex(self) -> str:
        """The SDE, its moment ODEs and their solutions, as a LaTeX ``aligned`` block."""
        return derivation_latex(self.derivation, missing=self.paths)

    def __repr__(self) -> str:
        c = self.coeffs
        drift = c.a * X_SYM + c.c * Y_SYM
        return (f"{type(self).__name__}(drift={drift}, diffusion={c.g}, params={self.params}, "
                f"T={self.T}, v0={self.v0})")
