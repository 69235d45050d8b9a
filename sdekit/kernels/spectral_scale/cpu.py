"""CPU launcher of the spectral scaling: the op ``torch.ops.sdekit.spectral_scale`` with the kernel of ``sdekit._cpu``.

``sdekit/csrc/spectral_scale.cuh``'s ``spectral_weight`` compiled for the host, one
vectorised loop per row, threads over rows above a size threshold; equation and contract
in :mod:`sdekit.kernels.spectral_scale`.
"""
from __future__ import annotations

import torch

from .. import cpu_ext
from ..dispatch import register
from . import per_sample_coefficients


@register("spectral_scale", "cpu")
def spectral_scale_cpu(z, uy, S, s, a, c):
    """One pass; arguments and result as :func:`.reference.spectral_scale_torch`."""
    cpu_ext.load()
    coef = per_sample_coefficients(s, a, c, z.shape[0], z)
    shared = (0.0, 0.0, 0.0) if coef is not None else (float(s), float(a), float(c))
    return torch.ops.sdekit.spectral_scale(z.contiguous(), uy.contiguous(), S.contiguous(), coef, *shared)
