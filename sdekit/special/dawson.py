r"""Dawson's integral, element-wise on tensors of any shape, dtype and device.

.. math::

    D(x) = e^{-x^2} \int_0^x e^{s^2}\,ds = \tfrac{\sqrt\pi}{2} e^{-x^2} \operatorname{erfi}(x),
    \qquad D'(x) = 1 - 2 x D(x), \qquad D(-x) = -D(x).

``D(x) = x - 2x^3/3 + ...`` near 0 and ``D(x) = 1/(2x) (1 + 1/(2x^2) + 3/(4x^4) + ...)``
as ``|x| -> inf`` (asymptotic, divergent); the maximum is ``D(0.9241...) = 0.5410...``.

Algorithm (the same arithmetic in the torch reference, the Triton kernel and the
CUDA kernel; ``a = |x|``, the sign is restored with ``copysign`` so oddness is exact):

* inner region ``a < s``:  ``D = a * P(t) / Q(t)``, ``t = a^2``;
* tail region ``a >= s``:  ``D = (1 + y (1/2 + y P(y) / Q(y))) / (2a)``, ``y = 1/a^2``;

with ``P/Q`` minimax rational approximations in relative error, derived for each
precision by ``tools/dawson_minimax.py`` (rational Remez exchange in 50-digit
mpmath).  float64: ``s = 5``, inner degree (12, 13), tail (8, 8); float32: ``s = 4``,
inner (7, 7), tail (3, 3).  Both quotients are evaluated in every lane (Horner,
no branches); one select picks the quotient, so each lane does 3 divisions.

Why this and not the alternatives:

* *Cody-Paciorek-Thacher / Cephes* (rational approximations on [0, 3.25),
  [3.25, 6.25), [6.25, inf)) is the right family -- branch-free polynomial
  arithmetic that a GPU runs at full rate -- but three regions cost three sets of
  coefficients per lane, its middle and outer quotients in ``y`` have large
  alternating coefficients (poles of ``P/Q`` near ``y < 0`` where the asymptotic
  series' essential singularity sits), which amplifies rounding, and Cephes
  states a peak error of 6.9e-16 (about 3-6 ulp).  Here the tail keeps its
  leading ``1 + y/2`` exact and fits only ``T(y) = (2aD - 1 - y/2)/y^2``; a
  relative error of ``T`` reaches ``D`` damped by ``y^2 T / (2aD) <= 0.0012``
  (float64), so the tail's conditioning stops mattering and two regions suffice.
* *Faddeeva-based* (scipy's ``dawsn`` is ``sqrt(pi)/2 Im w(x)`` from S. G. Johnson's
  package): 100 Chebyshev sub-intervals selected by a ``switch`` plus a
  continued fraction for large ``x`` -- a table lookup per lane and a divergent
  branch per warp on a GPU, and more code than one function needs.
* *Rybicki's method* (Numerical Recipes ``dawson``): a sum of ~6 Gaussians around
  the nearest grid point, i.e. several ``exp`` per element, with ``~2e-7``
  accuracy at the published ``h = 0.4``: float32 at best, not float64.
* *Series*: ``e^{-x^2} sum x^(2n+1)/(n!(2n+1))`` needs ``~x^2 + 10x`` terms and
  an accurate ``exp(-x^2)`` (``x^2`` rounds, so the error grows like ``x^2`` ulp).

Accuracy (tests/test_dawson.py, against mpmath at 40 digits on |x| in
[1e-12, 1e12] plus region boundaries): see ``benchmarks/RESULTS.md``; the bound
asserted is 4 ulp in float64 and in float32 (against the exact value at the
float32 input).  Special values: ``D(+-0) = +-0``, ``D(+-inf) = +-0``,
``D(nan) = nan``; float16/bfloat16 inputs are computed in float32 and rounded.

Autograd: ``D'(x) = 1 - 2 x D(x)`` from the saved output (so it is exact to the
accuracy of ``D``, and twice differentiable).
"""
from __future__ import annotations

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
    """``(split, inner_P, inner_Q, tail_P, tail_Q)`` for the compute dtype."""
    if dtype == torch.float64:
        return C.FLOAT64_SPLIT, C.FLOAT64_INNER_P, C.FLOAT64_INNER_Q, C.FLOAT64_TAIL_P, C.FLOAT64_TAIL_Q
    if dtype == torch.float32:
        return C.FLOAT32_SPLIT, C.FLOAT32_INNER_P, C.FLOAT32_INNER_Q, C.FLOAT32_TAIL_P, C.FLOAT32_TAIL_Q
    raise TypeError(f"dawsn computes in float32 or float64, got {dtype}")


@register("dawsn", "torch")
def dawsn_reference(x: torch.Tensor) -> torch.Tensor:
    """Torch reference of ``D(x)`` (float32/float64, any device): the specification.

    Plain element-wise torch ops, so autograd would also work through it, and
    dynamo/inductor trace and fuse it.  :func:`dawsn` wraps it with the exact
    derivative ``1 - 2 x D``.
    """
    split, ip, iq, tp, tq = dawson_coefficients(x.dtype)
    a = x.abs()
    t = a * a
    y = 1.0 / t
    inner = a < split
    num = torch.where(inner, _horner(ip, t), _horner(tp, y))
    den = torch.where(inner, _horner(iq, t), _horner(tq, y))
    r = num / den
    d_inner = a * r
    d_tail = (1.0 + y * (0.5 + y * r)) / (a + a)
    return torch.copysign(torch.where(inner, d_inner, d_tail), x)


class _DawsonReference(torch.autograd.Function):
    """``D`` by the torch reference with ``dD/dx = 1 - 2 x D``."""

    @staticmethod
    def forward(x):
        return dawsn_reference(x)

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
    if impl is dawsn_reference:
        return _DawsonReference.apply(x)
    return impl(x)  # kernels are custom ops with their own autograd formula


# Kernel backends register themselves with the dispatcher on import.
from ..kernels import dawson_cuda as _dawson_cuda  # noqa: E402,F401
from ..kernels import dawson_triton as _dawson_triton  # noqa: E402,F401
