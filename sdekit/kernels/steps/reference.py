"""Torch reference of the fused sampling steps: the specification every kernel is tested against.

Every update of sdekit's solvers (Euler-Maruyama forward and reverse, the reverse-diffusion
predictor, the Langevin corrector, the exponential integrator, the probability-flow ODE) is
one *affine step* with per-sample coefficients:

    x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)

``z`` are the counter-based normals of :mod:`sdekit.kernels.rng`, row ``b`` those of the global
sample ``sample_offset + b``.  ``coef is a ``(4, Bc)``
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

from ..dispatch import register
from ..rng import philox_normal_like

__all__ = ["affine_step", "sample_sq_norms"]


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (x.dim() - 1))


@register("affine_step", "torch")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """``out = A x + C y + S score + N z(seed, step)``; terms with ``None`` (or ``noise=False``) are skipped;
    row ``b`` of ``z`` is the global sample ``sample_offset + b``'s."""
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
    z = philox_normal_like(score, seed, step, sample_offset)
    B = score.shape[0]
    return torch.stack([score.reshape(B, -1).square().sum(1), z.reshape(B, -1).square().sum(1)], dim=1)
