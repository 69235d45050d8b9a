"""Taylor series of the integrating-factor integrals at ``t = 0``.

Closed forms like TSDVE's variance are differences of two terms of equal size at
``t = 0`` (``exp(2kt) D(u_t) - exp(-gamma t^2) D(u_0)``): near ``t = 0`` they cancel and
lose ``log10(term / v)`` digits.  There the series is exact to rounding instead.

``I(t) = exp(K A(t)) int_0^t exp(-K A(s)) h(s) ds`` solves ``I' = K a I + h``,
``I(0) = 0``; with ``a = sum a_j t^j``, ``h = sum h_j t^j`` and ``I = sum I_m t^m``,

    (m + 1) I_{m+1} = K sum_{j=0}^{m} a_j I_{m-j} + h_m.

:func:`taylor_integral` returns ``I_0 .. I_N`` and a *candidate* radius ``t_c``: below it
every computed term beyond the leading one is smaller than ``2^-56`` of it (``0``, no
series branch, when a term overflows float64).  That says
nothing about the terms beyond ``N``, so the candidate is only an estimate:
:mod:`sdekit.symbolic.marginals` verifies it against a 50-digit evaluation of the closed
form and shrinks it until they agree, and treats a series as terminating only when the
solution is a polynomial in ``t`` symbolically.
"""
from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp

from .parse import t

TERMS = 16
_REL = 2.0**-56


def analytic_at_zero(expr: sp.Expr, values: dict | None = None) -> bool:
    """Conservative structural test that ``expr`` is analytic at ``t = 0`` (for ``t``
    near 0 and positive parameters, or the parameter ``values`` given): powers of
    ``t``-dependent bases need a non-negative integer exponent or a base that is nonzero
    at 0; ``log`` and ``Abs`` need a nonzero argument there."""
    if values:
        expr = expr.xreplace({p: sp.Rational(v) for p, v in values.items()})
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
    if not analytic_at_zero(expr, dict(zip(symbols[1:], values))):
        return None
    fn = sp.lambdify(symbols, expr, modules=[{"dawsn": mp_dawsn, "expm1": mpmath.expm1}, "mpmath"])
    with mpmath.workdps(40):
        args = [mpmath.mpf(v) for v in values]
        coeffs = mpmath.taylor(lambda tt: fn(tt, *args), 0, n - 1)
    return np.array([float(c) for c in coeffs])


def mp_dawsn(z):
    """Dawson's integral in mpmath, ``sqrt(pi)/2 exp(-z^2) erfi(z)``."""
    return mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-z * z) * mpmath.erfi(z)


def taylor_integral(a: np.ndarray, h: np.ndarray, K: float) -> tuple[np.ndarray, float]:
    """Coefficients ``I_0..I_N`` (``I_0 = 0``) of ``I`` and the radius ``t_c`` of accuracy."""
    n = min(a.size, h.size)
    coeffs = np.zeros(n + 1)
    # Huge coefficients (VPSDE(0.1, 1e300): a_1 = -5e299) overflow the recursion; handled below.
    with np.errstate(over="ignore", invalid="ignore"):
        for m in range(n):
            coeffs[m + 1] = (K * np.dot(a[: m + 1], coeffs[m::-1][: m + 1]) + h[m]) / (m + 1)
    if not np.all(np.isfinite(coeffs)):
        return coeffs, 0.0  # terms beyond float64's range: no series branch, the closed form alone
    nonzero = np.nonzero(coeffs)[0]
    if nonzero.size == 0:
        return coeffs, 0.0
    lead = nonzero[0]
    # The last (up to) four nonzero terms beyond the leading one; zeros at the end of the table
    # do not mean the series terminates (DriftVE(5)'s my = 1 - exp(-gamma t^6 / 6) has nonzero
    # terms at t^6 and t^12 only, then t^18), so they say nothing about the radius.
    tail = [k for k in nonzero if k > lead][-4:]
    if not tail:
        return coeffs, 0.0  # one nonzero term: no estimate of the radius
    radius = min((_REL * abs(coeffs[lead]) / abs(coeffs[k])) ** (1.0 / (k - lead)) for k in tail)
    return coeffs, float(radius)
