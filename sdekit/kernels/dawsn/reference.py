r"""Dawson's integral, element-wise on tensors of any shape, dtype and device.

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
  float32: 65 rows, K = 6 (truncation < 1e-18 resp. 2e-9 relative).
* ``a >= S`` -- asymptotic form ``D = h / (2a)``, ``h = 1 + y (1/2 + y P(y)/Q(y))``, ``y = 1/a^2``,
  ``P/Q`` the minimax approximation of ``T(y) = (2aD - 1 - y/2)/y^2`` in the relative
  error it causes in ``D``; that error is damped by ``y^2 T / (2aD) <= 0.0012``, so the
  tail's alternating coefficients cost nothing.  It is evaluated as ``(h/2)/a``, since
  ``2a`` overflows for ``a`` above half the largest float.  float64: ``S = 5``, degree (8, 8);
  float32: ``S = 4``, degree (3, 3).  ``y`` underflows to 0 for huge ``a``, giving
  ``1/(2a)``; ``a = inf`` gives 0.

Both branches run in every lane and one select picks the result: no divergent
branch, one gather per table column (a few kB, L1-resident on a GPU), 2 divisions
plus one for ``y``.  Coefficients: ``tools/dawson_minimax.py`` (60-digit mpmath;
rational Remez exchange for the tail).

Why this and not the alternatives:

* *Cody-Paciorek-Thacher / Cephes* rational approximations (x P(x^2)/Q(x^2) on
  [0, 3.25), asymptotic-form quotients on [3.25, 6.25) and [6.25, inf)) are
  branch-free polynomial arithmetic, the right family for a GPU, and were tried
  first (own Remez fits, degree (12, 13) on [0, 5)): the approximation error was
  0.03 ulp, but Horner's rounding in ``P(x^2)`` and ``Q(x^2)`` for ``x^2`` up to 25
  -- where the terms ``p_k x^(2k)`` peak at mid degree -- reached 6 ulp (5 with
  FMA) in float64 and 4.4 ulp in float32.  Cephes states 6.9e-16 peak (3-6 ulp).
  The Taylor table has no such growth: 1.0 ulp measured.  The rational form is
  kept for the tail, where its error is damped as above.
* *Faddeeva-based* (scipy's ``dawsn`` is ``sqrt(pi)/2 Im w(x)`` from S. G. Johnson's
  package): 100 Chebyshev sub-intervals chosen by a ``switch`` plus a continued
  fraction for large ``x`` -- the same table idea with a 7 kB table, a divergent
  branch per warp, and more code than one function needs.
* *Rybicki's method* (Numerical Recipes ``dawson``): a sum of ~6 Gaussians around
  the nearest grid point -- several ``exp`` per element and ``~2e-7`` accuracy at
  the published ``h = 0.4``: float32 at best.
* *Power series* ``e^{-x^2} sum x^(2n+1)/(n!(2n+1))``: ``~x^2 + 10x`` terms and an
  ``exp(-x^2)`` whose argument rounds, so the error grows like ``x^2`` ulp.

Accuracy (tests/test_dawson.py, against mpmath at 40 digits on |x| in
[1e-12, 1e12] plus region boundaries; numbers in ``benchmarks/RESULTS.md``):
asserted <= 4 ulp in float64 and float32 (float32 against the exact value at the
float32 input); measured 1.0 ulp (float64) and 1.4 ulp (float32) on the CPU, with or
without FMA.  Special values: ``D(+-0) = +-0``, ``D(+-inf) = +-0``, ``D(nan) = nan``;
float16/bfloat16 inputs are computed in float32 and rounded.

Autograd: ``D'(x) = 1 - 2 x D(x)`` from the saved output (so it is exact to the
accuracy of ``D``, and twice differentiable).
"""
from __future__ import annotations

import os
import warnings

import torch

from ..kernels.dispatch import register, resolve
from . import _dawson_coeffs as C

__all__ = ["dawsn", "dawsn_reference"]


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


def dawsn_reference(x: torch.Tensor) -> torch.Tensor:
    """Torch reference of ``D(x)`` (float32/float64, any device): the specification.

    Plain element-wise torch ops plus gathers from the Taylor table, so dynamo
    and inductor trace it.  :func:`dawsn` wraps it with the exact derivative
    ``1 - 2 x D``.
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
    acc = table[-1][idx]
    for k in range(table.shape[0] - 2, 1, -1):
        acc.mul_(s).add_(table[k][idx])
    d_inner = table[0][idx] + (acc * s + table[1][idx])
    # |x| >= split: asymptotic form with the rational tail
    y = 1.0 / (a * a)
    r = _horner(tp, y) / _horner(tq, y)
    d_tail = (0.5 * (1.0 + y * (0.5 + y * r))) / a  # = h / (2a), without overflowing 2a
    return torch.copysign(torch.where(inner, d_inner, d_tail), x)


# CPU fast path: eager torch makes one pass over memory per operation above (about
# 60, counting the gathers); inductor fuses them into one C++ loop whose results are
# bitwise those of eager (tests/test_dawson.py checks it), 10-12x faster on 2^20
# elements here (benchmarks/RESULTS.md).
_CPU_COMPILE_MIN_NUMEL = 1 << 15
_cpu_compiled = {}


def _cpu_compiled_reference():
    if "fn" not in _cpu_compiled:
        _cpu_compiled["fn"] = torch.compile(dawsn_reference, dynamic=True)
    return _cpu_compiled["fn"]


@register("dawsn", "torch")
def dawsn_torch(x: torch.Tensor) -> torch.Tensor:
    """The ``"torch"`` backend: :func:`dawsn_reference`, compiled by inductor for large CPU tensors.

    Large eager CPU calls (``numel >= 2^15``) run the reference through
    ``torch.compile`` (compiled once per dtype, a few seconds on first use); set
    ``SDEKIT_DAWSN_CPU_COMPILE=0`` to stay eager.  If compilation fails (no C++
    compiler, say), the eager reference is used from then on, with one warning.
    """
    if (x.device.type == "cpu" and x.numel() >= _CPU_COMPILE_MIN_NUMEL and "failed" not in _cpu_compiled
            and not torch.compiler.is_compiling()
            and os.environ.get("SDEKIT_DAWSN_CPU_COMPILE", "1") not in ("", "0")):
        try:
            return _cpu_compiled_reference()(x)
        except Exception as exc:  # pragma: no cover - depends on the toolchain
            _cpu_compiled["failed"] = repr(exc)
            warnings.warn(f"sdekit.special.dawsn: torch.compile of the CPU path failed ({exc!r}); "
                          "using the eager reference", RuntimeWarning, stacklevel=2)
    return dawsn_reference(x)


class _DawsonReference(torch.autograd.Function):
    """``D`` by the torch reference with ``dD/dx = 1 - 2 x D``."""

    @staticmethod
    def forward(x):
        return dawsn_torch(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)

    @staticmethod
    def backward(ctx, grad):
        x, d = ctx.saved_tensors
        return grad * (1.0 - 2.0 * x * d)


def dawsn(x: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Dawson's integral ``D(x) = exp(-x^2) int_0^x exp(s^2) ds``, element-wise.

    ``x``: a floating tensor (float32/float64; float16/bfloat16 are computed in
    float32), any shape and strides, on CPU or CUDA; a Python float or a 0-d tensor
    is accepted too (a Python number gives a 0-d float64 tensor).
    ``backend``: ``"auto"`` (fastest for the device), ``"torch"``, ``"triton"`` or
    ``"cuda"`` (see :mod:`sdekit.kernels.dispatch`).  Differentiable:
    ``D'(x) = 1 - 2 x D(x)``.  Accuracy: <= 4 ulp (see the module docstring).
    """
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        x = torch.tensor(float(x), dtype=torch.float64)  # a Python float is a double
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"dawsn: x must be a torch.Tensor or a Python float, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"dawsn: x must have a floating dtype, got {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16):
        return dawsn(x.float(), backend=backend).to(x.dtype)
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dawsn: unsupported dtype {x.dtype}; use float16/bfloat16/float32/float64")
    impl = resolve("dawsn", backend, x.device)
    if impl is dawsn_torch:
        return _DawsonReference.apply(x)
    return impl(x)  # kernels are custom ops with their own autograd formula


# Kernel backends register themselves with the dispatcher on import.
from ..kernels import dawson_cuda as _dawson_cuda  # noqa: E402,F401
from ..kernels import dawson_triton as _dawson_triton  # noqa: E402,F401
