"""CUDA fused sampling steps: launchers for ``sdekit/csrc/sde_steps.cu`` (equations and bytes moved there).

    x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)      (affine_step)
    (sum score[b]^2, sum z[b]^2)                                               (sample_sq_norms)

The ops are ``torch.ops.sdekit.sde_affine_step`` / ``sde_sample_sq_norms``, built by the
extension loader (:mod:`sdekit.kernels.cuda_ext`).  Layout, validation and the reference
semantics are shared with the Triton launcher; the torch reference is the specification.
"""
from __future__ import annotations

import torch

from .. import cuda_ext
from ..dispatch import register
from .layout import check_grid_rows, launch_words, step_layout


def _ops():
    cuda_ext.load()
    return torch.ops.sdekit


@register("affine_step", "cuda")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """CUDA twin of :func:`sdekit.kernels.steps.reference.affine_step` (one kernel launch)."""
    check_grid_rows(x.shape[0])
    target = torch.empty_like(x) if out is None else out
    (o, xx, s, yy), dims, strides, contig = step_layout([target, x, score, y])
    flat = [v for st in strides for v in st]
    _ops().sde_affine_step(o, xx, s, yy, coef, flags, dims, flat, *launch_words(seed, step, sample_offset),
                           bool(noise), contig)
    if o is not target:
        target.copy_(o)
    return target


@register("sample_sq_norms", "cuda")
def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0):
    """CUDA twin of :func:`sdekit.kernels.steps.reference.sample_sq_norms` (deterministic)."""
    check_grid_rows(score.shape[0])
    (s,), dims, strides, contig = step_layout([score])
    return _ops().sde_sample_sq_norms(s, dims, strides[0], *launch_words(seed, step, sample_offset), contig)
