"""Fused spectral scaling of the DMPS likelihood score: the contract and the compiled op's schema.

Computes, for a batch of spectral coefficient rows,

    w[b, i] = S[i] (s_b uy[b, i] - S[i] z[b, i]) / (a_b + c_b S[i]^2),   w = 0 where S[i] = 0,

with ``a_b = s_b^2 sigma_y,b^2`` and ``c_b = std_b^2`` -- the diagonal middle of
``(1/s) V S (sigma_y^2 I + (std/s)^2 S^2)^-1 (U^T y - S V^T x / s)`` multiplied through
by ``s^2`` so it stays finite as ``s -> 0`` (DMPS, Meng & Kabashima 2022, eq. 14; see
:mod:`sdekit.inverse.scores`).

Files of this folder, one backend each, registered as operation ``"spectral_scale"``:
``reference.py`` (torch, the specification), ``triton.py`` (one pass), ``cuda.py`` and
``cpu.py`` (the op ``torch.ops.sdekit.spectral_scale``, defined here once, with kernels
``sdekit/csrc/spectral_scale.cu`` and ``sdekit/csrc/cpu/ops.cpp`` around
``sdekit/csrc/spectral_scale.cuh``).

Contract every backend honours: ``z``, ``uy`` ``(B, k)`` of one dtype (float32 or float64),
any strides, ``B`` and ``k`` any size including 0; ``S`` ``(k,)``; ``s``, ``a``, ``c``
Python floats (shared by the batch) or ``(B, 1)`` tensors; the result is a new ``(B, k)``
tensor, equal to the reference within a few ulps of the terms of ``s uy - S z`` (the
kernels evaluate ``S (s uy - S z) / (a + c S^2)`` in that order).  Bytes moved per
element: read ``z``, ``uy``, write ``w`` (``S`` is shared by the batch).
"""
from __future__ import annotations

import torch

__all__ = ["per_sample_coefficients"]

torch.library.define("sdekit::spectral_scale",
                     "(Tensor z, Tensor uy, Tensor S, Tensor? coef, float s, float a, float c) -> Tensor")


@torch.library.register_fake("sdekit::spectral_scale")
def _spectral_scale_fake(z, uy, S, coef, s, a, c):
    return torch.empty_like(z, memory_format=torch.contiguous_format)


def per_sample_coefficients(s, a, c, B: int, like: torch.Tensor, always: bool = False) -> torch.Tensor | None:
    """``(B, 3)`` contiguous rows ``(s_b, a_b, c_b)`` in ``like``'s dtype and device; ``None`` when
    all three are numbers (shared by the batch) unless ``always``.
    """
    coeffs = (s, a, c)
    if not always and not any(isinstance(v, torch.Tensor) for v in coeffs):
        return None
    cols = [v.reshape(B).to(like.dtype) if isinstance(v, torch.Tensor) else like.new_full((B,), v) for v in coeffs]
    return torch.stack(cols, dim=1)


# Every backend registers itself with the dispatcher on import.
from . import cpu, cuda, reference  # noqa: E402,F401

try:  # noqa: SIM105
    from . import triton  # noqa: F401  (registers "triton")
except ImportError:  # pragma: no cover - triton absent
    pass
