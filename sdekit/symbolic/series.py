"""Taylor series of the integrating-factor integrals at ``t = 0``.

Closed forms like TSDVE's variance are differences of two terms of equal size at
``t = 0`` (``exp(2kt) D(u_t) - exp(-gamma t^2) D(u_0)``): near ``t = 0`` they cancel and
lose ``log10(term / v)`` digits.  There the series is exact to rounding instead.

``I(t) = exp(K A(t)) int_0^t exp(-K A(s)) h(s) ds`` solves ``I' = K a I + h``,
``I(0) = 0``; with ``a = sum a_j t^j``, ``h = sum h_j t^j`` and ``I = sum I_m t^m``,

    (m + 1) I_{m+1} = K sum_{j=0}^{m} a_j I_{m-j} + h_m.

:func:`taylor_integral` returns ``I_1 .. I_N`` and the radius ``t_c`` below which the
truncated series is accurate to ``2^-56`` relative (its last term is that small
against its leading one).
"""
from __future__ import annotations

import math

import mpmath

import numpy as np
import sympy as sp

from .parse import t

TERMS = 16
_REL = 2.0**-56


def analytic_at_zero(expr: sp.Expr) -> bool:
    """Conservative structural test that ``expr`` is analytic at ``t = 0`` (for ``t``
    near 0 and the given positive parameters): powers of ``t``-dependent bases need a
    non-negative integer exponent or a base that is nonzero at 0; ``log`` and ``Abs``
    need a nonzero argument there."""
    for node in sp.preorder_traversal(expr):
        if not node.has(t):
            continue
        if isinstance(node, sp.Pow):
            base, exp = node.args
            if base.has(t) and not (exp.is_Integer and exp >= 0) and base.subs(t, 0).is_zero is not False:
                return False
        elif isinstance(node, (sp.log, sp.Abs)) and node.args[0].subs(t, 0).is_zero is not False:
            return False
    return True


def taylor_coefficients(expr: sp.Expr, symbols, values, n: int = TERMS) -> np.ndarray | None:
    """The first ``n`` Taylor coefficients of ``expr`` at ``t = 0``, numerically (mpmath's
    high-precision differentiation at 40 digits), or ``None`` if ``expr`` is not analytic."""
    if not analytic_at_zero(expr):
        return None
    fn = sp.lambdify(symbols, expr, modules=[{"dawsn": _mp_dawsn}, "mpmath"])
    with mpmath.workdps(40):
        args = [mpmath.mpf(v) for v in values]
        coeffs = mpmath.taylor(lambda tt: fn(tt, *args), 0, n - 1)
    return np.array([float(c) for c in coeffs])


def _mp_dawsn(z):
    return mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-z * z) * mpmath.erfi(z)


def taylor_integral(a: np.ndarray, h: np.ndarray, K: float) -> tuple[np.ndarray, float]:
    """Coefficients ``I_0..I_N`` (``I_0 = 0``) of ``I`` and the radius ``t_c`` of accuracy."""
    n = min(a.size, h.size)
    coeffs = np.zeros(n + 1)
    for m in range(n):
        coeffs[m + 1] = (K * np.dot(a[: m + 1], coeffs[m::-1][: m + 1]) + h[m]) / (m + 1)
    nonzero = np.nonzero(coeffs)[0]
    if nonzero.size == 0:
        return coeffs, 0.0
    lead = nonzero[0]
    tail = [k for k in range(max(lead + 1, coeffs.size - 4), coeffs.size) if coeffs[k] != 0.0]
    if not tail:
        return coeffs, math.inf  # the series terminates: exact everywhere
    radius = min((_REL * abs(coeffs[lead]) / abs(coeffs[k])) ** (1.0 / (k - lead)) for k in tail)
    return coeffs, float(radius)
