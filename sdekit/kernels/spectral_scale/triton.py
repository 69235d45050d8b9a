"""Triton kernel of the spectral scaling (equation and contract in :mod:`sdekit.kernels.spectral_scale`).

One pass; on CPU tensors only under ``TRITON_INTERPRET=1``.  Evaluates
``S (s uy - S z) / (a + c S^2)`` in that order, as the CUDA and CPU kernels do.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..dispatch import register
from ..grid import row_chunks
from . import per_sample_coefficients


@triton.jit
def _spectral_scale_kernel(z_ptr, uy_ptr, S_ptr, coef_ptr, s_arg, a_arg, c_arg, out_ptr, k,
                           PER_SAMPLE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    inb = offs < k
    S = tl.load(S_ptr + offs, mask=inb, other=0.0)
    z = tl.load(z_ptr + row * k + offs, mask=inb, other=0.0)
    uy = tl.load(uy_ptr + row * k + offs, mask=inb, other=0.0)
    if PER_SAMPLE:  # (B, 3) rows (s, a, c)
        s = tl.load(coef_ptr + 3 * row)
        a = tl.load(coef_ptr + 3 * row + 1)
        c = tl.load(coef_ptr + 3 * row + 2)
    else:  # scalars shared by the batch
        s = s_arg
        a = a_arg
        c = c_arg
    w = S * (s * uy - S * z) / (a + c * (S * S))
    w = tl.where(S == 0.0, 0.0, w)
    tl.store(out_ptr + row * k + offs, w.to(out_ptr.dtype.element_ty), mask=inb)


@register("spectral_scale", "triton")
def spectral_scale_triton(z, uy, S, s, a, c):
    """One fused pass; same arguments and result as :func:`.reference.spectral_scale_torch`.

    Scalar coefficients go in as kernel arguments (no extra launches) for float32 data;
    Triton passes Python floats as fp32, so float64 data gets them as a ``(B, 3)`` tensor.
    """
    B, k = z.shape
    z, uy, S = z.contiguous(), uy.contiguous(), S.contiguous()
    coef = per_sample_coefficients(s, a, c, B, z, always=z.dtype != torch.float32)
    shared = (0.0, 0.0, 0.0) if coef is not None else (float(s), float(a), float(c))
    out = torch.empty_like(z)
    BLOCK = 1024
    for rows in row_chunks(B):  # one grid row per sample: at most 65535 a launch
        _spectral_scale_kernel[(triton.cdiv(k, BLOCK), rows.stop - rows.start)](
            z[rows], uy[rows], S, z if coef is None else coef[rows], *shared, out[rows], k,
            PER_SAMPLE=coef is not None, BLOCK=BLOCK, enable_fp_fusion=True)  # as nvcc; not TRITON_DEFAULT_FP_FUSION
    return out
