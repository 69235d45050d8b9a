"""``LinearSDE``: a linear SDE whose marginals are derived, not copied.

    dx = (a(t) x + c(t) y) dt + g(t) dw,      t in [0, T],

element-wise over a tensor ``x`` with an optional conditioning tensor ``y`` (the
corrupted image in DriftRec).  Given ``x(0) = x0`` with variance ``v0``,

    x(t) ~ N(mx(t) x0 + my(t) y, v(t)),

where ``mx``, ``my``, ``v`` solve the mean and variance ODEs (see
:mod:`sdekit.symbolic.moments`).  They are derived with sympy when the SDE is first
built, rewritten into float64-stable form, and compiled to torch; where sympy
finds no closed form they come from a tabulated quadrature with a stated error
bound.  :func:`sdekit.symbolic.marginals.compile_marginals` chooses the path of each
(``paths`` says which) and :meth:`LinearSDE.self_check` checks them against an
independent integration of the moment ODEs.

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

from .._checks import (check_conditioning, check_device, check_dtype, check_float_batch, check_generator,
                       check_real, check_shape, check_t_eps, is_real)
from ..symbolic.display import derivation_latex
from ..symbolic.marginals import FINITE_CHECK_POINTS, Marginals, compile_marginals
from ..symbolic.moments import Derivation, derive, register_known_solution, v0 as V0
from ..symbolic.parse import (LinearCoefficients, check_expression_type, parse_linear_sde, t as T_SYM, x as X_SYM,
                              y as Y_SYM)
from ..symbolic.stable import use_expm1
from ..symbolic.codegen import torch_function
from .batch import per_sample
from .reverse import ReverseSDE

#: Times within this many ulp (of ``t``'s dtype) of ``0`` or ``T`` are taken as ``0`` or ``T``.
END_POINT_ULPS = 4


def _parse(drift, diffusion, names: tuple[str, ...]) -> LinearCoefficients:
    check_expression_type("drift", drift)  # before the cache, which cannot hash a list
    check_expression_type("diffusion", diffusion)
    return _parse_cached(drift, diffusion, names)


@functools.lru_cache(maxsize=256)
def _parse_cached(drift, diffusion, names: tuple[str, ...]) -> LinearCoefficients:
    return parse_linear_sde(drift, diffusion, names)


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Expanded (VP's ``g^2`` cancels to ``beta``), and cancelled if rational in ``t``; not
    ``sympy.simplify``, which folds VE's ``g^2`` into a ``log`` of a power that overflows."""
    expr = sp.expand(expr)
    return sp.cancel(expr) if expr.is_rational_function(T_SYM) else expr


def marginal_schedule_sde(mean, std, params: Mapping[str, float] | None, T: float,
                          t_eps: float | None) -> dict:
    """Keyword arguments of ``LinearSDE`` for :meth:`LinearSDE.from_marginals` (see there)."""
    values = {name: check_real(f"parameter {name!r}", v, positive=True) for name, v in dict(params or {}).items()}
    T = check_real("T", T, positive=True)
    t_eps = check_t_eps(1e-3 * T if t_eps is None else t_eps, T)
    parsed = _parse(f"({mean})*x" if isinstance(mean, str) else mean * X_SYM, std, tuple(values))
    a, b = parsed.a, parsed.g
    at = {p: v for p, v in zip(parsed.params, values.values())}
    a0, b0 = (float(e.subs(T_SYM, 0).subs(at)) for e in (a, b))
    if not math.isclose(a0, 1.0, rel_tol=1e-12):
        raise ValueError(f"the mean coefficient a(t) = {a} must be 1 at t = 0, got {a0}")
    drift = _tidy(sp.diff(a, T_SYM) / a) * X_SYM
    g2 = _tidy(sp.diff(b**2, T_SYM) - 2 * b**2 * sp.diff(a, T_SYM) / a)
    grid = np.linspace(t_eps, T, FINITE_CHECK_POINTS)
    with np.errstate(all="ignore"):
        g2_values = np.broadcast_to(sp.lambdify(T_SYM, g2.subs(at), "numpy")(grid), grid.shape)
    bad = ~(g2_values >= 0)
    if bad.any():
        raise ValueError(f"std = {b} and mean = {a} need g(t)^2 = {g2} >= 0, but it is {g2_values[bad][0]:.3g} "
                         f"at t = {grid[bad][0]:.6g} in [t_eps, T] = [{t_eps}, {T}]: the std must not "
                         "shrink faster than the mean")
    diffusion = sp.sqrt(g2)
    # Solved by construction: mx = a, my = 0, v = mx^2 v0 + b^2 - a^2 b(0)^2 (= b^2 for v0 = b(0)^2).
    coefficients = _parse(drift, diffusion, tuple(values))
    register_known_solution(coefficients, sp.log(a), sp.S.Zero,
                            a**2 * V0 + b**2 - a**2 * b.subs(T_SYM, 0) ** 2)
    return {"drift": drift, "diffusion": diffusion, "params": values, "T": T, "v0": b0**2, "t_eps": t_eps}


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
        marginals: the compiled :class:`~sdekit.symbolic.marginals.Marginals` (``mx``, ``my``,
            ``v`` in float64, their paths, stated error bounds and Taylor radii).

    Example::

        sde = LinearSDE("gamma*t**2*(y - x)", "sigma*exp(t)", params={"gamma": 1.5, "sigma": 0.2})
        mean, std = sde.marginal_prob(x0, y, torch.full((x0.shape[0],), 0.5))
    """

    def __init__(self, drift, diffusion, params: Mapping[str, float] | None = None, T: float = 1.0,
                 v0: float = 0.0, *, t_eps: float | None = None):
        params = dict(params or {})
        values = {name: check_real(f"parameter {name!r}", v, positive=True) for name, v in params.items()}
        self.T = check_real("T", T, positive=True)
        self.v0 = check_real("v0", v0, nonnegative=True)
        self.t_eps = check_t_eps(1e-3 * self.T if t_eps is None else t_eps, self.T)
        self.coeffs = _parse(drift, diffusion, tuple(values))
        self.params = values
        symbols, self._values = (T_SYM, *self.coeffs.params, V0), (*values.values(), self.v0)
        self._param_tensors: dict = {}
        # 1 - exp(z) -> -expm1(z): sub-VP's g(t) would cancel near t = 0
        self._a, self._c, self._g = (torch_function(use_expm1(e), symbols)
                                     for e in (self.coeffs.a, self.coeffs.c, self.coeffs.g))
        try:
            self._check_coefficients()  # DriftVE(1e300, 1): t**(10**300) overflows here
            self.derivation: Derivation = derive(self.coeffs)
            self.marginals: Marginals = compile_marginals(self.coeffs, self.derivation, tuple(values.values()),
                                                          self.T, self.v0)
        except (ZeroDivisionError, OverflowError) as err:
            raise ValueError(f"the marginals of {self!r} cannot be evaluated in float64 ({err}): "
                             "a parameter, T or v0 is out of range") from None

    @classmethod
    def from_marginals(cls, mean, std, params: Mapping[str, float] | None = None, T: float = 1.0, *,
                       t_eps: float | None = None) -> "LinearSDE":
        """The linear SDE (no ``y``-drift) whose marginal is ``x_t = a_t x0 + b_t z``, ``z ~ N(0, I)``,
        for ``a = mean``, ``b = std`` (strings or sympy in ``t`` and ``params``, ``a(0) = 1``):

            f(x, t) = (a'/a) x,    g(t)^2 = 2 b^2 (b'/b - a'/a) = (b^2)' - 2 b^2 a'/a,    v0 = b(0)^2

        (derived symbolically; ``ValueError`` if ``a(0) != 1`` or ``g^2 < 0`` somewhere on
        ``[t_eps, T]``).  The marginals are then derived and verified as for any ``LinearSDE``."""
        return cls(**marginal_schedule_sde(mean, std, params, T, t_eps))

    @property
    def paths(self) -> Mapping[str, str]:
        """For ``"mx"``, ``"my"``, ``"v"``: ``"closed form"`` or the numerical path and its error bound."""
        return self.marginals.paths

    def self_check(self, points=None) -> dict[str, float]:
        """Check ``mx``, ``my``, ``v`` against an independent integration of the moment ODEs at
        ``points`` (default: a grid dense near ``0``, and beside each Taylor radius); returns the
        measured relative errors, ``AssertionError`` if one exceeds its stated bound
        (:meth:`sdekit.symbolic.marginals.Marginals.self_check`)."""
        return self.marginals.self_check(points)

    def _check_coefficients(self) -> None:
        """``a``, ``c``, ``g`` must be real and finite on ``[0, T]`` (checked on a grid): a
        ``sqrt`` of a negative number or a pole gives NaN marginals otherwise."""
        grid = torch.linspace(0.0, self.T, FINITE_CHECK_POINTS, dtype=torch.float64)
        drift = self.coeffs.a * X_SYM + self.coeffs.c * Y_SYM
        for name, fn, expr, where in (("a", self._a, self.coeffs.a, f"drift {drift}"),
                                      ("c", self._c, self.coeffs.c, f"drift {drift}"),
                                      ("g", self._g, self.coeffs.g, f"diffusion {self.coeffs.g}")):
            with np.errstate(all="ignore"):
                values = self._call(fn, grid)
            bad = ~torch.isfinite(values)
            if bool(bad.any()):
                t_bad = float(grid[bad][0])
                raise ValueError(f"the {where} has {name}(t) = {expr} = {float(values[bad][0])} at t = {t_bad:.6g}: "
                                 f"{name}(t) must be real and finite on [0, T] = [0, {self.T}]")

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
        elif is_real(t):
            dtype, t64 = torch.float64, torch.tensor(float(t), dtype=torch.float64)
        else:
            raise TypeError(f"t must be a float or a tensor, got {type(t).__name__}")
        if check:
            # A time within END_POINT_ULPS ulp of 0 or T (T rounded to float32, say) is that end point.
            slack = END_POINT_ULPS * torch.finfo(dtype).eps * self.T
            bad = ~torch.isfinite(t64) | (t64 < -slack) | (t64 > self.T + slack)
            if bool(bad.any()):
                raise ValueError(f"t must lie in [0, T] = [0, {self.T}]; got {t64[bad].flatten()[:4].tolist()}")
        return t64.clamp(0.0, self.T), dtype

    #: Kept for code written against the private name; use :func:`per_sample`.
    _per_sample = staticmethod(per_sample)

    def _check_xy(self, x: torch.Tensor, y, what: str = "x") -> None:
        """``x`` (called ``what``) a floating-point or complex tensor with data (not on the meta
        device), ``y`` its conditioning (:func:`sdekit._checks.check_conditioning`)."""
        if not isinstance(x, torch.Tensor) or not (x.is_floating_point() or x.is_complex()):
            raise TypeError(f"{what} must be a floating-point or complex tensor, "
                            f"got {getattr(x, 'dtype', type(x).__name__)}")
        check_device(f"{what}'s device", x.device)
        check_conditioning(y, x, what, has_y_drift=self.has_y_drift)

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
        m = self.marginals
        return m.mx(t64).to(dtype), m.my(t64).to(dtype)

    def marginal_var(self, t, *, check: bool = True) -> torch.Tensor:
        """``v(t)``, the marginal variance."""
        t64, dtype = self._time(t, check)
        return self.marginals.v(t64).to(dtype)

    def marginal_std(self, t, *, check: bool = True) -> torch.Tensor:
        """``sqrt(v(t))``."""
        t64, dtype = self._time(t, check)
        return self.marginals.v(t64).sqrt().to(dtype)

    def transition(self, s, t, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact transition ``x(t) | x(s) ~ N(phi x(s) + psi y, var)``, for ``s <= t``:

            phi = mx(t) / mx(s),   psi = my(t) - phi my(s),   var = v(t) - phi^2 v(s).
        """
        s64, dtype = self._time(s, check)
        t64, _ = self._time(t, check)
        if check and bool((s64 > t64).any()):
            raise ValueError("transition(s, t) needs s <= t")
        m = self.marginals
        phi = m.mx(t64) / m.mx(s64)
        psi = m.my(t64) - phi * m.my(s64)
        var = (m.v(t64) - phi**2 * m.v(s64)).clamp_min(0.0)
        return phi.to(dtype), psi.to(dtype), var.to(dtype)

    # ------------------------------------------------------------------ score_sde vocabulary
    def sde(self, x: torch.Tensor, y, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(drift, diffusion)`` = ``(a x + c y, g)``; the diffusion is shaped like ``t``."""
        self._check_xy(x, y)
        a, c, g = self.coefficients(t)
        drift = per_sample(a, x) * x
        if self.has_y_drift:
            drift = drift + per_sample(c, x) * y
        return drift, g.to(device=x.device, dtype=x.dtype)

    def discretize(self, x: torch.Tensor, y, t, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Euler-Maruyama increments ``(f dt, g sqrt(dt))`` (score_sde's ``discretize``)."""
        dt = check_real("dt", dt)
        drift, diffusion = self.sde(x, y, t)
        return drift * dt, diffusion * math.sqrt(abs(dt))

    def marginal_mean(self, x0: torch.Tensor, y, t) -> torch.Tensor:
        """``mx(t) x0 + my(t) y``."""
        self._check_xy(x0, y, "x0")
        mx, my = self.mean_coeffs(t)
        mean = per_sample(mx, x0) * x0
        if self.has_y_drift:
            mean = mean + per_sample(my, x0) * y
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
        check_generator("generator", generator, x0.device)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return mean + per_sample(std, x0) * z, z

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
            shape = check_shape("shape", shape)
            dtype = check_dtype("dtype", dtype) or torch.get_default_dtype()
            device = check_device("device", device)
        else:
            check_float_batch("y", y)
            if shape is not None and tuple(check_shape("shape", shape)) != tuple(y.shape):
                raise ValueError(f"shape {tuple(shape)} does not match y's shape {tuple(y.shape)}")
            shape, dtype, device = y.shape, y.dtype, y.device
        check_generator("generator", generator, device or "cpu")
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
