"""Parse a linear SDE and split its drift into coefficients.

A linear SDE in sdekit's sense is, element-wise,

    dx = (a(t) x + c(t) y) dt + g(t) dw,

with ``a``, ``c``, ``g`` functions of ``t`` and of named, positive parameters only.
:func:`parse_linear_sde` checks that form and returns the coefficients; anything
else raises a ``ValueError`` that names the offending term.
"""
from __future__ import annotations

import dataclasses
import keyword
import re

import sympy as sp

from .._checks import is_real
from .functions import dawsn

#: The time variable and the state/conditioning variables of every SDE.
t = sp.Symbol("t", real=True, nonnegative=True)
x = sp.Symbol("x", real=True)
y = sp.Symbol("y", real=True)
RESERVED = ("t", "x", "y")
#: Names that strings may use as functions or constants; every other identifier is a symbol
#: (so ``gamma`` and ``beta`` are parameters, not sympy's gamma and beta functions).
FUNCTIONS = frozenset({"exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "erf", "erfc",
                       "Abs", "atan", "asin", "acos", "pi", "E", "dawsn"})


def identifiers(expr: str) -> set[str]:
    """Identifiers in an expression string that are neither in :data:`FUNCTIONS` nor Python keywords."""
    return {n for n in re.findall(r"[A-Za-z_]\w*", expr) if not keyword.iskeyword(n)} - FUNCTIONS


@dataclasses.dataclass(frozen=True)
class LinearCoefficients:
    """``dx = (a x + c y) dt + g dw`` as sympy expressions in ``t`` and ``params``."""

    a: sp.Expr
    c: sp.Expr
    g: sp.Expr
    params: tuple[sp.Symbol, ...]

    @property
    def has_y_drift(self) -> bool:
        return not self.c.is_zero


def param_symbol(name: str) -> sp.Symbol:
    """The sympy symbol sdekit uses for a parameter: a positive real."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"parameter name {name!r} is not a valid identifier")
    if name in RESERVED:
        raise ValueError(f"parameter name {name!r} is reserved for the variables {RESERVED}")
    return sp.Symbol(name, positive=True)


def check_expression_type(what: str, expr) -> None:
    """``expr`` must be a string, a number or a sympy expression (``TypeError`` naming ``what``)."""
    if not isinstance(expr, (str, int, float, sp.Basic)):
        raise TypeError(f"the {what} must be a string or a sympy expression, got {type(expr).__name__}")


def _to_expr(what: str, expr, namespace: dict) -> sp.Expr:
    check_expression_type(what, expr)
    if is_real(expr):
        return sp.nsimplify(expr)
    if isinstance(expr, str):
        called = sorted(set(re.findall(r"([A-Za-z_]\w*)\s*\(", expr)) - FUNCTIONS)
        if called:
            raise ValueError(f"the {what} {expr!r} calls {called[0]!r}, which sdekit does not support; "
                             f"the functions it knows are {', '.join(sorted(FUNCTIONS - {'pi', 'E'}))}")
        keywords = sorted(n for n in re.findall(r"[A-Za-z_]\w*", expr) if keyword.iskeyword(n))
        if keywords:  # sympify evaluates Python: "-x if t else x" silently became -x
            raise ValueError(f"the {what} {expr!r} uses the Python keyword {keywords[0]!r}; "
                             "write one expression in t, x, y and the parameters")
        names = {n: sp.Symbol(n) for n in identifiers(expr) if n not in namespace}
        try:
            parsed = sp.sympify(expr, locals={**names, **namespace})
        except (sp.SympifyError, SyntaxError, TypeError, AttributeError) as err:  # "x.y": AttributeError
            raise ValueError(f"cannot parse the {what} {expr!r}: {err}") from None
    else:
        # Re-bind symbols by name so user symbols with other assumptions still match ours.
        parsed = expr.xreplace({s: namespace[s.name] for s in expr.free_symbols if s.name in namespace})
    if not isinstance(parsed, sp.Expr):
        raise ValueError(f"the {what} {expr!r} is not a scalar expression")
    if parsed.has(sp.I):  # sqrt(-t) = I*sqrt(t): g^2 < 0, a negative "variance"
        raise ValueError(f"the {what} {expr!r} = {parsed} is complex; sdekit needs real coefficients")
    unknown = sorted(s.name for s in parsed.free_symbols if s.name not in namespace)
    if unknown:
        raise ValueError(
            f"the {what} {expr!r} uses undeclared symbol(s) {unknown}; "
            f"declare them in params (the variables are {RESERVED})"
        )
    return parsed


def parse_linear_sde(drift, diffusion, param_names) -> LinearCoefficients:
    """Split ``drift = a(t) x + c(t) y`` and check ``diffusion = g(t)``."""
    params = tuple(param_symbol(n) for n in param_names)
    namespace = {"t": t, "x": x, "y": y, "dawsn": dawsn, **{p.name: p for p in params}}
    f = _to_expr("drift", drift, namespace)
    g = _to_expr("diffusion", diffusion, namespace)

    a = sp.simplify(sp.diff(f, x))
    c = sp.simplify(sp.diff(f, y))
    for name, coef, var in (("x", a, x), ("y", c, y)):
        bad = coef.free_symbols & {x, y}
        if bad:
            raise ValueError(
                f"the drift {f} is not linear in {name}: its coefficient d(drift)/d{name} = {coef} "
                f"depends on {sorted(str(b) for b in bad)}; sdekit needs drift = a(t)*x + c(t)*y"
            )
    rest = sp.simplify(f - a * x - c * y)
    if not rest.is_zero:
        raise ValueError(
            f"the drift {f} has a term {rest} that is not proportional to x or y; "
            "sdekit needs drift = a(t)*x + c(t)*y"
        )
    bad = g.free_symbols & {x, y}
    if bad:
        raise ValueError(
            f"the diffusion {g} depends on {sorted(str(b) for b in bad)}; "
            "sdekit needs additive noise g(t), a function of t and the parameters only"
        )
    return LinearCoefficients(a=a, c=c, g=g, params=params)
