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
from .layout import batch_chunks, launch_words, step_layout


def _ops():
    cuda_ext.load()
    return torch.ops.sdekit


@register("affine_step", "cuda")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """CUDA twin of :func:`sdekit.kernels.steps.reference.affine_step` (one kernel launch per
    65535 samples, see :func:`.layout.batch_chunks`)."""
    target = torch.empty_like(x) if out is None else out
    (o, xx, s, yy), dims, strides, contig = step_layout([target, x, score, y])
    flat = [v for st in strides for v in st]
    for (o_b, x_b, s_b, y_b), coef_b, first in batch_chunks([o, xx, s, yy], coef, sample_offset):
        _ops().sde_affine_step(o_b, x_b, s_b, y_b, coef_b, flags, dims, flat, *launch_words(seed, step, first),
                               bool(noise), contig)
    if o is not target:
        target.copy_(o)
    return target


@register("sample_sq_norms", "cuda")
def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0):
    """CUDA twin of :func:`sdekit.kernels.steps.reference.sample_sq_norms` (deterministic; one kernel
    launch per 65535 samples)."""
    (s,), dims, strides, contig = step_layout([score])
    norms = [_ops().sde_sample_sq_norms(s_b, dims, strides[0], *launch_words(seed, step, first), contig)
             for (s_b,), _, first in batch_chunks([s], None, sample_offset)]
    return norms[0] if len(norms) == 1 else torch.cat(norms)
