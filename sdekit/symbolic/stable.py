"""Rewrite derived expressions into forms that stay finite and accurate in float64.

sympy's antiderivatives are correct but numerically naive:

* ``exp(big) * erfi(z)`` overflows long before the product does.  With
  ``erfi(z) = 2/sqrt(pi) exp(z^2) D(z)`` (``D`` = Dawson) the exponentials of a
  term can be merged into one, whose exponent then cancels symbolically.  For
  TSDVE, ``exp(-gamma t^2) erfi(sqrt(gamma) t + k/sqrt(gamma))`` becomes
  ``exp(2 k t + k^2/gamma) D(...)``: finite for any ``gamma``.
* ``1 - exp(z)`` cancels for small ``z``; it becomes ``-expm1(z)``.
* A sum that is a polynomial in one exponential, like sub-VP's
  ``1 - 2 exp(-B) + exp(-2 B)``, cancels to ``O(B^2)`` near ``t = 0``; factored it is
  ``expm1(-B)^2``, accurate to the last bit.

:func:`stabilize` applies the three in that order.  The result is checked
numerically by the caller (finite on a grid, and against quadrature in the tests).
"""
from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1

from .functions import dawsn


def _is_exp(e: sp.Basic) -> bool:
    return isinstance(e, sp.exp)


def erfi_to_dawsn(expr: sp.Expr) -> sp.Expr:
    """``erfi(z) -> 2/sqrt(pi) exp(z^2) D(z)``."""
    return expr.replace(sp.erfi, lambda z: 2 / sp.sqrt(sp.pi) * sp.exp(z**2) * dawsn(z))


def _merge_term(term: sp.Expr) -> sp.Expr:
    """One product with all its ``exp`` factors merged into a single ``exp(expanded sum)``."""
    factors = sp.Mul.make_args(term)
    exponent = sp.expand(sp.Add(*(f.args[0] for f in factors if _is_exp(f))))
    rest = [f for f in factors if not _is_exp(f)]
    rest = [f.func(*(sp.expand(a) for a in f.args)) if isinstance(f, dawsn) else f for f in rest]
    return sp.Mul(*rest) * sp.exp(exponent)


def merge_exponentials(expr: sp.Expr) -> sp.Expr:
    """Expand into a sum of products and merge each product's exponentials."""
    expanded = sp.expand(expr, power_exp=False, deep=False)
    return sp.Add(*(_merge_term(term) for term in sp.Add.make_args(expanded)))


def _split_exp(term: sp.Expr):
    """``term = k * exp(z)`` with ``k`` free of ``exp``: return ``(k, z)``, else ``None``."""
    factors = sp.Mul.make_args(term)
    exps = [f for f in factors if _is_exp(f)]
    if len(exps) != 1:
        return None
    k = sp.Mul(*(f for f in factors if not _is_exp(f)))
    if k.has(sp.exp):
        return None
    return k, exps[0].args[0]


def use_expm1(expr: sp.Expr) -> sp.Expr:
    """Pair ``k exp(z)`` with ``-k`` in every sum: ``k expm1(z)``."""
    if not expr.args:
        return expr
    expr = expr.func(*(use_expm1(a) for a in expr.args))
    if not isinstance(expr, sp.Add):
        return expr
    terms = list(expr.args)
    for i, term in enumerate(terms):
        split = _split_exp(term)
        if split is None:
            continue
        k, z = split
        for j, other in enumerate(terms):
            if j != i and not other.has(sp.exp) and sp.expand(other + k) == 0:
                terms[i], terms[j] = k * expm1(z), sp.S.Zero
                break
    return sp.Add(*terms)


def _positive_integer(e: sp.Expr) -> bool:
    return bool(e.is_Integer and e > 0)


def factor_exponential_polynomial(expr: sp.Expr, t: sp.Symbol) -> sp.Expr:
    """Factor a sum that is a polynomial in a single ``exp(z(t))``.

    ``1 - 2 exp(-B) + exp(-2B)`` becomes ``(exp(-B) - 1)^2``, which :func:`use_expm1`
    then turns into ``expm1(-B)^2``.  Sums of any other shape are returned unchanged.
    """
    terms = sp.Add.make_args(expr)
    exponents = {f.args[0] for term in terms for f in sp.Mul.make_args(term) if _is_exp(f) and f.has(t)}
    if len(terms) < 3 or not exponents:
        return expr
    for base in sorted(exponents, key=sp.count_ops):
        if all(_positive_integer(sp.cancel(z / base)) for z in exponents):
            break
    else:
        return expr
    u = sp.Dummy("u")
    poly_terms = []
    for term in terms:
        factors = sp.Mul.make_args(term)
        power = sp.S.Zero
        rest = []
        for f in factors:
            if _is_exp(f) and f.has(t):
                power += sp.cancel(f.args[0] / base)
            else:
                rest.append(f)
        if sp.Mul(*rest).has(t):
            return expr
        poly_terms.append(sp.Mul(*rest) * u**power)
    factored = sp.factor(sp.Add(*poly_terms), u)
    if factored.is_Add:  # no factorisation found
        return expr
    return factored.xreplace({u: sp.exp(base)})


def stabilize(expr: sp.Expr, t: sp.Symbol) -> sp.Expr:
    """Rewrite ``expr`` into a float64-stable form (see the module docstring)."""
    expr = sp.piecewise_fold(expr)
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*((stabilize(e, t), c) for e, c in expr.args))
    expr = merge_exponentials(erfi_to_dawsn(expr))
    expr = factor_exponential_polynomial(expr, t)
    return use_expm1(expr)
