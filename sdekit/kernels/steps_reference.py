"""Torch reference of the fused sampling steps: the specification every kernel is tested against.

Every update of sdekit's solvers (Euler-Maruyama forward and reverse, the reverse-diffusion
predictor, the Langevin corrector, the exponential integrator, the probability-flow ODE) is
one *affine step* with per-sample coefficients:

    x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)

``z`` are the counter-based normals of :mod:`sdekit.kernels.rng`, row ``b`` those of the global
sample ``sample_offset + b``.  ``coef`` is a ``(4, Bc)``
tensor holding the rows ``(A, C, S, N)`` with ``Bc = 1`` (one scalar per row, shared by all
samples) or ``Bc = B`` (per-sample).  The solver computes the coefficients from the SDE, the
kernel does the arithmetic.  Memory traffic of the fused kernels: read x, y, score and the
coefficients once, write x_out once: ``(3 + 1) * numel * itemsize`` bytes (2 without y).

The Langevin corrector also needs the per-sample squared norms of the score and of its
normals (:func:`sample_sq_norms`), a second read of ``score``.

Non-finite detection without a host sync: when ``flags`` (an int32 tensor of 2 entries) is
given, ``flags[0]`` is set to 1 if ``score`` holds a non-finite value and ``flags[1]`` if the
output does; nothing is ever reset, so a solver can record one pair per step and inspect
them once at the end.
"""
from __future__ import annotations

import torch

from .._checks import check_batched_float, check_like
from .dispatch import register
from .rng import philox_normal_like

__all__ = ["affine_step", "sample_sq_norms", "check_step_args", "refuse_sample_offset"]


def check_step_args(x, coef, score, y, out, flags) -> None:
    """Validate the arguments shared by every backend; errors name the argument."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if x.dim() < 1:
        raise ValueError("x must have a leading batch dimension")
    B = x.shape[0]
    for name, t in (("score", score), ("y", y), ("out", out)):
        if t is not None:
            check_like(name, t, x)
    if not isinstance(coef, torch.Tensor) or coef.dim() != 2 or coef.shape[0] != 4 or coef.shape[1] not in (1, B):
        shape = tuple(coef.shape) if isinstance(coef, torch.Tensor) else type(coef).__name__
        raise ValueError(f"coef must be a (4, 1) or (4, {B}) tensor of rows (A, C, S, N), got {shape}")
    if coef.dtype != x.dtype or coef.device != x.device:
        raise TypeError(f"coef must have x's dtype and device ({x.dtype}, {x.device}), got ({coef.dtype}, {coef.device})")
    if flags is not None and (flags.dtype != torch.int32 or flags.numel() != 2 or flags.device != x.device):
        raise ValueError("flags must be an int32 tensor of 2 entries on x's device")


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (x.dim() - 1))


@register("affine_step", "torch")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """``out = A x + C y + S score + N z(seed, step)``; terms with ``None`` (or ``noise=False``) are skipped;
    row ``b`` of ``z`` is the global sample ``sample_offset + b``'s."""
    check_step_args(x, coef, score, y, out, flags)
    A, C, S, N = (_per_sample(coef[k], x) for k in range(4))
    acc = A * x
    if y is not None:
        acc = acc + C * y
    if score is not None:
        acc = acc + S * score
    if noise:
        acc = acc + N * philox_normal_like(x, seed, step, sample_offset)
    if flags is not None:
        if score is not None:
            flags[0] |= (~torch.isfinite(score)).any().to(torch.int32)
        flags[1] |= (~torch.isfinite(acc)).any().to(torch.int32)
    if out is None:
        return acc
    return out.copy_(acc)


@register("sample_sq_norms", "torch")
def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0):
    """``(B, 2)``: per sample, ``sum(score^2)`` and ``sum(z^2)`` of the normals of ``(seed, step)``
    (row ``b``: the global sample ``sample_offset + b``)."""
    check_batched_float("score", score)
    z = philox_normal_like(score, seed, step, sample_offset)
    B = score.shape[0]
    return torch.stack([score.reshape(B, -1).square().sum(1), z.reshape(B, -1).square().sum(1)], dim=1)


def refuse_sample_offset(sample_offset, backend: str) -> None:
    """Backends whose kernels do not take a sample offset yet refuse a non-zero one (never a silent
    wrong draw)."""
    if sample_offset != 0:
        raise NotImplementedError(f"the {backend!r} backend does not take sample_offset yet (got {sample_offset}); "
                                  "use backend='torch' or 'triton' for a sharded run")
