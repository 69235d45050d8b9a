r"""Dawson's integral, element-wise: the contract, the checks, the autograd and the front door.

.. math::

    D(x) = e^{-x^2} \int_0^x e^{s^2}\,ds, \qquad D'(x) = 1 - 2 x D(x), \qquad D(-x) = -D(x).

Files of this folder: ``reference.py`` (the equations, the algorithm and the torch
reference: the specification), ``coefficients.py`` (its tables), ``triton.py``,
``cuda.py`` and ``cpu.py`` (kernels; the compiled ones implement the op
``torch.ops.sdekit.dawsn`` whose one schema and fake kernel are defined here).

Contract every backend honours: a float32 or float64 tensor in, a contiguous tensor of
the same shape, dtype and device out; any input strides; empty tensors; <= 4 ulp from
the exact value (backends without FMA contraction are bitwise the reference; the ``"cpu"``
backend's float64 on AVX-512 and AVX2 + FMA builds is not: see :mod:`.cpu`); no
autograd of their own -- :func:`dawsn` adds ``D' = 1 - 2 x D`` from the saved output, once
for all backends (so it is exact to the accuracy of ``D`` and twice differentiable).
"""
from __future__ import annotations

import torch

from ..dispatch import resolve

__all__ = ["dawsn"]

torch.library.define("sdekit::dawsn", "(Tensor x) -> Tensor")


@torch.library.register_fake("sdekit::dawsn")
def _dawsn_fake(x):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


class _Dawsn(torch.autograd.Function):
    """``D`` by a backend's forward, with ``dD/dx = 1 - 2 x D`` for every backend."""

    @staticmethod
    def forward(x, forward):
        return forward(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)

    @staticmethod
    def backward(ctx, grad):
        x, d = ctx.saved_tensors
        return grad * (1.0 - 2.0 * x * d), None


_COMPUTE_DTYPES = (torch.float32, torch.float64)


def dawsn(x: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Dawson's integral ``D(x) = exp(-x^2) int_0^x exp(s^2) ds``, element-wise.

    ``x``: a floating tensor (float32/float64; float16/bfloat16 are computed in
    float32), any shape and strides, on CPU or CUDA; a Python float or a 0-d tensor
    is accepted too (a Python number gives a 0-d float64 tensor).
    ``backend``: ``"auto"`` (fastest for the device) or a name of
    :data:`sdekit.kernels.dispatch.BACKENDS`.  Differentiable: ``D'(x) = 1 - 2 x D(x)``.
    Accuracy: <= 4 ulp (see :mod:`sdekit.kernels.dawsn.reference`).
    """
    if not isinstance(x, torch.Tensor) or x.dtype not in _COMPUTE_DTYPES:  # one test for the common case
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            x = torch.tensor(float(x), dtype=torch.float64)  # a Python float is a double
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"dawsn: x must be a torch.Tensor or a Python float, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"dawsn: x must have a floating dtype, got {x.dtype}")
        if x.dtype in (torch.float16, torch.bfloat16):
            return dawsn(x.float(), backend=backend).to(x.dtype)
        if x.dtype not in _COMPUTE_DTYPES:
            raise TypeError(f"dawsn: unsupported dtype {x.dtype}; use float16/bfloat16/float32/float64")
    forward = resolve("dawsn", backend, x.device)
    if x.requires_grad and torch.is_grad_enabled():
        return _Dawsn.apply(x, forward)
    return forward(x)  # no graph to record: skip the autograd.Function (most of a small call's time)


# Every backend registers itself with the dispatcher on import.
from . import cpu, cuda, reference  # noqa: E402,F401

try:  # noqa: SIM105
    from . import triton  # noqa: F401  (registers "triton")
except ImportError:  # pragma: no cover - triton absent
    pass
