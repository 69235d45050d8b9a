"""Compile a derivation into float64 marginal functions, each with a stated and checkable error bound.

For ``dx = (a x + c y) dt + g dw`` and fixed parameter values, :func:`compile_marginals`
returns the three moment functions of :mod:`sdekit.symbolic.moments`,

    mx(t) = exp(A(t)),   my(t) = int_0^t exp(A(t) - A(s)) c(s) ds,
    v(t)  = mx(t)^2 v0 + int_0^t exp(2 (A(t) - A(s))) g(s)^2 ds,

each evaluated by one of three paths:

* the **closed form** sympy found (:mod:`~sdekit.symbolic.stable` has made it finite in
  float64); kept only if it is finite on a grid of ``[0, T]``;
* below a verified radius ``t_c``, the **Taylor series** of the integral
  (:mod:`~sdekit.symbolic.series`) instead of a closed form that cancels there.  The radius is
  verified here: the truncated series is compared with the closed form evaluated by mpmath at
  50 digits at ``t_c``, ``t_c / 4`` and ``t_c / 16``, and ``t_c`` halves until they agree to
  ``SERIES_REL``.  A series is taken to terminate (infinite radius) only when the solution is
  a polynomial in ``t`` symbolically;
* the **tabulated quadrature** of :mod:`~sdekit.symbolic.numeric` where there is no usable
  closed form.

:meth:`Marginals.self_check` integrates the moment ODEs independently (scipy's DOP853 at
``rtol = 1e-13``) and checks every function against its stated bound.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import mpmath
import numpy as np
import scipy.integrate
import sympy as sp
import torch

from .codegen import numpy_function, torch_function
from .moments import Derivation, v0 as V0
from .numeric import ChebyshevTable, tabulate_integral
from .series import TERMS, analytic_at_zero, mp_dawsn, taylor_coefficients, taylor_integral
from .parse import LinearCoefficients, t as T_SYM
from .stable import use_expm1

CLOSED_FORM = "closed form"
#: Stated relative error bound of a closed form (with its Taylor branch) in float64.
CLOSED_FORM_REL = 1e-12
#: Relative agreement the truncated Taylor series must reach with the 50-digit closed form.
SERIES_REL = 2.0**-50
#: Relative and absolute tolerances of the ODE integration that :meth:`Marginals.self_check`
#: compares with; values below ``REFERENCE_ATOL / REFERENCE_RTOL`` are compared absolutely.
REFERENCE_RTOL = 1e-13
REFERENCE_ATOL = 1e-100
#: Grid points on which every compiled function is checked to be finite.
FINITE_CHECK_POINTS = 257


class _Compiled:
    """A compiled ``f(t, *params)`` evaluated at float64 tensors ``t`` with fixed parameter values."""

    def __init__(self, expr: sp.Expr, symbols: tuple, values: tuple):
        self.fn = torch_function(expr, symbols)
        self.values = values
        self._on_device: dict = {}

    def __call__(self, t64: torch.Tensor) -> torch.Tensor:
        params = self._on_device.get(t64.device)
        if params is None:
            params = tuple(torch.tensor(v, dtype=torch.float64, device=t64.device) for v in self.values)
            self._on_device[t64.device] = params
        out = self.fn(t64, *params)
        if not isinstance(out, torch.Tensor) or out.shape != t64.shape:
            out = torch.as_tensor(out, dtype=torch.float64, device=t64.device).expand(t64.shape).clone()
        return out


class _SeriesBelowRadius:
    """``sum_k c_k t^k (+ mx(t)^2 v0)`` for ``t < radius``, ``closed(t)`` above."""

    def __init__(self, coeffs: np.ndarray, radius: float, closed: Callable, mx_v0: Callable | None):
        self.coeffs, self.radius, self.closed, self.mx_v0 = coeffs, radius, closed, mx_v0
        self._on_device: dict = {}

    def series(self, t64: torch.Tensor) -> torch.Tensor:
        # sum_k c_k t^k as t^(0..N) @ c: two ops, not the 2N small ones of a Horner loop (launches
        # on a GPU); the same error bound (N eps sum |c_k t^k|), the terms shrinking below the radius.
        pc = self._on_device.get(t64.device)
        if pc is None:
            pc = (torch.arange(len(self.coeffs), dtype=torch.float64, device=t64.device),
                  torch.tensor(self.coeffs, dtype=torch.float64, device=t64.device))
            self._on_device[t64.device] = pc
        out = torch.pow(t64.unsqueeze(-1), pc[0]) @ pc[1]
        return out if self.mx_v0 is None else out + self.mx_v0(t64)

    def __call__(self, t64: torch.Tensor) -> torch.Tensor:
        if math.isinf(self.radius):
            return self.series(t64)
        return torch.where(t64 < self.radius, self.series(t64), self.closed(t64))


class _ExpOfTable:
    """``mx = exp(A)`` with ``A`` tabulated."""

    def __init__(self, table: ChebyshevTable):
        self.table = table

    def __call__(self, t64: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.table(t64))


class _VarianceOfTable:
    """``v = mx^2 v0 + I`` with the integral ``I`` tabulated."""

    def __init__(self, mx: Callable, table: ChebyshevTable, v0: float):
        self.mx, self.table, self.v0 = mx, table, v0

    def __call__(self, t64: torch.Tensor) -> torch.Tensor:
        return self.mx(t64) ** 2 * self.v0 + self.table(t64)


class _Zero:
    def __call__(self, t64: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t64)


@dataclasses.dataclass(frozen=True)
class Marginals:
    """The moment functions of one linear SDE with fixed parameters (float64 tensors in and out).

    Attributes:
        mx, my, v: ``t -> mx(t)``, ``my(t)``, ``v(t)`` for a float64 tensor ``t`` in ``[0, T]``.
        paths: for ``"mx"``, ``"my"``, ``"v"``: ``"closed form"`` or a description of the
            numerical path with its relative error bound.
        error_bounds: the stated relative error bound ``b`` of each: at ``t``, the error is at
            most ``b kappa(t)`` relative, with ``kappa(t) = 1 + 2 int_0^t |a|`` the condition number
            of the moments under relative perturbations of the coefficients (``exp(A)`` turns
            ``A``'s absolute rounding into a relative one); ``my`` relative to
            ``int_0^t exp(A(t) - A(s)) |c(s)| ds``, since ``my`` may cross zero.
        taylor_radius: the verified radius below which each closed form is replaced by its
            Taylor series (``0.0``: no series; ``inf``: the solution is a polynomial).
    """

    mx: Callable[[torch.Tensor], torch.Tensor]
    my: Callable[[torch.Tensor], torch.Tensor]
    v: Callable[[torch.Tensor], torch.Tensor]
    paths: Mapping[str, str]
    error_bounds: Mapping[str, float]
    taylor_radius: Mapping[str, float]
    T: float
    v0: float
    coefficient_functions: tuple = dataclasses.field(repr=False, default=())

    def reference(self, points) -> dict[str, np.ndarray]:
        """``mx``, ``my``, ``v``, the scale ``int exp(A(t) - A(s)) |c(s)| ds`` of ``my`` and the
        condition number ``kappa = 1 + 2 int_0^t |a|`` at ``points``, by integrating the moment ODEs

            mx' = a mx,  my' = a my + c,  |my|' = a |my| + |c|,  v' = 2 a v + g^2,  kappa' = 2 |a|

        from ``(1, 0, 0, v0, 1)`` with scipy's DOP853 at ``rtol = REFERENCE_RTOL``."""
        a, c, g2 = self.coefficient_functions
        points = np.asarray(points, dtype=float)
        order = np.argsort(points)

        def rhs(tt, u):
            at, ct = a(tt), c(tt)
            return [at * u[0], at * u[1] + ct, at * u[2] + abs(ct), 2.0 * at * u[3] + g2(tt), 2.0 * abs(at)]

        sol = scipy.integrate.solve_ivp(rhs, (0.0, float(points.max())), [1.0, 0.0, 0.0, self.v0, 1.0],
                                        method="DOP853", t_eval=points[order], rtol=REFERENCE_RTOL,
                                        atol=REFERENCE_ATOL)
        if not sol.success:
            raise RuntimeError(f"the reference ODE integration failed: {sol.message}")
        out = np.empty_like(sol.y)
        out[:, order] = sol.y
        return {"mx": out[0], "my": out[1], "my_scale": out[2], "v": out[3], "kappa": out[4]}

    def self_check(self, points=None) -> dict[str, float]:
        """Measured relative errors over ``kappa`` against :meth:`reference` (the ``b`` of
        ``error_bounds``); ``AssertionError`` if one exceeds its stated bound plus the reference's
        own tolerance (``10 * REFERENCE_RTOL``, relative errors over ``kappa`` too).

        ``points`` default: a grid dense near 0 (``1e-6 T`` to ``T``), each Taylor radius and
        points just beside it."""
        if points is None:
            points = [self.T * f for f in (1e-6, 1e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)]
            for r in self.taylor_radius.values():
                if 0.0 < r < self.T:
                    points += [0.5 * r, 0.999 * r, 1.001 * r, 2.0 * r]
        points = np.unique(np.asarray(points, dtype=float))
        ref = self.reference(points)
        t64 = torch.tensor(points, dtype=torch.float64)
        errors = {}
        for name in ("mx", "my", "v"):
            got = getattr(self, name)(t64).numpy()
            scale = np.maximum(np.abs(ref["my_scale"] if name == "my" else ref[name]),
                               REFERENCE_ATOL / REFERENCE_RTOL)
            rel = np.abs(got - ref[name]) / scale / ref["kappa"]
            errors[name] = float(rel.max())
            allowed = self.error_bounds[name] + 10 * REFERENCE_RTOL
            assert errors[name] <= allowed, (
                f"{name}: relative error {errors[name]:.2e} at t = {points[rel.argmax()]:.6g} exceeds "
                f"the stated bound {self.error_bounds[name]:.1e} (path: {self.paths[name]})")
        return errors


def select_branches(expr: sp.Expr, values: Mapping[sp.Symbol, float]) -> sp.Expr:
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


def _numerical_path(table: ChebyshevTable, why: str) -> str:
    return (f"numerical ({why}; quadrature tabulated as a degree-{table.coeffs.size - 1} Chebyshev series, "
            f"relative error <= {table.rel_error_bound:.1e})")


def _first_bad(values: torch.Tensor, grid: torch.Tensor) -> float | None:
    bad = ~torch.isfinite(values)
    return float(grid[bad][0]) if bool(bad.any()) else None


class _Compiler:
    """The state shared while one SDE's marginals are compiled."""

    def __init__(self, coeffs: LinearCoefficients, derivation: Derivation, values: tuple, T: float, v0: float):
        self.coeffs, self.derivation, self.T, self.v0 = coeffs, derivation, T, v0
        self.symbols = (T_SYM, *coeffs.params, V0)
        self.values = (*values, v0)
        self.substitution = dict(zip(self.symbols[1:], self.values))
        self.grid = torch.linspace(0.0, T, FINITE_CHECK_POINTS, dtype=torch.float64)
        self.smooth = all(analytic_at_zero(e) for e in (coeffs.a, coeffs.c, coeffs.g**2))

    def numpy(self, expr: sp.Expr) -> Callable[[float], float]:
        fn, values = numpy_function(expr, self.symbols), self.values
        return lambda tt: float(fn(tt, *values))

    def closed(self, name: str, expr: sp.Expr | None) -> tuple[Callable | None, sp.Expr | None]:
        """The compiled closed form and its branch-selected expression, or ``(None, None)`` if it
        has none or is not finite on ``[0, T]``.  ``ValueError`` if it is finite nowhere but
        overflows (``inf``) on part of ``[0, T]``: the marginal itself is not representable."""
        if expr is None:
            return None, None
        try:
            expr = select_branches(expr, self.substitution)
            fn = _Compiled(expr, self.symbols, self.values)
            with np.errstate(all="ignore"):
                on_grid = fn(self.grid)
        except ValueError:
            return None, None
        where = _first_bad(on_grid, self.grid)
        if where is None:
            return fn, expr
        if bool(torch.isinf(on_grid).any()) and not bool(torch.isnan(on_grid).any()):
            raise ValueError(f"the marginal {name}(t) = {expr} overflows float64 on [0, T] = [0, {self.T}] "
                             f"(from about t = {where:.6g}); choose a smaller T or rescale the SDE")
        return None, None

    def taylor_branch(self, closed: Callable, expr: sp.Expr, h_expr: sp.Expr, K: float, name: str):
        """``closed`` with its Taylor branch below the verified radius, and the radius."""
        mx_v0 = None
        if name == "v" and self.v0:
            mx_squared = _Compiled(sp.exp(2 * self.derivation.A), self.symbols, self.values)
            mx_v0 = lambda t64: mx_squared(t64) * self.v0  # noqa: E731
        # The integral alone (v0 = 0), at the parameters' exact binary values.
        exact_values = {s: sp.Rational(v) for s, v in self.substitution.items()}
        exact_values[V0] = sp.S.Zero
        integral = sp.expand(expr.xreplace(exact_values))
        if integral.is_rational_function(T_SYM):
            integral = sp.cancel(integral)
        if integral.is_polynomial(T_SYM):  # proven terminating: the series is the polynomial itself
            poly = sp.Poly(integral, T_SYM)
            if poly.degree() <= TERMS:
                coeffs = np.array([float(c) for c in reversed(poly.all_coeffs())])
                return _SeriesBelowRadius(coeffs, math.inf, closed, mx_v0), math.inf
        symbols, values = (T_SYM, *self.coeffs.params), self.values[:-1]
        a_num = taylor_coefficients(self.coeffs.a, symbols, values)
        h_num = taylor_coefficients(h_expr, symbols, values)
        if a_num is None or h_num is None:
            return closed, 0.0
        coeffs, radius = taylor_integral(a_num, h_num, K)
        if radius == 0.0:
            return closed, 0.0
        exact = sp.lambdify(T_SYM, integral, modules=[{"dawsn": mp_dawsn, "expm1": mpmath.expm1}, "mpmath"])
        for _ in range(60):
            if self._series_agrees(coeffs, exact, radius):
                return _SeriesBelowRadius(coeffs, radius, closed, mx_v0), radius
            radius /= 2.0
        return closed, 0.0

    @staticmethod
    def _series_agrees(coeffs: np.ndarray, exact: Callable, radius: float) -> bool:
        with mpmath.workdps(50):
            for tt in (radius, radius / 4, radius / 16):
                reference = exact(mpmath.mpf(tt))
                series = mpmath.polyval([mpmath.mpf(c) for c in coeffs[::-1]], mpmath.mpf(tt))
                if not abs(series - reference) <= SERIES_REL * abs(reference):
                    return False
        return True

    def table(self, h: Callable[[float, float], float], integrand: sp.Expr) -> ChebyshevTable:
        """The table of ``int_0^t h(t, s) ds``, ``h(t, s) ~ integrand(s)`` as ``s -> 0``: its
        leading term ``k t^e`` gives the order ``e + 1`` at which the integral vanishes."""
        order, q0 = 1.0, None
        try:
            lead = sp.expand(integrand.xreplace(self.substitution)).as_leading_term(T_SYM)
            k, e = lead.as_coeff_exponent(T_SYM)
            if not k.has(T_SYM) and e.is_number and float(e) > 0 and float(k) != 0:
                order, q0 = float(e) + 1.0, float(k) / (float(e) + 1.0)
        except (TypeError, ValueError, NotImplementedError):
            pass
        return tabulate_integral(h, self.T, sqrt_map=not self.smooth, order=order, q0=q0)


def compile_marginals(coeffs: LinearCoefficients, derivation: Derivation, values: tuple, T: float,
                      v0: float) -> Marginals:
    """The :class:`Marginals` of ``coeffs`` at parameter ``values`` (in ``coeffs.params`` order)
    on ``[0, T]`` with ``v(0) = v0``: closed form, Taylor branch or tabulated quadrature, each
    checked finite on ``[0, T]``.  ``ValueError`` when a moment is not representable in
    float64 there (it overflows), with the reason."""
    comp = _Compiler(coeffs, derivation, values, T, v0)
    d = derivation
    paths, bounds, radius = {}, {}, {}
    why = d.reasons.get("mx", "no closed form")

    mx, _ = comp.closed("mx", d.mx)
    if mx is not None:
        A_np = comp.numpy(d.A)
        paths["mx"], bounds["mx"], radius["mx"] = CLOSED_FORM, CLOSED_FORM_REL, 0.0
    else:
        a = comp.numpy(use_expm1(coeffs.a))
        table = comp.table(lambda tt, ss: a(ss), coeffs.a)
        A_np = table.integral
        mx = _ExpOfTable(table)
        # exp(A) inherits A's absolute error as a relative one; A's relative bound times max |A|.
        A_max = float(np.max(np.abs(table(comp.grid).numpy())))
        paths["mx"] = _numerical_path(table, why)
        bounds["mx"], radius["mx"] = table.rel_error_bound * max(A_max, 1.0), 0.0

    functions = {"mx": mx}
    for name, expr, h_expr, K in (("my", d.my, coeffs.c, 1.0), ("v", d.v, coeffs.g**2, 2.0)):
        if name == "my" and not coeffs.has_y_drift:
            functions["my"], paths["my"], bounds["my"], radius["my"] = _Zero(), CLOSED_FORM, 0.0, 0.0
            continue
        fn, selected = comp.closed(name, expr)
        if fn is not None:
            functions[name], radius[name] = comp.taylor_branch(fn, selected, use_expm1(h_expr), K, name)
            paths[name], bounds[name] = CLOSED_FORM, CLOSED_FORM_REL
            continue
        h = comp.numpy(use_expm1(h_expr))
        table = comp.table(lambda tt, ss, h=h, k=K: math.exp(k * (A_np(tt) - A_np(ss))) * h(ss), h_expr)
        functions[name] = _VarianceOfTable(mx, table, v0) if name == "v" else table
        paths[name] = _numerical_path(table, d.reasons.get(name, "no closed form"))
        bounds[name], radius[name] = table.rel_error_bound, 0.0

    for name in ("mx", "my", "v"):
        with np.errstate(all="ignore"):
            where = _first_bad(functions[name](comp.grid), comp.grid)
        if where is not None:
            raise ValueError(f"the marginal {name}(t) is not finite in float64 at t = {where:.6g} in "
                             f"[0, T] = [0, {T}] (path: {paths[name]}); choose a smaller T or rescale the SDE")
    coefficient_functions = tuple(comp.numpy(use_expm1(e)) for e in (coeffs.a, coeffs.c, coeffs.g**2))
    return Marginals(functions["mx"], functions["my"], functions["v"], paths, bounds, radius, T, v0,
                     coefficient_functions)
