"""CUDA launcher of the spectral scaling: the op ``torch.ops.sdekit.spectral_scale`` (``sdekit/csrc/spectral_scale.cu``).

16-byte loads when the rows allow them; equation and contract in :mod:`sdekit.kernels.spectral_scale`.
"""
from __future__ import annotations

from .. import cuda_ext
from ..dispatch import register
from . import per_sample_coefficients


@register("spectral_scale", "cuda")
def spectral_scale_cuda(z, uy, S, s, a, c):
    """One kernel launch (``torch.ops.sdekit.spectral_scale``); arguments and result as
    :func:`.reference.spectral_scale_torch`.  Numbers go in as kernel arguments; per-sample ``(B, 1)``
    coefficients as one ``(B, 3)`` tensor.
    """
    scale = cuda_ext.op("spectral_scale")
    coef = per_sample_coefficients(s, a, c, z.shape[0], z)
    shared = (0.0, 0.0, 0.0) if coef is not None else (float(s), float(a), float(c))
    return scale(z.contiguous(), uy.contiguous(), S.contiguous(), coef, *shared)
