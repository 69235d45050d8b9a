"""Triton kernel for Dawson's integral ``D(x)`` (see :mod:`sdekit.special.dawson`).

Computes, per element, exactly the arithmetic of the torch reference
``sdekit.special.dawson.dawsn_reference`` (``a = |x|``, ``t = a^2``, ``y = 1/t``)::

    r = where(a < s, Pi(t)/Qi(t), Pt(y)/Qt(y))
    D = copysign(where(a < s, a r, (1 + y (1/2 + y r)) / (2a)), x)

with the minimax coefficients of :mod:`sdekit.special._dawson_coeffs` (passed as a
small tensor in the compute dtype, so float64 constants are never rounded through
float32 literals).  On a GPU Triton contracts ``acc * z + c`` into FMAs, so results
may differ from the reference by an ulp or so; both are within the stated bound.

Bytes moved: one read and one write of the tensor (8 B/element in float32,
16 B/element in float64); arithmetic: 2 x (deg P + deg Q) FMAs, 3 divisions.
"""
from __future__ import annotations

import functools

import torch

from .dispatch import register

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton is a declared dependency on Linux x86-64
    triton = None

BLOCK = 1024

if triton is not None:

    @triton.jit
    def _horner(c_ptr, OFF: tl.constexpr, N: tl.constexpr, z):
        acc = tl.load(c_ptr + (OFF + N - 1)) + tl.zeros_like(z)
        for j in tl.static_range(N - 1):
            acc = acc * z + tl.load(c_ptr + (OFF + N - 2 - j))
        return acc

    @triton.jit
    def _dawsn_kernel(x_ptr, out_ptr, c_ptr, n, split,
                      NIP: tl.constexpr, NIQ: tl.constexpr, NTP: tl.constexpr, NTQ: tl.constexpr,
                      BLOCK: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        a = tl.abs(x)
        t = a * a
        y = 1.0 / t
        inner = a < split
        p = tl.where(inner, _horner(c_ptr, 0, NIP, t), _horner(c_ptr, NIP + NIQ, NTP, y))
        q = tl.where(inner, _horner(c_ptr, NIP, NIQ, t), _horner(c_ptr, NIP + NIQ + NTP, NTQ, y))
        r = p / q
        d_inner = a * r
        d_tail = (1.0 + y * (0.5 + y * r)) / (a + a)
        d = tl.where(inner, d_inner, d_tail)
        # copysign(d, x): d >= 0 (or nan); flip where x's sign bit is set
        d = tl.where(x < 0, -d, d)
        d = tl.where((x == 0) | (x != x), x, d)  # keeps -0 -> -0 and nan -> nan
        tl.store(out_ptr + offs, d, mask=mask)


@functools.lru_cache(maxsize=None)
def _coefficients(dtype: torch.dtype, device: torch.device):
    from ..special.dawson import dawson_coefficients

    split, ip, iq, tp, tq = dawson_coefficients(dtype)
    c = torch.tensor(list(ip) + list(iq) + list(tp) + list(tq), dtype=dtype, device=device)
    return split, c, (len(ip), len(iq), len(tp), len(tq))


def dawsn_triton_forward(x: torch.Tensor) -> torch.Tensor:
    """``D(x)`` by the Triton kernel (no autograd; see :func:`dawsn_triton`)."""
    xc = x.contiguous()
    out = torch.empty_like(xc)
    n = xc.numel()
    if n == 0:
        return out
    split, c, (nip, niq, ntp, ntq) = _coefficients(xc.dtype, xc.device)
    grid = (triton.cdiv(n, BLOCK),)
    _dawsn_kernel[grid](xc, out, c, n, split, NIP=nip, NIQ=niq, NTP=ntp, NTQ=ntq, BLOCK=BLOCK)
    return out


@torch.library.custom_op("sdekit::dawsn_triton", mutates_args=())
def _dawsn_triton_op(x: torch.Tensor) -> torch.Tensor:
    return dawsn_triton_forward(x)


@_dawsn_triton_op.register_fake
def _(x):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output)


def _backward(ctx, grad):
    x, d = ctx.saved_tensors
    return grad * (1.0 - 2.0 * x * d)


_dawsn_triton_op.register_autograd(_backward, setup_context=_setup_context)


@register("dawsn", "triton")
def dawsn_triton(x: torch.Tensor) -> torch.Tensor:
    """``D(x)`` by the Triton kernel, differentiable (``D' = 1 - 2 x D``), a ``torch.library`` op."""
    return _dawsn_triton_op(x)
