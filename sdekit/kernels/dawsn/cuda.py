"""CUDA backend of Dawson's integral: the op ``torch.ops.sdekit.dawsn`` (``sdekit/csrc/dawson.cu``).

The device arithmetic is ``sdekit/csrc/dawson.cuh`` -- the torch reference's equations
(:mod:`.reference`) with FMAs.  Bytes moved: one read and one write of the tensor.  The
op's schema, fake kernel and autograd are :mod:`sdekit.kernels.dawsn`'s.
"""
from __future__ import annotations

import torch

from .. import cuda_ext
from ..dispatch import register


@register("dawsn", "cuda")
def dawsn_cuda(x: torch.Tensor) -> torch.Tensor:
    """``D(x)`` by the CUDA kernel; needs a CUDA tensor."""
    return cuda_ext.op("dawsn")(x)
