"""CPU fused sampling steps: launchers of the compiled ops (kernels in ``sdekit/csrc/cpu/ops.cpp``).

    x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)      (affine_step)
    (sum score[b]^2, sum z[b]^2)                                               (sample_sq_norms)

The same ops as the CUDA backend (``torch.ops.sdekit.sde_affine_step`` /
``sde_sample_sq_norms``, one schema in :mod:`sdekit.kernels.steps`), with the extension
``sdekit._cpu`` providing their CPU kernels, and the same layout rules (:mod:`.layout`).
Normals: Philox4x32-10 vectorised across groups, then Box-Muller with a 1-ulp ``log`` and
``cos``/``sin``: in float32 on AVX-512 and AVX2 + FMA builds (``-march`` of ``setup.py``) the
header ``sdekit/csrc/cpu/normals_simd.h`` (its own polynomials, checked on every input of their
domains, the same bits at both widths), otherwise SLEEF's (the vector math library torch's own CPU
kernels use, called from ``libtorch_cpu``) on AVX2/AVX-512 hosts and the C library's elsewhere.
"""
from __future__ import annotations

import torch

from .. import cpu_ext
from ..dispatch import register
from .layout import run_affine_step_op, run_sample_sq_norms_op


def _ops():
    cpu_ext.load()
    return torch.ops.sdekit


@register("affine_step", "cpu")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """CPU twin of :func:`sdekit.kernels.steps.reference.affine_step` (one pass over memory)."""
    return run_affine_step_op(_ops(), x, coef, score=score, y=y, seed=seed, step=step,
                              sample_offset=sample_offset, noise=noise, out=out, flags=flags)


@register("sample_sq_norms", "cpu")
def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0):
    """CPU twin of :func:`sdekit.kernels.steps.reference.sample_sq_norms` (deterministic sums)."""
    return run_sample_sq_norms_op(_ops(), score, seed=seed, step=step, sample_offset=sample_offset)
