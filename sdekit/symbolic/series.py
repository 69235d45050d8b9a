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

import functools
import math

import numpy as np
import sympy as sp

from .parse import t

TERMS = 16
_REL = 2.0**-56


@functools.lru_cache(maxsize=256)
def series_coefficients(expr: sp.Expr, n: int = TERMS) -> tuple[sp.Expr, ...] | None:
    """Symbolic Taylor coefficients of ``expr`` at ``t = 0`` (``None`` if not analytic there)."""
    try:
        poly = sp.series(expr, t, 0, n).removeO()
    except (NotImplementedError, ValueError, TypeError, ZeroDivisionError):
        return None
    coeffs = [sp.simplify(poly.coeff(t, k)) for k in range(n)]
    if sp.expand(poly - sum(c * t**k for k, c in enumerate(coeffs))) != 0:
        return None  # non-integer powers of t: not a Taylor series
    return tuple(coeffs)


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
