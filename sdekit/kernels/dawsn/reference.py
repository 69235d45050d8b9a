r"""Dawson's integral ``D(x)``: the equations, the algorithm, and the torch reference.

.. math::

    D(x) = e^{-x^2} \int_0^x e^{s^2}\,ds = \tfrac{\sqrt\pi}{2} e^{-x^2} \operatorname{erfi}(x),
    \qquad D'(x) = 1 - 2 x D(x), \qquad D(-x) = -D(x).

``D(x) = x - 2x^3/3 + ...`` near 0 and ``D(x) = 1/(2x) (1 + 1/(2x^2) + 3/(4x^4) + ...)``
as ``|x| -> inf`` (asymptotic, divergent); the maximum is ``D(0.9241...) = 0.5410...``.

Algorithm (the same arithmetic in the torch reference, the Triton kernel and the
CUDA kernel; ``a = |x|``, the sign is restored with ``copysign`` so oddness is exact):

* ``a < S`` -- Taylor table.  With the grid ``x0 = i h`` (``h = 1/16``) and the nearest
  point ``i = floor(a/h + 1/2)``, ``s = a - x0`` (exact, ``|s| <= 1/32``)::

      D(x0 + s) = c_0 + c_1 s + ... + c_K s^K,
      c_1 = 1 - 2 x0 c_0,   c_(k+1) = -2 (x0 c_k + c_(k-1)) / (k + 1)      (from D' = 1 - 2xD)

  ``c_0 = D(x0)`` is stored as a double-word ``hi + lo`` and the sum is evaluated as
  ``hi + (s (c_1 + s (c_2 + ...)) + lo)``: its terms fall by a factor ``<= 0.4`` per
  power, so Horner's rounding errors are damped and the result is ``hi`` plus a
  small correction -- about one rounding in all.  float64: 81 rows, K = 12;
  float32: 65 rows, K = 6.
* ``a >= S`` -- asymptotic form ``D = h / (2a)``, ``h = 1 + y (1/2 + y P(y)/Q(y))``, ``y = 1/a^2``,
  ``P/Q`` the minimax approximation of ``T(y) = (2aD - 1 - y/2)/y^2`` in the relative
  error it causes in ``D``; that error is damped by ``y^2 T / (2aD)``, small for ``a >= S``, so
  the tail's alternating coefficients cost nothing.  It is evaluated as ``(h/2)/a``, since
  ``2a`` overflows for ``a`` above half the largest float.  float64: ``S = 5``, degree (8, 8);
  float32: ``S = 4``, degree (3, 3).  ``y`` underflows to 0 for huge ``a``, giving
  ``1/(2a)``; ``a = inf`` gives 0.

Both branches run in every lane and one select picks the result: no divergent
branch, one gather per table column (a few kB, L1-resident on a GPU), 2 divisions
plus one for ``y``.  Coefficients: ``tools/dawson_minimax.py`` (60-digit mpmath;
rational Remez exchange for the tail), in :mod:`.coefficients` and, for the compiled
kernels, ``sdekit/csrc/dawson_coeffs.h``.

Why this and not the alternatives (measurements in ``benchmarks/RESULTS.md``):

* *Cody-Paciorek-Thacher / Cephes* rational approximations ``x P(x^2)/Q(x^2)``: branch-free,
  but Horner's rounding in ``P(x^2)`` and ``Q(x^2)`` grows with ``x^2`` (terms ``p_k x^(2k)``
  peak at mid degree), so they miss a 4-ulp bound on ``[0, 5)``; the Taylor table has no such
  growth.  The rational form is kept for the tail, where its error is damped as above (and,
  below ``|x| = 2.25`` only, in the CPU backend's AVX2 float64 kernel).
* *Faddeeva-based* (scipy's ``dawsn`` is ``sqrt(pi)/2 Im w(x)`` from S. G. Johnson's
  package): 100 Chebyshev sub-intervals chosen by a ``switch`` plus a continued
  fraction -- the same table idea with a larger table and a divergent branch per warp.
* *Rybicki's method* (Numerical Recipes ``dawson``): several ``exp`` per element, float32
  accuracy at best at the published step.
* *Power series* ``e^{-x^2} sum x^(2n+1)/(n!(2n+1))``: ``~x^2 + 10x`` terms and an
  ``exp(-x^2)`` whose argument rounds, so the error grows like ``x^2`` ulp.

Accuracy: <= 4 ulp in float64 and float32 (float32 against the exact value at the float32
input), asserted by tests/test_dawson.py against 40-digit mpmath on ``|x|`` in
``[1e-12, 1e12]`` plus region boundaries.  Special values: ``D(+-0) = +-0``,
``D(+-inf) = +-0``, ``D(nan) = nan``.

This module is the torch reference (the specification); the kernels are ``triton.py``,
``cuda.py`` (``sdekit/csrc/dawson.cuh``) and ``cpu.py`` (the same header compiled for the
host, or on AVX-512 and AVX2 + FMA builds ``sdekit/csrc/cpu/dawson_simd.h``: this algorithm on
whole vectors, in float64 with a coarser table on AVX-512 and without a table on AVX2), and the checks, dispatch and autograd (``D' = 1 - 2 x D``) are in ``__init__.py``.
"""
from __future__ import annotations

import torch

from ..dispatch import register
from . import coefficients as C

__all__ = ["dawsn_reference", "dawson_coefficients", "taylor_table"]


def _horner(coeffs, z: torch.Tensor) -> torch.Tensor:
    """``sum_k coeffs[k] z^k``, highest power first, one rounding per multiply and add."""
    acc = torch.full_like(z, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc.mul_(z).add_(c)
    return acc


def dawson_coefficients(dtype: torch.dtype):
    """``(split, step, taylor_rows, tail_P, tail_Q)`` for the compute dtype (Python floats)."""
    if dtype == torch.float64:
        return C.FLOAT64_SPLIT, C.FLOAT64_TAYLOR_STEP, C.FLOAT64_TAYLOR, C.FLOAT64_TAIL_P, C.FLOAT64_TAIL_Q
    if dtype == torch.float32:
        return C.FLOAT32_SPLIT, C.FLOAT32_TAYLOR_STEP, C.FLOAT32_TAYLOR, C.FLOAT32_TAIL_P, C.FLOAT32_TAIL_Q
    raise TypeError(f"dawsn computes in float32 or float64, got {dtype}")


_TABLES: dict = {}


def taylor_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The Taylor table as a ``(K + 2, rows)`` tensor: row ``k`` holds column ``k`` of every grid row."""
    key = (dtype, device)
    if key not in _TABLES:
        _, _, rows, _, _ = dawson_coefficients(dtype)
        _TABLES[key] = torch.tensor(rows, dtype=dtype, device=device).t().contiguous()
    return _TABLES[key]


@register("dawsn", "torch")
def dawsn_reference(x: torch.Tensor) -> torch.Tensor:
    """Torch reference of ``D(x)`` (float32/float64, any device): the specification.

    Plain element-wise torch ops plus gathers from the Taylor table, so dynamo
    and inductor trace it.
    """
    split, step, _, tp, tq = dawson_coefficients(x.dtype)
    table = taylor_table(x.dtype, x.device)
    a = x.abs()
    inner = a < split
    # |x| < split: nearest grid point x0 = i * step (a power of two, so i, x0 and s are exact)
    ai = torch.where(inner, a, torch.zeros_like(a))  # also maps nan and inf to row 0
    i = torch.floor(ai * (1.0 / step) + 0.5)
    s = ai - i * step
    idx = i.to(torch.int64)
    # First Horner step out of place: with a 0-d x, table[k][idx] is a view of the table.
    acc = table[-1][idx] * s + table[-2][idx]
    for k in range(table.shape[0] - 3, 1, -1):
        acc.mul_(s).add_(table[k][idx])
    d_inner = table[0][idx] + (acc * s + table[1][idx])
    # |x| >= split: asymptotic form with the rational tail
    y = 1.0 / (a * a)
    r = _horner(tp, y) / _horner(tq, y)
    d_tail = (0.5 * (1.0 + y * (0.5 + y * r))) / a  # = h / (2a), without overflowing 2a
    return torch.copysign(torch.where(inner, d_inner, d_tail), x)
