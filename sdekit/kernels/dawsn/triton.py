"""Triton kernel for Dawson's integral ``D(x)`` (equations in :mod:`.reference`).

Computes, per element, exactly the arithmetic of the torch reference
``sdekit.kernels.dawsn.reference.dawsn_reference`` (``a = |x|``)::

    a <  split:  i = floor(a / h + 1/2),  s = a - i h,
                 D = hi_i + (s (c1_i + s (c2_i + ... + s cK_i)) + lo_i)      (Taylor table)
    a >= split:  y = 1 / a^2,  D = (1/2 (1 + y (1/2 + y P(y)/Q(y)))) / a    (rational tail)
    D(x) = copysign(D, x)

with the tables of :mod:`sdekit.kernels.dawsn.coefficients`, passed as tensors in the
compute dtype (so float64 constants never pass through float32 literals).  On a
GPU ``acc * s + c`` is contracted into FMAs (pinned at launch, ``enable_fp_fusion=True``,
whatever ``TRITON_DEFAULT_FP_FUSION`` says), so results may differ from the
reference by about an ulp; both meet the stated bound.

Bytes moved: one read and one write of the tensor (8 B/element in float32,
16 B/element in float64) plus K + 2 gathers per element from a table of a few
kB that stays in L1; arithmetic: K + 2 (deg P + 1) FMAs, 2 fast divisions and
one IEEE division.
"""
from __future__ import annotations

import functools

import torch

from ..dispatch import register
from .reference import dawson_coefficients, taylor_table

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
    def _div(a, b, F32: tl.constexpr):
        # IEEE round-to-nearest division: Triton's float32 "/" lowers to div.full.f32
        # (<= 2 ulp) on NVIDIA GPUs (triton-lang/triton#10661); float64 "/" is div.rn.
        if F32:
            return tl.math.div_rn(a, b)
        else:
            return a / b

    @triton.jit
    def _dawsn_kernel(x_ptr, out_ptr, tab_ptr, c_ptr, n, split, step, inv_step,
                      ROWS: tl.constexpr, COLS: tl.constexpr, NTP: tl.constexpr, NTQ: tl.constexpr,
                      F32: tl.constexpr, BLOCK: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        # Whole blocks load and store unmasked (128-bit accesses whatever n mod 16 is); only
        # the last block masks per element.
        full = (pid + 1) * BLOCK <= n
        mask = offs < n
        if full:
            x = tl.load(x_ptr + offs)
        else:
            x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        a = tl.abs(x)
        inner = a < split
        # Taylor table (column-major: column k of every row is contiguous)
        ai = tl.where(inner, a, 0.0)
        i = tl.floor(ai * inv_step + 0.5)
        s = ai - i * step
        idx = i.to(tl.int32)
        acc = tl.load(tab_ptr + (COLS - 1) * ROWS + idx, mask=mask, other=0.0)
        for j in tl.static_range(COLS - 3):
            acc = acc * s + tl.load(tab_ptr + (COLS - 2 - j) * ROWS + idx, mask=mask, other=0.0)
        d_inner = tl.load(tab_ptr + idx, mask=mask, other=0.0) + (
            acc * s + tl.load(tab_ptr + ROWS + idx, mask=mask, other=0.0))
        # rational tail
        # y and r may use the fast "/" (div.full.f32 on NVIDIA, <= 2 ulp): their errors
        # reach D damped by y/2 <= 1/32 and y^2 T / h <= 0.003; the last division may not.
        y = 1.0 / (a * a)
        r = _horner(c_ptr, 0, NTP, y) / _horner(c_ptr, NTP, NTQ, y)
        d_tail = _div(0.5 * (1.0 + y * (0.5 + y * r)), a, F32)  # h / (2a) without overflowing 2a
        d = tl.where(inner, d_inner, d_tail)
        # copysign(d, x): d >= 0 (or nan); -0 and nan pass through as x
        d = tl.where(x < 0, -d, d)
        d = tl.where((x == 0) | (x != x), x, d)
        if full:
            tl.store(out_ptr + offs, d)
        else:
            tl.store(out_ptr + offs, d, mask=mask)


@functools.lru_cache(maxsize=None)
def _tail_coefficients(dtype: torch.dtype, device: torch.device):
    _, _, _, tp, tq = dawson_coefficients(dtype)
    return torch.tensor(list(tp) + list(tq), dtype=dtype, device=device), len(tp), len(tq)


@torch.library.custom_op("sdekit::dawsn_triton", mutates_args=())
def dawsn_triton(x: torch.Tensor) -> torch.Tensor:
    """``D(x)`` by the Triton kernel, a ``torch.library`` op (autograd: :mod:`sdekit.kernels.dawsn`)."""
    xc = x.contiguous()
    out = torch.empty_like(xc)
    n = xc.numel()
    if n == 0:
        return out
    split, step, _, _, _ = dawson_coefficients(xc.dtype)
    tab = taylor_table(xc.dtype, xc.device)
    c, ntp, ntq = _tail_coefficients(xc.dtype, xc.device)
    grid = (triton.cdiv(n, BLOCK),)
    _dawsn_kernel[grid](xc, out, tab, c, n, split, step, 1.0 / step,
                        ROWS=tab.shape[1], COLS=tab.shape[0], NTP=ntp, NTQ=ntq,
                        F32=xc.dtype == torch.float32, BLOCK=BLOCK, enable_fp_fusion=True)
    return out


@dawsn_triton.register_fake
def _(x):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


register("dawsn", "triton")(dawsn_triton)
