"""The numerical path: integrating-factor integrals by quadrature, tabulated as Chebyshev series.

Where sympy finds no closed form (the DriftRec family with ``alpha >= 2``), each
missing integral ``I(t) = int_0^t h(t, s) ds`` is computed by adaptive quadrature
(``scipy.integrate.quad``, relative tolerance 1e-13) at Chebyshev points of
``[0, T]`` and represented by the interpolant of

    q(t) = I(t) / t^p,        q(0) = lim_{t -> 0} I(t) / t^p,

with ``p`` the order at which ``I`` vanishes (``1`` when ``h(0, 0) != 0``, then
``q(0) = h(0, 0)``; ``alpha + 1`` for DriftVE's ``my``, whose integrand starts at
``t^alpha``), which is smooth where ``I`` is and keeps *relative* accuracy as ``t -> 0``
(``I`` itself vanishes there).  The degree doubles (16, 32, ..., 2048) until the
trailing Chebyshev coefficients fall below ``1e-15 max|c|``.  The stated error bound
is the larger of the dropped coefficients' sum and the error measured against fresh
quadrature at points halfway between the nodes, times a safety factor of 4.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import scipy.fft
import scipy.integrate
import torch

QUAD_RTOL = 1e-13
COEFF_TOL = 1e-15
MAX_DEGREE = 2048


@dataclasses.dataclass(frozen=True)
class ChebyshevTable:
    """``I(t) ~= t^order * sum_k c_k T_k(2 t / T - 1)`` on ``[0, T]``, with a relative error bound."""

    T: float
    coeffs: np.ndarray
    rel_error_bound: float
    sqrt_map: bool = False
    order: float = 1.0

    def q(self, t) -> np.ndarray:
        """``q(t) = sum_k c_k T_k(x)``, ``x = _to_unit(t)``, for a float or numpy array ``t``, as
        ``cos(k arccos x) @ c``: one vectorised pass over the coefficients (the quadrature of
        the next integral calls :meth:`integral` at one ``t`` at a time, thousands of times)."""
        x = np.clip(_to_unit(np.asarray(t, dtype=np.float64), self.T, self.sqrt_map), -1.0, 1.0)
        return np.cos(np.multiply.outer(np.arccos(x), np.arange(self.coeffs.size))) @ self.coeffs

    def integral(self, t: float) -> float:
        """``I(t)`` at one float ``t``."""
        return float(t**self.order * self.q(t)) if t > 0 else 0.0

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """``I(t)`` for a float64 tensor ``t`` (any shape), computed as ``t^order * q(t)``."""
        c = torch.as_tensor(self.coeffs, dtype=torch.float64, device=t.device)
        k = torch.arange(c.numel(), dtype=torch.float64, device=t.device)
        theta = torch.acos(_to_unit(t, self.T, self.sqrt_map).clamp(-1.0, 1.0))
        q = torch.cos(theta.unsqueeze(-1) * k) @ c  # T_k(x) = cos(k arccos x)
        return (t if self.order == 1.0 else t**self.order) * q


def _to_unit(t, T: float, sqrt_map: bool):
    """``[0, T] -> [-1, 1]``: ``2 t/T - 1``, or ``2 sqrt(t/T) - 1`` for integrands with
    half-integer powers of ``t`` (then ``q`` is smooth in ``sqrt(t)``, not in ``t``)."""
    u = t / T
    return 2.0 * (u**0.5 if sqrt_map else u) - 1.0


def _cheb_points(n: int, T: float, sqrt_map: bool = False) -> np.ndarray:
    """The ``n + 1`` Chebyshev points of the second kind mapped to ``[0, T]`` (ascending)."""
    u = (1.0 - np.cos(np.pi * np.arange(n + 1) / n)) / 2.0
    return T * (u**2 if sqrt_map else u)


def _coefficients(values: np.ndarray) -> np.ndarray:
    """Chebyshev coefficients from values at ``_cheb_points`` (DCT-I)."""
    n = values.size - 1
    c = scipy.fft.dct(values[::-1], type=1) / n
    c[0] /= 2.0
    c[-1] /= 2.0
    return c


def _quad(h: Callable[[float, float], float], t: float) -> float:
    value, _ = scipy.integrate.quad(lambda s: h(t, s), 0.0, t, epsabs=0.0, epsrel=QUAD_RTOL, limit=1000)
    return value


def tabulate_integral(h: Callable[[float, float], float], T: float, sqrt_map: bool = False,
                      order: float = 1.0, q0: float | None = None) -> ChebyshevTable:
    """Chebyshev table of ``I(t) = int_0^t h(t, s) ds`` on ``[0, T]`` (in ``sqrt(t)`` if ``sqrt_map``),
    represented as ``t^order q(t)``; ``q0 = q(0)`` (default ``h(0, 0)``, right for ``order = 1``)."""
    q_at_0 = h(0.0, 0.0) if q0 is None else q0

    def q(t: float) -> float:
        return q_at_0 if t == 0.0 else _quad(h, t) / t**order

    n = 16
    values = np.array([q(ti) for ti in _cheb_points(n, T, sqrt_map)])
    while True:
        c = _coefficients(values)
        scale = max(np.abs(c).max(), np.finfo(float).tiny)
        if np.abs(c[-4:]).max() <= COEFF_TOL * scale or n >= MAX_DEGREE:
            break
        n *= 2
        new = np.array([q(ti) for ti in _cheb_points(n, T, sqrt_map)[1::2]])
        merged = np.empty(n + 1)
        merged[0::2], merged[1::2] = values, new
        values = merged
    keep = np.nonzero(np.abs(c) > 0.1 * COEFF_TOL * scale)[0]
    last = keep[-1] + 1 if keep.size else 1
    dropped = np.abs(c[last:]).sum()
    c = c[:last]

    table = ChebyshevTable(T=float(T), coeffs=c, rel_error_bound=math.inf, sqrt_map=sqrt_map, order=order)
    check_t = (_cheb_points(2 * n, T, sqrt_map)[1::2])[:: max(1, n // 32)]
    exact = np.array([q(ti) for ti in check_t])
    floor = np.abs(values).min()
    measured = np.max(np.abs(table.q(check_t) - exact)) / floor if floor > 0 else math.inf
    bound = 4.0 * max(measured, dropped / floor if floor > 0 else math.inf, QUAD_RTOL)
    return dataclasses.replace(table, rel_error_bound=float(bound))
