"""Dawson's integral ``D(x) = exp(-x^2) * int_0^x exp(t^2) dt``.

Provisional implementation (series + asymptotic expansion in float64); to be
replaced by piecewise minimax rational approximations.

    D(x) = exp(-x^2) * sum_n x^(2n+1) / (n! (2n+1))        (all terms positive)
    D(x) ~ 1/(2x) * sum_n (2n-1)!! / (2 x^2)^n             (|x| >= 6.5)
    D'(x) = 1 - 2 x D(x)
"""
from __future__ import annotations

import torch

from ..kernels.dispatch import register, resolve

__all__ = ["dawsn"]


@register("dawsn", "torch")
def dawsn_torch(x: torch.Tensor) -> torch.Tensor:
    """Torch reference for ``D(x)``; float32 inputs are computed in float64."""
    xd = x.to(torch.float64)
    ax = xd.abs()
    small = ax < 6.5
    # series: exp(-x^2) sum x^(2n+1)/(n!(2n+1)), split x^2 = hi + lo for exp
    xs = torch.where(small, ax, torch.zeros_like(ax))
    c = xs * 134217729.0
    xh = c - (c - xs)
    xl = xs - xh
    t2 = xs * xs
    t2_lo = ((xh * xh - t2) + 2.0 * xh * xl) + xl * xl
    term = xs.clone()
    total = xs.clone()
    for n in range(1, 121):
        term = term * t2 / n
        total = total + term / (2 * n + 1)
    d_small = torch.exp(-t2) * (1.0 - t2_lo) * total
    # asymptotic: 1/(2x) sum (2n-1)!!/(2x^2)^n
    xa = torch.where(small, torch.full_like(ax, 10.0), ax)
    y = 1.0 / (2.0 * xa * xa)
    term = torch.ones_like(xa)
    total = torch.ones_like(xa)
    for n in range(1, 40):
        term = term * (2 * n - 1) * y
        total = total + term
    d_large = total / (2.0 * xa)
    d = torch.where(small, d_small, d_large)
    return torch.copysign(d, xd).to(x.dtype)


class _DawsonFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, backend):
        d = resolve("dawsn", backend, x.device)(x)
        ctx.save_for_backward(x, d)
        return d

    @staticmethod
    def backward(ctx, grad):
        x, d = ctx.saved_tensors
        return grad * (1.0 - 2.0 * x * d), None


def dawsn(x: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Dawson's integral ``D(x)``, element-wise; ``D'(x) = 1 - 2 x D(x)``."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        x = torch.tensor(float(x), dtype=torch.get_default_dtype())
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"dawsn expects a torch.Tensor or a Python float, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"dawsn expects a floating-point tensor, got dtype {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16):
        return dawsn(x.float(), backend=backend).to(x.dtype)
    return _DawsonFunction.apply(x, backend)
