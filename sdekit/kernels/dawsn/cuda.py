"""CUDA backend of Dawson's integral: the op ``torch.ops.sdekit.dawsn`` (``csrc/dawson.cu``).

The device arithmetic is ``csrc/dawson.cuh`` -- the torch reference's equations
(:mod:`sdekit.special.dawson`) with FMAs.  Bytes moved: one read and one write of
the tensor.  This module adds what the C++ op does not declare: the fake kernel
(for ``torch.compile``) and the autograd formula ``D' = 1 - 2 x D``.
"""
from __future__ import annotations

import torch

from . import cuda_ext
from .dispatch import register


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output)


def _backward(ctx, grad):
    x, d = ctx.saved_tensors
    return grad * (1.0 - 2.0 * x * d)


@register("dawsn", "cuda")
def dawsn_cuda(x: torch.Tensor) -> torch.Tensor:
    """``D(x)`` by the CUDA kernel, differentiable; needs a CUDA tensor."""
    dawsn_op = cuda_ext.op("dawsn", fake=lambda x: torch.empty_like(x, memory_format=torch.contiguous_format),
                           backward=_backward, setup_context=_setup_context)
    return dawsn_op(x)
