"""Torch reference of the spectral scaling (equation and contract in :mod:`sdekit.kernels.spectral_scale`).

About ten separate eager passes (``s*uy``, ``S*z``, subtract, ``S*S``, ``c*S^2``, add,
multiply, divide, ``S == 0``, ``where``), against one for the kernels.
"""
from __future__ import annotations

import math

import torch

from ..dispatch import register

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
