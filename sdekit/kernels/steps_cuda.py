"""CUDA fused sampling steps: launchers for ``csrc/sde_steps.cu`` (equations and bytes moved there).

    x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)      (affine_step)
    (sum score[b]^2, sum z[b]^2)                                               (sample_sq_norms)

The ops are ``torch.ops.sdekit.sde_affine_step`` / ``sde_sample_sq_norms``, built by the
extension loader (:mod:`sdekit.kernels.cuda_ext`).  Layout, validation and the reference
semantics are shared with the Triton launcher; the torch reference is the specification.
"""
from __future__ import annotations

import torch

from .._checks import check_batched_float
from .dispatch import register
from .rng import split_seed
from .steps_layout import step_layout
from .steps_reference import check_step_args, refuse_sample_offset


def _ops():
    from . import cuda_ext

    load = getattr(cuda_ext, "load", None)
    if load is not None:
        load()
    return torch.ops.sdekit


def _i64(v: int) -> int:
    """A 64-bit word as the int64 with the same bits (how the op receives seed and step)."""
    v %= 1 << 64
    return v - (1 << 64) if v >= (1 << 63) else v


def _seed_word(seed: int) -> int:
    k0, k1 = split_seed(seed)
    return _i64(k0 | (k1 << 32))


@register("affine_step", "cuda")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """CUDA twin of :func:`sdekit.kernels.steps_reference.affine_step` (one kernel launch)."""
    check_step_args(x, coef, score, y, out, flags)
    refuse_sample_offset(sample_offset, "cuda")
    target = torch.empty_like(x) if out is None else out
    (o, xx, s, yy), dims, strides, contig = step_layout([target, x, score, y])
    flat = [v for st in strides for v in st]
    _ops().sde_affine_step(o, xx, s, yy, coef, flags, dims, flat, _seed_word(seed), _i64(int(step)),
                           bool(noise), contig)
    if o is not target:
        target.copy_(o)
    return target


@register("sample_sq_norms", "cuda")
def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0):
    """CUDA twin of :func:`sdekit.kernels.steps_reference.sample_sq_norms` (deterministic)."""
    check_batched_float("score", score)
    refuse_sample_offset(sample_offset, "cuda")
    (s,), dims, strides, contig = step_layout([score])
    part = _ops().sde_sample_sq_norms(s, dims, strides[0], _seed_word(seed), _i64(int(step)), contig)
    return part.sum(1)
