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
from .layout import run_affine_step_op, run_sample_sq_norms_op


def _ops():
    cuda_ext.load()
    return torch.ops.sdekit


@register("affine_step", "cuda")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """CUDA twin of :func:`sdekit.kernels.steps.reference.affine_step` (one kernel launch per
    65535 samples, see :func:`.layout.batch_chunks`)."""
    return run_affine_step_op(_ops(), x, coef, score=score, y=y, seed=seed, step=step,
                              sample_offset=sample_offset, noise=noise, out=out, flags=flags, grid_rows=True)


@register("sample_sq_norms", "cuda")
def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0):
    """CUDA twin of :func:`sdekit.kernels.steps.reference.sample_sq_norms` (deterministic; one kernel
    launch per 65535 samples)."""
    return run_sample_sq_norms_op(_ops(), score, seed=seed, step=step, sample_offset=sample_offset, grid_rows=True)
