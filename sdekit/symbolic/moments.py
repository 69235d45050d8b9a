"""Derive the marginal moments of a linear SDE with sympy.

For ``dx = (a x + c y) dt + g dw`` and ``x(0) = x0`` (variance ``v0``), the mean
``m = mx x0 + my y`` and the variance ``v`` solve

    dm/dt = a(t) m + c(t) y,          dv/dt = 2 a(t) v + g(t)^2,

and the integrating factor ``exp(-A)``, ``A(t) = int_0^t a``, solves both:

    mx(t) = exp(A(t)),
    my(t) = exp(A(t)) int_0^t exp(-A(s)) c(s) ds,
    v(t)  = exp(2 A(t)) (v0 + int_0^t exp(-2 A(s)) g(s)^2 ds).

(sympy's ``dsolve`` fails on TSDVE's variance ODE; these integrals do not.)  Each
integral is attempted with ``sympy.integrate`` under one time budget for the whole
derivation, enforced on every thread: by ``SIGALRM`` on the main thread, elsewhere by
running sympy in a child process that is killed when the time is up.  An integral that
comes back unevaluated or too late is marked ``None`` (``Derivation.reasons`` says which
of the two) and evaluated numerically by :mod:`sdekit.symbolic.numeric` instead.  Results are rewritten by
:func:`sdekit.symbolic.stable.stabilize`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Mapping

import sympy as sp

from . import disk_cache
from .parse import LinearCoefficients, t
from .stable import stabilize

#: Integration variable.
s = sp.Symbol("s", real=True, nonnegative=True)
#: Initial variance ``v(0)``.
v0 = sp.Symbol("v0", nonnegative=True)

#: Seconds sympy may spend on one derivation (all its integrals) before sdekit takes the
#: numerical path (environment variable ``SDEKIT_SYMPY_BUDGET`` overrides).  TSDVE's erfi
#: integral takes about 1 s (6 s on a loaded machine); hopeless integrals (``exp(s^(3/2))``, ``t**(3/10)`` drifts)
#: are cut off here.
DEFAULT_TIME_BUDGET = float(os.environ.get("SDEKIT_SYMPY_BUDGET", 20))

OUT_OF_TIME = "sympy's time budget ran out"
NOT_FOUND = "sympy found no closed form"
DIVERGES = "the integral diverges (a coefficient is not integrable from t = 0)"


@dataclasses.dataclass(frozen=True)
class Derivation:
    """Mean and variance ODEs of a linear SDE and, where sympy found them, their solutions.

    ``A``, ``mx``, ``my``, ``v`` are sympy expressions in ``t``, the parameters and
    ``v0``, already in stable form (:mod:`~sdekit.symbolic.stable`), or ``None`` where
    no closed form was found; ``reasons[name]`` then says why (:data:`OUT_OF_TIME`,
    :data:`NOT_FOUND` or :data:`DIVERGES`).  ``my`` is ``0`` for SDEs without ``y``-drift.
    """

    coefficients: LinearCoefficients
    mean_ode: sp.Eq
    variance_ode: sp.Eq
    A: sp.Expr | None
    mx: sp.Expr | None
    my: sp.Expr | None
    v: sp.Expr | None
    reasons: Mapping[str, str] = dataclasses.field(default_factory=dict)


class _OutOfTime(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: float):
    """Raise :class:`_OutOfTime` after ``seconds`` (main thread on POSIX only)."""

    def _raise(signum, frame):
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# A child process that integrates one srepr'd (integrand, s, t) read from stdin; only sympy.
_CHILD = "import sys\nfrom sympy import *\ne, s, t = eval(sys.stdin.read())\nprint(srepr(integrate(e, (s, 0, t))))"


def _integrate_in_child(prepared: sp.Expr, seconds: float) -> sp.Expr | None:
    """``sympy.integrate`` in a child process killed after ``seconds``: a bound that holds on
    any thread (``SIGALRM`` works on the main thread only, and a thread cannot be stopped)."""
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD], input=sp.srepr((prepared, s, t)),
                              capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        raise _OutOfTime from None
    if done.returncode != 0:
        return None
    return sp.sympify(done.stdout.strip())


def _bounded_integrate(prepared: sp.Expr, deadline: float | None) -> sp.Expr | None:
    """``int_0^t prepared ds`` by sympy, stopped at the ``time.monotonic()`` ``deadline``."""
    if deadline is None:
        return sp.integrate(prepared, (s, 0, t))
    seconds = deadline - time.monotonic()
    if seconds <= 0:
        raise _OutOfTime
    if hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread():
        with _alarm(seconds):
            return sp.integrate(prepared, (s, 0, t))
    return _integrate_in_child(prepared, seconds)


def _integrable_form(integrand: sp.Expr) -> tuple[sp.Expr, dict]:
    """Prepare an integrand for ``sympy.integrate``.

    Powers with symbolic exponents become exponentials and ``log``s of parameters
    become plain real symbols: sympy then treats ``(sigma_max/sigma_min)**(2 s)`` as
    ``exp(2 s L)`` instead of trying (and failing) to decide the sign of ``L``.
    Returns the new integrand and the map that undoes the substitution.
    """
    e = sp.expand_power_base(sp.expand(integrand).rewrite(sp.exp), force=True)
    e = sp.expand_log(sp.powsimp(e, combine="exp"), force=True)
    logs = sorted((L for L in e.atoms(sp.log) if s not in L.free_symbols), key=sp.default_sort_key)
    forward = {L: sp.Dummy(f"L{i}", real=True) for i, L in enumerate(logs)}
    return e.xreplace(forward), {d: L for L, d in forward.items()}


def _integrate(integrand: sp.Expr, deadline: float | None) -> tuple[sp.Expr | None, str]:
    """``int_0^t integrand(s) ds`` in closed form and ``""``, or ``None`` and the reason."""
    if integrand.is_zero:
        return sp.S.Zero, ""
    prepared, undo = _integrable_form(integrand)
    try:
        result = _bounded_integrate(prepared, deadline)
    except _OutOfTime:
        return None, OUT_OF_TIME
    except (NotImplementedError, ValueError, TypeError, sp.SympifyError):  # sympy gives up in these ways too
        return None, NOT_FOUND
    if result is None or result.has(sp.Integral) or result.has(sp.nan):
        return None, NOT_FOUND
    if result.has(sp.oo, -sp.oo, sp.zoo):  # int_0^t ds/s: "mx(t) = 0" and "v(t) = oo + ..." were printed
        return None, DIVERGES
    return result.xreplace(undo), ""


#: Solutions known by construction (``LinearSDE.from_marginals``: ``mx = a``, ``v = b^2``), by coefficients.
_KNOWN: dict[LinearCoefficients, tuple] = {}


def register_known_solution(coefficients: LinearCoefficients, A: sp.Expr, my: sp.Expr, v: sp.Expr) -> None:
    """Record ``(A, my, v)`` (``mx = exp(A)``) for ``coefficients``, solved by construction, so
    :func:`derive` returns them without running sympy.  They are checked like any derived
    solution (:meth:`sdekit.symbolic.marginals.Marginals.self_check`)."""
    _KNOWN[coefficients] = (A, sp.exp(A), my, stabilize(v, t))


def derive(coefficients: LinearCoefficients, budget: float | None = None) -> Derivation:
    """Solve the mean and variance ODEs of ``coefficients`` by the integrating factor, spending
    at most ``budget`` seconds in sympy (``None``: :data:`DEFAULT_TIME_BUDGET` as it is when
    called; ``math.inf``: no limit)."""
    return _derive_cached(coefficients, DEFAULT_TIME_BUDGET if budget is None else budget)


@functools.lru_cache(maxsize=128)
def _derive_cached(coefficients: LinearCoefficients, budget: float | None) -> Derivation:
    a, c, g = coefficients.a, coefficients.c, coefficients.g
    m, v = sp.Function("m"), sp.Function("v")
    y = sp.Symbol("y", real=True)
    mean_ode = sp.Eq(sp.Derivative(m(t), t), a * m(t) + c * y)
    variance_ode = sp.Eq(sp.Derivative(v(t), t), 2 * a * v(t) + g**2)
    solutions, reasons = _KNOWN.get(coefficients) or disk_cache.load(coefficients), {}
    if solutions is None:
        solutions, reasons = _solve(coefficients, None if math.isinf(budget) else time.monotonic() + budget)
        disk_cache.store(coefficients, solutions)
    return Derivation(coefficients, mean_ode, variance_ode, *solutions, reasons=reasons)


def _solve(coefficients: LinearCoefficients, deadline: float | None) -> tuple[tuple, dict[str, str]]:
    """``(A, mx, my, v)`` by the integrating factor, ``None`` for each one without closed form,
    and the reason for each ``None``."""
    a, c, g = coefficients.a, coefficients.c, coefficients.g
    at_s = {t: s}
    A, why = _integrate(a.xreplace(at_s), deadline)
    if A is None:
        return (None, None, None, None), {"mx": why, "my": why, "v": why}
    A = sp.simplify(A)
    A_s = A.xreplace(at_s)
    mx = sp.exp(A)
    reasons = {}

    if c.is_zero:
        my = sp.S.Zero
    else:
        integral, reasons["my"] = _integrate(sp.exp(-A_s) * c.xreplace(at_s), deadline)
        my = None if integral is None else stabilize(sp.exp(A) * integral, t)

    integral, reasons["v"] = _integrate(sp.exp(-2 * A_s) * (g**2).xreplace(at_s), deadline)
    var = None if integral is None else mx**2 * v0 + stabilize(sp.exp(2 * A) * integral, t)
    return (A, mx, my, var), {name: why for name, why in reasons.items() if why}
