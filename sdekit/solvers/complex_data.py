"""Complex data through the real fused kernels: a complex tensor is sampled as its real pairs.

sgmse restores complex STFT spectrograms.  A complex state ``x`` of shape ``(B, ...)`` is run as
the real tensor ``torch.view_as_real(x)`` of shape ``(B, ..., 2)`` (a view: the kernels' in-place
updates write ``x``), and likewise ``y`` and the score.  The affine step
``A x + C y + S score + N z`` with real coefficients acts on real and imaginary parts alike, so
only the normals change: complex normals of unit variance, ``E|z|^2 = 1`` with real and imaginary
parts independent ``N(0, 1/2)`` (``torch.randn`` on a complex dtype, which sgmse draws), are

    z_k = (w_{2k} + i w_{2k+1}) / sqrt(2),      w the counter-based normals of the real view,

so element ``k`` of a sample takes the real view's elements ``2k`` and ``2k + 1`` (its logical
order, :mod:`sdekit.kernels.rng`) and every noise coefficient is scaled by :data:`NOISE_SCALE`.
Real data passes through every function here unchanged.
"""
from __future__ import annotations

import math

import torch

from ..kernels.rng import philox_normal_like

NOISE_SCALE = 1.0 / math.sqrt(2.0)  # a complex normal of unit variance is (w1 + i w2) / sqrt(2)


def noise_scale(x: torch.Tensor) -> float:
    """The factor from the real view's standard normals to ``x``'s normals: ``1/sqrt(2)`` for
    complex ``x``, ``1`` for real ``x``."""
    return NOISE_SCALE if x.is_complex() else 1.0


def real_pairs(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` as the real view ``(..., 2)`` the kernels read, if complex; real ``t`` and ``None`` as they are."""
    if t is None or not t.is_complex():
        return t
    return torch.view_as_real(t.resolve_conj())


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for complex64, float64 for complex128, a real dtype itself."""
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def standard_normal_like(x: torch.Tensor, seed: int, word: int, sample_offset: int = 0) -> torch.Tensor:
    """The normals of ``(seed, word)`` shaped like ``x`` (row ``b``: global sample ``sample_offset + b``):
    real standard normals, or for complex ``x`` complex normals of unit variance built from the real
    view's (module docstring)."""
    if not x.is_complex():
        return philox_normal_like(x, seed, word, sample_offset)
    w = philox_normal_like(torch.empty(*x.shape, 2, dtype=real_dtype(x.dtype), device=x.device), seed, word,
                           sample_offset)
    return torch.view_as_complex(w * NOISE_SCALE)
