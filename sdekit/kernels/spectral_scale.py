"""Fused spectral scaling of the DMPS likelihood score.

Computes, for a batch of spectral coefficient rows,

    w[b, i] = S[i] (s_b uy[b, i] - S[i] z[b, i]) / (a_b + c_b S[i]^2),   w = 0 where S[i] = 0,

with ``a_b = s_b^2 sigma_y,b^2`` and ``c_b = std_b^2`` — the diagonal middle of
``(1/s) V S (sigma_y^2 I + (std/s)^2 S^2)^-1 (U^T y - S V^T x / s)`` multiplied through
by ``s^2`` so it stays finite as ``s -> 0`` (see :mod:`sdekit.inverse.scores`).

Bytes moved per element: read ``z``, ``uy`` (and ``S``, shared across the batch), write
``w``: 12 B/element in float32 (16 with ``S`` at batch 1), against ~10 separate eager
passes (``s*uy``, ``S*z``, subtract, ``S*S``, ``c*S^2``, add, multiply, divide,
``S == 0``, ``where``) for the torch reference.

Backends, registered as operation ``"spectral_scale"``: ``torch`` (the specification),
``triton`` (one pass; on CPU tensors only under ``TRITON_INTERPRET=1``) and ``cuda`` (one
pass, ``csrc/spectral_scale.cuh``: 16-byte loads when the rows allow them).  Both kernels
evaluate ``S (s uy - S z) / (a + c S^2)`` in that order.
"""
from __future__ import annotations

import math

import torch

from . import cuda_ext
from .dispatch import register

__all__ = ["spectral_scale_torch"]


@register("spectral_scale", "torch")
def spectral_scale_torch(z, uy, S, s, a, c):
    """Reference: ``z``, ``uy`` ``(B, k)``; ``S`` ``(k,)``; ``s``, ``a``, ``c`` Python floats
    (the same for every sample) or ``(B, 1)`` tensors.

    Written as ``f = S / (a + c S^2)`` (0/0 -> 0: only ``S = 0`` with ``a = 0`` gives it) times
    ``s uy - S z``, in place where possible.  With scalar coefficients ``f`` is computed once
    over ``k`` and broadcast over the batch.
    """
    if isinstance(a, torch.Tensor) and isinstance(c, torch.Tensor):
        f = torch.addcmul(a, c, S * S)
    elif isinstance(a, torch.Tensor) or isinstance(c, torch.Tensor):
        f = S * S * c + a
    else:
        f = (S * S).mul_(c).add_(a)
    torch.div(S, f, out=f)
    f.nan_to_num_(nan=0.0, posinf=math.inf, neginf=-math.inf)
    return (uy * s).addcmul_(S, z, value=-1).mul_(f)


try:  # Triton is optional (absent on some platforms)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = None


def _per_sample_coefficients(s, a, c, B: int, like: torch.Tensor, always: bool = False) -> torch.Tensor | None:
    """``(B, 3)`` contiguous rows ``(s_b, a_b, c_b)`` in ``like``'s dtype and device; ``None`` when
    all three are numbers (shared by the batch) unless ``always``.
    """
    coeffs = (s, a, c)
    if not always and not any(isinstance(v, torch.Tensor) for v in coeffs):
        return None
    cols = [v.reshape(B).to(like.dtype) if isinstance(v, torch.Tensor) else like.new_full((B,), v) for v in coeffs]
    return torch.stack(cols, dim=1)


if triton is not None:

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

    _MAX_GRID_Y = 65535  # CUDA's limit on the second grid dimension: larger batches go in chunks

    @register("spectral_scale", "triton")
    def spectral_scale_triton(z, uy, S, s, a, c):
        """One fused pass; same arguments and result as :func:`spectral_scale_torch`.

        Scalar coefficients go in as kernel arguments (no extra launches) for float32 data;
        Triton passes Python floats as fp32, so float64 data gets them as a ``(B, 3)`` tensor.
        """
        B, k = z.shape
        z, uy, S = z.contiguous(), uy.contiguous(), S.contiguous()
        coef = _per_sample_coefficients(s, a, c, B, z, always=z.dtype != torch.float32)
        shared = (0.0, 0.0, 0.0) if coef is not None else (float(s), float(a), float(c))
        out = torch.empty_like(z)
        BLOCK = 1024
        for r in range(0, B, _MAX_GRID_Y):
            rows = slice(r, min(B, r + _MAX_GRID_Y))
            _spectral_scale_kernel[(triton.cdiv(k, BLOCK), rows.stop - rows.start)](
                z[rows], uy[rows], S, z if coef is None else coef[rows], *shared, out[rows], k,
                PER_SAMPLE=coef is not None, BLOCK=BLOCK, enable_fp_fusion=True)  # as nvcc; not TRITON_DEFAULT_FP_FUSION
        return out


@register("spectral_scale", "cuda")
def spectral_scale_cuda(z, uy, S, s, a, c):
    """One kernel launch (``torch.ops.sdekit.spectral_scale``); arguments and result as
    :func:`spectral_scale_torch`.  Numbers go in as kernel arguments; per-sample ``(B, 1)``
    coefficients as one ``(B, 3)`` tensor.
    """
    scale = cuda_ext.op("spectral_scale", fake=lambda z, uy, S, coef, s, a, c: torch.empty_like(z))
    coef = _per_sample_coefficients(s, a, c, z.shape[0], z)
    shared = (0.0, 0.0, 0.0) if coef is not None else (float(s), float(a), float(c))
    return scale(z.contiguous(), uy.contiguous(), S.contiguous(), coef, *shared)
